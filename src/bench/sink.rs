//! The subscribers' side: reads every datagram from every subscriber socket in batches, takes the
//! kernel's receive timestamp ([`TimestampedBatch`]) and the send time the generator put in a header
//! extension for the one-way latency, and decrypts one packet in [`VERIFY_EVERY`] per subscriber with
//! webrtc-srtp (the independent oracle) to check the SFU re-encrypted it correctly for that
//! subscriber. Kernel timestamps make the latency independent of how often this thread polls, so it can
//! sleep between sweeps and read many datagrams per syscall.

use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use sluice_dataplane::io::timestamps::{enable_rx_timestamps, TimestampedBatch};
use sluice_dataplane::packet::RtpHeader;
use sluice_dataplane::srtp::{SrtpContext, SrtpEngine, SrtpKeys};

use super::generator::{pattern, SEND_TIME_EXT};

/// One packet in this many per subscriber is decrypted and checked.
pub const VERIFY_EVERY: u64 = 64;
const BATCH: usize = TimestampedBatch::CAPACITY;
const BUF: usize = sluice_dataplane::outbox::SLOT_SIZE;

/// One subscribing transport's socket and its oracle decryptor.
pub struct Subscriber {
    socket: UdpSocket,
    verify: Option<SrtpContext>,
    received: u64,
}

impl Subscriber {
    /// A subscriber reading `socket`; `keys` are what the SFU protects with for it (None: plain RTP).
    pub fn new(socket: UdpSocket, keys: Option<SrtpKeys>) -> anyhow::Result<Self> {
        enable_rx_timestamps(&socket)?;
        let verify = keys
            .map(|k| SrtpContext::new(SrtpEngine::WebrtcSrtp, &k))
            .transpose()?;
        Ok(Self {
            socket,
            verify,
            received: 0,
        })
    }
}

/// What the sinks saw.
#[derive(Debug, Clone)]
pub struct SinkTotals {
    /// Datagrams received (RTP; sluice's sender reports are counted in `rtcp`).
    pub received: u64,
    /// RTCP datagrams received (the sender reports on each slot stream, once a second).
    pub rtcp: u64,
    /// Sampled datagrams that decrypted and carried the expected payload.
    pub verified: u64,
    /// Sampled datagrams that did not.
    pub verify_failures: u64,
    /// One-way latency in nanoseconds.
    pub latency_ns: Histogram<u64>,
    /// CPU time of the sink threads.
    pub cpu: Duration,
}

impl Default for SinkTotals {
    fn default() -> Self {
        Self {
            received: 0,
            rtcp: 0,
            verified: 0,
            verify_failures: 0,
            latency_ns: Histogram::new_with_bounds(1, 600_000_000_000, 3)
                .expect("valid histogram bounds"),
            cpu: Duration::ZERO,
        }
    }
}

impl SinkTotals {
    /// Adds another sink's totals.
    pub fn merge(&mut self, other: SinkTotals) {
        self.received += other.received;
        self.rtcp += other.rtcp;
        self.verified += other.verified;
        self.verify_failures += other.verify_failures;
        let _ = self.latency_ns.add(&other.latency_ns);
        self.cpu += other.cpu;
    }
}

/// A group of subscribers read by one thread.
pub struct Sink {
    subs: Vec<Subscriber>,
    size: usize,
    batch: TimestampedBatch,
    scratch: Vec<u8>,
}

impl Sink {
    /// A sink for `subs`, expecting `size`-byte payloads.
    pub fn new(subs: Vec<Subscriber>, size: usize) -> Self {
        Self {
            subs,
            size,
            batch: TimestampedBatch::new(),
            scratch: vec![0u8; BUF],
        }
    }

    /// Reads until `stop`, then sweeps once more.
    pub fn run(&mut self, stop: &AtomicBool) -> anyhow::Result<SinkTotals> {
        let cpu0 = super::report::thread_cpu_time();
        let mut totals = SinkTotals::default();
        loop {
            let stopping = stop.load(Ordering::Relaxed);
            let got = self.sweep(&mut totals)?;
            if stopping {
                break;
            }
            // Few datagrams per socket: wait so the next sweep reads more per syscall. Latency comes
            // from kernel timestamps, so waiting here does not distort it.
            if got < self.subs.len() * 4 {
                std::thread::sleep(Duration::from_millis(if got == 0 { 1 } else { 2 }));
            }
        }
        totals.cpu = super::report::thread_cpu_time().saturating_sub(cpu0);
        Ok(totals)
    }

    fn sweep(&mut self, totals: &mut SinkTotals) -> anyhow::Result<usize> {
        let mut got = 0;
        for s in 0..self.subs.len() {
            loop {
                let n = self.recv_batch(s)?;
                for i in 0..n {
                    self.handle(s, i, totals);
                }
                got += n;
                if n < BATCH {
                    break;
                }
            }
        }
        Ok(got)
    }

    fn recv_batch(&mut self, s: usize) -> anyhow::Result<usize> {
        Ok(self.batch.recv(&self.subs[s].socket)?)
    }

    fn handle(&mut self, s: usize, i: usize, totals: &mut SinkTotals) {
        let Some((data, rx_ns)) = self.batch.get(i) else {
            return;
        };
        let len = data.len();
        if sluice_dataplane::packet::is_rtcp(data) {
            totals.rtcp += 1;
            return;
        }
        totals.received += 1;
        let sub = &mut self.subs[s];
        sub.received += 1;
        let Ok(hdr) = RtpHeader::parse(data) else {
            totals.verify_failures += 1;
            return;
        };
        if let (Some(sent), Some(rx)) = (hdr.extensions().and_then(|e| e.get(SEND_TIME_EXT)), rx_ns)
        {
            if let Ok(b) = <[u8; 8]>::try_from(sent) {
                let sent = u64::from_be_bytes(b);
                let _ = totals.latency_ns.record(rx.saturating_sub(sent).max(1));
            }
        }
        if sub.received % VERIFY_EVERY != 1 {
            return;
        }
        self.scratch[..len].copy_from_slice(data);
        let plain_len = match &mut sub.verify {
            Some(ctx) => match ctx.unprotect_rtp(&mut self.scratch[..len]) {
                Ok(n) => n,
                Err(_) => {
                    totals.verify_failures += 1;
                    return;
                }
            },
            None => len,
        };
        if payload_ok(&self.scratch[..plain_len], self.size) {
            totals.verified += 1;
        } else {
            totals.verify_failures += 1;
        }
    }
}

fn payload_ok(packet: &[u8], size: usize) -> bool {
    let Ok(hdr) = RtpHeader::parse(packet) else {
        return false;
    };
    let p = hdr.payload();
    if p.len() != size || hdr.csrc_count() != 1 {
        return false;
    }
    let seq = u16::from_be_bytes([p[0], p[1]]);
    p[2..]
        .iter()
        .enumerate()
        .all(|(i, &b)| b == pattern(seq, i))
}
