//! Tests of the client messenger without a listener (`MessengerBuilder::no_listener`), over
//! real loopback sockets: its blank address and the IP it learns, a lossless session that
//! resumes after socket faults (reconnected from the client's side only, as Ceph's clients
//! are), many such clients on one server told apart by their nonces, msgr2, and no rebind.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use msgr_wire::{EntityAddr, EntityName, EntityType, Message};
use tokio::sync::Notify;

use crate::testing::stop;
use crate::{
    BoxFuture, CoreError, Dispatched, Dispatcher, InjectConfig, Messenger, MessengerConfig, Policy,
    Received,
};

const WAIT: Duration = Duration::from_secs(10);
const PING: u16 = 0x7101;

/// Counts messages per sender and event kinds; answers every message when `echo`.
#[derive(Default)]
struct Counter {
    echo: bool,
    /// Per peer address: the front of every message received, in order.
    fronts: Mutex<HashMap<EntityAddr, Vec<Bytes>>>,
    remote_resets: Mutex<usize>,
    changed: Notify,
}

impl Counter {
    fn new(echo: bool) -> Arc<Self> {
        Arc::new(Counter {
            echo,
            ..Counter::default()
        })
    }

    fn received(&self) -> usize {
        self.fronts
            .lock()
            .expect("lock")
            .values()
            .map(Vec::len)
            .sum()
    }

    /// Waits until `cond` holds over the fronts; false after [`WAIT`].
    async fn wait_until(&self, cond: impl Fn(&HashMap<EntityAddr, Vec<Bytes>>) -> bool) -> bool {
        tokio::time::timeout(WAIT, async {
            loop {
                let changed = self.changed.notified();
                if cond(&self.fronts.lock().expect("lock")) {
                    return;
                }
                changed.await;
            }
        })
        .await
        .is_ok()
    }
}

impl Dispatcher for Counter {
    fn dispatch(&self, m: Received) -> BoxFuture<'_, Dispatched> {
        Box::pin(async move {
            if self.echo {
                let reply = Message::new(m.msg.header.ty, m.msg.front.clone());
                let _ = m.conn.send(reply).await;
            }
            self.fronts
                .lock()
                .expect("lock")
                .entry(m.conn.peer_addr())
                .or_default()
                .push(m.msg.front.clone());
            self.changed.notify_waiters();
            Dispatched::Handled
        })
    }

    fn handle_remote_reset(&self, _c: &crate::Connection) {
        *self.remote_resets.lock().expect("lock") += 1;
    }
}

/// A server (`osd.0`, `stateful_server` for clients) on 127.0.0.1 that echoes.
async fn server(v2: bool) -> (Messenger, Arc<Counter>) {
    let counter = Counter::new(true);
    let m = Messenger::builder(EntityName::osd(0))
        .config(MessengerConfig {
            bind_addr: "127.0.0.1:0".parse().expect("literal"),
            bind_msgr2: v2,
            ..MessengerConfig::default()
        })
        .policy(EntityType::CLIENT, Policy::stateful_server(0))
        .dispatcher(counter.clone())
        .start()
        .await
        .expect("server starts");
    (m, counter)
}

/// A `lossless_client` messenger without a listener.
async fn client(config: MessengerConfig) -> (Messenger, Arc<Counter>) {
    let counter = Counter::new(false);
    let m = Messenger::builder(EntityName::client(-1))
        .config(config)
        .default_policy(Policy::lossless_client(0))
        .no_listener()
        .dispatcher(counter.clone())
        .start()
        .await
        .expect("client starts");
    (m, counter)
}

fn ping(i: usize) -> Message {
    Message::new(PING, Bytes::from(format!("ping {i}")))
}

