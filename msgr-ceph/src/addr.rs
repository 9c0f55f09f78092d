//! Addresses inside Ceph structures: `entity_addr_t` and `entity_addrvec_t` as the monmap carries them
//! (`src/msg/msg_types.{h,cc}`), v1 (`LEGACY`) and v2 (`MSGR2`) alike.
//!
//! ```text
//! entity_addrvec_t: u8 marker
//!   0: a legacy entity_addr_t after its marker: 3 pad | le32 nonce | sockaddr_storage 128 (family BE)
//!   1: one new-style entity_addr_t after its marker (below)
//!   2: le32 count + new-style entity_addr_t each
//! new-style entity_addr_t: u8 marker 1 | ENCODE_START(1, 1) | le32 type | le32 nonce | le32 sockaddr length |
//!                          le16 family | the sockaddr's bytes after the family (port BE, address, ...)
//! ```
//!
//! This is not the 136-byte handshake address of msgr v1 (`msgr_wire::EntityAddr`): that one is fixed-size and
//! always legacy. A family other than IPv4 or IPv6 decodes as a blank address (`addr: None`), as Ceph's acceptor
//! treats it; the raw bytes of such a sockaddr are not kept.

use std::net::SocketAddr;

use bytes::{Buf, BufMut};
use msgr_wire::{
    put_sockaddr_after_family, socket_addr_from_sockaddr, AF_INET, AF_INET6,
    SOCKADDR_AFTER_FAMILY_LEN,
};

use crate::codec::{get_count, get_u32, get_u8, need, StructHeader};
use crate::BodyError;

/// `entity_addr_t::TYPE_NONE`.
pub const ADDR_TYPE_NONE: u32 = 0;
/// `entity_addr_t::TYPE_LEGACY`: a msgr v1 address.
pub const ADDR_TYPE_LEGACY: u32 = 1;
/// `entity_addr_t::TYPE_MSGR2`: a msgr v2 address.
pub const ADDR_TYPE_MSGR2: u32 = 2;
/// `entity_addr_t::TYPE_ANY`.
pub const ADDR_TYPE_ANY: u32 = 3;

/// `sizeof(sockaddr_in)`.
const SOCKADDR_IN_LEN: usize = 16;
/// `sizeof(sockaddr_in6)`.
const SOCKADDR_IN6_LEN: usize = 28;
/// `sizeof(sockaddr_storage)`: the most a sockaddr may take.
const SOCKADDR_STORAGE_LEN: usize = 128;

/// One `entity_addr_t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EntityAddr {
    /// [`ADDR_TYPE_LEGACY`] (v1), [`ADDR_TYPE_MSGR2`] (v2), ...
    pub ty: u32,
    /// The process instance's nonce (0 for mons).
    pub nonce: u32,
    /// The IP address and port; `None` for a blank address.
    pub addr: Option<SocketAddr>,
}

impl EntityAddr {
    /// The versioned body's `ENCODE_START` version and compat.
    const STRUCT: StructHeader = StructHeader {
        version: 1,
        compat: 1,
    };

    /// A v1 (`LEGACY`) address.
    pub fn v1(addr: SocketAddr, nonce: u32) -> Self {
        Self {
            ty: ADDR_TYPE_LEGACY,
            nonce,
            addr: Some(addr),
        }
    }

    /// A v2 (`MSGR2`) address.
    pub fn v2(addr: SocketAddr, nonce: u32) -> Self {
        Self {
            ty: ADDR_TYPE_MSGR2,
            nonce,
            addr: Some(addr),
        }
    }

    /// Appends the new-style encoding, marker included (what Ceph writes with `MSG_ADDR2`).
    pub fn encode(&self, buf: &mut impl BufMut) {
        buf.put_u8(1);
        let mut body = Vec::with_capacity(12 + SOCKADDR_IN6_LEN);
        body.put_u32_le(self.ty);
        body.put_u32_le(self.nonce);
        match self.addr {
            None => body.put_u32_le(0),
            Some(a) => {
                let (len, family) = match a {
                    SocketAddr::V4(_) => (SOCKADDR_IN_LEN, AF_INET),
                    SocketAddr::V6(_) => (SOCKADDR_IN6_LEN, AF_INET6),
                };
                body.put_u32_le(len as u32);
                body.put_u16_le(family);
                put_sockaddr_after_family(&a, &mut body);
            }
        }
        Self::STRUCT.encode(buf, &body);
    }

