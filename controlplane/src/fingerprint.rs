//! DTLS certificate fingerprints as SDP carries them (`a=fingerprint`, RFC 8122 §5): a typed value
//! from the offer's parser to the DTLS server, so the string is parsed once. Pure: the digests of
//! certificates are computed in [`crate::dtls`], which owns OpenSSL.

use std::fmt;
use std::str::FromStr;

/// An `a=fingerprint` value that does not parse, or a digest of the wrong length.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FingerprintError(pub String);

/// Hash function of an `a=fingerprint` (RFC 8122 §5, the ones WebRTC endpoints use).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FingerprintAlgorithm {
    /// `sha-1` (legacy; accepted, never produced).
    Sha1,
    /// `sha-256` (what we produce, and what browsers and aiortc send).
    Sha256,
    /// `sha-384`.
    Sha384,
    /// `sha-512`.
    Sha512,
}

impl FingerprintAlgorithm {
    /// Every supported algorithm.
    pub const ALL: [FingerprintAlgorithm; 4] = [
        FingerprintAlgorithm::Sha1,
        FingerprintAlgorithm::Sha256,
        FingerprintAlgorithm::Sha384,
        FingerprintAlgorithm::Sha512,
    ];

    /// The SDP token (`"sha-256"`).
    pub fn name(self) -> &'static str {
        match self {
            FingerprintAlgorithm::Sha1 => "sha-1",
            FingerprintAlgorithm::Sha256 => "sha-256",
            FingerprintAlgorithm::Sha384 => "sha-384",
            FingerprintAlgorithm::Sha512 => "sha-512",
        }
    }

    /// Digest length in bytes.
    pub fn digest_len(self) -> usize {
        match self {
            FingerprintAlgorithm::Sha1 => 20,
            FingerprintAlgorithm::Sha256 => 32,
            FingerprintAlgorithm::Sha384 => 48,
            FingerprintAlgorithm::Sha512 => 64,
        }
    }
}

impl fmt::Display for FingerprintAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An SDP `a=fingerprint` value: the hash algorithm and the certificate digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Fingerprint {
    algorithm: FingerprintAlgorithm,
    digest: Vec<u8>,
}

impl Fingerprint {
    /// A fingerprint from raw digest bytes; the length must match the algorithm.
    pub fn new(algorithm: FingerprintAlgorithm, digest: &[u8]) -> Result<Self, FingerprintError> {
        if digest.len() != algorithm.digest_len() {
            return Err(FingerprintError(format!(
                "{algorithm} digest must be {} bytes, got {}",
                algorithm.digest_len(),
                digest.len()
            )));
        }
        Ok(Fingerprint {
            algorithm,
            digest: digest.to_vec(),
        })
    }

    /// The hash algorithm.
    pub fn algorithm(&self) -> FingerprintAlgorithm {
        self.algorithm
    }

    /// The digest bytes.
    pub fn digest(&self) -> &[u8] {
        &self.digest
    }
}

impl fmt::Display for Fingerprint {
    /// SDP form: `sha-256 AB:CD:...` (upper-case hex, colon separated).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.algorithm.name())?;
        f.write_str(" ")?;
        for (i, b) in self.digest.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}

impl FromStr for Fingerprint {
    type Err = FingerprintError;

    /// Parses `"<hash-func> <XX:XX:...>"` (the value after `a=fingerprint:`), hash name and hex
    /// case-insensitive, surrounding whitespace ignored.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: String| FingerprintError(format!("{why} in {s:?}"));
        let mut parts = s.split_ascii_whitespace();
        let (Some(alg), Some(hex), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad(
                "expected \"<hash-func> <XX:XX:...>\" (two fields)".to_string()
            ));
        };
        let algorithm = FingerprintAlgorithm::ALL
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(alg))
            .ok_or_else(|| bad(format!("unsupported hash function {alg:?}")))?;
        let mut digest = Vec::with_capacity(algorithm.digest_len());
        for pair in hex.split(':') {
            if pair.len() != 2 {
                return Err(bad(format!(
                    "hex byte {pair:?} is not two digits (bytes are colon-separated)"
                )));
            }
            let mut byte = [0u8; 1];
            hex::decode_to_slice(pair, &mut byte)
                .map_err(|_| bad(format!("bad hex byte {pair:?}")))?;
            digest.push(byte[0]);
        }
        if digest.len() != algorithm.digest_len() {
            return Err(bad(format!(
                "{algorithm} needs {} bytes, got {}",
                algorithm.digest_len(),
                digest.len()
            )));
        }
        Ok(Fingerprint { algorithm, digest })
    }
}
