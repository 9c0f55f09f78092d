//! Enqueue plus dequeue throughput of `PrioQueue`, uncontended, on one core.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use msgr_dispatch::{BoxFuture, DispatchConfig, DispatchQueue, Handler, PrioQueue, Throttle};
use tokio::sync::Notify;

const BATCH: u64 = 1024;

fn strict_one_class(c: &mut Criterion) {
    let mut g = c.benchmark_group("prio_queue");
    g.throughput(Throughput::Elements(BATCH));
    let mut q: PrioQueue<u64> = PrioQueue::default();
    g.bench_function("strict_1class", |b| {
        b.iter(|| {
            for i in 0..BATCH {
                q.enqueue(1, 127, 4096, i);
            }
            while let Some(x) = q.dequeue() {
                black_box(x);
            }
        })
    });
    g.bench_function("strict_16class_4prio", |b| {
        b.iter(|| {
            for i in 0..BATCH {
                q.enqueue(i % 16, [64, 127, 196, 255][(i % 4) as usize], 4096, i);
            }
            while let Some(x) = q.dequeue() {
                black_box(x);
            }
        })
    });
    g.bench_function("interleaved_strict", |b| {
        b.iter(|| {
            for i in 0..BATCH {
                q.enqueue(i % 8, 127, 4096, i);
                black_box(q.dequeue());
            }
        })
    });
    g.bench_function("normal_16class_4prio", |b| {
        b.iter(|| {
            for i in 0..BATCH {
                q.enqueue(i % 16, [1, 10, 30, 63][(i % 4) as usize], 4096, i);
            }
            while let Some(x) = q.dequeue() {
                black_box(x);
            }
        })
    });
    g.finish();
}

/// Counts dispatches and signals when a target is reached.
struct Counter {
    seen: AtomicU64,
    target: AtomicU64,
    done: Notify,
}

impl Handler<u64, ()> for Counter {
    fn dispatch(&self, m: u64) -> BoxFuture<'_, ()> {
        black_box(m);
        if self.seen.fetch_add(1, Ordering::Relaxed) + 1 == self.target.load(Ordering::Relaxed) {
            self.done.notify_one();
        }
        Box::pin(std::future::ready(()))
    }
    fn event(&self, _: u64, _: ()) -> BoxFuture<'_, ()> {
        Box::pin(std::future::ready(()))
    }
}

/// The whole path on a current-thread runtime: enqueue with a throttle permit, dispatch task,
/// handler, permit released.
fn dispatch_queue_end_to_end(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let counter = Arc::new(Counter {
        seen: AtomicU64::new(0),
        target: AtomicU64::new(0),
        done: Notify::new(),
    });
    let q = rt.block_on(async { DispatchQueue::new(DispatchConfig::default(), counter.clone()) });
    let t = Throttle::new(1 << 30);
    let mut g = c.benchmark_group("dispatch_queue");
    g.throughput(Throughput::Elements(BATCH));
    g.bench_function("enqueue_dispatch_8conn", |b| {
        b.iter(|| {
            let target = counter.seen.load(Ordering::Relaxed) + BATCH;
            counter.target.store(target, Ordering::Relaxed);
            rt.block_on(async {
                for i in 0..BATCH {
                    q.enqueue(i % 8 + 1, 127, i, t.take(4096));
                }
                counter.done.notified().await;
            });
        })
    });
    g.finish();
}

mod group {
    #![allow(missing_docs)]
    use super::*;
    criterion_group!(benches, strict_one_class, dispatch_queue_end_to_end);
}

criterion_main!(group::benches);
