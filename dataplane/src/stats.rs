//! Per-worker counters the control plane reads without locks.
//!
//! Each [`WorkerStats`] has exactly one writer, its worker thread, so a counter is bumped with a relaxed
//! load and store rather than a locked read-modify-write: no bus lock on the packet path, and readers
//! on other threads still see whole 64-bit values (torn reads are impossible for aligned `AtomicU64`).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Why a datagram (or one copy of it) was not forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(usize)]
pub enum DropReason {
    /// No transport matches the source address (and no unlatched transport claims its SSRC).
    UnknownSource,
    /// Bytes that do not parse as what their first byte says they are, or an SSRC the sender did not declare.
    Malformed,
    /// SRTP/SRTCP authentication failed: wrong key, tampered or forged packet.
    AuthFailed,
    /// SRTP/SRTCP replay protection rejected a packet already seen or too old.
    Replayed,
    /// An egress batch or a cross-worker ring was full.
    QueueFull,
    /// The publisher is muted, or the transport may not publish.
    Muted,
    /// A packet kind this worker does not serve (STUN/DTLS without a control plane, RTCP we terminate).
    Unsupported,
    /// The kernel refused to send a datagram (destination unreachable, buffer exhausted).
    SendFailed,
    /// Authenticated RTP from a publisher on an SSRC the control plane has not confirmed for it yet
    /// (its offer had no `a=ssrc`, or it changed SSRC): held back until confirmed, or for good when
    /// another member of the room publishes with that SSRC.
    UnconfirmedSsrc,
    /// DTLS from a transport beyond its budget (a burst, then a few per second; smaller once its
    /// handshake completed): dropped in the worker, never handed to the control plane.
    DtlsFlood,
    /// A datagram larger than a receive slot (2,048 bytes): the kernel truncated it and the worker
    /// dropped it unread.
    Oversized,
}

impl DropReason {
    /// Every reason, in counter order.
    pub const ALL: [DropReason; 11] = [
        DropReason::UnknownSource,
        DropReason::Malformed,
        DropReason::AuthFailed,
        DropReason::Replayed,
        DropReason::QueueFull,
        DropReason::Muted,
        DropReason::Unsupported,
        DropReason::SendFailed,
        DropReason::UnconfirmedSsrc,
        DropReason::DtlsFlood,
        DropReason::Oversized,
    ];

    /// Stable snake_case name, used in JSON and Prometheus labels.
    pub fn name(self) -> &'static str {
        match self {
            DropReason::UnknownSource => "unknown_source",
            DropReason::Malformed => "malformed",
            DropReason::AuthFailed => "auth_failed",
            DropReason::Replayed => "replayed",
            DropReason::QueueFull => "queue_full",
            DropReason::Muted => "muted",
            DropReason::Unsupported => "unsupported",
            DropReason::SendFailed => "send_failed",
            DropReason::UnconfirmedSsrc => "unconfirmed_ssrc",
            DropReason::DtlsFlood => "dtls_flood",
            DropReason::Oversized => "oversized",
        }
    }
}

/// A monotonically increasing counter with a single writer.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds `n`. Only the owning worker thread may call this (single writer).
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.store(self.0.load(Relaxed).wrapping_add(n), Relaxed);
    }

    /// Current value, from any thread.
    #[inline]
    pub fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

/// Counters of one worker.
#[derive(Debug, Default)]
pub struct WorkerStats {
    /// Datagrams received from the socket.
    pub packets_in: Counter,
    /// Bytes received from the socket.
    pub bytes_in: Counter,
    /// Datagrams the kernel accepted for sending.
    pub packets_out: Counter,
    /// Bytes the kernel accepted for sending.
    pub bytes_out: Counter,
    /// Decrypted packets handed to other workers over relay rings.
    pub relayed_out: Counter,
    /// Decrypted packets taken from other workers' relay rings.
    pub relayed_in: Counter,
    /// Packets received on relay legs from other nodes (a cascade).
    pub cascade_in: Counter,
    /// Packets sent on relay legs to other nodes.
    pub cascade_out: Counter,
    /// RTCP packets authenticated and terminated here.
    pub rtcp_in: Counter,
    /// RTCP datagrams (sender and receiver reports) this hop wrote.
    pub rtcp_out: Counter,
    /// ICE connectivity checks answered.
    pub stun_answered: Counter,
    /// Reports to the control plane dropped because its channel was full.
    pub upcalls_dropped: Counter,
    drops: [Counter; DropReason::ALL.len()],
}

