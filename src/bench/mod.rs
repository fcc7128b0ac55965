//! `sluice bench`: measures the dataplane the way users will run it.
//!
//! It starts the dataplane in-process, creates rooms of plain SRTP transports (publishers and
//! subscribers, each with its own loopback socket), and drives them from load threads pinned to cores
//! the workers do not use: a generator that encrypts each tick's packets just before one batch of sends,
//! and sinks that read every datagram, take one-way latency from the kernel receive timestamp and a send
//! timestamp carried in a header extension, and decrypt a sample with webrtc-srtp (the independent
//! oracle) to verify it. `--max` searches for the highest load sustained within the loss budget.

mod generator;
mod report;
mod setup;
mod sink;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use sluice_dataplane::io::BackendChoice;
use sluice_dataplane::srtp::{SrtpEngine, SrtpProfile};

pub use report::Report;
use report::SecondHop;

/// SRTP choice on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SrtpArg {
    /// A real SRTP profile.
    Profile(SrtpProfile),
    /// Plain RTP.
    None,
}

impl std::str::FromStr for SrtpArg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.eq_ignore_ascii_case("none") {
            return Ok(SrtpArg::None);
        }
        s.parse::<SrtpProfile>().map(SrtpArg::Profile).map_err(|_| {
            format!("unknown SRTP profile {s:?}: use aes128gcm, aes256gcm, aescm, aescm32 or none")
        })
    }
}

impl std::fmt::Display for SrtpArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SrtpArg::Profile(p) => f.write_str(p.short_name()),
            SrtpArg::None => f.write_str("none"),
        }
    }
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("bad duration {s:?}"))?;
    let secs = match unit {
        "s" => v,
        "ms" => v / 1000.0,
        "m" | "min" => v * 60.0,
        _ => return Err(format!("bad duration unit in {s:?}: use ms, s or m")),
    };
    if !(secs.is_finite() && secs > 0.0) {
        return Err(format!("duration must be positive: {s:?}"));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn parse_cores(s: &str) -> Result<Vec<usize>, String> {
    s.split(',')
        .map(|c| {
            c.trim()
                .parse::<usize>()
                .map_err(|_| format!("bad core list {s:?}"))
        })
        .collect()
}

/// Options of `sluice bench`.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// Rooms.
    #[arg(long, default_value_t = 1)]
    pub rooms: usize,
    /// Publishers per room (`--speakers`).
    #[arg(long, alias = "speakers", default_value_t = 1)]
    pub publishers: usize,
    /// Subscribers per room (`--listeners`).
    #[arg(long, alias = "listeners", default_value_t = 50)]
    pub subscribers: usize,
    /// Packets per second per publisher (Opus sends 50).
    #[arg(long, default_value_t = 50)]
    pub rate: u32,
    /// Payload bytes per packet.
    #[arg(long, default_value_t = 160)]
    pub size: usize,
    /// Measurement time (e.g. 5s, 500ms).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub duration: Duration,
    /// SRTP profile: aes128gcm, aes256gcm, aescm, aescm32, or none.
    #[arg(long, default_value = "aes128gcm")]
    pub srtp: SrtpArg,
    /// SRTP implementation in the dataplane: inplace or webrtc-srtp.
    #[arg(long, default_value = "inplace")]
    pub srtp_engine: SrtpEngine,
    /// I/O backend: auto, uring or mmsg.
    #[arg(long, default_value = "auto")]
    pub backend: BackendChoice,
    /// Dataplane workers.
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
    /// Cores for the workers (comma-separated); default 0..workers.
    #[arg(long, value_parser = parse_cores)]
    pub worker_cores: Option<Vec<usize>>,
    /// Cores for the generator and sinks; default: the cores the workers do not use.
    #[arg(long, value_parser = parse_cores)]
    pub load_cores: Option<Vec<usize>>,
    /// Sink threads reading the subscribers' sockets.
    #[arg(long, default_value_t = 1)]
    pub sink_threads: usize,
    /// Speaker slots per subscriber (at least --publishers).
    #[arg(long, default_value_t = 8)]
    pub slots: usize,
    /// Spread each room's members over all workers (exercises the cross-worker rings).
    #[arg(long)]
    pub spread: bool,
    /// The relay shape of a cascade (docs/cascade.md): publishers on a core node, subscribers on an
    /// edge node (two dataplanes of --workers each), one relay leg per room between them. Reports the
    /// leg's packets/s and each node's CPU (the core's is the second hop's cost), then runs the
    /// same load on one node and reports the latency the second hop adds.
    #[arg(long)]
    pub relay: bool,
    /// Search for the highest rate sustained with loss within --max-loss.
    #[arg(long)]
    pub max: bool,
    /// Search for the most subscribers per room sustained at --rate with loss within --max-loss,
    /// starting from --subscribers (each trial builds the rooms afresh).
    #[arg(long, alias = "max-listeners", conflicts_with = "max")]
    pub max_subscribers: bool,
    /// Loss budget for --max and --max-subscribers.
    #[arg(long, default_value_t = 0.001)]
    pub max_loss: f64,
    /// For --max: a trial whose p99 one-way latency exceeds this (milliseconds) is not sustained
    /// (the dataplane is queueing, even if nothing is lost yet).
    #[arg(long, default_value_t = 20.0)]
    pub max_p99_ms: f64,
    /// Length of each --max trial.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub trial: Duration,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Runs `sluice bench`.
pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    validate(&args)?;
    let mut report = if args.max_subscribers {
        search_max_subscribers(&args)?
    } else {
        let mut bed = setup::TestBed::build(&args).context("setting up the bench")?;
        let report = if args.max {
            search_max(&args, &mut bed)
        } else {
            run_trial(&args, &mut bed, args.rate, args.duration, !args.json)
        };
        bed.shutdown();
        report?
    };
    if args.relay {
        report.second_hop = SecondHop::compare(&report, &one_hop(&args, &report)?);
    }
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        report.print_table();
    }
    Ok(())
}

