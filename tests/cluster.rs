//! A cluster of real `sluice serve` processes on one machine (each on its own loopback address,
//! 127.0.0.11, .12, .13) coordinated through a real `redis-server`: every node lists every live
//! node with its region, a node killed with SIGKILL drops out by itself within the record's expiry,
//! one stopped with SIGTERM leaves at once, and a Redis outage makes nobody unhealthy.

#![deny(unsafe_code)]

mod common;

use std::time::{Duration, Instant};

use common::redis::RedisServer;
use common::server::Server;
use reqwest::blocking::Client;
use reqwest::StatusCode;
use serde_json::Value;

const KEY: &str = "cluster-test-admin-key-0123456789abcdef";
const SECRET: &str = "cluster-test-token-secret-0123456789abcdef";

fn http() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("http client")
}

fn node(redis: &RedisServer, i: u8, region: &str) -> Server {
    Server::cluster_node(
        &format!("127.0.0.{}:0", 10 + i),
        &redis.url(),
        &format!("n{i}"),
        region,
        (KEY, SECRET),
    )
}

/// `GET /v1/nodes` on `s`: (status, body).
fn nodes(s: &Server) -> (StatusCode, Value) {
    let r = http()
        .get(s.url("/v1/nodes"))
        .bearer_auth(KEY)
        .send()
        .expect("GET /v1/nodes");
    (r.status(), r.json().unwrap_or(Value::Null))
}

