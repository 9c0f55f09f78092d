//! The msgr Messenger: Accepter, Connection, Dispatcher and policies.
//!
//! This is the face applications use, as Ceph's `SimpleMessenger` composes its `Accepter`,
//! `Pipe`s and `DispatchQueue`:
//!
//! * [`Messenger`] — an entity name and a listening address; [`connect`](Messenger::connect)
//!   (awaits the session's opening) and [`connect_lazy`](Messenger::connect_lazy) (does not)
//!   give the one session per peer address (outgoing or accepted), `send_to`, `mark_down`
//!   (of one address or all), `rebind`, `shutdown` + `wait`, statistics, and local delivery
//!   when it sends to itself ([`Messenger::loopback`]).
//! * The Accepter — a task that accepts TCP connections (`TCP_NODELAY`) and hands each to
//!   `msgr_pipe::Session::accept`, within a connection-count limit, until shutdown or rebind.
//! * [`Connection`] — a cheap handle to a session: `send` (waits while the session holds too
//!   many unsent and unacknowledged bytes), `try_send`, `call` (request/response by `tid`),
//!   `send_keepalive`, `mark_down`, peer address and name, negotiated features, state,
//!   keepalive stamps, counters.
//! * [`Dispatcher`] — receives messages (normal and fast dispatch) and connection events
//!   (connect, accept, reset, remote reset, refused); several form a chain in which each may
//!   pass a message on. [`Received`] holds the policy throttle permits until dropped.
//!   [`StreamDispatcher`] is one that makes them a [`Stream`](futures_core::Stream).
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
//! Additions to and departures from `DESIGN.md`: [`Messenger::connect`] is async and resolves
//! once the session is open, or with a [`ConnectError`]; [`Messenger::connect_lazy`] returns
//! a `Result` at once (it fails once the messenger is shut down); [`Messenger::shutdown`] only starts the
//! shutdown and [`Messenger::wait`] finishes it; [`Messenger::connection`] looks a session up
//! without connecting; [`Connection::queue`] sends without waiting on backpressure (for
//! replies from dispatchers); the dispatch queue carries connection events with their
//! [`Connection`] rather than bare `SessionEvent`s.
//!
//! For tokio users (`msgr-core` re-exports the wire types, so it is the one dependency):
//!
//! * [`Messenger::connect`]`.await` resolves once the session is open, or with the typed
//!   reason it did not open ([`ConnectError`]: refused, unreachable, closed);
//!   [`Messenger::connect_lazy`] returns at once and connects in the background.
//! * [`Connection::call`]`.await` sends a request and waits for the reply with its `tid`.
//! * [`StreamDispatcher`] turns received messages into a bounded, back-pressured
//!   [`Incoming`] stream, instead of implementing [`Dispatcher`].
//!
//! Cargo features (tokio's rule: opt-in, but for what nearly every user wants):
//!
//! | feature | default | adds |
//! |---|---|---|
//! | `typed` | on | typed messages, serde values in the front, bincode 2 as codec (`wire::typed`) |
//! | `cbor` | off | the CBOR codec of typed messages; alone (no default features), typed messages without bincode (RUSTSEC-2025-0141) |
//! | `metrics` | off | a Prometheus collector and a `/metrics` responder (`metrics`) |
//! | `inject` | off | fault injection, Ceph's `ms_inject_*`; without it [`MessengerConfig::validate`] refuses a setting that asks for it |
//!
//! `examples/` has the recommended patterns (`cargo run -p msgr-core --example request_reply`);
//! they run as tests.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use std::time::Duration;
//! use msgr_core::{EntityName, EntityType, Message, Messenger, Policy, StreamDispatcher};
//!
//! // A server that reads its messages as a stream and answers each with the request's tid.
//! let (dispatcher, mut incoming) = StreamDispatcher::new(16);
//! let server = Messenger::builder(EntityName::osd(0))
//!     .bind("127.0.0.1:0".parse()?)
//!     .default_policy(Policy::stateless_server(0))
//!     .dispatcher(Arc::new(dispatcher))
//!     .start()
//!     .await?;
//! tokio::spawn(async move {
//!     while let Some(req) = incoming.recv().await {
//!         let reply = Message::new(2, req.msg.front.clone()).with_tid(req.msg.header.tid);
//!         let _ = req.conn.queue(reply);
//!     }
//! });
//!
//! let client = Messenger::builder(EntityName::client(-1))
//!     .bind("127.0.0.1:0".parse()?)
//!     .default_policy(Policy::lossy_client(0))
//!     .start()
//!     .await?;
//! let conn = client.connect(server.addr(), EntityType::OSD).await?;
//! let reply = conn.call(Message::new(1, "hello"), Duration::from_secs(5)).await?;
//! assert_eq!(&reply.msg.front[..], b"hello");
//! drop(reply);
//! for m in [&client, &server] {
//!     m.shutdown();
//!     m.wait().await;
//! }
//! # Ok(()) }
//! ```

