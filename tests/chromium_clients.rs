//! Real browsers through a real `sluice serve`: headless Chromium (Debian's package, driven by
//! playwright-core, both installed by `scripts/test`) opens the web page at `/` twice; each page joins
//! the same room with Chromium's fake microphone, over ICE-lite, DTLS-SRTP and the dataplane, and must
//! receive the other's audio on a speaker slot (getStats `packetsReceived`, decoded samples).
//!
//! Server and browser run inside a private network namespace (`unshare -n`): only `lo` exists there,
//! so 127.0.0.1 is the only candidate and nothing can leave the machine. The driver,
//! `tests/clients/chromium_room.mjs`, starts the server in there and prints one JSON line.
//!
//! Two runs: Chromium's default DTLS settings (then one page mutes itself), and the ClientHello Chromium 156 sends by default
//! (DTLS 1.3 offered, post-quantum key share, 1.4 KB fragmented over two datagrams), enabled on this
//! Chromium with its own switches; the server log must show that ClientHello arriving in pieces.
//!
//! And loss across two hops (`tests/clients/chromium_fec.mjs`): a Chromium page whose listener page
//! loses 5 % of what sluice sends it hears of that loss in sluice's receiver reports (its own hop
//! loses nothing), steadily although the listener reports only every 5 s or so; a plain RTP recorder
//! in the room reads the Opus mode and in-band FEC (LBRR) flags of what sluice forwards, printed.

#![deny(unsafe_code)]

mod common;

use std::path::PathBuf;
use std::sync::Mutex;

use common::browsers::{check_modules, chromium, root, run_driver};
use common::clients::{metric_sum, negotiated, unshare_net};
use common::server::tempdir::TempDir;
use serde_json::Value;

/// One browser scenario at a time: each runs a Chromium and a server on this small machine.
static BROWSER: Mutex<()> = Mutex::new(());

/// Where the hybrid run saves its screenshot of `/admin` (kept for people to look at).
fn admin_screenshot() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    dir.join("admin.png")
}

struct Run {
    result: Value,
}

impl Run {
    fn pages(&self) -> &[Value] {
        self.result["pages"].as_array().map_or(&[], Vec::as_slice)
    }

    fn metric(&self, name: &str) -> u64 {
        metric_sum(self.result["metrics"].as_str().unwrap_or(""), name, "")
    }
}

fn run_pages(pages: usize, seconds: u32, chromium_args: &str, flags: &[&str]) -> Run {
    let _one = BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let chromium = chromium();
    check_modules(&["playwright-core"]);
    let state = TempDir::new("chromium");
    let mut cmd = unshare_net();
    cmd.arg("node")
        .arg(root().join("tests/clients/chromium_room.mjs"))
        .arg(env!("CARGO_BIN_EXE_sluice"))
        .arg(&state.0)
        .args([pages.to_string(), seconds.to_string()])
        .args(flags)
        .env("SLUICE_CHROMIUM", &chromium)
        .env("SLUICE_CHROMIUM_ARGS", chromium_args)
        .env("SLUICE_ADMIN_SCREENSHOT", admin_screenshot());
    let result = run_driver(cmd);
    Run { result }
}

