//! The v1 codec adapter: the core's frames to msgr v1 bytes and back.
//!
//! [`Encoder`] is the [`FrameSink`] the writer hands to
//! [`SessionCore::poll_transmit`](crate::core::SessionCore::poll_transmit): tags, frame
//! heads, segments and footers into one staging buffer, with segments of
//! [`COPY_THRESHOLD`] (2 KiB) or more chained uncopied, except in a write of at most
//! [`SMALL_WRITE`] payload bytes, which is staged whole ([`copy_threshold`]). [`inbound`]
//! turns a decoded [`Frame`] into a message or the core's neutral [`Control`].
//!
//! Not here: the frame layouts and the stream decoder (`msgr_wire`), sockets.

use std::collections::VecDeque;

use bytes::{BufMut, Bytes, BytesMut};
use msgr_wire::{CrcFlags, FooterKind, Frame, Message, Tag, Timespec, Wire};

use msgr_auth::signature::{MessageSigner, SignedFields, FOOTER_SIGNED};

use crate::core::{Control, FrameSink, Outgoing};

/// Messages with at least this many payload bytes have their segment CRCs computed when they
/// are queued (on the sender's task); smaller ones are sealed whole when encoded.
pub const PRESEAL_MIN: u64 = 64 * 1024;

/// Whether `o` is large enough to have its segment CRCs computed when it is queued
/// ([`PRESEAL_MIN`]), unless its session is in msgr2 secure mode, which sends no CRCs.
pub fn wants_preseal(o: &Outgoing) -> bool {
    o.payload_len() >= PRESEAL_MIN
}

/// Whether `o`'s segment lengths and CRCs were computed when it was queued
/// ([`Message::seal_segments`]): encoding then only seals the header.
pub fn presealed(o: &Outgoing) -> bool {
    o.sealed
}

/// Segments shorter than this are copied into the staging buffer with the frame heads and
/// footers (fewer, larger writes); longer ones are written from their own buffers, uncopied
/// (one more slice in the vectored write, and the kernel copies them from there).
///
/// 2 KiB: a 4 KiB data segment used to be copied into the stage (8 KiB threshold) and then
/// copied again by the kernel; that copy was 5 % of a depth-128 round trip's CPU. Below
/// about 1 KiB the copy costs less than the segment's own slice (a reference count taken
/// and dropped, the stage split before it).
pub const COPY_THRESHOLD: usize = 2 * 1024;

/// A write whose messages carry at most this many payload bytes is staged whole: its
/// segments are copied into the staging buffer whatever their size, and the write is one
/// contiguous `send`.
///
/// A vectored `sendmsg` costs the kernel more than a `send` of the same bytes (the message
/// header and the iovec array are copied in and checked, and each slice is copied into the
/// socket buffer on its own), and that cost is per call: a large batch spreads it over many
/// messages, while a round trip's one-message write pays it whole. Measured on the 4 KiB
/// depth-1 round trip (`perf stat`, six alternating runs of 100,000 round trips): 23.5 →
/// 21.7 µs of CPU per round trip, the kernel's share 16.4 → 15.4 µs, p50 20.85 → 20.25 µs;
/// the copies themselves, 4 KiB each just written or just received, cost 0.1 µs. The same
/// copy in every write (an 8 KiB [`COPY_THRESHOLD`]) made the 4 KiB stream's CPU per message
/// 10–30 % higher and did not help depth 128: their batches stay chained.
pub const SMALL_WRITE: usize = 8 * 1024;

/// The copy threshold of a write whose messages carry `payload` bytes: every segment of a
/// [`SMALL_WRITE`] is staged, a larger write chains segments of [`COPY_THRESHOLD`] or more.
#[inline]
pub fn copy_threshold(payload: u64) -> usize {
    if payload <= SMALL_WRITE as u64 {
        usize::MAX
    } else {
        COPY_THRESHOLD
    }
}

/// A received v1 frame, split as the core takes it.
#[derive(Debug)]
pub enum Inbound {
    /// A message, for the sequence check and delivery.
    Message(Message),
    /// Anything else.
    Control(Control),
}

/// What a v1 message signature covers (the cephx spec's §C): the header CRC as sent, the
/// footer CRCs, the segment lengths and the seq.
pub fn signed_fields(m: &Message) -> SignedFields {
    SignedFields {
        header_crc: m.header.crc,
        front_crc: m.footer.front_crc,
        front_len: m.header.front_len,
        middle_crc: m.footer.middle_crc,
        middle_len: m.header.middle_len,
        data_crc: m.footer.data_crc,
        data_len: m.header.data_len,
        seq: m.header.seq,
    }
}

