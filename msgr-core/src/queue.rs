//! The messenger's dispatch queue: what it carries ([`Received`] messages and [`ConnEvent`]s)
//! and its [`Handler`], which hands them to the dispatcher chain.
//!
//! As Ceph's `DispatchQueue` calling `Messenger::ms_deliver_*`: msgr-dispatch's generic
//! queue orders and throttles, this module's [`QueueHandler`] turns its callbacks into the
//! chain's (fast preprocess, fast dispatch, dispatch, connection events), and delays events
//! when `inject.internal_delay` asks for it (Ceph's `ms_inject_internal_delays`).
//!
//! What it does not do: decide what is delivered (the sessions' host does), or order and
//! throttle (msgr-dispatch does). It imports `connection`, `dispatcher` and `config`.

use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard};
use std::time::Duration;

use msgr_dispatch::{lock, BoxFuture, ConnId, DispatchQueue, Handler};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::config::InjectConfig;
use crate::connection::{Connection, Received};
use crate::dispatcher::{Chain, EventKind};

/// The messenger's dispatch queue.
pub(crate) type Queue = DispatchQueue<Received, ConnEvent>;

/// A connection event on its way through the dispatch queue.
pub(crate) struct ConnEvent {
    pub(crate) conn: Connection,
    pub(crate) kind: EventKind,
}

/// The dispatch queue's view of the dispatcher chain.
pub(crate) struct QueueHandler {
    /// Taken at the end of `wait`, breaking reference cycles through dispatchers.
    /// A read-write lock: only `take_chain` writes, once. A socket's reader holds a clone
    /// of the chain (the host's `SessionDeliver`); messages delayed by fault injection read
    /// it here, borrowed under the read lock.
    chain: RwLock<Option<Arc<Chain>>>,
    /// Event delay injection (Ceph's DispatchQueue sleeps `ms_inject_internal_delays` before
    /// an event with probability `ms_inject_delay_probability`).
    event_delay: Option<EventDelay>,
}

struct EventDelay {
    delay: Duration,
    probability: f64,
    rng: Mutex<SmallRng>,
}

impl QueueHandler {
    /// A handler over `chain`, delaying events as `inject` says.
    pub(crate) fn new(chain: Chain, inject: &InjectConfig) -> Self {
        // Nothing is delayed in a build without fault injection (its config is refused).
        let event_delay = (msgr_pipe::inject::ENABLED
            && !inject.internal_delay.is_zero()
            && inject.delay_probability > 0.0)
            .then(|| EventDelay {
                delay: inject.internal_delay,
                probability: inject.delay_probability,
                rng: Mutex::new(SmallRng::seed_from_u64(inject.seed)),
            });
        QueueHandler {
            chain: RwLock::new(Some(Arc::new(chain))),
            event_delay,
        }
    }

    /// The dispatcher chain, until [`take_chain`](Self::take_chain).
    pub(crate) fn chain(&self) -> Option<Arc<Chain>> {
        self.chain_ref().clone()
    }

    /// The dispatcher chain borrowed under the read lock (two atomic operations, where
    /// [`chain`](Self::chain) adds an `Arc` clone and drop on a cache line every reader
    /// shares). [`take_chain`](Self::take_chain) waits for the guard: hold it only while
    /// handing one message over, never across an await.
    pub(crate) fn chain_ref(&self) -> RwLockReadGuard<'_, Option<Arc<Chain>>> {
        self.chain.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Drops the chain: breaks the cycle queue -> handler -> dispatchers -> (a dispatcher
    /// holding the messenger). Later messages and events reach no dispatcher.
    pub(crate) fn take_chain(&self) {
        let chain = self
            .chain
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        drop(chain);
    }

    /// The injected delay before the next event, if the draw hits.
    fn event_delay(&self) -> Option<Duration> {
        let d = self.event_delay.as_ref()?;
        lock(&d.rng).gen_bool(d.probability).then_some(d.delay)
    }
}

impl Handler<Received, ConnEvent> for QueueHandler {
    fn fast_preprocess(&self, m: &Received) {
        if let Some(c) = self.chain() {
            c.fast_preprocess(m);
        }
    }

    fn can_fast_dispatch(&self, m: &Received) -> bool {
        self.chain().is_some_and(|c| c.can_fast_dispatch(m))
    }

    fn fast_dispatch(&self, m: Received) {
        if let Some(c) = self.chain() {
            c.fast_dispatch(m);
        }
    }

    fn try_fast_dispatch(&self, m: Received) -> Result<(), Received> {
        match self.chain() {
            Some(c) => c.try_fast_dispatch(m),
            None => Err(m),
        }
    }

    fn dispatch(&self, m: Received) -> BoxFuture<'_, ()> {
        let chain = self.chain();
        Box::pin(async move {
            if let Some(c) = chain {
                c.dispatch(m).await;
            }
        })
    }

    fn event(&self, _conn: ConnId, e: ConnEvent) -> BoxFuture<'_, ()> {
        let chain = self.chain();
        let delay = self.event_delay();
        Box::pin(async move {
            if let Some(d) = delay {
                tokio::time::sleep(d).await;
            }
            if let Some(c) = chain {
                c.event(&e.conn, e.kind);
            }
        })
    }
}
