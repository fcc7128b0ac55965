//! DTLS-SRTP server (RFC 5763, RFC 5764), sans-IO, on OpenSSL.
//!
//! sluice is ICE-lite with `a=setup:passive`, so it is always the DTLS *server*. A [`DtlsServer`] is
//! driven entirely by its owner: datagrams in ([`DtlsServer::handle_datagram`]), datagrams out
//! ([`DtlsServer::poll_transmit`]), timers ([`DtlsServer::poll_timeout`] /
//! [`DtlsServer::handle_timeout`]). OpenSSL runs over an in-memory datagram adapter (`io.rs`), as
//! str0m does with its OpenSSL backend; no sockets, no threads.
//!
//! # Protocol choices
//!
//! - DTLS 1.2 only, ECDHE-ECDSA with AES-GCM only, no session tickets, no renegotiation. OpenSSL 3.0
//!   has no DTLS 1.3: it negotiates from the ClientHello's `legacy_version` (DTLS 1.2) and ignores
//!   `supported_versions`, so a Chromium DTLS 1.3 ClientHello is answered with a 1.2 ServerHello and
//!   Chromium falls back (tested in `tests.rs` with a 1.4 KB ClientHello in two fragments).
//! - Handshake messages fragmented across datagrams are reassembled by OpenSSL.
//! - Outgoing records are packed into datagrams of at most [`DEFAULT_MTU`] bytes.
//! - The client must present a certificate (self-signed accepted) whose digest equals the
//!   `a=fingerprint` of its SDP: checked in the verify callback (so a mismatch aborts the handshake
//!   with a `bad_certificate` alert) and again after the handshake, in constant time.
//! - The SRTP profile is chosen in the server's order (the `profiles` argument). Keys come from
//!   `EXTRACTOR-dtls_srtp` (RFC 5764 §4.2): `client_key | server_key | client_salt | server_salt`.
//!   For us `inbound` is the client's write key, `outbound` ours.
//! - Retransmission: OpenSSL owns the timer (1 s, doubling, on its own clock); `poll_timeout`
//!   reports its deadline in the caller's `Instant`s, `handle_timeout` lets it retransmit.
//!
//! # Memory
//!
//! One [`DtlsContext`] (certificate, key, ciphers, profiles) is shared by every session; each
//! session holds only its `SSL` object, with a verify callback of its own (the fingerprint it
//! expects). A connected session's OpenSSL state (buffers, handshake transcript, the client's
//! certificate) is only needed to answer a retransmitted client flight (our last flight was
//! lost); once the client has been quiet on DTLS for a while ([`DtlsServer::release_when_quiet`]),
//! it is freed and the session keeps a few bytes. Records that come after are dropped: a
//! `close_notify` then goes unseen, and the session ends by signaling or ICE consent instead.
//!
//! # Invariants
//!
//! - Nothing here panics on peer data; a datagram that is not a sequence of well-framed DTLS
//!   records is rejected before it reaches OpenSSL.
//! - Keys are handed out exactly once, in [`DtlsEvent::Connected`], and only after the fingerprint
//!   matched and a profile was negotiated.

mod cert;
mod io;
mod timer;

#[cfg(test)]
mod tests;

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use openssl::error::ErrorStack;
use openssl::ssl::{
    ErrorCode, Ssl, SslContext, SslMethod, SslOptions, SslSessionCacheMode, SslStream,
    SslVerifyMode, SslVersion,
};
use sluice_dataplane::srtp::{SrtpError, SrtpKeys, SrtpProfile};

pub use cert::{DtlsCertificate, Fingerprint, FingerprintAlgorithm};
use io::DatagramIo;

/// Largest datagram we send (and the MTU given to OpenSSL for fragmenting our flights).
pub const DEFAULT_MTU: usize = 1200;

/// The cipher suites we allow: ECDHE with ECDSA certificates and AES-GCM (what Chromium, Firefox
/// and aiortc all offer).
const CIPHERS: &str = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384";

