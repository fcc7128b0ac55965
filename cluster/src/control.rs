//! What one node asks another over Redis pub/sub: messages on the target's control channel
//! (`{prefix}node:{id}:control`). The sender waits for the effect to show (the target's record),
//! not for an acknowledgement, so a message lost with a Redis outage is a timeout, never a lie.

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
        assert!(ControlMsg::parse(b"\xff").is_err());
    }
}
