//! Subscriptions: [`MMonSubscribe`] (type 15) asks the mon for maps (`monmap`, `config`, `osdmap`, ...) from an
//! epoch on; [`MMonSubscribeAck`] (type 16) tells how long the subscription lasts (`src/messages/MMonSubscribe.h`,
//! `MMonSubscribeAck.h`, `ceph_mon_subscribe_item` in `include/ceph_fs.h`).
//!
//! ```text
//! header v2+: map<string, ceph_mon_subscribe_item { le64 start; u8 flags }>   (9 bytes packed per item)
//! header v3+: + string hostname
//! header v0/1: map<string, ceph_mon_subscribe_item_old { le64 unused; le64 have; u8 onetime }>
//! ```

use std::collections::BTreeMap;

use bytes::{Buf, BufMut, Bytes};

use crate::codec::{
    finish, finish_front, get_count, get_string, get_u32, get_u64, get_u8, put_blob, to_bytes,
};
use crate::{BodyError, Fsid};

/// `CEPH_SUBSCRIBE_ONETIME`: send the next map once, then forget the subscription.
pub const SUBSCRIBE_ONETIME: u8 = 1;

/// One subscription: `ceph_mon_subscribe_item`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SubscribeItem {
    /// The first epoch wanted (0: the current map; `have + 1` to get only newer ones).
    pub start: u64,
    /// [`SUBSCRIBE_ONETIME`] or 0.
    pub flags: u8,
}

impl SubscribeItem {
    /// Encoded size of the packed item.
    pub const LEN: usize = 9;

    /// Whether the subscription is one-time.
    pub fn onetime(&self) -> bool {
        self.flags & SUBSCRIBE_ONETIME != 0
    }
}

/// `MMonSubscribe` (type 15), client → mon.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MMonSubscribe {
    /// What is subscribed to, by map name, in key order as Ceph's `std::map` encodes it.
    pub what: BTreeMap<String, SubscribeItem>,
    /// The client's host name (header version 3 and later).
    pub hostname: String,
}

impl MMonSubscribe {
    /// `CEPH_MSG_MON_SUBSCRIBE`.
    pub const TYPE: u16 = 15;
    /// Header version Pacific sends (3: items with flags, then the host name).
    pub const VERSION: u16 = 3;
    /// Header compat version.
    pub const COMPAT_VERSION: u16 = 1;

    /// Appends the version-3 front.
    pub fn encode(&self, buf: &mut impl BufMut) {
        buf.put_u32_le(self.what.len() as u32);
        for (name, item) in &self.what {
            put_blob(buf, name.as_bytes());
            buf.put_u64_le(item.start);
            buf.put_u8(item.flags);
        }
        put_blob(buf, self.hostname.as_bytes());
    }

    /// The encoded front.
    pub fn to_front(&self) -> Bytes {
        to_bytes(|b| self.encode(b))
    }

    /// Reads a front sent with header version `version`. Versions 0 and 1 carry the old items, converted as
    /// Ceph does: `start = have + 1` (0 when `have` is 0), `onetime` becomes [`SUBSCRIBE_ONETIME`].
    pub fn decode(front: &mut impl Buf, version: u16) -> Result<Self, BodyError> {
        let mut what = BTreeMap::new();
        if version < 2 {
            let count = get_count(front, "subscriptions", 4 + 17)?;
            for _ in 0..count {
                let name = get_string(front, "subscription name")?;
                let _unused = get_u64(front, "subscription")?;
                let have = get_u64(front, "subscription")?;
                let onetime = get_u8(front, "subscription")? != 0;
                let item = SubscribeItem {
                    start: if have == 0 { 0 } else { have.wrapping_add(1) },
                    flags: if onetime { SUBSCRIBE_ONETIME } else { 0 },
                };
                what.insert(name, item);
            }
            finish(front)?;
            return Ok(Self {
                what,
                hostname: String::new(),
            });
        }
        let count = get_count(front, "subscriptions", 4 + SubscribeItem::LEN)?;
        for _ in 0..count {
            let name = get_string(front, "subscription name")?;
            let item = SubscribeItem {
                start: get_u64(front, "subscription start")?,
                flags: get_u8(front, "subscription flags")?,
            };
            what.insert(name, item);
        }
        let hostname = if version >= 3 {
            get_string(front, "hostname")?
        } else {
            String::new()
        };
        finish_front(front, version, Self::VERSION)?;
        Ok(Self { what, hostname })
    }
}

/// `MMonSubscribeAck` (type 16), mon → client: the renewal interval and the cluster's fsid. Modern mons send it
/// only to clients without the `MON_STATEFUL_SUB` feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MMonSubscribeAck {
    /// Seconds after which the client should renew its subscriptions.
    pub interval: u32,
    /// The cluster's fsid.
    pub fsid: Fsid,
}

impl MMonSubscribeAck {
    /// `CEPH_MSG_MON_SUBSCRIBE_ACK`.
    pub const TYPE: u16 = 16;
    /// Header version.
    pub const VERSION: u16 = 1;

    /// Appends the front.
    pub fn encode(&self, buf: &mut impl BufMut) {
        buf.put_u32_le(self.interval);
        self.fsid.encode(buf);
    }

    /// The encoded front.
    pub fn to_front(&self) -> Bytes {
        to_bytes(|b| self.encode(b))
    }

    /// Reads a whole front.
    pub fn decode(front: &mut impl Buf) -> Result<Self, BodyError> {
        let ack = Self {
            interval: get_u32(front, "interval")?,
            fsid: Fsid::decode(front)?,
        };
        finish(front)?;
        Ok(ack)
    }
}
