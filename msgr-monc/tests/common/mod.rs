//! A scripted mon for the MonClient tests: a real msgr-core messenger (`mon.0`, nonce 0, on
//! loopback) whose dispatcher answers as a ceph-mon does, over msgr-auth's auth servers:
//! MAuth (negotiation, then the chosen protocol's rounds), the monmap after authentication
//! and to `monmap` subscribers, MMonCommand (`status`, `auth get`, anything else EINVAL),
//! MMonGetVersion. It logs every MAuth it gets, with the time, for the tests to check.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::{Buf, Bytes};
use msgr_auth::provider::{choose_protocol, AuthServer, AuthServerSession};
use msgr_auth::{Keyring, UTime, ENOTSUP};
use msgr_ceph::{
    EntityAddr as CephAddr, EntityAddrVec, Fsid, MAuth, MAuthReply, MMonCommand, MMonCommandAck,
    MMonGetVersion, MMonGetVersionReply, MMonMap, MMonSubscribe, MonInfo, MonMap, PaxosPrefix,
};
use msgr_core::{
    BoxFuture, ConnId, Connection, Dispatched, Dispatcher, Messenger, MessengerConfig, Policy,
    Received,
};
use msgr_wire::{EntityName, Message};
use tokio::time::Instant;

/// The fsid of the scripted cluster.
pub const FSID: &str = "5b7c2a4e-3f1d-4c6b-9a8e-0d1f2e3c4b5a";

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

/// The scripted mon.
#[derive(Clone)]
pub struct ScriptedMon {
    inner: Arc<Inner>,
    /// Its messenger.
    pub messenger: Messenger,
}

