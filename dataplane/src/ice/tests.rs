//! Tests of [`super`]: RFC test vectors, round trips, and robustness over random and mutated input.

use super::*;
use crate::packet::StunClass;

const RFC_PWD: &str = "VOkJxbRl1RmTxUk/WvJxBt";
const RFC_TXID: [u8; 12] = [
    0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae,
];

/// RFC 5769 §2.1.
const RFC_REQUEST: [u8; 108] = [
    0x00, 0x01, 0x00, 0x58, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86,
    0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x10, 0x53, 0x54, 0x55, 0x4e, 0x20, 0x74, 0x65, 0x73,
    0x74, 0x20, 0x63, 0x6c, 0x69, 0x65, 0x6e, 0x74, 0x00, 0x24, 0x00, 0x04, 0x6e, 0x00, 0x01, 0xff,
    0x80, 0x29, 0x00, 0x08, 0x93, 0x2f, 0xf9, 0xb1, 0x51, 0x26, 0x3b, 0x36, 0x00, 0x06, 0x00, 0x09,
    0x65, 0x76, 0x74, 0x6a, 0x3a, 0x68, 0x36, 0x76, 0x59, 0x20, 0x20, 0x20, 0x00, 0x08, 0x00, 0x14,
    0x9a, 0xea, 0xa7, 0x0c, 0xbf, 0xd8, 0xcb, 0x56, 0x78, 0x1e, 0xf2, 0xb5, 0xb2, 0xd3, 0xf2, 0x49,
    0xc1, 0xb5, 0x71, 0xa2, 0x80, 0x28, 0x00, 0x04, 0xe5, 0x7a, 0x3b, 0xcf,
];

/// RFC 5769 §2.2.
const RFC_RESPONSE_V4: [u8; 80] = [
    0x01, 0x01, 0x00, 0x3c, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86,
    0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x0b, 0x74, 0x65, 0x73, 0x74, 0x20, 0x76, 0x65, 0x63,
    0x74, 0x6f, 0x72, 0x20, 0x00, 0x20, 0x00, 0x08, 0x00, 0x01, 0xa1, 0x47, 0xe1, 0x12, 0xa6, 0x43,
    0x00, 0x08, 0x00, 0x14, 0x2b, 0x91, 0xf5, 0x99, 0xfd, 0x9e, 0x90, 0xc3, 0x8c, 0x74, 0x89, 0xf9,
    0x2a, 0xf9, 0xba, 0x53, 0xf0, 0x6b, 0xe7, 0xd7, 0x80, 0x28, 0x00, 0x04, 0xc0, 0x7d, 0x4c, 0x96,
];

/// RFC 5769 §2.3.
const RFC_RESPONSE_V6: [u8; 92] = [
    0x01, 0x01, 0x00, 0x48, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86,
    0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x0b, 0x74, 0x65, 0x73, 0x74, 0x20, 0x76, 0x65, 0x63,
    0x74, 0x6f, 0x72, 0x20, 0x00, 0x20, 0x00, 0x14, 0x00, 0x02, 0xa1, 0x47, 0x01, 0x13, 0xa9, 0xfa,
    0xa5, 0xd3, 0xf1, 0x79, 0xbc, 0x25, 0xf4, 0xb5, 0xbe, 0xd2, 0xb9, 0xd9, 0x00, 0x08, 0x00, 0x14,
    0xa3, 0x82, 0x95, 0x4e, 0x4b, 0xe6, 0x7b, 0xf1, 0x17, 0x84, 0xc9, 0x7c, 0x82, 0x92, 0xc2, 0x75,
    0xbf, 0xe3, 0xed, 0x41, 0x80, 0x28, 0x00, 0x04, 0xc8, 0xfb, 0x0b, 0x4c,
];

fn rfc_creds() -> IceCredentials {
    IceCredentials::new("evtj", RFC_PWD, "h6vY")
}

fn creds() -> IceCredentials {
    IceCredentials::new("srvU", "server-password-22chars", "cliU")
}

const TXID: [u8; 12] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];

fn push_attr(m: &mut Vec<u8>, typ: u16, value: &[u8]) {
    m.extend_from_slice(&typ.to_be_bytes());
    m.extend_from_slice(&(value.len() as u16).to_be_bytes());
    m.extend_from_slice(value);
    while m.len() % 4 != 0 {
        m.push(0);
    }
}

