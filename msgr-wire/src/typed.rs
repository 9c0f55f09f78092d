//! Typed messages for Rust applications: the front is a serde value encoded with bincode 2.
//!
//! bincode is used only in this module, so the payload format can be swapped without
//! touching the rest of the codec. The encoding is bincode's `standard` configuration
//! (little-endian, variable-length integers) with a 128 MiB allocation limit on decode.
//! Trailing bytes after the value are ignored, so a newer sender may append fields that
//! an older receiver skips (raise `VERSION`, keep `COMPAT_VERSION`).
//!
//! ```
//! use msgr_wire::typed::{decode_typed, encode_typed, Decoded, Registry, TypedMessage};
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
//! ```

use std::any::Any;
use std::collections::HashMap;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::consts::PRIO_DEFAULT;
use crate::error::WireError;
use crate::header::MsgHeader;
use crate::message::Message;

/// Largest allocation a typed payload may ask for while decoding: 128 MiB.
pub const MAX_PAYLOAD: usize = 128 << 20;

/// A message type of a Rust application, carried in the front as bincode.
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

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_PAYLOAD>()
}

/// Encodes `value` as an unsealed message of type `T::TYPE` with `T`'s version, compat
/// version and priority.
pub fn encode_typed<T: TypedMessage>(value: &T) -> Result<Message, WireError> {
    let front = bincode::serde::encode_to_vec(value, config()).map_err(|e| WireError::Payload {
        ty: T::TYPE,
        reason: e.to_string(),
    })?;
    Ok(Message::new(T::TYPE, front)
        .with_priority(T::PRIORITY)
        .with_version(T::VERSION, T::COMPAT_VERSION))
}

/// Decodes the front of `msg` as a `T`, after checking the type id and that the sender's
/// compat version is not newer than `T::VERSION`.
pub fn decode_typed<T: TypedMessage>(msg: &Message) -> Result<T, WireError> {
    check_header::<T>(&msg.header)?;
    bincode::serde::decode_from_slice::<T, _>(&msg.front, config())
        .map(|(value, _)| value)
        .map_err(|e| WireError::Payload {
            ty: T::TYPE,
            reason: e.to_string(),
        })
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

type DecodeFn = fn(&Message) -> Result<Box<dyn Any + Send>, WireError>;

fn decode_boxed<T: TypedMessage + Send + 'static>(
    msg: &Message,
) -> Result<Box<dyn Any + Send>, WireError> {
    decode_typed::<T>(msg).map(|v| Box::new(v) as Box<dyn Any + Send>)
}

/// Maps message type ids to decoders.
#[derive(Debug, Default, Clone)]
pub struct Registry {
    decoders: HashMap<u16, DecodeFn>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Registry::default()
    }

    /// Registers `T` under `T::TYPE`; returns false if that id was already registered
    /// (the new decoder replaces the old one).
    pub fn register<T: TypedMessage + Send + 'static>(&mut self) -> bool {
        self.decoders.insert(T::TYPE, decode_boxed::<T>).is_none()
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

    /// Decodes a registered type, or hands back an unregistered one as [`Decoded::Raw`].
    /// A registered type whose payload does not decode is an error.
    pub fn decode(&self, msg: Message) -> Result<Decoded, WireError> {
        match self.decoders.get(&msg.header.ty) {
            Some(decode) => Ok(Decoded::Typed {
                value: decode(&msg)?,
                header: msg.header,
            }),
            None => Ok(Decoded::Raw(msg)),
        }
    }
}

#[cfg(test)]
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

    #[test]
    fn round_trip_and_header() {
        let mut msg = encode_typed(&ping()).unwrap();
        assert_eq!(msg.header.ty, 0x7001);
        assert_eq!(msg.header.priority, PRIO_HIGH);
        assert_eq!((msg.header.version, msg.header.compat_version), (2, 1));
        msg.seal(1, EntityName::client(1), CrcFlags::default());
        assert_eq!(decode_typed::<Ping>(&msg).unwrap(), ping());
        // An old decoder reads the fields it knows (compat 1 <= its version 1).
        assert_eq!(decode_typed::<PingV1>(&msg).unwrap(), PingV1 { n: 42 });
    }

    #[test]
    fn checks_type_and_compat_version() {
        let mut msg = encode_typed(&ping()).unwrap();
        msg.header.ty = 5;
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
            decode_typed::<PingV1>(&msg),
            Err(WireError::CompatVersion {
                compat_version: 2,
                known: 1,
                ..
            })
        ));
    }

    #[test]
    fn bad_payloads_are_errors() {
        let msg = Message::new(Ping::TYPE, &b"\xff\xff"[..]);
        assert!(matches!(
            decode_typed::<Ping>(&msg),
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
        let mut r = Registry::new();
        assert!(r.register::<Ping>());
        assert!(!r.register::<PingV1>());
    }
}
