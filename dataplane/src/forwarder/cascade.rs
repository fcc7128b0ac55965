//! Relay legs between nodes (a cascade, [`crate::topology::RelayLeg`]): what the receiving end
//! of a leg remembers about the streams that come in on it.
//!
//! The other node sends the room's speakers on its leg slots, each packet naming its source as
//! CSRC[0]. Here each incoming leg stream is tied to the source it carries now; when a source shows
//! up on another stream than before (the other end gave it another slot), its sequence numbers and
//! timestamps changed under the same SSRC, and every slot carrying it here must re-anchor
//! (`restart`). Whether each remote source speaks is tracked per stream, for
//! [`crate::topology::Upcall::SourceSpeaking`].
//!
//! Pure state over `Instant`s passed in: no I/O, no allocation once built (one entry per stream
//! the control plane declared).

use std::time::Instant;

use crate::speaker::VoiceActivity;

/// One incoming stream of a leg.
#[derive(Debug, Clone)]
struct LegStream {
    /// The other end's slot SSRC.
    ssrc: u32,
    /// The source it carried last.
    source: Option<u32>,
    voice: VoiceActivity,
}

/// What a packet on a leg stream means for the room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct LegPacket {
    /// The source's numbering changed: slots carrying it re-anchor.
    pub(super) restart: bool,
    /// A source that stopped speaking because another took its stream, if any.
    pub(super) displaced: Option<u32>,
    /// The source started (`Some(true)`) or stopped speaking with this packet.
    pub(super) speaking: Option<bool>,
}

/// The receiving end of one relay leg.
#[derive(Debug, Clone, Default)]
pub(super) struct LegState {
    streams: Vec<LegStream>,
}

impl LegState {
    /// A leg whose other end sends on `inbound_ssrcs`.
    pub(super) fn new(inbound_ssrcs: &[u32]) -> Self {
        Self {
            streams: inbound_ssrcs
                .iter()
                .map(|&ssrc| LegStream {
                    ssrc,
                    source: None,
                    voice: VoiceActivity::default(),
                })
                .collect(),
        }
    }

    /// The other end's leg streams.
    pub(super) fn ssrcs(&self) -> impl Iterator<Item = u32> + '_ {
        self.streams.iter().map(|s| s.ssrc)
    }

    /// True when `ssrc` is one of the other end's leg streams.
    #[inline]
    pub(super) fn accepts(&self, ssrc: u32) -> bool {
        self.streams.iter().any(|s| s.ssrc == ssrc)
    }

    /// A packet of `source` on the leg stream `ssrc` (which [`accepts`](Self::accepts)), voiced or
    /// not, at `now`.
    pub(super) fn on_packet(
        &mut self,
        now: Instant,
        ssrc: u32,
        source: u32,
        voiced: bool,
    ) -> LegPacket {
        let mut p = LegPacket::default();
        let Some(i) = self.streams.iter().position(|s| s.ssrc == ssrc) else {
            return p;
        };
        if self.streams[i].source != Some(source) {
            p.restart = true;
            // The stream carried someone else: that one is no longer heard on it.
            let before = std::mem::take(&mut self.streams[i].voice);
            if before.is_speaking() {
                p.displaced = self.streams[i].source;
            }
            self.streams[i].source = Some(source);
            // A source rides one stream at a time: the stream it left forgets it, so its return
            // there is a restart too. Its speaking state moves with it.
            for (j, s) in self.streams.iter_mut().enumerate() {
                if j != i && s.source == Some(source) {
                    s.source = None;
                    self.streams[i].voice = std::mem::take(&mut s.voice);
                    break;
                }
            }
        }
        p.speaking = self.streams[i].voice.on_packet(now, voiced);
        p
    }

    /// Sources whose speaking ran out (no voiced packet for the hold, or nothing at all), for
    /// housekeeping.
    pub(super) fn expire_speaking(&mut self, now: Instant) -> impl Iterator<Item = u32> + '_ {
        self.streams.iter_mut().filter_map(move |s| {
            (s.voice.on_tick(now) == Some(false))
                .then_some(s.source)
                .flatten()
        })
    }

    /// Every source the leg carried, and whether it is speaking now; the state is cleared (the
    /// leg left its room).
    pub(super) fn take_sources(&mut self) -> Vec<(u32, bool)> {
        self.streams
            .iter_mut()
            .filter_map(|s| {
                let speaking = std::mem::take(&mut s.voice).is_speaking();
                s.source.take().map(|src| (src, speaking))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_source_moving_to_another_leg_stream_and_back_restarts_each_time_and_keeps_speaking() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut leg = LegState::new(&[0x51, 0x52]);
        assert!(leg.accepts(0x52) && !leg.accepts(0x53));
        let first = leg.on_packet(t0, 0x51, 0xA, true);
        assert_eq!(
            first,
            LegPacket {
                restart: true,
                displaced: None,
                speaking: Some(true)
            }
        );
        assert_eq!(leg.on_packet(ms(20), 0x51, 0xA, true), LegPacket::default());
        // A moves to the other stream: a restart, and still speaking (no new start).
        let moved = leg.on_packet(ms(40), 0x52, 0xA, true);
        assert!(moved.restart && moved.speaking.is_none(), "{moved:?}");
        // ... and back to the first one, which forgot it: a restart again.
        assert!(leg.on_packet(ms(60), 0x51, 0xA, true).restart);
        // B takes A's stream: A was speaking, so it is displaced.
        let b = leg.on_packet(ms(80), 0x51, 0xB, true);
        assert_eq!(
            b,
            LegPacket {
                restart: true,
                displaced: Some(0xA),
                speaking: Some(true)
            }
        );
        // B falls silent: the hold runs out in housekeeping.
        assert_eq!(leg.expire_speaking(ms(5000)).collect::<Vec<_>>(), vec![0xB]);
        assert_eq!(leg.take_sources(), vec![(0xB, false)]);
        assert_eq!(leg.take_sources(), vec![]);
    }
}
