//! [`InjectStream`]: the transport wrapper that fails socket operations at random (Ceph's
//! `ms_inject_socket_failures`); compiled only with the `inject` feature. See [`super`].

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A transport whose read and write operations fail with probability `1/N`.
///
/// One roll is made per *operation*: when a `poll_read` / `poll_write` starts a new operation
/// (the previous one completed). Once a roll hits, the stream is broken for good: every later
/// read or write fails, as a socket after `shutdown(SHUT_RDWR)` would. `poll_flush` and
/// `poll_shutdown` are never failed by the roll (only after the break).
#[derive(Debug)]
pub struct InjectStream<S> {
    inner: S,
    rng: SmallRng,
    one_in: u32,
    broken: bool,
    read_armed: bool,
    write_armed: bool,
}

impl<S> InjectStream<S> {
    /// Wraps `inner`; `one_in == 0` disables injection.
    pub fn new(inner: S, one_in: u32, seed: u64) -> Self {
        Self {
            inner,
            rng: SmallRng::seed_from_u64(seed),
            one_in,
            broken: false,
            read_armed: false,
            write_armed: false,
        }
    }

    /// Whether an injected failure has broken this stream.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    fn roll(&mut self) -> bool {
        if self.broken {
            return true;
        }
        if self.one_in > 0 && self.rng.gen_range(0..self.one_in) == 0 {
            tracing::debug!("injecting socket failure");
            self.broken = true;
        }
        self.broken
    }

    /// One poll of a read or write operation: fails once broken; rolls when `poll` starts a
    /// new operation of kind `op` (and fails if the roll hits); otherwise runs `poll` on the
    /// inner stream, and ends the operation when it is ready.
    fn poll_op<T>(
        &mut self,
        op: Op,
        poll: impl FnOnce(Pin<&mut S>) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>>
    where
        S: Unpin,
    {
        if self.broken {
            return Poll::Ready(Err(injected()));
        }
        if !*self.armed(op) {
            if self.roll() {
                return Poll::Ready(Err(injected()));
            }
            *self.armed(op) = true;
        }
        let res = poll(Pin::new(&mut self.inner));
        if res.is_ready() {
            *self.armed(op) = false;
        }
        res
    }

    /// Whether an operation of kind `op` is under way (its roll already made).
    fn armed(&mut self, op: Op) -> &mut bool {
        match op {
            Op::Read => &mut self.read_armed,
            Op::Write => &mut self.write_armed,
        }
    }
}

/// The two kinds of operation, each with its own roll per operation.
#[derive(Clone, Copy, Debug)]
enum Op {
    Read,
    Write,
}

fn injected() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionAborted, "injected socket failure")
}

impl<S: AsyncRead + Unpin> AsyncRead for InjectStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.get_mut()
            .poll_op(Op::Read, |inner| inner.poll_read(cx, buf))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for InjectStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .poll_op(Op::Write, |inner| inner.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .poll_op(Op::Write, |inner| inner.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.broken {
            return Poll::Ready(Err(injected()));
        }
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn off_never_fails() {
        let (a, mut b) = tokio::io::duplex(64);
        let mut a = InjectStream::new(a, 0, 1);
        for _ in 0..1000 {
            a.write_all(b"x").await.unwrap();
            let mut one = [0u8; 1];
            b.read_exact(&mut one).await.unwrap();
        }
        assert!(!a.is_broken());
    }

    #[tokio::test]
    async fn fails_and_stays_failed() {
        let (a, _b) = tokio::io::duplex(1 << 16);
        let mut a = InjectStream::new(a, 3, 7);
        let mut n = 0;
        while a.write_all(b"x").await.is_ok() {
            n += 1;
            assert!(n < 10_000);
        }
        assert!(a.is_broken());
        assert!(a.write_all(b"x").await.is_err());
        let mut one = [0u8; 1];
        assert!(a.read(&mut one).await.is_err());
    }

    /// Operations (alternating writes and reads) that succeed before the injected failure, per
    /// seed: pins the seeded sequence of rolls.
    #[tokio::test]
    async fn seeded_failures_replay() {
        let mut survived = Vec::new();
        for seed in 0..16 {
            let (a, mut b) = tokio::io::duplex(1 << 16);
            let mut a = InjectStream::new(a, 4, seed);
            let mut n = 0u32;
            loop {
                if a.write_all(b"x").await.is_err() {
                    break;
                }
                n += 1;
                b.write_all(b"y").await.unwrap();
                let mut one = [0u8; 1];
                if a.read_exact(&mut one).await.is_err() {
                    break;
                }
                n += 1;
            }
            survived.push(n);
        }
        // Measured with the rolls written out in each poll method, before `poll_op`.
        assert_eq!(survived, [2, 0, 4, 3, 6, 10, 4, 4, 10, 0, 2, 1, 3, 2, 0, 3]);
    }
}
