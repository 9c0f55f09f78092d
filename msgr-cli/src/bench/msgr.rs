//! The msgr transport of the bench: a server and client messengers in this process on
//! loopback, or client messengers against a remote `msgr serve`.
//!
//! As in Ceph's perf_msgr client, each job (connection) has its own client messenger, and the
//! server is one messenger ([`ServeDispatcher`]: a sink for stream cases, an echo for rr cases).
//! Both sides fast-dispatch. A job first makes one round trip (an end marker for 0 messages)
//! so the handshake is not timed, then waits for every job to be ready before the clock starts.
//!
//! ```text
//! client job                         server
//!  DATA(front = seq|stamp, data) ->  sink: track seq          | echo: send back
//!  ...                               ...
//!  END(front = sent)             ->  sink: END_ACK(counts)    | echo: END back
//! ```

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::{Buf, Bytes};
use hdrhistogram::Histogram;
use msgr_core::{
    BoxFuture, Connection, Dispatched, Dispatcher, Messenger, MessengerConfig, PolicyConfig,
    PolicyKind, Received,
};
use msgr_wire::{EntityAddr, EntityName, EntityType, Message};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::{Barrier, Notify, Semaphore};
use tokio::task::JoinSet;

use super::payload::{self, Integrity, SeqTracker, HEADER_LEN};
use super::plan::{Case, Limit, Mode};
use super::report::IdleMemory;
use super::{new_histogram, BenchArgs, JobResult, Outcome, PolicyArg, SessionCounts, Stopper};
use crate::serve::{
    self, ServeDispatcher, ServeMode, MSG_BENCH_DATA, MSG_BENCH_END, MSG_BENCH_END_ACK,
};

/// How long a lossless run waits for an answer before it calls the run failed.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);
/// A job whose messenger moved no byte for this long has lost its server: the run fails.
const STALL: Duration = Duration::from_secs(10);
/// How long a lossy run waits for an answer before it counts the missing messages as lost.
const LOSSY_TIMEOUT: Duration = Duration::from_secs(2);

/// The messenger-side options of a bench run.
#[derive(Debug, Clone)]
pub struct Options {
    /// A remote `msgr serve`.
    pub server: Option<EntityAddr>,
    /// Lossless or lossy sessions.
    pub policy: PolicyArg,
    /// Check every byte.
    pub verify: bool,
    /// Fault injection, passed to every messenger.
    pub inject: msgr_core::InjectConfig,
}

impl Options {
    /// The options `args` ask for.
    pub async fn from_args(args: &BenchArgs) -> anyhow::Result<Options> {
        let server = match args.server.as_deref() {
            Some(text) => Some(crate::peer::resolve(text, ANSWER_TIMEOUT).await?),
            None => None,
        };
        let inject = msgr_core::InjectConfig {
            socket_failures: args.inject_socket_failures,
            delay_probability: args.inject_delay_probability,
            delay_max: args.inject_delay_max,
            seed: args.seed,
            ..msgr_core::InjectConfig::default()
        };
        Ok(Options {
            server,
            policy: args.policy,
            verify: args.verify,
            inject,
        })
    }

    fn timeout(&self) -> Duration {
        match self.policy {
            PolicyArg::Lossless => ANSWER_TIMEOUT,
            PolicyArg::Lossy => LOSSY_TIMEOUT,
        }
    }

    fn tune(&self) -> impl Fn(&mut MessengerConfig) + '_ {
        move |config: &mut MessengerConfig| {
            config.inject = self.inject.clone();
        }
    }
}

