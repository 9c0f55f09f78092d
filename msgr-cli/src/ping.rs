//! `msgr ping`: complete the msgr v1 handshake with a daemon and time KEEPALIVE2 round trips.
//!
//! ```text
//! $ msgr ping v1:127.0.0.1:6789 --count 3
//! PING v1:127.0.0.1:6789: handshake with mon.0 in 0.412 ms
//! keepalive2 reply from v1:127.0.0.1:6789: seq=1 time=0.081 ms
//! ...
//! --- v1:127.0.0.1:6789 msgr ping statistics ---
//! 3 sent, 3 received, 0% lost, time 2003 ms
//! rtt min/avg/max/p99 = 0.071/0.080/0.091/0.091 ms
//! ```
//!
//! The client uses the lossy client policy (as librados toward OSDs), and a fault of the
//! session ends the ping, whatever the peer's policy would do next: a session lost (peer
//! killed, socket closed) or reset by the peer is said so, the ping out then counts as lost,
//! the summary is printed, and the exit status is 1. A refused handshake (BADPROTOVER,
//! FEATURES, BADAUTHORIZER, a peer at another address) ends it as soon as the peer answers,
//! with that answer in the message. As `ping -c N`, `--count N` exits 1 when fewer than N
//! keepalives were answered; without it, a run where none was answered fails. Errors are one
//! line on standard error (`msgr ping: ...`), exit status 1.
//!
//! With cephx, as `ceph`'s tools: given any of `-c/--conf` (a ceph.conf: `mon_host`,
//! `keyring`, `auth_client_required`, from `[global]`, `[client]`, `[client.NAME]`),
//! `-k/--keyring`, `-m/--mon`, the ping first authenticates with a mon as `-n/--name`
//! (default `client.admin`) through msgr-monc's `MonClient` (cephx when a key is found, else
//! `none` if allowed), within `--timeout`, then names its messenger `client.GLOBAL_ID` (as
//! librados; a daemon name such as `osd.3` is kept) and
//! presents an authorizer from the client's ticket for the daemon's service (answering
//! CHALLENGE_AUTHORIZER, checking the reply, signing messages), so an OSD of a cephx cluster
//! accepts it:
//!
//! ```text
//! $ msgr ping v1:127.0.0.1:6800/4242 -c ceph.conf --count 3
//! AUTH client.admin with mon v1:127.0.0.1:40000/0 in 4.210 ms: global id 4123 (cephx)
//! PING v1:127.0.0.1:6800/4242: handshake with a osd in 1.520 ms
//! ...
//! ```
//!
//! A refusal by the mon (wrong key, unknown entity) ends the ping at once with that error.
//! Without these options nothing is read and no mon is asked: the messenger is `TYPE.-1` (or
//! `TYPE.N` for a numeric name) and sends no authorizer. Not here: the ceph.conf's `ms_*`
//! options for the ping's own messenger (the mon client takes them), `$CEPH_CONF` and the
//! default conf search (a plain `msgr ping ADDR` reads no file).

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use clap::Args;
use msgr_core::{
    Authorizer, BoxFuture, Connection, Dispatched, Dispatcher, Messenger, MessengerConfig,
    PolicyConfig, PolicyKind, Received,
};
use msgr_monc::{MonClient, MonClientConfig};
use msgr_wire::{EntityAddr, EntityName, EntityType, Timespec};
use tokio::sync::Notify;

use crate::bench::plan::parse_duration;

