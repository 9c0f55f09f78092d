//! What the pipes need from their messenger: [`Host`] (implemented by msgr-core's Messenger
//! and by [`crate::testing::TestHost`]), the [`Authorizer`] hook, and what flows up:
//! [`Incoming`] messages and [`SessionEvent`]s.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

pub use msgr_auth::cephx::ChallengeState;
pub use msgr_auth::provider::{ClientAuthorizer, PeerIdentity, VerifyOutcome};
pub use msgr_auth::signature::MessageSigner;
pub use msgr_auth::AuthError;
use msgr_dispatch::{BorrowedPermit, ConnId, Throttle, ThrottlePermit};
use msgr_wire::{EntityAddr, EntityName, EntityType, Message};

use crate::hook::BoxFuture;
use crate::policy::Policy;
use crate::session::Session;
use crate::transport::BoxTransport;

/// A connection event, delivered through [`Host::event`] (Ceph's `ms_handle_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SessionEvent {
    /// The connector reached Open (`ms_handle_connect`).
    Connect,
    /// The acceptor reached Open (`ms_handle_accept`).
    Accept,
    /// Ordered delivery is broken: a lossy session faulted, or a fatal handshake failure
    /// ended the session (`ms_handle_reset`). Delivered exactly once per session.
    Reset,
    /// The peer reset the session: RESETSESSION received, peer restart detected, or a lossy
    /// existing session replaced (`ms_handle_remote_reset`).
    RemoteReset,
    /// The TCP connect was refused (`ms_handle_refused`), or the acceptor refused our
    /// features / protocol / authorizer for good.
    Refused,
}

/// A received message and the throttle permits it holds. Dropping it releases them.
///
/// `'a` is the reader's borrow of the host's dispatch throttle: the reader takes each
/// message's dispatch bytes without cloning the throttle's handle, and a host that
/// fast-dispatches the message gives them back before the borrow ends (an `Arc` clone and
/// drop less per message). A host that keeps the message makes the permit its own
/// ([`BorrowedPermit::into_owned`]), or the whole value ([`Incoming::into_static`]).
#[derive(Debug)]
pub struct Incoming<'a> {
    /// The message (CRCs verified).
    pub msg: Message,
    /// The policy throttle permits (messages, then bytes), if the policy has throttles.
    pub policy_permits: Vec<ThrottlePermit>,
    /// The host's dispatch throttle permit, if it has one.
    pub dispatch_permit: Option<BorrowedPermit<'a>>,
}

impl Incoming<'_> {
    /// The same message and permits, no longer borrowing the dispatch throttle.
    pub fn into_static(self) -> Incoming<'static> {
        Incoming {
            msg: self.msg,
            policy_permits: self.policy_permits,
            dispatch_permit: self.dispatch_permit.map(BorrowedPermit::into_static),
        }
    }
}

/// One socket's way to its host, made by [`Host::deliverer`].
pub trait Deliver: Send + Sync + 'static {
    /// A received message of the deliverer's session, in order. Must not block.
    fn deliver(&self, incoming: Incoming<'_>);

    /// Whether the last message delivered was consumed on the calling thread (a fast
    /// dispatch that let it go before returning), a hint read once per read: the reader then
    /// copies small payloads out of its receive buffer instead of sharing it
    /// (`msgr_wire::SMALL_PAYLOAD` says why). False by default.
    fn consumed_inline(&self) -> bool {
        false
    }

    /// The messages of one read were delivered, and the reader is about to wait (for bytes
    /// or for permits): a deliverer that settles per-message work in batches (counters, the
    /// messages it queues for a dispatch task) settles it now, as nothing it holds may wait
    /// behind the reader's wait. Whatever it has not settled when it is dropped it settles
    /// then.
    fn read_done(&self) {}
}

/// [`Host::deliverer`]'s default: [`Host::deliver`] with the session.
struct HostDeliver<H: ?Sized> {
    host: Arc<H>,
    session: Session,
}

impl<H: Host + ?Sized> Deliver for HostDeliver<H> {
    fn deliver(&self, incoming: Incoming<'_>) {
        self.host.deliver(&self.session, incoming);
    }
}

/// Authorizers and message signatures for a messenger's connections (spec §3.5; the cephx
/// spec's §B and §C), over msgr-auth's providers. None by default: no authorizer is sent, every
/// one is accepted, nothing is signed.
///
/// Connector: [`Authorizer::build`] gives one connection's [`ClientAuthorizer`]; the
/// handshake sends its bytes, answers CHALLENGE_AUTHORIZER with
/// [`ClientAuthorizer::add_challenge`], checks the acceptor's reply authorizer with
/// [`ClientAuthorizer::verify_reply`] (a bad one fails the attempt: the acceptor is not who it
/// claims) and signs and checks the connection's messages with the [`MessageSigner`] it
/// returns. Acceptor: [`Authorizer::verify`] answers each connect's authorizer: a challenge,
/// an acceptance (reply bytes, the peer, a signer), or an error (BADAUTHORIZER).
pub trait Authorizer: Send + Sync + 'static {
    /// Connector: a fresh authorizer for one connection to a peer of `peer_type`; `retry`
    /// after a BADAUTHORIZER (the provider should use fresh tickets). `None`: send none.
    fn build(
        &self,
        peer_type: EntityType,
        retry: bool,
    ) -> BoxFuture<'_, Option<Box<dyn ClientAuthorizer>>>;

    /// Acceptor: verifies a connect's authorizer (`protocol`, `authorizer`) from a peer of
    /// `peer_type`, with the connection's `challenge` state and the negotiated `features`.
    /// An error is answered with BADAUTHORIZER.
    fn verify(
        &self,
        peer_type: EntityType,
        protocol: u32,
        authorizer: &[u8],
        challenge: &mut ChallengeState,
        features: u64,
    ) -> Result<VerifyOutcome, AuthError>;

    /// Ceph's `cephx_sign_messages` (default true): sign outgoing messages and check incoming
    /// ones on connections whose handshake gave a [`MessageSigner`].
    fn sign_messages(&self) -> bool {
        true
    }

    /// Ceph's `cephx_require_signatures` (default false): every peer must support message
    /// signatures (`MSG_AUTH`); an acceptor answers FEATURES to a connect without it, a
    /// connector refuses a READY without it.
    fn require_signatures(&self) -> bool {
        false
    }

    /// msgr2, connector to a mon: a fresh auth client that authenticates inside the
    /// handshake (mon mode: AUTH_REQUEST with the entity's name, the cephx rounds, AUTH_DONE
    /// with the connection secret of secure mode). The client is dropped when the handshake
    /// ends, so an implementation that wants its tickets keeps them from there. `None`:
    /// auth `none` in mon mode, as this messenger's entity.
    fn mon_client(&self) -> Option<Box<dyn msgr_auth::provider::AuthClient>> {
        None
    }

    /// msgr2, acceptor in the mon role: the auth server that authenticates clients asking
    /// in mon mode (Ceph's CLI, a MonClient). `None`: such clients are accepted as with auth
    /// `none` when no authorizer check applies.
    fn auth_server(&self) -> Option<Arc<dyn msgr_auth::provider::AuthServer>> {
        None
    }
}

