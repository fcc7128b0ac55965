//! When the control plane gives freed heap memory back to the kernel
//! (`sluice_dataplane::io::heap::trim`): after DTLS sessions released their OpenSSL state (a
//! handshake's memory is free then, but glibc would keep it resident), at most once per interval,
//! so a wave of joins trims a few times, not once per member. Pure: time is passed in.

use std::time::{Duration, Instant};

/// At most one trim per this long.
pub const TRIM_EVERY: Duration = Duration::from_secs(1);

/// Whether a trim is owed, and when the last one ran.
#[derive(Debug, Default)]
pub struct TrimSchedule {
    pending: bool,
    last: Option<Instant>,
}

impl TrimSchedule {
    /// Notes that `released` sessions freed their state at `now`; returns whether to trim now.
    pub fn due(&mut self, now: Instant, released: usize) -> bool {
        self.pending |= released > 0;
        if self.pending
            && self
                .last
                .is_none_or(|t| now.saturating_duration_since(t) >= TRIM_EVERY)
        {
            self.pending = false;
            self.last = Some(now);
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_release_is_trimmed_once_and_a_wave_of_them_at_most_once_a_second() {
        let t0 = Instant::now();
        let mut s = TrimSchedule::default();
        assert!(!s.due(t0, 0), "nothing freed, nothing to trim");
        assert!(s.due(t0, 1));
        assert!(!s.due(t0, 0), "once per release");
        let soon = t0 + Duration::from_millis(300);
        assert!(!s.due(soon, 5), "the next wave waits for the interval");
        assert!(!s.due(soon + Duration::from_millis(100), 0));
        assert!(
            s.due(t0 + TRIM_EVERY, 0),
            "and is trimmed then, even with no release at that tick"
        );
        assert!(!s.due(t0 + TRIM_EVERY * 3, 0));
    }
}
