//! The packets that set a transport up: ICE-lite connectivity checks, answered here (RFC 8445 §7.3),
//! and DTLS, handed up to the control plane, which runs the handshakes.

use std::net::SocketAddr;
use std::time::Instant;

use crate::ice::{self, Consent, IceError};
use crate::outbox::Outbox;
use crate::stats::DropReason;
use crate::topology::Upcall;

use super::Forwarder;

impl Forwarder {
    /// ICE-lite (RFC 8445 §7.3): answers a valid connectivity check, refreshes consent, and latches
    /// the address a nominating check (USE-CANDIDATE) came from. Failed checks are counted drops.
    pub(super) fn on_stun(&mut self, now: Instant, from: SocketAddr, buf: &[u8], out: &mut Outbox) {
        let by_addr = self.by_addr.get(&from).copied();
        let idx = match ice::request_username(buf).and_then(ice::split_username) {
            Some((local, _)) => match self.by_ufrag.get(local) {
                Some(&i) => i,
                None => return self.stats.count_drop(DropReason::UnknownSource, 1),
            },
            // Not a binding request (an indication, a response): nothing for a lite agent to do.
            None if by_addr.is_some() => return self.stats.count_drop(DropReason::Unsupported, 1),
            None => return self.stats.count_drop(DropReason::UnknownSource, 1),
        };
        let Some(t) = self.transports.get_mut(idx).and_then(Option::as_mut) else {
            return self.stats.count_drop(DropReason::UnknownSource, 1);
        };
        let Some(creds) = &t.ice else {
            return self.stats.count_drop(DropReason::Unsupported, 1);
        };
        let req = match ice::check_binding_request(buf, creds) {
            Ok(r) => r,
            Err(
                IceError::BadIntegrity | IceError::UnknownUsername | IceError::MissingIntegrity,
            ) => return self.stats.count_drop(DropReason::AuthFailed, 1),
            Err(_) => return self.stats.count_drop(DropReason::Malformed, 1),
        };
        let answered = out.push_with(from, |slot| {
            ice::write_binding_success(&req, from, creds, slot).ok()
        });
        if !answered {
            return self.stats.count_drop(DropReason::QueueFull, 1);
        }
        self.stats.stun_answered.add(1);
        match &mut t.consent {
            Some(c) => c.refresh(now),
            None => t.consent = Some(Consent::new(now)),
        }
        if req.use_candidate && t.remote != Some(from) {
            if let Some(old) = t.remote.take() {
                if self.by_addr.get(&old) == Some(&idx) {
                    self.by_addr.remove(&old);
                }
            }
            self.latch(idx, from);
        }
    }

    /// DTLS goes up to the control plane, which runs the handshakes, but only from an address ICE
    /// confirmed for a transport that has ICE: a forged datagram from elsewhere cannot disturb one.
    pub(super) fn on_dtls(&mut self, from: SocketAddr, buf: &[u8]) {
        let Some(&idx) = self.by_addr.get(&from) else {
            return self.stats.count_drop(DropReason::UnknownSource, 1);
        };
        match self.transports.get(idx).and_then(Option::as_ref) {
            Some(t) if t.ice.is_some() => {
                // Handshake traffic only: a few datagrams per transport, so a copy is fine here.
                let transport = t.id;
                self.upcalls.push(Upcall::Dtls {
                    worker: self.cfg.worker,
                    transport,
                    datagram: buf.to_vec(),
                });
            }
            _ => self.stats.count_drop(DropReason::Unsupported, 1),
        }
    }
}
