//! [`Peer`]: a program running in one of the namespaces of a [`HostPair`](super::HostPair), its output read as
//! [`Line`]s and waited on, its input taking commands. It does not parse commands: the program does.

use std::time::Instant;

use anyhow::{anyhow, bail, ensure, Context};
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, ChildStdin};
use tokio::sync::mpsc;

use super::{Line, PeerStats, WAIT};

/// A program running in one of the namespaces (see [`HostPair::spawn`](super::HostPair::spawn)).
#[derive(Debug)]
pub struct Peer {
    pub(super) name: &'static str,
    pub(super) child: Child,
    pub(super) stdin: Option<ChildStdin>,
    pub(super) lines: mpsc::UnboundedReceiver<(Instant, String)>,
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
