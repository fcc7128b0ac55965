//! Scenario tests of the sans-IO forwarding core ([`Forwarder`]), driven directly with virtual time as
//! quinn-proto's tests drive a connection: no sockets, no threads, no clocks. Every `Instant` is built
//! from one `t0`, every datagram is handed to `on_datagram` by hand, and what the core emits is read
//! back from the [`Outbox`] and decrypted with an independent SRTP implementation (`webrtc-srtp`),
//! using the keys the subscriber would hold.
//!
//! The stories: speaker-slot continuity across a change of speaker, slot take-over after idleness,
//! two workers joined by relay rings, SRTCP termination and address latching, 100k hostile datagrams,
//! topology edge cases, and full egress queues. The end-to-end tests over real sockets live in the
//! root package (`tests/dataplane_forwarding.rs`); these do not repeat them.

#![deny(unsafe_code)]

use std::time::{Duration, Instant};

use sluice_dataplane::forwarder::{Forwarder, ForwarderConfig, TopologyError};
use sluice_dataplane::outbox::Outbox;
use sluice_dataplane::packet::rtcp::{RTCP_RR, RTCP_SDES, RTCP_SR};
use sluice_dataplane::packet::{write_rr, ReportBlock, RtcpCompound, RtpHeader};
use sluice_dataplane::presence::{Presence, PresenceChange};
use sluice_dataplane::relay::relay_ring;
use sluice_dataplane::reports::{ntp_mid32, to_units, Quality};
use sluice_dataplane::srtp::{SrtpEngine, SrtpProfile};
use sluice_dataplane::stats::DropReason;
use sluice_dataplane::topology::{
    LinkReport, Membership, RoomId, TopologyUpdate, TransportConfig, TransportId, Upcall,
};
mod support;
use support::*;

// ------------------------------------------------------------------- 1. speaker-slot continuity

#[test]
fn a_single_slot_stream_stays_continuous_when_the_speaker_changes() {
    for profile in SrtpProfile::ALL {
        const SLOT: u32 = 0x5107_0001;
        let mut a = Peer::new(1, profile, 0xA1A1_0001, 65_530, 77_777);
        let mut b = Peer::new(2, profile, 0xB2B2_0002, 4_242, 3_000_000_000);
        let mut s = Peer::listener(3, profile);
        let mut core = core();
        for u in [
            a.transport(),
            b.transport(),
            s.transport(),
            a.join(ROOM, true, &[]),
            b.join(ROOM, true, &[]),
            s.join(ROOM, false, &[SLOT]),
        ] {
            apply(&mut core, u);
        }
        let mut out = Outbox::with_capacity(16);
        let t0 = Instant::now();

        // A talks for 20 frames; its sequence numbers wrap on the way.
        let mut from_a = Vec::new();
        for i in 0..20u32 {
            let p = a.next_rtp();
            feed(&mut core, t0 + FRAME * i, a.addr, &p, &mut out);
            let sent = take(&mut out);
            assert_eq!(sent.len(), 1, "{profile}: one subscriber, one copy");
            from_a.extend(s.hear(&sent));
        }
        assert_eq!(from_a.len(), 20, "{profile}");
        assert_continuous(&from_a, SLOT, a.ssrc);
        assert!(
            from_a[0].marker,
            "{profile}: the first packet opens the talkspurt"
        );
        assert_eq!(from_a[0].level, Some(30), "{profile}: extensions are kept");
        let last = from_a.last().expect("A was heard").clone();
        let a_last_at = t0 + FRAME * 19;

        // A leaves; B starts 500 ms after A's last packet, with its own numbering.
        apply(&mut core, TopologyUpdate::Leave { transport: a.id });
        let mut from_b = Vec::new();
        for i in 0..20u32 {
            let p = b.next_rtp();
            feed(
                &mut core,
                a_last_at + ms(500) + FRAME * i,
                b.addr,
                &p,
                &mut out,
            );
            from_b.extend(s.hear(&take(&mut out)));
        }
        assert_eq!(from_b.len(), 20, "{profile}: B took over the only slot");
        let first = &from_b[0];
        assert_eq!(first.ssrc, SLOT, "{profile}: the slot SSRC never changes");
        assert_eq!(
            first.seq,
            last.seq.wrapping_add(1),
            "{profile}: seq continues at last + 1"
        );
        let advance = first.ts.wrapping_sub(last.ts);
        assert!(
            advance.abs_diff(24_000) <= FRAME_TICKS,
            "{profile}: ts advances by 500 ms of 48 kHz (got {advance})"
        );
        assert!(
            first.marker,
            "{profile}: the new speaker starts a talkspurt"
        );
        assert_eq!(first.csrcs, vec![b.ssrc], "{profile}: CSRC[0] is B");
        assert_continuous(&from_b, SLOT, b.ssrc);

        let st = stats(&core);
        assert_eq!(st.packets_in, 40, "{profile}");
        assert_eq!(st.total_drops(), 0, "{profile}: {st:?}");
    }
}

// ------------------------------------------------------------------------- 2. slot take-over

/// Publishers 1..=3 (SSRC `ssrc_base + id`, first sequence `seq_step * id`) and listener 9 with
/// `slots`, all in ROOM.
fn three_publishers_one_listener(
    ssrc_base: u32,
    seq_step: u16,
    slots: &[u32],
) -> (Vec<Peer>, Peer, Forwarder) {
    let p: Vec<Peer> = (1..=3)
        .map(|id| Peer::new(id, AES_CM, ssrc_base + id as u32, seq_step * id as u16, 0))
        .collect();
    let s = Peer::listener(9, AES_CM);
    // The plain hold rule: the dominant speaker's part in the slot policy has its own story.
    let mut core = core_with(ForwarderConfig {
        dominant_speaker: false,
        ..ForwarderConfig::default()
    });
    for peer in &p {
        apply(&mut core, peer.transport());
        apply(&mut core, peer.join(ROOM, true, &[]));
    }
    apply(&mut core, s.transport());
    apply(&mut core, s.join(ROOM, false, slots));
    (p, s, core)
}

#[test]
fn a_silent_speaker_loses_its_slot_to_a_talking_one_after_the_hold() {
    const SLOTS: [u32; 2] = [0x5100, 0x5200];
    let (mut p, mut s, mut core) = three_publishers_one_listener(0xCAFE_0000, 100, &SLOTS);
    // Everyone here talks (level 30) whenever they send, so P3 may take a slot whose source has
    // been quiet for the hold (shorter than the idle time after which any packet may take it).
    let idle = ForwarderConfig::default().slot_hold;
    assert_eq!(idle, Duration::from_millis(1500));

    let mut out = Outbox::with_capacity(16);
    let t0 = Instant::now();
    let mut heard: Vec<Heard> = Vec::new();
    let mut tick = |core: &mut Forwarder, p: &mut [Peer], k: u32, talking: &[usize]| {
        let mut got = Vec::new();
        for &i in talking {
            let d = p[i].next_rtp();
            feed(core, t0 + FRAME * k, p[i].addr, &d, &mut out);
            got.extend(s.hear(&take(&mut out)));
        }
        got
    };

    // All three talk for one second: the first two get the two slots, in slot order.
    for k in 0..50 {
        heard.extend(tick(&mut core, &mut p, k, &[0, 1, 2]));
    }
    let by = |heard: &[Heard], who: u32| -> Vec<Heard> {
        heard.iter().filter(|h| h.origin == who).cloned().collect()
    };
    let (p1, p2, p3) = (p[0].ssrc, p[1].ssrc, p[2].ssrc);
    assert_eq!(by(&heard, p1).len(), 50);
    assert_eq!(by(&heard, p2).len(), 50);
    assert!(
        by(&heard, p3).is_empty(),
        "no third slot for the third speaker"
    );
    assert_continuous(&by(&heard, p1), SLOTS[0], p1);
    assert_continuous(&by(&heard, p2), SLOTS[1], p2);
    let slot0_last = by(&heard, p1).last().expect("P1 was heard").clone();
    let p1_last_at = t0 + FRAME * 49;

    // P1 goes silent. P3 gets nothing until P1 has been silent for the hold, then its slot.
    let mut takeover_at = None;
    for k in 50..200 {
        let got = tick(&mut core, &mut p, k, &[1, 2]);
        let now = t0 + FRAME * k;
        let p3_heard = by(&got, p3);
        if now.duration_since(p1_last_at) < idle {
            assert!(p3_heard.is_empty(), "tick {k}: P1's slot is not idle yet");
        } else if takeover_at.is_none() {
            assert_eq!(
                p3_heard.len(),
                1,
                "tick {k}: P3 takes the idle slot at once"
            );
            takeover_at = Some(k);
            let first = &p3_heard[0];
            assert_eq!(first.ssrc, SLOTS[0], "P3 inherits P1's slot, not P2's");
            assert_eq!(first.seq, slot0_last.seq.wrapping_add(1));
            assert!(first.marker);
            let advance = first.ts.wrapping_sub(slot0_last.ts);
            let expected = (now.duration_since(p1_last_at).as_millis() * 48) as u32;
            assert!(
                advance.abs_diff(expected) <= FRAME_TICKS,
                "ts advance {advance}"
            );
        }
        heard.extend(got);
    }
    assert_eq!(
        takeover_at,
        Some(124),
        "1.5 s after P1's last packet at tick 49"
    );
    let after: Vec<Heard> = heard.iter().skip(100).cloned().collect();
    assert_continuous(&by(&after, p2), SLOTS[1], p2);
    let p3_heard = by(&heard, p3);
    assert_eq!(p3_heard.len(), 76, "P3 heard from tick 124 to 199");
    assert_continuous(&p3_heard, SLOTS[0], p3);

    // P1 comes back: both slots are busy, so it is not heard.
    for k in 200..220 {
        let got = tick(&mut core, &mut p, k, &[0, 1, 2]);
        assert!(by(&got, p1).is_empty(), "tick {k}: P1 has no slot now");
        assert_eq!(got.len(), 2, "tick {k}: still two speakers");
    }
    let st = stats(&core);
    assert_eq!(st.packets_in, 150 + 300 + 60);
    assert_eq!(
        st.total_drops(),
        0,
        "not getting a slot is speaker selection, not a drop: {st:?}"
    );
}

