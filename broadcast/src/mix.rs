//! Mixing a room's speakers into one track, without clipping.
//!
//! Each speaker's decoded audio arrives as 20 ms frames of 48 kHz mono samples ([`FRAME`]). The mix
//! of one frame time is the sum of the frames of everyone who spoke in it; a speaker with nothing
//! for that frame (silent, late, lost) adds nothing. The sum of several loud voices is far louder
//! than one sample can hold, so it goes through a [`Limiter`] before it becomes 16-bit samples
//! again: a peak limiter whose gain drops at once to whatever keeps the loudest sample at its
//! ceiling and recovers slowly (its release), so a burst is turned down, not cut off, and quiet
//! talk passes untouched.
//!
//! Pure state over samples: no allocation after construction, no clock.

/// Samples per second of the mix (Opus decodes to 48 kHz).
pub const RATE: u32 = 48_000;

/// Samples in one 20 ms frame at [`RATE`], mono.
pub const FRAME: usize = 960;

/// The loudest sample the limiter lets out: 1 dB under full scale, headroom for the encoder.
pub const CEILING: f32 = 29_204.0;

/// How fast the gain returns to 1 after a burst: it recovers by a factor of e every this many
/// samples (50 ms), fast enough that a loud word does not duck the next one, slow enough that the
/// gain does not follow each cycle of a voice (which would distort it).
pub const RELEASE_SAMPLES: f32 = 2_400.0;

/// A peak limiter: instant attack, exponential release.
///
/// For each sample it follows the signal's envelope (the larger of the sample's magnitude and the
/// previous envelope decayed by the release), and scales the sample by `min(1, CEILING /
/// envelope)`. Since the envelope is never below the sample's magnitude, no output sample exceeds
/// [`CEILING`]: nothing clips, whatever comes in.
#[derive(Debug, Clone)]
pub struct Limiter {
    envelope: f32,
    decay: f32,
}

impl Default for Limiter {
    fn default() -> Self {
        Self::new(RELEASE_SAMPLES)
    }
}

impl Limiter {
    /// A limiter whose gain recovers by a factor of e every `release_samples` samples.
    pub fn new(release_samples: f32) -> Self {
        Self {
            envelope: 0.0,
            decay: (-1.0 / release_samples.max(1.0)).exp(),
        }
    }

    /// The gain it applies now (1 when the signal was quiet for a while).
    pub fn gain(&self) -> f32 {
        if self.envelope <= CEILING {
            1.0
        } else {
            CEILING / self.envelope
        }
    }

    /// Limits one sample of the sum.
    #[inline]
    pub fn process(&mut self, x: f32) -> i16 {
        self.envelope = x.abs().max(self.envelope * self.decay);
        let y = x * self.gain();
        // The gain keeps |y| <= CEILING < i16::MAX; the clamp only guards the rounding.
        y.round().clamp(-CEILING, CEILING) as i16
    }
}

/// Sums the speakers' frames of one frame time and limits the result.
#[derive(Debug, Clone)]
pub struct Mixer {
    sum: Vec<f32>,
    limiter: Limiter,
}

impl Default for Mixer {
    fn default() -> Self {
        Self::new()
    }
}

impl Mixer {
    /// A mixer with the default limiter.
    pub fn new() -> Self {
        Self {
            sum: vec![0.0; FRAME],
            limiter: Limiter::default(),
        }
    }

    /// Mixes one frame time: `frames` are the speakers' frames for it (each [`FRAME`] samples;
    /// a shorter one counts as silence after its end, extra samples are ignored); writes the mix to
    /// `out` and returns how many frames went into it.
    pub fn mix<'a>(
        &mut self,
        frames: impl IntoIterator<Item = &'a [i16]>,
        out: &mut [i16; FRAME],
    ) -> usize {
        self.sum.clear();
        self.sum.resize(FRAME, 0.0);
        let mut n = 0;
        for frame in frames {
            n += 1;
            for (s, &x) in self.sum.iter_mut().zip(frame) {
                *s += f32::from(x);
            }
        }
        for (o, &s) in out.iter_mut().zip(&self.sum) {
            *o = self.limiter.process(s);
        }
        n
    }

    /// The limiter's gain now (for metrics and tests).
    pub fn gain(&self) -> f32 {
        self.limiter.gain()
    }
}

