//! A cephx client and a cephx "mon" of this crate against each other: the three MAuth rounds,
//! a daemon fetching its rotating secrets, an authorizer exchange with a service that verifies
//! with them (challenge, nonce + 1, signatures both ways), reclaim, renewal, and refusals.
//! Seeded generators, time passed in: every run is the same.

#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use msgr_auth::cephx::{
    ChallengeState, CEPHX_GET_AUTH_SESSION_KEY, CEPHX_GET_PRINCIPAL_SESSION_KEY,
};
use msgr_auth::provider::*;
use msgr_auth::signature::{SignedFields, FEATURE_CEPHX_V2};
use msgr_auth::*;
use rand::SeedableRng;
use std::sync::{Arc, RwLock};

const KEYRING: &str = include_str!("data/v1-cephx.client.admin.keyring");

fn rng(seed: u64) -> Box<rand::rngs::StdRng> {
    Box::new(rand::rngs::StdRng::seed_from_u64(seed))
}

fn t(sec: u32) -> UTime {
    UTime::from_secs(sec)
}

/// The mon's keyring: the capture's client.admin and a fresh osd.0.
fn mon_keyring() -> (Keyring, CryptoKey) {
    let mut ring = Keyring::parse(KEYRING).unwrap();
    let osd_key = CryptoKey::generate(&mut rand::rngs::StdRng::seed_from_u64(99), t(1));
    let caps = [
        ("mon".to_string(), "allow profile osd".to_string()),
        ("osd".to_string(), "allow *".to_string()),
    ];
    ring.insert(
        "osd.0".parse().unwrap(),
        KeyringEntry {
            key: osd_key.clone(),
            caps: caps.into_iter().collect(),
        },
    );
    (ring, osd_key)
}

fn admin_key() -> CryptoKey {
    Keyring::parse(KEYRING)
        .unwrap()
        .key(&EntityName::client("admin"))
        .unwrap()
        .clone()
}

/// Runs the MAuth rounds of `client` against `mon`; returns the request types sent after the
/// negotiation and the session.
fn authenticate(
    client: &mut dyn AuthClient,
    mon: &dyn AuthServer,
    now: UTime,
) -> Result<(Vec<u16>, Box<dyn AuthServerSession>), AuthError> {
    let (mut session, reply) = mon.start_session(client.name(), client.global_id(), now);
    client.set_global_id(reply.global_id);
    let mut sent = Vec::new();
    let mut progress = client.handle_reply(now, reply.result, &reply.payload)?;
    while progress == ClientProgress::More {
        let req = client.build_request(now)?;
        sent.push(u16::from_le_bytes([req[0], req[1]]));
        let reply = session.handle_request(now, &req);
        assert!(sent.len() < 10, "rounds do not end");
        progress = client.handle_reply(now, reply.result, &reply.payload)?;
    }
    Ok((sent, session))
}

