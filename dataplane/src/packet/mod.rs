//! Zero-copy packet views (owned by the packet work item; see the task brief).