/// Options of `msgr ping`.
#[derive(Debug, Clone, Args)]
pub struct PingArgs {
    /// The daemon: `v1:HOST:PORT` (HOST may be a name; `v1:` and a `/NONCE` are optional),
    /// `v2:HOST:PORT[/NONCE]` for msgr2 (a daemon other than a mon refuses a connection that
    /// does not name its nonce, as its osdmap entry does), or an address vector
    /// `[v2:HOST:PORT,v1:HOST:PORT]` (its v2 entry).
    pub addr: String,
    /// Stop after this many replies (or timeouts); default: until Ctrl-C.
    #[arg(long)]
    pub count: Option<u64>,
    /// Time between keepalives: seconds, or with a suffix (200ms).
    #[arg(long, short = 'i', default_value = "1", value_parser = parse_duration)]
    pub interval: Duration,
    /// How long to wait for the handshake and for each reply (and, with `-c`/`-k`/`-m`, for a
    /// mon to authenticate with).
    #[arg(long, short = 'W', default_value = "5", value_parser = parse_duration)]
    pub timeout: Duration,
    /// The daemon's entity type (mon, osd, mds, mgr): it decides the protocol version offered
    /// in the handshake. Default: mon on port 6789, osd elsewhere (as `msgr serve`).
    #[arg(long)]
    pub peer_type: Option<String>,
    /// Who to authenticate as with `-c`/`-k`/`-m` (TYPE.ID); its type (and a numeric ID) name
    /// the messenger otherwise.
    #[arg(long, short = 'n', default_value = "client.admin")]
    pub name: String,
    /// A ceph.conf (mon_host, keyring, auth_client_required): authenticate with a mon first.
    #[arg(long, short = 'c')]
    pub conf: Option<PathBuf>,
    /// The keyring holding the name's key (instead of the conf's `keyring`).
    #[arg(long, short = 'k')]
    pub keyring: Option<PathBuf>,
    /// The mon(s), as mon_host (v1:IP:PORT, v2:IP:PORT, comma-separated; instead of the
    /// conf's mon_host).
    #[arg(long = "mon", short = 'm')]
    pub mon: Option<String>,
    /// msgr2 (a `v2:` address): the connection mode to offer, crc or secure (secure needs
    /// cephx: `-c`/`-k`/`-m`) [default: Ceph's order, crc then secure; secure then crc to a
    /// mon].
    #[arg(long, value_enum)]
    pub con_mode: Option<crate::ceph_opts::ConModeArg>,
}

/// Runs `msgr ping`; on failure prints one line (`msgr ping: ...`) and exits 1.
pub fn run(args: PingArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let result = runtime.block_on(ping(args));
    drop(runtime);
    let _ = std::io::stdout().flush();
    if let Err(e) = result {
        eprintln!("msgr ping: {e:#}");
        std::process::exit(1);
    }
    Ok(())
}

/// What the handshake came to.
const PENDING: u8 = 0;
const CONNECTED: u8 = 1;
const REFUSED: u8 = 2;
const RESET: u8 = 3;

/// The ping's dispatcher: only connection events matter.
#[derive(Default)]
struct Events {
    state: AtomicU8,
    changed: Notify,
}

impl Events {
    fn set(&self, state: u8) {
        let _ = self
            .state
            .compare_exchange(PENDING, state, Ordering::SeqCst, Ordering::SeqCst);
        if state == RESET {
            self.state.store(RESET, Ordering::SeqCst);
        }
        self.changed.notify_waiters();
    }
}

impl Dispatcher for Events {
    fn dispatch(&self, _msg: Received) -> BoxFuture<'_, Dispatched> {
        Box::pin(async { Dispatched::Handled })
    }
    fn handle_connect(&self, _conn: &Connection) {
        self.set(CONNECTED);
    }
    fn handle_refused(&self, _conn: &Connection) {
        self.set(REFUSED);
    }
    fn handle_reset(&self, _conn: &Connection) {
        self.set(RESET);
    }
    fn handle_remote_reset(&self, _conn: &Connection) {
        self.set(RESET);
    }
}

/// The daemon refused our handshake (BADPROTOVER and the like): the peer type offered may
/// be wrong. `reason` is the peer's answer (`refused by ADDR: BADPROTOVER (...)`).
#[derive(Debug)]
struct Refused {
    peer_type: EntityType,
    reason: String,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (offered as peer type {})",
            self.reason, self.peer_type
        )
    }
}

impl std::error::Error for Refused {}

