//! Waking a sleeping worker: an eventfd (`EFD_NONBLOCK | EFD_CLOEXEC`) that the backends wait on
//! next to their socket.
//!
//! The control plane pushes a command into a worker's channel and calls [`Wake::wake`]; the
//! worker's blocked `recv` returns promptly and the worker drains its channel. Writes coalesce
//! (the eventfd is a counter), so waking an already-woken worker costs one syscall and nothing
//! else. `Wake` is a cheap `Arc` clone and `Send + Sync`.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;

/// An eventfd-based wake-up for one worker.
#[derive(Debug, Clone)]
pub struct Wake {
    fd: Arc<OwnedFd>,
}

impl Wake {
    /// Creates a non-blocking, close-on-exec eventfd with a zero counter.
    pub fn new() -> io::Result<Self> {
        // SAFETY: eventfd has no memory-safety preconditions; the flags are valid constants.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by eventfd, is open and owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Self { fd: Arc::new(fd) })
    }

    /// Wakes the worker waiting on this eventfd (adds 1 to the counter). Never blocks; a full
    /// counter (EAGAIN) already means "woken".
    pub fn wake(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to an eventfd we own; eventfd requires exactly
        // an 8-byte buffer.
        let _ = unsafe {
            libc::write(
                self.fd.as_raw_fd(),
                (&one as *const u64).cast(),
                std::mem::size_of::<u64>(),
            )
        };
    }

    /// The raw eventfd that backends poll for readability.
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Resets the counter to zero (non-blocking; does nothing if not woken).
    pub fn drain(&self) {
        let mut value: u64 = 0;
        // SAFETY: reads at most 8 bytes into a live, writable u64; the fd is non-blocking, so
        // this returns EAGAIN instead of sleeping when the counter is zero.
        let _ = unsafe {
            libc::read(
                self.fd.as_raw_fd(),
                (&mut value as *mut u64).cast(),
                std::mem::size_of::<u64>(),
            )
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn readable(fd: RawFd) -> bool {
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, zero timeout.
        unsafe { libc::poll(&mut p, 1, 0) == 1 }
    }

    #[test]
    fn io_wake_sets_and_drain_clears() {
        let w = Wake::new().unwrap();
        assert!(!readable(w.fd()));
        let w2 = w.clone();
        std::thread::spawn(move || w2.wake()).join().unwrap();
        w.wake();
        assert!(readable(w.fd()));
        w.drain();
        assert!(!readable(w.fd()));
        w.drain(); // draining an empty eventfd is a no-op
    }
}
