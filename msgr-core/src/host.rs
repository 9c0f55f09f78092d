//! The messenger as the pipes' [`Host`], and the dispatch queue's [`Handler`]: what the
//! sessions deliver becomes [`Received`] messages and connection events for the dispatcher
//! chain.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use msgr_dispatch::{BoxFuture, ConnId, Handler, Throttle, ThrottlePermit};
use msgr_pipe::{Authorizer, Host, Incoming, Policy, Session, SessionEvent};
use msgr_wire::{EntityAddr, EntityName, EntityType};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::connection::Connection;
use crate::dispatcher::{Chain, EventKind, Permits, Received};
use crate::messenger::{lock, Inner};

/// A connection event on its way through the dispatch queue.
pub(crate) struct ConnEvent {
    pub(crate) conn: Connection,
    pub(crate) kind: EventKind,
}

impl Host for Inner {
    fn my_addr(&self) -> EntityAddr {
        self.current_addr()
    }

    fn learn_addr(&self, seen: &EntityAddr) {
        let mut a = lock(&self.addr);
        if a.is_blank_ip() && !seen.is_blank_ip() {
            let port = a.addr.port();
            a.addr = SocketAddr::new(seen.addr.ip(), port);
            tracing::debug!(addr = %*a, "learned our address");
        }
    }

    fn my_name(&self) -> EntityName {
        self.name()
    }

    fn next_global_seq(&self, at_least: u32) -> u32 {
        let mut g = lock(&self.global_seq);
        *g = (*g).max(at_least).wrapping_add(1);
        *g
    }

    fn policy(&self, peer_type: EntityType) -> Policy {
        self.policies
            .get(&peer_type)
            .unwrap_or(&self.default_policy)
            .clone()
    }

    fn dispatch_throttle(&self) -> Option<Throttle> {
        Some(self.dispatch_throttle.clone())
    }

    fn authorizer(&self) -> Option<Arc<dyn Authorizer>> {
        self.authorizer.clone()
    }

    fn lookup(&self, peer_addr: &EntityAddr) -> Option<Session> {
        lock(&self.sessions).get(peer_addr).cloned()
    }

    fn register(&self, session: &Session) -> Result<(), Session> {
        {
            let mut map = lock(&self.sessions);
            let addr = session.peer_addr();
            if let Some(existing) = map.get(&addr) {
                if existing != session && !existing.is_closed() {
                    return Err(existing.clone());
                }
            }
            map.insert(addr, session.clone());
        }
        self.watch(session.clone());
        Ok(())
    }

    fn unregister(&self, session: &Session) {
        let mut map = lock(&self.sessions);
        let addr = session.peer_addr();
        if map.get(&addr) == Some(session) {
            map.remove(&addr);
        }
    }

    fn deliver(&self, session: &Session, incoming: Incoming) {
        let Incoming {
            msg,
            policy_permits,
            dispatch_permit,
        } = incoming;
        let priority = msg.header.priority;
        let mut received = Received {
            msg,
            conn: Connection::remote(session.clone(), Arc::clone(&self.calls)),
            permits: Permits {
                inner: policy_permits,
            },
        };
        let mut dispatch_permit = dispatch_permit;
        if let Some(tx) = self.calls.take(session.id(), received.msg.header.tid) {
            // A reply to a `Connection::call` goes to its caller, holding the dispatch
            // throttle's permit too until the caller drops it. A call that ended an instant
            // ago hands it back: it is dispatched, the permit still inside.
            received.permits.inner.extend(dispatch_permit.take());
            match tx.send(received) {
                Ok(()) => return,
                Err(r) => received = r,
            }
        }
        if let Some(chain) = self.handler.chain() {
            chain.fast_preprocess(&received);
        }
        let permit = dispatch_permit.unwrap_or_else(ThrottlePermit::empty);
        self.queue.deliver(session.id(), priority, received, permit);
    }

    fn event(&self, session: &Session, event: SessionEvent) {
        let kind = match event {
            SessionEvent::Connect => EventKind::Connect,
            SessionEvent::Accept => EventKind::Accept,
            SessionEvent::Reset => EventKind::Reset,
            SessionEvent::RemoteReset => EventKind::RemoteReset,
            SessionEvent::Refused => EventKind::Refused,
        };
        if matches!(kind, EventKind::Reset | EventKind::RemoteReset) {
            // Messages of the session that was reset are not delivered (Ceph discards them).
            self.queue.discard(session.id());
        }
        let conn = Connection::remote(session.clone(), Arc::clone(&self.calls));
        self.queue
            .enqueue_event(session.id(), ConnEvent { conn, kind });
    }

    fn new_conn_id(&self) -> ConnId {
        self.queue.new_conn_id()
    }
}

/// The dispatch queue's view of the dispatcher chain.
pub(crate) struct QueueHandler {
    /// Taken at the end of `wait`, breaking reference cycles through dispatchers.
    pub(crate) chain: Mutex<Option<Arc<Chain>>>,
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
    pub(crate) fn new(chain: Chain, inject: &crate::config::InjectConfig) -> Self {
        let event_delay = (msgr_pipe::inject::ENABLED
            && !inject.internal_delay.is_zero()
            && inject.delay_probability > 0.0)
            .then(|| EventDelay {
                delay: inject.internal_delay,
                probability: inject.delay_probability,
                rng: Mutex::new(SmallRng::seed_from_u64(inject.seed)),
            });
        QueueHandler {
            chain: Mutex::new(Some(Arc::new(chain))),
            event_delay,
        }
    }

    pub(crate) fn chain(&self) -> Option<Arc<Chain>> {
        lock(&self.chain).clone()
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
