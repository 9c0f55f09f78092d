//! The msgr transport of the bench: two Messengers in this process on loopback, or a remote
//! `msgr serve`.

use anyhow::bail;

use super::plan::{Case, Limit};
use super::report::IdleMemory;
use super::{BenchArgs, Outcome};

/// The messenger-side options of a bench run.
#[derive(Debug, Clone)]
#[allow(dead_code)] // read once msgr-core's Messenger lands
pub struct Options {
    /// A remote `msgr serve`.
    pub server: Option<String>,
}

impl Options {
    /// The options `args` ask for.
    pub fn from_args(args: &BenchArgs) -> anyhow::Result<Options> {
        Ok(Options {
            server: args.server.clone(),
        })
    }
}

/// Runs one case over the messenger.
pub async fn run(_case: Case, _limit: Limit, _options: &Options) -> anyhow::Result<Outcome> {
    bail!("the msgr transport needs msgr-core's Messenger, which has not landed yet; use --transport raw")
}

/// Opens `n` idle connections and measures the memory they hold.
pub async fn idle_connections(_n: usize, _options: &Options) -> anyhow::Result<IdleMemory> {
    bail!("the msgr transport needs msgr-core's Messenger, which has not landed yet; use --transport raw")
}
