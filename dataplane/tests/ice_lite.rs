//! ICE-lite in the forwarding core, driven with virtual time: a WebRTC transport's connectivity
//! checks are answered, the nominated address is latched and then carries media, bad checks are
//! counted drops, and consent expires 30 s after the last valid check or authenticated packet from the
//! latched address. A nomination from a new address moves the media only once that address answered
//! a return-routability check signed with the client's password; DTLS is budgeted per transport.

#![deny(unsafe_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_dataplane::forwarder::{Forwarder, ForwarderConfig};
use sluice_dataplane::ice::{self, IceCredentials};
use sluice_dataplane::outbox::Outbox;
use sluice_dataplane::srtp::{SrtpContext, SrtpEngine, SrtpKeys, SrtpProfile};
use sluice_dataplane::stats::{DropReason, WorkerStats};
use sluice_dataplane::topology::{Membership, TopologyUpdate, TransportConfig, TransportKeys};

const SERVER_PWD: &str = "server-password-1234567";
const CLIENT_PWD: &str = "client-password-7654321";

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn check(username: &str, pwd: &str, nominate: bool, txid: u8) -> Vec<u8> {
    let mut buf = [0u8; 256];
    let n = ice::write_binding_request(&[txid; 12], username, pwd, 100, 42, nominate, &mut buf)
        .expect("request fits");
    buf[..n].to_vec()
}

fn rtp(ssrc: u32, seq: u16) -> Vec<u8> {
    let mut p = vec![0x80, 111];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, 0]);
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(&[7u8; 40]);
    p
}

/// A core with a listener (plain, known address) and a WebRTC publisher with ICE credentials and
/// no address yet.
fn setup() -> (Forwarder, Arc<WorkerStats>) {
    let stats = Arc::new(WorkerStats::default());
    let mut core = Forwarder::new(ForwarderConfig::default(), stats.clone());
    let updates = [
        TopologyUpdate::AddTransport(Box::new(TransportConfig {
            id: 1,
            remote: None,
            keys: None,
            latch_ssrcs: vec![],
            audio_level_ext: None,
            ice: Some(IceCredentials::new("srvU", SERVER_PWD, "cliU").with_remote_pwd(CLIENT_PWD)),
            rtcp_remote: None,
        })),
        TopologyUpdate::AddTransport(Box::new(TransportConfig {
            id: 2,
            remote: Some(addr(9000)),
            keys: None,
            latch_ssrcs: vec![],
            audio_level_ext: None,
            ice: None,
            rtcp_remote: None,
        })),
        TopologyUpdate::Join(Box::new(Membership {
            room: 1,
            transport: 1,
            publish_ssrc: Some(0xAA),
            slot_ssrcs: vec![],
            ..Default::default()
        })),
        TopologyUpdate::Join(Box::new(Membership {
            room: 1,
            transport: 2,
            publish_ssrc: None,
            slot_ssrcs: vec![0xB0],
            ..Default::default()
        })),
    ];
    for u in updates {
        core.apply(u).expect("topology applies");
    }
    (core, stats)
}

/// A nominating check from `client` at `now` (latches it as transport 1's address); the answer is
/// discarded.
fn nominate(core: &mut Forwarder, now: Instant, client: SocketAddr, out: &mut Outbox) {
    core.on_datagram(
        now,
        client,
        &mut check("srvU:cliU", SERVER_PWD, true, 1),
        out,
    );
    out.clear();
}

fn gcm_keys(b: u8) -> SrtpKeys {
    SrtpKeys::new(SrtpProfile::AeadAes128Gcm, &[b; 16], &[b; 12]).expect("key lengths")
}

/// Installs transport 1's keys as the DTLS handshake would, and returns the client's sender.
fn install_keys(core: &mut Forwarder) -> SrtpContext {
    core.apply(TopologyUpdate::SetKeys {
        transport: 1,
        keys: Box::new(TransportKeys {
            inbound: gcm_keys(1),
            outbound: gcm_keys(2),
        }),
    })
    .expect("keys install");
    SrtpContext::new(SrtpEngine::InPlace, &gcm_keys(1)).expect("context")
}

