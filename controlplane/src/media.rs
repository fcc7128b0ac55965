//! Media sessions: what ties a participant's signaling to the dataplane. An `offer` becomes a WebRTC
//! transport on a worker (ICE-lite credentials, no keys yet) and an SDP answer; DTLS datagrams the
//! worker sends up are fed to that transport's DTLS server, its flights go back down, and once the
//! handshake completes the SRTP keys are installed and the transport joins its room with its speaker
//! slots. An upcall pump thread drives all of it; nothing here touches the packet path.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use sluice_dataplane::ice::IceCredentials;
use sluice_dataplane::srtp::SrtpProfile;
use sluice_dataplane::topology::{
    EgressFormat, Membership, RoomId, TransportConfig, TransportId, TransportKeys, Upcall,
};
use sluice_dataplane::Dataplane;

use crate::dtls::{DtlsCertificate, DtlsContext, DtlsEvent, DtlsServer};
use crate::heartbeat::Heartbeat;
use crate::hub::Hub;
use crate::links::{LinkQuality, LinkSummary, Links};
use crate::messages::{ServerMsg, SlotInfo};
use crate::sdp::{self, AnswerParams, SdpError};

mod legs;
pub use legs::{LegEnd, LEG_LEVEL_EXT, LEG_PAYLOAD_TYPE};

/// SRTP profiles in our order of preference (RFC 7714 GCM first: cheaper and authenticated encryption).
pub const PROFILES: [SrtpProfile; 3] = [
    SrtpProfile::AeadAes128Gcm,
    SrtpProfile::AeadAes256Gcm,
    SrtpProfile::Aes128CmHmacSha1_80,
];

/// Why an offer was refused (sent back as a signaling `error`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MediaError {
    /// The SDP cannot be served.
    #[error("{0}")]
    Sdp(#[from] SdpError),
    /// The offer's fingerprint is unusable.
    #[error("bad fingerprint in the offer: {0}")]
    Fingerprint(String),
    /// The dataplane refused.
    #[error("dataplane: {0}")]
    Dataplane(String),
    /// The offer declares an SSRC another member of the room already publishes with.
    #[error("SSRC {0} is already used by another member of this room: offer with another a=ssrc")]
    SsrcInUse(u32),
}

/// The workers hung up.
struct Gone;

/// `active_speakers` as members see it: who speaks, most recent first, with the room's dominant
/// speaker (who holds the floor, `crate::dominant` in the dataplane) moved to the front when it
/// speaks, so a cough from someone else never puts them first.
pub fn dominant_first(mut ids: Vec<String>, dominant: Option<&str>) -> Vec<String> {
    if let Some(i) = dominant.and_then(|d| ids.iter().position(|p| p == d)) {
        let d = ids.remove(i);
        ids.insert(0, d);
    }
    ids
}

/// The next upcall, control ones first (consent lost, slots, SSRCs, speaking: never behind DTLS),
/// waiting at most `timeout` for either channel. `Ok(None)`: nothing came.
fn next_upcall(
    control: &crossbeam_channel::Receiver<Upcall>,
    dtls: &crossbeam_channel::Receiver<Upcall>,
    timeout: Duration,
) -> Result<Option<Upcall>, Gone> {
    use crossbeam_channel::TryRecvError;
    for round in 0..2 {
        match control.try_recv() {
            Ok(u) => return Ok(Some(u)),
            Err(TryRecvError::Disconnected) => return Err(Gone),
            Err(TryRecvError::Empty) => {}
        }
        match dtls.try_recv() {
            Ok(u) => return Ok(Some(u)),
            Err(TryRecvError::Disconnected) => return Err(Gone),
            Err(TryRecvError::Empty) => {}
        }
        if round == 0 {
            let mut sel = crossbeam_channel::Select::new();
            sel.recv(control);
            sel.recv(dtls);
            if sel.ready_timeout(timeout).is_err() {
                return Ok(None);
            }
        }
    }
    Ok(None)
}

/// A transport's warnings about DTLS it could not use are logged at most this often.
const DTLS_WARN_INTERVAL: Duration = Duration::from_secs(10);
/// A connected session's OpenSSL state is freed once its client has sent no DTLS for this long
/// (it would have retransmitted its last flight within it, had ours been lost: its timer starts
/// at 1 s or less and doubles).
const DTLS_RELEASE_AFTER: Duration = Duration::from_secs(8);

/// How long after a publisher changed SSRC its packets on the old SSRC are taken for late ones
/// rather than a change back.
const SSRC_SWITCH_BACK: Duration = Duration::from_secs(2);

struct Session {
    room: String,
    participant: String,
    worker: usize,
    dtls: DtlsServer,
    /// May publish (not a listener): then its SSRC is learned from its traffic when the offer
    /// declared none, and followed when the sender changes it.
    publishes: bool,
    publish_ssrc: Option<u32>,
    /// The mid of its microphone section.
    publish_mid: Option<String>,
    /// The SSRC it published with before its last change, and when that changed: late packets of
    /// the old stream must not switch it back.
    retired_ssrc: Option<(u32, Instant)>,
    slot_ssrcs: Vec<u32>,
    slot_mids: Vec<String>,
    /// The source SSRC on each slot, as the worker last reported it.
    slot_sources: Vec<Option<u32>>,
    egress: EgressFormat,
    connected: bool,
    /// When the offer created it.
    created: Instant,
    /// When a DTLS warning about this transport was last logged, and how many were held back
    /// since (malformed records are logged at most every [`DTLS_WARN_INTERVAL`] per transport).
    dtls_warned: Option<Instant>,
    dtls_warnings_held: u64,
}

