//! Dominant speaker identification over RFC 6464 audio levels.
//!
//! Each worker runs one per room over the levels of every source it forwards (local and relayed):
//! the slot policy ([`crate::speaker::pick_slot`]) never takes the floor holder's slot and lets it
//! take one without the hold, and each change goes up (`Upcall::Dominant`) so `active_speakers`
//! names the floor holder first.
//!
//! The method is I. Volfin and I. Cohen, "Dominant speaker identification for multipoint
//! videoconferencing" (Computer Speech & Language 27(4), 2013), in the form two SFUs run it on
//! the `ssrc-audio-level` header extension instead of on sub-band spectra:
//! Jitsi's `DominantSpeakerIdentification.java` (jitsi/jitsi-utils,
//! `src/main/java/org/jitsi/utils/dsi/`, used by jitsi-videobridge) and mediasoup's port of it,
//! `worker/src/RTC/ActiveSpeakerObserver.cpp` (versatica/mediasoup). This is our own code,
//! written from those two (read at jitsi-utils `ab4f756` and mediasoup `a82dba8`); the constants
//! are theirs, named below.
//!
//! # Levels
//!
//! A packet's RFC 6464 level is in -dBov (0 loudest, 127 silence). It is turned into a *volume*
//! `127 - level` (0 silence, 127 loudest), as both sources do, and written into a per-speaker ring
//! of [`LEVELS_LEN`] slots, one per 20 ms frame ([`FRAME`]), newest last. Each speaker tracks its
//! own *minimum level* (its noise floor): it follows any lower non-silent volume at once and rises
//! only slowly, to the geometric mean of the old minimum and the minimum of the last
//! [`MIN_LEVEL_WINDOW_LEN`] levels (15 s) when no level went below it in that window. Volumes less
//! than one sub-band ([`SUBUNIT_LENGTH`]) above the floor count as silence, which puts speakers
//! with noisy and quiet microphones on an equal footing.
//!
//! # Three time scales
//!
//! At each decision the newest 50 frames of every speaker are scored on three scales:
//! - **immediate** (one frame, 20 ms): the level quantised into `N1` = [`N1`] sub-bands of
//!   [`SUBUNIT_LENGTH`] volume steps, standing in for the paper's count of active frequency
//!   sub-bands; the score uses the newest frame;
//! - **medium** (`N2` = [`N2`] frames, 100 ms): how many of the newest five frames are active, a
//!   frame being active above [`MEDIUM_THRESHOLD`] sub-bands (a level of 47 dBov or louder, above
//!   the floor);
//! - **long** (`N3` = [`N3`] mediums, 1 s): how many of the newest ten 100 ms blocks are active, a
//!   block being active above [`LONG_THRESHOLD`] active frames (all five).
//!
//! A scale with `n` units of which `v` are active scores
//! `ln C(n, v) + v ln p + (n - v) ln (1 - p) - ln λ + λ v` with `p` = 0.5 and `λ` =
//! [`IMMEDIATE_LAMBDA`], [`MEDIUM_LAMBDA`], [`LONG_LAMBDA`]: the log-likelihood ratio of speech
//! (an exponential prior on the activity) over non-speech (a binomial), floored at
//! [`MIN_ACTIVITY_SCORE`] so that it can be divided by and its logarithm taken.
//!
//! # Decision and hysteresis
//!
//! Every decision interval ([`DEFAULT_DECISION_INTERVAL`], 300 ms in both sources; the caller calls
//! [`DominantSpeaker::decide`] at that period) every other speaker challenges the dominant one with
//! the three log ratios `c_i = ln(score_i(challenger) / score_i(dominant))`. A challenger takes the
//! floor only when it beats the dominant speaker on **all three** scales: `c1 >` [`DEFAULT_C1`],
//! `c2 >` [`DEFAULT_C2`] and `c3 >` [`DEFAULT_C3`]; among several such challengers the one with
//! the largest `c2` wins. The long scale is the hysteresis: a cough or a door slam of a few frames
//! never fills a 100 ms block, so its long score stays at the floor and it cannot beat a speaker
//! who has talked in the last second; a real new talker wins once they have held more active 100 ms
//! blocks in the last second than the old one, which takes about half a second after the old one
//! stops.
//!
//! # Idle speakers
//!
//! A speaker that sends no level for more than the level idle timeout ([`DEFAULT_LEVEL_IDLE_TIMEOUT`],
//! 40 ms: longer than the common 20 and 30 ms packet times) gets silent frames for the time that
//! passed, at the next decision. A speaker not heard (no level other than 127) for the speaker idle
//! timeout ([`DEFAULT_SPEAKER_IDLE_TIMEOUT`], one hour in both sources) is ignored: it neither
//! challenges nor is nominated. The dominant speaker itself is never dropped for idleness (as in
//! both sources); it is replaced by a challenger or by [`DominantSpeaker::remove`].
//!
//! # Ranking
//!
//! Jitsi also keeps a list of the loudest speakers for its `last_n` selection: a per-speaker
//! exponentially smoothed *energy* (the floor-cleaned volume, [`DEFAULT_ENERGY_ALPHA_PCT`] percent
//! weight on the new level) over speakers heard in the last [`DEFAULT_ENERGY_EXPIRE`] (150 ms).
//! [`DominantSpeaker::ranking`] gives the same order, into the caller's slice.
//!
//! # Where this departs from the sources
//!
//! - **Frames by time.** The sources write one slot per packet (mediasoup: `max(1, elapsed / 20
//!   ms)` slots), so packets shorter than 20 ms or arriving in bursts shorten the windows. Here the
//!   ring advances on a 20 ms frame clock anchored at the speaker's first level: a level in the same
//!   frame as the previous one is merged into it (the louder is kept), a level after a gap fills
//!   the missed frames with itself (as mediasoup does).
//! - **Idleness is measured from the last level heard.** mediasoup resets its idle clock when it
//!   writes the silent frames of the level idle timeout, so it never reaches its speaker idle
//!   timeout; Jitsi (which drops the speaker) and this module measure from the last real level.
//!   Levels of 127 (digital silence; jitsi-videobridge drops them before the detector) are written
//!   as silent frames but do not count as heard.
//! - **Nomination.** With no dominant speaker (at the start or after [`DominantSpeaker::remove`])
//!   both sources nominate the first entry of a hash map, "at random", and let the others challenge
//!   it; the single-speaker room makes that speaker dominant at once. Here the nominee is the most
//!   active eligible speaker (highest medium, then long, then immediate score, then the earliest
//!   added), so a removal hands the floor to whoever is talking, and nobody who was never heard or
//!   is idle is nominated. A room with no eligible speaker has no dominant speaker.
//! - **No overflow of the floor.** Both sources add the sub-band length to the minimum level in a
//!   signed byte, which wraps for floors above 117; it is computed without wrapping here.
//! - Not taken: Jitsi's optional "silence" mode (no dominant speaker after a silent spell) and the
//!   sources' threads and timers (the caller drives [`DominantSpeaker::decide`]).
//!
//! # Cost
//!
//! Pure state: time comes in as `now`, nothing reads a clock or does I/O. A speaker is a fixed
//! [`LEVELS_LEN`]-byte ring and a few counters; [`DominantSpeaker::level`] (per packet) and
//! [`DominantSpeaker::decide`] (per interval) never allocate, only [`DominantSpeaker::add`] may.
//! Speakers are found by a linear scan of their ids, which suits rooms of tens of speakers.

