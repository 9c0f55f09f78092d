//! A whole message: header, three payload segments and footer (spec §3.7, §4).

use bytes::{BufMut, Bytes};

use crate::consts::{FOOTER_COMPLETE, FOOTER_LEN, FOOTER_NOCRC, HEADER_LEN, PRIO_DEFAULT};
use crate::crc::crc32c;
use crate::entity::EntityName;
use crate::error::{Segment, WireError};
use crate::footer::{FooterKind, MsgFooter};
use crate::header::MsgHeader;
use crate::limits::CrcFlags;
use crate::tag::Tag;

/// Length of [`Message::frame_head`]: the MSG tag and the header.
pub const FRAME_HEAD_LEN: usize = 1 + HEADER_LEN;

/// A message. Segments are `Bytes`, so a decoded message shares the receive buffer and an
/// encoded one can be written without copying its payload ([`Message::frame_head`],
/// [`Message::frame_footer`]).
///
/// The header's lengths and CRCs and the footer are only meaningful after
/// [`Message::seal`] (sending) or decoding (receiving).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Message {
    /// The header.
    pub header: MsgHeader,
    /// The front ("payload").
    pub front: Bytes,
    /// The middle.
    pub middle: Bytes,
    /// The data section.
    pub data: Bytes,
    /// The footer.
    pub footer: MsgFooter,
}

impl Message {
    /// A message of type `ty` with `front`, priority `PRIO_DEFAULT`, version 1.
    pub fn new(ty: u16, front: impl Into<Bytes>) -> Self {
        Message {
            header: MsgHeader {
                ty,
                priority: PRIO_DEFAULT,
                version: 1,
                ..MsgHeader::default()
            },
            front: front.into(),
            ..Message::default()
        }
    }

    /// Sets the middle segment.
    pub fn with_middle(mut self, middle: impl Into<Bytes>) -> Self {
        self.middle = middle.into();
        self
    }

    /// Sets the data segment.
    pub fn with_data(mut self, data: impl Into<Bytes>) -> Self {
        self.data = data.into();
        self
    }

    /// Sets the priority.
    pub fn with_priority(mut self, priority: u16) -> Self {
        self.header.priority = priority;
        self
    }

    /// The priority the message is queued and sent with: the header's, where 0 means unset
    /// and stands for [`PRIO_DEFAULT`] (the one place this rule is written).
    pub fn priority(&self) -> u16 {
        if self.header.priority == 0 {
            PRIO_DEFAULT
        } else {
            self.header.priority
        }
    }

    /// Sets the transaction id.
    pub fn with_tid(mut self, tid: u64) -> Self {
        self.header.tid = tid;
        self
    }

    /// Sets the payload version and compat version.
    pub fn with_version(mut self, version: u16, compat_version: u16) -> Self {
        self.header.version = version;
        self.header.compat_version = compat_version;
        self
    }

    /// Prepares the message for transmission: sets the segment lengths, `seq`, `src`,
    /// `compat_version` (to `version` if 0) and `priority` (to `PRIO_DEFAULT` if 0); computes
    /// the front and middle CRCs (if `crc.header`), the data CRC (if `crc.data`, else sets
    /// `FOOTER_NOCRC`), sets `FOOTER_COMPLETE`, and computes the header CRC last, since it
    /// covers the seq. CRCs that are off are written as 0.
    ///
    /// The same as [`Message::seal_segments`] then [`Message::seal_header`].
    ///
    /// Segments must each be shorter than 4 GiB (the wire's u32 lengths); longer ones are
    /// the caller's bug and produce a length of `u32::MAX`.
    pub fn seal(&mut self, seq: u64, src: EntityName, crc: CrcFlags) {
        self.seal_segments(crc);
        self.seal_header(seq, src, crc);
    }

