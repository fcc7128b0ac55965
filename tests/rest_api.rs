//! The REST API of a real `sluice serve` process on loopback: the happy path, then every error one by
//! one (each must be the JSON error shape with a fitting status), then a graceful SIGTERM.

#![deny(unsafe_code)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use reqwest::blocking::Client;
use reqwest::StatusCode;
use serde_json::{json, Value};

const KEY: &str = "test-admin-key-0123456789abcdefghijklmnop";

mod common;

use common::server::{serve_command, sigterm, tempdir, Server};

fn http() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

/// Asserts the JSON error shape with `status` and `code`.
fn expect_error(resp: reqwest::blocking::Response, status: StatusCode, code: &str) {
    assert_eq!(resp.status(), status, "status for {code}");
    let body: Value = resp.json().expect("error bodies are JSON");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

#[test]
fn rooms_and_participants_happy_path_then_graceful_stop() {
    let s = Server::start(&["--api-key", KEY]);
    let c = http();
    assert_eq!(
        c.get(s.url("/healthz")).send().unwrap().status(),
        StatusCode::OK
    );

    let r = c
        .post(s.url("/v1/rooms"))
        .bearer_auth(KEY)
        .json(&json!({"name": "standup", "last_n": 4}))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let room: Value = r.json().unwrap();
    assert_eq!(
        (
            room["name"].as_str(),
            room["last_n"].as_u64(),
            room["mode"].as_str()
        ),
        (Some("standup"), Some(4), Some("auto"))
    );

    let r = c
        .post(s.url("/v1/rooms/standup/participants"))
        .bearer_auth(KEY)
        .json(&json!({"name": "alice"}))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let grant: Value = r.json().unwrap();
    let id = grant["id"].as_str().unwrap().to_string();
    let token = grant["token"].as_str().unwrap();
    assert_eq!(token.split('.').count(), 3, "a JWT");
    assert!(grant["signal_url"]
        .as_str()
        .unwrap()
        .starts_with("ws://127.0.0.1:"));
    assert!(grant["signal_url"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/v1/signal?token={token}")));

    let one: Value = c
        .get(s.url("/v1/rooms/standup"))
        .bearer_auth(KEY)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(one["participants"][0]["name"], "alice");
    let all: Value = c
        .get(s.url("/v1/rooms"))
        .bearer_auth(KEY)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(all["rooms"].as_array().unwrap().len(), 1);

    let metrics = c.get(s.url("/metrics")).send().unwrap().text().unwrap();
    assert!(metrics.contains("sluice_rooms 1"), "{metrics}");
    assert!(metrics.contains("sluice_participants 1"), "{metrics}");
    assert!(
        metrics.contains("sluice_packets_in_total{worker=\"0\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("sluice_drops_total{worker=\"0\",reason=\"auth_failed\"} 0"),
        "{metrics}"
    );

    let spec: Value = c
        .get(s.url("/v1/openapi.json"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    for path in [
        "/v1/rooms",
        "/v1/rooms/{room}",
        "/v1/rooms/{room}/participants",
        "/v1/rooms/{room}/participants/{id}",
        "/healthz",
        "/metrics",
    ] {
        assert!(spec["paths"].get(path).is_some(), "openapi lacks {path}");
    }

    assert_eq!(
        c.delete(s.url(&format!("/v1/rooms/standup/participants/{id}")))
            .bearer_auth(KEY)
            .send()
            .unwrap()
            .status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        c.delete(s.url("/v1/rooms/standup"))
            .bearer_auth(KEY)
            .send()
            .unwrap()
            .status(),
        StatusCode::NO_CONTENT
    );
    let status = s.terminate();
    assert!(status.success(), "graceful SIGTERM exits 0: {status:?}");
}

#[test]
fn every_error_is_the_json_error_shape_with_a_fitting_status() {
    let s = Server::start(&["--api-key", KEY]);
    let c = http();
    let rooms = s.url("/v1/rooms");

    // Authentication.
    expect_error(
        c.get(&rooms).send().unwrap(),
        StatusCode::UNAUTHORIZED,
        "missing_api_key",
    );
    expect_error(
        c.get(&rooms).bearer_auth("wrong").send().unwrap(),
        StatusCode::UNAUTHORIZED,
        "bad_api_key",
    );

    // Bad JSON, wrong types, unknown fields, wrong content type.
    let post = |body: &str| {
        c.post(&rooms)
            .bearer_auth(KEY)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .unwrap()
    };
    expect_error(post("{not json"), StatusCode::BAD_REQUEST, "bad_json");
    expect_error(post(r#"{"name": 5}"#), StatusCode::BAD_REQUEST, "bad_json");
    expect_error(
        post(r#"{"name": "a", "colour": "red"}"#),
        StatusCode::BAD_REQUEST,
        "bad_json",
    );
    expect_error(
        c.post(&rooms)
            .bearer_auth(KEY)
            .body(r#"{"name":"a"}"#)
            .send()
            .unwrap(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "bad_json",
    );

    // Invalid values.
    expect_error(
        post(r#"{"name": "has space"}"#),
        StatusCode::BAD_REQUEST,
        "invalid_name",
    );
    expect_error(
        post(r#"{"name": "ok", "last_n": 0}"#),
        StatusCode::BAD_REQUEST,
        "invalid_field",
    );
    expect_error(
        post(r#"{"name": "ok", "mode": "carrier-pigeon"}"#),
        StatusCode::BAD_REQUEST,
        "bad_json",
    );

    // Duplicates, unknown rooms and participants, full rooms.
    assert_eq!(
        post(r#"{"name": "r1", "max_participants": 1}"#).status(),
        StatusCode::CREATED
    );
    expect_error(
        post(r#"{"name": "r1"}"#),
        StatusCode::CONFLICT,
        "duplicate_name",
    );
    expect_error(
        c.get(s.url("/v1/rooms/nope"))
            .bearer_auth(KEY)
            .send()
            .unwrap(),
        StatusCode::NOT_FOUND,
        "unknown_room",
    );
    expect_error(
        c.delete(s.url("/v1/rooms/nope"))
            .bearer_auth(KEY)
            .send()
            .unwrap(),
        StatusCode::NOT_FOUND,
        "unknown_room",
    );
    let join = |room: &str, name: &str| {
        c.post(s.url(&format!("/v1/rooms/{room}/participants")))
            .bearer_auth(KEY)
            .json(&json!({"name": name}))
            .send()
            .unwrap()
    };
    expect_error(join("nope", "x"), StatusCode::NOT_FOUND, "unknown_room");
    assert_eq!(join("r1", "alice").status(), StatusCode::CREATED);
    expect_error(join("r1", "bob"), StatusCode::CONFLICT, "room_full");
    assert_eq!(post(r#"{"name": "r2"}"#).status(), StatusCode::CREATED);
    assert_eq!(join("r2", "alice").status(), StatusCode::CREATED);
    expect_error(join("r2", "alice"), StatusCode::CONFLICT, "duplicate_name");
    expect_error(join("r2", ""), StatusCode::BAD_REQUEST, "invalid_name");
    expect_error(
        c.post(s.url("/v1/rooms/r2/participants"))
            .bearer_auth(KEY)
            .json(&json!({"name": "x", "role": "king"}))
            .send()
            .unwrap(),
        StatusCode::BAD_REQUEST,
        "bad_json",
    );
    expect_error(
        c.delete(s.url("/v1/rooms/r2/participants/p_nope"))
            .bearer_auth(KEY)
            .send()
            .unwrap(),
        StatusCode::NOT_FOUND,
        "unknown_participant",
    );

    // Routing.
    expect_error(
        c.get(s.url("/v2/nothing")).send().unwrap(),
        StatusCode::NOT_FOUND,
        "not_found",
    );
    expect_error(
        c.put(&rooms).bearer_auth(KEY).send().unwrap(),
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );

    // The server is still fine after all that.
    assert_eq!(
        c.get(s.url("/healthz")).send().unwrap().status(),
        StatusCode::OK
    );
    assert!(s.terminate().success());
}

#[test]
fn an_api_key_is_generated_on_first_start_and_kept() {
    let state = tempdir::TempDir::new("key");
    let start = || {
        let mut child = serve_command(&state.0).spawn().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next().unwrap().unwrap();
        assert!(first.contains("listening on http://"), "{first}");
        let second = std::thread::spawn(move || lines.next().and_then(Result::ok));
        std::thread::sleep(Duration::from_millis(500));
        sigterm(&child);
        assert!(child.wait().unwrap().success());
        second.join().unwrap()
    };
    let printed = start().expect("the generated key is printed on first start");
    let key = printed.rsplit(' ').next().unwrap().to_string();
    let stored = std::fs::read_to_string(state.0.join("admin.key")).unwrap();
    assert_eq!(stored.trim(), key);
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(state.0.join("admin.key"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "the key file is private");
    assert_eq!(start(), None, "a kept key is not printed again");
}

#[test]
fn flags_beat_environment_beat_the_config_file() {
    let dir = tempdir::TempDir::new("cfg");
    let cfg = dir.0.join("sluice.toml");
    std::fs::write(
        &cfg,
        "api_key = \"from-file-0123456789abcdefghijklmnop\"\nworkers = 1\nudp_port = 0\nhttp = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    let admin_ok = |env_key: Option<&str>, flag_key: Option<&str>, try_key: &str| -> bool {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
        cmd.args(["serve", "--config"])
            .arg(&cfg)
            .arg("--state-dir")
            .arg(&dir.0);
        cmd.env_remove("SLUICE_API_KEY");
        if let Some(k) = env_key {
            cmd.env("SLUICE_API_KEY", k);
        }
        if let Some(k) = flag_key {
            cmd.args(["--api-key", k]);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let first = BufReader::new(child.stdout.take().unwrap())
            .lines()
            .next()
            .unwrap()
            .unwrap();
        let base = first
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap()
            .to_string();
        let status = http()
            .get(format!("{base}/v1/rooms"))
            .bearer_auth(try_key)
            .send()
            .unwrap()
            .status();
        sigterm(&child);
        assert!(child.wait().unwrap().success());
        status == StatusCode::OK
    };
    assert!(admin_ok(None, None, "from-file-0123456789abcdefghijklmnop"));
    assert!(admin_ok(
        Some("from-env-0123456789abcdefghijklmnopq"),
        None,
        "from-env-0123456789abcdefghijklmnopq"
    ));
    assert!(!admin_ok(
        Some("from-env-0123456789abcdefghijklmnopq"),
        None,
        "from-file-0123456789abcdefghijklmnop"
    ));
    assert!(admin_ok(
        Some("from-env-0123456789abcdefghijklmnopq"),
        Some("from-flag-0123456789abcdefghijklmnop"),
        "from-flag-0123456789abcdefghijklmnop"
    ));

    std::fs::write(&cfg, "colour = \"red\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["serve", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unknown field"),
        "a bad config file is refused clearly"
    );
}

#[test]
fn plain_srtp_transports_forward_through_a_room_and_bad_requests_are_refused() {
    use base64::Engine;
    use sluice_dataplane::srtp::{SrtpContext, SrtpEngine, SrtpKeys, SrtpProfile};
    let b64 = base64::engine::general_purpose::STANDARD;
    let s = Server::start(&["--api-key", KEY]);
    let c = http();
    assert_eq!(
        c.post(s.url("/v1/rooms"))
            .bearer_auth(KEY)
            .json(&json!({"name": "tools"}))
            .send()
            .unwrap()
            .status(),
        StatusCode::CREATED
    );
    let plain = |body: Value| {
        c.post(s.url("/v1/rooms/tools/plain"))
            .bearer_auth(KEY)
            .json(&body)
            .send()
            .unwrap()
    };

    // Refusals.
    expect_error(
        plain(json!({"name": "x", "ssrc": 1, "srtp": {"profile": "rot13", "key": "AAAA"}})),
        StatusCode::BAD_REQUEST,
        "invalid_field",
    );
    expect_error(
        plain(json!({"name": "x", "ssrc": 1, "srtp": {"profile": "aes128gcm", "key": "AAAA"}})),
        StatusCode::BAD_REQUEST,
        "invalid_field",
    );
    expect_error(
        plain(json!({"name": "x", "ssrc": 1, "srtp": {"profile": "aes128gcm", "key": "%%%"}})),
        StatusCode::BAD_REQUEST,
        "invalid_field",
    );
    expect_error(
        plain(json!({"name": "x", "remote": "nowhere"})),
        StatusCode::BAD_REQUEST,
        "invalid_field",
    );
    expect_error(
        plain(json!({"name": "x"})),
        StatusCode::BAD_REQUEST,
        "invalid_field",
    );
    // Plain RTP (no srtp) that would latch its address from unauthenticated packets.
    expect_error(
        plain(json!({"name": "x", "ssrc": 1})),
        StatusCode::BAD_REQUEST,
        "invalid_field",
    );
    expect_error(
        c.post(s.url("/v1/rooms/none/plain"))
            .bearer_auth(KEY)
            .json(&json!({"name": "x", "ssrc": 1, "remote": "127.0.0.1:9"}))
            .send()
            .unwrap(),
        StatusCode::NOT_FOUND,
        "unknown_room",
    );

    // A publisher that latches (no remote), and a listener at a known address.
    let profile = SrtpProfile::AeadAes128Gcm;
    let client_key: Vec<u8> = (0..28u8).collect();
    let srtp = json!({"profile": "aes128gcm", "key": b64.encode(&client_key)});
    let r = plain(json!({"name": "mic", "ssrc": 0x1234, "srtp": srtp, "slots": 0}));
    assert_eq!(r.status(), StatusCode::CREATED);
    let publisher: Value = r.json().unwrap();
    let server: std::net::SocketAddr = publisher["server"].as_str().unwrap().parse().unwrap();
    let listener_sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    listener_sock
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let listener_key: Vec<u8> = (100..128u8).collect();
    let r = plain(json!({
        "name": "recorder", "role": "listener", "remote": listener_sock.local_addr().unwrap().to_string(),
        "srtp": {"profile": "aes128gcm", "key": b64.encode(&listener_key)}, "slots": 1
    }));
    assert_eq!(r.status(), StatusCode::CREATED);
    let listener: Value = r.json().unwrap();
    let slot_ssrc = listener["slot_ssrcs"][0].as_u64().unwrap() as u32;
    let sluice_key = b64
        .decode(listener["srtp"]["key"].as_str().unwrap())
        .unwrap();
    assert_eq!(sluice_key.len(), 28);

    let mut send = SrtpContext::new(
        SrtpEngine::InPlace,
        &SrtpKeys::new(profile, &client_key[..16], &client_key[16..]).unwrap(),
    )
    .unwrap();
    let mut recv = SrtpContext::new(
        SrtpEngine::WebrtcSrtp,
        &SrtpKeys::new(profile, &sluice_key[..16], &sluice_key[16..]).unwrap(),
    )
    .unwrap();
    let mic = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for seq in 0..10u16 {
        let mut p = vec![0x80, 111];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&(seq as u32 * 960).to_be_bytes());
        p.extend_from_slice(&0x1234u32.to_be_bytes());
        p.extend_from_slice(b"recorded audio");
        let len = p.len();
        p.resize(len + 16, 0);
        let n = send.protect_rtp(&mut p, len).unwrap();
        mic.send_to(&p[..n], server).unwrap();
    }
    let mut buf = [0u8; 2048];
    for _ in 0..10 {
        let (n, _) = recv_media(&listener_sock, &mut buf)
            .expect("the recorder receives the publisher's packets");
        let plain_len = recv
            .unprotect_rtp(&mut buf[..n])
            .expect("decrypts with the key sluice returned");
        let hdr = sluice_dataplane::packet::RtpHeader::parse(&buf[..plain_len]).unwrap();
        assert_eq!(hdr.ssrc(), slot_ssrc);
        assert_eq!(hdr.csrcs().next(), Some(0x1234));
        assert_eq!(hdr.payload(), b"recorded audio");
    }
    // Kicking the recorder removes its transport.
    let id = listener["id"].as_str().unwrap();
    c.delete(s.url(&format!("/v1/rooms/tools/participants/{id}")))
        .bearer_auth(KEY)
        .send()
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    listener_sock
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    mic.send_to(&buf[..10], server).unwrap();
    assert!(
        recv_media(&listener_sock, &mut buf).is_err(),
        "nothing after the kick"
    );
    assert!(s.terminate().success());
}

#[test]
fn the_web_page_is_served_and_guests_join_existing_rooms_unless_disabled() {
    let s = Server::start(&["--api-key", KEY]);
    let c = http();
    let page = c.get(s.url("/")).send().unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = page.text().unwrap();
    assert!(
        html.contains("/v1/signal") && html.contains("/join"),
        "the page uses the API"
    );

    // Guests join a room that exists, as speakers, without the API key.
    let join = |room: &str, body: &str| {
        c.post(s.url(&format!("/v1/rooms/{room}/join")))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .unwrap()
    };
    expect_error(
        join("lobby", r#"{"name":"ann"}"#),
        StatusCode::NOT_FOUND,
        "unknown_room",
    );
    c.post(s.url("/v1/rooms"))
        .bearer_auth(KEY)
        .json(&json!({"name": "lobby", "max_participants": 1}))
        .send()
        .unwrap();
    let r = join("lobby", r#"{"name":"ann"}"#);
    assert_eq!(r.status(), StatusCode::CREATED);
    let grant: Value = r.json().unwrap();
    assert_eq!(grant["participant"]["role"], "speaker");
    assert!(grant["signal_url"]
        .as_str()
        .unwrap()
        .ends_with(grant["token"].as_str().unwrap()));
    expect_error(
        join("lobby", r#"{"name":"ann"}"#),
        StatusCode::CONFLICT,
        "duplicate_name",
    );
    expect_error(
        join("lobby", r#"{"name":"bo"}"#),
        StatusCode::CONFLICT,
        "room_full",
    );
    expect_error(
        join("lobby", r#"{"name":""}"#),
        StatusCode::BAD_REQUEST,
        "invalid_name",
    );
    expect_error(
        join("lobby", r#"{"name":"x","role":"listener"}"#),
        StatusCode::BAD_REQUEST,
        "bad_json",
    );
    expect_error(join("lobby", "{"), StatusCode::BAD_REQUEST, "bad_json");
    assert!(s.terminate().success());

    // An application that hands out tokens itself turns guest joins off.
    let s = Server::start(&["--api-key", KEY, "--guest-join", "false"]);
    let c = http();
    c.post(s.url("/v1/rooms"))
        .bearer_auth(KEY)
        .json(&json!({"name": "lobby"}))
        .send()
        .unwrap();
    let r = c
        .post(s.url("/v1/rooms/lobby/join"))
        .json(&json!({"name": "ann"}))
        .send()
        .unwrap();
    expect_error(r, StatusCode::FORBIDDEN, "guest_join_disabled");
    assert!(s.terminate().success());
}

/// Plain transports as ffmpeg and libsrtp-based tools use them: `AES_CM_128_HMAC_SHA1_32` (a 4-byte
/// SRTP tag, the 30-byte key||salt; webrtc-srtp on both client ends is the independent check), and
/// RTCP that is not multiplexed: from the next port (latched once it authenticates) or from a
/// configured `rtcp_remote`.
#[test]
fn plain_transports_speak_aes_cm_sha1_32_and_take_rtcp_from_another_port() {
    use base64::Engine;
    use sluice_dataplane::srtp::{SrtpContext, SrtpEngine, SrtpKeys, SrtpProfile};
    let b64 = base64::engine::general_purpose::STANDARD;
    let s = Server::start(&["--api-key", KEY]);
    let c = http();
    let created = c
        .post(s.url("/v1/rooms"))
        .bearer_auth(KEY)
        .json(&json!({"name": "ffmpeg"}))
        .send()
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let plain = |body: Value| -> Value {
        let r = c
            .post(s.url("/v1/rooms/ffmpeg/plain"))
            .bearer_auth(KEY)
            .json(&body)
            .send()
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        r.json().unwrap()
    };
    let profile = SrtpProfile::Aes128CmHmacSha1_32;
    let keys = |k: &[u8]| SrtpKeys::new(profile, &k[..16], &k[16..]).unwrap();
    let mic_key: Vec<u8> = (0..30u8).collect();
    let publisher = plain(json!({"name": "mic", "ssrc": 0x5150,
        "srtp": {"profile": "AES_CM_128_HMAC_SHA1_32", "key": b64.encode(&mic_key)}, "slots": 0}));
    assert_eq!(publisher["srtp"]["profile"], "aescm32");
    let server: std::net::SocketAddr = publisher["server"].as_str().unwrap().parse().unwrap();
    let rec = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    rec.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    // The recorder says where its RTCP comes from: any port.
    let rec_rtcp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let rec_key: Vec<u8> = (100..130u8).collect();
    let recorder = plain(json!({"name": "rec", "role": "listener",
        "remote": rec.local_addr().unwrap().to_string(), "slots": 1,
        "rtcp_remote": rec_rtcp.local_addr().unwrap().to_string(),
        "srtp": {"profile": "aescm32", "key": b64.encode(&rec_key)}}));
    let sluice_key = b64
        .decode(recorder["srtp"]["key"].as_str().unwrap())
        .unwrap();
    assert_eq!(sluice_key.len(), 30, "16-byte key and 14-byte salt");
    let mut send = SrtpContext::new(SrtpEngine::WebrtcSrtp, &keys(&mic_key)).unwrap();
    let mut recv = SrtpContext::new(SrtpEngine::WebrtcSrtp, &keys(&sluice_key)).unwrap();
    // ffmpeg cannot multiplex RTCP: it sends it from the port after its RTP port.
    let (mic, mic_rtcp) = loop {
        let rtp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let next = rtp.local_addr().unwrap().port() + 1;
        if let Ok(rtcp) = std::net::UdpSocket::bind(("127.0.0.1", next)) {
            break (rtp, rtcp);
        }
    };
    let mut buf = [0u8; 2048];
    for seq in 0..10u16 {
        let mut p = vec![0x80, 111];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&(u32::from(seq) * 960).to_be_bytes());
        p.extend_from_slice(&0x5150u32.to_be_bytes());
        p.extend_from_slice(b"ffmpeg opus");
        let len = p.len();
        p.resize(len + 4, 0);
        assert_eq!(send.protect_rtp(&mut p, len).unwrap(), len + 4);
        mic.send_to(&p, server).unwrap();
        let (n, _) = recv_media(&rec, &mut buf).expect("the recorder hears the mic");
        let plain_len = recv.unprotect_rtp(&mut buf[..n]).expect("decrypts");
        assert_eq!(n, plain_len + 4, "a 32-bit tag on what sluice sends too");
        let hdr = sluice_dataplane::packet::RtpHeader::parse(&buf[..plain_len]).unwrap();
        assert_eq!(hdr.csrcs().next(), Some(0x5150));
        assert_eq!(hdr.payload(), b"ffmpeg opus");
    }
    // A sender report from the next port: an authenticated one is taken (and that port latched),
    // one with another key is an auth_failed drop; neither is an unknown_source.
    let sr = |ctx: &mut SrtpContext| {
        let mut p = vec![0x80, 200, 0, 6];
        p.extend_from_slice(&0x5150u32.to_be_bytes());
        p.extend_from_slice(&[0u8; 20]);
        let len = p.len();
        p.resize(len + 14, 0);
        let n = ctx.protect_rtcp(&mut p, len).unwrap();
        p.truncate(n);
        p
    };
    let mut stranger = SrtpContext::new(SrtpEngine::WebrtcSrtp, &keys(&[7u8; 30])).unwrap();
    mic_rtcp.send_to(&sr(&mut stranger), server).unwrap();
    mic_rtcp.send_to(&sr(&mut send), server).unwrap();
    mic_rtcp.send_to(&sr(&mut send), server).unwrap();
    let mut rec_ctx = SrtpContext::new(SrtpEngine::WebrtcSrtp, &keys(&rec_key)).unwrap();
    let rec_server: std::net::SocketAddr = recorder["server"].as_str().unwrap().parse().unwrap();
    rec_rtcp.send_to(&sr(&mut rec_ctx), rec_server).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let metrics = c.get(s.url("/metrics")).send().unwrap().text().unwrap();
    let total = |pattern: &str| -> u64 {
        metrics
            .lines()
            .filter(|l| !l.starts_with('#') && l.contains(pattern))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    };
    assert_eq!(total("sluice_rtcp_in_total"), 3, "{metrics}");
    assert_eq!(total("reason=\"auth_failed\""), 1, "{metrics}");
    assert_eq!(total("reason=\"unknown_source\""), 0, "{metrics}");
    assert!(s.terminate().success());
}

#[test]
fn a_plain_speaker_may_not_take_an_ssrc_another_member_publishes_with() {
    let s = Server::start(&["--api-key", KEY]);
    let c = http();
    let created = c
        .post(s.url("/v1/rooms"))
        .bearer_auth(KEY)
        .json(&json!({"name": "tools"}))
        .send()
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let plain = |name: &str, ssrc: u32| {
        c.post(s.url("/v1/rooms/tools/plain"))
            .bearer_auth(KEY)
            .json(&json!({"name": name, "ssrc": ssrc, "slots": 0, "remote": "127.0.0.1:9"}))
            .send()
            .unwrap()
    };
    assert_eq!(plain("first", 0x7000).status(), StatusCode::CREATED);
    expect_error(plain("second", 0x7000), StatusCode::CONFLICT, "ssrc_in_use");
    // The refused one holds no seat: its name is free, and another SSRC works.
    assert_eq!(plain("second", 0x7001).status(), StatusCode::CREATED);
    assert!(s.terminate().success());
}

/// The next RTP datagram on `sock`, skipping the sender reports sluice sends on each slot stream
/// once a second (RTCP per hop).
fn recv_media(
    sock: &std::net::UdpSocket,
    buf: &mut [u8],
) -> std::io::Result<(usize, std::net::SocketAddr)> {
    loop {
        let (n, from) = sock.recv_from(buf)?;
        if !sluice_dataplane::packet::is_rtcp(&buf[..n]) {
            return Ok((n, from));
        }
    }
}
