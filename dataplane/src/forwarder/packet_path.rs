//! The packet path: one received datagram (or one packet relayed by another worker) in, its fan-out
//! into the [`Outbox`] out.
//!
//! RTP is looked up, decrypted once in place, checked against the publisher's state, then for every
//! local subscriber mapped onto a speaker slot ([`crate::speaker::pick_slot`]), rewritten and
//! encrypted with that subscriber's key; other workers hosting the room get the decrypted packet over
//! their relay ring. A relay leg to another node is one more subscriber behind an audio-level gate,
//! and what comes in on one is turned back into its source's packets first (`cascade`). SRTCP is authenticated, read (`reporting`) and terminated here. Every failure is
//! one counted drop.

use std::net::SocketAddr;
use std::time::Instant;

use crate::outbox::Outbox;
use crate::packet::{self, AudioLevel, PacketKind, RtpHeader};
use crate::relay::RelayMeta;
use crate::rewrite;
use crate::speaker::{self, pick_slot};
use crate::srtp::SrtpError;
use crate::stats::DropReason;
use crate::topology::{RoomId, Upcall};

use super::tables::Transport;
use super::Forwarder;

/// How often a learning publisher's unconfirmed SSRC is proposed to the control plane while no
/// answer came (the upcall was lost, or the control plane refused it: another member's SSRC).
const SSRC_PROPOSAL_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

