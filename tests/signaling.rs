//! Signaling over WebSocket against a real `sluice serve`: tokens checked before the upgrade, `welcome`
//! and peer news, garbage answered with `error` on a socket that stays open, `leave`, disconnects,
//! kicks, room deletion and shutdown all ending in `bye` / `peer_left` and removal from the room.

#![deny(unsafe_code)]

mod common;

use std::net::TcpStream;
use std::time::Duration;

use common::server::Server;
use reqwest::blocking::Client;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

const KEY: &str = "signal-test-key-0123456789abcdefghijklmnop";

type Ws = WebSocket<MaybeTlsStream<TcpStream>>;

fn http() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

fn create_room(s: &Server, name: &str) {
    let r = http()
        .post(s.url("/v1/rooms"))
        .bearer_auth(KEY)
        .json(&json!({"name": name}))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
}

/// Adds a participant; returns (id, signal_url).
fn add(s: &Server, room: &str, name: &str) -> (String, String) {
    let r = http()
        .post(s.url(&format!("/v1/rooms/{room}/participants")))
        .bearer_auth(KEY)
        .json(&json!({"name": name}))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let g: Value = r.json().unwrap();
    (
        g["id"].as_str().unwrap().into(),
        g["signal_url"].as_str().unwrap().into(),
    )
}

fn connect(url: &str) -> Ws {
    let (ws, _) = tungstenite::connect(url).expect("websocket connects");
    if let MaybeTlsStream::Plain(tcp) = ws.get_ref() {
        tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    }
    ws
}

fn next(ws: &mut Ws) -> Value {
    loop {
        match ws.read().expect("a message within 5 s") {
            Message::Text(t) => return serde_json::from_str(&t).expect("server messages are JSON"),
            Message::Close(_) => panic!("socket closed while waiting for a message"),
            _ => {}
        }
    }
}

/// Every message that arrives until the socket has been quiet for a second.
fn drain(ws: &mut Ws) -> Vec<Value> {
    if let MaybeTlsStream::Plain(tcp) = ws.get_ref() {
        tcp.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    }
    let mut got = Vec::new();
    while let Ok(m) = ws.read() {
        if let Message::Text(t) = m {
            got.push(serde_json::from_str(&t).expect("JSON"));
        }
    }
    if let MaybeTlsStream::Plain(tcp) = ws.get_ref() {
        tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    }
    got
}

fn members(s: &Server, room: &str) -> usize {
    let r: Value = http()
        .get(s.url(&format!("/v1/rooms/{room}")))
        .bearer_auth(KEY)
        .send()
        .unwrap()
        .json()
        .unwrap();
    r["participants"].as_array().map_or(0, Vec::len)
}

