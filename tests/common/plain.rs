//! Plain SRTP members for tests with many members: `POST /v1/rooms/{room}/plain` listeners of
//! one node, each with its own loopback socket and AES-128-GCM keys, read by one thread that counts
//! each listener's packets per source (the CSRC its slot streams name) and checks a sample of them
//! with webrtc-srtp, the independent oracle; and plain speakers, sending 50 SRTP packets a second
//! from one thread.

use std::collections::HashMap;
use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};
use sluice_dataplane::packet::{is_rtcp, RtpHeader};
use sluice_dataplane::srtp::{SrtpContext, SrtpEngine, SrtpKeys, SrtpProfile};

/// Packets of each source checked with the oracle before it samples one in [`SAMPLE_EVERY`].
const CHECK_FIRST: u64 = 20;
const SAMPLE_EVERY: u64 = 8;

/// One plain listener: its socket and what decrypts what sluice sends it.
pub struct Ear {
    /// Its participant id.
    pub id: String,
    sock: UdpSocket,
    ctx: SrtpContext,
}

/// What one listener received.
#[derive(Debug, Default, Clone)]
pub struct Heard {
    /// Its participant id.
    pub id: String,
    /// RTP packets per source (the slot stream's CSRC).
    pub per_source: HashMap<u32, u64>,
    /// Packets the oracle decrypted, and packets it refused.
    pub verified: u64,
    pub failed: u64,
}

impl Heard {
    /// Sources heard with at least `n` packets.
    pub fn sources_with(&self, n: u64) -> usize {
        self.per_source.values().filter(|&&c| c >= n).count()
    }
}

/// Adds `count` plain listeners named `{prefix}{i}` to `room` through the node at `base`.
pub fn add_listeners(base: &str, key: &str, room: &str, prefix: &str, count: usize) -> Vec<Ear> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let http = http_client();
    (0..count)
        .map(|i| {
            let sock = UdpSocket::bind("127.0.0.1:0").expect("bind a listener");
            sock.set_nonblocking(true).expect("nonblocking");
            let member = json!({"name": format!("{prefix}{i}"), "role": "listener"});
            let (grant, _) = post_plain(&http, (base, key, room), &sock, member);
            let theirs = b64
                .decode(grant["srtp"]["key"].as_str().expect("sluice's key"))
                .expect("base64");
            let keys = SrtpKeys::new(SrtpProfile::AeadAes128Gcm, &theirs[..16], &theirs[16..])
                .expect("keys");
            Ear {
                id: grant["id"].as_str().unwrap_or_default().to_string(),
                sock,
                ctx: SrtpContext::new(SrtpEngine::WebrtcSrtp, &keys).expect("oracle"),
            }
        })
        .collect()
}

/// One plain speaker: its socket, where it sends, and what protects what it sends.
pub struct Mouth {
    /// Its participant id.
    pub id: String,
    /// The SSRC it publishes with.
    pub ssrc: u32,
    sock: UdpSocket,
    server: std::net::SocketAddr,
    ctx: SrtpContext,
    seq: u16,
    ts: u32,
}

fn http_client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("http client")
}

/// Asks the node at `base` for a plain transport in `room` (`member`: its name, role, …) that
/// sends to `sock`, with fresh AES-128-GCM keys; returns sluice's grant and our master key ‖ salt.
fn post_plain(
    http: &reqwest::blocking::Client,
    (base, key, room): (&str, &str, &str),
    sock: &UdpSocket,
    mut member: Value,
) -> (Value, Vec<u8>) {
    let b64 = base64::engine::general_purpose::STANDARD;
    let ours: Vec<u8> = (0..28).map(|_| rand::random::<u8>()).collect();
    member["remote"] = sock.local_addr().expect("addr").to_string().into();
    member["srtp"] = json!({"profile": "aes128gcm", "key": b64.encode(&ours)});
    let r = http
        .post(format!("{base}/v1/rooms/{room}/plain"))
        .bearer_auth(key)
        .json(&member)
        .send()
        .expect("POST plain");
    let status = r.status();
    let grant: Value = r.json().expect("a JSON answer");
    assert_eq!(
        status, 201,
        "plain member {} on {base}: {grant}",
        member["name"]
    );
    (grant, ours)
}

