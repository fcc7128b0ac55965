//! The REST API (DESIGN.md, "Control-plane API"): rooms, participants, health, metrics and the
//! OpenAPI document generated from these handlers. Admin calls need `Authorization: Bearer <api key>`;
//! every failure is the JSON error shape from [`crate::error`].

use std::fmt::Write as _;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Serialize;
use sluice_dataplane::stats::{DropReason, StatsSnapshot};
use sluice_dataplane::Dataplane;
use utoipa::{OpenApi, ToSchema};

use crate::auth::Auth;
use crate::error::{ApiError, ErrorBody, ErrorDetail};
use crate::rooms::{CreateParticipant, CreateRoom, Participant, Role, Room, RoomMode, Rooms};
use crate::webhooks::WebhookEvent;

/// Shared state of the HTTP handlers.
pub struct AppState {
    /// Rooms and participants.
    pub rooms: Mutex<Rooms>,
    /// API key and token keys.
    pub auth: Auth,
    /// Base of `signal_url`, e.g. `ws://127.0.0.1:7880`.
    pub public_ws_base: String,
    /// The dataplane, for its counters.
    pub dataplane: Option<Arc<Dataplane>>,
    /// Connected signaling sockets.
    pub hub: Arc<crate::signal::Hub>,
    /// Media sessions (None: signaling only, no dataplane).
    pub media: Option<Arc<crate::media::Media>>,
    /// Whether `POST /v1/rooms/{room}/join` (the web page's join, no API key) is open.
    pub guest_join: bool,
    /// Where room events go (None: no webhooks configured).
    pub webhooks: Option<Arc<crate::webhooks::Webhooks>>,
}

impl AppState {
    /// A room switched mode (logged by the hub): count and report it.
    pub fn on_mode_switch(&self, sw: &crate::signal::ModeSwitch) {
        self.emit(WebhookEvent::ModeChanged {
            room: sw.room.clone(),
            from: sw.from.name().into(),
            to: sw.to.name().into(),
            members: sw.members,
        });
    }

    /// Mutes or unmutes a member: the dataplane stops (or resumes) forwarding it, and the room is
    /// told (`by_server`: the member too).
    pub fn set_muted(&self, room: &str, participant: &str, muted: bool, by_server: bool) {
        if let Some(m) = &self.media {
            m.set_muted(room, participant, muted);
        }
        self.hub.set_muted(room, participant, muted, by_server);
    }

    /// A member connected to signaling.
    pub fn on_joined(&self, room: &str, who: &crate::signal::PeerInfo) {
        self.emit(WebhookEvent::ParticipantJoined {
            room: room.into(),
            participant: who.id.clone(),
            name: who.name.clone(),
            role: match who.role {
                Role::Speaker => "speaker".into(),
                Role::Listener => "listener".into(),
            },
        });
    }

    /// A member left the room (`reason`: left, kicked, disconnected, ...).
    pub fn on_left(&self, room: &str, participant: &str, reason: &str) {
        self.emit(WebhookEvent::ParticipantLeft {
            room: room.into(),
            participant: participant.into(),
            reason: reason.into(),
        });
    }

    /// A room was created.
    pub fn on_room_started(&self, room: &str) {
        self.emit(WebhookEvent::RoomStarted { room: room.into() });
    }

    fn emit(&self, event: WebhookEvent) {
        if let Some(w) = &self.webhooks {
            w.emit(event);
        }
    }

    /// Closes a room: its members get `bye`, their transports go, and it is reported.
    pub fn close_room(&self, room: &str, why: &str) -> Result<Room, ApiError> {
        let closed = self.rooms().delete(room)?;
        self.hub.close_room(room);
        if let Some(m) = &self.media {
            m.remove_room(room);
        }
        tracing::info!(
            room,
            members = closed.participants.len(),
            why,
            "room closed"
        );
        self.emit(WebhookEvent::RoomFinished { room: room.into() });
        Ok(closed)
    }

    /// A room with its live state (mode, last switch, connected members) filled in.
    fn with_live(&self, mut room: Room) -> Room {
        if let Some(live) = self.hub.live(&room.name) {
            room.current_mode = live.mode;
            room.last_switch_at = live.last_switch;
            room.connected = live.connected;
        }
        room
    }

