//! One captured packet down to its TCP segment: the link layer, IPv4 or IPv6, then TCP.
//!
//! Link types read (the `LINKTYPE_*` numbers of pcap and pcapng): Ethernet (1, with 802.1Q
//! and 802.1ad tags), BSD loopback (0 `NULL`, host-order family; 108 `LOOP`, network order),
//! raw IP (101, and the 12 / 14 some systems write; 228 IPv4, 229 IPv6), Linux cooked
//! capture (113 `SLL`, 276 `SLL2`). IPv4 options and IPv6 extension headers (hop-by-hop,
//! routing, destination options) are skipped; fragments are not reassembled (a TCP
//! connection's segments are not fragmented in practice, and msgr reports how many it
//! skipped). What it does not do: checksums (loopback captures carry offloaded, wrong
//! ones), other transports, tunnels.
//!
//! Every read is bounds-checked: a packet that does not hold what its headers declare is a
//! [`Skip`], never a panic.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Why a packet yields no TCP segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Skip {
    /// A link type this reader does not know.
    LinkType,
    /// Not IPv4 or IPv6 (ARP, ...).
    NotIp,
    /// IP, but not TCP.
    NotTcp,
    /// An IP fragment.
    Fragment,
    /// Headers cut short or inconsistent.
    Malformed,
}

impl Skip {
    /// A few words for the summary.
    pub fn describe(self) -> &'static str {
        match self {
            Skip::LinkType => "of an unknown link type",
            Skip::NotIp => "not IP",
            Skip::NotTcp => "not TCP",
            Skip::Fragment => "IP fragments",
            Skip::Malformed => "malformed",
        }
    }
}

/// A TCP segment: its endpoints, sequence number, flags and payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment<'a> {
    /// Sender.
    pub src: SocketAddr,
    /// Receiver.
    pub dst: SocketAddr,
    /// Sequence number of the first payload byte (of the SYN itself for a SYN).
    pub seq: u32,
    /// SYN flag.
    pub syn: bool,
    /// ACK flag.
    pub ack: bool,
    /// The payload bytes captured (fewer than sent when the snap length cut the packet).
    pub payload: &'a [u8],
}

/// Parses one captured packet of link type `linktype`.
pub fn parse(linktype: i32, data: &[u8]) -> Result<Segment<'_>, Skip> {
    let (ip, version_hint) = match linktype {
        // Ethernet.
        1 => ethernet(data)?,
        // BSD loopback: a 4-byte family in the capturing host's order (NULL) or big-endian
        // (LOOP). AF_INET is 2 everywhere; AF_INET6 is 10, 24, 28 or 30 by OS.
        0 | 108 => {
            let fam = data.get(..4).ok_or(Skip::Malformed)?;
            let le = u32::from_le_bytes([fam[0], fam[1], fam[2], fam[3]]);
            let be = u32::from_be_bytes([fam[0], fam[1], fam[2], fam[3]]);
            let family = if linktype == 108 || le > 0xffff {
                be
            } else {
                le
            };
            let hint = match family {
                2 => 4,
                10 | 24 | 28 | 30 => 6,
                _ => return Err(Skip::NotIp),
            };
            (rest(data, 4)?, Some(hint))
        }
        // Raw IP, the version from the first nibble.
        12 | 14 | 101 => (data, None),
        228 => (data, Some(4)),
        229 => (data, Some(6)),
        // Linux cooked v1: protocol type at 14..16, header 16 bytes.
        113 => (rest(data, 16)?, ethertype_version(be16(data, 14)?)),
        // Linux cooked v2: protocol type at 0..2, header 20 bytes.
        276 => (rest(data, 20)?, ethertype_version(be16(data, 0)?)),
        _ => return Err(Skip::LinkType),
    };
    let version = ip.first().ok_or(Skip::Malformed)? >> 4;
    if let Some(hint) = version_hint {
        if hint != version {
            return Err(Skip::Malformed);
        }
    }
    match version {
        4 => ipv4(ip),
        6 => ipv6(ip),
        _ => Err(Skip::NotIp),
    }
}

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_QINQ: u16 = 0x88a8;
const IPPROTO_TCP: u8 = 6;

fn ethertype_version(ethertype: u16) -> Option<u8> {
    match ethertype {
        ETHERTYPE_IPV4 => Some(4),
        ETHERTYPE_IPV6 => Some(6),
        _ => Some(0),
    }
}

