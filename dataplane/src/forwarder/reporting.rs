//! RTCP terminated at this hop, as mediasoup and LiveKit do (docs/architecture.md, "RTCP").
//!
//! - Read on the packet path ([`Forwarder::read_reports`]): a publisher's sender reports (for
//!   LSR/DLSR in what sluice sends back), and the report blocks a subscriber's receiver reports carry
//!   about the slot streams sluice sends it (loss, jitter, round-trip time).
//! - Written once a second ([`Forwarder::send_reports`]), one compound SRTCP datagram per transport:
//!   a sender report for each of its slot streams (the slot's own SSRC, packet and octet counts, an
//!   NTP/RTP pair on one line across source switches), a report block about the stream it publishes
//!   in the first of them (or in a receiver report when it has no slots) carrying the worse of this
//!   hop's loss and jitter and its subscribers' ([`TopologyUpdate::Downstream`]), and an SDES CNAME
//!   per SSRC used; and an [`Upcall::Link`] with what the reports said.
//!
//! [`TopologyUpdate::Downstream`]: crate::topology::TopologyUpdate::Downstream

use std::time::{Duration, Instant};

use crate::outbox::Outbox;
use crate::packet::{
    rtcp::MAX_REPORT_BLOCKS, write_rr, write_sdes_cname, write_sr, ReportBlock, RtcpCompound,
};
use crate::reports::{Downlink, NtpClock, Quality, Reception};
use crate::stats::DropReason;
use crate::topology::{LinkReport, Upcall, UplinkSample};

use super::Forwarder;

/// The CNAME sluice's own streams carry (RFC 3550 §6.5.1: one per endpoint). Its length is a
/// multiple of 4, so each SDES chunk ends in exactly two null octets: aiortc (1.x) reads a chunk's
/// terminator as a two-byte item and does not skip padding, so with any other length it misreads
/// every chunk after the first and drops the whole compound.
const CNAME: &[u8] = b"sluice.local";

/// Room left in an outbox slot for what SRTCP appends (the E‖index word and the longest tag).
const SRTCP_ROOM: usize = 32;

/// RTCP state of one transport.
#[derive(Debug, Default)]
pub(crate) struct Rtcp {
    /// The stream it publishes, as received here.
    pub(super) reception: Reception,
    /// What its receiver reports said since the last pass.
    pub(super) downlink: Downlink,
    /// The worst loss and jitter among the subscribers of its stream (from the control plane).
    pub(super) downstream: Quality,
}

/// The SSRC a transport's receiver report comes from when it has no slot of its own to send one
/// (a publisher that subscribes to nothing): any value unlikely to be the member's own.
fn report_ssrc(id: u64) -> u32 {
    (id as u32).wrapping_mul(0x9E37_79B9) | 1
}

impl Forwarder {
    /// The wall-clock time RTCP stamps: at `now` the system clock read `since_unix` after the Unix
    /// epoch. The worker sets it before each [`send_reports`](Self::send_reports); until then no
    /// report is written.
    pub fn set_wall_clock(&mut self, now: Instant, since_unix: Duration) {
        self.ntp = Some(NtpClock::new(now, since_unix));
    }

    /// Reads the reports of one authenticated, decrypted RTCP datagram of transport `idx`.
    pub(super) fn read_reports(&mut self, idx: usize, now: Instant, plain: &[u8]) {
        let ntp_now = self.ntp.map(|c| c.ntp(now));
        let Some(t) = self.transports.get_mut(idx).and_then(Option::as_mut) else {
            return;
        };
        for pkt in RtcpCompound::new(plain) {
            let Ok(pkt) = pkt else {
                break;
            };
            if let (Some(info), Some(p)) = (pkt.sender_info(), t.publish_ssrc) {
                if pkt.sender_ssrc() == Some(p) {
                    t.rtcp.reception.on_sender_report(now, info.ntp_timestamp);
                }
            }
            let Some(ntp_now) = ntp_now else {
                continue;
            };
            for block in pkt.report_blocks() {
                if t.slots.iter().any(|s| s.out_ssrc() == block.ssrc) {
                    t.rtcp.downlink.on_block(&block, ntp_now);
                }
            }
        }
    }

