//! The ICE-lite responder: a pure, sans-IO answer to STUN Binding requests (connectivity and consent
//! checks) for one participant's transport.
//!
//! The server is an ICE-lite agent (RFC 8445 §2.5, §7.3): it has one host candidate per participant,
//! is always controlled, never sends checks, and only answers the checks a full agent (a browser,
//! aiortc) sends to it. The worker calls, for every datagram the RFC 7983 demux classed as STUN:
//!
//! 1. [`request_username`] when the source address is not latched yet, to find which transport's
//!    [`IceCredentials`] the request claims (the server's ufrag comes first in USERNAME);
//! 2. [`check_binding_request`] with those credentials;
//! 3. [`write_binding_success`] into an egress buffer, and [`Consent::refresh`] (RFC 7675) for the
//!    transport. [`Consent::expired`] tells when to report consent lost.
//!
//! # What is checked, in order ([`check_binding_request`])
//!
//! - STUN framing (RFC 8489 §5, via [`StunMessage::parse`]) else [`IceError::NotStun`]; message type
//!   Binding request (0x0001) else [`IceError::NotBindingRequest`] (indications and responses are
//!   not for a lite agent to answer).
//! - Attribute layout (RFC 8489 §14): the attributes tile the message exactly, FINGERPRINT (if any)
//!   is the last one, MESSAGE-INTEGRITY is 20 bytes, FINGERPRINT 4; else [`IceError::Malformed`].
//! - FINGERPRINT (RFC 8489 §14.7): CRC-32 of the message up to the attribute, XOR `0x5354554e`.
//!   **Required**: RFC 8445 §7.1 says agents MUST include it in checks and every client we serve
//!   (Chromium, Firefox, aiortc) does, so a message without it is [`IceError::MissingFingerprint`]:
//!   it is the cheap filter that tells real checks from stray bytes before any HMAC is computed.
//! - MESSAGE-INTEGRITY present else [`IceError::MissingIntegrity`]; USERNAME (the first one before
//!   MESSAGE-INTEGRITY) present else [`IceError::MissingUsername`]; USERNAME equal to
//!   `"<local_ufrag>:<remote_ufrag>"` (RFC 8445 §7.2.2, server's ufrag first) else
//!   [`IceError::UnknownUsername`].
//! - MESSAGE-INTEGRITY (RFC 8489 §14.5): HMAC-SHA1 keyed with the local password (short-term
//!   credentials, §9.1) over the message up to the attribute, with the header length field set as if
//!   the message ended right after MESSAGE-INTEGRITY; compared in constant time (`subtle`), else
//!   [`IceError::BadIntegrity`].
//! - Only attributes *before* MESSAGE-INTEGRITY are believed (RFC 8489 §14.5: anything after it but
//!   FINGERPRINT is ignored), so an unauthenticated USE-CANDIDATE appended by an attacker is not seen.
//!   PRIORITY must be 4 bytes, ICE-CONTROLLING/ICE-CONTROLLED 8, USE-CANDIDATE 0, else
//!   [`IceError::Malformed`]. The first occurrence of an attribute wins.
//! - Unknown attributes, comprehension-required or not, are ignored (no 420 response): Chromium adds
//!   GOOG-* attributes, and a Binding response means the same whatever else the request carried.
//!
//! # Errors to the peer
//!
//! The recommended policy is to **drop and count** every failed check (as pion does): answering an
//! unauthenticated source helps nobody and reflects traffic. [`IceError::error_code`] says which
//! failures RFC 8489 §6.3 would answer with 400 / 401, and [`write_binding_error`] writes such a
//! response (ERROR-CODE + FINGERPRINT, no MESSAGE-INTEGRITY, §9.1.3.2) if the worker wants to.
//!
//! # Invariants
//!
//! - Pure: no I/O, no clock (time is passed in), no `unsafe`.
//! - No heap allocation in [`request_username`], [`check_binding_request`], [`write_binding_success`],
//!   [`write_binding_error`] or [`verify_message`]; only [`IceCredentials`] construction allocates.
//!   The HMAC key schedule (two SHA-1 blocks) is computed per call, on the stack.
//! - Never panics on peer bytes: every read is a checked `get`; the robustness test feeds 50k random
//!   and mutated datagrams through every entry point.
//! - A response written by [`write_binding_success`] always verifies with [`verify_message`] and the
//!   same password, and its XOR-MAPPED-ADDRESS decodes (with [`xor_mapped_address`]) to the source
//!   address, IPv4-mapped IPv6 sources (dual-stack sockets) being answered as IPv4.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sha1::Sha1;
use subtle::ConstantTimeEq;

