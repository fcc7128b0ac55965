//! Link quality from RTCP, per transport: what the workers' once-a-second [`Upcall::Link`] reports
//! say (sluice's own measure of each member's uplink, and what each member's receiver reports say of
//! its downlink), kept for the API (`link` on each participant of `GET /v1/rooms/{room}`) and
//! `/metrics`, and folded into the worst downlink among the subscribers of each publisher, which
//! goes back to the publisher's worker ([`TopologyUpdate::Downstream`]) so the receiver reports
//! sluice sends it make its Opus encoder protect its stream (in-band FEC) when any listener loses
//! packets.
//!
//! Pure state over reports and `Instant`s: the media thread feeds it and acts on what it returns.
//!
//! [`Upcall::Link`]: sluice_dataplane::topology::Upcall::Link
//! [`TopologyUpdate::Downstream`]: sluice_dataplane::topology::TopologyUpdate::Downstream

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sluice_dataplane::topology::{DownlinkSample, LinkReport, Quality, TransportId, UplinkSample};
use utoipa::ToSchema;

/// A report older than this says nothing about the link now. Clients report at their own pace:
/// aiortc about every second, browsers at RFC 3550's 5 s for audio, randomized up to 1.5 times
/// (7.5 s): a shorter span would drop a browser's loss between its reports, and the publisher's
/// receiver reports would flap between its listener's loss and none (seen with Chromium,
/// `tests/chromium_clients.rs`).
pub const FRESH_FOR: Duration = Duration::from_secs(8);

/// `loss` in the API and `/metrics` is the mean of the reports over this long (at least
/// [`FRESH_FOR`], so a fresh report is always in it): one report of a fast reporter covers about a
/// second, 50 packets of a stream, too few for a loss rate (a 5 % link shows 0 in one interval of
/// 12 now and then).
pub const LOSS_OVER: Duration = Duration::from_secs(10);

/// Reports of transports not heard of for this long are forgotten (the transport went).
const FORGET_AFTER: Duration = Duration::from_secs(30);

/// Loss above this fraction makes a member count as lossy in `/metrics`.
pub const LOSSY: f64 = 0.02;

/// RTP clock of the audio (Opus), to turn jitter into milliseconds.
const CLOCK_RATE: f64 = 48_000.0;

/// One direction of a member's link, as the API shows it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LinkDirection {
    /// Fraction of packets lost over the last five seconds (the mean of the report intervals in
    /// them), 0 to 1.
    pub loss: f64,
    /// Packets lost in all (as the receiving end counts them).
    pub lost: i64,
    /// Interarrival jitter (RFC 3550 §6.4.1), in milliseconds.
    pub jitter_ms: f64,
}

/// A member's link as RTCP sees it (`link` of a participant in `GET /v1/rooms/{room}`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LinkQuality {
    /// The audio the member sends, as sluice receives it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uplink: Option<LinkDirection>,
    /// The audio sluice sends the member, as the member's receiver reports say it arrives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downlink: Option<LinkDirection>,
    /// Round-trip time between sluice and the member (from the member echoing sluice's sender
    /// reports), in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtt_ms: Option<f64>,
}

/// The links of the whole server, for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LinkSummary {
    /// Transports with a fresh uplink report, and those losing over [`LOSSY`] of it.
    pub uplinks: (u64, u64),
    /// Transports with a fresh downlink report, and those losing over [`LOSSY`] of it.
    pub downlinks: (u64, u64),
    /// The worst fresh loss fraction, uplink and downlink.
    pub worst_loss: (f64, f64),
    /// The largest and the median round-trip time known, in seconds.
    pub rtt: Option<(f64, f64)>,
}

/// The loss fractions (1/256) of the recent reports of one direction, newest last.
#[derive(Debug, Default)]
struct RecentLoss(VecDeque<(u8, Instant)>);