    /// Writes this second's RTCP into `out` for the transports from slab index `from` on, and
    /// reports each one's link to the control plane. Returns where to go on once `out` was sent
    /// when it filled up first, `None` when every transport was done.
    pub fn send_reports(&mut self, now: Instant, from: usize, out: &mut Outbox) -> Option<usize> {
        let clock = self.ntp?;
        let ntp = clock.ntp(now);
        let clock_rate = self.cfg.clock_rate;
        for idx in from..self.transports.len() {
            if out.remaining() == 0 {
                return Some(idx);
            }
            let Some(t) = self.transports.get_mut(idx).and_then(Option::as_mut) else {
                continue;
            };
            let uplink = t.publish_ssrc.filter(|_| t.rtcp.reception.started());
            let block = uplink.and_then(|ssrc| {
                let downstream = t.rtcp.downstream;
                t.rtcp.reception.report(ssrc, now, downstream)
            });
            let report = LinkReport {
                uplink: block.map(|_| UplinkSample {
                    quality: t.rtcp.reception.quality(),
                    lost: t.rtcp.reception.cumulative_lost(),
                    received: t.rtcp.reception.received(),
                }),
                downlink: t.rtcp.downlink.take(),
            };
            if report.uplink.is_some() || report.downlink.is_some() {
                self.upcalls.push(Upcall::Link {
                    worker: self.cfg.worker,
                    transport: t.id,
                    report,
                });
            }
            // WebRTC transports before their keys, and transports not latched yet, get nothing.
            let keyed = t.outbound.is_some() || (t.ice.is_none() && t.inbound.is_none());
            let Some(dest) = t.rtcp_remote.or(t.remote).filter(|_| keyed) else {
                continue;
            };
            let sending = t
                .slots
                .iter()
                .any(|s| s.sender_info(now, ntp, clock_rate).is_some());
            if !sending && block.is_none() {
                continue;
            }
            let (slots, outbound, id) = (&t.slots, &mut t.outbound, t.id);
            let mut failed = false;
            let pushed = out.push_with(dest, |buf| {
                let room = buf.len() - SRTCP_ROOM;
                let n = write_compound(&mut buf[..room], slots, block, id, now, ntp, clock_rate)?;
                match outbound {
                    Some(ctx) => ctx.protect_rtcp(buf, n).map_err(|_| failed = true).ok(),
                    None => Some(n),
                }
            });
            if pushed {
                self.stats.rtcp_out.add(1);
            } else if failed {
                self.stats.count_drop(DropReason::Malformed, 1);
            }
        }
        None
    }
}

/// One transport's compound report: an SR per slot stream that sent something (the first carrying
/// `block`), or an RR with `block` alone, then SDES. `None` when nothing is to be said or it does not
/// fit `buf`.
fn write_compound(
    buf: &mut [u8],
    slots: &[crate::rewrite::SlotRewriter],
    block: Option<ReportBlock>,
    id: u64,
    now: Instant,
    ntp: u64,
    clock_rate: u32,
) -> Option<usize> {
    let mut senders = [0u32; MAX_REPORT_BLOCKS];
    let mut count = 0;
    let mut n = 0;
    let mut pending = block;
    const _: () = assert!(CNAME.len() % 4 == 0);
    for slot in slots {
        let Some(info) = slot.sender_info(now, ntp, clock_rate) else {
            continue;
        };
        if count == MAX_REPORT_BLOCKS - 1 {
            break; // one SDES chunk per sender, and room for the RR below
        }
        let blocks = pending.take();
        n += write_sr(&mut buf[n..], slot.out_ssrc(), &info, blocks.as_slice())?;
        senders[count] = slot.out_ssrc();
        count += 1;
    }
    if let Some(b) = pending {
        let ssrc = report_ssrc(id);
        n += write_rr(&mut buf[n..], ssrc, &[b])?;
        senders[count] = ssrc;
        count += 1;
    }
    if count == 0 {
        return None;
    }
    n += write_sdes_cname(&mut buf[n..], &senders[..count], CNAME)?;
    Some(n)
}
