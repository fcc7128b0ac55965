//! HLS playlists (RFC 8216, version 7) for a room's broadcast.
//!
//! - [`MediaPlaylist`]: one rendition's rolling window of fMP4 segments, each with its wall-clock
//!   start (`EXT-X-PROGRAM-DATE-TIME`, so players can show how far behind live they are and line
//!   up who was speaking), the init segment (`EXT-X-MAP`), and `EXT-X-ENDLIST` once the broadcast
//!   ends (a deleted room, a stopped broadcast): players then stop polling.
//! - [`multivariant`]: the entry playlist naming each rendition (Opus in fMP4, AAC-LC) with its
//!   codec and bandwidth, so a player picks the one it can decode.
//!
//! Pure: the caller passes each segment's start time and duration; nothing here reads a clock.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use time::macros::format_description;
use time::OffsetDateTime;

/// One media segment in a playlist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Its media sequence number (the first segment of a broadcast is 0).
    pub sequence: u64,
    /// Its length.
    pub duration: Duration,
    /// Wall-clock time of its first sample.
    pub starts_at: SystemTime,
    /// Its URI, relative to the playlist.
    pub uri: String,
}

/// A rolling media playlist: the last `window` segments.
#[derive(Debug, Clone)]
pub struct MediaPlaylist {
    init_uri: String,
    window: usize,
    segments: VecDeque<Segment>,
    target: Duration,
    ended: bool,
}

impl MediaPlaylist {
    /// An empty playlist whose segments share the init segment at `init_uri` and of which the
    /// last `window` (at least 3, as RFC 8216 6.2.2 asks of a live playlist) are listed. `target`
    /// is the longest segment expected (`EXT-X-TARGETDURATION`, whole seconds, rounded up); a
    /// longer one raises it.
    pub fn new(init_uri: impl Into<String>, window: usize, target: Duration) -> Self {
        Self {
            init_uri: init_uri.into(),
            window: window.max(3),
            segments: VecDeque::new(),
            target,
            ended: false,
        }
    }

    /// Adds the next segment (its sequence follows the last one's); returns the one that left the
    /// window, whose file can be deleted once players that read the previous playlist are done.
    pub fn push(&mut self, segment: Segment) -> Option<Segment> {
        if self.ended {
            return None;
        }
        self.target = self.target.max(segment.duration);
        self.segments.push_back(segment);
        if self.segments.len() > self.window {
            self.segments.pop_front()
        } else {
            None
        }
    }

    /// Ends the playlist (`EXT-X-ENDLIST`): no segment is added after this.
    pub fn end(&mut self) {
        self.ended = true;
    }

    /// Whether [`Self::end`] was called.
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// The segments listed now, oldest first.
    pub fn segments(&self) -> impl Iterator<Item = &Segment> {
        self.segments.iter()
    }

    /// The playlist's text.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(128 + 96 * self.segments.len());
        let first = self.segments.front().map_or(0, |s| s.sequence);
        let _ = write!(
            out,
            "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:{}\n#EXT-X-MEDIA-SEQUENCE:{first}\n\
             #EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-MAP:URI=\"{}\"\n",
            whole_seconds_up(self.target),
            self.init_uri
        );
        for s in &self.segments {
            let _ = write!(
                out,
                "#EXT-X-PROGRAM-DATE-TIME:{}\n#EXTINF:{:.3},\n{}\n",
                iso8601_millis(s.starts_at),
                s.duration.as_secs_f64(),
                s.uri
            );
        }
        if self.ended {
            out.push_str("#EXT-X-ENDLIST\n");
        }
        out
    }
}

/// One rendition in the multivariant playlist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendition {
    /// Its media playlist's URI, relative to the multivariant playlist.
    pub uri: String,
    /// RFC 6381 codec string: `opus`, `mp4a.40.2` (AAC-LC).
    pub codecs: String,
    /// Peak bits per second, container included.
    pub bandwidth: u32,
}

/// The multivariant playlist naming `renditions`, in the order given (players take the first they
/// can decode when bandwidth does not decide).
pub fn multivariant(renditions: &[Rendition]) -> String {
    let mut out = String::from("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    for r in renditions {
        let _ = write!(
            out,
            "#EXT-X-STREAM-INF:BANDWIDTH={},CODECS=\"{}\"\n{}\n",
            r.bandwidth, r.codecs, r.uri
        );
    }
    out
}

/// `d` in whole seconds, rounded up, at least 1 (`EXT-X-TARGETDURATION` must not be below any
/// segment's duration rounded to the nearest second).
fn whole_seconds_up(d: Duration) -> u64 {
    let s = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    s.max(1)
}

