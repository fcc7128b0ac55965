//! WebSocket signaling (`GET /v1/signal?token=…`, DESIGN.md): one JSON object per message, each with a
//! `type`. The token is checked before the upgrade (a bad or expired one gets the JSON error shape and
//! no socket). A member's socket gets `welcome`, then news of the room; garbage gets an `error` and the
//! socket stays open; `leave`, a disconnect, a kick or the room's deletion remove the member and tell
//! the others. Each socket has a bounded outbox: a client that does not read is disconnected rather
//! than allowed to hold up the room.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::api::AppState;
use crate::auth::Claims;
use crate::error::ApiError;
use crate::rooms::{Role, RoomMode};

/// Messages queued per socket before a slow reader is disconnected.
pub const OUTBOX: usize = 256;
/// Largest message a client may send.
pub const MAX_MESSAGE: usize = 64 * 1024;

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
        /// Current media mode.
        mode: RoomMode,
        /// Receive slots the client's offer should carry.
        audio_slots: u32,
        /// Members connected before this one.
        peers: Vec<PeerInfo>,
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
    /// A member muted or unmuted itself.
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
}

struct Member {
    info: PeerInfo,
    tx: mpsc::Sender<ServerMsg>,
    conn: u64,
}

/// Connected members by room: who receives room news.
#[derive(Default)]
pub struct Hub {
    rooms: Mutex<HashMap<String, HashMap<String, Member>>>,
    next_conn: std::sync::atomic::AtomicU64,
    joins: std::sync::atomic::AtomicU64,
}

impl Hub {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, HashMap<String, Member>>> {
        self.rooms.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends to one member; a full outbox disconnects it (its socket task sees the channel close).
    fn deliver(members: &mut HashMap<String, Member>, id: &str, msg: ServerMsg) {
        if let Some(m) = members.get(id) {
            if m.tx.try_send(msg).is_err() {
                tracing::warn!(
                    participant = id,
                    "signaling outbox full or closed: disconnecting"
                );
                members.remove(id);
            }
        }
    }

    fn broadcast(members: &mut HashMap<String, Member>, except: &str, msg: &ServerMsg) {
        let ids: Vec<String> = members
            .keys()
            .filter(|k| k.as_str() != except)
            .cloned()
            .collect();
        for id in ids {
            Self::deliver(members, &id, msg.clone());
        }
    }

    /// Registers a connection; returns its number and the peers already there.
    fn join(
        &self,
        room: &str,
        info: PeerInfo,
        tx: mpsc::Sender<ServerMsg>,
    ) -> (u64, Vec<PeerInfo>) {
        let conn = self
            .next_conn
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.joins
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut rooms = self.lock();
        let members = rooms.entry(room.to_string()).or_default();
        if let Some(old) = members.remove(&info.id) {
            let _ = old.tx.try_send(ServerMsg::Bye { reason: "replaced" });
        }
        let peers = members.values().map(|m| m.info.clone()).collect();
        Self::broadcast(
            members,
            &info.id,
            &ServerMsg::PeerJoined {
                participant: info.clone(),
            },
        );
        members.insert(info.id.clone(), Member { info, tx, conn });
        (conn, peers)
    }

    /// Unregisters connection `conn` of `id` (not a newer one that replaced it) and tells the others.
    fn leave(&self, room: &str, id: &str, conn: u64) -> bool {
        let mut rooms = self.lock();
        let Some(members) = rooms.get_mut(room) else {
            return false;
        };
        if members.get(id).is_none_or(|m| m.conn != conn) {
            return false;
        }
        members.remove(id);
        Self::broadcast(
            members,
            id,
            &ServerMsg::PeerLeft {
                participant: id.to_string(),
            },
        );
        if members.is_empty() {
            rooms.remove(room);
        }
        true
    }

    /// Sends `msg` to one member of a room, if connected.
    pub fn send_to(&self, room: &str, id: &str, msg: ServerMsg) {
        if let Some(members) = self.lock().get_mut(room) {
            Self::deliver(members, id, msg);
        }
    }

    /// Sends `msg` to every connected member of a room.
    pub fn send_room(&self, room: &str, msg: &ServerMsg) {
        if let Some(members) = self.lock().get_mut(room) {
            Self::broadcast(members, "", msg);
        }
    }

    /// Records a member's own mute and tells the others.
    pub fn set_muted(&self, room: &str, id: &str, muted: bool) {
        let mut rooms = self.lock();
        let Some(members) = rooms.get_mut(room) else {
            return;
        };
        match members.get_mut(id) {
            Some(m) if m.info.muted != muted => m.info.muted = muted,
            _ => return,
        }
        let msg = ServerMsg::PeerMuted {
            participant: id.to_string(),
            muted,
        };
        Self::broadcast(members, id, &msg);
    }

