//! Time as the control plane's pure cores take it: one reading of both clocks, passed in by the I/O
//! shell (a handler, a socket loop, the housekeeping task) so that tests step time instead of
//! sleeping. Nothing below this module reads a clock itself.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// One moment, on the monotonic clock (deadlines, cooldowns, rate limits) and on the wall clock
/// (what the API shows: `created_at`, `last_switch_at`, token expiry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// Monotonic time, for durations.
    pub instant: Instant,
    /// Wall-clock time, for timestamps others read.
    pub wall: SystemTime,
}

impl Now {
    /// Reads both clocks (the I/O shell's job).
    pub fn read() -> Self {
        Self {
            instant: Instant::now(),
            wall: SystemTime::now(),
        }
    }

    /// Seconds since the Unix epoch of the wall-clock reading.
    pub fn unix_secs(&self) -> u64 {
        unix_secs(self.wall)
    }

    /// The same moment `d` later on both clocks (tests step time with it).
    #[must_use]
    pub fn plus(self, d: Duration) -> Self {
        Self {
            instant: self.instant + d,
            wall: self.wall + d,
        }
    }
}

/// Seconds since the Unix epoch (0 for a time before it).
pub fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Milliseconds since the Unix epoch (0 for a time before it).
pub fn unix_millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_seconds_and_steps() {
        assert_eq!(unix_secs(UNIX_EPOCH + Duration::from_millis(2_999)), 2);
        assert_eq!(unix_secs(UNIX_EPOCH - Duration::from_secs(5)), 0);
        assert_eq!(
            unix_millis(UNIX_EPOCH + Duration::from_millis(2_999)),
            2_999
        );
        let t = Now::read();
        let later = t.plus(Duration::from_secs(3));
        assert_eq!(
            later.unix_secs(),
            unix_secs(t.wall + Duration::from_secs(3))
        );
        assert_eq!(later.instant - t.instant, Duration::from_secs(3));
    }
}