async fn ping(args: PingArgs) -> anyhow::Result<()> {
    let target = crate::peer::resolve(&args.addr, args.timeout).await?;
    let auth_name: msgr_auth::EntityName = args
        .name
        .parse()
        .with_context(|| format!("{:?} is not an entity name (TYPE.ID)", args.name))?;
    let Some(config) = mon_options(&args)? else {
        return ping_types(&args, target, unauthenticated_name(&auth_name)?, None).await;
    };
    let client = MonClient::new(config).await?;
    let result = async {
        let mon = authenticate(&client, &auth_name).await?;
        // A client is named after its global id (librados' `set_myname`); a daemon keeps its own.
        let name = if auth_name.ty == msgr_auth::ENTITY_CLIENT {
            let id = i64::try_from(client.global_id()).context("global id out of range")?;
            EntityName::new(EntityType::CLIENT, id)
        } else {
            unauthenticated_name(&auth_name)?
        };
        tracing::debug!(%name, %mon, "authenticated");
        ping_types(&args, target, name, Some(client.authorizer())).await
    }
    .await;
    client.shutdown().await;
    result
}

/// The mon client's configuration when any of `-c`, `-k`, `-m` is given (else `None`: no
/// authentication), as `msgr mon-command` reads them (`ceph_opts`); `--timeout` bounds the
/// hunt for a mon.
fn mon_options(args: &PingArgs) -> anyhow::Result<Option<MonClientConfig>> {
    if args.conf.is_none() && args.keyring.is_none() && args.mon.is_none() {
        return Ok(None);
    }
    let mut config = crate::ceph_opts::mon_client_config(
        &args.name,
        args.conf.as_deref(),
        args.keyring.as_deref(),
        args.mon.as_deref(),
    )?;
    config.options.mount_timeout = args.timeout;
    crate::ceph_opts::apply_con_mode(&mut config.messenger, args.con_mode);
    Ok(Some(config))
}

/// Authenticates `client` and prints the `AUTH` line; the mon that answered. An error is
/// one line naming the entity and the mon's answer (EACCES for a wrong key).
async fn authenticate(client: &MonClient, name: &msgr_auth::EntityName) -> anyhow::Result<String> {
    let start = Instant::now();
    client
        .authenticate()
        .await
        .map_err(|e| anyhow::anyhow!("authenticating with the mon: {e}"))?;
    let took = start.elapsed();
    let mon = client
        .current_mon()
        .await
        .map_or_else(|| "?".to_owned(), |m| EntityAddr::new(m, 0).to_string());
    let method = match client.auth_methods().first() {
        Some(&msgr_auth::CEPH_AUTH_CEPHX) => "cephx",
        _ => "none",
    };
    println!(
        "AUTH {name} with mon {mon} in {:.3} ms: global id {} ({method})",
        took.as_secs_f64() * 1e3,
        client.global_id()
    );
    Ok(mon)
}

/// The entity type of `name` for the messenger (client, osd, ...).
fn messenger_type(name: &msgr_auth::EntityName) -> anyhow::Result<EntityType> {
    msgr_auth::entity_type_name(name.ty)
        .and_then(|t| t.parse().ok())
        .with_context(|| format!("{name}: not an entity type the messenger knows"))
}

/// The messenger's name without authentication: `TYPE.N` for a numeric id, else `TYPE.-1`
/// (Ceph's name before a mon gives a client its global id).
fn unauthenticated_name(name: &msgr_auth::EntityName) -> anyhow::Result<EntityName> {
    let num = name.id.parse::<i64>().unwrap_or(-1);
    Ok(EntityName::new(messenger_type(name)?, num))
}

