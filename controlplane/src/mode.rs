//! When a room's media goes peer to peer and when through the SFU (docs/architecture.md, "Room
//! modes"), as a pure state machine over member counts and `Instant`s: the signaling hub feeds it
//! joins, leaves and time, and announces what it decides. `RoomMode`, the mode a room is configured
//! with, lives here too.
//!
//! - `sfu` and `p2p` rooms never switch.
//! - `auto` rooms start peer to peer. The join that makes the room `p2p_max + 1` members switches it
//!   to the SFU at once (a mesh of that size costs every member `p2p_max` uploads).
//! - An `auto` room on the SFU goes back to peer to peer only after it has had `p2p_return` members
//!   or fewer (default `p2p_max - 2`) for a whole `cooldown` (default 30 s): a room hovering at the
//!   threshold does not flap, and members never renegotiate twice within the cooldown.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// How a room carries media.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum RoomMode {
    /// P2P while small, SFU from `p2p_max + 1` members.
    #[default]
    Auto,
    /// Members connect to each other; the server relays signaling only.
    P2p,
    /// Members connect to the server.
    Sfu,
}

/// How media flows in a room right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MediaMode {
    /// Members send to each other; the server relays signaling only.
    P2p,
    /// Members send to the SFU.
    Sfu,
}

impl MediaMode {
    /// `p2p` or `sfu`.
    pub fn name(self) -> &'static str {
        match self {
            MediaMode::P2p => "p2p",
            MediaMode::Sfu => "sfu",
        }
    }
}

/// Default time an `auto` room must stay small before it returns to peer to peer.
pub const DEFAULT_COOLDOWN: Duration = Duration::from_secs(30);

/// The switching rules of one room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModeRules {
    /// The room's configured mode.
    pub configured: RoomMode,
    /// Largest peer-to-peer mesh (`auto`).
    pub p2p_max: u32,
    /// Members at or below which an `auto` room on the SFU may return to peer to peer.
    pub p2p_return: u32,
    /// How long it must stay at or below `p2p_return` first.
    pub cooldown: Duration,
}

/// The mode of one room and the evidence for switching back.
#[derive(Debug, Clone)]
pub struct ModeMachine {
    rules: ModeRules,
    current: MediaMode,
    /// Since when an `auto` room on the SFU has been small enough to return.
    small_since: Option<Instant>,
}

impl ModeMachine {
    /// A new, empty room.
    pub fn new(rules: ModeRules) -> Self {
        let current = match rules.configured {
            RoomMode::Sfu => MediaMode::Sfu,
            RoomMode::P2p | RoomMode::Auto => MediaMode::P2p,
        };
        Self {
            rules,
            current,
            small_since: None,
        }
    }

    /// The rules.
    pub fn rules(&self) -> ModeRules {
        self.rules
    }

    /// The mode media flows in now.
    pub fn current(&self) -> MediaMode {
        self.current
    }

    /// The room has `members` members now (after a join or a leave). Returns the new mode when the
    /// room switches at once (only ever to the SFU).
    pub fn on_members(&mut self, now: Instant, members: u32) -> Option<MediaMode> {
        if self.rules.configured != RoomMode::Auto {
            return None;
        }
        match self.current {
            MediaMode::P2p if members > self.rules.p2p_max => {
                self.current = MediaMode::Sfu;
                self.small_since = None;
                Some(MediaMode::Sfu)
            }
            MediaMode::P2p => None,
            MediaMode::Sfu => {
                if members <= self.rules.p2p_return {
                    self.small_since.get_or_insert(now);
                } else {
                    self.small_since = None;
                }
                None
            }
        }
    }

    /// When [`poll`](Self::poll) may switch the room back, if it is on its way.
    pub fn deadline(&self) -> Option<Instant> {
        self.small_since.map(|t| t + self.rules.cooldown)
    }

    /// Time passed: returns `P2p` when an `auto` room on the SFU has been small for the cooldown.
    pub fn poll(&mut self, now: Instant) -> Option<MediaMode> {
        match self.deadline() {
            Some(at) if now >= at && self.current == MediaMode::Sfu => {
                self.current = MediaMode::P2p;
                self.small_since = None;
                Some(MediaMode::P2p)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auto(p2p_max: u32) -> ModeMachine {
        ModeMachine::new(ModeRules {
            configured: RoomMode::Auto,
            p2p_max,
            p2p_return: p2p_max - 2,
            cooldown: Duration::from_secs(30),
        })
    }

    #[test]
    fn auto_is_p2p_up_to_p2p_max_and_the_next_join_switches_to_the_sfu() {
        let t = Instant::now();
        let mut m = auto(8);
        assert_eq!(m.current(), MediaMode::P2p);
        for n in 1..=8 {
            assert_eq!(m.on_members(t, n), None, "{n} members stay p2p");
        }
        assert_eq!(m.on_members(t, 9), Some(MediaMode::Sfu));
        assert_eq!(m.current(), MediaMode::Sfu);
        assert_eq!(m.on_members(t, 10), None);
    }

    #[test]
    fn it_returns_to_p2p_only_after_a_cooldown_at_p2p_max_minus_two() {
        let t0 = Instant::now();
        let s = |n| t0 + Duration::from_secs(n);
        let mut m = auto(8);
        m.on_members(t0, 9);
        // Back at 8 and 7: not small enough.
        m.on_members(s(1), 8);
        m.on_members(s(2), 7);
        assert_eq!(m.deadline(), None);
        assert_eq!(m.poll(s(100)), None);
        // At 6 the cooldown starts; a join back to 7 cancels it.
        m.on_members(s(10), 6);
        assert_eq!(m.deadline(), Some(s(40)));
        m.on_members(s(20), 7);
        assert_eq!(m.poll(s(45)), None, "the cooldown restarted");
        m.on_members(s(50), 6);
        m.on_members(s(60), 5);
        assert_eq!(
            m.deadline(),
            Some(s(80)),
            "the cooldown counts from the first small moment"
        );
        assert_eq!(m.poll(s(79)), None);
        assert_eq!(m.poll(s(80)), Some(MediaMode::P2p));
        assert_eq!(m.current(), MediaMode::P2p);
        assert_eq!(m.poll(s(200)), None);
        // And up again.
        assert_eq!(m.on_members(s(201), 9), Some(MediaMode::Sfu));
    }

    #[test]
    fn a_room_at_the_threshold_does_not_flap() {
        let t0 = Instant::now();
        let mut m = auto(8);
        let mut switches = 0;
        for i in 0..1000u64 {
            let now = t0 + Duration::from_millis(i * 100);
            let members = if i % 2 == 0 { 9 } else { 8 };
            switches += u32::from(m.on_members(now, members).is_some());
            switches += u32::from(m.poll(now).is_some());
        }
        assert_eq!(switches, 1, "one switch to the SFU, none back");
    }

    #[test]
    fn fixed_modes_never_switch() {
        let t = Instant::now();
        for (configured, mode) in [
            (RoomMode::Sfu, MediaMode::Sfu),
            (RoomMode::P2p, MediaMode::P2p),
        ] {
            let mut m = ModeMachine::new(ModeRules {
                configured,
                p2p_max: 2,
                p2p_return: 0,
                cooldown: Duration::ZERO,
            });
            for n in [1, 5, 50, 0] {
                assert_eq!(m.on_members(t, n), None);
                assert_eq!(m.poll(t + Duration::from_secs(60)), None);
            }
            assert_eq!(m.current(), mode);
        }
    }
}