impl ScriptedMon {
    /// A mon serving `server` (its protocol is the one allowed), whose `auth get` reads
    /// `keyring`, listening on 127.0.0.1 at a free port.
    pub async fn start(server: Arc<dyn AuthServer>, keyring: Keyring) -> Self {
        Self::start_at(server, keyring, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// As [`start`](Self::start), at `addr`.
    pub async fn start_at(server: Arc<dyn AuthServer>, keyring: Keyring, addr: SocketAddr) -> Self {
        let allowed = vec![server.protocol()];
        let inner = Arc::new(Inner {
            server,
            allowed,
            keyring,
            monmap: Mutex::new(MonMap::default()),
            utime0: UTime::now(),
            instant0: Instant::now(),
            sessions: Mutex::new(HashMap::new()),
            log: Mutex::new(Vec::new()),
            commands: Mutex::new(Vec::new()),
            subscribes: Mutex::new(Vec::new()),
        });
        let config = MessengerConfig {
            nonce: Some(0),
            ..MessengerConfig::default()
        };
        let messenger = Messenger::builder(EntityName::mon(0))
            .config(config)
            .bind(addr)
            .default_policy(Policy::stateless_server(0))
            .dispatcher(Arc::new(Handler(Arc::clone(&inner))))
            .start()
            .await
            .expect("scripted mon starts");
        let mon = ScriptedMon { inner, messenger };
        let mut monmap = MonMap {
            fsid: FSID.parse::<Fsid>().expect("fsid"),
            epoch: 1,
            ranks: vec!["a".into()],
            ..MonMap::default()
        };
        monmap.mons.insert(
            "a".into(),
            MonInfo {
                name: "a".into(),
                public_addrs: EntityAddrVec(vec![CephAddr::v1(mon.addr(), 0)]),
                ..MonInfo::default()
            },
        );
        *mon.inner.monmap.lock().unwrap() = monmap;
        mon
    }

    /// The v1 address (127.0.0.1:PORT).
    pub fn addr(&self) -> SocketAddr {
        self.messenger.addr().addr
    }

    /// Every MAuth received so far.
    pub fn auth_log(&self) -> Vec<AuthSeen> {
        self.inner.log.lock().unwrap().clone()
    }

    /// Every command received so far.
    pub fn commands(&self) -> Vec<String> {
        self.inner.commands.lock().unwrap().clone()
    }

    /// The map names of every MMonSubscribe received so far.
    pub fn subscribes(&self) -> Vec<Vec<String>> {
        self.inner.subscribes.lock().unwrap().clone()
    }

    /// Stops the mon (every session dropped).
    pub async fn stop(&self) {
        self.messenger.shutdown();
        self.messenger.wait().await;
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

    fn monmap(&self) -> MonMap {
        self.monmap.lock().unwrap().clone()
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
        let mut sessions = self.sessions.lock().unwrap();
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
        self.log.lock().unwrap().push(seen);
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
        let authenticated = self
            .sessions
            .lock()
            .unwrap()
            .get(&conn.id())
            .is_some_and(|s| s.authenticated);
        let json = cmd.cmd.join("");
        self.commands.lock().unwrap().push(json.clone());
        let (r, rs, out) = if !authenticated {
            (-13, "not authenticated".to_owned(), Vec::new())
        } else if cmd.fsid != self.monmap().fsid {
            (-1, "wrong fsid".to_owned(), Vec::new())
        } else if json.contains(r#""prefix": "status""#) {
            (
                0,
                String::new(),
                format!(r#"{{"fsid":"{FSID}"}}"#).into_bytes(),
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
        match msg.header.ty {
            MAuth::TYPE => inner.handle_auth(conn, msg),
            MMonCommand::TYPE => inner.handle_command(conn, msg),
            MMonGetVersion::TYPE => {
                if let Ok(q) = MMonGetVersion::decode(&mut msg.front.clone(), msg.header.version) {
                    let reply = MMonGetVersionReply {
                        handle: q.handle,
                        version: 7,
                        oldest_version: 1,
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
                    inner
                        .subscribes
                        .lock()
                        .unwrap()
                        .push(s.what.keys().cloned().collect());
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
        self.0.sessions.lock().unwrap().remove(&conn.id());
    }
}

/// A TCP relay in front of a mon that can be frozen: while frozen it forwards nothing either
/// way (a partition that leaves the sockets open), so the mon answers no keepalive. The mon's
/// banner announces its own port; the relay puts its own there, so that the client finds the
/// mon at the address it dialled.
#[derive(Clone)]
pub struct Relay {
    /// Where clients connect.
    pub addr: SocketAddr,
    frozen: tokio::sync::watch::Sender<bool>,
}

/// The banner (`ceph v027`) and the acceptor's legacy address (136 bytes), whose port sits at
/// bytes 10..12 (after type, nonce and the big-endian family).
const BANNER_AND_ADDR: usize = 9 + 136;
const PORT_AT: usize = 9 + 10;

impl Relay {
    /// A relay on 127.0.0.1 to `to`.
    pub async fn start(to: SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (frozen, _) = tokio::sync::watch::channel(false);
        let relay = Relay { addr, frozen };
        let r = relay.clone();
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            while let Ok((client, _)) = listener.accept().await {
                let Ok(mon) = tokio::net::TcpStream::connect(to).await else {
                    continue;
                };
                let (cr, mut cw) = client.into_split();
                let (mut mr, mw) = mon.into_split();
                let mut head = [0u8; BANNER_AND_ADDR];
                if mr.read_exact(&mut head).await.is_err() {
                    continue;
                }
                assert_eq!(head[PORT_AT..PORT_AT + 2], to.port().to_be_bytes());
                head[PORT_AT..PORT_AT + 2].copy_from_slice(&addr.port().to_be_bytes());
                if cw.write_all(&head).await.is_err() {
                    continue;
                }
                tokio::spawn(pump(cr, mw, r.frozen.subscribe()));
                tokio::spawn(pump(mr, cw, r.frozen.subscribe()));
            }
        });
        relay
    }

    /// Stops forwarding, for good.
    pub fn freeze(&self) {
        self.frozen.send_replace(true);
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut frozen: tokio::sync::watch::Receiver<bool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = tokio::select! {
            r = from.read(&mut buf) => match r {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
            _ = frozen.changed() => 0,
        };
        if *frozen.borrow() {
            // Hold both sockets open, forwarding nothing.
            std::future::pending::<()>().await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
