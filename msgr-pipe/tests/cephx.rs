//! cephx on v1 sessions, end to end over the in-memory network: the connector presents an
//! authorizer from a ticket an (in-memory) cephx mon issued, the acceptor verifies it with
//! the service's rotating secrets and challenges it, the connector checks the reply's
//! nonce + 1, and every message is signed and checked both ways (the cephx spec's §B, §C).
//! Hostile cases: a forged ticket, a replayed authorizer, a wrong session key: refused or
//! faulted, while another session of the same acceptor goes on.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::Bytes;
use common::{addr, host, msg, recv_n};
use msgr_auth::provider::{
    AuthClient, AuthServer, AuthorizerVerifier, CephxAuthServer, CephxAuthorizerVerifier,
    CephxClient, ClientProgress, ServiceKeyStore, TicketTtls,
};
use msgr_auth::signature::FOOTER_SIGNED;
use msgr_auth::{CryptoKey, EntityName, Keyring, UTime, ENTITY_OSD};
use msgr_pipe::testing::{HostEvent, StepLog, TestHost, TestNet};
use msgr_pipe::{
    AuthError, Authorizer, BoxFuture, ChallengeState, ClientAuthorizer, MessageSigner, PipeConfig,
    Policy, ProviderAuthorizer, SessionEvent, VerifyOutcome,
};
use msgr_wire::{EntityType, Tag};
use rand::SeedableRng;
use tokio::sync::mpsc::UnboundedReceiver;

const ADMIN_KEY: &str = "AQBmPhVrUfonABAAz1Hntf8c579RTfTJ47CacA==";

fn rng(seed: u64) -> Box<rand::rngs::StdRng> {
    Box::new(rand::rngs::StdRng::seed_from_u64(seed))
}

/// A cephx mon (in memory) that knows client.admin.
fn mon(seed: u64) -> CephxAuthServer {
    let ring = Keyring::parse(&format!("[client.admin]\n\tkey = {ADMIN_KEY}\n")).unwrap();
    CephxAuthServer::new(ring, TicketTtls::default(), 4100, rng(seed))
}

/// client.admin authenticated to `mon`, with an OSD ticket.
fn admin(mon: &CephxAuthServer, seed: u64) -> CephxClient {
    let now = UTime::now();
    let key = CryptoKey::from_base64(ADMIN_KEY).unwrap();
    let mut c = CephxClient::new(EntityName::client("admin"), key, ENTITY_OSD, rng(seed));
    let (mut session, reply) = mon.start_session(c.name(), 0, now);
    c.set_global_id(reply.global_id);
    let mut progress = c.handle_reply(now, reply.result, &reply.payload).unwrap();
    while progress == ClientProgress::More {
        let reply = session.handle_request(now, &c.build_request(now).unwrap());
        progress = c.handle_reply(now, reply.result, &reply.payload).unwrap();
    }
    c
}

/// The OSD's verifier, with the rotating secrets of `mon` (as CEPHX_GET_ROTATING_KEY gives).
fn osd_verifier(mon: &CephxAuthServer) -> Arc<dyn AuthorizerVerifier> {
    let mut store = ServiceKeyStore::default();
    store
        .rotating
        .insert(ENTITY_OSD, mon.rotating_secrets(ENTITY_OSD, UTime::now()));
    Arc::new(CephxAuthorizerVerifier::new(
        ENTITY_OSD,
        Arc::new(RwLock::new(store)),
        true,
        rng(7),
    ))
}

struct Pair {
    client: Arc<TestHost>,
    _crx: UnboundedReceiver<HostEvent>,
    osd: Arc<TestHost>,
    orx: UnboundedReceiver<HostEvent>,
    steps: Arc<StepLog>,
}

/// Host 1 (client, lossless) with `client_auth`, host 2 (the OSD) verifying with `osd_auth`.
fn pair(client_auth: Arc<dyn Authorizer>, osd_auth: Arc<dyn Authorizer>) -> Pair {
    let net = TestNet::new(1 << 16);
    let steps = StepLog::new();
    let config = PipeConfig {
        hook: Some(steps.clone()),
        ..PipeConfig::default()
    };
    let (client, crx) = host(1, Policy::lossless_client(0), config.clone(), &net);
    let (osd, orx) = host(2, Policy::stateful_server(0), config, &net);
    client.set_authorizer(Some(client_auth));
    osd.set_authorizer(Some(osd_auth));
    Pair {
        client,
        _crx: crx,
        osd,
        orx,
        steps,
    }
}

