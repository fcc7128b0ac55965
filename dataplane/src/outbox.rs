//! The egress batch: a reusable pool of datagram slots that the sans-IO core fills and an I/O backend
//! drains with one batched send (sendmmsg, or many io_uring SQEs and one submit).
//!
//! Invariant: the pool is allocated once at its full capacity; filling and draining never allocate.
//! The core writes a datagram straight into a slot (copy + rewrite + encrypt in place), so a forwarded
//! packet is copied exactly once per subscriber.

use std::net::SocketAddr;

/// Bytes reserved per slot: a 1500-byte datagram plus room for an added CSRC and the SRTP tag.
pub const SLOT_SIZE: usize = 2048;

/// A batch of datagrams waiting to be sent.
pub struct Outbox {
    buf: Box<[u8]>,
    lens: Box<[u16]>,
    dests: Box<[SocketAddr]>,
    len: usize,
}

impl Outbox {
    /// A pool of `capacity` slots of [`SLOT_SIZE`] bytes each.
    pub fn with_capacity(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        let unspecified = SocketAddr::from(([0, 0, 0, 0], 0));
        Self {
            buf: vec![0u8; capacity * SLOT_SIZE].into_boxed_slice(),
            lens: vec![0u16; capacity].into_boxed_slice(),
            dests: vec![unspecified; capacity].into_boxed_slice(),
            len: 0,
        }
    }

    /// Datagrams queued.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Slots in the pool.
    pub fn capacity(&self) -> usize {
        self.lens.len()
    }

    /// Slots still free.
    pub fn remaining(&self) -> usize {
        self.capacity() - self.len
    }

    /// True when no slot is free.
    pub fn is_full(&self) -> bool {
        self.len == self.capacity()
    }

    /// Fills the next free slot: `fill` gets the whole slot and returns how many bytes it wrote, or
    /// `None` to abandon the slot. Returns false when the pool is full or `fill` abandoned the slot.
    #[inline]
    pub fn push_with(
        &mut self,
        dest: SocketAddr,
        fill: impl FnOnce(&mut [u8; SLOT_SIZE]) -> Option<usize>,
    ) -> bool {
        if self.is_full() {
            return false;
        }
        let i = self.len;
        let slot: &mut [u8; SLOT_SIZE] = (&mut self.buf[i * SLOT_SIZE..(i + 1) * SLOT_SIZE])
            .try_into()
            .expect("slot is SLOT_SIZE bytes");
        match fill(slot) {
            Some(n) if n <= SLOT_SIZE => {
                self.lens[i] = n as u16;
                self.dests[i] = dest;
                self.len += 1;
                true
            }
            _ => false,
        }
    }

    /// Copies `bytes` into the next free slot. Returns false when full or `bytes` is too large.
    pub fn push(&mut self, dest: SocketAddr, bytes: &[u8]) -> bool {
        self.push_with(dest, |slot| {
            let dst = slot.get_mut(..bytes.len())?;
            dst.copy_from_slice(bytes);
            Some(bytes.len())
        })
    }

    /// The `i`-th queued datagram.
    #[inline]
    pub fn get(&self, i: usize) -> (SocketAddr, &[u8]) {
        let start = i * SLOT_SIZE;
        (
            self.dests[i],
            &self.buf[start..start + self.lens[i] as usize],
        )
    }

    /// Raw pointer and length of the `i`-th queued datagram, for I/O backends that must keep
    /// message headers pointing into the pool until the kernel has consumed them.
    #[inline]
    pub fn slot_ptr(&self, i: usize) -> (*const u8, usize) {
        let (_, bytes) = self.get(i);
        (bytes.as_ptr(), bytes.len())
    }

    /// Total bytes queued.
    pub fn bytes(&self) -> usize {
        self.lens[..self.len].iter().map(|&l| l as usize).sum()
    }

    /// Iterates over queued datagrams in order.
    pub fn iter(&self) -> impl Iterator<Item = (SocketAddr, &[u8])> + '_ {
        (0..self.len).map(move |i| self.get(i))
    }

    /// Forgets every queued datagram (the pool stays allocated).
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Forgets the first `n` datagrams, keeping the rest in order (after a partial send).
    pub fn consume_front(&mut self, n: usize) {
        let n = n.min(self.len);
        if n == 0 {
            return;
        }
        let rest = self.len - n;
        self.buf
            .copy_within(n * SLOT_SIZE..(n + rest) * SLOT_SIZE, 0);
        self.lens.copy_within(n..n + rest, 0);
        self.dests.copy_within(n..n + rest, 0);
        self.len = rest;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_and_drains_without_growing() {
        let mut out = Outbox::with_capacity(2);
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        assert!(out.push(a, b"one"));
        assert!(out.push(a, b"two"));
        assert!(!out.push(a, b"three"), "full pool refuses");
        assert_eq!(out.get(1).1, b"two");
        out.consume_front(1);
        assert_eq!(out.len(), 1);
        assert_eq!(out.get(0).1, b"two");
        out.clear();
        assert!(out.is_empty());
        assert!(
            !out.push(a, &[0u8; SLOT_SIZE + 1]),
            "oversized datagram refused"
        );
    }
}
