//! Webhooks from a real `sluice serve` to a small HTTP receiver in this test: every room event
//! (room_started, participant_joined, mode_changed, participant_left, room_finished) arrives once, in
//! order, signed with HMAC-SHA256 over the body; the receiver fails the first delivery and the event
//! comes again with the same id; signaling never waits for any of it.

#![deny(unsafe_code)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::Duration;

use common::server::Server;
use serde_json::{json, Value};
use sluice_controlplane::webhooks::verify;
use tungstenite::stream::MaybeTlsStream;
use tungstenite::Message;

const KEY: &str = "hooks-test-key-0123456789abcdefghijklmnop";
const SECRET: &str = "hook-secret";

/// One received request: headers (lower-case names) and body.
struct Hook {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Hook {
    fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map_or("", |(_, v)| v.as_str())
    }
}

/// Reads HTTP/1.1 requests from one connection (keep-alive), answering 500 to the very first
/// request the receiver ever sees and 200 to the rest.
fn serve_conn(stream: TcpStream, tx: mpsc::Sender<Hook>, first: &std::sync::atomic::AtomicBool) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut out = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((n, v)) = h.split_once(':') {
                headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let len: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let fail = first.swap(false, std::sync::atomic::Ordering::SeqCst);
        let status = if fail {
            "500 Internal Server Error"
        } else {
            "200 OK"
        };
        let _ = out.write_all(format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n").as_bytes());
        let _ = tx.send(Hook { headers, body });
    }
}

fn receiver() -> (String, mpsc::Receiver<Hook>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let first = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        for stream in listener.incoming().flatten() {
            let (tx, first) = (tx.clone(), first.clone());
            std::thread::spawn(move || serve_conn(stream, tx, &first));
        }
    });
    (url, rx)
}

fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

fn add(s: &Server, name: &str) -> (String, String) {
    let g: Value = http()
        .post(s.url("/v1/rooms/hooks/participants"))
        .bearer_auth(KEY)
        .json(&json!({"name": name}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    (
        g["id"].as_str().unwrap().into(),
        g["signal_url"].as_str().unwrap().into(),
    )
}

type Ws = tungstenite::WebSocket<MaybeTlsStream<TcpStream>>;

fn connect(url: &str) -> Ws {
    let (mut ws, _) = tungstenite::connect(url).expect("websocket connects");
    if let MaybeTlsStream::Plain(tcp) = ws.get_ref() {
        tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    }
    ws.read().expect("welcome");
    ws
}

#[test]
fn every_room_event_reaches_the_webhook_signed_in_order_and_a_failed_delivery_is_retried() {
    let (url, rx) = receiver();
    let s = Server::start(&[
        "--api-key",
        KEY,
        "--webhook",
        &url,
        "--webhook-secret",
        SECRET,
        "--empty-timeout-s",
        "1",
    ]);
    let c = http();
    let r = c
        .post(s.url("/v1/rooms"))
        .bearer_auth(KEY)
        .json(&json!({"name": "hooks", "p2p_max": 2, "p2p_return": 1, "cooldown_s": 1}))
        .send()
        .unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::CREATED);
    let (a_id, a_url) = add(&s, "a");
    let (b_id, b_url) = add(&s, "b");
    let (c_id, c_url) = add(&s, "c");
    let mut a = connect(&a_url);
    let _b = connect(&b_url);
    let mut cc = connect(&c_url);
    // c leaves, b is kicked: one member left, back to p2p after 1 s; a goes, the room closes 1 s later.
    cc.send(Message::Text(r#"{"type":"leave"}"#.into()))
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let r = c
        .delete(s.url(&format!("/v1/rooms/hooks/participants/{b_id}")))
        .bearer_auth(KEY)
        .send()
        .unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::NO_CONTENT);
    std::thread::sleep(Duration::from_millis(1500));
    let _ = a.close(None);
    let _ = a.flush();
    drop(a);

    let expected = [
        json!({"event": "room_started", "room": "hooks"}),
        json!({"event": "participant_joined", "room": "hooks", "participant": a_id, "name": "a", "role": "speaker"}),
        json!({"event": "participant_joined", "room": "hooks", "participant": b_id, "name": "b", "role": "speaker"}),
        json!({"event": "participant_joined", "room": "hooks", "participant": c_id, "name": "c", "role": "speaker"}),
        json!({"event": "mode_changed", "room": "hooks", "from": "p2p", "to": "sfu", "members": 3}),
        json!({"event": "participant_left", "room": "hooks", "participant": c_id, "reason": "left"}),
        json!({"event": "participant_left", "room": "hooks", "participant": b_id, "reason": "kicked"}),
        json!({"event": "mode_changed", "room": "hooks", "from": "sfu", "to": "p2p", "members": 1}),
        json!({"event": "participant_left", "room": "hooks", "participant": a_id, "reason": "disconnected"}),
        json!({"event": "room_finished", "room": "hooks"}),
    ];
    let mut got: Vec<Hook> = Vec::new();
    while got.len() < expected.len() + 1 {
        let h = rx
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| {
                let seen: Vec<String> = got
                    .iter()
                    .map(|h| String::from_utf8_lossy(&h.body).into_owned())
                    .collect();
                let metrics = http()
                    .get(s.url("/metrics"))
                    .bearer_auth(KEY)
                    .send()
                    .and_then(|r| r.text())
                    .unwrap_or_default();
                panic!(
                    "only {} deliveries arrived: {seen:#?}\nmetrics: {metrics}",
                    got.len()
                )
            });
        got.push(h);
    }
    // The first delivery was answered 500: the same event, same id, came again as attempt 2.
    let first: Value = serde_json::from_slice(&got[0].body).unwrap();
    let again: Value = serde_json::from_slice(&got[1].body).unwrap();
    assert_eq!(first, again);
    assert_eq!(got[0].body, got[1].body, "the retry sends the same bytes");
    assert_eq!(
        (
            got[0].header("x-sluice-attempt"),
            got[1].header("x-sluice-attempt")
        ),
        ("1", "2")
    );
    for (hook, want) in got[1..].iter().zip(&expected) {
        assert!(
            verify(
                SECRET.as_bytes(),
                &hook.body,
                hook.header("x-sluice-signature")
            ),
            "signed with the secret: {}",
            String::from_utf8_lossy(&hook.body)
        );
        assert!(!verify(
            b"another secret",
            &hook.body,
            hook.header("x-sluice-signature")
        ));
        let mut body: Value = serde_json::from_slice(&hook.body).unwrap();
        assert_eq!(
            hook.header("x-sluice-event"),
            body["event"].as_str().unwrap()
        );
        assert_eq!(
            hook.header("x-sluice-delivery"),
            body["id"].as_str().unwrap()
        );
        assert_eq!(hook.header("content-type"), "application/json");
        assert!(body["created_at"]
            .as_u64()
            .is_some_and(|t| t > 1_700_000_000));
        let obj = body.as_object_mut().unwrap();
        obj.remove("id");
        obj.remove("created_at");
        assert_eq!(&body, want);
    }
    // The server counts a delivery once it has read the receiver's answer, which may be a moment
    // after the receiver saw the body: look for up to 2 s.
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    let metrics = loop {
        let m = c.get(s.url("/metrics")).send().unwrap().text().unwrap();
        if m.contains("sluice_webhooks_total{outcome=\"delivered\"} 10")
            || std::time::Instant::now() > deadline
        {
            break m;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        metrics.contains("sluice_webhooks_total{outcome=\"delivered\"} 10"),
        "{metrics}"
    );
    assert!(s.terminate().success());
}