#[tokio::test(start_paused = true)]
async fn a_challenged_authorizer_opens_the_session_and_every_message_is_signed_both_ways() {
    let mon = mon(1);
    let client = ProviderAuthorizer::new().with_client(Box::new(admin(&mon, 2)));
    let osd = ProviderAuthorizer::new().with_verifier(osd_verifier(&mon));
    let mut p = pair(Arc::new(client), Arc::new(osd));
    let s = p.client.connect(addr(2), EntityType::OSD);
    for i in 0..20 {
        s.send(msg(i)).await.unwrap();
    }
    // Each message arrives signed (the flag and a signature that checked, or the reader
    // would have faulted the socket), and the OSD answers on the same session.
    let mut got = Vec::new();
    while got.len() < 20 {
        match tokio::time::timeout(Duration::from_secs(10), p.orx.recv()).await {
            Ok(Some(HostEvent::Message { session, incoming })) => {
                let m = &incoming.msg;
                assert_ne!(
                    m.footer.flags & FOOTER_SIGNED,
                    0,
                    "message {} unsigned",
                    m.header.seq
                );
                assert_ne!(m.footer.sig, 0);
                got.push(common::payload(m));
                session.send(msg(1000 + got.len() as u64)).await.unwrap();
            }
            Ok(Some(_)) => {}
            other => panic!("no message: {other:?}"),
        }
    }
    assert_eq!(got, (0..20).collect::<Vec<_>>());
    let (replies, _) = recv_n(&mut p._crx, 20, Duration::from_secs(10)).await;
    assert_eq!(replies, (1001..=1020).collect::<Vec<_>>());
    // The acceptor challenged the first connect (tag 16), then opened.
    let tags = p.steps.replies_received();
    assert_eq!(
        tags.first(),
        Some(&Tag::ChallengeAuthorizer.byte()),
        "{tags:?}"
    );
    assert!(
        tags.iter()
            .any(|t| *t == Tag::Ready.byte() || *t == Tag::Seq.byte()),
        "{tags:?}"
    );
    assert_eq!(s.stats().faults, 0);
    // Both ends say how the session is authenticated.
    assert_eq!(s.auth(), (msgr_auth::CEPH_AUTH_CEPHX, true));
    let theirs = p.osd.sessions();
    assert_eq!(theirs.len(), 1);
    assert_eq!(theirs[0].auth(), (msgr_auth::CEPH_AUTH_CEPHX, true));
}

#[tokio::test(start_paused = true)]
async fn a_ticket_from_another_mon_is_refused_and_the_session_ends() {
    // The OSD knows mon A's rotating secrets; the client's ticket comes from mon B.
    let (a, b) = (mon(1), mon(99));
    let client = ProviderAuthorizer::new().with_client(Box::new(admin(&b, 2)));
    let osd = ProviderAuthorizer::new().with_verifier(osd_verifier(&a));
    let p = pair(Arc::new(client), Arc::new(osd));
    let s = p.client.connect(addr(2), EntityType::OSD);
    s.send(msg(1)).await.unwrap();
    tokio::time::timeout(Duration::from_secs(30), s.closed())
        .await
        .expect("refused twice: the session gives up");
    let f = s.handshake_failures().borrow().clone().expect("a failure");
    assert!(f.fatal, "{f:?}");
    assert!(
        matches!(*f.error, msgr_pipe::PipeError::AuthorizerRefused),
        "{}",
        f.error
    );
    // BADAUTHORIZER came twice: once answered with a fresh authorizer, then the end.
    let bad = p
        .steps
        .replies_received()
        .iter()
        .filter(|t| **t == Tag::BadAuthorizer.byte())
        .count();
    assert_eq!(bad, 2);
    assert!(p.client.sessions().is_empty() || s.is_closed());
    let _ = p.osd;
}

/// Presents the bytes it was built with, whatever it is asked (a replay).
struct Replay(Bytes);

impl ClientAuthorizer for Replay {
    fn protocol(&self) -> u32 {
        msgr_auth::CEPH_AUTH_CEPHX
    }
    fn bytes(&self) -> Bytes {
        self.0.clone()
    }
    fn add_challenge(&mut self, _challenge: &[u8]) -> Result<(), AuthError> {
        Ok(()) // cannot answer: sends the same bytes again
    }
    fn verify_reply(
        &self,
        _reply: &[u8],
        _features: u64,
    ) -> Result<Option<MessageSigner>, AuthError> {
        Ok(None)
    }
}

/// Records the last authorizer bytes a real client sent (after answering the challenge).
struct Recording {
    inner: Box<dyn ClientAuthorizer>,
    seen: Arc<Mutex<Option<Bytes>>>,
}

