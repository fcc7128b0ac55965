//! The in-place SRTP engine: AES_CM_128_HMAC_SHA1_80 (RFC 3711 §4.1.1, §4.2) and
//! AEAD_AES_128_GCM / AEAD_AES_256_GCM (RFC 7714 §8, §9), for SRTP and SRTCP. AES-CM and HMAC-SHA1
//! use the RustCrypto primitives (as webrtc-srtp does); AES-GCM uses ring, whose AES-NI/CLMUL code
//! with aggregated GHASH costs well under half of RustCrypto's aes-gcm on a 172-byte packet
//! (`cargo bench --bench srtp -- gcm_primitive`; figures in the README).
//!
//! Invariants:
//! - Every key schedule (AES round keys, GHASH key, HMAC-SHA1 inner/outer state) is built once in
//!   [`InPlaceContext::new`]; per packet the only copies are stack copies (the keyed HMAC state is
//!   cloned, the AES key is borrowed by the CTR wrapper). No heap allocation per packet.
//! - Per-SSRC state lives in a table of at most [`SrtpContext::MAX_STREAMS`] slots, searched
//!   linearly (32 compares of a `u32` cost less than hashing). A slot is taken on the send side at
//!   the first protected packet, on the receive side only after the first packet authenticated.
//!   The table starts with room for [`INITIAL_STREAMS`] and doubles when a new SSRC needs more (at
//!   most three times per context), so a member's two contexts cost under 1 KiB, not 7, and a
//!   packet of a stream already known never allocates.
//! - Unprotect computes everything from a copy of the slot's window and writes the slot only after
//!   authentication succeeded, so a failure leaves the context unchanged.

use aes::cipher::{InnerIvInit, KeyInit, StreamCipher};
use aes::Aes128;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use subtle::ConstantTimeEq;
use zeroize::Zeroize;

use super::kdf::{self, derive};
use super::replay::{IndexError, IndexWindow};
use super::{
    rtcp_ssrc, rtp_header_len, rtp_ssrc_seq, SrtpContext, SrtpError, SrtpKeys, SrtpProfile,
};

type HmacSha1 = Hmac<Sha1>;

/// Bytes of the HMAC-SHA1 output kept as the tag (80 bits).
const CM_TAG_LEN: usize = 10;
/// GCM tag length (RFC 7714 §5: 16 octets).
const GCM_TAG_LEN: usize = 16;
/// E flag of the SRTCP index word (RFC 3711 §3.4).
const SRTCP_E_FLAG: u32 = 0x8000_0000;
/// Largest SRTCP index (31 bits).
const MAX_SRTCP_INDEX: u32 = 0x7fff_ffff;
/// Bytes of RTCP header + sender SSRC that stay in the clear (RFC 3711 §3.4).
const RTCP_CLEAR: usize = 8;

/// Session keys of one of SRTP/SRTCP for AES-CM + HMAC-SHA1.
struct CmKeys {
    aes: Aes128,
    salt: [u8; 14],
    auth: HmacSha1,
}

impl CmKeys {
    fn new(keys: &SrtpKeys, enc: u8, auth: u8, salt: u8) -> Result<Self, SrtpError> {
        let mut k = [0u8; 16];
        derive(&keys.master_key, &keys.master_salt, enc, &mut k)?;
        let mut s = [0u8; 14];
        derive(&keys.master_key, &keys.master_salt, salt, &mut s)?;
        let mut a = [0u8; 20];
        derive(&keys.master_key, &keys.master_salt, auth, &mut a)?;
        let aes = Aes128::new(&k.into());
        let auth = <HmacSha1 as Mac>::new_from_slice(&a).map_err(|_| SrtpError::BadKeyLength {
            expected: 20,
            got: a.len(),
        });
        k.zeroize();
        a.zeroize();
        Ok(CmKeys {
            aes,
            salt: s,
            auth: auth?,
        })
    }
}

/// The AES key schedule zeroizes itself (the `aes` crate's `zeroize` feature); the salt is ours.
impl Drop for CmKeys {
    fn drop(&mut self) {
        self.salt.zeroize();
    }
}

