//! The server's DTLS certificate and the certificate digests behind SDP `a=fingerprint` values.
//!
//! - [`DtlsCertificate`]: a self-signed ECDSA P-256 certificate generated at start-up (what browsers
//!   and aiortc expect); its SHA-256 digest goes into every answer as `a=fingerprint:sha-256 ...`.
//! - [`Fingerprint::of_certificate`] and [`Fingerprint::matches`]: OpenSSL's digests of a
//!   certificate, for the pure [`Fingerprint`] type of [`crate::fingerprint`].

use std::fmt;

use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::x509::{X509NameBuilder, X509Ref, X509};

use super::DtlsError;
pub use crate::fingerprint::{Fingerprint, FingerprintAlgorithm};

impl Fingerprint {
    /// The digest of a DER certificate under `algorithm`.
    pub fn of_certificate(
        algorithm: FingerprintAlgorithm,
        cert: &X509Ref,
    ) -> Result<Self, DtlsError> {
        let d = cert.digest(message_digest(algorithm))?;
        Ok(Fingerprint::new(algorithm, &d)?)
    }

    /// Whether `cert` hashes to this fingerprint (constant-time comparison of the digests).
    pub fn matches(&self, cert: &X509Ref) -> Result<bool, DtlsError> {
        let d = cert.digest(message_digest(self.algorithm()))?;
        Ok(d.len() == self.digest().len() && openssl::memcmp::eq(&d, self.digest()))
    }
}

fn message_digest(algorithm: FingerprintAlgorithm) -> MessageDigest {
    match algorithm {
        FingerprintAlgorithm::Sha1 => MessageDigest::sha1(),
        FingerprintAlgorithm::Sha256 => MessageDigest::sha256(),
        FingerprintAlgorithm::Sha384 => MessageDigest::sha384(),
        FingerprintAlgorithm::Sha512 => MessageDigest::sha512(),
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

        let now = crate::clock::unix_secs(std::time::SystemTime::now());
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
