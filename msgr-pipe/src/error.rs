//! Errors of the pipe: why a socket or a handshake failed, and why a send was refused.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use msgr_wire::{EntityAddr, WireError};

/// Why a socket (handshake or stream) failed. Every variant ends that one socket only; what
/// happens to the session is decided by its policy (spec §6.5).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PipeError {
    /// The transport failed (includes injected failures and EOF).
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
    /// The peer sent bytes that do not decode.
    #[error("protocol error: {0}")]
    Wire(#[from] WireError),
    /// The acceptor's advertised address is not the one we dialled.
    #[error("peer address {got} does not match the dialled address {expected}")]
    AddrMismatch {
        /// What we dialled.
        expected: EntityAddr,
        /// What the acceptor says it is.
        got: EntityAddr,
    },
    /// The peer requires features we lack, or lacks features we require.
    #[error("missing required features {missing:#x}")]
    MissingFeatures {
        /// The missing bits.
        missing: u64,
    },
    /// Protocol version mismatch.
    #[error("protocol version mismatch: ours {ours}, peer {peer}")]
    BadProtoVer {
        /// Our version.
        ours: u32,
        /// The peer's.
        peer: u32,
    },
    /// The authorizer was refused (twice, for a connector).
    #[error("authorizer refused")]
    AuthorizerRefused,
    /// A reply or stream tag that is not valid where it appeared.
    #[error("unexpected tag {tag} in {context}")]
    UnexpectedTag {
        /// The raw tag byte.
        tag: u8,
        /// Where it appeared.
        context: &'static str,
    },
    /// The handshake did not finish in time.
    #[error("handshake timed out after {0:?}")]
    HandshakeTimeout(Duration),
    /// Nothing was read for the configured read timeout.
    #[error("read timed out after {0:?}")]
    ReadTimeout(Duration),
    /// A [`HandshakeHook`](crate::HandshakeHook) failed the step.
    #[error("handshake failed by hook")]
    HookFailed,
    /// The acceptor answered WAIT: we lost a connection race.
    #[error("connection race lost (WAIT)")]
    RaceLost,
    /// The peer sent CLOSE.
    #[error("peer closed the connection")]
    PeerClosed,
    /// The session was closed (mark_down, lossy fault, fatal handshake failure).
    #[error("session closed")]
    SessionClosed,
    /// The socket was superseded (replaced by another socket, or the attempt abandoned).
    #[error("socket superseded")]
    Superseded,
    /// Delivering the message with this seq panicked (in the host, e.g. a dispatcher's fast
    /// dispatch): the socket is faulted, as for a broken stream, and the session goes on
    /// according to its policy. The message counts as received.
    #[error("delivery of message seq {seq} panicked")]
    DeliveryPanicked {
        /// Its seq.
        seq: u64,
    },
    /// A message arrived without `FOOTER_COMPLETE` (Async faults on it).
    #[error("aborted message seq {seq}")]
    Aborted {
        /// Its seq.
        seq: u64,
    },
    /// A message's signature did not check (Ceph: "Signature check failed"): the socket is
    /// faulted, the message dropped.
    #[error("bad signature on message seq {seq}")]
    BadSignature {
        /// Its seq.
        seq: u64,
    },
    /// The acceptor's challenge or reply authorizer did not check: it is not who it claims to
    /// be (or our authorizer could not be built or answered).
    #[error("authentication failed: {0}")]
    Auth(msgr_auth::AuthError),
    /// A msgr2 handshake failed (frames, authentication, refusal, WAIT).
    #[error("msgr2 handshake: {0}")]
    V2Handshake(crate::v2::connect::HandshakeError),
    /// A msgr2 frame in the session phase is not what it claims (short payload).
    #[error("malformed msgr2 {0} frame")]
    MalformedFrame(&'static str),
}

impl From<crate::v2::connect::HandshakeError> for PipeError {
    fn from(e: crate::v2::connect::HandshakeError) -> Self {
        match e {
            crate::v2::connect::HandshakeError::RaceLost => PipeError::RaceLost,
            e => PipeError::V2Handshake(e),
        }
    }
}

impl From<crate::v2::frame::FrameError> for PipeError {
    fn from(e: crate::v2::frame::FrameError) -> Self {
        PipeError::V2Handshake(e.into())
    }
}

impl PipeError {
    /// True for errors that must not be retried: the session closes (FEATURES, BADPROTOVER,
    /// a refused authorizer, a peer at the wrong address).
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            PipeError::MissingFeatures { .. }
                | PipeError::BadProtoVer { .. }
                | PipeError::AuthorizerRefused
                | PipeError::SessionClosed
        ) || matches!(self, PipeError::V2Handshake(e) if e.is_fatal())
    }
}