/// Each page is connected, lists both members, and received and decoded the other's audio.
fn assert_pages_hear_each_other(run: &Run) {
    let pages = run.pages();
    assert_eq!(pages.len(), 2, "{}", run.result);
    let ids: Vec<&str> = pages.iter().filter_map(|p| p["me"].as_str()).collect();
    assert_eq!(ids.len(), 2, "both pages got a welcome: {}", run.result);
    for (i, p) in pages.iter().enumerate() {
        assert_eq!(p["connection"], "connected", "{p}");
        assert_eq!(p["members"], serde_json::json!(["page0", "page1"]), "{p}");
        let stats = p["stats"]
            .as_object()
            .unwrap_or_else(|| panic!("slot stats: {p}"));
        let (best_mid, best) = stats
            .iter()
            .max_by_key(|(_, s)| s["packetsReceived"].as_u64().unwrap_or(0))
            .unwrap_or_else(|| panic!("{} received nothing on any slot: {p}", p["name"]));
        let packets = best["packetsReceived"].as_u64().unwrap_or(0);
        assert!(
            packets > 100,
            "{} received the other page's audio: {p}",
            p["name"]
        );
        assert!(
            best["totalSamplesReceived"].as_u64().unwrap_or(0) > 48_000,
            "and decoded over a second of it: {p}"
        );
        // The slot that carries audio is announced as carrying the other page.
        let other = ids[1 - i];
        assert_eq!(
            p["slots"][best_mid].as_str(),
            Some(other),
            "the page was told who is on slot {best_mid}: {p}"
        );
        // Chromium's fake microphone beeps: the other page (and this one) were announced as speaking.
        let seen: Vec<&str> = p["speakersSeen"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        assert!(
            seen.contains(&other),
            "active_speakers named the other page: {p}"
        );
    }
    assert_eq!(
        run.metric("sluice_dtls_established_total"),
        2,
        "{}",
        run.result["metrics"]
    );
    assert_eq!(run.metric("sluice_dtls_failures_total"), 0);
    assert!(run.metric("sluice_joins_total") >= 2);
    eprintln!(
        "works with: Chromium {} | sfu | {} (every page heard the other {} ms after the talk)",
        run.result["browser"].as_str().unwrap_or("?"),
        negotiated(run.result["metrics"].as_str().unwrap_or("")),
        run.result["sfu_settled_ms"]
    );
    assert_eq!(
        run.result["server_exit"], 0,
        "the server stopped cleanly on SIGTERM"
    );
}

#[test]
fn two_chromium_pages_hear_each_other_with_default_dtls_settings() {
    let run = run_pages(2, 6, "", &["mute"]);
    assert_pages_hear_each_other(&run);
    // Then page0 pressed Mute: the server stops forwarding it (counted as `muted` drops), and page1
    // shows it muted.
    let m = &run.result["mute"];
    let (before, after) = (
        m["before"].as_u64().unwrap_or(0),
        m["after"].as_u64().unwrap_or(0),
    );
    assert!(before > 100, "{m}");
    assert!(
        after - before <= 5,
        "nothing forwarded from a muted member: {m}"
    );
    assert!(m["shown"].as_str().unwrap_or("").contains("muted"), "{m}");
    let muted_drops = metric_sum(
        run.result["metrics"].as_str().unwrap_or(""),
        "sluice_drops_total",
        "reason=\"muted\"",
    );
    assert!(
        muted_drops > 50,
        "the muted member's packets were dropped: {muted_drops}"
    );
}

#[test]
fn chromium_with_a_fragmented_dtls13_client_hello_is_served() {
    // Chromium 156's default: DTLS 1.3 offered with an ML-KEM key share, so the ClientHello is about
    // 1.4 KB and goes out in two fragments. This Chromium does the same with these switches.
    let run = run_pages(
        2,
        6,
        "--force-fieldtrials=WebRTC-ForceDtls13/Enabled/ --enable-features=WebRtcPqcForDtls",
        &[],
    );
    let fragments: Vec<&str> = run.result["client_hello_fragments"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    assert!(
        fragments.iter().any(|l| l.contains("partial=true")),
        "the server saw the ClientHello in pieces: {fragments:?}"
    );
    assert_pages_hear_each_other(&run);
}

/// What the recorder counted in `phase` for each slot stream: `key` (packets, lbrr, silk, hybrid,
/// celt), largest first.
fn per_slot(r: &Value, phase: &str, key: &str) -> Vec<u64> {
    let mut v: Vec<u64> = r["counts"][phase]
        .as_object()
        .map(|o| o.values().map(|c| c[key].as_u64().unwrap_or(0)).collect())
        .unwrap_or_default();
    v.sort_unstable_by(|a, b| b.cmp(a));
    v
}

#[test]
fn a_chromium_talker_hears_of_its_listeners_five_percent_loss_two_hops_away() {
    let _one = BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let chromium = chromium();
    check_modules(&["playwright-core"]);
    let state = TempDir::new("chromium-fec");
    let mut cmd = unshare_net();
    cmd.arg("node")
        .arg(root().join("tests/clients/chromium_fec.mjs"))
        .arg(env!("CARGO_BIN_EXE_sluice"))
        .arg(&state.0)
        .args(["0.05", "8"])
        .env("SLUICE_CHROMIUM", &chromium);
    let r = run_driver(cmd);
    let polls: Vec<f64> = r["talker_fraction_lost"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default();
    let clean_loss = r["clean"]["talker"]["remote_inbound"][0]["fractionLost"].as_f64();
    let lost = r["lossy"]["lossy"]["inbound"][0]["packetsLost"]
        .as_u64()
        .unwrap_or(0);
    println!(
        "Chromium behind 5 % loss two hops away: the lossy page lost {lost} packets; the talker's \
         receiver reports said fraction lost {clean_loss:?} before, then every 0.5 s {polls:?}; \
         the talker's Opus per slot (clean, lossy): CELT-only {:?} {:?}, SILK {:?} {:?}, hybrid \
         {:?} {:?}, with FEC (LBRR) {:?} {:?}; the lossy page's inbound-rtp {}; sluice's answer {}",
        per_slot(&r, "clean", "celt"),
        per_slot(&r, "lossy", "celt"),
        per_slot(&r, "clean", "silk"),
        per_slot(&r, "lossy", "silk"),
        per_slot(&r, "clean", "hybrid"),
        per_slot(&r, "lossy", "hybrid"),
        per_slot(&r, "clean", "lbrr"),
        per_slot(&r, "lossy", "lbrr"),
        r["lossy"]["lossy"]["inbound"],
        r["answer_fmtp"]
    );
    let heard = per_slot(&r, "clean", "packets");
    assert!(
        heard.len() == 2 && heard[1] > 200,
        "the recorder heard both pages: {heard:?}\n{r}"
    );
    assert_eq!(clean_loss, Some(0.0), "nobody loses anything at first: {r}");
    assert!(lost >= 5, "the lossy page lost packets: {r}");
    // The talker's own hop loses nothing: what its receiver reports say is its listener's loss,
    // and it holds between that listener's reports (every 5 s or so) instead of flapping to 0.
    let first = polls.iter().position(|&f| f > 0.0);
    assert!(
        first.is_some_and(|i| i < polls.len() / 2),
        "the talker hears of the loss within seconds: {polls:?}\n{r}"
    );
    let since = &polls[first.unwrap_or(0)..];
    assert!(
        since.iter().all(|&f| f > 0.0),
        "and keeps hearing of it: {polls:?}"
    );
}

/// A page in p2p mode with `peers` connected direct connections that each carried audio, and no SFU
/// connection.
fn assert_mesh(p: &Value, peers: usize) {
    assert_eq!(p["mode"], "p2p", "{p}");
    let mesh = p["mesh"].as_object().expect("mesh stats");
    assert_eq!(mesh.len(), peers, "{peers} direct connections: {p}");
    for peer in mesh.values() {
        assert_eq!(peer["state"], "connected", "{p}");
        assert!(peer["packetsReceived"].as_u64().unwrap_or(0) > 100, "{p}");
    }
    assert!(
        p["stats"].as_object().is_none_or(|o| o.is_empty()),
        "no SFU connection: {p}"
    );
}

#[test]
fn chromium_pages_talk_peer_to_peer_then_keep_hearing_each_other_through_the_sfu() {
    let run = run_pages(4, 5, "", &["hybrid"]);
    let r = &run.result;
    // Three pages in an auto room with p2p_max 3: a direct connection to each other page, no media
    // through sluice.
    let p2p = r["p2p"]["pages"].as_array().expect("p2p snapshot");
    assert_eq!(p2p.len(), 3);
    for p in p2p {
        assert_mesh(p, 2);
    }
    assert_eq!(
        r["p2p"]["server_packets_in"], 0,
        "no media touched sluice while the room was peer to peer"
    );

    // The fourth page switched the room to the SFU; everyone hears the three others through slots,
    // the first three closed their mesh, and nobody's audio paused for more than a moment.
    eprintln!(
        "longest silence per page, ms: at the switch to the SFU {}, back to p2p {}; every slot carried 2 s of audio {} ms after the gap window",
        r["switch_gap_ms"], r["back_gap_ms"], r["sfu_settled_ms"]
    );
    let pages = run.pages();
    assert_eq!(pages.len(), 4);
    let ids: Vec<&str> = pages.iter().filter_map(|p| p["me"].as_str()).collect();
    for (i, p) in pages.iter().enumerate() {
        assert_eq!(p["mode"], "sfu", "{p}");
        let expected = if i < 3 {
            serde_json::json!(["p2p", "sfu"])
        } else {
            serde_json::json!(["sfu"])
        };
        assert_eq!(p["switches"], expected, "{p}");
        assert!(
            p["mesh"].as_object().is_some_and(|m| m.is_empty()),
            "mesh closed: {p}"
        );
        let stats = p["stats"]
            .as_object()
            .unwrap_or_else(|| panic!("slot stats: {p}"));
        let mut heard: Vec<&str> = stats
            .iter()
            .filter(|(_, s)| s["packetsReceived"].as_u64().unwrap_or(0) > 100)
            .filter_map(|(mid, _)| p["slots"][mid].as_str())
            .collect();
        heard.sort_unstable();
        let mut others: Vec<&str> = ids
            .iter()
            .copied()
            .filter(|&id| Some(id) != p["me"].as_str())
            .collect();
        others.sort_unstable();
        assert_eq!(
            heard, others,
            "{} hears the three others on announced slots: {p}",
            p["name"]
        );
    }
    for gap in r["switch_gap_ms"].as_array().expect("gaps") {
        assert!(
            gap.as_u64().unwrap_or(u64::MAX) < 1000,
            "audio gap at the switch: {}",
            r["switch_gap_ms"]
        );
    }
    assert_eq!(r["room"]["current_mode"], "sfu");

    // Two pages left: after the cooldown the two others are back on a mesh, hear each other, closed
    // their SFU connection, and sluice receives nothing more; again without an audible gap.
    let back = r["back"]["pages"].as_array().expect("back snapshot");
    assert_eq!(back.len(), 2);
    for p in back {
        assert_mesh(p, 1);
        assert_eq!(
            p["switches"],
            serde_json::json!(["p2p", "sfu", "p2p"]),
            "{p}"
        );
    }
    let pin = &r["back"]["server_packets_in"];
    assert_eq!(pin[0], pin[1], "nothing reaches sluice on the mesh: {pin}");
    assert_eq!(r["back"]["room"]["current_mode"], "p2p");
    for gap in r["back_gap_ms"].as_array().expect("gaps") {
        assert!(
            gap.as_u64().unwrap_or(u64::MAX) < 1000,
            "audio gap back to p2p: {}",
            r["back_gap_ms"]
        );
    }
    assert_eq!(run.metric("sluice_mode_switches_total{to=\"sfu\"}"), 1);
    assert_eq!(run.metric("sluice_mode_switches_total{to=\"p2p\"}"), 1);
    assert_eq!(r["server_exit"], 0);

    // The admin page: refused without the key; with it, the node, the room, its mode and members,
    // and live per-worker packet rates (the four pages send 50 packets/s each to sluice).
    assert_eq!(r["admin_unauthenticated"], 401);
    let a = &r["admin"];
    assert!(a["refreshes"].as_u64().unwrap_or(0) >= 3, "{a}");
    assert_eq!(a["error"], "", "{a}");
    assert_eq!(
        a["rooms"],
        serde_json::json!([{"name": "browsers", "mode": "sfu", "connected": 4,
            "members": ["page0", "page1", "page2", "page3"]}]),
        "{a}"
    );
    // A single node is its own cluster: one node, serving, with the four members.
    let nodes = a["nodes"].as_array().expect("the cluster section");
    assert_eq!(nodes.len(), 1, "{a}");
    assert_eq!(
        (&nodes[0]["state"], &nodes[0]["members"]),
        (&Value::from("serving"), &Value::from(4)),
        "{a}"
    );
    let pps_in: f64 = a["rates"]
        .as_array()
        .expect("rates")
        .iter()
        .filter_map(|w| w["pps_in"].as_f64())
        .sum();
    assert!(pps_in > 100.0, "live packets/s in: {a}");
    let shot = std::fs::metadata(admin_screenshot()).expect("the admin screenshot was saved");
    assert!(
        shot.len() > 5_000,
        "a real screenshot: {} bytes",
        shot.len()
    );
    eprintln!("admin page screenshot: {}", admin_screenshot().display());
}
