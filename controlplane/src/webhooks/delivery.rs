//! Delivering one URL's events: its task reads the queue in order and attempts each event until a
//! 2xx, with the retry policy of the module doc of [`super`] ("Retries"); a dropped
//! [`Webhooks`](super::Webhooks) cuts pending backoffs short.

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::Rng;
use reqwest::Url;
use tokio::sync::{mpsc, watch};

use super::event::Delivery;
use super::signing::{HEADER_ATTEMPT, HEADER_DELIVERY, HEADER_EVENT, HEADER_SIGNATURE};
use super::Stats;

/// Most bytes of a response body read (and, for a failure, quoted in the log).
const MAX_RESPONSE_BODY: usize = 64 * 1024;
/// Most characters of a failed response's body quoted in the log.
const MAX_LOGGED_BODY: usize = 200;

/// How often and how patiently one event is attempted.
#[derive(Clone, Copy)]
pub(crate) struct RetryPolicy {
    /// Attempts before giving up (at least 1).
    pub(crate) max_attempts: u32,
    /// Delay after the first failure.
    pub(crate) initial_backoff: Duration,
    /// Longest delay.
    pub(crate) max_backoff: Duration,
}

impl RetryPolicy {
    /// The delay after the `failures`-th failed attempt (from 1): doubling from the initial
    /// backoff, capped, then shortened by a random 0-20% drawn from `rng`.
    pub(crate) fn backoff(&self, failures: u32, rng: &mut impl Rng) -> Duration {
        let doublings = failures.saturating_sub(1).min(31);
        let base = self
            .initial_backoff
            .saturating_mul(1u32 << doublings)
            .min(self.max_backoff);
        // Not `mul_f64`: it panics where the product rounds past `Duration::MAX`.
        let factor: f64 = rng.random_range(0.8..=1.0);
        Duration::try_from_secs_f64(base.as_secs_f64() * factor)
            .unwrap_or(base)
            .min(base)
    }
}

/// Why one attempt failed.
enum AttemptError {
    Request(reqwest::Error),
    Status(reqwest::StatusCode, String),
}

impl fmt::Display for AttemptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttemptError::Request(e) => {
                if e.is_timeout() {
                    f.write_str("timed out: ")?;
                }
                write!(f, "{e}")?;
                let mut source = std::error::Error::source(e);
                while let Some(s) = source {
                    write!(f, ": {s}")?;
                    source = s.source();
                }
                Ok(())
            }
            AttemptError::Status(status, body) if body.is_empty() => write!(f, "HTTP {status}"),
            AttemptError::Status(status, body) => write!(f, "HTTP {status}: {body:?}"),
        }
    }
}

/// One URL's delivery task.
pub(crate) struct Worker {
    /// Where to.
    pub(crate) url: Url,
    /// The URL for logs.
    pub(crate) display: String,
    /// Shared by every URL.
    pub(crate) client: reqwest::Client,
    /// Attempts and backoff.
    pub(crate) policy: RetryPolicy,
    /// Counters shared with the [`Webhooks`](super::Webhooks).
    pub(crate) stats: Arc<Stats>,
    /// Closed when the `Webhooks` is dropped.
    pub(crate) shutdown: watch::Receiver<()>,
    /// Jitter of the backoff.
    pub(crate) rng: StdRng,
}

impl Worker {
    /// Delivers each queued event in order until the queue closes.
    pub(crate) async fn run(mut self, mut rx: mpsc::Receiver<Arc<Delivery>>) {
        while let Some(delivery) = rx.recv().await {
            self.deliver(&delivery).await;
        }
        tracing::debug!(url = %self.display, "webhook delivery task ended");
    }

    /// Attempts `d` until it succeeds, the attempts run out, or the `Webhooks` is dropped.
    async fn deliver(&mut self, d: &Delivery) {
        let mut attempt = 1;
        loop {
            let error = match self.attempt(d, attempt).await {
                Ok(()) => {
                    self.stats.delivered.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(url = %self.display, event = d.event, id = %d.id, attempt, "webhook delivered");
                    return;
                }
                Err(e) => e,
            };
            let closing = self.shutdown.has_changed().is_err();
            if attempt < self.policy.max_attempts && !closing {
                let delay = self.policy.backoff(attempt, &mut self.rng);
                tracing::debug!(
                    url = %self.display, event = d.event, id = %d.id, attempt, error = %error,
                    retry_in_ms = delay.as_millis() as u64,
                    "webhook attempt failed"
                );
                let shut_down = tokio::select! {
                    () = tokio::time::sleep(delay) => false,
                    _ = self.shutdown.changed() => true,
                };
                if !shut_down {
                    attempt += 1;
                    continue;
                }
            }
            self.stats.failed.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                url = %self.display, event = d.event, id = %d.id, attempts = attempt, error = %error,
                "webhook delivery failed, giving up{}",
                if attempt < self.policy.max_attempts { " (shutting down)" } else { "" }
            );
            return;
        }
    }

    async fn attempt(&self, d: &Delivery, attempt: u32) -> Result<(), AttemptError> {
        let mut response = self
            .client
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(HEADER_EVENT, d.event)
            .header(HEADER_DELIVERY, d.id.as_str())
            .header(HEADER_ATTEMPT, attempt)
            .header(HEADER_SIGNATURE, d.signature.as_str())
            .body(d.body.clone())
            .send()
            .await
            .map_err(AttemptError::Request)?;
        let status = response.status();
        // Read (a bounded part of) the body: on success so the connection can be reused, on failure
        // to say why. The client's timeout covers this read too.
        let mut body = Vec::new();
        while body.len() < MAX_RESPONSE_BODY {
            match response.chunk().await {
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                Ok(None) | Err(_) => break,
            }
        }
        if status.is_success() {
            return Ok(());
        }
        let text: String = String::from_utf8_lossy(&body)
            .trim()
            .chars()
            .take(MAX_LOGGED_BODY)
            .collect();
        Err(AttemptError::Status(status, text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn backoff_doubles_and_caps() {
        let mut rng = StdRng::seed_from_u64(3);
        let p = RetryPolicy {
            max_attempts: 6,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
        };
        for (failures, base) in [(1, 500), (2, 1000), (3, 2000), (7, 30_000), (100, 30_000)] {
            let d = p.backoff(failures, &mut rng).as_millis() as u64;
            assert!(d <= base && d >= base * 8 / 10, "{failures}: {d}");
        }
        let huge = RetryPolicy {
            max_attempts: u32::MAX,
            initial_backoff: Duration::MAX,
            max_backoff: Duration::MAX,
        };
        assert!(huge.backoff(u32::MAX, &mut rng) <= Duration::MAX);
    }
}
