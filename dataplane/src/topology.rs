//! What the control plane tells a worker: transports, room membership, mutes.
//!
//! Updates travel over a bounded crossbeam channel (wrapped in a [`crate::worker::WorkerCommand`]) and
//! are applied by the worker between receive batches, so the packet path never waits for the control plane. Everything that allocates (SRTP key
//! schedules, table growth) happens while an update is applied, not per packet.

use std::net::SocketAddr;

use crate::ice::IceCredentials;
pub use crate::reports::{DownlinkSample, Quality};
pub use crate::rewrite::EgressFormat;
use crate::srtp::SrtpKeys;

/// Identifies a transport (one remote 5-tuple: a participant's WebRTC connection, or a plain RTP
/// transport). Chosen by the control plane, unique per dataplane.
pub type TransportId = u64;

/// Identifies a room. Chosen by the control plane, unique per dataplane.
pub type RoomId = u64;

/// SRTP keys of a transport: what it sends us (`inbound`) and what we send it (`outbound`).
#[derive(Clone, Debug)]
pub struct TransportKeys {
    /// Keys the remote uses to protect what it sends us (we unprotect with them).
    pub inbound: SrtpKeys,
    /// Keys we protect with when sending to the remote.
    pub outbound: SrtpKeys,
}

/// A new transport on a worker.
#[derive(Clone, Debug)]
pub struct TransportConfig {
    /// Its id.
    pub id: TransportId,
    /// Remote address, when known. `None` latches the address from the first authenticated packet
    /// carrying one of `latch_ssrcs` (comedia).
    pub remote: Option<SocketAddr>,
    /// `None`: plain RTP, for trusted local links and for measuring crypto cost.
    pub keys: Option<TransportKeys>,
    /// SSRCs whose first authenticated packet may latch `remote` when it is `None`.
    pub latch_ssrcs: Vec<u32>,
    /// The RFC 6464 audio-level header-extension id the remote uses, if negotiated.
    pub audio_level_ext: Option<u8>,
    /// ICE-lite credentials (WebRTC transports): the worker answers the remote's connectivity checks,
    /// latches the address a check nominates (USE-CANDIDATE) and drops the transport when neither a
    /// valid check nor authenticated media arrived for 30 s (consent freshness, RFC 7675). `None`
    /// for plain transports.
    pub ice: Option<IceCredentials>,
    /// Where a plain transport's remote sends RTCP from, when that is not `remote` (tools that
    /// cannot multiplex RTCP, such as ffmpeg, use the next port). `None`: the first RTCP packet
    /// from `remote`'s host on the port after it that authenticates with the transport's keys
    /// latches it.
    pub rtcp_remote: Option<SocketAddr>,
}

/// Puts a transport into a room.
#[derive(Clone, Debug, Default)]
pub struct Membership {
    /// The room.
    pub room: RoomId,
    /// The transport (already added to the same worker).
    pub transport: TransportId,
    /// The SSRC it publishes with; `None` for a listener (its RTP is dropped as `Muted`), or for a
    /// publisher whose SSRC is not known yet (`learn_ssrc`).
    pub publish_ssrc: Option<u32>,
    /// The transport publishes, and its SSRC is learned from its traffic rather than fixed: the
    /// first authenticated RTP packet on another SSRC than `publish_ssrc` (none yet: an offer
    /// without `a=ssrc`; or a sender that changed SSRC) is held back and proposed to the control
    /// plane ([`Upcall::PublishSsrc`]), which confirms it with [`TopologyUpdate::SetPublishSsrc`]
    /// unless another member of the room publishes with it.
    pub learn_ssrc: bool,
    /// The MID of the section it publishes on. When the MID header extension is negotiated
    /// (`egress.mid_ext`), a packet naming another MID is never proposed as its new SSRC.
    pub publish_mid: Option<String>,
    /// SSRCs of its receive slots, in slot order (speaker slots, docs/architecture.md). Empty: hears
    /// nothing.
    pub slot_ssrcs: Vec<u32>,
    /// The MID of each receive slot (parallel to `slot_ssrcs`), written into the MID header extension
    /// when `egress.mid_ext` is set: browsers route incoming RTP by MID (RFC 8843 §15).
    pub slot_mids: Vec<String>,
    /// How this member wants forwarded packets written (its payload type and extension ids).
    pub egress: EgressFormat,
    /// The transport is a relay leg to another node serving the same room (a cascade), not a
    /// member: see [`RelayLeg`].
    pub relay_leg: Option<RelayLeg>,
}

