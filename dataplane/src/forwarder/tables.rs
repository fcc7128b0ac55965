//! The transport and room tables of a forwarding core, and what each topology change does to them.
//!
//! Transports live in a slab (`Vec<Option<Transport>>` plus a free list) so the packet path refers to
//! them by index; they are found by id, by remote address, by declared SSRC while unlatched (comedia)
//! and by ICE ufrag. A room lists its local members and how many members each other worker hosts
//! (from `RemotePresence`). Tables grow only here, while an update is applied: never per packet.

use std::net::SocketAddr;

use crate::ice::{Consent, IceCredentials};
use crate::packet::AudioLevel;
use crate::rewrite::{EgressFormat, SlotRewriter};
use crate::speaker::VoiceActivity;
use crate::srtp::SrtpContext;
use crate::topology::{Membership, RoomId, TransportConfig, TransportId, Upcall};

use super::{Forwarder, TopologyError};

/// One transport: its address, keys, room membership, speaker slots and ICE state.
pub(super) struct Transport {
    pub(super) id: TransportId,
    pub(super) remote: Option<SocketAddr>,
    pub(super) inbound: Option<SrtpContext>,
    pub(super) outbound: Option<SrtpContext>,
    pub(super) latch_ssrcs: Vec<u32>,
    pub(super) audio_level_ext: Option<u8>,
    pub(super) room: Option<RoomId>,
    pub(super) publish_ssrc: Option<u32>,
    /// Learns its publish SSRC from its traffic (`Membership::learn_ssrc`).
    pub(super) learn_ssrc: bool,
    /// The MID of its publishing section, as bytes (empty: unknown).
    pub(super) publish_mid: Vec<u8>,
    /// The SSRC last proposed to the control plane and when (`Upcall::PublishSsrc`).
    pub(super) proposed_ssrc: Option<(u32, std::time::Instant)>,
    pub(super) muted: bool,
    pub(super) slots: Vec<SlotRewriter>,
    pub(super) egress: EgressFormat,
    pub(super) last_level: Option<AudioLevel>,
    pub(super) voice: VoiceActivity,
    pub(super) ice: Option<IceCredentials>,
    /// Consent freshness; started by the first housekeeping pass after the transport was added.
    pub(super) consent: Option<Consent>,
    /// A plain transport's separate RTCP source address (configured, or latched), if any.
    pub(super) rtcp_remote: Option<SocketAddr>,
    /// Address moves and the DTLS budget: boxed, off the packet path's cache lines.
    pub(super) guard: Box<super::handshake::Guard>,
    /// RTCP at this hop (`reporting`): boxed, off the packet path's cache lines.
    pub(super) rtcp: Box<super::reporting::Rtcp>,
    /// A relay leg to another node (`Membership::relay_leg`), not a member.
    pub(super) leg: Option<Box<super::cascade::LegState>>,
}

/// A room as this worker sees it.
#[derive(Default)]
pub(super) struct Room {
    /// Local member transports (slab indices).
    pub(super) members: Vec<usize>,
    /// Members hosted by each other worker (index = worker).
    pub(super) remote_counts: Vec<u32>,
    /// Workers with `remote_counts > 0`, for the per-packet loop.
    pub(super) remote_workers: Vec<usize>,
    /// Who holds the floor, from every source's levels (local and relayed): created with the
    /// room's first level, boxed (its score tables are a few KiB).
    pub(super) dominant: Option<Box<crate::dominant::DominantSpeaker>>,
}

impl Room {
    pub(super) fn is_unused(&self) -> bool {
        self.members.is_empty() && self.remote_workers.is_empty()
    }
}

