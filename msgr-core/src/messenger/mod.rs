//! [`Messenger`], the public facade, with its builder (`builder`) and
//! [`Messenger::connect`] (`connect`): the top of the crate.
//!
//! ```text
//!  TcpListener --Accepter--> Session::accept --+
//!  Messenger::connect ----> Session::connect --+--> registry (peer addr -> Session)
//!                                              |
//!  reader tasks --Host::deliver / Host::event--+--> dispatch queue --> dispatcher chain
//!  Connection::send (to self) --local delivery-+
//! ```
//!
//! A `Messenger` is a cheap handle to what only the facade owns (the configuration, the
//! running accepter, the connection limit) and to the [`SessionHost`] its sessions, its
//! accepter and its loopback share (identity, policies, registry, dispatch queue, calls).
//! It binds, rebinds, connects, marks down, shuts down and waits, and sums the counters.
//!
//! What it does not do: the work of the layers below it (the host turns deliveries into
//! dispatches, the accepter accepts, the registry keeps sessions). Nothing below imports it:
//! only its add-ons (`metrics`, `testing`) and its children do.

use std::net::SocketAddr;
use std::sync::Arc;

use msgr_dispatch::{QueueCounters, ShutdownMode, Throttle};
use msgr_pipe::{Host, Session};
use msgr_wire::{EntityAddr, EntityName, EntityType};

use crate::accepter::{self, AcceptContext, Accepter, ConnLimit};
use crate::config::MessengerConfig;
use crate::connection::Connection;
use crate::error::{CoreError, SendError};
use crate::host::SessionHost;
use crate::stats::{self, ConnectionStats, MessengerStats, ThrottleReading};

mod builder;
mod connect;

pub use builder::MessengerBuilder;
pub use connect::ConnectError;

/// A messenger: an entity name, a listening address, sessions to peers, and the dispatchers
/// that receive their messages. A cheap cloneable handle; see the crate docs.
///
/// Its tasks run until [`shutdown`](Messenger::shutdown): dropping every handle does not stop
/// them.
#[derive(Clone)]
pub struct Messenger {
    inner: Arc<Inner>,
}

/// What the facade owns alone, and the host it shares with its sessions.
struct Inner {
    /// Identity, policies, registry, dispatch queue, calls, loopback, tasks.
    host: Arc<SessionHost>,
    config: MessengerConfig,
    /// The running accepter; replaced on rebind, taken at shutdown.
    accepter: tokio::sync::Mutex<Option<Accepter>>,
    /// The msgr v1 accepter beside a msgr2 one (`bind_v1_addr`), if any.
    accepter_v1: tokio::sync::Mutex<Option<Accepter>>,
    /// The connection-count limit every accepter shares, if any.
    limit: Option<Arc<ConnLimit>>,
    /// Whether it listens (false: a client messenger, `MessengerBuilder::no_listener`).
    listens: bool,
}

impl Messenger {
    /// A builder for a messenger named `name` (e.g. `EntityName::osd(0)`), with default
    /// settings: listen on `0.0.0.0` at a kernel-chosen port, `lossless_client` for every
    /// peer type, no dispatcher.
    pub fn builder(name: EntityName) -> MessengerBuilder {
        MessengerBuilder::new(name)
    }

    /// Our address as announced to peers (IP learned from the first peer when bound to any).
    /// A messenger without a listener ([`MessengerBuilder::no_listener`]) has port 0: its
    /// blank IP becomes the one its first peer saw it at.
    pub fn addr(&self) -> EntityAddr {
        self.inner.host.identity.addr()
    }

    /// Every address we listen on: [`addr`](Self::addr), then msgr v1's when the messenger
    /// listens with both protocols (`bind_msgr2` with `bind_v1_addr`), as Ceph's daemons
    /// announce `[v2:IP:P2,v1:IP:P1]`.
    pub fn addrs(&self) -> Vec<EntityAddr> {
        self.inner.host.identity.addrs()
    }

    /// Our entity name: the one the messenger was built with, or the last one given to
    /// [`set_name`](Self::set_name).
    pub fn name(&self) -> EntityName {
        self.inner.host.identity.name()
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
        let old = self
            .inner
            .host
            .identity
            .rename(name)
            .map_err(|current| CoreError::NameType {
                current,
                requested: name,
            })?;
        tracing::debug!(%old, new = %name, "renamed");
        Ok(())
    }

