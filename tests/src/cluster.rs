//! A one-node Ceph cluster on loopback for one test: the cephx mon of [`CephMon::start_cephx`] and one real
//! `ceph-osd` (`osd.0`, memstore), following `shared/spec/ceph-cluster-recipe.md`.
//!
//! [`CephCluster::start`]:
//! 1. starts the cephx mon ([`CephMon::start_cephx`], msgr v1 only) and appends an `[osd]` section to its
//!    `ceph.conf` (memstore, data and keyring under the mon's folder, loopback addresses, its own pid file);
//! 2. authenticates to the mon as `client.admin` with msgr-monc's [`MonClient`] (no Python start-up per command,
//!    so polls are cheap) and stores the recipe's options in the mon's configuration database
//!    (`config assimilate-conf`: `paxos_propose_interval = 0.1` cuts the start from about 6.5 s to 1.5 s, the mkfs
//!    grace keeps health OK without a mgr, pools of size 1);
//! 3. creates osd.0 with a key from `ceph-authtool --gen-print-key` (`osd new UUID` with `{"cephx_secret": KEY}`),
//!    writes its keyring with `ceph-authtool`, runs `ceph-osd --mkfs`, then `ceph-osd -f` as our child;
//! 4. polls `osd dump` until osd.0 is up and reads its v1 address from `public_addrs.addrvec` (port from 6800
//!    upward, nonce = the OSD's pid). An OSD is marked up only after it fetched its rotating keys, so it can
//!    verify authorizers from then on.
//!
//! Dropping the cluster stops the OSD (SIGTERM to its pid, waiting for it; SIGKILL after
//! [`STOP_TIMEOUT`](crate::ceph::STOP_TIMEOUT)), then the mon, then removes the folder. As for [`CephMon`], a
//! missing Ceph skips (`Ok(None)` after printing why) unless [`REQUIRE_ENV`](crate::ceph::REQUIRE_ENV) is set.
//!
//! [`CephCluster::start_v2`] starts the same cluster with the mon and the OSD bound to msgr2 as well
//! (`ms_bind_msgr2 = true`): [`CephCluster::osd_v2_addr`] is the OSD's v2 address.
//!
//! Not here: a mgr (`ceph -s` shows zeros without one), more OSDs, pools.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use bytes::Bytes;
use msgr_auth::EntityName;
use msgr_monc::{ClientOptions, MonClient, MonClientConfig};
use msgr_wire::EntityAddr;

use crate::ceph::{
    ceph_tools_present, random_fsid, run_tool, tail, wait_exit, CephMon, ADMIN_KEYRING, POLL,
    START_TIMEOUT, STOP_TIMEOUT,
};

/// The OSD's id: `osd.0`.
pub const OSD_ID: u32 = 0;

/// Options the running mon takes into its configuration database (recipe step 2).
const ASSIMILATED: &str = "[global]\n\
    osd_pool_default_size = 1\n\
    osd_pool_default_min_size = 1\n\
    [mon]\n\
    mon_allow_pool_size_one = true\n\
    mon_warn_on_pool_no_redundancy = false\n\
    mon_mgr_mkfs_grace = 31536000\n\
    paxos_propose_interval = 0.1\n";

/// A cephx mon and one memstore OSD on 127.0.0.1 (see the module docs). Dropping it stops both and removes the
/// folder.
#[derive(Debug)]
pub struct CephCluster {
    osd: Option<Child>,
    osd_addr: EntityAddr,
    osd_v2_addr: Option<EntityAddr>,
    osd_uuid: String,
    started_in: Duration,
    /// Dropped after the OSD is stopped (by [`Drop`]): stops the mon and removes the folder.
    mon: CephMon,
}

impl CephCluster {
    /// Starts the mon and the OSD and waits until the OSD is up in the osdmap. `Ok(None)` (after printing the
    /// reason) when Ceph (with `ceph-osd`) is not installed and [`REQUIRE_ENV`](crate::ceph::REQUIRE_ENV) is unset.
    pub async fn start() -> anyhow::Result<Option<Self>> {
        Self::start_with(false).await
    }

    /// [`start`](Self::start) with the mon and the OSD bound to msgr2 as well as v1.
    pub async fn start_v2() -> anyhow::Result<Option<Self>> {
        Self::start_with(true).await
    }

