//! The webhook signature (module doc of [`super`], "The signature"): `sha256=` and the lowercase
//! hex HMAC-SHA256 of the exact body bytes, keyed with the shared secret; and the request headers
//! that carry it.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The prefix of a signature header value.
pub const SIGNATURE_PREFIX: &str = "sha256=";
/// Header naming the event (`room_started`, ...).
pub const HEADER_EVENT: &str = "x-sluice-event";
/// Header carrying the event id (`evt_...`), the same on every attempt.
pub const HEADER_DELIVERY: &str = "x-sluice-delivery";
/// Header carrying the attempt number, from 1.
pub const HEADER_ATTEMPT: &str = "x-sluice-attempt";
/// Header carrying the body's signature, `sha256=<hex>`.
pub const HEADER_SIGNATURE: &str = "x-sluice-signature";

/// `sha256=<lowercase hex of HMAC-SHA256(secret, body)>`, the value of `x-sluice-signature`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = hmac(secret);
    mac.update(body);
    format!(
        "{SIGNATURE_PREFIX}{}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// Whether `header` (an `x-sluice-signature` value, `sha256=<hex>`) signs `body` with `secret`.
/// The tags are compared in constant time; a malformed header is simply `false`.
pub fn verify(secret: &[u8], body: &[u8], header: &str) -> bool {
    let Some(hex) = header.trim().strip_prefix(SIGNATURE_PREFIX) else {
        return false;
    };
    let mut tag = [0u8; 32];
    if hex::decode_to_slice(hex, &mut tag).is_err() {
        return false;
    }
    let mut mac = hmac(secret);
    mac.update(body);
    mac.verify_slice(&tag).is_ok()
}

fn hmac(secret: &[u8]) -> HmacSha256 {
    // HMAC takes a key of any length (long keys are hashed), so this cannot fail.
    <HmacSha256 as Mac>::new_from_slice(secret).expect("HMAC accepts keys of any length")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_and_verify() {
        assert_eq!(
            sign(b"key", b"The quick brown fox jumps over the lazy dog"),
            "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
        let body = br#"{"id":"evt_1","event":"room_started","room":"a"}"#;
        let sig = sign(b"secret", body);
        assert!(verify(b"secret", body, &sig));
        assert!(verify(
            b"secret",
            body,
            &sig.to_uppercase().replace("SHA256=", "sha256=")
        ));
        assert!(!verify(
            b"secret",
            br#"{"id":"evt_1","event":"room_started","room":"b"}"#,
            &sig
        ));
        assert!(!verify(b"other", body, &sig));
        assert!(!verify(b"secret", body, &sig[SIGNATURE_PREFIX.len()..]));
        assert!(!verify(b"secret", body, &sig[..sig.len() - 2]));
        assert!(!verify(b"secret", body, "sha256=zz"));
        assert!(!verify(b"secret", body, ""));
        assert!(!verify(
            b"secret",
            body,
            &format!("sha256={}", "g".repeat(64))
        ));
    }
}
