//! The msgr2.1 codec adapter of the session phase: the core's frames to rev1 frames and back
//! (the cephx spec's §E.3, §E.7).
//!
//! [`Sink`] is the [`FrameSink`] the writer hands to
//! [`SessionCore::poll_transmit`](crate::core::SessionCore::poll_transmit) on a v2 socket:
//! MESSAGE frames (`ceph_msg_header2`, front, middle, data), ACK, KEEPALIVE2 and
//! KEEPALIVE2_ACK, in the connection's mode (crc or secure). [`inbound`] turns a received
//! frame into a message or the core's neutral [`Control`].
//!
//! A message's sender is not in `ceph_msg_header2`: it is the peer of the session (from
//! CLIENT_IDENT or SERVER_IDENT), filled in by [`inbound`]. There is no v1 footer, CRC or
//! signature per message in msgr2: the frame's CRCs (crc mode) or its GCM tag (secure mode)
//! cover it; received messages get a complete footer so the core treats them as v1's.
//!
//! Not here: the handshake frames ([`super::connect`], [`super::accept`]), sockets.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use msgr_wire::{crc32c_reseed, CrcFlags, EntityName, Message, MsgFooter, MsgHeader, Timespec};

use super::frame::{Decoder, Encoder, Frame, Frames, Parts, Tag};
use crate::core::{Control, FrameSink, Outgoing};
use crate::error::PipeError;
use crate::v1::codec::{presealed, Inbound};

/// Length of `ceph_msg_header2`.
pub const HEADER2_LEN: usize = 41;

/// `FOOTER_COMPLETE`: what a whole v2 message counts as for the core.
const FOOTER_COMPLETE: u8 = 1;

/// Appends `ceph_msg_header2` for `h`, sent with `seq`, acknowledging `ack_seq`.
pub fn encode_header2(h: &MsgHeader, seq: u64, ack_seq: u64, out: &mut impl BufMut) {
    out.put_slice(&header2_bytes(h, seq, ack_seq));
}

/// `ceph_msg_header2` for `h`, sent with `seq`, acknowledging `ack_seq`: each field stored at
/// its fixed offset (one store each, no cursor to check and advance per field; it is built
/// for every message sent).
pub fn header2_bytes(h: &MsgHeader, seq: u64, ack_seq: u64) -> [u8; HEADER2_LEN] {
    let mut b = [0u8; HEADER2_LEN];
    b[0..8].copy_from_slice(&seq.to_le_bytes());
    b[8..16].copy_from_slice(&h.tid.to_le_bytes());
    b[16..18].copy_from_slice(&h.ty.to_le_bytes());
    b[18..20].copy_from_slice(&h.priority.to_le_bytes());
    b[20..22].copy_from_slice(&h.version.to_le_bytes());
    // 22..26: data_pre_padding_len, 0.
    b[26..28].copy_from_slice(&h.data_off.to_le_bytes());
    b[28..36].copy_from_slice(&ack_seq.to_le_bytes());
    // 36: flags, 0.
    b[37..39].copy_from_slice(&h.compat_version.to_le_bytes());
    b[39..41].copy_from_slice(&h.reserved.to_le_bytes());
    b
}

/// The fields of a received `ceph_msg_header2`, read at their fixed offsets.
struct Header2 {
    seq: u64,
    tid: u64,
    ty: u16,
    priority: u16,
    version: u16,
    data_off: u16,
    ack_seq: u64,
    compat_version: u16,
    reserved: u16,
}

impl Header2 {
    fn read(b: &[u8; HEADER2_LEN]) -> Header2 {
        let u64_at = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[i..i + 8]);
            u64::from_le_bytes(w)
        };
        let u16_at = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
        Header2 {
            seq: u64_at(0),
            tid: u64_at(8),
            ty: u16_at(16),
            priority: u16_at(18),
            version: u16_at(20),
            data_off: u16_at(26),
            ack_seq: u64_at(28),
            compat_version: u16_at(37),
            reserved: u16_at(39),
        }
    }
}

