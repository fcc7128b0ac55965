//! The io_uring backend, using the io-uring crate directly (one ring per worker, no runtime).
//!
//! - Receive: one multishot `RecvMsgMulti` stays armed on the socket and picks buffers from a
//!   provided buffer ring (1024 buffers, each an `io_uring_recvmsg_out` header, room for a
//!   `sockaddr_in6` and a 2048-byte payload). Each completion names the buffer it filled; the
//!   buffer goes back to the ring (tail bump) once the callback has seen it. The multishot is
//!   re-armed whenever a completion lacks `IORING_CQE_F_MORE` (e.g. `ENOBUFS` after the ring ran
//!   dry while the worker was busy).
//! - Wake-up: a single-shot `PollAdd` on the wake eventfd is kept in flight; its completion drains
//!   the eventfd and makes `recv` return.
//! - Waiting: `io_uring_enter` with an `EXT_ARG` timespec (`ETIME` = timeout).
//! - Send: one `SendMsg` SQE per outbox entry, headers preallocated and pointing into the Outbox
//!   slots, one submit-and-wait for the whole chunk. `send` returns only after every one of its
//!   SQEs has completed, so the Outbox is never referenced by the kernel after `send` returns.
//!   Receive completions that arrive meanwhile are queued (bounded by the buffer count).
//!
//! user_data tags: the low 8 bits say what completed; for sends the upper bits hold the index.
//!
//! Invariants: all memory the kernel may touch (buffer ring, buffers, receive msghdr, send
//! headers/iovecs/addresses) is allocated in `new` and lives until `Drop`, which cancels the
//! multishot and waits for it before freeing anything. The socket must be blocking: on an
//! `O_NONBLOCK` file io_uring completes with `EAGAIN` instead of waiting.

use std::alloc::{self, Layout};
use std::collections::VecDeque;
use std::io;
use std::mem;
use std::net::{SocketAddr, UdpSocket};
use std::ops::ControlFlow;
use std::os::fd::{AsRawFd, RawFd};
use std::ptr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use io_uring::{cqueue, opcode, squeue, types, IoUring, Probe};

use super::{
    is_fatal_send_error, is_retry_send_error, read_sockaddr, write_sockaddr, zeroed_storage,
    BackendKind, DatagramIo, IoConfig, SendReport, Wake,
};
use crate::outbox::{Outbox, SLOT_SIZE};

const SQ_ENTRIES: u32 = 4096;
const CQ_ENTRIES: u32 = 16384;
/// Provided buffers (a power of two, at most 32768).
const RING_BUFS: u16 = 1024;
const BGID: u16 = 0x51;
/// `struct io_uring_recvmsg_out`: namelen, controllen, payloadlen, flags (4 × u32).
const RECVMSG_OUT_LEN: usize = 16;
/// Fixed room for the source address in every buffer.
const NAME_LEN: usize = mem::size_of::<libc::sockaddr_in6>();
const PAYLOAD_OFFSET: usize = RECVMSG_OUT_LEN + NAME_LEN;
/// What the kernel may fill: header + name + one full slot; more sets MSG_TRUNC.
const BUF_LEN: usize = PAYLOAD_OFFSET + SLOT_SIZE;
/// Distance between buffers (cache-line rounded).
const BUF_STRIDE: usize = BUF_LEN.next_multiple_of(64);
const PAGE: usize = 4096;

const TAG_RECV: u64 = 1;
const TAG_WAKE: u64 = 2;
const TAG_SEND: u64 = 3;
const TAG_CANCEL: u64 = 4;
const TAG_MASK: u64 = 0xff;

/// Rounds of EAGAIN/ENOBUFS resubmission before the rest of a chunk counts as failed.
const SEND_RETRIES: u32 = 3;

/// One entry of the kernel's `struct io_uring_buf`; in entry 0 `resv` is the ring's tail.
#[repr(C)]
struct BufEntry {
    addr: u64,
    len: u32,
    bid: u16,
    resv: u16,
}

/// A zeroed, page-aligned heap allocation that is only accessed through raw pointers (the kernel
/// reads or writes it concurrently).
struct PageAlloc {
    ptr: *mut u8,
    layout: Layout,
}

