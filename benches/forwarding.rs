//! Criterion benches of the sans-IO forwarding core: route lookup and the whole per-packet path
//! (demux, parse, decrypt once, rewrite + encrypt per subscriber into the outbox) for fan-out 1→1,
//! 1→50 and 1→500, with and without SRTP. Sockets are not involved: this is the user-space share of
//! a packet's cost; `sluice bench` measures it with the kernel.

#![deny(unsafe_code)]

use std::time::Instant;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use sluice_dataplane::outbox::Outbox;
use sluice_dataplane::srtp::{SrtpEngine, SrtpProfile};
use sluice_dataplane::testkit::{fixture_addr, RoomFixture};

fn per_packet_path(c: &mut Criterion) {
    let mut g = c.benchmark_group("forward");
    let cases: [(&str, SrtpEngine, Option<SrtpProfile>); 4] = [
        ("none", SrtpEngine::InPlace, None),
        (
            "aes128gcm",
            SrtpEngine::InPlace,
            Some(SrtpProfile::AeadAes128Gcm),
        ),
        (
            "aescm",
            SrtpEngine::InPlace,
            Some(SrtpProfile::Aes128CmHmacSha1_80),
        ),
        (
            "aes128gcm-webrtc-srtp",
            SrtpEngine::WebrtcSrtp,
            Some(SrtpProfile::AeadAes128Gcm),
        ),
    ];
    for fanout in [1u64, 50, 500] {
        for (name, engine, profile) in cases {
            let RoomFixture {
                mut core,
                mut source,
            } = RoomFixture::new(engine, profile, fanout).expect("fixture");
            let mut out = Outbox::with_capacity(1024);
            let now = Instant::now();
            g.throughput(Throughput::Elements(fanout));
            g.bench_function(BenchmarkId::new(name, format!("1to{fanout}")), |b| {
                b.iter_batched_ref(
                    || {
                        let mut p = vec![0u8; 2048];
                        let n = source.next_packet(&mut p).expect("packet");
                        p.truncate(n);
                        p
                    },
                    |p| {
                        core.on_datagram(now, fixture_addr(0), p, &mut out);
                        assert_eq!(out.len() as u64, fanout);
                        out.clear();
                    },
                    BatchSize::SmallInput,
                )
            });
        }
    }
    g.finish();
}

fn route_lookup(c: &mut Criterion) {
    // An unknown source among 10,000 transports: demux, parse and one failed address lookup.
    let mut room = RoomFixture::new(SrtpEngine::InPlace, None, 10_000).expect("fixture");
    let mut out = Outbox::with_capacity(16);
    let mut p = vec![0u8; 2048];
    let n = room.source.next_packet(&mut p).expect("packet");
    let stranger = fixture_addr(60_000);
    let now = Instant::now();
    c.bench_function("route/unknown_source_among_10k", |b| {
        b.iter(|| room.core.on_datagram(now, stranger, &mut p[..n], &mut out))
    });
    // The known publisher's lookup + plain forward to one subscriber is forward/none/1to1.
}

criterion_group!(benches, per_packet_path, route_lookup);
criterion_main!(benches);
