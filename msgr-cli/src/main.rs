//! `msgr`: serve, ping, bench, dump and mon-command.

mod bench;
mod ceph_opts;
mod cpu;
mod dump;
mod mon_command;
mod peer;
mod ping;
mod rss;
mod serve;
mod serve_auth;

use clap::{Parser, Subcommand};

/// The msgr tool: a Ceph msgr v1 messenger on the command line.
#[derive(Debug, Parser)]
#[command(name = "msgr", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The subcommands of `msgr`.
#[derive(Debug, Subcommand)]
enum Command {
    /// Measure the messenger beside a raw-TCP baseline (rates, bandwidth, latency percentiles).
    Bench(bench::BenchArgs),
    /// Serve: echo (or count) every message received, until Ctrl-C.
    Serve(serve::ServeArgs),
    /// Complete the handshake with a daemon and time KEEPALIVE2 round trips, like ping.
    Ping(ping::PingArgs),
    /// Decode msgr v1 and msgr2 traffic from a pcap/pcapng capture, or one side's raw bytes: one
    /// line per handshake item and frame (msgr2 secure mode with --secret).
    Dump(dump::DumpArgs),
    /// Authenticate with a mon (none or cephx) and run a mon command, as `ceph` does.
    #[command(name = "mon-command")]
    Mon(mon_command::MonCommandArgs),
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Bench(args) => bench::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Ping(args) => ping::run(args),
        Command::Dump(args) => dump::run(args),
        Command::Mon(args) => mon_command::run(args),
    }
}
