//! `msgr bench`: the messenger measured beside a raw-TCP baseline, in one run.
//!
//! With no argument it starts a server and a client in this process on loopback and runs the
//! default plan ([`plan::default_cases`]): one-way streams of 64 B, 4 KiB and 4 MiB messages on one
//! connection, round trips at depth 1, and depth 128 over several connections, each over both
//! transports, then prints a table (with `--json`, the JSON object alone on standard output and
//! the table on standard error). With `--inject-*`, each case runs the messenger twice per
//! round, without and with the faults (`msgr-faults`), and reports the rate with faults as a
//! fraction of the fault-free one. Values that mean nothing (`--jobs 0`, `--depth 0`, a
//! `--depth` for a stream, ...) are refused before any run.
//!
//! ```text
//! BenchArgs --plan--> [Case] x [Transport] --raw::run / msgr::run--> Outcome --report--> table, JSON
//! ```

mod client;
mod idle;
mod msgr;
pub mod payload;
pub mod plan;
mod plot;
mod progress;
mod raw;
mod report;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;
use clap::{Args, ValueEnum};
use hdrhistogram::Histogram;

use self::payload::Integrity;
use self::plan::{Case, Limit, Mode, Transport};
use self::progress::Progress;
use self::report::{Report, Run};

/// Seconds per run (one round of one transport) of the default plan.
const DEFAULT_SECONDS: f64 = 0.5;
/// Seconds per run with `--quick`.
const QUICK_SECONDS: f64 = 0.25;
/// Rounds per case of the default plan.
const DEFAULT_ROUNDS: usize = 6;
/// With `-t`, rounds are dropped (down to one) before a run gets shorter than this.
const BUDGET_RUN_SECONDS: f64 = 0.1;
/// With `-t`, the shortest run allowed: below it setup would outweigh the measurement.
const MIN_RUN_SECONDS: f64 = 0.02;

