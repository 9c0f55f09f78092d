//! The deterministic simulation (`sim/`): two endpoints' sessions stepped by a seeded
//! scheduler over in-memory byte buffers and a virtual clock, without tokio. Thousands of
//! seeds per run, each reproducible with `MSGR_SIM_SEED=<seed>`.
//!
//! Every run: both applications send while the scheduler interleaves connection races,
//! WAIT answers, replaces, retries and socket faults; then faults stop and the world must
//! settle with every message delivered exactly once and in order both ways. Lossless peers
//! never reset a session; a stateful server (resetcheck) resets one when the client comes
//! back with `connect_seq` 0 after missing the server's READY, as Ceph does (its
//! RemoteReset tells the application): only what the server sent before that may be lost.

mod sim;

use msgr_pipe::core::ConnState;
use msgr_pipe::Policy;
use sim::{Seen, Sim};

/// Seeds per policy pair per test run.
const SEEDS: u64 = 2000;
/// Scheduler steps with faults before settling.
const STEPS: usize = 400;

fn seeds() -> Vec<u64> {
    match std::env::var("MSGR_SIM_SEED") {
        Ok(s) => vec![s.parse().expect("MSGR_SIM_SEED is a number")],
        Err(_) => (0..SEEDS).collect(),
    }
}

/// Runs one seed; panics (naming the seed) if a message is lost, duplicated or reordered,
/// or if the world does not settle.
fn run(seed: u64, policies: [Policy; 2], fault_rate: u32, allow_resets: bool) -> Seen {
    let mut sim = Sim::new(seed, policies);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        sim.send(0);
        sim.send(1);
        for _ in 0..STEPS {
            sim.step(fault_rate);
        }
        assert!(sim.settle(20_000), "did not settle:\n{}", sim.describe());
        for n in 0..2 {
            let got = &sim.nodes[1 - n].delivered;
            let node = &sim.nodes[n];
            if !allow_resets {
                assert_eq!(node.remote_resets, 0, "node {n} was reset");
            }
            // Exactly once and in order; a reset may lose what was sent before it, never
            // anything sent after it.
            assert!(
                got.windows(2).all(|w| w[0] < w[1]),
                "from node {n}: {got:?}"
            );
            let after: Vec<u64> = got
                .iter()
                .copied()
                .filter(|t| *t >= node.sent_at_reset)
                .collect();
            let want: Vec<u64> = (node.sent_at_reset..node.sent).collect();
            assert_eq!(after, want, "messages from node {n} since its last reset");
            if node.remote_resets == 0 {
                assert_eq!(got.len() as u64, node.sent, "from node {n}");
            }
        }
        let mut seen = sim.seen;
        seen.resets = sim.nodes.iter().map(|n| n.remote_resets as usize).sum();
        seen
    }));
    match result {
        Ok(seen) => seen,
        Err(e) => {
            let why = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!("seed {seed} failed (MSGR_SIM_SEED={seed} to replay): {why}");
        }
    }
}

fn sum(a: Seen, b: Seen) -> Seen {
    Seen {
        conns: a.conns + b.conns,
        faults: a.faults + b.faults,
        waits: a.waits + b.waits,
        replaces: a.replaces + b.replaces,
        retries: a.retries + b.retries,
        resets: a.resets + b.resets,
        standbys: a.standbys + b.standbys,
    }
}

#[test]
fn lossless_peers_race_fault_and_deliver_exactly_once_in_order() {
    let total = seeds()
        .into_iter()
        .map(|s| {
            run(
                s,
                [Policy::lossless_peer(0), Policy::lossless_peer(0)],
                30,
                false,
            )
        })
        .fold(Seen::default(), sum);
    eprintln!("lossless peers: {total:?}");
    if seeds().len() > 1 {
        // The seeds cover what the test is about.
        assert!(total.faults > 1000, "{total:?}");
        assert!(
            total.waits > 10,
            "connection races answered WAIT: {total:?}"
        );
        assert!(total.replaces > 100, "{total:?}");
        assert!(total.retries > 10, "{total:?}");
        assert!(total.standbys > 100, "idle sessions stood by: {total:?}");
    }
}

#[test]
fn lossless_client_and_stateful_server_survive_faults() {
    let total = seeds()
        .into_iter()
        .map(|s| {
            run(
                s,
                [Policy::lossless_client(0), Policy::stateful_server(0)],
                30,
                true,
            )
        })
        .fold(Seen::default(), sum);
    eprintln!("client/server: {total:?}");
    if seeds().len() > 1 {
        assert!(total.faults > 1000, "{total:?}");
        assert!(total.replaces > 100, "{total:?}");
        assert!(
            total.resets > 0,
            "server-side resets were exercised: {total:?}"
        );
    }
}

#[test]
fn without_faults_the_race_resolves_to_one_open_session_each() {
    for seed in seeds() {
        let mut sim = Sim::new(seed, [Policy::lossless_peer(0), Policy::lossless_peer(0)]);
        sim.send(0);
        sim.send(1);
        for _ in 0..STEPS {
            sim.step(0);
        }
        assert!(sim.settle(20_000), "seed {seed} did not settle");
        // Then one session each, open (or resting in standby after an idle timeout, with
        // nothing left to send).
        let resting = |sim: &Sim| {
            sim.nodes.iter().all(|node| {
                node.session.as_ref().is_some_and(|s| {
                    let phase = s.core.phase();
                    phase == ConnState::Open
                        || (phase == ConnState::Standby && !s.core.has_messages())
                })
            })
        };
        assert!(
            sim.settle_until(20_000, resting),
            "seed {seed}:\n{}",
            sim.describe()
        );
    }
}
