//! A real Ceph monitor on loopback for one test, and the real `ceph` command-line client.
//!
//! [`CephMon::start`] follows `shared/spec/ceph-mon-recipe.md`: a free port on 127.0.0.1, a temporary folder, a
//! `ceph.conf` with authentication off and msgr v1 only, `monmaptool` and `ceph-mon --mkfs`, then the monitor, ready
//! once its port accepts and its log says it leads (before that its bootstrap resets client sessions). The
//! monitor runs in the foreground (`-f`) as our child, so that dropping the [`CephMon`], also while a test panics,
//! stops it and removes the folder.
//!
//! [`CephMon::start_cephx`] is the same mon with cephx (`shared/spec/cephx-msgr2.md` §D): `ceph-authtool` makes a
//! `mon.` key and a `client.admin` key with every cap ([`CephMon::admin_keyring`]), `--mkfs --keyring` gives both
//! to the mon, `auth_*_required = cephx`, and a reclaim of a global id must present the old ticket.
//!
//! Without `ceph-mon` on the PATH the tests skip: [`CephMon::start`] returns `Ok(None)` after printing why, unless
//! the environment variable [`REQUIRE_ENV`] is set (CI sets it after `.ci/install-ceph`), which makes a missing
//! Ceph an error.
//!
//! ```text
//! start ──> Running ──restart()──> Running (same port, data and fsid)
//!              └──── drop ───────> stopped (SIGTERM via the pid file, SIGKILL after 10 s), folder removed
//! ```

use std::fs;
use std::io::{self, Read};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use rand::Rng;
use tempfile::TempDir;

/// Set (to anything but `0` or empty) to turn a missing Ceph from a skip into a failure.
pub const REQUIRE_ENV: &str = "MSGR_REQUIRE_CEPH";
/// How long [`CephMon::start`] and [`CephMon::restart`] wait for the mon's port to accept.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a stop waits after SIGTERM before it sends SIGKILL.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// The default bound on a `ceph` command-line run ([`CephMon::cli`]); the client itself is given
/// `--connect-timeout 10`.
pub const CLI_TIMEOUT: Duration = Duration::from_secs(30);
/// How often conditions are polled while waiting (the port, the process's exit).
pub(crate) const POLL: Duration = Duration::from_millis(25);
/// The mon's id, `mon.a`.
const MON_ID: &str = "a";
/// What the mon logs (cluster log, level 0, so also at default log levels) once it won its election, after its
/// first `bootstrap()` dropped every connection accepted before.
const LEADER_LINE: &str = "is new leader";
/// Attempts at picking a free port that is still free when the mon binds it.
const PORT_ATTEMPTS: usize = 3;

/// How a test mon authenticates its clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MonAuth {
    /// `auth_*_required = none` ([`CephMon::start`]).
    None,
    /// `auth_*_required = cephx`, with `mon.` and `client.admin` keys ([`CephMon::start_cephx`]).
    Cephx,
}

/// Whether [`REQUIRE_ENV`] asks for Ceph to be present.
pub fn ceph_required() -> bool {
    std::env::var(REQUIRE_ENV).is_ok_and(|v| !v.is_empty() && v != "0")
}

/// The full path of `program` if it is an executable file on the PATH.
pub fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// `Ok(true)` when every one of `programs` is on the PATH. Otherwise `Ok(false)` after printing
/// `skipped: PROGRAM not on PATH` to stderr, or an error when [`ceph_required`].
pub fn ceph_tools_present(programs: &[&str]) -> anyhow::Result<bool> {
    let Some(missing) = programs.iter().find(|p| find_on_path(p).is_none()) else {
        return Ok(true);
    };
    ensure!(
        !ceph_required(),
        "{missing} not on PATH but {REQUIRE_ENV} is set (run .ci/install-ceph)"
    );
    eprintln!("skipped: {missing} not on PATH (set {REQUIRE_ENV}=1 to make this an error)");
    Ok(false)
}

/// A free TCP port on 127.0.0.1 (bound, read and released; another process could still take it).
pub fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

