//! A minimal read-only view over STUN messages (RFC 8489, formerly RFC 5389), enough for an ICE-lite
//! agent (RFC 8445 §2.5) to answer connectivity checks.
//!
//! ```text
//!  //= https://www.rfc-editor.org/rfc/rfc8489#section-5
//!   0                   1                   2                   3
//!   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//!  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!  |0 0|     STUN Message Type     |         Message Length        |
//!  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!  |                         Magic Cookie                          |
//!  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!  |                     Transaction ID (96 bits)                  |
//!  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! Invariants of a parsed [`StunMessage`]: the two leading bits are 0, the magic cookie is
//! `0x2112A442`, the message length is a multiple of 4 and the attribute area it announces lies in
//! the datagram. Trailing bytes after the message are ignored ([`StunMessage::bytes`] excludes them).
//! Attributes are type-length-value, each value padded to 4 bytes (RFC 8489 §14); iteration stops at
//! the first attribute whose value does not fit. Integrity (MESSAGE-INTEGRITY, FINGERPRINT) is
//! checked by the ICE layer, which uses [`StunAttribute::offset`] to know what the HMAC covers.

use std::iter::FusedIterator;

use super::{read_u16, ParseError};

/// The magic cookie in bytes 4..8 of every RFC 5389+ message.
pub const STUN_MAGIC_COOKIE: u32 = 0x2112_A442;
/// Length of the STUN header.
pub const STUN_HEADER_LEN: usize = 20;
/// The Binding method (RFC 8489 §18.2).
pub const METHOD_BINDING: u16 = 0x0001;

/// Attribute types used by ICE (RFC 8489 §18.3, RFC 8445 §16.1). Also re-exported at the module root.
pub mod attr {
    /// USERNAME: `remote-ufrag:local-ufrag` in ICE checks.
    pub const USERNAME: u16 = 0x0006;
    /// MESSAGE-INTEGRITY: HMAC-SHA1 over the message up to this attribute.
    pub const MESSAGE_INTEGRITY: u16 = 0x0008;
    /// ERROR-CODE.
    pub const ERROR_CODE: u16 = 0x0009;
    /// XOR-MAPPED-ADDRESS: the reflexive address in a Binding success response.
    pub const XOR_MAPPED_ADDRESS: u16 = 0x0020;
    /// PRIORITY (ICE).
    pub const PRIORITY: u16 = 0x0024;
    /// USE-CANDIDATE (ICE, controlling agent nominates).
    pub const USE_CANDIDATE: u16 = 0x0025;
    /// FINGERPRINT: CRC-32 of the message XOR 0x5354554e.
    pub const FINGERPRINT: u16 = 0x8028;
    /// ICE-CONTROLLED (tie breaker).
    pub const ICE_CONTROLLED: u16 = 0x8029;
    /// ICE-CONTROLLING (tie breaker).
    pub const ICE_CONTROLLING: u16 = 0x802A;
}
pub use attr::*;

/// The class bits of a message type (RFC 8489 §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StunClass {
    /// 0b00
    Request,
    /// 0b01
    Indication,
    /// 0b10
    SuccessResponse,
    /// 0b11
    ErrorResponse,
}

/// A zero-copy view over a validated STUN message.
#[derive(Debug, Clone, Copy)]
pub struct StunMessage<'a> {
    message_type: u16,
    transaction_id: &'a [u8; 12],
    /// Header + attributes, exactly `20 + length` bytes.
    bytes: &'a [u8],
}

impl<'a> StunMessage<'a> {
    /// Validates the header of `buf` and returns a view over the message.
    ///
    /// Errors: fewer than 20 bytes ([`ParseError::TooShort`]); leading bits not 0 or wrong magic
    /// cookie ([`ParseError::BadStun`]); length not a multiple of 4 or past the end of `buf`
    /// ([`ParseError::BadLength`]).
    #[inline]
    pub fn parse(buf: &'a [u8]) -> Result<Self, ParseError> {
        let hdr: &[u8; STUN_HEADER_LEN] = buf.first_chunk().ok_or(ParseError::TooShort)?;
        let (head, transaction_id) = hdr.split_first_chunk::<8>().ok_or(ParseError::TooShort)?;
        let transaction_id: &[u8; 12] = transaction_id
            .try_into()
            .map_err(|_| ParseError::TooShort)?;
        let [t0, t1, l0, l1, c0, c1, c2, c3] = *head;
        if t0 & 0xC0 != 0 || u32::from_be_bytes([c0, c1, c2, c3]) != STUN_MAGIC_COOKIE {
            return Err(ParseError::BadStun);
        }
        let length = usize::from(u16::from_be_bytes([l0, l1]));
        if length % 4 != 0 {
            return Err(ParseError::BadLength);
        }
        let bytes = buf
            .get(..STUN_HEADER_LEN + length)
            .ok_or(ParseError::BadLength)?;
        Ok(Self {
            message_type: u16::from_be_bytes([t0, t1]),
            transaction_id,
            bytes,
        })
    }

