//! MonClient against a scripted mon (`common`): real messengers on loopback, the mon's auth
//! service being msgr-auth's `CephxAuthServer` (or `NoneAuthServer`).
//!
//! | test | proves |
//! |---|---|
//! | [`cephx_authenticates_and_runs_requests`] | two MAuth rounds (negotiation, GET_AUTH_SESSION_KEY with the service tickets), tickets for mon/osd/mgr/mds that the services' rotating keys verify, command/get_version/monmap |
//! | [`none_when_that_is_what_the_mon_allows`] | negotiation picks `none` from `cephx, none`, one round |
//! | [`wrong_key_is_refused_at_once`], [`unknown_entity_is_refused_at_once`] | AuthRefused naming the entity, EACCES, < 1 s, the second mon never dialled |
//! | [`no_common_method_is_refused`] | ENOTSUP from a none-only mon to a cephx-only client |
//! | [`hunts_past_a_dead_mon`] | a mon refusing TCP is skipped |
//! | [`reclaims_global_id_on_the_next_mon`] | the session's mon stops; the next request hunts to the other mon, which sees the old global id and the old AUTH ticket and gives the same global id; lasting subscriptions follow |
//! | [`renews_service_tickets_at_three_quarters`] | paused clock: GET_PRINCIPAL_SESSION_KEY between 2700 s and 2701 s after authentication, not before; the new OSD ticket verifies |
//! | [`a_silent_mon_is_left_after_the_ping_timeout`] | paused clock, a frozen relay: still on the mon 100 s on (acked keepalives), then on the next mon 30-31 s after the freeze, same global id |
//! | [`the_authorizer_hook_opens_signed_sessions_to_a_service`] | a messenger with `MonClient::authorizer` opens a session to an OSD messenger verifying with the mon's rotating keys (challenged), its messages arrive signed; a dropped client builds no authorizer |
//! | [`badauthorizer_is_retried_once_on_a_fresh_ticket_from_the_mon`] | an OSD that refuses the first authorizer: the client forgets that ticket, asks the mon for a new one (one GET_PRINCIPAL_SESSION_KEY) and the retry opens the session |
//! | [`renews_the_auth_ticket_with_the_old_one_at_54_hours`] | paused clock: GET_AUTH_SESSION_KEY with the old ticket between 194,400 and 194,401 s, on the same session, same global id |

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use common::{ScriptedMon, FSID};
use msgr_auth::cephx::ChallengeState;
use msgr_auth::provider::{
    AuthorizerVerifier, CephxAuthServer, CephxAuthorizerVerifier, NoneAuthServer, ServiceKeyStore,
    TicketTtls, VerifyOutcome,
};
use msgr_auth::{
    CryptoKey, EntityName, Keyring, KeyringEntry, UTime, CEPH_AUTH_CEPHX, CEPH_AUTH_NONE,
    ENTITY_MDS, ENTITY_MGR, ENTITY_MON, ENTITY_OSD,
};
use msgr_monc::{ClientOptions, MonClient, MonClientConfig, MonClientError};
use rand::SeedableRng;
use tokio::time::Instant;

const FIRST_GLOBAL_ID: u64 = 4100;

fn seeded(s: u64) -> Box<dyn rand::RngCore + Send> {
    Box::new(rand::rngs::StdRng::seed_from_u64(s))
}

fn key(seed: u8) -> CryptoKey {
    CryptoKey::aes([seed; 16])
}

/// A keyring with `client.admin` (key seed 1).
fn keyring() -> Keyring {
    let mut k = Keyring::new();
    k.insert(
        EntityName::client("admin"),
        KeyringEntry {
            key: key(1),
            caps: [("mon".to_owned(), "allow *".to_owned())].into(),
        },
    );
    k
}

fn cephx_server() -> CephxAuthServer {
    CephxAuthServer::new(keyring(), TicketTtls::default(), FIRST_GLOBAL_ID, seeded(9))
}

