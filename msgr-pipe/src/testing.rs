//! Test helpers shared with msgr-core and the tests crate: [`TestHost`], a small [`Host`]
//! (a map of sessions and a channel of what it receives), and [`TestNet`], an in-memory
//! network of hosts connected by `tokio::io::duplex` streams.
//!
//! Not part of the stable API.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use msgr_dispatch::{ConnId, Throttle};
use msgr_wire::{EntityAddr, EntityName, EntityType};
use tokio::sync::mpsc;

use crate::config::PipeConfig;
use crate::hook::{BoxFuture, HandshakeHook, HookAction, Side, Step};
use crate::host::{Authorizer, Host, Incoming, SessionEvent};
use crate::policy::Policy;
use crate::session::Session;
use crate::transport::BoxTransport;

/// What a [`TestHost`] received.
#[derive(Debug)]
pub enum HostEvent {
    /// A delivered message (holding its throttle permits until dropped).
    Message {
        /// The session it came on.
        session: Session,
        /// The message and permits.
        incoming: Box<Incoming<'static>>,
    },
    /// A session event.
    Event {
        /// The session.
        session: Session,
        /// The event.
        event: SessionEvent,
    },
}

use msgr_dispatch::lock;

/// Called by [`TestHost`] with each delivered message, on the delivering task (as a
/// fast-dispatching messenger would), before the message goes to the host's channel.
pub type DeliverHook = Arc<dyn Fn(&Session, &Incoming<'_>) + Send + Sync>;

/// A minimal messenger for tests.
pub struct TestHost {
    addr: Mutex<EntityAddr>,
    name: Mutex<EntityName>,
    gseq: AtomicU32,
    next_id: AtomicU64,
    policies: Mutex<HashMap<EntityType, Policy>>,
    default_policy: Mutex<Policy>,
    sessions: Mutex<HashMap<EntityAddr, Session>>,
    tx: mpsc::UnboundedSender<HostEvent>,
    authorizer: Mutex<Option<Arc<dyn Authorizer>>>,
    dispatch: Mutex<Option<Throttle>>,
    learned: Mutex<Option<EntityAddr>>,
    net: Mutex<Option<TestNet>>,
    on_deliver: Mutex<Option<DeliverHook>>,
    /// The config sessions of this host use (connect and accept).
    pub config: Mutex<Arc<PipeConfig>>,
}

impl std::fmt::Debug for TestHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestHost")
            .field("addr", &*lock(&self.addr))
            .finish()
    }
}

impl TestHost {
    /// A host named `name` at `addr`, with `policy` for every peer type; returns the receiver
    /// of everything it gets.
    pub fn new(
        name: EntityName,
        addr: EntityAddr,
        policy: Policy,
        config: PipeConfig,
    ) -> (Arc<TestHost>, mpsc::UnboundedReceiver<HostEvent>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let h = Arc::new(TestHost {
            addr: Mutex::new(addr),
            name: Mutex::new(name),
            gseq: AtomicU32::new(0),
            next_id: AtomicU64::new(1 + (u64::from(addr.nonce) << 20)),
            policies: Mutex::new(HashMap::new()),
            default_policy: Mutex::new(policy),
            sessions: Mutex::new(HashMap::new()),
            tx,
            authorizer: Mutex::new(None),
            dispatch: Mutex::new(None),
            learned: Mutex::new(None),
            net: Mutex::new(None),
            on_deliver: Mutex::new(None),
            config: Mutex::new(Arc::new(config)),
        });
        (h, rx)
    }

    /// Sets the policy for one peer type.
    pub fn set_policy(&self, peer_type: EntityType, policy: Policy) {
        lock(&self.policies).insert(peer_type, policy);
    }

    /// Sets the authorizer.
    pub fn set_authorizer(&self, a: Option<Arc<dyn Authorizer>>) {
        *lock(&self.authorizer) = a;
    }

    /// Sets the dispatch throttle.
    pub fn set_dispatch_throttle(&self, t: Option<Throttle>) {
        *lock(&self.dispatch) = t;
    }

    /// Sets the hook each delivery calls first (a reply from "fast dispatch", say).
    pub fn set_on_deliver(&self, hook: Option<DeliverHook>) {
        *lock(&self.on_deliver) = hook;
    }

    /// Changes our entity name.
    pub fn set_name(&self, name: EntityName) {
        *lock(&self.name) = name;
    }

    /// The address a peer told us we have, if any.
    pub fn learned(&self) -> Option<EntityAddr> {
        *lock(&self.learned)
    }

