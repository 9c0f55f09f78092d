//! The traits the messenger calls to authenticate, for both sides, and their in-memory
//! implementations for `none` and `cephx`.
//!
//! * [`AuthClient`]: one entity's authentication with the mons (Ceph's `AuthClientHandler`):
//!   the MAuth rounds after negotiation, tickets, renewal, authorizers for services.
//! * [`ClientAuthorizer`]: the authorizer of one connection (challenge, reply check, signer).
//! * [`AuthServer`] / [`AuthServerSession`]: a mon's auth service (`AuthServiceHandler`),
//!   issuing global ids and tickets from a keyring.
//! * [`AuthorizerVerifier`]: a service's check of its peers' authorizers.
//!
//! The MAuth flow the messenger drives (Ceph's MonClient over v1):
//!
//! ```text
//! client                                  mon
//!  MAuth(0, AuthNegotiate)  ───────────►  AuthServer::start_session → ServerReply
//!  AuthClient::handle_reply ◄───────────  MAuthReply(protocol, result, global_id, payload)
//!    More ⇒ AuthClient::build_request ──►  AuthServerSession::handle_request → ServerReply
//!    ... until Done (or a negative result: AuthError::Refused)
//! ```
//!
//! Not here: message framing, connections, timers (renewal is asked with `needs_renewal(now)`).

mod cephx_client;
mod cephx_server;
mod none;

use bytes::Bytes;

use crate::cephx::{AuthCapsInfo, ChallengeState, RotatingSecrets};
use crate::signature::MessageSigner;
use crate::{AuthError, CryptoKey, EntityName, Secret, UTime, CEPH_AUTH_UNKNOWN};

pub use cephx_client::{CephxClient, CephxClientAuthorizer};
pub use cephx_server::{CephxAuthServer, CephxAuthorizerVerifier, ServiceKeyStore, TicketTtls};
pub use none::{NoneAuthServer, NoneAuthorizer, NoneAuthorizerVerifier, NoneClient};

/// Where the client's MAuth rounds stand after a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientProgress {
    /// Send [`AuthClient::build_request`] next.
    More,
    /// Authenticated, with every ticket wanted.
    Done,
}

/// One entity's authentication with the mons (`AuthClientHandler`).
pub trait AuthClient: Send {
    /// The protocol (`CEPH_AUTH_NONE` or `CEPH_AUTH_CEPHX`).
    fn protocol(&self) -> u32;
    /// Who we are.
    fn name(&self) -> &EntityName;
    /// Our global id (0 before the first reply).
    fn global_id(&self) -> u64;
    /// Takes the global id of an MAuthReply.
    fn set_global_id(&mut self, global_id: u64);
    /// The payload of the next MAuth (protocol = [`AuthClient::protocol`]).
    fn build_request(&mut self, now: UTime) -> Result<Bytes, AuthError>;
    /// Handles an MAuthReply's result and payload.
    fn handle_reply(
        &mut self,
        now: UTime,
        result: i32,
        payload: &[u8],
    ) -> Result<ClientProgress, AuthError>;
    /// Whether tickets are due for renewal (send `build_request` again).
    fn needs_renewal(&self, now: UTime) -> bool;
    /// msgr2 mon mode, once authenticated: the key that signs the handshake (AUTH_SIGNATURE;
    /// the AUTH ticket's session key for cephx, none for `none`) and the connection secret
    /// the mon handed out for secure mode (none in crc mode).
    fn v2_session(&self) -> (Option<CryptoKey>, Option<Secret>) {
        (None, None)
    }

    /// Forgets the ticket for `service_id` (a service refused an authorizer built from it):
    /// the next [`build_request`](AuthClient::build_request) asks the mon for a new one.
    fn invalidate_ticket(&mut self, _service_id: u32) {}

    /// The rotating secrets of our own service type, for a daemon entity (OSD, MDS, MGR) that
    /// fetched them (CEPHX_GET_ROTATING_KEY): what it verifies its clients' tickets with.
    fn rotating_secrets(&self) -> Option<RotatingSecrets> {
        None
    }

    /// An authorizer for a connection to a service of type `service_id`.
    fn build_authorizer(
        &mut self,
        service_id: u32,
        now: UTime,
    ) -> Result<Box<dyn ClientAuthorizer>, AuthError>;
}

