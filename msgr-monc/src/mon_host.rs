//! `mon_host` as Ceph reads it (`MonMap::init_with_ips`, `entity_addrvec_t::parse`): the msgr
//! v1 address of each mon.
//!
//! Accepted, separated by commas, semicolons or blanks:
//!
//! | form | v1 address |
//! |---|---|
//! | `IP` | `IP:6789` (Ceph also gives such a mon `v2:IP:3300`) |
//! | `IP:PORT` | `IP:PORT` (a bare port 3300 is msgr v2's: no v1 address, skipped) |
//! | `v1:IP:PORT`, with an optional `/NONCE` | `IP:PORT` |
//! | `v2:IP:PORT` | none (msgr speaks v1 only), skipped |
//! | `[v2:IP:P2,v1:IP:P1]` (an address vector) | its `v1:` entry |
//! | `[::1]:PORT`, `v1:[::1]:PORT`, `HOST`, `HOST:PORT` | IPv6 in brackets; host names resolved here |
//!
//! Not here: msgr v2 addresses (parsed and skipped), DNS SRV lookups (`mon_dns_srv_name`).

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

use msgr_wire::EntityAddr;

use crate::MonClientError;

/// The mons' legacy (msgr v1) port, `CEPH_MON_PORT_LEGACY`.
pub const MON_PORT_V1: u16 = 6789;
/// The mons' msgr v2 port, `CEPH_MON_PORT_IANA`.
pub const MON_PORT_V2: u16 = 3300;

/// The msgr v1 addresses of the mons of a `mon_host` value (or of `-m`), in the order
/// written, without duplicates. An entry with no v1 address (`v2:` only) is skipped; a value
/// with no v1 address at all is an error, as is an entry that does not parse.
///
/// ```
/// let mons = msgr_monc::parse_mon_host("[v2:10.0.0.1:3300,v1:10.0.0.1:6789], 10.0.0.2 v1:10.0.0.3:6790/0").unwrap();
/// let want: Vec<std::net::SocketAddr> =
///     ["10.0.0.1:6789", "10.0.0.2:6789", "10.0.0.3:6790"].iter().map(|a| a.parse().unwrap()).collect();
/// assert_eq!(mons, want);
/// ```
pub fn parse_mon_host(value: &str) -> Result<Vec<SocketAddr>, MonClientError> {
    let bad = |reason: String| MonClientError::BadMonHost {
        value: value.to_owned(),
        reason,
    };
    let mut out = Vec::new();
    for entry in split_entries(value).map_err(&bad)? {
        let v1 = match entry.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            // An address vector: `[v2:..,v1:..]`. (`[::1]:6789` does not end in `]`.)
            Some(inner) if !inner.is_empty() && !is_ipv6(inner) => {
                let mut v1 = None;
                for a in inner.split(',').map(str::trim).filter(|a| !a.is_empty()) {
                    if let Some(addr) = parse_one(a).map_err(&bad)? {
                        v1.get_or_insert(addr);
                    }
                }
                v1
            }
            _ => parse_one(entry).map_err(&bad)?,
        };
        if let Some(addr) = v1 {
            if !out.contains(&addr) {
                out.push(addr);
            }
        }
    }
    if out.is_empty() {
        return Err(bad("no msgr v1 address (msgr speaks v1 only)".into()));
    }
    Ok(out)
}

/// The address of each mon of a `mon_host` value (or of `-m`), as msgr reaches it: its v1
/// address when it has one (msgr's sessions to mons default to v1), else its msgr2 one (an
/// entry written `v2:IP:PORT`, or a bare port 3300). In the order written, without
/// duplicates; an entry that does not parse is an error.
///
/// ```
/// use msgr_wire::EntityAddr;
/// let mons = msgr_monc::parse_mon_addrs("[v2:10.0.0.1:3300,v1:10.0.0.1:6789] v2:10.0.0.2:3300").unwrap();
/// assert_eq!(mons, vec![
///     EntityAddr::new("10.0.0.1:6789".parse().unwrap(), 0),
///     EntityAddr::v2("10.0.0.2:3300".parse().unwrap(), 0),
/// ]);
/// ```
pub fn parse_mon_addrs(value: &str) -> Result<Vec<EntityAddr>, MonClientError> {
    let bad = |reason: String| MonClientError::BadMonHost {
        value: value.to_owned(),
        reason,
    };
    let mut out = Vec::new();
    for entry in split_entries(value).map_err(&bad)? {
        let (mut v1, mut v2) = (None, None);
        let parts: Vec<&str> = match entry.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            Some(inner) if !inner.is_empty() && !is_ipv6(inner) => inner
                .split(',')
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .collect(),
            _ => vec![entry],
        };
        for a in parts {
            match parse_typed(a).map_err(&bad)? {
                EitherAddr::V1(x) => {
                    v1.get_or_insert(x);
                }
                EitherAddr::V2(x) => {
                    v2.get_or_insert(x);
                }
            }
        }
        let pick = v1
            .map(|a| EntityAddr::new(a, 0))
            .or(v2.map(|a| EntityAddr::v2(a, 0)));
        if let Some(addr) = pick {
            if !out.contains(&addr) {
                out.push(addr);
            }
        }
    }
    if out.is_empty() {
        return Err(bad("no mon address".into()));
    }
    Ok(out)
}

enum EitherAddr {
    V1(SocketAddr),
    V2(SocketAddr),
}

