//! The packets of a pcap or pcapng capture, with their link type and time.
//!
//! Built on rusticata's `pcap-parser`, which reads both formats (pcap in either byte order,
//! microsecond or nanosecond stamps; pcapng sections of either byte order with any number of
//! interfaces) from a byte slice without copying packets and without allocating anything
//! sized by a declared length. A capture cut short (the last record incomplete) yields the
//! packets before the cut and says so; garbage in the middle ends the reading there with a
//! note. What it does not do: the modified (Kuznetzov) pcap format, compressed captures.

use pcap_parser::nom::Err as NomErr;
use pcap_parser::pcapng::Block;
use pcap_parser::{LegacyPcapBlock, PcapBlockOwned, PcapError};

/// The two capture formats, told apart by their first four bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// libpcap's format.
    Pcap,
    /// pcapng.
    PcapNg,
}

impl Format {
    /// The capture format of a file starting with `bytes`, if it is one.
    pub fn sniff(bytes: &[u8]) -> Option<Format> {
        let magic = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?);
        match magic {
            0xa1b2_c3d4 | 0xd4c3_b2a1 | 0xa1b2_3c4d | 0x4d3c_b2a1 | 0xa1b2_cd34 | 0x34cd_b2a1 => {
                Some(Format::Pcap)
            }
            0x0a0d_0d0a => Some(Format::PcapNg),
            _ => None,
        }
    }
}

/// One captured packet.
#[derive(Debug, Clone, Copy)]
pub struct Packet<'a> {
    /// 1-based number in the capture, as Wireshark counts.
    pub number: u64,
    /// Seconds since the epoch.
    pub time: f64,
    /// The `LINKTYPE_*` of its interface.
    pub linktype: i32,
    /// The bytes captured (fewer than were sent when the snap length cut the packet).
    pub data: &'a [u8],
}

/// A capture's packets and what was wrong with the file itself.
#[derive(Debug, Default)]
pub struct Packets<'a> {
    /// The packets, in file order.
    pub packets: Vec<Packet<'a>>,
    /// Problems of the file (cut short, garbage), one sentence each.
    pub notes: Vec<String>,
}

/// Reads every packet of a capture in `format`. Fails only when the file header itself is
/// unreadable.
pub fn read(format: Format, bytes: &[u8]) -> anyhow::Result<Packets<'_>> {
    match format {
        Format::Pcap => read_pcap(bytes),
        Format::PcapNg => read_pcapng(bytes),
    }
}

fn read_pcap(bytes: &[u8]) -> anyhow::Result<Packets<'_>> {
    let (mut rest, header) = pcap_parser::parse_pcap_header(bytes)
        .map_err(|e| anyhow::anyhow!("unreadable pcap header: {}", nom_text(&e)))?;
    if header.is_modified_format() {
        anyhow::bail!(
            "the modified (Kuznetzov) pcap format is not supported; convert it with editcap"
        );
    }
    let parse = if header.is_bigendian() {
        pcap_parser::parse_pcap_frame_be
    } else {
        pcap_parser::parse_pcap_frame
    };
    let frac = if header.is_nanosecond_precision() {
        1e-9
    } else {
        1e-6
    };
    let mut out = Packets::default();
    while !rest.is_empty() {
        match parse(rest) {
            Ok((
                next,
                LegacyPcapBlock {
                    ts_sec,
                    ts_usec,
                    data,
                    ..
                },
            )) => {
                rest = next;
                let number = out.packets.len() as u64 + 1;
                out.packets.push(Packet {
                    number,
                    time: f64::from(ts_sec) + f64::from(ts_usec) * frac,
                    linktype: header.network.0,
                    data,
                });
            }
            Err(e) => {
                out.notes.push(cut_note(out.packets.len(), rest.len(), &e));
                break;
            }
        }
    }
    Ok(out)
}

/// What pcapng needs to remember of an interface.
#[derive(Debug, Clone, Copy)]
struct Interface {
    linktype: i32,
    /// Timestamp units per second.
    resolution: u64,
    /// Seconds added to every timestamp.
    offset: i64,
}

