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
        let egress = after.stats.packets_out - before.stats.packets_out;
        let ingress = after.stats.packets_in - before.stats.packets_in;
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
            ns_per_egress_packet: if egress == 0 {
                0.0
            } else {
                cpu * 1e9 / egress as f64
            },
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
        }
    }

    /// Prints the human-readable table.
    pub fn print_table(&self) {
        let rows: Vec<(&str, String)> = vec![
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
