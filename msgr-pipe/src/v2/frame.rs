//! msgr2.1 (rev1) frames, sans-IO: the banner, then frames of one to four segments in crc
//! mode or secure mode (AES-128-GCM), encoded into a buffer and decoded from a stream (the
//! cephx spec's §E.1, §E.2).
//!
//! crc mode: `preamble(32) ‖ seg0 ‖ crc32c(-1, seg0)`, then for frames of more than one
//! segment `seg1 ‖ seg2 ‖ seg3 ‖ epilogue(13)`. secure mode: the preamble and the first 48
//! bytes of seg0 in one GCM operation (96 bytes with the tag), the rest of seg0 in a second,
//! the other segments and the epilogue in a third; each operation uses the current nonce and
//! then increments its counter.
//!
//! Bad input is a typed [`FrameError`]; no length a peer declares is allocated beyond the
//! [`FrameLimits`]. Not here: what the frames mean (the v2 handshake and session), the
//! connection secret's derivation (msgr-auth).

use aes_gcm::aead::AeadInOut;
use aes_gcm::{Aes128Gcm, KeyInit, Nonce, Tag as GcmTag};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use msgr_wire::{crc32c, SMALL_PAYLOAD};

/// The banner's magic, `ceph v2\n`.
pub const BANNER_MAGIC: &[u8; 8] = b"ceph v2\n";
/// Protocol feature bit 0: msgr2.1 (the rev1 frame format).
pub const FEATURE_REVISION_1: u64 = 1;
/// Protocol feature bit 1: compression (Quincy+; not spoken here).
pub const FEATURE_COMPRESSION: u64 = 2;

/// Preamble length.
pub const PREAMBLE_LEN: usize = 32;
/// Most segments of a frame.
pub const MAX_SEGMENTS: usize = 4;
/// `late_status` of a complete frame (low nibble compared).
pub const LATE_STATUS_COMPLETE: u8 = 0x0e;
/// crc-mode epilogue: late status and three CRCs.
const CRC_EPILOGUE_LEN: usize = 13;
/// secure-mode epilogue: late status padded to a block.
const SECURE_EPILOGUE_LEN: usize = 16;
/// GCM tag length.
const TAG_LEN: usize = 16;
/// seg0 bytes carried with the preamble in secure mode.
const SECURE_INLINE: usize = 48;
/// Most bytes a banner's payload may declare (Pacific sends 16).
const MAX_BANNER_PAYLOAD: usize = 4096;

/// Frame tags (msgr2.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
#[allow(missing_docs)]
pub enum Tag {
    Hello = 1,
    AuthRequest = 2,
    AuthBadMethod = 3,
    AuthReplyMore = 4,
    AuthRequestMore = 5,
    AuthDone = 6,
    AuthSignature = 7,
    ClientIdent = 8,
    ServerIdent = 9,
    IdentMissingFeatures = 10,
    SessionReconnect = 11,
    SessionReset = 12,
    SessionRetry = 13,
    SessionRetryGlobal = 14,
    SessionReconnectOk = 15,
    Wait = 16,
    Message = 17,
    Keepalive2 = 18,
    Keepalive2Ack = 19,
    Ack = 20,
}

impl Tag {
    /// The tag of a raw byte.
    pub fn from_byte(b: u8) -> Option<Tag> {
        use Tag::*;
        Some(match b {
            1 => Hello,
            2 => AuthRequest,
            3 => AuthBadMethod,
            4 => AuthReplyMore,
            5 => AuthRequestMore,
            6 => AuthDone,
            7 => AuthSignature,
            8 => ClientIdent,
            9 => ServerIdent,
            10 => IdentMissingFeatures,
            11 => SessionReconnect,
            12 => SessionReset,
            13 => SessionRetry,
            14 => SessionRetryGlobal,
            15 => SessionReconnectOk,
            16 => Wait,
            17 => Message,
            18 => Keepalive2,
            19 => Keepalive2Ack,
            20 => Ack,
            _ => return None,
        })
    }
}

/// Why bytes from a peer are not a msgr2.1 stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Not `ceph v2\n`.
    #[error("not a msgr2 banner")]
    BadBanner,
    /// The banner's payload length is out of bounds.
    #[error("banner payload of {0} bytes")]
    BadBannerLen(usize),
    /// The peer requires protocol features we lack.
    #[error("peer requires msgr2 features {0:#x} we lack")]
    MissingFeatures(u64),
    /// The preamble's CRC does not match.
    #[error("preamble crc mismatch")]
    PreambleCrc,
    /// A segment's CRC does not match.
    #[error("segment {0} crc mismatch")]
    SegmentCrc(usize),
    /// Unknown tag.
    #[error("unknown frame tag {0}")]
    UnknownTag(u8),
    /// `num_segments` outside 1..=4, or a segment declared past the count.
    #[error("bad segment count {0}")]
    BadSegments(u8),
    /// A segment longer than the limits.
    #[error("segment of {len} bytes over the limit of {limit}")]
    TooLong {
        /// Declared length.
        len: u64,
        /// The limit.
        limit: u64,
    },
    /// The frame was aborted by its sender (late status).
    #[error("frame aborted by the sender")]
    Aborted,
    /// A GCM tag did not verify (secure mode): the bytes were altered or the keys differ.
    #[error("secure frame does not authenticate")]
    Decrypt,
}

/// Bounds on what a peer may declare.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameLimits {
    /// Longest segment 0 (control payloads, message header).
    pub max_control: u32,
    /// Longest other segment (front, middle, data).
    pub max_segment: u32,
    /// Most bytes of the other segments together (a message's front, middle and data: v1's
    /// `max_message`), checked from the preamble before anything is reserved.
    pub max_message: u64,
}

impl Default for FrameLimits {
    fn default() -> Self {
        FrameLimits {
            max_control: 16 << 20,
            max_segment: 256 << 20,
            max_message: 256 << 20,
        }
    }
}

/// One frame: a tag and one to four segments (trailing empty ones not counted).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// Its tag.
    pub tag: Tag,
    /// Its segments (at least one; at most four).
    pub segments: Vec<Bytes>,
}

impl Frame {
    /// A one-segment (control) frame.
    pub fn control(tag: Tag, payload: impl Into<Bytes>) -> Frame {
        Frame {
            tag,
            segments: vec![payload.into()],
        }
    }

    /// Segment `i`, empty if absent.
    pub fn segment(&self, i: usize) -> &[u8] {
        self.segments.get(i).map_or(&[][..], |b| &b[..])
    }
}

/// Segment 0 of at most this many bytes is copied out of the read buffer by
/// [`Decoder::decode_parts`] (`ceph_msg_header2` is 41): cheaper than sharing the buffer.
const INLINE_HEAD: usize = 64;

/// A decoded frame as [`Decoder::decode_parts`] gives it: the tag and its segments in a
/// fixed array, with no vector to allocate and free per frame (the session phase's path);
/// a short segment 0 (a message's header) is held inline, the buffer not shared for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parts {
    tag: Tag,
    count: usize,
    /// Segment 0 when it is short: its bytes and length (`segments[0]` is then empty).
    inline: Option<([u8; INLINE_HEAD], usize)>,
    /// The segments; those from `count` on are empty.
    segments: [Bytes; MAX_SEGMENTS],
}

impl Parts {
    /// Its tag.
    pub fn tag(&self) -> Tag {
        self.tag
    }

    /// How many segments the preamble declared (1 to 4).
    pub fn count(&self) -> usize {
        self.count
    }

    /// Segment `i`, empty if absent.
    pub fn segment(&self, i: usize) -> &[u8] {
        match (i, &self.inline) {
            (0, Some((bytes, len))) => bytes.get(..*len).unwrap_or_default(),
            _ => self.segments.get(i).map_or(&[][..], |b| &b[..]),
        }
    }

    /// Hands the frame to `f`: its tag, segment 0, and segments 1 to 3 moved out.
    pub fn with<T>(self, f: impl FnOnce(Tag, &[u8], [Bytes; MAX_SEGMENTS - 1]) -> T) -> T {
        let Parts {
            tag,
            inline,
            segments: [s0, front, middle, data],
            ..
        } = self;
        let head = match &inline {
            Some((bytes, len)) => bytes.get(..*len).unwrap_or_default(),
            None => &s0[..],
        };
        f(tag, head, [front, middle, data])
    }

    /// Segments 1 to 3 (a message's front, middle and data), moved out.
    pub fn into_payload(self) -> [Bytes; MAX_SEGMENTS - 1] {
        let [_, front, middle, data] = self.segments;
        [front, middle, data]
    }

    /// The [`Frame`] of these parts (its first `count` segments).
    pub fn into_frame(self) -> Frame {
        let head = Bytes::copy_from_slice(self.segment(0));
        let mut segments: Vec<Bytes> = self.segments.into_iter().take(self.count).collect();
        if let (Some(s0), true) = (segments.first_mut(), self.inline.is_some()) {
            *s0 = head;
        }
        Frame {
            tag: self.tag,
            segments,
        }
    }
}

impl From<Frame> for Parts {
    /// A frame's first four segments (a frame has at most four).
    fn from(f: Frame) -> Parts {
        let count = f.segments.len().clamp(1, MAX_SEGMENTS);
        let mut segments: [Bytes; MAX_SEGMENTS] = Default::default();
        for (to, from) in segments.iter_mut().zip(f.segments) {
            *to = from;
        }
        Parts {
            tag: f.tag,
            count,
            inline: None,
            segments,
        }
    }
}

