//! The SDP module's tests: real offers of aiortc, Chromium and webrtcbin, refusals, mutated offers.

use std::io::Cursor;

use ::sdp::description::session::SessionDescription;

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

/// GStreamer 1.22 webrtcbin offer (bundle-policy max-bundle): the payloader's sink pad (sendrecv,
/// `a=ssrc` from its caps) and two recvonly transceivers whose caps lack `encoding-params=2`, so
/// their rtpmap has no channel count; bundled sections are `a=bundle-only` with port 0.
fn webrtcbin_offer() -> String {
    let section = |mid: &str, port: u16, dir: &str, rtpmap: &str, extra: &[&str]| {
        let mut l = vec![
            format!("m=audio {port} UDP/TLS/RTP/SAVPF 111"),
            "c=IN IP4 0.0.0.0".into(),
            "a=setup:actpass".into(),
            "a=ice-ufrag:SgeC8m8DTdg31dCoIFBwY09XvTy2pP7+".into(),
            "a=ice-pwd:QN6Dc5JVMnGD9r81rNCnAY8PI38R4Yas".into(),
        ];
        if port == 0 {
            l.push("a=bundle-only".into());
        }
        l.extend(["a=rtcp-mux", "a=rtcp-rsize", dir].map(String::from));
        l.push(format!("a=rtpmap:111 {rtpmap}"));
        l.push("a=rtcp-fb:111 transport-cc".into());
        l.extend(extra.iter().map(|e| e.to_string()));
        l.push(format!("a=mid:{mid}"));
        l.push(format!("a=fingerprint:sha-256 {FP_CLIENT}"));
        l.push("a=rtcp-mux-only".into());
        l.join("\r\n") + "\r\n"
    };
    let head = [
        "v=0",
        "o=- 4618171652158432580 0 IN IP4 0.0.0.0",
        "s=-",
        "t=0 0",
        "a=ice-options:trickle",
        "a=group:BUNDLE audio0 audio1 audio2",
        "",
    ]
    .join("\r\n");
    head + &section(
        "audio0",
        9,
        "a=sendrecv",
        "OPUS/48000/2",
        &[
            "a=fmtp:111 sprop-stereo=0;sprop-maxcapturerate=48000",
            "a=ssrc:4093638141 msid:user1297998662@host-6316aa5f webrtctransceiver0",
            "a=ssrc:4093638141 cname:user1297998662@host-6316aa5f",
        ],
    ) + &section("audio1", 0, "a=recvonly", "OPUS/48000", &[])
        + &section("audio2", 0, "a=recvonly", "OPUS/48000", &[])
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
fn parses_and_answers_webrtcbin_offer_with_and_without_channel_count_and_ssrc() {
    let o = parse_offer(&webrtcbin_offer()).unwrap();
    assert_eq!(o.opus_pt, 111);
    assert_eq!(
        o.opus_fmtp.as_deref(),
        Some("sprop-stereo=0;sprop-maxcapturerate=48000")
    );
    assert_eq!((o.audio_level_ext, o.mid_ext), (None, None));
    assert_eq!(o.sections[0].direction, Direction::SendRecv);
    assert_eq!(o.sections[0].ssrc, Some(4093638141));
    assert_eq!(slot_mids(&o), ["audio1", "audio2"]);
    // `opus/48000` (no channel count) is answered as RFC 7587 writes it, in every section.
    let a = write_answer(&o, &params(&[5, 6])).unwrap();
    let b = blocks(&a);
    assert_eq!(b.len(), 4);
    check_session(&b[0], "a=group:BUNDLE audio0 audio1 audio2");
    for sec in &b[1..] {
        check_common(
            sec,
            111,
            Some("sprop-stereo=0;sprop-maxcapturerate=48000"),
            &[],
        );
    }
    assert!(b[2].contains(&"a=sendonly") && b[2].contains(&"a=ssrc:5 cname:sluice"));

    // Created before the encoder's caps reached webrtcbin: no a=ssrc at all.
    let o = parse_offer(&remove_lines(&webrtcbin_offer(), "a=ssrc:")).unwrap();
    assert_eq!(o.sections[0].ssrc, None);
    assert_eq!(slot_mids(&o), ["audio1", "audio2"]);

    // Another rate or channel count is not Opus.
    for other in ["OPUS/48000/1", "OPUS/24000", "OPUS/48000/2/1", "OPUS"] {
        let sdp = webrtcbin_offer().replace("OPUS/48000/2", other);
        assert_eq!(parse_offer(&sdp).err(), Some(SdpError::NoOpus), "{other}");
        let sdp = webrtcbin_offer().replace("OPUS/48000\r\n", &format!("{other}\r\n"));
        assert_eq!(parse_offer(&sdp).err(), Some(SdpError::NoOpus), "{other}");
    }
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
        // Found by fuzzing (issue 10): a long multi-byte value used to be cut inside a character,
        // panicking the signaling task.
        (
            ai.replace("a=setup:actpass", &format!("a=setup:{}", "é".repeat(40))),
            SdpError::UnsupportedSetup("é".repeat(32)),
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
    let bases = [aiortc_offer(), chromium_offer(), webrtcbin_offer()];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut ok, mut err) = (0, 0);
    for n in 0..10_000 {
        let mut lines: Vec<String> = bases[n % 3].split("\r\n").map(String::from).collect();
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
                            let c = [" ", ":", "=", "/", "0", "é", "\n", "\r", "-"][rng.below(9)];
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
