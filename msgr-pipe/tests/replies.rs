//! Replies queued while the reader delivers (as from fast dispatch): the reader sends them
//! itself when its deliveries end, or hands them to the writer task; none may be held back.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use msgr_dispatch::Throttle;
use msgr_pipe::testing::{HostEvent, TestNet};
use msgr_pipe::{Host, Incoming, PipeConfig, Policy, Session};
use msgr_wire::{EntityType, Message};

/// The reply to a test message: its number, padded like the request.
fn reply_to(m: &Message) -> Message {
    msg_padded(payload(m), m.front.len())
}

/// Makes `host` answer every test message from inside its delivery; counts the answers.
fn echo_on_delivery(host: &msgr_pipe::testing::TestHost) -> Arc<AtomicU64> {
    let queued = Arc::new(AtomicU64::new(0));
    let n = queued.clone();
    host.set_on_deliver(Some(Arc::new(move |s: &Session, inc: &Incoming| {
        if inc.msg.header.ty == TEST_TYPE {
            s.queue(reply_to(&inc.msg)).unwrap();
            n.fetch_add(1, Ordering::Relaxed);
        }
    })));
    queued
}

#[tokio::test(start_paused = true)]
async fn replies_from_deliveries_arrive_in_order_through_a_narrow_socket() {
    // A 100-byte pipe: a reply the reader writes itself is almost always cut short, and the
    // writer task must send the rest, then whatever was queued behind it.
    let net = TestNet::new(100);
    let (a, mut arx) = host(1, Policy::lossless_peer(0), PipeConfig::default(), &net);
    let (b, _brx) = host(2, Policy::lossless_peer(0), PipeConfig::default(), &net);
    let answered = echo_on_delivery(&b);
    let sa = a.connect(b.my_addr(), EntityType::OSD);
    const N: u64 = 300;
    for i in 0..N {
        // Sizes from 8 bytes to 3 KiB: staged and unstaged messages, several per batch.
        sa.send(msg_padded(i, 8 + (i as usize * 37) % 3000))
            .await
            .unwrap();
    }
    let (got, _) = recv_n(&mut arx, N as usize, Duration::from_secs(60)).await;
    assert_eq!(got, (0..N).collect::<Vec<_>>());
    assert_eq!(answered.load(Ordering::Relaxed), N);
    let sb = b.lookup(&a.my_addr()).unwrap();
    assert_eq!(sb.stats().msgs_out, N);
    assert_eq!(sb.stats().faults, 0);
    assert_eq!(sa.stats().faults, 0);
    // The replies carried b's ACKs: a holds nothing unacknowledged once they are in.
    let acked = async {
        while sa.stats().unacked > 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    };
    tokio::time::timeout(Duration::from_millis(100), acked)
        .await
        .expect("a's messages were not all acknowledged");
}

#[tokio::test(start_paused = true)]
async fn a_reply_is_not_held_back_while_the_reader_waits_for_a_throttle() {
    // b's dispatch throttle fits one 600-byte message. b's application holds the first
    // message (and its throttle bytes) until a answers b's reply to it; the second message is
    // already in b's read buffer, so b's reader stops on the throttle right after delivering
    // the first. A reader that kept the reply for "when its deliveries end" would deadlock.
    let net = TestNet::new(64 * 1024);
    let (a, mut arx) = host(1, Policy::lossless_peer(0), PipeConfig::default(), &net);
    let (b, mut brx) = host(2, Policy::lossless_peer(0), PipeConfig::default(), &net);
    b.set_dispatch_throttle(Some(Throttle::new(1000)));
    let sa = a.connect(b.my_addr(), EntityType::OSD);
    sa.send(msg_padded(1, 600)).await.unwrap();
    sa.send(msg_padded(2, 600)).await.unwrap();
    let first = loop {
        match brx.recv().await.unwrap() {
            HostEvent::Message { session, incoming } => break (session, incoming),
            HostEvent::Event { .. } => {}
        }
    };
    assert_eq!(payload(&first.1.msg), 1);
    // Every task idle: b's reader waits for throttle bytes that `first` holds.
    tokio::time::sleep(Duration::from_millis(1)).await;
    first.0.queue(reply_to(&first.1.msg)).unwrap();
    // Well within any keepalive or ACK timer that would also wake b's writer.
    let (got, _) = recv_n(&mut arx, 1, Duration::from_millis(50)).await;
    assert_eq!(got, vec![1]);
    drop(first);
    let (got, _) = recv_n(&mut brx, 1, Duration::from_secs(1)).await;
    assert_eq!(got, vec![2]);
}