/// The ids `s` lists, in order (empty while it answers an error).
fn ids(s: &Server) -> Vec<String> {
    let (status, body) = nodes(s);
    if status != StatusCode::OK {
        return Vec::new();
    }
    body["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| n["id"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Waits until `s` lists exactly `want`; how long that took.
fn wait_ids(s: &Server, want: &[&str], within: Duration) -> Duration {
    let t = Instant::now();
    loop {
        let got = ids(s);
        if got == want {
            return t.elapsed();
        }
        assert!(t.elapsed() < within, "listed {got:?}, want {want:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn every_node_lists_the_live_nodes_and_a_killed_one_drops_out_within_the_record_expiry() {
    let redis = RedisServer::start();
    let mut servers = vec![
        node(&redis, 1, "eu"),
        node(&redis, 2, "us"),
        node(&redis, 3, "ap"),
    ];
    for s in &servers {
        wait_ids(s, &["n1", "n2", "n3"], Duration::from_secs(5));
    }
    let (_, body) = nodes(&servers[1]);
    let n2 = &body["nodes"][1];
    assert_eq!(n2["region"], "us", "{body}");
    assert_eq!(n2["state"], "serving", "{body}");
    assert_eq!(
        n2["url"], servers[1].base,
        "the default node URL is its HTTP address"
    );
    assert!(n2["load"]["members"].is_u64(), "{body}");

    // SIGKILL: no goodbye; the record expires (3 s) and the others stop listing it.
    let killed = servers.remove(2);
    let t = Instant::now();
    killed.kill();
    wait_ids(&servers[0], &["n1", "n2"], Duration::from_secs(6));
    let gone = t.elapsed();
    println!(
        "a killed node dropped out of the list after {} ms",
        gone.as_millis()
    );
    assert!(gone <= Duration::from_millis(4500), "{gone:?}");

    // SIGTERM: the node takes its record out on the way.
    let stopped = servers.remove(1);
    assert!(stopped.terminate().success());
    let left = wait_ids(&servers[0], &["n1"], Duration::from_secs(2));
    assert!(left < Duration::from_millis(1500), "left after {left:?}");
}

#[test]
fn a_redis_outage_keeps_nodes_healthy_answers_503_cluster_unavailable_and_heals_by_itself() {
    let mut redis = RedisServer::start();
    let a = node(&redis, 4, "eu");
    let b = node(&redis, 5, "eu");
    wait_ids(&a, &["n4", "n5"], Duration::from_secs(5));
    redis.kill();
    let (status, body) = nodes(&a);
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "cluster_unavailable", "{body}");
    for s in [&a, &b] {
        let r = http().get(s.url("/healthz")).send().expect("healthz");
        assert_eq!(r.status(), StatusCode::OK, "Redis away is not a sick node");
    }
    // Redis comes back empty: both nodes write their records again within a refresh or two.
    redis.restart();
    let healed = wait_ids(&b, &["n4", "n5"], Duration::from_secs(5));
    println!(
        "both nodes were listed again {} ms after Redis came back",
        healed.as_millis()
    );
}

#[test]
fn a_single_node_without_redis_lists_itself() {
    let s = Server::start(&["--api-key", KEY, "--region", "eu", "--node-id", "solo"]);
    let (status, body) = nodes(&s);
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["nodes"].as_array().map(Vec::len), Some(1), "{body}");
    assert_eq!(body["nodes"][0]["id"], "solo");
    assert_eq!(body["nodes"][0]["region"], "eu");
    let r = http().get(s.url("/v1/nodes")).send().expect("GET");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "admin only");
}

#[test]
fn room_events_are_appended_to_the_clusters_redis_stream() {
    let redis = RedisServer::start();
    let s = node(&redis, 6, "eu");
    let c = http();
    let ok = |r: reqwest::blocking::Response| assert!(r.status().is_success(), "{:?}", r.text());
    ok(c.post(s.url("/v1/rooms"))
        .bearer_auth(KEY)
        .json(&serde_json::json!({"name": "logged"}))
        .send()
        .unwrap());
    ok(c.delete(s.url("/v1/rooms/logged"))
        .bearer_auth(KEY)
        .send()
        .unwrap());
    let mut con = redis::Client::open(redis.url())
        .and_then(|c| c.get_connection())
        .expect("redis");
    let deadline = Instant::now() + Duration::from_secs(3);
    let entries = loop {
        let entries: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
            .arg("sluice:events")
            .arg("-")
            .arg("+")
            .query(&mut con)
            .expect("XRANGE");
        if entries.len() >= 2 || Instant::now() > deadline {
            break entries;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let field = |e: &(String, Vec<(String, String)>), k: &str| {
        e.1.iter()
            .find(|(f, _)| f == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let events: Vec<String> = entries.iter().map(|e| field(e, "event")).collect();
    assert_eq!(events, ["room_started", "room_finished"], "{entries:?}");
    assert!(entries
        .iter()
        .all(|e| field(e, "node") == "n6" && field(e, "room") == "logged"));
    let body: Value = serde_json::from_str(&field(&entries[0], "body")).expect("JSON body");
    assert_eq!(body["event"], "room_started");
    let m = s.metrics();
    assert!(
        m.contains("sluice_cluster_events_total{outcome=\"appended\"} 2"),
        "{m}"
    );
}

#[test]
fn a_node_is_drained_through_any_node_and_the_cluster_sees_it() {
    let redis = RedisServer::start();
    let a = node(&redis, 7, "eu");
    let b = node(&redis, 8, "eu");
    wait_ids(&a, &["n7", "n8"], Duration::from_secs(5));
    let c = http();
    let drain = |s: &Server, id: &str, on: bool| {
        let url = s.url(&format!("/v1/nodes/{id}/drain"));
        let req = if on { c.post(url) } else { c.delete(url) };
        let r = req.bearer_auth(KEY).send().expect("drain");
        (r.status(), r.json::<Value>().unwrap_or(Value::Null))
    };
    let state_of = |s: &Server, id: &str| {
        nodes(s).1["nodes"]
            .as_array()
            .and_then(|ns| ns.iter().find(|n| n["id"] == id).cloned())
            .map(|n| n["state"].clone())
    };
    // Through a: a's request reaches b over b's control channel, answered once b's record shows it.
    let t = Instant::now();
    let (status, body) = drain(&a, "n8", true);
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["state"], "draining", "{body}");
    println!(
        "a drain asked through another node showed in {} ms",
        t.elapsed().as_millis()
    );
    assert_eq!(state_of(&b, "n8"), Some("draining".into()));
    assert_eq!(state_of(&b, "n7"), Some("serving".into()));
    let (status, body) = drain(&a, "n8", false);
    assert_eq!(
        (status, body["state"].clone()),
        (StatusCode::OK, "serving".into())
    );
    // A node drains itself directly.
    let (status, body) = drain(&b, "n8", true);
    assert_eq!(
        (status, body["state"].clone()),
        (StatusCode::OK, "draining".into())
    );
    assert_eq!(state_of(&a, "n8"), Some("draining".into()));
    let (status, body) = drain(&a, "nobody", true);
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"]["code"], "unknown_node");
}

/// A REST call on `s`: (status, body).
fn call(s: &Server, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    let c = http();
    let url = s.url(path);
    let req = match method {
        "POST" => c.post(url),
        "DELETE" => c.delete(url),
        _ => c.get(url),
    };
    let req = match body {
        Some(b) => req.json(&b),
        None => req,
    };
    let r = req.bearer_auth(KEY).send().expect("REST call");
    (r.status(), r.json().unwrap_or(Value::Null))
}

/// Three nodes in `regions`, numbered from `first`, listing each other.
fn three_nodes(redis: &RedisServer, first: u8, regions: [&str; 3]) -> Vec<Server> {
    let servers: Vec<Server> = (0..3)
        .map(|i| node(redis, first + i, regions[usize::from(i)]))
        .collect();
    let want: Vec<String> = (0..3).map(|i| format!("n{}", first + i)).collect();
    let want: Vec<&str> = want.iter().map(String::as_str).collect();
    for s in &servers {
        wait_ids(s, &want, Duration::from_secs(5));
    }
    servers
}

#[test]
fn any_node_answers_for_every_room_and_a_room_is_placed_in_its_first_clients_region() {
    let redis = RedisServer::start();
    let s = three_nodes(&redis, 21, ["eu", "us", "ap"]);
    let (status, body) = call(
        &s[0],
        "POST",
        "/v1/rooms",
        Some(serde_json::json!({"name": "shared"})),
    );
    assert_eq!(status, StatusCode::CREATED, "{body}");
    for n in &s {
        let (status, body) = call(n, "GET", "/v1/rooms/shared", None);
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(
            body.get("node").is_none(),
            "not placed before a join: {body}"
        );
        let (_, list) = call(n, "GET", "/v1/rooms", None);
        assert_eq!(list["rooms"][0]["name"], "shared", "{list}");
    }
    let (status, body) = call(
        &s[2],
        "POST",
        "/v1/rooms",
        Some(serde_json::json!({"name": "shared"})),
    );
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (StatusCode::CONFLICT, "duplicate_name".into())
    );

    // A `us` client joins through the eu node: the room goes to the us node, and its signal_url
    // points there.
    let (status, grant) = call(
        &s[0],
        "POST",
        "/v1/rooms/shared/participants",
        Some(serde_json::json!({"name": "alice", "region": "us"})),
    );
    assert_eq!(status, StatusCode::CREATED, "{grant}");
    let us_ws = s[1].base.replacen("http", "ws", 1);
    assert!(
        grant["signal_url"]
            .as_str()
            .unwrap_or_default()
            .starts_with(&format!("{us_ws}/v1/signal?token=")),
        "{grant}"
    );
    let (_, room) = call(&s[2], "GET", "/v1/rooms/shared", None);
    assert_eq!(
        (room["node"].clone(), room["epoch"].clone()),
        ("n22".into(), 1.into()),
        "{room}"
    );
    assert_eq!(room["participants"][0]["name"], "alice", "{room}");

    // The same name through two nodes at once: one wins, one is told it is taken.
    let racers: Vec<_> = [0usize, 2]
        .into_iter()
        .map(|i| {
            let base = s[i].base.clone();
            std::thread::spawn(move || {
                http()
                    .post(format!("{base}/v1/rooms/shared/participants"))
                    .bearer_auth(KEY)
                    .json(&serde_json::json!({"name": "bob"}))
                    .send()
                    .expect("POST")
                    .status()
            })
        })
        .collect();
    let mut got: Vec<u16> = racers
        .into_iter()
        .map(|t| t.join().expect("thread").as_u16())
        .collect();
    got.sort();
    assert_eq!(got, [201, 409]);
    let (_, room) = call(&s[1], "GET", "/v1/rooms/shared", None);
    assert_eq!(
        room["participants"].as_array().map(Vec::len),
        Some(2),
        "{room}"
    );

    // A token minted on one node is good on every node (a shared secret): the eu node redirects it.
    let token = grant["token"].as_str().unwrap_or_default();
    let (mut ws, _) = tungstenite::connect(format!(
        "{}/v1/signal?token={token}",
        s[0].base.replacen("http", "ws", 1)
    ))
    .expect("the eu node accepts the socket");
    let msg: Value =
        serde_json::from_str(&ws.read().expect("a message").into_text().expect("text"))
            .expect("JSON");
    assert_eq!(msg["type"], "redirect", "{msg}");
    assert_eq!(
        msg["url"],
        format!("{us_ws}/v1/signal?token={token}"),
        "{msg}"
    );
}

/// Median and largest of `gaps`.
/// The configuration of `tests/clients/aiortc_cluster.py` for three nodes in eu, us and ap
/// numbered from `first`, room `room`, with `extra`'s fields (what to do to the owner).
fn clients_cfg(servers: &[Server], first: u8, room: &str, extra: Value) -> Value {
    let mut cfg = serde_json::json!({
        "nodes": servers.iter().zip(["eu", "us", "ap"]).zip(first..).map(|((s, region), i)| serde_json::json!({
            "base": s.base, "pid": s.pid(), "region": region, "id": format!("n{i}"),
        })).collect::<Vec<_>>(),
        "key": KEY,
        "room": room,
    });
    if let (Some(cfg), Some(extra)) = (cfg.as_object_mut(), extra.as_object()) {
        cfg.extend(extra.clone());
    }
    cfg
}

/// `s`'s `/metrics` text.
fn metrics_of(s: &Server) -> String {
    http()
        .get(s.url("/metrics"))
        .send()
        .and_then(|r| r.text())
        .expect("metrics")
}

/// The gaps per member the script measured (`out[what]`), as numbers.
fn gaps_of(out: &Value, what: &str) -> Vec<f64> {
    out[what]
        .as_object()
        .unwrap_or_else(|| panic!("{what} in {out}"))
        .values()
        .map(|g| g.as_f64().unwrap_or(f64::INFINITY))
        .collect()
}

fn median_max(mut gaps: Vec<f64>) -> (f64, f64) {
    gaps.sort_by(f64::total_cmp);
    (gaps[gaps.len() / 2], gaps[gaps.len() - 1])
}

#[test]
fn aiortc_clients_joining_through_three_nodes_meet_on_the_owner_and_are_back_within_seconds_after_it_is_killed(
) {
    let redis = RedisServer::start();
    let servers = three_nodes(&redis, 31, ["eu", "us", "ap"]);
    let cfg = clients_cfg(&servers, 31, "failover", serde_json::json!({"kill": true}));
    let out = common::clients::run_client_script("aiortc_cluster.py", &[&cfg.to_string()]);
    println!("{out}");
    assert_eq!(out["ready"], true, "every member hears every other: {out}");
    assert_eq!(
        out["before"]["node"], "n32",
        "placed in the first client's region (us): {out}"
    );
    let redirects = out["redirects"].as_object().expect("redirects");
    let followed = redirects
        .values()
        .filter(|r| r.as_array().is_some_and(|r| !r.is_empty()))
        .count();
    assert_eq!(
        followed, 2,
        "the members that entered through eu and ap were redirected: {out}"
    );
    assert_eq!(
        out["back"], true,
        "every member hears every other after the kill: {out}"
    );
    let after = &out["after"];
    assert_ne!(after["node"], "n32", "{out}");
    assert_eq!(after["epoch"], 2, "a new owner, the next epoch: {out}");
    let gaps = gaps_of(&out, "gaps");
    let (median, max) = median_max(gaps.clone());
    println!("failover: audio back {median:.2} s after the kill for the median client, {max:.2} s for the last ({gaps:?})");
    assert!(median <= 3.0, "median gap {median:.2} s > 3 s: {out}");
    assert!(max <= 5.0, "last gap {max:.2} s > 5 s: {out}");
    drop(servers);
}

#[test]
fn an_owner_paused_past_its_expiry_loses_the_room_and_fences_itself_when_resumed_deleting_nothing()
{
    let redis = RedisServer::start();
    let servers = three_nodes(&redis, 61, ["eu", "us", "ap"]);
    let cfg = clients_cfg(&servers, 61, "paused", serde_json::json!({"stop": 6.0}));
    let out = common::clients::run_client_script("aiortc_cluster.py", &[&cfg.to_string()]);
    println!("{out}");
    assert_eq!(out["ready"], true, "every member hears every other: {out}");
    assert_eq!(out["before"]["node"], "n62", "{out}");
    assert_eq!(
        out["back"], true,
        "every member hears every other while the owner is paused: {out}"
    );
    let after = &out["after"];
    assert_ne!(after["node"], "n62", "{out}");
    assert_eq!(after["epoch"], 2, "{out}");
    let gaps = gaps_of(&out, "gaps");
    let (median, max) = median_max(gaps.clone());
    println!("pause: audio back {median:.2} s after SIGSTOP for the median client, {max:.2} s for the last ({gaps:?})");
    assert!(
        max <= 12.0,
        "a paused owner is noticed by ping timeouts and the record's expiry: {out}"
    );

    // Resumed: it found it lost the room and stopped serving it (its record is back).
    let resumed = &out["resumed"];
    assert_eq!(
        resumed["room"]["node"], after["node"],
        "the old owner sees the new one: {out}"
    );
    for (id, n) in resumed["new_welcomes"].as_object().expect("welcomes") {
        assert_eq!(
            n, 0,
            "member {id} was disturbed when the old owner came back: {out}"
        );
    }
    let silences = gaps_of(resumed, "silence");
    let (_, longest) = median_max(silences);
    println!("after SIGCONT: longest silence of any member {longest:.2} s");
    assert!(
        longest < 1.0,
        "audio kept flowing when the old owner came back: {out}"
    );
    let old = &servers[1];
    let metrics = || {
        let m = metrics_of(old);
        (
            common::clients::metric_sum(&m, "sluice_rooms ", ""),
            common::clients::metric_sum(&m, "sluice_media_sessions ", ""),
            common::clients::metric_sum(&m, "sluice_packets_out_total", ""),
        )
    };
    let (rooms, sessions, sent) = metrics();
    assert_eq!(
        (rooms, sessions),
        (0, 0),
        "the old owner serves nothing of the room"
    );
    let m = metrics_of(old);
    assert_eq!(
        common::clients::metric_sum(&m, "sluice_cluster_rooms_total", "fenced"),
        1,
        "{m}"
    );
    assert_eq!(
        common::clients::metric_sum(&m, "sluice_cluster_rooms_served ", ""),
        0
    );
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        metrics().2,
        sent,
        "nobody hears the room twice: the old owner forwards nothing"
    );
    // Nothing was deleted: the room and its three members are in the store, through any node
    // (read while the clients were still there).
    // Every node also shows who is connected (the owner's live summary, a refresh old at most).
    for room in resumed["rooms"].as_array().expect("rooms") {
        assert_eq!(room["node"], after["node"], "{out}");
        assert_eq!(room["connected"], 3, "{out}");
        assert_eq!(
            room["participants"].as_array().map(Vec::len),
            Some(3),
            "{out}"
        );
    }
    drop(servers);
}

#[test]
fn a_drained_node_and_one_stopped_with_sigterm_move_their_room_without_a_gap_and_the_stopped_one_exits_0(
) {
    let redis = RedisServer::start();
    let mut servers = three_nodes(&redis, 81, ["eu", "us", "ap"]);
    let cfg = clients_cfg(&servers, 81, "drained", serde_json::json!({"drain": true}));
    let out = common::clients::run_client_script("aiortc_cluster.py", &[&cfg.to_string()]);
    println!("{out}");
    assert_eq!(out["ready"], true, "every member hears every other: {out}");
    let drains = out["drains"].as_array().expect("two drains");
    assert_eq!(drains.len(), 2, "{out}");
    let mut epoch = out["before"]["epoch"].as_u64().expect("epoch");
    for d in drains {
        let how = d["how"].as_str().unwrap_or_default();
        assert_eq!(
            d["back"], true,
            "{how}: every member hears every other on the new node: {out}"
        );
        assert_ne!(d["room"]["node"], d["from"], "{how}: the room moved: {out}");
        epoch += 1;
        assert_eq!(d["room"]["epoch"], epoch, "{how}: {out}");
        assert_eq!(
            d["room"]["participants"].as_array().map(Vec::len),
            Some(3),
            "{how}: nobody was removed by the move: {out}"
        );
        for (id, n) in d["new_welcomes"].as_object().expect("welcomes") {
            assert_eq!(n, 1, "{how}: member {id} was redirected once: {out}");
        }
        let (_, longest) = median_max(gaps_of(d, "silence"));
        println!("{how}: longest silence of any member while the room moved: {longest:.2} s");
        assert!(
            longest < 1.0,
            "{how}: no gap longer than the P2P/SFU switch allows (1 s): {out}"
        );
    }
    // The node stopped with SIGTERM drained, then exited 0.
    let stopped = drains[1]["from"].as_str().unwrap_or_default();
    let i = (81..)
        .take(3)
        .position(|i| stopped == format!("n{i}"))
        .expect("the stopped node");
    let status = servers.remove(i).terminate();
    assert!(status.success(), "exit after the drain: {status:?}");
    let drained = drains[0]["from"].as_str().unwrap_or_default();
    let (status, listed) = nodes(&servers[0]);
    assert_eq!(status, StatusCode::OK);
    let state = listed["nodes"]
        .as_array()
        .and_then(|n| n.iter().find(|n| n["id"] == drained))
        .map(|n| n["state"].clone());
    assert_eq!(state, Some(Value::from("draining")), "{listed}");
    drop(servers);
}

#[test]
fn redis_killed_and_restarted_while_a_room_talks_never_stops_its_audio_and_placement_resumes() {
    let mut redis = RedisServer::start();
    let servers = three_nodes(&redis, 71, ["eu", "us", "ap"]);
    let marker = std::env::temp_dir().join(format!("sluice-outage-{}", std::process::id()));
    let marker = marker.to_string_lossy().to_string();
    let cfg = clients_cfg(
        &servers,
        71,
        "outage",
        serde_json::json!({"outage": marker}),
    );
    let script = std::thread::spawn(move || {
        common::clients::run_client_script("aiortc_cluster.py", &[&cfg.to_string()])
    });
    let ready = format!("{marker}.ready");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::path::Path::new(&ready).exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    if std::path::Path::new(&ready).exists() {
        redis.kill();
        std::thread::sleep(Duration::from_secs(3));
        let (status, body) = call(
            &servers[0],
            "POST",
            "/v1/rooms",
            Some(serde_json::json!({"name": "during"})),
        );
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(body["error"]["code"], "cluster_unavailable", "{body}");
        redis.restart();
        wait_ids(&servers[0], &["n71", "n72", "n73"], Duration::from_secs(5));
        // A refresh more, for the owner to put its room back.
        std::thread::sleep(Duration::from_millis(1500));
        std::fs::write(format!("{marker}.healed"), "").expect("marker");
    }
    let out = script.join().expect("the script ran");
    let _ = std::fs::remove_file(&ready);
    let _ = std::fs::remove_file(format!("{marker}.healed"));
    println!("{out}");
    assert_eq!(out["ready"], true, "every member hears every other: {out}");
    let o = &out["outage"];
    assert_eq!(o["healed"], true, "{out}");
    for (id, n) in o["new_welcomes"].as_object().expect("welcomes") {
        assert_eq!(n, 0, "member {id} reconnected during the outage: {out}");
    }
    let (_, longest) = median_max(gaps_of(o, "silence"));
    println!("Redis outage of 3 s: longest silence of any member {longest:.2} s");
    assert!(longest < 1.0, "audio never stopped: {out}");
    // Reconciled: every node sees the room again with its owner, epoch and members.
    let owner = &out["before"]["node"];
    for room in o["rooms"].as_array().expect("rooms") {
        assert_eq!(&room["node"], owner, "{out}");
        assert_eq!(room["epoch"], out["before"]["epoch"], "{out}");
        assert_eq!(
            room["participants"].as_array().map(Vec::len),
            Some(3),
            "{out}"
        );
    }
    let owner_ws = servers
        .iter()
        .zip(71..)
        .find(|(_, i)| *owner == format!("n{i}"))
        .map(|(s, _)| s.base.replacen("http", "ws", 1))
        .expect("owner");
    assert!(
        o["late"]["signal_url"]
            .as_str()
            .is_some_and(|u| u.starts_with(&owner_ws)),
        "a join after the outage is sent to the owner: {out}"
    );
    assert!(o["new_join"]["signal_url"].is_string(), "{out}");
    // /metrics: Redis is up again, three nodes, and the owner put one room back.
    let mut restored = 0;
    for s in &servers {
        let m = metrics_of(s);
        assert_eq!(
            common::clients::metric_sum(&m, "sluice_cluster_store_up ", ""),
            1,
            "{m}"
        );
        assert_eq!(
            common::clients::metric_sum(&m, "sluice_cluster_nodes ", ""),
            3,
            "{m}"
        );
        restored += common::clients::metric_sum(&m, "sluice_cluster_rooms_total", "restored");
    }
    assert_eq!(restored, 1, "the owner put its room back");
    drop(servers);
}

type Socket = tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<std::net::TcpStream>>;

/// Reads `ws` until a message of type `kind` (skipping others); panics after 5 s.
fn next_of(ws: &mut Socket, kind: &str) -> Value {
    next_of_any(ws, &[kind])
}

/// Creates an SFU room `name` through `s`.
fn create_sfu_room(s: &Server, name: &str) {
    let (status, body) = call(
        s,
        "POST",
        "/v1/rooms",
        Some(serde_json::json!({"name": name, "mode": "sfu"})),
    );
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

/// A new participant's grant (`id`, `token`, `signal_url`) from `POST …/participants` through `s`.
fn grant(s: &Server, room: &str, name: &str) -> Value {
    let (status, grant) = call(
        s,
        "POST",
        &format!("/v1/rooms/{room}/participants"),
        Some(serde_json::json!({"name": name})),
    );
    assert_eq!(status, StatusCode::CREATED, "{grant}");
    grant
}

#[test]
fn kick_mute_and_delete_through_another_node_reach_the_owner_and_answer_once_done() {
    let redis = RedisServer::start();
    let s = three_nodes(&redis, 41, ["eu", "eu", "eu"]);
    create_sfu_room(&s[1], "ctl");
    let join = |name: &str| {
        let grant = grant(&s[0], "ctl", name);
        let (ws, _) =
            tungstenite::connect(grant["signal_url"].as_str().unwrap_or_default()).expect("socket");
        (grant["id"].as_str().unwrap_or_default().to_string(), ws)
    };
    let (alice, mut a) = join("alice");
    let (bob, mut b) = join("bob");
    next_of(&mut a, "welcome");
    next_of(&mut b, "welcome");
    let (_, room) = call(&s[0], "GET", "/v1/rooms/ctl", None);
    let owner = room["node"].as_str().unwrap_or_default().to_string();
    let other = s
        .iter()
        .zip(["n41", "n42", "n43"])
        .find(|(_, id)| *id != owner)
        .map(|(srv, _)| srv)
        .expect("a node that does not own the room");

    // Mute through a node that does not serve the room: the owner mutes, then the call answers.
    let (status, body) = call(
        other,
        "POST",
        &format!("/v1/rooms/ctl/participants/{bob}/mute"),
        Some(serde_json::json!({"muted": true})),
    );
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let muted = next_of(&mut b, "peer_muted");
    assert_eq!(
        (muted["participant"].as_str(), muted["muted"].as_bool()),
        (Some(bob.as_str()), Some(true))
    );
    let (status, body) = call(
        other,
        "POST",
        "/v1/rooms/ctl/participants/nobody/mute",
        Some(serde_json::json!({"muted": true})),
    );
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (StatusCode::NOT_FOUND, "unknown_participant".into()),
        "the owner's error comes back"
    );

    // Kick: bob's socket on the owner gets bye, and he is gone from the room on every node.
    let t = Instant::now();
    let (status, body) = call(
        other,
        "DELETE",
        &format!("/v1/rooms/ctl/participants/{bob}"),
        None,
    );
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    println!(
        "a kick through another node answered in {} ms",
        t.elapsed().as_millis()
    );
    assert_eq!(next_of(&mut b, "bye")["reason"], "kicked");
    assert_eq!(next_of(&mut a, "peer_left")["participant"], bob.as_str());
    let (_, room) = call(&s[2], "GET", "/v1/rooms/ctl", None);
    let names: Vec<&str> = room["participants"]
        .as_array()
        .expect("participants")
        .iter()
        .filter_map(|p| p["id"].as_str())
        .collect();
    assert_eq!(names, [alice.as_str()], "{room}");

    // Delete: alice gets bye room_closed; the room is gone everywhere.
    let (status, body) = call(other, "DELETE", "/v1/rooms/ctl", None);
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(next_of(&mut a, "bye")["reason"], "room_closed");
    for n in &s {
        let (status, _) = call(n, "GET", "/v1/rooms/ctl", None);
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "deleted everywhere once the call answered"
        );
    }
}

/// Opens the signaling socket of `signal_url`'s participant on `node` instead, following a
/// `redirect` to the room's node; returns the socket and its `welcome`.
fn connect_via(node: &Server, signal_url: &str) -> (Socket, Value) {
    let query = signal_url
        .split_once("/v1/signal")
        .map(|(_, q)| q)
        .unwrap_or_default();
    let mut url = format!("{}/v1/signal{query}", node.base.replacen("http", "ws", 1));
    for _ in 0..3 {
        let (mut ws, _) = tungstenite::connect(url.as_str()).expect("socket");
        let first = next_of_any(&mut ws, &["welcome", "redirect"]);
        if first["type"] == "welcome" {
            return (ws, first);
        }
        url = first["url"].as_str().unwrap_or_default().to_string();
    }
    panic!("no welcome after three redirects");
}

/// Reads `ws` until a message of one of `kinds`; panics after 5 s.
fn next_of_any(ws: &mut Socket, kinds: &[&str]) -> Value {
    if let tungstenite::stream::MaybeTlsStream::Plain(tcp) = ws.get_ref() {
        tcp.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
    }
    loop {
        let msg = ws
            .read()
            .unwrap_or_else(|e| panic!("waiting for {kinds:?}: {e}"));
        let Ok(text) = msg.into_text() else { continue };
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if kinds.iter().any(|k| v["type"] == *k) {
            return v;
        }
    }
}

fn server_muted(s: &Server, room: &str, id: &str) -> Value {
    let (_, r) = call(s, "GET", &format!("/v1/rooms/{room}"), None);
    r["participants"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["id"] == id))
        .map(|p| p["server_muted"].clone())
        .unwrap_or(Value::Null)
}

