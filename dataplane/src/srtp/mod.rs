//! SRTP and SRTCP (RFC 3711, RFC 7714) for the forwarding path: packets are protected and unprotected
//! **in place** in the caller's buffer.
//!
//! # Design
//!
//! - [`SrtpContext`] is one direction of one SRTP session: a transport's inbound keys (used only with
//!   `unprotect_*`) or its outbound keys (used only with `protect_*`). It is built once from
//!   [`SrtpKeys`] at DTLS-SRTP setup time; AES key schedules, GHASH keys and the keyed HMAC-SHA1 state
//!   are derived there and never again.
//! - Two engines sit behind the one type ([`SrtpEngine`]):
//!   - [`SrtpEngine::InPlace`] (default, `inplace.rs`): our implementation on the RustCrypto primitives
//!     (`aes`, `ctr`, `aes-gcm`, `hmac`, `sha1`). It does **no allocation per packet**.
//!   - [`SrtpEngine::WebrtcSrtp`] (`webrtc.rs`): a wrapper around `webrtc_srtp::context::Context`, which
//!     allocates on every call. It is kept as a selectable alternative so benchmarks can compare both,
//!     and its tests serve as the independent oracle for ours: whatever one engine protects, the other
//!     must unprotect.
//! - Per-SSRC state (ROC, highest index, 128-packet replay window, SRTCP index) lives in a table of
//!   at most [`SrtpContext::MAX_STREAMS`] slots that starts small and grows only when a new SSRC
//!   takes a slot. On the receive side a slot is taken only after a packet for that SSRC
//!   authenticated, so forged SSRCs cannot fill the table.
//!
//! # Invariants
//!
//! - No function here panics on packet bytes; every header length is bounds-checked
//!   (`SrtpError::Malformed` / `SrtpError::TooShort`).
//! - Unprotect is all-or-nothing for the context: on any error the per-SSRC state is unchanged (the
//!   buffer contents are then unspecified).
//! - Replay protection is always on for unprotect (SRTP and SRTCP).
//! - Tags are compared in constant time.
//!
//! Not supported (rejected, never mis-processed): MKI, key derivation rate other than 0, the
//! `_32` tag-length and AES-256-CM profiles, unencrypted (E=0) SRTCP with the GCM profiles.

use std::fmt;
use std::str::FromStr;

mod inplace;
mod kdf;
mod replay;
mod webrtc;

/// The SRTP protection profiles sluice negotiates (RFC 5764 §4.1.2, RFC 7714 §14.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SrtpProfile {
    /// `SRTP_AES128_CM_HMAC_SHA1_80` (RFC 3711 default transforms, 80-bit tag).
    Aes128CmHmacSha1_80,
    /// `SRTP_AES128_CM_HMAC_SHA1_32` (RFC 3711 transforms, 32-bit SRTP tag; SRTCP keeps the 80-bit
    /// tag, RFC 5764 §4.1.2): what ffmpeg, libsrtp-based tools and older stacks use for plain RTP.
    Aes128CmHmacSha1_32,
    /// `SRTP_AEAD_AES_128_GCM` (RFC 7714).
    AeadAes128Gcm,
    /// `SRTP_AEAD_AES_256_GCM` (RFC 7714).
    AeadAes256Gcm,
}

impl SrtpProfile {
    /// Every supported profile, in DTLS id order.
    pub const ALL: [SrtpProfile; 4] = [
        SrtpProfile::Aes128CmHmacSha1_80,
        SrtpProfile::Aes128CmHmacSha1_32,
        SrtpProfile::AeadAes128Gcm,
        SrtpProfile::AeadAes256Gcm,
    ];

    /// Master key length in bytes.
    pub fn master_key_len(self) -> usize {
        match self {
            SrtpProfile::Aes128CmHmacSha1_80
            | SrtpProfile::Aes128CmHmacSha1_32
            | SrtpProfile::AeadAes128Gcm => 16,
            SrtpProfile::AeadAes256Gcm => 32,
        }
    }

