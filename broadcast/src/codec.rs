//! libopus (Debian's, through the `opus` crate): each speaker's packets decoded to 20 ms frames of
//! PCM for the [`crate::mix::Mixer`], and the mix encoded again for the Opus rendition.
//!
//! One [`SpeakerDecoder`] per speaker (Opus decoders keep state between packets, and conceal a
//! lost packet from what came before), one [`MixEncoder`] per broadcast.

use crate::mix::{FRAME, RATE};

/// The largest Opus packet (RFC 6716 3.2.1: 1275 bytes of frame data and a TOC byte).
const MAX_PACKET: usize = 1276;

/// A libopus call that failed.
#[derive(Debug, thiserror::Error)]
#[error("libopus: {0}")]
pub struct CodecError(#[from] opus::Error);

/// Decodes one speaker's Opus packets into mono 48 kHz frames.
pub struct SpeakerDecoder {
    decoder: opus::Decoder,
}

impl SpeakerDecoder {
    /// A decoder for a new speaker.
    pub fn new() -> Result<Self, CodecError> {
        Ok(Self {
            decoder: opus::Decoder::new(RATE, opus::Channels::Mono)?,
        })
    }

    /// Decodes the packet of one 20 ms frame into `out`; `None` (the packet was lost) conceals it
    /// from what came before. Returns the samples written (a packet of another duration than 20
    /// ms is refused by libopus as too large for the frame, and counts as an error).
    pub fn decode(
        &mut self,
        packet: Option<&[u8]>,
        out: &mut [i16; FRAME],
    ) -> Result<usize, CodecError> {
        Ok(self.decoder.decode(packet.unwrap_or(&[]), out, false)?)
    }
}

/// Encodes the mix: mono, 48 kHz, 20 ms frames, for audio (not only speech: a room may play
/// music), constant bitrate so every segment of a second is about the same size.
pub struct MixEncoder {
    encoder: opus::Encoder,
    packet: Vec<u8>,
    lookahead: u16,
}

impl MixEncoder {
    /// An encoder at `bitrate` bits per second.
    pub fn new(bitrate: i32) -> Result<Self, CodecError> {
        let mut encoder = opus::Encoder::new(RATE, opus::Channels::Mono, opus::Application::Audio)?;
        encoder.set_bitrate(opus::Bitrate::Bits(bitrate))?;
        encoder.set_vbr(false)?;
        let lookahead = encoder.get_lookahead()?;
        Ok(Self {
            encoder,
            packet: vec![0; MAX_PACKET],
            lookahead: u16::try_from(lookahead).unwrap_or(0),
        })
    }

    /// The encoder's delay in samples: the `pre_skip` of the init segment, which players drop.
    pub fn lookahead(&self) -> u16 {
        self.lookahead
    }

    /// Encodes one frame of the mix; returns its packet.
    pub fn encode(&mut self, frame: &[i16; FRAME]) -> Result<&[u8], CodecError> {
        let n = self.encoder.encode(frame, &mut self.packet)?;
        Ok(&self.packet[..n])
    }
}

/// The energy of `samples` at `hz` (the Goertzel filter): for tests and diagnostics that look
/// for a tone in a mix.
pub fn tone_energy(samples: &[i16], hz: f32) -> f32 {
    let w = 2.0 * std::f32::consts::PI * hz / RATE as f32;
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f32, 0.0f32);
    for &x in samples {
        let s0 = f32::from(x) / 32768.0 + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    (s1 * s1 + s2 * s2 - coeff * s1 * s2) / samples.len().max(1) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tone_survives_encoding_and_decoding_and_a_lost_packet_is_concealed() {
        let mut enc = MixEncoder::new(64_000).expect("encoder");
        let mut dec = SpeakerDecoder::new().expect("decoder");
        assert!(enc.lookahead() > 0 && enc.lookahead() < 960);
        let mut out = [0i16; FRAME];
        let mut heard = Vec::new();
        for i in 0..50 {
            let packet = enc
                .encode(&crate::mix::sine_frame(440.0, 10_000.0, i))
                .expect("encode")
                .to_vec();
            assert!(packet.len() > 50 && packet.len() < 400, "{}", packet.len());
            assert_eq!(dec.decode(Some(&packet), &mut out).expect("decode"), FRAME);
            if i >= 10 {
                heard.extend_from_slice(&out);
            }
        }
        let (at, off) = (tone_energy(&heard, 440.0), tone_energy(&heard, 1_000.0));
        assert!(at > 100.0 * off, "440 Hz: {at}, 1 kHz: {off}");
        assert_eq!(dec.decode(None, &mut out).expect("concealed"), FRAME);
        assert!(
            dec.decode(Some(&[0xFF, 0xFF, 0xFF]), &mut out).is_err(),
            "garbage is an error"
        );
    }
}
