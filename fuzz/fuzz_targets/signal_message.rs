//! Signaling messages from clients (JSON over the WebSocket), from any bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_controlplane::messages::ClientMsg;

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<ClientMsg>(data);
});
