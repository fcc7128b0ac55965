//! Tests for the DTLS-SRTP server against an in-process OpenSSL DTLS client driven over the same
//! kind of memory datagram adapter, plus a hand-built Chromium-style DTLS 1.3 ClientHello.

use std::time::{Duration, Instant};

use openssl::ssl::{
    ErrorCode, Ssl, SslContext, SslMethod, SslOptions, SslStream, SslVerifyMode, SslVersion,
};
use sluice_dataplane::srtp::{SrtpContext, SrtpEngine, SrtpKeys, SrtpProfile};

use super::io::DatagramIo;
use super::*;

const ALL_OPENSSL: &str =
    "SRTP_AEAD_AES_256_GCM:SRTP_AEAD_AES_128_GCM:SRTP_AES128_CM_SHA1_80:SRTP_AES128_CM_SHA1_32";

/// A DTLS 1.2 client like aiortc's: its own self-signed ECDSA cert, the given SRTP profiles.
struct Client {
    stream: SslStream<DatagramIo>,
    cert: DtlsCertificate,
    connected: bool,
}

impl Client {
    fn new(srtp: &str, mtu: u32) -> Client {
        let cert = DtlsCertificate::generate().expect("client cert");
        let mut ctx = SslContext::builder(SslMethod::dtls()).unwrap();
        ctx.set_max_proto_version(Some(SslVersion::DTLS1_2))
            .unwrap();
        // Many suites make a big ClientHello (so a small MTU fragments it); the server picks.
        ctx.set_cipher_list("ALL:@SECLEVEL=0").unwrap();
        ctx.set_certificate(&cert.cert).unwrap();
        ctx.set_private_key(&cert.key).unwrap();
        if !srtp.is_empty() {
            ctx.set_tlsext_use_srtp(srtp).unwrap();
        }
        ctx.set_verify_callback(SslVerifyMode::PEER, |_, _| true);
        ctx.set_options(SslOptions::NO_QUERY_MTU);
        let ctx = ctx.build();
        let mut ssl = Ssl::new(&ctx).unwrap();
        ssl.set_connect_state();
        ssl.set_mtu(mtu).unwrap();
        let stream = SslStream::new(ssl, DatagramIo::new(mtu as usize)).unwrap();
        Client {
            stream,
            cert,
            connected: false,
        }
    }

    /// Runs the client's handshake on one datagram (or none, to start). Err on a fatal error.
    fn step(&mut self, d: Option<&[u8]>) -> Result<(), String> {
        if let Some(d) = d {
            self.stream.get_mut().push_incoming(d);
        }
        let r = if self.connected {
            let mut buf = [0u8; 2048];
            match self.stream.ssl_read(&mut buf) {
                Ok(_) => Ok(()),
                Err(e) if e.code() == ErrorCode::WANT_READ => Ok(()),
                Err(e) => Err(e.to_string()),
            }
        } else {
            match self.stream.do_handshake() {
                Ok(()) => {
                    self.connected = true;
                    Ok(())
                }
                Err(e) if e.code() == ErrorCode::WANT_READ => Ok(()),
                Err(e) => Err(e.to_string()),
            }
        };
        self.stream.get_mut().clear_incoming();
        r
    }

    fn drain(&mut self) -> Vec<Vec<u8>> {
        std::iter::from_fn(|| self.stream.get_mut().pop_outgoing()).collect()
    }

    fn fingerprint(&self) -> Fingerprint {
        self.cert.fingerprint().clone()
    }

    /// `(client_write, server_write)` from the client's side of the exporter.
    fn keys(&self, profile: SrtpProfile) -> (SrtpKeys, SrtpKeys) {
        export_srtp_keys_both(self.stream.ssl(), profile).unwrap()
    }
}

fn drain_server(s: &mut DtlsServer) -> Vec<Vec<u8>> {
    std::iter::from_fn(|| s.poll_transmit()).collect()
}

/// Pumps datagrams both ways until neither side has anything to send. Returns the server's event.
fn pump(server: &mut DtlsServer, client: &mut Client) -> Result<Option<DtlsEvent>, DtlsError> {
    let mut event = None;
    for _ in 0..32 {
        let from_client = client.drain();
        for d in &from_client {
            if let Some(ev) = server.handle_datagram(Instant::now(), d)? {
                assert!(event.is_none(), "Connected reported twice");
                event = Some(ev);
            }
        }
        let from_server = drain_server(server);
        if from_client.is_empty() && from_server.is_empty() {
            return Ok(event);
        }
        for d in &from_server {
            assert!(d.len() <= DEFAULT_MTU, "datagram of {} bytes", d.len());
            client
                .step(Some(d))
                .map_err(|e| DtlsError::HandshakeFailed(format!("client: {e}")))?;
        }
    }
    panic!("handshake did not settle");
}