#[test]
fn three_rounds_then_an_authorizer_with_challenge_and_signatures_both_ways() {
    let (ring, osd_key) = mon_keyring();
    let mon = CephxAuthServer::new(ring, TicketTtls::default(), 4100, rng(1));
    let now = t(1_000_000);

    // client.admin: negotiate, GET_AUTH_SESSION_KEY, GET_PRINCIPAL_SESSION_KEY.
    let mut admin = CephxClient::new(
        EntityName::client("admin"),
        admin_key(),
        ENTITY_MON | ENTITY_OSD | ENTITY_MGR,
        rng(2),
    )
    .with_extra_tickets(false);
    let (sent, _) = authenticate(&mut admin, &mon, now).unwrap();
    assert_eq!(
        sent,
        [CEPHX_GET_AUTH_SESSION_KEY, CEPHX_GET_PRINCIPAL_SESSION_KEY]
    );
    assert_eq!(admin.global_id(), 4100);
    let auth = admin.ticket(ENTITY_AUTH).unwrap();
    assert_eq!(
        (auth.expires, auth.renew_after),
        (t(1_259_200), t(1_194_400))
    );
    let osd_ticket = admin.ticket(ENTITY_OSD).unwrap();
    assert_eq!(osd_ticket.expires, t(1_003_600));
    assert_eq!(
        osd_ticket.ticket.secret_id, 2,
        "tickets use the current (second) rotating secret"
    );

    // osd.0 authenticates and fetches its rotating secrets (GET_ROTATING_KEY).
    let mut osd = CephxClient::new("osd.0".parse().unwrap(), osd_key, ENTITY_MON, rng(3));
    let (sent, _) = authenticate(&mut osd, &mon, now).unwrap();
    assert_eq!(
        sent,
        [
            CEPHX_GET_AUTH_SESSION_KEY,
            msgr_auth::cephx::CEPHX_GET_ROTATING_KEY
        ]
    );
    assert_eq!(osd.global_id(), 4101);
    let rotating = osd.rotating_secrets().unwrap().clone();
    assert_eq!(
        rotating.secrets.keys().copied().collect::<Vec<_>>(),
        [1, 2, 3]
    );

    // The OSD verifies client.admin's authorizer with those secrets.
    let store = ServiceKeyStore {
        keyring: Keyring::new(),
        rotating: [(ENTITY_OSD, rotating)].into_iter().collect(),
    };
    let verifier =
        CephxAuthorizerVerifier::new(ENTITY_OSD, Arc::new(RwLock::new(store)), true, rng(4));
    let mut authz = admin.build_authorizer(ENTITY_OSD, now).unwrap();
    let mut state = ChallengeState::default();
    let VerifyOutcome::Challenge(ch) = verifier
        .verify(&authz.bytes(), &mut state, FEATURE_CEPHX_V2, now)
        .unwrap()
    else {
        panic!("first connect must be challenged")
    };
    assert_eq!(ch.len(), 32, "raw envelope, no length prefix");
    authz.add_challenge(&ch).unwrap();
    let VerifyOutcome::Accepted {
        reply,
        peer,
        signer,
    } = verifier
        .verify(&authz.bytes(), &mut state, FEATURE_CEPHX_V2, now)
        .unwrap()
    else {
        panic!("answered challenge must be accepted")
    };
    assert_eq!(peer.name, EntityName::client("admin"));
    assert_eq!(peer.global_id, 4100);
    assert_eq!(&peer.caps.caps[..], b"\x07\0\0\0allow *");
    let client_signer = authz
        .verify_reply(&reply, FEATURE_CEPHX_V2)
        .unwrap()
        .unwrap();
    let server_signer = signer.unwrap();
    let f = SignedFields {
        header_crc: 1,
        front_crc: 2,
        front_len: 3,
        seq: 7,
        ..Default::default()
    };
    assert_eq!(
        server_signer.check(&f, client_signer.sign(&f).unwrap()),
        Ok(())
    );
    assert_eq!(
        client_signer.check(&f, server_signer.sign(&f).unwrap()),
        Ok(())
    );
    assert!(server_signer
        .check(&f, client_signer.sign(&f).unwrap() ^ 1)
        .is_err());

    // The same bytes replayed on a new connection meet a fresh challenge, and answering it
    // with the old answer is refused.
    let mut replay_state = ChallengeState::default();
    let out = verifier
        .verify(&authz.bytes(), &mut replay_state, FEATURE_CEPHX_V2, now)
        .unwrap();
    assert!(matches!(out, VerifyOutcome::Challenge(_)));
    assert!(matches!(
        verifier.verify(&authz.bytes(), &mut replay_state, FEATURE_CEPHX_V2, now),
        Err(AuthError::BadAuthorizer {
            reason: "wrong challenge answer"
        })
    ));
}

