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
            (Box::new(r), Box::new(w))
        }
        Err(other) => {
            let (r, w) = tokio::io::split(other);
            (Box::new(r), Box::new(w))
        }
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
}
