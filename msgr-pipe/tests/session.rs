//! Session behaviour: races, standby, keepalives, timeouts, lossy resets, peer restarts,
//! sender back-pressure, handshake failures at every step.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use msgr_dispatch::Throttle;
use msgr_pipe::testing::{HostEvent, TestNet};
use msgr_pipe::{
    BoxFuture, ConnId, ConnState, HandshakeHook, HookAction, Host, PipeConfig, Policy, SendError,
    SessionEvent, Side, Step,
};
use msgr_wire::{EntityType, Tag};

async fn until(mut f: impl FnMut() -> bool, what: &str) {
    for _ in 0..10_000 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never: {what}");
}

#[tokio::test(start_paused = true)]
async fn simultaneous_connects_end_with_one_session_each_and_nothing_lost() {
    simultaneous_connects_end_with_one_session_each_and_nothing_lost_on(Proto::V1).await;
}

/// The same race over msgr2: CLIENT_IDENTs cross, the v1 table decides, WAIT for the loser.
#[tokio::test(start_paused = true)]
async fn msgr2_simultaneous_connects_end_with_one_session_each_and_nothing_lost() {
    simultaneous_connects_end_with_one_session_each_and_nothing_lost_on(Proto::V2).await;
}

async fn simultaneous_connects_end_with_one_session_each_and_nothing_lost_on(proto: Proto) {
    for round in 0..5u32 {
        simultaneous_connects(proto, round, PipeConfig::default()).await;
    }
}

/// Both lossless peers dial each other at once, repeatedly, while sockets fail (1/40 of
/// socket operations) and the drivers pause at their race points (internal delays) and hold
/// deliveries (delayed delivery): each round ends with one session on each side, every
/// message delivered exactly once and in order, and faults did happen.
#[tokio::test(start_paused = true)]
async fn simultaneous_connects_under_faults_and_internal_delays() {
    simultaneous_under_faults(Proto::V1).await;
}

/// The same over msgr2.
#[tokio::test(start_paused = true)]
async fn msgr2_simultaneous_connects_under_faults_and_internal_delays() {
    simultaneous_under_faults(Proto::V2).await;
}

async fn simultaneous_under_faults(proto: Proto) {
    let mut faults = 0;
    for round in 0..8u32 {
        let mut cfg = PipeConfig::default();
        cfg.inject.socket_failures = 40;
        cfg.inject.seed = 500 + u64::from(round);
        cfg.inject.internal_delay = Duration::from_millis(5);
        cfg.inject.delay_probability = 0.3;
        cfg.inject.delay_max = Duration::from_millis(100);
        faults += simultaneous_connects(proto, round, cfg).await;
    }
    assert!(faults >= 8, "{proto:?}: only {faults} faults in 8 rounds");
}

/// One round of crossing connects between two lossless peers speaking `proto` with `cfg`:
/// 100 messages each way, then a marker each way; returns the faults the sessions saw.
async fn simultaneous_connects(proto: Proto, round: u32, cfg: PipeConfig) -> u64 {
    let injecting = cfg.inject.socket_failures > 0;
    let net = TestNet::new(16 * 1024);
    let (a, mut arx) = proto.host(1, Policy::lossless_peer(0), cfg.clone(), &net);
    let (b, mut brx) = proto.host(2, Policy::lossless_peer(0), cfg, &net);
    // Both dial at once; the round number shifts who gets scheduled first.
    let (sa, sb) = if round % 2 == 0 {
        let sa = a.connect(b.my_addr(), EntityType::OSD);
        (sa, b.connect(a.my_addr(), EntityType::OSD))
    } else {
        let sb = b.connect(a.my_addr(), EntityType::OSD);
        (a.connect(b.my_addr(), EntityType::OSD), sb)
    };
    assert_eq!(sa.peer_addr().is_v2(), proto == Proto::V2);
    for i in 0..100 {
        sa.send(msg(i)).await.unwrap();
        sb.send(msg(i)).await.unwrap();
    }
    let what = format!("{proto:?} round {round}");
    let (got_b, _) = recv_n(&mut brx, 100, Duration::from_secs(600)).await;
    let (got_a, _) = recv_n(&mut arx, 100, Duration::from_secs(600)).await;
    assert_eq!(got_b, (0..100).collect::<Vec<_>>(), "{what}");
    assert_eq!(got_a, (0..100).collect::<Vec<_>>(), "{what}");
    assert_eq!(a.sessions(), vec![sa.clone()], "{what}");
    assert_eq!(b.sessions(), vec![sb.clone()], "{what}");
    if injecting {
        // A marker each way after everything: the next delivery (a duplicate would come
        // first), then nothing more.
        sa.send(msg(100)).await.unwrap();
        sb.send(msg(100)).await.unwrap();
        let (last_b, _) = recv_n(&mut brx, 1, Duration::from_secs(600)).await;
        let (last_a, _) = recv_n(&mut arx, 1, Duration::from_secs(600)).await;
        assert_eq!((last_b, last_a), (vec![100], vec![100]), "{what}");
        tokio::time::sleep(Duration::from_secs(30)).await;
        let (late_a, _) = drain(&mut arx);
        let (late_b, _) = drain(&mut brx);
        assert!(
            late_a.is_empty() && late_b.is_empty(),
            "{what}: duplicates {late_a:?} {late_b:?}"
        );
        assert_eq!(a.sessions(), vec![sa.clone()], "{what}");
        assert_eq!(b.sessions(), vec![sb.clone()], "{what}");
        assert_ne!(sa.state(), ConnState::Closed, "{what}");
        assert_ne!(sb.state(), ConnState::Closed, "{what}");
    } else {
        assert_eq!(sa.state(), ConnState::Open, "{what}");
        assert_eq!(sb.state(), ConnState::Open, "{what}");
    }
    let faults = sa.stats().faults + sb.stats().faults;
    a.mark_down_all();
    b.mark_down_all();
    faults
}

#[tokio::test(start_paused = true)]
async fn standby_then_wake_by_message_not_by_keepalive() {
    let net = TestNet::new(16 * 1024);
    let (a, _arx) = host(1, Policy::lossless_peer(0), PipeConfig::default(), &net);
    let (b, mut brx) = host(2, Policy::lossless_peer(0), PipeConfig::default(), &net);
    let sa = a.connect(b.my_addr(), EntityType::OSD);
    sa.send(msg(1)).await.unwrap();
    recv_n(&mut brx, 1, Duration::from_secs(60)).await;
    // Let the ack come back, so nothing is left to resend.
    until(|| sa.stats().unacked == 0, "acked").await;
    sa.kill_socket();
    until(|| sa.state() == ConnState::Standby, "a standby").await;
    let sb = b.lookup(&a.my_addr()).unwrap();
    until(|| sb.state() == ConnState::Standby, "b standby").await;
    let dials = net.dials();
    sa.send_keepalive();
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(
        sa.state(),
        ConnState::Standby,
        "a keepalive does not wake standby"
    );
    assert_eq!(net.dials(), dials);
    sa.send(msg(2)).await.unwrap();
    let (got, _) = recv_n(&mut brx, 1, Duration::from_secs(60)).await;
    assert_eq!(got, vec![2]);
    assert_eq!(net.dials(), dials + 1);
    assert_eq!(sa.state(), ConnState::Open);
    assert_eq!(
        sa.seqs().2,
        3,
        "bumped to 2 by the wake-up reconnect, 3 once open"
    );
    assert_eq!(b.sessions(), vec![sb]);
}

