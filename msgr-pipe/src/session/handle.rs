//! The public face of [`Session`]: constructors, sending, state and counters.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use msgr_dispatch::{ConnId, Throttle, ThrottlePermit};
use msgr_wire::{EntityAddr, EntityName, EntityType, Message, Timespec};
use rand::rngs::SmallRng;
use rand::SeedableRng;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{
    acceptor, connector, core_config, Counters, Inner, KeepaliveAcks, Link, NewSession, Session,
    SessionClosed, SessionStats, Shared, Watchers,
};
use crate::config::PipeConfig;
use crate::core::{ConnState, Outgoing, SessionCore};
use crate::error::{HandshakeFailure, PipeError, SendError};
use crate::host::{Host, Incoming, SessionEvent};
use crate::inject::{self, mix_seed};
use crate::policy::Policy;
use crate::transport::Transport;
use crate::v1::V1State;

impl Session {
    pub(crate) fn create(p: NewSession) -> Session {
        let rng = SmallRng::seed_from_u64(mix_seed(p.config.inject.seed, &p.id.to_le_bytes()));
        let core = SessionCore::new(
            p.phase,
            p.policy.lossy,
            core_config(&p.config, &p.policy),
            rng,
        );
        let (watchers, state_rx, ack_rx) = Watchers::new(p.phase);
        let inner = Arc::new_cyclic(|weak: &Weak<Inner>| {
            let weak = weak.clone();
            let delay = inject::delay_stage(&p.config.inject, p.id, move |inc: Incoming| {
                if let Some(inner) = weak.upgrade() {
                    inner.host.deliver(&inner.session(), inc);
                }
            });
            Inner {
                id: p.id,
                send_throttle: Throttle::new(p.config.max_pending_bytes),
                host: p.host,
                config: p.config,
                peer_addr: p.peer_addr,
                peer_type: p.peer_type,
                policy: p.policy,
                inbox: super::inbox::Inbox::default(),
                shared: Mutex::new(Shared {
                    core,
                    v1: V1State::default(),
                    v2: super::v2::V2Ids::default(),
                    link: Link {
                        epoch: 0,
                        socket: None,
                        attempt: None,
                        attempt_gen: 0,
                        replacing: false,
                        peer_name: None,
                        sockets: 0,
                        auth: (0, false),
                        con_mode: None,
                    },
                    watchers,
                }),
                deliver_lock: Mutex::new(()),
                driver_wake: Notify::new(),
                attempt_end: Notify::new(),
                ended: AtomicBool::new(false),
                handed_out: AtomicBool::new(false),
                blocked_senders: AtomicUsize::new(0),
                ack_requests: AtomicU64::new(0),
                closed: CancellationToken::new(),
                tracker: TaskTracker::new(),
                counters: Counters::default(),
                delay,
                state_rx,
                ack_rx,
                handshake_failure: watch::channel(None).0,
                app_data: crate::app_data::AppData::default(),
            }
        });
        Session { inner }
    }

    /// Spawns the driver task (once the session is registered).
    pub(crate) fn start(&self) {
        let d = self.inner.clone();
        let span = tracing::debug_span!("session", conn = d.id, peer = %d.peer_addr, peer_type = %d.peer_type);
        self.inner
            .tracker
            .spawn(tracing::Instrument::instrument(connector::run(d), span));
    }

    /// Starts an outgoing session to `peer_addr` and registers it with the host. If the host
    /// already has a session for that address, that one is returned instead and nothing
    /// starts. Must be called inside a tokio runtime, without holding the host's map lock
    /// (it calls [`Host::register`]).
    pub fn connect(
        host: Arc<dyn Host>,
        peer_addr: EntityAddr,
        peer_type: EntityType,
        config: PipeConfig,
    ) -> Session {
        Self::connect_shared(host, peer_addr, peer_type, Arc::new(config))
    }

