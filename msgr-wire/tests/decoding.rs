//! Deterministic decoder tests: limits before allocation, pending headers, zero copy,
//! error offsets, steering a stream decoder.
#![allow(clippy::unwrap_used)]

mod common;

use bytes::BytesMut;
use common::{decode_all, vectors};
use msgr_wire::{
    Connect, CrcFlags, EntityAddr, EntityName, FooterKind, Frame, FrameDecoder, Item, Limits,
    Message, MsgHeader, Side, StreamDecoder, Tag, Wire, WireError,
};

#[test]
fn four_gib_front_is_refused_before_allocation() {
    let mut h = MsgHeader {
        seq: 1,
        ty: 1,
        front_len: u32::MAX,
        ..MsgHeader::default()
    };
    h.seal();
    let mut buf = BytesMut::with_capacity(64);
    buf.extend_from_slice(&[7]);
    buf.extend_from_slice(&h.to_bytes());
    let cap = buf.capacity();
    let mut dec = FrameDecoder::new(Limits::default(), FooterKind::New, CrcFlags::default());
    let err = dec.decode(&mut buf).unwrap_err();
    assert!(
        matches!(err.cause(), WireError::TooLong { what: "front", .. }),
        "{err}"
    );
    assert_eq!(err.offset(), Some(1));
    assert!(buf.capacity() <= cap.max(64));
    assert!(dec.pending_header().is_none());
    // The error sticks.
    assert_eq!(dec.decode(&mut buf).unwrap_err(), err);
}

#[test]
fn message_limit_counts_all_segments() {
    let limits = Limits {
        max_message: 100,
        ..Limits::default()
    };
    let mut m = Message::new(1, vec![0u8; 60]).with_data(vec![0u8; 60]);
    m.seal(1, EntityName::client(1), CrcFlags::default());
    let mut buf = BytesMut::new();
    m.encode_frame(FooterKind::New, &mut buf);
    let mut dec = FrameDecoder::new(limits, FooterKind::New, CrcFlags::default());
    let err = dec.decode(&mut buf).unwrap_err();
    assert!(matches!(
        err.cause(),
        WireError::TooLong {
            what: "message",
            len: 120,
            limit: 100
        }
    ));
}

/// A sealed message with a 1,000-byte front, and its encoded frame.
fn sealed_frame_with_1000_byte_front() -> (Message, BytesMut) {
    let mut m = Message::new(9, vec![1u8; 1000]);
    m.seal(4, EntityName::osd(2), CrcFlags::default());
    let mut bytes = BytesMut::new();
    m.encode_frame(FooterKind::New, &mut bytes);
    (m, bytes)
}

#[test]
fn pending_header_is_visible_before_the_body() {
    let (m, mut bytes) = sealed_frame_with_1000_byte_front();
    let mut dec = FrameDecoder::new(Limits::default(), FooterKind::New, CrcFlags::default());
    let mut buf = bytes.split_to(100);
    assert_eq!(dec.decode(&mut buf).unwrap(), None);
    assert_eq!(dec.pending_header().map(|h| h.front_len), Some(1000));
    assert!(buf.capacity() >= 1000 + 21 - 46);
    buf.extend_from_slice(&bytes);
    assert_eq!(dec.decode(&mut buf).unwrap(), Some(Frame::Msg(m)));
    assert!(dec.pending_header().is_none());
}

#[test]
fn a_decoder_leaving_reserves_to_its_caller_does_not_grow_the_buffer() {
    let (m, mut bytes) = sealed_frame_with_1000_byte_front();
    let mut dec = FrameDecoder::new(Limits::default(), FooterKind::New, CrcFlags::default())
        .leave_reserving_to_caller();
    let mut buf = bytes.split_to(100);
    let (at, cap) = (buf.as_ptr(), buf.capacity());
    assert_eq!(dec.decode(&mut buf).unwrap(), None);
    assert_eq!(dec.pending_header().map(|h| h.front_len), Some(1000));
    assert_eq!(
        buf.capacity(),
        cap - 54,
        "the head consumed, nothing reserved"
    );
    assert_eq!(buf.as_ptr(), at.wrapping_add(54), "the same buffer");
    buf.reserve(1000 + 21);
    buf.extend_from_slice(&bytes);
    assert_eq!(dec.decode(&mut buf).unwrap(), Some(Frame::Msg(m)));
}