#[tokio::test]
async fn keepalive2_round_trip_echoes_the_original_stamp() {
    let net = TestNet::new(16 * 1024);
    let (a, mut arx) = host(1, Policy::lossless_peer(0), PipeConfig::default(), &net);
    let (b, _brx) = host(2, Policy::lossless_peer(0), PipeConfig::default(), &net);
    let sa = a.connect(b.my_addr(), EntityType::OSD);
    wait_event(&mut arx, SessionEvent::Connect, Duration::from_secs(10)).await;
    assert!(sa.last_keepalive_ack().is_none());
    let before = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    sa.send_keepalive();
    until(|| sa.last_keepalive_ack().is_some(), "keepalive2 ack").await;
    let after = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let ts = sa.last_keepalive_ack().unwrap();
    let stamp = Duration::new(u64::from(ts.sec), ts.nsec);
    assert!(
        before <= stamp && stamp <= after,
        "{before:?} {stamp:?} {after:?}"
    );
    let sb = b.lookup(&a.my_addr()).unwrap();
    assert!(sb.last_keepalive().is_some());
    assert!(sb.last_keepalive_ack().is_none());
}

#[tokio::test(start_paused = true)]
async fn read_timeout_faults_the_socket() {
    let net = TestNet::new(16 * 1024);
    let cfg = PipeConfig {
        read_timeout: Duration::from_secs(5),
        ..PipeConfig::default()
    };
    let (a, mut arx) = host(1, Policy::lossy_client(0), cfg.clone(), &net);
    let (b, _brx) = host(2, Policy::stateless_server(0), cfg, &net);
    let sa = a.connect(b.my_addr(), EntityType::OSD);
    wait_event(&mut arx, SessionEvent::Connect, Duration::from_secs(1)).await;
    let start = tokio::time::Instant::now();
    wait_event(&mut arx, SessionEvent::Reset, Duration::from_secs(60)).await;
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_secs(5) && waited < Duration::from_secs(6),
        "{waited:?}"
    );
    assert_eq!(sa.state(), ConnState::Closed);
}

#[tokio::test(start_paused = true)]
async fn lossy_fault_gives_exactly_one_reset() {
    lossy_fault_gives_exactly_one_reset_on(Proto::V1).await;
}

/// The same over msgr2.
#[tokio::test(start_paused = true)]
async fn msgr2_lossy_fault_gives_exactly_one_reset() {
    lossy_fault_gives_exactly_one_reset_on(Proto::V2).await;
}

async fn lossy_fault_gives_exactly_one_reset_on(proto: Proto) {
    lossy_fault_once(proto, PipeConfig::default()).await;
    let mut delayed = PipeConfig::default();
    delayed.inject.internal_delay = Duration::from_millis(100);
    lossy_fault_once(proto, delayed).await;
}

async fn lossy_fault_once(proto: Proto, cfg: PipeConfig) {
    let net = TestNet::new(16 * 1024);
    let (a, mut arx) = proto.host(1, Policy::lossy_client(0), cfg.clone(), &net);
    let (b, mut brx) = proto.host(2, Policy::stateless_server(0), cfg, &net);
    let sa = a.connect(b.my_addr(), EntityType::OSD);
    sa.send(msg(1)).await.unwrap();
    recv_n(&mut brx, 1, Duration::from_secs(10)).await;
    sa.kill_socket();
    sa.kill_socket();
    sa.closed().await;
    tokio::time::sleep(Duration::from_secs(120)).await;
    let (_, a_events) = drain(&mut arx);
    let (_, b_events) = drain(&mut brx);
    let resets = |e: &[SessionEvent]| e.iter().filter(|e| **e == SessionEvent::Reset).count();
    assert_eq!(resets(&a_events), 1, "{a_events:?}");
    assert_eq!(resets(&b_events), 1, "{b_events:?}");
    assert_eq!(sa.send(msg(2)).await, Err(SendError::Closed));
    assert_eq!(sa.try_send(msg(2)), Err(SendError::Closed));
    assert!(a.sessions().is_empty() && b.sessions().is_empty());
    // A new session can be made afterwards.
    let sa2 = a.connect(b.my_addr(), EntityType::OSD);
    assert_ne!(sa2.id(), sa.id());
    sa2.send(msg(3)).await.unwrap();
    let (got, _) = recv_n(&mut brx, 1, Duration::from_secs(10)).await;
    assert_eq!(got, vec![3]);
}

#[tokio::test(start_paused = true)]
async fn lossy_fault_before_open_retries() {
    let net = TestNet::new(16 * 1024);
    let (a, mut arx) = host(1, Policy::lossy_client(0), PipeConfig::default(), &net);
    let sa = a.connect(addr(2), EntityType::OSD);
    sa.send(msg(1)).await.unwrap();
    wait_event(&mut arx, SessionEvent::Refused, Duration::from_secs(10)).await;
    wait_event(&mut arx, SessionEvent::Refused, Duration::from_secs(10)).await;
    assert_eq!(sa.state(), ConnState::Connecting);
    let (b, mut brx) = host(2, Policy::stateless_server(0), PipeConfig::default(), &net);
    let (got, _) = recv_n(&mut brx, 1, Duration::from_secs(60)).await;
    assert_eq!(got, vec![1]);
    drop(b);
}

#[tokio::test(start_paused = true)]
async fn restarted_peer_gives_remote_reset_under_resetcheck() {
    restarted_peer_gives_remote_reset_under_resetcheck_on(Proto::V1).await;
}

/// The same over msgr2: the restarted peer's CLIENT_IDENT (a new client cookie) resets the old session.
#[tokio::test(start_paused = true)]
async fn msgr2_restarted_peer_gives_remote_reset_under_resetcheck() {
    restarted_peer_gives_remote_reset_under_resetcheck_on(Proto::V2).await;
}

async fn restarted_peer_gives_remote_reset_under_resetcheck_on(proto: Proto) {
    let net = TestNet::new(16 * 1024);
    let (a, _arx) = proto.host(
        1,
        Policy::lossless_peer_reuse(0),
        PipeConfig::default(),
        &net,
    );
    let (b, mut brx) = proto.host(
        2,
        Policy::lossless_peer_reuse(0),
        PipeConfig::default(),
        &net,
    );
    let sa = a.connect(b.my_addr(), EntityType::OSD);
    sa.send(msg(1)).await.unwrap();
    recv_n(&mut brx, 1, Duration::from_secs(10)).await;
    let sb = b.lookup(&a.my_addr()).unwrap();
    // The established session's connect_seq: v1's READY raises it to 1; msgr2's acceptor
    // holds the client's own (0 for CLIENT_IDENT), as Ceph's ProtocolV2 does.
    let established = match proto {
        Proto::V1 => 1,
        Proto::V2 => 0,
    };
    assert_eq!(sb.seqs().2, established);
    // b has something queued for the old incarnation of a.
    sb.send(msg(50)).await.unwrap();
    // a restarts: same address, no memory of the session.
    a.mark_down_all();
    drop(a);
    let (a2, mut a2rx) = proto.host(
        1,
        Policy::lossless_peer_reuse(0),
        PipeConfig::default(),
        &net,
    );
    let s2 = a2.connect(b.my_addr(), EntityType::OSD);
    s2.send(msg(2)).await.unwrap();
    let (got, events) = recv_n(&mut brx, 1, Duration::from_secs(60)).await;
    assert_eq!(got, vec![2]);
    assert!(events.contains(&SessionEvent::RemoteReset), "{events:?}");
    assert_eq!(
        b.sessions(),
        vec![sb.clone()],
        "the existing session was reused"
    );
    // The old queue was dropped; new traffic flows both ways with fresh sequences.
    sb.send(msg(3)).await.unwrap();
    let (got, _) = recv_n(&mut a2rx, 1, Duration::from_secs(60)).await;
    assert_eq!(got, vec![3]);
    assert_eq!(
        s2.stats().msgs_in,
        1,
        "msg 50 was discarded with the old session"
    );
}

