//! DispatchQueue behaviour: ordering, events, fast and local paths, throttle accounting,
//! discard and shutdown. Single-threaded runtime with paused time: the queue's tasks only run
//! when the test awaits, so every interleaving below is fixed.

mod common;

use common::{msg, rig, rig_with, Msg, Seen};
use msgr_dispatch::{DispatchConfig, ShutdownMode, ShutdownReport, Throttle, ThrottlePermit};

fn done(conn: u64, seq: u32) -> Seen {
    Seen::Done(msg(conn, seq))
}

#[tokio::test(start_paused = true)]
async fn strict_by_priority_round_robin_within_fifo_per_connection() {
    let mut r = rig(false);
    let none = ThrottlePermit::empty;
    r.q.enqueue(1, 64, msg(1, 0), none());
    r.q.enqueue(1, 127, msg(1, 1), none());
    r.q.enqueue(1, 127, msg(1, 2), none());
    r.q.enqueue(2, 127, msg(2, 0), none());
    r.q.enqueue(2, 196, msg(2, 1), none());
    r.q.enqueue(3, 1000, msg(3, 0), none()); // clamped to 255
    r.q.enqueue(2, 127, msg(2, 2), none());
    assert_eq!(r.q.len(), 7);
    let got = r.delivered(7).await;
    let want = [
        done(3, 0),
        done(2, 1),
        done(1, 1),
        done(2, 0),
        done(1, 2),
        done(2, 2),
        done(1, 0),
    ];
    assert_eq!(got, want);
    assert!(r.q.is_empty());
}

#[tokio::test(start_paused = true)]
async fn below_threshold_fair_across_connections_fifo_within() {
    let mut r = rig(false);
    for seq in 0..5 {
        r.q.enqueue(1, 10, msg(1, seq), ThrottlePermit::empty());
    }
    for seq in 0..5 {
        r.q.enqueue(2, 10, msg(2, seq), ThrottlePermit::empty());
    }
    let got = r.delivered(10).await;
    let want: Vec<Seen> = (0..5).flat_map(|s| [done(1, s), done(2, s)]).collect();
    assert_eq!(got, want);
}

#[tokio::test(start_paused = true)]
async fn events_overtake_messages_fifo_among_themselves() {
    let mut r = rig(false);
    r.q.enqueue(1, 255, msg(1, 0), ThrottlePermit::empty());
    r.q.enqueue_event(1, 10);
    r.q.enqueue(2, 127, msg(2, 0), ThrottlePermit::empty());
    r.q.enqueue_event(2, 11);
    r.q.enqueue_event(1, 12);
    let got = r.delivered(5).await;
    let want = [
        Seen::Event(1, 10),
        Seen::Event(2, 11),
        Seen::Event(1, 12),
        done(1, 0),
        done(2, 0),
    ];
    assert_eq!(got, want);
    let c = r.q.counters();
    assert_eq!(
        (c.events_queued, c.events_delivered, c.dispatched_messages),
        (3, 3, 2)
    );
}

#[tokio::test(start_paused = true)]
async fn event_arriving_during_dispatch_goes_before_queued_messages() {
    let mut r = rig(true);
    for seq in 0..3 {
        r.q.enqueue(1, 127, msg(1, seq), ThrottlePermit::empty());
    }
    assert_eq!(r.next().await, Seen::Started(msg(1, 0)));
    r.q.enqueue_event(1, 99);
    r.gate.add_permits(3);
    assert_eq!(
        r.delivered(4).await,
        [done(1, 0), Seen::Event(1, 99), done(1, 1), done(1, 2)]
    );
}

#[tokio::test(start_paused = true)]
async fn dispatch_throttle_released_only_after_dispatch_returns() {
    let mut r = rig(true);
    let t = Throttle::new(1000);
    r.q.deliver(1, 127, msg(1, 0), t.acquire(100).await);
    r.q.deliver(1, 127, msg(1, 1), t.acquire(50).await);
    assert_eq!(r.next().await, Seen::Started(msg(1, 0)));
    assert_eq!(t.current(), 150, "held while the handler runs");
    let c = r.q.counters();
    assert_eq!((c.pending_messages, c.pending_bytes), (1, 50));
    r.gate.add_permits(1);
    assert_eq!(r.next().await, done(1, 0));
    assert_eq!(r.next().await, Seen::Started(msg(1, 1)));
    assert_eq!(t.current(), 50, "released once the first dispatch returned");
    r.gate.add_permits(1);
    assert_eq!(r.next().await, done(1, 1));
    tokio::task::yield_now().await;
    assert_eq!(t.current(), 0);
    let c = r.q.counters();
    assert_eq!(
        (c.dispatched_messages, c.dispatched_bytes, c.queued_bytes),
        (2, 150, 150)
    );
}