use crate::packet::stun::{attr, StunMessage, STUN_HEADER_LEN, STUN_MAGIC_COOKIE};

type HmacSha1 = Hmac<Sha1>;

/// Consent is lost this long after the last valid check (RFC 7675 §5.1).
pub const CONSENT_TIMEOUT: Duration = Duration::from_secs(30);
/// XORed into the CRC-32 of a message to form FINGERPRINT (RFC 8489 §14.7).
pub const FINGERPRINT_XOR: u32 = 0x5354_554E;
/// Largest response [`write_binding_success`] writes (IPv6 XOR-MAPPED-ADDRESS): size egress buffers
/// at least this large.
pub const BINDING_SUCCESS_MAX_LEN: usize = STUN_HEADER_LEN + 4 + 20 + 4 + MI_LEN + 4 + 4;

const BINDING_REQUEST: u16 = 0x0001;
const BINDING_SUCCESS: u16 = 0x0101;
const BINDING_ERROR: u16 = 0x0111;
/// HMAC-SHA1 output length (MESSAGE-INTEGRITY value).
const MI_LEN: usize = 20;
/// Length of a whole MESSAGE-INTEGRITY attribute (header + value).
const MI_ATTR_LEN: usize = 4 + MI_LEN;
/// Length of a whole FINGERPRINT attribute.
const FP_ATTR_LEN: usize = 8;
const FAMILY_IPV4: u8 = 0x01;
const FAMILY_IPV6: u8 = 0x02;

/// Credentials of one participant's ICE session (the server is ICE-lite: it only answers checks).
#[derive(Clone, PartialEq, Eq)]
pub struct IceCredentials {
    /// The server's `ice-ufrag` for this participant (from our answer).
    pub local_ufrag: String,
    /// The server's `ice-pwd`: keys MESSAGE-INTEGRITY both ways.
    pub local_pwd: String,
    /// The client's `ice-ufrag` (from its offer).
    pub remote_ufrag: String,
    /// The client's `ice-pwd` (from its offer): keys the return-routability checks the server
    /// sends before it moves media to a new address, and the client's answers to them. Empty:
    /// unknown, and then the transport never moves once latched.
    pub remote_pwd: String,
}

impl IceCredentials {
    /// Bundles the three strings.
    pub fn new(
        local_ufrag: impl Into<String>,
        local_pwd: impl Into<String>,
        remote_ufrag: impl Into<String>,
    ) -> Self {
        Self {
            local_ufrag: local_ufrag.into(),
            local_pwd: local_pwd.into(),
            remote_ufrag: remote_ufrag.into(),
            remote_pwd: String::new(),
        }
    }

    /// The same credentials with the client's `ice-pwd` (from its offer), which return-routability
    /// checks need.
    pub fn with_remote_pwd(mut self, remote_pwd: impl Into<String>) -> Self {
        self.remote_pwd = remote_pwd.into();
        self
    }

    /// True if `username` is exactly `"<local_ufrag>:<remote_ufrag>"`. No allocation.
    pub fn matches_username(&self, username: &[u8]) -> bool {
        let (l, r) = (self.local_ufrag.as_bytes(), self.remote_ufrag.as_bytes());
        match username.split_at_checked(l.len()) {
            Some((head, rest)) => head == l && rest.split_first() == Some((&b':', r)),
            None => false,
        }
    }
}

impl fmt::Debug for IceCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IceCredentials")
            .field("local_ufrag", &self.local_ufrag)
            .field("local_pwd", &"<redacted>")
            .field("remote_ufrag", &self.remote_ufrag)
            .field("remote_pwd", &"<redacted>")
            .finish()
    }
}

