//! Attacks on the workers' UDP ports: spoofed sources, stolen SSRCs, ICE nominations from addresses
//! that never answer, DTLS floods, random and oversized datagrams while real clients talk.
//!
//! The members here are plain SRTP transports driven from Rust over REST (`POST …/plain`), each
//! with its own loopback socket: our in-place engine protects what they send and webrtc-srtp, the
//! independent oracle, decrypts what they receive. The ICE test runs real aiortc clients
//! (`tests/clients/aiortc_reflect.py`).

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use rand::{Rng, RngCore};
use reqwest::blocking::Client;
use reqwest::StatusCode;
use serde_json::{json, Value};
use sluice_dataplane::packet::RtpHeader;
use sluice_dataplane::srtp::{SrtpContext, SrtpEngine, SrtpKeys, SrtpProfile};

use crate::common::clients::metric_sum;
use crate::common::server::Server;

const KEY: &str = "hostile-media-admin-key-0123456789abcdef";

/// The floods and the real-client tests each want the machine's CPUs (two here) to themselves: one
/// that starves another's clients of CPU would fail it for the wrong reason. They take this in turn.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

fn http() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("http client")
}

fn create_room(s: &Server, room: &str) {
    let r = http()
        .post(s.url("/v1/rooms"))
        .bearer_auth(KEY)
        .json(&json!({"name": room}))
        .send()
        .expect("POST /v1/rooms");
    assert_eq!(r.status(), StatusCode::CREATED);
}

fn metrics(s: &Server) -> String {
    http()
        .get(s.url("/metrics"))
        .bearer_auth(KEY)
        .send()
        .and_then(|r| r.text())
        .expect("GET /metrics")
}

fn drops(m: &str, reason: &str) -> u64 {
    metric_sum(m, "sluice_drops_total", &format!("reason=\"{reason}\""))
}

/// A plain SRTP member: its socket, what it sends with, what it receives with.
struct Member {
    socket: UdpSocket,
    server: SocketAddr,
    send: SrtpContext,
    recv: SrtpContext,
    seq: u16,
}

/// `POST /v1/rooms/{room}/plain` for a member at a fresh socket publishing with `ssrc` (and one
/// receive slot). `Err(code)` when refused.
fn join_plain(s: &Server, room: &str, name: &str, ssrc: u32) -> Result<Member, String> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    socket
        .set_read_timeout(Some(Duration::from_millis(20)))
        .expect("timeout");
    let mut key = vec![0u8; 28];
    rand::rng().fill_bytes(&mut key);
    let r = http()
        .post(s.url(&format!("/v1/rooms/{room}/plain")))
        .bearer_auth(KEY)
        .json(&json!({
            "name": name, "ssrc": ssrc, "slots": 1,
            "remote": socket.local_addr().expect("addr").to_string(),
            "srtp": {"profile": "aes128gcm", "key": b64.encode(&key)},
        }))
        .send()
        .expect("POST plain");
    let status = r.status();
    let body: Value = r.json().expect("JSON body");
    if status != StatusCode::CREATED {
        return Err(body["error"]["code"].as_str().unwrap_or("?").to_string());
    }
    let server = body["server"]
        .as_str()
        .expect("server")
        .parse()
        .expect("addr");
    let theirs = b64
        .decode(body["srtp"]["key"].as_str().expect("key"))
        .expect("base64");
    let profile = SrtpProfile::AeadAes128Gcm;
    let keys = |k: &[u8]| SrtpKeys::new(profile, &k[..16], &k[16..]).expect("key lengths");
    Ok(Member {
        socket,
        server,
        send: SrtpContext::new(SrtpEngine::InPlace, &keys(&key)).expect("context"),
        recv: SrtpContext::new(SrtpEngine::WebrtcSrtp, &keys(&theirs)).expect("context"),
        seq: 0,
    })
}

impl Member {
    /// The next SRTP packet, on `ssrc` (its own or not), whose payload names `who`.
    fn packet(&mut self, ssrc: u32, who: &[u8]) -> Vec<u8> {
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(1);
        let mut p = vec![0x80, 111];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&(u32::from(seq) * 960).to_be_bytes());
        p.extend_from_slice(&ssrc.to_be_bytes());
        p.extend_from_slice(who);
        p.extend_from_slice(&[0x55; 60]);
        let len = p.len();
        p.resize(len + 16, 0);
        let n = self.send.protect_rtp(&mut p, len).expect("protect");
        p.truncate(n);
        p
    }

    /// Reads for `quiet` and returns the payload heads (first 8 bytes) and source (CSRC[0]) of
    /// everything that decrypts; panics on anything that does not.
    fn receive(&mut self, quiet: Duration) -> Vec<(u32, Vec<u8>)> {
        let mut got = Vec::new();
        let mut buf = [0u8; 2048];
        let mut last = Instant::now();
        while last.elapsed() < quiet {
            if let Ok((n, _)) = self.socket.recv_from(&mut buf) {
                last = Instant::now();
                if sluice_dataplane::packet::is_rtcp(&buf[..n]) {
                    continue; // sluice's sender reports on the slot streams (RTCP per hop)
                }
                got.push(decode(&mut self.recv, &mut buf[..n]));
            }
        }
        got
    }
}

