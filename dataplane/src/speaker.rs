//! Who is speaking, from the audio level each packet carries (RFC 6464 `ssrc-audio-level`), and the
//! rule that decides which sources get a subscriber's speaker slots (docs/architecture.md, "Media
//! model").
//!
//! The policy is deliberately simple and cheap enough for the packet path (a compare and a clock read
//! the batch already made):
//! - a packet is *voiced* when its level is at or above [`VOICE_LEVEL_DBOV`] (louder than -60 dBov);
//!   a packet without a level (the sender negotiated no audio-level extension) counts as voiced, so
//!   such senders are heard whenever they send;
//! - a publisher *is speaking* from its first voiced packet until [`SPEAKING_HOLD`] passes without one
//!   ([`VoiceActivity`]); the transitions go to the control plane, which announces `active_speakers`;
//! - a source takes a subscriber's free slot with any packet; when every slot is taken, a voiced
//!   packet takes the slot whose source has been quiet longest, once that source has been quiet for
//!   the slot hold (`ForwarderConfig::slot_hold`), so nobody is cut off mid-sentence.
//!
//! The slot rule is [`pick_slot`], called by the forwarder for every subscriber of every packet;
//! a relay leg to another node (a cascade) takes [`pick_gated_slot`], the same rule behind an
//! audio-level gate.
//!
//! Pure state over `Instant`s (passed in by the caller): no I/O, no clock reads, no allocation.

use std::time::{Duration, Instant};

use crate::packet::AudioLevel;
use crate::rewrite::SlotRewriter;

/// Quietest level (in -dBov, RFC 6464: 0 is loudest, 127 silence) that still counts as voice.
pub const VOICE_LEVEL_DBOV: u8 = 60;

/// A publisher stops speaking after this long without a voiced packet.
pub const SPEAKING_HOLD: Duration = Duration::from_millis(1000);

/// True when a packet with `level` counts as speech (see the module docs).
#[inline]
pub fn is_voiced(level: Option<AudioLevel>) -> bool {
    level.is_none_or(|l| l.level <= VOICE_LEVEL_DBOV)
}

/// Speaking or not, for one publisher, with a hold so pauses between words do not flap.
#[derive(Debug, Clone, Default)]
pub struct VoiceActivity {
    speaking: bool,
    last_voice: Option<Instant>,
}

impl VoiceActivity {
    /// Takes one packet's verdict; returns the new state when it changed.
    #[inline]
    pub fn on_packet(&mut self, now: Instant, voiced: bool) -> Option<bool> {
        if voiced {
            self.last_voice = Some(now);
            if !self.speaking {
                self.speaking = true;
                return Some(true);
            }
            return None;
        }
        self.on_tick(now)
    }

    /// Ends speaking after [`SPEAKING_HOLD`] without voice, also when no packet arrives at all (a
    /// muted or vanished sender); returns `Some(false)` when it just ended.
    pub fn on_tick(&mut self, now: Instant) -> Option<bool> {
        let quiet = self
            .last_voice
            .is_none_or(|t| now.saturating_duration_since(t) >= SPEAKING_HOLD);
        if self.speaking && quiet {
            self.speaking = false;
            return Some(false);
        }
        None
    }

    /// Whether the publisher is speaking.
    pub fn is_speaking(&self) -> bool {
        self.speaking
    }
}

/// The index of the subscriber's slot for a packet of `source` (`voiced`: it carries speech), and
/// whether the source just moved onto it. The speaker policy (module docs): the slot already
/// carrying the source; else a free one (no source, or one silent for `idle`); else, for a voiced
/// packet, the slot whose source has gone without voice longest, if that is at least `hold`.
///
/// `dominant` is the room's dominant speaker ([`crate::dominant`]): its slot is never the one taken,
/// and it takes the quietest slot without waiting for the hold (the detector already made it win
/// on every time scale, which a cough cannot).
#[inline]
pub fn pick_slot(
    slots: &mut [SlotRewriter],
    source: u32,
    voiced: bool,
    now: Instant,
    idle: Duration,
    hold: Duration,
    dominant: Option<u32>,
) -> Option<(usize, bool)> {
    if let Some(i) = slots.iter().position(|s| s.source() == Some(source)) {
        if voiced {
            slots[i].mark_voice(now);
        }
        return Some((i, false));
    }
    let i = match slots.iter().position(|s| s.is_free(now, idle)) {
        Some(i) => i,
        None if voiced => {
            let (i, quiet) = slots
                .iter()
                .enumerate()
                .filter(|(_, s)| dominant.is_none() || s.source() != dominant)
                .map(|(i, s)| (i, s.quiet_for(now)))
                .max_by_key(|&(_, q)| q)?;
            if quiet < hold && dominant != Some(source) {
                return None;
            }
            i
        }
        None => return None,
    };
    slots[i].assign(source);
    if voiced {
        slots[i].mark_voice(now);
    }
    Some((i, true))
}