#[test]
fn audio_levels_decide_who_takes_a_slot_and_every_change_is_reported() {
    const SLOTS: [u32; 2] = [0x6100, 0x6200];
    let (mut p, mut s, mut core) = three_publishers_one_listener(0xD00D_0000, 10, &SLOTS);
    let (p1, p2, p3) = (p[0].ssrc, p[1].ssrc, p[2].ssrc);
    let mut out = Outbox::with_capacity(16);
    let t0 = Instant::now();
    // Every peer sends a frame per tick (as browsers do, silence included); returns who was heard.
    let mut tick = |core: &mut Forwarder, p: &mut [Peer], k: u32| -> Vec<u32> {
        let mut got = Vec::new();
        for peer in p.iter_mut() {
            let d = peer.next_rtp();
            feed(core, t0 + FRAME * k, peer.addr, &d, &mut out);
            got.extend(s.hear(&take(&mut out)).iter().map(|h| h.origin));
        }
        got
    };
    let slot = |slot: u16, source: Option<u32>| Upcall::SlotChanged {
        worker: 0,
        transport: 9,
        slot,
        source,
    };
    let speaking = |transport: TransportId, speaking: bool| Upcall::Speaking {
        worker: 0,
        transport,
        speaking,
    };

    // P1 and P2 talk, P3 is silent (level 127) but sends: P1 and P2 get the slots.
    p[2].level = 127;
    for k in 0..50 {
        let got = tick(&mut core, &mut p, k);
        assert!(!got.contains(&p3), "tick {k}: silence takes no busy slot");
    }
    let ups: Vec<Upcall> = core.drain_upcalls().collect();
    assert_eq!(
        ups,
        vec![
            speaking(1, true),
            slot(0, Some(p1)),
            speaking(2, true),
            slot(1, Some(p2))
        ]
    );

    // P1 falls silent (still sending), P3 starts talking: P3 waits until P1 has been quiet for the
    // hold, then takes P1's slot; P1 stops speaking after the speaking hold.
    p[0].level = 127;
    p[2].level = 25;
    let hold = ForwarderConfig::default().slot_hold;
    let mut took = None;
    for k in 50..150 {
        let got = tick(&mut core, &mut p, k);
        let quiet = FRAME * (k - 49);
        if quiet < hold {
            assert!(
                !got.contains(&p3),
                "tick {k}: P1 keeps its slot during the hold"
            );
        } else if took.is_none() && got.contains(&p3) {
            took = Some(k);
        }
        if took.is_some_and(|t| k > t) {
            assert!(!got.contains(&p1), "tick {k}: P1 lost its slot");
        }
    }
    assert_eq!(took, Some(124), "1.5 s after P1's last voice at tick 49");
    let ups: Vec<Upcall> = core.drain_upcalls().collect();
    assert_eq!(
        ups,
        vec![speaking(3, true), speaking(1, false), slot(0, Some(p3))],
        "P3 starts at tick 50, P1 stops 1 s after tick 49, P3 takes slot 0 at tick 124"
    );

    // P1 talks again, but both slot holders are talking: no slot for P1, no change.
    p[0].level = 20;
    for k in 150..200 {
        assert!(!tick(&mut core, &mut p, k).contains(&p1));
    }
    assert_eq!(
        core.drain_upcalls().collect::<Vec<_>>(),
        vec![speaking(1, true)]
    );

    // P2 leaves: its slot is released, and P1 takes it with its next packet.
    apply(&mut core, TopologyUpdate::RemoveTransport { id: p[1].id });
    p.remove(1);
    let got = tick(&mut core, &mut p, 200);
    assert!(got.contains(&p1) && got.contains(&p3), "{got:x?}");
    assert_eq!(
        core.drain_upcalls().collect::<Vec<_>>(),
        vec![speaking(2, false), slot(1, None), slot(1, Some(p1))]
    );

    // Everyone stops sending: housekeeping ends their speaking once the hold has passed.
    let last = t0 + FRAME * 200;
    core.expire_speaking(last + Duration::from_millis(500));
    assert_eq!(core.drain_upcalls().count(), 0, "still within the hold");
    core.expire_speaking(last + Duration::from_secs(1));
    let mut ups: Vec<Upcall> = core.drain_upcalls().collect();
    ups.sort_by_key(|u| format!("{u:?}"));
    assert_eq!(ups, vec![speaking(1, false), speaking(3, false)]);
    assert_eq!(
        stats(&core).total_drops(),
        0,
        "speaker selection is not a drop"
    );
}

// ---------------------------------------------------------------------- 3. two workers, relays

/// Two (or more) cores joined by relay rings both ways, with the presence bookkeeping of
/// `Dataplane::join` / `Dataplane::leave` ([`Presence`]): every join or leave on one worker is
/// announced to the others as `RemotePresence`.
struct Cluster {
    cores: Vec<Forwarder>,
    presence: Presence,
}

impl Cluster {
    fn new(workers: usize, ring_bytes: usize) -> Self {
        let mut cores: Vec<Forwarder> = (0..workers)
            .map(|worker| {
                core_with(ForwarderConfig {
                    worker,
                    workers,
                    ..ForwarderConfig::default()
                })
            })
            .collect();
        for from in 0..workers {
            for to in (0..workers).filter(|&to| to != from) {
                let (tx, rx) = relay_ring(ring_bytes);
                cores[from].connect_relay_tx(to, tx);
                cores[to].connect_relay_rx(rx);
            }
        }
        Self {
            cores,
            presence: Presence::default(),
        }
    }

    fn announce(&mut self, change: PresenceChange) {
        for (i, core) in self.cores.iter_mut().enumerate() {
            if i != change.worker {
                apply(core, change.update());
            }
        }
    }

    fn join(&mut self, worker: usize, m: Membership) {
        self.forget(m.transport);
        let (room, transport, ssrc) = (m.room, m.transport, m.publish_ssrc);
        apply(&mut self.cores[worker], TopologyUpdate::Join(Box::new(m)));
        let change = self.presence.join(worker, room, transport, ssrc);
        self.announce(change);
    }

    fn leave(&mut self, worker: usize, transport: TransportId) {
        self.forget(transport);
        apply(&mut self.cores[worker], TopologyUpdate::Leave { transport });
    }

    fn forget(&mut self, transport: TransportId) {
        if let Some(change) = self.presence.forget(transport) {
            self.announce(change);
        }
    }
}