fn read_pcapng(bytes: &[u8]) -> anyhow::Result<Packets<'_>> {
    let slice = pcap_parser::PcapNGSlice::from_slice(bytes)
        .map_err(|e| anyhow::anyhow!("unreadable pcapng section header: {}", nom_text(&e)))?;
    let mut interfaces: Vec<Interface> = Vec::new();
    let mut out = Packets::default();
    let mut unknown_interface = 0u64;
    let mut consumed = 0usize;
    for block in slice {
        let block = match block {
            Ok(PcapBlockOwned::NG(block)) => block,
            Ok(_) => continue,
            Err(e) => {
                let left = bytes.len().saturating_sub(consumed);
                out.notes.push(cut_note(out.packets.len(), left, &e));
                break;
            }
        };
        consumed = consumed.saturating_add(block_len(&block));
        let (if_id, data, ts) = match block {
            // A new section starts its own interface numbering.
            Block::SectionHeader(_) => {
                interfaces.clear();
                continue;
            }
            Block::InterfaceDescription(idb) => {
                interfaces.push(Interface {
                    linktype: idb.linktype.0,
                    resolution: idb.ts_resolution().filter(|r| *r > 0).unwrap_or(1_000_000),
                    offset: idb.ts_offset(),
                });
                continue;
            }
            // The block's data is padded to 32 bits: the packet is its first `caplen` bytes.
            Block::EnhancedPacket(epb) => (
                epb.if_id,
                epb.data.get(..epb.caplen as usize).unwrap_or(epb.data),
                (u64::from(epb.ts_high) << 32) | u64::from(epb.ts_low),
            ),
            Block::SimplePacket(spb) => (
                0,
                spb.data.get(..spb.origlen as usize).unwrap_or(spb.data),
                0,
            ),
            _ => continue,
        };
        let Some(iface) = usize::try_from(if_id).ok().and_then(|i| interfaces.get(i)) else {
            unknown_interface += 1;
            continue;
        };
        let secs = ts / iface.resolution;
        let frac = (ts % iface.resolution) as f64 / iface.resolution as f64;
        let number = out.packets.len() as u64 + 1;
        out.packets.push(Packet {
            number,
            time: secs as f64 + iface.offset as f64 + frac,
            linktype: iface.linktype,
            data,
        });
    }
    if unknown_interface > 0 {
        out.notes.push(format!(
            "{unknown_interface} packets name an interface the capture does not describe; skipped"
        ));
    }
    Ok(out)
}

fn block_len(block: &Block<'_>) -> usize {
    let len = match block {
        Block::SectionHeader(b) => b.block_len1,
        Block::InterfaceDescription(b) => b.block_len1,
        Block::EnhancedPacket(b) => b.block_len1,
        Block::SimplePacket(b) => b.block_len1,
        Block::NameResolution(b) => b.block_len1,
        Block::InterfaceStatistics(b) => b.block_len1,
        Block::SystemdJournalExport(b) => b.block_len1,
        Block::DecryptionSecrets(b) => b.block_len1,
        Block::ProcessInformation(b) => b.block_len1,
        Block::Custom(b) => b.block_len1,
        Block::Unknown(b) => b.block_len1,
    };
    usize::try_from(len).unwrap_or(usize::MAX)
}

/// The note for a capture whose reading stopped: cut short, or unreadable from there on.
fn cut_note(read: usize, left: usize, e: &NomErr<PcapError<&[u8]>>) -> String {
    match e {
        NomErr::Incomplete(_) => format!(
            "the capture is cut short: its last record is incomplete ({left} bytes after packet {read})"
        ),
        _ => format!(
            "the capture is unreadable after packet {read} ({left} bytes left: {})",
            nom_text(e)
        ),
    }
}

/// A parser error in a few words (pcap-parser's own `Display` prints the rest of the input).
fn nom_text(e: &NomErr<PcapError<&[u8]>>) -> String {
    match e {
        NomErr::Incomplete(_) => "cut short".to_string(),
        NomErr::Error(e) | NomErr::Failure(e) => match e {
            PcapError::NomError(_, kind) => format!("bad block ({})", kind.description()),
            PcapError::OwnedNomError(_, kind) => format!("bad block ({})", kind.description()),
            PcapError::HeaderNotRecognized => "not a pcap or pcapng header".to_string(),
            PcapError::Incomplete(_) | PcapError::UnexpectedEof | PcapError::Eof => {
                "cut short".to_string()
            }
            _ => "unreadable".to_string(),
        },
    }
}
