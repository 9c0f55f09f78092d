//! The [`Dispatcher`] trait, what it answers ([`Dispatched`]) and the chain of dispatchers.
//!
//! As Ceph's `Dispatcher`: a messenger hands each received message to its dispatchers in the
//! order they were added; each one handles it or passes it on. Fast dispatch runs in the
//! connection's reader task (keep it short, never block); normal dispatch runs on the
//! messenger's single dispatch task, so it is strictly sequential per messenger. Connection
//! events go to every dispatcher, in order, on the dispatch task.
//!
//! What it does not do: queue, order or throttle (the dispatch queue, whose handler is the
//! `queue` module, does), or define what is received (`connection` does: [`Received`]). It
//! imports only `connection`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::connection::{Connection, Received};

/// A boxed future, as returned by [`Dispatcher::dispatch`] (the trait stays object safe).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a dispatcher did with a message.
// Returned once per dispatch and moved, never stored: boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Dispatched {
    /// Handled: no later dispatcher sees it.
    Handled,
    /// Not for this dispatcher: the next one in the chain gets it.
    Pass(Received),
}

/// Receives messages and connection events from a [`Messenger`](crate::Messenger).
///
/// Only [`dispatch`](Dispatcher::dispatch) is required. Event handlers run on the dispatch
/// task: they may call back into the messenger or a connection (`mark_down` included) but
/// must not block for long.
pub trait Dispatcher: Send + Sync + 'static {
    /// Handles a message, or passes it on. Runs on the messenger's dispatch task; the next
    /// message is dispatched when the returned future completes.
    fn dispatch(&self, msg: Received) -> BoxFuture<'_, Dispatched>;

    /// Sees every message first, synchronously, before the fast-dispatch check (Ceph's
    /// `ms_fast_preprocess`): in the reader task for remote messages, on the local-delivery
    /// task for loopback ones. Default: nothing.
    fn fast_preprocess(&self, _msg: &Received) {}

    /// Whether [`fast_dispatch`](Dispatcher::fast_dispatch) takes this message. Default: no.
    fn can_fast_dispatch(&self, _msg: &Received) -> bool {
        false
    }

    /// Handles a message in the connection's reader task, bypassing the dispatch queue.
    /// Called only when [`can_fast_dispatch`](Dispatcher::can_fast_dispatch) said yes.
    /// Default: drops the message.
    fn fast_dispatch(&self, _msg: Received) {}

    /// An outgoing connection completed its handshake (Ceph `ms_handle_connect`).
    fn handle_connect(&self, _conn: &Connection) {}

    /// An incoming connection completed its handshake (Ceph `ms_handle_accept`).
    fn handle_accept(&self, _conn: &Connection) {}

    /// The connection failed and its session is gone (lossy fault, `mark_down(addr)`,
    /// `mark_down_all`) (Ceph `ms_handle_reset`).
    fn handle_reset(&self, _conn: &Connection) {}

    /// The peer reset the session: sequence numbers restart (Ceph `ms_handle_remote_reset`).
    fn handle_remote_reset(&self, _conn: &Connection) {}

    /// The peer refused the TCP connection (Ceph `ms_handle_refused`).
    fn handle_refused(&self, _conn: &Connection) {}
}

/// A connection event, as delivered to [`Dispatcher`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventKind {
    Connect,
    Accept,
    Reset,
    RemoteReset,
    Refused,
}

/// The messenger's dispatchers, in the order they were added.
#[derive(Clone, Default)]
pub(crate) struct Chain {
    dispatchers: Vec<Arc<dyn Dispatcher>>,
}

impl Chain {
    pub(crate) fn push(&mut self, d: Arc<dyn Dispatcher>) {
        self.dispatchers.push(d);
    }

    pub(crate) fn fast_preprocess(&self, msg: &Received) {
        for d in &self.dispatchers {
            d.fast_preprocess(msg);
        }
    }

    pub(crate) fn can_fast_dispatch(&self, msg: &Received) -> bool {
        self.dispatchers.iter().any(|d| d.can_fast_dispatch(msg))
    }

    /// The first dispatcher that fast-dispatches `msg`, if any: the caller hands it the
    /// message (a local it moves, which is not copied again, unlike a message passed on
    /// through [`Chain::try_fast_dispatch`]).
    #[inline(always)]
    pub(crate) fn fast_dispatcher(&self, msg: &Received) -> Option<&Arc<dyn Dispatcher>> {
        self.dispatchers.iter().find(|d| d.can_fast_dispatch(msg))
    }

    /// Fast-dispatches to the first dispatcher that takes the message.
    /// The first dispatcher that fast-dispatches `msg` takes it; `Err(msg)` if none does.
    // The message is handed back to be queued, never stored: boxing would only allocate.
    #[allow(clippy::result_large_err)]
    pub(crate) fn try_fast_dispatch(&self, msg: Received) -> Result<(), Received> {
        match self.dispatchers.iter().find(|d| d.can_fast_dispatch(&msg)) {
            Some(d) => {
                d.fast_dispatch(msg);
                Ok(())
            }
            None => Err(msg),
        }
    }

    pub(crate) fn fast_dispatch(&self, msg: Received) {
        match self.dispatchers.iter().find(|d| d.can_fast_dispatch(&msg)) {
            Some(d) => d.fast_dispatch(msg),
            None => tracing::debug!(?msg, "no dispatcher fast-dispatches message; dropped"),
        }
    }

    /// Offers the message to each dispatcher in turn until one handles it.
    pub(crate) async fn dispatch(&self, mut msg: Received) {
        for d in &self.dispatchers {
            match d.dispatch(msg).await {
                Dispatched::Handled => return,
                Dispatched::Pass(m) => msg = m,
            }
        }
        tracing::debug!(?msg, "no dispatcher handled message; dropped");
    }

    /// Delivers a connection event to every dispatcher.
    pub(crate) fn event(&self, conn: &Connection, kind: EventKind) {
        for d in &self.dispatchers {
            match kind {
                EventKind::Connect => d.handle_connect(conn),
                EventKind::Accept => d.handle_accept(conn),
                EventKind::Reset => d.handle_reset(conn),
                EventKind::RemoteReset => d.handle_remote_reset(conn),
                EventKind::Refused => d.handle_refused(conn),
            }
        }
    }
}
