//! The authentication exchange with a mon: [`MAuth`] (type 17), [`MAuthReply`] (type 18) and the
//! [`AuthNegotiation`] payload of the first MAuth (msgr-v1-wire.md §8.2-8.3, cephx-msgr2.md §A.2).
//!
//! The auth payloads of later rounds (cephx requests and replies) are opaque bytes here; the auth crate reads them.

use bytes::{Buf, BufMut, Bytes};

use crate::codec::{
    finish, get_blob, get_string, get_u32, get_u64, get_u8, get_vec, put_blob, to_bytes,
};
use crate::{BodyError, PaxosPrefix};

/// `CEPH_AUTH_UNKNOWN`: the protocol of the first MAuth, "let us negotiate".
pub const AUTH_UNKNOWN: u32 = 0;
/// `CEPH_AUTH_NONE`.
pub const AUTH_NONE: u32 = 1;
/// `CEPH_AUTH_CEPHX`.
pub const AUTH_CEPHX: u32 = 2;
/// `CEPH_ENTITY_TYPE_MON`.
pub const ENTITY_TYPE_MON: u32 = 0x01;
/// `CEPH_ENTITY_TYPE_OSD`.
pub const ENTITY_TYPE_OSD: u32 = 0x04;
/// `CEPH_ENTITY_TYPE_CLIENT`.
pub const ENTITY_TYPE_CLIENT: u32 = 0x08;

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
    /// The only `struct_v` Pacific writes (a bare version byte, no `ENCODE_START`).
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
        let version = get_u8(buf, "auth payload struct_v")?;
        if version != Self::STRUCT_V {
            return Err(BodyError::UnsupportedVersion {
                field: "auth payload",
                version,
            });
        }
        let negotiation = Self {
            supported: get_vec(buf, "supported methods", 4, |b| {
                get_u32(b, "supported methods")
            })?,
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
    /// 0 on success, a negative errno otherwise (-95 when no offered method is allowed, -13 for a wrong key).
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
