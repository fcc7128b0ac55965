//! Scenario tests of relay legs between two nodes (a cascade, `RelayLeg`), driven through two
//! sans-IO forwarding cores in virtual time: a *core* node and an *edge* node serving one room,
//! linked by one leg whose datagrams the test carries from one core's outbox to the other's
//! `on_datagram`. Listeners decrypt what they get with an independent SRTP implementation.
//!
//! The stories: only the speakers cross the leg, each named by its real SSRC on the far side and
//! mapped onto that node's listeners' continuous slot streams; silence costs the leg nothing and a
//! pause shorter than the hold does not cut a speaker off; nothing comes back on the leg it came
//! in on; a source that moves to another leg stream re-anchors the far side's slots; and what a
//! leg will not take is counted.

#![deny(unsafe_code)]

mod support;

use std::net::SocketAddr;
use std::time::Instant;

use sluice_dataplane::forwarder::{Forwarder, ForwarderConfig};
use sluice_dataplane::outbox::Outbox;
use sluice_dataplane::rewrite::EgressFormat;
use sluice_dataplane::stats::DropReason;
use sluice_dataplane::testkit::fixture_keys;
use sluice_dataplane::topology::{
    Membership, RelayLeg, TopologyUpdate, TransportConfig, TransportKeys, Upcall,
};
use support::*;

const CORE_NODE: ([u8; 4], u16) = ([198, 51, 100, 1], 7000);
const EDGE_NODE: ([u8; 4], u16) = ([198, 51, 100, 2], 7000);
/// The core's leg streams (what it sends the edge) and the edge's.
const CORE_LEG_SLOTS: [u32; 2] = [0xC0DE_0001, 0xC0DE_0002];
const EDGE_LEG_SLOTS: [u32; 2] = [0xED9E_0001, 0xED9E_0002];
const LEG: u64 = 100;

fn node(a: ([u8; 4], u16)) -> SocketAddr {
    SocketAddr::from(a)
}

/// Adds the leg on one node: plain SRTP to `remote`, sending on `slots`, taking `inbound`.
fn add_leg(
    f: &mut Forwarder,
    remote: SocketAddr,
    keys: TransportKeys,
    slots: &[u32],
    inbound: &[u32],
) {
    add_room_leg(f, (ROOM, LEG), remote, keys, slots, inbound);
}

/// [`add_leg`] for another room (and leg id).
fn add_room_leg(
    f: &mut Forwarder,
    (room, leg): (u64, u64),
    remote: SocketAddr,
    keys: TransportKeys,
    slots: &[u32],
    inbound: &[u32],
) {
    apply(
        f,
        TopologyUpdate::AddTransport(Box::new(TransportConfig {
            id: leg,
            remote: Some(remote),
            keys: Some(keys),
            latch_ssrcs: vec![],
            audio_level_ext: Some(LEVEL_EXT),
            ice: None,
            rtcp_remote: None,
        })),
    );
    apply(
        f,
        TopologyUpdate::Join(Box::new(Membership {
            room,
            transport: leg,
            slot_ssrcs: slots.to_vec(),
            egress: EgressFormat {
                payload_type: Some(111),
                mid_ext: None,
                audio_level_ext: Some(LEVEL_EXT),
            },
            relay_leg: Some(RelayLeg {
                inbound_ssrcs: inbound.to_vec(),
            }),
            ..Default::default()
        })),
    );
}

/// Two nodes linked by a leg, with their own outboxes.
struct Cascade {
    core: Forwarder,
    edge: Forwarder,
    out: Outbox,
    /// Datagrams that crossed the leg, each way.
    core_to_edge: usize,
    edge_to_core: usize,
}

impl Cascade {
    fn new() -> Self {
        Self::with_edge(ForwarderConfig::default())
    }

    /// The edge node's forwarder with `edge` settings.
    fn with_edge(edge: ForwarderConfig) -> Self {
        let (k1, k2) = (fixture_keys(AES_CM, 201), fixture_keys(AES_CM, 202));
        let mut c = Self {
            core: core(),
            edge: core_with(edge),
            out: Outbox::with_capacity(256),
            core_to_edge: 0,
            edge_to_core: 0,
        };
        let core_keys = TransportKeys {
            inbound: k2.clone(),
            outbound: k1.clone(),
        };
        let edge_keys = TransportKeys {
            inbound: k1,
            outbound: k2,
        };
        add_leg(
            &mut c.core,
            node(EDGE_NODE),
            core_keys,
            &CORE_LEG_SLOTS,
            &EDGE_LEG_SLOTS,
        );
        add_leg(
            &mut c.edge,
            node(CORE_NODE),
            edge_keys,
            &EDGE_LEG_SLOTS,
            &CORE_LEG_SLOTS,
        );
        c
    }

