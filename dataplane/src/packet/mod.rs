//! Zero-copy packet views: RFC 7983 demultiplexing and read-only views over RTP, RTCP and STUN bytes.
//!
//! Everything here is pure: a view borrows the datagram (`&'a [u8]`), validates the framing once in
//! its `parse`/`new`, and then answers accessors straight from the bytes. There is no I/O, no
//! allocation and no `unsafe`.
//!
//! # Invariants
//!
//! - **Never panic on peer bytes.** Every read goes through `get`/`first_chunk`/`split_at_checked` or
//!   through a fixed-size array reference obtained that way; lengths come from checked or saturating
//!   arithmetic. A malformed packet yields a [`ParseError`] (or an iterator that simply ends), never a
//!   panic. The robustness test at the bottom of this file feeds ~200k random and mutated datagrams
//!   through every parser and accessor.
//! - **A view that parsed is internally consistent**: for an [`RtpHeader`],
//!   `header_len() + payload().len() + padding_len() == datagram length`; for an [`RtcpPacket`],
//!   `length_bytes()` bytes are present; for a [`StunMessage`], the attribute area fits.
//! - **Zero allocation**: views and iterators are `Copy`/`Clone` structs holding slices.
//!
//! # Demux
//!
//! [`classify`] looks at the first byte as RFC 7983 §7 prescribes (STUN, DTLS, RTP/RTCP share one
//! 5-tuple under BUNDLE + rtcp-mux), and tells RTP from RTCP by the second byte (RFC 5761 §4).
//!
//! # Example
//!
//! ```
//! use sluice_dataplane::packet::{classify, write_one_byte_extensions, PacketKind, RtpHeader};
//!
//! // An Opus packet with the audio level (id 1) in a one-byte extension block.
//! let mut pkt = vec![0x90, 111, 0, 1, 0, 0, 0x03, 0xC0, 0, 0, 0, 42];
//! let mut ext = [0u8; 8];
//! let n = write_one_byte_extensions(&mut ext, &[(1, &[0x80 | 25])]).unwrap();
//! pkt.extend_from_slice(&ext[..n]);
//! pkt.extend_from_slice(&[0xAB; 40]);
//!
//! assert_eq!(classify(&pkt), PacketKind::Rtp);
//! let rtp = RtpHeader::parse(&pkt).unwrap();
//! assert_eq!((rtp.ssrc(), rtp.sequence_number(), rtp.payload().len()), (42, 1, 40));
//! let level = rtp.audio_level(1).unwrap();
//! assert!(level.voice_activity);
//! assert_eq!(level.level, 25); // -25 dBov
//! ```
//!
//! # Modules
//!
//! - [`rtp`]: the RTP fixed header, CSRCs, padding and in-place writers for header rewriting.
//! - [`ext`]: RTP header extensions (RFC 8285, one- and two-byte forms) and audio level (RFC 6464).
//! - [`rtcp`]: RTCP compound packets (RFC 3550 §6), report blocks, SRTCP routing by SSRC.
//! - [`stun`]: STUN messages and attributes (RFC 8489), enough for an ICE-lite agent.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod ext;
pub mod rtcp;
pub mod rtp;
pub mod stun;

pub use ext::{
    write_one_byte_extensions, AudioLevel, ExtensionIter, HeaderExtension, HeaderExtensions,
};
pub use rtcp::{
    first_ssrc, write_rr, write_sdes_cname, write_sr, ReportBlock, ReportBlocks, RtcpCompound,
    RtcpPacket, SenderInfo,
};
pub use rtp::{
    set_marker, set_payload_type, set_sequence_number, set_ssrc, set_timestamp, RtpHeader,
    RTP_HEADER_LEN,
};
pub use stun::{
    StunAttribute, StunAttributes, StunClass, StunMessage, STUN_HEADER_LEN, STUN_MAGIC_COOKIE,
};

/// What a datagram arriving on a media port is, judged from its first two bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketKind {
    /// STUN (ICE connectivity checks and consent), first byte 0..=3.
    Stun,
    /// DTLS record (handshake, alerts), first byte 20..=63.
    Dtls,
    /// RTP (or SRTP) media, first byte 128..=191 and a non-RTCP payload type.
    Rtp,
    /// RTCP (or SRTCP), first byte 128..=191 and packet type 192..=223.
    Rtcp,
    /// Anything else (ZRTP, TURN channels, garbage, empty datagrams).
    Unknown,
}