/// Tries the candidate peer types in turn (see [`ping_as`]) until one is not refused.
async fn ping_types(
    args: &PingArgs,
    target: EntityAddr,
    name: EntityName,
    authorizer: Option<Arc<dyn Authorizer>>,
) -> anyhow::Result<()> {
    // The peer type decides the protocol version offered (v1) or the auth mode (msgr2: mon
    // mode to a mon). Unless told, try the likely one first (mon on 6789 and 3300, osd
    // elsewhere, as `msgr serve`), then the others.
    let candidates: Vec<EntityType> = match &args.peer_type {
        Some(ty) => vec![ty
            .parse()
            .with_context(|| format!("{ty:?} is not an entity type (mon, osd, mds, mgr)"))?],
        None if matches!(target.addr.port(), 6789 | 3300) => vec![
            EntityType::MON,
            EntityType::OSD,
            EntityType::MDS,
            EntityType::MGR,
        ],
        None => vec![
            EntityType::OSD,
            EntityType::MON,
            EntityType::MDS,
            EntityType::MGR,
        ],
    };
    let mut refused: Vec<Refused> = Vec::new();
    for peer_type in candidates {
        match ping_as(args, target, name, peer_type, authorizer.clone()).await {
            Err(e) => match e.downcast::<Refused>() {
                Ok(r) => refused.push(r),
                Err(e) => return Err(e),
            },
            ok => return ok,
        }
    }
    if let [only] = &refused[..] {
        if args.peer_type.is_some() {
            bail!(
                "{only} (the peer type sets the protocol version: try another --peer-type, \
                 or none to try them all)"
            );
        }
    }
    let tried: Vec<String> = refused.iter().map(ToString::to_string).collect();
    bail!(
        "{target}: the daemon refused the handshake for every peer type tried; \
         is it a msgr v1 daemon that accepts clients?\n  {}",
        tried.join("\n  ")
    )
}

/// One attempt with its own client messenger, offering `peer_type`.
async fn ping_as(
    args: &PingArgs,
    target: EntityAddr,
    name: EntityName,
    peer_type: EntityType,
    authorizer: Option<Arc<dyn Authorizer>>,
) -> anyhow::Result<()> {
    let events = Arc::new(Events::default());
    let bind = if target.addr.is_ipv4() {
        SocketAddr::from(([0, 0, 0, 0], 0))
    } else {
        SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0))
    };
    let mut config = MessengerConfig {
        bind_addr: bind,
        default_policy: PolicyConfig::new(PolicyKind::LossyClient),
        ..MessengerConfig::default()
    };
    config.pipe.handshake_timeout = args.timeout;
    crate::ceph_opts::apply_con_mode(&mut config, args.con_mode);
    let mut builder = Messenger::builder(name)
        .config(config)
        .dispatcher(events.clone());
    if let Some(a) = authorizer {
        builder = builder.authorizer(a);
    }
    let messenger = builder
        .start()
        .await
        .context("starting the client messenger")?;
    let result = ping_with(&messenger, &events, target, peer_type, args).await;
    messenger.shutdown();
    messenger.wait().await;
    result
}

