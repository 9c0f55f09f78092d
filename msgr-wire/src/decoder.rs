//! [`FrameDecoder`]: the streaming decoder of the tagged stream (spec §3.7, §3.9).

use bytes::{Buf, Bytes, BytesMut};

use crate::consts::{HEADER_CRC_LEN, HEADER_LEN, TIMESPEC_LEN};
use crate::crc::crc32c;
use crate::error::{Segment, WireError};
use crate::footer::{decode_footer, FooterKind, MsgFooter};
use crate::frame::Frame;
use crate::header::{MsgHeader, Timespec};
use crate::limits::{CrcFlags, Limits};
use crate::message::{check_segment, Message, FRAME_HEAD_LEN};
use crate::tag::Tag;
use crate::Wire;

/// The most the decoder reserves ahead for a declared body; larger bodies (only possible
/// with limits above the defaults) grow the buffer as bytes arrive.
const MAX_RESERVE: usize = 128 << 20;

/// What [`FrameDecoder::decode_into`] makes of the frames and errors it decodes: a reader
/// that keeps frames in a type of its own has each message built in place inside it.
pub trait Frames {
    /// What a frame becomes.
    type Item;
    /// What a corrupt stream's error becomes.
    type Error: From<WireError>;
    /// A MSG frame's message.
    fn message(m: Message) -> Self::Item;
    /// Any other frame (never [`Frame::Msg`]).
    fn control(f: Frame) -> Self::Item;
}

/// The frames as [`Frame`]s ([`FrameDecoder::decode`]).
#[derive(Debug)]
pub enum AsFrames {}

impl Frames for AsFrames {
    type Item = Frame;
    type Error = WireError;

    #[inline(always)]
    fn message(m: Message) -> Frame {
        Frame::Msg(m)
    }

    #[inline(always)]
    fn control(f: Frame) -> Frame {
        f
    }
}

/// Decoder state.
///
/// ```text
///            tag+header read, crc and limits ok
///   Tag ───────────────────────────────────────────▶ Body { header }
///    ▲  │ ACK / KEEPALIVE* / CLOSE complete,                │ segments + footer read
///    │  │ or a MSG whose whole frame is already buffered     │
///    │  └──────────────────────────┐                        │
///    └─────────────────────────────┴────────────────────────┘
///   any state ── corrupt input ──▶ Failed (every later call returns the same error)
/// ```
#[derive(Debug, Clone)]
enum State {
    /// Waiting for a tag byte (and, for MSG, the header after it).
    Tag,
    /// A MSG header was read and checked; waiting for segments and footer.
    Body { header: MsgHeader },
    /// The stream is corrupt; the error is repeated.
    Failed(WireError),
}

/// Decodes the tagged frame stream that follows the handshake, from bytes in any chunking.
///
/// Follows tokio-util's `Decoder` convention: [`FrameDecoder::decode`] returns `Ok(None)`
/// when more bytes are needed and consumes input only when a whole item is available (a MSG
/// frame's tag and header are consumed as soon as they are checked, so that
/// [`FrameDecoder::pending_header`] can expose them while the body is awaited). Every
/// declared length is checked against [`Limits`] right after the header CRC, before
/// anything is reserved. Segments are split off the input buffer without copying.
/// Errors are wrapped in [`WireError::At`] with the stream offset of the faulty part.
///
/// A footer without `FOOTER_COMPLETE` (an aborted message) is returned as is; whether to
/// drop it or fault is the session's decision.
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    limits: Limits,
    footer: FooterKind,
    crc: CrcFlags,
    state: State,
    consumed: u64,
    /// Bytes of the pending message's data segment already folded into `data_crc`.
    data_done: usize,
    /// CRC-32C of the first `data_done` data bytes (see `fold_data_crc`).
    data_crc: u32,
    /// Reserve a declared body's room in the input buffer (see
    /// [`leave_reserving_to_caller`](Self::leave_reserving_to_caller)).
    reserve_bodies: bool,
    /// Copy small payloads out of the input buffer (see
    /// [`copy_small_payloads`](Self::copy_small_payloads)).
    copy_small: bool,
}

/// A data segment at least this long has its CRC computed piecewise as it arrives (while the
/// bytes are still in cache), not all at once when the message is complete.
const INCREMENTAL_CRC_MIN: usize = 64 * 1024;

