//! `ceph_msg_footer` (21 bytes) and `ceph_msg_footer_old` (13 bytes), spec §3.10.

use bytes::{Buf, BufMut};

use crate::consts::{FOOTER_COMPLETE, FOOTER_LEN, FOOTER_NOCRC, FOOTER_SIGNED, OLD_FOOTER_LEN};
use crate::error::{need, WireError};
use crate::features;

/// The message footer. The old 13-byte form has no `sig` (it decodes as 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct MsgFooter {
    /// CRC of the front.
    pub front_crc: u32,
    /// CRC of the middle.
    pub middle_crc: u32,
    /// CRC of the data (0 with `FOOTER_NOCRC`).
    pub data_crc: u32,
    /// Session signature (0 without cephx signing). Not carried by the old footer.
    pub sig: u64,
    /// `FOOTER_*` flags.
    pub flags: u8,
}

impl MsgFooter {
    /// `FOOTER_COMPLETE` is set: the message was not aborted.
    pub fn is_complete(&self) -> bool {
        self.flags & FOOTER_COMPLETE != 0
    }

    /// `FOOTER_NOCRC` is set: `data_crc` was not computed.
    pub fn is_nocrc(&self) -> bool {
        self.flags & FOOTER_NOCRC != 0
    }

    /// `FOOTER_SIGNED` is set.
    pub fn is_signed(&self) -> bool {
        self.flags & FOOTER_SIGNED != 0
    }
}

/// Which footer layout a session uses, chosen by the negotiated `MSG_AUTH` feature bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum FooterKind {
    /// `ceph_msg_footer`, 21 bytes, with `sig` (`MSG_AUTH` negotiated).
    #[default]
    New,
    /// `ceph_msg_footer_old`, 13 bytes (`MSG_AUTH` not negotiated).
    Old,
}

impl FooterKind {
    /// The layout for a session whose negotiated features are `negotiated`
    /// (`connect.features & reply.features`).
    pub const fn for_features(negotiated: u64) -> Self {
        if negotiated & features::MSG_AUTH != 0 {
            FooterKind::New
        } else {
            FooterKind::Old
        }
    }

    /// Encoded length: 21 or 13.
    pub const fn wire_len(self) -> usize {
        match self {
            FooterKind::New => FOOTER_LEN,
            FooterKind::Old => OLD_FOOTER_LEN,
        }
    }

    /// The encoded footer in a fixed array, with its length (21 or 13).
    pub fn to_bytes(self, footer: &MsgFooter) -> ([u8; FOOTER_LEN], usize) {
        let mut out = [0u8; FOOTER_LEN];
        let mut w = &mut out[..];
        encode_footer(footer, self, &mut w);
        (out, self.wire_len())
    }
}

/// Writes `footer` in the layout `kind` (the old layout drops `sig`).
pub fn encode_footer(footer: &MsgFooter, kind: FooterKind, buf: &mut impl BufMut) {
    buf.put_u32_le(footer.front_crc);
    buf.put_u32_le(footer.middle_crc);
    buf.put_u32_le(footer.data_crc);
    if kind == FooterKind::New {
        buf.put_u64_le(footer.sig);
    }
    buf.put_u8(footer.flags);
}

/// Reads a footer in the layout `kind`.
pub fn decode_footer(kind: FooterKind, buf: &mut impl Buf) -> Result<MsgFooter, WireError> {
    need("message footer", buf.remaining(), kind.wire_len())?;
    let front_crc = buf.get_u32_le();
    let middle_crc = buf.get_u32_le();
    let data_crc = buf.get_u32_le();
    let sig = match kind {
        FooterKind::New => buf.get_u64_le(),
        FooterKind::Old => 0,
    };
    Ok(MsgFooter {
        front_crc,
        middle_crc,
        data_crc,
        sig,
        flags: buf.get_u8(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_layouts() {
        let f = MsgFooter {
            front_crc: 1,
            middle_crc: 2,
            data_crc: 3,
            sig: 4,
            flags: FOOTER_COMPLETE,
        };
        for kind in [FooterKind::New, FooterKind::Old] {
            let mut v = Vec::new();
            encode_footer(&f, kind, &mut v);
            assert_eq!(v.len(), kind.wire_len());
            let (arr, n) = kind.to_bytes(&f);
            assert_eq!(arr[..n], v[..]);
            let back = decode_footer(kind, &mut &v[..]).unwrap();
            let sig = if kind == FooterKind::New { 4 } else { 0 };
            assert_eq!(back, MsgFooter { sig, ..f });
            assert!(decode_footer(kind, &mut &v[..v.len() - 1]).is_err());
        }
        assert_eq!(
            FooterKind::for_features(features::ALL_PACIFIC),
            FooterKind::New
        );
        assert_eq!(
            FooterKind::for_features(!features::MSG_AUTH),
            FooterKind::Old
        );
    }
}
