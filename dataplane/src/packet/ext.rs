//! RTP header extensions (RFC 8285) and the client-to-mixer audio level (RFC 6464).
//!
//! A [`HeaderExtensions`] is the extension block of one RTP packet: the 16-bit "defined by profile"
//! value and the data that follows the profile/length word (a multiple of 4 bytes). Its elements are
//! read lazily by [`ExtensionIter`]:
//!
//! - one-byte form (profile `0xBEDE`, RFC 8285 §4.2): `ID(4) | L(4)` then L+1 bytes; IDs 1..=14.
//! - two-byte form (profile `0x100X`, RFC 8285 §4.3): `ID(8) | length(8)` then `length` bytes
//!   (0..=255); the low 4 bits of the profile are "appbits".
//! - any other profile: the block is opaque and iteration yields nothing.
//!
//! Invariants: iteration never reads outside the block and never panics. Zero bytes between elements
//! are padding and skipped. An element whose length runs past the block ends iteration, as does (in
//! the one-byte form) the reserved ID 15 or an ID 0 with a non-zero length (the same rules as
//! libwebrtc), so a malformed block yields the well-formed elements before the damage.

use std::iter::FusedIterator;

/// The one-byte-header profile value (RFC 8285 §4.2).
pub const ONE_BYTE_PROFILE: u16 = 0xBEDE;
/// The two-byte-header profile value with appbits 0 (RFC 8285 §4.3); appbits are the low 4 bits.
pub const TWO_BYTE_PROFILE: u16 = 0x1000;

/// The extension block of an RTP packet (after the 4-byte profile/length word).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderExtensions<'a> {
    profile: u16,
    data: &'a [u8],
}

impl<'a> HeaderExtensions<'a> {
    /// A view over an extension block whose profile is `profile` and whose elements are `data`
    /// (the bytes after the profile/length word).
    #[inline]
    pub fn new(profile: u16, data: &'a [u8]) -> Self {
        Self { profile, data }
    }

    /// The 16-bit "defined by profile" value: `0xBEDE` one-byte, `0x1000..=0x100F` two-byte.
    #[inline]
    pub fn profile(&self) -> u16 {
        self.profile
    }

    /// True for the one-byte form.
    #[inline]
    pub fn is_one_byte(&self) -> bool {
        self.profile == ONE_BYTE_PROFILE
    }

    /// True for the two-byte form.
    #[inline]
    pub fn is_two_byte(&self) -> bool {
        self.profile & 0xFFF0 == TWO_BYTE_PROFILE
    }

    /// The two-byte form's "appbits" (low 4 bits of the profile), `None` for other forms.
    #[inline]
    pub fn appbits(&self) -> Option<u8> {
        self.is_two_byte().then_some((self.profile & 0x000F) as u8)
    }

    /// The raw block after the profile/length word.
    #[inline]
    pub fn raw(&self) -> &'a [u8] {
        self.data
    }

    /// The elements, in order.
    #[inline]
    pub fn iter(&self) -> ExtensionIter<'a> {
        let form = if self.is_one_byte() {
            Form::OneByte
        } else if self.is_two_byte() {
            Form::TwoByte
        } else {
            Form::Done
        };
        ExtensionIter {
            data: self.data,
            form,
            malformed: false,
        }
    }

    /// Whether the block is free of damage: no element's length runs past its end and (one-byte
    /// form) no ID 0 carries a length. The iterator stops quietly at either; other parsers read on
    /// (the `rtp` crate takes an ID-0 byte as an element) and some of them panic.
    pub fn elements_fit(&self) -> bool {
        let mut it = self.iter();
        it.by_ref().for_each(drop);
        !it.malformed
    }

    /// The data of the first element with this id.
    #[inline]
    pub fn get(&self, id: u8) -> Option<&'a [u8]> {
        self.iter().find(|e| e.id == id).map(|e| e.data)
    }
}

impl<'a> IntoIterator for HeaderExtensions<'a> {
    type Item = HeaderExtension<'a>;
    type IntoIter = ExtensionIter<'a>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// One header extension element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderExtension<'a> {
    /// The local identifier negotiated in SDP (`a=extmap`).
    pub id: u8,
    /// The element's data.
    pub data: &'a [u8],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    OneByte,
    TwoByte,
    Done,
}

/// Iterator over the elements of a [`HeaderExtensions`] block. See the module doc for the rules.
#[derive(Debug, Clone)]
pub struct ExtensionIter<'a> {
    data: &'a [u8],
    form: Form,
    /// It stopped at damage: an element whose length runs past the block, or (one-byte form) an
    /// ID 0 with a non-zero length.
    malformed: bool,
}

impl<'a> ExtensionIter<'a> {
    #[inline]
    fn stop(&mut self) -> Option<HeaderExtension<'a>> {
        self.form = Form::Done;
        self.data = &[];
        None
    }

    #[inline]
    fn damaged(&mut self) -> Option<HeaderExtension<'a>> {
        self.malformed = true;
        self.stop()
    }
}

