//! Ceph's `encode()`/`decode()` primitives (msgr-v1-wire.md §3.1, cephx-msgr2.md §1) over `bytes`.
//!
//! Integers are little-endian at natural size; `std::string` and `bufferlist` are le32 length + bytes;
//! vectors, sets and maps are le32 count + elements (maps in key order); `ENCODE_START(v, compat)` is `u8 v`,
//! `u8 compat`, le32 body length, body. Every reader checks what is left before it takes anything: a length or a
//! count is compared with the bytes remaining before a byte is copied, so a hostile 4 GiB length costs nothing.
//! Nothing here knows a message; the message files build on these.

use std::collections::BTreeMap;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::BodyError;

/// Fails with [`BodyError::Truncated`] unless `needed` bytes are left.
pub(crate) fn need(buf: &impl Buf, field: &'static str, needed: usize) -> Result<(), BodyError> {
    if buf.remaining() < needed {
        return Err(BodyError::Truncated {
            field,
            needed,
            remaining: buf.remaining(),
        });
    }
    Ok(())
}

pub(crate) fn get_u8(buf: &mut impl Buf, field: &'static str) -> Result<u8, BodyError> {
    need(buf, field, 1)?;
    Ok(buf.get_u8())
}

pub(crate) fn get_u16(buf: &mut impl Buf, field: &'static str) -> Result<u16, BodyError> {
    need(buf, field, 2)?;
    Ok(buf.get_u16_le())
}

pub(crate) fn get_u32(buf: &mut impl Buf, field: &'static str) -> Result<u32, BodyError> {
    need(buf, field, 4)?;
    Ok(buf.get_u32_le())
}

pub(crate) fn get_u64(buf: &mut impl Buf, field: &'static str) -> Result<u64, BodyError> {
    need(buf, field, 8)?;
    Ok(buf.get_u64_le())
}

/// A `bool`: one byte, anything but 0 is true (Ceph decodes it as `__u8 != 0`).
pub(crate) fn get_bool(buf: &mut impl Buf, field: &'static str) -> Result<bool, BodyError> {
    Ok(get_u8(buf, field)? != 0)
}

/// A `bufferlist`: le32 length + bytes. The length is checked against what is left before copying.
pub(crate) fn get_blob(buf: &mut impl Buf, field: &'static str) -> Result<Bytes, BodyError> {
    let len = get_u32(buf, field)? as usize;
    need(buf, field, len)?;
    Ok(buf.copy_to_bytes(len))
}

/// A `std::string`: le32 length + bytes, UTF-8 for every string these messages carry.
pub(crate) fn get_string(buf: &mut impl Buf, field: &'static str) -> Result<String, BodyError> {
    let raw = get_blob(buf, field)?;
    String::from_utf8(raw.to_vec()).map_err(|_| BodyError::NotUtf8 { field })
}

/// The le32 count of a container whose elements take at least `min_len` bytes each: a count that cannot fit
/// in what is left is refused before any element is read.
pub(crate) fn get_count(
    buf: &mut impl Buf,
    field: &'static str,
    min_len: usize,
) -> Result<usize, BodyError> {
    let count = get_u32(buf, field)? as usize;
    need(buf, field, count.saturating_mul(min_len))?;
    Ok(count)
}

/// A `std::vector<T>` / `std::set<T>`: le32 count + elements of at least `min_len` bytes each.
pub(crate) fn get_vec<B: Buf, T>(
    buf: &mut B,
    field: &'static str,
    min_len: usize,
    mut element: impl FnMut(&mut B) -> Result<T, BodyError>,
) -> Result<Vec<T>, BodyError> {
    let count = get_count(buf, field, min_len)?;
    (0..count).map(|_| element(buf)).collect()
}

/// A `std::vector<std::string>`.
pub(crate) fn get_strings(
    buf: &mut impl Buf,
    field: &'static str,
) -> Result<Vec<String>, BodyError> {
    get_vec(buf, field, 4, |b| get_string(b, field))
}

/// A `std::map<std::string, std::string>`; a repeated key keeps its last value, as Ceph's decoder does.
pub(crate) fn get_string_map(
    buf: &mut impl Buf,
    field: &'static str,
) -> Result<BTreeMap<String, String>, BodyError> {
    let count = get_count(buf, field, 8)?;
    let mut map = BTreeMap::new();
    for _ in 0..count {
        let key = get_string(buf, field)?;
        map.insert(key, get_string(buf, field)?);
    }
    Ok(map)
}

pub(crate) fn put_blob(buf: &mut impl BufMut, bytes: &[u8]) {
    buf.put_u32_le(bytes.len() as u32);
    buf.put_slice(bytes);
}

pub(crate) fn put_strings<'a>(
    buf: &mut impl BufMut,
    strings: impl ExactSizeIterator<Item = &'a String>,
) {
    buf.put_u32_le(strings.len() as u32);
    for s in strings {
        put_blob(buf, s.as_bytes());
    }
}

pub(crate) fn put_string_map(buf: &mut impl BufMut, map: &BTreeMap<String, String>) {
    buf.put_u32_le(map.len() as u32);
    for (key, value) in map {
        put_blob(buf, key.as_bytes());
        put_blob(buf, value.as_bytes());
    }
}

