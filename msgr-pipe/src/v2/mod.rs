//! msgr2.1 as a second dialect of the session core (in progress): the frame layer.
//!
//! * [`frame`]: the banner and rev1 frames in crc and secure (AES-128-GCM) mode, sans-IO.
//! * [`connect`]: the connector handshake in mon mode (none, cephx; crc, secure), sans-IO.
//! * [`accept`]: the acceptor handshake in the mon role over an `AuthServer`, sans-IO.
//!
//! Not here yet: authorizer mode, session reconnect, and the drivers
//! that put v2 sessions on sockets; the session rules will be the core's ([`crate::core`]),
//! as for v1.

pub mod accept;
pub mod connect;
pub mod frame;