fn set_len(m: &mut [u8], len: usize) {
    m[2..4].copy_from_slice(&(len as u16).to_be_bytes());
}

/// Builds a request independently of the code under test (only `crc32`, checked against the
/// RFC vectors, is shared): `before` attributes, MESSAGE-INTEGRITY keyed with `pwd` (if any),
/// `after` attributes, then FINGERPRINT (if `fp`).
fn build(
    typ: u16,
    before: &[(u16, &[u8])],
    pwd: Option<&str>,
    after: &[(u16, &[u8])],
    fp: bool,
) -> Vec<u8> {
    let mut m = typ.to_be_bytes().to_vec();
    m.extend_from_slice(&[0, 0]);
    m.extend_from_slice(&STUN_MAGIC_COOKIE.to_be_bytes());
    m.extend_from_slice(&TXID);
    for (t, v) in before {
        push_attr(&mut m, *t, v);
    }
    if let Some(pwd) = pwd {
        let l = m.len();
        set_len(&mut m, l + 24 - 20);
        let mut mac = HmacSha1::new_from_slice(pwd.as_bytes()).unwrap();
        mac.update(&m);
        let tag = mac.finalize().into_bytes();
        push_attr(&mut m, attr::MESSAGE_INTEGRITY, &tag);
    }
    for (t, v) in after {
        push_attr(&mut m, *t, v);
    }
    if fp {
        let l = m.len();
        set_len(&mut m, l + 8 - 20);
        let crc = crc32(&m) ^ FINGERPRINT_XOR;
        push_attr(&mut m, attr::FINGERPRINT, &crc.to_be_bytes());
    } else {
        let l = m.len();
        set_len(&mut m, l - 20);
    }
    m
}

/// As aiortc (aioice) and Chromium send a nominating check: USERNAME, ICE-CONTROLLING, PRIORITY,
/// USE-CANDIDATE, MESSAGE-INTEGRITY, FINGERPRINT; `extra` goes before MESSAGE-INTEGRITY.
fn client_check(username: &[u8], pwd: &str, extra: &[(u16, &[u8])]) -> Vec<u8> {
    let mut attrs: Vec<(u16, &[u8])> = vec![
        (attr::USERNAME, username),
        (
            attr::ICE_CONTROLLING,
            &[0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88],
        ),
        (attr::PRIORITY, &[0x6e, 0x7f, 0x1e, 0xff]),
        (attr::USE_CANDIDATE, &[]),
    ];
    attrs.extend_from_slice(extra);
    build(0x0001, &attrs, Some(pwd), &[], true)
}

#[test]
fn our_own_request_writer_is_accepted_by_the_checker() {
    let creds = IceCredentials::new("srvU", "server-password-22chars", "cliU");
    let mut buf = [0u8; 256];
    for nominate in [false, true] {
        let n = write_binding_request(
            &TXID,
            "srvU:cliU",
            "server-password-22chars",
            7,
            9,
            nominate,
            &mut buf,
        )
        .unwrap();
        let req = check_binding_request(&buf[..n], &creds).unwrap();
        assert_eq!(
            (req.use_candidate, req.priority, req.controlling),
            (nominate, Some(7), true)
        );
        // Same bytes as the independent builder above.
        let reference = build(
            0x0001,
            &[
                (attr::USERNAME, &b"srvU:cliU"[..]),
                (attr::ICE_CONTROLLING, &9u64.to_be_bytes()[..]),
                (attr::PRIORITY, &7u32.to_be_bytes()[..]),
            ]
            .into_iter()
            .chain(nominate.then_some((attr::USE_CANDIDATE, &[][..])))
            .collect::<Vec<_>>(),
            Some("server-password-22chars"),
            &[],
            true,
        );
        assert_eq!(&buf[..n], &reference[..]);
    }
    assert_eq!(
        write_binding_request(&TXID, "srvU:cliU", "pw", 1, 1, true, &mut buf[..40]),
        Err(IceError::BufferTooSmall)
    );
}

fn good_check() -> Vec<u8> {
    client_check(b"srvU:cliU", "server-password-22chars", &[])
}

#[test]
fn crc32_check_value() {
    assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    assert_eq!(crc32(b""), 0);
}