#[test]
fn segments_share_the_input_buffer() {
    let mut m = Message::new(9, vec![1u8; 4096]).with_data(vec![2u8; 8192]);
    m.seal(1, EntityName::client(1), CrcFlags::default());
    let mut buf = BytesMut::new();
    m.encode_frame(FooterKind::New, &mut buf);
    let base = buf.as_ptr() as usize;
    let end = base + buf.len();
    let mut dec = FrameDecoder::new(Limits::default(), FooterKind::New, CrcFlags::default());
    let Some(Frame::Msg(got)) = dec.decode(&mut buf).unwrap() else {
        panic!("no message")
    };
    for seg in [&got.front, &got.data] {
        let p = seg.as_ptr() as usize;
        assert!(p >= base && p + seg.len() <= end, "segment was copied");
    }
}

#[test]
fn stream_errors_name_offsets() {
    let (_, side, bytes) = vectors()[1];
    let mut bad = bytes.to_vec();
    bad[3] = b'X';
    let e = decode_all(side, &bad).unwrap_err();
    assert!(matches!(e.cause(), WireError::BadBanner { .. }));
    assert_eq!(e.offset(), Some(0));
    // The connect reply's tag (offset 9 + 136 + 136) made unknown.
    let mut bad = bytes.to_vec();
    bad[281] = 200;
    let e = decode_all(side, &bad).unwrap_err();
    assert_eq!(e.cause(), &WireError::UnknownTag { tag: 200 });
    assert_eq!(e.offset(), Some(281));
    assert!(e.to_string().contains("281"), "{e}");
    // A stream tag in the reply position.
    bad[281] = 7;
    assert!(matches!(
        decode_all(side, &bad).unwrap_err().cause(),
        WireError::UnexpectedTag { .. }
    ));
    // An oversize authorizer reply.
    let mut bad = bytes.to_vec();
    bad[281 + 21..281 + 25].copy_from_slice(&5000u32.to_le_bytes());
    let e = decode_all(side, &bad).unwrap_err();
    assert!(matches!(
        e.cause(),
        WireError::TooLong {
            what: "authorizer",
            ..
        }
    ));
    assert_eq!(e.offset(), Some(281 + 21));
    // A reply tag in the frame stream (after banner, 2 addrs, reply, seq).
    let mut bad = bytes.to_vec();
    bad[281 + 26 + 8] = 1;
    let e = decode_all(side, &bad).unwrap_err();
    assert!(
        matches!(
            e.cause(),
            WireError::UnexpectedTag {
                tag: Tag::Ready,
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(e.offset(), Some(315));
}

#[test]
fn expect_steers_the_connector_side() {
    // Connector: connect (RETRY follows, invisible), second connect, no seq (READY), frames.
    let c1 = Connect {
        features: 0,
        ..Connect::default()
    };
    let c2 = Connect {
        features: 0,
        global_seq: 9,
        ..Connect::default()
    };
    let mut bytes = Vec::new();
    msgr_wire::Banner.encode(&mut bytes);
    EntityAddr::BLANK.encode(&mut bytes);
    c1.encode(&mut bytes);
    c2.encode(&mut bytes);
    Frame::Keepalive.encode(FooterKind::Old, &mut bytes);
    let mut dec = StreamDecoder::new(Side::Connector, Limits::default(), CrcFlags::default());
    let mut buf = BytesMut::from(&bytes[..]);
    assert_eq!(dec.decode(&mut buf).unwrap(), Some(Item::Banner));
    assert!(matches!(dec.decode(&mut buf).unwrap(), Some(Item::Addr(_))));
    assert_eq!(dec.decode(&mut buf).unwrap(), Some(Item::Connect(c1)));
    dec.expect(msgr_wire::Expect::Connect);
    assert_eq!(dec.decode(&mut buf).unwrap(), Some(Item::Connect(c2)));
    assert_eq!(dec.footer_kind(), FooterKind::Old);
    assert_eq!(
        dec.decode(&mut buf).unwrap(),
        Some(Item::Frame(Frame::Keepalive))
    );
    assert_eq!(dec.consumed(), bytes.len() as u64);
}
