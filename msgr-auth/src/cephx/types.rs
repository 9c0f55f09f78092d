//! The cephx structures and their encodings (CephxProtocol.h, Auth.h), field for field.
//!
//! None of them uses `ENCODE_START`: each starts with a bare `u8 struct_v`. Decoders accept
//! versions at or above the oldest Ceph still sends and read the fields of the versions they
//! know. Encryption of the structures that travel encrypted is in `envelope.rs`; which key
//! encrypts what is in `ticket.rs` and `authorizer.rs`.

use bytes::{Buf, BufMut, Bytes};

use crate::codec::{
    get_blob, get_i32, get_struct_v, get_u16, get_u32, get_u64, get_u8, put_blob, Decode, Encode,
    UTime,
};
use crate::entity::EntityName;
use crate::key::CryptoKey;
use crate::AuthError;

/// `CEPHX_GET_AUTH_SESSION_KEY`: authenticate with the entity's secret, get the AUTH ticket.
pub const CEPHX_GET_AUTH_SESSION_KEY: u16 = 0x0100;
/// `CEPHX_GET_PRINCIPAL_SESSION_KEY`: service tickets, bought with the AUTH ticket.
pub const CEPHX_GET_PRINCIPAL_SESSION_KEY: u16 = 0x0200;
/// `CEPHX_GET_ROTATING_KEY`: a daemon's rotating service secrets.
pub const CEPHX_GET_ROTATING_KEY: u16 = 0x0400;

/// `CephXServerChallenge`: the mon's first reply, `u8 1, u64 server_challenge`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CephXServerChallenge {
    /// Random, non-zero.
    pub server_challenge: u64,
}

impl Encode for CephXServerChallenge {
    fn encode(&self, buf: &mut impl BufMut) {
        buf.put_u8(1);
        buf.put_u64_le(self.server_challenge);
    }
}

impl Decode for CephXServerChallenge {
    fn decode(buf: &mut impl Buf) -> Result<Self, AuthError> {
        get_struct_v(buf, "CephXServerChallenge", 1)?;
        Ok(CephXServerChallenge {
            server_challenge: get_u64(buf, "CephXServerChallenge.server_challenge")?,
        })
    }
}

/// `CephXRequestHeader`: `u16 request_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CephXRequestHeader {
    /// `CEPHX_GET_*`.
    pub request_type: u16,
}

impl Encode for CephXRequestHeader {
    fn encode(&self, buf: &mut impl BufMut) {
        buf.put_u16_le(self.request_type);
    }
}

impl Decode for CephXRequestHeader {
    fn decode(buf: &mut impl Buf) -> Result<Self, AuthError> {
        Ok(CephXRequestHeader {
            request_type: get_u16(buf, "CephXRequestHeader")?,
        })
    }
}

/// `CephXResponseHeader`: `u16 request_type, s32 status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CephXResponseHeader {
    /// The request this answers.
    pub request_type: u16,
    /// 0 or −errno.
    pub status: i32,
}

impl Encode for CephXResponseHeader {
    fn encode(&self, buf: &mut impl BufMut) {
        buf.put_u16_le(self.request_type);
        buf.put_i32_le(self.status);
    }
}

impl Decode for CephXResponseHeader {
    fn decode(buf: &mut impl Buf) -> Result<Self, AuthError> {
        Ok(CephXResponseHeader {
            request_type: get_u16(buf, "CephXResponseHeader.request_type")?,
            status: get_i32(buf, "CephXResponseHeader.status")?,
        })
    }
}

/// `CephXTicketBlob`: `u8 1, u64 secret_id, bufferlist blob`. The blob is opaque to a client:
/// the service decrypts it (a [`CephXServiceTicketInfo`] under the service secret `secret_id`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CephXTicketBlob {
    /// Which rotating secret encrypted the blob (`u64::MAX`: the service's general key).
    pub secret_id: u64,
    /// The encrypted ticket info.
    pub blob: Bytes,
}

impl Encode for CephXTicketBlob {
    fn encode(&self, buf: &mut impl BufMut) {
        buf.put_u8(1);
        buf.put_u64_le(self.secret_id);
        put_blob(buf, &self.blob);
    }
}

