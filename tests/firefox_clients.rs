//! Firefox through a real `sluice serve`: Firefox ESR (Debian's `firefox-esr`, driven by puppeteer-core
//! over WebDriver BiDi; `scripts/test` installs both) opens the web page at `/` with its fake
//! microphone, a sine tone of 1 kHz, and must hear the others: in a `sfu` room and in a `p2p` room
//! (two Firefox pages each), and in an `auto` room with Chromium and aiortc across the switch from
//! the mesh to the SFU.
//!
//! Every check is per sender: each client sends its own tone (Firefox 1000 Hz, Chromium 440 Hz from a
//! WAV file, aiortc 660 Hz), and each receiver records what arrives on each receive slot (mapped to a
//! participant by the `slots` messages) or mesh connection and finds its frequency, so a slot that
//! carried nobody, or someone else, fails. getStats must show the packets and the decoded samples.
//!
//! Server and browsers run inside a private network namespace (`unshare -n`, or `-rn`): only `lo`
//! exists there, so 127.0.0.1 is the only candidate and nothing leaves the machine. The driver,
//! `tests/clients/firefox_room.mjs`, starts the server in there and prints one JSON line; the aiortc
//! member is `tests/clients/aiortc_member.py`. Each test prints a `works with:` line per client for
//! the README's table: the version, the modes, and the SRTP profile and DTLS version negotiated with
//! sluice (from `/metrics`, and per client from its log line "DTLS-SRTP established"; Chromium's
//! transport stats say the same from its side; Firefox 140 has no transport stats).

#![deny(unsafe_code)]

mod common;

use std::sync::Mutex;
use std::time::Instant;

use common::browsers::{check_modules, installed, root, run_driver};
use common::clients::{metric_sum, negotiated, python, unshare_net};
use common::server::tempdir::TempDir;
use serde_json::Value;

/// One browser scenario at a time: each runs a browser or two and a server on this small machine.
static BROWSER: Mutex<()> = Mutex::new(());

/// The tones the driver gives each client (firefox_room.mjs says the same).
const FIREFOX_HZ: f64 = 1000.0;
const CHROMIUM_HZ: f64 = 440.0;
const AIORTC_HZ: f64 = 660.0;

