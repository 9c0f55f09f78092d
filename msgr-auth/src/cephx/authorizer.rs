//! The cephx authorizer of msgr v1's connect message (and msgr2's authorizer mode): building
//! it as a client, answering CHALLENGE_AUTHORIZER, checking the reply's nonce + 1; and
//! verifying it as a service (`cephx_verify_authorizer`), with the challenge and the reply.
//!
//! ```text
//! u8 1, u64 global_id, u32 service_id, CephXTicketBlob,
//! encrypt(session_key, CephXAuthorize{v2, nonce, have_challenge, challenge + 1})
//! ```
//!
//! Client side: [`CephXAuthorizer`]. Service side: [`verify_authorizer`] with a
//! [`ServiceSecrets`] store and the connection's [`ChallengeState`]:
//!
//! ```text
//!   connect(authorizer) ──► no challenge outstanding, or have_challenge = 0
//!        │                      └─► Challenge(enc_bl(session_key, {1, c}))   tag 16
//!        │◄──────── connect(authorizer answering c + 1) ─┘
//!        └─► challenge matches ──► Accepted(encrypt(session_key, {1, nonce + 1}))  READY/SEQ
//! ```
//! A replayed authorizer meets a fresh challenge it cannot answer without the session key.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::codec::{get_struct_v, get_u32, get_u64, Decode, Encode, UTime};
use crate::envelope::{
    decode_decrypt, decode_decrypt_enc_bl, enc_bl, encode_encrypt, encrypt_to_vec,
};
use crate::key::CryptoKey;
use crate::AuthError;

use super::types::{
    AuthCapsInfo, AuthTicket, CephXAuthorize, CephXAuthorizeChallenge, CephXAuthorizeReply,
    CephXServiceTicketInfo, CephXTicketBlob,
};
use crate::EntityName;

/// `secret_id` of a ticket made with the service's general key (mon ↔ mon).
pub const GENERAL_SECRET_ID: u64 = u64::MAX;

/// A client's authorizer for one connection to a service.
#[derive(Debug, Clone)]
pub struct CephXAuthorizer {
    global_id: u64,
    service_id: u32,
    ticket: CephXTicketBlob,
    session_key: CryptoKey,
    nonce: u64,
    bytes: Bytes,
}

impl CephXAuthorizer {
    /// Builds the first authorizer (no challenge) from a service ticket.
    pub fn build(
        global_id: u64,
        service_id: u32,
        ticket: CephXTicketBlob,
        session_key: CryptoKey,
        nonce: u64,
    ) -> Result<Self, AuthError> {
        let mut a = CephXAuthorizer {
            global_id,
            service_id,
            ticket,
            session_key,
            nonce,
            bytes: Bytes::new(),
        };
        a.bytes = a.encode_with(CephXAuthorize {
            nonce,
            have_challenge: false,
            server_challenge_plus_one: 0,
        })?;
        Ok(a)
    }

    fn encode_with(&self, msg: CephXAuthorize) -> Result<Bytes, AuthError> {
        let mut b = BytesMut::with_capacity(128);
        b.put_u8(1);
        b.put_u64_le(self.global_id);
        b.put_u32_le(self.service_id);
        self.ticket.encode(&mut b);
        encode_encrypt(&self.session_key, &msg, &mut b)?;
        Ok(b.freeze())
    }

    /// The bytes to send (`authorizer_protocol` 2).
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// The session key the connection signs with once the reply is verified.
    pub fn session_key(&self) -> &CryptoKey {
        &self.session_key
    }

    /// The nonce (kept across a challenge).
    pub fn nonce(&self) -> u64 {
        self.nonce
    }

    /// Answers CHALLENGE_AUTHORIZER: decrypts the raw-enveloped challenge and rebuilds the
    /// authorizer with the same nonce and `challenge + 1` (wrapping).
    pub fn add_challenge(&mut self, challenge: &[u8]) -> Result<(), AuthError> {
        let c: CephXAuthorizeChallenge = decode_decrypt_enc_bl(&self.session_key, challenge)?;
        self.bytes = self.encode_with(CephXAuthorize {
            nonce: self.nonce,
            have_challenge: true,
            server_challenge_plus_one: c.server_challenge.wrapping_add(1),
        })?;
        Ok(())
    }

