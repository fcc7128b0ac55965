//! Speaker-slot rewriting: each of a subscriber's slots is one continuous outgoing RTP stream, whatever
//! source currently feeds it (docs/architecture.md, "Media model").
//!
//! A slot has its own SSRC. When its source changes, the outgoing sequence number continues at
//! `last + 1` and the timestamp advances by the wall-clock time since the slot's last packet, so the
//! receiver's jitter buffer sees one stream with a pause, never a jump back. The source's SSRC goes
//! into the CSRC list (RFC 3550 §5.1: contributing sources), so receivers can tell who is speaking.
//! Pure arithmetic over bytes: no I/O, no allocation.

use std::time::{Duration, Instant};

use crate::packet::{AudioLevel, RtpHeader, SenderInfo};

/// A source not heard on a slot for this long may be replaced by another source.
pub const DEFAULT_SLOT_IDLE: Duration = Duration::from_secs(2);

/// A source's packet mapping further ahead of the slot's last sequence number than this (packets) is
/// re-anchored as if the source had switched: after a long mute or a loss burst the slot stream goes on
/// at last + 1 rather than jumping, which receivers' jitter buffers and the SRTP rollover estimate
/// (RFC 3711 §3.3.1, which cannot follow jumps of 2^15 or more) both need.
pub const MAX_FORWARD_JUMP: i16 = 2048;
/// A packet mapping this far (or more) behind the slot's last sequence number is re-anchored too,
/// instead of being sent under an old index.
pub const MAX_BACKWARD_JUMP: i16 = 1024;

/// Outgoing sequence number and timestamp for one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mapped {
    /// Outgoing sequence number.
    pub seq: u16,
    /// Outgoing RTP timestamp.
    pub ts: u32,
    /// The first packet of a new source on this slot (the marker bit is set: start of a talkspurt).
    pub switched: bool,
}

/// State of one outgoing slot stream of one subscriber.
#[derive(Debug, Clone)]
pub struct SlotRewriter {
    out_ssrc: u32,
    mid: Vec<u8>,
    source: Option<u32>,
    seq_delta: u16,
    ts_delta: u32,
    last_seq: u16,
    last_ts: u32,
    last_at: Option<Instant>,
    /// When the current source last sent a voiced packet on this slot (speaker policy).
    last_voice: Option<Instant>,
    /// The source the current deltas were computed for.
    anchored: Option<u32>,
    /// Packets and payload octets sent on this stream (its sender report's counts).
    packets: u32,
    octets: u32,
}

impl SlotRewriter {
    /// A slot that sends with `out_ssrc` and has no source yet.
    pub fn new(out_ssrc: u32) -> Self {
        Self::with_mid(out_ssrc, Vec::new())
    }

    /// A slot sending with `out_ssrc` under the MID `mid` (the subscriber's m= section).
    pub fn with_mid(out_ssrc: u32, mid: Vec<u8>) -> Self {
        Self {
            out_ssrc,
            mid,
            source: None,
            seq_delta: 0,
            ts_delta: 0,
            last_seq: 0,
            last_ts: 0,
            last_at: None,
            last_voice: None,
            anchored: None,
            packets: 0,
            octets: 0,
        }
    }

    /// Counts one packet of `payload` octets as sent on this stream.
    #[inline]
    pub fn count_sent(&mut self, payload: usize) {
        self.packets = self.packets.wrapping_add(1);
        self.octets = self.octets.wrapping_add(payload as u32);
    }

    /// The sender info of this stream's SR at `now` (NTP time `ntp`), or `None` before its first
    /// packet. The RTP timestamp is the last one sent advanced by the wall-clock time since, the
    /// same rule a source switch continues the stream by, so the NTP/RTP pair stays on one line
    /// whoever feeds the slot.
    pub fn sender_info(&self, now: Instant, ntp: u64, clock_rate: u32) -> Option<SenderInfo> {
        let at = self.last_at.filter(|_| self.packets > 0)?;
        let elapsed = now.saturating_duration_since(at);
        let ticks = (elapsed.as_micros() as u64 * u64::from(clock_rate) / 1_000_000) as u32;
        Some(SenderInfo {
            ntp_timestamp: ntp,
            rtp_timestamp: self.last_ts.wrapping_add(ticks),
            packet_count: self.packets,
            octet_count: self.octets,
        })
    }

