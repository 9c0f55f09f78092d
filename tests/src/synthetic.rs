//! Ceph's synthetic workload (spec `ceph-test-suite.md` §1.2, §2), held to a stricter rule.
//!
//! Several server messengers (`osd.N`) and client messengers (`client.N`) on 127.0.0.1 run a
//! seeded random sequence of operations: connect a random client to a random server, send a
//! ping carrying a pool buffer (32 B to 4 MiB, pattern-filled, its index stamped every 4 KiB),
//! mark a connection down, or pause. Servers echo every ping as a pong on the connection it came
//! on; the client checks the pong byte for byte and, on lossless sessions, that pongs of one
//! connection come back in the order the pings were sent, with no gap and no duplicate.
//!
//! Stricter than Ceph: a tracked message is forgiven only when the workload itself marks its
//! connection down, or when the *client side* of that connection reports a reset or a remote
//! reset that its policy allows (`Reset` only for lossy policies, `RemoteReset` only with
//! `resetcheck`). Connect and accept events forgive nothing. Duplicates are caught by the
//! bookkeeping itself (a ping seen twice by the servers, a pong seen twice by the clients), not
//! left to the messenger. Lossy sessions are not tracked for loss, but still for order (per
//! session, increasing), duplicates, bytes, and "exactly one reset per lossy session that
//! ended by a fault".
//!
//! After every run: all tracked messages are answered (bounded drain), every dispatch queue
//! empties and every throttle reads 0 before shutdown, each messenger's `wait` returns with no
//! task and no connection left, and the counts of reset events are checked against the policy.
//!
//! The same workload runs on msgr2 with [`WorkloadConfig::msgr2`]: every messenger listens
//! on a `v2:` address, so every session is a msgr2 one, held to the same checks.
//!
//! Everything random comes from one seed (printed as `seed=N`; replay with `MSGR_SEED=N`),
//! including the fault-injection seeds of every messenger. Task scheduling is not seeded, so a
//! replay follows the same operations but not necessarily the same interleaving.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use msgr_core::testing::stop_checked;
use msgr_core::{
    BoxFuture, ConnId, Connection, Dispatched, Dispatcher, InjectConfig, Messenger,
    MessengerConfig, Policy, Received,
};
use msgr_dispatch::Throttle;
use msgr_wire::{EntityName, EntityType, Message};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::Notify;
use tokio::time::Instant;

/// `CEPH_MSG_PING`: the tracked messages.
pub const MSG_PING: u16 = 2;
/// `CEPH_MSG_COMMAND`: the untracked high-priority messages that disorganise the queues.
pub const MSG_COMMAND: u16 = 50;
/// Priority of the untracked commands (above `PRIO_HIGH`).
pub const PRIO_DISORGANISE: u16 = 200;
/// Distance between index stamps in a pool buffer.
pub const STAMP_EVERY: usize = 4096;

const WHO_PING: u8 = 1;
const WHO_PONG: u8 = 2;
const FRONT_LEN: usize = 1 + 8 + 4;

/// The seed of a run: `MSGR_SEED` if set (replay), else the test's `fixed` seed, so CI runs
/// the same workloads every time. Printed on stderr.
pub fn seed_from_env(test: &str, fixed: u64) -> u64 {
    let seed = std::env::var("MSGR_SEED")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(fixed);
    eprintln!("{test}: seed={seed} (replay with MSGR_SEED={seed})");
    seed
}

/// A fresh random seed for the one run per suite that explores (printed, so a failure
/// replays with `MSGR_SEED`); `MSGR_SEED` overrides it.
pub fn random_seed(test: &str) -> u64 {
    seed_from_env(test, rand::random::<u64>())
}

/// Whether the long soak was asked for (`MSGR_SOAK=1`).
pub fn soak() -> bool {
    std::env::var("MSGR_SOAK").is_ok_and(|v| v == "1")
}

