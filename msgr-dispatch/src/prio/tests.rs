//! Unit tests of `PrioQueue`.

use proptest::prelude::*;

use super::*;

/// Item = (class, priority, sequence number within the test).
type It = (ConnId, u8, u32);

fn drain(q: &mut PrioQueue<It>) -> Vec<It> {
    std::iter::from_fn(|| q.dequeue()).collect()
}

fn push(q: &mut PrioQueue<It>, class: ConnId, prio: u8, seq: u32) {
    q.enqueue(class, prio, 4096, (class, prio, seq));
}

#[test]
fn strict_highest_priority_first() {
    let mut q = PrioQueue::default();
    for (i, p) in [64u8, 255, 127, 196, 127, 64].into_iter().enumerate() {
        push(&mut q, 1, p, i as u32);
    }
    let prios: Vec<u8> = drain(&mut q).iter().map(|x| x.1).collect();
    assert_eq!(prios, [255, 196, 127, 127, 64, 64]);
    assert!(q.is_empty());
}

#[test]
fn strict_round_robin_across_classes_fifo_within() {
    let mut q = PrioQueue::default();
    for seq in 0..3 {
        push(&mut q, 1, 127, seq);
    }
    for seq in 0..2 {
        push(&mut q, 2, 127, seq);
    }
    push(&mut q, 3, 127, 0);
    let got: Vec<(ConnId, u32)> = drain(&mut q).iter().map(|x| (x.0, x.2)).collect();
    assert_eq!(got, [(1, 0), (2, 0), (3, 0), (1, 1), (2, 1), (1, 2)]);
}

#[test]
fn strict_beats_normal() {
    let mut q = PrioQueue::default();
    push(&mut q, 1, 63, 0);
    push(&mut q, 2, 0, 1);
    push(&mut q, 3, 64, 2);
    assert_eq!(q.dequeue().map(|x| x.2), Some(2));
    assert_eq!(q.len(), 2);
}

#[test]
fn threshold_is_configurable() {
    let mut q = PrioQueue::new(200, DEFAULT_MIN_COST, DEFAULT_MAX_TOKENS);
    // 127 is now normal, 196 too; with no tokens the highest normal priority goes first.
    push(&mut q, 1, 127, 0);
    push(&mut q, 1, 196, 1);
    push(&mut q, 1, 200, 2);
    let got: Vec<u32> = drain(&mut q).iter().map(|x| x.2).collect();
    assert_eq!(got, [2, 1, 0]);
}

#[test]
fn normal_fifo_per_class_and_round_robin() {
    let mut q = PrioQueue::default();
    for seq in 0..4 {
        push(&mut q, 7, 10, seq);
        push(&mut q, 8, 10, seq);
    }
    let got: Vec<(ConnId, u32)> = drain(&mut q).iter().map(|x| (x.0, x.2)).collect();
    assert_eq!(
        got,
        [
            (7, 0),
            (8, 0),
            (7, 1),
            (8, 1),
            (7, 2),
            (8, 2),
            (7, 3),
            (8, 3)
        ]
    );
}

#[test]
fn normal_tokens_share_by_priority_without_starvation() {
    let mut q = PrioQueue::default();
    for seq in 0..1000 {
        push(&mut q, 1, 10, seq);
        push(&mut q, 2, 50, seq);
    }
    let first: Vec<It> = (0..300).filter_map(|_| q.dequeue()).collect();
    let low = first.iter().filter(|x| x.1 == 10).count();
    let high = first.len() - low;
    assert!(low > 0, "the low priority is not starved");
    assert!(
        high > low,
        "the higher priority gets the larger share: {high} vs {low}"
    );
    // Tokens are earned in proportion to priority: expect about 50:10.
    assert!(high >= 3 * low, "{high} vs {low}");
}

#[test]
fn normal_first_dequeue_without_tokens_takes_highest() {
    let mut q = PrioQueue::default();
    push(&mut q, 1, 1, 0);
    push(&mut q, 2, 40, 1);
    assert_eq!(q.dequeue().map(|x| x.1), Some(40));
    // The lowest priority has earned 64Ki*1/41+1 tokens: too few for a 64 KiB item.
    assert_eq!(q.dequeue().map(|x| x.1), Some(1));
}

