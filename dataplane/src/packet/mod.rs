//! TEMPORARY compile shim; replaced by the packet work item.
#![allow(missing_docs, dead_code, unused)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketKind { Stun, Dtls, Rtp, Rtcp, Unknown }
pub fn classify(buf: &[u8]) -> PacketKind { todo!() }
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseError { #[error("x")] TooShort }
#[derive(Debug, Clone, Copy, PartialEq, Eq)] pub struct AudioLevel { pub voice_activity: bool, pub level: u8 }
pub struct RtpHeader<'a> { b: &'a [u8] }
impl<'a> RtpHeader<'a> {
    pub fn parse(buf: &'a [u8]) -> Result<Self, ParseError> { todo!() }
    pub fn marker(&self) -> bool { todo!() }
    pub fn payload_type(&self) -> u8 { todo!() }
    pub fn sequence_number(&self) -> u16 { todo!() }
    pub fn timestamp(&self) -> u32 { todo!() }
    pub fn ssrc(&self) -> u32 { todo!() }
    pub fn csrc_count(&self) -> usize { todo!() }
    pub fn csrcs(&self) -> impl Iterator<Item = u32> + 'a { std::iter::empty() }
    pub fn header_len(&self) -> usize { todo!() }
    pub fn payload(&self) -> &'a [u8] { todo!() }
    pub fn audio_level(&self, ext_id: u8) -> Option<AudioLevel> { todo!() }
}
pub fn set_sequence_number(buf: &mut [u8], seq: u16) {}
pub fn set_timestamp(buf: &mut [u8], ts: u32) {}
pub fn set_ssrc(buf: &mut [u8], ssrc: u32) {}
pub fn set_marker(buf: &mut [u8], m: bool) {}
pub fn write_one_byte_extensions(out: &mut [u8], elems: &[(u8, &[u8])]) -> Option<usize> { todo!() }
pub mod rtcp { pub fn first_ssrc(buf: &[u8]) -> Option<u32> { todo!() } }
