//! Signed webhook delivery: tells other services what happens in rooms (a room started or finished,
//! a participant joined or left, a room changed mode) by POSTing JSON to configured URLs, without
//! ever blocking signaling.
//!
//! # Never blocking
//!
//! [`Webhooks::emit`] is a plain function, not `async`: it serializes and signs the event once and
//! `try_send`s it to each URL's bounded queue. A full queue (a slow or dead receiver) drops the event
//! for that URL only; [`Webhooks::dropped`] counts it and a warning is logged at the 1st, 2nd, 4th,
//! 8th, ... drop per URL. Each URL has its own delivery task reading its own queue, in event order,
//! so a dead URL never delays another.
//!
//! # The request
//!
//! `POST <url>` with the body
//!
//! ```json
//! {"id": "evt_0123456789abcdef", "event": "participant_joined", "created_at": 1700000000,
//!  "room": "standup", "participant": "p_1", "name": "Ada", "role": "speaker"}
//! ```
//!
//! (`id`, `event`, `created_at` in unix seconds, then the event's own fields, see
//! [`WebhookEvent`]) and the headers
//!
//! - `content-type: application/json`
//! - `x-sluice-event: <event name>`
//! - `x-sluice-delivery: <id>`, the same on every attempt: receivers can de-duplicate on it;
//! - `x-sluice-attempt: <n>`, 1 on the first attempt;
//! - `x-sluice-signature: sha256=<hex>`.
//!
//! # The signature
//!
//! `x-sluice-signature` is `sha256=` followed by the lowercase hex HMAC-SHA256 of the exact body
//! bytes, keyed with the shared secret ([`sign`]). A receiver recomputes it over the raw body it
//! received (before any JSON parsing) and compares in constant time ([`verify`]); it should also
//! reject events whose `created_at` is too old, to limit replays.
//!
//! # Retries
//!
//! An attempt succeeds on any 2xx status. A network error, a timeout
//! ([`WebhookConfig::timeout`] per attempt) or any other status (redirects are not followed) is
//! retried with the same body after a backoff: [`WebhookConfig::initial_backoff`], doubling after
//! each failure, capped at [`WebhookConfig::max_backoff`], each delay shortened by a random 0-20%
//! so that retries to one receiver do not synchronize. After [`WebhookConfig::max_attempts`]
//! attempts the event is given up ([`Webhooks::failed`], a warning) and the task goes on with the
//! next one.
//!
//! # Shutdown
//!
//! Dropping the [`Webhooks`] closes the queues: each task makes one attempt at each event still
//! queued (no more retries, a pending backoff is cut short), then ends. Before that, a server that
//! stops waits for the last events ([`Webhooks::flush`], bounded): `sluice serve` reports every
//! member leaving and every room finishing on SIGTERM.

mod delivery;
mod event;
mod signing;

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rand::rngs::StdRng;
use rand::SeedableRng;
use reqwest::Url;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, watch};

use crate::clock::unix_secs;
use delivery::{RetryPolicy, Worker};
use event::Delivery;

pub use event::WebhookEvent;
pub use signing::{
    sign, verify, HEADER_ATTEMPT, HEADER_DELIVERY, HEADER_EVENT, HEADER_SIGNATURE, SIGNATURE_PREFIX,
};

/// Where and how to deliver webhooks.
#[derive(Clone)]
pub struct WebhookConfig {
    /// Receivers, `http://` or `https://` each; every event goes to every URL.
    pub urls: Vec<String>,
    /// The HMAC-SHA256 key of the signature header.
    pub secret: String,
    /// Attempts per event and URL before giving up (default 6; 0 counts as 1).
    pub max_attempts: u32,
    /// Delay before the first retry (default 500 ms); it doubles after each failure.
    pub initial_backoff: Duration,
    /// Longest delay between two attempts (default 30 s).
    pub max_backoff: Duration,
    /// Time limit of one attempt, from connecting to reading the response (default 5 s).
    pub timeout: Duration,
    /// Events queued per URL before new ones are dropped for it (default 1024; 0 counts as 1).
    pub queue: usize,
}