/// What one MESSAGE frame stages besides its segments: crc mode's preamble, header, the
/// header's CRC and the epilogue (32 + 41 + 4 + 13); secure mode's preamble with the
/// header inline and its tag, then the segments' epilogue and tag (32 + 48 + 16 + 16 + 16).
const STAGED_CRC: usize = 90;
const STAGED_SECURE: usize = 128;

/// Room for an ACK and a KEEPALIVE2 frame after a batch, in either mode.
const STAGED_CONTROL: usize = 2 * 96;

/// Bytes a batch of `msgs` puts into the writer's staging buffer, so it is reserved once
/// (in crc mode segments of `copy_threshold` bytes or more are chained, not staged; in
/// secure mode every segment is staged, padded to 16 bytes). Reserving short costs more
/// than a regrowth: once the stage has been split onto the chain, growing it allocates a
/// new buffer and copies what it holds.
pub fn stage_len(msgs: &[Outgoing], secure: bool, copy_threshold: usize) -> usize {
    let per: usize = msgs
        .iter()
        .map(|o| {
            let segs = [&o.msg.front, &o.msg.middle, &o.msg.data];
            if secure {
                STAGED_SECURE
                    + segs
                        .iter()
                        .map(|b| b.len().div_ceil(16) * 16)
                        .sum::<usize>()
            } else {
                let staged = |b: &&Bytes| if b.len() < copy_threshold { b.len() } else { 0 };
                STAGED_CRC + segs.iter().map(staged).sum::<usize>()
            }
        })
        .sum();
    per + STAGED_CONTROL
}

/// The MESSAGE frame of `o` (its seq already set), acknowledging `ack_seq` in the header.
pub fn message_frame(o: &Outgoing, ack_seq: u64) -> Frame {
    let mut h = BytesMut::with_capacity(HEADER2_LEN);
    encode_header2(&o.msg.header, o.seq, ack_seq, &mut h);
    Frame {
        tag: Tag::Message,
        segments: vec![
            h.freeze(),
            o.msg.front.clone(),
            o.msg.middle.clone(),
            o.msg.data.clone(),
        ],
    }
}

fn timespec(p: &[u8], what: &'static str) -> Result<Timespec, PipeError> {
    let mut p = p;
    if p.len() < 8 {
        return Err(PipeError::MalformedFrame(what));
    }
    Ok(Timespec {
        sec: p.get_u32_le(),
        nsec: p.get_u32_le(),
    })
}

fn stamp(ts: Timespec) -> Bytes {
    let mut b = BytesMut::with_capacity(8);
    b.put_u32_le(ts.sec);
    b.put_u32_le(ts.nsec);
    b.freeze()
}

/// A received session-phase frame as the core takes it. A message's `ack_seq` (what the
/// peer received of ours) comes back beside it, for the core's ACK handling. `peer` names
/// the sender. The segments move into the message (no copy, no reference count touched).
pub fn inbound(frame: impl Into<Parts>, peer: EntityName) -> Result<(Inbound, u64), PipeError> {
    let frame: Parts = frame.into();
    frame
        .with(|tag, seg0, payload| inbound_of(tag, seg0, payload, peer))?
        .ok_or(PipeError::MalformedFrame("session frame"))
}

/// The session phase's frames as the reader takes them ([`inbound`]'s, with `peer` as
/// every message's sender): what [`next_inbound`] has the decoder build.
#[derive(Clone, Copy, Debug)]
struct InboundFrames {
    peer: EntityName,
}

impl Frames for InboundFrames {
    type Item = (Inbound, u64);
    type Error = PipeError;

    #[inline(always)]
    fn frame(
        self,
        tag: Tag,
        seg0: &[u8],
        payload: [Bytes; 3],
    ) -> Result<Option<(Inbound, u64)>, PipeError> {
        inbound_of(tag, seg0, payload, self.peer)
    }
}