/// A batch is queued as its messages one by one would be: by priority, FIFO within the
/// connection's class, fair with another connection's messages queued meanwhile; counted,
/// its permits held until each dispatch returns; the batch left empty. Refused whole (its
/// permits given back, counted) once shutdown has begun.
#[tokio::test(start_paused = true)]
async fn a_batch_is_queued_as_its_messages_one_by_one() {
    let mut r = rig(false);
    let t = Throttle::new(1 << 20);
    r.q.enqueue(2, 127, msg(2, 0), ThrottlePermit::empty());
    let mut batch = Vec::with_capacity(8);
    for (seq, prio) in [(0, 127), (1, 196), (2, 127), (3, 127)] {
        batch.push((prio, msg(1, seq), t.acquire(10).await));
    }
    r.q.enqueue_batch(1, &mut batch);
    assert!(
        batch.is_empty() && batch.capacity() >= 8,
        "emptied, allocation kept"
    );
    r.q.enqueue(2, 127, msg(2, 1), ThrottlePermit::empty());
    assert_eq!(r.q.len(), 6);
    assert_eq!(t.current(), 40, "permits held while queued");
    let got = r.delivered(6).await;
    let want = [
        done(1, 1),
        done(2, 0),
        done(1, 0),
        done(2, 1),
        done(1, 2),
        done(1, 3),
    ];
    assert_eq!(got, want);
    tokio::task::yield_now().await;
    assert_eq!(t.current(), 0);
    let c = r.q.counters();
    assert_eq!((c.queued_messages, c.queued_bytes), (6, 40));
    r.q.enqueue_batch(1, &mut Vec::new());
    assert_eq!(
        r.q.counters().queued_messages,
        6,
        "an empty batch queues nothing"
    );

    r.q.shutdown(ShutdownMode::Drain).await;
    batch.push((127, msg(1, 9), t.take(7)));
    batch.push((127, msg(1, 10), t.take(7)));
    r.q.enqueue_batch(1, &mut batch);
    assert!(batch.is_empty());
    assert_eq!(t.current(), 0, "refused: permits given back");
    assert_eq!(r.q.counters().rejected_messages, 2);
}

#[tokio::test(start_paused = true)]
async fn fast_dispatch_inline_and_releases_after() {
    let mut r = rig(false);
    let t = Throttle::new(0);
    r.q.deliver(
        4,
        127,
        Msg {
            conn: 4,
            seq: 0,
            fast: true,
        },
        t.take(10),
    );
    // Handed over inline: logged before the test yields, and the bytes are back.
    assert_eq!(
        r.logged(),
        [Seen::Fast(Msg {
            conn: 4,
            seq: 0,
            fast: true
        })]
    );
    assert_eq!(t.current(), 0);
    r.q.deliver(4, 127, msg(4, 1), t.take(20));
    assert_eq!(
        t.current(),
        20,
        "a slow message waits in the queue with its bytes"
    );
    assert_eq!(r.delivered(1).await, [done(4, 1)]);
    let c = r.q.counters();
    assert_eq!(
        (c.fast_dispatched_messages, c.fast_dispatched_bytes),
        (1, 10)
    );
    assert_eq!(c.queued_messages, 1);
}

