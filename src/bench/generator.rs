//! The load generator: every publisher sends `rate` packets per second, paced against a fixed start
//! time. Each packet is built and SRTP-protected (with our in-place engine) in the turn it is sent, so
//! the send timestamp it carries is fresh, and it is sent right away; all crypto state is set up once.
//!
//! Packet layout: RTP header (PT 111, marker off), a one-byte header extension block with the RFC 6464
//! audio level (id [`AUDIO_LEVEL_EXT`]) and the send time in nanoseconds since the Unix epoch
//! (id [`SEND_TIME_EXT`], 8 bytes, clear text but authenticated by SRTP), then the payload: the
//! publisher's sequence number (2 bytes) followed by a pattern the sinks check after decryption.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand::Rng;
use sluice_dataplane::srtp::{SrtpContext, SrtpEngine, SrtpKeys};

/// Header-extension id of the audio level.
pub const AUDIO_LEVEL_EXT: u8 = 1;
/// Header-extension id of the send timestamp.
pub const SEND_TIME_EXT: u8 = 2;
/// Bytes before the payload: 12 header + 4 extension header + 12 extension data.
pub const HEADER_LEN: usize = 28;

/// Payload byte `i` of a packet with sequence number `seq` (after the 2-byte sequence prefix).
#[inline]
pub fn pattern(seq: u16, i: usize) -> u8 {
    (seq as u8) ^ (i as u8).wrapping_mul(31)
}

/// Nanoseconds since the Unix epoch (CLOCK_REALTIME, comparable with kernel receive timestamps).
pub fn realtime_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// One publishing transport.
pub struct Publisher {
    socket: UdpSocket,
    server: SocketAddr,
    ssrc: u32,
    seq: u16,
    ts: u32,
    srtp: Option<SrtpContext>,
}

impl Publisher {
    /// A publisher sending from `socket` to `server`, protecting with `keys` (None: plain RTP); its
    /// first sequence number and timestamp are drawn from `rng`.
    pub fn new(
        socket: UdpSocket,
        server: SocketAddr,
        ssrc: u32,
        keys: Option<SrtpKeys>,
        rng: &mut impl Rng,
    ) -> anyhow::Result<Self> {
        let srtp = keys
            .map(|k| SrtpContext::new(SrtpEngine::InPlace, &k))
            .transpose()?;
        Ok(Self {
            socket,
            server,
            ssrc,
            seq: rng.random(),
            ts: rng.random(),
            srtp,
        })
    }

    fn build(&mut self, buf: &mut [u8], size: usize) -> anyhow::Result<usize> {
        let seq = self.seq;
        buf[0] = 0x90; // V=2, X=1
        buf[1] = 111;
        buf[2..4].copy_from_slice(&seq.to_be_bytes());
        buf[4..8].copy_from_slice(&self.ts.to_be_bytes());
        buf[8..12].copy_from_slice(&self.ssrc.to_be_bytes());
        buf[12..16].copy_from_slice(&[0xBE, 0xDE, 0, 3]);
        buf[16] = AUDIO_LEVEL_EXT << 4; // one byte of data
        buf[17] = 0x80 | 30; // voice, -30 dBov
        buf[18] = (SEND_TIME_EXT << 4) | 7; // eight bytes of data
        buf[19..27].copy_from_slice(&realtime_ns().to_be_bytes());
        buf[27] = 0; // padding
        buf[HEADER_LEN..HEADER_LEN + 2].copy_from_slice(&seq.to_be_bytes());
        for (i, b) in buf[HEADER_LEN + 2..HEADER_LEN + size]
            .iter_mut()
            .enumerate()
        {
            *b = pattern(seq, i);
        }
        let len = HEADER_LEN + size;
        self.seq = seq.wrapping_add(1);
        self.ts = self.ts.wrapping_add(960);
        Ok(match &mut self.srtp {
            Some(ctx) => ctx.protect_rtp(buf, len)?,
            None => len,
        })
    }
}

/// What a generator run did.
#[derive(Debug, Clone, Copy, Default)]
pub struct GeneratorTotals {
    /// Packets sent (all publishers).
    pub sent: u64,
    /// Sends the kernel refused.
    pub send_errors: u64,
    /// CPU time the generator thread used.
    pub cpu: Duration,
    /// Wall time it ran.
    pub elapsed: Duration,
}

/// All publishers, driven by one thread.
pub struct Generator {
    publishers: Vec<Publisher>,
    size: usize,
    buf: Vec<u8>,
}

impl Generator {
    /// A generator for `publishers` sending `size`-byte payloads.
    pub fn new(publishers: Vec<Publisher>, size: usize) -> Self {
        Self {
            publishers,
            size,
            buf: vec![0u8; 2048],
        }
    }

    /// Sends `rate` packets per second per publisher until `deadline` or `stop`.
    pub fn run(
        &mut self,
        rate: u32,
        deadline: Instant,
        stop: &AtomicBool,
    ) -> anyhow::Result<GeneratorTotals> {
        let cpu0 = super::report::thread_cpu_time();
        let start = Instant::now();
        let interval = Duration::from_secs_f64(1.0 / rate.max(1) as f64);
        let mut totals = GeneratorTotals::default();
        let mut rounds = 0u64;
        loop {
            let now = Instant::now();
            if now >= deadline || stop.load(Ordering::Relaxed) {
                break;
            }
            let due = (now.duration_since(start).as_secs_f64() * rate as f64) as u64 + 1;
            while rounds < due {
                for p in &mut self.publishers {
                    let n = p.build(&mut self.buf, self.size)?;
                    match p.socket.send_to(&self.buf[..n], p.server) {
                        Ok(_) => totals.sent += 1,
                        Err(_) => totals.send_errors += 1,
                    }
                }
                rounds += 1;
            }
            let next = start + interval.mul_f64(rounds as f64);
            if let Some(wait) = next.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait.min(deadline.saturating_duration_since(Instant::now())));
            }
        }
        totals.elapsed = start.elapsed();
        totals.cpu = super::report::thread_cpu_time().saturating_sub(cpu0);
        Ok(totals)
    }
}