/// Runs the driver for `scenario` (`sfu`, `p2p` or `mixed`) with `seconds` of talk and Firefox
/// prefs `prefs` (JSON) on top of the driver's; returns its JSON result, which says it ran.
fn run(scenario: &str, seconds: u32, prefs: &str) -> Value {
    let _one = BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let firefox = installed("SLUICE_FIREFOX", "/usr/bin/firefox-esr", "Firefox ESR");
    let chromium = installed("SLUICE_CHROMIUM", "/usr/bin/chromium", "Chromium");
    check_modules(&["puppeteer-core", "playwright-core"]);
    let state = TempDir::new("firefox");
    let started = Instant::now();
    let mut cmd = unshare_net();
    cmd.arg("node")
        .arg(root().join("tests/clients/firefox_room.mjs"))
        .arg(env!("CARGO_BIN_EXE_sluice"))
        .arg(&state.0)
        .args([scenario, &seconds.to_string()])
        .env("SLUICE_FIREFOX", &firefox)
        .env("SLUICE_CHROMIUM", &chromium)
        .env("SLUICE_PYTHON", python())
        .env("SLUICE_FIREFOX_PREFS", prefs)
        // Firefox's temporary profile goes with the state directory.
        .env("TMPDIR", &state.0);
    let result = run_driver(cmd);
    eprintln!(
        "{scenario}: {:.1} s (driver's marks: {})",
        started.elapsed().as_secs_f64(),
        result["timing"]
    );
    result
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

/// `tone` (a receiver's analysis of one received track) is `hz`, clearly: within 15 Hz, most of the
/// energy there, and not silence.
fn assert_tone(tone: &Value, hz: f64, what: &str) {
    let got = tone["hz"].as_f64().unwrap_or(0.0);
    assert!(
        (got - hz).abs() <= 15.0
            && tone["rms"].as_f64().unwrap_or(0.0) > 0.005
            && tone["share"].as_f64().unwrap_or(1.0) > 0.5,
        "{what}: expected a {hz} Hz tone, got {tone}"
    );
}

/// The participant ids of `pages`, by page name.
fn ids(pages: &[Value]) -> Vec<(String, String)> {
    pages
        .iter()
        .map(|p| {
            let id = p["me"]
                .as_str()
                .unwrap_or_else(|| panic!("{} got a welcome: {p}", p["name"]));
            (
                p["name"].as_str().unwrap_or("?").to_string(),
                id.to_string(),
            )
        })
        .collect()
}

/// A page on the SFU hears each of `others` (participant id, tone) on the slot announced as
/// carrying it: packets, over a second of decoded samples, and that participant's tone; and nobody
/// on any other slot.
fn assert_hears_on_slots(p: &Value, others: &[(&str, f64)]) {
    let name = &p["name"];
    assert_eq!(p["mode"], "sfu", "{p}");
    assert_eq!(p["connection"], "connected", "{p}");
    assert!(
        p["mesh"].as_object().is_some_and(|m| m.is_empty()),
        "{name} has no mesh connection left: {p}"
    );
    let slots = p["slots"].as_object().expect("slots");
    for (other, hz) in others {
        let mids: Vec<&String> = slots
            .iter()
            .filter(|(_, who)| who.as_str() == Some(other))
            .map(|(mid, _)| mid)
            .collect();
        assert_eq!(mids.len(), 1, "{name}: one slot announced for {other}: {p}");
        let mid = mids[0].as_str();
        let s = &p["stats"][mid];
        assert!(
            u(&s["packetsReceived"]) > 100,
            "{name} received {other} on slot {mid}: {p}"
        );
        assert!(
            u(&s["totalSamplesReceived"]) > 48_000,
            "{name} decoded over a second of {other}: {p}"
        );
        assert_tone(
            &p["tones"]["sfu"][mid],
            *hz,
            &format!("{name} hears {other} on slot {mid}"),
        );
    }
    // Slots announced empty carried nothing.
    for (mid, who) in slots.iter().filter(|(_, who)| who.is_null()) {
        assert!(
            u(&p["stats"][mid]["packetsReceived"]) < 10,
            "{name}: slot {mid} ({who}) stayed silent: {p}"
        );
    }
}

/// A page in p2p mode hears each of `others` (participant id, tone) on its direct connection, and
/// has no SFU connection.
fn assert_hears_on_mesh(p: &Value, others: &[(&str, f64)]) {
    let name = &p["name"];
    assert_eq!(p["mode"], "p2p", "{p}");
    let mesh = p["mesh"].as_object().expect("mesh stats");
    assert_eq!(mesh.len(), others.len(), "{name}: direct connections: {p}");
    for (other, hz) in others {
        let peer = &mesh[*other];
        assert_eq!(peer["state"], "connected", "{name} to {other}: {p}");
        assert!(
            u(&peer["packetsReceived"]) > 100,
            "{name} from {other}: {p}"
        );
        assert!(
            u(&peer["totalSamplesReceived"]) > 48_000,
            "{name} decoded over a second of {other}: {p}"
        );
        assert_tone(
            &p["tones"]["mesh"][*other],
            *hz,
            &format!("{name} hears {other} directly"),
        );
    }
    assert!(
        p["stats"].as_object().is_none_or(|o| o.is_empty()),
        "{name} has no SFU connection: {p}"
    );
}

/// The "DTLS-SRTP established" lines of the server's log: participant → (SRTP profile, DTLS
/// version, or "DTLS version not logged" by a server that does not log it). Every one names a known
/// profile.
fn negotiated_by_participant(r: &Value) -> Vec<(String, String, String)> {
    let lines = r["dtls"].as_array().expect("dtls lines");
    lines
        .iter()
        .map(|l| {
            let profile = l["profile"].as_str().unwrap_or("?");
            assert!(
                [
                    "AEAD_AES_128_GCM",
                    "AEAD_AES_256_GCM",
                    "AES_CM_128_HMAC_SHA1_80",
                    "AES_CM_128_HMAC_SHA1_32"
                ]
                .contains(&profile),
                "a known SRTP profile: {l}"
            );
            (
                l["participant"].as_str().unwrap_or("?").to_string(),
                profile.to_string(),
                l["dtls"]
                    .as_str()
                    .unwrap_or("DTLS version not logged")
                    .to_string(),
            )
        })
        .collect()
}

/// The name Chromium's getStats gives SRTP profile `profile` as sluice logs it.
fn webrtc_srtp_name(profile: &str) -> String {
    if profile.starts_with("AEAD_") {
        format!("SRTP_{profile}")
    } else {
        profile.to_string()
    }
}

/// `FEFD` → `DTLS 1.2`, `FEFC` → `DTLS 1.3` (getStats `tlsVersion` is the wire version in hex).
fn dtls_name(hex: &str) -> String {
    match hex {
        "FEFD" => "DTLS 1.2".into(),
        "FEFC" => "DTLS 1.3".into(),
        other => format!("tlsVersion {other}"),
    }
}

/// The ClientHellos the server saw: "N B in K datagram(s)" for each distinct shape, with how many
/// transports sent it.
fn client_hellos(r: &Value) -> String {
    // (transport, length) -> datagrams
    let mut per_transport: Vec<(String, String, usize)> = Vec::new();
    for line in r["client_hello_fragments"]
        .as_array()
        .map_or(&[][..], Vec::as_slice)
    {
        let l = line.as_str().unwrap_or("");
        let field = |k: &str| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix(k))
                .unwrap_or("?")
                .to_string()
        };
        let (t, len) = (field("transport="), field("length="));
        match per_transport
            .iter_mut()
            .find(|(tt, ll, _)| *tt == t && *ll == len)
        {
            Some(e) => e.2 += 1,
            None => per_transport.push((t, len, 1)),
        }
    }
    let mut shapes: Vec<(String, usize, usize)> = Vec::new();
    for (_, len, n) in per_transport {
        match shapes.iter_mut().find(|(l, k, _)| *l == len && *k == n) {
            Some(e) => e.2 += 1,
            None => shapes.push((len, n, 1)),
        }
    }
    shapes
        .iter()
        .map(|(len, n, t)| format!("{len} B in {n} datagram(s) ({t} transports)"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn assert_server_clean(r: &Value, established: u64) {
    let metrics = r["metrics"].as_str().unwrap_or("");
    assert_eq!(
        metric_sum(metrics, "sluice_dtls_established_total", ""),
        established,
        "{metrics}"
    );
    assert_eq!(metric_sum(metrics, "sluice_dtls_failures_total", ""), 0);
    assert_eq!(r["server_exit"], 0, "the server stopped cleanly on SIGTERM");
}

fn firefox_version(r: &Value) -> &str {
    let v = r["firefox"].as_str().unwrap_or("?");
    v.strip_prefix("firefox/").unwrap_or(v)
}

#[test]
fn two_firefox_pages_hear_each_other_through_the_sfu() {
    // With the post-quantum DTLS pref Firefox 140 has (Firefox 153 turns it on by default).
    let r = run("sfu", 3, r#"{"media.webrtc.enable_pq_dtls": true}"#);
    let pages = r["pages"].as_array().expect("pages");
    assert_eq!(pages.len(), 2, "{r}");
    let ids = ids(pages);
    for (i, p) in pages.iter().enumerate() {
        assert_eq!(
            p["members"],
            serde_json::json!(["firefox0", "firefox1"]),
            "{p}"
        );
        let other = ids[1 - i].1.as_str();
        assert_hears_on_slots(p, &[(other, FIREFOX_HZ)]);
        // Firefox sends the audio level extension: sluice announced the other page as speaking.
        assert!(
            p["speakersSeen"]
                .as_array()
                .is_some_and(|s| s.iter().any(|x| x == other)),
            "active_speakers named the other page: {p}"
        );
    }
    assert_server_clean(&r, 2);
    let neg = negotiated_by_participant(&r);
    assert_eq!(neg.len(), 2, "{}", r["dtls"]);
    eprintln!(
        "works with: Firefox ESR {} | sfu | {}",
        firefox_version(&r),
        negotiated(r["metrics"].as_str().unwrap_or(""))
    );
    eprintln!("Firefox's ClientHellos: {}", client_hellos(&r));
}

#[test]
fn two_firefox_pages_hear_each_other_peer_to_peer() {
    let r = run("p2p", 3, "{}");
    let pages = r["pages"].as_array().expect("pages");
    assert_eq!(pages.len(), 2, "{r}");
    let ids = ids(pages);
    for (i, p) in pages.iter().enumerate() {
        assert_eq!(
            p["members"],
            serde_json::json!(["firefox0", "firefox1"]),
            "{p}"
        );
        assert_hears_on_mesh(p, &[(ids[1 - i].1.as_str(), FIREFOX_HZ)]);
    }
    // Sluice only relayed the signaling: no media, no DTLS.
    let metrics = r["metrics"].as_str().unwrap_or("");
    assert_eq!(metric_sum(metrics, "sluice_packets_in_total", ""), 0);
    assert_server_clean(&r, 0);
    eprintln!(
        "works with: Firefox ESR {} | p2p | Firefox to Firefox directly, no media through sluice",
        firefox_version(&r)
    );
}

#[test]
fn firefox_chromium_and_aiortc_hear_each_other_across_the_switch_to_the_sfu() {
    let r = run("mixed", 4, "{}");

    // 1. Firefox and Chromium alone (p2p_max 2): a direct connection, each hears the other's tone,
    //    nothing reaches sluice.
    let p2p = &r["p2p"];
    assert_eq!(p2p["ready"], true, "the mesh came up: {p2p}");
    let pages = p2p["pages"].as_array().expect("p2p pages");
    assert_eq!(pages.len(), 2);
    let ids = ids(pages);
    let (firefox, chromium) = (ids[0].1.as_str(), ids[1].1.as_str());
    assert_eq!(
        (ids[0].0.as_str(), ids[1].0.as_str()),
        ("firefox", "chromium")
    );
    assert_hears_on_mesh(&pages[0], &[(chromium, CHROMIUM_HZ)]);
    assert_hears_on_mesh(&pages[1], &[(firefox, FIREFOX_HZ)]);
    assert_eq!(p2p["server_packets_in"], 0, "no media touched sluice");

    // 2. aiortc joined: the room switched to the SFU, both pages moved onto sluice and closed the
    //    mesh, and each of the three hears the two others, each on the slot announced for it.
    let sfu = &r["sfu"];
    assert_eq!(
        sfu["ready"], true,
        "both pages carried audio through sluice: {sfu}"
    );
    let aiortc = r["aiortc_ready"]["id"].as_str().expect("aiortc's id");
    assert_eq!(r["aiortc_ready"]["ready"], true, "{}", r["aiortc_ready"]);
    let pages = sfu["pages"].as_array().expect("sfu pages");
    for p in pages {
        assert_eq!(p["switches"], serde_json::json!(["p2p", "sfu"]), "{p}");
    }
    assert_hears_on_slots(&pages[0], &[(chromium, CHROMIUM_HZ), (aiortc, AIORTC_HZ)]);
    assert_hears_on_slots(&pages[1], &[(firefox, FIREFOX_HZ), (aiortc, AIORTC_HZ)]);
    let a = &sfu["aiortc"];
    assert_eq!(a["modes"], serde_json::json!(["sfu"]), "{a}");
    assert_eq!(a["sfu_state"], "connected", "{a}");
    assert_eq!(a["errors"], serde_json::json!([]), "{a}");
    assert!(a["heard"]["mesh"].is_null(), "{a}");
    for (who, hz) in [(firefox, FIREFOX_HZ), (chromium, CHROMIUM_HZ)] {
        // The window is 4 s: 200 frames of 20 ms.
        assert!(
            u(&a["heard"]["sfu"][who]) > 100,
            "aiortc decoded {who} on its slot: {a}"
        );
        let tone = &a["tones"]["sfu"][who];
        assert!(
            (tone["hz"].as_f64().unwrap_or(0.0) - hz).abs() <= 15.0
                && tone["rms"].as_f64().unwrap_or(0.0) > 0.005,
            "aiortc hears {who}'s {hz} Hz tone on the slot announced for it: {a}"
        );
    }
    assert_eq!(r["room"]["current_mode"], "sfu");
    let metrics = r["metrics"].as_str().unwrap_or("");
    assert_eq!(
        metric_sum(metrics, "sluice_mode_switches_total{to=\"sfu\"}", ""),
        1
    );
    assert_server_clean(&r, 3);

    // What each client negotiated with sluice, and Firefox with Chromium directly.
    let neg = negotiated_by_participant(&r);
    assert_eq!(neg.len(), 3, "{}", r["dtls"]);
    let by = |id: &str| {
        neg.iter()
            .find(|(p, _, _)| p == id)
            .map(|(_, profile, dtls)| (profile.clone(), dtls.clone()))
            .unwrap_or_else(|| panic!("no DTLS-SRTP line for {id}: {}", r["dtls"]))
    };
    let transport = |p: &Value, via: &str| {
        p["transport"]
            .as_array()
            .and_then(|t| t.iter().find(|t| t["via"] == via).cloned())
            .unwrap_or(Value::Null)
    };
    // Chromium's own view of its connection to sluice agrees with sluice's.
    let (c_profile, c_dtls) = by(chromium);
    let ct = transport(&pages[1], "sfu");
    assert_eq!(
        ct["srtpCipher"].as_str().unwrap_or(""),
        webrtc_srtp_name(&c_profile),
        "{ct}"
    );
    let (f_profile, f_dtls) = by(firefox);
    eprintln!(
        "works with: Firefox ESR {} | auto (p2p, then sfu) | {f_profile} over {f_dtls}",
        firefox_version(&r)
    );
    eprintln!(
        "works with: Chromium {} | auto (p2p, then sfu) | {c_profile} over {c_dtls} (Chromium's getStats: {}, {})",
        r["chromium"].as_str().unwrap_or("?"),
        dtls_name(ct["tlsVersion"].as_str().unwrap_or("?")),
        ct["dtlsCipher"].as_str().unwrap_or("?"),
    );
    let (a_profile, a_dtls) = by(aiortc);
    eprintln!(
        "works with: aiortc {} | auto (sfu) | {a_profile} over {a_dtls}",
        r["aiortc_ready"]["version"].as_str().unwrap_or("?")
    );
    let direct = transport(&r["p2p"]["pages"][1], firefox);
    eprintln!(
        "works with: Firefox ESR {} and Chromium {} directly | p2p | {} over {}, {}",
        firefox_version(&r),
        r["chromium"].as_str().unwrap_or("?"),
        direct["srtpCipher"].as_str().unwrap_or("?"),
        dtls_name(direct["tlsVersion"].as_str().unwrap_or("?")),
        direct["dtlsCipher"].as_str().unwrap_or("?"),
    );
}
