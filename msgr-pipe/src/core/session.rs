//! [`SessionCore`]: one session's protocol state as a value, driven without I/O.
//!
//! ```text
//!                 connect()                      accept()
//!                    |                               |
//!                    v        WAIT reply             v
//!   +-------> Connecting ---------------> Wait   Accepting --(never opened, fails)--> Closed
//!   |            |   ^  (fault: backoff)   |         |
//!   |   opened() |   +---------------------+ replaced / max_backoff
//!   |            v                                   |
//!   |          Open <--------------------------------+
//!   |            |  fault
//!   |            +--- lossy ----------------------------------------------> Closed (Reset)
//!   |            +--- standby & nothing queued, or server ---> Standby
//!   +------------+--- otherwise                                   | message queued (not server)
//!   +-------------------------------------------------------------+
//! ```
//!
//! Inputs are methods taking `now` where time matters: [`SessionCore::send`],
//! [`SessionCore::handle_message`], [`SessionCore::handle_control`],
//! [`SessionCore::handle_idle`], [`SessionCore::handle_timeout`],
//! [`SessionCore::handle_fault`], [`SessionCore::opened`]. Outputs are polled:
//! [`SessionCore::poll_transmit`] (the frames to send, encoded by the dialect's
//! [`FrameSink`]), [`SessionCore::poll_timeout`] (the earliest deadline of the timer table),
//! [`SessionCore::poll_event`] (phase changes and keepalive acks for watchers).
//!
//! Not here: bytes, sockets, tasks, the clock (time comes in as arguments), handshakes and
//! their counters (a dialect's: msgr v1's `connect_seq` lives in `crate::v1`), delivery (the
//! driver hands an accepted message to the host).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use msgr_wire::{features, Timespec, PRIO_HIGHEST};
use rand::rngs::SmallRng;
use rand::Rng;

use super::fault::{AcceptStage, Backoff, FaultAction, FaultCause, FaultPolicy};
use super::queue::{Fifo, OutQueues, Outgoing, Released, Submitted};
use super::timer::{Timer, Timers};

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

/// What becomes of a received message ([`SessionCore::handle_message`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InSeq {
    /// The next one: deliver.
    Accept,
    /// `seq <= in_seq`: drop silently.
    Duplicate,
    /// `seq > in_seq + 1`: userspace Ceph accepts it with a warning ("missed message?").
    Gap,
}

/// A received frame other than a message, as every dialect has it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    /// The peer acknowledges every message up to this seq.
    Ack(u64),
    /// A bare keepalive.
    Keepalive,
    /// A keepalive stamped with the peer's clock; answered with an ack echoing it.
    Keepalive2(Timespec),
    /// The answer to our keepalive, echoing our stamp.
    Keepalive2Ack(Timespec),
    /// The peer closes the connection.
    Close,
}

/// What the session tells watchers ([`SessionCore::poll_event`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// The phase changed to this one.
    Phase(ConnState),
    /// A keepalive ack arrived, echoing this stamp.
    KeepaliveAck(Timespec),
}

/// What the handshake established, for [`SessionCore::opened`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Established {
    /// Negotiated features.
    pub features: u64,
    /// Effective lossiness (the connector takes it from the acceptor's answer).
    pub lossy: bool,
}

/// Timers and ACK batching of an open session (from the pipe's configuration).
#[derive(Clone, Copy, Debug)]
pub struct CoreConfig {
    /// Fault rules and backoff.
    pub fault: FaultPolicy,
    /// Longest silence of an open socket before it faults.
    pub read_timeout: Duration,
    /// An ACK is sent once this many messages are unacknowledged...
    pub ack_batch: u32,
    /// ...or this many payload bytes...
    pub ack_bytes: u64,
    /// ...or when the socket has been quiet this long with messages unacknowledged.
    pub ack_delay: Duration,
    /// A keepalive once the socket has been quiet this long (zero: never).
    pub keepalive_interval: Duration,
}

/// Limits of one [`SessionCore::poll_transmit`] batch.
#[derive(Clone, Copy, Debug)]
pub struct BatchLimits {
    /// Stop once this many payload bytes are taken (at least one message is).
    pub max_bytes: u64,
    /// Stop at this many messages.
    pub max_msgs: usize,
    /// Messages of a lossless session with at most this many payload bytes are handed to
    /// [`FrameSink::message`] and kept uncopied in the sent list; larger ones (and every
    /// message of a lossy session) are returned for the driver to encode outside its lock.
    pub small: u64,
}