    /// The part of [`Message::seal`] that reads the payload: segment lengths, footer flags
    /// and the segment CRCs. It does not depend on the seq, so a sender may do it before the
    /// message is queued (off its writer's critical path), then [`Message::seal_header`] at
    /// write time.
    pub fn seal_segments(&mut self, crc: CrcFlags) {
        let h = &mut self.header;
        h.front_len = wire_len_u32(&self.front);
        h.middle_len = wire_len_u32(&self.middle);
        h.data_len = wire_len_u32(&self.data);
        let f = &mut self.footer;
        f.flags = FOOTER_COMPLETE;
        (f.front_crc, f.middle_crc) = if crc.header {
            (crc32c(0, &self.front), crc32c(0, &self.middle))
        } else {
            (0, 0)
        };
        if crc.data {
            f.data_crc = crc32c(0, &self.data);
        } else {
            f.data_crc = 0;
            f.flags |= FOOTER_NOCRC;
        }
    }

    /// The rest of [`Message::seal`], after [`Message::seal_segments`] with the same `crc`:
    /// `seq`, `src`, the `compat_version` and `priority` defaults and the header CRC.
    pub fn seal_header(&mut self, seq: u64, src: EntityName, crc: CrcFlags) {
        let priority = self.priority();
        let h = &mut self.header;
        h.seq = seq;
        h.src = src;
        if h.compat_version == 0 {
            h.compat_version = h.version;
        }
        h.priority = priority;
        h.crc = if crc.header { h.compute_crc() } else { 0 };
    }

    /// Bytes of the whole MSG frame: tag, header, segments and footer.
    pub fn wire_len(&self, kind: FooterKind) -> usize {
        FRAME_HEAD_LEN + self.front.len() + self.middle.len() + self.data.len() + kind.wire_len()
    }

    /// The MSG tag followed by the 53 header bytes.
    pub fn frame_head(&self) -> [u8; FRAME_HEAD_LEN] {
        let mut out = [0u8; FRAME_HEAD_LEN];
        out[0] = Tag::Msg.byte();
        let mut w = &mut out[1..];
        crate::Wire::encode(&self.header, &mut w);
        out
    }

    /// The encoded footer and how many of the array's bytes it uses (21 or 13).
    pub fn frame_footer(&self, kind: FooterKind) -> ([u8; FOOTER_LEN], usize) {
        kind.to_bytes(&self.footer)
    }

    /// Writes the whole MSG frame. For large payloads prefer a vectored write of
    /// `frame_head`, `front`, `middle`, `data` and `frame_footer`.
    pub fn encode_frame(&self, kind: FooterKind, buf: &mut impl BufMut) {
        buf.put_slice(&self.frame_head());
        buf.put_slice(&self.front);
        buf.put_slice(&self.middle);
        buf.put_slice(&self.data);
        let (footer, len) = self.frame_footer(kind);
        buf.put_slice(footer.get(..len).unwrap_or(&footer));
    }

    /// Verifies the header CRC and the front and middle CRCs (if `crc.header`) and the data
    /// CRC (if `crc.data` and the footer lacks `FOOTER_NOCRC`).
    pub fn verify_crcs(&self, crc: CrcFlags) -> Result<(), WireError> {
        if crc.header {
            self.header.verify_crc()?;
            check_segment(Segment::Front, &self.front, self.footer.front_crc)?;
            check_segment(Segment::Middle, &self.middle, self.footer.middle_crc)?;
        }
        if crc.data && !self.footer.is_nocrc() {
            check_segment(Segment::Data, &self.data, self.footer.data_crc)?;
        }
        Ok(())
    }
}

/// Checks one segment against its footer CRC.
pub(crate) fn check_segment(
    segment: Segment,
    bytes: &[u8],
    expected: u32,
) -> Result<(), WireError> {
    let actual = crc32c(0, bytes);
    if actual == expected {
        Ok(())
    } else {
        Err(WireError::SegmentCrc {
            segment,
            expected,
            actual,
        })
    }
}

