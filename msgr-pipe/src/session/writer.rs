//! The sending side of one socket, a driver: what [`SessionCore::poll_transmit`] gives
//! (keepalives, keepalive acks, a batch of messages, the ACK owed), encoded by the v1
//! [`Encoder`] into one vectored write (payloads not copied: small pieces are staged in one
//! buffer, segments of [`COPY_THRESHOLD`] (2 KiB) or more go out from their own buffers,
//! except in a write of at most [`SMALL_WRITE`] payload bytes, staged whole).
//!
//!
//! [`SessionCore::poll_transmit`]: crate::core::SessionCore::poll_transmit
//! [`SMALL_WRITE`]: crate::v1::codec::SMALL_WRITE
//!
//! Who writes: the write half and its buffers ([`Out`]) sit in a [`Pen`] whenever nobody is
//! writing. The writer task takes them when woken and writes until the session has nothing
//! to send. The reader takes them when its deliveries queued something (a reply from fast
//! dispatch): it writes one batch itself, as far as the socket takes it without waiting
//! ([`end_delivery`]), and leaves the rest to the writer task. A request/response exchange
//! then costs no hop to another task on either end.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll, Waker};

use bytes::{Bytes, BytesMut};
use msgr_wire::{features, FooterKind};
use tokio::io::AsyncWrite;
use tokio::sync::Notify;
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};
use tracing::Instrument;

use super::{bump, relock, Inner, Shared};
use crate::core::FrameSink;
use crate::core::{BatchLimits, Outgoing};
use crate::error::PipeError;
use crate::host::MessageSigner;
use crate::transport::{poll_write_chain, WriteSide};
use crate::v1::codec::{copy_threshold, stage_len, Encoder, COPY_THRESHOLD};
use crate::v2::session::Sink as V2Sink;

pub(super) async fn run(
    inner: Arc<Inner>,
    epoch: u64,
    cancel: CancellationToken,
    wake: Arc<Notify>,
    pen: Arc<Pen>,
) {
    let span = tracing::debug_span!("writer", conn = inner.id, peer = %inner.peer_addr, epoch);
    let res = write_loop(&inner, epoch, &cancel, &wake, &pen)
        .instrument(span)
        .await;
    if let Err(e) = res {
        if !matches!(e, PipeError::Superseded) {
            inner.socket_fault(epoch, &e);
        }
    }
}

/// Messages with at most this many payload bytes are staged under the session lock (see
/// [`BatchLimits::small`]); every segment of one is below the copy threshold.
const SMALL_MESSAGE: u64 = 512;

/// A batch that staged at least this many bytes under the session lock is a stream's: the
/// next one starts at the front of the stage's allocation once less than half of it is left
/// (see [`Out::take`]).
const STAGE_STREAM: usize = 1024;

/// Most messages taken for one write: bounds the batch vector and the staging buffer when
/// messages are tiny (4 MiB of 64-byte messages would be 65,536 of them).
const WRITE_BATCH_MSGS: usize = 1024;

/// The sending side of one socket: its write half, the batch being written and the buffers
/// reused from batch to batch. The writer task owns it and leaves it in the [`Pen`] while it
/// waits for work; whoever takes it from there is the one writer of the socket until it puts
/// it back.
pub(super) struct Out {
    w: WriteSide,
    /// The dialect's encoding state.
    codec: OutCodec,
    /// Bytes of the batch written so far, then the rest of it after a partial write.
    chain: VecDeque<Bytes>,
    // Reused across batches: once a batch's write completes, its frozen part is dropped and
    // `reserve` reclaims the same allocation (no malloc/free or regrowth per batch). Grows to
    // the batches it carries (amortised doubling, kept across batches), so an idle session
    // holds only what its largest batch needed.
    stage: BytesMut,
    /// The size of `stage`'s allocation, as last seen: reserved whole, from the
    /// allocation's start, once less than half of it is left (see [`Out::take`]).
    stage_room: usize,
    /// Bytes the last batch staged under the session lock.
    stage_last: usize,
    /// The batch's messages not staged under the lock; reused (cleared once written).
    msgs: Vec<Outgoing>,
    /// What the batch in `chain` carries, counted once it is all written.
    batch: Written,
    /// The `ack_requests` count the last nudge answered.
    nudged_for: u64,
    /// Our `in_seq` when the batch was taken: msgr2 messages carry it as `ack_seq`.
    in_seq: u64,
}

