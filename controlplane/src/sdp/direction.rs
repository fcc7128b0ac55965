//! Would this SDP send audio? A pure line-level check of the media direction (RFC 8866 §6.7) that
//! the p2p relay applies to a listener's `peer_offer`/`peer_answer`: sluice does not interpret those
//! SDPs otherwise, so the check must hold for any text, parsable or not.
//!
//! An `m=audio` section sends unless its direction is `recvonly` or `inactive`; a section without
//! a direction attribute takes the session-level one, and without that the default `sendrecv`. A
//! section with port 0 is rejected or stopped and sends nothing, unless it is `a=bundle-only`
//! (RFC 8843 §6: bundled sections offered with port 0 still carry media).

/// Whether `sdp` has an `m=audio` section whose direction lets its writer send audio
/// (`sendrecv` or `sendonly`, stated or by default).
pub fn sends_audio(sdp: &str) -> bool {
    let mut session_dir: Option<&str> = None;
    // The section being read: (is audio, port is 0, direction, bundle-only).
    let mut section: Option<(bool, bool, Option<&str>, bool)> = None;
    let mut any = false;
    let sends = |s: (bool, bool, Option<&str>, bool), session: Option<&str>| {
        let (audio, port0, dir, bundle_only) = s;
        let dir = dir.or(session).unwrap_or("sendrecv");
        audio && (!port0 || bundle_only) && matches!(dir, "sendrecv" | "sendonly")
    };
    for line in sdp.lines() {
        let line = line.trim();
        if let Some(m) = line.strip_prefix("m=") {
            if let Some(s) = section.take() {
                any |= sends(s, session_dir);
            }
            let mut fields = m.split_ascii_whitespace();
            let audio = fields
                .next()
                .is_some_and(|k| k.eq_ignore_ascii_case("audio"));
            // "49170" or "49170/2"; anything else counts as a live port (the cautious reading).
            let port0 = fields
                .next()
                .and_then(|p| p.split('/').next())
                .is_some_and(|p| p.parse::<u32>() == Ok(0));
            section = Some((audio, port0, None, false));
            continue;
        }
        let Some(attr) = line.strip_prefix("a=") else {
            continue;
        };
        let dir = match attr {
            "sendrecv" | "sendonly" | "recvonly" | "inactive" => Some(attr),
            _ => None,
        };
        match (&mut section, dir) {
            (Some(s), Some(d)) => s.2 = Some(d),
            (None, Some(d)) => session_dir = Some(d),
            (Some(s), None) if attr == "bundle-only" => s.3 = true,
            _ => {}
        }
    }
    if let Some(s) = section {
        any |= sends(s, session_dir);
    }
    any
}

#[cfg(test)]
mod tests {
    use super::sends_audio;

    fn sdp(session: &str, sections: &[&str]) -> String {
        let mut s = format!("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n{session}");
        for m in sections {
            s += m;
        }
        s
    }

    const RECV: &str = "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=recvonly\r\n";
    const SEND: &str = "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:1\r\na=sendonly\r\n";
    const BOTH: &str = "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:2\r\na=sendrecv\r\n";
    const NODIR: &str = "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:3\r\n";

    #[test]
    fn sendrecv_and_sendonly_audio_sections_send() {
        assert!(sends_audio(&sdp("", &[BOTH])));
        assert!(sends_audio(&sdp("", &[SEND])));
        assert!(sends_audio(&sdp("", &[RECV, SEND])), "any section counts");
    }

    #[test]
    fn recvonly_and_inactive_audio_sections_do_not_send() {
        assert!(!sends_audio(&sdp("", &[RECV])));
        assert!(!sends_audio(&sdp("", &[RECV, RECV])));
        let inactive = RECV.replace("recvonly", "inactive");
        assert!(!sends_audio(&sdp("", &[&inactive])));
    }

    #[test]
    fn a_section_without_a_direction_takes_the_session_one_then_sendrecv() {
        assert!(sends_audio(&sdp("", &[NODIR])), "default sendrecv");
        assert!(!sends_audio(&sdp("a=recvonly\r\n", &[NODIR])));
        assert!(
            sends_audio(&sdp("a=recvonly\r\n", &[BOTH])),
            "media level wins"
        );
    }

    #[test]
    fn port_zero_sections_send_only_when_bundle_only() {
        let stopped = BOTH.replace("audio 9", "audio 0");
        assert!(!sends_audio(&sdp("", &[&stopped])));
        let bundled = format!("{stopped}a=bundle-only\r\n");
        assert!(sends_audio(&sdp("", &[&bundled])));
    }

    #[test]
    fn non_audio_sections_and_garbage_do_not_count_as_audio() {
        let video = BOTH.replace("m=audio", "m=video");
        assert!(!sends_audio(&sdp("", &[&video])));
        assert!(!sends_audio(""));
        assert!(!sends_audio("garbage\n\u{1F600}\r\n"));
        // Bare LF line ends and stray whitespace read the same.
        assert!(sends_audio("m=audio 9 RTP/AVP 0\na=sendonly \n"));
    }
}
