//! [`Messenger`] and its builder: the session map, the dispatch queue and the accepter.
//!
//! ```text
//!  TcpListener --Accepter--> Session::accept --+
//!  Messenger::connect ----> Session::connect --+--> sessions (peer addr -> Session)
//!                                              |
//!  reader tasks --Host::deliver / Host::event--+--> DispatchQueue --> Dispatcher chain
//!  Connection::send (to self) --local delivery-+
//! ```
//!
//! The messenger is the pipes' [`Host`]: it hands out global seqs and policies, keeps the
//! map of registered sessions, and turns what the pipes deliver into [`Received`] messages and
//! connection events for the dispatch queue.
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use msgr_dispatch::{ConnId, DispatchQueue, QueueCounters, ShutdownMode, Throttle};
use msgr_pipe::{Authorizer, Host, KeepaliveAcks, PipeConfig, Policy, Session, SessionStats};
use msgr_wire::{EntityAddr, EntityName, EntityType};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::accepter::{self, Accepter};
use crate::builder::MessengerBuilder;
use crate::call::Calls;
use crate::config::MessengerConfig;
use crate::connection::{Connection, Loopback};
use crate::dispatcher::Received;
use crate::error::{CoreError, SendError};
use crate::host::{ConnEvent, QueueHandler};
use crate::stats::{ConnectionStats, MessengerStats, RttHistogram, ThrottleReading};

/// A messenger: an entity name, a listening address, sessions to peers, and the dispatchers
/// that receive their messages. A cheap cloneable handle; see the crate docs.
///
/// Its tasks run until [`shutdown`](Messenger::shutdown): dropping every handle does not stop
/// them.
#[derive(Clone)]
pub struct Messenger {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) me: Weak<Inner>,
    /// Our entity type: fixed when the messenger is built.
    pub(crate) name_ty: EntityType,
    /// Our entity number: [`Messenger::set_name`] changes it; read by every writer batch
    /// (see [`Inner::name`]), so one atomic load and no lock.
    pub(crate) name_num: AtomicI64,
    pub(crate) config: MessengerConfig,
    pub(crate) addr: Mutex<EntityAddr>,
    pub(crate) global_seq: Mutex<u32>,
    pub(crate) policies: HashMap<EntityType, Policy>,
    pub(crate) default_policy: Policy,
    pub(crate) dispatch_throttle: Throttle,
    pub(crate) authorizer: Option<Arc<dyn Authorizer>>,
    /// `config.pipe` (with the builder's hook), shared by every session.
    pub(crate) pipe: Arc<PipeConfig>,
    pub(crate) sessions: Mutex<HashMap<EntityAddr, Session>>,
    /// Counters of sessions that ended, so totals survive them.
    pub(crate) retired: Mutex<SessionStats>,
    pub(crate) queue: DispatchQueue<Received, ConnEvent>,
    pub(crate) handler: Arc<QueueHandler>,
    pub(crate) cancel: CancellationToken,
    pub(crate) tracker: TaskTracker,
    pub(crate) accepter: tokio::sync::Mutex<Option<Accepter>>,
    pub(crate) limit: Option<Arc<Semaphore>>,
    /// Accepted sessions holding a connection-limit permit.
    pub(crate) counted: Mutex<HashSet<ConnId>>,
    pub(crate) loopback: Arc<Loopback>,
    /// Calls waiting for their reply ([`Connection::call`]).
    pub(crate) calls: Arc<Calls>,
    /// Keepalive round trips: per live session, and of every session.
    pub(crate) rtt: Mutex<RttBook>,
    /// The messenger's span: its name; its tasks run inside it.
    pub(crate) span: tracing::Span,
}

/// The keepalive round trips the session watchers measure.
#[derive(Default)]
pub(crate) struct RttBook {
    pub(crate) sessions: HashMap<ConnId, RttHistogram>,
    pub(crate) total: RttHistogram,
}

