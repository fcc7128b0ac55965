//! The DTLS record checks sluice runs before OpenSSL sees a datagram, and the ClientHello fragment
//! reader, on any bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_controlplane::dtls;

fuzz_target!(|data: &[u8]| {
    let _ = dtls::check_records(data);
    if let Some(f) = dtls::first_handshake_fragment(data) {
        let _ = f.is_partial();
    }
});
