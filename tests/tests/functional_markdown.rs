//! Ceph's MarkdownTest (spec `ceph-test-suite.md` §1.1): two servers share one dispatcher
//! that, while holding its own lock, marks down *another* connection from inside the dispatch
//! of each message; its reset handler takes the same lock. A client sends one ping to each
//! server per round, 1,000 rounds; more than 3 consecutive rounds without any progress fail.
//! A round whose pings were all lost to resets the client saw (or to sends refused on a dead
//! connection) is explained, not a stall; a stall is a round where nothing moved for about a
//! second and nothing explains why.
//! Catches deadlocks between dispatcher locks, messenger locks and session locks, and lost
//! wake-ups.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use msgr_core::{BoxFuture, Connection, Dispatched, Dispatcher, Messenger, Policy, Received};
use msgr_tests::fixture::{ping, start, stop, test_config, Ev, Recorder};
use msgr_wire::{EntityName, EntityType};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::sync::Notify;

const ROUNDS: usize = 1000;
const MAX_STALLS: usize = 3;
/// How long a round waits for both pings (Ceph's `CHECK_AND_WAIT_TRUE`, about 1 s).
const ROUND_WAIT: Duration = Duration::from_secs(1);

struct State {
    conns: Vec<Connection>,
    last_mark: bool,
    rng: SmallRng,
}

/// Ceph's `MarkdownDispatcher` (not fast-dispatching).
struct Markdown {
    state: Mutex<State>,
    count: AtomicU64,
    changed: Notify,
}

impl Markdown {
    fn new() -> Arc<Self> {
        Arc::new(Markdown {
            state: Mutex::new(State {
                conns: Vec::new(),
                last_mark: false,
                rng: SmallRng::seed_from_u64(0x6d61726b),
            }),
            count: AtomicU64::new(0),
            changed: Notify::new(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Holds the lock a random 0–499 µs, widening the race windows as Ceph's `usleep`.
    fn dawdle(st: &mut State) {
        let us = st.rng.gen_range(0..500);
        std::thread::sleep(Duration::from_micros(us));
    }

    fn forget(&self, conn: &Connection) {
        let mut st = self.lock();
        st.conns.retain(|c| c != conn);
        Self::dawdle(&mut st);
    }
}

impl Dispatcher for Markdown {
    fn dispatch(&self, m: Received) -> BoxFuture<'_, Dispatched> {
        {
            let mut st = self.lock();
            if !st.conns.contains(&m.conn) {
                st.conns.push(m.conn.clone());
            }
            if st.conns.len() >= 2 || st.last_mark {
                st.last_mark = true;
                Self::dawdle(&mut st);
                if let Some(i) = st.conns.iter().position(|c| *c != m.conn) {
                    let other = st.conns.remove(i);
                    other.mark_down();
                }
                if st.conns.is_empty() {
                    st.last_mark = false;
                }
            }
        }
        self.count.fetch_add(1, Ordering::SeqCst);
        self.changed.notify_waiters();
        Box::pin(async { Dispatched::Handled })
    }

    fn handle_reset(&self, conn: &Connection) {
        self.forget(conn);
    }

    fn handle_remote_reset(&self, conn: &Connection) {
        self.forget(conn);
    }
}

async fn server(num: i64, md: &Arc<Markdown>) -> Messenger {
    Messenger::builder(EntityName::osd(num))
        .config(test_config())
        .default_policy(Policy::stateless_server(0))
        .dispatcher(md.clone())
        .start()
        .await
        .expect("server starts")
}

/// Waits until both pings of the round are accounted for: delivered, or their connection was
/// reset or refused the send (the dispatcher marks connections down, so pings are lost
/// legitimately). Bounded by [`ROUND_WAIT`]; returns whether they were accounted for.
async fn wait_round(
    md: &Markdown,
    cli: &Recorder,
    last: u64,
    conns: &[Connection],
    lost: u64,
) -> bool {
    let accounted = || {
        let resets = {
            let seen = cli.seen();
            conns
                .iter()
                .filter(|c| seen.events_of(c.id()).contains(&Ev::Reset))
                .count() as u64
        };
        md.count.load(Ordering::SeqCst) - last + resets + lost >= 2
    };
    tokio::time::timeout(ROUND_WAIT, async {
        loop {
            let a = md.changed.notified();
            let b = cli.changed();
            tokio::pin!(a, b);
            a.as_mut().enable();
            b.as_mut().enable();
            if accounted() {
                return;
            }
            tokio::select! {
                () = a => {}
                () = b => {}
            }
        }
    })
    .await
    .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn markdown_test() {
    let md = Markdown::new();
    let s1 = server(1, &md).await;
    let s2 = server(2, &md).await;
    let cli = Recorder::new(false, EntityType::CLIENT);
    let client = start(
        EntityName::client(-1),
        test_config(),
        Policy::lossy_client(0),
        vec![],
        cli.clone(),
    )
    .await;

    let mut stalls = 0;
    let mut max_stalls = 0;
    let mut total_stalls = 0;
    let mut lost_rounds = 0;
    let mut last = md.count.load(Ordering::SeqCst);
    for round in 0..ROUNDS {
        let c1 = client
            .connect_lazy(s1.addr(), EntityType::OSD)
            .expect("running");
        let c2 = client
            .connect_lazy(s2.addr(), EntityType::OSD)
            .expect("running");
        assert_ne!(c1, c2);
        let mut lost = 0;
        for c in [&c1, &c2] {
            if c.send(ping()).await.is_err() {
                lost += 1;
            }
        }
        let accounted = wait_round(&md, &cli, last, &[c1, c2], lost).await;
        let now = md.count.load(Ordering::SeqCst);
        if now == last && !accounted {
            // Nothing moved within about a second, and no reset explains it.
            stalls += 1;
            total_stalls += 1;
            max_stalls = max_stalls.max(stalls);
            assert!(
                stalls <= MAX_STALLS,
                "{stalls} consecutive stalls at round {round}"
            );
        } else {
            stalls = 0;
        }
        if now == last && accounted {
            lost_rounds += 1;
        }
        last = now;
    }
    eprintln!(
        "markdown: {} messages dispatched in {ROUNDS} rounds, {lost_rounds} rounds lost to resets, {total_stalls} stalls, \
         longest run {max_stalls}",
        md.count.load(Ordering::SeqCst)
    );
    // Most pings get through despite the mark-downs (typically three in four).
    assert!(md.count.load(Ordering::SeqCst) >= ROUNDS as u64 / 2);
    stop(&client).await;
    stop(&s1).await;
    stop(&s2).await;
}
