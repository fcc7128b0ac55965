//! # sluice-dataplane
//!
//! The packet-forwarding half of sluice. It is split the way quinn splits `quinn-proto` from `quinn`:
//!
//! - [`packet`]: zero-copy views over peer bytes (RFC 7983 demux, RTP, RTCP, STUN, header extensions).
//!   Pure functions, no I/O, never panic on input.
//! - [`srtp`]: SRTP/SRTCP contexts for the three profiles, transforming packets in place.
//! - the forwarding core ([`forwarder`]): `on_datagram(now, from, buf, outbox)` decides, decrypts once,
//!   rewrites and re-encrypts once per subscriber into an [`outbox::Outbox`]. Driven directly by tests.
//! - [`io`]: the only module with `unsafe`: `mmsg` (recvmmsg/sendmmsg) and `uring` (io_uring) backends
//!   behind one trait.
//! - [`worker`] and [`Dataplane`]: pinned threads that own a socket, a backend and a core each, fed with
//!   [`topology::TopologyUpdate`]s over bounded crossbeam channels.

pub mod dataplane;
pub mod forwarder;
pub mod ice;
pub mod io;
pub mod outbox;
pub mod packet;
pub mod presence;
pub mod relay;
pub mod rewrite;
pub mod speaker;
pub mod srtp;
pub mod stats;
pub mod topology;
pub mod worker;

pub use dataplane::{Dataplane, DataplaneConfig, DataplaneError};
pub use io::DEFAULT_BACKEND;
pub mod testkit;