    /// Master salt length in bytes (112 bits for AES-CM, 96 bits for GCM per RFC 7714 §12).
    pub fn master_salt_len(self) -> usize {
        match self {
            SrtpProfile::Aes128CmHmacSha1_80 | SrtpProfile::Aes128CmHmacSha1_32 => 14,
            SrtpProfile::AeadAes128Gcm | SrtpProfile::AeadAes256Gcm => 12,
        }
    }

    /// Bytes `protect_rtp` appends to an RTP packet (the authentication tag).
    pub fn rtp_tag_len(self) -> usize {
        match self {
            SrtpProfile::Aes128CmHmacSha1_80 => 10,
            SrtpProfile::Aes128CmHmacSha1_32 => 4,
            SrtpProfile::AeadAes128Gcm | SrtpProfile::AeadAes256Gcm => 16,
        }
    }

    /// The SRTCP authentication tag's length: 80 bits for both AES-CM profiles (RFC 5764 §4.1.2:
    /// the `_32` profile shortens the SRTP tag only), the GCM tag for the AEAD ones.
    pub fn rtcp_tag_len(self) -> usize {
        match self {
            SrtpProfile::Aes128CmHmacSha1_80 | SrtpProfile::Aes128CmHmacSha1_32 => 10,
            SrtpProfile::AeadAes128Gcm | SrtpProfile::AeadAes256Gcm => 16,
        }
    }

    /// Bytes `protect_rtcp` appends to an RTCP packet: the tag plus the 4-byte E‖SRTCP index word.
    pub fn rtcp_overhead(self) -> usize {
        self.rtcp_tag_len() + 4
    }

    /// The RFC name of the profile.
    pub fn name(self) -> &'static str {
        match self {
            SrtpProfile::Aes128CmHmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            SrtpProfile::Aes128CmHmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
            SrtpProfile::AeadAes128Gcm => "AEAD_AES_128_GCM",
            SrtpProfile::AeadAes256Gcm => "AEAD_AES_256_GCM",
        }
    }

    /// A short name for command lines and benchmark ids.
    pub fn short_name(self) -> &'static str {
        match self {
            SrtpProfile::Aes128CmHmacSha1_80 => "aescm",
            SrtpProfile::Aes128CmHmacSha1_32 => "aescm32",
            SrtpProfile::AeadAes128Gcm => "aes128gcm",
            SrtpProfile::AeadAes256Gcm => "aes256gcm",
        }
    }

    /// The DTLS-SRTP protection profile id (RFC 5764 §4.1.2, RFC 7714 §14.2).
    pub fn dtls_id(self) -> u16 {
        match self {
            SrtpProfile::Aes128CmHmacSha1_80 => 0x0001,
            SrtpProfile::Aes128CmHmacSha1_32 => 0x0002,
            SrtpProfile::AeadAes128Gcm => 0x0007,
            SrtpProfile::AeadAes256Gcm => 0x0008,
        }
    }
}

impl fmt::Display for SrtpProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SrtpProfile {
    type Err = SrtpError;

    /// Accepts the short names and the RFC names, case-insensitively (also the DTLS spellings
    /// `SRTP_AES128_CM_SHA1_80`, `SRTP_AES128_CM_SHA1_32`, `SRTP_AEAD_AES_128_GCM`,
    /// `SRTP_AEAD_AES_256_GCM`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        for p in SrtpProfile::ALL {
            if t.eq_ignore_ascii_case(p.short_name()) || t.eq_ignore_ascii_case(p.name()) {
                return Ok(p);
            }
        }
        let dtls = [
            ("SRTP_AES128_CM_SHA1_80", SrtpProfile::Aes128CmHmacSha1_80),
            (
                "SRTP_AES128_CM_HMAC_SHA1_80",
                SrtpProfile::Aes128CmHmacSha1_80,
            ),
            ("SRTP_AES128_CM_SHA1_32", SrtpProfile::Aes128CmHmacSha1_32),
            (
                "SRTP_AES128_CM_HMAC_SHA1_32",
                SrtpProfile::Aes128CmHmacSha1_32,
            ),
            ("SRTP_AEAD_AES_128_GCM", SrtpProfile::AeadAes128Gcm),
            ("SRTP_AEAD_AES_256_GCM", SrtpProfile::AeadAes256Gcm),
        ];
        for (n, p) in dtls {
            if t.eq_ignore_ascii_case(n) {
                return Ok(p);
            }
        }
        Err(SrtpError::UnknownProfile(s.to_string()))
    }
}