/// The next whole session-phase frame of `buf` as [`inbound`] gives it, decoded by `dec`
/// straight into the message: built once, in this function's result ([`Frames`]), with no
/// [`Parts`] in between (what the reader calls per frame).
pub fn next_inbound(
    dec: &mut Decoder,
    buf: &mut BytesMut,
    peer: EntityName,
) -> Result<Option<(Inbound, u64)>, PipeError> {
    dec.decode_into(buf, InboundFrames { peer })
}

/// [`inbound`] of a frame's tag, segment 0 and segments 1 to 3, as the decoder's result
/// (`Some`: see [`Frames::frame`]).
#[inline(always)]
fn inbound_of(
    tag: Tag,
    seg0: &[u8],
    [front, middle, data]: [Bytes; 3],
    peer: EntityName,
) -> Result<Option<(Inbound, u64)>, PipeError> {
    let c = |c| Ok(Some((Inbound::Control(c), 0)));
    match tag {
        Tag::Message => {
            let Some(head) = seg0
                .get(..HEADER2_LEN)
                .and_then(|h| <&[u8; HEADER2_LEN]>::try_from(h).ok())
            else {
                return Err(PipeError::MalformedFrame("ceph_msg_header2"));
            };
            let Header2 {
                seq,
                tid,
                ty,
                priority,
                version,
                data_off,
                ack_seq,
                compat_version,
                reserved,
            } = Header2::read(head);
            let len = |b: &Bytes| u32::try_from(b.len()).unwrap_or(u32::MAX);
            let header = MsgHeader {
                seq,
                tid,
                ty,
                priority,
                version,
                front_len: len(&front),
                middle_len: len(&middle),
                data_len: len(&data),
                data_off,
                src: peer,
                compat_version,
                reserved,
                crc: 0,
            };
            let msg = Message {
                header,
                front,
                middle,
                data,
                footer: MsgFooter {
                    flags: FOOTER_COMPLETE,
                    ..MsgFooter::default()
                },
            };
            Ok(Some((Inbound::Message(msg), ack_seq)))
        }
        Tag::Ack => {
            let mut p = seg0;
            if p.len() < 8 {
                return Err(PipeError::MalformedFrame("ACK"));
            }
            c(Control::Ack(p.get_u64_le()))
        }
        Tag::Keepalive2 => c(Control::Keepalive2(timespec(seg0, "KEEPALIVE2")?)),
        Tag::Keepalive2Ack => c(Control::Keepalive2Ack(timespec(seg0, "KEEPALIVE2_ACK")?)),
        tag => Err(PipeError::UnexpectedTag {
            tag: tag as u8,
            context: "msgr2 session phase",
        }),
    }
}

/// Encodes the session's frames into `out` in the connection's mode; in crc mode, large
/// segments go onto `chain` uncopied (after what `out` held, frozen onto it first).
pub struct Sink<'a> {
    /// The connection's frame encoder (crc or secure).
    pub enc: &'a mut Encoder,
    /// Where the frames go.
    pub out: &'a mut BytesMut,
    /// Buffers to write, in order, before `out`.
    pub chain: &'a mut std::collections::VecDeque<Bytes>,
    /// What we received so far: every MESSAGE carries it as `ack_seq`.
    pub in_seq: u64,
    /// The session's CRC settings: which CRCs a message sealed when it was queued holds.
    pub crc: CrcFlags,
    /// In crc mode, segments of this many bytes or more go onto the chain uncopied
    /// ([`COPY_THRESHOLD`](crate::v1::codec::COPY_THRESHOLD), or
    /// [`copy_threshold`](crate::v1::codec::copy_threshold) for the write at hand).
    pub copy_threshold: usize,
}