/// A random fsid in the 36-character UUID form (version 4).
pub fn random_fsid() -> String {
    let mut b: [u8; 16] = rand::thread_rng().gen();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// Writes the recipe's `ceph.conf` for cluster `fsid` with its one mon at `mon`, keeping data, logs, the admin
/// socket and the pid file under `dir`. A `ceph` client can use the same file. `mon_data_avail_crit = 0`: a mon
/// exits with ENOSPC (status 28) when its disk has less than 5 % free, as a CI machine full of build trees may
/// (seen in a fresh-clone run at 5.5 % free); the tests' mon holds a few kilobytes.
pub fn write_conf(path: &Path, dir: &Path, fsid: &str, mon: SocketAddr) -> anyhow::Result<()> {
    write_conf_auth(path, dir, fsid, mon, None)
}

/// [`write_conf`], with cephx when `admin_keyring` is given (cephx-msgr2.md §D): `auth_*_required = cephx`,
/// `auth_allow_insecure_global_id_reclaim = false` (a reclaim must present the old ticket), and `client.admin`'s
/// keyring named in `[client.admin]` so that a `ceph` client (or `msgr mon-command -c`) finds it.
pub fn write_conf_auth(
    path: &Path,
    dir: &Path,
    fsid: &str,
    mon: SocketAddr,
    admin_keyring: Option<&Path>,
) -> anyhow::Result<()> {
    write_conf_addrs(path, dir, fsid, mon, None, admin_keyring)
}

/// [`write_conf_auth`] for a mon on v1 at `mon` and, when given, on msgr2 at `v2`
/// (`ms_bind_msgr2 = true`, `mon_host = [v2:…,v1:…]`).
pub fn write_conf_addrs(
    path: &Path,
    dir: &Path,
    fsid: &str,
    mon: SocketAddr,
    v2: Option<SocketAddr>,
    admin_keyring: Option<&Path>,
) -> anyhow::Result<()> {
    let addrs = match v2 {
        Some(v2) => format!("[v2:{v2},v1:{mon}]"),
        None => format!("v1:{mon}"),
    };
    let bind2 = v2.is_some();
    let auth = if admin_keyring.is_some() {
        "cephx"
    } else {
        "none"
    };
    let reclaim = if admin_keyring.is_some() {
        "auth_allow_insecure_global_id_reclaim = false\n"
    } else {
        ""
    };
    let client = admin_keyring.map_or(String::new(), |k| {
        format!("[client.admin]\nkeyring = {}\n", k.display())
    });
    let dir = dir.display();
    let conf = format!(
        "[global]\n\
         fsid = {fsid}\n\
         mon_host = {addrs}\n\
         auth_cluster_required = {auth}\n\
         auth_service_required = {auth}\n\
         auth_client_required = {auth}\n\
         {reclaim}\
         ms_bind_msgr1 = true\n\
         ms_bind_msgr2 = {bind2}\n\
         mon_data = {dir}/mon.$id\n\
         log_file = {dir}/$name.log\n\
         run_dir = {dir}/run\n\
         admin_socket = {dir}/run/$name.asok\n\
         pid_file = {dir}/run/mon.pid\n\
         mon_data_avail_crit = 0\n\
         [mon.{MON_ID}]\n\
         mon_addr = {addrs}\n\
         {client}"
    );
    fs::create_dir_all(format!("{dir}/run"))?;
    fs::write(path, conf).with_context(|| format!("writing {}", path.display()))
}

/// One `ceph-mon` (`mon.a`, auth none or cephx, msgr v1 only) on 127.0.0.1, its folder and its process. Dropping
/// it stops the mon and removes the folder.
#[derive(Debug)]
pub struct CephMon {
    auth: MonAuth,
    dir: TempDir,
    conf: PathBuf,
    fsid: String,
    addr: SocketAddr,
    v2: Option<SocketAddr>,
    child: Option<Child>,
}

impl CephMon {
    /// Creates and starts a mon on a free port and waits until the port accepts TCP and the mon leads (sessions
    /// opened before that are reset by the mon's bootstrap). `Ok(None)` (after printing the reason) when Ceph is
    /// not installed and [`REQUIRE_ENV`] is unset.
    pub fn start() -> anyhow::Result<Option<Self>> {
        Self::start_with(MonAuth::None)
    }

    /// [`start`](Self::start) with cephx (cephx-msgr2.md §D): `ceph-authtool` makes a `mon.` key and a
    /// `client.admin` key with every cap ([`admin_keyring`](Self::admin_keyring)), the mon's keyring holds both.
    pub fn start_cephx() -> anyhow::Result<Option<Self>> {
        Self::start_with(MonAuth::Cephx)
    }

    /// A mon with the given authentication; see [`start`](Self::start).
    pub fn start_with(auth: MonAuth) -> anyhow::Result<Option<Self>> {
        Self::start_full(auth, false)
    }

    /// A mon that also binds msgr2 ([`v2_addr`](Self::v2_addr)), with the given
    /// authentication; see [`start`](Self::start).
    pub fn start_v2(auth: MonAuth) -> anyhow::Result<Option<Self>> {
        Self::start_full(auth, true)
    }

    fn start_full(auth: MonAuth, v2: bool) -> anyhow::Result<Option<Self>> {
        let tools: &[&str] = match auth {
            MonAuth::None => &["ceph-mon", "monmaptool"],
            MonAuth::Cephx => &["ceph-mon", "monmaptool", "ceph-authtool"],
        };
        if !ceph_tools_present(tools)? {
            return Ok(None);
        }
        let mut last_error = None;
        let started = Instant::now();
        for _ in 0..PORT_ATTEMPTS {
            let v2_port = if v2 { Some(free_port()?) } else { None };
            match Self::create(free_port()?, v2_port, auth) {
                Ok(mon) => {
                    let (addr, dir, took) = (mon.addr, mon.dir().display(), started.elapsed());
                    eprintln!(
                        "ceph-mon mon.{MON_ID} accepting on {addr} after {took:.2?} (in {dir})"
                    );
                    return Ok(Some(mon));
                }
                Err(e) if format!("{e:#}").contains("in use") => last_error = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("no free port")))
    }

    fn create(port: u16, v2_port: Option<u16>, auth: MonAuth) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("msgr-ceph-mon-")
            .tempdir()?;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let v2 = v2_port.map(|p| SocketAddr::from((Ipv4Addr::LOCALHOST, p)));
        let fsid = random_fsid();
        let conf = dir.path().join("ceph.conf");
        let keyrings = match auth {
            MonAuth::None => None,
            MonAuth::Cephx => Some(make_keyrings(dir.path())?),
        };
        let admin = keyrings.as_ref().map(|(_, admin)| admin.as_path());
        write_conf_addrs(&conf, dir.path(), &fsid, addr, v2, admin)?;
        let monmap = dir.path().join("monmap");
        run_tool(
            Command::new("monmaptool")
                .args([
                    "--create",
                    "--fsid",
                    &fsid,
                    "--addv",
                    MON_ID,
                    &match v2 {
                        Some(v2) => format!("[v2:{v2},v1:{addr}]"),
                        None => format!("[v1:{addr}]"),
                    },
                ])
                .arg(&monmap),
        )?;
        let mut mkfs = Command::new("ceph-mon");
        mkfs.arg("-c")
            .arg(&conf)
            .args(["--mkfs", "-i", MON_ID, "--monmap"])
            .arg(&monmap);
        if let Some((mon_keyring, _)) = &keyrings {
            // Copied into the mon's data folder: its keyring from now on (spec §D).
            mkfs.arg("--keyring").arg(mon_keyring);
        }
        run_tool(&mut mkfs)?;
        let mut mon = Self {
            auth,
            dir,
            conf,
            fsid,
            addr,
            v2,
            child: None,
        };
        mon.launch()?;
        Ok(mon)
    }

    /// The mon's msgr2 address, when started with [`start_v2`](Self::start_v2).
    pub fn v2_addr(&self) -> Option<SocketAddr> {
        self.v2
    }

    /// The mon's v1 address, 127.0.0.1:PORT.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The `ceph.conf` the mon runs with; usable by a `ceph` client.
    pub fn conf_path(&self) -> &Path {
        &self.conf
    }

    /// How the mon authenticates.
    pub fn auth(&self) -> MonAuth {
        self.auth
    }

    /// `client.admin`'s keyring (every cap) of a cephx mon; `None` with auth none.
    pub fn admin_keyring(&self) -> Option<PathBuf> {
        (self.auth == MonAuth::Cephx).then(|| self.dir().join(ADMIN_KEYRING))
    }

    /// The mon's own keyring (its `mon.` key, and client.admin's) of a cephx mon; `None` with
    /// auth none. A peer mon authorizes with tickets minted from the `mon.` key.
    pub fn mon_keyring(&self) -> Option<PathBuf> {
        (self.auth == MonAuth::Cephx).then(|| self.dir().join(MON_KEYRING))
    }

    /// The cluster's fsid, 36-character UUID form.
    pub fn fsid(&self) -> &str {
        &self.fsid
    }

    /// The temporary folder holding conf, data, logs and pid file.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The mon's log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir().join(format!("mon.{MON_ID}.log"))
    }

    /// The mon's pid while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Stops the mon (SIGTERM to the pid in its pid file, waiting for it to exit) and starts it again on the same
    /// port with the same data, waiting until the port accepts and the mon leads.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.stop()?;
        self.launch()
    }

    /// Stops the mon and waits for it to exit; a no-op when it is not running.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let pid_file = self.dir().join("run/mon.pid");
        // The pid file names the process to stop; it must be our child (never signal a stranger's pid).
        let pid = match fs::read_to_string(&pid_file)
            .ok()
            .and_then(|text| text.trim().parse::<u32>().ok())
        {
            Some(pid) if pid == child.id() => pid,
            other => {
                eprintln!(
                    "ceph-mon: pid file says {other:?}, child is {}; signalling the child",
                    child.id()
                );
                child.id()
            }
        };
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
        if wait_exit(&mut child, STOP_TIMEOUT)?.is_none() {
            eprintln!(
                "ceph-mon {} ignored SIGTERM for {STOP_TIMEOUT:?}; killing it",
                child.id()
            );
            child.kill()?;
            child.wait()?;
        }
        let _ = fs::remove_file(pid_file);
        Ok(())
    }

    /// Runs the real `ceph` client against this mon: `ceph -c CONF -m 127.0.0.1:PORT ARGS --connect-timeout 10`,
    /// bounded by [`CLI_TIMEOUT`] per attempt.
    ///
    /// A client that fails with `problem getting command descriptions` is run again, at most twice: once (in one
    /// fresh-clone CI run on 2026-12-07, not in 27 runs of the same tests since, idle or loaded) the real `ceph`
    /// client got `EPERM` for its first command from the real mon the harness had just seen become leader. That
    /// is between two Ceph programs, before anything of ours is involved; a test that is about the mon's answer
    /// sees the answer of the attempt that got one.
    pub async fn cli(&self, args: &[&str]) -> anyhow::Result<CliOutput> {
        let mut attempts = 0;
        loop {
            let out = run_ceph_cli(&self.conf, self.addr, args, CLI_TIMEOUT).await?;
            attempts += 1;
            let transient = !out.status.success()
                && out.stderr.contains("problem getting command descriptions");
            if !transient || attempts == 3 {
                return Ok(out);
            }
            eprintln!(
                "ceph {args:?}: no command descriptions yet (attempt {attempts}), again:\n{}",
                out.stderr
            );
        }
    }

    fn launch(&mut self) -> anyhow::Result<()> {
        // The log is appended to across restarts: only what this run writes counts.
        let log_start = fs::metadata(self.log_path()).map_or(0, |m| m.len());
        let out = fs::File::create(self.dir().join("mon.out"))?;
        let child = Command::new("ceph-mon")
            .arg("-c")
            .arg(&self.conf)
            .args(["-f", "-i", MON_ID])
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .context("spawning ceph-mon")?;
        self.child = Some(child);
        self.wait_accepting()?;
        self.wait_leader(log_start)
    }

    /// Polls the mon's log, from byte `from` on, until it says that the mon is the leader ([`LEADER_LINE`]): only
    /// then does it keep client sessions. The port accepts a little earlier, and the mon's first `bootstrap()`
    /// finds its rank (-1 -> 0) and marks every connection down "or else our peers will think we are someone
    /// else" (`shutdown_connections`, then `ms_handle_reset` of any client accepted before, in the mon's log with
    /// `--debug_ms 1 --debug_mon 10`); a client that connected in that window sees its lossy session reset.
    fn wait_leader(&mut self, from: u64) -> anyhow::Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        let log = self.log_path();
        loop {
            let child = self.child.as_mut().context("mon not running")?;
            if let Some(status) = child.try_wait()? {
                self.child = None;
                bail!(
                    "ceph-mon exited with {status} before leading:\n{}",
                    self.output_tail()
                );
            }
            if log_contains_after(&log, from, LEADER_LINE) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "ceph-mon did not log {LEADER_LINE:?} within {START_TIMEOUT:?}:\n{}",
                    self.output_tail()
                );
            }
            thread::sleep(POLL);
        }
    }

    /// Polls until the port accepts TCP, failing early with the mon's output if it exits.
    fn wait_accepting(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let child = self.child.as_mut().context("mon not running")?;
            if let Some(status) = child.try_wait()? {
                self.child = None;
                bail!(
                    "ceph-mon exited with {status} before {} accepted:\n{}",
                    self.addr,
                    self.output_tail()
                );
            }
            if TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "ceph-mon did not accept on {} within {START_TIMEOUT:?}:\n{}",
                    self.addr,
                    self.output_tail()
                );
            }
            thread::sleep(POLL);
        }
    }

    /// The last lines of the mon's stdout/stderr and log, for error messages.
    pub fn output_tail(&self) -> String {
        [self.dir().join("mon.out"), self.log_path()]
            .iter()
            .map(|path| format!("--- {}\n{}", path.display(), tail(path, 20)))
            .collect()
    }
}

