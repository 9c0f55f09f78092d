//! Typed messages for Rust applications: the front is a serde value, encoded by a
//! [`PayloadCodec`].
//!
//! Two codecs, each behind its own feature of this crate:
//!
//! | codec | feature | format |
//! |---|---|---|
//! | `Bincode` (the default) | `bincode` (`typed` turns it on) | bincode 2, `standard` configuration: little-endian, variable-length integers, fields by position |
//! | `Cbor` | `cbor` | CBOR (RFC 8949) with ciborium: self-describing, structs as maps of field names |
//!
//! [`encode_typed`] / [`decode_typed`] and [`Registry::new`] use bincode, as they always did;
//! [`encode_typed_with`], [`decode_typed_with`] and [`Registry::with_codec`] take any codec.
//! Both ends of a session must use the same codec: nothing on the wire says which one wrote a
//! front, and a front decoded by the other codec is a [`WireError::Payload`] (a typed error,
//! never a panic; CBOR's self-description makes that refusal near certain, while bincode
//! reads any bytes as some fields and may only fail later).
//!
//! Versions: the header carries `T::VERSION` and `T::COMPAT_VERSION`, and a decoder refuses
//! a sender whose compat version is newer than its own version. A newer sender may append
//! fields that an older receiver skips: bincode ignores trailing bytes after the value, CBOR
//! ignores map keys the struct does not have (raise `VERSION`, keep `COMPAT_VERSION`).
//!
//! Peer data: decoding never allocates beyond a hard limit. A front longer than
//! [`MAX_PAYLOAD`] (128 MiB) is refused before decoding. bincode checks every declared length
//! against a limit before it allocates, here the smallest of 64 KiB, 1 MiB, 16 MiB and
//! 128 MiB that holds 16 times the front's length (what a valid front can claim: see
//! `BINCODE_CLAIM_PER_BYTE`), so a 7-byte front that declares a 100 MiB string is refused
//! unallocated (with one flat 128 MiB limit it allocated the 100 MiB first). CBOR reads
//! strings and byte strings in 4 KiB chunks and sequences element by element, so it allocates
//! no more than about the input's size, with a nesting limit of 256. Both keep serde's 1 MiB
//! cap on what a sequence pre-allocates from its declared length. Tested with fronts that
//! claim 100 MiB, 1 GiB and 2^64 - 1 bytes.
//!
//! # bincode and RustSec
//! RUSTSEC-2025-0141 (2025-12-16) flags bincode, 2.x included, as unmaintained: its team ended
//! development. It stays the default here so that existing peers keep reading each other, but
//! it will get no fixes. [`Cbor`] is the way out: a maintained implementation of a standard
//! format that other languages read too. Switch both ends to `Cbor` (the `cbor` feature), then
//! build with `default-features = false, features = ["cbor"]` to leave bincode out of the
//! dependency graph altogether (without the `bincode` feature, the bincode defaults are gone
//! and only the `_with` functions remain).
//!
//! ```
//! # #[cfg(all(feature = "bincode", feature = "cbor"))] {
//! use msgr_wire::typed::{decode_typed, encode_typed, Cbor, Decoded, Registry, TypedMessage};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, PartialEq, Serialize, Deserialize)]
//! struct Hello { name: String }
//! impl TypedMessage for Hello { const TYPE: u16 = 0x7001; }
//!
//! let msg = encode_typed(&Hello { name: "osd.3".into() }).unwrap();
//! assert_eq!(decode_typed::<Hello>(&msg).unwrap().name, "osd.3");
//!
//! let mut registry = Registry::new();
//! registry.register::<Hello>();
//! let Decoded::Typed { value, .. } = registry.decode(msg).unwrap() else { panic!() };
//! assert!(value.downcast::<Hello>().is_ok());
//!
//! // The same with CBOR.
//! let cbor = Registry::with_codec(Cbor).with::<Hello>();
//! let msg = cbor.encode(&Hello { name: "osd.4".into() }).unwrap();
//! assert_eq!(cbor.decode(msg).unwrap().downcast::<Hello>().unwrap().name, "osd.4");
//! # }
//! ```