impl FrameDecoder {
    /// A decoder with the given limits, footer layout and CRCs to verify.
    pub fn new(limits: Limits, footer: FooterKind, crc: CrcFlags) -> Self {
        FrameDecoder {
            limits,
            footer,
            crc,
            state: State::Tag,
            consumed: 0,
            data_done: 0,
            data_crc: 0,
            reserve_bodies: true,
            copy_small: false,
        }
    }

    /// Leaves a declared body's room to the caller (who reads [`pending_header`] and
    /// reserves it from buffers of its own): the decoder's reserve allocated a new buffer
    /// whenever the input buffer was still shared with earlier frames' segments, a buffer
    /// the caller could not reuse.
    ///
    /// [`pending_header`]: Self::pending_header
    pub fn leave_reserving_to_caller(mut self) -> Self {
        self.reserve_bodies = false;
        self
    }

    /// Whether a message whose payload is at most [`SMALL_PAYLOAD`] bytes has its segments
    /// copied out of the input buffer (`true`) or shares it, as larger ones do (`false`,
    /// the default). Copying is cheaper for a caller that frees its messages on the
    /// decoding thread, sharing for one that hands them to another (see
    /// [`SMALL_PAYLOAD`]); it may change between calls.
    pub fn copy_small_payloads(&mut self, on: bool) {
        self.copy_small = on;
    }

    /// Makes reported offsets count from `offset` (the stream bytes before this decoder).
    pub fn starting_at(mut self, offset: u64) -> Self {
        self.consumed = offset;
        self
    }

    /// Stream offset of the next unconsumed byte.
    pub fn consumed(&self) -> u64 {
        self.consumed
    }

    /// Changes the footer layout (e.g. once the session's features are known).
    pub fn set_footer_kind(&mut self, kind: FooterKind) {
        self.footer = kind;
    }

    /// The footer layout in use.
    pub fn footer_kind(&self) -> FooterKind {
        self.footer
    }

    /// The limits in use.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The header of the message whose body is being awaited, so that a reader can take
    /// throttle permits for the declared sizes before reading the body.
    pub fn pending_header(&self) -> Option<&MsgHeader> {
        match &self.state {
            State::Body { header } => Some(header),
            _ => None,
        }
    }

    /// Decodes the next frame from the front of `buf`: `Ok(Some)` with a frame, `Ok(None)`
    /// if `buf` holds only part of one, `Err` if the stream is corrupt (then forever).
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, WireError> {
        self.decode_into::<AsFrames>(buf)
    }

    /// [`decode`](Self::decode), each frame made into `F`'s item and each error into `F`'s
    /// error: a message is built once, where the caller's item holds it, not built as a
    /// [`Frame`] and moved into the caller's own type (a copy of its ~200 bytes).
    pub fn decode_into<F: Frames>(
        &mut self,
        buf: &mut BytesMut,
    ) -> Result<Option<F::Item>, F::Error> {
        // Every step returns this function's own result type, so a message is built once,
        // in the caller's slot: a step result converted here (a `Step` enum matched into an
        // `Option<Frame>`) copied the whole ~200-byte message once more per frame.
        match &self.state {
            State::Failed(e) => Err(e.clone().into()),
            State::Tag => self.decode_tag::<F>(buf),
            State::Body { header } => {
                let header = *header;
                self.decode_body::<F>(header, buf)
            }
        }
    }

    /// The stream is corrupt at offset `at`: the decoder fails with `e` from now on.
    #[cold]
    #[inline(never)]
    fn fail(&mut self, e: WireError, at: u64) -> WireError {
        let e = e.at(at);
        self.state = State::Failed(e.clone());
        e
    }

    /// Like [`FrameDecoder::decode`] at the end of the stream: bytes left over that do not
    /// make a whole frame are reported as [`WireError::UnexpectedEof`].
    pub fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, WireError> {
        if let Some(frame) = self.decode(buf)? {
            return Ok(Some(frame));
        }
        let (inside, start, received) = match &self.state {
            State::Tag if buf.is_empty() => return Ok(None),
            State::Tag => (frame_name(buf.first().copied()), self.consumed, buf.len()),
            State::Body { .. } => (
                "a message body",
                self.consumed.saturating_sub(FRAME_HEAD_LEN as u64),
                buf.len() + FRAME_HEAD_LEN,
            ),
            State::Failed(e) => return Err(e.clone()),
        };
        let e = WireError::UnexpectedEof {
            inside,
            remaining: received,
        }
        .at(start);
        self.state = State::Failed(e.clone());
        Err(e)
    }

