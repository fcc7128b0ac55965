//! The sans-IO forwarding core of one worker.
//!
//! [`Forwarder::on_datagram`] takes `now`, the source address and the received bytes, and writes what
//! must be sent into an [`Outbox`]: it demultiplexes (RFC 7983), finds the transport by remote address,
//! decrypts SRTP once in place, and for every subscriber in the room maps the packet onto one of the
//! subscriber's speaker slots, copies it once into an outbox slot, rewrites the header and encrypts it
//! with the subscriber's key. Members of the same room on other workers get the decrypted packet over a
//! relay ring ([`crate::relay`]). No sockets, no clocks, no threads: tests drive it directly.
//!
//! Invariants:
//! - nothing here allocates per packet once the tables are built (tables grow only while topology
//!   updates are applied);
//! - any byte sequence from a peer ends as forwarded packets or one counted drop, never a panic;
//! - a publisher never hears itself; a transport that was removed gets nothing more.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;

use crate::ice::{self, Consent, IceCredentials, IceError};
use crate::outbox::Outbox;
use crate::packet::{self, AudioLevel, PacketKind, RtpHeader};
use crate::relay::{RelayMeta, RelayRx, RelayTx};
use crate::rewrite::{self, EgressFormat, SlotRewriter};
use crate::speaker::{self, VoiceActivity};
use crate::srtp::{SrtpContext, SrtpEngine, SrtpError};
use crate::stats::{DropReason, WorkerStats};
use crate::topology::{Membership, RoomId, TopologyUpdate, TransportConfig, TransportId, Upcall};

/// Default of [`ForwarderConfig::slot_hold`].
pub const DEFAULT_SLOT_HOLD: Duration = Duration::from_millis(1500);

/// Settings of a forwarding core.
#[derive(Debug, Clone)]
pub struct ForwarderConfig {
    /// This worker's index.
    pub worker: usize,
    /// Number of workers in the dataplane.
    pub workers: usize,
    /// SRTP implementation used for transports.
    pub srtp_engine: SrtpEngine,
    /// RTP clock rate of the forwarded audio (Opus: 48,000).
    pub clock_rate: u32,
    /// A slot's source silent this long (no packets) may be replaced by another source.
    pub slot_idle: Duration,
    /// When every slot is taken, a speaking source replaces the one quiet (no voiced packet) for
    /// longest, once it has been quiet this long ([`crate::speaker`]).
    pub slot_hold: Duration,
}

impl Default for ForwarderConfig {
    fn default() -> Self {
        Self {
            worker: 0,
            workers: 1,
            srtp_engine: SrtpEngine::default(),
            clock_rate: 48_000,
            slot_idle: rewrite::DEFAULT_SLOT_IDLE,
            slot_hold: DEFAULT_SLOT_HOLD,
        }
    }
}

/// Why a topology update could not be applied.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TopologyError {
    /// The SRTP keys were rejected.
    #[error("transport {id}: bad SRTP keys: {source}")]
    Keys {
        /// The transport.
        id: TransportId,
        /// Why.
        source: SrtpError,
    },
    /// More receive slots than one SRTP context tracks streams for.
    #[error("transport {id}: {slots} slots requested, at most {max} supported")]
    TooManySlots {
        /// The transport.
        id: TransportId,
        /// Slots asked for.
        slots: usize,
        /// The limit.
        max: usize,
    },
    /// The update names a transport this worker does not have.
    #[error("transport {0} is not on this worker")]
    UnknownTransport(TransportId),
}

struct Transport {
    id: TransportId,
    remote: Option<SocketAddr>,
    inbound: Option<SrtpContext>,
    outbound: Option<SrtpContext>,
    latch_ssrcs: Vec<u32>,
    audio_level_ext: Option<u8>,
    room: Option<RoomId>,
    publish_ssrc: Option<u32>,
    muted: bool,
    slots: Vec<SlotRewriter>,
    egress: EgressFormat,
    last_level: Option<AudioLevel>,
    voice: VoiceActivity,
    ice: Option<IceCredentials>,
    /// Consent freshness; started by the first housekeeping pass after the transport was added.
    consent: Option<Consent>,
}

