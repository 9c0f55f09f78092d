//! `msgr serve`: a messenger that echoes (or sinks) every message it receives, until Ctrl-C.
//!
//! The same [`ServeDispatcher`] is the embedded server of `msgr bench`, so a remote run against
//! `msgr serve` and the default in-process run measure the same server code.
//!
//! Bench messages (types [`MSG_BENCH_DATA`], [`MSG_BENCH_END`]) carry their sequence number in
//! the header's `tid` (their payload is filler, see `bench::payload`); the server follows the
//! sequence numbers per connection so that a sink can say at the end of a stream what it
//! received, lost, saw twice or out of order.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use clap::{Args, ValueEnum};
use msgr_core::{
    BoxFuture, Connection, Dispatched, Dispatcher, Messenger, MessengerConfig, PolicyConfig,
    PolicyKind, Received,
};
use msgr_wire::{EntityAddr, EntityName, Message};
use serde::Serialize;

use std::time::Duration;

use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::bench::payload::{self, Integrity, SeqTracker};

mod report;

/// Message type of a bench data message: `tid` = its sequence number on the connection, the
/// payload filler (echoed in echo mode, counted in sink mode).
pub const MSG_BENCH_DATA: u16 = 0x7b00;
/// Message type of a bench end marker: `tid` = messages sent on this connection.
/// Echoed in echo mode; answered with [`MSG_BENCH_END_ACK`] in sink mode.
pub const MSG_BENCH_END: u16 = 0x7b01;
/// Message type of the sink's answer to an end marker: front = received, lost, duplicated,
/// reordered, corrupted (5 x u64 LE).
pub const MSG_BENCH_END_ACK: u16 = 0x7b02;

/// Options of `msgr serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on: `v1:IP:PORT` (or `IP:PORT`) for msgr v1, `v2:IP:PORT` for msgr2,
    /// or a vector `[v2:IP:PORT,v1:IP:PORT]` for both on two ports, as Ceph's daemons listen;
    /// port 0 lets the kernel choose. The bound address (a vector when both) is the first line
    /// printed.
    #[arg(long, default_value = "0.0.0.0:6800")]
    pub bind: String,
    /// Entity name, `TYPE.NUM`. With `-k`/`-m`: `mon.N` serves the mon role (a cephx auth
    /// server for the keyring's entities, so Ceph's own clients authenticate to it); a daemon
    /// name (`osd.N`) authenticates to the mons as that entity and verifies its clients'
    /// authorizers with the rotating keys the mon gives it, signing their sessions.
    #[arg(short = 'n', long, default_value = "osd.0")]
    pub name: String,
    /// The keyring holding the name's key (a daemon), or the entities a mon serves.
    #[arg(short = 'k', long)]
    pub keyring: Option<std::path::PathBuf>,
    /// The mon(s) a daemon authenticates to, as mon_host: v1:IP:PORT, [v2:…,v1:…], … (else
    /// the conf's `mon_host`).
    #[arg(short = 'm', long = "mon")]
    pub mon: Option<String>,
    /// The nonce announced with the address [default: 0 for a mon, as a ceph-mon binds
    /// (clients dial a mon with nonce 0); random otherwise, as an OSD].
    #[arg(long)]
    pub nonce: Option<u32>,
    /// Session policy toward clients: lossless (stateful_server) or lossy (stateless_server).
    #[arg(long, value_enum, default_value_t = ServePolicy::Lossless)]
    pub policy: ServePolicy,
    /// Echo every message back, or only count it.
    #[arg(long, value_enum, default_value_t = ServeMode::Echo)]
    pub mode: ServeMode,
    /// Print one JSON line per message received (src, peer address, type, seq, sizes, CRC
    /// state, authentication).
    #[arg(long)]
    pub log_messages: bool,
    /// Check the verify pattern of bench messages (as `msgr bench --verify` sends them).
    #[arg(long)]
    pub verify: bool,
    /// Messenger settings from a TOML file (msgr's keys, or Ceph's `ms_*` names; see
    /// `MessengerConfig`). `--bind`, `--name`, `--nonce` and `--policy` still come from the
    /// command line; the file gives everything else (timeouts, backoffs, throttles, CRCs,
    /// injection, per-type policies, and the nonce when `--nonce` is not given).
    #[arg(long, value_name = "FILE", conflicts_with = "conf")]
    pub config: Option<std::path::PathBuf>,
    /// Messenger settings from a ceph.conf: its `ms_*` options of `[global]`, `[TYPE]` and
    /// `[TYPE.ID]` for `--name`, as Ceph reads them (other options are skipped).
    #[arg(short = 'c', long = "conf", value_name = "CEPH_CONF")]
    pub conf: Option<std::path::PathBuf>,
    /// Serve Prometheus metrics at `http://ADDR/metrics` (per peer: messages and bytes in and
    /// out, faults, reconnects, resends, queue depths, keepalive RTT; per messenger: totals,
    /// sessions by state, dispatch queue, throttles). Port 0 lets the kernel choose; the
    /// address is printed on stderr.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<SocketAddr>,
    /// Print one line of rates to stderr every SECS seconds, like iperf3's interval reports.
    #[arg(long, value_name = "SECS", value_parser = parse_interval)]
    pub stats_interval: Option<Duration>,
    /// Send a KEEPALIVE2 on every open session every SECS seconds; the acks' round trips
    /// feed the keepalive RTT histogram of `--metrics`.
    #[arg(long, value_name = "SECS", value_parser = parse_interval)]
    pub keepalive: Option<Duration>,
}

