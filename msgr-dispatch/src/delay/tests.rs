//! Unit tests of the delay stage, on paused tokio time: the runtime jumps straight to the next
//! timer when every task is idle, so the delivery instants below are exact.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::*;

fn config(probability: f64, max_ms: u64, seed: u64) -> DelayConfig {
    DelayConfig {
        probability,
        max_delay: Duration::from_millis(max_ms),
        seed,
    }
}

/// A stage whose sink logs (message, instant).
fn stage(
    cfg: DelayConfig,
    mix: u64,
) -> (
    DelayedDelivery<u32>,
    mpsc::UnboundedReceiver<(u32, Instant)>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let d = DelayedDelivery::new(cfg, mix, move |m| {
        let _ = tx.send((m, Instant::now()));
    });
    (d, rx)
}

/// tokio's timer fires on the next whole millisecond at or after the deadline.
fn timer_tick(d: Duration) -> Duration {
    Duration::from_millis(u64::try_from(d.as_nanos().div_ceil(1_000_000)).expect("small"))
}

async fn collect(
    rx: &mut mpsc::UnboundedReceiver<(u32, Instant)>,
    n: usize,
    start: Instant,
) -> Vec<(u32, Duration)> {
    let mut out = Vec::new();
    while out.len() < n {
        // Paused time: a lost message fails the test after a virtual hour instead of hanging.
        let next = tokio::time::timeout(Duration::from_secs(3600), rx.recv()).await;
        let (m, at) = next.expect("delivered in time").expect("sink alive");
        out.push((m, at - start));
    }
    out
}

#[test]
fn plan_replays_with_the_same_seed_and_mix() {
    let cfg = config(0.5, 1000, 42);
    let a: Vec<_> = {
        let mut p = DelayPlan::new(&cfg, 7);
        (0..100).map(|_| p.next_delay()).collect()
    };
    let b: Vec<_> = {
        let mut p = DelayPlan::new(&cfg, 7);
        (0..100).map(|_| p.next_delay()).collect()
    };
    let c: Vec<_> = {
        let mut p = DelayPlan::new(&cfg, 8);
        (0..100).map(|_| p.next_delay()).collect()
    };
    assert_eq!(a, b);
    assert_ne!(a, c, "another connection draws another sequence");
    let hits = a.iter().flatten().count();
    assert!((25..=75).contains(&hits), "about half delayed: {hits}");
    assert!(a
        .iter()
        .flatten()
        .all(|d| *d > Duration::ZERO && *d <= Duration::from_secs(1)));
}

#[test]
fn plan_edges() {
    let mut never = DelayPlan::new(&config(0.0, 1000, 1), 0);
    assert!((0..100).all(|_| never.next_delay().is_none()));
    let mut always = DelayPlan::new(&config(1.0, 3, 1), 0);
    assert!((0..100).all(|_| always
        .next_delay()
        .is_some_and(|d| d <= Duration::from_millis(3))));
    let mut zero_max = DelayPlan::new(&config(1.0, 0, 1), 0);
    assert!(zero_max.next_delay().is_none());
    let mut nan = DelayPlan::new(&config(f64::NAN, 1000, 1), 0);
    assert!(nan.next_delay().is_none());
    assert!(config(1.5, 1, 0).validate().is_err());
    assert!(config(f64::NAN, 1, 0).validate().is_err());
    assert!(DelayConfig::default().validate().is_ok());
}

#[tokio::test(start_paused = true)]
async fn no_delay_passes_through_inline() {
    let (d, mut rx) = stage(config(0.0, 1000, 1), 0);
    d.push(1);
    d.push(2);
    assert_eq!(rx.try_recv().map(|x| x.0), Ok(1));
    assert_eq!(rx.try_recv().map(|x| x.0), Ok(2));
    assert!(d.is_empty());
    let c = d.counters();
    assert_eq!((c.pushed, c.passed_through, c.delayed), (2, 2, 0));
}

#[tokio::test(start_paused = true)]
async fn delayed_message_arrives_after_its_drawn_delay() {
    let cfg = config(1.0, 500, 9);
    let expected = DelayPlan::new(&cfg, 3).next_delay().expect("p = 1");
    let (d, mut rx) = stage(cfg, 3);
    let start = Instant::now();
    d.push(7);
    assert_eq!(d.len(), 1);
    assert!(rx.try_recv().is_err());
    assert_eq!(
        collect(&mut rx, 1, start).await,
        [(7, timer_tick(expected))]
    );
    assert_eq!(d.counters().total_delay, expected);
    assert_eq!(d.counters().released, 1);
}

#[tokio::test(start_paused = true)]
async fn later_messages_wait_behind_a_delayed_one() {
    // Find a seed whose first draw is long and second short, to show head-of-line blocking.
    let seed = (0..1000)
        .find(|&s| {
            let mut p = DelayPlan::new(&config(1.0, 1000, s), 0);
            matches!((p.next_delay(), p.next_delay()), (Some(a), Some(b)) if a > b)
        })
        .expect("some seed");
    let cfg = config(1.0, 1000, seed);
    let mut plan = DelayPlan::new(&cfg, 0);
    let first = timer_tick(plan.next_delay().expect("p = 1"));
    let (d, mut rx) = stage(cfg, 0);
    let start = Instant::now();
    d.push(1);
    d.push(2);
    d.push_filtered(3, false);
    assert_eq!(
        collect(&mut rx, 3, start).await,
        [(1, first), (2, first), (3, first)]
    );
    assert_eq!(d.counters().queued_behind, 1);
}

