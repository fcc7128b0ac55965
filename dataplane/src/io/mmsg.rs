//! The `recvmmsg`/`sendmmsg` backend: portable, needs nothing beyond classic syscalls, and on our
//! hosts the cheapest per datagram (docs/host-limits.md: ~770 ns per egress datagram, vs ~880 for multishot
//! io_uring).
//!
//! Receive: one `recvmmsg(MSG_DONTWAIT)` for up to `recv_batch` datagrams; only if nothing is
//! ready does it `ppoll()` the socket and the wake eventfd with the timeout, then try again.
//! Send: `sendmmsg` in chunks of `max_send_batch`, looping over partial sends and stepping over a
//! datagram whose send fails (the kernel reports an error only when the first message fails).
//!
//! Invariant: every header, iovec, address and buffer array is allocated in `new` and owned by the
//! struct; the raw pointers inside the headers are re-derived from those boxes right before each
//! syscall and are not used after it returns.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::ops::ControlFlow;
use std::os::fd::{AsRawFd, RawFd};
use std::ptr;
use std::time::Duration;

use super::{
    is_fatal_send_error, is_retry_send_error, read_sockaddr, write_sockaddr, zeroed_storage,
    BackendKind, DatagramIo, IoConfig, SendReport, Wake,
};
use crate::outbox::{Outbox, SLOT_SIZE};

/// Consecutive EAGAIN/ENOBUFS rounds (each waiting up to 1 ms for POLLOUT) before the rest of a
/// batch is dropped.
const SEND_RETRIES: u32 = 3;

/// recvmmsg/sendmmsg over a non-blocking UDP socket.
pub struct MmsgIo {
    socket: UdpSocket,
    fd: RawFd,
    local: SocketAddr,
    v6: bool,
    wake: Wake,
    recv_batch: usize,
    max_send_batch: usize,
    truncated: u64,

    rbufs: Box<[u8]>,
    riov: Box<[libc::iovec]>,
    rnames: Box<[libc::sockaddr_storage]>,
    rhdrs: Box<[libc::mmsghdr]>,
    /// Next received entry to hand over.
    rpos: usize,
    /// Entries filled by the last recvmmsg.
    rend: usize,

    siov: Box<[libc::iovec]>,
    snames: Box<[libc::sockaddr_storage]>,
    shdrs: Box<[libc::mmsghdr]>,
}

// SAFETY: the raw pointers inside the iovec/mmsghdr arrays only ever point into boxes owned by
// this struct (re-derived before each syscall), so moving the whole struct to another thread
// moves everything they refer to with it. Nothing is shared.
unsafe impl Send for MmsgIo {}

fn empty_iovec() -> libc::iovec {
    libc::iovec {
        iov_base: ptr::null_mut(),
        iov_len: 0,
    }
}

fn empty_mmsghdr() -> libc::mmsghdr {
    // SAFETY: mmsghdr is a plain C struct; all-zero (null pointers, zero lengths) is valid.
    unsafe { std::mem::zeroed() }
}

impl MmsgIo {
    /// Wraps a non-blocking socket (see [`super::bind_udp`]) and the worker's wake eventfd.
    pub fn new(socket: UdpSocket, wake: Wake, cfg: &IoConfig) -> io::Result<Self> {
        socket.set_nonblocking(true)?;
        let local = socket.local_addr()?;
        let recv_batch = cfg.recv_batch.clamp(1, 1024);
        let max_send_batch = cfg.max_send_batch.clamp(1, libc::UIO_MAXIOV as usize);
        Ok(Self {
            fd: socket.as_raw_fd(),
            socket,
            local,
            v6: local.is_ipv6(),
            wake,
            recv_batch,
            max_send_batch,
            truncated: 0,
            rbufs: vec![0u8; recv_batch * SLOT_SIZE].into_boxed_slice(),
            riov: (0..recv_batch).map(|_| empty_iovec()).collect(),
            rnames: (0..recv_batch).map(|_| zeroed_storage()).collect(),
            rhdrs: (0..recv_batch).map(|_| empty_mmsghdr()).collect(),
            rpos: 0,
            rend: 0,
            siov: (0..max_send_batch).map(|_| empty_iovec()).collect(),
            snames: (0..max_send_batch).map(|_| zeroed_storage()).collect(),
            shdrs: (0..max_send_batch).map(|_| empty_mmsghdr()).collect(),
        })
    }

