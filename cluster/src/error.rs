//! What can go wrong talking to the cluster.

/// A cluster operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// Redis could not be reached or answered with an error.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// A record in Redis that does not parse (another version, or not ours).
    #[error("unreadable cluster record {key}: {reason}")]
    BadRecord {
        /// The Redis key.
        key: String,
        /// Why it does not parse.
        reason: String,
    },
    /// A Redis command did not answer within the store's timeout.
    #[error("redis did not answer within {0} ms")]
    Timeout(u64),
}
