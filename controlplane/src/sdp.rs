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
//! A JSEP offer (RFC 8829) as browsers (Chromium) and aiortc produce it:
//! - one or more `m=audio` sections with proto `UDP/TLS/RTP/SAVPF` (or `UDP/TLS/RTP/SAVP`), all of
//!   them in one `a=group:BUNDLE` (RFC 8843), each with `a=mid` and `a=rtcp-mux` (RFC 8829 §5.1.3:
//!   sluice runs every stream over one 5-tuple);
//! - Opus (`opus/48000/2`) in every section, with the same payload type (BUNDLE, RFC 8843 §9.1.2:
//!   one PT means one codec across the bundle); its `a=fmtp` is echoed back;
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
//!   foreign media; clients offer audio only (see DESIGN.md, signaling).
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

use std::collections::HashSet;
use std::fmt::Write as _;
use std::io::Cursor;
use std::net::SocketAddr;

use ::sdp::description::common::Attribute;
use ::sdp::description::media::MediaDescription;
use ::sdp::description::session::SessionDescription;

use crate::fingerprint::{Fingerprint, FingerprintAlgorithm, FingerprintError};

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

fn attr<'a>(attrs: &'a [Attribute], key: &str) -> Option<&'a str> {
    attrs
        .iter()
        .find(|a| a.key == key)
        .map(|a| a.value.as_deref().unwrap_or(""))
}

/// A media-level attribute, else the session-level one.
fn attr_ms<'a>(m: &'a MediaDescription, s: &'a SessionDescription, key: &str) -> Option<&'a str> {
    attr(&m.attributes, key).or_else(|| attr(&s.attributes, key))
}

fn is_hex_fingerprint(v: &str) -> bool {
    !v.is_empty()
        && v.split(':')
            .all(|b| b.len() == 2 && b.bytes().all(|c| c.is_ascii_hexdigit()))
}

/// A token safe to copy into an SDP line (no whitespace, no control characters).
fn is_token(v: &str) -> bool {
    !v.is_empty() && v.bytes().all(|c| c.is_ascii_graphic())
}

/// The fingerprint of a section's (or the session's) `a=fingerprint` lines: sha-256 where there
/// are several, else the first one with a hash function sluice supports.
fn parse_fingerprint(attrs: &[Attribute]) -> Result<Option<Fingerprint>, SdpError> {
    let mut found: Vec<Fingerprint> = Vec::new();
    let mut unusable = None;
    for a in attrs.iter().filter(|a| a.key == "fingerprint") {
        let v = a.value.as_deref().unwrap_or("").trim();
        let (alg, hex) = v
            .split_once(' ')
            .ok_or_else(|| SdpError::Parse(format!("a=fingerprint:{v} lacks a hash algorithm")))?;
        let hex = hex.trim();
        if !is_token(alg) || !is_hex_fingerprint(hex) {
            return Err(SdpError::Parse(format!("malformed a=fingerprint:{v}")));
        }
        match v.parse::<Fingerprint>() {
            Ok(f) => found.push(f),
            Err(e) => unusable = Some(e),
        }
    }
    let pick = found
        .iter()
        .position(|f| f.algorithm() == FingerprintAlgorithm::Sha256)
        .unwrap_or(0);
    match (found.into_iter().nth(pick), unusable) {
        (Some(f), _) => Ok(Some(f)),
        (None, Some(e)) => Err(SdpError::BadFingerprint(e)),
        (None, None) => Ok(None),
    }
}

/// (payload type, fmtp) of Opus in one section, if offered.
fn find_opus(m: &MediaDescription) -> Result<Option<(u8, Option<String>)>, SdpError> {
    for a in m.attributes.iter().filter(|a| a.key == "rtpmap") {
        let v = a.value.as_deref().unwrap_or("");
        let Some((pt, enc)) = v.split_once(' ') else {
            continue;
        };
        if !enc.trim().eq_ignore_ascii_case("opus/48000/2") {
            continue;
        }
        let pt: u8 = pt
            .parse()
            .ok()
            .filter(|pt| *pt < 128)
            .ok_or_else(|| SdpError::Parse(format!("bad payload type in a=rtpmap:{v}")))?;
        if !m.media_name.formats.iter().any(|f| f == &pt.to_string()) {
            continue; // an rtpmap for a format the m= line does not list
        }
        let prefix = format!("{pt} ");
        let fmtp = m
            .attributes
            .iter()
            .filter(|a| a.key == "fmtp")
            .filter_map(|a| a.value.as_deref())
            .find_map(|v| v.strip_prefix(&prefix))
            .map(|f| f.trim().to_string())
            .filter(|f| !f.is_empty());
        if let Some(f) = &fmtp {
            if !f.bytes().all(|c| c.is_ascii_graphic() || c == b' ') {
                return Err(SdpError::Parse("control characters in opus a=fmtp".into()));
            }
        }
        return Ok(Some((pt, fmtp)));
    }
    Ok(None)
}

