//! Views over RTCP compound packets (RFC 3550 §6) and their common typed parts.
//!
//! ```text
//!  //= https://www.rfc-editor.org/rfc/rfc3550#section-6.4.1
//!   0                   1                   2                   3
//!   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//!  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!  |V=2|P| RC/FMT  |      PT       |      length (words - 1)       |
//!  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!  |                  SSRC of sender (most types)                  |
//!  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! A datagram carries one or more packets back to back (a compound packet, RFC 3550 §6.1; or a
//! single one under reduced-size RTCP, RFC 5506). [`RtcpCompound`] walks them, checking each header:
//! version 2, the length fits what is left, and (if P is set) a padding count of at least 1 that fits
//! the packet. It yields `Err` once, for the first bad packet, and then ends.
//!
//! Invariant of a yielded [`RtcpPacket`]: `bytes().len() == length_bytes()`, at least 4, a multiple
//! of 4, and `padding_len() <= length_bytes() - 4`.
//!
//! Writers for what sluice itself sends at every hop ([`write_sr`], [`write_rr`], [`write_sdes_cname`])
//! fill a caller's buffer and return the length, or `None` when it does not fit.
//!
//! SRTCP (RFC 3711 §3.4) encrypts everything after the first 8 bytes and appends an index and tag,
//! so walk the compound only after decryption; [`first_ssrc`] reads the clear sender SSRC to route a
//! datagram to its decryption context.

use std::iter::FusedIterator;

use super::{be32, read_u32, ParseError};

/// Sender report.
pub const RTCP_SR: u8 = 200;
/// Receiver report.
pub const RTCP_RR: u8 = 201;
/// Source description.
pub const RTCP_SDES: u8 = 202;
/// Goodbye.
pub const RTCP_BYE: u8 = 203;
/// Application-defined.
pub const RTCP_APP: u8 = 204;
/// Transport-layer feedback (RFC 4585 §6.2: NACK, TWCC, ...).
pub const RTCP_RTPFB: u8 = 205;
/// Payload-specific feedback (RFC 4585 §6.3: PLI, FIR, REMB, ...).
pub const RTCP_PSFB: u8 = 206;

/// Length of the common RTCP header.
pub const RTCP_HEADER_LEN: usize = 4;
/// Length of one report block (RFC 3550 §6.4.1).
pub const REPORT_BLOCK_LEN: usize = 24;
/// Length of the SR sender info (NTP, RTP timestamp, packet and octet counts).
const SENDER_INFO_LEN: usize = 20;

/// Iterator over the packets of one RTCP datagram. See the module doc.
#[derive(Debug, Clone)]
pub struct RtcpCompound<'a> {
    rest: &'a [u8],
}

impl<'a> RtcpCompound<'a> {
    /// Walks the packets in `buf` (a decrypted RTCP datagram).
    #[inline]
    pub fn new(buf: &'a [u8]) -> Self {
        Self { rest: buf }
    }

    /// Checks every packet of `buf`, returning how many there are or the first error.
    pub fn validate(buf: &'a [u8]) -> Result<usize, ParseError> {
        let mut n = 0;
        for p in Self::new(buf) {
            p?;
            n += 1;
        }
        if n == 0 {
            return Err(ParseError::TooShort);
        }
        Ok(n)
    }
}

impl<'a> Iterator for RtcpCompound<'a> {
    type Item = Result<RtcpPacket<'a>, ParseError>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        match RtcpPacket::parse(self.rest) {
            Ok(p) => {
                self.rest = self.rest.get(p.length_bytes()..).unwrap_or(&[]);
                Some(Ok(p))
            }
            Err(e) => {
                self.rest = &[];
                Some(Err(e))
            }
        }
    }
}

impl FusedIterator for RtcpCompound<'_> {}

/// One RTCP packet inside a compound.
#[derive(Debug, Clone, Copy)]
pub struct RtcpPacket<'a> {
    hdr: &'a [u8; RTCP_HEADER_LEN],
    /// Exactly this packet, header and padding included.
    bytes: &'a [u8],
    padding_len: usize,
}

