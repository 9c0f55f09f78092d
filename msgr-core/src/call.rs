//! Request/response by `tid`: the table of calls waiting for their reply, and [`CallError`].
//!
//! A call ([`Connection::call`](crate::Connection::call), in the `connection` module) takes a
//! transaction id (the message's own when it has one, else the next of the messenger's
//! counter), registers `(connection id, tid)` here, sends, and waits for the first message
//! arriving on that connection with the same `tid`. That reply never reaches the dispatchers:
//! the sessions' host hands it to the caller straight from the connection's reader (or from
//! the loopback's send), holding its throttle permits as any `Received` does.
//!
//! The entry leaves the table when the reply comes, when the call times out, when the session
//! ends, or when the caller drops the future, so the table does not grow with calls that
//! ended. A reply arriving after its call ended matches nothing: it goes to the dispatchers
//! like any other message (Ceph's Objecter drops a reply whose tid it no longer knows; a
//! dispatcher may do the same), never to a later call.
//!
//! The table is generic over the reply it carries (the crate uses `Received`), so that it
//! imports no other module but `error`: connections hold it, and what they receive holds
//! connections.
//!
//! What it does not do: send, retry, or tell a reply from a request (the peer must copy the
//! request's `tid` into its reply, as Ceph's servers do with `MOSDOpReply` and the like).

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use msgr_dispatch::{lock, ConnId};
use tokio::sync::oneshot;

use crate::error::SendError;

/// Why [`Connection::call`](crate::Connection::call) returned no reply.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// The request was not queued.
    #[error("request not sent: {0}")]
    Send(#[from] SendError),
    /// No reply with the request's tid within the timeout.
    #[error("no reply to tid {tid} within {timeout:?}")]
    Timeout {
        /// The request's tid.
        tid: u64,
        /// The timeout given.
        timeout: Duration,
    },
    /// The session ended before the reply came (marked down, a lossy fault, shutdown).
    #[error("connection closed before the reply to tid {tid}")]
    Closed {
        /// The request's tid.
        tid: u64,
    },
    /// Another call on this connection waits for a reply with the same tid.
    #[error("tid {tid} is already awaited on this connection")]
    DuplicateTid {
        /// The tid given in the request's header.
        tid: u64,
    },
}

/// The calls of one messenger waiting for replies of type `R`.
pub(crate) struct Calls<R> {
    pending: Mutex<HashMap<(ConnId, u64), oneshot::Sender<R>>>,
    /// `pending.len()`, read without the lock on every delivered message.
    count: AtomicUsize,
    next_tid: AtomicU64,
}

impl<R> Default for Calls<R> {
    fn default() -> Self {
        Calls {
            pending: Mutex::new(HashMap::new()),
            count: AtomicUsize::new(0),
            next_tid: AtomicU64::new(0),
        }
    }
}

impl<R> fmt::Debug for Calls<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Calls")
            .field("pending", &self.len())
            .finish_non_exhaustive()
    }
}

impl<R> Calls<R> {
    /// The reply channel of the call waiting for `tid` on `conn`, removed from the table.
    /// One atomic load when no call waits; inlined into every delivery, which asks first
    /// (the call itself cost 19 instructions per message).
    #[inline]
    pub(crate) fn take(&self, conn: ConnId, tid: u64) -> Option<oneshot::Sender<R>> {
        if tid == 0 || self.count.load(Ordering::Acquire) == 0 {
            return None;
        }
        self.take_waiting(conn, tid)
    }

    /// [`take`](Self::take) when some call waits: the table is searched under its lock.
    #[inline(never)]
    fn take_waiting(&self, conn: ConnId, tid: u64) -> Option<oneshot::Sender<R>> {
        let mut pending = lock(&self.pending);
        let tx = pending.remove(&(conn, tid))?;
        self.count.store(pending.len(), Ordering::Release);
        Some(tx)
    }

    /// Calls waiting for a reply.
    pub(crate) fn len(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    /// Hands `r`, a message with `tid` that arrived on `conn`, to the call waiting for it,
    /// if any; gives it back otherwise (no call, or the call ended an instant ago).
    pub(crate) fn complete(&self, conn: ConnId, tid: u64, r: R) -> Result<(), R> {
        match self.take(conn, tid) {
            Some(tx) => tx.send(r),
            None => Err(r),
        }
    }

    /// Registers a call waiting for `tid` on `conn`; it leaves the table when the returned
    /// [`Pending`] is dropped.
    pub(crate) fn register(
        self: &Arc<Self>,
        conn: ConnId,
        tid: u64,
    ) -> Result<Pending<R>, CallError> {
        let (tx, rx) = oneshot::channel();
        let mut pending = lock(&self.pending);
        if pending.contains_key(&(conn, tid)) {
            return Err(CallError::DuplicateTid { tid });
        }
        pending.insert((conn, tid), tx);
        self.count.store(pending.len(), Ordering::Release);
        Ok(Pending {
            calls: Arc::clone(self),
            key: (conn, tid),
            rx,
        })
    }

    /// The next tid of the messenger's counter: 1, 2, 3, …
    pub(crate) fn next_tid(&self) -> u64 {
        self.next_tid.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// A registered call; leaves the table when dropped.
pub(crate) struct Pending<R> {
    calls: Arc<Calls<R>>,
    key: (ConnId, u64),
    /// Receives the reply; fails if the reply's sender was dropped.
    pub(crate) rx: oneshot::Receiver<R>,
}

impl<R> Drop for Pending<R> {
    fn drop(&mut self) {
        let mut pending = lock(&self.calls.pending);
        pending.remove(&self.key);
        self.calls.count.store(pending.len(), Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_reaches_its_call_once_and_the_table_empties() {
        let calls: Arc<Calls<&'static str>> = Arc::default();
        let tid = calls.next_tid();
        assert_eq!(tid, 1);
        let mut p = calls.register(7, tid).expect("first registration");
        assert!(matches!(
            calls.register(7, tid),
            Err(CallError::DuplicateTid { tid: 1 })
        ));
        assert_eq!(calls.len(), 1);
        assert_eq!(calls.complete(8, tid, "other conn"), Err("other conn"));
        assert_eq!(calls.complete(7, tid, "reply"), Ok(()));
        assert_eq!(calls.len(), 0);
        assert_eq!(p.rx.try_recv(), Ok("reply"));
        assert_eq!(
            calls.complete(7, tid, "late"),
            Err("late"),
            "no later call gets it"
        );
    }

    #[test]
    fn dropping_the_call_leaves_the_table() {
        let calls: Arc<Calls<u8>> = Arc::default();
        let p = calls.register(1, 42).expect("registered");
        assert_eq!(calls.len(), 1);
        drop(p);
        assert_eq!(calls.len(), 0);
        assert_eq!(calls.complete(1, 42, 9), Err(9));
    }
}