impl Decode for CephXTicketBlob {
    fn decode(buf: &mut impl Buf) -> Result<Self, AuthError> {
        get_struct_v(buf, "CephXTicketBlob", 1)?;
        Ok(CephXTicketBlob {
            secret_id: get_u64(buf, "CephXTicketBlob.secret_id")?,
            blob: get_blob(buf, "CephXTicketBlob.blob")?,
        })
    }
}

/// `CephXAuthenticate` (sent as v3): the GET_AUTH_SESSION_KEY request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CephXAuthenticate {
    /// Random.
    pub client_challenge: u64,
    /// The challenge key ([`crate::cephx::challenge_key`]).
    pub key: u64,
    /// The previous AUTH ticket when reclaiming a global id, else empty.
    pub old_ticket: CephXTicketBlob,
    /// Service tickets wanted in the same round trip (v2+; 0 = none).
    pub other_keys: u32,
}

impl Encode for CephXAuthenticate {
    fn encode(&self, buf: &mut impl BufMut) {
        buf.put_u8(3);
        buf.put_u64_le(self.client_challenge);
        buf.put_u64_le(self.key);
        self.old_ticket.encode(buf);
        buf.put_u32_le(self.other_keys);
    }
}

impl Decode for CephXAuthenticate {
    fn decode(buf: &mut impl Buf) -> Result<Self, AuthError> {
        let v = get_struct_v(buf, "CephXAuthenticate", 1)?;
        let client_challenge = get_u64(buf, "CephXAuthenticate.client_challenge")?;
        let key = get_u64(buf, "CephXAuthenticate.key")?;
        let old_ticket = CephXTicketBlob::decode(buf)?;
        let other_keys = if v >= 2 {
            get_u32(buf, "CephXAuthenticate.other_keys")?
        } else {
            0
        };
        Ok(CephXAuthenticate {
            client_challenge,
            key,
            old_ticket,
            other_keys,
        })
    }
}

/// `CephXServiceTicket`: `u8 1, CryptoKey session_key, utime_t validity`, sent encrypted to
/// the client in a ticket reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CephXServiceTicket {
    /// The session key shared with the service.
    pub session_key: CryptoKey,
    /// How long the ticket is valid (a duration).
    pub validity: UTime,
}

impl Encode for CephXServiceTicket {
    fn encode(&self, buf: &mut impl BufMut) {
        buf.put_u8(1);
        self.session_key.encode(buf);
        self.validity.encode(buf);
    }
}

impl Decode for CephXServiceTicket {
    fn decode(buf: &mut impl Buf) -> Result<Self, AuthError> {
        get_struct_v(buf, "CephXServiceTicket", 1)?;
        Ok(CephXServiceTicket {
            session_key: CryptoKey::decode(buf)?,
            validity: UTime::decode(buf)?,
        })
    }
}

/// `AuthCapsInfo`: `u8 1, u8 allow_all, bufferlist caps` (the encoded cap string).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthCapsInfo {
    /// Whether every cap is allowed.
    pub allow_all: bool,
    /// The encoded caps (for a service: `string`, e.g. `07000000 "allow *"`).
    pub caps: Bytes,
}

impl Encode for AuthCapsInfo {
    fn encode(&self, buf: &mut impl BufMut) {
        buf.put_u8(1);
        buf.put_u8(u8::from(self.allow_all));
        put_blob(buf, &self.caps);
    }
}

impl Decode for AuthCapsInfo {
    fn decode(buf: &mut impl Buf) -> Result<Self, AuthError> {
        get_struct_v(buf, "AuthCapsInfo", 1)?;
        Ok(AuthCapsInfo {
            allow_all: get_u8(buf, "AuthCapsInfo.allow_all")? != 0,
            caps: get_blob(buf, "AuthCapsInfo.caps")?,
        })
    }
}