/// Session keys of one of SRTP/SRTCP for AES-GCM, 128 or 256 (the profile picks ring's algorithm;
/// the key length follows from it). ring's AES-GCM because its AES-NI/CLMUL code is the fastest we
/// measured (module docs); `LessSafeKey` because SRTP derives a unique nonce per packet from the SRTP
/// index itself (RFC 7714 §8.1), which ring's nonce sequences cannot express.
struct GcmKeys {
    aead: ring::aead::LessSafeKey,
    salt: [u8; 12],
}

/// ring keeps its expanded key private (it offers no zeroize); the salt is ours.
impl Drop for GcmKeys {
    fn drop(&mut self) {
        self.salt.zeroize();
    }
}

impl GcmKeys {
    /// Derives the session key (`alg.key_len()` bytes) and salt with the labels `enc` and `salt`.
    fn new(
        keys: &SrtpKeys,
        alg: &'static ring::aead::Algorithm,
        enc: u8,
        salt: u8,
    ) -> Result<Self, SrtpError> {
        let mut k = [0u8; 32];
        let k = &mut k[..alg.key_len().min(32)];
        derive(&keys.master_key, &keys.master_salt, enc, k)?;
        let mut s = [0u8; 12];
        derive(&keys.master_key, &keys.master_salt, salt, &mut s)?;
        let key = ring::aead::UnboundKey::new(alg, k).map_err(|_| SrtpError::BadKeyLength {
            expected: alg.key_len(),
            got: k.len(),
        });
        k.zeroize();
        let key = key?;
        Ok(GcmKeys {
            aead: ring::aead::LessSafeKey::new(key),
            salt: s,
        })
    }

    /// Encrypts `body` in place, authenticating `aad` too; returns the tag.
    #[inline]
    fn seal(
        &self,
        iv: &[u8; 12],
        aad: &[u8],
        body: &mut [u8],
    ) -> Result<[u8; GCM_TAG_LEN], SrtpError> {
        let nonce = ring::aead::Nonce::assume_unique_for_key(*iv);
        let tag = self
            .aead
            .seal_in_place_separate_tag(nonce, ring::aead::Aad::from(aad), body)
            .map_err(|_| SrtpError::Malformed)?;
        tag.as_ref().try_into().map_err(|_| SrtpError::Malformed)
    }

    /// Checks the tag at the end of `body_and_tag` and decrypts the rest in place.
    #[inline]
    fn open(&self, iv: &[u8; 12], aad: &[u8], body_and_tag: &mut [u8]) -> Result<(), SrtpError> {
        let nonce = ring::aead::Nonce::assume_unique_for_key(*iv);
        self.aead
            .open_in_place(nonce, ring::aead::Aad::from(aad), body_and_tag)
            .map(|_| ())
            .map_err(|_| SrtpError::AuthenticationFailed)
    }
}

// The context (and so this enum) lives in one Box built at setup and is never moved per packet, so
// the size difference between the AES-CM and GCM variants costs nothing.
#[allow(clippy::large_enum_variant)]
enum Transform {
    Cm {
        rtp: CmKeys,
        rtcp: CmKeys,
    },
    /// AEAD_AES_128_GCM or AEAD_AES_256_GCM: the same transform, only the key length differs.
    Gcm {
        rtp: GcmKeys,
        rtcp: GcmKeys,
    },
}

impl Transform {
    /// The AES-GCM transform with ring's `alg` (AES-128 or AES-256).
    fn gcm(keys: &SrtpKeys, alg: &'static ring::aead::Algorithm) -> Result<Self, SrtpError> {
        use kdf::*;
        Ok(Transform::Gcm {
            rtp: GcmKeys::new(keys, alg, LABEL_SRTP_ENCRYPTION, LABEL_SRTP_SALT)?,
            rtcp: GcmKeys::new(keys, alg, LABEL_SRTCP_ENCRYPTION, LABEL_SRTCP_SALT)?,
        })
    }
}

/// Per-SSRC state. One direction only, so `rtp`/`rtcp` are the send- or the receive-side view.
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    ssrc: u32,
    /// Highest SRTP index (ROC ‖ SEQ) and replay bitmap.
    rtp: IndexWindow,
    /// Highest SRTCP index and replay bitmap (receive side).
    rtcp: IndexWindow,
    /// Next SRTCP index to send (send side).
    rtcp_next: u32,
}

