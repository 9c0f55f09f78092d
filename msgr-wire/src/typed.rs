//! Typed messages (placeholder replaced below).
