//! Progress of a bench run: a bar when standard error is a terminal, a line per run otherwise.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// Shows which run is going on and how many are left, on standard error.
pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    /// Progress over `runs` runs.
    pub fn new(runs: usize) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(runs as u64);
            if let Ok(style) =
                ProgressStyle::with_template("{spinner} [{pos}/{len}] {wide_msg} {elapsed}")
            {
                bar.set_style(style);
            }
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Progress { bar }
    }

    /// A run starts.
    pub fn start(&self, what: &str) {
        if let Some(bar) = &self.bar {
            bar.set_message(what.to_owned());
        }
    }

    /// A run ended with this one-line summary.
    pub fn finish(&self, summary: &str) {
        match &self.bar {
            Some(bar) => {
                bar.println(summary);
                bar.inc(1);
            }
            None => eprintln!("{summary}"),
        }
    }

    /// Removes the bar before the table is printed.
    pub fn clear(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