fn handshake(
    server_profiles: &[SrtpProfile],
    client_srtp: &str,
    client_mtu: u32,
) -> (DtlsServer, Client, Result<Option<DtlsEvent>, DtlsError>) {
    let cert = DtlsCertificate::generate().unwrap();
    let mut client = Client::new(client_srtp, client_mtu);
    let mut server = DtlsServer::new(&cert, client.fingerprint(), server_profiles).unwrap();
    client.step(None).unwrap();
    let r = pump(&mut server, &mut client);
    (server, client, r)
}

fn rtp_packet(seq: u16, ssrc: u32, payload: &[u8], room: usize) -> (Vec<u8>, usize) {
    let mut p = vec![0x80, 111];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 960).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(payload);
    let len = p.len();
    p.resize(len + room, 0);
    (p, len)
}

/// `tx` protects, `rx` unprotects, the plaintext survives.
fn check_srtp(tx: &SrtpKeys, rx: &SrtpKeys) {
    let mut txc = SrtpContext::new(SrtpEngine::InPlace, tx).unwrap();
    let mut rxc = SrtpContext::new(SrtpEngine::InPlace, rx).unwrap();
    for seq in [1u16, 2, 3] {
        let payload = [seq as u8; 40];
        let (mut buf, len) = rtp_packet(seq, 0x1234_5678, &payload, 16);
        let n = txc.protect_rtp(&mut buf, len).unwrap();
        assert_ne!(&buf[12..len], &payload[..], "payload not encrypted");
        let m = rxc.unprotect_rtp(&mut buf[..n]).unwrap();
        assert_eq!(m, len);
        assert_eq!(&buf[12..m], &payload[..]);
    }
}

fn connected(ev: Option<DtlsEvent>) -> (SrtpProfile, SrtpKeyPair) {
    match ev {
        Some(DtlsEvent::Connected { profile, keys, .. }) => (profile, keys),
        None => panic!("handshake finished without a Connected event"),
    }
}

#[test]
fn handshake_each_profile_keys_interoperate() {
    for p in SrtpProfile::ALL {
        let (server, client, r) = handshake(&[p], ALL_OPENSSL, 1200);
        let (profile, keys) = connected(r.unwrap());
        assert_eq!(profile, p);
        assert!(server.is_connected());
        assert!(client.connected);
        assert_eq!(server.poll_timeout(), None);
        let (client_write, server_write) = client.keys(p);
        assert_eq!(keys.inbound.master_key, client_write.master_key);
        assert_eq!(keys.inbound.master_salt, client_write.master_salt);
        assert_eq!(keys.outbound.master_key, server_write.master_key);
        assert_eq!(keys.outbound.master_salt, server_write.master_salt);
        assert_ne!(keys.inbound.master_key, keys.outbound.master_key);
        assert_eq!(keys.inbound.master_key.len(), p.master_key_len());
        assert_eq!(keys.inbound.master_salt.len(), p.master_salt_len());
        // Browser → us, and us → browser.
        check_srtp(&client_write, &keys.inbound);
        check_srtp(&keys.outbound, &server_write);
    }
}

#[test]
fn server_preference_order_wins() {
    let (_s, _c, r) = handshake(
        &[SrtpProfile::AeadAes128Gcm, SrtpProfile::Aes128CmHmacSha1_80],
        "SRTP_AES128_CM_SHA1_80:SRTP_AEAD_AES_128_GCM",
        1200,
    );
    assert_eq!(connected(r.unwrap()).0, SrtpProfile::AeadAes128Gcm);
    let (_s, _c, r) = handshake(&SrtpProfile::ALL, ALL_OPENSSL, 1200);
    assert_eq!(connected(r.unwrap()).0, SrtpProfile::Aes128CmHmacSha1_80);
}

