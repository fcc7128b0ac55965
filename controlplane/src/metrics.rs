//! What the server reports about itself: `GET /healthz`, the Prometheus text at `GET /metrics`
//! (rooms, participants, switches, webhooks, media sessions, DTLS, per-worker packets, bytes and
//! drops by reason) and the JSON counters at `GET /v1/stats` that the admin page turns into rates.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use sluice_dataplane::stats::{DropReason, StatsSnapshot};
use utoipa::ToSchema;

use crate::clock::unix_millis;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

type Shared = State<Arc<AppState>>;

/// Liveness.
#[utoipa::path(get, path = "/healthz", responses((status = 200, description = "the server is up")))]
pub async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

/// A per-worker counter: metric name, help text, and how to read it from a snapshot.
type Counter = (&'static str, &'static str, fn(&StatsSnapshot) -> u64);

/// Prometheus text format: per-worker packets, bytes and drops by reason; rooms; participants.
#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain")))]
pub async fn metrics(State(s): Shared) -> Response {
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
    }
    if let Some(dp) = &s.dataplane {
        let counters: [Counter; 9] = [
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
pub async fn stats(State(s): Shared, headers: HeaderMap) -> Result<Json<ServerStats>, ApiError> {
    s.auth.check_admin(&headers)?;
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