/// `t` as ISO 8601 in UTC with milliseconds, e.g. `2026-12-06T22:30:00.250Z`.
fn iso8601_millis(t: SystemTime) -> String {
    let format =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    OffsetDateTime::from(t)
        .format(&format)
        .unwrap_or_else(|_| "1970-01-01T00:00:00.000Z".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> SystemTime {
        // 2026-12-06T22:30:00Z
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_596_200) + Duration::from_millis(ms)
    }

    fn segment(sequence: u64) -> Segment {
        Segment {
            sequence,
            duration: Duration::from_secs(1),
            starts_at: at(1_000 * sequence),
            uri: format!("seg-{sequence}.m4s"),
        }
    }

    #[test]
    fn a_live_playlist_rolls_its_window_and_dates_each_segment() {
        let mut p = MediaPlaylist::new("init.mp4", 3, Duration::from_secs(1));
        assert_eq!(p.push(segment(0)), None);
        assert_eq!(p.push(segment(1)), None);
        assert_eq!(p.push(segment(2)), None);
        assert_eq!(p.push(segment(3)), Some(segment(0)), "the oldest leaves");
        assert_eq!(
            p.render(),
            "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:1\n\
             #EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-MAP:URI=\"init.mp4\"\n\
             #EXT-X-PROGRAM-DATE-TIME:2026-12-06T22:30:01.000Z\n#EXTINF:1.000,\nseg-1.m4s\n\
             #EXT-X-PROGRAM-DATE-TIME:2026-12-06T22:30:02.000Z\n#EXTINF:1.000,\nseg-2.m4s\n\
             #EXT-X-PROGRAM-DATE-TIME:2026-12-06T22:30:03.000Z\n#EXTINF:1.000,\nseg-3.m4s\n"
        );
    }

    #[test]
    fn an_ended_playlist_says_so_and_takes_nothing_more() {
        let mut p = MediaPlaylist::new("init.mp4", 5, Duration::from_secs(1));
        p.push(segment(0));
        p.end();
        assert!(p.is_ended());
        assert_eq!(p.push(segment(1)), None);
        let text = p.render();
        assert!(text.ends_with("seg-0.m4s\n#EXT-X-ENDLIST\n"), "{text}");
        assert_eq!(p.segments().count(), 1);
    }

    #[test]
    fn the_target_duration_covers_the_longest_segment_and_the_window_has_at_least_three() {
        let mut p = MediaPlaylist::new("init.mp4", 1, Duration::from_millis(1_000));
        for i in 0..3 {
            assert_eq!(p.push(segment(i)), None, "a window of at least 3");
        }
        p.push(Segment {
            duration: Duration::from_millis(1_020),
            starts_at: at(3_000),
            ..segment(3)
        });
        let text = p.render();
        assert!(text.contains("#EXT-X-TARGETDURATION:2\n"), "{text}");
        assert!(text.contains("#EXTINF:1.020,\nseg-3.m4s\n"), "{text}");
        assert_eq!(whole_seconds_up(Duration::ZERO), 1);
        assert_eq!(whole_seconds_up(Duration::from_secs(4)), 4);
    }

    #[test]
    fn an_empty_playlist_is_valid_and_dates_keep_their_milliseconds() {
        let p = MediaPlaylist::new("init.mp4", 3, Duration::from_secs(1));
        assert!(p.render().contains("#EXT-X-MEDIA-SEQUENCE:0\n"));
        assert_eq!(iso8601_millis(at(250)), "2026-12-06T22:30:00.250Z");
        assert_eq!(
            iso8601_millis(SystemTime::UNIX_EPOCH),
            "1970-01-01T00:00:00.000Z"
        );
    }

    #[test]
    fn the_multivariant_playlist_names_each_rendition_with_its_codec() {
        let text = multivariant(&[
            Rendition {
                uri: "opus/index.m3u8".into(),
                codecs: "opus".into(),
                bandwidth: 72_000,
            },
            Rendition {
                uri: "aac/index.m3u8".into(),
                codecs: "mp4a.40.2".into(),
                bandwidth: 140_000,
            },
        ]);
        assert_eq!(
            text,
            "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n\
             #EXT-X-STREAM-INF:BANDWIDTH=72000,CODECS=\"opus\"\nopus/index.m3u8\n\
             #EXT-X-STREAM-INF:BANDWIDTH=140000,CODECS=\"mp4a.40.2\"\naac/index.m3u8\n"
        );
    }
}
