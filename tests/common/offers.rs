//! SDP offers the signaling tests send (shaped like real clients' offers).

/// An offer shaped like aiortc's: a sendrecv microphone section with `ssrc` and two recvonly slot
/// sections.
pub fn aiortc_like_offer(ssrc: u32) -> String {
    let fp = (0..32)
        .map(|i| format!("{:02X}", i * 7 % 256))
        .collect::<Vec<_>>()
        .join(":");
    let mut sdp = String::from(
        "v=0\r\no=- 3900000000 3900000000 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1 2\r\na=msid-semantic:WMS *\r\n",
    );
    for (mid, dir) in [("0", "sendrecv"), ("1", "recvonly"), ("2", "recvonly")] {
        sdp += "m=audio 40000 UDP/TLS/RTP/SAVPF 96 0\r\nc=IN IP4 127.0.0.1\r\n";
        sdp += &format!("a={dir}\r\na=mid:{mid}\r\n");
        sdp += "a=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid\r\na=extmap:2 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n";
        sdp += "a=rtcp:9 IN IP4 0.0.0.0\r\na=rtcp-mux\r\n";
        if dir == "sendrecv" {
            sdp += &format!("a=ssrc:{ssrc} cname:client\r\n");
        }
        sdp += "a=rtpmap:96 opus/48000/2\r\na=rtpmap:0 PCMU/8000\r\n";
        sdp += "a=candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host\r\na=end-of-candidates\r\n";
        sdp += "a=ice-ufrag:cliU\r\na=ice-pwd:clientpasswordabcdefghij1234\r\n";
        sdp += &format!("a=fingerprint:sha-256 {fp}\r\na=setup:actpass\r\n");
    }
    sdp
}