#[test]
fn fragmented_client_hello_completes() {
    let cert = DtlsCertificate::generate().unwrap();
    // A 256-byte MTU makes OpenSSL fragment the ClientHello (and the client's later flights).
    let mut client = Client::new(ALL_OPENSSL, 256);
    let mut server = DtlsServer::new(&cert, client.fingerprint(), &SrtpProfile::ALL).unwrap();
    client.step(None).unwrap();
    let hello = client.drain();
    assert!(
        hello.len() >= 2,
        "ClientHello not fragmented ({} datagrams)",
        hello.len()
    );
    let now = Instant::now();
    for d in &hello[..hello.len() - 1] {
        assert!(d.len() <= 256);
        assert!(server.handle_datagram(now, d).unwrap().is_none());
        assert!(server.poll_transmit().is_none(), "answered a partial hello");
    }
    assert!(server
        .handle_datagram(now, &hello[hello.len() - 1])
        .unwrap()
        .is_none());
    let flight = drain_server(&mut server);
    assert!(!flight.is_empty(), "no ServerHello after reassembly");
    for d in &flight {
        client.step(Some(d)).unwrap();
    }
    let (_, keys) = connected(pump(&mut server, &mut client).unwrap());
    check_srtp(&client.keys(keys.inbound.profile).0, &keys.inbound);
}