impl<'a> Iterator for ExtensionIter<'a> {
    type Item = HeaderExtension<'a>;

    #[inline]
    fn next(&mut self) -> Option<HeaderExtension<'a>> {
        loop {
            let (&first, rest) = self.data.split_first()?;
            let (id, len, rest) = match self.form {
                Form::Done => return None,
                Form::OneByte => {
                    //= https://www.rfc-editor.org/rfc/rfc8285#section-4.2
                    if first == 0 {
                        self.data = rest;
                        continue;
                    }
                    let id = first >> 4;
                    if id == 0 {
                        // ID 0 is padding only (a zero byte); with a length it is malformed.
                        return self.damaged();
                    }
                    if id == 15 {
                        // The reserved ID 15 means "stop processing".
                        return self.stop();
                    }
                    (id, usize::from(first & 0x0f) + 1, rest)
                }
                Form::TwoByte => {
                    //= https://www.rfc-editor.org/rfc/rfc8285#section-4.3
                    if first == 0 {
                        self.data = rest;
                        continue;
                    }
                    let Some((&len, rest)) = rest.split_first() else {
                        return self.damaged();
                    };
                    (first, usize::from(len), rest)
                }
            };
            let Some((data, rest)) = rest.split_at_checked(len) else {
                return self.damaged();
            };
            self.data = rest;
            return Some(HeaderExtension { id, data });
        }
    }
}

impl FusedIterator for ExtensionIter<'_> {}

/// An RFC 6464 audio level: the voice-activity flag and the level in -dBov (0 loudest, 127 silence).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioLevel {
    /// The V bit: the sender's VAD thinks this packet holds speech.
    pub voice_activity: bool,
    /// 0..=127, in -dBov.
    pub level: u8,
}

impl AudioLevel {
    /// Parses the first byte of the extension data (RFC 6464 §3: `V(1) | level(7)`). Extra bytes
    /// (some senders pad the element to 2 or 4 bytes) are ignored; `None` when `data` is empty.
    #[inline]
    pub fn parse(data: &[u8]) -> Option<AudioLevel> {
        let &b = data.first()?;
        Some(AudioLevel {
            voice_activity: b & 0x80 != 0,
            level: b & 0x7f,
        })
    }

    /// The byte this level is encoded as.
    #[inline]
    pub fn to_byte(self) -> u8 {
        (u8::from(self.voice_activity) << 7) | (self.level & 0x7f)
    }
}

