//! Rooms and participants: the control plane's state, as plain data with the rules on it (names,
//! limits, roles). No I/O here; the HTTP layer holds it behind a mutex (control plane only — the
//! packet path never touches it).

use std::collections::BTreeMap;
use std::time::SystemTime;

use rand::Rng;

use serde::{Deserialize, Serialize};
use sluice_cluster::CascadeMode;
use utoipa::ToSchema;

use crate::clock::unix_secs;
use crate::error::ApiError;
use crate::mode::{MediaMode, ModeRules, RoomMode};

/// Longest room or participant name.
pub const MAX_NAME_LEN: usize = 64;
/// Default number of speaker slots per subscriber.
pub const DEFAULT_LAST_N: u32 = 8;
/// Default largest room that stays a P2P mesh in `auto` mode.
pub const DEFAULT_P2P_MAX: u32 = 8;
/// Default participant limit.
pub const DEFAULT_MAX_PARTICIPANTS: u32 = 500;
/// Default seconds an empty room lives.
pub const DEFAULT_EMPTY_TIMEOUT_S: u32 = 300;
/// Longest cooldown or empty timeout a room may ask for (one day).
pub const LIMIT_SECONDS: u32 = 86_400;
/// Hard participant limit (a room must fit the server).
pub const LIMIT_MAX_PARTICIPANTS: u32 = 10_000;

/// What a participant may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Publishes and listens.
    #[default]
    Speaker,
    /// Listens only.
    Listener,
}

/// `POST /v1/rooms` body.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRoom {
    /// Unique, URL-safe: letters, digits, `-`, `_`, `.`; 1 to 64 characters.
    pub name: String,
    /// Media mode (default `auto`).
    #[serde(default)]
    pub mode: Option<RoomMode>,
    /// Speaker slots per subscriber, 1..=15 (default 8).
    #[serde(default)]
    pub last_n: Option<u32>,
    /// Largest P2P mesh in `auto` mode, 2..=16 (default 8).
    #[serde(default)]
    pub p2p_max: Option<u32>,
    /// Participant limit (default 500).
    #[serde(default)]
    pub max_participants: Option<u32>,
    /// `auto`: members at or below which a room on the SFU returns to P2P after the cooldown
    /// (default `p2p_max - 2`).
    #[serde(default)]
    pub p2p_return: Option<u32>,
    /// `auto`: seconds a room must stay at or below `p2p_return` before it returns to P2P
    /// (server default 30).
    #[serde(default)]
    pub cooldown_s: Option<u32>,
    /// Seconds the room may stay without a connected member before it closes itself (server
    /// default 300; 0: never).
    #[serde(default)]
    pub empty_timeout_s: Option<u32>,
    /// Whether guests may join with `POST /v1/rooms/{room}/join` (default: the server's
    /// `guest_join`; `true` is refused on a server that takes no guests).
    #[serde(default)]
    pub guest_join: Option<bool>,
    /// A code guests must send to join (4 to 128 printable characters; give it out with the
    /// room's link). A wrong or missing code is answered as if the room did not exist.
    #[serde(default)]
    pub join_code: Option<String>,
    /// In a cluster, for rooms on the SFU: which members another node than the room's own (an
    /// edge, linked to it by a relay leg) serves: `off`, `overflow` (default: those the room's
    /// node has no room for, past its `--max-members`) or `nearest` (also those nearer another
    /// node). docs/cascade.md.
    #[serde(default)]
    pub cascade: Option<CascadeMode>,
}

/// `POST /v1/rooms/{room}/participants` body.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateParticipant {
    /// Display name, 1 to 64 characters, unique in the room.
    pub name: String,
    /// `speaker` (default) or `listener`.
    #[serde(default)]
    pub role: Option<Role>,
    /// In a cluster: the client's region, where a room not yet placed goes (default: the
    /// answering node's).
    #[serde(default)]
    pub region: Option<String>,
}

/// A participant as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Participant {
    /// Server-given id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Seconds since the Unix epoch.
    pub created_at: u64,
    /// Live: the member's link as RTCP sees it (loss and jitter each way, round-trip time), while
    /// its media flows through this node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<crate::links::LinkQuality>,
    /// In a cluster: the node that serves this member when it is not the room's own node (an
    /// edge of a cascaded room); absent: the room's `node`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Muted by the server (`POST …/mute`): nothing it publishes is forwarded, and it cannot unmute
    /// itself. Kept with the participant, so it holds across reconnects and, in a cluster, on
    /// whichever node serves the member next.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub server_muted: bool,
}

