//! Map versions: [`MMonGetVersion`] (type 19) asks the mon for the newest epoch of a map, [`MMonGetVersionReply`]
//! (type 20) answers (`src/messages/MMonGetVersion.h`, `MMonGetVersionReply.h`). What `rados` clients send to
//! wait for an osdmap; the `ceph` CLI does not.

use bytes::{Buf, BufMut, Bytes};

use crate::codec::{finish_front, get_string, get_u64, put_blob, to_bytes};
use crate::BodyError;

/// `MMonGetVersion` (type 19), client → mon: "what is the newest version of map `what`?".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MMonGetVersion {
    /// The client's id for this request, echoed in the reply (Ceph also sets it as the header tid).
    pub handle: u64,
    /// The map: `osdmap`, `mdsmap`, `monmap`, `mgrmap`, ...
    pub what: String,
}

impl MMonGetVersion {
    /// `CEPH_MSG_MON_GET_VERSION`.
    pub const TYPE: u16 = 19;
    /// Header version.
    pub const VERSION: u16 = 1;

    /// Appends the front.
    pub fn encode(&self, buf: &mut impl BufMut) {
        buf.put_u64_le(self.handle);
        put_blob(buf, self.what.as_bytes());
    }

    /// The encoded front.
    pub fn to_front(&self) -> Bytes {
        to_bytes(|b| self.encode(b))
    }

    /// Reads a front sent with header version `version` (bytes after the last field are refused unless the
    /// version is newer than [`Self::VERSION`]).
    pub fn decode(front: &mut impl Buf, version: u16) -> Result<Self, BodyError> {
        let msg = Self {
            handle: get_u64(front, "handle")?,
            what: get_string(front, "what")?,
        };
        finish_front(front, version, Self::VERSION)?;
        Ok(msg)
    }
}

/// `MMonGetVersionReply` (type 20), mon → client: the newest and oldest versions of the map asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MMonGetVersionReply {
    /// The request's handle.
    pub handle: u64,
    /// The newest version (epoch) the mon has.
    pub version: u64,
    /// The oldest version it still has (header version 2 and later; 0 from a version-1 sender).
    pub oldest_version: u64,
}

impl MMonGetVersionReply {
    /// `CEPH_MSG_MON_GET_VERSION_REPLY`.
    pub const TYPE: u16 = 20;
    /// Header version: 2 added `oldest_version`.
    pub const VERSION: u16 = 2;

    /// Appends the front (the version-2 layout).
    pub fn encode(&self, buf: &mut impl BufMut) {
        buf.put_u64_le(self.handle);
        buf.put_u64_le(self.version);
        buf.put_u64_le(self.oldest_version);
    }

    /// The encoded front.
    pub fn to_front(&self) -> Bytes {
        to_bytes(|b| self.encode(b))
    }

    /// Reads a front sent with header version `version`: `oldest_version` only from version 2 on, as Ceph does.
    pub fn decode(front: &mut impl Buf, version: u16) -> Result<Self, BodyError> {
        let handle = get_u64(front, "handle")?;
        let newest = get_u64(front, "version")?;
        let oldest_version = if version >= 2 {
            get_u64(front, "oldest version")?
        } else {
            0
        };
        finish_front(front, version, Self::VERSION)?;
        Ok(Self {
            handle,
            version: newest,
            oldest_version,
        })
    }
}
