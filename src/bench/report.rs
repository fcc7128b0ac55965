//! The bench's result: one JSON object (`--json`) or a table, plus the live progress line.

use std::time::Duration;

use serde::Serialize;
use sluice_dataplane::stats::DropReason;

use super::generator::GeneratorTotals;
use super::setup::{Measurement, TestBed};
use super::sink::SinkTotals;
use super::BenchArgs;

pub use sluice_dataplane::io::thread_cpu_time;

/// A progress bar on stderr (hidden when stderr is not a terminal).
pub fn progress_bar(duration: Duration) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(duration.as_millis() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} [{bar:30}] {elapsed_precise} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest seen.
    pub max: f64,
}

/// One bench result.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Datagrams the dataplane sent per second.
    pub egress_pps: f64,
    /// Datagrams the dataplane received per second.
    pub ingress_pps: f64,
    /// 1 - received / expected, over all subscribers.
    pub loss_ratio: f64,
    /// One-way latency generator → SFU → subscriber socket.
    pub latency_us: Latency,
    /// CPU seconds the workers used during the measurement.
    pub dataplane_cpu_s: f64,
    /// Worker CPU per egress datagram, nanoseconds.
    pub ns_per_egress_packet: f64,
    /// I/O backend.
    pub backend: String,
    /// SRTP profile (or none).
    pub srtp: String,
    /// SRTP implementation.
    pub srtp_engine: String,
    /// Worker count.
    pub workers: usize,
    /// Rooms.
    pub rooms: usize,
    /// Publishers per room.
    pub publishers: usize,
    /// Subscribers per room.
    pub subscribers: usize,
    /// Offered packets per second per publisher.
    pub rate: u32,
    /// Payload bytes.
    pub size: usize,
    /// Seconds measured.
    pub duration_s: f64,
    /// Datagrams the subscribers should have received.
    pub expected: u64,
    /// Datagrams they received.
    pub received: u64,
    /// Sampled datagrams decrypted by webrtc-srtp and checked.
    pub verified: u64,
    /// Sampled datagrams that failed the check.
    pub verify_failures: u64,
    /// CPU seconds of the generator thread.
    pub generator_cpu_s: f64,
    /// CPU seconds of the sink threads.
    pub sink_cpu_s: f64,
    /// Decrypted packets handed between workers (rooms spread over workers).
    pub relayed: u64,
    /// Dataplane drops by reason during the measurement.
    pub drops: serde_json::Map<String, serde_json::Value>,
    /// The relay leg and each node's share, with `--relay`.
    pub relay: Option<RelayFigures>,
    /// What the second hop adds over the same load on one node, with `--relay`.
    pub second_hop: Option<SecondHop>,
}

/// The relay leg of a `--relay` trial.
#[derive(Debug, Clone, Serialize)]
pub struct RelayFigures {
    /// Datagrams per second the core sent the edge over the legs (its only egress).
    pub leg_pps: f64,
    /// CPU seconds of the core's workers.
    pub core_cpu_s: f64,
    /// CPU seconds of the edge's workers.
    pub edge_cpu_s: f64,
    /// Core CPU per datagram it sent on a leg (each publisher packet in, one copy out per edge):
    /// what the second hop costs per relayed packet, since the edge does what a single node would.
    pub core_ns_per_leg_packet: f64,
    /// The core's CPU as a share of one core (its workers' CPU over the trial's wall time).
    pub core_share: f64,
    /// Edge CPU per datagram it sent its subscribers (the leg's packets in, the fan-out).
    pub edge_ns_per_egress_packet: f64,
}

/// A `--relay` trial against the same load on one node, measured in the same run.
#[derive(Debug, Clone, Serialize)]
pub struct SecondHop {
    /// One-way latency generator → SFU → subscriber on one node.
    pub one_hop_latency_us: Latency,
    /// Loss on one node.
    pub one_hop_loss_ratio: f64,
    /// Dataplane CPU per egress datagram on one node, nanoseconds.
    pub one_hop_ns_per_egress_packet: f64,
    /// Added median one-way latency of the second hop, microseconds.
    pub added_p50_us: f64,
    /// Added 99th-percentile one-way latency of the second hop, microseconds.
    pub added_p99_us: f64,
}

impl SecondHop {
    /// Compares `two_hops` (a `--relay` trial) with `one_hop` (the same load on one node).
    pub fn compare(two_hops: &Report, one_hop: &Report) -> Option<Self> {
        two_hops.relay.as_ref()?;
        Some(SecondHop {
            one_hop_latency_us: one_hop.latency_us.clone(),
            one_hop_loss_ratio: one_hop.loss_ratio,
            one_hop_ns_per_egress_packet: one_hop.ns_per_egress_packet,
            added_p50_us: two_hops.latency_us.p50 - one_hop.latency_us.p50,
            added_p99_us: two_hops.latency_us.p99 - one_hop.latency_us.p99,
        })
    }
}

fn ns_per(cpu_s: f64, packets: u64) -> f64 {
    if packets == 0 {
        0.0
    } else {
        cpu_s * 1e9 / packets as f64
    }
}

