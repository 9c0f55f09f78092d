//! Bodies of the few Ceph messages the interoperability tests exchange with a real monitor.
//!
//! Each type encodes and decodes the *front* of its message (and, where Ceph puts part of the message there, the
//! data segment), with the primitives of msgr-v1-wire.md §3.1: integers little-endian at natural size, strings and
//! bufferlists as le32 length + bytes, vectors as le32 count + elements. The header fields a sender must set
//! (`type`, `version`) are associated constants of each type. Only `bytes` is used here, so these encoders do not
//! depend on the messenger crates they help to test.
//!
//! | type | id | front |
//! |---|---:|---|
//! | [`MPing`] | 2 | empty (the mon's reply carries a string) |
//! | [`MAuth`] | 17 | [`PaxosPrefix`], protocol, auth payload ([`AuthNegotiation`]), monmap epoch |
//! | [`MAuthReply`] | 18 | protocol, result, global id, result bufferlist, result message |
//! | [`MMonCommand`] | 50 | [`PaxosPrefix`], fsid (16 raw bytes), command strings; input in the data segment |
//! | [`MMonCommandAck`] | 51 | [`PaxosPrefix`], r, rs, command strings; output in the data segment |

use std::fmt;
use std::str::FromStr;

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// A front that could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BodyError {
    /// The front ended inside a field.
    #[error("front truncated in {field}: need {needed} bytes, {remaining} left")]
    Truncated {
        /// The field being read.
        field: &'static str,
        /// Bytes the field needs.
        needed: usize,
        /// Bytes that were left.
        remaining: usize,
    },
    /// A string field is not UTF-8.
    #[error("{field} is not utf-8")]
    NotUtf8 {
        /// The field being read.
        field: &'static str,
    },
    /// An encoding version this module does not know.
    #[error("unsupported {field} version {version}")]
    UnsupportedVersion {
        /// The versioned structure.
        field: &'static str,
        /// The version found.
        version: u8,
    },
    /// Bytes were left after the last field.
    #[error("{remaining} trailing bytes after the last field")]
    TrailingBytes {
        /// Bytes left over.
        remaining: usize,
    },
    /// An fsid that is not a 36-character UUID.
    #[error("invalid fsid {text:?}")]
    InvalidFsid {
        /// The text that failed to parse.
        text: String,
    },
}

/// `CEPH_AUTH_UNKNOWN`: the protocol of the first MAuth, "let us negotiate".
pub const AUTH_UNKNOWN: u32 = 0;
/// `CEPH_AUTH_NONE`.
pub const AUTH_NONE: u32 = 1;
/// `CEPH_ENTITY_TYPE_CLIENT`.
pub const ENTITY_TYPE_CLIENT: u32 = 8;

fn need(buf: &impl Buf, field: &'static str, needed: usize) -> Result<(), BodyError> {
    if buf.remaining() < needed {
        return Err(BodyError::Truncated {
            field,
            needed,
            remaining: buf.remaining(),
        });
    }
    Ok(())
}

fn get_u32(buf: &mut impl Buf, field: &'static str) -> Result<u32, BodyError> {
    need(buf, field, 4)?;
    Ok(buf.get_u32_le())
}

fn get_u64(buf: &mut impl Buf, field: &'static str) -> Result<u64, BodyError> {
    need(buf, field, 8)?;
    Ok(buf.get_u64_le())
}

/// A Ceph `bufferlist`: le32 length + bytes.
fn get_blob(buf: &mut impl Buf, field: &'static str) -> Result<Bytes, BodyError> {
    let len = get_u32(buf, field)? as usize;
    need(buf, field, len)?;
    Ok(buf.copy_to_bytes(len))
}

/// A Ceph `std::string`: le32 length + bytes (UTF-8 for every string these messages carry).
fn get_string(buf: &mut impl Buf, field: &'static str) -> Result<String, BodyError> {
    let raw = get_blob(buf, field)?;
    String::from_utf8(raw.to_vec()).map_err(|_| BodyError::NotUtf8 { field })
}

/// A `std::vector<std::string>`: le32 count + strings. The count is not trusted for preallocation.
fn get_strings(buf: &mut impl Buf, field: &'static str) -> Result<Vec<String>, BodyError> {
    let count = get_u32(buf, field)?;
    (0..count).map(|_| get_string(buf, field)).collect()
}

fn put_blob(buf: &mut impl BufMut, bytes: &[u8]) {
    buf.put_u32_le(bytes.len() as u32);
    buf.put_slice(bytes);
}

fn put_strings(buf: &mut impl BufMut, strings: &[String]) {
    buf.put_u32_le(strings.len() as u32);
    for s in strings {
        put_blob(buf, s.as_bytes());
    }
}

