//! OpenSSL's DTLS retransmission timer, read through `DTLSv1_get_timeout`.
//!
//! OpenSSL keeps the handshake timer itself (1 s initial, doubling, on its own wall clock) and
//! retransmits the last flight from inside any handshake call once it has expired. The safe
//! `openssl` crate does not expose the remaining time, so this file holds the module's single
//! `unsafe` block: the `DTLSv1_get_timeout` macro, i.e. `SSL_ctrl(ssl, DTLS_CTRL_GET_TIMEOUT, 0,
//! &mut timeval)`. The crate denies `unsafe_code`; this file alone is allowed it (the crate doc says
//! so too).

#![allow(unsafe_code)]

use std::time::Duration;

use foreign_types::ForeignTypeRef;
use openssl::ssl::SslRef;

/// `DTLS_CTRL_GET_TIMEOUT` from `<openssl/ssl.h>` (stable since OpenSSL 1.0).
const DTLS_CTRL_GET_TIMEOUT: libc::c_int = 73;

/// Time left until OpenSSL retransmits its last flight; `None` when no timer is running
/// (no flight outstanding, or the handshake is over). `Some(ZERO)` when it has already expired.
pub(crate) fn remaining(ssl: &SslRef) -> Option<Duration> {
    let mut tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 0,
    };
    // SAFETY: `ssl.as_ptr()` is a live `SSL*` borrowed for the duration of the call. For
    // DTLS_CTRL_GET_TIMEOUT, `SSL_ctrl` only writes one `struct timeval` through `parg`, which points
    // at our local `tv`; it keeps no reference to it. On a non-DTLS SSL it returns 0 and writes
    // nothing.
    let r = unsafe {
        openssl_sys::SSL_ctrl(
            ssl.as_ptr(),
            DTLS_CTRL_GET_TIMEOUT,
            0,
            (&mut tv as *mut libc::timeval).cast::<libc::c_void>(),
        )
    };
    if r != 1 {
        return None;
    }
    let secs = u64::try_from(tv.tv_sec).unwrap_or(0);
    let micros = u32::try_from(tv.tv_usec).unwrap_or(0).min(999_999);
    Some(Duration::new(secs, micros * 1000))
}