impl Report {
    /// Builds the report of one trial.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        args: &BenchArgs,
        bed: &TestBed,
        rate: u32,
        elapsed: Duration,
        before: &Measurement,
        after: &Measurement,
        gen: &GeneratorTotals,
        sink: &SinkTotals,
    ) -> Self {
        let secs = elapsed.as_secs_f64().max(1e-9);
        let egress = after.egress - before.egress;
        let ingress = after.ingress - before.ingress;
        let cpu = after.cpu.saturating_sub(before.cpu).as_secs_f64();
        let expected = gen.sent * args.subscribers as u64;
        let loss = if expected == 0 {
            0.0
        } else {
            (1.0 - sink.received as f64 / expected as f64).max(0.0)
        };
        let q = |p: f64| sink.latency_ns.value_at_quantile(p) as f64 / 1000.0;
        let mut drops = serde_json::Map::new();
        for r in DropReason::ALL {
            let d = after.stats.drops(r) - before.stats.drops(r);
            drops.insert(r.name().to_string(), d.into());
        }
        Report {
            egress_pps: egress as f64 / secs,
            ingress_pps: ingress as f64 / secs,
            loss_ratio: loss,
            latency_us: Latency {
                p50: q(0.5),
                p99: q(0.99),
                p999: q(0.999),
                max: sink.latency_ns.max() as f64 / 1000.0,
            },
            dataplane_cpu_s: cpu,
            ns_per_egress_packet: ns_per(cpu, egress),
            backend: bed.backend.to_string(),
            srtp: args.srtp.to_string(),
            srtp_engine: match args.srtp_engine {
                sluice_dataplane::srtp::SrtpEngine::InPlace => "inplace".into(),
                sluice_dataplane::srtp::SrtpEngine::WebrtcSrtp => "webrtc-srtp".into(),
            },
            workers: bed.workers(),
            rooms: args.rooms,
            publishers: args.publishers,
            subscribers: args.subscribers,
            rate,
            size: args.size,
            duration_s: secs,
            expected,
            received: sink.received,
            verified: sink.verified,
            verify_failures: sink.verify_failures,
            generator_cpu_s: gen.cpu.as_secs_f64(),
            sink_cpu_s: sink.cpu.as_secs_f64(),
            relayed: after.stats.relayed_out - before.stats.relayed_out,
            drops,
            relay: match (&before.leg, &after.leg) {
                (Some(b), Some(a)) => {
                    let packets = a.packets - b.packets;
                    let core = a.core_cpu.saturating_sub(b.core_cpu).as_secs_f64();
                    let edge = a.edge_cpu.saturating_sub(b.edge_cpu).as_secs_f64();
                    Some(RelayFigures {
                        leg_pps: packets as f64 / secs,
                        core_cpu_s: core,
                        edge_cpu_s: edge,
                        core_ns_per_leg_packet: ns_per(core, packets),
                        core_share: core / secs,
                        edge_ns_per_egress_packet: ns_per(edge, egress),
                    })
                }
                _ => None,
            },
            second_hop: None,
        }
    }

    /// Prints the human-readable table.
    pub fn print_table(&self) {
        let mut rows: Vec<(&str, String)> = vec![
            (
                "backend / srtp",
                format!("{} / {} ({})", self.backend, self.srtp, self.srtp_engine),
            ),
            ("workers", self.workers.to_string()),
            (
                "rooms x (pub + sub)",
                format!(
                    "{} x ({} + {})",
                    self.rooms, self.publishers, self.subscribers
                ),
            ),
            (
                "rate per publisher",
                format!("{} pps, {} B payload", self.rate, self.size),
            ),
            ("ingress", format!("{:.0} pps", self.ingress_pps)),
            ("egress", format!("{:.0} pps", self.egress_pps)),
            (
                "loss",
                format!(
                    "{:.4} % ({} of {})",
                    self.loss_ratio * 100.0,
                    self.expected.saturating_sub(self.received),
                    self.expected
                ),
            ),
            (
                "latency p50 / p99 / p99.9",
                format!(
                    "{:.0} / {:.0} / {:.0} us",
                    self.latency_us.p50, self.latency_us.p99, self.latency_us.p999
                ),
            ),
            (
                "dataplane CPU",
                format!(
                    "{:.2} s ({:.0} ns per egress packet)",
                    self.dataplane_cpu_s, self.ns_per_egress_packet
                ),
            ),
            (
                "load CPU (generator + sinks)",
                format!("{:.2} s + {:.2} s", self.generator_cpu_s, self.sink_cpu_s),
            ),
            (
                "verified by webrtc-srtp",
                format!("{} ok, {} failed", self.verified, self.verify_failures),
            ),
        ];
        if let Some(r) = &self.relay {
            rows.push(("relay leg (core → edge)", format!("{:.0} pps", r.leg_pps)));
            rows.push((
                "core / edge CPU",
                format!(
                    "{:.2} s ({:.0} ns per leg packet, {:.1} % of a core) / {:.2} s ({:.0} ns per egress packet)",
                    r.core_cpu_s,
                    r.core_ns_per_leg_packet,
                    r.core_share * 100.0,
                    r.edge_cpu_s,
                    r.edge_ns_per_egress_packet
                ),
            ));
        }
        if let Some(h) = &self.second_hop {
            rows.push((
                "one hop: p50 / p99, loss",
                format!(
                    "{:.0} / {:.0} us, {:.4} %",
                    h.one_hop_latency_us.p50,
                    h.one_hop_latency_us.p99,
                    h.one_hop_loss_ratio * 100.0
                ),
            ));
            rows.push((
                "second hop adds p50 / p99",
                format!("{:.0} / {:.0} us", h.added_p50_us, h.added_p99_us),
            ));
        }
        for (k, v) in rows {
            println!("{k:<30} {v}");
        }
        let drops: Vec<String> = self
            .drops
            .iter()
            .filter(|(_, v)| v.as_u64().unwrap_or(0) > 0)
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        if !drops.is_empty() {
            println!("{:<30} {}", "dataplane drops", drops.join(" "));
        }
    }
}
