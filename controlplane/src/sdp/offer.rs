//! Reading a client's offer: the `sdp` crate parses the grammar, this file checks it against what
//! sluice serves (module doc of [`super`], "What is accepted" and "What is refused").

use std::collections::HashSet;
use std::io::Cursor;

use ::sdp::description::common::Attribute;
use ::sdp::description::media::MediaDescription;
use ::sdp::description::session::SessionDescription;

use super::*;
use crate::fingerprint::FingerprintAlgorithm;

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

/// Whether an `a=rtpmap` encoding is Opus: `opus/48000/2` as RFC 7587 §7 prescribes, or
/// `opus/48000` without the channel count, which GStreamer writes for caps lacking
/// `encoding-params` (Opus has one RTP format whatever the channels, so nothing else can be meant).
/// Any other rate or channel count is not Opus.
fn is_opus(encoding: &str) -> bool {
    let e = encoding.trim();
    e.eq_ignore_ascii_case("opus/48000/2") || e.eq_ignore_ascii_case("opus/48000")
}

/// (payload type, fmtp) of Opus in one section, if offered.
fn find_opus(m: &MediaDescription) -> Result<Option<(u8, Option<String>)>, SdpError> {
    for a in m.attributes.iter().filter(|a| a.key == "rtpmap") {
        let v = a.value.as_deref().unwrap_or("");
        let Some((pt, enc)) = v.split_once(' ') else {
            continue;
        };
        if !is_opus(enc) {
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
        // Quoted back in the error, at most 32 characters (not bytes: the value is the peer's, and
        // cutting inside a multi-byte character would panic).
        Some(other) => return Err(SdpError::UnsupportedSetup(other.chars().take(32).collect())),
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
