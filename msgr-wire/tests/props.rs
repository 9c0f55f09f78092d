//! Property tests: round trips, chunking, truncation, corruption, garbage, limits.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use bytes::{Bytes, BytesMut};
use common::{decode_all, decode_chunked, vectors, Located};
use msgr_wire::{
    decode_footer, encode_footer, Connect, ConnectReply, CrcFlags, EntityAddr, EntityName,
    EntityType, FooterKind, Frame, FrameDecoder, Item, Limits, Message, MsgFooter, MsgHeader,
    Segment, Side, StreamDecoder, Tag, Timespec, Wire, WireError,
};
use proptest::prelude::*;

fn arb_addr() -> impl Strategy<Value = EntityAddr> {
    let v4 = (any::<[u8; 4]>(), any::<u16>())
        .prop_map(|(ip, port)| SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(ip), port)));
    let v6 = (any::<[u8; 16]>(), any::<u16>(), any::<u32>(), any::<u32>()).prop_map(
        |(ip, port, flow, scope)| {
            SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::from(ip), port, flow, scope))
        },
    );
    (prop_oneof![v4, v6], any::<u32>()).prop_map(|(addr, nonce)| EntityAddr::new(addr, nonce))
}

fn arb_name() -> impl Strategy<Value = EntityName> {
    (any::<u8>(), any::<i64>()).prop_map(|(t, num)| EntityName::new(EntityType(t), num))
}

fn arb_auth() -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..64).prop_map(Bytes::from)
}

fn arb_connect() -> impl Strategy<Value = Connect> {
    (any::<(u64, u32, u32, u32, u32, u32, u8)>(), arb_auth()).prop_map(|(f, authorizer)| Connect {
        features: f.0,
        host_type: f.1,
        global_seq: f.2,
        connect_seq: f.3,
        protocol_version: f.4,
        authorizer_protocol: f.5,
        flags: f.6,
        authorizer,
    })
}

fn arb_reply() -> impl Strategy<Value = ConnectReply> {
    (0..16usize, any::<(u64, u32, u32, u32, u8)>(), arb_auth()).prop_map(|(t, f, authorizer)| {
        ConnectReply {
            tag: Tag::ALL[t],
            features: f.0,
            global_seq: f.1,
            connect_seq: f.2,
            protocol_version: f.3,
            flags: f.4,
            authorizer,
        }
    })
}

fn arb_header() -> impl Strategy<Value = MsgHeader> {
    (
        any::<(u64, u64, u16, u16, u16, u32, u32)>(),
        any::<(u32, u16, u16, u16, u32)>(),
        arb_name(),
    )
        .prop_map(|(a, b, src)| MsgHeader {
            seq: a.0,
            tid: a.1,
            ty: a.2,
            priority: a.3,
            version: a.4,
            front_len: a.5,
            middle_len: a.6,
            data_len: b.0,
            data_off: b.1,
            src,
            compat_version: b.2,
            reserved: b.3,
            crc: b.4,
        })
}

fn arb_segment() -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..300).prop_map(Bytes::from)
}

fn arb_message() -> impl Strategy<Value = Message> {
    (
        any::<(u16, u16, u16, u64, u64)>(),
        arb_segment(),
        arb_segment(),
        arb_segment(),
        arb_name(),
        any::<bool>(),
    )
        .prop_map(|(h, front, middle, data, src, data_crc)| {
            let mut m = Message::new(h.0, front)
                .with_middle(middle)
                .with_data(data)
                .with_priority(h.1)
                .with_version(h.2, 0)
                .with_tid(h.3);
            let crc = CrcFlags {
                header: true,
                data: data_crc,
            };
            m.seal(h.4, src, crc);
            m
        })
}

fn arb_frame() -> impl Strategy<Value = Frame> {
    prop_oneof![
        arb_message().prop_map(Frame::Msg),
        any::<u64>().prop_map(Frame::Ack),
        Just(Frame::Keepalive),
        any::<(u32, u32)>().prop_map(|(s, n)| Frame::Keepalive2(Timespec::new(s, n))),
        any::<(u32, u32)>().prop_map(|(s, n)| Frame::Keepalive2Ack(Timespec::new(s, n))),
        Just(Frame::Close),
    ]
}