/// An SSRC reserved by an offer still being set up (`Media::reserve_ssrc`): released on drop
/// unless kept.
struct SsrcReservation<'a> {
    media: &'a Media,
    key: Option<(String, u32)>,
}

impl SsrcReservation<'_> {
    /// The offer succeeded: the SSRC stays the participant's.
    fn keep(mut self) {
        self.key = None;
    }
}

impl Drop for SsrcReservation<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.media.publishers().remove(&key);
        }
    }
}

/// A plain transport's owner.
struct Plain {
    room: String,
    participant: String,
    worker: usize,
}

/// The longest the media thread waits for an upcall before it goes round its loop again.
pub const PUMP_WAIT: Duration = Duration::from_millis(50);

/// A media thread that has not gone round its loop for this long counts as stuck.
pub const PUMP_STALLED_AFTER: Duration = Duration::from_secs(1);

/// The running media thread ([`Media::start_pump`]) and its sign of life.
#[derive(Debug)]
pub struct MediaPump {
    thread: std::thread::JoinHandle<()>,
    heartbeat: Arc<Heartbeat>,
}

/// What `/healthz` makes of the media thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaHealth {
    /// It went round its loop within [`PUMP_STALLED_AFTER`].
    Running,
    /// It has ended (a panic, or the dataplane is gone).
    Stopped,
    /// It is alive but has not gone round its loop for this long.
    Stalled(Duration),
}

impl MediaPump {
    /// The media thread's state at `now`.
    pub fn health(&self, now: Instant) -> MediaHealth {
        if self.thread.is_finished() {
            return MediaHealth::Stopped;
        }
        match self.heartbeat.since(now) {
            since if since > PUMP_STALLED_AFTER => MediaHealth::Stalled(since),
            _ => MediaHealth::Running,
        }
    }
}

/// Every media session of the server.
pub struct Media {
    dataplane: Arc<Dataplane>,
    cert: DtlsCertificate,
    /// The OpenSSL context every session shares.
    dtls: DtlsContext,
    public_ip: Option<IpAddr>,
    sessions: Mutex<HashMap<TransportId, Session>>,
    /// Plain RTP/SRTP transports.
    plain: Mutex<HashMap<TransportId, Plain>>,
    /// Who publishes with an SSRC, by (room, SSRC): names slot sources for `slots`.
    publishers: Mutex<HashMap<(String, u32), String>>,
    /// Participants muted by their own `mute`, by (room, participant): a new transport of theirs
    /// (a renegotiation) starts muted too.
    muted: Mutex<std::collections::HashSet<(String, String)>>,
    /// Who speaks in each room, most recent first (`active_speakers`, where the room's dominant
    /// speaker comes first).
    speakers: Mutex<HashMap<String, Vec<String>>>,
    /// Each room's dominant speaker, as the workers' detectors last said (`Upcall::Dominant`).
    dominant: Mutex<HashMap<String, String>>,
    /// Where room news goes (`slots`, `active_speakers`).
    hub: Arc<Hub>,
    room_ids: Mutex<HashMap<String, RoomId>>,
    next_transport: AtomicU64,
    next_worker: AtomicUsize,
    /// When to give freed handshake memory back to the kernel.
    trims: Mutex<crate::heap_trim::TrimSchedule>,
    dtls_failures: AtomicU64,
    /// Completed handshakes by (SRTP profile, DTLS version): what clients negotiate.
    negotiated: Mutex<std::collections::BTreeMap<(&'static str, &'static str), u64>>,
    /// Every transport's link from RTCP, and when the worst downstream loss is next handed to
    /// publishers.
    links: Mutex<(Links, Instant)>,
    /// Relay legs to other nodes of cascaded rooms (`legs`).
    legs: Mutex<HashMap<TransportId, legs::Leg>>,
    /// The (room, SSRC) entries of `publishers` that other nodes publish.
    remote: Mutex<std::collections::HashSet<(String, u32)>>,
}

fn random_token(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    (0..len)
        .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
        .collect()
}

impl Media {
    /// Sessions over `dataplane`, with a fresh DTLS certificate; room news goes to `hub`.
    pub fn new(
        dataplane: Arc<Dataplane>,
        public_ip: Option<IpAddr>,
        hub: Arc<Hub>,
    ) -> Result<Arc<Self>, crate::dtls::DtlsError> {
        let cert = DtlsCertificate::generate()?;
        Ok(Arc::new(Self {
            dataplane,
            dtls: DtlsContext::new(&cert, &PROFILES)?,
            cert,
            public_ip,
            sessions: Mutex::new(HashMap::new()),
            plain: Mutex::new(HashMap::new()),
            publishers: Mutex::new(HashMap::new()),
            muted: Mutex::new(Default::default()),
            speakers: Mutex::new(HashMap::new()),
            dominant: Mutex::new(HashMap::new()),
            hub,
            room_ids: Mutex::new(HashMap::new()),
            next_transport: AtomicU64::new(1),
            next_worker: AtomicUsize::new(0),
            trims: Mutex::default(),
            dtls_failures: AtomicU64::new(0),
            negotiated: Mutex::new(Default::default()),
            links: Mutex::new((Links::default(), Instant::now())),
            legs: Mutex::new(HashMap::new()),
            remote: Mutex::new(Default::default()),
        }))
    }

