//! Cross-worker relay rings: one lock-free single-producer single-consumer byte ring (rtrb) per ordered
//! pair of workers, carrying packets that the publisher's worker already decrypted, so a room whose
//! members live on several workers is decrypted once and re-encrypted by each member's own worker.
//!
//! A record is a fixed header followed by the plaintext RTP packet:
//! `room: u64 | source ssrc: u32 | level: u8 (0xFF none, else V<<7 | level) | flags: u8 | len: u16`
//! (flags bit 0: [`RelayMeta::restart`]).
//! A full ring refuses the record (the caller counts a `queue_full` drop); nothing ever blocks.

use rtrb::{Consumer, Producer, RingBuffer};

use crate::packet::AudioLevel;
use crate::topology::RoomId;

const HEADER: usize = 16;

/// Metadata of one relayed packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayMeta {
    /// The room it belongs to.
    pub room: RoomId,
    /// The publisher's SSRC.
    pub source: u32,
    /// Its RFC 6464 audio level, when the publisher sent one.
    pub level: Option<AudioLevel>,
    /// The source's numbering changed under its SSRC (it came over a relay leg on another of the
    /// leg's streams): slots carrying it re-anchor ([`crate::rewrite::SlotRewriter::reanchor`]).
    pub restart: bool,
    /// Length of the plaintext packet.
    pub len: usize,
}

/// Producing end, owned by the sending worker.
pub struct RelayTx(Producer<u8>);

/// Consuming end, owned by the receiving worker.
pub struct RelayRx(Consumer<u8>);

/// A ring of `capacity_bytes`.
pub fn relay_ring(capacity_bytes: usize) -> (RelayTx, RelayRx) {
    let (p, c) = RingBuffer::new(capacity_bytes.max(4096));
    (RelayTx(p), RelayRx(c))
}

fn copy_into(dst: (&mut [u8], &mut [u8]), src: &[u8], at: usize) {
    let (a, b) = dst;
    for (i, byte) in src.iter().enumerate() {
        let j = at + i;
        if j < a.len() {
            a[j] = *byte;
        } else {
            b[j - a.len()] = *byte;
        }
    }
}

impl RelayTx {
    /// Queues one plaintext packet; false when the ring is full.
    pub fn push(
        &mut self,
        room: RoomId,
        source: u32,
        level: Option<AudioLevel>,
        restart: bool,
        packet: &[u8],
    ) -> bool {
        let Ok(len) = u16::try_from(packet.len()) else {
            return false;
        };
        let mut header = [0u8; HEADER];
        header[..8].copy_from_slice(&room.to_le_bytes());
        header[8..12].copy_from_slice(&source.to_le_bytes());
        header[12] = level.map_or(0xFF, |l| ((l.voice_activity as u8) << 7) | (l.level & 0x7F));
        header[13] = u8::from(restart);
        header[14..16].copy_from_slice(&len.to_le_bytes());
        let Ok(mut chunk) = self.0.write_chunk(HEADER + packet.len()) else {
            return false;
        };
        let (a, b) = chunk.as_mut_slices();
        if a.len() >= HEADER + packet.len() {
            a[..HEADER].copy_from_slice(&header);
            a[HEADER..HEADER + packet.len()].copy_from_slice(packet);
        } else {
            copy_into((&mut *a, &mut *b), &header, 0);
            copy_into((a, b), packet, HEADER);
        }
        chunk.commit_all();
        true
    }
}

impl RelayRx {
    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Takes the next packet, copying it into `scratch` (at least 65,535 + header bytes are never
    /// needed: packets come from datagrams of at most one slot).
    pub fn pop(&mut self, scratch: &mut [u8]) -> Option<RelayMeta> {
        let header = {
            let chunk = self.0.read_chunk(HEADER).ok()?;
            let (a, b) = chunk.as_slices();
            let mut h = [0u8; HEADER];
            for (i, byte) in a.iter().chain(b.iter()).enumerate() {
                h[i] = *byte;
            }
            h
        };
        let len = u16::from_le_bytes([header[14], header[15]]) as usize;
        let chunk = self.0.read_chunk(HEADER + len).ok()?;
        let (a, b) = chunk.as_slices();
        let mut copied = 0;
        for part in [a, b] {
            let start = HEADER.saturating_sub(copied);
            if start < part.len() {
                let body = &part[start..];
                let at = copied + start - HEADER;
                if let Some(dst) = scratch.get_mut(at..at + body.len()) {
                    dst.copy_from_slice(body);
                }
            }
            copied += part.len();
        }
        chunk.commit_all();
        let level = match header[12] {
            0xFF => None,
            b => Some(AudioLevel {
                voice_activity: b & 0x80 != 0,
                level: b & 0x7F,
            }),
        };
        Some(RelayMeta {
            room: u64::from_le_bytes(header[..8].try_into().ok()?),
            source: u32::from_le_bytes(header[8..12].try_into().ok()?),
            level,
            restart: header[13] & 1 != 0,
            len: len.min(scratch.len()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_survive_wrapping() {
        let (mut tx, mut rx) = relay_ring(4096);
        let mut scratch = [0u8; 2048];
        for round in 0..200u32 {
            let packet: Vec<u8> = (0..(100 + round % 300))
                .map(|i| (i + round) as u8)
                .collect();
            let level = (round % 2 == 0).then_some(AudioLevel {
                voice_activity: true,
                level: 33,
            });
            let restart = round % 3 == 0;
            assert!(tx.push(7, round, level, restart, &packet));
            let meta = rx.pop(&mut scratch).unwrap();
            assert_eq!(
                meta,
                RelayMeta {
                    room: 7,
                    source: round,
                    level,
                    restart,
                    len: packet.len()
                }
            );
            assert_eq!(&scratch[..meta.len], &packet[..]);
        }
        assert!(rx.is_empty());
        assert!(rx.pop(&mut scratch).is_none());
    }

    #[test]
    fn full_ring_refuses() {
        let (mut tx, _rx) = relay_ring(4096);
        let packet = [1u8; 1000];
        let pushed = (0..10)
            .filter(|_| tx.push(1, 1, None, false, &packet))
            .count();
        assert_eq!(pushed, 4, "4 records of 1016 bytes fit in 4096");
    }
}