    /// [`Session::connect`] with a shared config.
    pub fn connect_shared(
        host: Arc<dyn Host>,
        peer_addr: EntityAddr,
        peer_type: EntityType,
        config: Arc<PipeConfig>,
    ) -> Session {
        if let Some(s) = host.lookup(&peer_addr) {
            if s.state() != ConnState::Closed {
                s.inner.handed_out.store(true, Ordering::Release);
                return s;
            }
        }
        let policy = host.policy(peer_type);
        let id = host.new_conn_id();
        let s = Session::create(NewSession {
            host: host.clone(),
            config,
            peer_addr,
            peer_type,
            policy,
            phase: ConnState::Connecting,
            id,
        });
        match host.register(&s) {
            Ok(()) => {
                s.start();
                s
            }
            Err(existing) => {
                s.inner.discard_unregistered();
                existing.inner.handed_out.store(true, Ordering::Release);
                existing
            }
        }
    }

    /// Runs the acceptor handshake on a new socket and attaches it to a new or an existing
    /// session (replacing or racing per the spec's table 5.3). Returns the session once it is
    /// open. `socket_peer` is the socket's remote address (substituted for a blank IP).
    pub async fn accept<S: Transport>(
        host: Arc<dyn Host>,
        stream: S,
        socket_peer: SocketAddr,
        config: PipeConfig,
    ) -> Result<Session, PipeError> {
        acceptor::accept(host, Box::new(stream), socket_peer, Arc::new(config), false).await
    }

    /// [`Session::accept`] with a shared config.
    pub async fn accept_shared<S: Transport>(
        host: Arc<dyn Host>,
        stream: S,
        socket_peer: SocketAddr,
        config: Arc<PipeConfig>,
    ) -> Result<Session, PipeError> {
        acceptor::accept(host, Box::new(stream), socket_peer, config, false).await
    }

    /// [`Session::accept_shared`] for a socket accepted on a msgr2 listener: the msgr2
    /// acceptor handshake (authorizer mode through the host's hook, crc or secure as
    /// [`PipeConfig::con_modes`] allows), then the session rules of v1's table 5.3.
    pub async fn accept_v2<S: Transport>(
        host: Arc<dyn Host>,
        stream: S,
        socket_peer: SocketAddr,
        config: Arc<PipeConfig>,
    ) -> Result<Session, PipeError> {
        acceptor::accept(host, Box::new(stream), socket_peer, config, true).await
    }

    /// What `msg` counts against `max_pending_bytes`: its payload and
    /// [`MESSAGE_OVERHEAD`](crate::MESSAGE_OVERHEAD).
    fn permit_size(&self, msg: &Message) -> u64 {
        let size = msg.front.len() + msg.middle.len() + msg.data.len();
        u64::try_from(size)
            .unwrap_or(u64::MAX)
            .saturating_add(crate::MESSAGE_OVERHEAD)
    }

    /// The session's default priority for a message that has none.
    fn prepare(&self, msg: &mut Message) {
        if msg.header.priority == 0 {
            msg.header.priority = self.inner.config.default_priority;
        }
    }