#[derive(Default)]
struct Room {
    /// Local member transports (slab indices).
    members: Vec<usize>,
    /// Members hosted by each other worker (index = worker).
    remote_counts: Vec<u32>,
    /// Workers with `remote_counts > 0`, for the per-packet loop.
    remote_workers: Vec<usize>,
}

impl Room {
    fn is_unused(&self) -> bool {
        self.members.is_empty() && self.remote_workers.is_empty()
    }
}

/// The forwarding core of one worker.
pub struct Forwarder {
    cfg: ForwarderConfig,
    stats: Arc<WorkerStats>,
    transports: Vec<Option<Transport>>,
    free: Vec<usize>,
    by_id: FxHashMap<TransportId, usize>,
    by_addr: FxHashMap<SocketAddr, usize>,
    unlatched: FxHashMap<u32, usize>,
    /// ICE transports by their local (server-side) ufrag.
    by_ufrag: FxHashMap<String, usize>,
    rooms: FxHashMap<RoomId, Room>,
    relay_tx: Vec<Option<RelayTx>>,
    relay_rx: Vec<RelayRx>,
    relay_scratch: Box<[u8]>,
    touched: u64,
    max_fanout: usize,
    /// Reports for the control plane, drained by the worker.
    upcalls: Vec<Upcall>,
    /// Datagrams the control plane asked to send (DTLS flights), drained into the outbox.
    control_out: Vec<(SocketAddr, Vec<u8>)>,
}

impl Forwarder {
    /// A core with empty tables, counting into `stats`.
    pub fn new(cfg: ForwarderConfig, stats: Arc<WorkerStats>) -> Self {
        let workers = cfg.workers.max(1);
        Self {
            cfg,
            stats,
            transports: Vec::new(),
            free: Vec::new(),
            by_id: FxHashMap::default(),
            by_addr: FxHashMap::default(),
            unlatched: FxHashMap::default(),
            by_ufrag: FxHashMap::default(),
            rooms: FxHashMap::default(),
            relay_tx: (0..workers).map(|_| None).collect(),
            relay_rx: Vec::new(),
            relay_scratch: vec![0u8; crate::outbox::SLOT_SIZE].into_boxed_slice(),
            touched: 0,
            max_fanout: 0,
            // Slot changes of a whole room can come out of one packet: room for them up front.
            upcalls: Vec::with_capacity(1024),
            control_out: Vec::new(),
        }
    }

    /// Connects the ring that carries this worker's packets to worker `to`.
    pub fn connect_relay_tx(&mut self, to: usize, tx: RelayTx) {
        if let Some(slot) = self.relay_tx.get_mut(to) {
            *slot = Some(tx);
        }
    }

    /// Adds a ring on which another worker sends packets to this one.
    pub fn connect_relay_rx(&mut self, rx: RelayRx) {
        self.relay_rx.push(rx);
    }

    /// The counters this core writes.
    pub fn stats(&self) -> &Arc<WorkerStats> {
        &self.stats
    }

    /// The most datagrams one incoming packet can produce here: the largest local room. The I/O loop
    /// sends the outbox before it has fewer free slots than this.
    pub fn max_fanout(&self) -> usize {
        self.max_fanout
    }

    /// Bit `w` set: a packet was relayed to worker `w` since the last call (so it may need waking).
    pub fn take_touched(&mut self) -> u64 {
        std::mem::take(&mut self.touched)
    }

    /// True when another worker has queued packets for this one.
    pub fn relays_pending(&self) -> bool {
        self.relay_rx.iter().any(|rx| !rx.is_empty())
    }

    /// Number of transports.
    pub fn transport_count(&self) -> usize {
        self.by_id.len()
    }

    /// The remote address of a transport, once known (latched or configured).
    pub fn transport_remote(&self, id: TransportId) -> Option<SocketAddr> {
        let idx = *self.by_id.get(&id)?;
        self.transports.get(idx)?.as_ref()?.remote
    }

    // ---------------------------------------------------------------- topology

