//! `msgr dump FILE --side connector|acceptor [--json]`: decode a captured msgr v1 stream.
//!
//! One line per handshake item and frame. Text lines are `@OFFSET KIND key=value ...`;
//! with `--json`, one object per line (serde) with the item's byte `offset`, a `kind` field
//! and the spec's field names; 64-bit masks (features) are hex strings (`"0x3f01cfbdfffdffff"`),
//! since JSON numbers above 2^53 lose digits in most readers. `FILE` `-` reads standard input.
//! An empty or unreadable capture is an error (non-zero exit), as is a stream that is cut
//! short before its first item. On a
//! corrupt stream the items before the fault are printed, then the error (naming the byte
//! offset) goes to stderr and the exit status is non-zero. `crc_ok` tells whether the
//! header, front, middle and data CRCs verify (the data CRC only without `FOOTER_NOCRC`);
//! it can only be false with `--no-crc`, which keeps going past mismatches.

use std::fmt::Write as _;
use std::io::{BufWriter, Read, Write};
use std::path::PathBuf;

use anyhow::Context;
use bytes::BytesMut;
use msgr_wire::{CrcFlags, FooterKind, Frame, Item, Limits, Side, StreamDecoder};

/// Arguments of `msgr dump`.
#[derive(Debug, clap::Args)]
pub struct DumpArgs {
    /// The captured bytes one side of a connection wrote, from its banner on (`-`: standard
    /// input).
    pub file: PathBuf,
    /// Which side wrote the bytes: the one that connected or the one that accepted.
    #[arg(long, value_enum)]
    pub side: SideArg,
    /// Print one JSON object per line.
    #[arg(long)]
    pub json: bool,
    /// Footer layout: from the features seen in the stream, or forced (the acceptor's bytes
    /// do not show whether the connector had MSG_AUTH).
    #[arg(long, value_enum, default_value_t = FooterArg::Auto)]
    pub footer: FooterArg,
    /// Do not stop at CRC mismatches; report them in `crc_ok` instead.
    #[arg(long)]
    pub no_crc: bool,
}

/// The `--footer` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FooterArg {
    /// From the connect's (connector) or the reply's (acceptor) features.
    Auto,
    /// The 21-byte footer (MSG_AUTH negotiated).
    New,
    /// The 13-byte footer.
    Old,
}

/// The `--side` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SideArg {
    /// The side that called connect().
    Connector,
    /// The side that accepted.
    Acceptor,
}

/// A field value, printed as JSON or text.
enum Val {
    U(u64),
    I(i64),
    B(bool),
    S(String),
    /// A number shown in hex in text output.
    Hex(u64),
}

/// Runs the subcommand.
pub fn run(args: DumpArgs) -> anyhow::Result<()> {
    let bytes = if args.file.as_os_str() == "-" {
        let mut bytes = Vec::new();
        std::io::stdin()
            .read_to_end(&mut bytes)
            .context("cannot read standard input")?;
        bytes
    } else {
        std::fs::read(&args.file).with_context(|| format!("cannot read {}", args.file.display()))?
    };
    if bytes.is_empty() {
        anyhow::bail!(
            "{}: empty capture (no bytes to decode)",
            args.file.display()
        );
    }
    let side = match args.side {
        SideArg::Connector => Side::Connector,
        SideArg::Acceptor => Side::Acceptor,
    };
    let crc = if args.no_crc {
        CrcFlags::NONE
    } else {
        CrcFlags::default()
    };
    let mut dec = StreamDecoder::new(side, Limits::default(), crc);
    match args.footer {
        FooterArg::Auto => {}
        FooterArg::New => dec.set_footer_kind(FooterKind::New),
        FooterArg::Old => dec.set_footer_kind(FooterKind::Old),
    }
    let mut buf = BytesMut::from(&bytes[..]);
    let mut out = BufWriter::new(std::io::stdout().lock());
    loop {
        let offset = dec.consumed();
        match dec.decode_eof(&mut buf) {
            Ok(Some(item)) => {
                let (kind, fields) = describe(&item);
                if args.json {
                    let line = JsonLine {
                        offset,
                        kind,
                        fields: Fields(&fields),
                    };
                    serde_json::to_writer(&mut out, &line)?;
                    writeln!(out)?;
                } else {
                    writeln!(out, "{}", text_line(offset, kind, &fields))?;
                }
            }
            Ok(None) => break,
            Err(e) => {
                out.flush()?;
                return Err(anyhow::anyhow!("{}: {e}", args.file.display()));
            }
        }
    }
    out.flush()?;
    Ok(())
}