    fn sessions(&self) -> MutexGuard<'_, HashMap<TransportId, Session>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn plain(&self) -> MutexGuard<'_, HashMap<TransportId, Plain>> {
        self.plain.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn publishers(&self) -> MutexGuard<'_, HashMap<(String, u32), String>> {
        self.publishers.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn legs(&self) -> MutexGuard<'_, HashMap<TransportId, legs::Leg>> {
        self.legs.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn remote_names(&self) -> MutexGuard<'_, std::collections::HashSet<(String, u32)>> {
        self.remote.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The name of the room the dataplane knows as `id`.
    fn room_name(&self, id: RoomId) -> Option<String> {
        let ids = self.room_ids.lock().unwrap_or_else(|e| e.into_inner());
        ids.iter().find(|(_, &v)| v == id).map(|(k, _)| k.clone())
    }

    fn links(&self) -> MutexGuard<'_, (Links, Instant)> {
        self.links.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn speakers(&self) -> MutexGuard<'_, HashMap<String, Vec<String>>> {
        self.speakers.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn room_id(&self, room: &str) -> RoomId {
        let mut ids = self.room_ids.lock().unwrap_or_else(|e| e.into_inner());
        let next = ids.len() as u64 + 1;
        *ids.entry(room.to_string()).or_insert(next)
    }

    /// The address clients reach worker `worker` at: its socket's, with the public IP if one is set.
    fn public_addr(&self, worker: usize) -> Result<SocketAddr, MediaError> {
        let mut addr = self
            .dataplane
            .worker_addr(worker)
            .ok_or_else(|| MediaError::Dataplane(format!("no worker {worker}")))?;
        if let Some(ip) = self.public_ip {
            addr.set_ip(ip);
        }
        Ok(addr)
    }

    /// Handles a participant's offer: creates its transport and returns the SDP answer and the mids
    /// of its slots.
    pub fn offer(
        &self,
        room: &str,
        participant: &str,
        offer_sdp: &str,
        audio_slots: u32,
        publishes: bool,
    ) -> Result<(String, Vec<String>), MediaError> {
        let offer = sdp::parse_offer(offer_sdp)?;
        // A new offer replaces the participant's previous transport.
        self.drop_transports(room, participant);

        let worker = self.next_worker.fetch_add(1, Ordering::Relaxed) % self.dataplane.workers();
        let id = self.next_transport.fetch_add(1, Ordering::Relaxed);
        let (ufrag, pwd) = (random_token(8), random_token(24));
        let mids = sdp::slot_mids(&offer);
        let slots = mids.len().min(audio_slots as usize);
        let slot_ssrcs: Vec<u32> = (0..slots).map(|_| rand::random()).collect();
        // A listener's packets are dropped (counted as `muted`) and it never takes a slot.
        let publish_ssrc = offer
            .sections
            .iter()
            .find_map(|s| s.ssrc)
            .filter(|_| publishes);
        // Checked and reserved in one step: two offers racing for one SSRC cannot both win.
        let reservation = self.reserve_ssrc(room, participant, publish_ssrc)?;
        let publish_mid = sdp::mic_mid(&offer).filter(|_| publishes);
        let candidate = self.public_addr(worker)?;
        let answer = sdp::write_answer(
            &offer,
            &AnswerParams {
                ice_ufrag: &ufrag,
                ice_pwd: &pwd,
                fingerprint: self.cert.fingerprint(),
                candidate,
                slot_ssrcs: &slot_ssrcs,
                cname: "sluice",
            },
        )?;
        let dtls = DtlsServer::with_context(&self.dtls, offer.fingerprint.clone())
            .map_err(|e| MediaError::Fingerprint(e.to_string()))?;
        self.dataplane
            .add_transport(
                worker,
                TransportConfig {
                    id,
                    remote: None,
                    keys: None,
                    latch_ssrcs: vec![],
                    audio_level_ext: offer.audio_level_ext,
                    ice: Some(
                        IceCredentials::new(ufrag, pwd, offer.ice_ufrag.clone())
                            .with_remote_pwd(offer.ice_pwd.clone()),
                    ),
                    rtcp_remote: None,
                },
            )
            .map_err(|e| MediaError::Dataplane(e.to_string()))?;
        // The client may send its first check the moment it reads the answer: the worker must know
        // the credentials by then (it applies commands between receive batches, a few µs away).
        self.dataplane
            .sync_worker(worker)
            .map_err(|e| MediaError::Dataplane(e.to_string()))?;
        reservation.keep();
        self.sessions().insert(
            id,
            Session {
                room: room.to_string(),
                participant: participant.to_string(),
                worker,
                dtls,
                publishes,
                publish_ssrc,
                publish_mid,
                retired_ssrc: None,
                slot_sources: vec![None; slot_ssrcs.len()],
                slot_ssrcs,
                slot_mids: mids.iter().take(slots).cloned().collect(),
                egress: EgressFormat {
                    payload_type: Some(offer.opus_pt),
                    mid_ext: offer.mid_ext,
                    audio_level_ext: offer.audio_level_ext,
                },
                connected: false,
                created: Instant::now(),
                dtls_warned: None,
                dtls_warnings_held: 0,
            },
        );
        tracing::info!(room, participant, transport = id, worker, "offer answered");
        Ok((answer, mids.into_iter().take(slots).collect()))
    }

    /// Forgets a participant that left the room (leave, kick, disconnect): its transports and state.
    pub fn remove_participant(&self, room: &str, participant: &str) {
        self.drop_transports(room, participant);
        self.muted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(room.to_string(), participant.to_string()));
    }

