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
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use msgr_dispatch::{
    BoxFuture, ConnId, DispatchConfig, DispatchQueue, Handler, QueueCounters, ShutdownMode,
    Throttle, ThrottlePermit,
};
use msgr_pipe::{
    Authorizer, HandshakeHook, Host, Incoming, PipeConfig, Policy, Session, SessionEvent,
    SessionStats,
};
use msgr_wire::{EntityAddr, EntityName, EntityType};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::accepter::{self, Accepter};
use crate::config::{MessengerConfig, PolicyConfig, PolicyKind};
use crate::connection::{Connection, Loopback};
use crate::dispatcher::{Chain, Dispatcher, EventKind, Permits, Received};
use crate::error::{CoreError, SendError};
use crate::stats::{ConnectionStats, MessengerStats, ThrottleReading};

/// A connection event on its way through the dispatch queue.
pub(crate) struct ConnEvent {
    conn: Connection,
    kind: EventKind,
}

/// Configures and starts a [`Messenger`]; made by [`Messenger::builder`].
#[must_use = "a builder does nothing until started"]
pub struct MessengerBuilder {
    name: EntityName,
    config: MessengerConfig,
    bind: Option<SocketAddr>,
    policies: HashMap<EntityType, Policy>,
    default_policy: Option<Policy>,
    chain: Chain,
    hook: Option<Arc<dyn HandshakeHook>>,
    authorizer: Option<Arc<dyn Authorizer>>,
}

impl MessengerBuilder {
    /// Replaces the whole configuration (settings made by the other methods still win).
    pub fn config(mut self, config: MessengerConfig) -> Self {
        self.config = config;
        self
    }

    /// The address to listen on (overrides `bind_addr` of the configuration).
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.bind = Some(addr);
        self
    }

    /// The policy for peers of `peer_type`, used as given (overrides the configuration's).
    pub fn policy(mut self, peer_type: EntityType, policy: Policy) -> Self {
        self.policies.insert(peer_type, policy);
        self
    }

    /// The policy for peer types without their own (overrides the configuration's).
    pub fn default_policy(mut self, policy: Policy) -> Self {
        self.default_policy = Some(policy);
        self
    }

    /// Adds a dispatcher after those already added: messages go through them in order.
    pub fn dispatcher(mut self, d: Arc<dyn Dispatcher>) -> Self {
        self.chain.push(d);
        self
    }

    /// A handshake hook for deterministic tests (see `msgr_pipe::HandshakeHook`).
    pub fn handshake_hook(mut self, hook: Arc<dyn HandshakeHook>) -> Self {
        self.hook = Some(hook);
        self
    }

    /// Builds and verifies authorizers (none by default: nothing sent, everything accepted).
    pub fn authorizer(mut self, authorizer: Arc<dyn Authorizer>) -> Self {
        self.authorizer = Some(authorizer);
        self
    }

    /// Validates the configuration, binds the listening socket, and starts the dispatch
    /// queue and the accepter. Must be called inside a tokio runtime.
    pub async fn start(self) -> Result<Messenger, CoreError> {
        let mut config = self.config;
        if let Some(addr) = self.bind {
            config.bind_addr = addr;
        }
        config.validate()?;
        let name = match &config.name {
            Some(n) => n
                .parse()
                .map_err(|_| crate::error::ConfigError::EntityName(n.clone()))?,
            None => self.name,
        };
        let mut pipe = pipe_config(&config);
        pipe.hook = self.hook;
        pipe.validate().map_err(CoreError::PipeConfig)?;
        let mut policies = HashMap::new();
        for (ty, pc) in &config.policies {
            let ty: EntityType = ty
                .parse()
                .map_err(|_| crate::error::ConfigError::EntityType(ty.clone()))?;
            policies.insert(ty, policy_from_config(pc, &config));
        }
        policies.extend(self.policies);
        let default_policy = self
            .default_policy
            .unwrap_or_else(|| policy_from_config(&config.default_policy, &config));

        let listener = accepter::bind(
            config.bind_addr,
            config.bind_port_min,
            config.bind_port_max,
            &config.bind_avoid_ports,
        )?;
        let local = listener.local_addr().map_err(|source| CoreError::Bind {
            addr: config.bind_addr,
            source,
        })?;
        let nonce = rand::random::<u32>() | 1;
        let handler = Arc::new(QueueHandler::new(self.chain, &config.inject));
        let queue = DispatchQueue::new(DispatchConfig::default(), handler.clone());
        let limit =
            (config.max_connections > 0).then(|| Arc::new(Semaphore::new(config.max_connections)));
        let features = default_policy.features_supported;
        let inner = Arc::new_cyclic(|me: &Weak<Inner>| Inner {
            me: me.clone(),
            name,
            addr: Mutex::new(EntityAddr::new(local, nonce)),
            global_seq: Mutex::new(0),
            policies,
            default_policy,
            dispatch_throttle: Throttle::new(config.dispatch_throttle_bytes),
            authorizer: self.authorizer,
            pipe: Arc::new(pipe),
            sessions: Mutex::new(HashMap::new()),
            retired: Mutex::new(SessionStats::default()),
            queue,
            handler,
            cancel: CancellationToken::new(),
            tracker: TaskTracker::new(),
            accepter: tokio::sync::Mutex::new(None),
            limit,
            counted: Mutex::new(HashSet::new()),
            loopback: Arc::new(Loopback::new(name, features, me.clone())),
            config,
        });
        let accepter = Accepter::spawn(
            &inner,
            listener,
            inner.cancel.child_token(),
            inner.limit.clone(),
        );
        *inner.accepter.lock().await = Some(accepter);
        tracing::debug!(%name, addr = %inner.current_addr(), "messenger started");
        Ok(Messenger { inner })
    }
}

