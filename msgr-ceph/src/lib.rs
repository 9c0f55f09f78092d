//! Bodies of Ceph's mon-facing messages: what a client exchanges with a `ceph-mon` to authenticate, follow the
//! monmap, subscribe to maps, read its configuration and run commands.
//!
//! Each type encodes and decodes the *front* of its message (and the data segment where Ceph puts part of the
//! message there), with Ceph's encoding rules (msgr-v1-wire.md §3.1, cephx-msgr2.md §1): integers little-endian at
//! natural size, strings and bufferlists as le32 length + bytes, containers as le32 count + elements, versioned
//! structures behind `ENCODE_START(version, compat)` headers ([`StructHeader`]): a compat version above the one
//! this crate knows is refused, the unknown trailing fields of a newer version are skipped. The header fields a
//! sender must set (`type`, `version`) are associated constants of each type.
//!
//! Decoders never panic on peer input: every length and count is checked against the bytes left before anything
//! is allocated or copied, and every failure is a [`BodyError`] naming the field.
//!
//! | type | id | header v | front |
//! |---|---:|---:|---|
//! | [`MPing`] | 2 | 1 | empty (the mon's reply carries a string) |
//! | [`MMonMap`] | 4 | 1 | bufferlist of a [`MonMap`] (v9: fsid, epoch, [`MonInfo`] with [`EntityAddrVec`], ranks, ...) |
//! | [`MMonSubscribe`] | 15 | 3 | `map<string, {le64 start, u8 flags}>`, hostname |
//! | [`MMonSubscribeAck`] | 16 | 1 | le32 interval, fsid |
//! | [`MAuth`] | 17 | 1 | [`PaxosPrefix`], protocol, auth payload ([`AuthNegotiation`]), monmap epoch |
//! | [`MAuthReply`] | 18 | 1 | protocol, result, global id, result bufferlist, result message |
//! | [`MMonGetVersion`] | 19 | 1 | le64 handle, what |
//! | [`MMonGetVersionReply`] | 20 | 2 | le64 handle, le64 version, le64 oldest version |
//! | [`MMonCommand`] | 50 | 1 | [`PaxosPrefix`], fsid (16 raw bytes), command strings; input in the data segment |
//! | [`MMonCommandAck`] | 51 | 1 | [`PaxosPrefix`], r, rs, command strings; output in the data segment |
//! | [`MConfig`] | 62 | 1 | `map<string, string>` |
//!
//! What this crate does not do: framing, headers, CRCs and sessions (`msgr-wire`, `msgr-pipe`), the contents of
//! cephx payloads (opaque [`bytes::Bytes`] here), and the other maps (osdmap, mgrmap), whose messages a client
//! receives but can pass over by type. It depends on `bytes`, `thiserror` and `msgr-wire` (for the sockaddr bytes every Ceph address shares).

mod addr;
mod auth;
mod codec;
mod command;
mod config;
mod error;
mod fsid;
mod monmap;
mod ping;
mod subscribe;
mod version;

pub use addr::{
    EntityAddr, EntityAddrVec, ADDR_TYPE_ANY, ADDR_TYPE_LEGACY, ADDR_TYPE_MSGR2, ADDR_TYPE_NONE,
};
pub use auth::{
    AuthNegotiation, MAuth, MAuthReply, AUTH_CEPHX, AUTH_NONE, AUTH_UNKNOWN, ENTITY_TYPE_CLIENT,
    ENTITY_TYPE_MON, ENTITY_TYPE_OSD,
};
pub use codec::{StructHeader, UTime};
pub use command::{MMonCommand, MMonCommandAck};
pub use config::MConfig;
pub use error::BodyError;
pub use fsid::{Fsid, PaxosPrefix};
pub use monmap::{MMonMap, MonInfo, MonMap, ELECTION_CLASSIC};
pub use ping::MPing;
pub use subscribe::{MMonSubscribe, MMonSubscribeAck, SubscribeItem, SUBSCRIBE_ONETIME};
pub use version::{MMonGetVersion, MMonGetVersionReply};
