//! The one error type of the codec.

use crate::tag::Tag;

/// Which payload segment of a MSG frame a CRC or length refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Segment {
    /// The front ("payload").
    Front,
    /// The middle.
    Middle,
    /// The data section.
    Data,
}

impl std::fmt::Display for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Segment::Front => "front",
            Segment::Middle => "middle",
            Segment::Data => "data",
        })
    }
}

/// Everything that can be wrong with msgr v1 bytes.
///
/// Structure decoders ([`crate::Wire::decode`]) return the bare condition; the streaming
/// decoders wrap it in [`WireError::At`] naming the byte offset in the stream where the
/// faulty item or field starts. [`WireError::cause`] and [`WireError::offset`] see through it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The 9-byte banner is not `ceph v027`.
    #[error(
        "bad banner {}, expected \"ceph v027\"{}",
        escape(found),
        msgr2_hint(found)
    )]
    BadBanner {
        /// The bytes received instead.
        found: [u8; 9],
    },
    /// Byte 0 of a legacy entity address is not the legacy marker 0.
    #[error("bad entity address marker {marker} (legacy addresses start with 0)")]
    BadAddrMarker {
        /// The marker byte found.
        marker: u8,
    },
    /// A tag byte that is not a msgr v1 tag at all.
    #[error("unknown tag {tag}")]
    UnknownTag {
        /// The byte found.
        tag: u8,
    },
    /// A known tag where it is not allowed (a connect-reply tag in the stream or the reverse).
    #[error("tag {tag:?} is not valid {context}")]
    UnexpectedTag {
        /// The tag found.
        tag: Tag,
        /// Where it was found, e.g. "in the message stream".
        context: &'static str,
    },
    /// The header CRC does not match the header bytes.
    #[error("header crc mismatch: header says {expected:#010x}, bytes give {actual:#010x}")]
    HeaderCrc {
        /// The CRC carried in the header.
        expected: u32,
        /// The CRC computed over header bytes 0..49.
        actual: u32,
    },
    /// A front, middle or data CRC does not match.
    #[error("{segment} crc mismatch: footer says {expected:#010x}, bytes give {actual:#010x}")]
    SegmentCrc {
        /// Which segment.
        segment: Segment,
        /// The CRC carried in the footer.
        expected: u32,
        /// The CRC computed over the segment.
        actual: u32,
    },
    /// A declared length exceeds the configured limit.
    #[error("{what} length {len} exceeds the limit of {limit}")]
    TooLong {
        /// What the length is of ("front", "authorizer", "message", …).
        what: &'static str,
        /// The declared length.
        len: u64,
        /// The limit.
        limit: u64,
    },
    /// A buffer given to a structure decoder is shorter than the structure.
    #[error("truncated {what}: need {needed} bytes, have {remaining}")]
    Truncated {
        /// The structure being decoded.
        what: &'static str,
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        remaining: usize,
    },
    /// The stream ended inside an item.
    #[error("stream ended inside {inside} ({remaining} bytes of it received)")]
    UnexpectedEof {
        /// The item being read.
        inside: &'static str,
        /// Bytes of the partial item received.
        remaining: usize,
    },
    /// A typed message has another type id than the one asked for.
    #[error("message type {actual} is not the expected type {expected}")]
    TypeMismatch {
        /// The type asked for.
        expected: u16,
        /// The type in the header.
        actual: u16,
    },
    /// A typed message needs a newer decoder than this one.
    #[error(
        "message type {ty} has compat_version {compat_version}, this decoder knows version {known}"
    )]
    CompatVersion {
        /// The message type.
        ty: u16,
        /// The header's compat_version.
        compat_version: u16,
        /// The decoder's version.
        known: u16,
    },
    /// A typed message front could not be encoded or decoded.
    #[error("typed payload of message type {ty}: {reason}")]
    Payload {
        /// The message type.
        ty: u16,
        /// What the serializer said.
        reason: String,
    },
    /// Another error, located at a byte offset of a stream.
    #[error("at byte offset {offset}: {source}")]
    At {
        /// Offset of the faulty item or field from the first byte of the stream.
        offset: u64,
        /// The condition.
        source: Box<WireError>,
    },
}

impl WireError {
    /// The condition, without the [`WireError::At`] location wrapper.
    pub fn cause(&self) -> &WireError {
        match self {
            WireError::At { source, .. } => source.cause(),
            other => other,
        }
    }

    /// The stream offset the error was found at, when a streaming decoder reported it.
    pub fn offset(&self) -> Option<u64> {
        match self {
            WireError::At { offset, .. } => Some(*offset),
            _ => None,
        }
    }

    /// Wraps the error with a stream offset (keeps an existing one).
    pub fn at(self, offset: u64) -> WireError {
        match self {
            e @ WireError::At { .. } => e,
            e => WireError::At {
                offset,
                source: Box::new(e),
            },
        }
    }
}

fn escape(bytes: &[u8]) -> String {
    format!("\"{}\"", bytes.escape_ascii())
}

fn msgr2_hint(found: &[u8; 9]) -> &'static str {
    if found.starts_with(b"ceph v2\n") {
        " (the peer speaks msgr2)"
    } else {
        ""
    }
}

/// Checks that `buf` holds at least `needed` bytes before a structure is read from it.
pub(crate) fn need(what: &'static str, remaining: usize, needed: usize) -> Result<(), WireError> {
    if remaining < needed {
        Err(WireError::Truncated {
            what,
            needed,
            remaining,
        })
    } else {
        Ok(())
    }
}
