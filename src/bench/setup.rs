//! The bench's test bed: the in-process dataplane, one loopback socket and one plain transport per
//! publisher and subscriber, random SRTP keys, and the load threads' state (kept across `--max` trials
//! so SRTP sequence numbers and replay windows stay continuous).
//!
//! With `--relay` the bed is a cascade (docs/cascade.md): two dataplanes in this process, a *core*
//! holding the publishers and an *edge* holding the subscribers, and per room one relay leg between
//! them (plain SRTP on loopback, as between two `sluice serve` nodes), so every packet takes two hops.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use rand::{Rng, RngCore};
use sluice_dataplane::io::limits::raise_open_file_limit;
use sluice_dataplane::io::socket::bind_udp;
use sluice_dataplane::io::{BackendKind, IoConfig};
use sluice_dataplane::srtp::{SrtpKeys, SrtpProfile};
use sluice_dataplane::stats::StatsSnapshot;
use sluice_dataplane::topology::{
    EgressFormat, Membership, RelayLeg, TransportConfig, TransportKeys,
};
use sluice_dataplane::{Dataplane, DataplaneConfig};

use super::generator::{Generator, GeneratorTotals, Publisher};
use super::sink::{Sink, SinkTotals, Subscriber};
use super::{BenchArgs, SrtpArg};

/// Dataplane counters and CPU at one instant.
#[derive(Debug, Clone, Copy)]
pub struct Measurement {
    /// Counters summed over workers (of both nodes, with `--relay`).
    pub stats: StatsSnapshot,
    /// Datagrams the publishers' node received.
    pub ingress: u64,
    /// Datagrams the subscribers' node sent.
    pub egress: u64,
    /// CPU time summed over workers (of both nodes, with `--relay`).
    pub cpu: Duration,
    /// The relay leg, with `--relay`.
    pub leg: Option<LegMeasurement>,
}

/// What the two nodes of a `--relay` bed did, at one instant.
#[derive(Debug, Clone, Copy)]
pub struct LegMeasurement {
    /// Datagrams the core sent (all of them on the relay legs: it holds no subscribers).
    pub packets: u64,
    /// CPU time of the core's workers.
    pub core_cpu: Duration,
    /// CPU time of the edge's workers.
    pub edge_cpu: Duration,
}

/// Everything a bench run needs.
pub struct TestBed {
    /// The nodes: one, or with `--relay` the core (publishers) then the edge (subscribers).
    nodes: Vec<Dataplane>,
    generator: Arc<Mutex<Generator>>,
    sinks: Vec<Arc<Mutex<Sink>>>,
    load_cores: Vec<usize>,
    /// Backend the dataplane runs.
    pub backend: BackendKind,
}

/// Fresh master keys for `profile`, drawn from `rng`.
fn random_keys(rng: &mut impl RngCore, profile: SrtpProfile) -> anyhow::Result<SrtpKeys> {
    let mut key = vec![0u8; profile.master_key_len()];
    let mut salt = vec![0u8; profile.master_salt_len()];
    rng.fill_bytes(&mut key);
    rng.fill_bytes(&mut salt);
    Ok(SrtpKeys::new(profile, &key, &salt)?)
}

/// A non-blocking loopback socket on an ephemeral port with a `rcvbuf`-byte receive buffer (set the
/// way the workers set theirs, forcing past `rmem_max` where permitted).
fn loopback_socket(rcvbuf: usize) -> anyhow::Result<UdpSocket> {
    let cfg = IoConfig {
        recv_buf_bytes: rcvbuf,
        send_buf_bytes: 1 << 20,
        ..IoConfig::default()
    };
    Ok(bind_udp(SocketAddr::from(([127, 0, 0, 1], 0)), &cfg, true)?)
}

/// Worker cores of each node: `--worker-cores` (taken in turn, core node first), or by default
/// cores `0..` one per worker, leaving the last core to the load threads where the host has no
/// spare one for each worker (on two cores, both nodes of a `--relay` bed share core 0).
fn node_cores(args: &BenchArgs, nodes: usize, host_cores: usize) -> Vec<Vec<usize>> {
    let total = nodes * args.workers;
    let list: Vec<usize> = match &args.worker_cores {
        Some(list) if !list.is_empty() => list.clone(),
        _ if nodes == 1 => (0..total).map(|i| i % host_cores).collect(),
        _ => {
            let usable = if host_cores > total {
                host_cores
            } else {
                (host_cores - 1).max(1)
            };
            (0..total).map(|i| i % usable).collect()
        }
    };
    (0..nodes)
        .map(|n| {
            (0..args.workers)
                .map(|w| list[(n * args.workers + w) % list.len()])
                .collect()
        })
        .collect()
}

/// Fresh keys for both directions of a relay leg: the core's end and the edge's end.
fn leg_keys(
    rng: &mut impl RngCore,
    profile: Option<SrtpProfile>,
) -> anyhow::Result<(Option<TransportKeys>, Option<TransportKeys>)> {
    let Some(p) = profile else {
        return Ok((None, None));
    };
    let (down, up) = (random_keys(rng, p)?, random_keys(rng, p)?);
    Ok((
        Some(TransportKeys {
            inbound: up.clone(),
            outbound: down.clone(),
        }),
        Some(TransportKeys {
            inbound: down,
            outbound: up,
        }),
    ))
}

