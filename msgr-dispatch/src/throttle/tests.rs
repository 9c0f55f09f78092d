//! Unit tests of the throttle; futures are polled by hand with a counting waker, so every
//! interleaving is explicit and deterministic.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use super::*;

#[derive(Default)]
struct CountWaker(AtomicUsize);

impl Wake for CountWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A hand-polled acquire with its own waker.
struct Probe {
    fut: Pin<Box<Acquire>>,
    wakes: Arc<CountWaker>,
}

impl Probe {
    fn new(t: &Throttle, n: u64) -> Self {
        Probe {
            fut: Box::pin(t.acquire(n)),
            wakes: Arc::default(),
        }
    }
    fn poll(&mut self) -> Option<ThrottlePermit> {
        let waker = Waker::from(self.wakes.clone());
        match self.fut.as_mut().poll(&mut Context::from_waker(&waker)) {
            Poll::Ready(p) => Some(p),
            Poll::Pending => None,
        }
    }
    fn woken(&self) -> usize {
        self.wakes.0.load(Ordering::SeqCst)
    }
}

#[test]
fn acquire_and_drop_gives_back() {
    let t = Throttle::new(10);
    let p = Probe::new(&t, 4).poll().expect("fits");
    assert_eq!((p.amount(), t.current(), t.max()), (4, 4, 10));
    drop(p);
    assert_eq!(t.current(), 0);
}

#[test]
fn take_exceeds_max_and_try_fails_after() {
    let t = Throttle::new(5);
    let a = t.take(5);
    let b = t.take(5);
    assert_eq!(t.current(), 10);
    assert!(t.try_acquire(1).is_none());
    drop((a, b));
    assert_eq!(t.current(), 0);
    let full = t.try_acquire(5).expect("equal to max on an empty throttle");
    assert!(t.try_acquire(1).is_none());
    drop(full);
}

#[test]
fn would_wait_predicate_matches_ceph() {
    let t = Throttle::new(10);
    let _held = t.take(1);
    // c == max needs count == 0.
    assert!(t.try_acquire(10).is_none());
    // Oversize is admitted while not over the limit...
    let big = t.try_acquire(25).expect("oversize admission");
    assert_eq!(t.current(), 26);
    // ...but not once over it.
    assert!(t.try_acquire(30).is_none());
    drop(big);
    assert_eq!(t.current(), 1);
}

#[test]
fn oversize_on_empty_then_small_fails() {
    let t = Throttle::new(8);
    let big = t.try_acquire(16).expect("oversize on an empty throttle");
    assert!(t.try_acquire(1).is_none());
    let mut small = Probe::new(&t, 1);
    assert!(small.poll().is_none());
    drop(big);
    assert_eq!(small.woken(), 1);
    assert_eq!(small.poll().map(|p| p.amount()), Some(1));
}

#[test]
fn unlimited_never_waits_but_counts() {
    let t = Throttle::new(0);
    let a = t.try_acquire(u64::MAX / 2).expect("unlimited");
    let b = Probe::new(&t, 1 << 40).poll().expect("unlimited");
    assert_eq!(t.current(), u64::MAX / 2 + (1 << 40));
    drop((a, b));
    assert_eq!(t.current(), 0);
}

#[test]
fn fifo_large_waiter_blocks_later_small_one() {
    let t = Throttle::new(10);
    let half = t.take(5);
    let mut big = Probe::new(&t, 10);
    let mut small = Probe::new(&t, 1);
    assert!(big.poll().is_none());
    assert!(
        small.poll().is_none(),
        "1 fits but must queue behind the large waiter"
    );
    assert!(t.try_acquire(1).is_none(), "try fails while anyone waits");
    assert_eq!(t.waiters(), 2);
    drop(half);
    assert_eq!((big.woken(), small.woken()), (1, 0));
    let big_permit = big.poll().expect("granted");
    assert!(small.poll().is_none());
    assert_eq!(t.current(), 10);
    drop(big_permit);
    assert_eq!(small.woken(), 1);
    assert!(small.poll().is_some());
    assert_eq!(t.waiters(), 0);
}

