//! # sluice-controlplane
//!
//! The control half of sluice: rooms and participants, the REST API, WebSocket signaling, SDP,
//! ICE-lite credentials and DTLS-SRTP handshakes. It owns no packets: it tells the dataplane workers
//! what to do through `sluice_dataplane::Dataplane` (crossbeam channels), and the workers hand it the
//! datagrams only it can answer (DTLS).

pub mod api;
pub mod auth;
pub mod dtls;
pub mod error;
pub mod media;
pub mod mode;
pub mod rooms;
pub mod sdp;
pub mod signal;
pub mod web;
pub mod webhooks;