    /// The config in use.
    pub fn config(&self) -> Arc<PipeConfig> {
        lock(&self.config).clone()
    }

    /// The registered sessions.
    pub fn sessions(&self) -> Vec<Session> {
        lock(&self.sessions).values().cloned().collect()
    }

    /// Connects (or returns the registered session) to `addr`.
    pub fn connect(self: &Arc<Self>, addr: EntityAddr, peer_type: EntityType) -> Session {
        Session::connect_shared(self.clone(), addr, peer_type, self.config())
    }

    /// Marks every registered session down.
    pub fn mark_down_all(&self) {
        for s in self.sessions() {
            s.mark_down();
        }
    }
}

impl Host for TestHost {
    fn my_addr(&self) -> EntityAddr {
        *lock(&self.addr)
    }

    fn learn_addr(&self, seen: &EntityAddr) {
        *lock(&self.learned) = Some(*seen);
    }

    fn my_name(&self) -> EntityName {
        *lock(&self.name)
    }

    fn next_global_seq(&self, at_least: u32) -> u32 {
        let mut cur = self.gseq.load(Ordering::Acquire);
        loop {
            let next = cur.max(at_least).wrapping_add(1);
            match self
                .gseq
                .compare_exchange(cur, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return next,
                Err(v) => cur = v,
            }
        }
    }

    fn policy(&self, peer_type: EntityType) -> Policy {
        lock(&self.policies)
            .get(&peer_type)
            .cloned()
            .unwrap_or_else(|| lock(&self.default_policy).clone())
    }

    fn dispatch_throttle(&self) -> Option<Throttle> {
        lock(&self.dispatch).clone()
    }

    fn authorizer(&self) -> Option<Arc<dyn Authorizer>> {
        lock(&self.authorizer).clone()
    }

    fn lookup(&self, peer_addr: &EntityAddr) -> Option<Session> {
        lock(&self.sessions).get(peer_addr).cloned()
    }

    fn register(&self, session: &Session) -> Result<(), Session> {
        let mut m = lock(&self.sessions);
        match m.get(&session.peer_addr()) {
            Some(s) if !s.is_closed() && s != session => Err(s.clone()),
            _ => {
                m.insert(session.peer_addr(), session.clone());
                Ok(())
            }
        }
    }

    fn unregister(&self, session: &Session) {
        let mut m = lock(&self.sessions);
        if m.get(&session.peer_addr()) == Some(session) {
            m.remove(&session.peer_addr());
        }
    }

    fn deliver(&self, session: &Session, incoming: Incoming<'_>) {
        let hook = lock(&self.on_deliver).clone();
        if let Some(hook) = hook {
            hook(session, &incoming);
        }
        let _ = self.tx.send(HostEvent::Message {
            session: session.clone(),
            incoming: Box::new(incoming.into_static()),
        });
    }

    fn event(&self, session: &Session, event: SessionEvent) {
        let _ = self.tx.send(HostEvent::Event {
            session: session.clone(),
            event,
        });
    }

    fn new_conn_id(&self) -> ConnId {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    fn dial(&self, addr: EntityAddr) -> BoxFuture<'static, io::Result<BoxTransport>> {
        let net = lock(&self.net).clone();
        let me = self.my_addr().addr;
        Box::pin(async move {
            match net {
                Some(net) => net.dial(addr, me),
                None => {
                    let s = crate::transport::connect_tcp(addr.addr).await?;
                    Ok(Box::new(s) as BoxTransport)
                }
            }
        })
    }
}

/// An in-memory network: hosts listen on their address; dialling creates a duplex stream
/// and runs [`Session::accept`] on the listening host ([`Session::accept_v2`] if its address
/// is a `v2:` one).
#[derive(Clone, Default)]
pub struct TestNet {
    inner: Arc<NetInner>,
}

enum Listener {
    Host(Weak<TestHost>),
    Script {
        bytes: bytes::Bytes,
        written: mpsc::UnboundedSender<Vec<u8>>,
    },
}

#[derive(Default)]
struct NetInner {
    listeners: Mutex<HashMap<SocketAddr, Listener>>,
    buffer: AtomicU64,
    dials: AtomicU64,
}

impl std::fmt::Debug for TestNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestNet").finish()
    }
}

impl TestNet {
    /// A network whose streams buffer `buffer` bytes each way.
    pub fn new(buffer: usize) -> Self {
        let n = TestNet::default();
        n.inner.buffer.store(buffer as u64, Ordering::Relaxed);
        n
    }