    /// Removes a participant's transports (it left, or a new offer replaces them).
    fn drop_transports(&self, room: &str, participant: &str) {
        let gone: Vec<(TransportId, usize)> = {
            let mut sessions = self.sessions();
            let ids: Vec<TransportId> = sessions
                .iter()
                .filter(|(_, s)| s.room == room && s.participant == participant)
                .map(|(&id, _)| id)
                .collect();
            let mut gone: Vec<(TransportId, usize)> = ids
                .into_iter()
                .filter_map(|id| sessions.remove(&id).map(|s| (id, s.worker)))
                .collect();
            self.plain().retain(|&id, p| {
                let keep = !(p.room == room && p.participant == participant);
                if !keep {
                    gone.push((id, p.worker));
                }
                keep
            });
            gone
        };
        self.publishers()
            .retain(|(r, _), p| !(r == room && p == participant));
        self.set_speaking(room, participant, false);
        for (id, worker) in gone {
            self.links().0.remove(id);
            if let Err(e) = self.dataplane.remove_transport(worker, id) {
                tracing::warn!(transport = id, error = %e, "removing a transport");
            }
        }
    }

    /// Adds a plain RTP/SRTP transport for a participant (tools, recorders, load generators, relays)
    /// and puts it in its room. `keys`: what the remote sends with (`inbound`) and what we send with
    /// (`outbound`); `None` for plain RTP. Without `remote`, the address is latched from the first
    /// authenticated packet carrying `ssrc`; `rtcp_remote` is where the tool sends RTCP from when it
    /// does not multiplex it (else the next port is latched). Returns the worker address to send to
    /// and the slot SSRCs.
    #[allow(clippy::too_many_arguments)]
    pub fn add_plain(
        &self,
        room: &str,
        participant: &str,
        keys: Option<TransportKeys>,
        (remote, rtcp_remote): (Option<SocketAddr>, Option<SocketAddr>),
        ssrc: Option<u32>,
        publishes: bool,
        slots: usize,
    ) -> Result<(SocketAddr, Vec<u32>), MediaError> {
        let reservation = self.reserve_ssrc(room, participant, ssrc.filter(|_| publishes))?;
        let worker = self.next_worker.fetch_add(1, Ordering::Relaxed) % self.dataplane.workers();
        let id = self.next_transport.fetch_add(1, Ordering::Relaxed);
        let slot_ssrcs: Vec<u32> = (0..slots).map(|_| rand::random()).collect();
        self.install(
            worker,
            TransportConfig {
                id,
                remote,
                keys,
                latch_ssrcs: ssrc.into_iter().collect(),
                audio_level_ext: None,
                ice: None,
                rtcp_remote,
            },
            Membership {
                room: self.room_id(room),
                transport: id,
                publish_ssrc: if publishes { ssrc } else { None },
                slot_ssrcs: slot_ssrcs.clone(),
                ..Default::default()
            },
        )?;
        self.plain().insert(
            id,
            Plain {
                room: room.to_string(),
                participant: participant.to_string(),
                worker,
            },
        );
        reservation.keep();
        let server = self.public_addr(worker)?;
        tracing::info!(
            room,
            participant,
            transport = id,
            worker,
            "plain transport added"
        );
        Ok((server, slot_ssrcs))
    }

    /// Adds a transport that is set up at once (no handshake: plain transports, relay legs) and
    /// puts it in its room on `worker`, waiting until the worker applied both.
    fn install(
        &self,
        worker: usize,
        transport: TransportConfig,
        membership: Membership,
    ) -> Result<(), MediaError> {
        let dp = |e: sluice_dataplane::DataplaneError| MediaError::Dataplane(e.to_string());
        self.dataplane
            .add_transport(worker, transport)
            .map_err(dp)?;
        self.dataplane.join(worker, membership).map_err(dp)?;
        self.dataplane.sync_worker(worker).map_err(dp)
    }

    /// Removes the WebRTC transports of `room` created before `before` (a room back on P2P: its
    /// members moved their audio to the mesh and closed these, which would otherwise linger until
    /// ICE consent expires). Returns how many went.
    pub fn remove_sessions_before(&self, room: &str, before: Instant) -> usize {
        let gone: Vec<(TransportId, usize, String)> = {
            let mut sessions = self.sessions();
            let ids: Vec<TransportId> = sessions
                .iter()
                .filter(|(_, s)| s.room == room && s.created < before)
                .map(|(&id, _)| id)
                .collect();
            ids.into_iter()
                .filter_map(|id| sessions.remove(&id).map(|s| (id, s.worker, s.participant)))
                .collect()
        };
        for (id, worker, participant) in &gone {
            if let Err(e) = self.dataplane.remove_transport(*worker, *id) {
                tracing::warn!(transport = id, error = %e, "removing a transport");
            }
            self.publishers()
                .retain(|(r, _), p| !(r == room && p == participant));
            self.set_speaking(room, participant, false);
        }
        gone.len()
    }