#[tokio::test(start_paused = true)]
async fn a_peer_that_never_reads_bounds_the_sender() {
    let net = TestNet::new(4 * 1024);
    let cfg = PipeConfig {
        max_pending_bytes: 64 * 1024,
        ..PipeConfig::default()
    };
    let (a, _arx) = host(1, Policy::lossless_peer(0), cfg, &net);
    let throttled = Policy::lossless_peer(0).with_throttles(None, Some(Throttle::new(1)));
    let (b, mut brx) = host(2, throttled, PipeConfig::default(), &net);
    let sa = a.connect(b.my_addr(), EntityType::OSD);
    // b's application holds the first message: b's reader stops before the second body.
    sa.send(msg_padded(0, 1024)).await.unwrap();
    let held = loop {
        match tokio::time::timeout(Duration::from_secs(10), brx.recv())
            .await
            .unwrap()
        {
            Some(HostEvent::Message { incoming, .. }) => break incoming,
            Some(HostEvent::Event { .. }) => {}
            None => panic!("closed"),
        }
    };
    let mut sent = 1u64;
    loop {
        match sa.try_send(msg_padded(sent, 1024)) {
            Ok(()) => sent += 1,
            Err(SendError::Full) => break,
            Err(e) => panic!("{e}"),
        }
        assert!(sent < 1000, "try_send never reported Full");
        tokio::task::yield_now().await;
    }
    assert!(sa.pending_bytes() <= 64 * 1024 + 1024);
    // send() waits (here: for ever, as long as b holds its message).
    let blocked =
        tokio::time::timeout(Duration::from_secs(30), sa.send(msg_padded(sent, 1024))).await;
    assert!(blocked.is_err(), "send did not wait");
    assert!(sa.pending_bytes() <= 64 * 1024 + 1024);
    // b lets go: everything arrives, in order, and the sender's bytes come back.
    drop(held);
    let (got, _) = recv_n(&mut brx, (sent - 1) as usize, Duration::from_secs(60)).await;
    assert_eq!(got, (1..sent).collect::<Vec<_>>());
    until(|| sa.pending_bytes() == 0, "all acked").await;
}

/// Fails the `n`-th handshake step it sees (counting both sides of one host), and records
/// which step that was, so a test can check that the failure was injected.
struct FailNth {
    n: usize,
    seen: AtomicUsize,
    fired: std::sync::Mutex<Option<(Side, Step)>>,
}

impl FailNth {
    fn new(n: usize) -> Arc<FailNth> {
        Arc::new(FailNth {
            n,
            seen: AtomicUsize::new(0),
            fired: std::sync::Mutex::new(None),
        })
    }

    /// The step that was failed, if the `n`-th step was reached.
    fn fired(&self) -> Option<(Side, Step)> {
        *self.fired.lock().unwrap()
    }
}

impl HandshakeHook for FailNth {
    fn step(&self, _conn: ConnId, side: Side, step: Step) -> BoxFuture<'static, HookAction> {
        let i = self.seen.fetch_add(1, Ordering::SeqCst);
        let action = if i == self.n {
            *self.fired.lock().unwrap() = Some((side, step));
            HookAction::Fail
        } else {
            HookAction::Continue
        };
        Box::pin(async move { action })
    }
}

/// The steps a's connector goes through in one handshake with b (a new lossless session is
/// answered with SEQ, as the peers advertise RECONNECT_SEQ), and those of b's acceptor.
const CONNECTOR_STEPS: [(Side, Step); 6] = [
    (Side::Connector, Step::BannerSent),
    (Side::Connector, Step::AddrReceived),
    (Side::Connector, Step::ConnectSent),
    (Side::Connector, Step::ReplyReceived(Tag::Seq as u8)),
    (Side::Connector, Step::SeqExchanged),
    (Side::Connector, Step::Ready),
];
const ACCEPTOR_STEPS: [(Side, Step); 5] = [
    (Side::Acceptor, Step::BannerSent),
    (Side::Acceptor, Step::ConnectReceived),
    (Side::Acceptor, Step::ReplySent(Tag::Seq as u8)),
    (Side::Acceptor, Step::SeqExchanged),
    (Side::Acceptor, Step::Ready),
];

/// Each step of both handshakes (the first, and the reconnect after `kill_socket`) of each
/// side fails once, in its own run: the hook must have failed exactly that step, and the
/// messages of both directions arrive exactly once, in order.
#[tokio::test(start_paused = true)]
async fn a_failure_at_every_handshake_step_loses_nothing() {
    failure_at_every_step(Proto::V1, &CONNECTOR_STEPS, &ACCEPTOR_STEPS).await;
}

/// The steps the msgr2 drivers report: the banner queued, the connector's CLIENT_IDENT or
/// SESSION_RECONNECT written (and read by the acceptor), and the handshake done (the
/// connector read SERVER_IDENT or SESSION_RECONNECT_OK; the acceptor wrote it).
const V2_CONNECTOR_STEPS: [(Side, Step); 3] = [
    (Side::Connector, Step::BannerSent),
    (Side::Connector, Step::ConnectSent),
    (Side::Connector, Step::Ready),
];
const V2_ACCEPTOR_STEPS: [(Side, Step); 3] = [
    (Side::Acceptor, Step::BannerSent),
    (Side::Acceptor, Step::ConnectReceived),
    (Side::Acceptor, Step::Ready),
];

/// The same over msgr2, at each step its drivers report, in the first handshake and in the
/// SESSION_RECONNECT after `kill_socket`.
#[tokio::test(start_paused = true)]
async fn msgr2_a_failure_at_every_handshake_step_loses_nothing() {
    failure_at_every_step(Proto::V2, &V2_CONNECTOR_STEPS, &V2_ACCEPTOR_STEPS).await;
}

