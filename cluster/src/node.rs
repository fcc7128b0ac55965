//! What a node tells the cluster about itself: its record, refreshed every second.

use serde::{Deserialize, Serialize};

/// Whether a node takes new rooms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum NodeState {
    /// Takes new rooms.
    Serving,
    /// Takes no new rooms and is moving its rooms away (a rolling upgrade).
    Draining,
}

/// How busy a node is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Load {
    /// Members connected to its signaling.
    pub members: u32,
    /// Media sessions (participants with a transport).
    pub sessions: u32,
    /// Datagrams per second its workers received, over the last refresh.
    pub pps: u64,
    /// Share of one core the process used over the last refresh (1.0: one core busy).
    pub cpu: f32,
    /// Rooms placed on it (the cluster's count, kept by the placement scripts: a room counts from
    /// its placement, before any member connects).
    #[serde(default)]
    pub rooms: u32,
}

/// A node's record in the cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NodeInfo {
    /// Stable id (`--node-id`).
    pub id: String,
    /// Its region (`--region`).
    pub region: String,
    /// Base URL clients reach it at (`--node-url`), e.g. `http://10.0.0.5:7880`.
    pub url: String,
    /// Whether it takes new rooms.
    pub state: NodeState,
    /// How busy it is.
    pub load: Load,
    /// Most members it takes before placement passes it over (0: no limit).
    pub max_members: u32,
}

impl NodeInfo {
    /// Whether placement may give it a new room.
    pub fn takes_rooms(&self) -> bool {
        self.state == NodeState::Serving
            && (self.max_members == 0 || self.load.members < self.max_members)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_round_trips_as_json_with_lowercase_states() {
        let n = NodeInfo {
            id: "eu-1".into(),
            region: "eu".into(),
            url: "http://127.0.0.11:7880".into(),
            state: NodeState::Draining,
            load: Load {
                members: 3,
                ..Load::default()
            },
            max_members: 0,
        };
        let json = serde_json::to_string(&n).unwrap();
        assert!(json.contains("\"state\":\"draining\""), "{json}");
        assert_eq!(serde_json::from_str::<NodeInfo>(&json).unwrap(), n);
    }

    #[test]
    fn only_serving_nodes_under_their_limit_take_rooms() {
        let mut n = NodeInfo {
            id: "a".into(),
            region: "eu".into(),
            url: String::new(),
            state: NodeState::Serving,
            load: Load::default(),
            max_members: 2,
        };
        assert!(n.takes_rooms());
        n.load.members = 2;
        assert!(!n.takes_rooms());
        n.max_members = 0;
        assert!(n.takes_rooms());
        n.state = NodeState::Draining;
        assert!(!n.takes_rooms());
    }
}
