//! `ceph_msg_header` (53 bytes, spec §3.8) and `ceph_timespec` (§3.9).

use bytes::{Buf, BufMut};

use crate::consts::{HEADER_CRC_LEN, HEADER_LEN, TIMESPEC_LEN};
use crate::crc::crc32c;
use crate::entity::{EntityName, EntityType};
use crate::error::{need, WireError};
use crate::Wire;

/// `ceph_msg_header`: the 53-byte message header. All fields little-endian.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct MsgHeader {
    /// Per-session sequence number, assigned at transmit time.
    pub seq: u64,
    /// Transaction id (0 if unused).
    pub tid: u64,
    /// Message type.
    pub ty: u16,
    /// Priority (`PRIO_*`); 0 = unset.
    pub priority: u16,
    /// Payload encoding version.
    pub version: u16,
    /// Front length.
    pub front_len: u32,
    /// Middle length.
    pub middle_len: u32,
    /// Data length.
    pub data_len: u32,
    /// Data alignment hint; no effect on bytes.
    pub data_off: u16,
    /// Sender.
    pub src: EntityName,
    /// Oldest decoder version that can read the payload.
    pub compat_version: u16,
    /// Always 0.
    pub reserved: u16,
    /// CRC-32C (seed 0) of header bytes 0..49.
    pub crc: u32,
}

impl MsgHeader {
    /// The 53 header bytes, each field stored at its fixed offset (no cursor: this runs twice
    /// per message sent, for the header CRC and the frame).
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        put(&mut out, 0, self.seq.to_le_bytes());
        put(&mut out, 8, self.tid.to_le_bytes());
        put(&mut out, 16, self.ty.to_le_bytes());
        put(&mut out, 18, self.priority.to_le_bytes());
        put(&mut out, 20, self.version.to_le_bytes());
        put(&mut out, 22, self.front_len.to_le_bytes());
        put(&mut out, 26, self.middle_len.to_le_bytes());
        put(&mut out, 30, self.data_len.to_le_bytes());
        put(&mut out, 34, self.data_off.to_le_bytes());
        put(&mut out, 36, [self.src.ty.0]);
        put(&mut out, 37, self.src.num.to_le_bytes());
        put(&mut out, 45, self.compat_version.to_le_bytes());
        put(&mut out, 47, self.reserved.to_le_bytes());
        put(&mut out, 49, self.crc.to_le_bytes());
        out
    }

    /// The header in its 53 bytes (the inverse of [`MsgHeader::to_bytes`]); does not check
    /// the CRC. Every byte string of that length is a header.
    pub fn from_bytes(b: &[u8; HEADER_LEN]) -> MsgHeader {
        MsgHeader {
            seq: u64::from_le_bytes(get(b, 0)),
            tid: u64::from_le_bytes(get(b, 8)),
            ty: u16::from_le_bytes(get(b, 16)),
            priority: u16::from_le_bytes(get(b, 18)),
            version: u16::from_le_bytes(get(b, 20)),
            front_len: u32::from_le_bytes(get(b, 22)),
            middle_len: u32::from_le_bytes(get(b, 26)),
            data_len: u32::from_le_bytes(get(b, 30)),
            data_off: u16::from_le_bytes(get(b, 34)),
            src: EntityName {
                ty: EntityType(b[36]),
                num: i64::from_le_bytes(get(b, 37)),
            },
            compat_version: u16::from_le_bytes(get(b, 45)),
            reserved: u16::from_le_bytes(get(b, 47)),
            crc: u32::from_le_bytes(get(b, 49)),
        }
    }

    /// The CRC of the header as it is now (over bytes 0..49; the `crc` field is not covered).
    pub fn compute_crc(&self) -> u32 {
        let bytes = self.to_bytes();
        crc32c(0, bytes.get(..HEADER_CRC_LEN).unwrap_or_default())
    }

    /// Sets `crc` to [`MsgHeader::compute_crc`]. Call after the seq is assigned.
    pub fn seal(&mut self) {
        self.crc = self.compute_crc();
    }

    /// Checks the `crc` field against the header bytes.
    pub fn verify_crc(&self) -> Result<(), WireError> {
        let actual = self.compute_crc();
        if actual == self.crc {
            Ok(())
        } else {
            Err(WireError::HeaderCrc {
                expected: self.crc,
                actual,
            })
        }
    }

    /// Sum of the three segment lengths.
    pub fn payload_len(&self) -> u64 {
        u64::from(self.front_len) + u64::from(self.middle_len) + u64::from(self.data_len)
    }
}

impl Wire for MsgHeader {
    fn encode(&self, buf: &mut impl BufMut) {
        buf.put_slice(&self.to_bytes());
    }

    /// Reads the header; does not check the CRC (see [`MsgHeader::verify_crc`]).
    fn decode(buf: &mut impl Buf) -> Result<Self, WireError> {
        need("message header", buf.remaining(), HEADER_LEN)?;
        let mut b = [0u8; HEADER_LEN];
        buf.copy_to_slice(&mut b);
        Ok(MsgHeader::from_bytes(&b))
    }
}

