//! The server's DTLS certificate and SDP `a=fingerprint` values.
//!
//! - [`DtlsCertificate`]: a self-signed ECDSA P-256 certificate generated at start-up (what browsers
//!   and aiortc expect); its SHA-256 digest goes into every answer as `a=fingerprint:sha-256 ...`.
//! - [`Fingerprint`]: algorithm plus digest bytes, parsed from and printed in SDP form
//!   (`"sha-256 AB:CD:..."`, RFC 8122 §5), hex case-insensitive on input, upper case on output.

use std::fmt;
use std::str::FromStr;

use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::x509::{X509NameBuilder, X509Ref, X509};

use super::DtlsError;

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

    fn message_digest(self) -> MessageDigest {
        match self {
            FingerprintAlgorithm::Sha1 => MessageDigest::sha1(),
            FingerprintAlgorithm::Sha256 => MessageDigest::sha256(),
            FingerprintAlgorithm::Sha384 => MessageDigest::sha384(),
            FingerprintAlgorithm::Sha512 => MessageDigest::sha512(),
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
    pub fn new(algorithm: FingerprintAlgorithm, digest: &[u8]) -> Result<Self, DtlsError> {
        if digest.len() != algorithm.digest_len() {
            return Err(DtlsError::BadFingerprint(format!(
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

    /// The digest of a DER certificate under `algorithm`.
    pub fn of_certificate(
        algorithm: FingerprintAlgorithm,
        cert: &X509Ref,
    ) -> Result<Self, DtlsError> {
        let d = cert.digest(algorithm.message_digest())?;
        Fingerprint::new(algorithm, &d)
    }

    /// The hash algorithm.
    pub fn algorithm(&self) -> FingerprintAlgorithm {
        self.algorithm
    }

    /// The digest bytes.
    pub fn digest(&self) -> &[u8] {
        &self.digest
    }

    /// Whether `cert` hashes to this fingerprint (constant-time comparison of the digests).
    pub fn matches(&self, cert: &X509Ref) -> Result<bool, DtlsError> {
        let d = cert.digest(self.algorithm.message_digest())?;
        Ok(d.len() == self.digest.len() && openssl::memcmp::eq(&d, &self.digest))
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
    type Err = DtlsError;

    /// Parses `"<hash-func> <XX:XX:...>"` (the value after `a=fingerprint:`), hash name and hex
    /// case-insensitive, surrounding whitespace ignored.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: String| DtlsError::BadFingerprint(format!("{why} in {s:?}"));
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
            let b = pair.as_bytes();
            if b.len() != 2 {
                return Err(bad(format!(
                    "hex byte {pair:?} is not two digits (bytes are colon-separated)"
                )));
            }
            let hi = hex_val(b[0]).ok_or_else(|| bad(format!("bad hex byte {pair:?}")))?;
            let lo = hex_val(b[1]).ok_or_else(|| bad(format!("bad hex byte {pair:?}")))?;
            digest.push(hi << 4 | lo);
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

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// The server's certificate: self-signed ECDSA P-256 with its private key and SHA-256 fingerprint.
/// Generate one at start-up and share it (by reference) between all [`super::DtlsServer`]s.
#[derive(Clone)]
pub struct DtlsCertificate {
    pub(crate) cert: X509,
    pub(crate) key: PKey<Private>,
    fingerprint: Fingerprint,
}

impl fmt::Debug for DtlsCertificate {
    /// Never prints the private key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DtlsCertificate")
            .field("fingerprint", &format_args!("{}", self.fingerprint))
            .finish_non_exhaustive()
    }
}

impl DtlsCertificate {
    /// Generates a fresh P-256 key and a self-signed X.509 v3 certificate (random serial, CN
    /// `sluice`, valid from a day ago for 30 days, signed with ECDSA-SHA256).
    pub fn generate() -> Result<Self, DtlsError> {
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
        let key = PKey::from_ec_key(EcKey::generate(&group)?)?;

        let mut name = X509NameBuilder::new()?;
        name.append_entry_by_nid(Nid::COMMONNAME, "sluice")?;
        let name = name.build();

        let mut serial = BigNum::new()?;
        serial.rand(63, MsbOption::MAYBE_ZERO, false)?;

        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let not_before = i64::try_from(now).unwrap_or(i64::MAX / 2) - 86_400;

        let mut b = X509::builder()?;
        b.set_version(2)?;
        let serial = serial.to_asn1_integer()?;
        let not_before = Asn1Time::from_unix(not_before)?;
        let not_after = Asn1Time::days_from_now(30)?;
        b.set_serial_number(&serial)?;
        b.set_subject_name(&name)?;
        b.set_issuer_name(&name)?;
        b.set_pubkey(&key)?;
        b.set_not_before(&not_before)?;
        b.set_not_after(&not_after)?;
        b.sign(&key, MessageDigest::sha256())?;
        let cert = b.build();

        let fingerprint = Fingerprint::of_certificate(FingerprintAlgorithm::Sha256, &cert)?;
        Ok(DtlsCertificate {
            cert,
            key,
            fingerprint,
        })
    }

    /// The SHA-256 fingerprint for our SDP (`a=fingerprint:{fingerprint}`).
    pub fn fingerprint(&self) -> &Fingerprint {
        &self.fingerprint
    }

    /// The X.509 certificate.
    pub fn x509(&self) -> &X509Ref {
        &self.cert
    }
}
