//! The Accepter: binds the listening socket and hands each accepted stream to the pipe layer.
//!
//! As the seed's `Accepter` thread: one task per messenger accepts TCP connections, sets
//! `TCP_NODELAY`, and runs `Session::accept` for each in its own task. It stops when its
//! cancellation token fires (shutdown, or rebind). A connection-count limit ([`ConnLimit`])
//! closes streams accepted beyond it.
//!
//! What it does not do: the handshake (msgr-pipe's `Session::accept` does, with the host it
//! is given), or know the messenger: it gets the narrow [`AcceptContext`] (the sessions'
//! host as msgr-pipe's `Host`, the pipe settings, the task tracker, the shutdown token, the
//! span and the limit). It imports only `error`.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use msgr_dispatch::{lock, ConnId};
use msgr_pipe::{Host, PipeConfig, Session};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::error::CoreError;

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

/// The connection-count limit (`max_connections`): a permit per accepted session until it
/// ends. Shared by the accepters of one messenger (a rebind starts a new one, and the
/// sessions the old one accepted still count).
pub(crate) struct ConnLimit {
    permits: Arc<Semaphore>,
    /// Accepted sessions holding a permit.
    counted: Mutex<HashSet<ConnId>>,
}

impl ConnLimit {
    /// At most `max` accepted sessions at once.
    pub(crate) fn new(max: usize) -> Self {
        ConnLimit {
            permits: Arc::new(Semaphore::new(max)),
            counted: Mutex::new(HashSet::new()),
        }
    }

    /// A permit, if the limit allows one more connection now.
    fn try_acquire(&self) -> Option<OwnedSemaphorePermit> {
        Arc::clone(&self.permits).try_acquire_owned().ok()
    }

    /// Counts an accepted session; false if already counted.
    fn count(&self, s: &Session) -> bool {
        lock(&self.counted).insert(s.id())
    }

    /// Stops counting an ended session.
    fn uncount(&self, s: &Session) {
        lock(&self.counted).remove(&s.id());
    }
}

/// What the accept loop needs of its messenger.
pub(crate) struct AcceptContext {
    /// The sessions' host, handed to every accepted session.
    pub(crate) host: Arc<dyn Host>,
    /// The pipe settings of every session.
    pub(crate) pipe: Arc<PipeConfig>,
    /// The messenger's task tracker: the accept loop and each handshake run in it.
    pub(crate) tracker: TaskTracker,
    /// The messenger's shutdown: abandons the handshakes in progress.
    pub(crate) shutdown: CancellationToken,
    /// The messenger's span.
    pub(crate) span: tracing::Span,
    /// The connection-count limit, if any.
    pub(crate) limit: Option<Arc<ConnLimit>>,
    /// The listener speaks msgr2 (else msgr v1).
    pub(crate) v2: bool,
}

impl AcceptContext {
    /// Runs the acceptor handshake on an accepted stream; the session once open.
    async fn accept_stream(&self, stream: TcpStream, peer: SocketAddr) -> Option<Session> {
        let host = Arc::clone(&self.host);
        let pipe = Arc::clone(&self.pipe);
        let v2 = self.v2;
        let accept = async {
            if v2 {
                Session::accept_v2(host, stream, peer, pipe).await
            } else {
                Session::accept_shared(host, stream, peer, pipe).await
            }
        };
        tokio::select! {
            () = self.shutdown.cancelled() => None,
            r = accept => match r {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "accept failed");
                    None
                }
            },
        }
    }
}

/// A running accepter: stop it with [`Accepter::stop`].
pub(crate) struct Accepter {
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

impl Accepter {
    /// Starts accepting on `listener` in a task tracked by the messenger, until `cancel`.
    pub(crate) fn spawn(
        cx: AcceptContext,
        listener: TcpListener,
        cancel: CancellationToken,
    ) -> Accepter {
        let span = cx.span.clone();
        let tracker = cx.tracker.clone();
        let task = tracker.spawn(run(Arc::new(cx), listener, cancel.clone()).instrument(span));
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

async fn run(cx: Arc<AcceptContext>, listener: TcpListener, cancel: CancellationToken) {
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
        let permit = match &cx.limit {
            None => None,
            Some(limit) => match limit.try_acquire() {
                Some(p) => Some((p, Arc::clone(limit))),
                None => {
                    tracing::warn!(%peer, "connection limit reached; closing accepted socket");
                    continue;
                }
            },
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(%peer, error = %e, "cannot set TCP_NODELAY");
        }
        let accept = Arc::clone(&cx);
        let span = tracing::debug_span!("accept", %peer);
        cx.tracker.spawn(
            async move {
                let Some(session) = accept.accept_stream(stream, peer).await else {
                    return;
                };
                // The permit counts a session until it ends; a socket that joined a session
                // already counted (a reconnect) gives its permit back at once.
                if let Some((permit, limit)) = permit {
                    if limit.count(&session) {
                        session.closed().await;
                        limit.uncount(&session);
                    }
                    drop(permit);
                }
            }
            .instrument(span),
        );
    }
    tracing::debug!(?local, "accepter stopped");
}
