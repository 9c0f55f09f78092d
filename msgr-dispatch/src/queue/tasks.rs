//! The insides of a `DispatchQueue`: shared state under one lock, and its two tasks.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use crate::handler::{DispatchConfig, Handler, QueueCounters, ShutdownMode, ShutdownReport};
use crate::prio::PrioQueue;
use crate::throttle::ThrottlePermit;
use crate::ConnId;

pub(super) struct Queued<M> {
    pub(super) msg: M,
    pub(super) permit: ThrottlePermit,
    /// When it was queued, for [`DispatchQueue::oldest_age`](super::DispatchQueue::oldest_age).
    pub(super) at: Instant,
}

pub(super) struct State<M, E> {
    pub(super) queue: PrioQueue<Queued<M>>,
    pub(super) events: VecDeque<(ConnId, E)>,
    pub(super) local: VecDeque<(u8, M, ThrottlePermit)>,
    pub(super) stopping: Option<ShutdownMode>,
    pub(super) local_done: bool,
    pub(super) pending_bytes: u64,
    pub(super) counters: QueueCounters,
    /// Everything dropped undelivered since shutdown began.
    pub(super) report: ShutdownReport,
}

/// Everything taken out of the queue at once, dropped outside the lock.
pub(super) struct Dropped<M, E> {
    pub(super) messages: Vec<Queued<M>>,
    pub(super) local: Vec<(u8, M, ThrottlePermit)>,
    pub(super) events: Vec<(ConnId, E)>,
}

impl<M, E> Dropped<M, E> {
    pub(super) fn report(&self) -> ShutdownReport {
        let bytes = self.messages.iter().map(|q| q.permit.amount());
        let local_bytes = self.local.iter().map(|(_, _, p)| p.amount());
        ShutdownReport {
            dropped_messages: (self.messages.len() + self.local.len()) as u64,
            dropped_bytes: bytes.chain(local_bytes).sum(),
            dropped_events: self.events.len() as u64,
        }
    }
}

impl<M, E> State<M, E> {
    pub(super) fn take_all(&mut self) -> Dropped<M, E> {
        let mut messages = Vec::with_capacity(self.queue.len());
        while let Some(q) = self.queue.dequeue() {
            messages.push(q);
        }
        let out = Dropped {
            messages,
            local: self.local.drain(..).collect(),
            events: self.events.drain(..).collect(),
        };
        let r = out.report();
        self.pending_bytes = 0;
        self.counters.discarded_messages += r.dropped_messages;
        self.counters.discarded_bytes += r.dropped_bytes;
        self.counters.events_dropped += r.dropped_events;
        self.report.dropped_messages += r.dropped_messages;
        self.report.dropped_bytes += r.dropped_bytes;
        self.report.dropped_events += r.dropped_events;
        out
    }
}

pub(super) struct Shared<M: Send + 'static, E: Send + 'static> {
    pub(super) state: Mutex<State<M, E>>,
    pub(super) handler: Arc<dyn Handler<M, E>>,
    pub(super) wake_dispatch: Notify,
    pub(super) wake_local: Notify,
    pub(super) next_conn: AtomicU64,
    /// `state.stopping.is_some()`, readable without the lock (set with it, under it).
    pub(super) stopping: AtomicBool,
    /// Fast-dispatch counters, kept outside the lock: a fast dispatch takes no lock shared
    /// by every connection of the messenger.
    pub(super) fast_messages: AtomicU64,
    pub(super) fast_bytes: AtomicU64,
    pub(super) event_delay: EventDelay,
    /// Number of tasks that have ended (0, 1 or 2).
    pub(super) ended: watch::Sender<u8>,
}

