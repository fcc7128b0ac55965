//! What the server reports about itself: `GET /healthz`, the Prometheus text at `GET /metrics`
//! (rooms, participants, switches, webhooks, media sessions, DTLS, per-worker packets, bytes and
//! drops by reason; behind the API key with `--metrics-auth`) and the JSON counters at `GET /v1/stats` that the admin page turns into rates.
//!
//! `/healthz` asks every worker for a barrier ([`sync_worker`](sluice_dataplane::Dataplane::sync_worker), on the
//! blocking pool)
//! and reads the media thread's heartbeat; a worker that does not answer within [`HEALTH_WAIT`], or a
//! media thread that has ended or has not gone round its loop for a second
//! ([`MediaPump::health`](crate::media::MediaPump::health)), make it 503 `unhealthy`, the message
//! naming what failed ([`verdict`] is pure).

use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use sluice_dataplane::stats::{DropReason, StatsSnapshot};
use utoipa::ToSchema;

use crate::clock::unix_millis;
use crate::error::{ApiError, ErrorBody};
use crate::guard::{Admin, ClientIp};
use crate::media::MediaHealth;
use crate::state::AppState;

type Shared = State<Arc<AppState>>;

/// How long `/healthz` waits for each worker's answer.
pub const HEALTH_WAIT: Duration = Duration::from_secs(1);

/// Health: every dataplane worker answers within a second and the media thread runs.
#[utoipa::path(get, path = "/healthz", responses(
    (status = 200, description = "every worker answered and the media thread runs"),
    (status = 503, body = ErrorBody, description = "`unhealthy`: the message names the worker or the media thread that failed")
))]
pub async fn healthz(State(s): Shared) -> Response {
    let mut workers = Vec::new();
    if let Some(dp) = &s.dataplane {
        let mut checks = tokio::task::JoinSet::new();
        for i in 0..dp.workers() {
            let dp = dp.clone();
            checks.spawn(async move {
                let barrier = tokio::task::spawn_blocking(move || dp.sync_worker(i));
                let ok = matches!(
                    tokio::time::timeout(HEALTH_WAIT, barrier).await,
                    Ok(Ok(Ok(())))
                );
                (i, ok)
            });
        }
        workers = vec![false; dp.workers()];
        while let Some(done) = checks.join_next().await {
            if let Ok((i, ok)) = done {
                workers[i] = ok;
            }
        }
    }
    let media = s.media_pump.as_ref().map(|p| p.health(Instant::now()));
    match verdict(&workers, media) {
        Ok(body) => Json(body).into_response(),
        Err(e) => e.into_response(),
    }
}

/// The health verdict from each worker's answer (true: answered in time) and the media thread's
/// state (`None`: none was started): the 200 body, or 503 `unhealthy` naming each failure.
pub fn verdict(
    workers: &[bool],
    media: Option<MediaHealth>,
) -> Result<serde_json::Value, ApiError> {
    let mut failed: Vec<String> = workers
        .iter()
        .enumerate()
        .filter(|(_, ok)| !**ok)
        .map(|(i, _)| {
            format!(
                "worker {i} did not answer within {} ms",
                HEALTH_WAIT.as_millis()
            )
        })
        .collect();
    match media {
        Some(MediaHealth::Stopped) => failed.push("the media thread has stopped".into()),
        Some(MediaHealth::Stalled(since)) => failed.push(format!(
            "the media thread has not gone round its loop for {} ms",
            since.as_millis()
        )),
        Some(MediaHealth::Running) | None => {}
    }
    if failed.is_empty() {
        Ok(serde_json::json!({
            "status": "ok",
            "workers": workers.len(),
            "media": if media.is_some() { "ok" } else { "none" },
        }))
    } else {
        Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unhealthy",
            failed.join("; "),
        ))
    }
}

/// A per-worker counter: metric name, help text, and how to read it from a snapshot.
type Counter = (&'static str, &'static str, fn(&StatsSnapshot) -> u64);

