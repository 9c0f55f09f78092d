//! Errors of this crate.

use thiserror::Error;

/// Errors of a [`Throttle`](crate::Throttle).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ThrottleError {
    /// More units were released than the throttle holds (an accounting leak in the caller).
    #[error("throttle underflow: releasing {release} units while only {held} are held")]
    Underflow {
        /// Units held when the release was attempted.
        held: u64,
        /// Units the caller tried to release.
        release: u64,
    },
}

/// A configuration value out of range, reported by the `validate` methods.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A delay probability is not a number in `[0, 1]`.
    #[error("delay probability {0} is not within [0, 1]")]
    Probability(f64),
    /// The minimum cost of a normal-queue item exceeds the token cap.
    #[error("minimum cost {min_cost} exceeds the token cap {max_tokens}")]
    MinCostAboveCap {
        /// The configured minimum cost.
        min_cost: u64,
        /// The configured per-priority token cap.
        max_tokens: u64,
    },
}
