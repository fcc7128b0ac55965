//! The web pages, compiled into the binary (no separate web server, no build step), each one
//! self-contained HTML file using only the public API:
//! - `GET /`: join a room by name, talk, hear the others, see who is there and who is speaking
//!   (`POST /v1/rooms/{room}/join`, `/v1/signal`), in P2P and SFU rooms alike;
//! - `GET /admin`: rooms, members, modes and per-worker packets per second, refreshed every second
//!   (`/v1/rooms`, `/v1/stats`). It needs the API key: the browser asks for it with HTTP Basic
//!   authentication (any user name, the key as password) and sends it along with the page's calls.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::state::AppState;

/// The page.
pub const INDEX_HTML: &str = include_str!("../web/index.html");

/// The admin page.
pub const ADMIN_HTML: &str = include_str!("../web/admin.html");

/// `GET /admin`: the page, or a Basic-authentication challenge without the API key.
pub async fn admin(State(s): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Err(e) = s.auth.check_admin(&headers) {
        let mut r = e.into_response();
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Basic realm=\"sluice admin\", charset=\"UTF-8\""),
        );
        return r;
    }
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        ADMIN_HTML,
    )
        .into_response()
}

/// `GET /`.
pub async fn index() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        INDEX_HTML,
    )
}
