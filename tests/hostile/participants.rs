//! Members with valid tokens who misbehave on signaling: floods, oversized frames, half-open sockets,
//! listeners that try to publish peer to peer.