/// Parses a positive number of seconds (fractions allowed, at least 1 ms).
fn parse_interval(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !(0.001..=86_400.0).contains(&secs) {
        return Err(format!("{s} s is outside 0.001..=86400"));
    }
    Ok(Duration::from_secs_f64(secs))
}

impl ServeArgs {
    /// The settings of `--config` or `--conf`, or the defaults without either.
    fn file_config(&self, name: &str) -> anyhow::Result<Option<MessengerConfig>> {
        Ok(match (&self.config, &self.conf) {
            (Some(path), _) => Some(MessengerConfig::from_toml_file(path)?),
            (None, Some(path)) => Some(MessengerConfig::from_ceph_conf_file(path, name)?),
            (None, None) => None,
        })
    }
}

/// What `msgr serve` does with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ServeMode {
    /// Send it back on the same connection with the same type, front, middle and data.
    Echo,
    /// Count it; answer only bench end markers, with the counts.
    Sink,
}

/// The server's session policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ServePolicy {
    /// `stateful_server`: sessions survive socket faults; nothing is lost.
    Lossless,
    /// `stateless_server`: a fault forgets the session.
    Lossy,
}

impl ServePolicy {
    /// The msgr-core policy kind.
    pub fn kind(self) -> PolicyKind {
        match self {
            ServePolicy::Lossless => PolicyKind::StatefulServer,
            ServePolicy::Lossy => PolicyKind::StatelessServer,
        }
    }
}

/// Where `msgr serve` listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bind {
    /// The first listener's address.
    pub addr: SocketAddr,
    /// It speaks msgr2.
    pub msgr2: bool,
    /// A second listener, msgr v1, beside a msgr2 one.
    pub v1: Option<SocketAddr>,
}

/// Parses a listening address: `v1:IP:PORT`, `IP:PORT`, `v2:IP:PORT` or a vector
/// `[v2:IP:PORT,v1:IP:PORT]` (both protocols, on two listeners). The nonce, if written, is
/// ignored (`--nonce` sets it).
pub fn parse_bind(s: &str) -> anyhow::Result<Bind> {
    let addrs = msgr_wire::parse_addrs(s).with_context(|| {
        format!("{s:?} is not an address like v1:127.0.0.1:6800 or v2:127.0.0.1:3300")
    })?;
    let first = msgr_wire::pick_addr(&addrs, true)
        .with_context(|| format!("{s:?}: an empty address vector"))?;
    let v1 = addrs
        .iter()
        .find(|a| !a.is_v2())
        .filter(|_| first.is_v2())
        .map(|a| a.addr);
    Ok(Bind {
        addr: first.addr,
        msgr2: first.is_v2(),
        v1,
    })
}