/// Why a STUN datagram was not answered with a Binding success response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IceError {
    /// Not STUN framing (RFC 8489 §5): too short, bad leading bits or cookie, bad length.
    #[error("not a STUN message")]
    NotStun,
    /// STUN, but not a Binding request (an indication or a response).
    #[error("not a STUN Binding request")]
    NotBindingRequest,
    /// No USERNAME attribute before MESSAGE-INTEGRITY.
    #[error("Binding request without USERNAME")]
    MissingUsername,
    /// USERNAME is not `"<local_ufrag>:<remote_ufrag>"` of these credentials.
    #[error("USERNAME does not match the ICE credentials")]
    UnknownUsername,
    /// No MESSAGE-INTEGRITY attribute.
    #[error("Binding request without MESSAGE-INTEGRITY")]
    MissingIntegrity,
    /// MESSAGE-INTEGRITY does not verify with the local password.
    #[error("MESSAGE-INTEGRITY does not verify")]
    BadIntegrity,
    /// No FINGERPRINT attribute (required for ICE, RFC 8445 §7.1).
    #[error("STUN message without FINGERPRINT")]
    MissingFingerprint,
    /// FINGERPRINT does not match the CRC-32 of the message.
    #[error("FINGERPRINT does not match")]
    BadFingerprint,
    /// Attributes do not tile the message, FINGERPRINT not last, or an attribute of the wrong size.
    #[error("malformed STUN attributes")]
    Malformed,
    /// The output buffer cannot hold the response.
    #[error("output buffer too small")]
    BufferTooSmall,
}

impl IceError {
    /// The STUN error code RFC 8489 §6.3 / §9.1.3 would answer this failure with (400 Bad Request,
    /// 401 Unauthorized), or `None` where the datagram must be dropped silently (not a request, or
    /// not STUN at all: a bad FINGERPRINT means the bytes are not ours to answer, RFC 8489 §7.3).
    pub fn error_code(self) -> Option<u16> {
        match self {
            Self::MissingUsername | Self::MissingIntegrity | Self::Malformed => Some(400),
            Self::UnknownUsername | Self::BadIntegrity => Some(401),
            Self::NotStun
            | Self::NotBindingRequest
            | Self::MissingFingerprint
            | Self::BadFingerprint
            | Self::BufferTooSmall => None,
        }
    }
}

/// What a valid binding request says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BindingRequest {
    /// Echoed in the response.
    pub transaction_id: [u8; 12],
    /// USE-CANDIDATE present (authenticated): the controlling agent nominates this pair.
    pub use_candidate: bool,
    /// PRIORITY (RFC 8445 §7.1.1), if present.
    pub priority: Option<u32>,
    /// ICE-CONTROLLING present: the peer acts as controlling agent (the lite server never is).
    pub controlling: bool,
}

/// Where MESSAGE-INTEGRITY and FINGERPRINT sit in a message whose attributes tile it exactly.
#[derive(Debug, Clone, Copy)]
struct Layout {
    /// Offset of the first MESSAGE-INTEGRITY attribute's type field.
    integrity: Option<usize>,
    /// Offset of the FINGERPRINT attribute (always the last attribute).
    fingerprint: Option<usize>,
}

/// Walks the attributes: they must end exactly at the message end, FINGERPRINT last.
fn layout(msg: &StunMessage<'_>) -> Result<Layout, IceError> {
    let mut end = STUN_HEADER_LEN;
    let mut out = Layout {
        integrity: None,
        fingerprint: None,
    };
    for a in msg.attributes() {
        if out.fingerprint.is_some() {
            return Err(IceError::Malformed);
        }
        match a.typ {
            attr::MESSAGE_INTEGRITY if out.integrity.is_none() => {
                if a.value.len() != MI_LEN {
                    return Err(IceError::Malformed);
                }
                out.integrity = Some(a.offset);
            }
            attr::FINGERPRINT => {
                if a.value.len() != 4 {
                    return Err(IceError::Malformed);
                }
                out.fingerprint = Some(a.offset);
            }
            _ => {}
        }
        end = a.offset + 4 + a.value.len().div_ceil(4) * 4;
    }
    if end != msg.bytes().len() {
        return Err(IceError::Malformed);
    }
    Ok(out)
}

