//! What `msgr-netns-peer` and the tests share: its output [`Line`]s (one per line, `Display` writes them and
//! `FromStr` reads them back), the sequence-numbered messages it sends ([`seq_message`], [`seq_of`]) and the check
//! that their numbers arrive one by one ([`SeqCheck`]). No I/O here.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use anyhow::{bail, Context};
use bytes::Bytes;
use msgr_wire::Message;

/// Message type of the sequence-numbered messages (front: the sequence number, u64 LE; data: [`seq_payload`]).
pub const MSG_SEQ: u16 = 0x7c00;
/// Length of the data segment of a sequence-numbered message.
pub const PAYLOAD_LEN: usize = 1024;
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
    use crate::netns::SERVER_IP;

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