#[test]
fn a_room_spread_over_two_workers_is_decrypted_once_and_relayed_to_the_other() {
    const SLOT0: u32 = 0x5000;
    const SLOT1: u32 = 0x5001;
    let mut c = Cluster::new(2, 64 * 1024);
    let mut p = Peer::new(1, AES_CM, 0xAAAA_0001, 10, 1000);
    let mut s0 = Peer::listener(2, AES_CM);
    let mut s1 = Peer::listener(3, AES_CM);
    apply(&mut c.cores[0], p.transport());
    apply(&mut c.cores[0], s0.transport());
    apply(&mut c.cores[1], s1.transport());
    c.join(0, p.membership(ROOM, true, &[]));
    c.join(0, s0.membership(ROOM, false, &[SLOT0]));
    c.join(1, s1.membership(ROOM, false, &[SLOT1]));

    let (mut out0, mut out1) = (Outbox::with_capacity(8), Outbox::with_capacity(8));
    let t0 = Instant::now();
    let (mut heard0, mut heard1) = (Vec::new(), Vec::new());
    for i in 0..10u32 {
        let now = t0 + FRAME * i;
        let d = p.next_rtp();
        feed(&mut c.cores[0], now, p.addr, &d, &mut out0);
        assert_eq!(c.cores[0].take_touched(), 1 << 1, "worker 1 needs waking");
        heard0.extend(s0.hear(&take(&mut out0)));
        assert!(c.cores[1].relays_pending());
        assert!(
            c.cores[1].drain_relays(now + ms(1), &mut out1),
            "everything drained"
        );
        assert!(!c.cores[1].relays_pending());
        let sent = take(&mut out1);
        assert_eq!(sent.len(), 1, "one copy for the one subscriber on worker 1");
        heard1.extend(s1.hear(&sent));
    }
    assert_eq!(heard0.len(), 10);
    assert_eq!(heard1.len(), 10);
    assert_continuous(&heard0, SLOT0, p.ssrc);
    assert_continuous(&heard1, SLOT1, p.ssrc);
    assert_eq!(heard1[0].level, Some(30), "extensions survive the relay");

    let (w0, w1) = (stats(&c.cores[0]), stats(&c.cores[1]));
    assert_eq!(w0.packets_in, 10);
    assert_eq!(w0.relayed_out, 10, "each packet crossed the ring once");
    assert_eq!(w0.relayed_in, 0);
    assert_eq!(
        w1.packets_in, 0,
        "worker 1 never saw ciphertext: no second decryption"
    );
    assert_eq!(w1.relayed_in, 10);
    assert_eq!(w1.relayed_out, 0, "relayed packets are not relayed again");
    assert_eq!(w0.total_drops() + w1.total_drops(), 0, "{w0:?} {w1:?}");

    // The last member on worker 1 leaves: worker 0 stops relaying the room there.
    c.leave(1, s1.id);
    for i in 10..15u32 {
        let d = p.next_rtp();
        feed(&mut c.cores[0], t0 + FRAME * i, p.addr, &d, &mut out0);
        assert_eq!(
            s0.hear(&take(&mut out0)).len(),
            1,
            "worker 0 still serves S0"
        );
    }
    assert_eq!(c.cores[0].take_touched(), 0);
    assert!(!c.cores[1].relays_pending());
    assert_eq!(stats(&c.cores[0]).relayed_out, 10);
}

#[test]
fn a_publisher_leaving_on_another_worker_frees_its_slot_here_at_once() {
    const SLOT: u32 = 0x5000;
    let mut c = Cluster::new(2, 64 * 1024);
    let mut q = Peer::new(1, AES_CM, 0x0B0B_0001, 7, 7);
    let mut p = Peer::new(2, AES_CM, 0x0A0A_0002, 30_000, 9);
    let mut s = Peer::listener(3, AES_CM);
    apply(&mut c.cores[1], q.transport());
    apply(&mut c.cores[0], p.transport());
    apply(&mut c.cores[0], s.transport());
    c.join(0, s.membership(ROOM, false, &[SLOT]));
    c.join(0, p.membership(ROOM, true, &[]));
    c.join(1, q.membership(ROOM, true, &[]));

    let (mut out0, mut out1) = (Outbox::with_capacity(8), Outbox::with_capacity(8));
    let t0 = Instant::now();
    // Q, on worker 1, talks: S on worker 0 hears it through the ring.
    let mut from_q = Vec::new();
    for i in 0..10u32 {
        let now = t0 + FRAME * i;
        let d = q.next_rtp();
        feed(&mut c.cores[1], now, q.addr, &d, &mut out1);
        assert!(out1.is_empty(), "nobody on worker 1 listens");
        assert!(c.cores[0].drain_relays(now, &mut out0));
        from_q.extend(s.hear(&take(&mut out0)));
    }
    assert_eq!(from_q.len(), 10);
    assert_continuous(&from_q, SLOT, q.ssrc);
    let q_last = from_q.last().expect("Q was heard").clone();

    // P on worker 0 starts while Q's slot is still fresh: S's only slot is taken.
    let d = p.next_rtp();
    feed(&mut c.cores[0], t0 + FRAME * 10, p.addr, &d, &mut out0);
    assert!(take(&mut out0).is_empty(), "the slot still belongs to Q");

    // Q leaves on worker 1; worker 0 learns it as RemotePresence { gone_source: Q }.
    c.leave(1, q.id);
    let now = t0 + FRAME * 11;
    let d = p.next_rtp();
    feed(&mut c.cores[0], now, p.addr, &d, &mut out0);
    let heard = s.hear(&take(&mut out0));
    assert_eq!(
        heard.len(),
        1,
        "Q's slot was freed at once, not after the idle time"
    );
    assert_eq!(heard[0].csrcs.first(), Some(&p.ssrc));
    assert_eq!(heard[0].ssrc, SLOT);
    assert_eq!(heard[0].seq, q_last.seq.wrapping_add(1));
    assert!(heard[0].marker);
    // Worker 1 hosts nobody in the room any more: P's packets stay on worker 0.
    assert_eq!(
        stats(&c.cores[0]).relayed_out,
        1,
        "only the packet sent before Q left"
    );
}

// ----------------------------------------------------------------------------------- 4. RTCP

/// ffmpeg's order: a sender report from the port after its RTP port comes before its first RTP
/// packet. It must not latch that port as the publisher's RTP address (its RTP would then be
/// `unknown_source` drops); the RTP address waits for the RTP.
#[test]
fn an_unlatched_publishers_first_rtcp_from_the_next_port_latches_only_its_rtcp_address() {
    let profile = SrtpProfile::Aes128CmHmacSha1_80;
    let mut p = Peer::new(1, profile, 0x1111_0001, 1, 1);
    let u = Peer::listener(2, profile);
    let mut core = core();
    apply(
        &mut core,
        TopologyUpdate::AddTransport(Box::new(TransportConfig {
            id: p.id,
            remote: None,
            keys: Some(p.keys.clone()),
            latch_ssrcs: vec![p.ssrc],
            audio_level_ext: None,
            ice: None,
            rtcp_remote: None,
        })),
    );
    apply(&mut core, u.transport());
    apply(&mut core, p.join(ROOM, true, &[]));
    apply(&mut core, u.join(ROOM, false, &[0x5000]));
    let mut out = Outbox::with_capacity(8);
    let t0 = Instant::now();
    let (rtp_port, rtcp_port) = (addr(5000), addr(5001));
    let sr = p.srtcp_rr(p.ssrc);
    feed(&mut core, t0, rtcp_port, &sr, &mut out);
    assert_eq!(stats(&core).rtcp_in, 1);
    assert_eq!(
        core.transport_remote(p.id),
        None,
        "RTCP latched the RTP address"
    );
    let d = p.next_rtp();
    feed(&mut core, t0 + ms(1), rtp_port, &d, &mut out);
    assert_eq!(core.transport_remote(p.id), Some(rtp_port));
    assert_eq!(take(&mut out).len(), 1, "its RTP reaches the listener");
    // Later reports from the RTCP port are still taken.
    let sr = p.srtcp_rr(p.ssrc);
    feed(&mut core, t0 + ms(2), rtcp_port, &sr, &mut out);
    assert_eq!(stats(&core).rtcp_in, 2);
    assert_eq!(stats(&core).drops(DropReason::UnknownSource), 0);
}