/// Checks a received message's signature (a mismatch faults the socket, as Ceph's
/// "Signature check failed" does).
pub fn check_signature(signer: &MessageSigner, m: &Message) -> bool {
    signer.check(&signed_fields(m), m.footer.sig).is_ok()
}

/// Splits a decoded frame into a message or a neutral control frame.
#[inline(always)]
pub fn inbound(frame: Frame) -> Inbound {
    match frame {
        Frame::Msg(m) => Inbound::Message(m),
        Frame::Ack(seq) => Inbound::Control(Control::Ack(seq)),
        Frame::Keepalive => Inbound::Control(Control::Keepalive),
        Frame::Keepalive2(ts) => Inbound::Control(Control::Keepalive2(ts)),
        Frame::Keepalive2Ack(ts) => Inbound::Control(Control::Keepalive2Ack(ts)),
        Frame::Close => Inbound::Control(Control::Close),
    }
}

/// Encodes frames into a staging buffer and a chain of buffers to write in order (the
/// staged bytes so far are frozen onto the chain before each uncopied segment).
pub struct Encoder<'a> {
    /// Which CRCs to compute.
    pub crc: CrcFlags,
    /// The footer of the negotiated features.
    pub kind: FooterKind,
    /// The peer speaks KEEPALIVE2.
    pub ka2: bool,
    /// Buffers to write, in order, before `stage`.
    pub chain: &'a mut VecDeque<Bytes>,
    /// Small pieces staged for one write.
    pub stage: &'a mut BytesMut,
    /// Signs each message (an authorized connection with `cephx_sign_messages`).
    pub signer: Option<&'a MessageSigner>,
    /// Segments of this many bytes or more go onto the chain uncopied
    /// ([`COPY_THRESHOLD`], or [`copy_threshold`] for the write at hand).
    pub copy_threshold: usize,
}

impl Encoder<'_> {
    /// Appends a segment: staged if small, else onto the chain, shared, or moved there
    /// (`take`: the caller's message is a copy it lets go of, and the reference it holds
    /// is the chain's).
    #[inline(always)]
    fn push_segment(&mut self, seg: &mut Bytes, take: bool) {
        if seg.len() < self.copy_threshold {
            self.stage.put_slice(seg);
        } else {
            if !self.stage.is_empty() {
                self.chain.push_back(self.stage.split().freeze());
            }
            self.chain.push_back(if take {
                std::mem::take(seg)
            } else {
                seg.clone()
            });
        }
    }

    /// A KEEPALIVE2 stamped with our clock now.
    pub fn keepalive2(&mut self) {
        self.stage.put_u8(Tag::Keepalive2.byte());
        Timespec::now().encode(self.stage);
    }

    /// An ACK of every message up to `seq`.
    pub fn ack(&mut self, seq: u64) {
        self.stage.put_u8(Tag::Ack.byte());
        self.stage.put_u64_le(seq);
    }

    /// Seals `o` with its seq (and the `src` stamped when it was queued) and appends its
    /// frame: head, segments and footer.
    pub fn encode_message(&mut self, o: &mut Outgoing) {
        self.encode(o, false);
    }

    /// [`encode_message`](Self::encode_message) for a copy of a sent message (the writer's,
    /// encoded outside the session lock, [`Outgoing::copy`]): its segments written from
    /// their own buffers move onto the chain, and `o` is left without them. The copy's
    /// reference is the chain's, not one more taken and dropped per segment.
    ///
    /// [`Outgoing::copy`]: crate::core::Outgoing::copy
    pub fn encode_copy(&mut self, o: &mut Outgoing) {
        self.encode(o, true);
    }

    #[inline(always)]
    fn encode(&mut self, o: &mut Outgoing, take: bool) {
        let src = o.msg.header.src;
        if presealed(o) {
            o.msg.seal_header(o.seq, src, self.crc);
        } else {
            o.msg.seal(o.seq, src, self.crc);
        }
        if let Some(signer) = self.signer {
            // A resend is signed again: its seq and CRCs are those of this sealing.
            match signer.sign(&signed_fields(&o.msg)) {
                Ok(sig) => {
                    o.msg.footer.sig = sig;
                    o.msg.footer.flags |= FOOTER_SIGNED;
                }
                Err(e) => tracing::warn!(error = %e, seq = o.seq, "message left unsigned"),
            }
        }
        self.stage.put_slice(&o.msg.frame_head());
        let m = &mut o.msg;
        for seg in [&mut m.front, &mut m.middle, &mut m.data] {
            self.push_segment(seg, take);
        }
        let (footer, len) = o.msg.frame_footer(self.kind);
        self.stage.put_slice(footer.get(..len).unwrap_or(&footer));
    }

    /// Freezes what is staged onto the chain.
    pub fn finish(&mut self) {
        if !self.stage.is_empty() {
            self.chain.push_back(self.stage.split().freeze());
        }
    }
}