/// `AuthTicket` (v2): who the ticket is for, its lifetime and caps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthTicket {
    /// The authenticated entity.
    pub name: EntityName,
    /// Its global id.
    pub global_id: u64,
    /// Deprecated; Ceph writes `u64::MAX`.
    pub auid: u64,
    /// Issued at.
    pub created: UTime,
    /// Expires at.
    pub expires: UTime,
    /// Caps for the service the ticket is for.
    pub caps: AuthCapsInfo,
    /// Flags (0).
    pub flags: u32,
}

impl Encode for AuthTicket {
    fn encode(&self, buf: &mut impl BufMut) {
        buf.put_u8(2);
        self.name.encode(buf);
        buf.put_u64_le(self.global_id);
        buf.put_u64_le(self.auid);
        self.created.encode(buf);
        self.expires.encode(buf);
        self.caps.encode(buf);
        buf.put_u32_le(self.flags);
    }
}

impl Decode for AuthTicket {
    fn decode(buf: &mut impl Buf) -> Result<Self, AuthError> {
        let v = get_struct_v(buf, "AuthTicket", 1)?;
        let name = EntityName::decode(buf)?;
        let global_id = get_u64(buf, "AuthTicket.global_id")?;
        let auid = if v >= 2 {
            get_u64(buf, "AuthTicket.auid")?
        } else {
            u64::MAX
        };
        Ok(AuthTicket {
            name,
            global_id,
            auid,
            created: UTime::decode(buf)?,
            expires: UTime::decode(buf)?,
            caps: AuthCapsInfo::decode(buf)?,
            flags: get_u32(buf, "AuthTicket.flags")?,
        })
    }
}

/// `CephXServiceTicketInfo`: `u8 1, AuthTicket, CryptoKey session_key`; what a ticket blob
/// holds, encrypted with the service secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CephXServiceTicketInfo {
    /// The ticket.
    pub ticket: AuthTicket,
    /// The session key the client also received.
    pub session_key: CryptoKey,
}

impl Encode for CephXServiceTicketInfo {
    fn encode(&self, buf: &mut impl BufMut) {
        buf.put_u8(1);
        self.ticket.encode(buf);
        self.session_key.encode(buf);
    }
}

impl Decode for CephXServiceTicketInfo {
    fn decode(buf: &mut impl Buf) -> Result<Self, AuthError> {
        get_struct_v(buf, "CephXServiceTicketInfo", 1)?;
        Ok(CephXServiceTicketInfo {
            ticket: AuthTicket::decode(buf)?,
            session_key: CryptoKey::decode(buf)?,
        })
    }
}

/// `CephXServiceTicketRequest`: `u8 1, u32 keys` (a mask of service entity types).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CephXServiceTicketRequest {
    /// Services wanted.
    pub keys: u32,
}

impl Encode for CephXServiceTicketRequest {
    fn encode(&self, buf: &mut impl BufMut) {
        buf.put_u8(1);
        buf.put_u32_le(self.keys);
    }
}

impl Decode for CephXServiceTicketRequest {
    fn decode(buf: &mut impl Buf) -> Result<Self, AuthError> {
        get_struct_v(buf, "CephXServiceTicketRequest", 1)?;
        Ok(CephXServiceTicketRequest {
            keys: get_u32(buf, "CephXServiceTicketRequest.keys")?,
        })
    }
}

/// `CephXAuthorize` (v2): `u8 2, u64 nonce, u8 have_challenge, u64 server_challenge_plus_one`,
/// encrypted with the ticket's session key inside an authorizer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CephXAuthorize {
    /// Random, kept across a challenge.
    pub nonce: u64,
    /// Whether this answers a challenge.
    pub have_challenge: bool,
    /// The challenge + 1 (wrapping), or 0.
    pub server_challenge_plus_one: u64,
}

impl Encode for CephXAuthorize {
    fn encode(&self, buf: &mut impl BufMut) {
        buf.put_u8(2);
        buf.put_u64_le(self.nonce);
        buf.put_u8(u8::from(self.have_challenge));
        buf.put_u64_le(self.server_challenge_plus_one);
    }
}

