//! The writer task of one socket: keepalive, keepalive2 acks, then every queued message in one
//! vectored write (head, front, middle, data, footer per message, payloads not copied), then
//! one ACK if `in_seq` advanced on a lossless session. Small pieces (frame heads, footers,
//! control frames, segments under 8 KiB) are staged in one buffer; larger segments go out
//! from their own buffers without a copy.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use msgr_wire::{features, FooterKind, Tag, Timespec, Wire};
use tokio::io::{AsyncWriteExt, WriteHalf};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::state::Outgoing;
use super::{bump, Inner};
use crate::error::PipeError;
use crate::transport::{write_chain, BoxTransport};

pub(super) async fn run(
    inner: Arc<Inner>,
    epoch: u64,
    cancel: CancellationToken,
    wake: Arc<Notify>,
    mut w: WriteHalf<BoxTransport>,
    features: u64,
) {
    let span = tracing::debug_span!("writer", conn = inner.id, peer = %inner.peer_addr, epoch);
    let res = write_loop(&inner, epoch, &cancel, &wake, &mut w, features)
        .instrument(span)
        .await;
    if let Err(e) = res {
        if !matches!(e, PipeError::Superseded) {
            inner.socket_fault(epoch, &e);
        }
    }
}

/// Segments shorter than this are copied into the staging buffer with the frame heads and
/// footers (fewer, larger writes); longer ones are written from their own buffers, uncopied.
const COPY_THRESHOLD: usize = 8 * 1024;

fn push_segment(chain: &mut VecDeque<Bytes>, stage: &mut BytesMut, seg: &Bytes) {
    if seg.len() < COPY_THRESHOLD {
        stage.put_slice(seg);
    } else {
        if !stage.is_empty() {
            chain.push_back(stage.split().freeze());
        }
        chain.push_back(seg.clone());
    }
}

/// Messages with at most this many payload bytes are staged under the session lock (see
/// `SessionState::take_batch_staged`); every segment of one is below `COPY_THRESHOLD`.
const SMALL_MESSAGE: u64 = 512;

/// Seals `o` with its seq (and the `src` stamped when it was queued) and appends its frame:
/// head, segments (small ones copied into `stage`, large ones queued on `chain` after the
/// staged bytes so far) and footer.
fn stage_message(
    o: &mut Outgoing,
    crc: msgr_wire::CrcFlags,
    kind: FooterKind,
    chain: &mut VecDeque<Bytes>,
    stage: &mut BytesMut,
) {
    let src = o.msg.header.src;
    if o.segments_sealed {
        o.msg.seal_header(o.seq, src, crc);
    } else {
        o.msg.seal(o.seq, src, crc);
    }
    stage.put_slice(&o.msg.frame_head());
    for seg in [&o.msg.front, &o.msg.middle, &o.msg.data] {
        push_segment(chain, stage, seg);
    }
    let (footer, len) = o.msg.frame_footer(kind);
    stage.put_slice(footer.get(..len).unwrap_or(&footer));
}

/// A KEEPALIVE2 stamped with our clock now.
fn put_keepalive2(stage: &mut BytesMut) {
    stage.put_u8(Tag::Keepalive2.byte());
    Timespec::now().encode(stage);
}

/// Bytes the batch puts into the staging buffer, so it is reserved once, not regrown.
fn stage_len(batch: &Batch) -> usize {
    let small = |b: &Bytes| if b.len() < COPY_THRESHOLD { b.len() } else { 0 };
    let msgs: usize = batch
        .msgs
        .iter()
        .map(|o| {
            msgr_wire::FRAME_HEAD_LEN
                + msgr_wire::FOOTER_LEN
                + small(&o.msg.front)
                + small(&o.msg.middle)
                + small(&o.msg.data)
        })
        .sum();
    // The ACK and a nudging KEEPALIVE2: a tag and 8 bytes each (other keepalives are staged
    // already).
    msgs + 9 + 9
}

/// Most messages taken for one write: bounds the batch vector and the staging buffer when
/// messages are tiny (4 MiB of 64-byte messages would be 65,536 of them).
const WRITE_BATCH_MSGS: usize = 1024;

struct Batch<'a> {
    keepalive: bool,
    /// A KEEPALIVE2 after the messages, for a sender out of budget (its answer brings the ACK).
    nudge: bool,
    ka2_acks: Vec<Timespec>,
    msgs: &'a mut Vec<Outgoing>,
    ack: Option<u64>,
}

impl Batch<'_> {
    fn is_empty(&self) -> bool {
        !self.keepalive
            && !self.nudge
            && self.ka2_acks.is_empty()
            && self.msgs.is_empty()
            && self.ack.is_none()
    }
}

