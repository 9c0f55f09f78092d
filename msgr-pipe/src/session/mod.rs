//! The drivers of a [`Session`]: they move bytes and time in and out of the session's
//! sans-IO state ([`SessionCore`] and msgr v1's [`V1State`], under one lock).
//!
//! # Tasks
//! Each session has a *connector* task (outgoing attempts, backoff, standby and wait:
//! `connector.rs`) and, while a socket is attached, a *reader* (bytes into the v1 decoder,
//! frames into the core, accepted messages to the host: `reader.rs`) and a *writer* (what
//! [`SessionCore::poll_transmit`] gives, through the v1 encoder, onto the socket:
//! `writer.rs`). What the reader's deliveries queue, the reader writes itself when the
//! writer task is idle (the inline-reply path, behind `writer::Pen`). The acceptor handshake
//! runs on the accepting task (`acceptor.rs`). Every attached socket has an *epoch*; a task
//! whose epoch is no longer the session's current one exits, and its fault reports are
//! ignored.
//!
//! Not here: protocol rules. Sequence numbers, ACK policy, timers, fault and backoff
//! decisions are the core's ([`crate::core`]); the handshake tables and v1's counters are
//! the dialect's ([`crate::v1`]).
//!
//! # Locks
//! * `Inner::shared` (a `std::sync::Mutex`) guards the core, the dialect state and the socket
//!   link. It is held for short, non-blocking sections only, never across an `.await`, and
//!   never while calling a [`Host`] method. Every acquisition (`Inner::lock`) first moves
//!   what the senders submitted into the core (but the reader's ACKs and idle step, which
//!   do not look at the out queues: `Inner::lock_undrained`).
//! * `Inner::inbox` (`inbox.rs`): where senders queue their messages beside the session lock
//!   while a socket's tasks run, so that a sender never waits behind the writer staging a
//!   batch. Order: `shared` before the inbox's lock, never the reverse.
//! * `Inner::deliver_lock` serialises deliveries of one session (so a reader of a replaced
//!   socket cannot deliver after the reader of the new one). Order: `deliver_lock` before
//!   `shared`; `Host::deliver` is called with `deliver_lock` held but not `shared`.
//! * Across sessions: at most one session's `shared` lock is held at a time. The acceptor
//!   locks an existing session only after `Host::lookup` returned, and calls
//!   `Host::register` / `Host::unregister` / `Host::event` with no session lock held.
//!
//! # Watchers
//! [`Session::watch_state`] and [`Session::keepalive_acks`] are `tokio::sync::watch`
//! channels whose senders live in `Shared`, under the session lock. `Inner::lock` returns a
//! guard that, when dropped, publishes the core's events ([`SessionCore::poll_event`]):
//! every phase change, wherever it happens, is published, in order, with no `.await` and no
//! [`Host`] call under the lock. `Closed` is final: publishing it drops both senders, which
//! ends every waiter.

mod acceptor;
mod connector;
mod handle;
mod handshake_io;
mod inbox;
mod reader;
mod v2;
mod writer;

pub use handle::SendFuture;

use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use msgr_dispatch::{ConnId, Throttle};
use msgr_wire::{EntityAddr, EntityName, EntityType, Timespec};
use tokio::sync::{watch, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::PipeConfig;
use crate::core::{
    ConnState, CoreConfig, Event, FaultAction, FaultCause, FaultPolicy, Outgoing, SessionCore,
};
use crate::error::{HandshakeFailure, PipeError, SendError};
use crate::host::{Deliver, Host, Incoming, MessageSigner, SessionEvent};
use crate::inject::{self, internal_delay, mix_seed, DelayStage};
use crate::policy::Policy;
use crate::transport::BoxTransport;
use crate::v1::codec::wants_preseal;
use crate::v1::V1State;

/// Counters of one session.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionStats {
    /// Messages delivered to the host.
    pub msgs_in: u64,
    /// Payload bytes delivered.
    pub bytes_in: u64,
    /// Messages written (resends included).
    pub msgs_out: u64,
    /// Payload bytes written.
    pub bytes_out: u64,
    /// Messages written again after a reconnect.
    pub resends: u64,
    /// ACK frames received.
    pub acks_in: u64,
    /// ACK frames sent.
    pub acks_out: u64,
    /// Socket faults.
    pub faults: u64,
    /// Successful handshakes after the first.
    pub reconnects: u64,
    /// Messages queued, not yet written.
    pub queued: u64,
    /// Messages written, not yet acknowledged.
    pub unacked: u64,
}

