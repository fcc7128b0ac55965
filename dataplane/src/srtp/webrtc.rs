//! The `webrtc-srtp` engine: a wrapper around `webrtc_srtp::context::Context` with the same method
//! shapes as the in-place engine, copying results back into the caller's buffer.
//!
//! It exists so benchmarks can compare both engines side by side, and it is the reference our
//! in-place engine is tested against. It allocates on every call (inside `webrtc-srtp`: output
//! `Bytes`, GCM nonce/AAD `Vec`s, and with replay protection a boxed detector per lookup); see
//! `/work/shared/LIMITS.md`.
//!
//! Differences from the in-place engine, by construction of `webrtc-srtp`:
//! - Its own per-SSRC maps grow without bound and create state for an SSRC before authentication.
//!   We bound the SSRCs we pass to it to [`SrtpContext::MAX_STREAMS`] ourselves; a packet for a new
//!   SSRC when that table is full is refused (`TooManyStreams`) before it reaches `webrtc-srtp`.
//! - Its SRTP replay window works on the 16-bit sequence number, not the 48-bit index.
//! - Lengths are validated here before calling it, because some of its paths index without checks.

use webrtc_srtp::context::Context;
use webrtc_srtp::option::{srtcp_replay_protection, srtp_replay_protection};
use webrtc_srtp::protection_profile::ProtectionProfile;

use super::replay::WINDOW;
use super::{
    rtcp_ssrc, rtp_header_len, rtp_ssrc_seq, SrtpContext, SrtpError, SrtpKeys, SrtpProfile,
};

/// The `webrtc-srtp` engine behind [`SrtpContext`].
pub(crate) struct WebrtcContext {
    profile: SrtpProfile,
    ctx: Context,
    ssrcs: [u32; SrtpContext::MAX_STREAMS],
    used: usize,
}

fn map_err(e: webrtc_srtp::Error) -> SrtpError {
    use webrtc_srtp::Error as E;
    match e {
        E::ErrFailedToVerifyAuthTag
        | E::RtpFailedToVerifyAuthTag
        | E::RtcpFailedToVerifyAuthTag
        | E::AesGcm(_) => SrtpError::AuthenticationFailed,
        E::SrtpSsrcDuplicated(..) | E::SrtcpSsrcDuplicated(..) | E::ErrDuplicated => {
            SrtpError::Replayed
        }
        E::ErrTooShortRtp | E::ErrTooShortRtcp | E::SrtpTooSmall(..) | E::SrtcpTooSmall(..) => {
            SrtpError::TooShort
        }
        E::SrtpMasterKeyLength(expected, got) | E::SrtpSaltLength(expected, got) => {
            SrtpError::BadKeyLength { expected, got }
        }
        other => SrtpError::Backend(other.to_string()),
    }
}

fn webrtc_profile(p: SrtpProfile) -> ProtectionProfile {
    match p {
        SrtpProfile::Aes128CmHmacSha1_80 => ProtectionProfile::Aes128CmHmacSha1_80,
        SrtpProfile::AeadAes128Gcm => ProtectionProfile::AeadAes128Gcm,
        SrtpProfile::AeadAes256Gcm => ProtectionProfile::AeadAes256Gcm,
    }
}

/// Copies `out` to the front of `buf`.
fn copy_back(buf: &mut [u8], out: &[u8]) -> Result<usize, SrtpError> {
    let available = buf.len();
    let dst = buf.get_mut(..out.len()).ok_or(SrtpError::BufferTooSmall {
        needed: out.len(),
        available,
    })?;
    dst.copy_from_slice(out);
    Ok(out.len())
}

impl WebrtcContext {
    /// Builds a `webrtc-srtp` context with replay protection on for SRTP and SRTCP.
    pub(crate) fn new(keys: &SrtpKeys) -> Result<Self, SrtpError> {
        let ctx = Context::new(
            &keys.master_key,
            &keys.master_salt,
            webrtc_profile(keys.profile),
            Some(srtp_replay_protection(WINDOW as usize)),
            Some(srtcp_replay_protection(WINDOW as usize)),
        )
        .map_err(map_err)?;
        Ok(WebrtcContext {
            profile: keys.profile,
            ctx,
            ssrcs: [0; SrtpContext::MAX_STREAMS],
            used: 0,
        })
    }

    /// Admits `ssrc` into our bounded table, or refuses it when the table is full.
    fn admit(&mut self, ssrc: u32) -> Result<(), SrtpError> {
        if self.ssrcs[..self.used].contains(&ssrc) {
            return Ok(());
        }
        let s = self
            .ssrcs
            .get_mut(self.used)
            .ok_or(SrtpError::TooManyStreams)?;
        *s = ssrc;
        self.used += 1;
        Ok(())
    }

    fn is_known_or_room(&self, ssrc: u32) -> bool {
        self.used < SrtpContext::MAX_STREAMS || self.ssrcs[..self.used].contains(&ssrc)
    }

    pub(crate) fn protect_rtp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let available = buf.len();
        let pkt = buf.get(..len).ok_or(SrtpError::BufferTooSmall {
            needed: len,
            available,
        })?;
        rtp_header_len(pkt)?;
        let (ssrc, _) = rtp_ssrc_seq(pkt)?;
        let needed = len + self.profile.rtp_tag_len();
        if available < needed {
            return Err(SrtpError::BufferTooSmall { needed, available });
        }
        if !self.is_known_or_room(ssrc) {
            return Err(SrtpError::TooManyStreams);
        }
        let out = self.ctx.encrypt_rtp(pkt).map_err(map_err)?;
        self.admit(ssrc)?;
        copy_back(buf, &out)
    }

    pub(crate) fn unprotect_rtp(&mut self, buf: &mut [u8]) -> Result<usize, SrtpError> {
        let tag_len = self.profile.rtp_tag_len();
        if buf.len() < 12 + tag_len {
            return Err(SrtpError::TooShort);
        }
        rtp_header_len(&buf[..buf.len() - tag_len])?;
        let (ssrc, _) = rtp_ssrc_seq(buf)?;
        if !self.is_known_or_room(ssrc) {
            return Err(SrtpError::TooManyStreams);
        }
        let out = self.ctx.decrypt_rtp(buf).map_err(map_err)?;
        self.admit(ssrc)?;
        copy_back(buf, &out)
    }

    pub(crate) fn protect_rtcp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let available = buf.len();
        let pkt = buf.get(..len).ok_or(SrtpError::BufferTooSmall {
            needed: len,
            available,
        })?;
        let ssrc = rtcp_ssrc(pkt)?;
        let needed = len + self.profile.rtcp_overhead();
        if available < needed {
            return Err(SrtpError::BufferTooSmall { needed, available });
        }
        if !self.is_known_or_room(ssrc) {
            return Err(SrtpError::TooManyStreams);
        }
        let out = self.ctx.encrypt_rtcp(pkt).map_err(map_err)?;
        self.admit(ssrc)?;
        copy_back(buf, &out)
    }

    pub(crate) fn unprotect_rtcp(&mut self, buf: &mut [u8]) -> Result<usize, SrtpError> {
        if buf.len() < 8 + self.profile.rtcp_overhead() {
            return Err(SrtpError::TooShort);
        }
        let ssrc = rtcp_ssrc(buf)?;
        if !self.is_known_or_room(ssrc) {
            return Err(SrtpError::TooManyStreams);
        }
        let out = self.ctx.decrypt_rtcp(buf).map_err(map_err)?;
        self.admit(ssrc)?;
        copy_back(buf, &out)
    }
}
