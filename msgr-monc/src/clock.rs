//! The mon client's clock: Ceph's `utime_t` (what tickets are stamped with) read off tokio's
//! clock, so that a paused test clock moves ticket time too and renewals can be tested
//! without waiting.

use std::time::Duration;

use msgr_auth::UTime;
use tokio::time::Instant;

/// Wall-clock time at a tokio instant, advancing with tokio's clock.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    utime0: UTime,
    instant0: Instant,
}

impl Clock {
    /// A clock reading the wall clock now.
    pub(crate) fn new() -> Self {
        Clock {
            utime0: UTime::now(),
            instant0: Instant::now(),
        }
    }

    /// The time now.
    pub(crate) fn now(&self) -> UTime {
        self.utime0
            .saturating_add(to_utime(self.instant0.elapsed()))
    }

    /// The tokio instant at which the clock reads `t` (now or earlier if `t` has passed).
    pub(crate) fn instant_of(&self, t: UTime) -> Instant {
        let after = t.saturating_sub(self.utime0);
        self.instant0 + Duration::new(u64::from(after.sec), after.nsec % 1_000_000_000)
    }
}

fn to_utime(d: Duration) -> UTime {
    UTime {
        sec: u32::try_from(d.as_secs()).unwrap_or(u32::MAX),
        nsec: d.subsec_nanos(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn follows_the_paused_clock() {
        let c = Clock::new();
        let t0 = c.now();
        tokio::time::advance(Duration::from_secs(2700)).await;
        let t1 = c.now();
        assert_eq!(t1.saturating_sub(t0), UTime::from_secs(2700));
        let later = t1.saturating_add(UTime::from_secs(5));
        assert_eq!(c.instant_of(later) - Instant::now(), Duration::from_secs(5));
    }
}
