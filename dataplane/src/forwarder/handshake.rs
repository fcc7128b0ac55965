//! The packets that set a transport up: ICE-lite connectivity checks, answered here (RFC 8445 §7.3),
//! the return-routability checks that guard a move to a new address, and DTLS, handed up to the
//! control plane (within a budget), which runs the handshakes.
//!
//! Addresses (no reflection through ICE):
//! - consent (RFC 7675) is refreshed only by valid checks from the transport's latched address;
//! - the first nomination latches at once (nothing but DTLS, which must then come from there,
//!   goes to it before the handshake completes), unless another transport holds that address;
//! - a nomination from any *other* address moves nothing by itself: the core sends a Binding
//!   request there ([`ice::write_routability_check`], signed with the client's password from its
//!   SDP) into the outbox, and moves the media only when an authenticated success response to it
//!   comes back from that very address ([`ice::check_binding_success`]). At most one check is in
//!   flight per transport (re-sent at most every [`PROBE_RETRY`], stale after [`PROBE_TIMEOUT`]),
//!   and a transport moves at most once per [`MOVE_INTERVAL`].

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::ice::{self, Consent, IceError};
use crate::outbox::Outbox;
use crate::stats::DropReason;
use crate::topology::Upcall;

use super::Forwarder;

/// A return-routability check is re-sent (with a new transaction id) at most this often while the
/// client keeps nominating the new address.
pub const PROBE_RETRY: Duration = Duration::from_millis(500);
/// An answer to a return-routability check older than this is ignored.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// A transport moves to a new address at most once per this interval.
pub const MOVE_INTERVAL: Duration = Duration::from_secs(2);

/// DTLS datagrams a transport may send up in a burst while its handshake runs (no keys yet).
pub const DTLS_BURST_HANDSHAKE: u32 = 64;
/// ... and one more per this interval.
pub const DTLS_REFILL_HANDSHAKE: Duration = Duration::from_millis(20);
/// DTLS datagrams a transport may send up in a burst once its keys are installed (a retransmitted
/// last flight, an alert).
pub const DTLS_BURST_CONNECTED: u32 = 8;
/// ... and one more per this interval.
pub const DTLS_REFILL_CONNECTED: Duration = Duration::from_millis(500);

/// What a transport keeps to guard its address and the control plane: the check in flight, when
/// it last moved, its DTLS budget.
#[derive(Debug, Default)]
pub(crate) struct Guard {
    /// The return-routability check in flight to a new address a valid check nominated.
    pub(crate) probe: Option<Probe>,
    /// When the transport last moved to a new address (moves are rate-limited).
    pub(crate) moved_at: Option<Instant>,
    /// DTLS datagrams this transport may still send up (`dtls_flood` beyond).
    pub(crate) dtls_budget: DtlsBudget,
}

/// A return-routability check in flight.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Probe {
    /// Where it went (the address the client nominated).
    pub(crate) addr: SocketAddr,
    /// Its transaction id (random: an off-path forger cannot guess it).
    pub(crate) txid: [u8; 12],
    /// When it was sent.
    pub(crate) sent: Instant,
}

/// A token bucket for the DTLS datagrams of one transport.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct DtlsBudget {
    tokens: u32,
    /// When the bucket was last refilled; `None`: full, never used.
    at: Option<Instant>,
}

impl DtlsBudget {
    /// Takes one token at `now`; false when the budget is spent. `connected`: the keys are
    /// installed, so the smaller post-handshake budget applies.
    pub(crate) fn take(&mut self, now: Instant, connected: bool) -> bool {
        let (burst, refill) = if connected {
            (DTLS_BURST_CONNECTED, DTLS_REFILL_CONNECTED)
        } else {
            (DTLS_BURST_HANDSHAKE, DTLS_REFILL_HANDSHAKE)
        };
        match self.at {
            None => {
                self.tokens = burst;
                self.at = Some(now);
            }
            Some(at) => {
                let elapsed = now.saturating_duration_since(at);
                let add = elapsed.as_nanos() / refill.as_nanos().max(1);
                if add >= u128::from(burst.saturating_sub(self.tokens)) {
                    self.tokens = burst;
                    self.at = Some(now);
                } else if add > 0 {
                    // Below the cap: advance by whole refill steps only, keeping the remainder.
                    self.tokens += add as u32;
                    self.at = Some(at + refill * add as u32);
                }
            }
        }
        if self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        true
    }
}