/// A room as the API shows it (and as a cluster stores it, without the live fields' values).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Room {
    /// Name (the room's address).
    pub name: String,
    /// Configured mode.
    pub mode: RoomMode,
    /// Speaker slots per subscriber.
    pub last_n: u32,
    /// Largest P2P mesh in `auto` mode.
    pub p2p_max: u32,
    /// Participant limit.
    pub max_participants: u32,
    /// `auto`: members at or below which the room returns to P2P after `cooldown_s`.
    pub p2p_return: u32,
    /// `auto`: seconds at or below `p2p_return` before returning to P2P.
    pub cooldown_s: u32,
    /// Seconds without a connected member before the room closes itself (0: never).
    pub empty_timeout_s: u32,
    /// Whether guests may join without the API key (`POST /v1/rooms/{room}/join`).
    pub guest_join: bool,
    /// The code guests must send, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub join_code: Option<String>,
    /// Which members other nodes serve, in a cluster (`off`, `overflow`, `nearest`).
    #[serde(default)]
    pub cascade: CascadeMode,
    /// Seconds since the Unix epoch.
    pub created_at: u64,
    /// How media flows now (`p2p` or `sfu`), from the members connected to signaling.
    pub current_mode: MediaMode,
    /// When the room last switched mode (seconds since the Unix epoch), if ever.
    #[serde(default)]
    pub last_switch_at: Option<u64>,
    /// Members connected to signaling now.
    #[serde(default)]
    pub connected: u32,
    /// In a cluster: the node that serves the room (its owner), once a member joined.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// In a cluster: the owner's epoch (fencing token), growing with every new owner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<u64>,
    /// Members.
    pub participants: Vec<Participant>,
}

impl Room {
    /// The room's mode-switching rules.
    pub fn mode_rules(&self) -> ModeRules {
        ModeRules {
            configured: self.mode,
            p2p_max: self.p2p_max,
            p2p_return: self.p2p_return,
            cooldown: std::time::Duration::from_secs(self.cooldown_s.into()),
        }
    }
}

/// Server-wide defaults for room settings a `POST /v1/rooms` leaves out (configuration file, flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoomDefaults {
    /// Largest P2P mesh of an `auto` room.
    pub p2p_max: u32,
    /// Cooldown before an `auto` room returns to P2P, seconds.
    pub cooldown_s: u32,
    /// Empty time before a room closes itself, seconds (0: never).
    pub empty_timeout_s: u32,
    /// Whether rooms take guests unless they say otherwise (and whether they may at all).
    pub guest_join: bool,
}

impl Default for RoomDefaults {
    fn default() -> Self {
        Self {
            p2p_max: DEFAULT_P2P_MAX,
            cooldown_s: crate::mode::DEFAULT_COOLDOWN.as_secs() as u32,
            empty_timeout_s: DEFAULT_EMPTY_TIMEOUT_S,
            guest_join: true,
        }
    }
}

/// Checks a room name: 1..=64 of `[A-Za-z0-9._-]`.
pub fn validate_room_name(name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "invalid_name",
            format!("room name must be 1 to {MAX_NAME_LEN} characters of letters, digits, '-', '_' or '.'"),
        ))
    }
}

fn validate_participant_name(name: &str) -> Result<(), ApiError> {
    let trimmed = name.trim();
    if trimmed.is_empty()
        || name.chars().count() > MAX_NAME_LEN
        || name.chars().any(char::is_control)
    {
        return Err(ApiError::bad_request(
            "invalid_name",
            format!("participant name must be 1 to {MAX_NAME_LEN} printable characters"),
        ));
    }
    Ok(())
}

/// Longest join code.
pub const MAX_JOIN_CODE_LEN: usize = 128;
/// Shortest join code.
pub const MIN_JOIN_CODE_LEN: usize = 4;

