//! The relay legs this node has in cascaded rooms (docs/cascade.md), as a core (one per room and
//! edge) and as an edge (one per room, to its core): plain state, kept by
//! [`crate::cluster_rooms::ClusterRooms`] and changed by [`crate::cascade`].

use std::collections::HashMap;
use std::sync::Mutex;

use sluice_dataplane::topology::TransportId;

/// This node's legs, both ways.
#[derive(Debug, Default)]
pub struct LegTable {
    inner: Mutex<Tables>,
    /// One link made at a time: two members arriving at once must not make two legs.
    pub(crate) linking: tokio::sync::Mutex<()>,
}

#[derive(Debug, Default)]
pub(crate) struct Tables {
    /// As a core: (room, edge node) → the leg's transport.
    pub(crate) to_edges: HashMap<(String, String), TransportId>,
    /// As an edge: room → the leg to its core.
    pub(crate) to_core: HashMap<String, CoreLink>,
    /// Rooms this node serves members of as an edge, linked or not yet (the refresh links those
    /// that are not).
    pub(crate) edge_of: std::collections::HashSet<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CoreLink {
    pub(crate) core: String,
    pub(crate) epoch: u64,
    pub(crate) transport: TransportId,
}

impl LegTable {
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, Tables> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The rooms this node is an edge of, linked to their core or not yet.
    pub fn edge_rooms(&self) -> Vec<String> {
        self.lock().edge_of.iter().cloned().collect()
    }

    /// As the core of `room`: takes its leg to `edge` out of the table.
    pub(crate) fn take_edge(&self, room: &str, edge: &str) -> Option<TransportId> {
        self.lock()
            .to_edges
            .remove(&(room.to_string(), edge.to_string()))
    }

    /// Whether this node, as the core of `room`, has a leg to an edge.
    pub fn has_edges(&self, room: &str) -> bool {
        self.lock().to_edges.keys().any(|(r, _)| r == room)
    }

    /// Whether this node is an edge of `room`.
    pub fn is_edge_of(&self, room: &str) -> bool {
        self.lock().edge_of.contains(room)
    }
}
