//! Receive limits and CRC policy.

use serde::{Deserialize, Serialize};

use crate::error::{Segment, WireError};

/// Upper bounds for every length a peer declares, checked before anything is allocated.
///
/// Defaults: 128 MiB for each segment and for a whole message (header, segments and footer
/// together), 4096 bytes for an authorizer (the bound Ceph's Async connector asserts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Limits {
    /// Largest accepted front.
    pub max_front: u32,
    /// Largest accepted middle.
    pub max_middle: u32,
    /// Largest accepted data section.
    pub max_data: u32,
    /// Largest accepted message: front + middle + data.
    pub max_message: u64,
    /// Largest accepted authorizer (connect) or authorizer reply.
    pub max_authorizer: u32,
}

/// 128 MiB.
const MIB_128: u32 = 128 << 20;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_front: MIB_128,
            max_middle: MIB_128,
            max_data: MIB_128,
            max_message: u64::from(MIB_128),
            max_authorizer: 4096,
        }
    }
}

impl Limits {
    /// No limit beyond the u32 fields themselves (for tools reading trusted captures).
    pub const UNLIMITED: Limits = Limits {
        max_front: u32::MAX,
        max_middle: u32::MAX,
        max_data: u32::MAX,
        max_message: u64::MAX,
        max_authorizer: u32::MAX,
    };

    /// Checks declared segment lengths; returns the total payload length.
    pub fn check_segments(&self, front: u32, middle: u32, data: u32) -> Result<u64, WireError> {
        check(Segment::Front, front, self.max_front)?;
        check(Segment::Middle, middle, self.max_middle)?;
        check(Segment::Data, data, self.max_data)?;
        let total = u64::from(front) + u64::from(middle) + u64::from(data);
        if total > self.max_message {
            return Err(WireError::TooLong {
                what: "message",
                len: total,
                limit: self.max_message,
            });
        }
        Ok(total)
    }
}

fn check(segment: Segment, len: u32, limit: u32) -> Result<(), WireError> {
    if len > limit {
        let what = match segment {
            Segment::Front => "front",
            Segment::Middle => "middle",
            Segment::Data => "data",
        };
        return Err(WireError::TooLong {
            what,
            len: len.into(),
            limit: limit.into(),
        });
    }
    Ok(())
}

/// Which CRCs are computed when sending and verified when receiving (Ceph's
/// `ms_crc_header` / `ms_crc_data`). Default: both on.
///
/// `header` covers the header CRC and the front and middle CRCs; `data` the data CRC. A
/// received data CRC is only checked when the footer lacks `FOOTER_NOCRC`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CrcFlags {
    /// Header, front and middle CRCs.
    pub header: bool,
    /// Data CRC.
    pub data: bool,
}

impl Default for CrcFlags {
    fn default() -> Self {
        CrcFlags {
            header: true,
            data: true,
        }
    }
}

impl CrcFlags {
    /// Both CRCs off.
    pub const NONE: CrcFlags = CrcFlags {
        header: false,
        data: false,
    };

    /// Every setting of the two flags, the default first (for code that must behave alike
    /// under each, and its tests).
    pub const ALL: [CrcFlags; 4] = [
        CrcFlags {
            header: true,
            data: true,
        },
        CrcFlags {
            header: true,
            data: false,
        },
        CrcFlags {
            header: false,
            data: true,
        },
        CrcFlags::NONE,
    ];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_crc_settings_are_the_four_distinct_ones_default_first() {
        let all = CrcFlags::ALL;
        assert_eq!(all[0], CrcFlags::default());
        for (i, a) in all.iter().enumerate() {
            for b in all.iter().skip(i + 1) {
                assert_ne!(a, b);
            }
        }
        assert!(all.contains(&CrcFlags::NONE));
    }

    #[test]
    fn limits() {
        let l = Limits::default();
        assert_eq!(l.check_segments(1, 2, 3), Ok(6));
        assert!(matches!(
            l.check_segments(u32::MAX, 0, 0),
            Err(WireError::TooLong { what: "front", .. })
        ));
        assert!(matches!(
            l.check_segments(MIB_128, 0, 1),
            Err(WireError::TooLong {
                what: "message",
                ..
            })
        ));
        assert!(Limits::UNLIMITED
            .check_segments(u32::MAX, u32::MAX, u32::MAX)
            .is_ok());
    }
}