/// Prometheus text format: per-worker packets, bytes and drops by reason; rooms; participants.
/// With `--metrics-auth`, only with the API key (as the admin calls).
#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain"),
    (status = 401, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn metrics(State(s): Shared, client: ClientIp, headers: HeaderMap) -> Response {
    if s.metrics_auth {
        if let Err(e) = s.check_admin(&headers, client.key()) {
            return e.into_response();
        }
    }
    let mut out = String::new();
    let (rooms, participants) = {
        let r = s.rooms();
        let list = r.list();
        (
            list.len(),
            list.iter().map(|r| r.participants.len()).sum::<usize>(),
        )
    };
    let _ = writeln!(out, "# HELP sluice_rooms Rooms on this server.\n# TYPE sluice_rooms gauge\nsluice_rooms {rooms}");
    let _ = writeln!(
        out,
        "# HELP sluice_participants Participants on this server.\n# TYPE sluice_participants gauge\nsluice_participants {participants}"
    );
    let _ = writeln!(
        out,
        "# HELP sluice_http_connections HTTP connections open now, signaling sockets included.\n# TYPE sluice_http_connections gauge\nsluice_http_connections {}\n# HELP sluice_http_connections_refused_total HTTP connections closed at once because --max-connections were open.\n# TYPE sluice_http_connections_refused_total counter\nsluice_http_connections_refused_total {}",
        s.http.open_now(),
        s.http.refused_total()
    );
    let throttled = s.access().throttled();
    let _ = writeln!(
        out,
        "# HELP sluice_throttled_total Requests refused by a per-client-IP throttle: guest joins answered 429, clients blocked after failed admin authentication.\n# TYPE sluice_throttled_total counter\nsluice_throttled_total{{what=\"guest_join\"}} {}\nsluice_throttled_total{{what=\"admin_auth\"}} {}",
        throttled.guest_joins,
        throttled.admin_blocks
    );
    if let Some(log) = &s.events {
        let _ = writeln!(
            out,
            "# HELP sluice_cluster_events_total Room events written to the cluster's Redis stream, or dropped (Redis away, queue full).\n# TYPE sluice_cluster_events_total counter\nsluice_cluster_events_total{{outcome=\"appended\"}} {}\nsluice_cluster_events_total{{outcome=\"dropped\"}} {}",
            log.appended(),
            log.dropped()
        );
    }
    if let Some(c) = &s.cluster_rooms {
        let st = &c.stats;
        let _ = writeln!(
            out,
            "# HELP sluice_cluster_store_up Whether this node's last refresh reached the cluster's Redis.\n# TYPE sluice_cluster_store_up gauge\nsluice_cluster_store_up {}\n# HELP sluice_cluster_nodes Live nodes in the cluster at the last refresh.\n# TYPE sluice_cluster_nodes gauge\nsluice_cluster_nodes {}\n# HELP sluice_cluster_rooms_served Rooms this node owns and serves.\n# TYPE sluice_cluster_rooms_served gauge\nsluice_cluster_rooms_served {}\n# HELP sluice_cluster_rooms_total Rooms this node stopped serving because another node took them (fenced), put back into a Redis that had lost them (restored), or moved to another node (moved).\n# TYPE sluice_cluster_rooms_total counter\nsluice_cluster_rooms_total{{event=\"fenced\"}} {}\nsluice_cluster_rooms_total{{event=\"restored\"}} {}\nsluice_cluster_rooms_total{{event=\"moved\"}} {}",
            u8::from(st.store_up.load(Ordering::Relaxed)),
            st.nodes.load(Ordering::Relaxed),
            c.served().len(),
            st.fenced.load(Ordering::Relaxed),
            st.restored.load(Ordering::Relaxed),
            st.moved.load(Ordering::Relaxed),
        );
        let _ = writeln!(
            out,
            "# HELP sluice_roster_dropped_total Changes to this node's members that the other nodes of a cascaded room were not told of (the roster queue was full).\n# TYPE sluice_roster_dropped_total counter\nsluice_roster_dropped_total {}",
            s.hub.roster_dropped()
        );
    }
    let (to_sfu, to_p2p) = s.hub.switches();
    let _ = writeln!(
        out,
        "# HELP sluice_mode_switches_total Rooms switching media mode.\n# TYPE sluice_mode_switches_total counter\nsluice_mode_switches_total{{to=\"sfu\"}} {to_sfu}\nsluice_mode_switches_total{{to=\"p2p\"}} {to_p2p}"
    );
    let _ = writeln!(
        out,
        "# HELP sluice_joins_total Signaling connections accepted (members joining a room).\n# TYPE sluice_joins_total counter\nsluice_joins_total {}",
        s.hub.joins()
    );
    if let Some(w) = &s.webhooks {
        let _ = writeln!(
            out,
            "# HELP sluice_webhooks_total Webhook events per URL by outcome.\n# TYPE sluice_webhooks_total counter\nsluice_webhooks_total{{outcome=\"delivered\"}} {}\nsluice_webhooks_total{{outcome=\"failed\"}} {}\nsluice_webhooks_total{{outcome=\"dropped\"}} {}",
            w.delivered(),
            w.failed(),
            w.dropped()
        );
    }
    if let Some(m) = &s.media {
        let _ = writeln!(
            out,
            "# HELP sluice_media_sessions Participants with a media transport.\n# TYPE sluice_media_sessions gauge\nsluice_media_sessions {}",
            m.session_count()
        );
        let _ = writeln!(
            out,
            "# HELP sluice_speaking Participants speaking now.\n# TYPE sluice_speaking gauge\nsluice_speaking {}",
            m.speaking_count()
        );
        let _ = writeln!(
            out,
            "# HELP sluice_dtls_established_total DTLS-SRTP handshakes completed, by negotiated SRTP profile and DTLS version.\n# TYPE sluice_dtls_established_total counter"
        );
        for ((profile, version), n) in m.dtls_negotiated() {
            let _ = writeln!(
                out,
                "sluice_dtls_established_total{{profile=\"{profile}\",dtls=\"{version}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP sluice_dtls_failures_total DTLS handshakes that failed (wrong fingerprint, no common profile, garbage).\n# TYPE sluice_dtls_failures_total counter\nsluice_dtls_failures_total {}",
            m.dtls_failures()
        );
        write_links(&mut out, &m.link_summary());
    }
    if let Some(dp) = &s.dataplane {
        let counters: [Counter; 12] = [
            (
                "sluice_packets_in_total",
                "Datagrams received by a worker.",
                |x| x.packets_in,
            ),
            (
                "sluice_bytes_in_total",
                "Bytes received by a worker.",
                |x| x.bytes_in,
            ),
            (
                "sluice_packets_out_total",
                "Datagrams sent by a worker.",
                |x| x.packets_out,
            ),
            ("sluice_bytes_out_total", "Bytes sent by a worker.", |x| {
                x.bytes_out
            }),
            (
                "sluice_rtcp_in_total",
                "RTCP packets a worker authenticated and terminated.",
                |x| x.rtcp_in,
            ),
            (
                "sluice_rtcp_out_total",
                "RTCP datagrams (sender and receiver reports) a worker wrote.",
                |x| x.rtcp_out,
            ),
            (
                "sluice_stun_answered_total",
                "ICE connectivity checks answered by a worker.",
                |x| x.stun_answered,
            ),
            (
                "sluice_relayed_out_total",
                "Decrypted packets a worker handed to other workers hosting the room.",
                |x| x.relayed_out,
            ),
            (
                "sluice_relayed_in_total",
                "Decrypted packets a worker took from other workers.",
                |x| x.relayed_in,
            ),
            (
                "sluice_cascade_in_total",
                "Packets a worker received on relay legs from other nodes of cascaded rooms.",
                |x| x.cascade_in,
            ),
            (
                "sluice_cascade_out_total",
                "Packets a worker sent on relay legs to other nodes of cascaded rooms (speakers only).",
                |x| x.cascade_out,
            ),
            (
                "sluice_upcalls_dropped_total",
                "Worker reports lost because the control plane fell behind.",
                |x| x.upcalls_dropped,
            ),
        ];
        let snaps: Vec<_> = (0..dp.workers()).filter_map(|i| dp.stats(i)).collect();
        for (name, help, get) in counters {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (i, snap) in snaps.iter().enumerate() {
                let _ = writeln!(out, "{name}{{worker=\"{i}\"}} {}", get(snap));
            }
        }
        let _ = writeln!(
            out,
            "# HELP sluice_drops_total Datagrams (or copies) not forwarded, by reason.\n# TYPE sluice_drops_total counter"
        );
        for (i, snap) in snaps.iter().enumerate() {
            for r in DropReason::ALL {
                let _ = writeln!(
                    out,
                    "sluice_drops_total{{worker=\"{i}\",reason=\"{}\"}} {}",
                    r.name(),
                    snap.drops(r)
                );
            }
        }
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        out,
    )
        .into_response()
}

/// One worker's counters in `GET /v1/stats`.
#[derive(Debug, Serialize, ToSchema)]
pub struct WorkerCounters {
    /// Worker index.
    pub worker: usize,
    /// Datagrams received.
    pub packets_in: u64,
    /// Datagrams sent.
    pub packets_out: u64,
    /// Bytes received.
    pub bytes_in: u64,
    /// Bytes sent.
    pub bytes_out: u64,
    /// Datagrams (or copies) dropped, all reasons.
    pub drops: u64,
}

/// `GET /v1/stats` response: counters since start; rates are differences over time.
#[derive(Debug, Serialize, ToSchema)]
pub struct ServerStats {
    /// Milliseconds since the Unix epoch when the counters were read.
    pub at_ms: u64,
    /// Per dataplane worker.
    pub workers: Vec<WorkerCounters>,
    /// Members connected to signaling, all rooms.
    pub connected: u64,
    /// Participants with an SFU media transport.
    pub media_sessions: u64,
}

/// The dataplane's counters per worker (what the admin page turns into packets per second).
#[utoipa::path(get, path = "/v1/stats", responses((status = 200, body = ServerStats), (status = 401, body = ErrorBody)), security(("api_key" = [])))]
pub async fn stats(State(s): Shared, _admin: Admin) -> Result<Json<ServerStats>, ApiError> {
    let workers = s.dataplane.as_ref().map_or_else(Vec::new, |dp| {
        (0..dp.workers())
            .filter_map(|i| {
                dp.stats(i).map(|x| WorkerCounters {
                    worker: i,
                    packets_in: x.packets_in,
                    packets_out: x.packets_out,
                    bytes_in: x.bytes_in,
                    bytes_out: x.bytes_out,
                    drops: x.total_drops(),
                })
            })
            .collect()
    });
    Ok(Json(ServerStats {
        at_ms: unix_millis(SystemTime::now()),
        workers,
        connected: s.hub.connected_total() as u64,
        media_sessions: s.media.as_ref().map_or(0, |m| m.session_count() as u64),
    }))
}

/// The members' links from RTCP ([`crate::links`]): how many report, how many lose over 2 %, the
/// worst loss, and round-trip times.
fn write_links(out: &mut String, l: &crate::links::LinkSummary) {
    let _ = writeln!(
        out,
        "# HELP sluice_link_members Members whose link RTCP reported on in the last seconds, by direction (uplink: what sluice receives from them; downlink: what their receiver reports say).\n# TYPE sluice_link_members gauge\nsluice_link_members{{direction=\"uplink\"}} {}\nsluice_link_members{{direction=\"downlink\"}} {}",
        l.uplinks.0, l.downlinks.0
    );
    let _ = writeln!(
        out,
        "# HELP sluice_link_lossy_members Members losing over 2 % of their audio, by direction.\n# TYPE sluice_link_lossy_members gauge\nsluice_link_lossy_members{{direction=\"uplink\"}} {}\nsluice_link_lossy_members{{direction=\"downlink\"}} {}",
        l.uplinks.1, l.downlinks.1
    );
    let _ = writeln!(
        out,
        "# HELP sluice_link_loss_worst The worst fraction lost any member reports (0-1, mean of its reports over 5 s), by direction.\n# TYPE sluice_link_loss_worst gauge\nsluice_link_loss_worst{{direction=\"uplink\"}} {}\nsluice_link_loss_worst{{direction=\"downlink\"}} {}",
        l.worst_loss.0, l.worst_loss.1
    );
    if let Some((max, median)) = l.rtt {
        let _ = writeln!(
            out,
            "# HELP sluice_link_rtt_seconds Round-trip time between sluice and its members, from RTCP (LSR/DLSR).\n# TYPE sluice_link_rtt_seconds gauge\nsluice_link_rtt_seconds{{quantile=\"0.5\"}} {median}\nsluice_link_rtt_seconds{{quantile=\"1\"}} {max}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn healthy_when_every_worker_answers_and_the_media_thread_runs() {
        let ok = verdict(&[true, true], Some(MediaHealth::Running)).expect("healthy");
        assert_eq!(ok["status"], "ok");
        assert_eq!(ok["workers"], 2);
        assert_eq!(ok["media"], "ok");
        assert_eq!(verdict(&[], None).expect("no dataplane")["media"], "none");
    }

    #[test]
    fn unhealthy_names_each_part_that_failed() {
        let e = verdict(&[true, false, false], Some(MediaHealth::Stopped)).expect_err("unhealthy");
        assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(e.code, "unhealthy");
        assert!(
            e.message.contains("worker 1 did not answer"),
            "{}",
            e.message
        );
        assert!(e.message.contains("worker 2"), "{}", e.message);
        assert!(!e.message.contains("worker 0"), "{}", e.message);
        assert!(e.message.contains("media thread"), "{}", e.message);
        let e = verdict(&[true], Some(MediaHealth::Stopped)).expect_err("media only");
        assert_eq!(e.message, "the media thread has stopped");
        let e = verdict(
            &[true],
            Some(MediaHealth::Stalled(Duration::from_millis(1500))),
        )
        .expect_err("stuck");
        assert_eq!(
            e.message,
            "the media thread has not gone round its loop for 1500 ms"
        );
    }
}
