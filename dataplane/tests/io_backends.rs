//! Both I/O backends against real loopback sockets: ordering, Break/resume, timeouts, wake-ups,
//! fan-out sends, unreachable destinations and oversized datagrams.
//!
//! Every scenario is written once as a generic function over [`DatagramIo`] and instantiated per
//! backend by `both!`. The io_uring variants call [`UringIo::probe`] first and are skipped, with
//! the reason printed, on hosts where io_uring is unavailable (e.g. a seccomp-restricted container).

#![deny(unsafe_code)]

use std::collections::HashSet;
use std::net::{SocketAddr, UdpSocket};
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use sluice_dataplane::io::{bind_udp, BackendKind, DatagramIo, IoConfig, MmsgIo, UringIo, Wake};
use sluice_dataplane::outbox::{Outbox, SLOT_SIZE};

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn mmsg_at(addr: SocketAddr) -> Option<(MmsgIo, Wake)> {
    let cfg = IoConfig::default();
    let wake = Wake::new().unwrap();
    let socket = bind_udp(addr, &cfg, true).unwrap();
    Some((MmsgIo::new(socket, wake.clone(), &cfg).unwrap(), wake))
}

fn uring_at(addr: SocketAddr) -> Option<(UringIo, Wake)> {
    static PROBE: OnceLock<Result<(), String>> = OnceLock::new();
    if let Err(why) = PROBE.get_or_init(|| UringIo::probe().map_err(|e| e.to_string())) {
        eprintln!("skipping io_uring test: {why}");
        return None;
    }
    let cfg = IoConfig::default();
    let wake = Wake::new().unwrap();
    let socket = bind_udp(addr, &cfg, false).unwrap();
    Some((UringIo::new(socket, wake.clone(), &cfg).unwrap(), wake))
}

/// A plain receiving socket with a big buffer, for checking what a backend sent.
fn sink() -> UdpSocket {
    let s = bind_udp(loopback(), &IoConfig::default(), false).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    s
}

macro_rules! both {
    ($name:ident) => {
        mod $name {
            #[test]
            fn io_mmsg() {
                if let Some((io, wake)) = super::mmsg_at(super::loopback()) {
                    super::$name(io, wake);
                }
            }
            #[test]
            fn io_uring() {
                if let Some((io, wake)) = super::uring_at(super::loopback()) {
                    super::$name(io, wake);
                }
            }
        }
    };
}

both!(receives_10k_in_order);
both!(break_leaves_rest_queued);
both!(timeout_returns_zero);
both!(wake_interrupts_blocked_recv);
both!(send_fans_out_3000);
both!(unreachable_destinations_do_not_stop_the_batch);
both!(oversized_datagram_is_skipped_and_counted);
both!(backlog_larger_than_buffer_ring_is_not_lost);

fn receives_10k_in_order<B: DatagramIo>(mut io: B, _wake: Wake) {
    const N: usize = 10_000;
    let to = io.local_addr();
    let tx = UdpSocket::bind(loopback()).unwrap();
    let from = tx.local_addr().unwrap();
    let received = Arc::new(AtomicUsize::new(0));
    let sender = {
        let received = received.clone();
        thread::spawn(move || {
            let mut buf = [0u8; 300];
            for i in 0..N {
                // Flow control so a busy CI box never overruns the socket buffer.
                while i - received.load(Ordering::Relaxed) > 512 {
                    thread::yield_now();
                }
                let len = 8 + i % 250;
                buf[..8].copy_from_slice(&(i as u64).to_be_bytes());
                buf[8..len].fill(i as u8);
                tx.send_to(&buf[..len], to).unwrap();
            }
        })
    };
    let mut next = 0usize;
    let deadline = Instant::now() + Duration::from_secs(20);
    while next < N && Instant::now() < deadline {
        io.recv(Some(Duration::from_millis(100)), |src, bytes| {
            assert_eq!(src, from);
            let seq = u64::from_be_bytes(bytes[..8].try_into().unwrap()) as usize;
            assert_eq!(seq, next, "out of order or lost");
            assert_eq!(bytes.len(), 8 + seq % 250);
            assert!(bytes[8..].iter().all(|&b| b == seq as u8));
            next += 1;
            ControlFlow::Continue(())
        })
        .unwrap();
        received.store(next, Ordering::Relaxed);
    }
    sender.join().unwrap();
    assert_eq!(next, N, "{} lost 10k test datagrams", io.kind());
    assert_eq!(io.truncated(), 0);
}