#[test]
fn rfc5769_sample_request_verifies() {
    let req = check_binding_request(&RFC_REQUEST, &rfc_creds()).unwrap();
    assert_eq!(
        req,
        BindingRequest {
            transaction_id: RFC_TXID,
            use_candidate: false,
            priority: Some(0x6e00_01ff),
            controlling: false, // it carries ICE-CONTROLLED
        }
    );
    assert_eq!(request_username(&RFC_REQUEST), Some("evtj:h6vY"));
    assert!(verify_message(&RFC_REQUEST, RFC_PWD.as_bytes()).is_ok());
    let wrong = IceCredentials::new("evtj", "VOkJxbRl1RmTxUk/WvJxBT", "h6vY");
    assert_eq!(
        check_binding_request(&RFC_REQUEST, &wrong),
        Err(IceError::BadIntegrity)
    );
    // Reversed ufrags (our side's view is local first).
    let reversed = IceCredentials::new("h6vY", RFC_PWD, "evtj");
    assert_eq!(
        check_binding_request(&RFC_REQUEST, &reversed),
        Err(IceError::UnknownUsername)
    );
}

fn rfc_response_case(vector: &[u8], addr: SocketAddr, expected_len: usize) {
    let msg = verify_message(vector, RFC_PWD.as_bytes()).unwrap();
    assert_eq!(msg.class(), StunClass::SuccessResponse);
    assert_eq!(xor_mapped_address(&msg), Some(addr));
    assert_eq!(
        verify_message(vector, b"VOkJxbRl1RmTxUk/WvJxBT").unwrap_err(),
        IceError::BadIntegrity
    );

    let req = BindingRequest {
        transaction_id: RFC_TXID,
        use_candidate: false,
        priority: None,
        controlling: false,
    };
    let mut out = [0u8; 128];
    let n = write_binding_success(&req, addr, &rfc_creds(), &mut out).unwrap();
    assert_eq!(n, expected_len);
    assert!(n <= BINDING_SUCCESS_MAX_LEN);
    let ours = verify_message(&out[..n], RFC_PWD.as_bytes()).unwrap();
    assert_eq!(ours.bytes().len(), n);
    assert_eq!(ours.message_type(), 0x0101);
    assert_eq!(ours.transaction_id(), &RFC_TXID);
    assert_eq!(xor_mapped_address(&ours), Some(addr));
    // The XOR-MAPPED-ADDRESS value is byte-identical to the RFC's.
    assert_eq!(
        ours.attribute(attr::XOR_MAPPED_ADDRESS),
        msg.attribute(attr::XOR_MAPPED_ADDRESS)
    );
    assert_eq!(
        verify_message(&out[..n], b"another password").unwrap_err(),
        IceError::BadIntegrity
    );
}

#[test]
fn rfc5769_ipv4_response() {
    rfc_response_case(&RFC_RESPONSE_V4, "192.0.2.1:32853".parse().unwrap(), 64);
}

#[test]
fn rfc5769_ipv6_response() {
    rfc_response_case(
        &RFC_RESPONSE_V6,
        "[2001:db8:1234:5678:11:2233:4455:6677]:32853"
            .parse()
            .unwrap(),
        76,
    );
}

#[test]
fn client_check_round_trips() {
    let m = good_check();
    assert_eq!(request_username(&m), Some("srvU:cliU"));
    assert_eq!(split_username("srvU:cliU"), Some(("srvU", "cliU")));
    let req = check_binding_request(&m, &creds()).unwrap();
    assert_eq!(
        req,
        BindingRequest {
            transaction_id: TXID,
            use_candidate: true,
            priority: Some(0x6e7f_1eff),
            controlling: true,
        }
    );
    let from: SocketAddr = "127.0.0.1:50000".parse().unwrap();
    let mut out = [0u8; BINDING_SUCCESS_MAX_LEN];
    let n = write_binding_success(&req, from, &creds(), &mut out).unwrap();
    let resp = verify_message(&out[..n], b"server-password-22chars").unwrap();
    assert_eq!(resp.class(), StunClass::SuccessResponse);
    assert_eq!(resp.transaction_id(), &TXID);
    assert_eq!(xor_mapped_address(&resp), Some(from));
    // A response is not a request.
    assert_eq!(
        check_binding_request(&out[..n], &creds()),
        Err(IceError::NotBindingRequest)
    );
    assert_eq!(request_username(&out[..n]), None);

    // Chromium adds comprehension-optional GOOG-* attributes; a consent check (RFC 7675) has no
    // USE-CANDIDATE; trailing datagram bytes are ignored.
    let chromium = client_check(
        b"srvU:cliU",
        "server-password-22chars",
        &[(0xC057, &[0, 1, 0, 10])],
    );
    assert!(
        check_binding_request(&chromium, &creds())
            .unwrap()
            .use_candidate
    );
    let consent = build(
        0x0001,
        &[
            (attr::USERNAME, b"srvU:cliU"),
            (attr::ICE_CONTROLLED, &[9; 8]),
        ],
        Some("server-password-22chars"),
        &[],
        true,
    );
    let c = check_binding_request(&consent, &creds()).unwrap();
    assert!(!c.use_candidate && !c.controlling && c.priority.is_none());
    let mut trailing = m.clone();
    trailing.extend_from_slice(&[0xEE; 7]);
    assert!(check_binding_request(&trailing, &creds()).is_ok());
}