#[test]
fn a_nominating_check_is_answered_latches_the_address_and_media_flows() {
    let (mut core, stats) = setup();
    let mut out = Outbox::with_capacity(16);
    let t0 = Instant::now();
    let client = addr(5555);

    // Before any check, the publisher's media is from an unknown source.
    core.on_datagram(t0, client, &mut rtp(0xAA, 1), &mut out);
    assert_eq!(stats.drops(DropReason::UnknownSource), 1);

    // A plain check (no USE-CANDIDATE) is answered but latches nothing.
    core.on_datagram(
        t0,
        client,
        &mut check("srvU:cliU", SERVER_PWD, false, 1),
        &mut out,
    );
    assert_eq!(out.len(), 1);
    let (to, resp) = out.get(0);
    assert_eq!(to, client);
    let msg = ice::verify_message(resp, SERVER_PWD.as_bytes())
        .expect("response verifies with the server password");
    assert_eq!(
        ice::xor_mapped_address(&msg),
        Some(client),
        "XOR-MAPPED-ADDRESS is the client's address"
    );
    assert_eq!(msg.transaction_id(), &[1u8; 12]);
    out.clear();
    assert_eq!(core.transport_remote(1), None);

    // The nominating check latches.
    core.on_datagram(
        t0,
        client,
        &mut check("srvU:cliU", SERVER_PWD, true, 2),
        &mut out,
    );
    assert_eq!(out.len(), 1);
    out.clear();
    assert_eq!(core.transport_remote(1), Some(client));
    core.on_datagram(t0, client, &mut rtp(0xAA, 2), &mut out);
    assert_eq!(out.len(), 1, "the publisher's RTP now reaches the listener");
    assert_eq!(out.get(0).0, addr(9000));
    assert_eq!(stats.snapshot().stun_answered, 2);
}

#[test]
fn bad_checks_are_counted_and_answer_nothing() {
    let (mut core, stats) = setup();
    let mut out = Outbox::with_capacity(16);
    let t0 = Instant::now();
    core.on_datagram(
        t0,
        addr(1),
        &mut check("srvU:cliU", "wrong-password-123456789", true, 1),
        &mut out,
    );
    core.on_datagram(
        t0,
        addr(1),
        &mut check("nobody:cliU", SERVER_PWD, true, 2),
        &mut out,
    );
    core.on_datagram(
        t0,
        addr(1),
        &mut check("srvU:someone-else", SERVER_PWD, true, 3),
        &mut out,
    );
    let mut flipped = check("srvU:cliU", SERVER_PWD, true, 4);
    flipped[30] ^= 1;
    core.on_datagram(t0, addr(1), &mut flipped, &mut out);
    assert!(out.is_empty(), "no answer to a bad check");
    assert_eq!(core.transport_remote(1), None, "and no latching");
    let s = stats.snapshot();
    assert_eq!(
        s.drops(DropReason::AuthFailed),
        2,
        "wrong password, wrong remote ufrag: {s:?}"
    );
    assert_eq!(s.drops(DropReason::UnknownSource), 1, "unknown local ufrag");
    assert_eq!(
        s.drops(DropReason::Malformed),
        1,
        "damaged message (fingerprint)"
    );
}

#[test]
fn consent_expires_thirty_seconds_after_the_last_valid_check() {
    let (mut core, _) = setup();
    let mut out = Outbox::with_capacity(16);
    let t0 = Instant::now();
    // A transport that never completes a check expires 30 s after the first housekeeping pass.
    assert!(core.expire_consent(t0).is_empty());
    core.on_datagram(
        t0 + Duration::from_secs(10),
        addr(5),
        &mut check("srvU:cliU", SERVER_PWD, true, 1),
        &mut out,
    );
    // Consent refreshed at t0+10 s: still alive at t0+39 s, gone at t0+40 s.
    assert!(core.expire_consent(t0 + Duration::from_secs(39)).is_empty());
    assert_eq!(core.expire_consent(t0 + Duration::from_secs(40)), vec![1]);
    assert_eq!(
        core.transport_count(),
        1,
        "only the plain transport is left; it has no consent to lose"
    );
    assert!(core
        .expire_consent(t0 + Duration::from_secs(1000))
        .is_empty());
}

