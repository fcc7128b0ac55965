//! GStreamer's `webrtcbin` (Debian's GStreamer and libnice, driven from Debian's Python through
//! python3-gi; `scripts/test` installs them) through a real `sluice serve`: two webrtcbin clients and
//! one aiortc client talk in one `sfu` room for about 50 s, each sending its own tone, and each must
//! hear the two others all along, in every 5 s window of the call, also after the 30 s after which
//! sluice removes a transport nobody keeps alive. libnice keeps its pair alive with its default
//! STUN Binding *indications* only (its `keepalive-conncheck` stays off), which are no consent
//! refresh: it is the clients' authenticated SRTP/SRTCP that must keep their transports.
//!
//! The first webrtcbin client's receive sections say `OPUS/48000` without the channel count (its
//! receive transceivers' caps lack `encoding-params=2`, as many GStreamer applications write them),
//! which sluice accepts. The second one offers without `a=ssrc` (webrtcbin does so when the offer
//! is created before the encoder's caps reach it; the driver removes the lines from the offer text
//! to make it deterministic): sluice must learn its SSRC from its media. `SLUICE_GST_WITH_SSRC=1`
//! lets it keep its `a=ssrc` lines, to check the rest of the scenario alone.
//!
//! Everything (server, webrtcbin, aiortc) runs inside a private network namespace (`unshare -n`,
//! or `unshare -rn` when not root): only `lo` exists there, so nothing can leave the machine. The
//! driver, `tests/clients/gst_room.py`, starts the server in there and prints one JSON line, judged
//! here: per receiver and per remote sender (by the `slots` the receiver was told), RTP packets
//! (webrtcbin) and decoded frames with sound, and the tone's frequency, per second.

#![deny(unsafe_code)]

mod common;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Command;

use common::clients::{metric_sum, python, unshare_net};
use common::server::tempdir::TempDir;
use serde_json::Value;

/// Seconds from the common start to the clients' leaving: about 50 s of call after ICE and DTLS.
const SECONDS: u64 = 56;
/// Judged windows, in seconds.
const WINDOW: u64 = 5;
/// What a sender's 5 s window must bring each receiver at least: 20 ms packets (webrtcbin counts
/// RTP) and decoded frames with sound, 40 % of the 250 sent, so a pause of 3 s or more fails.
const MIN_PER_WINDOW: u64 = 100;
/// The longest a client may take to connect (ICE, DTLS) after the common start.
const MAX_SETUP_S: f64 = 6.0;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Debian's Python, which has python3-gi (the `python3` on PATH may be another one):
/// `SLUICE_GST_PYTHON`, else /usr/bin/python3.
fn gst_python() -> PathBuf {
    let p = std::env::var_os("SLUICE_GST_PYTHON")
        .map_or_else(|| "/usr/bin/python3".into(), PathBuf::from);
    let ok = Command::new(&p)
        .args([
            "-c",
            "import gi, websockets; gi.require_version('GstWebRTC', '1.0'); \
             from gi.repository import GstWebRTC",
        ])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "{} lacks python3-gi, GStreamer's webrtcbin typelibs or python3-websockets: run scripts/test \
         (it installs them), or set SLUICE_GST_PYTHON",
        p.display()
    );
    p
}

fn run_scenario(with_ssrc: bool) -> Value {
    let gst = gst_python();
    let aiortc = python();
    let work = TempDir::new("gst");
    let mut cmd = unshare_net();
    cmd.arg(gst)
        .arg(root().join("tests/clients/gst_room.py"))
        .arg(env!("CARGO_BIN_EXE_sluice"))
        .arg(&work.0)
        .arg(aiortc)
        .arg(SECONDS.to_string());
    if !with_ssrc {
        cmd.arg("--no-ssrc");
    }
    let out = cmd.output().expect("unshare and python run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let result: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("gst_room.py prints JSON ({e}): {stdout}\n{stderr}"));
    assert!(
        out.status.success() && result["error"].is_null(),
        "the GStreamer scenario failed to run: {}\n{stderr}",
        serde_json::to_string_pretty(&result).unwrap_or_default()
    );
    result
}

/// `/metrics` drop counters by reason, summed over the workers: `reason=n, ...` (non-zero ones).
fn drops(metrics: &str) -> String {
    let mut by_reason: Vec<(String, u64)> = Vec::new();
    for line in metrics
        .lines()
        .filter(|l| l.starts_with("sluice_drops_total"))
    {
        let Some(reason) = line
            .split("reason=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
        else {
            continue;
        };
        let n: u64 = line
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        match by_reason.iter_mut().find(|(r, _)| r == reason) {
            Some((_, total)) => *total += n,
            None => by_reason.push((reason.to_string(), n)),
        }
    }
    let shown: Vec<String> = by_reason
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(r, n)| format!("{r}={n}"))
        .collect();
    if shown.is_empty() {
        "none".into()
    } else {
        shown.join(", ")
    }
}

/// The sum of `counts[from..to]` (per-second counts).
fn sum(counts: &Value, from: u64, to: u64) -> u64 {
    let a = counts.as_array().map_or(&[][..], Vec::as_slice);
    (from..to)
        .filter_map(|s| a.get(usize::try_from(s).ok()?)?.as_u64())
        .sum()
}

/// The median of the non-null per-second tone estimates in `hz[from..to]`.
fn median_hz(hz: &Value, from: u64, to: u64) -> Option<f64> {
    let a = hz.as_array()?;
    let mut v: Vec<f64> = (from..to)
        .filter_map(|s| a.get(usize::try_from(s).ok()?)?.as_f64())
        .collect();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied()
}

struct Client<'a> {
    name: &'a str,
    kind: &'a str,
    id: &'a str,
    tone: f64,
    v: &'a Value,
}