/// The RFC 5705 exporter label for DTLS-SRTP (RFC 5764 §4.2).
const SRTP_EXPORTER_LABEL: &str = "EXTRACTOR-dtls_srtp";

impl From<crate::fingerprint::FingerprintError> for DtlsError {
    fn from(e: crate::fingerprint::FingerprintError) -> Self {
        DtlsError::BadFingerprint(e.0)
    }
}

/// Errors from DTLS setup and handshakes.
#[derive(thiserror::Error, Debug)]
#[non_exhaustive]
pub enum DtlsError {
    /// OpenSSL failed outside a handshake (key generation, context setup, ...).
    #[error("OpenSSL: {0}")]
    Ssl(String),
    /// An `a=fingerprint` value that does not parse, or a digest of the wrong length.
    #[error("bad fingerprint: {0}")]
    BadFingerprint(String),
    /// The client's certificate does not hash to the fingerprint of its SDP.
    #[error("client certificate fingerprint mismatch: expected {expected}, got {got}")]
    FingerprintMismatch {
        /// The fingerprint from the client's SDP.
        expected: String,
        /// The digest of the certificate it presented.
        got: String,
    },
    /// No SRTP profile in common (or none configured).
    #[error("no SRTP protection profile in common with the client")]
    NoSrtpProfile,
    /// The handshake failed (alert received or sent, protocol error, retransmissions exhausted).
    #[error("DTLS handshake failed: {0}")]
    HandshakeFailed(String),
    /// A datagram that is not a sequence of DTLS records; it was dropped, the state is unchanged.
    #[error("malformed DTLS datagram: {0}")]
    Malformed(&'static str),
    /// The connection failed earlier or was closed by the peer; nothing more is processed.
    #[error("DTLS connection is closed")]
    Closed,
    /// The exported key material did not fit the SRTP profile (a bug, not a peer error).
    #[error("SRTP keys: {0}")]
    Srtp(#[from] SrtpError),
}

impl From<ErrorStack> for DtlsError {
    fn from(e: ErrorStack) -> Self {
        DtlsError::Ssl(e.to_string())
    }
}

/// SRTP master keys for both directions of one transport.
#[derive(Debug, Clone)]
pub struct SrtpKeyPair {
    /// The client's write keys: what the browser protects with, we unprotect with.
    pub inbound: SrtpKeys,
    /// The server's write keys: what we protect with.
    pub outbound: SrtpKeys,
}

/// What a [`DtlsServer`] reports.
#[derive(Debug, Clone)]
pub enum DtlsEvent {
    /// The handshake completed, the client's fingerprint matched and a profile was negotiated.
    Connected {
        /// The negotiated SRTP protection profile.
        profile: SrtpProfile,
        /// The SRTP master keys for the dataplane.
        keys: SrtpKeyPair,
        /// The DTLS version the handshake settled on, as OpenSSL names it (`DTLSv1.2`).
        version: &'static str,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Handshaking,
    Connected,
    /// Connected, and OpenSSL's state freed ([`DtlsServer::release_when_quiet`]): records are
    /// dropped.
    Released,
    /// Failed or closed: every further datagram is refused.
    Closed,
}

/// What every session of a server shares: the OpenSSL context with our certificate, the
/// ciphers and the SRTP profiles (in order of preference).
pub struct DtlsContext {
    ctx: SslContext,
    profiles: Vec<SrtpProfile>,
}

impl std::fmt::Debug for DtlsContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DtlsContext")
            .field("profiles", &self.profiles)
            .finish_non_exhaustive()
    }
}

/// One DTLS-SRTP server session (one client transport). See the module docs.
pub struct DtlsServer {
    /// `None` once released.
    stream: Option<SslStream<DatagramIo>>,
    state: State,
    profiles: Vec<SrtpProfile>,
    remote_fingerprint: Fingerprint,
    /// When the client last sent a DTLS datagram (or the session began).
    last_heard: Option<Instant>,
    /// Set by the verify callback when the client's certificate did not match.
    mismatch: Arc<OnceLock<Fingerprint>>,
    /// OpenSSL's retransmission deadline, in the caller's clock.
    deadline: Option<Instant>,
    /// An event produced outside `handle_datagram`, returned by its next call.
    pending: Option<DtlsEvent>,
}

impl std::fmt::Debug for DtlsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DtlsServer")
            .field("state", &self.state)
            .field("profiles", &self.profiles)
            .field(
                "remote_fingerprint",
                &format_args!("{}", self.remote_fingerprint),
            )
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

/// OpenSSL's name for a DTLS-SRTP profile (`SSL_CTX_set_tlsext_use_srtp`).
fn openssl_profile_name(p: SrtpProfile) -> &'static str {
    match p {
        SrtpProfile::Aes128CmHmacSha1_80 => "SRTP_AES128_CM_SHA1_80",
        SrtpProfile::Aes128CmHmacSha1_32 => "SRTP_AES128_CM_SHA1_32",
        SrtpProfile::AeadAes128Gcm => "SRTP_AEAD_AES_128_GCM",
        SrtpProfile::AeadAes256Gcm => "SRTP_AEAD_AES_256_GCM",
    }
}