/// Which implementation an [`SrtpContext`] uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SrtpEngine {
    /// Our in-place implementation: no allocation per packet (the default).
    #[default]
    InPlace,
    /// `webrtc-srtp` 0.17, results copied back into the caller's buffer (allocates per packet).
    WebrtcSrtp,
}

impl SrtpEngine {
    /// The name accepted by `FromStr`.
    pub fn name(self) -> &'static str {
        match self {
            SrtpEngine::InPlace => "inplace",
            SrtpEngine::WebrtcSrtp => "webrtc-srtp",
        }
    }
}

impl fmt::Display for SrtpEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SrtpEngine {
    type Err = SrtpError;

    /// `"inplace"` or `"webrtc-srtp"` (case-insensitive; `"in-place"`, `"webrtc"` also accepted).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().to_ascii_lowercase();
        match t.as_str() {
            "inplace" | "in-place" | "in_place" => Ok(SrtpEngine::InPlace),
            "webrtc-srtp" | "webrtc_srtp" | "webrtc" => Ok(SrtpEngine::WebrtcSrtp),
            _ => Err(SrtpError::UnknownProfile(s.to_string())),
        }
    }
}

/// Errors from SRTP setup and per-packet transforms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SrtpError {
    /// A profile (or engine) name that is not recognised.
    #[error("unknown SRTP profile or engine: {0:?}")]
    UnknownProfile(String),
    /// Master key or salt of the wrong length for the profile.
    #[error("bad SRTP key length: expected {expected} bytes, got {got}")]
    BadKeyLength {
        /// Length the profile requires.
        expected: usize,
        /// Length supplied.
        got: usize,
    },
    /// The packet is shorter than a header plus the SRTP trailer.
    #[error("packet too short for SRTP/SRTCP")]
    TooShort,
    /// The caller's buffer has no room for the appended trailer.
    #[error("buffer too small: need {needed} bytes, have {available}")]
    BufferTooSmall {
        /// Bytes required.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
    /// The authentication tag did not verify.
    #[error("SRTP authentication failed")]
    AuthenticationFailed,
    /// The packet index was already seen or is older than the replay window.
    #[error("replayed or too old SRTP/SRTCP packet")]
    Replayed,
    /// The per-context SSRC table is full.
    #[error(
        "too many SSRCs in one SRTP context (max {})",
        SrtpContext::MAX_STREAMS
    )]
    TooManyStreams,
    /// Header contents that cannot be processed (bad version, lengths past the end, ...).
    #[error("malformed RTP/RTCP packet")]
    Malformed,
    /// An error from the `webrtc-srtp` engine, or an exhausted packet index.
    #[error("SRTP backend error: {0}")]
    Backend(String),
}

/// Master key material for one direction, as exported by DTLS-SRTP (RFC 5764 §4.2). Setup time only.
/// The key and salt are overwritten with zeros when it is dropped (`zeroize`).
#[derive(Clone, zeroize::Zeroize, zeroize::ZeroizeOnDrop)]
pub struct SrtpKeys {
    /// The negotiated profile.
    #[zeroize(skip)]
    pub profile: SrtpProfile,
    /// Master key, `profile.master_key_len()` bytes.
    pub master_key: Vec<u8>,
    /// Master salt, `profile.master_salt_len()` bytes.
    pub master_salt: Vec<u8>,
}

impl SrtpKeys {
    /// Copies and validates the key and salt lengths for `profile`.
    pub fn new(profile: SrtpProfile, key: &[u8], salt: &[u8]) -> Result<Self, SrtpError> {
        check_len(profile.master_key_len(), key.len())?;
        check_len(profile.master_salt_len(), salt.len())?;
        Ok(SrtpKeys {
            profile,
            master_key: key.to_vec(),
            master_salt: salt.to_vec(),
        })
    }

    fn validate(&self) -> Result<(), SrtpError> {
        check_len(self.profile.master_key_len(), self.master_key.len())?;
        check_len(self.profile.master_salt_len(), self.master_salt.len())
    }
}

