//! msgr v1 message signatures (CephxSessionHandler): computed over the CRCs and lengths of a
//! message with the connection's session key, in the format the negotiated features select.
//!
//! * CEPHX_V2 (feature bit 61): AES-CBC of a 32-byte block (CRCs, lengths, low 32 bits of seq),
//!   signature = XOR of the first four LE u64 words of the ciphertext.
//! * Legacy: the cephx envelope of the four CRCs (a 16-byte bufferlist), signature = the
//!   first LE u64 of the ciphertext.
//!
//! Checks compare in constant time. Not here: whether to sign or check (the messenger's
//! options and `MSG_AUTH`), the CRCs themselves (`msgr-wire`).

use bytes::BufMut;
use subtle::ConstantTimeEq;

use crate::cephx::xor_words;
use crate::crypto::aes_cbc_encrypt;
use crate::envelope::{enc_bl, BlobBody};
use crate::key::CryptoKey;
use crate::AuthError;

/// `CEPH_FEATURE_CEPHX_V2`.
pub const FEATURE_CEPHX_V2: u64 = 1 << 61;
/// `CEPH_FEATURE_MSG_AUTH`: the peer checks signatures.
pub const FEATURE_MSG_AUTH: u64 = 1 << 23;
/// `CEPH_MSG_FOOTER_SIGNED`.
pub const FOOTER_SIGNED: u8 = 1 << 2;

/// Which signature format a connection uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureFormat {
    /// CEPHX_V2 negotiated ("mimic+").
    CephxV2,
    /// No CEPHX_V2.
    Legacy,
}

impl SignatureFormat {
    /// The format of a connection with these negotiated features (`connect & reply`).
    pub fn for_features(features: u64) -> Self {
        if features & FEATURE_CEPHX_V2 != 0 {
            SignatureFormat::CephxV2
        } else {
            SignatureFormat::Legacy
        }
    }
}

/// What a signature covers: the header CRC as sent, the footer CRCs, the header lengths and seq.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SignedFields {
    /// `header.crc`.
    pub header_crc: u32,
    /// `footer.front_crc`.
    pub front_crc: u32,
    /// `header.front_len`.
    pub front_len: u32,
    /// `footer.middle_crc`.
    pub middle_crc: u32,
    /// `header.middle_len`.
    pub middle_len: u32,
    /// `footer.data_crc`.
    pub data_crc: u32,
    /// `header.data_len`.
    pub data_len: u32,
    /// `header.seq` (the V2 format signs its low 32 bits).
    pub seq: u64,
}

/// Signs and checks the messages of one authorized connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageSigner {
    key: CryptoKey,
    format: SignatureFormat,
}

impl MessageSigner {
    /// A signer with the connection's session key.
    pub fn new(key: CryptoKey, format: SignatureFormat) -> Self {
        MessageSigner { key, format }
    }

    /// The format in use.
    pub fn format(&self) -> SignatureFormat {
        self.format
    }

    /// The signature of a message (`footer.sig`).
    pub fn sign(&self, f: &SignedFields) -> Result<u64, AuthError> {
        match self.format {
            SignatureFormat::CephxV2 => {
                let mut block = Vec::with_capacity(32);
                for w in [
                    f.header_crc,
                    f.front_crc,
                    f.front_len,
                    f.middle_crc,
                    f.middle_len,
                    f.data_crc,
                    f.data_len,
                ] {
                    block.put_u32_le(w);
                }
                block.put_u32_le(f.seq as u32);
                let ct = aes_cbc_encrypt(&self.key, &block)?;
                Ok(xor_words(ct.get(..32).unwrap_or(&ct)))
            }
            SignatureFormat::Legacy => {
                let mut crcs = Vec::with_capacity(16);
                for w in [f.header_crc, f.front_crc, f.middle_crc, f.data_crc] {
                    crcs.put_u32_le(w);
                }
                let ct = enc_bl(&self.key, &BlobBody(crcs.into()))?;
                Ok(xor_words(ct.get(..8).unwrap_or(&ct)))
            }
        }
    }

    /// Checks `sig` against the message's signature in constant time.
    pub fn check(&self, f: &SignedFields, sig: u64) -> Result<(), AuthError> {
        let want = self.sign(f)?;
        if bool::from(want.to_le_bytes().ct_eq(&sig.to_le_bytes())) {
            Ok(())
        } else {
            Err(AuthError::BadSignature { seq: f.seq })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(hex: &str) -> CryptoKey {
        let mut k = [0u8; 16];
        for (i, b) in k.iter_mut().enumerate() {
            *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
        }
        CryptoKey::aes(k)
    }

    #[test]
    fn spec_g2_cephx_v2_signature_of_the_real_mon() {
        let s = MessageSigner::new(
            key("77a70e64c6d54f7c999e77a1e689d899"),
            SignatureFormat::for_features(FEATURE_CEPHX_V2),
        );
        let f = SignedFields {
            header_crc: 0xadaf_fd3e,
            front_crc: 0x3527_9ea3,
            front_len: 2878,
            seq: 1,
            ..Default::default()
        };
        assert_eq!(s.sign(&f), Ok(0x4130_9877_9791_c659));
        assert_eq!(s.check(&f, 0x4130_9877_9791_c659), Ok(()));
        assert_eq!(
            s.check(&f, 0x4130_9877_9791_c658),
            Err(AuthError::BadSignature { seq: 1 })
        );
        // The seq is signed: the same message at seq 2 has another signature.
        assert!(s
            .check(&SignedFields { seq: 2, ..f }, 0x4130_9877_9791_c659)
            .is_err());
    }

    #[test]
    fn spec_g3_legacy_signature_of_the_real_mon() {
        let s = MessageSigner::new(
            key("aec5a819b16f82a80b6bc551944d6a8a"),
            SignatureFormat::for_features(FEATURE_MSG_AUTH),
        );
        assert_eq!(s.format(), SignatureFormat::Legacy);
        let f = SignedFields {
            header_crc: 0x88ae_62db,
            front_crc: 0x54d2_80d1,
            ..Default::default()
        };
        assert_eq!(s.sign(&f), Ok(0xf8c9_ea79_45b0_b7a2));
        // Legacy signatures cover only the CRCs.
        assert_eq!(
            s.check(
                &SignedFields {
                    seq: 99,
                    front_len: 5,
                    ..f
                },
                0xf8c9_ea79_45b0_b7a2
            ),
            Ok(())
        );
    }
}