use std::cmp::Ordering;
use std::time::{Duration, Instant};

/// One frame of levels: both sources assume a level every 20 ms (mediasoup: "The algorithm
/// expect\[s\] to have an update every 20 milliseconds").
pub const FRAME: Duration = Duration::from_millis(20);

/// Sub-bands per frame for the immediate scale (`N1` in both sources).
pub const N1: usize = 13;

/// Frames per medium block (`N2` in both sources): 100 ms.
pub const N2: usize = 5;

/// Medium blocks per long interval (`N3` in both sources): 1 s.
pub const N3: usize = 10;

/// Long intervals kept (`LONG_COUNT`/`LongCount` in both sources).
const LONG_COUNT: usize = 1;

/// Frames of history per speaker: `LONG_COUNT * N3 * N2` = 50 (1 s).
pub const LEVELS_LEN: usize = LONG_COUNT * N3 * N2;

/// The loudest volume (`MAX_LEVEL`, 127: 0 dBov).
const MAX_LEVEL: u8 = 127;

/// The silent volume (`MIN_LEVEL`, 0: -127 dBov); as a minimum level it means "not known yet".
const MIN_LEVEL: u8 = 0;

/// Volume steps per sub-band: `(MAX_LEVEL - MIN_LEVEL + N1 - 1) / N1` = 10 (`N1_SUBUNIT_LENGTH`).
pub const SUBUNIT_LENGTH: u8 = ((MAX_LEVEL - MIN_LEVEL) as usize).div_ceil(N1) as u8;

/// A frame is active for the medium scale above this many sub-bands (`MEDIUM_THRESHOLD`, 7).
pub const MEDIUM_THRESHOLD: u8 = 7;

/// A medium block is active for the long scale above this many active frames (`LONG_THRESHOLD`,
/// 4, i.e. all five).
pub const LONG_THRESHOLD: u8 = 4;

/// Levels watched before the minimum level may rise: 15 s of 20 ms frames
/// (`MIN_LEVEL_WINDOW_LENGTH`, 750).
pub const MIN_LEVEL_WINDOW_LEN: u32 = 15 * 1000 / 20;

/// The floor of every activity score (`MIN_SPEECH_ACTIVITY_SCORE`, 1e-10): positive so that a
/// score can be divided by and its logarithm taken.
pub const MIN_ACTIVITY_SCORE: f64 = 1e-10;

/// The binomial `p` of the activity score, 0.5 on every scale in both sources.
pub const ACTIVITY_P: f64 = 0.5;

/// The exponential prior `λ` of the immediate score (0.78 in both sources).
pub const IMMEDIATE_LAMBDA: f64 = 0.78;

/// The exponential prior `λ` of the medium score (24 in both sources).
pub const MEDIUM_LAMBDA: f64 = 24.0;

/// The exponential prior `λ` of the long score (47 in both sources).
pub const LONG_LAMBDA: f64 = 47.0;

/// Default `C1`: the immediate log ratio a challenger must exceed (3 in both sources).
pub const DEFAULT_C1: f64 = 3.0;

/// Default `C2`: the medium log ratio a challenger must exceed; also what several challengers are
/// compared by (2 in both sources).
pub const DEFAULT_C2: f64 = 2.0;

/// Default `C3`: the long log ratio a challenger must exceed (0 in both sources: a higher long
/// score than the dominant speaker's).
pub const DEFAULT_C3: f64 = 0.0;

/// Default period of [`DominantSpeaker::decide`]: 300 ms (Jitsi's `DECISION_INTERVAL`, mediasoup's
/// default `interval`, which it clamps to 100..=5000 ms).
pub const DEFAULT_DECISION_INTERVAL: Duration = Duration::from_millis(300);

/// Default time without a level after which a speaker gets silent frames (`LEVEL_IDLE_TIMEOUT`,
/// 40 ms: longer than the common 20 and 30 ms packet times).
pub const DEFAULT_LEVEL_IDLE_TIMEOUT: Duration = Duration::from_millis(40);

/// Default time not heard after which a speaker is ignored (`SPEAKER_IDLE_TIMEOUT`, one hour).
pub const DEFAULT_SPEAKER_IDLE_TIMEOUT: Duration = Duration::from_secs(60 * 60);

/// Default weight, in percent, of a new level in the smoothed energy of the ranking (Jitsi's
/// `energyAlphaPct`, 50).
pub const DEFAULT_ENERGY_ALPHA_PCT: u8 = 50;

/// Default time after its last level that a speaker leaves the ranking (Jitsi's
/// `energyExpireTimeMs`, 150 ms).
pub const DEFAULT_ENERGY_EXPIRE: Duration = Duration::from_millis(150);