impl<'a> RtcpPacket<'a> {
    /// Parses the first RTCP packet in `buf`; bytes after it (the rest of a compound) are ignored.
    #[inline]
    pub fn parse(buf: &'a [u8]) -> Result<Self, ParseError> {
        let hdr: &[u8; RTCP_HEADER_LEN] = buf.first_chunk().ok_or(ParseError::TooShort)?;
        if hdr[0] >> 6 != 2 {
            return Err(ParseError::BadVersion);
        }
        let words = usize::from(u16::from_be_bytes([hdr[2], hdr[3]]));
        let len = (words + 1) * 4;
        let bytes = buf.get(..len).ok_or(ParseError::BadLength)?;
        let padding_len = if hdr[0] & 0x20 != 0 {
            //= https://www.rfc-editor.org/rfc/rfc3550#section-6.4.1
            // "the last octet of the padding is a count of how many padding octets should be
            // ignored, including itself"
            let count = usize::from(*bytes.last().ok_or(ParseError::BadPadding)?);
            if count == 0 || count > len - RTCP_HEADER_LEN {
                return Err(ParseError::BadPadding);
            }
            count
        } else {
            0
        };
        Ok(Self {
            hdr,
            bytes,
            padding_len,
        })
    }

    /// The packet type (200 SR, 201 RR, 202 SDES, 203 BYE, 204 APP, 205 RTPFB, 206 PSFB, ...).
    #[inline]
    pub fn packet_type(&self) -> u8 {
        self.hdr[1]
    }

    /// The 5-bit count field: report count (SR/RR), source count (SDES/BYE) or FMT (feedback).
    #[inline]
    pub fn count(&self) -> u8 {
        self.hdr[0] & 0x1f
    }

    /// The P bit.
    #[inline]
    pub fn padding(&self) -> bool {
        self.hdr[0] & 0x20 != 0
    }

    /// Padding bytes at the end of this packet, count byte included; 0 when P is clear.
    #[inline]
    pub fn padding_len(&self) -> usize {
        self.padding_len
    }

    /// Total length in bytes, header and padding included: `(length + 1) * 4`.
    #[inline]
    pub fn length_bytes(&self) -> usize {
        self.bytes.len()
    }

    /// The SSRC in bytes 4..8 (the sender for SR/RR/feedback, the first source for SDES/BYE), if the
    /// packet is long enough to carry one.
    #[inline]
    pub fn sender_ssrc(&self) -> Option<u32> {
        read_u32(self.bytes, 4)
    }

    /// For transport- and payload-specific feedback (205, 206), the SSRC of the media source the
    /// feedback is about (RFC 4585 §6.1, bytes 8..12).
    #[inline]
    pub fn media_ssrc(&self) -> Option<u32> {
        match self.packet_type() {
            RTCP_RTPFB | RTCP_PSFB => read_u32(self.bytes, 8),
            _ => None,
        }
    }