impl Forwarder {
    pub(super) fn add_transport(&mut self, cfg: TransportConfig) -> Result<(), TopologyError> {
        self.remove_transport(cfg.id);
        let (inbound, outbound) = match &cfg.keys {
            Some(keys) => {
                let engine = self.cfg.srtp_engine;
                let err = |source| TopologyError::Keys { id: cfg.id, source };
                (
                    Some(SrtpContext::new(engine, &keys.inbound).map_err(err)?),
                    Some(SrtpContext::new(engine, &keys.outbound).map_err(err)?),
                )
            }
            None => (None, None),
        };
        let rtcp_remote = cfg.rtcp_remote.filter(|_| cfg.ice.is_none());
        let t = Transport {
            id: cfg.id,
            remote: cfg.remote,
            inbound,
            outbound,
            latch_ssrcs: cfg.latch_ssrcs,
            audio_level_ext: cfg.audio_level_ext,
            room: None,
            publish_ssrc: None,
            learn_ssrc: false,
            publish_mid: Vec::new(),
            proposed_ssrc: None,
            muted: false,
            slots: Vec::new(),
            egress: EgressFormat::default(),
            last_level: None,
            voice: VoiceActivity::default(),
            ice: cfg.ice,
            consent: None,
            rtcp_remote,
            guard: Box::default(),
            rtcp: Box::default(),
            leg: None,
        };
        let idx = match self.free.pop() {
            Some(i) => {
                self.transports[i] = Some(t);
                i
            }
            None => {
                self.transports.push(Some(t));
                self.transports.len() - 1
            }
        };
        self.by_id.insert(cfg.id, idx);
        if let Some(ufrag) = self.transports[idx]
            .as_ref()
            .and_then(|t| t.ice.as_ref())
            .map(|c| c.local_ufrag.clone())
        {
            self.by_ufrag.insert(ufrag, idx);
        }
        self.index_address(idx);
        Ok(())
    }

    /// Indexes a transport by its remote address, or by its latch SSRCs while it has none, and by
    /// its separate RTCP address if it has one.
    fn index_address(&mut self, idx: usize) {
        let Some(t) = self.transports.get(idx).and_then(Option::as_ref) else {
            return;
        };
        if let Some(addr) = t.rtcp_remote {
            self.by_addr.entry(addr).or_insert(idx);
        }
        match t.remote {
            Some(addr) => {
                if let Some(old) = self.by_addr.insert(addr, idx) {
                    if old != idx {
                        tracing::warn!(%addr, "address re-used by a new transport");
                    }
                }
            }
            None => {
                // The first transport to declare an SSRC keeps it: a later one (another room's
                // plain transport on the same worker) cannot take over its latching.
                for &ssrc in &t.latch_ssrcs {
                    let holder = *self.unlatched.entry(ssrc).or_insert(idx);
                    if holder != idx {
                        tracing::warn!(ssrc, "SSRC already declared by an unlatched transport");
                    }
                }
            }
        }
    }

    pub(super) fn remove_transport(&mut self, id: TransportId) {
        let Some(idx) = self.by_id.remove(&id) else {
            return;
        };
        self.leave(idx);
        if let Some(t) = self.transports.get_mut(idx).and_then(Option::take) {
            for addr in [t.remote, t.rtcp_remote].into_iter().flatten() {
                if self.by_addr.get(&addr) == Some(&idx) {
                    self.by_addr.remove(&addr);
                }
            }
            for ssrc in t.latch_ssrcs {
                if self.unlatched.get(&ssrc) == Some(&idx) {
                    self.unlatched.remove(&ssrc);
                }
            }
            if let Some(p) = t.guard.probe {
                self.probes.remove(&p.txid);
            }
            if let Some(c) = t.ice {
                if self.by_ufrag.get(c.local_ufrag.as_str()) == Some(&idx) {
                    self.by_ufrag.remove(c.local_ufrag.as_str());
                }
            }
            self.free.push(idx);
        }
    }

    pub(super) fn join(&mut self, m: Membership) -> Result<(), TopologyError> {
        // Each slot is one outgoing SSRC of the transport's SRTP context.
        let max = SrtpContext::MAX_STREAMS;
        if m.slot_ssrcs.len() > max {
            return Err(TopologyError::TooManySlots {
                id: m.transport,
                slots: m.slot_ssrcs.len(),
                max,
            });
        }
        let idx = *self
            .by_id
            .get(&m.transport)
            .ok_or(TopologyError::UnknownTransport(m.transport))?;
        self.leave(idx);
        if let Some(t) = self.transports.get_mut(idx).and_then(Option::as_mut) {
            t.room = Some(m.room);
            t.publish_ssrc = m.publish_ssrc;
            t.learn_ssrc = m.learn_ssrc;
            t.publish_mid = m.publish_mid.map(String::into_bytes).unwrap_or_default();
            t.proposed_ssrc = None;
            t.slots = m
                .slot_ssrcs
                .iter()
                .enumerate()
                .map(|(i, &s)| {
                    SlotRewriter::with_mid(
                        s,
                        m.slot_mids
                            .get(i)
                            .map(|m| m.as_bytes().to_vec())
                            .unwrap_or_default(),
                    )
                })
                .collect();
            t.egress = m.egress.clone();
            t.leg = m
                .relay_leg
                .as_ref()
                .map(|l| Box::new(super::cascade::LegState::new(&l.inbound_ssrcs)));
        }
        if let Some(leg) = &m.relay_leg {
            self.index_leg(idx, &leg.inbound_ssrcs);
        }
        let workers = self.cfg.workers.max(1);
        let room = self.rooms.entry(m.room).or_insert_with(|| Room {
            remote_counts: vec![0; workers],
            ..Room::default()
        });
        room.members.push(idx);
        self.recompute_fanout();
        Ok(())
    }

