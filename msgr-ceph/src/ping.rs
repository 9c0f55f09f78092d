//! [`MPing`] (type 2): the one message a mon answers before authentication.

use bytes::{Buf, Bytes};

use crate::codec::{finish, get_string};
use crate::BodyError;

/// `MPing` (type 2). A client sends it with an empty front; ceph-mon answers, even before authentication, with an
/// MPing whose front is a string (its health and status as JSON), kept here as raw bytes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MPing {
    /// The front as received; empty when we send.
    pub front: Bytes,
}

impl MPing {
    /// `CEPH_MSG_PING`.
    pub const TYPE: u16 = 2;
    /// Header version.
    pub const VERSION: u16 = 1;

    /// The front of an MPing we send: empty.
    pub fn to_front(&self) -> Bytes {
        self.front.clone()
    }

    /// Keeps any front as received.
    pub fn decode(front: &mut impl Buf) -> Result<Self, BodyError> {
        Ok(Self {
            front: front.copy_to_bytes(front.remaining()),
        })
    }

    /// The string a mon's reply carries (le32 length + JSON with `health` and `mon_status`, about 3 KB).
    pub fn text(&self) -> Result<String, BodyError> {
        let mut front = self.front.clone();
        let text = get_string(&mut front, "ping text")?;
        finish(&front)?;
        Ok(text)
    }
}