/// A caller that fast-dispatches itself (`admit`, then `fast_dispatched` or `enqueue`, or
/// its counts settled later with `count_fast_dispatched`) is counted as `deliver` counts, releases the permit as `deliver` does, and is refused after
/// shutdown as `deliver` is.
#[tokio::test(start_paused = true)]
async fn admit_and_fast_dispatched_count_as_deliver_does() {
    let mut r = rig(false);
    let t = Throttle::new(0);
    assert!(r.q.admit());
    let permit = t.take(10);
    assert_eq!(t.current(), 10);
    r.q.fast_dispatched(permit);
    assert_eq!(t.current(), 0, "the permit is released");
    // A caller that settles its counts per batch adds them in one call.
    r.q.count_fast_dispatched(3, 45);
    assert!(r.q.admit());
    r.q.enqueue(4, 127, msg(4, 1), t.take(20));
    assert_eq!(r.delivered(1).await, [done(4, 1)]);
    let c = r.q.counters();
    assert_eq!(
        (c.fast_dispatched_messages, c.fast_dispatched_bytes),
        (4, 55)
    );
    assert_eq!((c.queued_messages, c.rejected_messages), (1, 0));
    r.q.shutdown(ShutdownMode::Drain).await;
    assert!(!r.q.admit(), "refused once shutdown began");
    assert!(!r.q.admit());
    assert_eq!(r.q.counters().rejected_messages, 2);
    assert!(r.logged().is_empty(), "the handler saw nothing of it");
}

#[tokio::test(start_paused = true)]
async fn local_delivery_keeps_order_and_preprocesses() {
    let mut r = rig(false);
    for seq in 0..4 {
        r.q.local_delivery(127, msg(0, seq), ThrottlePermit::empty());
    }
    let mut seen = Vec::new();
    while seen.len() < 8 {
        match r.next().await {
            Seen::Started(_) => {}
            s => seen.push(s),
        }
    }
    let pre: Vec<Seen> = seen
        .iter()
        .copied()
        .filter(|s| matches!(s, Seen::Preprocess(_)))
        .collect();
    let fin: Vec<Seen> = seen
        .iter()
        .copied()
        .filter(|s| matches!(s, Seen::Done(_)))
        .collect();
    assert_eq!(
        pre,
        (0..4)
            .map(|s| Seen::Preprocess(msg(0, s)))
            .collect::<Vec<_>>()
    );
    assert_eq!(fin, (0..4).map(|s| done(0, s)).collect::<Vec<_>>());
    assert_eq!(r.q.counters().local_messages, 4);
}

#[tokio::test(start_paused = true)]
async fn local_delivery_fast_path_in_order() {
    let mut r = rig(false);
    let t = Throttle::new(100);
    for seq in 0..3 {
        r.q.local_delivery(
            127,
            Msg {
                conn: 0,
                seq,
                fast: true,
            },
            t.take(10),
        );
    }
    let fast: Vec<Seen> = r.delivered(3).await;
    assert_eq!(
        fast,
        (0..3)
            .map(|seq| Seen::Fast(Msg {
                conn: 0,
                seq,
                fast: true
            }))
            .collect::<Vec<_>>()
    );
    assert_eq!(t.current(), 0);
}

#[tokio::test(start_paused = true)]
async fn discard_drops_one_class_and_releases_its_bytes() {
    let mut r = rig(true);
    let t = Throttle::new(0);
    for seq in 0..3 {
        r.q.enqueue(1, 127, msg(1, seq), t.take(10));
        r.q.enqueue(2, 127, msg(2, seq), t.take(1));
    }
    r.q.enqueue_event(1, 7);
    assert_eq!(r.next().await, Seen::Event(1, 7));
    assert_eq!(r.next().await, Seen::Started(msg(1, 0)));
    assert_eq!(
        r.q.discard(1),
        2,
        "the one in dispatch is not queued any more"
    );
    assert_eq!(t.current(), 10 + 3, "in-flight message plus connection 2");
    assert_eq!(r.q.discard(1), 0);
    r.gate.add_permits(10);
    assert_eq!(
        r.delivered(4).await,
        [done(1, 0), done(2, 0), done(2, 1), done(2, 2)]
    );
    tokio::task::yield_now().await;
    assert_eq!(t.current(), 0);
    let c = r.q.counters();
    assert_eq!((c.discarded_messages, c.discarded_bytes), (2, 20));
}

