//! A publisher whose SSRC is learned from its traffic (an offer without `a=ssrc`, or a sender that
//! changes SSRC mid-call), driven with virtual time: its first authenticated packet on an
//! unconfirmed SSRC is held back and proposed to the control plane once, forwarding starts when the
//! control plane confirms it, a change of SSRC frees the old stream's slot, packets naming another
//! section's MID are never proposed, unauthenticated ones never are either, and a refused proposal
//! (another member's SSRC) stays a counted drop while everybody else keeps flowing.

#![deny(unsafe_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_dataplane::forwarder::{Forwarder, ForwarderConfig};
use sluice_dataplane::ice::{self, IceCredentials};
use sluice_dataplane::outbox::Outbox;
use sluice_dataplane::packet::ext::write_one_byte_extensions;
use sluice_dataplane::srtp::{SrtpContext, SrtpEngine, SrtpKeys, SrtpProfile};
use sluice_dataplane::stats::{DropReason, WorkerStats};
use sluice_dataplane::topology::{
    EgressFormat, Membership, TopologyUpdate, TransportConfig, TransportKeys, Upcall,
};

const SERVER_PWD: &str = "server-password-1234567";
/// The MID header-extension id the learning publisher negotiated.
const MID_EXT: u8 = 4;
/// The other publisher's SSRC (a plain transport with a declared SSRC).
const OTHER: u32 = 0xCC;
const LISTENER: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9000);
const OTHER_ADDR: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9001);
const CLIENT: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 5555);

fn keys(b: u8) -> SrtpKeys {
    SrtpKeys::new(SrtpProfile::AeadAes128Gcm, &[b; 16], &[b; 12]).expect("key lengths")
}

/// A plain RTP packet; with `mid`, it carries the MID header extension.
fn rtp(ssrc: u32, seq: u16, mid: Option<&str>) -> Vec<u8> {
    let mut p = vec![0x80, 111];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, 0]);
    p.extend_from_slice(&ssrc.to_be_bytes());
    if let Some(mid) = mid {
        p[0] |= 0x10;
        let mut ext = [0u8; 32];
        let n = write_one_byte_extensions(&mut ext, &[(MID_EXT, mid.as_bytes())]).expect("fits");
        p.extend_from_slice(&ext[..n]);
    }
    p.extend_from_slice(&[7u8; 40]);
    p
}

/// The client's SRTP sender.
struct Client(SrtpContext);

impl Client {
    fn srtp(&mut self, ssrc: u32, seq: u16, mid: Option<&str>) -> Vec<u8> {
        let mut p = rtp(ssrc, seq, mid);
        let len = p.len();
        p.resize(len + 16, 0);
        let n = self.0.protect_rtp(&mut p, len).expect("protect");
        p.truncate(n);
        p
    }
}

/// A core with a learning WebRTC publisher (transport 1, mic section MID "0", no SSRC yet), already
/// ICE-nominated from [`CLIENT`] and keyed; a listener with one slot (transport 2); another plain
/// publisher (transport 3, SSRC [`OTHER`]).
fn setup(now: Instant) -> (Forwarder, Arc<WorkerStats>, Client) {
    let stats = Arc::new(WorkerStats::default());
    let mut core = Forwarder::new(ForwarderConfig::default(), stats.clone());
    let plain = |id, remote| {
        TopologyUpdate::AddTransport(Box::new(TransportConfig {
            id,
            remote: Some(remote),
            keys: None,
            latch_ssrcs: vec![],
            audio_level_ext: None,
            ice: None,
            rtcp_remote: None,
        }))
    };
    let updates = [
        TopologyUpdate::AddTransport(Box::new(TransportConfig {
            id: 1,
            remote: None,
            keys: None,
            latch_ssrcs: vec![],
            audio_level_ext: None,
            ice: Some(IceCredentials::new("srvU", SERVER_PWD, "cliU")),
            rtcp_remote: None,
        })),
        plain(2, LISTENER),
        plain(3, OTHER_ADDR),
        TopologyUpdate::Join(Box::new(Membership {
            room: 1,
            transport: 1,
            publish_ssrc: None,
            learn_ssrc: true,
            publish_mid: Some("0".into()),
            egress: EgressFormat {
                mid_ext: Some(MID_EXT),
                ..EgressFormat::default()
            },
            ..Default::default()
        })),
        TopologyUpdate::Join(Box::new(Membership {
            room: 1,
            transport: 2,
            slot_ssrcs: vec![0xB0],
            ..Default::default()
        })),
        TopologyUpdate::Join(Box::new(Membership {
            room: 1,
            transport: 3,
            publish_ssrc: Some(OTHER),
            ..Default::default()
        })),
    ];
    for u in updates {
        core.apply(u).expect("topology applies");
    }
    let mut out = Outbox::with_capacity(16);
    let mut check = [0u8; 256];
    let n =
        ice::write_binding_request(&[1; 12], "srvU:cliU", SERVER_PWD, 100, 42, true, &mut check)
            .expect("request fits");
    core.on_datagram(now, CLIENT, &mut check[..n], &mut out);
    core.apply(TopologyUpdate::SetKeys {
        transport: 1,
        keys: Box::new(TransportKeys {
            inbound: keys(1),
            outbound: keys(2),
        }),
    })
    .expect("keys install");
    let _ = core.drain_upcalls().count();
    let client = Client(SrtpContext::new(SrtpEngine::InPlace, &keys(1)).expect("context"));
    (core, stats, client)
}

