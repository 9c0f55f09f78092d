//! `msgr-netns-peer`: one side of the fault tests between hosts (`tests/tests/netns_faults.rs`), run by them inside a
//! network namespace (see `msgr_tests::netns`). It prints what happens as [`Line`]s on standard output, one per line,
//! takes commands on standard input, and exits when standard input closes. Run by hand for debugging:
//!
//! ```text
//! msgr-netns-peer server BIND_ADDR NONCE [READ_TIMEOUT_MS]
//!     An osd.0 messenger, stateful_server toward clients (as `msgr serve`; default configuration except the read
//!     timeout when given), echoing every message. Prints
//!     `listening ADDR`, then `recv SEQ` per sequence-numbered message (checked: none lost, duplicated or
//!     reordered within a session) and `event NAME` per dispatcher event.
//! msgr-netns-peer client SERVER_ADDR NONCE [READ_TIMEOUT_MS]
//!     A client.-1 messenger, lossless_client toward the server (default configuration except the read timeout
//!     when given), one session to SERVER_ADDR with NONCE. Prints `reply SEQ` per echo (checked likewise; a
//!     remote reset forgives what it discarded), `event NAME`, `state NAME` on every session state change.
//!     Commands: `stream MS` sends messages 1, 2, ... every MS milliseconds until `stop`, which answers
//!     `sent N`; `send` sends the next one and answers `sent N`; `sent` answers `sent N` with the last number
//!     sent; `stats` answers `stats faults=F reconnects=R resends=S`.
//! ```
//!
//! `RUST_LOG` sets what the messenger logs on standard error.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use msgr_core::{
    BoxFuture, ConnId, Connection, Dispatched, Dispatcher, Messenger, MessengerConfig,
    PolicyConfig, PolicyKind, Received,
};
use msgr_tests::netns::{seq_message, seq_of, Line, PeerStats, SeqCheck, MSG_SEQ};
use msgr_wire::{EntityAddr, EntityName, EntityType};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

