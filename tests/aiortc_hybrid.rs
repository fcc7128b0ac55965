//! A hybrid room with real aiortc clients through a real `sluice serve` (`tests/clients/aiortc_hybrid.py`):
//! eight clients in an `auto` room form a P2P mesh (no media reaches sluice; each decodes the seven
//! others directly), a ninth joins and all nine move to the SFU (each decodes the eight others through
//! its slots), three leave and, after the room's cooldown (3 s here), the six are back on a mesh with
//! audio flowing and nothing reaching sluice.

#![deny(unsafe_code)]

mod common;

use common::clients::run_client_script;
use common::server::Server;
use serde_json::Value;

const KEY: &str = "hybrid-test-key-0123456789abcdefghijklmnop";
const COOLDOWN_S: f64 = 3.0;

/// Every client of `phase` decoded over 50 frames (1 s of audio in the 4 to 8 s window: one Python
/// process decodes up to 72 streams, and on a slow machine it is the bottleneck) from each of the
/// `others` members, `via` mesh or sfu, and nothing by the other way.
fn assert_heard(phase: &Value, ids: &[&str], via: &str) {
    let heard = phase["heard"].as_object().expect("heard");
    assert_eq!(heard.len(), ids.len(), "{phase}");
    for me in ids {
        let h = &heard[*me];
        let got = h[via]
            .as_object()
            .unwrap_or_else(|| panic!("{me} heard nothing via {via}: {h}"));
        for other in ids.iter().filter(|o| *o != me) {
            let frames = got.get(*other).and_then(Value::as_u64).unwrap_or(0);
            // Over half a second of each stream: one Python process decodes all 56-72 of them, and
            // on a loaded 2-core machine it decodes every stream alike but slowly (CI once saw 38
            // frames of each in 6 s); what is checked is which path the audio takes.
            assert!(
                frames > 25,
                "{me} decoded {frames} frames of {other} via {via}: {h}"
            );
        }
        assert_eq!(
            got.len(),
            ids.len() - 1,
            "{me} hears exactly the others: {h}"
        );
        let other_way = if via == "mesh" { "sfu" } else { "mesh" };
        assert!(
            h[other_way].is_null(),
            "{me} heard nothing via {other_way} then: {h}"
        );
    }
}

fn metric(text: &str, line_start: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {line_start}"))
}

#[test]
fn eight_aiortc_clients_mesh_a_ninth_moves_everyone_to_the_sfu_and_six_go_back_to_p2p() {
    // The script mints all nine participants first and connects the ninth only once the mesh of
    // eight carried audio, which may take longer than the default join grace on a slow machine.
    let s = Server::start(&["--api-key", KEY, "--join-grace-s", "600"]);
    let r = run_client_script(
        "aiortc_hybrid.py",
        &[s.base.as_str(), KEY, "hybrid", &COOLDOWN_S.to_string()],
    );
    assert_eq!(r["errors"], serde_json::json!({}), "{r}");
    let ids: Vec<&str> = r["ids"]
        .as_array()
        .expect("ids")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(ids.len(), 9);

    // 1. Eight in a mesh: everyone hears the seven others directly; sluice sees no media at all.
    let p = &r["phases"]["mesh8"];
    assert_eq!(p["ready"], true, "the 28 mesh connections came up: {p}");
    assert_heard(p, &ids[..8], "mesh");
    assert_eq!(
        p["server_packets_in"],
        serde_json::json!([0, 0]),
        "no media touched sluice"
    );

    // 2. Nine on the SFU: everyone hears the eight others through its slots.
    let p = &r["phases"]["sfu9"];
    assert_eq!(
        p["ready"], true,
        "all nine connected to sluice and closed their mesh: {p}"
    );
    assert_heard(p, &ids, "sfu");
    for (i, id) in ids.iter().enumerate() {
        let expected = if i < 8 {
            serde_json::json!(["p2p", "sfu"])
        } else {
            serde_json::json!(["sfu"])
        };
        assert_eq!(p["modes"][*id], expected, "{id}");
    }
    assert_eq!(p["room"]["current_mode"], "sfu");

    // 3. Six left: back to a mesh after the cooldown, and sluice forwards nothing any more.
    let p = &r["phases"]["mesh6"];
    assert_eq!(p["ready"], true, "{p}");
    assert!(
        p["after_s"].as_f64().unwrap_or(0.0) >= COOLDOWN_S,
        "not before the cooldown: {p}"
    );
    assert_heard(p, &ids[..6], "mesh");
    let pin = p["server_packets_in"].as_array().expect("packets");
    assert_eq!(
        pin[0], pin[1],
        "no media reached sluice on the mesh again: {p}"
    );
    for id in &ids[..6] {
        assert_eq!(
            p["modes"][*id],
            serde_json::json!(["p2p", "sfu", "p2p"]),
            "{id}"
        );
    }
    assert_eq!(p["room"]["current_mode"], "p2p");
    assert!(p["room"]["last_switch_at"].as_u64().is_some());
    let c = &r["phases"]["mesh6_cleanup"];
    assert_eq!(
        c["cleared"], true,
        "the SFU transports left from before the switch back were removed: {c}"
    );

    let metrics = reqwest::blocking::get(s.url("/metrics"))
        .unwrap()
        .text()
        .unwrap();
    assert_eq!(
        metric(&metrics, "sluice_mode_switches_total{to=\"sfu\"}"),
        1
    );
    assert_eq!(
        metric(&metrics, "sluice_mode_switches_total{to=\"p2p\"}"),
        1
    );
    assert!(s.terminate().success());
}
