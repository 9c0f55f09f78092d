//! An async counting limit with Ceph's `Throttle` semantics (spec §4.4).
//!
//! * A maximum of 0 means unlimited: nothing ever waits. Units are still counted, so
//!   [`Throttle::current`] is a true statistic and a later [`Throttle::set_max`] sees what is
//!   really outstanding; every permit holds exactly what it was asked for.
//! * Would-wait predicate for a request of `c` units (Ceph's `_should_wait`): false when
//!   `max == 0`; otherwise true when (`c <= max` and `count + c > max`) or (`c >= max` and
//!   `count > max`). A request larger than the maximum is therefore admitted whenever the
//!   throttle is not already over its limit, so it can never wait forever.
//! * Waiters are served strictly first come, first served: a request waits if it would wait
//!   *or anyone is already waiting*, so a small request never overtakes a blocked large one.
//! * [`Acquire`] is cancellation safe: dropping a waiting future removes it from the queue and
//!   lets the next waiter proceed; dropping a future that was granted but not yet polled gives
//!   its units back.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use crate::error::ThrottleError;

mod permit;

pub use permit::{BorrowedPermit, ThrottlePermit};

/// A cheap, cloneable handle to one counting limit shared by all its clones.
///
/// The count and maximum are atomics: taking units when nobody waits and giving units back
/// when nobody waits are a compare-and-swap each, without the lock. The lock guards the FIFO
/// of waiters; whoever queues a waiter re-checks the count after announcing it (`queued`), and
/// whoever gives units back checks `queued` after lowering the count, so no wake-up is lost.
#[derive(Clone)]
pub struct Throttle {
    inner: Arc<Shared>,
}

struct Shared {
    count: AtomicU64,
    max: AtomicU64,
    /// `waiters.len()`, published under the lock for the lock-free fast paths.
    queued: AtomicUsize,
    state: Mutex<State>,
}

struct Waiter {
    amount: u64,
    granted: Arc<AtomicBool>,
    waker: Waker,
}

struct State {
    waiters: VecDeque<Waiter>,
}

/// Ceph's `_should_wait` for a request of `c` units at `count` taken out of `max`.
fn would_wait(count: u64, max: u64, c: u64) -> bool {
    max != 0 && ((c <= max && count.saturating_add(c) > max) || (c >= max && count > max))
}

impl Shared {
    /// Adds `n` to the count if the predicate allows (ignores waiters).
    fn try_add(&self, n: u64) -> bool {
        let max = self.max.load(Ordering::SeqCst);
        let mut cur = self.count.load(Ordering::SeqCst);
        loop {
            if would_wait(cur, max, n) {
                return false;
            }
            match self.count.compare_exchange_weak(
                cur,
                cur.saturating_add(n),
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => return true,
                Err(actual) => cur = actual,
            }
        }
    }

    /// The lock-free path: nobody waits and the predicate allows.
    fn try_fast(&self, n: u64) -> bool {
        self.queued.load(Ordering::SeqCst) == 0 && self.try_add(n)
    }

    fn add(&self, n: u64) {
        let _ = self
            .count
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |c| {
                Some(c.saturating_add(n))
            });
    }

    fn sub_saturating(&self, n: u64) {
        let _ = self
            .count
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |c| {
                Some(c.saturating_sub(n))
            });
    }

    /// Admits waiters from the head while the head's predicate allows; returns their wakers.
    fn grant(&self, st: &mut State) -> Vec<Waker> {
        let mut woken = Vec::new();
        while let Some(head) = st.waiters.front() {
            if !self.try_add(head.amount) {
                break;
            }
            if let Some(w) = st.waiters.pop_front() {
                w.granted.store(true, Ordering::Release);
                woken.push(w.waker);
            }
        }
        self.queued.store(st.waiters.len(), Ordering::SeqCst);
        woken
    }

    /// Grants waiters if any are queued (after units came back or the maximum changed): the
    /// test inline, the grant out of line.
    #[inline]
    fn grant_if_queued(&self) {
        if self.queued.load(Ordering::SeqCst) != 0 {
            self.grant_queued();
        }
    }

    /// Grants the queued waiters what the count now allows, under the lock.
    #[inline(never)]
    fn grant_queued(&self) {
        let woken = {
            let mut st = self.lock();
            self.grant(&mut st)
        };
        wake_all(woken);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        crate::lock(&self.state)
    }
}