    fn anchor_needed(&self, source: u32) -> bool {
        self.anchored != Some(source)
    }

    /// True when `seq`, mapped with the current anchor, lands implausibly far from the last one sent.
    fn jumps(&self, seq: u16) -> bool {
        let d = seq.wrapping_add(self.seq_delta).wrapping_sub(self.last_seq) as i16;
        !(-MAX_BACKWARD_JUMP..=MAX_FORWARD_JUMP).contains(&d)
    }

    /// The MID of the subscriber's m= section this slot feeds (empty when unknown).
    pub fn mid(&self) -> &[u8] {
        &self.mid
    }

    /// The slot's outgoing SSRC.
    pub fn out_ssrc(&self) -> u32 {
        self.out_ssrc
    }

    /// The source SSRC currently mapped onto this slot.
    pub fn source(&self) -> Option<u32> {
        self.source
    }

    /// True when the slot has no source, or its source has been silent for `idle` or longer.
    pub fn is_free(&self, now: Instant, idle: Duration) -> bool {
        match (self.source, self.last_at) {
            (None, _) => true,
            (Some(_), Some(at)) => now.saturating_duration_since(at) >= idle,
            (Some(_), None) => false,
        }
    }

    /// Notes that the current source just sent a voiced packet.
    #[inline]
    pub fn mark_voice(&mut self, now: Instant) {
        self.last_voice = Some(now);
    }

    /// How long the current source has been without voice on this slot (`Duration::MAX` when it
    /// never had any): the speaker policy replaces the quietest source first.
    #[inline]
    pub fn quiet_for(&self, now: Instant) -> Duration {
        self.last_voice
            .map_or(Duration::MAX, |t| now.saturating_duration_since(t))
    }

    /// Forgets the source (it left); the stream's continuity state is kept for the next one.
    pub fn release(&mut self) {
        self.source = None;
        self.last_voice = None;
        // Whoever comes next, even the same SSRC back again, is re-anchored after the last packet
        // sent: reusing its old numbering would re-encrypt under indices this slot already used.
        self.anchored = None;
    }

    /// Makes the next [`map`](Self::map) continue the stream from the current source as if it had
    /// just switched to it: its numbering changed under the same SSRC (a relay leg moved it to
    /// another of its streams, [`unforward_in_place`]).
    pub fn reanchor(&mut self) {
        self.anchored = None;
    }

    /// Takes `source` onto this slot; the next [`map`](Self::map) continues the stream from it.
    pub fn assign(&mut self, source: u32) {
        self.source = Some(source);
        self.last_voice = None;
    }

    /// Maps one packet of `source` with sequence `seq` and timestamp `ts`, arriving at `now`, to the
    /// slot's outgoing numbering. `clock_rate` is the RTP clock (48,000 for Opus).
    pub fn map(&mut self, now: Instant, source: u32, seq: u16, ts: u32, clock_rate: u32) -> Mapped {
        let switched = match self.last_at {
            None => {
                // First packet ever on this slot: keep the source's numbering.
                self.seq_delta = 0;
                self.ts_delta = 0;
                true
            }
            Some(at) if self.anchor_needed(source) || self.jumps(seq) => {
                let elapsed = now.saturating_duration_since(at);
                let ticks = (elapsed.as_micros() as u64 * clock_rate as u64 / 1_000_000) as u32;
                let next_ts = self.last_ts.wrapping_add(ticks.max(1));
                let next_seq = self.last_seq.wrapping_add(1);
                self.seq_delta = next_seq.wrapping_sub(seq);
                self.ts_delta = next_ts.wrapping_sub(ts);
                true
            }
            Some(_) => false,
        };
        if switched {
            self.source = Some(source);
            self.anchored = Some(source);
        }
        let out_seq = seq.wrapping_add(self.seq_delta);
        let out_ts = ts.wrapping_add(self.ts_delta);
        if self.last_at.is_none() || (out_seq.wrapping_sub(self.last_seq) as i16) > 0 {
            self.last_seq = out_seq;
            self.last_ts = out_ts;
        }
        self.last_at = Some(now);
        Mapped {
            seq: out_seq,
            ts: out_ts,
            switched,
        }
    }
}