use std::any::Any;
use std::collections::HashMap;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::consts::PRIO_DEFAULT;
use crate::error::WireError;
use crate::header::MsgHeader;
use crate::message::Message;

/// Largest front a typed message may have, and largest allocation bincode may make while
/// decoding one: 128 MiB.
pub const MAX_PAYLOAD: usize = 128 << 20;

/// A message type of a Rust application, carried in the front by a [`PayloadCodec`].
pub trait TypedMessage: Serialize + DeserializeOwned {
    /// The header's message type id.
    const TYPE: u16;
    /// The encoding version written in the header.
    const VERSION: u16 = 1;
    /// The oldest decoder version that can read what this version writes.
    const COMPAT_VERSION: u16 = 1;
    /// The default send priority.
    const PRIORITY: u16 = PRIO_DEFAULT;
}

/// A serde format for the fronts of typed messages.
///
/// An implementation must not panic on any input and must bound what it allocates while
/// decoding (the bytes come from a peer): [`decode_typed_with`] refuses fronts longer than
/// [`MAX_PAYLOAD`] before calling it, so bounding allocations by the input's size suffices.
pub trait PayloadCodec {
    /// A short name for errors and logs (`"bincode"`, `"cbor"`).
    fn name(&self) -> &'static str;

    /// Serializes `value`; the error is the serializer's message.
    fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Vec<u8>, String>;

    /// Deserializes a `T` from `bytes`; the error is the deserializer's message.
    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, String>;
}

/// bincode 2, `standard` configuration, with a [`MAX_PAYLOAD`] allocation limit on decode:
/// the default codec (see the module docs for RUSTSEC-2025-0141).
#[cfg(feature = "bincode")]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bincode;

/// How many bytes bincode may claim per byte of input: its serde decoder claims the memory
/// size of each primitive it reads (16 for a u128 from a 1-byte varint, at most) and the
/// length of each string or byte string (whose bytes follow in the input), so a valid front
/// of `n` bytes never claims more than `16 n`.
#[cfg(feature = "bincode")]
const BINCODE_CLAIM_PER_BYTE: usize = 16;

/// Decodes with bincode's limit set to the smallest bucket that holds what a front of this
/// length can validly claim (`16 n`), [`MAX_PAYLOAD`] at most: a short front that declares a
/// long string is refused before bincode allocates the string.
#[cfg(feature = "bincode")]
fn bincode_decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, bincode::error::DecodeError> {
    fn with_limit<T: DeserializeOwned, const N: usize>(
        bytes: &[u8],
    ) -> Result<T, bincode::error::DecodeError> {
        bincode::serde::decode_from_slice::<T, _>(
            bytes,
            bincode::config::standard().with_limit::<N>(),
        )
        .map(|(value, _)| value)
    }
    let claimable = bytes.len().saturating_mul(BINCODE_CLAIM_PER_BYTE);
    if claimable <= 64 << 10 {
        with_limit::<T, { 64 << 10 }>(bytes)
    } else if claimable <= 1 << 20 {
        with_limit::<T, { 1 << 20 }>(bytes)
    } else if claimable <= 16 << 20 {
        with_limit::<T, { 16 << 20 }>(bytes)
    } else {
        with_limit::<T, MAX_PAYLOAD>(bytes)
    }
}

#[cfg(feature = "bincode")]
impl PayloadCodec for Bincode {
    fn name(&self) -> &'static str {
        "bincode"
    }

    fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Vec<u8>, String> {
        bincode::serde::encode_to_vec(value, bincode::config::standard()).map_err(|e| e.to_string())
    }

    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, String> {
        bincode_decode(bytes).map_err(|e| e.to_string())
    }
}

/// CBOR (RFC 8949) with ciborium: the maintained alternative to bincode (feature `cbor`).
/// Decoding allocates about the input's size at most and nests at most 256 deep.
#[cfg(feature = "cbor")]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cbor;

