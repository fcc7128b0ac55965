//! Compound RTCP: every packet, its sender info, report blocks and BYE sources, from any bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_dataplane::packet::rtcp::{first_ssrc, RtcpCompound};

fuzz_target!(|data: &[u8]| {
    let _ = first_ssrc(data);
    let _ = RtcpCompound::validate(data);
    for p in RtcpCompound::new(data).flatten() {
        let _ = (p.packet_type(), p.count(), p.padding(), p.length_bytes());
        let _ = (p.sender_ssrc(), p.media_ssrc(), p.sender_info());
        let _ = p.report_blocks().count();
        let _ = p.bye_ssrcs().count();
        let _ = p.body();
    }
});