/// [`pick_slot`] for a relay leg to another node ([`crate::topology::RelayLeg`]): the audio-level
/// gate of a cascade. A voiced packet is placed as `pick_slot` places it; an unvoiced one only goes
/// on while its source holds a slot and spoke within `hold`, so members who do not speak cost the
/// link between two nodes nothing, and a pause between words does not cut a speaker off.
#[inline]
pub fn pick_gated_slot(
    slots: &mut [SlotRewriter],
    source: u32,
    voiced: bool,
    now: Instant,
    idle: Duration,
    hold: Duration,
    dominant: Option<u32>,
) -> Option<(usize, bool)> {
    if voiced {
        return pick_slot(slots, source, true, now, idle, hold, dominant);
    }
    let i = slots.iter().position(|s| s.source() == Some(source))?;
    (slots[i].quiet_for(now) < hold).then_some((i, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn level(level: u8) -> Option<AudioLevel> {
        Some(AudioLevel {
            voice_activity: false,
            level,
        })
    }

    #[test]
    fn loud_packets_are_voiced_quiet_ones_not_and_no_level_is_voiced() {
        assert!(is_voiced(level(0)));
        assert!(is_voiced(level(VOICE_LEVEL_DBOV)));
        assert!(!is_voiced(level(VOICE_LEVEL_DBOV + 1)));
        assert!(!is_voiced(level(127)));
        assert!(is_voiced(None));
    }

    #[test]
    fn speaking_starts_at_once_and_ends_after_the_hold() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut v = VoiceActivity::default();
        assert_eq!(
            v.on_packet(t0, false),
            None,
            "silence from the start is not news"
        );
        assert_eq!(v.on_packet(ms(20), true), Some(true));
        assert_eq!(v.on_packet(ms(40), true), None);
        // A pause between words, shorter than the hold.
        assert_eq!(v.on_packet(ms(500), false), None);
        assert_eq!(v.on_packet(ms(900), true), None);
        assert!(v.is_speaking());
        assert_eq!(v.on_packet(ms(1899), false), None);
        assert_eq!(v.on_packet(ms(1900), false), Some(false));
        assert_eq!(v.on_packet(ms(1920), false), None);
    }

    #[test]
    fn a_sender_that_goes_silent_altogether_stops_speaking_on_a_tick() {
        let t0 = Instant::now();
        let mut v = VoiceActivity::default();
        assert_eq!(v.on_packet(t0, true), Some(true));
        assert_eq!(v.on_tick(t0 + Duration::from_millis(999)), None);
        assert_eq!(v.on_tick(t0 + SPEAKING_HOLD), Some(false));
        assert!(!v.is_speaking());
    }

    #[test]
    fn slots_go_to_the_source_on_them_then_a_free_one_then_the_quietest_after_the_hold() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let (idle, hold) = (Duration::from_millis(1000), Duration::from_millis(1500));
        let mut slots = vec![SlotRewriter::new(0x100), SlotRewriter::new(0x101)];
        // One packet of `source` at `at` ms: the slot choice, then the forwarding the core would do.
        let mut send = |source: u32, voiced: bool, at: u64| {
            let got = pick_slot(&mut slots, source, voiced, ms(at), idle, hold, None);
            if let Some((i, _)) = got {
                slots[i].map(ms(at), source, (at / 20) as u16, at as u32 * 48, 48_000);
            }
            got
        };
        assert_eq!(send(0xA, true, 0), Some((0, true)));
        assert_eq!(
            send(0xA, true, 20),
            Some((0, false)),
            "a source keeps its slot"
        );
        assert_eq!(
            send(0xB, false, 40),
            Some((1, true)),
            "a free slot takes any packet"
        );
        assert_eq!(send(0xB, true, 40), Some((1, false)));
        assert_eq!(send(0xC, false, 60), None, "no free slot, and not voiced");
        assert_eq!(send(0xC, true, 60), None, "nobody quiet for the hold yet");
        // A and B go on sending, but without voice.
        assert_eq!(send(0xA, false, 1590), Some((0, false)));
        assert_eq!(send(0xB, false, 1590), Some((1, false)));
        assert_eq!(
            send(0xC, true, 1600),
            Some((0, true)),
            "A was quiet longest"
        );
        // B stops altogether: after the idle time its slot is free for anyone.
        assert_eq!(send(0xD, false, 2589), None);
        assert_eq!(send(0xD, false, 2590), Some((1, true)));
    }

    #[test]
    fn the_dominant_speaker_keeps_its_slot_and_takes_one_without_the_hold() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let (idle, hold) = (Duration::from_millis(1000), Duration::from_millis(1500));
        let mut slots = vec![SlotRewriter::new(0x100), SlotRewriter::new(0x101)];
        let mut send = |source: u32, voiced: bool, at: u64, dominant: Option<u32>| {
            let got = pick_slot(&mut slots, source, voiced, ms(at), idle, hold, dominant);
            if let Some((i, _)) = got {
                slots[i].map(ms(at), source, (at / 20) as u16, at as u32 * 48, 48_000);
            }
            got
        };
        assert_eq!(send(0xA, true, 0, None), Some((0, true)));
        assert_eq!(send(0xB, true, 0, None), Some((1, true)));
        // A holds the floor but has been without voice longest (since 0); B since 100. C talks
        // after the hold: it takes B's slot, never the dominant speaker's.
        assert_eq!(send(0xB, true, 100, Some(0xA)), Some((1, false)));
        assert_eq!(send(0xA, false, 1600, Some(0xA)), Some((0, false)));
        assert_eq!(send(0xB, false, 1600, Some(0xA)), Some((1, false)));
        assert_eq!(send(0xC, true, 1700, Some(0xA)), Some((1, true)));
        // A speaks again (the floor is about to change hands).
        assert_eq!(send(0xA, true, 1700, Some(0xA)), Some((0, false)));
        // D becomes the dominant speaker: it gets a slot at once, though nobody was quiet for the
        // hold (A spoke 40 ms ago, C 20 ms ago): the quieter one's, A's.
        assert_eq!(send(0xC, true, 1720, Some(0xD)), Some((1, false)));
        assert_eq!(send(0xD, true, 1740, Some(0xD)), Some((0, true)));
        // Anyone else still waits for the hold.
        assert_eq!(send(0xE, true, 1760, Some(0xD)), None);
    }

    #[test]
    fn a_relay_leg_carries_a_source_only_while_it_speaks_and_through_pauses_shorter_than_the_hold()
    {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let (idle, hold) = (Duration::from_secs(2), Duration::from_millis(1500));
        let mut slots = vec![SlotRewriter::new(1), SlotRewriter::new(2)];
        // A member who only sends silence never gets on the leg, even with free slots.
        assert_eq!(
            pick_gated_slot(&mut slots, 9, false, t0, idle, hold, None),
            None
        );
        assert_eq!(slots[0].source(), None);
        // A speaker does, and stays on through a pause of one second ...
        assert_eq!(
            pick_gated_slot(&mut slots, 5, true, t0, idle, hold, None),
            Some((0, true))
        );
        assert_eq!(
            pick_gated_slot(&mut slots, 5, false, ms(1000), idle, hold, None),
            Some((0, false))
        );
        // ... but not once it has been quiet for the hold.
        assert_eq!(
            pick_gated_slot(&mut slots, 5, false, ms(1500), idle, hold, None),
            None
        );
        // Speaking again puts it back on its slot at once.
        assert_eq!(
            pick_gated_slot(&mut slots, 5, true, ms(1520), idle, hold, None),
            Some((0, false))
        );
    }
}
