//! A read-only view over an RTP packet (RFC 3550 §5.1) and in-place writers for header rewriting.
//!
//! ```text
//!  //= https://www.rfc-editor.org/rfc/rfc3550#section-5.1
//!   0                   1                   2                   3
//!   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//!  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!  |V=2|P|X|  CC   |M|     PT      |       sequence number         |
//!  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!  |                           timestamp                           |
//!  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!  |           synchronization source (SSRC) identifier            |
//!  +=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+
//!  |            contributing source (CSRC) identifiers             |
//!  |                             ....                              |
//!  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!  |   defined by profile          |           length              |  (if X)
//!  |                        header extension                       |
//!  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!  |                     payload ...       | padding ... | pad count |  (if P)
//! ```
//!
//! Invariants of a parsed [`RtpHeader`]: version is 2; the CSRC list and the extension block (if X)
//! lie inside the datagram; if P is set the last byte is a padding count in `1..=payload+padding`
//! bytes; and `header_len() + payload().len() + padding_len()` is the datagram length.
//!
//! On an SRTP packet the header is in the clear (RFC 3711 §3.1), so a view over ciphertext is valid for
//! routing; only `payload()` is then encrypted (and includes the auth tag), and the padding check may
//! reject it, so parse SRTP after decryption when the payload or padding matter.

use super::ext::{AudioLevel, HeaderExtensions};
use super::{be32, ParseError};

/// Length of the fixed RTP header (no CSRCs, no extension).
pub const RTP_HEADER_LEN: usize = 12;

/// A zero-copy view over a validated RTP packet.
#[derive(Debug, Clone, Copy)]
pub struct RtpHeader<'a> {
    /// The fixed 12-byte header (array reference: accessors cannot go out of bounds).
    fixed: &'a [u8; RTP_HEADER_LEN],
    /// The whole datagram.
    buf: &'a [u8],
    /// Fixed header + CSRCs + extension block.
    header_len: usize,
    /// Trailing padding bytes (including the count byte), 0 when P is clear.
    padding_len: usize,
    /// The extension block when X is set.
    ext: Option<HeaderExtensions<'a>>,
}

impl<'a> RtpHeader<'a> {
    /// Validates `buf` as an RTP packet and returns a view over it.
    ///
    /// Checks: at least 12 bytes ([`ParseError::TooShort`]), version 2 ([`ParseError::BadVersion`]),
    /// the CSRC list fits ([`ParseError::TooShort`]), the extension header and block fit
    /// ([`ParseError::BadExtension`]), and the padding count is at least 1 and fits after the header
    /// ([`ParseError::BadPadding`], RFC 3550 §5.1 "P").
    #[inline]
    pub fn parse(buf: &'a [u8]) -> Result<Self, ParseError> {
        Self::parse_inner(buf, true)
    }

    /// Like [`parse`](Self::parse) but for an SRTP packet before decryption: the header, CSRCs and
    /// extension block are in the clear and validated the same way, but the padding count is not
    /// (RFC 3711 §3.1: padding is encrypted and the last bytes are the auth tag), so
    /// `padding_len()` is 0 and `payload()` is the ciphertext plus tag. Use it to route a packet to its
    /// SRTP context by SSRC; parse again with [`parse`](Self::parse) after decryption.
    #[inline]
    pub fn parse_encrypted(buf: &'a [u8]) -> Result<Self, ParseError> {
        Self::parse_inner(buf, false)
    }