/// Options of `msgr bench`.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Drive a remote `msgr serve` at this address (v1:HOST:PORT or HOST:PORT) instead of the
    /// embedded server; only the msgr transport is measured then.
    #[arg(long, value_name = "ADDR")]
    pub server: Option<String>,
    /// With `--server`: a ceph.conf to authenticate with (mon_host, keyring, auth options):
    /// the bench's client authenticates to the mons first and presents its ticket to the
    /// server (`msgr serve -n osd.N`), its messages signed.
    #[arg(short = 'c', long = "conf", requires = "server")]
    pub conf: Option<std::path::PathBuf>,
    /// With `--server`: who to authenticate as.
    #[arg(short = 'n', long, default_value = "client.admin")]
    pub name: String,
    /// With `--server`: the keyring holding the name's key.
    #[arg(short = 'k', long, requires = "server")]
    pub keyring: Option<std::path::PathBuf>,
    /// With `--server`: the mon(s) to authenticate to (else the conf's `mon_host`).
    #[arg(short = 'm', long = "mon", requires = "server")]
    pub mon: Option<String>,
    /// Which transports to measure.
    #[arg(long, value_enum, default_value_t = Transports::Both)]
    pub transport: Transports,
    /// Measure only this mode (with the other options, one case instead of the default plan).
    #[arg(long, value_enum)]
    pub mode: Option<Mode>,
    /// Bytes per message, e.g. 64, 4K, 4MiB; a comma-separated list runs each size.
    #[arg(long, value_parser = plan::parse_size, value_delimiter = ',')]
    pub size: Vec<usize>,
    /// Connections, each driven by its own task (like perf_msgr's numjobs).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Messages in flight per connection in rr mode (like fio's iodepth).
    #[arg(long)]
    pub depth: Option<usize>,
    /// Messages per connection in each run.
    #[arg(long, conflicts_with = "duration")]
    pub count: Option<u64>,
    /// Length of each run: seconds, or with a suffix (250ms, 2s) [default: 0.5, 0.25 with --quick].
    #[arg(long, value_parser = plan::parse_duration)]
    pub duration: Option<Duration>,
    /// The whole run's time budget (seconds, or 30s, 2m), split evenly across cases,
    /// transports and rounds (rounds are dropped, down to one, before a run gets shorter than
    /// 0.1 s), with no warm-up run; the expected duration is printed first. Setup and teardown of each run come on
    /// top; idle connections are not measured unless --idle-connections asks.
    #[arg(short = 't', long = "time", value_parser = plan::parse_duration, conflicts_with_all = ["duration", "count"])]
    pub time: Option<Duration>,
    /// Draw the results to FILE (.svg, or .html for the SVG in a page): the round-trip latency
    /// histogram of each request/response case and the rate by message size, msgr beside raw
    /// TCP.
    #[arg(long, value_name = "FILE")]
    pub plot: Option<std::path::PathBuf>,
    /// Rounds per case: the transports take turns, one run each per round, so both meet the
    /// same machine weather; a case's rate is its median round, its latency percentiles are
    /// over every round trip of every round, and its ratios to raw TCP are the median of the
    /// round-by-round ratios [default: 6, 1 with --quick or --count].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub rounds: Option<u16>,
    /// Measure from the first round on, without the warm-up: by default, when there are
    /// several rounds, each transport first runs the first case once, unmeasured and as long
    /// as a measured run, so that no transport's first measured round pays for the machine
    /// warming up (on the project's VM a process's first 0.25-0.5 s of traffic ran at a
    /// third to a half of the later rate, and the raw-TCP baseline, which runs first, paid it
    /// alone). A single round (`--count` alone, callgrind runs) has no warm-up, nor has a
    /// `-t` budget (it is the whole run's).
    #[arg(long)]
    pub no_warm_up: bool,
    /// Session policy: lossless (client reconnects and resends) or lossy.
    #[arg(long, value_enum, default_value_t = PolicyArg::Lossless)]
    pub policy: PolicyArg,
    /// Check every received byte and the order of every message (costs CPU on both ends).
    #[arg(long)]
    pub verify: bool,
    /// Fail one socket operation in N (msgr only; 0 = off).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub inject_socket_failures: u32,
    /// Longest injected delivery delay, in seconds (msgr only; 0 = off).
    #[arg(long, value_name = "S", value_parser = plan::parse_duration, default_value = "0")]
    pub inject_delay_max: Duration,
    /// Probability that a message's delivery is delayed (msgr only).
    #[arg(long, value_name = "P", default_value_t = 0.0)]
    pub inject_delay_probability: f64,
    /// Send data segments without a CRC (Ceph's `ms_crc_data = false`; header CRCs stay).
    #[arg(long)]
    pub no_crc_data: bool,
    /// Each session's bound on queued and unacknowledged message bytes (the pipe's
    /// `max_pending_bytes`, e.g. 16M); the messenger's default if not given.
    #[arg(long, value_name = "BYTES", value_parser = plan::parse_size)]
    pub max_pending_bytes: Option<usize>,
    /// Also measure the messenger with cephx, beside the unsigned runs in the same rounds
    /// (`msgr-cephx`, with its `rate_vs_unsigned`): an in-memory cephx mon issues the client a
    /// ticket, the embedded server verifies it with the mon's rotating keys (challenged), and
    /// every message is signed and checked (CEPHX_V2 signatures, as Pacific).
    #[arg(long, conflicts_with = "server")]
    pub cephx: bool,
    /// Which protocol the embedded server and client speak: v1, v2 (msgr2 in the mode of
    /// `--con-mode`, crc by default), or both (the default plan: msgr v1, msgr2 crc and msgr2
    /// secure side by side in the same rounds). Against `--server` its address decides.
    #[arg(long, value_enum)]
    pub protocol: Option<ProtocolArg>,
    /// msgr2's connection mode: crc, or secure (AES-128-GCM; the embedded server and client
    /// authenticate with cephx from a throw-away keyring the bench makes, so nothing needs
    /// setting up) [default: Ceph's preference, crc then secure].
    #[arg(long, value_enum)]
    pub con_mode: Option<ConModeArg>,
    /// Seed of the fault injection, so a failing run can be replayed.
    #[arg(long, value_name = "S", default_value_t = 0)]
    pub seed: u64,
    /// Print one JSON object with every figure on standard output, and nothing else there
    /// (the table and the progress go to standard error), so `msgr bench --json | jq .` works.
    #[arg(long)]
    pub json: bool,
    /// A CI-sized run: the default plan, shorter and smaller.
    #[arg(long)]
    pub quick: bool,
    /// After the runs, open this many idle msgr sessions on a `msgr serve` child (each from a
    /// client messenger without a listener, as Ceph's clients) and report the time to open
    /// them, failures, memory per session on each side, and a depth-1 round trip beside them
    /// against one on a server without them (`p50_vs_single`); the soft RLIMIT_NOFILE is raised
    /// to the hard one first [default: 1000, 100 with --quick, 0 when one case is asked for].
    #[arg(long, value_name = "N")]
    pub idle_connections: Option<usize>,
}

