//! [`Loopback`]: the state of a messenger's connection to itself.
//!
//! Messages a messenger sends to itself go through the dispatch queue's local delivery path,
//! in order, without a socket or a throttle. The loopback numbers them, stamps our current
//! name as their `src`, counts them (out and in alike), and hands each to its [`LocalHost`],
//! which gives it to a waiting call or queues it for the dispatchers. It is `Open` until the
//! messenger shuts down, then `Closed` for good.
//!
//! What it does not do: build the `Received` a dispatcher sees, or know the dispatch queue
//! (its [`LocalHost`] does, one layer up), or keep the messenger alive: it holds its host
//! weakly, and sends fail with [`SendError::Shutdown`] once the host is gone. It imports only
//! `error`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, Weak};

use msgr_dispatch::lock;
use msgr_pipe::{AppData, ConnState, SessionStats};
use msgr_wire::{CrcFlags, EntityAddr, EntityName, Message};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::error::SendError;

/// What the loopback needs of its messenger: our name and address now, and the delivery of
/// what it sends.
pub(crate) trait LocalHost: Send + Sync {
    /// Our entity name now (after any rename).
    fn name(&self) -> EntityName;
    /// Our address now.
    fn addr(&self) -> EntityAddr;
    /// Takes a sealed message sent on the loopback: to the call waiting for its tid when
    /// `replies`, else (or when no call waits) to the dispatch queue's local delivery.
    fn deliver_local(&self, msg: Message, replies: bool);
}

/// The loopback connection's state; `Connection`s of the loopback share one.
pub(crate) struct Loopback {
    /// Our name when the messenger was built: its type is the loopback's peer type.
    initial_name: EntityName,
    features: u64,
    host: Weak<dyn LocalHost>,
    out_seq: AtomicU64,
    bytes: AtomicU64,
    shut: AtomicBool,
    closed: CancellationToken,
    /// Open, then Closed at shutdown (the sender is dropped then, ending every watcher).
    state: Mutex<Option<watch::Sender<ConnState>>>,
    state_rx: watch::Receiver<ConnState>,
    /// The application's data of the loopback connection ([`Connection::app_data`]).
    ///
    /// [`Connection::app_data`]: crate::Connection::app_data
    app_data: AppData,
}

impl Loopback {
    /// The loopback of a messenger named `name` with `features`, delivering to `host`.
    pub(crate) fn new(name: EntityName, features: u64, host: Weak<dyn LocalHost>) -> Self {
        let (state, state_rx) = watch::channel(ConnState::Open);
        Loopback {
            initial_name: name,
            features,
            host,
            out_seq: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            shut: AtomicBool::new(false),
            closed: CancellationToken::new(),
            state: Mutex::new(Some(state)),
            state_rx,
            app_data: AppData::default(),
        }
    }

    /// The application's data of the loopback connection.
    pub(crate) fn app_data(&self) -> &AppData {
        &self.app_data
    }

    /// Our name when the messenger was built.
    pub(crate) fn initial_name(&self) -> EntityName {
        self.initial_name
    }

    /// Our name now (after any `Messenger::set_name`); the name at creation once the
    /// messenger is gone.
    pub(crate) fn name(&self) -> EntityName {
        self.host.upgrade().map_or(self.initial_name, |m| m.name())
    }

    /// Our address now; blank once the messenger is gone.
    pub(crate) fn addr(&self) -> EntityAddr {
        self.host.upgrade().map_or(EntityAddr::BLANK, |m| m.addr())
    }

    /// The messenger's supported features.
    pub(crate) fn features(&self) -> u64 {
        self.features
    }

    /// Whether the messenger shut down.
    pub(crate) fn is_closed(&self) -> bool {
        self.shut.load(Ordering::Acquire)
    }

    /// A watch of the loopback's state, the current one marked as seen.
    pub(crate) fn watch_state(&self) -> watch::Receiver<ConnState> {
        let mut rx = self.state_rx.clone();
        rx.mark_unchanged();
        rx
    }

    /// Resolves once the messenger shut down.
    pub(crate) async fn closed(&self) {
        self.closed.cancelled().await;
    }

    /// Ends the loopback: later sends fail.
    pub(crate) fn close(&self) {
        self.shut.store(true, Ordering::Release);
        let state = lock(&self.state).take();
        if let Some(tx) = state {
            tx.send_replace(ConnState::Closed);
        }
        self.closed.cancel();
    }

    /// Seals `msg` (the next seq, our name now, no CRC) and hands it to the host; see
    /// [`LocalHost::deliver_local`] for `replies`.
    pub(crate) fn send(&self, mut msg: Message, replies: bool) -> Result<(), SendError> {
        if self.is_closed() {
            return Err(SendError::Closed);
        }
        let host = self.host.upgrade().ok_or(SendError::Shutdown)?;
        let seq = self.out_seq.fetch_add(1, Ordering::Relaxed) + 1;
        msg.seal(seq, host.name(), CrcFlags::NONE);
        let size = msg.front.len() + msg.middle.len() + msg.data.len();
        self.bytes
            .fetch_add(u64::try_from(size).unwrap_or(u64::MAX), Ordering::Relaxed);
        host.deliver_local(msg, replies);
        Ok(())
    }

    /// Messages and bytes sent, counted in and out alike.
    pub(crate) fn stats(&self) -> SessionStats {
        let msgs = self.out_seq.load(Ordering::Relaxed);
        let bytes = self.bytes.load(Ordering::Relaxed);
        SessionStats {
            msgs_in: msgs,
            bytes_in: bytes,
            msgs_out: msgs,
            bytes_out: bytes,
            ..SessionStats::default()
        }
    }
}
