//! The one error type of this crate: why a front (or a structure inside it) could not be decoded.
//!
//! Every decoder returns it instead of panicking; variants carry the offending values.

/// A front, or a structure inside it, that could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BodyError {
    /// The input ended inside a field, or a length or count asks for more bytes than are left.
    #[error("front truncated in {field}: need {needed} bytes, {remaining} left")]
    Truncated {
        /// The field being read.
        field: &'static str,
        /// Bytes the field needs.
        needed: usize,
        /// Bytes that were left.
        remaining: usize,
    },
    /// A string field is not UTF-8.
    #[error("{field} is not utf-8")]
    NotUtf8 {
        /// The field being read.
        field: &'static str,
    },
    /// An encoding version this crate cannot read (older than the oldest layout it knows).
    #[error("unsupported {field} version {version}")]
    UnsupportedVersion {
        /// The versioned structure.
        field: &'static str,
        /// The version found.
        version: u8,
    },
    /// A versioned structure whose compat version says that a decoder of our version cannot read it
    /// (Ceph's `DECODE_START`: `struct_compat > our version` is a decode error).
    #[error("{field} needs a decoder of version {compat}, ours is {ours}")]
    IncompatibleVersion {
        /// The versioned structure.
        field: &'static str,
        /// The structure's compat version.
        compat: u8,
        /// The version this crate decodes.
        ours: u8,
    },
    /// Bytes were left after the last field.
    #[error("{remaining} trailing bytes after the last field")]
    TrailingBytes {
        /// Bytes left over.
        remaining: usize,
    },
    /// An fsid that is not a 36-character UUID.
    #[error("invalid fsid {text:?}")]
    InvalidFsid {
        /// The text that failed to parse.
        text: String,
    },
    /// An `entity_addr_t` / `entity_addrvec_t` marker byte other than 0 (legacy), 1 (one new-style address) or
    /// 2 (a vector).
    #[error("bad address marker {marker}")]
    AddrMarker {
        /// The marker found.
        marker: u8,
    },
    /// A socket address length that no `sockaddr` has (shorter than its family, or longer than
    /// `sockaddr_storage`).
    #[error("bad sockaddr length {len}")]
    SockaddrLen {
        /// The encoded length.
        len: u32,
    },
}