/// Fails with [`BodyError::TrailingBytes`] if anything is left.
pub(crate) fn finish(buf: &impl Buf) -> Result<(), BodyError> {
    match buf.remaining() {
        0 => Ok(()),
        remaining => Err(BodyError::TrailingBytes { remaining }),
    }
}

pub(crate) fn to_bytes(encode: impl FnOnce(&mut BytesMut)) -> Bytes {
    let mut buf = BytesMut::new();
    encode(&mut buf);
    buf.freeze()
}

/// The header `ENCODE_START(version, compat)` writes before a structure's body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StructHeader {
    /// `struct_v`: the layout the encoder wrote.
    pub version: u8,
    /// `struct_compat`: the oldest decoder version that can read it.
    pub compat: u8,
}

impl StructHeader {
    /// Encoded size: version, compat, le32 length.
    pub const LEN: usize = 6;

    /// Reads the header and takes the body it announces, as Ceph's `DECODE_START(ours, ...)` does: a compat
    /// version above `ours` is [`BodyError::IncompatibleVersion`]; a length beyond what is left is
    /// [`BodyError::Truncated`]. The caller decodes the fields its version knows from the returned body and drops
    /// the rest, which is how a newer encoder's extra trailing fields are skipped (`DECODE_FINISH`).
    pub fn decode(
        buf: &mut impl Buf,
        field: &'static str,
        ours: u8,
    ) -> Result<(Self, Bytes), BodyError> {
        need(buf, field, Self::LEN)?;
        let header = Self {
            version: buf.get_u8(),
            compat: buf.get_u8(),
        };
        if header.compat > ours {
            return Err(BodyError::IncompatibleVersion {
                field,
                compat: header.compat,
                ours,
            });
        }
        let len = buf.get_u32_le() as usize;
        need(buf, field, len)?;
        Ok((header, buf.copy_to_bytes(len)))
    }

    /// Writes the header and `body` (`ENCODE_START` ... `ENCODE_FINISH`).
    pub fn encode(&self, buf: &mut impl BufMut, body: &[u8]) {
        buf.put_u8(self.version);
        buf.put_u8(self.compat);
        put_blob(buf, body);
    }
}

/// Ceph's `utime_t`: le32 seconds, le32 nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct UTime {
    /// Seconds since the epoch.
    pub sec: u32,
    /// Nanoseconds.
    pub nsec: u32,
}

impl UTime {
    /// Appends the time.
    pub fn encode(&self, buf: &mut impl BufMut) {
        buf.put_u32_le(self.sec);
        buf.put_u32_le(self.nsec);
    }

    /// Reads a time.
    pub fn decode(buf: &mut impl Buf, field: &'static str) -> Result<Self, BodyError> {
        need(buf, field, 8)?;
        Ok(Self {
            sec: buf.get_u32_le(),
            nsec: buf.get_u32_le(),
        })
    }
}

/// The end of a front whose layout depends on the header version: bytes left over are an error for a version
/// this crate knows, and are skipped for a newer one (a newer sender appends fields its readers may ignore).
pub(crate) fn finish_front(buf: &impl Buf, version: u16, ours: u16) -> Result<(), BodyError> {
    if version > ours {
        return Ok(());
    }
    finish(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn struct_header_wraps_its_body_and_takes_exactly_it() {
        let header = StructHeader {
            version: 3,
            compat: 2,
        };
        let bytes = to_bytes(|b| {
            header.encode(b, b"body");
            b.put_slice(b"next");
        });
        assert_eq!(&bytes[..6], &[3, 2, 4, 0, 0, 0]);
        let mut rest = bytes.clone();
        let (read, body) = StructHeader::decode(&mut rest, "test", 2).expect("compat 2 <= 2");
        assert_eq!(
            (read, &body[..], &rest[..]),
            (header, &b"body"[..], &b"next"[..])
        );
        assert_eq!(
            StructHeader::decode(&mut bytes.clone(), "test", 1),
            Err(BodyError::IncompatibleVersion {
                field: "test",
                compat: 2,
                ours: 1
            })
        );
        assert!(matches!(
            StructHeader::decode(&mut &bytes[..9], "test", 9),
            Err(BodyError::Truncated {
                needed: 4,
                remaining: 3,
                ..
            })
        ));
    }

    #[test]
    fn a_count_is_checked_against_the_bytes_left_before_any_element() {
        let mut buf = &[2u8, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7][..];
        assert_eq!(
            get_count(&mut buf, "pairs", 3),
            Ok(2),
            "2 elements of 3 bytes fit in 7"
        );
        let mut buf = &[3u8, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7][..];
        assert_eq!(
            get_count(&mut buf, "pairs", 3),
            Err(BodyError::Truncated {
                field: "pairs",
                needed: 9,
                remaining: 7
            })
        );
        let mut buf = &[0xffu8, 0xff, 0xff, 0xff][..];
        assert!(get_count(&mut buf, "huge", usize::MAX).is_err());
    }

    #[test]
    fn trailing_bytes_are_refused_up_to_our_version_only() {
        let buf = &[0u8][..];
        assert_eq!(
            finish_front(&buf, 3, 3),
            Err(BodyError::TrailingBytes { remaining: 1 })
        );
        assert_eq!(finish_front(&buf, 4, 3), Ok(()));
        assert_eq!(finish(&&[][..]), Ok(()));
    }
}