#[test]
fn srtcp_is_authenticated_terminated_and_latches_an_unlatched_transport() {
    for profile in SrtpProfile::ALL {
        const LATCH_SSRC: u32 = 0x00C0_FFEE;
        const SLOT: u32 = 0x5000;
        let mut p = Peer::new(1, profile, 0x1111_0001, 1, 1);
        let mut u = Peer::listener(2, profile);
        let mut core = core();
        apply(&mut core, p.transport());
        apply(
            &mut core,
            TopologyUpdate::AddTransport(Box::new(TransportConfig {
                id: u.id,
                remote: None,
                keys: Some(u.keys.clone()),
                latch_ssrcs: vec![LATCH_SSRC],
                audio_level_ext: None,
                ice: None,
                rtcp_remote: None,
            })),
        );
        apply(&mut core, p.join(ROOM, true, &[]));
        apply(&mut core, u.join(ROOM, false, &[SLOT]));
        let mut out = Outbox::with_capacity(8);
        let t0 = Instant::now();
        let drops = |core: &Forwarder, r| stats(core).drops(r);

        // A valid report from a known transport is counted and ends here.
        let rr = p.srtcp_rr(p.ssrc);
        feed(&mut core, t0, p.addr, &rr, &mut out);
        assert_eq!(stats(&core).rtcp_in, 1, "{profile}");
        assert!(
            out.is_empty(),
            "{profile}: RTCP is terminated, not forwarded"
        );
        // The same report again is a replay.
        feed(&mut core, t0, p.addr, &rr, &mut out);
        assert_eq!(drops(&core, DropReason::Replayed), 1, "{profile}");
        // A tampered one fails authentication.
        let mut bad = p.srtcp_rr(p.ssrc);
        bad[9] ^= 0x01;
        feed(&mut core, t0, p.addr, &bad, &mut out);
        assert_eq!(drops(&core, DropReason::AuthFailed), 1, "{profile}");
        // A valid one from an address nobody has is an unknown source.
        let rr = p.srtcp_rr(p.ssrc);
        feed(&mut core, t0, addr(666), &rr, &mut out);
        assert_eq!(drops(&core, DropReason::UnknownSource), 1, "{profile}");
        assert_eq!(stats(&core).rtcp_in, 1, "{profile}");

        // U has no address yet: P's audio has nowhere to go for it.
        let d = p.next_rtp();
        feed(&mut core, t0, p.addr, &d, &mut out);
        assert!(
            out.is_empty(),
            "{profile}: an unlatched subscriber gets nothing"
        );
        assert_eq!(core.transport_remote(u.id), None);

        // A forged report claiming U's SSRC does not latch.
        let mut forger = Peer::listener(40, profile);
        let forged = forger.srtcp_rr(LATCH_SSRC);
        feed(&mut core, t0, addr(667), &forged, &mut out);
        assert_eq!(drops(&core, DropReason::AuthFailed), 2, "{profile}");
        assert_eq!(
            core.transport_remote(u.id),
            None,
            "{profile}: forgery latched"
        );

        // U's own report, from wherever U happens to be, latches that address.
        let there = addr(4321);
        let rr = u.srtcp_rr(LATCH_SSRC);
        feed(&mut core, t0 + ms(5), there, &rr, &mut out);
        assert_eq!(stats(&core).rtcp_in, 2, "{profile}");
        assert_eq!(core.transport_remote(u.id), Some(there), "{profile}");

        // Now U hears P at the latched address.
        let d = p.next_rtp();
        feed(&mut core, t0 + ms(20), p.addr, &d, &mut out);
        let sent = take(&mut out);
        assert_eq!(sent.len(), 1, "{profile}");
        assert_eq!(sent[0].0, there, "{profile}");
        let h = u.open(&sent[0].1);
        assert_eq!(
            (h.ssrc, h.csrcs.first()),
            (SLOT, Some(&p.ssrc)),
            "{profile}"
        );

        // The latch is spent: U's SSRC from another address does not move it. (Not the next port,
        // 4322: that one is where a plain transport's unmultiplexed RTCP may come from.)
        let rr = u.srtcp_rr(LATCH_SSRC);
        feed(&mut core, t0 + ms(40), addr(4330), &rr, &mut out);
        assert_eq!(drops(&core, DropReason::UnknownSource), 2, "{profile}");
        assert_eq!(core.transport_remote(u.id), Some(there), "{profile}");
        assert_eq!(stats(&core).packets_in, 9, "{profile}");

        // U's RTCP from the next port (a tool that cannot multiplex RTCP) is taken once it
        // authenticates; a forged report from there is an auth_failed drop.
        let forged = forger.srtcp_rr(LATCH_SSRC);
        feed(&mut core, t0 + ms(50), addr(4322), &forged, &mut out);
        assert_eq!(drops(&core, DropReason::AuthFailed), 3, "{profile}");
        let rr = u.srtcp_rr(LATCH_SSRC);
        feed(&mut core, t0 + ms(60), addr(4322), &rr, &mut out);
        assert_eq!(stats(&core).rtcp_in, 3, "{profile}");
        assert_eq!(core.transport_remote(u.id), Some(there), "{profile}");
        assert_eq!(drops(&core, DropReason::UnknownSource), 2, "{profile}");
    }
}

#[test]
fn the_dominant_speaker_is_reported_a_cough_takes_nothing_and_a_new_floor_holder_gets_a_slot_before_the_hold(
) {
    const SLOTS: [u32; 2] = [0x6300, 0x6400];
    let p: Vec<Peer> = (1..=3)
        .map(|id| Peer::new(id, AES_CM, 0xD0D0_0000 + id as u32, 10 * id as u16, 0))
        .collect();
    let mut p = p;
    let mut s = Peer::listener(9, AES_CM);
    let mut core = core();
    for peer in &p {
        apply(&mut core, peer.transport());
        apply(&mut core, peer.join(ROOM, true, &[]));
    }
    apply(&mut core, s.transport());
    apply(&mut core, s.join(ROOM, false, &SLOTS));
    let (a, c) = (p[0].ssrc, p[2].ssrc);
    let mut out = Outbox::with_capacity(16);
    let t0 = Instant::now();
    let mut dominant_at: Vec<(u32, u32)> = Vec::new();
    // One frame from each peer (silence included); who the listener heard, and the floor changes.
    let mut tick =
        |core: &mut Forwarder, p: &mut [Peer], k: u32, dominant_at: &mut Vec<(u32, u32)>| {
            let mut got = Vec::new();
            for peer in p.iter_mut() {
                let d = peer.next_rtp();
                feed(core, t0 + FRAME * k, peer.addr, &d, &mut out);
                got.extend(s.hear(&take(&mut out)).iter().map(|h| h.origin));
            }
            for u in core.drain_upcalls() {
                if let Upcall::Dominant { room, source, .. } = u {
                    assert_eq!(room, ROOM);
                    dominant_at.push((k, source));
                }
            }
            got
        };
    // Speech as the detector hears it: loud frames (15 dBov down) over a quieter noise floor that
    // shows once a second (100 dBov down); a steady level would be taken for background noise.
    let talk = |k: u32| if k % 50 == 0 { 100 } else { 15 };
    // A talks from the start, B from 1 s; C sends silence, then coughs for 60 ms at 2 s.
    for k in 0..200 {
        p[0].level = talk(k);
        p[1].level = if k >= 50 { talk(k) } else { 127 };
        p[2].level = if (100..103).contains(&k) { 15 } else { 127 };
        let got = tick(&mut core, &mut p, k, &mut dominant_at);
        assert!(!got.contains(&c), "tick {k}: a cough takes no slot");
    }
    assert_eq!(
        dominant_at.first().map(|x| x.1),
        Some(a),
        "A took the floor first: {dominant_at:?}"
    );
    assert!(
        dominant_at.iter().all(|&(_, s)| s != c),
        "a cough is not the floor: {dominant_at:?}"
    );
    // A and B fall silent (still sending); C starts talking. The plain rule would let C in once a
    // slot's source had been quiet for the hold (75 frames); as the new floor holder it gets one as
    // soon as the detector says so.
    let hold_ticks = ForwarderConfig::default().slot_hold.as_millis() as u32 / 20;
    let mut heard_c = None;
    for k in 200..300 {
        p[0].level = 127;
        p[1].level = 127;
        p[2].level = talk(k);
        let got = tick(&mut core, &mut p, k, &mut dominant_at);
        if heard_c.is_none() && got.contains(&c) {
            heard_c = Some(k);
        }
    }
    let (took_floor, _) = *dominant_at
        .iter()
        .find(|&&(_, s)| s == c)
        .unwrap_or_else(|| panic!("C took the floor: {dominant_at:?}"));
    let heard_c = heard_c.expect("C was heard");
    assert!(took_floor < 200 + hold_ticks, "{took_floor}");
    assert_eq!(
        heard_c, took_floor,
        "C got a slot with the floor, before the hold"
    );
}

