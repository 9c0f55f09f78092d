//! `DispatchQueue`: one per messenger, with a dispatch task and a local-delivery task (spec §4.2).
//!
//! ```text
//!  reader ──deliver──► fast path? ──yes──► Handler::fast_dispatch (inline), permit released
//!                          │ no
//!                          ▼
//!  enqueue_event ──► events FIFO ─┐
//!  enqueue ────────► PrioQueue ───┴──► dispatch task ──► Handler::event / Handler::dispatch
//!  local_delivery ─► local FIFO ──► local task ──► fast path or PrioQueue (class 0)
//! ```
//!
//! Events are kept in their own FIFO, served before any message (Ceph queues them strictly at
//! priority 255, class 0, which has the same effect for the messenger: they overtake messages).
//! A message's [`ThrottlePermit`] (its dispatch-throttle bytes) is held until `dispatch`
//! returns, or dropped with the message on discard, rejection or shutdown.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use std::collections::VecDeque;
use tokio::sync::{watch, Notify};

use crate::handler::{DispatchConfig, Handler, QueueCounters, ShutdownMode, ShutdownReport};
use crate::prio::PrioQueue;
use crate::throttle::ThrottlePermit;
use crate::ConnId;

struct Queued<M> {
    msg: M,
    permit: ThrottlePermit,
}

struct State<M, E> {
    queue: PrioQueue<Queued<M>>,
    events: VecDeque<(ConnId, E)>,
    local: VecDeque<(u8, M, ThrottlePermit)>,
    stopping: Option<ShutdownMode>,
    local_done: bool,
    pending_bytes: u64,
    counters: QueueCounters,
    /// Everything dropped undelivered since shutdown began.
    report: ShutdownReport,
}

/// Everything taken out of the queue at once, dropped outside the lock.
struct Dropped<M, E> {
    messages: Vec<Queued<M>>,
    local: Vec<(u8, M, ThrottlePermit)>,
    events: Vec<(ConnId, E)>,
}

