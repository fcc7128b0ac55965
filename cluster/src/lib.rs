//! # sluice-cluster
//!
//! Several `sluice serve` nodes in several regions, coordinated through Redis (docs/cluster.md):
//! what a node says about itself, where a new room goes, and who owns a room.
//!
//! - Pure cores, driven by tests without Redis: [`node`] (a node's record: region, URL, state,
//!   load), [`region`] (regions and the distances between them), [`placement`] (which node takes
//!   a new room: the client's region or the nearest one with room, two random choices by load),
//!   [`cascade`] (which node serves a member of a room that has one: its core, or an edge),
//!   [`keys`] (the Redis key names), [`control`] (what one node asks another over pub/sub).
//! - The I/O shell: [`store`] (the Redis commands and the Lua scripts that make registration,
//!   listing, placement and ownership atomic) and [`room_docs`] (rooms as versioned documents,
//!   written only by compare-and-set), with the errors in [`error`].
//!
//! Ownership carries an epoch, a fencing token: a room is claimed with one atomic compare-and-set
//! that succeeds only when the room has no live owner, and bumps the epoch; a node serves a room
//! only while the epoch it holds is the current one, and releases only what it still owns.

#![deny(unsafe_code)]

pub mod cascade;
pub mod control;
pub mod error;
#[cfg(test)]
mod fixtures;
pub mod keys;
pub mod node;
pub mod placement;
pub mod region;
pub mod room_docs;
pub mod store;

pub use cascade::CascadeMode;
pub use control::{ControlMsg, ReplyTo, RoomAction, RosterPeer, RosterUpdate};
pub use error::ClusterError;
pub use node::{Load, NodeInfo, NodeState};
pub use room_docs::{Deleted, Put, RoomDoc};
pub use store::{ClusterStore, ControlInbox, Held, Ownership};