/// Checks the FINGERPRINT at `offset` (the last attribute, so the header length already covers it).
fn verify_fingerprint(msg: &StunMessage<'_>, offset: usize) -> Result<(), IceError> {
    let b = msg.bytes();
    let covered = b.get(..offset).ok_or(IceError::Malformed)?;
    let value = b
        .get(offset + 4..offset + 8)
        .and_then(|v| <[u8; 4]>::try_from(v).ok())
        .ok_or(IceError::Malformed)?;
    if crc32(covered) ^ FINGERPRINT_XOR == u32::from_be_bytes(value) {
        Ok(())
    } else {
        Err(IceError::BadFingerprint)
    }
}

/// HMAC-SHA1 of `bytes[..mi_offset]` with the header length field replaced by the length the
/// message has when it ends right after MESSAGE-INTEGRITY (RFC 8489 §14.5).
fn integrity_tag(bytes: &[u8], mi_offset: usize, key: &[u8]) -> Result<[u8; MI_LEN], IceError> {
    let adjusted = u16::try_from(mi_offset + MI_ATTR_LEN - STUN_HEADER_LEN)
        .map_err(|_| IceError::Malformed)?;
    let type_field = bytes.get(..2).ok_or(IceError::Malformed)?;
    let rest = bytes.get(4..mi_offset).ok_or(IceError::Malformed)?;
    let mut mac = HmacSha1::new_from_slice(key).map_err(|_| IceError::BadIntegrity)?;
    mac.update(type_field);
    mac.update(&adjusted.to_be_bytes());
    mac.update(rest);
    Ok(mac.finalize().into_bytes().into())
}

/// Verifies the MESSAGE-INTEGRITY at `offset` in constant time.
fn verify_integrity(msg: &StunMessage<'_>, offset: usize, key: &[u8]) -> Result<(), IceError> {
    let b = msg.bytes();
    let expected = b
        .get(offset + 4..offset + MI_ATTR_LEN)
        .ok_or(IceError::Malformed)?;
    let tag = integrity_tag(b, offset, key)?;
    if bool::from(tag.as_slice().ct_eq(expected)) {
        Ok(())
    } else {
        Err(IceError::BadIntegrity)
    }
}

/// Verifies any STUN message (request or response) the ICE way: attributes well formed, FINGERPRINT
/// present and valid, MESSAGE-INTEGRITY present and valid with `password` (short-term credentials).
/// Returns the view. Useful to clients and tests checking the server's responses. No allocation.
pub fn verify_message<'a>(buf: &'a [u8], password: &[u8]) -> Result<StunMessage<'a>, IceError> {
    let msg = StunMessage::parse(buf).map_err(|_| IceError::NotStun)?;
    let lay = layout(&msg)?;
    verify_fingerprint(&msg, lay.fingerprint.ok_or(IceError::MissingFingerprint)?)?;
    verify_integrity(
        &msg,
        lay.integrity.ok_or(IceError::MissingIntegrity)?,
        password,
    )?;
    Ok(msg)
}

/// The USERNAME of a binding request (`"<local_ufrag>:<remote_ufrag>"` from the server's view: the
/// server's ufrag first), without checking integrity: lets the worker find which transport's
/// credentials to check against when the source address is not latched yet. Zero-copy. `None` if
/// `buf` is not a STUN Binding request, has no USERNAME, or USERNAME is not UTF-8.
pub fn request_username(buf: &[u8]) -> Option<&str> {
    let msg = StunMessage::parse(buf).ok()?;
    if msg.message_type() != BINDING_REQUEST {
        return None;
    }
    std::str::from_utf8(msg.attribute(attr::USERNAME)?).ok()
}