fn round_trip<T: Wire + PartialEq + std::fmt::Debug>(v: &T) {
    let mut out = Vec::new();
    v.encode(&mut out);
    let mut slice = &out[..];
    assert_eq!(&T::decode(&mut slice).unwrap(), v);
    assert!(slice.is_empty());
    for cut in 0..out.len() {
        assert!(T::decode(&mut &out[..cut]).is_err());
    }
}

/// Decodes frames from `bytes` fed in chunks of `chunk` bytes.
fn decode_frames(bytes: &[u8], chunk: usize, kind: FooterKind) -> Result<Vec<Frame>, WireError> {
    let mut dec = FrameDecoder::new(Limits::default(), kind, CrcFlags::default());
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for piece in bytes.chunks(chunk.max(1)) {
        buf.extend_from_slice(piece);
        while let Some(f) = dec.decode(&mut buf)? {
            out.push(f);
        }
    }
    while let Some(f) = dec.decode_eof(&mut buf)? {
        out.push(f);
    }
    Ok(out)
}

proptest! {
    #[test]
    fn structures_round_trip(
        addr in arb_addr(),
        name in arb_name(),
        connect in arb_connect(),
        reply in arb_reply(),
        header in arb_header(),
        ts in any::<(u32, u32)>(),
    ) {
        round_trip(&addr);
        round_trip(&name);
        round_trip(&connect);
        round_trip(&reply);
        round_trip(&header);
        round_trip(&Timespec::new(ts.0, ts.1));
        // The text form carries no IPv6 flowinfo.
        let mut no_flow = addr;
        if let SocketAddr::V6(v6) = &mut no_flow.addr {
            v6.set_flowinfo(0);
        }
        let text: EntityAddr = addr.to_string().parse().unwrap();
        prop_assert_eq!(text, no_flow);
        prop_assert_eq!(addr.race_cmp(&addr), std::cmp::Ordering::Equal);
    }

    #[test]
    fn footers_round_trip(f in any::<(u32, u32, u32, u64, u8)>()) {
        let footer = MsgFooter { front_crc: f.0, middle_crc: f.1, data_crc: f.2, sig: f.3, flags: f.4 };
        for kind in [FooterKind::New, FooterKind::Old] {
            let mut out = Vec::new();
            encode_footer(&footer, kind, &mut out);
            let back = decode_footer(kind, &mut &out[..]).unwrap();
            let sig = if kind == FooterKind::New { f.3 } else { 0 };
            prop_assert_eq!(back, MsgFooter { sig, ..footer });
        }
    }

    #[test]
    fn frames_round_trip_in_any_chunking(
        frames in proptest::collection::vec(arb_frame(), 1..6),
        chunk in 1usize..200,
        old in any::<bool>(),
    ) {
        let kind = if old { FooterKind::Old } else { FooterKind::New };
        let mut bytes = Vec::new();
        for f in &frames {
            f.encode(kind, &mut bytes);
        }
        let back = decode_frames(&bytes, chunk, kind).unwrap();
        let expected: Vec<Frame> = frames
            .into_iter()
            .map(|f| match f {
                Frame::Msg(mut m) if kind == FooterKind::Old => {
                    m.footer.sig = 0;
                    Frame::Msg(m)
                }
                f => f,
            })
            .collect();
        prop_assert_eq!(back, expected);
    }

    #[test]
    fn every_chunking_of_a_vector_decodes_the_same(
        which in 0usize..6,
        chunks in proptest::collection::vec(1usize..3000, 1..12),
    ) {
        let (name, side, bytes) = vectors()[which];
        let whole = decode_all(side, bytes).unwrap();
        let chunked = decode_chunked(side, bytes, &chunks).unwrap();
        prop_assert_eq!(chunked, whole, "{}", name);
    }

    #[test]
    fn every_truncation_asks_for_more(which in 0usize..6, cut in any::<prop::sample::Index>()) {
        let (_, side, bytes) = vectors()[which];
        truncation_at(side, bytes, cut.index(bytes.len()));
    }

    #[test]
    fn flipping_a_vector_header_or_segment_byte_is_that_crc(
        which in 0usize..6,
        pick in any::<prop::sample::Index>(),
        pos in any::<prop::sample::Index>(),
        xor in 1u8..=255,
    ) {
        let (_, side, bytes) = vectors()[which];
        let items = decode_all(side, bytes).unwrap();
        let msgs: Vec<&Located> = items.iter().filter(|l| matches!(l.item, Item::Frame(Frame::Msg(_)))).collect();
        let l = msgs[pick.index(msgs.len())];
        flip_and_check(side, bytes, l, pos, xor);
    }

    #[test]
    fn flipping_any_byte_of_a_synthetic_message(
        m in arb_message(),
        pos in any::<prop::sample::Index>(),
        xor in 1u8..=255,
    ) {
        let mut bytes = Vec::new();
        m.encode_frame(FooterKind::New, &mut bytes);
        let body_end = bytes.len() - FooterKind::New.wire_len();
        let at = 1 + pos.index(body_end - 1);
        bytes[at] ^= xor;
        let (f, mi) = (m.front.len(), m.middle.len());
        let result = decode_frames(&bytes, bytes.len(), FooterKind::New);
        if m.footer.is_nocrc() && at >= 54 + f + mi {
            // No data crc was sent: the flip cannot be seen.
            prop_assert!(result.is_ok());
            return Ok(());
        }
        let err = result.unwrap_err();
        let expected_at = match at {
            1..=53 => 1,
            a if a < 54 + f => 54,
            a if a < 54 + f + mi => 54 + f,
            _ => 54 + f + mi,
        } as u64;
        let segment = match at {
            1..=53 => None,
            a if a < 54 + f => Some(Segment::Front),
            a if a < 54 + f + mi => Some(Segment::Middle),
            _ => Some(Segment::Data),
        };
        prop_assert_eq!(err.offset(), Some(expected_at));
        match (segment, err.cause()) {
            (None, WireError::HeaderCrc { .. }) => {}
            (Some(s), WireError::SegmentCrc { segment, .. }) => prop_assert_eq!(s, *segment),
            (s, other) => prop_assert!(false, "byte {at} in {s:?} gave {other}"),
        }
    }

    #[test]
    fn garbage_never_panics(
        garbage in proptest::collection::vec(any::<u8>(), 0..600),
        chunk in 1usize..64,
        prefix in 0usize..400,
    ) {
        let (_, _, valid) = vectors()[0];
        for input in [garbage.clone(), [&valid[..prefix.min(valid.len())], &garbage[..]].concat()] {
            for side in [Side::Connector, Side::Acceptor] {
                let _ = decode_chunked(side, &input, &[chunk]);
                let _ = decode_chunked(side, &input, &[input.len().max(1)]);
            }
            let _ = decode_frames(&input, chunk, FooterKind::New);
            let _ = decode_frames(&input, chunk, FooterKind::Old);
        }
    }
}

