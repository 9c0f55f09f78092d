//! Ceph authentication for msgr: `none` and `cephx`, client and server sides.
//!
//! What it does:
//! * Ceph's encoding of what cephx needs ([`Encode`]/[`Decode`], never panicking on peer
//!   input, lengths checked against limits before allocating), [`EntityName`], [`UTime`].
//! * [`CryptoKey`] and keyring files as `ceph-authtool` writes them ([`Keyring`]); secrets
//!   ([`Secret`]) never reach `Debug` and compare in constant time.
//! * AES-128-CBC with Ceph's IV and padding ([`crypto`]) and the cephx envelope ([`envelope`]).
//! * Every cephx structure, the challenge key (with the length-prefix pitfall), ticket replies,
//!   rotating secrets, the authorizer with CHALLENGE_AUTHORIZER and its nonce + 1 reply
//!   ([`cephx`]); msgr v1 message signatures in both formats ([`signature`]).
//! * The provider traits the messenger calls ([`provider`]): [`provider::AuthClient`] (MAuth
//!   rounds, tickets, authorizers), [`provider::AuthServer`] (a mon's auth service issuing
//!   tickets from a keyring), [`provider::AuthorizerVerifier`] (a service verifying
//!   authorizers with rotating secrets), for `none` and `cephx`, all in memory.
//!
//! * The split of a msgr2 connection secret into AES-GCM key and nonces ([`connection_secret`]).
//!
//! What it does not do: no I/O, no clock (time is passed in as [`UTime`]), no global
//! randomness (generators are handed in, so runs replay); no MAuth message framing (that is
//! the messenger's), no msgr2 (AUTH_SIGNATURE HMAC, AES-GCM), no key types newer than
//! Pacific's AES-128, no caps parsing (caps travel as bytes), no ceph.conf.
//!
//! Everything is checked against the spec's vectors produced by a real Pacific 16.2.15 mon.

pub mod cephx;
mod codec;
pub mod connection_secret;
pub mod crypto;
mod entity;
pub mod envelope;
mod error;
mod key;
mod keyring;
pub mod provider;
pub mod signature;

pub use codec::{Decode, Encode, UTime, MAX_BLOB_LEN, MAX_COUNT};
pub use entity::{
    entity_type_name, EntityName, ENTITY_AUTH, ENTITY_CLIENT, ENTITY_MDS, ENTITY_MGR, ENTITY_MON,
    ENTITY_OSD,
};
pub use error::AuthError;
pub use key::{CryptoKey, KeyType, Secret, AES_KEY_LEN};
pub use keyring::{Keyring, KeyringEntry};

/// `CEPH_AUTH_UNKNOWN`: the protocol of the first (negotiation) MAuth.
pub const CEPH_AUTH_UNKNOWN: u32 = 0;
/// `CEPH_AUTH_NONE`.
pub const CEPH_AUTH_NONE: u32 = 1;
/// `CEPH_AUTH_CEPHX`.
pub const CEPH_AUTH_CEPHX: u32 = 2;
/// `EACCES`, as a negative result.
pub const EACCES: i32 = -13;
/// `ENOTSUP` (EOPNOTSUPP), as a negative result.
pub const ENOTSUP: i32 = -95;
