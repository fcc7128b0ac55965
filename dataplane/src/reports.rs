//! RTCP terminated at every hop (RFC 3550 §6.4), as mediasoup and LiveKit do: what sluice measures
//! about the streams it receives, and what it learns from the reports of those it sends to.
//!
//! - [`Reception`]: one incoming stream's statistics (RFC 3550 A.1 sequence tracking, A.3 loss, A.8
//!   jitter, and the last SR for LSR/DLSR), from which sluice writes the report block it sends the
//!   publisher;
//! - [`Downlink`]: what a subscriber's receiver reports say of the slot streams sluice sends it (the
//!   worst fraction lost and jitter since the last look, and the round-trip time from LSR/DLSR);
//! - [`NtpClock`]: wall-clock NTP time for an `Instant`, from one anchor the caller passes in (the core
//!   reads no clock).
//!
//! The worst loss among a publisher's subscribers is folded into its report block by the caller
//! ([`Reception::report`]'s `downstream`), so an Opus encoder turns in-band FEC on when any listener
//! loses packets, not only when the first hop does.
//!
//! Pure state over numbers and `Instant`s: no I/O, no allocation.

use std::time::{Duration, Instant};

use crate::packet::ReportBlock;

/// Seconds from the NTP era (1900) to the Unix epoch.
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// A sequence number this far ahead of the highest one is a gap of lost packets (RFC 3550 A.1).
const MAX_DROPOUT: u16 = 3000;
/// A sequence number this far behind the highest one is a late (reordered) packet; farther is a
/// restart of the stream's numbering.
const MAX_MISORDER: u16 = 100;

/// A 64-bit NTP timestamp (RFC 5905: seconds since 1900 in the high word, the fraction in the low).
pub fn ntp_from_unix(since_unix: Duration) -> u64 {
    let secs = since_unix.as_secs().wrapping_add(NTP_UNIX_OFFSET);
    let frac = (u64::from(since_unix.subsec_nanos()) << 32) / 1_000_000_000;
    (secs << 32) | frac
}

/// The middle 32 bits of an NTP timestamp, as LSR and RTT arithmetic use them (1/65536 s units).
#[inline]
pub fn ntp_mid32(ntp: u64) -> u32 {
    (ntp >> 16) as u32
}

/// A duration in 1/65536 s units (DLSR), saturating.
#[inline]
pub fn to_units(d: Duration) -> u32 {
    let units = d.as_micros().saturating_mul(65_536) / 1_000_000;
    u32::try_from(units).unwrap_or(u32::MAX)
}

/// Wall-clock NTP time for monotonic instants: one anchor (an `Instant` and the wall clock then),
/// refreshed by the caller now and then so NTP follows the system clock's adjustments.
#[derive(Debug, Clone, Copy)]
pub struct NtpClock {
    at: Instant,
    ntp: u64,
}

impl NtpClock {
    /// The anchor: at `at` the wall clock read `since_unix` after the Unix epoch.
    pub fn new(at: Instant, since_unix: Duration) -> Self {
        Self {
            at,
            ntp: ntp_from_unix(since_unix),
        }
    }

    /// The NTP timestamp of `now` (before the anchor: the anchor's).
    pub fn ntp(&self, now: Instant) -> u64 {
        let d = now.saturating_duration_since(self.at);
        let add = (d.as_secs() << 32) | ((u64::from(d.subsec_nanos()) << 32) / 1_000_000_000);
        self.ntp.wrapping_add(add)
    }
}

/// What a report block says of a stream's loss and jitter, in the block's units.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Quality {
    /// Fraction lost in 1/256 (the worst one seen, for a window).
    pub fraction_lost: u8,
    /// Interarrival jitter in RTP timestamp units.
    pub jitter: u32,
}

impl Quality {
    /// The worse of two, field by field.
    pub fn worst(self, other: Quality) -> Quality {
        Quality {
            fraction_lost: self.fraction_lost.max(other.fraction_lost),
            jitter: self.jitter.max(other.jitter),
        }
    }
}

/// Reception statistics of one incoming RTP stream (RFC 3550 Appendix A.1, A.3, A.8).
#[derive(Debug, Clone, Default)]
pub struct Reception {
    started: bool,
    base_seq: u32,
    max_seq: u16,
    /// Sequence-number cycles, shifted (a multiple of 65,536).
    cycles: u32,
    received: u32,
    expected_prior: u32,
    received_prior: u32,
    /// Jitter times 16 (A.8 keeps it scaled to avoid a division).
    jitter_q4: u32,
    transit: Option<u32>,
    /// Arrivals are measured from here, in RTP ticks.
    epoch: Option<Instant>,
    /// The last SR's NTP middle bits and when it arrived.
    last_sr: Option<(u32, Instant)>,
    /// The fraction lost in the last report written.
    last_fraction: u8,
}

