//! `CryptoKey` (type, creation time, secret), its encoding, its base64 form in keyrings, and
//! [`Secret`], the bytes that never reach `Debug` or a log.
//!
//! Not here: the cipher itself (`crypto.rs`), keyring files (`keyring.rs`), key types newer
//! than Pacific (AES256-CTS-HMAC-SHA384-192, type 2, Tentacle): they decode as
//! [`AuthError::UnknownKeyType`].

use std::fmt;

use base64::Engine as _;
use bytes::{Buf, BufMut, Bytes};
use subtle::ConstantTimeEq;

use crate::codec::{get_u16, need, Decode, Encode, UTime};
use crate::AuthError;

/// Length of an AES-128 key.
pub const AES_KEY_LEN: usize = 16;

/// `CEPH_CRYPTO_*`: the type of a [`CryptoKey`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyType {
    /// `CEPH_CRYPTO_NONE` (0): no cipher.
    None,
    /// `CEPH_CRYPTO_AES` (1): AES-128-CBC, the only type Pacific uses.
    Aes,
}

impl KeyType {
    /// The wire code.
    pub fn code(self) -> u16 {
        match self {
            KeyType::None => 0,
            KeyType::Aes => 1,
        }
    }

    /// The type of a wire code.
    pub fn from_code(key_type: u16) -> Result<Self, AuthError> {
        match key_type {
            0 => Ok(KeyType::None),
            1 => Ok(KeyType::Aes),
            _ => Err(AuthError::UnknownKeyType { key_type }),
        }
    }
}

/// Secret key bytes. `Debug` prints only the length; equality is constant-time.
#[derive(Clone)]
pub struct Secret(Bytes);

impl Secret {
    /// Wraps secret bytes.
    pub fn new(bytes: impl Into<Bytes>) -> Self {
        Secret(bytes.into())
    }

    /// The bytes (for the cipher; do not log them).
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret(<{} bytes redacted>)", self.0.len())
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.0.len() == other.0.len() && bool::from(self.0.ct_eq(&other.0))
    }
}

impl Eq for Secret {}

/// Ceph's `CryptoKey`: `u16 type, utime_t created, u16 len, secret`. An AES key is 28 bytes
/// encoded; its base64 is the `key = AQ…` of a keyring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CryptoKey {
    /// The key type.
    pub key_type: KeyType,
    /// When the key was made.
    pub created: UTime,
    secret: Secret,
}

impl CryptoKey {
    /// A key; an AES secret must have at least 16 bytes (Ceph keys with the first 16).
    pub fn new(key_type: KeyType, created: UTime, secret: Secret) -> Result<Self, AuthError> {
        if key_type == KeyType::Aes && secret.len() < AES_KEY_LEN {
            return Err(AuthError::ShortSecret { len: secret.len() });
        }
        if secret.len() > usize::from(u16::MAX) {
            return Err(AuthError::TooLong {
                what: "secret",
                len: secret.len(),
                limit: usize::from(u16::MAX),
            });
        }
        Ok(CryptoKey {
            key_type,
            created,
            secret,
        })
    }

    /// A fresh random AES-128 key made at `created`.
    pub fn generate(rng: &mut impl rand::RngCore, created: UTime) -> Self {
        let mut s = [0u8; AES_KEY_LEN];
        rng.fill_bytes(&mut s);
        CryptoKey {
            key_type: KeyType::Aes,
            created,
            secret: Secret::new(s.to_vec()),
        }
    }

    /// An AES key from a 16-byte secret (tests, vectors).
    pub fn aes(secret: [u8; AES_KEY_LEN]) -> Self {
        CryptoKey {
            key_type: KeyType::Aes,
            created: UTime::default(),
            secret: Secret::new(secret.to_vec()),
        }
    }

    /// The secret.
    pub fn secret(&self) -> &Secret {
        &self.secret
    }

    /// Parses the base64 form of a keyring's `key =` line.
    pub fn from_base64(text: &str) -> Result<Self, AuthError> {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|_| AuthError::Base64)?;
        Self::from_slice(&raw)
    }

    /// The base64 form, as `ceph-authtool` prints it.
    pub fn to_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.to_bytes())
    }
}

impl Encode for CryptoKey {
    fn encode(&self, buf: &mut impl BufMut) {
        buf.put_u16_le(self.key_type.code());
        self.created.encode(buf);
        // The constructor keeps secrets within u16.
        buf.put_u16_le(u16::try_from(self.secret.len()).unwrap_or(u16::MAX));
        buf.put_slice(self.secret.expose());
    }
}

impl Decode for CryptoKey {
    fn decode(buf: &mut impl Buf) -> Result<Self, AuthError> {
        let key_type = KeyType::from_code(get_u16(buf, "CryptoKey.type")?)?;
        let created = UTime::decode(buf)?;
        let len = usize::from(get_u16(buf, "CryptoKey.len")?);
        need(buf, len, "CryptoKey.secret")?;
        let secret = Secret::new(buf.copy_to_bytes(len));
        CryptoKey::new(key_type, created, secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyring_key_decodes_to_an_aes_key_and_back() {
        let text = "AQD1NxVrtSVxJBAAnGRFWVacYFtcg3wdL5GO2Q==";
        let key = CryptoKey::from_base64(text).unwrap();
        assert_eq!(key.key_type, KeyType::Aes);
        assert_eq!(key.secret().len(), 16);
        assert_eq!(key.created.sec, 0x6b15_37f5);
        assert_eq!(key.to_base64(), text);
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let key = CryptoKey::aes([0xab; 16]);
        let dbg = format!("{key:?}");
        assert!(dbg.contains("redacted"), "{dbg}");
        assert!(
            !dbg.to_lowercase().contains("ab, ab") && !dbg.contains("171"),
            "{dbg}"
        );
    }

    #[test]
    fn short_and_unknown_keys_are_refused() {
        let mut short = vec![1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0];
        short.extend_from_slice(&[7; 8]);
        assert_eq!(
            CryptoKey::from_slice(&short),
            Err(AuthError::ShortSecret { len: 8 })
        );
        let unknown = [2u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            CryptoKey::from_slice(&unknown),
            Err(AuthError::UnknownKeyType { key_type: 2 })
        );
        assert_eq!(
            CryptoKey::from_base64("not base64!"),
            Err(AuthError::Base64)
        );
    }
}