#[test]
fn credential_failures() {
    let m = good_check();
    let wrong_pwd = IceCredentials::new("srvU", "server-password-22charX", "cliU");
    assert_eq!(
        check_binding_request(&m, &wrong_pwd),
        Err(IceError::BadIntegrity)
    );
    for (l, r) in [
        ("srvX", "cliU"),
        ("srvU", "cliX"),
        ("srv", "cliU"),
        ("srvU", "cli"),
        ("srvU:cliU", ""),
    ] {
        let c = IceCredentials::new(l, "server-password-22chars", r);
        assert_eq!(
            check_binding_request(&m, &c),
            Err(IceError::UnknownUsername),
            "{l}:{r}"
        );
    }
    // Correctly signed, but the username lacks the remote part or has extra bytes.
    for user in [
        &b"srvU"[..],
        b"srvU:",
        b"srvU:cliUx",
        b"srvUcliU",
        b"srvU;cliU",
    ] {
        let m = client_check(user, "server-password-22chars", &[]);
        assert_eq!(
            check_binding_request(&m, &creds()),
            Err(IceError::UnknownUsername)
        );
    }
    assert_eq!(IceError::UnknownUsername.error_code(), Some(401));
    assert_eq!(IceError::BadIntegrity.error_code(), Some(401));
    assert_eq!(IceError::MissingUsername.error_code(), Some(400));
    assert_eq!(IceError::BadFingerprint.error_code(), None);
}

#[test]
fn missing_and_misplaced_attributes() {
    let pwd = Some("server-password-22chars");
    let user: (u16, &[u8]) = (attr::USERNAME, b"srvU:cliU");
    let cases: Vec<(Vec<u8>, IceError)> = vec![
        (
            build(1, &[(attr::PRIORITY, &[0, 0, 0, 1])], pwd, &[], true),
            IceError::MissingUsername,
        ),
        // USERNAME after MESSAGE-INTEGRITY is not authenticated.
        (build(1, &[], pwd, &[user], true), IceError::MissingUsername),
        (
            build(1, &[user], None, &[], true),
            IceError::MissingIntegrity,
        ),
        (
            build(1, &[user], pwd, &[], false),
            IceError::MissingFingerprint,
        ),
        (
            build(0x0011, &[user], pwd, &[], true),
            IceError::NotBindingRequest,
        ),
        (
            build(1, &[user, (attr::PRIORITY, &[0, 0, 1])], pwd, &[], true),
            IceError::Malformed,
        ),
        (
            build(1, &[user, (attr::USE_CANDIDATE, &[1])], pwd, &[], true),
            IceError::Malformed,
        ),
        (
            build(1, &[user, (attr::ICE_CONTROLLING, &[0; 4])], pwd, &[], true),
            IceError::Malformed,
        ),
    ];
    for (i, (m, err)) in cases.iter().enumerate() {
        assert_eq!(check_binding_request(m, &creds()), Err(*err), "case {i}");
    }
    // An attribute after FINGERPRINT.
    let mut m = good_check();
    push_attr(&mut m, 0x8022, b"x");
    let l = m.len();
    set_len(&mut m, l - 20);
    assert_eq!(
        check_binding_request(&m, &creds()),
        Err(IceError::Malformed)
    );
    // A truncated attribute header after FINGERPRINT, inside the message length: the attributes
    // must tile the message exactly.
    let mut m = good_check();
    m.extend_from_slice(&[0x80, 0x22, 0x00, 0x40]);
    let l = m.len();
    set_len(&mut m, l - 20);
    assert_eq!(
        check_binding_request(&m, &creds()),
        Err(IceError::Malformed)
    );
    // Garbage and DTLS are not STUN.
    assert_eq!(
        check_binding_request(&[22, 254, 253, 0], &creds()),
        Err(IceError::NotStun)
    );
    assert_eq!(check_binding_request(&[], &creds()), Err(IceError::NotStun));
}

