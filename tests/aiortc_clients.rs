//! Real WebRTC clients through a real `sluice serve`: three aiortc peers (Python, in the venv that
//! `scripts/test` creates) join one room through REST and signaling, each sends a generated tone,
//! and each must decode audio from the two others on its two receive slots, over ICE-lite, DTLS-SRTP
//! and the dataplane. Two more clients join at the same time, one with a wrong DTLS fingerprint in
//! its offer and one checking with a wrong ICE password: both are refused, counted, and nobody else
//! notices. The server's counters must show all of it.

#![deny(unsafe_code)]

mod common;

use common::clients::{metric_sum, negotiated, run_client_script};
use common::server::Server;
use serde_json::Value;

const KEY: &str = "aiortc-test-key-0123456789abcdefghijklmnop";

fn metric(text: &str, name: &str) -> u64 {
    metric_sum(text, name, "")
}

/// Frames a receiver must decode on each of its slots during the 5 s of talk (one second's worth).
const MIN_FRAMES: u64 = 50;

#[test]
fn three_aiortc_clients_hear_each_other_and_two_impostors_are_refused() {
    let s = Server::start(&["--api-key", KEY]);
    let result = run_client_script(
        "aiortc_room.py",
        &[&s.base, KEY, "trio", "3", "5", "1", "1"],
    );
    let good_ids: Vec<&str> = result["clients"]
        .as_array()
        .expect("clients")
        .iter()
        .filter(|c| c["sabotage"].is_null() && c["role"] == "speaker")
        .filter_map(|c| c["id"].as_str())
        .collect();
    assert_eq!(good_ids.len(), 3, "{result}");
    let listener = result["clients"]
        .as_array()
        .expect("clients")
        .iter()
        .find(|c| c["role"] == "listener")
        .expect("a listener");
    let listener_id = listener["id"].as_str().expect("listener id");
    // The listener hears the speakers (two slots, two of the three), and nobody hears the listener.
    assert_eq!(listener["state"], "connected", "{listener}");
    let heard_by_listener: Vec<u64> = listener["slots"]
        .as_object()
        .expect("slots")
        .values()
        .filter_map(Value::as_u64)
        .collect();
    // At least a second of audio (50 frames) on each slot: what is checked is that audio flows to
    // the right places; how many of the ~250 frames a starved aiortc decodes depends on the load.
    assert!(
        heard_by_listener.len() == 2 && heard_by_listener.iter().all(|&f| f >= MIN_FRAMES),
        "{listener}"
    );
    for c in result["clients"].as_array().expect("clients") {
        let announced = c["announced"].as_object().cloned().unwrap_or_default();
        assert!(
            announced.values().all(|p| p.as_str() != Some(listener_id)),
            "a listener never gets a slot: {c}"
        );
        let seen = c["speakers_seen"].as_array().cloned().unwrap_or_default();
        assert!(!seen.iter().any(|p| p.as_str() == Some(listener_id)), "{c}");
    }
    for c in result["clients"].as_array().expect("clients") {
        if c["role"] == "listener" {
            continue;
        }
        if !c["sabotage"].is_null() {
            assert!(
                !c["state"].as_str().unwrap_or("").starts_with("connected"),
                "{c}"
            );
            assert_eq!(
                c["slots"],
                serde_json::json!({}),
                "an impostor hears nothing: {c}"
            );
            continue;
        }
        assert_eq!(c["state"], "connected", "{c}");
        let slots = c["slots"].as_object().expect("slots");
        let heard: Vec<u64> = slots.values().filter_map(Value::as_u64).collect();
        assert_eq!(
            heard.len(),
            2,
            "{} decodes audio on both slots: {c}",
            c["name"]
        );
        assert!(
            heard.iter().all(|&f| f >= MIN_FRAMES),
            "{} decoded over 2 s of audio per slot: {c}",
            c["name"]
        );
        // `slots` named the two others on the two slots that carried their audio, and
        // `active_speakers` named them too (aiortc sends no audio level: sending is speaking).
        let me = c["id"].as_str().expect("id");
        let mut on_slots: Vec<&str> = slots
            .keys()
            .filter_map(|mid| c["announced"][mid].as_str())
            .collect();
        on_slots.sort_unstable();
        let mut others: Vec<&str> = good_ids.iter().copied().filter(|&id| id != me).collect();
        others.sort_unstable();
        assert_eq!(on_slots, others, "slots announced who is heard: {c}");
        let seen: Vec<&str> = c["speakers_seen"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        assert!(
            others.iter().all(|o| seen.contains(o)),
            "active_speakers named the others: {c}"
        );
    }
    assert_eq!(result["ok"], true);

    let metrics = reqwest::blocking::get(s.url("/metrics"))
        .unwrap()
        .text()
        .unwrap();
    let (inn, out) = (
        metric(&metrics, "sluice_packets_in_total"),
        metric(&metrics, "sluice_packets_out_total"),
    );
    // Half of each tone's 5 s (50 packets/s) at least: a loaded machine starts aiortc late.
    assert!(inn > 3 * 125, "the server received the three tones: {inn}");
    assert!(
        out > 2 * inn / 2,
        "and forwarded each to two others: in {inn}, out {out}"
    );
    let auth_failed = metric_sum(&metrics, "sluice_drops_total", "reason=\"auth_failed\"");
    assert!(
        auth_failed > 0,
        "the wrong ICE password's checks were counted: {metrics}"
    );
    let muted = metric_sum(&metrics, "sluice_drops_total", "reason=\"muted\"");
    assert!(
        muted > 100,
        "the listener's packets were dropped and counted: {metrics}"
    );
    assert_eq!(
        metric(&metrics, "sluice_dtls_failures_total"),
        1,
        "the wrong fingerprint was refused: {metrics}"
    );
    assert_eq!(
        metric(&metrics, "sluice_dtls_established_total"),
        4,
        "{metrics}"
    );
    eprintln!(
        "works with: aiortc {} | sfu | {}",
        result["aiortc"].as_str().unwrap_or("?"),
        negotiated(&metrics)
    );
    assert!(s.terminate().success());
}

/// Breakage 2 of issue 9: an offer without `a=ssrc` (webrtcbin's, before its encoder's caps arrive)
/// was answered and then every packet of it dropped as `muted`. Now sluice learns the SSRC from the
/// first authenticated packet, and a member that tries to publish with another member's SSRC is
/// refused (counted `unconfirmed_ssrc`) while the owner keeps being heard.
#[test]
fn an_offer_without_a_ssrc_is_heard_and_a_member_sending_anothers_ssrc_is_not() {
    let s = Server::start(&["--api-key", KEY]);
    let result = run_client_script(
        "aiortc_room.py",
        &[&s.base, KEY, "learn", "3", "5", "0", "0", "learn"],
    );
    let clients = result["clients"].as_array().expect("clients");
    let by_name = |n: &str| {
        clients
            .iter()
            .find(|c| c["name"] == n)
            .unwrap_or_else(|| panic!("{n} in {result}"))
    };
    let (c0, c1, thief) = (by_name("client0"), by_name("client1"), by_name("thief"));
    assert_eq!(
        thief["ssrc"], c0["ssrc"],
        "the thief sent with client0's SSRC"
    );
    // Who each heard: the participants announced on the slots that decoded over 2 s of audio.
    let heard = |c: &Value| -> Vec<String> {
        let mut v: Vec<String> = c["slots"]
            .as_object()
            .map(|slots| {
                slots
                    .iter()
                    .filter(|(_, f)| f.as_u64().unwrap_or(0) > 100)
                    .filter_map(|(mid, _)| c["announced"][mid].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    let id = |c: &Value| c["id"].as_str().expect("id").to_string();
    for c in [c0, c1, thief] {
        assert_eq!(c["state"], "connected", "{c}");
    }
    assert_eq!(
        heard(c0),
        vec![id(c1)],
        "client0 hears client1 (learned SSRC) only: {c0}"
    );
    assert_eq!(
        heard(c1),
        vec![id(c0)],
        "client1 hears client0, not the thief: {c1}"
    );
    let mut both = vec![id(c0), id(c1)];
    both.sort();
    assert_eq!(
        heard(thief),
        both,
        "the thief still hears the room: {thief}"
    );
    // No slot ever carried more than the real speakers' audio: a slot of client0 or client1 that
    // decoded audio announced someone (a thief's stream on a slot would be announced as client0).
    for c in [c0, c1] {
        let decoding = c["slots"]
            .as_object()
            .map(|s| s.values().filter(|f| f.as_u64().unwrap_or(0) > 50).count())
            .unwrap_or(0);
        assert_eq!(decoding, 1, "one stream reaches {}: {c}", c["name"]);
    }

    let metrics = reqwest::blocking::get(s.url("/metrics"))
        .unwrap()
        .text()
        .unwrap();
    let unconfirmed = metric_sum(
        &metrics,
        "sluice_drops_total",
        "reason=\"unconfirmed_ssrc\"",
    );
    assert!(
        unconfirmed > 100,
        "the thief's packets were held back and counted: {metrics}"
    );
    let muted = metric_sum(&metrics, "sluice_drops_total", "reason=\"muted\"");
    assert_eq!(
        muted, 0,
        "a missing a=ssrc is never reported as muted: {metrics}"
    );
    assert!(s.terminate().success());
}