// ------------------------------------------------------------------------------ 4b. RTCP per hop

/// The `Link` upcalls the core queued, by transport.
fn links(core: &mut Forwarder) -> Vec<(TransportId, LinkReport)> {
    core.drain_upcalls()
        .filter_map(|u| match u {
            Upcall::Link {
                transport, report, ..
            } => Some((transport, report)),
            _ => None,
        })
        .collect()
}

#[test]
fn each_hop_sends_sender_reports_on_slots_and_receiver_reports_with_the_worst_subscriber_loss() {
    for profile in SrtpProfile::ALL {
        const SLOT: u32 = 0x5107_0001;
        let mut p = Peer::new(1, profile, 0xA1A1_0001, 100, 5_000);
        let mut u = Peer::listener(2, profile);
        let mut core = core();
        publisher_and_subscriber(&mut core, &p, &u, SLOT);
        let mut out = Outbox::with_capacity(64);
        let t0 = Instant::now();
        // Without a wall clock nothing is stamped, so nothing is sent.
        assert_eq!(core.send_reports(t0, 0, &mut out), None);
        assert!(out.is_empty());
        core.set_wall_clock(t0, Duration::from_secs(1_000_000));

        // 50 frames from P, of which every tenth is lost on the way to the SFU.
        for i in 0..50u32 {
            let d = p.next_rtp();
            if i % 10 != 3 {
                feed(&mut core, t0 + FRAME * i, p.addr, &d, &mut out);
            }
        }
        assert_eq!(take(&mut out).len(), 45, "{profile}");
        let _ = core.drain_upcalls().count();

        let at = t0 + Duration::from_secs(1);
        assert_eq!(core.send_reports(at, 0, &mut out), None);
        let sent = take(&mut out);
        assert_eq!(sent.len(), 2, "{profile}: one report to each");
        assert_eq!(stats(&core).rtcp_out, 2);

        // U: an SR from its slot with what it was sent, and an SDES CNAME.
        let to_u = u.open_rtcp(&sent.iter().find(|(a, _)| *a == u.addr).expect("to U").1);
        let pkts: Vec<_> = RtcpCompound::new(&to_u).map(Result::unwrap).collect();
        assert_eq!(pkts.len(), 2, "{profile}");
        assert_eq!(
            (pkts[0].packet_type(), pkts[0].sender_ssrc()),
            (RTCP_SR, Some(SLOT))
        );
        let info = pkts[0].sender_info().expect("sender info");
        assert_eq!(
            (info.packet_count, info.octet_count),
            (45, 45 * PAYLOAD_LEN as u32)
        );
        // The last packet (P's frame 49, sent on as ts 5000 + 49 * 960) went 20 ms before `at`.
        assert_eq!(info.rtp_timestamp, 5_000 + 49 * FRAME_TICKS + FRAME_TICKS);
        assert_eq!(pkts[0].report_blocks().count(), 0, "U publishes nothing");
        assert_eq!(pkts[1].packet_type(), RTCP_SDES);

        // P: an RR about its stream: a tenth lost (25/256), 5 in all.
        let to_p = p.open_rtcp(&sent.iter().find(|(a, _)| *a == p.addr).expect("to P").1);
        let pkts: Vec<_> = RtcpCompound::new(&to_p).map(Result::unwrap).collect();
        assert_eq!(pkts[0].packet_type(), RTCP_RR, "{profile}");
        let b: Vec<ReportBlock> = pkts[0].report_blocks().collect();
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].ssrc, p.ssrc);
        assert_eq!((b[0].fraction_lost, b[0].cumulative_lost), (25, 5));
        assert_eq!(b[0].ext_highest_seq, 149);
        let ls = links(&mut core);
        assert_eq!(
            ls.len(),
            1,
            "{profile}: only P has something to report: {ls:?}"
        );
        let up = ls[0].1.uplink.expect("P's uplink");
        assert_eq!(
            (ls[0].0, up.quality.fraction_lost, up.lost, up.received),
            (p.id, 25, 5, 45)
        );

        // U reports 20 % lost on its slot, echoing our SR (held 100 ms), 300 ms after it went.
        let rr_block = ReportBlock {
            ssrc: SLOT,
            fraction_lost: 51,
            cumulative_lost: 9,
            ext_highest_seq: 0,
            jitter: 240,
            lsr: ntp_mid32(info.ntp_timestamp),
            dlsr: to_units(ms(100)),
        };
        let mut rr = [0u8; 64];
        let n = write_rr(&mut rr, u.ssrc, &[rr_block]).unwrap();
        let rr = u.srtcp(rr[..n].to_vec());
        feed(&mut core, at + ms(300), u.addr, &rr, &mut out);
        assert!(out.is_empty(), "{profile}: reports end here");
        // The control plane hands the worst among P's subscribers to P's worker.
        apply(
            &mut core,
            TopologyUpdate::Downstream {
                transport: p.id,
                quality: Quality {
                    fraction_lost: 51,
                    jitter: 240,
                },
            },
        );
        for i in 0..45u32 {
            let d = p.next_rtp();
            feed(&mut core, at + FRAME * i, p.addr, &d, &mut out);
        }
        let _ = take(&mut out);
        let _ = core.drain_upcalls().count();
        let at2 = at + Duration::from_secs(1);
        assert_eq!(core.send_reports(at2, 0, &mut out), None);
        let sent = take(&mut out);
        // P's block now says what U lost (its own hop lost nothing this second).
        let to_p = p.open_rtcp(&sent.iter().find(|(a, _)| *a == p.addr).expect("to P").1);
        let b: Vec<ReportBlock> = RtcpCompound::new(&to_p)
            .map(Result::unwrap)
            .flat_map(|x| x.report_blocks().collect::<Vec<_>>())
            .collect();
        assert_eq!(
            (b[0].fraction_lost, b[0].jitter, b[0].cumulative_lost),
            (51, 240, 5)
        );
        // U's link: the loss it reported and a 200 ms round trip (300 ms minus the 100 it held).
        let ls = links(&mut core);
        let down = ls
            .iter()
            .find(|(t, _)| *t == u.id)
            .and_then(|(_, r)| r.downlink)
            .expect("U's downlink");
        assert_eq!(
            (down.worst.fraction_lost, down.worst.jitter, down.lost),
            (51, 240, 9)
        );
        let rtt = down.rtt.expect("round trip");
        assert!(rtt.abs_diff(ms(200)) < ms(1), "{profile}: {rtt:?}");
        // P's own uplink sample does not carry the downstream loss.
        let up = ls
            .iter()
            .find(|(t, _)| *t == p.id)
            .and_then(|(_, r)| r.uplink);
        assert_eq!(up.map(|u| u.quality.fraction_lost), Some(0));

        // A report block about an SSRC that is not one of U's slots is not U's downlink.
        let mut rr = [0u8; 64];
        let n = write_rr(
            &mut rr,
            u.ssrc,
            &[ReportBlock {
                ssrc: p.ssrc,
                ..rr_block
            }],
        )
        .unwrap();
        let rr = u.srtcp(rr[..n].to_vec());
        feed(&mut core, at2 + ms(10), u.addr, &rr, &mut out);
        let _ = core.send_reports(at2 + Duration::from_secs(1), 0, &mut out);
        let ls = links(&mut core);
        assert!(ls.iter().all(|(t, _)| *t != u.id), "{profile}: {ls:?}");
    }
}

#[test]
fn reports_resume_where_a_full_outbox_stopped_them() {
    let profile = AES_CM;
    let mut p = Peer::new(1, profile, 0xA1A1_0001, 100, 5_000);
    let listeners: Vec<Peer> = (2..12).map(|id| Peer::listener(id, profile)).collect();
    let mut core = core();
    apply(&mut core, p.transport());
    apply(&mut core, p.join(ROOM, true, &[]));
    for (i, l) in listeners.iter().enumerate() {
        apply(&mut core, l.transport());
        apply(&mut core, l.join(ROOM, false, &[0x5000 + i as u32]));
    }
    let t0 = Instant::now();
    core.set_wall_clock(t0, Duration::from_secs(1_000_000));
    let mut out = Outbox::with_capacity(16);
    for i in 0..5u32 {
        let d = p.next_rtp();
        feed(&mut core, t0 + FRAME * i, p.addr, &d, &mut out);
        let _ = take(&mut out);
    }
    let mut out = Outbox::with_capacity(4);
    let mut from = 0;
    let mut sent = Vec::new();
    let at = t0 + Duration::from_secs(1);
    while let Some(next) = core.send_reports(at, from, &mut out) {
        assert!(next > from, "progress");
        sent.extend(take(&mut out));
        from = next;
    }
    sent.extend(take(&mut out));
    // One to the publisher, one to each listener, none twice.
    assert_eq!(sent.len(), 11);
    let mut dests: Vec<_> = sent.iter().map(|(a, _)| *a).collect();
    dests.sort();
    dests.dedup();
    assert_eq!(dests.len(), 11);
}