/// What [`Decoder::decode_into`] makes of each frame: the session phase's reader builds each
/// message once, inside the result the decoder returns (as v1's `FrameDecoder::decode_into`
/// with its `Frames`).
pub trait Frames {
    /// What a frame becomes.
    type Item;
    /// What a corrupt stream's error becomes.
    type Error: From<FrameError>;
    /// The item of a frame whose CRCs passed: its tag, segment 0, and segments 1 to 3 (moved
    /// out), as the decoder's own result, `Ok(Some(item))` (or `Err` for a frame the caller
    /// refuses). That type, not the item alone: an item wrapped on its way out is moved once
    /// per wrapping.
    fn frame(
        self,
        tag: Tag,
        seg0: &[u8],
        payload: [Bytes; MAX_SEGMENTS - 1],
    ) -> Result<Option<Self::Item>, Self::Error>;
}

/// A closure's [`Frames`] ([`Decoder::decode_with`]).
struct WithFn<G, T>(G, std::marker::PhantomData<fn() -> T>);

impl<G, T> Frames for WithFn<G, T>
where
    G: FnOnce(Tag, &[u8], [Bytes; MAX_SEGMENTS - 1]) -> T,
{
    type Item = T;
    type Error = FrameError;

    #[inline(always)]
    fn frame(
        self,
        tag: Tag,
        seg0: &[u8],
        payload: [Bytes; MAX_SEGMENTS - 1],
    ) -> Result<Option<T>, FrameError> {
        Ok(Some((self.0)(tag, seg0, payload)))
    }
}

/// The banner: `ceph v2\n`, `u16 payload_len` (16), `u64 supported`, `u64 required`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Banner {
    /// Protocol features supported.
    pub supported: u64,
    /// Protocol features required.
    pub required: u64,
}

impl Banner {
    /// What we send: revision 1 supported, nothing required.
    pub const OURS: Banner = Banner {
        supported: FEATURE_REVISION_1,
        required: 0,
    };

    /// Appends the banner.
    pub fn encode(&self, out: &mut BytesMut) {
        out.put_slice(BANNER_MAGIC);
        out.put_u16_le(16);
        out.put_u64_le(self.supported);
        out.put_u64_le(self.required);
    }

    /// Takes a banner from the front of `buf` once it is all there; checks that we have what
    /// the peer requires and that it speaks revision 1.
    pub fn decode(buf: &mut BytesMut) -> Result<Option<Banner>, FrameError> {
        let have = buf.len().min(BANNER_MAGIC.len());
        if buf[..have] != BANNER_MAGIC[..have] {
            return Err(FrameError::BadBanner);
        }
        if buf.len() < 10 {
            return Ok(None);
        }
        let len = usize::from(u16::from_le_bytes([buf[8], buf[9]]));
        if !(16..=MAX_BANNER_PAYLOAD).contains(&len) {
            return Err(FrameError::BadBannerLen(len));
        }
        if buf.len() < 10 + len {
            return Ok(None);
        }
        buf.advance(10);
        let mut p = buf.split_to(len);
        let b = Banner {
            supported: p.get_u64_le(),
            required: p.get_u64_le(),
        };
        let missing = b.required & !Banner::OURS.supported;
        if missing != 0 {
            return Err(FrameError::MissingFeatures(missing));
        }
        if b.supported & FEATURE_REVISION_1 == 0 {
            return Err(FrameError::MissingFeatures(FEATURE_REVISION_1));
        }
        Ok(Some(b))
    }
}

/// The preamble's fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Preamble {
    tag: u8,
    num_segments: u8,
    lens: [u32; MAX_SEGMENTS],
    aligns: [u16; MAX_SEGMENTS],
}

impl Preamble {
    fn of(frame: &Frame) -> Preamble {
        let mut lens = [0usize; MAX_SEGMENTS];
        for (l, s) in lens.iter_mut().zip(&frame.segments) {
            *l = s.len();
        }
        Preamble::from_lens(frame.tag, lens)
    }

    fn from_lens(tag: Tag, segment_lens: [usize; MAX_SEGMENTS]) -> Preamble {
        let mut lens = [0u32; MAX_SEGMENTS];
        for (l, n) in lens.iter_mut().zip(segment_lens) {
            *l = u32::try_from(n).unwrap_or(u32::MAX);
        }
        let used = lens.iter().rposition(|l| *l != 0).map_or(1, |i| i + 1);
        let mut aligns = [0u16; MAX_SEGMENTS];
        for (i, a) in aligns.iter_mut().enumerate().take(used) {
            *a = if tag == Tag::Message && i == 3 {
                4096
            } else {
                8
            };
        }
        Preamble {
            tag: tag as u8,
            num_segments: u8::try_from(used).unwrap_or(1),
            lens,
            aligns,
        }
    }

    fn encode(&self) -> [u8; PREAMBLE_LEN] {
        let mut b = [0u8; PREAMBLE_LEN];
        b[0] = self.tag;
        b[1] = self.num_segments;
        for i in 0..MAX_SEGMENTS {
            let at = 2 + 6 * i;
            b[at..at + 4].copy_from_slice(&self.lens[i].to_le_bytes());
            b[at + 4..at + 6].copy_from_slice(&self.aligns[i].to_le_bytes());
        }
        let crc = crc32c(0, &b[..28]);
        b[28..].copy_from_slice(&crc.to_le_bytes());
        b
    }

    fn decode(raw: &[u8; PREAMBLE_LEN], limits: &FrameLimits) -> Result<Preamble, FrameError> {
        let crc = u32::from_le_bytes([raw[28], raw[29], raw[30], raw[31]]);
        if crc32c(0, &raw[..28]) != crc {
            return Err(FrameError::PreambleCrc);
        }
        let n = raw[1];
        if !(1..=4).contains(&n) {
            return Err(FrameError::BadSegments(n));
        }
        let mut lens = [0u32; MAX_SEGMENTS];
        let mut aligns = [0u16; MAX_SEGMENTS];
        for i in 0..MAX_SEGMENTS {
            let at = 2 + 6 * i;
            lens[i] = u32::from_le_bytes([raw[at], raw[at + 1], raw[at + 2], raw[at + 3]]);
            aligns[i] = u16::from_le_bytes([raw[at + 4], raw[at + 5]]);
            if i >= usize::from(n) && lens[i] != 0 {
                return Err(FrameError::BadSegments(n));
            }
            let limit = if i == 0 {
                limits.max_control
            } else {
                limits.max_segment
            };
            if lens[i] > limit {
                return Err(FrameError::TooLong {
                    len: lens[i].into(),
                    limit: limit.into(),
                });
            }
        }
        let body: u64 = lens[1..].iter().map(|l| u64::from(*l)).sum();
        if body > limits.max_message {
            return Err(FrameError::TooLong {
                len: body,
                limit: limits.max_message,
            });
        }
        Tag::from_byte(raw[0]).ok_or(FrameError::UnknownTag(raw[0]))?;
        Ok(Preamble {
            tag: raw[0],
            num_segments: n,
            lens,
            aligns,
        })
    }

    fn len(&self, i: usize) -> usize {
        self.lens[i] as usize
    }

    /// Where segment `i` starts in a crc-mode frame (from the preamble's first byte).
    fn crc_offset(&self, i: usize) -> usize {
        if i == 0 {
            return PREAMBLE_LEN;
        }
        PREAMBLE_LEN + self.len(0) + 4 + (1..i).map(|j| self.len(j)).sum::<usize>()
    }

    /// Bytes of the frame after the preamble, in crc mode.
    fn crc_rest(&self) -> usize {
        let mut n = self.len(0) + 4;
        if self.num_segments > 1 {
            n += self.len(1) + self.len(2) + self.len(3) + CRC_EPILOGUE_LEN;
        }
        n
    }

    /// Bytes of the frame after the 96-byte head, in secure mode.
    fn secure_rest(&self) -> usize {
        let mut n = 0;
        if self.len(0) > SECURE_INLINE {
            n += pad16(self.len(0) - SECURE_INLINE) + TAG_LEN;
        }
        if self.num_segments > 1 {
            n += pad16(self.len(1))
                + pad16(self.len(2))
                + pad16(self.len(3))
                + SECURE_EPILOGUE_LEN
                + TAG_LEN;
        }
        n
    }
}

/// `crc32c(seed, seg)`, with no call for an empty segment (a message's middle, and its front
/// or data, are often empty: two of its four segment CRCs).
#[inline(always)]
fn segment_crc(seed: u32, seg: &[u8]) -> u32 {
    if seg.is_empty() {
        seed
    } else {
        crc32c(seed, seg)
    }
}

fn pad16(n: usize) -> usize {
    n.div_ceil(16) * 16
}

/// The AES-GCM state of one direction: key and 12-byte nonce (`u32 fixed ‖ u64 counter`).
pub struct Gcm {
    cipher: Aes128Gcm,
    fixed: u32,
    counter: u64,
}

impl std::fmt::Debug for Gcm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gcm").finish_non_exhaustive()
    }
}

impl Gcm {
    /// A direction with `key` and its initial `nonce` (from the connection secret).
    pub fn new(key: &[u8; 16], nonce: &[u8; 12]) -> Gcm {
        let fixed = u32::from_le_bytes([nonce[0], nonce[1], nonce[2], nonce[3]]);
        let mut c = [0u8; 8];
        c.copy_from_slice(&nonce[4..]);
        Gcm {
            cipher: Aes128Gcm::new(key.into()),
            fixed,
            counter: u64::from_le_bytes(c),
        }
    }

    fn next_nonce(&mut self) -> [u8; 12] {
        let mut n = [0u8; 12];
        n[..4].copy_from_slice(&self.fixed.to_le_bytes());
        n[4..].copy_from_slice(&self.counter.to_le_bytes());
        self.counter = self.counter.wrapping_add(1);
        n
    }