impl WebhookConfig {
    /// A configuration with the given URLs and secret and the default limits: 6 attempts, backoff
    /// from 500 ms doubling up to 30 s, 5 s per attempt, 1024 queued events per URL.
    pub fn new(urls: Vec<String>, secret: impl Into<String>) -> Self {
        WebhookConfig {
            urls,
            secret: secret.into(),
            max_attempts: 6,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            timeout: Duration::from_secs(5),
            queue: 1024,
        }
    }
}

impl fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("urls", &self.urls)
            .field("secret", &"<redacted>")
            .field("max_attempts", &self.max_attempts)
            .field("initial_backoff", &self.initial_backoff)
            .field("max_backoff", &self.max_backoff)
            .field("timeout", &self.timeout)
            .field("queue", &self.queue)
            .finish()
    }
}

/// Why [`Webhooks::start`] refused a configuration.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// A URL does not parse.
    #[error("webhook URL {url:?} is not a valid URL: {reason}")]
    InvalidUrl {
        /// The URL as configured.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A URL's scheme is neither `http` nor `https`.
    #[error(
        "webhook URL {url:?} has unsupported scheme {scheme:?}: only http and https are supported"
    )]
    UnsupportedScheme {
        /// The URL as configured.
        url: String,
        /// Its scheme.
        scheme: String,
    },
    /// A URL has no host to connect to.
    #[error("webhook URL {url:?} has no host")]
    MissingHost {
        /// The URL as configured.
        url: String,
    },
    /// The HTTP client could not be built (TLS setup).
    #[error("cannot build the webhook HTTP client: {0}")]
    Client(#[source] reqwest::Error),
}

/// Counters shared by the sender and the delivery tasks.
#[derive(Default)]
pub(crate) struct Stats {
    /// Events handed to a URL's queue (delivered, failed or still pending).
    pub(crate) queued: AtomicU64,
    pub(crate) delivered: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) dropped: AtomicU64,
}

/// One URL's end of the queues.
struct Target {
    /// For logs: the URL without user info or query, which may hold credentials.
    display: String,
    tx: mpsc::Sender<Arc<Delivery>>,
    dropped: AtomicU64,
}

/// The webhook sender: one bounded queue and one delivery task per URL. Dropping it ends the tasks
/// (after one last attempt at each event still queued).
pub struct Webhooks {
    targets: Vec<Target>,
    secret: Vec<u8>,
    stats: Arc<Stats>,
    /// Never sent on: its drop tells the tasks to stop retrying.
    _shutdown: watch::Sender<()>,
}

impl fmt::Debug for Webhooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Webhooks")
            .field(
                "urls",
                &self
                    .targets
                    .iter()
                    .map(|t| t.display.as_str())
                    .collect::<Vec<_>>(),
            )
            .field("delivered", &self.delivered())
            .field("failed", &self.failed())
            .field("dropped", &self.dropped())
            .finish_non_exhaustive()
    }
}

