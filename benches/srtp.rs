//! SRTP per-packet cost: `protect_rtp` / `unprotect_rtp` of a 172-byte RTP packet (12-byte header +
//! 160-byte payload, one 20 ms G.711/Opus-sized frame) for each profile, with the in-place engine and
//! the `webrtc-srtp` engine side by side. Ids: `srtp/{protect,unprotect}/{profile}/{engine}`, where
//! engine is `inplace`, `webrtc-srtp` (our wrapper, result copied back into the caller's buffer) or
//! `webrtc-srtp-raw` (webrtc-srtp's own `encrypt_rtp`/`decrypt_rtp`, returning `Bytes`, for reference).
//!
//! Correctness of the measurement:
//! - Every protected packet has a new sequence number (the ROC advances on wrap, as in a real send).
//! - Unprotect has replay protection on, so every timed call needs a packet never seen before:
//!   `iter_batched_ref` protects a fresh packet from a sender context in the untimed setup, in sequence
//!   order, and the routine unprotects it. Each routine result is checked (a failure aborts the bench).
//!
//! Before the criterion runs, `main` prints heap allocations per call for each engine, counted by
//! the counting global allocator below (the only `unsafe` here: it forwards to `System`).

#![deny(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{BatchSize, Criterion, Throughput};
use sluice_dataplane::srtp::{SrtpContext, SrtpEngine, SrtpKeys, SrtpProfile};

/// Counts allocations (alloc, alloc_zeroed, realloc) made by the whole process.
struct CountingAlloc;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

// `GlobalAlloc` is an unsafe trait, so a counting allocator cannot be written without `unsafe`.
// SAFETY: every method forwards to `System` with the caller's arguments unchanged; the counter is a
// relaxed atomic and never allocates.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

const PAYLOAD: usize = 160;
const HDR: usize = 12;
const LEN: usize = HDR + PAYLOAD;
const ROOM: usize = LEN + 16;
const SSRC: u32 = 0x1234_5678;

fn keys(profile: SrtpProfile) -> SrtpKeys {
    let key: Vec<u8> = (0..profile.master_key_len() as u8)
        .map(|i| i.wrapping_mul(29) ^ 0x3c)
        .collect();
    let salt: Vec<u8> = (0..profile.master_salt_len() as u8)
        .map(|i| i.wrapping_mul(17) ^ 0xa5)
        .collect();
    SrtpKeys::new(profile, &key, &salt).expect("valid key lengths")
}

/// A raw webrtc-srtp context with replay protection on (as our wrapper builds it).
fn raw_webrtc(k: &SrtpKeys) -> webrtc_srtp::context::Context {
    use webrtc_srtp::option::{srtcp_replay_protection, srtp_replay_protection};
    webrtc_srtp::context::Context::new(
        &k.master_key,
        &k.master_salt,
        k.profile.webrtc(),
        Some(srtp_replay_protection(128)),
        Some(srtcp_replay_protection(128)),
    )
    .expect("webrtc-srtp context")
}

/// Plaintext RTP packet with sequence number `seq` in a buffer with room for the tag.
fn plain(seq: u16) -> [u8; ROOM] {
    let mut b = [0u8; ROOM];
    b[0] = 0x80;
    b[1] = 111;
    b[2..4].copy_from_slice(&seq.to_be_bytes());
    b[4..8].copy_from_slice(&(u32::from(seq) * 960).to_be_bytes());
    b[8..12].copy_from_slice(&SSRC.to_be_bytes());
    for (i, x) in b[HDR..LEN].iter_mut().enumerate() {
        *x = i as u8;
    }
    b
}

/// A sender that hands out freshly protected packets in sequence order.
struct Sender {
    ctx: SrtpContext,
    seq: u16,
}

impl Sender {
    fn new(k: &SrtpKeys) -> Self {
        Sender {
            ctx: SrtpContext::new(SrtpEngine::InPlace, k).expect("context"),
            seq: 1,
        }
    }
    fn next(&mut self) -> ([u8; ROOM], usize) {
        let mut b = plain(self.seq);
        self.seq = self.seq.wrapping_add(1);
        let n = self.ctx.protect_rtp(&mut b, LEN).expect("protect");
        (b, n)
    }
}

fn engines() -> [SrtpEngine; 2] {
    [SrtpEngine::InPlace, SrtpEngine::WebrtcSrtp]
}

