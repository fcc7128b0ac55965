//! Who may walk in without the API key, and how often one may knock (docs/security.md, "Strangers
//! and the API"): the guest-join rules (server and room opt-in, join codes, bans after a kick), the
//! grace a participant has to sit in its seat (connect to signaling) before it is removed, and the
//! per-client-IP throttles on guest joins and on failed admin authentication (GCRA from `governor`).
//!
//! Pure: no sockets and no clock of its own. Every call takes the moment as an `Instant` the I/O
//! shell read (a `clock::Now`'s), so tests step time instead of sleeping; the throttles run
//! `governor`'s keyed limiter on a clock that shows exactly that moment.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use governor::clock::Clock;
use governor::state::keyed::HashMapStateStore;
use governor::{Quota, RateLimiter};
use subtle::ConstantTimeEq;

/// Default seconds a participant has to connect to signaling before its seat is freed.
pub const DEFAULT_JOIN_GRACE_S: u32 = 60;
/// Default seconds a kicked participant may not guest-join the same room again.
pub const DEFAULT_BAN_S: u32 = 300;
/// Default guest joins a client IP may make: 20 in a burst, then 60 a minute.
pub const GUEST_JOIN_RATE: Rate = Rate {
    burst: 20,
    per_min: 60,
};
/// Default failed admin authentications a client IP may make before it gets 429: 10 in a burst,
/// then 10 a minute.
pub const ADMIN_FAIL_RATE: Rate = Rate {
    burst: 10,
    per_min: 10,
};

/// A per-client allowance: so many at once, then so many a minute on average.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// How many a client may make at once (at least 1).
    pub burst: u32,
    /// How many a minute a client may make on average after the burst (at least 1).
    pub per_min: u32,
}

/// A client as the throttles and bans count it: its IPv4 address, or the /64 of its IPv6 address
/// (one subscriber's whole prefix, which it can spread requests over). IPv4-mapped IPv6 addresses
/// count as the IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientKey(IpAddr);

impl ClientKey {
    /// The key of a peer address.
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Self(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self(IpAddr::V4(v4)),
                None => {
                    let s = v6.segments();
                    Self(IpAddr::V6(std::net::Ipv6Addr::new(
                        s[0], s[1], s[2], s[3], 0, 0, 0, 0,
                    )))
                }
            },
        }
    }
}

/// A clock that shows the moment its owner last set: `governor` reads time from its clock, the
/// cores take it as an argument.
#[derive(Debug, Clone)]
struct GivenClock(Arc<Mutex<Instant>>);

impl Clock for GivenClock {
    type Instant = Instant;