fn config(mons: &[&ScriptedMon], name: &str, key: CryptoKey) -> MonClientConfig {
    let mut o = ClientOptions::new(name.parse().expect("name"));
    o.mon_host = mons.iter().map(|m| m.addr().into()).collect();
    o.auth_client_required = vec![CEPH_AUTH_CEPHX];
    let mut c = MonClientConfig::new(o);
    c.key = Some(key);
    c.seed = Some(5);
    c
}

/// Whether `client`'s ticket for `service` verifies with the service's rotating keys as the
/// mon issued them, and names our global id.
async fn ticket_verifies(client: &MonClient, server: &CephxAuthServer, service: u32) -> bool {
    let Ok(a) = client.build_authorizer(service).await else {
        return false;
    };
    let now = UTime::now();
    let mut store = ServiceKeyStore::default();
    store
        .rotating
        .insert(service, server.rotating_secrets(service, now));
    let v = CephxAuthorizerVerifier::new(service, Arc::new(RwLock::new(store)), false, seeded(3));
    match v.verify(&a.bytes(), &mut ChallengeState::default(), u64::MAX, now) {
        Ok(VerifyOutcome::Accepted { peer, .. }) => {
            peer.global_id == client.global_id() && peer.name == EntityName::client("admin")
        }
        _ => false,
    }
}

