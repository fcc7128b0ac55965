//! sluice-broadcast: a room's audio as one HLS stream for listeners who do not need WebRTC
//! (issue 13, docs/broadcast.md).
//!
//! The room's owner node subscribes internally to the room's current speakers, decodes their Opus
//! (libopus), mixes them into one track, encodes it again, and publishes it as HLS: fMP4 segments
//! of about a second and rolling playlists that a CDN can cache. This crate holds the pure cores of
//! that path, driven directly by tests with times and samples passed in:
//!
//! - [`mix`]: the sum of the speakers' 20 ms frames through a limiter, so five people talking at
//!   once never clip;
//! - [`playlist`]: the rolling media playlist (with `EXT-X-PROGRAM-DATE-TIME` and `EXT-X-ENDLIST`)
//!   and the multivariant playlist naming each rendition;
//! - [`fmp4`]: the Opus rendition's init and media segments (CMAF), with the `mp4-atom` crate's
//!   boxes;
//! - [`codec`]: libopus, decoding each speaker and encoding the mix.
//!
//! No I/O and no clock reads here: the subscriber that feeds it, ffmpeg for the AAC rendition and
//! the HTTP serving are thin shells around these cores.

#![deny(unsafe_code)]

pub mod codec;
pub mod fmp4;
pub mod mix;
pub mod playlist;
