//! Which node takes a new room (pure: the nodes, the regions and the randomness are passed in).
//!
//! Candidates are the nodes that take rooms ([`NodeInfo::takes_rooms`]: serving, under their
//! member limit) in the client's region; if there is none, in the nearest region that has one.
//! Among the candidates, two are picked at random and the less loaded one wins ("the power of two
//! choices"): always picking the least loaded node sends every room placed in the same second,
//! before the loads are refreshed, to the same node.

use rand::Rng;

use crate::node::NodeInfo;
use crate::region::Regions;

/// The node for a new room whose first member is in `region`, or `None` when no node takes rooms.
pub fn place<'a>(
    region: &str,
    nodes: &'a [NodeInfo],
    regions: &Regions,
    rng: &mut impl Rng,
) -> Option<&'a NodeInfo> {
    let open: Vec<&NodeInfo> = nodes.iter().filter(|n| n.takes_rooms()).collect();
    let nearest = open
        .iter()
        .map(|n| regions.distance(region, &n.region))
        .fold(f64::INFINITY, f64::min);
    let candidates: Vec<&NodeInfo> = if nearest.is_finite() {
        open.into_iter()
            .filter(|n| regions.distance(region, &n.region) == nearest)
            .collect()
    } else {
        // Nobody in a region we can measure against: any node that takes rooms.
        open
    };
    match candidates.len() {
        0 => None,
        1 => Some(candidates[0]),
        len => {
            let a = rng.random_range(0..len);
            let b = (a + rng.random_range(1..len)) % len;
            let (x, y) = (candidates[a], candidates[b]);
            Some(if load(y) < load(x) { y } else { x })
        }
    }
}

/// What "less loaded" compares: members and rooms placed (a new room counts as one member until
/// its members come), then media sessions.
fn load(n: &NodeInfo) -> (u32, u32) {
    (n.load.members.saturating_add(n.load.rooms), n.load.sessions)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::NodeState;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use crate::fixtures::{node, regions};

    #[test]
    fn a_room_goes_to_the_clients_region() {
        let nodes = [node("e", "eu", 0), node("u", "us", 50), node("a", "ap", 0)];
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..20 {
            assert_eq!(place("us", &nodes, &regions(), &mut rng).unwrap().id, "u");
        }
    }

    #[test]
    fn a_full_or_draining_region_sends_the_room_to_the_nearest_region_with_room() {
        let mut nodes = vec![node("e", "eu", 0), node("u", "us", 100), node("a", "ap", 0)];
        let mut rng = StdRng::seed_from_u64(2);
        // us is full: eu (6,500 km) is nearer to us than ap (15,000 km).
        assert_eq!(place("us", &nodes, &regions(), &mut rng).unwrap().id, "e");
        nodes[0].state = NodeState::Draining;
        assert_eq!(place("us", &nodes, &regions(), &mut rng).unwrap().id, "a");
        nodes[2].state = NodeState::Draining;
        assert!(place("us", &nodes, &regions(), &mut rng).is_none());
        // An unknown region: any node that takes rooms.
        let nodes = [node("e", "eu", 0)];
        assert_eq!(place("mars", &nodes, &regions(), &mut rng).unwrap().id, "e");
    }

    #[test]
    fn two_random_choices_spread_rooms_without_herding() {
        // 300 rooms placed on three nodes of one region whose load is only refreshed every 30
        // placements (as the records are, once a second): the busiest ends within 1.5x of the idlest.
        let mut nodes = vec![node("1", "eu", 0), node("2", "eu", 0), node("3", "eu", 0)];
        for n in &mut nodes {
            n.max_members = 0;
        }
        let mut rng = StdRng::seed_from_u64(3);
        let mut rooms = [0u32; 3];
        for i in 0..300 {
            if i % 30 == 0 {
                for (n, r) in nodes.iter_mut().zip(rooms) {
                    n.load.members = r;
                }
            }
            let id = place("eu", &nodes, &regions(), &mut rng)
                .unwrap()
                .id
                .clone();
            rooms[id.parse::<usize>().unwrap() - 1] += 1;
        }
        let (max, min) = (*rooms.iter().max().unwrap(), *rooms.iter().min().unwrap());
        assert!(f64::from(max) <= 1.5 * f64::from(min), "{rooms:?}");
        // Never the same node twice in one choice: with two candidates, the idler always wins.
        let pair = [node("1", "eu", 5), node("2", "eu", 1)];
        for _ in 0..20 {
            assert_eq!(place("eu", &pair, &regions(), &mut rng).unwrap().id, "2");
        }
    }
}