/// Which transports `msgr bench` measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Transports {
    /// The messenger and the raw-TCP baseline.
    Both,
    /// The messenger only.
    Msgr,
    /// The raw-TCP baseline only.
    Raw,
}

/// `msgr bench --protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProtocolArg {
    /// msgr v1 only.
    V1,
    /// msgr2 only.
    V2,
}

pub use crate::ceph_opts::ConModeArg;

/// The session policy of the bench's client (the server takes the matching server policy).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PolicyArg {
    /// `lossless_client` against `stateful_server`: nothing may be lost, even with faults.
    Lossless,
    /// `lossy_client` against `stateless_server`: a fault drops the session and its messages.
    Lossy,
}

impl BenchArgs {
    /// The cases to run: the default plan, or the one case the options describe.
    fn cases(&self) -> Vec<Case> {
        let custom = self.mode.is_some()
            || !self.size.is_empty()
            || self.jobs.is_some()
            || self.depth.is_some();
        if !custom {
            return plan::default_cases(self.quick);
        }
        let mode = self.mode.unwrap_or(if self.depth.is_some() {
            Mode::Rr
        } else {
            Mode::Stream
        });
        let sizes = if self.size.is_empty() {
            vec![4096]
        } else {
            self.size.clone()
        };
        let jobs = self.jobs.unwrap_or(1).max(1);
        sizes
            .into_iter()
            .map(|size| match mode {
                Mode::Stream => Case {
                    jobs,
                    ..Case::stream(size)
                },
                Mode::Rr => Case::rr(size, jobs, self.depth.unwrap_or(1).max(1)),
            })
            .collect()
    }

    /// How long each run lasts and how many rounds there are: from `-t` (the budget split
    /// over cases, transports and rounds), or from `--count`/`--duration`/`--rounds`.
    fn schedule(&self, cases: usize, transports: usize) -> anyhow::Result<Schedule> {
        let asked_rounds = self.rounds.map(usize::from);
        let Some(budget) = self.time else {
            let limit = match (self.count, self.duration) {
                (Some(n), _) => Limit::Count(n),
                (None, Some(d)) => Limit::Duration(d),
                (None, None) if self.quick => {
                    Limit::Duration(Duration::from_secs_f64(QUICK_SECONDS))
                }
                (None, None) => Limit::Duration(Duration::from_secs_f64(DEFAULT_SECONDS)),
            };
            let rounds = match asked_rounds {
                Some(n) => n,
                None if self.quick || self.count.is_some() => 1,
                None => DEFAULT_ROUNDS,
            };
            return Ok(Schedule {
                limit,
                rounds,
                budgeted: false,
            });
        };
        let per_round = (cases * transports).max(1) as f64;
        let seconds = budget.as_secs_f64();
        let rounds = asked_rounds.unwrap_or_else(|| {
            let most = if self.quick { 1 } else { DEFAULT_ROUNDS };
            // The epsilon keeps 1.2 s / (2 x 0.1 s) at 6, not 5.999...
            ((seconds / (per_round * BUDGET_RUN_SECONDS) + 1e-9) as usize).clamp(1, most)
        });
        let run = seconds / (per_round * rounds as f64);
        if run < MIN_RUN_SECONDS {
            bail!(
                "-t {seconds} s is too short for {} runs ({cases} cases x {transports} transports x {rounds} rounds): each needs at least {} ms",
                per_round as usize * rounds,
                (MIN_RUN_SECONDS * 1000.0) as u64
            );
        }
        Ok(Schedule {
            limit: Limit::Duration(Duration::from_secs_f64(run)),
            rounds,
            budgeted: true,
        })
    }