/// A relay leg: the plain-SRTP link between two nodes that serve one room (its core and an edge,
/// docs/cascade.md). Both ends are ordinary transports in the room with these differences:
/// - what the leg sends: the room's sources on its slots (`Membership::slot_ssrcs`, the room's
///   `last_n`), each packet naming its source as CSRC[0] like every forwarded packet, behind an
///   audio-level gate ([`crate::speaker::pick_gated_slot`]): a source goes on only while it speaks
///   (within the slot hold), so silent members cost the link nothing; never what came in on the
///   leg itself;
/// - what it receives: packets on the other end's slot SSRCs (`inbound_ssrcs`) are turned back
///   into their source's ([`crate::rewrite::unforward_in_place`]) and go to the room as that
///   source's own packets, so this node's slots, speaker detection and `active_speakers` see the
///   real participants; whether each remote source speaks comes up as [`Upcall::SourceSpeaking`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RelayLeg {
    /// The SSRCs the other end sends the leg's streams with (its `slot_ssrcs`); packets on any
    /// other SSRC are dropped (`malformed`).
    pub inbound_ssrcs: Vec<u32>,
}

/// One instruction for a worker.
#[derive(Clone, Debug)]
pub enum TopologyUpdate {
    /// Adds (or replaces) a transport.
    AddTransport(Box<TransportConfig>),
    /// Removes a transport and its membership; its traffic stops at once.
    RemoveTransport {
        /// The transport.
        id: TransportId,
    },
    /// A local transport joins a room.
    Join(Box<Membership>),
    /// A local transport leaves its room.
    Leave {
        /// The transport.
        transport: TransportId,
    },
    /// Another worker's membership of a room changed: it now hosts `members` members of `room`
    /// (0: none; this worker stops relaying that room to it). `gone_source` is the SSRC of a
    /// publisher that left there, whose speaker slot this worker frees.
    RemotePresence {
        /// The room.
        room: RoomId,
        /// The other worker's index.
        worker: usize,
        /// How many members of `room` that worker hosts now.
        members: u32,
        /// A publisher SSRC that left on that worker.
        gone_source: Option<u32>,
    },
    /// Confirms the SSRC a learning publisher ([`Membership::learn_ssrc`]) now sends with: its
    /// packets on that SSRC are forwarded from now on, and the slots its previous SSRC held are freed.
    SetPublishSsrc {
        /// The transport.
        transport: TransportId,
        /// Its SSRC from now on.
        ssrc: u32,
    },
    /// Server-side mute of a transport's publishing.
    Mute {
        /// The transport.
        transport: TransportId,
        /// Muted or not.
        muted: bool,
    },
    /// Closes a room: every local member leaves it.
    CloseRoom {
        /// The room.
        room: RoomId,
    },
    /// Installs (or replaces) a transport's SRTP keys, e.g. once its DTLS handshake completed; its
    /// address, ICE state and membership stay.
    SetKeys {
        /// The transport.
        transport: TransportId,
        /// The keys.
        keys: Box<TransportKeys>,
    },
    /// Sends one datagram (a DTLS flight) to the transport's latched address.
    Transmit {
        /// The transport.
        transport: TransportId,
        /// The datagram.
        datagram: Vec<u8>,
    },
    /// The worst loss and jitter the subscribers of a publisher's stream report (over the last
    /// seconds, from [`Upcall::Link`]): the receiver reports sluice sends the publisher carry the
    /// worse of it and what sluice measures itself ([`crate::reports`]).
    Downstream {
        /// The publisher's transport.
        transport: TransportId,
        /// The worst quality among its subscribers.
        quality: Quality,
    },
}