    /// Queues a message, waiting while the session holds `max_pending_bytes` of queued and
    /// unacknowledged messages (payload plus [`MESSAGE_OVERHEAD`](crate::MESSAGE_OVERHEAD)
    /// each). Fails only if the session has ended.
    ///
    /// When the permit is free now (and nobody waits for one, so FIFO holds), the message is
    /// queued by this call, before the future is polled: it is not moved into a future
    /// (a `Message` is about 200 bytes, and each layer of `async fn` holding it cost a copy
    /// per message). The future then only spends the task's cooperative budget (one unit,
    /// or a quarter of one for a small message, see [`SMALL_SENDS_PER_UNIT`]), so a send
    /// loop that never waits still yields to the scheduler once the budget is spent and
    /// cannot starve the session's own tasks. Otherwise the future waits in line for the
    /// permit when polled, and queues the message then.
    pub fn send(&self, mut msg: Message) -> SendFuture<'_> {
        if self.inner.ended.load(Ordering::Acquire) {
            return SendFuture::done(Err(SendError::Closed));
        }
        let size = self.permit_size(&msg);
        match self.inner.send_throttle.try_acquire(size) {
            Some(permit) => {
                self.prepare(&mut msg);
                let small = size <= SMALL_SEND;
                SendFuture(SendState::Done(
                    Some(self.inner.queue(Outgoing::new(msg, Some(permit)))),
                    small,
                ))
            }
            None => SendFuture(SendState::Wait(Box::pin(async move {
                let permit = self.wait_permit(size).await?;
                self.prepare(&mut msg);
                self.inner.queue(Outgoing::new(msg, Some(permit)))
            }))),
        }
    }

    /// Waits in line for a `max_pending_bytes` permit of `size` (in the boxed future of
    /// [`send`](Self::send)'s slow path: the common case never waits).
    async fn wait_permit(&self, size: u64) -> Result<ThrottlePermit, SendError> {
        // Out of budget: ask the writer to have the peer acknowledge what it has (see
        // `Inner::blocked_senders`), for as long as this send waits.
        let inner = &self.inner;
        inner.blocked_senders.fetch_add(1, Ordering::AcqRel);
        let _waiting = scopeguard(|| {
            inner.blocked_senders.fetch_sub(1, Ordering::AcqRel);
        });
        inner.ack_requests.fetch_add(1, Ordering::AcqRel);
        inner.wake_writer();
        tokio::select! {
            p = inner.send_throttle.acquire(size) => Ok(p),
            _ = inner.closed.cancelled() => Err(SendError::Closed),
        }
    }

    /// Queues a message if `max_pending_bytes` allows it now; [`SendError::Full`] otherwise.
    pub fn try_send(&self, mut msg: Message) -> Result<(), SendError> {
        if self.inner.ended.load(Ordering::Acquire) {
            return Err(SendError::Closed);
        }
        let size = self.permit_size(&msg);
        let permit = self
            .inner
            .send_throttle
            .try_acquire(size)
            .ok_or(SendError::Full)?;
        self.prepare(&mut msg);
        self.inner.queue(Outgoing::new(msg, Some(permit)))
    }

    /// Queues a message without waiting, even beyond `max_pending_bytes` (its bytes are still
    /// counted, so later `send`s wait for them). For callers that must not wait, e.g. a reply
    /// sent from inside a dispatch callback.
    ///
    /// Like [`send`](Self::send)'s fast path, inlined into its caller: each by-value call
    /// layer copies the whole message (about 200 bytes).
    #[inline]
    pub fn queue(&self, mut msg: Message) -> Result<(), SendError> {
        if self.inner.ended.load(Ordering::Acquire) {
            return Err(SendError::Closed);
        }
        let permit = self.inner.send_throttle.take(self.permit_size(&msg));
        self.prepare(&mut msg);
        self.inner.queue(Outgoing::new(msg, Some(permit)))
    }

    /// Asks for a keepalive (KEEPALIVE2 if negotiated). Does not wake a standby session.
    pub fn send_keepalive(&self) {
        let mut sh = self.inner.lock();
        if sh.core.phase() == ConnState::Closed {
            return;
        }
        sh.core.queue_keepalive();
        if let Some(s) = &sh.link.socket {
            s.wake.notify_one();
        }
    }

    /// Ceph's `mark_disposable`: the session is not re-established after a fault. An open
    /// session goes on until its next fault, which ends it with a Reset event, as a lossy
    /// session's does (what was sent and not acknowledged is lost then); a session that is not
    /// open (connecting, waiting, in standby) ends now, without an event.
    pub fn mark_disposable(&self) {
        let close_now = {
            let mut sh = self.inner.lock();
            match sh.core.phase() {
                ConnState::Open => !sh.core.mark_disposable(),
                ConnState::Closed => false,
                _ => true,
            }
        };
        if close_now {
            self.mark_down();
        }
    }

    /// Ends the session now: the socket is shut, queued messages are dropped, the session is
    /// unregistered. No event is delivered (Ceph's `mark_down(Connection)`).
    pub fn mark_down(&self) {
        self.inner.close(None);
    }

    /// Ends the session like [`Session::mark_down`], delivering a Reset event (Ceph's
    /// `mark_down(addr)`).
    pub fn mark_down_with_reset(&self) {
        self.inner.close(Some(SessionEvent::Reset));
    }

    /// Fails the current socket as an I/O error would (tests: Ceph's "drop the connection").
    #[doc(hidden)]
    pub fn kill_socket(&self) {
        let epoch = self.inner.lock().link.socket.as_ref().map(|s| s.epoch);
        if let Some(epoch) = epoch {
            let err = PipeError::Io(std::io::Error::other("socket killed"));
            self.inner.socket_fault(epoch, &err);
        }
    }

    /// The session's state.
    pub fn state(&self) -> ConnState {
        self.inner.lock().core.phase()
    }

    /// The peer's address (the key the session is registered under).
    pub fn peer_addr(&self) -> EntityAddr {
        self.inner.peer_addr
    }

    /// The peer's entity type.
    pub fn peer_type(&self) -> EntityType {
        self.inner.peer_type
    }

    /// The peer's entity name, once a message from it arrived.
    pub fn peer_name(&self) -> Option<EntityName> {
        self.inner.lock().link.peer_name
    }

    /// Negotiated features (0 before the first handshake).
    pub fn features(&self) -> u64 {
        self.inner.lock().core.features()
    }

    /// Whether the session is lossy (the connector learns it from the acceptor's reply).
    pub fn is_lossy(&self) -> bool {
        self.inner.lock().core.is_lossy()
    }

    /// How the current (or last) socket was authenticated: the authorizer protocol
    /// (`CEPH_AUTH_NONE` 1, `CEPH_AUTH_CEPHX` 2; 0 when none was exchanged) and whether its
    /// messages are signed and checked.
    pub fn auth(&self) -> (u32, bool) {
        self.inner.lock().link.auth
    }

    /// The msgr2 connection mode of the current socket (crc, or secure: AES-128-GCM on
    /// every frame); `None` for a v1 session or before the first handshake.
    pub fn con_mode(&self) -> Option<crate::config::ConMode> {
        self.inner.lock().link.con_mode
    }

    /// The policy the session was created with.
    pub fn policy(&self) -> &Policy {
        &self.inner.policy
    }

    /// When the last KEEPALIVE / KEEPALIVE2 arrived.
    pub fn last_keepalive(&self) -> Option<Instant> {
        self.inner
            .lock()
            .core
            .last_keepalive()
            .map(Instant::from_std)
    }

    /// The stamp echoed by the last KEEPALIVE2_ACK: our clock when we sent that keepalive.
    pub fn last_keepalive_ack(&self) -> Option<Timespec> {
        self.inner.lock().core.last_keepalive_ack()
    }

    /// Subscribes to the KEEPALIVE2_ACKs handled from now on (subscribe before
    /// [`send_keepalive`](Session::send_keepalive) so the ack cannot slip by). Once the session
    /// has ended, [`KeepaliveAcks::next`] fails with [`SessionClosed`].
    pub fn keepalive_acks(&self) -> KeepaliveAcks {
        let mut rx = self.inner.ack_rx.clone();
        rx.mark_unchanged();
        KeepaliveAcks { rx }
    }

    /// Resolves with the stamp of the next KEEPALIVE2_ACK handled after this call (not after
    /// the first poll: call it, then [`send_keepalive`](Session::send_keepalive), then await),
    /// or with [`SessionClosed`] if the session ends first. Wrap it in
    /// `tokio::time::timeout` for a deadline.
    ///
    /// ```no_run
    /// # async fn f(s: msgr_pipe::Session) -> Result<(), msgr_pipe::session::SessionClosed> {
    /// let acked = s.keepalive_acked();
    /// s.send_keepalive();
    /// let stamp = acked.await?;
    /// # let _ = stamp; Ok(()) }
    /// ```
    pub fn keepalive_acked(
        &self,
    ) -> impl std::future::Future<Output = Result<Timespec, SessionClosed>> + Send + 'static {
        let mut acks = self.keepalive_acks();
        async move { acks.next().await }
    }

    /// A watch of the session's [`ConnState`]: every phase change is published, in order
    /// (a slow watcher sees the latest), the current state marked as seen. `Closed` is final:
    /// after it, `changed()` fails, so `rx.changed().await` / `rx.wait_for(..).await` never
    /// hang on a closed session (`wait_for` checks the current state first).
    pub fn watch_state(&self) -> watch::Receiver<ConnState> {
        let mut rx = self.inner.state_rx.clone();
        rx.mark_unchanged();
        rx
    }

    /// A watch of the last failed outgoing handshake attempt (`None` until one fails): the
    /// error (the peer's answer for a refusal, [`PipeError::is_refusal`]), whether the
    /// session gave up, and the count of failures. Attempts superseded or ended by the
    /// session's own close are not published. The retry rules are the policy's; this only
    /// tells why, so that a tool can stop at a refusal the session would retry (a wrong
    /// address or a bad banner) and say what the peer answered.
    ///
    /// [`PipeError::is_refusal`]: crate::PipeError::is_refusal
    pub fn handshake_failures(&self) -> watch::Receiver<Option<HandshakeFailure>> {
        self.inner.handshake_failure.subscribe()
    }

    /// Counters.
    pub fn stats(&self) -> SessionStats {
        let c = &self.inner.counters;
        let (queued, unacked, resends) = {
            let sh = self.inner.lock();
            (
                sh.core.queued_len() as u64,
                sh.core.unacked_len() as u64,
                sh.core.resent(),
            )
        };
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        SessionStats {
            msgs_in: get(&c.msgs_in),
            bytes_in: get(&c.bytes_in),
            msgs_out: get(&c.msgs_out),
            bytes_out: get(&c.bytes_out),
            resends,
            acks_in: get(&c.acks_in),
            acks_out: get(&c.acks_out),
            faults: get(&c.faults),
            reconnects: get(&c.handshakes).saturating_sub(1),
            queued,
            unacked,
        }
    }

    /// Write batches the session's readers sent themselves, from their own task, at the end
    /// of a run of deliveries (replies queued from fast dispatch): no hop to the writer
    /// task. For tests and diagnostics.
    #[doc(hidden)]
    pub fn inline_writes(&self) -> u64 {
        self.inner.counters.inline_writes.load(Ordering::Relaxed)
    }

    /// How many times the messages queued through the session's inbox were moved into its
    /// core (each move takes all it holds): a read whose deliveries queue replies moves them
    /// once, when its deliveries end. For tests and diagnostics.
    #[doc(hidden)]
    pub fn inbox_drains(&self) -> u64 {
        self.inner.inbox.drains()
    }

    /// Sequence numbers `(out_seq, in_seq, connect_seq)`, for tests and diagnostics.
    pub fn seqs(&self) -> (u64, u64, u32) {
        let sh = self.inner.lock();
        (sh.core.out_seq(), sh.core.in_seq(), sh.v1.connect_seq())
    }

    /// Payload bytes currently counted against `max_pending_bytes`.
    pub fn pending_bytes(&self) -> u64 {
        self.inner.send_throttle.current()
    }

    /// The session's connection id.
    pub fn id(&self) -> ConnId {
        self.inner.id
    }

    /// The application's data of this session (Ceph's `Connection::get_priv`): set once,
    /// then read from every handle to the session without a lock; dropped with the session's
    /// last handle. A session that ended takes it along (the next session to the same peer
    /// starts empty); a peer's reset of a lossless session keeps the session, and so the
    /// data (clear what a reset invalidates inside the value, as Ceph's dispatchers do in
    /// `ms_handle_remote_reset`).
    pub fn app_data(&self) -> &crate::app_data::AppData {
        &self.inner.app_data
    }

    /// Resolves once the session has ended and all its tasks are gone.
    pub async fn closed(&self) {
        self.inner.closed.cancelled().await;
        self.inner.tracker.wait().await;
    }

    /// True once the session has ended.
    pub fn is_closed(&self) -> bool {
        self.inner.ended.load(Ordering::Acquire) || self.state() == ConnState::Closed
    }
}