#[test]
fn extra_tickets_come_with_the_session_key_in_two_rounds() {
    let (ring, _) = mon_keyring();
    let mon = CephxAuthServer::new(ring, TicketTtls::default(), 1, rng(5));
    let mut admin = CephxClient::new(
        EntityName::client("admin"),
        admin_key(),
        ENTITY_MON | ENTITY_OSD,
        rng(6),
    );
    let (sent, _) = authenticate(&mut admin, &mon, t(50)).unwrap();
    assert_eq!(sent, [CEPHX_GET_AUTH_SESSION_KEY]);
    assert!(admin.ticket(ENTITY_MON).is_some() && admin.ticket(ENTITY_OSD).is_some());
    assert!(admin.ticket(ENTITY_MGR).is_none());
}

#[test]
fn wrong_key_and_unknown_entity_are_refused_with_eacces() {
    let (ring, _) = mon_keyring();
    let mon = CephxAuthServer::new(ring, TicketTtls::default(), 1, rng(7));
    let mut wrong = CephxClient::new(
        EntityName::client("admin"),
        CryptoKey::aes([1; 16]),
        ENTITY_MON,
        rng(8),
    );
    assert_eq!(
        authenticate(&mut wrong, &mon, t(5)).err(),
        Some(AuthError::Refused {
            entity: "client.admin".into(),
            result: EACCES
        })
    );
    let mut unknown = CephxClient::new(
        EntityName::client("nobody"),
        admin_key(),
        ENTITY_MON,
        rng(9),
    );
    assert_eq!(
        authenticate(&mut unknown, &mon, t(5)).err(),
        Some(AuthError::Refused {
            entity: "client.nobody".into(),
            result: EACCES
        })
    );
}

#[test]
fn renewal_reclaims_the_global_id_with_the_old_ticket() {
    let (ring, _) = mon_keyring();
    let mon = CephxAuthServer::new(ring, TicketTtls::default(), 700, rng(10));
    let mut admin = CephxClient::new(
        EntityName::client("admin"),
        admin_key(),
        ENTITY_MON,
        rng(11),
    );
    let (_, mut session) = authenticate(&mut admin, &mon, t(1000)).unwrap();
    let old_key = admin.ticket(ENTITY_AUTH).unwrap().session_key.clone();
    // After three quarters of the service ticket's hour, renewal is due (MON only).
    assert!(!admin.needs_renewal(t(1000 + 2699)));
    assert!(admin.needs_renewal(t(1000 + 2700)));
    // After the AUTH ticket's renew point, GET_AUTH_SESSION_KEY goes again with old_ticket,
    // and the new ticket blob comes back encrypted with the old session key.
    let later = t(1000 + 194_400);
    assert!(admin.needs_renewal(later));
    let req = admin.build_request(later).unwrap();
    assert_eq!(&req[..2], &CEPHX_GET_AUTH_SESSION_KEY.to_le_bytes());
    let reply = session.handle_request(later, &req);
    assert_eq!(reply.result, 0);
    // header 6, v 1, count 4, service 4, v 1, len 4, CephXServiceTicket 48 (46 padded).
    let ticket_enc_at = 6 + 1 + 4 + 4 + 1 + 4 + 48;
    assert_eq!(
        reply.payload[ticket_enc_at], 1,
        "reclaimed ticket is encrypted"
    );
    admin
        .handle_reply(later, reply.result, &reply.payload)
        .unwrap();
    assert_ne!(admin.ticket(ENTITY_AUTH).unwrap().session_key, old_key);

    // A new session reclaiming global id 700: with the ticket it keeps the id...
    let (sent, _) = authenticate(&mut admin, &mon, later).unwrap();
    assert_eq!(admin.global_id(), 700);
    assert_eq!(sent[0], CEPHX_GET_AUTH_SESSION_KEY);
    // ...without one it is refused (insecure reclaim off).
    let mut thief = CephxClient::new(
        EntityName::client("admin"),
        admin_key(),
        ENTITY_MON,
        rng(12),
    );
    thief.set_global_id(700);
    assert!(matches!(
        authenticate(&mut thief, &mon, later),
        Err(AuthError::Refused { result: EACCES, .. })
    ));
}