impl Reception {
    /// Counts one packet with sequence `seq` and RTP timestamp `ts`, arriving at `now`, on a
    /// `clock_rate` Hz clock.
    pub fn on_packet(&mut self, now: Instant, seq: u16, ts: u32, clock_rate: u32) {
        let epoch = *self.epoch.get_or_insert(now);
        let arrival = (now.saturating_duration_since(epoch).as_micros() as u64
            * u64::from(clock_rate)
            / 1_000_000) as u32;
        if !self.started {
            self.restart(seq);
        } else {
            let delta = seq.wrapping_sub(self.max_seq);
            if delta == 0 {
                // A duplicate: counted as received, as RFC 3550 does (losses may go negative).
            } else if delta < MAX_DROPOUT {
                if seq < self.max_seq {
                    self.cycles = self.cycles.wrapping_add(1 << 16);
                }
                self.max_seq = seq;
            } else if delta <= u16::MAX - MAX_MISORDER {
                // A jump: the sender restarted its numbering (a new SSRC is a new stream anyway).
                self.restart(seq);
            }
            // else: a late packet of this cycle, counted below.
        }
        self.received = self.received.wrapping_add(1);
        let transit = arrival.wrapping_sub(ts);
        if let Some(prev) = self.transit.replace(transit) {
            let d = (transit.wrapping_sub(prev) as i32).unsigned_abs();
            // J += (|D| - J) / 16, with J kept times 16.
            self.jitter_q4 = self
                .jitter_q4
                .wrapping_add(d)
                .wrapping_sub((self.jitter_q4 + 8) >> 4);
        }
    }

    fn restart(&mut self, seq: u16) {
        self.started = true;
        self.base_seq = u32::from(seq);
        self.max_seq = seq;
        self.cycles = 0;
        self.received = 0;
        self.expected_prior = 0;
        self.received_prior = 0;
    }

    /// Notes a sender report from the stream's sender (NTP timestamp `ntp`) arriving at `now`.
    pub fn on_sender_report(&mut self, now: Instant, ntp: u64) {
        self.last_sr = Some((ntp_mid32(ntp), now));
    }

    /// True once a packet arrived.
    pub fn started(&self) -> bool {
        self.started
    }

    /// Packets received (since the last restart of the numbering).
    pub fn received(&self) -> u32 {
        self.received
    }

    fn ext_max(&self) -> u32 {
        self.cycles.wrapping_add(u32::from(self.max_seq))
    }

    fn expected(&self) -> u32 {
        self.ext_max().wrapping_sub(self.base_seq).wrapping_add(1)
    }

    /// Cumulative packets lost (negative with duplicates).
    pub fn cumulative_lost(&self) -> i64 {
        i64::from(self.expected()) - i64::from(self.received)
    }

    /// The measured quality: the fraction lost in the last report written and today's jitter.
    pub fn quality(&self) -> Quality {
        Quality {
            fraction_lost: self.last_fraction,
            jitter: self.jitter_q4 >> 4,
        }
    }

    /// The report block about this stream (sent by `ssrc`) for a report written at `now`, and
    /// starts the next interval; `None` before the first packet. `downstream` is the worst quality
    /// among the stream's subscribers: the block says the worse of it and this hop's.
    pub fn report(&mut self, ssrc: u32, now: Instant, downstream: Quality) -> Option<ReportBlock> {
        if !self.started {
            return None;
        }
        let expected = self.expected();
        let expected_interval = expected.wrapping_sub(self.expected_prior);
        let received_interval = self.received.wrapping_sub(self.received_prior);
        self.expected_prior = expected;
        self.received_prior = self.received;
        let lost_interval = i64::from(expected_interval) - i64::from(received_interval);
        self.last_fraction = if expected_interval == 0 || lost_interval <= 0 {
            0
        } else {
            ((lost_interval << 8) / i64::from(expected_interval)).min(255) as u8
        };
        let q = self.quality().worst(downstream);
        let (lsr, dlsr) = match self.last_sr {
            Some((lsr, at)) => (lsr, to_units(now.saturating_duration_since(at))),
            None => (0, 0),
        };
        Some(ReportBlock {
            ssrc,
            fraction_lost: q.fraction_lost,
            cumulative_lost: self.cumulative_lost().clamp(-0x80_0000, 0x7F_FFFF) as i32,
            ext_highest_seq: self.ext_max(),
            jitter: q.jitter,
            lsr,
            dlsr,
        })
    }
}

