//! The signaling hub: which members of each room are connected, what each is told, and each room's
//! media mode (driven through the pure [`ModeMachine`]). No sockets and no HTTP here: a member is a
//! bounded outbox (`mpsc::Sender`) its socket task drains, and time comes in from the caller. A full
//! outbox disconnects that member rather than holding up the room.
//!
//! The hub also keeps the per-participant limits that must outlive one socket: each sender's
//! message rate ([`Hub::allow_message`], so a reconnect does not refill the bucket) and each
//! receiver's relay budget ([`Hub::relay`]: bytes per second from all senders together, and no
//! relayed message into an outbox that is three quarters full), so several members together cannot
//! push a target out as a slow consumer.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::clock::Now;
use crate::limits::SignalLimits;
use crate::messages::{PeerInfo, ServerMsg};
use crate::mode::{MediaMode, ModeMachine, ModeRules};
use crate::rate_limit::{RateLimit, RATE_BURST, RATE_PER_S};
use crate::roster::{LocalChange, RemoteMember, RemoteRoster, RosterJob};

/// Where a member's signaling news goes: its socket task's queue. Messages are shared, so a
/// broadcast to a room of thousands makes one message, not one copy per member.
pub type Outbox = mpsc::Sender<Arc<ServerMsg>>;

struct Member {
    info: PeerInfo,
    tx: Outbox,
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
    /// The receiver's relay budget (bytes per second, or room in its outbox) is spent for now.
    ReceiverBusy,
}

/// What [`Hub::join`] reports to the new member's socket.
#[derive(Debug)]
pub struct Joined {
    /// This connection's number (a later [`Hub::leave`] names it, so a replaced connection's
    /// goodbye cannot remove its replacement).
    pub conn: u64,
    /// The members connected before this one.
    pub peers: Vec<PeerInfo>,
    /// The room's mode after this join.
    pub mode: MediaMode,
    /// The switch this join caused, if any.
    pub switch: Option<ModeSwitch>,
}

/// A running socket task, counted by [`Hub::socket_open`] until dropped.
#[derive(Debug)]
pub struct OpenSocket<'a>(&'a AtomicUsize);

impl Drop for OpenSocket<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Per-participant buckets, keyed by (room, participant): they outlive a socket.
#[derive(Default)]
struct Budgets {
    /// Messages a participant may send ([`RATE_BURST`], [`RATE_PER_S`]).
    senders: HashMap<(String, String), RateLimit>,
    /// Bytes that may be relayed to a participant.
    receivers: HashMap<(String, String), RateLimit>,
    /// Calls since the last sweep of full (forgettable) buckets.
    since_sweep: u32,
}

impl Budgets {
    fn sweep(&mut self, now: Instant) {
        self.since_sweep += 1;
        if self.since_sweep >= 1024 {
            self.since_sweep = 0;
            self.senders.retain(|_, b| !b.is_full(now));
            self.receivers.retain(|_, b| !b.is_full(now));
        }
    }
}

/// Connected members by room: who receives room news, and each room's mode.
#[derive(Default)]
pub struct Hub {
    /// Locked before `remote` when both are.
    rooms: Mutex<HashMap<String, LiveRoom>>,
    /// Members of each room connected on the other nodes of a cascade (docs/cascade.md).
    remote: Mutex<HashMap<String, RemoteRoster>>,
    /// Where changes to this node's members go for the other nodes (set once, in a cluster).
    roster_out: OnceLock<mpsc::Sender<RosterJob>>,
    /// Changes that could not be queued for the other nodes (the queue was full).
    roster_dropped: AtomicU64,
    budgets: Mutex<Budgets>,
    limits: SignalLimits,
    /// Socket tasks still running (they may still be writing a `bye`).
    open_sockets: AtomicUsize,
    next_conn: AtomicU64,
    joins: AtomicU64,
    to_sfu: AtomicU64,
    to_p2p: AtomicU64,
}

impl Hub {
    /// A hub with the given relay budget (`Hub::default()` has the default one).
    pub fn new(limits: SignalLimits) -> Self {
        Self {
            limits,
            ..Self::default()
        }
    }

