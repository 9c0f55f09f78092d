//! Moving a handshake machine's bytes: exact-length reads (nothing is read beyond the
//! handshake, so the stream decoder starts on a frame boundary), whole writes, and the
//! handshake hook between steps.

use bytes::BytesMut;
use msgr_dispatch::ConnId;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::config::PipeConfig;
use crate::error::PipeError;
use crate::hook::{HookAction, Side, Step};
use crate::v1::handshake::{Expect, Read};

/// Runs the waiting state `e` to the end of its step, reading exactly the bytes it asks for.
pub async fn drive<E: Expect, R: AsyncRead + Unpin + ?Sized>(
    r: &mut R,
    buf: &mut BytesMut,
    mut e: E,
) -> Result<E::Output, PipeError> {
    loop {
        match e.read(buf)? {
            Read::Done(out) => return Ok(out),
            Read::More(state, n) => {
                let at = buf.len();
                buf.resize(at + n, 0);
                r.read_exact(&mut buf[at..]).await?;
                e = state;
            }
        }
    }
}

/// Writes `buf` whole and flushes.
pub async fn write_all<W: AsyncWrite + Unpin + ?Sized>(
    w: &mut W,
    buf: &[u8],
) -> Result<(), PipeError> {
    w.write_all(buf).await?;
    w.flush().await?;
    Ok(())
}

/// Runs the configured hook for a step; `Fail` becomes [`PipeError::HookFailed`].
pub async fn hook(
    config: &PipeConfig,
    conn: ConnId,
    side: Side,
    step: Step,
) -> Result<(), PipeError> {
    tracing::trace!(conn, %side, ?step, "handshake step");
    if let Some(h) = &config.hook {
        if h.step(conn, side, step).await == HookAction::Fail {
            return Err(PipeError::HookFailed);
        }
    }
    Ok(())
}
