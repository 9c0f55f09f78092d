//! [`FrameDecoder`]: the streaming decoder of the tagged stream (spec §3.7, §3.9).

use bytes::{Buf, Bytes, BytesMut};

use crate::consts::{HEADER_CRC_LEN, HEADER_LEN, TIMESPEC_LEN};
use crate::crc::crc32c;
use crate::error::{Segment, WireError};
use crate::footer::{decode_footer, FooterKind};
use crate::frame::Frame;
use crate::header::{MsgHeader, Timespec};
use crate::limits::{CrcFlags, Limits};
use crate::message::{check_segment, Message, FRAME_HEAD_LEN};
use crate::tag::Tag;
use crate::Wire;

/// The most the decoder reserves ahead for a declared body; larger bodies (only possible
/// with limits above the defaults) grow the buffer as bytes arrive.
const MAX_RESERVE: usize = 128 << 20;

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
        // Every step returns this function's own result type, so a message is built once,
        // in the caller's slot: a step result converted here (a `Step` enum matched into an
        // `Option<Frame>`) copied the whole ~200-byte message once more per frame.
        match &self.state {
            State::Failed(e) => Err(e.clone()),
            State::Tag => self.decode_tag(buf),
            State::Body { header } => {
                let header = *header;
                self.decode_body(header, buf)
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

    fn advance(&mut self, buf: &mut BytesMut, n: usize) {
        buf.advance(n);
        self.consumed += n as u64;
    }

    fn decode_tag(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, WireError> {
        let at = self.consumed;
        let Some(&byte) = buf.first() else {
            return Ok(None);
        };
        let tag = Tag::try_from(byte).map_err(|e| self.fail(e, at))?;
        let frame = match tag {
            Tag::Msg => return self.decode_header(buf),
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
                return Err(self.fail(e, at));
            }
        };
        let len = frame.wire_len(self.footer);
        self.advance(buf, len);
        Ok(Some(frame))
    }

    fn decode_header(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, WireError> {
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
                return Err(self.fail(e, at));
            }
        }
        let payload = self
            .limits
            .check_segments(header.front_len, header.middle_len, header.data_len)
            .map_err(|e| self.fail(e, at))?;
        self.advance(buf, FRAME_HEAD_LEN);
        let body = usize::try_from(payload)
            .unwrap_or(usize::MAX)
            .saturating_add(self.footer.wire_len());
        self.data_done = 0;
        self.data_crc = 0;
        if buf.len() < body {
            if self.reserve_bodies {
                buf.reserve(body.saturating_sub(buf.len()).min(MAX_RESERVE));
            }
            self.state = State::Body { header };
        }
        // The whole frame is here (a stream of small messages, but for the one a read
        // cuts): decoded at once, without storing the header as the state and matching it
        // again; otherwise what is here of the data is folded into its CRC.
        self.decode_body(header, buf)
    }

    fn decode_body(
        &mut self,
        header: MsgHeader,
        buf: &mut BytesMut,
    ) -> Result<Option<Frame>, WireError> {
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
        let (front, middle, data) = take_segments(buf, front_len, middle_len, data_len);
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
            let e = WireError::SegmentCrc {
                segment: Segment::Data,
                expected: footer.data_crc,
                actual: data_crc,
            };
            return Err(self.fail(e, start + (front_len + middle_len) as u64));
        }
        buf.advance(footer_len);
        self.consumed = footer_at + footer_len as u64;
        self.state = State::Tag;
        Ok(Some(Frame::Msg(Message {
            header,
            front,
            middle,
            data,
            footer,
        })))
    }
}

/// The three segments at the front of `buf`, taken out of it as one piece and split there:
/// one `BytesMut::split_to` and `freeze` per message, not one per segment (each cost about
/// 40 instructions); a `Bytes` split costs half that, and none for the last segment.
#[inline]
fn take_segments(
    buf: &mut BytesMut,
    front_len: usize,
    middle_len: usize,
    data_len: usize,
) -> (Bytes, Bytes, Bytes) {
    let mut all = take_segment(buf, front_len + middle_len + data_len);
    let front = split_bytes(&mut all, front_len);
    let middle = split_bytes(&mut all, middle_len);
    (front, middle, all)
}

/// The first `len` bytes of `b`, taken out of it (no reference taken when `len` is 0 or
/// all of `b`).
#[inline]
fn split_bytes(b: &mut Bytes, len: usize) -> Bytes {
    if len == 0 {
        Bytes::new()
    } else {
        b.split_to(len)
    }
}

/// The next `len` bytes of `buf` as a segment; an empty segment shares nothing.
#[inline]
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
