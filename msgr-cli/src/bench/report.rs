//! The bench report: a table a person reads at a glance, and one JSON object for scripts.

use std::io::{self, Write};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::payload::Integrity;
use super::plan::{human_size, Case, Mode, Transport};
use super::{Outcome, PolicyArg, SessionCounts};

/// One measured run, as it appears in the JSON `runs` array.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    /// `msgr` or `raw-tcp`.
    pub transport: Transport,
    /// `stream` or `rr`.
    pub mode: Mode,
    /// Bytes of payload per message.
    pub size: usize,
    /// Connections.
    pub jobs: usize,
    /// Messages in flight per connection (0 in stream mode: no window).
    pub depth: usize,
    /// Messages sent over all connections and rounds.
    pub messages: u64,
    /// Length of the rounds together, in seconds.
    pub seconds: f64,
    /// Rounds measured (the transports took turns).
    pub rounds: usize,
    /// Messages per second: the median round's.
    pub msgs_per_s: f64,
    /// Each round's messages per second, in the order run.
    pub round_msgs_per_s: Vec<f64>,
    /// Payload megabytes (10^6 bytes) per second, of the median round.
    pub mb_per_s: f64,
    /// Median round trip in microseconds, over every round trip of every round (rr).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rtt_p50_us: Option<f64>,
    /// 99th percentile round trip in microseconds (rr).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rtt_p99_us: Option<f64>,
    /// 99.9th percentile round trip in microseconds (rr).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rtt_p999_us: Option<f64>,
    /// Longest round trip in microseconds (rr).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rtt_max_us: Option<f64>,
    /// Each round's median round trip in microseconds (rr).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub round_rtt_p50_us: Vec<f64>,
    /// With several connections, each round's fewest messages sent by one connection over
    /// the most by another: 1 when they shared the run evenly, near 0 when one was starved
    /// (its round trips then wait long while the others' are quick, and the p50 says little
    /// about the wait of a message in flight).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub round_conn_balance: Vec<f64>,
    /// This run's message rate over the raw-TCP rate of the same case (msgr runs): the median
    /// over rounds of each round's ratio to the raw round run just before it, so each ratio
    /// compares two runs a second apart, not the machine's quiet moments with its busy ones.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_vs_raw: Option<f64>,
    /// This run's median round trip over the raw-TCP median of the same case (msgr rr runs),
    /// paired by round like `rate_vs_raw`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p50_vs_raw: Option<f64>,
    /// This run's message rate over the fault-free msgr rate of the same case (msgr-faults
    /// runs), paired by round like `rate_vs_raw`: what the injected faults cost.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_vs_fault_free: Option<f64>,
    /// With cephx: the rate as a fraction of the unsigned run's (paired by round).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_vs_unsigned: Option<f64>,
    /// msgr2 runs: the rate as a fraction of msgr v1's in the same rounds (paired by round).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_vs_v1: Option<f64>,
    /// msgr2 secure runs: the rate as a fraction of msgr2 crc's (paired by round).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_vs_crc: Option<f64>,
    /// Socket faults, reconnects and resends of the client sessions (msgr runs).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub session: Option<SessionCounts>,
    /// Peak resident memory of the process during this case's runs over this transport, in
    /// bytes: the highest `VmHWM` of its rounds, each reset to the resident set of the
    /// moment just before the round ran (see `rss::reset_peak`); both ends are in this
    /// process for an embedded server. `None` where the peak cannot be read or reset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peak_rss_bytes: Option<u64>,
    /// CPU time of the process per message sent, in microseconds, over every round: both ends
    /// (an embedded server is in this process) and each run's set-up and teardown (a few
    /// milliseconds of a 0.5 s run). With `cpus`, what bounds the rate: a run keeping
    /// every CPU busy is bound by this cost; one that does not, by waits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_us_per_msg: Option<f64>,
    /// CPUs kept busy on average: the process's CPU time over the rounds' wall-clock time
    /// (set-up and teardown included).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
    /// This run's CPU per message over the raw-TCP run's of the same case (msgr runs): what
    /// the protocol and the messenger cost per message beyond a plain byte stream's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_vs_raw: Option<f64>,
}

