//! [`Registry`]: the session table of a messenger — one registered [`Session`] per peer
//! address — with the counters of sessions that ended and the keepalive round trips.
//!
//! As SimpleMessenger's `rank_pipe` map: the acceptor looks sessions up here to replace or
//! race them, `connect_lazy` finds the existing session to a peer, and a session leaves the
//! table when it ends (or when the messenger marks it down). Ended sessions leave their
//! counters behind, so the messenger's totals survive them.
//!
//! What it does not do: start, follow or end sessions (the sessions' host spawns a watcher
//! per registered session; the facade marks them down), or decide a replace (msgr-pipe's
//! acceptor does). It imports only the stats types.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use msgr_dispatch::{lock, ConnId};
use msgr_pipe::{Session, SessionStats};
use msgr_wire::EntityAddr;

use crate::stats::{self, RttHistogram};

/// Registered sessions by peer address, and what ended or measured sessions leave behind.
#[derive(Default)]
pub(crate) struct Registry {
    sessions: Mutex<HashMap<EntityAddr, Session>>,
    /// Counters of sessions that ended, so totals survive them.
    retired: Mutex<SessionStats>,
    /// Keepalive round trips: per live session, and of every session.
    rtt: Mutex<RttBook>,
}

/// The keepalive round trips the session watchers measure.
#[derive(Default)]
struct RttBook {
    sessions: HashMap<ConnId, RttHistogram>,
    total: RttHistogram,
}

impl Registry {
    /// The session registered for `peer_addr`.
    pub(crate) fn lookup(&self, peer_addr: &EntityAddr) -> Option<Session> {
        lock(&self.sessions).get(peer_addr).cloned()
    }

    /// Registers `session` under its peer address, unless another live session holds it:
    /// that one is returned (someone registered first). A closed one is replaced.
    pub(crate) fn insert(&self, session: &Session) -> Result<(), Session> {
        let mut map = lock(&self.sessions);
        let addr = session.peer_addr();
        if let Some(existing) = map.get(&addr) {
            if existing != session && !existing.is_closed() {
                return Err(existing.clone());
            }
        }
        map.insert(addr, session.clone());
        Ok(())
    }

    /// Unregisters `session`, if it is the one registered for its peer address.
    pub(crate) fn remove(&self, session: &Session) {
        let mut map = lock(&self.sessions);
        let addr = session.peer_addr();
        if map.get(&addr) == Some(session) {
            map.remove(&addr);
        }
    }

    /// Unregisters every session; they are returned.
    pub(crate) fn take_all(&self) -> Vec<Session> {
        lock(&self.sessions).drain().map(|(_, s)| s).collect()
    }

    /// The registered sessions now.
    pub(crate) fn sessions(&self) -> Vec<Session> {
        lock(&self.sessions).values().cloned().collect()
    }

    /// Keeps an ended session's counters in the totals (its `queued` and `unacked` are no
    /// longer anyone's: they count as 0).
    pub(crate) fn retire(&self, ended: SessionStats) {
        let st = SessionStats {
            queued: 0,
            unacked: 0,
            ..ended
        };
        stats::add(&mut lock(&self.retired), &st);
    }

    /// The summed counters of every session that ended.
    pub(crate) fn retired(&self) -> SessionStats {
        *lock(&self.retired)
    }

    /// Counts a keepalive round trip of session `id`.
    pub(crate) fn observe_rtt(&self, id: ConnId, rtt: Duration) {
        let mut book = lock(&self.rtt);
        book.sessions.entry(id).or_default().observe(rtt);
        book.total.observe(rtt);
    }

    /// Forgets the round trips of session `id` (it ended); the total keeps them.
    pub(crate) fn forget_rtt(&self, id: ConnId) {
        lock(&self.rtt).sessions.remove(&id);
    }

    /// The round trips per live session, and of every session.
    pub(crate) fn rtts(&self) -> (HashMap<ConnId, RttHistogram>, RttHistogram) {
        let book = lock(&self.rtt);
        (book.sessions.clone(), book.total.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_per_session_and_in_total() {
        let r = Registry::default();
        r.observe_rtt(3, Duration::from_micros(40));
        r.observe_rtt(4, Duration::from_millis(3));
        r.observe_rtt(3, Duration::from_millis(3));
        r.forget_rtt(4);
        let (per, total) = r.rtts();
        assert_eq!(per.len(), 1);
        assert_eq!(per.get(&3).map(|h| h.count), Some(2));
        assert_eq!(
            total.count, 3,
            "the total keeps a forgotten session's round trips"
        );
    }

    #[test]
    fn retired_counters_add_up_without_queued_and_unacked() {
        let r = Registry::default();
        let ended = SessionStats {
            msgs_in: 5,
            bytes_out: 700,
            queued: 2,
            unacked: 1,
            ..SessionStats::default()
        };
        r.retire(ended);
        r.retire(ended);
        let t = r.retired();
        assert_eq!(
            (t.msgs_in, t.bytes_out, t.queued, t.unacked),
            (10, 1400, 0, 0)
        );
    }
}
