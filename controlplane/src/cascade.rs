//! Cascaded rooms in a cluster (docs/cascade.md): a room's owner is its **core**; another node
//! serving some of its members (placed there by [`sluice_cluster::cascade`]) is an **edge**,
//! linked to the core by one relay leg per (room, edge): plain SRTP between the two nodes, no
//! ICE or DTLS, keys minted by the core and handed over through Redis.
//!
//! - An edge links when it first serves a member of the room (`AppState::link_to_core`): it plans
//!   its end (a worker, its address, one stream per `last_n` speaker), asks the core over its
//!   control channel (`RoomAction::Link`), reads the core's offer from the store (the core's
//!   address, its streams, both keys) and installs its end.
//! - The core (`AppState::open_leg`) answers only while it serves the room at the epoch the edge
//!   names, and replaces an older leg to the same edge.
//! - Every refresh (`AppState::cascade_upkeep`): a core drops legs to edges that are gone; an
//!   edge whose core changed (a failover: epoch + 1) links to the new one; each node writes who
//!   publishes with which SSRC in its cascaded rooms and reads the others', so `slots` and
//!   `active_speakers` name real participants on every node.
//!
//! The forwarding itself (speakers only, audio-level gated, one copy per edge) is the dataplane's
//! (`sluice_dataplane::topology::RelayLeg`).

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sluice_cluster::{cascade, NodeInfo, Ownership, RoomAction};
use sluice_dataplane::srtp::{SrtpKeys, SrtpProfile};
use sluice_dataplane::topology::{TransportId, TransportKeys};

use crate::error::ApiError;
use crate::leg_table::CoreLink;
use crate::roster::{nobody_on, RosterJob};
use crate::state::AppState;

/// The SRTP profile of every leg (AES-GCM: the cheapest per packet here, docs/dataplane.md).
const LEG_PROFILE: SrtpProfile = SrtpProfile::AeadAes128Gcm;
/// How long a core's offer stays in the store (an edge reads it within milliseconds).
const OFFER_TTL: Duration = Duration::from_secs(60);
/// How long a node's source names live unless written again (it writes them every second).
const SOURCES_TTL: Duration = Duration::from_secs(5);

/// What a core offers an edge for their leg, as the store keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct LegOffer {
    core: String,
    epoch: u64,
    /// Where the core's end receives.
    addr: SocketAddr,
    /// The streams the core sends.
    ssrcs: Vec<u32>,
    /// Master key and salt (hex) of what the core sends, and of what the edge sends.
    core_key: String,
    edge_key: String,
}

/// A fresh master key and salt for [`LEG_PROFILE`], and its hex form for the offer.
fn mint_key() -> Result<(SrtpKeys, String), ApiError> {
    let mut bytes = vec![0u8; LEG_PROFILE.master_key_len() + LEG_PROFILE.master_salt_len()];
    rand::fill(&mut bytes[..]);
    let hex = hex::encode(&bytes);
    Ok((key_from_hex(&hex)?, hex))
}

fn key_from_hex(hex_key: &str) -> Result<SrtpKeys, ApiError> {
    let bytes = hex::decode(hex_key).map_err(|e| ApiError::internal(format!("a leg key: {e}")))?;
    let n = LEG_PROFILE.master_key_len();
    if bytes.len() != n + LEG_PROFILE.master_salt_len() {
        return Err(ApiError::internal("a leg key of the wrong length"));
    }
    SrtpKeys::new(LEG_PROFILE, &bytes[..n], &bytes[n..])
        .map_err(|e| ApiError::internal(format!("a leg key: {e}")))
}

fn no_media() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        "no_media",
        "this node runs without a dataplane",
    )
}

