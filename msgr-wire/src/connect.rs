//! The banner, `ceph_msg_connect` and `ceph_msg_connect_reply` (spec §3.2, §3.5, §3.6).

use bytes::{Buf, BufMut, Bytes};

use crate::consts::{BANNER, BANNER_LEN, CONNECT_LEN, CONNECT_REPLY_LEN};
use crate::error::{need, WireError};
use crate::limits::Limits;
use crate::tag::Tag;
use crate::Wire;

/// The 9-byte banner `ceph v027`: encodes it, and decodes by checking it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Banner;

impl Wire for Banner {
    fn encode(&self, buf: &mut impl BufMut) {
        buf.put_slice(BANNER);
    }

    fn decode(buf: &mut impl Buf) -> Result<Self, WireError> {
        need("banner", buf.remaining(), BANNER_LEN)?;
        let mut found = [0u8; BANNER_LEN];
        buf.copy_to_slice(&mut found);
        if &found == BANNER {
            Ok(Banner)
        } else {
            Err(WireError::BadBanner { found })
        }
    }
}

/// `ceph_msg_connect` (33 bytes) followed by its authorizer; `authorizer_len` is derived
/// from `authorizer` when encoding.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Connect {
    /// The connector's supported features.
    pub features: u64,
    /// The connector's entity type, as u32.
    pub host_type: u32,
    /// The connector's global seq for this attempt.
    pub global_seq: u32,
    /// The connector's per-session counter; 0 = new session.
    pub connect_seq: u32,
    /// Protocol version (see the `*_PROTOCOL` constants).
    pub protocol_version: u32,
    /// Authorizer protocol (`AUTH_*`); 0 with no authorizer.
    pub authorizer_protocol: u32,
    /// Flags (`CONNECT_LOSSY`).
    pub flags: u8,
    /// Opaque authorizer bytes.
    pub authorizer: Bytes,
}

impl Connect {
    /// Decodes a connect, refusing an authorizer longer than `max_authorizer` before reading it.
    pub fn decode_limited(buf: &mut impl Buf, max_authorizer: u32) -> Result<Self, WireError> {
        need("connect", buf.remaining(), CONNECT_LEN)?;
        let features = buf.get_u64_le();
        let host_type = buf.get_u32_le();
        let global_seq = buf.get_u32_le();
        let connect_seq = buf.get_u32_le();
        let protocol_version = buf.get_u32_le();
        let authorizer_protocol = buf.get_u32_le();
        let len = buf.get_u32_le();
        let flags = buf.get_u8();
        let authorizer = authorizer(buf, len, max_authorizer)?;
        Ok(Connect {
            features,
            host_type,
            global_seq,
            connect_seq,
            protocol_version,
            authorizer_protocol,
            flags,
            authorizer,
        })
    }

    /// The `authorizer_len` field of the fixed part at the start of `bytes`, if present.
    pub fn peek_authorizer_len(bytes: &[u8]) -> Option<u32> {
        bytes.get(28..32).map(|b| (&b[..]).get_u32_le())
    }

    /// Encoded length: 33 plus the authorizer.
    pub fn wire_len(&self) -> usize {
        CONNECT_LEN + self.authorizer.len()
    }
}

impl Wire for Connect {
    fn encode(&self, buf: &mut impl BufMut) {
        buf.put_u64_le(self.features);
        buf.put_u32_le(self.host_type);
        buf.put_u32_le(self.global_seq);
        buf.put_u32_le(self.connect_seq);
        buf.put_u32_le(self.protocol_version);
        buf.put_u32_le(self.authorizer_protocol);
        buf.put_u32_le(len_u32(&self.authorizer));
        buf.put_u8(self.flags);
        buf.put_slice(&self.authorizer);
    }

    /// Decodes with the default authorizer limit ([`Limits::default`]).
    fn decode(buf: &mut impl Buf) -> Result<Self, WireError> {
        Connect::decode_limited(buf, Limits::default().max_authorizer)
    }
}

/// `ceph_msg_connect_reply` (26 bytes) followed by the authorizer reply. The 8-byte value
/// that follows a SEQ reply is not part of it (see `Item::Seq` of the stream decoder).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectReply {
    /// What the acceptor answers.
    pub tag: Tag,
    /// Acceptor features (full set on READY/SEQ).
    pub features: u64,
    /// READY/SEQ: the acceptor's fresh global seq; RETRY_GLOBAL: its recorded peer gseq.
    pub global_seq: u32,
    /// READY/SEQ: the new connect seq; RETRY_SESSION: the value to retry with.
    pub connect_seq: u32,
    /// The acceptor's expected protocol version.
    pub protocol_version: u32,
    /// Flags (`CONNECT_LOSSY` on READY/SEQ when the session is lossy).
    pub flags: u8,
    /// Opaque authorizer reply bytes.
    pub authorizer: Bytes,
}

