//! How long a join takes in a cluster: from `POST /v1/rooms/{room}/participants` through a random
//! node until the client's signaling socket on the room's node says `welcome` (a redirect followed
//! where there is one), with three `sluice serve` nodes (127.0.0.91–.93) and a real
//! `redis-server` on loopback. The first join of a room places it (a claim in Redis); later ones
//! find its owner. Prints p50 / p99 / max for both (the README's "Cluster" table).
//!
//! `cargo bench --bench cluster_join` measures 600 joins (150 rooms of 4); under `cargo test` it
//! runs 12 joins as a smoke test. Needs Debian's `redis-server` (scripts/test installs it).

#![deny(unsafe_code)]

// Shared with the tests; the bench uses part of each.
#[allow(dead_code)]
#[path = "../tests/common/redis.rs"]
mod redis_server;
#[allow(dead_code)]
#[path = "../tests/common/server.rs"]
mod server;

use std::time::{Duration, Instant};

use redis_server::RedisServer;
use serde_json::Value;
use server::Server;

const KEY: &str = "bench-cluster-admin-key-0123456789abcdef";
const SECRET: &str = "bench-cluster-token-secret-0123456789abcdef";
/// Members per room.
const PER_ROOM: usize = 4;

type Socket = tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<std::net::TcpStream>>;

fn node(redis: &RedisServer, i: u8, region: &str) -> Server {
    Server::cluster_node(
        &format!("127.0.0.{}:0", 90 + i),
        &redis.url(),
        &format!("b{i}"),
        region,
        (KEY, SECRET),
    )
}

fn post(http: &reqwest::blocking::Client, url: String, body: Value) -> Value {
    let r = http
        .post(url)
        .bearer_auth(KEY)
        .json(&body)
        .send()
        .expect("REST call");
    assert!(r.status().is_success(), "{}: {:?}", r.status(), r.text());
    r.json().expect("JSON")
}

/// Opens `url` and reads until `welcome`, following a `redirect`; returns the open socket.
fn welcome(mut url: String) -> Socket {
    for _ in 0..3 {
        let (mut ws, _) = tungstenite::connect(url.as_str()).expect("signaling socket");
        loop {
            let msg = ws.read().expect("a message before welcome");
            let Ok(text) = msg.into_text() else { continue };
            let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            match v["type"].as_str() {
                Some("welcome") => return ws,
                Some("redirect") => {
                    url = v["url"].as_str().unwrap_or_default().to_string();
                    break;
                }
                _ => {}
            }
        }
    }
    panic!("redirected more than twice");
}

fn percentiles(mut v: Vec<Duration>) -> (Duration, Duration, Duration) {
    v.sort();
    let at = |q: f64| v[((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1];
    (at(0.5), at(0.99), at(1.0))
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn main() {
    let measuring = std::env::args().any(|a| a == "--bench");
    let rooms = if measuring { 150 } else { 3 };
    let redis = RedisServer::start();
    let nodes: Vec<Server> = [(1, "eu"), (2, "us"), (3, "ap")]
        .into_iter()
        .map(|(i, r)| node(&redis, i, r))
        .collect();
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    // Every node must list the three before the clock starts.
    let deadline = Instant::now() + Duration::from_secs(10);
    for n in &nodes {
        loop {
            let listed = http
                .get(n.url("/v1/nodes"))
                .bearer_auth(KEY)
                .send()
                .ok()
                .and_then(|r| r.json::<Value>().ok())
                .and_then(|v| v["nodes"].as_array().map(Vec::len))
                .unwrap_or(0);
            if listed == 3 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the nodes did not see each other"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let (mut first, mut later) = (Vec::new(), Vec::new());
    for r in 0..rooms {
        let room = format!("bench-{r}");
        post(
            &http,
            nodes[r % 3].url("/v1/rooms"),
            serde_json::json!({"name": room, "mode": "sfu"}),
        );
        let mut open = Vec::new();
        for m in 0..PER_ROOM {
            let via = &nodes[rand::random_range(0..nodes.len())];
            let start = Instant::now();
            let grant = post(
                &http,
                via.url(&format!("/v1/rooms/{room}/participants")),
                serde_json::json!({"name": format!("m{m}")}),
            );
            let ws = welcome(grant["signal_url"].as_str().unwrap_or_default().to_string());
            let took = start.elapsed();
            if m == 0 { &mut first } else { &mut later }.push(took);
            open.push(ws);
        }
        for mut ws in open {
            let _ = ws.close(None);
        }
    }
    let (p50, p99, max) = percentiles(first.clone());
    println!(
        "cluster join → welcome, first of a room (placed): {} joins, p50 {}, p99 {}, max {}",
        first.len(),
        ms(p50),
        ms(p99),
        ms(max)
    );
    let (p50, p99, max) = percentiles(later.clone());
    println!(
        "cluster join → welcome, later joins (owner known): {} joins, p50 {}, p99 {}, max {}",
        later.len(),
        ms(p50),
        ms(p99),
        ms(max)
    );
    let (p50, p99, max) = percentiles(first.into_iter().chain(later).collect());
    println!(
        "cluster join → welcome, all: p50 {}, p99 {}, max {}",
        ms(p50),
        ms(p99),
        ms(max)
    );
}