#[test]
fn attributes_after_integrity_are_ignored() {
    let m = build(
        1,
        &[
            (attr::USERNAME, b"srvU:cliU"),
            (attr::ICE_CONTROLLING, &[1; 8]),
        ],
        Some("server-password-22chars"),
        &[(attr::USE_CANDIDATE, &[]), (attr::PRIORITY, &[0, 0, 0, 7])],
        true,
    );
    let req = check_binding_request(&m, &creds()).unwrap();
    assert!(!req.use_candidate);
    assert_eq!(req.priority, None);
    assert!(req.controlling);
}

#[test]
fn fingerprint_mismatch() {
    let mut m = good_check();
    let n = m.len();
    m[n - 1] ^= 0x01;
    assert_eq!(
        check_binding_request(&m, &creds()),
        Err(IceError::BadFingerprint)
    );
    // A FINGERPRINT computed over a different message (the CRC checked before any HMAC).
    let mut m = good_check();
    m[n - 8..].copy_from_slice(&RFC_REQUEST[100..]);
    assert_eq!(
        check_binding_request(&m, &creds()),
        Err(IceError::BadFingerprint)
    );
}

#[test]
fn every_bit_flip_is_rejected() {
    let m = good_check();
    for i in 0..m.len() {
        for bit in 0..8 {
            let mut f = m.clone();
            f[i] ^= 1 << bit;
            assert!(
                check_binding_request(&f, &creds()).is_err(),
                "byte {i} bit {bit}"
            );
        }
    }
}

#[test]
fn every_truncation_is_rejected() {
    let m = good_check();
    for len in 0..m.len() {
        let cut = &m[..len];
        assert!(check_binding_request(cut, &creds()).is_err(), "len {len}");
        if len >= 20 {
            let mut fixed = cut.to_vec();
            set_len(&mut fixed, (len - 20) / 4 * 4);
            assert!(
                check_binding_request(&fixed, &creds()).is_err(),
                "patched {len}"
            );
        }
    }
}

#[test]
fn write_success_buffer_sizes_and_mapped_v4() {
    let req = check_binding_request(&good_check(), &creds()).unwrap();
    let v4: SocketAddr = "192.0.2.7:4000".parse().unwrap();
    let v6: SocketAddr = "[2001:db8::9]:4000".parse().unwrap();
    for (addr, need) in [(v4, 64), (v6, 76)] {
        let mut out = [0u8; 100];
        for size in 0..need {
            assert_eq!(
                write_binding_success(&req, addr, &creds(), &mut out[..size]),
                Err(IceError::BufferTooSmall)
            );
        }
        assert_eq!(
            write_binding_success(&req, addr, &creds(), &mut out),
            Ok(need)
        );
    }
    // A dual-stack socket's view of an IPv4 peer is answered as IPv4.
    let mapped: SocketAddr = "[::ffff:192.0.2.7]:4000".parse().unwrap();
    let mut out = [0u8; 100];
    let n = write_binding_success(&req, mapped, &creds(), &mut out).unwrap();
    assert_eq!(n, 64);
    let resp = verify_message(&out[..n], b"server-password-22chars").unwrap();
    assert_eq!(xor_mapped_address(&resp), Some(v4));
}