// ----------------------------------------------------------------------------- 5. robustness

/// xorshift64: deterministic, dependency-free pseudo-random numbers.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn byte(&mut self) -> u8 {
        self.next() as u8
    }
}

/// A hostile datagram: random bytes, or a mutation of `template` (a valid SRTP packet).
fn hostile(rng: &mut XorShift, template: &[u8]) -> Vec<u8> {
    let mut d = template.to_vec();
    match rng.below(8) {
        0 => {
            // Random bytes, half of them in the RTP/RTCP first-byte range.
            let len = rng.below(300);
            d = (0..len).map(|_| rng.byte()).collect();
            if len > 0 && rng.below(2) == 0 {
                d[0] = 0x80 | (d[0] & 0x3F);
            }
        }
        1 => {
            for _ in 0..=rng.below(4) {
                let i = rng.below(d.len());
                d[i] ^= 1 << rng.below(8);
            }
        }
        2 => d.truncate(rng.below(d.len())),
        3 => {
            for _ in 0..=rng.below(40) {
                d.push(rng.byte());
            }
        }
        4 => d[0] = (d[0] & 0xF0) | rng.below(16) as u8,
        5 => {
            // Header flags: X, P, version, marker/payload type (may turn it into "RTCP").
            match rng.below(4) {
                0 => d[0] ^= 0x10,
                1 => d[0] ^= 0x20,
                2 => d[0] ^= 0xC0,
                _ => d[1] = rng.byte(),
            }
        }
        6 => {
            // The extension length word claims more (or fewer) words than there are.
            d[14] = rng.byte();
            d[15] = rng.byte();
        }
        _ => {} // an exact replay
    }
    d
}

fn fuzz(profile: SrtpProfile, engine: SrtpEngine, inputs: usize, seed: u64) {
    const SLOT: u32 = 0x5000;
    let mut rng = XorShift(seed);
    let mut a = Peer::new(1, profile, 0xA000_0001, 100, 0);
    let mut s = Peer::listener(2, profile);
    let mut core = core_with(ForwarderConfig {
        srtp_engine: engine,
        ..ForwarderConfig::default()
    });
    publisher_and_subscriber(&mut core, &a, &s, SLOT);
    let stranger = addr(31_337);
    let mut out = Outbox::with_capacity(4);
    let t0 = Instant::now();
    let mut template = a.next_rtp();
    feed(&mut core, t0, a.addr, &template, &mut out);
    assert_eq!(s.hear(&take(&mut out)).len(), 1);
    let (mut valid, mut forwarded, mut dropped) = (1u64, 1u64, 0u64);
    let mut heard = Vec::new();

    for i in 1..inputs {
        let now = t0 + ms(i as u64);
        let before = stats(&core);
        let is_valid = i % 50 == 0;
        let (d, from) = if is_valid {
            template = a.next_rtp();
            (template.clone(), a.addr)
        } else {
            let d = if rng.below(10) == 0 {
                // A fresh packet that never arrives intact.
                let mut fresh = a.next_rtp();
                let j = rng.below(fresh.len());
                fresh[j] ^= 1 << rng.below(8);
                fresh
            } else {
                hostile(&mut rng, &template)
            };
            let from = if rng.below(4) == 0 { stranger } else { a.addr };
            (d, from)
        };
        feed(&mut core, now, from, &d, &mut out);
        let after = stats(&core);
        let grew = out.len() as u64;
        let new_drops = after.total_drops() - before.total_drops();
        let rtcp = after.rtcp_in - before.rtcp_in;
        assert_eq!(
            grew + new_drops + rtcp,
            1,
            "input {i} ({d:02x?} from {from}) must end as exactly one outcome: \
             forwarded {grew}, drops {new_drops}, rtcp {rtcp}"
        );
        if is_valid {
            valid += 1;
            assert_eq!(grew, 1, "input {i}: valid traffic still flows");
            let sent = take(&mut out);
            heard.extend(s.hear(&sent));
        } else {
            assert_eq!(grew, 0, "input {i}: a hostile datagram was forwarded");
        }
        forwarded += grew;
        dropped += new_drops;
        out.clear();
    }
    let st = stats(&core);
    assert_eq!(st.packets_in, inputs as u64, "every input counted in");
    assert_eq!(forwarded, valid);
    assert_eq!(st.total_drops(), dropped);
    assert_eq!(forwarded + dropped + st.rtcp_in, inputs as u64);
    for r in [
        DropReason::UnknownSource,
        DropReason::Malformed,
        DropReason::AuthFailed,
        DropReason::Replayed,
        DropReason::Unsupported,
    ] {
        assert!(
            st.drops(r) > 0,
            "{profile}/{engine}: the inputs never exercised {}: {st:?}",
            r.name()
        );
    }
    assert_eq!(heard.len() as u64, valid - 1);
    for h in &heard {
        assert_eq!((h.ssrc, h.origin), (SLOT, a.ssrc));
    }
    for w in heard.windows(2) {
        assert!(
            w[1].seq.wrapping_sub(w[0].seq) as i16 > 0,
            "the subscriber's stream only moves forward"
        );
    }
}

#[test]
fn a_hundred_thousand_hostile_datagrams_never_panic_and_each_is_counted_exactly_once() {
    fuzz(AES_CM, SrtpEngine::InPlace, 100_000, 0x5EED_0001);
}

#[test]
fn hostile_datagrams_are_counted_the_same_way_for_every_profile_and_engine() {
    for (n, profile) in SrtpProfile::ALL.into_iter().enumerate() {
        for engine in [SrtpEngine::InPlace, SrtpEngine::WebrtcSrtp] {
            fuzz(profile, engine, 10_000, 0xF00D_0000 + n as u64);
        }
    }
}

// ----------------------------------------------------------------------- 6. topology edge cases

#[test]
fn updates_naming_a_transport_this_worker_does_not_have_are_refused() {
    let mut core = core();
    let p = Peer::new(1, AES_CM, 1, 0, 0);
    let refused = |r: Result<(), TopologyError>| match r {
        Err(TopologyError::UnknownTransport(id)) => id,
        other => panic!("expected UnknownTransport, got {other:?}"),
    };
    assert_eq!(refused(core.apply(p.join(ROOM, true, &[]))), 1);
    assert_eq!(
        refused(core.apply(TopologyUpdate::Leave { transport: 1 })),
        1
    );
    assert_eq!(
        refused(core.apply(TopologyUpdate::Mute {
            transport: 1,
            muted: true
        })),
        1
    );
    core.apply(TopologyUpdate::RemoveTransport { id: 1 })
        .expect("removing what is not there is a no-op");
    assert_eq!(core.transport_count(), 0);
    assert_eq!(core.max_fanout(), 0, "a refused join created no room");
}