impl RecentLoss {
    fn push(&mut self, fraction_lost: u8, now: Instant) {
        self.0.push_back((fraction_lost, now));
        while self
            .0
            .front()
            .is_some_and(|(_, at)| now.saturating_duration_since(*at) >= LOSS_OVER)
        {
            self.0.pop_front();
        }
    }

    /// The mean over the reports of the last [`LOSS_OVER`] at `now`, 0 to 1.
    fn mean(&self, now: Instant) -> f64 {
        let (sum, n) = self
            .0
            .iter()
            .filter(|(_, at)| now.saturating_duration_since(*at) < LOSS_OVER)
            .fold((0u32, 0u32), |(s, n), (f, _)| (s + u32::from(*f), n + 1));
        if n == 0 {
            0.0
        } else {
            f64::from(sum) / f64::from(n) / 256.0
        }
    }
}

#[derive(Debug, Default)]
struct Entry {
    uplink: Option<(UplinkSample, Instant)>,
    downlink: Option<(DownlinkSample, Instant)>,
    uplink_loss: RecentLoss,
    downlink_loss: RecentLoss,
    /// The last round-trip time measured (reports without an echoed SR do not clear it).
    rtt: Option<Duration>,
    seen: Option<Instant>,
}

/// Every transport's link, and the downstream quality last handed to each publisher.
#[derive(Debug, Default)]
pub struct Links {
    entries: HashMap<TransportId, Entry>,
    sent: HashMap<TransportId, Quality>,
}

fn fresh<T: Copy>(x: Option<(T, Instant)>, now: Instant) -> Option<T> {
    x.filter(|(_, at)| now.saturating_duration_since(*at) < FRESH_FOR)
        .map(|(v, _)| v)
}

fn direction(q: Quality, loss: f64, lost: i64) -> LinkDirection {
    LinkDirection {
        loss,
        lost,
        jitter_ms: f64::from(q.jitter) * 1000.0 / CLOCK_RATE,
    }
}

impl Links {
    /// Takes one transport's report, received at `now`.
    pub fn on_report(&mut self, transport: TransportId, report: &LinkReport, now: Instant) {
        let e = self.entries.entry(transport).or_default();
        e.seen = Some(now);
        if let Some(u) = report.uplink {
            e.uplink = Some((u, now));
            e.uplink_loss.push(u.quality.fraction_lost, now);
        }
        if let Some(d) = report.downlink {
            e.downlink = Some((d, now));
            e.downlink_loss.push(d.worst.fraction_lost, now);
            if d.rtt.is_some() {
                e.rtt = d.rtt;
            }
        }
    }

    /// Forgets a transport (it was removed).
    pub fn remove(&mut self, transport: TransportId) {
        self.entries.remove(&transport);
        self.sent.remove(&transport);
    }

    /// A transport's link as the API shows it, from the reports fresh at `now`; `None` when no
    /// report is.
    pub fn quality(&self, transport: TransportId, now: Instant) -> Option<LinkQuality> {
        let e = self.entries.get(&transport)?;
        let uplink =
            fresh(e.uplink, now).map(|u| direction(u.quality, e.uplink_loss.mean(now), u.lost));
        let downlink = fresh(e.downlink, now)
            .map(|d| direction(d.worst, e.downlink_loss.mean(now), i64::from(d.lost)));
        if uplink.is_none() && downlink.is_none() {
            return None;
        }
        Some(LinkQuality {
            uplink,
            downlink,
            rtt_ms: e.rtt.map(|d| d.as_secs_f64() * 1000.0),
        })
    }

