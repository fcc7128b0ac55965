//! `Forwarder::on_datagram` on a set-up room: an AES-GCM publisher, three subscribers and a WebRTC
//! transport with ICE credentials. The first byte picks the source address (the publisher's, a
//! subscriber's, the WebRTC client's or a stranger's), the rest is the datagram; the publisher's
//! valid packets keep flowing between inputs. Every datagram must be counted once, whatever it is.
#![no_main]

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use sluice_dataplane::ice::IceCredentials;
use sluice_dataplane::outbox::Outbox;
use sluice_dataplane::srtp::{SrtpEngine, SrtpProfile};
use sluice_dataplane::testkit::{fixture_addr, RoomFixture};
use sluice_dataplane::topology::{Membership, TopologyUpdate, TransportConfig};

struct State {
    room: RoomFixture,
    out: Outbox,
    start: Instant,
}

static STATE: Mutex<Option<State>> = Mutex::new(None);

fn setup() -> State {
    let mut room = RoomFixture::new(SrtpEngine::InPlace, Some(SrtpProfile::AeadAes128Gcm), 3)
        .expect("fixture");
    for u in [
        TopologyUpdate::AddTransport(Box::new(TransportConfig {
            id: 99,
            remote: None,
            keys: None,
            latch_ssrcs: vec![],
            audio_level_ext: Some(1),
            ice: Some(IceCredentials::new("srvU", "server-password-1234567", "cliU")),
            rtcp_remote: None,
        })),
        TopologyUpdate::Join(Box::new(Membership {
            room: 1,
            transport: 99,
            learn_ssrc: true,
            slot_ssrcs: vec![0x9999],
            ..Default::default()
        })),
    ] {
        room.core.apply(u).expect("topology");
    }
    State { room, out: Outbox::with_capacity(64), start: Instant::now() }
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else { return };
    let mut guard = STATE.lock().unwrap_or_else(|e| e.into_inner());
    let st = guard.get_or_insert_with(setup);
    let from = match sel % 4 {
        0 => fixture_addr(0),
        1 => fixture_addr(1),
        2 => SocketAddr::from(([127, 0, 0, 1], 5555)),
        _ => SocketAddr::from(([10, 9, 8, 7], 1234)),
    };
    let now = st.start + std::time::Duration::from_millis(u64::from(sel) * 20);
    let mut buf = rest.to_vec();
    st.room.core.on_datagram(now, from, &mut buf, &mut st.out);
    st.out.clear();
    let mut pkt = [0u8; 1500];
    if let Ok(n) = st.room.source.next_packet(&mut pkt) {
        st.room.core.on_datagram(now, fixture_addr(0), &mut pkt[..n], &mut st.out);
        st.out.clear();
    }
    let _ = st.room.core.drain_upcalls().count();
    let _ = st.room.core.expire_consent(now);
});