fn main() -> ExitCode {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("msgr-netns-peer: no runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("msgr-netns-peer: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: &[String]) -> anyhow::Result<()> {
    let arg = |i: usize, what: &str| {
        args.get(i).with_context(|| {
            format!(
                "missing {what}; usage: server BIND NONCE [READ_TIMEOUT_MS] | client SERVER NONCE [READ_TIMEOUT_MS]"
            )
        })
    };
    let role = arg(0, "role")?.as_str();
    let addr: SocketAddr = arg(1, "address")?.parse().context("address")?;
    let nonce: u32 = arg(2, "nonce")?.parse().context("nonce")?;
    let read_timeout = match args.get(3) {
        Some(ms) => Some(Duration::from_millis(ms.parse().context("read timeout")?)),
        None => None,
    };
    match role {
        "server" => server(addr, nonce, read_timeout).await,
        "client" => client(EntityAddr::new(addr, nonce), read_timeout).await,
        other => bail!("unknown role {other:?}"),
    }
}

/// Prints one output line. A closed standard output (the test is gone) is not an error here: standard input
/// closes too, which ends the program.
fn say(line: Line) {
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

/// The dispatcher of both sides: checks and reports sequence-numbered messages, echoes them when `echo`, reports
/// events.
struct Peer {
    /// Server side: echo each message; client side: report it as a reply.
    echo: bool,
    checks: Mutex<HashMap<ConnId, SeqCheck>>,
}

impl Peer {
    fn new(echo: bool) -> Arc<Self> {
        Arc::new(Peer {
            echo,
            checks: Mutex::new(HashMap::new()),
        })
    }

    fn event(&self, conn: &Connection, name: &str) {
        if matches!(name, "reset" | "remote_reset") {
            if let Ok(mut checks) = self.checks.lock() {
                checks.entry(conn.id()).or_default().forgive();
            }
        }
        say(Line::Event(name.to_owned()));
    }

    fn take(&self, received: &Received) {
        let seq = match seq_of(&received.msg) {
            Ok(seq) => seq,
            Err(e) => return say(Line::Error(e)),
        };
        let verdict = match self.checks.lock() {
            Ok(mut checks) => checks.entry(received.conn.id()).or_default().take(seq),
            Err(_) => Err("sequence check lock poisoned".to_owned()),
        };
        if let Err(e) = verdict {
            return say(Line::Error(e));
        }
        if !self.echo {
            return say(Line::Reply(seq));
        }
        say(Line::Recv(seq));
        let msg = &received.msg;
        let echo = msgr_wire::Message::new(MSG_SEQ, msg.front.clone()).with_data(msg.data.clone());
        if let Err(e) = received.conn.queue(echo) {
            say(Line::Error(format!("echo of {seq} not queued: {e}")));
        }
    }
}

impl Dispatcher for Peer {
    fn dispatch(&self, msg: Received) -> BoxFuture<'_, Dispatched> {
        self.take(&msg);
        Box::pin(async { Dispatched::Handled })
    }

    fn handle_connect(&self, conn: &Connection) {
        self.event(conn, "connect");
    }

    fn handle_accept(&self, conn: &Connection) {
        self.event(conn, "accept");
    }

    fn handle_reset(&self, conn: &Connection) {
        self.event(conn, "reset");
    }

    fn handle_remote_reset(&self, conn: &Connection) {
        self.event(conn, "remote_reset");
    }

    fn handle_refused(&self, conn: &Connection) {
        self.event(conn, "refused");
    }
}

/// Lines of standard input, read by a thread of their own, until it closes (the channel then ends).
fn commands() -> mpsc::UnboundedReceiver<String> {
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

async fn server(
    bind: SocketAddr,
    nonce: u32,
    read_timeout: Option<Duration>,
) -> anyhow::Result<()> {
    let mut config = MessengerConfig {
        bind_addr: bind,
        nonce: Some(nonce),
        default_policy: PolicyConfig::new(PolicyKind::StatefulServer),
        ..MessengerConfig::default()
    };
    if let Some(t) = read_timeout {
        config.pipe.read_timeout = t;
    }
    let messenger = Messenger::builder(EntityName::osd(0))
        .config(config)
        .dispatcher(Peer::new(true))
        .start()
        .await
        .with_context(|| format!("starting a messenger on {bind}"))?;
    say(Line::Listening(messenger.addr().addr));
    let mut stdin = commands();
    while let Some(line) = stdin.recv().await {
        eprintln!("server: ignored command {line:?}");
    }
    messenger.shutdown();
    messenger.wait().await;
    Ok(())
}

async fn client(server: EntityAddr, read_timeout: Option<Duration>) -> anyhow::Result<()> {
    let mut config = MessengerConfig::default();
    if let Some(t) = read_timeout {
        config.pipe.read_timeout = t;
    }
    let messenger = Messenger::builder(EntityName::client(EntityName::NEW))
        .config(config)
        .dispatcher(Peer::new(false))
        .start()
        .await
        .context("starting the client messenger")?;
    let conn = messenger.connect_lazy(server, EntityType::OSD)?;
    let mut states = conn.watch_state();
    tokio::spawn(async move {
        loop {
            let state = *states.borrow_and_update();
            say(Line::State(format!("{state:?}")));
            if states.changed().await.is_err() {
                break;
            }
        }
    });
    let sent = Arc::new(AtomicU64::new(0));
    let mut stream: Option<(Arc<AtomicBool>, JoinHandle<()>)> = None;
    let mut stdin = commands();
    while let Some(line) = stdin.recv().await {
        let (word, rest) = line.split_once(' ').unwrap_or((&line, ""));
        match word {
            "stream" if stream.is_none() => {
                let every = Duration::from_millis(rest.parse().context("stream MS")?);
                let stop = Arc::new(AtomicBool::new(false));
                let task =
                    tokio::spawn(send_every(conn.clone(), every, sent.clone(), stop.clone()));
                stream = Some((stop, task));
            }
            "stop" => {
                if let Some((stop, task)) = stream.take() {
                    stop.store(true, Ordering::SeqCst);
                    task.await?;
                }
                say(Line::Sent(sent.load(Ordering::SeqCst)));
            }
            "send" => {
                let seq = sent.load(Ordering::SeqCst) + 1;
                conn.send(seq_message(seq)).await?;
                sent.store(seq, Ordering::SeqCst);
                say(Line::Sent(seq));
            }
            "sent" => say(Line::Sent(sent.load(Ordering::SeqCst))),
            "stats" => {
                let s = conn.stats();
                say(Line::Stats(PeerStats {
                    faults: s.faults,
                    reconnects: s.reconnects,
                    resends: s.resends,
                }));
            }
            _ => say(Line::Error(format!("unknown command {line:?}"))),
        }
    }
    messenger.shutdown();
    messenger.wait().await;
    Ok(())
}

/// Sends the next sequence-numbered message every `every` until `stop`; `sent` is the last number sent.
async fn send_every(
    conn: Connection,
    every: Duration,
    sent: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !stop.load(Ordering::SeqCst) {
        tick.tick().await;
        let seq = sent.load(Ordering::SeqCst) + 1;
        if let Err(e) = conn.send(seq_message(seq)).await {
            return say(Line::Error(format!("send of {seq}: {e}")));
        }
        sent.store(seq, Ordering::SeqCst);
    }
}