/// Allocations per call, measured over `N` calls after a warm-up.
fn report_allocations() {
    const N: u64 = 1000;
    println!("heap allocations per call (172-byte RTP packet, {N} calls, after warm-up):");
    for profile in SrtpProfile::ALL {
        let k = keys(profile);
        for engine in engines() {
            let mut tx = SrtpContext::new(engine, &k).expect("context");
            let mut rx = SrtpContext::new(engine, &k).expect("context");
            let mut packets = Vec::with_capacity(N as usize + 10);
            for seq in 0..10u16 {
                let mut b = plain(seq);
                let n = tx.protect_rtp(&mut b, LEN).expect("protect");
                rx.unprotect_rtp(&mut b[..n]).expect("unprotect");
            }
            // Protect (counted), keeping the packets for the unprotect count.
            let before = ALLOCS.load(Ordering::Relaxed);
            for seq in 10..10 + N as u16 {
                let mut b = plain(seq);
                let n = tx.protect_rtp(&mut b, LEN).expect("protect");
                black_box(&b);
                // Vec::push within capacity does not allocate.
                packets.push((b, n));
            }
            let protect = ALLOCS.load(Ordering::Relaxed) - before;
            let before = ALLOCS.load(Ordering::Relaxed);
            for (b, n) in packets.iter_mut() {
                rx.unprotect_rtp(&mut b[..*n]).expect("unprotect");
            }
            let unprotect = ALLOCS.load(Ordering::Relaxed) - before;
            println!(
                "  {:<10} {:<12} protect_rtp {:>5.2}   unprotect_rtp {:>5.2}",
                profile.short_name(),
                engine.name(),
                protect as f64 / N as f64,
                unprotect as f64 / N as f64
            );
        }
    }
}

fn bench_protect(c: &mut Criterion, profile: SrtpProfile) {
    let k = keys(profile);
    let mut g = c.benchmark_group(format!("srtp/protect/{}", profile.short_name()));
    g.throughput(Throughput::Elements(1));
    for engine in engines() {
        let mut tx = SrtpContext::new(engine, &k).expect("context");
        let mut seq = 0u16;
        g.bench_function(engine.name(), |b| {
            b.iter_batched_ref(
                || {
                    seq = seq.wrapping_add(1);
                    plain(seq)
                },
                |buf| {
                    let n = tx.protect_rtp(buf, LEN).expect("protect");
                    black_box(n)
                },
                BatchSize::SmallInput,
            )
        });
    }
    let mut raw = raw_webrtc(&k);
    let mut seq = 0u16;
    g.bench_function("webrtc-srtp-raw", |b| {
        b.iter_batched_ref(
            || {
                seq = seq.wrapping_add(1);
                plain(seq)
            },
            |buf| black_box(raw.encrypt_rtp(&buf[..LEN]).expect("encrypt")),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn bench_unprotect(c: &mut Criterion, profile: SrtpProfile) {
    let k = keys(profile);
    let mut g = c.benchmark_group(format!("srtp/unprotect/{}", profile.short_name()));
    g.throughput(Throughput::Elements(1));
    for engine in engines() {
        let mut tx = Sender::new(&k);
        let mut rx = SrtpContext::new(engine, &k).expect("context");
        g.bench_function(engine.name(), |b| {
            b.iter_batched_ref(
                || tx.next(),
                |(buf, n)| {
                    let m = rx.unprotect_rtp(&mut buf[..*n]).expect("unprotect");
                    black_box(m)
                },
                BatchSize::SmallInput,
            )
        });
    }
    let mut tx = Sender::new(&k);
    let mut raw = raw_webrtc(&k);
    g.bench_function("webrtc-srtp-raw", |b| {
        b.iter_batched_ref(
            || tx.next(),
            |(buf, n)| black_box(raw.decrypt_rtp(&buf[..*n]).expect("decrypt")),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

/// The AES-GCM primitive alone, RustCrypto `aes-gcm` (what webrtc-srtp uses) against `ring` (what
/// our in-place engine uses): seal 160 payload bytes with a 12-byte header as AAD, in place.
fn bench_gcm_primitive(c: &mut Criterion) {
    use aes_gcm::aead::AeadInPlace;
    use aes_gcm::KeyInit;
    let key = [7u8; 16];
    let iv = [9u8; 12];
    let aad = [0x80u8; 12];
    let mut body = [0x55u8; 160];
    let rc = aes_gcm::Aes128Gcm::new_from_slice(&key).expect("key");
    c.bench_function("gcm_primitive/seal160/aes-gcm", |b| {
        b.iter(|| {
            rc.encrypt_in_place_detached((&iv).into(), &aad, &mut body)
                .expect("seal")
        })
    });
    let ring_key = ring::aead::LessSafeKey::new(
        ring::aead::UnboundKey::new(&ring::aead::AES_128_GCM, &key).expect("key"),
    );
    c.bench_function("gcm_primitive/seal160/ring", |b| {
        b.iter(|| {
            ring_key
                .seal_in_place_separate_tag(
                    ring::aead::Nonce::assume_unique_for_key(iv),
                    ring::aead::Aad::from(&aad),
                    &mut body,
                )
                .expect("seal")
        })
    });
}

fn main() {
    report_allocations();
    let mut c = Criterion::default().configure_from_args();
    bench_gcm_primitive(&mut c);
    for profile in SrtpProfile::ALL {
        bench_protect(&mut c, profile);
        bench_unprotect(&mut c, profile);
    }
    c.final_summary();
}
