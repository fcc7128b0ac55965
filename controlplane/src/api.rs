//! The REST handlers for rooms and participants (docs/architecture.md, "Control-plane API"):
//! create, list, show and close rooms; mint participants (with the API key, or as guests); plain
//! RTP/SRTP transports; kicks and server mutes. Admin calls need `Authorization: Bearer <api key>`;
//! every failure is the JSON error shape from [`crate::error`]. The routes and the OpenAPI document
//! are in [`crate::router`].

use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use base64::Engine;
use rand::RngCore;
use serde::Serialize;
use sluice_dataplane::srtp::{SrtpKeys, SrtpProfile};
use sluice_dataplane::topology::TransportKeys;
use utoipa::ToSchema;

use sluice_cluster::RoomAction;

use crate::access::ClientKey;
use crate::error::{ApiError, ErrorBody};
use crate::guard::{Admin, ClientIp};
use crate::media::MediaError;
use crate::rooms::{CreateParticipant, CreateRoom, Participant, Role, Room};
use crate::state::AppState;

type Shared = State<Arc<AppState>>;

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
    _admin: Admin,
    payload: Result<Json<CreateRoom>, JsonRejection>,
) -> Result<(StatusCode, Json<Room>), ApiError> {
    let room = s.create_room(body(payload)?).await?;
    tracing::info!(room = %room.name, mode = ?room.mode, "room created");
    s.on_room_started(&room.name);
    Ok((StatusCode::CREATED, Json(room)))
}

/// Lists rooms.
#[utoipa::path(get, path = "/v1/rooms", responses((status = 200, body = RoomList), (status = 401, body = ErrorBody)), security(("api_key" = [])))]
pub async fn list_rooms(State(s): Shared, _admin: Admin) -> Result<Json<RoomList>, ApiError> {
    Ok(Json(RoomList {
        rooms: s.list_rooms().await?,
    }))
}

/// One room with its members.
#[utoipa::path(get, path = "/v1/rooms/{room}", params(("room" = String, Path, description = "Room name")),
    responses((status = 200, body = Room), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)), security(("api_key" = [])))]
pub async fn get_room(
    State(s): Shared,
    _admin: Admin,
    Path(room): Path<String>,
) -> Result<Json<Room>, ApiError> {
    Ok(Json(s.room(&room).await?))
}

/// Closes a room.
#[utoipa::path(delete, path = "/v1/rooms/{room}", params(("room" = String, Path, description = "Room name")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)), security(("api_key" = [])))]
pub async fn delete_room(
    State(s): Shared,
    _admin: Admin,
    Path(room): Path<String>,
) -> Result<StatusCode, ApiError> {
    s.room_action(RoomAction::Delete { room }, false).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Adds a participant and issues its token.
#[utoipa::path(post, path = "/v1/rooms/{room}/participants", request_body = CreateParticipant,
    params(("room" = String, Path, description = "Room name")),
    responses((status = 201, body = ParticipantGrant), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)), security(("api_key" = [])))]
pub async fn create_participant(
    State(s): Shared,
    _admin: Admin,
    headers: HeaderMap,
    Path(room): Path<String>,
    payload: Result<Json<CreateParticipant>, JsonRejection>,
) -> Result<(StatusCode, Json<ParticipantGrant>), ApiError> {
    let mut req = body(payload)?;
    req.region = req.region.or_else(|| s.region_from(&headers));
    let grant = issue_grant(&s, &room, req, None).await?;
    Ok((StatusCode::CREATED, Json(grant)))
}

/// Adds a participant to `room` (a guest's from `origin`) and signs its token; the participant has
/// its join grace to connect to signaling. In a cluster the room is placed at its first join (for
/// a client in `region`), and `signal_url` names the node that serves it.
async fn issue_grant(
    s: &AppState,
    room: &str,
    req: CreateParticipant,
    origin: Option<ClientKey>,
) -> Result<ParticipantGrant, ApiError> {
    let now = SystemTime::now();
    let region = req.region.clone();
    let (p, base) = s.add_participant(room, req, region.as_deref()).await?;
    s.on_minted(room, &p, origin);
    let token = s.auth.issue(room, &p.id, &p.name, p.role, now)?;
    let signal_url = format!("{base}/v1/signal?token={token}");
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
    /// The room's join code, where it has one.
    #[serde(default)]
    pub join_code: Option<String>,
    /// In a cluster: the client's region, where a room not yet placed goes (default: the
    /// answering node's).
    #[serde(default)]
    pub region: Option<String>,
}

