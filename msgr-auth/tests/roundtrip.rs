//! Property tests: every structure round-trips through its encoding (and through the cephx
//! envelope), every truncation of a valid encoding is an error and not a panic, and random
//! bytes never panic any decoder.

#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use msgr_auth::cephx::*;
use msgr_auth::envelope::{decode_decrypt, decode_decrypt_enc_bl, enc_bl, encrypt_to_vec};
use msgr_auth::provider::NoneAuthorizer;
use msgr_auth::*;
use proptest::prelude::*;

fn utime() -> impl Strategy<Value = UTime> {
    (any::<u32>(), 0u32..1_000_000_000).prop_map(|(sec, nsec)| UTime { sec, nsec })
}

fn key() -> impl Strategy<Value = CryptoKey> {
    (utime(), proptest::collection::vec(any::<u8>(), 16..40))
        .prop_map(|(t, s)| CryptoKey::new(KeyType::Aes, t, Secret::new(s)).unwrap())
}

fn name() -> impl Strategy<Value = EntityName> {
    (
        prop::sample::select(vec![1u32, 2, 4, 8, 16, 32]),
        "[a-z0-9.]{0,12}",
    )
        .prop_map(|(t, id)| EntityName::new(t, id))
}

fn blob() -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..80).prop_map(Bytes::from)
}

fn ticket_blob() -> impl Strategy<Value = CephXTicketBlob> {
    (any::<u64>(), blob()).prop_map(|(secret_id, blob)| CephXTicketBlob { secret_id, blob })
}

fn auth_ticket() -> impl Strategy<Value = AuthTicket> {
    (
        name(),
        any::<u64>(),
        any::<u64>(),
        utime(),
        utime(),
        any::<bool>(),
        blob(),
        any::<u32>(),
    )
        .prop_map(
            |(name, global_id, auid, created, expires, allow_all, caps, flags)| AuthTicket {
                name,
                global_id,
                auid,
                created,
                expires,
                caps: AuthCapsInfo { allow_all, caps },
                flags,
            },
        )
}

