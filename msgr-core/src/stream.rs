//! Received messages as an async [`Stream`](futures_core::Stream): [`StreamDispatcher`] and
//! its [`Incoming`] end, an alternative to implementing [`Dispatcher`].
//!
//! The dispatcher puts each message it is given into a bounded channel. While the channel is
//! full, its `dispatch` waits, and with it the messenger's dispatch task: messages gather in
//! the dispatch queue, holding the dispatch throttle (`dispatch_throttle_bytes`), and once
//! that is full the connections' readers stop reading, so TCP pushes back on the peers.
//! A slow consumer therefore slows its peers down instead of growing memory.
//!
//! What it does not do: fast dispatch (every message goes through the dispatch queue, in
//! order per connection), connection events (a [`Dispatcher`] has them), or filtering: put a
//! dispatcher that handles some messages before it in the chain, and this one takes the rest.

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::sync::mpsc;

use crate::connection::Received;
use crate::dispatcher::{BoxFuture, Dispatched, Dispatcher};

/// A [`Dispatcher`] that hands every message to an [`Incoming`] stream, waiting while the
/// stream holds `capacity` unread messages.
///
/// ```no_run
/// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use msgr_core::{EntityName, Messenger, StreamDispatcher};
///
/// let (dispatcher, mut incoming) = StreamDispatcher::new(64);
/// let m = Messenger::builder(EntityName::osd(0))
///     .dispatcher(Arc::new(dispatcher))
///     .start()
///     .await?;
/// while let Some(r) = incoming.recv().await {
///     println!("type {} from {:?}", r.msg.header.ty, r.conn.peer_name());
/// }
/// # drop(m); Ok(()) }
/// ```
#[derive(Debug)]
pub struct StreamDispatcher {
    tx: mpsc::Sender<Received>,
}

impl StreamDispatcher {
    /// A dispatcher and its stream, which holds at most `capacity` unread messages (at least
    /// 1). The stream ends once the messenger has stopped ([`Messenger::wait`] drops its
    /// dispatchers) and every message before was read.
    ///
    /// [`Messenger::wait`]: crate::Messenger::wait
    pub fn new(capacity: usize) -> (StreamDispatcher, Incoming) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (StreamDispatcher { tx }, Incoming { rx })
    }
}

impl Dispatcher for StreamDispatcher {
    fn dispatch(&self, msg: Received) -> BoxFuture<'_, Dispatched> {
        Box::pin(async move {
            match self.tx.send(msg).await {
                Ok(()) => Dispatched::Handled,
                // The stream was dropped: later dispatchers may still want it.
                Err(mpsc::error::SendError(msg)) => Dispatched::Pass(msg),
            }
        })
    }
}

/// The messages a [`StreamDispatcher`] received, in dispatch order: `recv().await`, or
/// the [`Stream`](futures_core::Stream) trait (with `StreamExt` of `futures` or
/// `tokio-stream`). Dropping it makes the dispatcher pass messages on to the next in chain.
#[derive(Debug)]
pub struct Incoming {
    rx: mpsc::Receiver<Received>,
}

impl Incoming {
    /// The next message; `None` once the messenger has stopped and nothing is left.
    pub async fn recv(&mut self) -> Option<Received> {
        self.rx.recv().await
    }

    /// The next message if one is waiting now.
    pub fn try_recv(&mut self) -> Option<Received> {
        self.rx.try_recv().ok()
    }

    /// Messages received and not yet read (at most the capacity).
    pub fn len(&self) -> usize {
        self.rx.len()
    }

    /// Whether no message waits.
    pub fn is_empty(&self) -> bool {
        self.rx.is_empty()
    }
}

impl futures_core::Stream for Incoming {
    type Item = Received;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Received>> {
        self.rx.poll_recv(cx)
    }
}
