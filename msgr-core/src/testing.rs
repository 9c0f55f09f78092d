//! Test helpers shared by msgr-core's own tests and the tests crate (`msgr-tests`): the
//! checked stop, which shuts a messenger down and asserts what Ceph's test teardown asserts
//! and more. It drives no traffic and makes no messenger; not part of the stable API.

use std::time::Duration;

use crate::messenger::Messenger;

/// How long [`stop`] waits for [`Messenger::wait`].
pub const STOP_WAIT: Duration = Duration::from_secs(10);

/// Shuts `m` down, waits at most `limit` for [`Messenger::wait`], and checks it stopped
/// clean: an empty dispatch queue, every throttle back to 0, no task and no connection left.
/// The error names every check that failed.
pub async fn stop_checked(m: &Messenger, limit: Duration) -> Result<(), String> {
    m.shutdown();
    if tokio::time::timeout(limit, m.wait()).await.is_err() {
        return Err(format!(
            "{m:?}: wait() did not return within {limit:?} (tasks {})",
            m.stats().tasks
        ));
    }
    let mut errs = Vec::new();
    if m.dispatch_queue_len() != 0 {
        errs.push(format!("dispatch queue {}", m.dispatch_queue_len()));
    }
    for t in m.throttles() {
        if t.current != 0 {
            errs.push(format!("throttle {} at {}", t.name, t.current));
        }
    }
    let stats = m.stats();
    if stats.tasks != 0 {
        errs.push(format!("{} tasks left", stats.tasks));
    }
    if !stats.connections.is_empty() {
        errs.push(format!("{} connections left", stats.connections.len()));
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(format!("{m:?} after shutdown: {}", errs.join(", ")))
    }
}

/// [`stop_checked`] within [`STOP_WAIT`]; panics with its error.
pub async fn stop(m: &Messenger) {
    if let Err(e) = stop_checked(m, STOP_WAIT).await {
        panic!("{e}");
    }
}
