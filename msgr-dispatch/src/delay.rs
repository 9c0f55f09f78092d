//! `DelayedDelivery`: per-connection delay injection (spec §2.4, Ceph's `DelayedDelivery`).
//!
//! With probability `p` a message is held for a uniformly random time in `(0, max_delay]`;
//! every later message of the connection waits behind it, so arrival order is kept
//! (head-of-line). A message that is not delayed and finds nothing held passes straight
//! through to the sink on the caller's task. Held messages are released by a timer task using
//! `tokio::time`, so paused-time tests are deterministic, and the random source is a
//! `SmallRng` seeded from the config seed mixed with a per-connection value, so a run replays
//! exactly. On mark-down the owner either [`flush`](DelayedDelivery::flush)es (fault, replace)
//! or [`discard`](DelayedDelivery::discard)s (session reset).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::error::ConfigError;

/// Delay injection settings (`ms_inject_delay_probability`, `ms_inject_delay_max`, a seed).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DelayConfig {
    /// Probability in `[0, 1]` that a message is delayed (default 0: never). Out-of-range
    /// values are clamped; NaN counts as 0.
    pub probability: f64,
    /// Upper bound of the uniform delay (default 1 s). Zero disables delays.
    pub max_delay: Duration,
    /// Seed of the random source (default 0).
    pub seed: u64,
}

impl Default for DelayConfig {
    fn default() -> Self {
        DelayConfig {
            probability: 0.0,
            max_delay: Duration::from_secs(1),
            seed: 0,
        }
    }
}

impl DelayConfig {
    /// Checks that the probability is a number in `[0, 1]`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(0.0..=1.0).contains(&self.probability) {
            return Err(ConfigError::Probability(self.probability));
        }
        Ok(())
    }
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The pure delay decision: one seeded draw sequence per connection.
///
/// Each [`next_delay`](Self::next_delay) consumes one probability draw and, on a hit, one
/// uniform draw, so the same config and mix always give the same sequence.
#[derive(Clone, Debug)]
pub struct DelayPlan {
    rng: SmallRng,
    probability: f64,
    max_nanos: u64,
}

impl DelayPlan {
    /// A plan for one connection; `conn_seed_mix` (e.g. the connection id or a hash of the
    /// peer address) is mixed into the seed so connections draw independent sequences.
    pub fn new(config: &DelayConfig, conn_seed_mix: u64) -> Self {
        let p = config.probability;
        DelayPlan {
            rng: SmallRng::seed_from_u64(splitmix64(config.seed ^ splitmix64(conn_seed_mix))),
            probability: if p.is_nan() { 0.0 } else { p.clamp(0.0, 1.0) },
            max_nanos: u64::try_from(config.max_delay.as_nanos()).unwrap_or(u64::MAX),
        }
    }

    /// The delay of the next message: `None` to pass it, or a time in `(0, max_delay]`.
    pub fn next_delay(&mut self) -> Option<Duration> {
        let hit = self.rng.gen::<f64>() < self.probability;
        if !hit || self.max_nanos == 0 {
            return None;
        }
        Some(Duration::from_nanos(self.rng.gen_range(1..=self.max_nanos)))
    }
}

/// Statistics of a [`DelayedDelivery`].
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct DelayCounters {
    /// Messages pushed.
    pub pushed: u64,
    /// Messages that went straight through (not delayed, nothing held).
    pub passed_through: u64,
    /// Messages given a delay.
    pub delayed: u64,
    /// Messages that waited only behind an earlier delayed one.
    pub queued_behind: u64,
    /// Held messages delivered (when due, or flushed).
    pub released: u64,
    /// Held messages made due at once by `flush`.
    pub flushed: u64,
    /// Held messages dropped by `discard` or by dropping the stage.
    pub discarded: u64,
    /// Sum of the delays drawn.
    pub total_delay: Duration,
}

type Sink<M> = Box<dyn Fn(M) + Send + Sync>;

struct State<M> {
    /// Held messages in arrival order; `None` = due now (no delay of its own, or flushed).
    held: VecDeque<(Option<Instant>, M)>,
    plan: DelayPlan,
    counters: DelayCounters,
    /// Someone is calling the sink; only that caller delivers, so deliveries never overlap
    /// or reorder, and a sink may call back into the stage (push, flush, discard) safely.
    delivering: bool,
    closed: bool,
}

struct Shared<M> {
    state: Mutex<State<M>>,
    sink: Sink<M>,
    wake: Notify,
}

impl<M> Shared<M> {
    fn lock(&self) -> MutexGuard<'_, State<M>> {
        crate::lock(&self.state)
    }

    /// Delivers the due head messages; the caller has set `delivering`. Clears it when
    /// nothing more is due (also if the sink panics), and wakes the timer for what is left.
    fn drain(&self) {
        struct Reset<'a, M>(&'a Shared<M>, bool);
        impl<M> Drop for Reset<'_, M> {
            fn drop(&mut self) {
                if self.1 {
                    self.0.lock().delivering = false;
                    self.0.wake.notify_one();
                }
            }
        }
        let mut reset = Reset(self, true);
        loop {
            let next = {
                let mut st = self.lock();
                let now = Instant::now();
                match st.held.front() {
                    Some((r, _)) if r.is_none_or(|r| r <= now) => {
                        st.counters.released += 1;
                        st.held.pop_front().map(|(_, m)| m)
                    }
                    _ => {
                        st.delivering = false;
                        reset.1 = false;
                        if !st.held.is_empty() {
                            self.wake.notify_one();
                        }
                        None
                    }
                }
            };
            match next {
                Some(m) => (self.sink)(m),
                None => return,
            }
        }
    }

    /// Becomes the deliverer if nobody is, and drains.
    fn try_drain(&self) {
        {
            let mut st = self.lock();
            if st.delivering {
                return;
            }
            st.delivering = true;
        }
        self.drain();
    }
}