/// The item's kind and fields, named as in the spec.
fn describe(item: &Item) -> (&'static str, Vec<(&'static str, Val)>) {
    use Val::*;
    match item {
        Item::Banner => ("banner", vec![("banner", S("ceph v027".into()))]),
        Item::Addr(a) => (
            "addr",
            vec![
                ("addr", S(a.addr.to_string())),
                ("nonce", U(a.nonce.into())),
            ],
        ),
        Item::Connect(c) => (
            "connect",
            vec![
                ("features", Hex(c.features)),
                ("host_type", U(c.host_type.into())),
                ("global_seq", U(c.global_seq.into())),
                ("connect_seq", U(c.connect_seq.into())),
                ("protocol_version", U(c.protocol_version.into())),
                ("authorizer_protocol", U(c.authorizer_protocol.into())),
                ("authorizer_len", U(c.authorizer.len() as u64)),
                ("flags", U(c.flags.into())),
            ],
        ),
        Item::ConnectReply(r) => (
            "connect_reply",
            vec![
                ("tag", U(r.tag.byte().into())),
                ("features", Hex(r.features)),
                ("global_seq", U(r.global_seq.into())),
                ("connect_seq", U(r.connect_seq.into())),
                ("protocol_version", U(r.protocol_version.into())),
                ("authorizer_len", U(r.authorizer.len() as u64)),
                ("flags", U(r.flags.into())),
            ],
        ),
        Item::Seq(s) => ("seq", vec![("seq", U(*s))]),
        Item::Frame(f) => describe_frame(f),
    }
}

fn describe_frame(frame: &Frame) -> (&'static str, Vec<(&'static str, Val)>) {
    use Val::*;
    match frame {
        Frame::Msg(m) => {
            let h = &m.header;
            let crc_ok = m.verify_crcs(CrcFlags::default()).is_ok();
            (
                "msg",
                vec![
                    ("seq", U(h.seq)),
                    ("tid", U(h.tid)),
                    ("type", U(h.ty.into())),
                    ("priority", U(h.priority.into())),
                    ("version", U(h.version.into())),
                    ("front_len", U(h.front_len.into())),
                    ("middle_len", U(h.middle_len.into())),
                    ("data_len", U(h.data_len.into())),
                    ("data_off", U(h.data_off.into())),
                    ("src_type", U(h.src.ty.0.into())),
                    ("src_num", I(h.src.num)),
                    ("compat_version", U(h.compat_version.into())),
                    ("footer_flags", U(m.footer.flags.into())),
                    ("crc_ok", B(crc_ok)),
                ],
            )
        }
        Frame::Ack(seq) => ("ack", vec![("seq", U(*seq))]),
        Frame::Keepalive => ("keepalive", vec![]),
        Frame::Keepalive2(t) => (
            "keepalive2",
            vec![
                ("stamp_sec", U(t.sec.into())),
                ("stamp_nsec", U(t.nsec.into())),
            ],
        ),
        Frame::Keepalive2Ack(t) => (
            "keepalive2_ack",
            vec![
                ("stamp_sec", U(t.sec.into())),
                ("stamp_nsec", U(t.nsec.into())),
            ],
        ),
        Frame::Close => ("close", vec![]),
    }
}

/// One `--json` line: the item's byte offset in the capture, its kind, then its fields in
/// the spec's order.
#[derive(serde::Serialize)]
struct JsonLine<'a> {
    offset: u64,
    kind: &'a str,
    #[serde(flatten)]
    fields: Fields<'a>,
}

/// An item's fields, serialized as a map in their order.
struct Fields<'a>(&'a [(&'static str, Val)]);

impl serde::Serialize for Fields<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (key, val) in self.0 {
            map.serialize_entry(key, val)?;
        }
        map.end()
    }
}

impl serde::Serialize for Val {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Val::U(n) => serializer.serialize_u64(*n),
            Val::I(n) => serializer.serialize_i64(*n),
            Val::B(b) => serializer.serialize_bool(*b),
            Val::S(t) => serializer.serialize_str(t),
            // A 64-bit mask as a hex string: exact in every JSON reader.
            Val::Hex(n) => serializer.serialize_str(&format!("{n:#x}")),
        }
    }
}

/// One text line: `@OFFSET kind k=v ...`.
fn text_line(offset: u64, kind: &str, fields: &[(&str, Val)]) -> String {
    let mut s = String::new();
    let _ = write!(s, "@{offset} {kind}");
    for (key, val) in fields {
        let _ = match val {
            Val::U(n) => write!(s, " {key}={n}"),
            Val::Hex(n) => write!(s, " {key}={n:#x}"),
            Val::I(n) => write!(s, " {key}={n}"),
            Val::B(b) => write!(s, " {key}={b}"),
            Val::S(t) => write!(s, " {key}={t}"),
        };
    }
    s
}