#[tokio::test(start_paused = true)]
async fn shutdown_discard_releases_everything_and_reports() {
    let mut r = rig(true);
    let t = Throttle::new(1 << 20);
    for seq in 0..4 {
        r.q.enqueue(1, 127, msg(1, seq), t.acquire(100).await);
    }
    r.q.local_delivery(127, msg(0, 0), t.take(5));
    let first = [r.next().await, r.next().await];
    assert!(first.contains(&Seen::Preprocess(msg(0, 0))));
    assert!(first.contains(&Seen::Started(msg(1, 0))));
    r.q.enqueue_event(3, 1);
    let q = r.q.clone();
    let stop = tokio::spawn(async move { q.shutdown(ShutdownMode::Discard).await });
    tokio::task::yield_now().await;
    assert!(!stop.is_finished(), "waits for the dispatch in progress");
    assert_eq!(
        t.current(),
        100,
        "all but the in-flight message released at once"
    );
    r.gate.add_permits(1);
    let report = stop.await.expect("shutdown task");
    assert_eq!(
        report,
        ShutdownReport {
            dropped_messages: 4,
            dropped_bytes: 305,
            dropped_events: 1
        }
    );
    assert_eq!(t.current(), 0);
    assert_eq!(r.q.len(), 0);
    assert_eq!(r.logged(), [done(1, 0)]);
    // Refused after shutdown, bytes given back at once.
    r.q.deliver(1, 127, msg(1, 9), t.take(7));
    r.q.enqueue_event(1, 2);
    r.q.local_delivery(127, msg(0, 9), t.take(7));
    assert_eq!(t.current(), 0);
    let c = r.q.counters();
    assert_eq!(
        (c.rejected_messages, c.events_dropped, c.discarded_bytes),
        (2, 2, 305)
    );
}

#[tokio::test(start_paused = true)]
async fn shutdown_drain_delivers_everything_first() {
    let mut r = rig(false);
    let t = Throttle::new(0);
    for seq in 0..3 {
        r.q.enqueue(2, 127, msg(2, seq), t.take(8));
    }
    r.q.local_delivery(200, msg(0, 0), t.take(1));
    r.q.enqueue_event(2, 5);
    let report = r.q.shutdown(ShutdownMode::Drain).await;
    assert_eq!(report, ShutdownReport::default());
    assert_eq!(t.current(), 0);
    let mut got = r.logged();
    got.retain(|s| matches!(s, Seen::Done(_) | Seen::Event(..)));
    assert_eq!(got.len(), 5);
    assert_eq!(got[0], Seen::Event(2, 5));
    let from2: Vec<Seen> = got
        .iter()
        .copied()
        .filter(|s| matches!(s, Seen::Done(m) if m.conn == 2))
        .collect();
    assert_eq!(from2, [done(2, 0), done(2, 1), done(2, 2)]);
    // A second shutdown returns at once.
    assert_eq!(
        r.q.shutdown(ShutdownMode::Discard).await,
        ShutdownReport::default()
    );
}

#[tokio::test(start_paused = true)]
async fn dropping_the_last_handle_discards_and_releases() {
    let r = rig(true);
    let t = Throttle::new(0);
    let q2 = r.q.clone();
    r.q.enqueue(1, 127, msg(1, 0), t.take(3));
    drop(r.q);
    assert_eq!(t.current(), 3, "a clone keeps the queue alive");
    drop(q2);
    assert_eq!(t.current(), 0);
}

#[tokio::test(start_paused = true)]
async fn conn_ids_count_from_one() {
    let r = rig(false);
    assert_eq!(
        (r.q.new_conn_id(), r.q.new_conn_id(), r.q.new_conn_id()),
        (1, 2, 3)
    );
}

#[tokio::test(start_paused = true)]
async fn configurable_threshold_makes_127_fair() {
    let config = DispatchConfig {
        strict_threshold: 200,
        ..DispatchConfig::default()
    };
    assert!(config.validate().is_ok());
    let mut r = rig_with(config, false);
    r.q.enqueue(1, 127, msg(1, 0), ThrottlePermit::empty());
    r.q.enqueue(1, 199, msg(1, 1), ThrottlePermit::empty());
    r.q.enqueue(1, 200, msg(1, 2), ThrottlePermit::empty());
    assert_eq!(r.delivered(3).await, [done(1, 2), done(1, 1), done(1, 0)]);
    let bad = DispatchConfig {
        min_cost: 10,
        max_tokens_per_priority: 5,
        ..DispatchConfig::default()
    };
    assert!(bad.validate().is_err());
}