/// Tuning of a [`DominantSpeaker`]; [`Config::default`] is the sources' values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Config {
    /// Immediate log-ratio threshold `C1` ([`DEFAULT_C1`]).
    pub c1: f64,
    /// Medium log-ratio threshold `C2` ([`DEFAULT_C2`]).
    pub c2: f64,
    /// Long log-ratio threshold `C3` ([`DEFAULT_C3`]).
    pub c3: f64,
    /// How often the caller should call [`DominantSpeaker::decide`]
    /// ([`DEFAULT_DECISION_INTERVAL`]); only [`DominantSpeaker::next_decision_at`] reads it.
    pub decision_interval: Duration,
    /// Time without any level after which a speaker gets silent frames
    /// ([`DEFAULT_LEVEL_IDLE_TIMEOUT`]).
    pub level_idle_timeout: Duration,
    /// Time not heard after which a speaker neither challenges nor is nominated
    /// ([`DEFAULT_SPEAKER_IDLE_TIMEOUT`]).
    pub speaker_idle_timeout: Duration,
    /// Weight in percent (0..=100, larger is clamped) of a new level in the ranking's energy
    /// ([`DEFAULT_ENERGY_ALPHA_PCT`]).
    pub energy_alpha_pct: u8,
    /// Time after its last level heard that a speaker leaves the ranking
    /// ([`DEFAULT_ENERGY_EXPIRE`]).
    pub energy_expire: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            c1: DEFAULT_C1,
            c2: DEFAULT_C2,
            c3: DEFAULT_C3,
            decision_interval: DEFAULT_DECISION_INTERVAL,
            level_idle_timeout: DEFAULT_LEVEL_IDLE_TIMEOUT,
            speaker_idle_timeout: DEFAULT_SPEAKER_IDLE_TIMEOUT,
            energy_alpha_pct: DEFAULT_ENERGY_ALPHA_PCT,
            energy_expire: DEFAULT_ENERGY_EXPIRE,
        }
    }
}

/// A speaker's activity scores at the last [`DominantSpeaker::decide`], each at least
/// [`MIN_ACTIVITY_SCORE`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ActivityScores {
    /// The newest frame's score.
    pub immediate: f64,
    /// The newest 100 ms block's score.
    pub medium: f64,
    /// The last second's score.
    pub long: f64,
}

impl ActivityScores {
    const FLOOR: Self = Self {
        immediate: MIN_ACTIVITY_SCORE,
        medium: MIN_ACTIVITY_SCORE,
        long: MIN_ACTIVITY_SCORE,
    };
}

/// `ln C(n, v) + v ln p + (n - v) ln(1 - p) - ln λ + λ v`, floored at [`MIN_ACTIVITY_SCORE`].
fn activity_score(v: usize, n: usize, lambda: f64) -> f64 {
    // C(n, v) by the multiplicative formula; exact in f64 for n <= 13.
    let r = v.min(n - v);
    let binomial = (0..r).fold(1.0_f64, |c, i| c * (n - i) as f64 / (i + 1) as f64);
    let (vf, nf) = (v as f64, n as f64);
    let score = binomial.ln() + vf * ACTIVITY_P.ln() + (nf - vf) * (1.0 - ACTIVITY_P).ln()
        - lambda.ln()
        + lambda * vf;
    score.max(MIN_ACTIVITY_SCORE)
}

/// Every possible score of each scale, indexed by the count of active units.
#[derive(Debug, Clone)]
struct ScoreTables {
    immediate: [f64; N1 + 1],
    medium: [f64; N2 + 1],
    long: [f64; N3 + 1],
}

impl ScoreTables {
    fn new() -> Self {
        Self {
            immediate: std::array::from_fn(|v| activity_score(v, N1, IMMEDIATE_LAMBDA)),
            medium: std::array::from_fn(|v| activity_score(v, N2, MEDIUM_LAMBDA)),
            long: std::array::from_fn(|v| activity_score(v, N3, LONG_LAMBDA)),
        }
    }
}

/// Whole frames in `d`.
#[inline]
fn frames_in(d: Duration) -> u128 {
    d.as_nanos() / FRAME.as_nanos()
}

#[derive(Debug, Clone)]
struct Speaker {
    /// Volumes (`127 - dBov`, 0 silence), one per frame; `next` is the oldest, `next - 1` the newest.
    ring: [u8; LEVELS_LEN],
    next: usize,
    /// Start of the newest frame in the ring (the frame clock); `None` before the first level.
    frame_at: Option<Instant>,
    /// Arrival of the last level of any value (for the level idle timeout).
    last_level_at: Option<Instant>,
    /// Arrival of the last level other than 127 (for the speaker idle timeout and the ranking).
    last_heard_at: Option<Instant>,
    /// The noise floor as a volume; [`MIN_LEVEL`] while unknown.
    min_level: u8,
    next_min_level: u8,
    next_min_window: u32,
    /// Smoothed floor-cleaned volume, for the ranking.
    energy: u32,
    scores: ActivityScores,
}

impl Speaker {
    fn new() -> Self {
        Self {
            ring: [MIN_LEVEL; LEVELS_LEN],
            next: 0,
            frame_at: None,
            last_level_at: None,
            last_heard_at: None,
            min_level: MIN_LEVEL,
            next_min_level: MIN_LEVEL,
            next_min_window: 0,
            energy: 0,
            scores: ActivityScores::FLOOR,
        }
    }

    #[inline]
    fn write(&mut self, volume: u8, frames: u128) {
        // More frames than the ring holds overwrite all of it.
        let n = frames.min(LEVELS_LEN as u128) as usize;
        for _ in 0..n {
            self.ring[self.next] = volume;
            self.next = (self.next + 1) % LEVELS_LEN;
        }
    }

    #[inline]
    fn newest_mut(&mut self) -> &mut u8 {
        let i = (self.next + LEVELS_LEN - 1) % LEVELS_LEN;
        &mut self.ring[i]
    }

    /// Moves the frame clock on by `frames` from `at`, re-anchoring at `now` after a long gap.
    #[inline]
    fn advance(&mut self, at: Instant, frames: u128, now: Instant) {
        self.frame_at = Some(if frames >= LEVELS_LEN as u128 {
            now
        } else {
            // `frames` < LEVELS_LEN here, so the cast and the product cannot overflow.
            at + FRAME * frames as u32
        });
    }

    /// Takes one packet's volume; false when it is older than the frame clock.
    #[inline]
    fn on_level(&mut self, volume: u8, now: Instant) -> bool {
        match self.frame_at {
            None => {
                self.write(volume, 1);
                self.frame_at = Some(now);
            }
            Some(at) if now < at => return false,
            Some(at) => {
                let frames = frames_in(now - at);
                if frames == 0 {
                    let newest = self.newest_mut();
                    *newest = (*newest).max(volume);
                } else {
                    self.write(volume, frames);
                    self.advance(at, frames, now);
                }
            }
        }
        self.last_level_at = Some(now);
        self.update_min_level(volume);
        true
    }

