//! [`Connection`]: a cheap handle to one peer session, or to the messenger itself; the
//! [`Received`] messages that arrive on it, holding their throttle [`Permits`]; and
//! [`Connection::call`], request/response by `tid` over the messenger's table of calls.
//!
//! A connection and what is received on it refer to each other (a [`Received`] carries its
//! connection, a connection's calls wait for [`Received`] replies), so both live here.
//!
//! What it does not do: run a session (msgr-pipe does), hold the loopback's state or deliver
//! its messages (the `loopback` module and its host do), or dispatch (the `dispatcher`
//! module's chain does). It imports `call`, `loopback` and `error`.

use std::fmt;
use std::future::Future;
use std::mem::ManuallyDrop;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use msgr_dispatch::{ConnId, ThrottlePermit};
use msgr_pipe::session::SessionClosed;
use msgr_pipe::{AppData, ConnState, Session, SessionStats};
use msgr_wire::{EntityAddr, EntityName, EntityType, Message, Timespec};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::call::{CallError, Calls};
use crate::error::SendError;
use crate::loopback::Loopback;

/// The connection id of the loopback connection (class 0 of the dispatch queue, as Ceph's
/// local delivery).
pub const LOOPBACK_ID: ConnId = 0;

/// A handle to a peer session (or to the messenger's own loopback), usable from any task.
///
/// Cloning is cheap; every clone refers to the same session. A lossless session outlives its
/// sockets: faults and reconnects happen underneath, and the handle stays valid. A session that
/// ended (marked down, lossy fault, messenger shut down) stays ended: sends fail with
/// [`SendError::Closed`], and [`Messenger::connect`](crate::Messenger::connect) makes a new one.
#[derive(Clone)]
pub struct Connection {
    /// One reference count for the whole handle: a clone or a drop is one atomic operation
    /// (a session's reader keeps one connection and clones it into every message it
    /// delivers, where a handle of two `Arc`s cost two increments and two decrements).
    inner: Arc<ConnInner>,
}

/// What a [`Connection`] refers to.
struct ConnInner {
    kind: Kind,
    /// The messenger's calls waiting for replies ([`Connection::call`]).
    calls: Arc<Calls<Received>>,
}

#[derive(Clone)]
enum Kind {
    Remote(Session),
    Loopback(Arc<Loopback>),
}

impl Connection {
    /// A handle to `session`, whose replies to calls go through `calls`.
    pub(crate) fn remote(session: Session, calls: Arc<Calls<Received>>) -> Self {
        Connection {
            inner: Arc::new(ConnInner {
                kind: Kind::Remote(session),
                calls,
            }),
        }
    }

    /// A handle to the messenger's loopback.
    pub(crate) fn loopback(lb: Arc<Loopback>, calls: Arc<Calls<Received>>) -> Self {
        Connection {
            inner: Arc::new(ConnInner {
                kind: Kind::Loopback(lb),
                calls,
            }),
        }
    }

    /// Sends a [`call`](Self::call)'s request: as [`send`](Self::send), except that on the
    /// loopback the request itself is not taken for its own reply.
    pub(crate) async fn send_request(&self, msg: Message) -> Result<(), SendError> {
        match &self.inner.kind {
            Kind::Remote(s) => s.send(msg).await.map_err(map_send),
            Kind::Loopback(lb) => lb.send(msg, false),
        }
    }