    /// Takes a transport out of its room and frees the slots its stream occupied.
    pub(super) fn leave(&mut self, idx: usize) {
        let Some(t) = self.transports.get_mut(idx).and_then(Option::as_mut) else {
            return;
        };
        let Some(room_id) = t.room.take() else {
            return;
        };
        // `publish_ssrc` stays: packets sent while out of a room are still decrypted (then dropped
        // as `muted`), so the SRTP rollover counter keeps up until the transport joins again.
        let gone = t.publish_ssrc;
        t.slots.clear();
        if std::mem::take(&mut t.voice).is_speaking() {
            self.upcalls.push(Upcall::Speaking {
                worker: self.cfg.worker,
                transport: t.id,
                speaking: false,
            });
        }
        // A relay leg's sources are heard no more: they leave this node's slots too.
        let leg = t.leg.take();
        if let Some(l) = &leg {
            for ssrc in l.ssrcs() {
                if self.by_leg_ssrc.get(&ssrc) == Some(&idx) {
                    self.by_leg_ssrc.remove(&ssrc);
                }
            }
        }
        let leg_sources = leg.map(|mut l| l.take_sources()).unwrap_or_default();
        if let Some(room) = self.rooms.get_mut(&room_id) {
            room.members.retain(|&m| m != idx);
        }
        self.source_gone(room_id, gone);
        for (source, speaking) in leg_sources {
            if speaking {
                self.upcalls.push(Upcall::SourceSpeaking {
                    worker: self.cfg.worker,
                    room: room_id,
                    source,
                    speaking: false,
                });
            }
            self.source_gone(room_id, Some(source));
        }
        self.recompute_fanout();
    }

    /// The control plane confirmed the SSRC a learning publisher sends with (`SetPublishSsrc`): the
    /// slots its previous SSRC held are freed here (other workers learn it through presence).
    pub(super) fn set_publish_ssrc(
        &mut self,
        id: TransportId,
        ssrc: u32,
    ) -> Result<(), TopologyError> {
        let idx = *self
            .by_id
            .get(&id)
            .ok_or(TopologyError::UnknownTransport(id))?;
        let t = self
            .transports
            .get_mut(idx)
            .and_then(Option::as_mut)
            .ok_or(TopologyError::UnknownTransport(id))?;
        let old = t.publish_ssrc.replace(ssrc);
        t.proposed_ssrc = None;
        if old != Some(ssrc) {
            t.rtcp.reception = crate::reports::Reception::default();
        }
        if let (Some(room), Some(old)) = (t.room, old.filter(|&o| o != ssrc)) {
            self.source_gone(room, Some(old));
        }
        Ok(())
    }

    /// Another worker's membership count of a room changed (`RemotePresence`).
    pub(super) fn remote_presence(
        &mut self,
        room_id: RoomId,
        worker: usize,
        members: u32,
        gone: Option<u32>,
    ) {
        if worker == self.cfg.worker || worker >= self.cfg.workers {
            return;
        }
        let workers = self.cfg.workers;
        let room = self.rooms.entry(room_id).or_insert_with(|| Room {
            remote_counts: vec![0; workers],
            ..Room::default()
        });
        room.remote_counts[worker] = members;
        room.remote_workers = (0..workers)
            .filter(|&w| room.remote_counts[w] > 0)
            .collect();
        self.source_gone(room_id, gone);
    }

    /// Frees the slots that `gone` (a publisher that left the room, here or on another worker) held
    /// in `room_id`, and forgets the room once no worker hosts anybody in it.
    fn source_gone(&mut self, room_id: RoomId, gone: Option<u32>) {
        let Some(room) = self.rooms.get_mut(&room_id) else {
            return;
        };
        if let (Some(d), Some(ssrc)) = (&mut room.dominant, gone) {
            d.remove(ssrc);
        }
        if let Some(ssrc) = gone {
            release_source(
                &mut self.transports,
                &room.members,
                ssrc,
                (self.cfg.worker, &mut self.upcalls),
            );
        }
        if room.is_unused() {
            self.rooms.remove(&room_id);
        }
    }

