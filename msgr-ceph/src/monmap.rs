//! The monitor map: [`MMonMap`] (type 4) and the [`MonMap`] it carries (`src/messages/MMonMap.h`,
//! `src/mon/MonMap.{h,cc}`), enough to follow a cluster's mons: epoch, fsid, each mon's name, addresses
//! (v1 and v2), priority, weight and location, the ranks, and the election and stretch-mode fields.
//!
//! ```text
//! MMonMap front: bufferlist monmapbl
//! MonMap   ENCODE_START(9, 6): fsid 16 | le32 epoch | utime last_changed | utime created |
//!          mon_feature_t persistent | mon_feature_t optional | map<string, mon_info_t> |
//!          v6: vector<string> ranks | v7: u8 min_mon_release |
//!          v8: set<s32> removed_ranks, u8 strategy, set<string> disallowed_leaders |
//!          v9: bool stretch_mode_enabled, string tiebreaker_mon, set<string> stretch_marked_down_mons
//! mon_info_t  ENCODE_START(5, 1): string name | entity_addrvec_t public_addrs | v2: le16 priority |
//!          v4: le16 weight | v5: map<string, string> crush_loc
//! mon_feature_t ENCODE_START(1, 1): le64 features
//! ```
//!
//! Monmaps older than version 6 (pre-Luminous, with a `mon_addr` map instead of ranks) are refused with
//! [`BodyError::UnsupportedVersion`]; fields a newer encoder appends are skipped, as Ceph's `DECODE_FINISH` does.

use std::collections::BTreeMap;

use bytes::{Buf, BufMut, Bytes};

use crate::addr::EntityAddrVec;
use crate::codec::{
    finish, get_blob, get_bool, get_count, get_string, get_string_map, get_strings, get_u16,
    get_u32, get_u64, get_u8, get_vec, need, put_blob, put_string_map, put_strings, to_bytes,
    StructHeader, UTime,
};
use crate::{BodyError, Fsid};

/// `MonMap::CLASSIC`: the rank-based election strategy, the default.
pub const ELECTION_CLASSIC: u8 = 1;

/// One monitor: `mon_info_t`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MonInfo {
    /// The mon's name (`a` for `mon.a`).
    pub name: String,
    /// Where it listens: its v2 and v1 addresses.
    pub public_addrs: EntityAddrVec,
    /// Priority among mons for clients (lower is preferred), version 2 and later.
    pub priority: u16,
    /// Weight among mons of equal priority, version 4 and later.
    pub weight: u16,
    /// CRUSH location (stretch clusters), version 5 and later.
    pub crush_loc: BTreeMap<String, String>,
}

impl MonInfo {
    const STRUCT: StructHeader = StructHeader {
        version: 5,
        compat: 1,
    };

    /// Appends the version-5 encoding Pacific writes.
    pub fn encode(&self, buf: &mut impl BufMut) {
        let mut body = Vec::new();
        put_blob(&mut body, self.name.as_bytes());
        self.public_addrs.encode(&mut body);
        body.put_u16_le(self.priority);
        body.put_u16_le(self.weight);
        put_string_map(&mut body, &self.crush_loc);
        Self::STRUCT.encode(buf, &body);
    }

    /// Reads any version up to 5, and later ones whose compat allows it.
    pub fn decode(buf: &mut impl Buf) -> Result<Self, BodyError> {
        let (header, mut body) = StructHeader::decode(buf, "mon_info_t", Self::STRUCT.version)?;
        let v = header.version;
        let name = get_string(&mut body, "mon name")?;
        let public_addrs = EntityAddrVec::decode(&mut body)?;
        let priority = if v >= 2 {
            get_u16(&mut body, "mon priority")?
        } else {
            0
        };
        let weight = if v >= 4 {
            get_u16(&mut body, "mon weight")?
        } else {
            0
        };
        let crush_loc = if v >= 5 {
            get_string_map(&mut body, "mon crush_loc")?
        } else {
            BTreeMap::new()
        };
        Ok(Self {
            name,
            public_addrs,
            priority,
            weight,
            crush_loc,
        })
    }
}

/// `mon_feature_t`: a versioned le64 feature mask.
fn encode_features(buf: &mut impl BufMut, features: u64) {
    StructHeader {
        version: 1,
        compat: 1,
    }
    .encode(buf, &features.to_le_bytes());
}

fn decode_features(buf: &mut impl Buf) -> Result<u64, BodyError> {
    let (_, mut body) = StructHeader::decode(buf, "mon_feature_t", 1)?;
    get_u64(&mut body, "mon features")
}

/// The monitor map (`MonMap`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MonMap {
    /// The cluster's fsid.
    pub fsid: Fsid,
    /// The map's epoch.
    pub epoch: u32,
    /// When the map last changed.
    pub last_changed: UTime,
    /// When the cluster was created.
    pub created: UTime,
    /// `persistent_features` (`ceph::features::mon`), e.g. 0xff on Pacific.
    pub persistent_features: u64,
    /// `optional_features`.
    pub optional_features: u64,
    /// The mons, by name.
    pub mons: BTreeMap<String, MonInfo>,
    /// Mon names in rank order (version 6 and later).
    pub ranks: Vec<String>,
    /// `ceph_release_t` of the oldest mon allowed (16 = Pacific; 0 if unknown, before version 7).
    pub min_mon_release: u8,
    /// Ranks removed since the last election (version 8 and later).
    pub removed_ranks: Vec<i32>,
    /// Election strategy, [`ELECTION_CLASSIC`] by default (version 8 and later).
    pub strategy: u8,
    /// Mons that may not lead (version 8 and later).
    pub disallowed_leaders: Vec<String>,
    /// Whether stretch mode is on (version 9 and later).
    pub stretch_mode_enabled: bool,
    /// The stretch tiebreaker mon (version 9 and later).
    pub tiebreaker_mon: String,
    /// Mons marked down in degraded stretch mode (version 9 and later).
    pub stretch_marked_down_mons: Vec<String>,
}