async fn failure_at_every_step(
    proto: Proto,
    connector_steps: &[(Side, Step)],
    acceptor_steps: &[(Side, Step)],
) {
    let on_a = connector_steps.iter().chain(connector_steps);
    let on_b = acceptor_steps.iter().chain(acceptor_steps);
    let runs = on_a
        .enumerate()
        .map(|(n, s)| (true, n, *s))
        .chain(on_b.enumerate().map(|(n, s)| (false, n, *s)));
    for (on_a, n, expected) in runs {
        let what = format!(
            "step {n} ({expected:?}) on {}",
            if on_a { "a" } else { "b" }
        );
        let hook = FailNth::new(n);
        let hooked = PipeConfig {
            hook: Some(hook.clone()),
            ..PipeConfig::default()
        };
        let (ca, cb) = if on_a {
            (hooked, PipeConfig::default())
        } else {
            (PipeConfig::default(), hooked)
        };
        let net = TestNet::new(16 * 1024);
        let (a, mut arx) = proto.host(1, Policy::lossless_peer(0), ca, &net);
        let (b, mut brx) = proto.host(2, Policy::lossless_peer(0), cb, &net);
        let sa = a.connect(b.my_addr(), EntityType::OSD);
        for i in 0..20 {
            sa.send(msg(i)).await.unwrap();
        }
        let (got, _) = recv_n(&mut brx, 20, Duration::from_secs(600)).await;
        assert_eq!(got, (0..20).collect::<Vec<_>>(), "{what}");
        // A reconnect in the middle of the stream (a dials: b, with nothing to send, waits
        // in standby, so the second handshake is a's connector and b's acceptor again),
        // then the reply direction.
        sa.kill_socket();
        for i in 0..20 {
            sa.send(msg(100 + i)).await.unwrap();
        }
        let (got, _) = recv_n(&mut brx, 20, Duration::from_secs(600)).await;
        assert_eq!(got, (100..120).collect::<Vec<_>>(), "{what}");
        let sb = b.lookup(&a.my_addr()).unwrap();
        for i in 0..20 {
            sb.send(msg(i)).await.unwrap();
        }
        let (got, _) = recv_n(&mut arx, 20, Duration::from_secs(600)).await;
        assert_eq!(got, (0..20).collect::<Vec<_>>(), "{what}");
        assert_eq!(
            hook.fired(),
            Some(expected),
            "{what}: the failure was not injected there"
        );
        tokio::time::sleep(Duration::from_secs(30)).await;
        let (late_a, _) = drain(&mut arx);
        let (late_b, _) = drain(&mut brx);
        assert!(
            late_a.is_empty() && late_b.is_empty(),
            "{what}: duplicates {late_a:?} {late_b:?}"
        );
        a.mark_down_all();
        b.mark_down_all();
    }
}

/// Stalls the first acceptor step `at` for ever.
struct StallFirst {
    at: Step,
    seen: AtomicUsize,
}

impl HandshakeHook for StallFirst {
    fn step(&self, _conn: ConnId, side: Side, step: Step) -> BoxFuture<'static, HookAction> {
        let stall = side == Side::Acceptor
            && step == self.at
            && self.seen.fetch_add(1, Ordering::SeqCst) == 0;
        Box::pin(async move {
            if stall {
                std::future::pending::<()>().await;
            }
            HookAction::Continue
        })
    }
}

#[tokio::test(start_paused = true)]
async fn handshake_timeout_then_retry() {
    handshake_timeout_then_retry_on(Proto::V1, Step::ConnectReceived).await;
}

/// The same over msgr2, the acceptor stalled before its banner (the v2 acceptor's first
/// step): both ends' handshake timeouts end the attempt, the retry opens.
#[tokio::test(start_paused = true)]
async fn msgr2_handshake_timeout_then_retry() {
    handshake_timeout_then_retry_on(Proto::V2, Step::BannerSent).await;
}

async fn handshake_timeout_then_retry_on(proto: Proto, at: Step) {
    let net = TestNet::new(16 * 1024);
    let (a, mut arx) = proto.host(1, Policy::lossless_client(0), PipeConfig::default(), &net);
    let stalling = PipeConfig {
        hook: Some(Arc::new(StallFirst {
            at,
            seen: AtomicUsize::new(0),
        })),
        ..PipeConfig::default()
    };
    let (b, mut brx) = proto.host(2, Policy::stateful_server(0), stalling, &net);
    let start = tokio::time::Instant::now();
    let sa = a.connect(b.my_addr(), EntityType::OSD);
    sa.send(msg(1)).await.unwrap();
    wait_event(&mut arx, SessionEvent::Connect, Duration::from_secs(60)).await;
    let waited = start.elapsed();
    assert!(waited >= Duration::from_secs(10), "{waited:?}");
    assert!(waited < Duration::from_secs(12), "{waited:?}");
    let (got, _) = recv_n(&mut brx, 1, Duration::from_secs(10)).await;
    assert_eq!(got, vec![1]);
    assert_eq!(net.dials(), 2);
}

/// The connector pauses after reading READY/SEQ of its first handshake (until opened), then
/// fails there.
struct PauseThenFailAtConnectorReady {
    gate: Arc<tokio::sync::Notify>,
    seen: AtomicUsize,
    failed: Arc<AtomicUsize>,
}

impl HandshakeHook for PauseThenFailAtConnectorReady {
    fn step(&self, _conn: ConnId, side: Side, step: Step) -> BoxFuture<'static, HookAction> {
        let first = side == Side::Connector
            && step == Step::Ready
            && self.seen.fetch_add(1, Ordering::SeqCst) == 0;
        let gate = self.gate.clone();
        let failed = self.failed.clone();
        Box::pin(async move {
            if first {
                gate.notified().await;
                failed.fetch_add(1, Ordering::SeqCst);
                HookAction::Fail
            } else {
                HookAction::Continue
            }
        })
    }
}

#[tokio::test(start_paused = true)]
async fn connector_fault_after_ready_keeps_the_session() {
    let servers = [Policy::stateful_server(0), Policy::lossless_peer_reuse(0)];
    connector_fault_after_ready_keeps_the_session_on(Proto::V1, &servers).await;
}

/// The same over msgr2 (the connector fails after SERVER_IDENT; it resumes with SESSION_RECONNECT).
#[tokio::test(start_paused = true)]
async fn msgr2_connector_fault_after_ready_keeps_the_session() {
    let servers = [Policy::stateful_server(0)];
    connector_fault_after_ready_keeps_the_session_on(Proto::V2, &servers).await;
}

/// The same over msgr2 with a lossless_peer_reuse server, which reconnects itself after
/// the client's fault: its SESSION_RECONNECT may reach the client session before that one
/// resumes (the client took the server's cookie at SERVER_IDENT and failed before opening).
/// Both sides hold `connect_seq` 1 then, a reconnect race settled by the addresses (Ceph's
/// handle_reconnect); had the client never seen SERVER_IDENT, it would answer
/// SESSION_RESET(full = false) and the server would establish the session again with its
/// queue. Nothing is reset and the server's queued message arrives (it was reset and lost
/// in about 1 run in 3 when the acceptor's table was v1's).
#[tokio::test(start_paused = true)]
async fn msgr2_connector_fault_after_ready_keeps_the_session_with_a_reconnecting_peer() {
    let servers = [Policy::lossless_peer_reuse(0)];
    connector_fault_after_ready_keeps_the_session_on(Proto::V2, &servers).await;
}

/// a's connector fails its first attempt right after its CLIENT_IDENT is written (so it never
/// reads SERVER_IDENT) once `gate` opens; its later attempts are held at their banner.
struct FailAfterIdentThenHold {
    gate: Arc<tokio::sync::Notify>,
    failed: Arc<AtomicUsize>,
    banners: AtomicUsize,
    held: Arc<AtomicUsize>,
}

