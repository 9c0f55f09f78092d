//! Mon commands: [`MMonCommand`] (type 50) and [`MMonCommandAck`] (type 51), as `ceph <command>` exchanges them
//! (`src/messages/MMonCommand.h`, `MMonCommandAck.h`). Input and output travel in the data segment.

use bytes::{Buf, BufMut, Bytes};

use crate::codec::{finish, get_string, get_strings, get_u32, put_blob, put_strings, to_bytes};
use crate::{BodyError, Fsid, PaxosPrefix};

/// `MMonCommand` (type 50), client → mon: a command as JSON strings. Its input (`-i FILE`) travels in the
/// message's data segment, which is not part of this front.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MMonCommand {
    /// The PaxosServiceMessage prefix.
    pub paxos: PaxosPrefix,
    /// The cluster's fsid.
    pub fsid: Fsid,
    /// The command, usually one JSON object such as `{"prefix": "status", "format": "json"}`.
    pub cmd: Vec<String>,
}

impl MMonCommand {
    /// `MSG_MON_COMMAND`.
    pub const TYPE: u16 = 50;
    /// Header version.
    pub const VERSION: u16 = 1;

    /// One JSON command for the cluster `fsid`, with a client's paxos prefix.
    pub fn new(fsid: Fsid, json: &str) -> Self {
        Self {
            paxos: PaxosPrefix::default(),
            fsid,
            cmd: vec![json.to_owned()],
        }
    }

    /// Appends the front.
    pub fn encode(&self, buf: &mut impl BufMut) {
        self.paxos.encode(buf);
        self.fsid.encode(buf);
        put_strings(buf, self.cmd.iter());
    }

    /// The encoded front.
    pub fn to_front(&self) -> Bytes {
        to_bytes(|b| self.encode(b))
    }

    /// Reads a whole front.
    pub fn decode(front: &mut impl Buf) -> Result<Self, BodyError> {
        let msg = Self {
            paxos: PaxosPrefix::decode(front)?,
            fsid: Fsid::decode(front)?,
            cmd: get_strings(front, "cmd")?,
        };
        finish(front)?;
        Ok(msg)
    }
}

/// `MMonCommandAck` (type 51), mon → client: the return code, a status string, the command echoed, and the
/// command's output in the data segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MMonCommandAck {
    /// The PaxosServiceMessage prefix (its `version` is the paxos version the command saw or made).
    pub paxos: PaxosPrefix,
    /// Return code: 0 or a negative errno.
    pub r: i32,
    /// Status string, e.g. `set big` after `config-key set big`.
    pub rs: String,
    /// The command as sent.
    pub cmd: Vec<String>,
    /// The output (`outbl`), carried in the data segment.
    pub data: Bytes,
}

impl MMonCommandAck {
    /// `MSG_MON_COMMAND_ACK`.
    pub const TYPE: u16 = 51;
    /// Header version.
    pub const VERSION: u16 = 1;

    /// Appends the front (the data segment is `self.data`, sent separately).
    pub fn encode(&self, buf: &mut impl BufMut) {
        self.paxos.encode(buf);
        buf.put_i32_le(self.r);
        put_blob(buf, self.rs.as_bytes());
        put_strings(buf, self.cmd.iter());
    }

    /// The encoded front.
    pub fn to_front(&self) -> Bytes {
        to_bytes(|b| self.encode(b))
    }

    /// Reads a whole front, keeping `data` (the message's data segment) as the output.
    pub fn decode(front: &mut impl Buf, data: Bytes) -> Result<Self, BodyError> {
        let ack = Self {
            paxos: PaxosPrefix::decode(front)?,
            r: get_u32(front, "r")? as i32,
            rs: get_string(front, "rs")?,
            cmd: get_strings(front, "cmd")?,
            data,
        };
        finish(front)?;
        Ok(ack)
    }
}
