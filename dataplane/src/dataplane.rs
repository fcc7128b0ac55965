//! The dataplane handle: starts one pinned worker per configured core, wires their relay rings and
//! command channels, and is how the control plane (and `sluice bench`) talks to them.
//!
//! The handle also owns the room presence bookkeeping that workers need from each other (which worker
//! hosts members of which room, [`crate::presence::Presence`]): on the control side, behind a mutex
//! that the packet path never touches.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{bounded, Receiver, Sender};

use crate::forwarder::{Forwarder, ForwarderConfig};
use crate::io::cputime::cpu_time_of;
use crate::io::mmsg::MmsgIo;
use crate::io::socket::bind_udp;
use crate::io::uring::UringIo;
use crate::io::wake::Wake;
use crate::io::{BackendChoice, BackendKind, DatagramIo, IoConfig};
use crate::presence::{Presence, PresenceChange};
use crate::relay::relay_ring;
use crate::srtp::SrtpEngine;
use crate::stats::{StatsSnapshot, WorkerStats};
use crate::topology::{Membership, RoomId, TopologyUpdate, TransportConfig, TransportId, Upcall};
use crate::worker::{UpcallSenders, WorkerCommand, WorkerLoop, WorkerShared};

/// How the dataplane is laid out.
#[derive(Debug, Clone)]
pub struct DataplaneConfig {
    /// Number of workers.
    pub workers: usize,
    /// Core of each worker; empty: worker `i` on core `i` (modulo the host's cores).
    pub cores: Vec<usize>,
    /// Pin workers to their cores.
    pub pin: bool,
    /// Address the worker sockets bind to.
    pub bind_ip: IpAddr,
    /// Worker `i` listens on `base_port + i`; 0 lets the kernel pick each port.
    pub base_port: u16,
    /// I/O backend.
    pub backend: BackendChoice,
    /// Socket and batch sizes.
    pub io: IoConfig,
    /// SRTP implementation.
    pub srtp_engine: SrtpEngine,
    /// Egress slots per worker (the largest local room must fit).
    pub outbox_slots: usize,
    /// Bytes of each cross-worker relay ring.
    pub relay_ring_bytes: usize,
    /// Capacity of each worker's command channel.
    pub command_queue: usize,
}

impl Default for DataplaneConfig {
    fn default() -> Self {
        Self {
            workers: 1,
            cores: Vec::new(),
            pin: true,
            bind_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            base_port: 7882,
            backend: BackendChoice::Auto,
            io: IoConfig::default(),
            srtp_engine: SrtpEngine::default(),
            outbox_slots: 4096,
            relay_ring_bytes: 1 << 20,
            command_queue: 4096,
        }
    }
}

/// Why the dataplane could not start or take an update.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataplaneError {
    /// A worker socket could not be bound.
    #[error("binding worker {worker} to {addr}: {source}")]
    Bind {
        /// Worker index.
        worker: usize,
        /// Address tried.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
    /// The I/O backend failed to start.
    #[error("starting the {backend} backend for worker {worker}: {source}")]
    Backend {
        /// Worker index.
        worker: usize,
        /// Backend.
        backend: BackendKind,
        /// Cause.
        source: std::io::Error,
    },
    /// Bad configuration.
    #[error("invalid dataplane configuration: {0}")]
    Config(String),
    /// A worker index out of range.
    #[error("no worker {0}")]
    NoSuchWorker(usize),
    /// The worker has stopped.
    #[error("worker {0} has stopped")]
    WorkerGone(usize),
}

struct WorkerHandle {
    thread: Option<JoinHandle<()>>,
    commands: Sender<WorkerCommand>,
    shared: Arc<WorkerShared>,
    addr: SocketAddr,
}

/// A running dataplane.
pub struct Dataplane {
    workers: Vec<WorkerHandle>,
    upcalls: Receiver<Upcall>,
    dtls_upcalls: Receiver<Upcall>,
    backend: BackendKind,
    presence: Mutex<Presence>,
}

