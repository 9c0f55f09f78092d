//! The reader task of one socket, a driver: bytes into the v1 decoder, each frame into the
//! core ([`SessionCore::handle_message`], [`SessionCore::handle_control`]), accepted
//! messages to the host; the inbound throttles are taken before a message body is read.
//! When the socket has nothing to read it asks the core for the one deadline to arm
//! ([`SessionCore::handle_idle`]) and hands it the expiry ([`SessionCore::handle_timeout`]):
//! the delayed ACK and the read timeout are the core's rules, not this loop's.
//!
//! [`SessionCore::handle_message`]: crate::core::SessionCore::handle_message
//! [`SessionCore::handle_control`]: crate::core::SessionCore::handle_control
//! [`SessionCore::handle_idle`]: crate::core::SessionCore::handle_idle
//! [`SessionCore::handle_timeout`]: crate::core::SessionCore::handle_timeout

use std::future::{poll_fn, Future};
use std::io;
use std::panic::AssertUnwindSafe;
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;

use bytes::BytesMut;
use msgr_dispatch::{BorrowedPermit, Throttle, ThrottlePermit};
use msgr_wire::{EntityName, FooterKind, Frame, FrameDecoder, Frames, Message, MsgHeader};
use tokio::io::AsyncReadExt;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::writer::{self, Pen};
use super::{bump, bump_delivered, now, relock, Inner};
use crate::core::{Control, InSeq, Released};
use crate::error::PipeError;
use crate::host::MessageSigner;
use crate::host::{Deliver, Incoming};
use crate::transport::ReadSide;
use crate::v1::codec::{check_signature, inbound, Inbound};

mod readbuf;

use readbuf::{Kept, ReadBuf, READ_CHUNK};

/// Most bytes taken by one read, even into a large body's reserved buffer: the decoder folds
/// each read's share of a data segment into its CRC right after the read, while those bytes
/// are still in the core's L2 cache (512 KiB here). Measured on 4 MiB streams, 16 alternating
/// pairs of runs: median 0.82 of raw TCP against 0.78 with uncapped reads.
const MAX_READ: usize = 256 * 1024;

/// Permits taken for the message whose body is being read.
/// The dispatch permit borrows the reader's handle on the host's dispatch throttle (no
/// `Arc` clone and drop per message).
struct Permits<'a> {
    policy: Vec<ThrottlePermit>,
    dispatch: Option<BorrowedPermit<'a>>,
}

/// The socket a reader serves, and the writer side it may flush replies through.
pub(super) struct Socket {
    pub epoch: u64,
    pub cancel: CancellationToken,
    /// Wakes the socket's writer task.
    pub wake: Arc<Notify>,
    /// The socket's sending side, for [`writer::end_delivery`].
    pub pen: Arc<Pen>,
}

/// How one socket's bytes are decoded.
pub(super) enum InCodec {
    /// msgr v1 with the negotiated features; a signer checks each message's signature.
    V1 {
        features: u64,
        signer: Option<MessageSigner>,
    },
    /// msgr2: the connection's frame decoder (crc or secure mode), the peer's name (the
    /// sender of every message), and the bytes read past the handshake.
    V2 {
        dec: Box<crate::v2::frame::Decoder>,
        peer: EntityName,
        leftover: BytesMut,
    },
}

/// A message whose signature did not check (cold: kept out of the read loop's code).
#[cold]
#[inline(never)]
fn bad_signature(seq: u64) -> PipeError {
    tracing::warn!(seq, "signature check failed");
    PipeError::BadSignature { seq }
}

/// msgr2's next frame, out of line: its decoder is not inlined into the read loop, whose
/// v1 path then spans fewer cache lines.
#[inline(never)]
fn next_v2(
    dec: &mut crate::v2::frame::Decoder,
    buf: &mut BytesMut,
    peer: EntityName,
) -> Result<Option<(Inbound, u64)>, PipeError> {
    crate::v2::session::next_inbound(dec, buf, peer)
}

/// v1 frames as the core takes them (no piggybacked ACK: `ack_seq` 0), built in place by
/// [`FrameDecoder::decode_into`].
enum V1Items {}

