//! One dataplane worker: a thread pinned to a core, owning its UDP socket (through an I/O backend),
//! its forwarding core and its end of the command channel.
//!
//! The loop, once per turn: apply pending commands (try_recv, never blocks; topology updates go to the
//! sans-IO core, barriers and shutdown the worker handles itself), forward what other
//! workers relayed, then receive a batch, run every datagram through the core, and send the outbox with
//! one batched call. The outbox is sent early whenever it has fewer free slots than the largest local
//! room needs, so one packet's fan-out always fits.
//!
//! Upcalls travel on two bounded channels ([`UpcallSenders`]): DTLS datagrams on their own, every
//! other report (consent lost, slot changes, `PublishSsrc`, speaking) on the control channel, so DTLS
//! traffic can never crowd them out. A control upcall that finds its channel full waits in a
//! backlog the worker retries every turn (bounded by [`CONTROL_BACKLOG`]); it is not dropped.
//!
//! Sleeping and waking: before it may block in `recv`, a worker raises its `parked` flag, then looks at
//! its relay rings once more (a full fence between the two, mirrored on the producer's side), so a
//! packet relayed by another worker can never sit unseen while this one sleeps.

use std::collections::VecDeque;
use std::ops::ControlFlow;
use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError};

use crate::forwarder::Forwarder;
use crate::io::wake::Wake;
use crate::io::DatagramIo;
use crate::outbox::Outbox;
use crate::stats::{DropReason, WorkerStats};
use crate::topology::{TopologyUpdate, Upcall};

/// How often a worker runs housekeeping (ICE consent expiry, speaking states, RTCP reports).
pub const HOUSEKEEPING: Duration = Duration::from_secs(1);

/// How long an idle worker sleeps before it looks around again (housekeeping tick).
pub const IDLE_TICK: Duration = Duration::from_millis(100);

/// Control upcalls a worker keeps while the control channel is full; only beyond this many (a
/// control plane that stopped reading) are they dropped and counted.
pub const CONTROL_BACKLOG: usize = 1 << 16;

/// Where a worker reports to the control plane: DTLS datagrams on their own channel, so a DTLS
/// flood can never crowd out the control upcalls.
#[derive(Clone, Debug)]
pub struct UpcallSenders {
    /// Consent lost, slot changes, `PublishSsrc`, speaking.
    pub control: Sender<Upcall>,
    /// `Upcall::Dtls` only.
    pub dtls: Sender<Upcall>,
}

/// What a worker's command channel carries. Only [`WorkerCommand::Topology`] reaches the forwarding
/// core; the worker answers the other two itself, so the sans-IO core never touches a channel.
#[derive(Debug)]
pub enum WorkerCommand {
    /// A topology update for the forwarding core.
    Topology(TopologyUpdate),
    /// Answered once every command queued before it has been applied.
    Barrier(Sender<()>),
    /// Stops the worker after it sent what it queued.
    Shutdown,
}

/// The part of a worker other threads may touch: its counters and its wake-up.
pub struct WorkerShared {
    /// Counters, written only by the worker.
    pub stats: Arc<WorkerStats>,
    parked: AtomicBool,
    wake: Wake,
}

impl WorkerShared {
    /// Shared state around a wake-up eventfd.
    pub fn new(stats: Arc<WorkerStats>, wake: Wake) -> Self {
        Self {
            stats,
            parked: AtomicBool::new(false),
            wake,
        }
    }

    /// A handle on the worker's wake-up eventfd, for its I/O backend to wait on.
    pub fn wake_handle(&self) -> Wake {
        self.wake.clone()
    }

    /// Wakes the worker unconditionally (control-plane path).
    pub fn wake(&self) {
        self.wake.wake();
    }

    /// Wakes the worker if it is about to sleep or sleeping (packet path: one atomic load when busy).
    #[inline]
    pub fn wake_if_parked(&self) {
        fence(Ordering::SeqCst);
        if self.parked.load(Ordering::Relaxed) && self.parked.swap(false, Ordering::AcqRel) {
            self.wake.wake();
        }
    }
}

