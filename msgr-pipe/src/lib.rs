//! The Pipe: msgr v1 handshake, session state machine, reader and writer tasks.
//!
//! A [`Session`] is one peer session (Ceph's Connection with its Pipe): it survives broken
//! sockets, keeps its out queue by priority, its sent list and sequence numbers, and
//! reconnects, stands by or closes per its [`Policy`] (spec §6.5, §7). Sockets come from
//! [`Session::connect`] (the session's driver task dials through [`Host::dial`]) or from
//! [`Session::accept`] (the acceptor handshake, which attaches the socket to a new or an
//! existing session per the decision table 5.3).
//!
//! The protocol rules live in plain values with unit tests: [`session::state::SessionState`]
//! (queues, seqs, acks, keepalives, fault decisions), [`handshake::accept::decide`] (table
//! 5.3) and [`handshake::connect::on_reply`] (the connector's reply table). The tasks move
//! bytes.
//!
//! The messenger (msgr-core) implements [`Host`]; [`testing::TestHost`] is a small
//! implementation for tests, with an in-memory network ([`testing::TestNet`]).

pub mod config;
pub mod error;
pub mod handshake;
pub mod hook;
pub mod host;
pub mod inject;
pub mod policy;
pub mod session;
#[doc(hidden)]
pub mod testing;
pub mod transport;

pub use config::{ConfigError, InjectConfig, PipeConfig};
pub use error::{PipeError, SendError};
pub use hook::{BoxFuture, HandshakeHook, HookAction, Side, Step};
pub use host::{Authorizer, Host, Incoming, SessionEvent};
pub use msgr_dispatch::ConnId;
pub use policy::{Policy, DEFAULT_FEATURES};
pub use session::state::ConnState;
pub use session::{Session, SessionStats};
pub use transport::{connect_tcp, BoxTransport, Transport};

pub(crate) use msgr_wire::BANNER;
