//! `ThrottlePermit`: units held from a throttle, given back on drop.

use std::borrow::Cow;
use std::fmt;

use super::Throttle;

/// Units taken from a [`Throttle`]; they are given back when the permit is dropped.
#[must_use = "dropping a permit gives its units back immediately"]
pub struct ThrottlePermit {
    throttle: Option<Throttle>,
    amount: u64,
}

impl ThrottlePermit {
    pub(crate) fn new(throttle: Throttle, amount: u64) -> Self {
        ThrottlePermit {
            throttle: Some(throttle),
            amount,
        }
    }

    /// A permit that holds nothing and belongs to no throttle (for zero-length messages).
    pub fn empty() -> Self {
        ThrottlePermit {
            throttle: None,
            amount: 0,
        }
    }

    /// Units held.
    pub fn amount(&self) -> u64 {
        self.amount
    }

    /// Adds `other`'s units to this permit.
    ///
    /// # Panics
    /// If both permits belong to different throttles (as tokio's `OwnedSemaphorePermit::merge`).
    /// An [`empty`](Self::empty) permit merges with anything.
    pub fn merge(&mut self, mut other: ThrottlePermit) {
        match (&self.throttle, other.throttle.take()) {
            (_, None) => {}
            (None, Some(t)) => self.throttle = Some(t),
            (Some(mine), Some(t)) => {
                if !mine.same(&t) {
                    other.throttle = Some(t);
                    panic!("ThrottlePermit::merge: permits from different throttles");
                }
            }
        }
        self.amount = self.amount.saturating_add(other.amount);
        other.amount = 0;
    }

    /// Adds `other`'s units to this permit if both belong to the same throttle (or either
    /// is [`empty`](Self::empty)); otherwise hands `other` back untouched.
    pub fn try_merge(&mut self, other: ThrottlePermit) -> Result<(), ThrottlePermit> {
        match (&self.throttle, &other.throttle) {
            (Some(mine), Some(theirs)) if !mine.same(theirs) => Err(other),
            _ => {
                self.merge(other);
                Ok(())
            }
        }
    }

    /// Moves `min(n, amount)` units into a new permit of the same throttle.
    pub fn split(&mut self, n: u64) -> ThrottlePermit {
        let n = n.min(self.amount);
        self.amount -= n;
        ThrottlePermit {
            throttle: self.throttle.clone(),
            amount: n,
        }
    }

    /// Forgets the permit without giving anything back and returns the units it held; the
    /// caller must later hand them to [`Throttle::release`].
    pub fn into_raw(mut self) -> u64 {
        std::mem::take(&mut self.amount)
    }
}

impl Drop for ThrottlePermit {
    fn drop(&mut self) {
        if let Some(t) = &self.throttle {
            t.give_back(self.amount);
        }
    }
}

impl Default for ThrottlePermit {
    fn default() -> Self {
        Self::empty()
    }
}

impl fmt::Debug for ThrottlePermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThrottlePermit")
            .field("amount", &self.amount)
            .finish()
    }
}

/// Units taken from a [`Throttle`] the holder borrows, given back when dropped: a
/// [`ThrottlePermit`] without the throttle handle's `Arc` clone and drop (two atomic
/// operations per permit). For a holder that takes and releases units within the borrow of
/// its throttle (a reader that fast-dispatches each message before reading the next); one
/// that keeps the units longer makes it a [`ThrottlePermit`] ([`into_owned`](Self::into_owned))
/// or a `'static` one ([`into_static`](Self::into_static)).
#[must_use = "dropping a permit gives its units back immediately"]
pub struct BorrowedPermit<'a> {
    /// `None` only once taken apart by `into_owned`.
    throttle: Option<Cow<'a, Throttle>>,
    amount: u64,
}

impl<'a> BorrowedPermit<'a> {
    pub(crate) fn new(throttle: &'a Throttle, amount: u64) -> Self {
        BorrowedPermit {
            throttle: Some(Cow::Borrowed(throttle)),
            amount,
        }
    }

    /// Units held.
    pub fn amount(&self) -> u64 {
        self.amount
    }

    /// The same units in a [`ThrottlePermit`] (clones the throttle's handle if borrowed).
    pub fn into_owned(mut self) -> ThrottlePermit {
        let amount = std::mem::take(&mut self.amount);
        match self.throttle.take() {
            Some(t) => ThrottlePermit::new(t.into_owned(), amount),
            None => ThrottlePermit::empty(),
        }
    }

    /// The same units, no longer borrowing (clones the throttle's handle if borrowed).
    pub fn into_static(mut self) -> BorrowedPermit<'static> {
        BorrowedPermit {
            amount: std::mem::take(&mut self.amount),
            throttle: self.throttle.take().map(|t| Cow::Owned(t.into_owned())),
        }
    }
}

impl From<ThrottlePermit> for BorrowedPermit<'static> {
    /// The same units, owning the permit's throttle handle.
    fn from(mut p: ThrottlePermit) -> Self {
        BorrowedPermit {
            amount: std::mem::take(&mut p.amount),
            throttle: p.throttle.take().map(Cow::Owned),
        }
    }
}

impl Drop for BorrowedPermit<'_> {
    fn drop(&mut self) {
        if let Some(t) = &self.throttle {
            t.give_back(self.amount);
        }
    }
}

impl fmt::Debug for BorrowedPermit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BorrowedPermit")
            .field("amount", &self.amount)
            .finish()
    }
}