#[cfg(feature = "cbor")]
impl PayloadCodec for Cbor {
    fn name(&self) -> &'static str {
        "cbor"
    }

    fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        ciborium::ser::into_writer(value, &mut out).map_err(|e| e.to_string())?;
        Ok(out)
    }

    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, String> {
        ciborium::de::from_reader(bytes).map_err(|e| e.to_string())
    }
}

/// Encodes `value` with bincode as an unsealed message of type `T::TYPE` with `T`'s version,
/// compat version and priority.
#[cfg(feature = "bincode")]
pub fn encode_typed<T: TypedMessage>(value: &T) -> Result<Message, WireError> {
    encode_typed_with(&Bincode, value)
}

/// Decodes the bincode front of `msg` as a `T`, after checking the type id and that the
/// sender's compat version is not newer than `T::VERSION`.
#[cfg(feature = "bincode")]
pub fn decode_typed<T: TypedMessage>(msg: &Message) -> Result<T, WireError> {
    decode_typed_with(&Bincode, msg)
}

/// [`encode_typed`] with the codec `codec`.
pub fn encode_typed_with<C: PayloadCodec, T: TypedMessage>(
    codec: &C,
    value: &T,
) -> Result<Message, WireError> {
    let front = codec
        .encode(value)
        .map_err(|reason| payload::<T>(codec, reason))?;
    if front.len() > MAX_PAYLOAD {
        return Err(payload::<T>(codec, too_long(front.len())));
    }
    Ok(Message::new(T::TYPE, front)
        .with_priority(T::PRIORITY)
        .with_version(T::VERSION, T::COMPAT_VERSION))
}

/// [`decode_typed`] with the codec `codec`. A front longer than [`MAX_PAYLOAD`] is refused
/// before decoding.
pub fn decode_typed_with<C: PayloadCodec, T: TypedMessage>(
    codec: &C,
    msg: &Message,
) -> Result<T, WireError> {
    check_header::<T>(&msg.header)?;
    if msg.front.len() > MAX_PAYLOAD {
        return Err(payload::<T>(codec, too_long(msg.front.len())));
    }
    codec
        .decode(&msg.front)
        .map_err(|reason| payload::<T>(codec, reason))
}

fn payload<T: TypedMessage>(codec: &impl PayloadCodec, reason: String) -> WireError {
    WireError::Payload {
        ty: T::TYPE,
        reason: format!("{}: {reason}", codec.name()),
    }
}

fn too_long(len: usize) -> String {
    format!("front of {len} bytes exceeds the {MAX_PAYLOAD}-byte limit")
}

fn check_header<T: TypedMessage>(h: &MsgHeader) -> Result<(), WireError> {
    if h.ty != T::TYPE {
        return Err(WireError::TypeMismatch {
            expected: T::TYPE,
            actual: h.ty,
        });
    }
    if h.compat_version > T::VERSION {
        return Err(WireError::CompatVersion {
            ty: h.ty,
            compat_version: h.compat_version,
            known: T::VERSION,
        });
    }
    Ok(())
}

/// A message decoded by a [`Registry`].
#[derive(Debug)]
pub enum Decoded {
    /// A registered type: its header and the value (downcast it to the registered type).
    Typed {
        /// The message's header (type id, seq, source, …).
        header: MsgHeader,
        /// The decoded value.
        value: Box<dyn Any + Send>,
    },
    /// A type nobody registered: the message as received.
    Raw(Message),
}

impl Decoded {
    /// The message type id.
    pub fn ty(&self) -> u16 {
        match self {
            Decoded::Typed { header, .. } => header.ty,
            Decoded::Raw(m) => m.header.ty,
        }
    }

    /// The value if it is a `T`, else `self` back.
    #[allow(clippy::result_large_err)] // hands the caller's own value back, like `Box::downcast`
    pub fn downcast<T: 'static>(self) -> Result<T, Self> {
        match self {
            Decoded::Typed { header, value } => match value.downcast::<T>() {
                Ok(v) => Ok(*v),
                Err(value) => Err(Decoded::Typed { header, value }),
            },
            raw => Err(raw),
        }
    }
}

