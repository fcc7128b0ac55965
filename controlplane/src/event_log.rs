//! In a cluster, every room event (the webhooks' events) is also appended to a Redis stream,
//! `sluice:events`, for consumers that prefer a log to HTTP callbacks. Events are handed to one
//! task through a bounded queue, so emitting never waits for Redis; when Redis is away or slow and
//! the queue is full, events are dropped and counted (the webhooks still carry them).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use sluice_cluster::ClusterStore;
use tokio::sync::mpsc;

use crate::webhooks::WebhookEvent;

/// Events waiting for Redis at most.
const QUEUE: usize = 4096;

/// The stream writer's counters.
#[derive(Debug, Default)]
struct Counts {
    appended: AtomicU64,
    dropped: AtomicU64,
}

/// Appends room events to the cluster's event stream.
#[derive(Debug)]
pub struct EventLog {
    tx: mpsc::Sender<WebhookEvent>,
    counts: Arc<Counts>,
}

impl EventLog {
    /// Starts the writer on the current tokio runtime; `node` names this node in each entry.
    pub fn start(store: ClusterStore, node: String) -> Self {
        let (tx, mut rx) = mpsc::channel::<WebhookEvent>(QUEUE);
        let counts = Arc::new(Counts::default());
        let c = counts.clone();
        tokio::spawn(async move {
            let mut failing = false;
            while let Some(event) = rx.recv().await {
                let body = serde_json::to_string(&event).unwrap_or_default();
                match store
                    .append_event(event.name(), event.room(), &node, &body)
                    .await
                {
                    Ok(_) => {
                        c.appended.fetch_add(1, Ordering::Relaxed);
                        failing = false;
                    }
                    Err(e) => {
                        c.dropped.fetch_add(1, Ordering::Relaxed);
                        if !failing {
                            tracing::warn!(error = %e, "cannot append room events to the cluster's stream; dropping them until Redis answers");
                            failing = true;
                        }
                    }
                }
            }
        });
        Self { tx, counts }
    }

    /// Queues `event` for the stream (dropped and counted when the queue is full).
    pub fn push(&self, event: &WebhookEvent) {
        if self.tx.try_send(event.clone()).is_err() {
            self.counts.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Events appended to the stream.
    pub fn appended(&self) -> u64 {
        self.counts.appended.load(Ordering::Relaxed)
    }

    /// Events that did not reach the stream.
    pub fn dropped(&self) -> u64 {
        self.counts.dropped.load(Ordering::Relaxed)
    }
}