impl DtlsContext {
    /// The context for sessions with our `cert`, offering `profiles` in order of preference (the
    /// first one the client also offers wins).
    pub fn new(cert: &DtlsCertificate, profiles: &[SrtpProfile]) -> Result<Self, DtlsError> {
        let mut uniq: Vec<SrtpProfile> = Vec::with_capacity(profiles.len());
        for &p in profiles {
            if !uniq.contains(&p) {
                uniq.push(p);
            }
        }
        if uniq.is_empty() {
            return Err(DtlsError::NoSrtpProfile);
        }
        let srtp = uniq
            .iter()
            .map(|&p| openssl_profile_name(p))
            .collect::<Vec<_>>()
            .join(":");

        let mut ctx = SslContext::builder(SslMethod::dtls())?;
        ctx.set_min_proto_version(Some(SslVersion::DTLS1_2))?;
        ctx.set_max_proto_version(Some(SslVersion::DTLS1_2))?;
        ctx.set_cipher_list(CIPHERS)?;
        ctx.set_certificate(&cert.cert)?;
        ctx.set_private_key(&cert.key)?;
        ctx.check_private_key()?;
        ctx.set_tlsext_use_srtp(&srtp)?;
        ctx.set_options(
            SslOptions::NO_QUERY_MTU
                | SslOptions::NO_TICKET
                | SslOptions::NO_RENEGOTIATION
                | SslOptions::CIPHER_SERVER_PREFERENCE,
        );
        ctx.set_session_cache_mode(SslSessionCacheMode::OFF);
        ctx.set_verify(SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT);
        Ok(DtlsContext {
            ctx: ctx.build(),
            profiles: uniq,
        })
    }
}

impl DtlsServer {
    /// A server session expecting a client whose certificate hashes to `remote_fingerprint` (from
    /// its SDP), offering `profiles` in order of preference, with a context of its own (tests;
    /// a server shares one through [`DtlsServer::with_context`]).
    pub fn new(
        cert: &DtlsCertificate,
        remote_fingerprint: Fingerprint,
        profiles: &[SrtpProfile],
    ) -> Result<Self, DtlsError> {
        Self::with_context(&DtlsContext::new(cert, profiles)?, remote_fingerprint)
    }