    /// This packet's bytes, header and padding included.
    #[inline]
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The bytes after the 4-byte header, without padding.
    #[inline]
    pub fn body(&self) -> &'a [u8] {
        let end = self.bytes.len().saturating_sub(self.padding_len);
        self.bytes.get(RTCP_HEADER_LEN..end).unwrap_or(&[])
    }

    /// The sender info of an SR; `None` for other types or a truncated SR.
    #[inline]
    pub fn sender_info(&self) -> Option<SenderInfo> {
        if self.packet_type() != RTCP_SR {
            return None;
        }
        let b: &[u8; SENDER_INFO_LEN] = self.body().get(4..)?.first_chunk()?;
        let [n0, n1, n2, n3, n4, n5, n6, n7, r0, r1, r2, r3, p0, p1, p2, p3, o0, o1, o2, o3] = *b;
        Some(SenderInfo {
            ntp_timestamp: u64::from_be_bytes([n0, n1, n2, n3, n4, n5, n6, n7]),
            rtp_timestamp: u32::from_be_bytes([r0, r1, r2, r3]),
            packet_count: u32::from_be_bytes([p0, p1, p2, p3]),
            octet_count: u32::from_be_bytes([o0, o1, o2, o3]),
        })
    }

    /// The report blocks of an SR or RR (at most `count()` of them, as many as fit); empty for other
    /// types.
    #[inline]
    pub fn report_blocks(&self) -> ReportBlocks<'a> {
        let offset = match self.packet_type() {
            RTCP_SR => 4 + SENDER_INFO_LEN,
            RTCP_RR => 4,
            _ => return ReportBlocks { data: &[], left: 0 },
        };
        ReportBlocks {
            data: self.body().get(offset..).unwrap_or(&[]),
            left: self.count(),
        }
    }

    /// The SSRCs leaving, for a BYE (RFC 3550 §6.6): at most `count()` of them, as many as fit; empty
    /// for other types. The optional reason after them is not parsed.
    #[inline]
    pub fn bye_ssrcs(&self) -> impl Iterator<Item = u32> + 'a {
        let (data, n) = if self.packet_type() == RTCP_BYE {
            (self.body(), usize::from(self.count()))
        } else {
            (&[][..], 0)
        };
        data.chunks_exact(4)
            .take(n)
            .filter_map(|c| c.first_chunk::<4>().map(be32))
    }
}

/// The sender info of an SR (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderInfo {
    /// 64-bit NTP timestamp of when the report was sent.
    pub ntp_timestamp: u64,
    /// The same instant in the stream's RTP clock.
    pub rtp_timestamp: u32,
    /// Packets sent since the start of transmission.
    pub packet_count: u32,
    /// Payload octets sent since the start of transmission.
    pub octet_count: u32,
}

/// One reception report block (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportBlock {
    /// The source this block reports on.
    pub ssrc: u32,
    /// Fraction lost since the last report, in 1/256 units.
    pub fraction_lost: u8,
    /// Cumulative packets lost, a signed 24-bit value (negative with duplicates).
    pub cumulative_lost: i32,
    /// Extended highest sequence number received.
    pub ext_highest_seq: u32,
    /// Interarrival jitter in RTP timestamp units.
    pub jitter: u32,
    /// Middle 32 bits of the NTP timestamp of the last SR received (LSR).
    pub lsr: u32,
    /// Delay since the last SR, in 1/65536 seconds (DLSR).
    pub dlsr: u32,
}

impl ReportBlock {
    #[inline]
    fn parse(b: &[u8; REPORT_BLOCK_LEN]) -> Self {
        let [s0, s1, s2, s3, f, c0, c1, c2, h0, h1, h2, h3, j0, j1, j2, j3, l0, l1, l2, l3, d0, d1, d2, d3] =
            *b;
        // Sign-extend the 24-bit cumulative loss.
        let cumulative_lost = i32::from_be_bytes([c0, c1, c2, 0]) >> 8;
        ReportBlock {
            ssrc: be32(&[s0, s1, s2, s3]),
            fraction_lost: f,
            cumulative_lost,
            ext_highest_seq: be32(&[h0, h1, h2, h3]),
            jitter: be32(&[j0, j1, j2, j3]),
            lsr: be32(&[l0, l1, l2, l3]),
            dlsr: be32(&[d0, d1, d2, d3]),
        }
    }
}

/// Iterator over the report blocks of an SR or RR.
#[derive(Debug, Clone)]
pub struct ReportBlocks<'a> {
    data: &'a [u8],
    left: u8,
}

impl Iterator for ReportBlocks<'_> {
    type Item = ReportBlock;

    #[inline]
    fn next(&mut self) -> Option<ReportBlock> {
        if self.left == 0 {
            return None;
        }
        let Some((b, rest)) = self.data.split_first_chunk::<REPORT_BLOCK_LEN>() else {
            self.left = 0;
            return None;
        };
        self.data = rest;
        self.left -= 1;
        Some(ReportBlock::parse(b))
    }
}