impl PageAlloc {
    fn new(bytes: usize) -> io::Result<Self> {
        let layout = Layout::from_size_align(bytes.next_multiple_of(PAGE), PAGE)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        // SAFETY: the layout has a non-zero size (callers pass bytes > 0) and a valid alignment.
        let ptr = unsafe { alloc::alloc_zeroed(layout) };
        if ptr.is_null() {
            return Err(io::Error::from(io::ErrorKind::OutOfMemory));
        }
        Ok(Self { ptr, layout })
    }
}

impl Drop for PageAlloc {
    fn drop(&mut self) {
        if self.ptr.is_null() {
            return; // leaked on purpose (see UringIo's Drop)
        }
        // SAFETY: `ptr` came from `alloc_zeroed` with exactly this layout and is freed once.
        unsafe { alloc::dealloc(self.ptr, self.layout) };
    }
}

/// io_uring with a multishot receive and batched `SendMsg`.
pub struct UringIo {
    // Declared first so it is dropped (ring fd closed) before the memory below is freed; `Drop`
    // has already cancelled and reaped the multishot receive by then.
    ring: IoUring,
    socket: UdpSocket,
    fd: RawFd,
    local: SocketAddr,
    v6: bool,
    wake: Wake,
    recv_batch: usize,
    max_send_batch: usize,
    truncated: u64,
    /// Set after an error that leaves the ring in an unknown state; every later call fails.
    broken: bool,

    bufring: PageAlloc,
    buffers: PageAlloc,
    /// Next tail value to publish to the kernel.
    buf_tail: u16,
    buf_tail_published: u16,
    recv_msghdr: Box<libc::msghdr>,
    recv_armed: bool,
    wake_armed: bool,
    woke: bool,
    /// Last error the multishot receive completed with, if it is not worth re-arming for.
    recv_error: Option<i32>,
    /// Filled buffers not yet handed over: (buffer id, bytes written).
    ready: VecDeque<(u16, u32)>,

    siov: Box<[libc::iovec]>,
    snames: Box<[libc::sockaddr_storage]>,
    shdrs: Box<[libc::msghdr]>,
    /// Completion result per index of the current chunk.
    sres: Box<[i32]>,
    todo: Vec<u32>,
    retry: Vec<u32>,
}

// SAFETY: every raw pointer held (buffer ring, buffers, msghdrs, iovecs) points into heap memory
// owned by this struct; moving the struct to another thread moves that ownership with it. The ring
// is created without IORING_SETUP_SINGLE_ISSUER, so submitting from another thread is allowed.
unsafe impl Send for UringIo {}

fn zeroed_msghdr() -> libc::msghdr {
    // SAFETY: msghdr is a plain C struct; all-zero (null pointers, zero lengths) is valid.
    unsafe { mem::zeroed() }
}

fn explain_setup_error(e: io::Error) -> io::Error {
    let why = match e.raw_os_error() {
        Some(libc::EPERM) => {
            "io_uring_setup: EPERM — io_uring is blocked (container seccomp profile or sysctl kernel.io_uring_disabled)"
        }
        Some(libc::ENOSYS) => "io_uring_setup: ENOSYS — the kernel has no io_uring",
        Some(libc::ENOMEM) => "io_uring_setup: ENOMEM — not enough locked memory for the ring (RLIMIT_MEMLOCK)",
        _ => return io::Error::new(e.kind(), format!("io_uring_setup failed: {e}")),
    };
    io::Error::new(e.kind(), why)
}

