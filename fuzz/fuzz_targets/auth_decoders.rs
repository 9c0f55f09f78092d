//! Every msgr-auth decoder fed the same arbitrary bytes: none may panic. The first byte picks
//! the decoder; the rest is its input. Decryption paths run with a fixed key so that inputs
//! reach the structure decoders after the magic only when the fuzzer finds ciphertext (it
//! rarely will); the plain decoders get the bytes directly.
#![no_main]

use bytes::BufMut;
use libfuzzer_sys::fuzz_target;
use msgr_auth::cephx::*;
use msgr_auth::envelope::{decode_decrypt, decode_decrypt_enc_bl, enc_bl, encode_encrypt};
use msgr_auth::provider::{
    AuthClient, AuthServer, CephxAuthServer, CephxClient, NoneAuthorizer, TicketTtls,
};
use msgr_auth::{CryptoKey, Decode, Encode, EntityName, Keyring, UTime};

/// Raw bytes as an envelope body: lets the fuzzer choose the plaintext behind a valid magic.
struct Raw<'a>(&'a [u8]);

impl Encode for Raw<'_> {
    fn encode(&self, buf: &mut impl BufMut) {
        buf.put_slice(self.0);
    }
}
use rand::SeedableRng;

fn key() -> CryptoKey {
    CryptoKey::aes([7; 16])
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let now = UTime::from_secs(1_000);
    match sel % 24 {
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
        12 => drop(decode_ticket_reply(
            &mut &rest[..],
            &key(),
            Some(&key()),
            now,
        )),
        13 => drop(decode_decrypt::<CephXServiceTicketInfo>(
            &key(),
            &mut &rest[..],
        )),
        14 => drop(decode_decrypt_enc_bl::<CephXAuthorizeChallenge>(
            &key(),
            rest,
        )),
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
        19 => {
            // Plaintext of the fuzzer's choosing behind a valid envelope.
            let ct = enc_bl(&key(), &Raw(rest)).unwrap_or_default();
            drop(decode_decrypt_enc_bl::<CephXServiceTicketInfo>(&key(), &ct));
            drop(decode_decrypt_enc_bl::<RotatingSecrets>(&key(), &ct));
            drop(decode_decrypt_enc_bl::<CephXAuthorizeReply>(&key(), &ct));
        }
        20 => {
            // A ticket reply whose encrypted service ticket holds the fuzzer's plaintext,
            // followed by the fuzzer's bytes for the blob part.
            let cut = rest.first().map_or(0, |c| usize::from(*c)).min(rest.len());
            let (plain, tail) = rest.split_at(cut);
            let mut b = vec![1u8, 1, 0, 0, 0, 4, 0, 0, 0, 1];
            if encode_encrypt(&key(), &Raw(plain), &mut b).is_ok() {
                b.extend_from_slice(tail);
                drop(decode_ticket_reply(&mut &b[..], &key(), Some(&key()), now));
            }
        }
        21 | 22 => {
            // A mon session fed arbitrary requests (the peer input of the server side).
            let mut ring = Keyring::new();
            let entry = msgr_auth::KeyringEntry {
                key: key(),
                caps: Default::default(),
            };
            ring.insert(EntityName::client("admin"), entry);
            let rng = Box::new(rand::rngs::StdRng::seed_from_u64(3));
            let mon = CephxAuthServer::new(ring, TicketTtls::default(), 1, rng);
            let (mut session, _) =
                mon.start_session(&EntityName::client("admin"), u64::from(sel & 1), now);
            for chunk in rest.split(|b| *b == 0xa5) {
                drop(session.handle_request(now, chunk));
            }
        }
        _ => {
            let mut secrets = msgr_auth::provider::ServiceKeyStore::default();
            let mut r = RotatingSecrets::default();
            r.secrets.insert(
                1,
                ExpiringCryptoKey {
                    key: key(),
                    expiration: UTime::from_secs(u32::MAX),
                },
            );
            secrets.rotating.insert(msgr_auth::ENTITY_OSD, r);
            let mut state = ChallengeState::default();
            let mut rng = rand::rngs::StdRng::seed_from_u64(2);
            drop(verify_authorizer(
                &secrets,
                msgr_auth::ENTITY_OSD,
                rest,
                Some(&mut state),
                now,
                &mut rng,
            ));
        }
    }
});