/// Streams a context has room for before its table first grows: a publisher's context sees one or
/// two SSRCs, a subscriber's one per slot.
pub(crate) const INITIAL_STREAMS: usize = 4;

/// The in-place engine behind [`SrtpContext`].
pub(crate) struct InPlaceContext {
    profile: SrtpProfile,
    transform: Transform,
    /// At most [`SrtpContext::MAX_STREAMS`].
    slots: Vec<Slot>,
}

fn index_err(e: IndexError) -> SrtpError {
    match e {
        IndexError::Replayed => SrtpError::Replayed,
        IndexError::Exhausted => {
            SrtpError::Backend("SRTP packet index exhausted (2^48 packets); rekey required".into())
        }
    }
}

/// AES-CM IV (RFC 3711 §4.1.1): `(k_s * 2^16) XOR (SSRC * 2^64) XOR (i * 2^16)`, where `i` is the
/// 48-bit SRTP index or the 31-bit SRTCP index.
fn cm_iv(salt: &[u8; 14], ssrc: u32, index: u64) -> [u8; 16] {
    let mut iv = [0u8; 16];
    iv[..14].copy_from_slice(salt);
    for (d, s) in iv[4..8].iter_mut().zip(ssrc.to_be_bytes()) {
        *d ^= s;
    }
    for (d, s) in iv[8..16].iter_mut().zip((index << 16).to_be_bytes()) {
        *d ^= s;
    }
    iv
}

/// AES-GCM IV (RFC 7714 §8.1, §9.1): `(00 00 ‖ SSRC ‖ ROC ‖ SEQ) XOR salt` for SRTP and
/// `(00 00 ‖ SSRC ‖ 00 00 ‖ 0 ‖ SRTCP index) XOR salt` for SRTCP — both are `SSRC ‖ 48-bit index`.
fn gcm_iv(salt: &[u8; 12], ssrc: u32, index: u64) -> [u8; 12] {
    let mut iv = [0u8; 12];
    iv[2..6].copy_from_slice(&ssrc.to_be_bytes());
    iv[6..12].copy_from_slice(&index.to_be_bytes()[2..8]);
    for (d, s) in iv.iter_mut().zip(salt) {
        *d ^= s;
    }
    iv
}

/// XORs the AES-CM keystream starting at `iv` into `data`.
fn cm_apply(aes: &Aes128, iv: &[u8; 16], data: &mut [u8]) {
    // Borrow the prepared key schedule instead of cloning it into the CTR state.
    let core = ctr::CtrCore::<&Aes128, ctr::flavors::Ctr128BE>::inner_iv_init(aes, iv.into());
    let mut c = ctr::Ctr128BE::<&Aes128>::from_core(core);
    c.apply_keystream(data);
}

/// HMAC-SHA1 over `data` (‖ ROC for SRTP, RFC 3711 §4.2), from the prepared keyed state.
fn hmac_tag(auth: &HmacSha1, data: &[u8], roc: Option<u32>) -> [u8; 20] {
    let mut m = auth.clone();
    m.update(data);
    if let Some(roc) = roc {
        m.update(&roc.to_be_bytes());
    }
    m.finalize().into_bytes().into()
}

/// SRTP (RFC 7714 §8.2): AAD is the RTP header `buf[..hdr]`, the payload `buf[hdr..end]` is sealed.
fn gcm_seal_rtp(
    k: &GcmKeys,
    ssrc: u32,
    index: u64,
    buf: &mut [u8],
    hdr: usize,
    end: usize,
) -> Result<(), SrtpError> {
    let iv = gcm_iv(&k.salt, ssrc, index);
    let (aad, rest) = buf.split_at_mut(hdr);
    let (body, trailer) = rest.split_at_mut(end - hdr);
    let available = end + trailer.len();
    let tag_out = trailer
        .get_mut(..GCM_TAG_LEN)
        .ok_or(SrtpError::BufferTooSmall {
            needed: end + GCM_TAG_LEN,
            available,
        })?;
    let tag = k.seal(&iv, aad, body)?;
    tag_out.copy_from_slice(&tag);
    Ok(())
}