#[test]
fn re_adding_a_transport_id_replaces_it_and_its_old_address_no_longer_routes() {
    const SLOT: u32 = 0x5000;
    let mut p = Peer::new(1, AES_CM, 0xABAB_0001, 0, 0);
    let mut s = Peer::listener(2, AES_CM);
    let mut core = core();
    publisher_and_subscriber(&mut core, &p, &s, SLOT);
    let mut out = Outbox::with_capacity(8);
    let t0 = Instant::now();
    let d = p.next_rtp();
    feed(&mut core, t0, p.addr, &d, &mut out);
    assert_eq!(s.hear(&take(&mut out)).len(), 1);

    // Both move: the publisher and the subscriber reconnect from new addresses.
    let (p_old, s_old) = (p.addr, s.addr);
    p.addr = addr(20_001);
    s.addr = addr(20_002);
    apply(&mut core, p.transport());
    apply(&mut core, s.transport());
    assert_eq!(core.transport_count(), 2, "replaced, not added");
    assert_eq!(core.transport_remote(p.id), Some(p.addr));
    assert_eq!(core.transport_remote(s.id), Some(s.addr));

    let d = p.next_rtp();
    feed(&mut core, t0 + FRAME, p_old, &d, &mut out);
    assert_eq!(
        stats(&core).drops(DropReason::UnknownSource),
        1,
        "old address"
    );
    // A replaced transport starts outside any room.
    let d = p.next_rtp();
    feed(&mut core, t0 + FRAME * 2, p.addr, &d, &mut out);
    assert_eq!(
        stats(&core).drops(DropReason::Muted),
        1,
        "not in a room yet"
    );
    assert!(out.is_empty());

    apply(&mut core, p.join(ROOM, true, &[]));
    apply(&mut core, s.join(ROOM, false, &[SLOT]));
    let d = p.next_rtp();
    feed(&mut core, t0 + FRAME * 3, p.addr, &d, &mut out);
    let sent = take(&mut out);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, s.addr, "the new address, never {s_old}");
    assert_eq!(s.hear(&sent)[0].csrcs, vec![p.ssrc]);
}

#[test]
fn closing_a_room_stops_all_its_forwarding_and_leaves_other_rooms_alone() {
    const OTHER: RoomId = 8;
    let mut p = Peer::new(1, AES_CM, 0x7000_0001, 0, 0);
    let mut s1 = Peer::listener(2, AES_CM);
    let mut s2 = Peer::listener(3, AES_CM);
    let mut q = Peer::new(4, AES_CM, 0x8000_0004, 0, 0);
    let mut r = Peer::listener(5, AES_CM);
    let mut core = core();
    for u in [
        p.transport(),
        s1.transport(),
        s2.transport(),
        q.transport(),
        r.transport(),
        p.join(ROOM, true, &[]),
        s1.join(ROOM, false, &[0x51]),
        s2.join(ROOM, false, &[0x52]),
        q.join(OTHER, true, &[]),
        r.join(OTHER, false, &[0x53]),
    ] {
        apply(&mut core, u);
    }
    assert_eq!(core.max_fanout(), 3);
    let mut out = Outbox::with_capacity(8);
    let t0 = Instant::now();
    let d = p.next_rtp();
    feed(&mut core, t0, p.addr, &d, &mut out);
    assert_eq!(take(&mut out).len(), 2);

    apply(&mut core, TopologyUpdate::CloseRoom { room: ROOM });
    assert_eq!(core.max_fanout(), 2, "only the other room is left");
    for i in 1..=5u32 {
        let d = p.next_rtp();
        feed(&mut core, t0 + FRAME * i, p.addr, &d, &mut out);
        assert!(out.is_empty(), "the closed room forwards nothing");
        let d = q.next_rtp();
        feed(&mut core, t0 + FRAME * i, q.addr, &d, &mut out);
        let sent = take(&mut out);
        assert!(s1.hear(&sent).is_empty() && s2.hear(&sent).is_empty());
        assert_eq!(r.hear(&sent).len(), 1, "the other room still forwards");
    }
    assert_eq!(
        stats(&core).drops(DropReason::Muted),
        5,
        "no room to publish to"
    );
    assert_eq!(
        core.transport_count(),
        5,
        "closing a room keeps the transports"
    );
}

#[test]
fn a_listener_that_sends_rtp_is_dropped_as_muted_before_any_decryption() {
    let mut l = Peer::new(1, AES_CM, 0x1157_0001, 0, 0);
    let mut s = Peer::listener(2, AES_CM);
    let mut core = core();
    for u in [
        l.transport(),
        s.transport(),
        l.join(ROOM, false, &[0x50]),
        s.join(ROOM, false, &[0x51]),
    ] {
        apply(&mut core, u);
    }
    let mut out = Outbox::with_capacity(8);
    let t0 = Instant::now();
    for i in 0..3u32 {
        let d = l.next_rtp();
        feed(&mut core, t0 + FRAME * i, l.addr, &d, &mut out);
    }
    // Garbage with a valid-looking header from the listener costs no crypto either.
    let mut junk = l.next_rtp();
    let n = junk.len();
    junk[n - 1] ^= 0xFF;
    feed(&mut core, t0 + FRAME * 3, l.addr, &junk, &mut out);
    assert!(out.is_empty());
    assert!(s.hear(&take(&mut out)).is_empty());
    let st = stats(&core);
    assert_eq!(st.drops(DropReason::Muted), 4, "{st:?}");
    assert_eq!(st.total_drops(), 4, "{st:?}");
}

#[test]
fn a_server_side_mute_silences_a_publisher_and_unmute_brings_it_back() {
    const SLOT: u32 = 0x5000;
    let mut p = Peer::new(1, AES_CM, 0x3000_0001, 0, 0);
    let mut s = Peer::listener(2, AES_CM);
    let mut core = core();
    publisher_and_subscriber(&mut core, &p, &s, SLOT);
    let mut out = Outbox::with_capacity(8);
    let t0 = Instant::now();
    let mut heard = Vec::new();
    let mut k = 0u32;
    let mut send = |core: &mut Forwarder, p: &mut Peer, out: &mut Outbox| {
        let d = p.next_rtp();
        feed(core, t0 + FRAME * k, p.addr, &d, out);
        k += 1;
    };
    for _ in 0..5 {
        send(&mut core, &mut p, &mut out);
        heard.extend(s.hear(&take(&mut out)));
    }
    let mute = |muted| TopologyUpdate::Mute {
        transport: 1,
        muted,
    };
    apply(&mut core, mute(true));
    for _ in 0..5 {
        send(&mut core, &mut p, &mut out);
        assert!(out.is_empty(), "muted: nothing forwarded");
    }
    assert_eq!(stats(&core).drops(DropReason::Muted), 5);
    apply(&mut core, mute(false));
    for _ in 0..5 {
        send(&mut core, &mut p, &mut out);
        heard.extend(s.hear(&take(&mut out)));
    }
    assert_eq!(heard.len(), 10, "heard before and after the mute");
    let origin: Vec<u16> = heard.iter().map(|h| h.origin_seq).collect();
    assert_eq!(origin, vec![0, 1, 2, 3, 4, 10, 11, 12, 13, 14]);
    assert!(heard.iter().all(|h| h.ssrc == SLOT && h.csrcs == [p.ssrc]));
    assert_eq!(stats(&core).total_drops(), 5);
}

#[test]
fn a_removed_transport_gets_nothing_more_and_its_packets_are_unknown() {
    let mut p = Peer::new(1, AES_CM, 0x4000_0001, 0, 0);
    let mut s = Peer::listener(2, AES_CM);
    let mut core = core();
    publisher_and_subscriber(&mut core, &p, &s, 0x50);
    let mut out = Outbox::with_capacity(8);
    let t0 = Instant::now();
    let d = p.next_rtp();
    feed(&mut core, t0, p.addr, &d, &mut out);
    assert_eq!(s.hear(&take(&mut out)).len(), 1);

    apply(&mut core, TopologyUpdate::RemoveTransport { id: s.id });
    let d = p.next_rtp();
    feed(&mut core, t0 + FRAME, p.addr, &d, &mut out);
    assert!(out.is_empty(), "the removed subscriber gets nothing");
    assert_eq!(core.max_fanout(), 1);

    apply(&mut core, TopologyUpdate::RemoveTransport { id: p.id });
    let d = p.next_rtp();
    feed(&mut core, t0 + FRAME * 2, p.addr, &d, &mut out);
    assert_eq!(stats(&core).drops(DropReason::UnknownSource), 1);
    assert_eq!(core.transport_count(), 0);
    assert_eq!(core.max_fanout(), 0, "the empty room is gone");
}

// --------------------------------------------------------------------------------- 7. QueueFull