/// Bytes in a MiB.
const MIB: f64 = (1 << 20) as f64;

fn round(x: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (x * scale).round() / scale
}

fn percentile_us(hist: &Histogram<u64>, q: f64) -> f64 {
    round(hist.value_at_quantile(q) as f64 / 1000.0, 1)
}

impl Run {
    /// The figures of `rounds`, the runs of `case` over `transport`: the median round's
    /// rate, and percentiles over every round trip of every round.
    pub fn new(transport: Transport, case: &Case, rounds: &[Outcome]) -> Run {
        let rate = |o: &Outcome| o.messages as f64 / o.elapsed.as_secs_f64().max(1e-9);
        let round_rates: Vec<f64> = rounds.iter().map(rate).collect();
        let msgs_per_s = median(&round_rates);
        let seconds: f64 = rounds.iter().map(|o| o.elapsed.as_secs_f64()).sum();
        let mut rtt: Option<Histogram<u64>> = None;
        let mut session: Option<SessionCounts> = None;
        for o in rounds {
            if let Some(h) = &o.rtt {
                match &mut rtt {
                    Some(all) => all
                        .add(h)
                        .expect("histograms from new_histogram share their bounds"),
                    None => rtt = Some(h.clone()),
                }
            }
            if let Some(counts) = o.session {
                session
                    .get_or_insert_with(SessionCounts::default)
                    .add(counts);
            }
        }
        let rtt = rtt.as_ref().filter(|h| !h.is_empty());
        let messages: u64 = rounds.iter().map(|o| o.messages).sum();
        let cpu: Option<Duration> = rounds.iter().map(|o| o.cpu).sum();
        let wall: Duration = rounds.iter().map(|o| o.run_wall).sum();
        let cpu_us_per_msg = cpu
            .filter(|_| messages > 0)
            .map(|c| round(c.as_secs_f64() * 1e6 / messages as f64, 3));
        let cpus = cpu
            .filter(|_| !wall.is_zero())
            .map(|c| round(c.as_secs_f64() / wall.as_secs_f64(), 2));
        let round_rtt_p50_us = rounds
            .iter()
            .filter_map(|o| o.rtt.as_ref().filter(|h| !h.is_empty()))
            .map(|h| percentile_us(h, 0.5))
            .collect();
        let round_conn_balance = rounds
            .iter()
            .filter(|_| case.jobs > 1)
            .filter_map(|o| o.conn_messages)
            .map(|(least, most)| round(least as f64 / most.max(1) as f64, 3))
            .collect();
        Run {
            transport,
            mode: case.mode,
            size: case.size,
            jobs: case.jobs,
            depth: case.depth,
            messages,
            seconds: round(seconds, 3),
            rounds: rounds.len(),
            msgs_per_s: round(msgs_per_s, 1),
            round_msgs_per_s: round_rates.iter().map(|r| round(*r, 1)).collect(),
            mb_per_s: round(msgs_per_s * case.size as f64 / 1e6, 1),
            rtt_p50_us: rtt.map(|h| percentile_us(h, 0.5)),
            rtt_p99_us: rtt.map(|h| percentile_us(h, 0.99)),
            rtt_p999_us: rtt.map(|h| percentile_us(h, 0.999)),
            rtt_max_us: rtt.map(|h| round(h.max() as f64 / 1000.0, 1)),
            round_rtt_p50_us,
            round_conn_balance,
            rate_vs_raw: None,
            p50_vs_raw: None,
            rate_vs_fault_free: None,
            rate_vs_unsigned: None,
            rate_vs_v1: None,
            rate_vs_crc: None,
            session,
            peak_rss_bytes: rounds.iter().filter_map(|o| o.peak_rss_bytes).max(),
            cpu_us_per_msg,
            cpus,
            cpu_vs_raw: None,
        }
    }

