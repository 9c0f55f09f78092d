//! Rotating service secrets (`RotatingSecrets`, `ExpiringCryptoKey`): what a mon uses to
//! encrypt the ticket blobs of a service and what the service (an OSD) fetches with
//! CEPHX_GET_ROTATING_KEY to decrypt them. Three are kept: previous, current, next; tickets
//! are minted with the current one (`KeyServer::_rotate_secret`).

use std::collections::BTreeMap;

use bytes::{Buf, BufMut};

use crate::codec::{get_count, get_struct_v, get_u64, len_u32, Decode, Encode, UTime};
use crate::key::CryptoKey;
use crate::AuthError;

/// How many secrets a service keeps (`KEY_ROTATE_NUM`).
pub const KEY_ROTATE_NUM: usize = 3;

/// `ExpiringCryptoKey`: `u8 1, CryptoKey, utime_t expiration`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiringCryptoKey {
    /// The secret.
    pub key: CryptoKey,
    /// When it expires.
    pub expiration: UTime,
}

impl Encode for ExpiringCryptoKey {
    fn encode(&self, buf: &mut impl BufMut) {
        buf.put_u8(1);
        self.key.encode(buf);
        self.expiration.encode(buf);
    }
}

impl Decode for ExpiringCryptoKey {
    fn decode(buf: &mut impl Buf) -> Result<Self, AuthError> {
        get_struct_v(buf, "ExpiringCryptoKey", 1)?;
        Ok(ExpiringCryptoKey {
            key: CryptoKey::decode(buf)?,
            expiration: UTime::decode(buf)?,
        })
    }
}

/// `RotatingSecrets`: `u8 1, map<u64 id, ExpiringCryptoKey>, u64 max_ver`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RotatingSecrets {
    /// Secrets by id, oldest first.
    pub secrets: BTreeMap<u64, ExpiringCryptoKey>,
    /// The highest id ever issued.
    pub max_ver: u64,
}

impl RotatingSecrets {
    /// The current secret: the second of three (the only one if there is one), as Ceph's
    /// `RotatingSecrets::current`.
    pub fn current(&self) -> Option<(u64, &ExpiringCryptoKey)> {
        let mut it = self.secrets.iter();
        let first = it.next();
        it.next().or(first).map(|(id, k)| (*id, k))
    }

    /// The secret with id `id`.
    pub fn get(&self, id: u64) -> Option<&CryptoKey> {
        self.secrets.get(&id).map(|e| &e.key)
    }

    /// Whether new secrets are due (fewer than three, or the current one expired).
    pub fn needs_rotation(&self, now: UTime) -> bool {
        self.secrets.len() < KEY_ROTATE_NUM
            || self.current().is_some_and(|(_, k)| k.expiration <= now)
    }

    /// Adds fresh secrets until none are due, dropping the oldest beyond three
    /// (`KeyServer::_rotate_secret`): the first expires at `now + ttl`, each next one a `ttl`
    /// after the later of `now + ttl` and the last one's expiry. Returns whether it changed.
    pub fn rotate(&mut self, now: UTime, ttl: UTime, rng: &mut impl rand::RngCore) -> bool {
        let mut changed = false;
        while self.needs_rotation(now) {
            let base = match self.secrets.values().next_back() {
                None => now,
                Some(last) => now.saturating_add(ttl).max(last.expiration),
            };
            self.max_ver += 1;
            let key = CryptoKey::generate(rng, now);
            self.secrets.insert(
                self.max_ver,
                ExpiringCryptoKey {
                    key,
                    expiration: base.saturating_add(ttl),
                },
            );
            while self.secrets.len() > KEY_ROTATE_NUM {
                self.secrets.pop_first();
            }
            changed = true;
        }
        changed
    }
}

impl Encode for RotatingSecrets {
    fn encode(&self, buf: &mut impl BufMut) {
        buf.put_u8(1);
        buf.put_u32_le(len_u32(self.secrets.len()));
        for (id, k) in &self.secrets {
            buf.put_u64_le(*id);
            k.encode(buf);
        }
        buf.put_u64_le(self.max_ver);
    }
}

impl Decode for RotatingSecrets {
    fn decode(buf: &mut impl Buf) -> Result<Self, AuthError> {
        get_struct_v(buf, "RotatingSecrets", 1)?;
        // id (8) + ExpiringCryptoKey (1 + 12 + 8) at least per entry.
        let n = get_count(buf, "RotatingSecrets.secrets", 29)?;
        let mut secrets = BTreeMap::new();
        for _ in 0..n {
            let id = get_u64(buf, "RotatingSecrets.id")?;
            secrets.insert(id, ExpiringCryptoKey::decode(buf)?);
        }
        Ok(RotatingSecrets {
            secrets,
            max_ver: get_u64(buf, "RotatingSecrets.max_ver")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn rotation_keeps_three_an_hour_apart_and_mints_with_the_middle_one() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let ttl = UTime::from_secs(3600);
        let now = UTime::from_secs(1_000_000);
        let mut r = RotatingSecrets::default();
        assert!(r.rotate(now, ttl, &mut rng));
        let ids: Vec<u64> = r.secrets.keys().copied().collect();
        assert_eq!(ids, [1, 2, 3]);
        let exp: Vec<u32> = r.secrets.values().map(|k| k.expiration.sec).collect();
        assert_eq!(exp, [1_003_600, 1_007_200, 1_010_800]);
        assert_eq!(r.current().map(|(id, _)| id), Some(2));
        assert!(!r.rotate(now, ttl, &mut rng));
        // Once the current one expires, one new secret comes and the oldest goes.
        assert!(r.rotate(UTime::from_secs(1_007_200), ttl, &mut rng));
        assert_eq!(r.secrets.keys().copied().collect::<Vec<_>>(), [2, 3, 4]);
        assert_eq!(r.current().map(|(id, _)| id), Some(3));
        assert_eq!(r.max_ver, 4);
    }
}