/// Adds one end of a relay leg of `room` on worker `worker` of `node`: it sends the room's
/// speakers to `remote` on `slots` and takes what comes back on `inbound` (the other end's slots).
fn add_leg_end(
    node: &Dataplane,
    (worker, room, id): (usize, u64, u64),
    remote: SocketAddr,
    keys: Option<TransportKeys>,
    slots: &[u32],
    inbound: &[u32],
) -> anyhow::Result<()> {
    let level = Some(super::generator::AUDIO_LEVEL_EXT);
    node.add_transport(
        worker,
        TransportConfig {
            id,
            remote: Some(remote),
            keys,
            latch_ssrcs: Vec::new(),
            audio_level_ext: level,
            ice: None,
            rtcp_remote: None,
        },
    )?;
    node.join(
        worker,
        Membership {
            room,
            transport: id,
            slot_ssrcs: slots.to_vec(),
            // Unlike `sluice serve`'s legs, which write a fresh extension block holding the audio
            // level alone, the bench's pass the publisher's block through: the send time the
            // latency is taken from rides in it (the level the edge gates on keeps its id).
            egress: EgressFormat {
                payload_type: Some(111),
                mid_ext: None,
                audio_level_ext: None,
            },
            relay_leg: Some(RelayLeg {
                inbound_ssrcs: inbound.to_vec(),
            }),
            ..Default::default()
        },
    )?;
    Ok(())
}

impl TestBed {
    /// Starts the dataplane (two, with `--relay`) and creates every room, member, leg and socket.
    pub fn build(args: &BenchArgs) -> anyhow::Result<Self> {
        // One socket per member: as many open files as the host allows.
        if let Err(e) = raise_open_file_limit() {
            tracing::debug!(error = %e, "could not raise the open-file limit");
        }
        let host_cores = core_affinity::get_core_ids()
            .map(|v| v.len())
            .unwrap_or(1)
            .max(1);
        let node_count = if args.relay { 2 } else { 1 };
        let cores = node_cores(args, node_count, host_cores);
        let load_cores = args.load_cores.clone().unwrap_or_else(|| {
            let free: Vec<usize> = (0..host_cores)
                .filter(|c| !cores.iter().flatten().any(|w| w == c))
                .collect();
            if free.is_empty() {
                vec![host_cores - 1]
            } else {
                free
            }
        });
        let mut nodes = Vec::new();
        for cores in cores {
            nodes.push(
                Dataplane::start(DataplaneConfig {
                    workers: args.workers,
                    cores,
                    base_port: 0,
                    backend: args.backend,
                    srtp_engine: args.srtp_engine,
                    io: IoConfig::default(),
                    ..DataplaneConfig::default()
                })
                .context("starting the dataplane")?,
            );
        }
        let (publishing, subscribing) = (&nodes[0], &nodes[nodes.len() - 1]);

        let profile = match args.srtp {
            SrtpArg::Profile(p) => Some(p),
            SrtpArg::None => None,
        };
        let mut rng = rand::rng();
        let mut next_id = 1u64;
        let mut publishers = Vec::new();
        let mut subscribers = Vec::new();
        let members_per_room = args.publishers + args.subscribers;
        for room in 0..args.rooms as u64 {
            if args.relay {
                let worker = room as usize % args.workers;
                let (core_keys, edge_keys) = leg_keys(&mut rng, profile)?;
                let core_slots: Vec<u32> = (0..args.slots).map(|_| rng.random()).collect();
                let edge_slots: Vec<u32> = (0..args.slots).map(|_| rng.random()).collect();
                let (core_addr, edge_addr) = (
                    publishing.worker_addr(worker).context("worker address")?,
                    subscribing.worker_addr(worker).context("worker address")?,
                );
                add_leg_end(
                    publishing,
                    (worker, room, next_id),
                    edge_addr,
                    core_keys,
                    &core_slots,
                    &edge_slots,
                )?;
                add_leg_end(
                    subscribing,
                    (worker, room, next_id + 1),
                    core_addr,
                    edge_keys,
                    &edge_slots,
                    &core_slots,
                )?;
                next_id += 2;
            }
            for m in 0..members_per_room {
                let worker = if args.spread {
                    (room as usize + m) % args.workers
                } else {
                    room as usize % args.workers
                };
                let is_pub = m < args.publishers;
                let dataplane = if is_pub { publishing } else { subscribing };
                let server = dataplane.worker_addr(worker).context("worker address")?;
                let socket = loopback_socket(if is_pub { 1 << 20 } else { 4 << 20 })?;
                let local = socket.local_addr()?;
                let keys = match profile {
                    Some(p) => Some(TransportKeys {
                        inbound: random_keys(&mut rng, p)?,
                        outbound: random_keys(&mut rng, p)?,
                    }),
                    None => None,
                };
                let id = next_id;
                next_id += 1;
                dataplane.add_transport(
                    worker,
                    TransportConfig {
                        id,
                        remote: Some(local),
                        keys: keys.clone(),
                        latch_ssrcs: Vec::new(),
                        audio_level_ext: Some(super::generator::AUDIO_LEVEL_EXT),
                        ice: None,
                        rtcp_remote: None,
                    },
                )?;
                if is_pub {
                    let ssrc: u32 = rng.random();
                    dataplane.join(
                        worker,
                        Membership {
                            room,
                            transport: id,
                            publish_ssrc: Some(ssrc),
                            slot_ssrcs: Vec::new(),
                            ..Default::default()
                        },
                    )?;
                    publishers.push(Publisher::new(
                        socket,
                        server,
                        ssrc,
                        keys.map(|k| k.inbound),
                        &mut rng,
                    )?);
                } else {
                    let slots: Vec<u32> = (0..args.slots).map(|_| rng.random()).collect();
                    dataplane.join(
                        worker,
                        Membership {
                            room,
                            transport: id,
                            publish_ssrc: None,
                            slot_ssrcs: slots,
                            ..Default::default()
                        },
                    )?;
                    subscribers.push(Subscriber::new(socket, keys.map(|k| k.outbound))?);
                }
            }
        }
        for dataplane in &nodes {
            dataplane
                .sync()
                .context("waiting for the workers to apply the topology")?;
        }

        let sink_threads = args.sink_threads.clamp(1, subscribers.len().max(1));
        let mut groups: Vec<Vec<Subscriber>> = (0..sink_threads).map(|_| Vec::new()).collect();
        for (i, s) in subscribers.into_iter().enumerate() {
            groups[i % sink_threads].push(s);
        }
        let sinks = groups
            .into_iter()
            .map(|g| Arc::new(Mutex::new(Sink::new(g, args.size))))
            .collect();
        Ok(Self {
            backend: nodes[0].backend(),
            nodes,
            generator: Arc::new(Mutex::new(Generator::new(publishers, args.size))),
            sinks,
            load_cores,
        })
    }

