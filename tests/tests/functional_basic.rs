//! Ceph's functional messenger tests (spec `ceph-test-suite.md` §1.1): SimpleTest,
//! NameAddrTest, FeatureTest, TimeoutTest.

use std::time::Duration;

use msgr_core::{Policy, SendError};
use msgr_tests::fixture::{
    ping, round_trip, start, stop, test_config, Ev, Fixture, Recorder, WAIT,
};
use msgr_wire::{EntityName, EntityType};
use tokio::time::{timeout, Instant};

/// SimpleTest: round trip, rebind, mark_down, failed connection, loopback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simple_test() {
    let f = Fixture::new(None, None).await;

    // 1. A round trip on a fresh connection.
    let conn = f.connect();
    f.round_trip(&conn).await;
    assert!(conn.is_connected());
    assert_eq!(f.cli.count(&conn), 1);
    assert_eq!(conn.peer_type(), EntityType::OSD);

    // 2. Rebind away from the current port and the next 9; a new connection works.
    let port = f.server.addr().addr.port();
    let avoid: Vec<u16> = (0..10).map(|i| port.wrapping_add(i)).collect();
    let new = f.server.rebind(&avoid).await.expect("rebind");
    assert!(
        !avoid.contains(&new.addr.port()),
        "rebound to avoided port {new}"
    );
    assert_eq!(f.server.addr(), new);
    let conn = f.connect();
    f.round_trip(&conn).await;
    assert_eq!(f.cli.count(&conn), 1);

    // 3. mark_down: not connected, at once.
    conn.mark_down();
    assert!(!conn.is_connected());

    // 4. Failed connection: the server is gone; sending on the dead connection neither
    //    blocks nor revives it.
    stop(&f.server).await;
    let r = timeout(WAIT, conn.send(ping()))
        .await
        .expect("send does not block");
    assert!(matches!(r, Err(SendError::Closed)), "{r:?}");
    assert!(!conn.is_connected());

    // 5. Loopback: delivered to our own dispatcher, no socket.
    f.cli.set_loopback(true);
    let lb = f.client.loopback();
    assert!(lb.is_connected());
    round_trip_local(&f, &lb).await;
    assert_eq!(f.cli.count(&lb), 1);
    // Sending to our own address is local delivery too.
    let before = f.cli.messages();
    f.client
        .send_to(f.client.addr(), EntityType::CLIENT, ping())
        .await
        .expect("send to self");
    assert!(f.cli.wait_until(|s| s.messages > before).await);
    assert_eq!(f.cli.count(&lb), 2);
    f.cli.set_loopback(false);

    f.teardown().await;
}

async fn round_trip_local(f: &Fixture, lb: &msgr_core::Connection) {
    let before = f.cli.messages();
    lb.send(ping()).await.expect("loopback send");
    assert!(f.cli.wait_until(|s| s.messages > before).await);
}

/// NameAddrTest: the peer address is the server's; the server finds the accepted connection
/// by the client's address and reuses it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn name_addr_test() {
    let f = Fixture::new(None, None).await;
    let conn = f.connect();
    f.round_trip(&conn).await;
    assert_eq!(conn.peer_addr(), f.server.addr());
    let accepted = f
        .server
        .connection(&f.client.addr())
        .expect("server has the accepted connection");
    let again = f
        .server
        .connect_lazy(f.client.addr(), EntityType::CLIENT)
        .expect("server running");
    assert_eq!(accepted, again, "connect returns the accepted connection");
    assert_eq!(f.srv.count(&again), 1);
    assert_eq!(again.peer_name(), Some(EntityName::client(-1)));
    f.teardown().await;
}

/// Feature bits 0..=9.
const BITS_0_9: u64 = (1 << 10) - 1;

/// FeatureTest: the server requires bits 0–9 and 13 of clients.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feature_test() {
    let required = BITS_0_9 | 1 << 13;
    let lacking = Policy {
        features_supported: BITS_0_9,
        ..Policy::lossy_client(0)
    };
    let f = Fixture::new(Some(Policy::stateless_server(required)), Some(lacking)).await;

    // A client supporting only 0–9 fails for good, without its ping being delivered.
    let conn = f.connect();
    let _ = conn.send(ping()).await;
    timeout(WAIT, conn.closed())
        .await
        .expect("a connection lacking required features ends");
    assert!(!conn.is_connected());
    assert_eq!(f.srv.messages(), 0);
    stop(&f.client).await;

    // Restarted with 0–9, 13 and 14: works.
    let cli = Recorder::new(false, EntityType::CLIENT);
    let enough = Policy {
        features_supported: BITS_0_9 | 1 << 13 | 1 << 14,
        ..Policy::lossy_client(0)
    };
    let client = start(
        EntityName::client(-1),
        test_config(),
        Policy::lossy_client(0),
        vec![(EntityType::OSD, enough)],
        cli.clone(),
    )
    .await;
    let conn = client
        .connect_lazy(f.server.addr(), EntityType::OSD)
        .expect("running");
    round_trip(&cli, &conn).await;
    assert_eq!(cli.count(&conn), 1);
    assert_eq!(conn.features() & required, required);
    stop(&client).await;
    f.teardown().await;
}