    /// Checks the service's reply authorizer (`encrypt(session_key, {v, nonce + 1 [, secret]})`);
    /// returns the connection secret if the reply carried one (msgr2 secure mode).
    pub fn verify_reply(&self, reply: &[u8]) -> Result<Option<Bytes>, AuthError> {
        let r: CephXAuthorizeReply = decode_decrypt(&self.session_key, &mut &reply[..])?;
        let expected = self.nonce.wrapping_add(1);
        if r.nonce_plus_one != expected {
            return Err(AuthError::NonceMismatch {
                expected,
                got: r.nonce_plus_one,
            });
        }
        Ok(r.connection_secret)
    }
}

/// Where a service finds the secrets that encrypt its tickets.
pub trait ServiceSecrets {
    /// The secret `secret_id` of service `service_id`: a rotating secret, or for
    /// [`GENERAL_SECRET_ID`] the service's own key (the keyring entry `TYPE.`).
    fn service_secret(&self, service_id: u32, secret_id: u64) -> Option<CryptoKey>;
}

/// The per-connection challenge of the service side (`AuthAuthorizerChallenge`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChallengeState {
    outstanding: Option<u64>,
    /// msgr2 secure mode: an accepted authorizer's reply hands out a connection secret.
    want_secret: bool,
    /// The connection secret the accepted authorizer's reply carried.
    secret: Option<[u8; crate::connection_secret::CONNECTION_SECRET_LEN]>,
}

impl ChallengeState {
    /// msgr2 secure mode: the reply to an accepted authorizer carries a fresh connection
    /// secret (the cephx spec's §E.4, authorizer mode step 4), kept here for the acceptor.
    pub fn want_connection_secret(&mut self) {
        self.want_secret = true;
    }

    /// Whether [`ChallengeState::want_connection_secret`] was asked.
    pub fn wants_connection_secret(&self) -> bool {
        self.want_secret
    }

    /// The connection secret handed out with the accepted authorizer's reply (once).
    pub fn take_connection_secret(&mut self) -> Option<crate::Secret> {
        self.secret
            .take()
            .map(|s| crate::Secret::new(Bytes::copy_from_slice(&s)))
    }

    /// Records the connection secret handed out.
    pub(crate) fn set_connection_secret(
        &mut self,
        secret: [u8; crate::connection_secret::CONNECTION_SECRET_LEN],
    ) {
        self.secret = Some(secret);
    }
}

/// What a service answers an authorizer.
#[derive(Debug, Clone)]
pub enum Verification {
    /// Send CHALLENGE_AUTHORIZER (tag 16) with these bytes, then wait for the connect again.
    Challenge(Bytes),
    /// Accepted: send these reply bytes with READY/SEQ.
    Accepted {
        /// The encrypted CephXAuthorizeReply.
        reply: Bytes,
        /// The decrypted ticket: the peer's name, global id, caps and the session key.
        info: Box<CephXServiceTicketInfo>,
    },
}

/// The readable head of an authorizer; the rest is the encrypted CephXAuthorize.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizerHead {
    /// The client's global id.
    pub global_id: u64,
    /// The service the ticket is for.
    pub service_id: u32,
    /// The ticket.
    pub ticket: CephXTicketBlob,
}

impl Decode for AuthorizerHead {
    fn decode(buf: &mut impl Buf) -> Result<Self, AuthError> {
        get_struct_v(buf, "CephXAuthorizer", 1)?;
        Ok(AuthorizerHead {
            global_id: get_u64(buf, "CephXAuthorizer.global_id")?,
            service_id: get_u32(buf, "CephXAuthorizer.service_id")?,
            ticket: CephXTicketBlob::decode(buf)?,
        })
    }
}

