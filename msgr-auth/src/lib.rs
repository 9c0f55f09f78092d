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
//!
//! ```
//! use msgr_auth::provider::*;
//! use msgr_auth::{EntityName, Keyring, UTime, ENTITY_OSD};
//! use rand::SeedableRng;
//!
//! let ring = Keyring::parse("[client.admin]\n\tkey = AQBmPhVrUfonABAAz1Hntf8c579RTfTJ47CacA==\n")?;
//! let key = ring.key(&EntityName::client("admin")).unwrap().clone();
//! let seeded = |s| Box::new(rand::rngs::StdRng::seed_from_u64(s));
//! let mon = CephxAuthServer::new(ring, TicketTtls::default(), 4100, seeded(1));
//! let mut client = CephxClient::new(EntityName::client("admin"), key, ENTITY_OSD, seeded(2));
//! let now = UTime::from_secs(1_700_000_000);
//!
//! // MAuth 1 (negotiation) is answered by start_session; then as many rounds as needed.
//! let (mut session, reply) = mon.start_session(client.name(), 0, now);
//! client.set_global_id(reply.global_id);
//! let mut progress = client.handle_reply(now, reply.result, &reply.payload)?;
//! while progress == ClientProgress::More {
//!     let reply = session.handle_request(now, &client.build_request(now)?);
//!     progress = client.handle_reply(now, reply.result, &reply.payload)?;
//! }
//! let authorizer = client.build_authorizer(ENTITY_OSD, now)?; // for the connect to an OSD
//! assert_eq!(client.global_id(), 4100);
//! # Ok::<(), msgr_auth::AuthError>(())
//! ```

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
#[cfg(test)]
mod test_util;

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
