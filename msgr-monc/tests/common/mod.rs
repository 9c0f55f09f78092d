//! A scripted mon for the MonClient tests: a real msgr-core messenger (`mon.0`, nonce 0, on
//! loopback) serving msgr-monc's [`MonService`] (the mon role: MAuth over msgr-auth's auth
//! servers, the monmap, `status` / `auth get`, MMonGetVersion, with a log of every MAuth),
//! and a relay that can freeze a connection.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;

use msgr_auth::provider::AuthServer;
use msgr_auth::Keyring;
use msgr_core::{Messenger, MessengerConfig, Policy};
pub use msgr_monc::AuthSeen;
use msgr_monc::MonService;
use msgr_wire::EntityName;

/// The fsid of the scripted cluster.
pub const FSID: &str = "5b7c2a4e-3f1d-4c6b-9a8e-0d1f2e3c4b5a";

/// The scripted mon.
#[derive(Clone)]
pub struct ScriptedMon {
    service: MonService,
    /// Its messenger.
    pub messenger: Messenger,
}

impl ScriptedMon {
    /// A mon serving `server` (its protocol is the one allowed), whose `auth get` reads
    /// `keyring`, listening on 127.0.0.1 at a free port; its osdmap is at version 7 (oldest 1).
    pub async fn start(server: Arc<dyn AuthServer>, keyring: Keyring) -> Self {
        Self::start_at(server, keyring, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// As [`start`](Self::start), at `addr` (port 0: the port the messenger gets, which the
    /// monmap then names).
    pub async fn start_at(server: Arc<dyn AuthServer>, keyring: Keyring, addr: SocketAddr) -> Self {
        let service = MonService::new(server, keyring, FSID.parse().expect("fsid"), "a", addr);
        service.set_map_version("osdmap", 7, 1);
        let config = MessengerConfig {
            nonce: Some(0),
            ..MessengerConfig::default()
        };
        let messenger = Messenger::builder(EntityName::mon(0))
            .config(config)
            .bind(addr)
            .default_policy(Policy::stateless_server(0))
            .dispatcher(service.dispatcher())
            .start()
            .await
            .expect("scripted mon starts");
        service.announce_v1(messenger.addr().addr);
        ScriptedMon { service, messenger }
    }

    /// The v1 address (127.0.0.1:PORT).
    pub fn addr(&self) -> SocketAddr {
        self.messenger.addr().addr
    }

    /// Every MAuth received so far.
    pub fn auth_log(&self) -> Vec<AuthSeen> {
        self.service.auth_log()
    }

    /// Every command received so far.
    pub fn commands(&self) -> Vec<String> {
        self.service.commands()
    }

    /// The map names of every MMonSubscribe received so far.
    pub fn subscribes(&self) -> Vec<Vec<String>> {
        self.service.subscribes()
    }

    /// Stops the mon (every session dropped).
    pub async fn stop(&self) {
        self.messenger.shutdown();
        self.messenger.wait().await;
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