pub(crate) use msgr_dispatch::lock;

impl Messenger {
    /// A builder for a messenger named `name` (e.g. `EntityName::osd(0)`), with default
    /// settings: listen on `0.0.0.0` at a kernel-chosen port, `lossless_client` for every
    /// peer type, no dispatcher.
    pub fn builder(name: EntityName) -> MessengerBuilder {
        MessengerBuilder::new(name)
    }

    /// Our address as announced to peers (IP learned from the first peer when bound to any).
    pub fn addr(&self) -> EntityAddr {
        self.inner.current_addr()
    }

    /// Our entity name: the one the messenger was built with, or the last one given to
    /// [`set_name`](Self::set_name).
    pub fn name(&self) -> EntityName {
        self.inner.name()
    }

    /// Takes a new entity name (Ceph's `Messenger::set_myname`): a client starts as
    /// `client.-1` and, once the monitor's MAuthReply gave it a global id, becomes
    /// `client.<global_id>`.
    ///
    /// Only the number may change: a messenger keeps the entity type it was built with
    /// (its sessions negotiated with it, and their policies depend on it), so a name of
    /// another type is refused with [`CoreError::NameType`] and the name stays as it was.
    ///
    /// Every message queued after the call carries the new name as its header's `src`, on
    /// every session (open, connecting, or made later) and on the
    /// [`loopback`](Self::loopback): as in Ceph, `src` is stamped when a message is queued,
    /// so one queued before the call keeps the old name, even when it is resent after a
    /// reconnect. The handshake sends only the type, so open sessions are not disturbed.
    /// Not renamed: the messenger's tracing span.
    pub fn set_name(&self, name: EntityName) -> Result<(), CoreError> {
        let current = self.inner.name();
        if name.ty != current.ty {
            return Err(CoreError::NameType {
                current,
                requested: name,
            });
        }
        self.inner.name_num.store(name.num, Ordering::Release);
        tracing::debug!(old = %current, new = %name, "renamed");
        Ok(())
    }

    /// The settings the messenger runs with.
    pub fn config(&self) -> &MessengerConfig {
        &self.inner.config
    }

    /// The connection to ourselves: messages sent on it are delivered to our own
    /// dispatchers through the dispatch queue's local path.
    pub fn loopback(&self) -> Connection {
        Connection::loopback(
            Arc::clone(&self.inner.loopback),
            Arc::clone(&self.inner.calls),
        )
    }

    /// The connection to `addr` at once, without waiting for the session to open (tonic's
    /// `connect_lazy`): the registered session's if there is one (outgoing or accepted),
    /// else a new outgoing session that connects in the background, its outcome told by
    /// dispatcher events, [`Connection::watch_state`] and the session's handshake failures.
    /// Our own address gives the loopback. [`connect`](Self::connect) awaits the outcome.
    ///
    /// ```no_run
    /// # fn f(m: msgr_core::Messenger, addr: msgr_core::EntityAddr) -> Result<(), msgr_core::CoreError> {
    /// let conn = m.connect_lazy(addr, msgr_core::EntityType::OSD)?;
    /// conn.try_send(msgr_core::Message::new(0x7001, "queued until the session opens")).ok();
    /// # Ok(()) }
    /// ```
    pub fn connect_lazy(
        &self,
        addr: EntityAddr,
        peer_type: EntityType,
    ) -> Result<Connection, CoreError> {
        if self.inner.cancel.is_cancelled() {
            return Err(CoreError::Shutdown);
        }
        if self.inner.is_self(&addr) {
            return Ok(self.loopback());
        }
        let host: Arc<dyn Host> = self.inner.clone();
        let s = Session::connect_shared(host, addr, peer_type, Arc::clone(&self.inner.pipe));
        Ok(Connection::remote(s, Arc::clone(&self.inner.calls)))
    }