async fn ping_with(
    messenger: &Messenger,
    events: &Events,
    target: EntityAddr,
    peer_type: EntityType,
    args: &PingArgs,
) -> anyhow::Result<()> {
    let shown = target.to_string();
    let start = Instant::now();
    let conn = messenger
        .connect_lazy(target, peer_type)
        .context("connecting")?;
    // Subscribed before the keepalive goes out, so its ack cannot slip by.
    let first_ack = conn.keepalive_acked();
    conn.send_keepalive();
    let deadline = tokio::time::Instant::now() + args.timeout;
    tokio::select! {
        opened = opened(events, &conn, peer_type) => opened?,
        // A refusal the session would retry (a wrong address, a bad banner) ends the
        // ping as soon as the peer answered, as does one that ends the session.
        refusal = crate::peer::refused(&conn) => {
            return Err(Refused { peer_type, reason: refusal.to_string() }.into());
        }
        () = tokio::time::sleep_until(deadline) => bail!(
            "{shown}: no handshake within {:.1} s (host down, filtered, or not a msgr v1 daemon?)",
            args.timeout.as_secs_f64()
        ),
    }
    // Any change of the session's state after it opened means the socket to the peer failed:
    // a lossy session ends, a lossless one (the peer's policy decides) reconnects behind our
    // back, so the pings would only time out. Either way the ping ends there.
    let mut state = conn.watch_state();
    let mut lost =
        (*state.borrow() != msgr_core::ConnState::Open).then(|| session_lost(events, &conn, None));
    if !msgr_wire::features::has(conn.features(), msgr_wire::features::MSGR_KEEPALIVE2) {
        bail!("{shown}: the peer did not negotiate KEEPALIVE2, so keepalives are not answered");
    }
    // The keepalive that opened the session is answered first; round trips start after it.
    // (Unanswered or a closed session: the first round trip tells.)
    let _ = tokio::time::timeout(args.timeout, first_ack).await;
    println!(
        "PING {shown}: handshake with a {} in {:.3} ms",
        conn.peer_name()
            .map_or_else(|| peer_type.to_string(), |n| n.to_string()),
        start.elapsed().as_secs_f64() * 1e3
    );
    let mut rtts: Vec<f64> = Vec::new();
    let mut sent = 0u64;
    let begun = Instant::now();
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    while lost.is_none() && args.count.is_none_or(|n| sent < n) {
        sent += 1;
        let round = tokio::select! {
            rtt = round_trip(&conn, args.timeout) => rtt,
            _ = state.changed() => Round::Closed,
            _ = &mut ctrl_c => { sent -= 1; break; }
        };
        match round {
            Round::Reply(rtt) => {
                let ms = rtt.as_secs_f64() * 1e3;
                println!("keepalive2 reply from {shown}: seq={sent} time={ms:.3} ms");
                rtts.push(ms);
            }
            Round::Closed => {
                lost = Some(session_lost(events, &conn, Some(sent)));
                break;
            }
            Round::TimedOut => println!(
                "{shown}: no reply to seq={sent} within {:.1} s",
                args.timeout.as_secs_f64()
            ),
        }
        if args.count.is_some_and(|n| sent >= n) {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(args.interval) => {}
            _ = state.changed() => {
                lost = Some(session_lost(events, &conn, None));
                break;
            }
            _ = &mut ctrl_c => break,
        }
    }
    if let Some(lost) = &lost {
        println!("{lost}");
    }
    summary(&shown, sent, &rtts, begun.elapsed());
    let received = rtts.len() as u64;
    if let Some(lost) = lost {
        bail!("{lost}");
    }
    if rtts.is_empty() {
        bail!("{shown}: no keepalive was answered");
    }
    if let Some(count) = args.count {
        if received < count {
            bail!("{shown}: {received} of {count} keepalives answered");
        }
    }
    Ok(())
}

/// Waits for the session to open; a refusal or a reset of the handshake is an error.
async fn opened(events: &Events, conn: &Connection, peer_type: EntityType) -> anyhow::Result<()> {
    let shown = conn.peer_addr();
    loop {
        let notified = events.changed.notified();
        match events.state.load(Ordering::SeqCst) {
            CONNECTED => return Ok(()),
            REFUSED => {
                let reason = conn
                    .session()
                    .and_then(|s| s.handshake_failures().borrow().clone())
                    .map_or_else(
                        || "the connection was refused".to_owned(),
                        |f| crate::peer::refusal_reason(&f.error),
                    );
                return Err(Refused {
                    peer_type,
                    reason: format!("refused by {shown}: {reason}"),
                }
                .into());
            }
            RESET => bail!("{shown}: the handshake failed (the peer closed or reset the session)"),
            _ => {}
        }
        notified.await;
    }
}

/// The line that says how the session to the peer ended (while ping `seq` was out, if one was).
fn session_lost(events: &Events, conn: &Connection, seq: Option<u64>) -> String {
    let what = if events.state.load(Ordering::SeqCst) == RESET {
        "session reset by the peer"
    } else {
        "session to the peer lost (socket closed or failed)"
    };
    match seq {
        Some(seq) => format!("{}: {what}; seq={seq} unanswered", conn.peer_addr()),
        None => format!("{}: {what}", conn.peer_addr()),
    }
}