    /// Number of dataplane workers (per node).
    pub fn workers(&self) -> usize {
        self.nodes.first().map_or(0, Dataplane::workers)
    }

    /// Counters and CPU now.
    pub fn measure(&self) -> Measurement {
        let cpu_of = |dp: &Dataplane| -> Duration {
            (0..dp.workers())
                .filter_map(|i| dp.worker_cpu_time(i))
                .sum()
        };
        let mut stats = StatsSnapshot::default();
        for dp in &self.nodes {
            stats = stats.merged(&dp.total_stats());
        }
        let (first, last) = (&self.nodes[0], &self.nodes[self.nodes.len() - 1]);
        Measurement {
            stats,
            ingress: first.total_stats().packets_in,
            egress: last.total_stats().packets_out,
            cpu: self.nodes.iter().map(cpu_of).sum(),
            leg: (self.nodes.len() > 1).then(|| LegMeasurement {
                packets: first.total_stats().packets_out,
                core_cpu: cpu_of(first),
                edge_cpu: cpu_of(last),
            }),
        }
    }

    fn core_for(&self, i: usize) -> usize {
        self.load_cores[i % self.load_cores.len()]
    }

    /// Starts the sink threads; they run until `stop`.
    pub fn start_sinks(
        &self,
        stop: &Arc<AtomicBool>,
    ) -> anyhow::Result<Vec<JoinHandle<anyhow::Result<SinkTotals>>>> {
        let mut handles = Vec::new();
        for (i, sink) in self.sinks.iter().enumerate() {
            let (sink, stop, core) = (sink.clone(), stop.clone(), self.core_for(i + 1));
            handles.push(
                std::thread::Builder::new()
                    .name(format!("bench-sink-{i}"))
                    .spawn(move || {
                        core_affinity::set_for_current(core_affinity::CoreId { id: core });
                        let mut sink = sink
                            .lock()
                            .map_err(|_| anyhow::anyhow!("sink state poisoned"))?;
                        sink.run(&stop)
                    })?,
            );
        }
        Ok(handles)
    }

    /// Starts the generator: `rate` packets per second per publisher for `duration` (or until `stop`).
    pub fn start_generator(
        &self,
        rate: u32,
        duration: Duration,
        stop: &Arc<AtomicBool>,
    ) -> anyhow::Result<JoinHandle<anyhow::Result<GeneratorTotals>>> {
        let (generator, stop, core) = (self.generator.clone(), stop.clone(), self.core_for(0));
        Ok(std::thread::Builder::new()
            .name("bench-generator".into())
            .spawn(move || {
                core_affinity::set_for_current(core_affinity::CoreId { id: core });
                let mut g = generator
                    .lock()
                    .map_err(|_| anyhow::anyhow!("generator state poisoned"))?;
                g.run(rate, Instant::now() + duration, &stop)
            })?)
    }

    /// Stops the dataplane (both, with `--relay`).
    pub fn shutdown(&mut self) {
        for dp in self.nodes.drain(..) {
            dp.shutdown();
        }
    }
}
