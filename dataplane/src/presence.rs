//! Which workers host members of which room: the bookkeeping behind
//! [`TopologyUpdate::RemotePresence`].
//!
//! A worker relays a room's decrypted packets to every other worker that hosts members of that room,
//! and frees the speaker slots of a publisher that left on another worker. So whenever a transport
//! joins or leaves a room on one worker, every *other* worker must learn how many members of the room
//! that worker hosts now (and, on a leave, the SSRC the transport published with). [`Presence`] keeps
//! those counts and computes each announcement as a [`PresenceChange`]; its owner delivers it:
//! [`crate::Dataplane`] over the worker channels, the forwarder tests by applying it to each core.
//!
//! Pure state: no locks, no channels, no clock.

use std::collections::HashMap;

use crate::topology::{RoomId, TopologyUpdate, TransportId};

/// Where one transport is a member.
#[derive(Debug, Clone, Copy)]
struct Member {
    worker: usize,
    room: RoomId,
    publish_ssrc: Option<u32>,
}

/// Room membership counts per worker, and the transport behind each count.
#[derive(Debug, Default)]
pub struct Presence {
    /// transport → where it is a member.
    members: HashMap<TransportId, Member>,
    /// room → members per worker (index = worker; grown on demand).
    rooms: HashMap<RoomId, Vec<u32>>,
}

/// One worker's membership count of a room changed: announce it to every worker but `worker`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PresenceChange {
    /// The room.
    pub room: RoomId,
    /// The worker whose count changed (it needs no announcement itself).
    pub worker: usize,
    /// How many members of `room` that worker hosts now.
    pub members: u32,
    /// The SSRC a leaving member published with, whose speaker slots the others free.
    pub gone_source: Option<u32>,
}

impl PresenceChange {
    /// The update that tells another worker about the change.
    pub fn update(&self) -> TopologyUpdate {
        TopologyUpdate::RemotePresence {
            room: self.room,
            worker: self.worker,
            members: self.members,
            gone_source: self.gone_source,
        }
    }
}

impl Presence {
    /// Records that `transport` (publishing `publish_ssrc`, if any) joined `room` on `worker`.
    ///
    /// A transport is a member of one room at a time: call [`Presence::forget`] first (and announce
    /// what it returns). Should `transport` still be recorded, its old count is released silently so
    /// the counts stay true.
    pub fn join(
        &mut self,
        worker: usize,
        room: RoomId,
        transport: TransportId,
        publish_ssrc: Option<u32>,
    ) -> PresenceChange {
        let _ = self.forget(transport);
        self.members.insert(
            transport,
            Member {
                worker,
                room,
                publish_ssrc,
            },
        );
        let counts = self.rooms.entry(room).or_default();
        if counts.len() <= worker {
            counts.resize(worker + 1, 0);
        }
        counts[worker] += 1;
        PresenceChange {
            room,
            worker,
            members: counts[worker],
            gone_source: None,
        }
    }

    /// Forgets the membership of `transport` (it left, was removed or replaced). `None` when it was
    /// not a member of any room.
    pub fn forget(&mut self, transport: TransportId) -> Option<PresenceChange> {
        let Member {
            worker,
            room,
            publish_ssrc,
        } = self.members.remove(&transport)?;
        let counts = self.rooms.get_mut(&room)?;
        let count = counts.get_mut(worker)?;
        *count = count.saturating_sub(1);
        let members = *count;
        if counts.iter().all(|&c| c == 0) {
            self.rooms.remove(&room);
        }
        Some(PresenceChange {
            room,
            worker,
            members,
            gone_source: publish_ssrc,
        })
    }