/// Our address in the protocol a session speaks (`v2`: msgr2): the one of that type among
/// [`Host::my_addrs`], else [`Host::my_addr`] (a messenger bound to one protocol announces
/// that address whatever a connection speaks, as before).
pub(crate) fn my_addr_for(host: &dyn Host, v2: bool) -> EntityAddr {
    host.my_addrs()
        .into_iter()
        .find(|a| a.is_v2() == v2)
        .unwrap_or_else(|| host.my_addr())
}

/// The features a host's authentication requires of every peer: `MSG_AUTH` when it requires
/// signatures.
pub(crate) fn auth_required_features(host: &dyn Host) -> u64 {
    if host.authorizer().is_some_and(|a| a.require_signatures()) {
        msgr_wire::features::MSG_AUTH
    } else {
        0
    }
}

/// What a messenger provides to its sessions.
///
/// Lock discipline: the pipe never calls a `Host` method while holding a session's lock, so an
/// implementation may freely take its own locks (the session map) and call back into
/// [`Session`] methods that take a session lock ([`Session::id`], [`Session::peer_addr`], ...).
/// An implementation must not call into the pipe while holding its own map lock *and*
/// waiting on a session.
pub trait Host: Send + Sync + 'static {
    /// Our address as we announce it (port 0 and blank IP for a client that never bound).
    fn my_addr(&self) -> EntityAddr;
    /// Every address we listen on, one per protocol (a messenger bound to msgr2 and v1 has
    /// both; msgr2's SERVER_IDENT announces them all). The default: [`Host::my_addr`] alone.
    fn my_addrs(&self) -> Vec<EntityAddr> {
        vec![self.my_addr()]
    }
    /// The address a peer saw us at (learn our IP if ours is blank).
    fn learn_addr(&self, seen: &EntityAddr);
    /// Our entity name (the `src` of every message we send).
    fn my_name(&self) -> EntityName;
    /// `global_seq = max(global_seq, at_least) + 1`, returned (spec §5.4).
    fn next_global_seq(&self, at_least: u32) -> u32;
    /// The policy for peers of this type.
    fn policy(&self, peer_type: EntityType) -> Policy;
    /// The messenger-wide dispatch throttle (bytes), if any.
    fn dispatch_throttle(&self) -> Option<Throttle>;
    /// The authorizer hook; `None` = none.
    fn authorizer(&self) -> Option<Arc<dyn Authorizer>> {
        None
    }
    /// The registered session for this peer address, if any.
    fn lookup(&self, peer_addr: &EntityAddr) -> Option<Session>;
    /// Registers a session under its peer address. `Err(existing)` if another one is there
    /// (the acceptor then re-runs its decision against it).
    fn register(&self, session: &Session) -> Result<(), Session>;
    /// Removes this session (only if it is the one registered under its address).
    fn unregister(&self, session: &Session);
    /// A received message, in order per session. Must not block.
    fn deliver(&self, session: &Session, incoming: Incoming<'_>);
    /// What delivers the messages of one socket of `session`: made once by the socket's
    /// reader, which hands it every message it reads (the messages of a delay stage still go
    /// through [`Host::deliver`]). A host keeps there what it would otherwise build per
    /// message (msgr-core: the session's `Connection`, cloned into each message). The
    /// default calls [`Host::deliver`].
    fn deliverer(self: Arc<Self>, session: Session) -> Box<dyn Deliver> {
        Box::new(HostDeliver {
            host: self,
            session,
        })
    }
    /// A connection event. Must not block.
    fn event(&self, session: &Session, event: SessionEvent);
    /// A fresh connection id for a new session (default: a process-wide counter from 1;
    /// a messenger may use its `DispatchQueue::new_conn_id`).
    fn new_conn_id(&self) -> ConnId {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        NEXT.fetch_add(1, Ordering::Relaxed)
    }
    /// Opens a transport to `addr` (default: TCP with TCP_NODELAY via
    /// [`connect_tcp`](crate::connect_tcp)). Tests override it with in-memory streams.
    fn dial(&self, addr: EntityAddr) -> BoxFuture<'static, io::Result<BoxTransport>> {
        Box::pin(async move {
            let s = crate::transport::connect_tcp(addr.addr).await?;
            Ok(Box::new(s) as BoxTransport)
        })
    }
}