fn check_len(expected: usize, got: usize) -> Result<(), SrtpError> {
    if expected == got {
        Ok(())
    } else {
        Err(SrtpError::BadKeyLength { expected, got })
    }
}

impl fmt::Debug for SrtpKeys {
    /// Never prints key material.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SrtpKeys")
            .field("profile", &self.profile)
            .field(
                "master_key",
                &format_args!("<{} bytes redacted>", self.master_key.len()),
            )
            .field(
                "master_salt",
                &format_args!("<{} bytes redacted>", self.master_salt.len()),
            )
            .finish()
    }
}

enum Engine {
    InPlace(Box<inplace::InPlaceContext>),
    Webrtc(Box<webrtc::WebrtcContext>),
}

/// One direction of one SRTP session (a transport's inbound or outbound keys). Holds per-SSRC state
/// (ROC, highest seq, replay window, SRTCP index) for up to [`Self::MAX_STREAMS`] SSRCs in a fixed,
/// preallocated table; state for a new SSRC is created only after that SSRC's first packet
/// authenticated (unprotect) so forged SSRCs cannot fill the table.
pub struct SrtpContext {
    profile: SrtpProfile,
    engine: Engine,
}

impl fmt::Debug for SrtpContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let engine = match self.engine {
            Engine::InPlace(_) => SrtpEngine::InPlace,
            Engine::Webrtc(_) => SrtpEngine::WebrtcSrtp,
        };
        f.debug_struct("SrtpContext")
            .field("profile", &self.profile)
            .field("engine", &engine)
            .finish_non_exhaustive()
    }
}

impl SrtpContext {
    /// Most SSRCs one context tracks (SRTP and SRTCP share the table).
    pub const MAX_STREAMS: usize = 32;

    /// Derives the session keys and builds every key schedule. The only allocation of the context.
    pub fn new(engine: SrtpEngine, keys: &SrtpKeys) -> Result<Self, SrtpError> {
        keys.validate()?;
        let engine = match engine {
            SrtpEngine::InPlace => Engine::InPlace(Box::new(inplace::InPlaceContext::new(keys)?)),
            SrtpEngine::WebrtcSrtp => Engine::Webrtc(Box::new(webrtc::WebrtcContext::new(keys)?)),
        };
        Ok(SrtpContext {
            profile: keys.profile,
            engine,
        })
    }

    /// The profile the context was built for.
    pub fn profile(&self) -> SrtpProfile {
        self.profile
    }

    /// Which engine the context uses.
    pub fn engine(&self) -> SrtpEngine {
        match self.engine {
            Engine::InPlace(_) => SrtpEngine::InPlace,
            Engine::Webrtc(_) => SrtpEngine::WebrtcSrtp,
        }
    }

    /// `buf[..len]` is a plaintext RTP packet; encrypts the payload in place and appends the tag.
    /// `buf` must have room for `len + profile.rtp_tag_len()`. Returns the protected length.
    ///
    /// The ROC is tracked per SSRC from the sequence numbers (RFC 3711 §3.3.1), so a sender may send
    /// more than 65536 packets. Protecting the same sequence number twice is allowed (NACK
    /// retransmission) and reuses the same keystream for what is expected to be the same plaintext.
    pub fn protect_rtp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        match &mut self.engine {
            Engine::InPlace(c) => c.protect_rtp(buf, len),
            Engine::Webrtc(c) => c.protect_rtp(buf, len),
        }
    }

    /// `buf` is a whole SRTP packet; authenticates it (constant-time tag compare), checks the replay
    /// window, decrypts in place. Returns the plaintext length (tag removed). On any error the buffer
    /// contents are unspecified but the context's state is unchanged.
    pub fn unprotect_rtp(&mut self, buf: &mut [u8]) -> Result<usize, SrtpError> {
        match &mut self.engine {
            Engine::InPlace(c) => c.unprotect_rtp(buf),
            Engine::Webrtc(c) => c.unprotect_rtp(buf),
        }
    }

    /// `buf[..len]` is a plaintext (compound) RTCP packet; encrypts it (E=1) in place and appends the
    /// E‖SRTCP index word and the tag. `buf` must have room for `len + profile.rtcp_overhead()`.
    pub fn protect_rtcp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        match &mut self.engine {
            Engine::InPlace(c) => c.protect_rtcp(buf, len),
            Engine::Webrtc(c) => c.protect_rtcp(buf, len),
        }
    }

    /// `buf` is a whole SRTCP packet; authenticates, checks the SRTCP replay window, decrypts in
    /// place. Returns the plaintext RTCP length. State is unchanged on error.
    pub fn unprotect_rtcp(&mut self, buf: &mut [u8]) -> Result<usize, SrtpError> {
        match &mut self.engine {
            Engine::InPlace(c) => c.unprotect_rtcp(buf),
            Engine::Webrtc(c) => c.unprotect_rtcp(buf),
        }
    }
}