impl AppState {
    /// As the core of `room` at `epoch`: opens (or replaces) the leg to `edge`, whose end
    /// receives at `addr` and sends on `ssrcs`, and puts the offer in the store.
    pub(crate) async fn open_leg(
        &self,
        room: &str,
        edge: &str,
        epoch: u64,
        addr: &str,
        ssrcs: Vec<u32>,
    ) -> Result<(), ApiError> {
        let c = self
            .cluster_rooms
            .as_deref()
            .ok_or_else(|| ApiError::internal("a leg asked of a single node"))?;
        if c.serves(room).is_none() {
            // The owner has no member of its own connected yet (all may be on edges): it starts
            // serving the room now, if it is its owner.
            self.serve_here(room).await?;
        }
        if c.serves(room) != Some(epoch) {
            return Err(ApiError::conflict(
                "not_core",
                format!("this node does not serve room {room:?} at epoch {epoch}"),
            ));
        }
        let media = self.media.as_ref().ok_or_else(no_media)?;
        let remote: SocketAddr = addr
            .parse()
            .map_err(|_| ApiError::bad_request("bad_address", format!("{addr:?}")))?;
        if ssrcs.len() > 32 {
            return Err(ApiError::bad_request("too_many_streams", "at most 32"));
        }
        let last_n = self.rooms().get(room)?.last_n;
        let end = media
            .plan_leg(cascade::leg_streams(last_n))
            .map_err(|e| ApiError::internal(e.to_string()))?;
        let (core_keys, core_key) = mint_key()?;
        let (edge_keys, edge_key) = mint_key()?;
        if let Some(old) = c.legs.take_edge(room, edge) {
            media.remove_leg(old);
        }
        media
            .add_leg(
                room,
                &end,
                remote,
                ssrcs,
                TransportKeys {
                    inbound: edge_keys,
                    outbound: core_keys,
                },
            )
            .map_err(|e| ApiError::internal(e.to_string()))?;
        let offer = LegOffer {
            core: self.node.identity().id.clone(),
            epoch,
            addr: end.addr,
            ssrcs: end.ssrcs.clone(),
            core_key,
            edge_key,
        };
        let json = serde_json::to_string(&offer).map_err(|e| ApiError::internal(e.to_string()))?;
        if let Err(e) = c.store.put_leg(room, edge, &json, OFFER_TTL).await {
            media.remove_leg(end.transport);
            return Err(e.into());
        }
        c.legs
            .lock()
            .to_edges
            .insert((room.to_string(), edge.to_string()), end.transport);
        // The edge learns who is connected elsewhere (docs/cascade.md, "One roster").
        self.hub.queue_roster(RosterJob::SendFull {
            room: room.to_string(),
            to: edge.to_string(),
        });
        tracing::info!(%room, %edge, epoch, transport = end.transport, "relay leg opened to an edge");
        Ok(())
    }

    /// As the core of `room`: drops the leg to `edge` (gone, or serving nobody there any more).
    pub(crate) async fn close_leg(&self, room: &str, edge: &str) {
        let (Some(c), Some(media)) = (self.cluster_rooms.as_deref(), self.media.as_ref()) else {
            return;
        };
        if let Some(transport) = c.legs.take_edge(room, edge) {
            media.remove_leg(transport);
            // Its members are gone from the room, here and on the other edges.
            let nobody = nobody_on(edge);
            self.hub.apply_remote(room, nobody.clone());
            self.hub.queue_roster(RosterJob::PassOn {
                room: room.to_string(),
                from: edge.to_string(),
                update: nobody,
            });
        }
        let _ = c.store.delete_leg(room, edge).await;
    }

