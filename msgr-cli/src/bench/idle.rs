//! The many-sessions case (`--idle-connections N`): N sessions held open on one `msgr serve`
//! child process while one more session runs depth-1 round trips.
//!
//! Each idle session has a client messenger of its own without a listener
//! (`MessengerBuilder::no_listener`, as Ceph's clients have none): no port, no descriptor but
//! its session's socket, a blank address with a nonce of its own. The nonces are handed out
//! here, distinct: random nonces of 10,000 messengers that share one IP and port 0 would
//! collide in about one run in 40, and the server would take the second session for a
//! restart of the first. Each session is `lossless_client` and makes one round trip (an end
//! marker echoed); up to [`OPEN_WINDOW`] open at once.
//!
//! ```text
//!  serve A (the idle sessions' server), serve B (no other session)
//!  N idle sessions to A, OPEN_WINDOW at a time -> seconds to open, failures, RSS per session
//!  rounds x { probe to B (single), probe to A (loaded) } -> p50 each, p50_vs_single
//! ```
//!
//! The probe (one more session with its own client messenger, depth 1) alternates between
//! the two servers round by round, as the bench's transports take turns, so both meet the same
//! machine weather (this 2-core machine is shared): `p50_vs_single` is the median of the
//! round-by-round ratios. Both probes run in this process beside the N client messengers; what
//! differs is the server's N sessions.
//!
//! Before anything, this process's soft `RLIMIT_NOFILE` is raised to its hard limit (the child
//! inherits it): each session holds a descriptor on each side. Memory per session is each
//! process's resident-set growth from before the first idle session to after the last one
//! opened, divided by the sessions that opened.
//!
//! What it does not do: move traffic on the idle sessions after their first round trip, or
//! keep the probe's figures out of the run table (they are in [`IdleMemory`] only).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use msgr_core::{
    BoxFuture, Dispatched, Dispatcher, Messenger, MessengerConfig, PolicyConfig, PolicyKind,
    Received,
};
use msgr_wire::{EntityAddr, EntityName, EntityType};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::Notify;
use tokio::task::JoinSet;

use super::msgr::{end_message, Options, ANSWER_TIMEOUT};
use super::plan::{Case, Limit};
use super::report::{IdleMemory, IdleProbe};
use crate::serve::MSG_BENCH_END;

/// Sessions opening at once: enough to keep both processes busy on a few cores, few enough
/// to stay inside the server's listen backlog (512) with room to spare.
pub const OPEN_WINDOW: usize = 128;

/// What the many-sessions case runs: how many idle sessions, and the probe's round trips.
#[derive(Debug, Clone)]
pub struct IdlePlan {
    /// Idle sessions to open.
    pub sessions: usize,
    /// The depth-1 round-trip case the probe runs (one session).
    pub probe: Case,
    /// How long each probe run lasts.
    pub limit: Limit,
    /// Probe rounds: each runs the probe alone, then beside the idle sessions.
    pub rounds: usize,
    /// The messenger options of the probe (its server is set here).
    pub options: Options,
}

/// Runs the case (see the module docs): against `plan.options.server` when it is set (a
/// remote `msgr serve --mode echo`, whose memory is not measured: its figures read 0; the
/// probe's single rounds then run before the idle sessions open), else against `msgr serve`
/// child processes.
pub async fn idle_connections(plan: IdlePlan) -> anyhow::Result<IdleMemory> {
    let nofile_limit = raise_nofile_limit();
    let mut children = Vec::new();
    let (addr, pid, empty) = match plan.options.server {
        Some(addr) => (addr, None, None),
        None => {
            let (loaded, addr) = start_server().await?;
            let (empty, empty_addr) = start_server().await?;
            let pid = loaded.id();
            children.extend([loaded, empty]);
            (addr, pid, Some(empty_addr))
        }
    };
    let server_rss = || pid.and_then(crate::rss::rss_of_pid).unwrap_or(0);
    let probe = |server: EntityAddr| Options {
        server: Some(server),
        ..plan.options.clone()
    };
    let mut single = Vec::new();
    let mut loaded = Vec::new();
    if empty.is_none() {
        for _ in 0..plan.rounds {
            single.push(super::msgr::run(plan.probe, plan.limit, &probe(addr)).await?);
        }
    }

    let server_before = server_rss();
    let client_before = crate::rss::current_rss_bytes().unwrap_or(0);
    let start = Instant::now();
    let (messengers, errors) = open_all(plan.sessions, addr).await;
    let seconds_to_open = start.elapsed().as_secs_f64();
    let server_after = server_rss();
    let client_after = crate::rss::current_rss_bytes().unwrap_or(0);

    let mut probed = Ok(());
    for _ in 0..plan.rounds {
        if let Some(empty) = empty {
            match super::msgr::run(plan.probe, plan.limit, &probe(empty)).await {
                Ok(o) => single.push(o),
                Err(e) => probed = Err(e),
            }
        }
        match super::msgr::run(plan.probe, plan.limit, &probe(addr)).await {
            Ok(o) => loaded.push(o),
            Err(e) => probed = Err(e),
        }
        if probed.is_err() {
            break;
        }
    }
    for m in &messengers {
        m.shutdown();
    }
    for m in &messengers {
        m.wait().await;
    }
    for mut c in children {
        let _ = c.kill().await;
    }
    probed?;
    let opened = messengers.len().max(1) as u64;
    Ok(IdleMemory {
        connections: plan.sessions,
        errors,
        seconds_to_open,
        nofile_limit,
        server_rss_before_bytes: server_before,
        server_rss_after_bytes: server_after,
        server_bytes_per_connection: server_after.saturating_sub(server_before) / opened,
        client_bytes_per_connection: client_after.saturating_sub(client_before) / opened,
        probe: IdleProbe::new(plan.probe, &single, &loaded),
    })
}

