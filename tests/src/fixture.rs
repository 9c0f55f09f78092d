//! The functional tests' fixture, after Ceph's `MessengerTest` and `FakeDispatcher`.
//!
//! * [`Recorder`] — the tests' dispatcher. It counts messages per connection "session" (the
//!   counter of a connection is dropped on reset and remote reset, so the next message counts
//!   1 again, exactly as `FakeDispatcher` detaches its `Session`), records every connection
//!   event, and in server mode answers every message with a copy of it on the same
//!   connection. [`Recorder::echo`] answers without ever waiting on a peer and keeps every
//!   message (the server under attack by hostile peers); [`Recorder::inbox`] keeps every
//!   message and connection (the interop tests). Tests wait on it through
//!   [`Recorder::wait_until`]: a `Notify` woken on every change, bounded by [`WAIT`].
//! * [`Fixture`] — a server messenger (`osd.0`) and a client messenger (`client.-1`) on
//!   127.0.0.1, kernel-chosen ports, default policies `stateless_server` / `lossy_client`,
//!   reconnect backoff capped at 1 s (as Ceph's test `main`).
//! * [`log_from_env`] — the tests' tracing set-up: logs when `RUST_LOG` is set.
//! * [`stop`] — shutdown and wait (bounded), then assert what Ceph's teardown asserts and
//!   more: the dispatch queue is empty, every throttle reads 0, no task is left.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use msgr_core::{
    BoxFuture, ConnId, Connection, Dispatched, Dispatcher, Messenger, MessengerConfig, Policy,
    Received,
};
use msgr_wire::{EntityName, EntityType, Message};
use tokio::sync::Notify;

/// `CEPH_MSG_PING`.
pub const MSG_PING: u16 = 2;

/// Upper bound of every wait on an event (Ceph's `CHECK_AND_WAIT_TRUE` waits about 1 s; this
/// is generous so that loaded CI machines do not fail, and never spent when things work).
pub const WAIT: Duration = Duration::from_secs(10);

/// Logs to the test's output when `RUST_LOG` is set (`RUST_LOG=msgr_pipe=debug cargo test
/// ...`), filtered by it; does nothing otherwise, and nothing the second time in a process.
pub fn log_from_env() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}

/// A ping with an empty front.
pub fn ping() -> Message {
    Message::new(MSG_PING, Bytes::new())
}

/// A connection event as recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ev {
    /// `handle_connect`.
    Connect,
    /// `handle_accept`.
    Accept,
    /// `handle_reset`.
    Reset,
    /// `handle_remote_reset`.
    RemoteReset,
    /// `handle_refused`.
    Refused,
}

/// What a [`Recorder`] saw.
#[derive(Debug, Default)]
pub struct Seen {
    /// Messages counted per connection since its last reset ("session" counters).
    pub sessions: HashMap<ConnId, u64>,
    /// Messages received in total.
    pub messages: u64,
    /// Every event, in order, with the connection id.
    pub events: Vec<(ConnId, Ev)>,
    /// The last message received.
    pub last: Option<Message>,
    /// Every message with its connection, in order (only when the recorder keeps them).
    pub msgs: Vec<(ConnId, Message)>,
    /// Every connection seen (message or event), by id (only when the recorder keeps them).
    pub conns: HashMap<ConnId, Connection>,
}

impl Seen {
    /// How many events of this kind arrived.
    pub fn count(&self, ev: Ev) -> usize {
        self.events.iter().filter(|(_, e)| *e == ev).count()
    }

    /// Whether `conn` had event `ev`.
    pub fn has(&self, conn: ConnId, ev: Ev) -> bool {
        self.events.contains(&(conn, ev))
    }

    /// The `nth` (from 0) kept message of type `ty` on `conn`.
    pub fn msg(&self, conn: ConnId, ty: u16, nth: usize) -> Option<Message> {
        self.msgs
            .iter()
            .filter(|(c, m)| *c == conn && m.header.ty == ty)
            .nth(nth)
            .map(|(_, m)| m.clone())
    }

