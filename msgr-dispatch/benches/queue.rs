//! Enqueue plus dequeue throughput of `PrioQueue`, uncontended, on one core.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use msgr_dispatch::PrioQueue;

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

mod group {
    #![allow(missing_docs)]
    use super::*;
    criterion_group!(benches, strict_one_class);
}

criterion_main!(group::benches);
