//! Every msgr-auth decoder fed the same arbitrary bytes: none may panic. The first byte picks
//! the decoder; the rest is its input. Decryption paths run with a fixed key so that inputs
//! reach the structure decoders after the magic only when the fuzzer finds ciphertext (it
//! rarely will); the plain decoders get the bytes directly.
#![no_main]

use libfuzzer_sys::fuzz_target;
use msgr_auth::cephx::*;
use msgr_auth::envelope::{decode_decrypt, decode_decrypt_enc_bl};
use msgr_auth::provider::{AuthClient, CephxClient, NoneAuthorizer};
use msgr_auth::{CryptoKey, Decode, EntityName, Keyring, UTime};
use rand::SeedableRng;

fn key() -> CryptoKey {
    CryptoKey::aes([7; 16])
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else { return };
    let now = UTime::from_secs(1_000);
    match sel % 20 {
        0 => drop(CephXServerChallenge::from_slice(rest)),
        1 => drop(CephXResponseHeader::from_slice(rest)),
        2 => drop(CephXTicketBlob::from_slice(rest)),
        3 => drop(CephXAuthenticate::from_slice(rest)),
        4 => drop(CephXServiceTicket::from_slice(rest)),
        5 => drop(AuthTicket::from_slice(rest)),
        6 => drop(CephXServiceTicketInfo::from_slice(rest)),
        7 => drop(CephXAuthorize::from_slice(rest)),
        8 => drop(CephXAuthorizeReply::from_slice(rest)),
        9 => drop(RotatingSecrets::from_slice(rest)),
        10 => drop(AuthNegotiate::from_slice(rest)),
        11 => drop(CryptoKey::from_slice(rest)),
        12 => drop(decode_ticket_reply(&mut &rest[..], &key(), Some(&key()), now)),
        13 => drop(decode_decrypt::<CephXServiceTicketInfo>(&key(), &mut &rest[..])),
        14 => drop(decode_decrypt_enc_bl::<CephXAuthorizeChallenge>(&key(), rest)),
        15 => drop(AuthorizerHead::from_slice(rest)),
        16 => drop(NoneAuthorizer::from_slice(rest)),
        17 => {
            if let Ok(text) = std::str::from_utf8(rest) {
                drop(Keyring::parse(text));
            }
        }
        18 => {
            // A client fed arbitrary replies in every state.
            let rng = Box::new(rand::rngs::StdRng::seed_from_u64(1));
            let mut c = CephxClient::new(EntityName::client("admin"), key(), 0x15, rng);
            for chunk in rest.split(|b| *b == 0xa5) {
                if c.handle_reply(now, 0, chunk).is_err() {
                    break;
                }
                if c.build_request(now).is_err() {
                    break;
                }
            }
        }
        _ => {
            let mut secrets = msgr_auth::provider::ServiceKeyStore::default();
            let mut r = RotatingSecrets::default();
            r.secrets.insert(1, ExpiringCryptoKey { key: key(), expiration: UTime::from_secs(u32::MAX) });
            secrets.rotating.insert(msgr_auth::ENTITY_OSD, r);
            let mut state = ChallengeState::default();
            let mut rng = rand::rngs::StdRng::seed_from_u64(2);
            drop(verify_authorizer(&secrets, msgr_auth::ENTITY_OSD, rest, Some(&mut state), now, &mut rng));
        }
    }
});