/// A `msgr serve --mode echo` child process on loopback, and its address.
async fn start_server() -> anyhow::Result<(tokio::process::Child, EntityAddr)> {
    let exe = std::env::current_exe().context("finding the msgr binary")?;
    let mut child = tokio::process::Command::new(exe)
        .args(["serve", "--bind", "127.0.0.1:0", "--mode", "echo"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("starting msgr serve")?;
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
    Ok((child, addr))
}

/// Opens `n` idle sessions to `addr`, [`OPEN_WINDOW`] at a time: the client messengers of
/// those that opened, and how many failed (each failure is logged).
async fn open_all(n: usize, addr: EntityAddr) -> (Vec<Messenger>, usize) {
    let base: u32 = rand::random();
    let mut messengers = Vec::with_capacity(n);
    let mut errors = 0;
    let mut opening = JoinSet::new();
    let mut next = 0;
    loop {
        while next < n && opening.len() < OPEN_WINDOW {
            // Distinct odd nonces (see the module docs); a wrap after 2^31 sessions.
            let nonce = base.wrapping_add(2 * next as u32) | 1;
            opening.spawn(open_idle(addr, nonce));
            next += 1;
        }
        let Some(opened) = opening.join_next().await else {
            break;
        };
        match opened.map_err(anyhow::Error::from).and_then(|r| r) {
            Ok(m) => messengers.push(m),
            Err(e) => {
                errors += 1;
                tracing::warn!("idle connection failed: {e:#}");
            }
        }
    }
    (messengers, errors)
}

/// A client messenger without a listener, with one session to `addr` that has made one
/// round trip.
async fn open_idle(addr: EntityAddr, nonce: u32) -> anyhow::Result<Messenger> {
    let side = Arc::new(EndWatch::default());
    let config = MessengerConfig {
        nonce: Some(nonce),
        default_policy: PolicyConfig::new(PolicyKind::LosslessClient),
        ..MessengerConfig::default()
    };
    let messenger = Messenger::builder(EntityName::client(-1))
        .config(config)
        .no_listener()
        .dispatcher(side.clone())
        .start()
        .await
        .context("starting a client messenger")?;
    let round_trip = async {
        let conn = messenger.connect_lazy(addr, EntityType::OSD)?;
        conn.send(end_message(0)).await?;
        tokio::time::timeout(ANSWER_TIMEOUT, side.wait())
            .await
            .with_context(|| format!("no echo from {addr} within {ANSWER_TIMEOUT:?}"))
    };
    match round_trip.await {
        Ok(()) => Ok(messenger),
        Err(e) => {
            messenger.shutdown();
            Err(e)
        }
    }
}

/// An idle session's dispatcher: notes the echoed end marker, nothing else (no histogram,
/// no tracker: the memory measured is the messenger's).
#[derive(Default)]
struct EndWatch {
    seen: AtomicBool,
    notify: Notify,
}

impl EndWatch {
    /// Returns once the end marker came back.
    async fn wait(&self) {
        loop {
            let notified = self.notify.notified();
            if self.seen.load(Ordering::Acquire) {
                return;
            }
            notified.await;
        }
    }

    fn handle(&self, msg: &Received) {
        if msg.msg.header.ty == MSG_BENCH_END {
            self.seen.store(true, Ordering::Release);
            self.notify.notify_waiters();
        }
    }
}

impl Dispatcher for EndWatch {
    fn dispatch(&self, msg: Received) -> BoxFuture<'_, Dispatched> {
        self.handle(&msg);
        Box::pin(async { Dispatched::Handled })
    }

    fn can_fast_dispatch(&self, _msg: &Received) -> bool {
        true
    }

    fn fast_dispatch(&self, msg: Received) {
        self.handle(&msg);
    }
}

/// Raises this process's soft `RLIMIT_NOFILE` to its hard limit (children inherit it);
/// returns the soft limit now, `None` when it cannot be read.
pub fn raise_nofile_limit() -> Option<u64> {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        let old = limit.current;
        limit.current = limit.maximum;
        match setrlimit(Resource::Nofile, limit) {
            Ok(()) => tracing::debug!(?old, new = ?limit.current, "raised RLIMIT_NOFILE"),
            Err(e) => tracing::warn!(error = %e, "cannot raise RLIMIT_NOFILE"),
        }
    }
    getrlimit(Resource::Nofile).current
}