fn pipe_config(c: &MessengerConfig) -> PipeConfig {
    PipeConfig {
        read_timeout: c.read_timeout,
        handshake_timeout: c.handshake_timeout,
        initial_backoff: c.initial_backoff,
        max_backoff: c.max_backoff,
        limits: c.limits,
        crc: c.crc,
        max_pending_bytes: c.max_pending_bytes,
        inject: msgr_pipe::InjectConfig {
            socket_failures: c.inject.socket_failures,
            internal_delay: c.inject.internal_delay,
            delay_probability: c.inject.delay_probability,
            delay_max: c.inject.delay_max,
            seed: c.inject.seed,
        },
        ..PipeConfig::default()
    }
}

fn policy_from_config(pc: &PolicyConfig, c: &MessengerConfig) -> Policy {
    let req = c.features_required | pc.features_required;
    let mut p = match pc.kind {
        PolicyKind::LossyClient => Policy::lossy_client(req),
        PolicyKind::LosslessClient => Policy::lossless_client(req),
        PolicyKind::LosslessPeer => Policy::lossless_peer(req),
        PolicyKind::LosslessPeerReuse => Policy::lossless_peer_reuse(req),
        PolicyKind::StatefulServer => Policy::stateful_server(req),
        PolicyKind::StatelessServer => Policy::stateless_server(req),
    };
    p.features_supported = c.features_supported;
    let throttle = |n: u64| (n > 0).then(|| Throttle::new(n));
    p.with_throttles(throttle(pc.throttle_bytes), throttle(pc.throttle_messages))
}