    /// Signaling connections accepted since start (`sluice_joins_total`).
    pub fn joins(&self) -> u64 {
        self.joins.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Says `bye` to one member and forgets it (kick).
    pub fn kick(&self, room: &str, id: &str) {
        let mut rooms = self.lock();
        if let Some(members) = rooms.get_mut(room) {
            if let Some(m) = members.remove(id) {
                let _ = m.tx.try_send(ServerMsg::Bye { reason: "kicked" });
                Self::broadcast(
                    members,
                    id,
                    &ServerMsg::PeerLeft {
                        participant: id.to_string(),
                    },
                );
            }
        }
    }

    /// Says `bye` to every member of a room and forgets them (room deleted).
    pub fn close_room(&self, room: &str) {
        if let Some(members) = self.lock().remove(room) {
            for m in members.values() {
                let _ = m.tx.try_send(ServerMsg::Bye {
                    reason: "room_closed",
                });
            }
        }
    }

    /// Says `bye` to everyone (shutdown).
    pub fn close_all(&self) {
        for (_, members) in self.lock().drain() {
            for m in members.values() {
                let _ = m.tx.try_send(ServerMsg::Bye {
                    reason: "server_shutdown",
                });
            }
        }
    }

    /// Connected members of a room.
    pub fn connected(&self, room: &str) -> usize {
        self.lock().get(room).map_or(0, HashMap::len)
    }
}

/// `?token=`.
#[derive(Debug, Deserialize)]
pub struct SignalQuery {
    token: Option<String>,
}

/// `GET /v1/signal?token=…`: checks the token and that its participant still exists, then upgrades.
pub async fn signal(
    State(s): State<Arc<AppState>>,
    Query(q): Query<SignalQuery>,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let token = q.token.ok_or_else(|| {
        ApiError::unauthorized("missing_token", "connect with ?token=<participant token>")
    })?;
    let claims = s.auth.verify(&token)?;
    let (mode, audio_slots) = {
        let rooms = s.rooms();
        let room = rooms.get(&claims.room)?;
        if !room.participants.iter().any(|p| p.id == claims.sub) {
            return Err(ApiError::not_found(
                "unknown_participant",
                "this participant was removed from the room",
            ));
        }
        (room.mode, room.last_n)
    };
    let ws = ws.map_err(|e| ApiError::bad_request("not_websocket", e.to_string()))?;
    Ok(ws
        .max_message_size(MAX_MESSAGE)
        .on_upgrade(move |socket| run_socket(s, claims, mode, audio_slots, socket)))
}

async fn send(socket: &mut WebSocket, msg: &ServerMsg) -> bool {
    match serde_json::to_string(msg) {
        Ok(text) => socket.send(Message::Text(text.into())).await.is_ok(),
        Err(_) => false,
    }
}

async fn run_socket(
    s: Arc<AppState>,
    claims: Claims,
    mode: RoomMode,
    audio_slots: u32,
    mut socket: WebSocket,
) {
    let info = PeerInfo {
        id: claims.sub.clone(),
        name: claims.name.clone(),
        role: claims.role,
        muted: false,
    };
    let (tx, mut rx) = mpsc::channel(OUTBOX);
    let (conn, peers) = s.hub.join(&claims.room, info.clone(), tx);
    tracing::info!(room = %claims.room, participant = %info.id, "signaling connected");
    let welcome = ServerMsg::Welcome {
        participant: info.clone(),
        room: claims.room.clone(),
        mode,
        audio_slots,
        peers,
    };
    let mut reason = "disconnected";
    if send(&mut socket, &welcome).await {
        loop {
            tokio::select! {
                out = rx.recv() => match out {
                    Some(msg) => {
                        let bye = matches!(msg, ServerMsg::Bye { .. });
                        if !send(&mut socket, &msg).await || bye {
                            reason = "closed by server";
                            break;
                        }
                    }
                    None => {
                        let _ = send(&mut socket, &ServerMsg::Bye { reason: "slow_consumer" }).await;
                        reason = "slow consumer";
                        break;
                    }
                },
                inc = socket.recv() => match inc {
                    Some(Ok(Message::Text(text))) => match serde_json::from_str::<ClientMsg>(&text) {
                        Ok(ClientMsg::Leave) => {
                            let _ = send(&mut socket, &ServerMsg::Bye { reason: "left" }).await;
                            reason = "left";
                            break;
                        }
                        Ok(ClientMsg::Mute { muted }) => {
                            tracing::info!(participant = %info.id, muted, "client mute");
                            if let Some(media) = &s.media {
                                media.set_muted(&claims.room, &info.id, muted);
                            }
                            s.hub.set_muted(&claims.room, &info.id, muted);
                        }
                        Ok(ClientMsg::Offer { sdp }) => {
                            let reply = match &s.media {
                                Some(media) => match media.offer(&claims.room, &info.id, &sdp, audio_slots) {
                                    Ok((answer, mids)) => {
                                        if !send(&mut socket, &ServerMsg::Answer { sdp: answer }).await { break; }
                                        let slots = mids.into_iter().map(|mid| SlotInfo { mid, participant: None }).collect();
                                        ServerMsg::Slots { slots }
                                    }
                                    Err(e) => ServerMsg::Error { code: "bad_sdp", message: e.to_string() },
                                },
                                None => ServerMsg::Error { code: "not_implemented", message: "this server has no dataplane".into() },
                            };
                            if !send(&mut socket, &reply).await { break; }
                        }
                        Err(e) => {
                            let e = ServerMsg::Error { code: "bad_message", message: format!("not a signaling message: {e}") };
                            if !send(&mut socket, &e).await { break; }
                        }
                    },
                    Some(Ok(Message::Binary(_))) => {
                        let e = ServerMsg::Error { code: "bad_message", message: "signaling messages are JSON text".into() };
                        if !send(&mut socket, &e).await { break; }
                    }
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => {}
                },
            }
        }
    }
    // Gone from signaling means gone from the room (unless a newer connection replaced this one).
    if s.hub.leave(&claims.room, &info.id, conn) {
        let _ = s.rooms().remove_participant(&claims.room, &info.id);
        if let Some(m) = &s.media {
            m.remove_participant(&claims.room, &info.id);
        }
    }
    tracing::info!(room = %claims.room, participant = %info.id, reason, "signaling closed");
}
