//! Giving freed heap memory back to the operating system, and keeping it in few places.
//!
//! glibc's allocator keeps what a program frees in its arenas (one per thread that allocated,
//! up to eight per core) and returns it to the kernel only from the top of the main heap. A
//! server that frees a burst of short-lived allocations (a member's DTLS handshake, its first
//! SDP) keeps that memory resident for good. [`trim`] asks glibc to release every whole free page
//! of every arena (`malloc_trim(0)`, which `madvise`s them away since glibc 2.8); the control
//! plane calls it after it freed such a burst, at most about once a second, never on the packet
//! path. Elsewhere (another libc) it does nothing.

/// Releases the free pages of every malloc arena to the kernel; returns whether any was released.
/// Takes a few hundred microseconds on a heap of tens of megabytes: call it off the packet path.
pub fn trim() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: `malloc_trim` takes a size and touches only the allocator's own state, under
        // its own locks; it is safe to call from any thread at any time.
        unsafe { libc::malloc_trim(0) != 0 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

/// Caps glibc's malloc arenas at `n` (it makes up to eight per core, one for each thread that
/// allocates while the others hold theirs); returns whether the allocator took it. Fewer arenas
/// mean fewer half-empty heaps: each arena keeps its own free chunks and partly used pages, so a
/// control plane whose members are set up on many threads leaves memory scattered over all of
/// them. Call it first, before threads start. Elsewhere (another libc) it does nothing.
pub fn limit_arenas(n: i32) -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: `mallopt` sets one allocator parameter under the allocator's own lock; it is
        // safe to call at any time (a smaller cap only stops new arenas being made).
        unsafe { libc::mallopt(libc::M_ARENA_MAX, n) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        let _ = n;
        false
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_burst_freed_is_released_and_trimming_twice_is_harmless() {
        let burst: Vec<Vec<u8>> = (0..256).map(|i| vec![i as u8; 64 * 1024]).collect();
        drop(burst);
        super::trim();
        super::trim();
    }

    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn glibc_takes_an_arena_cap() {
        // Eight per core is glibc's own default on 64-bit: the cap changes nothing for the tests.
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert!(super::limit_arenas(8 * cores as i32));
    }
}
