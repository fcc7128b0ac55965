//! A cascaded room across three real `sluice serve` nodes and a real `redis-server`
//! (docs/cascade.md): the room's core in eu, edges in us and ap serving the members nearest to
//! them, linked by relay legs of plain SRTP. Real aiortc clients speak and listen on every node,
//! and hundreds of plain SRTP listeners on each edge.

#![deny(unsafe_code)]

mod common;

use common::plain;
use common::redis::RedisServer;
use common::server::Server;
use serde_json::Value;

const KEY: &str = "cascade-test-admin-key-0123456789abcdef";
const SECRET: &str = "cascade-test-token-secret-0123456789abcdef";
/// Plain SRTP listeners on each edge in the first test.
const PLAIN_PER_EDGE: usize = 300;

/// Nodes n51 (eu, the core), n52 (us) and n53 (ap) on 127.0.0.51, .52, .53.
fn three_nodes(redis: &RedisServer) -> Vec<Server> {
    ["eu", "us", "ap"]
        .iter()
        .zip(51u8..)
        .map(|(region, i)| {
            Server::cluster_node(
                &format!("127.0.0.{i}:0"),
                &redis.url(),
                &format!("n{i}"),
                region,
                (KEY, SECRET),
            )
        })
        .collect()
}

fn cfg(servers: &[Server], room: &str, extra: Value) -> Value {
    let mut cfg = serde_json::json!({
        "nodes": servers.iter().zip(["eu", "us", "ap"]).zip(51..).map(|((s, region), i)| serde_json::json!({
            "base": s.base, "pid": s.pid(), "region": region, "id": format!("n{i}"),
        })).collect::<Vec<_>>(),
        "key": KEY,
        "room": room,
        "speakers": {"eu": 2, "us": 1},
        "listeners": {"us": 1, "ap": 1},
    });
    if let (Some(cfg), Some(extra)) = (cfg.as_object_mut(), extra.as_object()) {
        cfg.extend(extra.clone());
    }
    cfg
}

fn pps(out: &Value, node: &str, dir: &str) -> f64 {
    out["leg_pps"][node][dir].as_f64().unwrap_or(f64::NAN)
}