fn gcm_open_rtp(
    k: &GcmKeys,
    ssrc: u32,
    index: u64,
    buf: &mut [u8],
    hdr: usize,
    end: usize,
) -> Result<(), SrtpError> {
    let iv = gcm_iv(&k.salt, ssrc, index);
    let (aad, rest) = buf.split_at_mut(hdr);
    let body_and_tag = rest
        .get_mut(..end - hdr + GCM_TAG_LEN)
        .ok_or(SrtpError::TooShort)?;
    k.open(&iv, aad, body_and_tag)
}

/// SRTCP (RFC 7714 §9.2, §17): AAD is the first 8 octets ‖ E‖index; output is
/// `header ‖ ciphertext ‖ tag ‖ E‖index`.
fn gcm_seal_rtcp(
    k: &GcmKeys,
    ssrc: u32,
    index: u32,
    buf: &mut [u8],
    len: usize,
) -> Result<(), SrtpError> {
    let word = (index | SRTCP_E_FLAG).to_be_bytes();
    let mut aad = [0u8; RTCP_CLEAR + 4];
    aad[..RTCP_CLEAR].copy_from_slice(&buf[..RTCP_CLEAR]);
    aad[RTCP_CLEAR..].copy_from_slice(&word);
    let iv = gcm_iv(&k.salt, ssrc, u64::from(index));
    let tag = k.seal(&iv, &aad, &mut buf[RTCP_CLEAR..len])?;
    buf[len..len + GCM_TAG_LEN].copy_from_slice(&tag);
    buf[len + GCM_TAG_LEN..len + GCM_TAG_LEN + 4].copy_from_slice(&word);
    Ok(())
}

fn gcm_open_rtcp(k: &GcmKeys, ssrc: u32, word: u32, buf: &mut [u8]) -> Result<(), SrtpError> {
    let total = buf.len();
    let tag_at = total - 4 - GCM_TAG_LEN;
    let mut aad = [0u8; RTCP_CLEAR + 4];
    aad[..RTCP_CLEAR].copy_from_slice(&buf[..RTCP_CLEAR]);
    aad[RTCP_CLEAR..].copy_from_slice(&word.to_be_bytes());
    let iv = gcm_iv(&k.salt, ssrc, u64::from(word & MAX_SRTCP_INDEX));
    k.open(&iv, &aad, &mut buf[RTCP_CLEAR..tag_at + GCM_TAG_LEN])
}

impl InPlaceContext {
    /// Derives the six session keys and builds the key schedules.
    pub(crate) fn new(keys: &SrtpKeys) -> Result<Self, SrtpError> {
        use kdf::*;
        let transform = match keys.profile {
            SrtpProfile::Aes128CmHmacSha1_80 | SrtpProfile::Aes128CmHmacSha1_32 => Transform::Cm {
                rtp: CmKeys::new(
                    keys,
                    LABEL_SRTP_ENCRYPTION,
                    LABEL_SRTP_AUTH,
                    LABEL_SRTP_SALT,
                )?,
                rtcp: CmKeys::new(
                    keys,
                    LABEL_SRTCP_ENCRYPTION,
                    LABEL_SRTCP_AUTH,
                    LABEL_SRTCP_SALT,
                )?,
            },
            SrtpProfile::AeadAes128Gcm => Transform::gcm(keys, &ring::aead::AES_128_GCM)?,
            SrtpProfile::AeadAes256Gcm => Transform::gcm(keys, &ring::aead::AES_256_GCM)?,
        };
        Ok(InPlaceContext {
            profile: keys.profile,
            transform,
            slots: Vec::with_capacity(INITIAL_STREAMS),
        })
    }

    fn find(&self, ssrc: u32) -> Option<usize> {
        self.slots.iter().position(|s| s.ssrc == ssrc)
    }

    /// The slot for `ssrc` if it exists, else a fresh default (not yet stored), or `TooManyStreams`
    /// when the table is full and `ssrc` is new.
    fn lookup(&self, ssrc: u32) -> (Option<usize>, Slot) {
        match self.find(ssrc) {
            Some(i) => (Some(i), self.slots[i]),
            None => (
                None,
                Slot {
                    ssrc,
                    ..Slot::default()
                },
            ),
        }
    }

    /// Stores `slot` (at `at`, or in a new slot). Fails only when a new SSRC finds the table full.
    fn commit(&mut self, at: Option<usize>, slot: Slot) -> Result<(), SrtpError> {
        match at {
            Some(i) => self.slots[i] = slot,
            None => {
                if self.slots.len() >= SrtpContext::MAX_STREAMS {
                    return Err(SrtpError::TooManyStreams);
                }
                self.slots.push(slot);
            }
        }
        Ok(())
    }

