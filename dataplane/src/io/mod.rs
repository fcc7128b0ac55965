//! Datagram I/O backends and the other system calls of the dataplane: the only module of the crate
//! with `unsafe` (the crate denies it everywhere else).
//!
//! Two backends move UDP datagrams in and out of a worker behind one trait, [`DatagramIo`]:
//!
//! - [`mmsg::MmsgIo`]: `recvmmsg`/`sendmmsg` on a non-blocking socket, `poll()` to sleep. Works
//!   everywhere, including containers whose seccomp profile forbids io_uring, and measured the
//!   cheapest per datagram on our hosts (see `docs/host-limits.md`).
//! - [`uring::UringIo`]: the io-uring crate used directly: one ring per worker, a multishot
//!   `RecvMsgMulti` fed by a provided buffer ring, one `SendMsg` SQE per egress datagram and one
//!   submit for a whole batch.
//!
//! Beside them, safe wrappers for the few other system calls sluice makes: [`socket`] (binding and
//! sizing UDP sockets), [`cputime`] (thread CPU clocks), [`timestamps`] (a `recvmmsg` batch
//! receiver with kernel receive timestamps, for `sluice bench`'s sinks), [`limits`] (the
//! open-file limit) and [`heap`] (giving freed heap pages back to the kernel).
//!
//! Invariants every backend keeps:
//! - Buffers, message headers and address arrays are allocated once at construction; `recv` and
//!   `send` never allocate in steady state.
//! - Datagrams are handed over in arrival order; one that did not fit a 2048-byte slot
//!   ([`crate::outbox::SLOT_SIZE`]) is dropped and counted in [`DatagramIo::truncated`].
//! - `recv` hands over at most `recv_batch` datagrams per call (a work limit, so a worker flushes
//!   its outbox and drains its command channel between batches); what is left stays queued and
//!   the next call returns it without blocking.
//! - Every `unsafe` block carries a `SAFETY:` comment that says why it is sound.

pub mod cputime;
pub mod heap;
pub mod limits;
pub mod mmsg;
pub mod socket;
pub mod timestamps;
pub mod uring;
pub mod wake;

use std::fmt;
use std::io;
use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::ops::ControlFlow;
use std::str::FromStr;
use std::time::Duration;

pub use cputime::thread_cpu_time;
pub use mmsg::MmsgIo;
pub use socket::bind_udp;
pub use uring::UringIo;
pub use wake::Wake;

use crate::outbox::Outbox;

/// A concrete backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// io_uring through the io-uring crate ([`UringIo`]).
    Uring,
    /// `recvmmsg`/`sendmmsg` ([`MmsgIo`]).
    Mmsg,
}

impl BackendKind {
    /// The name used on the command line and in logs.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Uring => "uring",
            BackendKind::Mmsg => "mmsg",
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A backend name that was not recognised.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown I/O backend {0:?} (expected one of: {1})")]
pub struct UnknownBackend(pub String, pub &'static str);

impl FromStr for BackendKind {
    type Err = UnknownBackend;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "uring" => Ok(BackendKind::Uring),
            "mmsg" => Ok(BackendKind::Mmsg),
            other => Err(UnknownBackend(other.to_owned(), "uring, mmsg")),
        }
    }
}

/// The backend `BackendChoice::Auto` picks: the one `sluice bench` measured cheaper per datagram on
/// our hosts (mmsg, about 10% less CPU than io_uring; see README, "Decisions").
pub const DEFAULT_BACKEND: BackendKind = BackendKind::Mmsg;

/// What the operator asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackendChoice {
    /// [`DEFAULT_BACKEND`].
    #[default]
    Auto,
    /// io_uring; mmsg (with one log line) where io_uring is unavailable.
    Uring,
    /// recvmmsg/sendmmsg.
    Mmsg,
}

