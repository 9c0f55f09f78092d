//! What a [`DispatchQueue`](crate::DispatchQueue) hands messages and events to, its
//! configuration and its plain-data reports.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;
use crate::prio::{DEFAULT_MAX_TOKENS, DEFAULT_MIN_COST, DEFAULT_STRICT_THRESHOLD};
use crate::ConnId;

/// A boxed, sendable future: what [`Handler::dispatch`] and [`Handler::event`] return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The receiving side of a [`DispatchQueue`](crate::DispatchQueue): the messenger's
/// dispatcher chain.
///
/// `dispatch` and `event` run one at a time on the queue's dispatch task (normal dispatch is
/// strictly sequential per queue, as in Ceph); `fast_dispatch` runs inline on the caller of
/// [`deliver`](crate::DispatchQueue::deliver) or on the local-delivery task, and may run
/// concurrently with `dispatch`. A handler must not await
/// [`shutdown`](crate::DispatchQueue::shutdown) of its own queue from `dispatch` or `event`:
/// shutdown waits for the dispatch task, which would be waiting for it.
pub trait Handler<M, E>: Send + Sync + 'static {
    /// Called on every locally delivered message before the fast-dispatch check (Ceph's
    /// `ms_fast_preprocess`). Remote messages are preprocessed by their reader, not here.
    fn fast_preprocess(&self, m: &M) {
        let _ = m;
    }

    /// Whether `m` may be handed over inline through [`Handler::fast_dispatch`].
    fn can_fast_dispatch(&self, m: &M) -> bool {
        let _ = m;
        false
    }

    /// Takes a message inline; only called when [`Handler::can_fast_dispatch`] said yes.
    fn fast_dispatch(&self, m: M) {
        let _ = m;
    }

    /// [`can_fast_dispatch`](Handler::can_fast_dispatch), then
    /// [`fast_dispatch`](Handler::fast_dispatch) if it said yes; otherwise gives `m` back.
    /// What [`deliver`](crate::DispatchQueue::deliver) calls: a handler may override it to
    /// do both with one look-up of its dispatchers.
    fn try_fast_dispatch(&self, m: M) -> Result<(), M> {
        if self.can_fast_dispatch(&m) {
            self.fast_dispatch(m);
            Ok(())
        } else {
            Err(m)
        }
    }

    /// Takes a message from the queue; the dispatch-throttle bytes are released when the
    /// returned future completes.
    fn dispatch(&self, m: M) -> BoxFuture<'_, ()>;

    /// Takes a connection event (connect, accept, reset, remote reset, refused).
    fn event(&self, conn: ConnId, e: E) -> BoxFuture<'_, ()>;
}

/// Configuration of a [`DispatchQueue`](crate::DispatchQueue).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DispatchConfig {
    /// Priorities at or above this are served strictly by priority (default 64,
    /// `CEPH_MSG_PRIO_LOW`); below it the token scheme of `PrioQueue` applies.
    pub strict_threshold: u8,
    /// Smallest cost charged to a message below the threshold (default 64 KiB, `ms_pq_min_cost`).
    pub min_cost: u64,
    /// Token cap per priority below the threshold (default 16 MiB,
    /// `ms_pq_max_tokens_per_priority`); also the largest cost charged.
    pub max_tokens_per_priority: u64,
    /// Delay injected before delivering a connection event when the draw hits (Ceph's
    /// `ms_inject_internal_delays` in the DispatchQueue); zero (the default) turns it off.
    pub event_delay: Duration,
    /// Probability of that delay (Ceph's `ms_inject_delay_probability`), default 0.
    pub event_delay_probability: f64,
    /// Seed of the event-delay draws, so a run replays (default 0).
    pub event_delay_seed: u64,
}

impl Default for DispatchConfig {
    fn default() -> Self {
        DispatchConfig {
            strict_threshold: DEFAULT_STRICT_THRESHOLD,
            min_cost: DEFAULT_MIN_COST,
            max_tokens_per_priority: DEFAULT_MAX_TOKENS,
            event_delay: Duration::ZERO,
            event_delay_probability: 0.0,
            event_delay_seed: 0,
        }
    }
}

impl DispatchConfig {
    /// Checks that `min_cost <= max_tokens_per_priority` (the queue clamps otherwise) and
    /// that the event-delay probability is within `[0, 1]`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(0.0..=1.0).contains(&self.event_delay_probability) {
            return Err(ConfigError::Probability(self.event_delay_probability));
        }
        if self.min_cost > self.max_tokens_per_priority {
            return Err(ConfigError::MinCostAboveCap {
                min_cost: self.min_cost,
                max_tokens: self.max_tokens_per_priority,
            });
        }
        Ok(())
    }
}

/// How [`shutdown`](crate::DispatchQueue::shutdown) treats what is still queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ShutdownMode {
    /// Deliver every queued event, local message and message, then stop.
    Drain,
    /// Drop everything queued (releasing its throttle bytes), finish the dispatch in progress,
    /// then stop.
    Discard,
}

/// What [`shutdown`](crate::DispatchQueue::shutdown) dropped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Messages dropped undelivered (queued and local).
    pub dropped_messages: u64,
    /// Dispatch-throttle bytes released with them.
    pub dropped_bytes: u64,
    /// Connection events dropped undelivered.
    pub dropped_events: u64,
}

/// Statistics of a [`DispatchQueue`](crate::DispatchQueue). Totals count since creation;
/// `pending_*` fields are the state at the moment of reading. "Bytes" are dispatch-throttle
/// bytes, i.e. the amount of the permit that came with the message.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueCounters {
    /// Messages put on the priority queue (remote and local).
    pub queued_messages: u64,
    /// Bytes put on the priority queue.
    pub queued_bytes: u64,
    /// Messages handed to [`Handler::dispatch`] that returned.
    pub dispatched_messages: u64,
    /// Bytes of those messages.
    pub dispatched_bytes: u64,
    /// Messages handed to [`Handler::fast_dispatch`].
    pub fast_dispatched_messages: u64,
    /// Bytes of those messages.
    pub fast_dispatched_bytes: u64,
    /// Messages dropped by `discard` or by a discarding shutdown.
    pub discarded_messages: u64,
    /// Bytes of those messages.
    pub discarded_bytes: u64,
    /// Messages refused because the queue was shutting down.
    pub rejected_messages: u64,
    /// Messages accepted by `local_delivery`.
    pub local_messages: u64,
    /// Events queued.
    pub events_queued: u64,
    /// Events handed to [`Handler::event`] that returned.
    pub events_delivered: u64,
    /// Events dropped (refused while stopping, or discarded by shutdown).
    pub events_dropped: u64,
    /// Events held back by the injected event delay.
    pub delayed_events: u64,
    /// Messages now on the priority queue.
    pub pending_messages: u64,
    /// Bytes now on the priority queue.
    pub pending_bytes: u64,
    /// Events now queued.
    pub pending_events: u64,
    /// Local messages not yet taken by the local-delivery task.
    pub pending_local: u64,
}