/// Frame number `index` of a sine at `hz` with peak `amplitude`: a test signal (a speaker's
/// tone), continuous across frames.
pub fn sine_frame(hz: f32, amplitude: f32, index: usize) -> [i16; FRAME] {
    let mut f = [0i16; FRAME];
    for (i, s) in f.iter_mut().enumerate() {
        let t = (index * FRAME + i) as f32 / RATE as f32;
        *s = (amplitude * (2.0 * std::f32::consts::PI * hz * t).sin()) as i16;
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frames of a sine at `hz` with peak `amp`, from frame `from` on.
    fn tone(hz: f32, amp: f32, from: usize) -> impl Iterator<Item = [i16; FRAME]> {
        (from..).map(move |f| sine_frame(hz, amp, f))
    }

    #[test]
    fn one_quiet_speaker_passes_unchanged() {
        let mut m = Mixer::new();
        let mut out = [0i16; FRAME];
        for frame in tone(300.0, 8_000.0, 0).take(50) {
            assert_eq!(m.mix([&frame[..]], &mut out), 1);
            assert_eq!(out, frame, "a signal under the ceiling is not touched");
        }
        assert_eq!(m.gain(), 1.0);
    }

    #[test]
    fn five_speakers_at_full_scale_never_clip_and_the_gain_recovers_after_them() {
        let mut m = Mixer::new();
        let mut out = [0i16; FRAME];
        let mut voices: Vec<_> = [200.0, 310.0, 440.0, 520.0, 660.0]
            .into_iter()
            .map(|hz| tone(hz, 32_000.0, 0))
            .collect();
        let mut loudest = 0i32;
        for _ in 0..50 {
            let frames: Vec<[i16; FRAME]> = voices.iter_mut().filter_map(Iterator::next).collect();
            assert_eq!(m.mix(frames.iter().map(|f| &f[..]), &mut out), 5);
            loudest = loudest.max(out.iter().map(|&s| i32::from(s).abs()).max().unwrap_or(0));
        }
        assert!(
            loudest as f32 <= CEILING,
            "no sample above the ceiling: {loudest}"
        );
        assert!(
            loudest as f32 > 0.9 * CEILING,
            "turned down to the ceiling, not far below it: {loudest}"
        );
        assert!(
            m.gain() < 0.3,
            "five full-scale voices need the gain down: {}",
            m.gain()
        );

        // Then one quiet voice: within half a second the gain is back at 1 and the voice
        // passes unchanged.
        let quiet: Vec<[i16; FRAME]> = tone(300.0, 4_000.0, 50).take(25).collect();
        for frame in &quiet {
            m.mix([&frame[..]], &mut out);
        }
        assert!(m.gain() > 0.99, "recovered: {}", m.gain());
        let next = tone(300.0, 4_000.0, 75).next().unwrap_or([0; FRAME]);
        m.mix([&next[..]], &mut out);
        let off = out
            .iter()
            .zip(&next)
            .map(|(&a, &b)| (i32::from(a) - i32::from(b)).abs())
            .max()
            .unwrap_or(0);
        assert!(
            off <= 40,
            "the quiet voice is nearly untouched once recovered: {off}"
        );
    }

    #[test]
    fn nobody_speaking_is_silence_and_short_frames_count_as_silence_after_their_end() {
        let mut m = Mixer::new();
        let mut out = [1i16; FRAME];
        assert_eq!(m.mix(std::iter::empty(), &mut out), 0);
        assert!(out.iter().all(|&s| s == 0));
        let half = [1_000i16; FRAME / 2];
        m.mix([&half[..]], &mut out);
        assert!(out[..FRAME / 2].iter().all(|&s| s == 1_000));
        assert!(out[FRAME / 2..].iter().all(|&s| s == 0));
    }

    #[test]
    fn a_single_peak_is_held_to_the_ceiling_even_with_no_warning() {
        let mut l = Limiter::default();
        for _ in 0..1_000 {
            assert_eq!(l.process(100.0), 100);
        }
        let y = l.process(200_000.0);
        assert!(
            f32::from(y) <= CEILING && f32::from(y) >= CEILING - 1.0,
            "{y}"
        );
        assert_eq!(l.process(-200_000.0), -(CEILING as i16));
    }
}
