//! The cephx envelope: `AES-CBC(key, u8 1 ‖ u64 AUTH_ENC_MAGIC ‖ encode(T))`, in its two forms,
//! raw ciphertext ([`enc_bl`], Ceph's `encode_encrypt_enc_bl`) and with a `u32` length prefix
//! ([`encode_encrypt`]), and their decoders, which reject a wrong magic (a wrong key).
//!
//! Which form each structure uses is the spec's table in §2.3 (pitfall §I.2): ticket blobs and
//! the authorizer challenge are raw, everything else is length-prefixed.

use bytes::{Buf, BufMut};

use crate::codec::{get_blob, len_u32, need, Decode, Encode};
use crate::crypto::{aes_cbc_decrypt, aes_cbc_encrypt};
use crate::key::CryptoKey;
use crate::AuthError;

/// `AUTH_ENC_MAGIC`, written little-endian after the envelope's version byte.
pub const AUTH_ENC_MAGIC: u64 = 0xff00_9cad_8826_aa55;
/// The envelope's `struct_v`.
const ENVELOPE_V: u8 = 1;

/// `encode_encrypt_enc_bl`: the raw ciphertext of `t` in the envelope.
pub fn enc_bl<T: Encode + ?Sized>(key: &CryptoKey, t: &T) -> Result<Vec<u8>, AuthError> {
    let mut plain = Vec::with_capacity(64);
    plain.put_u8(ENVELOPE_V);
    plain.put_u64_le(AUTH_ENC_MAGIC);
    t.encode(&mut plain);
    aes_cbc_encrypt(key, &plain)
}

/// `encode_encrypt`: `u32 len ‖ enc_bl(t)`, appended to `buf`.
pub fn encode_encrypt<T: Encode + ?Sized>(
    key: &CryptoKey,
    t: &T,
    buf: &mut impl BufMut,
) -> Result<(), AuthError> {
    let ct = enc_bl(key, t)?;
    buf.put_u32_le(len_u32(ct.len()));
    buf.put_slice(&ct);
    Ok(())
}

/// `encode_encrypt` into a new vector.
pub fn encrypt_to_vec<T: Encode + ?Sized>(key: &CryptoKey, t: &T) -> Result<Vec<u8>, AuthError> {
    let mut out = Vec::new();
    encode_encrypt(key, t, &mut out)?;
    Ok(out)
}

/// `decode_decrypt_enc_bl`: decrypts raw ciphertext, checks the magic, decodes `T`.
pub fn decode_decrypt_enc_bl<T: Decode>(key: &CryptoKey, cipher: &[u8]) -> Result<T, AuthError> {
    let plain = aes_cbc_decrypt(key, cipher)?;
    let mut p = &plain[..];
    need(&p, 9, "cephx envelope").map_err(|_| AuthError::Decrypt)?;
    let _struct_v = p.get_u8();
    if p.get_u64_le() != AUTH_ENC_MAGIC {
        return Err(AuthError::Decrypt);
    }
    T::decode(&mut p)
}

/// `decode_decrypt`: reads `u32 len ‖ ciphertext` from `buf`, then as [`decode_decrypt_enc_bl`].
pub fn decode_decrypt<T: Decode>(key: &CryptoKey, buf: &mut impl Buf) -> Result<T, AuthError> {
    let cipher = get_blob(buf, "encrypted blob")?;
    decode_decrypt_enc_bl(key, &cipher)
}

/// A `bufferlist` as an envelope payload (`u32 len` + bytes): what Ceph encrypts when it
/// encrypts a bufferlist (a reclaimed ticket blob, the legacy signature block).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BlobBody(pub bytes::Bytes);

impl Encode for BlobBody {
    fn encode(&self, buf: &mut impl BufMut) {
        crate::codec::put_blob(buf, &self.0);
    }
}

impl Decode for BlobBody {
    fn decode(buf: &mut impl Buf) -> Result<Self, AuthError> {
        Ok(BlobBody(get_blob(buf, "bufferlist")?))
    }
}

/// An encoding with no fields (the envelope of nothing, for the §G.6 vector).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Empty;

impl Encode for Empty {
    fn encode(&self, _: &mut impl BufMut) {}
}

impl Decode for Empty {
    fn decode(_: &mut impl Buf) -> Result<Self, AuthError> {
        Ok(Empty)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{hex, kat_key};

    #[test]
    fn spec_g6_envelope_of_nothing() {
        assert_eq!(
            enc_bl(&kat_key(), &Empty).unwrap(),
            hex("4ef83341ab40b06bff953ee7e75ca9a2")
        );
        assert_eq!(
            decode_decrypt_enc_bl::<Empty>(&kat_key(), &hex("4ef83341ab40b06bff953ee7e75ca9a2")),
            Ok(Empty)
        );
    }

    #[test]
    fn spec_g6_encrypt_u64_with_length_prefix() {
        let got = encrypt_to_vec(&kat_key(), &0x1122_3344_5566_7788u64).unwrap();
        assert_eq!(
            got,
            hex("200000005e4c58eba0ea931c02ef662853edc6c2436fd81cb2dc9281ad931da05565ec32")
        );
        assert_eq!(
            decode_decrypt::<u64>(&kat_key(), &mut &got[..]),
            Ok(0x1122_3344_5566_7788)
        );
    }

    #[test]
    fn wrong_key_fails_the_magic_check() {
        let ct = enc_bl(&kat_key(), &42u64).unwrap();
        let other = CryptoKey::aes([9; 16]);
        assert_eq!(
            decode_decrypt_enc_bl::<u64>(&other, &ct),
            Err(AuthError::Decrypt)
        );
        let mut flipped = ct.clone();
        flipped[3] ^= 1;
        assert_eq!(
            decode_decrypt_enc_bl::<u64>(&kat_key(), &flipped),
            Err(AuthError::Decrypt)
        );
    }
}
