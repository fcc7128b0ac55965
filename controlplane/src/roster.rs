//! Who is connected on the *other* nodes of a cascaded room (docs/cascade.md, "One roster"):
//! pure state that the hub keeps per room and applies each node's changes to, so that `welcome`
//! lists, and `peer_joined`, `peer_left` and `peer_muted` announce, the members of every node, not
//! only this one's.
//!
//! Changes travel as [`sluice_cluster::RosterUpdate`]s over the nodes' control channels, in a star
//! like the media: an edge tells its core, the core tells its edges (passing each edge's on to the
//! others). Each entry remembers the node that announced it, and a change only touches entries of
//! the node it names, so a late `left` from a node a member has moved away from cannot remove it.
//! No I/O here: [`crate::roster_link`] carries the updates.

use std::collections::HashMap;

use sluice_cluster::{RosterPeer, RosterUpdate};

use crate::messages::{PeerInfo, ServerMsg};
use crate::rooms::Role;

/// One member of another node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteMember {
    /// As signaling shows it.
    pub info: PeerInfo,
    /// The node it is connected to.
    pub node: String,
}

/// The members of one room connected on other nodes.
#[derive(Debug, Clone, Default)]
pub struct RemoteRoster {
    members: HashMap<String, RemoteMember>,
}

impl RemoteRoster {
    /// The members, in no particular order.
    pub fn members(&self) -> impl Iterator<Item = &RemoteMember> {
        self.members.values()
    }

    /// Forgets `id` without a word (it connected here: this node's own entry is what counts).
    pub fn forget(&mut self, id: &str) {
        self.members.remove(id);
    }

    /// Whether nobody is known on other nodes.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Applies `update`, skipping members for whom `is_local` holds (connected here); returns
    /// what this node's members are to be told.
    pub fn apply(
        &mut self,
        update: RosterUpdate,
        is_local: impl Fn(&str) -> bool,
    ) -> Vec<ServerMsg> {
        let mut told = Vec::new();
        match update {
            RosterUpdate::Joined { peer } => self.upsert(peer, &is_local, &mut told),
            RosterUpdate::Left { node, id } => self.remove_of(&node, &id, &mut told),
            RosterUpdate::Muted { node, id, muted } => {
                if let Some(m) = self.members.get_mut(&id) {
                    if m.node == node && m.info.muted != muted {
                        m.info.muted = muted;
                        told.push(ServerMsg::PeerMuted {
                            participant: id,
                            muted,
                        });
                    }
                }
            }
            RosterUpdate::Node { node, peers } => {
                let gone: Vec<String> = self
                    .members
                    .iter()
                    .filter(|(id, m)| m.node == node && !peers.iter().any(|p| &p.id == *id))
                    .map(|(id, _)| id.clone())
                    .collect();
                for id in gone {
                    self.remove_of(&node, &id, &mut told);
                }
                for peer in peers.into_iter().filter(|p| p.node == node) {
                    self.upsert(peer, &is_local, &mut told);
                }
            }
            RosterUpdate::Full { peers } => {
                let gone: Vec<(String, String)> = self
                    .members
                    .iter()
                    .filter(|(id, _)| !peers.iter().any(|p| &p.id == *id))
                    .map(|(id, m)| (m.node.clone(), id.clone()))
                    .collect();
                for (node, id) in gone {
                    self.remove_of(&node, &id, &mut told);
                }
                for peer in peers {
                    self.upsert(peer, &is_local, &mut told);
                }
            }
        }
        told
    }

    fn upsert(
        &mut self,
        peer: RosterPeer,
        is_local: &impl Fn(&str) -> bool,
        told: &mut Vec<ServerMsg>,
    ) {
        if is_local(&peer.id) {
            return;
        }
        let member = RemoteMember {
            info: PeerInfo {
                id: peer.id.clone(),
                name: peer.name,
                role: parse_role(&peer.role),
                muted: peer.muted,
            },
            node: peer.node,
        };
        if self.members.get(&peer.id) == Some(&member) {
            return;
        }
        told.push(ServerMsg::PeerJoined {
            participant: member.info.clone(),
        });
        self.members.insert(peer.id, member);
    }

