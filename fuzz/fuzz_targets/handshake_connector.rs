//! Arbitrary bytes as an acceptor's stream into msgr-pipe's connector handshake (and, when
//! it completes, into the open session's reader), on a current-thread runtime with a paused
//! clock. The first dial gets an in-memory stream on which the bytes are played, then end of
//! stream; later dials are refused (so reconnect backoff lets the clock advance). Nothing may
//! panic or hang; the session must end once marked down.
//!
//! The first byte steers the input: bit 0 prepends a valid banner and both addresses, bit 1
//! a valid READY reply as well, bit 2 picks `lossless_client` instead of `lossy_client`.
#![no_main]

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use msgr_pipe::testing::{encode_acceptor_hello, ready_reply, TestHost};
use msgr_pipe::{
    Authorizer, BoxFuture, BoxTransport, ConnId, Host, Incoming, PipeConfig, Policy, Session,
    SessionEvent,
};
use msgr_wire::{EntityAddr, EntityName, EntityType, Wire};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn addr(s: &str, nonce: u32) -> EntityAddr {
    EntityAddr::new(
        s.parse::<SocketAddr>()
            .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 1))),
        nonce,
    )
}

/// A `TestHost` whose first dial plays the fuzz bytes; the others are refused.
struct OneShot {
    inner: Arc<TestHost>,
    bytes: Mutex<Option<Bytes>>,
    dials: AtomicU64,
}

impl Host for OneShot {
    fn my_addr(&self) -> EntityAddr {
        self.inner.my_addr()
    }
    fn learn_addr(&self, seen: &EntityAddr) {
        self.inner.learn_addr(seen)
    }
    fn my_name(&self) -> EntityName {
        self.inner.my_name()
    }
    fn next_global_seq(&self, at_least: u32) -> u32 {
        self.inner.next_global_seq(at_least)
    }
    fn policy(&self, peer_type: EntityType) -> Policy {
        self.inner.policy(peer_type)
    }
    fn dispatch_throttle(&self) -> Option<msgr_dispatch::Throttle> {
        self.inner.dispatch_throttle()
    }
    fn authorizer(&self) -> Option<Arc<dyn Authorizer>> {
        self.inner.authorizer()
    }
    fn lookup(&self, peer_addr: &EntityAddr) -> Option<Session> {
        self.inner.lookup(peer_addr)
    }
    fn register(&self, session: &Session) -> Result<(), Session> {
        self.inner.register(session)
    }
    fn unregister(&self, session: &Session) {
        self.inner.unregister(session)
    }
    fn deliver(&self, session: &Session, incoming: Incoming) {
        self.inner.deliver(session, incoming)
    }
    fn event(&self, session: &Session, event: SessionEvent) {
        self.inner.event(session, event)
    }
    fn new_conn_id(&self) -> ConnId {
        self.inner.new_conn_id()
    }
    fn dial(&self, _addr: EntityAddr) -> BoxFuture<'static, io::Result<BoxTransport>> {
        self.dials.fetch_add(1, Ordering::Relaxed);
        let bytes = self.bytes.lock().ok().and_then(|mut b| b.take());
        Box::pin(async move {
            let Some(bytes) = bytes else {
                return Err(io::ErrorKind::ConnectionRefused.into());
            };
            let (ours, theirs) = tokio::io::duplex(64 << 10);
            tokio::spawn(async move {
                let (mut r, mut w) = tokio::io::split(theirs);
                let reader = tokio::spawn(async move {
                    let mut sink = vec![0u8; 16 << 10];
                    while let Ok(n) = r.read(&mut sink).await {
                        if n == 0 {
                            break;
                        }
                    }
                });
                let _ = w.write_all(&bytes).await;
                let _ = w.shutdown().await;
                let _ = reader.await;
            });
            Ok(Box::new(ours) as BoxTransport)
        })
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((&control, data)) = input.split_first() else {
        return;
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
    {
        Ok(rt) => rt,
        Err(_) => return,
    };
    rt.block_on(run(control, Bytes::copy_from_slice(data)));
});

async fn run(control: u8, data: Bytes) {
    let me = addr("127.0.0.1:40000", 7);
    let server = addr("127.0.0.1:6800", 1);
    let mut stream = BytesMut::new();
    if control & 3 != 0 {
        encode_acceptor_hello(&mut stream, &server, &me);
    }
    if control & 2 != 0 {
        ready_reply(false).encode(&mut stream);
    }
    stream.extend_from_slice(&data);
    let policy = if control & 4 != 0 {
        Policy::lossless_client(0)
    } else {
        Policy::lossy_client(0)
    };
    let config = PipeConfig {
        handshake_timeout: Duration::from_secs(1),
        read_timeout: Duration::from_secs(2),
        max_backoff: Duration::from_millis(200),
        initial_backoff: Duration::from_millis(100),
        ..PipeConfig::default()
    };
    let (inner, mut rx) = TestHost::new(EntityName::client(7), me, policy, config.clone());
    let host = Arc::new(OneShot {
        inner,
        bytes: Mutex::new(Some(stream.freeze())),
        dials: AtomicU64::new(0),
    });
    let h: Arc<dyn Host> = host.clone();
    let s = Session::connect(h, server, EntityType::OSD, config);
    let _ = s.send(msgr_wire::Message::new(2, &b"hi"[..])).await;
    // Let it run (handshake, reader, a failed reconnect or two), in virtual time.
    for _ in 0..100 {
        if s.is_closed() || host.dials.load(Ordering::Relaxed) >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    s.mark_down();
    if tokio::time::timeout(Duration::from_secs(30), s.closed())
        .await
        .is_err()
    {
        panic!("session did not close after mark_down");
    }
    while rx.try_recv().is_ok() {}
}