#[derive(Default)]
struct Counters {
    /// Written only by a reader holding `Inner::deliver_lock` ([`bump_delivered`]).
    msgs_in: AtomicU64,
    /// Written only by a reader holding `Inner::deliver_lock` ([`bump_delivered`]).
    bytes_in: AtomicU64,
    msgs_out: AtomicU64,
    bytes_out: AtomicU64,
    acks_in: AtomicU64,
    acks_out: AtomicU64,
    faults: AtomicU64,
    handshakes: AtomicU64,
    /// Batches the reader wrote itself at the end of its deliveries (`writer::end_delivery`).
    inline_writes: AtomicU64,
}

fn bump(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// [`bump`] for a counter only the reader holding `Inner::deliver_lock` writes: that lock
/// orders the writers (a replaced socket's reader and the new one's), so
/// [`add_unshared`](msgr_dispatch::add_unshared) cannot lose an update, and the reader pays
/// no locked read-modify-write per message received.
fn bump_delivered(c: &AtomicU64, n: u64) {
    msgr_dispatch::add_unshared(c, n);
}

/// The socket currently attached (or being handshaken by the acceptor).
struct SocketSlot {
    epoch: u64,
    cancel: CancellationToken,
    wake: Arc<Notify>,
    /// The reader is delivering messages: what is queued meanwhile (a reply from fast
    /// dispatch, say) does not wake the writer task; the reader sends it itself when the
    /// deliveries end, before it waits for anything (`writer::end_delivery`). The inbox
    /// keeps the senders' copy ([`inbox::Inbox::begin_delivery`]); this one spares the
    /// reader its lock for every message of a run.
    delivering: bool,
}

impl SocketSlot {
    /// The reader accepted a message to deliver: a run of deliveries starts, if it had not.
    fn begin_delivery(&mut self, inbox: &inbox::Inbox) {
        if !self.delivering {
            self.delivering = true;
            inbox.begin_delivery(self.epoch);
        }
    }
}

/// Transport bookkeeping next to the protocol state.
struct Link {
    /// Last epoch handed out.
    epoch: u64,
    socket: Option<SocketSlot>,
    /// The outgoing attempt in progress, and its generation.
    attempt: Option<(u64, CancellationToken)>,
    attempt_gen: u64,
    /// An incoming socket is replacing (or opening) this session.
    replacing: bool,
    /// The peer's entity name, from received messages.
    peer_name: Option<EntityName>,
    /// Sockets attached so far (seeds fault injection).
    sockets: u64,
    /// How the current socket was authenticated: the authorizer protocol
    /// (`CEPH_AUTH_NONE` or `CEPH_AUTH_CEPHX`; 0 without one) and whether its messages are
    /// signed and checked.
    auth: (u32, bool),
    /// msgr2: the current socket's connection mode (`None` on v1).
    con_mode: Option<crate::config::ConMode>,
}

struct Shared {
    /// The protocol-neutral session.
    core: SessionCore,
    /// msgr v1's part of it (its counters serve msgr2 sessions too).
    v1: V1State,
    /// msgr2's cookies of it.
    v2: v2::V2Ids,
    link: Link,
    watchers: Watchers,
}

/// The senders behind [`Session::watch_state`] and [`Session::keepalive_acks`]; `None` once
/// the session is closed (dropping them ends every waiter).
struct Watchers {
    state: Option<watch::Sender<ConnState>>,
    keepalive_ack: Option<watch::Sender<Option<Timespec>>>,
}

impl Watchers {
    /// New channels starting at `phase`, and a receiver of each (the templates `Inner` keeps).
    fn new(
        phase: ConnState,
    ) -> (
        Watchers,
        watch::Receiver<ConnState>,
        watch::Receiver<Option<Timespec>>,
    ) {
        let (state, state_rx) = watch::channel(phase);
        let (ack, ack_rx) = watch::channel(None);
        let w = Watchers {
            state: Some(state),
            keepalive_ack: Some(ack),
        };
        (w, state_rx, ack_rx)
    }
}

impl Shared {
    /// Publishes the core's events: phases to [`Session::watch_state`] watchers (`Closed`,
    /// final, also closes both channels), keepalive acks to [`Session::keepalive_acks`].
    fn publish_events(&mut self) {
        while let Some(ev) = self.core.poll_event() {
            match ev {
                Event::Phase(phase) => {
                    if let Some(tx) = &self.watchers.state {
                        tx.send_replace(phase);
                    }
                    if phase == ConnState::Closed {
                        self.watchers.state = None;
                        self.watchers.keepalive_ack = None;
                    }
                }
                Event::KeepaliveAck(stamp) => {
                    if let Some(tx) = &self.watchers.keepalive_ack {
                        tx.send_replace(Some(stamp));
                    }
                }
            }
        }
    }
}

/// The session lock held. Dropping it publishes the core's events (see the module docs).
struct Locked<'a> {
    guard: MutexGuard<'a, Shared>,
}