/// The dialect's encoder, as [`SessionCore::poll_transmit`] calls it.
pub trait FrameSink {
    /// A keepalive (the dialect picks its form and its stamp).
    fn keepalive(&mut self);
    /// The answer to a peer's keepalive, echoing `stamp`.
    fn keepalive_ack(&mut self, stamp: Timespec);
    /// A small message with its seq set: seal and encode it now.
    fn message(&mut self, o: &mut Outgoing);
}

/// What one [`SessionCore::poll_transmit`] produced besides what it handed the sink.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Transmit {
    /// Messages handed to [`FrameSink::message`], and their payload bytes.
    pub staged: usize,
    /// Their payload bytes.
    pub staged_bytes: u64,
    /// The ACK to send after the batch's messages.
    pub ack: Option<u64>,
}

/// What [`SessionCore::handle_timeout`] found due.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Expired {
    /// A delayed ACK is due: transmit.
    pub ack: bool,
    /// The socket was silent for `read_timeout`: fault it.
    pub idle: bool,
    /// A keepalive was queued (the keepalive interval passed in silence): transmit.
    pub keepalive: bool,
}

/// One session's protocol state (Ceph's Connection + Pipe fields that outlive sockets):
/// queues, sequence numbers, the sent list, ACKs, keepalives, resend, fault rules, backoff
/// and the timer table, for every protocol. See the module docs.
#[derive(Debug)]
pub struct SessionCore {
    config: CoreConfig,
    phase: ConnState,
    out_q: OutQueues,
    sent: Fifo,
    /// Seq of the last message handed to a socket.
    out_seq: u64,
    /// Seq of the last message accepted from the peer.
    in_seq: u64,
    /// The last `in_seq` we acknowledged.
    in_seq_acked: u64,
    features: u64,
    lossy: bool,
    /// Marked disposable while open (Ceph's `mark_disposable`): the next fault ends the
    /// session with a Reset, as it would a lossy one, instead of reconnecting.
    disposable: bool,
    keepalive: bool,
    keepalive2_acks: VecDeque<Timespec>,
    last_keepalive: Option<Instant>,
    last_keepalive_ack: Option<Timespec>,
    /// Messages and payload bytes accepted since an ACK was last asked for.
    ack_pending: (u32, u64),
    backoff: Backoff,
    was_open: bool,
    queued_bytes: u64,
    resent: u64,
    timers: Timers,
    events: VecDeque<Event>,
    rng: SmallRng,
}

impl SessionCore {
    /// A fresh session in `phase`, lossy or not, with a seeded generator for `out_seq`
    /// randomisation.
    pub fn new(phase: ConnState, lossy: bool, config: CoreConfig, rng: SmallRng) -> Self {
        SessionCore {
            config,
            phase,
            out_q: OutQueues::default(),
            sent: Fifo::default(),
            out_seq: 0,
            in_seq: 0,
            in_seq_acked: 0,
            features: 0,
            lossy,
            disposable: false,
            keepalive: false,
            keepalive2_acks: VecDeque::new(),
            last_keepalive: None,
            last_keepalive_ack: None,
            ack_pending: (0, 0),
            backoff: Backoff::default(),
            was_open: false,
            queued_bytes: 0,
            resent: 0,
            timers: Timers::default(),
            events: VecDeque::new(),
            rng,
        }
    }

    fn set_phase(&mut self, phase: ConnState) {
        if self.phase != phase {
            self.phase = phase;
            self.events.push_back(Event::Phase(phase));
        }
    }

    // ---- state ----

    /// The current phase.
    pub fn phase(&self) -> ConnState {
        self.phase
    }

    /// Negotiated features (0 before the first handshake).
    pub fn features(&self) -> u64 {
        self.features
    }

    /// Effective lossiness.
    pub fn is_lossy(&self) -> bool {
        self.lossy
    }

    /// The session reached Open at least once.
    pub fn was_open(&self) -> bool {
        self.was_open
    }