    /// Removes every transport of a room.
    pub fn remove_room(&self, room: &str) {
        let mut people: Vec<String> = self
            .sessions()
            .values()
            .filter(|s| s.room == room)
            .map(|s| s.participant.clone())
            .collect();
        people.extend(
            self.plain()
                .values()
                .filter(|p| p.room == room)
                .map(|p| p.participant.clone()),
        );
        for p in people {
            self.remove_participant(room, &p);
        }
        for leg in self.legs_of(room) {
            self.remove_leg(leg);
        }
        self.set_remote_publishers(room, &[]);
        self.speakers().remove(room);
        self.dominant
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(room);
    }

    /// Handles one upcall from a worker.
    fn on_upcall(&self, upcall: Upcall) {
        match upcall {
            Upcall::Dtls {
                transport,
                datagram,
                ..
            } => self.on_dtls(transport, &datagram),
            Upcall::ConsentExpired { transport, .. } => {
                let gone = self.sessions().remove(&transport);
                if let Some(s) = gone {
                    tracing::info!(room = %s.room, participant = %s.participant, "ICE consent lost");
                    self.set_speaking(&s.room, &s.participant, false);
                    // Not silently: the client can offer again on the same signaling socket.
                    self.hub.send_to(
                        &s.room,
                        &s.participant,
                        ServerMsg::Error {
                            code: "transport_lost",
                            message: "no ICE check and no authenticated media for 30 s: the media \
                                      transport was removed; send a new offer"
                                .into(),
                        },
                    );
                }
            }
            Upcall::SlotChanged {
                transport,
                slot,
                source,
                ..
            } => self.on_slot_changed(transport, usize::from(slot), source),
            Upcall::PublishSsrc {
                transport, ssrc, ..
            } => self.on_publish_ssrc(transport, ssrc),
            Upcall::Speaking {
                transport,
                speaking,
                ..
            } => {
                let owner = self
                    .sessions()
                    .get(&transport)
                    .map(|s| (s.room.clone(), s.participant.clone()))
                    .or_else(|| {
                        self.plain()
                            .get(&transport)
                            .map(|p| (p.room.clone(), p.participant.clone()))
                    });
                if let Some((room, participant)) = owner {
                    self.set_speaking(&room, &participant, speaking);
                }
            }
            Upcall::Link {
                transport, report, ..
            } => {
                if !self.is_leg(transport) {
                    self.links().0.on_report(transport, &report, Instant::now())
                }
            }
            Upcall::SourceSpeaking {
                room,
                source,
                speaking,
                ..
            } => self.on_source_speaking(room, source, speaking),
            Upcall::Dominant { room, source, .. } => self.on_dominant(room, source),
            other => tracing::debug!(?other, "upcall ignored"),
        }
    }

