//! Creating the worker's UDP socket with the options the backends rely on.
//!
//! - No `SO_REUSEADDR`: two workers must never share a port by accident.
//! - Large `SO_RCVBUF`/`SO_SNDBUF` so a burst survives a worker's busy turn; we try the `*FORCE`
//!   variants first (they ignore `net.core.{r,w}mem_max` when we hold CAP_NET_ADMIN) and fall
//!   back to the plain options, which the kernel clamps.
//! - `IP_RECVERR`/`IPV6_RECVERR` off, so ICMP errors for one peer never surface as send/recv
//!   errors on the shared socket.
//! - Non-blocking for mmsg (it polls), blocking for io_uring (io_uring returns EAGAIN instead of
//!   waiting on an `O_NONBLOCK` socket, which would end a multishot receive).

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;

use socket2::{Domain, Protocol, Socket, Type};

use super::IoConfig;

/// Binds a UDP socket (IPv4 or IPv6) configured for a worker.
pub fn bind_udp(addr: SocketAddr, cfg: &IoConfig, nonblocking: bool) -> io::Result<UdpSocket> {
    let socket = Socket::new(
        Domain::for_address(addr),
        Type::DGRAM.cloexec(),
        Some(Protocol::UDP),
    )?;
    socket.set_reuse_address(false)?;

    set_buf(&socket, libc::SO_RCVBUFFORCE, cfg.recv_buf_bytes, |s, n| {
        s.set_recv_buffer_size(n)
    });
    set_buf(&socket, libc::SO_SNDBUFFORCE, cfg.send_buf_bytes, |s, n| {
        s.set_send_buffer_size(n)
    });

    let (level, name) = if addr.is_ipv6() {
        (libc::IPPROTO_IPV6, libc::IPV6_RECVERR)
    } else {
        (libc::IPPROTO_IP, libc::IP_RECVERR)
    };
    setsockopt_int(&socket, level, name, 0)?;

    // Set DF and ignore the path-MTU cache (IP_PMTUDISC_PROBE): media datagrams are far below any MTU,
    // and with DF an unconnected socket's IP ID is simply 0. Without it, every datagram takes the
    // kernel's shared, hashed IP-ID generator (`__ip_select_ident`), 5% of a worker's time at 400 kpps.
    let (level, name, value) = if addr.is_ipv6() {
        (
            libc::IPPROTO_IPV6,
            libc::IPV6_MTU_DISCOVER,
            libc::IPV6_PMTUDISC_PROBE,
        )
    } else {
        (
            libc::IPPROTO_IP,
            libc::IP_MTU_DISCOVER,
            libc::IP_PMTUDISC_PROBE,
        )
    };
    if let Err(e) = setsockopt_int(&socket, level, name, value) {
        tracing::debug!(error = %e, "could not set the DF bit; IP IDs will be generated per datagram");
    }

    socket.set_nonblocking(nonblocking)?;
    socket.bind(&addr.into())?;
    tracing::debug!(
        %addr,
        rcvbuf = socket.recv_buffer_size().unwrap_or(0),
        sndbuf = socket.send_buffer_size().unwrap_or(0),
        nonblocking,
        "bound UDP socket"
    );
    Ok(socket.into())
}

/// Tries the `*FORCE` option, then the plain one. Failure to grow a buffer is logged, not fatal.
fn set_buf(
    socket: &Socket,
    force_opt: libc::c_int,
    bytes: usize,
    plain: impl Fn(&Socket, usize) -> io::Result<()>,
) {
    // The kernel doubles the value it is given (bookkeeping overhead); ask for half.
    let half = (bytes / 2).min(i32::MAX as usize) as libc::c_int;
    if setsockopt_int(socket, libc::SOL_SOCKET, force_opt, half).is_ok() {
        return;
    }
    if let Err(e) = plain(socket, bytes / 2) {
        tracing::debug!(error = %e, bytes, "could not set socket buffer size");
    }
}

pub(crate) fn setsockopt_int(
    socket: &Socket,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: passes a pointer to a live c_int and its exact size; the fd is open for the
    // duration of the call because `socket` is borrowed.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_bind_v4_and_v6_with_buffers() {
        let cfg = IoConfig::default();
        let s = bind_udp("127.0.0.1:0".parse().unwrap(), &cfg, true).unwrap();
        assert_ne!(s.local_addr().unwrap().port(), 0);
        let sock = socket2::SockRef::from(&s);
        assert!(!sock.reuse_address().unwrap());
        // Either forced to the full size or clamped by rmem_max; never below the default.
        assert!(sock.recv_buffer_size().unwrap() >= 200_000);
        if let Ok(s6) = bind_udp("[::1]:0".parse().unwrap(), &cfg, false) {
            assert!(s6.local_addr().unwrap().is_ipv6());
        }
        // Binding the same port twice fails (no SO_REUSEADDR).
        let addr = s.local_addr().unwrap();
        assert!(bind_udp(addr, &cfg, true).is_err());
    }
}
