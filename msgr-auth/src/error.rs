//! The one error type of the crate.

/// Everything that can go wrong while decoding, decrypting or checking authentication data.
///
/// Decryption failures carry no detail on purpose: a wrong key, a corrupted blob and a bad
/// padding all read as [`AuthError::Decrypt`], so a peer learns nothing from the error (Ceph's
/// magic check is the only integrity check of a cephx blob).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The input ended inside a field.
    #[error("truncated {what}: needs {need} bytes, {have} left")]
    Truncated {
        /// The field being read.
        what: &'static str,
        /// Bytes the field needs.
        need: usize,
        /// Bytes that were left.
        have: usize,
    },
    /// A declared length or count is over this crate's limit for that field.
    #[error("{what} of {len} is over the limit of {limit}")]
    TooLong {
        /// The field.
        what: &'static str,
        /// The declared length or count.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// A structure version this crate does not decode.
    #[error("{what}: unsupported struct_v {version}")]
    BadVersion {
        /// The structure.
        what: &'static str,
        /// The version byte found.
        version: u8,
    },
    /// A string field that is not UTF-8.
    #[error("{what} is not UTF-8")]
    BadUtf8 {
        /// The field.
        what: &'static str,
    },
    /// A `CryptoKey` of a type this crate does not know (Pacific has only 0 and 1).
    #[error("unknown crypto key type {key_type}")]
    UnknownKeyType {
        /// The type found.
        key_type: u16,
    },
    /// An AES key shorter than 16 bytes (Ceph rejects these too).
    #[error("AES secret of {len} bytes, needs 16")]
    ShortSecret {
        /// The secret's length.
        len: usize,
    },
    /// Encryption asked of a key of type none.
    #[error("key of type none cannot encrypt")]
    NoCipher,
    /// Ciphertext that cannot be decrypted with the key: bad length, padding or magic.
    #[error("decryption failed (wrong key or corrupted data)")]
    Decrypt,
    /// Invalid base64 in a key.
    #[error("invalid base64 key")]
    Base64,
    /// A keyring file that does not parse; `line` counts from 1.
    #[error("keyring line {line}: {reason}")]
    Keyring {
        /// The line, from 1.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// An entity name that is not `TYPE.ID` with a known type.
    #[error("bad entity name {name:?}")]
    BadEntityName {
        /// The text given.
        name: String,
    },
    /// The peer refused authentication (MAuthReply result, or a cephx status) with `-errno`.
    #[error("{entity}: authentication refused with result {result}")]
    Refused {
        /// The entity that tried to authenticate.
        entity: String,
        /// The negative errno (−13 EACCES for a wrong key or an unknown entity).
        result: i32,
    },
    /// A reply to a request that was not sent (or a reply out of order).
    #[error("unexpected cephx reply type {got:#06x} (expected {expected:#06x})")]
    UnexpectedReply {
        /// Request type expected.
        expected: u16,
        /// Request type received.
        got: u16,
    },
    /// A request of a type this side does not handle.
    #[error("unknown cephx request type {request_type:#06x}")]
    UnknownRequest {
        /// The request type.
        request_type: u16,
    },
    /// A step taken in the wrong state (e.g. a ticket request before the session key).
    #[error("out of order: {what}")]
    OutOfOrder {
        /// What was asked.
        what: &'static str,
    },
    /// No valid ticket for the service an authorizer was asked for.
    #[error("no ticket for service {service_id:#x}")]
    NoTicket {
        /// The service's entity type.
        service_id: u32,
    },
    /// An authorizer that does not verify (unknown secret, wrong global id, expired ticket,
    /// bad challenge answer, malformed): the acceptor answers BADAUTHORIZER.
    #[error("bad authorizer: {reason}")]
    BadAuthorizer {
        /// Why, for the log (never sent to the peer).
        reason: &'static str,
    },
    /// The authorizer reply does not carry our nonce + 1: the service is not authentic.
    #[error("authorizer reply nonce {got:#x}, expected {expected:#x}")]
    NonceMismatch {
        /// nonce + 1.
        expected: u64,
        /// What the reply carried.
        got: u64,
    },
    /// A message signature that does not match.
    #[error("message signature check failed (seq {seq})")]
    BadSignature {
        /// The message's sequence number.
        seq: u64,
    },
    /// The protocol id is not one this side speaks.
    #[error("unsupported auth protocol {protocol}")]
    UnsupportedProtocol {
        /// The protocol id (1 none, 2 cephx).
        protocol: u32,
    },
}