/// How a subscriber wants forwarded packets written: what its own SDP negotiated. The default passes
/// the publisher's payload type and header extensions through unchanged (plain transports, tools).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EgressFormat {
    /// The subscriber's payload type for the codec (publishers may have negotiated another one).
    pub payload_type: Option<u8>,
    /// The subscriber's MID header-extension id (RFC 8843): the slot's MID is written with it.
    pub mid_ext: Option<u8>,
    /// The subscriber's audio-level header-extension id (RFC 6464): the source's level is written with it.
    pub audio_level_ext: Option<u8>,
}

impl EgressFormat {
    /// True when the publisher's header extensions are copied as they are.
    pub fn passes_extensions_through(&self) -> bool {
        self.mid_ext.is_none() && self.audio_level_ext.is_none()
    }
}

/// Writes a forwarded packet in the subscriber's format: like [`write_forwarded`], but with the
/// subscriber's payload type, and, when it negotiated extension ids, a fresh one-byte extension block
/// (RFC 8285) carrying only the slot's MID and the source's audio level under the subscriber's ids
/// (the publisher's ids mean nothing to it, and a browser would route by the publisher's MID).
#[allow(clippy::too_many_arguments)]
#[inline]
pub fn write_forwarded_as(
    src: &[u8],
    hdr: &RtpHeader<'_>,
    out: &mut [u8],
    out_ssrc: u32,
    mapped: Mapped,
    fmt: &EgressFormat,
    mid: &[u8],
    level: Option<AudioLevel>,
) -> Option<usize> {
    if fmt.passes_extensions_through() {
        let n = write_forwarded(src, hdr, out, out_ssrc, mapped)?;
        if let Some(pt) = fmt.payload_type {
            out[1] = (out[1] & 0x80) | (pt & 0x7F);
        }
        return Some(n);
    }
    let cc_in = hdr.csrc_count();
    let keep = cc_in.min(14);
    // Extension elements: id/len byte + data, padded to 4 bytes (RFC 8285 §4.2).
    let mid_el = match fmt.mid_ext {
        Some(id) if (1..=14).contains(&id) && (1..=16).contains(&mid.len()) => Some((id, mid)),
        _ => None,
    };
    let level_byte = level.map(|l| ((l.voice_activity as u8) << 7) | (l.level & 0x7F));
    let level_el = match (fmt.audio_level_ext, level_byte) {
        (Some(id), Some(_)) if (1..=14).contains(&id) => Some(id),
        _ => None,
    };
    let ext_data = mid_el.map_or(0, |(_, m)| 1 + m.len()) + level_el.map_or(0, |_| 2);
    let ext_words = ext_data.div_ceil(4);
    let payload = src.get(hdr.header_len()..)?;
    let head = 12 + 4 * (keep + 1);
    let ext_len = if ext_words > 0 { 4 + 4 * ext_words } else { 0 };
    let len = head + ext_len + payload.len();
    let out = out.get_mut(..len)?;
    let b0 = *src.first()?;
    let b1 = *src.get(1)?;
    let x = if ext_words > 0 { 0x10 } else { 0 };
    out[0] = (b0 & 0xE0) | x | (keep as u8 + 1);
    let pt = fmt.payload_type.unwrap_or(b1 & 0x7F) & 0x7F;
    out[1] = if mapped.switched {
        0x80 | pt
    } else {
        (b1 & 0x80) | pt
    };
    out[2..4].copy_from_slice(&mapped.seq.to_be_bytes());
    out[4..8].copy_from_slice(&mapped.ts.to_be_bytes());
    out[8..12].copy_from_slice(&out_ssrc.to_be_bytes());
    out[12..16].copy_from_slice(&hdr.ssrc().to_be_bytes());
    out[16..head].copy_from_slice(src.get(12..12 + 4 * keep)?);
    if ext_words > 0 {
        let ext = &mut out[head..head + ext_len];
        ext[..2].copy_from_slice(&[0xBE, 0xDE]);
        ext[2..4].copy_from_slice(&(ext_words as u16).to_be_bytes());
        let mut at = 4;
        if let Some((id, m)) = mid_el {
            ext[at] = (id << 4) | (m.len() as u8 - 1);
            ext[at + 1..at + 1 + m.len()].copy_from_slice(m);
            at += 1 + m.len();
        }
        if let (Some(id), Some(b)) = (level_el, level_byte) {
            ext[at] = id << 4;
            ext[at + 1] = b;
            at += 2;
        }
        ext[at..].fill(0);
    }
    out[head + ext_len..].copy_from_slice(payload);
    Some(len)
}

