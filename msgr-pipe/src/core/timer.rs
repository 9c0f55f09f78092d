//! The session's one timer table: every deadline the core keeps, and the earliest of them.
//!
//! Not here: sleeping. A driver arms one timer for [`Timers::next`] and calls the core's
//! `handle_timeout` when it fires.

use std::time::{Duration, Instant};

/// The deadlines of a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Timer {
    /// A delayed ACK is due (messages received, none acknowledged yet).
    AckDelay,
    /// The socket has been silent for `read_timeout`.
    Idle,
    /// The next outgoing attempt (backoff, or the end of a WAIT).
    Reconnect,
}

const TIMERS: usize = 3;

impl Timer {
    fn index(self) -> usize {
        match self {
            Timer::AckDelay => 0,
            Timer::Idle => 1,
            Timer::Reconnect => 2,
        }
    }

    const ALL: [Timer; TIMERS] = [Timer::AckDelay, Timer::Idle, Timer::Reconnect];
}

/// Armed deadlines, by [`Timer`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timers {
    at: [Option<Instant>; TIMERS],
}

impl Timers {
    /// Arms `t` for `now + after`; a delay too long to add to a clock reading disarms it
    /// (the deadline would never come).
    pub fn arm(&mut self, t: Timer, now: Instant, after: Duration) {
        self.at[t.index()] = now.checked_add(after);
    }

    /// Disarms `t`.
    pub fn stop(&mut self, t: Timer) {
        self.at[t.index()] = None;
    }

    /// When `t` is due, if armed.
    pub fn get(&self, t: Timer) -> Option<Instant> {
        self.at[t.index()]
    }

    /// `t` is armed and due at `now`: disarms it and returns true.
    pub fn expire(&mut self, t: Timer, now: Instant) -> bool {
        match self.at[t.index()] {
            Some(at) if at <= now => {
                self.at[t.index()] = None;
                true
            }
            _ => false,
        }
    }

    /// The earliest armed deadline.
    pub fn next(&self) -> Option<Instant> {
        Timer::ALL.iter().filter_map(|t| self.get(*t)).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn earliest_and_expiry() {
        let now = Instant::now();
        let mut t = Timers::default();
        assert_eq!(t.next(), None);
        t.arm(Timer::Idle, now, Duration::from_secs(900));
        t.arm(Timer::AckDelay, now, Duration::from_millis(5));
        assert_eq!(t.next(), Some(now + Duration::from_millis(5)));
        assert!(!t.expire(Timer::AckDelay, now));
        assert!(t.expire(Timer::AckDelay, now + Duration::from_millis(5)));
        assert_eq!(t.next(), Some(now + Duration::from_secs(900)));
        t.arm(Timer::Reconnect, now, Duration::MAX);
        assert_eq!(
            t.get(Timer::Reconnect),
            None,
            "an unreachable deadline is not armed"
        );
    }
}
