//! The cluster's rooms as this node holds them (docs/cluster.md, "Rooms in Redis"): each room is
//! one document in Redis ([`sluice_cluster::room_docs`]); a change reads it, applies one of the
//! pure rules of [`Rooms`] to a view holding that one room, and writes it back by
//! compare-and-set, reading again and re-applying the rule when another node wrote first, so two
//! nodes adding "alice" at once cannot both succeed. Also which rooms this node serves (with the
//! epoch it holds), and the probe that tells a killed owner from a paused one.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sluice_cluster::region::Regions;
use sluice_cluster::{ClusterStore, Ownership, Put};

use crate::error::ApiError;
use crate::mode::MediaMode;
use crate::rooms::{Room, RoomDefaults, Rooms};

/// How often a compare-and-set is tried before the call gives up (each retry means another node
/// changed the same room in between: only a storm of writes to one room gets this far).
const CAS_TRIES: usize = 16;
/// How long a node whose record is still there is given to accept a TCP connection before it is
/// taken for alive (a refused connection means its process is gone).
const PROBE_TIMEOUT: Duration = Duration::from_millis(300);

/// A room as a cluster stores it: the room (its live fields unused) and its participant counter.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct StoredRoom {
    pub(crate) room: Room,
    seq: u64,
}

/// A room as read from the store.
pub(crate) struct Loaded {
    /// The room (if it exists) as a view for the room rules.
    pub(crate) view: Rooms,
    /// Its document's version (`None`: no such room).
    pub(crate) version: Option<u64>,
    /// Its owner and epoch, where placed.
    pub(crate) owner: Option<Ownership>,
    /// What its owner last said of its live state (at most a refresh old).
    pub(crate) live: Option<LiveSummary>,
}

/// A room's live state as its owner writes it for the other nodes with every refresh, so that
/// `GET /v1/rooms/{room}` through any node shows who is connected (at most a second old).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct LiveSummary {
    /// How media flows now.
    pub current_mode: MediaMode,
    /// When the room last switched mode (seconds since the Unix epoch).
    pub last_switch_at: Option<u64>,
    /// Members connected to signaling.
    pub connected: u32,
}

impl LiveSummary {
    /// The live fields of `room`, from its owner's summary.
    pub fn apply(&self, room: &mut Room) {
        room.current_mode = self.current_mode;
        room.last_switch_at = self.last_switch_at;
        room.connected = self.connected;
    }
}

/// What this node knows of the cluster's rooms: the store, the regions, and the rooms it serves
/// with the epoch it holds for each.
pub struct ClusterRooms {
    pub(crate) store: ClusterStore,
    pub(crate) regions: Regions,
    served: Mutex<HashMap<String, u64>>,
    /// Relay legs of cascaded rooms, as a core and as an edge.
    pub(crate) legs: crate::leg_table::LegTable,
    /// What this node saw of the cluster (`/metrics`).
    pub stats: ClusterStats,
}

/// What this node saw of the cluster, for `/metrics`.
#[derive(Debug, Default)]
pub struct ClusterStats {
    /// Whether the last refresh reached Redis.
    pub store_up: AtomicBool,
    /// Live nodes at the last refresh (this one included).
    pub nodes: AtomicUsize,
    /// Rooms this node stopped serving because another node took them.
    pub fenced: AtomicU64,
    /// Rooms this node put back into a Redis that had lost them.
    pub restored: AtomicU64,
    /// Rooms this node moved to another node (drains).
    pub moved: AtomicU64,
}

impl ClusterStats {
    /// Adds one to `counter`.
    pub fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

impl ClusterRooms {
    /// Rooms in `store`, placed by `regions`.
    pub fn new(store: ClusterStore, regions: Regions) -> Self {
        Self {
            store,
            regions,
            served: Mutex::default(),
            legs: Default::default(),
            stats: ClusterStats::default(),
        }
    }

    /// The rooms this node serves, with the epoch it holds for each.
    pub fn served(&self) -> Vec<(String, u64)> {
        self.lock().iter().map(|(r, e)| (r.clone(), *e)).collect()
    }

