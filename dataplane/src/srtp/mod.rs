//! TEMPORARY compile shim; replaced by the SRTP work item.
#![allow(missing_docs, dead_code, unused)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SrtpProfile { Aes128CmHmacSha1_80, AeadAes128Gcm, AeadAes256Gcm }
impl SrtpProfile {
    pub const ALL: [SrtpProfile; 3] = [Self::Aes128CmHmacSha1_80, Self::AeadAes128Gcm, Self::AeadAes256Gcm];
    pub fn master_key_len(self) -> usize { todo!() }
    pub fn master_salt_len(self) -> usize { todo!() }
    pub fn rtp_tag_len(self) -> usize { todo!() }
    pub fn rtcp_overhead(self) -> usize { todo!() }
    pub fn name(self) -> &'static str { todo!() }
    pub fn short_name(self) -> &'static str { todo!() }
}
impl std::str::FromStr for SrtpProfile { type Err = SrtpError; fn from_str(s: &str) -> Result<Self, SrtpError> { todo!() } }
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SrtpEngine { #[default] InPlace, WebrtcSrtp }
impl std::str::FromStr for SrtpEngine { type Err = SrtpError; fn from_str(s: &str) -> Result<Self, SrtpError> { todo!() } }
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SrtpError { #[error("x")] UnknownProfile(String), #[error("x")] AuthenticationFailed, #[error("x")] Replayed, #[error("x")] TooShort, #[error("x")] Malformed, #[error("x")] BufferTooSmall { needed: usize, available: usize }, #[error("x")] TooManyStreams, #[error("x")] BadKeyLength { expected: usize, got: usize }, #[error("x")] Backend(String) }
#[derive(Clone, Debug)] pub struct SrtpKeys { pub profile: SrtpProfile, pub master_key: Vec<u8>, pub master_salt: Vec<u8> }
impl SrtpKeys { pub fn new(profile: SrtpProfile, key: &[u8], salt: &[u8]) -> Result<Self, SrtpError> { todo!() } }
pub struct SrtpContext;
impl SrtpContext {
    pub const MAX_STREAMS: usize = 32;
    pub fn new(engine: SrtpEngine, keys: &SrtpKeys) -> Result<Self, SrtpError> { todo!() }
    pub fn profile(&self) -> SrtpProfile { todo!() }
    pub fn protect_rtp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> { todo!() }
    pub fn unprotect_rtp(&mut self, buf: &mut [u8]) -> Result<usize, SrtpError> { todo!() }
    pub fn protect_rtcp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> { todo!() }
    pub fn unprotect_rtcp(&mut self, buf: &mut [u8]) -> Result<usize, SrtpError> { todo!() }
}