/// The msgr2 CRCs (seed `0xffffffff`) of `m`'s front, middle and data that are known
/// without hashing them: a large message's v1 CRCs (seed 0) are computed when it is queued
/// ([`presealed`]), and msgr2's follow from them by [`crc32c_reseed`]. `None` for the
/// segments to hash.
fn known_crcs(o: &Outgoing, crc: CrcFlags) -> [Option<u32>; 3] {
    if !presealed(o) {
        return [None; 3];
    }
    let (m, f) = (&o.msg, &o.msg.footer);
    let sealed = |len: u32, seg: &Bytes, valid: bool, crc: u32| {
        (valid && len as usize == seg.len()).then(|| crc32c_reseed(crc, 0, u32::MAX, seg.len()))
    };
    let h = &m.header;
    [
        sealed(h.front_len, &m.front, crc.header, f.front_crc),
        sealed(h.middle_len, &m.middle, crc.header, f.middle_crc),
        sealed(h.data_len, &m.data, !f.is_nocrc(), f.data_crc),
    ]
}

impl Sink<'_> {
    /// A KEEPALIVE2 stamped with our clock now.
    pub fn keepalive2(&mut self) {
        let f = Frame::control(Tag::Keepalive2, stamp(Timespec::now()));
        self.enc.encode(&f, self.out);
    }

    /// An ACK of every message up to `seq`.
    pub fn ack(&mut self, seq: u64) {
        let mut b = BytesMut::with_capacity(8);
        b.put_u64_le(seq);
        self.enc
            .encode(&Frame::control(Tag::Ack, b.freeze()), self.out);
    }

    /// `o`'s MESSAGE frame, with its seq.
    pub fn encode_message(&mut self, o: &mut Outgoing) {
        o.msg.header.seq = o.seq;
        let head = header2_bytes(&o.msg.header, o.seq, self.in_seq);
        let known = if self.enc.is_secure() {
            [None; 3]
        } else {
            known_crcs(o, self.crc)
        };
        let m = &o.msg;
        self.enc.encode_message(
            &head,
            [&m.front, &m.middle, &m.data],
            known,
            self.out,
            self.chain,
            self.copy_threshold,
        );
    }
}

impl FrameSink for Sink<'_> {
    fn keepalive(&mut self) {
        self.keepalive2();
    }

    fn keepalive_ack(&mut self, stamp_: Timespec) {
        let f = Frame::control(Tag::Keepalive2Ack, stamp(stamp_));
        self.enc.encode(&f, self.out);
    }

    fn message(&mut self, o: &mut Outgoing) {
        self.encode_message(o);
    }
}

#[cfg(test)]
mod tests {
    use super::super::frame::{Decoder, FrameLimits};
    use super::*;
    use crate::v1::codec::wants_preseal;
    use msgr_wire::EntityType;