    /// One pass of room housekeeping: `auto` rooms whose cooldown ran out go back to P2P, and rooms
    /// empty for longer than their `empty_timeout_s` close. `empty_since` is the caller's memory of
    /// when each room was last seen empty.
    pub fn housekeeping(
        &self,
        now: std::time::Instant,
        empty_since: &mut std::collections::HashMap<String, std::time::Instant>,
    ) {
        for sw in self.hub.poll_modes(now) {
            self.on_mode_switch(&sw);
        }
        if let Some(media) = &self.media {
            for (room, at) in self.hub.take_back_to_p2p(now, P2P_SFU_GRACE) {
                let n = media.remove_sessions_before(&room, at);
                if n > 0 {
                    tracing::info!(%room, transports = n, "room back on p2p: leftover SFU transports removed");
                }
            }
        }
        let rooms = self.rooms().empty_timeouts();
        empty_since.retain(|name, _| rooms.iter().any(|(n, _)| n == name));
        for (name, timeout) in rooms {
            if self.hub.connected(&name) > 0 || timeout == 0 {
                empty_since.remove(&name);
                continue;
            }
            let since = *empty_since.entry(name.clone()).or_insert(now);
            if now.duration_since(since) >= std::time::Duration::from_secs(timeout.into()) {
                empty_since.remove(&name);
                if self.close_room(&name, "empty").is_ok() {
                    tracing::info!(room = %name, timeout_s = timeout, "empty room closed");
                }
            }
        }
    }

    /// The rooms, locked.
    pub fn rooms(&self) -> MutexGuard<'_, Rooms> {
        // A panic while holding the lock cannot leave `Rooms` half-updated in a way that matters more
        // than refusing every later call; keep serving.
        self.rooms.lock().unwrap_or_else(|e| e.into_inner())
    }
}

type Shared = State<Arc<AppState>>;

/// How long after a room went back to P2P its members' SFU transports from before the switch are
/// removed: clients close them once the mesh carries audio (the web page within 5 s), so this is only cleanup.
pub const P2P_SFU_GRACE: std::time::Duration = std::time::Duration::from_secs(12);

fn body<T>(payload: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    payload.map(|Json(v)| v).map_err(ApiError::from)
}

/// `GET /v1/rooms` response.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoomList {
    /// Every room.
    pub rooms: Vec<Room>,
}

/// `POST /v1/rooms/{room}/participants` response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ParticipantGrant {
    /// Participant id.
    pub id: String,
    /// Signed participant token (JWT) for the signaling socket.
    pub token: String,
    /// Complete WebSocket URL, token included.
    pub signal_url: String,
    /// The participant.
    pub participant: Participant,
}

/// Creates a room.
#[utoipa::path(post, path = "/v1/rooms", request_body = CreateRoom,
    responses((status = 201, body = Room), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn create_room(
    State(s): Shared,
    headers: HeaderMap,
    payload: Result<Json<CreateRoom>, JsonRejection>,
) -> Result<(StatusCode, Json<Room>), ApiError> {
    s.auth.check_admin(&headers)?;
    let room = s.rooms().create(body(payload)?)?;
    tracing::info!(room = %room.name, mode = ?room.mode, "room created");
    s.on_room_started(&room.name);
    Ok((StatusCode::CREATED, Json(room)))
}

/// Lists rooms.
#[utoipa::path(get, path = "/v1/rooms", responses((status = 200, body = RoomList), (status = 401, body = ErrorBody)), security(("api_key" = [])))]
pub async fn list_rooms(State(s): Shared, headers: HeaderMap) -> Result<Json<RoomList>, ApiError> {
    s.auth.check_admin(&headers)?;
    let rooms = s.rooms().list();
    Ok(Json(RoomList {
        rooms: rooms.into_iter().map(|r| s.with_live(r)).collect(),
    }))
}

/// One room with its members.
#[utoipa::path(get, path = "/v1/rooms/{room}", params(("room" = String, Path, description = "Room name")),
    responses((status = 200, body = Room), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)), security(("api_key" = [])))]