    fn now(&self) -> Instant {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A per-client GCRA throttle (`governor`'s keyed limiter) over moments passed in.
struct Throttle {
    clock: GivenClock,
    limiter: RateLimiter<ClientKey, HashMapStateStore<ClientKey>, GivenClock>,
}

impl Throttle {
    fn new(rate: Rate, start: Instant) -> Self {
        let clock = GivenClock(Arc::new(Mutex::new(start)));
        let quota = Quota::per_minute(NonZeroU32::new(rate.per_min).unwrap_or(NonZeroU32::MIN))
            .allow_burst(NonZeroU32::new(rate.burst).unwrap_or(NonZeroU32::MIN));
        Self {
            limiter: RateLimiter::hashmap_with_clock(quota, clock.clone()),
            clock,
        }
    }

    /// Takes one cell for `key` at `now`; `Err(wait)` when the client must wait that long.
    /// `&mut self`: nobody moves the clock between setting it and reading it.
    fn check(&mut self, key: ClientKey, now: Instant) -> Result<(), Instant> {
        *self.clock.0.lock().unwrap_or_else(|e| e.into_inner()) = now;
        self.limiter
            .check_key(&key)
            .map_err(|not_until| not_until.earliest_possible())
    }

    /// Forgets clients whose bucket is full again.
    fn sweep(&mut self, now: Instant) {
        *self.clock.0.lock().unwrap_or_else(|e| e.into_inner()) = now;
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

/// Seconds for a `Retry-After` header: at least 1, rounded up.
pub fn retry_after_secs(wait: Duration) -> u64 {
    let s = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    s.max(1)
}

/// A room's guest settings, as the guest-join check needs them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomGuests {
    /// Whether the room takes guests.
    pub guest_join: bool,
    /// The code a guest must send, if any.
    pub join_code: Option<String>,
}

/// Why a guest join is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuestRefusal {
    /// Too many guest joins from this client: wait this long (429 `rate_limited`).
    RateLimited(Duration),
    /// The server takes no guests at all (403 `guest_join_disabled`).
    Disabled,
    /// The room does not exist, takes no guests, or the code is missing or wrong: all answered
    /// exactly alike (404 `unknown_room`), so nobody learns which rooms exist.
    NoSuchRoom,
    /// This client or name was kicked from the room less than `ban_s` ago: wait this long (403
    /// `banned`).
    Banned(Duration),
}

/// What is banned from a room after a kick.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Banned {
    Client(ClientKey),
    Name(String),
}

/// A participant's seat: where it was minted from, and until when it may stay without sitting.
#[derive(Debug, Clone)]
struct Seat {
    name: String,
    origin: Option<ClientKey>,
    deadline: Option<Instant>,
}

/// Settings of the access rules (server configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessConfig {
    /// Whether the server takes guests at all.
    pub guest_join: bool,
    /// How long a participant may take to connect to signaling.
    pub join_grace: Duration,
    /// How long a kicked participant may not guest-join the room again.
    pub ban: Duration,
    /// Guest joins per client IP (refused ones included).
    pub guest_joins: Rate,
    /// Failed admin authentications per client IP before it gets 429.
    pub admin_failures: Rate,
}

impl Default for AccessConfig {
    fn default() -> Self {
        Self {
            guest_join: true,
            join_grace: Duration::from_secs(DEFAULT_JOIN_GRACE_S.into()),
            ban: Duration::from_secs(DEFAULT_BAN_S.into()),
            guest_joins: GUEST_JOIN_RATE,
            admin_failures: ADMIN_FAIL_RATE,
        }
    }
}

/// How often the throttles said no, since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Throttled {
    /// Guest joins answered 429.
    pub guest_joins: u64,
    /// Clients that spent their failed-authentication budget (each then gets 429 for a while).
    pub admin_blocks: u64,
}

/// The access rules' state: seats not yet sat in, bans, and the throttles.
pub struct Access {
    config: AccessConfig,
    /// (room, participant) → its seat.
    seats: HashMap<(String, String), Seat>,
    /// (room, what) → banned until.
    bans: HashMap<(String, Banned), Instant>,
    guests: Throttle,
    admin_failures: Throttle,
    /// Clients over their failed-authentication budget, until when.
    admin_blocked: HashMap<ClientKey, Instant>,
    throttled: Throttled,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access")
            .field("config", &self.config)
            .field("seats", &self.seats.len())
            .field("bans", &self.bans.len())
            .finish_non_exhaustive()
    }
}

impl Access {
    /// Rules with `config`, the throttles' clocks starting at `now`.
    pub fn new(config: AccessConfig, now: Instant) -> Self {
        Self {
            config,
            seats: HashMap::new(),
            bans: HashMap::new(),
            guests: Throttle::new(config.guest_joins, now),
            admin_failures: Throttle::new(config.admin_failures, now),
            admin_blocked: HashMap::new(),
            throttled: Throttled::default(),
        }
    }

    /// The settings.
    pub fn config(&self) -> AccessConfig {
        self.config
    }

    /// How often the throttles said no.
    pub fn throttled(&self) -> Throttled {
        self.throttled
    }

    /// May `client` guest-join `room` (None: no such room) as `name` with `code` at `now`? Every
    /// attempt counts against the client's guest-join budget, whatever the answer, so join codes and
    /// room names cannot be guessed fast.
    pub fn guest_join(
        &mut self,
        client: ClientKey,
        room_name: &str,
        room: Option<&RoomGuests>,
        name: &str,
        code: Option<&str>,
        now: Instant,
    ) -> Result<(), GuestRefusal> {
        if let Err(at) = self.guests.check(client, now) {
            self.throttled.guest_joins += 1;
            return Err(GuestRefusal::RateLimited(at.saturating_duration_since(now)));
        }
        if !self.config.guest_join {
            return Err(GuestRefusal::Disabled);
        }
        let Some(room) = room.filter(|r| r.guest_join) else {
            return Err(GuestRefusal::NoSuchRoom);
        };
        if let Some(expected) = &room.join_code {
            let given = code.unwrap_or("");
            if !bool::from(given.as_bytes().ct_eq(expected.as_bytes())) {
                return Err(GuestRefusal::NoSuchRoom);
            }
        }
        let until = [Banned::Client(client), Banned::Name(name.to_string())]
            .into_iter()
            .filter_map(|b| self.bans.get(&(room_name.to_string(), b)).copied())
            .filter(|until| *until > now)
            .max();
        match until {
            Some(until) => Err(GuestRefusal::Banned(until - now)),
            None => Ok(()),
        }
    }