#[test]
fn authenticated_media_from_the_latched_address_keeps_consent_and_nothing_else_does() {
    let (mut core, _) = setup();
    let mut out = Outbox::with_capacity(16);
    let t0 = Instant::now();
    let s = Duration::from_secs;
    let client = addr(5555);
    assert!(core.expire_consent(t0).is_empty());
    nominate(&mut core, t0, client, &mut out);

    // Plain RTP (no keys yet) from the latched address proves nothing.
    core.on_datagram(t0 + s(20), client, &mut rtp(0xAA, 1), &mut out);
    out.clear();
    let mut sender = install_keys(&mut core);
    let mut forger = SrtpContext::new(SrtpEngine::InPlace, &gcm_keys(9)).expect("context");
    let srtp = |ctx: &mut SrtpContext, seq: u16| {
        let mut p = rtp(0xAA, seq);
        let len = p.len();
        p.resize(len + 16, 0);
        let n = ctx.protect_rtp(&mut p, len).expect("protect");
        p.truncate(n);
        p
    };
    // Authenticated SRTP from the latched address, with no check at all (libnice sends Binding
    // indications), keeps the transport: one packet every 10 s for a minute.
    for (i, t) in (28..=88).step_by(10).enumerate() {
        core.on_datagram(
            t0 + s(t),
            client,
            &mut srtp(&mut sender, 10 + i as u16),
            &mut out,
        );
        assert!(out.len() <= 1);
        out.clear();
        assert!(
            core.expire_consent(t0 + s(t + 1)).is_empty(),
            "alive at {t} s"
        );
    }
    // Authenticated SRTCP counts too (a listener only sends receiver reports).
    let mut rr = vec![0x80, 201, 0, 1, 0, 0, 0, 0xAA];
    let len = rr.len();
    rr.resize(len + 32, 0);
    let n = sender.protect_rtcp(&mut rr, len).expect("protect rtcp");
    rr.truncate(n);
    core.on_datagram(t0 + s(110), client, &mut rr, &mut out);
    // Packets with a wrong key from the latched address, and with the right key from elsewhere, do
    // not refresh: the transport goes 30 s after the RR, not after them.
    core.on_datagram(t0 + s(130), client, &mut srtp(&mut forger, 200), &mut out);
    core.on_datagram(
        t0 + s(130),
        addr(6666),
        &mut srtp(&mut sender, 201),
        &mut out,
    );
    assert!(
        core.expire_consent(t0 + s(139)).is_empty(),
        "the RR refreshed at 110 s"
    );
    assert_eq!(core.expire_consent(t0 + s(140)), vec![1]);
}

#[test]
fn dtls_goes_up_only_from_the_confirmed_address_and_flights_and_keys_come_back_down() {
    use sluice_dataplane::topology::Upcall;
    let (mut core, stats) = setup();
    let mut out = Outbox::with_capacity(16);
    let t0 = Instant::now();
    let client = addr(5555);
    let hello = [22u8, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xAA];

    // Before ICE confirmed an address, DTLS is from nobody.
    core.on_datagram(t0, client, &mut hello.clone(), &mut out);
    assert_eq!(stats.drops(DropReason::UnknownSource), 1);
    assert_eq!(core.drain_upcalls().count(), 0);

    nominate(&mut core, t0, client, &mut out);
    core.on_datagram(t0, client, &mut hello.clone(), &mut out);
    let ups: Vec<Upcall> = core.drain_upcalls().collect();
    assert_eq!(
        ups,
        vec![Upcall::Dtls {
            worker: 0,
            transport: 1,
            datagram: hello.to_vec()
        }]
    );
    // DTLS from the plain transport's address is not ours to handle.
    core.on_datagram(t0, addr(9000), &mut hello.clone(), &mut out);
    assert_eq!(stats.drops(DropReason::Unsupported), 1);

    // The control plane's flight goes to the latched address.
    core.apply(TopologyUpdate::Transmit {
        transport: 1,
        datagram: vec![22, 1, 2, 3],
    })
    .expect("known transport");
    assert!(core.drain_control_out(&mut out));
    assert_eq!(out.get(0), (client, &[22u8, 1, 2, 3][..]));
    out.clear();
    assert!(core
        .apply(TopologyUpdate::Transmit {
            transport: 77,
            datagram: vec![1]
        })
        .is_err());

    // Keys installed after the handshake: SRTP from the client now decrypts and is forwarded.
    let mut sender = install_keys(&mut core);
    let mut p = rtp(0xAA, 5);
    let len = p.len();
    p.resize(len + 16, 0);
    let n = sender.protect_rtp(&mut p, len).expect("protect");
    p.truncate(n);
    core.on_datagram(t0, client, &mut p, &mut out);
    assert_eq!(
        out.len(),
        1,
        "decrypted with the installed keys and forwarded"
    );
    assert_eq!(
        core.transport_remote(1),
        Some(client),
        "SetKeys kept the latched address"
    );
}