// The modules, grouped from the leaves up (DESIGN.md draws the layers): a module imports
// only modules of its own group or of the groups above it, and the `layering` test checks
// that the imports form no cycle.

// Plain data: errors, settings, counters.
mod config;
mod error;
mod stats;

// The messenger's shared state, each imported by the layers below and importing none of
// them: who we are, the policy set, the session table, the calls table, the loopback.
mod call;
mod identity;
mod loopback;
mod policies;
mod registry;

// Connections and what arrives on them; the dispatchers; the dispatch queue's handler.
mod connection;
mod dispatcher;
mod queue;
mod stream;

// The sessions' host (msgr-pipe's `Host`) and the accepter.
mod accepter;
mod host;

// The facade (with its builder and `connect`) and its add-ons.
mod messenger;
#[cfg(feature = "metrics")]
pub mod metrics;
pub mod testing;

#[cfg(test)]
mod layering;
#[cfg(test)]
mod tests;

pub use call::CallError;
pub use config::{
    ceph_conf_options, CephConfOption, InjectConfig, MessengerConfig, PipeConfig, PolicyConfig,
    PolicyKind, DEFAULT_DISPATCH_THROTTLE_BYTES, DEFAULT_MAX_PENDING_BYTES,
};
pub use connection::{Connection, Permits, Received, SendFuture, LOOPBACK_ID};
pub use dispatcher::{BoxFuture, Dispatched, Dispatcher};
pub use error::{ConfigError, CoreError, SendError};
pub use messenger::{ConnectError, Messenger, MessengerBuilder};
pub use stats::{ConnectionStats, MessengerStats, RttHistogram, ThrottleReading, RTT_BUCKETS};
pub use stream::{Incoming, StreamDispatcher};

pub use msgr_dispatch::{ConnId, QueueCounters};
/// Why a msgr2 handshake failed (inside [`PipeError::V2Handshake`]).
pub use msgr_pipe::v2::connect::HandshakeError as V2HandshakeError;
pub use msgr_pipe::{
    AppData, AuthError, Authorizer, ChallengeState, ClientAuthorizer, ConMode, ConModes, ConnState,
    HandshakeFailure, KeepaliveAcks, MessageSigner, PeerIdentity, PipeError, Policy,
    ProviderAuthorizer, SessionClosed, SessionEvent, SessionStats, VerifyOutcome,
};
/// The whole wire codec (feature bits, tags, the decoders, and with the `typed` feature the
/// typed messages, `wire::typed`).
pub use msgr_wire as wire;
/// What applications use of the wire codec, so that `msgr-core` is the one dependency:
/// messages and their header, addresses, entity names and types, stamps, CRC flags.
pub use msgr_wire::{
    parse_addrs, pick_addr, AddrType, CrcFlags, EntityAddr, EntityName, EntityType, Message,
    MsgHeader, Timespec, WireError,
};

/// The README's Rust examples, compiled and run as doc tests of this crate (`cargo test -p
/// msgr-core --doc`), so the example a new user copies first keeps working.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