    /// A server session of the shared `ctx` expecting a client whose certificate hashes to
    /// `remote_fingerprint` (from its SDP).
    pub fn with_context(
        ctx: &DtlsContext,
        remote_fingerprint: Fingerprint,
    ) -> Result<Self, DtlsError> {
        let mismatch = Arc::new(OnceLock::new());
        let expected = remote_fingerprint.clone();
        let slot = Arc::clone(&mismatch);
        let mut ssl = Ssl::new(&ctx.ctx)?;
        ssl.set_verify_callback(
            SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT,
            move |_preverify, store| {
                // Self-signed is the WebRTC norm: trust comes from the SDP fingerprint, so only the
                // leaf (depth 0) is judged, by its digest.
                if store.error_depth() != 0 {
                    return true;
                }
                let Some(leaf) = store.current_cert() else {
                    return false;
                };
                match expected.matches(leaf) {
                    Ok(true) => true,
                    Ok(false) => {
                        if let Ok(got) = Fingerprint::of_certificate(expected.algorithm(), leaf) {
                            let _ = slot.set(got);
                        }
                        false
                    }
                    Err(_) => false,
                }
            },
        );
        ssl.set_accept_state();
        ssl.set_mtu(DEFAULT_MTU as u32)?;
        let stream = SslStream::new(ssl, DatagramIo::new(DEFAULT_MTU))?;
        Ok(DtlsServer {
            stream: Some(stream),
            state: State::Handshaking,
            profiles: ctx.profiles.clone(),
            remote_fingerprint,
            last_heard: None,
            mismatch,
            deadline: None,
            pending: None,
        })
    }