fn wake_all(wakers: Vec<Waker>) {
    for w in wakers {
        w.wake();
    }
}

impl Throttle {
    /// A throttle admitting up to `max` units at a time; 0 means unlimited.
    pub fn new(max: u64) -> Self {
        Throttle {
            inner: Arc::new(Shared {
                count: AtomicU64::new(0),
                max: AtomicU64::new(max),
                queued: AtomicUsize::new(0),
                state: Mutex::new(State {
                    waiters: VecDeque::new(),
                }),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.lock()
    }

    /// Waits, in FIFO order, until `n` units may be taken, then takes them. `acquire(0)` is
    /// Ceph's `wait()`: it waits (in line) until the count is within the maximum.
    ///
    /// The returned future is `Send + 'static` and cancellation safe (see the module docs).
    pub fn acquire(&self, n: u64) -> Acquire {
        Acquire {
            throttle: self.clone(),
            amount: n,
            granted: None,
            done: false,
        }
    }

    /// Takes `n` units if that needs no waiting and nobody is waiting; `None` otherwise.
    pub fn try_acquire(&self, n: u64) -> Option<ThrottlePermit> {
        self.inner
            .try_fast(n)
            .then(|| ThrottlePermit::new(self.clone(), n))
    }

    /// [`try_acquire`](Self::try_acquire) for a holder that gives the units back while it
    /// still borrows this handle: the permit holds no clone of it (no atomic reference count
    /// taken and dropped per permit).
    pub fn try_acquire_borrowed(&self, n: u64) -> Option<BorrowedPermit<'_>> {
        self.inner.try_fast(n).then(|| BorrowedPermit::new(self, n))
    }

    /// Takes `n` units unconditionally: never waits, may push the count above the maximum.
    pub fn take(&self, n: u64) -> ThrottlePermit {
        self.inner.add(n);
        ThrottlePermit::new(self.clone(), n)
    }

    /// Units currently taken.
    pub fn current(&self) -> u64 {
        self.inner.count.load(Ordering::SeqCst)
    }

    /// The current maximum (0 = unlimited).
    pub fn max(&self) -> u64 {
        self.inner.max.load(Ordering::SeqCst)
    }

    /// Number of [`Acquire`] futures currently waiting.
    pub fn waiters(&self) -> usize {
        self.lock().waiters.len()
    }

    /// Changes the maximum (0 = unlimited) and admits the waiters the new limit allows.
    pub fn set_max(&self, max: u64) {
        let woken = {
            let mut st = self.lock();
            self.inner.max.store(max, Ordering::SeqCst);
            self.inner.grant(&mut st)
        };
        wake_all(woken);
    }

    /// Gives back `n` units taken earlier and not held by a permit (see
    /// [`ThrottlePermit::into_raw`]); returns the new count.
    ///
    /// Releasing more than is held is [`ThrottleError::Underflow`] and changes nothing.
    pub fn release(&self, n: u64) -> Result<u64, ThrottleError> {
        let cur = self
            .sub(n)
            .map_err(|held| ThrottleError::Underflow { held, release: n })?;
        self.inner.grant_if_queued();
        Ok(cur - n)
    }

    /// Takes `n` off the count unless it holds less: the count before (`Err`: what it held,
    /// unchanged).
    #[inline(always)]
    fn sub(&self, n: u64) -> Result<u64, u64> {
        let mut cur = self.inner.count.load(Ordering::SeqCst);
        loop {
            if n > cur {
                return Err(cur);
            }
            match self.inner.count.compare_exchange_weak(
                cur,
                cur - n,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => return Ok(cur),
                Err(actual) => cur = actual,
            }
        }
    }

    /// A permit's units back: inlined into the permits' drops (every received message
    /// gives its dispatch bytes back), the underflow path out of line.
    #[inline]
    pub(crate) fn give_back(&self, n: u64) {
        if n == 0 {
            return;
        }
        match self.sub(n) {
            Ok(_) => self.inner.grant_if_queued(),
            Err(cur) => self.underflow(cur, n),
        }
    }

    /// A permit gave back more than the throttle holds (cold): logged, and the count
    /// dropped to zero rather than leaving the throttle stuck.
    #[cold]
    #[inline(never)]
    fn underflow(&self, held: u64, release: u64) {
        let e = ThrottleError::Underflow { held, release };
        tracing::error!(error = %e, "throttle permit released more than the throttle holds");
        let woken = {
            let mut st = self.lock();
            self.inner.count.store(0, Ordering::SeqCst);
            self.inner.grant(&mut st)
        };
        wake_all(woken);
    }

    pub(crate) fn same(&self, other: &Throttle) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl fmt::Debug for Throttle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Throttle")
            .field("current", &self.current())
            .field("max", &self.max())
            .field("waiters", &self.waiters())
            .finish()
    }
}

/// The future returned by [`Throttle::acquire`].
#[must_use = "futures do nothing unless polled"]
pub struct Acquire {
    throttle: Throttle,
    amount: u64,
    /// `Some` once queued; the flag turns true when the units were taken on our behalf.
    granted: Option<Arc<AtomicBool>>,
    /// The permit was handed out; nothing to undo on drop.
    done: bool,
}

impl Acquire {
    fn finish(&mut self) -> ThrottlePermit {
        self.done = true;
        self.granted = None;
        ThrottlePermit::new(self.throttle.clone(), self.amount)
    }
}

impl Future for Acquire {
    type Output = ThrottlePermit;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<ThrottlePermit> {
        let this = self.get_mut();
        if this.done {
            // Polled after completion: the units already went out with the first permit.
            return Poll::Ready(ThrottlePermit::empty());
        }
        let shared = &this.throttle.inner;
        if this.granted.is_none() && shared.try_fast(this.amount) {
            return Poll::Ready(this.finish());
        }
        let mut st = shared.lock();
        match &this.granted {
            None => {
                if st.waiters.is_empty() && shared.try_add(this.amount) {
                    drop(st);
                    return Poll::Ready(this.finish());
                }
                let flag = Arc::new(AtomicBool::new(false));
                st.waiters.push_back(Waiter {
                    amount: this.amount,
                    granted: flag.clone(),
                    waker: cx.waker().clone(),
                });
                // Announce the waiter, then re-check: units given back before the
                // announcement did not see it and granted nobody.
                shared.queued.store(st.waiters.len(), Ordering::SeqCst);
                let woken = shared.grant(&mut st);
                drop(st);
                let mine = flag.load(Ordering::Acquire);
                this.granted = Some(flag);
                // Our own waker may be among them: a spurious wake-up, harmless.
                wake_all(woken);
                if mine {
                    return Poll::Ready(this.finish());
                }
                Poll::Pending
            }
            Some(flag) => {
                if flag.load(Ordering::Acquire) {
                    drop(st);
                    return Poll::Ready(this.finish());
                }
                if let Some(w) = st
                    .waiters
                    .iter_mut()
                    .find(|w| Arc::ptr_eq(&w.granted, flag))
                {
                    if !w.waker.will_wake(cx.waker()) {
                        w.waker = cx.waker().clone();
                    }
                }
                Poll::Pending
            }
        }
    }
}

impl Drop for Acquire {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let Some(flag) = self.granted.take() else {
            return;
        };
        let shared = &self.throttle.inner;
        let woken = {
            let mut st = shared.lock();
            if flag.load(Ordering::Acquire) {
                // Granted but never returned: give the units back.
                shared.sub_saturating(self.amount);
            } else if let Some(pos) = st
                .waiters
                .iter()
                .position(|w| Arc::ptr_eq(&w.granted, &flag))
            {
                st.waiters.remove(pos);
            } else {
                return;
            }
            shared.grant(&mut st)
        };
        wake_all(woken);
    }
}

impl fmt::Debug for Acquire {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Acquire")
            .field("amount", &self.amount)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