    #[inline(always)]
    fn parse_inner(buf: &'a [u8], check_padding: bool) -> Result<Self, ParseError> {
        let fixed: &[u8; RTP_HEADER_LEN] = buf.first_chunk().ok_or(ParseError::TooShort)?;
        let b0 = fixed[0];
        if b0 >> 6 != 2 {
            return Err(ParseError::BadVersion);
        }
        let mut header_len = RTP_HEADER_LEN + 4 * usize::from(b0 & 0x0f);
        if buf.len() < header_len {
            return Err(ParseError::TooShort);
        }
        let ext = if b0 & 0x10 != 0 {
            // RFC 3550 §5.3.1: 16-bit profile, 16-bit length in 32-bit words (excluding this word).
            let word: &[u8; 4] = buf
                .get(header_len..)
                .and_then(|s| s.first_chunk())
                .ok_or(ParseError::BadExtension)?;
            let profile = u16::from_be_bytes([word[0], word[1]]);
            let words = usize::from(u16::from_be_bytes([word[2], word[3]]));
            let start = header_len + 4;
            let end = start + 4 * words;
            let data = buf.get(start..end).ok_or(ParseError::BadExtension)?;
            header_len = end;
            Some(HeaderExtensions::new(profile, data))
        } else {
            None
        };
        let padding_len = if check_padding && b0 & 0x20 != 0 {
            let count = usize::from(*buf.last().ok_or(ParseError::BadPadding)?);
            if count == 0 || count > buf.len().saturating_sub(header_len) {
                return Err(ParseError::BadPadding);
            }
            count
        } else {
            0
        };
        Ok(Self {
            fixed,
            buf,
            header_len,
            padding_len,
            ext,
        })
    }

    /// The marker bit (for audio: first packet after a silence, RFC 3551 §4.1).
    #[inline]
    pub fn marker(&self) -> bool {
        self.fixed[1] & 0x80 != 0
    }

    /// The 7-bit payload type.
    #[inline]
    pub fn payload_type(&self) -> u8 {
        self.fixed[1] & 0x7f
    }

    /// The 16-bit sequence number.
    #[inline]
    pub fn sequence_number(&self) -> u16 {
        u16::from_be_bytes([self.fixed[2], self.fixed[3]])
    }

    /// The 32-bit media timestamp.
    #[inline]
    pub fn timestamp(&self) -> u32 {
        u32::from_be_bytes([self.fixed[4], self.fixed[5], self.fixed[6], self.fixed[7]])
    }

    /// The synchronization source.
    #[inline]
    pub fn ssrc(&self) -> u32 {
        u32::from_be_bytes([self.fixed[8], self.fixed[9], self.fixed[10], self.fixed[11]])
    }

    /// The P bit.
    #[inline]
    pub fn has_padding(&self) -> bool {
        self.fixed[0] & 0x20 != 0
    }

    /// The X bit.
    #[inline]
    pub fn has_extension(&self) -> bool {
        self.ext.is_some()
    }

    /// Number of CSRCs (the CC field, 0..=15).
    #[inline]
    pub fn csrc_count(&self) -> usize {
        usize::from(self.fixed[0] & 0x0f)
    }

    /// The contributing sources, in order.
    #[inline]
    pub fn csrcs(&self) -> impl Iterator<Item = u32> + 'a {
        let end = RTP_HEADER_LEN + 4 * self.csrc_count();
        self.buf
            .get(RTP_HEADER_LEN..end)
            .unwrap_or(&[])
            .chunks_exact(4)
            .filter_map(|c| c.first_chunk::<4>().map(be32))
    }

    /// The header extension block, `None` when the X bit is clear.
    #[inline]
    pub fn extensions(&self) -> Option<HeaderExtensions<'a>> {
        self.ext
    }

    /// Bytes before the payload: 12 + 4·CC, plus 4 + 4·length when X is set.
    #[inline]
    pub fn header_len(&self) -> usize {
        self.header_len
    }

    /// The payload, without padding.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        let end = self.buf.len().saturating_sub(self.padding_len);
        self.buf.get(self.header_len..end).unwrap_or(&[])
    }

    /// Trailing padding bytes including the count byte; 0 when P is clear.
    #[inline]
    pub fn padding_len(&self) -> usize {
        self.padding_len
    }

    /// The whole datagram this view was parsed from.
    #[inline]
    pub fn bytes(&self) -> &'a [u8] {
        self.buf
    }

    /// Finds extension `ext_id` (as negotiated for `urn:ietf:params:rtp-hdrext:ssrc-audio-level`) and
    /// parses it as an RFC 6464 audio level. `None` when absent or empty.
    #[inline]
    pub fn audio_level(&self, ext_id: u8) -> Option<AudioLevel> {
        self.ext?.get(ext_id).and_then(AudioLevel::parse)
    }
}

