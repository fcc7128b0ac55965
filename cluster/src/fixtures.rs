//! Test fixtures of the pure cores (`placement`, `cascade`): nodes and three regions with
//! coordinates.

use std::collections::HashMap;

use crate::node::{Load, NodeInfo, NodeState};
use crate::region::{Coordinates, Regions};

/// A serving node `id` in `region` with `members` members, capped at 100.
pub(crate) fn node(id: &str, region: &str, members: u32) -> NodeInfo {
    NodeInfo {
        id: id.into(),
        region: region.into(),
        url: format!("http://{id}"),
        state: NodeState::Serving,
        load: Load {
            members,
            ..Load::default()
        },
        max_members: 100,
    }
}

/// eu (Frankfurt), us (Virginia) and ap (Singapore), by coordinates.
pub(crate) fn regions() -> Regions {
    let places: HashMap<String, Coordinates> =
        [("eu", 50.1, 8.7), ("us", 39.0, -77.5), ("ap", 1.35, 103.8)]
            .into_iter()
            .map(|(n, lat, lon)| (n.to_string(), Coordinates { lat, lon }))
            .collect();
    Regions::new(places, [])
}