/// Adds a plain speaker `name` publishing with `ssrc` (hearing nothing) to `room` through `base`.
pub fn add_speaker(base: &str, key: &str, room: &str, name: &str, ssrc: u32) -> Mouth {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind a speaker");
    let member = json!({"name": name, "role": "speaker", "ssrc": ssrc, "slots": 0});
    let (grant, ours) = post_plain(&http_client(), (base, key, room), &sock, member);
    let keys = SrtpKeys::new(SrtpProfile::AeadAes128Gcm, &ours[..16], &ours[16..]).expect("keys");
    Mouth {
        id: grant["id"].as_str().unwrap_or_default().to_string(),
        ssrc,
        sock,
        server: grant["server"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .expect("the server's address"),
        ctx: SrtpContext::new(SrtpEngine::InPlace, &keys).expect("srtp"),
        seq: rand::random(),
        ts: rand::random(),
    }
}

impl Mouth {
    /// Sends one 20 ms Opus-sized SRTP packet.
    fn send(&mut self) {
        let mut buf = [0u8; 256];
        buf[0] = 0x80;
        buf[1] = 111;
        buf[2..4].copy_from_slice(&self.seq.to_be_bytes());
        buf[4..8].copy_from_slice(&self.ts.to_be_bytes());
        buf[8..12].copy_from_slice(&self.ssrc.to_be_bytes());
        buf[12..92].fill(0x5A);
        if let Ok(n) = self.ctx.protect_rtp(&mut buf, 92) {
            let _ = self.sock.send_to(&buf[..n], self.server);
        }
        self.seq = self.seq.wrapping_add(1);
        self.ts = self.ts.wrapping_add(960);
    }
}

/// Speakers talking in the background, 50 packets a second each.
pub struct Talking {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Vec<Mouth>>>,
}

/// Every mouth sends 50 packets a second until [`Talking::stop`].
pub fn talk(mut mouths: Vec<Mouth>) -> Talking {
    let stop = Arc::new(AtomicBool::new(false));
    let thread = std::thread::spawn({
        let stop = stop.clone();
        move || {
            let start = std::time::Instant::now();
            let mut sent = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let due = start.elapsed().as_millis() as u64 / 20 + 1;
                while sent < due {
                    mouths.iter_mut().for_each(Mouth::send);
                    sent += 1;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            mouths
        }
    });
    Talking {
        stop,
        thread: Some(thread),
    }
}

impl Talking {
    /// Stops talking; the speakers, to talk again.
    pub fn stop(mut self) -> Vec<Mouth> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .map(|t| t.join().expect("the talker"))
            .unwrap_or_default()
    }
}

/// Reads and discards whatever the listeners' sockets hold (a reader that fell behind leaves a
/// backlog), until a whole pass finds nothing.
pub fn drain(ears: &mut [Ear]) {
    let mut buf = [0u8; 2048];
    loop {
        let mut got = 0;
        for ear in ears.iter_mut() {
            while ear.sock.recv(&mut buf).is_ok() {
                got += 1;
            }
        }
        if got == 0 {
            return;
        }
    }
}

/// Listeners being read in the background.
pub struct Listening {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<(Vec<Heard>, Vec<Ear>)>>,
}

/// Reads every ear's socket until [`Listening::stop`].
pub fn listen(mut ears: Vec<Ear>) -> Listening {
    let stop = Arc::new(AtomicBool::new(false));
    let thread = std::thread::spawn({
        let stop = stop.clone();
        move || {
            let mut heard: Vec<Heard> = ears
                .iter()
                .map(|e| Heard {
                    id: e.id.clone(),
                    ..Default::default()
                })
                .collect();
            let mut buf = [0u8; 2048];
            while !stop.load(Ordering::Relaxed) {
                for (ear, h) in ears.iter_mut().zip(heard.iter_mut()) {
                    while let Ok(n) = ear.sock.recv(&mut buf) {
                        let pkt = &mut buf[..n];
                        if is_rtcp(pkt) {
                            continue;
                        }
                        let Ok(source) = RtpHeader::parse(pkt).map(|h| h.csrcs().next()) else {
                            h.failed += 1;
                            continue;
                        };
                        let count = h.per_source.entry(source.unwrap_or(0)).or_default();
                        *count += 1;
                        if *count <= CHECK_FIRST || *count % SAMPLE_EVERY == 0 {
                            match ear.ctx.unprotect_rtp(pkt) {
                                Ok(_) => h.verified += 1,
                                Err(_) => h.failed += 1,
                            }
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            (heard, ears)
        }
    });
    Listening {
        stop,
        thread: Some(thread),
    }
}

impl Listening {
    /// Stops reading; what each listener heard.
    pub fn stop(self) -> Vec<Heard> {
        self.stop_keeping_ears().0
    }

    /// Stops reading; what each listener heard, and the listeners, to listen again.
    pub fn stop_keeping_ears(mut self) -> (Vec<Heard>, Vec<Ear>) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .map(|t| t.join().expect("the reader"))
            .unwrap_or_default()
    }
}
