//! Handshake hooks: deterministic tests pause or fail a handshake at any of its steps.
//!
//! Ceph has such an interceptor only for msgr2; here every v1 handshake step of both sides calls
//! [`HandshakeHook::step`] when a hook is configured ([`PipeConfig::hook`](crate::PipeConfig)).
//! The hook may await anything (a `Notify`, a channel) before answering, which lets a test hold
//! one side at a precise point while the other proceeds.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use msgr_dispatch::ConnId;

/// A boxed, sendable future (this crate does not depend on `futures`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Which end of a TCP connection a handshake runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    /// The side that called `connect()`.
    Connector,
    /// The side that `accept()`ed.
    Acceptor,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Side::Connector => f.write_str("connector"),
            Side::Acceptor => f.write_str("acceptor"),
        }
    }
}

/// A handshake step, reported after it happened.
///
/// Connector: `BannerSent`, `AddrReceived`, `ConnectSent`, `ReplyReceived(tag)` (once per reply,
/// the loop may repeat), `SeqExchanged` (only with a SEQ reply), `Ready`.
/// Acceptor: `BannerSent` (banner and both addresses written), `ConnectReceived` (once per
/// connect), `ReplySent(tag)`, `SeqExchanged`, `Ready`.
/// msgr2 reports fewer: the connector `BannerSent`, `ConnectSent` (its CLIENT_IDENT or
/// SESSION_RECONNECT written, once per attempt) and `Ready`; the acceptor `BannerSent`,
/// `ConnectReceived` (a CLIENT_IDENT or SESSION_RECONNECT read, before the decision) and
/// `Ready`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Step {
    /// Our banner (acceptor: banner and both addresses) was written.
    BannerSent,
    /// The acceptor's banner and addresses were read and checked.
    AddrReceived,
    /// A `ceph_msg_connect` was written (connector).
    ConnectSent,
    /// A `ceph_msg_connect_reply` with this raw tag was read (connector).
    ReplyReceived(u8),
    /// A `ceph_msg_connect` was read (acceptor).
    ConnectReceived,
    /// A `ceph_msg_connect_reply` with this raw tag was written (acceptor).
    ReplySent(u8),
    /// The 8-byte values of the SEQ exchange were exchanged.
    SeqExchanged,
    /// The handshake is complete; the session is about to open.
    Ready,
}

/// What a hook tells the handshake to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HookAction {
    /// Go on.
    Continue,
    /// Fail the socket here, as an I/O error would.
    Fail,
}

/// Called at each handshake step of both sides. See the module docs.
pub trait HandshakeHook: Send + Sync + 'static {
    /// Called after `step` on connection `conn` (the session's id on the connector; on the
    /// acceptor, the id reserved for the new session, even if the socket ends up attached to an
    /// existing one).
    fn step(&self, conn: ConnId, side: Side, step: Step) -> BoxFuture<'static, HookAction>;
}