    /// The 14-bit message type (method and class interleaved).
    #[inline]
    pub fn message_type(&self) -> u16 {
        self.message_type
    }

    /// The 12-bit method (1 = Binding), with the class bits taken out.
    #[inline]
    pub fn method(&self) -> u16 {
        //= https://www.rfc-editor.org/rfc/rfc8489#section-5
        // M11..M7 C1 M6..M4 C0 M3..M0
        let t = self.message_type;
        (t & 0x000F) | ((t & 0x00E0) >> 1) | ((t & 0x3E00) >> 2)
    }

    /// The class: request, indication, success or error response.
    #[inline]
    pub fn class(&self) -> StunClass {
        match ((self.message_type >> 7) & 0b10) | ((self.message_type >> 4) & 0b01) {
            0 => StunClass::Request,
            1 => StunClass::Indication,
            2 => StunClass::SuccessResponse,
            _ => StunClass::ErrorResponse,
        }
    }

    /// True for a Binding request (message type 0x0001): an ICE connectivity check or consent check.
    #[inline]
    pub fn is_binding_request(&self) -> bool {
        self.message_type == 0x0001
    }

    /// The 96-bit transaction id.
    #[inline]
    pub fn transaction_id(&self) -> &'a [u8; 12] {
        self.transaction_id
    }

    /// The message: header plus attributes, without any trailing bytes of the datagram.
    #[inline]
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The attributes, in order; stops at the first malformed one.
    #[inline]
    pub fn attributes(&self) -> StunAttributes<'a> {
        StunAttributes {
            data: self.bytes.get(STUN_HEADER_LEN..).unwrap_or(&[]),
            offset: STUN_HEADER_LEN,
        }
    }

    /// The value of the first attribute of type `typ`.
    #[inline]
    pub fn attribute(&self, typ: u16) -> Option<&'a [u8]> {
        self.attributes().find(|a| a.typ == typ).map(|a| a.value)
    }
}

/// One STUN attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StunAttribute<'a> {
    /// The attribute type (see [`attr`]).
    pub typ: u16,
    /// The value, without padding.
    pub value: &'a [u8],
    /// Byte offset of this attribute's type field from the start of the message.
    pub offset: usize,
}

/// Iterator over the attributes of a [`StunMessage`].
#[derive(Debug, Clone)]
pub struct StunAttributes<'a> {
    data: &'a [u8],
    offset: usize,
}

impl<'a> Iterator for StunAttributes<'a> {
    type Item = StunAttribute<'a>;

    #[inline]
    fn next(&mut self) -> Option<StunAttribute<'a>> {
        let (tl, rest) = self.data.split_first_chunk::<4>()?;
        let [t0, t1, l0, l1] = *tl;
        let len = usize::from(u16::from_be_bytes([l0, l1]));
        let Some(value) = rest.get(..len) else {
            self.data = &[];
            return None;
        };
        // Values are padded to a multiple of 4 (RFC 8489 §14); the message length is a multiple of 4,
        // so the padding fits whenever the value does, but stay defensive.
        let padded = len.div_ceil(4) * 4;
        self.data = rest.get(padded..).unwrap_or(&[]);
        let attr = StunAttribute {
            typ: u16::from_be_bytes([t0, t1]),
            value,
            offset: self.offset,
        };
        self.offset += 4 + padded;
        Some(attr)
    }
}

impl FusedIterator for StunAttributes<'_> {}

