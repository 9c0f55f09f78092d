//! The legacy 136-byte `entity_addr_t` (spec §3.3) and the race-comparison key (§5.5).

use std::cmp::Ordering;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::str::FromStr;

use bytes::{Buf, BufMut};

use crate::consts::ADDR_LEN;
use crate::error::{need, WireError};
use crate::Wire;

/// Linux `AF_INET`, as written (big-endian) in the address family field.
pub const AF_INET: u16 = 2;
/// Linux `AF_INET6` (10 regardless of the host OS).
pub const AF_INET6: u16 = 10;

/// An entity address: a socket address and the per-process nonce that is part of its identity.
///
/// Encoded in the legacy 136-byte layout used by every handshake address: bytes 0..4 are 0
/// (byte 0 is the legacy marker; only byte 0 is checked on receive), le32 nonce, big-endian
/// family, then the Linux `sockaddr_in`/`sockaddr_in6` body (port and address in network
/// order, IPv6 flowinfo in network order and scope id little-endian), zero padded.
/// Families other than `AF_INET`/`AF_INET6` decode as the blank address `0.0.0.0:0`, which
/// encodes with family `AF_INET`.
///
/// The address also says which protocol it is reached with ([`AddrType`], Ceph's
/// `entity_addr_t::type`): `v1:` (legacy, the default) or `v2:` (msgr2). The legacy layout
/// does not carry it; a v2 address and a v1 address of the same socket are different peers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EntityAddr {
    /// Per-process-instance id (mons use 0).
    pub nonce: u32,
    /// IP address and port.
    pub addr: SocketAddr,
    /// The protocol spoken at this address.
    pub ty: AddrType,
}

/// Which protocol an address speaks (Ceph's `entity_addr_t::type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum AddrType {
    /// msgr v1 (`v1:`, Ceph's `TYPE_LEGACY`), the default.
    #[default]
    Legacy,
    /// msgr2 (`v2:`, Ceph's `TYPE_MSGR2`).
    Msgr2,
}

impl AddrType {
    /// The prefix of its string form: `v1` or `v2`.
    pub fn prefix(self) -> &'static str {
        match self {
            AddrType::Legacy => "v1",
            AddrType::Msgr2 => "v2",
        }
    }
}

impl EntityAddr {
    /// The blank address `0.0.0.0:0` with nonce 0.
    pub const BLANK: EntityAddr = EntityAddr {
        nonce: 0,
        addr: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)),
        ty: AddrType::Legacy,
    };

    /// A v1 (legacy) address from its parts.
    pub const fn new(addr: SocketAddr, nonce: u32) -> Self {
        EntityAddr {
            nonce,
            addr,
            ty: AddrType::Legacy,
        }
    }

    /// A msgr2 address from its parts.
    pub const fn v2(addr: SocketAddr, nonce: u32) -> Self {
        EntityAddr {
            nonce,
            addr,
            ty: AddrType::Msgr2,
        }
    }

    /// The same socket and nonce, reached with `ty`.
    pub const fn with_type(self, ty: AddrType) -> Self {
        EntityAddr { ty, ..self }
    }

    /// True for a msgr2 address.
    pub fn is_v2(&self) -> bool {
        self.ty == AddrType::Msgr2
    }

    /// True if the IP is `0.0.0.0` or `::` (the port and nonce may still be set).
    pub fn is_blank_ip(&self) -> bool {
        self.addr.ip().is_unspecified()
    }

    /// The 36-byte in-memory image Ceph compares with `memcmp` to resolve connection races:
    /// le32 type (1, legacy), le32 nonce, then the `sockaddr_in6`-sized union: family as a
    /// little-endian (host order) u16, port big-endian, the address bytes, zero padded.
    pub fn race_key(&self) -> [u8; 36] {
        let mut key = [0u8; 36];
        key[0..4].copy_from_slice(&1u32.to_le_bytes());
        key[4..8].copy_from_slice(&self.nonce.to_le_bytes());
        let sa = self.sockaddr();
        // The wire layout is the in-memory union except that the family is big-endian there.
        key[8..36].copy_from_slice(&sa[..28]);
        key.swap(8, 9);
        key
    }

    /// Ceph's race order: lexicographic comparison of [`EntityAddr::race_key`]. The side
    /// whose address compares smaller wins a connection race.
    pub fn race_cmp(&self, other: &EntityAddr) -> Ordering {
        self.race_key().cmp(&other.race_key())
    }

    /// The 128-byte `sockaddr_storage` body as on the wire (family big-endian).
    fn sockaddr(&self) -> [u8; 128] {
        let mut sa = [0u8; 128];
        let family = match self.addr {
            SocketAddr::V4(_) => AF_INET,
            SocketAddr::V6(_) => AF_INET6,
        };
        sa[0..2].copy_from_slice(&family.to_be_bytes());
        put_sockaddr_after_family(&self.addr, &mut &mut sa[2..]);
        sa
    }

    fn from_sockaddr(nonce: u32, sa: &[u8; 128]) -> Self {
        let [f0, f1, rest @ ..] = *sa;
        match socket_addr_from_sockaddr(u16::from_be_bytes([f0, f1]), &rest) {
            Some(addr) => EntityAddr::new(addr, nonce),
            None => EntityAddr {
                nonce,
                ..EntityAddr::BLANK
            },
        }
    }
}

