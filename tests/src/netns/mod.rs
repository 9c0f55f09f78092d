//! Two hosts on one machine, for faults between hosts (issue 13, item 5): two network namespaces joined by a veth
//! pair, and this crate's `msgr-netns-peer` program (`src/bin/msgr-netns-peer.rs`) run inside them.
//!
//! - [`HostPair::create`] adds two namespaces with unique names, a veth pair between them with [`SERVER_IP`] and
//!   [`CLIENT_IP`] on a private /30, and brings both ends (and each `lo`) up. Dropping the pair, also while a test
//!   panics, deletes both namespaces, and with them the veth pair; namespaces left by a test process that was
//!   killed are deleted by the next `create`.
//! - [`HostPair::set_server_link`] takes the server's end of the pair down or up: a partition. Packets to the
//!   server vanish (the client's end loses its carrier and drops them; its route stays), so established TCP
//!   connections retransmit and new ones wait, as when a cable is pulled; once it is up, both go on.
//! - [`HostPair::spawn`] runs a program in one namespace (`ip netns exec`) as a [`Peer`]: its standard output is
//!   read as [`Line`]s and waited on ([`Peer::wait_for`], bounded by [`WAIT`]), its standard error is passed on to
//!   the test's (prefixed), its standard input takes commands. A peer exits when its standard input closes, and
//!   is killed if its [`Peer`] is dropped, so none outlives its test.
//! - [`Line`], [`seq_message`], [`seq_of`], [`SeqCheck`] (in `protocol.rs`): what the peer program and the tests
//!   share: the format of its output lines and of the sequence-numbered messages. [`Peer`] is in `peer.rs`.
//!
//! What it does not do: no delay, loss or reordering of packets (`tc netem`), no IPv6, no more than two hosts.
//!
//! Without root, without `ip` on the PATH, or where namespaces cannot be created (an unprivileged container),
//! [`HostPair::create`] returns `Ok(None)` after printing why, unless the environment variable [`REQUIRE_ENV`] is set
//! (`.ci/run` sets it; CI runs as root), which makes each of those an error.

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command as StdCommand, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio::sync::mpsc;

use crate::ceph::find_on_path;

mod peer;
mod protocol;

pub use peer::Peer;
pub use protocol::{
    seq_message, seq_of, seq_payload, Line, PeerStats, SeqCheck, MSG_SEQ, PAYLOAD_LEN,
};

/// Set (to anything but `0` or empty) to turn a host that cannot create namespaces from a skip into a failure.
pub const REQUIRE_ENV: &str = "MSGR_REQUIRE_NETNS";
/// The server's address on the veth pair.
pub const SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 213, 0, 1);
/// The client's address on the veth pair.
pub const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(10, 213, 0, 2);
/// Prefix length of the pair's network: a /30 holds exactly the two hosts.
pub const PREFIX_LEN: u8 = 30;
/// Bound of every wait on a peer's line (generous for loaded CI machines; never spent when things work).
pub const WAIT: Duration = Duration::from_secs(30);

/// Namespace pairs created by this process, for unique names.
static CREATED: AtomicU32 = AtomicU32::new(0);

/// Whether [`REQUIRE_ENV`] asks for namespaces to work.
pub fn netns_required() -> bool {
    std::env::var(REQUIRE_ENV).is_ok_and(|v| !v.is_empty() && v != "0")
}

/// The effective user id of this process, from `/proc/self/status` (`None` if it cannot be read).
fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// Runs `ip ARGS`, an error with its standard error if it fails.
fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = StdCommand::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running ip {}", args.join(" ")))?;
    ensure!(
        out.status.success(),
        "ip {} failed ({}): {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

/// `Ok(false)` after printing `skipped: REASON` when [`REQUIRE_ENV`] is unset, an error naming the reason when it is.
fn skip(reason: &str) -> anyhow::Result<bool> {
    ensure!(
        !netns_required(),
        "{reason}, but {REQUIRE_ENV} is set (these tests need root and iproute2)"
    );
    eprintln!("skipped: {reason} (set {REQUIRE_ENV}=1 to make this an error)");
    Ok(false)
}

/// Deletes the namespaces left by test processes that are gone (killed before their [`HostPair`] was dropped):
/// those named `msgr-PID-...` (PID in hex) with no process PID.
fn remove_stale() {
    let Ok(out) = StdCommand::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let pid = name
            .strip_prefix("msgr-")
            .and_then(|rest| rest.split_once('x'))
            .and_then(|(pid, _)| u32::from_str_radix(pid, 16).ok());
        if let Some(pid) = pid {
            if !Path::new(&format!("/proc/{pid}")).exists() && ip(&["netns", "del", name]).is_ok() {
                eprintln!("deleted namespace {name} of a test process that is gone");
            }
        }
    }
}

/// Which of the two hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Host {
    /// The namespace holding [`SERVER_IP`].
    Server,
    /// The namespace holding [`CLIENT_IP`].
    Client,
}