/// Joins an existing room as a speaker without the API key: what the web page at `/` calls. Only
/// where the server takes guests (`--guest-join`; on by default only on a loopback listener) and
/// the room does (`guest_join`), with the room's `join_code` if it has one. A room that takes no
/// guests, or a wrong code, is answered exactly as a room that does not exist (404 `unknown_room`).
/// Attempts are rate-limited per client IP (429 `rate_limited` with `Retry-After`); a participant
/// kicked from the room cannot come back as a guest for `ban_s` (403 `banned`).
#[utoipa::path(post, path = "/v1/rooms/{room}/join", request_body = GuestJoin,
    params(("room" = String, Path, description = "Room name")),
    responses((status = 201, body = ParticipantGrant), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn guest_join(
    State(s): Shared,
    client: ClientIp,
    headers: HeaderMap,
    Path(room): Path<String>,
    payload: Result<Json<GuestJoin>, JsonRejection>,
) -> Result<(StatusCode, Json<ParticipantGrant>), ApiError> {
    let GuestJoin {
        name,
        join_code,
        region,
    } = body(payload)?;
    let guests = s.room_guests(&room).await?;
    s.check_guest(client.key(), &room, guests, &name, join_code.as_deref())?;
    let req = CreateParticipant {
        name,
        role: None,
        region: region.or_else(|| s.region_from(&headers)),
    };
    let grant = issue_grant(&s, &room, req, Some(client.key())).await?;
    Ok((StatusCode::CREATED, Json(grant)))
}

/// SRTP keying of a plain transport: a profile and the master key followed by the master salt,
/// base64 (standard alphabet), as SDES (RFC 4568) carries them.
#[derive(Debug, Clone, Serialize, serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlainSrtp {
    /// `aes128gcm`, `aes256gcm`, `aescm` (SHA1_80), `aescm32` (SHA1_32: ffmpeg, libsrtp tools), or the
    /// RFC names.
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
    /// Where sluice sends to ("ip:port"); omitted: latched from the first authenticated packet with
    /// `ssrc` (SRTP only: plain RTP must name it, since unauthenticated packets never latch).
    #[serde(default)]
    pub remote: Option<String>,
    /// Where the tool sends RTCP from ("ip:port") when it does not multiplex RTCP with RTP;
    /// omitted: RTCP from the next port after the RTP address is recognised (and latched) once it
    /// authenticates, as ffmpeg sends it.
    #[serde(default)]
    pub rtcp_remote: Option<String>,
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
    rng: &mut impl RngCore,
) -> Result<(SrtpKeys, PlainSrtp, SrtpKeys), ApiError> {
    let profile: SrtpProfile = srtp.profile.parse().map_err(|_| {
        ApiError::bad_request(
            "invalid_field",
            format!("unknown SRTP profile {:?}", srtp.profile),
        )
    })?;
    let b64 = base64::engine::general_purpose::STANDARD;
    let raw = zeroize::Zeroizing::new(b64.decode(srtp.key.trim()).map_err(|e| {
        ApiError::bad_request("invalid_field", format!("srtp.key is not base64: {e}"))
    })?);
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
    let mut ours = zeroize::Zeroizing::new(vec![0u8; kl + sl]);
    rng.fill_bytes(&mut ours);
    let outbound = SrtpKeys::new(profile, &ours[..kl], &ours[kl..])
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let grant = PlainSrtp {
        profile: profile.short_name().into(),
        key: b64.encode(&*ours),
    };
    Ok((inbound, grant, outbound))
}