fn finish(buf: &impl Buf) -> Result<(), BodyError> {
    match buf.remaining() {
        0 => Ok(()),
        remaining => Err(BodyError::TrailingBytes { remaining }),
    }
}

fn to_bytes(encode: impl FnOnce(&mut BytesMut)) -> Bytes {
    let mut buf = BytesMut::new();
    encode(&mut buf);
    buf.freeze()
}

/// The 18-byte prefix every `PaxosServiceMessage` front starts with (`paxos_encode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PaxosPrefix {
    /// The paxos version the sender has seen (0 from clients).
    pub version: u64,
    /// `deprecated_session_mon`, -1 when unset.
    pub deprecated_session_mon: i16,
    /// `deprecated_session_mon_tid`, 0 when unset.
    pub deprecated_session_mon_tid: u64,
}

impl PaxosPrefix {
    /// Encoded size.
    pub const LEN: usize = 18;

    /// Appends the prefix.
    pub fn encode(&self, buf: &mut impl BufMut) {
        buf.put_u64_le(self.version);
        buf.put_i16_le(self.deprecated_session_mon);
        buf.put_u64_le(self.deprecated_session_mon_tid);
    }

    /// Reads the prefix.
    pub fn decode(buf: &mut impl Buf) -> Result<Self, BodyError> {
        need(buf, "paxos prefix", Self::LEN)?;
        Ok(Self {
            version: buf.get_u64_le(),
            deprecated_session_mon: buf.get_i16_le(),
            deprecated_session_mon_tid: buf.get_u64_le(),
        })
    }
}

impl Default for PaxosPrefix {
    /// What a client sends: version 0, no session mon (-1), tid 0.
    fn default() -> Self {
        Self {
            version: 0,
            deprecated_session_mon: -1,
            deprecated_session_mon_tid: 0,
        }
    }
}

/// A cluster fsid: a UUID, encoded as its 16 raw bytes in text order (`uuid_d`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Fsid(pub [u8; 16]);

impl FromStr for Fsid {
    type Err = BodyError;

    /// Parses the 36-character form, `11111111-2222-3333-4444-555555555555`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || BodyError::InvalidFsid {
            text: text.to_owned(),
        };
        let dashes = [8, 13, 18, 23];
        if text.len() != 36 || dashes.iter().any(|&i| text.as_bytes()[i] != b'-') {
            return Err(invalid());
        }
        let hex: String = text.chars().filter(|&c| c != '-').collect();
        if hex.len() != 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(invalid());
        }
        let mut out = [0u8; 16];
        for (i, byte) in out.iter_mut().enumerate() {
            let pair = hex.get(2 * i..2 * i + 2).ok_or_else(invalid)?;
            *byte = u8::from_str_radix(pair, 16).map_err(|_| invalid())?;
        }
        Ok(Self(out))
    }
}

impl fmt::Display for Fsid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, byte) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

/// `MPing` (type 2). A client sends it with an empty front; ceph-mon answers, even before authentication, with an
/// MPing whose front is a string (its health and status as JSON), kept here as raw bytes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MPing {
    /// The front as received; empty when we send.
    pub front: Bytes,
}

impl MPing {
    /// `CEPH_MSG_PING`.
    pub const TYPE: u16 = 2;
    /// Header version.
    pub const VERSION: u16 = 1;

    /// The front of an MPing we send: empty.
    pub fn to_front(&self) -> Bytes {
        self.front.clone()
    }

    /// Keeps any front as received.
    pub fn decode(front: &mut impl Buf) -> Result<Self, BodyError> {
        Ok(Self {
            front: front.copy_to_bytes(front.remaining()),
        })
    }

    /// The string a mon's reply carries (le32 length + JSON with `health` and `mon_status`, about 3 KB).
    pub fn text(&self) -> Result<String, BodyError> {
        let mut front = self.front.clone();
        let text = get_string(&mut front, "ping text")?;
        finish(&front)?;
        Ok(text)
    }
}

/// The auth payload of the first `MAuth` (protocol 0): which methods the client supports and who it is
/// (msgr-v1-wire.md §8.2, `MonConnection::start`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthNegotiation {
    /// Supported auth methods, e.g. `[AUTH_NONE]`.
    pub supported: Vec<u32>,
    /// `EntityName` type, [`ENTITY_TYPE_CLIENT`] for a client.
    pub entity_type: u32,
    /// `EntityName` id: `admin` for `client.admin`.
    pub entity_id: String,
    /// 0 on first contact, the assigned id when re-authenticating.
    pub global_id: u64,
}

