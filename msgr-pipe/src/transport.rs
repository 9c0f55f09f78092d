//! Transports: anything `AsyncRead + AsyncWrite`; TCP with `TCP_NODELAY` in production.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// A byte stream a session can run over.
pub trait Transport: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Transport for T {}

/// A boxed transport.
pub type BoxTransport = Box<dyn Transport>;

/// Connects over TCP and sets `TCP_NODELAY`.
pub async fn connect_tcp(addr: SocketAddr) -> io::Result<TcpStream> {
    let s = TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    Ok(s)
}

/// Most slices handed to one `write_vectored` call.
const MAX_IOV: usize = 512;

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
            let slices: Vec<IoSlice<'_>> = chain
                .iter()
                .filter(|b| !b.is_empty())
                .take(MAX_IOV)
                .map(|b| IoSlice::new(b))
                .collect();
            if slices.is_empty() {
                chain.clear();
                break;
            }
            let n = ready!(w.as_mut().poll_write_vectored(cx, &slices))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            n
        };
        advance(chain, n);
    }
    Poll::Ready(Ok(()))
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
}
