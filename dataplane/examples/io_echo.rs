//! Micro-benchmark of the I/O backends: a 1→10 UDP forwarder on loopback.
//!
//! A generator thread (pinned to core 1) sends 200-byte datagrams to the forwarder, either as
//! fast as it can (saturation) or at a fixed ingress rate. The forwarder thread (pinned to core 0)
//! receives with the backend under test and sends every datagram to 10 sink sockets that never
//! read (so the receive side of the sinks costs nothing and the kernel drops at their queues). We
//! report egress datagrams per second and the forwarder's thread CPU time per egress datagram.
//!
//! ```text
//! cargo run --release -p sluice-dataplane --example io_echo -- [seconds=3] [ingress_pps=0 (saturate)] [rounds=1]
//! ```

use std::net::{SocketAddr, UdpSocket};
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use sluice_dataplane::io::{
    bind_udp, thread_cpu_time, BackendKind, DatagramIo, IoConfig, MmsgIo, UringIo, Wake,
};
use sluice_dataplane::outbox::Outbox;

const FANOUT: usize = 10;
const PAYLOAD: usize = 200;

struct Result {
    egress: usize,
    failed: usize,
    ingress: usize,
    wall: Duration,
    cpu: Duration,
}

fn pin(core: usize) {
    let ids = core_affinity::get_core_ids().unwrap_or_default();
    if let Some(id) = ids.into_iter().find(|c| c.id == core) {
        core_affinity::set_for_current(id);
    }
}

fn forward<B: DatagramIo>(mut io: B, dests: &[SocketAddr], secs: f64, stop: &AtomicBool) -> Result {
    let mut out = Outbox::with_capacity(64 * FANOUT);
    let (mut egress, mut failed, mut ingress) = (0, 0, 0);
    // Warm up for 200 ms, then measure.
    let warm = Instant::now() + Duration::from_millis(200);
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
    let res = Result {
        egress,
        failed,
        ingress,
        wall: t0.elapsed(),
        cpu: thread_cpu_time() - c0,
    };
    stop.store(true, Ordering::Relaxed);
    res
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

fn run_one(kind: BackendKind, secs: f64, pps: u64) -> Result {
    let cfg = IoConfig::default();
    let sinks: Vec<UdpSocket> = (0..FANOUT)
        .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
        .collect();
    let dests: Vec<SocketAddr> = sinks.iter().map(|s| s.local_addr().unwrap()).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let nonblocking = kind == BackendKind::Mmsg;
    let sock = bind_udp("127.0.0.1:0".parse().unwrap(), &cfg, nonblocking).unwrap();
    let to = sock.local_addr().unwrap();

    let fwd = {
        let stop = stop.clone();
        thread::spawn(move || {
            pin(0);
            let wake = Wake::new().unwrap();
            match kind {
                BackendKind::Mmsg => {
                    forward(MmsgIo::new(sock, wake, &cfg).unwrap(), &dests, secs, &stop)
                }
                BackendKind::Uring => {
                    forward(UringIo::new(sock, wake, &cfg).unwrap(), &dests, secs, &stop)
                }
            }
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

    let mut kinds = vec![BackendKind::Mmsg];
    match UringIo::probe() {
        Ok(()) => kinds.push(BackendKind::Uring),
        Err(e) => println!("uring skipped: {e}"),
    }
    let load = if pps == 0 {
        "saturation".to_string()
    } else {
        format!("{pps} ingress pps ({} egress)", pps * FANOUT as u64)
    };
    println!("1->{FANOUT} forward, {PAYLOAD}-byte payloads, {secs} s, {load}, forwarder on core 0, generator on core 1");
    println!(
        "{:<6} {:>5} {:>13} {:>13} {:>9} {:>10} {:>14}",
        "backend", "round", "ingress Mpps", "egress Mpps", "failed", "fwd CPU %", "ns/egress dgram"
    );
    for round in 1..=rounds {
        for &kind in &kinds {
            let r = run_one(kind, secs, pps);
            let wall = r.wall.as_secs_f64();
            println!(
                "{:<7} {:>5} {:>13.3} {:>13.3} {:>9} {:>9.0}% {:>14.0}",
                kind.name(),
                round,
                r.ingress as f64 / wall / 1e6,
                r.egress as f64 / wall / 1e6,
                r.failed,
                100.0 * r.cpu.as_secs_f64() / wall,
                r.cpu.as_nanos() as f64 / r.egress.max(1) as f64,
            );
        }
    }
}