    /// The socket, e.g. for `getsockopt` in diagnostics.
    pub fn socket(&self) -> &UdpSocket {
        &self.socket
    }

    /// One `recvmmsg(MSG_DONTWAIT)`; returns how many entries it filled (0 when nothing is ready).
    fn recv_now(&mut self) -> io::Result<usize> {
        let n = self.recv_batch;
        let base = self.rbufs.as_mut_ptr();
        for i in 0..n {
            // SAFETY: i < recv_batch and rbufs holds recv_batch * SLOT_SIZE bytes, so the offset
            // stays inside the allocation.
            let iov_base = unsafe { base.add(i * SLOT_SIZE) };
            self.riov[i] = libc::iovec {
                iov_base: iov_base.cast(),
                iov_len: SLOT_SIZE,
            };
            let h = &mut self.rhdrs[i];
            h.msg_hdr.msg_name = (&mut self.rnames[i] as *mut libc::sockaddr_storage).cast();
            h.msg_hdr.msg_namelen =
                std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_hdr.msg_iov = &mut self.riov[i];
            h.msg_hdr.msg_iovlen = 1;
            h.msg_hdr.msg_control = ptr::null_mut();
            h.msg_hdr.msg_controllen = 0;
            h.msg_hdr.msg_flags = 0;
            h.msg_len = 0;
        }
        // A few ICMP errors may be queued on the socket; each costs one failed call.
        for _ in 0..8 {
            // SAFETY: rhdrs has n initialised headers whose name/iov pointers were just set to
            // live, exclusively borrowed memory of the right sizes; nothing else touches those
            // arrays until the call returns.
            let r = unsafe {
                libc::recvmmsg(
                    self.fd,
                    self.rhdrs.as_mut_ptr(),
                    n as libc::c_uint,
                    libc::MSG_DONTWAIT,
                    ptr::null_mut(),
                )
            };
            if r >= 0 {
                return Ok(r as usize);
            }
            let err = io::Error::last_os_error();
            match err.raw_os_error().unwrap_or(0) {
                libc::EAGAIN | libc::ENOMEM => return Ok(0),
                libc::EINTR | libc::ECONNREFUSED | libc::EHOSTUNREACH | libc::ENETUNREACH => {
                    continue
                }
                _ => return Err(err),
            }
        }
        Ok(0)
    }

