//! Many producers on a multi-threaded runtime: the dispatch throttle bounds what is in
//! flight, each connection stays FIFO, and a draining shutdown leaves the throttle at zero.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use msgr_dispatch::{
    BoxFuture, ConnId, DispatchConfig, DispatchQueue, Handler, ShutdownMode, Throttle,
};

/// (connection, sequence number, size, fast?)
type M = (ConnId, u32, u64, bool);

#[derive(Default)]
struct Check {
    last: Mutex<HashMap<(ConnId, bool), u32>>,
    peak: Mutex<u64>,
    throttle: Mutex<Option<Throttle>>,
}

impl Check {
    fn see(&self, m: M) {
        let mut last = self.last.lock().expect("lock");
        let prev = last.insert((m.0, m.3), m.1);
        assert!(
            prev.is_none_or(|p| p < m.1),
            "connection {} out of order: {prev:?} then {}",
            m.0,
            m.1
        );
        if let Some(t) = &*self.throttle.lock().expect("lock") {
            let mut peak = self.peak.lock().expect("lock");
            *peak = (*peak).max(t.current());
        }
    }
}

impl Handler<M, ()> for Check {
    fn can_fast_dispatch(&self, m: &M) -> bool {
        m.3
    }
    fn fast_dispatch(&self, m: M) {
        self.see(m);
    }
    fn dispatch(&self, m: M) -> BoxFuture<'_, ()> {
        self.see(m);
        Box::pin(async {
            tokio::task::yield_now().await;
        })
    }
    fn event(&self, _: ConnId, _: ()) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn producers_stay_fifo_within_the_throttle() {
    const MAX: u64 = 64 * 1024;
    let check = Arc::new(Check::default());
    let throttle = Throttle::new(MAX);
    *check.throttle.lock().expect("lock") = Some(throttle.clone());
    let q = DispatchQueue::new(DispatchConfig::default(), check.clone());
    let mut producers = Vec::new();
    for p in 0..8u32 {
        let (q, t) = (q.clone(), throttle.clone());
        producers.push(tokio::spawn(async move {
            let conn = q.new_conn_id();
            for seq in 0..2000u32 {
                let size = u64::from((seq * 7919 + p * 31) % 9000);
                let fast = seq % 5 == 0;
                let prio = if p % 2 == 0 { 127 } else { 30 };
                q.deliver(conn, prio, (conn, seq, size, fast), t.acquire(size).await);
            }
        }));
    }
    for p in producers {
        p.await.expect("producer");
    }
    let report = q.shutdown(ShutdownMode::Drain).await;
    assert_eq!(report.dropped_messages, 0);
    assert_eq!((throttle.current(), throttle.waiters()), (0, 0));
    let c = q.counters();
    assert_eq!(c.dispatched_messages + c.fast_dispatched_messages, 16_000);
    assert_eq!(c.fast_dispatched_messages, 8 * 400);
    assert!(*check.peak.lock().expect("lock") <= MAX);
}
