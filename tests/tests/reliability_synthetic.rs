//! Ceph's synthetic stress and fault-injection tests (spec `ceph-test-suite.md` §1.2, §2),
//! with the stricter verification of `msgr_tests::synthetic`.
//!
//! CI runs bounded versions (fewer messengers, operations and pool buffers; the payloads
//! still range from 32 B to 4 MiB) with the messenger's default backoffs. Each test has a
//! fixed seed, so CI runs the same workloads every time; `synthetic_random_seed` explores one
//! fresh seed per run. Every test prints its seed; `MSGR_SEED=N` replays one. `MSGR_SOAK=1`
//! runs Ceph's sizes. The `synthetic_msgr2_*` tests run the same configurations (by the
//! same constructors) with every messenger on msgr2. A run proves something only if it carried traffic: each must verify a
//! minimum of pongs, and each run with injection must have seen faults.

use std::time::Duration;

use msgr_core::Policy;
use msgr_dispatch::Throttle;
use msgr_tests::synthetic::{random_seed, seed_from_env, soak, Workload, WorkloadConfig};

/// At most two workloads at a time: they wait on delays and backoffs more than they compute
/// (two at once take the suite from 230 s to 157 s on 2 cores; more would crowd the cores).
static RUNNING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

/// How long a run waits for its tracked messages (at the in-flight gate and in the drain):
/// Ceph's own bound, five minutes (`SyntheticWorkload::wait_for_done`; its gate has none).
/// At 1/30 injected socket failures about a third of all reconnect attempts fail (a v1
/// handshake is about a dozen socket operations on the two ends), and a session's consecutive
/// failures back off 0, 0.2, 0.4 ... 12.8 s, then 15 s each (the default backoffs, as Ceph's).
/// A bound of 60 s was passed by a streak of 10 failures, about one run in a hundred under
/// load (seen: 14 in a row, 116 s, after which the session reconnected and went on); five
/// minutes takes a streak of 27 (at one in three, about 10^-13 for each streak).
const PATIENCE: Duration = Duration::from_secs(300);

/// Bounded sizes for CI unless `MSGR_SOAK=1`.
fn sized(mut cfg: WorkloadConfig) -> WorkloadConfig {
    cfg.drain = PATIENCE;
    if soak() {
        cfg.ops = 10_000;
    } else {
        cfg.servers = 3;
        cfg.clients = 6;
        cfg.seed_conns = 12;
        cfg.ops = 400;
        cfg.pool = 24;
        cfg.max_in_flight = 16;
        cfg.min_conns_to_drop = 6;
        cfg.internal_delay = Duration::from_millis(10);
    }
    cfg
}

async fn run(cfg: WorkloadConfig) {
    let seed = cfg.seed;
    let name = cfg.name.clone();
    let injecting = cfg.socket_failures > 0;
    // Pongs that came back. A lossy client's pings are untracked (a reset may lose them), so
    // its pongs are counted, not verified; a lossless client's tracked pings all get a
    // checked pong unless a drop forgives them.
    let sends = (cfg.ops as u64 * u64::from(cfg.mix.send) / 100).max(1);
    let lossy = cfg.client_policy.lossy;
    let min_pongs = sends / 4;
    let msgr2 = cfg.msgr2;
    let w = Workload::start(cfg).await.expect("messengers start");
    assert!(
        w.messengers().all(|m| m.addr().is_v2() == msgr2),
        "{name}: every messenger speaks {}",
        if msgr2 { "msgr2" } else { "v1" }
    );
    let report = w.run().await;
    assert!(
        report.failures.is_empty(),
        "{name} failed (replay with MSGR_SEED={seed}):\n{}",
        report.failures.join("\n")
    );
    let t = &report.totals;
    let pongs = if lossy { t.untracked_pongs } else { t.verified };
    assert!(
        pongs >= min_pongs,
        "{name}: only {pongs} pongs (at least {min_pongs} expected; replay with \
         MSGR_SEED={seed}): {t:?}"
    );
    if injecting {
        let faults = report.faults.0 + report.faults.1;
        assert!(
            faults > 0,
            "{name}: socket failures injected but no fault seen (MSGR_SEED={seed})"
        );
    }
}

/// SyntheticInjectTest's configuration (see the test of that name).
fn stateful_inject(name: &str, seed: u64) -> WorkloadConfig {
    let mut cfg = sized(WorkloadConfig::inject(
        name,
        seed,
        Policy::stateful_server(0)
            .with_throttles(Some(Throttle::new(8 << 20)), Some(Throttle::new(32))),
        Policy::lossless_client(0),
        30,
    ));
    cfg.expect_no_client_resets = true;
    cfg
}