impl HandshakeHook for FailAfterIdentThenHold {
    fn step(&self, _conn: ConnId, side: Side, step: Step) -> BoxFuture<'static, HookAction> {
        let fail = side == Side::Connector
            && step == Step::ConnectSent
            && self.failed.load(Ordering::SeqCst) == 0;
        let hold = side == Side::Connector
            && step == Step::BannerSent
            && self.banners.fetch_add(1, Ordering::SeqCst) > 0;
        let (gate, failed, held) = (self.gate.clone(), self.failed.clone(), self.held.clone());
        Box::pin(async move {
            if fail {
                gate.notified().await;
                failed.fetch_add(1, Ordering::SeqCst);
                return HookAction::Fail;
            }
            if hold {
                held.fetch_add(1, Ordering::SeqCst);
                std::future::pending::<()>().await;
            }
            HookAction::Continue
        })
    }
}

/// Receives until `want` is reported (at most 60 s of paused time): the messages and the
/// events on the way, `want` last.
async fn until_event(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<HostEvent>,
    want: SessionEvent,
) -> (Vec<u64>, Vec<SessionEvent>) {
    let (mut got, mut events) = (Vec::new(), Vec::new());
    let fut = async {
        while events.last() != Some(&want) {
            match rx.recv().await.expect("closed") {
                HostEvent::Message { incoming, .. } => got.push(payload(&incoming.msg)),
                HostEvent::Event { event, .. } => events.push(event),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), fut)
        .await
        .expect("event did not come");
    (got, events)
}

/// msgr2: a lossless_peer_reuse server answered a's CLIENT_IDENT (SERVER_IDENT, its session
/// open, a message queued for a) but a failed before reading it. The server reconnects with
/// SESSION_RECONNECT to a's session, which has no server cookie: a answers
/// SESSION_RESET(full = false) (Ceph's handle_reconnect), the server sends CLIENT_IDENT with
/// a's cookie and a continues the establishment (handle_existing_connection) with SERVER_IDENT.
/// a's own reconnects are held, so the session can only have come back by the server's
/// connection: it does, with no reset on either side, and both queued messages arrive once
/// (a full reset dropped the server's message before).
#[tokio::test(start_paused = true)]
async fn msgr2_a_reconnect_to_a_session_that_never_saw_server_ident_establishes_it_again() {
    let net = TestNet::new(16 * 1024);
    let gate = Arc::new(tokio::sync::Notify::new());
    let failed = Arc::new(AtomicUsize::new(0));
    let held = Arc::new(AtomicUsize::new(0));
    let cfg = PipeConfig {
        hook: Some(Arc::new(FailAfterIdentThenHold {
            gate: gate.clone(),
            failed: failed.clone(),
            banners: AtomicUsize::new(0),
            held: held.clone(),
        })),
        ..PipeConfig::default()
    };
    let (a, mut arx) = Proto::V2.host(1, Policy::lossless_client(0), cfg, &net);
    let (b, mut brx) = Proto::V2.host(
        2,
        Policy::lossless_peer_reuse(0),
        PipeConfig::default(),
        &net,
    );
    let sa = a.connect(b.my_addr(), EntityType::OSD);
    sa.send(msg(1)).await.unwrap();
    let sb = wait_event(&mut brx, SessionEvent::Accept, Duration::from_secs(10)).await;
    sb.send(msg(77)).await.unwrap();
    gate.notify_one();
    // The server's own connection brings the session back (a's are held).
    let (mut got_b, b_events) = until_event(&mut brx, SessionEvent::Connect).await;
    let (got, a_events) = recv_n(&mut arx, 1, Duration::from_secs(60)).await;
    assert_eq!(got, vec![77]);
    let mut b_more = Vec::new();
    if got_b.is_empty() {
        let (got, more) = recv_n(&mut brx, 1, Duration::from_secs(60)).await;
        (got_b, b_more) = (got, more);
    }
    assert_eq!(got_b, vec![1]);
    assert_eq!(
        failed.load(Ordering::SeqCst),
        1,
        "a failed after CLIENT_IDENT once"
    );
    assert!(held.load(Ordering::SeqCst) >= 1, "a's reconnect was held");
    tokio::time::sleep(Duration::from_secs(30)).await;
    let (late_a, more_a) = drain(&mut arx);
    let (late_b, more_b) = drain(&mut brx);
    assert!(late_a.is_empty() && late_b.is_empty(), "duplicates");
    let all = [&a_events, &b_events, &b_more, &more_a, &more_b];
    for e in all.iter().flat_map(|v| v.iter()) {
        assert!(
            !matches!(e, SessionEvent::Reset | SessionEvent::RemoteReset),
            "{all:?}"
        );
    }
    assert!(a_events.contains(&SessionEvent::Accept), "{a_events:?}");
    assert_eq!(a.sessions(), vec![sa]);
    assert_eq!(b.sessions(), vec![sb]);
    a.mark_down_all();
    b.mark_down_all();
}

/// Fails the connector's `Ready` the `nth` time (0-based) it is reached.
struct FailConnectorReadyNth {
    nth: usize,
    seen: AtomicUsize,
    failed: Arc<AtomicUsize>,
}

impl HandshakeHook for FailConnectorReadyNth {
    fn step(&self, _conn: ConnId, side: Side, step: Step) -> BoxFuture<'static, HookAction> {
        let fail = side == Side::Connector
            && step == Step::Ready
            && self.seen.fetch_add(1, Ordering::SeqCst) == self.nth;
        if fail {
            self.failed.fetch_add(1, Ordering::SeqCst);
        }
        Box::pin(async move {
            if fail {
                HookAction::Fail
            } else {
                HookAction::Continue
            }
        })
    }
}

/// msgr2: `hi` (the higher address) resumes its session with `lo` by SESSION_RECONNECT
/// (connect_seq 1), `lo` takes it and holds 1, and `hi` fails right after reading
/// SESSION_RECONNECT_OK, before it opens: its retry carries 1 again, equal to what `lo`
/// holds, while `lo` (nothing queued) is open or in standby, not reconnecting. A reconnect
/// race needs both sides reconnecting: `lo` takes the retry. It answered WAIT (its address
/// wins races), and `hi` waited for a connection `lo` never makes, 15 s at a time, for ever
/// (the messages synthetic_msgr2_inject_peer_reuse lost). Now the message arrives within a
/// second of virtual time.
#[tokio::test(start_paused = true)]
async fn msgr2_a_retried_reconnect_at_the_held_connect_seq_resumes_a_session_not_reconnecting() {
    let net = TestNet::new(16 * 1024);
    let failed = Arc::new(AtomicUsize::new(0));
    let cfg = PipeConfig {
        hook: Some(Arc::new(FailConnectorReadyNth {
            nth: 1,
            seen: AtomicUsize::new(0),
            failed: failed.clone(),
        })),
        ..PipeConfig::default()
    };
    let policy = Policy::lossless_peer_reuse(0);
    let (lo, mut lorx) = Proto::V2.host(1, policy.clone(), PipeConfig::default(), &net);
    let (hi, mut hirx) = Proto::V2.host(2, policy, cfg, &net);
    assert_eq!(
        lo.my_addr().race_cmp(&hi.my_addr()),
        std::cmp::Ordering::Less,
        "lo wins races"
    );
    let s = hi.connect(lo.my_addr(), EntityType::OSD);
    s.send(msg(1)).await.unwrap();
    let (got, _) = recv_n(&mut lorx, 1, Duration::from_secs(10)).await;
    assert_eq!(got, vec![1]);
    s.kill_socket();
    s.send(msg(2)).await.unwrap();
    let start = tokio::time::Instant::now();
    let (got, lo_events) = recv_n(&mut lorx, 1, Duration::from_secs(60)).await;
    let took = start.elapsed();
    assert_eq!(got, vec![2]);
    assert!(took < Duration::from_secs(1), "{took:?}");
    assert_eq!(
        failed.load(Ordering::SeqCst),
        1,
        "the reconnect failed after its OK"
    );
    tokio::time::sleep(Duration::from_secs(30)).await;
    let (late_lo, more_lo) = drain(&mut lorx);
    let (late_hi, hi_events) = drain(&mut hirx);
    assert!(late_lo.is_empty() && late_hi.is_empty(), "duplicates");
    let all = [&lo_events, &more_lo, &hi_events];
    for e in all.iter().flat_map(|v| v.iter()) {
        assert!(
            !matches!(e, SessionEvent::Reset | SessionEvent::RemoteReset),
            "{all:?}"
        );
    }
    assert_eq!(hi.sessions(), vec![s]);
    assert_eq!(lo.sessions().len(), 1);
    lo.mark_down_all();
    hi.mark_down_all();
}

