//! # sluice-dataplane
//!
//! The packet-forwarding half of sluice. It is split the way quinn splits `quinn-proto` from `quinn`:
//!
//! - [`packet`]: zero-copy views over peer bytes (RFC 7983 demux, RTP, RTCP, STUN, header extensions).
//!   Pure functions, no I/O, never panic on input.
//! - [`srtp`]: SRTP/SRTCP contexts for the four profiles (AES-CM with an 80- or 32-bit tag,
//!   AES-128/256-GCM), transforming packets in place.
//! - the forwarding core ([`forwarder`]): `on_datagram(now, from, buf, outbox)` decides, decrypts once,
//!   rewrites and re-encrypts once per subscriber into an [`outbox::Outbox`]. Driven directly by tests.
//!   Which source gets which subscriber slot is [`speaker`]'s policy; which workers host which room is
//!   [`presence`]'s bookkeeping. All of it is sans-IO: time comes in as `now`, nothing touches a
//!   socket, a clock or a channel.
//! - [`io`]: the only module with `unsafe` (the crate denies it everywhere else): `mmsg`
//!   (recvmmsg/sendmmsg) and `uring` (io_uring) backends behind one trait, and safe wrappers for the
//!   other system calls (socket options, thread CPU clocks, timestamped batch receive, rlimits).
//! - [`worker`] and [`Dataplane`]: pinned threads that own a socket, a backend and a core each, fed with
//!   [`worker::WorkerCommand`]s (mostly [`topology::TopologyUpdate`]s) over bounded crossbeam channels.
//! - `testkit` (cargo feature `testkit`): fixtures for benches and tests of the core.
//!
//! Outside `io`, the only `unsafe` of this package is one pin projection in the
//! `examples/io_echo.rs` measurement tool, allowed there alone (docs/architecture.md, "Where
//! `unsafe` lives").

#![deny(unsafe_code)]

pub mod dataplane;
pub mod dominant;
pub mod forwarder;
pub mod ice;
// System calls and raw buffers (recvmmsg/sendmmsg, io_uring rings, eventfd, socket options, CPU
// clocks, rlimits) cannot be written without `unsafe`; it is confined here, every block with a
// `SAFETY:` comment, and everything this module exports is safe to call.
#[allow(unsafe_code)]
pub mod io;
pub mod outbox;
pub mod packet;
pub mod presence;
pub mod relay;
pub mod reports;
pub mod rewrite;
pub mod speaker;
pub mod srtp;
pub mod stats;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod topology;
pub mod worker;

pub use dataplane::{Dataplane, DataplaneConfig, DataplaneError};
pub use io::DEFAULT_BACKEND;
