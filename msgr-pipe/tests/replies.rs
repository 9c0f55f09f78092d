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

/// Real threads, real time, default backoffs, injected socket failures: every request gets
/// exactly one reply, in order, across reconnects and resends on both sides (a reply the
/// reader was writing when the socket failed is resent like any other message).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_survive_socket_failures_on_real_threads() {
    for seed in [11, 12, 13] {
        let cfg = PipeConfig {
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
        // Real threads on a loaded machine: 3 s of slack beyond the backoffs.
        let faults = || -> u64 {
            let all = a.sessions().into_iter().chain(b.sessions());
            all.map(|s| s.stats().faults).sum()
        };
        let stalls = Stalls::tracked(&PipeConfig::default(), Duration::from_secs(3), faults);
        let r = recv_timed(&mut arx, N as usize, Duration::from_secs(60), &stalls).await;
        sender.await.unwrap();
        sa.send(msg(N)).await.unwrap();
        let (last, _) = recv_n(&mut arx, 1, Duration::from_secs(60)).await;
        assert_eq!(r.got, (0..N).collect::<Vec<_>>(), "seed {seed}");
        assert_eq!(last, vec![N], "seed {seed}");
        let faults = sa.stats().faults + b.lookup(&a.my_addr()).map_or(0, |s| s.stats().faults);
        assert!(faults > 0, "seed {seed}: no fault injected");
        a.mark_down_all();
        b.mark_down_all();
    }
}

/// Request/response at a fixed depth (at most `depth` requests outstanding; the next one
/// leaves when a reply arrives) under socket failures at 1/`one_in`, default backoffs:
/// every request answered exactly once, in order, and every stall of the exchange paid for by
/// failed connection attempts (`common::Stalls`). Returns the faults seen.
async fn rr_under_faults(
    client: Policy,
    server: Policy,
    depth: u64,
    one_in: u32,
    seed: u64,
) -> u64 {
    let mut cfg = PipeConfig::default();
    cfg.inject.socket_failures = one_in;
    cfg.inject.seed = seed;
    let net = TestNet::new(64 * 1024);
    let (a, mut arx) = host(1, client, cfg.clone(), &net);
    let (b, _brx) = host(2, server, cfg, &net);
    let answered = echo_on_delivery(&b);
    let sa = a.connect(b.my_addr(), EntityType::OSD);
    let n: u64 = 300 * depth.min(4);
    let mut sent = 0;
    while sent < depth {
        sa.send(msg_padded(sent, 512)).await.unwrap();
        sent += 1;
    }
    let mut got = Vec::with_capacity(n as usize);
    let mut longest = Duration::ZERO;
    let faults = || -> u64 {
        let all = a.sessions().into_iter().chain(b.sessions());
        all.map(|s| s.stats().faults).sum()
    };
    let stalls = Stalls::tracked(&PipeConfig::default(), Duration::from_secs(1), faults);
    while (got.len() as u64) < n {
        let r = recv_timed(&mut arx, 1, Duration::from_secs(600), &stalls).await;
        longest = longest.max(r.longest_gap);
        got.extend(r.got);
        if sent < n {
            sa.send(msg_padded(sent, 512)).await.unwrap();
            sent += 1;
        }
    }
    let what = format!("depth {depth}, 1/{one_in}, seed {seed}");
    assert_eq!(got, (0..n).collect::<Vec<_>>(), "{what}");
    // One more round trip: a duplicated reply would arrive before it.
    sa.send(msg(n)).await.unwrap();
    let (last, _) = recv_n(&mut arx, 1, Duration::from_secs(600)).await;
    assert_eq!(last, vec![n], "{what}");
    assert_eq!(
        answered.load(Ordering::Relaxed),
        n + 1,
        "{what}: requests answered twice"
    );
    if one_in >= 200 {
        // A reconnect fails with p < 0.1 here: never several in a row.
        assert!(
            longest < Duration::from_secs(4),
            "{what}: stalled {longest:?}"
        );
    }
    let faults = sa.stats().faults + b.lookup(&a.my_addr()).map_or(0, |s| s.stats().faults);
    eprintln!("rr {what}: {faults} faults, longest stall {longest:?}");
    a.mark_down_all();
    b.mark_down_all();
    faults
}

#[tokio::test(start_paused = true)]
async fn request_response_under_faults_depth_1_and_16() {
    if std::env::var("MSGR_PIPE_LOG").is_ok() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("msgr_pipe=debug")
            .with_test_writer()
            .try_init();
    }
    for (depth, one_in, seeds, min_faults) in [
        (1, 30, [41, 42], 20),
        (1, 200, [43, 44], 3),
        (16, 30, [45, 46], 20),
        (16, 200, [47, 48], 3),
    ] {
        let mut faults = 0;
        for seed in seeds {
            faults += rr_under_faults(
                Policy::lossless_client(0),
                Policy::stateful_server(0),
                depth,
                one_in,
                seed,
            )
            .await;
            faults += rr_under_faults(
                Policy::lossless_peer(0),
                Policy::lossless_peer(0),
                depth,
                one_in,
                seed + 100,
            )
            .await;
        }
        assert!(
            faults >= min_faults,
            "depth {depth}, 1/{one_in}: only {faults} faults"
        );
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