async fn connector_fault_after_ready_keeps_the_session_on(proto: Proto, servers: &[Policy]) {
    for server in servers.iter().cloned() {
        eprintln!("{proto:?}: server {server:?}");
        let net = TestNet::new(16 * 1024);
        let gate = Arc::new(tokio::sync::Notify::new());
        let failed = Arc::new(AtomicUsize::new(0));
        let cfg = PipeConfig {
            hook: Some(Arc::new(PauseThenFailAtConnectorReady {
                gate: gate.clone(),
                seen: AtomicUsize::new(0),
                failed: failed.clone(),
            })),
            ..PipeConfig::default()
        };
        let (a, mut arx) = proto.host(1, Policy::lossless_client(0), cfg, &net);
        let (b, mut brx) = proto.host(2, server, PipeConfig::default(), &net);
        let sa = a.connect(b.my_addr(), EntityType::OSD);
        sa.send(msg(1)).await.unwrap();
        let sb = wait_event(&mut brx, SessionEvent::Accept, Duration::from_secs(10)).await;
        sb.send(msg(77)).await.unwrap();
        gate.notify_one();
        let (got, a_events) = recv_n(&mut arx, 1, Duration::from_secs(60)).await;
        assert_eq!(got, vec![77]);
        let (got, b_events) = recv_n(&mut brx, 1, Duration::from_secs(60)).await;
        assert_eq!(got, vec![1]);
        tokio::time::sleep(Duration::from_secs(30)).await;
        let (late_a, more_a) = drain(&mut arx);
        let (late_b, more_b) = drain(&mut brx);
        assert!(late_a.is_empty() && late_b.is_empty(), "duplicates");
        assert_eq!(
            failed.load(Ordering::SeqCst),
            1,
            "the connector failed once after READY"
        );
        for e in a_events
            .iter()
            .chain(&b_events)
            .chain(&more_a)
            .chain(&more_b)
        {
            assert!(
                !matches!(e, SessionEvent::Reset | SessionEvent::RemoteReset),
                "{a_events:?} {b_events:?} {more_a:?} {more_b:?}"
            );
        }
        assert_eq!(b.sessions(), vec![sb]);
        a.mark_down_all();
        b.mark_down_all();
    }
}

/// Fails the next acceptor `Ready` once armed.
struct FailNextAcceptorReady {
    armed: std::sync::atomic::AtomicBool,
}

impl HandshakeHook for FailNextAcceptorReady {
    fn step(&self, _conn: ConnId, side: Side, step: Step) -> BoxFuture<'static, HookAction> {
        let fail = side == Side::Acceptor
            && step == Step::Ready
            && self.armed.swap(false, Ordering::SeqCst);
        Box::pin(async move {
            if fail {
                HookAction::Fail
            } else {
                HookAction::Continue
            }
        })
    }
}

/// A restarted client (connect_seq 0) makes a stateful server reset and replace its session;
/// the server then fails after its READY was written. The client believes the session open at
/// connect_seq 1 and reconnects with 2: the server must take it as a reconnect of the same
/// session, and the client's message arrives exactly once, the client seeing no reset.
#[tokio::test(start_paused = true)]
async fn failed_replace_after_reply_keeps_the_session() {
    failed_replace_after_reply_keeps_the_session_on(Proto::V1).await;
}

/// The same over msgr2: the server fails after SERVER_IDENT of the replacing session; the client's SESSION_RECONNECT shows the new cookie and resumes it.
#[tokio::test(start_paused = true)]
async fn msgr2_failed_replace_after_reply_keeps_the_session() {
    failed_replace_after_reply_keeps_the_session_on(Proto::V2).await;
}

async fn failed_replace_after_reply_keeps_the_session_on(proto: Proto) {
    let net = TestNet::new(16 * 1024);
    let hook = Arc::new(FailNextAcceptorReady {
        armed: std::sync::atomic::AtomicBool::new(false),
    });
    let server_cfg = PipeConfig {
        hook: Some(hook.clone()),
        ..PipeConfig::default()
    };
    let (a, mut arx) = proto.host(1, Policy::lossless_client(0), PipeConfig::default(), &net);
    let (b, mut brx) = proto.host(2, Policy::stateful_server(0), server_cfg, &net);
    let first = a.connect(b.my_addr(), EntityType::OSD);
    first.send(msg(1)).await.unwrap();
    recv_n(&mut brx, 1, Duration::from_secs(10)).await;
    first.mark_down();
    hook.armed.store(true, Ordering::SeqCst);
    let second = a.connect(b.my_addr(), EntityType::OSD);
    second.send(msg(2)).await.unwrap();
    let (got, b_events) = recv_n(&mut brx, 1, Duration::from_secs(60)).await;
    assert_eq!(got, vec![2]);
    assert!(!hook.armed.load(Ordering::SeqCst), "the hook fired");
    tokio::time::sleep(Duration::from_secs(30)).await;
    let (late, more_b) = drain(&mut brx);
    assert!(late.is_empty());
    let (_, a_events) = drain(&mut arx);
    assert!(
        !a_events
            .iter()
            .any(|e| matches!(e, SessionEvent::Reset | SessionEvent::RemoteReset)),
        "{a_events:?}"
    );
    let remote = b_events
        .iter()
        .chain(&more_b)
        .filter(|e| **e == SessionEvent::RemoteReset);
    assert_eq!(
        remote.count(),
        1,
        "one peer restart: {b_events:?} {more_b:?}"
    );
    assert_eq!(b.sessions().len(), 1);
}

/// Opens a lossless session from a to b (one message, acknowledged), then sends `n` messages
/// of `len` bytes; returns both sessions, and b's ACK count before the `n`, once b has all.
async fn stream_to_peer(
    cfg_b: PipeConfig,
    n: u64,
    len: usize,
) -> (msgr_pipe::Session, msgr_pipe::Session, u64) {
    let net = TestNet::new(64 * 1024);
    let (a, _arx) = host(1, Policy::lossless_peer(0), PipeConfig::default(), &net);
    let (b, mut brx) = host(2, Policy::lossless_peer(0), cfg_b, &net);
    let sa = a.connect(b.my_addr(), EntityType::OSD);
    sa.send(msg(0)).await.unwrap();
    recv_n(&mut brx, 1, Duration::from_secs(60)).await;
    while sa.pending_bytes() > 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let sb = b.sessions().pop().expect("b's session");
    let acks_before = sb.stats().acks_out;
    for i in 1..=n {
        sa.send(msg_padded(i, len)).await.unwrap();
    }
    let (got, _) = recv_n(&mut brx, n as usize, Duration::from_secs(60)).await;
    assert_eq!(got, (1..=n).collect::<Vec<_>>());
    (sa, sb, acks_before)
}

