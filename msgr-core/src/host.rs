//! [`SessionHost`]: the messenger as its sessions see it — msgr-pipe's [`Host`] — and as
//! its loopback sees it ([`LocalHost`]).
//!
//! ```text
//!  reader tasks --Host::deliver / Host::event--+--> dispatch queue --> dispatcher chain
//!  Loopback::send --LocalHost::deliver_local---+    (a reply to a call goes to its caller)
//!  acceptor / connector --lookup, register-----> registry (peer addr -> Session)
//! ```
//!
//! The host hands out global seqs and policies, keeps the registry of sessions (with a
//! watcher task per registered session, which unregisters it when it ends, keeps its
//! counters in the totals and measures its keepalive round trips), and turns what the
//! sessions and the loopback deliver into [`Received`] messages and connection events for
//! the dispatch queue, or into the replies of waiting calls.
//!
//! What it does not do: listen (the accepter does), bind, rebind, mark down or shut down
//! (the `messenger` facade does), or dispatch (the queue's handler does). It imports the
//! leaf state (`identity`, `policies`, `registry`, `call`, `loopback`), `connection`,
//! `dispatcher`, `queue` and `stats`; nothing imports it but the facade.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use msgr_dispatch::{add_unshared, lock, BorrowedPermit, ConnId, Throttle, ThrottlePermit};
use msgr_pipe::{
    Authorizer, Deliver, Host, Incoming, KeepaliveAcks, PipeConfig, Policy, Session, SessionEvent,
};
use msgr_wire::{EntityAddr, EntityName, EntityType, Message};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::call::Calls;
use crate::connection::{Connection, Permits, Received, LOOPBACK_ID};
use crate::dispatcher::{Chain, EventKind};
use crate::identity::Identity;
use crate::loopback::{LocalHost, Loopback};
use crate::policies::Policies;
use crate::queue::{ConnEvent, Queue, QueueHandler};
use crate::registry::Registry;
use crate::stats;

/// What a messenger's sessions, its accepter and its loopback share: everything the
/// facade does not own alone. Built once by the messenger's builder.
pub(crate) struct SessionHost {
    /// Ourselves, for the watcher tasks `register` spawns.
    pub(crate) me: Weak<SessionHost>,
    /// Our name and address.
    pub(crate) identity: Identity,
    /// The last global seq handed out (Ceph's `global_seq`: one counter per messenger).
    pub(crate) global_seq: Mutex<u32>,
    /// The policy per peer type, and the default.
    pub(crate) policies: Policies,
    /// Bytes of received messages not yet dispatched (`dispatch_throttle_bytes`).
    pub(crate) dispatch_throttle: Throttle,
    /// Builds and verifies authorizers; none: nothing sent, everything accepted.
    pub(crate) authorizer: Option<Arc<dyn Authorizer>>,
    /// The configuration's `pipe` (with the builder's hook), shared by every session.
    pub(crate) pipe: Arc<PipeConfig>,
    /// The registered sessions, ended sessions' counters, keepalive round trips.
    pub(crate) registry: Registry,
    /// The dispatch queue, and its handler over the dispatcher chain.
    pub(crate) queue: Queue,
    pub(crate) handler: Arc<QueueHandler>,
    /// Calls waiting for their reply ([`Connection::call`]).
    pub(crate) calls: Arc<Calls<Received>>,
    /// The connection to ourselves; it holds us weakly, as its [`LocalHost`].
    pub(crate) loopback: Arc<Loopback>,
    /// Cancelled when the messenger shuts down.
    pub(crate) cancel: CancellationToken,
    /// Every task of the messenger: accepter, handshakes, session watchers.
    pub(crate) tracker: TaskTracker,
    /// The messenger's span: its name; its tasks run inside it.
    pub(crate) span: tracing::Span,
}

impl SessionHost {
    /// A connection to `session`.
    pub(crate) fn connection(&self, session: Session) -> Connection {
        Connection::remote(session, Arc::clone(&self.calls))
    }