    /// The settings the messenger runs with.
    pub fn config(&self) -> &MessengerConfig {
        &self.inner.config
    }

    /// The connection to ourselves: messages sent on it are delivered to our own
    /// dispatchers through the dispatch queue's local path.
    pub fn loopback(&self) -> Connection {
        self.inner.host.loopback_connection()
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
        let host = &self.inner.host;
        if host.cancel.is_cancelled() {
            return Err(CoreError::Shutdown);
        }
        if host.identity.is_self(&addr) {
            return Ok(self.loopback());
        }
        let pipe = Arc::clone(&host.pipe);
        let s = Session::connect_shared(Arc::clone(host) as Arc<dyn Host>, addr, peer_type, pipe);
        Ok(host.connection(s))
    }

    /// The registered session to `addr`, if any; never connects.
    pub fn connection(&self, addr: &EntityAddr) -> Option<Connection> {
        let host = &self.inner.host;
        host.registry.lookup(addr).map(|s| host.connection(s))
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
        let registry = &self.inner.host.registry;
        match registry.lookup(addr) {
            Some(s) => {
                s.mark_down_with_reset();
                registry.remove(&s);
                true
            }
            None => false,
        }
    }

    /// Ends every session, delivering a reset event for each (Ceph's `mark_down_all`).
    pub fn mark_down_all(&self) {
        for s in self.inner.host.registry.take_all() {
            s.mark_down_with_reset();
        }
    }

    /// Listens on a new port: stops the accepter, marks every session down (with reset
    /// events), and binds a port of the configured range (or a kernel-chosen one) outside
    /// `avoid` and the current port. The nonce changes, as in Ceph, so peers see a new
    /// instance. Returns the new address. A messenger without a listener
    /// ([`MessengerBuilder::no_listener`]) has nothing to rebind: [`CoreError::NoListener`].
    pub async fn rebind(&self, avoid: &[u16]) -> Result<EntityAddr, CoreError> {
        let inner = &self.inner;
        if !inner.listens {
            return Err(CoreError::NoListener);
        }
        let mut accepter = inner.accepter.lock().await;
        if inner.host.cancel.is_cancelled() {
            return Err(CoreError::Shutdown);
        }
        if let Some(a) = accepter.take() {
            a.stop().await;
        }
        self.mark_down_all();
        let old = inner.host.identity.addr();
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
        let new = inner.host.identity.rebind(local.port());
        *accepter = Some(Accepter::spawn(
            self.accept_context(new.is_v2()),
            listener,
            inner.host.cancel.child_token(),
        ));
        // The v1 listener of a dual-bound messenger moves too.
        let mut v1 = inner.accepter_v1.lock().await;
        if let Some(a) = v1.take() {
            a.stop().await;
            let at = SocketAddr::new(inner.config.bind_addr.ip(), 0);
            let listener = accepter::bind(at, 0, 0, &[local.port()])?;
            let port = listener
                .local_addr()
                .map_err(|source| CoreError::Bind { addr: at, source })?
                .port();
            inner.host.identity.rebind_v1(port);
            *v1 = Some(Accepter::spawn(
                self.accept_context(false),
                listener,
                inner.host.cancel.child_token(),
            ));
        }
        tracing::debug!(%old, %new, "rebound");
        Ok(new)
    }

    /// Starts shutting down: the accepter stops, every session is marked down (no reset
    /// events), the loopback closes, and new connections are refused. Returns at once;
    /// [`wait`](Self::wait) for the end.
    pub fn shutdown(&self) {
        let host = &self.inner.host;
        if host.cancel.is_cancelled() {
            return;
        }
        host.cancel.cancel();
        for s in host.registry.take_all() {
            s.mark_down();
        }
        host.loopback.close();
        host.tracker.close();
        tracing::debug!(name = %host.identity.name(), "messenger shutting down");
    }