/// The guest settings of a new room: the server's default unless it says otherwise; guests and
/// codes only where the server takes guests.
fn guest_settings(req: &CreateRoom, server: bool) -> Result<(bool, Option<String>), ApiError> {
    let guest_join = req.guest_join.unwrap_or(server);
    if guest_join && !server {
        return Err(ApiError::bad_request(
            "invalid_field",
            "guest_join: this server takes no guests (start it with --guest-join true)",
        ));
    }
    let Some(code) = &req.join_code else {
        return Ok((guest_join, None));
    };
    if !guest_join {
        return Err(ApiError::bad_request(
            "invalid_field",
            "join_code needs a room that takes guests (guest_join)",
        ));
    }
    let n = code.chars().count();
    if !(MIN_JOIN_CODE_LEN..=MAX_JOIN_CODE_LEN).contains(&n) || code.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "invalid_field",
            format!(
                "join_code must be {MIN_JOIN_CODE_LEN} to {MAX_JOIN_CODE_LEN} printable characters"
            ),
        ));
    }
    Ok((true, Some(code.clone())))
}

fn in_range(field: &str, v: Option<u32>, default: u32, lo: u32, hi: u32) -> Result<u32, ApiError> {
    let v = v.unwrap_or(default);
    if (lo..=hi).contains(&v) {
        Ok(v)
    } else {
        Err(ApiError::bad_request(
            "invalid_field",
            format!("{field} must be in {lo}..={hi}, got {v}"),
        ))
    }
}

/// Every room of this server.
#[derive(Debug, Default)]
pub struct Rooms {
    rooms: BTreeMap<String, Room>,
    next_participant: u64,
    defaults: RoomDefaults,
}

impl Rooms {
    /// No rooms yet; settings a request leaves out come from `defaults`.
    pub fn with_defaults(defaults: RoomDefaults) -> Self {
        Self {
            defaults,
            ..Self::default()
        }
    }

    /// A view holding only `room` (if any), whose participant ids continue from `seq`: the same
    /// rules applied to one room stored elsewhere (a cluster's document).
    pub fn holding(defaults: RoomDefaults, room: Option<Room>, seq: u64) -> Self {
        Self {
            rooms: room.into_iter().map(|r| (r.name.clone(), r)).collect(),
            next_participant: seq,
            defaults,
        }
    }

    /// The settings a request leaves out.
    pub fn defaults(&self) -> RoomDefaults {
        self.defaults
    }

    /// The participant counter ids continue from.
    pub fn seq(&self) -> u64 {
        self.next_participant
    }

    /// Puts `room` in place of the room of that name (a copy loaded from the cluster).
    pub fn put(&mut self, room: Room) {
        self.rooms.insert(room.name.clone(), room);
    }

    /// Creates a room at `now`.
    pub fn create(&mut self, req: CreateRoom, now: SystemTime) -> Result<Room, ApiError> {
        validate_room_name(&req.name)?;
        if self.rooms.contains_key(&req.name) {
            return Err(ApiError::conflict(
                "duplicate_name",
                format!("room {:?} already exists", req.name),
            ));
        }
        let d = self.defaults;
        let (guest_join, join_code) = guest_settings(&req, d.guest_join)?;
        let p2p_max = in_range("p2p_max", req.p2p_max, d.p2p_max, 2, 16)?;
        let room = Room {
            mode: req.mode.unwrap_or_default(),
            last_n: in_range("last_n", req.last_n, DEFAULT_LAST_N, 1, 15)?,
            p2p_max,
            p2p_return: in_range(
                "p2p_return",
                req.p2p_return,
                p2p_max.saturating_sub(2),
                0,
                p2p_max - 1,
            )?,
            cooldown_s: in_range("cooldown_s", req.cooldown_s, d.cooldown_s, 0, LIMIT_SECONDS)?,
            empty_timeout_s: in_range(
                "empty_timeout_s",
                req.empty_timeout_s,
                d.empty_timeout_s,
                0,
                LIMIT_SECONDS,
            )?,
            current_mode: match req.mode.unwrap_or_default() {
                RoomMode::Sfu => MediaMode::Sfu,
                _ => MediaMode::P2p,
            },
            last_switch_at: None,
            connected: 0,
            node: None,
            epoch: None,
            max_participants: in_range(
                "max_participants",
                req.max_participants,
                DEFAULT_MAX_PARTICIPANTS,
                1,
                LIMIT_MAX_PARTICIPANTS,
            )?,
            guest_join,
            join_code,
            cascade: req.cascade.unwrap_or_default(),
            created_at: unix_secs(now),
            participants: Vec::new(),
            name: req.name,
        };
        self.rooms.insert(room.name.clone(), room.clone());
        Ok(room)
    }