fn validate(args: &BenchArgs) -> anyhow::Result<()> {
    if args.rooms == 0 || args.subscribers == 0 || args.publishers == 0 {
        bail!("--rooms, --publishers and --subscribers must be at least 1");
    }
    if args.publishers > args.slots {
        bail!("--publishers ({}) exceeds --slots ({}): subscribers would not hear everyone, and loss could not be counted", args.publishers, args.slots);
    }
    if args.slots > 15 {
        bail!("--slots must be at most 15");
    }
    if args.size < 8 || args.size > 1200 {
        bail!("--size must be 8..=1200 bytes");
    }
    if args.rate == 0 {
        bail!("--rate must be at least 1");
    }
    if !(0.0..1.0).contains(&args.max_loss) {
        bail!("--max-loss must be in [0, 1)");
    }
    Ok(())
}

/// The load of `two_hops` (a `--relay` result) on one node: same rooms, members, rate and length.
fn one_hop(args: &BenchArgs, two_hops: &Report) -> anyhow::Result<Report> {
    let same = BenchArgs {
        relay: false,
        subscribers: two_hops.subscribers,
        ..args.clone()
    };
    if !args.json {
        eprintln!("  the same load on one node, for comparison");
    }
    let mut bed = setup::TestBed::build(&same).context("setting up the one-hop bench")?;
    let report = run_trial(&same, &mut bed, two_hops.rate, args.duration, !args.json);
    bed.shutdown();
    report
}

/// Finds the highest per-publisher rate whose trial loses at most `max_loss`: doubling, then bisection.
fn search_max(args: &BenchArgs, bed: &mut setup::TestBed) -> anyhow::Result<Report> {
    let mut lo: Option<Report> = None;
    let mut hi: Option<u32> = None;
    let mut rate = args.rate.max(1);
    let progress = !args.json;
    for _ in 0..24 {
        let r = run_trial(args, bed, rate, args.trial, false)?;
        if progress {
            eprintln!(
                "  rate {:>8} pps/publisher: egress {:>10.0} pps, loss {:.5}, p99 {:>8.0} us, ingress {:.0} pps",
                rate, r.egress_pps, r.loss_ratio, r.latency_us.p99, r.ingress_pps
            );
        }
        let ok = sustained(args, &r);
        if ok {
            lo = Some(r);
        } else {
            hi = Some(rate);
        }
        match next_probe(
            u64::from(rate),
            lo.as_ref().map_or(0, |r| u64::from(r.rate)),
            hi.map(u64::from),
        ) {
            Some(next) if next <= 10_000_000 => rate = next as u32,
            _ => break,
        }
        // Let queues drain and slots settle between trials.
        std::thread::sleep(Duration::from_millis(300));
    }
    let Some(best) = lo else {
        bail!(
            "even {} pps per publisher lost more than {}",
            args.rate,
            args.max_loss
        );
    };
    // Confirm the best rate over the full duration.
    let confirmed = run_trial(args, bed, best.rate, args.duration, progress)?;
    Ok(if sustained(args, &confirmed) {
        confirmed
    } else {
        best
    })
}