    async fn start_with(v2: bool) -> anyhow::Result<Option<Self>> {
        if !ceph_tools_present(&["ceph-mon", "monmaptool", "ceph-authtool", "ceph-osd"])? {
            return Ok(None);
        }
        let started = Instant::now();
        // The mon's start blocks (processes, polls): off the runtime's threads.
        let start = move || {
            if v2 {
                CephMon::start_v2(crate::ceph::MonAuth::Cephx)
            } else {
                CephMon::start_cephx()
            }
        };
        let Some(mon) = tokio::task::spawn_blocking(start).await?? else {
            return Ok(None);
        };
        let mut cluster = CephCluster {
            osd: None,
            osd_addr: EntityAddr::new(SocketAddr::from(([127, 0, 0, 1], 0)), 0),
            osd_v2_addr: None,
            osd_uuid: random_fsid(),
            started_in: Duration::ZERO,
            mon,
        };
        let result = cluster.create_osd().await;
        result.with_context(|| format!("starting osd.{OSD_ID}:\n{}", cluster.output_tail()))?;
        cluster.started_in = started.elapsed();
        eprintln!(
            "ceph cluster up after {:.2?}: osd.{OSD_ID} at {} (pid {:?}), mon at {} (in {})",
            cluster.started_in,
            cluster.osd_addr,
            cluster.osd_pid(),
            cluster.mon.addr(),
            cluster.dir().display()
        );
        Ok(Some(cluster))
    }

    /// Recipe steps 1 (the `[osd]` section) to 6, with a mon client as `client.admin`.
    async fn create_osd(&mut self) -> anyhow::Result<()> {
        self.append_osd_section()?;
        let admin = EntityName::client("admin");
        let options = ClientOptions::from_ceph_conf_file(self.conf_path(), &admin)?;
        let client = MonClient::new(MonClientConfig::new(options)).await?;
        let result = self.create_osd_with(&client).await;
        client.shutdown().await;
        result
    }

    async fn create_osd_with(&mut self, client: &MonClient) -> anyhow::Result<()> {
        client.authenticate().await?;
        mon_command(
            client,
            r#"{"prefix": "config assimilate-conf"}"#,
            Bytes::from_static(ASSIMILATED.as_bytes()),
        )
        .await?;

        let key = tool_stdout(Command::new("ceph-authtool").arg("--gen-print-key"))?;
        let key = key.trim();
        let secret = serde_json::json!({ "cephx_secret": key }).to_string();
        let new = serde_json::json!({ "prefix": "osd new", "uuid": self.osd_uuid }).to_string();
        let id = mon_command(client, &new, Bytes::from(secret)).await?;
        ensure!(
            id.trim() == OSD_ID.to_string(),
            "osd new gave id {id:?}, expected {OSD_ID}"
        );

        let data = self.dir().join(format!("osd.{OSD_ID}"));
        fs::create_dir_all(&data)?;
        run_tool(
            Command::new("ceph-authtool")
                .arg("--create-keyring")
                .arg(self.osd_keyring())
                .args(["--name", &format!("osd.{OSD_ID}"), "--add-key", key]),
        )?;
        run_tool(
            Command::new("ceph-osd")
                .arg("-c")
                .arg(self.conf_path())
                .args(["-i", &OSD_ID.to_string(), "--mkfs", "--osd-uuid"])
                .arg(&self.osd_uuid),
        )?;
        let out = fs::File::create(self.dir().join("osd.out"))?;
        let child = Command::new("ceph-osd")
            .arg("-c")
            .arg(self.conf_path())
            .args(["-f", "-i", &OSD_ID.to_string()])
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .context("spawning ceph-osd")?;
        self.osd = Some(child);
        self.osd_addr = self.wait_up(client).await?;
        Ok(())
    }

    /// Recipe step 1: the `[osd]` section, appended to the mon's ceph.conf (the running mon does not reread it;
    /// a second `[global]` would be ignored). The `pid_file` keeps the OSD off the mon's pid file.
    fn append_osd_section(&self) -> anyhow::Result<()> {
        let dir = self.dir().display();
        let section = format!(
            "[osd]\n\
             osd_objectstore = memstore\n\
             osd_data = {dir}/osd.$id\n\
             keyring = {dir}/osd.$id/keyring\n\
             public_addr = 127.0.0.1\n\
             cluster_addr = 127.0.0.1\n\
             pid_file = {dir}/run/$name.pid\n"
        );
        let mut conf = fs::read_to_string(self.conf_path())?;
        conf.push_str(&section);
        fs::write(self.conf_path(), conf).context("appending the [osd] section")
    }