/// RFC 7983 first-byte demux.
///
/// ```text
///  //= https://www.rfc-editor.org/rfc/rfc7983#section-7
///  +----------------+
///  |        [0..3] -+--> forward to STUN
///  |      [20..63] -+--> forward to DTLS
///  |    [128..191] -+--> forward to RTP/RTCP
///  +----------------+
/// ```
///
/// RTP and RTCP are told apart by RFC 5761 §4: RTCP packet types 192..=223 land, with the marker bit
/// masked off, in the payload-type range 64..=95, which RTP must then not use. A datagram of fewer
/// than two bytes in the RTP/RTCP range cannot be either and is `Unknown`.
#[inline]
pub fn classify(buf: &[u8]) -> PacketKind {
    match buf {
        [0..=3, ..] => PacketKind::Stun,
        [20..=63, ..] => PacketKind::Dtls,
        [128..=191, b1, ..] => {
            if (64..=95).contains(&(b1 & 0x7f)) {
                PacketKind::Rtcp
            } else {
                PacketKind::Rtp
            }
        }
        _ => PacketKind::Unknown,
    }
}

/// True when `buf` is (S)RTCP by [`classify`]'s rule: what a reader of forwarded RTP skips, since
/// sluice sends each slot stream's sender reports on the same 5-tuple.
#[inline]
pub fn is_rtcp(buf: &[u8]) -> bool {
    classify(buf) == PacketKind::Rtcp
}

/// Why a datagram could not be viewed as the packet it claimed to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// Fewer bytes than the fixed header (or the CSRC list it announces) needs.
    #[error("packet too short for its header")]
    TooShort,
    /// The version field is not 2 (RTP/RTCP).
    #[error("unsupported RTP/RTCP version (expected 2)")]
    BadVersion,
    /// A length field points past the end of the datagram, or is not a multiple of 4 where it must be.
    #[error("length field does not fit the datagram")]
    BadLength,
    /// The P bit is set but the padding count is 0 or larger than the payload.
    #[error("invalid padding count")]
    BadPadding,
    /// The X bit is set but the extension header or block does not fit the datagram.
    #[error("RTP header extension does not fit the packet")]
    BadExtension,
    /// Not a STUN message: the two leading bits are not zero or the magic cookie is wrong.
    #[error("not a STUN message (leading bits or magic cookie)")]
    BadStun,
}

/// Reads a big-endian `u32` from a 4-byte array.
#[inline(always)]
pub(crate) fn be32(b: &[u8; 4]) -> u32 {
    u32::from_be_bytes(*b)
}

/// Reads a big-endian `u32` at `off`, or `None` if it does not fit.
#[inline]
pub(crate) fn read_u32(buf: &[u8], off: usize) -> Option<u32> {
    buf.get(off..)?.first_chunk::<4>().map(be32)
}

