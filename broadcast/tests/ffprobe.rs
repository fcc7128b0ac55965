//! The fMP4 this crate writes, read by a real demuxer: Debian's ffprobe and ffmpeg (installed by
//! scripts/test) open an init segment followed by media segments as one CMAF stream, see one mono
//! Opus track at 48 kHz, every packet at its time, and decode it without an error; and the whole
//! path of a broadcast, two speakers mixed, encoded with libopus and segmented, decodes in ffmpeg
//! to each speaker's tone while that speaker talks.

use std::io::Write as _;
use std::process::{Command, Stdio};

use sluice_broadcast::codec::{tone_energy, MixEncoder};
use sluice_broadcast::fmp4::{init_segment, media_segment, FRAME_TICKS};
use sluice_broadcast::mix::{sine_frame, Mixer, FRAME, RATE};

/// Opus packets of 20 ms: a TOC byte for CELT-only fullband 20 ms mono (config 31, code 0) and a
/// frame of `len` bytes of zero (RFC 6716 3.1; a decoder turns it into quiet noise or silence).
fn packets(n: usize, len: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|_| {
            let mut p = vec![31 << 3];
            p.resize(1 + len, 0);
            p
        })
        .collect()
}

fn tool(name: &str) -> Command {
    let ok = Command::new(name)
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "{name} is not installed: run scripts/test (it installs Debian's ffmpeg)"
    );
    Command::new(name)
}

#[test]
fn ffprobe_reads_an_init_segment_and_three_media_segments_as_one_opus_track() {
    let dir = std::env::temp_dir().join(format!("sluice-fmp4-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("stream.mp4");
    let mut stream = init_segment(312).expect("init");
    for seq in 0..3u32 {
        let decode_time = u64::from(seq) * 50 * u64::from(FRAME_TICKS);
        stream.extend(media_segment(seq + 1, decode_time, &packets(50, 20)).expect("segment"));
    }
    std::fs::write(&file, &stream).expect("write");

    let out = tool("ffprobe")
        .args([
            "-v",
            "error",
            "-show_streams",
            "-show_packets",
            "-of",
            "json",
        ])
        .arg(&file)
        .output()
        .expect("ffprobe runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let s = &v["streams"][0];
    assert_eq!(s["codec_name"], "opus", "{s}");
    assert_eq!(s["sample_rate"], "48000", "{s}");
    assert_eq!(s["channels"], 1, "{s}");
    let pts: Vec<i64> = v["packets"]
        .as_array()
        .expect("packets")
        .iter()
        .filter_map(|p| p["pts"].as_i64())
        .collect();
    assert_eq!(pts.len(), 150, "every packet of the three segments");
    assert!(
        pts.windows(2)
            .all(|w| w[1] - w[0] == i64::from(FRAME_TICKS)),
        "one packet every 20 ms, across segment boundaries: {pts:?}"
    );

    let out = tool("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(&file)
        .args(["-f", "null", "-"])
        .output()
        .expect("ffmpeg runs");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "ffmpeg decodes it without a word: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn two_speakers_mixed_encoded_and_segmented_decode_in_ffmpeg_to_each_ones_tone_in_turn() {
    // Three segments of a second: speaker A (440 Hz) alone, both, then speaker B (700 Hz) alone.
    let mut mixer = Mixer::new();
    let mut encoder = MixEncoder::new(64_000).expect("encoder");
    let mut stream = init_segment(encoder.lookahead()).expect("init");
    let mut out = [0i16; FRAME];
    for seq in 0..3usize {
        let mut packets = Vec::new();
        for i in seq * 50..(seq + 1) * 50 {
            let (a, b) = (
                sine_frame(440.0, 12_000.0, i),
                sine_frame(700.0, 12_000.0, i),
            );
            let speaking: Vec<&[i16]> = match seq {
                0 => vec![&a],
                1 => vec![&a, &b],
                _ => vec![&b],
            };
            mixer.mix(speaking, &mut out);
            packets.push(encoder.encode(&out).expect("encode").to_vec());
        }
        let decode_time = (seq * 50) as u64 * u64::from(FRAME_TICKS);
        stream.extend(media_segment(seq as u32 + 1, decode_time, &packets).expect("segment"));
    }

    let mut ffmpeg = tool("ffmpeg")
        .args([
            "-v", "error", "-f", "mp4", "-i", "pipe:0", "-f", "s16le", "-ac", "1", "-ar", "48000",
        ])
        .arg("pipe:1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ffmpeg runs");
    let mut stdin = ffmpeg.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || stdin.write_all(&stream));
    let done = ffmpeg.wait_with_output().expect("ffmpeg output");
    let _ = writer.join();
    assert!(
        done.status.success() && done.stderr.is_empty(),
        "ffmpeg decodes the broadcast without a word: {}",
        String::from_utf8_lossy(&done.stderr)
    );
    let pcm: Vec<i16> = done
        .stdout
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    assert!(
        pcm.len() >= 2 * RATE as usize,
        "about 3 s of audio: {}",
        pcm.len()
    );
    // The middle half of the first and of the last second (away from the switches).
    let second = RATE as usize;
    let (first, last) = (
        &pcm[second / 4..3 * second / 4],
        &pcm[2 * second + second / 4..2 * second + 3 * second / 4],
    );
    let (a1, b1) = (tone_energy(first, 440.0), tone_energy(first, 700.0));
    let (a3, b3) = (tone_energy(last, 440.0), tone_energy(last, 700.0));
    println!(
        "440 Hz / 700 Hz energy: first second {a1:.4} / {b1:.4}, last second {a3:.4} / {b3:.4}"
    );
    assert!(a1 > 50.0 * b1, "speaker A alone first: {a1} vs {b1}");
    assert!(b3 > 50.0 * a3, "speaker B alone last: {b3} vs {a3}");
}