impl Decode for CephXAuthorize {
    fn decode(buf: &mut impl Buf) -> Result<Self, AuthError> {
        let v = get_struct_v(buf, "CephXAuthorize", 1)?;
        let nonce = get_u64(buf, "CephXAuthorize.nonce")?;
        let (have_challenge, server_challenge_plus_one) = if v >= 2 {
            (
                get_u8(buf, "CephXAuthorize.have_challenge")? != 0,
                get_u64(buf, "CephXAuthorize.server_challenge_plus_one")?,
            )
        } else {
            (false, 0)
        };
        Ok(CephXAuthorize {
            nonce,
            have_challenge,
            server_challenge_plus_one,
        })
    }
}

/// `CephXAuthorizeChallenge`: `u8 1, u64 server_challenge` (sent raw-encrypted, no length).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CephXAuthorizeChallenge {
    /// The service's random challenge.
    pub server_challenge: u64,
}

impl Encode for CephXAuthorizeChallenge {
    fn encode(&self, buf: &mut impl BufMut) {
        buf.put_u8(1);
        buf.put_u64_le(self.server_challenge);
    }
}

impl Decode for CephXAuthorizeChallenge {
    fn decode(buf: &mut impl Buf) -> Result<Self, AuthError> {
        get_struct_v(buf, "CephXAuthorizeChallenge", 1)?;
        Ok(CephXAuthorizeChallenge {
            server_challenge: get_u64(buf, "CephXAuthorizeChallenge.server_challenge")?,
        })
    }
}

/// `CephXAuthorizeReply`: `u8 v, u64 nonce_plus_one [, string connection_secret if v ≥ 2]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CephXAuthorizeReply {
    /// The authorizer's nonce + 1 (wrapping).
    pub nonce_plus_one: u64,
    /// msgr2 secure mode's connection secret; `None` over v1 (encoded as v1).
    pub connection_secret: Option<Bytes>,
}

impl Encode for CephXAuthorizeReply {
    fn encode(&self, buf: &mut impl BufMut) {
        buf.put_u8(if self.connection_secret.is_some() {
            2
        } else {
            1
        });
        buf.put_u64_le(self.nonce_plus_one);
        if let Some(s) = &self.connection_secret {
            put_blob(buf, s);
        }
    }
}

impl Decode for CephXAuthorizeReply {
    fn decode(buf: &mut impl Buf) -> Result<Self, AuthError> {
        let v = get_struct_v(buf, "CephXAuthorizeReply", 1)?;
        let nonce_plus_one = get_u64(buf, "CephXAuthorizeReply.nonce_plus_one")?;
        let connection_secret = if v >= 2 {
            Some(get_blob(buf, "CephXAuthorizeReply.connection_secret")?)
        } else {
            None
        };
        Ok(CephXAuthorizeReply {
            nonce_plus_one,
            connection_secret,
        })
    }
}

/// The negotiation payload of the first MAuth (protocol 0): `u8 1, vector<u32> methods,
/// EntityName, u64 global_id` (0 for a new client, the old one to reclaim it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthNegotiate {
    /// Supported methods in preference order (`CEPH_AUTH_*`).
    pub methods: Vec<u32>,
    /// Who is authenticating.
    pub name: EntityName,
    /// 0, or the global id to reclaim.
    pub global_id: u64,
}

impl Encode for AuthNegotiate {
    fn encode(&self, buf: &mut impl BufMut) {
        buf.put_u8(1);
        buf.put_u32_le(crate::codec::len_u32(self.methods.len()));
        for m in &self.methods {
            buf.put_u32_le(*m);
        }
        self.name.encode(buf);
        buf.put_u64_le(self.global_id);
    }
}

impl Decode for AuthNegotiate {
    fn decode(buf: &mut impl Buf) -> Result<Self, AuthError> {
        get_struct_v(buf, "AuthNegotiate", 1)?;
        let n = crate::codec::get_count(buf, "AuthNegotiate.methods", 4)?;
        let mut methods = Vec::with_capacity(n);
        for _ in 0..n {
            methods.push(get_u32(buf, "AuthNegotiate.method")?);
        }
        Ok(AuthNegotiate {
            methods,
            name: EntityName::decode(buf)?,
            global_id: get_u64(buf, "AuthNegotiate.global_id")?,
        })
    }
}