impl<M, E> Dropped<M, E> {
    fn report(&self) -> ShutdownReport {
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
    fn take_all(&mut self) -> Dropped<M, E> {
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

struct Shared<M: Send + 'static, E: Send + 'static> {
    state: Mutex<State<M, E>>,
    handler: Arc<dyn Handler<M, E>>,
    wake_dispatch: Notify,
    wake_local: Notify,
    next_conn: AtomicU64,
    /// Number of tasks that have ended (0, 1 or 2).
    ended: watch::Sender<u8>,
}

impl<M: Send + 'static, E: Send + 'static> Shared<M, E> {
    fn lock(&self) -> MutexGuard<'_, State<M, E>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Puts a message on the priority queue, even while draining (used by the local task).
    fn push(&self, st: &mut State<M, E>, conn: ConnId, prio: u8, msg: M, permit: ThrottlePermit) {
        let bytes = permit.amount();
        st.queue.enqueue(conn, prio, bytes, Queued { msg, permit });
        st.pending_bytes += bytes;
        st.counters.queued_messages += 1;
        st.counters.queued_bytes += bytes;
        self.wake_dispatch.notify_one();
    }

    fn fast(&self, msg: M, permit: ThrottlePermit) {
        let bytes = permit.amount();
        self.handler.fast_dispatch(msg);
        drop(permit);
        let mut st = self.lock();
        st.counters.fast_dispatched_messages += 1;
        st.counters.fast_dispatched_bytes += bytes;
    }

    /// Begins shutdown; in `Discard` mode drops everything queued right away (the tasks drop
    /// whatever still arrives afterwards).
    fn stop(&self, mode: ShutdownMode) {
        let dropped = {
            let mut st = self.lock();
            if st.stopping != Some(ShutdownMode::Discard) {
                st.stopping = Some(mode);
            }
            (mode == ShutdownMode::Discard).then(|| st.take_all())
        };
        drop(dropped);
        self.wake_dispatch.notify_one();
        self.wake_local.notify_one();
    }
}

/// Counts a task as ended when dropped, even if it panicked.
struct EndGuard<M: Send + 'static, E: Send + 'static>(Arc<Shared<M, E>>);

impl<M: Send + 'static, E: Send + 'static> Drop for EndGuard<M, E> {
    fn drop(&mut self) {
        self.0.ended.send_modify(|n| *n += 1);
        // The dispatch task waits for the local task to finish draining.
        self.0.wake_dispatch.notify_one();
    }
}

/// Stops the tasks when the last handle is dropped without a shutdown.
struct LastHandle<M: Send + 'static, E: Send + 'static>(Arc<Shared<M, E>>);

impl<M: Send + 'static, E: Send + 'static> Drop for LastHandle<M, E> {
    fn drop(&mut self) {
        self.0.stop(ShutdownMode::Discard);
    }
}

/// Ceph's DispatchQueue: orders incoming messages and connection events and hands them, one at
/// a time, to a [`Handler`]. A cheap cloneable handle; see the module docs for the paths.
///
/// [`DispatchQueue::new`] spawns the dispatch task and the local-delivery task on the current
/// tokio runtime. [`shutdown`](Self::shutdown) stops them; dropping the last handle without a
/// shutdown discards what is queued and lets the tasks end in the background.
pub struct DispatchQueue<M: Send + 'static, E: Send + 'static> {
    shared: Arc<Shared<M, E>>,
    _last: Arc<LastHandle<M, E>>,
}

impl<M: Send + 'static, E: Send + 'static> Clone for DispatchQueue<M, E> {
    fn clone(&self) -> Self {
        DispatchQueue {
            shared: self.shared.clone(),
            _last: self._last.clone(),
        }
    }
}

fn clamp_prio(priority: u16) -> u8 {
    u8::try_from(priority).unwrap_or(u8::MAX)
}

impl<M: Send + 'static, E: Send + 'static> DispatchQueue<M, E> {
    /// A queue delivering to `handler`; spawns its two tasks.
    ///
    /// # Panics
    /// Outside a tokio runtime, like `tokio::spawn`.
    pub fn new(config: DispatchConfig, handler: Arc<dyn Handler<M, E>>) -> Self {
        let max_tokens = config.max_tokens_per_priority;
        let state = State {
            queue: PrioQueue::new(config.strict_threshold, config.min_cost, max_tokens),
            events: VecDeque::new(),
            local: VecDeque::new(),
            stopping: None,
            local_done: false,
            pending_bytes: 0,
            counters: QueueCounters::default(),
            report: ShutdownReport::default(),
        };
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            handler,
            wake_dispatch: Notify::new(),
            wake_local: Notify::new(),
            next_conn: AtomicU64::new(1),
            ended: watch::Sender::new(0),
        });
        tokio::spawn(run_dispatch(shared.clone()));
        tokio::spawn(run_local(shared.clone()));
        DispatchQueue {
            _last: Arc::new(LastHandle(shared.clone())),
            shared,
        }
    }

    /// A fresh connection id (class) from the queue's counter: 1, 2, 3, …; 0 is reserved for
    /// events and local delivery.
    pub fn new_conn_id(&self) -> ConnId {
        self.shared.next_conn.fetch_add(1, Ordering::Relaxed)
    }

    /// Hands `m` over inline if the handler can fast-dispatch it (releasing `permit` after),
    /// otherwise [`enqueue`](Self::enqueue)s it. Refused (dropped) once shutdown has begun.
    pub fn deliver(&self, conn: ConnId, priority: u16, m: M, permit: ThrottlePermit) {
        if self.shared.handler.can_fast_dispatch(&m) {
            if self.reject_if_stopping() {
                return;
            }
            self.shared.fast(m, permit);
        } else {
            self.enqueue(conn, priority, m, permit);
        }
    }

    /// Queues `m` for the dispatch task in class `conn` at `priority` (clamped to 255). The
    /// permit is released after `dispatch` returns. Refused (dropped) once shutdown has begun.
    pub fn enqueue(&self, conn: ConnId, priority: u16, m: M, permit: ThrottlePermit) {
        let mut st = self.shared.lock();
        if st.stopping.is_some() {
            st.counters.rejected_messages += 1;
            drop(st);
            return;
        }
        self.shared
            .push(&mut st, conn, clamp_prio(priority), m, permit);
    }

    /// Queues a connection event, ahead of every message, FIFO among events. Dropped once
    /// shutdown has begun.
    pub fn enqueue_event(&self, conn: ConnId, e: E) {
        let mut st = self.shared.lock();
        if st.stopping.is_some() {
            st.counters.events_dropped += 1;
            return;
        }
        st.events.push_back((conn, e));
        st.counters.events_queued += 1;
        drop(st);
        self.shared.wake_dispatch.notify_one();
    }

    /// A message the messenger sends to itself: appended to the local FIFO; the local task
    /// preprocesses it, then fast-dispatches it or queues it in class 0, in order.
    pub fn local_delivery(&self, priority: u16, m: M, permit: ThrottlePermit) {
        let mut st = self.shared.lock();
        if st.stopping.is_some() {
            st.counters.rejected_messages += 1;
            drop(st);
            return;
        }
        st.local.push_back((clamp_prio(priority), m, permit));
        st.counters.local_messages += 1;
        drop(st);
        self.shared.wake_local.notify_one();
    }

    /// Drops every queued message of class `conn` (events are kept), releasing their permits;
    /// returns how many were dropped.
    pub fn discard(&self, conn: ConnId) -> usize {
        let dropped = {
            let mut st = self.shared.lock();
            let dropped = st.queue.remove_class(conn);
            let bytes: u64 = dropped.iter().map(|q| q.permit.amount()).sum();
            st.pending_bytes -= bytes;
            st.counters.discarded_messages += dropped.len() as u64;
            st.counters.discarded_bytes += bytes;
            dropped
        };
        dropped.len()
    }

    /// Messages, events and local messages currently queued.
    pub fn len(&self) -> usize {
        let st = self.shared.lock();
        st.queue.len() + st.events.len() + st.local.len()
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A snapshot of the statistics.
    pub fn counters(&self) -> QueueCounters {
        let st = self.shared.lock();
        QueueCounters {
            pending_messages: st.queue.len() as u64,
            pending_bytes: st.pending_bytes,
            pending_events: st.events.len() as u64,
            pending_local: st.local.len() as u64,
            ..st.counters
        }
    }

    /// Stops accepting work, drains or discards what is queued per `mode`, and returns once
    /// both tasks have ended, with everything dropped undelivered since shutdown began (a
    /// discarding shutdown lets the dispatch in progress finish). May be called again, also
    /// concurrently (a `Discard` while a `Drain` waits drops what is left).
    /// Must not be awaited from inside [`Handler::dispatch`] or [`Handler::event`].
    pub async fn shutdown(&self, mode: ShutdownMode) -> ShutdownReport {
        self.shared.stop(mode);
        let mut ended = self.shared.ended.subscribe();
        // The sender lives in `shared`, which we hold, so this cannot fail.
        let _ = ended.wait_for(|n| *n >= 2).await;
        // Anything left behind by a task that panicked.
        let (rest, report) = {
            let mut st = self.shared.lock();
            (st.take_all(), st.report)
        };
        drop(rest);
        report
    }

    fn reject_if_stopping(&self) -> bool {
        let mut st = self.shared.lock();
        if st.stopping.is_some() {
            st.counters.rejected_messages += 1;
            return true;
        }
        false
    }
}

enum Next<M, E> {
    Idle,
    Stop,
    Event(ConnId, E),
    Message(Queued<M>),
}

async fn run_dispatch<M: Send + 'static, E: Send + 'static>(shared: Arc<Shared<M, E>>) {
    let _guard = EndGuard(shared.clone());
    loop {
        let next = {
            let mut st = shared.lock();
            let discarding = st.stopping == Some(ShutdownMode::Discard);
            if discarding {
                // Messages the local task queued after the discard began.
                drop(st.take_all());
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
        match next {
            Next::Idle => shared.wake_dispatch.notified().await,
            Next::Stop => break,
            Next::Event(conn, e) => {
                shared.handler.event(conn, e).await;
                shared.lock().counters.events_delivered += 1;
            }
            Next::Message(Queued { msg, permit }) => {
                let bytes = permit.amount();
                shared.handler.dispatch(msg).await;
                drop(permit);
                let mut st = shared.lock();
                st.counters.dispatched_messages += 1;
                st.counters.dispatched_bytes += bytes;
            }
        }
    }
    tracing::debug!("dispatch task ended");
}

async fn run_local<M: Send + 'static, E: Send + 'static>(shared: Arc<Shared<M, E>>) {
    let _guard = EndGuard(shared.clone());
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
        if shared.handler.can_fast_dispatch(&msg) {
            shared.fast(msg, permit);
        } else {
            let mut st = shared.lock();
            shared.push(&mut st, 0, prio, msg, permit);
        }
    }
    tracing::debug!("local delivery task ended");
}
