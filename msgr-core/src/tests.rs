//! Unit tests of the messenger over real loopback sockets: builder and config, chain,
//! loopback, mark-down semantics, rebind, connection reuse, quiescence after wait.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use msgr_pipe::Host;
use msgr_wire::{EntityName, EntityType, Message};
use tokio::sync::mpsc;

use crate::testing::stop;
use crate::{
    BoxFuture, Connection, Dispatched, Dispatcher, Messenger, MessengerConfig, Policy,
    PolicyConfig, PolicyKind, Received,
};

mod no_listener;

const WAIT: Duration = Duration::from_secs(10);

/// What a [`Probe`] saw.
#[derive(Debug)]
enum Seen {
    Msg(u16, Connection),
    Reset(Connection),
    RemoteReset,
    Connect,
    Accept,
}

/// Reports everything on a channel; handles messages of `ty` (or every type if `None`),
/// answering them when `echo`.
struct Probe {
    ty: Option<u16>,
    echo: bool,
    tx: mpsc::UnboundedSender<Seen>,
}

impl Probe {
    fn new(ty: Option<u16>, echo: bool) -> (Arc<Self>, mpsc::UnboundedReceiver<Seen>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Arc::new(Probe { ty, echo, tx }), rx)
    }
}

impl Dispatcher for Probe {
    fn dispatch(&self, m: Received) -> BoxFuture<'_, Dispatched> {
        Box::pin(async move {
            if self.ty.is_some_and(|t| t != m.msg.header.ty) {
                return Dispatched::Pass(m);
            }
            if self.echo {
                let _ = m
                    .conn
                    .send(Message::new(m.msg.header.ty, m.msg.front.clone()))
                    .await;
            }
            let _ = self.tx.send(Seen::Msg(m.msg.header.ty, m.conn.clone()));
            Dispatched::Handled
        })
    }
    fn handle_connect(&self, _c: &Connection) {
        let _ = self.tx.send(Seen::Connect);
    }
    fn handle_accept(&self, _c: &Connection) {
        let _ = self.tx.send(Seen::Accept);
    }
    fn handle_reset(&self, c: &Connection) {
        let _ = self.tx.send(Seen::Reset(c.clone()));
    }
    fn handle_remote_reset(&self, _c: &Connection) {
        let _ = self.tx.send(Seen::RemoteReset);
    }
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Seen>) -> Seen {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("event within WAIT")
        .expect("probe alive")
}

async fn next_msg(rx: &mut mpsc::UnboundedReceiver<Seen>) -> (u16, Connection) {
    loop {
        if let Seen::Msg(ty, c) = next(rx).await {
            return (ty, c);
        }
    }
}

fn local() -> MessengerConfig {
    MessengerConfig {
        bind_addr: "127.0.0.1:0".parse().expect("literal"),
        ..MessengerConfig::default()
    }
}

/// A started messenger on `local()` with `policy` for every peer and dispatcher `d`.
async fn messenger(name: EntityName, policy: Policy, d: Arc<dyn Dispatcher>) -> Messenger {
    messenger_with(name, local(), policy, d).await
}