    /// Applies one topology update.
    pub fn apply(&mut self, update: TopologyUpdate) -> Result<(), TopologyError> {
        match update {
            TopologyUpdate::AddTransport(cfg) => self.add_transport(*cfg)?,
            TopologyUpdate::RemoveTransport { id } => self.remove_transport(id),
            TopologyUpdate::Join(m) => self.join(*m)?,
            TopologyUpdate::Leave { transport } => {
                let idx = *self
                    .by_id
                    .get(&transport)
                    .ok_or(TopologyError::UnknownTransport(transport))?;
                self.leave(idx);
            }
            TopologyUpdate::RemotePresence {
                room,
                worker,
                members,
                gone_source,
            } => self.remote_presence(room, worker, members, gone_source),
            TopologyUpdate::Mute { transport, muted } => {
                let t = self
                    .by_id
                    .get(&transport)
                    .and_then(|&i| self.transports.get_mut(i)?.as_mut())
                    .ok_or(TopologyError::UnknownTransport(transport))?;
                t.muted = muted;
            }
            TopologyUpdate::CloseRoom { room } => {
                let members = self
                    .rooms
                    .get(&room)
                    .map(|r| r.members.clone())
                    .unwrap_or_default();
                for idx in members {
                    self.leave(idx);
                }
                self.rooms.remove(&room);
                self.recompute_fanout();
            }
            TopologyUpdate::SetKeys { transport, keys } => {
                let engine = self.cfg.srtp_engine;
                let err = |source| TopologyError::Keys {
                    id: transport,
                    source,
                };
                let inbound = SrtpContext::new(engine, &keys.inbound).map_err(err)?;
                let outbound = SrtpContext::new(engine, &keys.outbound).map_err(err)?;
                let t = self
                    .by_id
                    .get(&transport)
                    .and_then(|&i| self.transports.get_mut(i)?.as_mut())
                    .ok_or(TopologyError::UnknownTransport(transport))?;
                t.inbound = Some(inbound);
                t.outbound = Some(outbound);
            }
            TopologyUpdate::Transmit {
                transport,
                datagram,
            } => {
                let to = self
                    .transport_remote(transport)
                    .ok_or(TopologyError::UnknownTransport(transport))?;
                self.control_out.push((to, datagram));
            }
        }
        Ok(())
    }

