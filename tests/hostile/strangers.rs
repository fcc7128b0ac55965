//! Strangers and guests against the REST API: joining rooms without an invitation, guessing room
//! names, hammering the admin key, holding seats they never sit in.

use std::net::{IpAddr, Ipv4Addr};
use std::process::Stdio;
use std::time::{Duration, Instant};

use reqwest::blocking::{Client, Response};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::common::server::{serve_command, tempdir, Server};

const KEY: &str = "strangers-test-key-0123456789abcdefghij";

/// A client from 127.0.0.1 (or `from`, another loopback address: another client to the server).
fn client_from(from: Option<[u8; 4]>) -> Client {
    Client::builder()
        .timeout(Duration::from_secs(5))
        .local_address(from.map(|o| IpAddr::V4(Ipv4Addr::from(o))))
        .build()
        .unwrap()
}

fn http() -> Client {
    client_from(None)
}

fn create_room(s: &Server, body: Value) -> Value {
    let r = http()
        .post(s.url("/v1/rooms"))
        .bearer_auth(KEY)
        .json(&body)
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED, "{:?}", r.text());
    r.json().unwrap()
}

fn guest_join(c: &Client, s: &Server, room: &str, body: Value) -> Response {
    c.post(s.url(&format!("/v1/rooms/{room}/join")))
        .json(&body)
        .send()
        .unwrap()
}

fn mint(s: &Server, room: &str, name: &str) -> Value {
    let r = http()
        .post(s.url(&format!("/v1/rooms/{room}/participants")))
        .bearer_auth(KEY)
        .json(&json!({ "name": name }))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    r.json().unwrap()
}