impl<M: Send + 'static, E: Send + 'static> Shared<M, E> {
    pub(super) fn lock(&self) -> MutexGuard<'_, State<M, E>> {
        crate::lock(&self.state)
    }

    /// Puts a message on the priority queue, even while draining (used by the local task).
    pub(super) fn push(
        &self,
        st: &mut State<M, E>,
        conn: ConnId,
        prio: u8,
        msg: M,
        permit: ThrottlePermit,
    ) {
        let bytes = permit.amount();
        let at = Instant::now();
        // The dispatch task waits only after finding the queue empty under this lock: a
        // message pushed behind others finds it busy, or bound to look again before it
        // waits, and needs no wake-up (one `Notify` compare-and-swap less per message).
        let idle = st.queue.is_empty();
        st.queue
            .enqueue(conn, prio, bytes, Queued { msg, permit, at });
        st.pending_bytes += bytes;
        st.counters.queued_messages += 1;
        st.counters.queued_bytes += bytes;
        if idle {
            self.wake_dispatch.notify_one();
        }
    }

    /// Counts a fast-dispatched message.
    pub(super) fn count_fast(&self, bytes: u64) {
        self.count_fast_many(1, bytes);
    }

    /// Counts `messages` fast-dispatched messages of `bytes` in all.
    pub(super) fn count_fast_many(&self, messages: u64, bytes: u64) {
        self.fast_messages.fetch_add(messages, Ordering::Relaxed);
        self.fast_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Begins shutdown; in `Discard` mode drops everything queued right away (the tasks drop
    /// whatever still arrives afterwards).
    pub(super) fn stop(&self, mode: ShutdownMode) {
        let dropped = {
            let mut st = self.lock();
            if st.stopping != Some(ShutdownMode::Discard) {
                st.stopping = Some(mode);
            }
            self.stopping.store(true, Ordering::Release);
            (mode == ShutdownMode::Discard).then(|| st.take_all())
        };
        drop(dropped);
        self.wake_dispatch.notify_one();
        self.wake_local.notify_one();
    }
}

/// The injected delay before connection events (see [`DispatchConfig::event_delay`]).
pub(super) struct EventDelay {
    pub(super) delay: Duration,
    pub(super) probability: f64,
    pub(super) seed: u64,
}

impl EventDelay {
    pub(super) fn from(config: &DispatchConfig) -> Self {
        let p = config.event_delay_probability;
        EventDelay {
            delay: config.event_delay,
            probability: if p.is_nan() { 0.0 } else { p.clamp(0.0, 1.0) },
            seed: config.event_delay_seed,
        }
    }
}

/// Counts a task as ended when dropped, even if it panicked; the flag marks the local task,
/// whose end the dispatch task waits for before it stops.
pub(super) struct EndGuard<M: Send + 'static, E: Send + 'static>(Arc<Shared<M, E>>, bool);

impl<M: Send + 'static, E: Send + 'static> Drop for EndGuard<M, E> {
    fn drop(&mut self) {
        if self.1 {
            self.0.lock().local_done = true;
        }
        self.0.ended.send_modify(|n| *n += 1);
        // The dispatch task waits for the local task to finish draining.
        self.0.wake_dispatch.notify_one();
    }
}

/// Stops the tasks when the last handle is dropped without a shutdown.
pub(super) struct LastHandle<M: Send + 'static, E: Send + 'static>(pub(super) Arc<Shared<M, E>>);

impl<M: Send + 'static, E: Send + 'static> Drop for LastHandle<M, E> {
    fn drop(&mut self) {
        self.0.stop(ShutdownMode::Discard);
    }
}

pub(super) enum Next<M, E> {
    Idle,
    Stop,
    Event(ConnId, E),
    Message(Queued<M>),
}

pub(super) async fn run_dispatch<M: Send + 'static, E: Send + 'static>(shared: Arc<Shared<M, E>>) {
    let _guard = EndGuard(shared.clone(), false);
    let mut rng = SmallRng::seed_from_u64(shared.event_delay.seed);
    // The message dispatched last (its bytes), counted under the next pop's lock: one
    // acquisition of the queue's lock per message, not two (the readers take it for every
    // message they queue, and the two sides contended for it).
    let mut dispatched: Option<u64> = None;
    loop {
        let mut late = None;
        let next = {
            let mut st = shared.lock();
            if let Some(bytes) = dispatched.take() {
                st.counters.dispatched_messages += 1;
                st.counters.dispatched_bytes += bytes;
            }
            if st.stopping == Some(ShutdownMode::Discard) {
                // Messages the local task queued after the discard began.
                late = Some(st.take_all());
            }
            if let Some((conn, e)) = st.events.pop_front() {
                Next::Event(conn, e)
            } else if let Some(q) = st.queue.dequeue() {
                st.pending_bytes -= q.permit.amount();
                Next::Message(q)
            } else if st.stopping.is_some() && st.local_done {
                Next::Stop
            } else {
                Next::Idle
            }
        };
        drop(late);
        match next {
            Next::Idle => shared.wake_dispatch.notified().await,
            Next::Stop => break,
            Next::Event(conn, e) => {
                let inject = &shared.event_delay;
                if !inject.delay.is_zero() && rng.gen::<f64>() < inject.probability {
                    shared.lock().counters.delayed_events += 1;
                    tokio::time::sleep(inject.delay).await;
                }
                shared.handler.event(conn, e).await;
                shared.lock().counters.events_delivered += 1;
            }
            Next::Message(Queued { msg, permit, .. }) => {
                let bytes = permit.amount();
                shared.handler.dispatch(msg).await;
                drop(permit);
                dispatched = Some(bytes);
            }
        }
    }
    tracing::debug!("dispatch task ended");
}

pub(super) async fn run_local<M: Send + 'static, E: Send + 'static>(shared: Arc<Shared<M, E>>) {
    let _guard = EndGuard(shared.clone(), true);
    loop {
        let next = {
            let mut st = shared.lock();
            match st.local.pop_front() {
                Some(item) => Some(item),
                None if st.stopping.is_some() => {
                    st.local_done = true;
                    break;
                }
                None => None,
            }
        };
        let Some((prio, msg, permit)) = next else {
            shared.wake_local.notified().await;
            continue;
        };
        shared.handler.fast_preprocess(&msg);
        match shared.handler.try_fast_dispatch(msg) {
            Ok(()) => {
                shared.count_fast(permit.amount());
                drop(permit);
            }
            Err(msg) => {
                let mut st = shared.lock();
                shared.push(&mut st, 0, prio, msg, permit);
            }
        }
    }
    tracing::debug!("local delivery task ended");
}