impl Webhooks {
    /// Checks the URLs (they must parse, be `http` or `https` and have a host) and spawns one
    /// delivery task per URL on `rt`. With no URLs, [`emit`](Self::emit) does nothing.
    pub fn start(
        cfg: WebhookConfig,
        rt: &tokio::runtime::Handle,
    ) -> Result<Arc<Self>, WebhookError> {
        let urls = cfg
            .urls
            .iter()
            .map(|u| parse_url(u))
            .collect::<Result<Vec<_>, _>>()?;
        if !urls.is_empty() && cfg.secret.is_empty() {
            tracing::warn!("webhook secret is empty: signatures prove nothing");
        }
        let client = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("sluice-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(WebhookError::Client)?;
        let policy = RetryPolicy {
            max_attempts: cfg.max_attempts.max(1),
            initial_backoff: cfg.initial_backoff,
            max_backoff: cfg.max_backoff,
        };
        let stats = Arc::new(Stats::default());
        let (shutdown_tx, shutdown_rx) = watch::channel(());
        let mut targets = Vec::with_capacity(urls.len());
        for url in urls {
            let (tx, rx) = mpsc::channel(cfg.queue.max(1));
            let display = redacted(&url);
            let worker = Worker {
                url,
                display: display.clone(),
                client: client.clone(),
                policy,
                stats: stats.clone(),
                shutdown: shutdown_rx.clone(),
                rng: StdRng::from_rng(&mut rand::rng()),
            };
            rt.spawn(worker.run(rx));
            targets.push(Target {
                display,
                tx,
                dropped: AtomicU64::new(0),
            });
        }
        tracing::info!(urls = targets.len(), "webhooks started");
        Ok(Arc::new(Webhooks {
            targets,
            secret: cfg.secret.into_bytes(),
            stats,
            _shutdown: shutdown_tx,
        }))
    }

    /// Queues `event` for every URL. Never blocks and never waits: the event is serialized and
    /// signed once, then offered to each URL's queue; where a queue is full the event is dropped for
    /// that URL, counted in [`dropped`](Self::dropped) and logged (at the 1st, 2nd, 4th, ... drop).
    pub fn emit(&self, event: WebhookEvent) {
        if self.targets.is_empty() {
            return;
        }
        // The I/O shell reads the clock and the RNG; the envelope itself is pure.
        let created_at = unix_secs(SystemTime::now());
        let delivery = match Delivery::new(&self.secret, &event, rand::random(), created_at) {
            Ok(d) => Arc::new(d),
            Err(e) => {
                tracing::error!(event = event.name(), error = %e, "cannot serialize webhook event");
                return;
            }
        };
        for target in &self.targets {
            // Counted before the send, so that `pending` never reads low.
            self.stats.queued.fetch_add(1, Ordering::Relaxed);
            let sent = target.tx.try_send(delivery.clone());
            if sent.is_err() {
                self.stats.queued.fetch_sub(1, Ordering::Relaxed);
            }
            let closed = match sent {
                Ok(()) => continue,
                Err(TrySendError::Full(_)) => false,
                Err(TrySendError::Closed(_)) => true,
            };
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            let n = target.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!(
                    url = %target.display,
                    event = delivery.event,
                    id = %delivery.id,
                    dropped = n,
                    "webhook event dropped: {}",
                    if closed {
                        "the delivery task has ended"
                    } else {
                        "the queue is full"
                    }
                );
            }
        }
    }

    /// Events queued and not yet delivered or given up, counted once per event and URL.
    pub fn pending(&self) -> u64 {
        let done = self.delivered() + self.failed();
        self.stats
            .queued
            .load(Ordering::Relaxed)
            .saturating_sub(done)
    }

