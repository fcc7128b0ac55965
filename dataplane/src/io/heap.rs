//! Giving freed heap memory back to the operating system.
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

#[cfg(test)]
mod tests {
    #[test]
    fn a_burst_freed_is_released_and_trimming_twice_is_harmless() {
        let burst: Vec<Vec<u8>> = (0..256).map(|i| vec![i as u8; 64 * 1024]).collect();
        drop(burst);
        super::trim();
        super::trim();
    }
}
