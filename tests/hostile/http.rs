//! Slow, large and numerous HTTP clients against the server's limits: `/healthz` must keep answering.