/// A started messenger with config `cfg`, `policy` for every peer and dispatcher `d`.
async fn messenger_with(
    name: EntityName,
    cfg: MessengerConfig,
    policy: Policy,
    d: Arc<dyn Dispatcher>,
) -> Messenger {
    Messenger::builder(name)
        .config(cfg)
        .default_policy(policy)
        .dispatcher(d)
        .start()
        .await
        .expect("start")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_policies_throttles_and_name() {
    let mut cfg = local();
    cfg.name = Some("mon.2".into());
    cfg.features_required = 1 << 1;
    cfg.policies.insert(
        "osd".into(),
        PolicyConfig {
            throttle_bytes: 1024,
            throttle_messages: 8,
            features_required: 1 << 6,
            ..PolicyConfig::new(PolicyKind::LosslessPeer)
        },
    );
    let m = Messenger::builder(EntityName::client(1))
        .config(cfg)
        .start()
        .await
        .expect("start");
    assert_eq!(m.name(), EntityName::mon(2));
    let p = m.inner_host().policy(EntityType::OSD);
    assert!(!p.lossy && !p.server && p.standby && !p.resetcheck);
    assert_eq!(p.features_required, 1 << 1 | 1 << 6);
    let d = m.inner_host().policy(EntityType::MDS);
    assert!(!d.lossy && d.resetcheck, "default is lossless_client");
    let names: Vec<_> = m.throttles().into_iter().map(|t| (t.name, t.max)).collect();
    assert!(names.contains(&("policy.osd.bytes".into(), 1024)));
    assert!(names.contains(&("policy.osd.messages".into(), 8)));
    assert!(names.contains(&("dispatch".into(), 100 << 20)));
    stop(&m).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_config_is_refused() {
    let mut cfg = local();
    cfg.policies
        .insert("martian".into(), PolicyConfig::default());
    let r = Messenger::builder(EntityName::client(1))
        .config(cfg)
        .start()
        .await;
    assert!(
        matches!(
            &r,
            Err(crate::CoreError::Config(crate::ConfigError::EntityType(t))) if t == "martian"
        ),
        "{:?}",
        r.err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chain_passes_messages_on_and_loopback_delivers() {
    /// Counts preprocessed messages and passes everything on.
    struct Pre(std::sync::atomic::AtomicUsize);
    impl Dispatcher for Pre {
        fn dispatch(&self, m: Received) -> BoxFuture<'_, Dispatched> {
            Box::pin(async move { Dispatched::Pass(m) })
        }
        fn fast_preprocess(&self, _m: &Received) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }
    let pre = Arc::new(Pre(0.into()));
    let (first, mut rx1) = Probe::new(Some(1), false);
    let (second, mut rx2) = Probe::new(None, false);
    let m = Messenger::builder(EntityName::osd(3))
        .config(local())
        .dispatcher(pre.clone())
        .dispatcher(first)
        .dispatcher(second)
        .start()
        .await
        .expect("start");
    // connect() to our own address is the loopback.
    let lb = m.connect_lazy(m.addr(), EntityType::OSD).expect("running");
    assert!(lb.is_loopback());
    assert_eq!(lb, m.loopback());
    lb.send(Message::new(1, Bytes::from_static(b"a")))
        .await
        .expect("send");
    lb.send(Message::new(2, Bytes::from_static(b"b")))
        .await
        .expect("send");
    assert_eq!(next_msg(&mut rx1).await.0, 1);
    assert_eq!(next_msg(&mut rx2).await.0, 2);
    assert_eq!(m.stats().loopback.msgs_out, 2);
    assert_eq!(pre.0.load(std::sync::atomic::Ordering::SeqCst), 2);
    stop(&m).await;
    assert!(lb.send(Message::new(1, Bytes::new())).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_reuse_and_mark_down_semantics() {
    let (sp, mut srx) = Probe::new(None, true);
    let (cp, mut crx) = Probe::new(None, false);
    let server = messenger(EntityName::osd(0), Policy::stateless_server(0), sp).await;
    let client = messenger(EntityName::client(-1), Policy::lossy_client(0), cp).await;

    let conn = client
        .connect_lazy(server.addr(), EntityType::OSD)
        .expect("running");
    assert_eq!(
        conn,
        client
            .connect_lazy(server.addr(), EntityType::OSD)
            .expect("running")
    );
    conn.send(Message::new(7, Bytes::from_static(b"x")))
        .await
        .expect("send");
    let (_, accepted) = next_msg(&mut srx).await;
    next_msg(&mut crx).await;
    // The server's connect() to the client returns the accepted session.
    assert_eq!(
        server
            .connect_lazy(client.addr(), EntityType::CLIENT)
            .expect("running"),
        accepted
    );
    // The writer counts a message once its write returned, and the reader counts the echo
    // around its delivery: the echo can reach the dispatcher before either count lands (the
    // peer answers while the writer's thread is preempted between its write and its count).
    // Let the session's tasks run until both have counted, for a bounded number of
    // scheduler turns.
    let mut st = client.stats();
    for _ in 0..100_000 {
        if st.total.msgs_out >= 1 && st.total.msgs_in >= 1 {
            break;
        }
        tokio::task::yield_now().await;
        st = client.stats();
    }
    assert_eq!(st.connections.len(), 1);
    assert_eq!(
        (st.total.msgs_out, st.total.msgs_in),
        (1, 1),
        "one message, one echo"
    );

    // mark_down(addr) delivers exactly one reset on the side that asked.
    assert!(client.mark_down(&server.addr()));
    assert!(!conn.is_connected());
    loop {
        match next(&mut crx).await {
            Seen::Reset(c) => {
                assert_eq!(c, conn);
                break;
            }
            Seen::Connect | Seen::Msg(..) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(!client.mark_down(&server.addr()));

    // Connection::mark_down delivers none.
    let conn = client
        .connect_lazy(server.addr(), EntityType::OSD)
        .expect("running");
    conn.send(Message::new(7, Bytes::new()))
        .await
        .expect("send");
    next_msg(&mut crx).await;
    conn.mark_down();
    assert!(!conn.is_connected());
    stop(&client).await;
    while let Ok(s) = crx.try_recv() {
        assert!(
            !matches!(s, Seen::Reset(ref c) if *c == conn),
            "no reset for mark_down"
        );
    }
    stop(&server).await;
}

/// Counts each connection's messages in its [`Connection::app_data`] and reports the count
/// with the connection.
struct PerConnection {
    tx: mpsc::UnboundedSender<(u64, Connection)>,
}

impl Dispatcher for PerConnection {
    fn dispatch(&self, m: Received) -> BoxFuture<'_, Dispatched> {
        let n = m
            .conn
            .app_data()
            .get_or_init(|| std::sync::atomic::AtomicU64::new(0))
            .map(|c| c.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1);
        let _ = self.tx.send((n.unwrap_or(0), m.conn.clone()));
        Box::pin(async { Dispatched::Handled })
    }
}

async fn recv_counted(rx: &mut mpsc::UnboundedReceiver<(u64, Connection)>) -> (u64, Connection) {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("in time")
        .expect("a message")
}

/// A connection's application data is one slot per session: every message of the session,
/// and every handle to it, sees the value its first message set; the next session from the
/// same peer starts empty; a value of another type is refused; the loopback has its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_data_is_one_slot_per_session() {
    use std::sync::atomic::{AtomicU64, Ordering};
    let (tx, mut rx) = mpsc::unbounded_channel();
    let server = messenger(
        EntityName::osd(0),
        Policy::stateless_server(0),
        Arc::new(PerConnection { tx }),
    )
    .await;
    let (cp, _crx) = Probe::new(None, false);
    let client = messenger(EntityName::client(-1), Policy::lossy_client(0), cp).await;

    let conn = client
        .connect_lazy(server.addr(), EntityType::OSD)
        .expect("running");
    for _ in 0..3 {
        conn.send(Message::new(7, Bytes::new()))
            .await
            .expect("send");
    }
    let mut seen = Vec::new();
    let mut accepted = None;
    for _ in 0..3 {
        let (n, c) = recv_counted(&mut rx).await;
        seen.push(n);
        accepted = Some(c);
    }
    assert_eq!(seen, [1, 2, 3], "one counter for the session's messages");
    let accepted = accepted.expect("three messages");
    // Another handle to the same session sees the same value.
    let other = server
        .connect_lazy(client.addr(), EntityType::CLIENT)
        .expect("running");
    assert_eq!(other, accepted);
    let count = other.app_data().get::<AtomicU64>().expect("set");
    assert_eq!(count.load(Ordering::SeqCst), 3);
    // Set once, of one type.
    assert!(other.app_data().get_or_init(|| 0u8).is_none());
    assert!(other.app_data().get::<u8>().is_none());
    // The client drops its session: the server's (lossy) session ends with the
    // socket, and the next one starts with an empty slot.
    conn.mark_down();
    accepted.closed().await;
    let conn = client
        .connect_lazy(server.addr(), EntityType::OSD)
        .expect("running");
    conn.send(Message::new(7, Bytes::new()))
        .await
        .expect("send");
    let (n, fresh) = recv_counted(&mut rx).await;
    assert_ne!(fresh, accepted);
    assert_eq!(n, 1, "a new session counts from its own first message");
    assert_eq!(
        count.load(Ordering::SeqCst),
        3,
        "the old session's value is its own"
    );
    // The loopback's slot is its own, shared by its handles.
    assert!(!server.loopback().app_data().is_set());
    server.loopback().app_data().get_or_init(|| 5u32);
    assert_eq!(server.loopback().app_data().get::<u32>(), Some(&5));
    assert!(!client.loopback().app_data().is_set());
    stop(&client).await;
    stop(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebind_avoids_ports_and_changes_nonce() {
    let (sp, _srx) = Probe::new(None, true);
    let server = messenger(EntityName::osd(0), Policy::stateless_server(0), sp).await;
    let old = server.addr();
    let avoid: Vec<u16> = (1..10).map(|i| old.addr.port().wrapping_add(i)).collect();
    let new = server.rebind(&avoid).await.expect("rebind");
    assert_ne!(new.addr.port(), old.addr.port());
    assert!(!avoid.contains(&new.addr.port()));
    assert_ne!(new.nonce, old.nonce);
    assert_eq!(server.addr(), new);
    stop(&server).await;
    assert!(server.rebind(&[]).await.is_err());
    assert!(server.connect_lazy(old, EntityType::OSD).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_range_is_searched_outside_the_avoid_set() {
    let mut cfg = local();
    cfg.bind_port_min = 47_310;
    cfg.bind_port_max = 47_330;
    cfg.bind_avoid_ports = (47_310..47_315).collect();
    let m = Messenger::builder(EntityName::osd(9))
        .config(cfg)
        .start()
        .await
        .expect("start");
    let port = m.addr().addr.port();
    assert!((47_315..=47_330).contains(&port), "port {port}");
    stop(&m).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_permits_live_as_long_as_the_message() {
    // The server keeps every message; its policy throttle shows them until dropped.
    let kept = Arc::new(Mutex::new(Vec::new()));
    struct Keep(Arc<Mutex<Vec<Received>>>, mpsc::UnboundedSender<()>);
    impl Dispatcher for Keep {
        fn dispatch(&self, m: Received) -> BoxFuture<'_, Dispatched> {
            Box::pin(async move {
                self.0.lock().expect("lock").push(m);
                let _ = self.1.send(());
                Dispatched::Handled
            })
        }
    }
    let (tx, mut rx) = mpsc::unbounded_channel();
    let bytes = msgr_dispatch::Throttle::new(1 << 20);
    let server = Messenger::builder(EntityName::osd(0))
        .config(local())
        .policy(
            EntityType::CLIENT,
            Policy::stateless_server(0).with_throttles(Some(bytes.clone()), None),
        )
        .dispatcher(Arc::new(Keep(kept.clone(), tx)))
        .start()
        .await
        .expect("start");
    let (cp, _crx) = Probe::new(None, false);
    let client = messenger(EntityName::client(-1), Policy::lossy_client(0), cp).await;
    let conn = client
        .connect_lazy(server.addr(), EntityType::OSD)
        .expect("running");
    conn.send(Message::new(5, vec![0u8; 1000]))
        .await
        .expect("send");
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("delivered");
    assert_eq!(bytes.current(), 1000);
    assert_eq!(kept.lock().expect("lock")[0].permits.amount(), 1000);
    stop(&client).await;
    // wait() does not return while the application holds the message's permits...
    server.shutdown();
    let waiting = tokio::spawn({
        let server = server.clone();
        async move { server.wait().await }
    });
    tokio::task::yield_now().await;
    assert!(!waiting.is_finished());
    assert_eq!(bytes.current(), 1000);
    // ... and returns once it is dropped. (Not checked in between: wait() itself takes the
    // whole throttle for an instant to learn that it is empty, racing a read here.)
    kept.lock().expect("lock").clear();
    tokio::time::timeout(WAIT, waiting)
        .await
        .expect("wait returns")
        .expect("no panic");
    assert_eq!(bytes.current(), 0);
    stop(&server).await;
}

/// A lazy connection to a peer that is not there (a port just bound and released): nothing
/// sent on it is ever written or acknowledged, so its pending bytes only grow.
fn to_nobody(client: &Messenger) -> Connection {
    let gone = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = msgr_wire::EntityAddr::new(gone.local_addr().expect("addr"), 1);
    drop(gone);
    client.connect_lazy(addr, EntityType::OSD).expect("running")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sender_backpressure_waits_or_fails() {
    let mut cfg = local();
    cfg.pipe.max_pending_bytes = 1000;
    let (cp, _crx) = Probe::new(None, false);
    let client = messenger_with(EntityName::client(-1), cfg, Policy::lossless_client(0), cp).await;
    let conn = to_nobody(&client);
    conn.try_send(Message::new(1, vec![0u8; 600]))
        .expect("fits");
    assert!(matches!(
        conn.try_send(Message::new(1, vec![0u8; 600])),
        Err(crate::SendError::Full)
    ));
    // `send` waits instead of failing (polled once: still pending).
    tokio::select! {
        biased;
        r = conn.send(Message::new(1, vec![0u8; 600])) => panic!("send did not wait: {r:?}"),
        () = std::future::ready(()) => {}
    }
    // `queue` never waits.
    conn.queue(Message::new(1, vec![0u8; 600])).expect("queued");
    assert_eq!(
        conn.session().map(|s| s.pending_bytes()),
        Some(2 * (600 + msgr_pipe::MESSAGE_OVERHEAD))
    );
    stop(&client).await;
    assert!(matches!(
        conn.try_send(Message::new(1, Bytes::new())),
        Err(crate::SendError::Closed)
    ));
}

/// `max_pending_bytes` bounds what tiny messages hold, not only their payload: each counts
/// `MESSAGE_OVERHEAD` besides its bytes, so empty messages fill the budget too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiny_messages_count_their_overhead_against_max_pending_bytes() {
    let mut cfg = local();
    cfg.pipe.max_pending_bytes = 10_000;
    let (cp, _crx) = Probe::new(None, false);
    let client = messenger_with(EntityName::client(-1), cfg, Policy::lossless_client(0), cp).await;
    let conn = to_nobody(&client);
    let mut queued = 0u64;
    while conn.try_send(Message::new(1, Bytes::new())).is_ok() {
        queued += 1;
        assert!(queued < 10_000, "empty messages never filled the budget");
    }
    assert_eq!(queued, 10_000 / msgr_pipe::MESSAGE_OVERHEAD);
    assert_eq!(
        conn.session().map(|s| s.pending_bytes()),
        Some(queued * msgr_pipe::MESSAGE_OVERHEAD)
    );
    stop(&client).await;
}

/// A send whose permit is free is queued by the call itself (the message is not moved into
/// the future); one that must wait for its permit queues nothing until polled, and nothing
/// if dropped unpolled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_with_a_free_permit_is_queued_before_it_is_polled() {
    let mut cfg = local();
    cfg.pipe.max_pending_bytes = 1000;
    let (cp, _crx) = Probe::new(None, false);
    let client = messenger_with(EntityName::client(-1), cfg, Policy::lossless_client(0), cp).await;
    let conn = to_nobody(&client);
    let session = conn.session().expect("a remote session");
    let first = conn.send(Message::new(1, vec![0u8; 600]));
    let one = 600 + msgr_pipe::MESSAGE_OVERHEAD;
    assert_eq!(session.pending_bytes(), one, "queued before any poll");
    assert_eq!(session.stats().queued, 1);
    first.await.expect("queued");
    let waits = conn.send(Message::new(1, vec![0u8; 600]));
    assert_eq!(
        session.pending_bytes(),
        one,
        "a send that waits queues nothing yet"
    );
    drop(waits);
    assert_eq!(session.pending_bytes(), one);
    assert_eq!(session.stats().queued, 1);
    stop(&client).await;
}

/// Sends `body` in a loop that never waits for a permit (to an address nobody answers) and
/// returns how many sends completed before another task on the same thread ran.
async fn sends_before_another_task_runs(body: Bytes) -> u32 {
    let (cp, _crx) = Probe::new(None, false);
    let client = messenger(EntityName::client(-1), Policy::lossless_client(0), cp).await;
    let conn = to_nobody(&client);
    let ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = ran.clone();
    tokio::spawn(async move { flag.store(true, std::sync::atomic::Ordering::SeqCst) });
    let mut seen_at = None;
    for i in 0..2000u32 {
        conn.send(Message::new(1, body.clone()))
            .await
            .expect("queued");
        if ran.load(std::sync::atomic::Ordering::SeqCst) {
            seen_at = Some(i);
            break;
        }
    }
    stop(&client).await;
    seen_at.expect("the other task ran during the send loop")
}

/// A task that sends without ever waiting for a permit still yields to the scheduler once its
/// cooperative budget is spent (tokio's is 128 units per poll; a small message's send spends a
/// quarter of a unit, so 512 sends), so another task on the same thread runs during a long
/// send loop, not only after it (and not four times sooner either, as a whole unit per send
/// would make it).
#[tokio::test]
async fn a_send_loop_that_never_waits_yields_to_other_tasks() {
    let at = sends_before_another_task_runs(Bytes::from_static(b"x")).await;
    assert!(
        (384..=520).contains(&at),
        "yielded after {at} sends, expected about 512"
    );
}

/// A message above the small size (512 payload bytes) spends a whole unit of budget: a loop
/// of 4 KiB sends yields within tokio's 128 units, four times sooner than one of small sends.
#[tokio::test]
async fn a_send_loop_of_large_messages_yields_after_its_budget() {
    let at = sends_before_another_task_runs(Bytes::from(vec![7u8; 4096])).await;
    assert!(
        (96..=130).contains(&at),
        "yielded after {at} sends of 4 KiB, expected about 128"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_limit_admits_one_session_at_a_time() {
    let mut cfg = local();
    cfg.max_connections = 1;
    let (sp, mut srx) = Probe::new(None, true);
    let server = messenger_with(EntityName::osd(0), cfg, Policy::stateless_server(0), sp).await;
    let mut ccfg = local();
    // This test is about the connection limit, not reconnects: the refused clients retry
    // quickly so the test does not wait out default backoffs between admissions.
    ccfg.pipe.initial_backoff = Duration::from_millis(10);
    ccfg.pipe.max_backoff = Duration::from_millis(50);
    let client = |n: i64| {
        let ccfg = ccfg.clone();
        async move {
            let (cp, crx) = Probe::new(None, false);
            let m = messenger_with(EntityName::client(n), ccfg, Policy::lossy_client(0), cp).await;
            (m, crx)
        }
    };
    let (c1, mut rx1) = client(1).await;
    let conn1 = c1
        .connect_lazy(server.addr(), EntityType::OSD)
        .expect("running");
    conn1
        .send(Message::new(3, Bytes::new()))
        .await
        .expect("send");
    next_msg(&mut rx1).await;
    next_msg(&mut srx).await;

    // A second client is turned away while the first session lives...
    let (c2, mut rx2) = client(2).await;
    let conn2 = c2
        .connect_lazy(server.addr(), EntityType::OSD)
        .expect("running");
    conn2
        .send(Message::new(3, Bytes::new()))
        .await
        .expect("send");
    // Polled (the pipe reports no event for a failed first connect), bounded.
    tokio::time::timeout(WAIT, async {
        while conn2.stats().faults < 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("second client's attempts fail");
    assert_eq!(server.stats().connections.len(), 1);
    assert!(rx2.try_recv().is_err());
    // ... and gets in (its initial connect is retried) once the first one is gone.
    stop(&c1).await;
    next_msg(&mut rx2).await;
    stop(&c2).await;
    stop(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mark_down_all_and_rebind_reset_every_session() {
    let (sp, mut srx) = Probe::new(None, true);
    let server = messenger(EntityName::osd(0), Policy::stateless_server(0), sp).await;
    let mut clients = Vec::new();
    for n in 1..=2 {
        let (cp, mut crx) = Probe::new(None, false);
        let c = messenger(EntityName::client(n), Policy::lossy_client(0), cp).await;
        let conn = c
            .connect_lazy(server.addr(), EntityType::OSD)
            .expect("running");
        conn.send(Message::new(3, Bytes::new()))
            .await
            .expect("send");
        next_msg(&mut crx).await;
        clients.push((c, crx));
    }
    let resets = |rx: &mut mpsc::UnboundedReceiver<Seen>| {
        let mut n = 0;
        while let Ok(s) = rx.try_recv() {
            n += usize::from(matches!(s, Seen::Reset(_)));
        }
        n
    };
    // Drain what the server saw so far (accepts and messages).
    for _ in 0..2 {
        next_msg(&mut srx).await;
    }
    assert_eq!(server.stats().connections.len(), 2);
    server.mark_down_all();
    assert!(server.stats().connections.is_empty());
    let mut seen = 0;
    while seen < 2 {
        if let Seen::Reset(_) = next(&mut srx).await {
            seen += 1;
        }
    }

    // New sessions (once each lossy client saw its reset), then a rebind: one reset each.
    for (c, crx) in &mut clients {
        while !matches!(next(crx).await, Seen::Reset(_)) {}
        let conn = c
            .connect_lazy(server.addr(), EntityType::OSD)
            .expect("running");
        conn.send(Message::new(3, Bytes::new()))
            .await
            .expect("send");
        next_msg(crx).await;
    }
    server.rebind(&[]).await.expect("rebind");
    let mut seen = 0;
    while seen < 2 {
        if let Seen::Reset(_) = next(&mut srx).await {
            seen += 1;
        }
    }
    for (c, _) in &clients {
        stop(c).await;
    }
    stop(&server).await;
    assert_eq!(resets(&mut srx), 0, "no more resets");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wildcard_bind_learns_its_address() {
    let any = MessengerConfig {
        bind_addr: "0.0.0.0:0".parse().expect("literal"),
        ..MessengerConfig::default()
    };
    let (sp, mut srx) = Probe::new(None, true);
    let server = messenger_with(
        EntityName::osd(0),
        any.clone(),
        Policy::stateless_server(0),
        sp,
    )
    .await;
    assert!(server.addr().is_blank_ip());
    let (cp, mut crx) = Probe::new(None, false);
    let client = messenger_with(EntityName::client(-1), any, Policy::lossy_client(0), cp).await;
    let mut target = server.addr();
    target.addr.set_ip("127.0.0.1".parse().expect("literal"));
    let conn = client
        .connect_lazy(target, EntityType::OSD)
        .expect("running");
    conn.send(Message::new(3, Bytes::new()))
        .await
        .expect("send");
    next_msg(&mut srx).await;
    next_msg(&mut crx).await;
    // The client learned its IP from what the server saw.
    assert!(!client.addr().is_blank_ip(), "{}", client.addr());
    stop(&client).await;
    stop(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_nonce_is_used_and_a_mon_style_zero_nonce_is_reachable() {
    let (sp, mut srx) = Probe::new(None, true);
    let mut cfg = local();
    cfg.nonce = Some(0);
    let server = messenger_with(EntityName::mon(0), cfg, Policy::stateless_server(0), sp).await;
    assert_eq!(server.addr().nonce, 0);

    let (cp, _crx) = Probe::new(None, false);
    let client = messenger(EntityName::client(-1), Policy::lossy_client(0), cp).await;
    assert_ne!(client.addr().nonce, 0, "random nonce by default");
    // A client dials a mon as Ceph does, with nonce 0 in the address it checks.
    let conn = client
        .connect_lazy(server.addr(), EntityType::MON)
        .expect("connect");
    conn.send(Message::new(2 /* CEPH_MSG_PING */, Bytes::new()))
        .await
        .expect("send");
    next_msg(&mut srx).await;
    stop(&client).await;
    stop(&server).await;
}

/// What a received message weighs on its way in (reader, host, dispatcher): each time it is
/// moved by value it is copied whole, which is why the receive path moves it as few times as
/// it can (PERFORMANCE.md, the recvpath section). A field added to these types shows here.
#[test]
fn a_received_message_and_its_wrappers_stay_within_their_sizes() {
    use std::mem::size_of;
    let message = size_of::<Message>();
    let incoming = size_of::<msgr_pipe::Incoming>();
    let received = size_of::<crate::Received>();
    println!("Message {message} B, Incoming {incoming} B, Received {received} B");
    // 184 bytes on x86-64 (2026-12): the header, three `Bytes`, the footer.
    assert!((176..=192).contains(&message), "Message is {message} bytes");
    // The wrappers add their permits (and the connection), no more: 232 bytes each.
    assert!(incoming <= message + 48, "Incoming is {incoming} bytes");
    assert!(received <= message + 48, "Received is {received} bytes");
}

/// A fast-dispatched message holds its dispatch-throttle bytes while its dispatcher runs, and
/// they are back before the reader takes the next message's (the reader's borrowed permit):
/// each dispatch sees exactly its own message's bytes taken, never the sum of those before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fast_dispatch_holds_exactly_its_own_dispatch_bytes() {
    use std::sync::OnceLock;

    use msgr_dispatch::Throttle;

    struct Fast {
        throttle: OnceLock<Throttle>,
        tx: mpsc::UnboundedSender<(u64, u64)>,
    }
    impl Dispatcher for Fast {
        fn dispatch(&self, m: Received) -> BoxFuture<'_, Dispatched> {
            Box::pin(async move { Dispatched::Pass(m) })
        }
        fn can_fast_dispatch(&self, _m: &Received) -> bool {
            true
        }
        fn fast_dispatch(&self, m: Received) {
            let held = self.throttle.get().map_or(u64::MAX, Throttle::current);
            let _ = self.tx.send((m.msg.data.len() as u64, held));
        }
    }
    let (tx, mut rx) = mpsc::unbounded_channel();
    let fast = Arc::new(Fast {
        throttle: OnceLock::new(),
        tx,
    });
    let server = Messenger::builder(EntityName::osd(0))
        .config(local())
        .default_policy(Policy::stateful_server(0))
        .dispatcher(fast.clone())
        .start()
        .await
        .expect("start");
    let throttle = server.inner_host().dispatch_throttle.clone();
    assert!(fast.throttle.set(throttle).is_ok());
    let client = Messenger::builder(EntityName::client(-1))
        .config(local())
        .default_policy(Policy::lossless_client(0))
        .start()
        .await
        .expect("start");
    let conn = client
        .connect(server.addr(), EntityType::OSD)
        .await
        .expect("connect");
    let sizes: Vec<u64> = (1..=8).map(|i| i * 100).collect();
    for &n in &sizes {
        let data = vec![7u8; n as usize];
        conn.send(Message::new(0x7001, "").with_data(data))
            .await
            .expect("send");
    }
    for &n in &sizes {
        let (len, held) = tokio::time::timeout(WAIT, rx.recv())
            .await
            .expect("in time")
            .expect("open");
        assert_eq!((len, held), (n, n), "only this message's bytes are held");
    }
    stop(&client).await;
    stop(&server).await;
    // Counted once each fast dispatch returned: read after the server stopped.
    let counters = server.dispatch_counters();
    assert_eq!(counters.fast_dispatched_messages, sizes.len() as u64);
    assert_eq!(counters.fast_dispatched_bytes, sizes.iter().sum::<u64>());
    assert_eq!(server.inner_host().dispatch_throttle.current(), 0);
}

/// A reader whose messages are fast-dispatched copies small payloads out of its receive
/// buffer (each received segment then owns its bytes); one whose messages go to the
/// dispatch queue shares the buffer, as every large payload does, and so does one whose
/// fast dispatches reply (`msgr_wire::SMALL_PAYLOAD`: a copy is cheaper only when the
/// message is freed on the reader's thread, and a reply may hold it). The reader follows the
/// last read's deliveries, read by read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_payloads_are_copied_while_messages_are_fast_dispatched() {
    const FAST: u16 = 0x7001;
    const QUEUED: u16 = 0x7002;
    const ECHOED: u16 = 0x7003;
    struct Split(mpsc::UnboundedSender<(u16, usize, bool)>);
    impl Split {
        fn seen(&self, m: &Received) {
            let d = &m.msg.data;
            let _ = self.0.send((m.msg.header.ty, d.len(), d.is_unique()));
            if m.msg.header.ty == ECHOED {
                let _ = m
                    .conn
                    .queue(Message::new(FAST, "").with_data(m.msg.data.clone()));
            }
        }
    }
    impl Dispatcher for Split {
        fn dispatch(&self, m: Received) -> BoxFuture<'_, Dispatched> {
            self.seen(&m);
            Box::pin(async { Dispatched::Handled })
        }
        fn can_fast_dispatch(&self, m: &Received) -> bool {
            m.msg.header.ty != QUEUED
        }
        fn fast_dispatch(&self, m: Received) {
            self.seen(&m);
        }
    }
    let (tx, mut rx) = mpsc::unbounded_channel();
    let server = messenger(
        EntityName::osd(0),
        Policy::stateful_server(0),
        Arc::new(Split(tx)),
    )
    .await;
    let client = messenger(
        EntityName::client(-1),
        Policy::lossless_client(0),
        Arc::new(Split(mpsc::unbounded_channel().0)),
    )
    .await;
    let conn = client
        .connect(server.addr(), EntityType::OSD)
        .await
        .expect("connect");
    let big = msgr_wire::SMALL_PAYLOAD + 1;
    // (type, data bytes, owned): each message sent once the one before was dispatched, so
    // each is a read of its own.
    let steps = [
        (FAST, 64, false), // the first read shares: nothing was fast-dispatched yet
        (FAST, 64, true),
        (QUEUED, 64, true), // copied: the message before was fast-dispatched
        (QUEUED, 64, false),
        (FAST, big, false),
        (FAST, big, false), // large: shared in any case
        (FAST, 64, true),
        (ECHOED, 64, true),
        (FAST, 64, false), // the read before queued a reply
        (FAST, 64, true),
    ];
    for (ty, len, owned) in steps {
        conn.send(Message::new(ty, "").with_data(vec![9u8; len]))
            .await
            .expect("send");
        let seen = tokio::time::timeout(WAIT, rx.recv())
            .await
            .expect("in time")
            .expect("open");
        assert_eq!(seen, (ty, len, owned), "type {ty:#x}, {len} bytes");
    }
    stop(&client).await;
    stop(&server).await;
}

/// Messages queued for the dispatch task (not fast-dispatched) reach it in their order, a
/// read's worth handed over together, with a dispatch throttle that admits only four of
/// them at once: the reader hands over what it gathered before it waits for the throttle,
/// so no message waits behind permits that only its own dispatch would give back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_messages_keep_their_order_under_a_tight_dispatch_throttle() {
    const N: u32 = 300;
    const SIZE: usize = 1000;
    /// Records each message's number (its front), in dispatch order.
    struct Queued(mpsc::UnboundedSender<u32>);
    impl Dispatcher for Queued {
        fn dispatch(&self, m: Received) -> BoxFuture<'_, Dispatched> {
            Box::pin(async move {
                let mut n = [0u8; 4];
                n.copy_from_slice(m.msg.front.get(..4).unwrap_or(&[0xff; 4]));
                let _ = self.0.send(u32::from_le_bytes(n));
                Dispatched::Handled
            })
        }
    }
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut cfg = local();
    // The test is about the throttle's waits: four messages' bytes, where the default is
    // 100 MiB.
    cfg.dispatch_throttle_bytes = 4 * (SIZE as u64 + 4);
    let server = messenger_with(
        EntityName::osd(0),
        cfg,
        Policy::stateful_server(0),
        Arc::new(Queued(tx)),
    )
    .await;
    let client = messenger(
        EntityName::client(-1),
        Policy::lossless_client(0),
        Arc::new(Queued(mpsc::unbounded_channel().0)),
    )
    .await;
    let conn = client
        .connect(server.addr(), EntityType::OSD)
        .await
        .expect("connect");
    for i in 0..N {
        let m = Message::new(0x7001, i.to_le_bytes().to_vec()).with_data(vec![0u8; SIZE]);
        conn.queue(m).expect("queued");
    }
    let mut got = Vec::with_capacity(N as usize);
    while got.len() < N as usize {
        let n = tokio::time::timeout(WAIT, rx.recv())
            .await
            .expect("the next message within WAIT (a reader stuck on its own permits?)")
            .expect("open");
        got.push(n);
    }
    assert_eq!(got, (0..N).collect::<Vec<_>>());
    stop(&client).await;
    stop(&server).await;
    let c = server.dispatch_counters();
    assert_eq!(
        (c.queued_messages, c.dispatched_messages),
        (N as u64, N as u64)
    );
    assert_eq!(server.inner_host().dispatch_throttle.current(), 0);
}

/// Fast-dispatches every message: counts it, answers it with its own data when `echo`, and
/// says when the `want`th arrived.
struct FastCounter {
    n: std::sync::atomic::AtomicU64,
    echo: bool,
    want: u64,
    done: tokio::sync::Notify,
}

impl FastCounter {
    fn new(echo: bool, want: u64) -> Arc<Self> {
        Arc::new(FastCounter {
            n: std::sync::atomic::AtomicU64::new(0),
            echo,
            want,
            done: tokio::sync::Notify::new(),
        })
    }
}

impl Dispatcher for FastCounter {
    fn dispatch(&self, _m: Received) -> BoxFuture<'_, Dispatched> {
        Box::pin(async { Dispatched::Handled })
    }
    fn can_fast_dispatch(&self, _m: &Received) -> bool {
        true
    }
    fn fast_dispatch(&self, m: Received) {
        let n = self.n.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        if self.echo {
            let Received { msg, conn, .. } = m;
            let _ = conn.queue(Message::new(msg.header.ty, Bytes::new()).with_data(msg.data));
        }
        if n == self.want {
            self.done.notify_one();
        }
    }
}

/// A session's reader answering a flood of requests lets the other tasks of its thread run
/// every budget's worth of messages (about 128), not every 128 reads: on one thread, a task
/// that yields in a loop sees the server deliver 248 messages between two of its turns (two
/// of the reader's turns), where before the reader spent budget per message it saw 1,032 (as
/// much as the socket held: a read holds 32 of these 4 KiB requests, and the reader went on
/// for up to 64 reads).
#[tokio::test(flavor = "current_thread")]
async fn a_reader_answering_a_flood_lets_other_tasks_run() {
    use std::sync::atomic::{AtomicBool, Ordering};
    const N: u64 = 4_000;
    let echo = FastCounter::new(true, N);
    let server = messenger(EntityName::osd(0), Policy::stateful_server(0), echo.clone()).await;
    let replies = FastCounter::new(false, N);
    let client = messenger(
        EntityName::client(-1),
        Policy::lossless_client(0),
        replies.clone(),
    )
    .await;
    let conn = client
        .connect(server.addr(), EntityType::OSD)
        .await
        .expect("connect");
    // The other task of the thread: notes how many messages the server delivered between
    // two of its turns.
    let stop_probe = Arc::new(AtomicBool::new(false));
    let probe = tokio::spawn({
        let (echo, stop_probe) = (echo.clone(), stop_probe.clone());
        async move {
            let (mut last, mut widest) = (0, 0);
            while !stop_probe.load(Ordering::SeqCst) {
                let now = echo.n.load(Ordering::SeqCst);
                widest = widest.max(now - last);
                last = now;
                tokio::task::yield_now().await;
            }
            widest
        }
    });
    let data = Bytes::from(vec![0x5a; 4096]);
    for _ in 0..N {
        conn.queue(Message::new(9, Bytes::new()).with_data(data.clone()))
            .expect("queued");
    }
    tokio::time::timeout(WAIT, replies.done.notified())
        .await
        .expect("every reply");
    stop_probe.store(true, Ordering::SeqCst);
    let widest = probe.await.expect("probe");
    assert_eq!(echo.n.load(Ordering::SeqCst), N);
    assert!(
        widest <= 512,
        "{widest} messages delivered between two turns of another task"
    );
    stop(&client).await;
    stop(&server).await;
}
