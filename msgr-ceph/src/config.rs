//! [`MConfig`] (type 62): the mon's configuration for this entity, sent after a `config` subscription
//! (`src/messages/MConfig.h`). The values are option strings as `ceph config set` stored them; this crate does not
//! interpret them.

use std::collections::BTreeMap;

use bytes::{Buf, BufMut, Bytes};

use crate::codec::{finish, get_string_map, put_string_map, to_bytes};
use crate::BodyError;

/// `MConfig` (type 62), mon → client: `map<string, string>` of option name to value.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MConfig {
    /// Option name → value, in key order as Ceph encodes it.
    pub config: BTreeMap<String, String>,
}

impl MConfig {
    /// `MSG_CONFIG`.
    pub const TYPE: u16 = 62;
    /// Header version.
    pub const VERSION: u16 = 1;

    /// Appends the front.
    pub fn encode(&self, buf: &mut impl BufMut) {
        put_string_map(buf, &self.config);
    }

    /// The encoded front.
    pub fn to_front(&self) -> Bytes {
        to_bytes(|b| self.encode(b))
    }

    /// Reads a whole front.
    pub fn decode(front: &mut impl Buf) -> Result<Self, BodyError> {
        let config = get_string_map(front, "config")?;
        finish(front)?;
        Ok(Self { config })
    }
}