#[test]
fn a_server_mute_holds_on_the_node_that_serves_the_member_after_its_owner_is_killed() {
    let redis = RedisServer::start();
    let mut s = three_nodes(&redis, 101, ["eu", "eu", "eu"]);
    create_sfu_room(&s[0], "hush");
    let grant = |name: &str| {
        let grant = grant(&s[0], "hush", name);
        (
            grant["id"].as_str().unwrap_or_default().to_string(),
            grant["signal_url"].as_str().unwrap_or_default().to_string(),
        )
    };
    let ((alice, alice_url), (bob, bob_url)) = (grant("alice"), grant("bob"));
    let (a, _) = connect_via(&s[1], &alice_url);
    let (mut b, _) = connect_via(&s[2], &bob_url);
    let (_, room) = call(&s[0], "GET", "/v1/rooms/hush", None);
    let owner = room["node"].as_str().unwrap_or_default().to_string();
    let owner_at = ["n101", "n102", "n103"]
        .iter()
        .position(|id| *id == owner)
        .expect("an owner");

    // Muted through a node that does not serve the room: every node's view says so, and bob
    // cannot lift it himself.
    let other = (owner_at + 1) % 3;
    let (status, body) = call(
        &s[other],
        "POST",
        &format!("/v1/rooms/hush/participants/{bob}/mute"),
        Some(serde_json::json!({"muted": true})),
    );
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(next_of(&mut b, "peer_muted")["muted"], true);
    for n in &s {
        assert_eq!(server_muted(n, "hush", &bob), true, "{}", n.base);
        assert_eq!(server_muted(n, "hush", &alice), Value::Null, "{}", n.base);
    }
    b.send(tungstenite::Message::Text(
        r#"{"type":"mute","muted":false}"#.into(),
    ))
    .expect("send");
    assert_eq!(next_of(&mut b, "error")["code"], "server_muted");

    // The owner dies: both reconnect through a node still alive; the room's new node serves bob
    // muted (his welcome says so, and alice's lists him muted).
    drop((a, b));
    s.remove(owner_at).kill();
    let t = Instant::now();
    let (mut b, welcome) = connect_via(&s[0], &bob_url);
    assert_eq!(welcome["participant"]["muted"], true, "{welcome}");
    let (_a, welcome) = connect_via(&s[1], &alice_url);
    let listed = welcome["peers"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["id"] == bob.as_str()))
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(listed["muted"], true, "{welcome}");
    println!(
        "both members back on the new node {:.2} s after the kill, bob still muted",
        t.elapsed().as_secs_f64()
    );
    b.send(tungstenite::Message::Text(
        r#"{"type":"mute","muted":false}"#.into(),
    ))
    .expect("send");
    assert_eq!(next_of(&mut b, "error")["code"], "server_muted");

    // The server lifts it.
    let (status, body) = call(
        &s[0],
        "POST",
        &format!("/v1/rooms/hush/participants/{bob}/mute"),
        Some(serde_json::json!({"muted": false})),
    );
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(next_of(&mut b, "peer_muted")["muted"], false);
    assert_eq!(server_muted(&s[1], "hush", &bob), Value::Null);
}