pub async fn get_room(
    State(s): Shared,
    headers: HeaderMap,
    Path(room): Path<String>,
) -> Result<Json<Room>, ApiError> {
    s.auth.check_admin(&headers)?;
    let room = s.rooms().get(&room)?.clone();
    Ok(Json(s.with_live(room)))
}

/// Closes a room.
#[utoipa::path(delete, path = "/v1/rooms/{room}", params(("room" = String, Path, description = "Room name")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)), security(("api_key" = [])))]
pub async fn delete_room(
    State(s): Shared,
    headers: HeaderMap,
    Path(room): Path<String>,
) -> Result<StatusCode, ApiError> {
    s.auth.check_admin(&headers)?;
    s.close_room(&room, "deleted")?;
    Ok(StatusCode::NO_CONTENT)
}

/// Adds a participant and issues its token.
#[utoipa::path(post, path = "/v1/rooms/{room}/participants", request_body = CreateParticipant,
    params(("room" = String, Path, description = "Room name")),
    responses((status = 201, body = ParticipantGrant), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)), security(("api_key" = [])))]
pub async fn create_participant(
    State(s): Shared,
    headers: HeaderMap,
    Path(room): Path<String>,
    payload: Result<Json<CreateParticipant>, JsonRejection>,
) -> Result<(StatusCode, Json<ParticipantGrant>), ApiError> {
    s.auth.check_admin(&headers)?;
    let grant = issue_grant(&s, &room, body(payload)?)?;
    Ok((StatusCode::CREATED, Json(grant)))
}

/// Adds a participant to `room` and signs its token.
fn issue_grant(
    s: &AppState,
    room: &str,
    req: CreateParticipant,
) -> Result<ParticipantGrant, ApiError> {
    let p = s.rooms().add_participant(room, req)?;
    let token = s.auth.issue(room, &p.id, &p.name, p.role)?;
    let signal_url = format!("{}/v1/signal?token={token}", s.public_ws_base);
    tracing::info!(%room, participant = %p.id, role = ?p.role, "participant created");
    Ok(ParticipantGrant {
        id: p.id.clone(),
        token,
        signal_url,
        participant: p,
    })
}

/// `POST /v1/rooms/{room}/join` body.
#[derive(Debug, Clone, serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GuestJoin {
    /// Display name, 1 to 64 characters, unique in the room.
    pub name: String,
}

/// Joins an existing room as a speaker without the API key: what the web page at `/` calls. Open
/// unless the server runs with `guest_join = false` (then applications mint tokens with
/// `POST /v1/rooms/{room}/participants` and hand them to their users).
#[utoipa::path(post, path = "/v1/rooms/{room}/join", request_body = GuestJoin,
    params(("room" = String, Path, description = "Room name")),
    responses((status = 201, body = ParticipantGrant), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn guest_join(
    State(s): Shared,
    Path(room): Path<String>,
    payload: Result<Json<GuestJoin>, JsonRejection>,
) -> Result<(StatusCode, Json<ParticipantGrant>), ApiError> {
    if !s.guest_join {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "guest_join_disabled",
            "this server does not let guests join; ask the application for a participant token",
        ));
    }
    let GuestJoin { name } = body(payload)?;
    let grant = issue_grant(&s, &room, CreateParticipant { name, role: None })?;
    Ok((StatusCode::CREATED, Json(grant)))
}

/// SRTP keying of a plain transport: a profile and the master key followed by the master salt,
/// base64 (standard alphabet), as SDES (RFC 4568) carries them.
#[derive(Debug, Clone, Serialize, serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlainSrtp {
    /// `aes128gcm`, `aes256gcm`, `aescm` (or the RFC names).
    pub profile: String,
    /// base64(master key || master salt).
    pub key: String,
}