    fn same_case(&self, other: &Run) -> bool {
        (self.mode, self.size, self.jobs, self.depth)
            == (other.mode, other.size, other.jobs, other.depth)
    }

    /// One line for the progress output.
    pub fn summary(&self) -> String {
        let mut line = format!(
            "{:<11} {:<6} {:>7} x{} d{}: {} msgs in {:.2} s, {} msgs/s, {:.1} MB/s",
            self.transport.to_string(),
            self.mode.to_string(),
            human_size(self.size),
            self.jobs,
            self.depth,
            group(self.messages as f64),
            self.seconds,
            group(self.msgs_per_s),
            self.mb_per_s
        );
        if let (Some(p50), Some(p99)) = (self.rtt_p50_us, self.rtt_p99_us) {
            line.push_str(&format!(", rtt p50 {p50} us p99 {p99} us"));
        }
        line
    }
}

/// The many-sessions case (`--idle-connections`): idle sessions held open on one `msgr
/// serve` process, what they cost, and a depth-1 round trip beside them.
#[derive(Debug, Clone, Serialize)]
pub struct IdleMemory {
    /// Sessions asked for, each from its own client messenger without a listener.
    pub connections: usize,
    /// Sessions that failed to open.
    pub errors: usize,
    /// Seconds until every session was open and had carried one round trip.
    pub seconds_to_open: f64,
    /// This process's soft `RLIMIT_NOFILE` after raising it to the hard limit (the server
    /// child inherits it); `None` when unreadable.
    pub nofile_limit: Option<u64>,
    /// Resident memory of the server process before, in bytes.
    pub server_rss_before_bytes: u64,
    /// Resident memory of the server process with every session open, in bytes.
    pub server_rss_after_bytes: u64,
    /// Growth of the server's resident memory per session, in bytes.
    pub server_bytes_per_connection: u64,
    /// Growth of this process's resident memory per client messenger and its session.
    pub client_bytes_per_connection: u64,
    /// The depth-1 round trip, alone and beside the open sessions.
    pub probe: IdleProbe,
}

/// A depth-1 round trip on one more session: to a server without other sessions (single)
/// and to the server holding the idle sessions (loaded), in alternating rounds so both meet
/// the same machine weather (see `idle`'s module docs).
#[derive(Debug, Clone, Serialize)]
pub struct IdleProbe {
    /// Bytes per message.
    pub size: usize,
    /// Rounds of each.
    pub rounds: usize,
    /// Round trips measured alone, over every round.
    pub round_trips_single: u64,
    /// Round trips measured beside the idle sessions, over every round.
    pub round_trips_loaded: u64,
    /// Median round trip alone, over every round trip of every round, in microseconds.
    pub p50_single_us: Option<f64>,
    /// Median round trip beside the idle sessions, in microseconds.
    pub p50_loaded_us: Option<f64>,
    /// Loaded over single: the median of the round-by-round ratios of the p50s (each
    /// comparing two runs a moment apart), or the ratio of the two p50s for one round.
    pub p50_vs_single: Option<f64>,
}

impl IdleProbe {
    /// The probe of `case` from its rounds alone and loaded (paired by index).
    pub fn new(case: Case, single: &[Outcome], loaded: &[Outcome]) -> IdleProbe {
        let rounds_p50 = |runs: &[Outcome]| -> Vec<f64> {
            runs.iter()
                .filter_map(|o| o.rtt.as_ref().filter(|h| !h.is_empty()))
                .map(|h| percentile_us(h, 0.5))
                .collect()
        };
        let p50_all = |runs: &[Outcome]| -> Option<f64> {
            let mut all = super::new_histogram();
            for h in runs.iter().filter_map(|o| o.rtt.as_ref()) {
                all.add(h).ok()?;
            }
            (!all.is_empty()).then(|| percentile_us(&all, 0.5))
        };
        let (p50_single_us, p50_loaded_us) = (p50_all(single), p50_all(loaded));
        let paired = paired_ratio(&rounds_p50(loaded), &rounds_p50(single));
        IdleProbe {
            size: case.size,
            rounds: single.len().min(loaded.len()),
            round_trips_single: single.iter().map(|o| o.messages).sum(),
            round_trips_loaded: loaded.iter().map(|o| o.messages).sum(),
            p50_single_us,
            p50_loaded_us,
            p50_vs_single: paired.or_else(|| ratio(p50_loaded_us?, p50_single_us?)),
        }
    }
}