    /// Polls `osd dump` until osd.0 is up; its v1 public address.
    async fn wait_up(&mut self, client: &MonClient) -> anyhow::Result<EntityAddr> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.osd.as_mut().context("no OSD")?.try_wait()? {
                self.osd = None;
                bail!("ceph-osd exited with {status} before it was up");
            }
            let dump = mon_command(
                client,
                r#"{"prefix": "osd dump", "format": "json"}"#,
                Bytes::new(),
            )
            .await?;
            if let Some(addr) = up_v1_addr(&dump)? {
                self.osd_v2_addr = up_v2_addr(&dump)?;
                return Ok(addr);
            }
            if Instant::now() >= deadline {
                bail!("osd.{OSD_ID} not up within {START_TIMEOUT:?}; last osd dump: {dump}");
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The OSD's v1 address, `127.0.0.1:PORT/PID`.
    pub fn osd_addr(&self) -> EntityAddr {
        self.osd_addr
    }

    /// The OSD's msgr2 address, `v2:127.0.0.1:PORT/PID`, when started with
    /// [`start_v2`](Self::start_v2).
    pub fn osd_v2_addr(&self) -> Option<EntityAddr> {
        self.osd_v2_addr
    }

    /// The OSD's pid while it runs (also its address's nonce).
    pub fn osd_pid(&self) -> Option<u32> {
        self.osd.as_ref().map(Child::id)
    }

    /// The OSD's fsid (`osd new UUID`).
    pub fn osd_uuid(&self) -> &str {
        &self.osd_uuid
    }

    /// The mon of the cluster.
    pub fn mon(&self) -> &CephMon {
        &self.mon
    }

    /// The cluster's `ceph.conf` (mon_host, `[client.admin]` keyring, `[osd]`): usable by `ceph` and by
    /// `msgr ... -c`.
    pub fn conf_path(&self) -> &Path {
        self.mon.conf_path()
    }

    /// `client.admin`'s keyring (every cap).
    pub fn admin_keyring(&self) -> PathBuf {
        self.dir().join(ADMIN_KEYRING)
    }

    /// osd.0's keyring.
    pub fn osd_keyring(&self) -> PathBuf {
        self.dir().join(format!("osd.{OSD_ID}/keyring"))
    }

    /// The OSD's log file (default log levels).
    pub fn osd_log_path(&self) -> PathBuf {
        self.dir().join(format!("osd.{OSD_ID}.log"))
    }

    /// The folder holding conf, keyrings, data, logs and pid files.
    pub fn dir(&self) -> &Path {
        self.mon.dir()
    }

    /// How long [`start`](Self::start) took, mon included.
    pub fn started_in(&self) -> Duration {
        self.started_in
    }

    /// The last lines of the OSD's output and log, and the mon's, for error messages.
    pub fn output_tail(&self) -> String {
        let osd: String = [self.dir().join("osd.out"), self.osd_log_path()]
            .iter()
            .map(|path| format!("--- {}\n{}", path.display(), tail(path, 20)))
            .collect();
        osd + &self.mon.output_tail()
    }

    /// Stops the OSD and waits for it to exit; a no-op when it is not running.
    pub fn stop_osd(&mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.osd.take() else {
            return Ok(());
        };
        // Our child's pid: never a pid read from a file that could name a stranger.
        let pid = child.id();
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
        if wait_exit(&mut child, STOP_TIMEOUT)?.is_none() {
            eprintln!("ceph-osd {pid} ignored SIGTERM for {STOP_TIMEOUT:?}; killing it");
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }
}

impl Drop for CephCluster {
    fn drop(&mut self) {
        let started = Instant::now();
        if let Err(e) = self.stop_osd() {
            eprintln!("stopping ceph-osd in {}: {e:#}", self.dir().display());
        }
        let osd = started.elapsed();
        if let Err(e) = self.mon.stop() {
            eprintln!("stopping ceph-mon in {}: {e:#}", self.dir().display());
        }
        eprintln!(
            "ceph cluster stopped: osd in {osd:.2?}, mon in {:.2?}",
            started.elapsed() - osd
        );
        // Then `mon` is dropped: it removes the folder.
    }
}

/// Runs a mon command; its output, or an error with its errno and status.
async fn mon_command(client: &MonClient, json: &str, input: Bytes) -> anyhow::Result<String> {
    let reply = client.command(json, input).await?;
    ensure!(
        reply.errno == 0,
        "{json}: errno {} ({})",
        reply.errno,
        reply.status
    );
    Ok(String::from_utf8_lossy(&reply.output).into_owned())
}

/// A tool's standard output; an error with both streams when it fails.
fn tool_stdout(command: &mut Command) -> anyhow::Result<String> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {command:?}"))?;
    ensure!(
        output.status.success(),
        "{command:?} failed with {}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// osd.0's v1 public address from an `osd dump -f json`, once it is up; `None` while it is not.
pub fn up_v1_addr(dump: &str) -> anyhow::Result<Option<EntityAddr>> {
    let dump: serde_json::Value = serde_json::from_str(dump).context("osd dump is not JSON")?;
    let Some(osd) = dump["osds"]
        .as_array()
        .and_then(|osds| osds.iter().find(|o| o["osd"] == OSD_ID))
    else {
        return Ok(None);
    };
    if osd["up"] != 1 {
        return Ok(None);
    }
    let addrs = osd["public_addrs"]["addrvec"]
        .as_array()
        .context("an up OSD without public_addrs.addrvec")?;
    let v1 = addrs
        .iter()
        .find(|a| a["type"] == "v1")
        .with_context(|| format!("no v1 address in {addrs:?}"))?;
    let addr: SocketAddr = v1["addr"]
        .as_str()
        .context("addr")?
        .parse()
        .with_context(|| format!("bad address {v1}"))?;
    let nonce = v1["nonce"]
        .as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .with_context(|| format!("bad nonce {v1}"))?;
    Ok(Some(EntityAddr::new(addr, nonce)))
}

/// osd.0's msgr2 public address from an `osd dump -f json`, if it is up and has one.
pub fn up_v2_addr(dump: &str) -> anyhow::Result<Option<EntityAddr>> {
    let dump: serde_json::Value = serde_json::from_str(dump).context("osd dump is not JSON")?;
    let Some(osd) = dump["osds"]
        .as_array()
        .and_then(|osds| osds.iter().find(|o| o["osd"] == OSD_ID && o["up"] == 1))
    else {
        return Ok(None);
    };
    let Some(v2) = osd["public_addrs"]["addrvec"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["type"] == "v2"))
    else {
        return Ok(None);
    };
    let addr: SocketAddr = v2["addr"]
        .as_str()
        .context("addr")?
        .parse()
        .with_context(|| format!("bad address {v2}"))?;
    let nonce = v2["nonce"]
        .as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .with_context(|| format!("bad nonce {v2}"))?;
    Ok(Some(EntityAddr::v2(addr, nonce)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_address_of_an_up_osd() {
        let dump = r#"{"epoch": 5, "osds": [{"osd": 0, "up": 1, "in": 1,
            "public_addrs": {"addrvec": [{"type": "v2", "addr": "127.0.0.1:6800", "nonce": 4242},
                                         {"type": "v1", "addr": "127.0.0.1:6801", "nonce": 4242}]}}]}"#;
        let addr = up_v1_addr(dump).unwrap().unwrap();
        assert_eq!(addr.to_string(), "v1:127.0.0.1:6801/4242");
    }

    #[test]
    fn no_address_while_down_or_absent() {
        let down = r#"{"osds": [{"osd": 0, "up": 0, "public_addrs": {"addrvec": []}}]}"#;
        assert!(up_v1_addr(down).unwrap().is_none());
        assert!(up_v1_addr(r#"{"osds": []}"#).unwrap().is_none());
        let no_v1 = r#"{"osds": [{"osd": 0, "up": 1, "public_addrs": {"addrvec": [{"type": "v2", "addr": "127.0.0.1:6800", "nonce": 1}]}}]}"#;
        assert!(up_v1_addr(no_v1).is_err());
        assert!(up_v1_addr("not json").is_err());
    }
}