impl Forwarder {
    /// ICE-lite (RFC 8445 §7.3): answers a valid connectivity check, refreshes consent when it comes
    /// from the latched address, latches the first nominated address, and starts a
    /// return-routability check towards any other nominated one. Binding success responses are
    /// answers to those checks. Failed checks are counted drops.
    pub(super) fn on_stun(&mut self, now: Instant, from: SocketAddr, buf: &[u8], out: &mut Outbox) {
        if let Some(txid) = ice::success_transaction_id(buf) {
            return self.on_probe_answer(now, from, buf, txid);
        }
        let by_addr = self.by_addr.get(&from).copied();
        let idx = match ice::request_username(buf).and_then(ice::split_username) {
            Some((local, _)) => match self.by_ufrag.get(local) {
                Some(&i) => i,
                None => return self.stats.count_drop(DropReason::UnknownSource, 1),
            },
            // Not a binding request (an indication, an error response): nothing for a lite agent.
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
        // Only checks from where the media goes prove the peer still wants it (RFC 7675).
        if t.remote.is_none_or(|r| r == from) {
            match &mut t.consent {
                Some(c) => c.refresh(now),
                None => t.consent = Some(Consent::new(now)),
            }
        }
        if !req.use_candidate || t.remote == Some(from) {
            return;
        }
        let taken = by_addr.is_some_and(|o| o != idx);
        if t.remote.is_none() && !taken {
            return self.latch(idx, from);
        }
        self.probe(now, idx, from, out);
    }

    /// Sends a return-routability check to `to`, the new address transport `idx` nominated, unless
    /// one went out less than [`PROBE_RETRY`] ago or the transport moved less than
    /// [`MOVE_INTERVAL`] ago.
    fn probe(&mut self, now: Instant, idx: usize, to: SocketAddr, out: &mut Outbox) {
        let Some(t) = self.transports.get_mut(idx).and_then(Option::as_mut) else {
            return;
        };
        let Some(creds) = &t.ice else { return };
        if creds.remote_pwd.is_empty() {
            // Without the client's password nothing can prove the new address: stay.
            return;
        }
        if t.guard
            .moved_at
            .is_some_and(|at| now.saturating_duration_since(at) < MOVE_INTERVAL)
        {
            return;
        }
        if t.guard
            .probe
            .is_some_and(|p| now.saturating_duration_since(p.sent) < PROBE_RETRY)
        {
            return;
        }
        let txid: [u8; 12] = rand::random();
        let tie_breaker: u64 = rand::random();
        let sent = out.push_with(to, |slot| {
            ice::write_routability_check(&txid, creds, tie_breaker, slot).ok()
        });
        if !sent {
            return;
        }
        if let Some(old) = t.guard.probe.replace(Probe {
            addr: to,
            txid,
            sent: now,
        }) {
            self.probes.remove(&old.txid);
        }
        tracing::debug!(transport = t.id, %to, "return-routability check sent");
        self.probes.insert(txid, idx);
    }

    /// A Binding success response: the answer to a return-routability check, or a stray one. An
    /// authenticated answer from the address the check went to moves the transport there.
    fn on_probe_answer(&mut self, now: Instant, from: SocketAddr, buf: &[u8], txid: [u8; 12]) {
        let Some(&idx) = self.probes.get(&txid) else {
            let reason = match self.by_addr.contains_key(&from) {
                true => DropReason::Unsupported,
                false => DropReason::UnknownSource,
            };
            return self.stats.count_drop(reason, 1);
        };
        let Some(t) = self.transports.get_mut(idx).and_then(Option::as_mut) else {
            return self.stats.count_drop(DropReason::UnknownSource, 1);
        };
        let (Some(probe), Some(creds)) = (t.guard.probe, &t.ice) else {
            return self.stats.count_drop(DropReason::UnknownSource, 1);
        };
        if probe.addr != from || probe.txid != txid {
            return self.stats.count_drop(DropReason::AuthFailed, 1);
        }
        if ice::check_binding_success(buf, &txid, creds).is_err() {
            return self.stats.count_drop(DropReason::AuthFailed, 1);
        }
        self.probes.remove(&txid);
        t.guard.probe = None;
        if now.saturating_duration_since(probe.sent) >= PROBE_TIMEOUT {
            return self.stats.count_drop(DropReason::Unsupported, 1);
        }
        t.guard.moved_at = Some(now);
        match &mut t.consent {
            Some(c) => c.refresh(now),
            None => t.consent = Some(Consent::new(now)),
        }
        let id = t.id;
        if let Some(old) = t.remote.take() {
            if self.by_addr.get(&old) == Some(&idx) {
                self.by_addr.remove(&old);
            }
            tracing::info!(transport = id, %old, new = %from, "media moved to a new address that answered its check");
        }
        self.latch(idx, from);
    }

    /// DTLS goes up to the control plane, which runs the handshakes, but only from an address ICE
    /// confirmed for a transport that has ICE, and within the transport's budget: a forged datagram
    /// from elsewhere cannot disturb a handshake, and a flood cannot crowd the control plane.
    pub(super) fn on_dtls(&mut self, now: Instant, from: SocketAddr, buf: &[u8]) {
        let Some(&idx) = self.by_addr.get(&from) else {
            return self.stats.count_drop(DropReason::UnknownSource, 1);
        };
        match self.transports.get_mut(idx).and_then(Option::as_mut) {
            Some(t) if t.ice.is_some() => {
                if !t.guard.dtls_budget.take(now, t.inbound.is_some()) {
                    return self.stats.count_drop(DropReason::DtlsFlood, 1);
                }
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