    /// Makes `host` dial through this network and listen on its address.
    pub fn attach(&self, host: &Arc<TestHost>) {
        *lock(&host.net) = Some(self.clone());
        lock(&self.inner.listeners)
            .insert(host.my_addr().addr, Listener::Host(Arc::downgrade(host)));
    }

    /// Makes `addr` a scripted peer: each dial gets `bytes` written to it, then end of
    /// stream; everything the dialler wrote is sent on the returned channel once it closes.
    pub fn script(
        &self,
        addr: SocketAddr,
        bytes: bytes::Bytes,
    ) -> mpsc::UnboundedReceiver<Vec<u8>> {
        let (tx, rx) = mpsc::unbounded_channel();
        lock(&self.inner.listeners).insert(addr, Listener::Script { bytes, written: tx });
        rx
    }

    /// Stops `addr` listening (dials get ECONNREFUSED).
    pub fn unlisten(&self, addr: SocketAddr) {
        lock(&self.inner.listeners).remove(&addr);
    }

    /// Number of dials so far.
    pub fn dials(&self) -> u64 {
        self.inner.dials.load(Ordering::Relaxed)
    }

    fn dial(&self, addr: EntityAddr, from: SocketAddr) -> io::Result<BoxTransport> {
        self.inner.dials.fetch_add(1, Ordering::Relaxed);
        let size = usize::try_from(self.inner.buffer.load(Ordering::Relaxed))
            .unwrap_or(65536)
            .max(64);
        let target = {
            let l = lock(&self.inner.listeners);
            match l.get(&addr.addr) {
                Some(Listener::Host(w)) => w.upgrade(),
                Some(Listener::Script { bytes, written }) => {
                    let (a, b) = tokio::io::duplex(size);
                    tokio::spawn(play_script(b, bytes.clone(), written.clone()));
                    return Ok(Box::new(a));
                }
                None => None,
            }
        };
        let target = target.ok_or(io::ErrorKind::ConnectionRefused)?;
        let (a, b) = tokio::io::duplex(size);
        let config = target.config();
        tokio::spawn(async move {
            let v2 = target.my_addr().is_v2();
            let host: Arc<dyn Host> = target;
            let _ = if v2 {
                Session::accept_v2(host, b, from, config).await
            } else {
                Session::accept_shared(host, b, from, config).await
            };
        });
        Ok(Box::new(a))
    }
}

async fn play_script(
    s: tokio::io::DuplexStream,
    bytes: bytes::Bytes,
    written: mpsc::UnboundedSender<Vec<u8>>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut r, mut w) = tokio::io::split(s);
    let reader = tokio::spawn(async move {
        let mut all = Vec::new();
        let _ = r.read_to_end(&mut all).await;
        all
    });
    let _ = w.write_all(&bytes).await;
    let _ = w.shutdown().await;
    if let Ok(all) = reader.await {
        let _ = written.send(all);
    }
}

/// A [`HandshakeHook`] that records every handshake step of a host (both sides) and lets each
/// go on: which reply tags a connector read from the wire ([`Step::ReplyReceived`]) or an
/// acceptor wrote ([`Step::ReplySent`]).
#[derive(Debug, Default)]
pub struct StepLog {
    steps: Mutex<Vec<(ConnId, Side, Step)>>,
}

impl StepLog {
    /// An empty log.
    pub fn new() -> Arc<StepLog> {
        Arc::new(StepLog::default())
    }

    /// Every step so far, in order.
    pub fn steps(&self) -> Vec<(ConnId, Side, Step)> {
        lock(&self.steps).clone()
    }

    /// How many times `side` reached `step`.
    pub fn count(&self, side: Side, step: Step) -> usize {
        lock(&self.steps)
            .iter()
            .filter(|(_, s, st)| *s == side && *st == step)
            .count()
    }

    /// The reply tags read by the connector side, in order.
    pub fn replies_received(&self) -> Vec<u8> {
        lock(&self.steps)
            .iter()
            .filter_map(|(_, _, st)| match st {
                Step::ReplyReceived(tag) => Some(*tag),
                _ => None,
            })
            .collect()
    }
}

impl HandshakeHook for StepLog {
    fn step(&self, conn: ConnId, side: Side, step: Step) -> BoxFuture<'static, HookAction> {
        lock(&self.steps).push((conn, side, step));
        Box::pin(async { HookAction::Continue })
    }
}