/// A messenger: an entity name, a listening address, sessions to peers, and the dispatchers
/// that receive their messages. A cheap cloneable handle; see the crate docs.
///
/// Its tasks run until [`shutdown`](Messenger::shutdown): dropping every handle does not stop
/// them.
#[derive(Clone)]
pub struct Messenger {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    me: Weak<Inner>,
    name: EntityName,
    config: MessengerConfig,
    addr: Mutex<EntityAddr>,
    global_seq: Mutex<u32>,
    policies: HashMap<EntityType, Policy>,
    default_policy: Policy,
    dispatch_throttle: Throttle,
    authorizer: Option<Arc<dyn Authorizer>>,
    pipe: Arc<PipeConfig>,
    sessions: Mutex<HashMap<EntityAddr, Session>>,
    /// Counters of sessions that ended, so totals survive them.
    retired: Mutex<SessionStats>,
    pub(crate) queue: DispatchQueue<Received, ConnEvent>,
    handler: Arc<QueueHandler>,
    cancel: CancellationToken,
    pub(crate) tracker: TaskTracker,
    accepter: tokio::sync::Mutex<Option<Accepter>>,
    limit: Option<Arc<Semaphore>>,
    /// Accepted sessions holding a connection-limit permit.
    counted: Mutex<HashSet<ConnId>>,
    loopback: Arc<Loopback>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Messenger {
    /// A builder for a messenger named `name` (e.g. `EntityName::osd(0)`), with default
    /// settings: listen on `0.0.0.0` at a kernel-chosen port, `lossless_client` for every
    /// peer type, no dispatcher.
    pub fn builder(name: EntityName) -> MessengerBuilder {
        MessengerBuilder {
            name,
            config: MessengerConfig::default(),
            bind: None,
            policies: HashMap::new(),
            default_policy: None,
            chain: Chain::default(),
            hook: None,
            authorizer: None,
        }
    }

    /// Our address as announced to peers (IP learned from the first peer when bound to any).
    pub fn addr(&self) -> EntityAddr {
        self.inner.current_addr()
    }

    /// Our entity name.
    pub fn name(&self) -> EntityName {
        self.inner.name
    }

    /// The settings the messenger runs with.
    pub fn config(&self) -> &MessengerConfig {
        &self.inner.config
    }

    /// The connection to ourselves: messages sent on it are delivered to our own
    /// dispatchers through the dispatch queue's local path.
    pub fn loopback(&self) -> Connection {
        Connection::loopback(Arc::clone(&self.inner.loopback))
    }

    /// The connection to `addr`: the registered session's if there is one (outgoing or
    /// accepted), else a new outgoing session that connects in the background. Our own
    /// address gives the loopback.
    pub fn connect(
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
        Ok(Connection::remote(s))
    }

    /// The registered session to `addr`, if any; never connects.
    pub fn connection(&self, addr: &EntityAddr) -> Option<Connection> {
        self.inner.lookup(addr).map(Connection::remote)
    }

    /// Sends `msg` to `addr` over [`connect`](Self::connect)'s connection.
    pub async fn send_to(
        &self,
        addr: EntityAddr,
        peer_type: EntityType,
        msg: msgr_wire::Message,
    ) -> Result<(), SendError> {
        let conn = self
            .connect(addr, peer_type)
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
        tracing::debug!(name = %inner.name, "messenger shutting down");
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
        tracing::debug!(name = %inner.name, ?report, "messenger stopped");
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
        for s in sessions {
            let st = s.stats();
            crate::stats::add(&mut total, &st);
            connections.push(ConnectionStats {
                id: s.id(),
                peer_addr: s.peer_addr(),
                peer_type: s.peer_type(),
                state: s.state(),
                stats: st,
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
        }
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
            .field("name", &self.inner.name)
            .field("addr", &self.inner.current_addr())
            .finish_non_exhaustive()
    }
}

impl Inner {
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
        let accept = Session::accept_shared(host, stream, peer, Arc::clone(&self.pipe));
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

    /// Follows a registered session until it ends, so `wait` covers it, and keeps its
    /// counters in the totals afterwards.
    fn watch(&self, s: Session) {
        let Some(me) = self.me.upgrade() else { return };
        let shutting_down = self.cancel.is_cancelled();
        self.tracker.spawn(async move {
            if shutting_down {
                s.mark_down();
            }
            s.closed().await;
            me.unregister(&s);
            let st = SessionStats {
                queued: 0,
                unacked: 0,
                ..s.stats()
            };
            crate::stats::add(&mut lock(&me.retired), &st);
        });
    }
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
        self.name
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
        let received = Received {
            msg,
            conn: Connection::remote(session.clone()),
            permits: Permits {
                inner: policy_permits,
            },
        };
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
        let conn = Connection::remote(session.clone());
        self.queue
            .enqueue_event(session.id(), ConnEvent { conn, kind });
    }

    fn new_conn_id(&self) -> ConnId {
        self.queue.new_conn_id()
    }
}

/// The dispatch queue's view of the dispatcher chain.
struct QueueHandler {
    /// Taken at the end of `wait`, breaking reference cycles through dispatchers.
    chain: Mutex<Option<Arc<Chain>>>,
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
    fn new(chain: Chain, inject: &crate::config::InjectConfig) -> Self {
        let event_delay = (!inject.internal_delay.is_zero() && inject.delay_probability > 0.0)
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

    fn chain(&self) -> Option<Arc<Chain>> {
        lock(&self.chain).clone()
    }

    /// The injected delay before the next event, if the draw hits.
    fn event_delay(&self) -> Option<Duration> {
        let d = self.event_delay.as_ref()?;
        lock(&d.rng).gen_bool(d.probability).then_some(d.delay)
    }
}

impl Handler<Received, ConnEvent> for QueueHandler {
    fn can_fast_dispatch(&self, m: &Received) -> bool {
        self.chain().is_some_and(|c| c.can_fast_dispatch(m))
    }

    fn fast_dispatch(&self, m: Received) {
        if let Some(c) = self.chain() {
            c.fast_dispatch(m);
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