#[tokio::test(start_paused = true)]
async fn a_quiet_peer_is_acked_after_ack_delay() {
    let cfg = PipeConfig {
        ack_batch: 1000,
        ack_delay: Duration::from_millis(50),
        ..PipeConfig::default()
    };
    let (sa, sb, before) = stream_to_peer(cfg, 10, 1024).await;
    // b has every message, but has not acknowledged them yet: the ACK waits for b's socket to
    // stay quiet for `ack_delay`.
    let received = tokio::time::Instant::now();
    assert!(sa.pending_bytes() > 0);
    while sa.pending_bytes() > 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let waited = received.elapsed();
    assert!(
        waited >= Duration::from_millis(40) && waited <= Duration::from_millis(60),
        "acked after {waited:?}"
    );
    // One ACK for the ten messages.
    assert_eq!(sb.stats().acks_out - before, 1);
}

#[tokio::test(start_paused = true)]
async fn a_streaming_peer_is_acked_every_ack_bytes_not_every_message() {
    let cfg = PipeConfig {
        ack_bytes: 4 << 20,
        ack_delay: Duration::from_secs(1),
        ..PipeConfig::default()
    };
    // 64 messages of 256 KiB: 16 MiB, so four ACKs by size, and one after the delay at most.
    let (sa, sb, before) = stream_to_peer(cfg, 64, 256 * 1024).await;
    let acks = sb.stats().acks_out - before;
    assert!((3..=5).contains(&acks), "{acks} ACKs for 64 messages");
    while sa.pending_bytes() > 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(sb.stats().acks_out - before <= 5);
}

#[tokio::test(start_paused = true)]
async fn a_keepalive_ack_is_awaited_and_carries_the_stamp_we_sent() {
    let net = TestNet::new(16 * 1024);
    let (a, mut arx) = host(1, Policy::lossless_peer(0), PipeConfig::default(), &net);
    let (b, _brx) = host(2, Policy::lossless_peer(0), PipeConfig::default(), &net);
    let sa = a.connect(b.my_addr(), EntityType::OSD);
    wait_event(&mut arx, SessionEvent::Connect, Duration::from_secs(10)).await;
    // Subscribed before sending: the ack cannot slip by.
    let acked = sa.keepalive_acked();
    let before = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    sa.send_keepalive();
    let ts = tokio::time::timeout(Duration::from_secs(10), acked)
        .await
        .expect("no keepalive ack")
        .expect("session closed");
    let after = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let stamp = Duration::new(u64::from(ts.sec), ts.nsec);
    assert!(
        before <= stamp && stamp <= after,
        "{before:?} {stamp:?} {after:?}"
    );
    assert_eq!(sa.last_keepalive_ack(), Some(ts));
    // A subscription sees only the acks handled after it, one per round trip.
    let mut acks = sa.keepalive_acks();
    for _ in 0..3 {
        sa.send_keepalive();
        let next = tokio::time::timeout(Duration::from_secs(10), acks.next())
            .await
            .expect("no keepalive ack")
            .expect("session closed");
        assert!(next >= ts);
        assert_eq!(sa.last_keepalive_ack(), Some(next));
    }
    assert_eq!(sa.stats().faults, 0);
}

#[tokio::test(start_paused = true)]
async fn a_state_watcher_sees_open_fault_standby_and_closed() {
    let limit = Duration::from_secs(10);
    let net = TestNet::new(16 * 1024);
    let (a, _arx) = host(1, Policy::lossless_client(0), PipeConfig::default(), &net);
    let (b, _brx) = host(2, Policy::stateful_server(0), PipeConfig::default(), &net);
    let sa = a.connect(b.my_addr(), EntityType::OSD);
    let mut rx = sa.watch_state();
    assert_eq!(*rx.borrow(), ConnState::Connecting);
    tokio::time::timeout(limit, rx.wait_for(|s| *s == ConnState::Open))
        .await
        .expect("never open")
        .expect("closed");
    let sb = b.lookup(&a.my_addr()).expect("b's session");
    let mut rxb = sb.watch_state();
    tokio::time::timeout(limit, rxb.wait_for(|s| *s == ConnState::Open))
        .await
        .expect("b never open")
        .expect("closed");
    // A fault is published before `kill_socket` returns; the lossless client reconnects.
    sa.kill_socket();
    assert!(rx.has_changed().unwrap());
    assert_eq!(*rx.borrow_and_update(), ConnState::Connecting);
    tokio::time::timeout(limit, rx.wait_for(|s| *s == ConnState::Open))
        .await
        .expect("never open again")
        .expect("closed");
    assert_eq!(sa.stats().reconnects, 1);
    // A waiter for a state the session never reaches ends when the session is closed.
    let mut never = sa.watch_state();
    let waiter = tokio::spawn(async move {
        never
            .wait_for(|s| *s == ConnState::Standby)
            .await
            .map(|s| *s)
    });
    tokio::task::yield_now().await;
    sa.mark_down();
    assert_eq!(*sa.watch_state().borrow(), ConnState::Closed);
    let ended = tokio::time::timeout(limit, waiter)
        .await
        .expect("the waiter hangs")
        .unwrap();
    assert!(ended.is_err(), "{ended:?}");
    // The watcher sees the final Closed, then the channel ends.
    assert_eq!(*rx.borrow_and_update(), ConnState::Closed);
    assert!(rx.changed().await.is_err());
    assert!(sa.watch_state().changed().await.is_err());
    // The server side went to standby when the client's socket went away.
    tokio::time::timeout(limit, rxb.wait_for(|s| *s == ConnState::Standby))
        .await
        .expect("b never in standby")
        .expect("closed");
    sb.mark_down();
    assert_eq!(
        *tokio::time::timeout(limit, rxb.wait_for(|s| *s == ConnState::Closed))
            .await
            .expect("b never closed")
            .expect("closed before Closed was seen"),
        ConnState::Closed
    );
    assert!(rxb.changed().await.is_err());
}

#[tokio::test(start_paused = true)]
async fn a_keepalive_ack_waiter_ends_with_an_error_when_the_session_is_marked_down() {
    let net = TestNet::new(16 * 1024);
    let (a, mut arx) = host(1, Policy::lossless_peer(0), PipeConfig::default(), &net);
    let (b, _brx) = host(2, Policy::lossless_peer(0), PipeConfig::default(), &net);
    let sa = a.connect(b.my_addr(), EntityType::OSD);
    wait_event(&mut arx, SessionEvent::Connect, Duration::from_secs(10)).await;
    // No keepalive is sent: only the session's end can end the wait.
    let waiter = tokio::spawn(sa.keepalive_acked());
    let mut acks = sa.keepalive_acks();
    tokio::task::yield_now().await;
    sa.mark_down();
    let r = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("the keepalive waiter hangs")
        .unwrap();
    assert_eq!(r, Err(msgr_pipe::session::SessionClosed));
    assert_eq!(acks.next().await, Err(msgr_pipe::session::SessionClosed));
    // Waiting on a closed session fails at once.
    assert_eq!(
        sa.keepalive_acked().await,
        Err(msgr_pipe::session::SessionClosed)
    );
}