impl ClientAuthorizer for Recording {
    fn protocol(&self) -> u32 {
        self.inner.protocol()
    }
    fn bytes(&self) -> Bytes {
        let b = self.inner.bytes();
        *self.seen.lock().unwrap() = Some(b.clone());
        b
    }
    fn add_challenge(&mut self, challenge: &[u8]) -> Result<(), AuthError> {
        self.inner.add_challenge(challenge)
    }
    fn verify_reply(
        &self,
        reply: &[u8],
        features: u64,
    ) -> Result<Option<MessageSigner>, AuthError> {
        self.inner.verify_reply(reply, features)
    }
}

/// Builds from `source`, wrapped by `wrap`.
struct Wrapping<F> {
    source: ProviderAuthorizer,
    wrap: F,
}

impl<F> Authorizer for Wrapping<F>
where
    F: Fn(Box<dyn ClientAuthorizer>) -> Box<dyn ClientAuthorizer> + Send + Sync + 'static,
{
    fn build(
        &self,
        peer_type: EntityType,
        retry: bool,
    ) -> BoxFuture<'_, Option<Box<dyn ClientAuthorizer>>> {
        Box::pin(async move { self.source.build(peer_type, retry).await.map(&self.wrap) })
    }
    fn verify(
        &self,
        peer_type: EntityType,
        protocol: u32,
        authorizer: &[u8],
        challenge: &mut ChallengeState,
        features: u64,
    ) -> Result<VerifyOutcome, AuthError> {
        self.source
            .verify(peer_type, protocol, authorizer, challenge, features)
    }
}

#[tokio::test(start_paused = true)]
async fn a_replayed_authorizer_is_refused_while_the_real_session_goes_on() {
    let mon = mon(1);
    let seen = Arc::new(Mutex::new(None));
    let recorded = seen.clone();
    let client = Wrapping {
        source: ProviderAuthorizer::new().with_client(Box::new(admin(&mon, 2))),
        wrap: move |inner| {
            Box::new(Recording {
                inner,
                seen: recorded.clone(),
            }) as Box<dyn ClientAuthorizer>
        },
    };
    let osd = Arc::new(ProviderAuthorizer::new().with_verifier(osd_verifier(&mon)));
    let mut p = pair(Arc::new(client), osd.clone());
    let good = p.client.connect(addr(2), EntityType::OSD);
    good.send(msg(1)).await.unwrap();
    let (got, _) = recv_n(&mut p.orx, 1, Duration::from_secs(10)).await;
    assert_eq!(got, vec![1]);
    let captured = seen
        .lock()
        .unwrap()
        .clone()
        .expect("an authorizer was sent");

    // An attacker (host 3) replays the captured authorizer: challenged, it cannot answer.
    let net = TestNet::new(1 << 16);
    net.attach(&p.osd);
    let (evil, _erx) = host(3, Policy::lossless_client(0), PipeConfig::default(), &net);
    let replay = Wrapping {
        source: ProviderAuthorizer::new().with_client(Box::new(admin(&mon, 5))),
        wrap: move |_| Box::new(Replay(captured.clone())) as Box<dyn ClientAuthorizer>,
    };
    evil.set_authorizer(Some(Arc::new(replay)));
    let bad = evil.connect(addr(2), EntityType::OSD);
    bad.send(msg(666)).await.unwrap();
    tokio::time::timeout(Duration::from_secs(30), bad.closed())
        .await
        .expect("the replay is refused for good");
    assert!(matches!(
        *bad.handshake_failures().borrow().clone().unwrap().error,
        msgr_pipe::PipeError::AuthorizerRefused
    ));
    // The real session goes on.
    good.send(msg(2)).await.unwrap();
    let (got, _) = recv_n(&mut p.orx, 1, Duration::from_secs(10)).await;
    assert_eq!(got, vec![2]);
}

/// An acceptor whose signer has another key than the connector's: its checks fail.
struct WrongKey(ProviderAuthorizer);