fn wire_len_u32(b: &Bytes) -> u32 {
    u32::try_from(b.len()).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The MAuth frame of spec §8.6, also the first MSG of status-connector.bin.
    pub(crate) const MAUTH_FRAME: &str = "\
        07 01 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 11 00 7f 00 01 00 3c 00 00 00 00 00 00 00 00 \
        00 00 00 00 00 08 ff ff ff ff ff ff ff ff 01 00 00 00 69 4b ab e2 00 00 00 00 00 00 00 00 ff ff \
        00 00 00 00 00 00 00 00 00 00 00 00 1e 00 00 00 01 01 00 00 00 01 00 00 00 08 00 00 00 05 00 00 \
        00 61 64 6d 69 6e 00 00 00 00 00 00 00 00 00 00 00 00 5b 63 a7 35 00 00 00 00 00 00 00 00 00 00 \
        00 00 00 00 00 00 01";

    pub(crate) fn hex(s: &str) -> Vec<u8> {
        s.split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect()
    }

    #[test]
    fn mauth_frame_from_spec() {
        let frame = hex(MAUTH_FRAME);
        assert_eq!(frame.len(), 135);
        let front = frame[54..114].to_vec();
        let mut m = Message::new(17, front);
        m.seal(1, EntityName::client(-1), CrcFlags::default());
        assert_eq!(m.header.crc, 0xe2ab_4b69);
        assert_eq!(m.footer.front_crc, 0x35a7_635b);
        let mut out = Vec::new();
        m.encode_frame(FooterKind::New, &mut out);
        assert_eq!(out, frame);
        assert_eq!(m.wire_len(FooterKind::New), 135);
        assert!(m.verify_crcs(CrcFlags::default()).is_ok());
    }

    #[test]
    fn mping_from_spec() {
        let mut m = Message::new(2, Bytes::new());
        m.seal(2, EntityName::client(-1), CrcFlags::default());
        assert_eq!(m.header.crc, 0x6043_2617);
        let mut out = Vec::new();
        m.encode_frame(FooterKind::New, &mut out);
        assert_eq!(out.len(), 75);
        assert_eq!(out[74], 1);
    }

    #[test]
    fn seal_in_two_steps_equals_seal() {
        for crc in [CrcFlags::default(), CrcFlags::NONE] {
            let m = Message::new(7, vec![1u8; 100])
                .with_middle(vec![2u8; 10])
                .with_data(vec![3u8; 70_000])
                .with_version(2, 0);
            let mut whole = m.clone();
            whole.seal(42, EntityName::client(9), crc);
            let mut split = m;
            split.seal_segments(crc);
            split.seal_header(42, EntityName::client(9), crc);
            assert_eq!(split.header, whole.header);
            assert_eq!(split.footer, whole.footer);
            // Resealing the header with another seq keeps the segment CRCs.
            split.seal_header(43, EntityName::client(9), crc);
            whole.seal(43, EntityName::client(9), crc);
            assert_eq!((split.header, split.footer), (whole.header, whole.footer));
        }
    }

    #[test]
    fn seal_without_crcs() {
        let mut m = Message::new(5, &b"abc"[..])
            .with_data(&b"data"[..])
            .with_priority(0);
        m.seal(3, EntityName::osd(1), CrcFlags::NONE);
        assert_eq!(m.header.crc, 0);
        assert_eq!(m.header.priority, PRIO_DEFAULT);
        assert_eq!(m.footer.flags, FOOTER_COMPLETE | FOOTER_NOCRC);
        assert_eq!((m.footer.front_crc, m.footer.data_crc), (0, 0));
        assert!(m.verify_crcs(CrcFlags::NONE).is_ok());
        let mut out = Vec::new();
        m.encode_frame(FooterKind::Old, &mut out);
        assert_eq!(out.len(), m.wire_len(FooterKind::Old));
    }

    #[test]
    fn verify_names_the_segment() {
        let mut m = Message::new(5, &b"front"[..])
            .with_middle(&b"mid"[..])
            .with_data(&b"d"[..]);
        m.seal(1, EntityName::client(1), CrcFlags::default());
        m.data = Bytes::from_static(b"e");
        assert!(matches!(
            m.verify_crcs(CrcFlags::default()),
            Err(WireError::SegmentCrc {
                segment: Segment::Data,
                ..
            })
        ));
        m.footer.flags |= FOOTER_NOCRC;
        assert!(m.verify_crcs(CrcFlags::default()).is_ok());
    }
}