/// How one socket's frames are encoded.
pub(super) enum OutCodec {
    /// msgr v1: the footer of the negotiated features, KEEPALIVE2 if the peer speaks it, a
    /// signer on an authorized connection.
    V1 {
        kind: FooterKind,
        ka2: bool,
        signer: Option<MessageSigner>,
    },
    /// msgr2: the connection's frame encoder (crc or secure mode).
    V2(Box<crate::v2::frame::Encoder>),
}

impl OutCodec {
    /// v1's codec for a socket with `features`.
    pub(super) fn v1(features: u64, signer: Option<MessageSigner>) -> OutCodec {
        OutCodec::V1 {
            kind: FooterKind::for_features(features),
            ka2: features::has(features, features::MSGR_KEEPALIVE2),
            signer,
        }
    }

    fn ka2(&self) -> bool {
        match self {
            OutCodec::V1 { ka2, .. } => *ka2,
            OutCodec::V2(_) => true,
        }
    }
}

/// The encoder of either dialect, over one batch's buffers.
enum Sink<'a> {
    V1(Encoder<'a>),
    V2(V2Sink<'a>),
}

impl Sink<'_> {
    /// Encodes a copy taken by [`Out::take`] (v1 moves its large segments onto the chain).
    fn encode_copy(&mut self, o: &mut Outgoing) {
        match self {
            Sink::V1(e) => e.encode_copy(o),
            Sink::V2(e) => e.encode_message(o),
        }
    }

    fn keepalive2(&mut self) {
        match self {
            Sink::V1(e) => e.keepalive2(),
            Sink::V2(e) => e.keepalive2(),
        }
    }

    fn ack(&mut self, seq: u64) {
        match self {
            Sink::V1(e) => e.ack(seq),
            Sink::V2(e) => e.ack(seq),
        }
    }

    /// v1: freezes what is staged onto the chain (v2's frames stay staged: the caller
    /// moves them).
    fn finish(&mut self) {
        if let Sink::V1(e) = self {
            e.finish();
        }
    }
}

impl FrameSink for Sink<'_> {
    fn keepalive(&mut self) {
        match self {
            Sink::V1(e) => e.keepalive(),
            Sink::V2(e) => e.keepalive(),
        }
    }

    fn keepalive_ack(&mut self, stamp: msgr_wire::Timespec) {
        match self {
            Sink::V1(e) => e.keepalive_ack(stamp),
            Sink::V2(e) => e.keepalive_ack(stamp),
        }
    }

    fn message(&mut self, o: &mut Outgoing) {
        match self {
            Sink::V1(e) => FrameSink::message(e, o),
            Sink::V2(e) => FrameSink::message(e, o),
        }
    }
}

/// What one batch carries, for the session counters.
#[derive(Default)]
struct Written {
    msgs: u64,
    bytes: u64,
    ack: bool,
}

/// Where the writer task leaves the socket's [`Out`] while it waits.
pub(super) struct Pen {
    slot: Mutex<PenSlot>,
}

struct PenSlot {
    /// `None` while someone (the writer task, or the reader sending replies) is writing.
    out: Option<Box<Out>>,
    /// The writer task was woken while the reader held `out`: the reader must wake it again
    /// when it puts `out` back.
    missed: bool,
}