impl WorkerStats {
    /// Counts `n` drops for `reason`.
    #[inline]
    pub fn count_drop(&self, reason: DropReason, n: u64) {
        self.drops[reason as usize].add(n);
    }

    /// Drops so far for `reason`.
    pub fn drops(&self, reason: DropReason) -> u64 {
        self.drops[reason as usize].get()
    }

    /// A consistent-enough copy of every counter (each value is exact; they are read one by one).
    pub fn snapshot(&self) -> StatsSnapshot {
        let mut drops = [0; DropReason::ALL.len()];
        for (d, c) in drops.iter_mut().zip(&self.drops) {
            *d = c.get();
        }
        StatsSnapshot {
            packets_in: self.packets_in.get(),
            bytes_in: self.bytes_in.get(),
            packets_out: self.packets_out.get(),
            bytes_out: self.bytes_out.get(),
            relayed_out: self.relayed_out.get(),
            relayed_in: self.relayed_in.get(),
            cascade_in: self.cascade_in.get(),
            cascade_out: self.cascade_out.get(),
            rtcp_in: self.rtcp_in.get(),
            rtcp_out: self.rtcp_out.get(),
            stun_answered: self.stun_answered.get(),
            upcalls_dropped: self.upcalls_dropped.get(),
            drops,
        }
    }
}

/// Plain copy of a worker's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// See [`WorkerStats::packets_in`].
    pub packets_in: u64,
    /// See [`WorkerStats::bytes_in`].
    pub bytes_in: u64,
    /// See [`WorkerStats::packets_out`].
    pub packets_out: u64,
    /// See [`WorkerStats::bytes_out`].
    pub bytes_out: u64,
    /// See [`WorkerStats::relayed_out`].
    pub relayed_out: u64,
    /// See [`WorkerStats::relayed_in`].
    pub relayed_in: u64,
    /// See [`WorkerStats::cascade_in`].
    pub cascade_in: u64,
    /// See [`WorkerStats::cascade_out`].
    pub cascade_out: u64,
    /// See [`WorkerStats::rtcp_in`].
    pub rtcp_in: u64,
    /// See [`WorkerStats::rtcp_out`].
    pub rtcp_out: u64,
    /// See [`WorkerStats::stun_answered`].
    pub stun_answered: u64,
    /// See [`WorkerStats::upcalls_dropped`].
    pub upcalls_dropped: u64,
    /// Drops indexed by `DropReason as usize`.
    pub drops: [u64; DropReason::ALL.len()],
}

impl StatsSnapshot {
    /// Drops for one reason.
    pub fn drops(&self, reason: DropReason) -> u64 {
        self.drops[reason as usize]
    }

    /// Drops over all reasons.
    pub fn total_drops(&self) -> u64 {
        self.drops.iter().sum()
    }

    /// Field-wise sum, for totals over workers.
    pub fn merged(mut self, other: &StatsSnapshot) -> StatsSnapshot {
        self.packets_in += other.packets_in;
        self.bytes_in += other.bytes_in;
        self.packets_out += other.packets_out;
        self.bytes_out += other.bytes_out;
        self.relayed_out += other.relayed_out;
        self.relayed_in += other.relayed_in;
        self.cascade_in += other.cascade_in;
        self.cascade_out += other.cascade_out;
        self.rtcp_in += other.rtcp_in;
        self.rtcp_out += other.rtcp_out;
        self.stun_answered += other.stun_answered;
        self.upcalls_dropped += other.upcalls_dropped;
        for (a, b) in self.drops.iter_mut().zip(&other.drops) {
            *a += b;
        }
        self
    }
}
