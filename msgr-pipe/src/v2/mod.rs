//! msgr2.1, the second dialect of the session core.
//!
//! * [`frame`]: the banner and rev1 frames in crc and secure (AES-128-GCM) mode, sans-IO.
//! * [`connect`]: the connector handshake, sans-IO: mon mode (none, cephx) and authorizer
//!   mode, crc and secure, CLIENT_IDENT or SESSION_RECONNECT and their answers.
//! * [`accept`]: the acceptor handshake, sans-IO: the mon role over an `AuthServer`, or a
//!   service checking authorizers through the host's hook; CLIENT_IDENT and
//!   SESSION_RECONNECT are answered by the driver's decision.
//! * `exchange`: the byte side both handshakes share: banners, the logs AUTH_SIGNATURE signs,
//!   the switch to the negotiated mode.
//! * [`decide`]: that decision, Ceph's ProtocolV2 rules on cookies and `connect_seq`, as
//!   pure functions.
//! * [`session`]: the session phase's frames (MESSAGE with `ceph_msg_header2`, ACK,
//!   KEEPALIVE2/ACK) to and from the core's neutral frames.
//!
//! Not here: the session rules (sequence numbers, ACKs, resend, faults, backoff) are the
//! core's ([`crate::core`]), as for v1; sockets are the drivers' ([`crate::session`]).

pub mod accept;
pub mod connect;
pub mod decide;
mod exchange;
pub mod frame;
pub mod session;
