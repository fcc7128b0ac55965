//! The fMP4 this crate writes, read by a real demuxer: Debian's ffprobe and ffmpeg (installed by
//! scripts/test) open an init segment followed by media segments as one CMAF stream, see one mono
//! Opus track at 48 kHz, every packet at its time, and decode it without an error.

use std::process::Command;

use sluice_broadcast::fmp4::{init_segment, media_segment, FRAME_TICKS};

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
