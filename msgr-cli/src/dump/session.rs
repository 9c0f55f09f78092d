//! A capture's TCP connections, each told msgr v1 or not, its two sides named from the
//! bytes, both decoded and their items merged in capture order.
//!
//! The connector and the acceptor are found from what each side wrote, never from ports:
//! both start with the banner and their own address; then the acceptor writes a second
//! address (the connector's, as it sees it), whose first byte is the legacy marker 0, while
//! the connector writes its `ceph_msg_connect`, whose first byte is the low byte of its
//! features (bit 0, `CEPH_FEATURE_UID`, is set by every Ceph since 0.21). One side that
//! shows its role names the other. When neither does (a capture started mid-connection),
//! the side that sent the SYN is the connector, and failing that, the side seen first; the
//! connection line says which rule decided (`roles_from`). The connector's footer layout
//! follows the features of the acceptor's reply (what was negotiated) unless `--footer` is
//! given. Each item carries the number and time of the packet that completed it.
//!
//! msgr2 connections (banner `ceph v2`) are decoded by [`v2`], the roles found the same way
//! from the frames each side wrote (a connector asks, an acceptor answers); the acceptor's
//! side is decoded first, and its AUTH_DONE tells when the connector's frames turn secure.
//! TCP without a Ceph banner is listed and skipped.

use std::net::SocketAddr;

use msgr_wire::{FooterKind, Item, Limits, Side, StreamDecoder};

use super::decode::{self, End, Options};
use super::describe::{Described, Fields, Line, Val};
use super::tcp::{self, Connection};
use super::v2;

/// The protocol a side's first bytes show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// msgr v1 (`ceph v027`).
    V1,
    /// msgr2 (`ceph v2\n`).
    V2,
    /// Neither, or too few bytes to tell.
    Unknown,
}

impl Protocol {
    fn of(bytes: &[u8]) -> Protocol {
        if bytes.starts_with(b"ceph v027") {
            Protocol::V1
        } else if bytes.starts_with(b"ceph v2\n") {
            Protocol::V2
        } else {
            Protocol::Unknown
        }
    }

    fn name(self) -> &'static str {
        match self {
            Protocol::V1 => "msgr1",
            Protocol::V2 => "msgr2",
            Protocol::Unknown => "unknown",
        }
    }
}

/// What one connection gave: its lines and whether anything in it was corrupt.
#[derive(Debug, Default)]
pub struct Report {
    /// Output lines, the connection line first.
    pub lines: Vec<Line>,
    /// Corrupt bytes (or CRC mismatches without `--continue`) in a decoded side.
    pub corrupt: bool,
    /// The protocol it was decoded as (`None`: skipped).
    pub protocol: Option<Protocol>,
    /// Messages whose CRCs did not verify (with `--continue`).
    pub crc_errors: usize,
}

/// The role a side's own bytes show, if they show one.
fn role_from_bytes(bytes: &[u8]) -> Option<Side> {
    // Banner, address and a connect with the largest authorizer msgr-wire accepts (4096).
    let head = bytes.get(..bytes.len().min(8192)).unwrap_or_default();
    let items = |side| {
        let mut dec = StreamDecoder::new(side, Limits::default(), Default::default());
        let mut buf = bytes::BytesMut::from(head);
        let mut n = Vec::new();
        while n.len() < 3 {
            match dec.decode(&mut buf) {
                Ok(Some(item)) => n.push(item),
                _ => break,
            }
        }
        n
    };
    let acc = items(Side::Acceptor);
    if acc.len() == 3 && matches!(acc.get(2), Some(Item::Addr(_))) {
        return Some(Side::Acceptor);
    }
    let conn = items(Side::Connector);
    if matches!(conn.get(2), Some(Item::Connect(_))) {
        return Some(Side::Connector);
    }
    None
}