impl FrameSink for Encoder<'_> {
    fn keepalive(&mut self) {
        if self.ka2 {
            self.keepalive2();
        } else {
            self.stage.put_u8(Tag::Keepalive.byte());
        }
    }

    fn keepalive_ack(&mut self, stamp: Timespec) {
        self.stage.put_u8(Tag::Keepalive2Ack.byte());
        stamp.encode(self.stage);
    }

    fn message(&mut self, o: &mut Outgoing) {
        self.encode_message(o);
    }
}

/// Bytes a batch of `msgs` puts into the staging buffer, so it is reserved once, not
/// regrown: heads, footers and the segments under `copy_threshold`, plus an ACK and a
/// KEEPALIVE2.
pub fn stage_len(msgs: &[Outgoing], copy_threshold: usize) -> usize {
    let small = |b: &Bytes| if b.len() < copy_threshold { b.len() } else { 0 };
    let msgs: usize = msgs
        .iter()
        .map(|o| {
            msgr_wire::FRAME_HEAD_LEN
                + msgr_wire::FOOTER_LEN
                + small(&o.msg.front)
                + small(&o.msg.middle)
                + small(&o.msg.data)
        })
        .sum();
    msgs + 9 + 9
}

#[cfg(test)]
mod tests {
    use msgr_wire::{EntityName, FrameDecoder, Limits};

    use super::*;

    /// An encoder with the default CRCs, the new footer and KEEPALIVE2, unsigned.
    fn encoder<'a>(chain: &'a mut VecDeque<Bytes>, stage: &'a mut BytesMut) -> Encoder<'a> {
        Encoder {
            crc: CrcFlags::default(),
            kind: FooterKind::New,
            ka2: true,
            chain,
            stage,
            signer: None,
            copy_threshold: COPY_THRESHOLD,
        }
    }

    /// What the encoder writes, the stream decoder reads back as the same frames.
    #[test]
    fn encodes_what_the_decoder_reads() {
        let (mut chain, mut stage) = (VecDeque::new(), BytesMut::new());
        let mut e = encoder(&mut chain, &mut stage);
        let mut small = Outgoing::new(Message::new(7, b"front".to_vec()), None);
        small.seq = 1;
        let mut big = Outgoing::new(
            Message::new(8, Vec::new()).with_data(vec![9u8; 3 * COPY_THRESHOLD]),
            None,
        );
        big.seq = 2;
        e.keepalive();
        e.keepalive_ack(Timespec::new(3, 4));
        e.message(&mut small);
        e.message(&mut big);
        e.ack(2);
        e.finish();
        assert!(
            chain.len() >= 3,
            "the large data segment is chained uncopied"
        );
        let mut wire = BytesMut::new();
        for b in &chain {
            wire.extend_from_slice(b);
        }
        let mut dec = FrameDecoder::new(Limits::default(), FooterKind::New, CrcFlags::default());
        let mut got = Vec::new();
        while let Some(f) = dec.decode(&mut wire).expect("valid stream") {
            got.push(inbound(f));
        }
        assert!(matches!(got[0], Inbound::Control(Control::Keepalive2(_))));
        assert!(matches!(
            got[1],
            Inbound::Control(Control::Keepalive2Ack(t)) if t == Timespec::new(3, 4)
        ));
        assert!(
            matches!(&got[2], Inbound::Message(m) if m.header.seq == 1 && m.front[..] == b"front"[..])
        );
        assert!(
            matches!(&got[3], Inbound::Message(m) if m.header.seq == 2 && m.data.len() == 3 * COPY_THRESHOLD)
        );
        assert!(matches!(got[4], Inbound::Control(Control::Ack(2))));
        assert_eq!(got.len(), 5);
    }

