//! Datagram I/O backends (owned by the I/O work item; see the task brief).
