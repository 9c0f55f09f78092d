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
//! - [`Line`], [`seq_message`], [`seq_of`], [`SeqCheck`]: what the peer program and the tests share: the format of
//!   its output lines and of the sequence-numbered messages.
//!
//! What it does not do: no delay, loss or reordering of packets (`tc netem`), no IPv6, no more than two hosts.
//!
//! Without root, without `ip` on the PATH, or where namespaces cannot be created (an unprivileged container),
//! [`HostPair::create`] returns `Ok(None)` after printing why, unless the environment variable [`REQUIRE_ENV`] is set
//! (`.ci/run` sets it; CI runs as root), which makes each of those an error.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::{Command as StdCommand, Stdio};
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context};
use bytes::Bytes;
use msgr_wire::Message;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

use crate::ceph::find_on_path;

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
/// Message type of the sequence-numbered messages (front: the sequence number, u64 LE; data: [`seq_payload`]).
pub const MSG_SEQ: u16 = 0x7c00;
/// Length of the data segment of a sequence-numbered message.
pub const PAYLOAD_LEN: usize = 1024;

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

/// A program running in one of the namespaces (see [`HostPair::spawn`]).
#[derive(Debug)]
pub struct Peer {
    name: &'static str,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::UnboundedReceiver<(Instant, String)>,
    /// Every line read so far, with when it was read.
    pub seen: Vec<(Instant, Line)>,
}

impl Peer {
    /// Writes one command line to the peer's standard input.
    pub async fn command(&mut self, line: &str) -> anyhow::Result<()> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| anyhow!("{}: standard input already closed", self.name))?;
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .with_context(|| format!("{}: writing {line:?}", self.name))?;
        stdin.flush().await?;
        Ok(())
    }

    /// Reads lines until one matches `pred` and returns it with when it was read. Fails on an [`Line::Error`], a
    /// line that does not parse, the end of the output, or after [`WAIT`]; `what` names the line in the error.
    pub async fn wait_for(
        &mut self,
        what: &str,
        mut pred: impl FnMut(&Line) -> bool,
    ) -> anyhow::Result<(Instant, Line)> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let next = tokio::time::timeout_at(deadline, self.lines.recv()).await;
            let (at, text) = match next {
                Ok(Some(line)) => line,
                Ok(None) => bail!("{}: output ended while waiting for {what}", self.name),
                Err(_) => bail!(
                    "{}: no {what} within {WAIT:?}; last line: {:?}",
                    self.name,
                    self.seen.last().map(|(_, l)| l.to_string())
                ),
            };
            let line: Line = text
                .parse()
                .with_context(|| format!("{}: unexpected output line {text:?}", self.name))?;
            self.seen.push((at, line.clone()));
            if let Line::Error(e) = &line {
                bail!("{} reported: {e} (while waiting for {what})", self.name);
            }
            if pred(&line) {
                return Ok((at, line));
            }
        }
    }

    /// As [`wait_for`](Self::wait_for), but a line already read counts too (for lines that may have been read
    /// while waiting for another, as a reply that overtakes the `sent N` of the command that sent it).
    pub async fn wait_seen(
        &mut self,
        what: &str,
        mut pred: impl FnMut(&Line) -> bool,
    ) -> anyhow::Result<(Instant, Line)> {
        if let Some((at, line)) = self.seen.iter().find(|(_, l)| pred(l)) {
            return Ok((*at, line.clone()));
        }
        self.wait_for(what, pred).await
    }

    /// Sends `command` and waits for the `sent N` it answers with; returns N.
    pub async fn sent(&mut self, command: &str) -> anyhow::Result<u64> {
        self.command(command).await?;
        match self
            .wait_for("sent N", |l| matches!(l, Line::Sent(_)))
            .await?
        {
            (_, Line::Sent(n)) => Ok(n),
            (_, other) => bail!("{}: expected sent N, got {other}", self.name),
        }
    }

    /// Sends `stats` and waits for the answer.
    pub async fn stats(&mut self) -> anyhow::Result<PeerStats> {
        self.command("stats").await?;
        match self
            .wait_for("stats", |l| matches!(l, Line::Stats(_)))
            .await?
        {
            (_, Line::Stats(s)) => Ok(s),
            (_, other) => bail!("{}: expected stats, got {other}", self.name),
        }
    }

    /// Kills the peer (SIGKILL) and waits until it is gone.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        self.child
            .kill()
            .await
            .with_context(|| format!("killing {}", self.name))
    }

    /// Closes the peer's standard input (it shuts down and exits) and waits for its exit, which must be clean.
    pub async fn finish(mut self) -> anyhow::Result<()> {
        drop(self.stdin.take());
        let status = tokio::time::timeout(WAIT, self.child.wait())
            .await
            .map_err(|_| anyhow!("{} did not exit within {WAIT:?}", self.name))??;
        ensure!(status.success(), "{} exited with {status}", self.name);
        Ok(())
    }

    /// The sequence numbers of the [`Line::Recv`] (`reply: false`) or [`Line::Reply`] (`reply: true`) lines read so
    /// far, in order, with when each was read.
    pub fn seqs(&self, reply: bool) -> Vec<(Instant, u64)> {
        self.seen
            .iter()
            .filter_map(|(at, l)| match (l, reply) {
                (Line::Recv(s), false) | (Line::Reply(s), true) => Some((*at, *s)),
                _ => None,
            })
            .collect()
    }

    /// How many times the peer reported `event`.
    pub fn events(&self, event: &str) -> usize {
        self.seen
            .iter()
            .filter(|(_, l)| matches!(l, Line::Event(e) if e == event))
            .count()
    }
}