impl UringIo {
    /// Checks that this host can run the backend: `io_uring_setup` works, the opcodes and the
    /// `EXT_ARG` feature exist, and a multishot `RecvMsgMulti` with a provided buffer ring (Linux
    /// 6.0+) plus a `SendMsg` round trip really work on a loopback socket.
    pub fn probe() -> io::Result<()> {
        let ring: IoUring = IoUring::new(8).map_err(explain_setup_error)?;
        let mut probe = Probe::new();
        ring.submitter().register_probe(&mut probe)?;
        for (code, name) in [
            (opcode::RecvMsg::CODE, "RECVMSG"),
            (opcode::SendMsg::CODE, "SENDMSG"),
            (opcode::PollAdd::CODE, "POLL_ADD"),
            (opcode::AsyncCancel::CODE, "ASYNC_CANCEL"),
        ] {
            if !probe.is_supported(code) {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    format!("io_uring opcode {name} is not supported by this kernel"),
                ));
            }
        }
        if !ring.params().is_feature_ext_arg() {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "io_uring lacks IORING_FEAT_EXT_ARG (kernel < 5.11)",
            ));
        }
        drop(ring);

        let cfg = IoConfig {
            recv_batch: 4,
            recv_buf_bytes: 1 << 16,
            send_buf_bytes: 1 << 16,
            max_send_batch: 4,
        };
        let socket = super::bind_udp(SocketAddr::from(([127, 0, 0, 1], 0)), &cfg, false)?;
        let addr = socket.local_addr()?;
        let mut io = UringIo::new(socket, Wake::new()?, &cfg)?;
        let mut out = Outbox::with_capacity(1);
        out.push(addr, b"sluice io_uring probe");
        let report = io.send(&mut out)?;
        if report.sent != 1 {
            return Err(io::Error::other(
                "io_uring SendMsg to loopback did not complete",
            ));
        }
        let deadline = Instant::now() + Duration::from_secs(1);
        while Instant::now() < deadline {
            let mut ok = false;
            io.recv(Some(Duration::from_millis(50)), |from, bytes| {
                ok = from == addr && bytes == b"sluice io_uring probe";
                ControlFlow::Continue(())
            })?;
            if ok {
                return Ok(());
            }
            if let Some(errno) = io.recv_error {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    format!(
                        "multishot RecvMsgMulti with a provided buffer ring failed ({}); needs Linux 6.0+",
                        io::Error::from_raw_os_error(errno)
                    ),
                ));
            }
        }
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "multishot RecvMsgMulti with a provided buffer ring delivered nothing within 1 s",
        ))
    }

    /// Wraps a blocking socket (see [`super::bind_udp`]) and the worker's wake eventfd.
    pub fn new(socket: UdpSocket, wake: Wake, cfg: &IoConfig) -> io::Result<Self> {
        socket.set_nonblocking(false)?;
        let local = socket.local_addr()?;
        // COOP_TASKRUN: completions are posted when we enter the kernel anyway (every send and
        // every wait), instead of interrupting the worker with an IPI for each datagram.
        let ring = IoUring::builder()
            .setup_cqsize(CQ_ENTRIES)
            .setup_coop_taskrun()
            .setup_taskrun_flag()
            .build(SQ_ENTRIES)
            .or_else(|_| {
                IoUring::builder()
                    .setup_cqsize(CQ_ENTRIES)
                    .build(SQ_ENTRIES)
            })
            .map_err(explain_setup_error)?;

        let max_send_batch = cfg.max_send_batch.clamp(1, (SQ_ENTRIES / 2) as usize);
        let bufring = PageAlloc::new(RING_BUFS as usize * mem::size_of::<BufEntry>())?;
        let buffers = PageAlloc::new(RING_BUFS as usize * BUF_STRIDE)?;
        let mut recv_msghdr = Box::new(zeroed_msghdr());
        recv_msghdr.msg_namelen = NAME_LEN as libc::socklen_t;

        let mut io = Self {
            ring,
            fd: socket.as_raw_fd(),
            socket,
            local,
            v6: local.is_ipv6(),
            wake,
            recv_batch: cfg.recv_batch.max(1),
            max_send_batch,
            truncated: 0,
            broken: false,
            bufring,
            buffers,
            buf_tail: 0,
            buf_tail_published: 0,
            recv_msghdr,
            recv_armed: false,
            wake_armed: false,
            woke: false,
            recv_error: None,
            ready: VecDeque::with_capacity(RING_BUFS as usize),
            siov: (0..max_send_batch)
                .map(|_| libc::iovec {
                    iov_base: ptr::null_mut(),
                    iov_len: 0,
                })
                .collect(),
            snames: (0..max_send_batch).map(|_| zeroed_storage()).collect(),
            shdrs: (0..max_send_batch).map(|_| zeroed_msghdr()).collect(),
            sres: vec![0; max_send_batch].into_boxed_slice(),
            todo: Vec::with_capacity(max_send_batch),
            retry: Vec::with_capacity(max_send_batch),
        };

        for bid in 0..RING_BUFS {
            io.recycle(bid);
        }
        io.publish_tail();
        // SAFETY: `bufring` is page-aligned, holds RING_BUFS entries, and stays allocated until
        // after the ring is closed (field order + Drop, which unregisters first).
        unsafe {
            io.ring.submitter().register_buf_ring_with_flags(
                io.bufring.ptr as u64,
                RING_BUFS,
                BGID,
                0,
            )?;
        }
        io.arm()?;
        io.ring.submit()?;
        Ok(io)
    }

    /// The socket, e.g. for `getsockopt` in diagnostics.
    pub fn socket(&self) -> &UdpSocket {
        &self.socket
    }

    fn tail_atomic(&self) -> &AtomicU16 {
        // SAFETY: the tail is the `resv` u16 of entry 0 (offset 14, 2-aligned) in our live
        // bufring allocation; the kernel only reads it, and we only access it atomically.
        unsafe { &*self.bufring.ptr.add(14).cast::<AtomicU16>() }
    }

    /// Gives buffer `bid` back to the kernel (visible after `publish_tail`).
    fn recycle(&mut self, bid: u16) {
        let idx = (self.buf_tail & (RING_BUFS - 1)) as usize;
        // SAFETY: idx < RING_BUFS so the entry lies inside `bufring`; the kernel does not read
        // entries at or past the published tail, so writing this one races with nothing. We
        // write the fields individually and never touch `resv` (entry 0's resv is the tail).
        unsafe {
            let e = self.bufring.ptr.cast::<BufEntry>().add(idx);
            ptr::addr_of_mut!((*e).addr)
                .write(self.buffers.ptr.add(bid as usize * BUF_STRIDE) as u64);
            ptr::addr_of_mut!((*e).len).write(BUF_LEN as u32);
            ptr::addr_of_mut!((*e).bid).write(bid);
        }
        self.buf_tail = self.buf_tail.wrapping_add(1);
    }

    fn publish_tail(&mut self) {
        if self.buf_tail != self.buf_tail_published {
            // Release: the entry writes above become visible before the new tail.
            self.tail_atomic().store(self.buf_tail, Ordering::Release);
            self.buf_tail_published = self.buf_tail;
        }
    }

    fn push(&mut self, entry: &squeue::Entry) -> io::Result<()> {
        loop {
            // SAFETY: every entry we build points only at memory owned by `self` (receive msghdr,
            // send arrays) or at Outbox slots that `send` keeps borrowed until completion.
            if unsafe { self.ring.submission().push(entry) }.is_ok() {
                return Ok(());
            }
            self.ring.submit()?;
        }
    }

    /// Arms the multishot receive and the wake poll if they are not in flight.
    fn arm(&mut self) -> io::Result<()> {
        self.publish_tail();
        if !self.recv_armed && self.recv_error.is_none() {
            let e = opcode::RecvMsgMulti::new(types::Fd(self.fd), &*self.recv_msghdr, BGID)
                .build()
                .user_data(TAG_RECV);
            self.push(&e)?;
            self.recv_armed = true;
        }
        if !self.wake_armed {
            let e = opcode::PollAdd::new(types::Fd(self.wake.fd()), libc::POLLIN as u32)
                .build()
                .user_data(TAG_WAKE);
            self.push(&e)?;
            self.wake_armed = true;
        }
        Ok(())
    }

    /// Moves every completion out of the CQ; returns how many sends completed.
    fn reap(&mut self) -> usize {
        let mut sends = 0;
        for cqe in self.ring.completion() {
            let ud = cqe.user_data();
            let res = cqe.result();
            match ud & TAG_MASK {
                TAG_SEND => {
                    self.sres[(ud >> 8) as usize] = res;
                    sends += 1;
                }
                TAG_RECV => {
                    let flags = cqe.flags();
                    if !cqueue::more(flags) {
                        self.recv_armed = false;
                    }
                    if res >= 0 {
                        if let Some(bid) = cqueue::buffer_select(flags) {
                            self.ready.push_back((bid, res as u32));
                        }
                    } else {
                        match -res {
                            // Ring ran dry / transient / ICMP noise: re-arm on the next turn.
                            libc::ENOBUFS
                            | libc::EINTR
                            | libc::EAGAIN
                            | libc::ECONNREFUSED
                            | libc::EHOSTUNREACH
                            | libc::ENETUNREACH
                            | libc::ECANCELED
                            | libc::ENOMEM => {}
                            errno => self.recv_error = Some(errno),
                        }
                    }
                }
                TAG_WAKE => {
                    self.wake_armed = false;
                    self.woke = true;
                    self.wake.drain();
                }
                _ => {}
            }
        }
        sends
    }

    fn check(&self) -> io::Result<()> {
        if self.broken {
            return Err(io::Error::other(
                "io_uring backend is broken after an earlier error",
            ));
        }
        if let Some(errno) = self.recv_error {
            return Err(io::Error::from_raw_os_error(errno));
        }
        Ok(())
    }

    /// Submits and waits for `want` completions; EINTR/EBUSY/ETIME are not errors here.
    fn submit_wait(&mut self, want: usize, timeout: Option<Duration>) -> io::Result<()> {
        let r = match timeout {
            None => self.ring.submit_and_wait(want),
            Some(d) => {
                let ts = types::Timespec::new()
                    .sec(d.as_secs())
                    .nsec(d.subsec_nanos());
                let args = types::SubmitArgs::new().timespec(&ts);
                self.ring.submitter().submit_with_args(want, &args)
            }
        };
        match r {
            Ok(_) => Ok(()),
            Err(e) => match e.raw_os_error() {
                Some(libc::ETIME | libc::EINTR | libc::EBUSY | libc::EAGAIN) => Ok(()),
                _ => {
                    self.broken = true;
                    Err(e)
                }
            },
        }
    }

    /// Hands over one ready buffer; returns (handed over?, callback's verdict).
    fn deliver<F: FnMut(SocketAddr, &mut [u8]) -> ControlFlow<()>>(
        &mut self,
        bid: u16,
        len: u32,
        on_datagram: &mut F,
    ) -> (bool, ControlFlow<()>) {
        // SAFETY: bid < RING_BUFS (the kernel only returns ids we gave it), so the buffer lies
        // inside `buffers`; the kernel filled `len` <= BUF_LEN bytes and no longer touches the
        // buffer until we recycle it after this function.
        let base = unsafe { self.buffers.ptr.add(bid as usize * BUF_STRIDE) };
        let len = (len as usize).min(BUF_LEN);
        let parsed = {
            // SAFETY: see above; this shared view ends before the mutable one below is made.
            let bytes = unsafe { std::slice::from_raw_parts(base, len) };
            match types::RecvMsgOut::parse(bytes, &self.recv_msghdr) {
                Ok(out) if out.is_payload_truncated() => None,
                Ok(out) => {
                    let mut st = zeroed_storage();
                    let name = out.name_data();
                    let n = name.len().min(mem::size_of::<libc::sockaddr_storage>());
                    // SAFETY: copies n <= size_of(sockaddr_storage) bytes from the buffer into a
                    // local storage; the regions do not overlap.
                    unsafe {
                        ptr::copy_nonoverlapping(
                            name.as_ptr(),
                            (&mut st as *mut libc::sockaddr_storage).cast::<u8>(),
                            n,
                        )
                    };
                    let from = read_sockaddr(&st, (out.incoming_name_len() as usize).min(n));
                    from.map(|f| (f, out.payload_data().len()))
                }
                Err(()) => return (false, ControlFlow::Continue(())),
            }
        };
        match parsed {
            None => {
                self.truncated += 1;
                (false, ControlFlow::Continue(()))
            }
            Some((from, plen)) => {
                // SAFETY: the payload starts at PAYLOAD_OFFSET and `plen` bytes of it were written
                // (parse checked they lie within `len`); we hold the only reference to this
                // buffer until it is recycled.
                let payload =
                    unsafe { std::slice::from_raw_parts_mut(base.add(PAYLOAD_OFFSET), plen) };
                (true, on_datagram(from, payload))
            }
        }
    }
}

