//! Fault injection: a transport wrapper that fails socket operations at random (Ceph's
//! `ms_inject_socket_failures`), the short internal delays at race-prone points
//! (`ms_inject_internal_delays`), and the delay stage that holds received messages back
//! (`ms_inject_delay_probability`, `ms_inject_delay_max`).
//!
//! Everything here is off by default and seeded: the generator of one socket is seeded with
//! [`InjectConfig::seed`](crate::InjectConfig::seed) mixed with a per-socket key (the local and
//! remote addresses and the socket's number within its session), so a run replays as far as task
//! scheduling allows.
//!
//! The injection itself is compiled only with the crate's `inject` feature. The drivers call the
//! same small API either way ([`wrap`], [`internal_delay`], [`lossy_close_delay`],
//! `delay_stage`); without the feature it compiles to nothing (the transport is handed back
//! unwrapped, no delay sleeps, the delay stage is a type without values), and
//! [`PipeConfig::validate`](crate::PipeConfig::validate) refuses a configuration that asks for
//! injection ([`ConfigError::InjectDisabled`](crate::ConfigError::InjectDisabled)) rather than
//! ignoring it. [`mix_seed`] is always there: it also seeds each session's own generator.

use std::time::Duration;

use msgr_dispatch::ConnId;

use crate::config::InjectConfig;
use crate::host::Incoming;
use crate::transport::BoxTransport;

#[cfg(feature = "inject")]
pub use stream::InjectStream;

/// Whether this build has fault injection (the crate's `inject` feature).
pub const ENABLED: bool = cfg!(feature = "inject");

/// The transport of a new socket, wrapped in an [`InjectStream`] failing one operation in
/// `one_in` when that is not 0; `seed` is called only then. Without the `inject` feature the
/// transport is handed back as it is.
pub fn wrap(t: BoxTransport, one_in: u32, seed: impl FnOnce() -> u64) -> BoxTransport {
    #[cfg(feature = "inject")]
    if one_in > 0 {
        return Box::new(InjectStream::new(t, one_in, seed()));
    }
    let _ = (one_in, seed);
    t
}

/// Sleeps `delay` if it is non-zero: an injected internal delay at a race-prone point.
/// Without the `inject` feature it returns at once.
pub async fn internal_delay(delay: Duration, point: &'static str) {
    #[cfg(feature = "inject")]
    if !delay.is_zero() {
        tracing::trace!(point, ?delay, "injected internal delay");
        tokio::time::sleep(delay).await;
    }
    let _ = (delay, point);
}

/// The internal delay a lossy session's fault waits between stopping and unregistering (the
/// configured `internal_delay`); zero without the `inject` feature, so the caller's delayed
/// branch is dead code there.
pub fn lossy_close_delay(config: &InjectConfig) -> Duration {
    if ENABLED {
        config.internal_delay
    } else {
        Duration::ZERO
    }
}

/// Mixes a base seed with a key (FNV-1a over the key bytes, then a splitmix64 finaliser), so that
/// different sockets of one run get different but replayable generators.
pub fn mix_seed(seed: u64, key: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed;
    for b in key {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let mut z = h.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The delay stage of one session: received messages held back before delivery, seeded,
/// in order (msgr-dispatch's `DelayedDelivery`). Without the `inject` feature a type with no
/// values, so a session's `Option<DelayStage>` is always `None` and its uses are dead code.
#[cfg(feature = "inject")]
pub(crate) type DelayStage = msgr_dispatch::DelayedDelivery<Incoming<'static>>;

/// See the `inject` build of this type: without the feature there is no delay stage.
#[cfg(not(feature = "inject"))]
#[derive(Debug)]
pub(crate) enum DelayStage {}

#[cfg(not(feature = "inject"))]
impl DelayStage {
    pub(crate) fn push(&self, _: Incoming<'static>) {
        match *self {}
    }

    pub(crate) fn discard(&self) -> Vec<Incoming<'static>> {
        match *self {}
    }

    pub(crate) fn is_empty(&self) -> bool {
        match *self {}
    }

    pub(crate) async fn flush(&self) -> usize {
        match *self {}
    }
}

/// Holds `incoming` back in the delay stage `d`, no longer borrowing the reader's dispatch
/// throttle. Out of line: the reader's path without a delay stage then moves the message
/// straight to the host (made `'static` in place, it was copied once more on every
/// delivery, delayed or not).
#[cold]
#[inline(never)]
pub(crate) fn delay(d: &DelayStage, incoming: Incoming<'_>) {
    d.push(incoming.into_static());
}

/// The delay stage of session `id`, delivering to `sink`, when `config` asks for one
/// (`delay_probability > 0`); never without the `inject` feature.
pub(crate) fn delay_stage(
    config: &InjectConfig,
    id: ConnId,
    sink: impl Fn(Incoming<'static>) + Send + Sync + 'static,
) -> Option<DelayStage> {
    #[cfg(feature = "inject")]
    if config.delay_probability > 0.0 {
        let cfg = msgr_dispatch::DelayConfig {
            probability: config.delay_probability,
            max_delay: config.delay_max,
            seed: config.seed,
        };
        return Some(msgr_dispatch::DelayedDelivery::new(cfg, id, sink));
    }
    let _ = (config, id, sink);
    None
}

#[cfg(feature = "inject")]
mod stream;

#[cfg(all(test, feature = "inject"))]
mod tests {
    use super::*;
    use std::io;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// `wrap` leaves a transport alone (not even computing the seed) at 0, and injects at 1/1.
    #[tokio::test]
    async fn wrap_injects_only_when_asked() {
        let (a, mut b) = tokio::io::duplex(64);
        let mut seeded = false;
        let mut t = wrap(Box::new(a), 0, || {
            seeded = true;
            0
        });
        assert!(!seeded);
        t.write_all(b"x").await.unwrap();
        let mut one = [0u8; 1];
        b.read_exact(&mut one).await.unwrap();
        let (a, _b) = tokio::io::duplex(64);
        let mut t = wrap(Box::new(a), 1, || 5);
        let err = t.write_all(b"x").await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionAborted);
    }

    /// The delay stage exists only when a probability is set; the lossy-close delay is the
    /// configured one in this build.
    #[tokio::test]
    async fn delay_stage_and_close_delay_follow_the_config() {
        let off = InjectConfig::default();
        assert!(delay_stage(&off, 1, drop).is_none());
        let on = InjectConfig {
            delay_probability: 0.5,
            internal_delay: Duration::from_millis(3),
            ..InjectConfig::default()
        };
        assert!(delay_stage(&on, 1, drop).is_some_and(|d| d.is_empty()));
        assert_eq!(lossy_close_delay(&on), Duration::from_millis(3));
        const { assert!(ENABLED) };
    }

    #[test]
    fn seeds_replay_and_differ() {
        assert_eq!(mix_seed(1, b"a"), mix_seed(1, b"a"));
        assert_ne!(mix_seed(1, b"a"), mix_seed(1, b"b"));
        assert_ne!(mix_seed(1, b"a"), mix_seed(2, b"a"));
    }
}