/// Writes a one-byte-header extension block into `out`: the profile/length word (`0xBEDE`, length in
/// 32-bit words), then each `(id, data)` element, then zero padding to a multiple of 4 bytes.
///
/// Returns the bytes written (including the 4-byte profile/length word), or `None` if `out` is too
/// small or an element cannot be encoded in the one-byte form (id outside 1..=14, data empty or
/// longer than 16 bytes). The caller sets the X bit and places the block after the CSRCs.
pub fn write_one_byte_extensions(out: &mut [u8], elems: &[(u8, &[u8])]) -> Option<usize> {
    let mut body = 0usize;
    for &(id, data) in elems {
        if !(1..=14).contains(&id) || data.is_empty() || data.len() > 16 {
            return None;
        }
        body += 1 + data.len();
    }
    let padded = body.div_ceil(4) * 4;
    let words = u16::try_from(padded / 4).ok()?;
    let total = 4 + padded;
    let (hdr, rest) = out.get_mut(..total)?.split_first_chunk_mut::<4>()?;
    let [p0, p1] = ONE_BYTE_PROFILE.to_be_bytes();
    let [w0, w1] = words.to_be_bytes();
    *hdr = [p0, p1, w0, w1];
    let mut w = rest.iter_mut();
    for &(id, data) in elems {
        // data.len() is 1..=16, so L = len - 1 fits 4 bits.
        *w.next()? = (id << 4) | ((data.len() - 1) as u8);
        for &b in data {
            *w.next()? = b;
        }
    }
    for b in w {
        *b = 0;
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_byte_roundtrip() {
        let mut out = [0xFFu8; 64];
        let n = write_one_byte_extensions(&mut out, &[(1, &[0x90]), (3, b"0"), (14, &[7; 16])])
            .unwrap();
        // 2 + 2 + 17 = 21 → padded 24, plus the 4-byte word.
        assert_eq!(n, 28);
        assert_eq!(&out[..4], &[0xBE, 0xDE, 0, 6]);
        assert_eq!(&out[25..28], &[0, 0, 0]);
        let exts = HeaderExtensions::new(0xBEDE, &out[4..n]);
        assert!(exts.is_one_byte());
        assert_eq!(exts.appbits(), None);
        let v: Vec<_> = exts.iter().collect();
        assert_eq!(
            v,
            vec![
                HeaderExtension {
                    id: 1,
                    data: &[0x90]
                },
                HeaderExtension { id: 3, data: b"0" },
                HeaderExtension {
                    id: 14,
                    data: &[7; 16]
                },
            ]
        );
        assert_eq!(exts.get(3), Some(&b"0"[..]));
        assert_eq!(exts.get(2), None);
        let al = AudioLevel::parse(exts.get(1).unwrap()).unwrap();
        assert_eq!(
            al,
            AudioLevel {
                voice_activity: true,
                level: 0x10
            }
        );
        assert_eq!(al.to_byte(), 0x90);
    }

    #[test]
    fn writer_rejects_unencodable() {
        let mut out = [0u8; 64];
        assert_eq!(write_one_byte_extensions(&mut out, &[(0, &[1])]), None);
        assert_eq!(write_one_byte_extensions(&mut out, &[(15, &[1])]), None);
        assert_eq!(write_one_byte_extensions(&mut out, &[(1, &[])]), None);
        assert_eq!(write_one_byte_extensions(&mut out, &[(1, &[0; 17])]), None);
        let mut small = [0u8; 7];
        assert_eq!(
            write_one_byte_extensions(&mut small, &[(1, &[1, 2, 3, 4])]),
            None
        );
        assert_eq!(write_one_byte_extensions(&mut out, &[]), Some(4));
        assert_eq!(&out[..4], &[0xBE, 0xDE, 0, 0]);
    }

    #[test]
    fn one_byte_padding_and_stop_rules() {
        // padding, id 2 len 1, padding x2, id 15 (stop), id 4 never seen.
        let data = [0, 0x20, 0xAA, 0, 0, 0xF0, 0x40, 1];
        let exts = HeaderExtensions::new(0xBEDE, &data);
        let v: Vec<_> = exts.iter().collect();
        assert_eq!(
            v,
            vec![HeaderExtension {
                id: 2,
                data: &[0xAA]
            }]
        );
        // ID 0 with non-zero length ends parsing.
        let data = [0x10, 1, 0x01, 0x30, 9];
        let v: Vec<_> = HeaderExtensions::new(0xBEDE, &data)
            .iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(v, vec![1]);
        assert!(!HeaderExtensions::new(0xBEDE, &data).elements_fit());
        // The reserved ID 15 ends parsing without damage.
        assert!(HeaderExtensions::new(0xBEDE, &[0x10, 1, 0xF0, 0, 0]).elements_fit());
        // Element running past the block ends parsing.
        let data = [0x10, 1, 0x23, 1, 2];
        let v: Vec<_> = HeaderExtensions::new(0xBEDE, &data)
            .iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(v, vec![1]);
    }

    #[test]
    fn two_byte_form() {
        let data = [0, 7, 2, 0xA, 0xB, 0, 8, 0, 255, 1, 0x33, 0, 0];
        let exts = HeaderExtensions::new(0x1003, &data);
        assert!(exts.is_two_byte());
        assert_eq!(exts.appbits(), Some(3));
        let v: Vec<_> = exts.iter().collect();
        assert_eq!(
            v,
            vec![
                HeaderExtension {
                    id: 7,
                    data: &[0xA, 0xB]
                },
                HeaderExtension { id: 8, data: &[] },
                HeaderExtension {
                    id: 255,
                    data: &[0x33]
                },
            ]
        );
        // Truncated length byte / data.
        assert_eq!(HeaderExtensions::new(0x1000, &[7]).iter().count(), 0);
        assert_eq!(HeaderExtensions::new(0x1000, &[7, 3, 1]).iter().count(), 0);
    }

    #[test]
    fn unknown_profile_is_opaque() {
        let exts = HeaderExtensions::new(0x1234, &[0x10, 1, 0, 0]);
        assert_eq!(exts.iter().count(), 0);
        assert_eq!(exts.raw(), &[0x10, 1, 0, 0]);
        assert_eq!(exts.appbits(), None);
    }

    #[test]
    fn audio_level_parse() {
        assert_eq!(AudioLevel::parse(&[]), None);
        assert_eq!(
            AudioLevel::parse(&[0x7f, 0]),
            Some(AudioLevel {
                voice_activity: false,
                level: 127
            })
        );
    }

    #[test]
    fn every_truncation_never_panics() {
        let mut out = [0u8; 64];
        let n = write_one_byte_extensions(&mut out, &[(1, &[0x90]), (5, &[1; 9]), (9, &[2; 3])])
            .unwrap();
        for len in 0..=n {
            for profile in [0xBEDE, 0x1000] {
                let exts = HeaderExtensions::new(profile, &out[..len]);
                for e in exts.iter() {
                    assert!(e.data.len() <= len);
                }
            }
        }
    }
}
