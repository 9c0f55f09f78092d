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
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use crate::error::ThrottleError;

mod permit;

pub use permit::ThrottlePermit;

/// A cheap, cloneable handle to one counting limit shared by all its clones.
#[derive(Clone)]
pub struct Throttle {
    inner: Arc<Mutex<State>>,
}

struct Waiter {
    amount: u64,
    granted: Arc<AtomicBool>,
    waker: Waker,
}

struct State {
    count: u64,
    max: u64,
    waiters: VecDeque<Waiter>,
}

impl State {
    fn would_wait(&self, c: u64) -> bool {
        let max = self.max;
        max != 0
            && ((c <= max && self.count.saturating_add(c) > max) || (c >= max && self.count > max))
    }

    /// Admits waiters from the head while the head's predicate allows; returns their wakers.
    fn grant(&mut self) -> Vec<Waker> {
        let mut woken = Vec::new();
        while let Some(head) = self.waiters.front() {
            if self.would_wait(head.amount) {
                break;
            }
            let amount = head.amount;
            if let Some(w) = self.waiters.pop_front() {
                self.count = self.count.saturating_add(amount);
                w.granted.store(true, Ordering::Release);
                woken.push(w.waker);
            }
        }
        woken
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
            inner: Arc::new(Mutex::new(State {
                count: 0,
                max,
                waiters: VecDeque::new(),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock only means another thread panicked while holding it; the counts
        // themselves are always left consistent, so keep going.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
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
        let mut st = self.lock();
        if !st.waiters.is_empty() || st.would_wait(n) {
            return None;
        }
        st.count = st.count.saturating_add(n);
        Some(ThrottlePermit::new(self.clone(), n))
    }

    /// Takes `n` units unconditionally: never waits, may push the count above the maximum.
    pub fn take(&self, n: u64) -> ThrottlePermit {
        let mut st = self.lock();
        st.count = st.count.saturating_add(n);
        ThrottlePermit::new(self.clone(), n)
    }

    /// Units currently taken.
    pub fn current(&self) -> u64 {
        self.lock().count
    }

    /// The current maximum (0 = unlimited).
    pub fn max(&self) -> u64 {
        self.lock().max
    }

    /// Number of [`Acquire`] futures currently waiting.
    pub fn waiters(&self) -> usize {
        self.lock().waiters.len()
    }

    /// Changes the maximum (0 = unlimited) and admits the waiters the new limit allows.
    pub fn set_max(&self, max: u64) {
        let woken = {
            let mut st = self.lock();
            st.max = max;
            st.grant()
        };
        wake_all(woken);
    }

    /// Gives back `n` units taken earlier and not held by a permit (see
    /// [`ThrottlePermit::into_raw`]); returns the new count.
    ///
    /// Releasing more than is held is [`ThrottleError::Underflow`] and changes nothing.
    pub fn release(&self, n: u64) -> Result<u64, ThrottleError> {
        let (count, woken) = {
            let mut st = self.lock();
            if n > st.count {
                return Err(ThrottleError::Underflow {
                    held: st.count,
                    release: n,
                });
            }
            st.count -= n;
            (st.count, st.grant())
        };
        wake_all(woken);
        Ok(count)
    }

    pub(crate) fn give_back(&self, n: u64) {
        if n == 0 {
            return;
        }
        if let Err(e) = self.release(n) {
            tracing::error!(error = %e, "throttle permit released more than the throttle holds");
            // Keep the throttle usable: drop to zero rather than leaving it stuck.
            let woken = {
                let mut st = self.lock();
                st.count = 0;
                st.grant()
            };
            wake_all(woken);
        }
    }

    pub(crate) fn same(&self, other: &Throttle) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl fmt::Debug for Throttle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.lock();
        f.debug_struct("Throttle")
            .field("current", &st.count)
            .field("max", &st.max)
            .field("waiters", &st.waiters.len())
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
        let mut st = this.throttle.lock();
        match &this.granted {
            None => {
                if st.waiters.is_empty() && !st.would_wait(this.amount) {
                    st.count = st.count.saturating_add(this.amount);
                    drop(st);
                    return Poll::Ready(this.finish());
                }
                let flag = Arc::new(AtomicBool::new(false));
                st.waiters.push_back(Waiter {
                    amount: this.amount,
                    granted: flag.clone(),
                    waker: cx.waker().clone(),
                });
                this.granted = Some(flag);
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
        let woken = {
            let mut st = self.throttle.lock();
            if flag.load(Ordering::Acquire) {
                // Granted but never returned: give the units back.
                st.count = st.count.saturating_sub(self.amount);
            } else if let Some(pos) = st
                .waiters
                .iter()
                .position(|w| Arc::ptr_eq(&w.granted, &flag))
            {
                st.waiters.remove(pos);
            } else {
                return;
            }
            st.grant()
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