    fn transports(&self) -> Vec<Transport> {
        let mut transports = match (self.transport, self.server.is_some()) {
            (Transports::Raw, _) => vec![Transport::RawTcp],
            (Transports::Msgr, _) | (Transports::Both, true) => vec![Transport::Msgr],
            (Transports::Both, false) => vec![Transport::RawTcp, Transport::Msgr],
        };
        // With injection the messenger runs twice per round, without and with the faults,
        // so the faults' cost is a ratio of two runs of the same case a moment apart.
        if self.injects() && transports.contains(&Transport::Msgr) {
            transports.push(Transport::MsgrFaults);
        }
        if self.cephx && transports.contains(&Transport::Msgr) {
            transports.push(Transport::MsgrCephx);
        }
        // The embedded server speaks each protocol asked for; v1 is `msgr`, the baseline of
        // the faults and cephx runs.
        if self.server.is_none() && transports.contains(&Transport::Msgr) {
            let secure = Transport::MsgrV2Secure;
            let v2 = match self.con_mode {
                Some(ConModeArg::Crc) => vec![Transport::MsgrV2],
                Some(ConModeArg::Secure) => vec![secure],
                None => vec![Transport::MsgrV2, secure],
            };
            match self.protocol {
                Some(ProtocolArg::V1) => {}
                Some(ProtocolArg::V2) => {
                    transports.retain(|t| *t != Transport::Msgr);
                    transports.extend(v2);
                }
                None => transports.extend(v2),
            }
        }
        transports
    }

    /// Whether any fault injection is asked for.
    fn injects(&self) -> bool {
        self.inject_socket_failures > 0
            || (self.inject_delay_probability > 0.0 && !self.inject_delay_max.is_zero())
    }

    /// Rejects values that mean nothing (zero connections, a window of 0, a depth for a
    /// stream), rather than running something else than asked.
    fn validate(&self) -> anyhow::Result<()> {
        if self.jobs == Some(0) {
            bail!("--jobs 0: a run needs at least one connection");
        }
        if self.depth == Some(0) {
            bail!("--depth 0: a request/response run needs at least one message in flight");
        }
        if self.depth.is_some() && self.mode == Some(Mode::Stream) {
            bail!("--depth is the rr window; a stream (--mode stream) has none");
        }
        if self.count == Some(0) {
            bail!("--count 0: a run needs at least one message per connection");
        }
        if self.duration.is_some_and(|d| d.is_zero()) {
            bail!("--duration 0: a run needs some time");
        }
        if self.time.is_some_and(|d| d.is_zero()) {
            bail!("-t 0: the run needs some time");
        }
        if let Some(path) = &self.plot {
            plot::Format::of(path)?;
        }
        if self.inject_socket_failures == 1 {
            bail!("--inject-socket-failures 1 fails every socket operation: nothing could flow");
        }
        if !(0.0..=1.0).contains(&self.inject_delay_probability) {
            bail!(
                "--inject-delay-probability {} is not a probability (0 to 1)",
                self.inject_delay_probability
            );
        }
        if self.transport == Transports::Raw && self.injects() {
            bail!("fault injection (--inject-*) applies to msgr only, not --transport raw");
        }
        if self.transport == Transports::Raw && self.server.is_some() {
            bail!("--server drives a remote msgr serve; the raw-TCP baseline only runs embedded");
        }
        Ok(())
    }

    fn idle_connections(&self) -> usize {
        let custom = self.mode.is_some() || !self.size.is_empty();
        match self.idle_connections {
            Some(n) => n,
            // A time budget covers the runs; idle connections only when asked for.
            None if custom || self.transport == Transports::Raw || self.time.is_some() => 0,
            None if self.quick => 100,
            None => 1000,
        }
    }
}

/// How long each run lasts and how many rounds a case has.
#[derive(Debug, Clone, Copy)]
struct Schedule {
    limit: Limit,
    rounds: usize,
    /// From `-t`: the budget is the whole run's, so there is no warm-up run.
    budgeted: bool,
}

impl Schedule {
    /// The unmeasured run each transport makes of the first case before the rounds, if
    /// any: with several rounds, unless `--no-warm-up` or `-t`; as long as a measured run.
    fn warm_up(&self, no_warm_up: bool) -> Option<Limit> {
        (!no_warm_up && !self.budgeted && self.rounds > 1).then_some(self.limit)
    }
}