async fn write_loop(
    inner: &Arc<Inner>,
    epoch: u64,
    cancel: &CancellationToken,
    wake: &Notify,
    w: &mut WriteHalf<BoxTransport>,
    features: u64,
) -> Result<(), PipeError> {
    let kind = FooterKind::for_features(features);
    let ka2 = features::has(features, features::MSGR_KEEPALIVE2);
    let crc = inner.config.crc;
    let max_bytes = inner.config.write_batch_bytes;
    let mut chain: VecDeque<Bytes> = VecDeque::new();
    // Reused across batches: once a batch's write completes, its frozen part is dropped and
    // `reserve` reclaims the same allocation (no malloc/free or regrowth per batch).
    // Grows to the batches it carries (amortised doubling, kept across batches), so an idle
    // session holds only what its largest batch needed.
    let mut stage = BytesMut::new();
    // Reused across batches too (cleared once each write is done).
    let mut msgs: Vec<Outgoing> = Vec::new();
    // Registered with the token once, not once per wait or write.
    let cancelled = cancel.cancelled();
    tokio::pin!(cancelled);
    // The `ack_requests` count the last nudge answered.
    let mut nudged_for = inner.ack_requests.load(Ordering::Acquire);
    loop {
        let notified = wake.notified();
        let (staged, staged_bytes, batch) = {
            let mut sh = inner.lock();
            if !sh.link.is_current(epoch) {
                return Err(PipeError::Superseded);
            }
            let (keepalive, ka2_acks) = sh.st.take_control();
            if keepalive {
                if ka2 {
                    put_keepalive2(&mut stage);
                } else {
                    stage.put_u8(Tag::Keepalive.byte());
                }
            }
            for ts in &ka2_acks {
                stage.put_u8(Tag::Keepalive2Ack.byte());
                ts.encode(&mut stage);
            }
            msgs.clear();
            let (mut staged, mut staged_bytes) = (0, 0);
            if sh.st.has_messages() {
                // Small messages of a lossless session are sealed and copied into the
                // staging buffer right here, so the sent list keeps the only copy (no clone
                // of each message for the writer); larger ones are cloned and staged below,
                // outside the lock (their CRCs take longer).
                let mut stage_small = |o: &mut Outgoing| {
                    stage_message(o, crc, kind, &mut chain, &mut stage);
                };
                (staged, staged_bytes) = sh.st.take_batch_staged(
                    max_bytes,
                    WRITE_BATCH_MSGS,
                    Some((SMALL_MESSAGE, &mut stage_small)),
                    &mut msgs,
                );
            }
            let ack = sh.st.take_ack();
            // A sender waits for budget and this batch leaves nothing queued (all the sender
            // waits for is written): end it with a KEEPALIVE2. While messages stay queued the
            // writer is the bottleneck, and the peer's own ACKs keep up.
            let requests = inner.ack_requests.load(Ordering::Acquire);
            let nudge = ka2
                && !inner.policy.lossy
                && !sh.st.has_messages()
                && inner.blocked_senders.load(Ordering::Acquire) > 0
                && (requests != nudged_for || staged > 0 || !msgs.is_empty());
            nudged_for = requests;
            (
                staged,
                staged_bytes,
                Batch {
                    keepalive,
                    nudge,
                    ka2_acks,
                    msgs: &mut msgs,
                    ack,
                },
            )
        };
        if batch.is_empty() && staged == 0 {
            tokio::select! {
                _ = notified => continue,
                () = &mut cancelled => return Err(PipeError::Superseded),
            }
        }
        stage.reserve(stage_len(&batch));
        let mut bytes = staged_bytes;
        for o in batch.msgs.iter_mut() {
            bytes += o.payload_len();
            stage_message(o, crc, kind, &mut chain, &mut stage);
        }
        if batch.nudge {
            put_keepalive2(&mut stage);
        }
        if let Some(seq) = batch.ack {
            stage.put_u8(Tag::Ack.byte());
            stage.put_u64_le(seq);
        }
        if !stage.is_empty() {
            chain.push_back(stage.split().freeze());
        }
        tracing::trace!(msgs = batch.msgs.len(), ack = ?batch.ack, keepalive = batch.keepalive, "writing");
        tokio::select! {
            res = async {
                write_chain(w, &mut chain).await?;
                w.flush().await
            } => res?,
            () = &mut cancelled => return Err(PipeError::Superseded),
        }
        let c = &inner.counters;
        bump(&c.msgs_out, (batch.msgs.len() + staged) as u64);
        bump(&c.bytes_out, bytes);
        if batch.ack.is_some() {
            bump(&c.acks_out, 1);
        }
        // Done with this batch: lossy messages (and their permits) go now.
        batch.msgs.clear();
    }
}