/// The id of the extension `uri` in one section (`a=extmap:<id>[/<direction>] <uri> ...`).
fn find_extmap(m: &MediaDescription, uri: &str) -> Result<Option<u8>, SdpError> {
    for a in m.attributes.iter().filter(|a| a.key == "extmap") {
        let v = a.value.as_deref().unwrap_or("");
        let mut it = v.split_ascii_whitespace();
        let (Some(id), Some(u)) = (it.next(), it.next()) else {
            continue;
        };
        if u != uri {
            continue;
        }
        let id = id.split('/').next().unwrap_or("");
        return match id.parse::<u8>() {
            // RFC 8285 §5: 1..=14 one-byte, 1..=255 two-byte; 15 is reserved in one-byte form.
            Ok(id) if id != 0 && id != 15 => Ok(Some(id)),
            _ => Err(SdpError::Parse(format!("bad id in a=extmap:{v}"))),
        };
    }
    Ok(None)
}

fn first_ssrc(m: &MediaDescription) -> Result<Option<u32>, SdpError> {
    match m.attributes.iter().find(|a| a.key == "ssrc") {
        None => Ok(None),
        Some(a) => {
            let v = a.value.as_deref().unwrap_or("");
            let id = v.split_ascii_whitespace().next().unwrap_or("");
            id.parse::<u32>()
                .map(Some)
                .map_err(|_| SdpError::Parse(format!("bad a=ssrc:{v}")))
        }
    }
}

/// Parse a client's offer. Never panics; every refusal is a descriptive [`SdpError`].
pub fn parse_offer(sdp: &str) -> Result<Offer, SdpError> {
    if sdp.len() > MAX_OFFER_LEN {
        return Err(SdpError::Parse(format!(
            "offer is {} bytes, at most {MAX_OFFER_LEN} allowed",
            sdp.len()
        )));
    }
    let desc = SessionDescription::unmarshal(&mut Cursor::new(sdp.as_bytes()))
        .map_err(|e| SdpError::Parse(e.to_string()))?;

    if let Some(m) = desc
        .media_descriptions
        .iter()
        .find(|m| m.media_name.media != "audio")
    {
        return Err(SdpError::UnsupportedMedia(m.media_name.media.clone()));
    }
    let media = &desc.media_descriptions;
    let Some(first) = media.first() else {
        return Err(SdpError::NoAudio);
    };

    // Sections: mid, direction, ssrc; structural requirements first.
    let mut sections = Vec::with_capacity(media.len());
    let mut mids = HashSet::new();
    for (i, m) in media.iter().enumerate() {
        let proto = m.media_name.protos.join("/");
        if proto != "UDP/TLS/RTP/SAVPF" && proto != "UDP/TLS/RTP/SAVP" {
            return Err(SdpError::UnsupportedProto(proto));
        }
        let mid = attr(&m.attributes, "mid")
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .ok_or(SdpError::NoMid(i))?;
        if !is_token(mid) || mid.len() > 32 {
            return Err(SdpError::Parse(format!("invalid a=mid:{mid}")));
        }
        if !mids.insert(mid) {
            return Err(SdpError::DuplicateMid(mid.to_string()));
        }
        if m.media_name.port.value == 0 && !m.has_attribute("bundle-only") {
            return Err(SdpError::RejectedSection(mid.to_string()));
        }
        if !m.has_attribute("rtcp-mux") {
            return Err(SdpError::NoRtcpMux);
        }
        let dir = ["sendrecv", "sendonly", "recvonly", "inactive"]
            .into_iter()
            .find(|k| m.has_attribute(k))
            .or_else(|| {
                ["sendrecv", "sendonly", "recvonly", "inactive"]
                    .into_iter()
                    .find(|k| desc.has_attribute(k))
            })
            .and_then(Direction::parse)
            .unwrap_or(Direction::SendRecv); // RFC 8866 §6.7: the default is sendrecv
        let ssrc = if dir.sends() { first_ssrc(m)? } else { None };
        sections.push(AudioSection {
            mid: mid.to_string(),
            direction: dir,
            ssrc,
        });
    }

    // BUNDLE: one group that holds every mid (other groups, e.g. LS, are ignored).
    let bundled = desc
        .attributes
        .iter()
        .filter(|a| a.key == "group")
        .filter_map(|a| a.value.as_deref())
        .filter_map(|v| {
            let mut it = v.split_ascii_whitespace();
            (it.next() == Some("BUNDLE")).then(|| it.collect::<HashSet<&str>>())
        })
        .any(|group| mids.iter().all(|m| group.contains(m)));
    if !bundled {
        return Err(SdpError::NotBundled);
    }

    // Opus: in every section, with one payload type.
    let (opus_pt, opus_fmtp) = find_opus(first)?.ok_or(SdpError::NoOpus)?;
    for m in &media[1..] {
        let (pt, _) = find_opus(m)?.ok_or(SdpError::NoOpus)?;
        if pt != opus_pt {
            return Err(SdpError::InconsistentBundle(format!(
                "opus is payload type {opus_pt} in one section and {pt} in another"
            )));
        }
    }
    let audio_level_ext = find_extmap(first, URI_AUDIO_LEVEL)?;
    let mid_ext = find_extmap(first, URI_MID)?;

    // Transport: from the BUNDLE-tagged (first) section, else the session level.
    let ice_ufrag = attr_ms(first, &desc, "ice-ufrag").map(str::trim);
    let ice_pwd = attr_ms(first, &desc, "ice-pwd").map(str::trim);
    let (ice_ufrag, ice_pwd) = match (ice_ufrag, ice_pwd) {
        (Some(u), Some(p)) if !u.is_empty() && !p.is_empty() => (u, p),
        _ => return Err(SdpError::NoIceCredentials),
    };
    // RFC 8839 §5.4: ice-char is ALPHA / DIGIT / "+" / "/"; ufrag 4..=256, pwd 22..=256.
    let ice_char = |s: &str| {
        s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'+' || c == b'/')
    };
    if !ice_char(ice_ufrag) || ice_ufrag.len() > 256 || !ice_char(ice_pwd) || ice_pwd.len() > 256 {
        return Err(SdpError::Parse("malformed a=ice-ufrag or a=ice-pwd".into()));
    }
    let fingerprint = match parse_fingerprint(&first.attributes)? {
        Some(f) => f,
        None => parse_fingerprint(&desc.attributes)?.ok_or(SdpError::NoFingerprint)?,
    };
    let setup = match attr_ms(first, &desc, "setup").map(str::trim) {
        Some(s @ ("actpass" | "active")) => s.to_string(),
        Some(other) => {
            let mut other = other.to_string();
            other.truncate(32);
            return Err(SdpError::UnsupportedSetup(other));
        }
        None => return Err(SdpError::UnsupportedSetup("(missing)".into())),
    };

    let offer = Offer {
        ice_ufrag: ice_ufrag.to_string(),
        ice_pwd: ice_pwd.to_string(),
        fingerprint,
        setup,
        opus_pt,
        opus_fmtp,
        audio_level_ext,
        mid_ext,
        sections,
    };
    let slots = roles(&offer)
        .iter()
        .filter(|r| matches!(r, Role::Slot(_)))
        .count();
    if slots > MAX_SLOTS {
        return Err(SdpError::TooManySlots {
            offered: slots,
            max: MAX_SLOTS,
        });
    }
    Ok(offer)
}