/// `addrs` as Ceph writes a daemon's addresses: one address, or a vector of them.
pub fn show_addrs(addrs: &[msgr_wire::EntityAddr]) -> String {
    match addrs {
        [one] => one.to_string(),
        many => format!(
            "[{}]",
            many.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",")
        ),
    }
}

/// Counts of one connection (as seen by the server).
#[derive(Debug, Default, Clone, Serialize)]
pub struct ConnCounts {
    /// Peer entity name.
    pub peer: String,
    /// Messages received.
    pub messages: u64,
    /// Payload bytes received (front + middle + data).
    pub bytes: u64,
    /// Delivery faults of the bench messages, as of the last end marker.
    pub integrity: Integrity,
    #[serde(skip)]
    tracker: SeqTracker,
    /// Replies queued to this peer (echoes, end-marker answers), counted under the lock the
    /// message's accounting holds anyway: one server-wide counter of replies, written by
    /// every connection's reader on both workers, was a cache line they fought over per
    /// echo (perf, a 64 B echo at depth 128 over 4 connections: 2 % of the samples).
    #[serde(skip)]
    replies: u64,
}

/// Counts of the whole server.
#[derive(Debug, Default, Serialize)]
pub struct ServeStats {
    /// Messages received.
    pub messages_in: u64,
    /// Payload bytes received.
    pub bytes_in: u64,
    /// Messages sent back.
    pub messages_out: u64,
    /// Messages that could not be sent back (connection closed).
    pub send_errors: u64,
    /// Connections seen.
    pub connections: usize,
}

/// One peer's counts, shared by its sessions: a lossy client that reconnects from the same
/// address counts on where its last session stopped.
type PeerCounts = Arc<Mutex<ConnCounts>>;

/// What `msgr serve` keeps in a session's [`Connection::app_data`]: its peer's counts.
///
/// Each message finds them from its own connection, in one load, and locks only its peer's
/// counts: a server-wide map behind one lock, looked up per message, was a cache line every
/// connection's reader on both workers fought over (4 % of a 64 B echo at depth 128 over 4
/// connections, measured by a build that skipped the accounting).
struct PeerSlot(PeerCounts);

/// Every peer's counts, by address, in the order of their first messages. Looked up once
/// per session (its first message), not per message.
#[derive(Default)]
struct Conns {
    /// One entry per peer address, in the order of their first messages.
    counts: Vec<(EntityAddr, PeerCounts)>,
    /// Peer address -> index in `counts`.
    by_addr: HashMap<EntityAddr, usize>,
}

impl Conns {
    /// The counts of the peer at `addr`, made (named by `peer`) if it is new.
    fn peer(&mut self, addr: EntityAddr, peer: impl FnOnce() -> String) -> PeerCounts {
        if let Some((_, counts)) = self.by_addr.get(&addr).and_then(|&i| self.counts.get(i)) {
            return Arc::clone(counts);
        }
        let counts = Arc::new(Mutex::new(ConnCounts {
            peer: peer(),
            ..ConnCounts::default()
        }));
        self.by_addr.insert(addr, self.counts.len());
        self.counts.push((addr, Arc::clone(&counts)));
        counts
    }
}

/// The server's dispatcher: echo or sink, with per-connection sequence tracking.
pub struct ServeDispatcher {
    mode: ServeMode,
    verify: bool,
    log: bool,
    conns: Mutex<Conns>,
    /// Replies that could not be queued (the session had ended); counted in their peer's
    /// `replies` too.
    send_errors: AtomicU64,
}

impl ServeDispatcher {
    /// A dispatcher in `mode`; `verify` checks bench payloads, `log` prints a line per message.
    pub fn new(mode: ServeMode, verify: bool, log: bool) -> Arc<Self> {
        Arc::new(ServeDispatcher {
            mode,
            verify,
            log,
            conns: Mutex::new(Conns::default()),
            send_errors: AtomicU64::new(0),
        })
    }

