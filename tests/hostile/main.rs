//! The hostile suite: attacks on a real `sluice serve` process, one test per attack, named for the
//! attack and its outcome (issue 10; the README's Security section lists each promise with its test).
//!
//! - `strangers`: someone with no credentials, or a guest, against the REST API.
//! - `http`: slow, large and many HTTP clients against the server's limits.
//! - `participants`: members with valid tokens who lie or flood over signaling.
//! - `media`: spoofed addresses, stolen SSRCs, DTLS and datagram floods against the workers.

#![deny(unsafe_code)]

#[path = "../common/mod.rs"]
mod common;

mod http;
mod media;
mod participants;
mod strangers;