    /// Waits until every queued event was delivered or given up, at most `within`; returns
    /// whether the queues emptied in time (shutdown: the last events go out before the exit).
    pub async fn flush(&self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        while self.pending() > 0 {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }

    /// Events delivered (a 2xx answer), counted once per event and URL.
    pub fn delivered(&self) -> u64 {
        self.stats.delivered.load(Ordering::Relaxed)
    }

    /// Events given up after the last attempt, counted once per event and URL.
    pub fn failed(&self) -> u64 {
        self.stats.failed.load(Ordering::Relaxed)
    }

    /// Events dropped because a URL's queue was full, counted once per event and URL.
    pub fn dropped(&self) -> u64 {
        self.stats.dropped.load(Ordering::Relaxed)
    }
}

fn parse_url(raw: &str) -> Result<Url, WebhookError> {
    let url = Url::parse(raw.trim()).map_err(|e| WebhookError::InvalidUrl {
        url: raw.to_string(),
        reason: e.to_string(),
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(WebhookError::UnsupportedScheme {
            url: raw.to_string(),
            scheme: url.scheme().to_string(),
        });
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(WebhookError::MissingHost {
            url: raw.to_string(),
        });
    }
    Ok(url)
}

/// The URL for logs: no user info, no query (either may carry credentials).
fn redacted(url: &Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.set_query(None);
    u.set_fragment(None);
    u.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::net::SocketAddr;

    use bytes::Bytes;
    use std::sync::Mutex;
    use std::time::Instant;

    use axum::extract::State;
    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::post;
    use axum::Router;

    use super::event::tests::joined;

    const SECRET: &str = "s3cret";

    /// One request the test receiver saw.
    #[derive(Clone, Debug)]
    struct Hit {
        headers: HeaderMap,
        body: Bytes,
    }

    impl Hit {
        fn header(&self, name: &str) -> &str {
            self.headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
        }
        fn json(&self) -> serde_json::Value {
            serde_json::from_slice(&self.body).expect("JSON body")
        }
    }

    #[derive(Clone)]
    struct Receiver {
        hits: Arc<Mutex<Vec<Hit>>>,
        /// Requests answered 500 before the receiver answers 200.
        fail_first: usize,
    }

    impl Receiver {
        fn hits(&self) -> Vec<Hit> {
            self.hits.lock().expect("hits").clone()
        }
    }

    async fn record(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
        let mut hits = r.hits.lock().expect("hits");
        hits.push(Hit { headers, body });
        if hits.len() <= r.fail_first {
            StatusCode::INTERNAL_SERVER_ERROR
        } else {
            StatusCode::OK
        }
    }

    /// An HTTP receiver on 127.0.0.1 that answers 500 to its first `fail_first` requests.
    async fn receiver(fail_first: usize) -> (String, Receiver) {
        let r = Receiver {
            hits: Arc::default(),
            fail_first,
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr: SocketAddr = listener.local_addr().expect("addr");
        let app = Router::new()
            .route("/hook", post(record))
            .with_state(r.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (format!("http://{addr}/hook?token=t"), r)
    }

    fn fast(urls: Vec<String>) -> WebhookConfig {
        WebhookConfig {
            initial_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(20),
            timeout: Duration::from_secs(2),
            ..WebhookConfig::new(urls, SECRET)
        }
    }

    async fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if done() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        done()
    }

    #[tokio::test]
    async fn retries_until_delivered_in_order_with_signed_bodies() {
        let (url, r) = receiver(2).await;
        let hooks =
            Webhooks::start(fast(vec![url]), &tokio::runtime::Handle::current()).expect("start");
        for i in 0..5 {
            hooks.emit(joined(i));
        }
        assert!(hooks.flush(Duration::from_secs(5)).await);
        assert_eq!(hooks.delivered(), 5);
        assert_eq!(hooks.pending(), 0);
        assert_eq!(hooks.failed(), 0);
        assert_eq!(hooks.dropped(), 0);

        let hits = r.hits();
        assert_eq!(hits.len(), 7, "two failures, then five deliveries");
        // The first event: three attempts, same id and body, attempt counted from 1.
        for (n, hit) in hits[..3].iter().enumerate() {
            assert_eq!(hit.header(HEADER_ATTEMPT), (n + 1).to_string());
            assert_eq!(hit.body, hits[0].body);
            assert_eq!(hit.header(HEADER_DELIVERY), hits[0].header(HEADER_DELIVERY));
        }
        // Then each event once, in order, each signed over its exact body.
        let bodies: Vec<&Hit> = std::iter::once(&hits[2]).chain(&hits[3..]).collect();
        for (i, hit) in bodies.iter().enumerate() {
            let json = hit.json();
            assert_eq!(json["participant"], format!("p_{i}"));
            assert_eq!(json["event"], "participant_joined");
            assert_eq!(json["room"], "standup");
            assert_eq!(json["name"], format!("Ada {i}"));
            assert_eq!(json["role"], "speaker");
            assert!(json["created_at"].is_u64());
            assert_eq!(hit.header("content-type"), "application/json");
            assert_eq!(hit.header(HEADER_EVENT), "participant_joined");
            assert_eq!(hit.header(HEADER_DELIVERY), json["id"]);
            if i > 0 {
                assert_eq!(hit.header(HEADER_ATTEMPT), "1");
            }
            assert!(verify(
                SECRET.as_bytes(),
                &hit.body,
                hit.header(HEADER_SIGNATURE)
            ));
            assert!(!verify(b"wrong", &hit.body, hit.header(HEADER_SIGNATURE)));
        }
        let ids: std::collections::HashSet<_> =
            bodies.iter().map(|h| h.header(HEADER_DELIVERY)).collect();
        assert_eq!(ids.len(), 5, "a fresh id per event");
    }

    #[tokio::test]
    async fn a_dead_url_fails_without_delaying_a_healthy_one() {
        let dead = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            format!("http://{}/hook", l.local_addr().expect("addr"))
        }; // dropped: connections are refused
        let (healthy, r) = receiver(0).await;
        let cfg = WebhookConfig {
            max_attempts: 2,
            initial_backoff: Duration::from_millis(150),
            max_backoff: Duration::from_millis(150),
            ..fast(vec![dead, healthy])
        };
        let hooks = Webhooks::start(cfg, &tokio::runtime::Handle::current()).expect("start");
        const N: u64 = 3;
        for i in 0..N as u32 {
            hooks.emit(joined(i));
        }
        // The dead URL needs at least N backoffs (>= 120 ms each) to give up on all N events.
        assert!(wait_until(Duration::from_secs(5), || hooks.delivered() == N).await);
        assert!(
            hooks.failed() < N,
            "the healthy URL waited for the dead one"
        );
        assert_eq!(r.hits().len(), N as usize);
        assert!(wait_until(Duration::from_secs(5), || hooks.failed() == N).await);
        assert_eq!(hooks.delivered(), N);
        assert_eq!(hooks.dropped(), 0);
    }

    #[tokio::test]
    async fn emit_never_blocks_and_counts_drops() {
        // Accepts connections (the kernel does) but never answers: the first attempt stalls.
        let stall = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/hook", stall.local_addr().expect("addr"));
        let cfg = WebhookConfig {
            queue: 1,
            ..fast(vec![url])
        };
        let hooks = Webhooks::start(cfg, &tokio::runtime::Handle::current()).expect("start");
        hooks.emit(WebhookEvent::RoomStarted { room: "a".into() });
        // Let the task take it and stall on the request.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let t = Instant::now();
        for i in 0..1000 {
            hooks.emit(joined(i));
        }
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "emit took {:?}",
            t.elapsed()
        );
        // One fits in the queue; the rest are dropped.
        assert_eq!(hooks.dropped(), 999);
        assert_eq!(hooks.pending(), 2, "the stalled one and the queued one");
        assert!(
            !hooks.flush(Duration::from_millis(50)).await,
            "nothing gets through"
        );
        assert_eq!(hooks.delivered(), 0);
        drop(stall);
    }

    #[tokio::test]
    async fn dropping_stops_retries() {
        let (url, r) = receiver(usize::MAX).await;
        let cfg = WebhookConfig {
            initial_backoff: Duration::from_secs(30),
            max_backoff: Duration::from_secs(30),
            ..fast(vec![url])
        };
        let hooks = Webhooks::start(cfg, &tokio::runtime::Handle::current()).expect("start");
        let stats = hooks.stats.clone();
        hooks.emit(WebhookEvent::RoomFinished { room: "a".into() });
        assert!(wait_until(Duration::from_secs(5), || r.hits().len() == 1).await);
        drop(hooks);
        assert!(
            wait_until(Duration::from_secs(2), || stats
                .failed
                .load(Ordering::Relaxed)
                == 1)
            .await
        );
        assert_eq!(r.hits().len(), 1, "no retry after the drop");
    }

    #[tokio::test]
    async fn start_refuses_bad_urls() {
        let rt = tokio::runtime::Handle::current();
        let err =
            Webhooks::start(WebhookConfig::new(vec!["ftp://x".into()], "k"), &rt).unwrap_err();
        assert!(
            matches!(&err, WebhookError::UnsupportedScheme { scheme, .. } if scheme == "ftp"),
            "{err}"
        );
        assert!(err.to_string().contains("only http and https"), "{err}");
        for garbage in ["not a url", "", "http://", "://x", "localhost:8080/hook"] {
            let cfg = WebhookConfig::new(vec!["http://ok.example/h".into(), garbage.into()], "k");
            let err = Webhooks::start(cfg, &rt).unwrap_err();
            assert!(
                matches!(
                    err,
                    WebhookError::InvalidUrl { .. }
                        | WebhookError::UnsupportedScheme { .. }
                        | WebhookError::MissingHost { .. }
                ),
                "{garbage}: {err}"
            );
            assert!(err.to_string().contains(&format!("{garbage:?}")), "{err}");
        }
        let ok = WebhookConfig::new(
            vec![
                "https://hooks.example/a".into(),
                "http://127.0.0.1:9/b".into(),
            ],
            "k",
        );
        assert!(Webhooks::start(ok, &rt).is_ok());
        let none = Webhooks::start(WebhookConfig::new(vec![], "k"), &rt).expect("no URLs is fine");
        none.emit(WebhookEvent::RoomStarted { room: "a".into() });
        assert_eq!(none.dropped(), 0);
    }

    #[test]
    fn logs_hide_url_credentials() {
        let url = parse_url("https://user:pw@hooks.example/a?token=t").expect("url");
        assert_eq!(redacted(&url), "https://hooks.example/a");
    }
}