impl ConnectReply {
    /// Decodes a reply, refusing an authorizer reply longer than `max_authorizer` before
    /// reading it, and a tag byte that is not a msgr v1 tag.
    pub fn decode_limited(buf: &mut impl Buf, max_authorizer: u32) -> Result<Self, WireError> {
        need("connect reply", buf.remaining(), CONNECT_REPLY_LEN)?;
        let tag = Tag::try_from(buf.get_u8())?;
        let features = buf.get_u64_le();
        let global_seq = buf.get_u32_le();
        let connect_seq = buf.get_u32_le();
        let protocol_version = buf.get_u32_le();
        let len = buf.get_u32_le();
        let flags = buf.get_u8();
        let authorizer = authorizer(buf, len, max_authorizer)?;
        Ok(ConnectReply {
            tag,
            features,
            global_seq,
            connect_seq,
            protocol_version,
            flags,
            authorizer,
        })
    }

    /// The `authorizer_len` field of the fixed part at the start of `bytes`, if present.
    pub fn peek_authorizer_len(bytes: &[u8]) -> Option<u32> {
        bytes.get(21..25).map(|b| (&b[..]).get_u32_le())
    }

    /// Encoded length: 26 plus the authorizer reply.
    pub fn wire_len(&self) -> usize {
        CONNECT_REPLY_LEN + self.authorizer.len()
    }

    /// A reply with the given tag and everything else zero.
    pub fn new(tag: Tag) -> Self {
        ConnectReply {
            tag,
            features: 0,
            global_seq: 0,
            connect_seq: 0,
            protocol_version: 0,
            flags: 0,
            authorizer: Bytes::new(),
        }
    }
}

impl Wire for ConnectReply {
    fn encode(&self, buf: &mut impl BufMut) {
        buf.put_u8(self.tag.byte());
        buf.put_u64_le(self.features);
        buf.put_u32_le(self.global_seq);
        buf.put_u32_le(self.connect_seq);
        buf.put_u32_le(self.protocol_version);
        buf.put_u32_le(len_u32(&self.authorizer));
        buf.put_u8(self.flags);
        buf.put_slice(&self.authorizer);
    }

    /// Decodes with the default authorizer limit ([`Limits::default`]).
    fn decode(buf: &mut impl Buf) -> Result<Self, WireError> {
        ConnectReply::decode_limited(buf, Limits::default().max_authorizer)
    }
}

/// The authorizer length as the wire's u32 (authorizers are bounded far below 4 GiB).
fn len_u32(b: &Bytes) -> u32 {
    u32::try_from(b.len()).unwrap_or(u32::MAX)
}

fn authorizer(buf: &mut impl Buf, len: u32, max: u32) -> Result<Bytes, WireError> {
    if len > max {
        return Err(WireError::TooLong {
            what: "authorizer",
            len: len.into(),
            limit: max.into(),
        });
    }
    let len = len as usize;
    need("authorizer", buf.remaining(), len)?;
    Ok(buf.copy_to_bytes(len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consts::{CONNECT_LOSSY, MONC_PROTOCOL};
    use crate::features::ALL_PACIFIC;

    #[test]
    fn spec_connect_vector() {
        let c = Connect {
            features: ALL_PACIFIC,
            host_type: 8,
            global_seq: 1,
            connect_seq: 0,
            protocol_version: MONC_PROTOCOL,
            authorizer_protocol: 0,
            flags: CONNECT_LOSSY,
            authorizer: Bytes::new(),
        };
        let mut v = Vec::new();
        c.encode(&mut v);
        let expected = [
            0xff, 0xff, 0xfd, 0xff, 0xb9, 0xcf, 0x01, 0x3f, 0x08, 0, 0, 0, 0x01, 0, 0, 0, 0, 0, 0,
            0, 0x0f, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,
        ];
        assert_eq!(v, expected);
        assert_eq!(Connect::decode(&mut &v[..]), Ok(c));
    }

    #[test]
    fn authorizer_limits_and_truncation() {
        let c = Connect {
            authorizer: Bytes::from_static(b"secret"),
            ..Connect::default()
        };
        let mut v = Vec::new();
        c.encode(&mut v);
        assert_eq!(Connect::peek_authorizer_len(&v), Some(6));
        assert_eq!(Connect::decode(&mut &v[..]), Ok(c));
        assert!(matches!(
            Connect::decode_limited(&mut &v[..], 5),
            Err(WireError::TooLong {
                what: "authorizer",
                len: 6,
                limit: 5
            })
        ));
        assert!(matches!(
            Connect::decode(&mut &v[..v.len() - 1]),
            Err(WireError::Truncated { .. })
        ));
    }

    #[test]
    fn reply_round_trip_and_bad_tag() {
        let mut r = ConnectReply::new(Tag::Seq);
        r.features = ALL_PACIFIC;
        r.authorizer = Bytes::from_static(b"xy");
        let mut v = Vec::new();
        r.encode(&mut v);
        assert_eq!(v.len(), r.wire_len());
        assert_eq!(ConnectReply::peek_authorizer_len(&v), Some(2));
        assert_eq!(ConnectReply::decode(&mut &v[..]), Ok(r));
        v[0] = 99;
        assert_eq!(
            ConnectReply::decode(&mut &v[..]),
            Err(WireError::UnknownTag { tag: 99 })
        );
    }

    #[test]
    fn banner() {
        let mut v = Vec::new();
        Banner.encode(&mut v);
        assert_eq!(Banner::decode(&mut &v[..]), Ok(Banner));
        let e = Banner::decode(&mut &b"ceph v2\n\x10"[..]).unwrap_err();
        assert!(e.to_string().contains("msgr2"), "{e}");
    }
}