/// Writes the sequence number in place. A no-op on buffers shorter than 12 bytes.
#[inline]
pub fn set_sequence_number(buf: &mut [u8], seq: u16) {
    if let Some(h) = buf.first_chunk_mut::<RTP_HEADER_LEN>() {
        let [a, b] = seq.to_be_bytes();
        h[2] = a;
        h[3] = b;
    }
}

/// Writes the timestamp in place. A no-op on buffers shorter than 12 bytes.
#[inline]
pub fn set_timestamp(buf: &mut [u8], ts: u32) {
    if let Some(h) = buf.first_chunk_mut::<RTP_HEADER_LEN>() {
        let [a, b, c, d] = ts.to_be_bytes();
        h[4] = a;
        h[5] = b;
        h[6] = c;
        h[7] = d;
    }
}

/// Writes the SSRC in place. A no-op on buffers shorter than 12 bytes.
#[inline]
pub fn set_ssrc(buf: &mut [u8], ssrc: u32) {
    if let Some(h) = buf.first_chunk_mut::<RTP_HEADER_LEN>() {
        let [a, b, c, d] = ssrc.to_be_bytes();
        h[8] = a;
        h[9] = b;
        h[10] = c;
        h[11] = d;
    }
}

/// Sets or clears the marker bit in place. A no-op on buffers shorter than 12 bytes.
#[inline]
pub fn set_marker(buf: &mut [u8], m: bool) {
    if let Some(h) = buf.first_chunk_mut::<RTP_HEADER_LEN>() {
        h[1] = (h[1] & 0x7f) | if m { 0x80 } else { 0 };
    }
}

