//! SDP for sluice's WebRTC audio: parse a client's offer, write the server's answer.
//!
//! Pure code: no I/O, no clock, no randomness. Parsing of the SDP grammar (RFC 8866 line order,
//! `a=` attributes) is done by the `sdp` crate 0.17 (<https://docs.rs/sdp>) from webrtc-rs, the
//! family of the `webrtc-srtp` crate the project already uses; this module interprets the result
//! for the one shape of session sluice supports, and writes the answer by hand so that every line
//! is under our control (the crate's writer knows nothing of ICE-lite or our slot model).
//!
//! # What is accepted
//!
//! A JSEP offer (RFC 8829) as browsers (Chromium), aiortc and GStreamer's webrtcbin
//! produce it:
//! - one or more `m=audio` sections with proto `UDP/TLS/RTP/SAVPF` (or `UDP/TLS/RTP/SAVP`), all of
//!   them in one `a=group:BUNDLE` (RFC 8843), each with `a=mid` and `a=rtcp-mux` (RFC 8829 §5.1.3:
//!   sluice runs every stream over one 5-tuple);
//! - Opus (`opus/48000/2`) in every section, with the same payload type (BUNDLE, RFC 8843 §9.1.2:
//!   one PT means one codec across the bundle); its `a=fmtp` is echoed back. `opus/48000` without
//!   the channel count (webrtcbin's receive transceivers whose caps lack `encoding-params=2`) is
//!   taken as Opus too, and answered `opus/48000/2`, which webrtcbin accepts;
//! - ICE credentials (`a=ice-ufrag`, `a=ice-pwd`) and a DTLS certificate fingerprint
//!   (`a=fingerprint`, RFC 8122), read from the first (BUNDLE-tagged) section or the session level;
//!   with several fingerprints, sha-256 is preferred;
//! - `a=setup:actpass` or `a=setup:active` (RFC 5763 §5): the server is always the DTLS server.
//! - the header extensions `ssrc-audio-level` (RFC 6464) and `sdes:mid` (RFC 8843 §15.2) are
//!   answered with the offer's ids (RFC 8285 §6: the answer may not renumber); others are dropped.
//!
//! The first section the offerer sends on (`sendrecv` or `sendonly`) is its microphone and is
//! answered `recvonly`. Every other section on which the offerer receives (`recvonly` or
//! `sendrecv`) is a speaker *slot*: slot `i` (in offer order, see [`slot_mids`]) is answered
//! `sendonly` with `a=ssrc:<slot_ssrcs[i]> cname:..` and `a=msid` (aiortc routes incoming RTP by
//! the declared SSRCs; browsers by MID). Slots beyond `slot_ssrcs.len()`, and sections that fit
//! neither role (offered `inactive`, or a second sending section), are answered `a=inactive`
//! rather than rejected with port 0: they stay in the BUNDLE group, so the transport is untouched
//! and a later answer could enable them without re-bundling (RFC 8843 §7.3.3 would otherwise
//! remove a port-0 section from the group).
//!
//! # What is refused, and why
//!
//! Every refusal is an [`SdpError`] whose `Display` text is fit for the signaling `error` reply.
//! - Unparsable text, a section without `a=mid`, duplicate mids, an offer over 64 KiB.
//! - Any non-audio `m=` line: sluice is an audio SFU and does not write port-0 rejections of
//!   foreign media; clients offer audio only (docs/architecture.md, "Control-plane API").
//! - No audio, no Opus, missing ICE credentials, missing fingerprint.
//! - `a=setup:passive` (and `holdconn`, or no `a=setup`): we are always passive, so two passive
//!   ends would never start DTLS.
//! - Sections outside BUNDLE or without rtcp-mux: the workers handle one 5-tuple per participant.
//! - Port 0 sections that are not `a=bundle-only` (stopped transceivers): sluice does not
//!   renegotiate.
//! - More than [`MAX_SLOTS`] slot sections ([`SdpError::TooManySlots`]): bounds per-client work.
//!
//! # The answer
//!
//! Session level: `a=ice-lite` (RFC 8445 §2.5: the server only answers checks),
//! `a=group:BUNDLE` with every mid, `a=msid-semantic:WMS *`. Each section carries the same
//! address and port (the worker's host candidate; RFC 8843 §7.3.1 gives bundled sections one
//! address), full ICE/DTLS attributes, one `a=candidate` of type host over UDP and
//! `a=end-of-candidates` (ICE-lite gathers nothing later), `a=setup:passive`, `a=rtcp-mux`, and
//! only the Opus payload type. Every line ends with `\r\n`.

mod answer;
mod direction;
mod offer;
#[cfg(test)]
mod tests;

pub use answer::{write_answer, AnswerParams};
pub use direction::sends_audio;
pub use offer::parse_offer;

use crate::fingerprint::{Fingerprint, FingerprintError};

/// The most slot sections (recvonly transceivers) an offer may carry.
pub const MAX_SLOTS: usize = 32;

/// The largest offer accepted, in bytes.
pub const MAX_OFFER_LEN: usize = 64 * 1024;

const URI_AUDIO_LEVEL: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";
const URI_MID: &str = "urn:ietf:params:rtp-hdrext:sdes:mid";

