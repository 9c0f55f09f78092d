//! [`lock`]: the workspace's one way to take a `std::sync::Mutex`.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `m`, going on past poisoning: a panic while the lock was held (a dispatcher's, say,
/// caught and turned into a socket fault) leaves data that every holder keeps consistent at
/// each step, so the next holder proceeds instead of spreading the panic.
pub fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
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
}
