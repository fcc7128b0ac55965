//! Plain SRTP listeners for tests with many members: `POST /v1/rooms/{room}/plain` listeners of
//! one node, each with its own loopback socket and AES-128-GCM keys, read by one thread that counts
//! each listener's packets per source (the CSRC its slot streams name) and checks a sample of them
//! with webrtc-srtp, the independent oracle.

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
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("http client");
    (0..count)
        .map(|i| {
            let sock = UdpSocket::bind("127.0.0.1:0").expect("bind a listener");
            sock.set_nonblocking(true).expect("nonblocking");
            let ours: Vec<u8> = (0..28).map(|_| rand::random::<u8>()).collect();
            let r = http
                .post(format!("{base}/v1/rooms/{room}/plain"))
                .bearer_auth(key)
                .json(&json!({
                    "name": format!("{prefix}{i}"), "role": "listener",
                    "remote": sock.local_addr().expect("addr").to_string(),
                    "srtp": {"profile": "aes128gcm", "key": b64.encode(&ours)},
                }))
                .send()
                .expect("POST plain");
            let status = r.status();
            let grant: Value = r.json().expect("a JSON answer");
            assert_eq!(status, 201, "plain listener {prefix}{i} on {base}: {grant}");
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

/// Listeners being read in the background.
pub struct Listening {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Vec<Heard>>>,
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
            heard
        }
    });
    Listening {
        stop,
        thread: Some(thread),
    }
}

impl Listening {
    /// Stops reading; what each listener heard.
    pub fn stop(mut self) -> Vec<Heard> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .map(|t| t.join().expect("the reader"))
            .unwrap_or_default()
    }
}
