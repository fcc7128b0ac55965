//! fMP4 (CMAF) for the Opus rendition of a broadcast, built with the `mp4-atom` crate.
//!
//! HLS with fMP4 segments (RFC 8216 3.3) needs an **init segment** (`ftyp` + `moov`: one audio
//! track whose sample entry is `Opus` with its `dOps` box, the Opus-in-ISOBMFF mapping) that the
//! playlist names in `EXT-X-MAP`, then **media segments** of `moof` + `mdat`: a fragment whose
//! `tfdt` says when its first sample plays (in 48 kHz ticks) and whose `trun` lists each Opus
//! packet's size; every packet lasts one 20 ms frame and every one is a sync sample. Opus in fMP4
//! plays in hls.js on Chrome, Firefox and Edge, and in Safari 17+.
//!
//! Pure: bytes in, bytes out.

use mp4_atom::{
    Audio, Codec, Dinf, Dops, Dref, Encode, Ftyp, Hdlr, Mdat, Mdhd, Mdia, Mfhd, Minf, Moof, Moov,
    Mvex, Mvhd, Opus, Smhd, Stbl, Stco, Stsd, Styp, Tfdt, Tfhd, Tkhd, Traf, Trak, Trex, Trun,
    TrunEntry, Url,
};

/// Ticks per second of the track: Opus always decodes at 48 kHz.
pub const TIMESCALE: u32 = 48_000;

/// Ticks in one 20 ms Opus frame.
pub const FRAME_TICKS: u32 = 960;

/// The track's id in the init segment and every fragment.
const TRACK: u32 = 1;

/// ISO/IEC 14496-12 sample flags of a sync sample (`sample_depends_on` = 2: depends on no other),
/// as every Opus packet is.
const SYNC_SAMPLE: u32 = 0x0200_0000;

