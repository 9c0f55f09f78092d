//! Fault policy: what a session does when its socket ends, and the reconnect backoff.
//!
//! Not here: the dialect's own bookkeeping of a fault (msgr v1's `connect_seq`), which
//! reacts to the [`FaultAction`] the core decides.

use std::time::Duration;

/// What to do after a fault (spec §6.5, Appendix A).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultAction {
    /// The session ends; `reset` says whether a Reset event is due (lossy after open).
    Close {
        /// Deliver a Reset event.
        reset: bool,
    },
    /// Reconnect after this delay (the core's reconnect timer is armed for it).
    Reconnect {
        /// Backoff.
        after: Duration,
        /// An established session is re-established: the dialect starts a new round
        /// (msgr v1: `connect_seq + 1`).
        renew: bool,
    },
    /// Rest without a socket until a message is queued (or the peer reconnects).
    Standby,
    /// Lost a race: wait to be replaced, at most `max` before retrying.
    Wait {
        /// How long to wait before connecting again.
        max: Duration,
    },
    /// Nothing to do (already closed or standing by).
    None,
}

/// Why a socket ended, for [`SessionCore::handle_fault`](super::SessionCore::handle_fault).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultCause {
    /// I/O or protocol error, timeout, peer close.
    Error,
    /// The acceptor answered WAIT.
    RaceLost,
}

/// Where an incoming handshake on this session stood when its socket failed (only while
/// the session is accepting). The dialect knows; the core decides with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AcceptStage {
    /// A new session whose answer never left: the peer knows nothing of it.
    NeverAnswered,
    /// A replace that failed before our answer left: the session is back to what it was.
    Abandoned,
    /// A new session whose answer left, never opened.
    AnsweredNew,
    /// Our answer left: the peer may hold the session open.
    Answered,
}

/// The policy bits and backoff settings the fault rules need.
#[derive(Clone, Copy, Debug)]
pub struct FaultPolicy {
    /// Policy `server`.
    pub server: bool,
    /// Policy `standby`.
    pub standby: bool,
    /// First backoff.
    pub initial_backoff: Duration,
    /// Backoff cap (also the wait after WAIT).
    pub max_backoff: Duration,
}

/// Consecutive failed connection attempts since the last successful handshake: the first is
/// retried at once, the next after `initial_backoff`, each further one after twice the wait
/// before it, capped at `max_backoff` (Ceph's `Pipe::fault`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Backoff {
    failed_attempts: u32,
}

impl Backoff {
    /// A handshake succeeded (or a standby session wakes): start over.
    pub(super) fn reset(&mut self) {
        self.failed_attempts = 0;
    }

    pub(super) fn failed_attempts(&self) -> u32 {
        self.failed_attempts
    }

    /// One more failed attempt; the wait before the next one: 0, initial, 2 initial,
    /// 4 initial, ..., max.
    pub(super) fn next(&mut self, policy: &FaultPolicy) -> Duration {
        self.failed_attempts = self.failed_attempts.saturating_add(1);
        match self.failed_attempts.checked_sub(2) {
            None => Duration::ZERO,
            Some(doublings) => policy
                .initial_backoff
                .saturating_mul(1u32 << doublings.min(31))
                .min(policy.max_backoff),
        }
    }
}
