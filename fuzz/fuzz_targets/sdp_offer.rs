//! SDP offers: parsing any text, and answering every offer that parses.
#![no_main]

use std::net::SocketAddr;

use libfuzzer_sys::fuzz_target;
use sluice_controlplane::fingerprint::Fingerprint;
use sluice_controlplane::sdp::{self, AnswerParams};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(offer) = sdp::parse_offer(text) else { return };
    let _ = sdp::slot_mids(&offer);
    let _ = sdp::mic_mid(&offer);
    let Ok(fingerprint) = "sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF".parse::<Fingerprint>() else { return };
    let params = AnswerParams {
        ice_ufrag: "srvU",
        ice_pwd: "server-password-1234567",
        fingerprint: &fingerprint,
        candidate: SocketAddr::from(([127, 0, 0, 1], 40000)),
        slot_ssrcs: &[1, 2, 3],
        cname: "sluice",
    };
    let _ = sdp::write_answer(&offer, &params);
});
