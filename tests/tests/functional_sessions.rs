//! Ceph's functional messenger tests (spec `ceph-test-suite.md` §1.1) about session
//! semantics per policy: StatefulTest, StatelessTest, ClientStandbyTest. They check exactly
//! when connect and remote-reset events fire and when the per-session count restarts at 1.

use msgr_core::{ConnState, Connection, Policy};
use msgr_tests::fixture::{ping, Ev, Fixture, Recorder, Seen, WAIT};
use tokio::time::timeout;

/// The server's registered connection to the fixture's client.
fn server_side(f: &Fixture) -> Connection {
    f.server
        .connection(&f.client.addr())
        .expect("server has a session with the client")
}

/// Whether `conn` saw, after event index `from`, the events `want` in this order (others may
/// be interleaved).
fn saw_in_order(s: &Seen, from: usize, conn: &Connection, want: &[Ev]) -> bool {
    let mut want = want.iter().peekable();
    for (c, e) in s.events.iter().skip(from) {
        if *c == conn.id() && want.peek() == Some(&e) {
            want.next();
        }
    }
    want.peek().is_none()
}

async fn wait_events(rec: &Recorder, from: usize, conn: &Connection, want: &[Ev]) {
    assert!(
        rec.wait_until(|s| saw_in_order(s, from, conn, want)).await,
        "events {want:?} not seen on {conn:?}: {:?}",
        rec.seen().events
    );
}

/// StatefulTest: stateful_server for clients, lossless_client towards the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stateful_test() {
    let f = Fixture::new(
        Some(Policy::stateful_server(0)),
        Some(Policy::lossless_client(0)),
    )
    .await;

    // 1. Round trip; the client marks down; the server keeps its session and count.
    let conn = f.connect();
    f.round_trip(&conn).await;
    assert_eq!(f.cli.count(&conn), 1);
    conn.mark_down();
    assert!(!conn.is_connected());
    let kept = server_side(&f);
    assert_eq!(f.srv.count(&kept), 1, "server does not lose state");
    let again = f
        .server
        .connect_lazy(f.client.addr(), msgr_wire::EntityType::CLIENT)
        .expect("running");
    assert_eq!(again, kept, "connect returns the kept session");

    // 2. A new client session (connect_seq 0): the server detects the peer reset.
    let from = f.srv.seen().events.len();
    let conn = f.connect();
    f.round_trip(&conn).await;
    assert_eq!(f.cli.count(&conn), 1);
    wait_events(&f.srv, from, &kept, &[Ev::RemoteReset]).await;
    let sconn = server_side(&f);
    assert_eq!(f.srv.count(&sconn), 1);

    // 3. The server forgets the client; the lossless client reconnects by itself, is told to
    //    reset, and connects again.
    let from = f.cli.seen().events.len();
    sconn.mark_down();
    wait_events(&f.cli, from, &conn, &[Ev::RemoteReset, Ev::Connect]).await;
    assert!(conn.is_connected());
    f.round_trip(&conn).await;
    assert_eq!(f.cli.count(&conn), 1);
    let sconn = server_side(&f);
    assert_eq!(f.srv.count(&sconn), 1);
    f.teardown().await;
}

/// StatelessTest: stateless_server / lossy_client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stateless_test() {
    let f = Fixture::new(None, None).await;

    // 1. The server loses state: a new connection starts a new server-side session.
    let conn = f.connect();
    f.round_trip(&conn).await;
    conn.mark_down();
    assert!(!conn.is_connected());
    let conn = f.connect();
    f.round_trip(&conn).await;
    assert_eq!(f.cli.count(&conn), 1);
    assert_eq!(f.srv.count(&server_side(&f)), 1);

    // 2. The server marks its side down: a keepalive makes the lossy client notice, and the
    //    connection ends with a reset; a new one works.
    let from = f.cli.seen().events.len();
    server_side(&f).mark_down();
    conn.send_keepalive();
    timeout(WAIT, conn.closed())
        .await
        .expect("the lossy client notices the dead peer");
    assert!(!conn.is_connected());
    wait_events(&f.cli, from, &conn, &[Ev::Reset]).await;
    let conn = f.connect();
    f.round_trip(&conn).await;
    assert_eq!(f.cli.count(&conn), 1);
    f.teardown().await;
}

/// ClientStandbyTest: stateful_server / lossless_peer. After the server forgets the session
/// the idle client rests in standby; a message (not a keepalive) wakes it, the server answers
/// with a reset, and both sessions restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_standby_test() {
    let f = Fixture::new(
        Some(Policy::stateful_server(0)),
        Some(Policy::lossless_peer(0)),
    )
    .await;
    let conn = f.connect();
    f.round_trip(&conn).await;
    assert_eq!(f.cli.count(&conn), 1);

    let from = f.cli.seen().events.len();
    server_side(&f).mark_down();
    // The client, with nothing queued, goes to standby and stays there.
    wait_state(&conn, ConnState::Standby).await;
    conn.send_keepalive();
    assert_eq!(
        conn.state(),
        ConnState::Standby,
        "a keepalive does not wake standby"
    );
    assert_eq!(f.cli.seen().events.len(), from, "no event while in standby");

    // A message wakes it: remote reset, then connect.
    conn.send(ping()).await.expect("queued");
    wait_events(&f.cli, from, &conn, &[Ev::RemoteReset, Ev::Connect]).await;
    assert!(conn.is_connected());
    f.round_trip(&conn).await;
    // Both sessions restarted, and the wake-up ping went with the old client session
    // (discarded on the reset, as Ceph's `was_session_reset` does): count 1 on both sides.
    assert_eq!(f.cli.count(&conn), 1);
    assert_eq!(f.srv.count(&server_side(&f)), 1);
    let srv = f.srv.clone();
    f.teardown().await;
    assert_eq!(srv.messages(), 2, "the wake-up ping was not delivered");
}

/// Waits until `conn` is in `want`, polling its state (the pipe reports no state events);
/// bounded by [`WAIT`].
async fn wait_state(conn: &Connection, want: ConnState) {
    let waited = timeout(WAIT, async {
        while conn.state() != want {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(
        waited.is_ok(),
        "{conn:?} not {want:?} but {:?}",
        conn.state()
    );
}
