//! Members with valid tokens who misbehave on signaling: floods, oversized frames, half-open sockets,
//! listeners that try to publish peer to peer.

use std::net::TcpStream;
use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

use crate::common::server::Server;

const KEY: &str = "hostile-participants-key-0123456789abcdef";

type Ws = WebSocket<MaybeTlsStream<TcpStream>>;

fn http() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

fn create_room(s: &Server, body: Value) {
    let r = http()
        .post(s.url("/v1/rooms"))
        .bearer_auth(KEY)
        .json(&body)
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
}

/// Adds a participant with `role`; returns (id, signal_url).
fn add(s: &Server, room: &str, name: &str, role: &str) -> (String, String) {
    let r = http()
        .post(s.url(&format!("/v1/rooms/{room}/participants")))
        .bearer_auth(KEY)
        .json(&json!({"name": name, "role": role}))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let g: Value = r.json().unwrap();
    (
        g["id"].as_str().unwrap().into(),
        g["signal_url"].as_str().unwrap().into(),
    )
}

fn set_timeout(ws: &Ws, t: Duration) {
    if let MaybeTlsStream::Plain(tcp) = ws.get_ref() {
        tcp.set_read_timeout(Some(t)).unwrap();
    }
}

/// Connects and reads the `welcome`.
fn connect(url: &str) -> Ws {
    let (mut ws, _) = tungstenite::connect(url).expect("websocket connects");
    set_timeout(&ws, Duration::from_secs(5));
    let w = next(&mut ws);
    assert_eq!(w["type"], "welcome");
    ws
}

fn next(ws: &mut Ws) -> Value {
    loop {
        match ws.read().expect("a message within the timeout") {
            Message::Text(t) => return serde_json::from_str(&t).expect("server messages are JSON"),
            Message::Close(_) => panic!("socket closed while waiting for a message"),
            _ => {}
        }
    }
}

/// Every message that arrives until the socket has been quiet for `quiet` (pings do not count),
/// or for ten times `quiet` in all.
fn drain(ws: &mut Ws, quiet: Duration) -> Vec<Value> {
    set_timeout(ws, quiet);
    let mut got = Vec::new();
    let deadline = Instant::now() + quiet * 10;
    while let Ok(m) = ws.read() {
        if Instant::now() > deadline {
            break;
        }
        if let Message::Text(t) = m {
            got.push(serde_json::from_str(&t).unwrap());
        }
    }
    set_timeout(ws, Duration::from_secs(5));
    got
}

fn send(ws: &mut Ws, v: &Value) {
    ws.send(Message::Text(v.to_string().into())).expect("send");
}

fn codes(msgs: &[Value]) -> Vec<String> {
    msgs.iter()
        .filter(|m| m["type"] == "error")
        .map(|m| m["code"].as_str().unwrap_or("").to_string())
        .collect()
}

fn connected(s: &Server, room: &str) -> u64 {
    let r: Value = http()
        .get(s.url(&format!("/v1/rooms/{room}")))
        .bearer_auth(KEY)
        .send()
        .unwrap()
        .json()
        .unwrap();
    r["connected"].as_u64().expect("connected")
}

/// A p2p SDP with one audio section in `direction`, padded with attribute lines to about `len`.
fn peer_sdp(direction: &str, len: usize) -> String {
    let mut sdp = format!(
        "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na={direction}\r\n"
    );
    while sdp.len() + 40 < len {
        sdp += "a=x-padding:0123456789abcdef0123456789\r\n";
    }
    sdp
}

#[test]
fn a_frame_over_64_kib_closes_the_senders_socket_and_nobody_elses() {
    let s = Server::start(&["--api-key", KEY]);
    create_room(&s, json!({"name": "big", "mode": "p2p"}));
    let (_, a_url) = add(&s, "big", "a", "speaker");
    let (b_id, b_url) = add(&s, "big", "b", "speaker");
    let mut a = connect(&a_url);
    let mut b = connect(&b_url);
    let _ = drain(&mut a, Duration::from_millis(300));
    let huge = format!(
        "{{\"type\":\"leave\",\"x\":\"{}\"}}",
        "x".repeat(100 * 1024)
    );
    let _ = b.send(Message::Text(huge.into()));
    // The server drops b (a protocol error, no 100 KiB buffered); a hears that b left.
    let mut closed = false;
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        match b.read() {
            Ok(Message::Close(_)) | Err(_) => {
                closed = true;
                break;
            }
            Ok(_) => {}
        }
    }
    assert!(closed, "the oversized frame closed the sender's socket");
    let msgs = drain(&mut a, Duration::from_secs(1));
    assert!(
        msgs.iter()
            .any(|m| m["type"] == "peer_left" && m["participant"] == b_id.as_str()),
        "{msgs:?}"
    );
    assert_eq!(connected(&s, "big"), 1, "a is still connected");
}