    /// The worst fresh downlink among each publisher's subscribers, from `(subscriber, publisher)`
    /// pairs (a subscriber with the publisher on one of its slots). Returns the publishers whose
    /// value changed since the last call, with the new one (back to zero when no lossy subscriber
    /// is left), for [`TopologyUpdate::Downstream`](sluice_dataplane::topology::TopologyUpdate).
    pub fn downstream(
        &mut self,
        now: Instant,
        pairs: impl IntoIterator<Item = (TransportId, TransportId)>,
    ) -> Vec<(TransportId, Quality)> {
        let mut worst: HashMap<TransportId, Quality> = HashMap::new();
        for (subscriber, publisher) in pairs {
            let Some(d) = self
                .entries
                .get(&subscriber)
                .and_then(|e| fresh(e.downlink, now))
            else {
                continue;
            };
            let w = worst.entry(publisher).or_default();
            *w = w.worst(d.worst);
        }
        let mut changed = Vec::new();
        for (&p, &q) in &worst {
            if self.sent.get(&p).copied().unwrap_or_default() != q {
                changed.push((p, q));
            }
        }
        for (&p, &q) in &self.sent {
            if !worst.contains_key(&p) && q != Quality::default() {
                changed.push((p, Quality::default()));
            }
        }
        for &(p, q) in &changed {
            self.sent.insert(p, q);
        }
        changed.sort_by_key(|&(p, _)| p);
        changed
    }

    /// Forgets transports not reported on for a while (removed ones whose removal was missed).
    pub fn forget_stale(&mut self, now: Instant) {
        self.entries.retain(|_, e| {
            e.seen
                .is_some_and(|at| now.saturating_duration_since(at) < FORGET_AFTER)
        });
        let entries = &self.entries;
        self.sent.retain(|t, _| entries.contains_key(t));
    }

