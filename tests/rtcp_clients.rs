//! RTCP terminated at each hop, with real aiortc clients (`tests/clients/aiortc_rtcp.py`) and one
//! listener behind 5 % random loss (iptables' statistic match inside a private network namespace:
//! this kernel has no netem).
//!
//! Two speakers hear each other; two listeners (`clean` on 127.0.0.1, `lossy` on 127.0.0.2, whose
//! incoming UDP loses 5 %) hear both. Checked from the clients' own getStats() and the API:
//! - every slot stream a client receives comes with sluice's sender reports, whose packet counts
//!   match what the client received (SRs lag by at most their interval);
//! - each speaker gets receiver reports about its stream, with a round-trip time, and their fraction
//!   lost shows the *lossy listener's* loss: the speakers' own hop loses nothing, so only the worst
//!   subscriber's reports folded into sluice's RR can make it non-zero (what turns on Opus FEC);
//! - `GET /v1/rooms/{room}` shows each member's `link`: the lossy listener's downlink losses and
//!   every listener's round-trip time; `/metrics` counts the lossy member.

#![deny(unsafe_code)]

mod common;

use common::browsers::{root, run_driver};
use common::clients::{metric_sum, python, unshare_net};
use common::server::tempdir::TempDir;
use serde_json::Value;

/// Seconds the four clients stay in the room.
const SECONDS: &str = "8";

fn client<'a>(result: &'a Value, name: &str) -> &'a Value {
    result["clients"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no client {name}: {result}"))
}

fn member<'a>(result: &'a Value, name: &str) -> &'a Value {
    result["room"]["participants"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["name"] == name))
        .unwrap_or_else(|| panic!("no member {name}: {}", result["room"]))
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

#[test]
fn sender_and_receiver_reports_at_each_hop_and_the_worst_listener_loss_reaches_the_speakers() {
    let state = TempDir::new("rtcp");
    let mut cmd = unshare_net();
    cmd.arg(python())
        .arg(root().join("tests/clients/aiortc_rtcp.py"))
        .arg(env!("CARGO_BIN_EXE_sluice"))
        .arg(&state.0)
        .args([SECONDS, "0.05"]);
    let result = run_driver(cmd);
    for name in ["speaker0", "speaker1", "clean", "lossy"] {
        assert_eq!(client(&result, name)["state"], "connected", "{result}");
    }

    // Sender reports on every slot stream, counting what was sent on it.
    for (name, slots) in [("speaker0", 1), ("speaker1", 1), ("clean", 2), ("lossy", 2)] {
        let c = client(&result, name);
        let receivers = c["receivers"].as_object().expect("receivers");
        assert_eq!(
            receivers.len(),
            slots,
            "{name}: an SR for each slot that carries audio: {c}"
        );
        for (ssrc, r) in receivers {
            let (received, sent, bytes) =
                (num(&r["received"]), num(&r["sent"]), num(&r["bytes_sent"]));
            assert!(received > 100.0, "{name} {ssrc}: {r}");
            // An SR is at most ~1.5 s (its interval, then our poll) older than the count beside it.
            assert!(
                received <= sent + 100.0,
                "{name} {ssrc}: SR counts lag: {r}"
            );
            if name == "lossy" {
                // 5 % never arrived: the SR says more was sent than was received.
                assert!(sent <= received * 1.2 + 100.0, "{name} {ssrc}: {r}");
            } else {
                assert!(
                    sent <= received + 10.0,
                    "{name} {ssrc}: SR counts more than sent: {r}"
                );
            }
            let per_packet = bytes / sent;
            assert!(
                (20.0..1500.0).contains(&per_packet),
                "{name} {ssrc}: octets are payload octets: {r}"
            );
        }
    }

    // Receiver reports to each speaker: with a round-trip time, and the lossy listener's loss.
    for name in ["speaker0", "speaker1"] {
        let s = &client(&result, name)["sender"];
        assert!(
            num(&s["reports"]) >= 3.0,
            "{name} got receiver reports: {s}"
        );
        let rtt = num(&s["rtt"]);
        assert!(
            rtt > 0.0 && rtt < 1.0,
            "{name}: round-trip time from LSR/DLSR: {s}"
        );
        assert!(
            num(&s["max_fraction_lost"]) >= 3.0,
            "{name}: the RR carries the worst listener's loss (its own hop loses nothing): {s}\n{}",
            result["dropped_by_iptables"]
        );
        let link = &member(&result, name)["link"];
        assert!(
            link["uplink"].is_object(),
            "{name}: its uplink as measured: {link}"
        );
        assert_eq!(
            link["uplink"]["lost"], 0,
            "{name}: loopback loses nothing: {link}"
        );
    }

    // The API: the lossy listener's losses, and round trips.
    let lossy = &member(&result, "lossy")["link"];
    assert!(num(&lossy["downlink"]["lost"]) >= 3.0, "{lossy}");
    for name in ["clean", "lossy"] {
        let link = &member(&result, name)["link"];
        let rtt = num(&link["rtt_ms"]);
        assert!(rtt > 0.0 && rtt < 1000.0, "{name}: {link}");
        assert!(link["uplink"].is_null(), "{name} publishes nothing: {link}");
    }
    let clean = &member(&result, "clean")["link"];
    assert!(
        num(&clean["downlink"]["lost"]) < num(&lossy["downlink"]["lost"]),
        "{clean} vs {lossy}"
    );

    let metrics = result["metrics"].as_str().unwrap_or_default();
    assert!(
        metric_sum(metrics, "sluice_rtcp_out_total", "") > 10,
        "{metrics}"
    );
    assert_eq!(
        metric_sum(metrics, "sluice_link_members", "direction=\"downlink\""),
        4,
        "{metrics}"
    );
    assert!(
        metric_sum(
            metrics,
            "sluice_link_lossy_members",
            "direction=\"downlink\""
        ) >= 1,
        "{metrics}"
    );
    assert_eq!(
        result["server_exit"], 0,
        "sluice stopped cleanly on SIGTERM"
    );
    eprintln!(
        "RTCP per hop: speakers' RR fraction lost up to {}/256 and {}/256 from a listener behind 5 % loss \
         (it lost {} of one stream); round trips {:.1} ms / {:.1} ms",
        client(&result, "speaker0")["sender"]["max_fraction_lost"],
        client(&result, "speaker1")["sender"]["max_fraction_lost"],
        lossy["downlink"]["lost"],
        num(&member(&result, "clean")["link"]["rtt_ms"]),
        num(&lossy["rtt_ms"]),
    );
}
