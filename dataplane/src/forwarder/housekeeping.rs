//! Housekeeping of a forwarding core, called by the worker about once a second with `now`: speaking
//! states that ran out (of local publishers and of sources heard over relay legs), and ICE transports whose consent expired (RFC 7675).

use std::time::Instant;

use crate::ice::Consent;
use crate::topology::{TransportId, Upcall};

use super::Forwarder;

impl Forwarder {
    /// Ends the speaking state of publishers that sent no voiced packet for
    /// [`crate::speaker::SPEAKING_HOLD`], also when they sent nothing at all (reported as upcalls). Call it
    /// from housekeeping.
    pub fn expire_speaking(&mut self, now: Instant) {
        for t in self.transports.iter_mut().flatten() {
            if t.voice.on_tick(now) == Some(false) {
                self.upcalls.push(Upcall::Speaking {
                    worker: self.cfg.worker,
                    transport: t.id,
                    speaking: false,
                });
            }
            if let (Some(leg), Some(room)) = (&mut t.leg, t.room) {
                for source in leg.expire_speaking(now) {
                    self.upcalls.push(Upcall::SourceSpeaking {
                        worker: self.cfg.worker,
                        room,
                        source,
                        speaking: false,
                    });
                }
            }
        }
    }

    /// Removes every ICE transport whose consent expired (no valid check for
    /// [`crate::ice::CONSENT_TIMEOUT`], RFC 7675) and returns their ids, for the control plane. Call it from
    /// housekeeping (about once a second); the 30 s of a new transport start at its first call.
    pub fn expire_consent(&mut self, now: Instant) -> Vec<TransportId> {
        let mut expired = Vec::new();
        for t in self.transports.iter_mut().flatten() {
            if t.ice.is_none() {
                continue;
            }
            match &t.consent {
                Some(c) if c.expired(now) => expired.push(t.id),
                Some(_) => {}
                None => t.consent = Some(Consent::new(now)),
            }
        }
        for &id in &expired {
            tracing::info!(transport = id, "ICE consent expired: transport removed");
            self.remove_transport(id);
        }
        expired
    }
}