#[test]
fn fingerprint_mismatch_gives_no_keys() {
    let cert = DtlsCertificate::generate().unwrap();
    let other = DtlsCertificate::generate().unwrap();
    let mut client = Client::new(ALL_OPENSSL, 1200);
    let mut server =
        DtlsServer::new(&cert, other.fingerprint().clone(), &SrtpProfile::ALL).unwrap();
    client.step(None).unwrap();
    let mut outcome = None;
    for _ in 0..16 {
        let from_client = client.drain();
        for d in &from_client {
            match server.handle_datagram(Instant::now(), d) {
                Ok(None) => {}
                Ok(Some(ev)) => panic!("connected despite mismatch: {ev:?}"),
                Err(e) => outcome = Some(e),
            }
        }
        if outcome.is_some() {
            break;
        }
        for d in drain_server(&mut server) {
            client.step(Some(&d)).unwrap();
        }
    }
    match outcome {
        Some(DtlsError::FingerprintMismatch { expected, got }) => {
            assert_eq!(expected, other.fingerprint().to_string());
            assert_eq!(got, client.fingerprint().to_string());
        }
        other => panic!("expected FingerprintMismatch, got {other:?}"),
    }
    assert!(!server.is_connected());
    // The alert reaches the client, which must not consider itself connected.
    for d in drain_server(&mut server) {
        let _ = client.step(Some(&d));
    }
    assert!(!client.connected);
    assert!(matches!(
        server.handle_datagram(
            Instant::now(),
            &[22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        ),
        Err(DtlsError::Closed)
    ));
}

#[test]
fn no_common_srtp_profile_fails() {
    let (server, _c, r) = handshake(
        &[SrtpProfile::AeadAes256Gcm],
        "SRTP_AES128_CM_SHA1_80",
        1200,
    );
    assert!(matches!(r, Err(DtlsError::NoSrtpProfile)), "{r:?}");
    assert!(!server.is_connected());
    // A client without use_srtp at all.
    let (server, _c, r) = handshake(&SrtpProfile::ALL, "", 1200);
    assert!(matches!(r, Err(DtlsError::NoSrtpProfile)), "{r:?}");
    assert!(!server.is_connected());
    let cert = DtlsCertificate::generate().unwrap();
    assert!(matches!(
        DtlsServer::new(&cert, cert.fingerprint().clone(), &[]),
        Err(DtlsError::NoSrtpProfile)
    ));
}

#[test]
fn garbage_is_rejected_without_panic_and_handshake_survives() {
    let cert = DtlsCertificate::generate().unwrap();
    let mut client = Client::new(ALL_OPENSSL, 1200);
    let mut server = DtlsServer::new(&cert, client.fingerprint(), &SrtpProfile::ALL).unwrap();
    let now = Instant::now();
    let bad: Vec<Vec<u8>> = vec![
        vec![],
        vec![0x00; 40],
        vec![0x80, 111, 0, 1, 0, 0, 0, 0, 1, 2, 3, 4],
        vec![22, 0xfe, 0xfd, 0, 0],
        // Header claims 100 bytes, 3 present.
        vec![22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 100, 1, 2, 3],
        // A valid record followed by trailing junk.
        vec![23, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 9, 0xff],
        // TLS, not DTLS.
        vec![22, 0x03, 0x03, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    ];
    for d in &bad {
        assert!(
            matches!(server.handle_datagram(now, d), Err(DtlsError::Malformed(_))),
            "{d:?}"
        );
    }
    // Well-framed records with nonsense inside reach OpenSSL: it drops most, but an unexpected
    // record type at epoch 0 is fatal for OpenSSL 3.0. Never a panic, never Malformed.
    let mut x: u32 = 0x1234_5678;
    for i in 0..200u32 {
        let mut rec = vec![
            20 + (i % 4) as u8,
            0xfe,
            0xfd,
            0,
            (i % 3) as u8,
            0,
            0,
            0,
            0,
            0,
            i as u8,
        ];
        let len = (i * 7) % 300;
        rec.extend_from_slice(&(len as u16).to_be_bytes());
        for _ in 0..len {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            rec.push(x as u8);
        }
        let r = server.handle_datagram(now, &rec);
        assert!(
            matches!(
                r,
                Ok(None) | Err(DtlsError::HandshakeFailed(_)) | Err(DtlsError::Closed)
            ),
            "{r:?}"
        );
        if r.is_err() {
            assert!(matches!(
                server.handle_datagram(now, &rec),
                Err(DtlsError::Closed)
            ));
        }
    }
    // A fresh server that only saw unframed garbage still completes a handshake.
    let mut server = DtlsServer::new(&cert, client.fingerprint(), &SrtpProfile::ALL).unwrap();
    for d in &bad {
        let _ = server.handle_datagram(now, d);
    }
    let app_junk = [23, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 5, 0, 4, 1, 2, 3, 4];
    assert!(server.handle_datagram(now, &app_junk).unwrap().is_none());
    client.step(None).unwrap();
    connected(pump(&mut server, &mut client).unwrap());
}

#[test]
fn lost_server_flight_is_retransmitted() {
    let cert = DtlsCertificate::generate().unwrap();
    let mut client = Client::new(ALL_OPENSSL, 1200);
    let mut server = DtlsServer::new(&cert, client.fingerprint(), &SrtpProfile::ALL).unwrap();
    assert_eq!(server.poll_timeout(), None);
    client.step(None).unwrap();
    let t0 = Instant::now();
    for d in client.drain() {
        server.handle_datagram(t0, &d).unwrap();
    }
    let lost = drain_server(&mut server);
    assert!(!lost.is_empty());
    let deadline = server.poll_timeout().expect("no retransmission timer");
    assert!(deadline > t0 && deadline <= t0 + Duration::from_secs(2));
    // Before the deadline: nothing.
    server.handle_timeout(t0).unwrap();
    assert!(server.poll_transmit().is_none());
    // OpenSSL's timer runs on the wall clock: wait it out.
    std::thread::sleep(
        deadline.saturating_duration_since(Instant::now()) + Duration::from_millis(30),
    );
    server.handle_timeout(Instant::now()).unwrap();
    let again = drain_server(&mut server);
    assert!(!again.is_empty(), "flight not retransmitted");
    let next = server.poll_timeout().expect("timer stopped");
    assert!(next > deadline, "backoff did not move the deadline");
    for d in &again {
        client.step(Some(d)).unwrap();
    }
    connected(pump(&mut server, &mut client).unwrap());
    assert_eq!(server.poll_timeout(), None);
}

/// A Chromium-style ClientHello: legacy_version DTLS 1.2, supported_versions {DTLS 1.3, DTLS 1.2},
/// key_share, TLS 1.3 suites, padded to about 1.4 KB and sent as two handshake fragments in two
/// datagrams. OpenSSL 3.0 must reassemble it and answer with a DTLS 1.2 ServerHello.
#[test]
fn dtls13_client_hello_in_two_fragments_gets_dtls12_server_hello() {
    fn ext(out: &mut Vec<u8>, ty: u16, data: &[u8]) {
        out.extend_from_slice(&ty.to_be_bytes());
        out.extend_from_slice(&(data.len() as u16).to_be_bytes());
        out.extend_from_slice(data);
    }
    let mut body = vec![0xfe, 0xfd];
    body.extend((0..32u8).map(|i| i.wrapping_mul(37)));
    body.push(0); // session id
    body.push(0); // cookie
    let suites: [u16; 5] = [0x1301, 0x1302, 0xc02b, 0xc02f, 0xc02c];
    body.extend_from_slice(&((suites.len() * 2) as u16).to_be_bytes());
    for s in suites {
        body.extend_from_slice(&s.to_be_bytes());
    }
    body.extend_from_slice(&[1, 0]); // compression: null
    let mut exts = Vec::new();
    ext(&mut exts, 0xff01, &[0]); // renegotiation_info
    ext(&mut exts, 0x0017, &[]); // extended_master_secret
    ext(&mut exts, 0x000a, &[0, 4, 0x00, 0x1d, 0x00, 0x17]); // x25519, P-256
    ext(&mut exts, 0x000b, &[1, 0]); // ec_point_formats
    ext(&mut exts, 0x000d, &[0, 6, 4, 3, 8, 4, 4, 1]); // signature_algorithms
    ext(&mut exts, 0x000e, &[0, 4, 0, 7, 0, 1, 0]); // use_srtp: AES128_GCM, AES128_CM_80
    ext(&mut exts, 0x002b, &[4, 0xfe, 0xfc, 0xfe, 0xfd]); // supported_versions: DTLS 1.3, 1.2
    let mut ks = vec![0, 36, 0x00, 0x1d, 0, 32];
    ks.extend((0..32u8).map(|i| i.wrapping_mul(11).wrapping_add(9)));
    ext(&mut exts, 0x0033, &ks); // key_share (x25519)
    let pad = 1400usize.saturating_sub(body.len() + 2 + exts.len() + 4);
    ext(&mut exts, 0x0015, &vec![0u8; pad]); // padding
    body.extend_from_slice(&(exts.len() as u16).to_be_bytes());
    body.extend_from_slice(&exts);
    assert!(body.len() >= 1390);

    let split = body.len() / 2;
    let mut datagrams = Vec::new();
    for (seq, (off, frag)) in [(0usize, &body[..split]), (split, &body[split..])]
        .into_iter()
        .enumerate()
    {
        let mut hs = vec![1];
        hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        hs.extend_from_slice(&[0, 0]); // message_seq
        hs.extend_from_slice(&(off as u32).to_be_bytes()[1..]);
        hs.extend_from_slice(&(frag.len() as u32).to_be_bytes()[1..]);
        hs.extend_from_slice(frag);
        let mut rec = vec![22, 0xfe, 0xff, 0, 0, 0, 0, 0, 0, 0, seq as u8];
        rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
        rec.extend_from_slice(&hs);
        datagrams.push(rec);
    }

    let cert = DtlsCertificate::generate().unwrap();
    let any = DtlsCertificate::generate().unwrap();
    let mut server = DtlsServer::new(&cert, any.fingerprint().clone(), &SrtpProfile::ALL).unwrap();
    let now = Instant::now();
    assert!(server
        .handle_datagram(now, &datagrams[0])
        .unwrap()
        .is_none());
    assert!(server.poll_transmit().is_none());
    assert!(server
        .handle_datagram(now, &datagrams[1])
        .unwrap()
        .is_none());
    let first = server
        .poll_transmit()
        .expect("no answer to the DTLS 1.3 ClientHello");
    assert_eq!(first[0], 22, "not a handshake record");
    assert_eq!(first[13], 2, "not a ServerHello");
    assert_eq!(
        &first[25..27],
        &[0xfe, 0xfd],
        "ServerHello version is not DTLS 1.2"
    );
}

#[test]
fn fingerprint_round_trip_and_errors() {
    let cert = DtlsCertificate::generate().unwrap();
    let fp = cert.fingerprint();
    assert_eq!(fp.algorithm(), FingerprintAlgorithm::Sha256);
    let s = fp.to_string();
    assert!(s.starts_with("sha-256 "));
    assert_eq!(s.len(), "sha-256 ".len() + 32 * 3 - 1);
    assert_eq!(&s.parse::<Fingerprint>().unwrap(), fp);
    // Case-insensitive hash name and hex, extra whitespace.
    let lower = format!(
        "  SHA-256   {}  ",
        s["sha-256 ".len()..].to_ascii_lowercase()
    );
    assert_eq!(&lower.parse::<Fingerprint>().unwrap(), fp);
    assert!(fp.matches(cert.x509()).unwrap());

    let sha1 = format!("sha-1 {}", vec!["0A"; 20].join(":"));
    let f = sha1.parse::<Fingerprint>().unwrap();
    assert_eq!(f.algorithm(), FingerprintAlgorithm::Sha1);
    assert_eq!(f.to_string(), sha1);
    for alg in [FingerprintAlgorithm::Sha384, FingerprintAlgorithm::Sha512] {
        let f = Fingerprint::of_certificate(alg, cert.x509()).unwrap();
        assert_eq!(f.to_string().parse::<Fingerprint>().unwrap(), f);
        assert!(f.matches(cert.x509()).unwrap());
    }

    let hex31 = vec!["AB"; 31].join(":");
    for bad in [
        String::new(),
        "sha-256".to_string(),
        format!("md5 {}", vec!["AB"; 16].join(":")),
        format!("sha-256 {hex31}"),
        format!("sha-256 {hex31}:ABC"),
        format!("sha-256 {hex31}:G0"),
        format!("sha-256 {hex31}:"),
        format!("sha-256 {}", "AB".repeat(32)),
        format!("sha-256 {hex31}:AB extra"),
        format!("sha-256 {}", vec!["AB"; 33].join(":")),
    ] {
        match bad.parse::<Fingerprint>() {
            Err(crate::fingerprint::FingerprintError(msg)) => assert!(!msg.is_empty()),
            other => panic!("{bad:?} parsed as {other:?}"),
        }
    }
    assert!(Fingerprint::new(FingerprintAlgorithm::Sha256, &[0; 20]).is_err());
}

#[test]
fn handshake_fragment_headers_are_read_for_logs() {
    // Chromium's first datagram with post-quantum key shares: 0x497 of a 0x585-byte ClientHello.
    let mut d = vec![0x16, 0xfe, 0xff, 0, 0, 0, 0, 0, 0, 0, 2, 0x04, 0xa3];
    d.extend_from_slice(&[1, 0, 5, 0x85, 0, 0, 0, 0, 0, 0, 4, 0x97]);
    d.resize(13 + 0x4a3, 0);
    let f = super::first_handshake_fragment(&d).expect("a handshake record");
    assert_eq!(
        (f.msg_type, f.length, f.offset, f.fragment_length),
        (1, 0x585, 0, 0x497)
    );
    assert!(f.is_partial());
    assert_eq!(super::first_handshake_fragment(&d[..20]), None);
    d[0] = 23;
    assert_eq!(super::first_handshake_fragment(&d), None);
}

#[test]
fn one_shared_context_serves_sessions_that_each_check_their_own_fingerprint() {
    let cert = DtlsCertificate::generate().unwrap();
    let ctx = DtlsContext::new(&cert, &SrtpProfile::ALL).unwrap();
    let mut a = Client::new(ALL_OPENSSL, 1200);
    let mut b = Client::new(ALL_OPENSSL, 1200);
    let mut server_a = DtlsServer::with_context(&ctx, a.fingerprint()).unwrap();
    // b's session expects a's certificate: b must be refused, a (on the same context) not.
    let mut server_b = DtlsServer::with_context(&ctx, a.fingerprint()).unwrap();
    a.step(None).unwrap();
    b.step(None).unwrap();
    connected(pump(&mut server_a, &mut a).unwrap());
    assert!(matches!(
        pump(&mut server_b, &mut b),
        Err(DtlsError::FingerprintMismatch { .. }) | Err(DtlsError::HandshakeFailed(_))
    ));
    let mut c = Client::new(ALL_OPENSSL, 1200);
    let mut server_c = DtlsServer::with_context(&ctx, c.fingerprint()).unwrap();
    c.step(None).unwrap();
    connected(pump(&mut server_c, &mut c).unwrap());
}

#[test]
fn a_connected_session_is_released_only_once_its_client_has_been_quiet() {
    let (mut server, _client, r) = handshake(&SrtpProfile::ALL, ALL_OPENSSL, 1200);
    connected(r.unwrap());
    let quiet = Duration::from_secs(8);
    let now = Instant::now();
    assert!(!server.release_when_quiet(now, quiet), "just heard from");
    assert!(server.release_when_quiet(now + Duration::from_secs(9), quiet));
    assert!(server.is_released() && server.is_connected());
    assert!(!server.release_when_quiet(now + Duration::from_secs(20), quiet));
    // Records after the release are dropped, never answered, never an error.
    let record = [23, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 9, 0, 4, 1, 2, 3, 4];
    assert!(server
        .handle_datagram(now + Duration::from_secs(21), &record)
        .unwrap()
        .is_none());
    assert_eq!(server.poll_transmit(), None);
    assert_eq!(server.poll_timeout(), None);
}

#[test]
fn a_session_still_handshaking_is_never_released() {
    let cert = DtlsCertificate::generate().unwrap();
    let mut client = Client::new(ALL_OPENSSL, 1200);
    let mut server = DtlsServer::new(&cert, client.fingerprint(), &SrtpProfile::ALL).unwrap();
    client.step(None).unwrap();
    let now = Instant::now();
    for d in client.drain() {
        let _ = server.handle_datagram(now, &d);
    }
    assert!(!server.release_when_quiet(now + Duration::from_secs(60), Duration::from_secs(8)));
    assert!(!server.is_released());
}
