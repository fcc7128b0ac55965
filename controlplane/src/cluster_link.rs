//! This node's link to the cluster: it writes its record to Redis every [`REFRESH`], alive for
//! [`RECORD_TTL`] unless written again (so a node that dies or pauses drops out by itself within
//! seconds, and liveness is "its key exists", not clocks compared across machines), and takes it
//! out at once on a clean stop. A Redis that goes away is logged once and the node serves on with
//! what it has; the record is written again as soon as Redis answers (the store reconnects by
//! itself). Redis being away never makes the node unhealthy.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::state::AppState;

/// How often the record is written.
pub const REFRESH: Duration = Duration::from_secs(1);
/// How long a record lives unless written again.
pub const RECORD_TTL: Duration = Duration::from_secs(3);

/// Starts writing this node's record every second; `None` for a single node (no `--redis`).
pub fn spawn(state: Arc<AppState>) -> Option<tokio::task::JoinHandle<()>> {
    let store = state.cluster.clone()?;
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(REFRESH);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut registered = false;
        let mut down_since: Option<Instant> = None;
        loop {
            tick.tick().await;
            let record = state.node_record(Instant::now());
            match store.register(&record, RECORD_TTL).await {
                Ok(()) => {
                    if let Some(since) = down_since.take() {
                        tracing::info!(
                            node = %record.id,
                            down_ms = since.elapsed().as_millis() as u64,
                            "cluster store reachable again: registered"
                        );
                    } else if !registered {
                        tracing::info!(node = %record.id, region = %record.region, url = %record.url, "joined the cluster");
                    }
                    registered = true;
                }
                Err(e) => {
                    if down_since.is_none() {
                        tracing::warn!(
                            node = %record.id,
                            error = %e,
                            "cluster store unreachable: rooms here keep going, new placements fail until it is back"
                        );
                        down_since = Some(Instant::now());
                    }
                }
            }
        }
    }))
}

/// Takes this node's record out of the cluster (a clean stop), waiting at most a second.
pub async fn leave(state: &AppState) {
    let Some(store) = &state.cluster else {
        return;
    };
    let id = &state.node.identity().id;
    match tokio::time::timeout(Duration::from_secs(1), store.deregister(id)).await {
        Ok(Ok(())) => tracing::info!(node = %id, "left the cluster"),
        Ok(Err(e)) => {
            tracing::warn!(node = %id, error = %e, "could not leave the cluster; the record expires by itself")
        }
        Err(_) => {
            tracing::warn!(node = %id, "the cluster store did not answer; the record expires by itself")
        }
    }
}