    /// Encrypts `buf` in place and appends the tag.
    fn seal(&mut self, buf: &mut BytesMut, from: usize) {
        let nonce = self.next_nonce();
        let tag = self
            .cipher
            .encrypt_inout_detached(&Nonce::from(nonce), b"", (&mut buf[from..]).into())
            // Fails only for inputs beyond GCM's 64 GiB bound, far above any frame's.
            .unwrap_or_default();
        buf.put_slice(&tag);
    }

    /// Decrypts `ct ‖ tag` (the whole of `buf`) in place; the plaintext is `buf` minus the tag.
    fn open(&mut self, buf: &mut BytesMut) -> Result<(), FrameError> {
        let nonce = self.next_nonce();
        if buf.len() < TAG_LEN {
            return Err(FrameError::Decrypt);
        }
        let at = buf.len() - TAG_LEN;
        let tag = GcmTag::try_from(&buf[at..]).map_err(|_| FrameError::Decrypt)?;
        buf.truncate(at);
        self.cipher
            .decrypt_inout_detached(&Nonce::from(nonce), b"", (&mut buf[..]).into(), &tag)
            .map_err(|_| FrameError::Decrypt)
    }
}

/// Encodes frames in the current mode (crc until [`Encoder::secure`]).
#[derive(Debug, Default)]
pub struct Encoder {
    gcm: Option<Gcm>,
    /// The last preamble encoded: like messages (same tag, same segment lengths) have the
    /// same 32 bytes, CRC included, so a stream of them encodes and hashes it once.
    last_pre: Option<LastPreamble>,
}

/// A preamble's inputs and its encoding (see [`Encoder`]'s `last_pre`).
#[derive(Clone, Copy, Debug)]
struct LastPreamble {
    tag: Tag,
    lens: [usize; MAX_SEGMENTS],
    bytes: [u8; PREAMBLE_LEN],
    used: usize,
}

impl Encoder {
    /// The encoded preamble of a `tag` frame with segments of `lens` bytes, and how many
    /// segments it declares; the last one's bytes again when tag and lengths repeat.
    #[inline]
    fn preamble(&mut self, tag: Tag, lens: [usize; MAX_SEGMENTS]) -> ([u8; PREAMBLE_LEN], usize) {
        if let Some(last) = &self.last_pre {
            if last.tag == tag && last.lens == lens {
                return (last.bytes, last.used);
            }
        }
        let pre = Preamble::from_lens(tag, lens);
        let last = LastPreamble {
            tag,
            lens,
            bytes: pre.encode(),
            used: usize::from(pre.num_segments),
        };
        self.last_pre = Some(last);
        (last.bytes, last.used)
    }

    /// From now on, frames are sealed with `gcm`.
    pub fn secure(&mut self, gcm: Gcm) {
        self.gcm = Some(gcm);
    }

    /// Whether frames are sealed.
    pub fn is_secure(&self) -> bool {
        self.gcm.is_some()
    }

    /// Appends `frame`.
    pub fn encode(&mut self, frame: &Frame, out: &mut BytesMut) {
        let pre = Preamble::of(frame);
        match &mut self.gcm {
            None => {
                out.put_slice(&pre.encode());
                let s0 = frame.segment(0);
                out.put_slice(s0);
                out.put_u32_le(crc32c(u32::MAX, s0));
                if pre.num_segments > 1 {
                    let mut crcs = [0u32; 3];
                    for (i, crc) in crcs.iter_mut().enumerate() {
                        let s = frame.segment(i + 1);
                        out.put_slice(s);
                        // A used segment's CRC (0xffffffff when empty); unused ones are 0.
                        *crc = if i + 1 < usize::from(pre.num_segments) {
                            crc32c(u32::MAX, s)
                        } else {
                            0
                        };
                    }
                    out.put_u8(LATE_STATUS_COMPLETE);
                    for c in crcs {
                        out.put_u32_le(c);
                    }
                }
            }
            Some(gcm) => {
                let s0 = frame.segment(0);
                let start = out.len();
                out.put_slice(&pre.encode());
                let inline = s0.len().min(SECURE_INLINE);
                out.put_slice(&s0[..inline]);
                out.put_bytes(0, SECURE_INLINE - inline);
                gcm.seal(out, start);
                if s0.len() > SECURE_INLINE {
                    let start = out.len();
                    let rest = &s0[SECURE_INLINE..];
                    out.put_slice(rest);
                    out.put_bytes(0, pad16(rest.len()) - rest.len());
                    gcm.seal(out, start);
                }
                if pre.num_segments > 1 {
                    let start = out.len();
                    for i in 1..MAX_SEGMENTS {
                        let s = frame.segment(i);
                        out.put_slice(s);
                        out.put_bytes(0, pad16(s.len()) - s.len());
                    }
                    out.put_u8(LATE_STATUS_COMPLETE);
                    out.put_bytes(0, SECURE_EPILOGUE_LEN - 1);
                    gcm.seal(out, start);
                }
            }
        }
    }
}

impl Encoder {
    /// A MESSAGE frame made of `head` (`ceph_msg_header2`) and `segs` (front, middle, data),
    /// encoded as [`Encoder::encode_chained`] would encode the [`Frame`] of those segments,
    /// without building it (no allocation per message beyond the staging buffer's growth).
    /// `known` holds segment CRCs (seed `0xffffffff`) the caller already has: those segments
    /// are not hashed again (crc mode).
    pub fn encode_message(
        &mut self,
        head: &[u8],
        segs: [&Bytes; 3],
        known: [Option<u32>; 3],
        stage: &mut BytesMut,
        chain: &mut std::collections::VecDeque<Bytes>,
        copy_threshold: usize,
    ) {
        let lens = [head.len(), segs[0].len(), segs[1].len(), segs[2].len()];
        let (pre, used) = self.preamble(Tag::Message, lens);
        match &mut self.gcm {
            None => {
                let staged = if segs.iter().any(|s| s.len() >= copy_threshold) {
                    0
                } else {
                    lens[1] + lens[2] + lens[3] + CRC_EPILOGUE_LEN
                };
                // One reservation for what is staged; the puts below then only copy.
                stage.reserve(PREAMBLE_LEN + head.len() + 4 + staged);
                stage.put_slice(&pre);
                stage.put_slice(head);
                stage.put_u32_le(crc32c(u32::MAX, head));
                if used == 1 {
                    return;
                }
                // Late status, then the CRC of each used segment (0xffffffff when empty);
                // those of unused segments are 0.
                let mut epilogue = [0u8; CRC_EPILOGUE_LEN];
                epilogue[0] = LATE_STATUS_COMPLETE;
                for (i, (seg, known)) in segs.into_iter().zip(known).enumerate() {
                    if seg.len() >= copy_threshold {
                        if !stage.is_empty() {
                            chain.push_back(stage.split().freeze());
                        }
                        chain.push_back(seg.clone());
                    } else if !seg.is_empty() {
                        stage.put_slice(seg);
                    }
                    if i + 1 < used {
                        let crc = known.unwrap_or_else(|| segment_crc(u32::MAX, seg));
                        if let Some(at) = epilogue.get_mut(1 + 4 * i..5 + 4 * i) {
                            at.copy_from_slice(&crc.to_le_bytes());
                        }
                    }
                }
                stage.put_slice(&epilogue);
            }
            Some(gcm) => {
                let start = stage.len();
                stage.put_slice(&pre);
                let inline = head.len().min(SECURE_INLINE);
                stage.put_slice(&head[..inline]);
                stage.put_bytes(0, SECURE_INLINE - inline);
                gcm.seal(stage, start);
                if head.len() > SECURE_INLINE {
                    let start = stage.len();
                    let rest = &head[SECURE_INLINE..];
                    stage.put_slice(rest);
                    stage.put_bytes(0, pad16(rest.len()) - rest.len());
                    gcm.seal(stage, start);
                }
                if used > 1 {
                    let start = stage.len();
                    let total: usize = segs.iter().map(|s| pad16(s.len())).sum();
                    stage.reserve(total + SECURE_EPILOGUE_LEN + TAG_LEN);
                    for seg in segs {
                        stage.put_slice(seg);
                        stage.put_bytes(0, pad16(seg.len()) - seg.len());
                    }
                    stage.put_u8(LATE_STATUS_COMPLETE);
                    stage.put_bytes(0, SECURE_EPILOGUE_LEN - 1);
                    gcm.seal(stage, start);
                }
            }
        }
    }

    /// [`Encoder::encode`] for a writer that sends a chain of buffers: in crc mode, segments of
    /// at least `copy_threshold` bytes go onto `chain` uncopied (what `stage` holds so far is
    /// frozen onto the chain before each); the rest is staged. In secure mode the whole frame
    /// is sealed into `stage` (ciphertext is new bytes anyway).
    pub fn encode_chained(
        &mut self,
        frame: &Frame,
        stage: &mut BytesMut,
        chain: &mut std::collections::VecDeque<Bytes>,
        copy_threshold: usize,
    ) {
        let pre = Preamble::of(frame);
        if self.gcm.is_some() || pre.num_segments == 1 {
            self.encode(frame, stage);
            return;
        }
        stage.put_slice(&pre.encode());
        let s0 = frame.segment(0);
        stage.put_slice(s0);
        stage.put_u32_le(crc32c(u32::MAX, s0));
        let mut crcs = [0u32; 3];
        for (i, crc) in crcs.iter_mut().enumerate() {
            let seg = frame.segments.get(i + 1);
            let s = seg.map_or(&[][..], |b| &b[..]);
            match seg {
                Some(b) if b.len() >= copy_threshold => {
                    if !stage.is_empty() {
                        chain.push_back(stage.split().freeze());
                    }
                    chain.push_back(b.clone());
                }
                _ => stage.put_slice(s),
            }
            *crc = if i + 1 < usize::from(pre.num_segments) {
                crc32c(u32::MAX, s)
            } else {
                0
            };
        }
        stage.put_u8(LATE_STATUS_COMPLETE);
        for c in crcs {
            stage.put_u32_le(c);
        }
    }
}

