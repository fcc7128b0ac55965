//! Carries cascaded rooms' rosters between nodes (docs/cascade.md, "One roster"): the I/O shell
//! around [`crate::roster`]. One task takes the hub's [`RosterJob`]s in order and publishes each
//! as a [`ControlMsg::Roster`] on the control channels of the room's other nodes: an edge's go to
//! its core, a core's to its edges; a change an edge sent is passed on by the core to the other
//! edges. Fire and forget: a message lost with Redis is mended by the next link (the core sends
//! a linked edge everyone, the edge sends the core its own).

use std::sync::Arc;

use sluice_cluster::{ClusterStore, ControlMsg, RosterPeer, RosterUpdate};
use tokio::sync::mpsc;

use crate::cluster_rooms::ClusterRooms;
use crate::roster::{to_peer, RosterJob};
use crate::state::AppState;

/// Jobs queued before the hub drops news (counted, `Hub::roster_dropped`).
const ROSTER_QUEUE: usize = 8192;

/// Starts the roster task and points the hub at it; `None` for a single node.
pub fn spawn(state: Arc<AppState>) -> Option<tokio::task::JoinHandle<()>> {
    let store = state.cluster.clone()?;
    let rooms = state.cluster_rooms.clone()?;
    let (tx, mut rx) = mpsc::channel(ROSTER_QUEUE);
    state.hub.set_roster_sink(tx);
    Some(tokio::spawn(async move {
        let me = state.node.identity().id.clone();
        while let Some(job) = rx.recv().await {
            send(&store, &route(&state, &rooms, &me, job)).await;
        }
    }))
}

async fn send(store: &ClusterStore, out: &[(String, ControlMsg)]) {
    for (to, msg) in out {
        if let Err(e) = store.send_control(to, msg).await {
            tracing::debug!(%to, error = %e, "could not send a roster change");
        }
    }
}

/// Where `job` goes, as node `me`, and what it says there.
fn route(
    state: &AppState,
    rooms: &ClusterRooms,
    me: &str,
    job: RosterJob,
) -> Vec<(String, ControlMsg)> {
    let edges = |room: &str| -> Vec<String> {
        rooms
            .legs
            .lock()
            .to_edges
            .keys()
            .filter(|(r, _)| r == room)
            .map(|(_, e)| e.clone())
            .collect()
    };
    let mine = |room: &str| -> Vec<RosterPeer> {
        state
            .hub
            .local_peers(room)
            .iter()
            .map(|p| to_peer(p, me))
            .collect()
    };
    let (room, update, to) = match job {
        RosterJob::Local { room, change } => {
            let mut to = edges(&room);
            to.extend(rooms.legs.lock().to_core.get(&room).map(|l| l.core.clone()));
            (room, change.to_update(me), to)
        }
        RosterJob::PassOn { room, from, update } => {
            let to = edges(&room).into_iter().filter(|e| *e != from).collect();
            (room, update, to)
        }
        RosterJob::SendMine { room, to } => {
            let update = RosterUpdate::Node {
                node: me.to_string(),
                peers: mine(&room),
            };
            (room, update, vec![to])
        }
        RosterJob::SendFull { room, to } => {
            let mut peers = mine(&room);
            peers.extend(
                state
                    .hub
                    .remote_peers(&room)
                    .iter()
                    .filter(|m| m.node != to)
                    .map(|m| to_peer(&m.info, &m.node)),
            );
            (room, RosterUpdate::Full { peers }, vec![to])
        }
    };
    to.into_iter()
        .map(|node| {
            let msg = ControlMsg::Roster {
                room: room.clone(),
                from: me.to_string(),
                update: update.clone(),
            };
            (node, msg)
        })
        .collect()
}
