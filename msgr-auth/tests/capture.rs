//! The real Pacific 16.2.15 CLI ↔ mon cephx exchange over msgr v1 (`tests/data/README.md`),
//! decoded with this crate and the capture's keyring: the negotiation, the challenge key the
//! CLI computed, the AUTH ticket and the extra tickets, the CLI's GET_PRINCIPAL_SESSION_KEY
//! authorizer and the service tickets of the mon's last reply. Our client also consumes the
//! real replies.

#![allow(clippy::unwrap_used)]

use bytes::{Buf, Bytes};
use msgr_auth::cephx::*;
use msgr_auth::envelope::decode_decrypt;
use msgr_auth::provider::{AuthClient, CephxClient, ClientProgress};
use msgr_auth::*;
use rand::SeedableRng;

const KEYRING: &str = include_str!("data/v1-cephx.client.admin.keyring");
const MAUTH: [&[u8]; 3] = [
    include_bytes!("data/v1-mauth-1.bin"),
    include_bytes!("data/v1-mauth-2.bin"),
    include_bytes!("data/v1-mauth-3.bin"),
];
const REPLY: [&[u8]; 3] = [
    include_bytes!("data/v1-mauthreply-1.bin"),
    include_bytes!("data/v1-mauthreply-2.bin"),
    include_bytes!("data/v1-mauthreply-3.bin"),
];

fn secret() -> CryptoKey {
    Keyring::parse(KEYRING)
        .unwrap()
        .key(&EntityName::client("admin"))
        .unwrap()
        .clone()
}

fn blob(b: &mut &[u8]) -> Bytes {
    let n = b.get_u32_le() as usize;
    b.copy_to_bytes(n)
}

/// MAuth front: version, deprecated session mon and tid, protocol, auth_payload, monmap_epoch.
fn mauth(front: &[u8]) -> (u32, Bytes) {
    let mut b = front;
    assert_eq!((b.get_u64_le(), b.get_i16_le(), b.get_u64_le()), (0, -1, 0));
    let protocol = b.get_u32_le();
    let payload = blob(&mut b);
    assert_eq!(b.get_u32_le(), 0);
    assert!(b.is_empty());
    (protocol, payload)
}

/// MAuthReply front: protocol, result, global_id, result_bl, result_msg.
fn mauth_reply(front: &[u8]) -> (u32, i32, u64, Bytes) {
    let mut b = front;
    let (protocol, result, global_id) = (b.get_u32_le(), b.get_i32_le(), b.get_u64_le());
    let payload = blob(&mut b);
    assert!(blob(&mut b).is_empty());
    assert!(b.is_empty());
    (protocol, result, global_id, payload)
}

