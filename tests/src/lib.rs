//! Shared helpers for msgr's integration tests.
