//! Who may call what: the admin API key (a bearer token on REST calls) and participant tokens
//! (HS256 JWTs naming room, participant and role, with an expiry) checked on the signaling socket.

use std::time::{Duration, SystemTime};

use axum::http::HeaderMap;
use base64::Engine;
use jsonwebtoken::{
    decode, encode, errors::ErrorKind, Algorithm, DecodingKey, EncodingKey, Header, Validation,
};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::clock::unix_secs;
use crate::error::ApiError;
use crate::rooms::Role;

/// How long a participant token is valid by default.
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(6 * 3600);

/// Shortest admin API key sluice accepts (a key anyone can guess is no key).
pub const MIN_API_KEY_LEN: usize = 32;

/// A fresh random secret, URL-safe base64 of 32 random bytes: 43 characters (for API keys and
/// token secrets).
pub fn random_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Why a configured API key is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiKeyError {
    /// Fewer than [`MIN_API_KEY_LEN`] characters.
    #[error("the API key has {0} characters; it needs at least {MIN_API_KEY_LEN} (generate one with `openssl rand -base64 32`)")]
    TooShort(usize),
    /// Characters an `Authorization` header cannot carry as they are.
    #[error("the API key must be printable ASCII without spaces")]
    NotPrintable,
}

/// Checks a configured API key: at least [`MIN_API_KEY_LEN`] printable ASCII characters.
pub fn validate_api_key(key: &str) -> Result<(), ApiKeyError> {
    if !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiKeyError::NotPrintable);
    }
    if key.len() < MIN_API_KEY_LEN {
        return Err(ApiKeyError::TooShort(key.len()));
    }
    Ok(())
}

/// What a participant token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Room name.
    pub room: String,
    /// Participant id.
    pub sub: String,
    /// Display name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
}

/// Keys of this server.
#[derive(Clone)]
pub struct Auth {
    api_key: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    ttl: Duration,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl Auth {
    /// `api_key` guards admin calls; `token_secret` signs participant tokens.
    pub fn new(api_key: &str, token_secret: &[u8], ttl: Duration) -> Self {
        Self {
            api_key: api_key.to_string(),
            encoding: EncodingKey::from_secret(token_secret),
            decoding: DecodingKey::from_secret(token_secret),
            ttl,
        }
    }

    /// Checks `Authorization: Bearer <api key>`, or HTTP Basic with the API key as the password (any
    /// user name): what a browser sends for the admin page and its calls.
    pub fn check_admin(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let Some(value) = headers.get(axum::http::header::AUTHORIZATION) else {
            return Err(ApiError::unauthorized(
                "missing_api_key",
                "this call needs `Authorization: Bearer <api key>`",
            ));
        };
        let value = value.to_str().unwrap_or("");
        let presented = match (value.strip_prefix("Bearer "), value.strip_prefix("Basic ")) {
            (Some(key), _) => key.trim().as_bytes().to_vec(),
            (None, Some(b64)) => basic_password(b64.trim()).unwrap_or_default(),
            (None, None) => Vec::new(),
        };
        // Constant time in the content (the length may leak, as with any such comparison).
        if bool::from(presented.as_slice().ct_eq(self.api_key.as_bytes())) {
            Ok(())
        } else {
            Err(ApiError::unauthorized(
                "bad_api_key",
                "the API key is not valid",
            ))
        }
    }

    /// Signs a token for a participant, issued at `now` (it expires `ttl` later).
    pub fn issue(
        &self,
        room: &str,
        participant: &str,
        name: &str,
        role: Role,
        now: SystemTime,
    ) -> Result<String, ApiError> {
        let exp = now.checked_add(self.ttl).map_or(u64::MAX, unix_secs);
        let claims = Claims {
            room: room.into(),
            sub: participant.into(),
            name: name.into(),
            role,
            exp,
        };
        encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| ApiError::internal(format!("signing a token: {e}")))
    }

    /// Verifies a participant token at `now`: signature, algorithm and expiry (no leeway: a token
    /// is valid through the second of its `exp`).
    pub fn verify(&self, token: &str, now: SystemTime) -> Result<Claims, ApiError> {
        let mut v = Validation::new(Algorithm::HS256);
        // The expiry is checked below against the caller's `now`, not the library's clock.
        v.validate_exp = false;
        v.leeway = 0;
        v.set_required_spec_claims(&["exp", "sub"]);
        let claims = decode::<Claims>(token, &self.decoding, &v)
            .map(|d| d.claims)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => expired(),
                _ => ApiError::unauthorized(
                    "bad_token",
                    format!("the participant token is not valid: {e}"),
                ),
            })?;
        if claims.exp < unix_secs(now) {
            return Err(expired());
        }
        Ok(claims)
    }
}