impl DatagramIo for UringIo {
    fn kind(&self) -> BackendKind {
        BackendKind::Uring
    }

    fn local_addr(&self) -> SocketAddr {
        self.local
    }

    fn recv<F: FnMut(SocketAddr, &mut [u8]) -> ControlFlow<()>>(
        &mut self,
        timeout: Option<Duration>,
        mut on_datagram: F,
    ) -> io::Result<usize> {
        self.check()?;
        // `woke` may already be set by a wake-up reaped during `send`: that one counts too.
        self.reap();
        if self.ready.is_empty() {
            self.arm()?;
            if !self.woke {
                // Entering the kernel also runs deferred task work (COOP_TASKRUN), so completions
                // already due are posted and this returns at once.
                self.submit_wait(1, timeout)?;
                self.reap();
            }
            self.check()?;
        }
        self.woke = false;
        let mut handed = 0;
        let mut examined = 0;
        while examined < self.recv_batch {
            let Some((bid, len)) = self.ready.pop_front() else {
                break;
            };
            examined += 1;
            let (given, flow) = self.deliver(bid, len, &mut on_datagram);
            self.recycle(bid);
            handed += given as usize;
            if flow.is_break() {
                break;
            }
        }
        self.publish_tail();
        if !self.recv_armed {
            // Re-arm now so datagrams keep flowing into buffers while the caller works.
            self.arm()?;
            self.ring.submit()?;
        }
        Ok(handed)
    }