/// `POST /v1/rooms/{room}/plain` body.
#[derive(Debug, Clone, serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePlain {
    /// Participant name, unique in the room.
    pub name: String,
    /// `speaker` (default) or `listener`.
    #[serde(default)]
    pub role: Option<Role>,
    /// The keys the tool sends with; omitted: plain RTP (trusted links only).
    #[serde(default)]
    pub srtp: Option<PlainSrtp>,
    /// Where sluice sends to ("ip:port"); omitted: latched from the first authenticated packet with `ssrc`.
    #[serde(default)]
    pub remote: Option<String>,
    /// The SSRC the tool sends with (required for a speaker, and to latch without `remote`).
    #[serde(default)]
    pub ssrc: Option<u32>,
    /// Receive slots (default: the room's `last_n`; 0 for a pure sender).
    #[serde(default)]
    pub slots: Option<u32>,
}

/// `POST /v1/rooms/{room}/plain` response.
#[derive(Debug, Serialize, ToSchema)]
pub struct PlainGrant {
    /// Participant id (kick it to remove the transport).
    pub id: String,
    /// The address to send RTP/SRTP to.
    pub server: String,
    /// The keys sluice sends with (same profile), when SRTP is on.
    pub srtp: Option<PlainSrtp>,
    /// SSRCs of the receive slots, in slot order.
    pub slot_ssrcs: Vec<u32>,
}

fn plain_keys(
    srtp: &PlainSrtp,
) -> Result<
    (
        sluice_dataplane::srtp::SrtpKeys,
        PlainSrtp,
        sluice_dataplane::srtp::SrtpKeys,
    ),
    ApiError,
> {
    use base64::Engine;
    use sluice_dataplane::srtp::{SrtpKeys, SrtpProfile};
    let profile: SrtpProfile = srtp.profile.parse().map_err(|_| {
        ApiError::bad_request(
            "invalid_field",
            format!("unknown SRTP profile {:?}", srtp.profile),
        )
    })?;
    let b64 = base64::engine::general_purpose::STANDARD;
    let raw = b64.decode(srtp.key.trim()).map_err(|e| {
        ApiError::bad_request("invalid_field", format!("srtp.key is not base64: {e}"))
    })?;
    let (kl, sl) = (profile.master_key_len(), profile.master_salt_len());
    if raw.len() != kl + sl {
        return Err(ApiError::bad_request(
            "invalid_field",
            format!(
                "srtp.key must be {} bytes (key {kl} + salt {sl}) for {}, got {}",
                kl + sl,
                profile.name(),
                raw.len()
            ),
        ));
    }
    let inbound = SrtpKeys::new(profile, &raw[..kl], &raw[kl..])
        .map_err(|e| ApiError::bad_request("invalid_field", e.to_string()))?;
    let mut ours = vec![0u8; kl + sl];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut ours);
    let outbound = SrtpKeys::new(profile, &ours[..kl], &ours[kl..])
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let grant = PlainSrtp {
        profile: profile.short_name().into(),
        key: b64.encode(&ours),
    };
    Ok((inbound, grant, outbound))
}

/// Adds a plain (non-WebRTC) RTP/SRTP transport: tools, recorders, load generators, relays.
#[utoipa::path(post, path = "/v1/rooms/{room}/plain", request_body = CreatePlain,
    params(("room" = String, Path, description = "Room name")),
    responses((status = 201, body = PlainGrant), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 503, body = ErrorBody)), security(("api_key" = [])))]
