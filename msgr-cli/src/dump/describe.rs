//! Items as fields, and fields as a text line or a JSON object.
//!
//! Text lines are `KEY=VALUE ... @OFFSET KIND key=value ...`; JSON lines are one object each
//! whose keys keep their order. 64-bit masks (features) are hex strings in JSON
//! (`"0x3f01cfbdfffdffff"`), since JSON numbers above 2^53 lose digits in most readers.

use std::fmt::Write as _;

use msgr_wire::{Frame, Item};

use super::names::type_name;

/// A field value, printed as JSON or text.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    /// An unsigned number.
    U(u64),
    /// A signed number.
    I(i64),
    /// A number with a fraction (a capture time).
    F(f64),
    /// A flag.
    B(bool),
    /// Text.
    S(String),
    /// A number shown in hex.
    Hex(u64),
    /// No value (JSON `null`; left out of text lines).
    Null,
}

/// An item's fields in order.
pub type Fields = Vec<(&'static str, Val)>;

/// The item's kind and fields, named as in the spec; `crc_error` is the CRC check's verdict
/// on a message (`None`: every CRC verified).
pub fn describe(item: &Item, crc_error: Option<&str>) -> (&'static str, Fields) {
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
        Item::Frame(f) => describe_frame(f, crc_error),
    }
}

fn describe_frame(frame: &Frame, crc_error: Option<&str>) -> (&'static str, Fields) {
    use Val::*;
    match frame {
        Frame::Msg(m) => {
            let h = &m.header;
            let mut fields = vec![
                ("seq", U(h.seq)),
                ("tid", U(h.tid)),
                ("type", U(h.ty.into())),
                ("type_name", type_name(h.ty).map_or(Null, |n| S(n.into()))),
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
                ("crc_ok", B(crc_error.is_none())),
            ];
            if let Some(e) = crc_error {
                fields.push(("crc_error", S(e.to_string())));
            }
            ("msg", fields)
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

/// A decoded item as its line's kind and fields, and where it lies in its stream.
#[derive(Debug, Clone)]
pub struct Described {
    /// Offset of its first byte.
    pub offset: u64,
    /// Offset just past its last byte.
    pub end: u64,
    /// The line's kind.
    pub kind: &'static str,
    /// Its fields.
    pub fields: Fields,
}

/// One output line: where it comes from (`context`: connection, side, packet; empty for a
/// raw stream), the byte offset in its stream, the kind and the fields.
#[derive(Debug, Clone)]
pub struct Line {
    /// Fields printed before the offset.
    pub context: Fields,
    /// Stream offset (`None` for a line about a whole connection).
    pub offset: Option<u64>,
    /// What the line is.
    pub kind: &'static str,
    /// Its fields.
    pub fields: Fields,
}

impl Line {
    /// The line as text: context `k=v` pairs, `@OFFSET`, kind, `k=v` pairs.
    pub fn text(&self) -> String {
        let mut s = String::new();
        push_pairs(&mut s, &self.context);
        if let Some(offset) = self.offset {
            let _ = write!(s, "@{offset} ");
        }
        s.push_str(self.kind);
        for (key, val) in &self.fields {
            if *val != Val::Null {
                s.push(' ');
                push_pair(&mut s, key, val);
            }
        }
        s.trim_end().to_string()
    }
}

impl serde::Serialize for Line {
    /// One JSON object: context, `offset`, `kind`, then the fields, in that order.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        for (key, val) in &self.context {
            map.serialize_entry(key, val)?;
        }
        if let Some(offset) = self.offset {
            map.serialize_entry("offset", &offset)?;
        }
        map.serialize_entry("kind", self.kind)?;
        for (key, val) in &self.fields {
            map.serialize_entry(key, val)?;
        }
        map.end()
    }
}

fn push_pairs(s: &mut String, fields: &[(&str, Val)]) {
    for (key, val) in fields {
        if *val != Val::Null {
            push_pair(s, key, val);
            s.push(' ');
        }
    }
}

fn push_pair(s: &mut String, key: &str, val: &Val) {
    let _ = match val {
        Val::U(n) => write!(s, "{key}={n}"),
        Val::Hex(n) => write!(s, "{key}={n:#x}"),
        Val::I(n) => write!(s, "{key}={n}"),
        Val::F(x) => write!(s, "{key}={x:.6}"),
        Val::B(b) => write!(s, "{key}={b}"),
        // Text with spaces is quoted so that a line still splits into pairs.
        Val::S(t) if t.contains(' ') => write!(s, "{key}={t:?}"),
        Val::S(t) => write!(s, "{key}={t}"),
        Val::Null => Ok(()),
    };
}

impl serde::Serialize for Val {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Val::U(n) => serializer.serialize_u64(*n),
            Val::I(n) => serializer.serialize_i64(*n),
            Val::F(x) => serializer.serialize_f64(*x),
            Val::B(b) => serializer.serialize_bool(*b),
            Val::S(t) => serializer.serialize_str(t),
            // A 64-bit mask as a hex string: exact in every JSON reader.
            Val::Hex(n) => serializer.serialize_str(&format!("{n:#x}")),
            Val::Null => serializer.serialize_none(),
        }
    }
}