/// The authorizer of one connection, client side.
pub trait ClientAuthorizer: Send {
    /// `authorizer_protocol` of the connect message.
    fn protocol(&self) -> u32;
    /// The bytes to send.
    fn bytes(&self) -> Bytes;
    /// Handles CHALLENGE_AUTHORIZER: [`ClientAuthorizer::bytes`] then answers it.
    fn add_challenge(&mut self, challenge: &[u8]) -> Result<(), AuthError>;
    /// Checks the reply authorizer; returns the signer for the connection (none for `none`),
    /// in the format of the negotiated `features`.
    fn verify_reply(&self, reply: &[u8], features: u64)
        -> Result<Option<MessageSigner>, AuthError>;
    /// msgr2 (AUTH_DONE in authorizer mode): checks the reply authorizer like
    /// [`ClientAuthorizer::verify_reply`] and returns the key that signs the handshake
    /// (AUTH_SIGNATURE) and the connection secret the reply carried (secure mode). `none`
    /// has neither.
    fn verify_reply_v2(
        &mut self,
        reply: &[u8],
    ) -> Result<(Option<CryptoKey>, Option<Secret>), AuthError> {
        self.verify_reply(reply, 0).map(|_| (None, None))
    }
}

/// Who an authenticated peer is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerIdentity {
    /// Its entity name.
    pub name: EntityName,
    /// Its global id.
    pub global_id: u64,
    /// Its caps for this service.
    pub caps: AuthCapsInfo,
}

/// A mon's answer to one MAuth.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerReply {
    /// MAuthReply `result`: 0 or −errno.
    pub result: i32,
    /// MAuthReply `global_id`.
    pub global_id: u64,
    /// MAuthReply `result_bl`.
    pub payload: Bytes,
    /// Set once the entity is authenticated (by this reply or an earlier one).
    pub authenticated: Option<PeerIdentity>,
}

/// A mon's auth service for one protocol (`AuthServiceHandler` factory).
pub trait AuthServer: Send + Sync {
    /// The protocol served.
    fn protocol(&self) -> u32;
    /// Starts a session for a negotiation naming `name` (and `global_id` to reclaim, or 0).
    fn start_session(
        &self,
        name: &EntityName,
        global_id: u64,
        now: UTime,
    ) -> (Box<dyn AuthServerSession>, ServerReply);
}

/// One client's auth session on a mon.
pub trait AuthServerSession: Send {
    /// Handles the payload of an MAuth after negotiation.
    fn handle_request(&mut self, now: UTime, payload: &[u8]) -> ServerReply;

    /// msgr2 secure mode: hand the client a random connection secret of `len` bytes with its
    /// AUTH session key (cephx's `cbl`); call before the request that authenticates.
    fn want_connection_secret(&mut self, _len: usize) {}

    /// msgr2, once authenticated: the key that signs the handshake (AUTH_SIGNATURE) and the
    /// connection secret handed out.
    fn v2_session(&self) -> (Option<CryptoKey>, Option<Secret>) {
        (None, None)
    }
}

/// What a service answers a connect's authorizer.
#[derive(Debug, Clone)]
pub enum VerifyOutcome {
    /// Reply CHALLENGE_AUTHORIZER with these bytes.
    Challenge(Bytes),
    /// Accept; send `reply` as the reply authorizer.
    Accepted {
        /// Reply authorizer bytes.
        reply: Bytes,
        /// The peer.
        peer: PeerIdentity,
        /// Signer for the connection, if the protocol signs.
        signer: Option<MessageSigner>,
    },
}

/// A service's check of incoming authorizers.
pub trait AuthorizerVerifier: Send + Sync {
    /// The protocol verified.
    fn protocol(&self) -> u32;
    /// Verifies one authorizer of a connection whose challenge state is `challenge`;
    /// `features` are the negotiated ones (signature format). An error means BADAUTHORIZER.
    fn verify(
        &self,
        authorizer: &[u8],
        challenge: &mut ChallengeState,
        features: u64,
        now: UTime,
    ) -> Result<VerifyOutcome, AuthError>;
}

/// Picks the first of the client's methods that the server allows (`AuthMonitor::prep_auth`);
/// `None`: no common method (reply `ENOTSUP`).
pub fn choose_protocol(client_methods: &[u32], allowed: &[u32]) -> Option<u32> {
    client_methods
        .iter()
        .copied()
        .find(|m| *m != CEPH_AUTH_UNKNOWN && allowed.contains(m))
}
