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

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime};

use crate::api::AppState;
use crate::auth::Claims;
use crate::error::ApiError;
use crate::mode::{MediaMode, ModeMachine, ModeRules};
use crate::rooms::{Role, RoomMode};

/// Messages queued per socket before a slow reader is disconnected.
pub const OUTBOX: usize = 256;
/// Largest message a client may send.
pub const MAX_MESSAGE: usize = 64 * 1024;
/// Messages a client may send in a burst (a browser joining a mesh of 8 trickles a few dozen).
pub const RATE_BURST: f64 = 100.0;
/// Messages per second a client may send on average.
pub const RATE_PER_S: f64 = 50.0;

/// A token bucket: what keeps one client from flooding the server or, through the p2p relay, the
/// outbox of another member (which would disconnect that member as a slow consumer).
#[derive(Debug, Clone)]
pub struct RateLimit {
    tokens: f64,
    burst: f64,
    per_s: f64,
    at: Instant,
}

impl RateLimit {
    /// Full bucket of `burst`, refilled at `per_s`.
    pub fn new(now: Instant, burst: f64, per_s: f64) -> Self {
        Self {
            tokens: burst,
            burst,
            per_s,
            at: now,
        }
    }

    /// Takes one token; false when the bucket is empty.
    pub fn allow(&mut self, now: Instant) -> bool {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = now;
        self.tokens = (self.tokens + dt * self.per_s).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

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

struct Member {
    info: PeerInfo,
    tx: mpsc::Sender<ServerMsg>,
    conn: u64,
}

/// A room as signaling sees it: who is connected, and how media flows.
struct LiveRoom {
    members: HashMap<String, Member>,
    mode: ModeMachine,
    /// Seconds since the Unix epoch of the last switch.
    last_switch: Option<u64>,
    /// When the room last went back to P2P, until its leftover SFU transports are cleaned up.
    back_to_p2p: Option<Instant>,
}

/// A room's mode switched: what the caller reports (metrics, logs, webhooks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModeSwitch {
    /// The room.
    pub room: String,
    /// The mode it left.
    pub from: MediaMode,
    /// The mode it is in now.
    pub to: MediaMode,
    /// Members connected at the switch.
    pub members: u32,
}

/// A room's live state, for the REST API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveState {
    /// How media flows now.
    pub mode: MediaMode,
    /// Last switch, seconds since the Unix epoch.
    pub last_switch: Option<u64>,
    /// Members connected.
    pub connected: u32,
}

/// Why a p2p message was not delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayError {
    /// `to` is not connected to this room.
    UnknownPeer,
    /// A client addressed itself.
    ToSelf,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Connected members by room: who receives room news, and each room's mode.
#[derive(Default)]
pub struct Hub {
    rooms: Mutex<HashMap<String, LiveRoom>>,
    next_conn: AtomicU64,
    joins: AtomicU64,
    to_sfu: AtomicU64,
    to_p2p: AtomicU64,
}

impl Hub {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, LiveRoom>> {
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