    /// The frame msgr-wire's whole-frame path writes for `m` sent with `seq`:
    /// [`Message::seal`], signed as Ceph signs (the header CRC as sealed), then
    /// [`Message::encode_frame`]. The staging encoder must write exactly these bytes.
    fn reference(
        m: &Message,
        seq: u64,
        crc: CrcFlags,
        kind: FooterKind,
        signer: Option<&MessageSigner>,
    ) -> Vec<u8> {
        let mut m = m.clone();
        m.seal(seq, m.header.src, crc);
        if let Some(s) = signer {
            m.footer.sig = s.sign(&signed_fields(&m)).expect("an AES key signs");
            m.footer.flags |= FOOTER_SIGNED;
        }
        let mut out = Vec::new();
        m.encode_frame(kind, &mut out);
        out
    }

    /// The staging encoder writes the reference frame byte for byte: both footer layouts,
    /// every CRC setting, unsigned and signed in both signature formats, segments on either
    /// side of the copy threshold, presealed large messages, priority and compat version
    /// left 0, `encode_message` and `encode_copy`, large segments chained or (a small
    /// write's threshold) staged; and across batches on one reused stage (reserved as the
    /// writer reserves it at a batch's start, then split, frozen and written), so its growth
    /// and reuse are covered.
    #[test]
    fn stages_the_bytes_of_the_reference_encoding() {
        use msgr_auth::signature::SignatureFormat;
        use msgr_auth::CryptoKey;
        let cephx = MessageSigner::new(CryptoKey::aes([7; 16]), SignatureFormat::CephxV2);
        let legacy = MessageSigner::new(CryptoKey::aes([9; 16]), SignatureFormat::Legacy);
        let big = PRESEAL_MIN as usize;
        let shapes = [
            (16, 0, 48),
            (0, 0, 0),
            (5, 3, 0),
            (100, 0, COPY_THRESHOLD - 1),
            (10, 0, COPY_THRESHOLD),
            (COPY_THRESHOLD, 7, 3 * COPY_THRESHOLD),
            (0, 0, big),
            (64, 0, 0),
        ];
        let crcs = CrcFlags::ALL;
        let mut checked = 0;
        for kind in [FooterKind::New, FooterKind::Old] {
            for crc in crcs {
                for signer in [None, Some(&cephx), Some(&legacy)] {
                    for (copy, threshold) in [false, true]
                        .into_iter()
                        .flat_map(|c| [(c, COPY_THRESHOLD), (c, usize::MAX)])
                    {
                        let (mut chain, mut stage) = (VecDeque::new(), BytesMut::new());
                        let (mut seq, mut room, mut last) = (0u64, 0usize, 0usize);
                        for batch in 0..3 {
                            // As the writer's `Out::take` reserves before a batch.
                            let want = room.max(2 * last);
                            let short = if last >= 1024 {
                                stage.capacity() < want / 2
                            } else {
                                stage.capacity() < last
                            };
                            if short {
                                stage.reserve(want);
                            }
                            let mut want = Vec::new();
                            let mut e = Encoder {
                                crc,
                                kind,
                                ka2: true,
                                chain: &mut chain,
                                stage: &mut stage,
                                signer,
                                copy_threshold: threshold,
                            };
                            for (i, &(f, mi, d)) in shapes.iter().enumerate() {
                                seq += 1;
                                let fill = |n: usize, b: u8| {
                                    (0..n).map(|k| b ^ (k as u8)).collect::<Vec<u8>>()
                                };
                                let mut m = Message::new(0x7001, fill(f, 1))
                                    .with_middle(fill(mi, 2))
                                    .with_data(fill(d, 3))
                                    .with_tid(seq * 3)
                                    .with_version(2, 0);
                                m.header.src = EntityName::client(5);
                                if i % 2 == 1 {
                                    m = m.with_priority(0);
                                }
                                want.extend(reference(&m, seq, crc, kind, signer));
                                let mut o = Outgoing::new(m, None);
                                o.seq = seq;
                                if wants_preseal(&o) {
                                    o.msg.seal_segments(crc);
                                    o.sealed = true;
                                }
                                if copy {
                                    e.encode_copy(&mut o);
                                } else {
                                    e.encode_message(&mut o);
                                }
                            }
                            last = e.stage.len();
                            room = room.max(e.stage.capacity());
                            e.finish();
                            let what = format!(
                                "{kind:?} {crc:?} signed {} copy {copy} threshold {threshold} \
                                 batch {batch}",
                                signer.is_some()
                            );
                            if threshold == usize::MAX {
                                assert_eq!(chain.len(), 1, "staged whole: {what}");
                            }
                            let got: Vec<u8> = chain.drain(..).flatten().collect();
                            assert_eq!(got, want, "{what}");
                            checked += 1;
                        }
                    }
                }
            }
        }
        assert_eq!(checked, 2 * 4 * 3 * 4 * 3);
    }