    /// How many rooms.
    pub fn len(&self) -> usize {
        self.rooms.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.rooms.is_empty()
    }

    /// Every room, by name.
    pub fn list(&self) -> Vec<Room> {
        self.rooms.values().cloned().collect()
    }

    /// Each room's name and `empty_timeout_s`, without copying members (housekeeping runs often).
    pub fn empty_timeouts(&self) -> Vec<(String, u32)> {
        self.rooms
            .values()
            .map(|r| (r.name.clone(), r.empty_timeout_s))
            .collect()
    }

    /// One room.
    pub fn get(&self, name: &str) -> Result<&Room, ApiError> {
        self.rooms.get(name).ok_or_else(|| unknown_room(name))
    }

    /// Removes a room; returns it (the caller says `bye` to its members).
    pub fn delete(&mut self, name: &str) -> Result<Room, ApiError> {
        self.rooms.remove(name).ok_or_else(|| unknown_room(name))
    }

    /// Adds a participant at `now`; its id is the next number and a random part from `rng` (ids
    /// are not guessable from one another).
    pub fn add_participant(
        &mut self,
        room: &str,
        req: CreateParticipant,
        now: SystemTime,
        rng: &mut impl Rng,
    ) -> Result<Participant, ApiError> {
        validate_participant_name(&req.name)?;
        let r = self.rooms.get_mut(room).ok_or_else(|| unknown_room(room))?;
        if r.participants.iter().any(|p| p.name == req.name) {
            return Err(ApiError::conflict(
                "duplicate_name",
                format!(
                    "a participant named {:?} is already in room {room:?}",
                    req.name
                ),
            ));
        }
        if r.participants.len() as u32 >= r.max_participants {
            return Err(ApiError::conflict(
                "room_full",
                format!(
                    "room {room:?} is full ({} participants)",
                    r.max_participants
                ),
            ));
        }
        self.next_participant += 1;
        let p = Participant {
            id: format!("p_{:x}_{:08x}", self.next_participant, rng.random::<u32>()),
            name: req.name,
            role: req.role.unwrap_or_default(),
            created_at: unix_secs(now),
            link: None,
            node: None,
            server_muted: false,
        };
        r.participants.push(p.clone());
        Ok(p)
    }

    /// Puts a participant on `node` (an edge), or back on the room's own node (`None`).
    pub fn set_participant_node(
        &mut self,
        room: &str,
        id: &str,
        node: Option<String>,
    ) -> Result<(), ApiError> {
        self.participant_mut(room, id)?.node = node;
        Ok(())
    }

    /// Records a server mute (or its end) on a participant.
    pub fn set_server_muted(&mut self, room: &str, id: &str, muted: bool) -> Result<(), ApiError> {
        self.participant_mut(room, id)?.server_muted = muted;
        Ok(())
    }

    /// Whether the server muted this participant (`false` for one this node does not know).
    pub fn is_server_muted(&self, room: &str, id: &str) -> bool {
        self.rooms
            .get(room)
            .and_then(|r| r.participants.iter().find(|p| p.id == id))
            .is_some_and(|p| p.server_muted)
    }

    fn participant_mut(&mut self, room: &str, id: &str) -> Result<&mut Participant, ApiError> {
        let r = self.rooms.get_mut(room).ok_or_else(|| unknown_room(room))?;
        r.participants
            .iter_mut()
            .find(|p| p.id == id)
            .ok_or_else(|| unknown_participant(room, id))
    }

    /// Removes a participant; returns it.
    pub fn remove_participant(&mut self, room: &str, id: &str) -> Result<Participant, ApiError> {
        let r = self.rooms.get_mut(room).ok_or_else(|| unknown_room(room))?;
        let i = r
            .participants
            .iter()
            .position(|p| p.id == id)
            .ok_or_else(|| unknown_participant(room, id))?;
        Ok(r.participants.remove(i))
    }
}

/// 404 `unknown_participant`.
fn unknown_participant(room: &str, id: &str) -> ApiError {
    ApiError::not_found(
        "unknown_participant",
        format!("no participant {id:?} in room {room:?}"),
    )
}

