//! Slow, large and numerous HTTP clients against the server's limits: `/healthz` must keep answering.
//! And the server's own health: `/healthz` asks every worker and the media thread; SIGTERM reports
//! every member leaving and every room finishing to the webhooks before it exits.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::common::server::Server;

const KEY: &str = "hostile-http-key-0123456789abcdef0123";

fn http() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

fn addr(s: &Server) -> String {
    s.base.trim_start_matches("http://").to_string()
}

/// `GET /healthz` on a fresh connection; returns how long the answer took.
fn healthz(s: &Server) -> Duration {
    let t = Instant::now();
    let r = http()
        .get(s.url("/healthz"))
        .send()
        .expect("healthz answers");
    assert_eq!(r.status(), StatusCode::OK);
    t.elapsed()
}

/// Whether the server closed `c` (EOF or reset) within `within`; what it sent before.
fn closed_within(c: &mut TcpStream, within: Duration) -> (bool, String) {
    c.set_read_timeout(Some(within)).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + within;
    loop {
        match c.read(&mut buf) {
            Ok(0) => return (true, String::from_utf8_lossy(&got).into()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return (true, String::from_utf8_lossy(&got).into())
            }
            Err(_) => return (false, String::from_utf8_lossy(&got).into()),
        }
        if Instant::now() > deadline {
            return (false, String::from_utf8_lossy(&got).into());
        }
    }
}

#[test]
fn fifty_slowloris_connections_do_not_stop_healthz_answering_within_a_second() {
    let s = Server::start(&["--api-key", KEY, "--header-timeout-s", "2"]);
    let mut slow: Vec<TcpStream> = (0..50)
        .map(|_| {
            let mut c = TcpStream::connect(addr(&s)).unwrap();
            c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
                .unwrap();
            c
        })
        .collect();
    let t0 = Instant::now();
    // Each trickles a header byte every 100 ms, never finishing; healthz keeps answering.
    while t0.elapsed() < Duration::from_millis(1500) {
        for c in &mut slow {
            let _ = c.write_all(b"X");
        }
        let took = healthz(&s);
        assert!(took < Duration::from_secs(1), "healthz took {took:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // After the header timeout the server has cut every one of them off.
    for c in &mut slow {
        let _ = c.write_all(b"X");
        let (closed, _) = closed_within(c, Duration::from_secs(3));
        assert!(closed, "a slowloris connection outlived the header timeout");
    }
    assert!(healthz(&s) < Duration::from_secs(1));
}

#[test]
fn connections_over_the_cap_are_closed_at_once_and_idle_ones_free_their_place() {
    let s = Server::start(&[
        "--api-key",
        KEY,
        "--max-connections",
        "8",
        "--header-timeout-s",
        "1",
    ]);
    let hold: Vec<TcpStream> = (0..8)
        .map(|_| TcpStream::connect(addr(&s)).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut over = TcpStream::connect(addr(&s)).unwrap();
    let _ = over.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    let (closed, got) = closed_within(&mut over, Duration::from_millis(800));
    assert!(
        closed && got.is_empty(),
        "the 9th connection was served: {got:?}"
    );
    // The idle 8 send no headers: the header timeout closes them, and healthz answers again.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(healthz(&s) < Duration::from_secs(1));
    drop(hold);
    let m = s.metrics();
    assert!(
        m.contains("sluice_http_connections_refused_total 1\n"),
        "the refusal is counted: {m}"
    );
    assert!(
        m.contains("sluice_http_connections 1\n"),
        "only the scrape's own connection is open: {m}"
    );
}

#[test]
fn a_json_body_over_64_kib_is_refused_413_in_the_json_error_shape() {
    let s = Server::start(&["--api-key", KEY]);
    let big = json!({"name": "x".repeat(100 * 1024)}).to_string();
    let r = http()
        .post(s.url("/v1/rooms"))
        .bearer_auth(KEY)
        .header("content-type", "application/json")
        .body(big.clone())
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let e: Value = r.json().unwrap();
    assert_eq!(e["error"]["code"], "body_too_large", "{e}");
    assert!(e["error"]["message"].as_str().unwrap().contains("64 KiB"));
    // Chunked, without a content-length: the same answer, the body read no further than the cap.
    let mut c = TcpStream::connect(addr(&s)).unwrap();
    let head = format!(
        "POST /v1/rooms HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
    );
    c.write_all(head.as_bytes()).unwrap();
    for chunk in big.as_bytes().chunks(8192) {
        if c.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .is_err()
            || c.write_all(chunk).is_err()
            || c.write_all(b"\r\n").is_err()
        {
            break;
        }
    }
    let _ = c.write_all(b"0\r\n\r\n");
    let (_, got) = closed_within(&mut c, Duration::from_secs(3));
    assert!(got.starts_with("HTTP/1.1 413"), "{got}");
    assert!(got.contains("body_too_large"), "{got}");
}

#[test]
fn a_request_body_trickled_past_the_request_timeout_is_answered_408() {
    let s = Server::start(&["--api-key", KEY, "--request-timeout-s", "1"]);
    let mut c = TcpStream::connect(addr(&s)).unwrap();
    let head = format!(
        "POST /v1/rooms HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{{\"name\""
    );
    c.write_all(head.as_bytes()).unwrap();
    let t = Instant::now();
    c.set_read_timeout(Some(Duration::from_secs(4))).unwrap();
    let mut reader = BufReader::new(c);
    let mut status = String::new();
    reader.read_line(&mut status).unwrap();
    assert!(status.starts_with("HTTP/1.1 408"), "{status}");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    let mut rest = String::new();
    let _ = reader.read_to_string(&mut rest);
    assert!(rest.contains("request_timeout"), "{rest}");
    assert!(healthz(&s) < Duration::from_secs(1));
}

#[test]
fn healthz_answers_only_after_every_worker_and_the_media_thread_did() {
    let s = Server::start(&["--api-key", KEY]);
    let r = http().get(s.url("/healthz")).send().unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().unwrap();
    assert_eq!(body, json!({"status": "ok", "workers": 1, "media": "ok"}));
}

/// `GET /healthz`: status, body, how long it took.
fn health(s: &Server) -> (StatusCode, Value, Duration) {
    let t = Instant::now();
    let r = http()
        .get(s.url("/healthz"))
        .send()
        .expect("healthz answers");
    let status = r.status();
    (status, r.json().unwrap_or(Value::Null), t.elapsed())
}

#[test]
fn a_stuck_worker_or_media_thread_makes_healthz_503_naming_it_and_healthy_again_once_it_goes_on() {
    use crate::common::freeze::Frozen;
    let s = Server::start_with_workers(2, &["--api-key", KEY]);
    assert_eq!(health(&s).0, StatusCode::OK);

    // Worker 1 stops (as a thread stuck in a loop would); worker 0 and the rest go on.
    let frozen = Frozen::thread(s.pid(), "sluice-worker-1");
    let (status, body, took) = health(&s);
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "unhealthy", "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("worker 1 did not answer"), "{body}");
    assert!(!message.contains("worker 0"), "{body}");
    assert!(took < Duration::from_secs(3), "answered in {took:?}");
    drop(frozen);
    assert_eq!(health(&s).0, StatusCode::OK, "healthy again");

    // The media thread stops: alive, but no longer going round its loop.
    let frozen = Frozen::thread(s.pid(), "sluice-media");
    std::thread::sleep(Duration::from_millis(1200));
    let (status, body, _) = health(&s);
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("the media thread has not gone round its loop for"),
        "{body}"
    );
    drop(frozen);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(health(&s).0, StatusCode::OK, "healthy again");
    assert!(s.terminate().success());
}

/// One received webhook body, from a receiver that answers 200 to everything.
fn receiver() -> (String, mpsc::Receiver<Value>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut out = stream;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let mut len = 0;
                    loop {
                        let mut h = String::new();
                        if reader.read_line(&mut h).unwrap_or(0) == 0 {
                            return;
                        }
                        let h = h.trim_end().to_ascii_lowercase();
                        if h.is_empty() {
                            break;
                        }
                        if let Some(v) = h.strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0; len];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    let _ = out.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
                    if let Ok(v) = serde_json::from_slice(&body) {
                        let _ = tx.send(v);
                    }
                }
            });
        }
    });
    (url, rx)
}