#[tokio::test(start_paused = true)]
async fn a_keepalive_ack_waiter_ends_when_a_lossy_fault_closes_the_session() {
    let net = TestNet::new(16 * 1024);
    let (a, mut arx) = host(1, Policy::lossy_client(0), PipeConfig::default(), &net);
    let (b, _brx) = host(2, Policy::stateless_server(0), PipeConfig::default(), &net);
    let sa = a.connect(b.my_addr(), EntityType::OSD);
    wait_event(&mut arx, SessionEvent::Connect, Duration::from_secs(10)).await;
    let mut state = sa.watch_state();
    let waiter = tokio::spawn(sa.keepalive_acked());
    tokio::task::yield_now().await;
    sa.kill_socket();
    let r = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("the keepalive waiter hangs")
        .unwrap();
    assert_eq!(r, Err(msgr_pipe::session::SessionClosed));
    assert_eq!(*state.borrow_and_update(), ConnState::Closed);
    assert!(state.changed().await.is_err());
}

#[tokio::test(start_paused = true)]
async fn a_sender_out_of_budget_asks_for_its_ack() {
    // a may hold 1 MiB unacknowledged; b acknowledges every 16 MiB, or after 1 s of quiet. A
    // sender that waited for that would stall a second per MiB: it asks instead (a keepalive,
    // whose answer carries the ACK).
    let net = TestNet::new(64 * 1024);
    let cfg_a = PipeConfig {
        max_pending_bytes: 1 << 20,
        ..PipeConfig::default()
    };
    let cfg_b = PipeConfig {
        ack_delay: Duration::from_secs(1),
        ..PipeConfig::default()
    };
    let (a, _arx) = host(1, Policy::lossless_peer(0), cfg_a, &net);
    let (b, mut brx) = host(2, Policy::lossless_peer(0), cfg_b, &net);
    let sa = a.connect(b.my_addr(), EntityType::OSD);
    let start = tokio::time::Instant::now();
    for i in 0..32 {
        sa.send(msg_padded(i, 256 * 1024)).await.unwrap();
    }
    let (got, _) = recv_n(&mut brx, 32, Duration::from_secs(600)).await;
    assert_eq!(got, (0..32).collect::<Vec<_>>());
    let took = start.elapsed();
    assert!(
        took < Duration::from_millis(100),
        "8 MiB through a 1 MiB budget took {took:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_disposable_session_ends_at_its_next_fault_with_a_reset() {
    let net = TestNet::new(16 * 1024);
    let (a, mut arx) = host(1, Policy::lossless_client(0), PipeConfig::default(), &net);
    let (b, mut brx) = host(2, Policy::stateful_server(0), PipeConfig::default(), &net);
    let sa = a.connect(b.my_addr(), EntityType::OSD);
    sa.send(msg(1)).await.unwrap();
    recv_n(&mut brx, 1, Duration::from_secs(10)).await;
    assert_eq!(sa.state(), ConnState::Open);
    // Marking it disposable changes nothing while it works...
    sa.mark_disposable();
    sa.send(msg(2)).await.unwrap();
    let (got, _) = recv_n(&mut brx, 1, Duration::from_secs(10)).await;
    assert_eq!(got, vec![2]);
    assert_eq!(sa.state(), ConnState::Open);
    // ... and a fault ends it with one Reset instead of a reconnect.
    let dials = net.dials();
    sa.kill_socket();
    sa.closed().await;
    tokio::time::sleep(Duration::from_secs(60)).await;
    let (_, a_events) = drain(&mut arx);
    let resets = a_events
        .iter()
        .filter(|e| **e == SessionEvent::Reset)
        .count();
    assert_eq!(resets, 1, "{a_events:?}");
    assert_eq!(net.dials(), dials, "a disposable session reconnected");
    assert_eq!(sa.send(msg(3)).await, Err(SendError::Closed));
    assert!(a.sessions().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_session_not_open_marked_disposable_ends_at_once() {
    let net = TestNet::new(16 * 1024);
    let (a, _arx) = host(1, Policy::lossless_client(0), PipeConfig::default(), &net);
    // Nobody listens there: the session keeps connecting.
    let nowhere = addr(9);
    let sa = a.connect(nowhere, EntityType::OSD);
    sa.send(msg(1)).await.unwrap();
    assert_ne!(sa.state(), ConnState::Open);
    sa.mark_disposable();
    tokio::time::timeout(Duration::from_secs(10), sa.closed())
        .await
        .expect("closed at once");
    assert!(a.sessions().is_empty());
}

#[tokio::test(start_paused = true)]
async fn timeouts_too_long_for_the_clock_are_no_panic() {
    // Neither `read_timeout` nor `ack_delay` can be added to a clock reading: no timer is
    // armed for them, messages still flow and `ack_batch` still acknowledges them.
    let cfg = PipeConfig {
        read_timeout: Duration::MAX,
        ack_delay: Duration::MAX,
        ack_batch: 4,
        ..PipeConfig::default()
    };
    let net = TestNet::new(16 * 1024);
    let (a, _arx) = host(1, Policy::lossless_peer(0), cfg.clone(), &net);
    let (b, mut brx) = host(2, Policy::lossless_peer(0), cfg, &net);
    let sa = a.connect(b.my_addr(), EntityType::OSD);
    for i in 0..8 {
        sa.send(msg(i)).await.unwrap();
    }
    let (got, _) = recv_n(&mut brx, 8, Duration::from_secs(10)).await;
    assert_eq!(got, (0..8).collect::<Vec<_>>());
    until(|| sa.pending_bytes() == 0, "acked by ack_batch").await;
}

#[tokio::test(start_paused = true)]
async fn with_a_keepalive_interval_a_quiet_session_sends_keepalives_that_are_acked() {
    let net = TestNet::new(16 * 1024);
    let config = PipeConfig {
        keepalive_interval: Duration::from_secs(5),
        ..PipeConfig::default()
    };
    let (a, mut arx) = host(1, Policy::lossless_peer(0), config, &net);
    let (b, _brx) = host(2, Policy::lossless_peer(0), PipeConfig::default(), &net);
    let sa = a.connect(b.my_addr(), EntityType::OSD);
    wait_event(&mut arx, SessionEvent::Connect, Duration::from_secs(10)).await;
    let mut acks = sa.keepalive_acks();
    let start = tokio::time::Instant::now();
    // Nothing is sent by the application: the session's own keepalives are acked, one per
    // interval of silence.
    for n in 1..=3u32 {
        tokio::time::timeout(Duration::from_secs(10), acks.next())
            .await
            .expect("a keepalive ack each interval")
            .expect("open");
        let t = start.elapsed();
        assert!(
            t >= Duration::from_secs(5) * n
                && t < Duration::from_secs(5) * n + Duration::from_secs(1),
            "ack {n} at {t:?}"
        );
    }
    let sb = b.sessions();
    assert!(sb[0].last_keepalive().is_some(), "the peer saw them");
    // The peer, at the default (no interval), sends none of its own.
    let mut b_acks = sb[0].keepalive_acks();
    assert!(
        tokio::time::timeout(Duration::from_secs(30), b_acks.next())
            .await
            .is_err(),
        "no keepalive from a peer without an interval"
    );
}
