//! Entity types and names (`CEPH_ENTITY_TYPE_*`, `ceph_entity_name`, spec §2.6).

use std::fmt;
use std::str::FromStr;

use bytes::{Buf, BufMut};

use crate::consts::ENTITY_NAME_LEN;
use crate::error::{need, WireError};
use crate::Wire;

/// An entity type. A newtype over the wire byte so that unknown values survive a round trip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct EntityType(pub u8);

impl EntityType {
    /// A monitor.
    pub const MON: EntityType = EntityType(0x01);
    /// A metadata server.
    pub const MDS: EntityType = EntityType(0x02);
    /// An OSD.
    pub const OSD: EntityType = EntityType(0x04);
    /// A client.
    pub const CLIENT: EntityType = EntityType(0x08);
    /// A manager (userspace only).
    pub const MGR: EntityType = EntityType(0x10);
    /// Auth (keys, not connections).
    pub const AUTH: EntityType = EntityType(0x20);
    /// Any type.
    pub const ANY: EntityType = EntityType(0xff);

    /// The short name (`mon`, `mds`, `osd`, `client`, `mgr`, `auth`, `any`), or `None` if unknown.
    pub const fn name(self) -> Option<&'static str> {
        match self.0 {
            0x01 => Some("mon"),
            0x02 => Some("mds"),
            0x04 => Some("osd"),
            0x08 => Some("client"),
            0x10 => Some("mgr"),
            0x20 => Some("auth"),
            0xff => Some("any"),
            _ => None,
        }
    }

    /// The `u32` form used in `ceph_msg_connect.host_type`.
    pub const fn host_type(self) -> u32 {
        self.0 as u32
    }
}

impl fmt::Display for EntityType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "type{}", self.0),
        }
    }
}

/// A string that is not a known entity type or `TYPE.NUM` name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid entity {input:?}: expected TYPE or TYPE.NUM with TYPE one of mon, mds, osd, client, mgr, auth, any")]
pub struct ParseEntityError {
    input: String,
}

impl FromStr for EntityType {
    type Err = ParseEntityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let all = [
            EntityType::MON,
            EntityType::MDS,
            EntityType::OSD,
            EntityType::CLIENT,
            EntityType::MGR,
            EntityType::AUTH,
            EntityType::ANY,
        ];
        all.into_iter()
            .find(|t| t.name() == Some(s))
            .or_else(|| {
                s.strip_prefix("type")
                    .and_then(|n| n.parse().ok())
                    .map(EntityType)
            })
            .ok_or_else(|| ParseEntityError { input: s.into() })
    }
}

/// `ceph_entity_name`: a type and a number (9 bytes: u8 type, le64 signed num).
///
/// A client without a global id yet uses `num = -1` ([`EntityName::NEW`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct EntityName {
    /// The entity type.
    pub ty: EntityType,
    /// The number: client global id, mon rank, osd id.
    pub num: i64,
}

impl EntityName {
    /// The number of an entity that has none yet.
    pub const NEW: i64 = -1;

    /// A name from type and number.
    pub const fn new(ty: EntityType, num: i64) -> Self {
        EntityName { ty, num }
    }

    /// `client.NUM`.
    pub const fn client(num: i64) -> Self {
        EntityName::new(EntityType::CLIENT, num)
    }

    /// `mon.RANK`.
    pub const fn mon(rank: i64) -> Self {
        EntityName::new(EntityType::MON, rank)
    }

    /// `osd.ID`.
    pub const fn osd(id: i64) -> Self {
        EntityName::new(EntityType::OSD, id)
    }
}

impl Wire for EntityName {
    fn encode(&self, buf: &mut impl BufMut) {
        buf.put_u8(self.ty.0);
        buf.put_i64_le(self.num);
    }

    fn decode(buf: &mut impl Buf) -> Result<Self, WireError> {
        need("entity name", buf.remaining(), ENTITY_NAME_LEN)?;
        let ty = EntityType(buf.get_u8());
        let num = buf.get_i64_le();
        Ok(EntityName { ty, num })
    }
}

impl fmt::Display for EntityName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.ty, self.num)
    }
}

impl FromStr for EntityName {
    type Err = ParseEntityError;

    /// Parses `TYPE.NUM` with a numeric (possibly negative) `NUM`, e.g. `client.4123`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseEntityError { input: s.into() };
        let (ty, num) = s.split_once('.').ok_or_else(err)?;
        let ty = ty.parse().map_err(|_| err())?;
        let num = num.parse().map_err(|_| err())?;
        Ok(EntityName { ty, num })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_and_parse() {
        let n = EntityName::client(4123);
        assert_eq!(n.to_string(), "client.4123");
        assert_eq!("client.4123".parse::<EntityName>(), Ok(n));
        assert_eq!("mon.-1".parse::<EntityName>(), Ok(EntityName::mon(-1)));
        assert_eq!(EntityType(0x40).to_string(), "type64");
        assert_eq!("type64".parse::<EntityType>(), Ok(EntityType(0x40)));
        assert!("client.admin".parse::<EntityName>().is_err());
        assert!("bogus.1".parse::<EntityName>().is_err());
    }

    #[test]
    fn wire_layout() {
        let mut v = Vec::new();
        EntityName::client(-1).encode(&mut v);
        assert_eq!(v, [8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(EntityName::decode(&mut &v[..]), Ok(EntityName::client(-1)));
        assert!(EntityName::decode(&mut &v[..8]).is_err());
    }
}