type DecodeFn<C> = fn(&C, &Message) -> Result<Box<dyn Any + Send>, WireError>;

fn decode_boxed<C: PayloadCodec, T: TypedMessage + Send + 'static>(
    codec: &C,
    msg: &Message,
) -> Result<Box<dyn Any + Send>, WireError> {
    decode_typed_with::<C, T>(codec, msg).map(|v| Box::new(v) as Box<dyn Any + Send>)
}

/// Maps message type ids to decoders, all with one codec `C` ([`Bincode`] from
/// [`Registry::new`], any other from [`Registry::with_codec`]). `Registry` alone names the
/// bincode registry, as before codecs were pluggable.
#[cfg(feature = "bincode")]
#[derive(Debug, Clone)]
pub struct Registry<C = Bincode> {
    codec: C,
    decoders: HashMap<u16, DecodeFn<C>>,
}

/// Maps message type ids to decoders, all with one codec `C` (from
/// [`Registry::with_codec`]; the bincode default needs the `bincode` feature).
#[cfg(not(feature = "bincode"))]
#[derive(Debug, Clone)]
pub struct Registry<C> {
    codec: C,
    decoders: HashMap<u16, DecodeFn<C>>,
}

#[cfg(feature = "bincode")]
impl Registry<Bincode> {
    /// An empty registry of bincode messages.
    pub fn new() -> Self {
        Registry::with_codec(Bincode)
    }
}

#[cfg(feature = "bincode")]
impl Default for Registry<Bincode> {
    fn default() -> Self {
        Registry::new()
    }
}

impl<C: PayloadCodec> Registry<C> {
    /// An empty registry of messages encoded by `codec`.
    pub fn with_codec(codec: C) -> Self {
        Registry {
            codec,
            decoders: HashMap::new(),
        }
    }

    /// The registry's codec.
    pub fn codec(&self) -> &C {
        &self.codec
    }

    /// Registers `T` under `T::TYPE`; returns false if that id was already registered
    /// (the new decoder replaces the old one).
    pub fn register<T: TypedMessage + Send + 'static>(&mut self) -> bool {
        self.decoders
            .insert(T::TYPE, decode_boxed::<C, T>)
            .is_none()
    }

    /// Builder form of [`Registry::register`].
    pub fn with<T: TypedMessage + Send + 'static>(mut self) -> Self {
        self.register::<T>();
        self
    }

    /// True if `ty` has a decoder.
    pub fn contains(&self, ty: u16) -> bool {
        self.decoders.contains_key(&ty)
    }

    /// Encodes `value` with the registry's codec ([`encode_typed_with`]).
    pub fn encode<T: TypedMessage>(&self, value: &T) -> Result<Message, WireError> {
        encode_typed_with(&self.codec, value)
    }

    /// Decodes a registered type, or hands back an unregistered one as [`Decoded::Raw`].
    /// A registered type whose payload does not decode is an error.
    pub fn decode(&self, msg: Message) -> Result<Decoded, WireError> {
        match self.decoders.get(&msg.header.ty) {
            Some(decode) => Ok(Decoded::Typed {
                value: decode(&self.codec, &msg)?,
                header: msg.header,
            }),
            None => Ok(Decoded::Raw(msg)),
        }
    }
}

// The unit tests need both codecs: the crate's dev-dependency on itself turns them on.
#[cfg(all(test, feature = "bincode", feature = "cbor"))]
mod tests {
    use super::*;
    use crate::{CrcFlags, EntityName, PRIO_HIGH};
    use serde::Deserialize;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Ping {
        n: u64,
        note: String,
        data: Vec<u8>,
    }

    impl TypedMessage for Ping {
        const TYPE: u16 = 0x7001;
        const VERSION: u16 = 2;
        const PRIORITY: u16 = PRIO_HIGH;
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct PingV1 {
        n: u64,
    }

    impl TypedMessage for PingV1 {
        const TYPE: u16 = 0x7001;
    }

