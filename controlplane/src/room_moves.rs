//! Draining a cluster node (docs/cluster.md, "Drain"): it takes no new rooms and moves the rooms it
//! serves, one by one, to nodes that take rooms. A move hands the room's ownership over in Redis
//! (the next epoch, only while this node still holds its epoch), sends every member a `redirect` to
//! the new owner with a fresh token, and keeps the room's media here for [`MOVE_GRACE`]
//! (make-before-break, as in the P2P↔SFU switch): members hear each other through this node until
//! their new connections carry audio. SIGTERM in cluster mode drains before the node exits.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use sluice_cluster::Ownership;

use crate::cluster_rooms::ws_base;
use crate::error::ApiError;
use crate::state::AppState;

/// How long a moved room's media stays on the old node, for its members' old connections to
/// carry audio while their new ones come up.
pub const MOVE_GRACE: Duration = Duration::from_secs(3);
/// The longest a drain before exiting may take; rooms not moved by then get `bye`.
pub const EXIT_DRAIN_LIMIT: Duration = Duration::from_secs(30);

/// Where a room went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Moved {
    /// To this node (its id); this many members were redirected.
    To(String, usize),
    /// Nowhere: no other node takes rooms now (the room stays here).
    NoNode,
    /// This node had lost the room already (another node took it): it was fenced.
    Lost,
}

impl AppState {
    /// Moves `room`, which this node serves, to the node placement picks among the others.
    pub async fn move_room(&self, room: &str) -> Result<Moved, ApiError> {
        let (Some(c), Some(store)) = (self.cluster_rooms.as_deref(), self.cluster.as_ref()) else {
            return Ok(Moved::NoNode);
        };
        let Some(epoch) = c.serves(room) else {
            return Ok(Moved::Lost);
        };
        let me = self.node.identity();
        let others: Vec<_> = store
            .nodes()
            .await?
            .into_iter()
            .filter(|n| n.id != me.id)
            .collect();
        let Some(pick) =
            sluice_cluster::placement::place(&me.region, &others, &c.regions, &mut rand::rng())
        else {
            return Ok(Moved::NoNode);
        };
        let mine = Ownership {
            node: me.id.clone(),
            epoch,
        };
        let (owner, moved) = store.take_over(room, &mine, &pick.id).await?;
        if !moved {
            self.fence(room);
            return Ok(Moved::Lost);
        }
        // No longer ours: members whose sockets close now are not removed from the document.
        c.lock().remove(room);
        crate::cluster_rooms::ClusterStats::count(&c.stats.moved);
        let base = ws_base(&pick.url);
        let now = SystemTime::now();
        let redirected = self.hub.redirect_room(room, |p| {
            self.auth
                .issue(room, &p.id, &p.name, p.role, now)
                .ok()
                .map(|token| format!("{base}/v1/signal?token={token}"))
        });
        let _ = self.rooms().delete(room);
        if let (Some(media), Some(c)) = (self.media.clone(), self.cluster_rooms.clone()) {
            let room = room.to_string();
            tokio::spawn(async move {
                tokio::time::sleep(MOVE_GRACE).await;
                if c.serves(&room).is_none() {
                    media.remove_room(&room);
                }
            });
        }
        tracing::info!(%room, to = %owner.node, epoch = owner.epoch, members = redirected, "room moved (drain)");
        Ok(Moved::To(owner.node, redirected))
    }

    /// Moves every room this node serves, one by one, while it is draining; returns how many
    /// moved. Rooms that cannot move now (no other node takes rooms) stay.
    pub async fn drain_rooms(&self) -> usize {
        let Some(c) = self.cluster_rooms.as_deref() else {
            return 0;
        };
        let mut moved = 0;
        for (room, _) in c.served() {
            if !self.node.draining() {
                break;
            }
            match self.move_room(&room).await {
                Ok(Moved::To(..)) => moved += 1,
                Ok(Moved::NoNode) => {
                    tracing::warn!(%room, "draining: no other node takes rooms now, the room stays")
                }
                Ok(Moved::Lost) => {}
                Err(e) => {
                    tracing::warn!(%room, error = %e.message, "draining: could not move the room")
                }
            }
        }
        moved
    }

    /// Starts draining in the background (a drain asked through the API or the cluster): the
    /// node's rooms move one by one. A drain already running is left to finish.
    pub fn start_drain(self: &Arc<Self>) {
        if self.cluster_rooms.is_none() || !self.node.start_moving() {
            return;
        }
        let s = self.clone();
        tokio::spawn(async move {
            let moved = s.drain_rooms().await;
            let left = s.cluster_rooms.as_deref().map_or(0, |c| c.served().len());
            tracing::info!(moved, left, "drain: rooms moved");
            s.node.done_moving();
        });
    }

    /// SIGTERM in cluster mode: drain (no new rooms, every room moved), then wait the move grace
    /// so the moved rooms' members are on their new node before this one goes. Bounded by
    /// [`EXIT_DRAIN_LIMIT`]; what is left then gets `bye` from the shutdown that follows.
    pub async fn drain_for_exit(&self) {
        if self.cluster_rooms.is_none() {
            return;
        }
        self.node.set_draining(true);
        crate::cluster_link::publish_record(self).await;
        let moved = tokio::time::timeout(EXIT_DRAIN_LIMIT, self.drain_rooms())
            .await
            .unwrap_or(0);
        tracing::info!(moved, "drained before exit");
        if moved > 0 {
            tokio::time::sleep(MOVE_GRACE).await;
        }
    }
}