impl BackendChoice {
    /// Resolves the choice to a concrete backend. Where io_uring is wanted but [`UringIo::probe`]
    /// fails (kernel without it, seccomp in containers), falls back to mmsg with one `warn` line.
    pub fn resolve(self) -> BackendKind {
        let wanted = match self {
            BackendChoice::Auto => DEFAULT_BACKEND,
            BackendChoice::Uring => BackendKind::Uring,
            BackendChoice::Mmsg => BackendKind::Mmsg,
        };
        if wanted == BackendKind::Uring {
            if let Err(e) = UringIo::probe() {
                tracing::warn!(error = %e, "io_uring is unavailable on this host; using the mmsg backend (recvmmsg/sendmmsg)");
                return BackendKind::Mmsg;
            }
        }
        wanted
    }
}

impl fmt::Display for BackendChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BackendChoice::Auto => "auto",
            BackendChoice::Uring => "uring",
            BackendChoice::Mmsg => "mmsg",
        })
    }
}

impl FromStr for BackendChoice {
    type Err = UnknownBackend;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(BackendChoice::Auto),
            "uring" => Ok(BackendChoice::Uring),
            "mmsg" => Ok(BackendChoice::Mmsg),
            other => Err(UnknownBackend(other.to_owned(), "auto, uring, mmsg")),
        }
    }
}

/// Sizes shared by the backends.
#[derive(Debug, Clone)]
pub struct IoConfig {
    /// Datagrams received per batch (recvmmsg vector length; per-call hand-over limit).
    pub recv_batch: usize,
    /// SO_RCVBUF in bytes.
    pub recv_buf_bytes: usize,
    /// SO_SNDBUF in bytes.
    pub send_buf_bytes: usize,
    /// Datagrams per sendmmsg call / per io_uring submit.
    pub max_send_batch: usize,
}

impl Default for IoConfig {
    fn default() -> Self {
        Self {
            recv_batch: 64,
            recv_buf_bytes: 8 << 20,
            send_buf_bytes: 8 << 20,
            max_send_batch: 1024,
        }
    }
}

/// Outcome of one [`DatagramIo::send`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SendReport {
    /// Datagrams the kernel accepted.
    pub sent: usize,
    /// Datagrams dropped because of a per-datagram error or a persistently full send queue.
    pub failed: usize,
}

/// Moves datagrams between one UDP socket and a worker.
pub trait DatagramIo {
    /// Which backend this is.
    fn kind(&self) -> BackendKind;

    /// The bound address of the socket.
    fn local_addr(&self) -> SocketAddr;

    /// Waits up to `timeout` (None = forever) for datagrams or a wake-up of the eventfd given at
    /// construction (drain it), then hands each ready datagram to `on_datagram(from, &mut bytes)`
    /// in arrival order until it returns `ControlFlow::Break(())` or nothing more is ready (at
    /// most `recv_batch` per call). Datagrams not handed over because of Break stay queued and
    /// are handed over first on the next call (which then does not block). Returns how many were
    /// handed over (0 on timeout/wake). Never allocates in steady state. Truncated datagrams
    /// (MSG_TRUNC, > 2048 bytes) are skipped and counted in `truncated()`.
    fn recv<F: FnMut(SocketAddr, &mut [u8]) -> ControlFlow<()>>(
        &mut self,
        timeout: Option<Duration>,
        on_datagram: F,
    ) -> io::Result<usize>;

    /// Sends every datagram in `outbox` with as few syscalls as possible, then clears it.
    /// Per-datagram errors count as `failed` and the rest still go out; EAGAIN/ENOBUFS are
    /// retried briefly, then the rest count as failed. Returns Err only for a broken socket/ring.
    fn send(&mut self, outbox: &mut Outbox) -> io::Result<SendReport>;

    /// Datagrams dropped because they were larger than a slot.
    fn truncated(&self) -> u64;
}

/// Is this send error about the socket itself (fatal) rather than about one datagram?
pub(crate) fn is_fatal_send_error(errno: i32) -> bool {
    matches!(
        errno,
        libc::EBADF | libc::ENOTSOCK | libc::EFAULT | libc::ENOTCONN | libc::EOPNOTSUPP
    )
}

/// Should a send with this error be retried shortly?
pub(crate) fn is_retry_send_error(errno: i32) -> bool {
    errno == libc::EAGAIN
        || errno == libc::EWOULDBLOCK
        || errno == libc::ENOBUFS
        || errno == libc::EINTR
}

