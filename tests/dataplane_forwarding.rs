//! Scenario tests of the dataplane on real loopback sockets, for every I/O backend: each story starts
//! a real dataplane, attaches clients whose SRTP is done by webrtc-srtp, and checks what every
//! participant receives and what the counters say.

#![deny(unsafe_code)]

mod common;

use std::time::Duration;

use common::{backends, drops, per_sender, start, wait_stats, Client};
use sluice_dataplane::io::BackendChoice;
use sluice_dataplane::srtp::SrtpProfile;
use sluice_dataplane::stats::DropReason;
use sluice_dataplane::topology::TransportConfig;

const QUIET: Duration = Duration::from_millis(300);
const GCM: Option<SrtpProfile> = Some(SrtpProfile::AeadAes128Gcm);

fn each_backend(f: impl Fn(BackendChoice)) {
    for b in backends() {
        eprintln!("--- backend {b:?}");
        f(b);
    }
}

#[test]
fn every_subscriber_gets_every_packet_exactly_once_and_publishers_never_hear_themselves() {
    each_backend(|backend| {
        for profile in SrtpProfile::ALL.map(Some).into_iter().chain([None]) {
            let dp = start(backend, 1);
            let mut pubs: Vec<Client> =
                (1..=2).map(|id| Client::add(&dp, 0, id, profile)).collect();
            let mut subs: Vec<Client> = (10..15)
                .map(|id| Client::add(&dp, 0, id, profile))
                .collect();
            for p in &pubs {
                p.join(&dp, 7, true, 4);
            }
            for s in &subs {
                s.join(&dp, 7, false, 4);
            }
            dp.sync().unwrap();
            for p in &mut pubs {
                p.send(200);
            }
            for s in &mut subs {
                let counts = per_sender(&s.receive(QUIET));
                assert_eq!(
                    counts.get(&1),
                    Some(&200),
                    "{profile:?}: subscriber {} from publisher 1",
                    s.id
                );
                assert_eq!(
                    counts.get(&2),
                    Some(&200),
                    "{profile:?}: subscriber {} from publisher 2",
                    s.id
                );
            }
            for p in &mut pubs {
                let counts = per_sender(&p.receive(QUIET));
                assert_eq!(
                    counts.get(&(p.id as u32)),
                    None,
                    "publisher {} heard itself",
                    p.id
                );
                let other = if p.id == 1 { 2 } else { 1 };
                assert_eq!(
                    counts.get(&other),
                    Some(&200),
                    "publisher {} hears the other",
                    p.id
                );
            }
            let s = dp.total_stats();
            assert_eq!(s.packets_in, 400);
            // Beside the fan-out, the reports (RTCP per hop) each transport gets once a second.
            assert_eq!(s.packets_out - s.rtcp_out, 400 * 5 + 2 * 200);
            assert_eq!(s.total_drops(), 0, "{s:?}");
        }
    });
}

