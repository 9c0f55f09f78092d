//! [`MonService`]: the mon role of a messenger, for a service that stands in for a ceph-mon
//! (`msgr serve -n mon.N`, tests): it authenticates clients with MAuth over msgr-auth's
//! [`AuthServer`] (negotiation, then the chosen protocol's rounds; so Ceph's own clients can
//! authenticate to it), sends the monmap after authentication and to `monmap` subscribers,
//! answers MMonCommand (`status`, `auth get ENTITY` from its keyring, anything else EINVAL)
//! and MMonGetVersion, and logs what it received.
//!
//! Not here: paxos, maps other than the monmap, command handling beyond those two, sessions
//! of peer mons, rotating-key requests beyond what the [`AuthServer`] answers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::{Buf, Bytes};
use msgr_auth::provider::{choose_protocol, AuthServer, AuthServerSession};
use msgr_auth::{Keyring, UTime, ENOTSUP};
use msgr_ceph::{
    EntityAddr as CephAddr, EntityAddrVec, Fsid, MAuth, MAuthReply, MMonCommand, MMonCommandAck,
    MMonGetVersion, MMonGetVersionReply, MMonMap, MMonSubscribe, MonInfo, MonMap, PaxosPrefix,
};
use msgr_core::{BoxFuture, ConnId, Connection, Dispatched, Dispatcher, Received};
use msgr_wire::Message;
use tokio::time::Instant;

use msgr_dispatch::lock;

/// One MAuth the mon received.
#[derive(Debug, Clone)]
pub struct AuthSeen {
    /// When (tokio's clock).
    pub at: Instant,
    /// The connection.
    pub conn: ConnId,
    /// MAuth protocol (0: negotiation).
    pub protocol: u32,
    /// The cephx request type (first two payload bytes) for protocol 2.
    pub request_type: Option<u16>,
    /// The global id a negotiation asks to reclaim.
    pub reclaim: Option<u64>,
    /// The length of the old ticket blob of a GET_AUTH_SESSION_KEY.
    pub old_ticket_len: Option<u32>,
    /// The reply's result.
    pub result: i32,
    /// The reply's global id.
    pub global_id: u64,
}

struct MonSession {
    auth: Option<Box<dyn AuthServerSession>>,
    authenticated: bool,
}

struct Inner {
    /// Message types received on authenticated sessions, in order (MAuth excluded).
    requests: Mutex<Vec<u16>>,
    /// Versions of maps other than the monmap, by name: `(newest, oldest)`.
    versions: Mutex<HashMap<String, (u64, u64)>>,
    server: Arc<dyn AuthServer>,
    allowed: Vec<u32>,
    keyring: Keyring,
    monmap: Mutex<MonMap>,
    utime0: UTime,
    instant0: Instant,
    sessions: Mutex<HashMap<ConnId, MonSession>>,
    log: Mutex<Vec<AuthSeen>>,
    commands: Mutex<Vec<String>>,
    subscribes: Mutex<Vec<Vec<String>>>,
}

/// The mon role; see the module docs. Cheap to clone.
#[derive(Clone)]
pub struct MonService {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for MonService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MonService")
            .field("allowed", &self.inner.allowed)
            .finish_non_exhaustive()
    }
}