/// Length of a `sockaddr_storage` after its 2-byte family field.
pub const SOCKADDR_AFTER_FAMILY_LEN: usize = 126;

/// Writes the bytes of `addr`'s `sockaddr_in`/`sockaddr_in6` that follow its family field, as
/// every Ceph address encoding carries them (the legacy 136-byte one and the new-style
/// `entity_addr_t` alike): the port big-endian, then for IPv4 the address and 8 zero bytes
/// (14 bytes), for IPv6 the flow info big-endian, the address and the scope id little-endian
/// (26 bytes). The family itself is written by the caller (big-endian in the legacy layout,
/// little-endian in the new one).
pub fn put_sockaddr_after_family(addr: &SocketAddr, buf: &mut impl BufMut) {
    match addr {
        SocketAddr::V4(v4) => {
            buf.put_u16(v4.port());
            buf.put_slice(&v4.ip().octets());
            buf.put_bytes(0, 8);
        }
        SocketAddr::V6(v6) => {
            buf.put_u16(v6.port());
            buf.put_u32(v6.flowinfo());
            buf.put_slice(&v6.ip().octets());
            buf.put_u32_le(v6.scope_id());
        }
    }
}

/// The address of a `sockaddr` of `family` whose bytes after the family field are `rest` (a
/// zero-padded `sockaddr_storage`); `None` for a family other than [`AF_INET`] and
/// [`AF_INET6`]. The reverse of [`put_sockaddr_after_family`].
pub fn socket_addr_from_sockaddr(
    family: u16,
    rest: &[u8; SOCKADDR_AFTER_FAMILY_LEN],
) -> Option<SocketAddr> {
    let mut rest = &rest[..];
    let port = rest.get_u16();
    match family {
        AF_INET => {
            let ip = Ipv4Addr::from(rest.get_u32());
            Some(SocketAddr::V4(SocketAddrV4::new(ip, port)))
        }
        AF_INET6 => {
            let flowinfo = rest.get_u32();
            let ip = Ipv6Addr::from(rest.get_u128());
            let scope_id = rest.get_u32_le();
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip, port, flowinfo, scope_id,
            )))
        }
        _ => None,
    }
}

impl From<SocketAddr> for EntityAddr {
    /// The address with nonce 0 (what monitors use).
    fn from(addr: SocketAddr) -> Self {
        EntityAddr::new(addr, 0)
    }
}

impl Default for EntityAddr {
    fn default() -> Self {
        EntityAddr::BLANK
    }
}

impl Wire for EntityAddr {
    fn encode(&self, buf: &mut impl BufMut) {
        buf.put_u32_le(0);
        buf.put_u32_le(self.nonce);
        buf.put_slice(&self.sockaddr());
    }

    fn decode(buf: &mut impl Buf) -> Result<Self, WireError> {
        need("entity address", buf.remaining(), ADDR_LEN)?;
        let marker = buf.get_u8();
        if marker != 0 {
            return Err(WireError::BadAddrMarker { marker });
        }
        buf.advance(3);
        let nonce = buf.get_u32_le();
        let mut sa = [0u8; 128];
        buf.copy_to_slice(&mut sa);
        Ok(EntityAddr::from_sockaddr(nonce, &sa))
    }
}

impl fmt::Display for EntityAddr {
    /// `v1:IP:PORT/NONCE` (or `v2:`), with the IPv6 address in brackets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}/{}", self.ty.prefix(), self.addr, self.nonce)
    }
}

/// A string that is not `[v1:|v2:]IP:PORT[/NONCE]` (or a vector of them).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid address {input:?}: expected [v1:|v2:]IP:PORT[/NONCE] (IPv6 in brackets) or a \
     vector [v2:IP:PORT,v1:IP:PORT]"
)]
pub struct ParseAddrError {
    input: String,
}

impl FromStr for EntityAddr {
    type Err = ParseAddrError;

    /// `v1:IP:PORT[/NONCE]`, `v2:IP:PORT[/NONCE]`, or without a prefix (v1).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseAddrError { input: s.into() };
        let (ty, rest) = if let Some(r) = s.strip_prefix("v2:") {
            (AddrType::Msgr2, r)
        } else {
            (AddrType::Legacy, s.strip_prefix("v1:").unwrap_or(s))
        };
        let (sock, nonce) = match rest.rsplit_once('/') {
            Some((sock, nonce)) => (sock, nonce.parse().map_err(|_| err())?),
            None => (rest, 0),
        };
        let addr = sock.parse().map_err(|_| err())?;
        Ok(EntityAddr { nonce, addr, ty })
    }
}