impl FusedIterator for ReportBlocks<'_> {}

impl ReportBlock {
    /// Writes the block's 24 bytes (the cumulative loss clamped to 24 signed bits).
    pub fn write(&self, out: &mut [u8; REPORT_BLOCK_LEN]) {
        let lost = self.cumulative_lost.clamp(-0x80_0000, 0x7F_FFFF);
        let lost = lost.to_be_bytes();
        out[0..4].copy_from_slice(&self.ssrc.to_be_bytes());
        out[4] = self.fraction_lost;
        out[5..8].copy_from_slice(&lost[1..4]);
        out[8..12].copy_from_slice(&self.ext_highest_seq.to_be_bytes());
        out[12..16].copy_from_slice(&self.jitter.to_be_bytes());
        out[16..20].copy_from_slice(&self.lsr.to_be_bytes());
        out[20..24].copy_from_slice(&self.dlsr.to_be_bytes());
    }
}

/// Most report blocks one SR or RR carries (the 5-bit count).
pub const MAX_REPORT_BLOCKS: usize = 31;

fn write_header(out: &mut [u8], count: usize, packet_type: u8, len: usize) {
    out[0] = 0x80 | count as u8;
    out[1] = packet_type;
    out[2..4].copy_from_slice(&((len / 4 - 1) as u16).to_be_bytes());
}

fn write_blocks(out: &mut [u8], blocks: &[ReportBlock]) {
    for (b, chunk) in blocks.iter().zip(out.chunks_exact_mut(REPORT_BLOCK_LEN)) {
        if let Some(c) = chunk.first_chunk_mut::<REPORT_BLOCK_LEN>() {
            b.write(c);
        }
    }
}

/// Writes a sender report (RFC 3550 §6.4.1) from `ssrc` with `info` and `blocks` at the start of
/// `out`; returns its length, or `None` when it does not fit or has too many blocks.
pub fn write_sr(
    out: &mut [u8],
    ssrc: u32,
    info: &SenderInfo,
    blocks: &[ReportBlock],
) -> Option<usize> {
    if blocks.len() > MAX_REPORT_BLOCKS {
        return None;
    }
    let len = 8 + SENDER_INFO_LEN + REPORT_BLOCK_LEN * blocks.len();
    let out = out.get_mut(..len)?;
    write_header(out, blocks.len(), RTCP_SR, len);
    out[4..8].copy_from_slice(&ssrc.to_be_bytes());
    out[8..16].copy_from_slice(&info.ntp_timestamp.to_be_bytes());
    out[16..20].copy_from_slice(&info.rtp_timestamp.to_be_bytes());
    out[20..24].copy_from_slice(&info.packet_count.to_be_bytes());
    out[24..28].copy_from_slice(&info.octet_count.to_be_bytes());
    write_blocks(&mut out[28..], blocks);
    Some(len)
}

/// Writes a receiver report (RFC 3550 §6.4.2) from `ssrc` with `blocks` at the start of `out`;
/// returns its length, or `None` when it does not fit or has too many blocks.
pub fn write_rr(out: &mut [u8], ssrc: u32, blocks: &[ReportBlock]) -> Option<usize> {
    if blocks.len() > MAX_REPORT_BLOCKS {
        return None;
    }
    let len = 8 + REPORT_BLOCK_LEN * blocks.len();
    let out = out.get_mut(..len)?;
    write_header(out, blocks.len(), RTCP_RR, len);
    out[4..8].copy_from_slice(&ssrc.to_be_bytes());
    write_blocks(&mut out[8..], blocks);
    Some(len)
}