    /// Whether `id` of `room` may send one more message at `now` (burst [`RATE_BURST`], then
    /// [`RATE_PER_S`] a second). The bucket belongs to the participant, not the socket: a reconnect
    /// finds it as the last socket left it.
    pub fn allow_message(&self, room: &str, id: &str, now: Instant) -> bool {
        let mut b = self.budgets.lock().unwrap_or_else(|e| e.into_inner());
        b.sweep(now);
        b.senders
            .entry((room.to_string(), id.to_string()))
            .or_insert_with(|| RateLimit::new(now, RATE_BURST, RATE_PER_S))
            .allow(now)
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, LiveRoom>> {
        self.rooms.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn remote(&self) -> MutexGuard<'_, HashMap<String, RemoteRoster>> {
        self.remote.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends changes to this node's members to `tx`, for the other nodes of cascaded rooms
    /// ([`crate::roster_link`]); a single node has no sink and keeps its news to itself.
    pub fn set_roster_sink(&self, tx: mpsc::Sender<RosterJob>) {
        let _ = self.roster_out.set(tx);
    }

    /// Queues `job` for the other nodes, if this node is in a cluster.
    pub fn queue_roster(&self, job: RosterJob) {
        if let Some(tx) = self.roster_out.get() {
            if tx.try_send(job).is_err() {
                self.roster_dropped.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("roster queue full: another node misses a member's news");
            }
        }
    }

    fn tell_others(&self, room: &str, change: LocalChange) {
        if self.roster_out.get().is_some() {
            self.queue_roster(RosterJob::Local {
                room: room.to_string(),
                change,
            });
        }
    }

    /// Applies a change another node sent about its members of `room`, and tells this node's.
    pub fn apply_remote(&self, room: &str, update: sluice_cluster::RosterUpdate) {
        let mut rooms = self.lock();
        let mut remote = self.remote();
        let live = rooms.get_mut(room);
        let told = {
            let local = |id: &str| live.as_ref().is_some_and(|l| l.members.contains_key(id));
            remote
                .entry(room.to_string())
                .or_default()
                .apply(update, local)
        };
        if remote.get(room).is_some_and(RemoteRoster::is_empty) {
            remote.remove(room);
        }
        if let Some(live) = live {
            for msg in told {
                Self::broadcast(&mut live.members, "", &msg);
            }
        }
    }

    /// Members of `room` connected here.
    pub fn local_peers(&self, room: &str) -> Vec<PeerInfo> {
        self.lock()
            .get(room)
            .map(|l| l.members.values().map(|m| m.info.clone()).collect())
            .unwrap_or_default()
    }

    /// Members of `room` connected on other nodes, as far as this node knows.
    pub fn remote_peers(&self, room: &str) -> Vec<RemoteMember> {
        self.remote()
            .get(room)
            .map(|r| r.members().cloned().collect())
            .unwrap_or_default()
    }

    /// Forgets who `room` has on other nodes (this node stopped serving it).
    pub fn forget_remote(&self, room: &str) {
        self.remote().remove(room);
    }

    /// Changes for the other nodes that were dropped because their queue was full.
    pub fn roster_dropped(&self) -> u64 {
        self.roster_dropped.load(Ordering::Relaxed)
    }

    /// Sends to one member; a full outbox disconnects it (its socket task sees the channel close).
    fn deliver(members: &mut HashMap<String, Member>, id: &str, msg: ServerMsg) {
        if let Some(m) = members.get(id) {
            if !Self::offer(id, m, Arc::new(msg)) {
                members.remove(id);
            }
        }
    }

    /// Sends `msg` to every member but `except`, one shared copy for all of them.
    fn broadcast(members: &mut HashMap<String, Member>, except: &str, msg: &ServerMsg) {
        let msg = Arc::new(msg.clone());
        members.retain(|id, m| id.as_str() == except || Self::offer(id, m, msg.clone()));
    }

    /// Queues `msg` for one member; `false` when its outbox is full or closed (it is then
    /// disconnected: its socket task sees the channel close once the member is forgotten).
    fn offer(id: &str, m: &Member, msg: Arc<ServerMsg>) -> bool {
        let queued = m.tx.try_send(msg).is_ok();
        if !queued {
            tracing::warn!(
                participant = id,
                "signaling outbox full or closed: disconnecting"
            );
        }
        queued
    }

    /// Records a switch of `room` to `to` at `now`, tells every member but `except`, and returns the
    /// report.
    fn switched(
        &self,
        name: &str,
        room: &mut LiveRoom,
        to: MediaMode,
        except: &str,
        now: Now,
    ) -> ModeSwitch {
        room.last_switch = Some(now.unix_secs());
        room.back_to_p2p = (to == MediaMode::P2p).then_some(now.instant);
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

    /// Registers a connection to a room with `rules` at `now`: the member's news goes to `tx`. A
    /// connection of the same participant that was there is told `bye {replaced}` and forgotten.
    pub fn join(
        &self,
        room: &str,
        rules: ModeRules,
        info: PeerInfo,
        tx: Outbox,
        now: Now,
    ) -> Joined {
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
            let _ = old
                .tx
                .try_send(Arc::new(ServerMsg::Bye { reason: "replaced" }));
        }
        let mut peers: Vec<PeerInfo> = live.members.values().map(|m| m.info.clone()).collect();
        if let Some(remote) = self.remote().get_mut(room) {
            remote.forget(&info.id);
            peers.extend(remote.members().map(|m| m.info.clone()));
        }
        Self::broadcast(
            &mut live.members,
            &info.id,
            &ServerMsg::PeerJoined {
                participant: info.clone(),
            },
        );
        let id = info.id.clone();
        self.tell_others(room, LocalChange::Joined(info.clone()));
        live.members.insert(id.clone(), Member { info, tx, conn });
        let n = live.members.len() as u32;
        let switch = live
            .mode
            .on_members(now.instant, n)
            .map(|to| self.switched(room, live, to, &id, now));
        Joined {
            conn,
            peers,
            mode: live.mode.current(),
            switch,
        }
    }

    /// Forgets member `id` of `room` and tells the others; keeps the room's mode state.
    fn remove_member(&self, room: &str, live: &mut LiveRoom, id: &str, now: Instant) {
        live.members.remove(id);
        self.tell_others(room, LocalChange::Left(id.to_string()));
        Self::broadcast(
            &mut live.members,
            id,
            &ServerMsg::PeerLeft {
                participant: id.to_string(),
            },
        );
        let n = live.members.len() as u32;
        live.mode.on_members(now, n);
    }

    /// Unregisters connection `conn` of `id` (not a newer one that replaced it) and tells the others.
    /// Returns whether it was the member's current connection (then the member is gone).
    pub fn leave(&self, room: &str, id: &str, conn: u64, now: Instant) -> bool {
        let mut rooms = self.lock();
        let Some(live) = rooms.get_mut(room) else {
            return false;
        };
        if live.members.get(id).is_none_or(|m| m.conn != conn) {
            return false;
        }
        self.remove_member(room, live, id, now);
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

    /// Delivers a p2p message of `bytes` bytes from `from` to `to` in `room` at `now`, within the
    /// receiver's relay budget: refused ([`RelayError::ReceiverBusy`], nothing delivered) when the
    /// bytes relayed to `to` would pass the budget, or when its outbox is three quarters full, so
    /// that relayed traffic alone never disconnects a receiver.
    pub fn relay(
        &self,
        room: &str,
        from: &str,
        to: &str,
        msg: ServerMsg,
        bytes: usize,
        now: Instant,
    ) -> Result<(), RelayError> {
        if from == to {
            return Err(RelayError::ToSelf);
        }
        let mut rooms = self.lock();
        let live = rooms.get_mut(room).ok_or(RelayError::UnknownPeer)?;
        let Some(member) = live.members.get(to) else {
            return Err(RelayError::UnknownPeer);
        };
        if member.tx.capacity() <= member.tx.max_capacity() / 4 {
            return Err(RelayError::ReceiverBusy);
        }
        {
            let mut b = self.budgets.lock().unwrap_or_else(|e| e.into_inner());
            b.sweep(now);
            let (burst, rate) = (self.limits.relay_burst_bytes, self.limits.relay_bytes_per_s);
            let budget = b
                .receivers
                .entry((room.to_string(), to.to_string()))
                .or_insert_with(|| RateLimit::new(now, burst.into(), rate.into()));
            if !budget.allow_n(now, bytes as f64) {
                return Err(RelayError::ReceiverBusy);
            }
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
        self.tell_others(
            room,
            LocalChange::Muted {
                id: id.to_string(),
                muted,
            },
        );
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
    pub fn poll_modes(&self, now: Now) -> Vec<ModeSwitch> {
        let mut rooms = self.lock();
        let mut out = Vec::new();
        for (name, live) in rooms.iter_mut() {
            if let Some(to) = live.mode.poll(now.instant) {
                out.push(self.switched(name, live, to, "", now));
            }
        }
        out
    }

    /// Rooms that went back to P2P at least `grace` ago (time for every client to move its audio to
    /// the mesh), each with the instant of the switch; each room is returned once per switch. Their
    /// SFU transports from before the switch are leftovers to remove.
    pub fn take_back_to_p2p(&self, now: Instant, grace: Duration) -> Vec<(String, Instant)> {
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

    /// Says `bye` to one member and forgets it (kick) at `now`.
    pub fn kick(&self, room: &str, id: &str, now: Instant) {
        let mut rooms = self.lock();
        if let Some(live) = rooms.get_mut(room) {
            if let Some(m) = live.members.get(id) {
                let _ = m.tx.try_send(Arc::new(ServerMsg::Bye { reason: "kicked" }));
                self.remove_member(room, live, id, now);
            }
        }
    }

    /// Says `bye` to every member of a room and forgets the room (deleted or expired).
    pub fn close_room(&self, room: &str) {
        self.end_room(
            room,
            ServerMsg::Bye {
                reason: "room_closed",
            },
        );
    }

    /// Forgets a room this node no longer serves (another node owns it now): its members' sockets
    /// close without `bye`, so they reconnect and are sent to the new owner. Returns how many.
    pub fn move_room(&self, room: &str) -> usize {
        self.end_room(room, ServerMsg::Moved)
    }

    /// Forgets a room that moved to another node (a drain): each member gets `redirect` to the URL
    /// `url_for` gives it (its socket closes after it; one without a URL closes without a word, and
    /// reconnects). Returns how many members there were.
    pub fn redirect_room(
        &self,
        room: &str,
        url_for: impl Fn(&PeerInfo) -> Option<String>,
    ) -> usize {
        self.end_room_with(room, |p| {
            url_for(p).map_or(ServerMsg::Moved, |url| ServerMsg::Redirect { url })
        })
    }

    fn end_room(&self, room: &str, msg: ServerMsg) -> usize {
        self.end_room_with(room, |_| msg.clone())
    }

    /// Forgets `room`, telling each member what `msg_for` says to it; returns how many there were.
    fn end_room_with(&self, room: &str, msg_for: impl Fn(&PeerInfo) -> ServerMsg) -> usize {
        let Some(live) = self.lock().remove(room) else {
            return 0;
        };
        self.forget_remote(room);
        for m in live.members.values() {
            let _ = m.tx.try_send(Arc::new(msg_for(&m.info)));
            self.tell_others(room, LocalChange::Left(m.info.id.clone()));
        }
        live.members.len()
    }

    /// The signaling limits this hub was made with (keep-alive, relay budget).
    pub fn limits(&self) -> SignalLimits {
        self.limits
    }

    /// Counts a socket task as running until the returned guard is dropped, so that a shutdown can
    /// wait for every `bye` to be written ([`Hub::open_sockets`]).
    pub fn socket_open(&self) -> OpenSocket<'_> {
        self.open_sockets.fetch_add(1, Ordering::Relaxed);
        OpenSocket(&self.open_sockets)
    }

    /// Socket tasks still running.
    pub fn open_sockets(&self) -> usize {
        self.open_sockets.load(Ordering::Relaxed)
    }

    /// Says `bye` to everyone and forgets every room (shutdown); returns who was connected, by
    /// room, so that the caller can report their leaving.
    pub fn close_all(&self) -> Vec<(String, Vec<String>)> {
        let mut gone = Vec::new();
        for (room, live) in self.lock().drain() {
            for m in live.members.values() {
                let _ = m.tx.try_send(Arc::new(ServerMsg::Bye {
                    reason: "server_shutdown",
                }));
                self.tell_others(&room, LocalChange::Left(m.info.id.clone()));
            }
            gone.push((room, live.members.into_keys().collect()));
        }
        gone
    }

    /// Connected members, all rooms.
    pub fn connected_total(&self) -> usize {
        self.lock().values().map(|l| l.members.len()).sum()
    }

    /// Whether participant `id` is connected to `room` now.
    pub fn is_member(&self, room: &str, id: &str) -> bool {
        self.lock()
            .get(room)
            .is_some_and(|l| l.members.contains_key(id))
    }

    /// Connected members of a room.
    pub fn connected(&self, room: &str) -> usize {
        self.lock().get(room).map_or(0, |l| l.members.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mode::RoomMode;
    use crate::rooms::Role;

    fn peer(id: &str) -> PeerInfo {
        PeerInfo {
            id: id.into(),
            name: id.into(),
            role: Role::Speaker,
            muted: false,
        }
    }

    fn rules() -> ModeRules {
        ModeRules {
            configured: RoomMode::Auto,
            p2p_max: 2,
            p2p_return: 1,
            cooldown: Duration::from_secs(30),
        }
    }

    fn drain(rx: &mut mpsc::Receiver<Arc<ServerMsg>>) -> Vec<String> {
        let mut out = Vec::new();
        while let Ok(m) = rx.try_recv() {
            out.push(serde_json::to_value(&*m).expect("json")["type"].to_string());
        }
        out
    }

    #[test]
    fn a_cascaded_room_shows_members_of_other_nodes_and_tells_them_of_its_own() {
        use sluice_cluster::{RosterPeer, RosterUpdate};
        let hub = Hub::default();
        let (jobs_tx, mut jobs) = mpsc::channel(16);
        hub.set_roster_sink(jobs_tx);
        let t0 = Now::read();
        let (a_tx, mut a_rx) = mpsc::channel(16);
        let a = hub.join("r", rules(), peer("a"), a_tx, t0);
        assert!(a.peers.is_empty());
        // A member connected on another node: announced here, and in the next welcome.
        hub.apply_remote(
            "r",
            RosterUpdate::Joined {
                peer: RosterPeer {
                    id: "far".into(),
                    name: "Far".into(),
                    role: "listener".into(),
                    muted: false,
                    node: "n2".into(),
                },
            },
        );
        assert_eq!(drain(&mut a_rx), ["\"peer_joined\""]);
        let (b_tx, _b_rx) = mpsc::channel(16);
        let b = hub.join("r", rules(), peer("b"), b_tx, t0);
        let mut ids: Vec<&str> = b.peers.iter().map(|p| p.id.as_str()).collect();
        ids.sort_unstable();
        assert_eq!(ids, ["a", "far"]);
        assert_eq!(hub.remote_peers("r").len(), 1);
        // This node's own changes are queued for the others, in order.
        hub.set_muted("r", "a", true, false);
        assert!(hub.leave("r", "b", b.conn, t0.instant));
        let mut got = Vec::new();
        while let Ok(job) = jobs.try_recv() {
            if let RosterJob::Local { change, .. } = job {
                got.push(change);
            }
        }
        assert_eq!(
            got,
            [
                LocalChange::Joined(peer("a")),
                LocalChange::Joined(peer("b")),
                LocalChange::Muted {
                    id: "a".into(),
                    muted: true
                },
                LocalChange::Left("b".into()),
            ]
        );
        drain(&mut a_rx);
        hub.apply_remote(
            "r",
            RosterUpdate::Node {
                node: "n2".into(),
                peers: vec![],
            },
        );
        assert_eq!(
            drain(&mut a_rx),
            ["\"peer_left\""],
            "n2 went with its member"
        );
        assert!(hub.remote_peers("r").is_empty());
    }

    #[test]
    fn joins_switch_modes_on_stepped_time_without_a_socket() {
        let hub = Hub::default();
        let t0 = Now::read();
        let (a_tx, mut a_rx) = mpsc::channel(16);
        let (b_tx, _b_rx) = mpsc::channel(16);
        let (c_tx, _c_rx) = mpsc::channel(16);
        let a = hub.join("r", rules(), peer("a"), a_tx, t0);
        assert_eq!((a.mode, a.peers.len()), (MediaMode::P2p, 0));
        let b = hub.join("r", rules(), peer("b"), b_tx, t0);
        assert!(b.switch.is_none());
        let c = hub.join(
            "r",
            rules(),
            peer("c"),
            c_tx,
            t0.plus(Duration::from_secs(1)),
        );
        let sw = c
            .switch
            .expect("the third member switches the room to the SFU");
        assert_eq!(
            (sw.from, sw.to, sw.members),
            (MediaMode::P2p, MediaMode::Sfu, 3)
        );
        assert_eq!(
            drain(&mut a_rx),
            ["\"peer_joined\"", "\"peer_joined\"", "\"mode\""]
        );
        let live = hub.live("r").expect("live");
        assert_eq!(
            live.last_switch,
            Some(t0.plus(Duration::from_secs(1)).unix_secs())
        );

        // Two leave at t0+2 s: the cooldown runs from there, on the caller's clock.
        assert!(hub.leave("r", "b", b.conn, t0.instant + Duration::from_secs(2)));
        assert!(!hub.leave("r", "b", b.conn, t0.instant), "already gone");
        hub.kick("r", "c", t0.instant + Duration::from_secs(2));
        assert!(hub.poll_modes(t0.plus(Duration::from_secs(31))).is_empty());
        let back = hub.poll_modes(t0.plus(Duration::from_secs(32)));
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].to, MediaMode::P2p);
        let at = t0.instant + Duration::from_secs(32);
        assert!(hub.take_back_to_p2p(at, Duration::from_secs(12)).is_empty());
        assert_eq!(
            hub.take_back_to_p2p(at + Duration::from_secs(12), Duration::from_secs(12)),
            [("r".to_string(), at)]
        );
        assert!(
            hub.take_back_to_p2p(at + Duration::from_secs(60), Duration::from_secs(12))
                .is_empty(),
            "once per switch"
        );
        assert_eq!(hub.switches(), (1, 1));
    }

    #[test]
    fn a_moved_room_redirects_each_member_to_its_own_url_and_is_forgotten() {
        let hub = Hub::default();
        let t0 = Now::read();
        let (a_tx, mut a_rx) = mpsc::channel(16);
        let (b_tx, mut b_rx) = mpsc::channel(16);
        let a = hub.join("r", rules(), peer("a"), a_tx, t0);
        hub.join("r", rules(), peer("b"), b_tx, t0);
        drain(&mut a_rx);
        let n = hub.redirect_room("r", |p| {
            (p.id == "a").then(|| format!("ws://next/{}", p.id))
        });
        assert_eq!(n, 2);
        assert!(
            matches!(a_rx.try_recv().as_deref(), Ok(ServerMsg::Redirect { url }) if url == "ws://next/a")
        );
        assert!(
            matches!(b_rx.try_recv().as_deref(), Ok(ServerMsg::Moved)),
            "no URL: closed without a word"
        );
        assert!(hub.live("r").is_none());
        assert!(
            !hub.leave("r", "a", a.conn, t0.instant),
            "a moved member's socket closing is not a leave"
        );
    }

    #[test]
    fn the_message_rate_belongs_to_the_participant_not_the_socket() {
        let hub = Hub::default();
        let t0 = Instant::now();
        assert!((0..RATE_BURST as usize).all(|_| hub.allow_message("r", "a", t0)));
        assert!(!hub.allow_message("r", "a", t0), "burst spent");
        // A new socket of the same participant asks the same bucket.
        assert!(!hub.allow_message("r", "a", t0 + Duration::from_millis(10)));
        assert!(
            hub.allow_message("r", "b", t0),
            "another participant has its own"
        );
        assert!(hub.allow_message("r", "a", t0 + Duration::from_millis(40)));
    }

    #[test]
    fn relays_to_one_receiver_stop_at_its_byte_budget_and_before_its_outbox_fills() {
        let limits = SignalLimits {
            relay_burst_bytes: 1000,
            relay_bytes_per_s: 1000,
            ..SignalLimits::default()
        };
        let hub = Hub::new(limits);
        let t0 = Now::read();
        let (a_tx, _a_rx) = mpsc::channel(16);
        let (b_tx, _b_rx) = mpsc::channel(16);
        let (t_tx, mut t_rx) = mpsc::channel(16);
        hub.join("r", rules(), peer("a"), a_tx, t0);
        hub.join("r", rules(), peer("b"), b_tx, t0);
        hub.join("r", rules(), peer("t"), t_tx, t0);
        drain(&mut t_rx);
        let msg = |from: &str| ServerMsg::PeerCandidate {
            from: from.into(),
            candidate: serde_json::Value::Null,
        };
        let now = t0.instant;
        assert_eq!(hub.relay("r", "a", "t", msg("a"), 600, now), Ok(()));
        // Two senders share the receiver's budget.
        assert_eq!(
            hub.relay("r", "b", "t", msg("b"), 600, now),
            Err(RelayError::ReceiverBusy)
        );
        assert_eq!(hub.relay("r", "b", "t", msg("b"), 400, now), Ok(()));
        let later = now + Duration::from_secs(1);
        assert_eq!(hub.relay("r", "b", "t", msg("b"), 900, later), Ok(()));
        // Small messages: the outbox (16) is never filled past three quarters by relays.
        let mut delivered = 3;
        for i in 0..20u64 {
            let at = later + Duration::from_secs(i + 1);
            if hub.relay("r", "a", "t", msg("a"), 1, at).is_ok() {
                delivered += 1;
            }
        }
        assert_eq!(delivered, 12, "16 - 16/4 relayed, the rest refused");
        assert_eq!(hub.connected("r"), 3, "the receiver was not disconnected");
        assert_eq!(drain(&mut t_rx).len(), 12);
    }
}