#[tokio::test(start_paused = true)]
async fn order_kept_and_replayed_identically_with_the_same_seed() {
    async fn run(seed: u64) -> (Vec<(u32, Duration)>, DelayCounters) {
        let (d, mut rx) = stage(config(0.3, 200, seed), 11);
        let start = Instant::now();
        for m in 0..300 {
            d.push(m);
            if m % 10 == 0 {
                tokio::time::advance(Duration::from_millis(7)).await;
            }
        }
        (collect(&mut rx, 300, start).await, d.counters())
    }
    let (a, ca) = run(5).await;
    let (b, cb) = run(5).await;
    let (c, _) = run(6).await;
    assert_eq!(
        a.iter().map(|x| x.0).collect::<Vec<_>>(),
        (0..300).collect::<Vec<_>>()
    );
    assert!(a.windows(2).all(|w| w[0].1 <= w[1].1));
    assert_eq!(a, b, "same seed, same delivery times");
    assert_eq!(ca, cb);
    assert_ne!(a, c);
    assert!(ca.delayed > 30 && ca.passed_through > 0, "{ca:?}");
    assert_eq!(ca.passed_through + ca.released, 300);
}

#[tokio::test(start_paused = true)]
async fn flush_delivers_everything_now_in_order() {
    let (d, mut rx) = stage(config(1.0, 10_000, 3), 0);
    for m in 0..5 {
        d.push(m);
    }
    assert_eq!(d.flush().await, 5);
    let got: Vec<u32> = std::iter::from_fn(|| rx.try_recv().ok())
        .map(|x| x.0)
        .collect();
    assert_eq!(got, [0, 1, 2, 3, 4]);
    assert_eq!(d.counters().flushed, 5);
    // The timer has nothing left to release.
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert!(rx.try_recv().is_err());
}

#[tokio::test(start_paused = true)]
async fn discard_returns_held_messages_in_order() {
    let (d, mut rx) = stage(config(1.0, 10_000, 3), 0);
    for m in 0..4 {
        d.push(m);
    }
    assert_eq!(d.discard(), [0, 1, 2, 3]);
    assert!(d.is_empty());
    assert_eq!(d.counters().discarded, 4);
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert!(rx.try_recv().is_err());
}

#[tokio::test(start_paused = true)]
async fn drop_discards_held_messages() {
    let token = Arc::new(());
    let (tx, mut rx) = mpsc::unbounded_channel::<Arc<()>>();
    let d = DelayedDelivery::new(config(1.0, 1000, 1), 0, move |m| {
        let _ = tx.send(m);
    });
    d.push(token.clone());
    assert_eq!(Arc::strong_count(&token), 2);
    drop(d);
    assert_eq!(Arc::strong_count(&token), 1, "held message dropped");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(rx.try_recv().is_err());
}

#[tokio::test(start_paused = true)]
async fn sink_may_call_back_into_the_stage() {
    use std::sync::{OnceLock, Weak};
    let cell: Arc<OnceLock<Weak<DelayedDelivery<u32>>>> = Arc::new(OnceLock::new());
    let (tx, mut rx) = mpsc::unbounded_channel();
    let cb = cell.clone();
    let d = Arc::new(DelayedDelivery::new(
        config(1.0, 1000, 4),
        0,
        move |m: u32| {
            let _ = tx.send((m, Instant::now()));
            if m == 0 {
                // A fault seen while handling the first message flushes the rest (re-entrantly).
                if let Some(d) = cb.get().and_then(Weak::upgrade) {
                    assert_eq!(d.flush_now(), 4);
                    assert_eq!(
                        d.len(),
                        4,
                        "delivered by the outer deliverer once this call returns"
                    );
                }
            }
        },
    ));
    cell.set(Arc::downgrade(&d)).expect("set once");
    let first = timer_tick(
        DelayPlan::new(&config(1.0, 1000, 4), 0)
            .next_delay()
            .expect("p = 1"),
    );
    let start = Instant::now();
    for m in 0..5 {
        d.push(m);
    }
    let got = collect(&mut rx, 5, start).await;
    assert_eq!(got, (0..5).map(|m| (m, first)).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_pushes_and_flushes_keep_order() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let d = Arc::new(DelayedDelivery::new(config(0.2, 1, 8), 0, move |m: u32| {
        let _ = tx.send(m);
    }));
    let pusher = {
        let d = d.clone();
        tokio::spawn(async move {
            for m in 0..2000 {
                d.push(m);
                if m % 64 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        })
    };
    let flusher = {
        let d = d.clone();
        tokio::spawn(async move {
            for _ in 0..200 {
                d.flush().await;
                tokio::task::yield_now().await;
            }
        })
    };
    pusher.await.expect("pusher");
    flusher.await.expect("flusher");
    d.flush_now();
    let mut got = Vec::new();
    while got.len() < 2000 {
        got.push(rx.recv().await.expect("sink alive"));
    }
    assert_eq!(got, (0..2000).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn a_panicking_sink_does_not_stop_the_timer() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let d = DelayedDelivery::new(config(1.0, 100, 2), 0, move |m: u32| {
        assert_ne!(m, 1, "sink bug (expected by the test)");
        let _ = tx.send((m, Instant::now()));
    });
    for m in 0..4 {
        d.push(m);
    }
    let got: Vec<u32> = collect(&mut rx, 3, Instant::now())
        .await
        .into_iter()
        .map(|x| x.0)
        .collect();
    assert_eq!(got, [0, 2, 3]);
}