/// Verifies an authorizer as service `my_service` (`cephx_verify_authorizer`).
///
/// `challenge`: `Some` when this acceptor challenges (Ceph's daemons do for CEPHX_V2 peers,
/// the mon always), holding the connection's state; `None` never challenges. Beyond Ceph,
/// a ticket for another service or past its expiry at `now` is refused, and a used challenge
/// is cleared. Every refusal is [`AuthError::BadAuthorizer`] or a decrypt error: answer
/// BADAUTHORIZER.
pub fn verify_authorizer(
    secrets: &dyn ServiceSecrets,
    my_service: u32,
    authorizer: &[u8],
    challenge: Option<&mut ChallengeState>,
    now: UTime,
    rng: &mut dyn rand::RngCore,
) -> Result<Verification, AuthError> {
    verify_authorizer_from(
        secrets,
        my_service,
        &mut &authorizer[..],
        challenge,
        now,
        rng,
        None,
    )
}

/// [`verify_authorizer`] for msgr2 secure mode: an accepted authorizer's reply (struct v2)
/// carries `secret`, filled here with fresh random bytes (the connection secret).
pub fn verify_authorizer_with_secret(
    secrets: &dyn ServiceSecrets,
    my_service: u32,
    authorizer: &[u8],
    challenge: Option<&mut ChallengeState>,
    now: UTime,
    rng: &mut dyn rand::RngCore,
    secret: &mut [u8; crate::connection_secret::CONNECTION_SECRET_LEN],
) -> Result<Verification, AuthError> {
    verify_authorizer_from(
        secrets,
        my_service,
        &mut &authorizer[..],
        challenge,
        now,
        rng,
        Some(secret),
    )
}

/// [`verify_authorizer`] reading from the front of `p` and leaving what follows the
/// authorizer (GET_PRINCIPAL_SESSION_KEY carries a request after it).
pub(crate) fn verify_authorizer_from(
    secrets: &dyn ServiceSecrets,
    my_service: u32,
    p: &mut &[u8],
    challenge: Option<&mut ChallengeState>,
    now: UTime,
    rng: &mut dyn rand::RngCore,
    conn_secret: Option<&mut [u8; crate::connection_secret::CONNECTION_SECRET_LEN]>,
) -> Result<Verification, AuthError> {
    let bad = |reason| AuthError::BadAuthorizer { reason };
    let head = AuthorizerHead::decode(p)?;
    if head.service_id != my_service {
        return Err(bad("ticket for another service"));
    }
    let secret = secrets
        .service_secret(head.service_id, head.ticket.secret_id)
        .ok_or(bad("unknown service secret"))?;
    let info: CephXServiceTicketInfo = decode_decrypt_enc_bl(&secret, &head.ticket.blob)?;
    if info.ticket.global_id != head.global_id {
        return Err(bad("global_id mismatch"));
    }
    if info.ticket.expires <= now {
        return Err(bad("ticket expired"));
    }
    let msg: CephXAuthorize = decode_decrypt(&info.session_key, p)?;
    if let Some(state) = challenge {
        match state.outstanding {
            Some(c) if msg.have_challenge => {
                if c.wrapping_add(1) != msg.server_challenge_plus_one {
                    return Err(bad("wrong challenge answer"));
                }
                state.outstanding = None;
            }
            _ => {
                let c = rng.next_u64();
                state.outstanding = Some(c);
                let ct = enc_bl(
                    &info.session_key,
                    &CephXAuthorizeChallenge {
                        server_challenge: c,
                    },
                )?;
                return Ok(Verification::Challenge(Bytes::from(ct)));
            }
        }
    }
    let connection_secret = conn_secret.map(|s| {
        rng.fill_bytes(s);
        Bytes::copy_from_slice(&s[..])
    });
    let reply = encrypt_to_vec(
        &info.session_key,
        &CephXAuthorizeReply {
            nonce_plus_one: msg.nonce.wrapping_add(1),
            connection_secret,
        },
    )?;
    Ok(Verification::Accepted {
        reply: Bytes::from(reply),
        info: Box::new(info),
    })
}