/// What one subscriber's receiver reports said about the streams sluice sends it, since the last
/// [`Downlink::take`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Downlink {
    worst: Quality,
    /// Cumulative losses of the last block, per the subscriber.
    lost: i32,
    rtt: Option<Duration>,
    blocks: u32,
}

/// A window of [`Downlink`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DownlinkSample {
    /// The worst fraction lost and jitter reported.
    pub worst: Quality,
    /// Cumulative losses in the last block (the subscriber's count for that stream).
    pub lost: i32,
    /// The last round-trip time measured (needs an SR of ours echoed in LSR).
    pub rtt: Option<Duration>,
    /// Report blocks read.
    pub blocks: u32,
}

impl Downlink {
    /// Reads one report block about a stream sluice sends, received when NTP time was `ntp_now`.
    pub fn on_block(&mut self, block: &ReportBlock, ntp_now: u64) {
        self.blocks = self.blocks.saturating_add(1);
        self.worst = self.worst.worst(Quality {
            fraction_lost: block.fraction_lost,
            jitter: block.jitter,
        });
        self.lost = block.cumulative_lost;
        if block.lsr != 0 {
            // RFC 3550 §6.4.1: A - LSR - DLSR, in 1/65536 s; a result "from the future" (clock
            // steps, a lying peer) is not a round trip.
            let units = ntp_mid32(ntp_now)
                .wrapping_sub(block.lsr)
                .wrapping_sub(block.dlsr);
            if units < 0x8000_0000 {
                self.rtt = Some(Duration::from_micros(u64::from(units) * 1_000_000 / 65_536));
            }
        }
    }