    fn table_full_for(&self, at: Option<usize>) -> bool {
        at.is_none() && self.slots.len() >= SrtpContext::MAX_STREAMS
    }

    pub(crate) fn protect_rtp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let available = buf.len();
        let pkt = buf.get(..len).ok_or(SrtpError::BufferTooSmall {
            needed: len,
            available,
        })?;
        let hdr = rtp_header_len(pkt)?;
        let (ssrc, seq) = rtp_ssrc_seq(pkt)?;
        let out_len = len + self.profile.rtp_tag_len();
        if available < out_len {
            return Err(SrtpError::BufferTooSmall {
                needed: out_len,
                available,
            });
        }
        let (at, mut slot) = self.lookup(ssrc);
        if self.table_full_for(at) {
            return Err(SrtpError::TooManyStreams);
        }
        // The sender estimates its own index like a receiver would (RFC 3711 §3.3.1), so the ROC
        // advances when the sequence number wraps and reordered sends keep the right ROC.
        let index = slot.rtp.estimate_rtp_index(seq).map_err(index_err)?;
        match &self.transform {
            Transform::Cm { rtp, .. } => {
                cm_apply(&rtp.aes, &cm_iv(&rtp.salt, ssrc, index), &mut buf[hdr..len]);
                let tag = hmac_tag(&rtp.auth, &buf[..len], Some((index >> 16) as u32));
                // 80 or 32 bits of the HMAC, as the profile says (RFC 3711 §4.2).
                buf[len..out_len].copy_from_slice(&tag[..out_len - len]);
            }
            Transform::Gcm { rtp, .. } => gcm_seal_rtp(rtp, ssrc, index, buf, hdr, len)?,
        }
        slot.rtp.accept(index);
        self.commit(at, slot)?;
        Ok(out_len)
    }

    pub(crate) fn unprotect_rtp(&mut self, buf: &mut [u8]) -> Result<usize, SrtpError> {
        let total = buf.len();
        let tag_len = self.profile.rtp_tag_len();
        if total < 12 + tag_len {
            return Err(SrtpError::TooShort);
        }
        let end = total - tag_len;
        let hdr = rtp_header_len(&buf[..end])?;
        let (ssrc, seq) = rtp_ssrc_seq(buf)?;
        let (at, mut slot) = self.lookup(ssrc);
        let index = slot.rtp.estimate_rtp_index(seq).map_err(index_err)?;
        slot.rtp.check(index).map_err(index_err)?;
        match &self.transform {
            Transform::Cm { rtp, .. } => {
                let (data, tag) = buf.split_at_mut(end);
                let want = hmac_tag(&rtp.auth, data, Some((index >> 16) as u32));
                if !bool::from(want[..tag_len].ct_eq(tag)) {
                    return Err(SrtpError::AuthenticationFailed);
                }
                cm_apply(&rtp.aes, &cm_iv(&rtp.salt, ssrc, index), &mut data[hdr..]);
            }
            Transform::Gcm { rtp, .. } => gcm_open_rtp(rtp, ssrc, index, buf, hdr, end)?,
        }
        slot.rtp.accept(index);
        self.commit(at, slot)?;
        Ok(end)
    }

    pub(crate) fn protect_rtcp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let available = buf.len();
        let pkt = buf.get(..len).ok_or(SrtpError::BufferTooSmall {
            needed: len,
            available,
        })?;
        let ssrc = rtcp_ssrc(pkt)?;
        let out_len = len + self.profile.rtcp_overhead();
        if available < out_len {
            return Err(SrtpError::BufferTooSmall {
                needed: out_len,
                available,
            });
        }
        let (at, mut slot) = self.lookup(ssrc);
        if self.table_full_for(at) {
            return Err(SrtpError::TooManyStreams);
        }
        let index = slot.rtcp_next;
        if index > MAX_SRTCP_INDEX {
            // RFC 3711 §9.2: after 2^31 SRTCP packets the key must be replaced.
            return Err(SrtpError::Backend(
                "SRTCP index exhausted (2^31 packets); rekey required".into(),
            ));
        }
        match &self.transform {
            Transform::Cm { rtcp, .. } => {
                cm_apply(
                    &rtcp.aes,
                    &cm_iv(&rtcp.salt, ssrc, u64::from(index)),
                    &mut buf[RTCP_CLEAR..len],
                );
                buf[len..len + 4].copy_from_slice(&(index | SRTCP_E_FLAG).to_be_bytes());
                let tag = hmac_tag(&rtcp.auth, &buf[..len + 4], None);
                buf[len + 4..out_len].copy_from_slice(&tag[..CM_TAG_LEN]);
            }
            Transform::Gcm { rtcp, .. } => gcm_seal_rtcp(rtcp, ssrc, index, buf, len)?,
        }
        slot.rtcp_next = index + 1;
        self.commit(at, slot)?;
        Ok(out_len)
    }

    pub(crate) fn unprotect_rtcp(&mut self, buf: &mut [u8]) -> Result<usize, SrtpError> {
        let tag_len = self.profile.rtcp_tag_len();
        match self.unprotect_rtcp_with(buf, tag_len) {
            // AES_CM_128_HMAC_SHA1_32 tags SRTCP with 80 bits (RFC 5764 §4.1.2, RFC 4568 §6.2), but
            // ffmpeg (libavformat/srtp.c) tags it with 32 under the SDES name: a packet that fails
            // with the 80-bit tag is tried once with a 32-bit one. Both are checked in constant time
            // against the same key; nothing is changed in `buf` or the replay state on a failure,
            // and when both fail the 80-bit attempt's error is the one reported.
            Err(e @ (SrtpError::AuthenticationFailed | SrtpError::Replayed))
                if self.profile == SrtpProfile::Aes128CmHmacSha1_32 =>
            {
                self.unprotect_rtcp_with(buf, self.profile.rtp_tag_len())
                    .map_err(|_| e)
            }
            r => r,
        }
    }

    fn unprotect_rtcp_with(&mut self, buf: &mut [u8], tag_len: usize) -> Result<usize, SrtpError> {
        let total = buf.len();
        let overhead = tag_len + 4;
        if total < RTCP_CLEAR + overhead {
            return Err(SrtpError::TooShort);
        }
        let ssrc = rtcp_ssrc(buf)?;
        let end = total - overhead;
        // CM: `... ‖ E‖index ‖ tag`; GCM: `... ‖ tag ‖ E‖index`.
        let word_at = match self.transform {
            Transform::Cm { .. } => end,
            _ => total - 4,
        };
        let word = u32::from_be_bytes([
            buf[word_at],
            buf[word_at + 1],
            buf[word_at + 2],
            buf[word_at + 3],
        ]);
        let encrypted = word & SRTCP_E_FLAG != 0;
        let index = word & MAX_SRTCP_INDEX;
        let (at, mut slot) = self.lookup(ssrc);
        slot.rtcp.check(u64::from(index)).map_err(index_err)?;
        match &self.transform {
            Transform::Cm { rtcp, .. } => {
                let (data, tag) = buf.split_at_mut(total - tag_len);
                let want = hmac_tag(&rtcp.auth, data, None);
                if !bool::from(want[..tag_len.min(CM_TAG_LEN)].ct_eq(tag)) {
                    return Err(SrtpError::AuthenticationFailed);
                }
                if encrypted {
                    cm_apply(
                        &rtcp.aes,
                        &cm_iv(&rtcp.salt, ssrc, u64::from(index)),
                        &mut data[RTCP_CLEAR..end],
                    );
                }
            }
            // Unencrypted SRTCP with GCM (RFC 7714 §9.3) would need the whole packet as AAD; it is
            // not used by WebRTC peers and is rejected.
            Transform::Gcm { .. } if !encrypted => return Err(SrtpError::Malformed),
            Transform::Gcm { rtcp, .. } => gcm_open_rtcp(rtcp, ssrc, word, buf)?,
        }
        slot.rtcp.accept(u64::from(index));
        self.commit(at, slot)?;
        Ok(end)
    }

    /// Number of SSRC slots in use.
    #[cfg(test)]
    pub(crate) fn streams(&self) -> usize {
        self.slots.len()
    }
}

#[cfg(test)]
mod tests;
