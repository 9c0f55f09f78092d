//! Ceph's `EntityName` (a type and a string id, `client.admin`) and the entity type codes
//! cephx uses as service ids. Not the `entity_name_t` of message headers (type and number):
//! that one lives in `msgr-wire`.

use std::fmt;
use std::str::FromStr;

use bytes::{Buf, BufMut};

use crate::codec::{get_string, get_u32, put_blob, Decode, Encode};
use crate::AuthError;

/// `CEPH_ENTITY_TYPE_MON`.
pub const ENTITY_MON: u32 = 0x01;
/// `CEPH_ENTITY_TYPE_MDS`.
pub const ENTITY_MDS: u32 = 0x02;
/// `CEPH_ENTITY_TYPE_OSD`.
pub const ENTITY_OSD: u32 = 0x04;
/// `CEPH_ENTITY_TYPE_CLIENT`.
pub const ENTITY_CLIENT: u32 = 0x08;
/// `CEPH_ENTITY_TYPE_MGR`.
pub const ENTITY_MGR: u32 = 0x10;
/// `CEPH_ENTITY_TYPE_AUTH`: the monitors' auth service, whose ticket buys the others.
pub const ENTITY_AUTH: u32 = 0x20;

const NAMES: [(u32, &str); 6] = [
    (ENTITY_MON, "mon"),
    (ENTITY_MDS, "mds"),
    (ENTITY_OSD, "osd"),
    (ENTITY_CLIENT, "client"),
    (ENTITY_MGR, "mgr"),
    (ENTITY_AUTH, "auth"),
];

/// The name of an entity type (`osd` for 4), or `None` for an unknown code.
pub fn entity_type_name(ty: u32) -> Option<&'static str> {
    NAMES.iter().find(|(t, _)| *t == ty).map(|(_, n)| *n)
}

/// Ceph's `EntityName`: `u32 type` + `string id`; `client.admin` is (8, "admin"), `mon.` is (1, "").
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EntityName {
    /// Entity type code (`ENTITY_*`).
    pub ty: u32,
    /// The id after the dot.
    pub id: String,
}

impl EntityName {
    /// A name of type `ty` and id `id`.
    pub fn new(ty: u32, id: impl Into<String>) -> Self {
        EntityName { ty, id: id.into() }
    }

    /// `client.ID`.
    pub fn client(id: impl Into<String>) -> Self {
        Self::new(ENTITY_CLIENT, id)
    }

    /// Whether Ceph gives this entity rotating service keys (OSD, MDS, MGR:
    /// `auth_principal_needs_rotating_keys`).
    pub fn needs_rotating_keys(&self) -> bool {
        matches!(self.ty, ENTITY_OSD | ENTITY_MDS | ENTITY_MGR)
    }
}

impl fmt::Display for EntityName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match entity_type_name(self.ty) {
            Some(n) => write!(f, "{n}.{}", self.id),
            None => write!(f, "{:#x}.{}", self.ty, self.id),
        }
    }
}

impl FromStr for EntityName {
    type Err = AuthError;

    fn from_str(s: &str) -> Result<Self, AuthError> {
        let bad = || AuthError::BadEntityName {
            name: s.to_string(),
        };
        let (ty, id) = s.split_once('.').ok_or_else(bad)?;
        let ty = NAMES
            .iter()
            .find(|(_, n)| *n == ty)
            .map(|(t, _)| *t)
            .ok_or_else(bad)?;
        Ok(EntityName::new(ty, id))
    }
}

impl Encode for EntityName {
    fn encode(&self, buf: &mut impl BufMut) {
        buf.put_u32_le(self.ty);
        put_blob(buf, self.id.as_bytes());
    }
}

impl Decode for EntityName {
    fn decode(buf: &mut impl Buf) -> Result<Self, AuthError> {
        let ty = get_u32(buf, "EntityName.type")?;
        let id = get_string(buf, "EntityName.id")?;
        Ok(EntityName { ty, id })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_print_and_encode_as_ceph_does() {
        let admin: EntityName = "client.admin".parse().unwrap();
        assert_eq!(admin, EntityName::client("admin"));
        assert_eq!(admin.to_string(), "client.admin");
        assert_eq!(&admin.to_bytes()[..], b"\x08\0\0\0\x05\0\0\0admin");
        let mon: EntityName = "mon.".parse().unwrap();
        assert_eq!((mon.ty, mon.id.as_str()), (ENTITY_MON, ""));
        assert!("osd.0".parse::<EntityName>().unwrap().needs_rotating_keys());
        assert!("nope.0".parse::<EntityName>().is_err());
        assert!("client".parse::<EntityName>().is_err());
    }
}