    /// The registered session to `addr`, if any; never connects.
    pub fn connection(&self, addr: &EntityAddr) -> Option<Connection> {
        self.inner
            .lookup(addr)
            .map(|s| Connection::remote(s, Arc::clone(&self.inner.calls)))
    }

    /// Sends `msg` to `addr` over [`connect_lazy`](Self::connect_lazy)'s connection.
    pub async fn send_to(
        &self,
        addr: EntityAddr,
        peer_type: EntityType,
        msg: msgr_wire::Message,
    ) -> Result<(), SendError> {
        let conn = self
            .connect_lazy(addr, peer_type)
            .map_err(|_| SendError::Shutdown)?;
        conn.send(msg).await
    }

    /// Ends the session to `addr` and delivers a reset event for it (Ceph's
    /// `mark_down(addr)`). Returns whether there was one.
    pub fn mark_down(&self, addr: &EntityAddr) -> bool {
        match self.inner.lookup(addr) {
            Some(s) => {
                s.mark_down_with_reset();
                self.inner.unregister(&s);
                true
            }
            None => false,
        }
    }

    /// Ends every session, delivering a reset event for each (Ceph's `mark_down_all`).
    pub fn mark_down_all(&self) {
        for s in self.inner.take_sessions() {
            s.mark_down_with_reset();
        }
    }

    /// Listens on a new port: stops the accepter, marks every session down (with reset
    /// events), and binds a port of the configured range (or a kernel-chosen one) outside
    /// `avoid` and the current port. The nonce changes, as in Ceph, so peers see a new
    /// instance. Returns the new address.
    pub async fn rebind(&self, avoid: &[u16]) -> Result<EntityAddr, CoreError> {
        let inner = &self.inner;
        let mut accepter = inner.accepter.lock().await;
        if inner.cancel.is_cancelled() {
            return Err(CoreError::Shutdown);
        }
        if let Some(a) = accepter.take() {
            a.stop().await;
        }
        self.mark_down_all();
        let old = inner.current_addr();
        let mut avoid = avoid.to_vec();
        avoid.push(old.addr.port());
        let bind_at = SocketAddr::new(inner.config.bind_addr.ip(), 0);
        let listener = accepter::bind(
            bind_at,
            inner.config.bind_port_min,
            inner.config.bind_port_max,
            &avoid,
        )?;
        let local = listener.local_addr().map_err(|source| CoreError::Bind {
            addr: bind_at,
            source,
        })?;
        let new = {
            let mut a = lock(&inner.addr);
            a.addr.set_port(local.port());
            a.nonce = a.nonce.wrapping_add(1_000_000);
            *a
        };
        *accepter = Some(Accepter::spawn(
            inner,
            listener,
            inner.cancel.child_token(),
            inner.limit.clone(),
        ));
        tracing::debug!(%old, %new, "rebound");
        Ok(new)
    }

    /// Starts shutting down: the accepter stops, every session is marked down (no reset
    /// events), the loopback closes, and new connections are refused. Returns at once;
    /// [`wait`](Self::wait) for the end.
    pub fn shutdown(&self) {
        let inner = &self.inner;
        if inner.cancel.is_cancelled() {
            return;
        }
        inner.cancel.cancel();
        for s in inner.take_sessions() {
            s.mark_down();
        }
        inner.loopback.close();
        inner.tracker.close();
        tracing::debug!(name = %inner.name(), "messenger shutting down");
    }

    /// Waits for [`shutdown`](Self::shutdown) (called by someone) to complete: the accepter,
    /// every session and its tasks, and the dispatch queue's tasks have ended, whatever was
    /// still queued was dropped, and every limited throttle (dispatch, policy bytes and
    /// messages) is back to 0. A [`Received`] message the application keeps holds its policy
    /// permits, so `wait` returns only once it is dropped.
    pub async fn wait(&self) {
        let inner = &self.inner;
        inner.cancel.cancelled().await;
        if let Some(a) = inner.accepter.lock().await.take() {
            a.stop().await;
        }
        // Sessions registered while shutdown began were marked down by their watchers.
        inner.tracker.wait().await;
        let report = inner.queue.shutdown(ShutdownMode::Discard).await;
        // Every limited throttle back to 0: a request of exactly `max` is granted only then.
        for t in inner.throttle_handles() {
            if t.max() > 0 {
                drop(t.acquire(t.max()).await);
            }
        }
        tracing::debug!(name = %inner.name(), ?report, "messenger stopped");
        // Break the cycle queue -> handler -> dispatchers -> (a dispatcher holding us).
        lock(&inner.handler.chain).take();
    }

