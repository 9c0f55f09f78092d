//! [`StreamDecoder`]: one direction of a whole connection, handshake and frames.

use bytes::{Buf, BytesMut};

use crate::addr::EntityAddr;
use crate::after_connect;
use crate::connect::{Banner, Connect, ConnectReply};
use crate::consts::{ADDR_LEN, BANNER_LEN, CONNECT_LEN, CONNECT_REPLY_LEN, SEQ_LEN};
use crate::decoder::FrameDecoder;
use crate::error::WireError;
use crate::features::RECONNECT_SEQ;
use crate::footer::FooterKind;
use crate::frame::Frame;
use crate::limits::{CrcFlags, Limits};
use crate::tag::Tag;
use crate::Wire;

/// Which side of the connection wrote the bytes being decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// The side that called `connect()`: banner, own address, connect(s), SEQ value, frames.
    Connector,
    /// The side that accepted: banner, own address, the connector's address as seen,
    /// connect reply(s), SEQ value, frames.
    Acceptor,
}

/// What a [`StreamDecoder`] reads next; see [`StreamDecoder::expect`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Expect {
    /// The 9-byte banner.
    Banner,
    /// One legacy address.
    Addr,
    /// A `ceph_msg_connect` and its authorizer (connector side).
    Connect,
    /// A `ceph_msg_connect_reply` and its authorizer reply (acceptor side).
    ConnectReply,
    /// The raw le64 of the SEQ exchange.
    Seq,
    /// Tagged frames.
    Frames,
    /// Connector side, after a connect (the default there): another connect, the SEQ value
    /// or frames, told apart from the bytes themselves (see the type's documentation).
    AfterConnect,
}

/// One item of a decoded stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// The banner (it was checked).
    Banner,
    /// A legacy entity address.
    Addr(EntityAddr),
    /// A connect message.
    Connect(Connect),
    /// A connect reply.
    ConnectReply(ConnectReply),
    /// The 8-byte in_seq of the SEQ exchange.
    Seq(u64),
    /// A frame of the tagged stream.
    Frame(Frame),
}

/// Where the decoder is.
///
/// ```text
/// acceptor:  Banner ─▶ Addr(2) ─▶ ConnectReply ─┬─ READY ─────────▶ Frames
///                                   ▲  other tag │─ SEQ ─▶ Seq ────▶ Frames
///                                   └───────────┘
/// connector: Banner ─▶ Addr(1) ─▶ Connect ─▶ AfterConnect ─┬─ repeat ─▶ Connect
///                                                           ├─ SEQ value ─▶ Seq ─▶ Frames
///                                                           └─ a frame ─────────▶ Frames
/// ```
#[derive(Debug, Clone)]
enum Phase {
    Banner,
    Addr { left: u8 },
    Connect,
    ConnectReply,
    Seq,
    Frames,
    AfterConnect { prev: [u8; 24], reconnect_seq: bool },
    Failed(WireError),
}

/// Decodes everything one side of a connection wrote, from bytes in any chunking.
///
/// Same conventions as [`FrameDecoder`] (`Ok(None)` = need more bytes; whole items only;
/// errors carry the stream offset; never panics). The footer layout follows the features
/// visible in the stream (the connect's on the connector side, the READY/SEQ reply's on the
/// acceptor side) unless set with [`StreamDecoder::set_footer_kind`].
///
/// The acceptor's bytes say everything (each reply's tag tells what follows). The
/// connector's do not show the reply, so after a connect the decoder tells another connect,
/// the SEQ value and the first frame apart from the bytes: a repeated connect shares the
/// previous one's features, host type and protocol version; there is no SEQ value without
/// `RECONNECT_SEQ`; otherwise the reading under which a verified MSG header or a stream tag
/// follows wins, ties going to the SEQ value. A caller that knows the replies (the live
/// handshake) steers with [`StreamDecoder::expect`] instead.
#[derive(Debug, Clone)]
pub struct StreamDecoder {
    side: Side,
    phase: Phase,
    limits: Limits,
    crc: CrcFlags,
    footer: FooterKind,
    footer_locked: bool,
    consumed: u64,
    frames: FrameDecoder,
    /// The last connect's shared prefix and whether it advertised RECONNECT_SEQ.
    last_connect: Option<([u8; 24], bool)>,
}

impl StreamDecoder {
    /// A decoder for the bytes written by `side`, starting at the banner.
    pub fn new(side: Side, limits: Limits, crc: CrcFlags) -> Self {
        StreamDecoder {
            side,
            phase: Phase::Banner,
            limits,
            crc,
            footer: FooterKind::New,
            footer_locked: false,
            consumed: 0,
            frames: FrameDecoder::new(limits, FooterKind::New, crc),
            last_connect: None,
        }
    }