impl Frames for V1Items {
    type Item = (Inbound, u64);
    type Error = PipeError;

    #[inline(always)]
    fn message(m: Message) -> (Inbound, u64) {
        (Inbound::Message(m), 0)
    }

    #[inline(always)]
    fn control(f: Frame) -> (Inbound, u64) {
        (inbound(f), 0)
    }
}

/// The decoder of either dialect.
enum Dec {
    V1(FrameDecoder, Option<MessageSigner>),
    V2(Box<crate::v2::frame::Decoder>, EntityName),
}

impl Dec {
    /// The next whole frame in `buf`, as the core takes it, with a v2 message's `ack_seq`.
    #[inline(always)]
    fn next(&mut self, buf: &mut BytesMut) -> Result<Option<(Inbound, u64)>, PipeError> {
        match self {
            // The decoder builds each message inside this function's own result (`V1Items`):
            // a v1 `Frame` converted here copied its ~200 bytes once more per message.
            // Without signatures the decoder's result is this function's, untouched (a
            // result borrowed for the check is a local of its own: one more copy).
            Dec::V1(dec, None) => dec.decode_into::<V1Items>(buf),
            Dec::V1(dec, Some(s)) => {
                let next = dec.decode_into::<V1Items>(buf);
                if let Ok(Some((Inbound::Message(m), _))) = &next {
                    if !check_signature(s, m) {
                        return Err(bad_signature(m.header.seq));
                    }
                }
                next
            }
            Dec::V2(dec, peer) => next_v2(dec, buf, *peer),
        }
    }

    /// Whether small payloads are copied out of the receive buffer (see
    /// [`Deliver::consumed_inline`]).
    fn copy_small_payloads(&mut self, on: bool) {
        match self {
            Dec::V1(dec, _) => dec.copy_small_payloads(on),
            Dec::V2(dec, _) => dec.copy_small_payloads(on),
        }
    }

    /// v1: the header of a message whose body is still being read.
    fn pending_header(&self) -> Option<MsgHeader> {
        match self {
            Dec::V1(dec, _) => dec.pending_header().copied(),
            Dec::V2(..) => None,
        }
    }

    /// msgr2: the bytes the buffer must hold for the frame being received to be whole.
    fn pending_len(&self) -> Option<usize> {
        match self {
            Dec::V1(..) => None,
            Dec::V2(dec, _) => dec.pending_len(),
        }
    }

    /// v1: bytes of the footer after a message's body.
    fn footer_len(&self) -> usize {
        match self {
            Dec::V1(dec, _) => dec.footer_kind().wire_len(),
            Dec::V2(..) => 0,
        }
    }
}

pub(super) async fn run(inner: Arc<Inner>, socket: Socket, mut r: ReadSide, codec: InCodec) {
    let epoch = socket.epoch;
    let span = tracing::debug_span!("reader", conn = inner.id, peer = %inner.peer_addr, epoch);
    let res = read_loop(&inner, &socket, &mut r, codec)
        .instrument(span)
        .await;
    if let Err(e) = res {
        if !matches!(e, PipeError::Superseded) {
            inner.socket_fault(epoch, &e);
        }
    }
}

async fn take(
    t: &Throttle,
    n: u64,
    cancel: &CancellationToken,
) -> Result<ThrottlePermit, PipeError> {
    // Fast path: no waiting needed (and nobody waiting, so FIFO order holds). Avoids building
    // the select and registering with the cancellation token for every message.
    if let Some(p) = t.try_acquire(n) {
        return Ok(p);
    }
    tokio::select! {
        p = t.acquire(n) => Ok(p),
        _ = cancel.cancelled() => Err(PipeError::Superseded),
    }
}

/// The permits for a message with header `h` when [`try_acquire`] found a throttle full: the
/// reader's deliveries are ended first (what they queued must not wait behind a throttle
/// that only a dispatch, perhaps awaiting that very reply, would release), then it waits.
/// (Not an `async fn` taking the fast path too: that future would be built for every message.)
async fn wait_permits<'a>(
    inner: &'a Inner,
    socket: &Socket,
    dispatch: Option<&'a Throttle>,
    h: &MsgHeader,
    delivering: &mut bool,
) -> Result<Permits<'a>, PipeError> {
    if std::mem::take(delivering) {
        writer::end_delivery(inner, socket.epoch, &socket.pen, &socket.wake)?;
    }
    acquire(inner, dispatch, h, &socket.cancel).await
}

