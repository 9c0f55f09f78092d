//! Progress of a bench run: a bar when standard error is a terminal, a line per run otherwise.
//!
//! On a terminal, and unless the run writes JSON, the bar also shows the running run's
//! rate over the last interval (half a second), like iperf3's interval reports: messages
//! the senders published to [`super::SENT`]. Nothing of it reaches a file or a pipe.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use super::report::group;
use super::SENT;

/// How often the live rate is refreshed.
const INTERVAL: Duration = Duration::from_millis(500);

/// Shows which run is going on and how many are left, on standard error.
pub struct Progress {
    bar: Option<ProgressBar>,
    /// What runs now, for the live rate's line.
    label: Arc<Mutex<String>>,
    stop: Arc<AtomicBool>,
    ticker: Option<JoinHandle<()>>,
}

impl Progress {
    /// Progress over `runs` runs; `live`: show the live rate (on a terminal only).
    pub fn new(runs: usize, live: bool) -> Self {
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
        let label = Arc::new(Mutex::new(String::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let ticker = bar.as_ref().filter(|_| live).map(|bar| {
            let (bar, label, stop) = (bar.clone(), label.clone(), stop.clone());
            std::thread::spawn(move || tick(&bar, &label, &stop))
        });
        Progress {
            bar,
            label,
            stop,
            ticker,
        }
    }

    /// A run starts.
    pub fn start(&self, what: &str) {
        if let Ok(mut label) = self.label.lock() {
            what.clone_into(&mut label);
        }
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
    pub fn clear(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(ticker) = self.ticker.take() {
            ticker.thread().unpark();
            let _ = ticker.join();
        }
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Refreshes the bar's message with the last interval's rate until `stop`.
fn tick(bar: &ProgressBar, label: &Mutex<String>, stop: &AtomicBool) {
    let mut last = (Instant::now(), SENT.load(Ordering::Relaxed));
    while !stop.load(Ordering::Relaxed) {
        std::thread::park_timeout(INTERVAL);
        let now = (Instant::now(), SENT.load(Ordering::Relaxed));
        let rate = interval_rate(last, now);
        last = now;
        let label = label.lock().map(|l| l.clone()).unwrap_or_default();
        // The rate first: a narrow terminal cuts the end of the line.
        bar.set_message(format!("{} msgs/s sent (last 0.5 s), {label}", group(rate)));
    }
}

/// Messages per second between two samples of the sent counter.
fn interval_rate(from: (Instant, u64), to: (Instant, u64)) -> f64 {
    let secs = to.0.saturating_duration_since(from.0).as_secs_f64();
    if secs <= 0.0 {
        return 0.0;
    }
    to.1.saturating_sub(from.1) as f64 / secs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interval_rate_is_the_counter_delta_over_the_interval() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!(interval_rate((t0, 1_000), (t1, 51_000)), 100_000.0);
        // No time, or a counter that did not move: 0, never a division by zero.
        assert_eq!(interval_rate((t0, 5), (t0, 9)), 0.0);
        assert_eq!(interval_rate((t0, 9), (t1, 9)), 0.0);
    }
}