    /// The side whose bytes are decoded.
    pub fn side(&self) -> Side {
        self.side
    }

    /// Stream offset of the next unconsumed byte.
    pub fn consumed(&self) -> u64 {
        match self.phase {
            Phase::Frames => self.frames.consumed(),
            _ => self.consumed,
        }
    }

    /// Overrides what comes next, e.g. another [`Expect::Connect`] after a RETRY reply, or
    /// [`Expect::Frames`] after a READY reply to a connect that advertised `RECONNECT_SEQ`.
    /// Expecting frames while already reading frames changes nothing (a partly read
    /// message is kept).
    pub fn expect(&mut self, next: Expect) {
        if next == Expect::Frames && matches!(self.phase, Phase::Frames) {
            return;
        }
        let consumed = self.consumed();
        self.consumed = consumed;
        self.phase = match next {
            Expect::Banner => Phase::Banner,
            Expect::Addr => Phase::Addr { left: 1 },
            Expect::Connect => Phase::Connect,
            Expect::ConnectReply => Phase::ConnectReply,
            Expect::Seq => Phase::Seq,
            Expect::Frames => self.enter_frames(),
            Expect::AfterConnect => match self.last_connect {
                Some((prev, reconnect_seq)) => Phase::AfterConnect {
                    prev,
                    reconnect_seq,
                },
                None => Phase::Connect,
            },
        };
    }

    /// What the decoder reads next (`None` after a fault).
    pub fn expecting(&self) -> Option<Expect> {
        Some(match self.phase {
            Phase::Banner => Expect::Banner,
            Phase::Addr { .. } => Expect::Addr,
            Phase::Connect => Expect::Connect,
            Phase::ConnectReply => Expect::ConnectReply,
            Phase::Seq => Expect::Seq,
            Phase::Frames => Expect::Frames,
            Phase::AfterConnect { .. } => Expect::AfterConnect,
            Phase::Failed(_) => return None,
        })
    }

    /// Fixes the footer layout (no more automatic choice from features).
    pub fn set_footer_kind(&mut self, kind: FooterKind) {
        self.footer_locked = true;
        self.set_footer(kind);
    }

    /// The footer layout in use.
    pub fn footer_kind(&self) -> FooterKind {
        self.footer
    }

    /// The header of a message whose body is awaited (see [`FrameDecoder::pending_header`]).
    pub fn pending_header(&self) -> Option<&crate::MsgHeader> {
        match self.phase {
            Phase::Frames => self.frames.pending_header(),
            _ => None,
        }
    }

    fn set_footer(&mut self, kind: FooterKind) {
        self.footer = kind;
        self.frames.set_footer_kind(kind);
    }

    fn auto_footer(&mut self, features: u64) {
        if !self.footer_locked {
            self.set_footer(FooterKind::for_features(features));
        }
    }

    fn enter_frames(&mut self) -> Phase {
        self.frames =
            FrameDecoder::new(self.limits, self.footer, self.crc).starting_at(self.consumed);
        Phase::Frames
    }

