//! CPU time of threads (`clock_gettime` on a thread's CPU clock): the calling thread's, for the bench's
//! load threads, and a worker's, read from the control side through its `JoinHandle`; and the whole
//! process's, for the load a cluster node reports.
//!
//! Safe wrappers over the two libc calls; both return plain values and never fail loudly (a clock the
//! kernel refuses reads as zero or `None`).

use std::os::unix::thread::JoinHandleExt;
use std::thread::JoinHandle;
use std::time::Duration;

/// CPU time consumed so far by the calling thread (`CLOCK_THREAD_CPUTIME_ID`), for per-packet
/// cost accounting in workers and benchmarks.
pub fn thread_cpu_time() -> Duration {
    clock_time(libc::CLOCK_THREAD_CPUTIME_ID).unwrap_or(Duration::ZERO)
}

/// CPU time consumed so far by the whole process, every thread (`CLOCK_PROCESS_CPUTIME_ID`): the
/// load a cluster node reports.
pub fn process_cpu_time() -> Duration {
    clock_time(libc::CLOCK_PROCESS_CPUTIME_ID).unwrap_or(Duration::ZERO)
}

/// CPU time (user + system) the thread behind `thread` has used so far; `None` when the kernel does
/// not give its clock. The handle borrowed here proves the thread is not yet joined, so its id is
/// valid.
pub fn cpu_time_of<T>(thread: &JoinHandle<T>) -> Option<Duration> {
    let mut clock: libc::clockid_t = 0;
    // SAFETY: the pthread_t comes from a JoinHandle the caller still holds (borrowed for this call),
    // so the thread is not yet joined and its id is valid; `clock` is a valid out-pointer.
    let rc = unsafe { libc::pthread_getcpuclockid(thread.as_pthread_t(), &mut clock) };
    if rc != 0 {
        return None;
    }
    clock_time(clock)
}

/// Reads `clock`; `None` when the kernel refuses.
fn clock_time(clock: libc::clockid_t) -> Option<Duration> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into the live, exclusively borrowed `ts`.
    let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
    (rc == 0).then(|| Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_grows_with_work_and_is_readable_for_another_thread() {
        let t0 = thread_cpu_time();
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
        assert!(thread_cpu_time() > t0, "{x}");
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let t = std::thread::spawn(move || {
            let _ = rx.recv();
        });
        assert!(cpu_time_of(&t).is_some());
        drop(tx);
        t.join().unwrap();
    }
}
