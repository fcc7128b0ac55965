//! Packet-index estimation and replay windows (RFC 3711 §3.3.1, §3.3.2, Appendix A), without
//! allocation.
//!
//! - [`IndexWindow`] tracks the highest packet index seen for one SSRC and a 128-bit bitmap of which
//!   of the last [`WINDOW`] indices were accepted. It serves both SRTP (48-bit index `ROC << 16 | SEQ`)
//!   and SRTCP (31-bit explicit index).
//! - [`IndexWindow::estimate_rtp_index`] is the receiver's ROC guess of Appendix A: the candidate
//!   index closest to the highest one seen (`ROC - 1`, `ROC` or `ROC + 1`).
//! - `check` is read-only; `accept` is called only after the packet authenticated, so a forged packet
//!   never moves the window (RFC 3711 §3.3.2: "update ... only after authentication").

/// Replay window size in packets (RFC 3711 §3.3.2 asks for at least 64; we keep 128).
pub(crate) const WINDOW: u64 = 128;

/// Largest SRTP packet index (2^48 - 1).
const MAX_RTP_INDEX: u64 = (1 << 48) - 1;

/// Highest accepted index and the replay bitmap of one stream.
///
/// Bit `k` of `bits` set means index `top - k` was accepted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct IndexWindow {
    top: u64,
    bits: u128,
    started: bool,
}

/// Why an index cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IndexError {
    /// Seen before, or older than the window.
    Replayed,
    /// The index space (2^48 SRTP packets) is exhausted: rekey needed (RFC 3711 §9.2).
    Exhausted,
}

impl IndexWindow {
    /// Highest index accepted so far (meaningful once something was accepted).
    #[cfg(test)]
    pub(crate) fn top(&self) -> u64 {
        self.top
    }

    /// Whether any index was accepted yet.
    #[cfg(test)]
    pub(crate) fn started(&self) -> bool {
        self.started
    }

    /// RFC 3711 Appendix A: estimate the 48-bit SRTP index of a packet with sequence number `seq`
    /// from the highest index seen (`s_l` and `ROC`). The first packet of a stream gets ROC 0.
    pub(crate) fn estimate_rtp_index(&self, seq: u16) -> Result<u64, IndexError> {
        if !self.started {
            return Ok(u64::from(seq));
        }
        let roc = self.top >> 16;
        let s_l = (self.top & 0xffff) as u16;
        let v = if s_l < 0x8000 {
            if seq > s_l && seq - s_l > 0x8000 {
                // From before the last wrap. With ROC 0 there is no earlier epoch: treat as too old.
                roc.checked_sub(1).ok_or(IndexError::Replayed)?
            } else {
                roc
            }
        } else if s_l - 0x8000 > seq {
            roc + 1
        } else {
            roc
        };
        let index = (v << 16) | u64::from(seq);
        if index > MAX_RTP_INDEX {
            return Err(IndexError::Exhausted);
        }
        Ok(index)
    }

    /// Read-only replay check (RFC 3711 §3.3.2).
    pub(crate) fn check(&self, index: u64) -> Result<(), IndexError> {
        if !self.started || index > self.top {
            return Ok(());
        }
        let delta = self.top - index;
        if delta >= WINDOW || self.bits & (1u128 << delta) != 0 {
            return Err(IndexError::Replayed);
        }
        Ok(())
    }

    /// Records `index` as accepted, sliding the window forward if it is the new highest.
    pub(crate) fn accept(&mut self, index: u64) {
        if !self.started {
            self.started = true;
            self.top = index;
            self.bits = 1;
        } else if index > self.top {
            let shift = index - self.top;
            self.bits = if shift >= WINDOW {
                1
            } else {
                (self.bits << shift) | 1
            };
            self.top = index;
        } else {
            let delta = self.top - index;
            if delta < WINDOW {
                self.bits |= 1u128 << delta;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept_seq(w: &mut IndexWindow, seq: u16) -> Result<u64, IndexError> {
        let i = w.estimate_rtp_index(seq)?;
        w.check(i)?;
        w.accept(i);
        Ok(i)
    }

    #[test]
    fn first_packet_gets_roc_zero() {
        let w = IndexWindow::default();
        assert_eq!(w.estimate_rtp_index(65000), Ok(65000));
        assert!(!w.started());
    }

    #[test]
    fn roc_increments_on_wrap_and_reordering_across_wrap() {
        let mut w = IndexWindow::default();
        for s in 65530u16..=65535 {
            accept_seq(&mut w, s).unwrap();
        }
        assert_eq!(accept_seq(&mut w, 2), Ok((1 << 16) | 2));
        // A late packet from before the wrap still maps to ROC 0.
        assert_eq!(accept_seq(&mut w, 65529), Ok(65529));
        assert_eq!(accept_seq(&mut w, 1), Ok((1 << 16) | 1));
        assert_eq!(w.top(), (1 << 16) | 2);
        // Many wraps.
        let mut seq = 3u16;
        for _ in 0..300_000u32 {
            accept_seq(&mut w, seq).unwrap();
            seq = seq.wrapping_add(1);
        }
        assert_eq!(w.top() >> 16, 5);
    }

    #[test]
    fn duplicates_and_too_old_are_replays() {
        let mut w = IndexWindow::default();
        for s in 1000u16..1200 {
            accept_seq(&mut w, s).unwrap();
        }
        assert_eq!(accept_seq(&mut w, 1199), Err(IndexError::Replayed));
        assert_eq!(accept_seq(&mut w, 1150), Err(IndexError::Replayed));
        // 1199 - 127 = 1072 is the oldest index still in the window; 1071 is out.
        assert_eq!(accept_seq(&mut w, 1071), Err(IndexError::Replayed));
        // A gap, then a late arrival inside the window is accepted once.
        accept_seq(&mut w, 1300).unwrap();
        assert_eq!(accept_seq(&mut w, 1250), Ok(1250));
        assert_eq!(accept_seq(&mut w, 1250), Err(IndexError::Replayed));
        assert_eq!(accept_seq(&mut w, 1172), Err(IndexError::Replayed));
        // 1173 is inside the window but was accepted before the gap.
        assert_eq!(accept_seq(&mut w, 1173), Err(IndexError::Replayed));
        assert_eq!(accept_seq(&mut w, 1201), Ok(1201));
    }

    #[test]
    fn check_is_read_only() {
        let mut w = IndexWindow::default();
        w.accept(10);
        let before = w;
        assert!(w.check(11).is_ok());
        assert_eq!(w, before);
    }

    #[test]
    fn big_jump_clears_window() {
        let mut w = IndexWindow::default();
        w.accept(5);
        w.accept(5 + 1000);
        assert_eq!(w.check(5), Err(IndexError::Replayed));
        assert_eq!(w.check(1004), Ok(()));
        assert_eq!(w.check(1005), Err(IndexError::Replayed));
    }

    #[test]
    fn before_first_wrap_with_roc_zero_is_too_old() {
        let mut w = IndexWindow::default();
        accept_seq(&mut w, 5).unwrap();
        assert_eq!(w.estimate_rtp_index(65000), Err(IndexError::Replayed));
    }

    #[test]
    fn index_exhaustion() {
        let mut w = IndexWindow::default();
        w.accept(MAX_RTP_INDEX);
        assert_eq!(w.estimate_rtp_index(0), Err(IndexError::Exhausted));
    }
}