    /// The events of one connection, in order.
    pub fn events_of(&self, conn: ConnId) -> Vec<Ev> {
        self.events
            .iter()
            .filter(|(c, _)| *c == conn)
            .map(|(_, e)| *e)
            .collect()
    }
}

/// The recording dispatcher; see the module docs.
pub struct Recorder {
    server: bool,
    fast: bool,
    /// Keep every message and connection in [`Seen`].
    keep: bool,
    /// Answer with `try_send` (a reply to a peer that does not read is dropped, never waited
    /// for, so that one bad peer cannot stall the dispatch task).
    never_wait: bool,
    own_type: EntityType,
    loopback: AtomicBool,
    seen: Mutex<Seen>,
    changed: Notify,
}

impl Recorder {
    /// A recorder; `server` answers every message. Messages go through the dispatch queue.
    pub fn new(server: bool, own_type: EntityType) -> Arc<Self> {
        Self::with_fast(server, own_type, false)
    }

    /// As [`Recorder::new`], fast-dispatching pings when `fast`.
    pub fn with_fast(server: bool, own_type: EntityType, fast: bool) -> Arc<Self> {
        Self::with_modes(server, own_type, fast, false, false)
    }

    /// A server that answers every message without ever waiting on its peer (`try_send`: a
    /// full or closed connection loses the reply) and keeps every message.
    pub fn echo(own_type: EntityType) -> Arc<Self> {
        Self::with_modes(true, own_type, false, true, true)
    }

    /// A recorder that answers nothing and keeps every message and connection.
    pub fn inbox(own_type: EntityType) -> Arc<Self> {
        Self::with_modes(false, own_type, false, true, false)
    }

    fn with_modes(
        server: bool,
        own_type: EntityType,
        fast: bool,
        keep: bool,
        never_wait: bool,
    ) -> Arc<Self> {
        Arc::new(Recorder {
            server,
            fast,
            keep,
            never_wait,
            own_type,
            loopback: AtomicBool::new(false),
            seen: Mutex::new(Seen::default()),
            changed: Notify::new(),
        })
    }

    /// In loopback mode messages are not answered, and must come from our own entity type.
    pub fn set_loopback(&self, on: bool) {
        self.loopback.store(on, Ordering::SeqCst);
    }

    /// What was seen so far.
    pub fn seen(&self) -> MutexGuard<'_, Seen> {
        self.seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The session counter of a connection (0 if none).
    pub fn count(&self, conn: &Connection) -> u64 {
        self.seen().sessions.get(&conn.id()).copied().unwrap_or(0)
    }

    /// Messages received in total.
    pub fn messages(&self) -> u64 {
        self.seen().messages
    }

