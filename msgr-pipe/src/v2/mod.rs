//! msgr2.1 as a second dialect of the session core (in progress): the frame layer.
//!
//! * [`frame`]: the banner and rev1 frames in crc and secure (AES-128-GCM) mode, sans-IO.
//!
//! Not here yet: the v2 handshake (HELLO, AUTH_*, IDENT, session reconnect) and its drivers;
//! the session rules are the core's ([`crate::core`]), as for v1.

pub mod frame;