    /// Consumes `n` bytes of `buf`. Always inlined: out of line it was a call of about 30
    /// instructions per message from the whole-frame path.
    #[inline(always)]
    fn advance(&mut self, buf: &mut BytesMut, n: usize) {
        buf.advance(n);
        self.consumed += n as u64;
    }

    fn decode_tag<F: Frames>(&mut self, buf: &mut BytesMut) -> Result<Option<F::Item>, F::Error> {
        let at = self.consumed;
        let Some(&byte) = buf.first() else {
            return Ok(None);
        };
        let tag = Tag::try_from(byte).map_err(|e| self.fail(e, at))?;
        let frame = match tag {
            Tag::Msg => return self.decode_header::<F>(buf),
            Tag::Keepalive => Frame::Keepalive,
            Tag::Close => Frame::Close,
            Tag::Ack | Tag::Keepalive2 | Tag::Keepalive2Ack => {
                let Some(mut body) = buf.get(1..1 + TIMESPEC_LEN) else {
                    return Ok(None);
                };
                match tag {
                    Tag::Ack => Frame::Ack(body.get_u64_le()),
                    Tag::Keepalive2 => Frame::Keepalive2(
                        Timespec::decode(&mut body).map_err(|e| self.fail(e, at))?,
                    ),
                    _ => Frame::Keepalive2Ack(
                        Timespec::decode(&mut body).map_err(|e| self.fail(e, at))?,
                    ),
                }
            }
            other => {
                let e = WireError::UnexpectedTag {
                    tag: other,
                    context: "in the message stream",
                };
                return Err(self.fail(e, at).into());
            }
        };
        let len = frame.wire_len(self.footer);
        self.advance(buf, len);
        Ok(Some(F::control(frame)))
    }

    fn decode_header<F: Frames>(
        &mut self,
        buf: &mut BytesMut,
    ) -> Result<Option<F::Item>, F::Error> {
        let at = self.consumed + 1;
        let Some(raw) = buf
            .get(1..1 + HEADER_LEN)
            .and_then(|r| <&[u8; HEADER_LEN]>::try_from(r).ok())
        else {
            return Ok(None);
        };
        let header = MsgHeader::from_bytes(raw);
        if self.crc.header {
            // Over the received bytes (equal to re-encoding the header, without the work).
            let actual = crc32c(0, raw.get(..HEADER_CRC_LEN).unwrap_or_default());
            if actual != header.crc {
                let e = WireError::HeaderCrc {
                    expected: header.crc,
                    actual,
                };
                return Err(self.fail(e, at).into());
            }
        }
        let payload = self
            .limits
            .check_segments(header.front_len, header.middle_len, header.data_len)
            .map_err(|e| self.fail(e, at))?;
        let payload = usize::try_from(payload).unwrap_or(usize::MAX);
        let body = payload.saturating_add(self.footer.wire_len());
        // The whole frame is here (a stream of small messages, but for the one a read
        // cuts): checked over the buffer's bytes and split off at once.
        if buf.len().saturating_sub(FRAME_HEAD_LEN) >= body {
            return self.decode_whole::<F>(header, buf, payload);
        }
        self.advance(buf, FRAME_HEAD_LEN);
        self.data_done = 0;
        self.data_crc = 0;
        if self.reserve_bodies {
            buf.reserve(body.saturating_sub(buf.len()).min(MAX_RESERVE));
        }
        self.state = State::Body { header };
        // What is here of the data is folded into its CRC.
        self.decode_body::<F>(header, buf)
    }