    /// A reply to a `Connection::call` goes to its caller, holding the dispatch throttle's
    /// permit too until the caller drops it. A call that ended an instant ago hands it back:
    /// it is dispatched, the permit still inside.
    #[inline(never)]
    fn deliver_reply(
        &self,
        session: &Session,
        conn: &Connection,
        incoming: Incoming<'_>,
        tx: oneshot::Sender<Received>,
    ) {
        let Incoming {
            msg,
            mut policy_permits,
            dispatch_permit,
        } = incoming;
        policy_permits.extend(dispatch_permit.map(BorrowedPermit::into_owned));
        let received = Received {
            msg,
            conn: conn.clone(),
            permits: Permits::new(policy_permits),
        };
        if let Err(r) = tx.send(received) {
            if let Some(chain) = self.handler.chain() {
                chain.fast_preprocess(&r);
            }
            let priority = r.msg.header.priority;
            self.queue
                .deliver(session.id(), priority, r, ThrottlePermit::empty());
        }
    }

    /// Hands a received message of `session` (whose connection is `conn`) to its caller, or
    /// the dispatchers (`chain`, `None` once taken): fast-dispatched here, or queued.
    #[inline(always)]
    fn deliver_on(
        &self,
        session: &Session,
        conn: &Connection,
        chain: Option<&Chain>,
        incoming: Incoming<'_>,
        batch: Option<&QueueBatch>,
    ) -> Option<u64> {
        let id = session.id();
        if let Some(tx) = self.calls.take(id, incoming.msg.header.tid) {
            self.deliver_reply(session, conn, incoming, tx);
            return None;
        }
        let priority = incoming.msg.header.priority;
        // Borrowed from the reader's handle on our dispatch throttle: given back right after
        // a fast dispatch without an `Arc` clone; a queued message owns it.
        let permit = incoming.dispatch_permit;
        // Built once; from here on the message is only moved as a local (moving a
        // by-value parameter on, as each layer of the old chain did, copied its ~200
        // bytes: host, dispatch queue, its `dyn Handler`, the chain).
        let received = Received {
            msg: incoming.msg,
            conn: conn.clone(),
            permits: Permits::new(incoming.policy_permits),
        };
        // The queue's `deliver` with the fast dispatch attempt made here (see
        // `DispatchQueue::admit`).
        let Some(chain) = chain else {
            self.queue.deliver(id, priority, received, owned(permit));
            return None;
        };
        chain.fast_preprocess(&received);
        if !self.queue.admit() {
            return None;
        }
        match chain.fast_dispatcher(&received) {
            Some(d) => {
                d.fast_dispatch(received);
                let bytes = permit.as_ref().map_or(0, BorrowedPermit::amount);
                drop(permit);
                Some(bytes)
            }
            None => {
                match batch {
                    Some(b) => b.push(&self.queue, id, priority, received, owned(permit)),
                    None => self.queue.enqueue(id, priority, received, owned(permit)),
                }
                None
            }
        }
    }

    /// The connection to ourselves.
    pub(crate) fn loopback_connection(&self) -> Connection {
        Connection::loopback(Arc::clone(&self.loopback), Arc::clone(&self.calls))
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
                        if let Some(rtt) = stats::rtt_of(stamp) {
                            self.registry.observe_rtt(s.id(), rtt);
                        }
                    }
                    Err(_) => {
                        closed.as_mut().await;
                        break;
                    }
                },
            }
        }
        self.registry.forget_rtt(s.id());
    }

    /// Follows a registered session until it ends, so `wait` covers it, and keeps its
    /// counters in the totals afterwards.
    fn watch(&self, s: Session) {
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
                me.registry.retire(s.stats());
            }
            .instrument(self.span.clone()),
        );
    }
}

impl Host for SessionHost {
    fn my_addr(&self) -> EntityAddr {
        self.identity.addr()
    }

    fn my_addrs(&self) -> Vec<EntityAddr> {
        self.identity.addrs()
    }

    fn learn_addr(&self, seen: &EntityAddr) {
        self.identity.learn_addr(seen);
    }

    fn my_name(&self) -> EntityName {
        self.identity.name()
    }