#[test]
fn each_worker_sends_its_subscribers_a_sender_report_per_slot_and_its_publishers_a_receiver_report()
{
    use sluice_dataplane::packet::rtcp::{RTCP_RR, RTCP_SR};
    use sluice_dataplane::packet::RtcpCompound;
    each_backend(|backend| {
        for profile in [GCM, None] {
            let dp = start(backend, 1);
            let mut publisher = Client::add(&dp, 0, 1, profile);
            let mut subscriber = Client::add(&dp, 0, 2, profile);
            publisher.join(&dp, 7, true, 0);
            subscriber.join(&dp, 7, false, 2);
            dp.sync().unwrap();
            publisher.send(60);
            assert_eq!(per_sender(&subscriber.receive(QUIET)).get(&1), Some(&60));
            // Housekeeping runs once a second: within 2.2 s each got its report.
            let sr = subscriber.receive_rtcp(Duration::from_millis(2200));
            let sr = sr.last().unwrap_or_else(|| panic!("{profile:?}: no SR"));
            let pkts: Vec<_> = RtcpCompound::new(sr).map(Result::unwrap).collect();
            assert_eq!(pkts[0].packet_type(), RTCP_SR, "{profile:?}");
            // Slot 0 carried the publisher; slot 1 sent nothing and reports nothing.
            assert_eq!(pkts[0].sender_ssrc(), Some(0x5000_0000 + 2 * 16));
            assert_eq!(pkts[0].sender_info().map(|i| i.packet_count), Some(60));
            assert_eq!(
                pkts.iter().filter(|p| p.packet_type() == RTCP_SR).count(),
                1
            );
            let rr = publisher.receive_rtcp(Duration::from_millis(1200));
            let rr = rr.last().unwrap_or_else(|| panic!("{profile:?}: no RR"));
            let pkt = RtcpCompound::new(rr).next().unwrap().unwrap();
            assert_eq!(pkt.packet_type(), RTCP_RR, "{profile:?}");
            let block = pkt
                .report_blocks()
                .next()
                .expect("a block about the publisher");
            assert_eq!((block.ssrc, block.cumulative_lost), (publisher.ssrc, 0));
            assert_eq!(block.ext_highest_seq, 1000 + 59);
            assert!(dp.total_stats().rtcp_out >= 2);
        }
    });
}

#[test]
fn removing_a_subscriber_stops_its_traffic_at_once() {
    each_backend(|backend| {
        let dp = start(backend, 1);
        let mut publisher = Client::add(&dp, 0, 1, GCM);
        let mut stays = Client::add(&dp, 0, 2, GCM);
        let mut goes = Client::add(&dp, 0, 3, GCM);
        publisher.join(&dp, 1, true, 0);
        stays.join(&dp, 1, false, 1);
        goes.join(&dp, 1, false, 1);
        dp.sync().unwrap();
        publisher.send(50);
        assert_eq!(goes.receive(QUIET).len(), 50);
        assert_eq!(stays.receive(QUIET).len(), 50);
        dp.remove_transport(0, goes.id).unwrap();
        dp.sync().unwrap();
        publisher.send(50);
        assert_eq!(
            goes.receive(QUIET).len(),
            0,
            "a removed subscriber receives nothing"
        );
        assert_eq!(stays.receive(QUIET).len(), 50);
        // Leaving the room (transport kept) also stops traffic.
        dp.leave(0, stays.id).unwrap();
        dp.sync().unwrap();
        publisher.send(10);
        assert_eq!(stays.receive(QUIET).len(), 0);
    });
}

#[test]
fn a_mute_stops_forwarding_and_unmute_resumes() {
    each_backend(|backend| {
        let dp = start(backend, 1);
        let mut publisher = Client::add(&dp, 0, 1, GCM);
        let mut sub = Client::add(&dp, 0, 2, GCM);
        publisher.join(&dp, 1, true, 0);
        sub.join(&dp, 1, false, 1);
        dp.mute(0, publisher.id, true).unwrap();
        dp.sync().unwrap();
        publisher.send(30);
        assert_eq!(sub.receive(QUIET).len(), 0);
        wait_stats(&dp, "muted drops", |s| s.drops(DropReason::Muted) == 30);
        dp.mute(0, publisher.id, false).unwrap();
        dp.sync().unwrap();
        publisher.send(30);
        assert_eq!(sub.receive(QUIET).len(), 30);
    });
}

