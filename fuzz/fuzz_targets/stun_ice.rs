//! STUN messages and ICE connectivity checks: parsing, MESSAGE-INTEGRITY and FINGERPRINT checks,
//! the username split and XOR-MAPPED-ADDRESS, from any bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_dataplane::ice::{self, IceCredentials};
use sluice_dataplane::packet::stun::StunMessage;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = StunMessage::parse(data) {
        let _ = (m.message_type(), m.method(), m.class(), m.transaction_id());
        for a in m.attributes() {
            let _ = a;
        }
        let _ = ice::xor_mapped_address(&m);
    }
    let creds = IceCredentials::new("srvU", "server-password-1234567", "cliU");
    let _ = ice::check_binding_request(data, &creds);
    let _ = ice::verify_message(data, b"server-password-1234567");
    if let Some(u) = ice::request_username(data) {
        let _ = ice::split_username(u);
    }
});