impl Dataplane {
    /// Binds every worker's socket and starts the workers.
    pub fn start(cfg: DataplaneConfig) -> Result<Self, DataplaneError> {
        let n = cfg.workers;
        if n == 0 || n > 64 {
            return Err(DataplaneError::Config(format!(
                "workers must be 1..=64, got {n}"
            )));
        }
        let backend = cfg.backend.resolve();
        let host_cores = core_affinity::get_core_ids().unwrap_or_default();

        let mut sockets = Vec::with_capacity(n);
        for i in 0..n {
            let port = if cfg.base_port == 0 {
                0
            } else {
                cfg.base_port.checked_add(i as u16).ok_or_else(|| {
                    DataplaneError::Config(format!("base port {} + {i} overflows", cfg.base_port))
                })?
            };
            let addr = SocketAddr::new(cfg.bind_ip, port);
            let nonblocking = backend == BackendKind::Mmsg;
            let socket =
                bind_udp(addr, &cfg.io, nonblocking).map_err(|source| DataplaneError::Bind {
                    worker: i,
                    addr,
                    source,
                })?;
            let local = socket.local_addr().map_err(|source| DataplaneError::Bind {
                worker: i,
                addr,
                source,
            })?;
            sockets.push((socket, local));
        }

        let mut shared = Vec::with_capacity(n);
        for i in 0..n {
            let wake = Wake::new().map_err(|source| DataplaneError::Backend {
                worker: i,
                backend,
                source,
            })?;
            shared.push(Arc::new(WorkerShared::new(
                Arc::new(WorkerStats::default()),
                wake,
            )));
        }

        let mut cores: Vec<Forwarder> = (0..n)
            .map(|i| {
                Forwarder::new(
                    ForwarderConfig {
                        worker: i,
                        workers: n,
                        srtp_engine: cfg.srtp_engine,
                        ..ForwarderConfig::default()
                    },
                    shared[i].stats.clone(),
                )
            })
            .collect();
        for from in 0..n {
            for to in 0..n {
                if from != to {
                    let (tx, rx) = relay_ring(cfg.relay_ring_bytes);
                    cores[from].connect_relay_tx(to, tx);
                    cores[to].connect_relay_rx(rx);
                }
            }
        }

        let (upcall_tx, upcall_rx) = bounded(4096);
        let (dtls_tx, dtls_rx) = bounded(4096);
        let mut workers = Vec::with_capacity(n);
        for (i, ((socket, addr), core)) in sockets.into_iter().zip(cores).enumerate() {
            let (tx, rx) = bounded(cfg.command_queue.max(1));
            let core_id = match cfg.cores.get(i) {
                Some(&c) => Some(c),
                None if !host_cores.is_empty() => Some(host_cores[i % host_cores.len()].id),
                None => None,
            };
            let pin = cfg.pin;
            let me = shared[i].clone();
            let peers = shared.clone();
            let outbox_slots = cfg.outbox_slots;
            let upcalls = UpcallSenders {
                control: upcall_tx.clone(),
                dtls: dtls_tx.clone(),
            };
            let io_cfg = cfg.io.clone();
            let wake = me.wake_handle();
            let (ready_tx, ready_rx) = bounded::<Result<(), std::io::Error>>(1);
            let thread = std::thread::Builder::new()
                .name(format!("sluice-worker-{i}"))
                .spawn(move || {
                    if pin {
                        if let Some(id) = core_id {
                            if !core_affinity::set_for_current(core_affinity::CoreId { id }) {
                                tracing::warn!(
                                    worker = i,
                                    core = id,
                                    "could not pin worker to its core"
                                );
                            }
                        }
                    }
                    let ready = |started: std::io::Result<()>| {
                        let _ = ready_tx.send(started);
                    };
                    match backend {
                        BackendKind::Mmsg => match MmsgIo::new(socket, wake, &io_cfg) {
                            Ok(io) => {
                                run_loop(io, ready, core, rx, me, peers, outbox_slots, i, upcalls)
                            }
                            Err(e) => ready(Err(e)),
                        },
                        BackendKind::Uring => match UringIo::new(socket, wake, &io_cfg) {
                            Ok(io) => {
                                run_loop(io, ready, core, rx, me, peers, outbox_slots, i, upcalls)
                            }
                            Err(e) => ready(Err(e)),
                        },
                    }
                })
                .map_err(|source| DataplaneError::Backend {
                    worker: i,
                    backend,
                    source,
                })?;
            match ready_rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(source)) => {
                    let _ = thread.join();
                    return Err(DataplaneError::Backend {
                        worker: i,
                        backend,
                        source,
                    });
                }
                Err(_) => return Err(DataplaneError::WorkerGone(i)),
            }
            tracing::info!(worker = i, %addr, core = ?core_id, %backend, "worker started");
            workers.push(WorkerHandle {
                thread: Some(thread),
                commands: tx,
                shared: shared[i].clone(),
                addr,
            });
        }
        Ok(Self {
            workers,
            upcalls: upcall_rx,
            dtls_upcalls: dtls_rx,
            backend,
            presence: Mutex::new(Presence::default()),
        })
    }

    /// What the workers report but DTLS (ICE consent expiry, slot changes, `PublishSsrc`,
    /// speaking), for the control plane to drain first. Workers never drop these for lack of room:
    /// they keep them until the channel has some (`worker::CONTROL_BACKLOG`).
    pub fn upcalls(&self) -> &Receiver<Upcall> {
        &self.upcalls
    }

    /// The DTLS datagrams the workers hand up (`Upcall::Dtls`), on their own bounded channel so a
    /// DTLS flood cannot crowd out [`Self::upcalls`]; dropped (and counted in
    /// `upcalls_dropped`) when full.
    pub fn dtls_upcalls(&self) -> &Receiver<Upcall> {
        &self.dtls_upcalls
    }

    /// Number of workers.
    pub fn workers(&self) -> usize {
        self.workers.len()
    }

    /// The backend in use.
    pub fn backend(&self) -> BackendKind {
        self.backend
    }

    /// Address worker `i` listens on.
    pub fn worker_addr(&self, i: usize) -> Option<SocketAddr> {
        self.workers.get(i).map(|w| w.addr)
    }

    /// Counters of worker `i`.
    pub fn stats(&self, i: usize) -> Option<StatsSnapshot> {
        self.workers.get(i).map(|w| w.shared.stats.snapshot())
    }

    /// Counters summed over all workers.
    pub fn total_stats(&self) -> StatsSnapshot {
        self.workers
            .iter()
            .fold(StatsSnapshot::default(), |acc, w| {
                acc.merged(&w.shared.stats.snapshot())
            })
    }

    /// CPU time (user + system) worker `i` has used so far.
    pub fn worker_cpu_time(&self, i: usize) -> Option<Duration> {
        cpu_time_of(self.workers.get(i)?.thread.as_ref()?)
    }

    /// Sends one update to worker `i` and wakes it.
    pub fn send(&self, i: usize, update: TopologyUpdate) -> Result<(), DataplaneError> {
        self.command(i, WorkerCommand::Topology(update))
    }

    /// Sends one command to worker `i` and wakes it.
    fn command(&self, i: usize, command: WorkerCommand) -> Result<(), DataplaneError> {
        let w = self.workers.get(i).ok_or(DataplaneError::NoSuchWorker(i))?;
        w.commands
            .send(command)
            .map_err(|_| DataplaneError::WorkerGone(i))?;
        w.shared.wake();
        Ok(())
    }

    fn broadcast_except(
        &self,
        except: usize,
        update: &TopologyUpdate,
    ) -> Result<(), DataplaneError> {
        for i in (0..self.workers.len()).filter(|&i| i != except) {
            self.send(i, update.clone())?;
        }
        Ok(())
    }

    /// Adds a transport to worker `i`.
    pub fn add_transport(&self, i: usize, cfg: TransportConfig) -> Result<(), DataplaneError> {
        // Replacing a transport drops its membership: keep the other workers' presence counts true.
        self.forget_member(cfg.id)?;
        self.send(i, TopologyUpdate::AddTransport(Box::new(cfg)))
    }

    /// Removes a transport (and its membership) from worker `i`.
    pub fn remove_transport(&self, i: usize, id: TransportId) -> Result<(), DataplaneError> {
        self.forget_member(id)?;
        self.send(i, TopologyUpdate::RemoveTransport { id })
    }

    /// Puts a transport of worker `i` into a room; other workers learn that `i` hosts the room.
    pub fn join(&self, i: usize, m: Membership) -> Result<(), DataplaneError> {
        if i >= self.workers.len() {
            return Err(DataplaneError::NoSuchWorker(i));
        }
        self.forget_member(m.transport)?;
        let (room, transport, ssrc) = (m.room, m.transport, m.publish_ssrc);
        self.send(i, TopologyUpdate::Join(Box::new(m)))?;
        let change = self.presence().join(i, room, transport, ssrc);
        self.announce(change)
    }

    /// Confirms the SSRC a learning publisher of worker `i` sends with (after its
    /// [`Upcall::PublishSsrc`](crate::topology::Upcall::PublishSsrc)); the other workers free the
    /// slots its previous SSRC held.
    pub fn set_publish_ssrc(
        &self,
        i: usize,
        transport: TransportId,
        ssrc: u32,
    ) -> Result<(), DataplaneError> {
        self.send(i, TopologyUpdate::SetPublishSsrc { transport, ssrc })?;
        let change = self.presence().set_publish_ssrc(transport, ssrc);
        match change {
            Some(c) if c.gone_source.is_some() => self.announce(c),
            _ => Ok(()),
        }
    }

    /// Tells worker `i` the worst loss and jitter among the subscribers of its publisher
    /// `transport`, for the receiver reports it sends it ([`crate::forwarder`]'s RTCP).
    pub fn set_downstream(
        &self,
        i: usize,
        transport: TransportId,
        quality: crate::reports::Quality,
    ) -> Result<(), DataplaneError> {
        self.send(i, TopologyUpdate::Downstream { transport, quality })
    }

    /// Takes a transport of worker `i` out of its room.
    pub fn leave(&self, i: usize, transport: TransportId) -> Result<(), DataplaneError> {
        self.forget_member(transport)?;
        self.send(i, TopologyUpdate::Leave { transport })
    }

    /// Server-side mute.
    pub fn mute(
        &self,
        i: usize,
        transport: TransportId,
        muted: bool,
    ) -> Result<(), DataplaneError> {
        self.send(i, TopologyUpdate::Mute { transport, muted })
    }

    /// Returns once worker `i` has applied every update sent to it before this call (e.g. before
    /// telling a client about a transport that worker must already know).
    pub fn sync_worker(&self, i: usize) -> Result<(), DataplaneError> {
        let (tx, rx) = bounded(1);
        self.command(i, WorkerCommand::Barrier(tx))?;
        rx.recv_timeout(Duration::from_secs(10))
            .map_err(|_| DataplaneError::WorkerGone(i))
    }

    /// Returns once every worker has applied every update sent before this call.
    pub fn sync(&self) -> Result<(), DataplaneError> {
        let (tx, rx) = bounded(self.workers.len());
        for i in 0..self.workers.len() {
            self.command(i, WorkerCommand::Barrier(tx.clone()))?;
        }
        for i in 0..self.workers.len() {
            rx.recv_timeout(Duration::from_secs(10))
                .map_err(|_| DataplaneError::WorkerGone(i))?;
        }
        Ok(())
    }

    /// Closes a room on every worker.
    pub fn close_room(&self, room: RoomId) -> Result<(), DataplaneError> {
        self.presence().close_room(room);
        self.broadcast_except(usize::MAX, &TopologyUpdate::CloseRoom { room })
    }

    /// Updates presence when a member leaves, telling the other workers.
    fn forget_member(&self, transport: TransportId) -> Result<(), DataplaneError> {
        let change = self.presence().forget(transport);
        match change {
            Some(change) => self.announce(change),
            None => Ok(()),
        }
    }

    /// Tells every worker but the one whose count changed.
    fn announce(&self, change: PresenceChange) -> Result<(), DataplaneError> {
        self.broadcast_except(change.worker, &change.update())
    }

    /// The presence bookkeeping (a panic elsewhere while it was held leaves it usable: every change
    /// is one map update).
    fn presence(&self) -> std::sync::MutexGuard<'_, Presence> {
        self.presence.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stops every worker after it sent what it queued, and waits for them.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        for w in &self.workers {
            let _ = w.commands.send(WorkerCommand::Shutdown);
            w.shared.wake();
        }
        for w in &mut self.workers {
            if let Some(t) = w.thread.take() {
                let _ = t.join();
            }
        }
    }
}

impl Drop for Dataplane {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Reports the backend started, then runs the worker loop on this thread.
#[allow(clippy::too_many_arguments)]
fn run_loop<B: DatagramIo>(
    io: B,
    ready: impl FnOnce(std::io::Result<()>),
    core: Forwarder,
    commands: crossbeam_channel::Receiver<WorkerCommand>,
    me: Arc<WorkerShared>,
    peers: Vec<Arc<WorkerShared>>,
    outbox_slots: usize,
    index: usize,
    upcalls: UpcallSenders,
) {
    ready(Ok(()));
    WorkerLoop {
        io,
        core,
        commands,
        me,
        peers,
        outbox_slots,
        index,
        upcalls,
    }
    .run();
}