/// `1 case`, `2 cases`.
fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("{n} {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// The line printed before the runs: what will run and how long it should take.
fn expected_line(
    cases: usize,
    transports: usize,
    schedule: Schedule,
    warm_up: Option<Limit>,
    idle: usize,
) -> String {
    let runs = cases * transports * schedule.rounds;
    let warm_ups = if warm_up.is_some() { transports } else { 0 };
    let what = format!(
        "{} x {} x {} = {}",
        plural(cases, "case"),
        plural(transports, "transport"),
        plural(schedule.rounds, "round"),
        plural(runs, "run")
    );
    let mut line = match schedule.limit {
        Limit::Duration(d) => format!(
            "expected duration: {:.1} s ({what} of {:.3} s, plus setup)",
            d.as_secs_f64() * (runs + warm_ups) as f64,
            d.as_secs_f64()
        ),
        Limit::Count(n) => {
            format!("expected duration: unknown ({what} of {n} msgs/conn; it depends on the rate)")
        }
    };
    if let Some(limit) = warm_up {
        let each = match limit {
            Limit::Duration(d) => format!("{:.3} s", d.as_secs_f64()),
            Limit::Count(n) => format!("{n} msgs/conn"),
        };
        // Inside the parenthesis.
        line.pop();
        line.push_str(&format!(
            "; first {} of {each}, not measured)",
            plural(transports, "warm-up run")
        ));
    }
    if idle > 0 {
        line.push_str(&format!(", then {idle} idle connections"));
    }
    line
}

/// Runs `msgr bench` on a runtime of its own; `Err` when the run fails or loses messages on a
/// lossless policy.
pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    args.validate()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run_plan(args))
}

