//! Helpers shared by the capture tests.
#![allow(dead_code)]

use bytes::BytesMut;
use msgr_wire::{CrcFlags, Frame, Item, Limits, Message, Side, StreamDecoder};

/// The MSG frames of one captured stream, split by msgr-wire's StreamDecoder with every CRC verified.
pub fn messages(side: Side, stream: &[u8]) -> Vec<Message> {
    let mut dec = StreamDecoder::new(side, Limits::default(), CrcFlags::default());
    let mut buf = BytesMut::from(stream);
    let mut out = Vec::new();
    while let Some(item) = dec.decode_eof(&mut buf).expect("the capture decodes") {
        if let Item::Frame(Frame::Msg(msg)) = item {
            out.push(msg);
        }
    }
    assert!(buf.is_empty(), "the whole capture was consumed");
    out
}

/// The message with header seq `seq`.
pub fn msg(side: Side, stream: &[u8], seq: u64) -> Message {
    messages(side, stream)
        .into_iter()
        .find(|m| m.header.seq == seq)
        .unwrap_or_else(|| panic!("no message with seq {seq}"))
}