#[test]
fn an_outbox_smaller_than_the_fan_out_counts_the_overflow_as_queue_full() {
    let mut p = Peer::new(1, AES_CM, 0x9000_0001, 0, 0);
    let mut subs: Vec<Peer> = (2..=6).map(|id| Peer::listener(id, AES_CM)).collect();
    let mut core = core();
    apply(&mut core, p.transport());
    apply(&mut core, p.join(ROOM, true, &[]));
    for (i, s) in subs.iter().enumerate() {
        apply(&mut core, s.transport());
        apply(&mut core, s.join(ROOM, false, &[0x5000 + i as u32]));
    }
    assert_eq!(core.max_fanout(), 6);
    let mut out = Outbox::with_capacity(3);
    let t0 = Instant::now();
    let d = p.next_rtp();
    feed(&mut core, t0, p.addr, &d, &mut out);
    assert_eq!(out.len(), 3, "as many copies as fit");
    assert_eq!(stats(&core).drops(DropReason::QueueFull), 2);

    // Still full: every copy of the next packet overflows, and nothing panics.
    let d = p.next_rtp();
    feed(&mut core, t0 + FRAME, p.addr, &d, &mut out);
    assert_eq!(out.len(), 3);
    assert_eq!(stats(&core).drops(DropReason::QueueFull), 7);

    // Once drained, the subscribers that got the first packet decrypt it; the next fits again.
    let sent = take(&mut out);
    let got: usize = subs.iter_mut().map(|s| s.hear(&sent).len()).sum();
    assert_eq!(got, 3);
    let mut big = Outbox::with_capacity(core.max_fanout());
    let d = p.next_rtp();
    feed(&mut core, t0 + FRAME * 2, p.addr, &d, &mut big);
    assert_eq!(
        big.len(),
        5,
        "an outbox of max_fanout slots holds a whole fan-out"
    );
    assert_eq!(stats(&core).drops(DropReason::QueueFull), 7);
}

#[test]
fn draining_relays_stops_before_the_outbox_overflows_and_a_full_ring_counts_queue_full() {
    let mut c = Cluster::new(2, 4096);
    let mut p = Peer::new(1, AES_CM, 0x9100_0001, 0, 0);
    let mut subs: Vec<Peer> = (2..=4).map(|id| Peer::listener(id, AES_CM)).collect();
    apply(&mut c.cores[0], p.transport());
    c.join(0, p.membership(ROOM, true, &[]));
    for (i, s) in subs.iter().enumerate() {
        apply(&mut c.cores[1], s.transport());
        c.join(1, s.membership(ROOM, false, &[0x5000 + i as u32]));
    }
    assert_eq!(c.cores[1].max_fanout(), 3);
    let mut out0 = Outbox::with_capacity(8);
    let t0 = Instant::now();
    // 4096 bytes hold 25 records of 16 + 150 bytes: the rest overflow, counted on the sender.
    for i in 0..40u32 {
        let d = p.next_rtp();
        feed(&mut c.cores[0], t0 + FRAME * i, p.addr, &d, &mut out0);
    }
    let w0 = stats(&c.cores[0]);
    assert!(w0.relayed_out > 0 && w0.relayed_out < 40, "{w0:?}");
    assert_eq!(w0.relayed_out + w0.drops(DropReason::QueueFull), 40);
    assert_eq!(w0.total_drops(), w0.drops(DropReason::QueueFull));

    // An outbox of 4 takes one packet's fan-out of 3, then drain stops rather than overflow.
    let mut out1 = Outbox::with_capacity(4);
    let now = t0 + ms(900);
    assert!(
        !c.cores[1].drain_relays(now, &mut out1),
        "not everything fit"
    );
    assert_eq!(out1.len(), 3);
    assert!(c.cores[1].relays_pending(), "the rest waits in the ring");
    assert_eq!(stats(&c.cores[1]).drops(DropReason::QueueFull), 0);
    let mut heard = 0;
    let mut rounds = 1;
    loop {
        let sent = take(&mut out1);
        heard += subs.iter_mut().map(|s| s.hear(&sent).len()).sum::<usize>();
        if !c.cores[1].relays_pending() {
            break;
        }
        c.cores[1].drain_relays(now, &mut out1);
        rounds += 1;
    }
    assert_eq!(
        rounds as u64, w0.relayed_out,
        "one relayed packet per round"
    );
    assert_eq!(
        heard as u64,
        3 * w0.relayed_out,
        "every relayed packet reached all 3"
    );
    assert_eq!(stats(&c.cores[1]).relayed_in, w0.relayed_out);
    assert_eq!(stats(&c.cores[1]).total_drops(), 0);
}

// ------------------------------------------------------------------ regressions

/// Regression: a muted publisher's packets must still pass through SRTP (then be dropped), or after a
/// mute longer than 2^15 packets (about 11 minutes of 20 ms frames) the RFC 3711 §3.3.1 index
/// estimate picks the wrong ROC and every packet after the unmute is rejected for good. The slot's
/// outgoing stream, which jumped 40,000 packets, is re-anchored at last + 1 as well.
#[test]
fn a_publisher_unmuted_after_a_long_server_side_mute_is_heard_again() {
    let mut p = Peer::new(1, AES_CM, 0x3100_0001, 0, 0);
    let mut s = Peer::listener(2, AES_CM);
    let mut core = core();
    publisher_and_subscriber(&mut core, &p, &s, 0x50);
    let mut out = Outbox::with_capacity(8);
    let t0 = Instant::now();
    let d = p.next_rtp();
    feed(&mut core, t0, p.addr, &d, &mut out);
    assert_eq!(s.hear(&take(&mut out)).len(), 1);
    apply(
        &mut core,
        TopologyUpdate::Mute {
            transport: p.id,
            muted: true,
        },
    );
    for i in 1..=40_000u32 {
        let d = p.next_rtp();
        feed(&mut core, t0 + FRAME * i, p.addr, &d, &mut out);
    }
    assert!(out.is_empty());
    apply(
        &mut core,
        TopologyUpdate::Mute {
            transport: p.id,
            muted: false,
        },
    );
    let mut heard = 0;
    for i in 0..10u32 {
        let d = p.next_rtp();
        feed(&mut core, t0 + FRAME * (40_001 + i), p.addr, &d, &mut out);
        heard += s.hear(&take(&mut out)).len();
    }
    let st = stats(&core);
    assert_eq!(heard, 10, "unmuted publisher is not heard: {st:?}");
}

/// Regression: when the same SSRC comes back to a freed slot (a client or plain-RTP tool that
/// reconnects with a fixed SSRC and a fresh sequence space), the slot must re-anchor after its last
/// packet. Following the publisher's new numbering would re-encrypt different plaintext under SRTP
/// indices the slot already used (keystream reuse with AES-CM, nonce reuse with AES-GCM).
#[test]
fn a_publisher_that_rejoins_with_the_same_ssrc_continues_the_slot_stream() {
    const SLOT: u32 = 0x5000;
    let mut p = Peer::new(1, AES_CM, 0x3200_0001, 100, 5_000);
    let mut s = Peer::listener(2, AES_CM);
    let mut core = core();
    publisher_and_subscriber(&mut core, &p, &s, SLOT);
    let mut out = Outbox::with_capacity(8);
    let t0 = Instant::now();
    let mut used = std::collections::HashSet::new();
    let mut heard = Vec::new();
    for i in 0..10u32 {
        let d = p.next_rtp();
        feed(&mut core, t0 + FRAME * i, p.addr, &d, &mut out);
        let sent = take(&mut out);
        for (_, d) in &sent {
            let h = RtpHeader::parse_encrypted(d).expect("the core emits RTP");
            used.insert((h.ssrc(), h.sequence_number()));
        }
        heard.extend(s.hear(&sent));
    }
    let last = heard.last().expect("P was heard").clone();

    // P reconnects 1 s later: a new transport (same id and keys) and a new sender whose numbering
    // starts at 105 again, with the same SSRC.
    apply(&mut core, TopologyUpdate::Leave { transport: p.id });
    let mut p2 = Peer::new(1, AES_CM, p.ssrc, 105, 900_000_000);
    apply(&mut core, p2.transport());
    apply(&mut core, p2.join(ROOM, true, &[]));
    let d = p2.next_rtp();
    feed(&mut core, t0 + FRAME * 9 + ms(1000), p2.addr, &d, &mut out);
    let sent = take(&mut out);
    assert_eq!(sent.len(), 1, "{:?}", stats(&core));
    let h = RtpHeader::parse_encrypted(&sent[0].1).expect("the core emits RTP");
    let index = (h.ssrc(), h.sequence_number());
    assert!(
        !used.contains(&index),
        "SRTP index {index:x?} of the slot encrypted twice (slot stream ended at seq {})",
        last.seq
    );
    let back = s.hear(&sent);
    assert_eq!(back[0].seq, last.seq.wrapping_add(1), "seq continues");
    assert!(back[0].marker, "a new talkspurt");
    let advance = back[0].ts.wrapping_sub(last.ts);
    assert!(
        advance.abs_diff(48_000) <= FRAME_TICKS,
        "ts advance {advance}"
    );
}
