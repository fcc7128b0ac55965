//! SRTP key derivation (RFC 3711 §4.3) with the AES-CM PRF and key_derivation_rate 0, as DTLS-SRTP
//! requires (RFC 5764 §4.1.2). AEAD_AES_256_GCM uses AES_256_CM_PRF (RFC 7714 §11, RFC 6188 §7).
//!
//! With kdr = 0, `r = index DIV kdr` is 0, so `key_id = label || 0^48`. The PRF input is
//! `x = key_id XOR master_salt` (right-aligned in 112 bits, i.e. the label lands in byte 7 of the
//! salt), multiplied by 2^16; the output is the AES-CM keystream from that IV, truncated to the
//! wanted length. A 96-bit GCM master salt is placed in the same leading bytes and padded with zeros
//! (what libsrtp and webrtc-srtp do). Setup-time code: runs once per [`super::SrtpContext::new`].

use aes::cipher::{KeyIvInit, StreamCipher};
use aes::{Aes128, Aes256};

use super::SrtpError;

/// Label for the SRTP encryption key.
pub(crate) const LABEL_SRTP_ENCRYPTION: u8 = 0x00;
/// Label for the SRTP authentication key.
pub(crate) const LABEL_SRTP_AUTH: u8 = 0x01;
/// Label for the SRTP salting key.
pub(crate) const LABEL_SRTP_SALT: u8 = 0x02;
/// Label for the SRTCP encryption key.
pub(crate) const LABEL_SRTCP_ENCRYPTION: u8 = 0x03;
/// Label for the SRTCP authentication key.
pub(crate) const LABEL_SRTCP_AUTH: u8 = 0x04;
/// Label for the SRTCP salting key.
pub(crate) const LABEL_SRTCP_SALT: u8 = 0x05;

/// Fills `out` with the session key for `label` (RFC 3711 §4.3.1 / §4.3.3). The PRF is AES-128-CM
/// for a 16-byte master key and AES-256-CM for a 32-byte one.
pub(crate) fn derive(
    master_key: &[u8],
    master_salt: &[u8],
    label: u8,
    out: &mut [u8],
) -> Result<(), SrtpError> {
    if master_salt.len() > 14 {
        return Err(SrtpError::BadKeyLength {
            expected: 14,
            got: master_salt.len(),
        });
    }
    // IV = (key_id XOR master_salt) * 2^16: the salt occupies bytes 0..14, byte 7 gets the label,
    // bytes 8..14 would get r (0 here), bytes 14..16 are the block counter.
    let mut iv = [0u8; 16];
    iv[..master_salt.len()].copy_from_slice(master_salt);
    iv[7] ^= label;
    out.fill(0);
    match master_key.len() {
        16 => {
            let mut c = ctr::Ctr128BE::<Aes128>::new(master_key.into(), (&iv).into());
            c.apply_keystream(out);
        }
        32 => {
            let mut c = ctr::Ctr128BE::<Aes256>::new(master_key.into(), (&iv).into());
            c.apply_keystream(out);
        }
        got => return Err(SrtpError::BadKeyLength { expected: 16, got }),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        hex::decode(s).expect("test vectors are hex")
    }

    /// RFC 3711 Appendix B.3.
    #[test]
    fn rfc3711_b3_key_derivation() {
        let key = hex("E1F97A0D3E018BE0D64FA32C06DE4139");
        let salt = hex("0EC675AD498AFEEBB6960B3AABE6");

        let mut cipher_key = [0u8; 16];
        derive(&key, &salt, LABEL_SRTP_ENCRYPTION, &mut cipher_key).unwrap();
        assert_eq!(cipher_key.to_vec(), hex("C61E7A93744F39EE10734AFE3FF7A087"));

        let mut cipher_salt = [0u8; 14];
        derive(&key, &salt, LABEL_SRTP_SALT, &mut cipher_salt).unwrap();
        assert_eq!(cipher_salt.to_vec(), hex("30CBBC08863D8C85D49DB34A9AE1"));

        let mut auth_key = [0u8; 20];
        derive(&key, &salt, LABEL_SRTP_AUTH, &mut auth_key).unwrap();
        assert_eq!(
            auth_key.to_vec(),
            hex("CEBE321F6FF7716B6FD4AB49AF256A156D38BAA4")
        );
    }

    /// A 32-byte master key selects the AES-256 PRF; the first output block must equal one AES-256
    /// encryption of the PRF input block (checked with the block cipher directly).
    #[test]
    fn aes256_prf_first_block_is_one_aes256_block() {
        use aes::cipher::{BlockEncrypt, KeyInit};
        let key: Vec<u8> = (0u8..32).collect();
        let salt: Vec<u8> = (100u8..112).collect();
        let mut out = [0u8; 32];
        derive(&key, &salt, LABEL_SRTCP_ENCRYPTION, &mut out).unwrap();

        let aes = Aes256::new_from_slice(&key).unwrap();
        for (n, chunk) in out.chunks(16).enumerate() {
            let mut block = [0u8; 16];
            block[..12].copy_from_slice(&salt);
            block[7] ^= LABEL_SRTCP_ENCRYPTION;
            block[15] = n as u8;
            let mut b = block.into();
            aes.encrypt_block(&mut b);
            assert_eq!(chunk, b.as_slice());
        }
    }

    #[test]
    fn bad_lengths_are_errors() {
        let mut out = [0u8; 16];
        assert!(derive(&[0u8; 24], &[0u8; 14], 0, &mut out).is_err());
        assert!(derive(&[0u8; 16], &[0u8; 15], 0, &mut out).is_err());
    }
}