    /// Writes silent frames for the time since the last level, once that exceeds `timeout`.
    fn fill_silence(&mut self, now: Instant, timeout: Duration) {
        let (Some(at), Some(last)) = (self.frame_at, self.last_level_at) else {
            return;
        };
        if now.saturating_duration_since(last) <= timeout {
            return;
        }
        let frames = frames_in(now.saturating_duration_since(at));
        if frames > 0 {
            self.write(MIN_LEVEL, frames);
            self.advance(at, frames, now);
        }
    }

    /// The floor tracking of both sources: down at once, up slowly (geometric mean) after a window
    /// of levels that all stayed above it.
    fn update_min_level(&mut self, level: u8) {
        if level == MIN_LEVEL {
            return;
        }
        if self.min_level == MIN_LEVEL || self.min_level > level {
            self.min_level = level;
            self.next_min_level = MIN_LEVEL;
            self.next_min_window = 0;
        } else if self.next_min_level == MIN_LEVEL {
            self.next_min_level = level;
            self.next_min_window = 1;
        } else {
            self.next_min_level = self.next_min_level.min(level);
            self.next_min_window += 1;
            if self.next_min_window >= MIN_LEVEL_WINDOW_LEN {
                let mean = (f64::from(self.min_level) * f64::from(self.next_min_level)).sqrt();
                // Truncated like the sources' casts; both factors are at most 127.
                self.min_level = mean.clamp(f64::from(MIN_LEVEL), f64::from(MAX_LEVEL)) as u8;
                self.next_min_level = MIN_LEVEL;
                self.next_min_window = 0;
            }
        }
    }

    /// The lowest volume that is not the speaker's silence.
    #[inline]
    fn floor(&self) -> u16 {
        u16::from(self.min_level) + u16::from(SUBUNIT_LENGTH)
    }

    /// Sub-bands of a volume, after removing the speaker's silence.
    #[inline]
    fn immediate(&self, volume: u8) -> u8 {
        if u16::from(volume) < self.floor() {
            0
        } else {
            volume / SUBUNIT_LENGTH
        }
    }

    /// Jitsi's smoothed energy for the ranking: the floor-cleaned volume, rounded to nearest.
    #[inline]
    fn update_energy(&mut self, volume: u8, alpha_pct: u8) {
        let cooked = if u16::from(volume) >= self.floor() {
            u32::from(volume)
        } else {
            0
        };
        let alpha = u32::from(alpha_pct.min(100));
        self.energy = (alpha * cooked + (100 - alpha) * self.energy + 50) / 100;
    }

    /// Scores the newest frame, 100 ms block and second of the ring.
    fn evaluate(&mut self, tables: &ScoreTables) {
        let mut immediate0 = 0u8;
        let mut medium0 = 0u8;
        let mut long0 = 0usize;
        for block in 0..N3 {
            let mut active = 0u8;
            for k in 0..N2 {
                let age = block * N2 + k;
                let i = (self.next + 2 * LEVELS_LEN - 1 - age) % LEVELS_LEN;
                let immediate = self.immediate(self.ring[i]);
                if age == 0 {
                    immediate0 = immediate;
                }
                if immediate > MEDIUM_THRESHOLD {
                    active += 1;
                }
            }
            if block == 0 {
                medium0 = active;
            }
            if active > LONG_THRESHOLD {
                long0 += 1;
            }
        }
        // The counts are bounded by construction (a volume is at most 127, so at most 12
        // sub-bands); the `min`s only make that visible.
        self.scores = ActivityScores {
            immediate: tables.immediate[usize::from(immediate0).min(N1)],
            medium: tables.medium[usize::from(medium0).min(N2)],
            long: tables.long[long0.min(N3)],
        };
    }

    #[inline]
    fn heard_within(&self, now: Instant, d: Duration) -> bool {
        self.last_heard_at
            .is_some_and(|t| now.saturating_duration_since(t) <= d)
    }
}

/// Nomination order: more active first (medium, long, immediate score).
fn more_active(a: &ActivityScores, b: &ActivityScores) -> Ordering {
    a.medium
        .total_cmp(&b.medium)
        .then(a.long.total_cmp(&b.long))
        .then(a.immediate.total_cmp(&b.immediate))
}

/// The dominant speaker of one room (see the module docs).
#[derive(Debug, Clone)]
pub struct DominantSpeaker {
    config: Config,
    tables: ScoreTables,
    /// Speaker ids, parallel to `speakers`, in the order they were added.
    ids: Vec<u32>,
    speakers: Vec<Speaker>,
    dominant: Option<u32>,
    last_decision: Option<Instant>,
}

impl Default for DominantSpeaker {
    fn default() -> Self {
        Self::new(Config::default())
    }
}