    /// Queues a message, waiting while this connection's queued plus unacknowledged bytes
    /// exceed the configured `max_pending_bytes` (sender backpressure).
    ///
    /// A message that needs no wait is queued by this call, before the future is polled (see
    /// [`Session::send`]): the message is not moved into the future, which is then small and
    /// only yields to the scheduler when the task's budget is spent.
    pub fn send(&self, msg: Message) -> SendFuture<'_> {
        match &self.inner.kind {
            Kind::Remote(s) => SendFuture(Sending::Remote(s.send(msg))),
            Kind::Loopback(lb) => SendFuture(Sending::Done(Some(lb.send(msg, true)))),
        }
    }

    /// Queues a message if the backpressure limit allows it now; [`SendError::Full`] (the
    /// message is dropped) otherwise.
    pub fn try_send(&self, msg: Message) -> Result<(), SendError> {
        match &self.inner.kind {
            Kind::Remote(s) => s.try_send(msg).map_err(map_send),
            Kind::Loopback(lb) => lb.send(msg, true),
        }
    }

    /// Queues a message without waiting, even beyond the backpressure limit (its bytes still
    /// count, so later [`send`](Self::send)s wait). For replies from inside a dispatcher, which
    /// must not wait on the peer.
    #[inline]
    pub fn queue(&self, msg: Message) -> Result<(), SendError> {
        match &self.inner.kind {
            Kind::Remote(s) => s.queue(msg).map_err(map_send),
            Kind::Loopback(lb) => lb.send(msg, true),
        }
    }

    /// Sends `msg` and waits at most `timeout` for the reply: the first message arriving on
    /// this connection whose header carries the request's `tid`. The request keeps a `tid`
    /// it already has (the caller's own numbering, as Ceph's Objecter has); a `tid` of 0 is
    /// replaced by the next of the messenger's counter. The reply does not go through the
    /// dispatchers.
    ///
    /// The send waits on backpressure as [`send`](Self::send) does, within the same
    /// `timeout`. Many calls may wait on one connection at once, answered in any order.
    /// Fails with [`CallError::Timeout`] when no reply came in time (a reply arriving later
    /// goes to the dispatchers as an ordinary message), [`CallError::Closed`] when the
    /// session ends first, [`CallError::DuplicateTid`] when another call on this connection
    /// waits for the same `tid`. Dropping the future forgets the call.
    ///
    /// ```no_run
    /// # async fn f(conn: msgr_core::Connection) -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// use msgr_core::Message;
    ///
    /// let reply = conn.call(Message::new(0x7001, "ping"), Duration::from_secs(5)).await?;
    /// println!("{} bytes back from {:?}", reply.msg.front.len(), reply.conn.peer_name());
    /// # Ok(()) }
    /// ```
    pub async fn call(&self, mut msg: Message, timeout: Duration) -> Result<Received, CallError> {
        if msg.header.tid == 0 {
            msg.header.tid = self.inner.calls.next_tid();
        }
        let tid = msg.header.tid;
        let mut pending = self.inner.calls.register(self.id(), tid)?;
        let exchange = async {
            self.send_request(msg).await?;
            tokio::select! {
                biased;
                r = &mut pending.rx => r.map_err(|_| CallError::Closed { tid }),
                () = self.closed() => Err(CallError::Closed { tid }),
            }
        };
        let out = match tokio::time::timeout(timeout, exchange).await {
            Ok(r) => r,
            Err(_) => Err(CallError::Timeout { tid, timeout }),
        };
        drop(pending);
        out
    }

    /// Asks for a keepalive (KEEPALIVE2 when negotiated). Does not wake a standby session.
    pub fn send_keepalive(&self) {
        if let Kind::Remote(s) = &self.inner.kind {
            s.send_keepalive();
        }
    }

    /// Ends the session now: socket shut, queued messages dropped, unregistered. No reset
    /// event is delivered (Ceph's `mark_down(Connection)`); see
    /// [`Messenger::mark_down`](crate::Messenger::mark_down) for the variant that does.
    /// Does nothing to the loopback connection.
    pub fn mark_down(&self) {
        if let Kind::Remote(s) = &self.inner.kind {
            s.mark_down();
        }
    }

    /// Ceph's `mark_disposable`: the session is not re-established after a fault. An open
    /// session goes on until its next fault, which ends it with a Reset event (delivered to
    /// the dispatchers' `handle_reset`), as a lossy session's does; one that is not open
    /// (connecting, waiting, in standby) ends now, without an event. The loopback has no
    /// faults: nothing changes for it.
    pub fn mark_disposable(&self) {
        if let Kind::Remote(s) = &self.inner.kind {
            s.mark_disposable();
        }
    }

    /// The peer's address (the loopback's is the messenger's own).
    pub fn peer_addr(&self) -> EntityAddr {
        match &self.inner.kind {
            Kind::Remote(s) => s.peer_addr(),
            Kind::Loopback(lb) => lb.addr(),
        }
    }

    /// The peer's entity type (the type dialled, or announced by an accepted peer).
    pub fn peer_type(&self) -> EntityType {
        match &self.inner.kind {
            Kind::Remote(s) => s.peer_type(),
            Kind::Loopback(lb) => lb.initial_name().ty,
        }
    }

    /// The peer's entity name, once a message from it arrived (the loopback's is ours).
    pub fn peer_name(&self) -> Option<EntityName> {
        match &self.inner.kind {
            Kind::Remote(s) => s.peer_name(),
            Kind::Loopback(lb) => Some(lb.name()),
        }
    }

    /// Negotiated feature bits (0 before the first handshake).
    pub fn features(&self) -> u64 {
        match &self.inner.kind {
            Kind::Remote(s) => s.features(),
            Kind::Loopback(lb) => lb.features(),
        }
    }

    /// The session's state. The loopback is `Open` until the messenger shuts down.
    pub fn state(&self) -> ConnState {
        match &self.inner.kind {
            Kind::Remote(s) => s.state(),
            Kind::Loopback(lb) if lb.is_closed() => ConnState::Closed,
            Kind::Loopback(_) => ConnState::Open,
        }
    }

    /// Whether the session is alive, as Ceph's `is_connected`: true while it is being
    /// established, open, in standby or waiting; false once it was marked down or failed.
    /// Use [`state`](Self::state) to tell an open socket from the rest.
    pub fn is_connected(&self) -> bool {
        self.state() != ConnState::Closed
    }

    /// When the last KEEPALIVE arrived from the peer.
    pub fn last_keepalive(&self) -> Option<Instant> {
        match &self.inner.kind {
            Kind::Remote(s) => s.last_keepalive(),
            Kind::Loopback(_) => None,
        }
    }

    /// The stamp echoed by the peer's last KEEPALIVE2_ACK (our clock when we sent it).
    pub fn last_keepalive_ack(&self) -> Option<Timespec> {
        match &self.inner.kind {
            Kind::Remote(s) => s.last_keepalive_ack(),
            Kind::Loopback(_) => None,
        }
    }

    /// Resolves with the stamp echoed by the next KEEPALIVE2_ACK handled after this call (our
    /// clock when we sent that keepalive), or fails with [`SessionClosed`] if the session ends
    /// first (marked down, lossy fault, messenger shut down). It subscribes when called, not
    /// when first polled: call it, then [`send_keepalive`](Self::send_keepalive), then await,
    /// and the ack cannot slip by. Wrap it in `tokio::time::timeout` for a deadline: a peer
    /// that never answers (or did not negotiate KEEPALIVE2) leaves it pending while the
    /// session lives.
    ///
    /// The loopback has no socket and no peer to answer: it completes at once with the
    /// current wall-clock stamp (a round trip of zero) while the messenger runs, and fails
    /// with [`SessionClosed`] once it has shut down.
    ///
    /// ```no_run
    /// # async fn f(conn: msgr_core::Connection) -> Result<(), Box<dyn std::error::Error>> {
    /// let acked = conn.keepalive_acked();
    /// conn.send_keepalive();
    /// let stamp = tokio::time::timeout(std::time::Duration::from_secs(5), acked).await??;
    /// # let _ = stamp; Ok(()) }
    /// ```
    pub fn keepalive_acked(
        &self,
    ) -> impl Future<Output = Result<Timespec, SessionClosed>> + Send + 'static {
        let (wait, at_once) = match &self.inner.kind {
            Kind::Remote(s) => (Some(s.keepalive_acked()), Err(SessionClosed)),
            Kind::Loopback(lb) if lb.is_closed() => (None, Err(SessionClosed)),
            Kind::Loopback(_) => (None, Ok(Timespec::now())),
        };
        async move {
            match wait {
                Some(wait) => wait.await,
                None => at_once,
            }
        }
    }

    /// A watch of the session's [`ConnState`], the current state marked as seen: every
    /// change is published in order (a slow watcher sees the latest). `Closed` is final: after
    /// it the channel ends, so `changed().await` fails and `wait_for(..).await` fails unless
    /// the state it waits for is the current one; neither hangs on a closed session.
    ///
    /// The loopback is `Open` until the messenger shuts down, then `Closed`.
    ///
    /// ```no_run
    /// # async fn f(conn: msgr_core::Connection) {
    /// let mut state = conn.watch_state();
    /// let open = state.wait_for(|s| *s == msgr_core::ConnState::Open).await.is_ok();
    /// # let _ = open; }
    /// ```
    pub fn watch_state(&self) -> watch::Receiver<ConnState> {
        match &self.inner.kind {
            Kind::Remote(s) => s.watch_state(),
            Kind::Loopback(lb) => lb.watch_state(),
        }
    }

    /// The session's counters (the loopback counts messages and bytes out and in alike).
    pub fn stats(&self) -> SessionStats {
        match &self.inner.kind {
            Kind::Remote(s) => s.stats(),
            Kind::Loopback(lb) => lb.stats(),
        }
    }

    /// The connection id: the dispatch-queue class; [`LOOPBACK_ID`] for the loopback.
    pub fn id(&self) -> ConnId {
        match &self.inner.kind {
            Kind::Remote(s) => s.id(),
            Kind::Loopback(_) => LOOPBACK_ID,
        }
    }

    /// Whether this is the messenger's loopback connection.
    pub fn is_loopback(&self) -> bool {
        matches!(self.inner.kind, Kind::Loopback(_))
    }

    /// The pipe session behind a remote connection.
    pub fn session(&self) -> Option<&Session> {
        match &self.inner.kind {
            Kind::Remote(s) => Some(s),
            Kind::Loopback(_) => None,
        }
    }

    /// The application's data of this connection: Ceph's `Connection::set_priv` / `get_priv`,
    /// where a server keeps what it knows of the peer (its session, capabilities, counts) and
    /// finds it from each message's [`Received::conn`] in one load, with no map of its own
    /// and no lock shared by every connection's reader.
    ///
    /// Set once ([`AppData::get_or_init`], typically on the peer's first message or in
    /// [`Dispatcher::handle_accept`](crate::Dispatcher::handle_accept)), then the same value
    /// through every handle to the session; what changes over the session's life lives
    /// inside the value (a `Mutex`, atomics). It is dropped with the session's last handle: a
    /// session that ended takes it along, and the next session to the same peer starts
    /// empty; a peer's reset of a lossless session ([`Dispatcher::handle_remote_reset`]) keeps
    /// the session and its data. A value that holds this connection (a reference cycle, as in
    /// Ceph) keeps the session's state alive until the application clears it, e.g. in
    /// [`Dispatcher::handle_reset`](crate::Dispatcher::handle_reset). The loopback connection
    /// has its own slot, shared by all its handles.
    ///
    /// [`Dispatcher::handle_remote_reset`]: crate::Dispatcher::handle_remote_reset
    pub fn app_data(&self) -> &AppData {
        match &self.inner.kind {
            Kind::Remote(s) => s.app_data(),
            Kind::Loopback(lb) => lb.app_data(),
        }
    }

    /// Resolves once the session has ended and all its tasks are gone (the loopback: once the
    /// messenger shuts down).
    pub async fn closed(&self) {
        match &self.inner.kind {
            Kind::Remote(s) => s.closed().await,
            Kind::Loopback(lb) => lb.closed().await,
        }
    }
}

