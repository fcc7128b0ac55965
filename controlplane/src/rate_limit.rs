//! Per-client message rate limits: a token bucket over `Instant`s the caller passes in. It keeps one
//! client from flooding the server or, through the p2p relay, the outbox of another member (which
//! would disconnect that member as a slow consumer). With a cost per call ([`RateLimit::allow_n`]) the
//! same bucket is a byte budget: the hub caps the bytes relayed to one receiver per second with it.

use std::time::Instant;

/// Messages a client may send in a burst (a browser joining a mesh of 8 trickles a few dozen).
pub const RATE_BURST: f64 = 100.0;
/// Messages per second a client may send on average.
pub const RATE_PER_S: f64 = 50.0;

/// A token bucket of `burst` messages refilled at `per_s`.
#[derive(Debug, Clone)]
pub struct RateLimit {
    tokens: f64,
    burst: f64,
    per_s: f64,
    at: Instant,
}

impl RateLimit {
    /// Full bucket of `burst`, refilled at `per_s`.
    pub fn new(now: Instant, burst: f64, per_s: f64) -> Self {
        Self {
            tokens: burst,
            burst,
            per_s,
            at: now,
        }
    }

    /// Takes one token; false when the bucket is empty.
    pub fn allow(&mut self, now: Instant) -> bool {
        self.allow_n(now, 1.0)
    }

    /// Takes `cost` tokens (a message's bytes, say) if the bucket holds them; false (and nothing
    /// taken) otherwise.
    pub fn allow_n(&mut self, now: Instant, cost: f64) -> bool {
        self.refill(now);
        if self.tokens >= cost {
            self.tokens -= cost;
            true
        } else {
            false
        }
    }

    /// Whether the bucket has refilled to its burst by `now` (it then remembers nothing a fresh
    /// one would not, and may be forgotten).
    pub fn is_full(&self, now: Instant) -> bool {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens + dt * self.per_s >= self.burst
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = self.at.max(now);
        self.tokens = (self.tokens + dt * self.per_s).min(self.burst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_rate_limit_allows_a_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut l = RateLimit::new(t0, 3.0, 10.0);
        assert!((0..3).all(|_| l.allow(t0)));
        assert!(!l.allow(t0), "burst spent");
        assert!(!l.allow(t0 + Duration::from_millis(50)), "half a token");
        assert!(l.allow(t0 + Duration::from_millis(100)));
        assert!(!l.allow(t0 + Duration::from_millis(100)));
        // A long pause refills to the burst, not beyond.
        let later = t0 + Duration::from_secs(60);
        assert!((0..3).all(|_| l.allow(later)));
        assert!(!l.allow(later));
    }

    #[test]
    fn a_byte_budget_takes_costs_and_reports_when_it_is_full_again() {
        let t0 = Instant::now();
        let mut b = RateLimit::new(t0, 1000.0, 500.0);
        assert!(b.allow_n(t0, 600.0));
        assert!(!b.allow_n(t0, 600.0), "400 left");
        assert!(b.allow_n(t0, 400.0));
        assert!(!b.is_full(t0 + Duration::from_millis(1500)));
        assert!(b.is_full(t0 + Duration::from_secs(2)));
        // Time never runs backwards for the bucket.
        assert!(!b.allow_n(t0, 1.0));
    }
}
