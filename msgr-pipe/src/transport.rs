//! Transports: anything `AsyncRead + AsyncWrite`; TCP with `TCP_NODELAY` in production.

use std::any::Any;
use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// A byte stream a session can run over.
pub trait Transport: AsyncRead + AsyncWrite + Send + Unpin + 'static {
    /// The transport itself if it is a [`TcpStream`] (whose halves need no shared lock, see
    /// [`split`]); otherwise it is handed back unchanged. Implemented for every transport.
    fn into_tcp(self: Box<Self>) -> Result<TcpStream, BoxTransport>;
}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Transport for T {
    fn into_tcp(self: Box<Self>) -> Result<TcpStream, BoxTransport> {
        let mut slot = Some(*self);
        let tcp = (&mut slot as &mut dyn Any)
            .downcast_mut::<Option<TcpStream>>()
            .and_then(Option::take);
        match (tcp, slot) {
            (Some(tcp), _) => Ok(tcp),
            (None, Some(other)) => Err(Box::new(other)),
            // The slot is emptied only by taking a `TcpStream` out of it.
            (None, None) => unreachable!("a transport vanished while being split"),
        }
    }
}

/// A boxed transport.
pub type BoxTransport = Box<dyn Transport>;

/// The half of a transport a session's reader task reads from.
pub(crate) type ReadSide = Box<dyn AsyncRead + Send + Unpin>;

/// The half of a transport a session's writer task writes to.
pub(crate) type WriteSide = Box<dyn AsyncWrite + Send + Unpin>;

/// Splits a transport into its read and write halves, for the reader and the writer task.
///
/// A TCP stream splits into tokio's owned halves, which read and write the socket
/// independently. Any other transport goes through [`tokio::io::split`], whose halves share
/// one lock held for each read and each write: on a socket that reads and writes at once
/// (a sender's messages out, their ACKs in) the two tasks then wait for each other, each
/// wait a `futex` sleep and wake-up (measured on a 64 B stream: a third of its `futex`
/// calls were that lock).
pub(crate) fn split(t: BoxTransport) -> (ReadSide, WriteSide) {
    match t.into_tcp() {
        Ok(tcp) => {
            let (r, w) = tcp.into_split();
            (Box::new(r), Box::new(TcpWrite(w)))
        }
        Err(other) => {
            let (r, w) = tokio::io::split(other);
            (Box::new(r), Box::new(w))
        }
    }
}

/// The write half of a TCP stream, whose vectored writes are `sendmsg` calls.
///
/// tokio's write half writes a slice list with `writev`, which on a socket goes through the
/// file layer first (the file position lock, the permission hook, the slice list's import
/// and `sock_write_iter`); `sendmsg` goes to the socket directly, as a single slice's `send`
/// does. On a depth-1 round trip of 4 KiB messages (each a three-slice write: head, data
/// segment, footer) `perf record` put that file-layer path at 0.8 µs of kernel time per round
/// trip beside raw TCP's `send`. `MSG_NOSIGNAL` makes a write to a closed peer an `EPIPE`
/// error, never a `SIGPIPE`, in a program that did not ignore the signal. Elsewhere than
/// Linux the slices go through tokio's `writev`.
struct TcpWrite(tokio::net::tcp::OwnedWriteHalf);

impl AsyncWrite for TcpWrite {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    #[cfg(target_os = "linux")]
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let tcp: &TcpStream = self.0.as_ref();
        loop {
            ready!(tcp.poll_write_ready(cx))?;
            // `try_io` clears the readiness on `WouldBlock`, so the next poll waits for it.
            match tcp.try_io(tokio::io::Interest::WRITABLE, || {
                let mut no_control = rustix::net::SendAncillaryBuffer::default();
                rustix::net::sendmsg(tcp, bufs, &mut no_control, rustix::net::SendFlags::NOSIGNAL)
                    .map_err(io::Error::from)
            }) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                res => return Poll::Ready(res),
            }
        }
    }

    #[cfg(not(target_os = "linux"))]
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// Connects over TCP and sets `TCP_NODELAY`.
pub async fn connect_tcp(addr: SocketAddr) -> io::Result<TcpStream> {
    let s = TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    Ok(s)
}

/// Most slices handed to one `write_vectored` call: Linux's `IOV_MAX` (a writer's batch of
/// 1,024 messages of 4 KiB is about 2,050 slices, so two or three calls).
const MAX_IOV: usize = 1024;

/// Chains of at most this many buffers (a round trip's message: head, data segment,
/// footer and ACK) list their slices in an array on the stack; longer ones in a vector
/// allocated at its final size. (An array of 128 slices, filled per write, cost 390
/// instructions per write on a depth-1 round trip's three-slice writes.)
const STACK_IOV: usize = 8;

/// Writes a chain of buffers with vectored writes, without copying them, resuming exactly
/// where a partial write stopped.
pub async fn write_chain<W: AsyncWrite + Unpin + ?Sized>(
    w: &mut W,
    chain: &mut VecDeque<Bytes>,
) -> io::Result<()> {
    std::future::poll_fn(|cx| poll_write_chain(Pin::new(&mut *w), cx, chain)).await
}