    /// The totals so far.
    pub fn stats(&self) -> ServeStats {
        let peers = self.peers();
        let send_errors = self.send_errors.load(Ordering::Relaxed);
        let replies: u64 = peers.iter().map(|(_, c)| c.replies).sum();
        ServeStats {
            messages_in: peers.iter().map(|(_, c)| c.messages).sum(),
            bytes_in: peers.iter().map(|(_, c)| c.bytes).sum(),
            messages_out: replies.saturating_sub(send_errors),
            send_errors,
            connections: peers.len(),
        }
    }

    /// Every peer's counts, by address.
    pub fn peers(&self) -> Vec<(EntityAddr, ConnCounts)> {
        let conns = msgr_dispatch::lock(&self.conns);
        conns
            .counts
            .iter()
            .map(|(addr, c)| (*addr, msgr_dispatch::lock(c).clone()))
            .collect()
    }

    /// The counts of `conn`'s peer: from the session's [`PeerSlot`], put there by its first
    /// message.
    #[inline]
    fn counts_of<'c>(&self, conn: &'c Connection) -> Option<&'c PeerCounts> {
        let slot = conn
            .app_data()
            .get_or_init(|| PeerSlot(self.peer_of(conn)))?;
        Some(&slot.0)
    }

    /// Looks up (or adds) the peer of a session's first message.
    #[cold]
    fn peer_of(&self, conn: &Connection) -> PeerCounts {
        let addr = conn.peer_addr();
        msgr_dispatch::lock(&self.conns).peer(addr, || {
            conn.peer_name()
                .map_or_else(|| addr.to_string(), |n| n.to_string())
        })
    }

    // Inlined into `fast_dispatch`, and the message read in place: each by-value layer (and
    // each destructuring) copied its ~200 bytes, a cost of the bench, not of msgr.
    #[inline(always)]
    fn handle(&self, received: Received) {
        let conn = &received.conn;
        if self.log {
            log_message(&received.msg, conn);
        }
        let reply = self.account(conn, &received.msg);
        if !self.replies_to(received.msg.header.ty) {
            return;
        }
        match self.mode {
            ServeMode::Sink => {
                if let Some(reply) = reply {
                    self.send(conn, reply);
                }
            }
            ServeMode::Echo => {
                let Received { mut msg, conn, .. } = received;
                make_echo(&mut msg);
                self.send(&conn, msg);
            }
        }
    }

    /// Whether a message of type `ty` is answered: every message in echo mode, a sink's end
    /// marker. The one rule [`handle`](Self::handle) sends by and
    /// [`account`](Self::account) counts replies by.
    #[inline(always)]
    fn replies_to(&self, ty: u16) -> bool {
        self.mode == ServeMode::Echo || ty == MSG_BENCH_END
    }

    /// Counts `msg` for its connection; for a sink's end marker, builds the answer.
    fn account(&self, conn: &Connection, msg: &Message) -> Option<Message> {
        // By address, not session: a lossy client that reconnects keeps its counts.
        let peer = self.counts_of(conn)?;
        let mut guard = msgr_dispatch::lock(peer);
        let counts = &mut *guard;
        counts.messages += 1;
        if self.replies_to(msg.header.ty) {
            counts.replies += 1;
        }
        counts.bytes += (msg.front.len() + msg.middle.len() + msg.data.len()) as u64;
        match msg.header.ty {
            MSG_BENCH_DATA => {
                let seq = msg.header.tid;
                counts.tracker.observe(seq);
                if self.verify && !payload::check(&msg.data, seq) {
                    counts.tracker.corrupted();
                }
            }
            MSG_BENCH_END => {
                let sent = msg.header.tid;
                let integrity = counts.tracker.finish(sent);
                counts.integrity = integrity;
                let mut front = Vec::with_capacity(40);
                for v in [
                    counts.tracker.received(),
                    integrity.lost,
                    integrity.duplicated,
                    integrity.reordered,
                    integrity.corrupted,
                ] {
                    front.extend_from_slice(&v.to_le_bytes());
                }
                counts.tracker = SeqTracker::default();
                return Some(Message::new(MSG_BENCH_END_ACK, front));
            }
            _ => {}
        }
        None
    }

    /// Queues a reply without waiting (a dispatcher must not wait on its peer); the reply
    /// was counted by [`account`](Self::account), a failure is counted here.
    fn send(&self, conn: &Connection, msg: Message) {
        if conn.queue(msg).is_err() {
            self.send_errors.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Turns a received message into its echo, in place (its segments are shared, not copied):
/// the header keeps the type, priority, version, compat version, tid and data offset, and
/// loses what the sender seals anew (seq, source, lengths, CRCs); the footer is cleared.
fn make_echo(msg: &mut Message) {
    let h = msg.header;
    msg.header = msgr_wire::MsgHeader {
        ty: h.ty,
        priority: h.priority,
        version: h.version,
        compat_version: h.compat_version,
        tid: h.tid,
        data_off: h.data_off,
        ..msgr_wire::MsgHeader::default()
    };
    msg.footer = msgr_wire::MsgFooter::default();
}

/// The mon role with `--log-messages`: each message is logged, then handled by the mon.
struct LogThenPass(Arc<dyn msgr_core::Dispatcher>);

impl msgr_core::Dispatcher for LogThenPass {
    fn dispatch(&self, msg: Received) -> BoxFuture<'_, msgr_core::Dispatched> {
        log_message(&msg.msg, &msg.conn);
        self.0.dispatch(msg)
    }

    fn handle_reset(&self, conn: &Connection) {
        self.0.handle_reset(conn);
    }
}

/// One JSON line describing a received message.
fn log_message(msg: &Message, conn: &Connection) {
    #[derive(Serialize)]
    struct Line<'a> {
        src: String,
        /// The connection's peer address (one per client process: its port and nonce).
        peer: String,
        #[serde(rename = "type")]
        ty: u16,
        seq: u64,
        tid: u64,
        front: usize,
        middle: usize,
        data: usize,
        crc: &'a str,
        /// How the session was authenticated: `none` or `cephx`.
        auth: &'a str,
        /// Whether the message's signature was checked.
        signed: bool,
    }
    let (protocol, signed) = conn.session().map_or((0, false), |s| s.auth());
    let auth = if protocol == msgr_auth::CEPH_AUTH_CEPHX {
        "cephx"
    } else {
        "none"
    };
    let crc = if msg.footer.flags & msgr_wire::FOOTER_NOCRC != 0 {
        "data-unchecked"
    } else {
        "ok"
    };
    let line = Line {
        src: msg.header.src.to_string(),
        peer: conn.peer_addr().to_string(),
        ty: msg.header.ty,
        seq: msg.header.seq,
        tid: msg.header.tid,
        front: msg.front.len(),
        middle: msg.middle.len(),
        data: msg.data.len(),
        crc,
        auth,
        signed,
    };
    if let Ok(text) = serde_json::to_string(&line) {
        println!("{text}");
    }
}