impl IdleMemory {
    /// One line for the progress output and the report.
    pub fn summary(&self) -> String {
        let us = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v} us"));
        format!(
            "{} idle msgr sessions ({} failed) opened in {:.2} s: server {:.1} KiB RSS per session, client {:.1} KiB per messenger+session; depth-1 {} p50 {} beside them, {} alone ({}x)",
            self.connections,
            self.errors,
            self.seconds_to_open,
            self.server_bytes_per_connection as f64 / 1024.0,
            self.client_bytes_per_connection as f64 / 1024.0,
            human_size(self.probe.size),
            us(self.probe.p50_loaded_us),
            us(self.probe.p50_single_us),
            self.probe
                .p50_vs_single
                .map_or("-".to_owned(), |r| r.to_string()),
        )
    }
}

/// Everything `msgr bench --json` prints.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Every run, in the order run.
    pub runs: Vec<Run>,
    /// Messages lost over all runs.
    pub lost: u64,
    /// Messages duplicated over all runs.
    pub duplicated: u64,
    /// Messages reordered over all runs.
    pub reordered: u64,
    /// Messages whose bytes failed verification over all runs.
    pub corrupted: u64,
    /// Peak resident memory of the process over the whole bench, in bytes: the highest of
    /// the runs' peaks and of `VmHWM` after the last run (the idle sessions' phase included).
    pub peak_rss_bytes: u64,
    /// `lossless` or `lossy`.
    pub policy: &'static str,
    /// The idle-connection measurement, when it was run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle: Option<IdleMemory>,
}

impl Report {
    /// An empty report.
    pub fn new(policy: PolicyArg) -> Report {
        Report {
            runs: Vec::new(),
            lost: 0,
            duplicated: 0,
            reordered: 0,
            corrupted: 0,
            peak_rss_bytes: 0,
            policy: match policy {
                PolicyArg::Lossless => "lossless",
                PolicyArg::Lossy => "lossy",
            },
            idle: None,
        }
    }

    /// Adds a run and its delivery faults, and compares msgr runs with raw-TCP runs of the
    /// same case.
    pub fn add(&mut self, run: Run, integrity: Integrity) {
        self.lost += integrity.lost;
        self.duplicated += integrity.duplicated;
        self.reordered += integrity.reordered;
        self.corrupted += integrity.corrupted;
        self.runs.push(run);
        let of = |transport: Transport, runs: &[Run]| -> Vec<Run> {
            runs.iter()
                .filter(|r| r.transport == transport)
                .cloned()
                .collect()
        };
        let raws = of(Transport::RawTcp, &self.runs);
        let clean = of(Transport::Msgr, &self.runs);
        let crc = of(Transport::MsgrV2, &self.runs);
        for run in self
            .runs
            .iter_mut()
            .filter(|r| r.transport != Transport::RawTcp)
        {
            if let Some(raw) = raws.iter().find(|raw| raw.same_case(run)) {
                run.rate_vs_raw = paired_ratio(&run.round_msgs_per_s, &raw.round_msgs_per_s)
                    .or_else(|| ratio(run.msgs_per_s, raw.msgs_per_s));
                run.p50_vs_raw = paired_ratio(&run.round_rtt_p50_us, &raw.round_rtt_p50_us)
                    .or_else(|| ratio(run.rtt_p50_us?, raw.rtt_p50_us?));
                run.cpu_vs_raw = run
                    .cpu_us_per_msg
                    .zip(raw.cpu_us_per_msg)
                    .and_then(|(ours, theirs)| ratio(ours, theirs));
            }
            if run.transport == Transport::MsgrCephx {
                if let Some(base) = clean.iter().find(|c| c.same_case(run)) {
                    run.rate_vs_unsigned =
                        paired_ratio(&run.round_msgs_per_s, &base.round_msgs_per_s)
                            .or_else(|| ratio(run.msgs_per_s, base.msgs_per_s));
                }
            }
            if matches!(run.transport, Transport::MsgrV2 | Transport::MsgrV2Secure) {
                if let Some(base) = clean.iter().find(|c| c.same_case(run)) {
                    run.rate_vs_v1 = paired_ratio(&run.round_msgs_per_s, &base.round_msgs_per_s)
                        .or_else(|| ratio(run.msgs_per_s, base.msgs_per_s));
                }
            }
            if run.transport == Transport::MsgrV2Secure {
                if let Some(base) = crc.iter().find(|c| c.same_case(run)) {
                    run.rate_vs_crc = paired_ratio(&run.round_msgs_per_s, &base.round_msgs_per_s)
                        .or_else(|| ratio(run.msgs_per_s, base.msgs_per_s));
                }
            }
            if run.transport == Transport::MsgrFaults {
                if let Some(base) = clean.iter().find(|c| c.same_case(run)) {
                    run.rate_vs_fault_free =
                        paired_ratio(&run.round_msgs_per_s, &base.round_msgs_per_s)
                            .or_else(|| ratio(run.msgs_per_s, base.msgs_per_s));
                }
            }
        }
    }