/// Two network namespaces joined by a veth pair; dropping it deletes both.
#[derive(Debug)]
pub struct HostPair {
    server_ns: String,
    client_ns: String,
    server_if: String,
    /// Whether each namespace was added (and must be deleted).
    added: [bool; 2],
}

impl HostPair {
    /// Creates the namespaces and the veth pair, both ends up with their addresses. `Ok(None)` (after printing why)
    /// when this host cannot, and [`REQUIRE_ENV`] is unset.
    pub fn create() -> anyhow::Result<Option<Self>> {
        if effective_uid() != Some(0) && !skip("not root: network namespaces need root")? {
            return Ok(None);
        }
        if find_on_path("ip").is_none() && !skip("ip (iproute2) not on PATH")? {
            return Ok(None);
        }
        remove_stale();
        let tag = format!(
            "{:x}x{}",
            std::process::id(),
            CREATED.fetch_add(1, Ordering::Relaxed)
        );
        let mut pair = HostPair {
            server_ns: format!("msgr-{tag}-srv"),
            client_ns: format!("msgr-{tag}-cli"),
            // Interface names have at most 15 bytes: "v" + at most 6 hex digits of a pid + "x" + a count + "s".
            server_if: format!("v{tag}s"),
            added: [false; 2],
        };
        match pair.build(&format!("v{tag}c")) {
            Ok(()) => {
                eprintln!(
                    "namespaces {} ({SERVER_IP}) and {} ({CLIENT_IP}) joined by a veth pair",
                    pair.server_ns, pair.client_ns
                );
                Ok(Some(pair))
            }
            Err(e) => {
                // Dropping `pair` deletes whatever was made.
                skip(&format!("cannot create network namespaces: {e:#}"))?;
                Ok(None)
            }
        }
    }

    fn build(&mut self, client_if: &str) -> anyhow::Result<()> {
        ip(&["netns", "add", &self.server_ns])?;
        self.added[0] = true;
        ip(&["netns", "add", &self.client_ns])?;
        self.added[1] = true;
        ip(&[
            "link",
            "add",
            &self.server_if,
            "netns",
            &self.server_ns,
            "type",
            "veth",
            "peer",
            "name",
            client_if,
            "netns",
            &self.client_ns,
        ])?;
        for (ns, dev, addr) in [
            (&self.server_ns, self.server_if.as_str(), SERVER_IP),
            (&self.client_ns, client_if, CLIENT_IP),
        ] {
            let cidr = format!("{addr}/{PREFIX_LEN}");
            ip(&["-n", ns, "addr", "add", &cidr, "dev", dev])?;
            ip(&["-n", ns, "link", "set", dev, "up"])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        Ok(())
    }

    /// The namespace of `host`.
    pub fn namespace(&self, host: Host) -> &str {
        match host {
            Host::Server => &self.server_ns,
            Host::Client => &self.client_ns,
        }
    }

    /// Takes the server's end of the veth pair down (`false`: the partition begins) or up (`true`: it ends).
    pub fn set_server_link(&self, up: bool) -> anyhow::Result<()> {
        let state = if up { "up" } else { "down" };
        ip(&["-n", &self.server_ns, "link", "set", &self.server_if, state])
    }

    /// Runs `program ARGS` in the namespace of `host`; `name` prefixes its standard error in the test's output.
    pub fn spawn(
        &self,
        host: Host,
        name: &'static str,
        program: &Path,
        args: &[String],
    ) -> anyhow::Result<Peer> {
        let mut child = Command::new("ip")
            .args(["netns", "exec", self.namespace(host)])
            .arg(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| {
                format!("starting {} in {}", program.display(), self.namespace(host))
            })?;
        let (stdin, stdout, stderr) =
            match (child.stdin.take(), child.stdout.take(), child.stderr.take()) {
                (Some(i), Some(o), Some(e)) => (i, o, e),
                _ => bail!("{name}: standard streams not piped"),
            };
        let (tx, lines) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut out = BufReader::new(stdout).lines();
            while let Ok(Some(text)) = out.next_line().await {
                if tx.send((Instant::now(), text)).is_err() {
                    break;
                }
            }
        });
        tokio::spawn(async move {
            let mut err = BufReader::new(stderr).lines();
            while let Ok(Some(text)) = err.next_line().await {
                eprintln!("[{name}] {text}");
            }
        });
        Ok(Peer {
            name,
            child,
            stdin: Some(stdin),
            lines,
            seen: Vec::new(),
        })
    }
}

impl Drop for HostPair {
    fn drop(&mut self) {
        for (added, ns) in self.added.iter().zip([&self.server_ns, &self.client_ns]) {
            if *added {
                if let Err(e) = ip(&["netns", "del", ns]) {
                    eprintln!("could not delete namespace {ns}: {e:#}");
                }
            }
        }
    }
}