impl MonService {
    /// A mon of cluster `fsid` serving `server` (its protocol is the one allowed), whose
    /// `auth get` reads `keyring`. Its monmap names one mon, `id`, at `addr` (v1, nonce 0):
    /// the address its messenger is bound to.
    pub fn new(
        server: Arc<dyn AuthServer>,
        keyring: Keyring,
        fsid: Fsid,
        id: &str,
        addr: std::net::SocketAddr,
    ) -> Self {
        let mut monmap = MonMap {
            fsid,
            epoch: 1,
            ranks: vec![id.into()],
            ..MonMap::default()
        };
        monmap.mons.insert(
            id.into(),
            MonInfo {
                name: id.into(),
                public_addrs: EntityAddrVec(vec![CephAddr::v1(addr, 0)]),
                ..MonInfo::default()
            },
        );
        let allowed = vec![server.protocol()];
        MonService {
            inner: Arc::new(Inner {
                server,
                allowed,
                keyring,
                monmap: Mutex::new(monmap),
                utime0: UTime::now(),
                instant0: Instant::now(),
                sessions: Mutex::new(HashMap::new()),
                log: Mutex::new(Vec::new()),
                commands: Mutex::new(Vec::new()),
                subscribes: Mutex::new(Vec::new()),
                requests: Mutex::new(Vec::new()),
                versions: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The messenger hook of the mon role for msgr2: clients asking in mon mode (Ceph's CLI,
    /// a MonClient) authenticate inside the handshake with this mon's auth server; anything
    /// else (v1 connects, msgr2 authorizers of peers) is let in as without a hook, to
    /// authenticate with MAuth as before.
    pub fn authorizer(&self) -> Arc<dyn msgr_core::Authorizer> {
        Arc::new(MonRoleAuth(Arc::clone(&self.inner.server)))
    }

    /// The monmap names this mon at `addr` (v1, nonce 0) instead of the address it was made
    /// with: for a messenger bound to port 0, told the port it got once it is listening
    /// (choosing a free port first and binding it later races with every other socket).
    pub fn announce_v1(&self, addr: std::net::SocketAddr) {
        self.announce(CephAddr::v1(addr, 0));
    }

    /// The monmap names this mon at `addr` with msgr2 (a `v2:` address, nonce 0) instead of
    /// its v1 one: its messenger listens in msgr2.
    pub fn announce_v2(&self, addr: std::net::SocketAddr) {
        self.announce(CephAddr::v2(addr, 0));
    }

    fn announce(&self, addr: CephAddr) {
        let mut map = lock(&self.inner.monmap);
        for info in map.mons.values_mut() {
            info.public_addrs = EntityAddrVec(vec![addr]);
        }
    }

    /// The dispatcher to give the mon's messenger.
    pub fn dispatcher(&self) -> Arc<dyn Dispatcher> {
        Arc::new(Handler(Arc::clone(&self.inner)))
    }

    /// The monmap it serves.
    pub fn monmap(&self) -> MonMap {
        self.inner.monmap()
    }

    /// Every MAuth received so far.
    pub fn auth_log(&self) -> Vec<AuthSeen> {
        lock(&self.inner.log).clone()
    }

    /// Every command received so far (its JSON).
    pub fn commands(&self) -> Vec<String> {
        lock(&self.inner.commands).clone()
    }

    /// The map names of every MMonSubscribe received so far.
    pub fn subscribes(&self) -> Vec<Vec<String>> {
        lock(&self.inner.subscribes).clone()
    }

    /// Answers MMonGetVersion of map `what` with `(newest, oldest)` (the monmap's come from
    /// the monmap; maps it does not know are `(0, 0)`).
    pub fn set_map_version(&self, what: &str, newest: u64, oldest: u64) {
        lock(&self.inner.versions).insert(what.to_owned(), (newest, oldest));
    }

    /// The types of the messages received on authenticated sessions, MAuth excluded (what a
    /// client asked once it was in).
    pub fn requests(&self) -> Vec<u16> {
        lock(&self.inner.requests).clone()
    }
}

struct Handler(Arc<Inner>);

impl Inner {
    fn now(&self) -> UTime {
        let d = self.instant0.elapsed();
        self.utime0.saturating_add(UTime {
            sec: u32::try_from(d.as_secs()).unwrap_or(u32::MAX),
            nsec: d.subsec_nanos(),
        })
    }

    /// Authenticated with MAuth on this connection, or (msgr2) inside its handshake: a
    /// msgr2 session opens only once the mon-mode rounds of [`MonService::authorizer`]'s
    /// auth server accepted the client.
    fn authenticated(&self, conn: &Connection) -> bool {
        let v2 = conn.session().is_some_and(|s| s.con_mode().is_some());
        v2 || lock(&self.sessions)
            .get(&conn.id())
            .is_some_and(|s| s.authenticated)
    }

    /// `(newest, oldest)` of map `what`: the monmap's epoch, or what was set.
    fn map_version(&self, what: &str) -> (u64, u64) {
        if what == "monmap" {
            let e = u64::from(self.monmap().epoch);
            return (e, e.min(1));
        }
        lock(&self.versions).get(what).copied().unwrap_or((0, 0))
    }

    fn monmap(&self) -> MonMap {
        lock(&self.monmap).clone()
    }

    fn send_monmap(&self, conn: &Connection) {
        let m = MMonMap {
            monmap: self.monmap(),
        };
        let _ = conn.queue(Message::new(MMonMap::TYPE, m.to_front()));
    }

    fn handle_auth(&self, conn: &Connection, msg: &Message) {
        let Ok(m) = MAuth::decode(&mut msg.front.clone()) else {
            return;
        };
        let now = self.now();
        let mut seen = AuthSeen {
            at: Instant::now(),
            conn: conn.id(),
            protocol: m.protocol,
            request_type: None,
            reclaim: None,
            old_ticket_len: None,
            result: 0,
            global_id: 0,
        };
        let mut sessions = lock(&self.sessions);
        let s = sessions.entry(conn.id()).or_insert(MonSession {
            auth: None,
            authenticated: false,
        });
        let was_authenticated = s.authenticated;
        let reply = if m.protocol == 0 {
            let Ok(n) = m.negotiation() else { return };
            seen.reclaim = (n.global_id != 0).then_some(n.global_id);
            match choose_protocol(&n.supported, &self.allowed) {
                None => MAuthReply {
                    protocol: 0,
                    result: ENOTSUP,
                    global_id: 0,
                    result_bl: Bytes::new(),
                    result_msg: String::new(),
                },
                Some(p) => {
                    let name = msgr_auth::EntityName::new(n.entity_type, n.entity_id);
                    let (session, r) = self.server.start_session(&name, n.global_id, now);
                    s.auth = Some(session);
                    s.authenticated = r.authenticated.is_some();
                    MAuthReply {
                        protocol: p,
                        result: r.result,
                        global_id: r.global_id,
                        result_bl: r.payload,
                        result_msg: String::new(),
                    }
                }
            }
        } else {
            let mut p = &m.auth_payload[..];
            if p.len() >= 2 {
                let ty = p.get_u16_le();
                seen.request_type = Some(ty);
                // CephXAuthenticate: u8 v, u64 challenge, u64 key, ticket blob (u8, u64, u32 len).
                if ty == 0x0100 && p.len() >= 1 + 8 + 8 + 1 + 8 + 4 {
                    p.advance(1 + 8 + 8 + 1 + 8);
                    seen.old_ticket_len = Some(p.get_u32_le());
                }
            }
            let Some(session) = s.auth.as_mut() else {
                return;
            };
            let r = session.handle_request(now, &m.auth_payload);
            s.authenticated |= r.authenticated.is_some();
            MAuthReply {
                protocol: m.protocol,
                result: r.result,
                global_id: r.global_id,
                result_bl: r.payload,
                result_msg: String::new(),
            }
        };
        let newly = s.authenticated && !was_authenticated && reply.result == 0;
        drop(sessions);
        seen.result = reply.result;
        seen.global_id = reply.global_id;
        lock(&self.log).push(seen);
        let _ = conn.queue(
            Message::new(MAuthReply::TYPE, reply.to_front())
                .with_version(MAuthReply::VERSION, MAuthReply::VERSION),
        );
        // As a ceph-mon: the monmap right after authentication (cephx-msgr2.md §I.9).
        if newly {
            self.send_monmap(conn);
        }
    }

    fn handle_command(&self, conn: &Connection, msg: &Message) {
        let Ok(cmd) = MMonCommand::decode(&mut msg.front.clone()) else {
            return;
        };
        let authenticated = self.authenticated(conn);
        let json = cmd.cmd.join("");
        lock(&self.commands).push(json.clone());
        let (r, rs, out) = if !authenticated {
            (-13, "not authenticated".to_owned(), Vec::new())
        } else if cmd.fsid != self.monmap().fsid {
            (-1, "wrong fsid".to_owned(), Vec::new())
        } else if json.contains(r#""prefix": "status""#) {
            (
                0,
                String::new(),
                format!(r#"{{"fsid":"{}"}}"#, self.monmap().fsid).into_bytes(),
            )
        } else if let Some(entity) = json
            .split(r#""entity": ""#)
            .nth(1)
            .and_then(|r| r.split('"').next())
            .filter(|_| json.contains(r#""prefix": "auth get""#))
        {
            match entity.parse::<msgr_auth::EntityName>().ok().and_then(|n| {
                let e = self.keyring.get(&n)?.clone();
                let mut k = Keyring::new();
                k.insert(n, e);
                Some(k.to_text())
            }) {
                Some(text) => (0, String::new(), text.into_bytes()),
                None => (
                    -2,
                    format!("failed to find {entity} in keyring"),
                    Vec::new(),
                ),
            }
        } else {
            (-22, format!("unrecognized command {json}"), Vec::new())
        };
        let ack = MMonCommandAck {
            paxos: PaxosPrefix::default(),
            r,
            rs,
            cmd: cmd.cmd,
            data: Bytes::from(out),
        };
        let _ = conn.queue(
            Message::new(MMonCommandAck::TYPE, ack.to_front())
                .with_version(MMonCommandAck::VERSION, MMonCommandAck::VERSION)
                .with_tid(msg.header.tid)
                .with_data(ack.data),
        );
    }
}

impl Dispatcher for Handler {
    fn dispatch(&self, r: Received) -> BoxFuture<'_, Dispatched> {
        let inner = &self.0;
        let (conn, msg) = (&r.conn, &r.msg);
        if msg.header.ty != MAuth::TYPE && inner.authenticated(conn) {
            lock(&inner.requests).push(msg.header.ty);
        }
        match msg.header.ty {
            MAuth::TYPE => inner.handle_auth(conn, msg),
            MMonCommand::TYPE => inner.handle_command(conn, msg),
            MMonGetVersion::TYPE => {
                if let Ok(q) = MMonGetVersion::decode(&mut msg.front.clone(), msg.header.version) {
                    let (version, oldest_version) = inner.map_version(&q.what);
                    let reply = MMonGetVersionReply {
                        handle: q.handle,
                        version,
                        oldest_version,
                    };
                    let _ = conn.queue(
                        Message::new(MMonGetVersionReply::TYPE, reply.to_front())
                            .with_version(MMonGetVersionReply::VERSION, 1)
                            .with_tid(msg.header.tid),
                    );
                }
            }
            MMonSubscribe::TYPE => {
                if let Ok(s) = MMonSubscribe::decode(&mut msg.front.clone(), msg.header.version) {
                    lock(&inner.subscribes).push(s.what.keys().cloned().collect());
                    if s.what.get("monmap").is_some_and(|i| i.start <= 1) {
                        inner.send_monmap(conn);
                    }
                }
            }
            _ => {}
        }
        Box::pin(async { Dispatched::Handled })
    }

    fn handle_reset(&self, conn: &Connection) {
        lock(&self.0.sessions).remove(&conn.id());
    }
}

/// See [`MonService::authorizer`].
struct MonRoleAuth(Arc<dyn AuthServer>);

impl msgr_core::Authorizer for MonRoleAuth {
    fn build(
        &self,
        _peer_type: msgr_wire::EntityType,
        _retry: bool,
    ) -> BoxFuture<'_, Option<Box<dyn msgr_core::ClientAuthorizer>>> {
        Box::pin(async { None })
    }

    fn verify(
        &self,
        peer_type: msgr_wire::EntityType,
        _protocol: u32,
        _authorizer: &[u8],
        _challenge: &mut msgr_core::ChallengeState,
        _features: u64,
    ) -> Result<msgr_core::VerifyOutcome, msgr_core::AuthError> {
        Ok(msgr_core::VerifyOutcome::Accepted {
            reply: Bytes::new(),
            peer: msgr_core::PeerIdentity {
                name: msgr_auth::EntityName::new(u32::from(peer_type.0), ""),
                global_id: 0,
                caps: Default::default(),
            },
            signer: None,
        })
    }

    fn sign_messages(&self) -> bool {
        false
    }

    fn auth_server(&self) -> Option<Arc<dyn AuthServer>> {
        Some(Arc::clone(&self.0))
    }
}
