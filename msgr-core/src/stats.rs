//! Statistics of a messenger: per connection and in total.

use msgr_dispatch::{ConnId, QueueCounters, Throttle};
use msgr_pipe::{ConnState, SessionStats};
use msgr_wire::{EntityAddr, EntityType};

/// A snapshot of a messenger's counters ([`Messenger::stats`](crate::Messenger::stats)).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct MessengerStats {
    /// Sums over every session the messenger has had, ended ones and the loopback included.
    /// `queued` and `unacked` sum the live sessions only.
    pub total: SessionStats,
    /// One entry per registered session.
    pub connections: Vec<ConnectionStats>,
    /// The loopback connection's counters.
    pub loopback: SessionStats,
    /// Messages and events waiting in the dispatch queue.
    pub dispatch_queue_len: usize,
    /// The dispatch queue's counters.
    pub dispatch: QueueCounters,
    /// Bytes currently held by the dispatch throttle.
    pub dispatch_throttle_bytes: u64,
    /// Tasks of the messenger still running (accepter, handshakes, session watchers).
    pub tasks: usize,
}

/// Counters of one connection.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ConnectionStats {
    /// Its connection id.
    pub id: ConnId,
    /// The peer's address.
    pub peer_addr: EntityAddr,
    /// The peer's entity type.
    pub peer_type: EntityType,
    /// The session's state.
    pub state: ConnState,
    /// Messages and bytes in and out, resends, acks, faults, reconnects, queue depths.
    pub stats: SessionStats,
}

/// The value of one throttle ([`Messenger::throttles`](crate::Messenger::throttles)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ThrottleReading {
    /// `dispatch`, or `policy.<peer type>.bytes` / `policy.<peer type>.messages`.
    pub name: String,
    /// Units held now.
    pub current: u64,
    /// The limit (0 = unlimited).
    pub max: u64,
}

impl ThrottleReading {
    pub(crate) fn new(name: String, t: &Throttle) -> Self {
        ThrottleReading {
            name,
            current: t.current(),
            max: t.max(),
        }
    }
}

/// Adds `b` to `a`, field by field.
pub(crate) fn add(a: &mut SessionStats, b: &SessionStats) {
    a.msgs_in += b.msgs_in;
    a.bytes_in += b.bytes_in;
    a.msgs_out += b.msgs_out;
    a.bytes_out += b.bytes_out;
    a.resends += b.resends;
    a.acks_in += b.acks_in;
    a.acks_out += b.acks_out;
    a.faults += b.faults;
    a.reconnects += b.reconnects;
    a.queued += b.queued;
    a.unacked += b.unacked;
}
