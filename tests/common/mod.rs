//! Shared harness for the dataplane scenario tests: a real dataplane on loopback, and clients with
//! real UDP sockets whose SRTP is done by webrtc-srtp, the independent oracle (whatever sluice
//! encrypts, webrtc-srtp must decrypt with the subscriber's key, and the other way round).

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use rand::RngCore;
use sluice_dataplane::io::socket::bind_udp;
use sluice_dataplane::io::{uring::UringIo, BackendChoice, IoConfig};
use sluice_dataplane::packet::RtpHeader;
use sluice_dataplane::srtp::{SrtpKeys, SrtpProfile};
use sluice_dataplane::stats::{DropReason, StatsSnapshot};
use sluice_dataplane::topology::{Membership, RoomId, TransportConfig, TransportId, TransportKeys};
use sluice_dataplane::{Dataplane, DataplaneConfig};
use webrtc_srtp::context::Context;

/// Backends to run a scenario against: mmsg always, uring when the host allows io_uring.
pub fn backends() -> Vec<BackendChoice> {
    let mut v = vec![BackendChoice::Mmsg];
    match UringIo::probe() {
        Ok(()) => v.push(BackendChoice::Uring),
        Err(e) => eprintln!("skipping the uring backend: {e}"),
    }
    v
}

/// A dataplane with `workers` unpinned workers on ephemeral loopback ports.
pub fn start(backend: BackendChoice, workers: usize) -> Dataplane {
    Dataplane::start(DataplaneConfig {
        workers,
        pin: false,
        base_port: 0,
        backend,
        ..DataplaneConfig::default()
    })
    .expect("dataplane starts")
}

pub fn random_keys(p: SrtpProfile) -> SrtpKeys {
    let mut key = vec![0u8; p.master_key_len()];
    let mut salt = vec![0u8; p.master_salt_len()];
    rand::rng().fill_bytes(&mut key);
    rand::rng().fill_bytes(&mut salt);
    SrtpKeys::new(p, &key, &salt).expect("valid key lengths")
}

pub fn oracle(keys: &SrtpKeys) -> Context {
    Context::new(
        &keys.master_key,
        &keys.master_salt,
        keys.profile.webrtc(),
        Some(webrtc_srtp::option::srtp_replay_protection(1024)),
        None,
    )
    .expect("webrtc-srtp accepts the keys")
}

/// A loopback socket with a receive buffer large enough to hold a whole test's traffic, since
/// clients read only after everything was sent.
pub fn client_socket() -> UdpSocket {
    let cfg = IoConfig {
        recv_buf_bytes: 16 << 20,
        ..IoConfig::default()
    };
    let socket = bind_udp(SocketAddr::from(([127, 0, 0, 1], 0)), &cfg, false).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    socket
}

/// One participant: a socket, its transport on the dataplane, and webrtc-srtp contexts.
pub struct Client {
    pub id: TransportId,
    pub worker: usize,
    pub socket: UdpSocket,
    pub server: SocketAddr,
    pub ssrc: u32,
    pub keys: Option<TransportKeys>,
    send_ctx: Option<Context>,
    recv_ctx: Option<Context>,
    /// Sequence number of the next packet.
    pub seq: u16,
    ts: u32,
    /// RTCP datagrams [`Client::receive`] skipped (sluice's sender reports).
    pub rtcp_received: usize,
}

impl Client {
    /// Creates the socket and adds the transport (remote known) to `worker`.
    pub fn add(
        dp: &Dataplane,
        worker: usize,
        id: TransportId,
        profile: Option<SrtpProfile>,
    ) -> Client {
        let socket = client_socket();
        let keys = profile.map(|p| TransportKeys {
            inbound: random_keys(p),
            outbound: random_keys(p),
        });
        dp.add_transport(
            worker,
            TransportConfig {
                id,
                remote: Some(socket.local_addr().unwrap()),
                keys: keys.clone(),
                latch_ssrcs: vec![],
                audio_level_ext: Some(1),
                ice: None,
                rtcp_remote: None,
            },
        )
        .unwrap();
        Client::with_keys(dp, worker, id, socket, keys)
    }

    pub fn with_keys(
        dp: &Dataplane,
        worker: usize,
        id: TransportId,
        socket: UdpSocket,
        keys: Option<TransportKeys>,
    ) -> Client {
        Client {
            id,
            worker,
            server: dp.worker_addr(worker).unwrap(),
            ssrc: 0x1000_0000 + id as u32,
            send_ctx: keys.as_ref().map(|k| oracle(&k.inbound)),
            recv_ctx: keys.as_ref().map(|k| oracle(&k.outbound)),
            keys,
            socket,
            seq: 1000,
            ts: 0,
            rtcp_received: 0,
        }
    }

    /// Joins `room` publishing with its SSRC and receiving on `slots` slots.
    pub fn join(&self, dp: &Dataplane, room: RoomId, publish: bool, slots: usize) {
        let slot_ssrcs = (0..slots as u32)
            .map(|i| 0x5000_0000 + (self.id as u32) * 16 + i)
            .collect();
        dp.join(
            self.worker,
            Membership {
                room,
                transport: self.id,
                publish_ssrc: publish.then_some(self.ssrc),
                slot_ssrcs,
                ..Default::default()
            },
        )
        .unwrap();
    }