/// The client announces `0.0.0.0:0/nonce`, connects, learns its IP from the server (the port
/// stays 0), and the server keys the session by that address; there is nothing to rebind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_without_listener_connects_and_learns_its_ip() {
    for v2 in [false, true] {
        let (srv, srv_seen) = server(v2).await;
        let (cli, cli_seen) = client(MessengerConfig {
            nonce: Some(4242),
            ..MessengerConfig::default()
        })
        .await;
        assert!(!cli.listens() && srv.listens());
        let before = cli.addr();
        assert!(before.is_blank_ip(), "{before}");
        assert_eq!((before.addr.port(), before.nonce), (0, 4242));
        assert!(!before.is_v2(), "no bind_msgr2: a legacy address");

        let conn = cli
            .connect(srv.addr(), EntityType::OSD)
            .await
            .expect("the session opens");
        conn.send(ping(0)).await.expect("queued");
        assert!(
            cli_seen
                .wait_until(|f| f.values().map(Vec::len).sum::<usize>() == 1)
                .await,
            "v2 {v2}: no echo"
        );
        let learned = cli.addr();
        assert_eq!(
            learned.addr,
            "127.0.0.1:0".parse().expect("literal"),
            "v2 {v2}"
        );
        assert_eq!(learned.nonce, 4242);
        // The server knows the client by the IP it saw and the nonce, with port 0, over
        // both protocols (msgr2's CLIENT_IDENT says `any:IP:0/nonce`, as Ceph's client's).
        let at_server: Vec<EntityAddr> = srv_seen
            .fronts
            .lock()
            .expect("lock")
            .keys()
            .copied()
            .collect();
        assert_eq!(at_server.len(), 1, "v2 {v2}");
        assert_eq!(at_server[0].addr.ip(), learned.addr.ip(), "v2 {v2}");
        assert_eq!(at_server[0].nonce, 4242, "v2 {v2}");
        assert_eq!(at_server[0].addr.port(), 0, "v2 {v2}");
        assert!(
            srv.connection(&at_server[0]).is_some(),
            "v2 {v2}: registered under the client's address"
        );
        assert!(matches!(cli.rebind(&[]).await, Err(CoreError::NoListener)));
        stop(&cli).await;
        stop(&srv).await;
    }
}

/// Socket faults injected on the client's side break the socket again and again; the
/// lossless client reconnects each time (nobody can connect to it) and resumes its session:
/// every ping arrives once, in order, and no side sees a reset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lossless_session_without_listener_resumes_after_socket_faults() {
    const N: usize = 200;
    let (srv, srv_seen) = server(false).await;
    let mut config = MessengerConfig::default();
    config.pipe.inject = InjectConfig {
        socket_failures: 40,
        seed: 17,
        ..InjectConfig::default()
    };
    let (cli, cli_seen) = client(config).await;
    let conn = cli
        .connect_lazy(srv.addr(), EntityType::OSD)
        .expect("running");
    // One round trip at a time: each moves several socket operations on both sides, so the
    // injected failures land on open sessions, in handshakes and between them.
    for i in 0..N {
        conn.send(ping(i)).await.expect("queued");
        assert!(
            cli_seen
                .wait_until(|f| f.values().map(Vec::len).sum::<usize>() > i)
                .await,
            "no echo of ping {i}"
        );
    }
    assert!(
        srv_seen
            .wait_until(|f| f.values().map(Vec::len).sum::<usize>() >= N)
            .await,
        "server got {} of {N}",
        srv_seen.received()
    );
    assert!(
        cli_seen
            .wait_until(|f| f.values().map(Vec::len).sum::<usize>() >= N)
            .await,
        "client got {} echoes of {N}",
        cli_seen.received()
    );
    let fronts = srv_seen.fronts.lock().expect("lock").clone();
    assert_eq!(fronts.len(), 1, "one session, one peer address");
    let got = fronts.values().next().expect("one peer");
    let want: Vec<Bytes> = (0..N).map(|i| ping(i).front).collect();
    assert_eq!(got, &want, "each ping once, in order");
    let stats = conn.stats();
    assert!(stats.faults > 0, "no fault was injected: {stats:?}");
    assert!(stats.reconnects > 0, "no reconnect: {stats:?}");
    assert_eq!(*srv_seen.remote_resets.lock().expect("lock"), 0);
    assert_eq!(*cli_seen.remote_resets.lock().expect("lock"), 0);
    stop(&cli).await;
    stop(&srv).await;
}

/// Many clients without a listener on one IP, with the random nonces of the default
/// configuration: one session each on the server, each client's pings on its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_clients_without_listener_get_a_session_each() {
    const CLIENTS: usize = 40;
    let (srv, srv_seen) = server(false).await;
    let mut clients = Vec::new();
    for i in 0..CLIENTS {
        let (cli, _) = client(MessengerConfig::default()).await;
        cli.send_to(srv.addr(), EntityType::OSD, ping(i))
            .await
            .expect("queued");
        clients.push(cli);
    }
    assert!(
        srv_seen.wait_until(|f| f.len() == CLIENTS).await,
        "{} peers of {CLIENTS}",
        srv_seen.fronts.lock().expect("lock").len()
    );
    let fronts = srv_seen.fronts.lock().expect("lock").clone();
    for (addr, got) in &fronts {
        assert_eq!(addr.addr.port(), 0, "{addr}");
        assert_eq!(got.len(), 1, "{addr}: {got:?}");
    }
    assert_eq!(srv.stats().connections.len(), CLIENTS);
    for cli in &clients {
        stop(cli).await;
    }
    stop(&srv).await;
}
