//! What a bench run measures: the cases, their sizes and how long each lasts.

use std::fmt;
use std::time::Duration;

use clap::ValueEnum;
use serde::Serialize;

use super::payload::HEADER_LEN;

/// How a case moves messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// One way: the client sends, the server counts and says at the end what it received.
    Stream,
    /// Request and response: the server echoes, the client keeps `depth` messages in flight and
    /// times each round trip.
    Rr,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Stream => "stream",
            Mode::Rr => "rr",
        })
    }
}

/// Which implementation carries the messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Transport {
    /// The msgr messenger, msgr v1 on the wire (msgr2 against a `v2:` server).
    #[serde(rename = "msgr")]
    Msgr,
    /// A plain TCP stream with a 4-byte length before each message: the baseline.
    #[serde(rename = "raw-tcp")]
    RawTcp,
    /// The msgr messenger with the fault injection asked for (`--inject-*`); measured beside
    /// [`Transport::Msgr`] without it, in the same rounds.
    #[serde(rename = "msgr-faults")]
    MsgrFaults,
    /// The msgr messenger with cephx: authorized sessions, every message signed and checked;
    /// measured beside [`Transport::Msgr`], in the same rounds.
    #[serde(rename = "msgr-cephx")]
    MsgrCephx,
    /// The msgr messenger speaking msgr2 in crc mode (auth none).
    #[serde(rename = "msgr-v2")]
    MsgrV2,
    /// The msgr messenger speaking msgr2 in secure mode: cephx from a throw-away keyring
    /// (an in-memory mon), every frame sealed with AES-128-GCM.
    #[serde(rename = "msgr-v2-secure")]
    MsgrV2Secure,
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Transport::Msgr => "msgr",
            Transport::RawTcp => "raw-tcp",
            Transport::MsgrFaults => "msgr-faults",
            Transport::MsgrCephx => "msgr-cephx",
            Transport::MsgrV2 => "msgr-v2",
            Transport::MsgrV2Secure => "msgr-v2-secure",
        })
    }
}

/// One measurement: a mode at a size over `jobs` connections with `depth` messages in flight each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Case {
    /// Stream or request/response.
    pub mode: Mode,
    /// Bytes of payload per message (at least [`HEADER_LEN`]).
    pub size: usize,
    /// Connections, each driven by its own task.
    pub jobs: usize,
    /// Messages in flight per connection in rr mode; 0 in stream mode (no window).
    pub depth: usize,
}

impl Case {
    /// A stream case on one connection.
    pub fn stream(size: usize) -> Case {
        Case {
            mode: Mode::Stream,
            size,
            jobs: 1,
            depth: 0,
        }
    }

    /// A request/response case.
    pub fn rr(size: usize, jobs: usize, depth: usize) -> Case {
        Case {
            mode: Mode::Rr,
            size,
            jobs,
            depth,
        }
    }
}

impl fmt::Display for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.mode, human_size(self.size))?;
        if self.jobs > 1 {
            write!(f, " x{} conns", self.jobs)?;
        }
        if self.mode == Mode::Rr {
            write!(f, " depth {}", self.depth)?;
        }
        Ok(())
    }
}

/// When a run stops sending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// After this many messages on each connection.
    Count(u64),
    /// After this long (checked between messages).
    Duration(Duration),
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Limit::Count(n) => write!(f, "{n} msgs/conn"),
            Limit::Duration(d) => write!(f, "{:.1} s", d.as_secs_f64()),
        }
    }
}

/// The cases of the default run: what the goals are measured on.
pub fn default_cases(quick: bool) -> Vec<Case> {
    let big = if quick { 1 << 20 } else { 4 << 20 };
    vec![
        Case::stream(64),
        Case::stream(4096),
        Case::stream(big),
        Case::rr(4096, 1, 1),
        Case::rr(4096, if quick { 2 } else { 4 }, 128),
    ]
}

/// The smallest size a message can have: the bench header.
pub const MIN_SIZE: usize = HEADER_LEN;

/// Parses a size: a number of bytes with an optional `K`/`KiB`/`M`/`MiB`/`G`/`GiB` suffix
/// (binary multiples; `k`, `KB` and the like are accepted too).
pub fn parse_size(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, suffix) = s.split_at(split);
    let n: usize = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a size (try 64, 4K, 4MiB)"))?;
    let shift = match suffix.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        other => return Err(format!("unknown size suffix {other:?} (use K, M or G)")),
    };
    let size = n
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("{s:?} is too large"))?;
    if size < MIN_SIZE {
        return Err(format!(
            "a message carries at least the {MIN_SIZE}-byte bench header; {size} is too small"
        ));
    }
    Ok(size)
}

/// Parses a duration in seconds (fractions allowed) or with a `ms`/`s`/`m` suffix.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (number, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else {
        (s, 1.0)
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (try 3, 0.5, 250ms)"))?;
    if !value.is_finite() || value < 0.0 {
        return Err(format!("{s:?} is not a duration"));
    }
    Ok(Duration::from_secs_f64(value * scale))
}

/// A size as a person reads it: `64 B`, `4 KiB`, `4 MiB`.
pub fn human_size(size: usize) -> String {
    if size >= 1 << 20 && size % (1 << 20) == 0 {
        format!("{} MiB", size >> 20)
    } else if size >= 1 << 10 && size % (1 << 10) == 0 {
        format!("{} KiB", size >> 10)
    } else {
        format!("{size} B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64"), Ok(64));
        assert_eq!(parse_size("4K"), Ok(4096));
        assert_eq!(parse_size("4KiB"), Ok(4096));
        assert_eq!(parse_size("4MiB"), Ok(4 << 20));
        assert!(parse_size("8").is_err());
        assert!(parse_size("4X").is_err());
        assert_eq!(human_size(4096), "4 KiB");
        assert_eq!(human_size(4 << 20), "4 MiB");
        assert_eq!(human_size(100), "100 B");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("0.5s"), Ok(Duration::from_millis(500)));
        assert!(parse_duration("-1").is_err());
    }
}
