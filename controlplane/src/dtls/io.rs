//! The in-memory "socket" under OpenSSL: [`DatagramIo`] implements `Read`/`Write` so an
//! `openssl::ssl::SslStream` can run over it (the crate wraps it in a custom BIO).
//!
//! - Read: hands OpenSSL at most one pending datagram per call (DTLS expects one datagram per
//!   `BIO_read`), `WouldBlock` when there is none, which OpenSSL reports as `WANT_READ`.
//! - Write: every OpenSSL write is one whole DTLS record. Records are packed into datagrams of at
//!   most `mtu` bytes; a flush (OpenSSL flushes at the end of each flight) closes the current
//!   datagram. A record is never split.

use std::collections::VecDeque;
use std::io::{self, Read, Write};

/// Datagram queues between the driver and OpenSSL.
#[derive(Debug)]
pub(crate) struct DatagramIo {
    incoming: Option<Vec<u8>>,
    outgoing: VecDeque<Vec<u8>>,
    /// Whether the last datagram in `outgoing` may still take more records.
    open: bool,
    mtu: usize,
}

impl DatagramIo {
    pub(crate) fn new(mtu: usize) -> Self {
        DatagramIo {
            incoming: None,
            outgoing: VecDeque::new(),
            open: false,
            mtu,
        }
    }

    /// Queues one datagram for OpenSSL's next read (replacing one it did not read).
    pub(crate) fn push_incoming(&mut self, datagram: &[u8]) {
        self.incoming = Some(datagram.to_vec());
    }

    /// Drops a datagram OpenSSL did not consume.
    pub(crate) fn clear_incoming(&mut self) {
        self.incoming = None;
    }

    /// The next datagram to send.
    pub(crate) fn pop_outgoing(&mut self) -> Option<Vec<u8>> {
        let d = self.outgoing.pop_front();
        if self.outgoing.is_empty() {
            self.open = false;
        }
        d
    }

    /// Whether a datagram is waiting to be sent.
    pub(crate) fn has_outgoing(&self) -> bool {
        !self.outgoing.is_empty()
    }

    /// Drops everything queued for sending.
    pub(crate) fn clear_outgoing(&mut self) {
        self.outgoing.clear();
        self.open = false;
    }
}

impl Read for DatagramIo {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.incoming.take() {
            Some(d) => {
                // A datagram larger than OpenSSL's buffer is truncated; OpenSSL then discards the
                // malformed record, as it would for a truncated UDP read.
                let n = d.len().min(buf.len());
                buf[..n].copy_from_slice(&d[..n]);
                Ok(n)
            }
            None => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

impl Write for DatagramIo {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.outgoing.back_mut() {
            Some(last) if self.open && last.len() + buf.len() <= self.mtu => {
                last.extend_from_slice(buf)
            }
            _ => {
                self.outgoing.push_back(buf.to_vec());
                self.open = true;
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.open = false;
        Ok(())
    }
}