    fn ping() -> Ping {
        Ping {
            n: 42,
            note: "hello".into(),
            data: vec![1, 2, 3],
        }
    }

    /// Round trip, header fields and the old-decoder rule, with one codec.
    #[allow(clippy::unwrap_used)] // a test helper (the lint spares only #[test] functions)
    fn round_trip_with<C: PayloadCodec>(codec: &C) {
        let mut msg = encode_typed_with(codec, &ping()).unwrap();
        assert_eq!(msg.header.ty, 0x7001);
        assert_eq!(msg.header.priority, PRIO_HIGH);
        assert_eq!((msg.header.version, msg.header.compat_version), (2, 1));
        msg.seal(1, EntityName::client(1), CrcFlags::default());
        assert_eq!(decode_typed_with::<_, Ping>(codec, &msg).unwrap(), ping());
        // An old decoder reads the fields it knows (compat 1 <= its version 1).
        assert_eq!(
            decode_typed_with::<_, PingV1>(codec, &msg).unwrap(),
            PingV1 { n: 42 }
        );
    }

    #[test]
    fn round_trip_and_header() {
        round_trip_with(&Bincode);
        round_trip_with(&Cbor);
        // The bincode defaults are the Bincode codec, byte for byte.
        let default = encode_typed(&ping()).unwrap();
        assert_eq!(
            default.front,
            encode_typed_with(&Bincode, &ping()).unwrap().front
        );
        assert_eq!(decode_typed::<Ping>(&default).unwrap(), ping());
    }

    /// The two formats differ (bincode: 42 as a one-byte varint first; CBOR: a map of three
    /// named fields, 0xa3 then the text "n"), and each refuses the other's front with a
    /// Payload error naming the codec.
    #[test]
    fn the_wrong_codec_is_a_typed_error() {
        let b = encode_typed_with(&Bincode, &ping()).unwrap();
        let c = encode_typed_with(&Cbor, &ping()).unwrap();
        assert_eq!(b.front[0], 42);
        assert_eq!(&c.front[..3], &[0xa3, 0x61, b'n']);
        let err = decode_typed_with::<_, Ping>(&Cbor, &b).unwrap_err();
        assert!(
            matches!(&err, WireError::Payload { ty: 0x7001, reason } if reason.starts_with("cbor: ")),
            "{err}"
        );
        let err = decode_typed_with::<_, Ping>(&Bincode, &c).unwrap_err();
        assert!(
            matches!(&err, WireError::Payload { ty: 0x7001, reason } if reason.starts_with("bincode: ")),
            "{err}"
        );
        // Through registries too.
        assert!(Registry::new().with::<Ping>().decode(c).is_err());
        assert!(Registry::with_codec(Cbor).with::<Ping>().decode(b).is_err());
    }

    #[test]
    fn checks_type_and_compat_version() {
        for mut msg in [
            encode_typed(&ping()).unwrap(),
            encode_typed_with(&Cbor, &ping()).unwrap(),
        ] {
            msg.header.ty = 5;
            assert_eq!(
                decode_typed_with::<_, Ping>(&Cbor, &msg),
                Err(WireError::TypeMismatch {
                    expected: 0x7001,
                    actual: 5
                })
            );
            assert_eq!(
                decode_typed::<Ping>(&msg),
                Err(WireError::TypeMismatch {
                    expected: 0x7001,
                    actual: 5
                })
            );
            msg.header.ty = 0x7001;
            msg.header.compat_version = 2;
            assert!(matches!(
                decode_typed_with::<_, PingV1>(&Cbor, &msg),
                Err(WireError::CompatVersion {
                    compat_version: 2,
                    known: 1,
                    ..
                })
            ));
        }
    }