#[test]
fn members_are_welcomed_told_about_each_other_and_removed_when_they_go() {
    let s = Server::start(&["--api-key", KEY]);
    create_room(&s, "hall");
    let (alice, alice_url) = add(&s, "hall", "alice");
    let (bob, bob_url) = add(&s, "hall", "bob");

    let mut a = connect(&alice_url);
    let w = next(&mut a);
    assert_eq!(
        (
            w["type"].as_str(),
            w["room"].as_str(),
            w["audio_slots"].as_u64()
        ),
        (Some("welcome"), Some("hall"), Some(8))
    );
    assert_eq!(w["participant"]["id"], alice.as_str());
    assert_eq!(w["peers"].as_array().unwrap().len(), 0);

    let mut b = connect(&bob_url);
    let w = next(&mut b);
    assert_eq!(w["peers"][0]["id"], alice.as_str(), "bob sees alice");
    let j = next(&mut a);
    assert_eq!(
        (j["type"].as_str(), j["participant"]["name"].as_str()),
        (Some("peer_joined"), Some("bob"))
    );

    // Garbage gets an error, and the socket stays usable.
    for bad in [
        "not json",
        r#"{"type":"dance"}"#,
        r#"{"type":"mute"}"#,
        r#"{"no":"type"}"#,
    ] {
        a.send(Message::Text(bad.into())).unwrap();
        let e = next(&mut a);
        assert_eq!(
            (e["type"].as_str(), e["code"].as_str()),
            (Some("error"), Some("bad_message")),
            "{bad}"
        );
    }
    a.send(Message::Binary(vec![1, 2, 3].into())).unwrap();
    assert_eq!(next(&mut a)["code"], "bad_message");
    a.send(Message::Text(r#"{"type":"mute","muted":true}"#.into()))
        .unwrap();
    assert_eq!(
        next(&mut b),
        json!({"type": "peer_muted", "participant": alice, "muted": true}),
        "the others learn of a mute"
    );

    // Leave: bye to alice, peer_left to bob, alice gone from the room.
    a.send(Message::Text(r#"{"type":"leave"}"#.into())).unwrap();
    assert_eq!(next(&mut a), json!({"type": "bye", "reason": "left"}));
    assert_eq!(
        next(&mut b),
        json!({"type": "peer_left", "participant": alice})
    );
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(members(&s, "hall"), 1);

    // A dropped connection (no close handshake) also removes the member.
    let (carol, carol_url) = add(&s, "hall", "carol");
    let c = connect(&carol_url);
    assert_eq!(next(&mut b)["participant"]["id"], carol.as_str());
    drop(c);
    assert_eq!(
        next(&mut b),
        json!({"type": "peer_left", "participant": carol})
    );

    // Kick: bye "kicked".
    let k = http()
        .delete(s.url(&format!("/v1/rooms/hall/participants/{bob}")))
        .bearer_auth(KEY)
        .send()
        .unwrap();
    assert_eq!(k.status(), StatusCode::NO_CONTENT);
    assert_eq!(next(&mut b), json!({"type": "bye", "reason": "kicked"}));
    assert!(s.terminate().success());
}

#[test]
fn bad_tokens_are_refused_before_the_upgrade() {
    let s = Server::start(&["--api-key", KEY]);
    create_room(&s, "r");
    let (id, url) = add(&s, "r", "x");
    let ws_base = url.split("/v1/").next().unwrap().to_string();
    for (query, status, code) in [
        ("", StatusCode::UNAUTHORIZED, "missing_token"),
        ("?token=garbage", StatusCode::UNAUTHORIZED, "bad_token"),
        ("?token=a.b.c", StatusCode::UNAUTHORIZED, "bad_token"),
    ] {
        let err = tungstenite::connect(format!("{ws_base}/v1/signal{query}")).expect_err("refused");
        let tungstenite::Error::Http(resp) = err else {
            panic!("expected an HTTP refusal, got {err}")
        };
        assert_eq!(resp.status().as_u16(), status.as_u16(), "{query}");
        let body: Value =
            serde_json::from_slice(resp.body().as_deref().unwrap_or_default()).unwrap();
        assert_eq!(body["error"]["code"], code);
    }
    // A kicked participant's token no longer opens a socket.
    http()
        .delete(s.url(&format!("/v1/rooms/r/participants/{id}")))
        .bearer_auth(KEY)
        .send()
        .unwrap();
    let err = tungstenite::connect(&url).expect_err("refused");
    let tungstenite::Error::Http(resp) = err else {
        panic!("expected an HTTP refusal, got {err}")
    };
    assert_eq!(resp.status().as_u16(), 404);
    // A plain GET (no upgrade) with a good token is a clear 400.
    let (_, url2) = add(&s, "r", "y");
    let r = http().get(url2.replace("ws://", "http://")).send().unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(s.terminate().success());
}

#[test]
fn deleting_a_room_and_stopping_the_server_say_bye() {
    let s = Server::start(&["--api-key", KEY]);
    create_room(&s, "a");
    create_room(&s, "b");
    let (_, ua) = add(&s, "a", "one");
    let (_, ub) = add(&s, "b", "two");
    let mut wa = connect(&ua);
    let mut wb = connect(&ub);
    assert_eq!(next(&mut wa)["type"], "welcome");
    assert_eq!(next(&mut wb)["type"], "welcome");
    http()
        .delete(s.url("/v1/rooms/a"))
        .bearer_auth(KEY)
        .send()
        .unwrap();
    assert_eq!(
        next(&mut wa),
        json!({"type": "bye", "reason": "room_closed"})
    );
    let stopper = std::thread::spawn(move || s.terminate());
    assert_eq!(
        next(&mut wb),
        json!({"type": "bye", "reason": "server_shutdown"})
    );
    assert!(stopper.join().unwrap().success(), "exit 0 after saying bye");
}

fn answer_attr<'a>(sdp: &'a str, name: &str) -> &'a str {
    sdp.lines()
        .find_map(|l| l.strip_prefix(name))
        .unwrap_or_else(|| panic!("answer lacks {name}: {sdp}"))
}

#[test]
fn an_offer_gets_an_ice_lite_answer_whose_candidate_answers_connectivity_checks() {
    use sluice_dataplane::ice;
    let s = Server::start(&["--api-key", KEY]);
    create_room(&s, "media");
    let (_, url) = add(&s, "media", "alice");
    let mut ws = connect(&url);
    assert_eq!(next(&mut ws)["type"], "welcome");

    ws.send(Message::Text(
        json!({"type": "offer", "sdp": "v=0 garbage"})
            .to_string()
            .into(),
    ))
    .unwrap();
    let e = next(&mut ws);
    assert_eq!(
        (e["type"].as_str(), e["code"].as_str()),
        (Some("error"), Some("bad_sdp")),
        "{e}"
    );

    ws.send(Message::Text(
        json!({"type": "offer", "sdp": common::offers::aiortc_like_offer(1111)})
            .to_string()
            .into(),
    ))
    .unwrap();
    let a = next(&mut ws);
    assert_eq!(a["type"], "answer", "{a}");
    let sdp = a["sdp"].as_str().unwrap();
    assert!(
        sdp.contains("a=ice-lite\r\n") && sdp.contains("a=setup:passive\r\n"),
        "{sdp}"
    );
    let ufrag = answer_attr(sdp, "a=ice-ufrag:");
    let pwd = answer_attr(sdp, "a=ice-pwd:");
    // Then who is on each receive slot: nobody yet, one entry per receive transceiver.
    let slots = next(&mut ws);
    assert_eq!(slots["type"], "slots", "{slots}");
    let listed: Vec<(&str, bool)> = slots["slots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| (x["mid"].as_str().unwrap(), x["participant"].is_null()))
        .collect();
    assert!(
        !listed.is_empty() && listed.iter().all(|&(_, nobody)| nobody),
        "{slots}"
    );
    for (mid, _) in &listed {
        assert!(
            sdp.contains(&format!("a=mid:{mid}\r\n")),
            "slot {mid} is in the answer"
        );
    }
    let cand: Vec<&str> = answer_attr(sdp, "a=candidate:")
        .split_whitespace()
        .collect();
    let server: std::net::SocketAddr = format!("{}:{}", cand[4], cand[5]).parse().unwrap();

    // The candidate is a live worker that knows these credentials.
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut req = [0u8; 256];
    let n = ice::write_binding_request(
        &[3; 12],
        &format!("{ufrag}:cliU"),
        pwd,
        1,
        2,
        true,
        &mut req,
    )
    .unwrap();
    udp.send_to(&req[..n], server).unwrap();
    let mut buf = [0u8; 512];
    let (len, from) = udp
        .recv_from(&mut buf)
        .expect("the worker answers the check");
    assert_eq!(from, server);
    let msg =
        ice::verify_message(&buf[..len], pwd.as_bytes()).expect("signed with the answer's ice-pwd");
    assert_eq!(
        ice::xor_mapped_address(&msg),
        Some(udp.local_addr().unwrap())
    );

    // Leaving removes the transport: the same check is no longer answered.
    ws.send(Message::Text(r#"{"type":"leave"}"#.into()))
        .unwrap();
    assert_eq!(next(&mut ws)["type"], "bye");
    std::thread::sleep(Duration::from_millis(300));
    udp.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    udp.send_to(&req[..n], server).unwrap();
    assert!(
        udp.recv_from(&mut buf).is_err(),
        "no answer after the participant left"
    );
    assert!(s.terminate().success());
}

fn create_room_with(s: &Server, body: Value) {
    let r = http()
        .post(s.url("/v1/rooms"))
        .bearer_auth(KEY)
        .json(&body)
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED, "{body}");
}

fn room(s: &Server, name: &str) -> Value {
    http()
        .get(s.url(&format!("/v1/rooms/{name}")))
        .bearer_auth(KEY)
        .send()
        .unwrap()
        .json()
        .unwrap()
}

fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::Text(v.to_string().into())).unwrap();
}

fn metric(s: &Server, line_start: &str) -> u64 {
    let text = http()
        .get(s.url("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {line_start} in {text}"))
}

#[test]
fn auto_rooms_relay_p2p_signaling_switch_to_the_sfu_and_back_after_the_cooldown() {
    let s = Server::start(&["--api-key", KEY]);
    create_room_with(
        &s,
        json!({"name": "mesh", "p2p_max": 2, "p2p_return": 1, "cooldown_s": 1}),
    );
    let (a_id, a_url) = add(&s, "mesh", "a");
    let (b_id, b_url) = add(&s, "mesh", "b");
    let (c_id, c_url) = add(&s, "mesh", "c");
    let fresh = room(&s, "mesh");
    assert_eq!(
        (
            fresh["current_mode"].as_str(),
            fresh["last_switch_at"].is_null()
        ),
        (Some("p2p"), true)
    );

    let mut a = connect(&a_url);
    assert_eq!(next(&mut a)["mode"], "p2p");
    let mut b = connect(&b_url);
    assert_eq!(next(&mut b)["mode"], "p2p");
    assert_eq!(next(&mut a)["type"], "peer_joined");

    // P2P signaling goes to the addressed peer, with `from` in place of `to`.
    send(
        &mut a,
        json!({"type": "peer_offer", "to": b_id, "sdp": "v=0 offer"}),
    );
    assert_eq!(
        next(&mut b),
        json!({"type": "peer_offer", "from": a_id, "sdp": "v=0 offer"})
    );
    send(
        &mut b,
        json!({"type": "peer_answer", "to": a_id, "sdp": "v=0 answer"}),
    );
    assert_eq!(
        next(&mut a),
        json!({"type": "peer_answer", "from": b_id, "sdp": "v=0 answer"})
    );
    let cand = json!({"candidate": "candidate:1 1 udp 1 127.0.0.1 5000 typ host", "sdpMid": "0", "sdpMLineIndex": 0});
    send(
        &mut b,
        json!({"type": "peer_candidate", "to": a_id, "candidate": cand}),
    );
    assert_eq!(
        next(&mut a),
        json!({"type": "peer_candidate", "from": b_id, "candidate": cand})
    );
    // Not to someone who is not here (c has a token but is not connected), not to oneself.
    for to in [c_id.as_str(), "p_nobody", a_id.as_str()] {
        send(&mut a, json!({"type": "peer_offer", "to": to, "sdp": "x"}));
        assert_eq!(next(&mut a)["code"], "unknown_peer", "{to}");
    }

    // The third member switches the room to the SFU: it is welcomed in sfu, the others are told.
    let mut c = connect(&c_url);
    let w = next(&mut c);
    assert_eq!(
        (w["type"].as_str(), w["mode"].as_str()),
        (Some("welcome"), Some("sfu"))
    );
    for ws in [&mut a, &mut b] {
        assert_eq!(next(ws)["type"], "peer_joined");
        assert_eq!(next(ws), json!({"type": "mode", "mode": "sfu"}));
    }
    let r = room(&s, "mesh");
    assert_eq!(
        (r["current_mode"].as_str(), r["connected"].as_u64()),
        (Some("sfu"), Some(3))
    );
    assert!(r["last_switch_at"].as_u64().is_some(), "{r}");
    assert_eq!(metric(&s, "sluice_mode_switches_total{to=\"sfu\"}"), 1);

    // Down to two: not yet small enough (p2p_return 1). Down to one: back to p2p after 1 s.
    send(&mut c, json!({"type": "leave"}));
    assert_eq!(next(&mut c)["type"], "bye");
    assert_eq!(next(&mut a)["type"], "peer_left");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        room(&s, "mesh")["current_mode"],
        "sfu",
        "two members stay on the SFU"
    );
    drop(b);
    assert_eq!(next(&mut a)["type"], "peer_left");
    let left_at = std::time::Instant::now();
    assert_eq!(next(&mut a), json!({"type": "mode", "mode": "p2p"}));
    let waited = left_at.elapsed();
    assert!(
        waited >= Duration::from_millis(700) && waited < Duration::from_secs(3),
        "the cooldown (1 s) passed first: {waited:?}"
    );
    assert_eq!(room(&s, "mesh")["current_mode"], "p2p");
    assert_eq!(metric(&s, "sluice_mode_switches_total{to=\"p2p\"}"), 1);
    assert!(s.terminate().success());
}

#[test]
fn fixed_modes_refuse_the_other_kind_of_connection_and_the_server_can_mute() {
    let s = Server::start(&["--api-key", KEY]);
    create_room_with(&s, json!({"name": "stage", "mode": "sfu"}));
    create_room_with(&s, json!({"name": "duo", "mode": "p2p", "p2p_max": 2}));
    let (a_id, a_url) = add(&s, "stage", "a");
    let (_, b_url) = add(&s, "stage", "b");
    let mut a = connect(&a_url);
    assert_eq!(next(&mut a)["mode"], "sfu");
    let mut b = connect(&b_url);
    assert_eq!(next(&mut b)["mode"], "sfu");
    assert_eq!(next(&mut a)["type"], "peer_joined");
    send(
        &mut b,
        json!({"type": "peer_offer", "to": a_id, "sdp": "x"}),
    );
    assert_eq!(next(&mut b)["code"], "sfu_room");

    // Server-side mute: everyone, the muted member included, is told.
    let r = http()
        .post(s.url(&format!("/v1/rooms/stage/participants/{a_id}/mute")))
        .bearer_auth(KEY)
        .json(&json!({"muted": true}))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let told = json!({"type": "peer_muted", "participant": a_id, "muted": true});
    assert_eq!(next(&mut a), told);
    assert_eq!(next(&mut b), told);
    let r = http()
        .post(s.url("/v1/rooms/stage/participants/p_nobody/mute"))
        .bearer_auth(KEY)
        .json(&json!({"muted": true}))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // A p2p room takes no SFU offers, and never switches however many join.
    let (_, d_url) = add(&s, "duo", "d");
    let mut d = connect(&d_url);
    assert_eq!(next(&mut d)["mode"], "p2p");
    send(&mut d, json!({"type": "offer", "sdp": "v=0"}));
    assert_eq!(next(&mut d)["code"], "p2p_room");
    let mut more = Vec::new();
    for n in ["e", "f", "g"] {
        let (_, url) = add(&s, "duo", n);
        let mut ws = connect(&url);
        assert_eq!(next(&mut ws)["mode"], "p2p");
        more.push(ws);
    }
    assert_eq!(room(&s, "duo")["current_mode"], "p2p");
    assert!(s.terminate().success());
}

#[test]
fn empty_rooms_close_by_themselves_after_their_timeout() {
    let s = Server::start(&["--api-key", KEY, "--empty-timeout-s", "1"]);
    create_room_with(&s, json!({"name": "brief"}));
    create_room_with(&s, json!({"name": "kept", "empty_timeout_s": 0}));
    let (_, url) = add(&s, "brief", "a");
    let mut a = connect(&url);
    next(&mut a);
    std::thread::sleep(Duration::from_millis(1600));
    assert_eq!(
        room(&s, "brief")["name"],
        "brief",
        "a connected member keeps it open"
    );
    drop(a);
    std::thread::sleep(Duration::from_millis(2000));
    let r = http()
        .get(s.url("/v1/rooms/brief"))
        .bearer_auth(KEY)
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND, "closed after 1 s empty");
    assert_eq!(room(&s, "kept")["name"], "kept", "0 keeps a room forever");
    assert!(s.terminate().success());
}