fn kick(s: &Server, room: &str, id: &str) {
    let r = http()
        .delete(s.url(&format!("/v1/rooms/{room}/participants/{id}")))
        .bearer_auth(KEY)
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
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

/// The status and error code of a response.
fn code(r: Response) -> (StatusCode, String) {
    let status = r.status();
    let body: Value = r.json().unwrap_or(Value::Null);
    (
        status,
        body["error"]["code"].as_str().unwrap_or("").to_string(),
    )
}

/// What the signaling endpoint says to `token` before any upgrade (a plain GET: 400
/// `not_websocket` means the token would have been accepted).
fn signal_verdict(s: &Server, token: &str) -> (StatusCode, String) {
    code(
        http()
            .get(s.url("/v1/signal"))
            .query(&[("token", token)])
            .send()
            .unwrap(),
    )
}

fn retry_after(r: &Response) -> u64 {
    r.headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("a Retry-After in seconds")
}

#[test]
fn a_stranger_cannot_guest_join_a_room_that_does_not_allow_it_and_cannot_tell_it_exists() {
    let s = Server::start(&["--api-key", KEY]);
    let c = http();
    let absent = guest_join(&c, &s, "board", json!({"name": "mallory"}));
    let (absent_status, absent_body) = (absent.status(), absent.bytes().unwrap());
    assert_eq!(absent_status, StatusCode::NOT_FOUND);

    let created = create_room(&s, json!({"name": "board", "guest_join": false}));
    assert_eq!(created["guest_join"], false);
    let refused = guest_join(&c, &s, "board", json!({"name": "mallory"}));
    assert_eq!(refused.status(), absent_status);
    assert_eq!(
        refused.bytes().unwrap(),
        absent_body,
        "word for word the same"
    );

    // A room with a join code: without it, or with a wrong one, the room does not exist either.
    http()
        .delete(s.url("/v1/rooms/board"))
        .bearer_auth(KEY)
        .send()
        .unwrap();
    create_room(&s, json!({"name": "board", "join_code": "tulip-42-seven"}));
    for body in [
        json!({"name": "mallory"}),
        json!({"name": "mallory", "join_code": "tulip-42-seve"}),
        json!({"name": "mallory", "join_code": "TULIP-42-SEVEN"}),
    ] {
        let r = guest_join(&c, &s, "board", body);
        assert_eq!(r.status(), absent_status);
        assert_eq!(r.bytes().unwrap(), absent_body);
    }
    let ok = guest_join(
        &c,
        &s,
        "board",
        json!({"name": "alice", "join_code": "tulip-42-seven"}),
    );
    assert_eq!(ok.status(), StatusCode::CREATED);
    // The room's settings are the admin's to read, and never in a guest's grant.
    let grant = ok.text().unwrap();
    assert!(!grant.contains("tulip"), "{grant}");
    assert_eq!(room(&s, "board")["join_code"], "tulip-42-seven");
    assert!(s.terminate().success());
}

#[test]
fn a_server_listening_beyond_loopback_takes_no_guests_unless_told_to() {
    let s = Server::start_at("0.0.0.0:0", &["--api-key", KEY]);
    let r = create_room(&s, json!({"name": "hall"}));
    assert_eq!(
        r["guest_join"], false,
        "rooms default to the server's setting"
    );
    assert_eq!(
        code(guest_join(&http(), &s, "hall", json!({"name": "mallory"}))),
        (StatusCode::FORBIDDEN, "guest_join_disabled".into())
    );
    // A room cannot open what the server keeps closed.
    let r = http()
        .post(s.url("/v1/rooms"))
        .bearer_auth(KEY)
        .json(&json!({"name": "open", "guest_join": true}))
        .send()
        .unwrap();
    assert_eq!(code(r), (StatusCode::BAD_REQUEST, "invalid_field".into()));
    drop(s);

    let s = Server::start_at("0.0.0.0:0", &["--api-key", KEY, "--guest-join", "true"]);
    create_room(&s, json!({"name": "hall"}));
    assert_eq!(
        guest_join(&http(), &s, "hall", json!({"name": "ann"})).status(),
        StatusCode::CREATED
    );
}

#[test]
fn a_stranger_hammering_guest_join_gets_429_with_retry_after_and_others_are_not_affected() {
    let s = Server::start(&["--api-key", KEY]);
    create_room(&s, json!({"name": "r"}));
    let c = http();
    let mut limited = None;
    for i in 0..100 {
        // Guessing rooms spends the same budget as joining them.
        let r = guest_join(&c, &s, &format!("guess-{i}"), json!({"name": "m"}));
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            limited = Some((i, r));
            break;
        }
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
    }
    let (i, r) = limited.expect("rate-limited within 100 attempts");
    assert!((10..=40).contains(&i), "after a burst of {i}");
    assert!((1..=60).contains(&retry_after(&r)));
    assert_eq!(
        code(r),
        (StatusCode::TOO_MANY_REQUESTS, "rate_limited".into())
    );
    assert_eq!(
        guest_join(&c, &s, "r", json!({"name": "m"})).status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    let other = client_from(Some([127, 0, 0, 2]));
    assert_eq!(
        guest_join(&other, &s, "r", json!({"name": "ann"})).status(),
        StatusCode::CREATED,
        "another address has its own budget"
    );
}

#[test]
fn a_participant_that_never_connects_loses_its_seat_and_its_token_after_the_join_grace() {
    let s = Server::start(&["--api-key", KEY, "--join-grace-s", "1"]);
    create_room(&s, json!({"name": "r"}));
    let minted = mint(&s, "r", "alice");
    let guest: Value = guest_join(&http(), &s, "r", json!({"name": "bob"}))
        .json()
        .unwrap();
    let sitting = mint(&s, "r", "carol");
    let signal_url = sitting["signal_url"].as_str().unwrap();
    let (mut ws, _) = tungstenite::connect(signal_url).expect("carol connects in time");
    let welcome = ws.read().unwrap();
    assert!(welcome.to_text().unwrap().contains("welcome"));

    std::thread::sleep(Duration::from_millis(1800));
    for grant in [&minted, &guest] {
        assert_eq!(
            signal_verdict(&s, grant["token"].as_str().unwrap()),
            (StatusCode::NOT_FOUND, "unknown_participant".into()),
            "the token of a seat never sat in is refused"
        );
    }
    let members: Vec<String> = room(&s, "r")["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(members, ["carol"], "whoever connected keeps the seat");
    // The names are free again.
    mint(&s, "r", "alice");
    assert_eq!(
        guest_join(&http(), &s, "r", json!({"name": "bob"})).status(),
        StatusCode::CREATED
    );
    drop(ws);
}

#[test]
fn a_kicked_guest_cannot_guest_join_the_room_again_until_ban_s_has_passed() {
    let s = Server::start(&["--api-key", KEY, "--ban-s", "2"]);
    create_room(&s, json!({"name": "r"}));
    let c = http();
    let grant: Value = guest_join(&c, &s, "r", json!({"name": "troll"}))
        .json()
        .unwrap();
    kick(&s, "r", grant["id"].as_str().unwrap());
    let kicked_at = Instant::now();
    for (client, name) in [
        (&c, "troll"),
        (&c, "innocent"),
        (&client_from(Some([127, 0, 0, 3])), "troll"),
    ] {
        let r = guest_join(client, &s, "r", json!({ "name": name }));
        assert!((1..=2).contains(&retry_after(&r)));
        assert_eq!(code(r), (StatusCode::FORBIDDEN, "banned".into()), "{name}");
    }
    let other = client_from(Some([127, 0, 0, 3]));
    assert_eq!(
        guest_join(&other, &s, "r", json!({"name": "ann"})).status(),
        StatusCode::CREATED,
        "someone else from elsewhere is welcome"
    );
    std::thread::sleep(
        Duration::from_secs(2).saturating_sub(kicked_at.elapsed()) + Duration::from_millis(300),
    );
    assert_eq!(
        guest_join(&c, &s, "r", json!({"name": "troll"})).status(),
        StatusCode::CREATED,
        "the ban is over"
    );
}

#[test]
fn a_kick_that_races_the_signaling_upgrade_still_wins() {
    let s = Server::start(&["--api-key", KEY]);
    create_room(&s, json!({"name": "r", "empty_timeout_s": 0}));
    // One kept-alive connection for the kicks, so that their timing spreads evenly over the
    // upgrade of each racer's socket.
    let admin = http();
    let mut told = 0;
    for i in 0..150u64 {
        let p = mint(&s, "r", &format!("racer-{i}"));
        let url = p["signal_url"].as_str().unwrap().to_string();
        let connecting = std::thread::spawn(move || {
            let Ok((mut ws, _)) = tungstenite::connect(&url) else {
                return true; // refused before the upgrade
            };
            if let tungstenite::stream::MaybeTlsStream::Plain(t) = ws.get_ref() {
                let _ = t.set_read_timeout(Some(Duration::from_millis(100)));
            }
            // Connected: the kick must still reach it (`bye`, then the socket closes).
            let deadline = Instant::now() + Duration::from_secs(2);
            while Instant::now() < deadline {
                match ws.read() {
                    Ok(m) if m.to_text().is_ok_and(|t| t.contains("\"bye\"")) => return true,
                    Ok(_) => {}
                    Err(tungstenite::Error::Io(e))
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) => {}
                    Err(_) => return true,
                }
            }
            false
        });
        std::thread::sleep(Duration::from_micros(20 * (i % 100)));
        let r = admin
            .delete(s.url(&format!(
                "/v1/rooms/r/participants/{}",
                p["id"].as_str().unwrap()
            )))
            .bearer_auth(KEY)
            .send()
            .unwrap();
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        told += usize::from(connecting.join().unwrap());
        let r = room(&s, "r");
        assert_eq!(
            r["connected"], 0,
            "racer {i} stayed connected as a ghost: {r}"
        );
    }
    assert_eq!(told, 150, "every racer was refused or told bye");
    assert_eq!(room(&s, "r")["participants"], json!([]));
}

#[test]
fn guessing_the_admin_key_gets_429_after_a_burst_even_for_the_right_key() {
    let s = Server::start(&["--api-key", KEY]);
    let c = http();
    let wrong = "x".repeat(40);
    let mut limited = None;
    for i in 0..50 {
        let r = c
            .get(s.url("/v1/rooms"))
            .bearer_auth(&wrong)
            .send()
            .unwrap();
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            limited = Some((i, r));
            break;
        }
        assert_eq!(code(r), (StatusCode::UNAUTHORIZED, "bad_api_key".into()));
    }
    let (i, r) = limited.expect("throttled within 50 wrong keys");
    assert!((5..=20).contains(&i), "after a burst of {i}");
    assert!(retry_after(&r) >= 1);
    assert_eq!(
        code(r),
        (StatusCode::TOO_MANY_REQUESTS, "rate_limited".into())
    );
    // While throttled, the right key learns nothing either.
    let r = c.get(s.url("/v1/rooms")).bearer_auth(KEY).send().unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    // Another address is not throttled.
    let r = client_from(Some([127, 0, 0, 4]))
        .get(s.url("/v1/rooms"))
        .bearer_auth(KEY)
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[test]
fn a_short_api_key_is_refused_at_start_up_and_a_key_file_is_read() {
    let dir = tempdir::TempDir::new("keys");
    let refused = |args: &[&str]| {
        let out = serve_command(&dir.0)
            .args(args)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} starts");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = refused(&["--api-key", "hunter2"]);
    assert!(err.contains("at least 32"), "{err}");
    let short = dir.0.join("short.key");
    std::fs::write(&short, "hunter2\n").unwrap();
    let err = refused(&["--api-key-file", short.to_str().unwrap()]);
    assert!(err.contains("at least 32"), "{err}");
    let err = refused(&["--api-key", KEY, "--api-key-file", short.to_str().unwrap()]);
    assert!(err.contains("not both"), "{err}");

    let good = dir.0.join("good.key");
    std::fs::write(&good, format!("  {KEY}\n")).unwrap();
    let s = Server::start(&["--api-key-file", good.to_str().unwrap()]);
    let r = http()
        .get(s.url("/v1/rooms"))
        .bearer_auth(KEY)
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[test]
fn behind_a_tls_proxy_signal_urls_and_the_page_use_wss_on_the_public_host() {
    let s = Server::start(&[
        "--api-key",
        KEY,
        "--public-url",
        "https://voice.example.com/",
    ]);
    create_room(&s, json!({"name": "r"}));
    let grant = mint(&s, "r", "ann");
    let url = grant["signal_url"].as_str().unwrap();
    assert!(
        url.starts_with("wss://voice.example.com/v1/signal?token="),
        "{url}"
    );
    let page = http().get(s.url("/")).send().unwrap().text().unwrap();
    assert!(
        page.contains(r#"<meta name="sluice-signal-base" content="wss://voice.example.com">"#),
        "the page opens its socket on the public host"
    );
}

#[test]
fn metrics_need_the_api_key_with_metrics_auth() {
    let s = Server::start(&["--api-key", KEY, "--metrics-auth"]);
    assert_eq!(
        code(http().get(s.url("/metrics")).send().unwrap()),
        (StatusCode::UNAUTHORIZED, "missing_api_key".into())
    );
    let r = http()
        .get(s.url("/metrics"))
        .bearer_auth(KEY)
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().unwrap().contains("sluice_rooms"));
    drop(s);
    let open = Server::start(&["--api-key", KEY]);
    assert_eq!(
        http().get(open.url("/metrics")).send().unwrap().status(),
        StatusCode::OK,
        "open by default, for a scraper on a private network"
    );
}

#[test]
fn the_guest_and_admin_throttles_follow_the_configuration_and_are_counted_in_metrics() {
    let s = Server::start(&[
        "--api-key",
        KEY,
        "--guest-join-burst",
        "3",
        "--guest-join-per-min",
        "1",
        "--admin-fail-burst",
        "2",
        "--admin-fail-per-min",
        "1",
    ]);
    create_room(&s, json!({"name": "r"}));
    let c = http();
    for i in 0..3 {
        let r = guest_join(&c, &s, "r", json!({"name": format!("g{i}")}));
        assert_eq!(r.status(), StatusCode::CREATED, "guest {i} of the burst");
    }
    let r = guest_join(&c, &s, "r", json!({"name": "g3"}));
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(
        (50..=60).contains(&retry_after(&r)),
        "one a minute: {}",
        retry_after(&r)
    );
    let admin = client_from(Some([127, 0, 0, 5]));
    let wrong = "y".repeat(40);
    for _ in 0..2 {
        let r = admin
            .get(s.url("/v1/rooms"))
            .bearer_auth(&wrong)
            .send()
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let r = admin
        .get(s.url("/v1/rooms"))
        .bearer_auth(&wrong)
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS, "a burst of 2");
    let m = s.metrics();
    assert!(
        m.contains("sluice_throttled_total{what=\"guest_join\"} 1\n"),
        "{m}"
    );
    assert!(
        m.contains("sluice_throttled_total{what=\"admin_auth\"} 1\n"),
        "{m}"
    );
    // Nonsense is refused at start-up with the setting's name.
    let state = tempdir::TempDir::new("bad-rate");
    let out = serve_command(&state.0)
        .args(["--guest-join-burst", "0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("guest_join_burst must be 1..=1000000"));
}