impl DominantSpeaker {
    /// An empty room.
    pub fn new(config: Config) -> Self {
        Self {
            config,
            tables: ScoreTables::new(),
            ids: Vec::new(),
            speakers: Vec::new(),
            dominant: None,
            last_decision: None,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    #[inline]
    fn index(&self, id: u32) -> Option<usize> {
        self.ids.iter().position(|&x| x == id)
    }

    /// Starts tracking speaker `id` (may allocate); false, with nothing changed, when it is
    /// tracked already.
    pub fn add(&mut self, id: u32) -> bool {
        if self.index(id).is_some() {
            return false;
        }
        self.ids.push(id);
        self.speakers.push(Speaker::new());
        true
    }

    /// Stops tracking speaker `id`; false when it was not tracked. Removing the dominant speaker
    /// leaves none until the next [`decide`](Self::decide), which nominates the most active
    /// eligible speaker left.
    pub fn remove(&mut self, id: u32) -> bool {
        let Some(i) = self.index(id) else {
            return false;
        };
        self.ids.remove(i);
        self.speakers.remove(i);
        if self.dominant == Some(id) {
            self.dominant = None;
        }
        true
    }

    /// Whether speaker `id` is tracked.
    pub fn contains(&self, id: u32) -> bool {
        self.index(id).is_some()
    }

    /// Tracked speakers.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether no speaker is tracked.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Takes one packet's RFC 6464 level (`level_dbov`: 0 loudest, 127 silence; larger values are
    /// taken as 127) of speaker `id`, received at `now`. Levels of an untracked speaker, and levels
    /// older than the speaker's newest frame, are ignored. Never allocates.
    #[inline]
    pub fn level(&mut self, id: u32, level_dbov: u8, now: Instant) {
        let Some(i) = self.index(id) else {
            return;
        };
        let alpha = self.config.energy_alpha_pct;
        let s = &mut self.speakers[i];
        let volume = MAX_LEVEL - level_dbov.min(MAX_LEVEL);
        if s.on_level(volume, now) && volume != MIN_LEVEL {
            s.last_heard_at = Some(now);
            s.update_energy(volume, alpha);
        }
    }

    /// Makes the decision of the decision interval, at `now`: silent frames for idle speakers,
    /// fresh scores for everybody, then the challenge (module docs). Returns the new dominant
    /// speaker when it changed. Call it every [`Config::decision_interval`]; it never allocates.
    pub fn decide(&mut self, now: Instant) -> Option<u32> {
        self.last_decision = Some(now);
        let timeout = self.config.level_idle_timeout;
        for s in &mut self.speakers {
            s.fill_silence(now, timeout);
            s.evaluate(&self.tables);
        }
        let idle = self.config.speaker_idle_timeout;
        let (base, mut winner) = match self.dominant.and_then(|id| self.index(id)) {
            Some(i) => (i, None),
            None => {
                let nominee = self
                    .speakers
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| s.heard_within(now, idle))
                    // `max_by` keeps the last of equals: reverse the index so the earliest wins.
                    .max_by(|(i, a), (j, b)| more_active(&a.scores, &b.scores).then(j.cmp(i)))
                    .map(|(i, _)| i)?;
                (nominee, Some(nominee))
            }
        };
        let d = self.speakers[base].scores;
        let mut best_c2 = self.config.c2;
        for (i, s) in self.speakers.iter().enumerate() {
            if i == base || !s.heard_within(now, idle) {
                continue;
            }
            let c1 = (s.scores.immediate / d.immediate).ln();
            let c2 = (s.scores.medium / d.medium).ln();
            let c3 = (s.scores.long / d.long).ln();
            if c1 > self.config.c1 && c2 > best_c2 && c3 > self.config.c3 {
                best_c2 = c2;
                winner = Some(i);
            }
        }
        let new = self.ids[winner?];
        if self.dominant == Some(new) {
            return None;
        }
        self.dominant = Some(new);
        Some(new)
    }

    /// The dominant speaker, if any.
    #[inline]
    pub fn dominant(&self) -> Option<u32> {
        self.dominant
    }

    /// When the next [`decide`](Self::decide) is due: the last one plus
    /// [`Config::decision_interval`]; `None` before the first.
    pub fn next_decision_at(&self) -> Option<Instant> {
        self.last_decision
            .map(|t| t + self.config.decision_interval)
    }

    /// Speaker `id`'s scores at the last [`decide`](Self::decide).
    pub fn scores(&self, id: u32) -> Option<ActivityScores> {
        self.index(id).map(|i| self.speakers[i].scores)
    }

    /// Fills `out` with the loudest speakers heard within [`Config::energy_expire`] of `now`,
    /// loudest first by Jitsi's smoothed energy (ties: the earlier added first), and returns how
    /// many it wrote (at most `out.len()`). For choosing the `last_n` sources to relay; it does not
    /// allocate, and costs `out.len()` scans of the speakers.
    pub fn ranking(&self, now: Instant, out: &mut [u32]) -> usize {
        let expire = self.config.energy_expire;
        // Selection by (energy descending, index ascending): each round takes the best key that
        // comes after the previous round's.
        let mut prev: Option<(u32, usize)> = None;
        let mut n = 0;
        for slot in out.iter_mut() {
            let after_prev = |e: u32, i: usize| match prev {
                None => true,
                Some((pe, pi)) => e < pe || (e == pe && i > pi),
            };
            let best = self
                .speakers
                .iter()
                .enumerate()
                .filter(|(i, s)| s.heard_within(now, expire) && after_prev(s.energy, *i))
                .min_by(|(i, a), (j, b)| b.energy.cmp(&a.energy).then(i.cmp(j)));
            let Some((i, s)) = best else {
                break;
            };
            *slot = self.ids[i];
            prev = Some((s.energy, i));
            n += 1;
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic pseudo-random numbers (a 64-bit LCG, Knuth's MMIX constants).
    struct Lcg(u64);

    impl Lcg {
        fn next(&mut self) -> u32 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (self.0 >> 33) as u32
        }

        /// Uniform in `lo..=hi`.
        fn range(&mut self, lo: u32, hi: u32) -> u32 {
            lo + self.next() % (hi - lo + 1)
        }
    }

    /// A microphone: a noise floor (dBov) with a little jitter, and, while talking, words of
    /// 160–400 ms at 22–40 dBov separated by pauses of 40–120 ms back at the floor.
    struct Mic {
        rng: Lcg,
        floor: u8,
        talking: bool,
        run: u32,
        voiced: bool,
    }

    impl Mic {
        fn new(seed: u64, floor: u8) -> Self {
            Self {
                rng: Lcg(seed),
                floor,
                talking: false,
                run: 0,
                voiced: false,
            }
        }

        fn noise(&mut self) -> u8 {
            self.floor + self.rng.range(0, 3) as u8
        }

        /// The next 20 ms frame's level.
        fn frame(&mut self) -> u8 {
            if !self.talking {
                return self.noise();
            }
            if self.run == 0 {
                self.voiced = !self.voiced;
                self.run = if self.voiced {
                    self.rng.range(8, 20)
                } else {
                    self.rng.range(2, 6)
                };
            }
            self.run -= 1;
            if self.voiced {
                self.rng.range(22, 40) as u8
            } else {
                self.noise()
            }
        }
    }

    /// What a speaker sends in one frame.
    #[derive(Clone, Copy)]
    enum Send {
        Level(u8),
        Nothing,
    }

    /// 20 ms frames of `Instant`s with a few ms of arrival jitter, and `decide` every 300 ms.
    struct Sim {
        det: DominantSpeaker,
        t0: Instant,
        frame: u64,
        jitter: Lcg,
        /// (time since `t0`, new dominant speaker).
        changes: Vec<(Duration, u32)>,
    }

    impl Sim {
        fn new(config: Config, ids: &[u32]) -> Self {
            let mut det = DominantSpeaker::new(config);
            for &id in ids {
                assert!(det.add(id));
            }
            Self {
                det,
                t0: Instant::now(),
                frame: 0,
                jitter: Lcg(99),
                changes: Vec::new(),
            }
        }

        fn elapsed(&self) -> Duration {
            FRAME * self.frame as u32
        }

        fn decide(&mut self) {
            let at = self.elapsed();
            if let Some(id) = self.det.decide(self.t0 + at) {
                self.changes.push((at, id));
            }
        }

        /// One frame: the decision when one is due, then each speaker's packet.
        fn step(&mut self, sends: &[(u32, Send)]) {
            if self.frame > 0 && self.frame % 15 == 0 {
                self.decide();
            }
            let base = self.t0 + self.elapsed();
            for &(id, send) in sends {
                if let Send::Level(l) = send {
                    let j = Duration::from_millis(u64::from(self.jitter.range(0, 8)));
                    self.det.level(id, l, base + j);
                }
            }
            self.frame += 1;
        }

        fn changes_after(&self, from: Duration) -> Vec<(Duration, u32)> {
            self.changes
                .iter()
                .copied()
                .filter(|&(t, _)| t >= from)
                .collect()
        }
    }

    const A: u32 = 0xA;
    const B: u32 = 0xB;
    const C: u32 = 0xC;
    const D: u32 = 0xD;
    const E: u32 = 0xE;

    fn secs(s: f64) -> u64 {
        (s * 50.0).round() as u64
    }

    #[test]
    fn the_constants_are_the_sources() {
        assert_eq!(SUBUNIT_LENGTH, 10);
        assert_eq!(LEVELS_LEN, 50);
        assert_eq!(MIN_LEVEL_WINDOW_LEN, 750);
        let t = ScoreTables::new();
        // Spot values of ln C(n,v) - n ln 2 - ln λ + λ v.
        assert!((t.medium[1] - (5f64.ln() - 5.0 * 2f64.ln() - 24f64.ln() + 24.0)).abs() < 1e-9);
        assert!((t.long[10] - (-10.0 * 2f64.ln() - 47f64.ln() + 470.0)).abs() < 1e-9);
        // Three or fewer sub-bands, and no active unit at all, score the floor.
        assert_eq!(t.immediate[3], MIN_ACTIVITY_SCORE);
        assert!(t.immediate[4] > MIN_ACTIVITY_SCORE);
        assert_eq!(t.medium[0], MIN_ACTIVITY_SCORE);
        assert_eq!(t.long[0], MIN_ACTIVITY_SCORE);
        let c = Config::default();
        assert_eq!((c.c1, c.c2, c.c3), (3.0, 2.0, 0.0));
        assert_eq!(c.decision_interval, Duration::from_millis(300));
    }

    #[test]
    fn one_talker_among_silent_ones_is_dominant_within_a_second() {
        let mut sim = Sim::new(Config::default(), &[B, C, D, A]);
        let mut a = Mic::new(1, 70);
        let mut d = Mic::new(4, 72);
        // Everybody's microphone open for 200 ms, then A talks for 5 s. B sends the RFC 6464
        // silence level, C sends nothing, D an open microphone at its noise floor.
        let start = secs(0.2);
        for f in 0..start + secs(5.0) {
            a.talking = f >= start;
            let sends = [
                (A, Send::Level(a.frame())),
                (B, Send::Level(127)),
                (C, Send::Nothing),
                (D, Send::Level(d.frame())),
            ];
            sim.step(&sends);
        }
        let from = FRAME * start as u32;
        // A may follow a first nomination of somebody else, and is the last change.
        let first_a = sim
            .changes
            .iter()
            .position(|&(_, w)| w == A)
            .expect("A never became dominant");
        assert_eq!(first_a, sim.changes.len() - 1, "{:?}", sim.changes);
        let at = sim.changes[first_a].0;
        assert!(
            at - from <= Duration::from_secs(1),
            "A took {:?}",
            at - from
        );
        assert_eq!(sim.det.dominant(), Some(A));
    }

    #[test]
    fn a_cough_does_not_steal_the_floor() {
        let mut sim = Sim::new(Config::default(), &[A, B]);
        let mut a = Mic::new(11, 70);
        a.talking = true;
        let mut b = Mic::new(12, 68);
        for _ in 0..secs(2.0) {
            let sends = [(A, Send::Level(a.frame())), (B, Send::Level(b.frame()))];
            sim.step(&sends);
        }
        assert_eq!(sim.det.dominant(), Some(A), "{:?}", sim.changes);
        let changes = sim.changes.len();
        // 10 s of A talking; every 1.5 s B coughs for 60 ms (3 frames at 5 dBov), the cough ending
        // on a decision frame, so the decision sees it at its loudest.
        for k in 0..secs(10.0) {
            let f = sim.frame;
            let next_decision = (f / 15 + 1) * 15;
            let coughing = (k / 75) > 0 && next_decision - f <= 3 && (f / 15) % 5 == 4;
            let lb = if coughing { 5 } else { b.frame() };
            sim.step(&[(A, Send::Level(a.frame())), (B, Send::Level(lb))]);
        }
        assert_eq!(sim.det.dominant(), Some(A));
        assert_eq!(sim.changes.len(), changes, "{:?}", sim.changes);
    }

    #[test]
    fn a_cough_in_the_dominant_speakers_pause_does_not_steal_the_floor_either() {
        // Worst case, built by hand: A speaks 200 ms and pauses 100 ms, the pause ending on each
        // decision, so A's newest frame and newest 100 ms block are silent; B coughs for 60 ms at
        // the end of each pause. B then beats A on the immediate and medium scales, and only the
        // long scale (A talked in the last second, B never held 100 ms) keeps the floor with A.
        let mut sim = Sim::new(Config::default(), &[A, B]);
        for k in 0..secs(8.0) {
            let phase = sim.frame % 15; // a decision comes before frame 0's packets
            let (la, lb) = match (phase, k >= secs(2.0)) {
                (0..=9, _) => (25 + (k % 7) as u8, 70),
                (10..=11, _) | (_, false) => (70, 70),
                _ => (70, 3),
            };
            sim.step(&[(A, Send::Level(la)), (B, Send::Level(lb))]);
        }
        assert_eq!(sim.det.dominant(), Some(A), "{:?}", sim.changes);
        assert_eq!(sim.changes.len(), 1, "{:?}", sim.changes);
        // The decision saw what the test means: B ahead on the two short scales, behind on the
        // long one.
        let (a, b) = (sim.det.scores(A), sim.det.scores(B));
        let (a, b) = (a.expect("A tracked"), b.expect("B tracked"));
        assert!((b.immediate / a.immediate).ln() > DEFAULT_C1, "{a:?} {b:?}");
        assert!((b.medium / a.medium).ln() > DEFAULT_C2, "{a:?} {b:?}");
        assert!(b.long < a.long, "{a:?} {b:?}");
    }

    #[test]
    fn when_a_stops_and_b_talks_b_takes_over_after_a_plausible_delay() {
        let mut sim = Sim::new(Config::default(), &[A, B, C]);
        let mut a = Mic::new(21, 70);
        let mut b = Mic::new(22, 66);
        let mut c = Mic::new(23, 74);
        a.talking = true;
        for _ in 0..secs(4.0) {
            let sends = [
                (A, Send::Level(a.frame())),
                (B, Send::Level(b.frame())),
                (C, Send::Level(c.frame())),
            ];
            sim.step(&sends);
        }
        assert_eq!(sim.det.dominant(), Some(A), "{:?}", sim.changes);
        let stop = sim.elapsed();
        a.talking = false;
        b.talking = true;
        for _ in 0..secs(4.0) {
            let sends = [
                (A, Send::Level(a.frame())),
                (B, Send::Level(b.frame())),
                (C, Send::Level(c.frame())),
            ];
            sim.step(&sends);
        }
        let after = sim.changes_after(stop);
        assert_eq!(after.len(), 1, "exactly one switch: {:?}", sim.changes);
        let (at, who) = after[0];
        assert_eq!(who, B);
        let delay = at - stop;
        assert!(
            delay >= Duration::from_millis(300) && delay <= Duration::from_secs(2),
            "switch after {delay:?}"
        );
    }

    #[test]
    fn a_talker_who_goes_quiet_altogether_is_replaced_too() {
        // As above, but A's client stops sending (DTX or a mute): silent frames come from the
        // level idle timeout.
        let mut sim = Sim::new(Config::default(), &[A, B]);
        let mut a = Mic::new(31, 70);
        let mut b = Mic::new(32, 70);
        a.talking = true;
        for _ in 0..secs(3.0) {
            sim.step(&[(A, Send::Level(a.frame())), (B, Send::Level(b.frame()))]);
        }
        assert_eq!(sim.det.dominant(), Some(A));
        let stop = sim.elapsed();
        b.talking = true;
        for _ in 0..secs(3.0) {
            sim.step(&[(A, Send::Nothing), (B, Send::Level(b.frame()))]);
        }
        let after = sim.changes_after(stop);
        assert_eq!(after.len(), 1, "{:?}", sim.changes);
        assert_eq!(after[0].1, B);
        let delay = after[0].0 - stop;
        assert!(
            delay >= Duration::from_millis(300) && delay <= Duration::from_secs(2),
            "switch after {delay:?}"
        );
    }

    #[test]
    fn removing_the_dominant_speaker_clears_it_and_the_next_decision_hands_over() {
        let mut sim = Sim::new(Config::default(), &[C, A, B]);
        let mut a = Mic::new(41, 70);
        let mut b = Mic::new(42, 70);
        let mut c = Mic::new(43, 70);
        a.talking = true;
        // A talks, then B starts too (double talk: A keeps the floor), C is quiet.
        for f in 0..secs(4.0) {
            b.talking = f >= secs(2.0);
            let sends = [
                (A, Send::Level(a.frame())),
                (B, Send::Level(b.frame())),
                (C, Send::Level(c.frame())),
            ];
            sim.step(&sends);
        }
        assert_eq!(sim.det.dominant(), Some(A), "{:?}", sim.changes);
        assert!(!sim.det.remove(0x99), "not a speaker");
        assert!(sim.det.remove(A));
        assert!(!sim.det.contains(A));
        assert_eq!(sim.det.dominant(), None);
        assert!(!sim.det.remove(A), "removed already");
        // Nobody is chosen before the next decision, which picks the one talking (not C, the first
        // added).
        for _ in 0..15 {
            sim.step(&[(B, Send::Level(b.frame())), (C, Send::Level(c.frame()))]);
        }
        assert_eq!(
            sim.changes.last().map(|c| c.1),
            Some(B),
            "{:?}",
            sim.changes
        );
        assert_eq!(sim.det.dominant(), Some(B));
        // Removing a speaker who is not dominant changes nothing; levels of removed speakers are
        // ignored.
        assert!(sim.det.remove(C));
        sim.det.level(A, 10, sim.t0 + sim.elapsed());
        assert_eq!(sim.det.len(), 1);
        assert_eq!(sim.det.dominant(), Some(B));
        // The last speaker gone: nobody, and a decision in an empty room changes nothing.
        assert!(sim.det.remove(B));
        assert!(sim.det.is_empty());
        assert_eq!(sim.det.dominant(), None);
        assert_eq!(sim.det.decide(sim.t0 + sim.elapsed()), None);
    }

    #[test]
    fn a_speaker_idle_past_the_timeout_is_not_chosen() {
        let config = Config {
            speaker_idle_timeout: Duration::from_secs(5),
            ..Config::default()
        };
        // A and E were added first, so a nomination that ignored idleness would pick one of them.
        let mut sim = Sim::new(config, &[A, E, B, C]);
        let (mut a, mut b, mut c, mut e) = (
            Mic::new(51, 70),
            Mic::new(52, 70),
            Mic::new(53, 70),
            Mic::new(54, 70),
        );
        c.talking = true;
        for f in 0..secs(8.0) {
            // A's and E's microphones are open for half a second; then A sends nothing and E the
            // RFC 6464 silence level. B keeps an open, quiet microphone; C talks.
            let early = f < secs(0.5);
            let sends = [
                (
                    A,
                    if early {
                        Send::Level(a.frame())
                    } else {
                        Send::Nothing
                    },
                ),
                (E, Send::Level(if early { e.frame() } else { 127 })),
                (B, Send::Level(b.frame())),
                (C, Send::Level(c.frame())),
            ];
            sim.step(&sends);
        }
        assert_eq!(sim.det.dominant(), Some(C), "{:?}", sim.changes);
        assert!(sim.det.remove(C));
        sim.decide();
        assert_eq!(sim.det.dominant(), Some(B), "{:?}", sim.changes);
        // With B gone too only idle speakers are left: nobody is dominant.
        assert!(sim.det.remove(B));
        sim.decide();
        assert_eq!(sim.det.dominant(), None);
        // Until A is heard again.
        for _ in 0..15 {
            sim.step(&[(A, Send::Level(a.frame())), (E, Send::Level(127))]);
        }
        assert_eq!(sim.det.dominant(), Some(A), "{:?}", sim.changes);
    }

    #[test]
    fn the_default_speaker_idle_timeout_is_an_hour() {
        let t0 = Instant::now();
        let mut det = DominantSpeaker::default();
        det.add(A);
        det.add(B);
        det.level(A, 70, t0);
        det.level(B, 70, t0 + Duration::from_secs(3));
        // A quiet 59 minutes: still eligible, and nominated first (added first, equally quiet).
        assert_eq!(det.decide(t0 + Duration::from_secs(59 * 60)), Some(A));
        det.remove(A);
        det.add(A);
        det.level(A, 70, t0);
        // Just over an hour after A's level, three seconds less after B's: B.
        assert_eq!(det.decide(t0 + Duration::from_secs(3600 + 1)), Some(B));
    }

    #[test]
    fn a_room_at_its_noise_floor_does_not_flap() {
        let mut sim = Sim::new(Config::default(), &[A, B, C, D]);
        // Open microphones, none talking, with different floors (one noisy at 45 dBov).
        let mut mics = [
            Mic::new(61, 70),
            Mic::new(62, 70),
            Mic::new(63, 58),
            Mic::new(64, 45),
        ];
        for _ in 0..secs(10.0) {
            let mut sends = [(0, Send::Nothing); 4];
            for (k, (id, m)) in [A, B, C, D].into_iter().zip(mics.iter_mut()).enumerate() {
                sends[k] = (id, Send::Level(m.frame()));
            }
            sim.step(&sends);
        }
        assert_eq!(
            sim.changes.len(),
            1,
            "one nomination, then no change: {:?}",
            sim.changes
        );
        assert_eq!(sim.det.dominant(), Some(A));
        for id in [A, B, C, D] {
            assert_eq!(sim.det.scores(id), Some(ActivityScores::FLOOR), "{id}");
        }
    }

    #[test]
    fn the_ranking_orders_recent_speakers_by_smoothed_energy() {
        let t0 = Instant::now();
        let at = |f: u64| t0 + FRAME * f as u32;
        let mut det = DominantSpeaker::default();
        for id in [A, B, C, D, E] {
            det.add(id);
        }
        // Floors first, then A loud, C softer, B and D at their floors; E never heard.
        for f in 0..5 {
            for id in [A, B, C, D] {
                det.level(id, 70, at(f));
            }
        }
        for f in 5..20 {
            det.level(A, 25, at(f));
            det.level(B, 71, at(f));
            det.level(C, 40, at(f));
            if f < 10 {
                det.level(D, 70, at(f));
            }
        }
        let mut out = [0u32; 8];
        // D's last level was 200 ms ago (> 150 ms): out.
        let n = det.ranking(at(20), &mut out);
        assert_eq!(&out[..n], &[A, C, B]);
        let mut top2 = [0u32; 2];
        assert_eq!(det.ranking(at(20), &mut top2), 2);
        assert_eq!(top2, [A, C]);
        assert_eq!(det.ranking(at(20), &mut []), 0);
        // Long after, nobody.
        assert_eq!(det.ranking(at(100), &mut out), 0);
    }

    #[test]
    fn packets_inside_one_frame_merge_and_gaps_fill() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let mut det = DominantSpeaker::default();
        det.add(A);
        // 10 ms packets: two per frame, the louder kept.
        det.level(A, 70, ms(0));
        det.level(A, 30, ms(10));
        det.level(A, 72, ms(20));
        det.level(A, 75, ms(30));
        let s = &det.speakers[0];
        assert_eq!(s.frame_at, Some(ms(20)));
        let newest =
            |s: &Speaker, age: usize| s.ring[(s.next + 2 * LEVELS_LEN - 1 - age) % LEVELS_LEN];
        assert_eq!((newest(s, 0), newest(s, 1)), (127 - 72, 127 - 30));
        // A late packet is ignored; a 60 ms packet fills three frames.
        det.level(A, 10, ms(5));
        det.level(A, 40, ms(80));
        let s = &det.speakers[0];
        assert_eq!(s.frame_at, Some(ms(80)));
        assert_eq!(
            (newest(s, 0), newest(s, 1), newest(s, 2), newest(s, 3)),
            (87, 87, 87, 55)
        );
        // Idle past 40 ms: silent frames at the decision, up to the decision's frame.
        det.decide(ms(121));
        let s = &det.speakers[0];
        assert_eq!(s.frame_at, Some(ms(120)));
        assert_eq!((newest(s, 0), newest(s, 1), newest(s, 2)), (0, 0, 87));
        // Not idle yet at 40 ms: nothing written.
        det.level(A, 40, ms(125));
        det.decide(ms(165));
        assert_eq!(det.speakers[0].frame_at, Some(ms(120)));
    }

    #[test]
    fn the_floor_tracks_down_at_once_and_up_slowly() {
        let mut s = Speaker::new();
        s.update_min_level(57);
        assert_eq!(s.min_level, 57);
        s.update_min_level(50);
        assert_eq!(s.min_level, 50);
        s.update_min_level(0);
        assert_eq!(s.min_level, 50, "silence is not a floor");
        for _ in 0..MIN_LEVEL_WINDOW_LEN - 1 {
            s.update_min_level(80);
        }
        assert_eq!(s.min_level, 50);
        s.update_min_level(80);
        assert_eq!(s.min_level, 63, "sqrt(50 * 80) = 63.2");
        // A floor near the top does not wrap: a level at the floor is silence.
        s.min_level = 125;
        assert_eq!(s.immediate(126), 0);
        assert_eq!(s.immediate(127), 0);
    }
}
