//! The signaling socket (`GET /v1/signal?token=…`, docs/architecture.md): the token is checked
//! before the upgrade (a bad or expired one gets the JSON error shape and no socket); then one task
//! per member reads client messages (rate-limited, size-limited) and writes what the hub queues for
//! it. A member's socket gets `welcome`, then news of the room; garbage gets an `error` and the socket
//! stays open; `leave`, a disconnect, a kick or the room's deletion remove the member and tell the
//! others.
//!
//! Limits (docs/security.md, "Participants who misbehave"): frames and messages of at most
//! [`MAX_WS_MESSAGE`] bytes (nothing larger is buffered); a ping every
//! [`SignalLimits::ping_interval`] and the socket closed after [`SignalLimits::idle_timeout`] of
//! silence; the message rate kept per participant by the hub (a reconnect does not refill it);
//! relayed SDP of at most [`MAX_RELAYED_SDP`] bytes within the receiver's relay budget; no
//! `peer_offer`/`peer_answer` that would send audio from a listener. Offers for the SFU are
//! handled on the blocking pool (`spawn_blocking`): parsing, DTLS and waiting for the worker never
//! hold up the runtime's threads.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::Response;
use serde::Deserialize;
use tokio::sync::mpsc;

use crate::auth::Claims;
use crate::clock::Now;
use crate::error::ApiError;
use crate::guard::ClientIp;
use crate::hub::{Joined, RelayError};
use crate::limits::{KeepAlive, Liveness, SignalLimits, MAX_RELAYED_SDP, MAX_WS_MESSAGE};
use crate::messages::{ClientMsg, PeerInfo, ServerMsg, SlotInfo};
use crate::mode::{ModeRules, RoomMode};
use crate::rate_limit::RATE_PER_S;
use crate::room_store::Route;
use crate::rooms::Role;
use crate::sdp::sends_audio;
use crate::state::AppState;

/// Bytes a signaling socket's read buffer starts with.
const WS_READ_BUFFER: usize = 4096;

/// Messages queued per socket before a slow reader is disconnected.
pub const OUTBOX: usize = 256;
/// Largest message a client may send.
pub const MAX_MESSAGE: usize = MAX_WS_MESSAGE;

/// `?token=`.
#[derive(Debug, Deserialize)]
pub struct SignalQuery {
    token: Option<String>,
}