#[test]
fn bad_packets_are_counted_drops_while_everyone_else_keeps_flowing() {
    each_backend(|backend| {
        let dp = start(backend, 1);
        let mut publisher = Client::add(&dp, 0, 1, GCM);
        let mut sub = Client::add(&dp, 0, 2, GCM);
        publisher.join(&dp, 1, true, 0);
        sub.join(&dp, 1, false, 1);
        dp.sync().unwrap();

        let stranger = common::client_socket();
        let mut sent_ok = 0;
        for round in 0..20u8 {
            // Malformed: truncated RTP, an RTP header whose CSRC count overruns, a random first byte.
            publisher.send_raw(&[0x80, 111, 0]);
            publisher.send_raw(&[0x8F, 111, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1]);
            publisher.send_raw(&[0xFF, round, 1, 2, 3]);
            // Unknown source: a valid-looking packet from an address no transport has.
            let p = publisher.next_packet();
            stranger.send_to(&p, publisher.server).unwrap();
            // Wrong key: the right address and SSRC, encrypted with a key sluice does not know.
            let mut impostor = Client::with_keys(
                &dp,
                0,
                1,
                common::client_socket(),
                Some(sluice_dataplane::topology::TransportKeys {
                    inbound: common::random_keys(SrtpProfile::AeadAes128Gcm),
                    outbound: common::random_keys(SrtpProfile::AeadAes128Gcm),
                }),
            );
            // Same sequence number as the publisher's next packet: not a replay, just a bad tag; the
            // genuine packet with that number must still get through afterwards.
            impostor.seq = publisher.seq;
            let forged = impostor.next_packet();
            publisher.send_raw(&forged);
            // Replay: a valid packet, then the same bytes again.
            let good = publisher.next_packet();
            publisher.send_raw(&good);
            publisher.send_raw(&good);
            sent_ok += 1;
            // And ordinary traffic in between.
            publisher.send(5);
            sent_ok += 5;
        }
        let got = sub.receive(QUIET);
        assert_eq!(
            per_sender(&got).get(&1),
            Some(&sent_ok),
            "every valid packet arrived exactly once"
        );
        let s = wait_stats(&dp, "all drops counted", |s| s.total_drops() >= 20 * 6);
        assert_eq!(s.total_drops(), 20 * 6, "{s:?}");
        assert_eq!(
            s.drops(DropReason::Malformed),
            60,
            "two bad RTP headers and one unknown first byte per round"
        );
        assert_eq!(
            s.drops(DropReason::UnknownSource),
            20,
            "the stranger's packets"
        );
        assert_eq!(s.drops(DropReason::AuthFailed), 20);
        assert_eq!(s.drops(DropReason::Replayed), 20);
        assert_eq!(drops(&dp, DropReason::QueueFull), 0);
    });
}

#[test]
fn a_room_spread_over_two_workers_forwards_through_the_relay_rings() {
    each_backend(|backend| {
        let dp = start(backend, 2);
        let mut p0 = Client::add(&dp, 0, 1, GCM);
        let mut p1 = Client::add(&dp, 1, 2, GCM);
        let mut s0 = Client::add(&dp, 0, 3, GCM);
        let mut s1 = Client::add(&dp, 1, 4, GCM);
        for c in [&p0, &p1] {
            c.join(&dp, 9, true, 2);
        }
        for c in [&s0, &s1] {
            c.join(&dp, 9, false, 2);
        }
        dp.sync().unwrap();
        p0.send(100);
        p1.send(100);
        for s in [&mut s0, &mut s1] {
            let counts = per_sender(&s.receive(QUIET));
            assert_eq!(
                counts.get(&1),
                Some(&100),
                "subscriber {} hears worker 0's publisher",
                s.id
            );
            assert_eq!(
                counts.get(&2),
                Some(&100),
                "subscriber {} hears worker 1's publisher",
                s.id
            );
        }
        let c0 = per_sender(&p0.receive(QUIET));
        assert_eq!((c0.get(&1), c0.get(&2)), (None, Some(&100)));
        let c1 = per_sender(&p1.receive(QUIET));
        assert_eq!((c1.get(&1), c1.get(&2)), (Some(&100), None));
        let s = dp.total_stats();
        assert_eq!(
            s.relayed_out, 200,
            "each packet crosses to the other worker once: {s:?}"
        );
        assert_eq!(s.relayed_in, 200);
        // The remote publisher leaving frees its slot on the other worker too.
        dp.remove_transport(1, p1.id).unwrap();
        dp.sync().unwrap();
        p0.send(10);
        assert_eq!(per_sender(&s1.receive(QUIET)).get(&1), Some(&10));
    });
}