/// Length of the RTP header at the start of `pkt` (fixed header, CSRCs and header extension),
/// bounds-checked against `pkt.len()` (RFC 3550 §5.1, §5.3.1). Only version 2 is accepted.
pub(crate) fn rtp_header_len(pkt: &[u8]) -> Result<usize, SrtpError> {
    let (&b0, _) = pkt.split_first().ok_or(SrtpError::TooShort)?;
    if pkt.len() < 12 {
        return Err(SrtpError::TooShort);
    }
    if b0 >> 6 != 2 {
        return Err(SrtpError::Malformed);
    }
    let cc = usize::from(b0 & 0x0f);
    let mut len = 12 + 4 * cc;
    if b0 & 0x10 != 0 {
        let ext = pkt.get(len..len + 4).ok_or(SrtpError::Malformed)?;
        let words = usize::from(u16::from_be_bytes([ext[2], ext[3]]));
        len += 4 + 4 * words;
    }
    if len > pkt.len() {
        return Err(SrtpError::Malformed);
    }
    Ok(len)
}

/// `(ssrc, seq)` of an RTP packet whose header length was already checked (>= 12 bytes).
pub(crate) fn rtp_ssrc_seq(pkt: &[u8]) -> Result<(u32, u16), SrtpError> {
    match pkt.get(..12) {
        Some(h) => Ok((
            u32::from_be_bytes([h[8], h[9], h[10], h[11]]),
            u16::from_be_bytes([h[2], h[3]]),
        )),
        None => Err(SrtpError::TooShort),
    }
}

/// SSRC of the first RTCP packet (sender SSRC, bytes 4..8), version 2 only (RFC 3550 §6.4).
pub(crate) fn rtcp_ssrc(pkt: &[u8]) -> Result<u32, SrtpError> {
    let h = pkt.get(..8).ok_or(SrtpError::TooShort)?;
    if h[0] >> 6 != 2 {
        return Err(SrtpError::Malformed);
    }
    Ok(u32::from_be_bytes([h[4], h[5], h[6], h[7]]))
}

/// Packet builders and keys shared by the tests of this module's files.
#[cfg(test)]
pub(crate) mod testutil {
    use super::{SrtpKeys, SrtpProfile};

    /// Deterministic master keys per profile; `seed` varies them.
    pub(crate) fn keys(profile: SrtpProfile, seed: u8) -> SrtpKeys {
        let key: Vec<u8> = (0..profile.master_key_len())
            .map(|i| (i as u8).wrapping_mul(7).wrapping_add(seed))
            .collect();
        let salt: Vec<u8> = (0..profile.master_salt_len())
            .map(|i| (i as u8).wrapping_mul(13) ^ seed ^ 0x5a)
            .collect();
        SrtpKeys::new(profile, &key, &salt).unwrap()
    }

    /// A `webrtc-srtp` context for the same keys, replay protection on: the independent oracle.
    pub(crate) fn oracle(keys: &SrtpKeys) -> webrtc_srtp::context::Context {
        use webrtc_srtp::option::{srtcp_replay_protection, srtp_replay_protection};
        webrtc_srtp::context::Context::new(
            &keys.master_key,
            &keys.master_salt,
            keys.profile.webrtc(),
            Some(srtp_replay_protection(128)),
            Some(srtcp_replay_protection(128)),
        )
        .unwrap()
    }

