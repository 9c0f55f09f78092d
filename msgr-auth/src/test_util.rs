//! Helpers of the unit tests: hex literals and the spec's known-answer key (§G.6).
#![allow(clippy::unwrap_used)]

use crate::CryptoKey;

/// Bytes of a hex literal.
pub(crate) fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// The key 00 01 .. 0f of the spec's known-answer vectors.
pub(crate) fn kat_key() -> CryptoKey {
    CryptoKey::aes(*b"\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f")
}