impl Drop for CephMon {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            eprintln!("stopping ceph-mon in {}: {e:#}", self.dir().display());
        }
    }
}

/// The file name of `client.admin`'s keyring in a cephx mon's folder.
pub(crate) const ADMIN_KEYRING: &str = "admin.keyring";

/// The file name of the mon's own keyring (`mon.` and, imported, `client.admin`).
const MON_KEYRING: &str = "mon.keyring";

/// Makes the keyrings of a cephx mon in `dir` (spec §D): `mon.keyring` with a `mon.` key and, imported,
/// `client.admin`'s from `admin.keyring` (caps `allow *` on mon, osd, mds, mgr). Returns both paths.
fn make_keyrings(dir: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    let mon = dir.join(MON_KEYRING);
    let admin = dir.join(ADMIN_KEYRING);
    run_tool(
        Command::new("ceph-authtool")
            .arg("--create-keyring")
            .arg(&mon)
            .args(["--gen-key", "-n", "mon.", "--cap", "mon", "allow *"]),
    )?;
    let mut create_admin = Command::new("ceph-authtool");
    create_admin
        .arg("--create-keyring")
        .arg(&admin)
        .args(["--gen-key", "-n", "client.admin"]);
    for service in ["mon", "osd", "mds", "mgr"] {
        create_admin.args(["--cap", service, "allow *"]);
    }
    run_tool(&mut create_admin)?;
    run_tool(
        Command::new("ceph-authtool")
            .arg(&mon)
            .arg("--import-keyring")
            .arg(&admin),
    )?;
    Ok((mon, admin))
}