    /// Reserves `ssrc` in `room` for `participant` (checked and inserted under one lock), or
    /// refuses it when another member publishes with it. The reservation is undone when the
    /// returned guard is dropped without [`SsrcReservation::keep`] (the offer failed later).
    fn reserve_ssrc(
        &self,
        room: &str,
        participant: &str,
        ssrc: Option<u32>,
    ) -> Result<SsrcReservation<'_>, MediaError> {
        let Some(ssrc) = ssrc else {
            return Ok(SsrcReservation {
                media: self,
                key: None,
            });
        };
        let key = (room.to_string(), ssrc);
        let mut publishers = self.publishers();
        match publishers.get(&key) {
            Some(p) if p != participant => return Err(MediaError::SsrcInUse(ssrc)),
            Some(_) => {
                return Ok(SsrcReservation {
                    media: self,
                    key: None,
                })
            }
            None => {}
        }
        publishers.insert(key.clone(), participant.to_string());
        Ok(SsrcReservation {
            media: self,
            key: Some(key),
        })
    }

    /// A publisher sent authenticated RTP on an SSRC it is not confirmed for (its offer had no
    /// `a=ssrc`, or it changed SSRC): confirm it, unless another member of the room publishes with
    /// it (then its packets stay `unconfirmed_ssrc` drops and nobody else is affected).
    fn on_publish_ssrc(&self, transport: TransportId, ssrc: u32) {
        let now = Instant::now();
        let Some((room, participant, worker, old)) = self
            .sessions()
            .get(&transport)
            .filter(|s| s.publishes)
            .filter(|s| {
                // Reordered packets of the stream it just left: not a change back.
                !s.retired_ssrc
                    .is_some_and(|(r, at)| r == ssrc && now.duration_since(at) < SSRC_SWITCH_BACK)
            })
            .map(|s| {
                (
                    s.room.clone(),
                    s.participant.clone(),
                    s.worker,
                    s.publish_ssrc,
                )
            })
        else {
            return;
        };
        // The same claim an offer makes for a declared SSRC; then the old one is let go.
        match self.reserve_ssrc(&room, &participant, Some(ssrc)) {
            Ok(claim) => claim.keep(),
            Err(_) => {
                tracing::warn!(
                    %room, %participant, ssrc,
                    "refused a publisher's new SSRC: another member of the room publishes with it"
                );
                return;
            }
        }
        if let Some(old) = old.filter(|&o| o != ssrc) {
            self.publishers().remove(&(room.clone(), old));
        }
        if let Some(s) = self.sessions().get_mut(&transport) {
            s.publish_ssrc = Some(ssrc);
            s.retired_ssrc = old.map(|o| (o, now));
        }
        match old {
            None => {
                tracing::info!(%room, %participant, ssrc, "publisher SSRC learned from its first packet")
            }
            Some(old) => tracing::info!(%room, %participant, old, ssrc, "publisher changed SSRC"),
        }
        if let Err(e) = self.dataplane.set_publish_ssrc(worker, transport, ssrc) {
            tracing::warn!(transport, error = %e, "confirming a publisher's SSRC");
        }
    }

    /// A worker moved a source onto (or off) one of a subscriber's slots: tell the subscriber who is
    /// on each of its slots now.
    fn on_slot_changed(&self, transport: TransportId, slot: usize, source: Option<u32>) {
        {
            let mut sessions = self.sessions();
            let Some(s) = sessions.get_mut(&transport) else {
                return; // a plain transport (no signaling) or one already gone
            };
            if let Some(x) = s.slot_sources.get_mut(slot) {
                *x = source;
            }
        }
        self.send_slots(transport);
    }

    /// Tells a subscriber who is on each of its slots now (by the names known now).
    fn send_slots(&self, transport: TransportId) {
        let (room, participant, slots) = {
            let sessions = self.sessions();
            let Some(s) = sessions.get(&transport) else {
                return;
            };
            (
                s.room.clone(),
                s.participant.clone(),
                s.slot_mids
                    .iter()
                    .cloned()
                    .zip(s.slot_sources.clone())
                    .collect::<Vec<_>>(),
            )
        };
        let slots = {
            let publishers = self.publishers();
            slots
                .into_iter()
                .map(|(mid, source)| SlotInfo {
                    mid,
                    participant: source
                        .and_then(|ssrc| publishers.get(&(room.clone(), ssrc)).cloned()),
                })
                .collect()
        };
        self.hub
            .send_to(&room, &participant, ServerMsg::Slots { slots });
    }

    /// A worker's detector says `source` holds the floor in `room` now: it leads
    /// `active_speakers` from now on (several workers hosting the room report the same change).
    fn on_dominant(&self, room: RoomId, source: u32) {
        let Some(name) = self.room_name(room) else {
            return;
        };
        let Some(participant) = self.publishers().get(&(name.clone(), source)).cloned() else {
            return;
        };
        {
            let mut dominant = self.dominant.lock().unwrap_or_else(|e| e.into_inner());
            if dominant.get(&name) == Some(&participant) {
                return;
            }
            dominant.insert(name.clone(), participant.clone());
        }
        tracing::debug!(room = %name, %participant, "dominant speaker");
        let ids = self.speakers().get(&name).cloned().unwrap_or_default();
        if ids.contains(&participant) {
            let ids = dominant_first(ids, Some(&participant));
            self.hub
                .send_room(&name, &ServerMsg::ActiveSpeakers { ids });
        }
    }

    /// Records whether a participant speaks and, when that changes the room's list, announces
    /// `active_speakers` to the room (the floor holder first).
    fn set_speaking(&self, room: &str, participant: &str, speaking: bool) {
        let dominant = self
            .dominant
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(room)
            .cloned();
        let ids = {
            let mut speakers = self.speakers();
            let list = speakers.entry(room.to_string()).or_default();
            let was = list.iter().position(|p| p == participant);
            match (was, speaking) {
                (Some(0), true) | (None, false) => return,
                (Some(i), true) => {
                    list.remove(i);
                    list.insert(0, participant.to_string());
                }
                (None, true) => list.insert(0, participant.to_string()),
                (Some(i), false) => {
                    list.remove(i);
                }
            }
            let ids = list.clone();
            if list.is_empty() {
                speakers.remove(room);
            }
            ids
        };
        tracing::debug!(room, participant, speaking, "speaking");
        let ids = dominant_first(ids, dominant.as_deref());
        self.hub.send_room(room, &ServerMsg::ActiveSpeakers { ids });
    }

    /// Mutes or unmutes a participant's publishing in the dataplane (its packets are dropped as
    /// `muted`, and the slots it held go to others after the slot hold).
    pub fn set_muted(&self, room: &str, participant: &str, muted: bool) {
        {
            let mut set = self.muted.lock().unwrap_or_else(|e| e.into_inner());
            let key = (room.to_string(), participant.to_string());
            if muted {
                set.insert(key);
            } else {
                set.remove(&key);
            }
        }
        let transports: Vec<(TransportId, usize)> = self
            .sessions()
            .iter()
            .filter(|(_, s)| s.room == room && s.participant == participant)
            .map(|(&id, s)| (id, s.worker))
            .collect();
        for (id, worker) in transports {
            if let Err(e) = self.dataplane.mute(worker, id, muted) {
                tracing::warn!(transport = id, error = %e, "muting");
            }
        }
    }

    /// Participants speaking now, over all rooms.
    pub fn speaking_count(&self) -> usize {
        self.speakers().values().map(Vec::len).sum()
    }

    fn on_dtls(&self, transport: TransportId, datagram: &[u8]) {
        let now = Instant::now();
        let mut sessions = self.sessions();
        let Some(s) = sessions.get_mut(&transport) else {
            return;
        };
        if let Some(f) = crate::dtls::first_handshake_fragment(datagram).filter(|f| f.msg_type == 1)
        {
            tracing::debug!(
                transport,
                length = f.length,
                offset = f.offset,
                fragment = f.fragment_length,
                partial = f.is_partial(),
                "ClientHello fragment"
            );
        }
        let event = match s.dtls.handle_datagram(now, datagram) {
            Ok(e) => e,
            Err(e) => {
                if !matches!(e, crate::dtls::DtlsError::Closed) {
                    if !s.connected {
                        self.dtls_failures.fetch_add(1, Ordering::Relaxed);
                    }
                    // A peer sending garbage records must not flood the log: one line per
                    // transport per interval, saying how many were held back.
                    let due = s
                        .dtls_warned
                        .is_none_or(|at| now.duration_since(at) >= DTLS_WARN_INTERVAL);
                    if due {
                        let held = std::mem::take(&mut s.dtls_warnings_held);
                        s.dtls_warned = Some(now);
                        if s.connected {
                            tracing::warn!(transport, error = %e, held, "unusable DTLS after the handshake");
                        } else {
                            tracing::warn!(transport, error = %e, held, "DTLS handshake failed");
                        }
                    } else {
                        s.dtls_warnings_held += 1;
                    }
                }
                None
            }
        };
        self.flush_dtls(transport, s);
        if let Some(DtlsEvent::Connected {
            profile,
            keys,
            version,
        }) = event
        {
            s.connected = true;
            *self
                .negotiated
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry((profile.name(), version))
                .or_default() += 1;
            let worker = s.worker;
            let keys = TransportKeys {
                inbound: keys.inbound,
                outbound: keys.outbound,
            };
            let membership = Membership {
                room: self.room_id(&s.room),
                transport,
                publish_ssrc: s.publish_ssrc,
                learn_ssrc: s.publishes,
                publish_mid: s.publish_mid.clone(),
                slot_ssrcs: s.slot_ssrcs.clone(),
                slot_mids: s.slot_mids.clone(),
                egress: s.egress.clone(),
                relay_leg: None,
            };
            let muted = self
                .muted
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains(&(s.room.clone(), s.participant.clone()));
            tracing::info!(
                transport,
                room = %s.room,
                participant = %s.participant,
                profile = profile.name(),
                dtls = version,
                "DTLS-SRTP established"
            );
            let r = self
                .dataplane
                .send(
                    worker,
                    sluice_dataplane::topology::TopologyUpdate::SetKeys {
                        transport,
                        keys: Box::new(keys),
                    },
                )
                .and_then(|()| self.dataplane.join(worker, membership))
                .and_then(|()| match muted {
                    true => self.dataplane.mute(worker, transport, true),
                    false => Ok(()),
                });
            if let Err(e) = r {
                tracing::error!(transport, error = %e, "installing keys");
            }
        }
    }

    fn flush_dtls(&self, transport: TransportId, s: &mut Session) {
        while let Some(datagram) = s.dtls.poll_transmit() {
            let update = sluice_dataplane::topology::TopologyUpdate::Transmit {
                transport,
                datagram,
            };
            if let Err(e) = self.dataplane.send(s.worker, update) {
                tracing::warn!(transport, error = %e, "sending a DTLS flight");
            }
        }
    }

    fn on_tick(&self) {
        let now = Instant::now();
        self.hand_down_link_quality(now);
        let mut sessions = self.sessions();
        let ids: Vec<TransportId> = sessions.keys().copied().collect();
        let mut released = 0;
        for id in ids {
            if let Some(s) = sessions.get_mut(&id) {
                if !s.connected && s.dtls.poll_timeout().is_some_and(|t| t <= now) {
                    let _ = s.dtls.handle_timeout(now);
                    self.flush_dtls(id, s);
                }
                if s.connected && s.dtls.release_when_quiet(now, DTLS_RELEASE_AFTER) {
                    tracing::debug!(transport = id, "DTLS state released: the handshake is done");
                    released += 1;
                }
            }
        }
        drop(sessions);
        // The handshakes' memory (OpenSSL's, the offers') is free now, but glibc would keep it
        // resident in its arenas for good: hand the whole free pages back (docs/architecture.md,
        // "Memory per member"), at most once a second.
        let due = self
            .trims
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .due(now, released);
        if due {
            let t = Instant::now();
            let trimmed = sluice_dataplane::io::heap::trim();
            tracing::debug!(
                released,
                trimmed,
                took_us = t.elapsed().as_micros() as u64,
                "heap trimmed"
            );
        }
    }

    /// Once a second: hands each publisher's worker the worst downlink among the subscribers that
    /// have it on a slot ([`Links::downstream`]), so the receiver reports it gets say what its
    /// listeners lose.
    fn hand_down_link_quality(&self, now: Instant) {
        {
            let mut links = self.links();
            if now < links.1 {
                return;
            }
            links.1 = now + Duration::from_secs(1);
            links.0.forget_stale(now);
        }
        let (pairs, workers) = {
            let sessions = self.sessions();
            let publishers: HashMap<(&str, u32), TransportId> = sessions
                .iter()
                .filter_map(|(&id, s)| Some(((s.room.as_str(), s.publish_ssrc?), id)))
                .collect();
            let pairs: Vec<(TransportId, TransportId)> = sessions
                .iter()
                .flat_map(|(&id, s)| {
                    let publishers = &publishers;
                    s.slot_sources
                        .iter()
                        .flatten()
                        .filter_map(move |&src| publishers.get(&(s.room.as_str(), src)))
                        .map(move |&p| (id, p))
                })
                .collect();
            let workers: HashMap<TransportId, usize> =
                sessions.iter().map(|(&id, s)| (id, s.worker)).collect();
            (pairs, workers)
        };
        let changed = self.links().0.downstream(now, pairs);
        for (publisher, quality) in changed {
            let Some(&worker) = workers.get(&publisher) else {
                continue;
            };
            if let Err(e) = self.dataplane.set_downstream(worker, publisher, quality) {
                tracing::debug!(transport = publisher, error = %e, "handing down link quality");
            }
        }
    }

    /// A participant's link as RTCP sees it (its media transport's, or its plain transport's).
    pub fn link_of(&self, room: &str, participant: &str) -> Option<LinkQuality> {
        let mut ids: Vec<TransportId> = self
            .sessions()
            .iter()
            .filter(|(_, s)| s.room == room && s.participant == participant)
            .map(|(&id, _)| id)
            .collect();
        ids.extend(
            self.plain()
                .iter()
                .filter(|(_, p)| p.room == room && p.participant == participant)
                .map(|(&id, _)| id),
        );
        let now = Instant::now();
        let links = self.links();
        ids.iter().find_map(|&id| links.0.quality(id, now))
    }

    /// Every transport's link, summed up for `/metrics`.
    pub fn link_summary(&self) -> LinkSummary {
        self.links().0.summary(Instant::now())
    }

    /// Starts the thread that drains the workers' upcalls and drives DTLS timers; it ends when the
    /// dataplane is dropped. It goes round its loop at least every [`PUMP_WAIT`] and stamps the
    /// pump's heartbeat each time.
    pub fn start_pump(self: &Arc<Self>) -> std::io::Result<MediaPump> {
        let me = Arc::downgrade(self);
        let control = self.dataplane.upcalls().clone();
        let dtls = self.dataplane.dtls_upcalls().clone();
        let heartbeat = Arc::new(Heartbeat::new(Instant::now()));
        let beats = heartbeat.clone();
        let thread = std::thread::Builder::new()
            .name("sluice-media".into())
            .spawn(move || loop {
                beats.beat(Instant::now());
                let got = next_upcall(&control, &dtls, PUMP_WAIT);
                let Some(media) = me.upgrade() else {
                    return;
                };
                match got {
                    Ok(Some(u)) => media.on_upcall(u),
                    Ok(None) => {}
                    Err(Gone) => return,
                }
                media.on_tick();
            })?;
        Ok(MediaPump { thread, heartbeat })
    }

    /// DTLS handshakes that failed (bad fingerprint, no common SRTP profile, garbage).
    pub fn dtls_failures(&self) -> u64 {
        self.dtls_failures.load(Ordering::Relaxed)
    }

    /// DTLS handshakes that completed.
    pub fn dtls_established(&self) -> u64 {
        self.dtls_negotiated().iter().map(|(_, n)| n).sum()
    }

    /// Completed DTLS-SRTP handshakes by (SRTP profile, DTLS version), e.g.
    /// `("AEAD_AES_128_GCM", "DTLSv1.2")`.
    pub fn dtls_negotiated(&self) -> Vec<((&'static str, &'static str), u64)> {
        self.negotiated
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(&k, &n)| (k, n))
            .collect()
    }

    /// Media sessions (participants with a transport).
    pub fn session_count(&self) -> usize {
        self.sessions().len()
    }

    /// The transport a participant's media currently uses, if any (tests and admin views).
    pub fn transport_of(&self, room: &str, participant: &str) -> Option<(TransportId, SocketAddr)> {
        let sessions = self.sessions();
        let (&id, s) = sessions
            .iter()
            .find(|(_, s)| s.room == room && s.participant == participant)?;
        Some((id, self.dataplane.worker_addr(s.worker)?))
    }
}

#[cfg(test)]
mod tests {
    use super::dominant_first;

    #[test]
    fn the_floor_holder_leads_active_speakers_when_it_speaks() {
        let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        // A cough from c put it first by recency; b holds the floor.
        assert_eq!(
            dominant_first(ids(&["c", "a", "b"]), Some("b")),
            ids(&["b", "c", "a"])
        );
        assert_eq!(
            dominant_first(ids(&["c", "a"]), Some("b")),
            ids(&["c", "a"])
        );
        assert_eq!(dominant_first(ids(&["c", "a"]), None), ids(&["c", "a"]));
    }
}