/// Parses one address or an address vector as Ceph writes them: `v2:IP:PORT`,
/// `v1:IP:PORT`, `IP:PORT` (v1), or `[v2:IP:3300,v1:IP:6789]`. Entries keep their order.
pub fn parse_addrs(s: &str) -> Result<Vec<EntityAddr>, ParseAddrError> {
    let s = s.trim();
    let err = || ParseAddrError { input: s.into() };
    match s.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        // An IPv6 socket address also starts with '[': only a vector has a prefix inside.
        Some(inner) if inner.starts_with("v1:") || inner.starts_with("v2:") => {
            let addrs = inner
                .split(',')
                .map(|a| a.trim().parse())
                .collect::<Result<Vec<EntityAddr>, _>>()
                .map_err(|_| err())?;
            if addrs.is_empty() {
                return Err(err());
            }
            Ok(addrs)
        }
        _ => Ok(vec![s.parse()?]),
    }
}

/// The address to reach a peer that offers `addrs`: its v2 one when it has one (and
/// `prefer_v2`), else its first.
pub fn pick_addr(addrs: &[EntityAddr], prefer_v2: bool) -> Option<EntityAddr> {
    let v2 = addrs.iter().find(|a| a.is_v2());
    let v1 = addrs.iter().find(|a| !a.is_v2());
    match (prefer_v2, v2, v1) {
        (true, Some(a), _) | (false, _, Some(a)) => Some(*a),
        _ => addrs.first().copied(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(a: &EntityAddr) -> Vec<u8> {
        let mut v = Vec::new();
        a.encode(&mut v);
        v
    }

    #[test]
    fn spec_vectors() {
        let client: EntityAddr = "192.168.1.10:0/305419896".parse().unwrap();
        assert_eq!(client.nonce, 0x1234_5678);
        let b = bytes(&client);
        assert_eq!(b.len(), ADDR_LEN);
        assert_eq!(
            b[..24],
            [
                0, 0, 0, 0, 0x78, 0x56, 0x34, 0x12, 0, 2, 0, 0, 192, 168, 1, 10, 0, 0, 0, 0, 0, 0,
                0, 0
            ]
        );
        assert!(b[24..].iter().all(|&x| x == 0));
        let mon: EntityAddr = "v1:10.0.0.1:6789".parse().unwrap();
        assert_eq!(
            bytes(&mon)[..24],
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0x1a, 0x85, 10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(EntityAddr::decode(&mut &b[..]), Ok(client));
    }

    #[test]
    fn ipv6_layout() {
        let a = EntityAddr::new(
            SocketAddr::V6(SocketAddrV6::new(
                "fe80::1".parse().unwrap(),
                6789,
                0x0102_0304,
                7,
            )),
            9,
        );
        let b = bytes(&a);
        assert_eq!(b[8..12], [0, 10, 0x1a, 0x85]);
        assert_eq!(b[12..16], [1, 2, 3, 4]);
        assert_eq!(b[16], 0xfe);
        assert_eq!(b[32..36], [7, 0, 0, 0]);
        assert_eq!(EntityAddr::decode(&mut &b[..]), Ok(a));
        assert_eq!(
            "[::1]:3/4".parse::<EntityAddr>().unwrap().to_string(),
            "v1:[::1]:3/4"
        );
    }

    #[test]
    fn receive_rules() {
        let mut b = bytes(&"1.2.3.4:5/6".parse().unwrap());
        b[1] = 0xaa; // only byte 0 is the marker
        assert!(EntityAddr::decode(&mut &b[..]).is_ok());
        b[0] = 1;
        assert_eq!(
            EntityAddr::decode(&mut &b[..]),
            Err(WireError::BadAddrMarker { marker: 1 })
        );
        b[0] = 0;
        b[9] = 1; // unknown family
        let blank = EntityAddr::decode(&mut &b[..]).unwrap();
        assert!(blank.is_blank_ip());
        assert_eq!(blank.addr.port(), 0);
        assert_eq!(blank.nonce, 6);
        assert!(EntityAddr::decode(&mut &b[..135]).is_err());
    }

    #[test]
    fn race_key_is_memcmp_order() {
        let a: EntityAddr = "10.0.0.1:6789/256".parse().unwrap();
        let b: EntityAddr = "10.0.0.1:6789/1".parse().unwrap();
        // Numerically 256 > 1 but the LE bytes 00 01 .. < 01 00 ..
        assert_eq!(a.race_cmp(&b), Ordering::Less);
        let k = a.race_key();
        assert_eq!(k[..12], [1, 0, 0, 0, 0, 1, 0, 0, 2, 0, 0x1a, 0x85]);
        assert_eq!(k[12..16], [10, 0, 0, 1]);
        // The port is big-endian, so it compares numerically.
        let p256: EntityAddr = "10.0.0.1:256/1".parse().unwrap();
        let p2: EntityAddr = "10.0.0.1:2/1".parse().unwrap();
        assert_eq!(p256.race_cmp(&p2), Ordering::Greater);
    }
}