fn ethernet(data: &[u8]) -> Result<(&[u8], Option<u8>), Skip> {
    let mut at = 12;
    let mut ethertype = be16(data, at)?;
    // At most two VLAN tags (802.1ad outer, 802.1Q inner).
    for _ in 0..2 {
        if ethertype == ETHERTYPE_VLAN || ethertype == ETHERTYPE_QINQ {
            at += 4;
            ethertype = be16(data, at)?;
        }
    }
    match ethertype {
        ETHERTYPE_IPV4 | ETHERTYPE_IPV6 => Ok((rest(data, at + 2)?, ethertype_version(ethertype))),
        _ => Err(Skip::NotIp),
    }
}

fn ipv4(ip: &[u8]) -> Result<Segment<'_>, Skip> {
    let ihl = usize::from(ip.first().ok_or(Skip::Malformed)? & 0x0f) * 4;
    let total = usize::from(be16(ip, 2)?);
    if ihl < 20 || total < ihl {
        return Err(Skip::Malformed);
    }
    let frag = be16(ip, 6)?;
    // More-fragments flag or a fragment offset.
    if frag & 0x3fff != 0 {
        return Err(Skip::Fragment);
    }
    if *ip.get(9).ok_or(Skip::Malformed)? != IPPROTO_TCP {
        return Err(Skip::NotTcp);
    }
    let src = Ipv4Addr::from(be32(ip, 12)?);
    let dst = Ipv4Addr::from(be32(ip, 16)?);
    // Ethernet pads short frames: the IP total length says where the packet ends. A packet
    // cut by the snap length holds less than that.
    let end = total.min(ip.len());
    let tcp_bytes = ip.get(ihl..end).ok_or(Skip::Malformed)?;
    tcp(IpAddr::V4(src), IpAddr::V4(dst), tcp_bytes)
}

fn ipv6(ip: &[u8]) -> Result<Segment<'_>, Skip> {
    let payload_len = usize::from(be16(ip, 4)?);
    let mut next = *ip.get(6).ok_or(Skip::Malformed)?;
    let src = Ipv6Addr::from(be128(ip, 8)?);
    let dst = Ipv6Addr::from(be128(ip, 24)?);
    let end = (40 + payload_len).min(ip.len());
    let mut at = 40;
    // Extension headers: each names the next and gives its own length in 8-byte units
    // (beyond the first 8); a bounded walk (a packet cannot hold more than this many).
    for _ in 0..16 {
        match next {
            // Hop-by-hop, routing, destination options.
            0 | 43 | 60 => {
                next = *ip.get(at).ok_or(Skip::Malformed)?;
                let len = usize::from(*ip.get(at + 1).ok_or(Skip::Malformed)?);
                at += 8 + len * 8;
            }
            44 => return Err(Skip::Fragment),
            _ => break,
        }
    }
    if next != IPPROTO_TCP {
        return Err(Skip::NotTcp);
    }
    let tcp_bytes = ip.get(at..end).ok_or(Skip::Malformed)?;
    tcp(IpAddr::V6(src), IpAddr::V6(dst), tcp_bytes)
}

fn tcp(src: IpAddr, dst: IpAddr, t: &[u8]) -> Result<Segment<'_>, Skip> {
    let sport = be16(t, 0)?;
    let dport = be16(t, 2)?;
    let seq = be32(t, 4)?;
    let offset = usize::from(t.get(12).ok_or(Skip::Malformed)? >> 4) * 4;
    let flags = *t.get(13).ok_or(Skip::Malformed)?;
    if offset < 20 {
        return Err(Skip::Malformed);
    }
    Ok(Segment {
        src: SocketAddr::new(src, sport),
        dst: SocketAddr::new(dst, dport),
        seq,
        syn: flags & 0x02 != 0,
        ack: flags & 0x10 != 0,
        payload: t.get(offset..).ok_or(Skip::Malformed)?,
    })
}

fn rest(data: &[u8], at: usize) -> Result<&[u8], Skip> {
    data.get(at..).ok_or(Skip::Malformed)
}

fn be16(data: &[u8], at: usize) -> Result<u16, Skip> {
    let b = data.get(at..at + 2).ok_or(Skip::Malformed)?;
    Ok(u16::from_be_bytes([b[0], b[1]]))
}

