//! Ceph's `encode()`/`decode()` for what cephx needs: little-endian integers, `bufferlist`s,
//! strings, `utime_t`, and the [`Encode`]/[`Decode`] traits every structure implements.
//!
//! Decoders never panic on peer input: every read checks what is left first, and every
//! declared length is checked against a limit ([`MAX_BLOB_LEN`], [`MAX_COUNT`]) and against
//! the bytes left before anything is allocated. Not here: Ceph's `ENCODE_START` framing
//! (no cephx structure uses it).

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::AuthError;

/// Largest `bufferlist`/`string` this crate decodes (tickets, caps, authorizers are far smaller).
pub const MAX_BLOB_LEN: usize = 1 << 20;
/// Largest element count of a map or vector this crate decodes.
pub const MAX_COUNT: usize = 4096;

/// A structure with Ceph's encoding; encoding cannot fail.
pub trait Encode {
    /// Appends the encoding to `buf`.
    fn encode(&self, buf: &mut impl BufMut);

    /// The encoding as bytes.
    fn to_bytes(&self) -> Bytes {
        let mut b = BytesMut::new();
        self.encode(&mut b);
        b.freeze()
    }
}

/// A structure decoded from peer bytes; never panics.
pub trait Decode: Sized {
    /// Reads one structure from the front of `buf`.
    fn decode(buf: &mut impl Buf) -> Result<Self, AuthError>;

    /// Decodes from a slice, ignoring trailing bytes (as Ceph does).
    fn from_slice(mut bytes: &[u8]) -> Result<Self, AuthError> {
        Self::decode(&mut bytes)
    }
}

/// Fails with [`AuthError::Truncated`] unless `n` bytes are left.
pub(crate) fn need(buf: &impl Buf, n: usize, what: &'static str) -> Result<(), AuthError> {
    let have = buf.remaining();
    if have < n {
        return Err(AuthError::Truncated {
            what,
            need: n,
            have,
        });
    }
    Ok(())
}

pub(crate) fn get_u8(buf: &mut impl Buf, what: &'static str) -> Result<u8, AuthError> {
    need(buf, 1, what)?;
    Ok(buf.get_u8())
}

pub(crate) fn get_u16(buf: &mut impl Buf, what: &'static str) -> Result<u16, AuthError> {
    need(buf, 2, what)?;
    Ok(buf.get_u16_le())
}

pub(crate) fn get_u32(buf: &mut impl Buf, what: &'static str) -> Result<u32, AuthError> {
    need(buf, 4, what)?;
    Ok(buf.get_u32_le())
}

pub(crate) fn get_i32(buf: &mut impl Buf, what: &'static str) -> Result<i32, AuthError> {
    need(buf, 4, what)?;
    Ok(buf.get_i32_le())
}

pub(crate) fn get_u64(buf: &mut impl Buf, what: &'static str) -> Result<u64, AuthError> {
    need(buf, 8, what)?;
    Ok(buf.get_u64_le())
}

/// Reads a `struct_v` byte and checks it is at least `min` (newer versions are read as far as
/// this crate knows them, as Ceph does).
pub(crate) fn get_struct_v(
    buf: &mut impl Buf,
    what: &'static str,
    min: u8,
) -> Result<u8, AuthError> {
    let version = get_u8(buf, what)?;
    if version < min {
        return Err(AuthError::BadVersion { what, version });
    }
    Ok(version)
}

/// Reads a `u32` length and checks it against `limit` and the bytes left.
fn get_len(buf: &mut impl Buf, what: &'static str, limit: usize) -> Result<usize, AuthError> {
    let len = get_u32(buf, what)? as usize;
    if len > limit {
        return Err(AuthError::TooLong { what, len, limit });
    }
    need(buf, len, what)?;
    Ok(len)
}

/// Reads a `bufferlist` (`u32 len` + bytes).
pub(crate) fn get_blob(buf: &mut impl Buf, what: &'static str) -> Result<Bytes, AuthError> {
    let len = get_len(buf, what, MAX_BLOB_LEN)?;
    Ok(buf.copy_to_bytes(len))
}

/// Reads a `std::string` (`u32 len` + UTF-8 bytes).
pub(crate) fn get_string(buf: &mut impl Buf, what: &'static str) -> Result<String, AuthError> {
    let raw = get_blob(buf, what)?;
    String::from_utf8(raw.to_vec()).map_err(|_| AuthError::BadUtf8 { what })
}

/// Reads a `u32` element count, checked against [`MAX_COUNT`] and against `min_elem` bytes
/// per element left in `buf`.
pub(crate) fn get_count(
    buf: &mut impl Buf,
    what: &'static str,
    min_elem: usize,
) -> Result<usize, AuthError> {
    let n = get_u32(buf, what)? as usize;
    if n > MAX_COUNT {
        return Err(AuthError::TooLong {
            what,
            len: n,
            limit: MAX_COUNT,
        });
    }
    need(buf, n.saturating_mul(min_elem), what)?;
    Ok(n)
}