/// Whether the file at `path` holds `needle` after its first `from` bytes.
fn log_contains_after(path: &Path, from: u64, needle: &str) -> bool {
    let Ok(bytes) = fs::read(path) else {
        return false;
    };
    let start = usize::try_from(from).unwrap_or(usize::MAX).min(bytes.len());
    String::from_utf8_lossy(&bytes[start..]).contains(needle)
}

/// Runs a Ceph tool to its end; its output in the error when it fails.
pub(crate) fn run_tool(command: &mut Command) -> anyhow::Result<()> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {command:?}"))?;
    ensure!(
        output.status.success(),
        "{command:?} failed with {}: {}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

/// Polls `child` for exit until `timeout`; `None` if it still runs.
pub(crate) fn wait_exit(child: &mut Child, timeout: Duration) -> io::Result<Option<ExitStatus>> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        thread::sleep(POLL);
    }
}

/// The last `lines` lines of the file at `path`, for error messages.
pub(crate) fn tail(path: &Path, lines: usize) -> String {
    let mut text = String::new();
    if fs::File::open(path)
        .and_then(|mut f| f.read_to_string(&mut text))
        .is_err()
    {
        return "(unreadable)\n".to_owned();
    }
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..]
        .iter()
        .map(|l| format!("{l}\n"))
        .collect()
}

