//! Messengers speaking msgr2 over real TCP sockets on 127.0.0.1, with the default
//! configuration: a messenger bound to a `v2:` address accepts msgr2 sessions, a connection
//! to a `v2:` address speaks msgr2; request/reply, and a lossless stream through injected
//! socket faults (resumed with SESSION_RECONNECT, nothing lost or repeated).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use msgr_core::testing::stop;
use msgr_core::{
    ConMode, EntityAddr, EntityName, EntityType, Incoming, Message, Messenger, MessengerConfig,
    Policy, StreamDispatcher,
};

const WAIT: Duration = Duration::from_secs(20);

async fn messenger(
    name: EntityName,
    policy: Policy,
    config: MessengerConfig,
    bind: &str,
) -> (Messenger, Incoming) {
    let (d, incoming) = StreamDispatcher::new(1024);
    let m = Messenger::builder(name)
        .config(config)
        .bind_entity(bind.parse().unwrap())
        .default_policy(policy)
        .dispatcher(Arc::new(d))
        .start()
        .await
        .expect("start");
    (m, incoming)
}

async fn next(incoming: &mut Incoming) -> msgr_core::Received {
    tokio::time::timeout(WAIT, incoming.recv())
        .await
        .expect("no message")
        .expect("stream ended")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v2_bound_messenger_answers_calls_over_msgr2() {
    let cfg = MessengerConfig::default();
    let (s, mut si) = messenger(
        EntityName::osd(0),
        Policy::stateless_server(0),
        cfg.clone(),
        "v2:127.0.0.1:0",
    )
    .await;
    let (c, _ci) = messenger(
        EntityName::client(-1),
        Policy::lossy_client(0),
        cfg,
        "127.0.0.1:0",
    )
    .await;
    let addr: EntityAddr = s.addr();
    assert!(addr.is_v2(), "{addr}");
    assert!(addr.to_string().starts_with("v2:127.0.0.1:"), "{addr}");
    let server = tokio::spawn(async move {
        for _ in 0..100 {
            let req = next(&mut si).await;
            assert_eq!(req.msg.header.src.ty, EntityType::CLIENT);
            let reply = Message::new(0x7202, req.msg.front.clone()).with_tid(req.msg.header.tid);
            req.conn.queue(reply).unwrap();
        }
        si
    });
    let conn = c.connect(addr, EntityType::OSD).await.unwrap();
    for i in 0..100u32 {
        let reply = conn
            .call(Message::new(0x7201, i.to_le_bytes().to_vec()), WAIT)
            .await
            .expect("reply");
        assert_eq!(&reply.msg.front[..], &i.to_le_bytes());
    }
    let _si = server.await.unwrap();
    let session = conn.session().expect("a session");
    assert_eq!(session.con_mode(), Some(ConMode::Crc));
    assert!(session.peer_addr().is_v2());
    stop(&c).await;
    stop(&s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lossless_msgr2_stream_survives_socket_faults() {
    let mut cfg = MessengerConfig::default();
    cfg.pipe.inject.socket_failures = 50;
    cfg.pipe.inject.seed = 7;
    let (a, _ai) = messenger(
        EntityName::osd(1),
        Policy::lossless_peer(0),
        cfg.clone(),
        "v2:127.0.0.1:0",
    )
    .await;
    let (b, mut bi) = messenger(
        EntityName::osd(2),
        Policy::lossless_peer(0),
        cfg,
        "v2:127.0.0.1:0",
    )
    .await;
    let conn = a.connect_lazy(b.addr(), EntityType::OSD).unwrap();
    // One message at a time, each awaited at the far end: every message costs its own
    // socket operations, so faults fall all along the stream (at 1 in 50 operations).
    const N: u64 = 600;
    for i in 0..N {
        conn.send(Message::new(0x7203, i.to_le_bytes().to_vec()))
            .await
            .unwrap();
        let m = next(&mut bi).await;
        let got = u64::from_le_bytes(m.msg.front[..8].try_into().unwrap());
        assert_eq!(got, i, "in order, exactly once");
    }
    // A burst after all that: still in order, nothing repeated.
    for i in N..N + 200 {
        conn.send(Message::new(0x7203, i.to_le_bytes().to_vec()))
            .await
            .unwrap();
    }
    for i in N..N + 200 {
        let m = next(&mut bi).await;
        let got = u64::from_le_bytes(m.msg.front[..8].try_into().unwrap());
        assert_eq!(got, i, "in order, exactly once");
    }
    let stats = conn.session().expect("session").stats();
    assert!(stats.faults >= 2, "too few faults injected: {stats:?}");
    assert!(stats.reconnects >= 1, "{stats:?}");
    assert!(conn.session().expect("session").peer_addr().is_v2());
    stop(&a).await;
    stop(&b).await;
}

/// A messenger bound to both protocols, as Ceph's daemons are: `addrs()` gives its msgr2 and
/// its v1 address (same nonce, two ports), and a v1 client and a msgr2 client each get their
/// calls answered through the listener of their protocol.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_messenger_bound_to_both_protocols_serves_each_on_its_port() {
    let config = MessengerConfig {
        bind_v1_addr: Some("127.0.0.1:0".parse().unwrap()),
        ..MessengerConfig::default()
    };
    let (s, mut si) = messenger(
        EntityName::osd(0),
        Policy::stateless_server(0),
        config,
        "v2:127.0.0.1:0",
    )
    .await;
    let addrs = s.addrs();
    assert_eq!(addrs.len(), 2, "{addrs:?}");
    let (v2, v1) = (addrs[0], addrs[1]);
    assert!(v2.is_v2() && !v1.is_v2(), "{addrs:?}");
    assert_eq!(v2.nonce, v1.nonce);
    assert_ne!(v2.addr.port(), v1.addr.port());
    let server = tokio::spawn(async move {
        for _ in 0..2 {
            let req = next(&mut si).await;
            let reply = Message::new(0x7202, req.msg.front.clone()).with_tid(req.msg.header.tid);
            req.conn.queue(reply).unwrap();
        }
    });
    for (target, bind) in [(v2, "127.0.0.1:0"), (v1, "127.0.0.1:0")] {
        let (c, _ci) = messenger(
            EntityName::client(-1),
            Policy::lossy_client(0),
            MessengerConfig::default(),
            bind,
        )
        .await;
        let conn = c.connect(target, EntityType::OSD).await.unwrap();
        let reply = conn
            .call(Message::new(0x7201, target.to_string().into_bytes()), WAIT)
            .await
            .expect("reply");
        assert_eq!(reply.msg.front, target.to_string().into_bytes());
        // A received message holds its throttle permits: let it go before stopping.
        drop(reply);
        let session = conn.session().expect("a session");
        assert_eq!(session.con_mode().is_some(), target.is_v2(), "{target}");
        stop(&c).await;
    }
    server.await.unwrap();
    stop(&s).await;
}
