//! Reading and writing handshake structures with exact-length reads (nothing is read beyond
//! the handshake, so the stream decoder starts on a frame boundary).

use bytes::{BufMut, BytesMut};
use msgr_dispatch::ConnId;
use msgr_wire::{
    Connect, ConnectReply, Limits, Wire, WireError, CONNECT_LEN, CONNECT_REPLY_LEN, SEQ_LEN,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::config::PipeConfig;
use crate::error::PipeError;
use crate::hook::{HookAction, Side, Step};

/// Reads exactly `n` bytes.
pub async fn read_n<R: AsyncRead + Unpin + ?Sized>(
    r: &mut R,
    n: usize,
) -> Result<BytesMut, PipeError> {
    let mut buf = BytesMut::zeroed(n);
    r.read_exact(&mut buf).await?;
    Ok(buf)
}

fn check_auth_len(len: Option<u32>, limits: &Limits) -> Result<usize, PipeError> {
    let len = len.unwrap_or(0);
    if len > limits.max_authorizer {
        return Err(PipeError::Wire(WireError::TooLong {
            what: "authorizer",
            len: len.into(),
            limit: limits.max_authorizer.into(),
        }));
    }
    Ok(len as usize)
}

/// Reads a `ceph_msg_connect` and its authorizer (length bounded by `limits`).
pub async fn read_connect<R: AsyncRead + Unpin + ?Sized>(
    r: &mut R,
    limits: &Limits,
) -> Result<Connect, PipeError> {
    let mut b = read_n(r, CONNECT_LEN).await?;
    let len = check_auth_len(Connect::peek_authorizer_len(&b), limits)?;
    if len > 0 {
        let rest = read_n(r, len).await?;
        b.unsplit(rest);
    }
    Ok(Connect::decode_limited(&mut b, limits.max_authorizer)?)
}

/// Reads a `ceph_msg_connect_reply` and its authorizer reply (length bounded by `limits`).
pub async fn read_reply<R: AsyncRead + Unpin + ?Sized>(
    r: &mut R,
    limits: &Limits,
) -> Result<ConnectReply, PipeError> {
    let mut b = read_n(r, CONNECT_REPLY_LEN).await?;
    let len = check_auth_len(ConnectReply::peek_authorizer_len(&b), limits)?;
    if len > 0 {
        let rest = read_n(r, len).await?;
        b.unsplit(rest);
    }
    Ok(ConnectReply::decode_limited(&mut b, limits.max_authorizer)?)
}

/// Reads the raw le64 of the SEQ exchange.
pub async fn read_seq<R: AsyncRead + Unpin + ?Sized>(r: &mut R) -> Result<u64, PipeError> {
    let mut b = [0u8; SEQ_LEN];
    r.read_exact(&mut b).await?;
    Ok(u64::from_le_bytes(b))
}

/// Encodes `items` into one buffer and writes it.
pub async fn write_all<W: AsyncWrite + Unpin + ?Sized>(
    w: &mut W,
    buf: &[u8],
) -> Result<(), PipeError> {
    w.write_all(buf).await?;
    w.flush().await?;
    Ok(())
}

/// Appends a wire structure.
pub fn put<T: Wire>(buf: &mut BytesMut, item: &T) {
    item.encode(buf);
}

/// Appends a raw le64.
pub fn put_seq(buf: &mut BytesMut, v: u64) {
    buf.put_u64_le(v);
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