#[test]
fn a_flooding_client_is_rate_limited_and_its_target_stays_connected() {
    let s = Server::start(&["--api-key", KEY]);
    create_room(&s, "flood");
    let (_, a_url) = add(&s, "flood", "a");
    let (b_id, b_url) = add(&s, "flood", "b");
    let mut a = connect(&a_url);
    next(&mut a);
    let mut b = connect(&b_url);
    next(&mut b);
    assert_eq!(next(&mut a)["type"], "peer_joined");
    // b does not read while a sends 1,000 offers at it as fast as it can.
    let offer = json!({"type": "peer_offer", "to": b_id, "sdp": "x".repeat(1000)}).to_string();
    for _ in 0..1000 {
        a.send(Message::Text(offer.clone().into())).unwrap();
    }
    let limited = drain(&mut a)
        .iter()
        .filter(|m| m["code"] == "rate_limited")
        .count();
    assert!(limited >= 800, "most of the flood was refused: {limited}");
    // b got the rest (at most the burst and what refilled meanwhile), and is still connected.
    let got = drain(&mut b)
        .iter()
        .filter(|m| m["type"] == "peer_offer")
        .count();
    assert_eq!(got, 1000 - limited, "everything not refused was delivered");
    assert!(got <= 200, "{got}");
    send(&mut b, json!({"type": "mute", "muted": true}));
    assert_eq!(next(&mut a)["type"], "peer_muted", "b is still in the room");
    assert!(s.terminate().success());
}