#[tokio::test]
async fn cephx_authenticates_and_runs_requests() {
    let server = cephx_server();
    let mon = ScriptedMon::start(Arc::new(server.clone()), keyring()).await;
    let client = MonClient::new(config(&[&mon], "client.admin", key(1)))
        .await
        .unwrap();
    assert_eq!(client.global_id(), 0);
    client.authenticate().await.unwrap();
    assert_eq!(client.global_id(), FIRST_GLOBAL_ID);
    assert_eq!(
        client.messenger().name(),
        msgr_wire::EntityName::client(FIRST_GLOBAL_ID as i64)
    );
    // Negotiation, then GET_AUTH_SESSION_KEY carrying the service tickets: two rounds.
    let log = mon.auth_log();
    let rounds: Vec<_> = log.iter().map(|s| (s.protocol, s.request_type)).collect();
    assert_eq!(rounds, [(0, None), (CEPH_AUTH_CEPHX, Some(0x0100))]);
    assert!(log.iter().all(|s| s.result == 0));
    for service in [ENTITY_MON, ENTITY_OSD, ENTITY_MGR, ENTITY_MDS] {
        assert!(
            ticket_verifies(&client, &server, service).await,
            "service {service:#x}"
        );
    }
    assert_eq!(
        client.monmap().map(|m| m.fsid.to_string()),
        Some(FSID.into())
    );
    assert_eq!(client.current_mon().await, Some(mon.addr()));

    let r = client
        .command(r#"{"prefix": "status", "format": "json"}"#, Bytes::new())
        .await
        .unwrap();
    assert_eq!((r.errno, r.status.as_str()), (0, ""));
    assert_eq!(r.output, format!(r#"{{"fsid":"{FSID}"}}"#));
    let r = client
        .command(
            r#"{"prefix": "auth get", "entity": "client.admin"}"#,
            Bytes::new(),
        )
        .await
        .unwrap();
    assert_eq!(r.errno, 0);
    assert!(String::from_utf8_lossy(&r.output).contains(&key(1).to_base64()));
    let r = client
        .command(r#"{"prefix": "no such thing"}"#, Bytes::new())
        .await
        .unwrap();
    assert_eq!(r.errno, -22);
    assert!(r.status.starts_with("unrecognized command"), "{}", r.status);
    assert_eq!(client.get_version("osdmap").await.unwrap(), (7, 1));
    // Requests ran on the one session: no second authentication.
    assert_eq!(mon.auth_log().len(), 2);
    assert_eq!(client.stats().sessions, 1);
    client.shutdown().await;
    mon.stop().await;
}

#[tokio::test]
async fn none_when_that_is_what_the_mon_allows() {
    let mon = ScriptedMon::start(Arc::new(NoneAuthServer::new(FIRST_GLOBAL_ID)), keyring()).await;
    let mut cfg = config(&[&mon], "client.admin", key(1));
    cfg.options.auth_client_required = vec![CEPH_AUTH_CEPHX, CEPH_AUTH_NONE];
    let client = MonClient::new(cfg).await.unwrap();
    client.authenticate().await.unwrap();
    assert_eq!(client.global_id(), FIRST_GLOBAL_ID);
    let log = mon.auth_log();
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(
        client.auth_client().await.unwrap().protocol(),
        CEPH_AUTH_NONE
    );
    let r = client
        .command(r#"{"prefix": "status"}"#, Bytes::new())
        .await
        .unwrap();
    assert_eq!(r.errno, 0);
    client.shutdown().await;
    mon.stop().await;
}

/// Authenticates as `name` with `key` against a cephx mon listed first and a second mon
/// after it; checks the refusal and that the second mon was never tried.
async fn refused_fast(name: &str, key: CryptoKey) {
    let first = ScriptedMon::start(Arc::new(cephx_server()), keyring()).await;
    let second = ScriptedMon::start(Arc::new(cephx_server()), keyring()).await;
    let client = MonClient::new(config(&[&first, &second], name, key))
        .await
        .unwrap();
    let started = Instant::now();
    let err = client.authenticate().await.unwrap_err();
    let took = started.elapsed();
    match &err {
        MonClientError::AuthRefused {
            entity,
            result,
            mon,
        } => {
            assert_eq!(entity, name);
            assert_eq!(*result, -13);
            assert_eq!(*mon, first.addr());
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains(name), "{err}");
    assert!(err.to_string().contains("EACCES"), "{err}");
    assert!(took < Duration::from_secs(1), "refused after {took:?}");
    assert!(second.auth_log().is_empty(), "the hunt went on");
    assert_eq!(first.auth_log().len(), 2);
    client.shutdown().await;
    first.stop().await;
    second.stop().await;
}

#[tokio::test]
async fn wrong_key_is_refused_at_once() {
    refused_fast("client.admin", key(2)).await;
}

#[tokio::test]
async fn unknown_entity_is_refused_at_once() {
    refused_fast("client.nobody", key(1)).await;
}

#[tokio::test]
async fn no_common_method_is_refused() {
    let mon = ScriptedMon::start(Arc::new(NoneAuthServer::new(FIRST_GLOBAL_ID)), keyring()).await;
    let client = MonClient::new(config(&[&mon], "client.admin", key(1)))
        .await
        .unwrap();
    match client.authenticate().await {
        Err(MonClientError::AuthRefused { result: -95, .. }) => {}
        other => panic!("{other:?}"),
    }
    client.shutdown().await;
    mon.stop().await;
}

#[tokio::test]
async fn hunts_past_a_dead_mon() {
    let mon = ScriptedMon::start(Arc::new(cephx_server()), keyring()).await;
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_addr = dead.local_addr().unwrap();
    drop(dead);
    let mut cfg = config(&[&mon], "client.admin", key(1));
    cfg.options.mon_host.insert(0, dead_addr.into());
    let client = MonClient::new(cfg).await.unwrap();
    let started = Instant::now();
    client.authenticate().await.unwrap();
    let took = started.elapsed();
    assert_eq!(client.current_mon().await, Some(mon.addr()));
    assert_eq!(client.stats().hunt_failures, 1);
    // The dead mon refuses TCP: it costs no hunt interval.
    assert!(took < Duration::from_secs(3), "{took:?}");
    client.shutdown().await;
    mon.stop().await;
}

#[tokio::test]
async fn reclaims_global_id_on_the_next_mon() {
    // Two mons of one cluster: one key server (a real cluster's mons share it through paxos).
    let server = cephx_server();
    let a = ScriptedMon::start(Arc::new(server.clone()), keyring()).await;
    let b = ScriptedMon::start(Arc::new(server.clone()), keyring()).await;
    let client = MonClient::new(config(&[&a, &b], "client.admin", key(1)))
        .await
        .unwrap();
    client.authenticate().await.unwrap();
    let gid = client.global_id();
    assert_eq!(client.current_mon().await, Some(a.addr()));
    client.subscribe("osdmap", 0, false).await.unwrap();
    client.subscribe("mgrmap", 0, true).await.unwrap();
    // A round trip: the mon dispatches in order, so the subscriptions have been handled.
    client.get_version("osdmap").await.unwrap();
    assert_eq!(
        a.subscribes(),
        [vec!["monmap"], vec!["osdmap"], vec!["mgrmap"]],
        "the monmap on authentication, then each subscription"
    );
    a.stop().await;
    let r = client
        .command(r#"{"prefix": "status"}"#, Bytes::new())
        .await
        .unwrap();
    assert_eq!(r.errno, 0);
    assert_eq!(client.current_mon().await, Some(b.addr()));
    assert_eq!(client.global_id(), gid, "global id reclaimed");
    let log = b.auth_log();
    assert_eq!(log[0].reclaim, Some(gid), "{log:?}");
    assert_eq!(log[1].request_type, Some(0x0100));
    assert!(
        log[1].old_ticket_len.is_some_and(|l| l > 0),
        "the old AUTH ticket is presented: {log:?}"
    );
    assert!(log.iter().all(|s| s.result == 0 && s.global_id == gid));
    assert_eq!(client.stats().sessions, 2);
    // The lasting subscription is renewed on the new session, the one-time one is not.
    assert_eq!(b.subscribes(), [vec!["monmap", "osdmap"]]);
    // The tickets from the new session verify.
    assert!(ticket_verifies(&client, &server, ENTITY_OSD).await);
    client.shutdown().await;
    b.stop().await;
}

/// Ticket renewal with Ceph's default ttls (service tickets 1 h): due at three quarters of the
/// validity, 2700 s after they were issued. The clock is tokio's paused one, so the hour
/// passes at once; the client's keepalives (every 10 s) run meanwhile as they would.
#[tokio::test(start_paused = true)]
async fn renews_service_tickets_at_three_quarters() {
    let server = cephx_server();
    let mon = ScriptedMon::start(Arc::new(server.clone()), keyring()).await;
    let client = MonClient::new(config(&[&mon], "client.admin", key(1)))
        .await
        .unwrap();
    client.authenticate().await.unwrap();
    let authenticated = mon.auth_log()[1].at;
    let before = client.build_authorizer(ENTITY_OSD).await.unwrap().bytes();

    tokio::time::sleep_until(authenticated + Duration::from_secs(2699)).await;
    assert_eq!(
        mon.auth_log().len(),
        2,
        "renewed early: {:?}",
        mon.auth_log()
    );
    assert_eq!(client.stats().renewals, 0);

    tokio::time::sleep_until(authenticated + Duration::from_secs(2702)).await;
    let log = mon.auth_log();
    assert_eq!(log.len(), 3, "{log:?}");
    let renewal = &log[2];
    assert_eq!(
        renewal.request_type,
        Some(0x0200),
        "GET_PRINCIPAL_SESSION_KEY"
    );
    assert_eq!(renewal.result, 0);
    let after = renewal.at - authenticated;
    assert!(
        after >= Duration::from_secs(2700) && after <= Duration::from_secs(2701),
        "renewed {after:?} after authentication"
    );
    assert_eq!(client.stats().renewals, 1);
    assert_eq!(client.stats().sessions, 1, "renewed on the same session");
    let renewed = client.build_authorizer(ENTITY_OSD).await.unwrap().bytes();
    assert_ne!(before, renewed);
    assert!(ticket_verifies(&client, &server, ENTITY_OSD).await);
    client.shutdown().await;
    mon.stop().await;
}

/// The AUTH ticket (Ceph's default `auth_mon_ticket_ttl`, 72 h) is renewed on the open session
/// at three quarters of its validity, 54 h after issue, with GET_AUTH_SESSION_KEY presenting the
/// old ticket; the global id stays. Paused clock: the 54 hours (19,440 keepalives and 72
/// service-ticket renewals) run in well under a second of real time.
#[tokio::test(start_paused = true)]
async fn renews_the_auth_ticket_with_the_old_one_at_54_hours() {
    const RENEW: u64 = 259_200 / 4 * 3;
    let server = cephx_server();
    let mon = ScriptedMon::start(Arc::new(server.clone()), keyring()).await;
    let client = MonClient::new(config(&[&mon], "client.admin", key(1)))
        .await
        .unwrap();
    client.authenticate().await.unwrap();
    let gid = client.global_id();
    let authenticated = mon.auth_log()[1].at;
    let auth_requests = |mon: &ScriptedMon| {
        mon.auth_log()
            .into_iter()
            .filter(|s| s.request_type == Some(0x0100))
            .collect::<Vec<_>>()
    };

    tokio::time::sleep_until(authenticated + Duration::from_secs(RENEW - 1)).await;
    assert_eq!(auth_requests(&mon).len(), 1, "AUTH ticket renewed early");
    // Service tickets were renewed every 45 min meanwhile: 72 times in 54 h.
    assert_eq!(client.stats().renewals, RENEW / 2700 - 1);

    tokio::time::sleep_until(authenticated + Duration::from_secs(RENEW + 2)).await;
    let requests = auth_requests(&mon);
    assert_eq!(requests.len(), 2, "{requests:?}");
    let renewal = &requests[1];
    let after = renewal.at - authenticated;
    assert!(
        after >= Duration::from_secs(RENEW) && after <= Duration::from_secs(RENEW + 1),
        "AUTH ticket renewed {after:?} after issue"
    );
    assert!(renewal.old_ticket_len.is_some_and(|l| l > 0), "{renewal:?}");
    assert_eq!((renewal.result, renewal.global_id), (0, gid));
    assert_eq!(renewal.conn, mon.auth_log()[1].conn, "on the same session");
    assert_eq!(client.stats().sessions, 1);
    assert_eq!(client.global_id(), gid);
    assert!(ticket_verifies(&client, &server, ENTITY_MON).await);
    client.shutdown().await;
    mon.stop().await;
}

/// A mon that stops answering (a partition: its socket stays open, nothing comes back) is left
/// once no keepalive has been acked for `mon_client_ping_timeout` (30 s; keepalives every 10 s),
/// and the client moves to the next mon, keeping its global id. Paused clock.
#[tokio::test(start_paused = true)]
async fn a_silent_mon_is_left_after_the_ping_timeout() {
    let server = cephx_server();
    let a = ScriptedMon::start(Arc::new(server.clone()), keyring()).await;
    let b = ScriptedMon::start(Arc::new(server.clone()), keyring()).await;
    let relay = common::Relay::start(a.addr()).await;
    let mut cfg = config(&[&b], "client.admin", key(1));
    cfg.options.mon_host.insert(0, relay.addr.into());
    let client = MonClient::new(cfg).await.unwrap();
    client.authenticate().await.unwrap();
    let gid = client.global_id();
    let authenticated = a.auth_log()[1].at;
    assert_eq!(client.current_mon().await, Some(relay.addr));
    // Acked keepalives keep the session: 100 s later it is still on the first mon.
    tokio::time::sleep_until(authenticated + Duration::from_secs(100)).await;
    assert_eq!(client.current_mon().await, Some(relay.addr));
    assert!(b.auth_log().is_empty());

    relay.freeze();
    let frozen = Instant::now();
    tokio::time::sleep_until(frozen + Duration::from_secs(29)).await;
    assert!(b.auth_log().is_empty(), "left the mon early");
    tokio::time::sleep_until(frozen + Duration::from_secs(45)).await;
    let log = b.auth_log();
    assert!(!log.is_empty(), "still on the silent mon");
    let moved = log[0].at - frozen;
    // The last ack came with the keepalive sent at 100 s (just before the freeze), so the
    // keepalive of 130 s finds it 30 s old.
    assert!(
        moved >= Duration::from_secs(30) && moved <= Duration::from_secs(31),
        "moved {moved:?} after the freeze"
    );
    assert_eq!(client.current_mon().await, Some(b.addr()));
    assert_eq!(client.global_id(), gid);
    assert_eq!(log[0].reclaim, Some(gid));
    assert_eq!(client.stats().sessions, 2);
    client.shutdown().await;
    a.stop().await;
    b.stop().await;
}

/// Forwards every received message with its footer flags.
struct Inbox(tokio::sync::mpsc::UnboundedSender<msgr_wire::Message>);

impl msgr_core::Dispatcher for Inbox {
    fn dispatch(
        &self,
        msg: msgr_core::Received,
    ) -> msgr_core::BoxFuture<'_, msgr_core::Dispatched> {
        let _ = self.0.send(msg.msg);
        Box::pin(async { msgr_core::Dispatched::Handled })
    }
}

#[tokio::test]
async fn the_authorizer_hook_opens_signed_sessions_to_a_service() {
    let server = cephx_server();
    let mon = ScriptedMon::start(Arc::new(server.clone()), keyring()).await;
    let client = MonClient::new(config(&[&mon], "client.admin", key(1)))
        .await
        .unwrap();
    client.authenticate().await.unwrap();
    // An OSD that verifies with the rotating keys the mon gave it.
    let mut store = ServiceKeyStore::default();
    store.rotating.insert(
        ENTITY_OSD,
        server.rotating_secrets(ENTITY_OSD, UTime::now()),
    );
    let verifier =
        CephxAuthorizerVerifier::new(ENTITY_OSD, Arc::new(RwLock::new(store)), true, seeded(4));
    let (tx, mut osd_rx) = tokio::sync::mpsc::unbounded_channel();
    let osd = msgr_core::Messenger::builder(msgr_wire::EntityName::osd(0))
        .bind("127.0.0.1:0".parse().unwrap())
        .dispatcher(Arc::new(Inbox(tx)))
        .authorizer(Arc::new(
            msgr_core::ProviderAuthorizer::new().with_verifier(Arc::new(verifier)),
        ))
        .start()
        .await
        .unwrap();
    // The client's messenger presents the mon client's OSD ticket.
    let (ctx, _crx) = tokio::sync::mpsc::unbounded_channel();
    let app =
        msgr_core::Messenger::builder(msgr_wire::EntityName::client(client.global_id() as i64))
            .dispatcher(Arc::new(Inbox(ctx)))
            .authorizer(client.authorizer())
            .start()
            .await
            .unwrap();
    let conn = app
        .connect_lazy(osd.addr(), msgr_wire::EntityType::OSD)
        .unwrap();
    for i in 0..5u64 {
        conn.send(msgr_wire::Message::new(0x4242, i.to_le_bytes().to_vec()))
            .await
            .unwrap();
    }
    for i in 0..5u64 {
        let m = tokio::time::timeout(Duration::from_secs(10), osd_rx.recv())
            .await
            .expect("delivered")
            .expect("open");
        assert_eq!(m.front[..], i.to_le_bytes()[..]);
        assert_ne!(
            m.footer.flags & msgr_auth::signature::FOOTER_SIGNED,
            0,
            "signed with the ticket's session key"
        );
    }
    assert_eq!(conn.stats().faults, 0);
    // A client without tickets (dropped) builds no authorizer: the OSD refuses it.
    let hook = client.authorizer();
    client.shutdown().await;
    drop(client);
    assert!(hook
        .build(msgr_wire::EntityType::OSD, false)
        .await
        .is_none());
    app.shutdown();
    osd.shutdown();
    mon.stop().await;
}

/// Refuses the first authorizer it sees, then verifies with `inner`.
struct RefuseFirst {
    inner: msgr_core::ProviderAuthorizer,
    refused: std::sync::atomic::AtomicU32,
}

impl msgr_core::Authorizer for RefuseFirst {
    fn build(
        &self,
        peer_type: msgr_wire::EntityType,
        retry: bool,
    ) -> msgr_core::BoxFuture<'_, Option<Box<dyn msgr_core::ClientAuthorizer>>> {
        self.inner.build(peer_type, retry)
    }
    fn verify(
        &self,
        peer_type: msgr_wire::EntityType,
        protocol: u32,
        authorizer: &[u8],
        challenge: &mut ChallengeState,
        features: u64,
    ) -> Result<VerifyOutcome, msgr_auth::AuthError> {
        use std::sync::atomic::Ordering;
        if self.refused.fetch_add(1, Ordering::AcqRel) == 0 {
            return Err(msgr_auth::AuthError::BadAuthorizer {
                reason: "the test refuses the first one",
            });
        }
        self.inner
            .verify(peer_type, protocol, authorizer, challenge, features)
    }
}

#[tokio::test]
async fn badauthorizer_is_retried_once_on_a_fresh_ticket_from_the_mon() {
    let server = cephx_server();
    let mon = ScriptedMon::start(Arc::new(server.clone()), keyring()).await;
    let client = MonClient::new(config(&[&mon], "client.admin", key(1)))
        .await
        .unwrap();
    client.authenticate().await.unwrap();
    let rounds_before = mon.auth_log().len();
    let mut store = ServiceKeyStore::default();
    store.rotating.insert(
        ENTITY_OSD,
        server.rotating_secrets(ENTITY_OSD, UTime::now()),
    );
    let verifier =
        CephxAuthorizerVerifier::new(ENTITY_OSD, Arc::new(RwLock::new(store)), false, seeded(4));
    let (tx, mut osd_rx) = tokio::sync::mpsc::unbounded_channel();
    let osd = msgr_core::Messenger::builder(msgr_wire::EntityName::osd(0))
        .bind("127.0.0.1:0".parse().unwrap())
        .dispatcher(Arc::new(Inbox(tx)))
        .authorizer(Arc::new(RefuseFirst {
            inner: msgr_core::ProviderAuthorizer::new().with_verifier(Arc::new(verifier)),
            refused: std::sync::atomic::AtomicU32::new(0),
        }))
        .start()
        .await
        .unwrap();
    let (ctx, _crx) = tokio::sync::mpsc::unbounded_channel();
    let app =
        msgr_core::Messenger::builder(msgr_wire::EntityName::client(client.global_id() as i64))
            .dispatcher(Arc::new(Inbox(ctx)))
            .authorizer(client.authorizer())
            .start()
            .await
            .unwrap();
    let conn = app
        .connect_lazy(osd.addr(), msgr_wire::EntityType::OSD)
        .unwrap();
    conn.send(msgr_wire::Message::new(0x4242, 7u64.to_le_bytes().to_vec()))
        .await
        .unwrap();
    let m = tokio::time::timeout(Duration::from_secs(10), osd_rx.recv())
        .await
        .expect("delivered after the retry")
        .expect("open");
    assert_eq!(m.front[..], 7u64.to_le_bytes()[..]);
    // Between the refusal and the retry the client asked the mon for a new OSD ticket
    // (GET_PRINCIPAL_SESSION_KEY, 0x0200).
    let log = mon.auth_log();
    let fresh: Vec<_> = log[rounds_before..]
        .iter()
        .filter(|s| s.request_type == Some(0x0200))
        .collect();
    assert_eq!(fresh.len(), 1, "{log:?}");
    assert_eq!(fresh[0].result, 0);
    app.shutdown();
    osd.shutdown();
    client.shutdown().await;
    mon.stop().await;
}
