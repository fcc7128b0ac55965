//! The Redis keys of a cluster, all under one prefix (default `sluice:`) so that several clusters,
//! or other applications, can share a Redis.
//!
//! - `{prefix}node:{id}`: a node's record (JSON [`NodeInfo`](crate::NodeInfo)), written every
//!   second with a short expiry: the node is alive while the key exists.
//! - `{prefix}nodes`: the set of node ids that registered (pruned of ids whose record expired).
//! - `{prefix}room:{name}:owner`: a hash `{node, epoch}`: the room's owner and its fencing token.
//!   The epoch only grows, and the key outlives its owner, so the next owner's epoch is larger.
//! - `{prefix}room:{name}`: a hash `{v, doc}`: the room's settings and participants as JSON (the
//!   control plane's format; opaque here) and its version, which every write compares and bumps.
//! - `{prefix}rooms`: the set of room names (pruned of rooms whose hash is gone when listed).
//! - `{prefix}placed`: a hash node id → rooms placed on it, kept by the scripts that claim,
//!   move, release and delete rooms (placement compares it).
//! - `{prefix}events`: a stream (`XADD`, capped near [`EVENTS_KEPT`] entries) of every room event,
//!   the webhooks' events, for consumers that prefer a log: fields `event`, `room`, `node`, `body`.

//! - `{prefix}node:{id}:control` (pub/sub channel): control messages for one node
//!   ([`ControlMsg`](crate::control::ControlMsg)), e.g. "drain".

/// About how many events the stream keeps (`MAXLEN ~`).
pub const EVENTS_KEPT: usize = 100_000;

/// Key names under a prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
}

impl Default for Keys {
    fn default() -> Self {
        Self::new("sluice:")
    }
}

impl Keys {
    /// Keys under `prefix`.
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_string(),
        }
    }

    /// Where a node's records are, before the id.
    pub fn node_prefix(&self) -> String {
        format!("{}node:", self.prefix)
    }

    /// A node's record.
    pub fn node(&self, id: &str) -> String {
        format!("{}node:{id}", self.prefix)
    }

    /// The set of registered node ids.
    pub fn nodes(&self) -> String {
        format!("{}nodes", self.prefix)
    }

    /// The pub/sub channel of a node's control messages.
    pub fn control(&self, id: &str) -> String {
        format!("{}node:{id}:control", self.prefix)
    }

    /// The stream of room events.
    pub fn events(&self) -> String {
        format!("{}events", self.prefix)
    }

    /// Rooms placed per node.
    pub fn placed(&self) -> String {
        format!("{}placed", self.prefix)
    }

    /// A room's settings and participants (`{v, doc}`).
    pub fn room(&self, room: &str) -> String {
        format!("{}room:{room}", self.prefix)
    }

    /// The set of room names.
    pub fn rooms(&self) -> String {
        format!("{}rooms", self.prefix)
    }

    /// A room's owner and epoch.
    pub fn room_owner(&self, room: &str) -> String {
        format!("{}room:{room}:owner", self.prefix)
    }

    /// A room's live summary as its owner last wrote it (expires unless written again).
    pub fn room_live(&self, room: &str) -> String {
        format!("{}room:{room}:live", self.prefix)
    }

    /// The relay leg the core of `room` offers edge `edge` (its address, streams and keys).
    pub fn room_leg(&self, room: &str, edge: &str) -> String {
        format!("{}room:{room}:leg:{edge}", self.prefix)
    }

    /// Who publishes with each SSRC in `room` on node `node` (a cascaded room's source names).
    pub fn room_sources(&self, room: &str, node: &str) -> String {
        format!("{}room:{room}:sources:{node}", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_under_the_prefix() {
        let k = Keys::default();
        assert_eq!(k.node("eu-1"), "sluice:node:eu-1");
        assert_eq!(k.node_prefix(), "sluice:node:");
        assert_eq!(k.nodes(), "sluice:nodes");
        assert_eq!(k.room_owner("lobby"), "sluice:room:lobby:owner");
        assert_eq!(k.room_live("lobby"), "sluice:room:lobby:live");
        assert_eq!(k.events(), "sluice:events");
        assert_eq!(k.room("lobby"), "sluice:room:lobby");
        assert_eq!(k.rooms(), "sluice:rooms");
        assert_eq!(k.control("eu-1"), "sluice:node:eu-1:control");
        assert_eq!(Keys::new("t1:").node("a"), "t1:node:a");
    }
}
