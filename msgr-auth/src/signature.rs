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

use aes::cipher::block_padding::NoPadding;
use aes::cipher::{BlockModeEncrypt, InnerIvInit, KeyInit};
use subtle::ConstantTimeEq;

use crate::cephx::xor_words;
use crate::crypto::CEPH_AES_IV;
use crate::envelope::AUTH_ENC_MAGIC;
use crate::key::{CryptoKey, KeyType, AES_KEY_LEN};
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

/// Signs and checks the messages of one authorized connection. The AES key schedule is
/// computed once; a signature encrypts only the blocks it uses (two for CEPHX_V2, one for
/// legacy: CBC's first blocks do not depend on the padding block after them).
#[derive(Clone)]
pub struct MessageSigner {
    key: CryptoKey,
    /// Boxed: the key schedules are large, and signers travel in enums.
    cipher: Option<Box<aes::Aes128>>,
    format: SignatureFormat,
}

impl std::fmt::Debug for MessageSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageSigner")
            .field("key", &self.key)
            .field("format", &self.format)
            .finish()
    }
}

impl PartialEq for MessageSigner {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key && self.format == other.format
    }
}

impl Eq for MessageSigner {}

impl MessageSigner {
    /// The connection's session key (msgr2 signs its handshake with it: AUTH_SIGNATURE).
    pub fn key(&self) -> &CryptoKey {
        &self.key
    }

    /// A signer with the connection's session key (a key of type none cannot sign: every
    /// `sign` is then [`AuthError::NoCipher`]).
    pub fn new(key: CryptoKey, format: SignatureFormat) -> Self {
        let cipher = match key.key_type {
            KeyType::Aes => key
                .secret()
                .expose()
                .get(..AES_KEY_LEN)
                .and_then(|k| aes::Aes128::new_from_slice(k).ok())
                .map(Box::new),
            KeyType::None => None,
        };
        MessageSigner {
            key,
            cipher,
            format,
        }
    }

    /// The format in use.
    pub fn format(&self) -> SignatureFormat {
        self.format
    }

    /// The first `N` bytes of AES-128-CBC(session key, `block`) with Ceph's IV.
    fn cbc<const N: usize>(&self, mut block: [u8; N]) -> Result<[u8; N], AuthError> {
        let cipher = self.cipher.as_deref().cloned().ok_or(AuthError::NoCipher)?;
        let enc = cbc::Encryptor::<aes::Aes128>::inner_iv_init(cipher, CEPH_AES_IV.into());
        enc.encrypt_padded::<NoPadding>(&mut block, N)
            .map_err(|_| AuthError::NoCipher)?;
        Ok(block)
    }

