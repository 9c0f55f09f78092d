//! The submission inbox seen from outside: many senders queueing on one session at once,
//! on real threads and with injected socket failures (every message delivered once, in each
//! sender's order, across requeues of what the inbox had handed to the core); a close racing
//! them (every permit released, later sends refused); and the fast-dispatch reply still
//! written by the reader itself, with no hop to the writer task, a read's replies moved into
//! the core together.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use msgr_pipe::testing::{HostEvent, TestHost, TestNet};
use msgr_pipe::{Host, Incoming, PipeConfig, Policy, SendError, Session};
use msgr_wire::EntityType;

/// Message `i` of sender `k`.
fn tagged(k: u64, i: u64) -> u64 {
    (k << 32) | i
}

/// Each sender's messages in the order they arrived.
fn by_sender(got: &[u64]) -> BTreeMap<u64, Vec<u64>> {
    let mut m: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for &n in got {
        m.entry(n >> 32).or_default().push(n & 0xffff_ffff);
    }
    m
}

/// `senders` tasks sending `n` 64-byte messages each on clones of `s`.
fn spawn_senders(s: &Session, senders: u64, n: u64) -> Vec<tokio::task::JoinHandle<()>> {
    (0..senders)
        .map(|k| {
            let s = s.clone();
            tokio::spawn(async move {
                for i in 0..n {
                    s.send(msg_padded(tagged(k, i), 64)).await.unwrap();
                }
            })
        })
        .collect()
}

/// Three senders on each side of one lossless session, on two worker threads, with a
/// socket operation in 40 failing: each sender's messages arrive exactly once and in its
/// order. Messages the senders left in the inbox when a socket failed are moved into the
/// core before the fault requeues the sent list, so a resend never overtakes them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_senders_under_faults_each_message_once_in_order() {
    const SENDERS: u64 = 3;
    const N: u64 = 400;
    let mut faults = 0;
    let mut resends = 0;
    for seed in [41, 42] {
        let mut cfg = PipeConfig::default();
        cfg.inject.socket_failures = 40;
        cfg.inject.seed = seed;
        let net = TestNet::new(4 * 1024);
        let (a, mut arx) = host(1, Policy::lossless_peer(0), cfg.clone(), &net);
        let (b, mut brx) = host(2, Policy::lossless_peer(0), cfg, &net);
        let sa = a.connect(b.my_addr(), EntityType::OSD);
        let sb = b.connect(a.my_addr(), EntityType::OSD);
        let mut tasks = spawn_senders(&sa, SENDERS, N);
        tasks.extend(spawn_senders(&sb, SENDERS, N));
        let total = (SENDERS * N) as usize;
        let limit = Duration::from_secs(120);
        let ((to_b, _), (to_a, _)) = tokio::join!(
            recv_n(&mut brx, total, limit),
            recv_n(&mut arx, total, limit)
        );
        for t in tasks {
            t.await.unwrap();
        }
        let want: Vec<u64> = (0..N).collect();
        for (dir, got) in [("a -> b", &to_b), ("b -> a", &to_a)] {
            let per = by_sender(got);
            assert_eq!(per.len() as u64, SENDERS, "{dir}, seed {seed}");
            for (k, seen) in per {
                assert_eq!(seen, want, "{dir}, sender {k}, seed {seed}");
            }
        }
        // Nothing more arrives: one more message each way, queued after everything else,
        // is the next delivery (a duplicate would come first).
        sa.send(msg_padded(tagged(9, 0), 64)).await.unwrap();
        sb.send(msg_padded(tagged(9, 0), 64)).await.unwrap();
        let (last_b, _) = recv_n(&mut brx, 1, limit).await;
        let (last_a, _) = recv_n(&mut arx, 1, limit).await;
        assert_eq!((last_b, last_a), (vec![tagged(9, 0)], vec![tagged(9, 0)]));
        let (late_b, _) = drain(&mut brx);
        let (late_a, _) = drain(&mut arx);
        assert!(late_b.is_empty() && late_a.is_empty(), "duplicates");
        faults += sa.stats().faults + sb.stats().faults;
        resends += sa.stats().resends + sb.stats().resends;
        a.mark_down_all();
        b.mark_down_all();
    }
    eprintln!("{faults} socket faults, {resends} messages resent");
    assert!(faults >= 4, "only {faults} faults were injected");
    assert!(resends > 0, "no fault found messages to requeue");
}

