//! Instruction counts of the sans-IO forwarding path, for comparisons that the noise of a shared
//! machine cannot blur (wall-clock criterion runs of the same binary differ by up to 20 % here):
//!
//! ```text
//! cargo build --release -p sluice-dataplane --example forward_icount
//! valgrind --tool=callgrind --toggle-collect='*measured*' \
//!     target/release/examples/forward_icount CASE FANOUT N
//! ```
//!
//! forwards 200 warm-up packets and then N measured ones from the testkit publisher to FANOUT
//! subscribers (CASE: `none`, `aes128gcm`, `aescm`); callgrind counts only `measured`, so the
//! instructions per forwarded packet are its total divided by N. Callgrind counts instructions, not
//! time: the same binary and inputs give the same count whatever else the machine is doing.

#![deny(unsafe_code)]

use std::time::Instant;

use sluice_dataplane::outbox::Outbox;
use sluice_dataplane::srtp::{SrtpEngine, SrtpProfile};
use sluice_dataplane::testkit::{fixture_addr, RoomFixture};

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let usage = "usage: forward_icount none|aes128gcm|aescm FANOUT N";
    let (engine, profile) = match a.get(1).map(String::as_str) {
        Some("none") => (SrtpEngine::InPlace, None),
        Some("aes128gcm") => (SrtpEngine::InPlace, Some(SrtpProfile::AeadAes128Gcm)),
        Some("aescm") => (SrtpEngine::InPlace, Some(SrtpProfile::Aes128CmHmacSha1_80)),
        _ => panic!("{usage}"),
    };
    let fanout: u64 = a.get(2).and_then(|v| v.parse().ok()).expect(usage);
    let n: usize = a.get(3).and_then(|v| v.parse().ok()).expect(usage);
    let RoomFixture {
        mut core,
        mut source,
    } = RoomFixture::new(engine, profile, fanout).unwrap();
    let mut out = Outbox::with_capacity(1024);
    let now = Instant::now();
    let mut pkts: Vec<Vec<u8>> = (0..200 + n)
        .map(|_| {
            let mut p = vec![0u8; 2048];
            let k = source.next_packet(&mut p).unwrap();
            p.truncate(k);
            p
        })
        .collect();
    let (warm, rest) = pkts.split_at_mut(200);
    forward_all(&mut core, now, warm, &mut out, fanout);
    measured(&mut core, now, rest, &mut out, fanout);
}

/// The function callgrind counts (`--toggle-collect='*measured*'`).
#[inline(never)]
fn measured(
    core: &mut sluice_dataplane::forwarder::Forwarder,
    now: Instant,
    pkts: &mut [Vec<u8>],
    out: &mut Outbox,
    fanout: u64,
) {
    forward_all(core, now, pkts, out, fanout)
}

#[inline(never)]
fn forward_all(
    core: &mut sluice_dataplane::forwarder::Forwarder,
    now: Instant,
    pkts: &mut [Vec<u8>],
    out: &mut Outbox,
    fanout: u64,
) {
    for p in pkts.iter_mut() {
        core.on_datagram(now, fixture_addr(0), p, out);
        assert_eq!(out.len() as u64, fanout);
        out.clear();
    }
}
