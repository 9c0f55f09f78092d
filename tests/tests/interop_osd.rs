//! Issue 15, item 6: a real `ceph-osd` as the peer (`CephCluster`, `shared/spec/ceph-cluster-recipe.md`: a cephx mon
//! and one memstore OSD). Our client authenticates to the real mon with msgr-monc's `MonClient`, and a messenger
//! with `MonClient::authorizer()` talks to the OSD's v1 address: the OSD verifies the authorizer with the rotating
//! keys it fetched from the mon, and checks the signature of every message.
//!
//! Each test starts its own cluster (1-1.5 s here, up to 3 s with four starting at once; the OSD and the mon stop
//! in about 0.1 s each), so they run in parallel. Without Ceph they print why and pass, unless `MSGR_REQUIRE_CEPH` is set (as `.ci/run` does). Nothing
//! sleeps to pass: every wait is on an event, a reply or a process, bounded by [`WAIT`].
//!
//! | test | proves |
//! |---|---|
//! | [`a_ticket_from_the_mon_opens_a_signed_session_the_osd_keeps`] | the OSD accepts client.admin's authorizer (challenge answered, reply nonce + 1 checked, a signer for the session), MSG_AUTH and CEPHX_V2 negotiated; several signed MPings, then a KEEPALIVE2 round trip on the same socket: no fault, no reconnect |
//! | [`a_wrong_signing_key_gets_the_session_dropped_by_the_osd`] | the same authorizer, messages signed with another key: the handshake succeeds, the OSD drops the socket at the first message (our lossy session faults once and ends, the keepalive sent after it is never acked), and its log says why |
//! | [`no_ticket_is_refused_with_badauthorizer`] | a messenger without an authorizer: the OSD answers BADAUTHORIZER twice (our retry included) and the session ends with a fatal `AuthorizerRefused` in `handshake_failures`, never opening |
//! | [`msgr_ping_authenticates_then_pings_the_osd`] | `msgr ping OSD -c ceph.conf`: exit 0 with the AUTH line and the RTT lines; without the options the OSD refuses it (BADAUTHORIZER, exit 1); with a wrong key: exit 1 within a second or so, one line naming the auth error |

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use bytes::Bytes;
use msgr_auth::{CryptoKey, EntityName, Keyring, KeyringEntry};
use msgr_core::{
    AuthError, Authorizer, BoxFuture, ChallengeState, ClientAuthorizer, Connection, Dispatched,
    Dispatcher, MessageSigner, Messenger, Policy, Received, VerifyOutcome,
};
use msgr_monc::{ClientOptions, MonClient, MonClientConfig};
use msgr_tests::ceph;
use msgr_tests::cluster::CephCluster;
use msgr_wire::{features, EntityType, Message};
use tokio::sync::mpsc;

/// Bound of every wait on an event, a reply or a process (generous for loaded CI machines; never spent when things
/// work).
const WAIT: Duration = Duration::from_secs(30);

/// How many signed MPings the tests send before their keepalive.
const PINGS: u64 = 5;

/// client.admin's mon client from the cluster's ceph.conf (mon_host, `[client.admin]` keyring), authenticated.
async fn admin_client(cluster: &CephCluster) -> anyhow::Result<MonClient> {
    let name = EntityName::client("admin");
    let options = ClientOptions::from_ceph_conf_file(cluster.conf_path(), &name)?;
    let client = MonClient::new(MonClientConfig::new(options)).await?;
    tokio::time::timeout(WAIT, client.authenticate()).await??;
    Ok(client)
}

/// What happened to the sessions of a test's messenger.
#[derive(Debug)]
enum Event {
    Connect,
    Reset,
    Refused,
    Message(u16),
}

/// Sends every session event and received message type to the test.
struct Recorder(mpsc::UnboundedSender<Event>);

impl Dispatcher for Recorder {
    fn dispatch(&self, msg: Received) -> BoxFuture<'_, Dispatched> {
        let _ = self.0.send(Event::Message(msg.msg.header.ty));
        Box::pin(async { Dispatched::Handled })
    }
    fn handle_connect(&self, _conn: &Connection) {
        let _ = self.0.send(Event::Connect);
    }
    fn handle_reset(&self, _conn: &Connection) {
        let _ = self.0.send(Event::Reset);
    }
    fn handle_remote_reset(&self, _conn: &Connection) {
        let _ = self.0.send(Event::Reset);
    }
    fn handle_refused(&self, _conn: &Connection) {
        let _ = self.0.send(Event::Refused);
    }
}

