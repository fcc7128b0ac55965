//! The control plane's shared state: rooms, keys, the signaling hub, media sessions and webhooks,
//! and the operations that touch several of them at once (closing a room, muting, housekeeping).
//! Every front end (REST handlers, the signaling socket, the web pages, metrics) depends on this
//! module; it depends on none of them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use sluice_dataplane::Dataplane;

use crate::auth::Auth;
use crate::clock::Now;
use crate::error::ApiError;
use crate::hub::{Hub, ModeSwitch};
use crate::media::Media;
use crate::messages::PeerInfo;
use crate::rooms::{Role, Room, Rooms};
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
    /// Base of `signal_url`, e.g. `ws://127.0.0.1:7880`.
    pub public_ws_base: String,
    /// The dataplane, for its counters.
    pub dataplane: Option<Arc<Dataplane>>,
    /// Connected signaling sockets.
    pub hub: Arc<Hub>,
    /// Media sessions (None: signaling only, no dataplane).
    pub media: Option<Arc<Media>>,
    /// Whether `POST /v1/rooms/{room}/join` (the web page's join, no API key) is open.
    pub guest_join: bool,
    /// Where room events go (None: no webhooks configured).
    pub webhooks: Option<Arc<Webhooks>>,
    /// The media thread (`Media::start_pump`), which `/healthz` checks is still running.
    pub media_thread: Option<Arc<std::thread::JoinHandle<()>>>,
}

impl AppState {
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

    /// A room with its live state (mode, last switch, connected members) filled in.
    pub fn with_live(&self, mut room: Room) -> Room {
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
    pub fn housekeeping(&self, now: Now, empty_since: &mut HashMap<String, Instant>) {
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
            if self.hub.connected(&name) > 0 || timeout == 0 {
                empty_since.remove(&name);
                continue;
            }
            let since = *empty_since.entry(name.clone()).or_insert(now.instant);
            if now.instant.duration_since(since) >= Duration::from_secs(timeout.into()) {
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