/// Decodes one connection (number `id`).
pub fn report(
    id: usize,
    conn: &Connection<'_>,
    times: &[f64],
    opts: Options,
    footer_forced: bool,
) -> Report {
    let first = tcp::reassemble(&conn.first);
    let second = conn.second.as_ref().map(|f| (f, tcp::reassemble(f)));
    let protocol = match Protocol::of(&first.bytes) {
        Protocol::Unknown => second
            .as_ref()
            .map_or(Protocol::Unknown, |(_, s)| Protocol::of(&s.bytes)),
        p => p,
    };
    // The first side's role, and the rule that decided it.
    let role_of: fn(&[u8]) -> Option<Side> = match protocol {
        Protocol::V1 => role_from_bytes,
        Protocol::V2 => v2::role_from_bytes,
        Protocol::Unknown => |_: &[u8]| None,
    };
    let by_bytes = role_of(&first.bytes).or_else(|| {
        second
            .as_ref()
            .and_then(|(_, s)| role_of(&s.bytes))
            .map(other)
    });
    let (first_role, roles_from) = match by_bytes {
        Some(side) => (side, "bytes"),
        None if conn.first.sent_syn => (Side::Connector, "syn"),
        None if second.as_ref().is_some_and(|(f, _)| f.sent_syn) => (Side::Acceptor, "syn"),
        None => (Side::Connector, "first packet"),
    };
    let mut sides = vec![(first_role, &conn.first, first)];
    if let Some((flow, stream)) = second {
        sides.push((other(first_role), flow, stream));
    }
    // Acceptor first: its reply's features set the connector's footer.
    sides.sort_by_key(|(side, _, _)| *side == Side::Connector);
    let endpoint = |side: Side| {
        let by_sender = sides
            .iter()
            .find(|(s, _, _)| *s == side)
            .map(|(_, f, _)| f.src);
        let by_receiver = sides
            .iter()
            .find(|(s, _, _)| *s != side)
            .map(|(_, f, _)| f.dst);
        by_sender.or(by_receiver)
    };
    let bytes_of = |side: Side| {
        sides
            .iter()
            .find(|(s, _, _)| *s == side)
            .map_or(0, |(_, _, st)| st.bytes.len() as u64)
    };
    let mut out = Report {
        protocol: Some(protocol).filter(|p| *p != Protocol::Unknown),
        ..Report::default()
    };
    let mut fields: Fields = vec![
        ("protocol", Val::S(protocol.name().into())),
        ("connector", addr_val(endpoint(Side::Connector))),
        ("acceptor", addr_val(endpoint(Side::Acceptor))),
        ("roles_from", Val::S(roles_from.into())),
        ("connector_bytes", Val::U(bytes_of(Side::Connector))),
        ("acceptor_bytes", Val::U(bytes_of(Side::Acceptor))),
        (
            "packets",
            Val::U(sides.iter().map(|(_, f, _)| f.packets).sum()),
        ),
        (
            "retransmitted_bytes",
            Val::U(sides.iter().map(|(_, _, s)| s.retransmitted).sum()),
        ),
        (
            "conflicting_retransmissions",
            Val::U(sides.iter().map(|(_, _, s)| s.conflicting).sum()),
        ),
    ];
    if protocol == Protocol::Unknown {
        let why = "no ceph banner: not Ceph, or the capture started after the connection did";
        fields.push(("skipped", Val::S(why.into())));
    }
    out.lines.push(Line {
        context: vec![("conn", Val::U(id as u64))],
        offset: None,
        kind: "connection",
        fields,
    });
    if protocol == Protocol::Unknown {
        return out;
    }
    let mut items: Vec<(u64, Line)> = Vec::new();
    let mut footer = opts.footer;
    let mut switch = v2::Switch::Guess;
    for (side, _, stream) in &sides {
        let complete = stream.gap.is_none();
        let decoded = if protocol == Protocol::V2 {
            let d = v2::decode(&stream.bytes, *side, opts, switch, complete);
            if *side == Side::Acceptor {
                switch = d.connector_switch;
            }
            out.corrupt |= d.malformed > 0;
            SideLines {
                items: d.items,
                end: d.end,
                crc_errors: d.crc_errors,
            }
        } else {
            let side_opts = Options { footer, ..opts };
            let d = decode::decode(&stream.bytes, *side, side_opts, complete);
            if *side == Side::Acceptor && !footer_forced {
                footer = d.reply_features().map(FooterKind::for_features);
            }
            SideLines::of_v1(d)
        };
        out.crc_errors += decoded.crc_errors;
        let ctx = |packet: Option<u64>| -> Fields {
            vec![
                ("conn", Val::U(id as u64)),
                ("from", Val::S(side_name(*side).into())),
                ("packet", packet.map_or(Val::Null, Val::U)),
                (
                    "time",
                    packet
                        .and_then(|p| times.get(usize::try_from(p).ok()?.checked_sub(1)?))
                        .map_or(Val::Null, |t| Val::F(*t)),
                ),
            ]
        };
        for d in decoded.items {
            let packet = stream.packet_at(d.end.saturating_sub(1));
            items.push((
                packet.unwrap_or(u64::MAX),
                Line {
                    context: ctx(packet),
                    offset: Some(d.offset),
                    kind: d.kind,
                    fields: d.fields,
                },
            ));
        }
        let last = packet_of(stream);
        match &decoded.end {
            End::Complete => {}
            End::Cut { offset, what } => items.push((
                last,
                Line {
                    context: ctx(None),
                    offset: Some(*offset),
                    kind: "cut",
                    fields: vec![("what", Val::S(what.clone()))],
                },
            )),
            End::Corrupt { offset, error } => {
                out.corrupt = true;
                items.push((
                    last,
                    Line {
                        context: ctx(None),
                        offset: Some(*offset),
                        kind: "error",
                        fields: vec![("error", Val::S(error.clone()))],
                    },
                ));
            }
        }
        if let Some(gap) = stream.gap {
            items.push((
                last,
                Line {
                    context: ctx(None),
                    offset: Some(gap.at),
                    kind: "gap",
                    fields: vec![
                        ("missing", Val::U(gap.missing)),
                        ("captured_after", Val::U(gap.after)),
                    ],
                },
            ));
        }
    }
    // Capture order: by the packet that completed each item (stable: a side's items keep
    // their order within a packet).
    items.sort_by_key(|(packet, _)| *packet);
    out.lines.extend(items.into_iter().map(|(_, line)| line));
    out
}

/// One side's lines, from either protocol.
struct SideLines {
    items: Vec<Described>,
    end: End,
    crc_errors: usize,
}

impl SideLines {
    fn of_v1(d: decode::Stream) -> SideLines {
        SideLines {
            items: d.described(),
            crc_errors: d.crc_errors(),
            end: d.end,
        }
    }
}

/// The packet after which a side's problems are reported: its last one.
fn packet_of(stream: &tcp::Stream) -> u64 {
    stream
        .packet_at(
            u64::try_from(stream.bytes.len())
                .unwrap_or(u64::MAX)
                .saturating_sub(1),
        )
        .unwrap_or(u64::MAX)
}

fn other(side: Side) -> Side {
    match side {
        Side::Connector => Side::Acceptor,
        Side::Acceptor => Side::Connector,
    }
}

/// `connector` or `acceptor`.
pub fn side_name(side: Side) -> &'static str {
    match side {
        Side::Connector => "connector",
        Side::Acceptor => "acceptor",
    }
}

fn addr_val(addr: Option<SocketAddr>) -> Val {
    addr.map_or(Val::Null, |a| Val::S(a.to_string()))
}