impl Deref for Locked<'_> {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.guard
    }
}

impl DerefMut for Locked<'_> {
    fn deref_mut(&mut self) -> &mut Shared {
        &mut self.guard
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        self.guard.publish_events();
    }
}

/// The session ended before the awaited event (see [`Session::keepalive_acks`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionClosed;

impl std::fmt::Display for SessionClosed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the session is closed")
    }
}

impl std::error::Error for SessionClosed {}

/// The KEEPALIVE2_ACKs a session receives, from [`Session::keepalive_acks`].
///
/// Acks handled since the previous [`next`](KeepaliveAcks::next) are coalesced: `next`
/// returns the latest one. Dropping it unsubscribes.
#[derive(Debug, Clone)]
pub struct KeepaliveAcks {
    rx: watch::Receiver<Option<Timespec>>,
}

impl KeepaliveAcks {
    /// Waits for a KEEPALIVE2_ACK handled after the subscription (or after the previous
    /// `next`) and returns the stamp it echoes (our clock when we sent that keepalive). Fails
    /// with [`SessionClosed`] once the session has ended and no unseen ack is left.
    /// Cancel-safe.
    pub async fn next(&mut self) -> Result<Timespec, SessionClosed> {
        self.rx.changed().await.map_err(|_| SessionClosed)?;
        (*self.rx.borrow_and_update()).ok_or(SessionClosed)
    }
}

/// What the tasks of a newly attached socket need.
struct SlotHandle {
    epoch: u64,
    cancel: CancellationToken,
    wake: Arc<Notify>,
}

impl Link {
    /// Makes a new socket current (cancelling the previous one) and returns its handle.
    fn new_slot(&mut self) -> SlotHandle {
        self.epoch += 1;
        let cancel = CancellationToken::new();
        let wake = Arc::new(Notify::new());
        let slot = SocketSlot {
            epoch: self.epoch,
            cancel: cancel.clone(),
            wake: wake.clone(),
            delivering: false,
        };
        if let Some(old) = self.socket.replace(slot) {
            old.cancel.cancel();
        }
        SlotHandle {
            epoch: self.epoch,
            cancel,
            wake,
        }
    }

    /// Abandons the outgoing attempt in progress, if any.
    fn abandon_attempt(&mut self) {
        if let Some((_, t)) = self.attempt.take() {
            t.cancel();
        }
    }

    fn is_current(&self, epoch: u64) -> bool {
        self.socket.as_ref().is_some_and(|s| s.epoch == epoch)
    }
}