    fn add(f: &mut Forwarder, peer: &Peer, publishes: bool, slots: &[u32]) {
        apply(f, peer.transport());
        apply(f, peer.join(ROOM, publishes, slots));
    }

    /// One frame at `now`: each (peer, on the edge?) sends its next packet to its node; what
    /// each node sends the other crosses the leg (once: nothing that comes in on a leg goes back
    /// out on it). Returns what the core's and the edge's members were sent.
    #[allow(clippy::type_complexity)]
    fn frame(
        &mut self,
        now: Instant,
        senders: &mut [(&mut Peer, bool)],
    ) -> (Vec<(SocketAddr, Vec<u8>)>, Vec<(SocketAddr, Vec<u8>)>) {
        let (mut at_core, mut at_edge) = (Vec::new(), Vec::new());
        for (peer, on_edge) in senders.iter_mut() {
            let p = peer.next_rtp();
            let f = if *on_edge {
                &mut self.edge
            } else {
                &mut self.core
            };
            feed(f, now, peer.addr, &p, &mut self.out);
            let sent = take(&mut self.out);
            let (to_leg, local): (Vec<_>, Vec<_>) = sent
                .into_iter()
                .partition(|(a, _)| *a == node(if *on_edge { CORE_NODE } else { EDGE_NODE }));
            let (far, from) = if *on_edge {
                self.edge_to_core += to_leg.len();
                (&mut self.core, node(EDGE_NODE))
            } else {
                self.core_to_edge += to_leg.len();
                (&mut self.edge, node(CORE_NODE))
            };
            for (_, d) in to_leg {
                feed(far, now, from, &d, &mut self.out);
            }
            let far_sent = take(&mut self.out);
            assert!(
                far_sent.iter().all(|(a, _)| *a != from),
                "nothing goes back on the leg it came in on"
            );
            if *on_edge {
                at_edge.extend(local);
                at_core.extend(far_sent);
            } else {
                at_core.extend(local);
                at_edge.extend(far_sent);
            }
        }
        (at_core, at_edge)
    }
}

fn sources(heard: &[Heard]) -> Vec<u32> {
    let mut s: Vec<u32> = heard.iter().map(|h| h.origin).collect();
    s.sort_unstable();
    s.dedup();
    s
}

