//! Which node serves a member of a room that already has an owner (pure: the nodes, the regions
//! and the randomness are passed in). The owner is the room's **core**; another node serving some
//! of its members is an **edge**, linked to the core by a relay leg (docs/cascade.md).
//!
//! - `off`: every member on the core, as before cascading existed (also every room that is not
//!   on the SFU: a P2P mesh cannot span nodes);
//! - `overflow` (the default): on the core while it takes members (serving, under its member
//!   limit); past that, on the node placement picks for the member's region ([`crate::placement`]),
//!   so a room can outgrow one node;
//! - `nearest`: on the core unless another node that takes members sits in a region nearer the
//!   member than the core's; then on that node (two random choices by load among those nearest).
//!
//! Also the relay leg's own small facts: how many streams each end sends ([`leg_streams`]).

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::node::NodeInfo;
use crate::placement;
use crate::region::Regions;

/// A room's cascading rule (`cascade` in `POST /v1/rooms`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CascadeMode {
    /// Every member on the room's node.
    Off,
    /// Members past the core's member limit go to other nodes.
    #[default]
    Overflow,
    /// Members go to the nearest node to them, core or not.
    Nearest,
}

/// Where a member of a room with core `core` goes, for a client in `region`: `None` for the core
/// itself, else the edge's id. `nodes` are the live nodes (the core among them).
pub fn member_node<'a>(
    mode: CascadeMode,
    core: &NodeInfo,
    region: &str,
    nodes: &'a [NodeInfo],
    regions: &Regions,
    rng: &mut impl Rng,
) -> Option<&'a NodeInfo> {
    let others: Vec<NodeInfo> = nodes.iter().filter(|n| n.id != core.id).cloned().collect();
    let pick = |rng: &mut _| {
        placement::place(region, &others, regions, rng)
            .and_then(|p| nodes.iter().find(|n| n.id == p.id))
    };
    match mode {
        CascadeMode::Off => None,
        CascadeMode::Overflow if core.takes_rooms() => None,
        CascadeMode::Overflow => pick(rng),
        CascadeMode::Nearest => {
            let edge = pick(rng)?;
            let nearer =
                regions.distance(region, &edge.region) < regions.distance(region, &core.region);
            (nearer || !core.takes_rooms()).then_some(edge)
        }
    }
}

/// The streams one end of a relay leg sends: the room's `last_n` speakers, at most what one SRTP
/// context tracks (32).
pub fn leg_streams(last_n: u32) -> usize {
    (last_n as usize).clamp(1, 32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::NodeState;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use crate::fixtures::{node, regions};

    #[test]
    fn members_stay_on_the_core_until_it_is_full_unless_the_room_asks_for_the_nearest_node() {
        let mut rng = StdRng::seed_from_u64(1);
        let r = regions();
        let nodes = vec![
            node("eu-1", "eu", 10),
            node("us-1", "us", 0),
            node("ap-1", "ap", 0),
        ];
        let core = &nodes[0];
        let id = |n: Option<&NodeInfo>| n.map(|n| n.id.clone());
        // Overflow: a member in the US stays on the EU core while it has room ...
        assert_eq!(
            member_node(CascadeMode::Overflow, core, "us", &nodes, &r, &mut rng),
            None
        );
        // ... and goes to the node nearest to it once the core is full.
        let mut full = nodes.clone();
        full[0].load.members = 100;
        assert_eq!(
            id(member_node(
                CascadeMode::Overflow,
                &full[0],
                "us",
                &full,
                &r,
                &mut rng
            )),
            Some("us-1".into())
        );
        assert_eq!(
            id(member_node(
                CascadeMode::Overflow,
                &full[0],
                "eu",
                &full,
                &r,
                &mut rng
            )),
            Some("us-1".into()),
            "the nearest other node to Europe"
        );
        // Nearest: US and Asian members go to their own region's node, European ones to the core.
        for (region, want) in [("us", Some("us-1")), ("ap", Some("ap-1")), ("eu", None)] {
            assert_eq!(
                id(member_node(
                    CascadeMode::Nearest,
                    core,
                    region,
                    &nodes,
                    &r,
                    &mut rng
                )),
                want.map(String::from),
                "{region}"
            );
        }
        // A draining edge takes nobody: the member stays on the core.
        let mut draining = nodes.clone();
        draining[1].state = NodeState::Draining;
        assert_eq!(
            id(member_node(
                CascadeMode::Nearest,
                &draining[0],
                "us",
                &draining,
                &r,
                &mut rng
            )),
            None,
            "us-1 drains; ap-1 is not nearer to the US than eu-1"
        );
        // Off: always the core, full or not; a lone core: the core.
        assert_eq!(
            member_node(CascadeMode::Off, &full[0], "us", &full, &r, &mut rng),
            None
        );
        assert_eq!(
            member_node(
                CascadeMode::Overflow,
                &full[0],
                "us",
                &full[..1],
                &r,
                &mut rng
            ),
            None
        );
        assert_eq!(leg_streams(8), 8);
        assert_eq!(leg_streams(0), 1);
        assert_eq!(leg_streams(99), 32);
    }
}
