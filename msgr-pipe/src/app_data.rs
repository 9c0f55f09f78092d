//! [`AppData`]: the application's own data of one session, Ceph's `Connection::set_priv` /
//! `get_priv` (an OSD keeps its client's `Session` there, a mon its `MonSession`).
//!
//! A server's dispatcher needs state per peer on every message (counts, the peer's session,
//! its capabilities). Kept in a map of its own, that state costs a lookup and a lock every
//! connection's reader shares: one cache line the readers on every core fight over per
//! message. Kept here, it is found in one load from the session the message arrived on, and
//! only that session's readers touch it.
//!
//! The slot is set once ([`AppData::get_or_init`]) and then read without a lock or a
//! reference count. What changes over the session's life is the value's own business: it
//! holds a `Mutex` or atomics inside. Ceph's dispatchers clear their `priv` on a reset to
//! break the reference cycle between a connection and the session object that names it; here
//! the value clears what it holds (a `Mutex<Option<..>>` taken in `handle_reset`), and the
//! value itself is dropped with the session's last handle.
//!
//! Not here: anything the messenger reads. msgr never looks inside the slot.

use std::any::Any;
use std::fmt;
use std::sync::OnceLock;

/// One session's slot for the application's data: empty until
/// [`get_or_init`](Self::get_or_init) fills it, then holding that value, of one type, until
/// the session's last handle is dropped.
#[derive(Default)]
pub struct AppData {
    slot: OnceLock<Box<dyn Any + Send + Sync>>,
}

impl AppData {
    /// The value, if the slot holds a `T`; `None` while it is empty or when it holds a value
    /// of another type.
    #[inline]
    pub fn get<T: Any + Send + Sync>(&self) -> Option<&T> {
        self.slot.get()?.downcast_ref()
    }

    /// The value, made by `init` if the slot is empty (once: callers racing on an empty slot
    /// wait for the one `init` that runs, and all get its value). `None` when the slot holds a
    /// value of another type, which is kept.
    #[inline]
    pub fn get_or_init<T: Any + Send + Sync>(&self, init: impl FnOnce() -> T) -> Option<&T> {
        self.slot
            .get_or_init(|| Box::new(init()) as Box<dyn Any + Send + Sync>)
            .downcast_ref()
    }

    /// Whether the slot holds a value (of any type).
    pub fn is_set(&self) -> bool {
        self.slot.get().is_some()
    }
}

impl fmt::Debug for AppData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The value's type is the application's; its contents may be secrets.
        f.debug_struct("AppData")
            .field("set", &self.is_set())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Barrier, Mutex};

    use super::*;

    #[test]
    fn empty_until_initialised_then_the_same_value() {
        let d = AppData::default();
        assert!(!d.is_set());
        assert_eq!(d.get::<u32>(), None);
        assert_eq!(d.get_or_init(|| 7u32), Some(&7));
        assert!(d.is_set());
        assert_eq!(d.get_or_init(|| 9u32), Some(&7), "set once");
        assert_eq!(d.get::<u32>(), Some(&7));
        assert_eq!(format!("{d:?}"), "AppData { set: true }");
    }

    #[test]
    fn another_type_is_refused_and_the_value_kept() {
        let d = AppData::default();
        d.get_or_init(|| String::from("osd session"));
        assert_eq!(d.get::<u64>(), None);
        let mut ran = false;
        assert_eq!(
            d.get_or_init(|| {
                ran = true;
                5u64
            }),
            None
        );
        assert!(!ran, "a slot that is set runs no init");
        assert_eq!(d.get::<String>().map(String::as_str), Some("osd session"));
    }

    /// Racing callers on an empty slot run one `init` and all see its value: the per-peer
    /// state a server makes on a peer's first message is made once even when two readers of
    /// the session (an old socket's and its replacement's) deliver at once.
    #[test]
    fn racing_initialisers_run_once() {
        let d = Arc::new(AppData::default());
        let inits = Arc::new(AtomicUsize::new(0));
        let start = Arc::new(Barrier::new(4));
        let threads: Vec<_> = (0..4)
            .map(|i| {
                let (d, inits, start) = (d.clone(), inits.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    let v = d.get_or_init(|| {
                        inits.fetch_add(1, Ordering::SeqCst);
                        Mutex::new(i)
                    });
                    v.map(|m| *msgr_dispatch::lock(m))
                })
            })
            .collect();
        let seen: Vec<_> = threads
            .into_iter()
            .map(|t| t.join().ok().flatten())
            .collect();
        assert_eq!(inits.load(Ordering::SeqCst), 1);
        assert!(
            seen.iter().all(|v| v.is_some() && *v == seen[0]),
            "{seen:?}"
        );
    }

    /// The value is dropped with the slot (the session's last handle).
    #[test]
    fn the_value_is_dropped_with_the_slot() {
        let held = Arc::new(());
        let d = AppData::default();
        d.get_or_init(|| held.clone());
        assert_eq!(Arc::strong_count(&held), 2);
        drop(d);
        assert_eq!(Arc::strong_count(&held), 1);
    }
}