    /// The delivery faults over all runs.
    pub fn integrity(&self) -> Integrity {
        Integrity {
            lost: self.lost,
            duplicated: self.duplicated,
            reordered: self.reordered,
            corrupted: self.corrupted,
        }
    }

    /// Prints the table, the fault counts and the memory figures.
    pub fn print_table(&self, out: &mut impl Write) -> io::Result<()> {
        writeln!(
            out,
            "{:<11} {:<6} {:>7} {:>5} {:>5} {:>11} {:>11} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>5} {:>8}",
            "transport",
            "mode",
            "size",
            "conns",
            "depth",
            "messages",
            "msgs/s",
            "MB/s",
            "p50 us",
            "p99 us",
            "p99.9 us",
            "rate/raw",
            "p50/raw",
            "peak MiB",
            "cpu us/m",
            "CPUs",
            "cpu/raw"
        )?;
        for run in &self.runs {
            let opt = |v: Option<f64>, suffix: &str| {
                v.map_or_else(|| "-".to_owned(), |v| format!("{v}{suffix}"))
            };
            writeln!(
                out,
                "{:<11} {:<6} {:>7} {:>5} {:>5} {:>11} {:>11} {:>8.1} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>5} {:>8}",
                run.transport.to_string(),
                run.mode.to_string(),
                human_size(run.size),
                run.jobs,
                if run.mode == Mode::Rr {
                    run.depth.to_string()
                } else {
                    "-".to_owned()
                },
                group(run.messages as f64),
                group(run.msgs_per_s),
                run.mb_per_s,
                opt(run.rtt_p50_us, ""),
                opt(run.rtt_p99_us, ""),
                opt(run.rtt_p999_us, ""),
                opt(run.rate_vs_raw, "x"),
                opt(run.p50_vs_raw, "x"),
                opt(run.peak_rss_bytes.map(|b| round(b as f64 / MIB, 1)), ""),
                opt(run.cpu_us_per_msg, ""),
                opt(run.cpus, ""),
                opt(run.cpu_vs_raw, "x"),
            )?;
        }
        writeln!(
            out,
            "policy {}: lost {}, duplicated {}, reordered {}, corrupted {}; peak RSS {:.1} MiB",
            self.policy,
            self.lost,
            self.duplicated,
            self.reordered,
            self.corrupted,
            self.peak_rss_bytes as f64 / MIB
        )?;
        for run in &self.runs {
            if let Some(r) = run.rate_vs_unsigned {
                writeln!(
                    out,
                    "with cephx (signed), {} {}: {} msgs/s, {r} of the unsigned rate",
                    run.mode,
                    human_size(run.size),
                    group(run.msgs_per_s),
                )?;
            }
            if let Some(r) = run.rate_vs_fault_free {
                writeln!(
                    out,
                    "with faults injected, {} {}: {} msgs/s, {r} of the fault-free rate",
                    run.mode,
                    human_size(run.size),
                    group(run.msgs_per_s),
                )?;
            }
            if let Some(r) = run.rate_vs_v1 {
                let crc = run
                    .rate_vs_crc
                    .map(|c| format!(", {c} of msgr2 crc's"))
                    .unwrap_or_default();
                writeln!(
                    out,
                    "{}, {} {}: {} msgs/s, {r} of msgr v1's rate{crc}",
                    run.transport,
                    run.mode,
                    human_size(run.size),
                    group(run.msgs_per_s),
                )?;
            }
        }
        let mut sessions = SessionCounts::default();
        for counts in self.runs.iter().filter_map(|r| r.session) {
            sessions.add(counts);
        }
        if sessions != SessionCounts::default() {
            writeln!(
                out,
                "msgr client sessions: {} socket faults, {} reconnects, {} messages resent",
                sessions.faults, sessions.reconnects, sessions.resends
            )?;
        }
        if let Some(idle) = &self.idle {
            writeln!(out, "{}", idle.summary())?;
        }
        Ok(())
    }
}