    fn add_transport(&mut self, cfg: TransportConfig) -> Result<(), TopologyError> {
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
        let t = Transport {
            id: cfg.id,
            remote: cfg.remote,
            inbound,
            outbound,
            latch_ssrcs: cfg.latch_ssrcs,
            audio_level_ext: cfg.audio_level_ext,
            room: None,
            publish_ssrc: None,
            muted: false,
            slots: Vec::new(),
            egress: EgressFormat::default(),
            last_level: None,
            voice: VoiceActivity::default(),
            ice: cfg.ice,
            consent: None,
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

    /// Indexes a transport by its remote address, or by its latch SSRCs while it has none.
    fn index_address(&mut self, idx: usize) {
        let Some(t) = self.transports.get(idx).and_then(Option::as_ref) else {
            return;
        };
        match t.remote {
            Some(addr) => {
                if let Some(old) = self.by_addr.insert(addr, idx) {
                    if old != idx {
                        tracing::warn!(%addr, "address re-used by a new transport");
                    }
                }
            }
            None => {
                for &ssrc in &t.latch_ssrcs {
                    self.unlatched.insert(ssrc, idx);
                }
            }
        }
    }

    fn remove_transport(&mut self, id: TransportId) {
        let Some(idx) = self.by_id.remove(&id) else {
            return;
        };
        self.leave(idx);
        if let Some(t) = self.transports.get_mut(idx).and_then(Option::take) {
            if let Some(addr) = t.remote {
                if self.by_addr.get(&addr) == Some(&idx) {
                    self.by_addr.remove(&addr);
                }
            }
            for ssrc in t.latch_ssrcs {
                if self.unlatched.get(&ssrc) == Some(&idx) {
                    self.unlatched.remove(&ssrc);
                }
            }
            if let Some(c) = t.ice {
                if self.by_ufrag.get(c.local_ufrag.as_str()) == Some(&idx) {
                    self.by_ufrag.remove(c.local_ufrag.as_str());
                }
            }
            self.free.push(idx);
        }
    }

    fn join(&mut self, m: Membership) -> Result<(), TopologyError> {
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
    fn leave(&mut self, idx: usize) {
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
        if let Some(room) = self.rooms.get_mut(&room_id) {
            room.members.retain(|&m| m != idx);
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
        self.recompute_fanout();
    }

    fn remote_presence(&mut self, room_id: RoomId, worker: usize, members: u32, gone: Option<u32>) {
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

    fn recompute_fanout(&mut self) {
        self.max_fanout = self
            .rooms
            .values()
            .map(|r| r.members.len())
            .max()
            .unwrap_or(0);
    }

    // ---------------------------------------------------------------- packets

    /// Handles one received datagram. `buf` is decrypted in place.
    pub fn on_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        buf: &mut [u8],
        out: &mut Outbox,
    ) {
        self.stats.packets_in.add(1);
        self.stats.bytes_in.add(buf.len() as u64);
        match packet::classify(buf) {
            PacketKind::Rtp => self.on_rtp(now, from, buf, out),
            PacketKind::Rtcp => self.on_rtcp(from, buf),
            PacketKind::Stun => self.on_stun(now, from, buf, out),
            PacketKind::Dtls => self.on_dtls(from, buf),
            PacketKind::Unknown => self.stats.count_drop(DropReason::Malformed, 1),
        }
    }

    /// Finds the transport of a packet: by address, or (comedia) by the SSRC an unlatched transport
    /// declared. The bool is true when the address is not latched yet.
    #[inline]
    fn lookup(&self, from: SocketAddr, ssrc: Option<u32>) -> Option<(usize, bool)> {
        if let Some(&idx) = self.by_addr.get(&from) {
            return Some((idx, false));
        }
        self.unlatched.get(&ssrc?).map(|&idx| (idx, true))
    }

    /// Latches `from` as the remote address of transport `idx` after its first authenticated packet.
    fn latch(&mut self, idx: usize, from: SocketAddr) {
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

    fn count_srtp_error(&self, e: &SrtpError) {
        let reason = match e {
            SrtpError::Replayed => DropReason::Replayed,
            SrtpError::AuthenticationFailed => DropReason::AuthFailed,
            _ => DropReason::Malformed,
        };
        self.stats.count_drop(reason, 1);
    }

    fn on_rtp(&mut self, now: Instant, from: SocketAddr, buf: &mut [u8], out: &mut Outbox) {
        let (ssrc, seq, ts) = match RtpHeader::parse_encrypted(buf) {
            Ok(h) => (h.ssrc(), h.sequence_number(), h.timestamp()),
            Err(_) => return self.stats.count_drop(DropReason::Malformed, 1),
        };
        let Some((idx, unlatched)) = self.lookup(from, Some(ssrc)) else {
            return self.stats.count_drop(DropReason::UnknownSource, 1);
        };
        let Some(t) = self.transports.get_mut(idx).and_then(Option::as_mut) else {
            return self.stats.count_drop(DropReason::UnknownSource, 1);
        };
        if !unlatched {
            // Cheap checks before spending crypto on the packet. A muted publisher's packets are
            // still decrypted below, so its SRTP rollover counter follows the sender through a long
            // mute (skipping them would desynchronise it and lose every packet after the unmute).
            match t.publish_ssrc {
                Some(p) if p == ssrc => {}
                Some(_) => return self.stats.count_drop(DropReason::Malformed, 1),
                None => return self.stats.count_drop(DropReason::Muted, 1),
            }
        }
        let plain_len = match &mut t.inbound {
            Some(ctx) => match ctx.unprotect_rtp(buf) {
                Ok(n) => n,
                Err(e) => return self.count_srtp_error(&e),
            },
            None => buf.len(),
        };
        if unlatched {
            self.latch(idx, from);
        }
        match self.transports.get(idx).and_then(Option::as_ref) {
            Some(t) if t.publish_ssrc == Some(ssrc) && !t.muted => {}
            _ => return self.stats.count_drop(DropReason::Muted, 1),
        }
        let plain = &buf[..plain_len];
        let Ok(hdr) = RtpHeader::parse(plain) else {
            return self.stats.count_drop(DropReason::Malformed, 1);
        };
        let Some(t) = self.transports.get_mut(idx).and_then(Option::as_mut) else {
            return;
        };
        let level = t.audio_level_ext.and_then(|id| hdr.audio_level(id));
        t.last_level = level;
        if let Some(speaking) = t.voice.on_packet(now, speaker::is_voiced(level)) {
            self.upcalls.push(Upcall::Speaking {
                worker: self.cfg.worker,
                transport: t.id,
                speaking,
            });
        }
        let Some(room_id) = t.room else {
            return self.stats.count_drop(DropReason::Muted, 1);
        };
        let _ = (seq, ts);
        let pkt = Decrypted {
            publisher: Some(idx),
            hdr: &hdr,
            plain,
            level,
        };
        self.fan_out(now, room_id, pkt, out);
        self.relay(room_id, ssrc, level, plain);
    }

    /// ICE-lite (RFC 8445 §7.3): answers a valid connectivity check, refreshes consent, and latches
    /// the address a nominating check (USE-CANDIDATE) came from. Failed checks are counted drops.
    fn on_stun(&mut self, now: Instant, from: SocketAddr, buf: &[u8], out: &mut Outbox) {
        let by_addr = self.by_addr.get(&from).copied();
        let idx = match ice::request_username(buf).and_then(ice::split_username) {
            Some((local, _)) => match self.by_ufrag.get(local) {
                Some(&i) => i,
                None => return self.stats.count_drop(DropReason::UnknownSource, 1),
            },
            // Not a binding request (an indication, a response): nothing for a lite agent to do.
            None if by_addr.is_some() => return self.stats.count_drop(DropReason::Unsupported, 1),
            None => return self.stats.count_drop(DropReason::UnknownSource, 1),
        };
        let Some(t) = self.transports.get_mut(idx).and_then(Option::as_mut) else {
            return self.stats.count_drop(DropReason::UnknownSource, 1);
        };
        let Some(creds) = &t.ice else {
            return self.stats.count_drop(DropReason::Unsupported, 1);
        };
        let req = match ice::check_binding_request(buf, creds) {
            Ok(r) => r,
            Err(
                IceError::BadIntegrity | IceError::UnknownUsername | IceError::MissingIntegrity,
            ) => return self.stats.count_drop(DropReason::AuthFailed, 1),
            Err(_) => return self.stats.count_drop(DropReason::Malformed, 1),
        };
        let answered = out.push_with(from, |slot| {
            ice::write_binding_success(&req, from, creds, slot).ok()
        });
        if !answered {
            return self.stats.count_drop(DropReason::QueueFull, 1);
        }
        self.stats.stun_answered.add(1);
        match &mut t.consent {
            Some(c) => c.refresh(now),
            None => t.consent = Some(Consent::new(now)),
        }
        if req.use_candidate && t.remote != Some(from) {
            if let Some(old) = t.remote.take() {
                if self.by_addr.get(&old) == Some(&idx) {
                    self.by_addr.remove(&old);
                }
            }
            self.latch(idx, from);
        }
    }

    /// DTLS goes up to the control plane, which runs the handshakes, but only from an address ICE
    /// confirmed for a transport that has ICE: a forged datagram from elsewhere cannot disturb one.
    fn on_dtls(&mut self, from: SocketAddr, buf: &[u8]) {
        let Some(&idx) = self.by_addr.get(&from) else {
            return self.stats.count_drop(DropReason::UnknownSource, 1);
        };
        match self.transports.get(idx).and_then(Option::as_ref) {
            Some(t) if t.ice.is_some() => {
                // Handshake traffic only: a few datagrams per transport, so a copy is fine here.
                let transport = t.id;
                self.upcalls.push(Upcall::Dtls {
                    worker: self.cfg.worker,
                    transport,
                    datagram: buf.to_vec(),
                });
            }
            _ => self.stats.count_drop(DropReason::Unsupported, 1),
        }
    }

    /// Hands over what the core has to tell the control plane.
    pub fn drain_upcalls(&mut self) -> std::vec::Drain<'_, Upcall> {
        self.upcalls.drain(..)
    }

    /// Moves datagrams the control plane asked to send into `out`; false when some did not fit.
    pub fn drain_control_out(&mut self, out: &mut Outbox) -> bool {
        while let Some((to, datagram)) = self.control_out.first() {
            if !out.push(*to, datagram) {
                if out.is_empty() {
                    // Larger than a slot: it can never be sent.
                    self.stats.count_drop(DropReason::Malformed, 1);
                    self.control_out.remove(0);
                    continue;
                }
                return false;
            }
            self.control_out.remove(0);
        }
        true
    }

    /// Ends the speaking state of publishers that sent no voiced packet for
    /// [`speaker::SPEAKING_HOLD`], also when they sent nothing at all (reported as upcalls). Call it
    /// from housekeeping.
    pub fn expire_speaking(&mut self, now: Instant) {
        for t in self.transports.iter_mut().flatten() {
            if t.voice.on_tick(now) == Some(false) {
                self.upcalls.push(Upcall::Speaking {
                    worker: self.cfg.worker,
                    transport: t.id,
                    speaking: false,
                });
            }
        }
    }

    /// Removes every ICE transport whose consent expired (no valid check for
    /// [`ice::CONSENT_TIMEOUT`], RFC 7675) and returns their ids, for the control plane. Call it from
    /// housekeeping (about once a second); the 30 s of a new transport start at its first call.
    pub fn expire_consent(&mut self, now: Instant) -> Vec<TransportId> {
        let mut expired = Vec::new();
        for t in self.transports.iter_mut().flatten() {
            if t.ice.is_none() {
                continue;
            }
            match &t.consent {
                Some(c) if c.expired(now) => expired.push(t.id),
                Some(_) => {}
                None => t.consent = Some(Consent::new(now)),
            }
        }
        for &id in &expired {
            tracing::info!(transport = id, "ICE consent expired: transport removed");
            self.remove_transport(id);
        }
        expired
    }

    fn on_rtcp(&mut self, from: SocketAddr, buf: &mut [u8]) {
        let ssrc = packet::rtcp::first_ssrc(buf);
        let Some((idx, unlatched)) = self.lookup(from, ssrc) else {
            return self.stats.count_drop(DropReason::UnknownSource, 1);
        };
        let Some(t) = self.transports.get_mut(idx).and_then(Option::as_mut) else {
            return self.stats.count_drop(DropReason::UnknownSource, 1);
        };
        if let Some(ctx) = &mut t.inbound {
            if let Err(e) = ctx.unprotect_rtcp(buf) {
                return self.count_srtp_error(&e);
            }
        }
        if unlatched {
            self.latch(idx, from);
        }
        // Receiver reports and feedback end here for now: audio needs no retransmission or key frames.
        self.stats.rtcp_in.add(1);
    }

    /// Sends `plain` (a decrypted packet of `source`, parsed as `hdr`) to every local member of the
    /// room but the publisher itself.
    fn fan_out(&mut self, now: Instant, room_id: RoomId, pkt: Decrypted<'_, '_>, out: &mut Outbox) {
        let Decrypted {
            publisher,
            hdr,
            plain,
            level,
        } = pkt;
        let Some(room) = self.rooms.get(&room_id) else {
            return;
        };
        let source = hdr.ssrc();
        let (seq, ts) = (hdr.sequence_number(), hdr.timestamp());
        let (clock_rate, idle, hold) =
            (self.cfg.clock_rate, self.cfg.slot_idle, self.cfg.slot_hold);
        let voiced = speaker::is_voiced(level);
        for &m in &room.members {
            if Some(m) == publisher {
                continue;
            }
            let Some(t) = self.transports.get_mut(m).and_then(Option::as_mut) else {
                continue;
            };
            let Some(dest) = t.remote else {
                continue;
            };
            let Some((i, moved)) = pick_slot(&mut t.slots, source, voiced, now, idle, hold) else {
                continue;
            };
            if moved {
                self.upcalls.push(Upcall::SlotChanged {
                    worker: self.cfg.worker,
                    transport: t.id,
                    slot: i as u16,
                    source: Some(source),
                });
            }
            let slot = &mut t.slots[i];
            let out_ssrc = slot.out_ssrc();
            let mapped = slot.map(now, source, seq, ts, clock_rate);
            let mid = slot.mid();
            let (outbound, egress) = (&mut t.outbound, &t.egress);
            let mut failed = false;
            let pushed = out.push_with(dest, |buf| {
                let n = rewrite::write_forwarded_as(
                    plain, hdr, buf, out_ssrc, mapped, egress, mid, level,
                )?;
                match outbound {
                    Some(ctx) => ctx.protect_rtp(buf, n).map_err(|_| failed = true).ok(),
                    None => Some(n),
                }
            });
            if !pushed {
                let reason = if failed {
                    DropReason::Malformed
                } else {
                    DropReason::QueueFull
                };
                self.stats.count_drop(reason, 1);
            }
        }
    }

    /// Hands a decrypted packet to every other worker hosting members of the room.
    fn relay(&mut self, room_id: RoomId, source: u32, level: Option<AudioLevel>, plain: &[u8]) {
        let Some(room) = self.rooms.get(&room_id) else {
            return;
        };
        for &w in &room.remote_workers {
            let Some(tx) = self.relay_tx.get_mut(w).and_then(Option::as_mut) else {
                continue;
            };
            if tx.push(room_id, source, level, plain) {
                self.stats.relayed_out.add(1);
                self.touched |= 1u64 << (w % 64);
            } else {
                self.stats.count_drop(DropReason::QueueFull, 1);
            }
        }
    }

    /// Forwards packets other workers relayed to this one, stopping early when the outbox has fewer
    /// free slots than one more packet may need. Returns true when everything queued was handled.
    pub fn drain_relays(&mut self, now: Instant, out: &mut Outbox) -> bool {
        let mut scratch = std::mem::take(&mut self.relay_scratch);
        let mut done = true;
        for r in 0..self.relay_rx.len() {
            loop {
                if out.remaining() < self.max_fanout.max(1) {
                    done = false;
                    break;
                }
                let Some(meta) = self.relay_rx[r].pop(&mut scratch) else {
                    break;
                };
                self.on_relayed(now, meta, &scratch[..meta.len], out);
            }
        }
        self.relay_scratch = scratch;
        done
    }

    /// Forwards one packet another worker decrypted.
    pub fn on_relayed(&mut self, now: Instant, meta: RelayMeta, plain: &[u8], out: &mut Outbox) {
        self.stats.relayed_in.add(1);
        let Ok(hdr) = RtpHeader::parse(plain) else {
            return self.stats.count_drop(DropReason::Malformed, 1);
        };
        let pkt = Decrypted {
            publisher: None,
            hdr: &hdr,
            plain,
            level: meta.level,
        };
        self.fan_out(now, meta.room, pkt, out);
    }
}

/// A decrypted packet on its way to the room: who published it here (None when relayed from another
/// worker), its parsed header, its bytes and its audio level.
#[derive(Clone, Copy)]
struct Decrypted<'h, 'a> {
    publisher: Option<usize>,
    hdr: &'h RtpHeader<'a>,
    plain: &'a [u8],
    level: Option<AudioLevel>,
}

/// The index of the subscriber's slot for a packet of `source` (`voiced`: it carries speech), and
/// whether the source just moved onto it. The speaker policy ([`crate::speaker`]): the slot already
/// carrying the source; else a free one (no source, or one silent for `idle`); else, for a voiced
/// packet, the slot whose source has gone without voice longest, if that is at least `hold`.
#[inline]
fn pick_slot(
    slots: &mut [SlotRewriter],
    source: u32,
    voiced: bool,
    now: Instant,
    idle: Duration,
    hold: Duration,
) -> Option<(usize, bool)> {
    if let Some(i) = slots.iter().position(|s| s.source() == Some(source)) {
        if voiced {
            slots[i].mark_voice(now);
        }
        return Some((i, false));
    }
    let i = match slots.iter().position(|s| s.is_free(now, idle)) {
        Some(i) => i,
        None if voiced => {
            let (i, quiet) = slots
                .iter()
                .enumerate()
                .map(|(i, s)| (i, s.quiet_for(now)))
                .max_by_key(|&(_, q)| q)?;
            if quiet < hold {
                return None;
            }
            i
        }
        None => return None,
    };
    slots[i].assign(source);
    if voiced {
        slots[i].mark_voice(now);
    }
    Some((i, true))
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