/// `GET /v1/signal?token=…`: checks the token and that its participant still exists, then upgrades.
pub async fn signal(
    State(s): State<Arc<AppState>>,
    client: ClientIp,
    Query(q): Query<SignalQuery>,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let token = q.token.ok_or_else(|| {
        ApiError::unauthorized("missing_token", "connect with ?token=<participant token>")
    })?;
    let claims = s.auth.verify(&token, SystemTime::now())?;
    let ws = ws.map_err(|e| ApiError::bad_request("not_websocket", e.to_string()));
    let entry_urls = match s.route_signal(&claims.room, &claims.sub).await? {
        Route::Here { entry_urls, .. } => entry_urls,
        Route::Elsewhere(base) => {
            // Another node serves this room: the client opens the socket there (media and
            // signaling never cross the cluster store).
            let url = format!("{base}/v1/signal?token={token}");
            tracing::info!(room = %claims.room, participant = %claims.sub, to = %base, "signaling redirected to the room's node");
            return Ok(ws?.on_upgrade(move |mut socket| async move {
                let _ = send(&mut socket, &ServerMsg::Redirect { url }).await;
                let _ = socket.send(Message::Close(None)).await;
            }));
        }
    };
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
    Ok(ws?
        .max_message_size(MAX_MESSAGE)
        .max_frame_size(MAX_MESSAGE)
        // Signaling is small messages: a socket starts with a small read buffer (it grows for a
        // larger frame, up to MAX_MESSAGE) and writes each message out at once, instead of the
        // 128 KiB each way a WebSocket gets by default (memory per member, docs/architecture.md).
        .read_buffer_size(WS_READ_BUFFER)
        .write_buffer_size(0)
        .on_upgrade(move |socket| {
            run_socket(s, claims, (rules, audio_slots, entry_urls), client, socket)
        }))
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
    /// An SFU offer to hand to the media layer off the runtime.
    Offer(String),
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
                if !muted && self.s.rooms().is_server_muted(self.room(), self.me()) {
                    return error(
                        "server_muted",
                        "the server muted you: only the server can unmute you",
                    );
                }
                tracing::info!(
                    room = self.room(),
                    participant = self.me(),
                    muted,
                    "client mute"
                );
                self.s.set_muted(self.room(), self.me(), muted, false);
                Next::Reply(vec![])
            }
            ClientMsg::Offer { sdp } => Next::Offer(sdp),
            ClientMsg::PeerOffer { to, sdp } => {
                if let Some(refused) = self.check_peer_sdp(&sdp) {
                    return refused;
                }
                let from = self.me().to_string();
                self.relay(&to, ServerMsg::PeerOffer { from, sdp }, text.len())
            }
            ClientMsg::PeerAnswer { to, sdp } => {
                if let Some(refused) = self.check_peer_sdp(&sdp) {
                    return refused;
                }
                let from = self.me().to_string();
                self.relay(&to, ServerMsg::PeerAnswer { from, sdp }, text.len())
            }
            ClientMsg::PeerCandidate { to, candidate } => {
                let from = self.me().to_string();
                self.relay(
                    &to,
                    ServerMsg::PeerCandidate { from, candidate },
                    text.len(),
                )
            }
        }
    }

    /// Why a p2p SDP may not be relayed, if it may not: too large, or a listener's that sends audio.
    fn check_peer_sdp(&self, sdp: &str) -> Option<Next> {
        if sdp.len() > MAX_RELAYED_SDP {
            return Some(error(
                "sdp_too_large",
                format!("relayed SDP is limited to {MAX_RELAYED_SDP} bytes"),
            ));
        }
        if self.claims.role == Role::Listener && sends_audio(sdp) {
            return Some(error(
                "listener_cannot_publish",
                "a listener's SDP may only receive audio (recvonly or inactive)",
            ));
        }
        None
    }

    /// An offer for the SFU connection, handled on the blocking pool: parsing, the DTLS context and
    /// waiting for the worker to apply the transport may take a while and must not hold a runtime
    /// thread (other sockets, `/healthz`).
    async fn on_offer(&self, sdp: String) -> Next {
        if self.rules.configured == RoomMode::P2p {
            return error(
                "p2p_room",
                "this room is peer to peer: connect to the peers with peer_offer",
            );
        }
        let Some(media) = self.s.media.clone() else {
            return error("not_implemented", "this server has no dataplane");
        };
        let publishes = self.claims.role != Role::Listener;
        let (room, me, slots) = (
            self.room().to_string(),
            self.me().to_string(),
            self.audio_slots,
        );
        let done =
            tokio::task::spawn_blocking(move || media.offer(&room, &me, &sdp, slots, publishes))
                .await;
        let Ok(done) = done else {
            return error("internal", "the offer could not be handled");
        };
        match done {
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
            Err(e @ crate::media::MediaError::SsrcInUse(_)) => error("ssrc_in_use", e.to_string()),
            Err(e) => error("bad_sdp", e.to_string()),
        }
    }

    /// A p2p message of `bytes` bytes for another member.
    fn relay(&self, to: &str, msg: ServerMsg, bytes: usize) -> Next {
        if self.rules.configured == RoomMode::Sfu {
            return error(
                "sfu_room",
                "this room carries media through the server only: send an offer",
            );
        }
        match self
            .s
            .hub
            .relay(self.room(), self.me(), to, msg, bytes, Instant::now())
        {
            Ok(()) => Next::Reply(vec![]),
            Err(RelayError::ReceiverBusy) => error(
                "receiver_busy",
                format!("{to:?} is receiving too much relayed signaling: not delivered, try later"),
            ),
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
    (rules, audio_slots, entry_urls): (ModeRules, u32, Vec<String>),
    client: ClientIp,
    mut socket: WebSocket,
) {
    let _open = s.hub.socket_open();
    let info = PeerInfo {
        id: claims.sub.clone(),
        name: claims.name.clone(),
        role: claims.role,
        muted: s.server_mute_on_connect(&claims.room, &claims.sub),
    };
    let (tx, mut rx) = mpsc::channel(OUTBOX);
    // A kick (or the end of the join grace) that came while the socket was upgrading wins.
    let admitted = s.admit(&claims.room, &info.id, client.key(), || {
        s.hub
            .join(&claims.room, rules, info.clone(), tx, Now::read())
    });
    let Some(Joined {
        conn,
        peers,
        mode,
        switch,
    }) = admitted
    else {
        let _ = send(&mut socket, &ServerMsg::Bye { reason: "kicked" }).await;
        tracing::info!(room = %claims.room, participant = %info.id, "removed while connecting: socket refused");
        return;
    };
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
        entry_urls,
    };
    let session = Session {
        s: s.clone(),
        claims,
        rules,
        audio_slots,
    };
    let mut reason = "disconnected";
    let limits: SignalLimits = s.hub.limits();
    let mut alive = Liveness::new(Instant::now(), limits);
    let mut tick = tokio::time::interval(alive.tick());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    if send(&mut socket, &welcome).await {
        'run: loop {
            tokio::select! {
                _ = tick.tick() => match alive.poll(Instant::now()) {
                    KeepAlive::Wait => {}
                    KeepAlive::Ping => {
                        if socket.send(Message::Ping(Default::default())).await.is_err() {
                            break;
                        }
                    }
                    KeepAlive::Close => {
                        reason = "timeout";
                        let _ = send(&mut socket, &ServerMsg::Bye { reason: "timeout" }).await;
                        break;
                    }
                },
                out = rx.recv() => match out.as_deref() {
                    Some(ServerMsg::Moved) => {
                        let _ = socket.send(Message::Close(None)).await;
                        reason = "room moved";
                        break;
                    }
                    Some(msg @ ServerMsg::Redirect { .. }) => {
                        let _ = send(&mut socket, msg).await;
                        let _ = socket.send(Message::Close(None)).await;
                        reason = "room moved";
                        break;
                    }
                    Some(msg) => {
                        let bye = matches!(msg, ServerMsg::Bye { .. });
                        if !send(&mut socket, msg).await || bye {
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
                    if matches!(inc, Some(Ok(_))) {
                        alive.heard(Instant::now());
                    }
                    let next = match inc {
                        Some(Ok(Message::Text(_) | Message::Binary(_)))
                            if !s.hub.allow_message(session.room(), session.me(), Instant::now()) =>
                        {
                            error("rate_limited", format!("more than {RATE_PER_S} messages per second: dropped"))
                        }
                        Some(Ok(Message::Text(text))) => session.on_text(&text),
                        Some(Ok(Message::Binary(_))) => error("bad_message", "signaling messages are JSON text"),
                        Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                        Some(Ok(_)) => continue,
                    };
                    let next = match next {
                        Next::Offer(sdp) => session.on_offer(sdp).await,
                        other => other,
                    };
                    match next {
                        Next::Offer(_) => {}
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
    if s.hub.leave(&room, &info.id, conn, Instant::now()) {
        let _ = s.rooms().remove_participant(&room, &info.id);
        s.forget_in_cluster(&room, &info.id);
        s.on_gone(&room, &info.id);
        if let Some(m) = &s.media {
            m.remove_participant(&room, &info.id);
        }
        s.on_left(&room, &info.id, reason);
    }
    tracing::info!(room = %room, participant = %info.id, reason, "signaling closed");
}
