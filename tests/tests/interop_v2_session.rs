//! msgr's sessions over msgr2 against a real ceph-mon (Pacific) that binds v2: a Messenger
//! connection to the mon's `v2:` address (the session's v2 connector in mon mode: auth
//! `none`, crc mode) answered keepalives; `msgr ping v2:` does the same from the command line.
//!
//! Without Ceph on the PATH the tests print why and pass, unless `MSGR_REQUIRE_CEPH` is set.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{ensure, Context};
use msgr_core::{ConMode, EntityAddr, EntityName, EntityType, Messenger, Policy, StreamDispatcher};
use msgr_tests::ceph::{self, CephMon, MonAuth};

const WAIT: Duration = Duration::from_secs(30);

/// A client messenger's session to the mon's v2 address opens (mon mode, auth none, crc)
/// and its keepalives are answered; the session says it is msgr2 in crc mode.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_messenger_session_to_a_v2_mon_opens_and_keepalives_are_answered() -> anyhow::Result<()> {
    let Some(mon) = CephMon::start_v2(MonAuth::None)? else {
        return Ok(());
    };
    let v2 = mon.v2_addr().context("v2 address")?;
    let (d, _incoming) = StreamDispatcher::new(64);
    let m = Messenger::builder(EntityName::client(-1))
        .bind("127.0.0.1:0".parse()?)
        .policy(EntityType::MON, Policy::lossy_client(0))
        .dispatcher(Arc::new(d))
        .start()
        .await?;
    // A mon that has just won its election resets sessions until its auth service is
    // readable: try again for a while, as a MonClient hunts.
    let started = std::time::Instant::now();
    let conn = loop {
        match tokio::time::timeout(WAIT, m.connect(EntityAddr::v2(v2, 0), EntityType::MON)).await {
            Ok(Ok(c)) => break c,
            Ok(Err(e)) if started.elapsed() < WAIT => {
                eprintln!("not yet: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => anyhow::bail!("no session within {WAIT:?}"),
        }
    };
    let session = conn.session().context("a session")?;
    ensure!(
        session.con_mode() == Some(ConMode::Crc),
        "{:?}",
        session.con_mode()
    );
    let mut acks = session.keepalive_acks();
    for _ in 0..3 {
        conn.send_keepalive();
        tokio::time::timeout(WAIT, acks.next())
            .await
            .context("the mon answers the keepalive")??;
    }
    msgr_core::testing::stop(&m).await;
    Ok(())
}

/// `msgr ping --count 3 v2:IP:PORT` against the mon: three replies, exit 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn msgr_ping_v2_reaches_a_real_mon() -> anyhow::Result<()> {
    let Some(bin) = msgr_binary()? else {
        return Ok(());
    };
    let Some(mon) = CephMon::start_v2(MonAuth::None)? else {
        return Ok(());
    };
    let v2 = mon.v2_addr().context("v2 address")?;
    let target = format!("v2:{v2}");
    let started = std::time::Instant::now();
    loop {
        let out = tokio::process::Command::new(&bin)
            .args([
                "ping",
                "--count",
                "3",
                "-i",
                "0.1",
                "--peer-type",
                "mon",
                &target,
            ])
            .output()
            .await?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.success() {
            ensure!(
                stdout.matches("keepalive2 reply from").count() == 3,
                "{stdout}"
            );
            ensure!(stdout.contains("3 sent, 3 received"), "{stdout}");
            ensure!(stdout.contains("handshake with a mon"), "{stdout}");
            return Ok(());
        }
        ensure!(
            started.elapsed() < WAIT,
            "msgr ping failed: {stdout}\n{stderr}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Where `cargo test` put the `msgr` binary (`target/debug/msgr`).
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
    eprintln!("skipped: {} not built", bin.display());
    Ok(None)
}

/// The MonClient with its mons' msgr2 addresses (`mon_host = v2:IP:PORT`): it authenticates
/// inside the handshake (mon mode) instead of with MAuth, then runs a mon command: with auth
/// none in crc mode, with cephx in crc mode and in secure mode (AES-128-GCM keyed by the
/// connection secret the mon handed out in AUTH_DONE). Each session says its mode.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mon_client_authenticates_over_msgr2_and_runs_a_command() -> anyhow::Result<()> {
    use msgr_monc::{ClientOptions, MonClient, MonClientConfig};
    for (auth, modes) in [
        (MonAuth::None, vec![ConMode::Secure, ConMode::Crc]),
        (MonAuth::Cephx, vec![ConMode::Crc]),
        (MonAuth::Cephx, vec![ConMode::Secure, ConMode::Crc]),
    ] {
        let Some(mon) = CephMon::start_v2(auth)? else {
            return Ok(());
        };
        let v2 = mon.v2_addr().context("v2 address")?;
        let name: msgr_auth::EntityName = "client.admin".parse()?;
        let mut options = ClientOptions::from_ceph_conf_file(mon.conf_path(), &name)?;
        options.mon_host = msgr_monc::parse_mon_addrs(&format!("v2:{v2}"))?;
        let mut config = MonClientConfig::new(options);
        config.messenger.pipe.con_modes.mon_client = modes.clone();
        let client = MonClient::new(config).await?;
        tokio::time::timeout(WAIT, client.authenticate())
            .await
            .context("authenticates in time")??;
        ensure!(client.global_id() > 0, "a global id");
        let reply = tokio::time::timeout(
            WAIT,
            client.command(
                r#"{"prefix": "mon dump", "format": "json"}"#,
                bytes::Bytes::new(),
            ),
        )
        .await
        .context("the command is answered")??;
        ensure!(reply.errno == 0, "{reply:?}");
        let dump = String::from_utf8_lossy(&reply.output);
        ensure!(dump.contains(mon.fsid()), "{dump}");
        let conn = client
            .messenger()
            .connection(&msgr_core::EntityAddr::v2(v2, 0))
            .context("the mon session")?;
        let session = conn.session().context("a session")?;
        // auth none has no connection secret: crc whatever is offered.
        let want = match auth {
            MonAuth::None => ConMode::Crc,
            MonAuth::Cephx => modes[0],
        };
        ensure!(
            session.con_mode() == Some(want),
            "{auth:?} {modes:?}: {:?}",
            session.con_mode()
        );
        eprintln!(
            "{auth:?}, {want:?}: authenticated as client.{} over msgr2",
            client.global_id()
        );
        client.shutdown().await;
    }
    Ok(())
}

/// `msgr mon-command -m v2:IP:PORT -n client.admin -k KEYRING` against a cephx mon: the
/// command runs over msgr2 (secure mode, Ceph's `ms_mon_client_mode` default order) and
/// prints the mon's answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn msgr_mon_command_over_msgr2_with_cephx() -> anyhow::Result<()> {
    let Some(bin) = msgr_binary()? else {
        return Ok(());
    };
    let Some(mon) = CephMon::start_v2(MonAuth::Cephx)? else {
        return Ok(());
    };
    let v2 = mon.v2_addr().context("v2 address")?;
    let keyring = mon.admin_keyring().context("a keyring")?;
    let out = tokio::time::timeout(
        WAIT,
        tokio::process::Command::new(&bin)
            .args([
                "mon-command",
                "-m",
                &format!("v2:{v2}"),
                "-n",
                "client.admin",
                "-k",
            ])
            .arg(&keyring)
            .arg(r#"{"prefix": "mon dump", "format": "json"}"#)
            .output(),
    )
    .await
    .context("msgr mon-command ends")??;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(out.status.success(), "{stdout}\n{stderr}");
    ensure!(stdout.contains(mon.fsid()), "{stdout}");
    Ok(())
}

/// A msgr messenger in the mon role (`MonService`, cephx from a keyring) listening in msgr2,
/// and Ceph's own `ceph` CLI pointed at it with `ms_mon_client_mode` `mode`: the CLI
/// authenticates inside the handshake (mon mode, with the service's auth server through the
/// messenger's hook) and sends its first requests, which the service sees as authenticated;
/// with another key it is refused and asks nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cephs_own_cli_authenticates_to_a_msgr_mon_over_msgr2_in_both_modes() -> anyhow::Result<()>
{
    if !ceph::ceph_tools_present(&["ceph"])? {
        return Ok(());
    }
    let key = msgr_auth::CryptoKey::aes(rand::random());
    for mode in ["crc", "secure"] {
        let mon = msgr_mon_v2(&key, &key).await?;
        let asked = cli_until(&mon, mode, |s| !s.requests().is_empty()).await?;
        ensure!(
            asked,
            "{mode}: the CLI made no request after authenticating"
        );
        let first = mon.service.requests()[0];
        ensure!(
            [
                5,
                msgr_ceph::MMonSubscribe::TYPE,
                msgr_ceph::MMonGetVersion::TYPE
            ]
            .contains(&first),
            "{mode}: first request {first:#x}"
        );
        // No MAuth: authentication happened inside the handshake.
        ensure!(
            mon.service.auth_log().is_empty(),
            "{:?}",
            mon.service.auth_log()
        );
        eprintln!(
            "ceph CLI over msgr2 {mode}: requests {:x?}",
            mon.service.requests()
        );
        mon.messenger.shutdown();
    }
    let wrong = msgr_mon_v2(&key, &msgr_auth::CryptoKey::aes(rand::random())).await?;
    let asked = cli_until(&wrong, "secure", |s| !s.requests().is_empty()).await?;
    ensure!(
        !asked,
        "a wrong key got through: {:x?}",
        wrong.service.requests()
    );
    wrong.messenger.shutdown();
    Ok(())
}

struct MsgrMonV2 {
    service: msgr_monc::MonService,
    messenger: Messenger,
    _dir: tempfile::TempDir,
    conf: PathBuf,
    addr: std::net::SocketAddr,
}

async fn msgr_mon_v2(
    key: &msgr_auth::CryptoKey,
    cli_key: &msgr_auth::CryptoKey,
) -> anyhow::Result<MsgrMonV2> {
    use msgr_auth::{EntityName as AuthName, Keyring, KeyringEntry};
    let mut ring = Keyring::new();
    ring.insert(
        AuthName::client("admin"),
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
    // later may be taken meanwhile (the CI run at 3140061 lost one to another test).
    let any = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let fsid = ceph::random_fsid();
    let service = msgr_monc::MonService::new(Arc::new(server), ring, fsid.parse()?, "a", any);
    let messenger = Messenger::builder(EntityName::mon(0))
        .config(msgr_core::MessengerConfig {
            nonce: Some(0),
            ..msgr_core::MessengerConfig::default()
        })
        .bind_entity(EntityAddr::v2(any, 0))
        .default_policy(Policy::stateless_server(0))
        .dispatcher(service.dispatcher())
        .authorizer(service.authorizer())
        .start()
        .await?;
    ensure!(messenger.addr().is_v2());
    let addr = messenger.addr().addr;
    service.announce_v2(addr);
    let dir = tempfile::tempdir()?;
    let keyring = dir.path().join("cli.keyring");
    let mut cli_ring = Keyring::new();
    cli_ring.insert(
        AuthName::client("admin"),
        KeyringEntry {
            key: cli_key.clone(),
            caps: Default::default(),
        },
    );
    std::fs::write(&keyring, cli_ring.to_text())?;
    let conf = dir.path().join("ceph.conf");
    std::fs::write(
        &conf,
        format!(
            "[global]\nfsid = {fsid}\nmon_host = v2:{addr}\nauth_client_required = cephx\n\
             keyring = {}\nlog_file = {}/client.log\nadmin_socket = \n",
            keyring.display(),
            dir.path().display()
        ),
    )?;
    Ok(MsgrMonV2 {
        service,
        messenger,
        _dir: dir,
        conf,
        addr,
    })
}

/// Runs `ceph status` (with `ms_mon_client_mode` `mode`) against `mon` until the service saw
/// `done` or [`WAIT`] passed (the CLI does not finish: this mon serves no status).
async fn cli_until(
    mon: &MsgrMonV2,
    mode: &str,
    done: impl Fn(&msgr_monc::MonService) -> bool,
) -> anyhow::Result<bool> {
    let target = format!("v2:{}", mon.addr);
    let mut child = ceph::ceph_cli_command_at(
        &mon.conf,
        &target,
        &["--ms_mon_client_mode", mode, "status"],
    )
    .spawn()?;
    let started = std::time::Instant::now();
    let seen = loop {
        if done(&mon.service) {
            break true;
        }
        if started.elapsed() > Duration::from_secs(15) {
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

/// `--con-mode` from the command line against a cephx mon's msgr2 address: `msgr ping
/// --con-mode secure` authenticates with the mon (mon mode, secure) and pings it in secure
/// mode; `msgr mon-command --con-mode crc` runs its command in crc mode.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn con_mode_on_ping_and_mon_command_against_a_cephx_mon() -> anyhow::Result<()> {
    let Some(bin) = msgr_binary()? else {
        return Ok(());
    };
    let Some(mon) = CephMon::start_v2(MonAuth::Cephx)? else {
        return Ok(());
    };
    let target = format!("v2:{}", mon.v2_addr().context("v2 address")?);
    let keyring = mon.admin_keyring().context("a keyring")?;
    let keyring = keyring.to_str().context("utf-8 path")?;
    let run = |args: Vec<&str>| {
        let mut c = tokio::process::Command::new(&bin);
        c.args(args);
        async move {
            let out = tokio::time::timeout(WAIT, c.output())
                .await
                .context("msgr ends")??;
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            ensure!(out.status.success(), "{stdout}\n{stderr}");
            Ok::<_, anyhow::Error>(stdout)
        }
    };
    let ping = run(vec![
        "ping",
        "--count",
        "2",
        "-i",
        "0.1",
        "--peer-type",
        "mon",
        "--con-mode",
        "secure",
        "-k",
        keyring,
        "-m",
        &target,
        &target,
    ])
    .await?;
    ensure!(ping.contains("2 sent, 2 received"), "{ping}");
    let dump = run(vec![
        "mon-command",
        "--con-mode",
        "crc",
        "-m",
        &target,
        "-k",
        keyring,
        r#"{"prefix": "mon dump", "format": "json"}"#,
    ])
    .await?;
    ensure!(dump.contains(mon.fsid()), "{dump}");
    Ok(())
}