    /// Seq of the last message handed to a socket.
    pub fn out_seq(&self) -> u64 {
        self.out_seq
    }

    /// Seq of the last message accepted from the peer.
    pub fn in_seq(&self) -> u64 {
        self.in_seq
    }

    /// When the last KEEPALIVE/KEEPALIVE2 arrived.
    pub fn last_keepalive(&self) -> Option<Instant> {
        self.last_keepalive
    }

    /// The stamp echoed by the last KEEPALIVE2_ACK (our clock when we sent the keepalive).
    pub fn last_keepalive_ack(&self) -> Option<Timespec> {
        self.last_keepalive_ack
    }

    /// True if a message (not just a keepalive) waits to be sent.
    pub fn has_messages(&self) -> bool {
        self.out_q.iter().any(|q| !q.is_empty())
    }

    /// Number of queued (unsent) messages.
    pub fn queued_len(&self) -> usize {
        self.out_q.iter().map(Fifo::len).sum()
    }

    /// Payload bytes of queued (unsent) messages.
    pub fn queued_bytes(&self) -> u64 {
        self.queued_bytes
    }

    /// Number of sent, unacknowledged messages.
    pub fn unacked_len(&self) -> usize {
        self.sent.len()
    }

    /// Messages taken for a second (or later) transmission.
    pub fn resent(&self) -> u64 {
        self.resent
    }

    /// Consecutive failed connection attempts since the last successful handshake.
    pub fn failed_attempts(&self) -> u32 {
        self.backoff.failed_attempts()
    }

    /// True if [`poll_transmit`](Self::poll_transmit) has anything to send.
    pub fn wants_transmit(&self) -> bool {
        self.keepalive
            || !self.keepalive2_acks.is_empty()
            || self.has_messages()
            || (!self.lossy && self.in_seq > self.in_seq_acked)
    }

    // ---- application inputs ----

    /// Appends a message to its priority's queue (priority 0 becomes the default, 127). A
    /// message queued while an ACK is owed carries that ACK: the delayed-ACK count starts over.
    /// Inlined into the driver's send, so the message is moved into its queue slot once more
    /// rather than once per call layer (callgrind: two 216-byte `memcpy`s per message here).
    #[inline(always)]
    pub fn send(&mut self, out: Outgoing) {
        self.enqueue(out);
        self.ack_rides_along();
    }

    /// Puts `out` at the end of its priority's queue (the priority normalised: 0 becomes the
    /// default) and counts its bytes.
    #[inline(always)]
    fn enqueue(&mut self, mut out: Outgoing) {
        let prio = out.msg.priority();
        out.msg.header.priority = prio;
        self.queued_bytes = self.queued_bytes.saturating_add(out.payload_len());
        self.out_q.get_or_insert(prio).push_back(out);
    }

    /// Messages were queued: the ACK owed goes out with them, the delayed-ACK count starts
    /// over.
    #[inline(always)]
    fn ack_rides_along(&mut self) {
        if self.ack_pending.0 > 0 {
            self.ack_pending = (0, 0);
            self.timers.stop(Timer::AckDelay);
        }
    }

    /// Appends every message of `from` to the out queues, in order, as
    /// [`send`](Self::send) would one by one: the block-append entry of the driver's inbox
    /// (messages submitted beside the session lock). While they share one priority (the
    /// common case) the blocks move whole into that priority's queue, no message moved
    /// (an `Outgoing` is over 200 bytes), and `from` gets that queue's spare blocks back
    /// for its next messages. Leaves `from` empty.
    pub fn send_all(&mut self, from: &mut Submitted) {
        if from.is_empty() {
            return;
        }
        let (fifo, prio, bytes) = from.parts();
        match prio {
            Some(prio) => {
                self.queued_bytes = self.queued_bytes.saturating_add(bytes);
                self.out_q.get_or_insert(prio).append(fifo);
            }
            None => self.send_mixed(fifo),
        }
        from.reset();
        self.ack_rides_along();
    }

    /// [`send_all`](Self::send_all) of messages of several priorities: one by one (cold).
    #[cold]
    #[inline(never)]
    fn send_mixed(&mut self, fifo: &mut Fifo) {
        while let Some(o) = fifo.pop_front() {
            self.enqueue(o);
        }
    }