pub(crate) struct Inner {
    id: ConnId,
    host: Arc<dyn Host>,
    config: Arc<PipeConfig>,
    peer_addr: EntityAddr,
    peer_type: EntityType,
    policy: Policy,
    shared: Mutex<Shared>,
    /// Messages submitted beside the session lock (see `inbox.rs`).
    inbox: inbox::Inbox,
    deliver_lock: Mutex<()>,
    driver_wake: Notify,
    /// Woken (all waiters) whenever an outgoing attempt ends.
    attempt_end: Notify,
    ended: AtomicBool,
    /// `Session::connect` returned this (accepted) session to the application, which may
    /// hold it before any event told it about the session.
    handed_out: AtomicBool,
    /// Senders waiting in `send` for `max_pending_bytes`, and how many ever started to: while
    /// one waits, the writer ends its batches with a KEEPALIVE2, whose answer carries the
    /// peer's ACK (a peer delays ACKs; a sender out of budget cannot wait for that).
    blocked_senders: AtomicUsize,
    ack_requests: AtomicU64,
    closed: CancellationToken,
    tracker: TaskTracker,
    send_throttle: Throttle,
    counters: Counters,
    delay: Option<DelayStage>,
    /// Receivers of the watch channels in `Shared::watchers`, cloned for new subscribers.
    state_rx: watch::Receiver<ConnState>,
    ack_rx: watch::Receiver<Option<Timespec>>,
    /// The last failed outgoing handshake attempt ([`Session::handshake_failures`]); not
    /// under the session lock (a `watch` sender is its own lock).
    handshake_failure: watch::Sender<Option<HandshakeFailure>>,
    /// The application's data of this session ([`Session::app_data`]); msgr never reads it.
    app_data: crate::app_data::AppData,
}

/// A peer session: a cheap, cloneable handle. See the module docs.
///
/// A session lives until [`Session::mark_down`], a lossy fault, or a fatal handshake refusal;
/// dropping every handle does not end it (its driver keeps it alive, as a registered Ceph
/// Connection). [`Session::closed`] resolves once it has ended and its tasks are gone.
#[derive(Clone)]
pub struct Session {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.inner.id)
            .field("peer_addr", &self.inner.peer_addr)
            .field("peer_type", &self.inner.peer_type)
            .field("state", &self.state())
            .finish()
    }
}

impl PartialEq for Session {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl Eq for Session {}

/// The core's configuration for a session with `policy`.
fn core_config(config: &PipeConfig, policy: &Policy) -> CoreConfig {
    CoreConfig {
        fault: FaultPolicy {
            server: policy.server,
            standby: policy.standby,
            initial_backoff: config.initial_backoff,
            max_backoff: config.max_backoff,
        },
        read_timeout: config.read_timeout,
        ack_batch: config.ack_batch,
        ack_bytes: config.ack_bytes,
        ack_delay: config.ack_delay,
        keepalive_interval: config.keepalive_interval,
    }
}

/// The driver's clock reading, as the core takes it (tokio's clock: paused in tests).
fn now() -> std::time::Instant {
    Instant::now().into_std()
}

use msgr_dispatch::lock as relock;

impl Inner {
    /// Locks the session, after which the core holds every message submitted before (the
    /// inbox is drained first); phase changes are published when the guard drops.
    #[inline(always)]
    fn lock(&self) -> Locked<'_> {
        let mut guard = relock(&self.shared);
        if self.inbox.pending() {
            self.inbox.drain(&mut guard.core);
        }
        Locked { guard }
    }

