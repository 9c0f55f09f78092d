//! Helpers shared by the integration tests: the vectors, whole-stream decoding, re-encoding.
#![allow(dead_code)]

use bytes::BytesMut;
use msgr_wire::{CrcFlags, FooterKind, Frame, Item, Limits, Side, StreamDecoder, Wire, WireError};

/// The six captures, as (name, side, bytes).
pub fn vectors() -> Vec<(&'static str, Side, &'static [u8])> {
    vec![
        (
            "hunt-connector",
            Side::Connector,
            include_bytes!("../data/hunt-connector.bin"),
        ),
        (
            "hunt-acceptor",
            Side::Acceptor,
            include_bytes!("../data/hunt-acceptor.bin"),
        ),
        (
            "status-connector",
            Side::Connector,
            include_bytes!("../data/status-connector.bin"),
        ),
        (
            "status-acceptor",
            Side::Acceptor,
            include_bytes!("../data/status-acceptor.bin"),
        ),
        (
            "configkey-set-connector",
            Side::Connector,
            include_bytes!("../data/configkey-set-connector.bin"),
        ),
        (
            "configkey-set-acceptor",
            Side::Acceptor,
            include_bytes!("../data/configkey-set-acceptor.bin"),
        ),
    ]
}

/// An item with the stream offsets where it starts and ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    pub start: u64,
    pub end: u64,
    pub item: Item,
}

/// Decodes `bytes` fed in chunks of the given sizes (cycled); the last call is `decode_eof`.
pub fn decode_chunked(
    side: Side,
    bytes: &[u8],
    chunks: &[usize],
) -> Result<Vec<Located>, WireError> {
    let mut dec = StreamDecoder::new(side, Limits::default(), CrcFlags::default());
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut pos = 0;
    let mut i = 0;
    let mut push = |dec: &StreamDecoder, item| {
        let start = out.last().map_or(0, |l: &Located| l.end);
        out.push(Located {
            start,
            end: dec.consumed(),
            item,
        });
    };
    while pos < bytes.len() {
        let n = chunks
            .get(i % chunks.len().max(1))
            .copied()
            .unwrap_or(bytes.len())
            .max(1);
        i += 1;
        let end = (pos + n).min(bytes.len());
        buf.extend_from_slice(&bytes[pos..end]);
        pos = end;
        while let Some(item) = dec.decode(&mut buf)? {
            push(&dec, item);
        }
    }
    while let Some(item) = dec.decode_eof(&mut buf)? {
        push(&dec, item);
    }
    Ok(out)
}

/// Decodes a whole stream in one piece.
pub fn decode_all(side: Side, bytes: &[u8]) -> Result<Vec<Located>, WireError> {
    decode_chunked(side, bytes, &[bytes.len().max(1)])
}

/// Encodes items back to bytes (footer per `kind`).
pub fn encode_items<'a>(items: impl IntoIterator<Item = &'a Item>, kind: FooterKind) -> Vec<u8> {
    let mut out = Vec::new();
    for item in items {
        match item {
            Item::Banner => msgr_wire::Banner.encode(&mut out),
            Item::Addr(a) => a.encode(&mut out),
            Item::Connect(c) => c.encode(&mut out),
            Item::ConnectReply(r) => r.encode(&mut out),
            Item::Seq(s) => out.extend_from_slice(&s.to_le_bytes()),
            Item::Frame(f) => f.encode(kind, &mut out),
        }
    }
    out
}

/// The README's row for an item (`None` for banner and addresses, which it does not list).
pub fn row(side: Side, item: &Item) -> Option<String> {
    Some(match item {
        Item::Banner | Item::Addr(_) => return None,
        Item::Connect(c) => format!(
            "connect {:#x} {} {} {} {} {} {} {}",
            c.features,
            c.host_type,
            c.global_seq,
            c.connect_seq,
            c.protocol_version,
            c.authorizer_protocol,
            c.authorizer.len(),
            c.flags
        ),
        Item::ConnectReply(r) => format!(
            "connect_reply {} {:#x} {} {} {} {} {}",
            r.tag.byte(),
            r.features,
            r.global_seq,
            r.connect_seq,
            r.protocol_version,
            r.authorizer.len(),
            r.flags
        ),
        Item::Seq(s) if side == Side::Connector => format!("seq-reply {s}"),
        Item::Seq(s) => format!("seq {s}"),
        Item::Frame(Frame::Keepalive2(t)) => format!("keepalive2 ({}, {})", t.sec, t.nsec),
        Item::Frame(Frame::Keepalive2Ack(t)) => format!("keepalive2_ack ({}, {})", t.sec, t.nsec),
        Item::Frame(Frame::Msg(m)) => {
            let h = &m.header;
            format!(
                "msg {} {} {} {} {} {} {} {} {} {} {} {}",
                h.seq,
                h.tid,
                h.ty,
                h.priority,
                h.version,
                h.front_len,
                h.middle_len,
                h.data_len,
                h.data_off,
                h.src.ty.0,
                h.compat_version,
                m.footer.flags
            )
        }
        Item::Frame(f) => format!("{:?}", f),
    })
}