/// Decodes a stream of frames (after the banner), in the current mode.
///
/// A crc-mode frame is taken whole before its CRCs are checked, so after a
/// [`FrameError::SegmentCrc`] the stream stands at the next frame. Its segments are hashed
/// as their bytes arrive (each byte once, by the call after the read that brought it, while
/// it is still in the cache), not all at once when the frame is complete. With
/// [`Decoder::keep_damaged`] (for tools that show damaged streams, `msgr dump --continue`)
/// such a frame is returned anyway and [`Decoder::take_damage`] names its first bad segment.
#[derive(Debug)]
pub struct Decoder {
    limits: FrameLimits,
    gcm: Option<Gcm>,
    /// Secure mode: a head already decrypted (its nonce used), waiting for the rest.
    head: Option<(Preamble, BytesMut)>,
    /// crc mode: the frame whose preamble was read, its segments hashed so far.
    rx: Option<CrcRx>,
    /// Return crc-mode frames whose segment CRCs fail, with the failure in `damage`.
    keep_damaged: bool,
    /// The segment CRC failure of the frame just returned (with `keep_damaged`).
    damage: Option<FrameError>,
    /// The last preamble that passed its checks, its 32 bytes and what they say. A stream of
    /// like messages repeats the same preamble (same tag, same segment lengths): bytes
    /// equal to these are known good without hashing and bounding them again.
    /// Two: MESSAGE frames and the others (ACKs between messages) each keep theirs.
    last_pre: [Option<([u8; PREAMBLE_LEN], Preamble)>; 2],
    /// crc mode: copy a whole frame's small segments out (see
    /// [`Decoder::copy_small_payloads`]).
    copy_small: bool,
    /// Grow the buffer for a frame that does not fit (`true`, the default), or leave that
    /// to the caller ([`Decoder::leave_reserving_to_caller`]).
    reserves: bool,
}

/// A crc-mode frame being received: its preamble and the CRCs of the segment bytes that
/// have arrived (segment `seg`, `done` bytes of it so far, into `crc`).
#[derive(Clone, Copy, Debug)]
struct CrcRx {
    pre: Preamble,
    seg: usize,
    done: usize,
    crc: u32,
    crcs: [u32; MAX_SEGMENTS],
}

impl CrcRx {
    fn new(pre: Preamble) -> CrcRx {
        CrcRx {
            pre,
            seg: 0,
            done: 0,
            crc: u32::MAX,
            crcs: [0; MAX_SEGMENTS],
        }
    }

    /// Hashes the segment bytes `frame` (the frame from its preamble on, as much as has
    /// arrived) holds past those already hashed.
    fn fold(&mut self, frame: &[u8]) {
        let used = usize::from(self.pre.num_segments).min(MAX_SEGMENTS);
        while self.seg < used {
            let start = self.pre.crc_offset(self.seg);
            let len = self.pre.len(self.seg);
            let have = frame.len().saturating_sub(start).min(len);
            if have > self.done {
                if let Some(new) = frame.get(start + self.done..start + have) {
                    self.crc = crc32c(self.crc, new);
                }
                self.done = have;
            }
            if self.done < len {
                return;
            }
            if let Some(c) = self.crcs.get_mut(self.seg) {
                *c = self.crc;
            }
            self.seg += 1;
            self.done = 0;
            self.crc = u32::MAX;
        }
    }

    /// The CRC of segment `i` (all of it, `seg`), hashing only what [`CrcRx::fold`] did not.
    fn crc_of(&self, i: usize, seg: &[u8]) -> u32 {
        match i.cmp(&self.seg) {
            std::cmp::Ordering::Less => self.crcs.get(i).copied().unwrap_or(0),
            std::cmp::Ordering::Equal => {
                segment_crc(self.crc, seg.get(self.done..).unwrap_or_default())
            }
            std::cmp::Ordering::Greater => segment_crc(u32::MAX, seg),
        }
    }
}

/// The next `len` bytes of `buf`; an empty segment shares nothing.
#[inline]
fn take_segment(buf: &mut BytesMut, len: usize) -> Bytes {
    if len == 0 {
        Bytes::new()
    } else {
        buf.split_to(len).freeze()
    }
}

impl Decoder {
    /// A crc-mode decoder.
    pub fn new(limits: FrameLimits) -> Decoder {
        Decoder {
            limits,
            gcm: None,
            head: None,
            rx: None,
            keep_damaged: false,
            copy_small: false,
            reserves: true,
            damage: None,
            last_pre: [None, None],
        }
    }

    /// The preamble `raw`, checked (CRC, segment count, bounds) unless it repeats the last
    /// one that passed.
    #[inline]
    fn preamble(&mut self, raw: &[u8; PREAMBLE_LEN]) -> Result<Preamble, FrameError> {
        let slot = usize::from(raw[0] == Tag::Message as u8);
        if let Some(Some((last, pre))) = self.last_pre.get(slot) {
            if last == raw {
                return Ok(*pre);
            }
        }
        let pre = Preamble::decode(raw, &self.limits)?;
        if let Some(memo) = self.last_pre.get_mut(slot) {
            *memo = Some((*raw, pre));
        }
        Ok(pre)
    }

    /// From now on, a crc-mode frame whose segment CRCs fail is returned like a good one;
    /// [`Decoder::take_damage`] says which segment failed. The preamble's CRC is still
    /// checked (the lengths depend on it), and secure frames are still authenticated.
    pub fn keep_damaged(&mut self) {
        self.keep_damaged = true;
    }

    /// Whether crc mode copies the segments past segment 0 of a frame already whole in the
    /// buffer out of it when they hold at most [`SMALL_PAYLOAD`] bytes (`true`), or shares
    /// the buffer (`false`, the default), as v1's `FrameDecoder::copy_small_payloads` says.
    pub fn copy_small_payloads(&mut self, on: bool) {
        self.copy_small = on;
    }

    /// Leaves growing the buffer for a frame that does not fit to the caller, who reserves
    /// [`Decoder::pending_len`] bytes (a session's reader takes the room from the buffers it
    /// keeps for reuse, where a buffer grown here is a fresh allocation each time, its pages
    /// faulted in by the next read).
    pub fn leave_reserving_to_caller(&mut self) {
        self.reserves = false;
    }

    /// The bytes the buffer must hold, from its start, for the frame being received to be
    /// whole: `None` when no frame is under way (its preamble, or in secure mode its head,
    /// has not been decoded).
    pub fn pending_len(&self) -> Option<usize> {
        match (&self.rx, &self.head) {
            (Some(rx), _) => Some(PREAMBLE_LEN + rx.pre.crc_rest()),
            (None, Some((pre, _))) => Some(pre.secure_rest()),
            (None, None) => None,
        }
    }

    /// The segment CRC failure ([`FrameError::SegmentCrc`]) of the frame `decode` returned
    /// last, if it had one (only with [`Decoder::keep_damaged`]); cleared by the call.
    pub fn take_damage(&mut self) -> Option<FrameError> {
        self.damage.take()
    }

    /// From now on, frames are opened with `gcm`.
    pub fn secure(&mut self, gcm: Gcm) {
        self.gcm = Some(gcm);
    }