    /// Locks the session without moving the inbox into the core: for `writer::end_delivery`
    /// (whose `Inbox::end_delivery` drains in the same critical section that clears
    /// `delivering`), and for the reader's frames and its idle step, which read neither the
    /// out queues nor their counts (a message's sequence check counts it towards the ACK
    /// owed, an ACK releases the sent list, a keepalive queues its answer, the idle step
    /// arms timers from the incoming counts; a message
    /// still in the inbox at worst lets a delayed-ACK timer be armed that its writer stops
    /// when it sends the message with the ACK).
    ///
    /// A 64-byte stream's reader takes the lock for every ACK it reads: drains there cut
    /// the inbox into blocks of a few dozen messages, which travelled the sent list
    /// part-filled, more of them than the spare blocks kept, so more were allocated
    /// (callgrind, 100,000 messages: 3,223 block allocations against main's 1,970).
    fn lock_undrained(&self) -> Locked<'_> {
        Locked {
            guard: relock(&self.shared),
        }
    }

    fn session(self: &Arc<Self>) -> Session {
        Session {
            inner: self.clone(),
        }
    }

    /// Publishes a failed outgoing attempt (not one superseded or ended by the session's
    /// close: those say nothing about the peer).
    fn record_handshake_failure(&self, e: &PipeError, fatal: bool) {
        if matches!(e, PipeError::Superseded | PipeError::SessionClosed) {
            return;
        }
        let error = Arc::new(e.clone());
        self.handshake_failure.send_modify(|last| {
            let failures = last.as_ref().map_or(0, |f| f.failures) + 1;
            *last = Some(HandshakeFailure {
                error,
                fatal,
                failures,
            });
        });
    }

    /// The seed for the fault injection of the next socket of this session: keyed by the
    /// session's id too, so a new session to the same peer does not replay the fault sequence
    /// of the one before it (at 1/40, one seed killed 40 lossy sessions in a row the same way).
    fn socket_seed(&self, sockets: u64, side: &[u8]) -> u64 {
        let mut key = Vec::with_capacity(72);
        key.extend_from_slice(side);
        key.extend_from_slice(&self.id.to_le_bytes());
        key.extend_from_slice(self.host.my_addr().to_string().as_bytes());
        key.extend_from_slice(self.peer_addr.to_string().as_bytes());
        key.extend_from_slice(&sockets.to_le_bytes());
        mix_seed(self.config.inject.seed, &key)
    }

    /// A socket of epoch `epoch` failed. Ignored if that socket is no longer the current one.
    fn socket_fault(self: &Arc<Self>, epoch: u64, err: &PipeError) {
        let (action, dropped) = {
            let mut sh = self.lock();
            match &sh.link.socket {
                Some(s) if s.epoch == epoch => {}
                _ => return,
            }
            if let Some(s) = sh.link.socket.take() {
                s.cancel.cancel();
            }
            // Before the fault's decisions (standby only if nothing is queued): every
            // message submitted so far is in the core, later ones take the session lock.
            self.inbox.detach(&mut sh.core);
            sh.link.replacing = false;
            let Shared { core, v1, .. } = &mut *sh;
            let action = v1.fault(core, now(), FaultCause::Error);
            let dropped = if matches!(action, FaultAction::Close { .. }) {
                let mut dropped = sh.core.close();
                dropped.append(&mut self.inbox.close());
                dropped
            } else {
                Vec::new()
            };
            (action, dropped)
        };
        drop(dropped);
        bump(&self.counters.faults, 1);
        tracing::debug!(conn = self.id, peer = %self.peer_addr, epoch, error = %err, ?action, "socket fault");
        self.flush_delayed();
        match action {
            FaultAction::Close { reset } => {
                // A quiet close (an accepted session that never opened) still tells an
                // application that got this session from `connect`.
                let event = (reset || self.handed_out.load(Ordering::Acquire))
                    .then_some(SessionEvent::Reset);
                let delay = inject::lossy_close_delay(&self.config.inject);
                if delay.is_zero() {
                    self.close(event);
                } else {
                    // Simple sleeps here, between stopping the pipe and unregistering it: a
                    // deliberate race window (the session already refuses sends).
                    let me = self.clone();
                    self.tracker.spawn(async move {
                        internal_delay(delay, "lossy fault, before unregistering").await;
                        me.close(event);
                    });
                }
            }
            _ => self.driver_wake.notify_one(),
        }
    }

    /// Ends the session for good: no socket, queues discarded, unregistered, the given event
    /// delivered once, every task told to stop.
    fn close(self: &Arc<Self>, event: Option<SessionEvent>) {
        if self.ended.swap(true, Ordering::AcqRel) {
            return;
        }
        let dropped = {
            let mut sh = self.lock();
            if let Some(s) = sh.link.socket.take() {
                s.cancel.cancel();
            }
            if let Some((_, t)) = sh.link.attempt.take() {
                t.cancel();
            }
            sh.link.replacing = false;
            let mut dropped = sh.core.close();
            dropped.append(&mut self.inbox.close());
            dropped
        };
        drop(dropped);
        self.discard_delayed();
        tracing::debug!(conn = self.id, peer = %self.peer_addr, ?event, "session closed");
        let me = self.session();
        self.host.unregister(&me);
        if let Some(ev) = event {
            self.host.event(&me, ev);
        }
        self.closed.cancel();
        self.tracker.close();
        self.driver_wake.notify_one();
    }

    /// Ends a session that was never registered nor started.
    fn discard_unregistered(&self) {
        self.ended.store(true, Ordering::Release);
        let dropped = {
            let mut sh = self.lock();
            let mut dropped = sh.core.close();
            dropped.append(&mut self.inbox.close());
            dropped
        };
        drop(dropped);
        self.closed.cancel();
        self.tracker.close();
    }

    /// Drops the messages held by the delay stage (session reset: the peer will not expect
    /// them in order any more).
    fn discard_delayed(&self) {
        if let Some(d) = &self.delay {
            drop(d.discard());
        }
    }

    fn flush_delayed(self: &Arc<Self>) {
        if let Some(d) = &self.delay {
            if !d.is_empty() {
                let me = self.clone();
                self.tracker.spawn(async move {
                    if let Some(d) = &me.delay {
                        d.flush().await;
                    }
                });
            }
        }
    }

    /// Hands `incoming` to the host (through the delay stage, if one is configured);
    /// `to` is the reader's [`Host::deliverer`]. Inlined into the reader: a by-value call
    /// layer copies the whole message.
    #[inline(always)]
    fn deliver(&self, to: &dyn Deliver, incoming: Incoming<'_>) {
        match &self.delay {
            Some(d) => inject::delay(d, incoming),
            None => to.deliver(incoming),
        }
    }

    /// Queues a message (the permit is already taken): into the inbox while a socket's
    /// tasks run (no session lock), else under the session lock. Inlined into the senders,
    /// so the message is not copied once more on its way.
    #[inline(always)]
    fn queue(&self, mut out: Outgoing) -> Result<(), SendError> {
        // The sender's name when the message was submitted, as Ceph stamps it: a rename
        // (`Messenger::set_name`) applies to every message queued after it, and a message
        // resent after a reconnect keeps its name. Not under the session lock: the pipe calls
        // no Host method while holding it.
        out.msg.header.src = self.host.my_name();
        // A large message's CRCs are computed here, on the sender's task, not by the writer:
        // the writer's time is the session's bandwidth, and the sender can run beside it.
        // Not on a msgr2 socket in secure mode: its frames carry no CRCs (the AES-GCM tag
        // authenticates them); were the next socket in crc mode, its writer hashes them.
        // Only a large message asks (a lock taken per message cost every small send one).
        if wants_preseal(&out) && self.lock().link.con_mode != Some(crate::config::ConMode::Secure)
        {
            out.msg.seal_segments(self.config.crc);
            out.sealed = true;
        }
        {
            let mut ib = self.inbox.lock();
            match ib.mode {
                inbox::Mode::Attached { .. } => {
                    ib.push(out, self.inbox.pending_flag());
                    return Ok(());
                }
                inbox::Mode::Closed => return Err(SendError::Closed),
                inbox::Mode::Detached => {}
            }
        }
        self.queue_locked(out)
    }

    /// [`queue`](Self::queue) when no socket's tasks run: under the session lock, as a
    /// standby session must be woken and a closed one refuses.
    #[inline(never)]
    fn queue_locked(&self, out: Outgoing) -> Result<(), SendError> {
        let mut sh = self.lock();
        if sh.core.phase() == ConnState::Closed {
            return Err(SendError::Closed);
        }
        sh.core.send(out);
        // A socket attached since the inbox was looked at (or still in its handshake, whose
        // writer starts with a drain): its writer takes the message.
        if let Some(s) = &sh.link.socket {
            s.wake.notify_one();
        }
        if sh.core.phase() == ConnState::Standby && !self.policy.server {
            drop(sh);
            self.driver_wake.notify_one();
        }
        Ok(())
    }

    /// Starts the reader and writer of an attached v1 socket. `signer`: the handshake's,
    /// used if the host signs messages and MSG_AUTH was negotiated (the cephx spec's §C).
    fn spawn_socket(
        self: &Arc<Self>,
        slot: SlotHandle,
        t: BoxTransport,
        features: u64,
        signer: Option<MessageSigner>,
        auth_protocol: u32,
    ) {
        let signs = self.host.authorizer().is_some_and(|a| a.sign_messages())
            && msgr_wire::features::has(features, msgr_wire::features::MSG_AUTH);
        let signer = signer.filter(|_| signs);
        {
            let mut sh = self.lock();
            sh.link.auth = (auth_protocol, signer.is_some());
            sh.link.con_mode = None;
        }
        let codec = writer::OutCodec::v1(features, signer.clone());
        self.spawn_tasks(slot, t, codec, reader::InCodec::V1 { features, signer });
    }

    /// Starts the reader and writer of an attached msgr2 socket, with the frame codec the
    /// handshake left in its mode, the peer's name and the bytes read past the handshake.
    fn spawn_socket_v2(
        self: &Arc<Self>,
        slot: SlotHandle,
        t: BoxTransport,
        codec: V2Codec,
        auth_protocol: u32,
    ) {
        // msgr2 signs no message: the frames' CRCs (crc) or GCM tags (secure) cover them.
        // (The mode was recorded when the session opened.)
        self.lock().link.auth = (auth_protocol, false);
        let out = writer::OutCodec::V2(Box::new(codec.encoder));
        let inc = reader::InCodec::V2 {
            dec: Box::new(codec.decoder),
            peer: codec.peer,
            leftover: codec.leftover,
        };
        self.spawn_tasks(slot, t, out, inc);
    }

    fn spawn_tasks(
        self: &Arc<Self>,
        slot: SlotHandle,
        t: BoxTransport,
        out: writer::OutCodec,
        inc: reader::InCodec,
    ) {
        {
            // Senders push into the inbox and wake this socket's writer from now on.
            let sh = self.lock();
            if sh.link.is_current(slot.epoch) {
                self.inbox.attach(slot.epoch, slot.wake.clone());
            }
        }
        let (r, w) = crate::transport::split(t);
        let pen = Arc::new(writer::Pen::new(w, out, self));
        self.tracker.spawn(reader::run(
            self.clone(),
            reader::Socket {
                epoch: slot.epoch,
                cancel: slot.cancel.clone(),
                wake: slot.wake.clone(),
                pen: pen.clone(),
            },
            r,
            inc,
        ));
        self.tracker.spawn(writer::run(
            self.clone(),
            slot.epoch,
            slot.cancel,
            slot.wake,
            pen,
        ));
    }

    fn wake_writer(&self) {
        let sh = self.lock();
        if let Some(s) = &sh.link.socket {
            s.wake.notify_one();
        }
    }
}

/// The connection mode a msgr2 encoder is in.
fn con_mode_of(enc: &crate::v2::frame::Encoder) -> crate::config::ConMode {
    if enc.is_secure() {
        crate::config::ConMode::Secure
    } else {
        crate::config::ConMode::Crc
    }
}

/// A msgr2 socket's codec as its handshake left it.
struct V2Codec {
    encoder: crate::v2::frame::Encoder,
    decoder: crate::v2::frame::Decoder,
    /// The peer's name: the sender of its messages.
    peer: EntityName,
    /// Bytes read past the handshake.
    leftover: bytes::BytesMut,
}

/// Parameters of a new session.
pub(crate) struct NewSession {
    pub host: Arc<dyn Host>,
    pub config: Arc<PipeConfig>,
    pub peer_addr: EntityAddr,
    pub peer_type: EntityType,
    pub policy: Policy,
    pub phase: ConnState,
    pub id: ConnId,
}