/// Writes an SDES packet (RFC 3550 §6.5) with one chunk per SSRC of `ssrcs`, each naming `cname`
/// (at most 255 bytes) as its CNAME, at the start of `out`; returns its length, or `None` when it
/// does not fit, has no or too many chunks, or the name is too long. A compound RTCP packet carries
/// one (RFC 3550 §6.1).
pub fn write_sdes_cname(out: &mut [u8], ssrcs: &[u32], cname: &[u8]) -> Option<usize> {
    if ssrcs.is_empty() || ssrcs.len() > MAX_REPORT_BLOCKS || cname.len() > 255 {
        return None;
    }
    // SSRC, CNAME item (type, length, text), then at least one null octet up to a word boundary.
    let chunk = (4 + 2 + cname.len() + 1).div_ceil(4) * 4;
    let len = 4 + chunk * ssrcs.len();
    let out = out.get_mut(..len)?;
    write_header(out, ssrcs.len(), RTCP_SDES, len);
    for (ssrc, c) in ssrcs.iter().zip(out[4..].chunks_exact_mut(chunk)) {
        c[0..4].copy_from_slice(&ssrc.to_be_bytes());
        c[4] = 1; // CNAME
        c[5] = cname.len() as u8;
        c[6..6 + cname.len()].copy_from_slice(cname);
        c[6 + cname.len()..].fill(0);
    }
    Some(len)
}