/// Writes the forwarded form of the plaintext RTP packet `src` (parsed as `hdr`) into `out`: the slot's
/// SSRC, mapped sequence number and timestamp, the marker bit set on a source switch, and the source
/// SSRC prepended to the CSRC list (a packet that already carries 15 CSRCs loses its last one).
/// Header extensions, payload and padding are copied unchanged. Returns the length written, or `None`
/// when `out` is too small.
#[inline]
pub fn write_forwarded(
    src: &[u8],
    hdr: &RtpHeader<'_>,
    out: &mut [u8],
    out_ssrc: u32,
    mapped: Mapped,
) -> Option<usize> {
    let cc_in = hdr.csrc_count();
    let keep = cc_in.min(14);
    let rest_start = 12 + 4 * cc_in;
    let rest = src.get(rest_start..)?;
    let len = 12 + 4 * (keep + 1) + rest.len();
    let out = out.get_mut(..len)?;
    let b0 = *src.first()?;
    let b1 = *src.get(1)?;
    out[0] = (b0 & 0xF0) | (keep as u8 + 1);
    out[1] = if mapped.switched { b1 | 0x80 } else { b1 };
    out[2..4].copy_from_slice(&mapped.seq.to_be_bytes());
    out[4..8].copy_from_slice(&mapped.ts.to_be_bytes());
    out[8..12].copy_from_slice(&out_ssrc.to_be_bytes());
    out[12..16].copy_from_slice(&hdr.ssrc().to_be_bytes());
    out[16..16 + 4 * keep].copy_from_slice(src.get(12..12 + 4 * keep)?);
    out[16 + 4 * keep..].copy_from_slice(rest);
    Some(len)
}

