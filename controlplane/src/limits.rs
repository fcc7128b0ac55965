//! The limits that keep hostile clients from holding the server (docs/security.md): HTTP
//! ([`HttpLimits`]: header and request time, connections, body size) and signaling
//! ([`SignalLimits`]: frame size, keep-alive, relayed bytes), with the pure keep-alive policy of a
//! signaling socket ([`Liveness`]) over `Instant`s the caller passes in.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Largest JSON request body (413 `body_too_large` beyond).
pub const MAX_JSON_BODY: usize = 64 * 1024;
/// Largest WebSocket frame or message a client may send.
pub const MAX_WS_MESSAGE: usize = 64 * 1024;
/// Largest SDP relayed peer to peer (`peer_offer`/`peer_answer`).
pub const MAX_RELAYED_SDP: usize = 16 * 1024;

/// Limits of the HTTP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Time a client has to send a request's headers, from the connection (or the previous
    /// response) on; the connection is closed after it.
    pub header_read_timeout: Duration,
    /// Time a request (body and handler) may take before it is answered 408 `request_timeout`.
    pub request_timeout: Duration,
    /// Connections open at once, signaling sockets included; more are closed at once.
    pub max_connections: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_connections: 4096,
        }
    }
}

/// What the HTTP server's connection cap has seen, for `/metrics`: connections open now, and
/// those closed at once because the cap was reached.
#[derive(Debug, Default)]
pub struct HttpCounters {
    open: AtomicU64,
    refused: AtomicU64,
}

impl HttpCounters {
    /// A connection was accepted under the cap.
    pub fn opened(&self) {
        self.open.fetch_add(1, Ordering::Relaxed);
    }

    /// An accepted connection ended.
    pub fn closed(&self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }

    /// A connection was closed at once: the cap was reached. Returns how many so far.
    pub fn count_refusal(&self) -> u64 {
        self.refused.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Connections open now.
    pub fn open_now(&self) -> u64 {
        self.open.load(Ordering::Relaxed)
    }

    /// Connections refused since start.
    pub fn refused_total(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

/// Limits of a signaling socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignalLimits {
    /// The server pings a socket this often.
    pub ping_interval: Duration,
    /// A socket the client has sent nothing on (no message, no pong) for this long is closed.
    pub idle_timeout: Duration,
    /// Bytes relayed to one receiver per second, all senders together.
    pub relay_bytes_per_s: u32,
    /// Bytes relayed to one receiver in a burst.
    pub relay_burst_bytes: u32,
}

impl Default for SignalLimits {
    fn default() -> Self {
        Self {
            ping_interval: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(45),
            relay_bytes_per_s: 128 * 1024,
            relay_burst_bytes: 512 * 1024,
        }
    }
}

/// What a signaling socket should do now about keep-alive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepAlive {
    /// Nothing yet.
    Wait,
    /// Send a ping.
    Ping,
    /// The client has been silent for the idle timeout: close the socket.
    Close,
}

/// The keep-alive state of one socket: when the client was last heard and pinged.
#[derive(Debug, Clone)]
pub struct Liveness {
    heard: Instant,
    pinged: Instant,
    limits: SignalLimits,
}

impl Liveness {
    /// A socket opened at `now`.
    pub fn new(now: Instant, limits: SignalLimits) -> Self {
        Self {
            heard: now,
            pinged: now,
            limits,
        }
    }

    /// The client sent something (any frame) at `now`.
    pub fn heard(&mut self, now: Instant) {
        self.heard = self.heard.max(now);
    }

    /// What to do at `now`; a `Ping` is counted as sent.
    pub fn poll(&mut self, now: Instant) -> KeepAlive {
        if now.saturating_duration_since(self.heard) >= self.limits.idle_timeout {
            KeepAlive::Close
        } else if now.saturating_duration_since(self.pinged) >= self.limits.ping_interval {
            self.pinged = now;
            KeepAlive::Ping
        } else {
            KeepAlive::Wait
        }
    }

    /// How often the caller should [`poll`](Self::poll): a fraction of the shorter interval.
    pub fn tick(&self) -> Duration {
        (self.limits.ping_interval.min(self.limits.idle_timeout) / 4).max(Duration::from_millis(50))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_silent_socket_is_pinged_every_interval_then_closed_at_the_idle_timeout() {
        let t0 = Instant::now();
        let mut l = Liveness::new(t0, SignalLimits::default());
        let at = |s| t0 + Duration::from_secs(s);
        assert_eq!(l.poll(at(14)), KeepAlive::Wait);
        assert_eq!(l.poll(at(15)), KeepAlive::Ping);
        assert_eq!(l.poll(at(16)), KeepAlive::Wait);
        assert_eq!(l.poll(at(30)), KeepAlive::Ping);
        assert_eq!(l.poll(at(44)), KeepAlive::Wait);
        assert_eq!(l.poll(at(45)), KeepAlive::Close);
    }

    #[test]
    fn anything_heard_from_the_client_resets_the_idle_clock() {
        let t0 = Instant::now();
        let mut l = Liveness::new(t0, SignalLimits::default());
        let at = |s| t0 + Duration::from_secs(s);
        assert_eq!(l.poll(at(15)), KeepAlive::Ping);
        l.heard(at(16)); // the pong
        assert_eq!(l.poll(at(45)), KeepAlive::Ping);
        assert_eq!(l.poll(at(60)), KeepAlive::Ping);
        assert_eq!(l.poll(at(61)), KeepAlive::Close);
        assert!(l.tick() <= Duration::from_secs(4));
    }
}