/// Splits a USERNAME into `(local_ufrag, remote_ufrag)` at the first `:` (ufrags are ice-chars,
/// RFC 8839 §5.4, which exclude `:`).
pub fn split_username(username: &str) -> Option<(&str, &str)> {
    username.split_once(':')
}

/// Checks a binding request against `creds` (see the module docs for the order of checks) and
/// returns what it says. No allocation; never panics.
pub fn check_binding_request(
    buf: &[u8],
    creds: &IceCredentials,
) -> Result<BindingRequest, IceError> {
    let msg = StunMessage::parse(buf).map_err(|_| IceError::NotStun)?;
    if msg.message_type() != BINDING_REQUEST {
        return Err(IceError::NotBindingRequest);
    }
    let lay = layout(&msg)?;
    verify_fingerprint(&msg, lay.fingerprint.ok_or(IceError::MissingFingerprint)?)?;
    let mi = lay.integrity.ok_or(IceError::MissingIntegrity)?;

    // Only attributes before MESSAGE-INTEGRITY are authenticated; the first occurrence wins.
    let mut username = None;
    let mut priority = None;
    let mut use_candidate = None;
    let mut controlling = None;
    let mut controlled = None;
    for a in msg.attributes().take_while(|a| a.offset < mi) {
        match a.typ {
            attr::USERNAME => {
                username.get_or_insert(a.value);
            }
            attr::PRIORITY => {
                let v: [u8; 4] = a.value.try_into().map_err(|_| IceError::Malformed)?;
                priority.get_or_insert(u32::from_be_bytes(v));
            }
            attr::USE_CANDIDATE => {
                if !a.value.is_empty() {
                    return Err(IceError::Malformed);
                }
                use_candidate.get_or_insert(());
            }
            attr::ICE_CONTROLLING | attr::ICE_CONTROLLED => {
                let v: [u8; 8] = a.value.try_into().map_err(|_| IceError::Malformed)?;
                if a.typ == attr::ICE_CONTROLLING {
                    controlling.get_or_insert(v);
                } else {
                    controlled.get_or_insert(v);
                }
            }
            _ => {}
        }
    }
    let username = username.ok_or(IceError::MissingUsername)?;
    if !creds.matches_username(username) {
        return Err(IceError::UnknownUsername);
    }
    verify_integrity(&msg, mi, creds.local_pwd.as_bytes())?;
    Ok(BindingRequest {
        transaction_id: *msg.transaction_id(),
        use_candidate: use_candidate.is_some(),
        priority,
        controlling: controlling.is_some(),
    })
}

/// A bounds-checked cursor over an output buffer.
struct Writer<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl Writer<'_> {
    fn put(&mut self, bytes: &[u8]) -> Result<(), IceError> {
        let end = self.pos + bytes.len();
        self.buf
            .get_mut(self.pos..end)
            .ok_or(IceError::BufferTooSmall)?
            .copy_from_slice(bytes);
        self.pos = end;
        Ok(())
    }

    /// Writes the header's length field (bytes 2..4).
    fn set_length(&mut self, length: usize) -> Result<(), IceError> {
        let l = u16::try_from(length).map_err(|_| IceError::BufferTooSmall)?;
        self.buf
            .get_mut(2..4)
            .ok_or(IceError::BufferTooSmall)?
            .copy_from_slice(&l.to_be_bytes());
        Ok(())
    }

    /// Appends MESSAGE-INTEGRITY keyed with `key`, then FINGERPRINT; returns the message length.
    fn sign(mut self, key: &[u8]) -> Result<usize, IceError> {
        let mi = self.pos;
        if self.buf.len() < mi + MI_ATTR_LEN {
            return Err(IceError::BufferTooSmall);
        }
        let tag = integrity_tag(self.buf, mi, key)?;
        self.put(&attr::MESSAGE_INTEGRITY.to_be_bytes())?;
        self.put(&(MI_LEN as u16).to_be_bytes())?;
        self.put(&tag)?;
        self.fingerprint()
    }

    fn header(&mut self, typ: u16, transaction_id: &[u8; 12]) -> Result<(), IceError> {
        self.put(&typ.to_be_bytes())?;
        self.put(&[0, 0])?;
        self.put(&STUN_MAGIC_COOKIE.to_be_bytes())?;
        self.put(transaction_id)
    }

    /// Appends FINGERPRINT after fixing the header length to include it. Returns the total length.
    fn fingerprint(mut self) -> Result<usize, IceError> {
        self.set_length(self.pos + FP_ATTR_LEN - STUN_HEADER_LEN)?;
        let crc = crc32(self.buf.get(..self.pos).ok_or(IceError::BufferTooSmall)?);
        self.put(&attr::FINGERPRINT.to_be_bytes())?;
        self.put(&4u16.to_be_bytes())?;
        self.put(&(crc ^ FINGERPRINT_XOR).to_be_bytes())?;
        Ok(self.pos)
    }
}