/// What went wrong building a segment.
#[derive(Debug, thiserror::Error)]
pub enum Fmp4Error {
    /// The atom encoder refused a box.
    #[error("encoding an MP4 box: {0}")]
    Encode(#[from] mp4_atom::Error),
    /// More bytes than one fragment can address.
    #[error("a fragment of {0} bytes is too large")]
    TooLarge(usize),
}

/// The init segment of a mono Opus track whose encoder delays its output by `pre_skip` samples
/// (libopus's lookahead: the player drops that many at the start).
pub fn init_segment(pre_skip: u16) -> Result<Vec<u8>, Fmp4Error> {
    let ftyp = Ftyp {
        major_brand: b"iso6".into(),
        minor_version: 0,
        compatible_brands: vec![b"iso6".into(), b"cmfc".into(), b"mp41".into()],
    };
    let opus = Opus {
        audio: Audio {
            data_reference_index: 1,
            channel_count: 1,
            sample_size: 16,
            sample_rate: 48_000.into(),
        },
        dops: Dops {
            output_channel_count: 1,
            pre_skip,
            input_sample_rate: TIMESCALE,
            output_gain: 0,
        },
        btrt: None,
    };
    let moov = Moov {
        mvhd: Mvhd {
            timescale: TIMESCALE,
            next_track_id: TRACK + 1,
            ..Default::default()
        },
        mvex: Some(Mvex {
            mehd: None,
            trex: vec![Trex {
                track_id: TRACK,
                default_sample_description_index: 1,
                default_sample_duration: FRAME_TICKS,
                default_sample_size: 0,
                default_sample_flags: SYNC_SAMPLE,
            }],
        }),
        trak: vec![Trak {
            tkhd: Tkhd {
                track_id: TRACK,
                enabled: true,
                in_movie: true,
                volume: 1.into(),
                ..Default::default()
            },
            mdia: Mdia {
                mdhd: Mdhd {
                    timescale: TIMESCALE,
                    language: "und".into(),
                    ..Default::default()
                },
                hdlr: Hdlr {
                    handler: b"soun".into(),
                    name: "sluice broadcast".into(),
                },
                minf: Minf {
                    smhd: Some(Smhd::default()),
                    dinf: Dinf {
                        dref: Dref {
                            urls: vec![Url {
                                location: String::new(),
                            }],
                        },
                    },
                    stbl: Stbl {
                        stsd: Stsd {
                            codecs: vec![Codec::Opus(opus)],
                        },
                        stco: Some(Stco::default()),
                        ..Default::default()
                    },
                    ..Default::default()
                },
            },
            ..Default::default()
        }],
        ..Default::default()
    };
    let mut out = Vec::with_capacity(1024);
    ftyp.encode(&mut out)?;
    moov.encode(&mut out)?;
    Ok(out)
}

/// Media segment number `sequence` (1 for the first): `packets` are consecutive 20 ms Opus
/// packets, the first playing at `decode_time` (48 kHz ticks since the broadcast began).
pub fn media_segment<P: AsRef<[u8]>>(
    sequence: u32,
    decode_time: u64,
    packets: &[P],
) -> Result<Vec<u8>, Fmp4Error> {
    let payload: usize = packets.iter().map(|p| p.as_ref().len()).sum();
    let mut moof = Moof {
        mfhd: Mfhd {
            sequence_number: sequence,
        },
        traf: vec![Traf {
            tfhd: Tfhd {
                track_id: TRACK,
                default_sample_duration: Some(FRAME_TICKS),
                default_sample_flags: Some(SYNC_SAMPLE),
                default_base_is_moof: true,
                ..Default::default()
            },
            tfdt: Some(Tfdt {
                base_media_decode_time: decode_time,
            }),
            trun: vec![Trun {
                data_offset: Some(0),
                entries: packets
                    .iter()
                    .map(|p| TrunEntry {
                        size: Some(p.as_ref().len() as u32),
                        ..Default::default()
                    })
                    .collect(),
            }],
            ..Default::default()
        }],
    };
    // The samples start right after the moof and the mdat's 8-byte header: encode once to learn
    // the moof's size (the offset field has a fixed width), then with the offset filled in.
    let mut sized = Vec::new();
    moof.encode(&mut sized)?;
    let offset = i32::try_from(sized.len() + 8).map_err(|_| Fmp4Error::TooLarge(sized.len()))?;
    moof.traf[0].trun[0].data_offset = Some(offset);
    if u32::try_from(payload + 8).is_err() {
        return Err(Fmp4Error::TooLarge(payload));
    }
    let styp = Styp {
        major_brand: b"msdh".into(),
        minor_version: 0,
        compatible_brands: vec![b"msdh".into(), b"msix".into()],
    };
    let mut out = Vec::with_capacity(sized.len() + payload + 64);
    styp.encode(&mut out)?;
    moof.encode(&mut out)?;
    let mut data = Vec::with_capacity(payload);
    for p in packets {
        data.extend_from_slice(p.as_ref());
    }
    Mdat { data }.encode(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mp4_atom::{Any, Decode};

    #[test]
    fn the_init_segment_declares_one_mono_opus_track_at_48_khz() {
        let init = init_segment(312).expect("init");
        let mut buf = std::io::Cursor::new(&init[..]);
        assert!(matches!(Any::decode(&mut buf), Ok(Any::Ftyp(_))));
        let Ok(Any::Moov(moov)) = Any::decode(&mut buf) else {
            panic!("a moov after the ftyp");
        };
        let trak = &moov.trak[0];
        assert_eq!(trak.mdia.mdhd.timescale, TIMESCALE);
        let Codec::Opus(opus) = &trak.mdia.minf.stbl.stsd.codecs[0] else {
            panic!("an Opus sample entry");
        };
        assert_eq!(
            (opus.dops.output_channel_count, opus.dops.pre_skip),
            (1, 312)
        );
        assert_eq!(
            moov.mvex.map(|m| m.trex[0].default_sample_duration),
            Some(FRAME_TICKS)
        );
    }

    #[test]
    fn a_media_segment_points_its_samples_at_the_mdat_and_dates_them() {
        let packets = [vec![0xF8u8, 1, 2], vec![0xF8, 3], vec![0xF8]];
        let seg = media_segment(7, 96_000, &packets).expect("segment");
        let mut buf = std::io::Cursor::new(&seg[..]);
        assert!(matches!(Any::decode(&mut buf), Ok(Any::Styp(_))));
        let moof_at = buf.position() as usize;
        let Ok(Any::Moof(moof)) = Any::decode(&mut buf) else {
            panic!("a moof after the styp");
        };
        assert_eq!(moof.mfhd.sequence_number, 7);
        let traf = &moof.traf[0];
        assert_eq!(
            traf.tfdt.as_ref().map(|t| t.base_media_decode_time),
            Some(96_000)
        );
        let sizes: Vec<_> = traf.trun[0].entries.iter().map(|e| e.size).collect();
        assert_eq!(sizes, [Some(3), Some(2), Some(1)]);
        // The offset is from the moof's first byte to the first sample in the mdat.
        let offset = traf.trun[0].data_offset.unwrap_or(0) as usize;
        assert_eq!(&seg[moof_at + offset..], &[0xF8, 1, 2, 0xF8, 3, 0xF8]);
        let Ok(Any::Mdat(mdat)) = Any::decode(&mut buf) else {
            panic!("an mdat after the moof");
        };
        assert_eq!(mdat.data.len(), 6);
    }
}
