//! [`Fsid`], a cluster's UUID (`uuid_d`), and [`PaxosPrefix`], the head of every `PaxosServiceMessage` front.

use std::fmt;
use std::str::FromStr;

use bytes::{Buf, BufMut};

use crate::codec::need;
use crate::BodyError;

/// A cluster fsid: a UUID, encoded as its 16 raw bytes in text order (`uuid_d`, `encode_raw`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Fsid(pub [u8; 16]);

impl Fsid {
    /// Encoded size.
    pub const LEN: usize = 16;

    /// Appends the 16 bytes.
    pub fn encode(&self, buf: &mut impl BufMut) {
        buf.put_slice(&self.0);
    }

    /// Reads 16 bytes.
    pub fn decode(buf: &mut impl Buf) -> Result<Self, BodyError> {
        need(buf, "fsid", Self::LEN)?;
        let mut fsid = [0u8; Self::LEN];
        buf.copy_to_slice(&mut fsid);
        Ok(Self(fsid))
    }
}

impl FromStr for Fsid {
    type Err = BodyError;

    /// Parses the 36-character form, `11111111-2222-3333-4444-555555555555`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || BodyError::InvalidFsid {
            text: text.to_owned(),
        };
        let bytes = text.as_bytes();
        let dashes_ok = [8, 13, 18, 23].iter().all(|&i| bytes.get(i) == Some(&b'-'));
        if bytes.len() != 36 || !dashes_ok {
            return Err(invalid());
        }
        let hex: Vec<u8> = bytes.iter().copied().filter(|&c| c != b'-').collect();
        if hex.len() != 32 || !hex.iter().all(u8::is_ascii_hexdigit) {
            return Err(invalid());
        }
        let mut out = [0u8; 16];
        for (byte, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
            let pair = std::str::from_utf8(pair).map_err(|_| invalid())?;
            *byte = u8::from_str_radix(pair, 16).map_err(|_| invalid())?;
        }
        Ok(Self(out))
    }
}

impl fmt::Display for Fsid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, byte) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

/// The 18-byte prefix every `PaxosServiceMessage` front starts with (`paxos_encode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PaxosPrefix {
    /// The paxos version the sender has seen (0 from clients).
    pub version: u64,
    /// `deprecated_session_mon`, -1 when unset.
    pub deprecated_session_mon: i16,
    /// `deprecated_session_mon_tid`, 0 when unset.
    pub deprecated_session_mon_tid: u64,
}

impl PaxosPrefix {
    /// Encoded size.
    pub const LEN: usize = 18;

    /// Appends the prefix.
    pub fn encode(&self, buf: &mut impl BufMut) {
        buf.put_u64_le(self.version);
        buf.put_i16_le(self.deprecated_session_mon);
        buf.put_u64_le(self.deprecated_session_mon_tid);
    }

    /// Reads the prefix.
    pub fn decode(buf: &mut impl Buf) -> Result<Self, BodyError> {
        need(buf, "paxos prefix", Self::LEN)?;
        Ok(Self {
            version: buf.get_u64_le(),
            deprecated_session_mon: buf.get_i16_le(),
            deprecated_session_mon_tid: buf.get_u64_le(),
        })
    }
}

impl Default for PaxosPrefix {
    /// What a client sends: version 0, no session mon (-1), tid 0.
    fn default() -> Self {
        Self {
            version: 0,
            deprecated_session_mon: -1,
            deprecated_session_mon_tid: 0,
        }
    }
}
