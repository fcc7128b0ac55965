//! Fixtures shared by the sans-IO forwarding core's scenario tests (`forwarder_core.rs`,
//! `cascade.rs`): peers with their own SRTP contexts, an independent webrtc-srtp oracle that decrypts
//! what the core sends them, and helpers that feed datagrams and read the outbox back.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_dataplane::forwarder::{Forwarder, ForwarderConfig};
use sluice_dataplane::outbox::Outbox;
use sluice_dataplane::packet::RtpHeader;
use sluice_dataplane::srtp::{SrtpContext, SrtpEngine, SrtpProfile};
use sluice_dataplane::stats::{StatsSnapshot, WorkerStats};
use sluice_dataplane::testkit::fixture_keys;
use sluice_dataplane::topology::{
    Membership, RoomId, TopologyUpdate, TransportConfig, TransportId, TransportKeys,
};
use webrtc_srtp::context::Context;

pub const ROOM: RoomId = 7;
/// One Opus frame: 20 ms, 960 ticks of the 48 kHz RTP clock.
pub const FRAME: Duration = Duration::from_millis(20);
pub const FRAME_TICKS: u32 = 960;
pub const AES_CM: SrtpProfile = SrtpProfile::Aes128CmHmacSha1_80;
/// The RFC 6464 audio-level extension id every peer here negotiates.
pub const LEVEL_EXT: u8 = 1;
pub const PAYLOAD_LEN: usize = 120;

// ------------------------------------------------------------------------------------------ fixtures

pub fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 1], port))
}

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

pub fn core_with(cfg: ForwarderConfig) -> Forwarder {
    Forwarder::new(cfg, Arc::new(WorkerStats::default()))
}

pub fn core() -> Forwarder {
    core_with(ForwarderConfig::default())
}

pub fn apply(core: &mut Forwarder, update: TopologyUpdate) {
    let what = format!("{update:?}");
    core.apply(update)
        .unwrap_or_else(|e| panic!("topology update {what} must apply: {e}"));
}

/// Adds `publisher` and `subscriber` (with one slot sending as `slot`) and puts both in ROOM.
pub fn publisher_and_subscriber(
    core: &mut Forwarder,
    publisher: &Peer,
    subscriber: &Peer,
    slot: u32,
) {
    for u in [
        publisher.transport(),
        subscriber.transport(),
        publisher.join(ROOM, true, &[]),
        subscriber.join(ROOM, false, &[slot]),
    ] {
        apply(core, u);
    }
}

pub fn stats(core: &Forwarder) -> StatsSnapshot {
    core.stats().snapshot()
}

/// Hands one datagram to the core (in a copy: the core decrypts in place).
pub fn feed(
    core: &mut Forwarder,
    now: Instant,
    from: SocketAddr,
    datagram: &[u8],
    out: &mut Outbox,
) {
    let mut buf = datagram.to_vec();
    core.on_datagram(now, from, &mut buf, out);
}

/// Everything queued in the outbox, in order; the outbox is emptied.
pub fn take(out: &mut Outbox) -> Vec<(SocketAddr, Vec<u8>)> {
    let sent = out.iter().map(|(a, b)| (a, b.to_vec())).collect();
    out.clear();
    sent
}

/// What a subscriber heard in one datagram, after decrypting it with webrtc-srtp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heard {
    pub ssrc: u32,
    pub seq: u16,
    pub ts: u32,
    pub marker: bool,
    pub csrcs: Vec<u32>,
    /// The publisher that produced the payload (written into the payload by [`Peer::rtp`]).
    pub origin: u32,
    /// The publisher's own sequence number for this payload.
    pub origin_seq: u16,
    pub level: Option<u8>,
}