/// SyntheticInjectTest: stateful_server / lossless_client, socket failures 1/30, 16 MiB
/// dispatch throttle, delayed delivery, and policy throttles on the servers (8 MiB, 32
/// messages). The servers never forget a session, so the clients must never see a reset or
/// a remote reset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synthetic_inject_stateful_lossless_client() {
    let _running = RUNNING.acquire().await.expect("never closed");
    let seed = seed_from_env("synthetic_inject_stateful_lossless_client", 1002);
    run(stateful_inject("inject_stateful_lossless_client", seed)).await;
}

/// SyntheticInjectTest2: lossless_peer_reuse on both sides, socket failures 1/30; drops
/// mark down both directions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synthetic_inject_peer_reuse() {
    let _running = RUNNING.acquire().await.expect("never closed");
    let seed = seed_from_env("synthetic_inject_peer_reuse", 1003);
    let cfg = sized(WorkloadConfig::inject(
        "inject_peer_reuse",
        seed,
        Policy::lossless_peer_reuse(0),
        Policy::lossless_peer_reuse(0),
        30,
    ));
    run(cfg).await;
}

/// SyntheticInjectTest3: stateless_server / lossy_client, socket failures 1/600. Untracked
/// for loss; order, duplicates, bytes and one reset per failed lossy session are checked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synthetic_inject_stateless_lossy() {
    let _running = RUNNING.acquire().await.expect("never closed");
    let seed = seed_from_env("synthetic_inject_stateless_lossy", 1004);
    let cfg = sized(WorkloadConfig::inject(
        "inject_stateless_lossy",
        seed,
        Policy::stateless_server(0),
        Policy::lossy_client(0),
        600,
    ));
    run(cfg).await;
}

/// SyntheticInjectTest at the moderate rate: stateful_server / lossless_client, 1/600.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synthetic_inject_stateful_lossless_client_moderate() {
    let _running = RUNNING.acquire().await.expect("never closed");
    let seed = seed_from_env("synthetic_inject_stateful_lossless_client_moderate", 1005);
    let mut cfg = sized(WorkloadConfig::inject(
        "inject_stateful_lossless_client_moderate",
        seed,
        Policy::stateful_server(0),
        Policy::lossless_client(0),
        600,
    ));
    cfg.expect_no_client_resets = true;
    run(cfg).await;
}

/// SyntheticInjectTest with Ceph's fast dispatch of pings: stateful_server / lossless_client,
/// 1/30, everything handled in the reader tasks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synthetic_inject_stateful_fast_dispatch() {
    let _running = RUNNING.acquire().await.expect("never closed");
    let seed = seed_from_env("synthetic_inject_stateful_fast_dispatch", 1006);
    let mut cfg = sized(WorkloadConfig::inject(
        "inject_stateful_fast_dispatch",
        seed,
        Policy::stateful_server(0),
        Policy::lossless_client(0),
        30,
    ));
    cfg.expect_no_client_resets = true;
    cfg.fast_dispatch = true;
    run(cfg).await;
}

/// SyntheticInjectTest4: lossless_peer on both sides, 1/30, every message held by delayed
/// delivery (probability 1), no drops (as Ceph, whose drop is commented out there).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synthetic_inject_lossless_peer_delayed() {
    let _running = RUNNING.acquire().await.expect("never closed");
    let seed = seed_from_env("synthetic_inject_lossless_peer_delayed", 1007);
    let mut cfg = sized(WorkloadConfig::inject(
        "inject_lossless_peer_delayed",
        seed,
        Policy::lossless_peer(0),
        Policy::lossless_peer(0),
        30,
    ));
    cfg.delay_probability = 1.0;
    cfg.delay_max = Duration::from_millis(if soak() { 5000 } else { 100 });
    cfg.mix.connect = 4;
    cfg.mix.drop = 0;
    cfg.expect_no_client_resets = true;
    run(cfg).await;
}

/// SyntheticStressTest1: lossless_peer_reuse on both sides, no injected faults, many drops
/// (19% connect, 20% drop, 50% send, 11% pause).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synthetic_stress_peer_reuse() {
    let _running = RUNNING.acquire().await.expect("never closed");
    let seed = seed_from_env("synthetic_stress_peer_reuse", 1008);
    run(stress_peer_reuse(seed)).await;
}

