//! The signaling protocol (docs/architecture.md, "Signaling"): the JSON messages of
//! `GET /v1/signal`, one object per WebSocket text message, each with a `type`. Plain data with serde;
//! the hub routes them and the socket handler reads and writes them.

use serde::{Deserialize, Serialize};

use crate::mode::MediaMode;
use crate::rooms::Role;

/// A room member as signaling shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PeerInfo {
    /// Participant id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Muted by its own client (`mute`).
    pub muted: bool,
}

/// One speaker slot of a subscriber, as `slots` announces it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SlotInfo {
    /// The MID of the receive transceiver (m= section) the slot arrives on.
    pub mid: String,
    /// Who is on it now (`null`: nobody).
    pub participant: Option<String>,
}

/// Server → client.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMsg {
    /// First message after connecting.
    Welcome {
        /// This participant.
        participant: PeerInfo,
        /// Room name.
        room: String,
        /// How media flows now: `p2p` (connect to each peer) or `sfu` (send an `offer`).
        mode: MediaMode,
        /// Receive slots the client's offer should carry.
        audio_slots: u32,
        /// Members connected before this one.
        peers: Vec<PeerInfo>,
        /// In a cluster: base URLs of the other live nodes, where to reconnect (with the same
        /// token) if this node goes away and the entry URL joined through went with it.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        entry_urls: Vec<String>,
    },
    /// In a cluster: this node does not serve the room; open this WebSocket URL instead (token
    /// included). The socket closes after it.
    Redirect {
        /// The complete `ws(s)://…/v1/signal?token=…` URL.
        url: String,
    },
    /// Someone connected.
    PeerJoined {
        /// Who.
        participant: PeerInfo,
    },
    /// Someone left.
    PeerLeft {
        /// Their id.
        participant: String,
    },
    /// The SDP answer to the client's offer.
    Answer {
        /// The SDP.
        sdp: String,
    },
    /// Who is on each of this client's receive slots; sent after the answer and on every change.
    Slots {
        /// Every slot, in the order of the offer's receive transceivers.
        slots: Vec<SlotInfo>,
    },
    /// Who in the room is speaking now, most recent first (from the audio levels they send).
    ActiveSpeakers {
        /// Participant ids.
        ids: Vec<String>,
    },
    /// The room switched mode: in `sfu`, send an `offer` and close the mesh once the SFU connection
    /// carries audio; in `p2p`, connect to every peer and close the SFU connection once they do.
    Mode {
        /// The new mode.
        mode: MediaMode,
    },
    /// A peer's SDP offer for a direct connection (p2p).
    PeerOffer {
        /// The peer's id.
        from: String,
        /// The SDP.
        sdp: String,
    },
    /// A peer's SDP answer (p2p).
    PeerAnswer {
        /// The peer's id.
        from: String,
        /// The SDP.
        sdp: String,
    },
    /// A peer's ICE candidate (p2p): the browser's RTCIceCandidateInit object, as sent.
    PeerCandidate {
        /// The peer's id.
        from: String,
        /// The candidate.
        candidate: serde_json::Value,
    },
    /// A member was muted or unmuted (by itself, or by the server: then it is told too).
    PeerMuted {
        /// Its id.
        participant: String,
        /// Muted now or not.
        muted: bool,
    },
    /// Something the client sent was refused; the socket stays open.
    Error {
        /// Stable code.
        code: &'static str,
        /// Message.
        message: String,
    },
    /// Not sent: the socket closes without `bye`, so the client reconnects (the room moved to
    /// another node, which this one learned it lost).
    #[serde(skip)]
    Moved,
    /// The server closes this socket.
    Bye {
        /// Why: `left`, `kicked`, `room_closed`, `replaced`, `server_shutdown`, `slow_consumer`.
        reason: &'static str,
    },
}

/// Client → server.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMsg {
    /// SDP offer for the SFU connection.
    Offer {
        /// The SDP.
        sdp: String,
    },
    /// Mute: the server stops forwarding this client's audio (and frees its slots) until unmuted.
    Mute {
        /// Muted or not.
        muted: bool,
    },
    /// Leave the room.
    Leave,
    /// An SDP offer for the peer `to` (p2p); delivered as `peer_offer {from, sdp}`.
    PeerOffer {
        /// The peer's id.
        to: String,
        /// The SDP.
        sdp: String,
    },
    /// An SDP answer for the peer `to` (p2p).
    PeerAnswer {
        /// The peer's id.
        to: String,
        /// The SDP.
        sdp: String,
    },
    /// An ICE candidate for the peer `to` (p2p); `null` or `{}` ends the candidates.
    PeerCandidate {
        /// The peer's id.
        to: String,
        /// RTCIceCandidateInit.
        candidate: serde_json::Value,
    },
}
