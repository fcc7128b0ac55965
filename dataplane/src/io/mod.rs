//! TEMPORARY compile shim; replaced by the I/O work item.
#![allow(missing_docs, dead_code, unused)]
use std::net::SocketAddr;
#[derive(Debug, Clone, Copy, PartialEq, Eq)] pub enum BackendKind { Uring, Mmsg }
impl BackendKind { pub fn name(self) -> &'static str { todo!() } }
impl std::fmt::Display for BackendKind { fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { todo!() } }
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)] pub enum BackendChoice { #[default] Auto, Uring, Mmsg }
impl std::str::FromStr for BackendChoice { type Err = String; fn from_str(s: &str) -> Result<Self, String> { todo!() } }
#[derive(Debug, Clone)] pub struct IoConfig { pub recv_batch: usize, pub recv_buf_bytes: usize, pub send_buf_bytes: usize, pub max_send_batch: usize }
impl Default for IoConfig { fn default() -> Self { todo!() } }
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)] pub struct SendReport { pub sent: usize, pub failed: usize }
pub trait DatagramIo {
    fn kind(&self) -> BackendKind;
    fn local_addr(&self) -> SocketAddr;
    fn recv<F: FnMut(SocketAddr, &mut [u8]) -> std::ops::ControlFlow<()>>(&mut self, timeout: Option<std::time::Duration>, on_datagram: F) -> std::io::Result<usize>;
    fn send(&mut self, outbox: &mut crate::outbox::Outbox) -> std::io::Result<SendReport>;
    fn truncated(&self) -> u64;
}
pub mod socket { pub fn bind_udp(addr: std::net::SocketAddr, cfg: &super::IoConfig, nonblocking: bool) -> std::io::Result<std::net::UdpSocket> { todo!() } }
pub mod wake { #[derive(Clone)] pub struct Wake; impl Wake { pub fn new() -> std::io::Result<Self> { todo!() } pub fn wake(&self) {} pub fn fd(&self) -> i32 { 0 } pub fn drain(&self) {} } }
pub mod mmsg { pub struct MmsgIo; impl MmsgIo { pub fn new(socket: std::net::UdpSocket, wake: super::wake::Wake, cfg: &super::IoConfig) -> std::io::Result<Self> { todo!() } }
 impl super::DatagramIo for MmsgIo { fn kind(&self) -> super::BackendKind { todo!() } fn local_addr(&self) -> std::net::SocketAddr { todo!() } fn recv<F: FnMut(std::net::SocketAddr, &mut [u8]) -> std::ops::ControlFlow<()>>(&mut self, timeout: Option<std::time::Duration>, on_datagram: F) -> std::io::Result<usize> { todo!() } fn send(&mut self, outbox: &mut crate::outbox::Outbox) -> std::io::Result<super::SendReport> { todo!() } fn truncated(&self) -> u64 { 0 } } }
pub mod uring { pub struct UringIo; impl UringIo { pub fn new(socket: std::net::UdpSocket, wake: super::wake::Wake, cfg: &super::IoConfig) -> std::io::Result<Self> { todo!() } pub fn probe() -> std::io::Result<()> { todo!() } }
 impl super::DatagramIo for UringIo { fn kind(&self) -> super::BackendKind { todo!() } fn local_addr(&self) -> std::net::SocketAddr { todo!() } fn recv<F: FnMut(std::net::SocketAddr, &mut [u8]) -> std::ops::ControlFlow<()>>(&mut self, timeout: Option<std::time::Duration>, on_datagram: F) -> std::io::Result<usize> { todo!() } fn send(&mut self, outbox: &mut crate::outbox::Outbox) -> std::io::Result<super::SendReport> { todo!() } fn truncated(&self) -> u64 { 0 } } }