/// A WebRTC transport nothing keeps alive (no check, no authenticated media) is removed by its
/// worker after the 30 s of ICE consent, and the member is told on its socket instead of going
/// quiet: it stays in the room and a new offer gets a new answer.
#[test]
fn a_transport_nobody_keeps_alive_is_removed_and_its_member_is_told() {
    let s = Server::start(&["--api-key", KEY]);
    create_room(&s, "quiet");
    let (_, url) = add(&s, "quiet", "alice");
    let mut ws = connect(&url);
    assert_eq!(next(&mut ws)["type"], "welcome");
    send(
        &mut ws,
        json!({"type": "offer", "sdp": common::offers::aiortc_like_offer(1111)}),
    );
    assert_eq!(next(&mut ws)["type"], "answer");
    assert_eq!(metric(&s, "sluice_media_sessions "), 1);
    // Nothing arrives for 30 s: wait longer than `next`'s usual 5 s.
    if let MaybeTlsStream::Plain(tcp) = ws.get_ref() {
        tcp.set_read_timeout(Some(Duration::from_secs(45))).unwrap();
    }
    let t0 = std::time::Instant::now();
    let lost = loop {
        assert!(
            t0.elapsed() < Duration::from_secs(45),
            "no transport_lost within 45 s"
        );
        let m = next(&mut ws);
        if m["type"] == "error" {
            break m;
        }
    };
    assert_eq!(lost["code"], "transport_lost", "{lost}");
    assert!(
        t0.elapsed() >= Duration::from_secs(29),
        "not before the 30 s of consent: {:?}",
        t0.elapsed()
    );
    assert_eq!(metric(&s, "sluice_media_sessions "), 0);
    assert_eq!(members(&s, "quiet"), 1, "the member stays in the room");
    send(
        &mut ws,
        json!({"type": "offer", "sdp": common::offers::aiortc_like_offer(1111)}),
    );
    assert_eq!(next(&mut ws)["type"], "answer", "a new offer is served");
    assert!(s.terminate().success());
}