    /// RTP packet: V=2, X=1 with a one-byte header extension (RFC 8285, id 1, one byte of data,
    /// padded to a word), two CSRCs, `payload_len` payload bytes.
    pub(crate) fn rtp(ssrc: u32, seq: u16, payload_len: usize) -> Vec<u8> {
        let mut p = vec![0x80 | 0x10 | 2, 0x80 | 111];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&(u32::from(seq) * 960).to_be_bytes());
        p.extend_from_slice(&ssrc.to_be_bytes());
        p.extend_from_slice(&0x1111_1111u32.to_be_bytes());
        p.extend_from_slice(&0x2222_2222u32.to_be_bytes());
        p.extend_from_slice(&[0xBE, 0xDE, 0x00, 0x01, 0x10, 0xAB, 0x00, 0x00]);
        p.extend((0..payload_len).map(|i| (i as u8) ^ (seq as u8)));
        p
    }

    /// Header length of [`rtp`] packets.
    pub(crate) const RTP_HDR: usize = 12 + 8 + 8;

    /// A plain 12-byte-header RTP packet (what the bench uses).
    pub(crate) fn rtp_plain(ssrc: u32, seq: u16, payload_len: usize) -> Vec<u8> {
        let mut p = vec![0x80, 111];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&(u32::from(seq) * 960).to_be_bytes());
        p.extend_from_slice(&ssrc.to_be_bytes());
        p.extend((0..payload_len).map(|i| i as u8));
        p
    }

    /// A compound RTCP packet: SR (no report blocks) followed by an SDES CNAME chunk.
    pub(crate) fn rtcp(ssrc: u32, n: u32) -> Vec<u8> {
        let mut p = vec![0x80, 200, 0x00, 0x06];
        p.extend_from_slice(&ssrc.to_be_bytes());
        p.extend_from_slice(&[0xE0, 0x00, 0x00, 0x00, 0x12, 0x34, 0x56, 0x78]);
        p.extend_from_slice(&n.to_be_bytes());
        p.extend_from_slice(&n.wrapping_mul(3).to_be_bytes());
        p.extend_from_slice(&n.wrapping_mul(100).to_be_bytes());
        // SDES: one chunk, CNAME "sluice", END, padded to a word.
        p.extend_from_slice(&[0x81, 202, 0x00, 0x04]);
        p.extend_from_slice(&ssrc.to_be_bytes());
        p.extend_from_slice(&[1, 6, b's', b'l', b'u', b'i', b'c', b'e']);
        p.extend_from_slice(&[0, 0, 0, 0]);
        p
    }

    /// `pkt` copied into a buffer with `extra` spare bytes at the end.
    pub(crate) fn with_room(pkt: &[u8], extra: usize) -> Vec<u8> {
        let mut v = pkt.to_vec();
        v.resize(pkt.len() + extra, 0);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_metadata() {
        use SrtpProfile::*;
        assert_eq!(
            SrtpProfile::ALL,
            [
                Aes128CmHmacSha1_80,
                Aes128CmHmacSha1_32,
                AeadAes128Gcm,
                AeadAes256Gcm
            ]
        );
        let table = [
            (
                Aes128CmHmacSha1_80,
                16,
                14,
                10,
                14,
                "AES_CM_128_HMAC_SHA1_80",
                "aescm",
                0x0001,
            ),
            (
                Aes128CmHmacSha1_32,
                16,
                14,
                4,
                14,
                "AES_CM_128_HMAC_SHA1_32",
                "aescm32",
                0x0002,
            ),
            (
                AeadAes128Gcm,
                16,
                12,
                16,
                20,
                "AEAD_AES_128_GCM",
                "aes128gcm",
                0x0007,
            ),
            (
                AeadAes256Gcm,
                32,
                12,
                16,
                20,
                "AEAD_AES_256_GCM",
                "aes256gcm",
                0x0008,
            ),
        ];
        for (p, k, s, t, o, name, short, id) in table {
            assert_eq!(p.master_key_len(), k);
            assert_eq!(p.master_salt_len(), s);
            assert_eq!(p.rtp_tag_len(), t);
            assert_eq!(p.rtcp_overhead(), o);
            assert_eq!(p.name(), name);
            assert_eq!(p.short_name(), short);
            assert_eq!(p.dtls_id(), id);
            assert_eq!(short.parse::<SrtpProfile>(), Ok(p));
            assert_eq!(name.parse::<SrtpProfile>(), Ok(p));
            assert_eq!(name.to_ascii_lowercase().parse::<SrtpProfile>(), Ok(p));
            assert_eq!(short.to_ascii_uppercase().parse::<SrtpProfile>(), Ok(p));
        }
        assert_eq!(
            "chacha".parse::<SrtpProfile>(),
            Err(SrtpError::UnknownProfile("chacha".to_string()))
        );
    }

    #[test]
    fn engine_parse() {
        assert_eq!("inplace".parse::<SrtpEngine>(), Ok(SrtpEngine::InPlace));
        assert_eq!(
            "webrtc-srtp".parse::<SrtpEngine>(),
            Ok(SrtpEngine::WebrtcSrtp)
        );
        assert_eq!(
            "WebRTC-SRTP".parse::<SrtpEngine>(),
            Ok(SrtpEngine::WebrtcSrtp)
        );
        assert!("openssl".parse::<SrtpEngine>().is_err());
        assert_eq!(SrtpEngine::default(), SrtpEngine::InPlace);
    }

    #[test]
    fn keys_validate_lengths_and_debug_hides_bytes() {
        let err = SrtpKeys::new(SrtpProfile::AeadAes256Gcm, &[1; 16], &[2; 12]).unwrap_err();
        assert_eq!(
            err,
            SrtpError::BadKeyLength {
                expected: 32,
                got: 16
            }
        );
        let err = SrtpKeys::new(SrtpProfile::Aes128CmHmacSha1_80, &[1; 16], &[2; 12]).unwrap_err();
        assert_eq!(
            err,
            SrtpError::BadKeyLength {
                expected: 14,
                got: 12
            }
        );
        let k = SrtpKeys::new(SrtpProfile::Aes128CmHmacSha1_80, &[0xAB; 16], &[0xCD; 14]).unwrap();
        let dbg = format!("{k:?}");
        assert!(
            !dbg.contains("171") && !dbg.to_lowercase().contains("ab, "),
            "{dbg}"
        );
        assert!(dbg.contains("redacted"));
        // A hand-built SrtpKeys with bad lengths is refused by the context too.
        let bad = SrtpKeys {
            profile: k.profile,
            master_key: vec![0; 3],
            master_salt: k.master_salt.clone(),
        };
        for engine in [SrtpEngine::InPlace, SrtpEngine::WebrtcSrtp] {
            assert!(matches!(
                SrtpContext::new(engine, &bad),
                Err(SrtpError::BadKeyLength {
                    expected: 16,
                    got: 3
                })
            ));
        }
    }

    #[test]
    fn rtp_header_len_bounds() {
        let p = testutil::rtp(1, 2, 10);
        assert_eq!(rtp_header_len(&p), Ok(testutil::RTP_HDR));
        assert_eq!(
            rtp_header_len(&p[..testutil::RTP_HDR]),
            Ok(testutil::RTP_HDR)
        );
        assert_eq!(
            rtp_header_len(&p[..testutil::RTP_HDR - 1]),
            Err(SrtpError::Malformed)
        );
        assert_eq!(rtp_header_len(&p[..19]), Err(SrtpError::Malformed));
        assert_eq!(rtp_header_len(&p[..11]), Err(SrtpError::TooShort));
        assert_eq!(rtp_header_len(&[]), Err(SrtpError::TooShort));
        let mut v1 = p.clone();
        v1[0] = (v1[0] & 0x3f) | 0x40;
        assert_eq!(rtp_header_len(&v1), Err(SrtpError::Malformed));
        // Extension length 0xffff words runs far past the end.
        let mut big = p.clone();
        big[22] = 0xff;
        big[23] = 0xff;
        assert_eq!(rtp_header_len(&big), Err(SrtpError::Malformed));
        // 15 CSRCs in a short packet.
        let mut cc = testutil::rtp_plain(1, 2, 20);
        cc[0] |= 0x0f;
        assert_eq!(rtp_header_len(&cc), Err(SrtpError::Malformed));
    }
}
