//! This node's link to the cluster: it writes its record to Redis every [`REFRESH`], alive for
//! [`RECORD_TTL`] unless written again (so a node that dies or pauses drops out by itself within
//! seconds, and liveness is "its key exists", not clocks compared across machines), and takes it
//! out at once on a clean stop. A Redis that goes away is logged once and the node serves on with
//! what it has; the record is written again as soon as Redis answers (the store reconnects by
//! itself). Redis being away never makes the node unhealthy.
//!
//! With every record it checks the epochs of the rooms it serves, stops serving any room another
//! node took meanwhile (fencing), and puts back any room a Redis restarted without its data lost.
//!
//! It also listens on this node's control channel ([`spawn_control`]): what other nodes ask of it
//! (drain: then its rooms move, [`crate::room_moves`]; room actions), applied at once and made visible by writing the record again.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_cluster::{ControlMsg, Held, RosterUpdate};

use crate::roster::RosterJob;

use crate::cluster_calls::Answer;
use crate::cluster_rooms::LiveSummary;
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
                    check_rooms(&state, &store, &record.id).await;
                    publish_live(&state, &store).await;
                    let nodes = store.nodes().await.ok();
                    if let Some(nodes) = &nodes {
                        state.cascade_upkeep(nodes).await;
                    }
                    note_store(&state, true, nodes.map(|n| n.len()));
                }
                Err(e) => {
                    note_store(&state, false, None);
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

/// Writes the live summary (connected members, mode, last switch) of every room this node serves,
/// for the other nodes' `GET /v1/rooms` (one round trip; each expires with this node's record).
async fn publish_live(state: &AppState, store: &sluice_cluster::ClusterStore) {
    let Some(c) = &state.cluster_rooms else {
        return;
    };
    let live: Vec<(String, String)> = c
        .served()
        .into_iter()
        .filter_map(|(room, _)| {
            let l = state.hub.live(&room)?;
            let summary = LiveSummary {
                current_mode: l.mode,
                last_switch_at: l.last_switch,
                connected: l.connected,
            };
            Some((room, serde_json::to_string(&summary).ok()?))
        })
        .collect();
    if let Err(e) = store.put_live(&live, RECORD_TTL).await {
        tracing::debug!(error = %e, "could not write the rooms' live summaries");
    }
}

/// Notes for `/metrics` whether Redis answered the last refresh, and how many nodes it listed.
fn note_store(state: &AppState, up: bool, nodes: Option<usize>) {
    if let Some(c) = &state.cluster_rooms {
        c.stats.store_up.store(up, Ordering::Relaxed);
        if let Some(n) = nodes {
            c.stats.nodes.store(n, Ordering::Relaxed);
        }
    }
}

/// Checks that this node still holds the epoch of every room it serves (one round trip) and stops
/// serving, at once, each room another node took (after a pause or a partition): see
/// [`AppState::fence`]. A room Redis has nothing of (it restarted without its data) is put back
/// from this node's copy at the epoch it serves, so the cluster sees it again. While Redis does
/// not answer nothing is fenced: rooms keep going.
async fn check_rooms(state: &AppState, store: &sluice_cluster::ClusterStore, me: &str) {
    let Some(c) = &state.cluster_rooms else {
        return;
    };
    let served = c.served();
    let Ok(held) = store.held(me, &served).await else {
        return;
    };
    for ((room, epoch), held) in served.iter().zip(held) {
        // A room served again meanwhile (a new epoch) is checked at the next refresh.
        if c.serves(room) != Some(*epoch) {
            continue;
        }
        match held {
            Held::Yes => {}
            Held::Lost => state.fence(room),
            Held::Vanished => {
                let Ok(local) = state.rooms().get(room).cloned() else {
                    continue;
                };
                let restored = match c.stored_doc(&local) {
                    Ok(doc) => store.restore_room(room, me, *epoch, &doc).await,
                    Err(e) => {
                        tracing::warn!(%room, error = %e.message, "could not put a room back into the cluster store");
                        continue;
                    }
                };
                match restored {
                    Ok((_, true)) => {
                        crate::cluster_rooms::ClusterStats::count(&c.stats.restored);
                        tracing::info!(%room, epoch, "room put back into the cluster store (Redis had lost it)")
                    }
                    Ok((owner, false)) if owner.node != me || owner.epoch != *epoch => {
                        state.fence(room)
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(%room, error = %e, "could not put a room back into the cluster store")
                    }
                }
            }
        }
    }
}

/// Listens on this node's control channel and applies what arrives; subscribes again (every
/// 500 ms) whenever Redis went away. `None` for a single node.
pub fn spawn_control(state: Arc<AppState>) -> Option<tokio::task::JoinHandle<()>> {
    let store = state.cluster.clone()?;
    Some(tokio::spawn(async move {
        let id = state.node.identity().id.clone();
        loop {
            let subscribed =
                tokio::time::timeout(Duration::from_secs(2), store.control_inbox(&id)).await;
            if let Ok(Ok(mut inbox)) = subscribed {
                while let Some(msg) = inbox.next().await {
                    match msg {
                        Ok(msg) => apply(&state, msg).await,
                        Err(e) => {
                            tracing::warn!(error = %e, "ignoring an unreadable control message")
                        }
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }))
}

/// Applies one control message: a drain (then the record is written, so the sender sees the
/// effect), a room action another node asked for (answered with `done` once it is done: on its own
/// task, so a slow one holds up no other message), or the answer to one this node asked.
async fn apply(state: &Arc<AppState>, msg: ControlMsg) {
    match msg {
        ControlMsg::Room { action, reply } => {
            let state = state.clone();
            tokio::spawn(async move {
                let result = state.room_action(action, true).await;
                let a = Answer::of(&result);
                let done = ControlMsg::Done {
                    id: reply.id,
                    status: a.status,
                    code: a.code,
                    message: a.message,
                };
                if let Some(store) = &state.cluster {
                    if let Err(e) = store.send_control(&reply.node, &done).await {
                        tracing::warn!(to = %reply.node, error = %e, "could not answer a control action");
                    }
                }
            });
        }
        ControlMsg::Done {
            id,
            status,
            code,
            message,
        } => state.calls.answered(
            id,
            Answer {
                status,
                code,
                message,
            },
        ),
        ControlMsg::Roster { room, from, update } => {
            // Only for a room this node serves (as its core, or an edge), so news of a room it
            // let go of leaves nothing behind.
            let here = state
                .cluster_rooms
                .as_deref()
                .is_some_and(|c| c.serves(&room).is_some() || c.legs.is_edge_of(&room));
            if !here {
                tracing::debug!(%room, %from, "roster news of a room not served here: ignored");
                return;
            }
            // Applied in order, here: the hub's lock, no await.
            state.hub.apply_remote(&room, update.clone());
            if !matches!(update, RosterUpdate::Full { .. }) {
                state
                    .hub
                    .queue_roster(RosterJob::PassOn { room, from, update });
            }
        }
        ControlMsg::Drain { draining } => {
            state.node.set_draining(draining);
            tracing::info!(
                draining,
                "asked through the cluster: {}",
                if draining {
                    "taking no new rooms"
                } else {
                    "taking rooms again"
                }
            );
            publish_record(state).await;
            if draining {
                state.start_drain();
            }
        }
    }
}

/// Writes this node's record now (after a change the cluster should see before the next refresh).
pub async fn publish_record(state: &AppState) {
    if let Some(store) = &state.cluster {
        let _ = store
            .register(&state.node_record(Instant::now()), RECORD_TTL)
            .await;
    }
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