impl AuthNegotiation {
    /// The only `struct_v` Pacific writes.
    pub const STRUCT_V: u8 = 1;

    /// `client.<id>` offering auth none only, with no global id yet.
    pub fn none_for_client(id: &str) -> Self {
        Self {
            supported: vec![AUTH_NONE],
            entity_type: ENTITY_TYPE_CLIENT,
            entity_id: id.to_owned(),
            global_id: 0,
        }
    }

    /// Appends the payload.
    pub fn encode(&self, buf: &mut impl BufMut) {
        buf.put_u8(Self::STRUCT_V);
        buf.put_u32_le(self.supported.len() as u32);
        for method in &self.supported {
            buf.put_u32_le(*method);
        }
        buf.put_u32_le(self.entity_type);
        put_blob(buf, self.entity_id.as_bytes());
        buf.put_u64_le(self.global_id);
    }

    /// Reads a whole payload.
    pub fn decode(buf: &mut impl Buf) -> Result<Self, BodyError> {
        need(buf, "auth payload struct_v", 1)?;
        let version = buf.get_u8();
        if version != Self::STRUCT_V {
            return Err(BodyError::UnsupportedVersion {
                field: "auth payload",
                version,
            });
        }
        let count = get_u32(buf, "supported methods")?;
        let supported = (0..count)
            .map(|_| get_u32(buf, "supported methods"))
            .collect::<Result<_, _>>()?;
        let negotiation = Self {
            supported,
            entity_type: get_u32(buf, "entity type")?,
            entity_id: get_string(buf, "entity id")?,
            global_id: get_u64(buf, "global id")?,
        };
        finish(buf)?;
        Ok(negotiation)
    }
}

/// `MAuth` (type 17), client → mon (msgr-v1-wire.md §8.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MAuth {
    /// The PaxosServiceMessage prefix.
    pub paxos: PaxosPrefix,
    /// [`AUTH_UNKNOWN`] in the first request, then the negotiated method.
    pub protocol: u32,
    /// Opaque to the messenger; an encoded [`AuthNegotiation`] when `protocol` is 0.
    pub auth_payload: Bytes,
    /// The client's monmap epoch (0 if it has none).
    pub monmap_epoch: u32,
}

impl MAuth {
    /// `CEPH_MSG_AUTH`.
    pub const TYPE: u16 = 17;
    /// Header version (and compat version).
    pub const VERSION: u16 = 1;

    /// The first MAuth of `client.<id>` offering auth none, as Ceph's own client sends it.
    pub fn initial_none(id: &str) -> Self {
        let negotiation = AuthNegotiation::none_for_client(id);
        Self {
            paxos: PaxosPrefix::default(),
            protocol: AUTH_UNKNOWN,
            auth_payload: to_bytes(|b| negotiation.encode(b)),
            monmap_epoch: 0,
        }
    }

    /// The negotiation the payload carries (meaningful when `protocol` is [`AUTH_UNKNOWN`]).
    pub fn negotiation(&self) -> Result<AuthNegotiation, BodyError> {
        AuthNegotiation::decode(&mut self.auth_payload.clone())
    }

    /// Appends the front.
    pub fn encode(&self, buf: &mut impl BufMut) {
        self.paxos.encode(buf);
        buf.put_u32_le(self.protocol);
        put_blob(buf, &self.auth_payload);
        buf.put_u32_le(self.monmap_epoch);
    }

    /// The encoded front.
    pub fn to_front(&self) -> Bytes {
        to_bytes(|b| self.encode(b))
    }

    /// Reads a whole front.
    pub fn decode(front: &mut impl Buf) -> Result<Self, BodyError> {
        let msg = Self {
            paxos: PaxosPrefix::decode(front)?,
            protocol: get_u32(front, "protocol")?,
            auth_payload: get_blob(front, "auth payload")?,
            monmap_epoch: get_u32(front, "monmap epoch")?,
        };
        finish(front)?;
        Ok(msg)
    }
}

/// `MAuthReply` (type 18), mon → client (msgr-v1-wire.md §8.3). No paxos prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MAuthReply {
    /// The method the mon picked ([`AUTH_NONE`] with auth none).
    pub protocol: u32,
    /// 0 on success, a negative errno otherwise (-95 when no offered method is allowed).
    pub result: i32,
    /// The global id assigned to the client.
    pub global_id: u64,
    /// Method-specific reply, empty for auth none.
    pub result_bl: Bytes,
    /// Human-readable message, usually empty.
    pub result_msg: String,
}

impl MAuthReply {
    /// `CEPH_MSG_AUTH_REPLY`.
    pub const TYPE: u16 = 18;
    /// Header version.
    pub const VERSION: u16 = 1;