/// How one keepalive round went.
enum Round {
    /// Answered after this round trip.
    Reply(Duration),
    /// No answer within the timeout.
    TimedOut,
    /// The session ended first.
    Closed,
}

/// Sends a KEEPALIVE2 and awaits the next KEEPALIVE2_ACK, for at most `timeout`.
///
/// The acknowledgement echoes the stamp our writer put in the keepalive (our wall clock when
/// it went out), so the round trip is measured from that stamp, as ICMP ping does: the time our
/// own writer task took to wake up is not counted. The local clock difference is the fallback.
async fn round_trip(conn: &Connection, timeout: Duration) -> Round {
    // Subscribed before sending: the ack cannot arrive unseen.
    let acked = conn.keepalive_acked();
    let start = Instant::now();
    conn.send_keepalive();
    match tokio::time::timeout(timeout, acked).await {
        Ok(Ok(stamp)) => {
            let local = start.elapsed();
            Round::Reply(since_stamp(stamp).filter(|d| *d <= local).unwrap_or(local))
        }
        Ok(Err(_closed)) => Round::Closed,
        Err(_elapsed) => Round::TimedOut,
    }
}

/// Wall-clock time since `stamp` (a `ceph_timespec` of our own clock).
fn since_stamp(stamp: Timespec) -> Option<Duration> {
    let sent = Duration::new(u64::from(stamp.sec), stamp.nsec);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?;
    now.checked_sub(sent)
}

fn summary(shown: &str, sent: u64, rtts: &[f64], elapsed: Duration) {
    let received = rtts.len() as u64;
    let lost = sent.saturating_sub(received);
    let pct = (lost * 100).checked_div(sent).unwrap_or(0);
    println!("--- {shown} msgr ping statistics ---");
    println!(
        "{sent} sent, {received} received, {pct}% lost, time {} ms",
        elapsed.as_millis()
    );
    if rtts.is_empty() {
        return;
    }
    let mut sorted = rtts.to_vec();
    sorted.sort_by(f64::total_cmp);
    let min = sorted[0];
    let max = sorted[sorted.len() - 1];
    let avg = sorted.iter().sum::<f64>() / sorted.len() as f64;
    let p99 = sorted[((sorted.len() as f64 * 0.99).ceil() as usize).clamp(1, sorted.len()) - 1];
    println!("rtt min/avg/max/p99 = {min:.3}/{avg:.3}/{max:.3}/{p99:.3} ms");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(name: &str) -> msgr_auth::EntityName {
        name.parse().unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    #[test]
    fn messenger_name_without_a_mon() {
        // Ceph's name before a mon gives a client its global id; a daemon keeps its number.
        for (given, expected) in [
            ("client.admin", "client.-1"),
            ("client.42", "client.42"),
            ("osd.3", "osd.3"),
            ("mon.a", "mon.-1"),
        ] {
            let name = unauthenticated_name(&auth(given)).map(|n| n.to_string());
            assert_eq!(name.ok().as_deref(), Some(expected), "{given}");
        }
    }

    #[test]
    fn mon_options_only_with_an_auth_option() {
        let base = PingArgs {
            addr: "v1:127.0.0.1:6800".into(),
            count: None,
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(5),
            peer_type: None,
            name: "client.admin".into(),
            conf: None,
            keyring: None,
            mon: None,
            con_mode: None,
        };
        assert!(matches!(mon_options(&base), Ok(None)));
        let with_mon = PingArgs {
            mon: Some("v1:127.0.0.1:3300".into()),
            ..base
        };
        let options = mon_options(&with_mon)
            .ok()
            .flatten()
            .map(|c| (c.options.mon_host, c.options.mount_timeout));
        assert_eq!(
            options,
            Some((
                vec![EntityAddr::new(SocketAddr::from(([127, 0, 0, 1], 3300)), 0)],
                Duration::from_secs(5)
            ))
        );
    }
}