impl Pen {
    /// A pen holding the sending side of a newly attached socket.
    pub(super) fn new(w: WriteSide, codec: OutCodec, inner: &Inner) -> Pen {
        let out = Out {
            w,
            codec,
            chain: VecDeque::new(),
            stage: BytesMut::new(),
            stage_room: 0,
            stage_last: 0,
            msgs: Vec::new(),
            batch: Written::default(),
            nudged_for: inner.ack_requests.load(Ordering::Acquire),
            in_seq: 0,
        };
        Pen {
            slot: Mutex::new(PenSlot {
                out: Some(Box::new(out)),
                missed: false,
            }),
        }
    }

    /// Takes `out` for the writer task; if the reader holds it, records the missed wake-up.
    fn take_for_writer(&self) -> Option<Box<Out>> {
        let mut slot = relock(&self.slot);
        let out = slot.out.take();
        slot.missed |= out.is_none();
        out
    }

    /// Takes `out` for the reader, if nobody holds it.
    fn take(&self) -> Option<Box<Out>> {
        relock(&self.slot).out.take()
    }

    /// Puts `out` back; true if the writer task was woken meanwhile and found it gone.
    fn put(&self, out: Box<Out>) -> bool {
        let mut slot = relock(&self.slot);
        slot.out = Some(out);
        std::mem::take(&mut slot.missed)
    }
}

/// What [`Out::take`] took from the session under its lock, to stage outside it.
struct Taken {
    /// What the core's transmit produced.
    tx: crate::core::Transmit,
    /// A KEEPALIVE2 after the messages, for a sender out of budget (its answer brings the ACK).
    nudge: bool,
}

impl Out {
    /// Takes the next batch from the session (keepalives and their acks, messages, the ACK)
    /// and stages it onto `chain`, which must be empty. Leaves `chain` empty if there is
    /// nothing to send.
    fn fill(&mut self, inner: &Inner, epoch: u64) -> Result<(), PipeError> {
        let taken = {
            let mut sh = inner.lock();
            if !sh.link.is_current(epoch) {
                return Err(PipeError::Superseded);
            }
            self.take(&mut sh, inner)
        };
        self.stage_taken(taken, inner);
        Ok(())
    }