#[test]
fn an_offer_declaring_another_members_ssrc_is_refused_and_the_owner_keeps_it() {
    let s = Server::start(&["--api-key", KEY]);
    create_room(&s, "ssrc");
    let (_, alice_url) = add(&s, "ssrc", "alice");
    let (_, mallory_url) = add(&s, "ssrc", "mallory");
    let mut alice = connect(&alice_url);
    let mut mallory = connect(&mallory_url);
    assert_eq!(next(&mut alice)["type"], "welcome");
    assert_eq!(next(&mut mallory)["type"], "welcome");
    send(
        &mut alice,
        json!({"type": "offer", "sdp": common::offers::aiortc_like_offer(1111)}),
    );
    let a = drain(&mut alice);
    assert!(a.iter().any(|m| m["type"] == "answer"), "{a:?}");
    // Mallory's offer declares the same a=ssrc (1111): refused with a clear code, no answer.
    send(
        &mut mallory,
        json!({"type": "offer", "sdp": common::offers::aiortc_like_offer(1111)}),
    );
    let m = drain(&mut mallory);
    assert!(
        m.iter()
            .any(|x| x["type"] == "error" && x["code"] == "ssrc_in_use"),
        "{m:?}"
    );
    assert!(!m.iter().any(|x| x["type"] == "answer"), "{m:?}");
    // Alice may offer again with it (her own SSRC), and Mallory with another one.
    send(
        &mut alice,
        json!({"type": "offer", "sdp": common::offers::aiortc_like_offer(1111)}),
    );
    assert!(drain(&mut alice).iter().any(|m| m["type"] == "answer"));
    let other = common::offers::aiortc_like_offer(1111).replace("a=ssrc:1111 ", "a=ssrc:2222 ");
    send(&mut mallory, json!({"type": "offer", "sdp": other}));
    assert!(drain(&mut mallory).iter().any(|m| m["type"] == "answer"));
    assert!(s.terminate().success());
}
