//! The `webrtc-srtp` engine: a wrapper around `webrtc_srtp::context::Context` with the same method
//! shapes as the in-place engine, copying results back into the caller's buffer.
//!
//! It exists so benchmarks can compare both engines side by side, and it is the reference our
//! in-place engine is tested against. It allocates on every call (inside `webrtc-srtp`: output
//! `Bytes`, GCM nonce/AAD `Vec`s, and with replay protection a boxed detector per lookup); see
//! `docs/host-limits.md`.
//!
//! Differences from the in-place engine, by construction of `webrtc-srtp`:
//! - Its own per-SSRC maps grow without bound and create state for an SSRC before authentication.
//!   We bound the SSRCs we pass to it to [`SrtpContext::MAX_STREAMS`] ourselves; a packet for a new
//!   SSRC when that table is full is refused (`TooManyStreams`) before it reaches `webrtc-srtp`.
//! - Its SRTP replay window works on the 16-bit sequence number, not the 48-bit index.
//! - Lengths are validated here before calling it, because some of its paths index without checks.
//! - SRTCP with the E flag clear is refused (`Malformed`): `webrtc-srtp` 0.17.2 accepts such packets
//!   for AES-CM without verifying the authentication tag.

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

impl SrtpProfile {
    /// The same profile in `webrtc-srtp`'s terms (the oracle every SRTP test checks against).
    pub fn webrtc(self) -> ProtectionProfile {
        match self {
            SrtpProfile::Aes128CmHmacSha1_80 => ProtectionProfile::Aes128CmHmacSha1_80,
            SrtpProfile::Aes128CmHmacSha1_32 => ProtectionProfile::Aes128CmHmacSha1_32,
            SrtpProfile::AeadAes128Gcm => ProtectionProfile::AeadAes128Gcm,
            SrtpProfile::AeadAes256Gcm => ProtectionProfile::AeadAes256Gcm,
        }
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
            keys.profile.webrtc(),
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
        if !extension_elements_fit(pkt) {
            return Err(SrtpError::Malformed);
        }
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
        if !extension_elements_fit(buf) {
            return Err(SrtpError::Malformed);
        }
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
        // The E flag sits before the tag for AES-CM (RFC 3711 §3.4) and last for GCM (RFC 7714 §9.2).
        let e_at = match self.profile {
            SrtpProfile::Aes128CmHmacSha1_80 | SrtpProfile::Aes128CmHmacSha1_32 => {
                buf.len() - self.profile.rtcp_overhead()
            }
            SrtpProfile::AeadAes128Gcm | SrtpProfile::AeadAes256Gcm => buf.len() - 4,
        };
        if buf[e_at] & 0x80 == 0 {
            // webrtc-srtp 0.17.2 returns an E=0 AES-CM SRTCP packet *without checking its tag*
            // (ctrcipher.rs `decrypt_rtcp`), so anyone could inject RTCP. WebRTC peers always
            // encrypt SRTCP; refuse E=0 here.
            return Err(SrtpError::Malformed);
        }
        if !self.is_known_or_room(ssrc) {
            return Err(SrtpError::TooManyStreams);
        }
        let out = self.ctx.decrypt_rtcp(buf).map_err(map_err)?;
        self.admit(ssrc)?;
        copy_back(buf, &out)
    }
}