/// Reads a big-endian `u16` at `off`, or `None` if it does not fit.
#[inline]
pub(crate) fn read_u16(buf: &[u8], off: usize) -> Option<u16> {
    buf.get(off..)?
        .first_chunk::<2>()
        .map(|b| u16::from_be_bytes(*b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_first_byte_ranges() {
        assert_eq!(classify(&[]), PacketKind::Unknown);
        for b0 in 0..=255u8 {
            let kind = classify(&[b0, 0, 0, 0]);
            let want = match b0 {
                0..=3 => PacketKind::Stun,
                20..=63 => PacketKind::Dtls,
                128..=191 => PacketKind::Rtp,
                _ => PacketKind::Unknown,
            };
            assert_eq!(kind, want, "first byte {b0}");
        }
    }

    #[test]
    fn classify_rtp_vs_rtcp() {
        for pt in 0..=255u8 {
            let kind = classify(&[0x80, pt]);
            let want = if (192..=223).contains(&pt) || (64..=95).contains(&pt) {
                PacketKind::Rtcp
            } else {
                PacketKind::Rtp
            };
            assert_eq!(kind, want, "second byte {pt}");
        }
        // Opus PT 111 with and without marker.
        assert_eq!(classify(&[0x80, 111]), PacketKind::Rtp);
        assert_eq!(classify(&[0x80, 0x80 | 111]), PacketKind::Rtp);
        // SR, RR, RTPFB, PSFB.
        for pt in [200u8, 201, 205, 206] {
            assert_eq!(classify(&[0x81, pt]), PacketKind::Rtcp);
        }
        // A lone RTP-range byte cannot be RTP or RTCP.
        assert_eq!(classify(&[0x80]), PacketKind::Unknown);
    }

    #[test]
    fn errors_display() {
        for e in [
            ParseError::TooShort,
            ParseError::BadVersion,
            ParseError::BadLength,
            ParseError::BadPadding,
            ParseError::BadExtension,
            ParseError::BadStun,
        ] {
            assert!(!e.to_string().is_empty());
        }
    }

    /// Deterministic xorshift64* PRNG: no new dependencies, reproducible failures.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            self.0 = x;
            x.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
        fn byte(&mut self) -> u8 {
            self.next() as u8
        }
    }

    /// Seeds that look like real traffic, so mutations reach deep into the parsers.
    fn seeds() -> Vec<Vec<u8>> {
        let mut seeds = Vec::new();
        // RTP with CSRC, one-byte extensions and padding.
        let mut rtp = vec![
            0xB1, 0xEF, 0x12, 0x34, 0, 0, 0x10, 0, 0xDE, 0xAD, 0xBE, 0xEF,
        ];
        rtp.extend_from_slice(&[0, 0, 0, 7]);
        let mut ext = [0u8; 32];
        let n = write_one_byte_extensions(&mut ext, &[(1, &[0x85]), (3, b"0"), (5, &[1, 2, 3])])
            .expect("fits");
        rtp.extend_from_slice(&ext[..n]);
        rtp.extend_from_slice(&[9; 40]);
        rtp.extend_from_slice(&[0, 0, 3]);
        seeds.push(rtp);
        // RTP with a two-byte extension block.
        let mut rtp2 = vec![0x90, 111, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3];
        rtp2.extend_from_slice(&[0x10, 0x00, 0, 2, 7, 3, 1, 2, 3, 0, 9, 0]);
        rtp2.extend_from_slice(&[1; 20]);
        seeds.push(rtp2);
        // RTCP SR (1 report block) + SDES.
        let mut sr = vec![0x81, 200, 0, 12, 0, 0, 0, 1];
        sr.extend_from_slice(&[0; 20]);
        sr.extend_from_slice(&[
            0, 0, 0, 2, 5, 0, 0, 1, 0, 0, 0, 9, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3,
        ]);
        sr.extend_from_slice(&[0x81, 202, 0, 2, 0, 0, 0, 1, 1, 2, b'a', b'b']);
        seeds.push(sr);
        // STUN binding request with USERNAME and PRIORITY.
        let mut stun = vec![0, 1, 0, 16, 0x21, 0x12, 0xA4, 0x42];
        stun.extend_from_slice(&[7; 12]);
        stun.extend_from_slice(&[0, 6, 0, 3, b'a', b':', b'b', 0, 0, 0x24, 0, 4, 1, 2, 3, 4]);
        seeds.push(stun);
        seeds
    }

    /// How often each parser accepted its input, so the test proves it reached the deep paths.
    #[derive(Default)]
    struct Hits {
        rtp: usize,
        ext_elems: usize,
        rtcp: usize,
        report_blocks: usize,
        stun: usize,
        stun_attrs: usize,
    }

    fn exercise(buf: &[u8], hits: &mut Hits) {
        let _ = classify(buf);
        if let Ok(h) = RtpHeader::parse(buf) {
            hits.rtp += 1;
            let _ = (
                h.marker(),
                h.payload_type(),
                h.sequence_number(),
                h.timestamp(),
                h.ssrc(),
            );
            let _ = (h.has_padding(), h.csrc_count(), h.csrcs().count());
            assert_eq!(
                h.header_len() + h.payload().len() + h.padding_len(),
                buf.len()
            );
            if let Some(exts) = h.extensions() {
                let _ = (exts.profile(), exts.raw().len(), exts.appbits());
                for e in exts.iter() {
                    hits.ext_elems += 1;
                    let _ = AudioLevel::parse(e.data);
                }
                let _ = exts.get(1);
            }
            for id in [0u8, 1, 3, 14, 15, 255] {
                let _ = h.audio_level(id);
            }
            let mut copy = buf.to_vec();
            set_sequence_number(&mut copy, 1);
            set_timestamp(&mut copy, 2);
            set_ssrc(&mut copy, 3);
            set_marker(&mut copy, true);
            set_payload_type(&mut copy, 111);
        }
        if let Ok(h) = RtpHeader::parse_encrypted(buf) {
            assert_eq!(h.header_len() + h.payload().len(), buf.len());
            let _ = (h.ssrc(), h.audio_level(1));
        }
        // The writers must not panic even on short buffers.
        let mut short = buf.get(..buf.len().min(11)).unwrap_or(&[]).to_vec();
        set_sequence_number(&mut short, 1);
        set_marker(&mut short, true);
        for p in RtcpCompound::new(buf).flatten() {
            hits.rtcp += 1;
            let _ = (p.packet_type(), p.count(), p.padding(), p.padding_len());
            let _ = (p.sender_ssrc(), p.media_ssrc(), p.sender_info());
            assert!(p.bye_ssrcs().count() <= usize::from(p.count()));
            assert_eq!(p.bytes().len(), p.length_bytes());
            assert!(p.body().len() + 4 + p.padding_len() == p.length_bytes());
            for rb in p.report_blocks() {
                hits.report_blocks += 1;
                assert!((-(1 << 23)..(1 << 23)).contains(&rb.cumulative_lost));
            }
        }
        let _ = first_ssrc(buf);
        if let Ok(m) = StunMessage::parse(buf) {
            hits.stun += 1;
            let _ = (
                m.message_type(),
                m.method(),
                m.class(),
                m.is_binding_request(),
            );
            let _ = (m.transaction_id(), m.bytes().len());
            for a in m.attributes() {
                hits.stun_attrs += 1;
                assert!(a.offset + 4 + a.value.len() <= m.bytes().len());
            }
            let _ = m.attribute(stun::USERNAME);
        }
    }

    #[test]
    fn robustness_random_and_mutated_inputs_never_panic() {
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        let seeds = seeds();
        let mut hits = Hits::default();
        for s in &seeds {
            exercise(s, &mut hits);
        }
        let mut buf = Vec::with_capacity(256);
        for i in 0..200_000usize {
            buf.clear();
            if i % 4 == 0 {
                // Fully random, biased towards interesting first bytes.
                let len = rng.below(200);
                buf.extend((0..len).map(|_| rng.byte()));
                if let Some(b0) = buf.first_mut() {
                    *b0 = match rng.below(4) {
                        0 => rng.byte() & 0x03,
                        1 => 0x80 | (rng.byte() & 0x3f),
                        _ => *b0,
                    };
                }
            } else {
                // Mutate a seed: flip bytes, truncate, or extend.
                let seed = &seeds[rng.below(seeds.len())];
                buf.extend_from_slice(seed);
                for _ in 0..=rng.below(4) {
                    if buf.is_empty() {
                        break;
                    }
                    let at = rng.below(buf.len());
                    match rng.below(4) {
                        0 => buf[at] = rng.byte(),
                        1 => buf[at] ^= 1 << rng.below(8),
                        2 => buf.truncate(at),
                        _ => buf.push(rng.byte()),
                    }
                }
            }
            exercise(&buf, &mut hits);
        }
        eprintln!(
            "robustness hits: rtp {} ext {} rtcp {} report blocks {} stun {} stun attrs {}",
            hits.rtp, hits.ext_elems, hits.rtcp, hits.report_blocks, hits.stun, hits.stun_attrs
        );
        // The mutated seeds must keep reaching the success paths, or the test proves little.
        assert!(hits.rtp > 10_000, "rtp {}", hits.rtp);
        assert!(hits.ext_elems > 10_000, "ext {}", hits.ext_elems);
        assert!(hits.rtcp > 10_000, "rtcp {}", hits.rtcp);
        assert!(hits.report_blocks > 1_000, "rb {}", hits.report_blocks);
        assert!(hits.stun > 5_000, "stun {}", hits.stun);
        assert!(hits.stun_attrs > 5_000, "stun attrs {}", hits.stun_attrs);
    }
}