    /// Appends the front.
    pub fn encode(&self, buf: &mut impl BufMut) {
        buf.put_u32_le(self.protocol);
        buf.put_i32_le(self.result);
        buf.put_u64_le(self.global_id);
        put_blob(buf, &self.result_bl);
        put_blob(buf, self.result_msg.as_bytes());
    }

    /// The encoded front.
    pub fn to_front(&self) -> Bytes {
        to_bytes(|b| self.encode(b))
    }

    /// Reads a whole front.
    pub fn decode(front: &mut impl Buf) -> Result<Self, BodyError> {
        let reply = Self {
            protocol: get_u32(front, "protocol")?,
            result: get_u32(front, "result")? as i32,
            global_id: get_u64(front, "global id")?,
            result_bl: get_blob(front, "result bufferlist")?,
            result_msg: get_string(front, "result message")?,
        };
        finish(front)?;
        Ok(reply)
    }
}

/// `MMonCommand` (type 50), client → mon: a command as JSON strings (`src/messages/MMonCommand.h`). Its input
/// (`-i FILE`) travels in the message's data segment, which is not part of this front.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MMonCommand {
    /// The PaxosServiceMessage prefix.
    pub paxos: PaxosPrefix,
    /// The cluster's fsid.
    pub fsid: Fsid,
    /// The command, usually one JSON object such as `{"prefix": "status", "format": "json"}`.
    pub cmd: Vec<String>,
}

impl MMonCommand {
    /// `MSG_MON_COMMAND`.
    pub const TYPE: u16 = 50;
    /// Header version.
    pub const VERSION: u16 = 1;

    /// One JSON command for the cluster `fsid`, with a client's paxos prefix.
    pub fn new(fsid: Fsid, json: &str) -> Self {
        Self {
            paxos: PaxosPrefix::default(),
            fsid,
            cmd: vec![json.to_owned()],
        }
    }

    /// Appends the front.
    pub fn encode(&self, buf: &mut impl BufMut) {
        self.paxos.encode(buf);
        buf.put_slice(&self.fsid.0);
        put_strings(buf, &self.cmd);
    }

    /// The encoded front.
    pub fn to_front(&self) -> Bytes {
        to_bytes(|b| self.encode(b))
    }

    /// Reads a whole front.
    pub fn decode(front: &mut impl Buf) -> Result<Self, BodyError> {
        let paxos = PaxosPrefix::decode(front)?;
        need(front, "fsid", 16)?;
        let mut fsid = [0u8; 16];
        front.copy_to_slice(&mut fsid);
        let msg = Self {
            paxos,
            fsid: Fsid(fsid),
            cmd: get_strings(front, "cmd")?,
        };
        finish(front)?;
        Ok(msg)
    }
}

/// `MMonCommandAck` (type 51), mon → client (`src/messages/MMonCommandAck.h`): the return code, a status string,
/// the command echoed, and the command's output in the data segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MMonCommandAck {
    /// The PaxosServiceMessage prefix (its `version` is the paxos version the command saw or made).
    pub paxos: PaxosPrefix,
    /// Return code: 0 or a negative errno.
    pub r: i32,
    /// Status string, e.g. `set big` after `config-key set big`.
    pub rs: String,
    /// The command as sent.
    pub cmd: Vec<String>,
    /// The output (`outbl`), carried in the data segment.
    pub data: Bytes,
}

impl MMonCommandAck {
    /// `MSG_MON_COMMAND_ACK`.
    pub const TYPE: u16 = 51;
    /// Header version.
    pub const VERSION: u16 = 1;

    /// Appends the front (the data segment is `self.data`, sent separately).
    pub fn encode(&self, buf: &mut impl BufMut) {
        self.paxos.encode(buf);
        buf.put_i32_le(self.r);
        put_blob(buf, self.rs.as_bytes());
        put_strings(buf, &self.cmd);
    }

    /// The encoded front.
    pub fn to_front(&self) -> Bytes {
        to_bytes(|b| self.encode(b))
    }

    /// Reads a whole front, keeping `data` (the message's data segment) as the output.
    pub fn decode(front: &mut impl Buf, data: Bytes) -> Result<Self, BodyError> {
        let ack = Self {
            paxos: PaxosPrefix::decode(front)?,
            r: get_u32(front, "r")? as i32,
            rs: get_string(front, "rs")?,
            cmd: get_strings(front, "cmd")?,
            data,
        };
        finish(front)?;
        Ok(ack)
    }
}

#[cfg(test)]
#[path = "ceph_msgs_tests.rs"]
mod tests;