impl Dispatcher for ServeDispatcher {
    fn dispatch(&self, msg: Received) -> BoxFuture<'_, Dispatched> {
        self.handle(msg);
        Box::pin(async { Dispatched::Handled })
    }

    fn can_fast_dispatch(&self, _msg: &Received) -> bool {
        !self.log
    }

    fn fast_dispatch(&self, msg: Received) {
        self.handle(msg);
    }
}

/// Runs `msgr serve` until Ctrl-C or SIGTERM.
pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve(args))
}

/// Starts a server messenger with `dispatcher` (also used by `msgr bench`).
pub async fn start_server(
    bind: SocketAddr,
    name: EntityName,
    policy: PolicyKind,
    dispatcher: Arc<ServeDispatcher>,
    tune: impl FnOnce(&mut MessengerConfig),
    authorizer: Option<Arc<dyn msgr_core::Authorizer>>,
) -> anyhow::Result<Messenger> {
    start_server_with(bind, name, policy, dispatcher, tune, authorizer, None).await
}

/// [`start_server`], with `front` ahead of `dispatcher` in the chain (the mon role).
#[allow(clippy::too_many_arguments)]
async fn start_server_with(
    bind: SocketAddr,
    name: EntityName,
    policy: PolicyKind,
    dispatcher: Arc<ServeDispatcher>,
    tune: impl FnOnce(&mut MessengerConfig),
    authorizer: Option<Arc<dyn msgr_core::Authorizer>>,
    front: Option<Arc<dyn msgr_core::Dispatcher>>,
) -> anyhow::Result<Messenger> {
    let mut config = MessengerConfig {
        bind_addr: bind,
        default_policy: PolicyConfig::new(policy),
        ..MessengerConfig::default()
    };
    tune(&mut config);
    let mut builder = Messenger::builder(name).config(config);
    if let Some(front) = front {
        builder = builder.dispatcher(front);
    }
    let mut builder = builder.dispatcher(dispatcher);
    if let Some(a) = authorizer {
        builder = builder.authorizer(a);
    }
    let messenger = builder
        .start()
        .await
        .with_context(|| format!("starting a messenger on {bind}"))?;
    Ok(messenger)
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let Bind {
        addr: bind,
        msgr2,
        v1: bind_v1,
    } = parse_bind(&args.bind)?;
    let name: EntityName = args
        .name
        .parse()
        .with_context(|| format!("{:?} is not an entity name like osd.0", args.name))?;
    let file = args.file_config(&args.name)?;
    let dispatcher = ServeDispatcher::new(args.mode, args.verify, args.log_messages);
    let nonce = announced_nonce(name, args.nonce.or(file.as_ref().and_then(|f| f.nonce)));
    let role = crate::serve_auth::role(
        &args.name,
        args.keyring.as_deref(),
        args.mon.as_deref(),
        args.conf.as_deref(),
        bind,
    )
    .await?;
    let (authorizer, front) = match &role {
        crate::serve_auth::Role::Open => (None, None),
        crate::serve_auth::Role::Mon(service) => {
            let mon = service.dispatcher();
            let front: Arc<dyn msgr_core::Dispatcher> = if args.log_messages {
                Arc::new(LogThenPass(mon))
            } else {
                mon
            };
            // msgr2 clients authenticate inside the handshake with the mon's auth server.
            (Some(service.authorizer()), Some(front))
        }
        crate::serve_auth::Role::Daemon { authorizer, .. } => (Some(authorizer.clone()), None),
    };
    let messenger = start_server_with(
        bind,
        name,
        args.policy.kind(),
        dispatcher.clone(),
        |c| {
            if let Some(file) = file {
                // The command line's address, name and policy; the file's everything else.
                let (bind_addr, default_policy) = (c.bind_addr, c.default_policy.clone());
                *c = file;
                c.bind_addr = bind_addr;
                c.default_policy = default_policy;
                c.name = None;
            }
            c.nonce = nonce;
            c.bind_msgr2 = msgr2;
            c.bind_v1_addr = bind_v1;
        },
        authorizer,
        front,
    )
    .await?;
    // A mon's monmap names the address it listens on, port included (a port of 0 in
    // `--bind` is the one the messenger got: choosing a free port first and binding it later
    // raced with every other socket).
    if let crate::serve_auth::Role::Mon(service) = &role {
        let at = messenger.addr().addr;
        if msgr2 {
            service.announce_v2(at);
        } else {
            service.announce_v1(at);
        }
    }
    let shown = show_addrs(&messenger.addrs());
    println!("{shown}");
    eprintln!(
        "msgr serve: {name} listening on {shown} ({:?} mode, {:?} policy, {}); Ctrl-C stops",
        args.mode,
        args.policy,
        role.label()
    );
    let side = CancellationToken::new();
    let tasks = TaskTracker::new();
    if let Some(at) = args.metrics {
        let listener = tokio::net::TcpListener::bind(at)
            .await
            .with_context(|| format!("binding the metrics address {at}"))?;
        eprintln!(
            "msgr serve: metrics on http://{}/metrics",
            listener.local_addr()?
        );
        let mut registry = Registry::default();
        msgr_core::metrics::register(&mut registry, &messenger);
        tasks.spawn(msgr_core::metrics::serve_http(
            listener,
            Arc::new(registry),
            side.clone(),
        ));
    }
    if let Some(every) = args.stats_interval {
        tasks.spawn(report::intervals(messenger.clone(), every, side.clone()));
    }
    if let Some(every) = args.keepalive {
        tasks.spawn(report::keepalives(messenger.clone(), every, side.clone()));
    }
    wait_for_signal().await?;
    eprintln!("msgr serve: shutting down");
    side.cancel();
    tasks.close();
    tasks.wait().await;
    let live = messenger.stats();
    messenger.shutdown();
    messenger.wait().await;
    if let crate::serve_auth::Role::Daemon { client, .. } = &role {
        client.shutdown().await;
    }
    let stats = dispatcher.stats();
    println!(
        "{} messages ({} bytes) received on {} connections, {} sent back, {} send errors",
        stats.messages_in, stats.bytes_in, stats.connections, stats.messages_out, stats.send_errors
    );
    print!("{}", report::peer_table(&dispatcher.peers(), &live));
    Ok(())
}