/// An [`Authorizer`] that sends `b"let me in"` and accepts only that (replying `b"ok"`,
/// which its connector side checks); no challenge, no signatures.
#[derive(Debug, Default)]
pub struct FixedAuthorizer {
    /// Refuse everything.
    pub refuse: bool,
}

/// The connector side of [`FixedAuthorizer`].
#[derive(Debug)]
struct FixedClient;

impl crate::ClientAuthorizer for FixedClient {
    fn protocol(&self) -> u32 {
        msgr_wire::AUTH_NONE
    }

    fn bytes(&self) -> bytes::Bytes {
        bytes::Bytes::from_static(b"let me in")
    }

    fn add_challenge(&mut self, _challenge: &[u8]) -> Result<(), crate::AuthError> {
        Err(crate::AuthError::BadAuthorizer {
            reason: "a fixed authorizer cannot answer a challenge",
        })
    }

    fn verify_reply(
        &self,
        reply: &[u8],
        _features: u64,
    ) -> Result<Option<crate::MessageSigner>, crate::AuthError> {
        if reply == b"ok" {
            Ok(None)
        } else {
            Err(crate::AuthError::BadAuthorizer {
                reason: "unexpected reply authorizer",
            })
        }
    }
}

impl Authorizer for FixedAuthorizer {
    fn build(
        &self,
        _peer_type: EntityType,
        _retry: bool,
    ) -> BoxFuture<'_, Option<Box<dyn crate::ClientAuthorizer>>> {
        Box::pin(async { Some(Box::new(FixedClient) as Box<dyn crate::ClientAuthorizer>) })
    }

    fn verify(
        &self,
        _peer_type: EntityType,
        _protocol: u32,
        authorizer: &[u8],
        _challenge: &mut crate::ChallengeState,
        _features: u64,
    ) -> Result<crate::VerifyOutcome, crate::AuthError> {
        if !self.refuse && authorizer == b"let me in" {
            Ok(crate::VerifyOutcome::Accepted {
                reply: bytes::Bytes::from_static(b"ok"),
                peer: crate::PeerIdentity {
                    name: msgr_auth::EntityName::client("fixed"),
                    global_id: 0,
                    caps: Default::default(),
                },
                signer: None,
            })
        } else {
            Err(crate::AuthError::BadAuthorizer {
                reason: "not the fixed authorizer",
            })
        }
    }
}

/// Encodes what an acceptor sends a connector first: the banner, the acceptor's address
/// (`acceptor`), then the connector's address as the acceptor sees it (`connector`).
/// For scripted peers (see [`TestNet::script`]).
pub fn encode_acceptor_hello(
    out: &mut bytes::BytesMut,
    acceptor: &EntityAddr,
    connector: &EntityAddr,
) {
    use msgr_wire::Wire;
    msgr_wire::Banner.encode(out);
    acceptor.encode(out);
    connector.encode(out);
}

/// The READY reply a scripted acceptor sends a new connector: features `ALL_PACIFIC`,
/// global_seq 1, connect_seq 1, protocol version `OSDC_PROTOCOL`, and flags
/// `CONNECT_LOSSY` if `lossy` (otherwise those of [`ConnectReply::new`]).
///
/// [`ConnectReply::new`]: msgr_wire::ConnectReply::new
pub fn ready_reply(lossy: bool) -> msgr_wire::ConnectReply {
    let mut r = msgr_wire::ConnectReply::new(msgr_wire::Tag::Ready);
    r.features = msgr_wire::features::ALL_PACIFIC;
    r.global_seq = 1;
    r.connect_seq = 1;
    r.protocol_version = msgr_wire::OSDC_PROTOCOL;
    if lossy {
        r.flags = msgr_wire::CONNECT_LOSSY;
    }
    r
}

/// The `ceph_msg_connect` a new client (connect_seq 0, global_seq 1) sends an OSD:
/// features `ALL_PACIFIC`, host type `CLIENT`, the client-to-OSD protocol version, no
/// authorizer, and `flags` (e.g. `CONNECT_LOSSY` or 0).
pub fn new_client_connect(flags: u8) -> msgr_wire::Connect {
    msgr_wire::Connect {
        features: msgr_wire::features::ALL_PACIFIC,
        host_type: u32::from(EntityType::CLIENT.0),
        global_seq: 1,
        connect_seq: 0,
        protocol_version: crate::v1::proto_version(EntityType::CLIENT, EntityType::OSD, true),
        authorizer_protocol: 0,
        flags,
        authorizer: bytes::Bytes::new(),
    }
}