/// One participant as seen from outside the SFU: its address and SRTP keys, a context that protects
/// what it publishes (the transport's inbound keys) and an independent webrtc-srtp context that
/// decrypts what the SFU sends it (the transport's outbound keys).
pub struct Peer {
    pub id: TransportId,
    pub addr: SocketAddr,
    pub profile: SrtpProfile,
    pub keys: TransportKeys,
    pub ssrc: u32,
    pub seq: u16,
    pub ts: u32,
    /// RFC 6464 level written into each packet (-dBov; 30 is speech, 127 silence).
    pub level: u8,
    pub sender: SrtpContext,
    pub oracle: Context,
}

impl Peer {
    /// A peer whose stream starts at sequence `seq` and timestamp `ts` (its own, unrelated numbering).
    pub fn new(id: TransportId, profile: SrtpProfile, ssrc: u32, seq: u16, ts: u32) -> Self {
        let keys = TransportKeys {
            inbound: fixture_keys(profile, (2 * id + 1) as u8),
            outbound: fixture_keys(profile, (2 * id + 2) as u8),
        };
        let sender = SrtpContext::new(SrtpEngine::InPlace, &keys.inbound)
            .expect("fixture keys build a sender context");
        let oracle = Context::new(
            &keys.outbound.master_key,
            &keys.outbound.master_salt,
            profile.webrtc(),
            Some(webrtc_srtp::option::srtp_replay_protection(1024)),
            Some(webrtc_srtp::option::srtcp_replay_protection(1024)),
        )
        .expect("webrtc-srtp accepts the fixture keys");
        Self {
            id,
            addr: addr(10_000 + id as u16),
            profile,
            keys,
            ssrc,
            seq,
            ts,
            level: 30,
            sender,
            oracle,
        }
    }

    /// A listener-only peer (it never publishes).
    pub fn listener(id: TransportId, profile: SrtpProfile) -> Self {
        Self::new(id, profile, 0x1157_0000 + id as u32, 0, 0)
    }

    /// The transport the control plane would add for this peer, at its address.
    pub fn transport(&self) -> TopologyUpdate {
        TopologyUpdate::AddTransport(Box::new(TransportConfig {
            id: self.id,
            remote: Some(self.addr),
            keys: Some(self.keys.clone()),
            latch_ssrcs: vec![],
            audio_level_ext: Some(LEVEL_EXT),
            ice: None,
            rtcp_remote: None,
        }))
    }

    pub fn membership(&self, room: RoomId, publishes: bool, slots: &[u32]) -> Membership {
        Membership {
            room,
            transport: self.id,
            publish_ssrc: publishes.then_some(self.ssrc),
            slot_ssrcs: slots.to_vec(),
            ..Default::default()
        }
    }

    pub fn join(&self, room: RoomId, publishes: bool, slots: &[u32]) -> TopologyUpdate {
        TopologyUpdate::Join(Box::new(self.membership(room, publishes, slots)))
    }

    /// The peer's next SRTP packet (one 20 ms frame later than the previous one).
    pub fn next_rtp(&mut self) -> Vec<u8> {
        let (seq, ts) = (self.seq, self.ts);
        self.seq = seq.wrapping_add(1);
        self.ts = ts.wrapping_add(FRAME_TICKS);
        self.rtp(seq, ts)
    }