/// Feeds one datagram and returns what the listener was sent (count) and the upcalls it raised.
fn feed(
    core: &mut Forwarder,
    now: Instant,
    from: SocketAddr,
    mut pkt: Vec<u8>,
) -> (usize, Vec<Upcall>) {
    let mut out = Outbox::with_capacity(16);
    core.on_datagram(now, from, &mut pkt, &mut out);
    let to_listener = (0..out.len()).filter(|&i| out.get(i).0 == LISTENER).count();
    (to_listener, core.drain_upcalls().collect())
}

fn proposals(upcalls: &[Upcall]) -> Vec<u32> {
    upcalls
        .iter()
        .filter_map(|u| match u {
            Upcall::PublishSsrc {
                transport: 1, ssrc, ..
            } => Some(*ssrc),
            _ => None,
        })
        .collect()
}

#[test]
fn the_first_authenticated_packet_proposes_the_ssrc_and_forwarding_starts_once_confirmed() {
    let t0 = Instant::now();
    let (mut core, stats, mut client) = setup(t0);

    // Held back, proposed once (not once per packet), and never counted as `muted`.
    let (sent, up) = feed(&mut core, t0, CLIENT, client.srtp(0x11, 1, Some("0")));
    assert_eq!((sent, proposals(&up)), (0, vec![0x11]));
    let (sent, up) = feed(
        &mut core,
        t0 + Duration::from_millis(20),
        CLIENT,
        client.srtp(0x11, 2, Some("0")),
    );
    assert_eq!((sent, proposals(&up)), (0, vec![]));
    assert_eq!(stats.drops(DropReason::UnconfirmedSsrc), 2);
    assert_eq!(stats.drops(DropReason::Muted), 0);

    // Confirmed: its packets reach the listener's slot.
    core.apply(TopologyUpdate::SetPublishSsrc {
        transport: 1,
        ssrc: 0x11,
    })
    .expect("confirm");
    let (sent, up) = feed(
        &mut core,
        t0 + Duration::from_millis(40),
        CLIENT,
        client.srtp(0x11, 3, Some("0")),
    );
    assert_eq!(sent, 1);
    assert!(up.contains(&Upcall::SlotChanged {
        worker: 0,
        transport: 2,
        slot: 0,
        source: Some(0x11),
    }));

    // A packet without the MID extension is fine too (the extension is optional per packet).
    let (sent, _) = feed(
        &mut core,
        t0 + Duration::from_millis(60),
        CLIENT,
        client.srtp(0x11, 4, None),
    );
    assert_eq!(sent, 1);
}

#[test]
fn a_change_of_ssrc_is_followed_and_frees_the_old_streams_slot() {
    let t0 = Instant::now();
    let (mut core, stats, mut client) = setup(t0);
    feed(&mut core, t0, CLIENT, client.srtp(0x11, 1, Some("0")));
    core.apply(TopologyUpdate::SetPublishSsrc {
        transport: 1,
        ssrc: 0x11,
    })
    .expect("confirm");
    assert_eq!(
        feed(&mut core, t0, CLIENT, client.srtp(0x11, 2, Some("0"))).0,
        1
    );

    // The sender switches to 0x22 (a new encoder): proposed at once, the old SSRC's slot is freed
    // on confirmation and the new stream takes it.
    let t1 = t0 + Duration::from_millis(100);
    let (sent, up) = feed(&mut core, t1, CLIENT, client.srtp(0x22, 1, Some("0")));
    assert_eq!((sent, proposals(&up)), (0, vec![0x22]));
    core.apply(TopologyUpdate::SetPublishSsrc {
        transport: 1,
        ssrc: 0x22,
    })
    .expect("confirm");
    let up: Vec<Upcall> = core.drain_upcalls().collect();
    assert!(
        up.contains(&Upcall::SlotChanged {
            worker: 0,
            transport: 2,
            slot: 0,
            source: None
        }),
        "the old stream's slot is freed: {up:?}"
    );
    let (sent, up) = feed(&mut core, t1, CLIENT, client.srtp(0x22, 2, Some("0")));
    assert_eq!(sent, 1);
    assert!(up.contains(&Upcall::SlotChanged {
        worker: 0,
        transport: 2,
        slot: 0,
        source: Some(0x22),
    }));
    // Stale packets of the old stream are held back, not forwarded twice onto the slot.
    let (sent, _) = feed(&mut core, t1, CLIENT, client.srtp(0x11, 3, Some("0")));
    assert_eq!(sent, 0);
    assert_eq!(stats.drops(DropReason::Muted), 0);
}

