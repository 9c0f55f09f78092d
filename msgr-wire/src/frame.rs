//! Stream frames (spec §3.7, §3.9).

use bytes::BufMut;

use crate::footer::FooterKind;
use crate::header::Timespec;
use crate::message::Message;
use crate::tag::Tag;
use crate::Wire;

/// One frame of the tagged stream that follows the handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// MSG (7): a message.
    Msg(Message),
    /// ACK (8): cumulative acknowledgement of every seq up to this one.
    Ack(u64),
    /// KEEPALIVE (9).
    Keepalive,
    /// KEEPALIVE2 (14) with the sender's clock.
    Keepalive2(Timespec),
    /// KEEPALIVE2_ACK (15) echoing a KEEPALIVE2's timestamp.
    Keepalive2Ack(Timespec),
    /// CLOSE (6).
    Close,
}

impl Frame {
    /// The frame's tag.
    pub fn tag(&self) -> Tag {
        match self {
            Frame::Msg(_) => Tag::Msg,
            Frame::Ack(_) => Tag::Ack,
            Frame::Keepalive => Tag::Keepalive,
            Frame::Keepalive2(_) => Tag::Keepalive2,
            Frame::Keepalive2Ack(_) => Tag::Keepalive2Ack,
            Frame::Close => Tag::Close,
        }
    }

    /// Encoded length (the footer layout matters only for MSG).
    pub fn wire_len(&self, kind: FooterKind) -> usize {
        match self {
            Frame::Msg(m) => m.wire_len(kind),
            Frame::Ack(_) | Frame::Keepalive2(_) | Frame::Keepalive2Ack(_) => 9,
            Frame::Keepalive | Frame::Close => 1,
        }
    }

    /// Writes the frame, tag first. A message is written as it is (seal it first).
    pub fn encode(&self, kind: FooterKind, buf: &mut impl BufMut) {
        match self {
            Frame::Msg(m) => m.encode_frame(kind, buf),
            Frame::Ack(seq) => {
                buf.put_u8(Tag::Ack.byte());
                buf.put_u64_le(*seq);
            }
            Frame::Keepalive2(ts) | Frame::Keepalive2Ack(ts) => {
                buf.put_u8(self.tag().byte());
                ts.encode(buf);
            }
            Frame::Keepalive | Frame::Close => buf.put_u8(self.tag().byte()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(f: &Frame) -> Vec<u8> {
        let mut v = Vec::new();
        f.encode(FooterKind::New, &mut v);
        assert_eq!(v.len(), f.wire_len(FooterKind::New));
        v
    }

    #[test]
    fn spec_vectors() {
        assert_eq!(bytes(&Frame::Ack(5)), [8, 5, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            bytes(&Frame::Keepalive2(Timespec::new(
                1_700_000_000,
                123_456_789
            ))),
            [0x0e, 0x00, 0xf1, 0x53, 0x65, 0x15, 0xcd, 0x5b, 0x07]
        );
        assert_eq!(bytes(&Frame::Keepalive), [9]);
        assert_eq!(bytes(&Frame::Close), [6]);
        assert_eq!(bytes(&Frame::Keepalive2Ack(Timespec::new(1, 2)))[0], 15);
    }
}
