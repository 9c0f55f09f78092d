//! Ceph's client options on the command line, shared by `ping`, `mon-command` and `serve`:
//! `-c/--conf FILE` (a ceph.conf: `mon_host`, `keyring`, the auth options and `ms_*`, from
//! `[global]`, `[TYPE]` and `[TYPE.ID]`; else Ceph's search: `$CEPH_CONF`,
//! `/etc/ceph/ceph.conf`, `~/.ceph/ceph.conf`, `./ceph.conf`), `-n/--name`, `-k/--keyring`
//! and `-m/--mon`, turned into a mon client's configuration.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use msgr_core::MessengerConfig;
use msgr_monc::{parse_mon_addrs, ClientOptions, MonClientConfig};

/// The ceph.conf to read: `conf` if given, else the first of Ceph's search that exists.
pub fn conf_path(conf: Option<&Path>) -> Option<PathBuf> {
    if let Some(c) = conf {
        return Some(c.to_owned());
    }
    if let Some(c) = std::env::var_os("CEPH_CONF") {
        return Some(PathBuf::from(c));
    }
    let mut candidates = vec![PathBuf::from("/etc/ceph/ceph.conf")];
    if let Some(home) = std::env::var_os("HOME") {
        candidates.push(PathBuf::from(home).join(".ceph/ceph.conf"));
    }
    candidates.push(PathBuf::from("ceph.conf"));
    candidates.into_iter().find(|p| p.is_file())
}

/// A mon client's configuration for `name`: the conf's options for it, with `-m` instead of
/// its `mon_host` and `-k` instead of its `keyring`. Fails without any mon address.
pub fn mon_client_config(
    name: &str,
    conf: Option<&Path>,
    keyring: Option<&Path>,
    mon: Option<&str>,
) -> anyhow::Result<MonClientConfig> {
    let name: msgr_auth::EntityName = name
        .parse()
        .with_context(|| format!("bad name {name:?} (expected TYPE.ID)"))?;
    let (mut options, messenger) = match conf_path(conf) {
        Some(path) => (
            ClientOptions::from_ceph_conf_file(&path, &name)?,
            MessengerConfig::from_ceph_conf_file(&path, &name.to_string())?,
        ),
        None => (ClientOptions::new(name), MessengerConfig::default()),
    };
    if let Some(m) = mon {
        options.mon_host = parse_mon_addrs(m)?;
    }
    if options.mon_host.is_empty() {
        bail!("no mon address: give -m v1:IP:PORT, or a ceph.conf with mon_host (-c FILE)");
    }
    if let Some(k) = keyring {
        if !k.is_file() {
            bail!("{}: no such keyring", k.display());
        }
        options.keyring = vec![k.to_owned()];
    }
    let mut config = MonClientConfig::new(options);
    config.messenger = messenger;
    Ok(config)
}

/// `--con-mode`: the msgr2 connection mode to offer (crc or secure) instead of Ceph's
/// preference order (`ms_client_mode` crc then secure; to mons `ms_mon_client_mode` secure
/// then crc).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ConModeArg {
    /// CRCs, no encryption.
    Crc,
    /// AES-128-GCM (needs cephx).
    Secure,
}

impl ConModeArg {
    /// The messenger's mode.
    pub fn mode(self) -> msgr_core::ConMode {
        match self {
            ConModeArg::Crc => msgr_core::ConMode::Crc,
            ConModeArg::Secure => msgr_core::ConMode::Secure,
        }
    }
}

/// Offers only `mode` (if given) to every peer, mons included.
pub fn apply_con_mode(config: &mut msgr_core::MessengerConfig, mode: Option<ConModeArg>) {
    if let Some(m) = mode {
        config.pipe.con_modes.client = vec![m.mode()];
        config.pipe.con_modes.mon_client = vec![m.mode()];
    }
}