#[test]
fn members_on_three_nodes_hear_every_speaker_and_only_the_speakers_cross_the_relay_legs() {
    let redis = RedisServer::start();
    let servers = three_nodes(&redis);
    // The room, placed on eu's node by its first member (a plain listener there); then
    // PLAIN_PER_EDGE plain listeners through each edge's node, which serves them as an edge.
    let room = "cascade";
    let made = reqwest::blocking::Client::new()
        .post(servers[0].url("/v1/rooms"))
        .bearer_auth(KEY)
        .json(&serde_json::json!({"name": room, "mode": "sfu", "cascade": "nearest", "last_n": 4, "max_participants": 1000}))
        .send()
        .expect("POST /v1/rooms");
    assert_eq!(made.status(), 201);
    let mut ears = plain::add_listeners(&servers[0].base, KEY, room, "eu-plain", 1);
    for (s, region) in servers[1..].iter().zip(["us", "ap"]) {
        let t = std::time::Instant::now();
        ears.extend(plain::add_listeners(
            &s.base,
            KEY,
            room,
            &format!("{region}-plain"),
            PLAIN_PER_EDGE,
        ));
        println!(
            "{PLAIN_PER_EDGE} plain listeners added through the {region} edge in {:.1} s",
            t.elapsed().as_secs_f64()
        );
    }
    let listening = plain::listen(ears);
    let out = common::clients::run_client_script(
        "aiortc_cascade.py",
        &[&cfg(
            &servers,
            room,
            serde_json::json!({"room_made": true, "actions": true}),
        )
        .to_string()],
    );
    let heard = listening.stop();
    println!("{out}");
    assert_eq!(
        out["edges_first"], true,
        "the edges' members were welcomed first: {out}"
    );
    assert_eq!(
        out["ready"], true,
        "every member decodes every speaker, whichever node either is on: {out}"
    );
    // Members were placed on their region's node; the room's core is eu's.
    let room = &out["room"];
    assert_eq!(room["node"], "n51", "{out}");
    for p in room["participants"].as_array().expect("participants") {
        let name = p["name"].as_str().unwrap_or_default();
        let want = match &name[..2] {
            "eu" => Value::Null,
            "us" => "n52".into(),
            _ => "n53".into(),
        };
        assert_eq!(
            p["node"], want,
            "{name} is served by its region's node: {room}"
        );
    }
    for (id, url) in out["signal_urls"].as_object().expect("signal urls") {
        let name = out["names"][id].as_str().unwrap_or_default();
        let host = match &name[..2] {
            "eu" => "127.0.0.51",
            "us" => "127.0.0.52",
            _ => "127.0.0.53",
        };
        assert!(
            url.as_str().is_some_and(|u| u.contains(host)),
            "{name} signals to {host}: {url}"
        );
    }
    // The legs carry speakers only, one copy each (50 packets/s per speaker): core → us edge
    // the two eu speakers, core → ap edge those and the us speaker, us → core its one speaker,
    // ap → core nothing (it has only a listener).
    let (core_out, us_in, us_out, ap_in, ap_out) = (
        pps(&out, "n51", "out"),
        pps(&out, "n52", "in"),
        pps(&out, "n52", "out"),
        pps(&out, "n53", "in"),
        pps(&out, "n53", "out"),
    );
    println!(
        "cascade legs: core out {core_out} pps, us edge in {us_in} / out {us_out}, ap edge in {ap_in} / out {ap_out}"
    );
    let near = |x: f64, want: f64| (x - want).abs() <= want * 0.2 + 5.0;
    assert!(
        near(us_in, 100.0),
        "us edge gets the two eu speakers: {us_in}"
    );
    assert!(
        near(ap_in, 150.0),
        "ap edge gets all three speakers: {ap_in}"
    );
    assert!(
        near(us_out, 50.0),
        "us edge sends its one speaker: {us_out}"
    );
    assert!(
        ap_out < 5.0,
        "a node with only listeners sends nothing: {ap_out}"
    );
    assert!(
        near(core_out, 250.0),
        "the core sends 100 + 150: {core_out}"
    );
    // Every plain listener, on the core and on both edges, gets every speaker, and every packet
    // the oracle checks decrypts with its own keys.
    let fewest = heard
        .iter()
        .flat_map(|h| h.per_source.values().copied())
        .min()
        .unwrap_or(0);
    println!(
        "{} plain listeners: each hears every speaker, the fewest packets of one {fewest}; {} packets checked by the oracle",
        heard.len(),
        heard.iter().map(|h| h.verified).sum::<u64>()
    );
    for h in &heard {
        assert_eq!(
            h.failed, 0,
            "plain listener {} got bad packets: {h:?}",
            h.id
        );
        assert_eq!(
            h.sources_with(100),
            3,
            "plain listener {} hears the three speakers: {h:?}",
            h.id
        );
    }
    // A mute and a kick of members an edge serves, asked of other nodes.
    let muted = out["muted_id"].as_str().unwrap_or_default();
    assert!(
        out["muted_seen"]
            .as_array()
            .is_some_and(|seen| seen.contains(&serde_json::json!([muted, true]))),
        "the muted speaker is told: {}",
        out["muted_seen"]
    );
    let muted_pps = out["muted_leg_pps"].as_f64().unwrap_or(f64::NAN);
    assert!(
        muted_pps < 5.0,
        "the us edge's leg to the core falls silent once its speaker is muted: {muted_pps}"
    );
    for (node, m) in out["metrics_all"]
        .as_object()
        .expect("every node's metrics")
    {
        let m = m.as_str().unwrap_or_default();
        assert!(
            m.contains("sluice_roster_dropped_total 0"),
            "{node} told the others of every change: {m}"
        );
    }
    assert_eq!(
        out["rosters_complete"], true,
        "every member's roster names the members of every node: {}",
        out["rosters"]
    );
    assert!(
        out["muted_told"]
            .as_object()
            .is_some_and(|told| told.values().all(|m| *m == Value::Bool(true))),
        "every other member, on every node, sees the edge speaker muted: {}",
        out["muted_told"]
    );
    assert_eq!(out["kicked"], true, "the kicked edge member got bye: {out}");
    assert_eq!(
        out["kick_told"], true,
        "every other member, on every node, sees the kicked member leave: {out}"
    );
    let kicked = &out["kicked_id"];
    assert!(
        out["after_kick"]
            .as_array()
            .is_some_and(|ids| !ids.contains(kicked)),
        "the kicked member is gone from the room"
    );
    drop(servers);
}