/// The nonce `msgr serve` announces: the one asked for, else 0 for a mon (a ceph-mon binds
/// with nonce 0, and clients dial `v1:IP:PORT/0`), else `None` (the messenger's random one).
fn announced_nonce(name: EntityName, asked: Option<u32>) -> Option<u32> {
    asked.or((name.ty == msgr_wire::EntityType::MON).then_some(0))
}

/// Waits for Ctrl-C (SIGINT) or SIGTERM.
async fn wait_for_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r?,
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The echo keeps what the client matches replies by (type, priority, versions, tid,
    /// data offset) and the very segments received (shared, not copied), and drops what the
    /// server's own seal sets anew (seq, source, lengths, CRCs, footer).
    #[test]
    fn an_echo_keeps_the_identity_and_segments_and_drops_the_seal() {
        let (front, middle, data) = (
            bytes::Bytes::from_static(b"front"),
            bytes::Bytes::from_static(b"mid"),
            bytes::Bytes::from(vec![7u8; 100]),
        );
        let mut m = Message::new(MSG_BENCH_DATA, front.clone())
            .with_middle(middle.clone())
            .with_data(data.clone())
            .with_priority(196)
            .with_version(3, 2)
            .with_tid(99);
        m.header.data_off = 12;
        m.seal(41, EntityName::client(7), msgr_wire::CrcFlags::default());
        assert_ne!(m.header.crc, 0);
        make_echo(&mut m);
        let h = m.header;
        assert_eq!(
            (
                h.ty,
                h.priority,
                h.version,
                h.compat_version,
                h.tid,
                h.data_off
            ),
            (MSG_BENCH_DATA, 196, 3, 2, 99, 12)
        );
        assert_eq!((h.seq, h.crc, h.front_len, h.data_len), (0, 0, 0, 0));
        assert_eq!(h.src, EntityName::default());
        assert_eq!(m.footer, msgr_wire::MsgFooter::default());
        assert_eq!(m.front.as_ptr(), front.as_ptr(), "the front is shared");
        assert_eq!(m.data.as_ptr(), data.as_ptr(), "the data is shared");
        assert_eq!(m.middle, middle);
    }

    /// Counts are kept by peer address: a second session from the same address (a lossy
    /// client's reconnect) gets the first one's counts, another address its own, in the
    /// order of their first messages, each named once.
    #[test]
    fn counts_follow_the_peer_address_across_sessions() {
        let addr = |port: u16| {
            let sa: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
            EntityAddr::new(sa, 1)
        };
        let mut conns = Conns::default();
        let named = std::cell::Cell::new(0);
        let mut session = |port: u16| {
            conns.peer(addr(port), || {
                named.set(named.get() + 1);
                format!("client.{port}")
            })
        };
        let first = session(6800);
        let again = session(6800);
        let other = session(6801);
        assert!(Arc::ptr_eq(&first, &again), "one peer, one count");
        assert!(!Arc::ptr_eq(&first, &other));
        assert_eq!(named.get(), 2, "each peer named once");
        msgr_dispatch::lock(&first).messages += 3;
        msgr_dispatch::lock(&again).messages += 2;
        msgr_dispatch::lock(&other).messages += 1;
        let seen: Vec<_> = conns
            .counts
            .iter()
            .map(|(a, c)| {
                let c = msgr_dispatch::lock(c);
                (*a, c.peer.clone(), c.messages)
            })
            .collect();
        assert_eq!(
            seen,
            [
                (addr(6800), "client.6800".to_string(), 5),
                (addr(6801), "client.6801".to_string(), 1)
            ]
        );
    }

    /// Counts the replies a client receives.
    #[derive(Default)]
    struct Replies {
        n: AtomicU64,
        arrived: tokio::sync::Notify,
    }

    impl Dispatcher for Replies {
        fn dispatch(&self, _msg: Received) -> BoxFuture<'_, Dispatched> {
            self.n.fetch_add(1, Ordering::SeqCst);
            self.arrived.notify_waiters();
            Box::pin(async { Dispatched::Handled })
        }
    }

    /// Each reply is counted once, with its peer's counts: an echo server's `messages_out`
    /// is every message it echoed, a sink's the end markers it answered, and the client
    /// receives exactly that many (no send errors on a live session).
    #[tokio::test]
    async fn replies_are_counted_with_their_peer() -> anyhow::Result<()> {
        for (mode, answered) in [(ServeMode::Echo, 6), (ServeMode::Sink, 1)] {
            let dispatcher = ServeDispatcher::new(mode, false, false);
            let bind = SocketAddr::from(([127, 0, 0, 1], 0));
            let server = start_server(
                bind,
                EntityName::osd(0),
                PolicyKind::StatefulServer,
                dispatcher.clone(),
                |_| {},
                None,
            )
            .await?;
            let replies = Arc::new(Replies::default());
            let client = Messenger::builder(EntityName::client(-1))
                .config(MessengerConfig {
                    default_policy: PolicyConfig::new(PolicyKind::LosslessClient),
                    ..MessengerConfig::default()
                })
                .no_listener()
                .dispatcher(replies.clone())
                .start()
                .await?;
            let conn = client.connect_lazy(server.addr(), msgr_wire::EntityType::OSD)?;
            for seq in 0..5 {
                let mut m = Message::new(MSG_BENCH_DATA, bytes::Bytes::new())
                    .with_data(bytes::Bytes::from_static(&[0; 64]));
                m.header.tid = seq;
                conn.send(m).await?;
            }
            let mut end = Message::new(MSG_BENCH_END, bytes::Bytes::new());
            end.header.tid = 5;
            conn.send(end).await?;
            tokio::time::timeout(Duration::from_secs(10), async {
                loop {
                    let arrived = replies.arrived.notified();
                    if replies.n.load(Ordering::SeqCst) >= answered {
                        break;
                    }
                    arrived.await;
                }
            })
            .await?;
            let stats = dispatcher.stats();
            assert_eq!(stats.messages_in, 6, "{mode:?}");
            assert_eq!(stats.messages_out, answered, "{mode:?}");
            assert_eq!(stats.send_errors, 0, "{mode:?}");
            assert_eq!(replies.n.load(Ordering::SeqCst), answered, "{mode:?}");
            let peers = dispatcher.peers();
            assert_eq!(peers.len(), 1);
            assert_eq!(peers[0].1.replies, answered, "{mode:?}");
            client.shutdown();
            server.shutdown();
            client.wait().await;
            server.wait().await;
        }
        Ok(())
    }

    #[test]
    fn intervals_are_positive_seconds() {
        assert_eq!(parse_interval("1"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_interval("0.25"), Ok(Duration::from_millis(250)));
        for bad in ["0", "-1", "x", "1e9", "NaN", ""] {
            assert!(parse_interval(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn a_mon_announces_nonce_0_unless_told() {
        let mon: EntityName = "mon.0".parse().unwrap_or_else(|_| EntityName::osd(0));
        assert_eq!(mon.ty, msgr_wire::EntityType::MON);
        assert_eq!(announced_nonce(mon, None), Some(0));
        assert_eq!(announced_nonce(mon, Some(7)), Some(7));
        assert_eq!(announced_nonce(EntityName::osd(3), None), None);
        assert_eq!(announced_nonce(EntityName::osd(3), Some(42)), Some(42));
    }
}