    /// Reads an `entity_addr_t`: marker 0 (legacy) or 1 (new style).
    pub fn decode(buf: &mut impl Buf) -> Result<Self, BodyError> {
        match get_u8(buf, "address marker")? {
            0 => Self::decode_legacy_after_marker(buf),
            1 => Self::decode_new_after_marker(buf),
            marker => Err(BodyError::AddrMarker { marker }),
        }
    }

    /// The legacy layout after its marker byte: 3 bytes of padding, nonce, a 128-byte `sockaddr_storage` whose
    /// family is big-endian. The type becomes [`ADDR_TYPE_LEGACY`].
    fn decode_legacy_after_marker(buf: &mut impl Buf) -> Result<Self, BodyError> {
        need(buf, "legacy address", 3 + 4 + SOCKADDR_STORAGE_LEN)?;
        buf.advance(3);
        let nonce = buf.get_u32_le();
        let family = buf.get_u16();
        let mut rest = [0u8; SOCKADDR_AFTER_FAMILY_LEN];
        buf.copy_to_slice(&mut rest);
        Ok(Self {
            ty: ADDR_TYPE_LEGACY,
            nonce,
            addr: socket_addr_from_sockaddr(family, &rest),
        })
    }

    fn decode_new_after_marker(buf: &mut impl Buf) -> Result<Self, BodyError> {
        let (_, mut body) = StructHeader::decode(buf, "entity_addr_t", Self::STRUCT.version)?;
        let ty = get_u32(&mut body, "address type")?;
        let nonce = get_u32(&mut body, "address nonce")?;
        let len = get_u32(&mut body, "sockaddr length")?;
        let addr = match len as usize {
            0 => None,
            n if !(2..=SOCKADDR_STORAGE_LEN).contains(&n) => {
                return Err(BodyError::SockaddrLen { len });
            }
            n => {
                need(&body, "sockaddr", n)?;
                let family = body.get_u16_le();
                // Ceph copies the bytes into a zeroed sockaddr_storage: a short sockaddr reads as zeros.
                let mut rest = [0u8; SOCKADDR_AFTER_FAMILY_LEN];
                let (head, _) = rest.split_at_mut(n - 2);
                body.copy_to_slice(head);
                socket_addr_from_sockaddr(family, &rest)
            }
        };
        Ok(Self { ty, nonce, addr })
    }
}

/// `entity_addrvec_t`: the addresses one daemon listens on, usually a v2 and a v1 address.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct EntityAddrVec(pub Vec<EntityAddr>);

impl EntityAddrVec {
    /// Appends the vector form (marker 2), which is what Ceph writes to peers with `MSG_ADDR2`.
    pub fn encode(&self, buf: &mut impl BufMut) {
        buf.put_u8(2);
        buf.put_u32_le(self.0.len() as u32);
        for addr in &self.0 {
            addr.encode(buf);
        }
    }

    /// Reads any of the three forms.
    pub fn decode(buf: &mut impl Buf) -> Result<Self, BodyError> {
        match get_u8(buf, "address vector marker")? {
            0 => Ok(Self(vec![EntityAddr::decode_legacy_after_marker(buf)?])),
            1 => Ok(Self(vec![EntityAddr::decode_new_after_marker(buf)?])),
            2 => {
                // A new-style address takes at least marker + header + type + nonce + length.
                let count = get_count(buf, "address vector", 1 + StructHeader::LEN + 12)?;
                let addrs = (0..count)
                    .map(|_| EntityAddr::decode(buf))
                    .collect::<Result<_, _>>()?;
                Ok(Self(addrs))
            }
            marker => Err(BodyError::AddrMarker { marker }),
        }
    }

    /// The first address of type `ty` ([`ADDR_TYPE_LEGACY`] for the v1 address a msgr v1 client connects to).
    pub fn of_type(&self, ty: u32) -> Option<&EntityAddr> {
        self.0.iter().find(|a| a.ty == ty)
    }
}
