//! Ceph msgr v1 wire codec.
//!
//! What it does: encode and decode, byte for byte, every structure of Ceph's msgr v1
//! ("classic", SimpleMessenger) protocol: the banner, the legacy 136-byte entity address
//! (IPv4 and IPv6), entity names and types, `ceph_msg_connect` / `ceph_msg_connect_reply`
//! with their authorizers and the SEQ value, every tag, the 53-byte message header with its
//! CRC, the 21-byte and 13-byte footers, ACK, KEEPALIVE, KEEPALIVE2 (+ack), CLOSE, and the
//! seed-0 CRC-32C. [`FrameDecoder`] and [`StreamDecoder`] take bytes in any chunking, check
//! every declared length against [`Limits`] before allocating, never panic, and hand out
//! payloads as [`bytes::Bytes`] sliced from the input without copying. `typed` (features
//! `typed`/`bincode` and `cbor`) lets Rust applications declare message types whose front is
//! a serde value, encoded by bincode 2 or CBOR.
//!
//! What it does not do: no I/O, no clock, no tasks, no tokio; no handshake or session
//! decisions (which reply to send, sequence numbers, acks, reconnects: that is `msgr-pipe`);
//! no cephx (signatures are carried, not computed); no msgr2; no 334-byte old header
//! (peers without `NOSRCADDR`); no payload decoding of Ceph's own messages.
//!
//! ```
//! use msgr_wire::{CrcFlags, EntityName, FooterKind, Frame, FrameDecoder, Limits, Message};
//! use bytes::BytesMut;
//!
//! let mut msg = Message::new(2, &b"ping"[..]);
//! msg.seal(1, EntityName::client(4123), CrcFlags::default());
//! let mut buf = BytesMut::new();
//! Frame::Msg(msg.clone()).encode(FooterKind::New, &mut buf);
//!
//! let mut dec = FrameDecoder::new(Limits::default(), FooterKind::New, CrcFlags::default());
//! assert_eq!(dec.decode(&mut buf).unwrap(), Some(Frame::Msg(msg)));
//! ```

mod addr;
mod after_connect;
mod connect;
mod consts;
mod crc;
mod decoder;
mod entity;
mod error;
pub mod features;
mod footer;
mod frame;
mod header;
mod limits;
mod message;
mod stream;
mod tag;
#[cfg(any(feature = "bincode", feature = "cbor"))]
pub mod typed;

use bytes::{Buf, BufMut};

pub use addr::{
    parse_addrs, pick_addr, put_sockaddr_after_family, socket_addr_from_sockaddr, AddrType,
    EntityAddr, ParseAddrError, AF_INET, AF_INET6, SOCKADDR_AFTER_FAMILY_LEN,
};
pub use connect::{Banner, Connect, ConnectReply};
pub use consts::*;
pub use crc::{crc32c, crc32c_reseed};
pub use decoder::{AsFrames, FrameDecoder, Frames, SMALL_PAYLOAD};
pub use entity::{EntityName, EntityType, ParseEntityError};
pub use error::{Segment, WireError};
pub use footer::{decode_footer, encode_footer, FooterKind, MsgFooter};
pub use frame::Frame;
pub use header::{MsgHeader, Timespec};
pub use limits::{CrcFlags, Limits};
pub use message::{Message, FRAME_HEAD_LEN};
pub use stream::{Expect, Item, Side, StreamDecoder};
pub use tag::Tag;

/// A fixed wire structure: encoding cannot fail; decoding checks the remaining length
/// before it reads and never panics. Multi-byte fields are little-endian unless a type's
/// documentation says otherwise.
pub trait Wire: Sized {
    /// Appends the encoded structure to `buf`.
    fn encode(&self, buf: &mut impl BufMut);

    /// Reads one structure from the front of `buf`. On error, `buf` may be partly consumed.
    fn decode(buf: &mut impl Buf) -> Result<Self, WireError>;
}