fn break_leaves_rest_queued<B: DatagramIo>(mut io: B, _wake: Wake) {
    let tx = UdpSocket::bind(loopback()).unwrap();
    for i in 0u8..10 {
        tx.send_to(&[i; 20], io.local_addr()).unwrap();
    }
    thread::sleep(Duration::from_millis(50));
    let mut seen = Vec::new();
    let n = io
        .recv(Some(Duration::from_secs(1)), |_, b| {
            seen.push(b[0]);
            if seen.len() == 3 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .unwrap();
    assert_eq!(n, 3);
    assert_eq!(seen, [0, 1, 2]);
    // The rest is already queued: the next call must not wait for the (long) timeout.
    let t = Instant::now();
    let n = io
        .recv(Some(Duration::from_secs(5)), |_, b| {
            seen.push(b[0]);
            ControlFlow::Continue(())
        })
        .unwrap();
    assert!(
        n > 0 && t.elapsed() < Duration::from_millis(500),
        "{}: n={n} after {:?}",
        io.kind(),
        t.elapsed()
    );
    while seen.len() < 10 {
        let n = io
            .recv(Some(Duration::from_millis(500)), |_, b| {
                seen.push(b[0]);
                ControlFlow::Continue(())
            })
            .unwrap();
        assert!(n > 0, "lost datagrams after Break: {seen:?}");
    }
    assert_eq!(seen, (0u8..10).collect::<Vec<_>>());
}

fn timeout_returns_zero<B: DatagramIo>(mut io: B, _wake: Wake) {
    for ms in [0u64, 5, 200] {
        let t = Instant::now();
        let n = io
            .recv(Some(Duration::from_millis(ms)), |_, _| {
                ControlFlow::Continue(())
            })
            .unwrap();
        let took = t.elapsed();
        assert_eq!(n, 0);
        assert!(
            took >= Duration::from_millis(ms.saturating_sub(2)),
            "{} returned early: {took:?}",
            io.kind()
        );
        assert!(
            took < Duration::from_millis(ms + 500),
            "{} overslept: {took:?}",
            io.kind()
        );
    }
}

fn wake_interrupts_blocked_recv<B: DatagramIo>(mut io: B, wake: Wake) {
    // Watchdog: if wake() were ignored, a datagram ends the otherwise endless wait and the
    // assertions below fail instead of hanging the test run.
    let to = io.local_addr();
    let watchdog = thread::spawn(move || {
        thread::sleep(Duration::from_secs(10));
        let _ = UdpSocket::bind(loopback()).and_then(|s| s.send_to(b"watchdog", to));
    });
    let waker = {
        let wake = wake.clone();
        thread::spawn(move || {
            thread::sleep(Duration::from_millis(100));
            wake.wake();
        })
    };
    let t = Instant::now();
    let n = io.recv(None, |_, _| ControlFlow::Continue(())).unwrap();
    let took = t.elapsed();
    waker.join().unwrap();
    assert_eq!(n, 0);
    assert!(
        took >= Duration::from_millis(90) && took < Duration::from_secs(2),
        "{}: {took:?}",
        io.kind()
    );

    // A wake-up that happened before the call also returns at once, and is consumed.
    wake.wake();
    let t = Instant::now();
    assert_eq!(
        io.recv(Some(Duration::from_secs(5)), |_, _| ControlFlow::Continue(
            ()
        ))
        .unwrap(),
        0
    );
    assert!(t.elapsed() < Duration::from_millis(500));
    let t = Instant::now();
    assert_eq!(
        io.recv(Some(Duration::from_millis(50)), |_, _| {
            ControlFlow::Continue(())
        })
        .unwrap(),
        0
    );
    assert!(
        t.elapsed() >= Duration::from_millis(45),
        "stale wake-up was not drained"
    );

    // A wake-up that arrives while the worker is busy sending is not lost either.
    let live = sink();
    let mut out = Outbox::with_capacity(1);
    wake.wake();
    out.push(live.local_addr().unwrap(), b"x");
    io.send(&mut out).unwrap();
    let t = Instant::now();
    assert_eq!(
        io.recv(Some(Duration::from_secs(5)), |_, _| ControlFlow::Continue(
            ()
        ))
        .unwrap(),
        0
    );
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "{}: wake-up during send was lost",
        io.kind()
    );
    drop(watchdog); // detached; it only sends one datagram to a socket that may be gone
}

fn send_fans_out_3000<B: DatagramIo>(mut io: B, _wake: Wake) {
    const N: usize = 3000;
    let sinks: Vec<UdpSocket> = (0..3).map(|_| sink()).collect();
    let dests: Vec<SocketAddr> = sinks.iter().map(|s| s.local_addr().unwrap()).collect();
    let src = io.local_addr();
    let readers: Vec<_> = sinks
        .into_iter()
        .map(|s| {
            thread::spawn(move || {
                let mut got = HashSet::new();
                let mut buf = [0u8; 4096];
                while got.len() < N / 3 {
                    match s.recv_from(&mut buf) {
                        Ok((n, from)) => {
                            assert_eq!(from, src);
                            assert_eq!(n, 100);
                            got.insert(u32::from_be_bytes(buf[..4].try_into().unwrap()));
                        }
                        Err(_) => break, // timed out: report what arrived
                    }
                }
                got
            })
        })
        .collect();
    let mut out = Outbox::with_capacity(N);
    for i in 0..N {
        let mut payload = [0xabu8; 100];
        payload[..4].copy_from_slice(&(i as u32).to_be_bytes());
        assert!(out.push(dests[i % 3], &payload));
    }
    let report = io.send(&mut out).unwrap();
    assert!(out.is_empty(), "send clears the outbox");
    assert_eq!(report.sent, N, "{}: {report:?}", io.kind());
    assert_eq!(report.failed, 0);
    for (r, reader) in readers.into_iter().enumerate() {
        let got = reader.join().unwrap();
        let want: HashSet<u32> = (0..N as u32).filter(|i| *i as usize % 3 == r).collect();
        assert_eq!(
            got,
            want,
            "{}: receiver {r} got {} of {}",
            io.kind(),
            got.len(),
            want.len()
        );
    }
}

fn unreachable_destinations_do_not_stop_the_batch<B: DatagramIo>(mut io: B, _wake: Wake) {
    let dead = {
        let s = UdpSocket::bind(loopback()).unwrap();
        s.local_addr().unwrap()
    };
    let live = sink();
    let v6_on_v4: SocketAddr = "[::1]:9".parse().unwrap(); // EAFNOSUPPORT/EINVAL per datagram
    let port_zero: SocketAddr = "127.0.0.1:0".parse().unwrap(); // EINVAL per datagram
    let mut out = Outbox::with_capacity(64);
    for round in 0..3u8 {
        for (k, dest) in [dead, v6_on_v4, live.local_addr().unwrap(), port_zero, dead]
            .into_iter()
            .enumerate()
        {
            assert!(out.push(dest, &[round, k as u8]));
        }
        let report = io
            .send(&mut out)
            .expect("per-datagram errors never fail the whole send");
        assert_eq!(report.sent + report.failed, 5, "{}: {report:?}", io.kind());
        assert!(
            report.failed >= 2,
            "{}: invalid destinations count as failed: {report:?}",
            io.kind()
        );
        let mut buf = [0u8; 16];
        let (n, _) = live
            .recv_from(&mut buf)
            .expect("the live destination still gets its datagram");
        assert_eq!(&buf[..n], &[round, 2]);
    }
}

fn oversized_datagram_is_skipped_and_counted<B: DatagramIo>(mut io: B, _wake: Wake) {
    let tx = UdpSocket::bind(loopback()).unwrap();
    let to = io.local_addr();
    tx.send_to(&[1u8; 3000], to).unwrap();
    tx.send_to(&[2u8; SLOT_SIZE], to).unwrap(); // exactly one slot: fits
    tx.send_to(&[3u8; SLOT_SIZE + 1], to).unwrap();
    tx.send_to(&[4u8; 100], to).unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(2);
    while got.len() < 2 && Instant::now() < deadline {
        io.recv(Some(Duration::from_millis(100)), |_, b| {
            got.push((b[0], b.len()));
            ControlFlow::Continue(())
        })
        .unwrap();
    }
    assert_eq!(got, [(2, SLOT_SIZE), (4, 100)], "{}", io.kind());
    assert_eq!(io.truncated(), 2);
}

/// 3000 datagrams arrive before the first recv: more than io_uring's 1024 provided buffers, so
/// its multishot receive ends with ENOBUFS and must be re-armed to reach the rest (still queued
/// in the socket buffer). Nothing may be lost or reordered.
fn backlog_larger_than_buffer_ring_is_not_lost<B: DatagramIo>(mut io: B, _wake: Wake) {
    const N: u32 = 3000;
    let tx = UdpSocket::bind(loopback()).unwrap();
    for i in 0..N {
        tx.send_to(&i.to_be_bytes(), io.local_addr()).unwrap();
    }
    thread::sleep(Duration::from_millis(100));
    let mut next = 0u32;
    let deadline = Instant::now() + Duration::from_secs(5);
    while next < N && Instant::now() < deadline {
        io.recv(Some(Duration::from_millis(100)), |_, b| {
            assert_eq!(u32::from_be_bytes(b.try_into().unwrap()), next);
            next += 1;
            ControlFlow::Continue(())
        })
        .unwrap();
    }
    assert_eq!(next, N, "{} lost part of a backlog", io.kind());
}

#[test]
fn io_ipv6_round_trip_both_backends() {
    let v6: SocketAddr = "[::1]:0".parse().unwrap();
    if UdpSocket::bind(v6).is_err() {
        eprintln!("skipping: no IPv6 loopback");
        return;
    }
    fn check<B: DatagramIo>(mut io: B) {
        let peer = bind_udp("[::1]:0".parse().unwrap(), &IoConfig::default(), false).unwrap();
        peer.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        peer.send_to(b"ping", io.local_addr()).unwrap();
        let mut from = None;
        while from.is_none() {
            io.recv(Some(Duration::from_secs(2)), |f, b| {
                assert_eq!(b, b"ping");
                from = Some(f);
                ControlFlow::Continue(())
            })
            .unwrap();
        }
        assert_eq!(from, Some(peer.local_addr().unwrap()));
        let mut out = Outbox::with_capacity(1);
        out.push(from.unwrap(), b"pong");
        assert_eq!(io.send(&mut out).unwrap().sent, 1);
        let mut buf = [0u8; 8];
        let (n, src) = peer.recv_from(&mut buf).unwrap();
        assert_eq!((&buf[..n], src), (&b"pong"[..], io.local_addr()));
    }
    check(mmsg_at(v6).unwrap().0);
    if let Some((io, _)) = uring_at(v6) {
        assert_eq!(io.kind(), BackendKind::Uring);
        check(io);
    }
}