#[test]
fn only_authenticated_packets_on_the_publishing_mid_are_proposed() {
    let t0 = Instant::now();
    let (mut core, stats, mut client) = setup(t0);
    // Another section's MID (a receive-only slot section): held back, never proposed.
    let (sent, up) = feed(&mut core, t0, CLIENT, client.srtp(0x11, 1, Some("1")));
    assert_eq!((sent, proposals(&up)), (0, vec![]));
    // A forgery (wrong key) from the latched address, and the right key from another address.
    let mut forger = Client(SrtpContext::new(SrtpEngine::InPlace, &keys(9)).expect("context"));
    let (_, up) = feed(&mut core, t0, CLIENT, forger.srtp(0x33, 1, Some("0")));
    assert_eq!(proposals(&up), vec![]);
    assert_eq!(stats.drops(DropReason::AuthFailed), 1);
    let (_, up) = feed(
        &mut core,
        t0,
        SocketAddr::from(([127, 0, 0, 1], 6666)),
        client.srtp(0x44, 1, Some("0")),
    );
    assert_eq!(proposals(&up), vec![]);
    assert_eq!(stats.drops(DropReason::UnknownSource), 1);
    // The right MID from the right address and key is.
    let (_, up) = feed(&mut core, t0, CLIENT, client.srtp(0x11, 2, Some("0")));
    assert_eq!(proposals(&up), vec![0x11]);
}

#[test]
fn a_refused_proposal_stays_a_counted_drop_repeated_once_a_second_and_others_keep_flowing() {
    let t0 = Instant::now();
    let (mut core, stats, mut client) = setup(t0);
    // The learning publisher sends with the other publisher's SSRC; the control plane refuses (it
    // never answers), so nothing of it is forwarded, while the real owner of that SSRC flows.
    let mut proposed = 0;
    let mut forwarded_from_other = 0;
    for i in 0..150u16 {
        let now = t0 + Duration::from_millis(20 * u64::from(i));
        let (sent, up) = feed(&mut core, now, CLIENT, client.srtp(OTHER, i, Some("0")));
        assert_eq!(sent, 0, "packet {i} of the impostor was forwarded");
        proposed += proposals(&up).len();
        forwarded_from_other += feed(&mut core, now, OTHER_ADDR, rtp(OTHER, i, None)).0;
    }
    // 3 s of packets: proposed at 0 s, 1 s and 2 s.
    assert_eq!(proposed, 3);
    assert_eq!(forwarded_from_other, 150);
    assert_eq!(stats.drops(DropReason::UnconfirmedSsrc), 150);
}

#[test]
fn a_publisher_that_does_not_learn_keeps_its_declared_ssrc() {
    let t0 = Instant::now();
    let (mut core, stats, mut client) = setup(t0);
    core.apply(TopologyUpdate::Join(Box::new(Membership {
        room: 1,
        transport: 1,
        publish_ssrc: Some(0x11),
        learn_ssrc: false,
        ..Default::default()
    })))
    .expect("rejoin");
    let (sent, up) = feed(&mut core, t0, CLIENT, client.srtp(0x22, 1, None));
    assert_eq!((sent, proposals(&up)), (0, vec![]));
    assert_eq!(stats.drops(DropReason::Malformed), 1);
    assert_eq!(feed(&mut core, t0, CLIENT, client.srtp(0x11, 2, None)).0, 1);
}

#[test]
fn a_second_unlatched_transport_declaring_the_same_ssrc_cannot_take_over_the_first_ones_latching() {
    let stats = Arc::new(WorkerStats::default());
    let mut core = Forwarder::new(ForwarderConfig::default(), stats.clone());
    let plain = |id, k: u8| {
        TopologyUpdate::AddTransport(Box::new(TransportConfig {
            id,
            remote: None,
            keys: Some(TransportKeys {
                inbound: keys(k),
                outbound: keys(k + 1),
            }),
            latch_ssrcs: vec![0x77],
            audio_level_ext: None,
            ice: None,
            rtcp_remote: None,
        }))
    };
    // The victim (room 1) declares 0x77 first; the attacker (room 2, same worker) declares it too.
    core.apply(plain(1, 10)).expect("victim");
    core.apply(plain(2, 20)).expect("attacker");
    let mut out = Outbox::with_capacity(4);
    let mut attacker = Client(SrtpContext::new(SrtpEngine::InPlace, &keys(20)).expect("ctx"));
    let mut victim = Client(SrtpContext::new(SrtpEngine::InPlace, &keys(10)).expect("ctx"));
    core.on_datagram(
        Instant::now(),
        OTHER_ADDR,
        &mut attacker.srtp(0x77, 1, None),
        &mut out,
    );
    assert_eq!(
        core.transport_remote(2),
        None,
        "the attacker's packets latch nothing"
    );
    assert_eq!(stats.drops(DropReason::AuthFailed), 1);
    core.on_datagram(
        Instant::now(),
        CLIENT,
        &mut victim.srtp(0x77, 1, None),
        &mut out,
    );
    assert_eq!(
        core.transport_remote(1),
        Some(CLIENT),
        "the victim latches as usual"
    );
}