    /// An SRTP packet with the audio-level extension; the payload names its origin and sequence.
    pub fn rtp(&mut self, seq: u16, ts: u32) -> Vec<u8> {
        let mut p = vec![0x90, 111];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&ts.to_be_bytes());
        p.extend_from_slice(&self.ssrc.to_be_bytes());
        p.extend_from_slice(&[0xBE, 0xDE, 0, 1, (LEVEL_EXT << 4), 0x80 | self.level, 0, 0]);
        p.extend_from_slice(&self.ssrc.to_be_bytes());
        p.extend_from_slice(&seq.to_be_bytes());
        p.resize(p.len() + PAYLOAD_LEN - 6, seq as u8);
        self.protect_rtp(p)
    }

    pub fn protect_rtp(&mut self, mut plain: Vec<u8>) -> Vec<u8> {
        let len = plain.len();
        plain.resize(len + self.profile.rtp_tag_len(), 0);
        let n = self
            .sender
            .protect_rtp(&mut plain, len)
            .expect("a peer protects its own well-formed packet");
        plain.truncate(n);
        plain
    }

    /// An SRTCP receiver report (no report blocks) from `sender_ssrc`, protected with the peer's keys.
    pub fn srtcp_rr(&mut self, sender_ssrc: u32) -> Vec<u8> {
        let mut p = vec![0x80, 201, 0, 1];
        p.extend_from_slice(&sender_ssrc.to_be_bytes());
        self.srtcp(p)
    }

    /// SRTCP of any plaintext compound `plain`, protected with the peer's keys.
    pub fn srtcp(&mut self, mut p: Vec<u8>) -> Vec<u8> {
        let len = p.len();
        p.resize(len + self.profile.rtcp_overhead(), 0);
        let n = self
            .sender
            .protect_rtcp(&mut p, len)
            .expect("a peer protects its own report");
        p.truncate(n);
        p
    }

    /// Decrypts an SRTCP datagram the SFU sent this peer with webrtc-srtp.
    pub fn open_rtcp(&mut self, datagram: &[u8]) -> Vec<u8> {
        self.oracle
            .decrypt_rtcp(datagram)
            .unwrap_or_else(|e| panic!("peer {} cannot decrypt the SFU's RTCP: {e}", self.id))
            .to_vec()
    }

    /// Decrypts what the SFU sent this peer with webrtc-srtp and reads the header and payload marks.
    pub fn open(&mut self, datagram: &[u8]) -> Heard {
        let plain = self.oracle.decrypt_rtp(datagram).unwrap_or_else(|e| {
            panic!(
                "peer {} cannot decrypt what the SFU sent it with its keys: {e}",
                self.id
            )
        });
        let h = RtpHeader::parse(&plain).expect("a decrypted forwarded packet parses as RTP");
        let payload = h.payload();
        assert_eq!(
            payload.len(),
            PAYLOAD_LEN,
            "the payload is forwarded unchanged"
        );
        Heard {
            ssrc: h.ssrc(),
            seq: h.sequence_number(),
            ts: h.timestamp(),
            marker: h.marker(),
            csrcs: h.csrcs().collect(),
            origin: u32::from_be_bytes(payload[..4].try_into().expect("4 bytes")),
            origin_seq: u16::from_be_bytes(payload[4..6].try_into().expect("2 bytes")),
            level: h.audio_level(LEVEL_EXT).map(|l| l.level),
        }
    }

    /// Decrypts every datagram addressed to this peer, and checks that nothing else was addressed to it.
    pub fn hear(&mut self, sent: &[(SocketAddr, Vec<u8>)]) -> Vec<Heard> {
        let me = self.addr;
        sent.iter()
            .filter(|(a, _)| *a == me)
            .map(|(_, d)| self.open(d))
            .collect()
    }
}

/// Asserts that `heard` is one continuous stream on slot `slot`: consecutive sequence numbers and
/// 20 ms timestamp steps, each packet carrying `origin` as CSRC[0].
pub fn assert_continuous(heard: &[Heard], slot: u32, origin: u32) {
    for (i, w) in heard.windows(2).enumerate() {
        assert_eq!(
            w[1].seq,
            w[0].seq.wrapping_add(1),
            "packet {i}: seq steps by 1"
        );
        assert_eq!(
            w[1].ts,
            w[0].ts.wrapping_add(FRAME_TICKS),
            "packet {i}: ts steps by one frame"
        );
        assert!(!w[1].marker, "packet {i}: no marker inside a talkspurt");
    }
    for h in heard {
        assert_eq!(h.ssrc, slot, "the slot keeps its SSRC");
        assert_eq!(h.csrcs.first(), Some(&origin), "CSRC[0] names the speaker");
        assert_eq!(h.origin, origin, "the payload is the speaker's");
    }
}