impl Forwarder {
    /// Handles one received datagram. `buf` is decrypted in place.
    pub fn on_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        buf: &mut [u8],
        out: &mut Outbox,
    ) {
        self.stats.packets_in.add(1);
        self.stats.bytes_in.add(buf.len() as u64);
        match packet::classify(buf) {
            PacketKind::Rtp => self.on_rtp(now, from, buf, out),
            PacketKind::Rtcp => self.on_rtcp(now, from, buf),
            PacketKind::Stun => self.on_stun(now, from, buf, out),
            PacketKind::Dtls => self.on_dtls(now, from, buf),
            PacketKind::Unknown => self.stats.count_drop(DropReason::Malformed, 1),
        }
    }

    fn count_srtp_error(&self, e: &SrtpError) {
        let reason = match e {
            SrtpError::Replayed => DropReason::Replayed,
            SrtpError::AuthenticationFailed => DropReason::AuthFailed,
            _ => DropReason::Malformed,
        };
        self.stats.count_drop(reason, 1);
    }

    fn on_rtp(&mut self, now: Instant, from: SocketAddr, buf: &mut [u8], out: &mut Outbox) {
        let (ssrc, seq, ts) = match RtpHeader::parse_encrypted(buf) {
            Ok(h) => (h.ssrc(), h.sequence_number(), h.timestamp()),
            Err(_) => return self.stats.count_drop(DropReason::Malformed, 1),
        };
        let Some((idx, unlatched)) = self.lookup(from, Some(ssrc)) else {
            return self.stats.count_drop(DropReason::UnknownSource, 1);
        };
        let Some(t) = self.transports.get_mut(idx).and_then(Option::as_mut) else {
            return self.stats.count_drop(DropReason::UnknownSource, 1);
        };
        if !unlatched {
            // Cheap checks before spending crypto on the packet. A muted publisher's packets are
            // still decrypted below, so its SRTP rollover counter follows the sender through a long
            // mute (skipping them would desynchronise it and lose every packet after the unmute).
            // A learning publisher's packets on a new SSRC are authenticated first, then proposed.
            match (&t.leg, t.publish_ssrc) {
                (Some(leg), _) if leg.accepts(ssrc) => {}
                (Some(_), _) => return self.stats.count_drop(DropReason::Malformed, 1),
                (None, Some(p)) if p == ssrc => {}
                _ if t.learn_ssrc => {}
                (None, Some(_)) => return self.stats.count_drop(DropReason::Malformed, 1),
                (None, None) => return self.stats.count_drop(DropReason::Muted, 1),
            }
        }
        let plain_len = match &mut t.inbound {
            Some(ctx) => match ctx.unprotect_rtp(buf) {
                Ok(n) => n,
                Err(e) => return self.count_srtp_error(&e),
            },
            None => buf.len(),
        };
        if unlatched {
            self.latch(idx, from);
        } else if t.inbound.is_some() {
            refresh_consent(t, now);
        }
        let Some(t) = self.transports.get_mut(idx).and_then(Option::as_mut) else {
            return;
        };
        if t.leg.is_some() && !unlatched {
            return self.on_leg_rtp(now, idx, ssrc, &mut buf[..plain_len], out);
        }
        let plain = &buf[..plain_len];
        if t.publish_ssrc != Some(ssrc) && t.learn_ssrc && !unlatched {
            return self.propose_ssrc(now, idx, ssrc, plain);
        }
        if t.publish_ssrc != Some(ssrc) {
            return self.stats.count_drop(DropReason::Muted, 1);
        }
        // The first hop's loss and jitter, muted or not (what the publisher's report says).
        t.rtcp
            .reception
            .on_packet(now, seq, ts, self.cfg.clock_rate);
        if t.muted {
            return self.stats.count_drop(DropReason::Muted, 1);
        }
        let Ok(hdr) = RtpHeader::parse(plain) else {
            return self.stats.count_drop(DropReason::Malformed, 1);
        };
        let level = t.audio_level_ext.and_then(|id| hdr.audio_level(id));
        t.last_level = level;
        if let Some(speaking) = t.voice.on_packet(now, speaker::is_voiced(level)) {
            self.upcalls.push(Upcall::Speaking {
                worker: self.cfg.worker,
                transport: t.id,
                speaking,
            });
        }
        let Some(room_id) = t.room else {
            return self.stats.count_drop(DropReason::Muted, 1);
        };
        let pkt = Decrypted {
            publisher: Some(idx),
            hdr: &hdr,
            plain,
            level,
            restart: false,
        };
        self.fan_out(now, room_id, pkt, out);
        self.relay(room_id, ssrc, level, false, plain);
    }

    /// An authenticated packet on a relay leg from another node (`cascade`): turned back into its
    /// source's packet (CSRC[0]) and sent to the room as that source's own.
    fn on_leg_rtp(
        &mut self,
        now: Instant,
        idx: usize,
        leg_ssrc: u32,
        buf: &mut [u8],
        out: &mut Outbox,
    ) {
        let Some((len, source)) = rewrite::unforward_in_place(buf) else {
            return self.stats.count_drop(DropReason::Malformed, 1);
        };
        let plain = &buf[..len];
        let Ok(hdr) = RtpHeader::parse(plain) else {
            return self.stats.count_drop(DropReason::Malformed, 1);
        };
        let Some(t) = self.transports.get_mut(idx).and_then(Option::as_mut) else {
            return;
        };
        let level = t.audio_level_ext.and_then(|id| hdr.audio_level(id));
        let (Some(room_id), Some(leg)) = (t.room, t.leg.as_mut()) else {
            return self.stats.count_drop(DropReason::Muted, 1);
        };
        let p = leg.on_packet(now, leg_ssrc, source, speaker::is_voiced(level));
        let worker = self.cfg.worker;
        if let Some(gone) = p.displaced {
            self.upcalls.push(Upcall::SourceSpeaking {
                worker,
                room: room_id,
                source: gone,
                speaking: false,
            });
        }
        if let Some(speaking) = p.speaking {
            self.upcalls.push(Upcall::SourceSpeaking {
                worker,
                room: room_id,
                source,
                speaking,
            });
        }
        self.stats.cascade_in.add(1);
        let pkt = Decrypted {
            publisher: Some(idx),
            hdr: &hdr,
            plain,
            level,
            restart: p.restart,
        };
        self.fan_out(now, room_id, pkt, out);
        self.relay(room_id, source, level, p.restart, plain);
    }

    /// An authenticated packet of a learning publisher on an SSRC it is not confirmed for: held
    /// back (`unconfirmed_ssrc`), and proposed to the control plane at most once a second while
    /// unanswered, unless its MID header extension names another section than the one it
    /// publishes on.
    fn propose_ssrc(&mut self, now: Instant, idx: usize, ssrc: u32, plain: &[u8]) {
        self.stats.count_drop(DropReason::UnconfirmedSsrc, 1);
        let Some(t) = self.transports.get_mut(idx).and_then(Option::as_mut) else {
            return;
        };
        if let (Some(id), false) = (t.egress.mid_ext, t.publish_mid.is_empty()) {
            let mid = RtpHeader::parse(plain)
                .ok()
                .and_then(|h| h.extensions())
                .and_then(|e| e.get(id));
            if mid.is_some_and(|m| m != t.publish_mid.as_slice()) {
                return;
            }
        }
        let due = t
            .proposed_ssrc
            .is_none_or(|(_, at)| now.saturating_duration_since(at) >= SSRC_PROPOSAL_INTERVAL);
        if due {
            t.proposed_ssrc = Some((ssrc, now));
            self.upcalls.push(Upcall::PublishSsrc {
                worker: self.cfg.worker,
                transport: t.id,
                ssrc,
            });
        }
    }

    fn on_rtcp(&mut self, now: Instant, from: SocketAddr, buf: &mut [u8]) {
        let ssrc = packet::rtcp::first_ssrc(buf);
        // Known address or an unlatched comedia transport; else, for a plain transport, its host on
        // the next port (RTCP not multiplexed), latched below once the packet authenticates.
        let (idx, unlatched, next_port) = match self.lookup(from, ssrc) {
            Some((idx, unlatched)) => (idx, unlatched, false),
            None => match self.rtcp_neighbour(from) {
                Some(idx) => (idx, false, true),
                None => return self.stats.count_drop(DropReason::UnknownSource, 1),
            },
        };
        let Some(t) = self.transports.get_mut(idx).and_then(Option::as_mut) else {
            return self.stats.count_drop(DropReason::UnknownSource, 1);
        };
        let mut plain_len = buf.len();
        if let Some(ctx) = &mut t.inbound {
            match ctx.unprotect_rtcp(buf) {
                Ok(n) => plain_len = n,
                Err(e) => return self.count_srtp_error(&e),
            }
            if !unlatched {
                refresh_consent(t, now);
            }
        }
        // An unlatched publisher's RTCP may come before its RTP and from another port (ffmpeg sends
        // a sender report first, from the port after its RTP port): it latches only the RTCP
        // address, and the RTP address waits for its RTP. A listener sends nothing but RTCP, so its
        // RTCP latches its address.
        let publishes = t.publish_ssrc.is_some() || t.learn_ssrc;
        let rtcp_latched = t.rtcp_remote.is_some();
        if unlatched && !publishes {
            self.latch(idx, from);
        } else if next_port || (unlatched && !rtcp_latched) {
            self.latch_rtcp(idx, from);
        }
        // Reports are read and end here (`reporting`); feedback (NACK, PLI) too: audio needs no
        // retransmission or key frames.
        self.read_reports(idx, now, &buf[..plain_len]);
        self.stats.rtcp_in.add(1);
    }

    /// Sends `plain` (a decrypted packet of `source`, parsed as `hdr`) to every local member of the
    /// room but the publisher itself.
    fn fan_out(&mut self, now: Instant, room_id: RoomId, pkt: Decrypted<'_, '_>, out: &mut Outbox) {
        let Decrypted {
            publisher,
            hdr,
            plain,
            level,
            restart,
        } = pkt;
        let source = hdr.ssrc();
        let dominant = self.track_dominant(now, room_id, source, level);
        let Some(room) = self.rooms.get(&room_id) else {
            return;
        };
        let (seq, ts) = (hdr.sequence_number(), hdr.timestamp());
        let (clock_rate, idle, hold) =
            (self.cfg.clock_rate, self.cfg.slot_idle, self.cfg.slot_hold);
        let voiced = speaker::is_voiced(level);
        for &m in &room.members {
            if Some(m) == publisher {
                continue;
            }
            let Some(t) = self.transports.get_mut(m).and_then(Option::as_mut) else {
                continue;
            };
            let Some(dest) = t.remote else {
                continue;
            };
            let is_leg = t.leg.is_some();
            let pick = if is_leg {
                speaker::pick_gated_slot
            } else {
                pick_slot
            };
            let Some((i, moved)) = pick(&mut t.slots, source, voiced, now, idle, hold, dominant)
            else {
                continue;
            };
            if restart && !moved {
                t.slots[i].reanchor();
            }
            if moved && !is_leg {
                self.upcalls.push(Upcall::SlotChanged {
                    worker: self.cfg.worker,
                    transport: t.id,
                    slot: i as u16,
                    source: Some(source),
                });
            }
            let slot = &mut t.slots[i];
            let out_ssrc = slot.out_ssrc();
            let mapped = slot.map(now, source, seq, ts, clock_rate);
            let mid = slot.mid();
            let (outbound, egress) = (&mut t.outbound, &t.egress);
            let mut failed = false;
            let pushed = out.push_with(dest, |buf| {
                let n = rewrite::write_forwarded_as(
                    plain, hdr, buf, out_ssrc, mapped, egress, mid, level,
                )?;
                match outbound {
                    Some(ctx) => ctx.protect_rtp(buf, n).map_err(|_| failed = true).ok(),
                    None => Some(n),
                }
            });
            if pushed {
                t.slots[i].count_sent(plain.len().saturating_sub(hdr.header_len()));
                if is_leg {
                    self.stats.cascade_out.add(1);
                }
            } else {
                let reason = if failed {
                    DropReason::Malformed
                } else {
                    DropReason::QueueFull
                };
                self.stats.count_drop(reason, 1);
            }
        }
    }

    /// Feeds one packet's level to the room's dominant-speaker detector, makes its decision when
    /// one is due (every 300 ms; a change is reported up), and returns who holds the floor.
    /// Allocates only for a room's first level and a source's first voiced level.
    fn track_dominant(
        &mut self,
        now: Instant,
        room_id: RoomId,
        source: u32,
        level: Option<AudioLevel>,
    ) -> Option<u32> {
        if !self.cfg.dominant_speaker {
            return None;
        }
        let room = self.rooms.get_mut(&room_id)?;
        let Some(level) = level else {
            return room.dominant.as_ref().and_then(|d| d.dominant());
        };
        let d = room.dominant.get_or_insert_with(Box::default);
        // A source joins the detector with its first voiced packet: members who only ever send
        // silence cost it nothing (its lookup is a scan of the sources it tracks).
        if !d.contains(source) {
            if !speaker::is_voiced(Some(level)) {
                return d.dominant();
            }
            d.add(source);
        }
        d.level(source, level.level, now);
        if d.next_decision_at().is_none_or(|t| now >= t) {
            if let Some(source) = d.decide(now) {
                self.upcalls.push(Upcall::Dominant {
                    worker: self.cfg.worker,
                    room: room_id,
                    source,
                });
            }
        }
        d.dominant()
    }

    /// Hands a decrypted packet to every other worker hosting members of the room.
    fn relay(
        &mut self,
        room_id: RoomId,
        source: u32,
        level: Option<AudioLevel>,
        restart: bool,
        plain: &[u8],
    ) {
        let Some(room) = self.rooms.get(&room_id) else {
            return;
        };
        for &w in &room.remote_workers {
            let Some(tx) = self.relay_tx.get_mut(w).and_then(Option::as_mut) else {
                continue;
            };
            if tx.push(room_id, source, level, restart, plain) {
                self.stats.relayed_out.add(1);
                self.touched |= 1u64 << (w % 64);
            } else {
                self.stats.count_drop(DropReason::QueueFull, 1);
            }
        }
    }

    /// Forwards packets other workers relayed to this one, stopping early when the outbox has fewer
    /// free slots than one more packet may need. Returns true when everything queued was handled.
    pub fn drain_relays(&mut self, now: Instant, out: &mut Outbox) -> bool {
        let mut scratch = std::mem::take(&mut self.relay_scratch);
        let mut done = true;
        for r in 0..self.relay_rx.len() {
            loop {
                if out.remaining() < self.max_fanout.max(1) {
                    done = false;
                    break;
                }
                let Some(meta) = self.relay_rx[r].pop(&mut scratch) else {
                    break;
                };
                self.on_relayed(now, meta, &scratch[..meta.len], out);
            }
        }
        self.relay_scratch = scratch;
        done
    }

    /// Forwards one packet another worker decrypted.
    pub fn on_relayed(&mut self, now: Instant, meta: RelayMeta, plain: &[u8], out: &mut Outbox) {
        self.stats.relayed_in.add(1);
        let Ok(hdr) = RtpHeader::parse(plain) else {
            return self.stats.count_drop(DropReason::Malformed, 1);
        };
        let pkt = Decrypted {
            publisher: None,
            hdr: &hdr,
            plain,
            level: meta.level,
            restart: meta.restart,
        };
        self.fan_out(now, meta.room, pkt, out);
    }
}

/// A decrypted packet on its way to the room: who published it here (None when relayed from another
/// worker; the leg, for a packet that came over a relay leg), its parsed header, its bytes, its
/// audio level, and whether its source's numbering restarted (`cascade`).
#[derive(Clone, Copy)]
struct Decrypted<'h, 'a> {
    publisher: Option<usize>,
    hdr: &'h RtpHeader<'a>,
    plain: &'a [u8],
    level: Option<AudioLevel>,
    restart: bool,
}

/// Authenticated SRTP or SRTCP from a transport's latched address is a sign of life as good as a
/// connectivity check: only the peer holding the keys can send it, from the address ICE confirmed.
/// libnice keeps a selected pair alive with Binding *indications* (which prove nothing and are
/// dropped), so without this its calls would be cut after the 30 s of RFC 7675. Unauthenticated
/// traffic never refreshes consent.
#[inline]
fn refresh_consent(t: &mut Transport, now: Instant) {
    if let Some(c) = &mut t.consent {
        c.refresh(now);
    }
}