    fn next_global_seq(&self, at_least: u32) -> u32 {
        let mut g = lock(&self.global_seq);
        *g = (*g).max(at_least).wrapping_add(1);
        *g
    }

    fn policy(&self, peer_type: EntityType) -> Policy {
        self.policies.get(peer_type).clone()
    }

    fn dispatch_throttle(&self) -> Option<Throttle> {
        Some(self.dispatch_throttle.clone())
    }

    fn authorizer(&self) -> Option<Arc<dyn Authorizer>> {
        self.authorizer.clone()
    }

    fn lookup(&self, peer_addr: &EntityAddr) -> Option<Session> {
        self.registry.lookup(peer_addr)
    }

    fn register(&self, session: &Session) -> Result<(), Session> {
        self.registry.insert(session)?;
        self.watch(session.clone());
        Ok(())
    }

    fn unregister(&self, session: &Session) {
        self.registry.remove(session);
    }

    fn deliver(&self, session: &Session, incoming: Incoming<'_>) {
        // A delay stage's messages (fault injection) come this way; a socket's reader
        // delivers through its `SessionDeliver`, whose connection is made once.
        let conn = self.connection(session.clone());
        let guard = self.handler.chain_ref();
        if let Some(bytes) = self.deliver_on(session, &conn, guard.as_deref(), incoming, None) {
            self.queue.count_fast_dispatched(1, bytes);
        }
    }

    fn deliverer(self: Arc<Self>, session: Session) -> Box<dyn Deliver> {
        let conn = self.connection(session.clone());
        let chain = self.handler.chain();
        Box::new(SessionDeliver {
            host: self,
            session,
            conn,
            chain,
            inline: AtomicBool::new(false),
            fast: FastCounts::default(),
            queued: QueueBatch::default(),
        })
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
        let conn = self.connection(session.clone());
        self.queue
            .enqueue_event(session.id(), ConnEvent { conn, kind });
    }

    fn new_conn_id(&self) -> ConnId {
        self.queue.new_conn_id()
    }
}

/// One socket's deliveries ([`Host::deliverer`]): the session's connection made once and
/// cloned into each message (one atomic increment, where building it cost two), and the
/// dispatcher chain held (where reading it under its lock cost two atomic operations per
/// message). The chain never changes until the messenger's `wait` takes it, after every
/// session's tasks, this socket's reader among them, have ended. What one read queues for
/// the dispatch task goes to the queue together ([`QueueBatch`]).
struct SessionDeliver {
    host: Arc<SessionHost>,
    session: Session,
    conn: Connection,
    chain: Option<Arc<Chain>>,
    /// The last message was fast-dispatched ([`Deliver::consumed_inline`]). Written only by
    /// the socket's reader, and only when it changes.
    inline: AtomicBool,
    /// Fast dispatches not yet counted in the dispatch queue's counters: settled once per
    /// read ([`Deliver::read_done`]) and when the reader lets go of this.
    fast: FastCounts,
    /// Messages of the current read queued for the dispatch task, not yet in its queue.
    queued: QueueBatch,
}

/// Most messages a [`QueueBatch`] holds before it hands them over: about a 64-byte
/// stream's read is 1,000 messages, and a batch of 32 takes the queue's lock 32 times less
/// often while holding at most 32 messages' headers (about 8 KiB) per reader.
const QUEUE_BATCH: usize = 32;

/// The messages one reader's deliveries queued for the dispatch task (its dispatchers did
/// not fast-dispatch them), handed to the dispatch queue together
/// ([`DispatchQueue::enqueue_batch`](msgr_dispatch::DispatchQueue::enqueue_batch)): at the
/// end of the read's deliveries ([`Deliver::read_done`], before the reader waits for bytes
/// or for permits, so no message waits here behind a throttle it holds), when
/// [`QUEUE_BATCH`] are gathered, and when the reader lets go of its deliverer. The queue's
/// lock is shared by every connection's reader and the dispatch task: taken for each
/// message, it held a 64-byte stream's queued path to 1.12-1.15 M msgs/s, against
/// 1.63-1.76 M taken once per batch (three alternating runs, 2 vCPUs).
///
/// The messages reach the queue in their order, as they would one by one; the dispatch task
/// sees them up to one read later (a read's deliveries take microseconds). The lock here is
/// the reader's own (never contended). A message gathered when another task resets the
/// session reaches the queue after the reset's `discard`, as one a reader racing the reset
/// queued one by one always could: the window is the read's deliveries, not one message's.
#[derive(Default)]
struct QueueBatch(Mutex<Vec<(u16, Received, ThrottlePermit)>>);