#[test]
fn emptied_subqueue_loses_tokens() {
    let mut q = PrioQueue::default();
    push(&mut q, 1, 10, 0);
    push(&mut q, 1, 20, 0);
    push(&mut q, 1, 20, 1);
    drain(&mut q);
    assert!(q.subs.iter().all(|s| s.tokens == 0));
    assert_eq!(q.total_priority, 0);
}

#[test]
fn remove_class_keeps_order_and_others() {
    let mut q = PrioQueue::default();
    for seq in 0..6u32 {
        let prio = [127u8, 10, 200][seq as usize % 3];
        push(&mut q, 1, prio, seq);
        push(&mut q, 2, prio, seq);
    }
    let removed: Vec<(u8, u32)> = q.remove_class(1).iter().map(|x| (x.1, x.2)).collect();
    assert_eq!(
        removed,
        [(200, 2), (200, 5), (127, 0), (127, 3), (10, 1), (10, 4)]
    );
    assert_eq!(q.len(), 6);
    assert!(q.remove_class(1).is_empty());
    assert!(drain(&mut q).iter().all(|x| x.0 == 2));
    assert_eq!(q.total_priority, 0);
}

#[test]
fn extreme_costs_are_clamped() {
    let mut q = PrioQueue::new(64, 10, 100);
    q.enqueue(1, 5, u64::MAX, (1, 5, 0));
    q.enqueue(1, 6, 0, (1, 6, 1));
    assert_eq!(drain(&mut q).len(), 2);
    let q2: PrioQueue<u8> = PrioQueue::new(64, 1000, 100);
    assert_eq!(q2.min_cost, 100);
}

#[test]
fn recycled_slots_serve_new_classes() {
    let mut q = PrioQueue::default();
    for round in 0..50u32 {
        for class in 0..5 {
            push(&mut q, class + u64::from(round) * 3, 127, round);
        }
        assert_eq!(drain(&mut q).len(), 5);
    }
    assert!(q.sub(127).is_some_and(|s| s.slots.len() <= 5));
    // Only the priority used has a sub-queue.
    assert_eq!(q.subs.len(), 1);
}

proptest! {
    #[test]
    fn fifo_per_class_priority_and_nothing_lost(
        ops in prop::collection::vec((0u64..5, prop::sample::select(vec![0u8, 5, 30, 63, 64, 127, 255]), any::<bool>()), 0..400),
    ) {
        let mut q: PrioQueue<It> = PrioQueue::default();
        let mut next = std::collections::HashMap::<(ConnId, u8), u32>::new();
        let mut seen = std::collections::HashMap::<(ConnId, u8), u32>::new();
        let (mut pushed, mut popped) = (0usize, 0usize);
        let check = |x: It, seen: &mut std::collections::HashMap<(ConnId, u8), u32>| {
            let want = seen.entry((x.0, x.1)).or_insert(0);
            prop_assert_eq!(x.2, *want);
            *want += 1;
            Ok(())
        };
        for (class, prio, pop) in ops {
            if pop {
                if let Some(x) = q.dequeue() {
                    popped += 1;
                    check(x, &mut seen)?;
                }
            } else {
                let n = next.entry((class, prio)).or_insert(0);
                push(&mut q, class, prio, *n);
                *n += 1;
                pushed += 1;
            }
            prop_assert_eq!(q.len(), pushed - popped);
        }
            let mut all: Vec<It> = q.iter().copied().collect();
        all.sort_unstable();
        prop_assert_eq!(all.len(), q.len());
        let rest = drain(&mut q);
        // Strict items drain in non-increasing priority order once nothing is added.
        let strict: Vec<u8> = rest.iter().map(|x| x.1).filter(|&p| p >= 64).collect();
        prop_assert!(strict.windows(2).all(|w| w[0] >= w[1]));
        for x in rest {
            popped += 1;
            check(x, &mut seen)?;
        }
        prop_assert_eq!(pushed, popped);
        prop_assert_eq!(q.total_priority, 0);
    }
}