#[test]
fn error_response() {
    let mut out = [0u8; 64];
    let n = write_binding_error(&TXID, 401, &mut out).unwrap();
    let msg = StunMessage::parse(&out[..n]).unwrap();
    assert_eq!(msg.bytes().len(), n);
    assert_eq!(msg.class(), StunClass::ErrorResponse);
    assert_eq!(msg.transaction_id(), &TXID);
    assert_eq!(
        msg.attribute(attr::ERROR_CODE),
        Some(&b"\0\0\x04\x01Unauthorized"[..])
    );
    let lay = layout(&msg).unwrap();
    assert!(lay.integrity.is_none());
    assert!(verify_fingerprint(&msg, lay.fingerprint.unwrap()).is_ok());
    let n = write_binding_error(&TXID, 400, &mut out).unwrap();
    let msg = StunMessage::parse(&out[..n]).unwrap();
    assert_eq!(
        msg.attribute(attr::ERROR_CODE),
        Some(&b"\0\0\x04\0Bad Request"[..])
    );
    assert!(verify_fingerprint(&msg, layout(&msg).unwrap().fingerprint.unwrap()).is_ok());
    assert_eq!(
        write_binding_error(&TXID, 200, &mut out),
        Err(IceError::Malformed)
    );
    assert_eq!(
        write_binding_error(&TXID, 401, &mut out[..40]),
        Err(IceError::BufferTooSmall)
    );
}

#[test]
fn consent_expires_exactly_at_30s() {
    let t0 = Instant::now();
    let mut c = Consent::new(t0);
    let nano = Duration::from_nanos(1);
    assert!(!c.expired(t0));
    assert!(!c.expired(t0 + CONSENT_TIMEOUT - nano));
    assert!(c.expired(t0 + CONSENT_TIMEOUT));
    assert_eq!(c.deadline(), Some(t0 + Duration::from_secs(30)));

    let t1 = t0 + Duration::from_secs(20);
    c.refresh(t1);
    assert_eq!(c.last_refresh(), t1);
    assert!(!c.expired(t0 + CONSENT_TIMEOUT));
    assert!(!c.expired(t1 + CONSENT_TIMEOUT - nano));
    assert!(c.expired(t1 + CONSENT_TIMEOUT));
    // An older reading neither moves the refresh back nor counts as expired.
    c.refresh(t0);
    assert_eq!(c.last_refresh(), t1);
    assert!(!c.expired(t0));
}

struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn robustness_no_panic() {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let seeds = [
        good_check(),
        RFC_REQUEST.to_vec(),
        RFC_RESPONSE_V4.to_vec(),
        RFC_RESPONSE_V6.to_vec(),
    ];
    let c = creds();
    let mut out = [0u8; BINDING_SUCCESS_MAX_LEN];
    let mut accepted = 0;
    for i in 0..50_000 {
        let r = rng.next();
        let mut m = if i % 4 == 0 {
            // Random bytes, STUN-looking header half the time.
            let len = (r % 120) as usize;
            let mut m: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            if r & 0x100 != 0 && len >= 20 {
                m[0] = 0;
                m[1] = 1;
                m[2..4].copy_from_slice(&(((len - 20) & !3) as u16).to_be_bytes());
                m[4..8].copy_from_slice(&STUN_MAGIC_COOKIE.to_be_bytes());
            }
            m
        } else {
            let mut m = seeds[(r % 4) as usize].clone();
            for _ in 0..=(r >> 8) % 4 {
                let x = rng.next();
                let idx = (x % m.len() as u64) as usize;
                match (x >> 32) % 4 {
                    0 => m[idx] ^= 1 << ((x >> 40) % 8),
                    1 => m[idx] = (x >> 48) as u8,
                    2 => m.truncate(idx),
                    _ => m.extend_from_slice(&x.to_le_bytes()),
                }
                if m.is_empty() {
                    break;
                }
            }
            m
        };
        if r & 0x200 != 0 && m.len() >= 4 {
            // Keep the length field consistent so parsing gets past the header.
            let l = (m.len() - 20.min(m.len())) & !3;
            set_len(&mut m, l);
        }
        let _ = request_username(&m);
        let _ = verify_message(&m, RFC_PWD.as_bytes());
        if let Ok(req) = check_binding_request(&m, &c) {
            accepted += 1;
            let from = SocketAddr::from(([127, 0, 0, 1], (r >> 16) as u16));
            let size = (r as usize >> 24) % (out.len() + 1);
            if let Ok(n) = write_binding_success(&req, from, &c, &mut out[..size]) {
                assert!(verify_message(&out[..n], c.local_pwd.as_bytes()).is_ok());
            }
        }
    }
    // Mutations past the signed part (e.g. trailing bytes) still verify: the loop saw some.
    assert!(accepted > 0);
}