    fn send(&mut self, outbox: &mut Outbox) -> io::Result<SendReport> {
        if let Err(e) = self.check() {
            outbox.clear();
            return Err(e);
        }
        let total = outbox.len();
        let mut report = SendReport::default();
        let mut fatal: Option<io::Error> = None;
        let mut i = 0;
        while i < total && fatal.is_none() {
            let chunk = (total - i).min(self.max_send_batch);
            for k in 0..chunk {
                let (dest, _) = outbox.get(i + k);
                let (p, len) = outbox.slot_ptr(i + k);
                let namelen = write_sockaddr(&dest, self.v6, &mut self.snames[k]);
                self.siov[k] = libc::iovec {
                    iov_base: p as *mut libc::c_void,
                    iov_len: len,
                };
                let h = &mut self.shdrs[k];
                h.msg_name = (&mut self.snames[k] as *mut libc::sockaddr_storage).cast();
                h.msg_namelen = namelen;
                h.msg_iov = &mut self.siov[k];
                h.msg_iovlen = 1;
            }
            let mut todo = mem::take(&mut self.todo);
            let mut retry = mem::take(&mut self.retry);
            todo.clear();
            todo.extend(0..chunk as u32);
            let mut round = 0;
            loop {
                for &k in &todo {
                    let e = opcode::SendMsg::new(types::Fd(self.fd), &self.shdrs[k as usize])
                        .build()
                        .user_data(TAG_SEND | (u64::from(k) << 8));
                    if let Err(e) = self.push(&e) {
                        // Entries already pushed may be in flight and point at the Outbox: the
                        // ring is unusable and must not be trusted again.
                        self.broken = true;
                        return Err(e);
                    }
                }
                let mut inflight = todo.len();
                while inflight > 0 {
                    // On error the ring is marked broken (SQEs may still point at the Outbox).
                    self.submit_wait(inflight, None)?;
                    inflight -= self.reap();
                }
                retry.clear();
                for &k in &todo {
                    let res = self.sres[k as usize];
                    if res >= 0 {
                        report.sent += 1;
                    } else if is_retry_send_error(-res) {
                        retry.push(k);
                    } else {
                        report.failed += 1;
                        if is_fatal_send_error(-res) && fatal.is_none() {
                            fatal = Some(io::Error::from_raw_os_error(-res));
                        }
                    }
                }
                if retry.is_empty() {
                    break;
                }
                round += 1;
                if round > SEND_RETRIES {
                    report.failed += retry.len();
                    break;
                }
                std::thread::yield_now();
                mem::swap(&mut todo, &mut retry);
            }
            self.todo = todo;
            self.retry = retry;
            i += chunk;
        }
        report.failed += total - i;
        outbox.clear();
        match fatal {
            Some(e) => Err(e),
            None => Ok(report),
        }
    }