#[test]
fn a_half_open_client_is_closed_after_the_idle_timeout_and_stops_counting_as_connected() {
    let s = Server::start(&["--api-key", KEY, "--ws-ping-s", "1", "--ws-idle-s", "3"]);
    create_room(&s, json!({"name": "idle"}));
    let (_, silent_url) = add(&s, "idle", "silent", "speaker");
    let (_, live_url) = add(&s, "idle", "live", "speaker");
    // Never read again: no pong goes back, as with a client whose network vanished.
    let _silent = connect(&silent_url);
    let mut live = connect(&live_url);
    assert_eq!(connected(&s, "idle"), 2);
    // The live client reads (tungstenite answers each ping) for 5 s: past the idle timeout.
    set_timeout(&live, Duration::from_millis(200));
    let mut msgs: Vec<Value> = Vec::new();
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(5) {
        if let Ok(Message::Text(t)) = live.read() {
            msgs.push(serde_json::from_str(&t).unwrap());
        }
    }
    assert!(
        msgs.iter().any(|m| m["type"] == "peer_left"),
        "the silent member was dropped: {msgs:?}"
    );
    assert!(!msgs.iter().any(|m| m["type"] == "bye"), "{msgs:?}");
    assert_eq!(connected(&s, "idle"), 1, "only the live member counts");
}

#[test]
fn reconnecting_does_not_refill_the_message_rate_limit() {
    let s = Server::start(&["--api-key", KEY]);
    create_room(&s, json!({"name": "rate", "mode": "p2p"}));
    let (_, url) = add(&s, "rate", "flooder", "speaker");
    let mut first = connect(&url);
    for _ in 0..120 {
        send(&mut first, &json!({"type": "nonsense"}));
    }
    let got = codes(&drain(&mut first, Duration::from_millis(300)));
    assert!(got.iter().any(|c| c == "rate_limited"), "{got:?}");
    // A second socket with the same token replaces the first: the bucket is the participant's.
    let mut second = connect(&url);
    for _ in 0..60 {
        send(&mut second, &json!({"type": "nonsense"}));
    }
    let got = codes(&drain(&mut second, Duration::from_millis(500)));
    assert!(
        got.iter().any(|c| c == "rate_limited"),
        "a fresh bucket would have let 60 through: {got:?}"
    );
}

#[test]
fn a_relayed_sdp_over_16_kib_is_refused_and_not_delivered() {
    let s = Server::start(&["--api-key", KEY]);
    create_room(&s, json!({"name": "sdp", "mode": "p2p"}));
    let (_, a_url) = add(&s, "sdp", "a", "speaker");
    let (b_id, b_url) = add(&s, "sdp", "b", "speaker");
    let mut a = connect(&a_url);
    let mut b = connect(&b_url);
    let _ = drain(&mut a, Duration::from_millis(300));
    send(
        &mut a,
        &json!({"type": "peer_offer", "to": b_id, "sdp": peer_sdp("sendrecv", 20 * 1024)}),
    );
    assert_eq!(codes(&[next(&mut a)]), ["sdp_too_large"]);
    // A normal one still goes through.
    send(
        &mut a,
        &json!({"type": "peer_offer", "to": b_id, "sdp": peer_sdp("sendrecv", 2000)}),
    );
    let got = drain(&mut b, Duration::from_millis(500));
    let offers: Vec<_> = got.iter().filter(|m| m["type"] == "peer_offer").collect();
    assert_eq!(offers.len(), 1, "only the small offer arrives: {got:?}");
}

#[test]
fn members_flooding_one_target_with_relayed_sdp_cannot_push_it_out_as_a_slow_consumer() {
    let s = Server::start(&["--api-key", KEY]);
    create_room(&s, json!({"name": "flood", "mode": "p2p", "p2p_max": 8}));
    let (t_id, t_url) = add(&s, "flood", "target", "speaker");
    let mut target = connect(&t_url);
    let mut senders: Vec<Ws> = (0..4)
        .map(|i| connect(&add(&s, "flood", &format!("s{i}"), "speaker").1))
        .collect();
    // The target does not read while 4 members send 100 offers of 15 KiB each (6 MB).
    let sdp = peer_sdp("sendrecv", 15 * 1024);
    for ws in &mut senders {
        for _ in 0..100 {
            send(ws, &json!({"type": "peer_offer", "to": t_id, "sdp": sdp}));
        }
    }
    let mut busy = 0;
    for ws in &mut senders {
        busy += codes(&drain(ws, Duration::from_millis(500)))
            .iter()
            .filter(|c| *c == "receiver_busy")
            .count();
    }
    assert!(busy > 0, "the target's relay budget refused some");
    // Now the target reads: what was relayed, and no `bye`.
    let got = drain(&mut target, Duration::from_secs(1));
    assert!(
        !got.iter().any(|m| m["type"] == "bye"),
        "target was pushed out"
    );
    let offers = got.iter().filter(|m| m["type"] == "peer_offer").count();
    assert!(
        offers > 0 && offers + busy == 400,
        "{offers} delivered, {busy} refused"
    );
    assert_eq!(connected(&s, "flood"), 5);
}