#[test]
fn only_speakers_cross_the_leg_and_each_side_hears_the_other_as_its_real_participants() {
    let t0 = Instant::now();
    let mut c = Cascade::new();
    // On the core: speakers A and B, a member C who only sends silence, and listener L (4 slots:
    // a local silent member takes a free slot here as it always did).
    let mut a = Peer::new(1, AES_CM, 0xA, 1000, 0);
    let mut b = Peer::new(2, AES_CM, 0xB, 30_000, 77);
    let mut silent_c = Peer::new(3, AES_CM, 0xC, 5, 5);
    silent_c.level = 127;
    let mut l = Peer::listener(4, AES_CM);
    // On the edge: speaker D, a silent member S, and listener E (3 slots).
    let mut d = Peer::new(11, AES_CM, 0xD, 7, 9);
    let mut silent_s = Peer::new(12, AES_CM, 0x5, 9, 9);
    silent_s.level = 127;
    let mut e = Peer::listener(13, AES_CM);
    for (p, publishes, slots) in [
        (&a, true, &[][..]),
        (&b, true, &[]),
        (&silent_c, true, &[]),
        (&l, false, &[0x100, 0x101, 0x102, 0x103]),
    ] {
        Cascade::add(&mut c.core, p, publishes, slots);
    }
    for (p, publishes, slots) in [
        (&d, true, &[][..]),
        (&silent_s, true, &[]),
        (&e, false, &[0x200, 0x201, 0x202]),
    ] {
        Cascade::add(&mut c.edge, p, publishes, slots);
    }

    let frames = 50u32;
    let (mut heard_l, mut heard_e) = (Vec::new(), Vec::new());
    for k in 0..frames {
        let now = t0 + FRAME * k;
        let (at_core, at_edge) = c.frame(
            now,
            &mut [
                (&mut a, false),
                (&mut b, false),
                (&mut silent_c, false),
                (&mut d, true),
                (&mut silent_s, true),
            ],
        );
        heard_l.extend(l.hear(&at_core));
        heard_e.extend(e.hear(&at_edge));
    }

    // The leg carries the speakers only, one copy each: A and B one way, D the other.
    assert_eq!(c.core_to_edge, 2 * frames as usize, "A and B, never C or D");
    assert_eq!(c.edge_to_core, frames as usize, "D, never S");
    let (cs, es) = (stats(&c.core), stats(&c.edge));
    assert_eq!(
        (cs.cascade_out, cs.cascade_in),
        (2 * u64::from(frames), u64::from(frames))
    );
    assert_eq!(
        (es.cascade_out, es.cascade_in),
        (u64::from(frames), 2 * u64::from(frames))
    );
    assert_eq!(cs.total_drops() + es.total_drops(), 0, "{cs:?} {es:?}");

    // Each listener hears the speakers of both nodes under their own SSRCs (CSRC[0]) ...
    assert_eq!(sources(&heard_e), vec![0xA, 0xB, 0xD]);
    assert_eq!(sources(&heard_l), vec![0xA, 0xB, 0xC, 0xD]);
    for h in heard_e.iter().chain(&heard_l) {
        assert_eq!(
            h.csrcs.first(),
            Some(&h.origin),
            "CSRC[0] is the real speaker: {h:?}"
        );
        if h.origin != 0xC {
            assert_eq!(h.level, Some(30), "the level survives the leg: {h:?}");
        }
    }
    // ... every frame of them, on one continuous slot stream per speaker.
    for origin in [0xA, 0xB, 0xD] {
        for heard in [&heard_e, &heard_l] {
            let mine: Vec<Heard> = heard
                .iter()
                .filter(|h| h.origin == origin)
                .cloned()
                .collect();
            assert_eq!(mine.len(), frames as usize, "every frame of {origin:#x}");
            let slot = mine[0].ssrc;
            assert_continuous(&mine, slot, origin);
        }
    }

    // The far side's speaker detection sees the remote sources, by their SSRC.
    let ups: Vec<Upcall> = c.edge.drain_upcalls().collect();
    for source in [0xA, 0xB] {
        assert!(
            ups.contains(&Upcall::SourceSpeaking {
                worker: 0,
                room: ROOM,
                source,
                speaking: true
            }),
            "{source:#x} speaks on the edge: {ups:?}"
        );
    }
    assert!(
        !ups.iter()
            .any(|u| matches!(u, Upcall::SlotChanged { transport: LEG, .. })),
        "a leg's slots are nobody's to show: {ups:?}"
    );
    let ups: Vec<Upcall> = c.core.drain_upcalls().collect();
    assert!(ups.contains(&Upcall::SourceSpeaking {
        worker: 0,
        room: ROOM,
        source: 0xD,
        speaking: true
    }));

    // When the edge's speaker stops, its remote speaking state ends on the core's housekeeping.
    let later = t0 + FRAME * frames + ms(2000);
    c.core.expire_speaking(later);
    assert!(c.core.drain_upcalls().any(|u| u
        == Upcall::SourceSpeaking {
            worker: 0,
            room: ROOM,
            source: 0xD,
            speaking: false
        }));

    // The leg leaving its room frees the slots its sources held on this node.
    apply(&mut c.core, TopologyUpdate::Leave { transport: LEG });
    let freed: Vec<Upcall> = c.core.drain_upcalls().collect();
    assert!(
        freed.iter().any(|u| matches!(
            u,
            Upcall::SlotChanged {
                transport: 4,
                source: None,
                ..
            }
        )),
        "L's slot that carried D is free: {freed:?}"
    );
}