#[test]
fn sigterm_reports_every_member_leaving_and_every_room_finishing_then_exits_0() {
    let (hook, events) = receiver();
    let s = Server::start(&[
        "--api-key",
        KEY,
        "--webhook",
        &hook,
        "--webhook-secret",
        "s",
    ]);
    for room in ["full", "empty"] {
        let r = http()
            .post(s.url("/v1/rooms"))
            .bearer_auth(KEY)
            .json(&json!({"name": room}))
            .send()
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
    }
    let g: Value = http()
        .post(s.url("/v1/rooms/full/participants"))
        .bearer_auth(KEY)
        .json(&json!({"name": "ada"}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let (mut ws, _) = tungstenite::connect(g["signal_url"].as_str().unwrap()).unwrap();
    ws.read().expect("welcome");
    // Wait for the joins to be reported, then stop.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut seen = Vec::new();
    while !seen
        .iter()
        .any(|e: &Value| e["event"] == "participant_joined")
    {
        let left = deadline.saturating_duration_since(Instant::now());
        seen.push(events.recv_timeout(left).expect("participant_joined"));
    }
    assert!(s.terminate().success(), "exit 0");
    let after: Vec<Value> = events.try_iter().collect();
    let left: Vec<_> = after
        .iter()
        .filter(|e| e["event"] == "participant_left")
        .collect();
    assert_eq!(left.len(), 1, "{after:?}");
    assert_eq!(left[0]["participant"], g["id"]);
    assert_eq!(left[0]["reason"], "server_shutdown");
    let mut finished: Vec<&str> = after
        .iter()
        .filter(|e| e["event"] == "room_finished")
        .map(|e| e["room"].as_str().unwrap())
        .collect();
    finished.sort();
    assert_eq!(finished, ["empty", "full"], "{after:?}");
}