async fn run_plan(args: BenchArgs) -> anyhow::Result<()> {
    let cases = args.cases();
    let transports = args.transports();
    let schedule = args.schedule(cases.len(), transports.len())?;
    let limit = schedule.limit;
    let faulty = msgr::Options::from_args(&args).await?;
    let options = msgr::Options {
        inject: msgr_core::InjectConfig::default(),
        ..faulty.clone()
    };
    let cephx = msgr::Options {
        auth: args.cephx.then(msgr::BenchAuth::cephx).transpose()?,
        ..options.clone()
    };
    let v2_crc = msgr::Options {
        v2: true,
        con_mode: Some(msgr_core::ConMode::Crc),
        ..options.clone()
    };
    let v2_secure = msgr::Options {
        v2: true,
        con_mode: Some(msgr_core::ConMode::Secure),
        auth: transports
            .contains(&Transport::MsgrV2Secure)
            .then(msgr::BenchAuth::cephx)
            .transpose()?,
        ..options.clone()
    };
    let idle = args.idle_connections();
    let rounds = schedule.rounds;
    let warm_up = schedule.warm_up(args.no_warm_up);
    // First, on standard error (standard output stays the JSON object alone with --json).
    eprintln!(
        "{}",
        expected_line(cases.len(), transports.len(), schedule, warm_up, idle)
    );
    let mut progress = Progress::new(
        cases.len() * transports.len() * rounds
            + warm_up.map_or(0, |_| transports.len())
            + usize::from(idle > 0),
        !args.json,
    );
    if let (Some(limit), Some(case)) = (warm_up, cases.first()) {
        for &transport in &transports {
            progress.start(&format!("{transport} {case} ({limit}) warm-up"));
            let options = match transport {
                Transport::RawTcp => None,
                Transport::Msgr => Some(&options),
                Transport::MsgrFaults => Some(&faulty),
                Transport::MsgrCephx => Some(&cephx),
                Transport::MsgrV2 => Some(&v2_crc),
                Transport::MsgrV2Secure => Some(&v2_secure),
            };
            // Not measured: only an error counts.
            match options {
                None => raw::run(*case, limit, args.verify).await?,
                Some(options) => msgr::run(*case, limit, options).await?,
            };
            progress.finish(&format!("{transport} {case}: warm-up run"));
        }
    }
    let mut plot = plot::Plot::default();
    let mut report = Report::new(args.policy);
    // The highest peak of the runs so far (each run resets the process's VmHWM).
    let mut process_peak = 0u64;
    for case in &cases {
        let mut outcomes: Vec<Vec<Outcome>> = transports.iter().map(|_| Vec::new()).collect();
        for round in 1..=rounds {
            let of = if rounds > 1 {
                format!(" round {round}/{rounds}")
            } else {
                String::new()
            };
            for (&transport, done) in transports.iter().zip(&mut outcomes) {
                progress.start(&format!("{transport} {case} ({limit}){of}"));
                let peak_reset = crate::rss::reset_peak();
                let (cpu_before, wall_before) = (crate::cpu::process_cpu(), Instant::now());
                let mut outcome = match transport {
                    Transport::RawTcp => raw::run(*case, limit, args.verify).await?,
                    Transport::Msgr => msgr::run(*case, limit, &options).await?,
                    Transport::MsgrFaults => msgr::run(*case, limit, &faulty).await?,
                    Transport::MsgrCephx => msgr::run(*case, limit, &cephx).await?,
                    Transport::MsgrV2 => msgr::run(*case, limit, &v2_crc).await?,
                    Transport::MsgrV2Secure => msgr::run(*case, limit, &v2_secure).await?,
                };
                outcome.cpu = Some(crate::cpu::process_cpu().saturating_sub(cpu_before));
                outcome.run_wall = wall_before.elapsed();
                outcome.peak_rss_bytes = crate::rss::peak_rss_bytes().filter(|_| peak_reset);
                process_peak = process_peak.max(outcome.peak_rss_bytes.unwrap_or(0));
                progress.finish(&format!(
                    "{}{of}",
                    Run::new(transport, case, std::slice::from_ref(&outcome)).summary()
                ));
                done.push(outcome);
            }
        }
        for (&transport, done) in transports.iter().zip(&outcomes) {
            let mut integrity = Integrity::default();
            for outcome in done {
                integrity.add(outcome.integrity);
            }
            let run = Run::new(transport, case, done);
            plot.add(case, &run, done);
            report.add(run, integrity);
        }
    }
    if idle > 0 {
        progress.start(&format!("{idle} idle msgr sessions"));
        let probe = cases
            .iter()
            .copied()
            .find(|c| c.mode == Mode::Rr && c.jobs == 1 && c.depth == 1)
            .unwrap_or_else(|| Case::rr(4096, 1, 1));
        let memory = idle::idle_connections(idle::IdlePlan {
            sessions: idle,
            probe,
            limit,
            rounds,
            options: options.clone(),
        })
        .await?;
        progress.finish(&memory.summary());
        report.idle = Some(memory);
    }
    progress.clear();
    if let Some(path) = &args.plot {
        plot.write(path, &report)?;
        eprintln!("plot written to {}", path.display());
    }
    // The runs reset VmHWM: the process's peak is the highest of theirs and of what came
    // after the last reset.
    report.peak_rss_bytes = crate::rss::peak_rss_bytes().unwrap_or(0).max(process_peak);
    if args.json {
        report.print_table(&mut std::io::stderr())?;
        println!("{}", serde_json::to_string(&report)?);
    } else {
        report.print_table(&mut std::io::stdout())?;
    }
    let faults = report.integrity();
    if args.policy == PolicyArg::Lossless && !faults.is_clean() {
        bail!(
            "a lossless run lost {} / duplicated {} / reordered {} / corrupted {} messages",
            faults.lost,
            faults.duplicated,
            faults.reordered,
            faults.corrupted
        );
    }
    Ok(())
}

/// What one connection's task measured.
#[derive(Debug)]
pub struct JobResult {
    /// Messages sent.
    pub messages: u64,
    /// Delivery faults seen.
    pub integrity: Integrity,
    /// Round trips in nanoseconds (rr mode).
    pub rtt: Option<Histogram<u64>>,
    /// The client session's fault counters (msgr only).
    pub session: Option<SessionCounts>,
    /// Just before the first message was sent.
    pub started: Instant,
    /// When the last delivery was confirmed (the sink's count, or the last echo).
    pub ended: Instant,
}