    /// Takes the next frame from the front of `buf` once it is all there.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        Ok(self.decode_parts(buf)?.map(Parts::into_frame))
    }

    /// [`Decoder::decode_parts`] handing the frame to `f` as its tag, segment 0 and segments
    /// 1 to 3 (moved out). A crc-mode frame already whole in `buf` goes straight to `f`, with
    /// no [`Parts`] built and moved (see [`Decoder::decode_into`]).
    #[inline]
    pub fn decode_with<T>(
        &mut self,
        buf: &mut BytesMut,
        f: impl FnOnce(Tag, &[u8], [Bytes; MAX_SEGMENTS - 1]) -> T,
    ) -> Result<Option<T>, FrameError> {
        self.decode_into(buf, WithFn(f, std::marker::PhantomData))
    }

    /// The next frame of `buf` made into `f`'s item ([`Frames`]): the session phase's path.
    /// A crc-mode frame already whole in `buf` with a short segment 0 (a message's header)
    /// is checked over the buffer's bytes at fixed offsets and handed to `f` without a
    /// [`Parts`] in between, and `f` builds its item in this function's result: a result
    /// converted on its way out (an item wrapped in `Some`, then in `Ok`) copied a ~200-byte
    /// message once per layer. Other frames go through [`Decoder::decode_parts`].
    #[inline]
    pub fn decode_into<F: Frames>(
        &mut self,
        buf: &mut BytesMut,
        f: F,
    ) -> Result<Option<F::Item>, F::Error> {
        if self.gcm.is_none() && self.rx.is_none() {
            let Some(raw) = buf.first_chunk::<PREAMBLE_LEN>() else {
                return Ok(None);
            };
            let pre = self.preamble(raw)?;
            if pre.len(0) <= INLINE_HEAD && buf.len() >= PREAMBLE_LEN + pre.crc_rest() {
                self.damage = None;
                return self.take_small(buf, pre, f);
            }
        }
        match self.decode_parts(buf)? {
            Some(p) => p.with(|tag, seg0, payload| f.frame(tag, seg0, payload)),
            None => Ok(None),
        }
    }

    /// [`Decoder::decode`] without building a [`Frame`]: the segments in an array, no
    /// allocation per frame.
    pub fn decode_parts(&mut self, buf: &mut BytesMut) -> Result<Option<Parts>, FrameError> {
        self.damage = None;
        if self.gcm.is_none() {
            return self.decode_crc(buf);
        }
        self.decode_secure(buf)
    }

    fn decode_crc(&mut self, buf: &mut BytesMut) -> Result<Option<Parts>, FrameError> {
        let rx = match &mut self.rx {
            Some(rx) => rx,
            None => {
                let Some(raw) = buf.first_chunk::<PREAMBLE_LEN>() else {
                    return Ok(None);
                };
                let pre = self.preamble(raw)?;
                if buf.len() >= PREAMBLE_LEN + pre.crc_rest() {
                    // Already whole (small frames, most of a batch): hashed in one go.
                    return self.take_crc(buf, CrcRx::new(pre)).map(Some);
                }
                self.rx.insert(CrcRx::new(pre))
            }
        };
        let whole = PREAMBLE_LEN + rx.pre.crc_rest();
        if buf.len() < whole {
            // Part of the frame: what arrived is hashed now, while it is in the cache.
            rx.fold(buf);
            if self.reserves {
                buf.reserve(whole - buf.len());
            }
            return Ok(None);
        }
        let Some(rx) = self.rx.take() else {
            return Ok(None);
        };
        self.take_crc(buf, rx).map(Some)
    }

    /// Takes the whole crc-mode frame of `rx` (at the front of `buf`) and checks its CRCs,
    /// hashing what `rx` has not hashed yet.
    fn take_crc(&mut self, buf: &mut BytesMut, rx: CrcRx) -> Result<Parts, FrameError> {
        let pre = rx.pre;
        // Checked by Preamble::decode already.
        let tag = Tag::from_byte(pre.tag).ok_or(FrameError::UnknownTag(pre.tag))?;
        let len0 = pre.len(0);
        // The whole frame is taken before any CRC is judged: an error leaves the stream at
        // the next frame.
        buf.advance(PREAMBLE_LEN);
        let mut s0 = Bytes::new();
        let mut inline = None;
        let crc0 = if len0 <= INLINE_HEAD {
            let mut head = [0u8; INLINE_HEAD];
            let from = buf.get(..len0).unwrap_or_default();
            if let Some(to) = head.get_mut(..from.len()) {
                to.copy_from_slice(from);
            }
            let crc = rx.crc_of(0, from);
            buf.advance(len0);
            inline = Some((head, len0));
            crc
        } else {
            s0 = take_segment(buf, len0);
            rx.crc_of(0, &s0)
        };
        let bad0 = buf.get_u32_le() != crc0;
        let [front, middle, data] = self.take_rest(buf, &pre, &rx, bad0)?;
        Ok(Parts {
            tag,
            count: usize::from(pre.num_segments),
            inline,
            segments: [s0, front, middle, data],
        })
    }

    /// The session phase's common case: a crc-mode frame whose bytes are all in `buf`, with
    /// a short segment 0 (a message's header), none of it hashed yet. Segment 0 and its CRC
    /// are read at their fixed offsets, checked, and handed to `f` with segments 1 to 3.
    #[inline(always)]
    fn take_small<F: Frames>(
        &mut self,
        buf: &mut BytesMut,
        pre: Preamble,
        f: F,
    ) -> Result<Option<F::Item>, F::Error> {
        // Checked by Preamble::decode already.
        let tag = Tag::from_byte(pre.tag).ok_or(FrameError::UnknownTag(pre.tag))?;
        let len0 = pre.len(0).min(INLINE_HEAD);
        let end0 = PREAMBLE_LEN + len0;
        // Segment 0 is copied out (the buffer is split below): a whole `INLINE_HEAD` bytes
        // when the buffer has them (a copy of a known length, inlined: a copy of segment 0's
        // own length was a `memcpy` call of about 30 instructions per message), else its own.
        let mut head = [0u8; INLINE_HEAD];
        match buf
            .get(PREAMBLE_LEN..)
            .and_then(|b| b.first_chunk::<INLINE_HEAD>())
        {
            Some(from) => head = *from,
            None => {
                if let (Some(to), Some(from)) = (head.get_mut(..len0), buf.get(PREAMBLE_LEN..end0))
                {
                    to.copy_from_slice(from);
                }
            }
        }
        let sent0 = buf
            .get(end0..)
            .and_then(|b| b.first_chunk::<4>())
            .map_or(0, |c| u32::from_le_bytes(*c));
        let head = head.get(..len0).unwrap_or_default();
        let bad0 = sent0 != segment_crc(u32::MAX, head);
        let payload = self.take_whole_rest(buf, &pre, end0 + 4, bad0)?;
        f.frame(tag, head, payload)
    }

    /// [`Decoder::take_small`]'s segments 1 to 3 and epilogue: `buf` holds the whole frame,
    /// segment 1 at `at`. Every CRC is computed over the buffer's bytes, then the frame is
    /// taken whole (so after an error the stream stands at the next frame), then judged, as
    /// [`Decoder::take_rest`] judges. Taken as v1's decoder takes a message: one split for the
    /// frame, its segments sliced out of that (the last used one is the rest of it), one
    /// advance for nothing but a frame without segments past 0; not a split and an advance
    /// of the buffer per segment (about 70 instructions more per message). Segments of at
    /// most [`SMALL_PAYLOAD`] bytes in all are copied out instead when the decoder is told to
    /// ([`Decoder::copy_small_payloads`]).
    #[inline(always)]
    fn take_whole_rest(
        &mut self,
        buf: &mut BytesMut,
        pre: &Preamble,
        at: usize,
        bad0: bool,
    ) -> Result<[Bytes; MAX_SEGMENTS - 1], FrameError> {
        let mut bad = bad0.then_some(0);
        let mut rest: [Bytes; MAX_SEGMENTS - 1] = Default::default();
        if pre.num_segments <= 1 {
            buf.advance(at);
        } else {
            let lens = [pre.len(1), pre.len(2), pre.len(3)];
            let payload = lens[0] + lens[1] + lens[2];
            let end = at + payload;
            let epilogue = buf
                .get(end..)
                .and_then(|b| b.first_chunk::<CRC_EPILOGUE_LEN>())
                .copied()
                .unwrap_or_default();
            let aborted = epilogue[0] & 0x0f != LATE_STATUS_COMPLETE & 0x0f;
            if !aborted {
                let used = usize::from(pre.num_segments) - 1;
                let mut from = at;
                for (i, len) in lens.into_iter().enumerate().take(used) {
                    let seg = buf.get(from..from + len).unwrap_or_default();
                    let sent = epilogue
                        .get(1 + 4 * i..)
                        .and_then(|b| b.first_chunk::<4>())
                        .map_or(0, |c| u32::from_le_bytes(*c));
                    if sent != segment_crc(u32::MAX, seg) {
                        bad = bad.or(Some(i + 1));
                    }
                    from += len;
                }
            }
            if payload == 0 || (self.copy_small && payload <= SMALL_PAYLOAD) {
                // Copied, not shared (see `SMALL_PAYLOAD`): the buffer stays unshared.
                let mut from = at;
                for (s, len) in rest.iter_mut().zip(lens) {
                    if len != 0 {
                        let seg = buf.get(from..from + len).unwrap_or_default();
                        *s = Bytes::copy_from_slice(seg);
                    }
                    from += len;
                }
                buf.advance((end + CRC_EPILOGUE_LEN).min(buf.len()));
            } else {
                let mut frame = buf.split_to(end + CRC_EPILOGUE_LEN);
                frame.truncate(end);
                let mut segs = frame.freeze();
                segs.advance(at);
                let last = lens.iter().rposition(|l| *l != 0).unwrap_or(0);
                for (i, (s, len)) in rest.iter_mut().zip(lens).enumerate() {
                    if i == last {
                        *s = std::mem::take(&mut segs);
                        break;
                    }
                    if len != 0 {
                        *s = segs.split_to(len);
                    }
                }
            }
            if aborted {
                return Err(FrameError::Aborted);
            }
        }
        if let Some(i) = bad {
            if !self.keep_damaged {
                return Err(FrameError::SegmentCrc(i));
            }
            self.damage = Some(FrameError::SegmentCrc(i));
        }
        Ok(rest)
    }

    /// Takes segments 1 to 3 and the epilogue of a crc-mode frame (`buf` stands after segment
    /// 0's CRC) and judges every CRC: `bad0` for segment 0's, the others hashed here but for
    /// what `rx` already hashed. The whole frame is taken first, so after an error the stream
    /// stands at the next frame.
    #[inline(always)]
    fn take_rest(
        &mut self,
        buf: &mut BytesMut,
        pre: &Preamble,
        rx: &CrcRx,
        bad0: bool,
    ) -> Result<[Bytes; MAX_SEGMENTS - 1], FrameError> {
        let used = usize::from(pre.num_segments);
        let mut bad = bad0.then_some(0);
        let mut rest: [Bytes; MAX_SEGMENTS - 1] = Default::default();
        if used > 1 {
            for (i, s) in rest.iter_mut().enumerate() {
                *s = take_segment(buf, pre.len(i + 1));
            }
            let mut epilogue = [0u8; CRC_EPILOGUE_LEN];
            if let Some(from) = buf.get(..CRC_EPILOGUE_LEN) {
                epilogue.copy_from_slice(from);
            }
            buf.advance(CRC_EPILOGUE_LEN);
            if epilogue[0] & 0x0f != LATE_STATUS_COMPLETE & 0x0f {
                return Err(FrameError::Aborted);
            }
            for (i, s) in rest.iter().enumerate().take(used - 1) {
                let at = 1 + 4 * i;
                let sent = u32::from_le_bytes([
                    epilogue[at],
                    epilogue[at + 1],
                    epilogue[at + 2],
                    epilogue[at + 3],
                ]);
                let crc = rx.crc_of(i + 1, s);
                if sent != crc {
                    bad = bad.or(Some(i + 1));
                }
            }
        }
        if let Some(i) = bad {
            if !self.keep_damaged {
                return Err(FrameError::SegmentCrc(i));
            }
            self.damage = Some(FrameError::SegmentCrc(i));
        }
        Ok(rest)
    }

    fn decode_secure(&mut self, buf: &mut BytesMut) -> Result<Option<Parts>, FrameError> {
        if self.head.is_none() {
            let Some(gcm) = self.gcm.as_mut() else {
                return Ok(None);
            };
            let head_len = PREAMBLE_LEN + SECURE_INLINE + TAG_LEN;
            if buf.len() < head_len {
                return Ok(None);
            }
            let mut head = buf.split_to(head_len);
            gcm.open(&mut head)?;
            let raw = *head
                .first_chunk::<PREAMBLE_LEN>()
                .ok_or(FrameError::PreambleCrc)?;
            // Authenticated, and checked as in crc mode (a repeated one is known good).
            let pre = self.preamble(&raw)?;
            head.advance(PREAMBLE_LEN);
            self.head = Some((pre, head));
        }
        let Some((pre, _)) = &self.head else {
            return Ok(None);
        };
        let rest = pre.secure_rest();
        if buf.len() < rest {
            if self.reserves {
                buf.reserve(rest - buf.len());
            }
            return Ok(None);
        }
        let (Some((pre, inline)), Some(gcm)) = (self.head.take(), self.gcm.as_mut()) else {
            return Ok(None);
        };
        let len0 = pre.len(0);
        let used = usize::from(pre.num_segments);
        let mut segments: [Bytes; MAX_SEGMENTS] = Default::default();
        let [first, others @ ..] = &mut segments;
        // A short segment 0 (a message's header) is held inline, as crc mode holds it: no
        // buffer allocated and freed per frame for it.
        let mut short = None;
        if len0 <= SECURE_INLINE.min(INLINE_HEAD) {
            let mut bytes = [0u8; INLINE_HEAD];
            if let (Some(to), Some(from)) = (bytes.get_mut(..len0), inline.get(..len0)) {
                to.copy_from_slice(from);
            }
            short = Some((bytes, len0));
        } else {
            let mut s0 = BytesMut::with_capacity(len0);
            s0.put_slice(&inline[..len0.min(SECURE_INLINE)]);
            if len0 > SECURE_INLINE {
                let mut more = buf.split_to(pad16(len0 - SECURE_INLINE) + TAG_LEN);
                gcm.open(&mut more)?;
                s0.put_slice(&more[..len0 - SECURE_INLINE]);
            }
            *first = s0.freeze();
        }
        if used > 1 {
            let n = pad16(pre.len(1)) + pad16(pre.len(2)) + pad16(pre.len(3));
            let mut tail = buf.split_to(n + SECURE_EPILOGUE_LEN + TAG_LEN);
            gcm.open(&mut tail)?;
            let late = tail[n];
            if late & 0x0f != LATE_STATUS_COMPLETE & 0x0f {
                return Err(FrameError::Aborted);
            }
            let mut tail = tail.freeze();
            for (i, s) in others.iter_mut().enumerate().take(used - 1) {
                let len = pre.len(i + 1);
                let padded = tail.split_to(pad16(len));
                *s = padded.slice(..len);
            }
        }
        Ok(Some(Parts {
            tag: Tag::from_byte(pre.tag).ok_or(FrameError::UnknownTag(pre.tag))?,
            count: used,
            inline: short,
            segments,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames() -> Vec<Frame> {
        vec![
            Frame::control(Tag::Hello, Bytes::from_static(b"\x08hello")),
            Frame::control(Tag::Wait, Bytes::new()),
            Frame::control(Tag::AuthRequest, Bytes::from(vec![7u8; 100])),
            Frame {
                tag: Tag::Message,
                segments: vec![
                    Bytes::from(vec![1u8; 41]),
                    Bytes::from(vec![2u8; 5]),
                    Bytes::new(),
                    Bytes::from(vec![3u8; 5000]),
                ],
            },
            Frame {
                tag: Tag::Message,
                segments: vec![Bytes::from(vec![1u8; 41]), Bytes::from(vec![9u8; 17])],
            },
            // Every other shape of a small message: one used segment past 0 that is not the
            // first, empty ones between used ones, all three used.
            Frame {
                tag: Tag::Message,
                segments: vec![
                    Bytes::from(vec![1u8; 41]),
                    Bytes::new(),
                    Bytes::from(vec![4u8; 3]),
                ],
            },
            Frame {
                tag: Tag::Message,
                segments: vec![
                    Bytes::from(vec![1u8; 41]),
                    Bytes::new(),
                    Bytes::new(),
                    Bytes::from(vec![5u8; 9]),
                ],
            },
            Frame {
                tag: Tag::Message,
                segments: vec![
                    Bytes::from(vec![1u8; 41]),
                    Bytes::from(vec![6u8; 2]),
                    Bytes::from(vec![7u8; 3]),
                    Bytes::from(vec![8u8; 4]),
                ],
            },
        ]
    }

    /// A MESSAGE frame encoded from its parts is the same bytes as the frame's encoding.
    #[test]
    fn encode_message_is_the_frame_encoding() {
        for secure in [false, true] {
            let (mut a, mut b) = (Encoder::default(), Encoder::default());
            if secure {
                a.secure(Gcm::new(&[5; 16], &[1; 12]));
                b.secure(Gcm::new(&[5; 16], &[1; 12]));
            }
            // Repeats and returns too: the encoder reuses the last preamble only while tag
            // and lengths stay the same.
            for (front, middle, data) in [
                (5usize, 0usize, 5000usize),
                (0, 0, 0),
                (17, 3, 0),
                (17, 3, 0),
                (100, 0, 20_000),
                (17, 3, 0),
                (17, 0, 0),
                (5, 0, 5000),
            ] {
                let head = Bytes::from(vec![1u8; 41]);
                let segs = [
                    Bytes::from(vec![2u8; front]),
                    Bytes::from(vec![3u8; middle]),
                    Bytes::from(vec![4u8; data]),
                ];
                let frame = Frame {
                    tag: Tag::Message,
                    segments: vec![
                        head.clone(),
                        segs[0].clone(),
                        segs[1].clone(),
                        segs[2].clone(),
                    ],
                };
                let mut flat = BytesMut::new();
                a.encode(&frame, &mut flat);
                let (mut stage, mut chain) = (BytesMut::new(), std::collections::VecDeque::new());
                b.encode_message(
                    &head,
                    [&segs[0], &segs[1], &segs[2]],
                    [None; 3],
                    &mut stage,
                    &mut chain,
                    1000,
                );
                chain.push_back(stage.split().freeze());
                let joined: Vec<u8> = chain.iter().flat_map(|c| c.iter().copied()).collect();
                assert_eq!(
                    joined,
                    flat.to_vec(),
                    "secure {secure} {front}/{middle}/{data}"
                );
            }
        }
    }

    /// The chained encoding is the same bytes as the flat one, in both modes.
    #[test]
    fn chained_encoding_is_the_flat_encoding() {
        for secure in [false, true] {
            let (mut a, mut b) = (Encoder::default(), Encoder::default());
            if secure {
                a.secure(Gcm::new(&[5; 16], &[1; 12]));
                b.secure(Gcm::new(&[5; 16], &[1; 12]));
            }
            let (mut flat, mut stage) = (BytesMut::new(), BytesMut::new());
            let mut chain = std::collections::VecDeque::new();
            for f in frames() {
                a.encode(&f, &mut flat);
                b.encode_chained(&f, &mut stage, &mut chain, 1000);
            }
            chain.push_back(stage.split().freeze());
            let joined: Vec<u8> = chain.iter().flat_map(|c| c.iter().copied()).collect();
            assert_eq!(joined, flat.to_vec(), "secure {secure}");
            // The 5,000-byte data segment went out uncopied in crc mode.
            assert_eq!(chain.iter().any(|c| c.len() == 5000), !secure);
        }
    }

    fn roundtrip(secure: bool) {
        let mut enc = Encoder::default();
        let mut dec = Decoder::new(FrameLimits::default());
        if secure {
            enc.secure(Gcm::new(&[5; 16], &[1; 12]));
            dec.secure(Gcm::new(&[5; 16], &[1; 12]));
        }
        let mut wire = BytesMut::new();
        for f in frames() {
            enc.encode(&f, &mut wire);
        }
        // Fed one byte at a time: every frame comes out whole, once.
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for b in wire.iter() {
            buf.put_u8(*b);
            while let Some(f) = dec.decode(&mut buf).expect("valid") {
                got.push(f);
            }
        }
        assert!(buf.is_empty());
        let want: Vec<Frame> = frames()
            .into_iter()
            .map(|mut f| {
                while f.segments.len() > 1 && f.segments.last().is_some_and(|s| s.is_empty()) {
                    f.segments.pop();
                }
                f
            })
            .collect();
        assert_eq!(got, want);
    }

    /// Told to, crc mode copies the segments of a whole frame's small payload out of the
    /// buffer (each then owns its bytes); a larger payload shares the buffer, as every payload
    /// does by default. Each decodes to the frame sent, across the boundary.
    #[test]
    fn small_payloads_are_copied_when_asked() {
        // (front, middle, data) lengths.
        let shapes = [
            (16, 0, 48),
            (5, 2, SMALL_PAYLOAD - 7),
            (5, 2, SMALL_PAYLOAD - 6),
            (0, 0, SMALL_PAYLOAD),
            (16, 3, 4096),
        ];
        for copy in [false, true] {
            for (f, m, d) in shapes {
                let sent = [vec![1u8; 41], vec![2u8; f], vec![3u8; m], vec![4u8; d]];
                let frame = Frame {
                    tag: Tag::Message,
                    segments: sent.iter().cloned().map(Bytes::from).collect(),
                };
                let mut buf = BytesMut::with_capacity(8192);
                Encoder::default().encode(&frame, &mut buf);
                let mut dec = Decoder::new(FrameLimits::default());
                dec.copy_small_payloads(copy);
                // The session's path (`decode_into`): a frame already whole in the buffer.
                let (tag, s0, rest) = dec
                    .decode_with(&mut buf, |tag, s0, rest| (tag, s0.to_vec(), rest))
                    .expect("valid")
                    .expect("whole");
                assert!(buf.is_empty());
                let at = format!("copy {copy}, segments {f} {m} {d}");
                assert_eq!((tag, &s0), (Tag::Message, &sent[0]), "{at}");
                let owned = copy && f + m + d <= SMALL_PAYLOAD;
                for (i, got) in rest.iter().enumerate() {
                    assert_eq!(&got[..], &sent[i + 1][..], "{at}: segment {}", i + 1);
                    if !got.is_empty() {
                        assert_eq!(got.is_unique(), owned, "{at}: segment {}", i + 1);
                    }
                }
            }
        }
    }

    /// Left to its caller, the decoder does not grow the buffer for a frame that does not
    /// fit: it says how many bytes the buffer must hold (from its start) for the frame to be
    /// whole, and decodes it once the caller made that room and the bytes came; by default
    /// it grows the buffer itself. Both modes.
    #[test]
    fn a_frame_that_does_not_fit_is_reserved_by_the_caller_when_asked() {
        for secure in [false, true] {
            for caller_reserves in [false, true] {
                let (mut enc, mut dec) = (Encoder::default(), Decoder::new(FrameLimits::default()));
                if secure {
                    enc.secure(Gcm::new(&[5; 16], &[1; 12]));
                    dec.secure(Gcm::new(&[5; 16], &[1; 12]));
                }
                if caller_reserves {
                    dec.leave_reserving_to_caller();
                }
                let frame = Frame {
                    tag: Tag::Message,
                    segments: [vec![1u8; 41], vec![2u8; 16], vec![], vec![4u8; 4096]]
                        .into_iter()
                        .map(Bytes::from)
                        .collect(),
                };
                let mut wire = BytesMut::new();
                enc.encode(&frame, &mut wire);
                let at = format!("secure {secure}, caller reserves {caller_reserves}");
                assert_eq!(dec.pending_len(), None, "{at}");
                let first = 200;
                let mut buf = BytesMut::with_capacity(first);
                buf.put_slice(&wire[..first]);
                assert!(dec.decode(&mut buf).expect("valid").is_none(), "{at}");
                // What the decoder took off the front (secure mode's decrypted head).
                let taken = first - buf.len();
                let want = wire.len() - taken;
                assert_eq!(dec.pending_len(), Some(want), "{at}");
                if caller_reserves {
                    assert!(buf.capacity() < want, "{at}: the decoder grew the buffer");
                    buf.reserve(want - buf.len());
                } else {
                    assert!(buf.capacity() >= want, "{at}: the buffer was not grown");
                }
                let room = buf.capacity();
                buf.put_slice(&wire[first..]);
                assert_eq!(
                    buf.capacity(),
                    room,
                    "{at}: the room reserved held the frame"
                );
                let got = dec.decode(&mut buf).expect("valid").expect("whole");
                assert_eq!(got.segments[3], frame.segments[3], "{at}");
                assert_eq!(dec.pending_len(), None, "{at}");
                assert!(buf.is_empty(), "{at}");
            }
        }
    }

    #[test]
    fn crc_mode_round_trips_byte_by_byte() {
        roundtrip(false);
    }

    #[test]
    fn secure_mode_round_trips_byte_by_byte() {
        roundtrip(true);
    }

    /// A large crc-mode frame fed in reads of any size is hashed as its bytes arrive: it
    /// comes out whole once, and a bit flipped in any read of any segment is still caught,
    /// with the segment named.
    #[test]
    fn segments_hashed_as_they_arrive_catch_a_flip_in_any_read() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7) as u8).collect();
        let frame = Frame {
            tag: Tag::Message,
            segments: vec![
                Bytes::from(vec![1u8; 41]),
                Bytes::from(vec![2u8; 3000]),
                Bytes::new(),
                Bytes::from(data),
            ],
        };
        let mut wire = BytesMut::new();
        Encoder::default().encode(&frame, &mut wire);
        let data_at = PREAMBLE_LEN + 41 + 4 + 3000;
        let flips = [
            (None, None),
            (Some(PREAMBLE_LEN + 40), Some(0)),
            (Some(PREAMBLE_LEN + 41 + 4 + 1500), Some(1)),
            (Some(data_at), Some(3)),
            (Some(data_at + 65_536), Some(3)),
            (Some(data_at + 99_999), Some(3)),
        ];
        for chunk in [1usize, 13, 4096, 65_536, 1 << 20] {
            for (at, segment) in flips {
                let mut bytes = wire.clone();
                if let Some(at) = at {
                    bytes[at] ^= 0x40;
                }
                let mut dec = Decoder::new(FrameLimits::default());
                let mut buf = BytesMut::new();
                let mut got = Vec::new();
                for piece in bytes.chunks(chunk) {
                    buf.extend_from_slice(piece);
                    match dec.decode_parts(&mut buf) {
                        Ok(Some(p)) => got.push(Ok(p.into_frame())),
                        Ok(None) => {}
                        Err(e) => got.push(Err(e)),
                    }
                }
                let want = match segment {
                    None => Ok(frame.clone()),
                    Some(i) => Err(FrameError::SegmentCrc(i)),
                };
                assert_eq!(got, vec![want], "chunk {chunk}, flip {at:?}");
                assert!(buf.is_empty(), "chunk {chunk}, flip {at:?}");
            }
        }
    }

    /// The decoder skips the checks of a preamble equal to the last good one (a stream of
    /// like messages), and only of such a one: a changed preamble is checked again (a flip
    /// anywhere in it fails its CRC), a repeated one still has its segments' CRCs checked,
    /// and a message after an ACK or a frame of other lengths decodes to its own lengths.
    #[test]
    fn a_repeated_preamble_is_reused_and_nothing_else() {
        let msg = |front: usize, fill: u8| Frame {
            tag: Tag::Message,
            segments: vec![Bytes::from(vec![fill; 41]), Bytes::from(vec![fill; front])],
        };
        let ack = Frame::control(Tag::Ack, Bytes::from(vec![7u8; 8]));
        let mut enc = Encoder::default();
        let wire = |enc: &mut Encoder, f: &Frame| {
            let mut b = BytesMut::new();
            enc.encode(f, &mut b);
            b
        };
        let mut dec = Decoder::new(FrameLimits::default());
        for f in [
            msg(64, 1),
            msg(64, 2),
            ack.clone(),
            msg(64, 3),
            msg(65, 4),
            msg(64, 5),
        ] {
            let mut b = wire(&mut enc, &f);
            assert_eq!(dec.decode(&mut b), Ok(Some(f)));
            assert!(b.is_empty());
        }
        // The decoder now holds msg(64, _)'s preamble. Every bit of a copy of it flipped:
        // never taken for the one it knows.
        for bit in 0..PREAMBLE_LEN * 8 {
            let mut b = wire(&mut enc, &msg(64, 6));
            b[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(
                dec.decode(&mut b),
                Err(FrameError::PreambleCrc),
                "bit {bit}"
            );
        }
        // A repeated preamble before a damaged header and a damaged front.
        for (at, seg) in [(PREAMBLE_LEN + 3, 0), (PREAMBLE_LEN + 41 + 4 + 10, 1)] {
            let mut b = wire(&mut enc, &msg(64, 7));
            b[at] ^= 0x08;
            assert_eq!(dec.decode(&mut b), Err(FrameError::SegmentCrc(seg)));
            assert!(b.is_empty(), "the damaged frame is consumed");
        }
        let mut b = wire(&mut enc, &msg(64, 8));
        assert_eq!(dec.decode(&mut b), Ok(Some(msg(64, 8))));
    }

    /// `decode_with` (the session phase's path: a small frame already whole goes straight to
    /// the closure) gives what `decode_parts` gives, frame for frame and error for error, in
    /// both modes: whole streams, byte by byte, and with a bit flipped in each place of a
    /// message frame (preamble, header, header CRC, front, epilogue).
    #[test]
    fn decode_with_agrees_with_decode_parts() {
        type Got = Result<Option<(Tag, Vec<u8>, Vec<Vec<u8>>)>, FrameError>;
        let with = |dec: &mut Decoder, buf: &mut BytesMut| -> Got {
            dec.decode_with(buf, |tag, s0, rest| {
                (tag, s0.to_vec(), rest.iter().map(|b| b.to_vec()).collect())
            })
        };
        let parts = |dec: &mut Decoder, buf: &mut BytesMut| -> Got {
            dec.decode_parts(buf).map(|p| {
                p.map(|p| {
                    p.with(|tag, s0, rest| {
                        (tag, s0.to_vec(), rest.iter().map(|b| b.to_vec()).collect())
                    })
                })
            })
        };
        let mut frames = frames();
        frames.push(Frame {
            tag: Tag::Message,
            segments: vec![Bytes::from(vec![1u8; 41]), Bytes::from(vec![9u8; 64])],
        });
        for secure in [false, true] {
            let mut wire = BytesMut::new();
            let mut enc = Encoder::default();
            if secure {
                enc.secure(Gcm::new(&[5; 16], &[1; 12]));
            }
            for f in &frames {
                enc.encode(f, &mut wire);
            }
            // The last frame: preamble 32, header 41 and its CRC 4, front 64, epilogue 13 (late
            // status at 141, the front's CRC at 142..146; the unused segments' are not judged).
            let last = frames.last().map(|f| {
                let mut b = BytesMut::new();
                Encoder::default().encode(f, &mut b);
                b.len()
            });
            for step in [wire.len(), 1, 7] {
                // None: the stream as sent; Some(at): byte `at` of the last frame flipped.
                let flips: Vec<Option<usize>> = match (secure, last) {
                    (false, Some(_)) => std::iter::once(None)
                        .chain([0, 31, 32, 72, 73, 76, 77, 140, 142, 144].map(Some))
                        .collect(),
                    _ => vec![None],
                };
                for flip in flips {
                    let mut bytes = wire.clone();
                    if let (Some(at), Some(n)) = (flip, last) {
                        let i = bytes.len() - n + at;
                        bytes[i] ^= 0x20;
                    }
                    let mk = || {
                        let mut d = Decoder::new(FrameLimits::default());
                        if secure {
                            d.secure(Gcm::new(&[5; 16], &[1; 12]));
                        }
                        d
                    };
                    let (mut a, mut b) = (mk(), mk());
                    let (mut buf_a, mut buf_b) = (BytesMut::new(), BytesMut::new());
                    let (mut got_a, mut got_b) = (Vec::new(), Vec::new());
                    for piece in bytes.chunks(step) {
                        buf_a.extend_from_slice(piece);
                        buf_b.extend_from_slice(piece);
                        loop {
                            let r = with(&mut a, &mut buf_a);
                            let stop = !matches!(r, Ok(Some(_)));
                            got_a.push(r);
                            if stop {
                                break;
                            }
                        }
                        loop {
                            let r = parts(&mut b, &mut buf_b);
                            let stop = !matches!(r, Ok(Some(_)));
                            got_b.push(r);
                            if stop {
                                break;
                            }
                        }
                    }
                    assert_eq!(got_a, got_b, "secure {secure} step {step} flip {flip:?}");
                    let whole = got_a.iter().filter(|r| matches!(r, Ok(Some(_)))).count();
                    let want = if flip.is_some() {
                        frames.len() - 1
                    } else {
                        frames.len()
                    };
                    assert_eq!(whole, want, "secure {secure} step {step} flip {flip:?}");
                    // A bad preamble stops the stream (its lengths cannot be trusted): every later
                    // call says so again.
                    assert_eq!(
                        got_a.iter().any(|r| r.is_err()),
                        flip.is_some(),
                        "secure {secure} step {step} flip {flip:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_flipped_bit_is_a_typed_error_in_both_modes() {
        for secure in [false, true] {
            for at in [0usize, 5, 31, 33, 40, 60, 100] {
                let mut enc = Encoder::default();
                let mut dec = Decoder::new(FrameLimits::default());
                if secure {
                    enc.secure(Gcm::new(&[5; 16], &[1; 12]));
                    dec.secure(Gcm::new(&[5; 16], &[1; 12]));
                }
                let mut wire = BytesMut::new();
                enc.encode(&frames()[2], &mut wire);
                wire[at] ^= 0x10;
                let r = dec.decode(&mut wire);
                assert!(r.is_err(), "secure {secure} byte {at}: {r:?}");
            }
        }
    }

    #[test]
    fn a_segment_crc_error_consumes_its_frame_and_keep_damaged_returns_it() {
        for (at, segment) in [(PREAMBLE_LEN + 3, 0), (PREAMBLE_LEN + 41 + 4 + 2, 1)] {
            let mut enc = Encoder::default();
            let mut wire = BytesMut::new();
            let msg = Frame {
                tag: Tag::Message,
                segments: vec![
                    Bytes::from(vec![7u8; 41]),
                    Bytes::from_static(b"front"),
                    Bytes::new(),
                    Bytes::from_static(b"data"),
                ],
            };
            enc.encode(&msg, &mut wire);
            enc.encode(&frames()[0], &mut wire);
            wire[at] ^= 0x01;
            let mut strict = Decoder::new(FrameLimits::default());
            let mut copy = wire.clone();
            assert_eq!(
                strict.decode(&mut copy),
                Err(FrameError::SegmentCrc(segment))
            );
            assert_eq!(strict.decode(&mut copy), Ok(Some(frames()[0].clone())));
            let mut lenient = Decoder::new(FrameLimits::default());
            lenient.keep_damaged();
            let damaged = lenient.decode(&mut wire).unwrap().unwrap();
            assert_eq!(damaged.tag, Tag::Message);
            assert_eq!(lenient.take_damage(), Some(FrameError::SegmentCrc(segment)));
            assert_eq!(lenient.decode(&mut wire), Ok(Some(frames()[0].clone())));
            assert_eq!(lenient.take_damage(), None);
        }
    }

    #[test]
    fn declared_lengths_are_bounded() {
        let mut enc = Encoder::default();
        let mut wire = BytesMut::new();
        enc.encode(
            &Frame::control(Tag::Hello, Bytes::from(vec![0u8; 64])),
            &mut wire,
        );
        let mut dec = Decoder::new(FrameLimits {
            max_control: 32,
            max_segment: 32,
            max_message: 64,
        });
        assert_eq!(
            dec.decode(&mut wire),
            Err(FrameError::TooLong { len: 64, limit: 32 })
        );
    }

    /// Segments each within `max_segment` but together over `max_message` are refused from
    /// the preamble alone, before the decoder reserves room for them.
    #[test]
    fn declared_message_total_is_bounded() {
        let limits = FrameLimits {
            max_control: 1 << 20,
            max_segment: 128 << 20,
            max_message: 128 << 20,
        };
        let body = Bytes::from(vec![7u8; 16]);
        let frame = Frame {
            tag: Tag::Message,
            segments: vec![Bytes::from(vec![0u8; 41]), body.clone(), Bytes::new(), body],
        };
        let mut wire = BytesMut::new();
        Encoder::default().encode(&frame, &mut wire);
        let mut pre = [0u8; PREAMBLE_LEN];
        pre.copy_from_slice(&wire[..PREAMBLE_LEN]);
        // Front and data of 100 MiB each: 200 MiB in all; the preamble's CRC made anew.
        for at in [2 + 6, 2 + 18] {
            pre[at..at + 4].copy_from_slice(&(100u32 << 20).to_le_bytes());
        }
        let crc = crc32c(0, &pre[..28]);
        pre[28..].copy_from_slice(&crc.to_le_bytes());
        let mut head = BytesMut::from(&pre[..]);
        let mut dec = Decoder::new(limits);
        assert_eq!(
            dec.decode(&mut head),
            Err(FrameError::TooLong {
                len: 200 << 20,
                limit: 128 << 20
            })
        );
        assert!(head.capacity() < 1 << 20, "{} reserved", head.capacity());
        // Within the total, the same declaration waits for its body.
        let mut dec = Decoder::new(FrameLimits {
            max_message: 256 << 20,
            ..limits
        });
        assert_eq!(dec.decode(&mut BytesMut::from(&pre[..])), Ok(None));
    }

    /// A frame its sender aborted (late status not COMPLETE) is refused on the reader's path
    /// as on `decode_parts`, whole or fed byte by byte, and the stream then stands at the
    /// next frame.
    #[test]
    fn an_aborted_frame_is_refused_and_consumed_on_both_paths() {
        let msg = Frame {
            tag: Tag::Message,
            segments: vec![Bytes::from(vec![1u8; 41]), Bytes::from(vec![2u8; 64])],
        };
        let mut wire = BytesMut::new();
        Encoder::default().encode(&msg, &mut wire);
        // Late status: after preamble 32, header 41, its CRC 4 and the front 64.
        wire[PREAMBLE_LEN + 41 + 4 + 64] = 0x01;
        Encoder::default().encode(&frames()[0], &mut wire);
        for step in [wire.len(), 1] {
            let (mut a, mut b) = (
                Decoder::new(FrameLimits::default()),
                Decoder::new(FrameLimits::default()),
            );
            let (mut buf_a, mut buf_b) = (BytesMut::new(), BytesMut::new());
            let (mut got_a, mut got_b) = (Vec::new(), Vec::new());
            for piece in wire.chunks(step) {
                buf_a.extend_from_slice(piece);
                buf_b.extend_from_slice(piece);
                while let r @ (Ok(Some(_)) | Err(_)) =
                    a.decode_with(&mut buf_a, |tag, s0, _| (tag, s0.to_vec()))
                {
                    got_a.push(r);
                }
                while let r @ (Ok(Some(_)) | Err(_)) = b
                    .decode_parts(&mut buf_b)
                    .map(|p| p.map(|p| p.with(|tag, s0, _| (tag, s0.to_vec()))))
                {
                    got_b.push(r);
                }
            }
            let want = vec![
                Err(FrameError::Aborted),
                Ok(Some((Tag::Hello, b"\x08hello".to_vec()))),
            ];
            assert_eq!(got_a, want, "step {step}");
            assert_eq!(got_b, want, "step {step}");
            assert!(buf_a.is_empty() && buf_b.is_empty(), "step {step}");
        }
    }

    #[test]
    fn banners() {
        let mut b = BytesMut::new();
        Banner::OURS.encode(&mut b);
        assert_eq!(b.len(), 26);
        assert_eq!(Banner::decode(&mut b.clone().split_to(12)), Ok(None));
        assert_eq!(Banner::decode(&mut b), Ok(Some(Banner::OURS)));
        let mut v1 = BytesMut::from(&b"ceph v027"[..]);
        assert_eq!(Banner::decode(&mut v1), Err(FrameError::BadBanner));
        let mut b = BytesMut::new();
        Banner {
            supported: 3,
            required: 2,
        }
        .encode(&mut b);
        assert_eq!(Banner::decode(&mut b), Err(FrameError::MissingFeatures(2)));
    }
}