    /// A participant was minted (by a guest join from `origin`, or by the API with `origin` None)
    /// at `now`: it has `join_grace` to connect to signaling. `grace: false` for members that never
    /// connect to signaling (plain transports).
    pub fn minted(
        &mut self,
        room: &str,
        participant: &str,
        name: &str,
        origin: Option<ClientKey>,
        grace: bool,
        now: Instant,
    ) {
        self.seats.insert(
            (room.to_string(), participant.to_string()),
            Seat {
                name: name.to_string(),
                origin,
                deadline: grace.then(|| now + self.config.join_grace),
            },
        );
    }

    /// A participant this node learned of from the cluster (it now serves the room): it has the
    /// join grace to connect here, unless this node already holds its seat.
    pub fn minted_if_new(&mut self, room: &str, participant: &str, name: &str, now: Instant) {
        let key = (room.to_string(), participant.to_string());
        if !self.seats.contains_key(&key) {
            self.minted(room, participant, name, None, true, now);
        }
    }

    /// The participant connected to signaling from `from`: its seat is taken (no deadline any more).
    /// The caller holds the rooms lock and has checked the participant is still in the room.
    pub fn sat(&mut self, room: &str, participant: &str, from: Option<ClientKey>) {
        if let Some(seat) = self
            .seats
            .get_mut(&(room.to_string(), participant.to_string()))
        {
            seat.deadline = None;
            if seat.origin.is_none() {
                seat.origin = from;
            }
        }
    }

    /// Participants whose grace ran out at `now` without connecting: forgotten here, for the caller
    /// to remove from their rooms (unless connected after all).
    pub fn expired(&mut self, now: Instant) -> Vec<(String, String)> {
        let gone: Vec<(String, String)> = self
            .seats
            .iter()
            .filter(|(_, s)| s.deadline.is_some_and(|d| d <= now))
            .map(|(k, _)| k.clone())
            .collect();
        for k in &gone {
            self.seats.remove(k);
        }
        gone
    }

    /// The participant left the room (not kicked): forget its seat.
    pub fn left(&mut self, room: &str, participant: &str) {
        self.seats
            .remove(&(room.to_string(), participant.to_string()));
    }

    /// The participant was kicked at `now`: its name, and the client it joined or connected from,
    /// may not guest-join the room for `ban`.
    pub fn kicked(&mut self, room: &str, participant: &str, now: Instant) {
        let Some(seat) = self
            .seats
            .remove(&(room.to_string(), participant.to_string()))
        else {
            return;
        };
        if self.config.ban.is_zero() {
            return;
        }
        let until = now + self.config.ban;
        self.bans
            .insert((room.to_string(), Banned::Name(seat.name)), until);
        if let Some(c) = seat.origin {
            self.bans
                .insert((room.to_string(), Banned::Client(c)), until);
        }
    }

    /// The room closed: forget its seats (its bans stay: a room of the same name is the same room
    /// to whoever was kicked from it).
    pub fn room_closed(&mut self, room: &str) {
        self.seats.retain(|(r, _), _| r != room);
    }

