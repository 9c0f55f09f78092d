//! Memory held by idle msgr connections: many client messengers against one `msgr serve`
//! child process, whose resident memory is read before and after.

use std::time::{Duration, Instant};

use anyhow::Context;
use msgr_core::Messenger;
use msgr_wire::{EntityAddr, EntityType};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::task::JoinSet;

use super::client::ClientSide;
use super::msgr::{end_message, start_client, Options, ANSWER_TIMEOUT};
use super::report::IdleMemory;
use super::PolicyArg;

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
        crc_data: true,
        auth: None,
        v2: false,
        con_mode: None,
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
    let conn = messenger.connect_lazy(addr, EntityType::OSD)?;
    conn.send(end_message(0)).await?;
    if let Err(e) = side.wait_end(options.timeout()).await {
        messenger.shutdown();
        return Err(e);
    }
    Ok(messenger)
}