    /// The epoch this node serves `room` at, if it does.
    pub fn serves(&self, room: &str) -> Option<u64> {
        self.lock().get(room).copied()
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
        self.served.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The room's document as a view for the rules, its version, its owner and its live summary.
    pub(crate) async fn load(
        &self,
        defaults: RoomDefaults,
        name: &str,
    ) -> Result<Loaded, ApiError> {
        let Some(doc) = self.store.room_doc(name).await? else {
            return Ok(Loaded {
                view: Rooms::holding(defaults, None, 0),
                version: None,
                owner: None,
                live: None,
            });
        };
        let stored: StoredRoom = serde_json::from_str(&doc.doc).map_err(|e| {
            ApiError::internal(format!(
                "room {name:?} in the cluster store does not parse: {e}"
            ))
        })?;
        Ok(Loaded {
            view: Rooms::holding(defaults, Some(stored.room), stored.seq),
            version: Some(doc.version),
            owner: doc.owner,
            live: doc.live.and_then(|l| serde_json::from_str(&l).ok()),
        })
    }

    /// Applies `rule` to room `name` and writes the result back (compare-and-set, retried);
    /// returns what the rule returned and the room afterwards (`None`: it does not exist). With
    /// `as_owner`, only while that owner and epoch hold the room (else 409 `fenced`).
    pub(crate) async fn update<T>(
        &self,
        defaults: RoomDefaults,
        name: &str,
        as_owner: Option<&Ownership>,
        mut rule: impl FnMut(&mut Rooms) -> Result<T, ApiError>,
    ) -> Result<(T, Option<Room>), ApiError> {
        for _ in 0..CAS_TRIES {
            let Loaded {
                mut view, version, ..
            } = self.load(defaults, name).await?;
            let out = rule(&mut view)?;
            let seq = view.seq();
            let Ok(room) = view.get(name).cloned() else {
                return Ok((out, None));
            };
            let doc = doc_of(&room, seq)?;
            match self
                .store
                .put_room_doc(name, version, &doc, as_owner)
                .await?
            {
                Put::Written(_) => return Ok((out, Some(room))),
                Put::Stale => {}
                Put::Fenced => {
                    return Err(ApiError::conflict(
                        "fenced",
                        format!("room {name:?} has another owner now: this node's change is void"),
                    ))
                }
            }
        }
        Err(ApiError::conflict(
            "busy_room",
            format!("room {name:?} is being changed by many calls at once: try again"),
        ))
    }
}

impl ClusterRooms {
    /// `room` (this node's copy) as its document: the form [`Self::load`] reads back.
    pub(crate) fn stored_doc(&self, room: &Room) -> Result<String, ApiError> {
        doc_of(room, participant_seq(room))
    }
}

/// `room` as the document Redis stores, its participant ids continuing from `seq`.
fn doc_of(room: &Room, seq: u64) -> Result<String, ApiError> {
    serde_json::to_string(&StoredRoom {
        room: stored_form(room.clone()),
        seq,
    })
    .map_err(|e| ApiError::internal(e.to_string()))
}

/// The participant counter a room's ids reached (`p_{hex counter}_{random}`), for a document put
/// back from a copy that does not carry the counter.
fn participant_seq(room: &Room) -> u64 {
    room.participants
        .iter()
        .filter_map(|p| {
            let hex = p.id.strip_prefix("p_")?.split('_').next()?;
            u64::from_str_radix(hex, 16).ok()
        })
        .max()
        .unwrap_or(0)
}

/// A room without the fields that are live (they are filled in when shown).
fn stored_form(mut room: Room) -> Room {
    room.connected = 0;
    room.node = None;
    room.epoch = None;
    for p in &mut room.participants {
        p.link = None;
    }
    room
}

/// `http(s)://…` → `ws(s)://…`.
pub(crate) fn ws_base(url: &str) -> String {
    url.trim_end_matches('/').replacen("http", "ws", 1)
}

/// Whether the node at `url` is certainly gone: its HTTP port refuses connections. A node that
/// accepts (even one paused, whose kernel still completes the handshake) or does not answer within
/// [`PROBE_TIMEOUT`] is not: its record's expiry decides.
pub(crate) async fn refuses_connections(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or(rest);
    let addr = if authority.contains(':') && !authority.ends_with(']') {
        authority.to_string()
    } else if url.starts_with("https") {
        format!("{authority}:443")
    } else {
        format!("{authority}:80")
    };
    matches!(
        tokio::time::timeout(PROBE_TIMEOUT, tokio::net::TcpStream::connect(addr)).await,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused
    )
}
