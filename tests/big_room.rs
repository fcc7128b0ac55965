//! A big room on one node (issue 12, "Big rooms on one node"): 1,000 plain SRTP listeners and
//! three plain speakers in one room of a real `sluice serve` with two dataplane workers, so the
//! room spans both workers and every speaker reaches the other worker's listeners through the
//! cross-worker rings. Join, leave and slots stay correct: every listener hears every speaker
//! (packets checked by webrtc-srtp); after half the listeners and one speaker are removed, the
//! removed hear nothing more and the others hear a new speaker on the slot the old one freed.

#![deny(unsafe_code)]

mod common;

use std::time::{Duration, Instant};

use common::clients::metric_sum;
use common::plain::{self, Heard};
use common::server::Server;

const KEY: &str = "big-room-test-admin-key-0123456789abcdef";
const LISTENERS: usize = 1000;

fn heard_all(heard: &[Heard], sources: &[u32], packets: u64) -> usize {
    heard
        .iter()
        .filter(|h| {
            h.failed == 0
                && sources
                    .iter()
                    .all(|s| h.per_source.get(s).copied().unwrap_or(0) >= packets)
        })
        .count()
}

#[test]
fn a_thousand_listeners_over_two_workers_hear_every_speaker_through_joins_and_leaves() {
    let s = Server::start_with_workers(2, &["--api-key", KEY]);
    let http = reqwest::blocking::Client::new();
    let made = http
        .post(s.url("/v1/rooms"))
        .bearer_auth(KEY)
        .json(&serde_json::json!({"name": "big", "mode": "sfu", "last_n": 3, "max_participants": 1100}))
        .send()
        .expect("POST /v1/rooms");
    assert_eq!(made.status(), 201);
    let t = Instant::now();
    let ears = plain::add_listeners(&s.base, KEY, "big", "ear", LISTENERS);
    println!(
        "{LISTENERS} plain listeners joined in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let mouths: Vec<_> = (1..=3u32)
        .map(|i| plain::add_speaker(&s.base, KEY, "big", &format!("mouth{i}"), 0x5000 + i))
        .collect();
    let first: Vec<u32> = mouths.iter().map(|m| m.ssrc).collect();

    // Three speakers, three slots: everyone hears all three.
    let before = s.metrics();
    let listening = plain::listen(ears);
    let talking = plain::talk(mouths);
    std::thread::sleep(Duration::from_secs(3));
    let mut mouths = talking.stop();
    std::thread::sleep(Duration::from_millis(300));
    let (heard, ears) = listening.stop_keeping_ears();
    let after = s.metrics();
    let everyone = heard_all(&heard, &first, 100);
    println!("{everyone} of {LISTENERS} listeners heard all three speakers with 100+ packets each");
    assert_eq!(everyone, LISTENERS, "every listener hears every speaker");
    let per_worker =
        |m: &str, w: u32| metric_sum(m, "sluice_packets_out_total", &format!("worker=\"{w}\""));
    for w in 0..2 {
        let sent = per_worker(&after, w) - per_worker(&before, w);
        println!("worker {w} sent {sent} packets");
        assert!(
            sent > 100_000,
            "the room's listeners sit on both workers: worker {w} sent {sent}"
        );
    }
    let crossed = metric_sum(&after, "sluice_relayed_out_total", "")
        - metric_sum(&before, "sluice_relayed_out_total", "");
    assert!(
        crossed >= 400,
        "speakers reach the other worker over the rings: {crossed}"
    );

    // Half the listeners and the third speaker leave; a fourth speaker joins.
    let t = Instant::now();
    let gone: Vec<String> = heard[..LISTENERS / 2]
        .iter()
        .map(|h| h.id.clone())
        .collect();
    let leaving = mouths.pop().expect("the third speaker");
    for id in gone.iter().chain(std::iter::once(&leaving.id)) {
        let r = http
            .delete(s.url(&format!("/v1/rooms/big/participants/{id}")))
            .bearer_auth(KEY)
            .send()
            .expect("DELETE participant");
        assert_eq!(r.status(), 204, "removing {id}");
    }
    println!(
        "{} members left in {:.1} s",
        gone.len() + 1,
        t.elapsed().as_secs_f64()
    );
    mouths.push(plain::add_speaker(&s.base, KEY, "big", "mouth4", 0x5004));
    let second: Vec<u32> = mouths.iter().map(|m| m.ssrc).collect();
    let room: serde_json::Value = http
        .get(s.url("/v1/rooms/big"))
        .bearer_auth(KEY)
        .send()
        .expect("GET room")
        .json()
        .expect("JSON");
    assert_eq!(
        room["participants"].as_array().map(Vec::len),
        Some(LISTENERS / 2 + 3),
        "the room lists who is left"
    );
    // What the first round left unread (the reader may fall behind) is not the second's.
    let mut ears = ears;
    plain::drain(&mut ears);
    let listening = plain::listen(ears);
    let talking = plain::talk(mouths);
    std::thread::sleep(Duration::from_secs(3));
    drop(talking.stop());
    std::thread::sleep(Duration::from_millis(300));
    let heard = listening.stop();
    let (removed, stayed) = heard.split_at(LISTENERS / 2);
    let stray: u64 = removed.iter().flat_map(|h| h.per_source.values()).sum();
    assert_eq!(stray, 0, "removed listeners hear nothing more");
    let everyone = heard_all(stayed, &second, 100);
    println!(
        "{everyone} of {} remaining listeners heard the two speakers and the new one",
        stayed.len()
    );
    assert_eq!(
        everyone,
        stayed.len(),
        "the new speaker takes the slot the old one freed, on both workers"
    );
    assert!(
        stayed
            .iter()
            .all(|h| !h.per_source.contains_key(&leaving.ssrc)),
        "nobody hears the speaker that left"
    );
    assert!(s.terminate().success());
}