fn expired() -> ApiError {
    ApiError::unauthorized("expired_token", "the participant token has expired")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_fail_clearly() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let auth = Auth::new("key", b"secret", DEFAULT_TOKEN_TTL);
        let t = auth
            .issue("room", "p_1", "alice", Role::Listener, now)
            .unwrap();
        let c = auth.verify(&t, now).unwrap();
        assert_eq!(
            (c.room.as_str(), c.sub.as_str(), c.role),
            ("room", "p_1", Role::Listener)
        );
        let other = Auth::new("key", b"other secret", DEFAULT_TOKEN_TTL);
        assert_eq!(other.verify(&t, now).unwrap_err().code, "bad_token");
        assert_eq!(auth.verify("garbage", now).unwrap_err().code, "bad_token");
        let expired = Auth::new("key", b"secret", Duration::ZERO);
        let t = expired
            .issue("room", "p_1", "alice", Role::Speaker, now)
            .unwrap();
        assert!(auth.verify(&t, now).is_ok(), "valid through its second");
        let later = now + Duration::from_millis(1100);
        assert_eq!(auth.verify(&t, later).unwrap_err().code, "expired_token");
        // The library's own clock is not consulted: a token from the past is expired at its now.
        let long_ago = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let old = auth
            .issue("room", "p_1", "alice", Role::Speaker, long_ago)
            .unwrap();
        assert!(auth.verify(&old, long_ago).is_ok());
    }

    #[test]
    fn short_or_unprintable_api_keys_are_refused_and_generated_ones_are_long() {
        assert_eq!(
            validate_api_key("test-admin-key"),
            Err(ApiKeyError::TooShort(14))
        );
        assert_eq!(
            validate_api_key(&"k".repeat(31)),
            Err(ApiKeyError::TooShort(31))
        );
        assert_eq!(validate_api_key(&"k".repeat(32)), Ok(()));
        assert_eq!(
            validate_api_key(&format!("{} x", "k".repeat(40))),
            Err(ApiKeyError::NotPrintable)
        );
        let generated = random_secret();
        assert_eq!(generated.len(), 43);
        assert_eq!(validate_api_key(&generated), Ok(()));
    }

    #[test]
    fn admin_calls_need_the_key() {
        let auth = Auth::new("k3y", b"s", DEFAULT_TOKEN_TTL);
        let mut h = HeaderMap::new();
        assert_eq!(auth.check_admin(&h).unwrap_err().code, "missing_api_key");
        h.insert("authorization", "Bearer nope".parse().unwrap());
        assert_eq!(auth.check_admin(&h).unwrap_err().code, "bad_api_key");
        h.insert("authorization", "Bearer k3y".parse().unwrap());
        assert!(auth.check_admin(&h).is_ok());
    }
}

/// The password of an HTTP Basic credential (`base64(user:password)`).
fn basic_password(b64: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let raw = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    let colon = raw.iter().position(|&b| b == b':')?;
    Some(raw[colon + 1..].to_vec())
}

#[cfg(test)]
mod basic_tests {
    use super::*;

    #[test]
    fn basic_credentials_carry_the_api_key_as_password() {
        use base64::Engine as _;
        let auth = Auth::new("k3y", b"secret", DEFAULT_TOKEN_TTL);
        let mut h = HeaderMap::new();
        let basic = |v: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(v)
            )
            .parse()
            .unwrap()
        };
        h.insert(axum::http::header::AUTHORIZATION, basic("admin:k3y"));
        assert!(auth.check_admin(&h).is_ok());
        h.insert(axum::http::header::AUTHORIZATION, basic("k3y:nope"));
        assert!(auth.check_admin(&h).is_err());
        h.insert(axum::http::header::AUTHORIZATION, basic("no colon"));
        assert!(auth.check_admin(&h).is_err());
        h.insert(
            axum::http::header::AUTHORIZATION,
            "Basic !!!".parse().unwrap(),
        );
        assert!(auth.check_admin(&h).is_err());
    }
}