/// Flips one byte of message `l` and checks the error names the right CRC and offset.
fn flip_and_check(side: Side, bytes: &[u8], l: &Located, pos: prop::sample::Index, xor: u8) {
    let Item::Frame(Frame::Msg(m)) = &l.item else {
        unreachable!()
    };
    let start = l.start as usize;
    let body_end = l.end as usize - FooterKind::New.wire_len();
    let at = start + 1 + pos.index(body_end - start - 1);
    let mut corrupt = bytes.to_vec();
    corrupt[at] ^= xor;
    let err = decode_all(side, &corrupt).unwrap_err();
    let (h, f, mi) = (start + 1, start + 54, m.front.len());
    match err.cause() {
        WireError::HeaderCrc { .. } => {
            assert!(at < f);
            assert_eq!(err.offset(), Some(h as u64));
        }
        WireError::SegmentCrc { segment, .. } => {
            let (seg, seg_at) = if at < f + mi {
                (Segment::Front, f)
            } else if at < f + mi + m.middle.len() {
                (Segment::Middle, f + mi)
            } else {
                (Segment::Data, f + mi + m.middle.len())
            };
            assert_eq!(*segment, seg);
            assert_eq!(err.offset(), Some(seg_at as u64));
        }
        other => panic!("flip at {at}: unexpected {other}"),
    }
}