    fn truncated(&self) -> u64 {
        self.truncated
    }
}

impl Drop for UringIo {
    fn drop(&mut self) {
        // The multishot receive writes into `buffers`: cancel it and wait (bounded) until its
        // final completion, so no kernel write can land after the memory is freed.
        if self.recv_armed {
            let e = opcode::AsyncCancel::new(TAG_RECV)
                .build()
                .user_data(TAG_CANCEL);
            if self.push(&e).is_ok() {
                let deadline = Instant::now() + Duration::from_secs(1);
                while self.recv_armed && Instant::now() < deadline {
                    if self
                        .submit_wait(1, Some(Duration::from_millis(10)))
                        .is_err()
                    {
                        break;
                    }
                    self.reap();
                }
            }
        }
        if self.recv_armed {
            // Could not confirm the cancellation: leak the buffers rather than risk a
            // use-after-free. Closing the ring (field drop) cancels the request eventually.
            mem::forget(mem::replace(
                &mut self.buffers,
                PageAlloc {
                    ptr: ptr::null_mut(),
                    layout: Layout::new::<u8>(),
                },
            ));
            mem::forget(mem::replace(
                &mut self.bufring,
                PageAlloc {
                    ptr: ptr::null_mut(),
                    layout: Layout::new::<u8>(),
                },
            ));
            return;
        }
        let _ = self.ring.submitter().unregister_buf_ring(BGID);
    }
}