pub async fn create_plain(
    State(s): Shared,
    headers: HeaderMap,
    Path(room): Path<String>,
    payload: Result<Json<CreatePlain>, JsonRejection>,
) -> Result<(StatusCode, Json<PlainGrant>), ApiError> {
    s.auth.check_admin(&headers)?;
    let req = body(payload)?;
    let media = s.media.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_dataplane",
            "this server has no dataplane",
        )
    })?;
    let remote = req
        .remote
        .as_deref()
        .map(|r| r.parse::<std::net::SocketAddr>())
        .transpose()
        .map_err(|_| ApiError::bad_request("invalid_field", "remote must be \"ip:port\""))?;
    let role = req.role.unwrap_or_default();
    if req.ssrc.is_none() && (role == Role::Speaker || remote.is_none()) {
        return Err(ApiError::bad_request(
            "invalid_field",
            "ssrc is required for a speaker, and to latch the address when remote is omitted",
        ));
    }
    let keys = req.srtp.as_ref().map(plain_keys).transpose()?;
    let last_n = s.rooms().get(&room)?.last_n;
    let slots = req.slots.unwrap_or(last_n);
    if slots > 15 {
        return Err(ApiError::bad_request(
            "invalid_field",
            "slots must be 0..=15",
        ));
    }
    let p = s.rooms().add_participant(
        &room,
        CreateParticipant {
            name: req.name,
            role: Some(role),
        },
    )?;
    let (transport_keys, grant) = match keys {
        Some((inbound, grant, outbound)) => (
            Some(sluice_dataplane::topology::TransportKeys { inbound, outbound }),
            Some(grant),
        ),
        None => (None, None),
    };
    let added = tokio::task::spawn_blocking({
        let (media, room, id) = (media.clone(), room.clone(), p.id.clone());
        move || {
            media.add_plain(
                &room,
                &id,
                transport_keys,
                remote,
                req.ssrc,
                role == Role::Speaker,
                slots as usize,
            )
        }
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?;
    match added {
        Ok((server, slot_ssrcs)) => Ok((
            StatusCode::CREATED,
            Json(PlainGrant {
                id: p.id,
                server: server.to_string(),
                srtp: grant,
                slot_ssrcs,
            }),
        )),
        Err(e) => {
            let _ = s.rooms().remove_participant(&room, &p.id);
            Err(ApiError::internal(e.to_string()))
        }
    }
}

/// Removes (kicks) a participant.
#[utoipa::path(delete, path = "/v1/rooms/{room}/participants/{id}",
    params(("room" = String, Path, description = "Room name"), ("id" = String, Path, description = "Participant id")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)), security(("api_key" = [])))]