/// Everything a worker thread runs with.
pub struct WorkerLoop<B: DatagramIo> {
    /// The socket backend.
    pub io: B,
    /// The forwarding core.
    pub core: Forwarder,
    /// Commands from the control plane.
    pub commands: Receiver<WorkerCommand>,
    /// This worker's shared state.
    pub me: Arc<WorkerShared>,
    /// Every worker's shared state, by index (to wake the ones this one relays to).
    pub peers: Vec<Arc<WorkerShared>>,
    /// Egress pool size.
    pub outbox_slots: usize,
    /// This worker's index (for upcalls).
    pub index: usize,
    /// Where the worker reports to the control plane.
    pub upcalls: UpcallSenders,
}

impl<B: DatagramIo> WorkerLoop<B> {
    /// Runs until a [`WorkerCommand::Shutdown`] arrives or the control plane hangs up.
    pub fn run(mut self) {
        let mut out = Outbox::with_capacity(self.outbox_slots);
        let mut failures = 0u64;
        let mut next_housekeeping = Instant::now() + HOUSEKEEPING;
        let mut backlog = Backlog::default();
        let mut truncated = self.io.truncated();
        loop {
            // 1. Control: apply every queued update.
            if apply_commands(&mut self.core, &self.commands) {
                self.flush(&mut out);
                return;
            }

            // Datagrams the control plane asked to send (DTLS flights).
            while !self.core.drain_control_out(&mut out) {
                self.flush(&mut out);
            }

            // 2. Packets other workers decrypted for rooms with members here.
            let now = Instant::now();
            if now >= next_housekeeping {
                next_housekeeping = now + HOUSEKEEPING;
                self.housekeeping(now, &mut backlog, &mut out);
            }
            while !self.core.drain_relays(now, &mut out) {
                self.flush(&mut out);
            }
            self.flush(&mut out);

            // 3. Park, then look once more, so no relayed packet or command waits for the tick.
            self.me.parked.store(true, Ordering::SeqCst);
            fence(Ordering::SeqCst);
            let busy = self.core.relays_pending() || !self.commands.is_empty();
            let timeout = if busy { Duration::ZERO } else { IDLE_TICK };

            // 4. Receive a batch and run it through the core.
            let fanout = self.core.max_fanout().max(1);
            let (core, commands) = (&mut self.core, &self.commands);
            let mut batch_now: Option<Instant> = None;
            let mut stop = false;
            let result = self.io.recv(Some(timeout), |from, buf| {
                let now = match batch_now {
                    Some(now) => now,
                    None => {
                        // Commands queued while we slept go first: a client's first packet may
                        // answer something (an SDP answer) sent right after its command was queued.
                        if !commands.is_empty() && apply_commands(core, commands) {
                            stop = true;
                            return ControlFlow::Break(());
                        }
                        *batch_now.insert(Instant::now())
                    }
                };
                core.on_datagram(now, from, buf, &mut out);
                if out.remaining() < fanout {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            });
            self.me.parked.store(false, Ordering::Relaxed);
            if stop {
                self.flush(&mut out);
                return;
            }
            // Datagrams too large for a slot never reached the core: count them here.
            let t = self.io.truncated();
            if t != truncated {
                let n = t.wrapping_sub(truncated);
                truncated = t;
                self.me.stats.packets_in.add(n);
                self.me.stats.count_drop(DropReason::Oversized, n);
            }
            if let Err(e) = result {
                failures += 1;
                if failures.is_power_of_two() {
                    tracing::error!(error = %e, failures, "receive failed");
                }
                std::thread::sleep(Duration::from_millis(1));
            }

            // 5. One batched send for the whole batch's fan-out.
            self.flush(&mut out);
            self.report_upcalls(&mut backlog);

            // 6. Wake the workers this batch relayed to.
            let mut touched = self.core.take_touched();
            while touched != 0 {
                let w = touched.trailing_zeros() as usize;
                touched &= touched - 1;
                if let Some(peer) = self.peers.get(w) {
                    peer.wake_if_parked();
                }
            }
        }
    }

    fn housekeeping(&mut self, now: Instant, backlog: &mut Backlog, out: &mut Outbox) {
        self.core.expire_speaking(now);
        // RTCP: the wall clock read here, once a second, is the only one the core sees.
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        self.core.set_wall_clock(now, wall);
        let mut from = 0;
        while let Some(next) = self.core.send_reports(now, from, out) {
            self.flush(out);
            from = next;
        }
        self.flush(out);
        self.report_upcalls(backlog);
        for transport in self.core.expire_consent(now) {
            let u = Upcall::ConsentExpired {
                worker: self.index,
                transport,
            };
            backlog.send(&self.upcalls, &self.me.stats, u);
        }
    }

    fn report_upcalls(&mut self, backlog: &mut Backlog) {
        let stats = &self.me.stats;
        backlog.retry(&self.upcalls.control);
        for u in self.core.drain_upcalls() {
            backlog.send(&self.upcalls, stats, u);
        }
    }

    fn flush(&mut self, out: &mut Outbox) {
        if out.is_empty() {
            return;
        }
        let stats = &self.me.stats;
        let queued = out.len();
        let bytes = out.bytes();
        match self.io.send(out) {
            Ok(report) => {
                stats.packets_out.add(report.sent as u64);
                // Failures are rare; attribute bytes proportionally rather than re-walking the batch.
                let sent_bytes = if report.failed == 0 {
                    bytes
                } else {
                    bytes * report.sent / queued.max(1)
                };
                stats.bytes_out.add(sent_bytes as u64);
                stats.count_drop(DropReason::SendFailed, report.failed as u64);
            }
            Err(e) => {
                tracing::error!(error = %e, "send failed");
                stats.count_drop(DropReason::SendFailed, queued as u64);
                out.clear();
            }
        }
    }
}

/// Applies every queued command; true when the worker must stop (a `Shutdown`, or the control plane
/// hung up).
fn apply_commands(core: &mut Forwarder, commands: &Receiver<WorkerCommand>) -> bool {
    loop {
        match commands.try_recv() {
            Ok(WorkerCommand::Shutdown) | Err(TryRecvError::Disconnected) => return true,
            Ok(WorkerCommand::Topology(update)) => {
                if let Err(e) = core.apply(update) {
                    tracing::warn!(error = %e, "topology update refused");
                }
            }
            Ok(WorkerCommand::Barrier(done)) => {
                let _ = done.send(());
            }
            Err(TryRecvError::Empty) => return false,
        }
    }
}

/// Control upcalls waiting for room in the control channel, oldest first.
#[derive(Default)]
struct Backlog(VecDeque<Upcall>);

impl Backlog {
    /// Sends what waits, in order, until the channel is full again.
    fn retry(&mut self, tx: &Sender<Upcall>) {
        while let Some(u) = self.0.pop_front() {
            if let Err(e) = tx.try_send(u) {
                self.0.push_front(e.into_inner());
                return;
            }
        }
    }

