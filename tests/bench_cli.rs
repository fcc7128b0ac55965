//! `sluice bench` as users run it: the real binary, a short run per backend, its JSON checked.

#![deny(unsafe_code)]

use std::process::Command;

fn bench_json(args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("bench")
        .args(args)
        .arg("--json")
        .output()
        .expect("sluice runs");
    assert!(
        out.status.success(),
        "sluice bench failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "bench prints one JSON object ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

#[test]
fn bench_reports_every_field_and_verifies_what_it_received() {
    for backend in ["mmsg", "uring"] {
        for srtp in ["aes128gcm", "none"] {
            let r = bench_json(&[
                "--subscribers",
                "20",
                "--publishers",
                "2",
                "--rate",
                "100",
                "--duration",
                "1s",
                "--backend",
                backend,
                "--srtp",
                srtp,
            ]);
            for key in [
                "egress_pps",
                "ingress_pps",
                "loss_ratio",
                "dataplane_cpu_s",
                "backend",
                "srtp",
                "workers",
                "rooms",
                "publishers",
                "subscribers",
            ] {
                assert!(r.get(key).is_some(), "missing {key} in {r}");
            }
            for key in ["p50", "p99", "p999"] {
                assert!(
                    r["latency_us"][key].as_f64().is_some(),
                    "missing latency_us.{key} in {r}"
                );
            }
            assert_eq!(r["srtp"], srtp);
            assert!(r["received"].as_u64().unwrap() > 0, "{r}");
            assert!(r["verified"].as_u64().unwrap() > 0, "{r}");
            assert_eq!(r["verify_failures"], 0, "{r}");
            assert!(
                r["loss_ratio"].as_f64().unwrap() < 0.01,
                "loopback at 4,000 pps loses nothing: {r}"
            );
            assert!(r["egress_pps"].as_f64().unwrap() > 1000.0, "{r}");
        }
    }
}

#[test]
fn bench_rejects_bad_options_with_a_clear_message() {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["bench", "--publishers", "9", "--slots", "8"])
        .output()
        .expect("sluice runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("exceeds --slots"), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["bench", "--srtp", "rot13"])
        .output()
        .expect("sluice runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown SRTP profile"));
}

#[test]
fn the_relay_shape_carries_each_speaker_once_across_the_leg_whatever_the_listeners() {
    let mut legs = Vec::new();
    for listeners in ["20", "60"] {
        let r = bench_json(&[
            "--relay",
            "--speakers",
            "2",
            "--listeners",
            listeners,
            "--rate",
            "100",
            "--duration",
            "1s",
        ]);
        let n: f64 = listeners.parse().unwrap();
        assert_eq!(r["verify_failures"], 0, "{r}");
        assert!(r["verified"].as_u64().unwrap() > 0, "{r}");
        assert!(r["loss_ratio"].as_f64().unwrap() < 0.01, "{r}");
        // Every listener on the edge hears both speakers, who publish on the core.
        let egress = r["egress_pps"].as_f64().unwrap();
        assert!(
            (egress - n * 200.0).abs() < n * 200.0 * 0.1,
            "edge egress is listeners × speakers × rate: {r}"
        );
        let leg = r["relay"]["leg_pps"].as_f64().unwrap();
        // Two speakers at 100 pps, plus a sender report per stream each second.
        assert!(
            (190.0..=220.0).contains(&leg),
            "leg carries 2 × 100 pps: {r}"
        );
        legs.push(leg);
        let hop = &r["second_hop"];
        for key in ["added_p50_us", "added_p99_us"] {
            assert!(hop[key].as_f64().is_some(), "missing second_hop.{key}: {r}");
        }
        assert!(
            r["relay"]["core_ns_per_leg_packet"].as_f64().unwrap() > 0.0,
            "the core's CPU is the second hop's: {r}"
        );
        assert!(
            hop["one_hop_latency_us"]["p50"].as_f64().unwrap() > 0.0,
            "{r}"
        );
        assert!(r["latency_us"]["p50"].as_f64().unwrap() > 0.0, "{r}");
    }
    assert!(
        (legs[0] - legs[1]).abs() < 15.0,
        "the leg's rate does not grow with the listeners: {legs:?}"
    );
}