/// A core with a WebRTC *subscriber* (transport 1, ICE, slot 0xC0, plain RTP) and a plain
/// publisher at port 9000 (SSRC 0xBB): where transport 1's media goes is what these tests watch.
fn setup_subscriber() -> (Forwarder, Arc<WorkerStats>) {
    let stats = Arc::new(WorkerStats::default());
    let mut core = Forwarder::new(ForwarderConfig::default(), stats.clone());
    let updates = [
        TopologyUpdate::AddTransport(Box::new(TransportConfig {
            id: 1,
            remote: None,
            keys: None,
            latch_ssrcs: vec![],
            audio_level_ext: None,
            ice: Some(IceCredentials::new("srvU", SERVER_PWD, "cliU").with_remote_pwd(CLIENT_PWD)),
            rtcp_remote: None,
        })),
        TopologyUpdate::AddTransport(Box::new(TransportConfig {
            id: 2,
            remote: Some(addr(9000)),
            keys: None,
            latch_ssrcs: vec![],
            audio_level_ext: None,
            ice: None,
            rtcp_remote: None,
        })),
        TopologyUpdate::Join(Box::new(Membership {
            room: 1,
            transport: 1,
            publish_ssrc: None,
            slot_ssrcs: vec![0xC0],
            ..Default::default()
        })),
        TopologyUpdate::Join(Box::new(Membership {
            room: 1,
            transport: 2,
            publish_ssrc: Some(0xBB),
            slot_ssrcs: vec![],
            ..Default::default()
        })),
    ];
    for u in updates {
        core.apply(u).expect("topology applies");
    }
    (core, stats)
}

/// Where one packet of the publisher goes now.
fn media_goes_to(core: &mut Forwarder, now: Instant, seq: u16) -> Vec<SocketAddr> {
    let mut out = Outbox::with_capacity(16);
    core.on_datagram(now, addr(9000), &mut rtp(0xBB, seq), &mut out);
    (0..out.len()).map(|i| out.get(i).0).collect()
}

/// The return-routability checks in `out` (Binding requests the server sent), with where they go.
fn probes_in(out: &Outbox) -> Vec<(SocketAddr, Vec<u8>)> {
    (0..out.len())
        .map(|i| out.get(i))
        .filter(|(_, b)| b.len() >= 2 && b[0] == 0 && b[1] == 1)
        .map(|(a, b)| (a, b.to_vec()))
        .collect()
}

/// The client's answer to a server check, as a full ICE agent writes it (signed with its password).
fn client_answer(probe: &[u8], from_seen: SocketAddr) -> Vec<u8> {
    let client = IceCredentials::new("cliU", CLIENT_PWD, "srvU");
    let req = ice::check_binding_request(probe, &client)
        .expect("the check is signed with the client's password, username cliU:srvU");
    let mut buf = [0u8; 128];
    let n = ice::write_binding_success(&req, from_seen, &client, &mut buf).expect("fits");
    buf[..n].to_vec()
}