/// Why an offer was refused (or an answer could not be written).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SdpError {
    #[error("malformed SDP offer: {0}")]
    Parse(String),
    #[error("the offer has no m=audio section")]
    NoAudio,
    #[error("the offer carries a non-audio m= section ({0}); sluice accepts audio only")]
    UnsupportedMedia(String),
    #[error("m=audio uses transport {0}; sluice requires UDP/TLS/RTP/SAVPF (DTLS-SRTP)")]
    UnsupportedProto(String),
    #[error("an m=audio section does not offer Opus (opus/48000/2)")]
    NoOpus,
    #[error("bundled m=audio sections disagree: {0}")]
    InconsistentBundle(String),
    #[error("the offer lacks ICE credentials (a=ice-ufrag and a=ice-pwd)")]
    NoIceCredentials,
    #[error("the offer lacks a DTLS certificate fingerprint (a=fingerprint)")]
    NoFingerprint,
    #[error("unusable a=fingerprint: {0}")]
    BadFingerprint(#[from] FingerprintError),
    #[error(
        "unsupported DTLS role a=setup:{0}; offer actpass or active, the server is always passive"
    )]
    UnsupportedSetup(String),
    #[error("m=audio section {0} has no a=mid")]
    NoMid(usize),
    #[error("m=audio section mid {0} is duplicated")]
    DuplicateMid(String),
    #[error("every m=audio section must be in one a=group:BUNDLE")]
    NotBundled,
    #[error("every m=audio section must carry a=rtcp-mux")]
    NoRtcpMux,
    #[error("m=audio section mid {0} is rejected (port 0); sluice does not renegotiate")]
    RejectedSection(String),
    #[error("the offer has {offered} slot (receive) sections, at most {max} are allowed")]
    TooManySlots { offered: usize, max: usize },
    #[error("invalid answer parameter: {0}")]
    InvalidParam(&'static str),
}

/// What sluice needs from a client's offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    pub ice_ufrag: String,
    pub ice_pwd: String,
    /// The client's certificate fingerprint, typed: the DTLS server takes it as it is.
    pub fingerprint: Fingerprint,
    /// "actpass" or "active".
    pub setup: String,
    pub opus_pt: u8,
    pub opus_fmtp: Option<String>,
    pub audio_level_ext: Option<u8>,
    pub mid_ext: Option<u8>,
    /// Every m=audio section, in offer order.
    pub sections: Vec<AudioSection>,
}

/// One m=audio section of the offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioSection {
    pub mid: String,
    /// The offerer's direction.
    pub direction: Direction,
    /// The SSRC of the offerer's send stream (first `a=ssrc`), only if the offerer sends here.
    pub ssrc: Option<u32>,
}

/// Media direction (RFC 8866 §6.7), as seen by whoever wrote the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "sendrecv" => Some(Self::SendRecv),
            "sendonly" => Some(Self::SendOnly),
            "recvonly" => Some(Self::RecvOnly),
            "inactive" => Some(Self::Inactive),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::SendRecv => "sendrecv",
            Self::SendOnly => "sendonly",
            Self::RecvOnly => "recvonly",
            Self::Inactive => "inactive",
        }
    }

    fn sends(self) -> bool {
        matches!(self, Self::SendRecv | Self::SendOnly)
    }

    fn receives(self) -> bool {
        matches!(self, Self::SendRecv | Self::RecvOnly)
    }
}

/// The role sluice gives each offered section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// The client's microphone: answered recvonly.
    Mic,
    /// The n-th speaker slot: answered sendonly with `slot_ssrcs[n]` (or inactive beyond it).
    Slot(usize),
    /// Neither: answered inactive.
    Unused,
}

fn roles(offer: &Offer) -> Vec<Role> {
    let mut mic_seen = false;
    let mut next_slot = 0;
    offer
        .sections
        .iter()
        .map(|s| {
            if !mic_seen && s.direction.sends() {
                mic_seen = true;
                Role::Mic
            } else if s.direction.receives() {
                next_slot += 1;
                Role::Slot(next_slot - 1)
            } else {
                Role::Unused
            }
        })
        .collect()
}

/// A token safe to copy into an SDP line (no whitespace, no control characters).
fn is_token(v: &str) -> bool {
    !v.is_empty() && v.bytes().all(|c| c.is_ascii_graphic())
}

/// The mid of the section the offerer publishes its microphone on, if it sends at all.
pub fn mic_mid(offer: &Offer) -> Option<String> {
    offer
        .sections
        .iter()
        .zip(roles(offer))
        .find(|(_, r)| matches!(r, Role::Mic))
        .map(|(s, _)| s.mid.clone())
}

/// The mids of the slot sections, in slot order: `slot_mids(offer)[i]` carries
/// `AnswerParams::slot_ssrcs[i]` (for `i < slot_ssrcs.len()`; later ones are answered inactive).
/// These are the sections the offerer receives on, other than its microphone section.
pub fn slot_mids(offer: &Offer) -> Vec<String> {
    offer
        .sections
        .iter()
        .zip(roles(offer))
        .filter(|(_, r)| matches!(r, Role::Slot(_)))
        .map(|(s, _)| s.mid.clone())
        .collect()
}