/// Stores `v` at `at` in a header (the offsets are the constants of the layout above, all in
/// range: the compiler turns each call into one store).
fn put<const N: usize>(out: &mut [u8; HEADER_LEN], at: usize, v: [u8; N]) {
    if let Some(d) = out.get_mut(at..at + N) {
        d.copy_from_slice(&v);
    }
}

/// The `N` bytes at `at` of a header (constant offsets in range, as for [`put`]).
fn get<const N: usize>(b: &[u8; HEADER_LEN], at: usize) -> [u8; N] {
    let mut v = [0u8; N];
    if let Some(s) = b.get(at..at + N) {
        v.copy_from_slice(s);
    }
    v
}

/// `ceph_timespec`: le32 seconds, le32 nanoseconds (the sender's clock).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Timespec {
    /// Seconds.
    pub sec: u32,
    /// Nanoseconds.
    pub nsec: u32,
}

impl Timespec {
    /// A timestamp from its parts.
    pub const fn new(sec: u32, nsec: u32) -> Self {
        Timespec { sec, nsec }
    }

    /// The wall clock now, as Ceph stamps a KEEPALIVE2 (`ceph_clock_now()`): seconds since the
    /// Unix epoch (saturating at `u32::MAX`, in 2106) and nanoseconds.
    pub fn now() -> Self {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timespec::new(
            u32::try_from(d.as_secs()).unwrap_or(u32::MAX),
            d.subsec_nanos(),
        )
    }
}

impl Wire for Timespec {
    fn encode(&self, buf: &mut impl BufMut) {
        buf.put_u32_le(self.sec);
        buf.put_u32_le(self.nsec);
    }

    fn decode(buf: &mut impl Buf) -> Result<Self, WireError> {
        need("timespec", buf.remaining(), TIMESPEC_LEN)?;
        Ok(Timespec {
            sec: buf.get_u32_le(),
            nsec: buf.get_u32_le(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mping_header_crc_from_spec() {
        let mut h = MsgHeader {
            seq: 2,
            ty: 2,
            priority: 127,
            version: 1,
            src: EntityName::client(-1),
            compat_version: 1,
            ..MsgHeader::default()
        };
        h.seal();
        assert_eq!(h.crc, 0x6043_2617);
        assert!(h.verify_crc().is_ok());
        let bytes = h.to_bytes();
        assert_eq!(MsgHeader::decode(&mut &bytes[..]), Ok(h));
        h.tid = 1;
        assert!(matches!(h.verify_crc(), Err(WireError::HeaderCrc { .. })));
        assert!(MsgHeader::decode(&mut &bytes[..52]).is_err());
    }

    /// Every field at its offset of spec §3.8, little-endian, each with distinct bytes so a
    /// field written at the wrong offset or width shows; and read back from the same bytes.
    #[test]
    fn fields_at_their_offsets() {
        let h = MsgHeader {
            seq: 0x0102_0304_0506_0708,
            tid: 0x1112_1314_1516_1718,
            ty: 0x2122,
            priority: 0x2324,
            version: 0x2526,
            front_len: 0x3132_3334,
            middle_len: 0x3536_3738,
            data_len: 0x4142_4344,
            data_off: 0x4546,
            src: EntityName {
                ty: EntityType(0x47),
                num: 0x5152_5354_5556_5758,
            },
            compat_version: 0x6162,
            reserved: 0x6364,
            crc: 0x7172_7374,
        };
        let mut want = Vec::new();
        want.extend_from_slice(&[8, 7, 6, 5, 4, 3, 2, 1]);
        want.extend_from_slice(&[0x18, 0x17, 0x16, 0x15, 0x14, 0x13, 0x12, 0x11]);
        want.extend_from_slice(&[0x22, 0x21, 0x24, 0x23, 0x26, 0x25]);
        want.extend_from_slice(&[0x34, 0x33, 0x32, 0x31, 0x38, 0x37, 0x36, 0x35]);
        want.extend_from_slice(&[0x44, 0x43, 0x42, 0x41, 0x46, 0x45, 0x47]);
        want.extend_from_slice(&[0x58, 0x57, 0x56, 0x55, 0x54, 0x53, 0x52, 0x51]);
        want.extend_from_slice(&[0x62, 0x61, 0x64, 0x63, 0x74, 0x73, 0x72, 0x71]);
        assert_eq!(want.len(), HEADER_LEN);
        let bytes = h.to_bytes();
        assert_eq!(&bytes[..], &want[..]);
        let mut encoded = Vec::new();
        h.encode(&mut encoded);
        assert_eq!(encoded, want);
        assert_eq!(MsgHeader::from_bytes(&bytes), h);
        assert_eq!(MsgHeader::decode(&mut &want[..]), Ok(h));
    }
}