/// Runs one case over the messenger.
pub async fn run(case: Case, limit: Limit, options: &Options) -> anyhow::Result<Outcome> {
    let (server, addr) = match options.server {
        Some(addr) => (None, addr),
        None => {
            let mode = match case.mode {
                Mode::Stream => ServeMode::Sink,
                Mode::Rr => ServeMode::Echo,
            };
            let policy = match options.policy {
                PolicyArg::Lossless => PolicyKind::StatefulServer,
                PolicyArg::Lossy => PolicyKind::StatelessServer,
            };
            let dispatcher = ServeDispatcher::new(mode, options.verify, false);
            let bind = SocketAddr::from(([127, 0, 0, 1], 0));
            let messenger =
                serve::start_server(bind, EntityName::osd(0), policy, dispatcher, options.tune())
                    .await?;
            let addr = messenger.addr();
            (Some(messenger), addr)
        }
    };
    let epoch = Instant::now();
    let ready = Arc::new(Barrier::new(case.jobs + 1));
    let filler = Bytes::from(vec![0u8; case.size - HEADER_LEN]);
    let mut jobs = JoinSet::new();
    for _ in 0..case.jobs {
        let job = Job {
            case,
            limit,
            options: options.clone(),
            addr,
            epoch,
            filler: filler.clone(),
        };
        jobs.spawn(job.run(ready.clone()));
    }
    let waited = tokio::time::timeout(ANSWER_TIMEOUT, ready.wait()).await;
    if waited.is_err() {
        jobs.abort_all();
        bail!("the msgr connections to {addr} did not come up within {ANSWER_TIMEOUT:?}");
    }
    let start = Instant::now();
    let mut outcome = Outcome::default();
    while let Some(job) = jobs.join_next().await {
        outcome.add(job??);
    }
    outcome.elapsed = start.elapsed();
    if let Some(server) = server {
        server.shutdown();
        server.wait().await;
    }
    Ok(outcome)
}

/// One connection of a run, with its own client messenger.
struct Job {
    case: Case,
    limit: Limit,
    options: Options,
    addr: EntityAddr,
    epoch: Instant,
    filler: Bytes,
}

impl Job {
    async fn run(self, ready: Arc<Barrier>) -> anyhow::Result<JobResult> {
        let side = ClientSide::new(self.case.depth.max(1), self.options.verify, self.epoch);
        let messenger = start_client(&self.options, side.clone()).await?;
        let result = tokio::select! {
            result = self.drive(&messenger, &side, ready) => result,
            () = stalled(&messenger) => Err(anyhow::anyhow!(
                "no traffic with the msgr server at {} for {STALL:?} (did it stop?)",
                self.addr
            )),
        };
        messenger.shutdown();
        messenger.wait().await;
        result
    }

    async fn drive(
        &self,
        messenger: &Messenger,
        side: &Arc<ClientSide>,
        ready: Arc<Barrier>,
    ) -> anyhow::Result<JobResult> {
        let mut conn = messenger.connect(self.addr, EntityType::OSD)?;
        // One round trip before the clock starts: the handshake is not measured.
        self.send(messenger, &mut conn, end_message(0)).await?;
        side.wait_end(self.options.timeout())
            .await
            .with_context(|| format!("no answer from the msgr server at {}", self.addr))?;
        side.reset();
        ready.wait().await;
        if self.case.mode == Mode::Rr && self.options.policy == PolicyArg::Lossless {
            return self.pump(conn, side).await;
        }
        let verify = self.options.verify;
        let mut stopper = Stopper::new(self.limit, self.case.size);
        let mut seq = 0;
        loop {
            if self.case.mode == Mode::Rr && !side.take_window(self.options.timeout()).await {
                if self.options.policy == PolicyArg::Lossless {
                    bail!(
                        "no echo for {:?} from {} (is it serving in echo mode?)",
                        self.options.timeout(),
                        self.addr
                    );
                }
                break;
            }
            if stopper.done(seq) {
                break;
            }
            let stamp = match self.case.mode {
                Mode::Rr => self.epoch.elapsed().as_nanos() as u64,
                Mode::Stream => 0,
            };
            let msg = data_message(seq, stamp, &self.filler, verify);
            self.send(messenger, &mut conn, msg).await?;
            seq += 1;
        }
        // A lossy session may have lost the end marker or its answer: ask again, on a new
        // session if need be (the server keys its counts by our address, not the session).
        let tries = match self.options.policy {
            PolicyArg::Lossless => 1,
            PolicyArg::Lossy => 3,
        };
        let mut answered = false;
        for _ in 0..tries {
            if !conn.is_connected() {
                conn = messenger.connect(self.addr, EntityType::OSD)?;
            }
            self.send(messenger, &mut conn, end_message(seq)).await?;
            if side.wait_end(self.options.timeout()).await.is_ok() {
                answered = true;
                break;
            }
        }
        if !answered && self.options.policy == PolicyArg::Lossless {
            bail!(
                "the msgr server at {} did not answer the end of the run",
                self.addr
            );
        }
        let integrity = side.integrity(seq, self.case.mode);
        let rtt = (self.case.mode == Mode::Rr).then(|| side.histogram());
        let stats = conn.stats();
        Ok(JobResult {
            messages: seq,
            integrity,
            rtt,
            session: Some(SessionCounts {
                faults: stats.faults,
                reconnects: stats.reconnects,
                resends: stats.resends,
            }),
        })
    }

