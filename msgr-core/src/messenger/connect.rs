//! [`Messenger::connect`]: a connection awaited until its session is open, or the typed
//! reason it did not open ([`ConnectError`]).
//!
//! It is [`Messenger::connect_lazy`] followed by a wait on two watches the session
//! publishes: its state ([`Connection::watch_state`]) and its failed handshake attempts
//! (`msgr_pipe::Session::handshake_failures`). The first failed attempt ends the wait, as
//! tokio's `TcpStream::connect` ends at the first error: the peer's refusal (BADPROTOVER,
//! FEATURES, BADAUTHORIZER, another entity at that address, not msgr v1) is
//! [`ConnectError::Refused`], a socket that did not connect or broke during the handshake
//! is [`ConnectError::Unreachable`], a session ended meanwhile is [`ConnectError::Closed`].
//! A lost connection race (WAIT) is not a failure: the peer's own connection opens the
//! session.
//!
//! What it does not do: set a deadline of its own (the handshake timeout, 10 s by default,
//! bounds each attempt once TCP connected; wrap the call in `tokio::time::timeout` for an
//! overall one), or retry: the session's policy does, and a session this call started is
//! marked down when the call fails, so nothing keeps dialling behind the caller's back. A
//! session that existed before the call is left as it is.
//!
//! It uses only the facade's public methods and the connection's watches.

use std::sync::Arc;

use msgr_pipe::{ConnState, HandshakeFailure, PipeError};
use msgr_wire::{EntityAddr, EntityType};

use super::Messenger;
use crate::connection::Connection;

/// Why [`Messenger::connect`] gave no open connection.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The peer answered the handshake with a refusal (`PipeError::is_refusal`): a protocol
    /// version or features it will not take, a refused authorizer, another address than the
    /// one dialled, or bytes that are not msgr v1.
    #[error("{addr} refused the session: {error}")]
    Refused {
        /// The address dialled.
        addr: EntityAddr,
        /// The peer's answer.
        error: Arc<PipeError>,
    },
    /// No session could be made: the TCP connection was refused or timed out, or the socket
    /// broke or stalled during the handshake.
    #[error("{addr} unreachable: {error}")]
    Unreachable {
        /// The address dialled.
        addr: EntityAddr,
        /// What failed.
        error: Arc<PipeError>,
    },
    /// The session ended before it opened (marked down, or a lossy session's fault).
    #[error("session to {addr} closed before it opened")]
    Closed {
        /// The address dialled.
        addr: EntityAddr,
    },
    /// The messenger is shut down.
    #[error("messenger is shut down")]
    Shutdown,
}

impl Messenger {
    /// The connection to `addr`, once its session is open: at once for an open session
    /// (outgoing or accepted), a session in standby (it was open and reconnects when a
    /// message is queued, as Ceph's does) or the loopback, else when the handshake completes. Fails with
    /// the reason of the first failed attempt ([`ConnectError`]); the session of a failed
    /// call is marked down if this call started it. See the `connect` module docs.
    ///
    /// [`connect_lazy`](Self::connect_lazy) returns without waiting.
    ///
    /// ```no_run
    /// # async fn f(m: msgr_core::Messenger, addr: msgr_core::EntityAddr) {
    /// use msgr_core::{ConnectError, EntityType};
    ///
    /// match m.connect(addr, EntityType::OSD).await {
    ///     Ok(conn) => println!("open, features {:#x}", conn.features()),
    ///     Err(ConnectError::Refused { error, .. }) => eprintln!("refused: {error}"),
    ///     Err(e) => eprintln!("{e}"),
    /// }
    /// # }
    /// ```
    pub async fn connect(
        &self,
        addr: EntityAddr,
        peer_type: EntityType,
    ) -> Result<Connection, ConnectError> {
        let existed = self.connection(&addr).is_some();
        // `connect_lazy` fails only once the messenger is shut down.
        let conn = self
            .connect_lazy(addr, peer_type)
            .map_err(|_| ConnectError::Shutdown)?;
        let Some(session) = conn.session() else {
            return Ok(conn); // the loopback
        };
        let mut state = conn.watch_state();
        let mut failures = session.handshake_failures();
        // Attempts failed before this call (of a session that existed) say nothing of the
        // next one; a session of ours may have failed before we subscribed.
        let before = match existed {
            true => failures.borrow().as_ref().map_or(0, |f| f.failures),
            false => 0,
        };
        let mut failures_open = true;
        let outcome = loop {
            if matches!(
                *state.borrow_and_update(),
                ConnState::Open | ConnState::Standby
            ) {
                break Ok(());
            }
            let failure = failures
                .borrow_and_update()
                .clone()
                .filter(|f| f.failures > before);
            if let Some(e) = failure.and_then(|f| classify(addr, &f)) {
                break Err(e);
            }
            if *state.borrow() == ConnState::Closed {
                break Err(ConnectError::Closed { addr });
            }
            tokio::select! {
                r = state.changed() => {
                    if r.is_err() && *state.borrow() != ConnState::Closed {
                        break Err(ConnectError::Closed { addr });
                    }
                }
                r = failures.changed(), if failures_open => {
                    // Err: the session is gone; its state says how.
                    failures_open = r.is_ok();
                }
            }
        };
        match outcome {
            Ok(()) => Ok(conn),
            Err(e) => {
                if !existed {
                    conn.mark_down();
                }
                Err(if self.is_shutdown() {
                    ConnectError::Shutdown
                } else {
                    e
                })
            }
        }
    }
}

/// The error a failed attempt ends [`Messenger::connect`] with; `None` for a lost race.
fn classify(addr: EntityAddr, f: &HandshakeFailure) -> Option<ConnectError> {
    let error = Arc::clone(&f.error);
    if matches!(*error, PipeError::RaceLost) {
        None
    } else if error.is_refusal() {
        Some(ConnectError::Refused { addr, error })
    } else {
        Some(ConnectError::Unreachable { addr, error })
    }
}
