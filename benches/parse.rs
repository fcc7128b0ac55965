//! Per-packet cost of the pure packet core: RFC 7983 demux plus the zero-copy views.
//!
//! - `demux+parse/rtp_opus_172B`: what the worker does for every ingress audio packet before SRTP:
//!   classify, parse the RTP header, and read the RFC 6464 audio level from the one-byte extensions
//!   (audio level id 1, mid id 3), on a typical 172-byte Opus packet.
//! - `demux+parse/rtcp_sr_sdes`: classify and walk an SR (one report block) + SDES compound.
//! - `demux+parse/stun_binding_request`: classify, parse and find USERNAME in an ICE check.
//! - `rewrite/rtp_seq_ts_ssrc_marker`: the in-place header rewrite done per subscriber.

#![deny(unsafe_code)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sluice_dataplane::packet::{
    classify, set_marker, set_sequence_number, set_ssrc, set_timestamp, stun,
    write_one_byte_extensions, PacketKind, RtcpCompound, RtpHeader, StunMessage,
};

/// 12-byte header + 8-byte one-byte extension block (audio level, mid) + 152 bytes of Opus = 172.
fn opus_packet() -> Vec<u8> {
    let mut p = vec![0x90, 111, 0x12, 0x34, 0, 0, 0x3C, 0, 0xDE, 0xAD, 0xBE, 0xEF];
    let mut ext = [0u8; 16];
    let n = write_one_byte_extensions(&mut ext, &[(1, &[0x80 | 30]), (3, b"0")])
        .expect("extension block fits");
    p.extend_from_slice(&ext[..n]);
    p.extend((0..152u32).map(|i| (i * 37) as u8));
    assert_eq!(p.len(), 172);
    p
}

/// SR with one report block + SDES CNAME: 52 + 28 = 80 bytes, as browsers send every ~5 s.
fn rtcp_compound() -> Vec<u8> {
    let mut p = vec![0x81, 200, 0, 12, 0xDE, 0xAD, 0xBE, 0xEF];
    p.extend_from_slice(&[0x11; 20]); // sender info
    p.extend_from_slice(&[0x22; 24]); // report block
    let cname = b"{4f1c7a6e-aa22}"; // 15 bytes
    p.extend_from_slice(&[
        0x81,
        202,
        0,
        6,
        0xDE,
        0xAD,
        0xBE,
        0xEF,
        1,
        cname.len() as u8,
    ]);
    p.extend_from_slice(cname);
    p.extend_from_slice(&[0, 0, 0]); // end item + pad to 4
    assert_eq!(p.len(), 80);
    p
}

/// An ICE Binding request: USERNAME, PRIORITY, ICE-CONTROLLING, USE-CANDIDATE, MESSAGE-INTEGRITY,
/// FINGERPRINT (as Chrome sends them; integrity values are dummies, only parsing is measured).
fn stun_binding_request() -> Vec<u8> {
    let mut attrs = Vec::new();
    let mut push = |typ: u16, value: &[u8]| {
        attrs.extend_from_slice(&typ.to_be_bytes());
        attrs.extend_from_slice(&(value.len() as u16).to_be_bytes());
        attrs.extend_from_slice(value);
        while attrs.len() % 4 != 0 {
            attrs.push(0);
        }
    };
    push(stun::USERNAME, b"a1b2c3d4:e5f6");
    push(stun::PRIORITY, &0x6E00_1EFFu32.to_be_bytes());
    push(stun::ICE_CONTROLLING, &[1, 2, 3, 4, 5, 6, 7, 8]);
    push(stun::USE_CANDIDATE, &[]);
    push(stun::MESSAGE_INTEGRITY, &[0; 20]);
    push(stun::FINGERPRINT, &[0; 4]);
    let mut m = vec![0x00, 0x01];
    m.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    m.extend_from_slice(&stun::STUN_MAGIC_COOKIE.to_be_bytes());
    m.extend_from_slice(&[7; 12]);
    m.extend_from_slice(&attrs);
    m
}

fn demux_parse(c: &mut Criterion) {
    let rtp = opus_packet();
    let rtcp = rtcp_compound();
    let stun_msg = stun_binding_request();

    let mut g = c.benchmark_group("demux+parse");
    g.throughput(Throughput::Elements(1));
    g.bench_function("rtp_opus_172B", |b| {
        b.iter(|| {
            let buf = black_box(rtp.as_slice());
            if classify(buf) != PacketKind::Rtp {
                return None;
            }
            let h = RtpHeader::parse(buf).ok()?;
            Some((h.ssrc(), h.sequence_number(), h.audio_level(1)))
        })
    });
    g.bench_function("rtcp_sr_sdes", |b| {
        b.iter(|| {
            let buf = black_box(rtcp.as_slice());
            if classify(buf) != PacketKind::Rtcp {
                return 0;
            }
            let mut n = 0u32;
            for p in RtcpCompound::new(buf).flatten() {
                n = n.wrapping_add(u32::from(p.packet_type()));
                for rb in p.report_blocks() {
                    n = n.wrapping_add(rb.jitter);
                }
            }
            n
        })
    });
    g.bench_function("stun_binding_request", |b| {
        b.iter(|| {
            let buf = black_box(stun_msg.as_slice());
            if classify(buf) != PacketKind::Stun {
                return None;
            }
            let m = StunMessage::parse(buf).ok()?;
            if !m.is_binding_request() {
                return None;
            }
            m.attribute(stun::USERNAME).map(|u| u.len())
        })
    });
    g.finish();

    let mut g = c.benchmark_group("rewrite");
    g.throughput(Throughput::Elements(1));
    let mut out = rtp.clone();
    let mut seq = 0u16;
    g.bench_function("rtp_seq_ts_ssrc_marker", |b| {
        b.iter(|| {
            seq = seq.wrapping_add(1);
            let buf = black_box(out.as_mut_slice());
            set_sequence_number(buf, seq);
            set_timestamp(buf, u32::from(seq) * 960);
            set_ssrc(buf, 0x5107_0001);
            set_marker(buf, false);
        })
    });
    g.finish();
}

criterion_group!(benches, demux_parse);
criterion_main!(benches);