    /// Asks for a keepalive.
    pub fn queue_keepalive(&mut self) {
        self.keepalive = true;
    }

    /// Ceph's `mark_disposable`: true if the session is open and now ends at its next fault.
    pub fn mark_disposable(&mut self) -> bool {
        self.disposable = self.phase == ConnState::Open;
        self.disposable
    }

    // ---- peer inputs ----

    /// A message with `seq` and `payload_len` payload bytes arrived: the sequence check
    /// (advancing `in_seq` unless it is a duplicate), and whether an ACK is due right away
    /// (`ack_batch` messages or `ack_bytes` bytes unacknowledged on a lossless session).
    pub fn handle_message(&mut self, seq: u64, payload_len: u64) -> (InSeq, bool) {
        let (n, b) = self.ack_pending;
        self.ack_pending = (n.saturating_add(1), b.saturating_add(payload_len));
        let verdict = if seq <= self.in_seq {
            InSeq::Duplicate
        } else if seq == self.in_seq + 1 {
            self.in_seq = seq;
            InSeq::Accept
        } else {
            self.in_seq = seq;
            InSeq::Gap
        };
        let (n, b) = self.ack_pending;
        let ack_now = verdict != InSeq::Duplicate
            && !self.lossy
            && (n >= self.config.ack_batch || b >= self.config.ack_bytes);
        if ack_now {
            self.ack_pending = (0, 0);
            self.timers.stop(Timer::AckDelay);
        }
        (verdict, ack_now)
    }

    /// A control frame arrived. Sent messages an ACK releases go to `done`, which frees the
    /// small ones at once and keeps their permits, merged, and the large ones for the caller
    /// to let go of outside any lock ([`Released::clear`]). Returns true if the frame asks for
    /// a transmission (a keepalive to answer); [`Control::Close`] is the caller's to fault on.
    pub fn handle_control(&mut self, now: Instant, c: Control, done: &mut Released) -> bool {
        match c {
            Control::Ack(acked) => {
                self.handle_ack(acked, done);
                false
            }
            Control::Keepalive => {
                self.last_keepalive = Some(now);
                false
            }
            Control::Keepalive2(stamp) => {
                self.last_keepalive = Some(now);
                self.keepalive2_acks.push_back(stamp);
                true
            }
            Control::Keepalive2Ack(stamp) => {
                self.last_keepalive_ack = Some(stamp);
                self.events.push_back(Event::KeepaliveAck(stamp));
                false
            }
            Control::Close => false,
        }
    }

    /// [`handle_control`](Self::handle_control) for an ACK, which needs no clock reading:
    /// the peer received every message up to `acked`; what that releases goes to `done`.
    pub fn handle_ack(&mut self, acked: u64, done: &mut Released) {
        // Whole blocks leave the sent list in one move each and are emptied outside the lock
        // (`Released::clear`); the blocks the last ACK's emptied go back to the out queues.
        let out_q = &mut self.out_q;
        done.recycle(|b| out_q.recycle(b));
        self.sent.release_front_while(|o| o.seq <= acked, done);
    }

    // ---- time ----

    /// The socket has nothing more to read for now: arms the idle timer (`read_timeout`
    /// from now), the keepalive timer (its interval from now, when set) and, with messages
    /// unacknowledged, the delayed ACK (`ack_delay` from now;
    /// data arriving before it pushes it out again, so a streaming peer gets an ACK every
    /// `ack_batch` messages and a quiet one `ack_delay` after its last message). Returns
    /// [`poll_timeout`](Self::poll_timeout).
    pub fn handle_idle(&mut self, now: Instant) -> Option<Instant> {
        self.timers.arm(Timer::Idle, now, self.config.read_timeout);
        if !self.config.keepalive_interval.is_zero() {
            self.timers
                .arm(Timer::Keepalive, now, self.config.keepalive_interval);
        }
        if self.ack_pending.0 > 0 {
            let delay = self.config.ack_delay.min(self.config.read_timeout);
            self.timers.arm(Timer::AckDelay, now, delay);
        }
        self.poll_timeout()
    }

