//! A thread's sign of life: the thread stamps it each time round its loop and `/healthz` reads how
//! long ago that was, so a thread that is stuck (alive but not looping) shows as well as one that
//! has ended. Time is passed in; one atomic store per beat.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// When a looping thread last went round its loop.
#[derive(Debug)]
pub struct Heartbeat {
    base: Instant,
    /// Microseconds after `base` of the last beat.
    last_us: AtomicU64,
}

impl Heartbeat {
    /// A heartbeat that last beat at `now`.
    pub fn new(now: Instant) -> Self {
        Self {
            base: now,
            last_us: AtomicU64::new(0),
        }
    }

    /// The thread went round its loop at `now`.
    pub fn beat(&self, now: Instant) {
        let us = now.saturating_duration_since(self.base).as_micros();
        self.last_us
            .store(u64::try_from(us).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// How long before `now` the last beat was (zero if it was after `now`).
    pub fn since(&self, now: Instant) -> Duration {
        let last = self.base + Duration::from_micros(self.last_us.load(Ordering::Relaxed));
        now.saturating_duration_since(last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_is_the_time_from_the_last_beat() {
        let t0 = Instant::now();
        let h = Heartbeat::new(t0);
        assert_eq!(h.since(t0), Duration::ZERO);
        assert_eq!(h.since(t0 + Duration::from_secs(2)), Duration::from_secs(2));
        h.beat(t0 + Duration::from_millis(1500));
        assert_eq!(
            h.since(t0 + Duration::from_secs(2)),
            Duration::from_millis(500)
        );
        assert_eq!(h.since(t0), Duration::ZERO, "a beat after `now`");
    }
}
