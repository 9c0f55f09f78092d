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