/// What the server puts in its answer.
#[derive(Debug, Clone)]
pub struct AnswerParams<'a> {
    pub ice_ufrag: &'a str,
    pub ice_pwd: &'a str,
    /// The server's DTLS certificate fingerprint.
    pub fingerprint: &'a Fingerprint,
    /// The worker's address (public IP), the one host candidate.
    pub candidate: SocketAddr,
    /// The SSRC sluice sends on each slot, in slot order (see [`slot_mids`]).
    pub slot_ssrcs: &'a [u32],
    pub cname: &'a str,
}

/// A deterministic session id (FNV-1a of the server's ufrag), below 2^62 as JSEP suggests.
fn session_id(ufrag: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in ufrag.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    h >> 2
}

/// Write the answer to `offer` (see the module doc for its shape). Every line ends with `\r\n`.
///
/// Fails only on bad [`AnswerParams`] (tokens with whitespace, port 0).
pub fn write_answer(offer: &Offer, p: &AnswerParams) -> Result<String, SdpError> {
    if !is_token(p.ice_ufrag) || !is_token(p.ice_pwd) {
        return Err(SdpError::InvalidParam(
            "ice_ufrag/ice_pwd must be non-empty tokens",
        ));
    }
    if !is_token(p.cname) {
        return Err(SdpError::InvalidParam("cname must be a non-empty token"));
    }
    if p.candidate.port() == 0 {
        return Err(SdpError::InvalidParam("candidate port must not be 0"));
    }
    let (ipv, ip, port) = match p.candidate {
        SocketAddr::V4(a) => ("IP4", a.ip().to_string(), a.port()),
        SocketAddr::V6(a) => ("IP6", a.ip().to_string(), a.port()),
    };
    let pt = offer.opus_pt;

    // `write!` into a String cannot fail; collect lines and join with CRLF.
    let mut s = String::with_capacity(1024 + 700 * offer.sections.len());
    let mut line = |l: std::fmt::Arguments| {
        let _ = s.write_fmt(l);
        s.push_str("\r\n");
    };
    line(format_args!("v=0"));
    line(format_args!(
        "o=sluice {} 1 IN {ipv} {ip}",
        session_id(p.ice_ufrag)
    ));
    line(format_args!("s=-"));
    line(format_args!("t=0 0"));
    line(format_args!("a=ice-lite"));
    let mids: Vec<&str> = offer.sections.iter().map(|s| s.mid.as_str()).collect();
    line(format_args!("a=group:BUNDLE {}", mids.join(" ")));
    line(format_args!("a=msid-semantic:WMS *"));

    for (sec, role) in offer.sections.iter().zip(roles(offer)) {
        line(format_args!("m=audio {port} UDP/TLS/RTP/SAVPF {pt}"));
        line(format_args!("c=IN {ipv} {ip}"));
        line(format_args!("a=mid:{}", sec.mid));
        line(format_args!("a=ice-ufrag:{}", p.ice_ufrag));
        line(format_args!("a=ice-pwd:{}", p.ice_pwd));
        line(format_args!("a=fingerprint:{}", p.fingerprint));
        line(format_args!("a=setup:passive"));
        line(format_args!("a=rtcp-mux"));
        line(format_args!(
            "a=candidate:1 1 udp 2130706431 {ip} {port} typ host"
        ));
        line(format_args!("a=end-of-candidates"));
        if let Some(id) = offer.audio_level_ext {
            line(format_args!("a=extmap:{id} {URI_AUDIO_LEVEL}"));
        }
        if let Some(id) = offer.mid_ext {
            line(format_args!("a=extmap:{id} {URI_MID}"));
        }
        let slot_ssrc = match role {
            Role::Slot(i) => p.slot_ssrcs.get(i).map(|ssrc| (i, *ssrc)),
            _ => None,
        };
        let dir = match (role, slot_ssrc) {
            (Role::Mic, _) => Direction::RecvOnly,
            (_, Some(_)) => Direction::SendOnly,
            _ => Direction::Inactive,
        };
        line(format_args!("a={}", dir.as_str()));
        if let Some((i, _)) = slot_ssrc {
            line(format_args!("a=msid:sluice slot{i}"));
        }
        line(format_args!("a=rtpmap:{pt} opus/48000/2"));
        if let Some(f) = &offer.opus_fmtp {
            line(format_args!("a=fmtp:{pt} {f}"));
        }
        if let Some((i, ssrc)) = slot_ssrc {
            line(format_args!("a=ssrc:{ssrc} cname:{}", p.cname));
            line(format_args!("a=ssrc:{ssrc} msid:sluice slot{i}"));
        }
    }
    Ok(s)
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

#[cfg(test)]
mod tests {
    use super::*;

    const FP_CLIENT: &str = "7B:8B:F0:65:5F:78:E2:51:3B:AC:6F:F3:3F:46:1B:35:DC:B8:5F:64:1A:24:C2:43:F0:A1:58:D0:A1:2C:19:08";
    const FP_SERVER: &str = "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89";

    /// aiortc 1.16 offer: one sendrecv (microphone) + two recvonly transceivers.
    fn aiortc_offer() -> String {
        [
            "v=0",
            "o=- 3940522143 3940522143 IN IP4 0.0.0.0",
            "s=-",
            "t=0 0",
            "a=group:BUNDLE 0 1 2",
            "a=msid-semantic:WMS *",
            "m=audio 50412 UDP/TLS/RTP/SAVPF 96 9 0 8",
            "c=IN IP4 10.77.0.2",
            "a=sendrecv",
            "a=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid",
            "a=extmap:2 urn:ietf:params:rtp-hdrext:ssrc-audio-level",
            "a=mid:0",
            "a=msid:9d2c6a0e-2f6b-4d0c-9a3c-5b8e4f1d7a21 1f4b5c6d-7e8f-4a1b-8c2d-3e4f5a6b7c8d",
            "a=rtcp:9 IN IP4 0.0.0.0",
            "a=rtcp-mux",
            "a=ssrc:2871164393 cname:4c1a0b2e-8f5d-4e7a-9b3c-6d2e1f0a9b8c",
            "a=rtpmap:96 opus/48000/2",
            "a=rtpmap:9 G722/8000",
            "a=rtpmap:0 PCMU/8000",
            "a=rtpmap:8 PCMA/8000",
            "a=candidate:5b1f0d6a1e2c3b4a5d6e7f8091a2b3c4 1 udp 2130706431 10.77.0.2 50412 typ host",
            "a=end-of-candidates",
            "a=ice-ufrag:Qx3P",
            "a=ice-pwd:Zc8kJ2mT9vLq4wRb7nYs1eFh",
            &format!("a=fingerprint:sha-256 {FP_CLIENT}"),
            "a=fingerprint:sha-384 1A:2B:3C:4D:5E:6F:70:81:92:A3:B4:C5:D6:E7:F8:09:1A:2B:3C:4D:5E:6F:70:81:92:A3:B4:C5:D6:E7:F8:09:1A:2B:3C:4D:5E:6F:70:81:92:A3:B4:C5:D6:E7:F8:09",
            "a=setup:actpass",
            "m=audio 50412 UDP/TLS/RTP/SAVPF 96 9 0 8",
            "c=IN IP4 10.77.0.2",
            "a=recvonly",
            "a=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid",
            "a=extmap:2 urn:ietf:params:rtp-hdrext:ssrc-audio-level",
            "a=mid:1",
            "a=rtcp:9 IN IP4 0.0.0.0",
            "a=rtcp-mux",
            "a=ssrc:1409771205 cname:4c1a0b2e-8f5d-4e7a-9b3c-6d2e1f0a9b8c",
            "a=rtpmap:96 opus/48000/2",
            "a=rtpmap:9 G722/8000",
            "a=rtpmap:0 PCMU/8000",
            "a=rtpmap:8 PCMA/8000",
            "a=candidate:5b1f0d6a1e2c3b4a5d6e7f8091a2b3c4 1 udp 2130706431 10.77.0.2 50412 typ host",
            "a=end-of-candidates",
            "a=ice-ufrag:Qx3P",
            "a=ice-pwd:Zc8kJ2mT9vLq4wRb7nYs1eFh",
            &format!("a=fingerprint:sha-256 {FP_CLIENT}"),
            "a=setup:actpass",
            "m=audio 50412 UDP/TLS/RTP/SAVPF 96 9 0 8",
            "c=IN IP4 10.77.0.2",
            "a=recvonly",
            "a=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid",
            "a=extmap:2 urn:ietf:params:rtp-hdrext:ssrc-audio-level",
            "a=mid:2",
            "a=rtcp:9 IN IP4 0.0.0.0",
            "a=rtcp-mux",
            "a=ssrc:3566290921 cname:4c1a0b2e-8f5d-4e7a-9b3c-6d2e1f0a9b8c",
            "a=rtpmap:96 opus/48000/2",
            "a=rtpmap:9 G722/8000",
            "a=rtpmap:0 PCMU/8000",
            "a=rtpmap:8 PCMA/8000",
            "a=candidate:5b1f0d6a1e2c3b4a5d6e7f8091a2b3c4 1 udp 2130706431 10.77.0.2 50412 typ host",
            "a=end-of-candidates",
            "a=ice-ufrag:Qx3P",
            "a=ice-pwd:Zc8kJ2mT9vLq4wRb7nYs1eFh",
            &format!("a=fingerprint:sha-256 {FP_CLIENT}"),
            "a=setup:actpass",
            "",
        ]
        .join("\r\n")
    }

    fn chromium_section(mid: &str, dir: &str, send: bool) -> String {
        let mut l = vec![
            "m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126".to_string(),
            "c=IN IP4 0.0.0.0".into(),
            "a=rtcp:9 IN IP4 0.0.0.0".into(),
            "a=ice-ufrag:h7Ts".into(),
            "a=ice-pwd:Wq2f0Qd8vB3nL6xK1pZr9sYc".into(),
            "a=ice-options:trickle".into(),
            format!("a=fingerprint:sha-256 {FP_CLIENT}"),
            "a=setup:actpass".into(),
            format!("a=mid:{mid}"),
            "a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level".into(),
            "a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time".into(),
            "a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"
                .into(),
            "a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid".into(),
            format!("a={dir}"),
        ];
        if send {
            l.push(
                "a=msid:5f1e7a2c-0b3d-4c8e-9f6a-1d2b3c4e5f60 8a7b6c5d-4e3f-4a2b-9c1d-0e9f8a7b6c5d"
                    .into(),
            );
        }
        l.extend(
            [
                "a=rtcp-mux",
                "a=rtcp-rsize",
                "a=rtpmap:111 opus/48000/2",
                "a=rtcp-fb:111 transport-cc",
                "a=fmtp:111 minptime=10;useinbandfec=1",
                "a=rtpmap:63 red/48000/2",
                "a=fmtp:63 111/111",
                "a=rtpmap:9 G722/8000",
                "a=rtpmap:0 PCMU/8000",
                "a=rtpmap:8 PCMA/8000",
                "a=rtpmap:13 CN/8000",
                "a=rtpmap:110 telephone-event/48000",
                "a=rtpmap:126 telephone-event/8000",
            ]
            .map(String::from),
        );
        if send {
            l.push("a=ssrc:3735928559 cname:Yw4Xq0pN2mB7kLzA".into());
            l.push("a=ssrc:3735928559 msid:5f1e7a2c-0b3d-4c8e-9f6a-1d2b3c4e5f60 8a7b6c5d-4e3f-4a2b-9c1d-0e9f8a7b6c5d".into());
        }
        l.join("\r\n") + "\r\n"
    }

    /// Chromium 156 offer: addTrack(mic) + two addTransceiver('audio', {direction: 'recvonly'}).
    fn chromium_offer() -> String {
        let head = [
            "v=0",
            "o=- 4611731400430051336 2 IN IP4 127.0.0.1",
            "s=-",
            "t=0 0",
            "a=group:BUNDLE 0 1 2",
            "a=extmap-allow-mixed",
            "a=msid-semantic: WMS 5f1e7a2c-0b3d-4c8e-9f6a-1d2b3c4e5f60",
            "",
        ]
        .join("\r\n");
        head + &chromium_section("0", "sendrecv", true)
            + &chromium_section("1", "recvonly", false)
            + &chromium_section("2", "recvonly", false)
    }

    fn server_fp() -> &'static Fingerprint {
        static FP: std::sync::OnceLock<Fingerprint> = std::sync::OnceLock::new();
        FP.get_or_init(|| format!("sha-256 {FP_SERVER}").parse().unwrap())
    }

    fn params(slots: &[u32]) -> AnswerParams<'_> {
        AnswerParams {
            ice_ufrag: "sLu1",
            ice_pwd: "abcdefghijklmnopqrstuv0123",
            fingerprint: server_fp(),
            candidate: "203.0.113.7:40001".parse().unwrap(),
            slot_ssrcs: slots,
            cname: "sluice",
        }
    }

    /// Split an answer into its m-sections (index 0 = session level).
    fn blocks(answer: &str) -> Vec<Vec<&str>> {
        let mut out = vec![Vec::new()];
        for l in answer.split("\r\n").filter(|l| !l.is_empty()) {
            if l.starts_with("m=") {
                out.push(Vec::new());
            }
            out.last_mut().unwrap().push(l);
        }
        out
    }

    fn assert_crlf(answer: &str) {
        assert!(answer.ends_with("\r\n"));
        for l in answer.split_inclusive('\n') {
            assert!(l.ends_with("\r\n"), "line without CRLF: {l:?}");
            assert!(!l[..l.len() - 2].contains('\r'), "stray CR in {l:?}");
        }
    }

    /// The lines every answered section must carry, and the ones it must not.
    fn check_common(sec: &[&str], pt: u8, fmtp: Option<&str>, exts: &[String]) {
        let has = |l: &str| assert!(sec.contains(&l), "missing {l:?} in {sec:#?}");
        has(&format!("m=audio 40001 UDP/TLS/RTP/SAVPF {pt}"));
        has("c=IN IP4 203.0.113.7");
        has("a=ice-ufrag:sLu1");
        has("a=ice-pwd:abcdefghijklmnopqrstuv0123");
        has(&format!("a=fingerprint:sha-256 {FP_SERVER}"));
        has("a=setup:passive");
        has("a=rtcp-mux");
        has("a=candidate:1 1 udp 2130706431 203.0.113.7 40001 typ host");
        has("a=end-of-candidates");
        has(&format!("a=rtpmap:{pt} opus/48000/2"));
        let rtpmaps: Vec<_> = sec.iter().filter(|l| l.starts_with("a=rtpmap:")).collect();
        assert_eq!(rtpmaps.len(), 1, "only opus: {rtpmaps:?}");
        let fmtps: Vec<_> = sec.iter().filter(|l| l.starts_with("a=fmtp:")).collect();
        match fmtp {
            Some(f) => assert_eq!(fmtps, [&format!("a=fmtp:{pt} {f}").as_str()]),
            None => assert!(fmtps.is_empty()),
        }
        let extmaps: Vec<String> = sec
            .iter()
            .filter(|l| l.starts_with("a=extmap:"))
            .map(|l| l.to_string())
            .collect();
        assert_eq!(extmaps, exts);
        assert_eq!(sec.iter().filter(|l| l.starts_with("a=setup:")).count(), 1);
        let dirs = sec
            .iter()
            .filter(|l| {
                matches!(
                    **l,
                    "a=sendrecv" | "a=sendonly" | "a=recvonly" | "a=inactive"
                )
            })
            .count();
        assert_eq!(dirs, 1, "exactly one direction");
    }

    fn check_session(sess: &[&str], bundle: &str) {
        assert_eq!(sess[0], "v=0");
        assert!(sess[1].starts_with("o=sluice "));
        assert!(sess.contains(&"s=-"));
        assert!(sess.contains(&"t=0 0"));
        assert!(sess.contains(&"a=ice-lite"));
        assert!(sess.contains(&"a=msid-semantic:WMS *"));
        assert!(sess.contains(&bundle), "{sess:?}");
    }

    #[test]
    fn parses_aiortc_offer() {
        let o = parse_offer(&aiortc_offer()).unwrap();
        assert_eq!(o.ice_ufrag, "Qx3P");
        assert_eq!(o.ice_pwd, "Zc8kJ2mT9vLq4wRb7nYs1eFh");
        assert_eq!(o.fingerprint.to_string(), format!("sha-256 {FP_CLIENT}"));
        assert_eq!(o.setup, "actpass");
        assert_eq!(o.opus_pt, 96);
        assert_eq!(o.opus_fmtp, None);
        assert_eq!(o.mid_ext, Some(1));
        assert_eq!(o.audio_level_ext, Some(2));
        let want = [
            ("0", Direction::SendRecv, Some(2871164393)),
            ("1", Direction::RecvOnly, None),
            ("2", Direction::RecvOnly, None),
        ];
        assert_eq!(o.sections.len(), 3);
        for (s, (mid, dir, ssrc)) in o.sections.iter().zip(want) {
            assert_eq!((s.mid.as_str(), s.direction, s.ssrc), (mid, dir, ssrc));
        }
        assert_eq!(slot_mids(&o), ["1", "2"]);
    }

    #[test]
    fn answers_aiortc_offer() {
        let o = parse_offer(&aiortc_offer()).unwrap();
        let a = write_answer(&o, &params(&[0x1111_1111, 0x2222_2222])).unwrap();
        assert_crlf(&a);
        let b = blocks(&a);
        assert_eq!(b.len(), 4);
        check_session(&b[0], "a=group:BUNDLE 0 1 2");
        let exts = [
            format!("a=extmap:2 {URI_AUDIO_LEVEL}"),
            format!("a=extmap:1 {URI_MID}"),
        ];
        for sec in &b[1..] {
            check_common(sec, 96, None, &exts);
        }
        assert!(b[1].contains(&"a=mid:0") && b[1].contains(&"a=recvonly"));
        assert!(!b[1].iter().any(|l| l.starts_with("a=ssrc:")));
        for (sec, mid, ssrc, i) in [
            (&b[2], "1", 0x1111_1111u32, 0),
            (&b[3], "2", 0x2222_2222, 1),
        ] {
            assert!(sec.contains(&format!("a=mid:{mid}").as_str()));
            assert!(sec.contains(&"a=sendonly"));
            let ssrcs: Vec<_> = sec.iter().filter(|l| l.starts_with("a=ssrc:")).collect();
            assert_eq!(
                ssrcs,
                [
                    &format!("a=ssrc:{ssrc} cname:sluice").as_str(),
                    &format!("a=ssrc:{ssrc} msid:sluice slot{i}").as_str()
                ]
            );
            assert!(sec.contains(&format!("a=msid:sluice slot{i}").as_str()));
        }
        // Re-parsable by the same SDP grammar.
        SessionDescription::unmarshal(&mut Cursor::new(a.as_bytes())).unwrap();
    }

    #[test]
    fn parses_and_answers_chromium_offer() {
        let o = parse_offer(&chromium_offer()).unwrap();
        assert_eq!(o.ice_ufrag, "h7Ts");
        assert_eq!(o.fingerprint.algorithm().name(), "sha-256");
        assert_eq!(o.opus_pt, 111);
        assert_eq!(o.opus_fmtp.as_deref(), Some("minptime=10;useinbandfec=1"));
        assert_eq!(o.audio_level_ext, Some(1));
        assert_eq!(o.mid_ext, Some(4));
        assert_eq!(o.sections[0].ssrc, Some(3735928559));
        assert_eq!(o.sections[0].direction, Direction::SendRecv);
        assert_eq!(o.sections[1].direction, Direction::RecvOnly);
        assert_eq!(slot_mids(&o), ["1", "2"]);

        let a = write_answer(&o, &params(&[7, 8])).unwrap();
        assert_crlf(&a);
        let b = blocks(&a);
        assert_eq!(b.len(), 4);
        check_session(&b[0], "a=group:BUNDLE 0 1 2");
        let exts = [
            format!("a=extmap:1 {URI_AUDIO_LEVEL}"),
            format!("a=extmap:4 {URI_MID}"),
        ];
        for sec in &b[1..] {
            check_common(sec, 111, Some("minptime=10;useinbandfec=1"), &exts);
            assert!(!sec
                .iter()
                .any(|l| l.contains("red/") || l.contains("transport-cc")));
        }
        assert!(b[1].contains(&"a=recvonly"));
        assert!(b[2].contains(&"a=sendonly") && b[2].contains(&"a=ssrc:7 cname:sluice"));
        assert!(b[3].contains(&"a=sendonly") && b[3].contains(&"a=ssrc:8 cname:sluice"));
    }

    #[test]
    fn slots_beyond_ssrcs_are_inactive() {
        let o = parse_offer(&aiortc_offer()).unwrap();
        let a = write_answer(&o, &params(&[42])).unwrap();
        let b = blocks(&a);
        assert!(b[2].contains(&"a=sendonly") && b[2].contains(&"a=ssrc:42 cname:sluice"));
        assert!(b[3].contains(&"a=inactive"));
        assert!(!b[3]
            .iter()
            .any(|l| l.starts_with("a=ssrc:") || l.starts_with("a=msid:")));
        assert!(b[0].contains(&"a=group:BUNDLE 0 1 2"));
    }

    #[test]
    fn listener_without_mic_gets_all_slots() {
        let offer = chromium_offer().replace("a=sendrecv", "a=recvonly");
        let o = parse_offer(&offer).unwrap();
        assert_eq!(slot_mids(&o), ["0", "1", "2"]);
        let a = write_answer(&o, &params(&[1, 2, 3])).unwrap();
        let b = blocks(&a);
        assert!(b[1].contains(&"a=ssrc:1 cname:sluice") && b[1].contains(&"a=sendonly"));
    }

    #[test]
    fn ipv6_candidate() {
        let o = parse_offer(&aiortc_offer()).unwrap();
        let mut p = params(&[1, 2]);
        p.candidate = "[2001:db8::7]:40001".parse().unwrap();
        let a = write_answer(&o, &p).unwrap();
        assert!(a.contains("c=IN IP6 2001:db8::7\r\n"));
        assert!(a.contains("a=candidate:1 1 udp 2130706431 2001:db8::7 40001 typ host\r\n"));
    }

    #[test]
    fn bad_answer_params() {
        let o = parse_offer(&aiortc_offer()).unwrap();
        let mut p = params(&[]);
        p.cname = "a b\r\na=evil";
        assert!(matches!(
            write_answer(&o, &p),
            Err(SdpError::InvalidParam(_))
        ));
        // A malformed server fingerprint cannot be written any more: `AnswerParams` takes a
        // typed `Fingerprint`.
    }

    fn remove_lines(sdp: &str, prefix: &str) -> String {
        sdp.split_inclusive("\r\n")
            .filter(|l| !l.starts_with(prefix))
            .collect()
    }

    #[test]
    fn refusals() {
        let ai = aiortc_offer();
        let ch = chromium_offer();
        let cases: Vec<(String, SdpError)> = vec![
            (
                ai.split("m=audio").next().unwrap().to_string(),
                SdpError::NoAudio,
            ),
            (ai.replace("opus/48000/2", "speex/16000"), SdpError::NoOpus),
            (remove_lines(&ai, "a=ice-pwd:"), SdpError::NoIceCredentials),
            (
                remove_lines(&ch, "a=ice-ufrag:"),
                SdpError::NoIceCredentials,
            ),
            (remove_lines(&ai, "a=fingerprint:"), SdpError::NoFingerprint),
            (
                ai.replace("a=setup:actpass", "a=setup:passive"),
                SdpError::UnsupportedSetup("passive".into()),
            ),
            (remove_lines(&ch, "a=group:"), SdpError::NotBundled),
            (
                ch.replace("a=group:BUNDLE 0 1 2", "a=group:BUNDLE 0 1"),
                SdpError::NotBundled,
            ),
            (remove_lines(&ch, "a=rtcp-mux"), SdpError::NoRtcpMux),
            (remove_lines(&ch, "a=mid:"), SdpError::NoMid(0)),
            (
                ch.replace("a=mid:2", "a=mid:1"),
                SdpError::DuplicateMid("1".into()),
            ),
            (
                ch.replace("m=audio 9", "m=video 9"),
                SdpError::UnsupportedMedia("video".into()),
            ),
            (
                ch.replace("UDP/TLS/RTP/SAVPF", "RTP/AVP"),
                SdpError::UnsupportedProto("RTP/AVP".into()),
            ),
        ];
        for (i, (sdp, want)) in cases.into_iter().enumerate() {
            let got = parse_offer(&sdp);
            assert_eq!(got.as_ref().err(), Some(&want), "case {i}");
            assert!(!want.to_string().is_empty());
        }
        for garbage in [
            "",
            "hello world",
            "v=0\r\n",
            "\u{0}\u{ff}=",
            "m=audio 9 x\r\n",
        ] {
            assert!(
                matches!(
                    parse_offer(garbage),
                    Err(SdpError::Parse(_) | SdpError::NoAudio)
                ),
                "{garbage:?}"
            );
        }
        let big = "a".repeat(MAX_OFFER_LEN + 1);
        assert!(matches!(parse_offer(&big), Err(SdpError::Parse(_))));
    }

    #[test]
    fn too_many_slots() {
        let mut sdp = chromium_offer().replace(
            "a=group:BUNDLE 0 1 2",
            &format!(
                "a=group:BUNDLE {}",
                (0..=MAX_SLOTS + 1)
                    .map(|i| i.to_string())
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
        );
        for i in 3..=MAX_SLOTS + 1 {
            sdp += &chromium_section(&i.to_string(), "recvonly", false);
        }
        assert_eq!(
            parse_offer(&sdp).err(),
            Some(SdpError::TooManySlots {
                offered: MAX_SLOTS + 1,
                max: MAX_SLOTS
            })
        );
    }

    #[test]
    fn active_setup_and_session_level_transport() {
        // Transport attributes at session level only, setup:active.
        let ai = aiortc_offer().replace("a=setup:actpass", "a=setup:active");
        let o = parse_offer(&ai).unwrap();
        assert_eq!(o.setup, "active");
        let sess_fp = format!("a=fingerprint:sha-256 {FP_CLIENT}\r\n");
        let moved = remove_lines(&ai, "a=fingerprint:").replace(
            "a=msid-semantic:WMS *\r\n",
            &format!("a=msid-semantic:WMS *\r\n{sess_fp}"),
        );
        assert_eq!(
            parse_offer(&moved).unwrap().fingerprint.to_string(),
            format!("sha-256 {FP_CLIENT}")
        );
    }

    /// xorshift64*: deterministic mutations without a dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    #[test]
    fn mutated_offers_never_panic() {
        let bases = [aiortc_offer(), chromium_offer()];
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let (mut ok, mut err) = (0, 0);
        for n in 0..10_000 {
            let mut lines: Vec<String> = bases[n % 2].split("\r\n").map(String::from).collect();
            for _ in 0..1 + rng.below(4) {
                if lines.is_empty() {
                    break;
                }
                let i = rng.below(lines.len());
                match rng.below(6) {
                    0 => {
                        lines.remove(i);
                    }
                    1 => {
                        let l = lines[i].clone();
                        lines.insert(rng.below(lines.len() + 1), l);
                    }
                    2 => {
                        // truncate the line at a char boundary
                        let l = &mut lines[i];
                        let cut = rng.below(l.len() + 1);
                        let cut = (0..=cut)
                            .rev()
                            .find(|c| l.is_char_boundary(*c))
                            .unwrap_or(0);
                        l.truncate(cut);
                    }
                    3 => {
                        // truncate the whole offer
                        lines.truncate(i);
                    }
                    4 => {
                        let j = rng.below(lines.len());
                        lines.swap(i, j);
                    }
                    _ => {
                        // replace one byte with a "dangerous" character
                        let l = &mut lines[i];
                        if !l.is_empty() {
                            let pos = rng.below(l.len());
                            if l.is_char_boundary(pos) && l.is_char_boundary(pos + 1) {
                                let c =
                                    [" ", ":", "=", "/", "0", "é", "\n", "\r", "-"][rng.below(9)];
                                l.replace_range(pos..pos + 1, c);
                            }
                        }
                    }
                }
            }
            let sdp = lines.join("\r\n");
            match parse_offer(&sdp) {
                Ok(o) => {
                    ok += 1;
                    let a = write_answer(&o, &params(&[1, 2])).unwrap();
                    assert_crlf(&a);
                    let _ = slot_mids(&o);
                }
                Err(e) => {
                    err += 1;
                    assert!(!e.to_string().is_empty());
                }
            }
        }
        // Both outcomes must occur, or the mutations test nothing.
        assert!(ok > 100 && err > 1000, "ok {ok}, err {err}");
    }
}
