//! The client's proof of its secret in CEPHX_GET_AUTH_SESSION_KEY
//! (`cephx_calc_client_server_challenge`).
//!
//! `key = XOR of the LE u64 words of encrypt(secret, u64 server ‖ u64 client)`, where
//! `encrypt` is the length-prefixed envelope: the XOR **includes** the 4-byte length (the
//! spec's pitfall §I.1), and a trailing partial word is ignored.

use bytes::BufMut;

use crate::codec::Encode;
use crate::envelope::encrypt_to_vec;
use crate::key::CryptoKey;
use crate::AuthError;

/// `CephXChallengeBlob`: the two challenges, encrypted to make the key.
struct ChallengeBlob {
    server_challenge: u64,
    client_challenge: u64,
}

impl Encode for ChallengeBlob {
    fn encode(&self, buf: &mut impl BufMut) {
        buf.put_u64_le(self.server_challenge);
        buf.put_u64_le(self.client_challenge);
    }
}

/// The challenge key both sides compute from the entity's secret and the two challenges.
pub fn challenge_key(
    secret: &CryptoKey,
    server_challenge: u64,
    client_challenge: u64,
) -> Result<u64, AuthError> {
    let enc = encrypt_to_vec(
        secret,
        &ChallengeBlob {
            server_challenge,
            client_challenge,
        },
    )?;
    Ok(xor_words(&enc))
}

/// XOR of the little-endian `u64` words of `bytes`; a partial last word is ignored.
pub(crate) fn xor_words(bytes: &[u8]) -> u64 {
    bytes.chunks_exact(8).fold(0, |k, w| {
        let mut a = [0u8; 8];
        a.copy_from_slice(w);
        k ^ u64::from_le_bytes(a)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_g1_challenge_keys_of_the_real_cli() {
        let key = CryptoKey::from_base64("AQD1NxVrtSVxJBAAnGRFWVacYFtcg3wdL5GO2Q==").unwrap();
        assert_eq!(
            challenge_key(&key, 0xbecb_7970_45f8_7ceb, 0x091b_5cc2_2260_6111),
            Ok(0xac5c_ccc4_f3b9_8b99)
        );
        assert_eq!(
            challenge_key(&key, 0x148f_9d4e_ef03_3c94, 0x9932_9b7e_ae35_5865),
            Ok(0x5c73_5a24_030b_fe9f)
        );
    }

    #[test]
    fn the_naive_xor_without_the_length_differs() {
        let key = CryptoKey::from_base64("AQD1NxVrtSVxJBAAnGRFWVacYFtcg3wdL5GO2Q==").unwrap();
        let enc = encrypt_to_vec(
            &key,
            &ChallengeBlob {
                server_challenge: 0xbecb_7970_45f8_7ceb,
                client_challenge: 0x091b_5cc2_2260_6111,
            },
        )
        .unwrap();
        assert_eq!(enc.len(), 36);
        assert_ne!(xor_words(&enc[4..]), 0xac5c_ccc4_f3b9_8b99);
    }
}