/// Round trip, then every strict prefix must fail (no structure here has optional tails
/// except where noted by the caller).
fn check<T: Encode + Decode + PartialEq + std::fmt::Debug>(v: &T) {
    let b = v.to_bytes();
    assert_eq!(&T::from_slice(&b).unwrap(), v);
    for n in 0..b.len() {
        assert!(
            T::from_slice(&b[..n]).is_err(),
            "prefix {n} of {} decoded",
            b.len()
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn plain_structures_round_trip_and_every_truncation_fails(
        k in key(), n in name(), tb in ticket_blob(), at in auth_ticket(), x in any::<u64>(), y in any::<u64>(),
        z in any::<u32>(), flag in any::<bool>(), t in utime(), s in blob(), st in any::<i32>(), rt in any::<u16>(),
        methods in proptest::collection::vec(any::<u32>(), 0..5),
    ) {
        check(&k);
        check(&n);
        check(&t);
        check(&tb);
        check(&at);
        check(&CephXServerChallenge { server_challenge: x });
        check(&CephXRequestHeader { request_type: rt });
        check(&CephXResponseHeader { request_type: rt, status: st });
        check(&CephXAuthenticate { client_challenge: x, key: y, old_ticket: tb.clone(), other_keys: z });
        check(&CephXServiceTicket { session_key: k.clone(), validity: t });
        check(&CephXServiceTicketInfo { ticket: at.clone(), session_key: k.clone() });
        check(&CephXServiceTicketRequest { keys: z });
        check(&CephXAuthorize { nonce: x, have_challenge: flag, server_challenge_plus_one: y });
        check(&CephXAuthorizeChallenge { server_challenge: x });
        check(&CephXAuthorizeReply { nonce_plus_one: x, connection_secret: flag.then(|| s.clone()) });
        check(&AuthNegotiate { methods, name: n.clone(), global_id: y });
        check(&NoneAuthorizer { name: n, global_id: x });
        let mut r = RotatingSecrets { max_ver: y, ..Default::default() };
        r.secrets.insert(x, ExpiringCryptoKey { key: k.clone(), expiration: t });
        r.secrets.insert(x ^ 1, ExpiringCryptoKey { key: k, expiration: t });
        check(&r);
    }

    #[test]
    fn encrypted_forms_round_trip_and_fail_with_another_key(k in key(), other in key(), at in auth_ticket(), x in any::<u64>()) {
        prop_assume!(k.secret().expose()[..16] != other.secret().expose()[..16]);
        let info = CephXServiceTicketInfo { ticket: at, session_key: k.clone() };
        let raw = enc_bl(&k, &info).unwrap();
        prop_assert_eq!(&decode_decrypt_enc_bl::<CephXServiceTicketInfo>(&k, &raw).unwrap(), &info);
        prop_assert!(decode_decrypt_enc_bl::<CephXServiceTicketInfo>(&other, &raw).is_err());
        let pre = encrypt_to_vec(&k, &CephXAuthorizeChallenge { server_challenge: x }).unwrap();
        prop_assert_eq!(decode_decrypt::<CephXAuthorizeChallenge>(&k, &mut &pre[..]).unwrap().server_challenge, x);
        for n in 0..pre.len() {
            prop_assert!(decode_decrypt::<CephXAuthorizeChallenge>(&k, &mut &pre[..n]).is_err());
        }
    }

    #[test]
    fn ticket_replies_and_authorizers_round_trip(
        k in key(), sk in key(), tb in ticket_blob(), validity in utime(), gid in any::<u64>(), nonce in any::<u64>(), ch in any::<u64>(),
    ) {
        let g = TicketGrant { service_id: ENTITY_OSD, session_key: sk.clone(), validity, ticket: tb.clone() };
        let mut b = Vec::new();
        encode_ticket_reply(&k, std::slice::from_ref(&g), None, &mut b).unwrap();
        let got = decode_ticket_reply(&mut &b[..], &k, None, UTime::default()).unwrap();
        prop_assert_eq!(&got[0].ticket, &tb);
        prop_assert_eq!(&got[0].session_key, &sk);
        for n in 0..b.len() {
            prop_assert!(decode_ticket_reply(&mut &b[..n], &k, None, UTime::default()).is_err());
        }
        let mut a = CephXAuthorizer::build(gid, ENTITY_OSD, tb.clone(), sk.clone(), nonce).unwrap();
        let head = AuthorizerHead::from_slice(a.bytes()).unwrap();
        prop_assert_eq!((head.global_id, head.service_id, head.ticket), (gid, ENTITY_OSD, tb));
        let challenge = enc_bl(&sk, &CephXAuthorizeChallenge { server_challenge: ch }).unwrap();
        a.add_challenge(&challenge).unwrap();
        prop_assert_eq!(a.nonce(), nonce);
        let reply = encrypt_to_vec(&sk, &CephXAuthorizeReply { nonce_plus_one: nonce.wrapping_add(1), connection_secret: None }).unwrap();
        prop_assert_eq!(a.verify_reply(&reply).unwrap(), None);
        let wrong = encrypt_to_vec(&sk, &CephXAuthorizeReply { nonce_plus_one: nonce, connection_secret: None }).unwrap();
        prop_assert_eq!(a.verify_reply(&wrong), Err(AuthError::NonceMismatch { expected: nonce.wrapping_add(1), got: nonce }));
    }

    #[test]
    fn random_bytes_never_panic_a_decoder(data in proptest::collection::vec(any::<u8>(), 0..300)) {
        let d = &data[..];
        let k = CryptoKey::aes([3; 16]);
        let _ = CryptoKey::from_slice(d);
        let _ = EntityName::from_slice(d);
        let _ = CephXTicketBlob::from_slice(d);
        let _ = CephXAuthenticate::from_slice(d);
        let _ = CephXServiceTicketInfo::from_slice(d);
        let _ = CephXAuthorizeReply::from_slice(d);
        let _ = RotatingSecrets::from_slice(d);
        let _ = AuthNegotiate::from_slice(d);
        let _ = AuthorizerHead::from_slice(d);
        let _ = decode_ticket_reply(&mut &d[..], &k, Some(&k), UTime::default());
        let _ = decode_decrypt::<RotatingSecrets>(&k, &mut &d[..]);
        let _ = decode_decrypt_enc_bl::<CephXServiceTicketInfo>(&k, d);
        let _ = Keyring::parse(&String::from_utf8_lossy(d));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn keyrings_round_trip_through_their_text(entries in proptest::collection::btree_map(
        name(), (key(), proptest::collection::btree_map("[a-z]{1,5}", "[a-z *]{0,12}", 0..3)), 0..4)
    ) {
        let mut ring = Keyring::new();
        for (n, (k, caps)) in &entries {
            ring.insert(n.clone(), KeyringEntry { key: k.clone(), caps: caps.clone() });
        }
        let text = ring.to_text();
        prop_assert_eq!(Keyring::parse(&text).unwrap(), ring);
    }

    #[test]
    fn any_seed_and_time_authenticates_and_authorizes(seed in any::<u64>(), now in 1u32..4_000_000_000, extra in any::<bool>()) {
        use msgr_auth::provider::*;
        use rand::SeedableRng;
        use std::sync::{Arc, RwLock};
        let r = |s: u64| Box::new(rand::rngs::StdRng::seed_from_u64(seed ^ s));
        let now = UTime::from_secs(now);
        let admin_key = CryptoKey::generate(&mut rand::rngs::StdRng::seed_from_u64(seed), now);
        let mut ring = Keyring::new();
        ring.insert(EntityName::client("admin"), KeyringEntry { key: admin_key.clone(), caps: Default::default() });
        let mon = CephxAuthServer::new(ring, TicketTtls::default(), 1, r(1));
        let mut c = CephxClient::new(EntityName::client("admin"), admin_key, ENTITY_OSD, r(2)).with_extra_tickets(extra);
        let (mut s, reply) = mon.start_session(c.name(), 0, now);
        c.set_global_id(reply.global_id);
        let mut progress = c.handle_reply(now, reply.result, &reply.payload).unwrap();
        let mut rounds = 1;
        while progress == ClientProgress::More {
            let reply = s.handle_request(now, &c.build_request(now).unwrap());
            progress = c.handle_reply(now, reply.result, &reply.payload).unwrap();
            rounds += 1;
        }
        prop_assert_eq!(rounds, if extra { 2 } else { 3 });
        let store = ServiceKeyStore { keyring: Keyring::new(), rotating: [(ENTITY_OSD, mon.rotating_secrets(ENTITY_OSD, now))].into_iter().collect() };
        let v = CephxAuthorizerVerifier::new(ENTITY_OSD, Arc::new(RwLock::new(store)), true, r(3));
        let mut a = c.build_authorizer(ENTITY_OSD, now).unwrap();
        let mut st = ChallengeState::default();
        let VerifyOutcome::Challenge(ch) = v.verify(&a.bytes(), &mut st, 0, now).unwrap() else { panic!("no challenge") };
        a.add_challenge(&ch).unwrap();
        let VerifyOutcome::Accepted { reply, .. } = v.verify(&a.bytes(), &mut st, 0, now).unwrap() else { panic!("refused") };
        prop_assert!(a.verify_reply(&reply, 0).is_ok());
    }
}