impl QueueBatch {
    /// Adds a message of class `conn` at `priority`; hands the batch over once it is full.
    fn push(
        &self,
        queue: &Queue,
        conn: ConnId,
        priority: u16,
        received: Received,
        permit: ThrottlePermit,
    ) {
        let mut b = lock(&self.0);
        b.push((priority, received, permit));
        if b.len() >= QUEUE_BATCH {
            queue.enqueue_batch(conn, &mut b);
        }
    }

    /// Hands what is gathered to `queue` (class `conn`; nothing if it is empty).
    fn flush(&self, queue: &Queue, conn: ConnId) {
        queue.enqueue_batch(conn, &mut lock(&self.0));
    }
}

/// Messages fast-dispatched by one reader and their permits' bytes, not yet counted.
/// Atomics only to be `Sync`: the reader alone writes them, so each update is a load and a
/// store, no read-modify-write.
#[derive(Default)]
struct FastCounts {
    messages: AtomicU64,
    bytes: AtomicU64,
}

impl FastCounts {
    fn add(&self, bytes: u64) {
        add_unshared(&self.messages, 1);
        add_unshared(&self.bytes, bytes);
    }

    /// What was counted since the last call, zeroed.
    fn take(&self) -> (u64, u64) {
        let take = |c: &AtomicU64| {
            let n = c.load(Ordering::Relaxed);
            if n != 0 {
                c.store(0, Ordering::Relaxed);
            }
            n
        };
        (take(&self.messages), take(&self.bytes))
    }
}

impl SessionDeliver {
    /// Hands the queued messages gathered to the dispatch queue, and counts the fast
    /// dispatches not yet counted.
    fn settle(&self) {
        self.queued.flush(&self.host.queue, self.session.id());
        let (messages, bytes) = self.fast.take();
        if messages != 0 {
            self.host.queue.count_fast_dispatched(messages, bytes);
        }
    }
}

impl Deliver for SessionDeliver {
    fn deliver(&self, incoming: Incoming<'_>) {
        let chain = self.chain.as_deref();
        let fast = self.host.deliver_on(
            &self.session,
            &self.conn,
            chain,
            incoming,
            Some(&self.queued),
        );
        if let Some(bytes) = fast {
            self.fast.add(bytes);
        }
        let inline = fast.is_some();
        if self.inline.load(Ordering::Relaxed) != inline {
            self.inline.store(inline, Ordering::Relaxed);
        }
    }

    fn consumed_inline(&self) -> bool {
        self.inline.load(Ordering::Relaxed)
    }

    fn read_done(&self) {
        self.settle();
    }
}

impl Drop for SessionDeliver {
    fn drop(&mut self) {
        self.settle();
    }
}

/// A received message's dispatch permit, made the queue's own.
fn owned(permit: Option<BorrowedPermit<'_>>) -> ThrottlePermit {
    permit.map_or_else(ThrottlePermit::empty, BorrowedPermit::into_owned)
}

impl LocalHost for SessionHost {
    fn name(&self) -> EntityName {
        self.identity.name()
    }

    fn addr(&self) -> EntityAddr {
        self.identity.addr()
    }

    fn deliver_local(&self, msg: Message, replies: bool) {
        let priority = msg.header.priority;
        let mut received = Received {
            msg,
            conn: self.loopback_connection(),
            permits: Permits::default(),
        };
        if replies {
            let tid = received.msg.header.tid;
            match self.calls.complete(LOOPBACK_ID, tid, received) {
                Ok(()) => return,
                Err(r) => received = r,
            }
        }
        self.queue
            .local_delivery(priority, received, ThrottlePermit::empty());
    }
}