    /// An rr run driven from the client's dispatcher: each echo sends the next message
    /// straight from fast dispatch, as a server replies, so no task handoff on the client side
    /// is added to the messenger's round trip. This task only primes the window and waits.
    async fn pump(&self, conn: Connection, side: &Arc<ClientSide>) -> anyhow::Result<JobResult> {
        side.start_pump(Pump {
            conn: conn.clone(),
            filler: self.filler.clone(),
            stopper: Stopper::new(self.limit, self.case.size),
            next: 0,
            finished: false,
        });
        for _ in 0..self.case.depth.max(1) {
            side.advance();
        }
        // A run may last long; `stalled` (in `run`) ends it if the server stops answering.
        while side.wait_end(ANSWER_TIMEOUT).await.is_err() {}
        let sent = side.pumped();
        let stats = conn.stats();
        Ok(JobResult {
            messages: sent,
            integrity: side.integrity(sent, Mode::Rr),
            rtt: Some(side.histogram()),
            session: Some(SessionCounts {
                faults: stats.faults,
                reconnects: stats.reconnects,
                resends: stats.resends,
            }),
        })
    }

    /// Sends; when a lossy session was reset, the message is lost (the counts say so) and the
    /// next one goes over a new session.
    async fn send(
        &self,
        messenger: &Messenger,
        conn: &mut Connection,
        msg: Message,
    ) -> anyhow::Result<()> {
        match conn.send(msg).await {
            Ok(()) => Ok(()),
            Err(_) if self.options.policy == PolicyArg::Lossy => {
                *conn = messenger.connect(self.addr, EntityType::OSD)?;
                Ok(())
            }
            Err(e) => Err(e).with_context(|| format!("sending to {}", self.addr)),
        }
    }
}

/// Resolves once `messenger` has moved no message, byte or ACK for [`STALL`].
async fn stalled(messenger: &Messenger) {
    let mut last = None;
    let mut since = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let t = messenger.stats().total;
        let now = Some((t.msgs_in, t.msgs_out, t.bytes_out, t.acks_in));
        if now != last {
            last = now;
            since = Instant::now();
        } else if since.elapsed() >= STALL {
            return;
        }
    }
}

/// A bench data message: the header in the front, the filler as data.
fn data_message(seq: u64, stamp: u64, filler: &Bytes, verify: bool) -> Message {
    let mut front = [0u8; HEADER_LEN];
    payload::put_header(&mut front, seq, stamp);
    let data = if verify {
        let mut data = vec![0u8; filler.len()];
        payload::fill(&mut data, seq);
        Bytes::from(data)
    } else {
        filler.clone()
    };
    Message::new(MSG_BENCH_DATA, Bytes::copy_from_slice(&front)).with_data(data)
}

/// The end marker of a job that sent `sent` messages.
fn end_message(sent: u64) -> Message {
    let mut front = [0u8; HEADER_LEN];
    payload::put_header(&mut front, sent, 0);
    Message::new(MSG_BENCH_END, Bytes::copy_from_slice(&front))
}

async fn start_client(options: &Options, side: Arc<ClientSide>) -> anyhow::Result<Messenger> {
    let kind = match options.policy {
        PolicyArg::Lossless => PolicyKind::LosslessClient,
        PolicyArg::Lossy => PolicyKind::LossyClient,
    };
    let mut config = MessengerConfig {
        bind_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        default_policy: PolicyConfig::new(kind),
        ..MessengerConfig::default()
    };
    (options.tune())(&mut config);
    Messenger::builder(EntityName::client(-1))
        .config(config)
        .dispatcher(side)
        .start()
        .await
        .context("starting a client messenger")
}

/// What a job's client messenger received.
#[derive(Debug)]
struct ClientState {
    tracker: SeqTracker,
    rtt: Histogram<u64>,
    ack: Option<(u64, Integrity)>,
}

/// The sending side of a dispatcher-driven rr run (see [`Job::pump`]).
struct Pump {
    conn: Connection,
    filler: Bytes,
    stopper: Stopper,
    next: u64,
    finished: bool,
}