/// Senders streaming while the session is marked down: each ends with
/// [`SendError::Closed`], every `max_pending_bytes` permit comes back (what the inbox,
/// the out queues and the sent list held was dropped), and a send after the close is
/// refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_close_racing_senders_releases_every_permit() {
    let net = TestNet::new(64 * 1024);
    let (a, _arx) = host(1, Policy::lossless_peer(0), PipeConfig::default(), &net);
    let (b, mut brx) = host(2, Policy::lossless_peer(0), PipeConfig::default(), &net);
    let sa = a.connect(b.my_addr(), EntityType::OSD);
    let sent = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..3)
        .map(|k| {
            let (s, sent) = (sa.clone(), sent.clone());
            tokio::spawn(async move {
                for i in 0.. {
                    match s.send(msg_padded(tagged(k, i), 64)).await {
                        Ok(()) => sent.fetch_add(1, Ordering::Relaxed),
                        Err(SendError::Closed) => return i,
                        Err(e) => panic!("{e}"),
                    };
                }
                unreachable!()
            })
        })
        .collect();
    // The stream is flowing before the close.
    recv_n(&mut brx, 2_000, Duration::from_secs(60)).await;
    sa.mark_down();
    let mut counts = Vec::new();
    for t in tasks {
        counts.push(t.await.unwrap());
    }
    assert!(
        counts.iter().all(|&c| c > 0),
        "every sender queued before the close: {counts:?}"
    );
    assert_eq!(counts.iter().sum::<u64>(), sent.load(Ordering::Relaxed));
    assert_eq!(sa.pending_bytes(), 0, "permits still held after the close");
    assert_eq!(sa.try_send(msg(1)), Err(SendError::Closed));
    assert!(matches!(sa.send(msg(1)).await, Err(SendError::Closed)));
    assert_eq!(sa.stats().queued + sa.stats().unacked, 0);
}

/// Hosts `a` and `b` on `net` with their events, `b` answering every test message with a
/// 64-byte message of the same number, queued from inside its delivery (fast dispatch).
fn echo_pair(net: &TestNet) -> (Arc<TestHost>, Events, Arc<TestHost>, Events) {
    let (a, arx) = host(1, Policy::lossless_peer(0), PipeConfig::default(), net);
    let (b, brx) = host(2, Policy::lossless_peer(0), PipeConfig::default(), net);
    b.set_on_deliver(Some(Arc::new(|s: &Session, inc: &Incoming| {
        if inc.msg.header.ty == TEST_TYPE {
            s.queue(msg_padded(payload(&inc.msg), 64)).unwrap();
        }
    })));
    (a, arx, b, brx)
}

/// A host's events, as `host` returns them.
type Events = tokio::sync::mpsc::UnboundedReceiver<HostEvent>;

/// A reply queued from inside the delivery of each request (fast dispatch) is written by
/// the reader of the socket at the end of its deliveries: one batch per request, written
/// from the reader's task (`Session::inline_writes`), none left to the writer task.
#[tokio::test(start_paused = true)]
async fn a_reply_from_fast_dispatch_is_written_by_the_reader_itself() {
    const N: u64 = 200;
    let net = TestNet::new(64 * 1024);
    let (a, mut arx, b, _brx) = echo_pair(&net);
    let sa = a.connect(b.my_addr(), EntityType::OSD);
    for i in 0..N {
        sa.send(msg_padded(i, 64)).await.unwrap();
        let (got, _) = recv_n(&mut arx, 1, Duration::from_secs(10)).await;
        assert_eq!(got, vec![i]);
    }
    let sb = b.lookup(&a.my_addr()).unwrap();
    let inline = sb.inline_writes();
    assert_eq!(
        inline, N,
        "replies written by b's reader: {inline} of {N} (the rest took a writer-task hop)"
    );
    assert_eq!(sb.stats().msgs_out, N);
    // a sends its requests from this task, not from a delivery: its reader wrote nothing.
    assert_eq!(sa.inline_writes(), 0);
}

/// The replies the deliveries of one read queue (fast dispatch) wait in the inbox until the
/// deliveries end, and are moved into the core together: the reader's sequence check of each
/// message leaves the inbox alone. It used to drain it, moving each reply alone, an inbox
/// lock and unlock per reply that met the senders' and the writer's (a 64-byte echo at depth
/// 128 made 180,000 `futex` calls per million round trips).
#[tokio::test(start_paused = true)]
async fn a_reads_replies_are_moved_into_the_core_together() {
    const N: u64 = 50;
    let net = TestNet::new(64 * 1024);
    let (a, mut arx, b, _brx) = echo_pair(&net);
    let sa = a.connect(b.my_addr(), EntityType::OSD);
    // One round trip first: the session is open and b's session is known.
    sa.send(msg_padded(0, 64)).await.unwrap();
    let (got, _) = recv_n(&mut arx, 1, Duration::from_secs(10)).await;
    assert_eq!(got, vec![0]);
    let sb = b.lookup(&a.my_addr()).unwrap();
    let (drains, inline) = (sb.inbox_drains(), sb.inline_writes());
    // N requests queued before a's writer runs (this task does not yield): one write, one
    // read at b.
    for i in 1..=N {
        sa.queue(msg_padded(i, 64)).unwrap();
    }
    let (got, _) = recv_n(&mut arx, N as usize, Duration::from_secs(10)).await;
    assert_eq!(got, (1..=N).collect::<Vec<_>>());
    assert_eq!(
        sb.inline_writes() - inline,
        1,
        "the replies went out in one batch"
    );
    assert_eq!(
        sb.inbox_drains() - drains,
        1,
        "the {N} replies of one read moved into the core at once"
    );
}