    fn remove_of(&mut self, node: &str, id: &str, told: &mut Vec<ServerMsg>) {
        if self.members.get(id).is_some_and(|m| m.node == node) {
            self.members.remove(id);
            told.push(ServerMsg::PeerLeft {
                participant: id.to_string(),
            });
        }
    }
}

/// Node `node` has nobody connected any more (it went, or stopped serving the room).
pub fn nobody_on(node: &str) -> RosterUpdate {
    RosterUpdate::Node {
        node: node.to_string(),
        peers: Vec::new(),
    }
}

/// A member of this node, `node`, as the other nodes are told of it.
pub fn to_peer(info: &PeerInfo, node: &str) -> RosterPeer {
    RosterPeer {
        id: info.id.clone(),
        name: info.name.clone(),
        role: role_name(info.role).to_string(),
        muted: info.muted,
        node: node.to_string(),
    }
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Speaker => "speaker",
        Role::Listener => "listener",
    }
}

fn parse_role(role: &str) -> Role {
    if role == "listener" {
        Role::Listener
    } else {
        Role::Speaker
    }
}

/// A change to this node's own members of a room, as the hub reports it for the other nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalChange {
    /// Connected (or connected again).
    Joined(PeerInfo),
    /// Left (closed, kicked, or the room closed here).
    Left(String),
    /// Muted or unmuted.
    Muted {
        /// Who.
        id: String,
        /// Muted now or not.
        muted: bool,
    },
}

impl LocalChange {
    /// The update the other nodes get, this node being `node`.
    pub fn to_update(&self, node: &str) -> RosterUpdate {
        match self {
            LocalChange::Joined(info) => RosterUpdate::Joined {
                peer: to_peer(info, node),
            },
            LocalChange::Left(id) => RosterUpdate::Left {
                node: node.to_string(),
                id: id.clone(),
            },
            LocalChange::Muted { id, muted } => RosterUpdate::Muted {
                node: node.to_string(),
                id: id.clone(),
                muted: *muted,
            },
        }
    }
}

