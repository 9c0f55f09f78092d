//! The session's protocol state as a plain value: queues, sequence numbers, acks, keepalives,
//! fault decisions. No I/O, no clock (time comes in as arguments), no tasks.
//!
//! ```text
//!                 connect()                      accept()
//!                    |                               |
//!                    v        WAIT reply             v
//!   +-------> Connecting ---------------> Wait   Accepting --(never opened, fails)--> Closed
//!   |            |   ^  (fault: backoff)   |         |
//!   |   READY/SEQ|   +---------------------+ replaced / max_backoff
//!   |            v                                   |
//!   |          Open <--------------------------------+
//!   |            |  fault
//!   |            +--- lossy ----------------------------------------------> Closed (Reset)
//!   |            +--- standby & nothing queued, or server ---> Standby
//!   +------------+--- otherwise (connect_seq++)                  | message queued (not server)
//!   +------------------------------------------------------------+
//! ```

use std::collections::VecDeque;
use std::time::Duration;

use msgr_dispatch::ThrottlePermit;
use msgr_wire::{features, Message, Timespec, PRIO_HIGHEST};
use rand::rngs::SmallRng;
use rand::Rng;
use tokio::time::Instant;

/// The state of a session, as the seed's Pipe states.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConnState {
    /// An incoming socket is in its handshake (new session, or replacing this one).
    Accepting,
    /// An outgoing attempt is in progress or pending (backoff).
    Connecting,
    /// A socket is attached and the stream runs.
    Open,
    /// Idle lossless session without a socket; reconnects when a message is queued.
    Standby,
    /// Lost a connection race: waiting for the peer's connection to replace ours.
    Wait,
    /// Ended for good.
    Closed,
}

/// A message waiting to be sent or acknowledged.
#[derive(Debug)]
pub struct Outgoing {
    /// The message (sealed once sent).
    pub msg: Message,
    /// The sender's `max_pending_bytes` permit, released when the message is acked (lossless),
    /// written (lossy) or discarded.
    pub permit: Option<ThrottlePermit>,
    /// The seq it was sent with; 0 if never sent.
    pub seq: u64,
}

impl Outgoing {
    /// A message not yet sent.
    pub fn new(msg: Message, permit: Option<ThrottlePermit>) -> Self {
        Outgoing {
            msg,
            permit,
            seq: 0,
        }
    }

    /// Payload bytes (front + middle + data).
    pub fn payload_len(&self) -> u64 {
        let m = &self.msg;
        u64::try_from(m.front.len() + m.middle.len() + m.data.len()).unwrap_or(u64::MAX)
    }
}

/// What the reader does with a received message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InSeq {
    /// The next one: deliver.
    Accept,
    /// `seq <= in_seq`: drop silently.
    Duplicate,
    /// `seq > in_seq + 1`: userspace Ceph accepts it with a warning ("missed message?").
    Gap,
}

/// What to do after a fault (spec §6.5, Appendix A).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultAction {
    /// The session ends; `reset` says whether a Reset event is due (lossy after open).
    Close {
        /// Deliver a Reset event.
        reset: bool,
    },
    /// Reconnect after this delay.
    Reconnect {
        /// Backoff.
        after: Duration,
    },
    /// Rest without a socket until a message is queued (or the peer reconnects).
    Standby,
    /// Lost a race: wait to be replaced, at most `max` before retrying.
    Wait {
        /// How long to wait before connecting again.
        max: Duration,
    },
    /// Nothing to do (already closed or standing by).
    None,
}

/// Why a socket ended, for [`SessionState::on_fault`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultCause {
    /// I/O or protocol error, timeout, peer close.
    Error,
    /// The acceptor answered WAIT.
    RaceLost,
}

/// The policy bits and backoff settings [`SessionState::on_fault`] needs.
#[derive(Clone, Copy, Debug)]
pub struct FaultPolicy {
    /// Policy `server`.
    pub server: bool,
    /// Policy `standby`.
    pub standby: bool,
    /// First backoff.
    pub initial_backoff: Duration,
    /// Backoff cap (also the wait after WAIT).
    pub max_backoff: Duration,
}