/// How the observed authorizer's connections sign.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signing {
    /// With the ticket's session key, as the OSD expects.
    Right,
    /// With another key: every signature is wrong for the OSD.
    WrongKey,
}

/// What the connector asked of the authorizer.
#[derive(Debug, Default)]
struct Counts {
    /// Authorizers built (one per connection attempt, one more after a BADAUTHORIZER).
    built: AtomicU64,
    /// CHALLENGE_AUTHORIZERs answered.
    challenges: AtomicU64,
    /// Reply authorizers checked (nonce + 1) that gave a signer.
    signers: AtomicU64,
}

impl Counts {
    fn read(&self) -> (u64, u64, u64) {
        (
            self.built.load(Ordering::SeqCst),
            self.challenges.load(Ordering::SeqCst),
            self.signers.load(Ordering::SeqCst),
        )
    }
}

/// The mon client's authorizer hook, counting what the connector does with it, and signing with a wrong key when
/// told to (the interop_cephx `WrongKeySigner` pattern).
struct Observed {
    inner: Arc<dyn Authorizer>,
    signing: Signing,
    counts: Arc<Counts>,
}

impl Authorizer for Observed {
    fn build(
        &self,
        peer_type: EntityType,
        retry: bool,
    ) -> BoxFuture<'_, Option<Box<dyn ClientAuthorizer>>> {
        Box::pin(async move {
            let inner = self.inner.build(peer_type, retry).await?;
            self.counts.built.fetch_add(1, Ordering::SeqCst);
            Some(Box::new(ObservedClient {
                inner,
                signing: self.signing,
                counts: Arc::clone(&self.counts),
            }) as Box<dyn ClientAuthorizer>)
        })
    }
    fn verify(
        &self,
        peer_type: EntityType,
        protocol: u32,
        authorizer: &[u8],
        challenge: &mut ChallengeState,
        features: u64,
    ) -> Result<VerifyOutcome, AuthError> {
        self.inner
            .verify(peer_type, protocol, authorizer, challenge, features)
    }
    fn sign_messages(&self) -> bool {
        self.inner.sign_messages()
    }
}

/// One connection's authorizer, observed.
struct ObservedClient {
    inner: Box<dyn ClientAuthorizer>,
    signing: Signing,
    counts: Arc<Counts>,
}

impl ClientAuthorizer for ObservedClient {
    fn protocol(&self) -> u32 {
        self.inner.protocol()
    }
    fn bytes(&self) -> Bytes {
        self.inner.bytes()
    }
    fn add_challenge(&mut self, challenge: &[u8]) -> Result<(), AuthError> {
        self.counts.challenges.fetch_add(1, Ordering::SeqCst);
        self.inner.add_challenge(challenge)
    }
    fn verify_reply(
        &self,
        reply: &[u8],
        features: u64,
    ) -> Result<Option<MessageSigner>, AuthError> {
        let signer = self.inner.verify_reply(reply, features)?;
        if signer.is_some() {
            self.counts.signers.fetch_add(1, Ordering::SeqCst);
        }
        Ok(match (signer, self.signing) {
            (Some(good), Signing::WrongKey) => Some(MessageSigner::new(
                CryptoKey::aes(rand::random()),
                good.format(),
            )),
            (signer, _) => signer,
        })
    }
}

/// A client messenger (`client.GLOBAL_ID`, as Ceph names a client after MAuth; the lossy client policy toward
/// OSDs, as librados) with `authorizer`, and its events.
async fn osd_client(
    global_id: u64,
    authorizer: Option<Arc<dyn Authorizer>>,
) -> anyhow::Result<(Messenger, mpsc::UnboundedReceiver<Event>)> {
    let (tx, rx) = mpsc::unbounded_channel();
    let id = i64::try_from(global_id)?;
    let mut builder = Messenger::builder(msgr_wire::EntityName::new(EntityType::CLIENT, id))
        .policy(EntityType::OSD, Policy::lossy_client(0))
        .dispatcher(Arc::new(Recorder(tx)));
    if let Some(a) = authorizer {
        builder = builder.authorizer(a);
    }
    Ok((builder.start().await?, rx))
}