/// One second of RTCP about one transport, for the control plane ([`Upcall::Link`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkReport {
    /// What sluice measured of the stream the member publishes (its uplink), if it sent any.
    pub uplink: Option<UplinkSample>,
    /// What the member's receiver reports said of the streams sluice sends it, if it sent any.
    pub downlink: Option<DownlinkSample>,
}

/// What sluice measured of a publisher's stream (the report block it sent it, before the
/// downstream loss was folded in).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UplinkSample {
    /// Fraction lost in the last interval and jitter, in report-block units.
    pub quality: Quality,
    /// Packets lost in all.
    pub lost: i64,
    /// Packets received in all.
    pub received: u32,
}

/// What a worker tells the control plane (over a bounded crossbeam channel; never blocks the worker:
/// when the channel is full the upcall is dropped and logged).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Upcall {
    /// A WebRTC transport's ICE consent expired (RFC 7675); the worker already removed it.
    ConsentExpired {
        /// The worker.
        worker: usize,
        /// The transport.
        transport: TransportId,
    },
    /// A subscriber's speaker slot now carries another source (`None`: nobody). Sent when the
    /// speaker policy (`crate::speaker`) moves a source onto a slot or a source leaves; the control
    /// plane tells the subscriber who is on which slot.
    SlotChanged {
        /// The worker.
        worker: usize,
        /// The subscriber's transport.
        transport: TransportId,
        /// The slot's index (order of `Membership::slot_ssrcs`).
        slot: u16,
        /// The source's SSRC, as published (the control plane maps it to a participant).
        source: Option<u32>,
    },
    /// A publisher started or stopped speaking (`crate::speaker::VoiceActivity`). Only the worker
    /// that receives the publisher's packets reports it.
    Speaking {
        /// The worker.
        worker: usize,
        /// The publisher's transport.
        transport: TransportId,
        /// Speaking now or not.
        speaking: bool,
    },
    /// A learning publisher ([`Membership::learn_ssrc`]) sent authenticated RTP on an SSRC it is not
    /// confirmed for: the control plane checks that no other member of the room publishes with it
    /// and answers with [`TopologyUpdate::SetPublishSsrc`]. Sent at most once a second per transport
    /// while unanswered.
    PublishSsrc {
        /// The worker.
        worker: usize,
        /// The publisher's transport.
        transport: TransportId,
        /// The SSRC its packets carry.
        ssrc: u32,
    },
    /// A room's dominant speaker changed ([`crate::dominant`], decided every 300 ms by each worker
    /// hosting members of the room, over the levels of every source it forwards).
    Dominant {
        /// The worker.
        worker: usize,
        /// The room.
        room: RoomId,
        /// The new dominant speaker's SSRC, as published.
        source: u32,
    },
    /// A source that reaches this node over a relay leg ([`RelayLeg`]) started or stopped
    /// speaking, as [`Upcall::Speaking`] says of a local publisher.
    SourceSpeaking {
        /// The worker.
        worker: usize,
        /// The room.
        room: RoomId,
        /// The source's SSRC (the participant publishing it sits on another node).
        source: u32,
        /// Speaking now or not.
        speaking: bool,
    },
    /// About once a second, for each transport that sent RTP or receiver reports: its link as RTCP
    /// sees it (loss, jitter, round-trip time), for the API, the metrics and [`TopologyUpdate::Downstream`].
    Link {
        /// The worker.
        worker: usize,
        /// The transport.
        transport: TransportId,
        /// What the reports said.
        report: LinkReport,
    },
    /// A DTLS datagram from a transport's ICE-confirmed address, for the control plane's handshake.
    Dtls {
        /// The worker.
        worker: usize,
        /// The transport.
        transport: TransportId,
        /// The datagram.
        datagram: Vec<u8>,
    },
}