/// Dual-stack sockets report IPv4 peers as `::ffff:a.b.c.d`: answer them in the family they use.
fn canonical(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), addr.port()),
            None => addr,
        },
        IpAddr::V4(_) => addr,
    }
}

/// Writes the Binding success response to `req` into `out`: XOR-MAPPED-ADDRESS of `from` (RFC 8489
/// §14.2, IPv4 or IPv6), MESSAGE-INTEGRITY keyed with `creds.local_pwd`, FINGERPRINT. Returns the
/// bytes written (64 for IPv4, 76 for IPv6, at most [`BINDING_SUCCESS_MAX_LEN`]). No allocation.
pub fn write_binding_success(
    req: &BindingRequest,
    from: SocketAddr,
    creds: &IceCredentials,
    out: &mut [u8],
) -> Result<usize, IceError> {
    let from = canonical(from);
    let mut w = Writer { buf: out, pos: 0 };
    w.header(BINDING_SUCCESS, &req.transaction_id)?;

    let port = (from.port() ^ (STUN_MAGIC_COOKIE >> 16) as u16).to_be_bytes();
    let cookie = STUN_MAGIC_COOKIE.to_be_bytes();
    w.put(&attr::XOR_MAPPED_ADDRESS.to_be_bytes())?;
    match from.ip() {
        IpAddr::V4(ip) => {
            w.put(&8u16.to_be_bytes())?;
            w.put(&[0, FAMILY_IPV4])?;
            w.put(&port)?;
            let mut a = ip.octets();
            a.iter_mut().zip(cookie).for_each(|(b, k)| *b ^= k);
            w.put(&a)?;
        }
        IpAddr::V6(ip) => {
            w.put(&20u16.to_be_bytes())?;
            w.put(&[0, FAMILY_IPV6])?;
            w.put(&port)?;
            let mut a = ip.octets();
            let key = cookie.iter().chain(req.transaction_id.iter());
            a.iter_mut().zip(key).for_each(|(b, k)| *b ^= k);
            w.put(&a)?;
        }
    }

    w.sign(creds.local_pwd.as_bytes())
}

/// Writes a Binding request as a controlling full-ICE client sends it (RFC 8445 §7.1.1): USERNAME
/// `username` ("<remote ufrag>:<own ufrag>"), ICE-CONTROLLING with `tie_breaker`, PRIORITY,
/// USE-CANDIDATE when nominating, MESSAGE-INTEGRITY keyed with the remote agent's password, and
/// FINGERPRINT. For tests, load generators and node-to-node links. Returns the bytes written.
pub fn write_binding_request(
    transaction_id: &[u8; 12],
    username: &str,
    remote_pwd: &str,
    priority: u32,
    tie_breaker: u64,
    use_candidate: bool,
    out: &mut [u8],
) -> Result<usize, IceError> {
    write_request(
        transaction_id,
        username,
        remote_pwd,
        priority,
        (attr::ICE_CONTROLLING, tie_breaker),
        use_candidate,
        out,
    )
}

