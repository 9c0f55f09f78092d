//! `msgr mon-command`: authenticate with a mon (none or cephx) and run one mon command, as
//! `ceph` does.
//!
//! ```text
//! $ msgr mon-command -m v1:127.0.0.1:6789 -n client.admin -k admin.keyring '{"prefix": "status", "format": "json"}'
//! {"fsid":"...","health":{"status":"HEALTH_OK",...},...}
//! ```
//!
//! The command's output goes to standard output, its status string to standard error, and
//! the exit status is the command's errno (0 on success, 22 for EINVAL), as `ceph`'s. When
//! no command runs, a one-line reason goes to standard error and the exit status is the
//! errno `ceph` would give: 13 when the mon refuses our authentication (wrong key, unknown
//! entity), 110 when no mon answers within `--connect-timeout`, 1 for anything else (a
//! missing keyring, a bad option).
//!
//! Options as `ceph`'s: `-c/--conf` (default: `$CEPH_CONF`, else the first of
//! `/etc/ceph/ceph.conf`, `~/.ceph/ceph.conf`, `./ceph.conf` that exists), `-n/--name`,
//! `-k/--keyring` (instead of the conf's `keyring`), `-m/--mon` (instead of its `mon_host`),
//! `--connect-timeout` (instead of `client_mount_timeout`), `-i/--in-file` (the command's
//! input). The messenger takes the conf's `ms_*` options, as `msgr serve -c` does.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use clap::Args;
use msgr_monc::{MonClient, MonClientConfig, MonClientError};

use crate::bench::plan::parse_duration;

/// Options of `msgr mon-command`.
#[derive(Debug, Clone, Args)]
pub struct MonCommandArgs {
    /// The command, as JSON: '{"prefix": "status", "format": "json"}'.
    pub command: String,
    /// A ceph.conf (mon_host, keyring, auth_client_required, ms_* options).
    #[arg(long, short = 'c')]
    pub conf: Option<PathBuf>,
    /// Who to authenticate as.
    #[arg(long, short = 'n', default_value = "client.admin")]
    pub name: String,
    /// The keyring holding the name's key (instead of the conf's `keyring`).
    #[arg(long, short = 'k')]
    pub keyring: Option<PathBuf>,
    /// The mon(s), as mon_host: v1:IP:PORT, IP:PORT, [v2:...,v1:...], comma-separated.
    #[arg(long = "mon", short = 'm')]
    pub mon: Option<String>,
    /// How long to hunt for a mon (instead of `client_mount_timeout`, 300 s): seconds, or
    /// with a suffix (500ms).
    #[arg(long, value_parser = parse_duration)]
    pub connect_timeout: Option<Duration>,
    /// A file whose bytes are the command's input (`ceph -i FILE`).
    #[arg(long, short = 'i')]
    pub in_file: Option<PathBuf>,
    /// msgr2 to the mon (`-m v2:IP:PORT`): the connection mode to offer, crc or secure
    /// [default: Ceph's `ms_mon_client_mode`, secure then crc].
    #[arg(long, value_enum)]
    pub con_mode: Option<crate::ceph_opts::ConModeArg>,
}

/// `ETIMEDOUT`: `ceph`'s exit status when no mon answers.
const ETIMEDOUT: i32 = 110;

/// Runs `msgr mon-command`; exits with the command's errno.
pub fn run(args: MonCommandArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let code = runtime.block_on(async {
        match mon_command(&args).await {
            Ok(code) => code,
            Err(e) => {
                eprintln!("msgr mon-command: {e:#}");
                exit_code(&e)
            }
        }
    });
    drop(runtime);
    let _ = std::io::stdout().flush();
    std::process::exit(code)
}

/// The exit status of an error, as `ceph`'s.
fn exit_code(e: &anyhow::Error) -> i32 {
    match e.downcast_ref::<MonClientError>() {
        Some(MonClientError::AuthRefused { result, .. }) => result.saturating_neg().max(1),
        Some(MonClientError::NoMonReachable { .. }) => ETIMEDOUT,
        _ => 1,
    }
}

async fn mon_command(args: &MonCommandArgs) -> anyhow::Result<i32> {
    let config = client_config(args)?;
    let input = match &args.in_file {
        Some(p) => Bytes::from(std::fs::read(p).with_context(|| format!("{}", p.display()))?),
        None => Bytes::new(),
    };
    let client = MonClient::new(config).await?;
    let result = async {
        client.authenticate().await?;
        client.command(&args.command, input).await
    }
    .await;
    client.shutdown().await;
    let reply = result?;
    std::io::stdout().write_all(&reply.output)?;
    if !reply.status.is_empty() {
        eprintln!("{}", reply.status);
    }
    Ok(reply.errno.saturating_neg().max(0))
}

fn client_config(args: &MonCommandArgs) -> anyhow::Result<MonClientConfig> {
    let mut config = crate::ceph_opts::mon_client_config(
        &args.name,
        args.conf.as_deref(),
        args.keyring.as_deref(),
        args.mon.as_deref(),
    )?;
    crate::ceph_opts::apply_con_mode(&mut config.messenger, args.con_mode);
    let options = &mut config.options;
    if let Some(t) = args.connect_timeout {
        options.mount_timeout = t;
    }
    Ok(config)
}
