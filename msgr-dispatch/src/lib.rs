//! DispatchQueue, Throttle and DelayedDelivery: what sits between the pipes that read
//! messages and the application that handles them (spec §4 and §2.4).
//!
//! * [`Throttle`] — an async counting limit with Ceph's semantics: 0 = unlimited, strict FIFO
//!   waiters, oversize admission, permits that give back on drop. One type serves the
//!   dispatch-throttle bytes and the policy byte and message throttles.
//! * [`DispatchQueue`] — one per messenger: strict priorities at or above a threshold (64),
//!   Ceph's token scheme below it, round-robin across connections, FIFO within one; connection
//!   events ahead of messages; a local-delivery path; a fast-dispatch path; discard and
//!   shutdown that release every throttled byte. Its ordering core is [`PrioQueue`], a plain
//!   synchronous structure.
//! * [`DelayedDelivery`] — seeded per-connection delay injection that keeps arrival order.
//!
//! What it does not do: no sockets, no wire format, no knowledge of Ceph messages. Everything
//! is generic over the message type `M` and the connection-event type `E`, so this crate
//! depends on no other crate of the workspace. The tasks it spawns run on the caller's tokio
//! runtime.
//!
//! ```
//! use std::sync::Arc;
//! use msgr_dispatch::{BoxFuture, ConnId, DispatchConfig, DispatchQueue, Handler, ShutdownMode, Throttle};
//!
//! struct Print;
//! impl Handler<String, &'static str> for Print {
//!     fn dispatch(&self, m: String) -> BoxFuture<'_, ()> {
//!         Box::pin(async move { println!("message {m}") })
//!     }
//!     fn event(&self, conn: ConnId, e: &'static str) -> BoxFuture<'_, ()> {
//!         Box::pin(async move { println!("{e} on connection {conn}") })
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let throttle = Throttle::new(100 << 20); // the messenger's dispatch throttle
//! let queue = DispatchQueue::new(DispatchConfig::default(), Arc::new(Print));
//! let conn = queue.new_conn_id();
//! queue.enqueue_event(conn, "accept");
//! let permit = throttle.acquire(5).await; // taken by the reader before the body
//! queue.deliver(conn, 127, "hello".to_string(), permit);
//! let report = queue.shutdown(ShutdownMode::Drain).await;
//! assert_eq!((report.dropped_messages, throttle.current()), (0, 0));
//! # }
//! ```

mod delay;
mod error;
mod handler;
mod prio;
mod queue;
mod sync;
mod throttle;

pub use delay::{DelayConfig, DelayCounters, DelayPlan, DelayedDelivery};
pub use error::{ConfigError, ThrottleError};
pub use handler::{
    BoxFuture, DispatchConfig, Handler, QueueCounters, ShutdownMode, ShutdownReport,
};
pub use prio::{PrioQueue, DEFAULT_MAX_TOKENS, DEFAULT_MIN_COST, DEFAULT_STRICT_THRESHOLD};
pub use queue::DispatchQueue;
pub use sync::{add_unshared, lock};
pub use throttle::{Acquire, BorrowedPermit, Throttle, ThrottlePermit};

/// A connection id: the class used for fairness and bulk discard. Allocated from 1 by
/// [`DispatchQueue::new_conn_id`]; 0 is reserved for events and local delivery.
pub type ConnId = u64;