#[tokio::test(start_paused = true)]
async fn injected_event_delay_is_seeded_and_counted() {
    use std::time::Duration;
    use tokio::time::Instant;
    let config = DispatchConfig {
        event_delay: Duration::from_millis(250),
        event_delay_probability: 1.0,
        ..DispatchConfig::default()
    };
    let mut r = rig_with(config, false);
    let start = Instant::now();
    r.q.enqueue_event(1, 1);
    r.q.enqueue_event(1, 2);
    assert_eq!(r.delivered(2).await, [Seen::Event(1, 1), Seen::Event(1, 2)]);
    assert_eq!(start.elapsed(), Duration::from_millis(500));
    assert_eq!(r.q.counters().delayed_events, 2);
    let off = DispatchConfig {
        event_delay_probability: 2.0,
        ..DispatchConfig::default()
    };
    assert!(off.validate().is_err());
}

#[tokio::test(start_paused = true)]
async fn a_panicking_handler_still_lets_shutdown_release_everything() {
    use std::sync::Arc;
    struct Boom;
    impl msgr_dispatch::Handler<u32, ()> for Boom {
        fn dispatch(&self, m: u32) -> msgr_dispatch::BoxFuture<'_, ()> {
            Box::pin(async move { assert_ne!(m, 0, "handler bug (expected by the test)") })
        }
        fn event(&self, _: u64, _: ()) -> msgr_dispatch::BoxFuture<'_, ()> {
            Box::pin(async {})
        }
    }
    let q = msgr_dispatch::DispatchQueue::new(DispatchConfig::default(), Arc::new(Boom));
    let t = Throttle::new(0);
    q.enqueue(1, 127, 0, t.take(4));
    tokio::task::yield_now().await;
    q.enqueue(1, 127, 1, t.take(6));
    let report = q.shutdown(ShutdownMode::Drain).await;
    assert_eq!(
        report,
        ShutdownReport {
            dropped_messages: 1,
            dropped_bytes: 6,
            dropped_events: 0
        }
    );
    assert_eq!(t.current(), 0);
}

#[test]
fn handles_are_send_sync_static() {
    fn check<T: Send + Sync + 'static>() {}
    check::<msgr_dispatch::DispatchQueue<Msg, u32>>();
    check::<Throttle>();
    check::<msgr_dispatch::Acquire>();
    check::<ThrottlePermit>();
    check::<msgr_dispatch::DelayedDelivery<Msg>>();
}

#[tokio::test(start_paused = true)]
async fn a_panicking_preprocess_does_not_hang_shutdown() {
    use std::sync::Arc;
    struct BadLocal;
    impl msgr_dispatch::Handler<u32, ()> for BadLocal {
        fn fast_preprocess(&self, _: &u32) {
            panic!("preprocess bug (expected by the test)");
        }
        fn dispatch(&self, _: u32) -> msgr_dispatch::BoxFuture<'_, ()> {
            Box::pin(async {})
        }
        fn event(&self, _: u64, _: ()) -> msgr_dispatch::BoxFuture<'_, ()> {
            Box::pin(async {})
        }
    }
    let q = msgr_dispatch::DispatchQueue::new(DispatchConfig::default(), Arc::new(BadLocal));
    let t = Throttle::new(0);
    q.local_delivery(127, 1, t.take(3));
    q.local_delivery(127, 2, t.take(4));
    tokio::task::yield_now().await;
    let report = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        q.shutdown(ShutdownMode::Drain),
    )
    .await
    .expect("shutdown returns");
    assert_eq!(
        report,
        ShutdownReport {
            dropped_messages: 1,
            dropped_bytes: 4,
            dropped_events: 0
        }
    );
    assert_eq!(t.current(), 0);
}

#[tokio::test(start_paused = true)]
async fn oldest_age_reports_the_longest_wait() {
    use std::time::Duration;
    let mut r = rig(true);
    assert_eq!(r.q.oldest_age(), None);
    r.q.enqueue(1, 127, msg(1, 0), ThrottlePermit::empty());
    assert_eq!(r.next().await, Seen::Started(msg(1, 0)));
    tokio::time::advance(Duration::from_secs(1)).await;
    r.q.enqueue(1, 10, msg(1, 1), ThrottlePermit::empty());
    tokio::time::advance(Duration::from_secs(2)).await;
    r.q.enqueue(2, 255, msg(2, 0), ThrottlePermit::empty());
    assert_eq!(
        r.q.oldest_age(),
        Some(Duration::from_secs(2)),
        "the one in dispatch is not queued"
    );
    r.gate.add_permits(3);
    r.delivered(3).await;
    assert_eq!(r.q.oldest_age(), None);
}