/// Whether every RFC 8285 element of the packet's header extension fits inside the extension block.
/// webrtc-srtp 0.17 parses headers with the `rtp` crate, which panics (a slice out of range) on an
/// element that overruns its block (found by the `srtp_unprotect` fuzz target); such packets are
/// refused before it sees them. The header and block are in the clear in SRTP too.
fn extension_elements_fit(pkt: &[u8]) -> bool {
    crate::packet::RtpHeader::parse_encrypted(pkt)
        .is_ok_and(|h| h.extensions().is_none_or(|e| e.elements_fit()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::srtp::testutil::{keys, rtcp, rtp, with_room};
    use crate::srtp::SrtpEngine;

    fn pair(
        profile: SrtpProfile,
        seed: u8,
        tx: SrtpEngine,
        rx: SrtpEngine,
    ) -> (SrtpContext, SrtpContext) {
        let k = keys(profile, seed);
        (
            SrtpContext::new(tx, &k).unwrap(),
            SrtpContext::new(rx, &k).unwrap(),
        )
    }

    fn send_rtp(tx: &mut SrtpContext, pkt: &[u8]) -> Vec<u8> {
        let mut b = with_room(pkt, tx.profile().rtp_tag_len() + 7);
        let n = tx.protect_rtp(&mut b, pkt.len()).unwrap();
        assert_eq!(n, pkt.len() + tx.profile().rtp_tag_len());
        b.truncate(n);
        b
    }

    fn send_rtcp(tx: &mut SrtpContext, pkt: &[u8]) -> Vec<u8> {
        let mut b = with_room(pkt, tx.profile().rtcp_overhead());
        let n = tx.protect_rtcp(&mut b, pkt.len()).unwrap();
        b.truncate(n);
        b
    }

    fn recv_rtp(rx: &mut SrtpContext, srtp: &[u8]) -> Result<Vec<u8>, SrtpError> {
        let mut b = srtp.to_vec();
        let n = rx.unprotect_rtp(&mut b)?;
        b.truncate(n);
        Ok(b)
    }

    fn recv_rtcp(rx: &mut SrtpContext, srtcp: &[u8]) -> Result<Vec<u8>, SrtpError> {
        let mut b = srtcp.to_vec();
        let n = rx.unprotect_rtcp(&mut b)?;
        b.truncate(n);
        Ok(b)
    }

    /// Found by the `srtp_unprotect` fuzz target: a one-byte extension element (id 3, 14 bytes)
    /// overrunning its 4-byte block panicked inside webrtc-srtp; both engines now refuse it, and a
    /// well-formed packet with extensions still opens (both ways).
    #[test]
    fn an_extension_element_overrunning_its_block_is_refused_not_a_panic() {
        let bad = hex::decode("90e06f89fc18d2c54930187dbede00013d89fe18ebd91b0e60e2").unwrap();
        for engine in [SrtpEngine::InPlace, SrtpEngine::WebrtcSrtp] {
            let (_, mut rx) = pair(SrtpProfile::Aes128CmHmacSha1_32, 1, engine, engine);
            assert!(recv_rtp(&mut rx, &bad).is_err(), "{engine:?}");
            let (mut tx, _) = pair(SrtpProfile::Aes128CmHmacSha1_32, 1, engine, engine);
            let mut b = bad.clone();
            b.resize(bad.len() + 4, 0);
            assert!(tx.protect_rtp(&mut b, bad.len()).is_err() || engine == SrtpEngine::InPlace);
        }
        assert!(extension_elements_fit(&rtp(1, 1, 20)));
        let mut ok = vec![0x90, 111, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1];
        ok.extend_from_slice(&[0xBE, 0xDE, 0, 1, 0x10, 0x80, 0, 0]);
        ok.extend_from_slice(&[7; 20]);
        assert!(extension_elements_fit(&ok));
        ok[16] = 0x1d; // id 1, 14 bytes: past the block
        assert!(!extension_elements_fit(&ok));
    }

    /// Found by the srtp_unprotect fuzz target: a one-byte-form element with ID 0 and a length
    /// (`0x0f`: 16 bytes). Our iterator stops there; the `rtp` crate reads it as an element and
    /// panicked advancing past the end of the packet.
    #[test]
    fn an_extension_id_0_with_a_length_is_refused_not_a_panic() {
        let bad = hex::decode("906f58e03d8902da85cb187dbede0001000f302030eeddb7302030eeddb770c529")
            .unwrap();
        assert!(!extension_elements_fit(&bad));
        for profile in SrtpProfile::ALL {
            for engine in [SrtpEngine::InPlace, SrtpEngine::WebrtcSrtp] {
                let (_, mut rx) = pair(profile, 7, engine, engine);
                let mut b = bad.clone();
                assert!(rx.unprotect_rtp(&mut b).is_err(), "{profile:?} {engine:?}");
                assert_eq!(b, bad, "a refused packet is left as it was");
            }
        }
    }

    /// Each engine unprotects what the other protects, for every profile, SRTP and SRTCP.
    #[test]
    fn engines_interoperate_both_ways() {
        use SrtpEngine::{InPlace, WebrtcSrtp};
        for profile in SrtpProfile::ALL {
            for (a, b) in [
                (InPlace, WebrtcSrtp),
                (WebrtcSrtp, InPlace),
                (WebrtcSrtp, WebrtcSrtp),
            ] {
                let (mut tx, mut rx) = pair(profile, 20, a, b);
                assert_eq!(tx.engine(), a);
                for seq in [65_530u16, 65_531, 65_535, 0, 65_534, 1, 2] {
                    let p = rtp(0xABCD, seq, 160);
                    let got = recv_rtp(&mut rx, &send_rtp(&mut tx, &p));
                    assert_eq!(got.as_ref(), Ok(&p), "{profile:?} {a:?}->{b:?} seq {seq}");
                }
                for n in 0..4 {
                    let c = rtcp(0xABCD, n);
                    assert_eq!(
                        recv_rtcp(&mut rx, &send_rtcp(&mut tx, &c)),
                        Ok(c),
                        "{profile:?} {a:?}->{b:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn webrtc_engine_maps_errors() {
        for profile in SrtpProfile::ALL {
            let (mut tx, mut rx) = pair(profile, 21, SrtpEngine::InPlace, SrtpEngine::WebrtcSrtp);
            let p = rtp(5, 100, 50);
            let s = send_rtp(&mut tx, &p);
            let mut bad = s.clone();
            bad[40] ^= 1;
            assert_eq!(
                recv_rtp(&mut rx, &bad),
                Err(SrtpError::AuthenticationFailed),
                "{profile:?}"
            );
            assert_eq!(recv_rtp(&mut rx, &s), Ok(p.clone()));
            assert_eq!(
                recv_rtp(&mut rx, &s),
                Err(SrtpError::Replayed),
                "{profile:?}"
            );
            for n in 0..12 {
                assert!(recv_rtp(&mut rx, &s[..n]).is_err());
            }
            let c = rtcp(5, 1);
            let sc = send_rtcp(&mut tx, &c);
            let mut bad = sc.clone();
            bad[12] ^= 1;
            assert_eq!(
                recv_rtcp(&mut rx, &bad),
                Err(SrtpError::AuthenticationFailed),
                "{profile:?}"
            );
            assert_eq!(recv_rtcp(&mut rx, &sc), Ok(c));
            assert_eq!(
                recv_rtcp(&mut rx, &sc),
                Err(SrtpError::Replayed),
                "{profile:?}"
            );
            for n in 0..sc.len() {
                let r = recv_rtcp(&mut rx, &sc[..n]);
                assert!(r.is_err(), "{profile:?} len {n} of {}: {r:?}", sc.len());
            }
            // No room for the tag.
            let mut b = p.clone();
            assert!(matches!(
                tx.protect_rtp(&mut b, p.len()),
                Err(SrtpError::BufferTooSmall { .. })
            ));
        }
    }

    /// An unauthenticated E=0 SRTCP packet (here: a valid one truncated so that a payload byte with
    /// the top bit clear lands where the E flag is read) must be refused by both engines.
    /// Raw webrtc-srtp 0.17.2 returns it as plaintext without checking the tag (AES-CM).
    #[test]
    fn forged_unencrypted_srtcp_is_refused() {
        let profile = SrtpProfile::Aes128CmHmacSha1_80;
        let k = keys(profile, 23);
        let mut forged = rtcp(5, 0);
        forged.extend_from_slice(&7u32.to_be_bytes()); // E=0, index 7
        forged.extend_from_slice(&[0u8; 10]); // garbage tag
        let mut web = SrtpContext::new(SrtpEngine::WebrtcSrtp, &k).unwrap();
        assert_eq!(recv_rtcp(&mut web, &forged), Err(SrtpError::Malformed));
        let mut ours = SrtpContext::new(SrtpEngine::InPlace, &k).unwrap();
        assert_eq!(
            recv_rtcp(&mut ours, &forged),
            Err(SrtpError::AuthenticationFailed)
        );
    }

    #[test]
    fn webrtc_engine_bounds_ssrcs() {
        let profile = SrtpProfile::AeadAes128Gcm;
        let (mut tx, mut rx) = pair(profile, 22, SrtpEngine::WebrtcSrtp, SrtpEngine::WebrtcSrtp);
        for ssrc in 0..SrtpContext::MAX_STREAMS as u32 {
            let p = rtp(ssrc, 1, 10);
            assert_eq!(recv_rtp(&mut rx, &send_rtp(&mut tx, &p)), Ok(p));
        }
        let p = rtp(999, 1, 10);
        let mut b = with_room(&p, 16);
        assert_eq!(
            tx.protect_rtp(&mut b, p.len()),
            Err(SrtpError::TooManyStreams)
        );
        let (mut tx2, _) = pair(profile, 22, SrtpEngine::InPlace, SrtpEngine::InPlace);
        assert_eq!(
            recv_rtp(&mut rx, &send_rtp(&mut tx2, &p)),
            Err(SrtpError::TooManyStreams)
        );
    }
}
