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
//!
//! The core in pieces, one job each:
//! - this module: the [`Forwarder`] type, its settings, and the topology commands it applies
//!   ([`Forwarder::apply`]);
//! - `tables`: the transport and room tables (slab, address/SSRC/ufrag indices, room membership) and
//!   the changes a topology update makes to them;
//! - `packet_path`: one datagram in, its fan-out out: demultiplexing, SRTP, RTCP termination, the
//!   per-subscriber rewrite and the relay rings to other workers;
//! - `handshake`: the packets that set a transport up: ICE-lite connectivity checks and DTLS handed
//!   up to the control plane;
//! - `housekeeping`: the once-a-second expiries (speaking state, ICE consent);
//! - `cascade`: the receiving end of relay legs to other nodes (which source each incoming leg
//!   stream carries, and whether it speaks);
//! - `reporting`: RTCP terminated at this hop: reports read on the packet path, and the
//!   once-a-second sender and receiver reports each transport gets ([`crate::reports`]).
//!
//! Which source gets which subscriber slot is the speaker policy's business ([`crate::speaker`]).

mod cascade;
mod handshake;
mod housekeeping;
mod packet_path;
mod reporting;
mod tables;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustc_hash::FxHashMap;

use crate::outbox::Outbox;
use crate::relay::{RelayRx, RelayTx};
use crate::rewrite;
use crate::srtp::{SrtpContext, SrtpEngine, SrtpError};
use crate::stats::{DropReason, WorkerStats};
use crate::topology::{RoomId, TopologyUpdate, TransportId, Upcall};

use tables::{Room, Transport};

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
    /// Each room's dominant speaker ([`crate::dominant`]) shapes the slot policy (its slot is never
    /// taken, and it takes one without the hold) and is reported up for `active_speakers`. Off:
    /// the plain hold rule alone.
    pub dominant_speaker: bool,
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
            dominant_speaker: true,
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

/// The forwarding core of one worker.
pub struct Forwarder {
    cfg: ForwarderConfig,
    stats: Arc<WorkerStats>,
    transports: Vec<Option<Transport>>,
    free: Vec<usize>,
    by_id: FxHashMap<TransportId, usize>,
    by_addr: FxHashMap<SocketAddr, usize>,
    unlatched: FxHashMap<u32, usize>,
    /// Relay legs by the SSRCs their other end sends on: several legs (one per room) can link the
    /// same two workers, so a leg is found by address *and* SSRC, never by address alone.
    by_leg_ssrc: FxHashMap<u32, usize>,
    /// ICE transports by their local (server-side) ufrag.
    by_ufrag: FxHashMap<String, usize>,
    /// Return-routability checks in flight, by transaction id (`handshake`).
    probes: FxHashMap<[u8; 12], usize>,
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
    /// Wall-clock time for RTCP (set by the worker: the core reads no clock).
    ntp: Option<crate::reports::NtpClock>,
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
            by_leg_ssrc: FxHashMap::default(),
            by_ufrag: FxHashMap::default(),
            probes: FxHashMap::default(),
            rooms: FxHashMap::default(),
            relay_tx: (0..workers).map(|_| None).collect(),
            relay_rx: Vec::new(),
            relay_scratch: vec![0u8; crate::outbox::SLOT_SIZE].into_boxed_slice(),
            touched: 0,
            max_fanout: 0,
            // Slot changes of a whole room can come out of one packet: room for them up front.
            upcalls: Vec::with_capacity(1024),
            control_out: Vec::new(),
            ntp: None,
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
            TopologyUpdate::SetPublishSsrc { transport, ssrc } => {
                self.set_publish_ssrc(transport, ssrc)?
            }
            TopologyUpdate::Mute { transport, muted } => {
                let t = self.transport_mut(transport)?;
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
                let t = self.transport_mut(transport)?;
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
            TopologyUpdate::Downstream { transport, quality } => {
                let t = self.transport_mut(transport)?;
                t.rtcp.downstream = quality;
            }
        }
        Ok(())
    }

    /// The transport an update names, or the error that refuses the update.
    fn transport_mut(&mut self, id: TransportId) -> Result<&mut Transport, TopologyError> {
        self.by_id
            .get(&id)
            .and_then(|&i| self.transports.get_mut(i)?.as_mut())
            .ok_or(TopologyError::UnknownTransport(id))
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
}
