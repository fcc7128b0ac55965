//! What one node asks another over Redis pub/sub: messages on the target's control channel
//! (`{prefix}node:{id}:control`). For a drain the sender waits for the effect to show (the
//! target's record); for a control action on a room (kick, mute, delete) the owner answers with
//! [`ControlMsg::Done`] on the asker's channel once it is done. Either way a message lost with a
//! Redis outage is a timeout, never a lie.

use serde::{Deserialize, Serialize};

/// A control message for one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ControlMsg {
    /// Take no new rooms (`draining: true`), or take them again.
    Drain {
        /// Whether to drain.
        draining: bool,
    },
    /// Do this to a room the target serves, then answer `Done` to `reply`.
    Room {
        /// The action.
        action: RoomAction,
        /// Where and under which id to answer.
        reply: ReplyTo,
    },
    /// Who is connected to signaling in a cascaded room changed on the sending node `from` (or
    /// on an edge whose change the core passes on): fire and forget, in order per sender.
    Roster {
        /// The room.
        room: String,
        /// The node that sent it.
        from: String,
        /// The change.
        update: RosterUpdate,
    },
    /// The answer to a `Room` message.
    Done {
        /// The `ReplyTo::id` it answers.
        id: u64,
        /// The HTTP status the action ended with (2xx: done).
        status: u16,
        /// The error code, if it failed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<String>,
        /// The error message, if it failed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
}

/// A member connected to signaling on some node of a cascaded room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RosterPeer {
    /// Participant id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Role (`speaker` or `listener`).
    pub role: String,
    /// Muted (by itself or the server).
    pub muted: bool,
    /// The node it is connected to.
    pub node: String,
}

/// A change to a cascaded room's roster ([`ControlMsg::Roster`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RosterUpdate {
    /// A member connected (or connected again) on `peer.node`.
    Joined {
        /// Who.
        peer: RosterPeer,
    },
    /// A member of `node` left.
    Left {
        /// Its node.
        node: String,
        /// Its id.
        id: String,
    },
    /// A member of `node` was muted or unmuted.
    Muted {
        /// Its node.
        node: String,
        /// Its id.
        id: String,
        /// Muted now or not.
        muted: bool,
    },
    /// Everyone connected on `node` now: replaces what the receiver knew of that node (an edge
    /// that just linked to its core; an edge that went, with nobody).
    Node {
        /// The node.
        node: String,
        /// Its members.
        peers: Vec<RosterPeer>,
    },
    /// Everyone connected to the room on the other nodes, as its core sees them: replaces all the
    /// receiver knew (sent to an edge when the core links it).
    Full {
        /// The members.
        peers: Vec<RosterPeer>,
    },
}

/// Where a node answers a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyTo {
    /// The asking node.
    pub node: String,
    /// Its request id.
    pub id: u64,
}

/// A control action on a room, done by its owner (it holds the members' sockets and media).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum RoomAction {
    /// Remove a participant.
    Kick {
        /// The room.
        room: String,
        /// The participant.
        participant: String,
    },
    /// Server-mute or unmute a participant.
    Mute {
        /// The room.
        room: String,
        /// The participant.
        participant: String,
        /// Muted or not.
        muted: bool,
    },
    /// Close the room.
    Delete {
        /// The room.
        room: String,
    },
    /// An edge of `room` asks its core (at `epoch`) for a relay leg: the edge's end receives at
    /// `addr` and sends on `ssrcs`. The core answers once its offer is in the store
    /// (`Keys::room_leg`).
    Link {
        /// The room.
        room: String,
        /// The edge node asking.
        edge: String,
        /// The core's epoch the edge knows.
        epoch: u64,
        /// Where the edge's end of the leg receives.
        addr: String,
        /// The streams the edge sends on it.
        ssrcs: Vec<u32>,
    },
    /// An edge of `room` serves nobody there any more: its core drops their leg.
    Unlink {
        /// The room.
        room: String,
        /// The edge node.
        edge: String,
    },
}

impl ControlMsg {
    /// Parses a message from the channel.
    pub fn parse(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// The message as sent.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_messages_round_trip_and_garbage_is_an_error() {
        let m = ControlMsg::Drain { draining: true };
        assert_eq!(m.to_json(), r#"{"type":"drain","draining":true}"#);
        assert_eq!(ControlMsg::parse(m.to_json().as_bytes()).unwrap(), m);
        assert!(ControlMsg::parse(b"{\"type\":\"explode\"}").is_err());
        let kick = ControlMsg::Room {
            action: RoomAction::Kick {
                room: "r".into(),
                participant: "p".into(),
            },
            reply: ReplyTo {
                node: "n1".into(),
                id: 7,
            },
        };
        assert_eq!(
            kick.to_json(),
            r#"{"type":"room","action":{"action":"kick","room":"r","participant":"p"},"reply":{"node":"n1","id":7}}"#
        );
        assert_eq!(ControlMsg::parse(kick.to_json().as_bytes()).unwrap(), kick);
        let done = ControlMsg::Done {
            id: 7,
            status: 204,
            code: None,
            message: None,
        };
        assert_eq!(done.to_json(), r#"{"type":"done","id":7,"status":204}"#);
        assert!(ControlMsg::parse(b"\xff").is_err());
    }
}