    #[test]
    fn bad_payloads_are_errors() {
        let msg = Message::new(Ping::TYPE, &b"\xff\xff"[..]);
        assert!(matches!(
            decode_typed::<Ping>(&msg),
            Err(WireError::Payload { .. })
        ));
        assert!(matches!(
            decode_typed_with::<_, Ping>(&Cbor, &msg),
            Err(WireError::Payload { .. })
        ));
        // A huge declared length must not allocate: varint u64::MAX for the string length.
        let mut front = vec![42u8];
        front.extend_from_slice(&[0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]);
        let msg = Message::new(Ping::TYPE, front);
        assert!(matches!(
            decode_typed::<Ping>(&msg),
            Err(WireError::Payload { .. })
        ));
        // Empty fronts.
        let empty = Message::new(Ping::TYPE, &b""[..]);
        assert!(decode_typed::<Ping>(&empty).is_err());
        assert!(decode_typed_with::<_, Ping>(&Cbor, &empty).is_err());
    }

    /// A front over MAX_PAYLOAD is refused by length, before any codec looks at it.
    #[test]
    fn fronts_over_the_limit_are_refused_unread() {
        let msg = Message::new(Ping::TYPE, vec![0u8; MAX_PAYLOAD + 1]);
        for err in [
            decode_typed::<Ping>(&msg).unwrap_err(),
            decode_typed_with::<_, Ping>(&Cbor, &msg).unwrap_err(),
        ] {
            let WireError::Payload { reason, .. } = err else {
                panic!("{err}")
            };
            assert!(
                reason.ends_with("exceeds the 134217728-byte limit"),
                "{reason}"
            );
        }
    }

    /// The densest valid bincode front: u128 zeros, one byte each, 16 bytes claimed each;
    /// decoded under the limit its length allows (16 per byte), at each bucket's edge.
    #[test]
    fn bincode_limit_admits_the_densest_valid_fronts() {
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        struct Dense(Vec<u128>);
        impl TypedMessage for Dense {
            const TYPE: u16 = 0x7003;
        }
        for n in [0, 1, 4093, 4094, 65_531, 65_532, 100_000] {
            let v = Dense(vec![0; n]);
            let msg = encode_typed(&v).unwrap();
            assert!(msg.front.len() <= n + 9);
            assert_eq!(decode_typed::<Dense>(&msg).unwrap(), v, "{n} u128s");
        }
    }

    #[test]
    fn registry_typed_and_raw() {
        let registry = Registry::new().with::<Ping>();
        assert!(registry.contains(Ping::TYPE));
        let decoded = registry.decode(encode_typed(&ping()).unwrap()).unwrap();
        assert_eq!(decoded.ty(), Ping::TYPE);
        assert_eq!(decoded.downcast::<Ping>().unwrap(), ping());
        let raw = registry.decode(Message::new(99, &b"x"[..])).unwrap();
        assert!(matches!(raw, Decoded::Raw(ref m) if m.header.ty == 99));
        assert!(raw.downcast::<Ping>().is_err());
        let bad = Message::new(Ping::TYPE, &b""[..]);
        assert!(registry.decode(bad).is_err());
        let mut r = Registry::default();
        assert!(r.register::<Ping>());
        assert!(!r.register::<PingV1>());
    }

    #[test]
    fn cbor_registry() {
        let registry: Registry<Cbor> = Registry::with_codec(Cbor).with::<Ping>();
        assert_eq!(registry.codec().name(), "cbor");
        let msg = registry.encode(&ping()).unwrap();
        assert_eq!(msg.front, encode_typed_with(&Cbor, &ping()).unwrap().front);
        let decoded = registry.decode(msg).unwrap();
        assert_eq!(decoded.downcast::<Ping>().unwrap(), ping());
        let raw = registry.decode(Message::new(99, &b"x"[..])).unwrap();
        assert!(matches!(raw, Decoded::Raw(_)));
    }

    proptest::proptest! {
        /// Any bytes, either codec: a value or a typed error, never a panic.
        #[test]
        fn any_front_decodes_or_errs(front in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let msg = Message::new(Ping::TYPE, front);
            for res in [decode_typed::<Ping>(&msg), decode_typed_with::<_, Ping>(&Cbor, &msg)] {
                if let Err(e) = res {
                    proptest::prop_assert!(matches!(e, WireError::Payload { ty: Ping::TYPE, .. }), "{}", e);
                }
            }
        }
    }
}
