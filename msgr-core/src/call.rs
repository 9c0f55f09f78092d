//! Request/response over a [`Connection`]: [`Connection::call`] and the table of calls
//! waiting for their reply, matched by the header's `tid`.
//!
//! A call takes a transaction id (the message's own when it has one, else the next of the
//! messenger's counter), registers `(connection id, tid)`, sends, and waits for the first
//! message arriving on that connection with the same `tid`. That reply never reaches the
//! dispatchers: the messenger hands it to the caller straight from the connection's reader
//! (or from the loopback's send), holding its throttle permits as any [`Received`] does.
//!
//! The entry leaves the table when the reply comes, when the call times out, when the session
//! ends, or when the caller drops the future, so the table does not grow with calls that
//! ended. A reply arriving after its call ended matches nothing: it goes to the dispatchers
//! like any other message (Ceph's Objecter drops a reply whose tid it no longer knows; a
//! dispatcher may do the same), never to a later call.
//!
//! What it does not do: retry, or tell a reply from a request (the peer must copy the
//! request's `tid` into its reply, as Ceph's servers do with `MOSDOpReply` and the like).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use msgr_dispatch::ConnId;
use msgr_wire::Message;
use tokio::sync::oneshot;

use crate::connection::Connection;
use crate::dispatcher::Received;
use crate::error::SendError;
use crate::messenger::lock;

/// Why [`Connection::call`] returned no reply.
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

/// The calls of one messenger waiting for replies.
#[derive(Debug, Default)]
pub(crate) struct Calls {
    pending: Mutex<HashMap<(ConnId, u64), oneshot::Sender<Received>>>,
    /// `pending.len()`, read without the lock on every delivered message.
    count: AtomicUsize,
    next_tid: AtomicU64,
}

impl Calls {
    /// The reply channel of the call waiting for `tid` on `conn`, removed from the table.
    /// One atomic load when no call waits.
    pub(crate) fn take(&self, conn: ConnId, tid: u64) -> Option<oneshot::Sender<Received>> {
        if tid == 0 || self.count.load(Ordering::Acquire) == 0 {
            return None;
        }
        let mut pending = lock(&self.pending);
        let tx = pending.remove(&(conn, tid))?;
        self.count.store(pending.len(), Ordering::Release);
        Some(tx)
    }

    /// Calls waiting for a reply.
    pub(crate) fn len(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    /// Hands `r` to the call waiting for it, if any; gives it back otherwise (no call, or the
    /// call ended an instant ago).
    // Handed back to be dispatched, never stored: boxing would only allocate.
    #[allow(clippy::result_large_err)]
    pub(crate) fn complete(&self, conn: ConnId, r: Received) -> Result<(), Received> {
        match self.take(conn, r.msg.header.tid) {
            Some(tx) => tx.send(r),
            None => Err(r),
        }
    }

    fn register(self: &Arc<Self>, conn: ConnId, tid: u64) -> Result<Pending, CallError> {
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

    fn next_tid(&self) -> u64 {
        self.next_tid.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// A registered call; leaves the table when dropped.
struct Pending {
    calls: Arc<Calls>,
    key: (ConnId, u64),
    rx: oneshot::Receiver<Received>,
}

impl Drop for Pending {
    fn drop(&mut self) {
        let mut pending = lock(&self.calls.pending);
        pending.remove(&self.key);
        self.calls.count.store(pending.len(), Ordering::Release);
    }
}

impl Connection {
    /// Sends `msg` and waits at most `timeout` for the reply: the first message arriving on
    /// this connection whose header carries the request's `tid`. The request keeps a `tid`
    /// it already has (the caller's own numbering, as Ceph's Objecter has); a `tid` of 0 is
    /// replaced by the next of the messenger's counter. The reply does not go through the
    /// dispatchers.
    ///
    /// The send waits on backpressure as [`send`](Self::send) does, within the same
    /// `timeout`. Many calls may wait on one connection at once, answered in any order.
    /// Fails with [`CallError::Timeout`] when no reply came in time (a reply arriving later
    /// goes to the dispatchers as an ordinary message), [`CallError::Closed`] when the
    /// session ends first, [`CallError::DuplicateTid`] when another call on this connection
    /// waits for the same `tid`. Dropping the future forgets the call.
    ///
    /// ```no_run
    /// # async fn f(conn: msgr_core::Connection) -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// use msgr_core::Message;
    ///
    /// let reply = conn.call(Message::new(0x7001, "ping"), Duration::from_secs(5)).await?;
    /// println!("{} bytes back from {:?}", reply.msg.front.len(), reply.conn.peer_name());
    /// # Ok(()) }
    /// ```
    pub async fn call(&self, mut msg: Message, timeout: Duration) -> Result<Received, CallError> {
        if msg.header.tid == 0 {
            msg.header.tid = self.calls().next_tid();
        }
        let tid = msg.header.tid;
        let mut pending = self.calls().register(self.id(), tid)?;
        let exchange = async {
            self.send_request(msg).await?;
            tokio::select! {
                biased;
                r = &mut pending.rx => r.map_err(|_| CallError::Closed { tid }),
                () = self.closed() => Err(CallError::Closed { tid }),
            }
        };
        let out = match tokio::time::timeout(timeout, exchange).await {
            Ok(r) => r,
            Err(_) => Err(CallError::Timeout { tid, timeout }),
        };
        drop(pending);
        out
    }
}