/// What a `ceph` command-line run printed, and how it ended.
#[derive(Debug, Clone)]
pub struct CliOutput {
    /// Its exit status.
    pub status: ExitStatus,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error (the client logs connection attempts here).
    pub stderr: String,
}

impl CliOutput {
    /// The output when the command succeeded, else an error with both streams.
    pub fn success(self) -> anyhow::Result<String> {
        ensure!(
            self.status.success(),
            "ceph failed with {}: {}\n{}",
            self.status,
            self.stdout,
            self.stderr
        );
        Ok(self.stdout)
    }
}

/// The real `ceph` client as a tokio command, `ceph -c CONF -m 127.0.0.1:PORT ARGS --connect-timeout 10`, with
/// piped output and killed when dropped. Spawn it to keep it running while a test inspects our side of the
/// connection. Note that with an untyped `-m ADDR` the client first tries msgr v2 at that address, sees the v1
/// banner, and then speaks v1.
pub fn ceph_cli_command(conf: &Path, mon: SocketAddr, args: &[&str]) -> tokio::process::Command {
    ceph_cli_command_at(conf, &mon.to_string(), args)
}

/// [`ceph_cli_command`] with the monitor address as the `ceph` client parses it: `v1:IP:PORT` makes it speak msgr
/// v1 at once (no msgr v2 attempt), and a `/NONCE` suffix names a monitor whose address nonce is not 0 (the client
/// checks the nonce the acceptor announces against the one it dialled, msgr-v1-wire.md §9.22).
pub fn ceph_cli_command_at(conf: &Path, mon: &str, args: &[&str]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new("ceph");
    command
        .arg("-c")
        .arg(conf)
        .arg("-m")
        .arg(mon)
        .args(args)
        .args(["--connect-timeout", "10"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Runs [`ceph_cli_command`] to its end, killing it after `timeout`.
pub async fn run_ceph_cli(
    conf: &Path,
    mon: SocketAddr,
    args: &[&str],
    timeout: Duration,
) -> anyhow::Result<CliOutput> {
    let child = ceph_cli_command(conf, mon, args)
        .spawn()
        .context("spawning ceph")?;
    let output = tokio::time::timeout(timeout, child.wait_with_output())
        .await
        .with_context(|| {
            format!("ceph {args:?} against {mon} still running after {timeout:?}; killed")
        })??;
    Ok(CliOutput {
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fsid_has_uuid_shape() {
        let fsid = random_fsid();
        assert_eq!(fsid.len(), 36);
        assert!(fsid.parse::<crate::ceph_msgs::Fsid>().is_ok(), "{fsid}");
    }

    #[test]
    fn conf_follows_the_recipe() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ceph.conf");
        write_conf(&path, dir.path(), "f", "127.0.0.1:4000".parse().unwrap()).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        for line in [
            "mon_host = v1:127.0.0.1:4000",
            "ms_bind_msgr2 = false",
            "auth_client_required = none",
            "[mon.a]",
            "mon_data_avail_crit = 0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing from\n{text}"
            );
        }
        assert!(dir.path().join("run").is_dir());
    }
}