    /// Before checking an admin credential from `client` at `now`: `Err(wait)` while the client is
    /// over its failed-authentication budget (then the credential is not even looked at, so a
    /// guesser learns nothing from its attempts).
    pub fn admin_allowed(&mut self, client: ClientKey, now: Instant) -> Result<(), Duration> {
        match self.admin_blocked.get(&client) {
            Some(until) if *until > now => Err(*until - now),
            Some(_) => {
                self.admin_blocked.remove(&client);
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// An admin credential from `client` was wrong at `now`. `Err(wait)` when that spent the
    /// client's budget: it gets 429 until then.
    pub fn admin_failed(&mut self, client: ClientKey, now: Instant) -> Result<(), Duration> {
        match self.admin_failures.check(client, now) {
            Ok(()) => Ok(()),
            Err(at) => {
                self.throttled.admin_blocks += 1;
                self.admin_blocked.insert(client, at);
                Err(at.saturating_duration_since(now))
            }
        }
    }

    /// Forgets what no longer matters at `now`: bans served, blocks lapsed, full buckets.
    pub fn sweep(&mut self, now: Instant) {
        self.bans.retain(|_, until| *until > now);
        self.admin_blocked.retain(|_, until| *until > now);
        self.guests.sweep(now);
        self.admin_failures.sweep(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    fn ip(s: &str) -> ClientKey {
        ClientKey::of(s.parse().unwrap())
    }

    fn open() -> RoomGuests {
        RoomGuests {
            guest_join: true,
            join_code: None,
        }
    }

    fn access(guest_join: bool) -> (Access, Instant) {
        let t0 = Instant::now();
        let config = AccessConfig {
            guest_join,
            join_grace: 60 * SEC,
            ban: 300 * SEC,
            ..AccessConfig::default()
        };
        (Access::new(config, t0), t0)
    }

    #[test]
    fn ipv6_clients_count_by_their_64_and_mapped_ipv4_as_ipv4() {
        assert_eq!(ip("2001:db8:1:2::1"), ip("2001:db8:1:2:ffff::9"));
        assert_ne!(ip("2001:db8:1:2::1"), ip("2001:db8:1:3::1"));
        assert_eq!(ip("::ffff:192.0.2.7"), ip("192.0.2.7"));
        assert_ne!(ip("192.0.2.7"), ip("192.0.2.8"));
    }

    #[test]
    fn guests_need_the_server_and_the_room_and_the_code_and_refusals_look_alike() {
        let (mut a, t) = access(true);
        let c = ip("192.0.2.1");
        assert_eq!(a.guest_join(c, "r", Some(&open()), "ann", None, t), Ok(()));
        let closed = RoomGuests {
            guest_join: false,
            join_code: None,
        };
        let coded = RoomGuests {
            guest_join: true,
            join_code: Some("s3cret-code".into()),
        };
        // No room, a room without guests, a missing or wrong code: one answer.
        for (room, code) in [
            (None, None),
            (Some(&closed), None),
            (Some(&coded), None),
            (Some(&coded), Some("s3cret-cod")),
            (Some(&coded), Some("s3cret-code!")),
        ] {
            assert_eq!(
                a.guest_join(c, "r", room, "ann", code, t),
                Err(GuestRefusal::NoSuchRoom)
            );
        }
        assert_eq!(
            a.guest_join(c, "r", Some(&coded), "ann", Some("s3cret-code"), t),
            Ok(())
        );
        let (mut off, t) = access(false);
        assert_eq!(
            off.guest_join(c, "r", Some(&open()), "ann", None, t),
            Err(GuestRefusal::Disabled)
        );
    }

    #[test]
    fn guest_joins_are_throttled_per_client_then_refill() {
        let (mut a, t) = access(true);
        let (c, other) = (ip("192.0.2.1"), ip("192.0.2.2"));
        for _ in 0..GUEST_JOIN_RATE.burst {
            // Refusals count too: guessing codes or names costs the same budget.
            assert_eq!(
                a.guest_join(c, "r", None, "x", None, t),
                Err(GuestRefusal::NoSuchRoom)
            );
        }
        let Err(GuestRefusal::RateLimited(wait)) =
            a.guest_join(c, "r", Some(&open()), "x", None, t)
        else {
            panic!("the burst is spent");
        };
        assert!(wait > Duration::ZERO && wait <= SEC, "{wait:?}");
        assert_eq!(retry_after_secs(wait), 1);
        assert_eq!(
            a.guest_join(other, "r", Some(&open()), "x", None, t),
            Ok(()),
            "another client has its own budget"
        );
        let later = t + 60 * SEC / GUEST_JOIN_RATE.per_min;
        assert_eq!(
            a.guest_join(c, "r", Some(&open()), "x", None, later),
            Ok(())
        );
        assert!(matches!(
            a.guest_join(c, "r", Some(&open()), "x", None, later),
            Err(GuestRefusal::RateLimited(_))
        ));
        a.sweep(t + 3600 * SEC);
        assert_eq!(
            a.guest_join(c, "r", Some(&open()), "x", None, t + 3600 * SEC),
            Ok(())
        );
    }

    #[test]
    fn seats_not_sat_in_within_the_grace_expire() {
        let (mut a, t) = access(true);
        a.minted("r", "p1", "ann", Some(ip("192.0.2.1")), true, t);
        a.minted("r", "p2", "bob", None, true, t);
        a.minted("r", "plain", "rec", None, false, t);
        a.sat("r", "p2", Some(ip("192.0.2.2")));
        assert!(a.expired(t + 59 * SEC).is_empty());
        assert_eq!(a.expired(t + 60 * SEC), vec![("r".into(), "p1".into())]);
        assert!(a.expired(t + 3600 * SEC).is_empty(), "once only");
        // Sitting after expiry changes nothing (the caller finds the participant gone).
        a.sat("r", "p1", None);
        assert!(a.expired(t + 7200 * SEC).is_empty());
    }

    #[test]
    fn a_kick_bans_the_name_and_the_client_from_the_room_for_ban_s() {
        let (mut a, t) = access(true);
        let (c, other) = (ip("192.0.2.1"), ip("192.0.2.2"));
        a.minted("r", "p1", "ann", Some(c), true, t);
        a.kicked("r", "p1", t);
        assert_eq!(
            a.guest_join(c, "r", Some(&open()), "someone-else", None, t + SEC),
            Err(GuestRefusal::Banned(299 * SEC))
        );
        assert!(matches!(
            a.guest_join(other, "r", Some(&open()), "ann", None, t + SEC),
            Err(GuestRefusal::Banned(_))
        ));
        assert_eq!(
            a.guest_join(other, "r", Some(&open()), "bob", None, t + SEC),
            Ok(())
        );
        assert_eq!(
            a.guest_join(c, "elsewhere", Some(&open()), "ann", None, t + SEC),
            Ok(()),
            "the ban is for that room"
        );
        assert_eq!(
            a.guest_join(c, "r", Some(&open()), "ann", None, t + 300 * SEC),
            Ok(())
        );
        // An API participant is banned by the client it connected from.
        a.minted("r", "p2", "cy", None, true, t);
        a.sat("r", "p2", Some(other));
        a.kicked("r", "p2", t + 300 * SEC);
        assert!(matches!(
            a.guest_join(other, "r", Some(&open()), "dee", None, t + 301 * SEC),
            Err(GuestRefusal::Banned(_))
        ));
        a.sweep(t + 601 * SEC);
        assert!(a.bans.is_empty());
    }

    #[test]
    fn failed_admin_authentication_is_throttled_before_the_key_is_looked_at() {
        let (mut a, t) = access(true);
        let c = ip("192.0.2.1");
        for _ in 0..ADMIN_FAIL_RATE.burst {
            assert_eq!(a.admin_allowed(c, t), Ok(()));
            assert_eq!(a.admin_failed(c, t), Ok(()));
        }
        let wait = a.admin_failed(c, t).unwrap_err();
        assert_eq!(wait, 60 * SEC / ADMIN_FAIL_RATE.per_min);
        assert_eq!(a.admin_allowed(c, t + SEC), Err(wait - SEC));
        assert_eq!(a.admin_allowed(ip("192.0.2.9"), t), Ok(()));
        let after = t + wait;
        assert_eq!(a.admin_allowed(c, after), Ok(()));
        assert_eq!(a.admin_failed(c, after), Ok(()), "one more try refilled");
        assert!(a.admin_failed(c, after).is_err());
    }

    #[test]
    fn configured_rates_replace_the_defaults_and_refusals_are_counted() {
        let t = Instant::now();
        let config = AccessConfig {
            guest_joins: Rate {
                burst: 2,
                per_min: 1,
            },
            admin_failures: Rate {
                burst: 1,
                per_min: 1,
            },
            ..AccessConfig::default()
        };
        let mut a = Access::new(config, t);
        let c = ip("192.0.2.1");
        for _ in 0..2 {
            assert_eq!(a.guest_join(c, "r", Some(&open()), "x", None, t), Ok(()));
        }
        let Err(GuestRefusal::RateLimited(wait)) =
            a.guest_join(c, "r", Some(&open()), "x", None, t)
        else {
            panic!("a burst of 2");
        };
        assert_eq!(wait, 60 * SEC, "then one a minute");
        assert_eq!(a.admin_failed(c, t), Ok(()));
        assert!(a.admin_failed(c, t).is_err());
        assert_eq!(
            a.throttled(),
            Throttled {
                guest_joins: 1,
                admin_blocks: 1
            }
        );
    }
}
