//! Process resource limits: raising the open-file limit for runs that open one socket per member
//! (`sluice bench`).

use std::io;

/// Raises the soft open-file limit (`RLIMIT_NOFILE`) to the hard limit and returns the soft limit in
/// force afterwards.
pub fn raise_open_file_limit() -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the live, exclusively borrowed `lim`.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if lim.rlim_cur < lim.rlim_max {
        lim.rlim_cur = lim.rlim_max;
        // SAFETY: setrlimit reads one live rlimit, holding values the kernel just reported.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    // `rlim_t` is `u64` here but not on every libc target.
    #[allow(clippy::unnecessary_cast)]
    Ok(lim.rlim_cur as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_ends_at_the_hard_limit() {
        let soft = raise_open_file_limit().unwrap();
        assert_eq!(raise_open_file_limit().unwrap(), soft, "idempotent");
        assert!(soft > 0);
    }
}