#[test]
fn real_exchange_decodes_and_the_cli_challenge_key_is_ours() {
    let (proto, p) = mauth(MAUTH[0]);
    assert_eq!(proto, CEPH_AUTH_UNKNOWN);
    let neg = AuthNegotiate::from_slice(&p).unwrap();
    assert_eq!(
        neg,
        AuthNegotiate {
            methods: vec![CEPH_AUTH_CEPHX],
            name: EntityName::client("admin"),
            global_id: 0
        }
    );

    let (proto, result, gid, p) = mauth_reply(REPLY[0]);
    assert_eq!((proto, result), (CEPH_AUTH_CEPHX, 0));
    assert_ne!(gid, 0);
    let server_challenge = CephXServerChallenge::from_slice(&p)
        .unwrap()
        .server_challenge;

    // Round 2: the CLI's key is the challenge key of the keyring's secret.
    let (proto, p) = mauth(MAUTH[1]);
    assert_eq!(proto, CEPH_AUTH_CEPHX);
    let mut b = &p[..];
    assert_eq!(
        CephXRequestHeader::decode(&mut b).unwrap().request_type,
        CEPHX_GET_AUTH_SESSION_KEY
    );
    assert_eq!(b[0], 3, "CephXAuthenticate v3");
    let req = CephXAuthenticate::decode(&mut b).unwrap();
    assert!(b.is_empty());
    assert_eq!(
        req.key,
        challenge_key(&secret(), server_challenge, req.client_challenge).unwrap()
    );
    assert_eq!(
        (req.old_ticket.clone(), req.other_keys),
        (CephXTicketBlob::default(), 0x35)
    );
    assert_eq!(req.to_bytes(), p.slice(2..), "re-encodes byte for byte");

    // Reply 2: the AUTH ticket under the client secret, then the extra tickets under its key.
    let now = UTime::from_secs(1_000);
    let (_, result, _, p) = mauth_reply(REPLY[1]);
    assert_eq!(result, 0);
    let mut b = &p[..];
    assert_eq!(
        CephXResponseHeader::decode(&mut b).unwrap(),
        CephXResponseHeader {
            request_type: CEPHX_GET_AUTH_SESSION_KEY,
            status: 0
        }
    );
    let auth = decode_ticket_reply(&mut b, &secret(), None, now).unwrap();
    assert_eq!(auth.len(), 1);
    assert_eq!(
        (auth[0].service_id, auth[0].validity),
        (ENTITY_AUTH, UTime::from_secs(259_200))
    );
    assert!(blob(&mut b).is_empty(), "no connection secret over v1");
    let extra = blob(&mut b);
    assert!(b.is_empty());
    let extra = decode_ticket_reply(&mut &extra[..], &auth[0].session_key, None, now).unwrap();
    let services: Vec<u32> = extra.iter().map(|t| t.service_id).collect();
    assert_eq!(services, [ENTITY_MON, ENTITY_OSD, ENTITY_MGR]);
    assert!(extra.iter().all(|t| t.validity == UTime::from_secs(3600)));

    // Round 3: the CLI's authorizer is built on the AUTH ticket and session key.
    let (_, p) = mauth(MAUTH[2]);
    let mut b = &p[..];
    assert_eq!(
        CephXRequestHeader::decode(&mut b).unwrap().request_type,
        CEPHX_GET_PRINCIPAL_SESSION_KEY
    );
    let head = AuthorizerHead::decode(&mut b).unwrap();
    assert_eq!((head.global_id, head.service_id), (gid, ENTITY_AUTH));
    assert_eq!(head.ticket, auth[0].ticket);
    let authorize: CephXAuthorize = decode_decrypt(&auth[0].session_key, &mut b).unwrap();
    assert!(!authorize.have_challenge);
    assert_eq!(
        CephXServiceTicketRequest::decode(&mut b).unwrap().keys,
        0x15
    );
    assert!(b.is_empty());

    // Reply 3: MON, OSD, MGR under the AUTH session key, blobs in clear.
    let (_, result, _, p) = mauth_reply(REPLY[2]);
    assert_eq!(result, 0);
    let mut b = &p[..];
    assert_eq!(
        CephXResponseHeader::decode(&mut b).unwrap().request_type,
        CEPHX_GET_PRINCIPAL_SESSION_KEY
    );
    let tickets = decode_ticket_reply(&mut b, &auth[0].session_key, None, now).unwrap();
    assert!(b.is_empty());
    assert_eq!(
        tickets.iter().map(|t| t.service_id).collect::<Vec<_>>(),
        [ENTITY_MON, ENTITY_OSD, ENTITY_MGR]
    );
    assert!(tickets
        .iter()
        .all(|t| t.ticket.secret_id != GENERAL_SECRET_ID && !t.ticket.blob.is_empty()));
}

#[test]
fn our_client_takes_the_real_mons_replies() {
    let now = UTime::from_secs(1_000);
    let rng = Box::new(rand::rngs::StdRng::seed_from_u64(1));
    let mut c = CephxClient::new(
        EntityName::client("admin"),
        secret(),
        ENTITY_MON | ENTITY_OSD | ENTITY_MGR,
        rng,
    );
    let (_, result, gid, p) = mauth_reply(REPLY[0]);
    c.set_global_id(gid);
    assert_eq!(c.handle_reply(now, result, &p), Ok(ClientProgress::More));
    c.build_request(now).unwrap();
    let (_, result, _, p) = mauth_reply(REPLY[1]);
    assert_eq!(
        c.handle_reply(now, result, &p),
        Ok(ClientProgress::Done),
        "extra tickets cover every service"
    );
    assert_eq!(
        c.ticket(ENTITY_OSD).unwrap().expires,
        UTime::from_secs(4_600)
    );
    let a = c.build_authorizer(ENTITY_OSD, now).unwrap();
    assert_eq!(
        AuthorizerHead::from_slice(&a.bytes()).unwrap().global_id,
        gid
    );

    // With the wrong key the same reply is refused as undecryptable.
    let rng = Box::new(rand::rngs::StdRng::seed_from_u64(2));
    let mut wrong = CephxClient::new(
        EntityName::client("admin"),
        CryptoKey::aes([5; 16]),
        ENTITY_MON,
        rng,
    );
    let (_, result, _, p0) = mauth_reply(REPLY[0]);
    wrong.handle_reply(now, result, &p0).unwrap();
    wrong.build_request(now).unwrap();
    assert_eq!(wrong.handle_reply(now, 0, &p), Err(AuthError::Decrypt));
}