    /// Handles every deadline due at `now`: a delayed ACK becomes due, a keepalive is queued
    /// after the keepalive interval of silence, a silent socket is reported, a WAIT or a backoff ends (the session turns to Connecting; the driver
    /// attempts while [`poll_timeout`](Self::poll_timeout) has nothing for it).
    pub fn handle_timeout(&mut self, now: Instant) -> Expired {
        let mut exp = Expired::default();
        if self.timers.expire(Timer::AckDelay, now) && self.ack_pending.0 > 0 {
            self.ack_pending = (0, 0);
            exp.ack = !self.lossy;
        }
        exp.idle = self.timers.expire(Timer::Idle, now);
        if self.timers.expire(Timer::Keepalive, now) && self.phase == ConnState::Open {
            self.keepalive = true;
            exp.keepalive = true;
        }
        let reconnect_over = self.timers.expire(Timer::Reconnect, now)
            || self.timers.get(Timer::Reconnect).is_none();
        if reconnect_over && self.phase == ConnState::Wait {
            self.set_phase(ConnState::Connecting);
        }
        exp
    }

    /// The earliest deadline of the timer table.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// The next outgoing attempt need not wait (a peer that lost a race waits for it).
    pub fn expedite_reconnect(&mut self) -> bool {
        if self.phase == ConnState::Connecting {
            self.timers.stop(Timer::Reconnect);
            true
        } else {
            false
        }
    }

    // ---- outputs ----

    /// The next event for watchers.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The next batch to send: pending keepalives and keepalive acks, then queued messages
    /// highest priority first and FIFO within one, each given `seq = ++out_seq` now, until
    /// `limits` (at least one message if any is queued). Small messages of a lossless
    /// session go to `sink` (the sent list keeps the only copy); the others are appended
    /// to `out` (lossless: a copy without the permit, the original staying in the sent list
    /// until acked; lossy: the original). A batch is either all small or all others. The
    /// ACK owed, if any, is in the result: the driver puts it after `out`'s messages.
    pub fn poll_transmit<S: FrameSink>(
        &mut self,
        limits: &BatchLimits,
        sink: &mut S,
        out: &mut Vec<Outgoing>,
    ) -> Transmit {
        if std::mem::take(&mut self.keepalive) {
            sink.keepalive();
        }
        while let Some(ts) = self.keepalive2_acks.pop_front() {
            sink.keepalive_ack(ts);
        }
        let (staged, staged_bytes) = if self.has_messages() {
            self.take_batch(limits, Some(sink), out)
        } else {
            (0, 0)
        };
        let ack = if !self.lossy && self.in_seq > self.in_seq_acked {
            self.in_seq_acked = self.in_seq;
            self.ack_pending = (0, 0);
            self.timers.stop(Timer::AckDelay);
            Some(self.in_seq)
        } else {
            None
        };
        Transmit {
            staged,
            staged_bytes,
            ack,
        }
    }

    fn take_batch<S: FrameSink>(
        &mut self,
        limits: &BatchLimits,
        mut sink: Option<&mut S>,
        out: &mut Vec<Outgoing>,
    ) -> (usize, u64) {
        let mut bytes = 0u64;
        let mut taken = 0usize;
        let mut staged = 0usize;
        let mut batch_small = None;
        let lossy = self.lossy;
        while (bytes < limits.max_bytes && taken < limits.max_msgs) || taken == 0 {
            let Some(q) = self.out_q.highest_nonempty() else {
                break;
            };
            let small = |o: &Outgoing| sink.is_some() && !lossy && o.payload_len() <= limits.small;
            let is_small = q.front().is_some_and(small);
            if *batch_small.get_or_insert(is_small) != is_small {
                break;
            }
            let mut n = Numbering {
                out_seq: &mut self.out_seq,
                resent: &mut self.resent,
                queued_bytes: &mut self.queued_bytes,
            };
            // A whole block of the queue that fits the batch moves to the sent list at once
            // and is numbered and encoded there: no copy of its entries (224 bytes each).
            if !lossy {
                let (room_msgs, room_bytes) = (
                    limits.max_msgs.saturating_sub(taken),
                    limits.max_bytes.saturating_sub(bytes),
                );
                let fits = |b: &VecDeque<Outgoing>| {
                    b.len() <= room_msgs
                        && b.iter().all(|o| small(o) == is_small)
                        && b.iter().map(Outgoing::payload_len).sum::<u64>() <= room_bytes
                };
                if let Some(b) = q.pop_front_block_if(fits) {
                    for o in self.sent.push_back_block(b).into_iter().flatten() {
                        bytes = bytes.saturating_add(n.number(o));
                        taken += 1;
                        match sink.as_mut().filter(|_| is_small) {
                            Some(s) => {
                                s.message(o);
                                staged += 1;
                            }
                            None => out.push(o.copy()),
                        }
                    }
                    continue;
                }
            }
            let Some(o) = q.pop_front() else {
                break;
            };
            // Moved once, from its queue to where it stays (the sent list, or `out`), and
            // numbered and encoded there: an `Outgoing` is over 200 bytes.
            let o = if lossy {
                out.push(o);
                out.last_mut()
            } else {
                self.sent.push_back(o)
            };
            let Some(o) = o else {
                break;
            };
            bytes = bytes.saturating_add(n.number(o));
            taken += 1;
            let copy = if let (true, Some(s)) = (is_small, sink.as_mut()) {
                s.message(o);
                staged += 1;
                None
            } else if !lossy {
                Some(o.copy())
            } else {
                None
            };
            out.extend(copy);
        }
        if staged > 0 {
            (staged, bytes)
        } else {
            (0, 0)
        }
    }