    /// The signature of a message (`footer.sig`).
    pub fn sign(&self, f: &SignedFields) -> Result<u64, AuthError> {
        match self.format {
            SignatureFormat::CephxV2 => {
                let mut block = [0u8; 32];
                let words = [
                    f.header_crc,
                    f.front_crc,
                    f.front_len,
                    f.middle_crc,
                    f.middle_len,
                    f.data_crc,
                    f.data_len,
                    f.seq as u32,
                ];
                for (chunk, w) in block.chunks_exact_mut(4).zip(words) {
                    chunk.copy_from_slice(&w.to_le_bytes());
                }
                Ok(xor_words(&self.cbc(block)?))
            }
            SignatureFormat::Legacy => {
                // The envelope of a 16-byte bufferlist: u8 1, magic, u32 16, then the CRCs; the
                // signature is the first ciphertext word, so only the first block is needed.
                let mut block = [0u8; 16];
                block[0] = 1;
                block[1..9].copy_from_slice(&AUTH_ENC_MAGIC.to_le_bytes());
                block[9..13].copy_from_slice(&16u32.to_le_bytes());
                block[13..16].copy_from_slice(&f.header_crc.to_le_bytes()[..3]);
                Ok(xor_words(&self.cbc(block)?[..8]))
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
        // The legacy signature is the first ciphertext word: only the envelope head and the
        // first 3 bytes of the header CRC reach it (CVE-2018-1129, why CEPHX_V2 exists).
        let other = SignedFields {
            seq: 99,
            front_len: 5,
            front_crc: 1,
            data_crc: 2,
            header_crc: 0x11ae_62db,
            ..f
        };
        assert_eq!(s.check(&other, 0xf8c9_ea79_45b0_b7a2), Ok(()));
        assert!(s
            .check(
                &SignedFields {
                    header_crc: 0x88ae_62dc,
                    ..f
                },
                0xf8c9_ea79_45b0_b7a2
            )
            .is_err());
    }

    #[test]
    fn block_wise_signatures_equal_the_whole_cbc_encryption() {
        use crate::crypto::aes_cbc_encrypt;
        use crate::envelope::{enc_bl, BlobBody};
        let key = CryptoKey::aes([0x5a; 16]);
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..200 {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let w = |i: u32| (x >> (i * 5)) as u32;
            let f = SignedFields {
                header_crc: w(0),
                front_crc: w(1),
                front_len: w(2),
                middle_crc: w(3),
                middle_len: w(4),
                data_crc: w(5),
                data_len: w(6),
                seq: x,
            };
            let mut block = Vec::new();
            for v in [
                f.header_crc,
                f.front_crc,
                f.front_len,
                f.middle_crc,
                f.middle_len,
                f.data_crc,
                f.data_len,
                f.seq as u32,
            ] {
                block.extend_from_slice(&v.to_le_bytes());
            }
            let v2 = xor_words(&aes_cbc_encrypt(&key, &block).unwrap()[..32]);
            assert_eq!(
                MessageSigner::new(key.clone(), SignatureFormat::CephxV2).sign(&f),
                Ok(v2)
            );
            let mut crcs = Vec::new();
            for v in [f.header_crc, f.front_crc, f.middle_crc, f.data_crc] {
                crcs.extend_from_slice(&v.to_le_bytes());
            }
            let legacy = xor_words(&enc_bl(&key, &BlobBody(crcs.into())).unwrap()[..8]);
            assert_eq!(
                MessageSigner::new(key.clone(), SignatureFormat::Legacy).sign(&f),
                Ok(legacy)
            );
        }
    }
}

/// msgr2's AUTH_SIGNATURE (the cephx spec's §E.6): HMAC-SHA256 with the connection's
/// session key over every byte one side received (or sent) up to and including AUTH_DONE.
/// Without a session key (auth `none`) the signature is 32 zero bytes, as Ceph sends.
pub fn auth_signature(key: Option<&CryptoKey>, bytes: &[u8]) -> [u8; 32] {
    use hmac::{Hmac, KeyInit as _, Mac};
    let Some(key) = key else {
        return [0; 32];
    };
    let Ok(mut mac) = <Hmac<sha2::Sha256>>::new_from_slice(key.secret().expose()) else {
        return [0; 32];
    };
    mac.update(bytes);
    mac.finalize().into_bytes().into()
}

/// Compares two AUTH_SIGNATUREs in constant time.
pub fn auth_signature_matches(expected: &[u8; 32], got: &[u8]) -> bool {
    got.len() == 32 && bool::from(expected[..].ct_eq(got))
}

#[cfg(test)]
mod v2_tests {
    use super::*;

    #[test]
    fn none_signs_with_zeros_and_matching_is_exact() {
        assert_eq!(auth_signature(None, b"anything"), [0; 32]);
        let key = CryptoKey::aes([7; 16]);
        let s = auth_signature(Some(&key), b"abc");
        assert!(auth_signature_matches(&s, &s));
        let mut t = s;
        t[31] ^= 1;
        assert!(!auth_signature_matches(&s, &t));
        assert!(!auth_signature_matches(&s, &s[..31]));
    }
}
