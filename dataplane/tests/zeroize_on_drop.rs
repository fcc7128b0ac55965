//! SRTP keys do not outlive their owners in freed memory: a global allocator scans every block
//! freed while the test watches for the key bytes (the master key and salt, and the session key
//! and salt derived from them, RFC 3711 Appendix B.3), and finds none after an `SrtpKeys` and an
//! in-place `SrtpContext` are dropped. A control drops the same bytes in a plain `Vec` and must be
//! found, so the scan itself is shown to work. (ring's expanded AES-GCM key is not ours to wipe:
//! docs/security.md says so; for GCM the master key is checked.)
//!
//! One test in this binary, so nothing else frees memory while the scanner is armed.

#![deny(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use sluice_dataplane::srtp::{SrtpContext, SrtpEngine, SrtpKeys, SrtpProfile};

/// RFC 3711 Appendix B.3: master key and salt, and the SRTP session key and salt they derive.
const MASTER_KEY: [u8; 16] = hex16("E1F97A0D3E018BE0D64FA32C06DE4139");
const MASTER_SALT: [u8; 14] = hex14("0EC675AD498AFEEBB6960B3AABE6");
const SESSION_KEY: [u8; 16] = hex16("C61E7A93744F39EE10734AFE3FF7A087");
const SESSION_SALT: [u8; 14] = hex14("30CBBC08863D8C85D49DB34A9AE1");

const fn nibble(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'A'..=b'F' => c - b'A' + 10,
        _ => panic!("upper-case hex"),
    }
}

const fn hex<const N: usize>(s: &str) -> [u8; N] {
    let b = s.as_bytes();
    let mut out = [0u8; N];
    let mut i = 0;
    while i < N {
        out[i] = nibble(b[2 * i]) << 4 | nibble(b[2 * i + 1]);
        i += 1;
    }
    out
}

const fn hex16(s: &str) -> [u8; 16] {
    hex::<16>(s)
}

const fn hex14(s: &str) -> [u8; 14] {
    hex::<14>(s)
}

/// The byte strings looked for, in this order.
const NEEDLES: [&[u8]; 4] = [&MASTER_KEY, &MASTER_SALT, &SESSION_KEY, &SESSION_SALT];
const NAMES: [&str; 4] = ["master key", "master salt", "session key", "session salt"];

static ARMED: AtomicBool = AtomicBool::new(false);
static HITS: [AtomicUsize; 4] = [const { AtomicUsize::new(0) }; 4];

struct Scanning;

// `GlobalAlloc` is an unsafe trait, so a scanning allocator cannot be written without `unsafe`:
// this impl is the only `unsafe` in the test. It reads each block it is about to free, which the
// caller still owns for the length of the call, and allocates nothing itself.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Scanning {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if ARMED.load(Ordering::Relaxed) {
            let block = unsafe { std::slice::from_raw_parts(ptr, layout.size()) };
            for (needle, hits) in NEEDLES.iter().zip(&HITS) {
                if block.windows(needle.len()).any(|w| w == *needle) {
                    hits.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Scanning = Scanning;

/// Runs `f` with the scanner armed; which needles the blocks freed meanwhile held.
fn freed_during(f: impl FnOnce()) -> Vec<&'static str> {
    for h in &HITS {
        h.store(0, Ordering::Relaxed);
    }
    ARMED.store(true, Ordering::SeqCst);
    f();
    ARMED.store(false, Ordering::SeqCst);
    NAMES
        .iter()
        .zip(&HITS)
        .filter(|(_, h)| h.load(Ordering::Relaxed) > 0)
        .map(|(n, _)| *n)
        .collect()
}

#[test]
fn srtp_master_and_session_keys_are_wiped_before_their_memory_is_freed() {
    // Control: bytes that nobody wipes are found in the freed block.
    let plain = MASTER_KEY.to_vec();
    assert_eq!(freed_during(|| drop(plain)), vec!["master key"]);

    // AES-CM: master key and salt (SrtpKeys), session key and salt (the in-place context's AES
    // key schedule, whose first round key is the session key, and its salt).
    let keys = SrtpKeys::new(SrtpProfile::Aes128CmHmacSha1_80, &MASTER_KEY, &MASTER_SALT)
        .expect("RFC 3711 key lengths");
    let context = SrtpContext::new(SrtpEngine::InPlace, &keys).expect("context");
    let copy = keys.clone();
    let found = freed_during(|| {
        drop(context);
        drop(keys);
        drop(copy);
    });
    assert!(found.is_empty(), "freed memory still held the {found:?}");

    // AES-GCM: the master key (the 12-byte salt is a prefix of the 14-byte needle, so it is not
    // looked for here; the context's derived GCM key lives in ring).
    let keys = SrtpKeys::new(
        SrtpProfile::AeadAes128Gcm,
        &MASTER_KEY,
        &MASTER_SALT[..SrtpProfile::AeadAes128Gcm.master_salt_len()],
    )
    .expect("GCM key lengths");
    let context = SrtpContext::new(SrtpEngine::InPlace, &keys).expect("context");
    let found = freed_during(|| {
        drop(context);
        drop(keys);
    });
    assert!(
        !found.contains(&"master key"),
        "freed memory still held the GCM master key"
    );
}