#[test]
fn service_refuses_other_services_tickets_expired_tickets_and_tampering() {
    let (ring, _) = mon_keyring();
    let mon = CephxAuthServer::new(ring, TicketTtls::default(), 1, rng(13));
    let now = t(10_000);
    let mut admin = CephxClient::new(
        EntityName::client("admin"),
        admin_key(),
        ENTITY_OSD | ENTITY_MGR,
        rng(14),
    );
    authenticate(&mut admin, &mon, now).unwrap();
    let store = ServiceKeyStore {
        keyring: Keyring::new(),
        rotating: [(ENTITY_OSD, mon.rotating_secrets(ENTITY_OSD, now))]
            .into_iter()
            .collect(),
    };
    let verifier =
        CephxAuthorizerVerifier::new(ENTITY_OSD, Arc::new(RwLock::new(store)), false, rng(15));
    let ok = admin.build_authorizer(ENTITY_OSD, now).unwrap().bytes();
    assert!(matches!(
        verifier.verify(&ok, &mut ChallengeState::default(), 0, now),
        Ok(VerifyOutcome::Accepted { .. })
    ));
    let mgr = admin.build_authorizer(ENTITY_MGR, now).unwrap().bytes();
    assert!(matches!(
        verifier.verify(&mgr, &mut ChallengeState::default(), 0, now),
        Err(AuthError::BadAuthorizer { .. })
    ));
    assert!(
        verifier
            .verify(&ok, &mut ChallengeState::default(), 0, t(10_000 + 3600))
            .is_err(),
        "expired"
    );
    // Flip each byte: what is accepted must still be client.admin with its global id. cephx
    // has no MAC, only CBC and a magic: flips in the ticket's unchecked fields (auid,
    // created; bit flips carried into expires/caps of the next block) and in the version
    // bytes (read as newer versions) pass in Ceph too. Identity and session key never change.
    let mut accepted = Vec::new();
    for i in 0..ok.len() {
        let mut bad = ok.to_vec();
        bad[i] ^= 0x40;
        if let Ok(VerifyOutcome::Accepted { peer, .. }) =
            verifier.verify(&bad, &mut ChallengeState::default(), 0, now)
        {
            assert_eq!(
                (peer.name.to_string(), peer.global_id),
                ("client.admin".to_string(), admin.global_id()),
                "flip at {i}"
            );
            accepted.push(i);
        }
    }
    let blob = 26..26 + 80; // the ticket blob's ciphertext in this authorizer
    assert!(
        accepted
            .iter()
            .all(|i| *i == 0 || *i == 13 || blob.contains(i)),
        "{accepted:?}"
    );
    assert!(accepted.len() < ok.len() / 8, "{accepted:?}");
    let none = Bytes::new();
    assert!(verifier
        .verify(&none, &mut ChallengeState::default(), 0, now)
        .is_err());
}

#[test]
fn none_client_server_and_verifier() {
    let mon = NoneAuthServer::new(42);
    let mut c = NoneClient::new(EntityName::client("x"));
    let (sent, _) = authenticate(&mut c, &mon, t(1)).unwrap();
    assert!(sent.is_empty(), "none is done after negotiation");
    assert_eq!(c.global_id(), 42);
    let a = c.build_authorizer(ENTITY_OSD, t(1)).unwrap();
    let VerifyOutcome::Accepted { peer, signer, .. } = NoneAuthorizerVerifier
        .verify(&a.bytes(), &mut ChallengeState::default(), 0, t(1))
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(
        (peer.name, peer.global_id, signer),
        (EntityName::client("x"), 42, None)
    );
    assert_eq!(
        choose_protocol(&[CEPH_AUTH_CEPHX, CEPH_AUTH_NONE], &[CEPH_AUTH_NONE]),
        Some(CEPH_AUTH_NONE)
    );
    assert_eq!(choose_protocol(&[CEPH_AUTH_CEPHX], &[CEPH_AUTH_NONE]), None);
}

