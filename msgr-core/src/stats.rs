//! Statistics of a messenger: per connection and in total, and the keepalive round trips
//! the messenger measures itself ([`RttHistogram`]).
//!
//! What it does not do: rates (a caller diffs two snapshots) or export formats (the
//! `metrics` module, behind the feature of that name, encodes these for Prometheus).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use msgr_dispatch::{ConnId, QueueCounters, Throttle};
use msgr_pipe::{ConnState, SessionStats};
use msgr_wire::{EntityAddr, EntityName, EntityType, Timespec};

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
    /// Keepalive round trips of every session, ended ones included.
    pub keepalive_rtt: RttHistogram,
    /// [`Connection::call`](crate::Connection::call)s waiting for their reply.
    pub pending_calls: usize,
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
    /// The peer's entity name, once a message from it arrived.
    pub peer_name: Option<EntityName>,
    /// Messages and bytes in and out, resends, acks, faults, reconnects, queue depths.
    pub stats: SessionStats,
    /// Keepalive round trips of this session.
    pub keepalive_rtt: RttHistogram,
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
    /// Acquisitions waiting now.
    pub waiters: usize,
}

impl ThrottleReading {
    pub(crate) fn new(name: String, t: &Throttle) -> Self {
        ThrottleReading {
            name,
            current: t.current(),
            max: t.max(),
            waiters: t.waiters(),
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

/// Upper bounds (seconds) of the [`RttHistogram`] buckets, from 50 µs (loopback) to 10 s (a
/// peer under load), about 2.5 apart; a last bucket takes everything above.
pub const RTT_BUCKETS: [f64; 13] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.1, 0.5, 2.5, 10.0,
];

/// Keepalive round trips: from our KEEPALIVE2 (its stamp, our wall clock when we sent it) to
/// the KEEPALIVE2_ACK that echoes it, as handled by the session. The messenger measures
/// every ack of every session, whoever sent the keepalive
/// ([`Connection::send_keepalive`](crate::Connection::send_keepalive)); peers that only
/// negotiated KEEPALIVE (no stamp) give none. The session publishes its acks through a watch
/// (`msgr_pipe::KeepaliveAcks`), which keeps the latest: acks handled closer together than
/// the messenger's watcher task runs count once, with the latest round trip. Each round trip
/// is taken when the watcher sees the ack, so it includes that task's scheduling delay.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct RttHistogram {
    /// Round trips per bucket of [`RTT_BUCKETS`] (not cumulative); the last entry counts
    /// those above the last bound.
    pub counts: [u64; RTT_BUCKETS.len() + 1],
    /// Sum of the round trips, in seconds.
    pub sum: f64,
    /// Round trips measured.
    pub count: u64,
}

impl RttHistogram {
    /// Adds one round trip.
    pub fn observe(&mut self, rtt: Duration) {
        let secs = rtt.as_secs_f64();
        let i = RTT_BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(RTT_BUCKETS.len());
        if let Some(c) = self.counts.get_mut(i) {
            *c += 1;
        }
        self.sum += secs;
        self.count += 1;
    }

    /// Adds every round trip of `other`.
    pub fn merge(&mut self, other: &RttHistogram) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += b;
        }
        self.sum += other.sum;
        self.count += other.count;
    }

    /// `(upper bound, round trips at or below it)` per bucket, cumulative as Prometheus
    /// wants them, ending with `(+Inf, count)`.
    pub fn cumulative(&self) -> Vec<(f64, u64)> {
        let mut acc = 0;
        let bounds = RTT_BUCKETS
            .iter()
            .copied()
            .chain(std::iter::once(f64::INFINITY));
        bounds
            .zip(self.counts.iter())
            .map(|(b, c)| {
                acc += c;
                (b, acc)
            })
            .collect()
    }
}

/// The round trip of a KEEPALIVE2_ACK echoing `stamp`, handled now; `None` if the wall clock
/// went backwards meanwhile.
pub(crate) fn rtt_of(stamp: Timespec) -> Option<Duration> {
    let sent = UNIX_EPOCH + Duration::new(u64::from(stamp.sec), stamp.nsec);
    SystemTime::now().duration_since(sent).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtt_buckets_are_cumulative_and_end_at_inf() {
        let mut h = RttHistogram::default();
        h.observe(Duration::from_micros(30)); // first bucket
        h.observe(Duration::from_micros(50)); // on the bound: still the first
        h.observe(Duration::from_millis(3)); // 5 ms bucket
        h.observe(Duration::from_secs(60)); // above 10 s
        let c = h.cumulative();
        assert_eq!(c.len(), RTT_BUCKETS.len() + 1);
        assert_eq!(c[0], (0.000_05, 2));
        assert_eq!(c[6], (0.005, 3));
        assert_eq!(c[RTT_BUCKETS.len() - 1], (10.0, 3));
        assert_eq!(c[RTT_BUCKETS.len()], (f64::INFINITY, 4));
        assert_eq!(h.count, 4);
        assert!((h.sum - 60.003_08).abs() < 1e-9, "{}", h.sum);
        let mut m = RttHistogram::default();
        m.merge(&h);
        m.merge(&h);
        assert_eq!(m.count, 8);
        assert_eq!(m.cumulative()[0], (0.000_05, 4));
    }
}