impl Authorizer for WrongKey {
    fn build(
        &self,
        peer_type: EntityType,
        retry: bool,
    ) -> BoxFuture<'_, Option<Box<dyn ClientAuthorizer>>> {
        self.0.build(peer_type, retry)
    }
    fn verify(
        &self,
        peer_type: EntityType,
        protocol: u32,
        authorizer: &[u8],
        challenge: &mut ChallengeState,
        features: u64,
    ) -> Result<VerifyOutcome, AuthError> {
        match self
            .0
            .verify(peer_type, protocol, authorizer, challenge, features)?
        {
            VerifyOutcome::Accepted {
                reply,
                peer,
                signer,
            } => {
                let format = signer.map(|s| s.format()).unwrap_or(
                    msgr_auth::signature::SignatureFormat::for_features(features),
                );
                let other =
                    CryptoKey::from_base64("AQD1NxVrtSVxJBAAnGRFWVacYFtcg3wdL5GO2Q==").unwrap();
                Ok(VerifyOutcome::Accepted {
                    reply,
                    peer,
                    signer: Some(MessageSigner::new(other, format)),
                })
            }
            challenge => Ok(challenge),
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_bad_signature_faults_the_socket_and_nothing_is_delivered() {
    let mon = mon(1);
    let client = ProviderAuthorizer::new().with_client(Box::new(admin(&mon, 2)));
    let osd = WrongKey(ProviderAuthorizer::new().with_verifier(osd_verifier(&mon)));
    let mut p = pair(Arc::new(client), Arc::new(osd));
    let s = p.client.connect(addr(2), EntityType::OSD);
    s.send(msg(1)).await.unwrap();
    // Every socket opens, and faults on the first message's signature.
    let mut rx = s.watch_state();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while s.stats().faults < 3 && tokio::time::Instant::now() < deadline {
        let _ = tokio::time::timeout(Duration::from_secs(1), rx.changed()).await;
    }
    assert!(s.stats().faults >= 3, "faults {}", s.stats().faults);
    assert!(s.stats().reconnects >= 2, "{:?}", s.stats());
    while let Ok(ev) = p.orx.try_recv() {
        assert!(
            !matches!(ev, HostEvent::Message { .. }),
            "a message with a bad signature was delivered"
        );
        if let HostEvent::Event { event, .. } = ev {
            assert_ne!(event, SessionEvent::Reset);
        }
    }
}

#[tokio::test(start_paused = true)]
async fn requiring_signatures_refuses_a_peer_without_msg_auth() {
    let mon = mon(1);
    let client = ProviderAuthorizer::new().with_client(Box::new(admin(&mon, 2)));
    let osd = ProviderAuthorizer::new()
        .with_verifier(osd_verifier(&mon))
        .with_require_signatures(true);
    let net = TestNet::new(1 << 16);
    let mut old = Policy::lossless_client(0);
    old.features_supported &= !msgr_wire::features::MSG_AUTH;
    let (c, _crx) = host(1, old, PipeConfig::default(), &net);
    let (o, _orx) = host(2, Policy::stateful_server(0), PipeConfig::default(), &net);
    c.set_authorizer(Some(Arc::new(client)));
    o.set_authorizer(Some(Arc::new(osd)));
    let s = c.connect(addr(2), EntityType::OSD);
    s.send(msg(1)).await.unwrap();
    tokio::time::timeout(Duration::from_secs(30), s.closed())
        .await
        .expect("refused for good");
    let f = s.handshake_failures().borrow().clone().expect("a failure");
    assert!(
        matches!(
            *f.error,
            msgr_pipe::PipeError::MissingFeatures { missing } if missing == msgr_wire::features::MSG_AUTH
        ),
        "{}",
        f.error
    );
}

/// Host 1 (client, lossless) and host 2 (the OSD) on msgr2 addresses, with `modes` offered
/// by the client (allowed by the OSD: crc and secure).
fn pair_v2(
    client_auth: Arc<dyn Authorizer>,
    osd_auth: Arc<dyn Authorizer>,
    modes: Vec<msgr_pipe::ConMode>,
) -> Pair {
    let net = TestNet::new(1 << 16);
    let steps = StepLog::new();
    let mut config = PipeConfig {
        hook: Some(steps.clone()),
        ..PipeConfig::default()
    };
    config.con_modes.client = modes;
    let (client, crx) = common::host_v2(1, Policy::lossless_client(0), config.clone(), &net);
    let (osd, orx) = common::host_v2(2, Policy::stateful_server(0), config, &net);
    client.set_authorizer(Some(client_auth));
    osd.set_authorizer(Some(osd_auth));
    Pair {
        client,
        _crx: crx,
        osd,
        orx,
        steps,
    }
}

/// msgr2 in authorizer mode: the OSD challenges the client's cephx authorizer
/// (AUTH_REPLY_MORE), accepts the answer (AUTH_DONE with nonce + 1), both ends sign the
/// handshake (AUTH_SIGNATURE), and messages flow both ways; in crc mode and in secure mode,
/// where the authorizer reply carries the connection secret that keys AES-128-GCM.
#[tokio::test(start_paused = true)]
async fn msgr2_cephx_authorizer_opens_crc_and_secure_sessions() {
    use msgr_pipe::ConMode;
    for (mode, seed) in [(ConMode::Crc, 1), (ConMode::Secure, 2)] {
        let mon = mon(seed);
        let client = ProviderAuthorizer::new().with_client(Box::new(admin(&mon, seed + 10)));
        let osd = ProviderAuthorizer::new().with_verifier(osd_verifier(&mon));
        let mut p = pair_v2(Arc::new(client), Arc::new(osd), vec![mode]);
        let s = p.client.connect(common::addr_v2(2), EntityType::OSD);
        for i in 0..20 {
            s.send(msg(i)).await.unwrap();
        }
        let mut got = Vec::new();
        while got.len() < 20 {
            match tokio::time::timeout(Duration::from_secs(10), p.orx.recv()).await {
                Ok(Some(HostEvent::Message { session, incoming })) => {
                    got.push(common::payload(&incoming.msg));
                    // msgr2 headers name no sender: it is the session's peer (its
                    // HELLO's type, its ident's global id: the ticket's).
                    assert_eq!(incoming.msg.header.src.ty, EntityType::OSD);
                    assert_eq!(incoming.msg.header.src.num, 4100);
                    session.send(msg(1000 + got.len() as u64)).await.unwrap();
                }
                Ok(Some(_)) => {}
                other => panic!("no message: {other:?}"),
            }
        }
        assert_eq!(got, (0..20).collect::<Vec<_>>());
        let (replies, _) = recv_n(&mut p._crx, 20, Duration::from_secs(10)).await;
        assert_eq!(replies, (1001..=1020).collect::<Vec<_>>());
        // A message large enough to have its CRCs computed when queued (v1's PRESEAL_MIN)
        // in crc mode, and none in secure mode: either way it arrives whole.
        let front: Vec<u8> = (0..70_000u32).map(|i| (i * 7) as u8).collect();
        let data: Vec<u8> = (0..200_001u32).map(|i| (i / 3) as u8).collect();
        let mut big = msgr_wire::Message::new(0x7001, front.clone());
        big.middle = bytes::Bytes::from_static(b"middle");
        big.data = bytes::Bytes::from(data.clone());
        s.send(big).await.unwrap();
        loop {
            match tokio::time::timeout(Duration::from_secs(10), p.orx.recv()).await {
                Ok(Some(HostEvent::Message { incoming, .. })) => {
                    let m = &incoming.msg;
                    assert_eq!(m.header.ty, 0x7001, "{mode:?}");
                    assert!(m.front[..] == front[..], "{mode:?}: front");
                    assert_eq!(&m.middle[..], b"middle");
                    assert!(m.data[..] == data[..], "{mode:?}: data");
                    break;
                }
                Ok(Some(_)) => {}
                other => panic!("no large message: {other:?}"),
            }
        }
        assert_eq!(s.con_mode(), Some(mode), "{mode:?}");
        assert_eq!(s.auth(), (msgr_auth::CEPH_AUTH_CEPHX, false));
        let theirs = p.osd.sessions();
        assert_eq!(theirs.len(), 1);
        assert_eq!(theirs[0].con_mode(), Some(mode));
        assert_eq!(theirs[0].auth().0, msgr_auth::CEPH_AUTH_CEPHX);
        assert_eq!(s.stats().faults, 0);
        let _ = &p.steps;
    }
}

/// msgr2: a ticket the OSD cannot read is answered AUTH_BAD_METHOD (−13); the session gives
/// up with that answer, and secure mode without a connection secret (no verifier) is refused
/// too rather than falling back to crc.
#[tokio::test(start_paused = true)]
async fn msgr2_a_foreign_ticket_is_refused_with_auth_bad_method() {
    let (a, b) = (mon(1), mon(99));
    let client = ProviderAuthorizer::new().with_client(Box::new(admin(&b, 2)));
    let osd = ProviderAuthorizer::new().with_verifier(osd_verifier(&a));
    let p = pair_v2(
        Arc::new(client),
        Arc::new(osd),
        vec![msgr_pipe::ConMode::Crc],
    );
    let s = p.client.connect(common::addr_v2(2), EntityType::OSD);
    s.send(msg(1)).await.unwrap();
    tokio::time::timeout(Duration::from_secs(30), s.closed())
        .await
        .expect("refused: the session gives up");
    let f = s.handshake_failures().borrow().clone().expect("a failure");
    assert!(f.fatal, "{f:?}");
    assert!(
        matches!(
            &*f.error,
            msgr_pipe::PipeError::V2Handshake(
                msgr_pipe::v2::connect::HandshakeError::AuthRefused { result: -13, .. }
            )
        ),
        "{}",
        f.error
    );
    assert!(p.osd.sessions().is_empty());
}
