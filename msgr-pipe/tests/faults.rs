//! Lossless sessions under injected socket failures (Ceph's ms_inject_socket_failures): every
//! message delivered exactly once and in order, both ways. Paused time: backoffs cost nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use msgr_pipe::testing::TestNet;
use msgr_pipe::{Host, PipeConfig, Policy};
use msgr_wire::EntityType;

/// Sends `0..n`; a session that closed before anything was queued on it (an accepted
/// session whose handshake failed) is replaced by a new `connect`, as an application would.
async fn send_all(
    h: std::sync::Arc<msgr_pipe::testing::TestHost>,
    to: msgr_wire::EntityAddr,
    mut s: msgr_pipe::Session,
    n: u64,
) {
    for i in 0..n {
        loop {
            match s.send(msg_padded(i, 300)).await {
                Ok(()) => break,
                Err(msgr_pipe::SendError::Closed) => {
                    assert_eq!(i, 0, "a session with queued messages closed");
                    s = h.connect(to, EntityType::OSD);
                }
                Err(e) => panic!("{e}"),
            }
        }
    }
}

async fn lossless_under_faults(seed: u64, one_in: u32, n: u64, policy: Policy) -> u64 {
    lossless_with(seed, one_in, n, policy, 0.0).await
}

async fn lossless_with(seed: u64, one_in: u32, n: u64, policy: Policy, delay: f64) -> u64 {
    lossless_base(PipeConfig::default(), seed, one_in, n, policy, delay).await
}

async fn lossless_base(
    mut cfg: PipeConfig,
    seed: u64,
    one_in: u32,
    n: u64,
    policy: Policy,
    delay: f64,
) -> u64 {
    cfg.inject.delay_probability = delay;
    cfg.inject.delay_max = Duration::from_millis(500);
    cfg.inject.internal_delay = if delay > 0.0 {
        Duration::from_millis(5)
    } else {
        Duration::ZERO
    };
    cfg.inject.socket_failures = one_in;
    cfg.inject.seed = seed;
    let settle = (cfg.max_backoff * 4).max(Duration::from_millis(300));
    let limit = if cfg.max_backoff < Duration::from_secs(1) {
        Duration::from_secs(60)
    } else {
        Duration::from_secs(3600)
    };
    let net = TestNet::new(4 * 1024);
    let (a, mut arx) = host(1, policy.clone(), cfg.clone(), &net);
    let (b, mut brx) = host(2, policy, cfg, &net);
    let sa = a.connect(b.my_addr(), EntityType::OSD);
    let sb = b.connect(a.my_addr(), EntityType::OSD);
    let ta = tokio::spawn(send_all(a.clone(), b.my_addr(), sa.clone(), n));
    let tb = tokio::spawn(send_all(b.clone(), a.my_addr(), sb.clone(), n));
    let (got_b, _) = recv_n(&mut brx, n as usize, limit).await;
    let (got_a, _) = recv_n(&mut arx, n as usize, limit).await;
    ta.await.unwrap();
    tb.await.unwrap();
    let want: Vec<u64> = (0..n).collect();
    assert_eq!(got_b, want, "a -> b, seed {seed}, 1/{one_in}");
    assert_eq!(got_a, want, "b -> a, seed {seed}, 1/{one_in}");
    // Nothing more arrives (no duplicate after the last one).
    tokio::time::sleep(settle).await;
    let (late_b, _) = drain(&mut brx);
    let (late_a, _) = drain(&mut arx);
    assert!(
        late_b.is_empty() && late_a.is_empty(),
        "duplicates: {late_b:?} {late_a:?}"
    );
    let faults = sa.stats().faults + sb.stats().faults;
    assert_eq!(a.sessions().len(), 1);
    assert_eq!(b.sessions().len(), 1);
    a.mark_down_all();
    b.mark_down_all();
    faults
}