    /// Decodes the next item: `Ok(None)` if `buf` holds only part of one.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Item>, WireError> {
        let at = self.consumed;
        let result = match &self.phase {
            Phase::Failed(e) => return Err(e.clone()),
            Phase::Frames => return Ok(self.frames.decode(buf)?.map(Item::Frame)),
            Phase::AfterConnect {
                prev,
                reconnect_seq,
            } => {
                return match after_connect::guess(prev, *reconnect_seq, buf, false) {
                    Some(next) => {
                        self.resolve(next);
                        self.decode(buf)
                    }
                    None => Ok(None),
                }
            }
            Phase::Banner => {
                self.take(buf, BANNER_LEN, |b| Banner::decode(b).map(|_| Item::Banner))
            }
            Phase::Addr { .. } => {
                self.take(buf, ADDR_LEN, |b| EntityAddr::decode(b).map(Item::Addr))
            }
            Phase::Seq => self.take(buf, SEQ_LEN, |b| Ok(Item::Seq(b.get_u64_le()))),
            Phase::Connect => self.connect(buf),
            Phase::ConnectReply => self.reply(buf),
        };
        match result {
            Ok(Some(item)) => {
                self.after(&item);
                Ok(Some(item))
            }
            Ok(None) => Ok(None),
            Err((e, rel)) => Err(self.fail(e.at(at + rel))),
        }
    }

    /// Like [`StreamDecoder::decode`] at the end of the stream: a partial item left over is
    /// reported as [`WireError::UnexpectedEof`].
    pub fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Item>, WireError> {
        if let Phase::Frames = self.phase {
            return Ok(self.frames.decode_eof(buf)?.map(Item::Frame));
        }
        if let Phase::AfterConnect {
            prev,
            reconnect_seq,
        } = &self.phase
        {
            return match after_connect::guess(prev, *reconnect_seq, buf, true) {
                Some(next) => {
                    self.resolve(next);
                    self.decode_eof(buf)
                }
                None => Ok(None),
            };
        }
        if let Some(item) = self.decode(buf)? {
            return Ok(Some(item));
        }
        if buf.is_empty() {
            return Ok(None);
        }
        let inside = match self.phase {
            Phase::Banner => "the banner",
            Phase::Addr { .. } => "an address",
            Phase::Connect => "a connect",
            Phase::ConnectReply => "a connect reply",
            _ => "the seq value",
        };
        let e = WireError::UnexpectedEof {
            inside,
            remaining: buf.len(),
        };
        Err(self.fail(e.at(self.consumed)))
    }

    fn fail(&mut self, e: WireError) -> WireError {
        self.phase = Phase::Failed(e.clone());
        e
    }

    /// Consumes `len` bytes and decodes them with `f`, once they are all there.
    fn take(
        &mut self,
        buf: &mut BytesMut,
        len: usize,
        f: impl FnOnce(&mut bytes::Bytes) -> Result<Item, WireError>,
    ) -> Result<Option<Item>, (WireError, u64)> {
        if buf.len() < len {
            return Ok(None);
        }
        let mut bytes = buf.split_to(len).freeze();
        self.consumed += len as u64;
        f(&mut bytes).map(Some).map_err(|e| (e, 0))
    }

    fn connect(&mut self, buf: &mut BytesMut) -> Result<Option<Item>, (WireError, u64)> {
        let Some(auth) = Connect::peek_authorizer_len(buf) else {
            return Ok(None);
        };
        self.check_authorizer(auth, 28)?;
        let max = self.limits.max_authorizer;
        self.take(buf, CONNECT_LEN + auth as usize, |b| {
            Connect::decode_limited(b, max).map(Item::Connect)
        })
    }

    fn reply(&mut self, buf: &mut BytesMut) -> Result<Option<Item>, (WireError, u64)> {
        let Some(&tag) = buf.first() else {
            return Ok(None);
        };
        match Tag::try_from(tag) {
            Ok(t) if t.is_stream() => {
                let context = "as a connect reply tag";
                return Err((WireError::UnexpectedTag { tag: t, context }, 0));
            }
            Ok(_) => {}
            Err(e) => return Err((e, 0)),
        }
        let Some(auth) = ConnectReply::peek_authorizer_len(buf) else {
            return Ok(None);
        };
        self.check_authorizer(auth, 21)?;
        let max = self.limits.max_authorizer;
        self.take(buf, CONNECT_REPLY_LEN + auth as usize, |b| {
            ConnectReply::decode_limited(b, max).map(Item::ConnectReply)
        })
    }

    fn check_authorizer(&self, len: u32, field_at: u64) -> Result<(), (WireError, u64)> {
        if len > self.limits.max_authorizer {
            let e = WireError::TooLong {
                what: "authorizer",
                len: len.into(),
                limit: self.limits.max_authorizer.into(),
            };
            return Err((e, field_at));
        }
        Ok(())
    }

    /// Leaves `AfterConnect` for what the bytes showed.
    fn resolve(&mut self, next: after_connect::Next) {
        self.phase = match next {
            after_connect::Next::Connect => Phase::Connect,
            after_connect::Next::Seq => Phase::Seq,
            after_connect::Next::Frames => self.enter_frames(),
        };
    }

    /// Moves to the next phase after `item` was read.
    fn after(&mut self, item: &Item) {
        self.phase = match (item, &self.phase, self.side) {
            (Item::Banner, _, Side::Acceptor) => Phase::Addr { left: 2 },
            (Item::Banner, _, Side::Connector) => Phase::Addr { left: 1 },
            (Item::Addr(_), Phase::Addr { left: 2 }, _) => Phase::Addr { left: 1 },
            (Item::Addr(_), _, Side::Acceptor) => Phase::ConnectReply,
            (Item::Addr(_), _, Side::Connector) => Phase::Connect,
            (Item::Connect(c), _, _) => {
                self.auto_footer(c.features);
                let prev = after_connect::prefix(c);
                let reconnect_seq = c.features & RECONNECT_SEQ != 0;
                self.last_connect = Some((prev, reconnect_seq));
                Phase::AfterConnect {
                    prev,
                    reconnect_seq,
                }
            }
            (Item::ConnectReply(r), _, _) => match r.tag {
                Tag::Ready => {
                    self.auto_footer(r.features);
                    self.enter_frames()
                }
                Tag::Seq => {
                    self.auto_footer(r.features);
                    Phase::Seq
                }
                _ => Phase::ConnectReply,
            },
            (Item::Seq(_), _, _) => self.enter_frames(),
            (Item::Frame(_), _, _) => Phase::Frames,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{features, Banner, Message, Timespec};

    fn decode_all(dec: &mut StreamDecoder, bytes: &[u8]) -> Vec<Item> {
        let mut buf = BytesMut::from(bytes);
        let mut items = Vec::new();
        while let Some(item) = dec.decode_eof(&mut buf).unwrap() {
            items.push(item);
        }
        items
    }

    fn reply(tag: Tag, features: u64) -> ConnectReply {
        ConnectReply {
            features,
            ..ConnectReply::new(tag)
        }
    }

    #[test]
    fn acceptor_retry_then_ready_with_old_footer() {
        let mut bytes = Vec::new();
        Banner.encode(&mut bytes);
        EntityAddr::BLANK.encode(&mut bytes);
        EntityAddr::BLANK.encode(&mut bytes);
        reply(Tag::RetryGlobal, 0).encode(&mut bytes);
        // No MSG_AUTH: the 13-byte footer.
        reply(Tag::Ready, features::RECONNECT_SEQ).encode(&mut bytes);
        let mut m = Message::new(3, &b"abc"[..]);
        m.seal(1, crate::EntityName::mon(0), CrcFlags::default());
        Frame::Msg(m.clone()).encode(FooterKind::Old, &mut bytes);
        Frame::Keepalive2Ack(Timespec::new(1, 2)).encode(FooterKind::Old, &mut bytes);
        let mut dec = StreamDecoder::new(Side::Acceptor, Limits::default(), CrcFlags::default());
        let items = decode_all(&mut dec, &bytes);
        assert_eq!(items.len(), 7);
        assert_eq!(items[3], Item::ConnectReply(reply(Tag::RetryGlobal, 0)));
        assert_eq!(dec.footer_kind(), FooterKind::Old);
        m.footer.sig = 0;
        assert_eq!(items[5], Item::Frame(Frame::Msg(m)));
        assert_eq!(dec.consumed(), bytes.len() as u64);
        assert_eq!(dec.expecting(), Some(Expect::Frames));
    }

    #[test]
    fn explicit_footer_kind_wins() {
        let mut bytes = Vec::new();
        Banner.encode(&mut bytes);
        EntityAddr::BLANK.encode(&mut bytes);
        let connect = Connect {
            features: features::ALL_PACIFIC & !features::RECONNECT_SEQ,
            ..Connect::default()
        };
        connect.encode(&mut bytes);
        let mut m = Message::new(3, &b"abc"[..]);
        m.seal(1, crate::EntityName::client(1), CrcFlags::default());
        Frame::Msg(m).encode(FooterKind::Old, &mut bytes);
        let mut dec = StreamDecoder::new(Side::Connector, Limits::default(), CrcFlags::default());
        dec.set_footer_kind(FooterKind::Old);
        let items = decode_all(&mut dec, &bytes);
        assert!(matches!(items.last(), Some(Item::Frame(Frame::Msg(_)))));
        assert_eq!(dec.footer_kind(), FooterKind::Old);
    }

    #[test]
    fn errors_stick_and_eof_inside_the_handshake() {
        let mut dec = StreamDecoder::new(Side::Connector, Limits::default(), CrcFlags::default());
        let mut buf = BytesMut::from(&b"ceph v027\0\0"[..]);
        assert_eq!(dec.decode(&mut buf).unwrap(), Some(Item::Banner));
        assert_eq!(dec.decode(&mut buf).unwrap(), None);
        let e = dec.decode_eof(&mut buf).unwrap_err();
        assert_eq!(e.offset(), Some(9));
        assert!(matches!(
            e.cause(),
            WireError::UnexpectedEof {
                inside: "an address",
                remaining: 2
            }
        ));
        assert_eq!(dec.decode(&mut buf).unwrap_err(), e);
        assert_eq!(dec.expecting(), None);
    }
}