/// A client's session counters, as the `stats` command prints them (from `Connection::stats`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PeerStats {
    /// Socket faults.
    pub faults: u64,
    /// Successful handshakes after the first.
    pub reconnects: u64,
    /// Messages written again after a reconnect.
    pub resends: u64,
}

/// One line of a peer's standard output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// `listening ADDR`: the server's messenger is bound.
    Listening(SocketAddr),
    /// `recv SEQ`: the server received the message with this sequence number.
    Recv(u64),
    /// `reply SEQ`: the client received the echo of this message.
    Reply(u64),
    /// `sent N`: the client has sent messages 1..=N (its answer to `sent` and `stop`).
    Sent(u64),
    /// `event NAME`: a dispatcher event (`connect`, `accept`, `reset`, `remote_reset`, `refused`).
    Event(String),
    /// `state NAME`: the client's session changed state (`ConnState`'s name: `Connecting`, `Open`, ...).
    State(String),
    /// `stats faults=F reconnects=R resends=S`.
    Stats(PeerStats),
    /// `error TEXT`: the peer found something wrong (loss, duplicate, reorder, a corrupt message).
    Error(String),
}

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Line::Listening(a) => write!(f, "listening {a}"),
            Line::Recv(s) => write!(f, "recv {s}"),
            Line::Reply(s) => write!(f, "reply {s}"),
            Line::Sent(n) => write!(f, "sent {n}"),
            Line::Event(e) => write!(f, "event {e}"),
            Line::State(s) => write!(f, "state {s}"),
            Line::Stats(s) => write!(
                f,
                "stats faults={} reconnects={} resends={}",
                s.faults, s.reconnects, s.resends
            ),
            Line::Error(e) => write!(f, "error {e}"),
        }
    }
}

impl FromStr for Line {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<Self> {
        let (word, rest) = s.split_once(' ').unwrap_or((s, ""));
        let num = || {
            rest.parse::<u64>()
                .with_context(|| format!("{rest:?} is not a number"))
        };
        Ok(match word {
            "listening" => Line::Listening(rest.parse()?),
            "recv" => Line::Recv(num()?),
            "reply" => Line::Reply(num()?),
            "sent" => Line::Sent(num()?),
            "event" => Line::Event(rest.to_owned()),
            "state" => Line::State(rest.to_owned()),
            "error" => Line::Error(rest.to_owned()),
            "stats" => {
                let mut stats = PeerStats::default();
                for field in rest.split_whitespace() {
                    let (key, value) = field
                        .split_once('=')
                        .with_context(|| format!("{field:?} is not KEY=VALUE"))?;
                    let value: u64 = value.parse()?;
                    match key {
                        "faults" => stats.faults = value,
                        "reconnects" => stats.reconnects = value,
                        "resends" => stats.resends = value,
                        _ => bail!("unknown stats field {key:?}"),
                    }
                }
                Line::Stats(stats)
            }
            _ => bail!("unknown line {s:?}"),
        })
    }
}