impl MonMap {
    const STRUCT: StructHeader = StructHeader {
        version: 9,
        compat: 6,
    };
    /// The oldest version this crate decodes (the first with `ranks`).
    pub const OLDEST_VERSION: u8 = 6;

    /// The mon ranked `rank`.
    pub fn mon_by_rank(&self, rank: usize) -> Option<&MonInfo> {
        self.mons.get(self.ranks.get(rank)?)
    }

    /// Appends the version-9 encoding Pacific writes.
    pub fn encode(&self, buf: &mut impl BufMut) {
        let mut body = Vec::new();
        self.fsid.encode(&mut body);
        body.put_u32_le(self.epoch);
        self.last_changed.encode(&mut body);
        self.created.encode(&mut body);
        encode_features(&mut body, self.persistent_features);
        encode_features(&mut body, self.optional_features);
        body.put_u32_le(self.mons.len() as u32);
        for (name, info) in &self.mons {
            put_blob(&mut body, name.as_bytes());
            info.encode(&mut body);
        }
        put_strings(&mut body, self.ranks.iter());
        body.put_u8(self.min_mon_release);
        body.put_u32_le(self.removed_ranks.len() as u32);
        for rank in &self.removed_ranks {
            body.put_i32_le(*rank);
        }
        body.put_u8(self.strategy);
        put_strings(&mut body, self.disallowed_leaders.iter());
        body.put_u8(u8::from(self.stretch_mode_enabled));
        put_blob(&mut body, self.tiebreaker_mon.as_bytes());
        put_strings(&mut body, self.stretch_marked_down_mons.iter());
        Self::STRUCT.encode(buf, &body);
    }

    /// Reads a monmap of version 6 to 9 (and newer ones whose compat is at most 9).
    pub fn decode(buf: &mut impl Buf) -> Result<Self, BodyError> {
        need(buf, "monmap", 1)?;
        let version = buf.chunk().first().copied().unwrap_or(0);
        if version < Self::OLDEST_VERSION {
            // Versions below 3 do not even have the compat byte and length of ENCODE_START.
            return Err(BodyError::UnsupportedVersion {
                field: "monmap",
                version,
            });
        }
        let (header, mut body) = StructHeader::decode(buf, "monmap", Self::STRUCT.version)?;
        let v = header.version;
        let b = &mut body;
        let mut map = Self {
            fsid: Fsid::decode(b)?,
            epoch: get_u32(b, "monmap epoch")?,
            last_changed: UTime::decode(b, "monmap last_changed")?,
            created: UTime::decode(b, "monmap created")?,
            persistent_features: decode_features(b)?,
            optional_features: decode_features(b)?,
            mons: decode_mons(b)?,
            ranks: get_strings(b, "monmap ranks")?,
            strategy: ELECTION_CLASSIC,
            ..Self::default()
        };
        if v >= 7 {
            map.min_mon_release = get_u8(b, "min_mon_release")?;
        }
        if v >= 8 {
            map.removed_ranks = get_vec(b, "removed_ranks", 4, |b| {
                Ok(get_u32(b, "removed_ranks")? as i32)
            })?;
            map.strategy = get_u8(b, "election strategy")?;
            map.disallowed_leaders = get_strings(b, "disallowed_leaders")?;
        }
        if v >= 9 {
            map.stretch_mode_enabled = get_bool(b, "stretch_mode_enabled")?;
            map.tiebreaker_mon = get_string(b, "tiebreaker_mon")?;
            map.stretch_marked_down_mons = get_strings(b, "stretch_marked_down_mons")?;
        }
        Ok(map)
    }
}

/// `map<string, mon_info_t>`; a mon_info_t takes at least its 6-byte header.
fn decode_mons(buf: &mut impl Buf) -> Result<BTreeMap<String, MonInfo>, BodyError> {
    let count = get_count(buf, "monmap mons", 4 + StructHeader::LEN)?;
    let mut mons = BTreeMap::new();
    for _ in 0..count {
        let name = get_string(buf, "mon name")?;
        mons.insert(name, MonInfo::decode(buf)?);
    }
    Ok(mons)
}

/// `MMonMap` (type 4), mon → client: the monmap, sent after authentication and to `monmap` subscribers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MMonMap {
    /// The map.
    pub monmap: MonMap,
}

impl MMonMap {
    /// `CEPH_MSG_MON_MAP`.
    pub const TYPE: u16 = 4;
    /// Header version.
    pub const VERSION: u16 = 1;

    /// Appends the front: the encoded map as a bufferlist.
    pub fn encode(&self, buf: &mut impl BufMut) {
        let map = to_bytes(|b| self.monmap.encode(b));
        put_blob(buf, &map);
    }

    /// The encoded front.
    pub fn to_front(&self) -> Bytes {
        to_bytes(|b| self.encode(b))
    }

    /// Reads a whole front. Bytes after the map inside its bufferlist are ignored, as Ceph's `MonMap::decode`
    /// ignores them; bytes after the bufferlist are an error.
    pub fn decode(front: &mut impl Buf) -> Result<Self, BodyError> {
        let mut bl = get_blob(front, "monmap bufferlist")?;
        finish(front)?;
        Ok(Self {
            monmap: MonMap::decode(&mut bl)?,
        })
    }
}
