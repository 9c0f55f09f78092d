//! What follows a `ceph_msg_connect` in the bytes a connector wrote.
//!
//! One direction of a connection cannot see the acceptor's reply, so after a connect the
//! connector's bytes may be another connect (the reply was RETRY_*, RESETSESSION, WAIT …),
//! the raw le64 of a SEQ exchange (reply SEQ), or the frame stream directly (reply READY).
//! [`guess`] tells them apart from the bytes themselves:
//!
//! * another connect repeats the previous one's features, host type and protocol version
//!   (bytes 0..12 and 20..24), which neither a seq value nor a frame does;
//! * without `RECONNECT_SEQ` in the connect there is no SEQ exchange;
//! * a SEQ value is a message count: its four high bytes are zero;
//! * otherwise both readings are scored by following the frames they imply (over short
//!   frames): reaching a MSG header whose CRC verifies is strong evidence, stream tags all
//!   along weak, anything else none. Ties go to the SEQ value (Ceph's Async acceptor always
//!   answers SEQ when the connector advertises `RECONNECT_SEQ`).
//!
//! The answer depends only on bytes that are present: with too few it is `None` (more
//! bytes needed), so every chunking of a stream decodes the same way.

use crate::consts::{HEADER_LEN, SEQ_LEN};
use crate::crc::crc32c;
use crate::tag::Tag;

/// What the connector wrote after its connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    Connect,
    Seq,
    Frames,
}

/// The bytes of a connect that a repeated connect shares: 0..12 (features, host type) and
/// 20..24 (protocol version); the seqs in 12..20 may change.
pub(crate) fn prefix(c: &crate::Connect) -> [u8; 24] {
    let mut p = [0u8; 24];
    let mut w = &mut p[..];
    bytes::BufMut::put_u64_le(&mut w, c.features);
    bytes::BufMut::put_u32_le(&mut w, c.host_type);
    bytes::BufMut::put_u32_le(&mut w, c.global_seq);
    bytes::BufMut::put_u32_le(&mut w, c.connect_seq);
    bytes::BufMut::put_u32_le(&mut w, c.protocol_version);
    p
}

/// Decides what `buf` (the bytes after a connect whose first 24 bytes are `prev`) starts
/// with. `eof`: no more bytes will come.
pub(crate) fn guess(prev: &[u8; 24], reconnect_seq: bool, buf: &[u8], eof: bool) -> Option<Next> {
    if buf.is_empty() {
        return None;
    }
    let repeats = buf
        .iter()
        .zip(prev)
        .enumerate()
        .all(|(i, (b, p))| (12..20).contains(&i) || b == p);
    if repeats {
        // At the end of the stream a short repeat is a truncated connect.
        return (buf.len() >= prev.len() || eof).then_some(Next::Connect);
    }
    if !reconnect_seq {
        return Some(Next::Frames);
    }
    let first = *buf.first()?;
    if !is_stream_tag(first) {
        return Some(Next::Seq);
    }
    let as_frames = chain(buf, 0, eof, MAX_HOPS);
    let as_seq = match buf.get(4..SEQ_LEN) {
        // A seq value is a message count, far below 2^32: its high bytes are zero.
        Some(high) if high.iter().all(|&b| b == 0) => chain(buf, SEQ_LEN, eof, MAX_HOPS),
        Some(_) => Some(0),
        None => eof.then_some(0),
    };
    match (as_frames, as_seq) {
        (Some(f), Some(s)) if f > s => Some(Next::Frames),
        (Some(_), Some(_)) => Some(Next::Seq),
        _ => None,
    }
}

/// How many frames [`chain`] follows before it settles for "plausible".
const MAX_HOPS: u8 = 16;

/// How plausible it is that frames start at `at`, following short frames (CLOSE,
/// KEEPALIVE, ACK, KEEPALIVE2(_ACK)) up to `hops` times: 2 = they lead to a MSG header
/// whose CRC verifies, 1 = stream tags all along (or the stream ends exactly at a frame
/// boundary), 0 = not frames; `None` = not enough bytes yet.
fn chain(buf: &[u8], at: usize, eof: bool, hops: u8) -> Option<u8> {
    let Some(&tag) = buf.get(at) else {
        return eof.then_some(u8::from(buf.len() == at));
    };
    let next = match Tag::try_from(tag) {
        Ok(Tag::Msg) => return msg_header_at(buf, at + 1, eof),
        Ok(Tag::Close | Tag::Keepalive) => at + 1,
        Ok(Tag::Ack | Tag::Keepalive2 | Tag::Keepalive2Ack) => at + 9,
        _ => return Some(0),
    };
    if hops == 0 {
        return Some(1);
    }
    chain(buf, next, eof, hops - 1)
}

/// 2 if a header whose CRC verifies starts at `at`, else 0; `None` = not enough bytes yet.
fn msg_header_at(buf: &[u8], at: usize, eof: bool) -> Option<u8> {
    let Some(header) = buf.get(at..at + HEADER_LEN) else {
        return eof.then_some(0);
    };
    let (covered, crc) = header.split_at(HEADER_LEN - 4);
    let expected = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
    Some(if crc32c(0, covered) == expected { 2 } else { 0 })
}

fn is_stream_tag(b: u8) -> bool {
    Tag::try_from(b).is_ok_and(Tag::is_stream)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        features, Connect, CrcFlags, EntityName, FooterKind, Frame, Message, Timespec, Wire,
    };

    fn prev() -> ([u8; 24], Vec<u8>) {
        let c = Connect {
            features: features::ALL_PACIFIC,
            host_type: 8,
            protocol_version: 15,
            ..Connect::default()
        };
        let mut v = Vec::new();
        c.encode(&mut v);
        let mut p = [0u8; 24];
        p.copy_from_slice(&v[..24]);
        (p, v)
    }

    fn msg(seq: u64) -> Vec<u8> {
        let mut m = Message::new(17, vec![0u8; 10]);
        m.seal(seq, EntityName::client(-1), CrcFlags::default());
        let mut v = Vec::new();
        Frame::Msg(m).encode(FooterKind::New, &mut v);
        v
    }

    #[test]
    fn another_connect() {
        let (p, mut again) = prev();
        again[12] = 9; // another global_seq
        assert_eq!(guess(&p, true, &again, false), Some(Next::Connect));
        assert_eq!(guess(&p, true, &again[..20], false), None);
    }

    #[test]
    fn seq_then_frames_or_frames_directly() {
        let (p, _) = prev();
        // seq 0 then a keepalive2: the first byte is no tag.
        let mut seq_first = vec![0u8; 8];
        Frame::Keepalive2(Timespec::new(1_795_760_655, 1)).encode(FooterKind::New, &mut seq_first);
        assert_eq!(guess(&p, true, &seq_first[..1], false), Some(Next::Seq));
        // A MSG straight away (READY): its header CRC verifies.
        let direct = msg(1);
        assert_eq!(guess(&p, true, &direct[..40], false), None);
        assert_eq!(guess(&p, true, &direct, false), Some(Next::Frames));
        // seq 7 (low byte = the MSG tag) followed by a MSG.
        let mut seq7 = 7u64.to_le_bytes().to_vec();
        seq7.extend(msg(8));
        assert_eq!(guess(&p, true, &seq7, false), Some(Next::Seq));
        // Without RECONNECT_SEQ there is no seq value.
        assert_eq!(guess(&p, false, &seq_first, false), Some(Next::Frames));
        // A seq value that ends the stream.
        assert_eq!(guess(&p, true, &9u64.to_le_bytes(), true), Some(Next::Seq));
        assert_eq!(guess(&p, true, &[], true), None);
    }
}