    /// Feeds one datagram from the client (it may hold several records, or one fragment of a
    /// handshake message). Returns `Some(DtlsEvent::Connected)` exactly once, when the handshake has
    /// completed and the client's fingerprint matched. After an error other than
    /// [`DtlsError::Malformed`] the session is dead and refuses everything with [`DtlsError::Closed`].
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        datagram: &[u8],
    ) -> Result<Option<DtlsEvent>, DtlsError> {
        if self.state == State::Closed {
            return Err(DtlsError::Closed);
        }
        check_records(datagram)?;
        self.last_heard = Some(now);
        let Some(stream) = self.stream.as_mut() else {
            return Ok(None); // released: nothing left to answer with
        };
        stream.get_mut().push_incoming(datagram);
        let r = match self.state {
            State::Handshaking => self.drive_handshake(),
            _ => self.drive_connected(),
        };
        if let Some(stream) = self.stream.as_mut() {
            stream.get_mut().clear_incoming();
        }
        self.update_deadline(now);
        match r {
            Ok(None) => Ok(self.pending.take()),
            other => other,
        }
    }

    /// The next datagram to send to the client (drain until `None` after every call in).
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.stream.as_mut()?.get_mut().pop_outgoing()
    }

    /// When [`Self::handle_timeout`] should next be called (a flight is awaiting an answer).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }

    /// Lets OpenSSL retransmit its last flight if its timer expired; then drain
    /// [`Self::poll_transmit`]. Errs (and the session dies) when OpenSSL gives up after too many
    /// retransmissions.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), DtlsError> {
        if self.state != State::Handshaking || self.deadline.is_none_or(|d| now < d) {
            return Ok(());
        }
        // OpenSSL checks its timer (and retransmits) inside any handshake call that finds no input.
        let r = self.drive_handshake();
        self.update_deadline(now);
        if let Some(ev) = r? {
            self.pending = Some(ev);
        }
        Ok(())
    }

    /// Whether the handshake completed successfully and the session is still open.
    pub fn is_connected(&self) -> bool {
        matches!(self.state, State::Connected | State::Released)
    }

    /// Frees OpenSSL's state of a connected session whose client has sent no DTLS for `quiet`
    /// (measured from its last datagram, at `now`): it has our last flight, or it would have sent
    /// its own again. Returns whether it was freed by this call.
    pub fn release_when_quiet(&mut self, now: Instant, quiet: Duration) -> bool {
        let quiet_since = self
            .last_heard
            .is_some_and(|t| now.saturating_duration_since(t) >= quiet);
        if self.state != State::Connected || !quiet_since {
            return false;
        }
        if self
            .stream
            .as_ref()
            .is_some_and(|s| s.get_ref().has_outgoing())
        {
            return false; // something not sent yet
        }
        self.stream = None;
        self.state = State::Released;
        self.deadline = None;
        true
    }

    /// Whether OpenSSL's state was freed ([`Self::release_when_quiet`]).
    pub fn is_released(&self) -> bool {
        self.state == State::Released
    }

    /// The fingerprint the client must match.
    pub fn remote_fingerprint(&self) -> &Fingerprint {
        &self.remote_fingerprint
    }

    fn update_deadline(&mut self, now: Instant) {
        self.deadline = match (self.state, &self.stream) {
            (State::Handshaking, Some(stream)) => timer::remaining(stream.ssl()).map(|d| now + d),
            _ => None,
        };
    }

    fn fail(&mut self, e: DtlsError) -> DtlsError {
        self.state = State::Closed;
        self.deadline = None;
        e
    }

    fn drive_handshake(&mut self) -> Result<Option<DtlsEvent>, DtlsError> {
        let Some(stream) = self.stream.as_mut() else {
            return Ok(None);
        };
        match stream.do_handshake() {
            Ok(()) => match self.on_handshake_done() {
                Ok(ev) => {
                    self.state = State::Connected;
                    Ok(Some(ev))
                }
                Err(e) => {
                    // Do not send our Finished: the client must not believe it is connected.
                    if let Some(stream) = self.stream.as_mut() {
                        stream.get_mut().clear_outgoing();
                    }
                    Err(self.fail(e))
                }
            },
            Err(e) if e.code() == ErrorCode::WANT_READ || e.code() == ErrorCode::WANT_WRITE => {
                Ok(None)
            }
            Err(e) => {
                // A fatal alert (if any) is already queued for the client.
                let err = match self.mismatch.get() {
                    Some(got) => DtlsError::FingerprintMismatch {
                        expected: self.remote_fingerprint.to_string(),
                        got: got.to_string(),
                    },
                    None => DtlsError::HandshakeFailed(e.to_string()),
                };
                Err(self.fail(err))
            }
        }
    }

    /// After the handshake: OpenSSL answers a retransmitted client flight with our last flight;
    /// application data (no data channels here) is read and dropped; close_notify closes.
    fn drive_connected(&mut self) -> Result<Option<DtlsEvent>, DtlsError> {
        let mut scratch = [0u8; 2048];
        let Some(stream) = self.stream.as_mut() else {
            return Ok(None);
        };
        loop {
            match stream.ssl_read(&mut scratch) {
                Ok(_) => continue,
                Err(e) if e.code() == ErrorCode::WANT_READ || e.code() == ErrorCode::WANT_WRITE => {
                    return Ok(None)
                }
                Err(e) if e.code() == ErrorCode::ZERO_RETURN => {
                    self.state = State::Closed;
                    return Ok(None);
                }
                Err(e) => return Err(self.fail(DtlsError::HandshakeFailed(e.to_string()))),
            }
        }
    }

    fn on_handshake_done(&mut self) -> Result<DtlsEvent, DtlsError> {
        let ssl = self.stream.as_ref().ok_or(DtlsError::Closed)?.ssl();
        let peer = ssl
            .peer_certificate()
            .ok_or_else(|| DtlsError::HandshakeFailed("client sent no certificate".into()))?;
        if !self.remote_fingerprint.matches(&peer)? {
            let got = Fingerprint::of_certificate(self.remote_fingerprint.algorithm(), &peer)?;
            return Err(DtlsError::FingerprintMismatch {
                expected: self.remote_fingerprint.to_string(),
                got: got.to_string(),
            });
        }
        let selected = ssl
            .selected_srtp_profile()
            .ok_or(DtlsError::NoSrtpProfile)?
            .id()
            .as_raw();
        let profile = self
            .profiles
            .iter()
            .copied()
            .find(|p| libc::c_ulong::from(p.dtls_id()) == selected)
            .ok_or(DtlsError::NoSrtpProfile)?;
        let keys = export_srtp_keys(ssl, profile)?;
        Ok(DtlsEvent::Connected {
            profile,
            keys,
            version: ssl.version_str(),
        })
    }
}

