//! Fixtures for benches and tests of the sans-IO core: a worker's forwarding core with one room of
//! one publisher and `fanout` subscribers, and a supply of packets from that publisher. Deterministic
//! keys and addresses; nothing here touches the network.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::forwarder::{Forwarder, ForwarderConfig};
use crate::srtp::{SrtpContext, SrtpEngine, SrtpError, SrtpKeys, SrtpProfile};
use crate::stats::WorkerStats;
use crate::topology::{Membership, TopologyUpdate, TransportConfig, TransportKeys};

/// SSRC of the fixture's publisher.
pub const PUBLISHER_SSRC: u32 = 0xABCD;

/// Deterministic keys for transport `seed`.
pub fn fixture_keys(p: SrtpProfile, seed: u8) -> SrtpKeys {
    let key: Vec<u8> = (0..p.master_key_len()).map(|i| i as u8 ^ seed).collect();
    let salt: Vec<u8> = (0..p.master_salt_len())
        .map(|i| i as u8 ^ seed ^ 0x55)
        .collect();
    SrtpKeys::new(p, &key, &salt).expect("fixture key lengths match the profile")
}

/// Loopback address of fixture transport `id` (distinct for every id below 2^24).
pub fn fixture_addr(id: u64) -> SocketAddr {
    let [_, _, _, _, _, a, b, c] = id.to_be_bytes();
    SocketAddr::from(([127, a, b, c], 20_000))
}

/// A room of one publisher (transport 0, at `fixture_addr(0)`) and `fanout` subscribers.
pub struct RoomFixture {
    /// The core under test.
    pub core: Forwarder,
    /// The publisher's packets.
    pub source: PacketSource,
}

/// The fixture publisher's packets, protected with its key.
pub struct PacketSource {
    sender: Option<SrtpContext>,
    seq: u16,
}

impl RoomFixture {
    /// Builds the core and the room.
    pub fn new(
        engine: SrtpEngine,
        profile: Option<SrtpProfile>,
        fanout: u64,
    ) -> Result<Self, SrtpError> {
        let mut core = Forwarder::new(
            ForwarderConfig {
                srtp_engine: engine,
                ..ForwarderConfig::default()
            },
            Arc::new(WorkerStats::default()),
        );
        for id in 0..=fanout {
            let keys = profile.map(|p| TransportKeys {
                inbound: fixture_keys(p, id as u8),
                outbound: fixture_keys(p, id as u8 ^ 0xFF),
            });
            let add = TopologyUpdate::AddTransport(Box::new(TransportConfig {
                id,
                remote: Some(fixture_addr(id)),
                keys,
                latch_ssrcs: vec![],
                audio_level_ext: Some(1),
                ice: None,
                rtcp_remote: None,
            }));
            let join = TopologyUpdate::Join(Box::new(Membership {
                room: 1,
                transport: id,
                publish_ssrc: (id == 0).then_some(PUBLISHER_SSRC),
                slot_ssrcs: if id == 0 {
                    vec![]
                } else {
                    vec![0x1000 + id as u32]
                },
                ..Default::default()
            }));
            for u in [add, join] {
                core.apply(u)
                    .map_err(|e| SrtpError::Backend(e.to_string()))?;
            }
        }
        let sender = profile
            .map(|p| SrtpContext::new(SrtpEngine::InPlace, &fixture_keys(p, 0)))
            .transpose()?;
        Ok(Self {
            core,
            source: PacketSource { sender, seq: 0 },
        })
    }
}

impl PacketSource {
    /// Writes the publisher's next packet (160-byte payload, audio-level extension) into `buf`
    /// (at least 256 bytes) and returns its length.
    pub fn next_packet(&mut self, buf: &mut [u8]) -> Result<usize, SrtpError> {
        let seq = self.seq;
        self.seq = seq.wrapping_add(1);
        let ts = (seq as u32).wrapping_mul(960);
        let b = buf.get_mut(..256).ok_or(SrtpError::TooShort)?;
        b[..12].copy_from_slice(&[0x90, 111, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        b[2..4].copy_from_slice(&seq.to_be_bytes());
        b[4..8].copy_from_slice(&ts.to_be_bytes());
        b[8..12].copy_from_slice(&PUBLISHER_SSRC.to_be_bytes());
        b[12..20].copy_from_slice(&[0xBE, 0xDE, 0, 1, 0x10, 0x85, 0, 0]);
        b[20..180].fill(seq as u8);
        match &mut self.sender {
            Some(ctx) => ctx.protect_rtp(buf, 180),
            None => Ok(180),
        }
    }
}
