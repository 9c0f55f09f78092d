//! Issue 15, items 3, 5 and 6: msgr-monc's `MonClient` and `msgr mon-command` against a real `ceph-mon` with cephx
//! (`CephMon::start_cephx`, spec §D), and the CLI against the auth-none mon too.
//!
//! Each test starts its own mon, so they run in parallel. Without Ceph on the PATH they print why and pass, unless
//! `MSGR_REQUIRE_CEPH` is set (as `.ci/run` does). Nothing here sleeps to pass: every wait is on a reply or a
//! process, bounded by [`WAIT`].
//!
//! | test | proves |
//! |---|---|
//! | [`monc_authenticates_and_runs_status_and_auth_get`] | cephx with the real mon: a global id, the monmap and its version (MMonGetVersion), `status` (the cluster's fsid), `auth get client.admin` printing the keyring's key, an unknown command's errno and status |
//! | [`wrong_key_and_unknown_entity_fail_fast`] | `AuthRefused` with EACCES naming the entity, in under 1 s, for both |
//! | [`global_id_reclaimed_across_mon_restart`] | after a restart of the mon the next command re-authenticates with the old ticket and keeps its global id (a new client gets another) |
//! | [`a_peer_mon_authorizes_with_the_mon_key_and_messages_are_signed_both_ways`] | a messenger named `mon.1` presents a ticket minted from the `mon.` key (CHALLENGE_AUTHORIZER answered, the reply's nonce + 1 checked); the mon answers its signed MMonGetVersion with a message signed (footer flags 5) that our reader checks |
//! | [`a_wrong_signature_gets_the_connection_dropped_by_the_mon`] | the same with a wrong signing key: the handshake succeeds, the first message makes the mon drop the socket ("Message signature does not match contents" in its log), on every reconnect; no reply |
//! | [`cephs_own_cli_authenticates_to_a_msgr_mon_and_goes_on`] | Ceph's `ceph` CLI against a msgr messenger in the mon role (`MonService`, cephx from a keyring): negotiation and cephx rounds accepted, then its next requests (MMonSubscribe, then the command); with a wrong key it is refused and asks nothing |
//! | [`a_msgr_osd_verifies_tickets_the_real_mon_issued_with_its_rotating_keys`] | `osd.0` registered with the real mon (`auth get-or-create`) authenticates and gets the OSD rotating keys; a messenger named osd.0 with `MonClient::authorizer` verifies client.admin's real OSD ticket (challenged), its messages arrive signed; a ticket from another mon is refused for good |
//! | [`msgr_serve_as_osd_verifies_real_tickets_and_a_signed_bench_runs_through_it`] | `msgr serve -n osd.0 -k … -c …` fetches the real mon's rotating keys; `msgr bench --server … -c … --verify` authenticates as client.admin and runs 200 verified round trips through it, every message logged `"auth":"cephx","signed":true`; without a ticket the bench is refused |
//! | [`cephs_own_cli_authenticates_to_msgr_serve_as_mon`] | Ceph's own `ceph` CLI authenticates to `msgr serve -n mon.0 -k …` (MAuth rounds logged) and goes on to MMonSubscribe; with a wrong key it does not |
//! | [`mon_command_cli_against_cephx_and_none_mons`] | `msgr mon-command`: output on stdout, exit 0; an unknown command exits 22 with the mon's status on stderr; a wrong key exits 13 with one line; the same against the auth-none mon |

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use bytes::Bytes;
use msgr_auth::{CryptoKey, EntityName, Keyring, KeyringEntry};
use msgr_monc::{ClientOptions, MonClient, MonClientConfig, MonClientError};
use msgr_tests::ceph::{self, CephMon};

/// Bound of every wait on a reply or a process (generous for loaded CI machines; never spent when things work).
const WAIT: Duration = Duration::from_secs(30);

/// The client config of `name` from the mon's own ceph.conf (its mon_host, its `[client.admin]` keyring).
fn config(mon: &CephMon, name: &str) -> anyhow::Result<MonClientConfig> {
    let name: EntityName = name.parse()?;
    let options = ClientOptions::from_ceph_conf_file(mon.conf_path(), &name)?;
    ensure!(
        options.mon_host == vec![msgr_wire::EntityAddr::new(mon.addr(), 0)],
        "{options:?}"
    );
    Ok(MonClientConfig::new(options))
}

fn admin_key(mon: &CephMon) -> anyhow::Result<CryptoKey> {
    let path = mon.admin_keyring().context("a cephx mon")?;
    let ring = Keyring::load(&path)?;
    Ok(ring
        .key(&EntityName::client("admin"))
        .context("client.admin in its keyring")?
        .clone())
}

