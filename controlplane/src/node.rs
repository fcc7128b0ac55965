//! This node as the cluster sees it: who it is (id, region, URL, member limit), whether it is
//! draining, and the load it reports, with the packet and CPU rates over the time between two
//! records. Pure: the counters and the moment are passed in.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sluice_cluster::{Load, NodeInfo, NodeState};

/// Who this node is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeIdentity {
    /// Stable id (`--node-id`; default kept in the state directory).
    pub id: String,
    /// Region name (`--region`).
    pub region: String,
    /// Base URL clients reach it at (`--node-url`).
    pub url: String,
    /// Most members before placement passes it over (0: no limit).
    pub max_members: u32,
}

/// The running totals a record is made from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Members connected to signaling.
    pub members: u32,
    /// Media sessions.
    pub sessions: u32,
    /// Rooms this node holds (in a cluster, listing replaces it with the cluster's count).
    pub rooms: u32,
    /// Datagrams the workers received since start.
    pub packets_in: u64,
    /// CPU time the process used since start.
    pub cpu: Duration,
}

/// Rates are measured over at least this long; records asked for sooner repeat the last rates.
const MIN_INTERVAL: Duration = Duration::from_millis(500);

/// When the rates were last measured, the totals then, and the rates found.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Instant,
    packets_in: u64,
    cpu: Duration,
    pps: u64,
    cpu_share: f32,
}

/// This node: its identity, its state and the last rates.
#[derive(Debug)]
pub struct NodeSelf {
    identity: NodeIdentity,
    draining: AtomicBool,
    /// A drain is moving rooms now.
    moving: AtomicBool,
    /// The last sample the rates were measured from, and those rates.
    last: Mutex<Option<Sample>>,
}

impl NodeSelf {
    /// This node, serving.
    pub fn new(identity: NodeIdentity) -> Self {
        Self {
            identity,
            draining: AtomicBool::new(false),
            moving: AtomicBool::new(false),
            last: Mutex::new(None),
        }
    }

    /// Who it is.
    pub fn identity(&self) -> &NodeIdentity {
        &self.identity
    }

    /// Takes no new rooms from now on (or takes them again).
    pub fn set_draining(&self, draining: bool) {
        self.draining.store(draining, Ordering::Relaxed);
    }

    /// Whether it takes no new rooms.
    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Marks a drain as moving rooms; false if one already is.
    pub fn start_moving(&self) -> bool {
        !self.moving.swap(true, Ordering::AcqRel)
    }

    /// The drain that was moving rooms is done.
    pub fn done_moving(&self) {
        self.moving.store(false, Ordering::Release);
    }

    /// Its record at `now` from the totals `c`: packets/s and CPU over the time since the sample
    /// before (at least [`MIN_INTERVAL`]; zero for the first).
    pub fn record(&self, c: Counters, now: Instant) -> NodeInfo {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let sample = match *last {
            Some(prev) if now.saturating_duration_since(prev.at) < MIN_INTERVAL => prev,
            Some(prev) => {
                let secs = now.saturating_duration_since(prev.at).as_secs_f64();
                Sample {
                    at: now,
                    packets_in: c.packets_in,
                    cpu: c.cpu,
                    pps: (c.packets_in.saturating_sub(prev.packets_in) as f64 / secs) as u64,
                    cpu_share: (c.cpu.saturating_sub(prev.cpu).as_secs_f64() / secs) as f32,
                }
            }
            None => Sample {
                at: now,
                packets_in: c.packets_in,
                cpu: c.cpu,
                pps: 0,
                cpu_share: 0.0,
            },
        };
        *last = Some(sample);
        let (pps, cpu) = (sample.pps, sample.cpu_share);
        NodeInfo {
            id: self.identity.id.clone(),
            region: self.identity.region.clone(),
            url: self.identity.url.clone(),
            state: if self.draining.load(Ordering::Relaxed) {
                NodeState::Draining
            } else {
                NodeState::Serving
            },
            load: Load {
                members: c.members,
                sessions: c.sessions,
                pps,
                cpu,
                rooms: c.rooms,
            },
            max_members: self.identity.max_members,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> NodeSelf {
        NodeSelf::new(NodeIdentity {
            id: "eu-1".into(),
            region: "eu".into(),
            url: "http://127.0.0.11:7880".into(),
            max_members: 500,
        })
    }

    #[test]
    fn rates_are_measured_between_records_and_the_state_follows_draining() {
        let n = me();
        let t = Instant::now();
        let c = |packets_in, cpu_ms| Counters {
            members: 3,
            sessions: 2,
            rooms: 1,
            packets_in,
            cpu: Duration::from_millis(cpu_ms),
        };
        let first = n.record(c(1000, 100), t);
        assert_eq!((first.load.pps, first.load.cpu), (0, 0.0));
        assert_eq!(first.state, NodeState::Serving);
        assert_eq!(first.load.members, 3);
        let second = n.record(c(3000, 600), t + Duration::from_secs(2));
        assert_eq!(second.load.pps, 1000);
        assert!((second.load.cpu - 0.25).abs() < 1e-6, "{}", second.load.cpu);
        // Asked again too soon: the same rates, not a rate over 10 ms.
        let again = n.record(c(3500, 700), t + Duration::from_millis(2010));
        assert_eq!(again.load.pps, 1000);
        n.set_draining(true);
        assert_eq!(
            n.record(c(3500, 700), t + Duration::from_secs(3)).state,
            NodeState::Draining
        );
    }
}