pub async fn delete_participant(
    State(s): Shared,
    headers: HeaderMap,
    Path((room, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    s.auth.check_admin(&headers)?;
    s.rooms().remove_participant(&room, &id)?;
    s.hub.kick(&room, &id);
    if let Some(m) = &s.media {
        m.remove_participant(&room, &id);
    }
    tracing::info!(%room, participant = %id, "participant removed");
    s.on_left(&room, &id, "kicked");
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/rooms/{room}/participants/{id}/mute` body.
#[derive(Debug, Clone, serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MuteRequest {
    /// Muted or not.
    pub muted: bool,
}

/// Server-side mute: the SFU stops forwarding the participant's audio (its packets become `muted`
/// drops and its slots go to others), and the whole room, the participant included, gets
/// `peer_muted` (in a P2P room the clients are asked to stop sending).
#[utoipa::path(post, path = "/v1/rooms/{room}/participants/{id}/mute", request_body = MuteRequest,
    params(("room" = String, Path, description = "Room name"), ("id" = String, Path, description = "Participant id")),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn mute_participant(
    State(s): Shared,
    headers: HeaderMap,
    Path((room, id)): Path<(String, String)>,
    payload: Result<Json<MuteRequest>, JsonRejection>,
) -> Result<StatusCode, ApiError> {
    s.auth.check_admin(&headers)?;
    let MuteRequest { muted } = body(payload)?;
    {
        let rooms = s.rooms();
        let r = rooms.get(&room)?;
        if !r.participants.iter().any(|p| p.id == id) {
            return Err(ApiError::not_found(
                "unknown_participant",
                format!("no participant {id:?} in room {room:?}"),
            ));
        }
    }
    s.set_muted(&room, &id, muted, true);
    tracing::info!(%room, participant = %id, muted, "server mute");
    Ok(StatusCode::NO_CONTENT)
}

/// Liveness.
#[utoipa::path(get, path = "/healthz", responses((status = 200, description = "the server is up")))]
pub async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

/// A per-worker counter: metric name, help text, and how to read it from a snapshot.
type Counter = (&'static str, &'static str, fn(&StatsSnapshot) -> u64);

/// Prometheus text format: per-worker packets, bytes and drops by reason; rooms; participants.
#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain")))]
pub async fn metrics(State(s): Shared) -> Response {
    let mut out = String::new();
    let (rooms, participants) = {
        let r = s.rooms();
        let list = r.list();
        (
            list.len(),
            list.iter().map(|r| r.participants.len()).sum::<usize>(),
        )
    };
    let _ = writeln!(out, "# HELP sluice_rooms Rooms on this server.\n# TYPE sluice_rooms gauge\nsluice_rooms {rooms}");
    let _ = writeln!(
        out,
        "# HELP sluice_participants Participants on this server.\n# TYPE sluice_participants gauge\nsluice_participants {participants}"
    );
    let (to_sfu, to_p2p) = s.hub.switches();
    let _ = writeln!(
        out,
        "# HELP sluice_mode_switches_total Rooms switching media mode.\n# TYPE sluice_mode_switches_total counter\nsluice_mode_switches_total{{to=\"sfu\"}} {to_sfu}\nsluice_mode_switches_total{{to=\"p2p\"}} {to_p2p}"
    );
    let _ = writeln!(
        out,
        "# HELP sluice_joins_total Signaling connections accepted (members joining a room).\n# TYPE sluice_joins_total counter\nsluice_joins_total {}",
        s.hub.joins()
    );
    if let Some(w) = &s.webhooks {
        let _ = writeln!(
            out,
            "# HELP sluice_webhooks_total Webhook events per URL by outcome.\n# TYPE sluice_webhooks_total counter\nsluice_webhooks_total{{outcome=\"delivered\"}} {}\nsluice_webhooks_total{{outcome=\"failed\"}} {}\nsluice_webhooks_total{{outcome=\"dropped\"}} {}",
            w.delivered(),
            w.failed(),
            w.dropped()
        );
    }
    if let Some(m) = &s.media {
        let _ = writeln!(
            out,
            "# HELP sluice_media_sessions Participants with a media transport.\n# TYPE sluice_media_sessions gauge\nsluice_media_sessions {}",
            m.session_count()
        );
        let _ = writeln!(
            out,
            "# HELP sluice_speaking Participants speaking now.\n# TYPE sluice_speaking gauge\nsluice_speaking {}",
            m.speaking_count()
        );
        let _ = writeln!(
            out,
            "# HELP sluice_dtls_established_total DTLS-SRTP handshakes completed.\n# TYPE sluice_dtls_established_total counter\nsluice_dtls_established_total {}",
            m.dtls_established()
        );
        let _ = writeln!(
            out,
            "# HELP sluice_dtls_failures_total DTLS handshakes that failed (wrong fingerprint, no common profile, garbage).\n# TYPE sluice_dtls_failures_total counter\nsluice_dtls_failures_total {}",
            m.dtls_failures()
        );
    }
    if let Some(dp) = &s.dataplane {
        let counters: [Counter; 6] = [
            (
                "sluice_packets_in_total",
                "Datagrams received by a worker.",
                |x| x.packets_in,
            ),
            (
                "sluice_bytes_in_total",
                "Bytes received by a worker.",
                |x| x.bytes_in,
            ),
            (
                "sluice_packets_out_total",
                "Datagrams sent by a worker.",
                |x| x.packets_out,
            ),
            ("sluice_bytes_out_total", "Bytes sent by a worker.", |x| {
                x.bytes_out
            }),
            (
                "sluice_stun_answered_total",
                "ICE connectivity checks answered by a worker.",
                |x| x.stun_answered,
            ),
            (
                "sluice_upcalls_dropped_total",
                "Worker reports lost because the control plane fell behind.",
                |x| x.upcalls_dropped,
            ),
        ];
        let snaps: Vec<_> = (0..dp.workers()).filter_map(|i| dp.stats(i)).collect();
        for (name, help, get) in counters {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (i, snap) in snaps.iter().enumerate() {
                let _ = writeln!(out, "{name}{{worker=\"{i}\"}} {}", get(snap));
            }
        }
        let _ = writeln!(
            out,
            "# HELP sluice_drops_total Datagrams (or copies) not forwarded, by reason.\n# TYPE sluice_drops_total counter"
        );
        for (i, snap) in snaps.iter().enumerate() {
            for r in DropReason::ALL {
                let _ = writeln!(
                    out,
                    "sluice_drops_total{{worker=\"{i}\",reason=\"{}\"}} {}",
                    r.name(),
                    snap.drops(r)
                );
            }
        }
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        out,
    )
        .into_response()
}

/// One worker's counters in `GET /v1/stats`.
#[derive(Debug, Serialize, ToSchema)]
pub struct WorkerCounters {
    /// Worker index.
    pub worker: usize,
    /// Datagrams received.
    pub packets_in: u64,
    /// Datagrams sent.
    pub packets_out: u64,
    /// Bytes received.
    pub bytes_in: u64,
    /// Bytes sent.
    pub bytes_out: u64,
    /// Datagrams (or copies) dropped, all reasons.
    pub drops: u64,
}

/// `GET /v1/stats` response: counters since start; rates are differences over time.
#[derive(Debug, Serialize, ToSchema)]
pub struct ServerStats {
    /// Milliseconds since the Unix epoch when the counters were read.
    pub at_ms: u64,
    /// Per dataplane worker.
    pub workers: Vec<WorkerCounters>,
    /// Members connected to signaling, all rooms.
    pub connected: u64,
    /// Participants with an SFU media transport.
    pub media_sessions: u64,
}

/// The dataplane's counters per worker (what the admin page turns into packets per second).
#[utoipa::path(get, path = "/v1/stats", responses((status = 200, body = ServerStats), (status = 401, body = ErrorBody)), security(("api_key" = [])))]
pub async fn stats(State(s): Shared, headers: HeaderMap) -> Result<Json<ServerStats>, ApiError> {
    s.auth.check_admin(&headers)?;
    let workers = s.dataplane.as_ref().map_or_else(Vec::new, |dp| {
        (0..dp.workers())
            .filter_map(|i| {
                dp.stats(i).map(|x| WorkerCounters {
                    worker: i,
                    packets_in: x.packets_in,
                    packets_out: x.packets_out,
                    bytes_in: x.bytes_in,
                    bytes_out: x.bytes_out,
                    drops: x.total_drops(),
                })
            })
            .collect()
    });
    Ok(Json(ServerStats {
        at_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
        workers,
        connected: s.hub.connected_total() as u64,
        media_sessions: s.media.as_ref().map_or(0, |m| m.session_count() as u64),
    }))
}

/// The OpenAPI document of this API.
#[derive(OpenApi)]
#[openapi(
    info(title = "sluice", description = "Control-plane API of the sluice SFU"),
    paths(create_room, list_rooms, get_room, delete_room, create_participant, guest_join, create_plain, delete_participant, mute_participant, stats, healthz, metrics),
    components(schemas(Room, RoomList, CreateRoom, CreateParticipant, GuestJoin, MuteRequest, ServerStats, WorkerCounters, crate::mode::MediaMode, Participant, ParticipantGrant, CreatePlain, PlainSrtp, PlainGrant, RoomMode, Role, ErrorBody, ErrorDetail)),
    modifiers(&ApiKeyScheme)
)]
pub struct ApiDoc;

struct ApiKeyScheme;

impl utoipa::Modify for ApiKeyScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        if let Some(c) = openapi.components.as_mut() {
            c.add_security_scheme(
                "api_key",
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
        }
    }
}

async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

async fn not_found() -> ApiError {
    ApiError::not_found("not_found", "no such endpoint; see GET /v1/openapi.json")
}

/// The router with every endpoint.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/rooms", post(create_room).get(list_rooms))
        .route("/v1/rooms/{room}", get(get_room).delete(delete_room))
        .route("/", get(crate::web::index))
        .route("/admin", get(crate::web::admin))
        .route("/v1/stats", get(stats))
        .route("/v1/rooms/{room}/participants", post(create_participant))
        .route("/v1/rooms/{room}/join", post(guest_join))
        .route("/v1/rooms/{room}/plain", post(create_plain))
        .route(
            "/v1/rooms/{room}/participants/{id}",
            delete(delete_participant),
        )
        .route(
            "/v1/rooms/{room}/participants/{id}/mute",
            post(mute_participant),
        )
        .route("/v1/signal", get(crate::signal::signal))
        .route("/v1/openapi.json", get(openapi_json))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this endpoint does not take that method",
            )
        })
        .with_state(state)
}