/// `a / b` to three decimals, when `b` is positive.
fn ratio(a: f64, b: f64) -> Option<f64> {
    (b > 0.0).then(|| round(a / b, 3))
}

/// The median of the round-by-round ratios `ours[i] / theirs[i]` (rounds ran in turns, so
/// round `i` of both met the same moment of the machine), when both have the same rounds.
fn paired_ratio(ours: &[f64], theirs: &[f64]) -> Option<f64> {
    if ours.is_empty() || ours.len() != theirs.len() || theirs.iter().any(|t| *t <= 0.0) {
        return None;
    }
    let ratios: Vec<f64> = ours.iter().zip(theirs).map(|(a, b)| a / b).collect();
    Some(round(median(&ratios), 3))
}

/// The median of `xs` (the mean of the middle two for an even count; 0 for none).
fn median(xs: &[f64]) -> f64 {
    let mut v: Vec<f64> = xs.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// A whole number with thousands separators: `1,234,567`.
pub fn group(x: f64) -> String {
    let digits = format!("{:.0}", x.max(0.0));
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_pair_rounds() {
        // Round 2 met a busy machine for both transports: paired, it does not skew the ratio.
        let ours = [110.0, 55.0, 120.0];
        let theirs = [100.0, 50.0, 100.0];
        assert_eq!(paired_ratio(&ours, &theirs), Some(1.1));
        assert_eq!(paired_ratio(&ours, &theirs[..2]), None);
        assert_eq!(paired_ratio(&[], &[]), None);
        assert_eq!(paired_ratio(&[1.0], &[0.0]), None);
    }

    #[test]
    fn median_of_rounds() {
        assert_eq!(median(&[]), 0.0);
        assert_eq!(median(&[3.0]), 3.0);
        assert_eq!(median(&[5.0, 1.0, 3.0]), 3.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
    }

    #[test]
    fn a_run_is_its_median_round_and_all_its_round_trips() {
        let case = Case::rr(4096, 1, 1);
        let round = |messages: u64, rtts_us: &[u64]| {
            let mut h = crate::bench::new_histogram();
            for us in rtts_us {
                h.record(us * 1000).unwrap();
            }
            Outcome {
                messages,
                elapsed: std::time::Duration::from_secs(1),
                rtt: Some(h),
                ..Outcome::default()
            }
        };
        let rounds = [
            round(100, &[10, 10]),
            round(300, &[30]),
            round(200, &[20, 20]),
        ];
        let run = Run::new(Transport::Msgr, &case, &rounds);
        assert_eq!(run.rounds, 3);
        assert_eq!(run.messages, 600);
        assert_eq!(run.msgs_per_s, 200.0);
        assert_eq!(run.round_msgs_per_s, vec![100.0, 300.0, 200.0]);
        assert_eq!(run.seconds, 3.0);
        // Five round trips: 10, 10, 20, 20, 30 us.
        assert_eq!(run.rtt_p50_us, Some(20.0));
        assert_eq!(run.rtt_max_us, Some(30.0));
    }

    #[test]
    fn cpu_per_message_and_cpus_busy_are_over_every_round() {
        let case = Case::stream(64);
        let round = |messages: u64, cpu_ms: u64, wall_ms: u64| Outcome {
            messages,
            elapsed: Duration::from_millis(wall_ms),
            cpu: Some(Duration::from_millis(cpu_ms)),
            run_wall: Duration::from_millis(wall_ms),
            ..Outcome::default()
        };
        // 3,000 messages for 3 ms of CPU over 2 ms of wall-clock time: 1 us each, 1.5 CPUs.
        let msgr = Run::new(
            Transport::Msgr,
            &case,
            &[round(1_000, 1, 1), round(2_000, 2, 1)],
        );
        assert_eq!(msgr.cpu_us_per_msg, Some(1.0));
        assert_eq!(msgr.cpus, Some(1.5));
        // Raw TCP: 0.25 us per message; msgr's is 4 times it.
        let raw = Run::new(Transport::RawTcp, &case, &[round(4_000, 1, 1)]);
        let mut report = Report::new(PolicyArg::Lossless);
        report.add(raw, Integrity::default());
        report.add(msgr, Integrity::default());
        assert_eq!(report.runs[1].cpu_vs_raw, Some(4.0));
        assert_eq!(report.runs[0].cpu_vs_raw, None);
        // A round without a CPU reading leaves the figures out rather than understated.
        let partial = Run::new(
            Transport::Msgr,
            &case,
            &[
                round(1_000, 1, 1),
                Outcome {
                    messages: 5,
                    ..Outcome::default()
                },
            ],
        );
        assert_eq!(partial.cpu_us_per_msg, None);
        assert_eq!(partial.cpus, None);
        let mut table = Vec::new();
        report.print_table(&mut table).unwrap();
        let table = String::from_utf8(table).unwrap();
        assert!(table.contains("cpu us/m"), "{table}");
        assert!(table.contains("4x"), "{table}");
    }

    #[test]
    fn the_connections_balance_is_the_fewest_over_the_most_messages_of_each_round() {
        let job = |messages: u64| {
            let now = std::time::Instant::now();
            crate::bench::JobResult {
                messages,
                integrity: Default::default(),
                rtt: None,
                session: None,
                started: now,
                ended: now,
            }
        };
        let round = |per_conn: &[u64]| {
            let mut o = Outcome::default();
            for &m in per_conn {
                o.add(job(m));
            }
            o
        };
        let rounds = [round(&[400, 100, 300, 200]), round(&[50, 50, 50, 50])];
        assert_eq!(rounds[0].conn_messages, Some((100, 400)));
        assert_eq!(rounds[0].messages, 1000);
        let run = Run::new(Transport::RawTcp, &Case::rr(4096, 4, 128), &rounds);
        assert_eq!(run.round_conn_balance, vec![0.25, 1.0]);
        // One connection: nothing to balance, and no field in the JSON.
        let one = Run::new(Transport::RawTcp, &Case::rr(4096, 1, 1), &[round(&[7])]);
        assert!(one.round_conn_balance.is_empty());
        let json = serde_json::to_value(&one).unwrap();
        assert!(json.get("round_conn_balance").is_none(), "{json}");
    }

    #[test]
    fn groups_thousands() {
        assert_eq!(group(0.0), "0");
        assert_eq!(group(999.0), "999");
        assert_eq!(group(1000.0), "1,000");
        assert_eq!(group(1_234_567.4), "1,234,567");
    }
}