    // ---- handshakes and faults ----

    /// A handshake succeeded: the stream starts. The backoff starts over, as Ceph's
    /// `Pipe::connect` and `ProtocolV1` set `backoff = 0` on every successful handshake: only
    /// consecutive *failed* attempts back off. A peer that accepts TCP and hangs up before the
    /// handshake completes fails attempts, so it is met with the doubling backoff; one that
    /// completes handshakes costs a full round trip per attempt, as it does Ceph.
    pub fn opened(&mut self, est: Established) {
        self.features = est.features;
        self.lossy = est.lossy;
        self.set_phase(ConnState::Open);
        self.was_open = true;
        self.backoff.reset();
        self.timers.stop(Timer::Reconnect);
    }

    /// An incoming socket starts its handshake on this session (a replace, or a new
    /// session's own), having negotiated `features`: the socket and any outgoing attempt are
    /// abandoned, unacknowledged messages requeued.
    pub fn begin_accept(&mut self, features: u64) {
        self.features = features;
        self.requeue_sent();
        self.clear_socket_timers();
        self.timers.stop(Timer::Reconnect);
        self.set_phase(ConnState::Accepting);
    }

    /// The peer restarted its side of the session without a reset: the incoming sequence
    /// starts over.
    pub fn restart_in_seq(&mut self) {
        self.in_seq = 0;
        self.in_seq_acked = 0;
        self.ack_pending = (0, 0);
    }