    /// As an edge of `room`, whose core is `owner`: links to it unless already linked at that
    /// epoch (then nothing happens).
    pub(crate) async fn link_to_core(&self, room: &str, owner: &Ownership) -> Result<(), ApiError> {
        let c = self
            .cluster_rooms
            .as_deref()
            .ok_or_else(|| ApiError::internal("a leg on a single node"))?;
        c.legs.lock().edge_of.insert(room.to_string());
        let _one_at_a_time = c.legs.linking.lock().await;
        let current = c.legs.lock().to_core.get(room).cloned();
        if current
            .as_ref()
            .is_some_and(|l| l.core == owner.node && l.epoch == owner.epoch)
        {
            return Ok(());
        }
        let media = self.media.as_ref().ok_or_else(no_media)?;
        if let Some(old) = current {
            media.remove_leg(old.transport);
            c.legs.lock().to_core.remove(room);
        }
        let last_n = self.rooms().get(room)?.last_n;
        let end = media
            .plan_leg(cascade::leg_streams(last_n))
            .map_err(|e| ApiError::internal(e.to_string()))?;
        let me = self.node.identity().id.clone();
        self.calls
            .ask(
                &c.store,
                &me,
                &owner.node,
                RoomAction::Link {
                    room: room.to_string(),
                    edge: me.clone(),
                    epoch: owner.epoch,
                    addr: end.addr.to_string(),
                    ssrcs: end.ssrcs.clone(),
                },
            )
            .await?;
        let json = c.store.leg(room, &me).await?.ok_or_else(|| {
            ApiError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "cluster_unavailable",
                "the room's core said yes but its offer is not in the store",
            )
        })?;
        let offer: LegOffer =
            serde_json::from_str(&json).map_err(|e| ApiError::internal(e.to_string()))?;
        if offer.core != owner.node || offer.epoch != owner.epoch {
            return Err(ApiError::conflict(
                "not_core",
                "the leg offer in the store is from another core",
            ));
        }
        media
            .add_leg(
                room,
                &end,
                offer.addr,
                offer.ssrcs,
                TransportKeys {
                    inbound: key_from_hex(&offer.core_key)?,
                    outbound: key_from_hex(&offer.edge_key)?,
                },
            )
            .map_err(|e| ApiError::internal(e.to_string()))?;
        c.legs.lock().to_core.insert(
            room.to_string(),
            CoreLink {
                core: owner.node.clone(),
                epoch: owner.epoch,
                transport: end.transport,
            },
        );
        // The core learns who is connected here.
        self.hub.queue_roster(RosterJob::SendMine {
            room: room.to_string(),
            to: owner.node.clone(),
        });
        tracing::info!(%room, core = %owner.node, epoch = owner.epoch, transport = end.transport, "linked to the room's core");
        Ok(())
    }

    /// Once a refresh, with the live `nodes`: drops legs to edges that went, re-links edges whose
    /// core changed, and swaps source names with the other nodes of each cascaded room.
    pub(crate) async fn cascade_upkeep(&self, nodes: &[NodeInfo]) {
        let (Some(c), Some(media)) = (self.cluster_rooms.as_deref(), self.media.as_ref()) else {
            return;
        };
        let me = self.node.identity().id.clone();
        let live = |id: &str| nodes.iter().any(|n| n.id == id);
        // As a core: legs to edges that are gone, or of rooms no longer served here.
        let gone: Vec<((String, String), TransportId)> = c
            .legs
            .lock()
            .to_edges
            .iter()
            .filter(|((room, edge), _)| !live(edge) || c.serves(room).is_none())
            .map(|(k, &t)| (k.clone(), t))
            .collect();
        for ((room, edge), _) in gone {
            self.close_leg(&room, &edge).await;
            tracing::info!(%room, %edge, "relay leg to an edge dropped: the edge is gone");
        }
        // As an edge: follow the core; a room with nobody here any more lets go of its leg.
        for room in c.legs.edge_rooms() {
            if self.hub.connected(&room) == 0
                && !self.rooms().get(&room).is_ok_and(|r| {
                    r.participants
                        .iter()
                        .any(|p| p.node.as_deref() == Some(me.as_str()))
                })
            {
                let link = {
                    let mut legs = c.legs.lock();
                    legs.edge_of.remove(&room);
                    legs.to_core.remove(&room)
                };
                self.hub.forget_remote(&room);
                if let Some(l) = link {
                    media.remove_leg(l.transport);
                    tracing::info!(%room, core = %l.core, "nobody here any more: the leg to the room's core let go");
                    // The core drops its end (best effort: else it does when this node goes).
                    let unlink = RoomAction::Unlink {
                        room: room.clone(),
                        edge: me.clone(),
                    };
                    if let Err(e) = self.calls.ask(&c.store, &me, &l.core, unlink).await {
                        tracing::debug!(%room, error = %e.message, "the core did not take the unlink");
                    }
                }
                continue;
            }
            match c.store.owner(&room).await {
                Ok(Some(owner)) if live(&owner.node) && owner.node != me => {
                    if let Err(e) = self.link_to_core(&room, &owner).await {
                        tracing::warn!(%room, core = %owner.node, error = %e.message, "could not link to the room's core");
                    }
                }
                Ok(Some(owner)) if owner.node == me => {
                    // This node took the room over (its core failed): it is the core now.
                    let link = {
                        let mut legs = c.legs.lock();
                        legs.edge_of.remove(&room);
                        legs.to_core.remove(&room)
                    };
                    if let Some(l) = link {
                        media.remove_leg(l.transport);
                        // The old core's members are gone with it.
                        self.hub.apply_remote(&room, nobody_on(&l.core));
                        tracing::info!(%room, "this edge is the room's core now: its leg to the old core dropped");
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::debug!(%room, error = %e, "the room's owner is unknown now"),
            }
        }
        // Source names, both ways, for every cascaded room here.
        let mut rooms: Vec<String> = c.legs.edge_rooms();
        rooms.extend(c.legs.lock().to_edges.keys().map(|(r, _)| r.clone()));
        rooms.sort();
        rooms.dedup();
        let others: Vec<String> = nodes
            .iter()
            .map(|n| n.id.clone())
            .filter(|n| *n != me)
            .collect();
        for room in rooms {
            let mine = media.local_publishers(&room);
            if let Err(e) = c.store.put_sources(&room, &me, &mine, SOURCES_TTL).await {
                tracing::debug!(%room, error = %e, "could not write the room's source names");
                continue;
            }
            match c.store.sources(&room, &others).await {
                Ok(theirs) => media.set_remote_publishers(&room, &theirs),
                Err(e) => {
                    tracing::debug!(%room, error = %e, "could not read the room's source names")
                }
            }
        }
    }
}
