//! Receiving datagrams in batches with the kernel's receive timestamp of each (`recvmmsg` with
//! `SO_TIMESTAMPNS`), so a reader can measure one-way latency however seldom it polls: `sluice
//! bench`'s sinks sleep between sweeps and still time every datagram to the nanosecond it arrived.
//!
//! Buffers are allocated once in [`TimestampedBatch::new`]; [`TimestampedBatch::recv`] never
//! allocates and never blocks.

use std::io;
use std::net::UdpSocket;
use std::os::fd::AsRawFd;

use super::socket::setsockopt_int;
use crate::outbox::SLOT_SIZE;

/// Bytes of control-message space per datagram (one `SCM_TIMESTAMPNS`).
const CTRL: usize = 64;

/// Turns on kernel receive timestamps (`SO_TIMESTAMPNS`) for `socket`; needed once before
/// [`TimestampedBatch::recv`] can report them.
pub fn enable_rx_timestamps(socket: &UdpSocket) -> io::Result<()> {
    let socket = socket2::SockRef::from(socket);
    setsockopt_int(&socket, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, 1)
}

/// Up to [`TimestampedBatch::CAPACITY`] datagrams of one `recvmmsg` call and their receive times.
pub struct TimestampedBatch {
    bufs: Vec<[u8; SLOT_SIZE]>,
    ctrl: Vec<[u8; CTRL]>,
    /// Length and kernel receive time (ns since the Unix epoch) of each datagram of the last batch.
    lens_ts: Vec<(usize, Option<u64>)>,
    len: usize,
}

impl Default for TimestampedBatch {
    fn default() -> Self {
        Self::new()
    }
}

impl TimestampedBatch {
    /// Datagrams one [`recv`](Self::recv) reads at most.
    pub const CAPACITY: usize = 64;

    /// Empty buffers for one batch.
    pub fn new() -> Self {
        Self {
            bufs: vec![[0u8; SLOT_SIZE]; Self::CAPACITY],
            ctrl: vec![[0u8; CTRL]; Self::CAPACITY],
            lens_ts: vec![(0, None); Self::CAPACITY],
            len: 0,
        }
    }

    /// Reads what `socket` has queued, up to [`CAPACITY`](Self::CAPACITY) datagrams, without
    /// blocking; returns how many (0 when nothing was queued or the call was interrupted). The
    /// previous batch is overwritten.
    pub fn recv(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        const BATCH: usize = TimestampedBatch::CAPACITY;
        self.len = 0;
        // SAFETY: zeroed mmsghdr/iovec are valid "empty" values; every pointer set below points into
        // self.bufs / self.ctrl, which outlive the recvmmsg call and are not otherwise borrowed
        // during it.
        let mut iovs: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        for (i, (buf, ctrl)) in self.bufs.iter_mut().zip(&mut self.ctrl).enumerate() {
            iovs[i].iov_base = buf.as_mut_ptr().cast();
            iovs[i].iov_len = SLOT_SIZE;
            hdrs[i].msg_hdr.msg_iov = &mut iovs[i];
            hdrs[i].msg_hdr.msg_iovlen = 1;
            hdrs[i].msg_hdr.msg_control = ctrl.as_mut_ptr().cast();
            hdrs[i].msg_hdr.msg_controllen = CTRL as _;
        }
        // SAFETY: hdrs holds BATCH initialised headers whose buffers are valid for writes (see
        // above); the fd is open for the call because `socket` is borrowed.
        let n = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                hdrs.as_mut_ptr(),
                BATCH as u32,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(0),
                _ => Err(e),
            };
        }
        let n = n as usize;
        for (i, h) in hdrs.iter().enumerate().take(n) {
            self.lens_ts[i] = (h.msg_len as usize, kernel_timestamp(&h.msg_hdr));
        }
        self.len = n;
        Ok(n)
    }

    /// Datagrams in the last batch.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the last batch was empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Datagram `i` of the last batch and its kernel receive time in nanoseconds since the Unix epoch
    /// (`None` when the socket has no timestamps enabled).
    pub fn get(&self, i: usize) -> Option<(&[u8], Option<u64>)> {
        if i >= self.len {
            return None;
        }
        let (len, ts) = *self.lens_ts.get(i)?;
        let data = self.bufs.get(i)?.get(..len.min(SLOT_SIZE))?;
        Some((data, ts))
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_carries_every_datagram_and_its_kernel_timestamp() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut batch = TimestampedBatch::new();
        assert_eq!(batch.recv(&rx).unwrap(), 0, "nothing queued: no wait");
        assert!(batch.is_empty());

        enable_rx_timestamps(&rx).unwrap();
        let before = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        for i in 0..3u8 {
            tx.send_to(&[i; 100], rx.local_addr().unwrap()).unwrap();
        }
        let mut got = Vec::new();
        for _ in 0..100 {
            batch.recv(&rx).unwrap();
            got.extend(
                (0..batch.len())
                    .filter_map(|i| batch.get(i))
                    .map(|(d, t)| (d.to_vec(), t)),
            );
            if got.len() == 3 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(got.len(), 3);
        for (i, (data, ts)) in got.iter().enumerate() {
            assert_eq!(data, &vec![i as u8; 100]);
            assert!(ts.is_some_and(|t| t + 1_000_000_000 >= before), "{ts:?}");
        }
        assert!(batch.get(batch.len()).is_none());
    }
}
