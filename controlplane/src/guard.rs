//! Request guards of the HTTP front ends: who is asking (`ClientIp`: the TCP peer's address, never
//! a header such as `X-Forwarded-For` that any client can write) and whether it holds the API key
//! (`Admin`: the credential check behind the per-client throttle on failed attempts,
//! [`crate::access`]).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;

use crate::access::ClientKey;
use crate::error::ApiError;
use crate::state::AppState;

/// The client's IP address, from the TCP connection (axum's `ConnectInfo`). A router served
/// without connect info (tests driving it directly) sees every client as `0.0.0.0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

impl ClientIp {
    /// The key the throttles and bans count this client by.
    pub fn key(self) -> ClientKey {
        ClientKey::of(self.0)
    }

    fn of(parts: &Parts) -> Self {
        Self(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip()),
        )
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self::of(parts))
    }
}

/// Proof that the request carries the API key (`Authorization: Bearer`, or HTTP Basic with the key
/// as password). A client that has sent too many wrong keys gets 429 `rate_limited` with
/// `Retry-After`, without its credential being looked at.
#[derive(Debug, Clone, Copy)]
pub struct Admin;

impl FromRequestParts<Arc<AppState>> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        s: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        s.check_admin(&parts.headers, ClientIp::of(parts).key())?;
        Ok(Admin)
    }
}
