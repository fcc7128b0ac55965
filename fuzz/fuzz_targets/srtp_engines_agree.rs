//! Our in-place SRTP engine against webrtc-srtp: the same packets (any sequence numbers, jumps
//! backwards and forwards across the 16-bit wrap, CSRCs and header extensions) protected with the same
//! keys by both, and each opened by both. Whatever an engine opens must be exactly what was sent: an
//! engine may refuse a packet (replay windows differ; and webrtc-srtp 0.17 places some indices in
//! another rollover than RFC 3711 §3.3.1 and libsrtp do, so its bytes can differ from ours: see
//! `rollover_follows_rfc_3711_and_libsrtp_across_jumps` in the engine's tests), never accept it as
//! something else.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_dataplane::srtp::{SrtpContext, SrtpEngine, SrtpProfile};
use sluice_dataplane::testkit::fixture_keys;

/// One RTP packet from 4 bytes of the input (sequence number, shape, payload length) and the payload.
fn packet(seq: u16, shape: u8, payload: &[u8]) -> Vec<u8> {
    let cc = shape & 0x03;
    let ext = shape & 0x04 != 0;
    let mut p = vec![0x80 | cc | if ext { 0x10 } else { 0 }, 111];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 960).to_be_bytes());
    p.extend_from_slice(&0x1234_5678u32.to_be_bytes());
    for i in 0..cc {
        p.extend_from_slice(&u32::from(i).to_be_bytes());
    }
    if ext {
        // One-byte extensions: an audio level and a MID.
        p.extend_from_slice(&[0xBE, 0xDE, 0, 2, 0x10, 0x80 | 30, 0x20, b'0', 0, 0, 0, 0]);
    }
    p.extend_from_slice(payload);
    p
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, mut rest)) = data.split_first() else { return };
    let profile = SrtpProfile::ALL[usize::from(sel) % SrtpProfile::ALL.len()];
    let keys = fixture_keys(profile, 3);
    let ctx = |e| SrtpContext::new(e, &keys).expect("fixture keys");
    let (mut ours_tx, mut web_tx) = (ctx(SrtpEngine::InPlace), ctx(SrtpEngine::WebrtcSrtp));
    let (mut ours_rx, mut web_rx) = (ctx(SrtpEngine::InPlace), ctx(SrtpEngine::WebrtcSrtp));
    let tag = profile.rtp_tag_len();
    while rest.len() >= 4 {
        let seq = u16::from_be_bytes([rest[0], rest[1]]);
        let shape = rest[2];
        let len = usize::from(rest[3] % 64).min(rest.len() - 4);
        let plain = packet(seq, shape, &rest[4..4 + len]);
        rest = &rest[4 + len..];

        let mut a = plain.clone();
        a.resize(plain.len() + tag, 0);
        let ra = ours_tx.protect_rtp(&mut a, plain.len());
        let mut b = plain.clone();
        b.resize(plain.len() + tag, 0);
        let rb = web_tx.protect_rtp(&mut b, plain.len());
        // A sender may refuse an index it cannot place (ours: a sequence number from before the
        // first wrap, when there is no earlier rollover count).
        for (sent, ok) in [(&a, ra.is_ok()), (&b, rb.is_ok())] {
            if !ok {
                continue;
            }
            for (rx, who) in [(&mut ours_rx, "ours"), (&mut web_rx, "webrtc-srtp")] {
                let mut x = sent.clone();
                if let Ok(n) = rx.unprotect_rtp(&mut x) {
                    assert_eq!(&x[..n], &plain[..], "{profile:?} seq {seq}: {who} opened another payload");
                }
            }
        }
    }
});