fn random_key() -> CryptoKey {
    CryptoKey::aes(rand::random())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monc_authenticates_and_runs_status_and_auth_get() -> anyhow::Result<()> {
    let Some(mon) = CephMon::start_cephx()? else {
        return Ok(());
    };
    let run = async {
        let client = MonClient::new(config(&mon, "client.admin")?).await?;
        let started = Instant::now();
        tokio::time::timeout(WAIT, client.authenticate()).await??;
        eprintln!(
            "authenticated as client.{} in {:.2?}",
            client.global_id(),
            started.elapsed()
        );
        ensure!(client.global_id() > 0);
        let monmap = client.monmap().context("a monmap")?;
        ensure!(monmap.fsid.to_string() == mon.fsid(), "monmap {monmap:?}");
        // MMonGetVersion: the mon's newest monmap is the one it sent us.
        let (newest, oldest) = client.get_version("monmap").await?;
        ensure!(
            newest == u64::from(monmap.epoch) && oldest >= 1 && oldest <= newest,
            "monmap versions {newest}/{oldest}, epoch {}",
            monmap.epoch
        );

        let r = client
            .command(r#"{"prefix": "status", "format": "json"}"#, Bytes::new())
            .await?;
        ensure!(r.errno == 0, "status: {r:?}");
        let status: serde_json::Value = serde_json::from_slice(&r.output)?;
        ensure!(status["fsid"].as_str() == Some(mon.fsid()), "{status}");

        let r = client
            .command(
                r#"{"prefix": "auth get", "entity": "client.admin"}"#,
                Bytes::new(),
            )
            .await?;
        ensure!(r.errno == 0, "auth get: {r:?}");
        let printed = Keyring::parse(&String::from_utf8_lossy(&r.output))?;
        let key = printed
            .key(&EntityName::client("admin"))
            .context("auth get prints client.admin")?;
        ensure!(
            key.to_base64() == admin_key(&mon)?.to_base64(),
            "auth get printed {}, the keyring holds {}",
            key.to_base64(),
            admin_key(&mon)?.to_base64()
        );

        let r = client
            .command(r#"{"prefix": "no such command"}"#, Bytes::new())
            .await?;
        eprintln!("unknown command: {} {:?}", r.errno, r.status);
        ensure!(r.errno == -22 && !r.status.is_empty(), "{r:?}");
        ensure!(client.stats().sessions == 1, "{:?}", client.stats());
        client.shutdown().await;
        Ok(())
    };
    run.await
        .with_context(|| format!("the mon's output:\n{}", mon.output_tail()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_key_and_unknown_entity_fail_fast() -> anyhow::Result<()> {
    let Some(mon) = CephMon::start_cephx()? else {
        return Ok(());
    };
    for name in ["client.admin", "client.nobody"] {
        let mut cfg = config(&mon, name)?;
        cfg.key = Some(random_key());
        let client = MonClient::new(cfg).await?;
        let started = Instant::now();
        let result = tokio::time::timeout(WAIT, client.authenticate()).await?;
        let took = started.elapsed();
        client.shutdown().await;
        match result {
            Err(MonClientError::AuthRefused {
                ref entity,
                result: -13,
                mon: at,
            }) if entity == name && at == mon.addr() => {}
            other => anyhow::bail!("{name}: {other:?}"),
        }
        let text = result.map_err(|e| e.to_string()).err().unwrap_or_default();
        eprintln!("{name}: refused in {took:.2?}: {text}");
        ensure!(text.contains(name) && text.contains("EACCES"), "{text}");
        ensure!(
            took < Duration::from_secs(1),
            "{name} refused after {took:?}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn global_id_reclaimed_across_mon_restart() -> anyhow::Result<()> {
    let Some(mut mon) = CephMon::start_cephx()? else {
        return Ok(());
    };
    let client = MonClient::new(config(&mon, "client.admin")?).await?;
    tokio::time::timeout(WAIT, client.authenticate()).await??;
    let global_id = client.global_id();
    tokio::task::block_in_place(|| mon.restart())?;
    let r = tokio::time::timeout(
        WAIT,
        client.command(r#"{"prefix": "status", "format": "json"}"#, Bytes::new()),
    )
    .await??;
    ensure!(r.errno == 0, "{r:?}");
    let stats = client.stats();
    eprintln!(
        "global id {global_id} before, {} after; {stats:?}",
        client.global_id()
    );
    ensure!(stats.sessions == 2, "re-authenticated once: {stats:?}");
    ensure!(
        client.global_id() == global_id,
        "global id {global_id} became {}",
        client.global_id()
    );
    client.shutdown().await;
    // Not a coincidence of numbering: a new client after the restart gets another global id.
    let fresh = MonClient::new(config(&mon, "client.admin")?).await?;
    tokio::time::timeout(WAIT, fresh.authenticate()).await??;
    eprintln!(
        "a new client after the restart: global id {}",
        fresh.global_id()
    );
    ensure!(fresh.global_id() != global_id, "{}", fresh.global_id());
    fresh.shutdown().await;
    Ok(())
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

/// `msgr mon-command ARGS`: exit code, stdout, stderr.
async fn mon_command(bin: &PathBuf, args: &[&str]) -> anyhow::Result<(i32, String, String)> {
    let child = tokio::process::Command::new(bin)
        .arg("mon-command")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let out = tokio::time::timeout(WAIT, child.wait_with_output()).await??;
    let code = out.status.code().context("killed by a signal")?;
    Ok((
        code,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mon_command_cli_against_cephx_and_none_mons() -> anyhow::Result<()> {
    let Some(bin) = msgr_binary()? else {
        return Ok(());
    };
    let Some(cephx) = CephMon::start_cephx()? else {
        return Ok(());
    };
    let Some(none) = CephMon::start()? else {
        return Ok(());
    };
    let status = r#"{"prefix": "status", "format": "json"}"#;
    let unknown = r#"{"prefix": "no such command"}"#;

    // cephx, as the issue writes it: -m, -n, -k.
    let addr = format!("v1:{}", cephx.addr());
    let keyring = cephx.admin_keyring().context("cephx mon")?;
    let keyring = keyring.to_str().context("utf-8 path")?;
    let (code, out, err) = mon_command(
        &bin,
        &["-m", &addr, "-n", "client.admin", "-k", keyring, status],
    )
    .await?;
    ensure!(code == 0, "exit {code}: {err}");
    let json: serde_json::Value = serde_json::from_str(&out).with_context(|| out.clone())?;
    ensure!(json["fsid"].as_str() == Some(cephx.fsid()), "{out}");

    // The mon's own ceph.conf (-c): mon_host and keyring from it. An unknown command exits with its errno.
    let conf = cephx.conf_path().to_str().context("utf-8 path")?.to_owned();
    let (code, out, err) = mon_command(&bin, &["-c", &conf, unknown]).await?;
    eprintln!("cephx, unknown command: exit {code}, stderr {err:?}");
    ensure!(code == 22 && out.is_empty(), "exit {code}: {out} {err}");
    ensure!(
        !err.trim().is_empty() && err.lines().count() == 1,
        "{err:?}"
    );

    // A wrong key: exit 13 (EACCES, as `ceph`), one line naming the entity.
    let dir = tempfile::tempdir()?;
    let wrong = dir.path().join("wrong.keyring");
    let mut ring = Keyring::new();
    ring.insert(
        EntityName::client("admin"),
        KeyringEntry {
            key: random_key(),
            caps: Default::default(),
        },
    );
    std::fs::write(&wrong, ring.to_text())?;
    let wrong = wrong.to_str().context("utf-8 path")?;
    let started = Instant::now();
    let (code, out, err) = mon_command(&bin, &["-m", &addr, "-k", wrong, status]).await?;
    eprintln!(
        "wrong key: exit {code} after {:.2?}: {err:?}",
        started.elapsed()
    );
    ensure!(code == 13 && out.is_empty(), "exit {code}: {out} {err}");
    ensure!(
        err.lines().count() == 1 && err.contains("client.admin") && err.contains("EACCES"),
        "{err:?}"
    );

    // The auth-none mon, through its ceph.conf (auth_client_required = none: no keyring needed).
    let conf = none.conf_path().to_str().context("utf-8 path")?.to_owned();
    let (code, out, err) = mon_command(&bin, &["-c", &conf, status]).await?;
    ensure!(code == 0, "exit {code}: {err}");
    let json: serde_json::Value = serde_json::from_str(&out).with_context(|| out.clone())?;
    ensure!(json["fsid"].as_str() == Some(none.fsid()), "{out}");
    let (code, _, err) = mon_command(&bin, &["-c", &conf, unknown]).await?;
    ensure!(code == 22 && !err.trim().is_empty(), "exit {code}: {err}");
    Ok(())
}

/// What a peer mon presents: authorizers from tickets it mints with the `mon.` key (the cephx spec's §B.4);
/// it verifies no one (this test only connects).
struct MonPeer {
    key: CryptoKey,
}

impl msgr_pipe::Authorizer for MonPeer {
    fn build(
        &self,
        _peer_type: msgr_wire::EntityType,
        _retry: bool,
    ) -> msgr_pipe::BoxFuture<'_, Option<Box<dyn msgr_pipe::ClientAuthorizer>>> {
        let built = (|| {
            let mut rng = rand::thread_rng();
            let (ticket, session_key) = msgr_auth::cephx::general_service_ticket(
                &self.key,
                EntityName::new(msgr_auth::ENTITY_MON, ""),
                0,
                msgr_auth::UTime::now(),
                msgr_auth::UTime::from_secs(3600),
                &mut rng,
            )?;
            msgr_auth::provider::CephxClientAuthorizer::from_ticket(
                0,
                msgr_auth::ENTITY_MON,
                ticket,
                session_key,
                rand::random(),
            )
        })();
        Box::pin(async move {
            built
                .ok()
                .map(|a| Box::new(a) as Box<dyn msgr_pipe::ClientAuthorizer>)
        })
    }

    fn verify(
        &self,
        _peer_type: msgr_wire::EntityType,
        _protocol: u32,
        _authorizer: &[u8],
        _challenge: &mut msgr_pipe::ChallengeState,
        _features: u64,
    ) -> Result<msgr_pipe::VerifyOutcome, msgr_pipe::AuthError> {
        Err(msgr_pipe::AuthError::BadAuthorizer {
            reason: "this peer mon accepts no one",
        })
    }
}

/// Forwards every received message.
struct Inbox(tokio::sync::mpsc::UnboundedSender<msgr_wire::Message>);

impl msgr_core::Dispatcher for Inbox {
    fn dispatch(
        &self,
        msg: msgr_core::Received,
    ) -> msgr_core::BoxFuture<'_, msgr_core::Dispatched> {
        let _ = self.0.send(msg.msg);
        Box::pin(async { msgr_core::Dispatched::Handled })
    }
}

/// A messenger named `mon.1` that connects to the real mon as a peer mon with `authorizer`.
async fn peer_mon(
    authorizer: Arc<dyn msgr_pipe::Authorizer>,
) -> anyhow::Result<(
    msgr_core::Messenger,
    tokio::sync::mpsc::UnboundedReceiver<msgr_wire::Message>,
)> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let m =
        msgr_core::Messenger::builder(msgr_wire::EntityName::new(msgr_wire::EntityType::MON, 1))
            .policy(
                msgr_wire::EntityType::MON,
                msgr_pipe::Policy::lossless_peer(0),
            )
            .dispatcher(Arc::new(Inbox(tx)))
            .authorizer(authorizer)
            .start()
            .await?;
    Ok((m, rx))
}

fn mon_key(mon: &CephMon) -> anyhow::Result<CryptoKey> {
    let ring = Keyring::load(&mon.mon_keyring().context("a cephx mon")?)?;
    Ok(ring
        .key(&EntityName::new(msgr_auth::ENTITY_MON, ""))
        .context("mon. in the mon's keyring")?
        .clone())
}

/// MMonGetVersion of the monmap, tid `tid`.
fn get_version(tid: u64) -> msgr_wire::Message {
    let req = msgr_ceph::MMonGetVersion {
        handle: tid,
        what: "monmap".into(),
    };
    msgr_wire::Message::new(msgr_ceph::MMonGetVersion::TYPE, req.to_front())
        .with_version(
            msgr_ceph::MMonGetVersion::VERSION,
            msgr_ceph::MMonGetVersion::VERSION,
        )
        .with_tid(tid)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_mon_authorizes_with_the_mon_key_and_messages_are_signed_both_ways(
) -> anyhow::Result<()> {
    let Some(mon) = CephMon::start_cephx()? else {
        return Ok(());
    };
    let (m, mut rx) = peer_mon(Arc::new(MonPeer {
        key: mon_key(&mon)?,
    }))
    .await?;
    let conn = m.connect_lazy(
        msgr_wire::EntityAddr::new(mon.addr(), 0),
        msgr_wire::EntityType::MON,
    )?;
    conn.send(get_version(7)).await?;
    let reply = tokio::time::timeout(WAIT, rx.recv())
        .await
        .context("the mon answers a signed request")?
        .context("messenger ended")?;
    eprintln!(
        "mon answered type {:#x} tid {} footer flags {:#x} sig {:#x}",
        reply.header.ty, reply.header.tid, reply.footer.flags, reply.footer.sig
    );
    ensure!(
        reply.footer.flags & msgr_auth::signature::FOOTER_SIGNED != 0,
        "the mon signs its messages"
    );
    ensure!(conn.stats().faults == 0, "{:?}", conn.stats());
    m.shutdown();
    Ok(())
}

/// [`MonPeer`]'s authorizers, but the connection's signer has another key: every signature it puts on a message
/// is wrong for the mon.
struct BadSigner(MonPeer);

/// A real authorizer whose reply check hands out a signer with the wrong key.
struct WrongKeySigner(Box<dyn msgr_pipe::ClientAuthorizer>);

impl msgr_pipe::ClientAuthorizer for WrongKeySigner {
    fn protocol(&self) -> u32 {
        self.0.protocol()
    }
    fn bytes(&self) -> Bytes {
        self.0.bytes()
    }
    fn add_challenge(&mut self, challenge: &[u8]) -> Result<(), msgr_pipe::AuthError> {
        self.0.add_challenge(challenge)
    }
    fn verify_reply(
        &self,
        reply: &[u8],
        features: u64,
    ) -> Result<Option<msgr_pipe::MessageSigner>, msgr_pipe::AuthError> {
        let good = self.0.verify_reply(reply, features)?.context_free()?;
        Ok(Some(msgr_pipe::MessageSigner::new(
            random_key(),
            good.format(),
        )))
    }
}

/// `Option<T>` to a result with an auth error (the reply check must give a signer).
trait ContextFree<T> {
    fn context_free(self) -> Result<T, msgr_pipe::AuthError>;
}

impl<T> ContextFree<T> for Option<T> {
    fn context_free(self) -> Result<T, msgr_pipe::AuthError> {
        self.ok_or(msgr_pipe::AuthError::BadAuthorizer {
            reason: "no signer",
        })
    }
}

impl msgr_pipe::Authorizer for BadSigner {
    fn build(
        &self,
        peer_type: msgr_wire::EntityType,
        retry: bool,
    ) -> msgr_pipe::BoxFuture<'_, Option<Box<dyn msgr_pipe::ClientAuthorizer>>> {
        Box::pin(async move {
            self.0
                .build(peer_type, retry)
                .await
                .map(|a| Box::new(WrongKeySigner(a)) as Box<dyn msgr_pipe::ClientAuthorizer>)
        })
    }
    fn verify(
        &self,
        peer_type: msgr_wire::EntityType,
        protocol: u32,
        authorizer: &[u8],
        challenge: &mut msgr_pipe::ChallengeState,
        features: u64,
    ) -> Result<msgr_pipe::VerifyOutcome, msgr_pipe::AuthError> {
        self.0
            .verify(peer_type, protocol, authorizer, challenge, features)
    }
}

/// msgr2 between mons: a messenger named `mon.1` connects to the real mon's v2 address with
/// an authorizer from a ticket minted with the `mon.` key (authorizer mode, challenged by the
/// mon), in crc mode and in secure mode (the mon's authorizer reply carries the connection
/// secret), and the mon answers its request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_mon_over_msgr2_in_crc_and_secure_mode() -> anyhow::Result<()> {
    let Some(mon) = ceph::CephMon::start_v2(ceph::MonAuth::Cephx)? else {
        return Ok(());
    };
    let v2 = mon.v2_addr().context("v2 address")?;
    for mode in [msgr_pipe::ConMode::Crc, msgr_pipe::ConMode::Secure] {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut config = msgr_core::MessengerConfig::default();
        config.pipe.con_modes.client = vec![mode];
        let m = msgr_core::Messenger::builder(msgr_wire::EntityName::new(
            msgr_wire::EntityType::MON,
            1,
        ))
        .config(config)
        .policy(
            msgr_wire::EntityType::MON,
            msgr_pipe::Policy::lossless_peer(0),
        )
        .dispatcher(Arc::new(Inbox(tx)))
        .authorizer(Arc::new(MonPeer {
            key: mon_key(&mon)?,
        }))
        .start()
        .await?;
        let conn = m.connect_lazy(msgr_wire::EntityAddr::v2(v2, 0), msgr_wire::EntityType::MON)?;
        conn.send(get_version(7)).await?;
        let reply = tokio::time::timeout(WAIT, rx.recv())
            .await
            .context("the mon answers over msgr2")?
            .context("messenger ended")?;
        ensure!(reply.header.tid == 7, "{:?}", reply.header);
        let session = conn.session().context("a session")?;
        ensure!(session.con_mode() == Some(mode), "{:?}", session.con_mode());
        ensure!(session.auth().0 == msgr_auth::CEPH_AUTH_CEPHX);
        ensure!(conn.stats().faults == 0, "{:?}", conn.stats());
        m.shutdown();
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_signature_gets_the_connection_dropped_by_the_mon() -> anyhow::Result<()> {
    let Some(mon) = CephMon::start_cephx()? else {
        return Ok(());
    };
    let (m, mut rx) = peer_mon(Arc::new(BadSigner(MonPeer {
        key: mon_key(&mon)?,
    })))
    .await?;
    let conn = m.connect_lazy(
        msgr_wire::EntityAddr::new(mon.addr(), 0),
        msgr_wire::EntityType::MON,
    )?;
    conn.send(get_version(8)).await?;
    // The handshake succeeds (the authorizer is good); the first signed message is not: the mon drops the socket,
    // and again on each reconnect with the resent request.
    let started = Instant::now();
    while conn.stats().faults < 2 {
        ensure!(
            started.elapsed() < WAIT,
            "the mon kept the connection: {:?}",
            conn.stats()
        );
        if let Ok(Some(reply)) = tokio::time::timeout(Duration::from_millis(100), rx.recv()).await {
            anyhow::bail!(
                "the mon answered a badly signed request: type {:#x}",
                reply.header.ty
            );
        }
    }
    ensure!(
        conn.stats().reconnects >= 1,
        "handshakes succeeded: {:?}",
        conn.stats()
    );
    eprintln!(
        "dropped {} times in {:.2?}",
        conn.stats().faults,
        started.elapsed()
    );
    // The mon says why (CephxSessionHandler, at its default log level).
    let log = std::fs::read_to_string(mon.log_path()).unwrap_or_default();
    ensure!(
        log.contains("Message signature does not match contents"),
        "the mon's log does not show the signature check"
    );
    m.shutdown();
    Ok(())
}

/// A msgr messenger in the mon role (`MonService`: cephx from a keyring with client.admin's `key`) on a free
/// loopback port, and a ceph.conf + keyring for Ceph's own `ceph` CLI with `cli_key`.
struct MsgrMon {
    service: msgr_monc::MonService,
    messenger: msgr_core::Messenger,
    dir: tempfile::TempDir,
    conf: PathBuf,
}

async fn msgr_mon(key: &CryptoKey, cli_key: &CryptoKey) -> anyhow::Result<MsgrMon> {
    let mut ring = Keyring::new();
    ring.insert(
        EntityName::client("admin"),
        KeyringEntry {
            key: key.clone(),
            caps: [("mon".to_owned(), "allow *".to_owned())].into(),
        },
    );
    let server = msgr_auth::provider::CephxAuthServer::new(
        ring.clone(),
        msgr_auth::provider::TicketTtls::default(),
        4200,
        Box::new(<rand::rngs::StdRng as rand::SeedableRng>::from_entropy()),
    );
    // Bound at port 0 and told its address once listening: a port chosen first and bound
    // later may be taken meanwhile (another test's outgoing connection got one).
    let any = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let fsid = ceph::random_fsid();
    let service = msgr_monc::MonService::new(Arc::new(server), ring, fsid.parse()?, "a", any);
    let messenger = msgr_core::Messenger::builder(msgr_wire::EntityName::mon(0))
        .config(msgr_core::MessengerConfig {
            nonce: Some(0),
            ..msgr_core::MessengerConfig::default()
        })
        .bind(any)
        .default_policy(msgr_pipe::Policy::stateless_server(0))
        .dispatcher(service.dispatcher())
        .start()
        .await?;
    let addr = messenger.addr().addr;
    service.announce_v1(addr);
    let dir = tempfile::tempdir()?;
    let keyring = dir.path().join("cli.keyring");
    let mut cli_ring = Keyring::new();
    cli_ring.insert(
        EntityName::client("admin"),
        KeyringEntry {
            key: cli_key.clone(),
            caps: Default::default(),
        },
    );
    std::fs::write(&keyring, cli_ring.to_text())?;
    let conf = dir.path().join("ceph.conf");
    ceph::write_conf_auth(&conf, dir.path(), &fsid, addr, Some(&keyring))?;
    Ok(MsgrMon {
        service,
        messenger,
        dir,
        conf,
    })
}

/// Runs `ceph status` against `mon` until the service saw `done` (the CLI does not finish: our mon serves no
/// status), then kills it.
async fn ceph_cli_until(
    mon: &MsgrMon,
    done: impl Fn(&msgr_monc::MonService) -> bool,
) -> anyhow::Result<bool> {
    let addr = format!("v1:{}", mon.messenger.addr().addr);
    let mut child = ceph::ceph_cli_command_at(&mon.conf, &addr, &["status"]).spawn()?;
    let started = Instant::now();
    let seen = loop {
        if done(&mon.service) {
            break true;
        }
        if started.elapsed() > WAIT {
            break false;
        }
        if let Ok(Some(_)) = child.try_wait() {
            break done(&mon.service);
        }
        // Polls the service's log while the CLI runs (its requests have no reply to wait on).
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let _ = child.kill().await;
    Ok(seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cephs_own_cli_authenticates_to_a_msgr_mon_and_goes_on() -> anyhow::Result<()> {
    if !ceph::ceph_tools_present(&["ceph"])? {
        return Ok(());
    }
    let key = random_key();
    let mon = msgr_mon(&key, &key).await?;
    let ok = ceph_cli_until(&mon, |s| !s.requests().is_empty()).await?;
    let log = mon.service.auth_log();
    ensure!(
        ok,
        "the CLI made no request after authentication; auth log {log:?}"
    );
    // Negotiation, then cephx rounds, all accepted; then a request (subscribe or get-version).
    ensure!(log.first().is_some_and(|s| s.protocol == 0), "{log:?}");
    ensure!(
        log.iter().any(|s| s.protocol == msgr_auth::CEPH_AUTH_CEPHX),
        "{log:?}"
    );
    ensure!(log.iter().all(|s| s.result == 0), "{log:?}");
    let first = mon.service.requests()[0];
    ensure!(
        first == msgr_ceph::MMonSubscribe::TYPE || first == msgr_ceph::MMonGetVersion::TYPE,
        "first request {first:#x}"
    );
    eprintln!(
        "the ceph CLI authenticated ({} MAuth) and asked {:x?}",
        log.len(),
        mon.service.requests()
    );

    // With another key the CLI is refused and asks nothing.
    let wrong = msgr_mon(&key, &random_key()).await?;
    let refused = ceph_cli_until(&wrong, |s| s.auth_log().iter().any(|a| a.result != 0)).await?;
    ensure!(refused, "no refusal logged: {:?}", wrong.service.auth_log());
    ensure!(
        wrong.service.requests().is_empty(),
        "{:?}",
        wrong.service.requests()
    );
    mon.messenger.shutdown();
    wrong.messenger.shutdown();
    drop((mon.dir, wrong.dir));
    Ok(())
}

/// Registers `osd.0` with the real mon (as `ceph auth get-or-create` would) and returns its key.
async fn register_osd(admin: &MonClient) -> anyhow::Result<CryptoKey> {
    let r = admin
        .command(
            r#"{"prefix": "auth get-or-create", "entity": "osd.0", "caps": ["mon", "allow profile osd", "osd", "allow *"], "format": "plain"}"#,
            Bytes::new(),
        )
        .await?;
    ensure!(r.errno == 0, "auth get-or-create: {r:?}");
    let ring = Keyring::parse(std::str::from_utf8(&r.output)?)?;
    Ok(ring
        .key(&"osd.0".parse()?)
        .context("osd.0 in the reply")?
        .clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_msgr_osd_verifies_tickets_the_real_mon_issued_with_its_rotating_keys(
) -> anyhow::Result<()> {
    let Some(mon) = CephMon::start_cephx()? else {
        return Ok(());
    };
    let admin = MonClient::new(config(&mon, "client.admin")?).await?;
    tokio::time::timeout(WAIT, admin.authenticate()).await??;
    let osd_key = register_osd(&admin).await?;
    // osd.0 authenticates to the mon and gets the OSD rotating keys.
    let mut osd_cfg = config(&mon, "osd.0")?;
    osd_cfg.key = Some(osd_key);
    let osd_monc = MonClient::new(osd_cfg).await?;
    tokio::time::timeout(WAIT, osd_monc.authenticate()).await??;
    let (tx, mut osd_rx) = tokio::sync::mpsc::unbounded_channel();
    let osd = msgr_core::Messenger::builder(msgr_wire::EntityName::osd(0))
        .bind("127.0.0.1:0".parse()?)
        .default_policy(msgr_pipe::Policy::stateless_server(0))
        .dispatcher(Arc::new(Inbox(tx)))
        .authorizer(osd_monc.authorizer())
        .start()
        .await?;
    // client.admin presents the OSD ticket the real mon gave it.
    let (ctx, _crx) = tokio::sync::mpsc::unbounded_channel();
    let app =
        msgr_core::Messenger::builder(msgr_wire::EntityName::client(admin.global_id() as i64))
            .dispatcher(Arc::new(Inbox(ctx)))
            .authorizer(admin.authorizer())
            .start()
            .await?;
    let conn = app.connect_lazy(osd.addr(), msgr_wire::EntityType::OSD)?;
    for i in 0..3u64 {
        conn.send(msgr_wire::Message::new(0x4242, i.to_le_bytes().to_vec()))
            .await?;
    }
    for i in 0..3u64 {
        let m = tokio::time::timeout(WAIT, osd_rx.recv())
            .await
            .context("the osd receives")?
            .context("open")?;
        ensure!(m.front[..] == i.to_le_bytes()[..]);
        ensure!(
            m.footer.flags & msgr_auth::signature::FOOTER_SIGNED != 0,
            "signed"
        );
    }
    ensure!(conn.stats().faults == 0, "{:?}", conn.stats());
    // A client with a ticket from elsewhere (another mon's keys) is refused.
    let stranger = msgr_core::Messenger::builder(msgr_wire::EntityName::client(999))
        .authorizer(Arc::new(
            msgr_core::ProviderAuthorizer::new().with_client(Box::new(forged_admin())),
        ))
        .start()
        .await?;
    let bad = stranger.connect_lazy(osd.addr(), msgr_wire::EntityType::OSD)?;
    let mut failures = bad
        .session()
        .context("a remote session")?
        .handshake_failures();
    let refused = tokio::time::timeout(
        WAIT,
        failures.wait_for(|f| f.as_ref().is_some_and(|f| f.fatal)),
    )
    .await
    .context("refused in time")?
    .map(|f| f.clone());
    ensure!(
        matches!(refused.ok().flatten(), Some(f) if matches!(*f.error, msgr_pipe::PipeError::AuthorizerRefused)),
        "the stranger's ticket is refused"
    );
    app.shutdown();
    osd.shutdown();
    stranger.shutdown();
    Ok(())
}

/// client.admin with an OSD ticket from an in-memory mon that is not the cluster's.
fn forged_admin() -> msgr_auth::provider::CephxClient {
    use msgr_auth::provider::{AuthClient, AuthServer, ClientProgress};
    let key = random_key();
    let mut ring = Keyring::new();
    ring.insert(
        EntityName::client("admin"),
        KeyringEntry {
            key: key.clone(),
            caps: Default::default(),
        },
    );
    let other = msgr_auth::provider::CephxAuthServer::new(
        ring,
        msgr_auth::provider::TicketTtls::default(),
        5000,
        Box::new(<rand::rngs::StdRng as rand::SeedableRng>::from_entropy()),
    );
    let mut c = msgr_auth::provider::CephxClient::new(
        EntityName::client("admin"),
        key,
        msgr_auth::ENTITY_OSD,
        Box::new(<rand::rngs::StdRng as rand::SeedableRng>::from_entropy()),
    );
    let now = msgr_auth::UTime::now();
    let (mut session, reply) = other.start_session(c.name(), 0, now);
    c.set_global_id(reply.global_id);
    let mut progress = c.handle_reply(now, reply.result, &reply.payload);
    while let Ok(ClientProgress::More) = progress {
        let Ok(req) = c.build_request(now) else { break };
        let reply = session.handle_request(now, &req);
        progress = c.handle_reply(now, reply.result, &reply.payload);
    }
    c
}

/// `msgr serve ARGS` as a child: its address (first line of stdout) and the process (killed on drop).
async fn msgr_serve(
    bin: &PathBuf,
    args: &[&str],
) -> anyhow::Result<(String, tokio::process::Child)> {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(bin)
        .arg("serve")
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let stdout = child.stdout.take().context("stdout")?;
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let addr = tokio::time::timeout(WAIT, lines.next_line())
        .await
        .context("msgr serve prints its address")??
        .context("msgr serve ended before printing its address")?;
    // The rest of stdout (its --log-messages lines) is gathered for the test to read.
    Ok((addr, child_with_lines(child, lines)))
}

/// Re-attaches the rest of stdout to the child (read later by `serve_log`).
fn child_with_lines(
    child: tokio::process::Child,
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
) -> tokio::process::Child {
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let sink = log.clone();
    tokio::spawn(async move {
        let mut lines = lines;
        while let Ok(Some(l)) = lines.next_line().await {
            sink.lock().map(|mut v| v.push(l)).ok();
        }
    });
    SERVE_LOG.with(|l| *l.borrow_mut() = Some(log));
    child
}

thread_local! {
    static SERVE_LOG: std::cell::RefCell<Option<std::sync::Arc<std::sync::Mutex<Vec<String>>>>> =
        const { std::cell::RefCell::new(None) };
}

#[tokio::test(flavor = "current_thread")]
async fn msgr_serve_as_osd_verifies_real_tickets_and_a_signed_bench_runs_through_it(
) -> anyhow::Result<()> {
    let Some(mon) = CephMon::start_cephx()? else {
        return Ok(());
    };
    let Some(bin) = msgr_binary()? else {
        return Ok(());
    };
    let admin = MonClient::new(config(&mon, "client.admin")?).await?;
    tokio::time::timeout(WAIT, admin.authenticate()).await??;
    let osd_key = register_osd(&admin).await?;
    admin.shutdown().await;
    let dir = tempfile::tempdir()?;
    let keyring = dir.path().join("osd.0.keyring");
    let mut ring = Keyring::new();
    ring.insert(
        "osd.0".parse()?,
        KeyringEntry {
            key: osd_key,
            caps: Default::default(),
        },
    );
    std::fs::write(&keyring, ring.to_text())?;
    let conf = mon.conf_path().to_str().context("utf-8 path")?.to_owned();
    let kr = keyring.to_str().context("utf-8 path")?.to_owned();
    let (addr, mut serve) = msgr_serve(
        &bin,
        &[
            "-n",
            "osd.0",
            "-k",
            &kr,
            "-c",
            &conf,
            "--bind",
            "127.0.0.1:0",
            "--log-messages",
        ],
    )
    .await?;
    // A verified bench through it, with client.admin's real ticket, every message signed.
    let out = tokio::time::timeout(
        WAIT,
        tokio::process::Command::new(&bin)
            .args([
                "bench", "--server", &addr, "-c", &conf, "--mode", "rr", "--size", "4K",
            ])
            .args(["--count", "200", "--verify", "--json"])
            .kill_on_drop(true)
            .output(),
    )
    .await??;
    ensure!(
        out.status.success(),
        "bench through msgr serve -n osd.0: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    for key in ["lost", "duplicated", "reordered", "corrupted"] {
        ensure!(report[key] == 0, "{key}: {report}");
    }
    let log = SERVE_LOG
        .with(|l| l.borrow().clone())
        .context("serve's log")?;
    let lines = log.lock().map(|v| v.clone()).unwrap_or_default();
    let signed = lines
        .iter()
        .filter(|l| l.contains("\"auth\":\"cephx\"") && l.contains("\"signed\":true"))
        .count();
    ensure!(
        signed >= 200,
        "{signed} signed cephx messages logged of {}",
        lines.len()
    );
    // Without a ticket the bench is refused.
    let out = tokio::time::timeout(
        WAIT,
        tokio::process::Command::new(&bin)
            .args([
                "bench", "--server", &addr, "--mode", "rr", "--size", "4K", "--count", "10",
                "--json",
            ])
            .kill_on_drop(true)
            .output(),
    )
    .await??;
    ensure!(!out.status.success(), "an unauthenticated bench ran");
    let _ = serve.kill().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cephs_own_cli_authenticates_to_msgr_serve_as_mon() -> anyhow::Result<()> {
    if !ceph::ceph_tools_present(&["ceph"])? {
        return Ok(());
    }
    let Some(bin) = msgr_binary()? else {
        return Ok(());
    };
    let dir = tempfile::tempdir()?;
    let key = random_key();
    let mut ring = Keyring::new();
    ring.insert(
        EntityName::client("admin"),
        KeyringEntry {
            key: key.clone(),
            caps: [("mon".to_owned(), "allow *".to_owned())].into(),
        },
    );
    let keyring = dir.path().join("mon.keyring");
    std::fs::write(&keyring, ring.to_text())?;
    let kr = keyring.to_str().context("utf-8")?.to_owned();
    let (addr, mut serve) = msgr_serve(
        &bin,
        &[
            "-n",
            "mon.0",
            "-k",
            &kr,
            "--bind",
            "127.0.0.1:0",
            "--log-messages",
        ],
    )
    .await?;
    let log = SERVE_LOG
        .with(|l| l.borrow().clone())
        .context("serve's log")?;
    let sock: std::net::SocketAddr = addr
        .trim_start_matches("v1:")
        .split('/')
        .next()
        .context("addr")?
        .parse()?;
    // Where the MMonSubscribes (type 15) serve logged came from (`peer`: each CLI process
    // has an address of its own): only an authenticated CLI gets to send one.
    let subscribers = |log: &Arc<std::sync::Mutex<Vec<String>>>| -> Vec<String> {
        log.lock()
            .map(|v| {
                v.iter()
                    .filter(|l| l.contains("\"type\":15,"))
                    .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                    .filter_map(|j| j.get("peer").and_then(|s| s.as_str()).map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    // Runs `ceph status` with `cli_key` until serve logged a request after authentication
    // (MMonSubscribe) from a peer not in `others`, or for at most a few seconds; the peers of
    // such requests. A CLI killed after its first one may have more in flight, logged later
    // (several arrive at once): the next run leaves those out by their peer.
    let run_cli = |cli_key: CryptoKey, others: Vec<String>| {
        let dir = dir.path().to_owned();
        let log = log.clone();
        async move {
            let mut cli_ring = Keyring::new();
            cli_ring.insert(
                EntityName::client("admin"),
                KeyringEntry {
                    key: cli_key,
                    caps: Default::default(),
                },
            );
            let n: u32 = rand::random();
            let cli_keyring = dir.join(format!("cli-{n}.keyring"));
            std::fs::write(&cli_keyring, cli_ring.to_text())?;
            let conf = dir.join(format!("cli-{n}.conf"));
            ceph::write_conf_auth(&conf, &dir, &ceph::random_fsid(), sock, Some(&cli_keyring))?;
            let before = subscribers(&log).len();
            let new = || -> Vec<String> {
                let all = subscribers(&log);
                let after = all.get(before..).unwrap_or_default();
                after
                    .iter()
                    .filter(|s| !others.contains(s))
                    .cloned()
                    .collect()
            };
            let mut cli =
                ceph::ceph_cli_command_at(&conf, &format!("v1:{sock}"), &["status"]).spawn()?;
            let started = Instant::now();
            // Polls serve's log while the CLI runs (it never finishes: our mon has no status).
            while new().is_empty() && started.elapsed() < Duration::from_secs(5) {
                if let Ok(Some(_)) = cli.try_wait() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let _ = cli.kill().await;
            anyhow::Ok(new())
        }
    };
    let good = run_cli(key.clone(), Vec::new()).await?;
    ensure!(
        !good.is_empty(),
        "the CLI did not go on to subscribe after authenticating"
    );
    let bad = run_cli(random_key(), good.clone()).await?;
    ensure!(
        bad.is_empty(),
        "a CLI with a wrong key subscribed: {bad:?} (the good CLI was {good:?})"
    );
    let mauths = log
        .lock()
        .map(|v| v.iter().filter(|l| l.contains("\"type\":17,")).count())
        .unwrap_or(0);
    ensure!(mauths >= 3, "MAuth rounds logged: {mauths}");
    let _ = serve.kill().await;
    Ok(())
}