/// The throttles a message with header `h` takes, and how much of each: the policy's
/// message (1) and byte throttles, then the host's dispatch throttle (bytes).
fn demands<'a>(
    inner: &'a Inner,
    dispatch: Option<&'a Throttle>,
    h: &MsgHeader,
) -> [Option<(&'a Throttle, u64)>; 3] {
    let size = h.payload_len();
    let bytes = |t: Option<&'a Throttle>| t.filter(|_| size > 0).map(|t| (t, size));
    [
        inner.policy.throttle_messages.as_ref().map(|t| (t, 1)),
        bytes(inner.policy.throttle_bytes.as_ref()),
        bytes(dispatch),
    ]
}

/// [`acquire`] without waiting: every permit, or none. The [`demands`] in the same order;
/// a policy without throttles (the usual case) costs one test, not a loop over the
/// demands' array (about 20 instructions per message).
#[inline(always)]
fn try_acquire<'a>(
    inner: &'a Inner,
    dispatch: Option<&'a Throttle>,
    h: &MsgHeader,
) -> Option<Permits<'a>> {
    let p = &inner.policy;
    let policy = if p.throttle_messages.is_some() || p.throttle_bytes.is_some() {
        try_policy_permits(inner, h)?
    } else {
        Vec::new()
    };
    let size = h.payload_len();
    let dispatch = match dispatch {
        Some(t) if size > 0 => Some(t.try_acquire_borrowed(size)?),
        _ => None,
    };
    Some(Permits { policy, dispatch })
}

/// The policy's permits of [`try_acquire`] (message count, then bytes), out of line.
#[inline(never)]
fn try_policy_permits(inner: &Inner, h: &MsgHeader) -> Option<Vec<ThrottlePermit>> {
    let [messages, bytes, _] = demands(inner, None, h);
    let mut policy = Vec::new();
    for (t, n) in [messages, bytes].into_iter().flatten() {
        policy.push(t.try_acquire(n)?);
    }
    Some(policy)
}

/// Takes the [`demands`] in order, waiting for each.
async fn acquire<'a>(
    inner: &'a Inner,
    dispatch: Option<&'a Throttle>,
    h: &MsgHeader,
    cancel: &CancellationToken,
) -> Result<Permits<'a>, PipeError> {
    let [messages, bytes, dispatch] = demands(inner, dispatch, h);
    let mut policy = Vec::new();
    for (t, n) in [messages, bytes].into_iter().flatten() {
        policy.push(take(t, n, cancel).await?);
    }
    let dispatch = match dispatch {
        Some((t, n)) => Some(take(t, n, cancel).await?.into()),
        None => None,
    };
    Ok(Permits { policy, dispatch })
}