/// Runs `f` when dropped (also when the future holding it is cancelled).
fn scopeguard<F: FnOnce()>(f: F) -> impl Drop {
    struct Guard<F: FnOnce()>(Option<F>);
    impl<F: FnOnce()> Drop for Guard<F> {
        fn drop(&mut self) {
            if let Some(f) = self.0.take() {
                f();
            }
        }
    }
    Guard(Some(f))
}

/// The permit size (payload plus [`MESSAGE_OVERHEAD`](crate::MESSAGE_OVERHEAD)) up to which
/// a message queued at once spends only part of a unit of cooperative budget: a payload of
/// at most 512 bytes, the writer's small-message size.
const SMALL_SEND: u64 = 512 + crate::MESSAGE_OVERHEAD;

/// Small messages queued at once spend one unit of the task's cooperative budget per this
/// many sends on a thread, where every other send spends one.
///
/// A send loop that never waits yields to the scheduler when its budget (tokio's 128 units)
/// is spent, and only then does the writer task, woken onto the same worker by the first
/// message, take what was queued: one write, and on the peer one read and one ACK, per
/// budget's worth of messages. At a unit per 64-byte message that was 128 messages (17 KB)
/// per write, a 9-byte ACK back for about every one of them, and the rate bound by these
/// per-batch costs (system calls, wake-ups, the ACK's release), not by the messages. At a
/// quarter of a unit, 512 small messages go per write: the 64 B stream's CPU per message fell
/// by 11 % (medians of 6 alternating runs of 3,000,000 messages: 461 to 412 ns, lower in every
/// pair; msgr2 crc 541 to 487 ns), its writes from 26,500 to 7,000 and its context switches
/// from 8,300 to 2,500. The loop still yields, after 512 small sends instead of 128: about
/// 100 µs of queueing at the 64 B stream's rate.
const SMALL_SENDS_PER_UNIT: u32 = 4;