    /// What the reports since the last call said, and starts a new window; `None` when no block
    /// came.
    pub fn take(&mut self) -> Option<DownlinkSample> {
        if self.blocks == 0 {
            return None;
        }
        let sample = DownlinkSample {
            worst: self.worst,
            lost: self.lost,
            rtt: self.rtt,
            blocks: self.blocks,
        };
        self.worst = Quality::default();
        self.blocks = 0;
        self.rtt = None;
        Some(sample)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS20: Duration = Duration::from_millis(20);

    /// Feeds `n` packets 20 ms apart from `seq0`, skipping those `lost` says, on time.
    fn feed(r: &mut Reception, t0: Instant, seq0: u16, n: u16, lost: impl Fn(u16) -> bool) {
        for i in 0..n {
            if lost(i) {
                continue;
            }
            let seq = seq0.wrapping_add(i);
            r.on_packet(t0 + MS20 * u32::from(i), seq, 960 * u32::from(i), 48_000);
        }
    }

    #[test]
    fn ntp_conversion() {
        assert_eq!(ntp_from_unix(Duration::ZERO) >> 32, NTP_UNIX_OFFSET);
        let half = ntp_from_unix(Duration::from_millis(1500));
        assert_eq!(half >> 32, NTP_UNIX_OFFSET + 1);
        assert_eq!(half as u32, 0x8000_0000);
        let t0 = Instant::now();
        let c = NtpClock::new(t0, Duration::from_secs(10));
        assert_eq!(c.ntp(t0 + Duration::from_millis(250)) - c.ntp(t0), 1 << 30);
        assert_eq!(c.ntp(t0 - Duration::from_secs(1)), c.ntp(t0));
        assert_eq!(to_units(Duration::from_millis(500)), 32_768);
    }

    #[test]
    fn no_loss_no_jitter() {
        let mut r = Reception::default();
        let t0 = Instant::now();
        assert_eq!(r.report(1, t0, Quality::default()), None);
        feed(&mut r, t0, 65_500, 100, |_| false);
        let b = r.report(1, t0, Quality::default()).unwrap();
        assert_eq!(b.fraction_lost, 0);
        assert_eq!(b.cumulative_lost, 0);
        // Wrapped once: 65,500 + 99 is 63 in the second cycle.
        assert_eq!(b.ext_highest_seq, 65_536 + 63);
        assert_eq!(b.jitter, 0);
        assert_eq!((b.lsr, b.dlsr), (0, 0));
    }

    #[test]
    fn a_tenth_lost_reads_as_25_of_256_then_recovers() {
        let mut r = Reception::default();
        let t0 = Instant::now();
        feed(&mut r, t0, 10, 100, |i| i % 10 == 5);
        let b = r.report(9, t0, Quality::default()).unwrap();
        assert_eq!(b.cumulative_lost, 10);
        assert_eq!(b.fraction_lost, 25); // 10/100 * 256
                                         // The next interval loses nothing: the fraction is per interval, the total stays.
        feed(&mut r, t0 + MS20 * 100, 110, 50, |_| false);
        let b = r.report(9, t0, Quality::default()).unwrap();
        assert_eq!((b.fraction_lost, b.cumulative_lost), (0, 10));
        assert_eq!(r.quality().fraction_lost, 0);
    }

    #[test]
    fn downstream_loss_is_folded_into_the_block() {
        let mut r = Reception::default();
        let t0 = Instant::now();
        feed(&mut r, t0, 0, 50, |_| false);
        let worst = Quality {
            fraction_lost: 13,
            jitter: 480,
        };
        let b = r.report(9, t0, worst).unwrap();
        assert_eq!((b.fraction_lost, b.jitter, b.cumulative_lost), (13, 480, 0));
    }

    #[test]
    fn reordering_duplicates_and_restarts() {
        let mut r = Reception::default();
        let t0 = Instant::now();
        for (i, seq) in [1u16, 2, 4, 3, 5, 5].into_iter().enumerate() {
            r.on_packet(t0 + MS20 * i as u32, seq, 0, 48_000);
        }
        // 1..=5 expected, six received (a duplicate): -1 lost, nothing fractional.
        let b = r.report(9, t0, Quality::default()).unwrap();
        assert_eq!(
            (b.cumulative_lost, b.fraction_lost, b.ext_highest_seq),
            (-1, 0, 5)
        );
        // A jump of 30,000 restarts the count instead of reporting 30,000 lost.
        r.on_packet(t0, 30_005, 0, 48_000);
        r.on_packet(t0, 30_006, 0, 48_000);
        let b = r.report(9, t0, Quality::default()).unwrap();
        assert_eq!((b.cumulative_lost, b.ext_highest_seq), (0, 30_006));
    }

    #[test]
    fn jitter_follows_rfc3550_a8() {
        let mut r = Reception::default();
        let t0 = Instant::now();
        // Packets every 20 ms of RTP time, arriving alternately on time and 10 ms late.
        for i in 0..400u32 {
            let late = if i % 2 == 1 {
                Duration::from_millis(10)
            } else {
                Duration::ZERO
            };
            r.on_packet(t0 + MS20 * i + late, i as u16, 960 * i, 48_000);
        }
        // |D| is 480 ticks each time: J converges to 480.
        let j = r.quality().jitter;
        assert!((470..=480).contains(&j), "{j}");
    }

    #[test]
    fn lsr_and_dlsr_echo_the_last_sender_report() {
        let mut r = Reception::default();
        let t0 = Instant::now();
        feed(&mut r, t0, 0, 10, |_| false);
        let ntp = 0x1234_5678_9ABC_DEF0;
        r.on_sender_report(t0, ntp);
        let b = r
            .report(9, t0 + Duration::from_millis(250), Quality::default())
            .unwrap();
        assert_eq!(b.lsr, 0x5678_9ABC);
        assert_eq!(b.dlsr, 16_384);
    }

    #[test]
    fn downlink_keeps_the_worst_and_measures_rtt() {
        let mut d = Downlink::default();
        assert_eq!(d.take(), None);
        let clock = NtpClock::new(Instant::now(), Duration::from_secs(1_000));
        let sent = clock.ntp(clock.at);
        let block = |fraction_lost, jitter, dlsr| ReportBlock {
            ssrc: 1,
            fraction_lost,
            cumulative_lost: 4,
            ext_highest_seq: 0,
            jitter,
            lsr: ntp_mid32(sent),
            dlsr,
        };
        // Our SR went out at `sent`; the subscriber held it 100 ms; its RR came back 140 ms later.
        let back = clock.ntp(clock.at + Duration::from_millis(140));
        d.on_block(&block(30, 100, to_units(Duration::from_millis(100))), back);
        d.on_block(&block(5, 900, to_units(Duration::from_millis(100))), back);
        let s = d.take().unwrap();
        assert_eq!(
            s.worst,
            Quality {
                fraction_lost: 30,
                jitter: 900
            }
        );
        assert_eq!((s.lost, s.blocks), (4, 2));
        let rtt = s.rtt.unwrap();
        assert!(
            rtt.abs_diff(Duration::from_millis(40)) < Duration::from_millis(1),
            "{rtt:?}"
        );
        // A DLSR larger than the time since: not a round trip.
        d.on_block(&block(0, 0, to_units(Duration::from_secs(5))), back);
        assert_eq!(d.take().unwrap().rtt, None);
        assert_eq!(d.take(), None);
    }
}