    /// Records a switch of `room` to `to`, tells every member but `except`, and returns the report.
    fn switched(&self, name: &str, room: &mut LiveRoom, to: MediaMode, except: &str) -> ModeSwitch {
        room.last_switch = Some(unix_now());
        room.back_to_p2p = (to == MediaMode::P2p).then(Instant::now);
        let counter = match to {
            MediaMode::Sfu => &self.to_sfu,
            MediaMode::P2p => &self.to_p2p,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let members = room.members.len() as u32;
        tracing::info!(room = name, mode = to.name(), members, "room switched mode");
        Self::broadcast(&mut room.members, except, &ServerMsg::Mode { mode: to });
        ModeSwitch {
            room: name.to_string(),
            from: match to {
                MediaMode::Sfu => MediaMode::P2p,
                MediaMode::P2p => MediaMode::Sfu,
            },
            to,
            members,
        }
    }

    /// Registers a connection to a room with `rules`; returns its number, the peers already there,
    /// the room's mode after this join, and the switch this join caused, if any.
    fn join(
        &self,
        room: &str,
        rules: ModeRules,
        info: PeerInfo,
        tx: mpsc::Sender<ServerMsg>,
    ) -> (u64, Vec<PeerInfo>, MediaMode, Option<ModeSwitch>) {
        let conn = self.next_conn.fetch_add(1, Ordering::Relaxed);
        self.joins.fetch_add(1, Ordering::Relaxed);
        let mut rooms = self.lock();
        let live = rooms.entry(room.to_string()).or_insert_with(|| LiveRoom {
            members: HashMap::new(),
            mode: ModeMachine::new(rules),
            last_switch: None,
            back_to_p2p: None,
        });
        if let Some(old) = live.members.remove(&info.id) {
            let _ = old.tx.try_send(ServerMsg::Bye { reason: "replaced" });
        }
        let peers = live.members.values().map(|m| m.info.clone()).collect();
        Self::broadcast(
            &mut live.members,
            &info.id,
            &ServerMsg::PeerJoined {
                participant: info.clone(),
            },
        );
        let id = info.id.clone();
        live.members.insert(id.clone(), Member { info, tx, conn });
        let n = live.members.len() as u32;
        let switch = live
            .mode
            .on_members(Instant::now(), n)
            .map(|to| self.switched(room, live, to, &id));
        (conn, peers, live.mode.current(), switch)
    }

    /// Forgets member `id` of `room` and tells the others; keeps the room's mode state.
    fn remove_member(live: &mut LiveRoom, id: &str) {
        live.members.remove(id);
        Self::broadcast(
            &mut live.members,
            id,
            &ServerMsg::PeerLeft {
                participant: id.to_string(),
            },
        );
        let n = live.members.len() as u32;
        live.mode.on_members(Instant::now(), n);
    }

    /// Unregisters connection `conn` of `id` (not a newer one that replaced it) and tells the others.
    fn leave(&self, room: &str, id: &str, conn: u64) -> bool {
        let mut rooms = self.lock();
        let Some(live) = rooms.get_mut(room) else {
            return false;
        };
        if live.members.get(id).is_none_or(|m| m.conn != conn) {
            return false;
        }
        Self::remove_member(live, id);
        true
    }

    /// Sends `msg` to one member of a room, if connected.
    pub fn send_to(&self, room: &str, id: &str, msg: ServerMsg) {
        if let Some(live) = self.lock().get_mut(room) {
            Self::deliver(&mut live.members, id, msg);
        }
    }

    /// Sends `msg` to every connected member of a room.
    pub fn send_room(&self, room: &str, msg: &ServerMsg) {
        if let Some(live) = self.lock().get_mut(room) {
            Self::broadcast(&mut live.members, "", msg);
        }
    }

    /// Delivers a p2p message from `from` to `to` in `room`.
    fn relay(&self, room: &str, from: &str, to: &str, msg: ServerMsg) -> Result<(), RelayError> {
        if from == to {
            return Err(RelayError::ToSelf);
        }
        let mut rooms = self.lock();
        let live = rooms.get_mut(room).ok_or(RelayError::UnknownPeer)?;
        if !live.members.contains_key(to) {
            return Err(RelayError::UnknownPeer);
        }
        Self::deliver(&mut live.members, to, msg);
        Ok(())
    }

    /// Records a member's mute and tells the room: the others when it muted itself, everyone
    /// (the member too) when the server did.
    pub fn set_muted(&self, room: &str, id: &str, muted: bool, by_server: bool) {
        let mut rooms = self.lock();
        let Some(live) = rooms.get_mut(room) else {
            return;
        };
        match live.members.get_mut(id) {
            Some(m) => m.info.muted = muted,
            None => return,
        }
        let msg = ServerMsg::PeerMuted {
            participant: id.to_string(),
            muted,
        };
        Self::broadcast(&mut live.members, if by_server { "" } else { id }, &msg);
    }

    /// Signaling connections accepted since start (`sluice_joins_total`).
    pub fn joins(&self) -> u64 {
        self.joins.load(Ordering::Relaxed)
    }

    /// Mode switches since start: (to SFU, to P2P).
    pub fn switches(&self) -> (u64, u64) {
        (
            self.to_sfu.load(Ordering::Relaxed),
            self.to_p2p.load(Ordering::Relaxed),
        )
    }

    /// Switches back to P2P the `auto` rooms whose cooldown ran out; call it a few times a second.
    pub fn poll_modes(&self, now: Instant) -> Vec<ModeSwitch> {
        let mut rooms = self.lock();
        let mut out = Vec::new();
        for (name, live) in rooms.iter_mut() {
            if let Some(to) = live.mode.poll(now) {
                out.push(self.switched(name, live, to, ""));
            }
        }
        out
    }

    /// Rooms that went back to P2P at least `grace` ago (time for every client to move its audio to
    /// the mesh), each with the instant of the switch; each room is returned once per switch. Their
    /// SFU transports from before the switch are leftovers to remove.
    pub fn take_back_to_p2p(
        &self,
        now: Instant,
        grace: std::time::Duration,
    ) -> Vec<(String, Instant)> {
        let mut rooms = self.lock();
        let mut out = Vec::new();
        for (name, live) in rooms.iter_mut() {
            if let Some(at) = live.back_to_p2p {
                if now.saturating_duration_since(at) >= grace {
                    live.back_to_p2p = None;
                    if live.mode.current() == MediaMode::P2p {
                        out.push((name.clone(), at));
                    }
                }
            }
        }
        out
    }

    /// A room's live state; `None` when nobody ever connected to it.
    pub fn live(&self, room: &str) -> Option<LiveState> {
        self.lock().get(room).map(|l| LiveState {
            mode: l.mode.current(),
            last_switch: l.last_switch,
            connected: l.members.len() as u32,
        })
    }

    /// Says `bye` to one member and forgets it (kick).
    pub fn kick(&self, room: &str, id: &str) {
        let mut rooms = self.lock();
        if let Some(live) = rooms.get_mut(room) {
            if let Some(m) = live.members.get(id) {
                let _ = m.tx.try_send(ServerMsg::Bye { reason: "kicked" });
                Self::remove_member(live, id);
            }
        }
    }

    /// Says `bye` to every member of a room and forgets the room (deleted or expired).
    pub fn close_room(&self, room: &str) {
        if let Some(live) = self.lock().remove(room) {
            for m in live.members.values() {
                let _ = m.tx.try_send(ServerMsg::Bye {
                    reason: "room_closed",
                });
            }
        }
    }

    /// Says `bye` to everyone (shutdown).
    pub fn close_all(&self) {
        for (_, live) in self.lock().drain() {
            for m in live.members.values() {
                let _ = m.tx.try_send(ServerMsg::Bye {
                    reason: "server_shutdown",
                });
            }
        }
    }

    /// Connected members, all rooms.
    pub fn connected_total(&self) -> usize {
        self.lock().values().map(|l| l.members.len()).sum()
    }

    /// Connected members of a room.
    pub fn connected(&self, room: &str) -> usize {
        self.lock().get(room).map_or(0, |l| l.members.len())
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
    let (rules, audio_slots) = {
        let rooms = s.rooms();
        let room = rooms.get(&claims.room)?;
        if !room.participants.iter().any(|p| p.id == claims.sub) {
            return Err(ApiError::not_found(
                "unknown_participant",
                "this participant was removed from the room",
            ));
        }
        (room.mode_rules(), room.last_n)
    };
    let ws = ws.map_err(|e| ApiError::bad_request("not_websocket", e.to_string()))?;
    Ok(ws
        .max_message_size(MAX_MESSAGE)
        .on_upgrade(move |socket| run_socket(s, claims, rules, audio_slots, socket)))
}

async fn send(socket: &mut WebSocket, msg: &ServerMsg) -> bool {
    match serde_json::to_string(msg) {
        Ok(text) => socket.send(Message::Text(text.into())).await.is_ok(),
        Err(_) => false,
    }
}

/// What the socket loop does after a client message.
enum Next {
    /// Keep going (after sending these replies, in order).
    Reply(Vec<ServerMsg>),
    /// The client left: say `bye` and close.
    Leave,
}

fn error(code: &'static str, message: impl Into<String>) -> Next {
    Next::Reply(vec![ServerMsg::Error {
        code,
        message: message.into(),
    }])
}

/// One member's signaling connection, after the upgrade.
struct Session {
    s: Arc<AppState>,
    claims: Claims,
    rules: ModeRules,
    audio_slots: u32,
}

impl Session {
    fn room(&self) -> &str {
        &self.claims.room
    }

    fn me(&self) -> &str {
        &self.claims.sub
    }

    /// Handles one text message from the client.
    fn on_text(&self, text: &str) -> Next {
        let msg = match serde_json::from_str::<ClientMsg>(text) {
            Ok(m) => m,
            Err(e) => return error("bad_message", format!("not a signaling message: {e}")),
        };
        match msg {
            ClientMsg::Leave => Next::Leave,
            ClientMsg::Mute { muted } => {
                tracing::info!(
                    room = self.room(),
                    participant = self.me(),
                    muted,
                    "client mute"
                );
                self.s.set_muted(self.room(), self.me(), muted, false);
                Next::Reply(vec![])
            }
            ClientMsg::Offer { sdp } => self.on_offer(&sdp),
            ClientMsg::PeerOffer { to, sdp } => {
                let from = self.me().to_string();
                self.relay(&to, ServerMsg::PeerOffer { from, sdp })
            }
            ClientMsg::PeerAnswer { to, sdp } => {
                let from = self.me().to_string();
                self.relay(&to, ServerMsg::PeerAnswer { from, sdp })
            }
            ClientMsg::PeerCandidate { to, candidate } => {
                let from = self.me().to_string();
                self.relay(&to, ServerMsg::PeerCandidate { from, candidate })
            }
        }
    }

    /// An offer for the SFU connection.
    fn on_offer(&self, sdp: &str) -> Next {
        if self.rules.configured == RoomMode::P2p {
            return error(
                "p2p_room",
                "this room is peer to peer: connect to the peers with peer_offer",
            );
        }
        let Some(media) = &self.s.media else {
            return error("not_implemented", "this server has no dataplane");
        };
        let publishes = self.claims.role != Role::Listener;
        match media.offer(self.room(), self.me(), sdp, self.audio_slots, publishes) {
            Ok((answer, mids)) => Next::Reply(vec![
                ServerMsg::Answer { sdp: answer },
                ServerMsg::Slots {
                    slots: mids
                        .into_iter()
                        .map(|mid| SlotInfo {
                            mid,
                            participant: None,
                        })
                        .collect(),
                },
            ]),
            Err(e) => error("bad_sdp", e.to_string()),
        }
    }

    /// A p2p message for another member.
    fn relay(&self, to: &str, msg: ServerMsg) -> Next {
        if self.rules.configured == RoomMode::Sfu {
            return error(
                "sfu_room",
                "this room carries media through the server only: send an offer",
            );
        }
        match self.s.hub.relay(self.room(), self.me(), to, msg) {
            Ok(()) => Next::Reply(vec![]),
            Err(RelayError::UnknownPeer) => error(
                "unknown_peer",
                format!("{to:?} is not connected to this room"),
            ),
            Err(RelayError::ToSelf) => error("unknown_peer", "a peer message needs another member"),
        }
    }
}

async fn run_socket(
    s: Arc<AppState>,
    claims: Claims,
    rules: ModeRules,
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
    let (conn, peers, mode, switch) = s.hub.join(&claims.room, rules, info.clone(), tx);
    tracing::info!(room = %claims.room, participant = %info.id, mode = mode.name(), "signaling connected");
    s.on_joined(&claims.room, &info);
    if let Some(sw) = switch {
        s.on_mode_switch(&sw);
    }
    let welcome = ServerMsg::Welcome {
        participant: info.clone(),
        room: claims.room.clone(),
        mode,
        audio_slots,
        peers,
    };
    let session = Session {
        s: s.clone(),
        claims,
        rules,
        audio_slots,
    };
    let mut reason = "disconnected";
    let mut limit = RateLimit::new(Instant::now(), RATE_BURST, RATE_PER_S);
    if send(&mut socket, &welcome).await {
        'run: loop {
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
                inc = socket.recv() => {
                    let next = match inc {
                        Some(Ok(Message::Text(_) | Message::Binary(_))) if !limit.allow(Instant::now()) => {
                            error("rate_limited", format!("more than {RATE_PER_S} messages per second: dropped"))
                        }
                        Some(Ok(Message::Text(text))) => session.on_text(&text),
                        Some(Ok(Message::Binary(_))) => error("bad_message", "signaling messages are JSON text"),
                        Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                        Some(Ok(_)) => continue,
                    };
                    match next {
                        Next::Leave => {
                            let _ = send(&mut socket, &ServerMsg::Bye { reason: "left" }).await;
                            reason = "left";
                            break;
                        }
                        Next::Reply(replies) => {
                            for r in &replies {
                                if !send(&mut socket, r).await {
                                    break 'run;
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    // Gone from signaling means gone from the room (unless a newer connection replaced this one).
    let room = session.claims.room.clone();
    if s.hub.leave(&room, &info.id, conn) {
        let _ = s.rooms().remove_participant(&room, &info.id);
        if let Some(m) = &s.media {
            m.remove_participant(&room, &info.id);
        }
        s.on_left(&room, &info.id, reason);
    }
    tracing::info!(room = %room, participant = %info.id, reason, "signaling closed");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_rate_limit_allows_a_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut l = RateLimit::new(t0, 3.0, 10.0);
        assert!((0..3).all(|_| l.allow(t0)));
        assert!(!l.allow(t0), "burst spent");
        assert!(!l.allow(t0 + Duration::from_millis(50)), "half a token");
        assert!(l.allow(t0 + Duration::from_millis(100)));
        assert!(!l.allow(t0 + Duration::from_millis(100)));
        // A long pause refills to the burst, not beyond.
        let later = t0 + Duration::from_secs(60);
        assert!((0..3).all(|_| l.allow(later)));
        assert!(!l.allow(later));
    }
}
