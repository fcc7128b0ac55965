//! The control plane's shared state: rooms, keys, the signaling hub, media sessions and webhooks,
//! and the operations that touch several of them at once (closing a room, muting, housekeeping).
//! Every front end (REST handlers, the signaling socket, the web pages, metrics) depends on this
//! module; it depends on none of them. Who may come in (guests, seats not sat in, bans, the admin
//! throttle) is decided by [`crate::access`]; this module applies its answers to the rooms.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use sluice_dataplane::Dataplane;

use crate::access::{retry_after_secs, Access, ClientKey, GuestRefusal, RoomGuests};
use crate::auth::Auth;
use crate::clock::Now;
use crate::error::ApiError;
use crate::hub::{Hub, ModeSwitch};
use crate::media::Media;
use crate::messages::PeerInfo;
use crate::rooms::{unknown_room, Participant, Role, Room, Rooms};
use crate::webhooks::{WebhookEvent, Webhooks};

/// How long after a room went back to P2P its members' SFU transports from before the switch are
/// removed: clients close them once the mesh carries audio (the web page within 5 s), so this is only cleanup.
pub const P2P_SFU_GRACE: Duration = Duration::from_secs(12);

/// Shared state of the HTTP handlers.
pub struct AppState {
    /// Rooms and participants.
    pub rooms: Mutex<Rooms>,
    /// API key and token keys.
    pub auth: Auth,
    /// Base of `signal_url`, e.g. `ws://127.0.0.1:7880`, or `wss://voice.example.com` from
    /// `--public-url`.
    pub public_ws_base: String,
    /// Whether `public_ws_base` came from `--public-url` (then the web page uses it too, rather
    /// than the address it was loaded from).
    pub public_url: bool,
    /// Whether `/metrics` needs the API key (`--metrics-auth`).
    pub metrics_auth: bool,
    /// Guest joins, seats not yet sat in, bans, throttles.
    pub access: Mutex<Access>,
    /// The dataplane, for its counters.
    pub dataplane: Option<Arc<Dataplane>>,
    /// Connected signaling sockets.
    pub hub: Arc<Hub>,
    /// Media sessions (None: signaling only, no dataplane).
    pub media: Option<Arc<Media>>,
    /// Where room events go (None: no webhooks configured).
    pub webhooks: Option<Arc<Webhooks>>,
    /// This node: identity, draining, the load it reports.
    pub node: Arc<crate::node::NodeSelf>,
    /// The cluster's store (None: a single node, no `--redis`).
    pub cluster: Option<sluice_cluster::ClusterStore>,
    /// The cluster's rooms: the store's documents and the rooms this node serves (None: a single
    /// node, rooms in [`Self::rooms`] only).
    pub cluster_rooms: Option<Arc<crate::cluster_rooms::ClusterRooms>>,
    /// Control actions this node asked of other nodes, waiting for their answers.
    pub calls: crate::cluster_calls::Calls,
    /// The header a load balancer sets to the client's region (`--region-header`), if any.
    pub region_header: Option<axum::http::HeaderName>,
    /// The cluster's event stream (None: a single node).
    pub events: Option<crate::event_log::EventLog>,
    /// The HTTP server's connection counts (`/metrics`).
    pub http: Arc<crate::limits::HttpCounters>,
    /// The media thread (`Media::start_pump`), which `/healthz` checks is still going round.
    pub media_pump: Option<Arc<crate::media::MediaPump>>,
}

impl AppState {
    /// This node's record at `now`: what it registers in the cluster and `GET /v1/nodes` shows.
    pub fn node_record(&self, now: Instant) -> sluice_cluster::NodeInfo {
        let clamp = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        self.node.record(
            crate::node::Counters {
                members: clamp(self.hub.connected_total()),
                sessions: clamp(self.media.as_ref().map_or(0, |m| m.session_count())),
                rooms: clamp(self.rooms().len()),
                packets_in: self
                    .dataplane
                    .as_ref()
                    .map_or(0, |d| d.total_stats().packets_in),
                cpu: sluice_dataplane::io::cputime::process_cpu_time(),
            },
            now,
        )
    }

