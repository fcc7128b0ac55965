//! Micro-benchmark of the I/O backends: a 1→10 UDP forwarder on loopback.
//!
//! A generator thread (pinned to core 1) sends 200-byte datagrams to the forwarder, either as
//! fast as it can (saturation) or at a fixed ingress rate. The forwarder thread (pinned to core 0)
//! receives with the variant under test and sends every datagram to 10 sink sockets that never
//! read (so the receive side of the sinks costs nothing and the kernel drops at their queues). We
//! report egress datagrams per second and the forwarder's thread CPU time per egress datagram.
//!
//! Variants:
//!
//! - `mmsg`, `uring`: the dataplane's own backends ([`MmsgIo`], [`UringIo`]) behind
//!   `DatagramIo`: one receive batch, 10 egress datagrams per ingress one queued in an `Outbox`,
//!   one batched send.
//! - `tu-*`: tokio-uring 0.5, used as well as its API allows, for a side-by-side figure. The
//!   forwarder thread runs `tokio_uring::builder().start(..)` on a blocking-mode socket handed over
//!   with `UdpSocket::from_std` (a non-blocking one makes io_uring answer EAGAIN). R receiver tasks
//!   each keep one `recv_from` in flight on their own reused buffer; egress buffers come from a
//!   preallocated pool and go back to it when `send_to` hands them back. tokio-uring pushes an
//!   SQE when an op's future is first polled and submits the whole queue when the runtime parks,
//!   so every send issued in one scheduler turn goes to the kernel in one `io_uring_enter`.
//!   - `tu-naive`: 16 receivers, each awaits its 10 `send_to`s one after another (like the
//!     tokio-uring setup in `docs/host-limits.md`).
//!   - `tu-join16` / `tu-join64`: 16 / 64 receivers, each polls its 10 `send_to`s concurrently
//!     (a join over a pinned array) and re-arms its receive once all 10 completed.
//!   - `tu-join64c`: `tu-join64` on a ring set up with `IORING_SETUP_COOP_TASKRUN` (as `uring`).
//!   - `tu-spawn64`: 64 receivers; each datagram's joined fan-out runs in a spawned task, so the
//!     receiver re-arms its receive at once.
//!
//!   tokio-uring 0.5 has nothing cheaper for UDP egress: `send_to` and `sendmsg` are each one
//!   `IORING_OP_SENDMSG` per datagram with a freshly boxed `msghdr`, address and iovec `Vec`
//!   (`sendmsg_zc` the same with zero-copy, a loss at 200 bytes); there is no multishot receive
//!   for UDP, and registered buffers only work with `write_fixed` on a connected socket.
//!
//! ```text
//! cargo run --release -p sluice-dataplane --example io_echo -- \
//!     [seconds=3] [ingress_pps=0 (saturate)] [rounds=1] [variants=all, comma-separated]
//! ```

// The one `unsafe` of this measurement tool is the structural pin projection in `tu_fan_out` (no
// safe projection of a pinned array's elements exists, and boxing each send would skew the very
// allocation cost this example measures); the compiler refuses any other.
#![deny(unsafe_code)]

use std::cell::{Cell, RefCell};
use std::future::{poll_fn, Future};
use std::net::{SocketAddr, UdpSocket};
use std::ops::ControlFlow;
use std::pin::pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::thread;
use std::time::{Duration, Instant};

use sluice_dataplane::io::{
    bind_udp, thread_cpu_time, BackendKind, DatagramIo, IoConfig, MmsgIo, UringIo, Wake,
};
use sluice_dataplane::outbox::{Outbox, SLOT_SIZE};

const FANOUT: usize = 10;
const PAYLOAD: usize = 200;
const WARMUP: Duration = Duration::from_millis(200);

#[derive(Clone, Copy)]
struct Result {
    egress: usize,
    failed: usize,
    ingress: usize,
    wall: Duration,
    cpu: Duration,
}

/// How a tokio-uring forwarder fans a datagram out.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fanout {
    /// The receiver awaits its 10 sends one after another.
    Sequential,
    /// The receiver polls its 10 sends concurrently and re-arms once all completed.
    Join,
    /// A spawned task polls the 10 sends concurrently; the receiver re-arms at once.
    Spawn,
}

#[derive(Clone, Copy)]
enum Variant {
    Backend(BackendKind),
    TokioUring {
        name: &'static str,
        receivers: usize,
        fanout: Fanout,
        /// Ring set up with `IORING_SETUP_COOP_TASKRUN`, as [`UringIo`] does.
        coop: bool,
    },
}