    pub(super) fn recompute_fanout(&mut self) {
        self.max_fanout = self
            .rooms
            .values()
            .map(|r| r.members.len())
            .max()
            .unwrap_or(0);
    }

    /// Finds the transport of a packet: by address, or (comedia) by the SSRC an unlatched transport
    /// declared. The bool is true when the address is not latched yet.
    #[inline]
    pub(super) fn lookup(&self, from: SocketAddr, ssrc: Option<u32>) -> Option<(usize, bool)> {
        if let Some(&idx) = self.by_addr.get(&from) {
            return Some((idx, false));
        }
        let ssrc = ssrc?;
        if let Some(&idx) = self.by_leg_ssrc.get(&ssrc) {
            let t = self.transports.get(idx)?.as_ref()?;
            return (t.remote == Some(from)).then_some((idx, false));
        }
        self.unlatched.get(&ssrc).map(|&idx| (idx, true))
    }

    /// Indexes relay leg `idx` by the SSRCs its other end sends on, and no longer by its address
    /// (which the legs of other rooms between the same two workers share).
    fn index_leg(&mut self, idx: usize, inbound: &[u32]) {
        let Some(remote) = self
            .transports
            .get(idx)
            .and_then(Option::as_ref)
            .and_then(|t| t.remote)
        else {
            return;
        };
        if self.by_addr.get(&remote) == Some(&idx) {
            self.by_addr.remove(&remote);
        }
        for &ssrc in inbound {
            let holder = *self.by_leg_ssrc.entry(ssrc).or_insert(idx);
            if holder != idx {
                tracing::warn!(ssrc, "SSRC already taken by another relay leg");
            }
        }
    }

    /// The plain transport whose remote address is `from`'s host on the port before it and which has
    /// no RTCP address yet: where a tool that cannot multiplex RTCP (ffmpeg) sends it from.
    #[inline]
    pub(super) fn rtcp_neighbour(&self, from: SocketAddr) -> Option<usize> {
        let rtp = SocketAddr::new(from.ip(), from.port().checked_sub(1)?);
        let idx = *self.by_addr.get(&rtp)?;
        let t = self.transports.get(idx)?.as_ref()?;
        (t.ice.is_none() && t.rtcp_remote.is_none() && t.remote == Some(rtp)).then_some(idx)
    }

    /// Records `from` as the RTCP address of plain transport `idx` after its first authenticated
    /// RTCP packet from there (the next port, or anywhere while its RTP address is not latched).
    pub(super) fn latch_rtcp(&mut self, idx: usize, from: SocketAddr) {
        let Some(t) = self.transports.get_mut(idx).and_then(Option::as_mut) else {
            return;
        };
        t.rtcp_remote = Some(from);
        tracing::debug!(transport = t.id, %from, "latched RTCP address");
        self.by_addr.entry(from).or_insert(idx);
    }

    /// Latches `from` as the remote address of transport `idx` after its first authenticated packet.
    pub(super) fn latch(&mut self, idx: usize, from: SocketAddr) {
        let Some(t) = self.transports.get_mut(idx).and_then(Option::as_mut) else {
            return;
        };
        t.remote = Some(from);
        for ssrc in &t.latch_ssrcs {
            if self.unlatched.get(ssrc) == Some(&idx) {
                self.unlatched.remove(ssrc);
            }
        }
        tracing::debug!(transport = t.id, %from, "latched remote address");
        self.index_address(idx);
    }
}

/// Frees every slot of `members` that carries `ssrc`, reporting each as a [`Upcall::SlotChanged`]
/// through `(worker, upcalls)`.
fn release_source(
    transports: &mut [Option<Transport>],
    members: &[usize],
    ssrc: u32,
    (worker, upcalls): (usize, &mut Vec<Upcall>),
) {
    for &m in members {
        if let Some(t) = transports.get_mut(m).and_then(Option::as_mut) {
            for (i, s) in t.slots.iter_mut().enumerate() {
                if s.source() == Some(ssrc) {
                    s.release();
                    if t.leg.is_some() {
                        // A leg's slots are nobody's to show.
                        continue;
                    }
                    upcalls.push(Upcall::SlotChanged {
                        worker,
                        transport: t.id,
                        slot: i as u16,
                        source: None,
                    });
                }
            }
        }
    }
}
