//! One side's bytes decoded to items, with every CRC checked and the way the bytes end.
//!
//! The decoder's limits are the capture's own length (at most msgr-wire's defaults), so a
//! corrupt or hostile length never reserves more than the input's size: a message that
//! declares more bytes than the capture holds is reported as cut short, like a stream that
//! ends inside an item. With `keep_going` (`--continue`) the decoder checks no CRC itself;
//! each message's header, front, middle and data CRCs are checked here, every mismatch is
//! named on the message, and decoding goes on with the next frame (the header's lengths
//! are trusted; they are bounded by the input).

use super::describe::{describe, Described};
use bytes::BytesMut;
use msgr_wire::{
    crc32c, CrcFlags, FooterKind, Frame, Item, Limits, Side, StreamDecoder, WireError,
};

/// How to decode.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// The footer layout, if forced (`None`: from the features seen).
    pub footer: Option<FooterKind>,
    /// Go on after CRC mismatches, naming them on the message.
    pub keep_going: bool,
    /// msgr2: the connection secret that opens secure frames (`--secret`).
    pub secret: Option<super::v2::Secret>,
}

/// A decoded item and where it lies in its stream.
#[derive(Debug)]
pub struct Decoded {
    /// Offset of its first byte.
    pub offset: u64,
    /// Offset just past its last byte.
    pub end: u64,
    /// The item.
    pub item: Item,
    /// The CRC mismatches of a message (with `keep_going`), in words.
    pub crc_error: Option<String>,
}

/// How a side's bytes ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// Every byte made whole items.
    Complete,
    /// The bytes stop inside an item: the capture (or its gap) cut it.
    Cut {
        /// Offset of the partial item.
        offset: u64,
        /// What the decoder said.
        what: String,
    },
    /// The bytes are not msgr v1 from `offset` on (or a CRC failed without `keep_going`).
    Corrupt {
        /// Offset of the faulty item or field.
        offset: u64,
        /// What the decoder said.
        error: String,
    },
}

/// Everything decoded from one side's bytes.
#[derive(Debug)]
pub struct Stream {
    /// The items, in order.
    pub items: Vec<Decoded>,
    /// How the bytes ended.
    pub end: End,
}

impl Stream {
    /// Features of the last connect reply (the acceptor's, negotiated with the connector's).
    pub fn reply_features(&self) -> Option<u64> {
        self.items.iter().rev().find_map(|d| match &d.item {
            Item::ConnectReply(r) => Some(r.features),
            _ => None,
        })
    }

    /// Number of messages whose CRCs did not verify.
    pub fn crc_errors(&self) -> usize {
        self.items.iter().filter(|d| d.crc_error.is_some()).count()
    }

    /// The items as lines' kinds and fields ([`describe`]).
    pub fn described(&self) -> Vec<Described> {
        self.items
            .iter()
            .map(|d| {
                let (kind, fields) = describe(&d.item, d.crc_error.as_deref());
                Described {
                    offset: d.offset,
                    end: d.end,
                    kind,
                    fields,
                }
            })
            .collect()
    }
}

/// The decoder's limits for an input of `len` bytes: msgr-wire's defaults, or `len` if less.
pub fn limits_for(len: usize) -> Limits {
    let default = Limits::default();
    let len32 = u32::try_from(len).unwrap_or(u32::MAX);
    Limits {
        max_front: default.max_front.min(len32),
        max_middle: default.max_middle.min(len32),
        max_data: default.max_data.min(len32),
        max_message: default.max_message.min(len as u64),
        max_authorizer: default.max_authorizer.min(len32),
    }
}

/// Decodes `bytes`, written by `side`. `complete`: the bytes are the whole stream as far as
/// the capture goes (else they stop at a gap, and a partial item there is no error).
pub fn decode(bytes: &[u8], side: Side, opts: Options, complete: bool) -> Stream {
    let crc = if opts.keep_going {
        CrcFlags::NONE
    } else {
        CrcFlags::default()
    };
    let mut dec = StreamDecoder::new(side, limits_for(bytes.len()), crc);
    if let Some(kind) = opts.footer {
        dec.set_footer_kind(kind);
    }
    let mut buf = BytesMut::from(bytes);
    let mut items = Vec::new();
    let end = loop {
        let offset = dec.consumed();
        let next = if complete {
            dec.decode_eof(&mut buf)
        } else {
            dec.decode(&mut buf)
        };
        match next {
            Ok(Some(item)) => {
                let crc_error = if opts.keep_going {
                    crc_errors(&item)
                } else {
                    None
                };
                items.push(Decoded {
                    offset,
                    end: dec.consumed(),
                    item,
                    crc_error,
                });
            }
            Ok(None) if buf.is_empty() => break End::Complete,
            Ok(None) => {
                break End::Cut {
                    offset,
                    what: format!("{} bytes of an item before the gap", buf.len()),
                }
            }
            Err(e) => break classify(e, offset),
        }
    };
    Stream { items, end }
}

/// Whether an error means corrupt bytes or bytes cut short.
fn classify(e: WireError, offset: u64) -> End {
    let at = e.offset().unwrap_or(offset);
    let default = Limits::default();
    match e.cause() {
        WireError::UnexpectedEof { .. } => End::Cut {
            offset: at,
            what: e.cause().to_string(),
        },
        // Over the input's length but within the real limits: the item goes on past the
        // capture's end.
        WireError::TooLong { what, len, .. }
            if *len
                <= if what.starts_with("authorizer") {
                    u64::from(default.max_authorizer)
                } else {
                    default.max_message
                } =>
        {
            // Reported at the item's start, like a stream that ends inside it.
            End::Cut {
                offset,
                what: format!(
                    "stream ended inside an item: its {what} of {len} bytes goes on past the end of the capture"
                ),
            }
        }
        _ => End::Corrupt {
            offset: at,
            error: e.to_string(),
        },
    }
}

/// Every CRC mismatch of a message, in words (`None` if all verify).
fn crc_errors(item: &Item) -> Option<String> {
    let Item::Frame(Frame::Msg(m)) = item else {
        return None;
    };
    let mut errors = Vec::new();
    if let Err(e) = m.header.verify_crc() {
        errors.push(e.to_string());
    }
    let mut segment = |name: &str, bytes: &[u8], expected: u32| {
        let actual = crc32c(0, bytes);
        if actual != expected {
            errors.push(format!(
                "{name} crc mismatch: footer says {expected:#010x}, bytes give {actual:#010x}"
            ));
        }
    };
    segment("front", &m.front, m.footer.front_crc);
    segment("middle", &m.middle, m.footer.middle_crc);
    if !m.footer.is_nocrc() {
        segment("data", &m.data, m.footer.data_crc);
    }
    (!errors.is_empty()).then(|| errors.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_never_exceed_the_input() {
        let l = limits_for(100);
        assert_eq!((l.max_front, l.max_data, l.max_message), (100, 100, 100));
        assert_eq!(l.max_authorizer, 100);
        assert_eq!(limits_for(usize::MAX), Limits::default());
    }

    #[test]
    fn a_length_beyond_the_input_is_a_cut_one_beyond_the_limits_is_corrupt() {
        let cut = WireError::TooLong {
            what: "message",
            len: 1 << 20,
            limit: 500,
        }
        .at(7);
        assert!(matches!(classify(cut, 5), End::Cut { offset: 5, .. }));
        let huge = WireError::TooLong {
            what: "message",
            len: 1 << 30,
            limit: 500,
        };
        assert!(matches!(classify(huge, 3), End::Corrupt { offset: 3, .. }));
    }
}
