//! Auth `none`: the client names itself, the mon believes it, and services accept an
//! authorizer that is just `u8 1, EntityName, u64 global_id` (`AuthNoneAuthorizer`).
//! Nothing is signed.

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::{BufMut, Bytes, BytesMut};

use super::{
    AuthClient, AuthServer, AuthServerSession, AuthorizerVerifier, ClientAuthorizer,
    ClientProgress, PeerIdentity, ServerReply, VerifyOutcome,
};
use crate::cephx::{AuthCapsInfo, ChallengeState};
use crate::codec::{get_struct_v, get_u64, Decode, Encode};
use crate::signature::MessageSigner;
use crate::{AuthError, EntityName, UTime, CEPH_AUTH_NONE};

/// The `none` client.
#[derive(Debug, Clone)]
pub struct NoneClient {
    name: EntityName,
    global_id: u64,
}

impl NoneClient {
    /// A client named `name`.
    pub fn new(name: EntityName) -> Self {
        NoneClient { name, global_id: 0 }
    }
}

impl AuthClient for NoneClient {
    fn protocol(&self) -> u32 {
        CEPH_AUTH_NONE
    }
    fn name(&self) -> &EntityName {
        &self.name
    }
    fn global_id(&self) -> u64 {
        self.global_id
    }
    fn set_global_id(&mut self, global_id: u64) {
        self.global_id = global_id;
    }
    fn build_request(&mut self, _: UTime) -> Result<Bytes, AuthError> {
        Ok(Bytes::new())
    }
    fn handle_reply(
        &mut self,
        _: UTime,
        result: i32,
        _: &[u8],
    ) -> Result<ClientProgress, AuthError> {
        if result < 0 {
            return Err(AuthError::Refused {
                entity: self.name.to_string(),
                result,
            });
        }
        Ok(ClientProgress::Done)
    }
    fn needs_renewal(&self, _: UTime) -> bool {
        false
    }
    fn build_authorizer(
        &mut self,
        _: u32,
        _: UTime,
    ) -> Result<Box<dyn ClientAuthorizer>, AuthError> {
        Ok(Box::new(NoneAuthorizer {
            name: self.name.clone(),
            global_id: self.global_id,
        }))
    }
}

/// The `none` authorizer: `u8 1, EntityName, u64 global_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoneAuthorizer {
    /// Who connects.
    pub name: EntityName,
    /// Its global id.
    pub global_id: u64,
}

impl Encode for NoneAuthorizer {
    fn encode(&self, buf: &mut impl BufMut) {
        buf.put_u8(1);
        self.name.encode(buf);
        buf.put_u64_le(self.global_id);
    }
}

impl Decode for NoneAuthorizer {
    fn decode(buf: &mut impl bytes::Buf) -> Result<Self, AuthError> {
        get_struct_v(buf, "AuthNoneAuthorizer", 1)?;
        Ok(NoneAuthorizer {
            name: EntityName::decode(buf)?,
            global_id: get_u64(buf, "AuthNoneAuthorizer.global_id")?,
        })
    }
}

impl ClientAuthorizer for NoneAuthorizer {
    fn protocol(&self) -> u32 {
        CEPH_AUTH_NONE
    }
    fn bytes(&self) -> Bytes {
        let mut b = BytesMut::new();
        self.encode(&mut b);
        b.freeze()
    }
    fn add_challenge(&mut self, _: &[u8]) -> Result<(), AuthError> {
        Err(AuthError::OutOfOrder {
            what: "challenge to a none authorizer",
        })
    }
    fn verify_reply(&self, _: &[u8], _: u64) -> Result<Option<MessageSigner>, AuthError> {
        Ok(None)
    }
}

/// The `none` auth service of a mon: hands out global ids, authenticates everyone.
#[derive(Debug)]
pub struct NoneAuthServer {
    next_global_id: AtomicU64,
}

impl NoneAuthServer {
    /// A server whose first global id is `first_global_id`.
    pub fn new(first_global_id: u64) -> Self {
        NoneAuthServer {
            next_global_id: AtomicU64::new(first_global_id),
        }
    }
}

struct NoneSession(ServerReply);

impl AuthServerSession for NoneSession {
    fn handle_request(&mut self, _: UTime, _: &[u8]) -> ServerReply {
        self.0.clone()
    }
}

impl AuthServer for NoneAuthServer {
    fn protocol(&self) -> u32 {
        CEPH_AUTH_NONE
    }
    fn start_session(
        &self,
        name: &EntityName,
        global_id: u64,
        _: UTime,
    ) -> (Box<dyn AuthServerSession>, ServerReply) {
        let global_id = if global_id != 0 {
            global_id
        } else {
            self.next_global_id.fetch_add(1, Ordering::Relaxed)
        };
        let peer = PeerIdentity {
            name: name.clone(),
            global_id,
            caps: AuthCapsInfo {
                allow_all: true,
                caps: Bytes::new(),
            },
        };
        let reply = ServerReply {
            result: 0,
            global_id,
            payload: Bytes::new(),
            authenticated: Some(peer),
        };
        (Box::new(NoneSession(reply.clone())), reply)
    }
}

/// A service accepting `none` authorizers (anyone is who they say).
#[derive(Debug, Default)]
pub struct NoneAuthorizerVerifier;

impl AuthorizerVerifier for NoneAuthorizerVerifier {
    fn protocol(&self) -> u32 {
        CEPH_AUTH_NONE
    }
    fn verify(
        &self,
        authorizer: &[u8],
        _: &mut ChallengeState,
        _: u64,
        _: UTime,
    ) -> Result<VerifyOutcome, AuthError> {
        let a = NoneAuthorizer::from_slice(authorizer)?;
        let peer = PeerIdentity {
            name: a.name,
            global_id: a.global_id,
            caps: AuthCapsInfo {
                allow_all: true,
                caps: Bytes::new(),
            },
        };
        Ok(VerifyOutcome::Accepted {
            reply: Bytes::new(),
            peer,
            signer: None,
        })
    }
}
