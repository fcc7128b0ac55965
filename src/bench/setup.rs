//! The bench's test bed: the in-process dataplane, one loopback socket and one plain transport per
//! publisher and subscriber, random SRTP keys, and the load threads' state (kept across `--max` trials
//! so SRTP sequence numbers and replay windows stay continuous).

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
use sluice_dataplane::topology::{Membership, TransportConfig, TransportKeys};
use sluice_dataplane::{Dataplane, DataplaneConfig};

use super::generator::{Generator, GeneratorTotals, Publisher};
use super::sink::{Sink, SinkTotals, Subscriber};
use super::{BenchArgs, SrtpArg};

/// Dataplane counters and CPU at one instant.
#[derive(Debug, Clone, Copy)]
pub struct Measurement {
    /// Counters summed over workers.
    pub stats: StatsSnapshot,
    /// CPU time summed over workers.
    pub cpu: Duration,
}

/// Everything a bench run needs.
pub struct TestBed {
    dataplane: Option<Dataplane>,
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

impl TestBed {
    /// Starts the dataplane and creates every room, member and socket.
    pub fn build(args: &BenchArgs) -> anyhow::Result<Self> {
        // One socket per member: as many open files as the host allows.
        if let Err(e) = raise_open_file_limit() {
            tracing::debug!(error = %e, "could not raise the open-file limit");
        }
        let host_cores = core_affinity::get_core_ids()
            .map(|v| v.len())
            .unwrap_or(1)
            .max(1);
        let worker_cores = args
            .worker_cores
            .clone()
            .unwrap_or_else(|| (0..args.workers).map(|i| i % host_cores).collect());
        let load_cores = args.load_cores.clone().unwrap_or_else(|| {
            let free: Vec<usize> = (0..host_cores)
                .filter(|c| !worker_cores.contains(c))
                .collect();
            if free.is_empty() {
                vec![host_cores - 1]
            } else {
                free
            }
        });
        let dataplane = Dataplane::start(DataplaneConfig {
            workers: args.workers,
            cores: worker_cores,
            base_port: 0,
            backend: args.backend,
            srtp_engine: args.srtp_engine,
            io: IoConfig::default(),
            ..DataplaneConfig::default()
        })
        .context("starting the dataplane")?;

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
            for m in 0..members_per_room {
                let worker = if args.spread {
                    (room as usize + m) % args.workers
                } else {
                    room as usize % args.workers
                };
                let server = dataplane.worker_addr(worker).context("worker address")?;
                let is_pub = m < args.publishers;
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
        dataplane
            .sync()
            .context("waiting for the workers to apply the topology")?;

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
            backend: dataplane.backend(),
            dataplane: Some(dataplane),
            generator: Arc::new(Mutex::new(Generator::new(publishers, args.size))),
            sinks,
            load_cores,
        })
    }

    fn dataplane(&self) -> &Dataplane {
        self.dataplane
            .as_ref()
            .expect("dataplane runs until shutdown")
    }

    /// Number of dataplane workers.
    pub fn workers(&self) -> usize {
        self.dataplane().workers()
    }

    /// Counters and CPU now.
    pub fn measure(&self) -> Measurement {
        let dp = self.dataplane();
        let cpu = (0..dp.workers())
            .filter_map(|i| dp.worker_cpu_time(i))
            .sum();
        Measurement {
            stats: dp.total_stats(),
            cpu,
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

    /// Stops the dataplane.
    pub fn shutdown(&mut self) {
        if let Some(dp) = self.dataplane.take() {
            dp.shutdown();
        }
    }
}