    /// A MSG frame whose every byte is in `buf`, its head (checked: header CRC and limits)
    /// still at the front: the footer read at fixed offsets and the segments' CRCs computed
    /// over the buffer's bytes in one pass, then the segments split off, without the
    /// streaming path's state, its second length test, its `Buf` reads of the footer and its
    /// table of checks. Same checks in the same order, same errors at the same offsets as
    /// [`decode_body`](Self::decode_body) (the decoder's tests compare the two byte for byte).
    #[inline(always)]
    fn decode_whole<F: Frames>(
        &mut self,
        header: MsgHeader,
        buf: &mut BytesMut,
        payload: usize,
    ) -> Result<Option<F::Item>, F::Error> {
        let (front_len, middle_len) = (header.front_len as usize, header.middle_len as usize);
        let start = self.consumed + FRAME_HEAD_LEN as u64;
        let (footer, front_crc, middle_crc, data_crc) = {
            let body = buf.get(FRAME_HEAD_LEN..).unwrap_or_default();
            let (segments, rest) = body.split_at_checked(payload).unwrap_or_default();
            let footer = fixed_footer(self.footer, rest);
            let front = segments.get(..front_len).unwrap_or_default();
            let middle = segments
                .get(front_len..front_len + middle_len)
                .unwrap_or_default();
            let data = segments.get(front_len + middle_len..).unwrap_or_default();
            // An empty segment's CRC (seed 0) is 0: no call for the usual empty middle.
            let crc = |on: bool, b: &[u8]| if on && !b.is_empty() { crc32c(0, b) } else { 0 };
            let data_check = self.crc.data && !footer.is_nocrc();
            (
                footer,
                crc(self.crc.header, front),
                crc(self.crc.header, middle),
                crc(data_check, data),
            )
        };
        // The head is consumed before the checks, as on the streaming path.
        self.advance(buf, FRAME_HEAD_LEN);
        if self.crc.header {
            if front_crc != footer.front_crc {
                let e = self.segment_crc(Segment::Front, footer.front_crc, front_crc, start);
                return Err(e.into());
            }
            if middle_crc != footer.middle_crc {
                let at = start + front_len as u64;
                let e = self.segment_crc(Segment::Middle, footer.middle_crc, middle_crc, at);
                return Err(e.into());
            }
        }
        if self.crc.data && !footer.is_nocrc() && data_crc != footer.data_crc {
            let at = start + (front_len + middle_len) as u64;
            let e = self.segment_crc(Segment::Data, footer.data_crc, data_crc, at);
            return Err(e.into());
        }
        let data_len = payload - front_len - middle_len;
        let (front, middle, data) =
            take_segments(buf, front_len, middle_len, data_len, self.copy_small);
        let footer_len = self.footer.wire_len();
        buf.advance(footer_len);
        self.consumed = start + (payload + footer_len) as u64;
        Ok(Some(F::message(Message {
            header,
            front,
            middle,
            data,
            footer,
        })))
    }

    /// A segment's CRC did not match (cold): the decoder fails with it, at offset `at`.
    #[cold]
    #[inline(never)]
    fn segment_crc(&mut self, segment: Segment, expected: u32, actual: u32, at: u64) -> WireError {
        let e = WireError::SegmentCrc {
            segment,
            expected,
            actual,
        };
        self.fail(e, at)
    }

    fn decode_body<F: Frames>(
        &mut self,
        header: MsgHeader,
        buf: &mut BytesMut,
    ) -> Result<Option<F::Item>, F::Error> {
        let (front_len, middle_len, data_len) = (
            header.front_len as usize,
            header.middle_len as usize,
            header.data_len as usize,
        );
        let footer_len = self.footer.wire_len();
        if buf.len() < front_len + middle_len + data_len + footer_len {
            self.fold_data_crc(buf, front_len + middle_len, data_len);
            return Ok(None);
        }
        let start = self.consumed;
        let footer_at = start + (front_len + middle_len + data_len) as u64;
        let mut footer_bytes = buf
            .get(front_len + middle_len + data_len..)
            .unwrap_or_default();
        let footer =
            decode_footer(self.footer, &mut footer_bytes).map_err(|e| self.fail(e, footer_at))?;
        let (front, middle, data) =
            take_segments(buf, front_len, middle_len, data_len, self.copy_small);
        // The data CRC: the part folded in while the body arrived, then the rest.
        let data_check = self.crc.data && !footer.is_nocrc();
        let data_crc = if data_check {
            match data.get(self.data_done..) {
                Some(rest) => crc32c(self.data_crc, rest),
                None => crc32c(0, &data),
            }
        } else {
            0
        };
        self.data_done = 0;
        self.data_crc = 0;
        let checks = [
            (
                Segment::Front,
                &front,
                footer.front_crc,
                start,
                self.crc.header,
            ),
            (
                Segment::Middle,
                &middle,
                footer.middle_crc,
                start + front_len as u64,
                self.crc.header,
            ),
        ];
        for (segment, bytes, expected, at, enabled) in checks {
            if enabled {
                check_segment(segment, bytes, expected).map_err(|e| self.fail(e, at))?;
            }
        }
        if data_check && data_crc != footer.data_crc {
            let at = start + (front_len + middle_len) as u64;
            let e = self.segment_crc(Segment::Data, footer.data_crc, data_crc, at);
            return Err(e.into());
        }
        buf.advance(footer_len);
        self.consumed = footer_at + footer_len as u64;
        self.state = State::Tag;
        Ok(Some(F::message(Message {
            header,
            front,
            middle,
            data,
            footer,
        })))
    }
}

