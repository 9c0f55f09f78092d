//! `ceph_msg_header` (53 bytes, spec §3.8) and `ceph_timespec` (§3.9).

use bytes::{Buf, BufMut};

use crate::consts::{HEADER_CRC_LEN, HEADER_LEN, TIMESPEC_LEN};
use crate::crc::crc32c;
use crate::entity::EntityName;
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
    /// The 53 header bytes.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        let mut w = &mut out[..];
        self.encode(&mut w);
        out
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
        buf.put_u64_le(self.seq);
        buf.put_u64_le(self.tid);
        buf.put_u16_le(self.ty);
        buf.put_u16_le(self.priority);
        buf.put_u16_le(self.version);
        buf.put_u32_le(self.front_len);
        buf.put_u32_le(self.middle_len);
        buf.put_u32_le(self.data_len);
        buf.put_u16_le(self.data_off);
        self.src.encode(buf);
        buf.put_u16_le(self.compat_version);
        buf.put_u16_le(self.reserved);
        buf.put_u32_le(self.crc);
    }

    /// Reads the header; does not check the CRC (see [`MsgHeader::verify_crc`]).
    fn decode(buf: &mut impl Buf) -> Result<Self, WireError> {
        need("message header", buf.remaining(), HEADER_LEN)?;
        Ok(MsgHeader {
            seq: buf.get_u64_le(),
            tid: buf.get_u64_le(),
            ty: buf.get_u16_le(),
            priority: buf.get_u16_le(),
            version: buf.get_u16_le(),
            front_len: buf.get_u32_le(),
            middle_len: buf.get_u32_le(),
            data_len: buf.get_u32_le(),
            data_off: buf.get_u16_le(),
            src: EntityName::decode(buf)?,
            compat_version: buf.get_u16_le(),
            reserved: buf.get_u16_le(),
            crc: buf.get_u32_le(),
        })
    }
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
}