    /// A write of at most [`SMALL_WRITE`] payload bytes stages every segment, a larger one
    /// chains the segments of [`COPY_THRESHOLD`] or more; a round trip's 4 KiB message is
    /// then one buffer, the reference frame byte for byte, staged into the room
    /// [`stage_len`] reserved for it (no regrowth: the stage keeps its allocation).
    #[test]
    fn a_small_write_is_staged_whole() {
        assert_eq!(copy_threshold(0), usize::MAX);
        assert_eq!(copy_threshold(SMALL_WRITE as u64), usize::MAX);
        assert_eq!(copy_threshold(SMALL_WRITE as u64 + 1), COPY_THRESHOLD);
        assert_eq!(copy_threshold(u64::MAX), COPY_THRESHOLD);
        for size in [4096, SMALL_WRITE - 20, 3 * COPY_THRESHOLD, 64 * 1024] {
            let msg = Message::new(8, vec![1u8; 20]).with_data(vec![2u8; size]);
            let mut o = Outgoing::new(msg, None);
            o.seq = 1;
            let want = reference(&o.msg, 1, CrcFlags::default(), FooterKind::New, None);
            let threshold = copy_threshold(o.payload_len());
            let (mut chain, mut stage) = (VecDeque::new(), BytesMut::new());
            stage.reserve(stage_len(std::slice::from_ref(&o), threshold));
            let at = stage.as_ptr();
            let mut e = encoder(&mut chain, &mut stage);
            e.copy_threshold = threshold;
            e.encode_copy(&mut o);
            let small = size + 20 <= SMALL_WRITE;
            if small {
                assert_eq!(
                    e.stage.as_ptr(),
                    at,
                    "{size}: staged into the reserved room"
                );
            }
            e.finish();
            assert_eq!(
                chain.len() == 1,
                small,
                "{size}: one buffer iff a small write"
            );
            let got: Vec<u8> = chain.iter().flat_map(|b| b.iter().copied()).collect();
            assert_eq!(got, want, "{size}");
        }
    }

    /// Encodes `o` (a message with a small front and a large data segment) with
    /// `encode_message` or `encode_copy`: the bytes on the wire and the chain.
    fn encoded(o: &mut Outgoing, copy: bool) -> (Vec<u8>, VecDeque<Bytes>) {
        let (mut chain, mut stage) = (VecDeque::new(), BytesMut::new());
        let mut e = encoder(&mut chain, &mut stage);
        if copy {
            e.encode_copy(o);
        } else {
            e.encode_message(o);
        }
        e.finish();
        let wire = chain.iter().flat_map(|b| b.iter().copied()).collect();
        (wire, chain)
    }

    /// A copy's large segment moves onto the chain (the same memory, no other reference
    /// taken), and the frame is byte for byte the one `encode_message` writes.
    #[test]
    fn a_copy_moves_its_large_segment_onto_the_chain() {
        let data = Bytes::from(vec![5u8; 2 * COPY_THRESHOLD]);
        let msg = Message::new(8, b"front".to_vec()).with_data(data.clone());
        let mut kept = Outgoing::new(msg, None);
        kept.seq = 3;
        let mut copy = kept.copy();
        let (wire, _) = encoded(&mut kept, false);
        let (wire_of_copy, chain) = encoded(&mut copy, true);
        assert_eq!(wire_of_copy, wire, "the same frame");
        assert_eq!(
            kept.msg.data, data,
            "encode_message leaves the segment in place"
        );
        assert!(copy.msg.data.is_empty(), "the copy's data moved out");
        assert_eq!(copy.msg.front.as_ref(), b"front", "a staged segment stays");
        let chained = chain
            .iter()
            .find(|b| b.len() == data.len())
            .expect("the data segment is a link of the chain");
        assert_eq!(chained.as_ptr(), data.as_ptr(), "uncopied");
    }
}
