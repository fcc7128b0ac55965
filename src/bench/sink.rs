//! The subscribers' side: reads every datagram from every subscriber socket with recvmmsg, takes the
//! kernel's receive timestamp (SO_TIMESTAMPNS) and the send time the generator put in a header
//! extension for the one-way latency, and decrypts one packet in [`VERIFY_EVERY`] per subscriber with
//! webrtc-srtp (the independent oracle) to check the SFU re-encrypted it correctly for that
//! subscriber. Kernel timestamps make the latency independent of how often this thread polls, so it can
//! sleep between sweeps and read many datagrams per syscall.

use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use sluice_dataplane::packet::RtpHeader;
use sluice_dataplane::srtp::{SrtpContext, SrtpEngine, SrtpKeys};

use super::generator::{pattern, SEND_TIME_EXT};

/// One packet in this many per subscriber is decrypted and checked.
pub const VERIFY_EVERY: u64 = 64;
const BATCH: usize = 64;
const BUF: usize = 2048;
const CTRL: usize = 64;

/// One subscribing transport's socket and its oracle decryptor.
pub struct Subscriber {
    socket: UdpSocket,
    verify: Option<SrtpContext>,
    received: u64,
}

impl Subscriber {
    /// A subscriber reading `socket`; `keys` are what the SFU protects with for it (None: plain RTP).
    pub fn new(socket: UdpSocket, keys: Option<SrtpKeys>) -> anyhow::Result<Self> {
        let on: libc::c_int = 1;
        // SAFETY: valid socket fd, pointer to a c_int of the size passed.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_TIMESTAMPNS,
                &on as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error().into());
        }
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
    /// Datagrams received.
    pub received: u64,
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
    bufs: Vec<[u8; BUF]>,
    ctrl: Vec<[u8; CTRL]>,
    lens_ts: Vec<(usize, Option<u64>)>,
    scratch: Vec<u8>,
}

impl Sink {
    /// A sink for `subs`, expecting `size`-byte payloads.
    pub fn new(subs: Vec<Subscriber>, size: usize) -> Self {
        Self {
            subs,
            size,
            bufs: vec![[0u8; BUF]; BATCH],
            ctrl: vec![[0u8; CTRL]; BATCH],
            lens_ts: vec![(0, None); BATCH],
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
        // SAFETY: zeroed mmsghdr/iovec are valid "empty" values; every pointer set below points into
        // self.bufs / self.ctrl, which outlive the recvmmsg call and are not otherwise borrowed during it.
        let mut iovs: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
        let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        for i in 0..BATCH {
            iovs[i].iov_base = self.bufs[i].as_mut_ptr() as *mut libc::c_void;
            iovs[i].iov_len = BUF;
            hdrs[i].msg_hdr.msg_iov = &mut iovs[i];
            hdrs[i].msg_hdr.msg_iovlen = 1;
            hdrs[i].msg_hdr.msg_control = self.ctrl[i].as_mut_ptr() as *mut libc::c_void;
            hdrs[i].msg_hdr.msg_controllen = CTRL as _;
        }
        let fd = self.subs[s].socket.as_raw_fd();
        // SAFETY: hdrs holds BATCH initialised headers whose buffers are valid for writes (see above).
        let n = unsafe {
            libc::recvmmsg(
                fd,
                hdrs.as_mut_ptr(),
                BATCH as u32,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            return match e.kind() {
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted => Ok(0),
                _ => Err(e.into()),
            };
        }
        let n = n as usize;
        for (i, h) in hdrs.iter().enumerate().take(n) {
            self.lens_ts[i] = (h.msg_len as usize, kernel_timestamp(&h.msg_hdr));
        }
        Ok(n)
    }

    fn handle(&mut self, s: usize, i: usize, totals: &mut SinkTotals) {
        let (len, rx_ns) = self.lens_ts[i];
        let data = &self.bufs[i][..len.min(BUF)];
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

/// The SCM_TIMESTAMPNS control message of a received datagram, in nanoseconds since the epoch.
fn kernel_timestamp(msg: &libc::msghdr) -> Option<u64> {
    // SAFETY: `msg` was filled by recvmmsg; CMSG_* walk only within msg_control/msg_controllen.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                let ts = std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const libc::timespec);
                return Some(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64);
            }
            c = libc::CMSG_NXTHDR(msg, c);
        }
    }
    None
}