/// Socket faults and their repair, summed over a run's client sessions.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct SessionCounts {
    /// Socket faults (injected or real).
    pub faults: u64,
    /// Handshakes after the first.
    pub reconnects: u64,
    /// Messages written again after a reconnect.
    pub resends: u64,
}

impl SessionCounts {
    /// Adds another count to this one.
    pub fn add(&mut self, other: SessionCounts) {
        self.faults += other.faults;
        self.reconnects += other.reconnects;
        self.resends += other.resends;
    }
}

/// What a run measured over all its connections.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Messages sent over all connections.
    pub messages: u64,
    /// From the first send of any connection to the last delivery of any (see
    /// [`Outcome::add`]): setup and teardown are outside it.
    pub elapsed: Duration,
    /// The first send and the last delivery over the connections added so far.
    pub window: Option<(Instant, Instant)>,
    /// Round trips in nanoseconds (rr mode).
    pub rtt: Option<Histogram<u64>>,
    /// Delivery faults over all connections.
    pub integrity: Integrity,
    /// The client sessions' fault counters (msgr only).
    pub session: Option<SessionCounts>,
    /// The process's peak resident memory during the run (`VmHWM` reset just before it).
    pub peak_rss_bytes: Option<u64>,
    /// CPU time the process used over the whole run (both ends of an embedded server, and
    /// the run's set-up and teardown: a few milliseconds), when measured.
    pub cpu: Option<Duration>,
    /// Wall-clock time of the whole run, set-up and teardown included (the span `cpu`
    /// covers; `elapsed` is the measured window inside it).
    pub run_wall: Duration,
    /// The fewest and the most messages one connection sent: how evenly the connections
    /// shared the run (a connection starved by the scheduler sends few).
    pub conn_messages: Option<(u64, u64)>,
}

impl Outcome {
    /// Adds one connection's figures; `elapsed` becomes the span from the earliest first
    /// send to the latest last delivery.
    pub fn add(&mut self, job: JobResult) {
        let (start, end) = self.window.unwrap_or((job.started, job.ended));
        let window = (start.min(job.started), end.max(job.ended));
        self.window = Some(window);
        self.elapsed = window.1.saturating_duration_since(window.0);
        self.messages += job.messages;
        let (least, most) = self.conn_messages.unwrap_or((job.messages, job.messages));
        self.conn_messages = Some((least.min(job.messages), most.max(job.messages)));
        self.integrity.add(job.integrity);
        if let Some(counts) = job.session {
            self.session
                .get_or_insert_with(SessionCounts::default)
                .add(counts);
        }
        if let Some(rtt) = job.rtt {
            match &mut self.rtt {
                Some(all) => all
                    .add(&rtt)
                    .expect("histograms from new_histogram share their bounds"),
                None => self.rtt = Some(rtt),
            }
        }
    }
}

/// A histogram of round trips in nanoseconds, 1 ns to 100 s, 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 100_000_000_000, 3).expect("constant bounds are valid")
}

/// Messages the senders of the current run have sent, published every ~64 KiB per sender
/// (one relaxed add, not one per message): what the live rate on a terminal reads.
pub static SENT: AtomicU64 = AtomicU64::new(0);

/// Decides when a sender has sent enough: by count, or by time looked at every ~64 KiB sent;
/// at the same points it publishes its progress to [`SENT`].
#[derive(Debug)]
pub struct Stopper {
    limit: Limit,
    start: Instant,
    every: u64,
    stopped: bool,
}

impl Stopper {
    /// A stopper starting now for messages of `size` bytes.
    pub fn new(limit: Limit, size: usize) -> Self {
        Stopper {
            limit,
            start: Instant::now(),
            every: (65_536 / size.max(1)).max(1) as u64,
            stopped: false,
        }
    }

    /// Whether the sender should stop before sending message `seq`.
    pub fn done(&mut self, seq: u64) -> bool {
        let checkpoint = seq % self.every == 0;
        if checkpoint && seq > 0 {
            SENT.fetch_add(self.every, Ordering::Relaxed);
        }
        match self.limit {
            Limit::Count(n) => seq >= n,
            Limit::Duration(d) => {
                if !self.stopped && checkpoint && self.start.elapsed() >= d {
                    self.stopped = true;
                }
                self.stopped
            }
        }
    }
}