    /// Records the SSRC a member publishes with from now on (a learning publisher's SSRC was
    /// confirmed). The other workers must free the slots its previous SSRC held: the change to
    /// announce, with the same count and the old SSRC as `gone_source`; `None` when `transport` is no
    /// member or its SSRC did not change.
    pub fn set_publish_ssrc(
        &mut self,
        transport: TransportId,
        ssrc: u32,
    ) -> Option<PresenceChange> {
        let m = self.members.get_mut(&transport)?;
        let old = m.publish_ssrc.replace(ssrc);
        if old == Some(ssrc) {
            return None;
        }
        let (worker, room) = (m.worker, m.room);
        Some(PresenceChange {
            room,
            worker,
            members: self.members(room, worker),
            gone_source: old,
        })
    }

    /// Forgets a closed room and every membership of it (every worker is told to close it anyway).
    pub fn close_room(&mut self, room: RoomId) {
        self.rooms.remove(&room);
        self.members.retain(|_, m| m.room != room);
    }

    /// How many members of `room` worker `worker` hosts.
    pub fn members(&self, room: RoomId, worker: usize) -> u32 {
        self.rooms
            .get(&room)
            .and_then(|c| c.get(worker))
            .copied()
            .unwrap_or(0)
    }

    /// The worker and room `transport` is a member of.
    pub fn membership(&self, transport: TransportId) -> Option<(usize, RoomId)> {
        self.members.get(&transport).map(|m| (m.worker, m.room))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(room: RoomId, worker: usize, members: u32, gone: Option<u32>) -> PresenceChange {
        PresenceChange {
            room,
            worker,
            members,
            gone_source: gone,
        }
    }

    #[test]
    fn joins_count_members_per_worker_and_room() {
        let mut p = Presence::default();
        assert_eq!(p.join(0, 7, 1, Some(0xA)), change(7, 0, 1, None));
        assert_eq!(p.join(0, 7, 2, None), change(7, 0, 2, None));
        assert_eq!(p.join(3, 7, 3, None), change(7, 3, 1, None));
        assert_eq!(p.join(1, 8, 4, None), change(8, 1, 1, None));
        assert_eq!(
            (p.members(7, 0), p.members(7, 3), p.members(7, 1)),
            (2, 1, 0)
        );
        assert_eq!(p.members(8, 1), 1);
        assert_eq!(p.membership(3), Some((3, 7)));
        assert_eq!(p.membership(9), None);
    }

    #[test]
    fn forgetting_a_member_announces_the_new_count_and_its_source() {
        let mut p = Presence::default();
        p.join(0, 7, 1, Some(0xA));
        p.join(0, 7, 2, None);
        assert_eq!(p.forget(1), Some(change(7, 0, 1, Some(0xA))));
        assert_eq!(p.forget(1), None, "forgotten once");
        assert_eq!(p.forget(2), Some(change(7, 0, 0, None)));
        assert_eq!(p.members(7, 0), 0);
        assert_eq!(p.forget(99), None, "never a member");
    }

    #[test]
    fn the_update_carries_the_change() {
        let u = change(7, 2, 3, Some(0xB)).update();
        assert!(matches!(
            u,
            TopologyUpdate::RemotePresence {
                room: 7,
                worker: 2,
                members: 3,
                gone_source: Some(0xB),
            }
        ));
    }

    #[test]
    fn a_closed_room_forgets_its_members_only() {
        let mut p = Presence::default();
        p.join(0, 7, 1, None);
        p.join(1, 7, 2, None);
        p.join(1, 8, 3, None);
        p.close_room(7);
        assert_eq!(p.forget(1), None);
        assert_eq!(p.forget(2), None);
        assert_eq!(p.members(7, 1), 0);
        assert_eq!(p.forget(3), Some(change(8, 1, 0, None)));
    }

    #[test]
    fn a_rejoin_without_forget_keeps_the_counts_true() {
        let mut p = Presence::default();
        p.join(0, 7, 1, None);
        assert_eq!(p.join(1, 7, 1, None), change(7, 1, 1, None));
        assert_eq!(p.members(7, 0), 0, "the old membership was released");
        assert_eq!(p.forget(1), Some(change(7, 1, 0, None)));
    }
}
