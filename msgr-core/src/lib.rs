//! The msgr Messenger: Accepter, Connection, Dispatcher and policies.
//!
//! This is the face applications use, as Ceph's `SimpleMessenger` composes its `Accepter`,
//! `Pipe`s and `DispatchQueue`:
//!
//! * [`Messenger`] — an entity name and a listening address; [`connect`](Messenger::connect)
//!   returns the one session per peer address (outgoing or accepted), `send_to`, `mark_down`
//!   (of one address or all), `rebind`, `shutdown` + `wait`, statistics, and local delivery
//!   when it sends to itself ([`Messenger::loopback`]).
//! * The Accepter — a task that accepts TCP connections (`TCP_NODELAY`) and hands each to
//!   `msgr_pipe::Session::accept`, within a connection-count limit, until shutdown or rebind.
//! * [`Connection`] — a cheap handle to a session: `send` (waits while the session holds too
//!   many unsent and unacknowledged bytes), `try_send`, `send_keepalive`, `mark_down`,
//!   peer address and name, negotiated features, state, keepalive stamps, counters.
//! * [`Dispatcher`] — receives messages (normal and fast dispatch) and connection events
//!   (connect, accept, reset, remote reset, refused); several form a chain in which each may
//!   pass a message on. [`Received`] holds the policy throttle permits until dropped.
//! * [`MessengerConfig`] — every setting, with documented defaults, readable with serde.
//!   Per peer type a [`Policy`] (spec §7) decides lossy/lossless, server, standby and reset
//!   detection, required features and inbound throttles.
//!
//! Mark-down follows SimpleMessenger (spec Appendix A): [`Connection::mark_down`] ends the
//! session without a reset event (the caller asked for it); [`Messenger::mark_down`],
//! [`Messenger::mark_down_all`] and [`Messenger::rebind`] deliver one reset per session.
//! [`Messenger::wait`] returns only once every task has ended and every limited throttle is
//! back to 0.
//!
//! What it does not do: the wire format (msgr-wire), the handshake, session state machine,
//! acks, resends and reconnects (msgr-pipe), or queueing, priorities and throttle mechanics
//! (msgr-dispatch). There is no authentication beyond the `Authorizer` hook, no msgr2, and
//! no address vectors (one IPv4 or IPv6 address per messenger).
//!
//! Additions to and departures from `DESIGN.md`: [`Messenger::connect`] returns a `Result`
//! (it fails once the messenger is shut down); [`Messenger::shutdown`] only starts the
//! shutdown and [`Messenger::wait`] finishes it; [`Messenger::connection`] looks a session up
//! without connecting; [`Connection::queue`] sends without waiting on backpressure (for
//! replies from dispatchers); the dispatch queue carries connection events with their
//! [`Connection`] rather than bare `SessionEvent`s.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use msgr_core::{Messenger, Policy};
//! use msgr_wire::{EntityName, EntityType, Message};
//!
//! let server = Messenger::builder(EntityName::osd(0))
//!     .bind("127.0.0.1:0".parse()?)
//!     .default_policy(Policy::stateless_server(0))
//!     .start()
//!     .await?;
//! let client = Messenger::builder(EntityName::client(-1))
//!     .bind("127.0.0.1:0".parse()?)
//!     .default_policy(Policy::lossy_client(0))
//!     .start()
//!     .await?;
//! let conn = client.connect(server.addr(), EntityType::OSD)?;
//! conn.send(Message::new(2, "hello")).await?;
//! for m in [&client, &server] {
//!     m.shutdown();
//!     m.wait().await;
//! }
//! # Ok(()) }
//! ```

mod accepter;
mod builder;
mod config;
mod connection;
mod dispatcher;
mod error;
mod host;
mod messenger;
mod stats;
pub mod testing;
#[cfg(test)]
mod tests;

pub use builder::MessengerBuilder;
pub use config::{
    ceph_conf_options, CephConfOption, InjectConfig, MessengerConfig, PipeConfig, PolicyConfig,
    PolicyKind, DEFAULT_DISPATCH_THROTTLE_BYTES, DEFAULT_MAX_PENDING_BYTES,
};
pub use connection::{Connection, LOOPBACK_ID};
pub use dispatcher::{BoxFuture, Dispatched, Dispatcher, Permits, Received};
pub use error::{ConfigError, CoreError, SendError};
pub use messenger::Messenger;
pub use stats::{ConnectionStats, MessengerStats, ThrottleReading};

pub use msgr_dispatch::{ConnId, QueueCounters};
pub use msgr_pipe::{
    AuthError, Authorizer, ChallengeState, ClientAuthorizer, ConnState, HandshakeFailure,
    KeepaliveAcks, MessageSigner, PeerIdentity, PipeError, Policy, ProviderAuthorizer,
    SessionClosed, SessionEvent, SessionStats, VerifyOutcome,
};