#[tokio::test(start_paused = true)]
async fn brutal_one_in_30() {
    let mut faults = 0;
    for seed in [1, 2, 3] {
        faults += lossless_under_faults(seed, 30, 300, Policy::lossless_peer(0)).await;
    }
    assert!(faults > 10, "only {faults} faults");
}

#[tokio::test(start_paused = true)]
async fn moderate_one_in_600() {
    let mut faults = 0;
    for seed in [4, 5, 6] {
        faults += lossless_under_faults(seed, 600, 6000, Policy::lossless_peer(0)).await;
    }
    eprintln!("1/600: {faults} faults");
    assert!(faults > 0, "no fault injected");
}

#[tokio::test(start_paused = true)]
async fn lossless_client_policy_one_in_100() {
    let mut faults = 0;
    for seed in [7, 8] {
        faults += lossless_under_faults(seed, 100, 1000, Policy::lossless_peer_reuse(0)).await;
    }
    assert!(faults > 2, "only {faults} faults");
}

#[tokio::test(start_paused = true)]
async fn with_delayed_delivery_and_internal_delays() {
    let mut faults = 0;
    for seed in [9, 10] {
        faults += lossless_with(seed, 100, 500, Policy::lossless_peer(0), 0.5).await;
    }
    assert!(faults > 0);
}

/// Real threads, real time (short backoffs): the same guarantees with true parallelism
/// between readers, writers, drivers and acceptors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_threaded_under_faults() {
    let fast = PipeConfig {
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(20),
        ..PipeConfig::default()
    };
    let seeds: u64 = std::env::var("MSGR_PIPE_SOAK")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let first: u64 = std::env::var("MSGR_PIPE_SOAK_FIRST")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if std::env::var("MSGR_PIPE_LOG").is_ok() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("msgr_pipe=debug")
            .with_test_writer()
            .try_init();
    }
    for seed in first..first + seeds {
        eprintln!("multi seed {seed}");
        lossless_base(
            fast.clone(),
            200 + seed,
            40,
            400,
            Policy::lossless_peer(0),
            0.0,
        )
        .await;
        lossless_base(
            fast.clone(),
            300 + seed,
            60,
            400,
            Policy::lossless_peer_reuse(0),
            0.0,
        )
        .await;
    }
}

/// Soak: `MSGR_PIPE_SOAK=N` runs N more seeds at 1/30 and 1/200 (skipped when unset).
#[tokio::test(start_paused = true)]
async fn soak_many_seeds() {
    let Some(n) = std::env::var("MSGR_PIPE_SOAK")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    else {
        return;
    };
    let first: u64 = std::env::var("MSGR_PIPE_SOAK_FIRST")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    if std::env::var("MSGR_PIPE_LOG").is_ok() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("msgr_pipe=trace")
            .with_test_writer()
            .try_init();
    }
    for seed in first..first + n {
        eprintln!("soak seed {seed}");
        lossless_under_faults(seed, 30, 200, Policy::lossless_peer(0)).await;
        lossless_under_faults(seed, 200, 1000, Policy::lossless_client(0)).await;
        lossless_under_faults(seed, 50, 300, Policy::lossless_peer_reuse(0)).await;
        lossless_with(seed, 80, 300, Policy::lossless_peer(0), 0.3).await;
        client_server_under_faults(seed, 30, 200).await;
    }
}