/// An optional `"ip:port"` field of a request.
fn socket_addr(field: &str, value: Option<&str>) -> Result<Option<std::net::SocketAddr>, ApiError> {
    value
        .map(str::parse)
        .transpose()
        .map_err(|_| ApiError::bad_request("invalid_field", format!("{field} must be \"ip:port\"")))
}

/// Adds a plain (non-WebRTC) RTP/SRTP transport: tools, recorders, load generators, relays.
#[utoipa::path(post, path = "/v1/rooms/{room}/plain", request_body = CreatePlain,
    params(("room" = String, Path, description = "Room name")),
    responses((status = 201, body = PlainGrant), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 503, body = ErrorBody)), security(("api_key" = [])))]
pub async fn create_plain(
    State(s): Shared,
    _admin: Admin,
    Path(room): Path<String>,
    payload: Result<Json<CreatePlain>, JsonRejection>,
) -> Result<(StatusCode, Json<PlainGrant>), ApiError> {
    let req = body(payload)?;
    let media = s.media.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_dataplane",
            "this server has no dataplane",
        )
    })?;
    let remote = socket_addr("remote", req.remote.as_deref())?;
    let rtcp_remote = socket_addr("rtcp_remote", req.rtcp_remote.as_deref())?;
    let role = req.role.unwrap_or_default();
    if req.ssrc.is_none() && (role == Role::Speaker || remote.is_none()) {
        return Err(ApiError::bad_request(
            "invalid_field",
            "ssrc is required for a speaker, and to latch the address when remote is omitted",
        ));
    }
    if req.srtp.is_none() && remote.is_none() {
        // Unauthenticated RTP cannot latch: anyone who guessed the SSRC would take the transport.
        return Err(ApiError::bad_request(
            "invalid_field",
            "a plain transport without srtp must name its remote: unauthenticated RTP never latches",
        ));
    }
    let keys = req
        .srtp
        .as_ref()
        .map(|k| plain_keys(k, &mut rand::rng()))
        .transpose()?;
    if req.slots.is_some_and(|n| n > 15) {
        return Err(ApiError::bad_request(
            "invalid_field",
            "slots must be 0..=15",
        ));
    }
    let p = s
        .add_member_here(
            &room,
            CreateParticipant {
                name: req.name,
                role: Some(role),
                region: None,
            },
        )
        .await?;
    let slots = match req.slots {
        Some(n) => n,
        None => s.rooms().get(&room).map(|r| r.last_n).unwrap_or(0),
    };
    let (transport_keys, grant) = match keys {
        Some((inbound, grant, outbound)) => {
            (Some(TransportKeys { inbound, outbound }), Some(grant))
        }
        None => (None, None),
    };
    let added = tokio::task::spawn_blocking({
        let (media, room, id) = (media.clone(), room.clone(), p.id.clone());
        move || {
            media.add_plain(
                &room,
                &id,
                transport_keys,
                (remote, rtcp_remote),
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
            let _ = s.remove_participant(&room, &p.id).await;
            s.on_gone(&room, &p.id);
            Err(match e {
                MediaError::SsrcInUse(_) => ApiError::conflict("ssrc_in_use", e.to_string()),
                e => ApiError::internal(e.to_string()),
            })
        }
    }
}

/// Removes (kicks) a participant.
#[utoipa::path(delete, path = "/v1/rooms/{room}/participants/{id}",
    params(("room" = String, Path, description = "Room name"), ("id" = String, Path, description = "Participant id")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)), security(("api_key" = [])))]
pub async fn delete_participant(
    State(s): Shared,
    _admin: Admin,
    Path((room, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    s.room_action(
        RoomAction::Kick {
            room,
            participant: id,
        },
        false,
    )
    .await?;
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
    _admin: Admin,
    Path((room, id)): Path<(String, String)>,
    payload: Result<Json<MuteRequest>, JsonRejection>,
) -> Result<StatusCode, ApiError> {
    let MuteRequest { muted } = body(payload)?;
    s.room_action(
        RoomAction::Mute {
            room,
            participant: id,
            muted,
        },
        false,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
