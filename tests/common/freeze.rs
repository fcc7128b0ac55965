//! Stops one thread of a running process while the others go on, as a thread stuck in a loop or
//! a blocking call would: the test attaches to that thread alone with ptrace (PTRACE_SEIZE and
//! PTRACE_INTERRUPT stop only the thread named), and lets it go on drop. Only the test's own
//! child processes are frozen here.

use nix::sys::ptrace;
use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::Pid;

/// One thread of another process, stopped until this is dropped. Must be dropped on the thread
/// that made it (ptrace requests come from the tracer thread).
pub struct Frozen {
    tid: Pid,
}

/// The id of the thread called `name` (its `comm`) in process `pid`.
pub fn thread_named(pid: u32, name: &str) -> Option<i32> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .filter_map(Result::ok)
        .find(|t| {
            std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim_end() == name)
        })
        .and_then(|t| t.file_name().to_str()?.parse().ok())
}

impl Frozen {
    /// Stops the thread called `name` in process `pid`.
    pub fn thread(pid: u32, name: &str) -> Frozen {
        let tid = Pid::from_raw(
            thread_named(pid, name).unwrap_or_else(|| panic!("no thread {name} in {pid}")),
        );
        ptrace::seize(tid, ptrace::Options::empty()).expect("PTRACE_SEIZE");
        ptrace::interrupt(tid).expect("PTRACE_INTERRUPT");
        waitpid(tid, Some(WaitPidFlag::__WALL)).expect("the thread stops");
        Frozen { tid }
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        let _ = ptrace::detach(self.tid, None);
    }
}
