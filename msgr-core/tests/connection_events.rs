//! Awaitable connection events: keepalive acks and state changes, over real TCP sockets on
//! 127.0.0.1, with no sleeps (every wait is an event with a deadline).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use msgr_core::testing::stop;
use msgr_core::{BoxFuture, ConnState, Dispatched, Dispatcher, Messenger, Policy, Received};
use msgr_pipe::session::SessionClosed;
use msgr_wire::{EntityName, EntityType};

const WAIT: Duration = Duration::from_secs(10);

/// Takes every message; only connection events matter here.
struct Sink;

impl Dispatcher for Sink {
    fn dispatch(&self, _m: Received) -> BoxFuture<'_, Dispatched> {
        Box::pin(async { Dispatched::Handled })
    }
}

async fn messenger(name: EntityName, policy: Policy) -> Messenger {
    Messenger::builder(name)
        .bind("127.0.0.1:0".parse().unwrap())
        .default_policy(policy)
        .dispatcher(Arc::new(Sink))
        .start()
        .await
        .expect("start")
}

fn now() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalive_acks_and_state_changes_are_awaited() {
    let server = messenger(EntityName::osd(0), Policy::stateless_server(0)).await;
    let client = messenger(EntityName::client(-1), Policy::lossy_client(0)).await;
    let conn = client
        .connect_lazy(server.addr(), EntityType::OSD)
        .expect("connect");
    let mut state = conn.watch_state();
    tokio::time::timeout(WAIT, state.wait_for(|s| *s == ConnState::Open))
        .await
        .expect("never open")
        .expect("closed before open");

    // A keepalive round trip, awaited: the ack echoes the stamp our writer sent.
    for _ in 0..3 {
        let acked = conn.keepalive_acked();
        let before = now();
        conn.send_keepalive();
        let ts = tokio::time::timeout(WAIT, acked)
            .await
            .expect("no keepalive ack")
            .expect("session closed");
        let stamp = Duration::new(u64::from(ts.sec), ts.nsec);
        assert!(before <= stamp && stamp <= now(), "{before:?} {stamp:?}");
        assert_eq!(conn.last_keepalive_ack(), Some(ts));
    }

    // Waiters that nothing but the session's end can wake end when it is marked down.
    let ack_waiter = tokio::spawn(conn.keepalive_acked());
    let mut never = conn.watch_state();
    let state_waiter = tokio::spawn(async move {
        never
            .wait_for(|s| *s == ConnState::Standby)
            .await
            .map(|s| *s)
    });
    conn.mark_down();
    let acked = tokio::time::timeout(WAIT, ack_waiter)
        .await
        .expect("the keepalive waiter hangs")
        .unwrap();
    assert_eq!(acked, Err(SessionClosed));
    let reached = tokio::time::timeout(WAIT, state_waiter)
        .await
        .expect("the state waiter hangs")
        .unwrap();
    assert!(reached.is_err(), "{reached:?}");
    assert_eq!(*state.borrow_and_update(), ConnState::Closed);
    assert!(state.changed().await.is_err());
    assert_eq!(conn.keepalive_acked().await, Err(SessionClosed));

    // The loopback: acked at once while the messenger runs, closed with it.
    let lo = client.loopback();
    let mut lo_state = lo.watch_state();
    assert_eq!(*lo_state.borrow(), ConnState::Open);
    let before = now();
    let ts = lo.keepalive_acked().await.expect("loopback open");
    let stamp = Duration::new(u64::from(ts.sec), ts.nsec);
    assert!(before <= stamp && stamp <= now(), "{before:?} {stamp:?}");
    stop(&client).await;
    assert_eq!(*lo_state.borrow_and_update(), ConnState::Closed);
    assert!(lo_state.changed().await.is_err());
    assert_eq!(lo.keepalive_acked().await, Err(SessionClosed));

    stop(&server).await;
}
