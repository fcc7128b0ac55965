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
        }
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
    let mut w = Writer { buf: out, pos: 0 };
    w.header(BINDING_REQUEST, transaction_id)?;
    let user = username.as_bytes();
    let user_len = u16::try_from(user.len()).map_err(|_| IceError::Malformed)?;
    w.put(&attr::USERNAME.to_be_bytes())?;
    w.put(&user_len.to_be_bytes())?;
    w.put(user)?;
    w.put(&[0u8; 3][..(4 - user.len() % 4) % 4])?;
    w.put(&attr::ICE_CONTROLLING.to_be_bytes())?;
    w.put(&8u16.to_be_bytes())?;
    w.put(&tie_breaker.to_be_bytes())?;
    w.put(&attr::PRIORITY.to_be_bytes())?;
    w.put(&4u16.to_be_bytes())?;
    w.put(&priority.to_be_bytes())?;
    if use_candidate {
        w.put(&attr::USE_CANDIDATE.to_be_bytes())?;
        w.put(&0u16.to_be_bytes())?;
    }
    w.sign(remote_pwd.as_bytes())
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
mod tests {
    use super::*;
    use crate::packet::StunClass;

    const RFC_PWD: &str = "VOkJxbRl1RmTxUk/WvJxBt";
    const RFC_TXID: [u8; 12] = [
        0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae,
    ];

    /// RFC 5769 §2.1.
    const RFC_REQUEST: [u8; 108] = [
        0x00, 0x01, 0x00, 0x58, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6,
        0x86, 0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x10, 0x53, 0x54, 0x55, 0x4e, 0x20, 0x74,
        0x65, 0x73, 0x74, 0x20, 0x63, 0x6c, 0x69, 0x65, 0x6e, 0x74, 0x00, 0x24, 0x00, 0x04, 0x6e,
        0x00, 0x01, 0xff, 0x80, 0x29, 0x00, 0x08, 0x93, 0x2f, 0xf9, 0xb1, 0x51, 0x26, 0x3b, 0x36,
        0x00, 0x06, 0x00, 0x09, 0x65, 0x76, 0x74, 0x6a, 0x3a, 0x68, 0x36, 0x76, 0x59, 0x20, 0x20,
        0x20, 0x00, 0x08, 0x00, 0x14, 0x9a, 0xea, 0xa7, 0x0c, 0xbf, 0xd8, 0xcb, 0x56, 0x78, 0x1e,
        0xf2, 0xb5, 0xb2, 0xd3, 0xf2, 0x49, 0xc1, 0xb5, 0x71, 0xa2, 0x80, 0x28, 0x00, 0x04, 0xe5,
        0x7a, 0x3b, 0xcf,
    ];

    /// RFC 5769 §2.2.
    const RFC_RESPONSE_V4: [u8; 80] = [
        0x01, 0x01, 0x00, 0x3c, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6,
        0x86, 0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x0b, 0x74, 0x65, 0x73, 0x74, 0x20, 0x76,
        0x65, 0x63, 0x74, 0x6f, 0x72, 0x20, 0x00, 0x20, 0x00, 0x08, 0x00, 0x01, 0xa1, 0x47, 0xe1,
        0x12, 0xa6, 0x43, 0x00, 0x08, 0x00, 0x14, 0x2b, 0x91, 0xf5, 0x99, 0xfd, 0x9e, 0x90, 0xc3,
        0x8c, 0x74, 0x89, 0xf9, 0x2a, 0xf9, 0xba, 0x53, 0xf0, 0x6b, 0xe7, 0xd7, 0x80, 0x28, 0x00,
        0x04, 0xc0, 0x7d, 0x4c, 0x96,
    ];

    /// RFC 5769 §2.3.
    const RFC_RESPONSE_V6: [u8; 92] = [
        0x01, 0x01, 0x00, 0x48, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6,
        0x86, 0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x0b, 0x74, 0x65, 0x73, 0x74, 0x20, 0x76,
        0x65, 0x63, 0x74, 0x6f, 0x72, 0x20, 0x00, 0x20, 0x00, 0x14, 0x00, 0x02, 0xa1, 0x47, 0x01,
        0x13, 0xa9, 0xfa, 0xa5, 0xd3, 0xf1, 0x79, 0xbc, 0x25, 0xf4, 0xb5, 0xbe, 0xd2, 0xb9, 0xd9,
        0x00, 0x08, 0x00, 0x14, 0xa3, 0x82, 0x95, 0x4e, 0x4b, 0xe6, 0x7b, 0xf1, 0x17, 0x84, 0xc9,
        0x7c, 0x82, 0x92, 0xc2, 0x75, 0xbf, 0xe3, 0xed, 0x41, 0x80, 0x28, 0x00, 0x04, 0xc8, 0xfb,
        0x0b, 0x4c,
    ];

