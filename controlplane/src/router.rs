//! The HTTP surface in one place: every route of the server (REST, signaling, pages, metrics) and
//! the OpenAPI document generated from the handlers' annotations, and the per-request limits
//! ([`with_limits`]: JSON bodies of at most [`MAX_JSON_BODY`] bytes, a request timeout), both
//! answered in the JSON error shape.

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use utoipa::OpenApi;

use crate::api::*;
use crate::cluster_api::*;
use crate::error::{ApiError, ErrorBody, ErrorDetail};
use crate::limits::{HttpLimits, MAX_JSON_BODY};
use crate::metrics::*;
use crate::mode::{MediaMode, RoomMode};
use crate::rooms::{CreateParticipant, CreateRoom, Participant, Role, Room};
use crate::state::AppState;
use crate::{signal, web};

/// The OpenAPI document of this API.
#[derive(OpenApi)]
#[openapi(
    info(title = "sluice", description = "Control-plane API of the sluice SFU"),
    paths(list_nodes, drain_node, undrain_node, create_room, list_rooms, get_room, delete_room, create_participant, guest_join, create_plain, delete_participant, mute_participant, stats, healthz, metrics),
    components(schemas(NodeList, sluice_cluster::NodeInfo, sluice_cluster::Load, sluice_cluster::NodeState, Room, RoomList, CreateRoom, CreateParticipant, GuestJoin, MuteRequest, ServerStats, WorkerCounters, MediaMode, Participant, ParticipantGrant, CreatePlain, PlainSrtp, PlainGrant, RoomMode, Role, ErrorBody, ErrorDetail)),
    modifiers(&ApiKeyScheme)
)]
pub struct ApiDoc;

struct ApiKeyScheme;

impl utoipa::Modify for ApiKeyScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        if let Some(c) = openapi.components.as_mut() {
            c.add_security_scheme(
                "api_key",
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
        }
    }
}

async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

async fn not_found() -> ApiError {
    ApiError::not_found("not_found", "no such endpoint; see GET /v1/openapi.json")
}

/// The router with every endpoint.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/rooms", post(create_room).get(list_rooms))
        .route("/v1/rooms/{room}", get(get_room).delete(delete_room))
        .route("/", get(web::index))
        .route("/admin", get(web::admin))
        .route("/v1/stats", get(stats))
        .route("/v1/nodes", get(list_nodes))
        .route(
            "/v1/nodes/{id}/drain",
            post(drain_node).delete(undrain_node),
        )
        .route("/v1/rooms/{room}/participants", post(create_participant))
        .route("/v1/rooms/{room}/join", post(guest_join))
        .route("/v1/rooms/{room}/plain", post(create_plain))
        .route(
            "/v1/rooms/{room}/participants/{id}",
            delete(delete_participant),
        )
        .route(
            "/v1/rooms/{room}/participants/{id}/mute",
            post(mute_participant),
        )
        .route("/v1/signal", get(signal::signal))
        .route("/v1/openapi.json", get(openapi_json))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this endpoint does not take that method",
            )
        })
        .with_state(state)
}

/// `router` with the per-request limits: a body over [`MAX_JSON_BODY`] bytes is refused 413
/// `body_too_large` (the JSON extractor reads no further), and a request not answered within
/// `limits.request_timeout` (a body trickling in, say) gets 408 `request_timeout`. A signaling
/// upgrade is answered at once, so the timeout never cuts a socket.
pub fn with_limits(router: Router, limits: HttpLimits) -> Router {
    let timeout = limits.request_timeout;
    router
        .layer(axum::middleware::from_fn(
            move |req: Request, next: Next| request_timeout(timeout, req, next),
        ))
        .layer(DefaultBodyLimit::max(MAX_JSON_BODY))
}

async fn request_timeout(limit: std::time::Duration, req: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(r) => r,
        Err(_) => ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            format!("the request took longer than {} ms", limit.as_millis()),
        )
        .into_response(),
    }
}