    fn clear_socket_timers(&mut self) {
        self.timers.stop(Timer::AckDelay);
        self.timers.stop(Timer::Idle);
        self.timers.stop(Timer::Keepalive);
        self.ack_pending = (0, 0);
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

    /// Applies the peer's acknowledged seq from a reconnect: drops requeued messages with
    /// `0 < seq <= acked` from the head of the highest priority queue, advancing `out_seq`
    /// for each; when nothing is requeued at all, sets `out_seq = acked` (spec §5.6, Async
    /// `discard_requeued_up_to`). Returns the discarded messages (release permits outside
    /// the lock).
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
    /// sent, restart `in_seq` at 0, randomise `out_seq` in `[0, 0x7fffffff]` if MSG_AUTH is
    /// negotiated (else 0). Returns the discarded messages.
    pub fn reset_session(&mut self) -> Vec<Outgoing> {
        let dropped = self.drain_all();
        self.in_seq = 0;
        self.in_seq_acked = 0;
        self.ack_pending = (0, 0);
        self.keepalive2_acks.clear();
        self.out_seq = if features::has(self.features, features::MSG_AUTH) {
            u64::from(self.rng.gen_range(0..=0x7fff_ffffu32))
        } else {
            0
        };
        dropped
    }

    fn drain_all(&mut self) -> Vec<Outgoing> {
        let mut dropped = Vec::new();
        self.sent.drain_into(&mut dropped);
        for mut q in std::mem::take(&mut self.out_q).into_iter() {
            q.drain_into(&mut dropped);
        }
        self.queued_bytes = 0;
        dropped
    }

    /// Ends the session for good: Closed, every queued and sent message discarded (and
    /// returned), every timer stopped.
    pub fn close(&mut self) -> Vec<Outgoing> {
        self.set_phase(ConnState::Closed);
        self.keepalive = false;
        self.keepalive2_acks.clear();
        self.timers = Timers::default();
        self.drain_all()
    }

    /// The socket ended (spec §6.5). Sets the new phase, arms the reconnect timer and says
    /// what to do; the caller has already detached the socket. Lossless sessions get their
    /// sent list requeued. `stage` is where an incoming handshake stood, when accepting.
    pub fn handle_fault(
        &mut self,
        now: Instant,
        cause: FaultCause,
        stage: Option<AcceptStage>,
    ) -> FaultAction {
        if matches!(self.phase, ConnState::Closed | ConnState::Standby) {
            return FaultAction::None;
        }
        self.clear_socket_timers();
        if (self.lossy || self.disposable) && self.was_open {
            self.set_phase(ConnState::Closed);
            return FaultAction::Close { reset: true };
        }
        let mut renew = self.phase == ConnState::Open;
        if self.phase == ConnState::Accepting {
            match stage.unwrap_or(AcceptStage::Answered) {
                // Our reply never left: the peer knows nothing of this session. Close it,
                // unless the application already queued messages on it (Simple keeps such a
                // pipe and connects out).
                AcceptStage::NeverAnswered if !self.has_messages() => {
                    self.set_phase(ConnState::Closed);
                    return FaultAction::Close { reset: false };
                }
                AcceptStage::NeverAnswered => renew = false,
                // A replace that failed before our reply left: back to what the session was.
                AcceptStage::Abandoned => renew = self.was_open,
                // A new session whose answer was sent: the peer may believe it open and
                // come back. Keep it (quietly) unless it is lossy.
                AcceptStage::AnsweredNew => {
                    if self.lossy {
                        self.set_phase(ConnState::Closed);
                        return FaultAction::Close { reset: false };
                    }
                    self.requeue_sent();
                    self.set_phase(ConnState::Standby);
                    return FaultAction::Standby;
                }
                // Our reply left: the peer may hold the session open.
                AcceptStage::Answered => renew = true,
            }
        }
        self.requeue_sent();
        let policy = self.config.fault;
        if cause == FaultCause::RaceLost {
            self.set_phase(ConnState::Wait);
            self.timers.arm(Timer::Reconnect, now, policy.max_backoff);
            return FaultAction::Wait {
                max: policy.max_backoff,
            };
        }
        if (policy.standby && !self.has_messages() && !self.keepalive) || policy.server {
            self.set_phase(ConnState::Standby);
            return FaultAction::Standby;
        }
        // The fault of an open session reconnects at once (Ceph: `backoff = 0` when leaving
        // an open state); only a failed attempt after it backs off.
        let after = if renew {
            Duration::ZERO
        } else {
            self.backoff.next(&policy)
        };
        self.set_phase(ConnState::Connecting);
        self.timers.arm(Timer::Reconnect, now, after);
        FaultAction::Reconnect { after, renew }
    }

    /// Leaves Standby because a message was queued (non-server only): true if the session
    /// now connects, without backoff.
    pub fn wake_from_standby(&mut self) -> bool {
        if self.phase != ConnState::Standby || !self.has_messages() {
            return false;
        }
        self.set_phase(ConnState::Connecting);
        self.backoff.reset();
        true
    }
}

/// What taking a message for transmission changes in the core (split from `SessionCore`
/// so a block of the sent list can be numbered while it is borrowed).
struct Numbering<'a> {
    out_seq: &'a mut u64,
    resent: &'a mut u64,
    queued_bytes: &'a mut u64,
}

impl Numbering<'_> {
    /// Gives `o` the next seq (counting a resend) and returns its payload bytes.
    #[inline(always)]
    fn number(&mut self, o: &mut Outgoing) -> u64 {
        let len = o.payload_len();
        *self.queued_bytes = self.queued_bytes.saturating_sub(len);
        *self.out_seq = self.out_seq.wrapping_add(1);
        if o.seq != 0 {
            *self.resent += 1;
        }
        o.seq = *self.out_seq;
        o.msg.header.seq = *self.out_seq;
        len
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