#[test]
fn mon_to_mon_ticket_made_with_the_general_mon_key_verifies_against_the_keyring() {
    // What a mon does for its peers (and what the real mon accepted from the spec's forged
    // `mon.` ticket): a ticket blob under the `mon.` key itself, secret_id u64::MAX.
    let mon_key = CryptoKey::aes([0x33; 16]);
    let mut ring = Keyring::new();
    ring.insert(
        "mon.".parse().unwrap(),
        KeyringEntry {
            key: mon_key.clone(),
            caps: Default::default(),
        },
    );
    let now = t(500);
    let session_key = CryptoKey::aes([0x44; 16]);
    let info = msgr_auth::cephx::CephXServiceTicketInfo {
        ticket: msgr_auth::cephx::AuthTicket {
            name: "mon.".parse().unwrap(),
            global_id: 0,
            auid: u64::MAX,
            created: now,
            expires: t(500 + 3600),
            caps: Default::default(),
            flags: 0,
        },
        session_key: session_key.clone(),
    };
    let blob = msgr_auth::envelope::enc_bl(&mon_key, &info).unwrap();
    let ticket = msgr_auth::cephx::CephXTicketBlob {
        secret_id: msgr_auth::cephx::GENERAL_SECRET_ID,
        blob: blob.into(),
    };
    let mut a = CephxClientAuthorizer::from_ticket(0, ENTITY_MON, ticket, session_key, 77).unwrap();
    let store = ServiceKeyStore {
        keyring: ring,
        rotating: Default::default(),
    };
    let v = CephxAuthorizerVerifier::new(ENTITY_MON, Arc::new(RwLock::new(store)), true, rng(20));
    let mut st = ChallengeState::default();
    let VerifyOutcome::Challenge(c) = v
        .verify(&a.bytes(), &mut st, FEATURE_CEPHX_V2, now)
        .unwrap()
    else {
        panic!()
    };
    a.add_challenge(&c).unwrap();
    let VerifyOutcome::Accepted { reply, peer, .. } = v
        .verify(&a.bytes(), &mut st, FEATURE_CEPHX_V2, now)
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(peer.name.to_string(), "mon.");
    assert!(a.verify_reply(&reply, FEATURE_CEPHX_V2).unwrap().is_some());
    // A reply meant for another nonce is refused: the service would not be authentic.
    let other = CephxClientAuthorizer::from_ticket(
        0,
        ENTITY_MON,
        Default::default(),
        CryptoKey::aes([0x44; 16]),
        78,
    )
    .unwrap();
    assert!(matches!(
        other.verify_reply(&reply, 0),
        Err(AuthError::NonceMismatch {
            expected: 79,
            got: 78
        })
    ));
}

#[test]
fn no_debug_output_shows_a_secret() {
    let (ring, _) = mon_keyring();
    let mon = CephxAuthServer::new(ring.clone(), TicketTtls::default(), 1, rng(30));
    let mut admin = CephxClient::new(
        EntityName::client("admin"),
        admin_key(),
        ENTITY_OSD,
        rng(31),
    );
    authenticate(&mut admin, &mon, t(9)).unwrap();
    let osd = admin.ticket(ENTITY_OSD).unwrap().clone();
    let authz = admin.build_authorizer(ENTITY_OSD, t(9)).unwrap();
    let signer = authz.verify_reply(&[], 0).err();
    let texts = [
        format!("{ring:?}"),
        format!("{admin:?}"),
        format!("{osd:?}"),
        format!("{mon:?}"),
        format!(
            "{:?}",
            msgr_auth::signature::MessageSigner::new(
                osd.session_key.clone(),
                msgr_auth::signature::SignatureFormat::CephxV2
            )
        ),
        format!("{signer:?}"),
    ];
    for key in [admin_key(), osd.session_key.clone()] {
        let bytes = key.secret().expose();
        let decimal = format!("{bytes:?}");
        let decimal_inner = &decimal[1..decimal.len() - 1];
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        for text in &texts {
            assert!(
                !text.contains(decimal_inner) && !text.contains(&hex),
                "secret in {text}"
            );
            assert!(!text.contains(&key.to_base64()), "base64 key in {text}");
        }
    }
    assert!(texts[2].contains("redacted"));
}