/// Every way in which a client did not hear another one over the call, one line each; empty when
/// all heard all. Also returns the judged windows, as (from, to) seconds since the common start.
fn judge(result: &Value) -> (Vec<String>, Vec<(u64, u64)>) {
    let mut bad = Vec::new();
    let clients: Vec<Client> = result["clients"]
        .as_array()
        .expect("clients")
        .iter()
        .map(|c| Client {
            name: c["name"].as_str().unwrap_or("?"),
            kind: c["kind"].as_str().unwrap_or("?"),
            id: c["id"].as_str().unwrap_or("?"),
            tone: c["tone_hz"].as_f64().unwrap_or(0.0),
            v: c,
        })
        .collect();
    let mut last_connected: f64 = 0.0;
    for c in &clients {
        if !c.v["failure"].is_null() {
            bad.push(format!(
                "{} ({}) failed: {}",
                c.name, c.kind, c.v["failure"]
            ));
        }
        match c.v["connected_at"].as_f64() {
            Some(t) if t <= MAX_SETUP_S => last_connected = last_connected.max(t),
            t => bad.push(format!(
                "{} ({}) connected at {t:?} s, not within {MAX_SETUP_S} s of the start",
                c.name, c.kind
            )),
        }
        if c.v["state"] != "connected" {
            bad.push(format!(
                "{} ({}) ended in state {}, not connected",
                c.name, c.kind, c.v["state"]
            ));
        }
        if c.v["errors"].as_array().is_some_and(|e| !e.is_empty()) {
            bad.push(format!(
                "{} ({}) was told over signaling: {}",
                c.name, c.kind, c.v["errors"]
            ));
        }
        if !c.v["heard"][c.id].is_null() {
            bad.push(format!("{} ({}) heard itself", c.name, c.kind));
        }
    }
    // Windows from the second after the last client connected to the last full second.
    let start = last_connected.ceil() as u64 + 1;
    let windows: Vec<(u64, u64)> = (0..)
        .map(|k| (start + k * WINDOW, start + (k + 1) * WINDOW))
        .take_while(|&(_, to)| to < SECONDS)
        .collect();
    if windows.last().is_none_or(|&(_, to)| to < 40) {
        bad.push(format!(
            "the judged call ends before 40 s (windows {windows:?}): setup too slow"
        ));
    }
    for r in &clients {
        for s in clients.iter().filter(|s| s.id != r.id) {
            let heard = &r.v["heard"][s.id];
            let mut missed = Vec::new();
            for &(from, to) in &windows {
                let frames = sum(&heard["frames"], from, to);
                // webrtcbin receivers count RTP packets too (aiortc's decoder hides them).
                let rtp = (r.kind == "webrtcbin").then(|| sum(&heard["rtp"], from, to));
                let hz = median_hz(&heard["hz"], from, to);
                let tone_ok = hz.is_some_and(|hz| (hz - s.tone).abs() <= s.tone * 0.1);
                if frames < MIN_PER_WINDOW || rtp.is_some_and(|n| n < MIN_PER_WINDOW) || !tone_ok {
                    let rtp = rtp.map_or(String::new(), |n| format!("{n} RTP packets, "));
                    let hz = hz.map_or("no".into(), |hz| format!("{hz:.0} Hz"));
                    missed.push(format!(
                        "{from}-{to} s: {rtp}{frames} frames with sound, {hz} tone"
                    ));
                }
            }
            if !missed.is_empty() {
                bad.push(format!(
                    "{} ({}) did not hear {} ({}, {}, {} Hz) in {} of {} windows (want >= {MIN_PER_WINDOW} \
                     packets and frames per {WINDOW} s, the tone within 10 %): {}",
                    r.name,
                    r.kind,
                    s.name,
                    s.kind,
                    s.id,
                    s.tone,
                    missed.len(),
                    windows.len(),
                    missed.join("; ")
                ));
            }
        }
    }
    (bad, windows)
}