/// Turns a forwarded packet back into its source's (a relay leg's packet, written by
/// [`write_forwarded_as`] on the node at the leg's other end): the SSRC becomes CSRC[0], the source
/// it carries, and CSRC[0] is taken out of the list (the rest of the packet moves up 4 bytes).
/// The sequence number and timestamp stay the leg stream's. Returns the new length and the source,
/// or `None` when `buf` is not RTP with at least one CSRC.
pub fn unforward_in_place(buf: &mut [u8]) -> Option<(usize, u32)> {
    let hdr = RtpHeader::parse(buf).ok()?;
    if hdr.csrc_count() == 0 {
        return None;
    }
    let source = hdr.csrcs().next()?;
    let len = buf.len();
    buf.copy_within(12..16, 8);
    buf.copy_within(16..len, 12);
    buf[0] -= 1;
    Some((len - 4, source))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forwarded_packet_unforwards_to_its_source_with_the_rest_intact() {
        // A publisher's packet with one CSRC of its own and an extension, forwarded on slot 0x51.
        let mut src = vec![0x91, 111, 0, 7, 0, 0, 3, 0xC0, 0xAA, 0xAA, 0xAA, 0xAA];
        src.extend_from_slice(&0x0C0C_0C0Cu32.to_be_bytes());
        src.extend_from_slice(&[0xBE, 0xDE, 0, 1, 0x10, 0x9E, 0, 0]);
        src.extend_from_slice(b"opus payload");
        let hdr = RtpHeader::parse(&src).unwrap();
        let mut fwd = vec![0u8; 128];
        let mapped = Mapped {
            seq: 100,
            ts: 4800,
            switched: false,
        };
        let n = write_forwarded(&src, &hdr, &mut fwd, 0x51, mapped).unwrap();
        fwd.truncate(n);
        let (m, source) = unforward_in_place(&mut fwd).unwrap();
        fwd.truncate(m);
        assert_eq!(source, 0xAAAA_AAAA);
        let h = RtpHeader::parse(&fwd).unwrap();
        assert_eq!(h.ssrc(), 0xAAAA_AAAA);
        assert_eq!((h.sequence_number(), h.timestamp()), (100, 4800));
        assert_eq!(h.csrcs().collect::<Vec<_>>(), vec![0x0C0C_0C0C]);
        assert_eq!(h.audio_level(1).map(|l| l.level), Some(0x1E));
        assert_eq!(h.payload(), b"opus payload");
        // Not forwarded (no CSRC), or not RTP: refused, untouched.
        let mut plain = src[..12].to_vec();
        plain[0] = 0x80;
        plain.extend_from_slice(b"x");
        let before = plain.clone();
        assert_eq!(unforward_in_place(&mut plain), None);
        assert_eq!(plain, before);
        assert_eq!(unforward_in_place(&mut [0x81, 0, 0]), None);
    }

    const OPUS: u32 = 48_000;

    #[test]
    fn one_source_keeps_its_numbering() {
        let t0 = Instant::now();
        let mut s = SlotRewriter::new(0xAAAA);
        s.assign(1);
        let m = s.map(t0, 1, 100, 5000, OPUS);
        assert_eq!((m.seq, m.ts, m.switched), (100, 5000, true));
        let m = s.map(t0 + Duration::from_millis(20), 1, 101, 5960, OPUS);
        assert_eq!((m.seq, m.ts, m.switched), (101, 5960, false));
    }

    #[test]
    fn switching_source_continues_the_stream() {
        let t0 = Instant::now();
        let mut s = SlotRewriter::new(0xAAAA);
        s.assign(1);
        for i in 0..10u16 {
            s.map(
                t0 + Duration::from_millis(20 * i as u64),
                1,
                65530u16.wrapping_add(i),
                1000 + 960 * i as u32,
                OPUS,
            );
        }
        // Last out: seq 65530+9 = 3 (wrapped), ts 1000 + 8640.
        s.release();
        assert!(s.is_free(t0, DEFAULT_SLOT_IDLE));
        s.assign(2);
        // 500 ms after the last packet, a new source with unrelated numbering.
        let at = t0 + Duration::from_millis(180 + 500);
        let m = s.map(at, 2, 40_000, 123_456_789, OPUS);
        assert!(m.switched);
        assert_eq!(m.seq, 4, "sequence continues at last + 1 across the wrap");
        assert_eq!(
            m.ts,
            1000 + 8640 + 24_000,
            "timestamp advances by the 500 ms gap"
        );
        let m = s.map(
            at + Duration::from_millis(20),
            2,
            40_001,
            123_456_789 + 960,
            OPUS,
        );
        assert_eq!(
            (m.seq, m.ts, m.switched),
            (5, 1000 + 8640 + 24_000 + 960, false)
        );
    }

    #[test]
    fn reordered_packet_does_not_move_the_anchor_back() {
        let t0 = Instant::now();
        let mut s = SlotRewriter::new(7);
        s.assign(1);
        s.map(t0, 1, 10, 0, OPUS);
        s.map(t0, 1, 12, 1920, OPUS);
        let late = s.map(t0, 1, 11, 960, OPUS);
        assert_eq!(late.seq, 11);
        s.assign(2);
        let m = s.map(t0, 2, 500, 0, OPUS);
        assert_eq!(
            m.seq, 13,
            "continues after the highest sequence sent, not the late one"
        );
    }

    #[test]
    fn a_long_gap_in_one_source_is_re_anchored_not_jumped() {
        let t0 = Instant::now();
        let mut s = SlotRewriter::new(7);
        s.assign(1);
        s.map(t0, 1, 100, 0, OPUS);
        // 40,000 packets later (a long mute upstream): continue at last + 1, with a marker.
        let later = t0 + Duration::from_secs(800);
        let m = s.map(later, 1, 100u16.wrapping_add(40_000), 40_000 * 960, OPUS);
        assert_eq!(m.seq, 101);
        assert!(m.switched);
        assert_eq!(m.ts, 800 * OPUS);
        // An ordinary small gap (loss) keeps the numbering.
        let m = s.map(later, 1, 100u16.wrapping_add(40_005), 40_005 * 960, OPUS);
        assert_eq!((m.seq, m.switched), (106, false));
        // A hopelessly late packet is re-anchored rather than sent under an old index.
        let m = s.map(later, 1, 100u16.wrapping_add(30_000), 0, OPUS);
        assert_eq!((m.seq, m.switched), (107, true));
    }

    #[test]
    fn idle_slot_becomes_free() {
        let t0 = Instant::now();
        let mut s = SlotRewriter::new(7);
        s.assign(1);
        s.map(t0, 1, 1, 1, OPUS);
        assert!(!s.is_free(t0 + Duration::from_millis(100), DEFAULT_SLOT_IDLE));
        assert!(s.is_free(t0 + DEFAULT_SLOT_IDLE, DEFAULT_SLOT_IDLE));
    }

    fn rtp(csrcs: &[u32], ext: bool, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![
            0x80 | if ext { 0x10 } else { 0 } | csrcs.len() as u8,
            111,
            0,
            9,
            0,
            0,
            0,
            77,
            0xDE,
            0xAD,
            0xBE,
            0xEF,
        ];
        for c in csrcs {
            p.extend_from_slice(&c.to_be_bytes());
        }
        if ext {
            p.extend_from_slice(&[0xBE, 0xDE, 0, 1, 0x10, 0x85, 0, 0]);
        }
        p.extend_from_slice(payload);
        p
    }

    #[test]
    fn forwarded_packet_carries_slot_ssrc_and_source_csrc() {
        let src = rtp(&[0x1111], true, b"opus");
        let hdr = RtpHeader::parse(&src).unwrap();
        let mut out = [0u8; 64];
        let mapped = Mapped {
            seq: 0x0102,
            ts: 0x03040506,
            switched: true,
        };
        let n = write_forwarded(&src, &hdr, &mut out, 0xCAFE_F00D, mapped).unwrap();
        assert_eq!(n, src.len() + 4);
        let f = RtpHeader::parse(&out[..n]).unwrap();
        assert_eq!(f.ssrc(), 0xCAFE_F00D);
        assert_eq!(f.sequence_number(), 0x0102);
        assert_eq!(f.timestamp(), 0x03040506);
        assert!(f.marker());
        assert_eq!(f.payload_type(), 111);
        assert_eq!(f.csrcs().collect::<Vec<_>>(), vec![0xDEAD_BEEF, 0x1111]);
        assert_eq!(f.audio_level(1).map(|l| l.level), Some(5));
        assert_eq!(f.payload(), b"opus");
        assert!(write_forwarded(&src, &hdr, &mut out[..10], 1, mapped).is_none());
    }

    #[test]
    fn a_subscriber_gets_its_own_payload_type_mid_and_level_ids() {
        // Publisher: PT 111, extensions mid=3 ("0") and audio level=1 (-5 dBov), padding-free.
        let mut src = vec![0x90, 111, 0, 9, 0, 0, 0, 77, 0xDE, 0xAD, 0xBE, 0xEF];
        src.extend_from_slice(&[0xBE, 0xDE, 0, 1, 0x10, 0x85, 0x30, b'0']);
        src.extend_from_slice(b"opus-payload");
        let hdr = RtpHeader::parse(&src).unwrap();
        let fmt = EgressFormat {
            payload_type: Some(96),
            mid_ext: Some(1),
            audio_level_ext: Some(2),
        };
        let level = hdr.audio_level(1);
        let mapped = Mapped {
            seq: 5,
            ts: 6,
            switched: false,
        };
        let mut out = [0u8; 128];
        let n =
            write_forwarded_as(&src, &hdr, &mut out, 0xCAFE, mapped, &fmt, b"12", level).unwrap();
        let f = RtpHeader::parse(&out[..n]).unwrap();
        assert_eq!(
            (f.payload_type(), f.ssrc(), f.sequence_number()),
            (96, 0xCAFE, 5)
        );
        assert_eq!(f.csrcs().collect::<Vec<_>>(), vec![0xDEAD_BEEF]);
        let ext = f.extensions().unwrap();
        assert_eq!(
            ext.get(1),
            Some(&b"12"[..]),
            "the slot's MID under the subscriber's id"
        );
        assert_eq!(
            f.audio_level(2),
            level,
            "the source's level under the subscriber's id"
        );
        assert_eq!(ext.get(3), None, "the publisher's MID does not leak");
        assert_eq!(f.payload(), b"opus-payload");
        // Passthrough keeps the publisher's block and only rewrites the payload type.
        let pass = EgressFormat {
            payload_type: Some(96),
            ..EgressFormat::default()
        };
        let n = write_forwarded_as(&src, &hdr, &mut out, 1, mapped, &pass, b"", level).unwrap();
        let f = RtpHeader::parse(&out[..n]).unwrap();
        assert_eq!(
            (f.payload_type(), f.extensions().unwrap().get(3)),
            (96, Some(&b"0"[..]))
        );
        // No level from the source and no MID: no extension block at all.
        let only_mid = EgressFormat {
            payload_type: None,
            mid_ext: None,
            audio_level_ext: Some(2),
        };
        let n = write_forwarded_as(&src, &hdr, &mut out, 1, mapped, &only_mid, b"", None).unwrap();
        let f = RtpHeader::parse(&out[..n]).unwrap();
        assert!(f.extensions().is_none());
        assert_eq!((f.payload_type(), f.payload()), (111, &b"opus-payload"[..]));
    }

    #[test]
    fn fifteen_csrcs_stay_fifteen() {
        let csrcs: Vec<u32> = (1..=15).collect();
        let src = rtp(&csrcs, false, b"x");
        let hdr = RtpHeader::parse(&src).unwrap();
        let mut out = [0u8; 128];
        let n = write_forwarded(
            &src,
            &hdr,
            &mut out,
            9,
            Mapped {
                seq: 1,
                ts: 1,
                switched: false,
            },
        )
        .unwrap();
        let f = RtpHeader::parse(&out[..n]).unwrap();
        assert_eq!(f.csrc_count(), 15);
        assert_eq!(f.csrcs().next(), Some(0xDEAD_BEEF));
        assert_eq!(f.payload(), b"x");
    }

    #[test]
    fn sender_report_counts_and_a_timestamp_on_one_line_across_a_switch() {
        let t0 = Instant::now();
        let mut s = SlotRewriter::new(0xAAAA);
        assert_eq!(s.sender_info(t0, 7, OPUS), None, "nothing sent yet");
        s.assign(1);
        for i in 0..50u32 {
            s.map(
                t0 + Duration::from_millis(20 * u64::from(i)),
                1,
                i as u16,
                960 * i,
                OPUS,
            );
            s.count_sent(80);
        }
        // 100 ms after the last packet (ts 47,040 at t0 + 980 ms): 4,800 ticks later.
        let at = t0 + Duration::from_millis(1080);
        let si = s.sender_info(at, 7, OPUS).unwrap();
        assert_eq!(
            si,
            SenderInfo {
                ntp_timestamp: 7,
                rtp_timestamp: 47_040 + 4_800,
                packet_count: 50,
                octet_count: 4_000
            }
        );
        // Another source with unrelated numbering takes over 500 ms later: the report's RTP time
        // for a given instant does not move.
        s.release();
        s.assign(2);
        let later = t0 + Duration::from_millis(1480);
        s.map(later, 2, 9_000, 77_777_777, OPUS);
        s.count_sent(80);
        let si2 = s
            .sender_info(at + Duration::from_millis(400), 8, OPUS)
            .unwrap();
        assert_eq!(si2.rtp_timestamp, si.rtp_timestamp + 19_200);
        assert_eq!((si2.packet_count, si2.octet_count), (51, 4_080));
    }
}