    /// A future that completes at the next change (message or event). Enable it (or poll
    /// it once) before checking the state, so no change is missed.
    pub fn changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.changed.notified()
    }

    /// Waits until `cond` holds, at most [`WAIT`]; returns whether it held.
    pub async fn wait_until(&self, cond: impl Fn(&Seen) -> bool) -> bool {
        self.wait_until_for(WAIT, cond).await
    }

    /// Waits until `cond` holds, at most `limit`; returns whether it held.
    pub async fn wait_until_for(&self, limit: Duration, cond: impl Fn(&Seen) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if cond(&self.seen()) {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return cond(&self.seen());
            }
        }
    }

    /// Waits (at most [`WAIT`]) until `found` returns something; the error names `what` and
    /// lists the messages (connection, type, seq) and events seen.
    pub async fn wait_for<T>(
        &self,
        what: &str,
        found: impl Fn(&Seen) -> Option<T>,
    ) -> anyhow::Result<T> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(t) = found(&self.seen()) {
                return Ok(t);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                let seen = self.seen();
                let msgs: Vec<(ConnId, u16, u64)> = seen
                    .msgs
                    .iter()
                    .map(|(c, m)| (*c, m.header.ty, m.header.seq))
                    .collect();
                anyhow::bail!(
                    "no {what} within {WAIT:?}; messages (conn, type, seq) {msgs:?}, events {:?}",
                    seen.events
                );
            }
        }
    }

    /// The `nth` (from 0) kept message of type `ty` on `conn`, waited for.
    pub async fn message(&self, conn: ConnId, ty: u16, nth: usize) -> anyhow::Result<Message> {
        self.wait_for(&format!("message of type {ty} on connection {conn}"), |s| {
            s.msg(conn, ty, nth)
        })
        .await
    }

    /// Waits for event `ev` on `conn`.
    pub async fn event(&self, conn: ConnId, ev: Ev) -> anyhow::Result<()> {
        self.wait_for(&format!("{ev:?} on connection {conn}"), |s| {
            s.has(conn, ev).then_some(())
        })
        .await
    }

    fn record(&self, m: &Received) {
        if self.loopback.load(Ordering::SeqCst) {
            assert_eq!(
                m.msg.header.src.ty, self.own_type,
                "loopback message from a peer"
            );
        }
        let mut seen = self.seen();
        *seen.sessions.entry(m.conn.id()).or_insert(0) += 1;
        seen.messages += 1;
        seen.last = Some(m.msg.clone());
        if self.keep {
            seen.msgs.push((m.conn.id(), m.msg.clone()));
            seen.conns.insert(m.conn.id(), m.conn.clone());
        }
        drop(seen);
        self.changed.notify_waiters();
    }

    fn reply(&self, m: &Received) -> Option<Message> {
        if !self.server || self.loopback.load(Ordering::SeqCst) {
            return None;
        }
        let mut reply = Message::new(m.msg.header.ty, m.msg.front.clone())
            .with_middle(m.msg.middle.clone())
            .with_data(m.msg.data.clone());
        reply.header.tid = m.msg.header.tid;
        Some(reply)
    }

    fn push_event(&self, conn: &Connection, ev: Ev) {
        let mut seen = self.seen();
        match ev {
            Ev::Connect | Ev::Accept => {
                seen.sessions.entry(conn.id()).or_insert(0);
            }
            Ev::Reset | Ev::RemoteReset => {
                seen.sessions.remove(&conn.id());
            }
            Ev::Refused => {}
        }
        seen.events.push((conn.id(), ev));
        if self.keep {
            seen.conns.insert(conn.id(), conn.clone());
        }
        drop(seen);
        self.changed.notify_waiters();
    }
}

impl Dispatcher for Recorder {
    fn dispatch(&self, m: Received) -> BoxFuture<'_, Dispatched> {
        Box::pin(async move {
            self.record(&m);
            if let Some(reply) = self.reply(&m) {
                if self.never_wait {
                    let _ = m.conn.try_send(reply);
                } else {
                    // A closed connection just drops the reply, as Ceph does.
                    let _ = m.conn.send(reply).await;
                }
            }
            Dispatched::Handled
        })
    }

    fn can_fast_dispatch(&self, m: &Received) -> bool {
        self.fast && m.msg.header.ty == MSG_PING
    }

    fn fast_dispatch(&self, m: Received) {
        self.record(&m);
        if let Some(reply) = self.reply(&m) {
            let _ = m.conn.queue(reply);
        }
    }

    fn handle_connect(&self, conn: &Connection) {
        self.push_event(conn, Ev::Connect);
    }

    fn handle_accept(&self, conn: &Connection) {
        self.push_event(conn, Ev::Accept);
    }

    fn handle_reset(&self, conn: &Connection) {
        self.push_event(conn, Ev::Reset);
    }

    fn handle_remote_reset(&self, conn: &Connection) {
        self.push_event(conn, Ev::RemoteReset);
    }

    fn handle_refused(&self, conn: &Connection) {
        self.push_event(conn, Ev::Refused);
    }
}