/// Writes the Binding request the lite server sends to a client's *new* address before it moves
/// the media there (a return-routability check): USERNAME `"<client ufrag>:<server ufrag>"`
/// (RFC 8445 §7.2.2, the receiver's ufrag first), ICE-CONTROLLED with `tie_breaker`, PRIORITY,
/// MESSAGE-INTEGRITY keyed with the client's password ([`IceCredentials::remote_pwd`]) and
/// FINGERPRINT. Only a client that holds its password and receives at that address can answer it
/// ([`check_binding_success`]). Returns the bytes written. No allocation.
pub fn write_routability_check(
    transaction_id: &[u8; 12],
    creds: &IceCredentials,
    tie_breaker: u64,
    out: &mut [u8],
) -> Result<usize, IceError> {
    // ufrags are at most 256 ice-chars each (the SDP parser refuses longer ones): on the stack.
    let (r, l) = (creds.remote_ufrag.as_bytes(), creds.local_ufrag.as_bytes());
    let mut user = [0u8; 513];
    let n = r.len() + 1 + l.len();
    let dst = user.get_mut(..n).ok_or(IceError::BufferTooSmall)?;
    dst[..r.len()].copy_from_slice(r);
    dst[r.len()] = b':';
    dst[r.len() + 1..].copy_from_slice(l);
    let username = std::str::from_utf8(dst).map_err(|_| IceError::Malformed)?;
    write_request(
        transaction_id,
        username,
        &creds.remote_pwd,
        // A host candidate's priority (RFC 8445 §5.1.2.1: type preference 126, local 65535).
        (126 << 24) | (65535 << 8) | 255,
        (attr::ICE_CONTROLLED, tie_breaker),
        false,
        out,
    )
}

/// Checks that `buf` is an authenticated Binding success response (RFC 8489 §6.3.1) to the request
/// with `transaction_id`: FINGERPRINT valid, MESSAGE-INTEGRITY valid with the client's password
/// ([`IceCredentials::remote_pwd`], which the client signs its responses with). No allocation.
pub fn check_binding_success(
    buf: &[u8],
    transaction_id: &[u8; 12],
    creds: &IceCredentials,
) -> Result<(), IceError> {
    let msg = StunMessage::parse(buf).map_err(|_| IceError::NotStun)?;
    if msg.message_type() != BINDING_SUCCESS {
        return Err(IceError::NotBindingRequest);
    }
    if creds.remote_pwd.is_empty() {
        return Err(IceError::BadIntegrity);
    }
    if !bool::from(msg.transaction_id().ct_eq(transaction_id)) {
        return Err(IceError::UnknownUsername);
    }
    verify_message(buf, creds.remote_pwd.as_bytes()).map(|_| ())
}

/// The transaction id of a STUN Binding success response, without checking anything else: lets the
/// worker find which of its return-routability checks a response answers. `None` if `buf` is not one.
pub fn success_transaction_id(buf: &[u8]) -> Option<[u8; 12]> {
    let msg = StunMessage::parse(buf).ok()?;
    (msg.message_type() == BINDING_SUCCESS).then(|| *msg.transaction_id())
}

fn write_request(
    transaction_id: &[u8; 12],
    username: &str,
    pwd: &str,
    priority: u32,
    (role, tie_breaker): (u16, u64),
    use_candidate: bool,
    out: &mut [u8],
) -> Result<usize, IceError> {
    let mut w = Writer { buf: out, pos: 0 };
    w.header(BINDING_REQUEST, transaction_id)?;
    let user = username.as_bytes();
    let user_len = u16::try_from(user.len()).map_err(|_| IceError::Malformed)?;
    w.put(&attr::USERNAME.to_be_bytes())?;
    w.put(&user_len.to_be_bytes())?;
    w.put(user)?;
    w.put(&[0u8; 3][..(4 - user.len() % 4) % 4])?;
    w.put(&role.to_be_bytes())?;
    w.put(&8u16.to_be_bytes())?;
    w.put(&tie_breaker.to_be_bytes())?;
    w.put(&attr::PRIORITY.to_be_bytes())?;
    w.put(&4u16.to_be_bytes())?;
    w.put(&priority.to_be_bytes())?;
    if use_candidate {
        w.put(&attr::USE_CANDIDATE.to_be_bytes())?;
        w.put(&0u16.to_be_bytes())?;
    }
    w.sign(pwd.as_bytes())
}