    /// A room switched mode (logged by the hub): count and report it.
    pub fn on_mode_switch(&self, sw: &ModeSwitch) {
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

    /// A member connecting to signaling here: whether the server muted it (its record says so,
    /// whichever node muted it); its media then starts muted too.
    pub fn server_mute_on_connect(&self, room: &str, participant: &str) -> bool {
        let muted = self.rooms().is_server_muted(room, participant);
        if muted {
            if let Some(m) = &self.media {
                m.set_muted(room, participant, true);
            }
        }
        muted
    }

    /// A member connected to signaling.
    pub fn on_joined(&self, room: &str, who: &PeerInfo) {
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

    /// A room ended.
    pub fn emit_room_finished(&self, room: &str) {
        self.emit(WebhookEvent::RoomFinished { room: room.into() });
    }

    fn emit(&self, event: WebhookEvent) {
        if let Some(log) = &self.events {
            log.push(&event);
        }
        if let Some(w) = &self.webhooks {
            w.emit(event);
        }
    }

    /// Checks the API key on a request from `client`, behind the throttle on failed attempts: a
    /// client that sent too many wrong keys gets 429 `rate_limited` (with `Retry-After`) whatever it
    /// sends, until its budget refills.
    pub fn check_admin(&self, headers: &HeaderMap, client: ClientKey) -> Result<(), ApiError> {
        let now = Instant::now();
        let throttled = |wait: Duration| {
            ApiError::rate_limited(
                "too many failed authentications from this address: wait before trying again",
                retry_after_secs(wait),
            )
        };
        self.access()
            .admin_allowed(client, now)
            .map_err(throttled)?;
        match self.auth.check_admin(headers) {
            Err(e) if e.code == "bad_api_key" => {
                if let Err(wait) = self.access().admin_failed(client, now) {
                    tracing::warn!(client = ?client, "failed admin authentication: throttled");
                    return Err(throttled(wait));
                }
                Err(e)
            }
            other => other,
        }
    }

    /// May `client` guest-join `room` (whose guest settings are `guests`; `None`: no such room) as `name` with `code`? The refusals that would tell whether a
    /// room exists are all `unknown_room`, word for word the answer for a room that does not.
    pub fn check_guest(
        &self,
        client: ClientKey,
        room: &str,
        guests: Option<RoomGuests>,
        name: &str,
        code: Option<&str>,
    ) -> Result<(), ApiError> {
        let verdict =
            self.access()
                .guest_join(client, room, guests.as_ref(), name, code, Instant::now());
        verdict.map_err(|refusal| match refusal {
            GuestRefusal::RateLimited(wait) => ApiError::rate_limited(
                "too many guest joins from this address: wait before trying again",
                retry_after_secs(wait),
            ),
            GuestRefusal::Disabled => ApiError::new(
                axum::http::StatusCode::FORBIDDEN,
                "guest_join_disabled",
                "this server does not let guests join; ask the application for a participant token",
            ),
            GuestRefusal::NoSuchRoom => unknown_room(room),
            GuestRefusal::Banned(wait) => ApiError::new(
                axum::http::StatusCode::FORBIDDEN,
                "banned",
                "you were removed from this room: you cannot join it again for now",
            )
            .retry_after(retry_after_secs(wait)),
        })
    }

    /// A participant was minted (a guest from `origin`, or by the API): it has the join grace to
    /// connect to signaling.
    pub fn on_minted(&self, room: &str, p: &Participant, origin: Option<ClientKey>) {
        self.access()
            .minted(room, &p.id, &p.name, origin, true, Instant::now());
    }

    /// A member whose media attaches without signaling (a plain transport) was added: its seat
    /// has no join grace, and a copy of the room loaded later gives it none.
    pub fn on_attached(&self, room: &str, p: &Participant) {
        self.access()
            .minted(room, &p.id, &p.name, None, false, Instant::now());
    }

    /// Connects `participant` to signaling from `from`, with `join` (the hub's), only if it is
    /// still in `room`: the check and the join happen under the rooms lock, so a kick or the end of
    /// its join grace, racing the upgrade, either comes first (then `None`: the socket is refused)
    /// or finds it connected (and removes it).
    pub fn admit<T>(
        &self,
        room: &str,
        participant: &str,
        from: ClientKey,
        join: impl FnOnce() -> T,
    ) -> Option<T> {
        let rooms = self.rooms();
        let present = rooms
            .get(room)
            .is_ok_and(|r| r.participants.iter().any(|p| p.id == participant));
        if !present {
            return None;
        }
        let joined = join();
        self.access().sat(room, participant, Some(from));
        drop(rooms);
        Some(joined)
    }

    /// The participant was kicked: it may not guest-join the room again for `ban_s`.
    pub fn on_kicked(&self, room: &str, participant: &str) {
        self.access().kicked(room, participant, Instant::now());
    }

    /// The participant left its room otherwise (disconnected, left, never set up).
    pub fn on_gone(&self, room: &str, participant: &str) {
        self.access().left(room, participant);
    }

    /// Removes the participants whose join grace ran out at `now` without connecting to
    /// signaling: their names are free again and their tokens refused.
    fn expire_seats(&self, now: Instant) {
        let expired = self.access().expired(now);
        for (room, id) in expired {
            let mut rooms = self.rooms();
            if self.hub.is_member(&room, &id) {
                continue;
            }
            if rooms.remove_participant(&room, &id).is_ok() {
                drop(rooms);
                self.forget_in_cluster(&room, &id);
                if let Some(m) = &self.media {
                    m.remove_participant(&room, &id);
                }
                tracing::info!(%room, participant = %id, "participant never connected: removed after its join grace");
            }
        }
    }

    /// Guest joins, seats and throttles, locked (after the rooms, when both are held).
    pub fn access(&self) -> MutexGuard<'_, Access> {
        self.access.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Closes a room: its members get `bye`, their transports go, and it is reported.
    pub fn close_room(&self, room: &str, why: &str) -> Result<Room, ApiError> {
        let closed = self.rooms().delete(room)?;
        self.close_in_cluster(room);
        self.access().room_closed(room);
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

    /// The server is stopping: every connected member gets `bye`, and is reported as having left
    /// (`participant_left`, reason `server_shutdown`), then every room as finished
    /// (`room_finished`). The caller waits for the webhooks ([`Webhooks::flush`]) before it exits.
    pub fn shutdown(&self) {
        for (room, members) in self.hub.close_all() {
            for id in members {
                self.on_left(&room, &id, "server_shutdown");
            }
        }
        let rooms = self.rooms().empty_timeouts();
        for (room, _) in rooms {
            self.emit(WebhookEvent::RoomFinished { room });
        }
    }

    /// A room with its live state (mode, last switch, connected members, each member's link) filled in.
    pub fn with_live(&self, mut room: Room) -> Room {
        if let Some(live) = self.hub.live(&room.name) {
            room.current_mode = live.mode;
            room.last_switch_at = live.last_switch;
            room.connected = live.connected;
        }
        if let Some(media) = &self.media {
            for p in &mut room.participants {
                p.link = media.link_of(&room.name, &p.id);
            }
        }
        room
    }

    /// One pass of room housekeeping: `auto` rooms whose cooldown ran out go back to P2P, and rooms
    /// empty for longer than their `empty_timeout_s` close. `empty_since` is the caller's memory of
    /// when each room was last seen empty.
    pub fn housekeeping(&self, now: Now, empty_since: &mut HashMap<String, Instant>) {
        self.expire_seats(now.instant);
        self.access().sweep(now.instant);
        for sw in self.hub.poll_modes(now) {
            self.on_mode_switch(&sw);
        }
        if let Some(media) = &self.media {
            for (room, at) in self.hub.take_back_to_p2p(now.instant, P2P_SFU_GRACE) {
                let n = media.remove_sessions_before(&room, at);
                if n > 0 {
                    tracing::info!(%room, transports = n, "room back on p2p: leftover SFU transports removed");
                }
            }
        }
        let rooms = self.rooms().empty_timeouts();
        empty_since.retain(|name, _| rooms.iter().any(|(n, _)| n == name));
        for (name, timeout) in rooms {
            if self.hub.connected(&name) > 0 || timeout == 0 || self.cascade_holds(&name) {
                empty_since.remove(&name);
                continue;
            }
            let since = *empty_since.entry(name.clone()).or_insert(now.instant);
            if now.instant.duration_since(since) >= Duration::from_secs(timeout.into()) {
                empty_since.remove(&name);
                if self.owned_elsewhere(&name) {
                    // An edge's copy of a room whose core lives on: only this node lets it go.
                    self.let_go(&name);
                } else if self.close_room(&name, "empty").is_ok() {
                    tracing::info!(room = %name, timeout_s = timeout, "empty room closed");
                }
            }
        }
    }

    /// Whether a cascaded room must stay although nobody is connected here: as its core while an
    /// edge has a leg to it, as an edge while it serves members (docs/cascade.md).
    fn cascade_holds(&self, room: &str) -> bool {
        self.cluster_rooms
            .as_deref()
            .is_some_and(|c| c.legs.has_edges(room) || c.legs.is_edge_of(room))
    }

    /// In a cluster, whether this node holds a copy of `room` that it does not own (an edge's).
    fn owned_elsewhere(&self, room: &str) -> bool {
        self.cluster_rooms
            .as_deref()
            .is_some_and(|c| c.serves(room).is_none())
    }

    /// Forgets this node's copy of a room another node owns: no webhook, nothing in the store.
    fn let_go(&self, room: &str) {
        if let Some(m) = &self.media {
            m.remove_room(room);
        }
        let _ = self.rooms().delete(room);
        tracing::info!(%room, "an edge's copy of a room let go: nobody here any more");
    }

    /// The rooms, locked.
    pub fn rooms(&self) -> MutexGuard<'_, Rooms> {
        // A panic while holding the lock cannot leave `Rooms` half-updated in a way that matters more
        // than refusing every later call; keep serving.
        self.rooms.lock().unwrap_or_else(|e| e.into_inner())
    }
}