/// The out queues, one per priority used, in ascending priority order. A session uses one
/// to three priorities: a short vector is searched faster, and with less code, than a map.
/// Drained queues stay (one per priority ever used), so a steady stream does not allocate
/// and free a queue buffer per message.
#[derive(Debug, Default)]
struct OutQueues {
    queues: Vec<(u16, VecDeque<Outgoing>)>,
}

impl OutQueues {
    fn get_or_insert(&mut self, prio: u16) -> &mut VecDeque<Outgoing> {
        let i = match self.queues.binary_search_by_key(&prio, |(p, _)| *p) {
            Ok(i) => i,
            Err(i) => {
                self.queues.insert(i, (prio, VecDeque::new()));
                i
            }
        };
        // `i` is in range: found, or just inserted there.
        &mut self.queues[i].1
    }

    fn get_mut(&mut self, prio: u16) -> Option<&mut VecDeque<Outgoing>> {
        let i = self.queues.binary_search_by_key(&prio, |(p, _)| *p).ok()?;
        self.queues.get_mut(i).map(|(_, q)| q)
    }

    /// The queue of the highest priority with a message waiting.
    fn highest_nonempty(&mut self) -> Option<&mut VecDeque<Outgoing>> {
        self.queues
            .iter_mut()
            .rev()
            .map(|(_, q)| q)
            .find(|q| !q.is_empty())
    }

    fn iter(&self) -> impl Iterator<Item = &VecDeque<Outgoing>> {
        self.queues.iter().map(|(_, q)| q)
    }

    fn into_iter(self) -> impl Iterator<Item = VecDeque<Outgoing>> {
        self.queues.into_iter().map(|(_, q)| q)
    }
}

/// The per-session protocol state (Ceph's Connection + Pipe fields that outlive sockets).
#[derive(Debug)]
pub struct SessionState {
    /// Current state. A session changes it only under its lock, whose guard publishes every
    /// change to `Session::watch_state` watchers when it is released (`session/mod.rs`).
    pub phase: ConnState,
    out_q: OutQueues,
    sent: VecDeque<Outgoing>,
    /// Seq of the last message handed to a socket.
    pub out_seq: u64,
    /// Seq of the last message accepted from the peer.
    pub in_seq: u64,
    /// The last `in_seq` we acknowledged.
    pub in_seq_acked: u64,
    /// Per-session connect counter (spec §5.4).
    pub connect_seq: u32,
    /// The peer's global seq from the last successful handshake.
    pub peer_global_seq: u32,
    /// Negotiated features (0 before the first handshake).
    pub features: u64,
    /// Effective lossiness (the connector takes it from the reply flags).
    pub lossy: bool,
    /// Marked disposable while open (Ceph's `mark_disposable`): the next fault ends the
    /// session with a Reset, as it would a lossy one, instead of reconnecting.
    pub disposable: bool,
    keepalive: bool,
    keepalive2_acks: VecDeque<Timespec>,
    /// When the last KEEPALIVE/KEEPALIVE2 arrived.
    pub last_keepalive: Option<Instant>,
    /// The stamp echoed by the last KEEPALIVE2_ACK (our clock when we sent the keepalive).
    pub last_keepalive_ack: Option<Timespec>,
    /// Consecutive failed connection attempts since the last successful handshake: the first
    /// is retried at once, the next after `initial_backoff`, each further one after twice the
    /// wait before it, capped at `max_backoff` (Ceph's `Pipe::fault`).
    failed_attempts: u32,
    /// The session reached Open at least once.
    pub was_open: bool,
    /// Created by the acceptor and its reply not yet written: a failed handshake ends it.
    pub accepted_new: bool,
    /// Created by the acceptor (rather than by `Session::connect`).
    pub created_by_accept: bool,
    /// `connect_seq` before an incoming socket started replacing our socket; restored if
    /// that handshake fails before our reply is written.
    pub saved_connect_seq: Option<u32>,
    queued_bytes: u64,
    /// Messages taken for a second (or later) transmission.
    pub resent: u64,
    rng: SmallRng,
}