#[test]
fn three_hundred_rooms_created_through_random_nodes_spread_within_one_and_a_half_times() {
    let redis = RedisServer::start();
    let s = three_nodes(&redis, 51, ["eu", "eu", "eu"]);
    let c = http();
    let mut seed: u64 = 0x5eed;
    let mut pick = || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        &s[(seed >> 33) as usize % s.len()]
    };
    let t = Instant::now();
    for i in 0..300 {
        let name = format!("r{i}");
        let r = c
            .post(pick().url("/v1/rooms"))
            .bearer_auth(KEY)
            .json(&serde_json::json!({"name": name}))
            .send()
            .expect("create");
        assert_eq!(r.status(), StatusCode::CREATED);
        let r = c
            .post(pick().url(&format!("/v1/rooms/{name}/participants")))
            .bearer_auth(KEY)
            .json(&serde_json::json!({"name": "first"}))
            .send()
            .expect("join");
        assert_eq!(r.status(), StatusCode::CREATED);
    }
    let took = t.elapsed();
    let (_, body) = nodes(&s[0]);
    let placed: Vec<u64> = body["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| n["load"]["rooms"].as_u64().expect("rooms placed"))
        .collect();
    println!(
        "300 rooms placed on three nodes: {placed:?} ({} ms for 600 REST calls)",
        took.as_millis()
    );
    assert_eq!(placed.iter().sum::<u64>(), 300, "{body}");
    let (lo, hi) = (
        placed.iter().min().copied().unwrap_or(0),
        placed.iter().max().copied().unwrap_or(0),
    );
    assert!(hi as f64 <= 1.5 * lo as f64, "spread {placed:?}");
}