/// SyntheticStressTest1's configuration (see the test of that name).
fn stress_peer_reuse(seed: u64) -> WorkloadConfig {
    let mut cfg = sized(WorkloadConfig::inject(
        "stress_peer_reuse",
        seed,
        Policy::lossless_peer_reuse(0),
        Policy::lossless_peer_reuse(0),
        0,
    ));
    cfg.internal_delay = Duration::ZERO;
    cfg.delay_probability = 0.0;
    cfg.mix.connect = 19;
    cfg.mix.drop = 20;
    cfg.mix.send = 50;
    cfg.pause = (Duration::from_micros(500), Duration::from_micros(1500));
    cfg
}

/// SyntheticInjectTest without drops: stateful_server / lossless_client, 1/30, 16 MiB
/// dispatch throttle, policy throttles, delayed delivery; no client ever restarts its session
/// (it was the CI variant while the ones with drops were ignored for bug F2, now fixed). The
/// clients must never see a reset or a remote reset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synthetic_inject_stateful_no_drops() {
    let _running = RUNNING.acquire().await.expect("never closed");
    let seed = seed_from_env("synthetic_inject_stateful_no_drops", 1009);
    let mut cfg = sized(WorkloadConfig::inject(
        "inject_stateful_no_drops",
        seed,
        Policy::stateful_server(0)
            .with_throttles(Some(Throttle::new(8 << 20)), Some(Throttle::new(32))),
        Policy::lossless_client(0),
        30,
    ));
    cfg.mix.connect = 19;
    cfg.mix.drop = 0;
    cfg.expect_no_client_resets = true;
    run(cfg).await;
}

/// One fresh seed per run (printed), on the configuration with the most going on: 1/30
/// socket failures, drops, delayed delivery and policy throttles. CI's fixed seeds keep the
/// suite repeatable; this one keeps it exploring.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synthetic_random_seed() {
    let _running = RUNNING.acquire().await.expect("never closed");
    let seed = random_seed("synthetic_random_seed");
    run(stateful_inject("random_seed", seed)).await;
}

/// The same configuration with every messenger on msgr2 (name prefixed `msgr2_`).
fn over_msgr2(mut cfg: WorkloadConfig) -> WorkloadConfig {
    cfg.msgr2 = true;
    cfg.name = format!("msgr2_{}", cfg.name);
    cfg
}

/// SyntheticInjectTest over msgr2: stateful_server / lossless_client, 1/30, policy
/// throttles, delayed delivery; lossless sessions resume with SESSION_RECONNECT, and the
/// clients never see a reset or a remote reset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synthetic_msgr2_inject_stateful_lossless_client() {
    let _running = RUNNING.acquire().await.expect("never closed");
    let seed = seed_from_env("synthetic_msgr2_inject_stateful_lossless_client", 2002);
    run(over_msgr2(stateful_inject(
        "inject_stateful_lossless_client",
        seed,
    )))
    .await;
}

/// SyntheticInjectTest2 over msgr2: lossless_peer_reuse on both sides, 1/30, drops both
/// ways. (It lost a ping without a reset in about half the runs of seed 2003 while the v1
/// table decided msgr2's reconnects; with msgr2's own rules, a reconnect answered WAIT by a
/// session that was not reconnecting itself left the reconnecting side waiting for good.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synthetic_msgr2_inject_peer_reuse() {
    let _running = RUNNING.acquire().await.expect("never closed");
    let seed = seed_from_env("synthetic_msgr2_inject_peer_reuse", 2003);
    run(over_msgr2(sized(WorkloadConfig::inject(
        "inject_peer_reuse",
        seed,
        Policy::lossless_peer_reuse(0),
        Policy::lossless_peer_reuse(0),
        30,
    ))))
    .await;
}

/// SyntheticInjectTest3 over msgr2: stateless_server / lossy_client, 1/600 (order,
/// duplicates, bytes, one reset per failed lossy session).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synthetic_msgr2_inject_stateless_lossy() {
    let _running = RUNNING.acquire().await.expect("never closed");
    let seed = seed_from_env("synthetic_msgr2_inject_stateless_lossy", 2004);
    run(over_msgr2(sized(WorkloadConfig::inject(
        "inject_stateless_lossy",
        seed,
        Policy::stateless_server(0),
        Policy::lossy_client(0),
        600,
    ))))
    .await;
}

/// SyntheticStressTest1 over msgr2: lossless_peer_reuse on both sides, no injected
/// faults, many drops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synthetic_msgr2_stress_peer_reuse() {
    let _running = RUNNING.acquire().await.expect("never closed");
    let seed = seed_from_env("synthetic_msgr2_stress_peer_reuse", 2008);
    run(over_msgr2(stress_peer_reuse(seed))).await;
}
