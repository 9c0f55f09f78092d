//! The Accepter: binds the listening socket and hands each accepted stream to the pipe layer.
//!
//! As the seed's `Accepter` thread: one task per messenger accepts TCP connections, sets
//! `TCP_NODELAY`, and runs `Session::accept` for each in its own task. It stops when its
//! cancellation token fires (shutdown, or rebind). A connection-count limit closes streams
//! accepted beyond it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::error::CoreError;
use crate::messenger::Inner;

/// listen(2) backlog, Ceph's `ms_tcp_listen_backlog`.
const LISTEN_BACKLOG: u32 = 512;
/// Pause after a failed accept(2) (EMFILE, ENFILE, ...), so the loop does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(20);
/// Kernel-chosen ports tried before giving up when they all fall into the avoid set.
const KERNEL_PORT_TRIES: usize = 64;

/// Binds a listening socket on `addr`.
///
/// A non-zero port outside `avoid` is bound as is. Port 0 searches `min..=max` skipping
/// `avoid`, or lets the kernel choose (holding each rejected socket open, so the kernel cannot
/// hand the same port back) when the range is `0..=0`.
pub(crate) fn bind(
    addr: SocketAddr,
    min: u16,
    max: u16,
    avoid: &[u16],
) -> Result<TcpListener, CoreError> {
    if addr.port() != 0 && !avoid.contains(&addr.port()) {
        return listen(addr);
    }
    if min == 0 {
        let mut held = Vec::new();
        for _ in 0..KERNEL_PORT_TRIES {
            let l = listen(SocketAddr::new(addr.ip(), 0))?;
            let port = l.local_addr().map(|a| a.port()).unwrap_or(0);
            if port != 0 && !avoid.contains(&port) {
                return Ok(l);
            }
            held.push(l);
        }
        return Err(CoreError::NoFreePort { min, max });
    }
    for port in min..=max {
        if avoid.contains(&port) {
            continue;
        }
        if let Ok(l) = listen(SocketAddr::new(addr.ip(), port)) {
            return Ok(l);
        }
    }
    Err(CoreError::NoFreePort { min, max })
}

fn listen(addr: SocketAddr) -> Result<TcpListener, CoreError> {
    let err = |source| CoreError::Bind { addr, source };
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(err)?;
    socket.set_reuseaddr(true).map_err(err)?;
    socket.bind(addr).map_err(err)?;
    socket.listen(LISTEN_BACKLOG).map_err(err)
}

/// A running accepter: stop it with [`Accepter::stop`].
pub(crate) struct Accepter {
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

impl Accepter {
    /// Starts accepting on `listener` in a task tracked by the messenger.
    pub(crate) fn spawn(
        inner: &Arc<Inner>,
        listener: TcpListener,
        cancel: CancellationToken,
        limit: Option<Arc<Semaphore>>,
    ) -> Accepter {
        let task = inner.tracker.spawn(
            run(Arc::clone(inner), listener, cancel.clone(), limit).instrument(inner.span.clone()),
        );
        Accepter { cancel, task }
    }

    /// Stops accepting and waits until the listening socket is closed.
    pub(crate) async fn stop(self) {
        self.cancel.cancel();
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "accepter task failed");
        }
    }
}

async fn run(
    inner: Arc<Inner>,
    listener: TcpListener,
    cancel: CancellationToken,
    limit: Option<Arc<Semaphore>>,
) {
    let local = listener.local_addr().ok();
    tracing::debug!(?local, "accepter started");
    loop {
        let (stream, peer) = tokio::select! {
            () = cancel.cancelled() => break,
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(e) => {
                    // EMFILE and friends: report, pause briefly so as not to spin, go on.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::select! {
                        () = cancel.cancelled() => break,
                        () = tokio::time::sleep(ACCEPT_ERROR_PAUSE) => continue,
                    }
                }
            },
        };
        let permit = match &limit {
            None => None,
            Some(sem) => match Arc::clone(sem).try_acquire_owned() {
                Ok(p) => Some(p),
                Err(_) => {
                    tracing::warn!(%peer, "connection limit reached; closing accepted socket");
                    continue;
                }
            },
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(%peer, error = %e, "cannot set TCP_NODELAY");
        }
        let host = Arc::clone(&inner);
        let span = tracing::debug_span!("accept", %peer);
        inner.tracker.spawn(
            async move {
                let Some(session) = host.accept_stream(stream, peer).await else {
                    return;
                };
                // The permit counts a session until it ends; a socket that joined a session
                // already counted (a reconnect) gives its permit back at once.
                if permit.is_some() && host.count_session(&session) {
                    session.closed().await;
                    host.uncount_session(&session);
                }
                drop(permit);
            }
            .instrument(span),
        );
    }
    tracing::debug!(?local, "accepter stopped");
}
