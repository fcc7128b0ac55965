//! Real browsers in a sluice cluster: headless Chromium (Debian's package, driven by playwright-core,
//! both installed by `scripts/test`) opens the web page at `/` of three `sluice serve` nodes
//! coordinated through a real `redis-server` (regions eu, us, ap). Each page guest-joins the same SFU
//! room through its own node and opens signaling there; the room is placed on the first page's node,
//! so the others are answered `redirect` and follow it. Once every page hears every other, the
//! room's node is killed (SIGKILL): the pages' sockets close without `bye`, each reconnects (its
//! last URL, its entry node, then the nodes the last `welcome` named), the node it reaches places
//! the room again, and the page offers again on a new connection. Every page must hear every other
//! again within 5 s, and the room must be on another node at the next epoch. Then that node is
//! drained: every page is redirected mid-session to the third node and opens its new connection
//! before it closes the old one, without a gap.
//!
//! Redis, the nodes and the browser run inside a private network namespace (`unshare -n`): only `lo`
//! exists there, so nothing can leave the machine. The driver, `tests/clients/chromium_cluster.mjs`,
//! starts everything in there and prints one JSON line.

#![deny(unsafe_code)]

mod common;

use std::process::Command;
use std::time::Instant;

use common::browsers::{check_modules, chromium, root, run_driver};
use common::clients::unshare_net;
use common::server::tempdir::TempDir;
use serde_json::Value;

/// Pages in the room, one per node.
const PAGES: usize = 3;
/// The longest a page may go without hearing every other page after the kill.
const BACK_WITHIN_MS: u64 = 5000;

/// Runs the driver; its JSON result (the scenario ran to the end).
fn run_cluster() -> Value {
    let chromium = chromium();
    check_modules(&["playwright-core"]);
    let redis = Command::new("redis-server").arg("--version").output();
    assert!(
        redis.is_ok_and(|o| o.status.success()),
        "redis-server is not installed: apt-get install redis-server (scripts/test does)"
    );
    let state = TempDir::new("chromium-cluster");
    let mut cmd = unshare_net();
    cmd.arg("node")
        .arg(root().join("tests/clients/chromium_cluster.mjs"))
        .arg(env!("CARGO_BIN_EXE_sluice"))
        .arg(&state.0)
        .arg(PAGES.to_string())
        .env("SLUICE_CHROMIUM", &chromium);
    run_driver(cmd)
}

/// The strings of `v` (an array), in order.
fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