    /// Waits for [`shutdown`](Self::shutdown) (called by someone) to complete: the accepter,
    /// every session and its tasks, and the dispatch queue's tasks have ended, whatever was
    /// still queued was dropped, and every limited throttle (dispatch, policy bytes and
    /// messages) is back to 0. A [`Received`](crate::Received) message the application
    /// keeps holds its policy permits, so `wait` returns only once it is dropped.
    pub async fn wait(&self) {
        let host = &self.inner.host;
        host.cancel.cancelled().await;
        if let Some(a) = self.inner.accepter.lock().await.take() {
            a.stop().await;
        }
        if let Some(a) = self.inner.accepter_v1.lock().await.take() {
            a.stop().await;
        }
        // Sessions registered while shutdown began were marked down by their watchers.
        host.tracker.wait().await;
        let report = host.queue.shutdown(ShutdownMode::Discard).await;
        // Every limited throttle back to 0: a request of exactly `max` is granted only then.
        for t in self.throttle_handles() {
            if t.max() > 0 {
                drop(t.acquire(t.max()).await);
            }
        }
        tracing::debug!(name = %host.identity.name(), ?report, "messenger stopped");
        // Break the cycle queue -> handler -> dispatchers -> (a dispatcher holding us).
        host.handler.take_chain();
    }

    /// Whether the messenger listens for peers (false for
    /// [`MessengerBuilder::no_listener`]'s client messengers).
    pub fn listens(&self) -> bool {
        self.inner.listens
    }

    /// Whether [`shutdown`](Self::shutdown) was called.
    pub fn is_shutdown(&self) -> bool {
        self.inner.host.cancel.is_cancelled()
    }

    /// Messages and events waiting in the dispatch queue (Ceph's `get_dispatch_queue_len`).
    pub fn dispatch_queue_len(&self) -> usize {
        self.inner.host.queue.len()
    }

    /// The dispatch queue's counters.
    pub fn dispatch_counters(&self) -> QueueCounters {
        self.inner.host.queue.counters()
    }

    /// Every throttle of the messenger with its current value: the dispatch throttle, then
    /// each policy's byte and message throttles. After quiescence all read 0.
    pub fn throttles(&self) -> Vec<ThrottleReading> {
        let host = &self.inner.host;
        let mut out = vec![ThrottleReading::new(
            "dispatch".into(),
            &host.dispatch_throttle,
        )];
        out.extend(host.policies.readings());
        out
    }

    /// Counters: per registered connection, and totals over every session this messenger
    /// has had (the loopback included).
    pub fn stats(&self) -> MessengerStats {
        let host = &self.inner.host;
        let sessions = host.registry.sessions();
        let mut total = host.registry.retired();
        let mut connections = Vec::with_capacity(sessions.len());
        let (rtts, keepalive_rtt) = host.registry.rtts();
        for s in sessions {
            let st = s.stats();
            stats::add(&mut total, &st);
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
        stats::add(&mut total, &lb);
        MessengerStats {
            total,
            connections,
            loopback: lb,
            dispatch_queue_len: host.queue.len(),
            dispatch: host.queue.counters(),
            dispatch_throttle_bytes: host.dispatch_throttle.current(),
            tasks: host.tracker.len(),
            keepalive_rtt,
            pending_calls: host.calls.len(),
        }
    }

    /// [`Connection::call`]s waiting for their reply now, over every connection.
    pub fn pending_calls(&self) -> usize {
        self.inner.host.calls.len()
    }

    /// What a new accepter needs: the host, the pipe settings, the tracker, the shutdown
    /// token, the span, the limit, and the protocol it speaks (`v2`: msgr2).
    fn accept_context(&self, v2: bool) -> AcceptContext {
        let host = &self.inner.host;
        AcceptContext {
            host: Arc::clone(host) as Arc<dyn Host>,
            pipe: Arc::clone(&host.pipe),
            tracker: host.tracker.clone(),
            shutdown: host.cancel.clone(),
            span: host.span.clone(),
            limit: self.inner.limit.clone(),
            v2,
        }
    }

    /// The dispatch throttle, then every policy throttle.
    fn throttle_handles(&self) -> Vec<Throttle> {
        let host = &self.inner.host;
        let mut out = vec![host.dispatch_throttle.clone()];
        out.extend(host.policies.throttles());
        out
    }
}

#[cfg(test)]
impl Messenger {
    /// The messenger as its pipes see it.
    pub(crate) fn inner_host(&self) -> &SessionHost {
        &self.inner.host
    }
}

impl std::fmt::Debug for Messenger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Messenger")
            .field("name", &self.name())
            .field("addr", &self.addr())
            .finish_non_exhaustive()
    }
}