/// The poll behind [`write_chain`]: writes until `chain` is empty (`Ready(Ok)`), the writer
/// would block (`Pending`, what was written is gone from `chain`), or an error. Polled with a
/// no-op waker it is a non-blocking "write what the socket takes now".
pub fn poll_write_chain<W: AsyncWrite + ?Sized>(
    mut w: Pin<&mut W>,
    cx: &mut Context<'_>,
    chain: &mut VecDeque<Bytes>,
) -> Poll<io::Result<()>> {
    while !chain.is_empty() {
        // One buffer (a batch of small messages): a plain write, no slice list to build.
        let n = if let (1, [only]) = (chain.len(), chain.as_slices().0) {
            let n = ready!(w.as_mut().poll_write(cx, only))?;
            if n == 0 && !only.is_empty() {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            n
        } else {
            let nonempty = || chain.iter().filter(|b| !b.is_empty());
            let res = if chain.len() <= STACK_IOV {
                let mut iov = [IoSlice::new(&[]); STACK_IOV];
                let mut used = 0;
                for (slot, b) in iov.iter_mut().zip(nonempty()) {
                    *slot = IoSlice::new(b);
                    used += 1;
                }
                let slices = iov.get(..used).unwrap_or_default();
                poll_write_slices(w.as_mut(), cx, slices)
            } else {
                let mut iov = Vec::with_capacity(chain.len().min(MAX_IOV));
                iov.extend(nonempty().take(MAX_IOV).map(|b| IoSlice::new(b)));
                poll_write_slices(w.as_mut(), cx, &iov)
            };
            match ready!(res)? {
                Some(n) => n,
                None => {
                    chain.clear();
                    break;
                }
            }
        };
        advance(chain, n);
    }
    Poll::Ready(Ok(()))
}

/// One vectored write of `slices`: the bytes written, `None` if there was nothing to write.
fn poll_write_slices<W: AsyncWrite + ?Sized>(
    w: Pin<&mut W>,
    cx: &mut Context<'_>,
    slices: &[IoSlice<'_>],
) -> Poll<io::Result<Option<usize>>> {
    if slices.is_empty() {
        return Poll::Ready(Ok(None));
    }
    let n = ready!(w.poll_write_vectored(cx, slices))?;
    if n == 0 {
        return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
    }
    Poll::Ready(Ok(Some(n)))
}

fn advance(chain: &mut VecDeque<Bytes>, mut n: usize) {
    while n > 0 {
        let Some(front) = chain.front_mut() else {
            return;
        };
        if front.len() <= n {
            n -= front.len();
            chain.pop_front();
        } else {
            front.advance(n);
            n = 0;
        }
    }
    while chain.front().is_some_and(Bytes::is_empty) {
        chain.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn chain_survives_partial_writes() {
        let (mut a, mut b) = tokio::io::duplex(7);
        let mut chain: VecDeque<Bytes> = ["hello", "", " ", "world", "!"]
            .iter()
            .map(|s| Bytes::from_static(s.as_bytes()))
            .collect();
        let w = tokio::spawn(async move {
            write_chain(&mut a, &mut chain).await.unwrap();
        });
        let mut out = vec![0u8; 12];
        b.read_exact(&mut out).await.unwrap();
        w.await.unwrap();
        assert_eq!(&out, b"hello world!");
    }

    /// Chains longer than the stack's slice list, and longer than one call's `MAX_IOV`,
    /// go out whole and in order (the vector path, over several calls).
    #[tokio::test]
    async fn long_chains_are_written_whole_and_in_order() {
        for links in [STACK_IOV, STACK_IOV + 1, MAX_IOV + 100] {
            let (mut a, mut b) = tokio::io::duplex(4096);
            let mut chain: VecDeque<Bytes> = (0..links)
                .map(|i| {
                    let len = if i % 5 == 0 { 0 } else { 1 + i % 7 };
                    Bytes::from(vec![(i % 251) as u8; len])
                })
                .collect();
            let want: Vec<u8> = chain.iter().flat_map(|c| c.iter().copied()).collect();
            let total = want.len();
            let w = tokio::spawn(async move {
                write_chain(&mut a, &mut chain).await.unwrap();
                chain.len()
            });
            let mut out = vec![0u8; total];
            b.read_exact(&mut out).await.unwrap();
            assert_eq!(w.await.unwrap(), 0, "the chain is consumed");
            assert_eq!(out, want, "{links} links");
        }
    }

    /// A TCP stream's write half (`sendmsg` on Linux) writes long chains whole and in order
    /// through a real socket whose buffers fill: the writes stop part-way through slices
    /// (`WouldBlock`, then readiness) and resume exactly there; EOF follows the last byte
    /// when the half is dropped.
    #[tokio::test]
    async fn tcp_write_half_writes_chains_whole_through_full_socket_buffers() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (client, accepted) = tokio::join!(connect_tcp(addr), listener.accept());
        let (server, _) = accepted.unwrap();
        let (_r, mut w) = split(Box::new(client.unwrap()));
        // 3,000 slices of 1 to 4,000 bytes (about 6 MB): far more than the socket buffers
        // hold, in several `MAX_IOV`-long calls.
        let mut chain: VecDeque<Bytes> = (0..3000u32)
            .map(|i| Bytes::from(vec![(i % 251) as u8; 1 + (i as usize * 7919) % 4000]))
            .collect();
        let want: Vec<u8> = chain.iter().flat_map(|c| c.iter().copied()).collect();
        let writer = tokio::spawn(async move {
            write_chain(&mut w, &mut chain).await.unwrap();
            chain.len()
        });
        let mut server = server;
        let mut out = Vec::with_capacity(want.len());
        server.read_to_end(&mut out).await.unwrap();
        assert_eq!(writer.await.unwrap(), 0, "the chain is consumed");
        assert_eq!(out.len(), want.len());
        assert!(out == want, "bytes differ");
    }
}
