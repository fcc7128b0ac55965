//! RTP headers, CSRCs and header extensions (one- and two-byte forms, the audio level) from any bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_dataplane::packet::RtpHeader;

fuzz_target!(|data: &[u8]| {
    for parsed in [RtpHeader::parse(data), RtpHeader::parse_encrypted(data)] {
        let Ok(h) = parsed else { continue };
        let _ = (h.marker(), h.payload_type(), h.sequence_number(), h.timestamp(), h.ssrc());
        let _ = h.csrcs().count();
        if let Some(ext) = h.extensions() {
            let _ = (ext.profile(), ext.is_one_byte(), ext.is_two_byte(), ext.appbits());
            for e in ext.iter() {
                let _ = e;
            }
            for id in 0..16u8 {
                let _ = ext.get(id);
            }
        }
        for id in 1..15u8 {
            let _ = h.audio_level(id);
        }
    }
});