    /// A plaintext RTP packet whose payload names its sender and sequence number.
    pub fn next_plain(&mut self) -> Vec<u8> {
        let mut p = vec![0x90, 111];
        p.extend_from_slice(&self.seq.to_be_bytes());
        p.extend_from_slice(&self.ts.to_be_bytes());
        p.extend_from_slice(&self.ssrc.to_be_bytes());
        p.extend_from_slice(&[0xBE, 0xDE, 0, 1, 0x10, 0x80 | 20, 0, 0]);
        p.extend_from_slice(&(self.id as u32).to_be_bytes());
        p.extend_from_slice(&self.seq.to_be_bytes());
        p.extend_from_slice(&[0xAB; 40]);
        self.seq = self.seq.wrapping_add(1);
        self.ts = self.ts.wrapping_add(960);
        p
    }

    /// The next packet, protected with the client's sending key (or plain).
    pub fn next_packet(&mut self) -> Vec<u8> {
        let plain = self.next_plain();
        match &mut self.send_ctx {
            Some(ctx) => ctx.encrypt_rtp(&plain).expect("oracle encrypts").to_vec(),
            None => plain,
        }
    }

    pub fn send_raw(&self, bytes: &[u8]) {
        self.socket.send_to(bytes, self.server).unwrap();
    }

    /// Sends `n` packets, paced a little so loopback buffers never overflow.
    pub fn send(&mut self, n: usize) {
        for i in 0..n {
            let p = self.next_packet();
            self.send_raw(&p);
            if i % 32 == 31 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }

    /// The RTCP datagrams that arrive within `within` (RTP is skipped), decrypted with the oracle.
    pub fn receive_rtcp(&mut self, within: Duration) -> Vec<Vec<u8>> {
        let mut got = Vec::new();
        let mut buf = [0u8; 2048];
        let end = Instant::now() + within;
        while Instant::now() < end {
            let Ok((n, _)) = self.socket.recv_from(&mut buf) else {
                continue;
            };
            if !sluice_dataplane::packet::is_rtcp(&buf[..n]) {
                continue;
            }
            got.push(match &mut self.recv_ctx {
                Some(ctx) => ctx
                    .decrypt_rtcp(&buf[..n])
                    .expect("webrtc-srtp decrypts sluice's SRTCP with this subscriber's key")
                    .to_vec(),
                None => buf[..n].to_vec(),
            });
        }
        got
    }

    /// Reads until `quiet` passes without a datagram; decrypts each with the oracle.
    /// Returns (sender transport id, sender seq) of each packet, in arrival order.
    pub fn receive(&mut self, quiet: Duration) -> Vec<(u32, u16)> {
        let mut got = Vec::new();
        let mut buf = [0u8; 2048];
        let mut last = Instant::now();
        while last.elapsed() < quiet {
            match self.socket.recv_from(&mut buf) {
                Ok((n, from)) => {
                    assert_eq!(from, self.server, "datagrams come from the worker's socket");
                    if sluice_dataplane::packet::is_rtcp(&buf[..n]) {
                        // Sluice's sender reports on the slot streams (RTCP per hop).
                        self.rtcp_received += 1;
                        continue;
                    }
                    last = Instant::now();
                    let plain = match &mut self.recv_ctx {
                        Some(ctx) => ctx
                            .decrypt_rtp(&buf[..n])
                            .expect("webrtc-srtp decrypts with this subscriber's key")
                            .to_vec(),
                        None => buf[..n].to_vec(),
                    };
                    let hdr = RtpHeader::parse(&plain).expect("forwarded packet parses");
                    let payload = hdr.payload();
                    let sender = u32::from_be_bytes(payload[..4].try_into().unwrap());
                    let seq = u16::from_be_bytes(payload[4..6].try_into().unwrap());
                    assert_eq!(
                        hdr.csrcs().next(),
                        Some(0x1000_0000 + sender),
                        "the source SSRC leads the CSRC list"
                    );
                    got.push((sender, seq));
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock
                            | std::io::ErrorKind::TimedOut
                            | std::io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => panic!("recv: {e}"),
            }
        }
        got
    }
}

/// Counts packets per sender and asserts none came twice.
pub fn per_sender(got: &[(u32, u16)]) -> HashMap<u32, usize> {
    let mut seen = std::collections::HashSet::new();
    let mut counts = HashMap::new();
    for &(s, q) in got {
        assert!(seen.insert((s, q)), "packet {q} from {s} delivered twice");
        *counts.entry(s).or_insert(0) += 1;
    }
    counts
}

/// Polls until `f(total stats)` holds (counters are updated by the workers asynchronously).
pub fn wait_stats(dp: &Dataplane, what: &str, f: impl Fn(&StatsSnapshot) -> bool) -> StatsSnapshot {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let s = dp.total_stats();
        if f(&s) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {s:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub fn drops(dp: &Dataplane, r: DropReason) -> u64 {
    dp.total_stats().drops(r)
}
pub mod browsers;
pub mod clients;
pub mod freeze;
pub mod offers;
pub mod plain;
pub mod redis;
pub mod server;