impl Variant {
    const ALL: [Variant; 7] = [
        Variant::Backend(BackendKind::Mmsg),
        Variant::Backend(BackendKind::Uring),
        Variant::TokioUring {
            name: "tu-naive",
            receivers: 16,
            fanout: Fanout::Sequential,
            coop: false,
        },
        Variant::TokioUring {
            name: "tu-join16",
            receivers: 16,
            fanout: Fanout::Join,
            coop: false,
        },
        Variant::TokioUring {
            name: "tu-join64",
            receivers: 64,
            fanout: Fanout::Join,
            coop: false,
        },
        Variant::TokioUring {
            name: "tu-join64c",
            receivers: 64,
            fanout: Fanout::Join,
            coop: true,
        },
        Variant::TokioUring {
            name: "tu-spawn64",
            receivers: 64,
            fanout: Fanout::Spawn,
            coop: false,
        },
    ];

    fn name(self) -> &'static str {
        match self {
            Variant::Backend(kind) => kind.name(),
            Variant::TokioUring { name, .. } => name,
        }
    }

    fn uses_uring(self) -> bool {
        !matches!(self, Variant::Backend(BackendKind::Mmsg))
    }
}

fn forward<B: DatagramIo>(mut io: B, dests: &[SocketAddr], secs: f64) -> Result {
    let mut out = Outbox::with_capacity(64 * FANOUT);
    let (mut egress, mut failed, mut ingress) = (0, 0, 0);
    // Warm up for 200 ms, then measure.
    let warm = Instant::now() + WARMUP;
    let mut measuring = false;
    let (mut t0, mut c0) = (Instant::now(), thread_cpu_time());
    let run = Duration::from_secs_f64(secs);
    loop {
        if !measuring && Instant::now() >= warm {
            measuring = true;
            (egress, failed, ingress) = (0, 0, 0);
            (t0, c0) = (Instant::now(), thread_cpu_time());
        }
        if measuring && t0.elapsed() >= run {
            break;
        }
        let n = io
            .recv(Some(Duration::from_millis(5)), |_, bytes| {
                for d in dests {
                    out.push(*d, bytes);
                }
                if out.remaining() < FANOUT {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            })
            .expect("recv");
        ingress += n;
        if !out.is_empty() {
            let r = io.send(&mut out).expect("send");
            egress += r.sent;
            failed += r.failed;
        }
    }
    Result {
        egress,
        failed,
        ingress,
        wall: t0.elapsed(),
        cpu: thread_cpu_time() - c0,
    }
}

fn pin(core: usize) {
    let ids = core_affinity::get_core_ids().unwrap_or_default();
    if let Some(id) = ids.into_iter().find(|c| c.id == core) {
        core_affinity::set_for_current(id);
    }
}

/// State shared by the tasks of a tokio-uring forwarder (one thread, so `Cell`/`RefCell`).
struct TuState {
    /// Egress buffers (capacity [`SLOT_SIZE`]); `send_to` hands each back when it completes.
    pool: RefCell<Vec<Vec<u8>>>,
    /// Buffers allocated because the pool was empty (0 in steady state).
    pool_misses: Cell<usize>,
    egress: Cell<usize>,
    failed: Cell<usize>,
    ingress: Cell<usize>,
    measuring: Cell<bool>,
    t0: Cell<Instant>,
    c0: Cell<Duration>,
    warm_until: Instant,
    run: Duration,
    result: Cell<Option<Result>>,
    done_waker: RefCell<Option<Waker>>,
}

impl TuState {
    fn take_buf(&self, payload: &[u8]) -> Vec<u8> {
        let mut buf = self.pool.borrow_mut().pop().unwrap_or_else(|| {
            self.pool_misses.set(self.pool_misses.get() + 1);
            Vec::with_capacity(SLOT_SIZE)
        });
        buf.clear();
        buf.extend_from_slice(payload);
        buf
    }

    fn sent(&self, res: std::io::Result<usize>, buf: Vec<u8>) {
        match res {
            Ok(_) => self.egress.set(self.egress.get() + 1),
            Err(_) => self.failed.set(self.failed.get() + 1),
        }
        self.pool.borrow_mut().push(buf);
    }

    fn done(&self) -> bool {
        self.result.get().is_some()
    }

    /// Counts one ingress datagram; every 32, looks at the clock to end the warm-up or the run.
    fn on_ingress(&self) {
        let n = self.ingress.get() + 1;
        self.ingress.set(n);
        if n % 32 != 0 || self.done() {
            return;
        }
        if !self.measuring.get() {
            if Instant::now() >= self.warm_until {
                self.measuring.set(true);
                self.egress.set(0);
                self.failed.set(0);
                self.ingress.set(0);
                self.t0.set(Instant::now());
                self.c0.set(thread_cpu_time());
            }
        } else if self.t0.get().elapsed() >= self.run {
            self.result.set(Some(Result {
                egress: self.egress.get(),
                failed: self.failed.get(),
                ingress: self.ingress.get(),
                wall: self.t0.get().elapsed(),
                cpu: thread_cpu_time() - self.c0.get(),
            }));
            if let Some(w) = self.done_waker.borrow_mut().take() {
                w.wake();
            }
        }
    }
}

/// Sends `payload` to every destination with `FANOUT` concurrent `send_to` futures, polled
/// together (all 10 SQEs are pushed in the same poll, so they reach the kernel in one submit).
async fn tu_fan_out(
    sock: &tokio_uring::net::UdpSocket,
    st: &TuState,
    dests: &[SocketAddr],
    payload: &[u8],
) {
    let mut sends = pin!(std::array::from_fn::<_, FANOUT, _>(|i| Some(
        sock.send_to(st.take_buf(payload), dests[i])
    )));
    poll_fn(|cx| {
        let mut pending = false;
        for i in 0..FANOUT {
            // SAFETY: structural pinning of the array's elements: the array is pinned and never
            // moved, and an element is only ever dropped in place (`set(None)`), never moved out.
            #[allow(unsafe_code)]
            let mut slot = unsafe { sends.as_mut().map_unchecked_mut(|a| &mut a[i]) };
            if let Some(send) = slot.as_mut().as_pin_mut() {
                match send.poll(cx) {
                    Poll::Ready((res, buf)) => {
                        st.sent(res, buf);
                        slot.set(None);
                    }
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await
}

/// One receiver task: keeps one `recv_from` in flight on its own buffer, reused forever.
async fn tu_receiver(
    sock: Rc<tokio_uring::net::UdpSocket>,
    st: Rc<TuState>,
    dests: Rc<[SocketAddr]>,
    fanout: Fanout,
) {
    let mut buf = Vec::with_capacity(SLOT_SIZE);
    while !st.done() {
        buf.clear();
        let (res, b) = sock.recv_from(buf).await;
        buf = b;
        if res.is_err() {
            continue;
        }
        st.on_ingress();
        match fanout {
            Fanout::Sequential => {
                for d in dests.iter() {
                    let (res, out) = sock.send_to(st.take_buf(&buf), *d).await;
                    st.sent(res, out);
                }
            }
            Fanout::Join => tu_fan_out(&sock, &st, &dests, &buf).await,
            Fanout::Spawn => {
                let (sock, st, dests) = (sock.clone(), st.clone(), dests.clone());
                let payload = st.take_buf(&buf);
                tokio_uring::spawn(async move {
                    tu_fan_out(&sock, &st, &dests, &payload).await;
                    st.pool.borrow_mut().push(payload);
                });
            }
        }
    }
}

fn forward_tokio_uring(
    sock: UdpSocket,
    dests: &[SocketAddr],
    receivers: usize,
    fanout: Fanout,
    coop: bool,
    secs: f64,
) -> (Result, usize) {
    let st = Rc::new(TuState {
        pool: RefCell::new(
            (0..4 * receivers * (FANOUT + 1))
                .map(|_| Vec::with_capacity(SLOT_SIZE))
                .collect(),
        ),
        pool_misses: Cell::new(0),
        egress: Cell::new(0),
        failed: Cell::new(0),
        ingress: Cell::new(0),
        measuring: Cell::new(false),
        t0: Cell::new(Instant::now()),
        c0: Cell::new(Duration::ZERO),
        warm_until: Instant::now() + WARMUP,
        run: Duration::from_secs_f64(secs),
        result: Cell::new(None),
        done_waker: RefCell::new(None),
    });
    let dests: Rc<[SocketAddr]> = dests.into();
    // 1024 SQEs: a whole scheduler turn's receives and sends fit and go in one submit.
    let mut ring = tokio_uring::uring_builder();
    if coop {
        ring.setup_coop_taskrun();
    }
    tokio_uring::builder()
        .entries(1024)
        .uring_builder(&ring)
        .start({
            let st = st.clone();
            async move {
                let sock = Rc::new(tokio_uring::net::UdpSocket::from_std(sock));
                for _ in 0..receivers {
                    tokio_uring::spawn(tu_receiver(
                        sock.clone(),
                        st.clone(),
                        dests.clone(),
                        fanout,
                    ));
                }
                poll_fn(|cx| {
                    if st.done() {
                        Poll::Ready(())
                    } else {
                        *st.done_waker.borrow_mut() = Some(cx.waker().clone());
                        Poll::Pending
                    }
                })
                .await
            }
        });
    // Dropping the runtime above cancelled the receives still in flight.
    (
        st.result.take().expect("run finished"),
        st.pool_misses.get(),
    )
}

fn generate(to: SocketAddr, pps: u64, stop: &AtomicBool) {
    let cfg = IoConfig::default();
    let sock = bind_udp("127.0.0.1:0".parse().unwrap(), &cfg, true).unwrap();
    let mut io = MmsgIo::new(sock, Wake::new().unwrap(), &cfg).unwrap();
    let mut out = Outbox::with_capacity(64);
    let payload = [0x80u8; PAYLOAD];
    let start = Instant::now();
    let mut sent: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        let due = if pps == 0 {
            64
        } else {
            let target = (start.elapsed().as_secs_f64() * pps as f64) as u64;
            (target.saturating_sub(sent)).min(64)
        };
        if due == 0 {
            thread::sleep(Duration::from_micros(50));
            continue;
        }
        for _ in 0..due {
            out.push(to, &payload);
        }
        let _ = io.send(&mut out);
        sent += due;
    }
}

fn run_one(variant: Variant, secs: f64, pps: u64) -> (Result, usize) {
    let cfg = IoConfig::default();
    let sinks: Vec<UdpSocket> = (0..FANOUT)
        .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
        .collect();
    let dests: Vec<SocketAddr> = sinks.iter().map(|s| s.local_addr().unwrap()).collect();
    let stop = Arc::new(AtomicBool::new(false));
    // io_uring (both flavours) needs a blocking socket: on O_NONBLOCK it answers EAGAIN.
    let nonblocking = !variant.uses_uring();
    let sock = bind_udp("127.0.0.1:0".parse().unwrap(), &cfg, nonblocking).unwrap();
    let to = sock.local_addr().unwrap();

    let fwd = {
        let stop = stop.clone();
        thread::spawn(move || {
            pin(0);
            let wake = Wake::new().unwrap();
            let r = match variant {
                Variant::Backend(BackendKind::Mmsg) => (
                    forward(MmsgIo::new(sock, wake, &cfg).unwrap(), &dests, secs),
                    0,
                ),
                Variant::Backend(BackendKind::Uring) => (
                    forward(UringIo::new(sock, wake, &cfg).unwrap(), &dests, secs),
                    0,
                ),
                Variant::TokioUring {
                    receivers,
                    fanout,
                    coop,
                    ..
                } => forward_tokio_uring(sock, &dests, receivers, fanout, coop, secs),
            };
            stop.store(true, Ordering::Relaxed);
            r
        })
    };
    let gen = {
        let stop = stop.clone();
        thread::spawn(move || {
            pin(1);
            generate(to, pps, &stop)
        })
    };
    let r = fwd.join().unwrap();
    gen.join().unwrap();
    drop(sinks);
    r
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let secs: f64 = args.first().and_then(|s| s.parse().ok()).unwrap_or(3.0);
    let pps: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let rounds: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1);
    let wanted: Option<Vec<&str>> = args.get(3).map(|s| s.split(',').collect());

    let mut variants: Vec<Variant> = Variant::ALL
        .into_iter()
        .filter(|v| wanted.as_ref().is_none_or(|w| w.contains(&v.name())))
        .collect();
    if let Err(e) = UringIo::probe() {
        println!("io_uring variants skipped: {e}");
        variants.retain(|v| !v.uses_uring());
    }
    let load = if pps == 0 {
        "saturation".to_string()
    } else {
        format!("{pps} ingress pps ({} egress)", pps * FANOUT as u64)
    };
    println!("1->{FANOUT} forward, {PAYLOAD}-byte payloads, {secs} s, {load}, forwarder on core 0, generator on core 1");
    println!(
        "{:<10} {:>5} {:>13} {:>12} {:>7} {:>9} {:>15} {:>9} {:>10}",
        "variant",
        "round",
        "ingress Mpps",
        "egress Mpps",
        "failed",
        "fwd CPU",
        "ns/egress dgram",
        "vs mmsg",
        "pool miss"
    );
    for round in 1..=rounds {
        let mut mmsg_ns = None;
        for &variant in &variants {
            let (r, pool_misses) = run_one(variant, secs, pps);
            let wall = r.wall.as_secs_f64();
            let ns = r.cpu.as_nanos() as f64 / r.egress.max(1) as f64;
            if matches!(variant, Variant::Backend(BackendKind::Mmsg)) {
                mmsg_ns = Some(ns);
            }
            let ratio = mmsg_ns.map_or_else(|| "-".to_string(), |m| format!("{:.2}x", ns / m));
            println!(
                "{:<10} {:>5} {:>13.3} {:>12.3} {:>7} {:>8.0}% {:>15.0} {:>9} {:>10}",
                variant.name(),
                round,
                r.ingress as f64 / wall / 1e6,
                r.egress as f64 / wall / 1e6,
                r.failed,
                100.0 * r.cpu.as_secs_f64() / wall,
                ns,
                ratio,
                pool_misses,
            );
        }
    }
}