async fn read_loop(
    inner: &Arc<Inner>,
    socket: &Socket,
    r: &mut ReadSide,
    codec: InCodec,
) -> Result<(), PipeError> {
    let (epoch, cancel) = (socket.epoch, &socket.cancel);
    // What every delivery goes through, made once per socket (not an `Arc` clone and drop,
    // two atomic operations, per message, for the session's handle, nor the host's).
    let to = Arc::clone(&inner.host).deliverer(inner.session());
    let cfg = inner.config.clone();
    let dispatch = inner.host.dispatch_throttle();
    let (mut dec, buf) = match codec {
        InCodec::V1 { features, signer } => {
            let kind = FooterKind::for_features(features);
            // Bodies are reserved from `rb`'s kept buffers (`ReadBuf::reserve`).
            let dec = FrameDecoder::new(cfg.limits, kind, cfg.crc).leave_reserving_to_caller();
            (Dec::V1(dec, signer), BytesMut::with_capacity(READ_CHUNK))
        }
        InCodec::V2 {
            mut dec,
            peer,
            leftover,
        } => {
            // Frames that do not fit get their room from `rb`'s kept buffers too.
            dec.leave_reserving_to_caller();
            (Dec::V2(dec, peer), leftover)
        }
    };
    let mut rb = ReadBuf::new(buf);
    let mut held: Option<Permits> = None;
    // Messages were delivered since the last `end_delivery` (see `SocketSlot::delivering`).
    let mut delivering = false;
    // Messages delivered since the read loop last spent cooperative budget for them
    // (`spend_budget`).
    let mut delivered: u32 = 0;
    // What an ACK released (permits, large payloads), let go of outside the session lock.
    let mut acked = Released::default();
    // The highest ack_seq a msgr2 message carried on this socket: every message repeats
    // it, and only a higher one releases anything (ACKs are cumulative).
    let mut piggybacked = 0u64;
    // The one timer of this socket, armed for the core's earliest deadline. It is only
    // re-armed when that deadline moves earlier or when it fires (a fresh timer per read cost
    // a timer-wheel insert and removal per message on round trips); firing early is harmless:
    // the core then has nothing due and gives the next deadline.
    let deadline = tokio::time::sleep(cfg.read_timeout);
    tokio::pin!(deadline);
    // Registered with the token once, not once per read.
    let cancelled = cancel.cancelled();
    tokio::pin!(cancelled);
    // Neither has registered this task yet (a registration lasts until it fires, or until
    // the timer is reset).
    let (mut deadline_unpolled, mut cancel_unpolled) = (true, true);
    // A message whose permits had to be waited for, with them: delivered first when the
    // batch resumes.
    let mut resumed: Option<(Message, u64, Permits)> = None;
    // Small payloads are copied out of the read buffer while the host consumes messages on
    // this task ([`Deliver::consumed_inline`]) and its deliveries queue no replies: a reply
    // (an echo) may hold the received payload until the peer acknowledges it, and a copy
    // freed then, often on the other worker, costs more than the shared buffer it saves
    // (64 B round trips at depth 128: 14 % fewer with it).
    let mut copy_small = true;
    loop {
        // A message whose throttles are full: its permits are waited for outside the batch.
        let mut stalled = None;
        {
            // The messages of one read, under one delivery lock (`Batch`); never held across
            // an await (the block has none).
            let mut batch = Batch {
                inner,
                epoch,
                order: None,
                piggybacked: &mut piggybacked,
            };
            // One message taken in: accepted under the batch's delivery lock, then moved
            // once, into the `Incoming` the host takes. The message is looked at by
            // reference until then. A macro, not a helper: each by-value call layer on the
            // way copied all of its ~200 bytes (callgrind: a `memcpy` per layer, an inlined
            // helper taking it by value included).
            macro_rules! take_in {
                ($m:ident, $ack_seq:expr, $permits:expr) => {
                    if batch.accept(&$m, $ack_seq, &mut acked)? {
                        delivering = true;
                        delivered = delivered.wrapping_add(1);
                        let permits = $permits;
                        let incoming = Incoming {
                            msg: $m,
                            policy_permits: permits.policy,
                            dispatch_permit: permits.dispatch,
                        };
                        deliver(inner, &*to, incoming)?;
                    }
                };
            }
            if let Some((m, ack_seq, permits)) = resumed.take() {
                take_in!(m, ack_seq, permits);
            }
            dec.copy_small_payloads(copy_small && to.consumed_inline());
            loop {
                // Matched in place, as in `Dec::next`.
                match dec.next(&mut rb.buf) {
                    Ok(None) => break,
                    Err(e) => return Err(corrupt(e)),
                    Ok(Some((Inbound::Message(m), ack_seq))) => {
                        let permits = match held.take() {
                            Some(p) => p,
                            None => match try_acquire(inner, dispatch.as_ref(), &m.header) {
                                Some(p) => p,
                                None => {
                                    stalled = Some((m, ack_seq));
                                    break;
                                }
                            },
                        };
                        take_in!(m, ack_seq, permits);
                    }
                    Ok(Some((Inbound::Control(c), _))) => {
                        handle_control(inner, epoch, c, &mut acked)?;
                    }
                }
            }
        }
        if delivering {
            to.read_done();
        }
        if let Some((m, ack_seq)) = stalled {
            let (d, h) = (dispatch.as_ref(), &m.header);
            let permits = wait_permits(inner, socket, d, h, &mut delivering).await?;
            resumed = Some((m, ack_seq, permits));
            continue;
        }
        // Every whole frame is handled: what the deliveries queued goes out now, before any
        // wait (from this task if the writer is idle).
        let mut replied = false;
        if std::mem::take(&mut delivering) {
            replied = writer::end_delivery(inner, epoch, &socket.pen, &socket.wake)?;
            copy_small = !replied;
        }
        // A reader answering its peer's requests spends budget per message (`spend_budget`).
        if replied {
            spend_budget(delivered).await;
        }
        delivered = 0;
        if held.is_none() {
            if let Some(h) = dec.pending_header() {
                held = Some(match try_acquire(inner, dispatch.as_ref(), &h) {
                    Some(p) => p,
                    None => {
                        let d = dispatch.as_ref();
                        wait_permits(inner, socket, d, &h, &mut delivering).await?
                    }
                });
                let want = usize::try_from(h.payload_len())
                    .unwrap_or(usize::MAX)
                    .saturating_add(dec.footer_len());
                rb.reserve(want.saturating_sub(rb.buf.len()));
            }
        }
        // msgr2: room for the rest of a frame that does not fit, reserved whole, as v1's body
        // above (its permits are taken once the frame is whole).
        if let Some(want) = dec.pending_len() {
            rb.reserve(want.saturating_sub(rb.buf.len()));
        }
        // Room for the next read (a buffer holding much of one frame is read into while it
        // has room; a full one is replaced by one no message holds any more: `ReadBuf`).
        rb.make_room();
        let mut capped = bytes::BufMut::limit(&mut rb.buf, MAX_READ);
        let mut read = pin!(r.read_buf(&mut capped));
        // First see whether the peer has sent more: a read that needs no wait needs neither
        // the clock nor the timer.
        let n = match poll_fn(|cx| Poll::Ready(read.as_mut().poll(cx))).await {
            Poll::Ready(res) => res?,
            Poll::Pending => {
                // Nothing to read: the core arms its idle timers (read timeout, delayed ACK)
                // and gives the earliest deadline.
                if let Some(due) = idle(inner, epoch)? {
                    // Re-armed when the deadline moves earlier, or when the timer already
                    // fired while this task was busy reading: that wake-up is spent, and a
                    // spent timer would not wake the wait (a partition would never time out).
                    if due < deadline.deadline() || deadline.is_elapsed() {
                        deadline.as_mut().reset(due);
                        deadline_unpolled = true;
                    }
                }
                // The probe registered this task with the socket: the first poll of the wait
                // has nothing to poll but a timer just armed and a cancellation never polled.
                let mut probed = true;
                loop {
                    let woke = poll_fn(|cx| {
                        let first = std::mem::take(&mut probed);
                        if !first {
                            if let Poll::Ready(res) = read.as_mut().poll(cx) {
                                return Poll::Ready(Woke::Read(res));
                            }
                        }
                        if (!first || std::mem::take(&mut deadline_unpolled))
                            && deadline.as_mut().poll(cx).is_ready()
                        {
                            return Poll::Ready(Woke::Deadline);
                        }
                        if (!first || std::mem::take(&mut cancel_unpolled))
                            && cancelled.as_mut().poll(cx).is_ready()
                        {
                            return Poll::Ready(Woke::Cancelled);
                        }
                        Poll::Pending
                    })
                    .await;
                    match woke {
                        Woke::Read(res) => break res?,
                        Woke::Cancelled => return Err(PipeError::Superseded),
                        Woke::Deadline => {
                            let next = timeout(inner, epoch, &mut rb.kept, cfg.read_timeout)?;
                            deadline.as_mut().reset(next);
                            deadline_unpolled = true;
                        }
                    }
                }
            }
        };
        if n == 0 {
            return Err(eof());
        }
    }
}

