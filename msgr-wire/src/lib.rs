//! Ceph msgr v1 wire codec.
//!
//! Pure encode/decode of every structure of the msgr v1 protocol: banner, legacy entity
//! addresses, `ceph_msg_connect` / `ceph_msg_connect_reply`, tags, message headers, footers
//! and the seed-0 CRC-32C. This crate does no I/O, reads no clock and spawns nothing.
