//! Messages behind a full throttle: the reader takes in a read's messages as one batch under
//! the session's delivery lock, and lets the lock go before it waits for a message's
//! permits; that message is delivered first when the batch resumes, and order holds.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use msgr_dispatch::Throttle;
use msgr_pipe::testing::{HostEvent, TestNet};
use msgr_pipe::{Host, PipeConfig, Policy};
use msgr_wire::EntityType;

/// Five 600-byte messages reach b's reader together, behind a dispatch throttle that fits
/// one: each is delivered only once the one before it gave its bytes back, in order, with
/// the throttle never above one message; then the session goes on as usual (a sixth message
/// after the stall, delivered at once).
#[tokio::test(start_paused = true)]
async fn messages_behind_a_full_throttle_resume_in_order_one_at_a_time() {
    let net = TestNet::new(64 * 1024);
    let (a, _arx) = host(1, Policy::lossless_peer(0), PipeConfig::default(), &net);
    let (b, mut brx) = host(2, Policy::lossless_peer(0), PipeConfig::default(), &net);
    let throttle = Throttle::new(1000);
    b.set_dispatch_throttle(Some(throttle.clone()));
    let sa = a.connect(b.my_addr(), EntityType::OSD);
    for i in 1..=5 {
        sa.send(msg_padded(i, 600)).await.unwrap();
    }
    for i in 1..=5 {
        let incoming = loop {
            match brx.recv().await.unwrap() {
                HostEvent::Message { incoming, .. } => break incoming,
                HostEvent::Event { .. } => {}
            }
        };
        assert_eq!(payload(&incoming.msg), i, "delivered out of order");
        assert_eq!(
            throttle.current(),
            600,
            "message {i}: only it holds the throttle"
        );
        // Every task idle: the reader waits for the bytes this message holds.
        tokio::time::sleep(Duration::from_millis(5)).await;
        if i < 5 {
            assert!(
                brx.try_recv().is_err(),
                "message {} delivered while {i} held the throttle",
                i + 1
            );
            assert_eq!(throttle.waiters(), 1, "the reader waits on the throttle");
        }
        drop(incoming);
    }
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(throttle.current(), 0);
    sa.send(msg_padded(6, 600)).await.unwrap();
    let (got, _) = recv_n(&mut brx, 1, Duration::from_millis(50)).await;
    assert_eq!(got, vec![6]);
    assert_eq!(sa.stats().msgs_out, 6);
}
