//! The media side of cascaded rooms (docs/cascade.md): relay legs to other nodes serving the same
//! room, as dataplane transports ([`RelayLeg`]), and the names of the sources those nodes publish
//! (so `slots` and `active_speakers` name real participants whichever node they are on).
//!
//! What a leg is and how it forwards is the dataplane's business; what to link and when is
//! [`crate::cascade`]'s. This file only adds, names and removes.

use std::net::SocketAddr;

use sluice_dataplane::rewrite::EgressFormat;
use sluice_dataplane::topology::{
    Membership, RelayLeg, TransportConfig, TransportId, TransportKeys,
};

use super::{Media, MediaError};

/// The payload type and audio-level extension id every leg speaks, whatever each member
/// negotiated: the far node writes each packet again in its own members' format.
pub const LEG_PAYLOAD_TYPE: u8 = 111;
/// See [`LEG_PAYLOAD_TYPE`].
pub const LEG_LEVEL_EXT: u8 = 1;

/// One relay leg of this node.
#[derive(Debug, Clone)]
pub(super) struct Leg {
    pub(super) room: String,
    pub(super) worker: usize,
}

/// What a new leg's local end is: its transport, the address the other node sends to, and the
/// SSRCs of the streams it sends.
#[derive(Debug, Clone)]
pub struct LegEnd {
    /// The leg's transport.
    pub transport: TransportId,
    /// Its worker.
    pub worker: usize,
    /// The worker address the other end sends to.
    pub addr: SocketAddr,
    /// The streams this end sends (one per `last_n` speaker).
    pub ssrcs: Vec<u32>,
}

impl Media {
    /// A leg's local end for `room`, before the other end is known: a worker, its address and
    /// `streams` fresh SSRCs. [`Media::add_leg`] installs it.
    pub fn plan_leg(&self, streams: usize) -> Result<LegEnd, MediaError> {
        let worker = self
            .next_worker
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            % self.dataplane.workers();
        let transport = self
            .next_transport
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(LegEnd {
            transport,
            worker,
            addr: self.public_addr(worker)?,
            ssrcs: (0..streams).map(|_| rand::random()).collect(),
        })
    }

    /// Installs a planned leg of `room` to the other end at `remote`, which sends on
    /// `remote_ssrcs`, with `keys` (what it sends us, what we send it).
    pub fn add_leg(
        &self,
        room: &str,
        end: &LegEnd,
        remote: SocketAddr,
        remote_ssrcs: Vec<u32>,
        keys: TransportKeys,
    ) -> Result<(), MediaError> {
        let worker = end.worker;
        self.install(
            worker,
            TransportConfig {
                id: end.transport,
                remote: Some(remote),
                keys: Some(keys),
                latch_ssrcs: Vec::new(),
                audio_level_ext: Some(LEG_LEVEL_EXT),
                ice: None,
                rtcp_remote: None,
            },
            Membership {
                room: self.room_id(room),
                transport: end.transport,
                slot_ssrcs: end.ssrcs.clone(),
                egress: EgressFormat {
                    payload_type: Some(LEG_PAYLOAD_TYPE),
                    mid_ext: None,
                    audio_level_ext: Some(LEG_LEVEL_EXT),
                },
                relay_leg: Some(RelayLeg {
                    inbound_ssrcs: remote_ssrcs,
                }),
                ..Default::default()
            },
        )?;
        self.legs().insert(
            end.transport,
            Leg {
                room: room.to_string(),
                worker,
            },
        );
        tracing::info!(room, transport = end.transport, worker, %remote, "relay leg added");
        Ok(())
    }

    /// Removes a leg (the other node went, or the room left this node).
    pub fn remove_leg(&self, transport: TransportId) {
        let Some(leg) = self.legs().remove(&transport) else {
            return;
        };
        if let Err(e) = self.dataplane.remove_transport(leg.worker, transport) {
            tracing::warn!(transport, error = %e, "removing a relay leg");
        }
        tracing::info!(room = %leg.room, transport, "relay leg removed");
    }

    /// Whether `transport` is one of this node's relay legs.
    pub(super) fn is_leg(&self, transport: TransportId) -> bool {
        self.legs().contains_key(&transport)
    }

    /// The legs of `room`.
    pub fn legs_of(&self, room: &str) -> Vec<TransportId> {
        self.legs()
            .iter()
            .filter(|(_, l)| l.room == room)
            .map(|(&id, _)| id)
            .collect()
    }

    /// Who publishes with each SSRC in `room` on this node (what the other nodes of a cascaded
    /// room need to name this node's sources).
    pub fn local_publishers(&self, room: &str) -> Vec<(u32, String)> {
        let remote = self.remote_names();
        self.publishers()
            .iter()
            .filter(|((r, ssrc), _)| r == room && !remote.contains(&(r.clone(), *ssrc)))
            .map(|((_, ssrc), p)| (*ssrc, p.clone()))
            .collect()
    }

    /// The sources other nodes publish in `room`, by SSRC: they name slots and speakers here, and
    /// no local member may publish with one of them. Replaces what was known of them before.
    pub fn set_remote_publishers(&self, room: &str, sources: &[(u32, String)]) {
        let mut remote = self.remote_names();
        let mut publishers = self.publishers();
        let stale: Vec<(String, u32)> = remote
            .iter()
            .filter(|(r, ssrc)| r == room && !sources.iter().any(|(s, _)| s == ssrc))
            .cloned()
            .collect();
        for key in stale {
            remote.remove(&key);
            publishers.remove(&key);
        }
        let mut named = Vec::new();
        for (ssrc, participant) in sources {
            let key = (room.to_string(), *ssrc);
            let local = publishers.get(&key).is_some_and(|_| !remote.contains(&key));
            if local {
                // A local member holds it: the other node's claim loses here, and is logged.
                tracing::warn!(
                    room,
                    ssrc,
                    participant,
                    "a source of another node uses the SSRC of a member here"
                );
                continue;
            }
            if publishers.insert(key.clone(), participant.clone()).as_ref() != Some(participant) {
                named.push(*ssrc);
            }
            remote.insert(key);
        }
        drop((remote, publishers));
        if named.is_empty() {
            return;
        }
        // Subscribers hearing a source that has a name only now are told who it is.
        let hearing: Vec<TransportId> = self
            .sessions()
            .iter()
            .filter(|(_, s)| {
                s.room == room && s.slot_sources.iter().flatten().any(|x| named.contains(x))
            })
            .map(|(&id, _)| id)
            .collect();
        for t in hearing {
            self.send_slots(t);
        }
    }

    /// A source that reaches this node over a leg started or stopped speaking.
    pub(super) fn on_source_speaking(&self, room_id: u64, source: u32, speaking: bool) {
        let Some(room) = self.room_name(room_id) else {
            return;
        };
        let participant = self.publishers().get(&(room.clone(), source)).cloned();
        if let Some(p) = participant {
            self.set_speaking(&room, &p, speaking);
        }
    }
}