/// Reads the message type of a would-be STUN datagram without validating it (`None` if < 2 bytes).
#[inline]
pub fn peek_message_type(buf: &[u8]) -> Option<u16> {
    read_u16(buf, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Binding request as a browser sends it (values simplified): USERNAME "abcd:efgh", PRIORITY,
    /// ICE-CONTROLLING, USE-CANDIDATE, MESSAGE-INTEGRITY (zeros), FINGERPRINT (zeros).
    fn binding_request() -> Vec<u8> {
        let mut attrs = Vec::new();
        let mut push = |typ: u16, value: &[u8]| {
            attrs.extend_from_slice(&typ.to_be_bytes());
            attrs.extend_from_slice(&(value.len() as u16).to_be_bytes());
            attrs.extend_from_slice(value);
            while attrs.len() % 4 != 0 {
                attrs.push(0);
            }
        };
        push(USERNAME, b"abcd:efgh");
        push(PRIORITY, &0x6E00_1EFFu32.to_be_bytes());
        push(ICE_CONTROLLING, &[1, 2, 3, 4, 5, 6, 7, 8]);
        push(USE_CANDIDATE, &[]);
        push(MESSAGE_INTEGRITY, &[0; 20]);
        push(FINGERPRINT, &[0; 4]);
        let mut m = vec![0x00, 0x01];
        m.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
        m.extend_from_slice(&STUN_MAGIC_COOKIE.to_be_bytes());
        m.extend_from_slice(&[
            0xA0, 0xA1, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0xA7, 0xA8, 0xA9, 0xAA, 0xAB,
        ]);
        m.extend_from_slice(&attrs);
        m
    }

    #[test]
    fn binding_request_view() {
        let m = binding_request();
        let s = StunMessage::parse(&m).unwrap();
        assert_eq!(s.message_type(), 0x0001);
        assert_eq!(s.method(), METHOD_BINDING);
        assert_eq!(s.class(), StunClass::Request);
        assert!(s.is_binding_request());
        assert_eq!(s.transaction_id()[0], 0xA0);
        assert_eq!(s.transaction_id()[11], 0xAB);
        assert_eq!(s.bytes().len(), m.len());
        let types: Vec<_> = s.attributes().map(|a| a.typ).collect();
        assert_eq!(
            types,
            vec![
                USERNAME,
                PRIORITY,
                ICE_CONTROLLING,
                USE_CANDIDATE,
                MESSAGE_INTEGRITY,
                FINGERPRINT
            ]
        );
        assert_eq!(s.attribute(USERNAME), Some(&b"abcd:efgh"[..]));
        assert_eq!(
            s.attribute(PRIORITY),
            Some(&0x6E00_1EFFu32.to_be_bytes()[..])
        );
        assert_eq!(s.attribute(USE_CANDIDATE), Some(&[][..]));
        assert_eq!(s.attribute(ICE_CONTROLLED), None);
        // USERNAME (9 bytes, padded to 12) at 20, PRIORITY at 36.
        let offs: Vec<_> = s.attributes().map(|a| a.offset).collect();
        assert_eq!(offs, vec![20, 36, 44, 56, 60, 84]);
        assert_eq!(m.len(), 92);
        assert_eq!(peek_message_type(&m), Some(1));
    }

    #[test]
    fn classes_and_methods() {
        for (t, class) in [
            (0x0001u16, StunClass::Request),
            (0x0011, StunClass::Indication),
            (0x0101, StunClass::SuccessResponse),
            (0x0111, StunClass::ErrorResponse),
        ] {
            let mut m = binding_request();
            m[..2].copy_from_slice(&t.to_be_bytes());
            let s = StunMessage::parse(&m).unwrap();
            assert_eq!(s.class(), class);
            assert_eq!(s.method(), METHOD_BINDING);
            assert_eq!(s.is_binding_request(), t == 1);
        }
        // Method 0xFFF with class bits clear: type 0x3EEF.
        let mut m = binding_request();
        m[..2].copy_from_slice(&0x3EEFu16.to_be_bytes());
        let s = StunMessage::parse(&m).unwrap();
        assert_eq!(s.method(), 0x0FFF);
        assert_eq!(s.class(), StunClass::Request);
    }

    #[test]
    fn rejects_bad_headers() {
        let m = binding_request();
        let mut bad = m.clone();
        bad[0] |= 0x80;
        assert_eq!(StunMessage::parse(&bad).unwrap_err(), ParseError::BadStun);
        let mut bad = m.clone();
        bad[4] = 0;
        assert_eq!(StunMessage::parse(&bad).unwrap_err(), ParseError::BadStun);
        let mut bad = m.clone();
        bad[3] += 2;
        assert_eq!(StunMessage::parse(&bad).unwrap_err(), ParseError::BadLength);
        let mut bad = m.clone();
        bad[3] += 4;
        assert_eq!(StunMessage::parse(&bad).unwrap_err(), ParseError::BadLength);
        assert_eq!(
            StunMessage::parse(&m[..19]).unwrap_err(),
            ParseError::TooShort
        );
    }

    #[test]
    fn trailing_bytes_ignored_and_malformed_attribute_stops() {
        let mut m = binding_request();
        m.extend_from_slice(&[1, 2, 3, 4]);
        let s = StunMessage::parse(&m).unwrap();
        assert_eq!(s.bytes().len(), 92);
        // USERNAME claims 200 bytes: nothing is yielded.
        let mut m = binding_request();
        m[22..24].copy_from_slice(&200u16.to_be_bytes());
        let s = StunMessage::parse(&m).unwrap();
        assert_eq!(s.attributes().count(), 0);
        // Header-only message.
        let m = binding_request();
        let mut h = m[..20].to_vec();
        h[2] = 0;
        h[3] = 0;
        assert_eq!(StunMessage::parse(&h).unwrap().attributes().count(), 0);
    }

    #[test]
    fn every_truncation_is_err_or_consistent() {
        let m = binding_request();
        for len in 0..m.len() {
            let cut = &m[..len];
            // The length field still says 72, so every cut must fail.
            assert!(StunMessage::parse(cut).is_err(), "len {len}");
            // With the length field patched to what is there, whatever parses must iterate safely.
            if len >= 20 {
                let mut fixed = cut.to_vec();
                let l = ((len - 20) / 4 * 4) as u16;
                fixed[2..4].copy_from_slice(&l.to_be_bytes());
                let s = StunMessage::parse(&fixed).unwrap();
                for a in s.attributes() {
                    assert!(a.offset + 4 + a.value.len() <= s.bytes().len());
                }
            }
        }
    }
}
