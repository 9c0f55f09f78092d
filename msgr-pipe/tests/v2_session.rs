//! msgr2 sessions between two hosts over in-memory streams: the same session semantics as
//! v1's (in-order exactly-once delivery both ways, lossless reconnect with
//! SESSION_RECONNECT, races), spoken in msgr2 frames.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use msgr_pipe::testing::TestNet;
use msgr_pipe::{ConnState, Host, PipeConfig, Policy, SessionEvent};
use msgr_wire::EntityType;

#[tokio::test]
async fn ten_thousand_each_way_in_order_over_msgr2() {
    let net = TestNet::new(64 * 1024);
    let (a, mut arx) = host_v2(1, Policy::lossless_peer(0), PipeConfig::default(), &net);
    let (b, mut brx) = host_v2(2, Policy::lossless_peer(0), PipeConfig::default(), &net);
    assert!(b.my_addr().is_v2());
    let sa = a.connect(b.my_addr(), EntityType::OSD);
    const N: u64 = 10_000;
    let sender = {
        let sa = sa.clone();
        tokio::spawn(async move {
            for i in 0..N {
                sa.send(msg(i)).await.unwrap();
            }
        })
    };
    let (got, events) = recv_n(&mut brx, N as usize, Duration::from_secs(30)).await;
    assert_eq!(got, (0..N).collect::<Vec<_>>());
    assert!(events.contains(&SessionEvent::Accept));
    sender.await.unwrap();
    let sb = b.lookup(&a.my_addr()).expect("b registered the session");
    assert_eq!(sb.state(), ConnState::Open);
    for i in 0..N {
        sb.send(msg(i)).await.unwrap();
    }
    let (got, events) = recv_n(&mut arx, N as usize, Duration::from_secs(30)).await;
    assert_eq!(got, (0..N).collect::<Vec<_>>());
    assert!(events.contains(&SessionEvent::Connect));
    assert_eq!(sa.state(), ConnState::Open);
    sa.mark_down();
    sb.mark_down();
    sa.closed().await;
    sb.closed().await;
}