/// The SSRC in bytes 4..8 of an (S)RTCP datagram: the sender of its first packet. SRTCP leaves the
/// first 8 bytes in the clear (RFC 3711 §3.4), so this routes a datagram to its SRTCP context before
/// decryption. `None` if the datagram is shorter than 8 bytes.
#[inline]
pub fn first_ssrc(buf: &[u8]) -> Option<u32> {
    read_u32(buf, 4)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SR from SSRC 0x11111111 with one report block about 0x22222222, then SDES with a CNAME.
    fn sr_sdes() -> Vec<u8> {
        let mut p = vec![0x81, RTCP_SR, 0, 12];
        p.extend_from_slice(&0x1111_1111u32.to_be_bytes());
        p.extend_from_slice(&0x0123_4567_89AB_CDEFu64.to_be_bytes()); // NTP
        p.extend_from_slice(&48_000u32.to_be_bytes()); // RTP ts
        p.extend_from_slice(&100u32.to_be_bytes()); // packets
        p.extend_from_slice(&16_000u32.to_be_bytes()); // octets
                                                       // report block
        p.extend_from_slice(&0x2222_2222u32.to_be_bytes());
        p.extend_from_slice(&[64, 0xFF, 0xFF, 0xFE]); // 25% lost, cumulative -2
        p.extend_from_slice(&0x0001_0010u32.to_be_bytes());
        p.extend_from_slice(&37u32.to_be_bytes());
        p.extend_from_slice(&0x4567_89ABu32.to_be_bytes());
        p.extend_from_slice(&0x0000_8000u32.to_be_bytes());
        assert_eq!(p.len(), 52);
        // SDES: 1 chunk, SSRC, CNAME "abcd", end + pad: 4 + 4 + 2 + 4 + 2 = 16 bytes.
        p.extend_from_slice(&[0x81, RTCP_SDES, 0, 3]);
        p.extend_from_slice(&0x1111_1111u32.to_be_bytes());
        p.extend_from_slice(&[1, 4, b'a', b'b', b'c', b'd', 0, 0]);
        p
    }

    #[test]
    fn sr_plus_sdes() {
        let p = sr_sdes();
        let pkts: Vec<_> = RtcpCompound::new(&p).collect::<Result<_, _>>().unwrap();
        assert_eq!(pkts.len(), 2);
        assert_eq!(RtcpCompound::validate(&p), Ok(2));
        let sr = pkts[0];
        assert_eq!(sr.packet_type(), RTCP_SR);
        assert_eq!(sr.count(), 1);
        assert!(!sr.padding());
        assert_eq!(sr.length_bytes(), 52);
        assert_eq!(sr.sender_ssrc(), Some(0x1111_1111));
        assert_eq!(sr.media_ssrc(), None);
        assert_eq!(sr.body().len(), 48);
        assert_eq!(sr.bytes(), &p[..52]);
        let si = sr.sender_info().unwrap();
        assert_eq!(
            si,
            SenderInfo {
                ntp_timestamp: 0x0123_4567_89AB_CDEF,
                rtp_timestamp: 48_000,
                packet_count: 100,
                octet_count: 16_000
            }
        );
        let rbs: Vec<_> = sr.report_blocks().collect();
        assert_eq!(
            rbs,
            vec![ReportBlock {
                ssrc: 0x2222_2222,
                fraction_lost: 64,
                cumulative_lost: -2,
                ext_highest_seq: 0x0001_0010,
                jitter: 37,
                lsr: 0x4567_89AB,
                dlsr: 0x8000,
            }]
        );
        let sdes = pkts[1];
        assert_eq!(sdes.packet_type(), RTCP_SDES);
        assert_eq!(sdes.count(), 1);
        assert_eq!(sdes.length_bytes(), 16);
        assert_eq!(sdes.sender_ssrc(), Some(0x1111_1111));
        assert_eq!(sdes.report_blocks().count(), 0);
        assert_eq!(sdes.sender_info(), None);
        assert_eq!(sdes.bye_ssrcs().count(), 0);
        assert_eq!(first_ssrc(&p), Some(0x1111_1111));
    }

    #[test]
    fn rr_and_feedback() {
        // RR with 0 blocks, then a PLI (PSFB FMT 1) about 0x33333333.
        let mut p = vec![0x80, RTCP_RR, 0, 1, 0, 0, 0, 5];
        p.extend_from_slice(&[0x81, RTCP_PSFB, 0, 2, 0, 0, 0, 5, 0x33, 0x33, 0x33, 0x33]);
        let pkts: Vec<_> = RtcpCompound::new(&p).collect::<Result<_, _>>().unwrap();
        assert_eq!(pkts[0].packet_type(), RTCP_RR);
        assert_eq!(pkts[0].report_blocks().count(), 0);
        assert_eq!(pkts[1].count(), 1);
        assert_eq!(pkts[1].media_ssrc(), Some(0x3333_3333));
    }

    #[test]
    fn rr_report_count_larger_than_body_is_bounded() {
        // RC says 3, only one block present.
        let mut p = vec![0x83, RTCP_RR, 0, 7, 0, 0, 0, 5];
        p.extend_from_slice(&[0; REPORT_BLOCK_LEN]);
        let pkt = RtcpPacket::parse(&p).unwrap();
        assert_eq!(pkt.report_blocks().count(), 1);
    }

    #[test]
    fn padding() {
        // BYE with SSRC and 4 bytes of padding.
        let p = [0xA1, RTCP_BYE, 0, 2, 0, 0, 0, 9, 0, 0, 0, 4];
        let pkt = RtcpPacket::parse(&p).unwrap();
        assert_eq!(pkt.bye_ssrcs().collect::<Vec<_>>(), vec![9]);
        assert!(pkt.padding());
        assert_eq!(pkt.padding_len(), 4);
        assert_eq!(pkt.body(), &[0, 0, 0, 9]);
        let mut bad = p;
        bad[11] = 0;
        assert_eq!(RtcpPacket::parse(&bad).unwrap_err(), ParseError::BadPadding);
        bad[11] = 9;
        assert_eq!(RtcpPacket::parse(&bad).unwrap_err(), ParseError::BadPadding);
        bad[11] = 8;
        assert!(RtcpPacket::parse(&bad).is_ok());
    }

    #[test]
    fn errors_stop_iteration() {
        let mut p = sr_sdes();
        p[52] = 0x41; // SDES version 1
        let v: Vec<_> = RtcpCompound::new(&p).collect();
        assert_eq!(v.len(), 2);
        assert!(v[0].is_ok());
        assert_eq!(v[1].unwrap_err(), ParseError::BadVersion);
        assert_eq!(RtcpCompound::validate(&p), Err(ParseError::BadVersion));

        let mut p = sr_sdes();
        p[3] = 200; // SR length past the end
        let v: Vec<_> = RtcpCompound::new(&p).collect();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].unwrap_err(), ParseError::BadLength);
        assert_eq!(RtcpCompound::validate(&[]), Err(ParseError::TooShort));
    }

    #[test]
    fn every_truncation_is_err_or_consistent() {
        let p = sr_sdes();
        for len in 0..p.len() {
            let cut = &p[..len];
            let _ = first_ssrc(cut);
            let mut total = 0;
            let mut failed = false;
            for r in RtcpCompound::new(cut) {
                match r {
                    Ok(pkt) => {
                        assert_eq!(pkt.bytes().len(), pkt.length_bytes());
                        total += pkt.length_bytes();
                        let _ = pkt.report_blocks().count();
                        let _ = pkt.sender_info();
                    }
                    Err(_) => failed = true,
                }
            }
            // Either everything parsed (a cut at a packet boundary) or an error was reported.
            assert!(failed || total == len, "len {len}");
        }
        assert_eq!(first_ssrc(&p[..7]), None);
    }

    #[test]
    fn written_reports_parse_back() {
        let block = ReportBlock {
            ssrc: 0x2222_2222,
            fraction_lost: 13,
            cumulative_lost: -3,
            ext_highest_seq: 0x0002_0005,
            jitter: 120,
            lsr: 0xABCD_0123,
            dlsr: 0x0001_8000,
        };
        let info = SenderInfo {
            ntp_timestamp: 0xE000_0000_8000_0000,
            rtp_timestamp: 960,
            packet_count: 50,
            octet_count: 4_000,
        };
        let mut buf = [0u8; 256];
        let sr = write_sr(&mut buf, 7, &info, &[block]).unwrap();
        let rr = write_rr(&mut buf[sr..], 8, &[block, block]).unwrap();
        let sdes = write_sdes_cname(&mut buf[sr + rr..], &[7, 8], b"sluice").unwrap();
        let all = &buf[..sr + rr + sdes];
        assert_eq!(RtcpCompound::validate(all), Ok(3));
        let pkts: Vec<_> = RtcpCompound::new(all).map(Result::unwrap).collect();
        assert_eq!(pkts[0].sender_ssrc(), Some(7));
        assert_eq!(pkts[0].sender_info(), Some(info));
        assert_eq!(pkts[0].report_blocks().collect::<Vec<_>>(), vec![block]);
        assert_eq!(pkts[1].packet_type(), RTCP_RR);
        assert_eq!(pkts[1].sender_ssrc(), Some(8));
        assert_eq!(
            pkts[1].report_blocks().collect::<Vec<_>>(),
            vec![block, block]
        );
        assert_eq!(pkts[2].packet_type(), RTCP_SDES);
        assert_eq!(pkts[2].count(), 2);
        // Two chunks of 4 + 2 + 6 + 1 bytes, padded to 16.
        assert_eq!(pkts[2].length_bytes(), 4 + 2 * 16);
        assert_eq!(
            &pkts[2].body()[4..12],
            &[1, 6, b's', b'l', b'u', b'i', b'c', b'e']
        );
        // Too small a buffer, or too many blocks: nothing written.
        assert_eq!(write_sr(&mut buf[..27], 7, &info, &[]), None);
        assert_eq!(write_rr(&mut buf, 7, &[block; 32]), None);
        assert_eq!(write_sdes_cname(&mut buf, &[], b"x"), None);
        // A loss beyond 24 bits is clamped, not wrapped.
        let mut b = [0u8; REPORT_BLOCK_LEN];
        ReportBlock {
            cumulative_lost: i32::MAX,
            ..block
        }
        .write(&mut b);
        assert_eq!(ReportBlock::parse(&b).cumulative_lost, 0x7F_FFFF);
    }
}