/// Writes an unauthenticated Binding error response (ERROR-CODE with its reason phrase, then
/// FINGERPRINT; RFC 8489 §9.1.3.2 forbids MESSAGE-INTEGRITY when the request did not verify).
/// `code` must be 300..=699 (use [`IceError::error_code`]). Returns the bytes written (at most 52).
/// See the module docs: dropping failed checks is the recommended policy.
pub fn write_binding_error(
    transaction_id: &[u8; 12],
    code: u16,
    out: &mut [u8],
) -> Result<usize, IceError> {
    if !(300..=699).contains(&code) {
        return Err(IceError::Malformed);
    }
    let reason: &[u8] = match code {
        400 => b"Bad Request",
        401 => b"Unauthorized",
        420 => b"Unknown Attribute",
        487 => b"Role Conflict",
        _ => b"Error",
    };
    let mut w = Writer { buf: out, pos: 0 };
    w.header(BINDING_ERROR, transaction_id)?;
    w.put(&attr::ERROR_CODE.to_be_bytes())?;
    w.put(&((4 + reason.len()) as u16).to_be_bytes())?;
    w.put(&[0, 0, (code / 100) as u8, (code % 100) as u8])?;
    w.put(reason)?;
    let pad = (4 - reason.len() % 4) % 4;
    w.put(&[0u8; 3][..pad])?;
    w.fingerprint()
}

/// Decodes an XOR-MAPPED-ADDRESS attribute of `msg` (RFC 8489 §14.2). `None` if absent or malformed.
pub fn xor_mapped_address(msg: &StunMessage<'_>) -> Option<SocketAddr> {
    let v = msg.attribute(attr::XOR_MAPPED_ADDRESS)?;
    let (head, addr) = v.split_first_chunk::<4>()?;
    let [_, family, p0, p1] = *head;
    let port = u16::from_be_bytes([p0, p1]) ^ (STUN_MAGIC_COOKIE >> 16) as u16;
    let cookie = STUN_MAGIC_COOKIE.to_be_bytes();
    let ip = match family {
        FAMILY_IPV4 => {
            let mut a: [u8; 4] = addr.try_into().ok()?;
            a.iter_mut().zip(cookie).for_each(|(b, k)| *b ^= k);
            IpAddr::V4(Ipv4Addr::from(a))
        }
        FAMILY_IPV6 => {
            let mut a: [u8; 16] = addr.try_into().ok()?;
            let key = cookie.iter().chain(msg.transaction_id().iter());
            a.iter_mut().zip(key).for_each(|(b, k)| *b ^= k);
            IpAddr::V6(Ipv6Addr::from(a))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// Consent freshness of one transport (RFC 7675): the time of the last valid check.
///
/// Consent is lost [`CONSENT_TIMEOUT`] (30 s) after the last valid check: `expired(now)` is false
/// for `now < last + 30 s` and true from `last + 30 s` on. A clock reading older than the last
/// refresh never moves it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Consent {
    last: Instant,
}

impl Consent {
    /// Consent granted at `now` (the first valid check, or when the transport was set up).
    pub fn new(now: Instant) -> Self {
        Self { last: now }
    }

    /// A valid check arrived at `now`.
    pub fn refresh(&mut self, now: Instant) {
        if now > self.last {
            self.last = now;
        }
    }

    /// True once [`CONSENT_TIMEOUT`] has passed since the last valid check.
    pub fn expired(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.last) >= CONSENT_TIMEOUT
    }

    /// When the last valid check arrived.
    pub fn last_refresh(&self) -> Instant {
        self.last
    }

    /// When consent expires unless refreshed (for timers); `None` only if it is not representable.
    pub fn deadline(&self) -> Option<Instant> {
        self.last.checked_add(CONSENT_TIMEOUT)
    }
}

/// CRC-32 (ISO-HDLC / IEEE 802.3, reflected polynomial 0xEDB88320), as FINGERPRINT uses.
#[inline]
fn crc32(data: &[u8]) -> u32 {
    crc32fast::hash(data)
}

#[cfg(test)]
mod tests;