/// Writes the 7-bit payload type in place, keeping the marker bit. A no-op on buffers shorter than
/// 12 bytes.
#[inline]
pub fn set_payload_type(buf: &mut [u8], pt: u8) {
    if let Some(h) = buf.first_chunk_mut::<RTP_HEADER_LEN>() {
        h[1] = (h[1] & 0x80) | (pt & 0x7f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::ext::write_one_byte_extensions;

    /// Builds an RTP packet by hand: V=2, the given flags, CSRCs, extension block, payload, padding.
    fn build(
        marker: bool,
        csrcs: &[u32],
        ext: Option<(u16, &[u8])>,
        payload: &[u8],
        padding: u8,
    ) -> Vec<u8> {
        let mut b0 = 0x80 | csrcs.len() as u8;
        if ext.is_some() {
            b0 |= 0x10;
        }
        if padding > 0 {
            b0 |= 0x20;
        }
        let mut p = vec![b0, if marker { 0x80 | 111 } else { 111 }];
        p.extend_from_slice(&0xABCDu16.to_be_bytes());
        p.extend_from_slice(&0x0102_0304u32.to_be_bytes());
        p.extend_from_slice(&0xDEAD_BEEFu32.to_be_bytes());
        for c in csrcs {
            p.extend_from_slice(&c.to_be_bytes());
        }
        if let Some((profile, data)) = ext {
            assert_eq!(data.len() % 4, 0);
            p.extend_from_slice(&profile.to_be_bytes());
            p.extend_from_slice(&((data.len() / 4) as u16).to_be_bytes());
            p.extend_from_slice(data);
        }
        p.extend_from_slice(payload);
        if padding > 0 {
            p.extend(std::iter::repeat_n(0, usize::from(padding) - 1));
            p.push(padding);
        }
        p
    }

    #[test]
    fn minimal_packet() {
        let p = build(false, &[], None, &[1, 2, 3], 0);
        let h = RtpHeader::parse(&p).unwrap();
        assert!(!h.marker());
        assert_eq!(h.payload_type(), 111);
        assert_eq!(h.sequence_number(), 0xABCD);
        assert_eq!(h.timestamp(), 0x0102_0304);
        assert_eq!(h.ssrc(), 0xDEAD_BEEF);
        assert!(!h.has_padding());
        assert_eq!(h.csrc_count(), 0);
        assert_eq!(h.csrcs().count(), 0);
        assert!(h.extensions().is_none());
        assert_eq!(h.header_len(), RTP_HEADER_LEN);
        assert_eq!(h.payload(), &[1, 2, 3]);
        assert_eq!(h.padding_len(), 0);
        assert_eq!(h.audio_level(1), None);
    }

    #[test]
    fn header_only_packet_has_empty_payload() {
        let p = build(true, &[], None, &[], 0);
        let h = RtpHeader::parse(&p).unwrap();
        assert!(h.marker());
        assert!(h.payload().is_empty());
    }

    #[test]
    fn csrcs_one_byte_extensions_and_padding() {
        let mut ext = [0u8; 32];
        let n = write_one_byte_extensions(&mut ext, &[(1, &[0x80 | 42]), (3, b"a0")]).unwrap();
        // Strip the profile/length word: build() writes it itself.
        let p = build(true, &[11, 22], Some((0xBEDE, &ext[4..n])), &[7; 10], 4);
        let h = RtpHeader::parse(&p).unwrap();
        assert_eq!(h.csrc_count(), 2);
        assert_eq!(h.csrcs().collect::<Vec<_>>(), vec![11, 22]);
        assert_eq!(h.header_len(), 12 + 8 + n);
        assert_eq!(h.payload(), &[7; 10]);
        assert!(h.has_padding());
        assert_eq!(h.padding_len(), 4);
        let exts = h.extensions().unwrap();
        assert_eq!(exts.profile(), 0xBEDE);
        assert_eq!(exts.get(3), Some(&b"a0"[..]));
        let al = h.audio_level(1).unwrap();
        assert!(al.voice_activity);
        assert_eq!(al.level, 42);
        assert_eq!(h.audio_level(2), None);
        assert_eq!(
            h.header_len() + h.payload().len() + h.padding_len(),
            p.len()
        );
    }

    #[test]
    fn two_byte_extensions() {
        // id 5 len 0, padding, id 1 len 1 (audio level), id 200 len 3.
        let data = [5, 0, 0, 1, 1, 0x05, 200, 3, 9, 8, 7, 0];
        let p = build(false, &[1], Some((0x1000, &data)), &[1; 4], 0);
        let h = RtpHeader::parse(&p).unwrap();
        let exts = h.extensions().unwrap();
        let v: Vec<_> = exts.iter().map(|e| (e.id, e.data)).collect();
        assert_eq!(v, vec![(5, &[][..]), (1, &[5][..]), (200, &[9, 8, 7][..])]);
        let al = h.audio_level(1).unwrap();
        assert!(!al.voice_activity);
        assert_eq!(al.level, 5);
    }

    #[test]
    fn empty_extension_block() {
        let p = build(false, &[], Some((0xBEDE, &[])), &[1], 0);
        let h = RtpHeader::parse(&p).unwrap();
        assert_eq!(h.header_len(), 16);
        assert_eq!(h.extensions().unwrap().iter().count(), 0);
        assert_eq!(h.payload(), &[1]);
    }

    #[test]
    fn rejects_bad_version() {
        let mut p = build(false, &[], None, &[1], 0);
        for v in [0u8, 1, 3] {
            p[0] = (p[0] & 0x3f) | (v << 6);
            assert_eq!(RtpHeader::parse(&p).unwrap_err(), ParseError::BadVersion);
        }
    }

    #[test]
    fn rejects_truncated_csrcs() {
        let mut p = build(false, &[1, 2], None, &[], 0);
        p.truncate(12 + 4);
        assert_eq!(RtpHeader::parse(&p).unwrap_err(), ParseError::TooShort);
    }

    #[test]
    fn rejects_extension_past_end() {
        let mut p = build(false, &[], Some((0xBEDE, &[0x10, 1, 0, 0])), &[], 0);
        // Claim 2 words, have 1.
        p[15] = 2;
        assert_eq!(RtpHeader::parse(&p).unwrap_err(), ParseError::BadExtension);
        // X set but no room for the extension header at all.
        let mut q = build(false, &[], None, &[1, 2], 0);
        q[0] |= 0x10;
        assert_eq!(RtpHeader::parse(&q).unwrap_err(), ParseError::BadExtension);
    }

    #[test]
    fn rejects_bad_padding() {
        let mut p = build(false, &[], None, &[1, 2, 3], 0);
        p[0] |= 0x20;
        // Last byte is 3: the whole payload as padding is allowed.
        let h = RtpHeader::parse(&p).unwrap();
        assert_eq!(h.padding_len(), 3);
        assert!(h.payload().is_empty());
        // Count 0 is invalid.
        *p.last_mut().unwrap() = 0;
        assert_eq!(RtpHeader::parse(&p).unwrap_err(), ParseError::BadPadding);
        // Count larger than what follows the header.
        *p.last_mut().unwrap() = 4;
        assert_eq!(RtpHeader::parse(&p).unwrap_err(), ParseError::BadPadding);
        // P set on a header-only packet: no padding byte at all.
        let mut q = build(false, &[], None, &[], 0);
        q[0] |= 0x20;
        assert_eq!(RtpHeader::parse(&q).unwrap_err(), ParseError::BadPadding);
    }

    #[test]
    fn parse_encrypted_skips_padding_check() {
        // P set, last byte (an auth tag byte in SRTP) is 0: parse refuses, parse_encrypted routes.
        let mut p = build(
            false,
            &[],
            Some((0xBEDE, &[0x10, 0x85, 0, 0])),
            &[1, 2, 3, 0],
            0,
        );
        p[0] |= 0x20;
        assert_eq!(RtpHeader::parse(&p).unwrap_err(), ParseError::BadPadding);
        let h = RtpHeader::parse_encrypted(&p).unwrap();
        assert_eq!(h.ssrc(), 0xDEAD_BEEF);
        assert!(h.has_padding());
        assert_eq!(h.padding_len(), 0);
        assert_eq!(h.payload(), &[1, 2, 3, 0]);
        assert_eq!(h.audio_level(1).map(|a| a.level), Some(5));
        // Header errors are still errors.
        p[0] &= 0x3f;
        assert_eq!(
            RtpHeader::parse_encrypted(&p).unwrap_err(),
            ParseError::BadVersion
        );
    }

    #[test]
    fn every_truncation_is_err_or_consistent() {
        let mut ext = [0u8; 32];
        let n = write_one_byte_extensions(&mut ext, &[(1, &[0x7f]), (3, b"mid"), (4, &[0; 16])])
            .unwrap();
        let p = build(true, &[1, 2, 3], Some((0xBEDE, &ext[4..n])), &[5; 30], 7);
        assert!(RtpHeader::parse(&p).is_ok());
        for len in 0..p.len() {
            let cut = &p[..len];
            if let Ok(h) = RtpHeader::parse(cut) {
                assert_eq!(h.header_len() + h.payload().len() + h.padding_len(), len);
                let _ = h.extensions().map(|e| e.iter().count());
                let _ = h.audio_level(1);
                let _ = h.csrcs().count();
            }
        }
    }

    #[test]
    fn writers_rewrite_in_place() {
        let mut p = build(false, &[9], None, &[1, 2], 0);
        set_sequence_number(&mut p, 0x1234);
        set_timestamp(&mut p, 0xCAFE_BABE);
        set_ssrc(&mut p, 42);
        set_marker(&mut p, true);
        let h = RtpHeader::parse(&p).unwrap();
        assert_eq!(h.sequence_number(), 0x1234);
        assert_eq!(h.timestamp(), 0xCAFE_BABE);
        assert_eq!(h.ssrc(), 42);
        assert!(h.marker());
        assert_eq!(h.payload_type(), 111);
        assert_eq!(h.csrcs().collect::<Vec<_>>(), vec![9]);
        set_marker(&mut p, false);
        set_payload_type(&mut p, 96);
        let h = RtpHeader::parse(&p).unwrap();
        assert!(!h.marker());
        assert_eq!(h.payload_type(), 96);
        // Short buffers are left alone.
        let mut short = [0x80u8; 11];
        set_ssrc(&mut short, 1);
        set_marker(&mut short, false);
        assert_eq!(short, [0x80u8; 11]);
    }
}