#[test]
fn chromium_pages_joining_through_three_nodes_are_redirected_to_the_owner_and_hear_each_other_again_within_5_s_after_it_is_killed(
) {
    let started = Instant::now();
    let r = run_cluster();
    let dump = || serde_json::to_string_pretty(&r).unwrap_or_default();
    assert_eq!(r["ready"], true, "every page hears every other: {}", dump());
    let ids = strings(&r["ids"]);
    assert_eq!(ids.len(), PAGES, "every page got a welcome: {}", dump());

    // Placed at the first join, on the first page's node (n1, eu), at epoch 1; the pages that
    // joined through the other nodes were redirected there, the first was not.
    let before = &r["before"];
    assert_eq!(
        (before["node"].as_str(), before["epoch"].as_u64()),
        (Some("n1"), Some(1)),
        "{}",
        dump()
    );
    let owner_ws = r["nodes"][0]["base"]
        .as_str()
        .unwrap_or_default()
        .replacen("http", "ws", 1);
    let signaling = r["signaling_before"].as_array().expect("signaling");
    let mut redirected = 0;
    for (i, s) in signaling.iter().enumerate() {
        let redirects = strings(&s["redirects"]);
        if i == 0 {
            assert!(redirects.is_empty(), "page0 joined on the owner: {s}");
        } else {
            assert_eq!(
                redirects,
                [owner_ws.as_str()],
                "page{i} was redirected to the owner once: {s}"
            );
            redirected += 1;
        }
        assert_eq!(
            s["url"],
            owner_ws.as_str(),
            "page{i} talks to the owner: {s}"
        );
        assert_eq!(s["welcomes"], 1, "{s}");
        assert_eq!(
            s["entry_urls"].as_array().map(Vec::len),
            Some(2),
            "the welcome named the two other nodes: {s}"
        );
    }
    assert_eq!(redirected, PAGES - 1);

    // kill -9 of the owner: every page hears every other again, on its new connection, soon.
    assert_eq!(r["killed"], "n1", "{}", dump());
    let gaps: Vec<u64> = r["gaps_ms"]
        .as_array()
        .expect("gaps")
        .iter()
        .map(|g| g.as_u64().unwrap_or(u64::MAX))
        .collect();
    println!(
        "Chromium {}: audio from every other page back {gaps:?} ms after the kill, per page (per other page: {})",
        r["browser"].as_str().unwrap_or("?"),
        r["back_ms"]
    );
    assert_eq!(
        r["back"],
        true,
        "every page hears every other after the kill: {}",
        dump()
    );
    for (i, gap) in gaps.iter().enumerate() {
        assert!(
            *gap <= BACK_WITHIN_MS,
            "page{i} heard everyone again only {gap} ms after the kill: {}",
            dump()
        );
    }
    let after = &r["after"];
    assert_eq!(after["epoch"], 2, "a new owner, the next epoch: {}", dump());
    assert!(
        after["node"]
            .as_str()
            .is_some_and(|n| n == "n2" || n == "n3"),
        "the room moved to a live node: {}",
        dump()
    );
    assert_eq!(
        after["participants"].as_array().map(Vec::len),
        Some(PAGES),
        "nobody was removed: {}",
        dump()
    );
    let new_ws = r["nodes"]
        .as_array()
        .and_then(|n| n.iter().find(|n| n["id"] == after["node"]))
        .and_then(|n| n["base"].as_str())
        .map(|b| b.replacen("http", "ws", 1))
        .expect("the new owner's URL");
    for (i, s) in r["signaling_after"]
        .as_array()
        .expect("signaling")
        .iter()
        .enumerate()
    {
        assert_eq!(s["welcomes"], 2, "page{i} joined again once: {s}");
        assert_eq!(
            s["url"],
            new_ws.as_str(),
            "page{i} talks to the new owner: {s}"
        );
        assert!(
            !strings(&s["reconnects"]).is_empty(),
            "page{i} reconnected: {s}"
        );
    }
    // Past the old connection's close (2 s after the new one was made): connected, the old one
    // closed, the three members shown, and still hearing both others.
    for (i, p) in r["final"].as_array().expect("final").iter().enumerate() {
        assert_eq!(p["connection"], "connected", "{p}");
        assert_eq!(p["retired"], 0, "the old connection was closed: {p}");
        assert_eq!(
            p["members"],
            serde_json::json!(["page0", "page1", "page2"]),
            "{p}"
        );
        let mut others: Vec<&str> = ids.iter().copied().filter(|&id| id != ids[i]).collect();
        others.sort_unstable();
        assert_eq!(strings(&p["hears"]), others, "{p}");
    }

    // The new owner drained through the third node: the room moves there (epoch 3), every page is
    // redirected once, joins again and hears both others on its new connection, with no audible
    // gap (its old connection carried the audio meanwhile, and is closed by now).
    let d = &r["drain"];
    assert_eq!(d["from"], after["node"], "{}", dump());
    assert_eq!(
        (&d["room"]["node"], &d["room"]["epoch"]),
        (&d["via"], &Value::from(3)),
        "{}",
        dump()
    );
    let silences: Vec<u64> = d["silence_ms"]
        .as_array()
        .expect("silences")
        .iter()
        .map(|g| g.as_u64().unwrap_or(u64::MAX))
        .collect();
    println!("drain: longest silence per page {silences:?} ms");
    for (i, ms) in silences.iter().enumerate() {
        assert!(
            *ms < 1000,
            "page{i} heard a gap of {ms} ms at the drain: {}",
            dump()
        );
        assert_eq!(
            d["new_welcomes"][i],
            1,
            "page{i} joined again once: {}",
            dump()
        );
        assert_eq!(
            d["retired"][i],
            0,
            "page{i} closed its old connection: {}",
            dump()
        );
        let mut others: Vec<&str> = ids.iter().copied().filter(|&id| id != ids[i]).collect();
        others.sort_unstable();
        assert_eq!(strings(&d["hears"][i]), others, "page{i}: {}", dump());
    }
    println!(
        "the driver ran {} ms, the test {} ms",
        r["ms"],
        started.elapsed().as_millis()
    );
}