/// Writes a `bufferlist`/`string` (`u32 len` + bytes).
pub(crate) fn put_blob(buf: &mut impl BufMut, bytes: &[u8]) {
    buf.put_u32_le(len_u32(bytes.len()));
    buf.put_slice(bytes);
}

/// A length as Ceph's `u32`; everything this crate encodes is far below 4 GiB.
pub(crate) fn len_u32(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

/// Ceph's `utime_t`: seconds and nanoseconds, each a `u32`. Used both for points in time
/// (since the Unix epoch) and for durations (a ticket's validity).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UTime {
    /// Seconds.
    pub sec: u32,
    /// Nanoseconds (below 10⁹ in anything Ceph writes; not checked on decode).
    pub nsec: u32,
}

impl UTime {
    /// Encoded size.
    pub const LEN: usize = 8;

    /// A time of whole seconds.
    pub const fn from_secs(sec: u32) -> Self {
        UTime { sec, nsec: 0 }
    }

    /// The wall clock now (for callers at the edge; the protocol code takes `now` as an argument).
    pub fn now() -> Self {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        UTime {
            sec: u32::try_from(d.as_secs()).unwrap_or(u32::MAX),
            nsec: d.subsec_nanos(),
        }
    }

    /// Nanoseconds since zero, for arithmetic.
    fn as_nanos(self) -> u64 {
        u64::from(self.sec) * 1_000_000_000 + u64::from(self.nsec % 1_000_000_000)
    }

    fn from_nanos(n: u64) -> Self {
        let sec = u32::try_from(n / 1_000_000_000).unwrap_or(u32::MAX);
        UTime {
            sec,
            nsec: (n % 1_000_000_000) as u32,
        }
    }

    /// `self + d`, saturating at the largest `utime_t`.
    pub fn saturating_add(self, d: UTime) -> UTime {
        Self::from_nanos(self.as_nanos().saturating_add(d.as_nanos()))
    }

    /// `self - d`, saturating at zero.
    pub fn saturating_sub(self, d: UTime) -> UTime {
        Self::from_nanos(self.as_nanos().saturating_sub(d.as_nanos()))
    }

    /// A quarter of this duration (a ticket is renewed after three quarters of its validity).
    pub fn quarter(self) -> UTime {
        Self::from_nanos(self.as_nanos() / 4)
    }
}

impl Encode for UTime {
    fn encode(&self, buf: &mut impl BufMut) {
        buf.put_u32_le(self.sec);
        buf.put_u32_le(self.nsec);
    }
}

impl Decode for UTime {
    fn decode(buf: &mut impl Buf) -> Result<Self, AuthError> {
        need(buf, Self::LEN, "utime_t")?;
        Ok(UTime {
            sec: buf.get_u32_le(),
            nsec: buf.get_u32_le(),
        })
    }
}

/// A bare `u64` (the challenge-key input and the §G.6 vector).
impl Encode for u64 {
    fn encode(&self, buf: &mut impl BufMut) {
        buf.put_u64_le(*self);
    }
}

impl Decode for u64 {
    fn decode(buf: &mut impl Buf) -> Result<Self, AuthError> {
        get_u64(buf, "u64")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_length_over_what_is_left_is_truncated_before_any_allocation() {
        let mut b: &[u8] = &[0xff, 0xff, 0x0f, 0x00, 1, 2];
        assert_eq!(
            get_blob(&mut b, "blob"),
            Err(AuthError::Truncated {
                what: "blob",
                need: 0x000f_ffff,
                have: 2
            })
        );
        let mut b: &[u8] = &[0x00, 0x00, 0x20, 0x00];
        assert_eq!(
            get_blob(&mut b, "blob"),
            Err(AuthError::TooLong {
                what: "blob",
                len: 0x0020_0000,
                limit: MAX_BLOB_LEN
            })
        );
    }

    #[test]
    fn count_needs_room_for_its_elements() {
        let mut b: &[u8] = &[3, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8];
        assert_eq!(
            get_count(&mut b, "map", 4),
            Err(AuthError::Truncated {
                what: "map",
                need: 12,
                have: 8
            })
        );
    }

    #[test]
    fn utime_arithmetic_saturates() {
        let t = UTime {
            sec: 10,
            nsec: 500_000_000,
        };
        assert_eq!(
            t.saturating_add(UTime {
                sec: 1,
                nsec: 600_000_000
            }),
            UTime {
                sec: 12,
                nsec: 100_000_000
            }
        );
        assert_eq!(t.saturating_sub(UTime::from_secs(11)), UTime::default());
        assert_eq!(
            UTime {
                sec: u32::MAX,
                nsec: 0
            }
            .saturating_add(UTime::from_secs(5))
            .sec,
            u32::MAX
        );
        assert_eq!(UTime::from_secs(3600).quarter(), UTime::from_secs(900));
    }
}