/// A copy of the error; an [`io::Error`] is copied as its kind and message (its source, if
/// any, is not kept).
impl Clone for PipeError {
    fn clone(&self) -> Self {
        match self {
            PipeError::Io(e) => PipeError::Io(io::Error::new(e.kind(), e.to_string())),
            PipeError::Wire(e) => PipeError::Wire(e.clone()),
            PipeError::AddrMismatch { expected, got } => PipeError::AddrMismatch {
                expected: *expected,
                got: *got,
            },
            PipeError::MissingFeatures { missing } => {
                PipeError::MissingFeatures { missing: *missing }
            }
            PipeError::BadProtoVer { ours, peer } => PipeError::BadProtoVer {
                ours: *ours,
                peer: *peer,
            },
            PipeError::AuthorizerRefused => PipeError::AuthorizerRefused,
            PipeError::UnexpectedTag { tag, context } => {
                PipeError::UnexpectedTag { tag: *tag, context }
            }
            PipeError::HandshakeTimeout(d) => PipeError::HandshakeTimeout(*d),
            PipeError::ReadTimeout(d) => PipeError::ReadTimeout(*d),
            PipeError::HookFailed => PipeError::HookFailed,
            PipeError::RaceLost => PipeError::RaceLost,
            PipeError::PeerClosed => PipeError::PeerClosed,
            PipeError::SessionClosed => PipeError::SessionClosed,
            PipeError::Superseded => PipeError::Superseded,
            PipeError::DeliveryPanicked { seq } => PipeError::DeliveryPanicked { seq: *seq },
            PipeError::Aborted { seq } => PipeError::Aborted { seq: *seq },
            PipeError::BadSignature { seq } => PipeError::BadSignature { seq: *seq },
            PipeError::Auth(e) => PipeError::Auth(e.clone()),
            PipeError::V2Handshake(e) => PipeError::V2Handshake(e.clone()),
            PipeError::MalformedFrame(w) => PipeError::MalformedFrame(w),
        }
    }
}

impl PipeError {
    /// True when the peer's answer, not a broken socket, ended the handshake: FEATURES,
    /// BADPROTOVER, BADAUTHORIZER, a peer at another address than the one dialled, a reply
    /// tag that makes no sense there, or bytes that are not msgr v1 (a bad banner).
    /// Trying again the same way gets the same answer. Some of these the session retries
    /// all the same (Ceph's `Pipe::connect` retries a wrong address or a bad banner);
    /// [`PipeError::is_fatal`] says which end it.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            PipeError::MissingFeatures { .. }
                | PipeError::BadProtoVer { .. }
                | PipeError::AuthorizerRefused
                | PipeError::AddrMismatch { .. }
                | PipeError::UnexpectedTag { .. }
                | PipeError::Wire(_)
                | PipeError::Auth(_)
        ) || matches!(self, PipeError::V2Handshake(e) if e.is_refusal())
    }
}

/// How an outgoing handshake attempt of a session failed, as published by
/// [`Session::handshake_failures`](crate::Session::handshake_failures): the error, whether
/// it ended the session, and how many attempts have failed so far. It tells an application
/// *why* a session does not open (the peer's answer), which [`SessionEvent::Refused`](crate::SessionEvent::Refused)
/// (crate::SessionEvent::Refused) alone does not; the session's retry rules are unchanged.
#[derive(Clone, Debug)]
pub struct HandshakeFailure {
    /// What went wrong.
    pub error: Arc<PipeError>,
    /// The session gave up and closed ([`PipeError::is_fatal`]).
    pub fatal: bool,
    /// Failed attempts of this session so far, this one included.
    pub failures: u64,
}

/// Why [`Session::send`](crate::Session::send) refused a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The session has ended; the message was dropped.
    #[error("session closed")]
    Closed,
    /// `max_pending_bytes` is reached (only from `try_send`); the message was dropped.
    #[error("send queue full")]
    Full,
}