/// A ticket for service `service_id` sealed with the service's own key (`secret_id` =
/// [`GENERAL_SECRET_ID`]), as a mon mints one from its `mon.` key for its peers (the cephx
/// spec's §B.4): the holder of `service_key` can talk to any daemon that knows it. Returns
/// the ticket and the session key inside it.
pub fn general_service_ticket(
    service_key: &CryptoKey,
    name: EntityName,
    global_id: u64,
    now: UTime,
    validity: UTime,
    rng: &mut dyn rand::RngCore,
) -> Result<(CephXTicketBlob, CryptoKey), AuthError> {
    let session_key = CryptoKey::generate(&mut &mut *rng, now);
    let info = CephXServiceTicketInfo {
        ticket: AuthTicket {
            name,
            global_id,
            auid: u64::MAX,
            created: now,
            expires: now.saturating_add(validity),
            caps: AuthCapsInfo {
                allow_all: true,
                caps: Bytes::new(),
            },
            flags: 0,
        },
        session_key: session_key.clone(),
    };
    let blob = enc_bl(service_key, &info)?;
    Ok((
        CephXTicketBlob {
            secret_id: GENERAL_SECRET_ID,
            blob: Bytes::from(blob),
        },
        session_key,
    ))
}

#[cfg(test)]
mod general_ticket_tests {
    use rand::SeedableRng;

    use super::*;
    use crate::provider::ServiceKeyStore;
    use crate::{Keyring, ENTITY_MON};

    /// A ticket minted from the `mon.` key opens a connection to a service that has that key
    /// (what a mon does for its peers), through the challenge, with the reply's nonce + 1.
    #[test]
    fn a_general_ticket_verifies_with_the_service_key() {
        let ring = Keyring::parse("[mon.]\n\tkey = AQD1NxVrtSVxJBAAnGRFWVacYFtcg3wdL5GO2Q==\n")
            .expect("keyring");
        let mon_key = ring
            .key(&EntityName::new(ENTITY_MON, ""))
            .expect("mon.")
            .clone();
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let now = UTime::from_secs(1_700_000_000);
        let (ticket, session_key) = general_service_ticket(
            &mon_key,
            EntityName::new(ENTITY_MON, ""),
            0,
            now,
            UTime::from_secs(3600),
            &mut rng,
        )
        .expect("minted");
        assert_eq!(ticket.secret_id, GENERAL_SECRET_ID);
        let mut a = CephXAuthorizer::build(0, ENTITY_MON, ticket, session_key, 77).expect("built");
        let store = ServiceKeyStore {
            keyring: ring,
            ..ServiceKeyStore::default()
        };
        let mut challenge = ChallengeState::default();
        let v = verify_authorizer(
            &store,
            ENTITY_MON,
            a.bytes(),
            Some(&mut challenge),
            now,
            &mut rng,
        )
        .expect("verifies");
        let Verification::Challenge(c) = v else {
            panic!("challenged first");
        };
        a.add_challenge(&c).expect("answered");
        let v = verify_authorizer(
            &store,
            ENTITY_MON,
            a.bytes(),
            Some(&mut challenge),
            now,
            &mut rng,
        )
        .expect("verifies");
        let Verification::Accepted { reply, info } = v else {
            panic!("accepted after the challenge");
        };
        assert_eq!(info.ticket.name, EntityName::new(ENTITY_MON, ""));
        a.verify_reply(&reply).expect("nonce + 1");
        // Another key does not open it.
        let other = Keyring::parse("[mon.]\n\tkey = AQBmPhVrUfonABAAz1Hntf8c579RTfTJ47CacA==\n")
            .expect("keyring");
        let store = ServiceKeyStore {
            keyring: other,
            ..ServiceKeyStore::default()
        };
        assert!(verify_authorizer(&store, ENTITY_MON, a.bytes(), None, now, &mut rng).is_err());
    }
}