/// The next session event (messages are collected into `messages`), within [`WAIT`].
async fn next_event(
    events: &mut mpsc::UnboundedReceiver<Event>,
    messages: &mut Vec<u16>,
) -> anyhow::Result<Event> {
    loop {
        let event = tokio::time::timeout(WAIT, events.recv())
            .await
            .context("no session event")?
            .context("messenger gone")?;
        match event {
            Event::Message(ty) => messages.push(ty),
            other => return Ok(other),
        }
    }
}

/// The lines of the OSD's log that contain `needle`, once there are at least `count` (Ceph's log thread writes a
/// moment after the event; polled until [`WAIT`]).
async fn log_lines(
    cluster: &CephCluster,
    needle: &str,
    count: usize,
) -> anyhow::Result<Vec<String>> {
    let deadline = Instant::now() + WAIT;
    loop {
        let log = std::fs::read_to_string(cluster.osd_log_path()).unwrap_or_default();
        let lines: Vec<String> = log
            .lines()
            .filter(|l| l.contains(needle))
            .map(str::to_owned)
            .collect();
        if lines.len() >= count {
            return Ok(lines);
        }
        if Instant::now() >= deadline {
            bail!(
                "the OSD's log has {} of {count} lines with {needle:?}",
                lines.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// An MPing (type 2, empty front).
fn mping() -> Message {
    Message::new(
        msgr_ceph::MPing::TYPE,
        msgr_ceph::MPing::default().to_front(),
    )
    .with_version(msgr_ceph::MPing::VERSION, msgr_ceph::MPing::VERSION)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_from_the_mon_opens_a_signed_session_the_osd_keeps() -> anyhow::Result<()> {
    let Some(cluster) = CephCluster::start().await? else {
        return Ok(());
    };
    let run = async {
        let client = admin_client(&cluster).await?;
        let counts = Arc::new(Counts::default());
        let hook = Arc::new(Observed {
            inner: client.authorizer(),
            signing: Signing::Right,
            counts: Arc::clone(&counts),
        });
        let (m, mut events) = osd_client(client.global_id(), Some(hook)).await?;
        let mut messages = Vec::new();

        let started = Instant::now();
        let conn = m.connect_lazy(cluster.osd_addr(), EntityType::OSD)?;
        let event = next_event(&mut events, &mut messages).await?;
        let handshake = started.elapsed();
        ensure!(
            matches!(event, Event::Connect),
            "{event:?}: {:?}",
            failure(&conn)
        );
        let (built, challenges, signers) = counts.read();
        let negotiated = conn.features();
        eprintln!(
            "session to osd.0 open in {handshake:.2?}: {built} authorizer(s), {challenges} challenge(s), \
             {signers} signer(s), features {negotiated:#x}"
        );
        ensure!(
            features::has(negotiated, features::MSG_AUTH | features::CEPHX_V2),
            "MSG_AUTH and CEPHX_V2 negotiated: {negotiated:#x}"
        );
        // The OSD challenges a CEPHX_V2 peer once; the reply's nonce + 1 then gives the session its signer.
        ensure!(
            (built, challenges, signers) == (1, 1, 1),
            "{:?}",
            counts.read()
        );

        for _ in 0..PINGS {
            conn.send(mping()).await?;
        }
        // The OSD reads the messages (checking each signature) before the keepalive behind them on the socket: its
        // ack proves that it kept the session through all of them.
        let acked = conn.keepalive_acked();
        let sent = Instant::now();
        conn.send_keepalive();
        tokio::time::timeout(WAIT, acked)
            .await
            .context("no KEEPALIVE2_ACK")?
            .context("the session ended before the KEEPALIVE2_ACK")?;
        let rtt = sent.elapsed();
        let stats = conn.stats();
        eprintln!(
            "{PINGS} signed MPings then a keepalive round trip in {rtt:.2?}; {stats:?}; replies {messages:?}"
        );
        ensure!(stats.faults == 0 && stats.reconnects == 0, "{stats:?}");
        ensure!(
            conn.state() == msgr_core::ConnState::Open,
            "{:?}",
            conn.state()
        );
        ensure!(
            events.try_recv().is_err(),
            "no reset or other event: {:?}",
            events.try_recv()
        );
        m.shutdown();
        m.wait().await;
        // The writer counts a batch once its write returned, possibly after the ack was handled: read once every
        // task has ended.
        let stats = conn.stats();
        ensure!(stats.msgs_out == PINGS, "{stats:?}");
        client.shutdown().await;
        Ok(())
    };
    run.await
        .with_context(|| format!("the cluster's output:\n{}", cluster.output_tail()))
}

/// Why the session's last handshake attempt failed, for messages.
fn failure(conn: &Connection) -> String {
    conn.session()
        .and_then(|s| s.handshake_failures().borrow().clone())
        .map_or_else(|| "no handshake failure".to_owned(), |f| format!("{f:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_signing_key_gets_the_session_dropped_by_the_osd() -> anyhow::Result<()> {
    let Some(cluster) = CephCluster::start().await? else {
        return Ok(());
    };
    let run = async {
        let client = admin_client(&cluster).await?;
        let counts = Arc::new(Counts::default());
        let hook = Arc::new(Observed {
            inner: client.authorizer(),
            signing: Signing::WrongKey,
            counts: Arc::clone(&counts),
        });
        let (m, mut events) = osd_client(client.global_id(), Some(hook)).await?;
        let mut messages = Vec::new();
        let conn = m.connect_lazy(cluster.osd_addr(), EntityType::OSD)?;
        // The authorizer is good: the handshake succeeds.
        let event = next_event(&mut events, &mut messages).await?;
        ensure!(
            matches!(event, Event::Connect),
            "{event:?}: {:?}",
            failure(&conn)
        );
        ensure!(counts.read() == (1, 1, 1), "{:?}", counts.read());
        ensure!(conn.stats().faults == 0, "{:?}", conn.stats());

        let acked = conn.keepalive_acked();
        let sent = Instant::now();
        conn.send(mping()).await?;
        conn.send_keepalive();
        // The OSD drops the socket at the message, before it reads the keepalive: our lossy session faults once and
        // ends, the keepalive unanswered.
        let ack = tokio::time::timeout(WAIT, acked)
            .await
            .context("neither a KEEPALIVE2_ACK nor the end of the session")?;
        let dropped = sent.elapsed();
        ensure!(
            ack.is_err(),
            "the OSD acked a keepalive behind a badly signed message"
        );
        let event = next_event(&mut events, &mut messages).await?;
        ensure!(matches!(event, Event::Reset), "{event:?}");
        let stats = conn.stats();
        eprintln!("dropped by the OSD {dropped:.2?} after the message; {stats:?}");
        // (Not `msgs_out`: the writer counts a batch after its write returns, and the session may end first.)
        ensure!(stats.faults == 1 && stats.reconnects == 0, "{stats:?}");
        ensure!(messages.is_empty(), "the OSD answered: {messages:?}");
        ensure!(
            conn.last_keepalive_ack().is_none(),
            "a keepalive ack on that session"
        );

        // The OSD says why, at its default log level (CephxSessionHandler::check_message_signature, level 0).
        let why = log_lines(&cluster, "Message signature does not match contents", 1).await?;
        eprintln!("osd.0 log: {}", why.join("\n"));
        m.shutdown();
        m.wait().await;
        client.shutdown().await;
        Ok(())
    };
    run.await
        .with_context(|| format!("the cluster's output:\n{}", cluster.output_tail()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_ticket_is_refused_with_badauthorizer() -> anyhow::Result<()> {
    let Some(cluster) = CephCluster::start().await? else {
        return Ok(());
    };
    let run = async {
        let (m, mut events) = osd_client(4242, None).await?;
        let mut messages = Vec::new();
        let started = Instant::now();
        let conn = m.connect_lazy(cluster.osd_addr(), EntityType::OSD)?;
        let mut failures = conn
            .session()
            .context("a remote session")?
            .handshake_failures();
        let fatal = tokio::time::timeout(
            WAIT,
            failures.wait_for(|f| f.as_ref().is_some_and(|f| f.fatal)),
        )
        .await
        .context("no fatal handshake failure")?
        .context("session gone without a failure")?
        .clone()
        .context("a failure")?;
        let took = started.elapsed();
        eprintln!("refused in {took:.2?}: {fatal:?}");
        ensure!(
            matches!(*fatal.error, msgr_core::PipeError::AuthorizerRefused),
            "{fatal:?}"
        );
        ensure!(fatal.error.is_refusal(), "{fatal:?}");
        let event = next_event(&mut events, &mut messages).await?;
        ensure!(matches!(event, Event::Refused | Event::Reset), "{event:?}");
        let stats = conn.stats();
        ensure!(stats.reconnects == 0 && stats.msgs_out == 0, "{stats:?}");
        tokio::time::timeout(WAIT, conn.closed())
            .await
            .context("the refused session did not end")?;
        ensure!(
            conn.state() == msgr_core::ConnState::Closed,
            "{:?}",
            conn.state()
        );
        // The OSD says why (ProtocolV1::handle_connect_message_2, level 0), once for our first connect and once
        // for the retry on the same socket that BADAUTHORIZER allows (no ticket either).
        let why = log_lines(&cluster, "got bad authorizer", 2).await?;
        eprintln!("osd.0 log:\n{}", why.join("\n"));
        ensure!(why.len() == 2, "{why:?}");
        m.shutdown();
        m.wait().await;
        Ok(())
    };
    run.await
        .with_context(|| format!("the cluster's output:\n{}", cluster.output_tail()))
}

/// Where `cargo test` put the `msgr` binary: next to this test's `deps` folder (`target/debug/msgr`).
fn msgr_binary() -> anyhow::Result<Option<PathBuf>> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .context("test executable has no grandparent folder")?;
    let bin = dir.join(format!("msgr{}", std::env::consts::EXE_SUFFIX));
    if bin.is_file() {
        return Ok(Some(bin));
    }
    ensure!(
        !ceph::ceph_required(),
        "{} missing but {} is set (build the workspace: cargo test --workspace)",
        bin.display(),
        ceph::REQUIRE_ENV
    );
    eprintln!(
        "skipped: {} not built (cargo test --workspace builds it)",
        bin.display()
    );
    Ok(None)
}

/// `msgr ARGS`: exit code, stdout, stderr, and how long it ran.
async fn msgr(bin: &PathBuf, args: &[&str]) -> anyhow::Result<(i32, String, String, Duration)> {
    let started = Instant::now();
    let child = tokio::process::Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let out = tokio::time::timeout(WAIT, child.wait_with_output()).await??;
    let took = started.elapsed();
    let code = out.status.code().context("killed by a signal")?;
    Ok((
        code,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        took,
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn msgr_ping_authenticates_then_pings_the_osd() -> anyhow::Result<()> {
    let Some(bin) = msgr_binary()? else {
        return Ok(());
    };
    let Some(cluster) = CephCluster::start().await? else {
        return Ok(());
    };
    let run = async {
        let osd = cluster.osd_addr().to_string();
        let conf = cluster
            .conf_path()
            .to_str()
            .context("utf-8 path")?
            .to_owned();
        // The cluster's ceph.conf: mon_host and client.admin's keyring from it. (A shorter interval than the default
        // second only to keep the test short: this test is about authentication.)
        let (code, out, err, took) = msgr(
            &bin,
            &[
                "ping",
                &osd,
                "-c",
                &conf,
                "--count",
                "3",
                "--interval",
                "0.1",
            ],
        )
        .await?;
        eprintln!("msgr ping -c: exit {code} after {took:.2?}\n{out}{err}");
        ensure!(code == 0, "exit {code}: {out}{err}");
        let lines: Vec<&str> = out.lines().collect();
        ensure!(
            lines.first().is_some_and(
                |l| l.starts_with("AUTH client.admin with mon ") && l.ends_with("(cephx)")
            ),
            "{out}"
        );
        ensure!(
            lines
                .get(1)
                .is_some_and(|l| l.starts_with(&format!("PING {osd}: handshake with a osd"))),
            "{out}"
        );
        let replies = lines
            .iter()
            .filter(|l| l.starts_with(&format!("keepalive2 reply from {osd}: seq=")))
            .count();
        ensure!(replies == 3, "{out}");
        ensure!(out.contains("3 sent, 3 received, 0% lost"), "{out}");
        ensure!(
            lines
                .last()
                .is_some_and(|l| l.starts_with("rtt min/avg/max/p99 = ")),
            "{out}"
        );

        // Without the options, as before: no mon asked, no authorizer, and the cephx OSD refuses the handshake.
        let (code, out, err, took) = msgr(&bin, &["ping", &osd, "--count", "1"]).await?;
        eprintln!("msgr ping without a ticket: exit {code} after {took:.2?}: {err:?}");
        ensure!(code == 1, "exit {code}: {out}{err}");
        ensure!(
            !out.contains("AUTH") && err.contains("BADAUTHORIZER"),
            "{out}{err}"
        );

        // -n, -k, -m, as the issue writes them; a wrong key: the mon refuses at once, one line, exit 1.
        let dir = tempfile::tempdir()?;
        let wrong = dir.path().join("wrong.keyring");
        let mut ring = Keyring::new();
        ring.insert(
            EntityName::client("admin"),
            KeyringEntry {
                key: CryptoKey::aes(rand::random()),
                caps: Default::default(),
            },
        );
        std::fs::write(&wrong, ring.to_text())?;
        let wrong = wrong.to_str().context("utf-8 path")?;
        let mon = format!("v1:{}", cluster.mon().addr());
        let (code, out, err, took) = msgr(
            &bin,
            &["ping", &osd, "-n", "client.admin", "-k", wrong, "-m", &mon],
        )
        .await?;
        eprintln!("msgr ping with a wrong key: exit {code} after {took:.2?}: {err:?}");
        ensure!(code == 1 && out.is_empty(), "exit {code}: {out}{err}");
        ensure!(
            err.lines().count() == 1
                && err.starts_with("msgr ping: authenticating with the mon: ")
                && err.contains("client.admin")
                && err.contains("EACCES"),
            "{err:?}"
        );
        // Fast: the mon answers a wrong key at once (a process start and one MAuth exchange; generous bound
        // for a loaded machine, far below the 5 s --timeout a hunt would spend).
        ensure!(took < Duration::from_secs(3), "took {took:?}");
        Ok(())
    };
    run.await
        .with_context(|| format!("the cluster's output:\n{}", cluster.output_tail()))
}

/// msgr2 to a real OSD: with the mon and osd.0 bound to msgr2 too, `msgr ping v2:OSD -c conf
/// --con-mode crc|secure` authenticates with the mon, presents its OSD ticket in authorizer
/// mode (the OSD challenges it; in secure mode its reply carries the connection secret) and
/// gets three keepalive replies, in each mode.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn msgr_ping_reaches_the_osds_v2_address_in_crc_and_secure_mode() -> anyhow::Result<()> {
    let Some(bin) = msgr_binary()? else {
        return Ok(());
    };
    let Some(cluster) = CephCluster::start_v2().await? else {
        return Ok(());
    };
    let run = async {
        let osd = cluster
            .osd_v2_addr()
            .context("osd.0 announces a v2 address")?
            .to_string();
        ensure!(osd.starts_with("v2:"), "{osd}");
        let conf = cluster
            .conf_path()
            .to_str()
            .context("utf-8 path")?
            .to_owned();
        for mode in ["crc", "secure"] {
            // (A shorter interval than the default second only to keep the test short.)
            let (code, out, err, took) = msgr(
                &bin,
                &[
                    "ping",
                    &osd,
                    "-c",
                    &conf,
                    "--con-mode",
                    mode,
                    "--count",
                    "3",
                    "--interval",
                    "0.1",
                ],
            )
            .await?;
            eprintln!("msgr ping {mode}: exit {code} after {took:.2?}\n{out}{err}");
            if code != 0 {
                let log = std::fs::read_to_string(cluster.osd_log_path()).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(30).collect();
                eprintln!(
                    "osd log tail:\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
            ensure!(code == 0, "{mode}: exit {code}: {out}{err}");
            ensure!(out.contains("3 sent, 3 received, 0% lost"), "{mode}: {out}");
            ensure!(
                out.contains(&format!("PING {osd}: handshake with a osd")),
                "{mode}: {out}"
            );
        }
        Ok(())
    };
    run.await
        .with_context(|| format!("the cluster's output:\n{}", cluster.output_tail()))
}