/// Finds the most subscribers per room whose trial at `--rate` is sustained: doubling from
/// `--subscribers`, then bisection; each trial on a test bed of its own.
fn search_max_subscribers(args: &BenchArgs) -> anyhow::Result<Report> {
    let mut lo: Option<Report> = None;
    let mut hi: Option<usize> = None;
    let mut n = args.subscribers.max(1);
    for _ in 0..24 {
        let trial = BenchArgs {
            subscribers: n,
            ..args.clone()
        };
        let mut bed = setup::TestBed::build(&trial).context("setting up the bench")?;
        let r = run_trial(&trial, &mut bed, args.rate, args.trial, false);
        bed.shutdown();
        let r = r?;
        if !args.json {
            eprintln!(
                "  {:>6} subscribers per room: egress {:>10.0} pps, loss {:.5}, p99 {:>8.0} us",
                n, r.egress_pps, r.loss_ratio, r.latency_us.p99
            );
        }
        if sustained(&trial, &r) {
            lo = Some(r);
        } else {
            hi = Some(n);
        }
        match next_probe(
            n as u64,
            lo.as_ref().map_or(0, |r| r.subscribers as u64),
            hi.map(|h| h as u64),
        ) {
            Some(next) if next <= 200_000 => n = next as usize,
            _ => break,
        }
    }
    let Some(best) = lo else {
        bail!(
            "even {} subscribers per room lost more than {}",
            args.subscribers,
            args.max_loss
        );
    };
    // Confirm over the full duration.
    let confirm = BenchArgs {
        subscribers: best.subscribers,
        ..args.clone()
    };
    let mut bed = setup::TestBed::build(&confirm).context("setting up the bench")?;
    let confirmed = run_trial(&confirm, &mut bed, args.rate, args.duration, !args.json);
    bed.shutdown();
    let confirmed = confirmed?;
    Ok(if sustained(&confirm, &confirmed) {
        confirmed
    } else {
        best
    })
}

/// The next value a `--max` search tries after `current`, with `good` the best sustained so far
/// and `bad` the lowest that was not: double until something fails, then bisect; `None` once the
/// bracket is within 2 % (or nothing is left to try).
fn next_probe(current: u64, good: u64, bad: Option<u64>) -> Option<u64> {
    let next = match bad {
        None => current.saturating_mul(2),
        Some(h) if h <= good + good / 50 + 1 => return None,
        Some(h) => (good + h) / 2,
    };
    (next > 0).then_some(next)
}

/// A trial is sustained when loss stays within budget, the dataplane takes in what was offered
/// (no backlog building up in its socket buffer), and latency stays bounded.
fn sustained(args: &BenchArgs, r: &Report) -> bool {
    let offered = r.rate as f64 * (args.publishers * args.rooms) as f64;
    r.loss_ratio <= args.max_loss
        && r.ingress_pps >= 0.97 * offered
        && r.latency_us.p99 <= args.max_p99_ms * 1000.0
}

fn run_trial(
    args: &BenchArgs,
    bed: &mut setup::TestBed,
    rate: u32,
    duration: Duration,
    progress: bool,
) -> anyhow::Result<Report> {
    let stop_gen = Arc::new(AtomicBool::new(false));
    let stop_sink = Arc::new(AtomicBool::new(false));
    let before = bed.measure();
    let sinks = bed.start_sinks(&stop_sink)?;
    let generator = bed.start_generator(rate, duration, &stop_gen)?;
    let started = Instant::now();
    let bar = progress.then(|| report::progress_bar(duration));
    while started.elapsed() < duration {
        std::thread::sleep(Duration::from_millis(200));
        if let Some(bar) = &bar {
            let now = bed.measure();
            let secs = started.elapsed().as_secs_f64().max(1e-3);
            bar.set_position(started.elapsed().as_millis() as u64);
            bar.set_message(format!(
                "egress {:.0} pps, ingress {:.0} pps",
                (now.egress - before.egress) as f64 / secs,
                (now.ingress - before.ingress) as f64 / secs,
            ));
        }
    }
    stop_gen.store(true, Ordering::SeqCst);
    let gen = generator
        .join()
        .map_err(|_| anyhow::anyhow!("generator thread panicked"))??;
    let elapsed = started.elapsed();
    let after = bed.measure();
    // Packets in flight: give the dataplane and the sinks time to finish them.
    std::thread::sleep(Duration::from_millis(300));
    stop_sink.store(true, Ordering::SeqCst);
    let mut sink_totals = sink::SinkTotals::default();
    for s in sinks {
        let t = s
            .join()
            .map_err(|_| anyhow::anyhow!("sink thread panicked"))??;
        sink_totals.merge(t);
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    Ok(Report::new(
        args,
        bed,
        rate,
        elapsed,
        &before,
        &after,
        &gen,
        &sink_totals,
    ))
}

#[cfg(test)]
mod tests {
    use super::next_probe;

    #[test]
    fn a_search_doubles_until_a_trial_fails_then_bisects_to_within_two_percent() {
        assert_eq!(next_probe(50, 50, None), Some(100));
        assert_eq!(next_probe(800, 400, Some(800)), Some(600));
        assert_eq!(next_probe(600, 600, Some(800)), Some(700));
        assert_eq!(next_probe(444, 444, Some(452)), None, "within 2 %");
        assert_eq!(
            next_probe(1, 0, Some(1)),
            None,
            "nothing sustained, nothing left"
        );
    }
}
