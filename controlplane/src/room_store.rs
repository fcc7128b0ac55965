//! The rooms every REST call and signaling socket sees, on one node or in a cluster
//! (docs/cluster.md, "Rooms in Redis").
//!
//! Without `--redis` they are this node's memory ([`Rooms`] under the state's lock), exactly as
//! always. In a cluster each room is one document in Redis, changed by compare-and-set
//! ([`crate::cluster_rooms`]), so any node answers every call for every room. The node that serves a room
//! (its owner, placed at the first join) keeps a copy in memory for its members' sockets, media and
//! housekeeping, loaded from the document whenever a member connects.

use std::time::SystemTime;

use sluice_cluster::cascade::{self, CascadeMode};
use sluice_cluster::{Deleted, NodeInfo, Ownership, RoomAction};

use crate::access::RoomGuests;
use crate::cluster_rooms::{refuses_connections, ws_base, ClusterRooms, LiveSummary, StoredRoom};
use crate::error::ApiError;
use crate::mode::RoomMode;
use crate::rooms::{unknown_room, CreateParticipant, CreateRoom, Participant, Room};
use crate::state::AppState;

/// Which node does control actions on a room.
enum Holder {
    /// This one.
    Here,
    /// Another live node (its id): the room's owner, or the edge that serves the member an
    /// action is about.
    Node(String),
    /// None: the store is changed directly.
    Nobody,
}

/// Where a member's signaling socket goes.
pub enum Route {
    /// This node serves the room (at `epoch`); `entry_urls` are the other live nodes.
    Here {
        /// The epoch this node holds.
        epoch: u64,
        /// Base URLs of the other live nodes.
        entry_urls: Vec<String>,
    },
    /// Another node serves it: the base WebSocket URL to send the client to.
    Elsewhere(String),
}

impl AppState {
    fn cluster_rooms(&self) -> Option<&ClusterRooms> {
        self.cluster_rooms.as_deref()
    }

    fn room_defaults(&self) -> crate::rooms::RoomDefaults {
        self.rooms().defaults()
    }

    /// The client's region as the load balancer's header (`--region-header`) says, if it does.
    pub fn region_from(&self, headers: &axum::http::HeaderMap) -> Option<String> {
        let v = headers
            .get(self.region_header.as_ref()?)?
            .to_str()
            .ok()?
            .trim();
        (!v.is_empty() && v.len() <= 64).then(|| v.to_string())
    }

    /// Creates a room (409 `duplicate_name` if it exists anywhere in the cluster).
    pub async fn create_room(&self, req: CreateRoom) -> Result<Room, ApiError> {
        let now = SystemTime::now();
        let Some(c) = self.cluster_rooms() else {
            return self.rooms().create(req, now);
        };
        let name = req.name.clone();
        crate::rooms::validate_room_name(&name)?;
        let (room, _) = c
            .update(self.room_defaults(), &name, None, |view| {
                view.create(req.clone(), now)
            })
            .await?;
        Ok(room)
    }

    /// One room as the API shows it: with its live state where this node serves it (else, in a
    /// cluster, as its owner last wrote it: at most a refresh old), and its owner and epoch.
    pub async fn room(&self, name: &str) -> Result<Room, ApiError> {
        let Some(c) = self.cluster_rooms() else {
            let room = self.rooms().get(name)?.clone();
            return Ok(self.with_live(room));
        };
        let loaded = c.load(self.room_defaults(), name).await?;
        let mut room = loaded.view.get(name)?.clone();
        if let Some(o) = loaded.owner {
            room.node = Some(o.node);
            room.epoch = Some(o.epoch);
        }
        if c.serves(name).is_some() {
            return Ok(self.with_live(room));
        }
        if let Some(live) = loaded.live {
            live.apply(&mut room);
        }
        Ok(room)
    }