#[test]
fn a_pause_shorter_than_the_hold_stays_on_the_leg_and_a_longer_one_leaves_it() {
    let t0 = Instant::now();
    let mut c = Cascade::new();
    let mut a = Peer::new(1, AES_CM, 0xA, 1000, 0);
    let mut e = Peer::listener(13, AES_CM);
    Cascade::add(&mut c.core, &a, true, &[]);
    Cascade::add(&mut c.edge, &e, false, &[0x200]);
    let mut crossed = Vec::new();
    // Speech for 0.5 s, a 1 s pause (below the 1.5 s hold), speech, then 3 s of silence.
    for k in 0..250u32 {
        let at = k * 20;
        a.level = if at < 500 || (1500..2000).contains(&at) {
            30
        } else {
            127
        };
        let before = c.core_to_edge;
        let (_, at_edge) = c.frame(t0 + FRAME * k, &mut [(&mut a, false)]);
        crossed.push(c.core_to_edge - before);
        assert_eq!(
            e.hear(&at_edge).len(),
            crossed[k as usize],
            "E hears what crosses"
        );
    }
    let sent_in = |from: u32, to: u32| -> usize {
        crossed[(from / 20) as usize..(to / 20) as usize]
            .iter()
            .sum()
    };
    assert_eq!(
        sent_in(0, 2000),
        100,
        "speech and the short pause cross, every frame"
    );
    // After the last voiced frame (1980 ms) the hold runs 1.5 s: nothing crosses after that.
    assert_eq!(
        sent_in(3500, 5000),
        0,
        "silence past the hold costs the leg nothing"
    );
    assert!(
        sent_in(2000, 3460) >= 70,
        "the pause after speech crosses until the hold"
    );
}

#[test]
fn a_source_that_moves_to_another_leg_stream_continues_the_far_sides_slot_at_last_plus_one() {
    let t0 = Instant::now();
    // The edge's listener keeps a quiet source's slot for 10 s, so A finds its own slot again.
    let mut c = Cascade::with_edge(ForwarderConfig {
        slot_idle: ms(10_000),
        ..ForwarderConfig::default()
    });
    // A and B close in numbering, so the far side's jump check alone would not notice the move.
    let mut a = Peer::new(1, AES_CM, 0xA, 1000, 0);
    let mut b = Peer::new(2, AES_CM, 0xB, 900, 0);
    let mut cc = Peer::new(3, AES_CM, 0xC, 20_000, 0);
    let mut e = Peer::listener(13, AES_CM);
    for p in [&a, &b, &cc] {
        Cascade::add(&mut c.core, p, true, &[]);
    }
    Cascade::add(&mut c.edge, &e, false, &[0x200, 0x201, 0x202]);
    let mut heard = Vec::new();
    // 0-1 s: A and B speak (leg streams 0 and 1). 1-3.2 s: B alone. 3.2-5.6 s: C alone (it takes
    // A's leg stream, idle since 1 s). From 5.6 s: A again, on B's stream (idle since 3.2 s).
    for k in 0..330u32 {
        let at = k * 20;
        let mut senders: Vec<(&mut Peer, bool)> = Vec::new();
        if !(1000..5600).contains(&at) {
            senders.push((&mut a, false));
        }
        if at < 3200 {
            senders.push((&mut b, false));
        }
        if (3200..5600).contains(&at) {
            senders.push((&mut cc, false));
        }
        let (_, at_edge) = c.frame(t0 + FRAME * k, &mut senders);
        heard.extend(e.hear(&at_edge));
    }
    let of_a: Vec<&Heard> = heard.iter().filter(|h| h.origin == 0xA).collect();
    let back = of_a
        .iter()
        .position(|h| h.origin_seq == 1050)
        .expect("A is heard again");
    let (before, after) = (of_a[back - 1], of_a[back]);
    assert_eq!(before.ssrc, after.ssrc, "A kept its slot on the edge");
    assert_eq!(
        after.seq,
        before.seq.wrapping_add(1),
        "A's slot continues at last + 1 after the move"
    );
    assert!(after.marker, "the return starts a talkspurt");
    let ticks = after.ts.wrapping_sub(before.ts);
    assert!(
        (4_600 * 48..=4_700 * 48).contains(&ticks),
        "the timestamp advances by the 4.6 s of wall clock: {ticks}"
    );
    for w in of_a[back..].windows(2) {
        assert_eq!(w[1].seq, w[0].seq.wrapping_add(1));
        assert_eq!(w[1].ts, w[0].ts.wrapping_add(FRAME_TICKS));
    }
}

