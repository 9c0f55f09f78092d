//! The Pipe: a protocol-neutral sans-IO session core, msgr v1 as its dialect, and the tokio
//! drivers (reader, writer, connector, acceptor) that move its bytes and time.
//!
//! A [`Session`] is one peer session (Ceph's Connection with its Pipe): it survives broken
//! sockets, keeps its out queue by priority, its sent list and sequence numbers, and
//! reconnects, stands by or closes per its [`Policy`] (spec §6.5, §7). Sockets come from
//! [`Session::connect`] (the session's driver task dials through [`Host::dial`]) or from
//! [`Session::accept`] (the acceptor handshake, which attaches the socket to a new or an
//! existing session per the decision table 5.3).
//!
//! The protocol rules live in values driven without I/O, with unit tests and a deterministic
//! simulation: [`core::SessionCore`] (queues, seqs, ACKs, keepalives, timers, fault decisions),
//! msgr v1's [`v1::handshake`] machines, [`v1::accept::decide`] (table 5.3),
//! [`v1::connect::on_reply`] (the connector's reply table) and [`v1::session`] (what their
//! outcomes do to a session). The tasks in [`session`] move bytes and time. Not here: the
//! messenger (registry, dispatch, policies per peer type: msgr-core), authentication
//! (msgr-auth), msgr v2 (a second dialect beside [`v1`], next).
//!
//! The messenger (msgr-core) implements [`Host`]; [`testing::TestHost`] is a small
//! implementation for tests, with an in-memory network ([`testing::TestNet`]).
//!
//! # Locks
//! Per session: `deliver_lock` (orders deliveries) before the state lock; neither is held
//! across an `.await`, and no [`Host`] method is called with the state lock held. At most one
//! session's state lock is held at a time (the acceptor locks an existing session only after
//! [`Host::lookup`] returned). See `session/mod.rs`.
//!
//! # Additions to and departures from DESIGN.md
//! * [`Host::dial`] (default: TCP with `TCP_NODELAY`) and [`Host::new_conn_id`] (default: a
//!   process-wide counter) have default implementations; tests dial in-memory streams.
//! * [`Session::connect`] registers the new session with [`Host::register`]; if the host
//!   already has one for the address, that one is returned and nothing starts.
//! * [`Session::queue`] sends without waiting (the bytes still count against
//!   `max_pending_bytes`); [`Session::mark_down_with_reset`], [`Session::is_closed`],
//!   [`Session::is_lossy`], [`Session::policy`], [`Session::seqs`],
//!   [`Session::pending_bytes`], `*_shared` constructors taking an `Arc<PipeConfig>`.
//! * [`Session::last_keepalive`] is the monotonic arrival time (`tokio::time::Instant`);
//!   [`Session::last_keepalive_ack`] the echoed stamp ([`msgr_wire::Timespec`]), as Ceph.
//! * A refused handshake (FEATURES, BADPROTOVER, BADAUTHORIZER twice) closes the session with
//!   [`SessionEvent::Refused`] instead of retrying for ever.
//! * [`Session::handshake_failures`] publishes why the last outgoing handshake attempt
//!   failed ([`HandshakeFailure`]: the peer's answer, e.g. BADPROTOVER with both versions),
//!   so a tool can report a refusal (and stop) instead of waiting on the retries.
//! * Replace is transparent (Simple): no RETRY_GLOBAL round trip; a lossy server still looks
//!   sessions up (one session per peer address). See [`v1::accept`].

pub mod app_data;
pub mod auth;
pub mod config;
pub mod core;
pub mod error;
pub mod hook;
pub mod host;
pub mod inject;
pub mod policy;
pub mod session;
#[doc(hidden)]
pub mod testing;
pub mod transport;
pub mod v1;
pub mod v2;

pub use app_data::AppData;
pub use auth::ProviderAuthorizer;
pub use config::{
    ConMode, ConModes, ConfigError, InjectConfig, PipeConfig, DEFAULT_MAX_PENDING_BYTES,
    MESSAGE_OVERHEAD,
};
pub use core::ConnState;
pub use error::{HandshakeFailure, PipeError, SendError};
pub use hook::{BoxFuture, HandshakeHook, HookAction, Side, Step};
pub use host::{
    AuthError, Authorizer, ChallengeState, ClientAuthorizer, Deliver, Host, Incoming,
    MessageSigner, PeerIdentity, SessionEvent, VerifyOutcome,
};
pub use msgr_dispatch::ConnId;
pub use policy::{Policy, DEFAULT_FEATURES};
pub use session::{KeepaliveAcks, Session, SessionClosed, SessionStats};
pub use transport::{connect_tcp, BoxTransport, Transport};