    fn encoder<'a>(
        crc: msgr_wire::CrcFlags,
        codec: &'a mut OutCodec,
        chain: &'a mut VecDeque<Bytes>,
        stage: &'a mut BytesMut,
        in_seq: u64,
        copy_threshold: usize,
    ) -> Sink<'a> {
        match codec {
            OutCodec::V1 { kind, ka2, signer } => Sink::V1(Encoder {
                crc,
                kind: *kind,
                ka2: *ka2,
                chain,
                stage,
                signer: signer.as_ref(),
                copy_threshold,
            }),
            OutCodec::V2(enc) => Sink::V2(V2Sink {
                enc,
                out: stage,
                chain,
                in_seq,
                crc,
                copy_threshold,
            }),
        }
    }

    /// The part of [`fill`](Self::fill) under the session lock: the core's transmit, control
    /// frames and small messages encoded, larger messages taken into `msgs`.
    fn take(&mut self, sh: &mut Shared, inner: &Inner) -> Taken {
        let limits = BatchLimits {
            max_bytes: inner.config.write_batch_bytes,
            max_msgs: WRITE_BATCH_MSGS,
            small: SMALL_MESSAGE,
        };
        let Out {
            chain,
            stage,
            msgs,
            codec,
            in_seq,
            stage_room,
            stage_last,
            ..
        } = self;
        msgs.clear();
        *in_seq = sh.core.in_seq();
        // The stage is empty here (the last batch was frozen onto the chain and written,
        // which let go of it), but it starts where the last batch ended, with only the rest
        // of the allocation as capacity. Reserving the whole allocation (at least twice the
        // last batch) moves it back to the allocation's start, with nothing to copy. Without
        // that the rest ran out in the middle of a batch, and `BytesMut::reserve` copied the
        // batch so far to the front or reallocated it (callgrind, msgr2 crc 64 B stream:
        // 31–56 instructions per message in most runs). After a stream's batch (many
        // messages, their sizes varying) once less than half of the allocation is left;
        // after a small one only once what is left would not hold it again: a round trip's
        // one-message batches paid 100 instructions per round trip for a reserve per batch,
        // and a session that made one round trip keeps a stage of its own size, not more.
        let want = (*stage_room).max(2 * *stage_last);
        let short = if *stage_last >= STAGE_STREAM {
            stage.capacity() < want / 2
        } else {
            stage.capacity() < *stage_last
        };
        if short && sh.core.has_messages() {
            stage.reserve(want);
        }
        let crc = inner.config.crc;
        let mut enc = Self::encoder(crc, codec, chain, stage, *in_seq, COPY_THRESHOLD);
        let tx = sh.core.poll_transmit(&limits, &mut enc, msgs);
        *stage_last = stage.len();
        *stage_room = (*stage_room).max(stage.capacity());
        // A sender waits for budget and this batch leaves nothing queued (all the sender
        // waits for is written): end it with a KEEPALIVE2. While messages stay queued the
        // writer is the bottleneck, and the peer's own ACKs keep up.
        let requests = inner.ack_requests.load(Ordering::Acquire);
        let nudge = self.codec.ka2()
            && !inner.policy.lossy
            && !sh.core.has_messages()
            && inner.blocked_senders.load(Ordering::Acquire) > 0
            && (requests != self.nudged_for || tx.staged > 0 || !self.msgs.is_empty());
        self.nudged_for = requests;
        Taken { tx, nudge }
    }

    /// The part of [`fill`](Self::fill) outside the session lock: encodes the larger
    /// messages, the nudge and the ACK, and closes the chain.
    fn stage_taken(&mut self, t: Taken, inner: &Inner) {
        let Out {
            chain,
            stage,
            msgs,
            codec,
            in_seq,
            ..
        } = self;
        // A small write (a round trip's one message) is staged whole and goes out in one
        // contiguous `send`; a larger one chains its large segments (`copy_threshold`).
        let payload = msgs
            .iter()
            .fold(t.tx.staged_bytes, |n, o| n.saturating_add(o.payload_len()));
        let threshold = copy_threshold(payload);
        let v2 = match codec {
            OutCodec::V1 { .. } => {
                stage.reserve(stage_len(msgs, threshold));
                false
            }
            OutCodec::V2(enc) => {
                stage.reserve(crate::v2::session::stage_len(
                    msgs,
                    enc.is_secure(),
                    threshold,
                ));
                true
            }
        };
        let mut enc = Self::encoder(inner.config.crc, codec, chain, stage, *in_seq, threshold);
        for o in msgs.iter_mut() {
            enc.encode_copy(o);
        }
        if t.nudge {
            enc.keepalive2();
        }
        if let Some(seq) = t.tx.ack {
            enc.ack(seq);
        }
        enc.finish();
        if v2 && !stage.is_empty() {
            chain.push_back(stage.split().freeze());
        }
        if chain.is_empty() {
            return;
        }
        let n = msgs.len() + t.tx.staged;
        tracing::trace!(msgs = n, ack = ?t.tx.ack, "writing");
        self.batch = Written {
            msgs: n as u64,
            bytes: payload,
            ack: t.tx.ack.is_some(),
        };
    }

    /// The batch is all written: counts it and lets its lossy messages (and their permits) go.
    fn written(&mut self, inner: &Inner) {
        let b = std::mem::take(&mut self.batch);
        let c = &inner.counters;
        bump(&c.msgs_out, b.msgs);
        bump(&c.bytes_out, b.bytes);
        if b.ack {
            bump(&c.acks_out, 1);
        }
        self.msgs.clear();
    }

    /// Polls the write of `chain` and the flush after it.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        ready!(poll_write_chain(Pin::new(&mut self.w), cx, &mut self.chain))?;
        Pin::new(&mut self.w).poll_flush(cx)
    }

    /// Writes `chain` as far as the socket takes it without waiting; `Ok(true)` once it is
    /// all written (and counted).
    fn send_now(&mut self, inner: &Inner) -> Result<bool, PipeError> {
        let mut cx = Context::from_waker(Waker::noop());
        match self.poll_send(&mut cx) {
            Poll::Ready(Ok(())) => {
                self.written(inner);
                Ok(true)
            }
            Poll::Ready(Err(e)) => Err(e.into()),
            Poll::Pending => Ok(false),
        }
    }
}

