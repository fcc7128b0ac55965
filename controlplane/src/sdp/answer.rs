//! Writing the server's answer (module doc of [`super`]): ICE-lite, `a=setup:passive`, our
//! fingerprint, one host candidate, the microphone section `recvonly` and each slot `sendonly` with
//! its SSRC.

use std::fmt::Write as _;
use std::net::SocketAddr;

use super::*;

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
