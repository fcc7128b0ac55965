//! What a webhook says: the events ([`WebhookEvent`]) and the body sent for one ([`Delivery`]):
//! `id`, `event`, `created_at`, then the event's own fields, serialized and signed once. Pure: the
//! id and the time come from the caller.

use bytes::Bytes;
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

use super::signing::sign;

/// Something that happened, as sent to the webhook URLs.
///
/// Serialized with its name in an `"event"` field next to its own fields, e.g.
/// `{"event": "room_started", "room": "standup"}`; the body sent adds `id` and `created_at`.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum WebhookEvent {
    /// A room was created.
    RoomStarted {
        /// The room's name.
        room: String,
    },
    /// A room was closed.
    RoomFinished {
        /// The room's name.
        room: String,
    },
    /// A participant joined a room.
    ParticipantJoined {
        /// The room's name.
        room: String,
        /// The participant's id.
        participant: String,
        /// The participant's display name.
        name: String,
        /// The participant's role (`speaker`, `listener`).
        role: String,
    },
    /// A participant left a room.
    ParticipantLeft {
        /// The room's name.
        room: String,
        /// The participant's id.
        participant: String,
        /// Why (`left`, `kicked`, `timeout`, ...).
        reason: String,
    },
    /// A room switched media mode (P2P mesh and SFU).
    ModeChanged {
        /// The room's name.
        room: String,
        /// The mode before.
        from: String,
        /// The mode now.
        to: String,
        /// Members at the switch.
        members: u32,
    },
}

impl WebhookEvent {
    /// The room it is about.
    pub fn room(&self) -> &str {
        match self {
            WebhookEvent::RoomStarted { room }
            | WebhookEvent::RoomFinished { room }
            | WebhookEvent::ParticipantJoined { room, .. }
            | WebhookEvent::ParticipantLeft { room, .. }
            | WebhookEvent::ModeChanged { room, .. } => room,
        }
    }

    /// The event's name, as in the body's `event` field and the `x-sluice-event` header.
    pub fn name(&self) -> &'static str {
        match self {
            WebhookEvent::RoomStarted { .. } => "room_started",
            WebhookEvent::RoomFinished { .. } => "room_finished",
            WebhookEvent::ParticipantJoined { .. } => "participant_joined",
            WebhookEvent::ParticipantLeft { .. } => "participant_left",
            WebhookEvent::ModeChanged { .. } => "mode_changed",
        }
    }
}

/// The body sent: `id`, `event`, `created_at`, then the event's fields, in that order.
struct Envelope<'a> {
    id: &'a str,
    created_at: u64,
    event: &'a WebhookEvent,
}

impl Serialize for Envelope<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("id", self.id)?;
        m.serialize_entry("event", self.event.name())?;
        m.serialize_entry("created_at", &self.created_at)?;
        // Keep in step with the derived `Serialize` of `WebhookEvent` (a test checks it).
        match self.event {
            WebhookEvent::RoomStarted { room } | WebhookEvent::RoomFinished { room } => {
                m.serialize_entry("room", room)?;
            }
            WebhookEvent::ParticipantJoined {
                room,
                participant,
                name,
                role,
            } => {
                m.serialize_entry("room", room)?;
                m.serialize_entry("participant", participant)?;
                m.serialize_entry("name", name)?;
                m.serialize_entry("role", role)?;
            }
            WebhookEvent::ParticipantLeft {
                room,
                participant,
                reason,
            } => {
                m.serialize_entry("room", room)?;
                m.serialize_entry("participant", participant)?;
                m.serialize_entry("reason", reason)?;
            }
            WebhookEvent::ModeChanged {
                room,
                from,
                to,
                members,
            } => {
                m.serialize_entry("room", room)?;
                m.serialize_entry("from", from)?;
                m.serialize_entry("to", to)?;
                m.serialize_entry("members", members)?;
            }
        }
        m.end()
    }
}

/// One event, serialized and signed once, shared by every URL's queue.
pub(crate) struct Delivery {
    /// `evt_` and 16 lowercase hex digits, the same on every attempt.
    pub(crate) id: String,
    /// The event's name.
    pub(crate) event: &'static str,
    /// The exact bytes sent (and signed).
    pub(crate) body: Bytes,
    /// The `x-sluice-signature` value.
    pub(crate) signature: String,
}

impl Delivery {
    /// The body of `event` with the id `evt_<nonce in hex>`, created at `created_at` (unix
    /// seconds), signed with `secret`.
    pub(crate) fn new(
        secret: &[u8],
        event: &WebhookEvent,
        nonce: u64,
        created_at: u64,
    ) -> Result<Self, serde_json::Error> {
        let id = format!("evt_{nonce:016x}");
        let body = serde_json::to_vec(&Envelope {
            id: &id,
            created_at,
            event,
        })?;
        let signature = sign(secret, &body);
        Ok(Delivery {
            id,
            event: event.name(),
            body: Bytes::from(body),
            signature,
        })
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::webhooks::signing::verify;
    use rand::{Rng, SeedableRng};

    /// A sample event (shared with the sender's tests).
    pub(crate) fn joined(i: u32) -> WebhookEvent {
        WebhookEvent::ParticipantJoined {
            room: "standup".into(),
            participant: format!("p_{i}"),
            name: format!("Ada {i}"),
            role: "speaker".into(),
        }
    }

    #[test]
    fn envelope_matches_the_event_serialization() {
        let events = [
            WebhookEvent::RoomStarted { room: "a".into() },
            WebhookEvent::RoomFinished { room: "a".into() },
            joined(1),
            WebhookEvent::ParticipantLeft {
                room: "a".into(),
                participant: "p_1".into(),
                reason: "left".into(),
            },
            WebhookEvent::ModeChanged {
                room: "a".into(),
                from: "p2p".into(),
                to: "sfu".into(),
                members: 9,
            },
        ];
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        for event in &events {
            let d = Delivery::new(b"k", event, rng.random(), 1_700_000_000).expect("serializes");
            let text = std::str::from_utf8(&d.body).expect("utf-8");
            assert!(
                text.starts_with(&format!(
                    r#"{{"id":"{}","event":"{}","created_at":"#,
                    d.id,
                    event.name()
                )),
                "{text}"
            );
            let mut body: serde_json::Value = serde_json::from_slice(&d.body).expect("json");
            let map = body.as_object_mut().expect("object");
            let id = map.remove("id").expect("id");
            let id = id.as_str().expect("id string");
            assert!(id.len() == 20 && id.starts_with("evt_"), "{id}");
            assert!(id[4..]
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
            assert!(
                map.remove("created_at")
                    .expect("created_at")
                    .as_u64()
                    .expect("int")
                    > 1_600_000_000
            );
            assert_eq!(body, serde_json::to_value(event).expect("event"));
            assert!(verify(b"k", &d.body, &d.signature));
        }
        assert_eq!(
            serde_json::to_value(&events[4]).expect("event"),
            serde_json::json!({"event": "mode_changed", "room": "a", "from": "p2p", "to": "sfu", "members": 9})
        );
    }
}