/// The data segment of message `seq`: [`PAYLOAD_LEN`] bytes that depend on `seq`.
pub fn seq_payload(seq: u64) -> Bytes {
    let base = seq.to_le_bytes();
    (0..PAYLOAD_LEN)
        .map(|i| base[i % 8].wrapping_add(i as u8))
        .collect::<Vec<u8>>()
        .into()
}

/// Sequence-numbered message `seq`.
pub fn seq_message(seq: u64) -> Message {
    Message::new(MSG_SEQ, Bytes::copy_from_slice(&seq.to_le_bytes())).with_data(seq_payload(seq))
}

/// The sequence number of a [`seq_message`] (or of its echo), after checking its type, front and data.
pub fn seq_of(msg: &Message) -> Result<u64, String> {
    if msg.header.ty != MSG_SEQ {
        return Err(format!(
            "message of type {:#x}, not {MSG_SEQ:#x}",
            msg.header.ty
        ));
    }
    let front: [u8; 8] = msg.front[..]
        .try_into()
        .map_err(|_| format!("front of {} bytes, not 8", msg.front.len()))?;
    let seq = u64::from_le_bytes(front);
    if msg.data != seq_payload(seq) {
        return Err(format!(
            "data of message {seq} is not its payload ({} bytes)",
            msg.data.len()
        ));
    }
    Ok(seq)
}

/// Checks that sequence numbers arrive one by one: the first is any, each next one more than the last, except
/// right after [`forgive`](Self::forgive) (a reset: messages may have been discarded) when it must only be larger.
#[derive(Debug, Default)]
pub struct SeqCheck {
    last: Option<u64>,
    gap_allowed: bool,
}

impl SeqCheck {
    /// Takes `seq`; an error saying what is wrong with it (lost, duplicated, reordered).
    pub fn take(&mut self, seq: u64) -> Result<(), String> {
        let verdict = match self.last {
            None => Ok(()),
            Some(last) if seq == last + 1 => Ok(()),
            Some(last) if seq > last && self.gap_allowed => Ok(()),
            Some(last) if seq > last => Err(format!("{seq} after {last}: {} lost", seq - last - 1)),
            Some(last) if seq == last => Err(format!("{seq} twice")),
            Some(last) => Err(format!("{seq} after {last}: duplicated or reordered")),
        };
        if verdict.is_ok() {
            self.last = Some(seq);
            self.gap_allowed = false;
        }
        verdict
    }

    /// A reset happened: the next number may skip some (they were discarded), but must still be larger.
    pub fn forgive(&mut self) {
        self.gap_allowed = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip() {
        let lines = [
            Line::Listening(SocketAddr::from((SERVER_IP, 6800))),
            Line::Recv(7),
            Line::Reply(8),
            Line::Sent(9),
            Line::Event("remote_reset".into()),
            Line::State("Connecting".into()),
            Line::Stats(PeerStats {
                faults: 1,
                reconnects: 2,
                resends: 3,
            }),
            Line::Error("5 after 3: 1 lost".into()),
        ];
        for line in lines {
            assert_eq!(line.to_string().parse::<Line>().unwrap(), line);
        }
        assert!("bogus 1".parse::<Line>().is_err());
        assert!("recv x".parse::<Line>().is_err());
    }

    #[test]
    fn seq_messages_check_their_payload() {
        let mut msg = seq_message(42);
        assert_eq!(seq_of(&msg), Ok(42));
        msg.data = seq_payload(43);
        assert!(seq_of(&msg).unwrap_err().contains("not its payload"));
        msg.front = Bytes::from_static(b"short");
        assert!(seq_of(&msg).unwrap_err().contains("front of 5 bytes"));
    }

    #[test]
    fn seq_check_finds_loss_duplicates_and_reorders() {
        let mut c = SeqCheck::default();
        assert_eq!(c.take(5), Ok(()));
        assert_eq!(c.take(6), Ok(()));
        assert_eq!(c.take(8), Err("8 after 6: 1 lost".into()));
        assert_eq!(c.take(6), Err("6 twice".into()));
        assert_eq!(c.take(4), Err("4 after 6: duplicated or reordered".into()));
        c.forgive();
        assert_eq!(c.take(6), Err("6 twice".into()));
        assert_eq!(c.take(10), Ok(()));
        assert_eq!(c.take(12), Err("12 after 10: 1 lost".into()));
    }
}