/// The client's dispatcher: times echoes, refills the window, catches the end of the run.
struct ClientSide {
    epoch: Instant,
    verify: bool,
    depth: usize,
    pump: Mutex<Option<Pump>>,
    state: Mutex<ClientState>,
    window: Semaphore,
    ended: AtomicBool,
    end: Notify,
}

impl ClientSide {
    fn new(depth: usize, verify: bool, epoch: Instant) -> Arc<Self> {
        Arc::new(ClientSide {
            epoch,
            verify,
            depth,
            pump: Mutex::new(None),
            state: Mutex::new(ClientState {
                tracker: SeqTracker::default(),
                rtt: new_histogram(),
                ack: None,
            }),
            window: Semaphore::new(depth),
            ended: AtomicBool::new(false),
            end: Notify::new(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ClientState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn start_pump(&self, pump: Pump) {
        *self.pump.lock().unwrap_or_else(|e| e.into_inner()) = Some(pump);
    }

    /// Sends the next message of a dispatcher-driven run, or its end marker once the limit
    /// is reached.
    fn advance(&self) {
        let mut guard = self.pump.lock().unwrap_or_else(|e| e.into_inner());
        let Some(pump) = guard.as_mut() else {
            return;
        };
        if pump.finished {
            return;
        }
        if pump.stopper.done(pump.next) {
            pump.finished = true;
            let _ = pump.conn.queue(end_message(pump.next));
            return;
        }
        let stamp = self.epoch.elapsed().as_nanos() as u64;
        let msg = data_message(pump.next, stamp, &pump.filler, self.verify);
        pump.next += 1;
        let _ = pump.conn.queue(msg);
    }

    /// Messages a dispatcher-driven run has sent so far.
    fn pumped(&self) -> u64 {
        let guard = self.pump.lock().unwrap_or_else(|e| e.into_inner());
        guard.as_ref().map_or(0, |p| p.next)
    }

    /// Forgets the warm-up round trip.
    fn reset(&self) {
        let mut state = self.lock();
        state.tracker = SeqTracker::default();
        state.rtt.reset();
        state.ack = None;
        self.ended.store(false, Ordering::SeqCst);
        let missing = self.depth.saturating_sub(self.window.available_permits());
        self.window.add_permits(missing);
    }

    /// Takes a place in the rr window; `false` after `timeout` without one.
    async fn take_window(&self, timeout: Duration) -> bool {
        match tokio::time::timeout(timeout, self.window.acquire()).await {
            Ok(Ok(permit)) => {
                permit.forget();
                true
            }
            _ => false,
        }
    }

    /// Waits for the server's answer to an end marker.
    async fn wait_end(&self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        while !self.ended.load(Ordering::SeqCst) {
            if tokio::time::timeout_at(deadline, self.end.notified())
                .await
                .is_err()
            {
                bail!("no answer within {timeout:?}");
            }
        }
        Ok(())
    }

    fn histogram(&self) -> Histogram<u64> {
        self.lock().rtt.clone()
    }

    /// The faults of the run: the sink's counts, or the client's own over the echoes.
    fn integrity(&self, sent: u64, mode: Mode) -> Integrity {
        let state = self.lock();
        match (mode, state.ack) {
            (Mode::Stream, Some((_, integrity))) => integrity,
            (Mode::Stream, None) if state.tracker.received() == 0 => Integrity {
                lost: sent,
                ..Integrity::default()
            },
            _ => state.tracker.finish(sent),
        }
    }

    fn handle(&self, received: Received) {
        let msg = &received.msg;
        match msg.header.ty {
            MSG_BENCH_DATA => {
                let now = self.epoch.elapsed().as_nanos() as u64;
                let mut state = self.lock();
                match payload::header(&msg.front) {
                    Some((seq, stamp)) => {
                        state.tracker.observe(seq);
                        state
                            .rtt
                            .saturating_record(now.saturating_sub(stamp).max(1));
                        if self.verify && !payload::check(&msg.data, seq) {
                            state.tracker.corrupted();
                        }
                    }
                    None => state.tracker.corrupted(),
                }
                drop(state);
                self.window.add_permits(1);
                self.advance();
            }
            MSG_BENCH_END => self.finish(None),
            MSG_BENCH_END_ACK => {
                let mut front = &msg.front[..];
                if front.len() >= 40 {
                    let received = front.get_u64_le();
                    let integrity = Integrity {
                        lost: front.get_u64_le(),
                        duplicated: front.get_u64_le(),
                        reordered: front.get_u64_le(),
                        corrupted: front.get_u64_le(),
                    };
                    self.finish(Some((received, integrity)));
                }
            }
            _ => {}
        }
    }

    fn finish(&self, ack: Option<(u64, Integrity)>) {
        if ack.is_some() {
            self.lock().ack = ack;
        }
        self.ended.store(true, Ordering::SeqCst);
        self.end.notify_one();
    }
}

impl Dispatcher for ClientSide {
    /// A lossy session failed: whatever was in flight is gone, so the window opens again.
    fn handle_reset(&self, _conn: &Connection) {
        let missing = self.depth.saturating_sub(self.window.available_permits());
        self.window.add_permits(missing);
    }

    fn dispatch(&self, msg: Received) -> BoxFuture<'_, Dispatched> {
        self.handle(msg);
        Box::pin(async { Dispatched::Handled })
    }

    fn can_fast_dispatch(&self, _msg: &Received) -> bool {
        true
    }

    fn fast_dispatch(&self, msg: Received) {
        self.handle(msg);
    }
}

/// Opens `n` idle connections to a `msgr serve` child process and measures the memory the
/// server holds per connection (and this process, the clients' side).
pub async fn idle_connections(n: usize) -> anyhow::Result<IdleMemory> {
    let exe = std::env::current_exe().context("finding the msgr binary")?;
    let mut child = tokio::process::Command::new(exe)
        .args(["serve", "--bind", "127.0.0.1:0", "--mode", "sink"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("starting msgr serve")?;
    let pid = child.id().context("msgr serve exited at once")?;
    let stdout = child.stdout.take().context("msgr serve has no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let first = tokio::time::timeout(ANSWER_TIMEOUT, lines.next_line())
        .await
        .context("msgr serve did not print its address")??
        .context("msgr serve exited before printing its address")?;
    let addr: EntityAddr = first
        .trim()
        .parse()
        .with_context(|| format!("msgr serve printed {first:?}, not its address"))?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let server_before = crate::rss::rss_of_pid(pid).unwrap_or(0);
    let client_before = crate::rss::current_rss_bytes().unwrap_or(0);
    let start = Instant::now();
    let mut messengers = Vec::with_capacity(n);
    let mut errors = 0;
    let options = Options {
        server: Some(addr),
        policy: PolicyArg::Lossless,
        verify: false,
        inject: msgr_core::InjectConfig::default(),
    };
    for batch in 0..n.div_ceil(50) {
        let mut opening = JoinSet::new();
        for _ in batch * 50..n.min(batch * 50 + 50) {
            let options = options.clone();
            opening.spawn(async move { open_idle(&options, addr).await });
        }
        while let Some(opened) = opening.join_next().await {
            match opened? {
                Ok(m) => messengers.push(m),
                Err(e) => {
                    errors += 1;
                    tracing::warn!("idle connection failed: {e:#}");
                }
            }
        }
    }
    let seconds_to_open = start.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let server_after = crate::rss::rss_of_pid(pid).unwrap_or(0);
    let client_after = crate::rss::current_rss_bytes().unwrap_or(0);
    for m in &messengers {
        m.shutdown();
    }
    for m in &messengers {
        m.wait().await;
    }
    let _ = child.kill().await;
    let opened = messengers.len().max(1) as u64;
    Ok(IdleMemory {
        connections: n,
        errors,
        seconds_to_open,
        server_rss_before_bytes: server_before,
        server_rss_after_bytes: server_after,
        server_bytes_per_connection: server_after.saturating_sub(server_before) / opened,
        client_bytes_per_connection: client_after.saturating_sub(client_before) / opened,
    })
}

/// A client messenger with one connection that has made one round trip.
async fn open_idle(options: &Options, addr: EntityAddr) -> anyhow::Result<Messenger> {
    let side = ClientSide::new(1, false, Instant::now());
    let messenger = start_client(options, side.clone()).await?;
    let conn = messenger.connect(addr, EntityType::OSD)?;
    conn.send(end_message(0)).await?;
    if let Err(e) = side.wait_end(options.timeout()).await {
        messenger.shutdown();
        return Err(e);
    }
    Ok(messenger)
}