    /// Sleeps until the socket is readable, the eventfd fires or `timeout` passes. Returns true
    /// when the socket is readable.
    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<bool> {
        let mut fds = [
            libc::pollfd {
                fd: self.fd,
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: self.wake.fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        let ts = timeout.map(|d| libc::timespec {
            tv_sec: d.as_secs().min(i64::MAX as u64) as libc::time_t,
            tv_nsec: d.subsec_nanos() as libc::c_long,
        });
        let ts_ptr = ts
            .as_ref()
            .map_or(ptr::null(), |t| t as *const libc::timespec);
        // SAFETY: two valid pollfds, a timespec that outlives the call (or null = forever), and
        // no signal mask.
        let r = unsafe { libc::ppoll(fds.as_mut_ptr(), 2, ts_ptr, ptr::null()) };
        if r < 0 {
            let err = io::Error::last_os_error();
            return if err.raw_os_error() == Some(libc::EINTR) {
                Ok(false)
            } else {
                Err(err)
            };
        }
        if fds[1].revents != 0 {
            self.wake.drain();
        }
        Ok(fds[0].revents != 0)
    }

    /// Waits up to 1 ms for room in the send buffer.
    fn wait_writable(&self) {
        let mut p = libc::pollfd {
            fd: self.fd,
            events: libc::POLLOUT,
            revents: 0,
        };
        // SAFETY: one valid pollfd living on the stack for the duration of the call.
        unsafe { libc::poll(&mut p, 1, 1) };
    }
}

impl DatagramIo for MmsgIo {
    fn kind(&self) -> BackendKind {
        BackendKind::Mmsg
    }

    fn local_addr(&self) -> SocketAddr {
        self.local
    }

    fn recv<F: FnMut(SocketAddr, &mut [u8]) -> ControlFlow<()>>(
        &mut self,
        timeout: Option<Duration>,
        mut on_datagram: F,
    ) -> io::Result<usize> {
        if self.rpos >= self.rend {
            self.rpos = 0;
            self.rend = 0;
            let mut n = self.recv_now()?;
            if n == 0 {
                if !self.wait(timeout)? {
                    return Ok(0);
                }
                n = self.recv_now()?;
            }
            self.rend = n;
        }
        let mut handed = 0;
        while self.rpos < self.rend {
            let i = self.rpos;
            self.rpos += 1;
            let h = &self.rhdrs[i].msg_hdr;
            if h.msg_flags & libc::MSG_TRUNC != 0 {
                self.truncated += 1;
                continue;
            }
            let Some(from) = read_sockaddr(&self.rnames[i], h.msg_namelen as usize) else {
                continue;
            };
            let len = (self.rhdrs[i].msg_len as usize).min(SLOT_SIZE);
            handed += 1;
            let start = i * SLOT_SIZE;
            if on_datagram(from, &mut self.rbufs[start..start + len]).is_break() {
                break;
            }
        }
        Ok(handed)
    }

    fn send(&mut self, outbox: &mut Outbox) -> io::Result<SendReport> {
        let total = outbox.len();
        let mut report = SendReport::default();
        let mut i = 0;
        let mut result = Ok(());
        'chunks: while i < total {
            let chunk = (total - i).min(self.max_send_batch);
            for k in 0..chunk {
                let (dest, _) = outbox.get(i + k);
                let (p, len) = outbox.slot_ptr(i + k);
                let namelen = write_sockaddr(&dest, self.v6, &mut self.snames[k]);
                self.siov[k] = libc::iovec {
                    iov_base: p as *mut libc::c_void,
                    iov_len: len,
                };
                let h = &mut self.shdrs[k];
                h.msg_hdr.msg_name = (&mut self.snames[k] as *mut libc::sockaddr_storage).cast();
                h.msg_hdr.msg_namelen = namelen;
                h.msg_hdr.msg_iov = &mut self.siov[k];
                h.msg_hdr.msg_iovlen = 1;
                h.msg_hdr.msg_control = ptr::null_mut();
                h.msg_hdr.msg_controllen = 0;
                h.msg_hdr.msg_flags = 0;
                h.msg_len = 0;
            }
            let mut j = 0;
            let mut retries = 0;
            while j < chunk {
                // SAFETY: shdrs[j..chunk] are initialised headers pointing at live entries of
                // snames/siov and at Outbox slots, which stay borrowed (and unmodified) for the
                // duration of the call; the kernel only reads them.
                let r = unsafe {
                    libc::sendmmsg(
                        self.fd,
                        self.shdrs.as_mut_ptr().add(j),
                        (chunk - j) as libc::c_uint,
                        0,
                    )
                };
                if r > 0 {
                    j += r as usize;
                    report.sent += r as usize;
                    retries = 0;
                    continue;
                }
                let err = io::Error::last_os_error();
                let errno = err.raw_os_error().unwrap_or(0);
                if r != 0 && errno == libc::EINTR {
                    continue;
                }
                if r == 0 || is_retry_send_error(errno) {
                    retries += 1;
                    if retries > SEND_RETRIES {
                        report.failed += total - (i + j);
                        break 'chunks;
                    }
                    self.wait_writable();
                } else if is_fatal_send_error(errno) {
                    report.failed += total - (i + j);
                    result = Err(err);
                    break 'chunks;
                } else {
                    // ECONNREFUSED, EHOSTUNREACH, EINVAL, EMSGSIZE, EPERM, ...: this datagram only.
                    report.failed += 1;
                    j += 1;
                }
            }
            i += chunk;
        }
        outbox.clear();
        result.map(|()| report)
    }

    fn truncated(&self) -> u64 {
        self.truncated
    }
}