#[test]
fn what_a_leg_will_not_take_is_counted_and_the_room_goes_on() {
    let t0 = Instant::now();
    let mut c = Cascade::new();
    let mut a = Peer::new(1, AES_CM, 0xA, 1000, 0);
    let mut e = Peer::listener(13, AES_CM);
    Cascade::add(&mut c.core, &a, true, &[]);
    Cascade::add(&mut c.edge, &e, false, &[0x200]);
    // A leg packet on a stream the other end never declared, and one without a CSRC, both
    // properly encrypted with the leg's keys: the core's "leg peer" sends them.
    let mut liar = Peer::new(LEG, AES_CM, 0xBAD, 1, 1);
    liar.keys = TransportKeys {
        inbound: fixture_keys(AES_CM, 201),
        outbound: fixture_keys(AES_CM, 202),
    };
    liar.sender = sluice_dataplane::srtp::SrtpContext::new(
        sluice_dataplane::srtp::SrtpEngine::InPlace,
        &liar.keys.inbound,
    )
    .expect("keys");
    let unknown_stream = liar.next_rtp();
    liar.ssrc = CORE_LEG_SLOTS[0];
    let no_csrc = liar.next_rtp();
    for d in [unknown_stream, no_csrc] {
        feed(&mut c.edge, t0, node(CORE_NODE), &d, &mut c.out);
    }
    // A leg is found by its address and its streams: another stream is nobody's.
    assert_eq!(stats(&c.edge).drops(DropReason::UnknownSource), 1);
    assert_eq!(stats(&c.edge).drops(DropReason::Malformed), 1);
    assert!(take(&mut c.out).is_empty());
    // The real leg still works.
    let (_, at_edge) = c.frame(t0 + FRAME, &mut [(&mut a, false)]);
    assert_eq!(e.hear(&at_edge).len(), 1);
}

#[test]
fn the_legs_of_two_rooms_between_the_same_two_workers_keep_their_rooms_apart() {
    let t0 = Instant::now();
    let mut c = Cascade::new();
    // A second room with its own leg between the same two node addresses, other streams and keys.
    const ROOM2: u64 = 8;
    let (k3, k4) = (fixture_keys(AES_CM, 203), fixture_keys(AES_CM, 204));
    let core_keys = TransportKeys {
        inbound: k4.clone(),
        outbound: k3.clone(),
    };
    let edge_keys = TransportKeys {
        inbound: k3,
        outbound: k4,
    };
    add_room_leg(
        &mut c.core,
        (ROOM2, 101),
        node(EDGE_NODE),
        core_keys,
        &[0xC0DE_1001],
        &[0xED9E_1001],
    );
    add_room_leg(
        &mut c.edge,
        (ROOM2, 101),
        node(CORE_NODE),
        edge_keys,
        &[0xED9E_1001],
        &[0xC0DE_1001],
    );
    let mut a = Peer::new(1, AES_CM, 0xA, 1000, 0);
    let mut b = Peer::new(2, AES_CM, 0xB, 2000, 0);
    let mut e1 = Peer::listener(13, AES_CM);
    let mut e2 = Peer::listener(14, AES_CM);
    Cascade::add(&mut c.core, &a, true, &[]);
    Cascade::add(&mut c.edge, &e1, false, &[0x200]);
    apply(&mut c.core, b.transport());
    apply(&mut c.core, b.join(ROOM2, true, &[]));
    apply(&mut c.edge, e2.transport());
    apply(&mut c.edge, e2.join(ROOM2, false, &[0x300]));
    let (mut h1, mut h2) = (Vec::new(), Vec::new());
    for k in 0..20u32 {
        let (_, at_edge) = c.frame(t0 + FRAME * k, &mut [(&mut a, false), (&mut b, false)]);
        h1.extend(e1.hear(&at_edge));
        h2.extend(e2.hear(&at_edge));
    }
    assert_eq!(
        sources(&h1),
        vec![0xA],
        "room 7's listener hears room 7 only"
    );
    assert_eq!(
        sources(&h2),
        vec![0xB],
        "room 8's listener hears room 8 only"
    );
    assert_eq!((h1.len(), h2.len()), (20, 20));
    assert_eq!(stats(&c.edge).total_drops(), 0, "{:?}", stats(&c.edge));
}