/// The future of [`Connection::send`].
#[must_use = "a send waiting for backpressure queues nothing unless awaited"]
pub struct SendFuture<'a>(Sending<'a>);

enum Sending<'a> {
    Remote(msgr_pipe::session::SendFuture<'a>),
    /// The loopback's result, `None` once taken.
    Done(Option<Result<(), SendError>>),
}

impl Future for SendFuture<'_> {
    type Output = Result<(), SendError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.0 {
            Sending::Remote(f) => Pin::new(f).poll(cx).map_err(map_send),
            Sending::Done(res) => Poll::Ready(res.take().unwrap_or(Ok(()))),
        }
    }
}

fn map_send(e: msgr_pipe::SendError) -> SendError {
    match e {
        msgr_pipe::SendError::Full => SendError::Full,
        _ => SendError::Closed,
    }
}

impl PartialEq for Connection {
    fn eq(&self, other: &Self) -> bool {
        match (&self.inner.kind, &other.inner.kind) {
            (Kind::Remote(a), Kind::Remote(b)) => a == b,
            (Kind::Loopback(a), Kind::Loopback(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl Eq for Connection {}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner.kind {
            Kind::Remote(s) => f
                .debug_struct("Connection")
                .field("id", &s.id())
                .field("peer", &s.peer_addr())
                .field("peer_type", &s.peer_type())
                .finish_non_exhaustive(),
            Kind::Loopback(lb) => f
                .debug_struct("Connection")
                .field("loopback", &lb.initial_name())
                .finish_non_exhaustive(),
        }
    }
}

/// A message received on a connection.
///
/// It holds the permits of the connection policy's inbound throttles (bytes and message
/// count, Ceph's `throttler_bytes` / `throttler_messages`): they are given back when this value
/// is dropped, so an application that keeps messages slows its peers down.
pub struct Received {
    /// The message, with its header, segments and footer.
    pub msg: Message,
    /// The connection it arrived on; reply through it.
    pub conn: Connection,
    /// Policy throttle permits, released on drop.
    pub permits: Permits,
}

impl fmt::Debug for Received {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Received")
            .field("type", &self.msg.header.ty)
            .field("seq", &self.msg.header.seq)
            .field("conn", &self.conn)
            .finish_non_exhaustive()
    }
}

/// The policy throttle permits a [`Received`] message holds (none for loopback messages).
#[derive(Default)]
pub struct Permits {
    /// Dropped by [`Permits`]'s own `Drop`: the usual message holds none, and an empty
    /// `Vec`'s drop glue was a call of 22 instructions per received message (callgrind).
    inner: ManuallyDrop<Vec<ThrottlePermit>>,
}

impl Permits {
    /// The permits `inner`.
    pub(crate) fn new(inner: Vec<ThrottlePermit>) -> Permits {
        Permits {
            inner: ManuallyDrop::new(inner),
        }
    }

    /// Gives the permits back now instead of when the message is dropped.
    pub fn release(&mut self) {
        self.inner.clear();
    }

    /// Units held, summed over the permits (1 message + payload bytes with both throttles).
    pub fn amount(&self) -> u64 {
        self.inner.iter().map(ThrottlePermit::amount).sum()
    }
}

impl Drop for Permits {
    /// Inline: a test of the capacity; the permits (if any) go back out of line.
    #[inline(always)]
    fn drop(&mut self) {
        if self.inner.capacity() != 0 {
            release_all(&mut self.inner);
        }
    }
}

/// Gives back the permits of `v` and frees it (cold: only messages of throttled policies
/// and replies hold any). What is left in `v` allocates nothing, so not dropping it leaks
/// nothing.
#[cold]
#[inline(never)]
fn release_all(v: &mut Vec<ThrottlePermit>) {
    drop(std::mem::take(v));
}

impl fmt::Debug for Permits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permits")
            .field("amount", &self.amount())
            .finish()
    }
}