#[test]
fn a_nomination_from_a_new_address_that_never_answers_moves_nothing() {
    let (mut core, stats) = setup_subscriber();
    let mut out = Outbox::with_capacity(16);
    let t0 = Instant::now();
    let ms = Duration::from_millis;
    let (a, v) = (addr(5555), addr(6666));
    nominate(&mut core, t0, a, &mut out);
    assert_eq!(media_goes_to(&mut core, t0, 1), vec![a]);

    // A valid nominating check from V is answered (to V), and a signed check goes to V.
    core.on_datagram(
        t0 + ms(10),
        v,
        &mut check("srvU:cliU", SERVER_PWD, true, 2),
        &mut out,
    );
    assert_eq!(out.len(), 2, "the answer and the return-routability check");
    let probes = probes_in(&out);
    assert_eq!(probes.len(), 1);
    assert_eq!(probes[0].0, v, "the check goes to the new address");
    let msg = ice::verify_message(&probes[0].1, CLIENT_PWD.as_bytes())
        .expect("signed with the client's ICE password");
    assert_eq!(
        msg.attribute(sluice_dataplane::packet::stun::attr::USERNAME),
        Some(&b"cliU:srvU"[..])
    );
    let first_probe = probes[0].1.clone();
    out.clear();
    assert_eq!(core.transport_remote(1), Some(a), "nothing moved yet");
    assert_eq!(
        media_goes_to(&mut core, t0 + ms(20), 2),
        vec![a],
        "A keeps receiving"
    );

    // More nominations from V within 500 ms: answered, but no second check.
    core.on_datagram(
        t0 + ms(100),
        v,
        &mut check("srvU:cliU", SERVER_PWD, true, 3),
        &mut out,
    );
    assert!(probes_in(&out).is_empty());
    out.clear();

    // Forged answers: unknown transaction, signed with the wrong password, from the wrong address.
    let mut stray = client_answer(&check("cliU:srvU", CLIENT_PWD, false, 9), v);
    core.on_datagram(t0 + ms(200), v, &mut stray, &mut out);
    let wrong = IceCredentials::new("cliU", "not-the-client-password", "srvU");
    let req = ice::check_binding_request(
        &first_probe,
        &IceCredentials::new("cliU", CLIENT_PWD, "srvU"),
    )
    .expect("check");
    let mut buf = [0u8; 128];
    let n = ice::write_binding_success(&req, v, &wrong, &mut buf).expect("fits");
    core.on_datagram(t0 + ms(200), v, &mut buf[..n].to_vec(), &mut out);
    core.on_datagram(
        t0 + ms(200),
        a,
        &mut client_answer(&first_probe, a),
        &mut out,
    );
    assert!(out.is_empty(), "answers get no answer");
    assert_eq!(
        core.transport_remote(1),
        Some(a),
        "no forged answer moves the media"
    );
    let s = stats.snapshot();
    assert_eq!(
        s.drops(DropReason::UnknownSource),
        1,
        "unknown transaction: {s:?}"
    );
    assert_eq!(
        s.drops(DropReason::AuthFailed),
        2,
        "bad signature, wrong address: {s:?}"
    );

    // Past the retry interval, V's nominations get a fresh check (new transaction id) — and the
    // media still goes to A, for as long as V does not answer.
    for (i, t) in (600..5000).step_by(500).enumerate() {
        core.on_datagram(
            t0 + ms(t),
            v,
            &mut check("srvU:cliU", SERVER_PWD, true, 10 + i as u8),
            &mut out,
        );
        let p = probes_in(&out);
        assert_eq!(p.len(), 1, "one check per retry interval at {t} ms");
        assert_ne!(p[0].1[8..20], first_probe[8..20], "a new transaction id");
        out.clear();
        assert_eq!(
            media_goes_to(&mut core, t0 + ms(t + 1), 10 + i as u16),
            vec![a]
        );
    }
}