    /// Every room (by name).
    pub async fn list_rooms(&self) -> Result<Vec<Room>, ApiError> {
        let Some(c) = self.cluster_rooms() else {
            let rooms = self.rooms().list();
            return Ok(rooms.into_iter().map(|r| self.with_live(r)).collect());
        };
        let mut rooms = Vec::new();
        for (doc, live) in c.store.room_docs().await? {
            match serde_json::from_str::<StoredRoom>(&doc) {
                Ok(stored) if c.serves(&stored.room.name).is_some() => {
                    rooms.push(self.with_live(stored.room))
                }
                Ok(mut stored) => {
                    if let Some(live) =
                        live.and_then(|l| serde_json::from_str::<LiveSummary>(&l).ok())
                    {
                        live.apply(&mut stored.room);
                    }
                    rooms.push(stored.room)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "skipping a room document that does not parse")
                }
            }
        }
        rooms.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(rooms)
    }

    /// Whether and how guests may join `room` (`None`: no such room).
    pub async fn room_guests(&self, room: &str) -> Result<Option<RoomGuests>, ApiError> {
        let guests = |r: &Room| RoomGuests {
            guest_join: r.guest_join,
            join_code: r.join_code.clone(),
        };
        let Some(c) = self.cluster_rooms() else {
            return Ok(self.rooms().get(room).ok().map(guests));
        };
        let loaded = c.load(self.room_defaults(), room).await?;
        Ok(loaded.view.get(room).ok().map(guests))
    }

    /// Adds a participant to `room`, whose client is in `region` (a cluster places the room at its
    /// first join there); returns it and the base WebSocket URL of the node that serves the room.
    pub async fn add_participant(
        &self,
        room: &str,
        req: CreateParticipant,
        region: Option<&str>,
    ) -> Result<(Participant, String), ApiError> {
        let now = SystemTime::now();
        let Some(c) = self.cluster_rooms() else {
            let p = self
                .rooms()
                .add_participant(room, req, now, &mut rand::rng())?;
            return Ok((p, self.public_ws_base.clone()));
        };
        let region = region.unwrap_or(&self.node.identity().region).to_string();
        let (p, after) = c
            .update(self.room_defaults(), room, None, |view| {
                view.add_participant(room, req.clone(), now, &mut rand::rng())
            })
            .await?;
        if c.serves(room).is_some() {
            if let Some(after) = &after {
                self.rooms().put(after.clone());
            }
        }
        let (_, core, nodes) = self.place(c, room, &region).await?;
        // A room on the SFU may have this member served by another node (an edge).
        let edge = after
            .as_ref()
            .filter(|r| r.mode == RoomMode::Sfu)
            .and_then(|r| {
                cascade::member_node(
                    r.cascade,
                    &core,
                    &region,
                    &nodes,
                    &c.regions,
                    &mut rand::rng(),
                )
            })
            .cloned();
        let mut p = p;
        let node = match edge {
            Some(edge) => {
                c.update(self.room_defaults(), room, None, |view| {
                    view.set_participant_node(room, &p.id, Some(edge.id.clone()))
                })
                .await?;
                tracing::info!(%room, participant = %p.id, edge = %edge.id, core = %core.id, %region, "member placed on an edge");
                p.node = Some(edge.id.clone());
                edge
            }
            None => core,
        };
        let base = if node.id == self.node.identity().id {
            self.public_ws_base.clone()
        } else {
            ws_base(&node.url)
        };
        Ok((p, base))
    }

    /// The room's live owner, placing it (for a client in `region`) if it has none; with the live
    /// nodes.
    async fn place(
        &self,
        c: &ClusterRooms,
        room: &str,
        region: &str,
    ) -> Result<(Ownership, NodeInfo, Vec<NodeInfo>), ApiError> {
        let nodes = c.store.nodes().await?;
        if let Some(o) = c.store.owner(room).await? {
            if let Some(n) = nodes.iter().find(|n| n.id == o.node) {
                let n = n.clone();
                return Ok((o, n, nodes));
            }
        }
        let (o, n) = self.claim(c, room, region, &nodes, None).await?;
        Ok((o, n, nodes))
    }

    /// Claims `room` for the node placement picks among `nodes` (for a client in `region`); with
    /// `dead`, moves it from that owner, known gone.
    async fn claim(
        &self,
        c: &ClusterRooms,
        room: &str,
        region: &str,
        nodes: &[NodeInfo],
        dead: Option<&Ownership>,
    ) -> Result<(Ownership, NodeInfo), ApiError> {
        let alive: Vec<NodeInfo> = nodes
            .iter()
            .filter(|n| dead.is_none_or(|d| d.node != n.id))
            .cloned()
            .collect();
        let pick = sluice_cluster::placement::place(region, &alive, &c.regions, &mut rand::rng())
            .ok_or_else(|| {
            ApiError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "no_node",
                "no node of the cluster takes rooms now (all draining or full)",
            )
        })?;
        let (owner, _) = match dead {
            Some(d) => c.store.take_over(room, d, &pick.id).await?,
            None => c.store.claim_room(room, &pick.id).await?,
        };
        let node = nodes
            .iter()
            .find(|n| n.id == owner.node)
            .cloned()
            .ok_or_else(|| {
                ApiError::new(
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    "cluster_unavailable",
                    format!("room {room:?} moved to a node that is not live: try again"),
                )
            })?;
        tracing::info!(%room, node = %owner.node, epoch = owner.epoch, %region, moved_from = ?dead.map(|d| &d.node), "room placed");
        Ok((owner, node))
    }

    /// Where participant `participant`'s signaling socket for `room` goes (a cluster only): here,
    /// after loading the room, or to the owner. A room without a live owner is placed again (here
    /// if placement says so); an owner whose record is still there but whose port refuses
    /// connections (killed) loses the room at once rather than when its record expires.
    pub async fn route_signal(&self, room: &str, participant: &str) -> Result<Route, ApiError> {
        self.route(room, Some(participant)).await
    }

    /// Serves `room` here (a core asked for a leg before any member of its own connected): on a
    /// single node always; in a cluster only as its owner, which this node becomes if the room has
    /// no live owner and placement picks it (else 409 `wrong_node`, naming the node to ask).
    pub(crate) async fn serve_here(&self, room: &str) -> Result<Room, ApiError> {
        if let Route::Elsewhere(url) = self.route(room, None).await? {
            return Err(wrong_node(room, &url));
        }
        Ok(self.rooms().get(room)?.clone())
    }

    /// Adds a member whose media attaches to this node (a plain transport): on a single node or
    /// the room's core as always; in a cascaded room on the SFU on any other node too, which then
    /// serves it as an edge of the core (docs/cascade.md); else 409 `wrong_node`. The member
    /// never connects to signaling, so it has no join grace.
    pub async fn add_member_here(
        &self,
        room: &str,
        req: CreateParticipant,
    ) -> Result<Participant, ApiError> {
        let now = SystemTime::now();
        let Some(c) = self.cluster_rooms() else {
            let p = self
                .rooms()
                .add_participant(room, req, now, &mut rand::rng())?;
            self.on_attached(room, &p);
            return Ok(p);
        };
        let core = match self.route(room, None).await? {
            Route::Here { .. } => None,
            Route::Elsewhere(url) => {
                let loaded = c.load(self.room_defaults(), room).await?;
                let r = loaded.view.get(room)?;
                match loaded.owner {
                    Some(o) if r.mode == RoomMode::Sfu && r.cascade != CascadeMode::Off => Some(o),
                    _ => return Err(wrong_node(room, &url)),
                }
            }
        };
        let node = core.as_ref().map(|_| self.node.identity().id.clone());
        let (mut p, after) = c
            .update(self.room_defaults(), room, None, |view| {
                let p = view.add_participant(room, req.clone(), now, &mut rand::rng())?;
                if node.is_some() {
                    view.set_participant_node(room, &p.id, node.clone())?;
                }
                Ok(p)
            })
            .await?;
        p.node = node;
        self.on_attached(room, &p);
        match (core, after) {
            (Some(core), Some(after)) => {
                tracing::info!(%room, participant = %p.id, core = %core.node, "member attached here, an edge of the room's core");
                let nodes = c.store.nodes().await?;
                self.serve_as_edge(room, after, &core, nodes).await?;
            }
            (None, Some(after)) if c.serves(room).is_some() => self.rooms().put(after),
            _ => {}
        }
        Ok(p)
    }

    async fn route(&self, room: &str, participant: Option<&str>) -> Result<Route, ApiError> {
        let Some(c) = self.cluster_rooms() else {
            return Ok(Route::Here {
                epoch: 0,
                entry_urls: Vec::new(),
            });
        };
        let me = self.node.identity().id.clone();
        let loaded = c.load(self.room_defaults(), room).await?;
        let (view, owner) = (loaded.view, loaded.owner);
        let r = view.get(room)?;
        if participant.is_some_and(|id| !r.participants.iter().any(|p| p.id == id)) {
            return Err(ApiError::not_found(
                "unknown_participant",
                "this participant was removed from the room",
            ));
        }
        let nodes = c.store.nodes().await?;
        let region = self.node.identity().region.clone();
        let live_owner = owner
            .as_ref()
            .and_then(|o| nodes.iter().find(|n| n.id == o.node).map(|n| (o, n)));
        let (owner, node) = match live_owner {
            Some((o, _)) if o.node == me => (o.clone(), None),
            Some((o, n)) if refuses_connections(&n.url).await => {
                tracing::warn!(%room, node = %o.node, "the room's owner refuses connections: taking the room over");
                let (o, n) = self.claim(c, room, &region, &nodes, Some(o)).await?;
                (o, Some(n))
            }
            Some((o, n)) => (o.clone(), Some(n.clone())),
            None => {
                let (o, n) = self.claim(c, room, &region, &nodes, None).await?;
                (o, Some(n))
            }
        };
        // A member an edge serves (a cascaded room): there, or back on the core if it went.
        let seat_node = participant
            .and_then(|id| r.participants.iter().find(|p| p.id == id))
            .and_then(|p| p.node.clone())
            .filter(|n| *n != owner.node);
        if let (Some(edge), Some(id)) = (seat_node, participant) {
            if edge == me {
                return self.serve_as_edge(room, r.clone(), &owner, nodes).await;
            }
            let live = nodes.iter().find(|n| n.id == edge);
            if let Some(n) = live {
                // Killed (its port refuses) is gone now, not when its record expires.
                if !refuses_connections(&n.url).await {
                    return Ok(Route::Elsewhere(ws_base(&n.url)));
                }
            }
            tracing::info!(%room, participant = %id, %edge, core = %owner.node, "the member's edge is gone: back on the room's core");
            c.update(self.room_defaults(), room, None, |view| {
                view.set_participant_node(room, id, None)
            })
            .await?;
        }
        if owner.node != me {
            let url = node.map(|n| n.url).unwrap_or_default();
            return Ok(Route::Elsewhere(ws_base(&url)));
        }
        // Ours: serve it from the document as it is now. Members an edge serves connect there:
        // they get no join grace here.
        c.lock().insert(room.to_string(), owner.epoch);
        Ok(self.serve_copy(room, r.clone(), owner.epoch, nodes, |p| {
            p.node.as_ref().is_none_or(|n| *n == me)
        }))
    }

    /// Serves `room` here from `now` (its document), at `epoch`: this node's copy of it, and the
    /// join grace for each member that `seated_here` says connects to this node and is not
    /// connected yet; returns the route, with the other live `nodes` as entry URLs.
    fn serve_copy(
        &self,
        room: &str,
        now: Room,
        epoch: u64,
        nodes: Vec<NodeInfo>,
        seated_here: impl Fn(&Participant) -> bool,
    ) -> Route {
        let me = self.node.identity().id.clone();
        let seats: Vec<Participant> = now
            .participants
            .iter()
            .filter(|p| seated_here(p))
            .cloned()
            .collect();
        self.rooms().put(now);
        {
            let mut access = self.access();
            for p in &seats {
                if !self.hub.is_member(room, &p.id) {
                    access.minted_if_new(room, &p.id, &p.name, std::time::Instant::now());
                }
            }
        }
        Route::Here {
            epoch,
            entry_urls: nodes
                .into_iter()
                .filter(|n| n.id != me)
                .map(|n| n.url)
                .collect(),
        }
    }

    /// Serves `room` (as `now` in the store) as an edge of its core `owner`: this node's copy of
    /// the room, join graces for the members placed here, and the relay leg to the core (a leg
    /// that cannot be made now is tried again at every refresh).
    async fn serve_as_edge(
        &self,
        room: &str,
        now: Room,
        owner: &Ownership,
        nodes: Vec<NodeInfo>,
    ) -> Result<Route, ApiError> {
        let me = self.node.identity().id.clone();
        let route = self.serve_copy(room, now, owner.epoch, nodes, |p| {
            p.node.as_deref() == Some(me.as_str())
        });
        if let Err(e) = self.link_to_core(room, owner).await {
            tracing::warn!(%room, core = %owner.node, error = %e.message, "could not link to the room's core yet");
        }
        Ok(route)
    }

    /// Removes a participant from the room's record (kicked, left, never connected); in a
    /// cluster from the document, and from this node's copy where it serves the room.
    pub async fn remove_participant(&self, room: &str, id: &str) -> Result<Participant, ApiError> {
        self.change_record(room, |view| view.remove_participant(room, id))
            .await
    }

    /// Applies `rule` to a room's record: in a cluster to its document (compare-and-set) and then
    /// to this node's copy, as the core or an edge (a copy of a room not served here is replaced
    /// whenever it serves it again); on a single node to its rooms. Returns what the record's
    /// rule returned.
    async fn change_record<T>(
        &self,
        room: &str,
        rule: impl Fn(&mut crate::rooms::Rooms) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let Some(c) = self.cluster_rooms() else {
            return rule(&mut self.rooms());
        };
        let (out, _) = c.update(self.room_defaults(), room, None, &rule).await?;
        let _ = rule(&mut self.rooms());
        Ok(out)
    }

    /// In a cluster, removes a participant from the room's document in the background (a member
    /// whose socket closed, or whose join grace ran out: this node's copy is already updated),
    /// only while this node still owns the room at the epoch it serves: an owner that was paused
    /// and lost the room never removes the members who moved on to the new owner.
    pub fn forget_in_cluster(&self, room: &str, id: &str) {
        let Some(c) = self.cluster_rooms.clone() else {
            return;
        };
        let Some(epoch) = c.serves(room) else {
            if c.legs.is_edge_of(room) {
                // An edge removes only the members it serves.
                let me = self.node.identity().id.clone();
                let (defaults, room, id) = (self.room_defaults(), room.to_string(), id.to_string());
                tokio::spawn(async move {
                    let removed = c
                        .update(defaults, &room, None, |view| {
                            let here = view
                                .get(&room)?
                                .participants
                                .iter()
                                .any(|p| p.id == id && p.node.as_deref() == Some(me.as_str()));
                            if here {
                                view.remove_participant(&room, &id).map(Some)
                            } else {
                                Ok(None)
                            }
                        })
                        .await;
                    if let Err(e) = removed {
                        tracing::warn!(%room, participant = %id, error = %e.message, "an edge could not remove its member from the cluster store");
                    }
                });
            }
            return;
        };
        let me = sluice_cluster::Ownership {
            node: self.node.identity().id.clone(),
            epoch,
        };
        let (defaults, room, id) = (self.room_defaults(), room.to_string(), id.to_string());
        tokio::spawn(async move {
            let removed = c
                .update(defaults, &room, Some(&me), |view| {
                    view.remove_participant(&room, &id)
                })
                .await;
            if let Err(e) = removed {
                if e.code == "fenced" {
                    tracing::info!(%room, participant = %id, "not removed from the cluster store: another node owns the room now");
                } else if e.code != "unknown_participant" && e.code != "unknown_room" {
                    tracing::warn!(%room, participant = %id, error = %e.message, "could not remove a participant from the cluster store");
                }
            }
        });
    }

    /// In a cluster, deletes a room this node closed (deleted, or empty too long) from the store
    /// in the background; a room another live node owns is left to it.
    pub fn close_in_cluster(&self, room: &str) {
        let Some(c) = self.cluster_rooms.clone() else {
            return;
        };
        c.lock().remove(room);
        let (me, room) = (self.node.identity().id.clone(), room.to_string());
        tokio::spawn(async move {
            match c.store.delete_room_doc(&room, &me).await {
                Ok(Deleted::OwnedBy(other)) => {
                    tracing::warn!(%room, owner = %other, "closed here, but another node owns the room: left to it")
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(%room, error = %e, "could not delete a closed room from the cluster store")
                }
            }
        });
    }

    /// Which node does control actions on `room`: this one (a single node, or the room's owner),
    /// another live owner, or none (not placed, or its owner is gone: the store is changed
    /// directly). A `forwarded` action is never sent on again.
    async fn holder(&self, room: &str, forwarded: bool) -> Result<Holder, ApiError> {
        let Some(c) = self.cluster_rooms() else {
            return Ok(Holder::Here);
        };
        if c.serves(room).is_some() {
            return Ok(Holder::Here);
        }
        if forwarded {
            return Ok(Holder::Nobody);
        }
        let me = &self.node.identity().id;
        let Some(owner) = c.store.owner(room).await? else {
            return Ok(Holder::Nobody);
        };
        if &owner.node == me {
            return Ok(Holder::Nobody);
        }
        let live = c.store.nodes().await?.iter().any(|n| n.id == owner.node);
        Ok(if live {
            Holder::Node(owner.node)
        } else {
            Holder::Nobody
        })
    }

    /// For a kick or a mute in a cluster: the node that serves the member, where that is an edge
    /// (its socket and media are there); `None` where the room's holder does it.
    async fn member_holder(
        &self,
        action: &RoomAction,
        forwarded: bool,
    ) -> Result<Option<Holder>, ApiError> {
        let (RoomAction::Kick { room, participant }
        | RoomAction::Mute {
            room, participant, ..
        }) = action
        else {
            return Ok(None);
        };
        let Some(c) = self.cluster_rooms() else {
            return Ok(None);
        };
        let loaded = c.load(self.room_defaults(), room).await?;
        let Some(edge) = loaded
            .view
            .get(room)
            .ok()
            .and_then(|r| r.participants.iter().find(|p| p.id == *participant))
            .and_then(|p| p.node.clone())
        else {
            return Ok(None);
        };
        if edge == self.node.identity().id {
            return Ok(Some(Holder::Here));
        }
        if forwarded || !c.store.nodes().await?.iter().any(|n| n.id == edge) {
            return Ok(None);
        }
        Ok(Some(Holder::Node(edge)))
    }

    /// Does `action` on the node that holds its room: here, or asked of the owner over the
    /// cluster (answered once it is done there). `forwarded`: another node asked this one.
    pub async fn room_action(&self, action: RoomAction, forwarded: bool) -> Result<(), ApiError> {
        let room = match &action {
            RoomAction::Kick { room, .. }
            | RoomAction::Mute { room, .. }
            | RoomAction::Delete { room }
            | RoomAction::Link { room, .. }
            | RoomAction::Unlink { room, .. } => room.clone(),
        };

        let holder = match self.member_holder(&action, forwarded).await? {
            Some(h) => h,
            None => self.holder(&room, forwarded).await?,
        };
        if let (Holder::Node(node), Some(c)) = (&holder, self.cluster_rooms()) {
            return self
                .calls
                .ask(&c.store, &self.node.identity().id, node, action)
                .await;
        }
        match action {
            RoomAction::Kick { room, participant } => self.kick(&room, &participant).await,
            RoomAction::Mute {
                room,
                participant,
                muted,
            } => {
                self.record_server_mute(&room, &participant, muted).await?;
                self.set_muted(&room, &participant, muted, true);
                tracing::info!(%room, %participant, muted, "server mute");
                Ok(())
            }
            RoomAction::Delete { room } => self.delete_here(&room, holder).await,
            // An edge asks its core; anywhere else `open_leg` refuses (`not_core`).
            RoomAction::Link {
                room,
                edge,
                epoch,
                addr,
                ssrcs,
            } => self.open_leg(&room, &edge, epoch, &addr, ssrcs).await,
            RoomAction::Unlink { room, edge } => {
                self.close_leg(&room, &edge).await;
                Ok(())
            }
        }
    }

    /// Writes a server mute into the participant's record (404 `unknown_participant`): in a
    /// cluster into the room's document too, so whichever node serves the member next (after a
    /// failover, a drain) applies it when the member connects.
    async fn record_server_mute(&self, room: &str, id: &str, muted: bool) -> Result<(), ApiError> {
        self.change_record(room, |view| view.set_server_muted(room, id, muted))
            .await
    }

    /// Removes a participant from the room and, where this node serves it, from its socket and
    /// media.
    async fn kick(&self, room: &str, id: &str) -> Result<(), ApiError> {
        self.remove_participant(room, id).await?;
        self.on_kicked(room, id);
        self.hub.kick(room, id, std::time::Instant::now());
        if let Some(m) = &self.media {
            m.remove_participant(room, id);
        }
        tracing::info!(%room, participant = %id, "participant removed");
        self.on_left(room, id, "kicked");
        Ok(())
    }

    /// Deletes a room this node holds (closed here, members get `bye`), or one nobody serves
    /// (deleted from the store; one that a live node took meanwhile is 409 `owned_elsewhere`).
    async fn delete_here(&self, room: &str, holder: Holder) -> Result<(), ApiError> {
        let Some(c) = self.cluster_rooms() else {
            return self.close_room(room, "deleted").map(|_| ());
        };
        if let Holder::Here = holder {
            self.close_room(room, "deleted")?;
            // Answer once the store has it too (closing started the same delete in the background).
            c.store
                .delete_room_doc(room, &self.node.identity().id)
                .await?;
            return Ok(());
        }
        match c
            .store
            .delete_room_doc(room, &self.node.identity().id)
            .await?
        {
            Deleted::Deleted => {
                let _ = self.rooms().delete(room);
                tracing::info!(%room, "room deleted (it had no live owner)");
                self.emit_room_finished(room);
                Ok(())
            }
            Deleted::NotFound => Err(unknown_room(room)),
            Deleted::OwnedBy(node) => Err(ApiError::conflict(
                "owned_elsewhere",
                format!("room {room:?} was just taken by node {node:?}: try again"),
            )),
        }
    }

    /// This node found it no longer holds `room`'s epoch (another node took it after a pause or a
    /// partition): it stops serving the room at once, its members' sockets close without `bye`
    /// (they reconnect and are sent to the new owner), and nothing in the cluster store is touched.
    pub fn fence(&self, room: &str) {
        if let Some(c) = self.cluster_rooms() {
            c.lock().remove(room);
            crate::cluster_rooms::ClusterStats::count(&c.stats.fenced);
        }
        let moved = self.hub.move_room(room);
        if let Some(m) = &self.media {
            m.remove_room(room);
        }
        let _ = self.rooms().delete(room);
        tracing::warn!(
            %room,
            members = moved,
            "another node owns this room now: stopped serving it (fenced)"
        );
    }
}

/// 409 `wrong_node`: `room` is served by the node at `url` (its WebSocket base).
fn wrong_node(room: &str, url: &str) -> ApiError {
    ApiError::conflict(
        "wrong_node",
        format!(
            "room {room:?} is served by another node: ask {}",
            url.replacen("ws", "http", 1)
        ),
    )
}