    fn rfc_creds() -> IceCredentials {
        IceCredentials::new("evtj", RFC_PWD, "h6vY")
    }

    fn creds() -> IceCredentials {
        IceCredentials::new("srvU", "server-password-22chars", "cliU")
    }

    const TXID: [u8; 12] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];

    fn push_attr(m: &mut Vec<u8>, typ: u16, value: &[u8]) {
        m.extend_from_slice(&typ.to_be_bytes());
        m.extend_from_slice(&(value.len() as u16).to_be_bytes());
        m.extend_from_slice(value);
        while m.len() % 4 != 0 {
            m.push(0);
        }
    }

    fn set_len(m: &mut [u8], len: usize) {
        m[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    }

    /// Builds a request independently of the code under test (only `crc32`, checked against the
    /// RFC vectors, is shared): `before` attributes, MESSAGE-INTEGRITY keyed with `pwd` (if any),
    /// `after` attributes, then FINGERPRINT (if `fp`).
    fn build(
        typ: u16,
        before: &[(u16, &[u8])],
        pwd: Option<&str>,
        after: &[(u16, &[u8])],
        fp: bool,
    ) -> Vec<u8> {
        let mut m = typ.to_be_bytes().to_vec();
        m.extend_from_slice(&[0, 0]);
        m.extend_from_slice(&STUN_MAGIC_COOKIE.to_be_bytes());
        m.extend_from_slice(&TXID);
        for (t, v) in before {
            push_attr(&mut m, *t, v);
        }
        if let Some(pwd) = pwd {
            let l = m.len();
            set_len(&mut m, l + 24 - 20);
            let mut mac = HmacSha1::new_from_slice(pwd.as_bytes()).unwrap();
            mac.update(&m);
            let tag = mac.finalize().into_bytes();
            push_attr(&mut m, attr::MESSAGE_INTEGRITY, &tag);
        }
        for (t, v) in after {
            push_attr(&mut m, *t, v);
        }
        if fp {
            let l = m.len();
            set_len(&mut m, l + 8 - 20);
            let crc = crc32(&m) ^ FINGERPRINT_XOR;
            push_attr(&mut m, attr::FINGERPRINT, &crc.to_be_bytes());
        } else {
            let l = m.len();
            set_len(&mut m, l - 20);
        }
        m
    }

    /// As aiortc (aioice) and Chromium send a nominating check: USERNAME, ICE-CONTROLLING, PRIORITY,
    /// USE-CANDIDATE, MESSAGE-INTEGRITY, FINGERPRINT; `extra` goes before MESSAGE-INTEGRITY.
    fn client_check(username: &[u8], pwd: &str, extra: &[(u16, &[u8])]) -> Vec<u8> {
        let mut attrs: Vec<(u16, &[u8])> = vec![
            (attr::USERNAME, username),
            (
                attr::ICE_CONTROLLING,
                &[0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88],
            ),
            (attr::PRIORITY, &[0x6e, 0x7f, 0x1e, 0xff]),
            (attr::USE_CANDIDATE, &[]),
        ];
        attrs.extend_from_slice(extra);
        build(0x0001, &attrs, Some(pwd), &[], true)
    }

    #[test]
    fn our_own_request_writer_is_accepted_by_the_checker() {
        let creds = IceCredentials::new("srvU", "server-password-22chars", "cliU");
        let mut buf = [0u8; 256];
        for nominate in [false, true] {
            let n = write_binding_request(
                &TXID,
                "srvU:cliU",
                "server-password-22chars",
                7,
                9,
                nominate,
                &mut buf,
            )
            .unwrap();
            let req = check_binding_request(&buf[..n], &creds).unwrap();
            assert_eq!(
                (req.use_candidate, req.priority, req.controlling),
                (nominate, Some(7), true)
            );
            // Same bytes as the independent builder above.
            let reference = build(
                0x0001,
                &[
                    (attr::USERNAME, &b"srvU:cliU"[..]),
                    (attr::ICE_CONTROLLING, &9u64.to_be_bytes()[..]),
                    (attr::PRIORITY, &7u32.to_be_bytes()[..]),
                ]
                .into_iter()
                .chain(nominate.then_some((attr::USE_CANDIDATE, &[][..])))
                .collect::<Vec<_>>(),
                Some("server-password-22chars"),
                &[],
                true,
            );
            assert_eq!(&buf[..n], &reference[..]);
        }
        assert_eq!(
            write_binding_request(&TXID, "srvU:cliU", "pw", 1, 1, true, &mut buf[..40]),
            Err(IceError::BufferTooSmall)
        );
    }

    fn good_check() -> Vec<u8> {
        client_check(b"srvU:cliU", "server-password-22chars", &[])
    }

    #[test]
    fn crc32_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn rfc5769_sample_request_verifies() {
        let req = check_binding_request(&RFC_REQUEST, &rfc_creds()).unwrap();
        assert_eq!(
            req,
            BindingRequest {
                transaction_id: RFC_TXID,
                use_candidate: false,
                priority: Some(0x6e00_01ff),
                controlling: false, // it carries ICE-CONTROLLED
            }
        );
        assert_eq!(request_username(&RFC_REQUEST), Some("evtj:h6vY"));
        assert!(verify_message(&RFC_REQUEST, RFC_PWD.as_bytes()).is_ok());
        let wrong = IceCredentials::new("evtj", "VOkJxbRl1RmTxUk/WvJxBT", "h6vY");
        assert_eq!(
            check_binding_request(&RFC_REQUEST, &wrong),
            Err(IceError::BadIntegrity)
        );
        // Reversed ufrags (our side's view is local first).
        let reversed = IceCredentials::new("h6vY", RFC_PWD, "evtj");
        assert_eq!(
            check_binding_request(&RFC_REQUEST, &reversed),
            Err(IceError::UnknownUsername)
        );
    }

    fn rfc_response_case(vector: &[u8], addr: SocketAddr, expected_len: usize) {
        let msg = verify_message(vector, RFC_PWD.as_bytes()).unwrap();
        assert_eq!(msg.class(), StunClass::SuccessResponse);
        assert_eq!(xor_mapped_address(&msg), Some(addr));
        assert_eq!(
            verify_message(vector, b"VOkJxbRl1RmTxUk/WvJxBT").unwrap_err(),
            IceError::BadIntegrity
        );

        let req = BindingRequest {
            transaction_id: RFC_TXID,
            use_candidate: false,
            priority: None,
            controlling: false,
        };
        let mut out = [0u8; 128];
        let n = write_binding_success(&req, addr, &rfc_creds(), &mut out).unwrap();
        assert_eq!(n, expected_len);
        assert!(n <= BINDING_SUCCESS_MAX_LEN);
        let ours = verify_message(&out[..n], RFC_PWD.as_bytes()).unwrap();
        assert_eq!(ours.bytes().len(), n);
        assert_eq!(ours.message_type(), 0x0101);
        assert_eq!(ours.transaction_id(), &RFC_TXID);
        assert_eq!(xor_mapped_address(&ours), Some(addr));
        // The XOR-MAPPED-ADDRESS value is byte-identical to the RFC's.
        assert_eq!(
            ours.attribute(attr::XOR_MAPPED_ADDRESS),
            msg.attribute(attr::XOR_MAPPED_ADDRESS)
        );
        assert_eq!(
            verify_message(&out[..n], b"another password").unwrap_err(),
            IceError::BadIntegrity
        );
    }

    #[test]
    fn rfc5769_ipv4_response() {
        rfc_response_case(&RFC_RESPONSE_V4, "192.0.2.1:32853".parse().unwrap(), 64);
    }

    #[test]
    fn rfc5769_ipv6_response() {
        rfc_response_case(
            &RFC_RESPONSE_V6,
            "[2001:db8:1234:5678:11:2233:4455:6677]:32853"
                .parse()
                .unwrap(),
            76,
        );
    }

    #[test]
    fn client_check_round_trips() {
        let m = good_check();
        assert_eq!(request_username(&m), Some("srvU:cliU"));
        assert_eq!(split_username("srvU:cliU"), Some(("srvU", "cliU")));
        let req = check_binding_request(&m, &creds()).unwrap();
        assert_eq!(
            req,
            BindingRequest {
                transaction_id: TXID,
                use_candidate: true,
                priority: Some(0x6e7f_1eff),
                controlling: true,
            }
        );
        let from: SocketAddr = "127.0.0.1:50000".parse().unwrap();
        let mut out = [0u8; BINDING_SUCCESS_MAX_LEN];
        let n = write_binding_success(&req, from, &creds(), &mut out).unwrap();
        let resp = verify_message(&out[..n], b"server-password-22chars").unwrap();
        assert_eq!(resp.class(), StunClass::SuccessResponse);
        assert_eq!(resp.transaction_id(), &TXID);
        assert_eq!(xor_mapped_address(&resp), Some(from));
        // A response is not a request.
        assert_eq!(
            check_binding_request(&out[..n], &creds()),
            Err(IceError::NotBindingRequest)
        );
        assert_eq!(request_username(&out[..n]), None);

        // Chromium adds comprehension-optional GOOG-* attributes; a consent check (RFC 7675) has no
        // USE-CANDIDATE; trailing datagram bytes are ignored.
        let chromium = client_check(
            b"srvU:cliU",
            "server-password-22chars",
            &[(0xC057, &[0, 1, 0, 10])],
        );
        assert!(
            check_binding_request(&chromium, &creds())
                .unwrap()
                .use_candidate
        );
        let consent = build(
            0x0001,
            &[
                (attr::USERNAME, b"srvU:cliU"),
                (attr::ICE_CONTROLLED, &[9; 8]),
            ],
            Some("server-password-22chars"),
            &[],
            true,
        );
        let c = check_binding_request(&consent, &creds()).unwrap();
        assert!(!c.use_candidate && !c.controlling && c.priority.is_none());
        let mut trailing = m.clone();
        trailing.extend_from_slice(&[0xEE; 7]);
        assert!(check_binding_request(&trailing, &creds()).is_ok());
    }

    #[test]
    fn credential_failures() {
        let m = good_check();
        let wrong_pwd = IceCredentials::new("srvU", "server-password-22charX", "cliU");
        assert_eq!(
            check_binding_request(&m, &wrong_pwd),
            Err(IceError::BadIntegrity)
        );
        for (l, r) in [
            ("srvX", "cliU"),
            ("srvU", "cliX"),
            ("srv", "cliU"),
            ("srvU", "cli"),
            ("srvU:cliU", ""),
        ] {
            let c = IceCredentials::new(l, "server-password-22chars", r);
            assert_eq!(
                check_binding_request(&m, &c),
                Err(IceError::UnknownUsername),
                "{l}:{r}"
            );
        }
        // Correctly signed, but the username lacks the remote part or has extra bytes.
        for user in [
            &b"srvU"[..],
            b"srvU:",
            b"srvU:cliUx",
            b"srvUcliU",
            b"srvU;cliU",
        ] {
            let m = client_check(user, "server-password-22chars", &[]);
            assert_eq!(
                check_binding_request(&m, &creds()),
                Err(IceError::UnknownUsername)
            );
        }
        assert_eq!(IceError::UnknownUsername.error_code(), Some(401));
        assert_eq!(IceError::BadIntegrity.error_code(), Some(401));
        assert_eq!(IceError::MissingUsername.error_code(), Some(400));
        assert_eq!(IceError::BadFingerprint.error_code(), None);
    }

    #[test]
    fn missing_and_misplaced_attributes() {
        let pwd = Some("server-password-22chars");
        let user: (u16, &[u8]) = (attr::USERNAME, b"srvU:cliU");
        let cases: Vec<(Vec<u8>, IceError)> = vec![
            (
                build(1, &[(attr::PRIORITY, &[0, 0, 0, 1])], pwd, &[], true),
                IceError::MissingUsername,
            ),
            // USERNAME after MESSAGE-INTEGRITY is not authenticated.
            (build(1, &[], pwd, &[user], true), IceError::MissingUsername),
            (
                build(1, &[user], None, &[], true),
                IceError::MissingIntegrity,
            ),
            (
                build(1, &[user], pwd, &[], false),
                IceError::MissingFingerprint,
            ),
            (
                build(0x0011, &[user], pwd, &[], true),
                IceError::NotBindingRequest,
            ),
            (
                build(1, &[user, (attr::PRIORITY, &[0, 0, 1])], pwd, &[], true),
                IceError::Malformed,
            ),
            (
                build(1, &[user, (attr::USE_CANDIDATE, &[1])], pwd, &[], true),
                IceError::Malformed,
            ),
            (
                build(1, &[user, (attr::ICE_CONTROLLING, &[0; 4])], pwd, &[], true),
                IceError::Malformed,
            ),
        ];
        for (i, (m, err)) in cases.iter().enumerate() {
            assert_eq!(check_binding_request(m, &creds()), Err(*err), "case {i}");
        }
        // An attribute after FINGERPRINT.
        let mut m = good_check();
        push_attr(&mut m, 0x8022, b"x");
        let l = m.len();
        set_len(&mut m, l - 20);
        assert_eq!(
            check_binding_request(&m, &creds()),
            Err(IceError::Malformed)
        );
        // A truncated attribute header after FINGERPRINT, inside the message length: the attributes
        // must tile the message exactly.
        let mut m = good_check();
        m.extend_from_slice(&[0x80, 0x22, 0x00, 0x40]);
        let l = m.len();
        set_len(&mut m, l - 20);
        assert_eq!(
            check_binding_request(&m, &creds()),
            Err(IceError::Malformed)
        );
        // Garbage and DTLS are not STUN.
        assert_eq!(
            check_binding_request(&[22, 254, 253, 0], &creds()),
            Err(IceError::NotStun)
        );
        assert_eq!(check_binding_request(&[], &creds()), Err(IceError::NotStun));
    }

    #[test]
    fn attributes_after_integrity_are_ignored() {
        let m = build(
            1,
            &[
                (attr::USERNAME, b"srvU:cliU"),
                (attr::ICE_CONTROLLING, &[1; 8]),
            ],
            Some("server-password-22chars"),
            &[(attr::USE_CANDIDATE, &[]), (attr::PRIORITY, &[0, 0, 0, 7])],
            true,
        );
        let req = check_binding_request(&m, &creds()).unwrap();
        assert!(!req.use_candidate);
        assert_eq!(req.priority, None);
        assert!(req.controlling);
    }

    #[test]
    fn fingerprint_mismatch() {
        let mut m = good_check();
        let n = m.len();
        m[n - 1] ^= 0x01;
        assert_eq!(
            check_binding_request(&m, &creds()),
            Err(IceError::BadFingerprint)
        );
        // A FINGERPRINT computed over a different message (the CRC checked before any HMAC).
        let mut m = good_check();
        m[n - 8..].copy_from_slice(&RFC_REQUEST[100..]);
        assert_eq!(
            check_binding_request(&m, &creds()),
            Err(IceError::BadFingerprint)
        );
    }

    #[test]
    fn every_bit_flip_is_rejected() {
        let m = good_check();
        for i in 0..m.len() {
            for bit in 0..8 {
                let mut f = m.clone();
                f[i] ^= 1 << bit;
                assert!(
                    check_binding_request(&f, &creds()).is_err(),
                    "byte {i} bit {bit}"
                );
            }
        }
    }

    #[test]
    fn every_truncation_is_rejected() {
        let m = good_check();
        for len in 0..m.len() {
            let cut = &m[..len];
            assert!(check_binding_request(cut, &creds()).is_err(), "len {len}");
            if len >= 20 {
                let mut fixed = cut.to_vec();
                set_len(&mut fixed, (len - 20) / 4 * 4);
                assert!(
                    check_binding_request(&fixed, &creds()).is_err(),
                    "patched {len}"
                );
            }
        }
    }

    #[test]
    fn write_success_buffer_sizes_and_mapped_v4() {
        let req = check_binding_request(&good_check(), &creds()).unwrap();
        let v4: SocketAddr = "192.0.2.7:4000".parse().unwrap();
        let v6: SocketAddr = "[2001:db8::9]:4000".parse().unwrap();
        for (addr, need) in [(v4, 64), (v6, 76)] {
            let mut out = [0u8; 100];
            for size in 0..need {
                assert_eq!(
                    write_binding_success(&req, addr, &creds(), &mut out[..size]),
                    Err(IceError::BufferTooSmall)
                );
            }
            assert_eq!(
                write_binding_success(&req, addr, &creds(), &mut out),
                Ok(need)
            );
        }
        // A dual-stack socket's view of an IPv4 peer is answered as IPv4.
        let mapped: SocketAddr = "[::ffff:192.0.2.7]:4000".parse().unwrap();
        let mut out = [0u8; 100];
        let n = write_binding_success(&req, mapped, &creds(), &mut out).unwrap();
        assert_eq!(n, 64);
        let resp = verify_message(&out[..n], b"server-password-22chars").unwrap();
        assert_eq!(xor_mapped_address(&resp), Some(v4));
    }

    #[test]
    fn error_response() {
        let mut out = [0u8; 64];
        let n = write_binding_error(&TXID, 401, &mut out).unwrap();
        let msg = StunMessage::parse(&out[..n]).unwrap();
        assert_eq!(msg.bytes().len(), n);
        assert_eq!(msg.class(), StunClass::ErrorResponse);
        assert_eq!(msg.transaction_id(), &TXID);
        assert_eq!(
            msg.attribute(attr::ERROR_CODE),
            Some(&b"\0\0\x04\x01Unauthorized"[..])
        );
        let lay = layout(&msg).unwrap();
        assert!(lay.integrity.is_none());
        assert!(verify_fingerprint(&msg, lay.fingerprint.unwrap()).is_ok());
        let n = write_binding_error(&TXID, 400, &mut out).unwrap();
        let msg = StunMessage::parse(&out[..n]).unwrap();
        assert_eq!(
            msg.attribute(attr::ERROR_CODE),
            Some(&b"\0\0\x04\0Bad Request"[..])
        );
        assert!(verify_fingerprint(&msg, layout(&msg).unwrap().fingerprint.unwrap()).is_ok());
        assert_eq!(
            write_binding_error(&TXID, 200, &mut out),
            Err(IceError::Malformed)
        );
        assert_eq!(
            write_binding_error(&TXID, 401, &mut out[..40]),
            Err(IceError::BufferTooSmall)
        );
    }

    #[test]
    fn consent_expires_exactly_at_30s() {
        let t0 = Instant::now();
        let mut c = Consent::new(t0);
        let nano = Duration::from_nanos(1);
        assert!(!c.expired(t0));
        assert!(!c.expired(t0 + CONSENT_TIMEOUT - nano));
        assert!(c.expired(t0 + CONSENT_TIMEOUT));
        assert_eq!(c.deadline(), Some(t0 + Duration::from_secs(30)));

        let t1 = t0 + Duration::from_secs(20);
        c.refresh(t1);
        assert_eq!(c.last_refresh(), t1);
        assert!(!c.expired(t0 + CONSENT_TIMEOUT));
        assert!(!c.expired(t1 + CONSENT_TIMEOUT - nano));
        assert!(c.expired(t1 + CONSENT_TIMEOUT));
        // An older reading neither moves the refresh back nor counts as expired.
        c.refresh(t0);
        assert_eq!(c.last_refresh(), t1);
        assert!(!c.expired(t0));
    }

    struct XorShift(u64);
    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    #[test]
    fn robustness_no_panic() {
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        let seeds = [
            good_check(),
            RFC_REQUEST.to_vec(),
            RFC_RESPONSE_V4.to_vec(),
            RFC_RESPONSE_V6.to_vec(),
        ];
        let c = creds();
        let mut out = [0u8; BINDING_SUCCESS_MAX_LEN];
        let mut accepted = 0;
        for i in 0..50_000 {
            let r = rng.next();
            let mut m = if i % 4 == 0 {
                // Random bytes, STUN-looking header half the time.
                let len = (r % 120) as usize;
                let mut m: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                if r & 0x100 != 0 && len >= 20 {
                    m[0] = 0;
                    m[1] = 1;
                    m[2..4].copy_from_slice(&(((len - 20) & !3) as u16).to_be_bytes());
                    m[4..8].copy_from_slice(&STUN_MAGIC_COOKIE.to_be_bytes());
                }
                m
            } else {
                let mut m = seeds[(r % 4) as usize].clone();
                for _ in 0..=(r >> 8) % 4 {
                    let x = rng.next();
                    let idx = (x % m.len() as u64) as usize;
                    match (x >> 32) % 4 {
                        0 => m[idx] ^= 1 << ((x >> 40) % 8),
                        1 => m[idx] = (x >> 48) as u8,
                        2 => m.truncate(idx),
                        _ => m.extend_from_slice(&x.to_le_bytes()),
                    }
                    if m.is_empty() {
                        break;
                    }
                }
                m
            };
            if r & 0x200 != 0 && m.len() >= 4 {
                // Keep the length field consistent so parsing gets past the header.
                let l = (m.len() - 20.min(m.len())) & !3;
                set_len(&mut m, l);
            }
            let _ = request_username(&m);
            let _ = verify_message(&m, RFC_PWD.as_bytes());
            if let Ok(req) = check_binding_request(&m, &c) {
                accepted += 1;
                let from = SocketAddr::from(([127, 0, 0, 1], (r >> 16) as u16));
                let size = (r as usize >> 24) % (out.len() + 1);
                if let Ok(n) = write_binding_success(&req, from, &c, &mut out[..size]) {
                    assert!(verify_message(&out[..n], c.local_pwd.as_bytes()).is_ok());
                }
            }
        }
        // Mutations past the signed part (e.g. trailing bytes) still verify: the loop saw some.
        assert!(accepted > 0);
    }
}