#[test]
fn blocked_until_count_put_back() {
    let t = Throttle::new(10);
    let full = t.take(10);
    let mut w = Probe::new(&t, 7);
    assert!(w.poll().is_none());
    assert!(w.poll().is_none(), "re-polling keeps its place");
    assert_eq!(t.waiters(), 1);
    drop(full);
    assert!(w.poll().is_some());
}

#[test]
fn cancelled_waiter_leaves_queue_and_wakes_next() {
    let t = Throttle::new(10);
    let held = t.take(6);
    let mut big = Probe::new(&t, 10);
    let mut small = Probe::new(&t, 2);
    assert!(big.poll().is_none());
    assert!(small.poll().is_none());
    drop(big);
    assert_eq!(t.waiters(), 0);
    assert_eq!(
        small.woken(),
        1,
        "the next waiter is admitted when the head leaves"
    );
    assert_eq!(small.poll().map(|p| p.amount()), Some(2));
    assert_eq!(t.current(), 6);
    drop(held);
}

#[test]
fn granted_but_never_polled_gives_back_on_drop() {
    let t = Throttle::new(10);
    let held = t.take(10);
    let mut a = Probe::new(&t, 8);
    let mut b = Probe::new(&t, 5);
    assert!(a.poll().is_none());
    assert!(b.poll().is_none());
    drop(held);
    assert_eq!(t.current(), 8, "a was granted on release");
    drop(a);
    assert_eq!(t.current(), 5, "a's units went back and b was granted");
    assert_eq!(b.poll().map(|p| p.amount()), Some(5));
    assert_eq!(t.current(), 0);
}

#[test]
fn raising_max_admits_waiters() {
    let t = Throttle::new(10);
    let full = t.take(10);
    let mut w = Probe::new(&t, 7);
    assert!(w.poll().is_none());
    t.set_max(1000);
    assert_eq!(w.woken(), 1);
    assert!(w.poll().is_some());
    assert_eq!(t.max(), 1000);
    drop(full);
}

#[test]
fn lowering_max_makes_new_requests_wait_and_unlimited_frees_all() {
    let t = Throttle::new(100);
    let held = t.take(50);
    t.set_max(40);
    let mut w = Probe::new(&t, 1);
    assert!(w.poll().is_none(), "over the new limit");
    t.set_max(0);
    assert!(w.poll().is_some());
    drop(held);
    assert_eq!(t.current(), 0);
}

#[test]
fn release_more_than_held_is_an_error() {
    let t = Throttle::new(10);
    let p = t.take(3);
    assert_eq!(
        t.release(4),
        Err(ThrottleError::Underflow {
            held: 3,
            release: 4
        })
    );
    assert_eq!(t.current(), 3, "a failed release changes nothing");
    let n = p.into_raw();
    assert_eq!(t.current(), 3, "into_raw forgets without giving back");
    assert_eq!(t.release(n), Ok(0));
    assert_eq!(
        t.release(1).map_err(|e| e.to_string()).unwrap_err(),
        "throttle underflow: releasing 1 units while only 0 are held"
    );
}

#[test]
fn permit_merge_split_empty() {
    let t = Throttle::new(100);
    let mut a = t.take(10);
    a.merge(t.take(5));
    assert_eq!((a.amount(), t.current()), (15, 15));
    let b = a.split(4);
    assert_eq!((a.amount(), b.amount()), (11, 4));
    let c = a.split(1000);
    assert_eq!((a.amount(), c.amount()), (0, 11));
    drop((b, c));
    assert_eq!(t.current(), 0);
    let mut e = ThrottlePermit::empty();
    assert_eq!(e.amount(), 0);
    e.merge(t.take(7));
    assert_eq!(e.amount(), 7);
    drop(e);
    assert_eq!(t.current(), 0);
    drop(ThrottlePermit::default());
}