async fn write_loop(
    inner: &Arc<Inner>,
    epoch: u64,
    cancel: &CancellationToken,
    wake: &Notify,
    pen: &Pen,
) -> Result<(), PipeError> {
    // Registered with the token once, not once per wait or write.
    let cancelled = cancel.cancelled();
    tokio::pin!(cancelled);
    loop {
        let notified = wake.notified();
        // Not in the pen: the reader is flushing a reply, and wakes us if it leaves work.
        if let Some(mut out) = pen.take_for_writer() {
            let res = drain(inner, epoch, &mut out, cancelled.as_mut()).await;
            pen.put(out);
            res?;
        }
        tokio::select! {
            _ = notified => {}
            () = &mut cancelled => return Err(PipeError::Superseded),
        }
    }
}

/// Writes batches until the session has nothing more to send.
async fn drain(
    inner: &Inner,
    epoch: u64,
    out: &mut Out,
    mut cancelled: Pin<&mut WaitForCancellationFuture<'_>>,
) -> Result<(), PipeError> {
    loop {
        if out.chain.is_empty() {
            out.fill(inner, epoch)?;
            if out.chain.is_empty() {
                return Ok(());
            }
        }
        tokio::select! {
            res = poll_fn(|cx| out.poll_send(cx)) => res?,
            () = &mut cancelled => return Err(PipeError::Superseded),
        }
        out.written(inner);
    }
}

/// Ends a run of deliveries by the reader (see `SocketSlot::delivering`): what they queued
/// woke no writer, so it is sent now, from the calling task if the writer task is idle (a
/// request/response peer then waits for no task hop on either end): one batch, as far as
/// the socket takes it without waiting. The writer task is woken for whatever is left, and
/// does it all if it is busy. `Ok(true)` if the deliveries queued messages (replies).
pub(super) fn end_delivery(
    inner: &Inner,
    epoch: u64,
    pen: &Pen,
    wake: &Notify,
) -> Result<bool, PipeError> {
    let (mut out, taken, more) = {
        // Not drained here: `Inbox::end_delivery` drains below, in the same critical
        // section that clears `delivering` (one inbox lock, not two).
        let mut sh = inner.lock_undrained();
        let Some(slot) = sh.link.socket.as_mut().filter(|s| s.epoch == epoch) else {
            return Err(PipeError::Superseded);
        };
        slot.delivering = false;
        // Clears the senders' `delivering` and takes what they pushed meanwhile in one
        // inbox critical section: a later push wakes the writer task itself.
        if !inner.inbox.end_delivery(&mut sh.core) {
            return Ok(false);
        }
        // Busy (or holding the rest of a batch): the writer task fills batches until the
        // session has nothing more to send.
        let mut out = match pen.take() {
            Some(out) if out.chain.is_empty() => out,
            other => {
                if let Some(out) = other {
                    pen.put(out);
                }
                drop(sh);
                wake.notify_one();
                return Ok(true);
            }
        };
        let taken = out.take(&mut sh, inner);
        // More than one batch was queued: the writer task sends the rest.
        let more = sh.core.wants_transmit();
        (out, taken, more)
    };
    out.stage_taken(taken, inner);
    let res = if out.chain.is_empty() {
        Ok(true)
    } else {
        bump(&inner.counters.inline_writes, 1);
        out.send_now(inner)
    };
    let done = matches!(res, Ok(true));
    // A queue after `delivering` was cleared woke a writer task that may have found the pen
    // empty (`missed`): it is woken again, as for the rest of a batch or more batches.
    let missed = pen.put(out);
    if res.is_ok() && (!done || more || missed) {
        wake.notify_one();
    }
    res.map(|_| true)
}
