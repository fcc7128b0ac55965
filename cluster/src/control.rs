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