/// Runs the cascade driver with `kill` ("edge" or "core") and checks that every member hears every
/// speaker again within the cluster's failover targets; returns the driver's output.
fn failover(room: &str, kill: &str) -> Value {
    let redis = RedisServer::start();
    let servers = three_nodes(&redis);
    let out = common::clients::run_client_script(
        "aiortc_cascade.py",
        &[&cfg(&servers, room, serde_json::json!({ "kill": kill })).to_string()],
    );
    println!("{out}");
    assert_eq!(out["ready"], true, "{out}");
    assert_eq!(
        out["back"], true,
        "every member hears every speaker again: {out}"
    );
    let mut gaps: Vec<f64> = out["gaps"]
        .as_object()
        .expect("gaps")
        .values()
        .map(|g| g.as_f64().unwrap_or(f64::INFINITY))
        .collect();
    gaps.sort_by(f64::total_cmp);
    let (median, max) = (gaps[gaps.len() / 2], gaps[gaps.len() - 1]);
    assert_eq!(
        out["rosters_back"], true,
        "after the failover every member's roster names every other member again: {}",
        out["rosters_after"]
    );
    println!("cascade, {kill} killed: every speaker back {median:.2} s after for the median member, {max:.2} s for the last ({gaps:?})");
    assert!(median <= 3.0, "median {median:.2} s > 3 s: {out}");
    assert!(max <= 5.0, "last {max:.2} s > 5 s: {out}");
    drop(servers);
    out
}

#[test]
fn an_edge_killed_sends_its_members_back_to_the_core_within_seconds() {
    let out = failover("edge-killed", "edge");
    for p in out["after"]["participants"]
        .as_array()
        .expect("participants")
    {
        assert_ne!(
            p["node"], "n52",
            "nobody stays on the dead edge: {}",
            out["after"]
        );
    }
}

#[test]
fn a_core_killed_gives_the_room_a_new_core_that_the_other_edge_links_to() {
    let out = failover("core-killed", "core");
    let after = &out["after"];
    assert_ne!(after["node"], "n51", "{out}");
    assert_eq!(after["epoch"], 2, "a new core, the next epoch: {out}");
}

#[test]
fn an_empty_core_keeps_a_room_its_edges_serve_and_closes_it_once_they_let_go() {
    let redis = RedisServer::start();
    let servers = three_nodes(&redis);
    let http = reqwest::blocking::Client::new();
    let room = "held";
    let made = http
        .post(servers[0].url("/v1/rooms"))
        .bearer_auth(KEY)
        .json(&serde_json::json!({"name": room, "mode": "sfu", "cascade": "nearest", "empty_timeout_s": 1}))
        .send()
        .expect("POST /v1/rooms");
    assert_eq!(made.status(), 201);
    // The core (eu) has a plain listener, which never connects to signaling: by itself the room
    // would close after its empty timeout. The us edge serves another.
    let _core_ear = plain::add_listeners(&servers[0].base, KEY, room, "eu-plain", 1);
    let edge_ear = plain::add_listeners(&servers[1].base, KEY, room, "us-plain", 1);
    let status = |s: &Server| {
        http.get(s.url(&format!("/v1/rooms/{room}")))
            .bearer_auth(KEY)
            .send()
            .expect("GET room")
            .status()
    };
    std::thread::sleep(std::time::Duration::from_secs(4));
    assert_eq!(
        status(&servers[2]),
        200,
        "the core keeps the room while an edge serves it"
    );
    let kicked = http
        .delete(servers[2].url(&format!("/v1/rooms/{room}/participants/{}", edge_ear[0].id)))
        .bearer_auth(KEY)
        .send()
        .expect("DELETE participant");
    assert_eq!(kicked.status(), 204);
    // The edge lets go of its leg at its next refresh and tells the core, which then finds the
    // room empty and closes it after the timeout.
    let t = std::time::Instant::now();
    while status(&servers[2]) != 404 {
        assert!(
            t.elapsed() < std::time::Duration::from_secs(15),
            "the room closes once no edge serves it"
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    println!(
        "an empty core closed the room {:.1} s after its edge let go",
        t.elapsed().as_secs_f64()
    );
    drop(servers);
}