/// TimeoutTest: with a 1 s read timeout, an idle connection is torn down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_test() {
    let mut cfg = test_config();
    cfg.pipe.read_timeout = Duration::from_secs(1);
    let f = Fixture::with_configs(None, None, cfg.clone(), cfg).await;
    let conn = f.connect();
    f.round_trip(&conn).await;
    let idle_since = Instant::now();
    // Nothing is sent any more: the lossy connection must end by itself (read timeout on one
    // side, reset on the other), and well before Ceph's 2.5 s check.
    timeout(Duration::from_millis(2500), conn.closed())
        .await
        .expect("idle connection closed within 2.5 s");
    assert!(idle_since.elapsed() >= Duration::from_millis(900));
    assert!(!conn.is_connected());
    assert!(
        f.cli
            .wait_until(|s| s.events_of(conn.id()).contains(&Ev::Reset))
            .await,
        "the lossy client is told of the reset"
    );
    f.teardown().await;
}

/// SimpleTest's round trip and loopback with pings fast-dispatched, as Ceph's
/// `FakeDispatcher` does: replies are queued from the reader task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simple_test_fast_dispatch() {
    let srv = Recorder::with_fast(true, EntityType::OSD, true);
    let cli = Recorder::with_fast(false, EntityType::CLIENT, true);
    let server = start(
        EntityName::osd(0),
        test_config(),
        Policy::stateless_server(0),
        vec![],
        srv.clone(),
    )
    .await;
    let client = start(
        EntityName::client(-1),
        test_config(),
        Policy::lossy_client(0),
        vec![],
        cli.clone(),
    )
    .await;
    let conn = client
        .connect_lazy(server.addr(), EntityType::OSD)
        .expect("running");
    for n in 1..=3 {
        round_trip(&cli, &conn).await;
        assert_eq!(cli.count(&conn), n);
    }
    cli.set_loopback(true);
    round_trip(&cli, &client.loopback()).await;
    assert_eq!(cli.count(&client.loopback()), 1);
    stop(&client).await;
    // Counted once each handler returned: read after the client stopped.
    let counters = client.dispatch_counters();
    assert_eq!(counters.fast_dispatched_messages, 4);
    assert_eq!(counters.dispatched_messages, 0);
    stop(&server).await;
}

/// Shutdown while peers keep connecting and sending (Ceph bugs 24, 25, 28 of the spec's §6.4):
/// `wait` returns, the queue is empty, throttles are 0, and connections kept past shutdown
/// (and the loopback, used right before it) are dead but safe to use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_while_peers_connect() {
    let f = Fixture::new(None, None).await;
    let conn = f.connect();
    f.round_trip(&conn).await;
    let accepted = f
        .server
        .connection(&f.client.addr())
        .expect("accepted connection");

    // A second client hammers the server with new connections and pings.
    let rec = Recorder::new(false, EntityType::CLIENT);
    let hammer = start(
        EntityName::client(-2),
        test_config(),
        Policy::lossy_client(0),
        vec![],
        rec.clone(),
    )
    .await;
    let target = f.server.addr();
    let load = tokio::spawn({
        let hammer = hammer.clone();
        async move {
            for _ in 0..200 {
                let Ok(c) = hammer.connect_lazy(target, EntityType::OSD) else {
                    return;
                };
                let _ = c.send(ping()).await;
                if rec.messages() > 5 {
                    c.mark_down();
                }
                tokio::task::yield_now().await;
            }
        }
    });
    // Shut the server down once it has answered some of them.
    assert!(f.srv.wait_until(|s| s.messages >= 5).await);
    f.server.loopback().send(ping()).await.ok();
    stop(&f.server).await;

    // Kept past shutdown: dead, safe.
    assert!(!accepted.is_connected());
    assert!(accepted.send(ping()).await.is_err());
    accepted.mark_down();
    assert!(f.server.loopback().send(ping()).await.is_err());
    assert!(f
        .server
        .connect_lazy(f.client.addr(), EntityType::CLIENT)
        .is_err());

    load.await.expect("load task");
    stop(&hammer).await;
    f.teardown().await;
}