/// Exports and splits the DTLS-SRTP key material (RFC 5764 §4.2) from the server's point of view.
fn export_srtp_keys(
    ssl: &openssl::ssl::SslRef,
    profile: SrtpProfile,
) -> Result<SrtpKeyPair, DtlsError> {
    let (client, server) = export_srtp_keys_both(ssl, profile)?;
    Ok(SrtpKeyPair {
        inbound: client,
        outbound: server,
    })
}

/// `(client_write, server_write)` SRTP master keys from `EXTRACTOR-dtls_srtp`.
pub(crate) fn export_srtp_keys_both(
    ssl: &openssl::ssl::SslRef,
    profile: SrtpProfile,
) -> Result<(SrtpKeys, SrtpKeys), DtlsError> {
    let k = profile.master_key_len();
    let s = profile.master_salt_len();
    // Zeroized when dropped, on every path out of here.
    let mut m = zeroize::Zeroizing::new(vec![0u8; 2 * (k + s)]);
    ssl.export_keying_material(&mut m, SRTP_EXPORTER_LABEL, None)?;
    let (client_key, rest) = m.split_at(k);
    let (server_key, rest) = rest.split_at(k);
    let (client_salt, server_salt) = rest.split_at(s);
    let client = SrtpKeys::new(profile, client_key, client_salt)?;
    let server = SrtpKeys::new(profile, server_key, server_salt)?;
    Ok((client, server))
}

/// DTLS record header length (RFC 6347 §4.1).
const RECORD_HEADER_LEN: usize = 13;

/// Accepts a datagram only if it is one or more complete DTLS 1.0/1.2 records: content type 20..=25,
/// major version 0xfe (DTLS), and lengths that exactly tile the datagram.
pub fn check_records(mut d: &[u8]) -> Result<(), DtlsError> {
    if d.is_empty() {
        return Err(DtlsError::Malformed("empty datagram"));
    }
    while !d.is_empty() {
        let Some(h) = d.get(..RECORD_HEADER_LEN) else {
            return Err(DtlsError::Malformed("truncated record header"));
        };
        if !(20..=25).contains(&h[0]) {
            return Err(DtlsError::Malformed("unknown record content type"));
        }
        if h[1] != 0xfe {
            return Err(DtlsError::Malformed("not a DTLS record version"));
        }
        let len = usize::from(u16::from_be_bytes([h[11], h[12]]));
        d = d
            .get(RECORD_HEADER_LEN + len..)
            .ok_or(DtlsError::Malformed("record longer than the datagram"))?;
    }
    Ok(())
}

/// The header of a handshake message fragment (RFC 6347 §4.2.2), as carried by a datagram's first
/// record: for logs that show how a client's ClientHello arrived (Chromium with post-quantum key
/// shares sends a 1.4 KB ClientHello in two datagrams).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandshakeFragment {
    /// Handshake message type (1: ClientHello).
    pub msg_type: u8,
    /// Length of the whole message.
    pub length: u32,
    /// Where this fragment starts in the message.
    pub offset: u32,
    /// Length of this fragment.
    pub fragment_length: u32,
}

impl HandshakeFragment {
    /// True when this is only part of its message.
    pub fn is_partial(&self) -> bool {
        self.fragment_length < self.length
    }
}

/// The first handshake fragment of `datagram`, when its first record is an epoch-0 handshake record.
pub fn first_handshake_fragment(datagram: &[u8]) -> Option<HandshakeFragment> {
    let header = datagram.get(..RECORD_HEADER_LEN)?;
    if header[0] != 22 || header[3..5] != [0, 0] {
        return None;
    }
    let hs = datagram.get(RECORD_HEADER_LEN..RECORD_HEADER_LEN + 12)?;
    let u24 = |b: &[u8]| u32::from_be_bytes([0, b[0], b[1], b[2]]);
    Some(HandshakeFragment {
        msg_type: hs[0],
        length: u24(&hs[1..4]),
        offset: u24(&hs[6..9]),
        fragment_length: u24(&hs[9..12]),
    })
}