/// 404 `unknown_room`: the one answer for a room that does not exist, or is not for this caller.
pub fn unknown_room(name: &str) -> ApiError {
    ApiError::not_found("unknown_room", format!("no room named {name:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// A fixed moment: room tests do not read the clock.
    fn t0() -> SystemTime {
        SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000)
    }

    fn room(name: &str) -> CreateRoom {
        CreateRoom {
            name: name.into(),
            mode: None,
            last_n: None,
            p2p_max: None,
            max_participants: None,
            p2p_return: None,
            cooldown_s: None,
            empty_timeout_s: None,
            guest_join: None,
            join_code: None,
            cascade: None,
        }
    }

    #[test]
    fn rooms_take_guests_as_the_server_does_and_codes_only_with_guests() {
        let mut open = Rooms::default();
        assert!(open.create(room("a"), t0()).unwrap().guest_join);
        let mut coded = room("b");
        coded.join_code = Some("abcd".into());
        assert_eq!(
            open.create(coded.clone(), t0())
                .unwrap()
                .join_code
                .as_deref(),
            Some("abcd")
        );
        for bad in ["abc", &"x".repeat(129), "ab\ncd"] {
            let mut r = room("c");
            r.join_code = Some(bad.into());
            assert_eq!(
                open.create(r, t0()).unwrap_err().code,
                "invalid_field",
                "{bad:?}"
            );
        }
        let mut no_guests = room("d");
        no_guests.guest_join = Some(false);
        assert!(!open.create(no_guests.clone(), t0()).unwrap().guest_join);
        no_guests.name = "e".into();
        no_guests.join_code = Some("abcd".into());
        assert_eq!(
            open.create(no_guests, t0()).unwrap_err().code,
            "invalid_field"
        );

        let mut closed = Rooms::with_defaults(RoomDefaults {
            guest_join: false,
            ..RoomDefaults::default()
        });
        assert!(!closed.create(room("a"), t0()).unwrap().guest_join);
        let mut wants = room("b");
        wants.guest_join = Some(true);
        assert_eq!(
            closed.create(wants, t0()).unwrap_err().code,
            "invalid_field"
        );
        coded.name = "c".into();
        assert_eq!(
            closed.create(coded, t0()).unwrap_err().code,
            "invalid_field"
        );
    }

    #[test]
    fn names_are_url_safe() {
        for ok in ["a", "team-1", "x.y_z", &"n".repeat(64)] {
            assert!(validate_room_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a b", "a/b", "é", &"n".repeat(65), "a?b"] {
            assert_eq!(
                validate_room_name(bad).unwrap_err().code,
                "invalid_name",
                "{bad}"
            );
        }
    }

    #[test]
    fn rooms_enforce_uniqueness_limits_and_defaults() {
        let mut rooms = Rooms::default();
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let r = rooms.create(room("a"), t0()).unwrap();
        assert_eq!(
            (r.mode, r.last_n, r.p2p_max, r.max_participants),
            (RoomMode::Auto, 8, 8, 500)
        );
        assert_eq!(
            rooms.create(room("a"), t0()).unwrap_err().code,
            "duplicate_name"
        );
        let mut big = room("b");
        big.last_n = Some(99);
        assert_eq!(rooms.create(big, t0()).unwrap_err().code, "invalid_field");
        let mut small = room("c");
        small.max_participants = Some(1);
        rooms.create(small, t0()).unwrap();
        let p = |n: &str| CreateParticipant {
            region: None,
            name: n.into(),
            role: None,
        };
        let alice = rooms
            .add_participant("c", p("alice"), t0(), &mut rng)
            .unwrap();
        assert_eq!(
            rooms
                .add_participant("c", p("bob"), t0(), &mut rng)
                .unwrap_err()
                .code,
            "room_full"
        );
        assert!(
            rooms
                .add_participant("a", p("alice"), t0(), &mut rng)
                .is_ok(),
            "same name in another room is fine"
        );
        assert_eq!(
            rooms
                .add_participant("a", p("alice"), t0(), &mut rng)
                .unwrap_err()
                .code,
            "duplicate_name"
        );
        assert_eq!(
            rooms
                .add_participant("zz", p("x"), t0(), &mut rng)
                .unwrap_err()
                .code,
            "unknown_room"
        );
        assert_eq!(
            rooms.remove_participant("c", "nope").unwrap_err().code,
            "unknown_participant"
        );
        assert_eq!(
            rooms.remove_participant("c", &alice.id).unwrap().name,
            "alice"
        );
        assert_eq!(rooms.delete("c").unwrap().name, "c");
        assert_eq!(rooms.get("c").unwrap_err().code, "unknown_room");
    }
}