    /// The server's links at `now`, for `/metrics`.
    pub fn summary(&self, now: Instant) -> LinkSummary {
        let mut s = LinkSummary::default();
        let mut rtts: Vec<f64> = Vec::new();
        for e in self.entries.values() {
            if fresh(e.uplink, now).is_some() {
                let loss = e.uplink_loss.mean(now);
                s.uplinks.0 += 1;
                s.uplinks.1 += u64::from(loss > LOSSY);
                s.worst_loss.0 = s.worst_loss.0.max(loss);
            }
            if fresh(e.downlink, now).is_some() {
                let loss = e.downlink_loss.mean(now);
                s.downlinks.0 += 1;
                s.downlinks.1 += u64::from(loss > LOSSY);
                s.worst_loss.1 = s.worst_loss.1.max(loss);
                if let Some(r) = e.rtt {
                    rtts.push(r.as_secs_f64());
                }
            }
        }
        if !rtts.is_empty() {
            rtts.sort_by(f64::total_cmp);
            s.rtt = Some((rtts[rtts.len() - 1], rtts[rtts.len() / 2]));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(fraction_lost: u8, lost: i64) -> LinkReport {
        LinkReport {
            uplink: Some(UplinkSample {
                quality: Quality {
                    fraction_lost,
                    jitter: 480,
                },
                lost,
                received: 1000,
            }),
            downlink: None,
        }
    }

    fn down(fraction_lost: u8, rtt_ms: Option<u64>) -> LinkReport {
        LinkReport {
            uplink: None,
            downlink: Some(DownlinkSample {
                worst: Quality {
                    fraction_lost,
                    jitter: 96,
                },
                lost: 7,
                rtt: rtt_ms.map(Duration::from_millis),
                blocks: 3,
            }),
        }
    }

    #[test]
    fn the_api_view_in_milliseconds_and_fractions_while_fresh() {
        let t0 = Instant::now();
        let mut l = Links::default();
        assert_eq!(l.quality(1, t0), None);
        l.on_report(1, &up(64, 12), t0);
        l.on_report(1, &down(0, Some(40)), t0);
        // A later report without an echoed SR keeps the last RTT.
        l.on_report(1, &down(13, None), t0 + Duration::from_secs(1));
        let q = l.quality(1, t0 + Duration::from_secs(1)).unwrap();
        assert_eq!(
            q.uplink,
            Some(LinkDirection {
                loss: 0.25,
                lost: 12,
                jitter_ms: 10.0
            })
        );
        let d = q.downlink.unwrap();
        assert_eq!((d.lost, d.jitter_ms), (7, 2.0));
        // The mean of the two reports (0 and 13/256).
        assert!((d.loss - 6.5 / 256.0).abs() < 1e-9);
        assert_eq!(q.rtt_ms, Some(40.0));
        // Stale reports say nothing.
        let q = l
            .quality(1, t0 + FRESH_FOR + Duration::from_millis(500))
            .unwrap();
        assert_eq!(q.uplink, None);
        assert!(q.downlink.is_some());
        assert_eq!(l.quality(1, t0 + FRESH_FOR + Duration::from_secs(2)), None);
        l.forget_stale(t0 + Duration::from_secs(60));
        assert!(l.entries.is_empty());
    }

    #[test]
    fn loss_is_the_mean_of_the_last_ten_seconds_so_one_clean_interval_does_not_hide_a_lossy_link() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut l = Links::default();
        // A 5 % link: intervals of 50 packets lose 3, 2, 4, then none.
        for (i, f) in [15u8, 10, 20, 0].into_iter().enumerate() {
            l.on_report(1, &down(f, None), at(i as u64));
        }
        let d = l.quality(1, at(3)).unwrap().downlink.unwrap();
        assert!((d.loss - 45.0 / 4.0 / 256.0).abs() < 1e-9, "{d:?}");
        assert_eq!(l.summary(at(3)).downlinks, (1, 1));
        // The lossy intervals age out; a clean link reads clean again.
        for s in 4..14 {
            l.on_report(1, &down(0, None), at(s));
        }
        assert_eq!(l.quality(1, at(13)).unwrap().downlink.unwrap().loss, 0.0);
        assert_eq!(l.summary(at(13)).downlinks, (1, 0));
        assert!(l.entries[&1].downlink_loss.0.len() <= 10);
    }

    #[test]
    fn each_publisher_gets_the_worst_of_its_subscribers_once_per_change() {
        let t0 = Instant::now();
        let mut l = Links::default();
        // Publishers 10 and 11; subscribers 1 (5 % loss), 2 (20 %), 3 (no reports).
        l.on_report(1, &down(13, None), t0);
        l.on_report(2, &down(51, None), t0);
        let pairs = [(1, 10), (2, 10), (3, 10), (1, 11), (3, 11)];
        let got = l.downstream(t0, pairs);
        assert_eq!(
            got,
            vec![
                (
                    10,
                    Quality {
                        fraction_lost: 51,
                        jitter: 96
                    }
                ),
                (
                    11,
                    Quality {
                        fraction_lost: 13,
                        jitter: 96
                    }
                ),
            ]
        );
        // Nothing changed: nothing to send.
        assert_eq!(l.downstream(t0, pairs), vec![]);
        // Subscriber 2 no longer listens to 10: 10 falls back to 1's loss.
        let pairs = [(1, 10), (1, 11)];
        assert_eq!(
            l.downstream(t0, pairs),
            vec![(
                10,
                Quality {
                    fraction_lost: 13,
                    jitter: 96
                }
            )]
        );
        // Once the reports go stale, both go back to zero, once.
        let later = t0 + FRESH_FOR;
        assert_eq!(
            l.downstream(later, pairs),
            vec![(10, Quality::default()), (11, Quality::default())]
        );
        assert_eq!(l.downstream(later, pairs), vec![]);
    }

    #[test]
    fn the_summary_counts_lossy_members_and_round_trips() {
        let t0 = Instant::now();
        let mut l = Links::default();
        l.on_report(1, &up(0, 0), t0);
        l.on_report(2, &up(26, 3), t0);
        l.on_report(1, &down(2, Some(30)), t0);
        l.on_report(2, &down(0, Some(10)), t0);
        l.on_report(3, &down(0, Some(90)), t0);
        let s = l.summary(t0);
        assert_eq!((s.uplinks, s.downlinks), ((2, 1), (3, 0)));
        assert!((s.worst_loss.0 - 26.0 / 256.0).abs() < 1e-9);
        assert_eq!(s.rtt, Some((0.09, 0.03)));
        l.remove(3);
        assert_eq!(l.summary(t0).downlinks, (2, 0));
    }
}
