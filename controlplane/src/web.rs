//! The web pages, compiled into the binary (no separate web server, no build step), each one
//! self-contained HTML file using only the public API:
//! - `GET /`: join a room by name, talk, hear the others, see who is there and who is speaking
//!   (`POST /v1/rooms/{room}/join`, `/v1/signal`), in P2P and SFU rooms alike; behind a TLS proxy
//!   (`--public-url`) it opens the socket on the public `wss://` address;
//! - `GET /admin`: rooms, members, modes and per-worker packets per second, refreshed every second
//!   (`/v1/rooms`, `/v1/stats`). It needs the API key: the browser asks for it with HTTP Basic
//!   authentication (any user name, the key as password) and sends it along with the page's calls.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::guard::ClientIp;
use crate::state::AppState;

/// The page.
pub const INDEX_HTML: &str = include_str!("../web/index.html");

/// The admin page.
pub const ADMIN_HTML: &str = include_str!("../web/admin.html");

/// `GET /admin`: the page, or a Basic-authentication challenge without the API key.
pub async fn admin(
    State(s): State<Arc<AppState>>,
    client: ClientIp,
    headers: HeaderMap,
) -> Response {
    if let Err(e) = s.check_admin(&headers, client.key()) {
        let challenge = e.status == StatusCode::UNAUTHORIZED;
        let mut r = e.into_response();
        if challenge {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Basic realm=\"sluice admin\", charset=\"UTF-8\""),
            );
        }
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

/// Where the page opens the signaling socket: `""` (the address the page was loaded from, `ws:`
/// or `wss:` as the page) unless the server has a `--public-url`, whose `wss://` base it then uses.
const SIGNAL_BASE_MARK: &str = "<meta name=\"sluice-signal-base\" content=\"\">";

/// The page as this server serves it (with its public signaling base, if any).
pub fn index_html(public_ws_base: Option<&str>) -> String {
    match public_ws_base {
        Some(base) => INDEX_HTML.replacen(
            SIGNAL_BASE_MARK,
            &format!(
                "<meta name=\"sluice-signal-base\" content=\"{}\">",
                base.replace('&', "&amp;")
                    .replace('"', "&quot;")
                    .replace('<', "&lt;")
            ),
            1,
        ),
        None => INDEX_HTML.to_string(),
    }
}

/// `GET /`.
pub async fn index(State(s): State<Arc<AppState>>) -> impl IntoResponse {
    let page = index_html(s.public_url.then_some(s.public_ws_base.as_str()));
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        page,
    )
}