thread_local! {
    /// Small sends completed at once on this thread (see [`SMALL_SENDS_PER_UNIT`]).
    static SMALL_SENDS: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Counts a small send on this thread; true when it is the one to spend a unit of budget.
#[inline]
fn small_send_spends() -> bool {
    SMALL_SENDS.with(|n| {
        let v = n.get().wrapping_add(1);
        n.set(v);
        v % SMALL_SENDS_PER_UNIT == 0
    })
}

/// The future of [`Session::send`]: the result of a send queued when it was called (after its
/// share of the task's cooperative budget), or the wait for a permit and the queueing after it.
#[must_use = "a send waiting for its permit queues nothing unless awaited"]
pub struct SendFuture<'a>(SendState<'a>);

enum SendState<'a> {
    /// Queued (or refused) by the call; `None` once the result is taken. True for a small
    /// message (see [`SMALL_SENDS_PER_UNIT`]).
    Done(Option<Result<(), SendError>>, bool),
    /// Waiting in line for a permit.
    Wait(crate::hook::BoxFuture<'a, Result<(), SendError>>),
}

impl SendFuture<'_> {
    fn done(res: Result<(), SendError>) -> Self {
        SendFuture(SendState::Done(Some(res), false))
    }
}

impl std::future::Future for SendFuture<'_> {
    type Output = Result<(), SendError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        match &mut self.0 {
            SendState::Done(res, small) => {
                if !*small || small_send_spends() {
                    let restore = std::task::ready!(tokio::task::coop::poll_proceed(cx));
                    restore.made_progress();
                }
                // Polled again after completion (a caller's bug): nothing more was sent.
                std::task::Poll::Ready(res.take().unwrap_or(Ok(())))
            }
            SendState::Wait(fut) => fut.as_mut().poll(cx),
        }
    }
}