/// "webrtcbin: AES_CM_128_HMAC_SHA1_80 over DTLSv1.2, aiortc: ..." from the server's log lines.
fn negotiated(result: &Value) -> String {
    let mut seen: Vec<String> = Vec::new();
    for c in result["clients"].as_array().into_iter().flatten() {
        for d in result["dtls"].as_array().into_iter().flatten() {
            if d["participant"] == c["id"] {
                let s = format!(
                    "{}: {} over {}",
                    c["kind"].as_str().unwrap_or("?"),
                    d["profile"].as_str().unwrap_or("?"),
                    d["dtls"].as_str().unwrap_or("DTLS (version not logged)")
                );
                if !seen.contains(&s) {
                    seen.push(s);
                }
            }
        }
    }
    seen.join(", ")
}

#[test]
fn two_webrtcbin_clients_and_aiortc_hear_each_other_for_50_s_one_offering_without_ssrc() {
    let with_ssrc = std::env::var_os("SLUICE_GST_WITH_SSRC").is_some_and(|v| v == "1");
    let result = run_scenario(with_ssrc);
    let metrics = result["metrics"].as_str().unwrap_or("");
    let versions = &result["versions"];
    let (bad, windows) = judge(&result);
    let summary = format!(
        "webrtcbin interop: {}, libnice {}, aiortc {}; negotiated {}; {} s of call judged in {} windows of {WINDOW} s ({}-{} s after the start)",
        versions["gstreamer"].as_str().unwrap_or("?"),
        versions["libnice"].as_str().unwrap_or("?"),
        versions["aiortc"].as_str().unwrap_or("?"),
        negotiated(&result),
        windows.len() as u64 * WINDOW,
        windows.len(),
        windows.first().map_or(0, |w| w.0),
        windows.last().map_or(0, |w| w.1),
    );
    eprintln!("{summary}");

    let clients = result["clients"].as_array().expect("clients");
    let mut setup = Vec::new();
    for (name, want_ssrc) in [("gst0", true), ("gst1", with_ssrc)] {
        let c = clients.iter().find(|c| c["name"] == name);
        let Some(c) = c else {
            setup.push(format!("no client {name}"));
            continue;
        };
        if c["offer_has_ssrc"] != want_ssrc {
            setup.push(format!(
                "{name}'s offer has a=ssrc: {} (want {want_ssrc})",
                c["offer_has_ssrc"]
            ));
        }
        // gst0's receive transceivers' caps lack encoding-params=2: `OPUS/48000` in its offer.
        let sloppy = c["offer"]
            .as_str()
            .is_some_and(|o| o.contains("a=rtpmap:111 OPUS/48000\r\n"));
        if sloppy != (name == "gst0") {
            setup.push(format!(
                "{name}'s offer has `OPUS/48000` without /2: {sloppy} (want {})",
                name == "gst0"
            ));
        }
        if c["keepalive_conncheck"] != false {
            setup.push(format!(
                "{name}: libnice's keepalive-conncheck is {} (want its default, false)",
                c["keepalive_conncheck"]
            ));
        }
    }
    assert!(
        setup.is_empty(),
        "the scenario is not the one meant: {setup:?}"
    );
    if !bad.is_empty() {
        let mut msg = String::new();
        let _ = writeln!(msg, "{} failures:", bad.len());
        for b in &bad {
            let _ = writeln!(msg, "  {b}");
        }
        for c in clients {
            let totals: Vec<String> = c["heard"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(who, h)| format!("{who}: {} frames", sum(&h["frames"], 0, SECONDS)))
                .collect();
            let _ = writeln!(
                msg,
                "  {} ({}, {}) heard in all: {}; slots it was told: {}",
                c["name"].as_str().unwrap_or("?"),
                c["kind"].as_str().unwrap_or("?"),
                c["id"].as_str().unwrap_or("?"),
                totals.join(", "),
                c["announced"]
            );
        }
        let _ = writeln!(msg, "server drops: {}", drops(metrics));
        let _ = writeln!(msg, "{summary}");
        let _ = writeln!(
            msg,
            "server log (tail):\n{}",
            result["server_log"].as_str().unwrap_or("")
        );
        panic!("{msg}");
    }
    assert_eq!(
        metric_sum(metrics, "sluice_dtls_established_total", ""),
        3,
        "{metrics}"
    );
    assert_eq!(
        metric_sum(metrics, "sluice_dtls_failures_total", ""),
        0,
        "{metrics}"
    );
    assert_eq!(
        result["server_exit"], 0,
        "the server stopped cleanly on SIGTERM"
    );
}