/// Decrypts a forwarded packet with the oracle: (source SSRC from CSRC[0], first 8 payload bytes).
fn decode(ctx: &mut SrtpContext, buf: &mut [u8]) -> (u32, Vec<u8>) {
    let n = ctx
        .unprotect_rtp(buf)
        .expect("what sluice sends decrypts with the member's key");
    let hdr = RtpHeader::parse(&buf[..n]).expect("parses");
    let head = hdr.payload().get(..8).unwrap_or_default().to_vec();
    (hdr.csrcs().next().unwrap_or(0), head)
}

#[test]
fn a_member_sending_with_another_members_ssrc_takes_over_nothing() {
    let _turn = one_at_a_time();
    // Two workers: the thief sits on the other worker than the victim and the listener, so its
    // packets would have to cross the relay to do harm.
    let s = Server::start_with_workers(2, &["--api-key", KEY]);
    create_room(&s, "ssrc");
    let mut alice = join_plain(&s, "ssrc", "alice", 0xA11CE).expect("alice joins");
    // Declaring Alice's SSRC is refused outright.
    assert_eq!(
        join_plain(&s, "ssrc", "mallory", 0xA11CE).err().as_deref(),
        Some("ssrc_in_use")
    );
    let mut mallory = join_plain(&s, "ssrc", "mallory", 0x3A11).expect("mallory joins");
    let mut bob = join_plain(&s, "ssrc", "bob", 0xB0B).expect("bob joins");
    assert_ne!(
        mallory.server, bob.server,
        "the thief is on the other worker"
    );

    // Alice talks; Mallory sends, authenticated with her own keys, on Alice's SSRC, twice as fast.
    for i in 0..100 {
        let p = alice.packet(0xA11CE, b"alice...");
        alice.socket.send_to(&p, alice.server).expect("send");
        for _ in 0..2 {
            let p = mallory.packet(0xA11CE, b"mallory.");
            mallory.socket.send_to(&p, mallory.server).expect("send");
        }
        if i % 10 == 9 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let got = bob.receive(Duration::from_millis(500));
    assert!(
        got.len() >= 95,
        "Bob keeps hearing Alice: {} packets",
        got.len()
    );
    assert!(
        got.iter()
            .all(|(src, head)| *src == 0xA11CE && head == b"alice..."),
        "nothing of Mallory's reaches Bob's slot"
    );
    let m = metrics(&s);
    assert!(
        drops(&m, "malformed") >= 190,
        "Mallory's packets are counted drops: {}",
        drops(&m, "malformed")
    );
    assert!(s.terminate().success());
}

/// What one flood datagram is made of.
fn flood_datagram(rng: &mut impl Rng, real: &[Vec<u8>]) -> Vec<u8> {
    let mut d = match rng.random_range(0..6) {
        // Random bytes of any length up to 1,500.
        0 | 1 => {
            let mut d = vec![0u8; rng.random_range(0..=1500)];
            rng.fill_bytes(&mut d);
            d
        }
        // A real SRTP packet, mutated: bits flipped, cut, or grown.
        2 | 3 => {
            let mut d = real[rng.random_range(0..real.len())].clone();
            match rng.random_range(0..3) {
                0 => {
                    for _ in 0..rng.random_range(1..4) {
                        let i = rng.random_range(0..d.len());
                        d[i] ^= 1 << rng.random_range(0..8);
                    }
                }
                1 => d.truncate(rng.random_range(0..d.len())),
                _ => d.extend((0..rng.random_range(1..200)).map(|_| rng.random::<u8>())),
            }
            d
        }
        // STUN-looking (first byte 0..3, the magic cookie) and DTLS-looking (20..63) headers.
        4 => {
            let mut d = vec![0u8; rng.random_range(20..200)];
            rng.fill_bytes(&mut d);
            d[0] &= 0x03;
            d[4..8].copy_from_slice(&0x2112_A442u32.to_be_bytes());
            d
        }
        _ => {
            let mut d = vec![0u8; rng.random_range(13..300)];
            rng.fill_bytes(&mut d);
            d[0] = rng.random_range(20..64);
            d[1] = 0xfe;
            d
        }
    };
    if d.len() > 1500 {
        d.truncate(1500);
    }
    d
}

#[test]
fn two_hundred_thousand_hostile_datagrams_on_every_worker_port_are_each_counted_while_two_members_keep_talking(
) {
    let _turn = one_at_a_time();
    const FLOOD: usize = 200_000;
    let s = Server::start_with_workers(2, &["--api-key", KEY]);
    create_room(&s, "flood");
    let mut alice = join_plain(&s, "flood", "alice", 0xA1).expect("alice");
    let bob = join_plain(&s, "flood", "bob", 0xB2).expect("bob");
    let ports = [alice.server, bob.server];
    assert_ne!(
        ports[0], ports[1],
        "one member per worker: the relay is under fire too"
    );

    // Alice's real packets, to be sent only mutated (from her address too): none authenticates.
    let real: Vec<Vec<u8>> = (0..64).map(|_| alice.packet(0xA1, b"mutated.")).collect();

    // Alice and Bob talk (50 packets a second each) and listen, on their own threads.
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let talk = |mut me: Member, who: &'static [u8; 8], ssrc: u32| {
        let (stop, sent) = (stop.clone(), sent.clone());
        std::thread::spawn(move || {
            let mut heard = Vec::new();
            let mut next = Instant::now();
            let mut buf = [0u8; 2048];
            while !stop.load(Ordering::Relaxed) {
                if Instant::now() >= next {
                    let p = me.packet(ssrc, who);
                    me.socket.send_to(&p, me.server).expect("send");
                    sent.fetch_add(1, Ordering::Relaxed);
                    next += Duration::from_millis(20);
                }
                if let Ok((n, _)) = me.socket.recv_from(&mut buf) {
                    if sluice_dataplane::packet::is_rtcp(&buf[..n]) {
                        continue;
                    }
                    heard.push((Instant::now(), decode(&mut me.recv, &mut buf[..n])));
                }
            }
            (me, heard)
        })
    };
    // Half of the flood's mutated packets come from Alice's own address (the latched path).
    let alice_socket = alice.socket.try_clone().expect("clone");
    let a = talk(alice, b"alice...", 0xA1);
    let b = talk(bob, b"bob.....", 0xB2);
    std::thread::sleep(Duration::from_millis(300));

    let started = Instant::now();
    let stranger = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let mut rng = rand::rng();
    let big = vec![0x80u8; 65_507];
    for port in ports {
        stranger
            .send_to(&big, port)
            .expect("a 65,507-byte datagram");
    }
    for i in 0..FLOOD {
        let d = flood_datagram(&mut rng, &real);
        let from = if i % 4 == 0 { &alice_socket } else { &stranger };
        let _ = from.send_to(&d, ports[i % 2]);
        // About 25,000 datagrams a second: the flood takes ~8 s and the kernel drops none.
        if i % 250 == 249 {
            let due = started + Duration::from_micros(10 * (i as u64 + 1) * 4);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
    }
    let flood_done = Instant::now();
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    let (_alice, heard_a) = a.join().expect("alice's thread");
    let (_bob, heard_b) = b.join().expect("bob's thread");
    // Let the workers finish what is queued before the counters are read.
    std::thread::sleep(Duration::from_millis(300));
    let during = |heard: &[(Instant, (u32, Vec<u8>))], src: u32, head: &[u8]| {
        heard
            .iter()
            .filter(|(t, (s, h))| *t >= started && *t <= flood_done && *s == src && h == head)
            .count()
    };
    let secs = (flood_done - started).as_secs_f64();
    let expected = (secs * 50.0) as usize;
    for (name, heard, src, head) in [
        ("Bob", &heard_b, 0xA1, &b"alice..."[..]),
        ("Alice", &heard_a, 0xB2, &b"bob....."[..]),
    ] {
        let n = during(heard, src, head);
        assert!(
            n * 10 >= expected * 9,
            "{name} kept decoding the other during the flood: {n} of ~{expected} packets"
        );
        assert!(
            heard.iter().all(|(_, (s, _))| *s == src),
            "{name} heard only the other member"
        );
    }

    // Every datagram that reached a worker is accounted for: forwarded (relayed to the other
    // worker: one member each) or dropped under a reason.
    let m = metrics(&s);
    let packets_in = metric_sum(&m, "sluice_packets_in_total", "");
    let relayed = metric_sum(&m, "sluice_relayed_out_total", "");
    let dropped = metric_sum(&m, "sluice_drops_total", "");
    let terminated = metric_sum(&m, "sluice_rtcp_in_total", "")
        + metric_sum(&m, "sluice_stun_answered_total", "");
    assert_eq!(
        packets_in,
        relayed + dropped + terminated,
        "each datagram is forwarded or one counted drop:\n{m}"
    );
    let talked = sent.load(Ordering::Relaxed);
    assert!(
        packets_in >= (FLOOD as u64 + 2) * 95 / 100 + talked * 9 / 10,
        "the flood reached the workers: {packets_in} in, {FLOOD} + 2 + {talked} sent"
    );
    assert_eq!(drops(&m, "oversized"), 2, "the 65,507-byte datagrams");
    for reason in ["unknown_source", "malformed", "auth_failed"] {
        assert!(drops(&m, reason) > 0, "{reason}: {m}");
    }
    assert!(s.terminate().success(), "still up, and stops cleanly");
}

#[test]
fn a_nomination_from_a_second_address_that_never_answers_gets_no_media_and_the_client_keeps_it() {
    let _turn = one_at_a_time();
    let s = Server::start(&["--api-key", KEY]);
    let r = crate::common::clients::run_client_script(
        "aiortc_reflect.py",
        &[&s.base, KEY, "reflect", "3"],
    );
    assert!(
        r["frames_before"].as_u64().unwrap_or(0) >= 25,
        "A heard the speaker first: {r}"
    );
    assert_eq!(r["v_media"], 0, "V receives no media: {r}");
    assert!(
        r["v_checks_from_server"].as_u64().unwrap_or(0) >= 1,
        "sluice asked V to prove it receives (and V never answered): {r}"
    );
    assert!(
        r["frames_during"].as_u64().unwrap_or(0) >= 100,
        "A kept decoding audio through the attack: {r}"
    );
    assert_eq!(r["state"], "connected", "{r}");
    let m = metrics(&s);
    assert!(metric_sum(&m, "sluice_stun_answered_total", "") > 0);
    assert!(s.terminate().success());
}

#[test]
fn a_dtls_flood_from_a_members_own_address_is_dropped_and_counted_while_the_room_and_a_new_handshake_go_on(
) {
    let _turn = one_at_a_time();
    let s = Server::start(&["--api-key", KEY]);
    let r = crate::common::clients::run_client_script(
        "aiortc_dtls_flood.py",
        &[&s.base, KEY, "dtls-flood", "4"],
    );
    eprintln!("dtls flood: {r}");
    let n = |k: &str| r[k].as_u64().unwrap_or(0);
    assert!(
        n("a_before") >= 25 && n("c_before") >= 25,
        "both heard the speaker first: {r}"
    );
    assert!(n("sent") >= 20_000, "the flood was sent: {r}");
    assert!(
        n("a_during") >= 100,
        "the attacker's own audio went on: {r}"
    );
    assert!(
        n("c_during") >= 100,
        "the other listener kept decoding audio: {r}"
    );
    assert!(
        n("d_frames") > 0,
        "a member joining during the flood completed its DTLS handshake and heard the speaker: {r}"
    );
    for (who, state) in r["states"].as_object().expect("states") {
        assert_eq!(state, "connected", "{who}: {r}");
    }
    let m = metrics(&s);
    let flood = drops(&m, "dtls_flood");
    eprintln!("dtls_flood drops: {flood}");
    // Past the small post-handshake budget (8, then 2/s) every flood datagram is dropped here and
    // counted; loopback may lose a few under the burst before sluice sees them.
    assert!(
        flood * 10 >= n("sent") * 9 && flood <= n("sent"),
        "{flood} dtls_flood drops for {} sent",
        n("sent")
    );
    let health = http().get(s.url("/healthz")).send().expect("GET /healthz");
    assert_eq!(health.status(), StatusCode::OK);
    assert!(s.terminate().success());
}

#[test]
fn a_plain_rtp_transport_that_would_latch_unauthenticated_packets_is_refused() {
    let s = Server::start(&["--api-key", KEY]);
    create_room(&s, "latch");
    // No SRTP and no remote: anyone who guessed the SSRC could take the transport by sending first.
    let r = http()
        .post(s.url("/v1/rooms/latch/plain"))
        .bearer_auth(KEY)
        .json(&json!({"name": "tool", "ssrc": 1234, "slots": 1}))
        .send()
        .expect("POST plain");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body: Value = r.json().expect("JSON error");
    assert_eq!(body["error"]["code"], "invalid_field", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("must name its remote"),
        "{body}"
    );
    // Naming the remote, or authenticating with SRTP, is accepted.
    let r = http()
        .post(s.url("/v1/rooms/latch/plain"))
        .bearer_auth(KEY)
        .json(&json!({"name": "tool", "ssrc": 1234, "slots": 1, "remote": "127.0.0.1:9"}))
        .send()
        .expect("POST plain");
    assert_eq!(r.status(), StatusCode::CREATED);
    assert!(join_plain(&s, "latch", "srtp-tool", 5678).is_ok());
    assert!(s.terminate().success());
}