    /// Whether [`shutdown`](Self::shutdown) was called.
    pub fn is_shutdown(&self) -> bool {
        self.inner.cancel.is_cancelled()
    }

    /// Messages and events waiting in the dispatch queue (Ceph's `get_dispatch_queue_len`).
    pub fn dispatch_queue_len(&self) -> usize {
        self.inner.queue.len()
    }

    /// The dispatch queue's counters.
    pub fn dispatch_counters(&self) -> QueueCounters {
        self.inner.queue.counters()
    }

    /// Every throttle of the messenger with its current value: the dispatch throttle, then
    /// each policy's byte and message throttles. After quiescence all read 0.
    pub fn throttles(&self) -> Vec<ThrottleReading> {
        let inner = &self.inner;
        let mut out = vec![ThrottleReading::new(
            "dispatch".into(),
            &inner.dispatch_throttle,
        )];
        let mut policies: Vec<(String, &Policy)> = inner
            .policies
            .iter()
            .map(|(t, p)| (t.to_string(), p))
            .collect();
        policies.push(("default".into(), &inner.default_policy));
        for (ty, p) in policies {
            if let Some(t) = &p.throttle_bytes {
                out.push(ThrottleReading::new(format!("policy.{ty}.bytes"), t));
            }
            if let Some(t) = &p.throttle_messages {
                out.push(ThrottleReading::new(format!("policy.{ty}.messages"), t));
            }
        }
        out
    }

    /// Counters: per registered connection, and totals over every session this messenger
    /// has had (the loopback included).
    pub fn stats(&self) -> MessengerStats {
        let inner = &self.inner;
        let sessions: Vec<Session> = lock(&inner.sessions).values().cloned().collect();
        let mut total = *lock(&inner.retired);
        let mut connections = Vec::with_capacity(sessions.len());
        let (rtts, keepalive_rtt) = {
            let book = lock(&inner.rtt);
            (book.sessions.clone(), book.total.clone())
        };
        for s in sessions {
            let st = s.stats();
            crate::stats::add(&mut total, &st);
            connections.push(ConnectionStats {
                id: s.id(),
                peer_addr: s.peer_addr(),
                peer_type: s.peer_type(),
                peer_name: s.peer_name(),
                state: s.state(),
                stats: st,
                keepalive_rtt: rtts.get(&s.id()).cloned().unwrap_or_default(),
            });
        }
        let lb = self.loopback().stats();
        crate::stats::add(&mut total, &lb);
        MessengerStats {
            total,
            connections,
            loopback: lb,
            dispatch_queue_len: inner.queue.len(),
            dispatch: inner.queue.counters(),
            dispatch_throttle_bytes: inner.dispatch_throttle.current(),
            tasks: inner.tracker.len(),
            keepalive_rtt,
            pending_calls: inner.calls.len(),
        }
    }

    /// [`Connection::call`]s waiting for their reply now, over every connection.
    pub fn pending_calls(&self) -> usize {
        self.inner.calls.len()
    }
}

#[cfg(test)]
impl Messenger {
    /// The messenger as its pipes see it.
    pub(crate) fn inner_host(&self) -> &Inner {
        &self.inner
    }
}

impl std::fmt::Debug for Messenger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Messenger")
            .field("name", &self.inner.name())
            .field("addr", &self.inner.current_addr())
            .finish_non_exhaustive()
    }
}