/// Writes `addr` into `out` as the kernel expects it and returns its length. On an IPv6 socket
/// an IPv4 destination is written as an IPv4-mapped IPv6 address.
pub(crate) fn write_sockaddr(
    addr: &SocketAddr,
    v6_socket: bool,
    out: &mut libc::sockaddr_storage,
) -> libc::socklen_t {
    let v6 = match (addr, v6_socket) {
        (SocketAddr::V4(a), false) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and suitably aligned for sockaddr_in;
            // `out` is a valid exclusive reference.
            unsafe {
                (out as *mut libc::sockaddr_storage)
                    .cast::<libc::sockaddr_in>()
                    .write(sin)
            };
            return mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        }
        (SocketAddr::V4(a), true) => SocketAddrV6::new(a.ip().to_ipv6_mapped(), a.port(), 0, 0),
        (SocketAddr::V6(a), _) => *a,
    };
    let sin6 = libc::sockaddr_in6 {
        sin6_family: libc::AF_INET6 as libc::sa_family_t,
        sin6_port: v6.port().to_be(),
        sin6_flowinfo: v6.flowinfo().to_be(),
        sin6_addr: libc::in6_addr {
            s6_addr: v6.ip().octets(),
        },
        sin6_scope_id: v6.scope_id(),
    };
    // SAFETY: sockaddr_storage is larger than and suitably aligned for sockaddr_in6; `out` is a
    // valid exclusive reference.
    unsafe {
        (out as *mut libc::sockaddr_storage)
            .cast::<libc::sockaddr_in6>()
            .write(sin6)
    };
    mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t
}

/// Reads a socket address the kernel wrote (`len` bytes are valid). None for other families.
pub(crate) fn read_sockaddr(storage: &libc::sockaddr_storage, len: usize) -> Option<SocketAddr> {
    match storage.ss_family as i32 {
        libc::AF_INET if len >= mem::size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family says the storage holds a sockaddr_in, which it is large and
            // aligned enough for; the kernel wrote at least its size.
            let sin =
                unsafe { &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 if len >= mem::size_of::<libc::sockaddr_in6>() => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe {
                &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
            };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                u16::from_be(sin6.sin6_port),
                u32::from_be(sin6.sin6_flowinfo),
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// A zeroed `sockaddr_storage`.
pub(crate) fn zeroed_storage() -> libc::sockaddr_storage {
    // SAFETY: sockaddr_storage is a plain C struct for which all-zero bytes is a valid value.
    unsafe { mem::zeroed() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_names_round_trip() {
        for k in [BackendKind::Uring, BackendKind::Mmsg] {
            assert_eq!(k.name().parse::<BackendKind>().unwrap(), k);
            assert_eq!(k.to_string(), k.name());
        }
        for c in [
            BackendChoice::Auto,
            BackendChoice::Uring,
            BackendChoice::Mmsg,
        ] {
            assert_eq!(c.to_string().parse::<BackendChoice>().unwrap(), c);
        }
        assert!("epoll".parse::<BackendKind>().is_err());
        assert!("auto".parse::<BackendKind>().is_err());
        assert_eq!(BackendChoice::default(), BackendChoice::Auto);
    }

    #[test]
    fn io_sockaddr_round_trip() {
        let mut st = zeroed_storage();
        for a in ["127.0.0.1:5004", "[::1]:9", "[fe80::1%2]:443"] {
            let a: SocketAddr = a.parse().unwrap();
            let len = write_sockaddr(&a, a.is_ipv6(), &mut st);
            assert_eq!(read_sockaddr(&st, len as usize), Some(a));
        }
        let v4: SocketAddr = "10.1.2.3:7".parse().unwrap();
        let len = write_sockaddr(&v4, true, &mut st);
        let back = read_sockaddr(&st, len as usize).unwrap();
        assert_eq!(back, "[::ffff:10.1.2.3]:7".parse::<SocketAddr>().unwrap());
    }
}