#[test]
fn the_relay_budget_follows_the_configuration() {
    let s = Server::start(&[
        "--api-key",
        KEY,
        "--relay-burst-kib",
        "20",
        "--relay-kib-per-s",
        "1",
    ]);
    create_room(&s, json!({"name": "small", "mode": "p2p"}));
    let (t_id, t_url) = add(&s, "small", "target", "speaker");
    let mut target = connect(&t_url);
    let mut sender = connect(&add(&s, "small", "sender", "speaker").1);
    let _ = drain(&mut target, Duration::from_millis(300));
    // A 20 KiB burst holds one 15 KiB offer, not two.
    let sdp = peer_sdp("sendrecv", 15 * 1024);
    for _ in 0..2 {
        send(
            &mut sender,
            &json!({"type": "peer_offer", "to": t_id, "sdp": sdp}),
        );
    }
    let refused = codes(&drain(&mut sender, Duration::from_millis(500)));
    assert_eq!(
        refused,
        ["receiver_busy"],
        "the second offer is over budget"
    );
    let got = drain(&mut target, Duration::from_millis(500));
    assert_eq!(
        got.iter().filter(|m| m["type"] == "peer_offer").count(),
        1,
        "one offer delivered"
    );
}

#[test]
fn a_listener_cannot_publish_peer_to_peer() {
    let s = Server::start(&["--api-key", KEY]);
    create_room(&s, json!({"name": "talk", "mode": "p2p"}));
    let (speaker_id, speaker_url) = add(&s, "talk", "speaker", "speaker");
    let (_, listener_url) = add(&s, "talk", "listener", "listener");
    let mut speaker = connect(&speaker_url);
    let mut listener = connect(&listener_url);
    let _ = drain(&mut speaker, Duration::from_millis(300));
    for (kind, dir) in [
        ("peer_offer", "sendrecv"),
        ("peer_answer", "sendonly"),
        ("peer_offer", ""),
    ] {
        let sdp = if dir.is_empty() {
            // No direction attribute: sendrecv by default.
            peer_sdp("mid-only", 500).replace("a=mid-only\r\n", "")
        } else {
            peer_sdp(dir, 500)
        };
        send(
            &mut listener,
            &json!({"type": kind, "to": speaker_id, "sdp": sdp}),
        );
        assert_eq!(
            codes(&[next(&mut listener)]),
            ["listener_cannot_publish"],
            "{kind} {dir}"
        );
    }
    assert!(
        drain(&mut speaker, Duration::from_millis(500)).is_empty(),
        "nothing was delivered"
    );
    // Receiving only is what a listener may do.
    send(
        &mut listener,
        &json!({"type": "peer_answer", "to": speaker_id, "sdp": peer_sdp("recvonly", 500)}),
    );
    let got = drain(&mut speaker, Duration::from_millis(500));
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["type"], "peer_answer");
}

#[test]
fn twenty_sockets_sending_fifty_offers_a_second_do_not_slow_healthz_past_100_ms_p99() {
    let s = Server::start(&["--api-key", KEY]);
    create_room(
        &s,
        json!({"name": "offers", "mode": "sfu", "max_participants": 50}),
    );
    let urls: Vec<String> = (0..20)
        .map(|i| add(&s, "offers", &format!("o{i}"), "speaker").1)
        .collect();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let answered = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let threads: Vec<_> = urls
        .into_iter()
        .enumerate()
        .map(|(i, url)| {
            let (stop, answered) = (stop.clone(), answered.clone());
            std::thread::spawn(move || {
                let mut ws = connect(&url);
                set_timeout(&ws, Duration::from_millis(5));
                let offer = json!({"type": "offer", "sdp": crate::common::offers::aiortc_like_offer(1000 + i as u32)}).to_string();
                let start = Instant::now();
                let mut sent = 0u32;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    // 50 a second, paced.
                    let due = start + Duration::from_millis(20) * sent;
                    if Instant::now() >= due {
                        if ws.send(Message::Text(offer.clone().into())).is_err() {
                            return;
                        }
                        sent += 1;
                    }
                    if let Ok(Message::Text(t)) = ws.read() {
                        if t.contains("\"answer\"") {
                            answered.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let client = http();
    let mut times = Vec::new();
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(4) {
        let t = Instant::now();
        let r = client.get(s.url("/healthz")).send().unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        times.push(t.elapsed());
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    times.sort();
    let p99 = times[times.len() * 99 / 100];
    let answers = answered.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!(
        "healthz p99 {p99:?} (max {:?}) over {} calls; {answers} offers answered",
        times.last().unwrap(),
        times.len()
    );
    assert!(answers > 500, "the offers were served: {answers}");
    assert!(p99 < Duration::from_millis(100), "healthz p99 {p99:?}");
}
