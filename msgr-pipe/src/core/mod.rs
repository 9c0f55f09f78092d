//! The protocol-neutral session core, driven without I/O (the quinn-proto shape).
//!
//! A [`SessionCore`] is one session as a value: the out queues by priority, sequence
//! numbers, the sent list, ACKs and their delay, keepalives, resend after a reconnect, the
//! fault rules and backoff, and one timer table. Inputs are `handle_*` methods taking `now`;
//! outputs are polled: [`SessionCore::poll_transmit`] hands frames to the dialect's
//! [`FrameSink`], [`SessionCore::poll_timeout`] gives the one deadline to arm,
//! [`SessionCore::poll_event`] the phase changes and keepalive acks for watchers.
//!
//! Not here: bytes on a wire (a dialect's codec: [`crate::v1`]), handshakes and their
//! counters (a dialect's), sockets, tasks and locks (the drivers in [`crate::session`]),
//! the clock (every time is an argument).

mod fault;
mod queue;
mod session;
mod timer;

pub use fault::{AcceptStage, FaultAction, FaultCause, FaultPolicy};
pub use queue::{Outgoing, Released, Submitted, FREE_OUTSIDE_LOCK};
pub use session::{
    BatchLimits, ConnState, Control, CoreConfig, Established, Event, Expired, FrameSink, InSeq,
    SessionCore, Transmit,
};
pub use timer::{Timer, Timers};