/// Work for [`crate::roster_link`], in the order it is to be done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RosterJob {
    /// Tell the room's other nodes of a change to this node's members.
    Local {
        /// The room.
        room: String,
        /// The change.
        change: LocalChange,
    },
    /// As the room's core: pass a change another node (`from`) sent on to the other edges.
    PassOn {
        /// The room.
        room: String,
        /// The node it came from.
        from: String,
        /// The change.
        update: RosterUpdate,
    },
    /// Send node `to` everyone connected here (an edge that just linked to its core).
    SendMine {
        /// The room.
        room: String,
        /// The core.
        to: String,
    },
    /// As the room's core: send edge `to` everyone connected to the room elsewhere (it was just linked).
    SendFull {
        /// The room.
        room: String,
        /// The edge.
        to: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(id: &str, node: &str) -> RosterPeer {
        RosterPeer {
            id: id.into(),
            name: format!("{id}-name"),
            role: "listener".into(),
            muted: false,
            node: node.into(),
        }
    }

    fn ids(r: &RemoteRoster) -> Vec<String> {
        let mut v: Vec<String> = r.members().map(|m| m.info.id.clone()).collect();
        v.sort();
        v
    }

    fn kinds(told: &[ServerMsg]) -> Vec<String> {
        told.iter()
            .map(|m| match m {
                ServerMsg::PeerJoined { participant } => format!("joined {}", participant.id),
                ServerMsg::PeerLeft { participant } => format!("left {participant}"),
                ServerMsg::PeerMuted { participant, muted } => {
                    format!("muted {participant} {muted}")
                }
                other => format!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn joins_leaves_and_mutes_of_other_nodes_are_announced_once() {
        let mut r = RemoteRoster::default();
        let none = |_: &str| false;
        let told = r.apply(
            RosterUpdate::Joined {
                peer: peer("a", "n2"),
            },
            none,
        );
        assert_eq!(kinds(&told), ["joined a"]);
        assert_eq!(
            r.members().next().map(|m| m.info.role),
            Some(Role::Listener)
        );
        assert!(
            r.apply(
                RosterUpdate::Joined {
                    peer: peer("a", "n2")
                },
                none
            )
            .is_empty(),
            "the same news twice is told once"
        );
        let mute = |muted| RosterUpdate::Muted {
            node: "n2".into(),
            id: "a".into(),
            muted,
        };
        assert_eq!(kinds(&r.apply(mute(true), none)), ["muted a true"]);
        assert!(r.apply(mute(true), none).is_empty());
        let left = RosterUpdate::Left {
            node: "n2".into(),
            id: "a".into(),
        };
        assert_eq!(kinds(&r.apply(left.clone(), none)), ["left a"]);
        assert!(r.apply(left, none).is_empty(), "nobody left twice");
        assert!(r.is_empty());
    }

    #[test]
    fn a_late_left_from_the_node_a_member_moved_away_from_does_not_remove_it() {
        let mut r = RemoteRoster::default();
        let none = |_: &str| false;
        r.apply(
            RosterUpdate::Joined {
                peer: peer("a", "n2"),
            },
            none,
        );
        // It failed over to n3, which announced it before n2's goodbye arrived.
        let told = r.apply(
            RosterUpdate::Joined {
                peer: peer("a", "n3"),
            },
            none,
        );
        assert_eq!(kinds(&told), ["joined a"], "its new node is news");
        let late = RosterUpdate::Left {
            node: "n2".into(),
            id: "a".into(),
        };
        assert!(r.apply(late, none).is_empty());
        assert_eq!(ids(&r), ["a"]);
        let muted_by_old = RosterUpdate::Muted {
            node: "n2".into(),
            id: "a".into(),
            muted: true,
        };
        assert!(r.apply(muted_by_old, none).is_empty());
    }

    #[test]
    fn members_connected_here_are_never_remote() {
        let mut r = RemoteRoster::default();
        let told = r.apply(
            RosterUpdate::Joined {
                peer: peer("me", "n2"),
            },
            |id| id == "me",
        );
        assert!(told.is_empty());
        assert!(r.is_empty());
        r.apply(
            RosterUpdate::Joined {
                peer: peer("b", "n2"),
            },
            |_| false,
        );
        r.forget("b");
        assert!(
            r.is_empty(),
            "a member that connects here is forgotten as a remote one"
        );
    }

    #[test]
    fn a_node_snapshot_replaces_that_node_only_and_a_full_one_replaces_all() {
        let mut r = RemoteRoster::default();
        let none = |_: &str| false;
        for (id, node) in [("a", "n2"), ("b", "n2"), ("c", "n3")] {
            r.apply(
                RosterUpdate::Joined {
                    peer: peer(id, node),
                },
                none,
            );
        }
        let told = r.apply(
            RosterUpdate::Node {
                node: "n2".into(),
                peers: vec![peer("b", "n2"), peer("d", "n2"), peer("x", "n9")],
            },
            none,
        );
        assert_eq!(
            kinds(&told),
            ["left a", "joined d"],
            "x names another node: ignored"
        );
        assert_eq!(ids(&r), ["b", "c", "d"]);
        // An edge that went: its node, with nobody.
        let told = r.apply(
            RosterUpdate::Node {
                node: "n3".into(),
                peers: vec![],
            },
            none,
        );
        assert_eq!(kinds(&told), ["left c"]);
        // A new core's view: everyone elsewhere.
        let mut told = kinds(&r.apply(
            RosterUpdate::Full {
                peers: vec![peer("d", "n2"), peer("e", "n4")],
            },
            none,
        ));
        told.sort();
        assert_eq!(told, ["joined e", "left b"]);
        assert_eq!(ids(&r), ["d", "e"]);
    }

    #[test]
    fn a_local_change_names_this_node() {
        let info = PeerInfo {
            id: "a".into(),
            name: "Ann".into(),
            role: Role::Speaker,
            muted: true,
        };
        assert_eq!(
            LocalChange::Joined(info).to_update("n1"),
            RosterUpdate::Joined {
                peer: RosterPeer {
                    id: "a".into(),
                    name: "Ann".into(),
                    role: "speaker".into(),
                    muted: true,
                    node: "n1".into(),
                }
            }
        );
        assert_eq!(
            LocalChange::Left("a".into()).to_update("n1"),
            RosterUpdate::Left {
                node: "n1".into(),
                id: "a".into()
            }
        );
    }
}
