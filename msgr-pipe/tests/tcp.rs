//! A few tests over real loopback TCP (TCP_NODELAY set by `connect_tcp` and the acceptor).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use msgr_pipe::testing::{HostEvent, TestHost};
use msgr_pipe::{ConnState, Host, PipeConfig, Policy, Session, SessionEvent};
use msgr_wire::{EntityAddr, EntityName, EntityType};
use tokio::net::TcpListener;
use tokio::sync::mpsc::UnboundedReceiver;

async fn tcp_host(
    n: u32,
    policy: Policy,
    config: PipeConfig,
) -> (Arc<TestHost>, UnboundedReceiver<HostEvent>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = EntityAddr::new(l.local_addr().unwrap(), n);
    let (h, rx) = TestHost::new(EntityName::osd(i64::from(n)), addr, policy, config);
    let weak = Arc::downgrade(&h);
    tokio::spawn(async move {
        while let Ok((s, peer)) = l.accept().await {
            s.set_nodelay(true).unwrap();
            let Some(h) = weak.upgrade() else { break };
            let cfg = h.config();
            let host: Arc<dyn Host> = h;
            tokio::spawn(Session::accept_shared(host, s, peer, cfg));
        }
    });
    (h, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchange_over_loopback_tcp_with_a_reconnect() {
    let (a, mut arx) = tcp_host(1, Policy::lossless_peer(0), PipeConfig::default()).await;
    let (b, mut brx) = tcp_host(2, Policy::lossless_peer(0), PipeConfig::default()).await;
    let sa = a.connect(b.my_addr(), EntityType::OSD);
    for i in 0..=1000 {
        sa.send(msg_padded(i, 512)).await.unwrap();
    }
    // The session is open once the peer has the first messages: only then is the killed
    // socket a fault of an open session (a reconnect), not of the first handshake.
    let (mut got, mut events) = recv_n(&mut brx, 1001, Duration::from_secs(30)).await;
    sa.kill_socket();
    for i in 1001..2000 {
        sa.send(msg_padded(i, 512)).await.unwrap();
    }
    let (rest, more) = recv_n(&mut brx, 999, Duration::from_secs(30)).await;
    got.extend(rest);
    events.extend(more);
    assert_eq!(got, (0..2000).collect::<Vec<_>>());
    assert!(events.contains(&SessionEvent::Accept));
    let sb = b.lookup(&a.my_addr()).unwrap();
    for i in 0..2000 {
        sb.send(msg(i)).await.unwrap();
    }
    let (got, _) = recv_n(&mut arx, 2000, Duration::from_secs(30)).await;
    assert_eq!(got, (0..2000).collect::<Vec<_>>());
    assert_eq!(sa.state(), ConnState::Open);
    // One killed socket: one fault, one reconnect (b had nothing to send: it waited).
    let st = sa.stats();
    assert_eq!((st.faults, st.reconnects), (1, 1), "{st:?}");
    a.mark_down_all();
    b.mark_down_all();
    sa.closed().await;
    sb.closed().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_message_and_refused_port() {
    let (a, mut arx) = tcp_host(1, Policy::lossy_client(0), PipeConfig::default()).await;
    // Nobody listens here: ECONNREFUSED gives Refused events while it retries.
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = EntityAddr::new(closed.local_addr().unwrap(), 9);
    drop(closed);
    let s = a.connect(dead, EntityType::OSD);
    wait_event(&mut arx, SessionEvent::Refused, Duration::from_secs(10)).await;
    s.mark_down();

    let (b, mut brx) = tcp_host(2, Policy::stateless_server(0), PipeConfig::default()).await;
    let sa = a.connect(b.my_addr(), EntityType::OSD);
    let data = vec![7u8; 3 << 20];
    sa.send(msg(1).with_data(data.clone())).await.unwrap();
    loop {
        match tokio::time::timeout(Duration::from_secs(30), brx.recv())
            .await
            .unwrap()
            .unwrap()
        {
            HostEvent::Message { incoming, .. } => {
                assert_eq!(incoming.msg.data.len(), data.len());
                assert!(incoming.msg.data.iter().all(|b| *b == 7));
                break;
            }
            HostEvent::Event { .. } => {}
        }
    }
    // The acceptor learned nothing wrong: a's address as claimed.
    assert_eq!(b.sessions()[0].peer_addr(), a.my_addr());
    a.mark_down_all();
    b.mark_down_all();
}
