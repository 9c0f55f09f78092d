//! AES-128-CBC as Ceph uses it: the fixed IV `cephsageyudagreg`, PKCS#7 padding of at least
//! one byte on encryption, and Ceph's lenient unpadding on decryption (strip `min(last, 16)`
//! bytes, check nothing else: the cephx magic is what rejects a wrong key).
//!
//! The cipher is RustCrypto's (`aes` 0.9, `cbc` 0.2); nothing here is hand-written crypto.
//! Not here: the cephx envelope (`envelope.rs`), AES-GCM (msgr2 secure mode).

use aes::cipher::block_padding::{NoPadding, Pkcs7};
use aes::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};

use crate::key::{CryptoKey, KeyType, AES_KEY_LEN};
use crate::AuthError;

/// `CEPH_AES_IV`: the IV of every encryption.
pub const CEPH_AES_IV: &[u8; 16] = b"cephsageyudagreg";
/// AES block size.
pub const BLOCK_LEN: usize = 16;

type Encryptor = cbc::Encryptor<aes::Aes128>;
type Decryptor = cbc::Decryptor<aes::Aes128>;

/// The 16 key bytes of an AES key (the first 16 of its secret).
fn aes_key(key: &CryptoKey) -> Result<&[u8], AuthError> {
    match key.key_type {
        KeyType::Aes => key
            .secret()
            .expose()
            .get(..AES_KEY_LEN)
            .ok_or(AuthError::ShortSecret {
                len: key.secret().len(),
            }),
        KeyType::None => Err(AuthError::NoCipher),
    }
}

/// Ceph's `CryptoKey::encrypt`: AES-128-CBC with PKCS#7; the output is `plain.len()` rounded up
/// to the next multiple of 16 (a full block of padding when already aligned).
pub fn aes_cbc_encrypt(key: &CryptoKey, plain: &[u8]) -> Result<Vec<u8>, AuthError> {
    let enc =
        Encryptor::new_from_slices(aes_key(key)?, CEPH_AES_IV).map_err(|_| AuthError::NoCipher)?;
    Ok(enc.encrypt_padded_vec::<Pkcs7>(plain))
}

/// Ceph's `CryptoKey::decrypt`: the input must be a non-zero multiple of 16 bytes; the last
/// byte says how much padding to strip (at most 16). Every failure is [`AuthError::Decrypt`].
pub fn aes_cbc_decrypt(key: &CryptoKey, cipher: &[u8]) -> Result<Vec<u8>, AuthError> {
    if cipher.is_empty() || cipher.len() % BLOCK_LEN != 0 {
        return Err(AuthError::Decrypt);
    }
    let dec =
        Decryptor::new_from_slices(aes_key(key)?, CEPH_AES_IV).map_err(|_| AuthError::Decrypt)?;
    let mut out = dec
        .decrypt_padded_vec::<NoPadding>(cipher)
        .map_err(|_| AuthError::Decrypt)?;
    let pad = usize::from(out.last().copied().unwrap_or(0)).min(BLOCK_LEN);
    out.truncate(out.len() - pad);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{hex, kat_key};

    #[test]
    fn spec_g6_aes_cbc_hello_cephx() {
        let ct = aes_cbc_encrypt(&kat_key(), b"hello cephx").unwrap();
        assert_eq!(ct, hex("883048fe4bcd9dc07d67b017760a5e98"));
        assert_eq!(aes_cbc_decrypt(&kat_key(), &ct).unwrap(), b"hello cephx");
    }

    #[test]
    fn aligned_input_gets_a_full_block_of_padding() {
        let ct = aes_cbc_encrypt(&kat_key(), &[7u8; 32]).unwrap();
        assert_eq!(ct.len(), 48);
        assert_eq!(aes_cbc_decrypt(&kat_key(), &ct).unwrap(), vec![7u8; 32]);
        assert_eq!(aes_cbc_encrypt(&kat_key(), &[]).unwrap().len(), 16);
    }

    #[test]
    fn bad_lengths_and_none_keys_fail_without_panicking() {
        assert_eq!(aes_cbc_decrypt(&kat_key(), &[]), Err(AuthError::Decrypt));
        assert_eq!(
            aes_cbc_decrypt(&kat_key(), &[0; 15]),
            Err(AuthError::Decrypt)
        );
        let none = CryptoKey::new(
            KeyType::None,
            Default::default(),
            crate::Secret::new(Vec::new()),
        )
        .unwrap();
        assert_eq!(aes_cbc_encrypt(&none, b"x"), Err(AuthError::NoCipher));
    }
}