/// What [`SessionState::take_batch_staged`] hands each small message to.
pub type StageFn<'a> = dyn FnMut(&mut Outgoing) + 'a;

impl SessionState {
    /// A fresh session in `phase`, lossy or not, with a seeded generator for `out_seq`
    /// randomisation.
    pub fn new(phase: ConnState, lossy: bool, rng: SmallRng) -> Self {
        SessionState {
            phase,
            out_q: OutQueues::default(),
            sent: VecDeque::new(),
            out_seq: 0,
            in_seq: 0,
            in_seq_acked: 0,
            connect_seq: 0,
            peer_global_seq: 0,
            features: 0,
            lossy,
            disposable: false,
            keepalive: false,
            keepalive2_acks: VecDeque::new(),
            last_keepalive: None,
            last_keepalive_ack: None,
            failed_attempts: 0,
            was_open: false,
            accepted_new: false,
            created_by_accept: false,
            saved_connect_seq: None,
            queued_bytes: 0,
            resent: 0,
            rng,
        }
    }

    /// Appends a message to its priority's queue (priority 0 becomes the default, 127).
    pub fn queue(&mut self, mut out: Outgoing) {
        let prio = out.msg.priority();
        out.msg.header.priority = prio;
        self.queued_bytes = self.queued_bytes.saturating_add(out.payload_len());
        self.out_q.get_or_insert(prio).push_back(out);
    }

    /// True if a message (not just a keepalive) waits to be sent.
    pub fn has_messages(&self) -> bool {
        self.out_q.iter().any(|q| !q.is_empty())
    }

    /// Number of queued (unsent) messages.
    pub fn queued_len(&self) -> usize {
        self.out_q.iter().map(VecDeque::len).sum()
    }

    /// Payload bytes of queued (unsent) messages.
    pub fn queued_bytes(&self) -> u64 {
        self.queued_bytes
    }

    /// Number of sent, unacknowledged messages.
    pub fn unacked_len(&self) -> usize {
        self.sent.len()
    }

    /// Asks the writer for a keepalive.
    pub fn queue_keepalive(&mut self) {
        self.keepalive = true;
    }

    /// A KEEPALIVE2 arrived at `now` with `stamp`: remember it and queue the ack.
    pub fn on_keepalive2(&mut self, now: Instant, stamp: Timespec) {
        self.last_keepalive = Some(now);
        self.keepalive2_acks.push_back(stamp);
    }

    /// A bare KEEPALIVE arrived.
    pub fn on_keepalive(&mut self, now: Instant) {
        self.last_keepalive = Some(now);
    }

    /// A KEEPALIVE2_ACK arrived echoing `stamp`.
    pub fn on_keepalive2_ack(&mut self, stamp: Timespec) {
        self.last_keepalive_ack = Some(stamp);
    }

    /// Takes the pending keepalive flag and keepalive2 acks (the writer sends them first).
    pub fn take_control(&mut self) -> (bool, Vec<Timespec>) {
        let ka = std::mem::take(&mut self.keepalive);
        (ka, self.keepalive2_acks.drain(..).collect())
    }

    /// True if the writer has anything to do.
    pub fn writer_has_work(&self) -> bool {
        self.keepalive
            || !self.keepalive2_acks.is_empty()
            || self.has_messages()
            || (!self.lossy && self.in_seq > self.in_seq_acked)
    }

    /// Takes queued messages, highest priority first and FIFO within one, until at least
    /// `max_bytes` payload bytes are taken (always at least one message if any is queued).
    /// Each gets `seq = ++out_seq` now. Lossless: the message stays in `sent` until acked and
    /// the returned copy has no permit; lossy: the original (with its permit) is returned.
    pub fn take_batch(&mut self, max_bytes: u64) -> Vec<Outgoing> {
        let mut out = Vec::new();
        self.take_batch_into(max_bytes, usize::MAX, &mut out);
        out
    }