/// The settings every fixture messenger starts from: 127.0.0.1, kernel-chosen port, and
/// otherwise the defaults users run (reconnect backoffs included).
pub fn test_config() -> MessengerConfig {
    MessengerConfig {
        bind_addr: "127.0.0.1:0".parse().expect("literal address"),
        ..MessengerConfig::default()
    }
}

/// Starts a messenger with one recorder as its dispatcher.
pub async fn start(
    name: EntityName,
    config: MessengerConfig,
    default_policy: Policy,
    policies: Vec<(EntityType, Policy)>,
    rec: Arc<Recorder>,
) -> Messenger {
    let mut b = Messenger::builder(name)
        .config(config)
        .default_policy(default_policy)
        .dispatcher(rec);
    for (ty, p) in policies {
        b = b.policy(ty, p);
    }
    b.start().await.expect("messenger starts")
}

/// A server messenger (`osd.0`) and a client messenger (`client.-1`).
pub struct Fixture {
    /// The server.
    pub server: Messenger,
    /// The client.
    pub client: Messenger,
    /// The server's recorder (answers every message).
    pub srv: Arc<Recorder>,
    /// The client's recorder.
    pub cli: Arc<Recorder>,
}

impl Fixture {
    /// Default policies (`stateless_server` / `lossy_client`), with `server_policy` for
    /// client peers and `client_policy` for OSD peers when given.
    pub async fn new(server_policy: Option<Policy>, client_policy: Option<Policy>) -> Fixture {
        Self::with_configs(server_policy, client_policy, test_config(), test_config()).await
    }

    /// As [`Fixture::new`] with explicit configurations.
    pub async fn with_configs(
        server_policy: Option<Policy>,
        client_policy: Option<Policy>,
        server_cfg: MessengerConfig,
        client_cfg: MessengerConfig,
    ) -> Fixture {
        let srv = Recorder::new(true, EntityType::OSD);
        let cli = Recorder::new(false, EntityType::CLIENT);
        let sp: Vec<_> = server_policy
            .map(|p| (EntityType::CLIENT, p))
            .into_iter()
            .collect();
        let cp: Vec<_> = client_policy
            .map(|p| (EntityType::OSD, p))
            .into_iter()
            .collect();
        let server = start(
            EntityName::osd(0),
            server_cfg,
            Policy::stateless_server(0),
            sp,
            srv.clone(),
        )
        .await;
        let client = start(
            EntityName::client(-1),
            client_cfg,
            Policy::lossy_client(0),
            cp,
            cli.clone(),
        )
        .await;
        Fixture {
            server,
            client,
            srv,
            cli,
        }
    }

    /// A client connection to the server.
    pub fn connect(&self) -> Connection {
        self.client
            .connect_lazy(self.server.addr(), EntityType::OSD)
            .expect("client is running")
    }

    /// Sends a ping on `conn` and waits for the server's answer; panics after [`WAIT`].
    pub async fn round_trip(&self, conn: &Connection) {
        round_trip(&self.cli, conn).await;
    }

    /// Stops both messengers and checks they are quiescent.
    pub async fn teardown(self) {
        stop(&self.client).await;
        stop(&self.server).await;
    }
}

/// Sends a ping on `conn` and waits until `rec` counted one more message.
pub async fn round_trip(rec: &Recorder, conn: &Connection) {
    let before = rec.messages();
    conn.send(ping()).await.expect("ping queued");
    assert!(
        rec.wait_until(|s| s.messages > before).await,
        "no answer to a ping on {conn:?} within {WAIT:?}"
    );
}

/// Shuts `m` down, waits (bounded), and asserts quiescence: empty dispatch queue, every
/// throttle at 0, no task left, no connection registered (msgr-core's checked stop).
pub use msgr_core::testing::stop;
