//! Proves the packet path allocates nothing in steady state: a counting global allocator around the
//! sans-IO forwarding core, fan-out 1→50 with SRTP (our in-place engine) and with plain RTP. Also
//! reports, and pins down, what the webrtc-srtp engine allocates per packet, which is why it is not
//! the default (see README, "Decisions").
//!
//! One test per binary run thread: the counter is per thread, so the harness's own threads do not
//! disturb it.

#![deny(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Instant;

use sluice_dataplane::outbox::Outbox;
use sluice_dataplane::srtp::{SrtpEngine, SrtpProfile};
use sluice_dataplane::testkit::{fixture_addr, RoomFixture};

struct Counting;

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

// `GlobalAlloc` is an unsafe trait, so a counting allocator cannot be written without `unsafe`: this
// impl is the only `unsafe` in the test.
// SAFETY: defers to the system allocator; only counts.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCS.with(|c| c.get())
}

/// Allocations per forwarded input packet for a 1→`fanout` room, after warm-up.
fn allocations_per_packet(engine: SrtpEngine, profile: Option<SrtpProfile>, fanout: u64) -> f64 {
    let mut room = RoomFixture::new(engine, profile, fanout).unwrap();
    let packets: Vec<Vec<u8>> = (0..2000)
        .map(|_| {
            let mut p = vec![0u8; 2048];
            let n = room.source.next_packet(&mut p).unwrap();
            p.truncate(n);
            p
        })
        .collect();
    let mut out = Outbox::with_capacity(1024);
    let now = Instant::now();
    let (warm, rest) = packets.split_at(500);
    for p in warm {
        room.core
            .on_datagram(now, fixture_addr(0), &mut p.clone(), &mut out);
        out.clear();
    }
    let mut rest = rest.to_vec();
    let n = rest.len() as f64;
    let before = allocations();
    for p in rest.iter_mut() {
        room.core.on_datagram(now, fixture_addr(0), p, &mut out);
        assert_eq!(out.len() as u64, fanout, "every subscriber gets the packet");
        out.clear();
    }
    (allocations() - before) as f64 / n
}

#[test]
fn the_packet_path_does_not_allocate_in_steady_state() {
    for profile in SrtpProfile::ALL {
        let a = allocations_per_packet(SrtpEngine::InPlace, Some(profile), 50);
        assert_eq!(
            a, 0.0,
            "{profile:?}: {a} allocations per packet with the in-place engine"
        );
    }
    let plain = allocations_per_packet(SrtpEngine::InPlace, None, 50);
    assert_eq!(plain, 0.0, "plain RTP: {plain} allocations per packet");

    // What webrtc-srtp allocates (decrypt once + encrypt 50 times per packet), for the README.
    for profile in SrtpProfile::ALL {
        let a = allocations_per_packet(SrtpEngine::WebrtcSrtp, Some(profile), 50);
        eprintln!(
            "webrtc-srtp engine, {}: {a:.1} allocations per 1→50 packet",
            profile.name()
        );
        assert!(a > 50.0, "webrtc-srtp allocates at least once per encrypt");
    }
}
