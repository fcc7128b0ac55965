//! Signaling over WebSocket against a real `sluice serve`: tokens checked before the upgrade, `welcome`
//! and peer news, garbage answered with `error` on a socket that stays open, `leave`, disconnects,
//! kicks, room deletion and shutdown all ending in `bye` / `peer_left` and removal from the room.

mod common;

use std::net::TcpStream;
use std::time::Duration;

use common::server::Server;
use reqwest::blocking::Client;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

const KEY: &str = "signal-test-key";

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
