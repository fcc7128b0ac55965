//! ffmpeg (Debian's) through a real `sluice serve`, as operators use it for plain transports: an
//! Opus publisher encoding a tone and an SDP-driven listener writing a WAV, over
//! `AES_CM_128_HMAC_SHA1_80`, `AES_CM_128_HMAC_SHA1_32` and plain RTP, all three at once in three
//! rooms. Each listener's WAV must hold its own publisher's tone (and not another's). ffmpeg sends
//! RTCP from the port after its RTP port and cannot multiplex it: those reports must be taken
//! (`sluice_rtcp_in_total`), not `unknown_source` drops.
//!
//! Everything runs in a private network namespace (`unshare -n`, only `lo`), driven by
//! `tests/clients/ffmpeg_room.py`, which prints one JSON line for this test to judge.

#![deny(unsafe_code)]

mod common;

use std::path::PathBuf;

use common::clients::{metric_sum, python, unshare_net};
use common::server::tempdir::TempDir;
use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn ffmpeg_publishes_and_listens_over_srtp_sha1_80_sha1_32_and_plain_rtp() {
    assert!(
        std::process::Command::new("ffmpeg")
            .arg("-version")
            .output()
            .is_ok_and(|o| o.status.success()),
        "ffmpeg is not installed: run scripts/test (it installs Debian's ffmpeg)"
    );
    let state = TempDir::new("ffmpeg");
    let out = unshare_net()
        .arg(python())
        .arg(root().join("tests/clients/ffmpeg_room.py"))
        .arg(env!("CARGO_BIN_EXE_sluice"))
        .arg(&state.0)
        .output()
        .expect("unshare and python run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "ffmpeg_room.py failed: {stdout}\n{stderr}"
    );
    let result: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("ffmpeg_room.py prints JSON ({e}): {stdout}\n{stderr}"));
    let cases = result["cases"].as_array().expect("cases");
    assert_eq!(cases.len(), 3, "{result}");
    for c in cases {
        let audio = &c["audio"];
        let what = format!("{} (tone {} Hz): {c}", c["profile"], c["tone"]);
        assert_eq!(c["mic"]["exit"], 0, "the publisher ran: {what}");
        assert_eq!(c["ear"]["exit"], 0, "the listener ran: {what}");
        assert!(
            audio["seconds"].as_f64().unwrap_or(0.0) >= 3.5,
            "the listener recorded its 4 s: {what}"
        );
        assert!(
            audio["rms"].as_f64().unwrap_or(0.0) > 1000.0,
            "the recording is not silence: {what}"
        );
        // A pure tone decoded from Opus: its bin holds far more energy than the neighbouring
        // frequencies, where the other rooms' tones (1.25 × and 1.5 × of 440 Hz) would show.
        assert!(
            audio["tone_vs_neighbours"].as_f64().unwrap_or(0.0) > 100.0,
            "the listener heard its publisher's tone: {what}"
        );
    }
    let metrics = result["metrics"].as_str().unwrap_or("");
    let drops = |reason: &str| {
        metric_sum(
            metrics,
            "sluice_drops_total",
            &format!("reason=\"{reason}\""),
        )
    };
    assert!(
        metric_sum(metrics, "sluice_rtcp_in_total", "") > 0,
        "ffmpeg's sender reports from the next port were taken: {metrics}"
    );
    for reason in [
        "unknown_source",
        "auth_failed",
        "malformed",
        "unconfirmed_ssrc",
    ] {
        assert_eq!(drops(reason), 0, "no {reason} drops: {metrics}");
    }
    eprintln!(
        "works with: {} | plain transports | AES_CM_128_HMAC_SHA1_80, AES_CM_128_HMAC_SHA1_32, plain RTP | no DTLS",
        result["ffmpeg"].as_str().unwrap_or("ffmpeg")
    );
}