#[test]
#[should_panic(expected = "different throttles")]
fn merging_permits_of_different_throttles_panics() {
    let (t, u) = (Throttle::new(10), Throttle::new(10));
    let mut a = t.take(1);
    a.merge(u.take(1));
}

#[test]
fn try_merge_joins_one_throttle_and_hands_back_another() {
    let (t, u) = (Throttle::new(100), Throttle::new(100));
    let mut a = ThrottlePermit::empty();
    assert!(a.try_merge(t.take(3)).is_ok());
    assert!(a.try_merge(t.take(4)).is_ok());
    assert!(a.try_merge(ThrottlePermit::empty()).is_ok());
    let back = a
        .try_merge(u.take(9))
        .expect_err("another throttle's permit");
    assert_eq!((a.amount(), back.amount()), (7, 9));
    assert_eq!((t.current(), u.current()), (7, 9));
    drop((a, back));
    assert_eq!((t.current(), u.current()), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_acquirers_never_exceed_max_and_end_at_zero() {
    let t = Throttle::new(64);
    let peak = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for i in 0..16u64 {
        let (t, peak) = (t.clone(), peak.clone());
        tasks.push(tokio::spawn(async move {
            for j in 0..500u64 {
                let p = t.acquire(1 + (i * 7 + j) % 32).await;
                peak.fetch_max(t.current() as usize, Ordering::SeqCst);
                if j % 3 == 0 {
                    tokio::task::yield_now().await;
                }
                drop(p);
            }
        }));
    }
    for task in tasks {
        task.await.expect("task");
    }
    assert!(peak.load(Ordering::SeqCst) <= 64);
    assert_eq!((t.current(), t.waiters()), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn timeout_cancels_a_waiter() {
    let t = Throttle::new(1);
    let held = t.take(1);
    let r = tokio::time::timeout(std::time::Duration::from_secs(1), t.acquire(1)).await;
    assert!(r.is_err());
    assert_eq!(t.waiters(), 0);
    drop(held);
    assert_eq!(t.current(), 0);
}

#[derive(Clone, Debug)]
enum Op {
    Acquire(u64),
    TryAcquire(u64),
    Take(u64),
    DropPermit(usize),
    DropWaiter(usize),
    SetMax(u64),
}

fn op() -> impl proptest::strategy::Strategy<Value = Op> {
    use proptest::prelude::*;
    prop_oneof![
        4 => (0u64..40).prop_map(Op::Acquire),
        1 => (0u64..40).prop_map(Op::TryAcquire),
        1 => (0u64..40).prop_map(Op::Take),
        4 => any::<usize>().prop_map(Op::DropPermit),
        1 => any::<usize>().prop_map(Op::DropWaiter),
        1 => (0u64..50).prop_map(Op::SetMax),
    ]
}

proptest::proptest! {
    /// Model check: after every operation (and polling every waiter), the count equals what
    /// the live permits hold, waiters complete in arrival order, and nobody waits on an empty
    /// throttle.
    #[test]
    fn permits_account_exactly_and_waiters_are_fifo(max in 0u64..40, ops in proptest::collection::vec(op(), 1..120)) {
        let t = Throttle::new(max);
        let mut permits: Vec<ThrottlePermit> = Vec::new();
        let mut waiting: Vec<(u64, Probe)> = Vec::new();
        let mut next_id = 0u64;
        for op in ops {
            match op {
                Op::Acquire(n) => {
                    waiting.push((next_id, Probe::new(&t, n)));
                    next_id += 1;
                }
                Op::TryAcquire(n) => {
                    let had_waiters = t.waiters() > 0;
                    if let Some(p) = t.try_acquire(n) {
                        proptest::prop_assert!(!had_waiters);
                        permits.push(p);
                    }
                }
                Op::Take(n) => permits.push(t.take(n)),
                Op::DropPermit(i) if !permits.is_empty() => drop(permits.swap_remove(i % permits.len())),
                Op::DropWaiter(i) if !waiting.is_empty() => drop(waiting.remove(i % waiting.len())),
                Op::SetMax(m) => t.set_max(m),
                _ => {}
            }
            let mut done = Vec::new();
            waiting.retain_mut(|(id, probe)| match probe.poll() {
                Some(p) => {
                    permits.push(p);
                    done.push(*id);
                    false
                }
                None => true,
            });
            if let (Some(first_left), Some(last_done)) = (waiting.first(), done.last()) {
                proptest::prop_assert!(first_left.0 > *last_done, "a later waiter overtook an earlier one");
            }
            proptest::prop_assert_eq!(t.current(), permits.iter().map(ThrottlePermit::amount).sum::<u64>());
            proptest::prop_assert_eq!(t.waiters(), waiting.len());
            if t.current() == 0 {
                proptest::prop_assert_eq!(t.waiters(), 0);
            }
        }
        drop(waiting);
        drop(permits);
        proptest::prop_assert_eq!(t.current(), 0);
    }
}

/// A borrowed permit counts like an owned one: taken by `try_acquire_borrowed` under the
/// same predicate, given back on drop, and its units kept exactly when it is made owned or
/// `'static`, or made from an owned permit; a waiter is woken by its release.
#[test]
fn borrowed_permits_take_and_give_back_like_owned_ones() {
    let t = Throttle::new(10);
    let a = t.try_acquire_borrowed(6).expect("fits");
    assert_eq!((a.amount(), t.current()), (6, 6));
    assert!(t.try_acquire_borrowed(5).is_none(), "6 + 5 > 10");
    let mut waiter = Probe::new(&t, 5);
    assert!(waiter.poll().is_none());
    drop(a);
    assert_eq!(waiter.woken(), 1, "the release woke the waiter");
    let w = waiter.poll().expect("granted");
    assert_eq!(t.current(), 5);

    // Owned, static and converted permits keep their units until dropped.
    let b = t.try_acquire_borrowed(2).expect("fits");
    let owned: ThrottlePermit = b.into_owned();
    assert_eq!((owned.amount(), t.current()), (2, 7));
    let c = t.try_acquire_borrowed(3).expect("fits").into_static();
    assert_eq!((c.amount(), t.current()), (3, 10));
    drop(owned);
    assert_eq!(t.current(), 8);
    let from_owned = BorrowedPermit::from(w);
    assert_eq!((from_owned.amount(), t.current()), (5, 8));
    drop(from_owned);
    drop(c);
    assert_eq!(t.current(), 0);
}

/// A permit that gives back more than the throttle holds (its units were released by hand
/// meanwhile) leaves the count at zero, not wrapped, and the throttle usable, for both kinds
/// of permit (the give-back inlined into their drops, the underflow out of line).
#[test]
fn a_permit_giving_back_more_than_held_leaves_the_throttle_at_zero_and_usable() {
    let t = Throttle::new(10);
    let owned = t.try_acquire(8).expect("fits");
    assert_eq!(t.release(8), Ok(0));
    drop(owned);
    assert_eq!(t.current(), 0, "underflow: dropped to zero");
    let borrowed = t.try_acquire_borrowed(4).expect("fits");
    let kept = t.try_acquire(3).expect("fits");
    assert_eq!(t.release(6), Ok(1));
    drop(borrowed);
    assert_eq!(t.current(), 0, "4 back of 1 held: zero");
    drop(kept);
    assert_eq!(t.current(), 0, "3 back of 0 held: zero");
    let full = t.try_acquire(10).expect("usable after the underflows");
    assert_eq!(t.current(), 10);
    drop(full);
    assert_eq!(t.current(), 0);
}