    /// Reports to the control plane without ever blocking the worker. DTLS goes on its own
    /// channel; when that is full (a peer flooding DTLS past its budget on many transports, or a
    /// control plane that fell behind) the datagram is dropped and counted, as a lost datagram is
    /// for DTLS. A control upcall never overtakes the backlog and waits in it when its channel is
    /// full; only a backlog of [`CONTROL_BACKLOG`] drops (counted, logged at powers of two so a
    /// flood cannot flood the log too).
    fn send(&mut self, tx: &UpcallSenders, stats: &WorkerStats, u: Upcall) {
        if matches!(u, Upcall::Dtls { .. }) {
            if tx.dtls.try_send(u).is_err() {
                dropped(stats);
            }
            return;
        }
        if self.0.is_empty() {
            match tx.control.try_send(u) {
                Ok(()) => {}
                Err(crossbeam_channel::TrySendError::Disconnected(_)) => dropped(stats),
                Err(crossbeam_channel::TrySendError::Full(u)) => self.0.push_back(u),
            }
        } else if self.0.len() < CONTROL_BACKLOG {
            self.0.push_back(u);
        } else {
            dropped(stats);
        }
    }
}

fn dropped(stats: &WorkerStats) {
    stats.upcalls_dropped.add(1);
    let n = stats.upcalls_dropped.get();
    if n.is_power_of_two() {
        tracing::warn!(
            dropped = n,
            "upcall channel full or closed: upcalls dropped"
        );
    }
}