/// tokio's cooperative budget per task poll: more units than this are never spent at once.
const TOKIO_BUDGET: u32 = 128;

/// Spends a unit of the task's cooperative budget per message of a read whose deliveries
/// queued replies (at most a whole budget), and yields to the scheduler if that spends it.
///
/// Without it, a request/response reader spends one unit per read and one per inline write,
/// whatever they carry: at depth 128 a read holds 32 requests of 4 KiB, and while its peer
/// keeps the socket fed the reader went on for about 64 reads (some 2,000 messages, a few
/// milliseconds) before tokio's budget of 128 made it yield, the other connections' readers
/// on that worker waiting meanwhile. At a unit per message (as a send spends one) it yields
/// after about 128 messages. 4 KiB echo at depth 128 over 4 connections, `msgr bench`, five
/// alternating runs: rate 0.70-0.73 -> 0.78-0.79 of raw TCP's, p50 1.49-1.54 -> 1.35-1.43 x
/// raw's, p99 2.5-2.9 -> 1.40-1.46 ms, CPU per message 2.91 -> 2.68 us; over 2 connections
/// p99 1.6-1.8 -> 0.72-0.78 ms and the rate +10 %. A reader whose deliveries queue nothing (a
/// sink) keeps tokio's own accounting: spending per message there made it yield every few
/// reads and halved the 4 KiB stream (`strace`: `epoll_wait` 7,000 -> 16,000 and `futex`
/// 1,300 -> 2,300 per 400,000 messages, CPU use 0.83 -> 0.59 of a core). Half a unit or two units
/// per message measured worse than one (0.68-0.73 of raw TCP's, four and three alternating
/// pairs).
async fn spend_budget(messages: u32) {
    let mut left = messages.min(TOKIO_BUDGET);
    let mut yielded = false;
    poll_fn(|cx| {
        if yielded {
            return Poll::Ready(());
        }
        while left > 0 {
            match tokio::task::coop::poll_proceed(cx) {
                Poll::Ready(restore) => {
                    restore.made_progress();
                    left -= 1;
                }
                Poll::Pending => {
                    yielded = true;
                    return Poll::Pending;
                }
            }
        }
        if tokio::task::coop::has_budget_remaining() {
            return Poll::Ready(());
        }
        // Spent to the last unit: yield here, not in the next read's probe (which would
        // take the idle path: the session lock and the timers) or the next inline write
        // (which would hand the replies to the writer task).
        yielded = true;
        match tokio::task::coop::poll_proceed(cx) {
            Poll::Ready(_) => Poll::Ready(()),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

/// The stream could not be decoded (cold, as every error path of the read loop).
#[cold]
#[inline(never)]
fn corrupt(e: PipeError) -> PipeError {
    tracing::warn!(error = %e, "peer sent a corrupt stream");
    e
}

/// The peer closed its end.
#[cold]
#[inline(never)]
fn eof() -> PipeError {
    io::Error::from(io::ErrorKind::UnexpectedEof).into()
}

/// The socket has nothing to read: the core's earliest deadline.
fn idle(inner: &Inner, epoch: u64) -> Result<Option<Instant>, PipeError> {
    let mut sh = inner.lock_undrained();
    if !sh.link.is_current(epoch) {
        return Err(PipeError::Superseded);
    }
    Ok(sh.core.handle_idle(now()).map(Instant::from_std))
}

/// The socket's timer fired: the core handles what is due (a delayed ACK wakes the writer,
/// a silent socket faults); the next deadline to arm. Quiet long enough for a timer, the
/// socket keeps no spare buffers. Cold: rare beside the reads (out of the loop's code).
#[cold]
#[inline(never)]
fn timeout(
    inner: &Inner,
    epoch: u64,
    kept: &mut Kept,
    read_timeout: std::time::Duration,
) -> Result<Instant, PipeError> {
    kept.release();
    let mut sh = inner.lock();
    if !sh.link.is_current(epoch) {
        return Err(PipeError::Superseded);
    }
    let expired = sh.core.handle_timeout(now());
    if expired.idle {
        return Err(PipeError::ReadTimeout(read_timeout));
    }
    if expired.ack || expired.keepalive {
        if let Some(s) = &sh.link.socket {
            s.wake.notify_one();
        }
    }
    // Always armed while open (the read timeout); a deadline too far to represent waits
    // a year, and is re-armed then.
    let now = Instant::now();
    Ok(sh
        .core
        .poll_timeout()
        .map(Instant::from_std)
        .unwrap_or_else(|| now + std::time::Duration::from_secs(86_400 * 365)))
}

/// What ended a wait for data.
enum Woke {
    Read(io::Result<usize>),
    Deadline,
    Cancelled,
}

/// Accepts one message (sequence check, delayed-ACK count), after the ACK of our messages
/// up to `ack_seq` it carries (msgr2; 0: none new); true if it is to be delivered (not a
/// duplicate). The message itself is only read here: [`deliver`] takes it. The caller holds
/// the session's delivery lock (`Batch::accept`).
#[inline(always)]
fn accept(
    inner: &Inner,
    epoch: u64,
    m: &Message,
    ack_seq: u64,
    acked: &mut Released,
) -> Result<bool, PipeError> {
    let seq = m.header.seq;
    if !m.footer.is_complete() {
        return Err(aborted(seq));
    }
    let verdict = {
        // Undrained: the sequence check, an ACK and the delivery's start read neither the out
        // queues nor their counts. What a delivery queues (a reply) then waits in the inbox
        // for `writer::end_delivery`'s one drain, not one drain per message accepted after it
        // (an inbox lock and unlock per reply, contended with the writer task's drains: a
        // 64-byte echo at depth 128 made 180,000 `futex` calls per million round trips, and
        // ran at half its rate now).
        let mut sh = inner.lock_undrained();
        if !sh.link.is_current(epoch) {
            return Err(PipeError::Superseded);
        }
        if ack_seq > 0 {
            sh.core.handle_ack(ack_seq, acked);
        }
        let in_seq = sh.core.in_seq();
        let (v, ack_now) = sh.core.handle_message(seq, m.header.payload_len());
        if v == InSeq::Gap {
            gap(seq, in_seq);
        }
        if v != InSeq::Duplicate {
            sh.link.peer_name = Some(m.header.src);
            // What the delivery queues is sent when the reader's deliveries end.
            if let Some(s) = sh.link.socket.as_mut() {
                s.begin_delivery(&inner.inbox);
                if ack_now {
                    s.wake.notify_one();
                }
            }
        }
        v
    };
    // Outside the session lock: what the piggybacked ACK released (permits, payloads).
    acked.clear();
    if verdict == InSeq::Duplicate {
        return Ok(duplicate(seq));
    }
    if tracing_trace() {
        trace_message(m);
    }
    // Under the batch's delivery lock (`Batch::accept`), the counters' one writer.
    bump_delivered(&inner.counters.msgs_in, 1);
    bump_delivered(&inner.counters.bytes_in, m.header.payload_len());
    Ok(true)
}

/// The messages taken in from one read's bytes, under the session's delivery lock.
///
/// The lock covers the sequence check and the delivery: a reader of a replaced socket
/// cannot deliver after the new socket's reader. It is taken at the batch's first message
/// and kept until every whole frame of the buffer is handled: one lock and unlock per read,
/// not per message (two atomic operations and ~20 instructions each). The batch lives in a
/// block without an await (a `MutexGuard` is not `Send`), so it never waits holding it.
struct Batch<'a, 'p> {
    inner: &'a Inner,
    epoch: u64,
    order: Option<std::sync::MutexGuard<'a, ()>>,
    /// The highest ack_seq a msgr2 message carried on this socket (see `read_loop`).
    piggybacked: &'p mut u64,
}

impl Batch<'_, '_> {
    /// Accepts one message ([`accept`]) under the batch's delivery lock (taken here if the
    /// batch has not yet), after the ACK a msgr2 message carries (`ack_seq`; handed over only
    /// when it is higher than any before); true if it is to be delivered (not a duplicate).
    #[inline(always)]
    fn accept(
        &mut self,
        m: &Message,
        ack_seq: u64,
        acked: &mut Released,
    ) -> Result<bool, PipeError> {
        // msgr2 piggybacks what the peer received on each message: taken under the same
        // lock as the message (no extra lock per message).
        let ack_seq = if ack_seq > *self.piggybacked {
            *self.piggybacked = ack_seq;
            ack_seq
        } else {
            0
        };
        let inner = self.inner;
        self.order
            .get_or_insert_with(|| relock(&inner.deliver_lock));
        accept(inner, self.epoch, m, ack_seq, acked)
    }
}

/// A message whose footer says it was aborted (cold).
#[cold]
#[inline(never)]
fn aborted(seq: u64) -> PipeError {
    tracing::warn!(seq, "aborted message (footer without COMPLETE)");
    PipeError::Aborted { seq }
}

/// A message past the next expected seq, accepted (cold).
#[cold]
#[inline(never)]
fn gap(seq: u64, in_seq: u64) {
    tracing::warn!(seq, in_seq, "missed message? accepting a gap");
}

/// A message already received, dropped (cold): false, not to be delivered.
#[cold]
#[inline(never)]
fn duplicate(seq: u64) -> bool {
    tracing::debug!(seq, "dropping duplicate message");
    false
}

/// Traces an accepted message (cold: taken only with trace logging on, so its event
/// building is not in the read loop's code).
#[cold]
#[inline(never)]
fn trace_message(m: &Message) {
    tracing::trace!(
        seq = m.header.seq,
        ty = m.header.ty,
        len = m.header.payload_len(),
        "message"
    );
}

/// Hands an accepted message to the host; the caller holds the session's delivery lock.
/// Inlined into the read loop, so the message is not copied again on its way to the host.
#[inline(always)]
fn deliver(inner: &Inner, to: &dyn Deliver, incoming: Incoming<'_>) -> Result<(), PipeError> {
    let seq = incoming.msg.header.seq;
    // A panic in the host (a dispatcher's fast dispatch runs right here) would end this task
    // and leave the socket without a reader: it faults the socket instead.
    let delivered = std::panic::catch_unwind(AssertUnwindSafe(|| inner.deliver(to, incoming)));
    if delivered.is_err() {
        return Err(delivery_panicked(seq));
    }
    Ok(())
}

/// The host panicked delivering message `seq` (cold).
#[cold]
#[inline(never)]
fn delivery_panicked(seq: u64) -> PipeError {
    tracing::error!(seq, "delivery panicked; faulting the socket");
    PipeError::DeliveryPanicked { seq }
}

fn handle_control(
    inner: &Arc<Inner>,
    epoch: u64,
    c: Control,
    acked: &mut Released,
) -> Result<(), PipeError> {
    {
        let mut sh = inner.lock_undrained();
        if !sh.link.is_current(epoch) {
            return Err(PipeError::Superseded);
        }
        if tracing_trace() {
            trace_control(&c);
        }
        match c {
            Control::Close => return Err(peer_closed()),
            // An ACK (one per write that carries messages) needs no clock reading.
            Control::Ack(seq) => {
                bump(&inner.counters.acks_in, 1);
                sh.core.handle_ack(seq, acked);
            }
            c => other_control(&mut sh, c, acked),
        }
    }
    // Outside the session lock: permits go back, payloads are freed.
    acked.clear();
    inner.inbox.recycle(acked);
    Ok(())
}

/// Trace events are on (the test the `trace!` macro makes first, its event built only
/// when this holds): the two loads and compares that stay inline in the read loop.
#[inline(always)]
fn tracing_trace() -> bool {
    use tracing::level_filters::{LevelFilter, STATIC_MAX_LEVEL};
    STATIC_MAX_LEVEL >= tracing::Level::TRACE && LevelFilter::current() >= tracing::Level::TRACE
}

/// Traces a control frame (cold: only with trace logging on).
#[cold]
#[inline(never)]
fn trace_control(c: &Control) {
    tracing::trace!(?c, "control frame");
}

/// The peer sent CLOSE (cold).
#[cold]
#[inline(never)]
fn peer_closed() -> PipeError {
    tracing::debug!("peer sent CLOSE");
    PipeError::PeerClosed
}

/// A control frame other than an ACK or CLOSE (keepalives: rare beside the messages, so
/// out of the read loop's code), under the session lock `sh`.
#[cold]
#[inline(never)]
fn other_control(sh: &mut super::Locked<'_>, c: Control, acked: &mut Released) {
    if sh.core.handle_control(now(), c, acked) {
        if let Some(s) = &sh.link.socket {
            s.wake.notify_one();
        }
    }
}