    /// [`take_batch`](Self::take_batch) into `out` (appended; the writer reuses one vector),
    /// also stopping at `max_msgs` messages (at least one is taken if any is queued).
    pub fn take_batch_into(&mut self, max_bytes: u64, max_msgs: usize, out: &mut Vec<Outgoing>) {
        self.take_batch_staged(max_bytes, max_msgs, None, out);
    }

    /// [`take_batch_into`](Self::take_batch_into), where a lossless session hands small
    /// messages to `small.1` instead of copying them: each message whose payload is at most
    /// `small.0` bytes is passed (with its seq set) to the callback, then kept in the sent
    /// list without a copy for the writer. A batch is either all such messages (counted in the
    /// returned `(messages, payload bytes)`) or all others (appended to `out`).
    pub fn take_batch_staged(
        &mut self,
        max_bytes: u64,
        max_msgs: usize,
        mut small: Option<(u64, &mut StageFn<'_>)>,
        out: &mut Vec<Outgoing>,
    ) -> (usize, u64) {
        let mut bytes = 0u64;
        let mut taken = 0usize;
        let mut staged = 0usize;
        let mut batch_small = None;
        while (bytes < max_bytes && taken < max_msgs) || taken == 0 {
            // Drained queues stay in the map (one per priority ever used), so a steady stream
            // does not allocate and free a map node and a queue buffer per message.
            let Some(q) = self.out_q.highest_nonempty() else {
                break;
            };
            let is_small = match (&small, q.front()) {
                (Some((limit, _)), Some(o)) => !self.lossy && o.payload_len() <= *limit,
                _ => false,
            };
            if *batch_small.get_or_insert(is_small) != is_small {
                break;
            }
            let Some(mut o) = q.pop_front() else {
                break;
            };
            self.queued_bytes = self.queued_bytes.saturating_sub(o.payload_len());
            self.out_seq = self.out_seq.wrapping_add(1);
            if o.seq != 0 {
                self.resent += 1;
            }
            if o.seq != 0 && o.seq != self.out_seq {
                tracing::warn!(
                    old = o.seq,
                    new = self.out_seq,
                    "requeued message renumbered"
                );
            }
            o.seq = self.out_seq;
            o.msg.header.seq = self.out_seq;
            bytes = bytes.saturating_add(o.payload_len());
            taken += 1;
            if let (true, Some((_, f))) = (is_small, small.as_mut()) {
                f(&mut o);
                staged += 1;
                self.sent.push_back(o);
            } else if self.lossy {
                out.push(o);
            } else {
                out.push(Outgoing {
                    msg: o.msg.clone(),
                    permit: None,
                    seq: o.seq,
                });
                self.sent.push_back(o);
            }
        }
        if staged > 0 {
            (staged, bytes)
        } else {
            (0, 0)
        }
    }

    /// The ACK to send, if `in_seq` advanced and the session is lossless (never on lossy
    /// sessions, as Async); marks it sent.
    pub fn take_ack(&mut self) -> Option<u64> {
        if !self.lossy && self.in_seq > self.in_seq_acked {
            self.in_seq_acked = self.in_seq;
            Some(self.in_seq)
        } else {
            None
        }
    }

    /// An ACK arrived: pops every sent message with `seq <= acked` (returned, so their
    /// permits are released by the caller outside any lock).
    pub fn handle_ack(&mut self, acked: u64) -> Vec<Outgoing> {
        let mut done = Vec::new();
        self.handle_ack_into(acked, &mut done);
        done
    }

    /// [`handle_ack`](Self::handle_ack), appending to `done` (the reader reuses one vector).
    pub fn handle_ack_into(&mut self, acked: u64, done: &mut Vec<Outgoing>) {
        while self.sent.front().is_some_and(|o| o.seq <= acked) {
            if let Some(o) = self.sent.pop_front() {
                done.push(o);
            }
        }
    }

    /// Sequence check of an incoming message; advances `in_seq` unless it is a duplicate.
    pub fn accept_incoming(&mut self, seq: u64) -> InSeq {
        if seq <= self.in_seq {
            InSeq::Duplicate
        } else if seq == self.in_seq + 1 {
            self.in_seq = seq;
            InSeq::Accept
        } else {
            self.in_seq = seq;
            InSeq::Gap
        }
    }

    /// Moves every sent message back to the front of the highest priority queue, in order,
    /// and rewinds `out_seq` so they are resent with the same seqs (spec §5.6).
    pub fn requeue_sent(&mut self) -> usize {
        let n = self.sent.len();
        if n == 0 {
            return 0;
        }
        let q = self.out_q.get_or_insert(PRIO_HIGHEST);
        while let Some(o) = self.sent.pop_back() {
            self.queued_bytes = self.queued_bytes.saturating_add(o.payload_len());
            self.out_seq = self.out_seq.saturating_sub(1);
            q.push_front(o);
        }
        n
    }

    /// Applies the peer's SEQ value: drops requeued messages with `0 < seq <= acked` from the
    /// head of the highest priority queue, advancing `out_seq` for each; when nothing is
    /// requeued at all, sets `out_seq = acked` (spec §5.6, Async `discard_requeued_up_to`).
    /// Returns the discarded messages (release permits outside the lock).
    pub fn discard_requeued_up_to(&mut self, acked: u64) -> Vec<Outgoing> {
        let mut done = Vec::new();
        let Some(q) = self.out_q.get_mut(PRIO_HIGHEST).filter(|q| !q.is_empty()) else {
            self.out_seq = acked;
            return done;
        };
        while q.front().is_some_and(|o| o.seq != 0 && o.seq <= acked) {
            if let Some(o) = q.pop_front() {
                self.queued_bytes = self.queued_bytes.saturating_sub(o.payload_len());
                self.out_seq = self.out_seq.wrapping_add(1);
                done.push(o);
            }
        }
        done
    }

    /// The peer said (or showed) that it lost our session: discard everything queued and
    /// sent, restart `in_seq` and `connect_seq` at 0, randomise `out_seq` in `[0, 0x7fffffff]`
    /// if MSG_AUTH is negotiated (else 0). Returns the discarded messages.
    pub fn reset_session(&mut self) -> Vec<Outgoing> {
        let mut dropped: Vec<Outgoing> = self.sent.drain(..).collect();
        for q in std::mem::take(&mut self.out_q).into_iter() {
            dropped.extend(q);
        }
        self.queued_bytes = 0;
        self.in_seq = 0;
        self.in_seq_acked = 0;
        self.connect_seq = 0;
        self.keepalive2_acks.clear();
        self.out_seq = if features::has(self.features, features::MSG_AUTH) {
            u64::from(self.rng.gen_range(0..=0x7fff_ffffu32))
        } else {
            0
        };
        dropped
    }

    /// Discards every queued and sent message (the session is closing).
    pub fn discard_all(&mut self) -> Vec<Outgoing> {
        let mut dropped: Vec<Outgoing> = self.sent.drain(..).collect();
        for q in std::mem::take(&mut self.out_q).into_iter() {
            dropped.extend(q);
        }
        self.queued_bytes = 0;
        self.keepalive = false;
        self.keepalive2_acks.clear();
        dropped
    }

    /// A handshake succeeded: the stream starts. The backoff starts over, as Ceph's
    /// `Pipe::connect` and `ProtocolV1` set `backoff = 0` on every successful handshake: only
    /// consecutive *failed* attempts back off. A peer that accepts TCP and hangs up before the
    /// handshake completes fails attempts, so it is met with the doubling backoff; one that
    /// completes handshakes costs a full round trip per attempt, as it does Ceph.
    pub fn opened(&mut self) {
        self.phase = ConnState::Open;
        self.was_open = true;
        self.accepted_new = false;
        self.saved_connect_seq = None;
        self.failed_attempts = 0;
    }

    /// Consecutive failed connection attempts since the last successful handshake.
    pub fn failed_attempts(&self) -> u32 {
        self.failed_attempts
    }

    /// One more failed attempt; the wait before the next one. As SimpleMessenger's
    /// `Pipe::fault`: the first failure after a successful handshake (or of a new session) is
    /// retried at once, its backoff only set to `ms_initial_backoff`; from the second on, each
    /// waits the backoff and then doubles it, up to `ms_max_backoff`. So the waits are 0,
    /// initial, 2 initial, 4 initial, ..., max.
    fn next_backoff(&mut self, policy: &FaultPolicy) -> Duration {
        self.failed_attempts = self.failed_attempts.saturating_add(1);
        match self.failed_attempts.checked_sub(2) {
            None => Duration::ZERO,
            Some(doublings) => policy
                .initial_backoff
                .saturating_mul(1u32 << doublings.min(31))
                .min(policy.max_backoff),
        }
    }

    /// The socket ended (spec §6.5). Sets the new phase and says what to do. The caller has
    /// already detached the socket. Lossless sessions get their sent list requeued.
    pub fn on_fault(&mut self, policy: &FaultPolicy, cause: FaultCause) -> FaultAction {
        let mut prev = self.phase;
        match prev {
            ConnState::Closed => return FaultAction::None,
            ConnState::Standby => return FaultAction::None,
            _ => {}
        }
        if (self.lossy || self.disposable) && self.was_open {
            self.phase = ConnState::Closed;
            return FaultAction::Close { reset: true };
        }
        if prev == ConnState::Accepting {
            if self.accepted_new {
                // Our reply never left: the peer knows nothing of this session. Close it,
                // unless the application already queued messages on it (Simple keeps such a
                // pipe and connects out).
                self.accepted_new = false;
                if !self.has_messages() {
                    self.phase = ConnState::Closed;
                    return FaultAction::Close { reset: false };
                }
                self.connect_seq = 0;
                self.saved_connect_seq = None;
                prev = ConnState::Connecting;
            } else if let Some(c) = self.saved_connect_seq.take() {
                // A replace that failed before our reply left: back to what the session was.
                self.connect_seq = c;
                prev = if self.was_open {
                    ConnState::Open
                } else {
                    ConnState::Connecting
                };
            } else if self.created_by_accept && !self.was_open && !self.has_messages() {
                // A new session whose READY/SEQ was sent: the peer may believe it open and
                // come back with connect_seq + 1. Keep it (quietly) unless it is lossy.
                if self.lossy {
                    self.phase = ConnState::Closed;
                    return FaultAction::Close { reset: false };
                }
                self.requeue_sent();
                self.phase = ConnState::Standby;
                return FaultAction::Standby;
            } else {
                // Our reply left: the peer may hold the session open at this connect_seq.
                prev = ConnState::Open;
            }
        }
        self.requeue_sent();
        if cause == FaultCause::RaceLost {
            self.phase = ConnState::Wait;
            return FaultAction::Wait {
                max: policy.max_backoff,
            };
        }
        if (policy.standby && !self.has_messages() && !self.keepalive) || policy.server {
            self.phase = ConnState::Standby;
            return FaultAction::Standby;
        }
        match prev {
            ConnState::Open => {
                // The fault of an open session reconnects at once (Ceph: `backoff = 0` when
                // leaving an open state); only a failed attempt after it backs off.
                self.connect_seq = self.connect_seq.wrapping_add(1);
                self.phase = ConnState::Connecting;
                FaultAction::Reconnect {
                    after: Duration::ZERO,
                }
            }
            _ => {
                self.phase = ConnState::Connecting;
                FaultAction::Reconnect {
                    after: self.next_backoff(policy),
                }
            }
        }
    }

    /// Leaves Standby because a message was queued (non-server only): bumps `connect_seq`
    /// if a session had been established, as Simple's writer does.
    pub fn wake_from_standby(&mut self) -> bool {
        if self.phase != ConnState::Standby || !self.has_messages() {
            return false;
        }
        if self.connect_seq > 0 {
            self.connect_seq = self.connect_seq.wrapping_add(1);
        }
        self.phase = ConnState::Connecting;
        self.failed_attempts = 0;
        true
    }
}

#[cfg(test)]
mod tests;
