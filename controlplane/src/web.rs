//! The web page at `GET /`: join a room by name, talk, hear the others, see who is there and who is
//! speaking. One self-contained HTML file compiled into the binary (no separate web server, no build
//! step); it uses only the public API (`POST /v1/rooms/{room}/join`, `/v1/signal`).

use axum::http::header;
use axum::response::IntoResponse;

/// The page.
pub const INDEX_HTML: &str = include_str!("../web/index.html");

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