/// Decoding a prefix never fails; it yields a prefix of the items; at eof, a cut inside an
/// item is an UnexpectedEof.
fn truncation_at(side: Side, bytes: &[u8], cut: usize) {
    let whole = decode_all(side, bytes).unwrap();
    let mut dec = StreamDecoder::new(side, Limits::default(), CrcFlags::default());
    let mut buf = BytesMut::from(&bytes[..cut]);
    let mut got = Vec::new();
    while let Some(item) = dec.decode(&mut buf).unwrap() {
        got.push(item);
    }
    assert_eq!(
        got[..],
        whole.iter().map(|l| l.item.clone()).collect::<Vec<_>>()[..got.len()]
    );
    let on_boundary = cut == 0 || whole.iter().any(|l| l.end == cut as u64);
    match dec.decode_eof(&mut buf) {
        Ok(None) => assert!(on_boundary, "cut {cut}"),
        Err(e) => {
            assert!(!on_boundary, "cut {cut}: {e}");
            assert!(matches!(e.cause(), WireError::UnexpectedEof { .. }), "{e}");
        }
        Ok(Some(i)) => panic!("item after all items: {i:?}"),
    }
}

#[test]
fn every_truncation_of_the_small_vectors() {
    for (_, side, bytes) in vectors().into_iter().take(2) {
        for cut in 0..=bytes.len() {
            truncation_at(side, bytes, cut);
        }
    }
}

proptest! {
    /// Connector streams with connects repeated after invisible RETRY replies, then the SEQ
    /// value (reply SEQ), or frames directly (reply READY, with or without `RECONNECT_SEQ`
    /// advertised), decode without being told what the replies were.
    #[test]
    fn connector_side_needs_no_steering(
        connects in 1usize..4,
        seq_value in prop_oneof![Just(0u64), Just(7), Just(14), Just(8), 0u64..100_000],
        reply in 0u8..3,
        first in prop_oneof![
            (1_500_000_000u32..2_000_000_000, 0u32..1_000_000_000)
                .prop_map(|(s, n)| Frame::Keepalive2(Timespec::new(s, n))),
            arb_message().prop_map(Frame::Msg),
        ],
        frames in proptest::collection::vec(arb_frame(), 0..4),
        chunk in 1usize..80,
    ) {
        use msgr_wire::features::{ALL_PACIFIC, RECONNECT_SEQ};
        let (features, with_seq) = match reply {
            0 => (ALL_PACIFIC, true),
            1 => (ALL_PACIFIC, false),
            _ => (ALL_PACIFIC & !RECONNECT_SEQ, false),
        };
        let mut items = vec![Item::Banner, Item::Addr(EntityAddr::BLANK)];
        for i in 0..connects {
            items.push(Item::Connect(Connect {
                features,
                host_type: 8,
                global_seq: 1 + i as u32,
                connect_seq: i as u32,
                protocol_version: 15,
                flags: 1,
                ..Connect::default()
            }));
        }
        if with_seq {
            items.push(Item::Seq(seq_value));
        }
        if reply == 1 {
            // A READY reply although the connect advertised RECONNECT_SEQ: real traffic
            // starts with a keepalive2 or a message.
            items.push(Item::Frame(first));
        }
        items.extend(frames.into_iter().map(Item::Frame));
        let bytes = common::encode_items(&items, FooterKind::New);
        let got: Vec<Item> = decode_chunked(Side::Connector, &bytes, &[chunk])
            .unwrap()
            .into_iter()
            .map(|l| l.item)
            .collect();
        prop_assert_eq!(got, items);
    }
}