/// Delay stage of one connection; see the module docs. Not cloneable: it moves with the
/// connection (Ceph transfers the delay thread to a replacing Pipe).
pub struct DelayedDelivery<M: Send + 'static> {
    shared: Arc<Shared<M>>,
}

impl<M: Send + 'static> DelayedDelivery<M> {
    /// A stage delivering to `sink`, in order and one message at a time, on the pushing task,
    /// a flushing task or the stage's timer task. The sink may call back into the stage.
    /// Spawns the timer task.
    ///
    /// # Panics
    /// Outside a tokio runtime, like `tokio::spawn`.
    pub fn new(
        config: DelayConfig,
        conn_seed_mix: u64,
        sink: impl Fn(M) + Send + Sync + 'static,
    ) -> Self {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                held: VecDeque::new(),
                plan: DelayPlan::new(&config, conn_seed_mix),
                counters: DelayCounters::default(),
                delivering: false,
                closed: false,
            }),
            sink: Box::new(sink),
            wake: Notify::new(),
        });
        tokio::spawn(run_timer(shared.clone()));
        DelayedDelivery { shared }
    }

    /// Delivers `m` now or holds it, per the plan and what is already held.
    pub fn push(&self, m: M) {
        self.push_filtered(m, true);
    }

    /// As [`push`](Self::push), but `may_delay == false` (Ceph's `ms_inject_delay_msg_type`
    /// filter did not match) never draws a delay; the message still waits behind held ones.
    pub fn push_filtered(&self, m: M, may_delay: bool) {
        let mut st = self.shared.lock();
        st.counters.pushed += 1;
        let delay = if may_delay {
            st.plan.next_delay()
        } else {
            None
        };
        match delay {
            None if st.held.is_empty() && !st.delivering => {
                st.counters.passed_through += 1;
                st.delivering = true;
                drop(st);
                (self.shared.sink)(m);
                self.shared.drain();
                return;
            }
            None => st.counters.queued_behind += 1,
            Some(d) => {
                st.counters.delayed += 1;
                st.counters.total_delay += d;
            }
        }
        st.held.push_back((delay.map(|d| Instant::now() + d), m));
        drop(st);
        self.shared.wake.notify_one();
    }

    /// Delivers everything held now, in order; returns how many were held. Same as
    /// [`flush_now`](Self::flush_now); async for callers that expect it.
    pub async fn flush(&self) -> usize {
        self.flush_now()
    }

    /// Delivers everything held now, in order, on this thread; returns how many were held.
    /// If a delivery is already in progress (another thread, or this sink calling back), that
    /// deliverer hands them over right after its current message instead.
    pub fn flush_now(&self) -> usize {
        let n = {
            let mut st = self.shared.lock();
            for item in st.held.iter_mut() {
                item.0 = None;
            }
            let n = st.held.len();
            st.counters.flushed += n as u64;
            n
        };
        self.shared.try_drain();
        n
    }

    /// Takes everything held, undelivered, in order (the caller drops it, releasing its
    /// throttles).
    pub fn discard(&self) -> Vec<M> {
        let mut st = self.shared.lock();
        st.counters.discarded += st.held.len() as u64;
        st.held.drain(..).map(|(_, m)| m).collect()
    }

    /// Messages held now.
    pub fn len(&self) -> usize {
        self.shared.lock().held.len()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A snapshot of the statistics.
    pub fn counters(&self) -> DelayCounters {
        self.shared.lock().counters
    }
}

impl<M: Send + 'static> Drop for DelayedDelivery<M> {
    /// Stops the timer task and drops what is held (flush first to deliver it).
    fn drop(&mut self) {
        let held = {
            let mut st = self.shared.lock();
            st.closed = true;
            st.counters.discarded += st.held.len() as u64;
            std::mem::take(&mut st.held)
        };
        drop(held);
        self.shared.wake.notify_one();
    }
}

impl<M: Send + 'static> std::fmt::Debug for DelayedDelivery<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DelayedDelivery")
            .field("held", &self.len())
            .finish_non_exhaustive()
    }
}

async fn run_timer<M>(shared: Arc<Shared<M>>) {
    loop {
        let head = {
            let st = shared.lock();
            if st.closed {
                break;
            }
            // While someone delivers, they drain what is due and wake us when done.
            if st.delivering {
                None
            } else {
                st.held.front().map(|(r, _)| *r)
            }
        };
        match head {
            None => shared.wake.notified().await,
            Some(Some(at)) if at > Instant::now() => {
                tokio::select! {
                    _ = tokio::time::sleep_until(at) => release(&shared),
                    _ = shared.wake.notified() => {}
                }
            }
            Some(_) => release(&shared),
        }
    }
}

/// Delivers what is due from the timer task; a panicking sink loses that one message but
/// does not stop the timer, so later held messages are still released.
fn release<M>(shared: &Shared<M>) {
    let run = std::panic::AssertUnwindSafe(|| shared.try_drain());
    if std::panic::catch_unwind(run).is_err() {
        tracing::error!("delayed-delivery sink panicked; continuing with the next message");
    }
}

#[cfg(test)]
mod tests;