#[test]
fn a_plain_transport_latches_its_address_from_the_first_authenticated_packet() {
    each_backend(|backend| {
        let dp = start(backend, 1);
        let mut sub = Client::add(&dp, 0, 2, GCM);
        sub.join(&dp, 1, false, 1);
        // The publisher's transport does not know its remote address: comedia.
        let socket = common::client_socket();
        let keys = sluice_dataplane::topology::TransportKeys {
            inbound: common::random_keys(SrtpProfile::AeadAes128Gcm),
            outbound: common::random_keys(SrtpProfile::AeadAes128Gcm),
        };
        let mut publisher = Client::with_keys(&dp, 0, 1, socket, Some(keys.clone()));
        dp.add_transport(
            0,
            TransportConfig {
                id: 1,
                remote: None,
                keys: Some(keys),
                latch_ssrcs: vec![publisher.ssrc],
                audio_level_ext: Some(1),
                ice: None,
                rtcp_remote: None,
            },
        )
        .unwrap();
        publisher.join(&dp, 1, true, 0);
        dp.sync().unwrap();
        // A forger with the right SSRC but no key does not latch.
        let mut forger = Client::with_keys(
            &dp,
            0,
            1,
            common::client_socket(),
            Some(sluice_dataplane::topology::TransportKeys {
                inbound: common::random_keys(SrtpProfile::AeadAes128Gcm),
                outbound: common::random_keys(SrtpProfile::AeadAes128Gcm),
            }),
        );
        forger.send(5);
        wait_stats(&dp, "forged packets rejected", |s| {
            s.drops(DropReason::AuthFailed) == 5
        });
        publisher.send(20);
        assert_eq!(per_sender(&sub.receive(QUIET)).get(&1), Some(&20));
        // Once latched, the forger's address is simply unknown.
        forger.send(5);
        wait_stats(&dp, "forger now unknown", |s| {
            s.drops(DropReason::UnknownSource) == 5
        });
    });
}

#[test]
fn the_worker_answers_ice_checks_and_latches_the_nominated_address() {
    use sluice_dataplane::ice::{self, IceCredentials};
    each_backend(|backend| {
        let dp = start(backend, 1);
        let mut sub = Client::add(&dp, 0, 2, None);
        sub.join(&dp, 1, false, 1);
        let pwd = "server-password-1234567";
        dp.add_transport(
            0,
            TransportConfig {
                id: 1,
                remote: None,
                keys: None,
                latch_ssrcs: vec![],
                audio_level_ext: None,
                ice: Some(IceCredentials::new("srvU", pwd, "cliU")),
                rtcp_remote: None,
            },
        )
        .unwrap();
        let mut publisher = Client::with_keys(&dp, 0, 1, common::client_socket(), None);
        publisher.join(&dp, 1, true, 0);
        dp.sync().unwrap();

        let mut req = [0u8; 256];
        let n = ice::write_binding_request(
            &[9; 12],
            "srvU:cliU",
            "wrong-password-12345678",
            1,
            2,
            true,
            &mut req,
        )
        .unwrap();
        publisher.send_raw(&req[..n]);
        let n =
            ice::write_binding_request(&[7; 12], "srvU:cliU", pwd, 1, 2, true, &mut req).unwrap();
        publisher.send_raw(&req[..n]);
        let mut buf = [0u8; 512];
        let (len, from) = publisher
            .socket
            .recv_from(&mut buf)
            .expect("a binding response");
        assert_eq!(from, publisher.server);
        let msg = ice::verify_message(&buf[..len], pwd.as_bytes())
            .expect("the response is signed with our password");
        assert_eq!(
            msg.transaction_id(),
            &[7; 12],
            "only the good check was answered"
        );
        assert_eq!(
            ice::xor_mapped_address(&msg),
            Some(publisher.socket.local_addr().unwrap())
        );

        publisher.send(20);
        assert_eq!(
            per_sender(&sub.receive(QUIET)).get(&1),
            Some(&20),
            "media from the nominated address flows"
        );
        let s = dp.total_stats();
        assert_eq!((s.stun_answered, s.drops(DropReason::AuthFailed)), (1, 1));
    });
}