fn be32(data: &[u8], at: usize) -> Result<u32, Skip> {
    let b = data.get(at..at + 4).ok_or(Skip::Malformed)?;
    Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

fn be128(data: &[u8], at: usize) -> Result<u128, Skip> {
    let b: [u8; 16] = data
        .get(at..at + 16)
        .and_then(|b| b.try_into().ok())
        .ok_or(Skip::Malformed)?;
    Ok(u128::from_be_bytes(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A TCP header (20 bytes) with `flags` and `payload`.
    fn tcp_bytes(sport: u16, dport: u16, seq: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
        let mut t = Vec::new();
        t.extend_from_slice(&sport.to_be_bytes());
        t.extend_from_slice(&dport.to_be_bytes());
        t.extend_from_slice(&seq.to_be_bytes());
        t.extend_from_slice(&[0; 4]);
        t.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
        t.extend_from_slice(payload);
        t
    }

    fn ipv4_bytes(tcp: &[u8]) -> Vec<u8> {
        let mut ip = vec![0x45, 0];
        ip.extend_from_slice(&u16::try_from(20 + tcp.len()).unwrap_or(0).to_be_bytes());
        ip.extend_from_slice(&[0, 0, 0x40, 0, 64, IPPROTO_TCP, 0, 0]);
        ip.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
        ip.extend_from_slice(tcp);
        ip
    }

    #[test]
    fn ethernet_ipv4_with_padding_and_a_vlan_tag() {
        let tcp = tcp_bytes(6789, 40000, 7, 0x18, b"ceph");
        let mut frame = vec![0; 12];
        frame.extend_from_slice(&[0x81, 0x00, 0, 5, 0x08, 0x00]);
        frame.extend_from_slice(&ipv4_bytes(&tcp));
        // Ethernet padding after the IP packet is not payload.
        frame.extend_from_slice(&[0xee; 6]);
        let s = parse(1, &frame).expect("segment");
        assert_eq!(s.src, "10.0.0.1:6789".parse().expect("addr"));
        assert_eq!(s.dst, "10.0.0.2:40000".parse().expect("addr"));
        assert_eq!((s.seq, s.syn, s.ack), (7, false, true));
        assert_eq!(s.payload, b"ceph");
    }

    #[test]
    fn loopback_families_and_cooked_headers() {
        let ip = ipv4_bytes(&tcp_bytes(1, 2, 3, 0x02, b""));
        let mut null = 2u32.to_le_bytes().to_vec();
        null.extend_from_slice(&ip);
        assert!(parse(0, &null).is_ok_and(|s| s.syn));
        let mut lo = 2u32.to_be_bytes().to_vec();
        lo.extend_from_slice(&ip);
        assert!(parse(108, &lo).is_ok());
        let mut sll = vec![0; 14];
        sll.extend_from_slice(&[0x08, 0x00]);
        sll.extend_from_slice(&ip);
        assert!(parse(113, &sll).is_ok());
        let mut sll2 = vec![0x08, 0x00];
        sll2.extend_from_slice(&[0; 18]);
        sll2.extend_from_slice(&ip);
        assert!(parse(276, &sll2).is_ok());
        assert_eq!(parse(147, &ip), Err(Skip::LinkType));
    }

    #[test]
    fn ipv6_with_a_destination_options_header() {
        let tcp = tcp_bytes(6789, 50000, 1, 0x10, b"x");
        let mut ip = vec![0x60, 0, 0, 0];
        ip.extend_from_slice(&u16::try_from(8 + tcp.len()).unwrap_or(0).to_be_bytes());
        ip.extend_from_slice(&[60, 64]);
        ip.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
        ip.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
        ip.extend_from_slice(&[IPPROTO_TCP, 0, 0, 0, 0, 0, 0, 0]);
        ip.extend_from_slice(&tcp);
        let s = parse(101, &ip).expect("segment");
        assert_eq!(s.src, "[::1]:6789".parse().expect("addr"));
        assert_eq!(s.payload, b"x");
    }

    #[test]
    fn fragments_other_protocols_and_short_headers_are_skipped() {
        let mut ip = ipv4_bytes(&tcp_bytes(1, 2, 3, 0, b"abc"));
        ip[6] = 0x20; // more fragments
        assert_eq!(parse(101, &ip), Err(Skip::Fragment));
        let mut udp = ipv4_bytes(&tcp_bytes(1, 2, 3, 0, b"abc"));
        udp[9] = 17;
        assert_eq!(parse(101, &udp), Err(Skip::NotTcp));
        let whole = ipv4_bytes(&tcp_bytes(1, 2, 3, 0, b"abc"));
        for cut in 0..40 {
            assert!(parse(101, &whole[..cut]).is_err(), "cut at {cut}");
        }
        // Cut inside the payload (snap length): the captured part is the payload.
        assert_eq!(parse(101, &whole[..41]).map(|s| s.payload), Ok(&b"a"[..]));
    }
}