/// One address with its protocol.
fn parse_typed(text: &str) -> Result<EitherAddr, String> {
    if let Some(r) = text.strip_prefix("v2:") {
        return Ok(EitherAddr::V2(host_port(r, MON_PORT_V2)?));
    }
    match parse_one(text)? {
        Some(a) => Ok(EitherAddr::V1(a)),
        // A bare port 3300.
        None => Ok(EitherAddr::V2(host_port(text, MON_PORT_V1)?)),
    }
}

/// Splits on commas, semicolons and blanks outside brackets.
fn split_entries(value: &str) -> Result<Vec<&str>, String> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in value.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.checked_sub(1).ok_or("unbalanced ']'")?,
            ',' | ';' | ' ' | '\t' if depth == 0 => {
                out.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err("unclosed '['".into());
    }
    out.push(&value[start..]);
    Ok(out
        .into_iter()
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .collect())
}

fn is_ipv6(s: &str) -> bool {
    s.parse::<std::net::Ipv6Addr>().is_ok()
}

/// One address: `Ok(None)` for a msgr v2 one.
fn parse_one(text: &str) -> Result<Option<SocketAddr>, String> {
    let (v2, rest) = if let Some(r) = text.strip_prefix("v2:") {
        (true, r)
    } else if let Some(r) = text.strip_prefix("v1:") {
        (false, r)
    } else if let Some(r) = text.strip_prefix("any:") {
        (false, r)
    } else {
        // No type: the port decides, as in Ceph (3300 is msgr v2's).
        let addr = host_port(text, MON_PORT_V1)?;
        return Ok((addr.port() != MON_PORT_V2).then_some(addr));
    };
    let addr = host_port(rest, if v2 { MON_PORT_V2 } else { MON_PORT_V1 })?;
    Ok((!v2).then_some(addr))
}

/// `IP`, `IP:PORT`, `[IPv6]`, `[IPv6]:PORT`, `HOST[:PORT]`, with an optional `/NONCE` (ignored:
/// a mon's is 0).
fn host_port(text: &str, default_port: u16) -> Result<SocketAddr, String> {
    let text = match text.rsplit_once('/') {
        Some((a, nonce)) if nonce.parse::<u32>().is_ok() => a,
        Some(_) => return Err(format!("{text:?}: the nonce after '/' is not a number")),
        None => text,
    };
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, default_port));
    }
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if let Some(ip) = text.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        let ip: IpAddr = ip
            .parse()
            .map_err(|_| format!("{text:?}: bad IPv6 address"))?;
        return Ok(SocketAddr::new(ip, default_port));
    }
    let (host, port) = match text.rsplit_once(':') {
        Some((h, p)) => (h, p.parse().map_err(|_| format!("{text:?}: bad port"))?),
        None => (text, default_port),
    };
    if host.is_empty() || host.contains([':', '[', ']']) {
        return Err(format!("{text:?}: not an address"));
    }
    (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("{text:?}: cannot resolve: {e}"))?
        .next()
        .ok_or_else(|| format!("{text:?} resolves to no address"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(list: &[&str]) -> Vec<SocketAddr> {
        list.iter().map(|a| a.parse().unwrap()).collect()
    }

    #[test]
    fn every_form_ceph_accepts() {
        for (value, want) in [
            ("127.0.0.1:6789", vec!["127.0.0.1:6789"]),
            ("v1:127.0.0.1:40000", vec!["127.0.0.1:40000"]),
            ("v1:127.0.0.1:40000/0", vec!["127.0.0.1:40000"]),
            ("10.1.2.3", vec!["10.1.2.3:6789"]),
            ("[v2:10.0.0.1:3300,v1:10.0.0.1:6789]", vec!["10.0.0.1:6789"]),
            (
                "[v2:10.0.0.1:3300/0,v1:10.0.0.1:6789/0] [v1:10.0.0.2:6790]",
                vec!["10.0.0.1:6789", "10.0.0.2:6790"],
            ),
            (
                "10.0.0.1:6789,10.0.0.2:6789; 10.0.0.3:6789\t10.0.0.1:6789",
                vec!["10.0.0.1:6789", "10.0.0.2:6789", "10.0.0.3:6789"],
            ),
            (
                "v2:10.0.0.9:3300, 10.0.0.9:3300, v1:10.0.0.1:1",
                vec!["10.0.0.1:1"],
            ),
            ("[::1]:6790", vec!["[::1]:6790"]),
            ("v1:[::1]:6790", vec!["[::1]:6790"]),
            ("[::1]", vec!["[::1]:6789"]),
            ("[v2:[::1]:3300,v1:[::1]:6789]", vec!["[::1]:6789"]),
            ("localhost:6791", vec!["127.0.0.1:6791"]),
        ] {
            let got = parse_mon_host(value).unwrap_or_else(|e| panic!("{value}: {e}"));
            // `localhost` may resolve to ::1 first on some hosts: compare the port then.
            if value.starts_with("localhost") {
                assert_eq!(got.len(), 1);
                assert_eq!(got[0].port(), 6791);
                assert!(got[0].ip().is_loopback());
            } else {
                assert_eq!(got, addrs(&want), "{value}");
            }
        }
    }

    #[test]
    fn what_has_no_v1_address_or_does_not_parse_is_refused() {
        for value in [
            "",
            "v2:10.0.0.1:3300",
            "[v2:10.0.0.1:3300]",
            "[v1:10.0.0.1:6789",
            "10.0.0.1:6789]",
            "v1:10.0.0.1:port",
            "v1:10.0.0.1:6789/x",
            "v1:[::1:6789",
        ] {
            match parse_mon_host(value) {
                Err(MonClientError::BadMonHost { value: v, .. }) => assert_eq!(v, value),
                other => panic!("{value:?}: {other:?}"),
            }
        }
    }
}