#[tokio::test(start_paused = true)]
async fn replies_and_a_concurrent_stream_share_the_socket() {
    // b answers a's messages from its deliveries while its own task streams to a: every
    // message of both kinds arrives, each kind in order.
    let net = TestNet::new(4 * 1024);
    let (a, mut arx) = host(1, Policy::lossless_peer(0), PipeConfig::default(), &net);
    let (b, _brx) = host(2, Policy::lossless_peer(0), PipeConfig::default(), &net);
    echo_on_delivery(&b);
    let sa = a.connect(b.my_addr(), EntityType::OSD);
    sa.send(msg(0)).await.unwrap();
    let (got, _) = recv_n(&mut arx, 1, Duration::from_secs(10)).await;
    assert_eq!(got, vec![0]);
    let sb = b.lookup(&a.my_addr()).unwrap();
    const N: u64 = 500;
    let streamer = tokio::spawn(async move {
        for i in 0..N {
            sb.send(msg_padded(1_000_000 + i, 700)).await.unwrap();
        }
    });
    for i in 1..=N {
        sa.send(msg_padded(i, 900)).await.unwrap();
    }
    let (got, _) = recv_n(&mut arx, 2 * N as usize, Duration::from_secs(60)).await;
    streamer.await.unwrap();
    let (replies, streamed): (Vec<u64>, Vec<u64>) = got.into_iter().partition(|&n| n < 1_000_000);
    assert_eq!(replies, (1..=N).collect::<Vec<_>>());
    assert_eq!(streamed, (1_000_000..1_000_000 + N).collect::<Vec<_>>());
}

/// Real threads, real time, injected socket failures: every request gets exactly one reply,
/// in order, across reconnects and resends on both sides (a reply the reader was writing when
/// the socket failed is resent like any other message).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_survive_socket_failures_on_real_threads() {
    for seed in [11, 12, 13] {
        let cfg = PipeConfig {
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(20),
            inject: msgr_pipe::InjectConfig {
                socket_failures: 40,
                seed,
                ..msgr_pipe::InjectConfig::default()
            },
            ..PipeConfig::default()
        };
        let net = TestNet::new(4 * 1024);
        let (a, mut arx) = host(1, Policy::lossless_peer(0), cfg.clone(), &net);
        let (b, _brx) = host(2, Policy::lossless_peer(0), cfg, &net);
        echo_on_delivery(&b);
        let sa = a.connect(b.my_addr(), EntityType::OSD);
        const N: u64 = 400;
        let sender = {
            let sa = sa.clone();
            tokio::spawn(async move {
                for i in 0..N {
                    sa.send(msg_padded(i, 16 + (i as usize * 101) % 6000))
                        .await
                        .unwrap();
                }
            })
        };
        // The replies, then one more round trip: a duplicate of any reply would arrive before
        // the last one (one session, in order) and break the sequence.
        let (got, _) = recv_n(&mut arx, N as usize, Duration::from_secs(60)).await;
        sender.await.unwrap();
        sa.send(msg(N)).await.unwrap();
        let (last, _) = recv_n(&mut arx, 1, Duration::from_secs(60)).await;
        assert_eq!(got, (0..N).collect::<Vec<_>>(), "seed {seed}");
        assert_eq!(last, vec![N], "seed {seed}");
        let faults = sa.stats().faults + b.lookup(&a.my_addr()).map_or(0, |s| s.stats().faults);
        assert!(faults > 0, "seed {seed}: no fault injected");
        a.mark_down_all();
        b.mark_down_all();
    }
}

#[tokio::test(start_paused = true)]
async fn a_delivery_that_panics_faults_the_socket_and_the_session_goes_on() {
    // b's "fast dispatch" panics on message 1. The reader must not die with the socket: the
    // socket faults, the session reconnects, and what follows is delivered (message 1 counts
    // as received, like any message whose seq was accepted).
    let net = TestNet::new(64 * 1024);
    let (a, _arx) = host(1, Policy::lossless_peer(0), PipeConfig::default(), &net);
    let (b, mut brx) = host(2, Policy::lossless_peer(0), PipeConfig::default(), &net);
    b.set_on_deliver(Some(Arc::new(|_: &Session, inc: &Incoming| {
        assert!(
            !(inc.msg.header.ty == TEST_TYPE && payload(&inc.msg) == 1),
            "dispatcher bug on message 1"
        );
    })));
    let sa = a.connect(b.my_addr(), EntityType::OSD);
    sa.send(msg(0)).await.unwrap();
    let (got, _) = recv_n(&mut brx, 1, Duration::from_secs(10)).await;
    assert_eq!(got, vec![0]);
    for i in 1..=5 {
        sa.send(msg(i)).await.unwrap();
    }
    let (got, _) = recv_n(&mut brx, 4, Duration::from_secs(60)).await;
    assert_eq!(got, vec![2, 3, 4, 5]);
    let sb = b.lookup(&a.my_addr()).unwrap();
    assert_eq!(sb.stats().faults, 1);
    assert_eq!(sa.state(), msgr_pipe::ConnState::Open);
}