/// The footer in `raw` (at least the footer's bytes; a whole frame's, so never short), read at
/// fixed offsets: the same fields as [`decode_footer`].
#[inline(always)]
fn fixed_footer(kind: FooterKind, raw: &[u8]) -> MsgFooter {
    let u32_at = |i: usize| {
        raw.get(i..i + 4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map_or(0, u32::from_le_bytes)
    };
    let (sig, flags_at) = match kind {
        FooterKind::New => {
            let sig = raw
                .get(12..20)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map_or(0, u64::from_le_bytes);
            (sig, 20)
        }
        FooterKind::Old => (0, 12),
    };
    MsgFooter {
        front_crc: u32_at(0),
        middle_crc: u32_at(4),
        data_crc: u32_at(8),
        sig,
        flags: raw.get(flags_at).copied().unwrap_or(0),
    }
}

/// Largest payload (front + middle + data) whose segments a decoder told to
/// ([`FrameDecoder::copy_small_payloads`]) copies out of the receive buffer instead of
/// sharing it.
///
/// A shared segment costs two atomic read-modify-writes on the buffer's reference count
/// (one when split off, one when dropped), and a message of two segments four; on a core
/// that has just stored the message, each waits for the store buffer to drain (perf, a
/// 64-byte stream: 9 % of the process's time in those four instructions). A copied segment
/// is one allocation and one free of a small chunk and a copy of at most this many bytes;
/// the receive buffer then stays unshared, so it is reused in place. That is cheaper only
/// while the message is freed on the thread that decoded it (a fast dispatch): freed on
/// another, each chunk goes back through glibc's arena (a queued dispatch: about 5 % more
/// CPU per message than sharing).
pub const SMALL_PAYLOAD: usize = 512;

/// The three segments at the front of `buf`, taken out of it: copied when they are small
/// ([`SMALL_PAYLOAD`]) and `copy` says so, else as one piece split there: one
/// `BytesMut::split_to` and `freeze` per message, not one per segment (each cost about 40
/// instructions); a `Bytes` split costs half that, and none for the last segment.
/// Always inlined: out of line, its three `Bytes` went back through memory (callgrind: ~40
/// instructions more per message).
#[inline(always)]
fn take_segments(
    buf: &mut BytesMut,
    front_len: usize,
    middle_len: usize,
    data_len: usize,
    copy: bool,
) -> (Bytes, Bytes, Bytes) {
    let payload = front_len + middle_len + data_len;
    if copy && payload <= SMALL_PAYLOAD {
        return copy_segments(buf, front_len, middle_len, payload);
    }
    let mut all = take_segment(buf, payload);
    let front = split_bytes(&mut all, front_len);
    let middle = split_bytes(&mut all, middle_len);
    (front, middle, all)
}

/// [`take_segments`] for a small payload: each segment copied into its own allocation
/// (none for an empty one), `buf` advanced past them.
#[inline(never)]
fn copy_segments(
    buf: &mut BytesMut,
    front_len: usize,
    middle_len: usize,
    payload: usize,
) -> (Bytes, Bytes, Bytes) {
    let segments = {
        let all = buf.get(..payload).unwrap_or_default();
        let (front, rest) = all.split_at_checked(front_len).unwrap_or_default();
        let (middle, data) = rest.split_at_checked(middle_len).unwrap_or_default();
        (
            Bytes::copy_from_slice(front),
            Bytes::copy_from_slice(middle),
            Bytes::copy_from_slice(data),
        )
    };
    buf.advance(payload.min(buf.len()));
    segments
}

/// The first `len` bytes of `b`, taken out of it (no reference taken when `len` is 0 or
/// all of `b`).
#[inline(always)]
fn split_bytes(b: &mut Bytes, len: usize) -> Bytes {
    if len == 0 {
        Bytes::new()
    } else {
        b.split_to(len)
    }
}

/// The next `len` bytes of `buf` as a segment; an empty segment shares nothing.
#[inline(always)]
fn take_segment(buf: &mut BytesMut, len: usize) -> Bytes {
    if len == 0 {
        Bytes::new()
    } else {
        buf.split_to(len).freeze()
    }
}

impl FrameDecoder {
    /// Folds the data bytes that arrived since the last call into the running data CRC
    /// (large data segments only; `data_at` is where the data starts in `buf`).
    fn fold_data_crc(&mut self, buf: &BytesMut, data_at: usize, data_len: usize) {
        if !self.crc.data || data_len < INCREMENTAL_CRC_MIN {
            return;
        }
        let end = buf.len().min(data_at.saturating_add(data_len));
        let from = data_at.saturating_add(self.data_done);
        if let Some(chunk) = buf.get(from..end) {
            if !chunk.is_empty() {
                self.data_crc = crc32c(self.data_crc, chunk);
                self.data_done += chunk.len();
            }
        }
    }
}

fn frame_name(tag: Option<u8>) -> &'static str {
    match tag.map(Tag::try_from) {
        Some(Ok(Tag::Msg)) => "a message header",
        Some(Ok(Tag::Ack)) => "an ack",
        Some(Ok(Tag::Keepalive2)) => "a keepalive2",
        Some(Ok(Tag::Keepalive2Ack)) => "a keepalive2 ack",
        _ => "a frame",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoder() -> FrameDecoder {
        FrameDecoder::new(Limits::default(), FooterKind::New, CrcFlags::default())
    }

    #[test]
    fn small_frames_byte_by_byte() {
        let mut bytes = Vec::new();
        for f in [
            Frame::Ack(5),
            Frame::Keepalive,
            Frame::Keepalive2(Timespec::new(1, 2)),
            Frame::Keepalive2Ack(Timespec::new(3, 4)),
            Frame::Close,
        ] {
            f.encode(FooterKind::New, &mut bytes);
        }
        let mut dec = decoder().starting_at(100);
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for b in bytes {
            buf.extend_from_slice(&[b]);
            while let Some(f) = dec.decode(&mut buf).unwrap() {
                got.push(f);
            }
        }
        assert_eq!(got.len(), 5);
        assert_eq!(got[0], Frame::Ack(5));
        assert_eq!(got[4], Frame::Close);
        assert_eq!(dec.consumed(), 100 + 9 + 1 + 9 + 9 + 1);
        assert_eq!(dec.decode_eof(&mut buf).unwrap(), None);
    }

    /// Large data segments get their CRC folded in piecewise as chunks arrive: same frames,
    /// same errors (at the data's offset) as a whole-buffer check.
    #[test]
    fn large_data_crc_in_chunks() {
        use crate::entity::EntityName;
        let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 + 3) as u8).collect();
        let mut m = Message::new(9, &b"front"[..]).with_data(data);
        m.seal(1, EntityName::client(1), CrcFlags::default());
        let mut frame = Vec::new();
        m.encode_frame(FooterKind::New, &mut frame);
        for corrupt in [
            None,
            Some(FRAME_HEAD_LEN + 5 + 150_000),
            Some(FRAME_HEAD_LEN + 5),
        ] {
            let mut bytes = frame.clone();
            if let Some(at) = corrupt {
                bytes[at] ^= 1;
            }
            for chunk in [7_001, 65_536, bytes.len()] {
                let mut dec = decoder();
                let mut buf = BytesMut::new();
                let mut result = None;
                for piece in bytes.chunks(chunk) {
                    buf.extend_from_slice(piece);
                    match dec.decode(&mut buf) {
                        Ok(None) => {}
                        other => {
                            result = Some(other);
                            break;
                        }
                    }
                }
                match (corrupt, result) {
                    (None, Some(Ok(Some(Frame::Msg(got))))) => assert_eq!(got, m),
                    (Some(_), Some(Err(e))) => {
                        let e = e.to_string();
                        assert!(e.contains("data") || e.contains("Data"), "{e}");
                        assert!(e.contains(&(FRAME_HEAD_LEN + 5).to_string()), "{e}");
                    }
                    (c, r) => panic!("corrupt {c:?}, chunk {chunk}: {r:?}"),
                }
            }
        }
    }

    /// Every outcome of `dec` on `bytes` fed in pieces cut at `cuts`: the frames or the
    /// error, then the offset consumed, and the bytes taken out of the buffer if no error
    /// ended the stream (after one the streaming path has split the failed frame's body off,
    /// the whole-frame path has not: the decoder only repeats its error from then on).
    fn outcome(
        mut dec: FrameDecoder,
        bytes: &[u8],
        cuts: &[usize],
    ) -> (Vec<Frame>, Option<WireError>, u64, Option<usize>) {
        let mut buf = BytesMut::new();
        let mut frames = Vec::new();
        let mut from = 0;
        for &cut in cuts.iter().chain([&bytes.len()]) {
            buf.extend_from_slice(bytes.get(from..cut.max(from)).unwrap_or_default());
            from = cut.max(from);
            loop {
                match dec.decode(&mut buf) {
                    Ok(Some(f)) => frames.push(f),
                    Ok(None) => break,
                    Err(e) => return (frames, Some(e), dec.consumed(), None),
                }
            }
        }
        (frames, None, dec.consumed(), Some(from - buf.len()))
    }

    /// The whole-frame path (a frame whose every byte is buffered) against the streaming
    /// path (the same bytes with the frame cut after its head, or byte by byte), byte for
    /// byte: the same frames, the same error at the same offset for every flipped bit of
    /// every frame's head, segments and footer, both footer layouts, every CRC setting, the
    /// data CRC waived by `FOOTER_NOCRC`, a frame of each size behind another frame.
    #[test]
    fn whole_frames_decode_as_the_streaming_path() {
        use crate::consts::FOOTER_NOCRC;
        use crate::entity::EntityName;
        let shapes: [(&[u8], &[u8], &[u8]); 5] = [
            (b"", b"", b""),
            (
                b"front 16 bytes..",
                b"",
                b"data of the bench message, 48 bytes long.......",
            ),
            (b"f", b"middle", b"d"),
            (b"", b"", b"only data"),
            (b"only a front", b"", b""),
        ];
        let crcs = CrcFlags::ALL;
        let mut compared = 0;
        for kind in [FooterKind::New, FooterKind::Old] {
            for (front, middle, data) in shapes {
                for nocrc in [false, true] {
                    let mut m = Message::new(7, Bytes::copy_from_slice(front))
                        .with_middle(Bytes::copy_from_slice(middle))
                        .with_data(Bytes::copy_from_slice(data));
                    m.seal(3, EntityName::client(4), CrcFlags::default());
                    if nocrc {
                        m.footer.flags |= FOOTER_NOCRC;
                    }
                    // An ACK first, so that the message starts past offset 0.
                    let mut bytes = Vec::new();
                    Frame::Ack(9).encode(kind, &mut bytes);
                    let at = bytes.len();
                    m.encode_frame(kind, &mut bytes);
                    for crc in crcs {
                        let dec = FrameDecoder::new(Limits::default(), kind, crc);
                        for flip in std::iter::once(None).chain((at..bytes.len()).map(Some)) {
                            for bit in 0..8 {
                                let mut b = bytes.clone();
                                if let Some(i) = flip {
                                    b[i] ^= 1 << bit;
                                } else if bit > 0 {
                                    break;
                                }
                                let whole = outcome(dec.clone(), &b, &[]);
                                let split = outcome(dec.clone(), &b, &[at + FRAME_HEAD_LEN]);
                                let bytewise: Vec<usize> = (0..b.len()).collect();
                                let bytewise = outcome(dec.clone(), &b, &bytewise);
                                assert_eq!(whole, split, "{kind:?} {crc:?} flip {flip:?}.{bit}");
                                assert_eq!(whole, bytewise, "{kind:?} {crc:?} flip {flip:?}.{bit}");
                                if flip.is_none() {
                                    assert!(whole.1.is_none());
                                    let mut expected = m.clone();
                                    if kind == FooterKind::Old {
                                        expected.footer.sig = 0;
                                    }
                                    assert_eq!(whole.0, vec![Frame::Ack(9), Frame::Msg(expected)]);
                                }
                                compared += 1;
                            }
                        }
                    }
                }
            }
        }
        assert!(compared > 10_000, "{compared}");
    }

    /// The whole-frame path verifies each segment's CRC: a flipped byte of each segment is
    /// reported as that segment's CRC, at that segment's offset (the ACK before it: 9 bytes).
    #[test]
    fn whole_frames_report_each_segment_crc() {
        use crate::entity::EntityName;
        let mut m = Message::new(7, &b"front"[..])
            .with_middle(&b"middle"[..])
            .with_data(&b"data"[..]);
        m.seal(3, EntityName::client(4), CrcFlags::default());
        let mut bytes = Vec::new();
        Frame::Ack(9).encode(FooterKind::New, &mut bytes);
        m.encode_frame(FooterKind::New, &mut bytes);
        let head = 9 + FRAME_HEAD_LEN;
        for (segment, offset) in [
            (Segment::Front, head),
            (Segment::Middle, head + 5),
            (Segment::Data, head + 11),
        ] {
            let mut b = bytes.clone();
            b[offset] ^= 0x40;
            let (frames, e, _, _) = outcome(decoder(), &b, &[]);
            assert_eq!(frames, vec![Frame::Ack(9)]);
            let e = e.expect("a corrupted segment");
            assert_eq!(e.offset(), Some(offset as u64));
            assert!(
                matches!(e.cause(), WireError::SegmentCrc { segment: s, .. } if *s == segment),
                "{e:?}"
            );
        }
    }

    /// Told to, the decoder copies a small payload's segments out and leaves the receive
    /// buffer unshared (reusable in place while the message lives); a larger payload's
    /// segments share it, and every payload's do by default. All decode to the message sent,
    /// across the boundary.
    #[test]
    fn small_payloads_are_copied_when_asked_larger_ones_shared() {
        use crate::entity::EntityName;
        for (copy, payload) in [false, true]
            .into_iter()
            .flat_map(|c| (SMALL_PAYLOAD - 2..=SMALL_PAYLOAD + 2).map(move |p| (c, p)))
        {
            let data: Vec<u8> = (0..payload - 7).map(|i| i as u8).collect();
            let mut m = Message::new(7, &b"front"[..])
                .with_middle(&b"mi"[..])
                .with_data(data);
            m.seal(1, EntityName::client(1), CrcFlags::default());
            let mut frame = Vec::new();
            m.encode_frame(FooterKind::New, &mut frame);
            let room = 4 * frame.len();
            let mut buf = BytesMut::with_capacity(room);
            buf.extend_from_slice(&frame);
            let mut dec = decoder();
            dec.copy_small_payloads(copy);
            let got = dec.decode(&mut buf).unwrap();
            assert_eq!(got, Some(Frame::Msg(m.clone())), "{copy} {payload}");
            assert!(buf.is_empty());
            let copied = copy && payload <= SMALL_PAYLOAD;
            assert_eq!(buf.try_reclaim(room), copied, "{copy} {payload}");
            drop(got);
            assert!(buf.try_reclaim(room), "{copy} {payload}");
        }
    }

    #[test]
    fn bad_tags() {
        let mut dec = decoder();
        let e = dec.decode(&mut BytesMut::from(&[0u8][..])).unwrap_err();
        assert_eq!(
            (e.cause(), e.offset()),
            (&WireError::UnknownTag { tag: 0 }, Some(0))
        );
        let mut dec = decoder();
        let e = dec.decode(&mut BytesMut::from(&[13u8][..])).unwrap_err();
        assert!(matches!(
            e.cause(),
            WireError::UnexpectedTag { tag: Tag::Seq, .. }
        ));
    }

    #[test]
    fn eof_inside_an_ack() {
        let mut dec = decoder();
        let mut buf = BytesMut::from(&[8u8, 1, 2][..]);
        assert_eq!(dec.decode(&mut buf).unwrap(), None);
        let e = dec.decode_eof(&mut buf).unwrap_err();
        assert_eq!(
            e.cause(),
            &WireError::UnexpectedEof {
                inside: "an ack",
                remaining: 3
            }
        );
    }
}