impl Inner {
    /// Our entity name now: the fixed type and the current number.
    pub(crate) fn name(&self) -> EntityName {
        EntityName::new(self.name_ty, self.name_num.load(Ordering::Acquire))
    }

    pub(crate) fn current_addr(&self) -> EntityAddr {
        *lock(&self.addr)
    }

    /// Counts an accepted session against the connection limit; false if already counted.
    pub(crate) fn count_session(&self, s: &Session) -> bool {
        lock(&self.counted).insert(s.id())
    }

    /// Stops counting an ended session.
    pub(crate) fn uncount_session(&self, s: &Session) {
        lock(&self.counted).remove(&s.id());
    }

    /// Whether `addr` is ours: equal, or equal but for the IP while ours is still blank.
    fn is_self(&self, addr: &EntityAddr) -> bool {
        let mine = self.current_addr();
        *addr == mine
            || (mine.is_blank_ip()
                && addr.nonce == mine.nonce
                && addr.addr.port() == mine.addr.port())
    }

    /// The dispatch throttle, then every policy throttle.
    fn throttle_handles(&self) -> Vec<Throttle> {
        let policies = self
            .policies
            .values()
            .chain(std::iter::once(&self.default_policy));
        std::iter::once(self.dispatch_throttle.clone())
            .chain(policies.flat_map(|p| {
                p.throttle_bytes
                    .iter()
                    .chain(p.throttle_messages.iter())
                    .cloned()
                    .collect::<Vec<_>>()
            }))
            .collect()
    }

    fn take_sessions(&self) -> Vec<Session> {
        lock(&self.sessions).drain().map(|(_, s)| s).collect()
    }

    /// Runs the acceptor handshake on an accepted stream; the session once open.
    pub(crate) async fn accept_stream(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
    ) -> Option<Session> {
        let host: Arc<dyn Host> = self.me.upgrade()?;
        let pipe = Arc::clone(&self.pipe);
        let accept = async {
            if self.current_addr().is_v2() {
                Session::accept_v2(host, stream, peer, pipe).await
            } else {
                Session::accept_shared(host, stream, peer, pipe).await
            }
        };
        tokio::select! {
            () = self.cancel.cancelled() => None,
            r = accept => match r {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "accept failed");
                    None
                }
            },
        }
    }

    /// Measures the round trip of every KEEPALIVE2_ACK `acks` sees, until the session ends.
    async fn follow_keepalives(&self, s: &Session, mut acks: KeepaliveAcks) {
        let closed = s.closed();
        tokio::pin!(closed);
        loop {
            tokio::select! {
                () = &mut closed => break,
                ack = acks.next() => match ack {
                    Ok(stamp) => {
                        if let Some(rtt) = crate::stats::rtt_of(stamp) {
                            let mut book = lock(&self.rtt);
                            book.sessions.entry(s.id()).or_default().observe(rtt);
                            book.total.observe(rtt);
                        }
                    }
                    Err(_) => {
                        closed.as_mut().await;
                        break;
                    }
                },
            }
        }
        lock(&self.rtt).sessions.remove(&s.id());
    }

    /// Follows a registered session until it ends, so `wait` covers it, and keeps its
    /// counters in the totals afterwards.
    pub(crate) fn watch(&self, s: Session) {
        let Some(me) = self.me.upgrade() else { return };
        let shutting_down = self.cancel.is_cancelled();
        // Subscribed now, not when the task first runs: an ack may come before that.
        let acks = s.keepalive_acks();
        self.tracker.spawn(
            async move {
                if shutting_down {
                    s.mark_down();
                }
                me.follow_keepalives(&s, acks).await;
                me.unregister(&s);
                let st = SessionStats {
                    queued: 0,
                    unacked: 0,
                    ..s.stats()
                };
                crate::stats::add(&mut lock(&me.retired), &st);
            }
            .instrument(self.span.clone()),
        );
    }
}
