//! [`lock`]: the workspace's one way to take a `std::sync::Mutex`; [`add_unshared`]: its
//! one way to add to a counter that a single thread writes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `m`, going on past poisoning: a panic while the lock was held (a dispatcher's, say,
/// caught and turned into a socket fault) leaves data that every holder keeps consistent at
/// each step, so the next holder proceeds instead of spreading the panic.
pub fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Adds `n` to `c` (wrapping) with a load and a store, no locked read-modify-write: for a
/// counter written by one thread at a time, the writers ordered by something else (a lock,
/// or a single owner), and read by any. Each read sees a whole value. On a core that has
/// just stored a message, a `fetch_add` waits for the store buffer to drain; a reader's
/// per-message counters paid that for every message received.
pub fn add_unshared(c: &AtomicU64, n: u64) {
    c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    #[test]
    fn a_poisoned_lock_is_taken_with_its_data() {
        let m = Arc::new(Mutex::new(5));
        let m2 = m.clone();
        let _ = std::thread::spawn(move || {
            let _g = m2.lock();
            panic!("poison it");
        })
        .join();
        assert!(m.is_poisoned());
        assert_eq!(*super::lock(&m), 5);
    }

    #[test]
    fn an_unshared_add_wraps() {
        let c = std::sync::atomic::AtomicU64::new(u64::MAX - 1);
        super::add_unshared(&c, 3);
        assert_eq!(c.load(std::sync::atomic::Ordering::Relaxed), 1);
    }
}