    /// A crc-mode sink over `enc`, `out` and `chain`, with the default CRCs and copy
    /// threshold.
    fn crc_sink<'a>(
        enc: &'a mut Encoder,
        out: &'a mut BytesMut,
        chain: &'a mut std::collections::VecDeque<Bytes>,
        in_seq: u64,
    ) -> Sink<'a> {
        Sink {
            enc,
            out,
            chain,
            in_seq,
            crc: CrcFlags::default(),
            copy_threshold: crate::v1::codec::COPY_THRESHOLD,
        }
    }

    #[test]
    fn a_message_frame_reads_back_with_its_fields_and_the_peer_as_sender() {
        let mut m = Message::new(0x7001, Bytes::from_static(b"front"));
        m.header.tid = 42;
        m.header.priority = 196;
        m.header.version = 3;
        m.header.compat_version = 2;
        m.data = Bytes::from(vec![7u8; 10_000]);
        let mut o = Outgoing::new(m, None);
        o.seq = 9;
        let mut enc = Encoder::default();
        let mut out = BytesMut::new();
        let mut chain = std::collections::VecDeque::new();
        let mut sink = crc_sink(&mut enc, &mut out, &mut chain, 5);
        sink.message(&mut o);
        sink.ack(4);
        sink.keepalive_ack(Timespec { sec: 1, nsec: 2 });
        // The 10,000-byte data segment went out uncopied.
        assert!(chain.iter().any(|c| c.len() == 10_000));
        chain.push_back(out.split().freeze());
        let mut out: BytesMut = chain.iter().flat_map(|c| c.iter().copied()).collect();
        let mut dec = Decoder::new(FrameLimits::default());
        let peer = EntityName {
            ty: EntityType::OSD,
            num: 3,
        };
        let f = dec.decode_parts(&mut out).expect("frame").expect("whole");
        let (Inbound::Message(got), ack_seq) = inbound(f, peer).expect("message") else {
            panic!("not a message")
        };
        assert_eq!(ack_seq, 5);
        assert_eq!(got.header.seq, 9);
        assert_eq!(got.header.tid, 42);
        assert_eq!(got.header.ty, 0x7001);
        assert_eq!(got.header.priority, 196);
        assert_eq!((got.header.version, got.header.compat_version), (3, 2));
        assert_eq!(got.header.src, peer);
        assert_eq!(&got.front[..], b"front");
        assert_eq!(got.data.len(), 10_000);
        assert_eq!(got.header.data_len, 10_000);
        assert!(got.footer.is_complete());
        let f = dec.decode_parts(&mut out).expect("frame").expect("whole");
        assert!(matches!(
            inbound(f, peer),
            Ok((Inbound::Control(Control::Ack(4)), 0))
        ));
        let f = dec.decode_parts(&mut out).expect("frame").expect("whole");
        assert!(matches!(
            inbound(f, peer),
            Ok((
                Inbound::Control(Control::Keepalive2Ack(Timespec { sec: 1, nsec: 2 })),
                0
            ))
        ));
    }

    /// The reader's path ([`next_inbound`]: built in place, whole frames at fixed offsets)
    /// gives what [`inbound`] of [`Decoder::decode_parts`] gives, frame for frame, for small
    /// and large messages with each segment used or not, an ACK and a KEEPALIVE2_ACK, fed
    /// whole and byte by byte; a message's sender is the peer.
    #[test]
    fn next_inbound_is_inbound_of_decode_parts() {
        let peer = EntityName {
            ty: EntityType::OSD,
            num: 7,
        };
        let mut enc = Encoder::default();
        let mut out = BytesMut::new();
        let mut chain = std::collections::VecDeque::new();
        let mut sink = crc_sink(&mut enc, &mut out, &mut chain, 3);
        let shapes = [
            (64, 0, 0),
            (0, 0, 64),
            (8, 0, 56),
            (1, 2, 3),
            (0, 0, 0),
            (100, 0, 9000),
        ];
        for (i, (front, middle, data)) in shapes.into_iter().enumerate() {
            let mut m = Message::new(0x7001, Bytes::from(vec![1u8; front]));
            m.middle = Bytes::from(vec![2u8; middle]);
            m.data = Bytes::from(vec![3u8; data]);
            m.header.tid = i as u64 * 11;
            let mut o = Outgoing::new(m, None);
            o.seq = i as u64 + 1;
            sink.message(&mut o);
        }
        sink.ack(4);
        sink.keepalive_ack(Timespec { sec: 5, nsec: 6 });
        chain.push_back(out.split().freeze());
        let wire: Vec<u8> = chain.iter().flat_map(|c| c.iter().copied()).collect();
        let show = |r: Result<(Inbound, u64), PipeError>| match r {
            Ok((Inbound::Message(m), ack)) => format!(
                "msg {:?} {:?} {:?} {:?} {:?} {ack}",
                m.header, m.front, m.middle, m.data, m.footer
            ),
            Ok((Inbound::Control(c), ack)) => format!("control {c:?} {ack}"),
            Err(e) => format!("error {e}"),
        };
        let mut want = Vec::new();
        let (mut dec, mut buf) = (Decoder::new(FrameLimits::default()), BytesMut::new());
        buf.extend_from_slice(&wire);
        while let Some(p) = dec.decode_parts(&mut buf).expect("frame") {
            want.push(show(inbound(p, peer)));
        }
        assert_eq!(want.len(), shapes.len() + 2);
        assert!(want[0].contains(&format!("src: {peer:?}")), "{}", want[0]);
        for step in [wire.len(), 1, 7] {
            let (mut dec, mut buf) = (Decoder::new(FrameLimits::default()), BytesMut::new());
            let mut got = Vec::new();
            for piece in wire.chunks(step) {
                buf.extend_from_slice(piece);
                while let Some(r) = next_inbound(&mut dec, &mut buf, peer).transpose() {
                    got.push(show(r));
                }
            }
            assert_eq!(got, want, "step {step}");
        }
    }

    /// Every field of `ceph_msg_header2` at its offset (distinct bytes in each), and read
    /// back from there.
    #[test]
    fn header2_fields_sit_at_their_offsets() {
        let h = MsgHeader {
            tid: 0x1112_1314_1516_1718,
            ty: 0x2122,
            priority: 0x3132,
            version: 0x4142,
            data_off: 0x5152,
            compat_version: 0x6162,
            reserved: 0x7172,
            ..MsgHeader::default()
        };
        let b = header2_bytes(&h, 0x0102_0304_0506_0708, 0x8182_8384_8586_8788);
        let mut expect = Vec::new();
        expect.extend_from_slice(&0x0102_0304_0506_0708u64.to_le_bytes());
        expect.extend_from_slice(&h.tid.to_le_bytes());
        expect.extend_from_slice(&[0x22, 0x21, 0x32, 0x31, 0x42, 0x41, 0, 0, 0, 0, 0x52, 0x51]);
        expect.extend_from_slice(&0x8182_8384_8586_8788u64.to_le_bytes());
        expect.extend_from_slice(&[0, 0x62, 0x61, 0x72, 0x71]);
        assert_eq!(&b[..], &expect[..]);
        let r = Header2::read(&b);
        assert_eq!(
            (r.seq, r.tid, r.ty, r.priority, r.version, r.data_off),
            (
                0x0102_0304_0506_0708,
                h.tid,
                h.ty,
                h.priority,
                h.version,
                h.data_off
            )
        );
        assert_eq!(
            (r.ack_seq, r.compat_version, r.reserved),
            (0x8182_8384_8586_8788, h.compat_version, h.reserved)
        );
    }

    /// A large message's CRCs computed for v1 when it was queued (seed 0) are carried over to
    /// msgr2's seed, not hashed again: the frame is byte for byte the frame of the same
    /// message encoded from scratch, whichever CRCs the session computes at queue time.
    #[test]
    fn a_presealed_message_is_the_same_frame_without_hashing_again() {
        for flags in [
            CrcFlags::default(),
            CrcFlags::NONE,
            CrcFlags {
                header: true,
                data: false,
            },
        ] {
            let mut m = Message::new(0x7001, Bytes::from(vec![3u8; 70_000]));
            m.middle = Bytes::from(vec![4u8; 100]);
            m.data = Bytes::from((0..200_000u32).map(|i| i as u8).collect::<Vec<u8>>());
            let mut o = Outgoing::new(m, None);
            o.seq = 3;
            assert!(wants_preseal(&o));
            // Not sealed when queued (a secure session's message): nothing is known.
            assert_eq!(known_crcs(&o, flags), [None; 3]);
            let fresh = o.msg.clone();
            o.msg.seal_segments(flags);
            o.sealed = true;
            let known = known_crcs(&o, flags);
            // The front (and middle) CRCs are known only when the header CRCs were computed,
            // the data's only when the data CRC was.
            assert_eq!(known[0].is_some(), flags.header, "{flags:?}");
            assert_eq!(known[2].is_some(), flags.data, "{flags:?}");
            if let Some(c) = known[2] {
                assert_eq!(c, msgr_wire::crc32c(u32::MAX, &fresh.data));
            }
            let (mut enc, mut out, mut chain) = (
                Encoder::default(),
                BytesMut::new(),
                std::collections::VecDeque::new(),
            );
            let mut sink = crc_sink(&mut enc, &mut out, &mut chain, 1);
            sink.crc = flags;
            sink.message(&mut o);
            chain.push_back(out.split().freeze());
            let sent: Vec<u8> = chain.iter().flat_map(|c| c.iter().copied()).collect();
            let mut head = BytesMut::new();
            encode_header2(&o.msg.header, 3, 1, &mut head);
            let frame = Frame {
                tag: Tag::Message,
                segments: vec![head.freeze(), fresh.front, fresh.middle, fresh.data],
            };
            let mut flat = BytesMut::new();
            Encoder::default().encode(&frame, &mut flat);
            assert_eq!(sent, flat.to_vec(), "{flags:?}");
        }
    }

    #[test]
    fn short_or_foreign_frames_are_typed_errors() {
        let peer = EntityName {
            ty: EntityType::CLIENT,
            num: 1,
        };
        for f in [
            Frame::control(Tag::Message, vec![0u8; 40]),
            Frame::control(Tag::Ack, vec![0u8; 7]),
            Frame::control(Tag::Keepalive2, vec![0u8; 3]),
            Frame::control(Tag::Hello, vec![0u8; 30]),
        ] {
            assert!(inbound(f, peer).is_err());
        }
    }

    /// A batch reserved with [`stage_len`] is encoded into the stage without growing it
    /// (a growth after the stage was split onto the chain allocates and copies), in crc
    /// and secure mode, with segments staged and chained (or all staged: a small write's
    /// threshold), an ACK and a KEEPALIVE2 after.
    #[test]
    fn a_batch_fits_the_stage_reserved_for_it() {
        use super::super::frame::Gcm;
        let threshold = crate::v1::codec::COPY_THRESHOLD;
        let cases = [false, true]
            .into_iter()
            .flat_map(|secure| [(secure, threshold), (secure, usize::MAX)]);
        for (secure, copy_threshold) in cases {
            let mut msgs: Vec<Outgoing> = [64usize, 4096, 100, threshold - 1, threshold, 9000]
                .iter()
                .cycle()
                .take(60)
                .enumerate()
                .map(|(i, &len)| {
                    let m = Message::new(7, Bytes::from(vec![1u8; 16]))
                        .with_data(Bytes::from(vec![2u8; len]));
                    let mut o = Outgoing::new(m, None);
                    o.seq = i as u64 + 1;
                    o
                })
                .collect();
            let mut enc = Encoder::default();
            if secure {
                enc.secure(Gcm::new(&[3; 16], &[4; 12]));
            }
            let (mut stage, mut chain) = (BytesMut::new(), std::collections::VecDeque::new());
            stage.reserve(stage_len(&msgs, secure, copy_threshold));
            let (at, room) = (stage.as_ptr(), stage.capacity());
            let mut sink = crc_sink(&mut enc, &mut stage, &mut chain, 0);
            sink.copy_threshold = copy_threshold;
            for o in &mut msgs {
                sink.message(o);
            }
            sink.ack(60);
            sink.keepalive2();
            assert_eq!(
                chain.is_empty(),
                secure || copy_threshold == usize::MAX,
                "crc mode chains its large segments, unless all are staged"
            );
            let staged: usize = chain.iter().map(|c| c.len()).sum::<usize>() + stage.len();
            let first = chain.front().map_or(stage.as_ptr(), |c| c.as_ptr());
            assert_eq!(first, at, "the batch starts where the stage was reserved");
            assert!(staged > 0, "secure: {secure}");
            // Every staged byte lies inside the one reservation.
            let chained: Vec<*const u8> = msgs.iter().map(|o| o.msg.data.as_ptr()).collect();
            for c in chain.iter().filter(|c| !chained.contains(&c.as_ptr())) {
                let off = (c.as_ptr() as usize).wrapping_sub(at as usize);
                assert!(
                    off + c.len() <= room,
                    "secure: {secure}: staged past the reservation"
                );
            }
            let end = (stage.as_ptr() as usize).wrapping_sub(at as usize) + stage.len();
            assert!(
                end <= room,
                "secure: {secure}: the stage grew ({end} > {room})"
            );
        }
    }
}