/// A seed for one use, derived from the run's seed.
pub fn derive_seed(seed: u64, what: u64) -> u64 {
    let mut z = seed ^ what.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Percentages of each operation; what is left to 100 is a no-op.
#[derive(Debug, Clone, Copy)]
pub struct OpMix {
    /// Open (or reuse) a client-to-server connection.
    pub connect: u32,
    /// Mark a connection down (only with at least `min_conns_to_drop` connections).
    pub drop: u32,
    /// Send a message.
    pub send: u32,
    /// Pause the op loop.
    pub pause: u32,
}

/// What a workload run does. See the module docs.
#[derive(Debug, Clone)]
pub struct WorkloadConfig {
    /// Name printed with the results.
    pub name: String,
    /// The run's seed.
    pub seed: u64,
    /// Server messengers.
    pub servers: usize,
    /// Client messengers.
    pub clients: usize,
    /// Default policy of the servers.
    pub server_policy: Policy,
    /// Default policy of the clients.
    pub client_policy: Policy,
    /// Connections opened before the random operations.
    pub seed_conns: usize,
    /// Random operations.
    pub ops: usize,
    /// The operation mix.
    pub mix: OpMix,
    /// Range of a pause.
    pub pause: (Duration, Duration),
    /// Number of pool buffers.
    pub pool: usize,
    /// Smallest pool buffer.
    pub min_payload: usize,
    /// Largest pool buffer.
    pub max_payload: usize,
    /// Tracked messages in flight at most (the sender waits beyond).
    pub max_in_flight: usize,
    /// Connections in the workload's table at most.
    pub max_conns: usize,
    /// Drops happen only with at least this many connections.
    pub min_conns_to_drop: usize,
    /// Percentage of sends that are untracked priority-200 commands.
    pub disorganise: u32,
    /// Socket failure injection, 1/N per socket operation; 0 = off.
    pub socket_failures: u32,
    /// Probability of a delayed delivery.
    pub delay_probability: f64,
    /// Longest delayed delivery.
    pub delay_max: Duration,
    /// Internal delays at race points.
    pub internal_delay: Duration,
    /// Dispatch throttle of every messenger, bytes.
    pub dispatch_throttle: u64,
    /// Bound on the drain after the op loop (all tracked messages answered).
    pub drain: Duration,
    /// The client side never sees a reset or remote reset (the servers never forget a
    /// session in this configuration).
    pub expect_no_client_resets: bool,
    /// Pings and commands are fast-dispatched (in the reader task), as in Ceph's workload.
    /// Only for configurations without expected resets: fast-dispatched messages are not
    /// ordered with connection events, so forgiveness on a reset could race a new pong.
    pub fast_dispatch: bool,
    /// Every messenger listens on (and so every session speaks) msgr2 instead of v1
    /// (`MessengerConfig::bind_msgr2`).
    pub msgr2: bool,
}

impl WorkloadConfig {
    /// The defaults of Ceph's inject tests with the given policies and failure rate: 1,000
    /// ops (9% connect, 10% drop, 70% send, 11% pause of 0.1-0.6 ms), 100 seed
    /// connections, 64 in flight, 128 connections, a 16 MiB dispatch throttle, 0.1 s internal
    /// delays, delayed delivery (p 0.5, at most 50 ms), pool of 100 buffers of 32 B-4 MiB.
    pub fn inject(
        name: &str,
        seed: u64,
        server_policy: Policy,
        client_policy: Policy,
        socket_failures: u32,
    ) -> Self {
        WorkloadConfig {
            name: name.to_string(),
            seed,
            servers: 8,
            clients: 16,
            server_policy,
            client_policy,
            seed_conns: 100,
            ops: 1000,
            mix: OpMix {
                connect: 9,
                drop: 10,
                send: 70,
                pause: 11,
            },
            pause: (Duration::from_micros(100), Duration::from_micros(600)),
            pool: 100,
            min_payload: 32,
            max_payload: 4 << 20,
            max_in_flight: 64,
            max_conns: 128,
            min_conns_to_drop: 10,
            disorganise: 5,
            socket_failures,
            delay_probability: 0.5,
            delay_max: Duration::from_millis(50),
            internal_delay: Duration::from_millis(100),
            dispatch_throttle: 16 << 20,
            drain: Duration::from_secs(120),
            expect_no_client_resets: false,
            fast_dispatch: false,
            msgr2: false,
        }
    }

    fn lossless(&self) -> bool {
        !self.client_policy.lossy
    }

    /// Lossless peers on both ends: a drop marks down both directions (Ceph PR 5669).
    fn peer_both_ways(&self) -> bool {
        let p = &self.client_policy;
        !p.server && !p.lossy && p.standby && !self.server_policy.server
    }
}

/// Pool buffer `idx` of length `len`: byte `i` is `(i % 251) ^ idx`, and `idx` (u32 LE) is
/// stamped at every multiple of [`STAMP_EVERY`] that fits.
pub fn make_buffer(idx: u32, len: usize) -> Bytes {
    let mut v: Vec<u8> = (0..len).map(|i| ((i % 251) as u8) ^ (idx as u8)).collect();
    let stamp = idx.to_le_bytes();
    let mut at = 0;
    while at + stamp.len() <= len {
        v[at..at + stamp.len()].copy_from_slice(&stamp);
        at += STAMP_EVERY;
    }
    Bytes::from(v)
}

fn front(who: u8, seq: u64, buf: u32) -> Bytes {
    let mut b = BytesMut::with_capacity(FRONT_LEN);
    b.put_u8(who);
    b.put_u64_le(seq);
    b.put_u32_le(buf);
    b.freeze()
}

fn parse_front(f: &[u8]) -> Option<(u8, u64, u32)> {
    if f.len() != FRONT_LEN {
        return None;
    }
    let who = f[0];
    let seq = u64::from_le_bytes(f[1..9].try_into().ok()?);
    let buf = u32::from_le_bytes(f[9..13].try_into().ok()?);
    Some((who, seq, buf))
}

/// A connection as the bookkeeping knows it: the messenger's index (servers first, then
/// clients) and the connection id within that messenger.
pub type Key = (usize, ConnId);

/// Event counts of one connection.
#[derive(Debug, Default, Clone, Copy)]
pub struct EvCounts {
    /// `handle_connect`.
    pub connect: u32,
    /// `handle_accept`.
    pub accept: u32,
    /// `handle_reset`.
    pub reset: u32,
    /// `handle_remote_reset`.
    pub remote_reset: u32,
    /// `handle_refused`.
    pub refused: u32,
}

/// Totals of a run, printed at the end.
#[derive(Debug, Default, Clone)]
pub struct Totals {
    /// Pings sent (tracked or not).
    pub pings: u64,
    /// Commands sent.
    pub commands: u64,
    /// Pongs verified against their tracked ping.
    pub verified: u64,
    /// Pongs of forgiven or untracked pings.
    pub untracked_pongs: u64,
    /// Tracked messages forgiven (drops, allowed resets, refused sends).
    pub forgiven: u64,
    /// Payload bytes of verified pongs.
    pub bytes: u64,
    /// Connections marked down by the workload.
    pub drops: u64,
    /// Pauses.
    pub pauses: u64,
}

#[derive(Debug, Clone, Copy)]
struct Sent {
    key: Key,
    buf: u32,
}

#[derive(Default)]
struct BookState {
    fifo: HashMap<Key, VecDeque<u64>>,
    sent: HashMap<u64, Sent>,
    pongs_seen: HashSet<u64>,
    pings_seen: HashSet<u64>,
    last_pong: HashMap<Key, u64>,
    events: HashMap<Key, EvCounts>,
    failures: Vec<String>,
    totals: Totals,
}

impl BookState {
    fn outstanding(&self) -> usize {
        self.sent.len()
    }

    fn forgive(&mut self, key: Key) {
        if let Some(q) = self.fifo.remove(&key) {
            for seq in q {
                self.sent.remove(&seq);
                self.totals.forgiven += 1;
            }
        }
    }

    fn fail(&mut self, what: String) {
        if self.failures.len() < 50 {
            self.failures.push(what);
        }
    }
}

/// The shared bookkeeping of all messengers of a run (Ceph shares one dispatcher).
pub struct Book {
    pool: Vec<Bytes>,
    lossless: bool,
    client_policy: Policy,
    servers: usize,
    state: Mutex<BookState>,
    changed: Notify,
}

impl Book {
    fn lock(&self) -> MutexGuard<'_, BookState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn is_client(&self, node: usize) -> bool {
        node >= self.servers
    }

    /// Failures recorded so far.
    pub fn failures(&self) -> Vec<String> {
        self.lock().failures.clone()
    }

    /// Tracked messages not yet answered.
    pub fn outstanding(&self) -> usize {
        self.lock().outstanding()
    }

    /// Event counts of one connection.
    pub fn events(&self, key: Key) -> EvCounts {
        self.lock().events.get(&key).copied().unwrap_or_default()
    }

    /// Summed event counts of the clients and of the servers.
    pub fn event_totals(&self) -> (EvCounts, EvCounts) {
        let st = self.lock();
        let mut cli = EvCounts::default();
        let mut srv = EvCounts::default();
        for ((node, _), c) in &st.events {
            let t = if self.is_client(*node) {
                &mut cli
            } else {
                &mut srv
            };
            t.connect += c.connect;
            t.accept += c.accept;
            t.reset += c.reset;
            t.remote_reset += c.remote_reset;
            t.refused += c.refused;
        }
        (cli, srv)
    }

    /// The run's totals.
    pub fn totals(&self) -> Totals {
        self.lock().totals.clone()
    }

    fn check_payload(&self, st: &mut BookState, what: &str, seq: u64, buf: u32, data: &Bytes) {
        match self.pool.get(buf as usize) {
            Some(want) if want == data => {}
            Some(want) => {
                let first = want
                    .iter()
                    .zip(data.iter())
                    .position(|(a, b)| a != b)
                    .unwrap_or(want.len().min(data.len()));
                st.fail(format!(
                    "{what} seq {seq}: payload differs from pool buffer {buf} (len {} vs {}, \
                     first difference at byte {first})",
                    data.len(),
                    want.len()
                ));
            }
            None => st.fail(format!("{what} seq {seq}: unknown pool buffer {buf}")),
        }
    }

    fn on_message(&self, node: usize, m: &Received) {
        let ty = m.msg.header.ty;
        if ty == MSG_COMMAND {
            return;
        }
        let key = (node, m.conn.id());
        let mut st = self.lock();
        let Some((who, seq, buf)) = parse_front(&m.msg.front) else {
            st.fail(format!("node {node}: message type {ty} with a bad front"));
            return;
        };
        match (who, self.is_client(node)) {
            (WHO_PING, false) => {
                if !st.pings_seen.insert(seq) {
                    st.fail(format!("node {node}: ping seq {seq} delivered twice"));
                }
                self.check_payload(&mut st, "ping", seq, buf, &m.msg.data);
                drop(st);
                let reply =
                    Message::new(MSG_PING, front(WHO_PONG, seq, buf)).with_data(m.msg.data.clone());
                // The reply is lost with a closed connection, as Ceph's would be.
                let _ = m.conn.queue(reply);
            }
            (WHO_PONG, true) => {
                self.on_pong(&mut st, key, seq, buf, &m.msg.data);
                drop(st);
                self.changed.notify_waiters();
            }
            _ => st.fail(format!("node {node}: unexpected who {who} seq {seq}")),
        }
    }

    fn on_pong(&self, st: &mut BookState, key: Key, seq: u64, buf: u32, data: &Bytes) {
        if !st.pongs_seen.insert(seq) {
            st.fail(format!("{key:?}: pong seq {seq} delivered twice"));
            return;
        }
        self.check_payload(st, "pong", seq, buf, data);
        if let Some(last) = st.last_pong.insert(key, seq) {
            if last > seq {
                st.fail(format!(
                    "{key:?}: pong seq {seq} after pong seq {last} on one connection"
                ));
            }
        }
        let Some(sent) = st.sent.get(&seq).copied() else {
            st.totals.untracked_pongs += 1;
            return;
        };
        if sent.key != key {
            st.fail(format!(
                "pong seq {seq} arrived on {key:?}, was sent on {:?}",
                sent.key
            ));
            return;
        }
        if sent.buf != buf {
            st.fail(format!(
                "pong seq {seq} names buffer {buf}, was sent with {}",
                sent.buf
            ));
        }
        let front = st.fifo.get(&key).and_then(|q| q.front().copied());
        if front != Some(seq) {
            st.fail(format!(
                "{key:?}: pong seq {seq} but the oldest unanswered ping is {front:?} \
                 (lost or reordered without a reset)"
            ));
            // Keep going: drop everything up to it so one bug does not cascade.
            if let Some(q) = st.fifo.get_mut(&key) {
                while let Some(s) = q.pop_front() {
                    st.sent.remove(&s);
                    if s == seq {
                        break;
                    }
                }
            }
            return;
        }
        if let Some(q) = st.fifo.get_mut(&key) {
            q.pop_front();
        }
        st.sent.remove(&seq);
        st.totals.verified += 1;
        st.totals.bytes += data.len() as u64;
    }

    fn on_event(&self, node: usize, conn: &Connection, ev: Event) {
        let key = (node, conn.id());
        let client = self.is_client(node);
        let mut st = self.lock();
        let c = st.events.entry(key).or_default();
        match ev {
            Event::Connect => c.connect += 1,
            Event::Accept => c.accept += 1,
            Event::Reset => c.reset += 1,
            Event::RemoteReset => c.remote_reset += 1,
            Event::Refused => c.refused += 1,
        }
        let c = *c;
        if c.reset > 1 {
            st.fail(format!("{key:?}: {} reset events for one session", c.reset));
        }
        if client && matches!(ev, Event::Reset | Event::RemoteReset) {
            let p = &self.client_policy;
            let allowed = match ev {
                Event::Reset => p.lossy,
                _ => p.lossy || p.resetcheck,
            };
            if self.lossless && !allowed {
                let n = st.fifo.get(&key).map_or(0, VecDeque::len);
                st.fail(format!(
                    "{key:?}: {ev:?} on a lossless session whose policy does not allow it \
                     ({n} tracked messages)"
                ));
            }
            st.forgive(key);
        }
        drop(st);
        self.changed.notify_waiters();
    }

    /// Waits until `cond` holds on the state, at most until `deadline`.
    async fn wait_until(&self, deadline: Instant, cond: impl Fn(&BookState) -> bool) -> bool {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if cond(&self.lock()) {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return cond(&self.lock());
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Event {
    Connect,
    Accept,
    Reset,
    RemoteReset,
    Refused,
}

/// The dispatcher of one messenger: the shared [`Book`] and the messenger's index.
struct Node {
    idx: usize,
    fast: bool,
    book: Arc<Book>,
}

impl Dispatcher for Node {
    fn dispatch(&self, m: Received) -> BoxFuture<'_, Dispatched> {
        Box::pin(async move {
            self.book.on_message(self.idx, &m);
            Dispatched::Handled
        })
    }

    fn can_fast_dispatch(&self, m: &Received) -> bool {
        self.fast && matches!(m.msg.header.ty, MSG_PING | MSG_COMMAND)
    }

    fn fast_dispatch(&self, m: Received) {
        self.book.on_message(self.idx, &m);
    }

    fn handle_connect(&self, conn: &Connection) {
        self.book.on_event(self.idx, conn, Event::Connect);
    }

    fn handle_accept(&self, conn: &Connection) {
        self.book.on_event(self.idx, conn, Event::Accept);
    }

    fn handle_reset(&self, conn: &Connection) {
        self.book.on_event(self.idx, conn, Event::Reset);
    }

    fn handle_remote_reset(&self, conn: &Connection) {
        self.book.on_event(self.idx, conn, Event::RemoteReset);
    }

    fn handle_refused(&self, conn: &Connection) {
        self.book.on_event(self.idx, conn, Event::Refused);
    }
}

/// One entry of the connection table.
#[derive(Clone)]
struct Entry {
    conn: Connection,
    client: usize,
    server: usize,
}

/// A connection the workload used, for the reset accounting at the end.
struct Used {
    conn: Connection,
    node: usize,
    marked_down: bool,
}

/// A running workload: the messengers, the bookkeeping and the random generator.
pub struct Workload {
    cfg: WorkloadConfig,
    servers: Vec<Messenger>,
    clients: Vec<Messenger>,
    book: Arc<Book>,
    rng: StdRng,
    table: Vec<Entry>,
    used: HashMap<Key, Used>,
    next_seq: u64,
}

/// What a run found.
#[derive(Debug)]
pub struct Report {
    /// Every violated expectation (empty = pass).
    pub failures: Vec<String>,
    /// The totals.
    pub totals: Totals,
    /// Client-side and server-side event counts.
    pub events: (EvCounts, EvCounts),
    /// Faults counted by the clients' sessions, and by the servers'.
    pub faults: (u64, u64),
    /// Wall time of the run.
    pub elapsed: Duration,
}

impl Workload {
    /// Starts the messengers and builds the payload pool. With `RUST_LOG` set, the
    /// messengers' tracing goes to the test's output (once per process).
    pub async fn start(cfg: WorkloadConfig) -> anyhow::Result<Workload> {
        crate::fixture::log_from_env();
        let mut rng = StdRng::seed_from_u64(cfg.seed);
        let pool: Vec<Bytes> = (0..cfg.pool)
            .map(|i| {
                let len = rng.gen_range(cfg.min_payload..=cfg.max_payload);
                make_buffer(u32::try_from(i).unwrap_or(u32::MAX), len)
            })
            .collect();
        let book = Arc::new(Book {
            pool,
            lossless: cfg.lossless(),
            client_policy: cfg.client_policy.clone(),
            servers: cfg.servers,
            state: Mutex::new(BookState::default()),
            changed: Notify::new(),
        });
        let mut servers = Vec::new();
        let mut clients = Vec::new();
        for idx in 0..cfg.servers + cfg.clients {
            let server = idx < cfg.servers;
            let (name, policy) = if server {
                (
                    EntityName::osd(idx as i64),
                    own_throttles(&cfg.server_policy),
                )
            } else {
                (
                    EntityName::client((idx - cfg.servers) as i64),
                    own_throttles(&cfg.client_policy),
                )
            };
            let mut config = MessengerConfig {
                bind_addr: "127.0.0.1:0".parse()?,
                dispatch_throttle_bytes: cfg.dispatch_throttle,
                bind_msgr2: cfg.msgr2,
                ..MessengerConfig::default()
            };
            config.pipe.inject = InjectConfig {
                socket_failures: cfg.socket_failures,
                internal_delay: cfg.internal_delay,
                delay_probability: cfg.delay_probability,
                delay_max: cfg.delay_max,
                seed: derive_seed(cfg.seed, 1000 + idx as u64),
            };
            let m = Messenger::builder(name)
                .config(config)
                .default_policy(policy)
                .dispatcher(Arc::new(Node {
                    idx,
                    fast: cfg.fast_dispatch,
                    book: book.clone(),
                }))
                .start()
                .await?;
            if server {
                servers.push(m);
            } else {
                clients.push(m);
            }
        }
        Ok(Workload {
            cfg,
            servers,
            clients,
            book,
            rng,
            table: Vec::new(),
            used: HashMap::new(),
            next_seq: 1,
        })
    }

    /// The shared bookkeeping.
    pub fn book(&self) -> &Arc<Book> {
        &self.book
    }

    /// All messengers, servers first.
    pub fn messengers(&self) -> impl Iterator<Item = &Messenger> {
        self.servers.iter().chain(self.clients.iter())
    }

    fn client_node(&self, client: usize) -> usize {
        self.cfg.servers + client
    }

    fn generate_connection(&mut self) {
        if self.table.len() >= self.cfg.max_conns {
            return;
        }
        let client = self.rng.gen_range(0..self.cfg.clients);
        let server = self.rng.gen_range(0..self.cfg.servers);
        let Ok(conn) =
            self.clients[client].connect_lazy(self.servers[server].addr(), EntityType::OSD)
        else {
            return;
        };
        let node = self.client_node(client);
        self.table
            .retain(|e| !(e.client == client && e.server == server && e.conn != conn));
        if !self.table.iter().any(|e| e.conn == conn) {
            self.table.push(Entry {
                conn: conn.clone(),
                client,
                server,
            });
        }
        self.used.entry((node, conn.id())).or_insert(Used {
            conn,
            node,
            marked_down: false,
        });
    }

    fn drop_connection(&mut self) {
        self.table.retain(|e| e.conn.is_connected());
        if self.table.len() < self.cfg.min_conns_to_drop {
            return;
        }
        let i = self.rng.gen_range(0..self.table.len());
        let e = self.table.swap_remove(i);
        let node = self.client_node(e.client);
        self.book.lock().forgive((node, e.conn.id()));
        e.conn.mark_down();
        if let Some(u) = self.used.get_mut(&(node, e.conn.id())) {
            u.marked_down = true;
        }
        if self.cfg.peer_both_ways() {
            if let Some(back) = self.servers[e.server].connection(&self.clients[e.client].addr()) {
                back.mark_down();
            }
        }
        self.book.lock().totals.drops += 1;
        self.book.changed.notify_waiters();
    }

    async fn send_message(&mut self, deadline: Instant) -> Result<(), String> {
        let max = self.cfg.max_in_flight;
        if !self
            .book
            .wait_until(deadline, |st| st.outstanding() < max)
            .await
        {
            return Err(self.describe_outstanding(&format!(
                "in-flight gate: still {} tracked messages unanswered at the deadline",
                self.book.outstanding()
            )));
        }
        self.table.retain(|e| e.conn.is_connected());
        if self.table.is_empty() {
            return Ok(());
        }
        let e = self.table[self.rng.gen_range(0..self.table.len())].clone();
        let node = self.client_node(e.client);
        let key = (node, e.conn.id());
        let buf = self.rng.gen_range(0..self.book.pool.len());
        if self.rng.gen_range(0..100) < self.cfg.disorganise {
            let data = self.book.pool[buf].slice(..self.book.pool[buf].len().min(64));
            let m = Message::new(MSG_COMMAND, Bytes::from_static(b"disorganise"))
                .with_data(data)
                .with_priority(PRIO_DISORGANISE);
            self.book.lock().totals.commands += 1;
            return self.send_on(&e.conn, m, deadline).await.map(|_| ());
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let buf32 = u32::try_from(buf).unwrap_or(u32::MAX);
        let m = Message::new(MSG_PING, front(WHO_PING, seq, buf32))
            .with_data(self.book.pool[buf].clone());
        {
            let mut st = self.book.lock();
            st.totals.pings += 1;
            if self.book.lossless {
                st.sent.insert(seq, Sent { key, buf: buf32 });
                st.fifo.entry(key).or_default().push_back(seq);
            }
        }
        if !self.send_on(&e.conn, m, deadline).await? {
            // Refused at once: the session had ended. Never queued, so not expected back.
            let mut st = self.book.lock();
            if st.sent.remove(&seq).is_some() {
                st.totals.forgiven += 1;
                if let Some(q) = st.fifo.get_mut(&key) {
                    q.retain(|s| *s != seq);
                }
            }
        }
        Ok(())
    }

    /// Sends; Ok(false) when the connection refused the message (ended).
    async fn send_on(
        &self,
        conn: &Connection,
        m: Message,
        deadline: Instant,
    ) -> Result<bool, String> {
        match tokio::time::timeout_at(deadline, conn.send(m)).await {
            Ok(Ok(())) => Ok(true),
            Ok(Err(_)) => Ok(false),
            Err(_) => Err(format!(
                "send on {conn:?} blocked until the deadline (state {:?}, stats {:?})",
                conn.state(),
                conn.stats()
            )),
        }
    }

    /// Runs the seed connections and the random operations, then drains and checks.
    pub async fn run(mut self) -> Report {
        let started = Instant::now();
        let op_deadline = started + self.cfg.drain;
        let mut failures = Vec::new();
        for _ in 0..self.cfg.seed_conns {
            self.generate_connection();
        }
        let mix = self.cfg.mix;
        for op in 0..self.cfg.ops {
            if !self.book.failures().is_empty() {
                break;
            }
            let roll = self.rng.gen_range(0..100);
            let r = if roll < mix.connect {
                self.generate_connection();
                Ok(())
            } else if roll < mix.connect + mix.drop {
                self.drop_connection();
                Ok(())
            } else if roll < mix.connect + mix.drop + mix.send {
                self.send_message(op_deadline.max(Instant::now() + self.cfg.drain))
                    .await
            } else if roll < mix.connect + mix.drop + mix.send + mix.pause {
                let (lo, hi) = self.cfg.pause;
                let d = self.rng.gen_range(lo..=hi);
                self.book.lock().totals.pauses += 1;
                // The workload's own pause operation (part of the workload, not a wait).
                tokio::time::sleep(d).await;
                Ok(())
            } else {
                Ok(())
            };
            if let Err(e) = r {
                failures.push(format!("op {op}: {e}"));
                break;
            }
        }
        let ops_done = Instant::now();

        // Drain: every tracked message answered. What is still unanswered halfway is noted,
        // so that a failure's report says whether those sessions moved in the second half.
        let drain_start = Instant::now();
        let halfway = if self
            .book
            .wait_until(drain_start + self.cfg.drain / 2, |st| st.outstanding() == 0)
            .await
        {
            None
        } else {
            Some(self.describe_outstanding("halfway through the drain"))
        };
        if let Some(halfway) = halfway {
            if !self
                .book
                .wait_until(drain_start + self.cfg.drain, |st| st.outstanding() == 0)
                .await
            {
                let end = self.describe_outstanding(&format!(
                    "drain: tracked messages unanswered after {:?}",
                    self.cfg.drain
                ));
                failures.push(format!("{end}\n{halfway}"));
            }
        }
        let drained = Instant::now();

        // Quiescence before shutdown: dispatch queues empty, throttles at 0.
        let quiet_deadline = Instant::now() + Duration::from_secs(30);
        for m in self.messengers() {
            if !wait_quiet(m, quiet_deadline).await {
                failures.push(format!(
                    "{m:?} not quiescent before shutdown: queue {} throttles {:?}",
                    m.dispatch_queue_len(),
                    m.throttles()
                ));
            }
        }

        // Reset accounting.
        self.check_resets(&mut failures).await;

        let faults = (
            self.clients.iter().map(|m| m.stats().total.faults).sum(),
            self.servers.iter().map(|m| m.stats().total.faults).sum(),
        );
        // Shutdown: clients first, then servers; each must stop with nothing left.
        for m in self.clients.iter().chain(self.servers.iter()) {
            if let Err(e) = stop_checked(m, Duration::from_secs(30)).await {
                failures.push(e);
            }
        }
        failures.extend(self.book.failures());
        let report = Report {
            failures,
            totals: self.book.totals(),
            events: self.book.event_totals(),
            faults,
            elapsed: started.elapsed(),
        };
        eprintln!(
            "{}: seed={} ops {:?}, drain {:?}, total {:?}; {:?}; client events {:?}; server \
             events {:?}; faults (clients, servers) {:?}",
            self.cfg.name,
            self.cfg.seed,
            ops_done - started,
            drained - ops_done,
            report.elapsed,
            report.totals,
            report.events.0,
            report.events.1,
            report.faults
        );
        report
    }

    /// What the server a client's connection goes to knows of that client's session (state
    /// and stats), for a drain failure's report: a session stuck opening shows there whether
    /// the server saw its attempts.
    fn server_side(&self, node: usize, conn: &Connection) -> String {
        let client = node
            .checked_sub(self.cfg.servers)
            .and_then(|i| self.clients.get(i));
        let server = self.servers.iter().find(|m| m.addr() == conn.peer_addr());
        match (client, server) {
            (Some(c), Some(m)) => match m.connection(&c.addr()) {
                Some(sc) => format!("{:?} state {:?} stats {:?}", sc, sc.state(), sc.stats()),
                None => "no session".to_owned(),
            },
            _ => "unknown".to_owned(),
        }
    }

    /// `what`, then each connection with tracked messages unanswered: how many, its state
    /// and counters on both sides, its events (for a stall's report).
    fn describe_outstanding(&self, what: &str) -> String {
        let st = self.book.lock();
        let mut s = format!("{what} ({} in all):", st.outstanding());
        for (key, q) in &st.fifo {
            if q.is_empty() {
                continue;
            }
            let conn = self.used.get(key).map(|u| &u.conn);
            let _ = write!(
                s,
                "\n  {key:?}: {} waiting (oldest seq {:?}); conn {:?} state {:?} stats {:?}; \
                 events {:?}; last handshake failure {:?}; the server's side {}",
                q.len(),
                q.front(),
                conn,
                conn.map(Connection::state),
                conn.map(Connection::stats),
                st.events.get(key),
                conn.and_then(Connection::session)
                    .and_then(|s| s.handshake_failures().borrow().clone()),
                conn.map_or_else(|| "unknown".to_owned(), |c| self.server_side(key.0, c))
            );
        }
        s
    }

    /// Lossy: every session that ended by itself got exactly one reset, one marked down at
    /// most one, a live one none. Lossless: as the configuration expects.
    async fn check_resets(&self, failures: &mut Vec<String>) {
        let deadline = Instant::now() + Duration::from_secs(10);
        for (key, u) in &self.used {
            let ended_by_itself = !u.conn.is_connected() && !u.marked_down;
            if self.book.lossless {
                continue;
            }
            if ended_by_itself {
                let k = *key;
                let ok = self
                    .book
                    .wait_until(deadline, |st| {
                        st.events.get(&k).is_some_and(|c| c.reset >= 1)
                    })
                    .await;
                if !ok {
                    failures.push(format!(
                        "lossy session {key:?} (node {}) ended without a reset event: {:?}",
                        u.node,
                        self.book.events(*key)
                    ));
                }
            } else if u.conn.is_connected() {
                let c = self.book.events(*key);
                if c.reset != 0 {
                    failures.push(format!(
                        "lossy session {key:?} is alive but had {} reset events",
                        c.reset
                    ));
                }
            }
        }
        if self.cfg.expect_no_client_resets {
            let (cli, _) = self.book.event_totals();
            if cli.reset != 0 || cli.remote_reset != 0 {
                let st = self.book.lock();
                let which: Vec<String> = st
                    .events
                    .iter()
                    .filter(|((node, _), c)| {
                        self.book.is_client(*node) && (c.reset > 0 || c.remote_reset > 0)
                    })
                    .map(|(key, c)| {
                        let conn = self.used.get(key).map(|u| &u.conn);
                        format!(
                            "{key:?} to {:?}: {c:?}, stats {:?}",
                            conn.map(Connection::peer_addr),
                            conn.map(Connection::stats)
                        )
                    })
                    .collect();
                failures.push(format!(
                    "clients saw {} resets and {} remote resets; this configuration allows none: \
                     {}",
                    cli.reset,
                    cli.remote_reset,
                    which.join("; ")
                ));
            }
        }
    }
}

/// The policy with throttles of its own (same limits), so messengers do not share them.
fn own_throttles(p: &Policy) -> Policy {
    let fresh = |t: &Option<Throttle>| t.as_ref().map(|t| Throttle::new(t.max()));
    p.clone()
        .with_throttles(fresh(&p.throttle_bytes), fresh(&p.throttle_messages))
}

/// Waits until `m`'s dispatch queue is empty and all its throttles read 0.
pub async fn wait_quiet(m: &Messenger, deadline: Instant) -> bool {
    loop {
        if m.dispatch_queue_len() == 0 && m.throttles().iter().all(|t| t.current == 0) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        // Nothing to wait on for a throttle going back to 0: poll at a short interval,
        // bounded by the deadline.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
