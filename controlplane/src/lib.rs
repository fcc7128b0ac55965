//! # sluice-controlplane
//!
//! The control half of sluice: rooms and participants, the REST API, WebSocket signaling, SDP,
//! ICE-lite credentials and DTLS-SRTP handshakes. It owns no packets: it tells the dataplane workers
//! what to do through `sluice_dataplane::Dataplane` (crossbeam channels), and the workers hand it the
//! datagrams only it can answer (DTLS). docs/architecture.md draws the modules and how they depend on
//! each other; `tests/import_graph.rs` (in the workspace root) keeps that graph free
//! of cycles.
//!
//! - Pure cores, driven by tests without sockets: [`rooms`] (room and participant rules),
//!   [`mode`] (the P2P/SFU mode machine), [`hub`] (connected members and what each is told),
//!   [`rate_limit`], [`access`] (guests, seats, bans, throttles), [`limits`] (HTTP and signaling limits, keep-alive), [`messages`] (the signaling protocol), [`sdp`], [`fingerprint`], [`auth`] (keys and tokens),
//!   [`clock`] (time as the cores take it), [`heartbeat`] (a thread's sign of life), [`node`] (this node as the cluster sees it), [`webhooks`]' event, signing and retry policy.
//! - State: [`state::AppState`], which every front end depends on and which depends on none.
//! - I/O shells: [`api`] (REST handlers), [`guard`] (client IP, the admin check), [`signal`] (the WebSocket), [`web`] (pages),
//!   [`metrics`], [`cluster_api`] (`GET /v1/nodes`), [`cluster_link`] (registering this node in the cluster every second, fencing the rooms it lost), [`cluster_calls`] (kick, mute and delete asked of the room's owner over pub/sub), [`cluster_rooms`] (rooms as Redis documents, changed by compare-and-set), [`leg_table`] and [`cascade`] (relay legs between a cascaded room's core and edges: linking, failover, source names), [`room_store`] (the room operations every front end calls, on one node or a cluster), [`event_log`] (room events onto the cluster's Redis stream), [`router`] (every route and the OpenAPI document), [`media`] (worker upcalls and
//!   DTLS), [`dtls`] (OpenSSL over memory BIOs).
//!
//! `unsafe` is denied in the whole crate but for one `DTLSv1_get_timeout` call in `dtls/timer.rs`
//! (OpenSSL's macro has no safe binding).

#![deny(unsafe_code)]

pub mod access;
pub mod api;
pub mod auth;
pub mod cascade;
pub mod clock;
pub mod cluster_api;
pub mod cluster_calls;
pub mod cluster_link;
pub mod cluster_rooms;
pub mod dtls;
pub mod error;
pub mod event_log;
pub mod fingerprint;
pub mod guard;
pub mod heap_trim;
pub mod heartbeat;
pub mod hub;
pub mod leg_table;
pub mod limits;
pub mod links;
pub mod media;
pub mod messages;
pub mod metrics;
pub mod mode;
pub mod node;
pub mod rate_limit;
pub mod room_moves;
pub mod room_store;
pub mod rooms;
pub mod roster;
pub mod roster_link;
pub mod router;
pub mod sdp;
pub mod signal;
pub mod state;
pub mod web;
pub mod webhooks;