/// Client (lossless_client) to server (stateful_server, never reconnects): the server replies
/// on the accepted session; under faults everything arrives exactly once, in order.
async fn client_server_under_faults(seed: u64, one_in: u32, n: u64) {
    let mut cfg = PipeConfig::default();
    cfg.inject.socket_failures = one_in;
    cfg.inject.seed = seed;
    let net = TestNet::new(4 * 1024);
    let (a, mut arx) = host(1, Policy::lossless_client(0), cfg.clone(), &net);
    let (b, mut brx) = host(2, Policy::stateful_server(0), cfg, &net);
    let sa = a.connect(b.my_addr(), EntityType::OSD);
    let ta = {
        let sa = sa.clone();
        tokio::spawn(async move {
            for i in 0..n {
                sa.send(msg_padded(i, 200)).await.unwrap();
            }
        })
    };
    let limit = Duration::from_secs(3600);
    let (got_b, _) = recv_n(&mut brx, n as usize, limit).await;
    assert_eq!(got_b, (0..n).collect::<Vec<_>>(), "seed {seed}");
    let sb = b.lookup(&a.my_addr()).unwrap();
    for i in 0..n {
        sb.send(msg_padded(i, 200)).await.unwrap();
    }
    // The server never reconnects: the client must come back (a keepalive or message does it;
    // here its own faults and the queued replies' acks are enough once it reconnects).
    sa.send(msg_padded(n, 200)).await.unwrap();
    let (got_a, _) = recv_n(&mut arx, n as usize, limit).await;
    assert_eq!(got_a, (0..n).collect::<Vec<_>>(), "seed {seed}");
    let (last, _) = recv_n(&mut brx, 1, limit).await;
    assert_eq!(last, vec![n]);
    ta.await.unwrap();
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(drain(&mut arx).0.is_empty() && drain(&mut brx).0.is_empty());
    assert_eq!(b.sessions().len(), 1);
    a.mark_down_all();
    b.mark_down_all();
}

#[tokio::test(start_paused = true)]
async fn client_and_stateful_server_under_faults() {
    for seed in [11, 12, 13] {
        client_server_under_faults(seed, 40, 300).await;
    }
}

/// Lossy client to stateless server under faults: each failure of an open session gives
/// exactly one Reset at the client; the client then makes a new session. Messages may be lost
/// (that is what lossy means) but never duplicated or reordered.
#[tokio::test(start_paused = true)]
async fn lossy_under_faults_never_duplicates_or_reorders() {
    use msgr_pipe::testing::HostEvent;
    use msgr_pipe::SessionEvent;
    for seed in [21, 22, 23] {
        let mut cfg = PipeConfig::default();
        cfg.inject.socket_failures = 40;
        cfg.inject.seed = seed;
        let net = TestNet::new(4 * 1024);
        let (a, mut arx) = host(1, Policy::lossy_client(0), cfg.clone(), &net);
        let (b, mut brx) = host(2, Policy::stateless_server(0), cfg, &net);
        let mut sessions = 1u64;
        let mut s = a.connect(b.my_addr(), EntityType::OSD);
        let n = 2000u64;
        for i in 0..n {
            if s.send(msg_padded(i, 100)).await.is_err() {
                s = a.connect(b.my_addr(), EntityType::OSD);
                sessions += 1;
                s.send(msg_padded(i, 100)).await.unwrap();
            }
            if i % 50 == 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        tokio::time::sleep(Duration::from_secs(60)).await;
        let mut got = Vec::new();
        while let Ok(e) = brx.try_recv() {
            if let HostEvent::Message { incoming, .. } = e {
                got.push(payload(&incoming.msg));
            }
        }
        assert!(
            got.windows(2).all(|w| w[0] < w[1]),
            "seed {seed}: dup or reorder"
        );
        assert!(!got.is_empty());
        let (_, events) = drain(&mut arx);
        let resets = events.iter().filter(|e| **e == SessionEvent::Reset).count() as u64;
        let connects = events
            .iter()
            .filter(|e| **e == SessionEvent::Connect)
            .count() as u64;
        assert!(
            resets <= connects,
            "seed {seed}: {resets} resets for {connects} connects"
        );
        assert!(
            resets + 1 >= sessions,
            "seed {seed}: {resets} resets, {sessions} sessions"
        );
        assert!(resets > 0, "seed {seed}: no fault hit an open session");
        a.mark_down_all();
        b.mark_down_all();
    }
}