#[test]
fn a_new_address_that_answers_the_signed_check_gets_the_media_and_moves_are_rate_limited() {
    let (mut core, _) = setup_subscriber();
    let mut out = Outbox::with_capacity(16);
    let t0 = Instant::now();
    let ms = Duration::from_millis;
    let (a, b, c) = (addr(5555), addr(7777), addr(8888));
    nominate(&mut core, t0, a, &mut out);

    // The client moved to B (a new network): it nominates from B, B answers the check.
    core.on_datagram(
        t0 + ms(10),
        b,
        &mut check("srvU:cliU", SERVER_PWD, true, 2),
        &mut out,
    );
    let probe = probes_in(&out).pop().expect("a check to B").1;
    out.clear();
    core.on_datagram(t0 + ms(30), b, &mut client_answer(&probe, b), &mut out);
    assert_eq!(
        core.transport_remote(1),
        Some(b),
        "moved once B proved it receives"
    );
    assert_eq!(media_goes_to(&mut core, t0 + ms(40), 1), vec![b]);
    // The same answer again (a replay) changes nothing.
    core.on_datagram(t0 + ms(50), b, &mut client_answer(&probe, b), &mut out);
    assert_eq!(core.transport_remote(1), Some(b));

    // A nomination from C right after: no check until the move interval has passed.
    core.on_datagram(
        t0 + ms(100),
        c,
        &mut check("srvU:cliU", SERVER_PWD, true, 3),
        &mut out,
    );
    assert!(
        probes_in(&out).is_empty(),
        "rate-limited: no check within 2 s of a move"
    );
    out.clear();
    core.on_datagram(
        t0 + ms(2100),
        c,
        &mut check("srvU:cliU", SERVER_PWD, true, 4),
        &mut out,
    );
    assert_eq!(probes_in(&out).len(), 1, "a check once the interval passed");
    out.clear();
    assert_eq!(media_goes_to(&mut core, t0 + ms(2200), 2), vec![b]);
}

#[test]
fn checks_from_another_address_do_not_refresh_consent() {
    let (mut core, _) = setup_subscriber();
    let mut out = Outbox::with_capacity(16);
    let t0 = Instant::now();
    let s = Duration::from_secs;
    assert!(core.expire_consent(t0).is_empty());
    nominate(&mut core, t0, addr(5555), &mut out);
    // Valid checks keep coming, but from V, which never answers: consent ends 30 s after A's.
    for t in [10, 20, 29] {
        core.on_datagram(
            t0 + s(t),
            addr(6666),
            &mut check("srvU:cliU", SERVER_PWD, false, t as u8),
            &mut out,
        );
        out.clear();
        assert!(core.expire_consent(t0 + s(t)).is_empty());
    }
    assert_eq!(core.expire_consent(t0 + s(30)), vec![1]);
}

#[test]
fn a_first_nomination_from_an_address_another_transport_holds_latches_nothing() {
    let (mut core, _) = setup_subscriber();
    let mut out = Outbox::with_capacity(16);
    let t0 = Instant::now();
    // The ICE client claims the plain publisher's address (spoofed): only a check goes there.
    core.on_datagram(
        t0,
        addr(9000),
        &mut check("srvU:cliU", SERVER_PWD, true, 1),
        &mut out,
    );
    assert_eq!(probes_in(&out).len(), 1);
    out.clear();
    assert_eq!(core.transport_remote(1), None);
    assert_eq!(core.transport_remote(2), Some(addr(9000)));
    // The publisher's media still comes from the publisher (and, with no address, nowhere to go).
    assert!(media_goes_to(&mut core, t0, 1).is_empty());
}

#[test]
fn a_dtls_flood_is_cut_to_the_transport_budget_and_counted() {
    let (mut core, stats) = setup();
    let mut out = Outbox::with_capacity(16);
    let t0 = Instant::now();
    let client = addr(5555);
    nominate(&mut core, t0, client, &mut out);
    let hello = [22u8, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xAA];
    // During the handshake: a generous burst.
    for _ in 0..100 {
        core.on_datagram(t0, client, &mut hello.clone(), &mut out);
    }
    assert_eq!(core.drain_upcalls().count(), 64);
    assert_eq!(stats.drops(DropReason::DtlsFlood), 36);
    // Once the keys are installed, a small one: 8 at once, then one per 500 ms.
    let _ = install_keys(&mut core);
    let t1 = t0 + Duration::from_secs(10);
    for _ in 0..1000 {
        core.on_datagram(t1, client, &mut hello.clone(), &mut out);
    }
    assert_eq!(core.drain_upcalls().count(), 8);
    assert_eq!(stats.drops(DropReason::DtlsFlood), 36 + 992);
    for _ in 0..10 {
        core.on_datagram(
            t1 + Duration::from_secs(1),
            client,
            &mut hello.clone(),
            &mut out,
        );
    }
    assert_eq!(core.drain_upcalls().count(), 2, "refilled at 2 per second");
}
