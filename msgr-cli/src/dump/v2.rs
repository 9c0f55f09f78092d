//! One side's msgr2 bytes decoded to lines: the banner, then every frame through msgr-pipe's
//! sans-IO frame decoder ([`Decoder`]), in crc mode and, once the connection turns secure,
//! AES-GCM mode.
//!
//! When a side turns secure (the cephx spec's §E.2: everything up to AUTH_DONE is crc
//! framing, the negotiated mode starts with AUTH_SIGNATURE):
//!
//! ```text
//! acceptor:  ... AUTH_DONE(con_mode 2) | sealed ...        its own AUTH_DONE says so
//! connector: ... AUTH_REQUEST[_MORE] #k | sealed ...       k = the acceptor's answers
//!                                                          (AUTH_BAD_METHOD, AUTH_REPLY_MORE,
//!                                                          AUTH_DONE) up to that AUTH_DONE
//! ```
//!
//! Without the acceptor's side (a raw connector stream, a capture that missed it) the
//! connector's switch is guessed: a preamble that fails its CRC right after an auth request
//! is taken as the first sealed frame. Without `--secret` the rest of a sealed side is one
//! `encrypted` line with its length; with it, the side is opened with the secret's key and
//! that side's nonce (§E.5, msgr-auth's `split_connection_secret`: the connector sends with
//! `secret[28..40]`, the acceptor with `secret[16..28]`). A secret that does not open the first sealed frame (another
//! connection's) gives the same `encrypted` line, with a note, not an error.
//!
//! With `keep_going` a crc frame whose segment CRCs fail is shown anyway, marked
//! `crc_ok=false crc_error=...`, and decoding goes on; the preamble's CRC guards the lengths,
//! so a bad preamble always ends the side. Not here: pairing the sides (`session`), v1.

use bytes::BytesMut;
use msgr_auth::connection_secret::split_connection_secret;
use msgr_pipe::v2::frame::{Banner, Decoder, FrameError, FrameLimits, Gcm, Tag};
use msgr_wire::{EntityName, EntityType, Side};

use super::decode::{End, Options};
use super::describe::{Described as Item, Fields, Val};
use super::frames2::{self, CON_MODE_SECURE};

/// Length of a connection secret.
pub const SECRET_LEN: usize = 64;

/// A msgr2 connection secret (`--secret`), split by msgr-auth's rule into the AES-GCM key
/// and the nonce each side sends with.
#[derive(Clone, Copy)]
pub struct Secret {
    key: [u8; 16],
    /// The connector's tx nonce (the client's).
    connector: [u8; 12],
    /// The acceptor's tx nonce (the server's: crossed).
    acceptor: [u8; 12],
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    /// Reads 128 hex digits.
    pub fn from_hex(s: &str) -> Result<Secret, String> {
        let s = s.trim();
        if s.len() != 2 * SECRET_LEN || !s.is_ascii() {
            return Err(format!(
                "a connection secret is {SECRET_LEN} bytes: {} hex digits, not {}",
                2 * SECRET_LEN,
                s.len()
            ));
        }
        let mut bytes = vec![0u8; SECRET_LEN];
        for (i, b) in bytes.iter_mut().enumerate() {
            let digits = s.get(2 * i..2 * i + 2).unwrap_or_default();
            *b = u8::from_str_radix(digits, 16)
                .map_err(|_| format!("not a hex byte at digit {}: {digits:?}", 2 * i))?;
        }
        let secret = msgr_auth::Secret::new(bytes);
        let split = |server| split_connection_secret(&secret, server).map_err(|e| e.to_string());
        let (client, server) = (split(false)?, split(true)?);
        Ok(Secret {
            key: client.key,
            connector: client.tx_nonce,
            acceptor: server.tx_nonce,
        })
    }

    /// The GCM state `side` sends with.
    fn gcm(&self, side: Side) -> Gcm {
        let nonce = match side {
            Side::Acceptor => &self.acceptor,
            Side::Connector => &self.connector,
        };
        Gcm::new(&self.key, nonce)
    }
}

/// When the connector's frames turn secure, as the acceptor's side tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Switch {
    /// After the connector's `n`-th AUTH_REQUEST or AUTH_REQUEST_MORE.
    AfterRequests(usize),
    /// Never: the acceptor chose crc mode.
    Never,
    /// Unknown (no AUTH_DONE seen): guessed from the bytes.
    Guess,
}

/// Everything decoded from one side's msgr2 bytes.
#[derive(Debug)]
pub struct Stream {
    /// The lines, in order.
    pub items: Vec<Item>,
    /// How the bytes ended (`Complete` also when the rest is sealed and not opened).
    pub end: End,
    /// Frames whose CRCs failed (with `keep_going`).
    pub crc_errors: usize,
    /// Payloads that do not hold what their tag says.
    pub malformed: usize,
    /// For an acceptor: when its connector turns secure.
    pub connector_switch: Switch,
}

/// The state of one side's walk through its frames.
struct Walk {
    /// The sender's name, for its messages' source: type from its HELLO, number from its
    /// IDENT.
    sender: EntityName,
    /// Auth requests (connector) or answers (acceptor) so far.
    auth_frames: usize,
    /// The last frame was an auth request (for the guessed switch).
    after_request: bool,
    /// The next frame is sealed.
    sealed_next: bool,
    /// Frames are sealed and opened.
    opened: bool,
    /// A sealed frame opened: the secret is this connection's.
    secret_fits: bool,
}

/// The decoder's limits for an input of `len` bytes: msgr-pipe's defaults, or `len` if less.
fn limits_for(len: usize) -> FrameLimits {
    let d = FrameLimits::default();
    let len = u32::try_from(len).unwrap_or(u32::MAX);
    FrameLimits {
        max_control: d.max_control.min(len),
        max_segment: d.max_segment.min(len),
        max_message: d.max_message.min(u64::from(len)),
    }
}

/// Decodes `bytes`, written by `side`, from its banner on. `switch`: for a connector, when
/// it turns secure. `complete`: as in [`super::decode::decode`].
pub fn decode(bytes: &[u8], side: Side, opts: Options, switch: Switch, complete: bool) -> Stream {
    let total = bytes.len() as u64;
    let mut buf = BytesMut::from(bytes);
    let mut out = Stream {
        items: Vec::new(),
        end: End::Complete,
        crc_errors: 0,
        malformed: 0,
        connector_switch: Switch::Guess,
    };
    let at = |buf: &BytesMut| total - buf.len() as u64;
    match Banner::decode(&mut buf) {
        Ok(Some(b)) => out.items.push(Item {
            offset: 0,
            end: at(&buf),
            kind: "banner",
            fields: vec![
                ("banner", Val::S("ceph v2".into())),
                ("supported", Val::Hex(b.supported)),
                ("required", Val::Hex(b.required)),
            ],
        }),
        Ok(None) => {
            out.end = cut(0, buf.len(), "the banner");
            return out;
        }
        Err(e) => {
            out.end = End::Corrupt {
                offset: 0,
                error: e.to_string(),
            };
            return out;
        }
    }
    let mut dec = Decoder::new(limits_for(bytes.len()));
    if opts.keep_going {
        dec.keep_damaged();
    }
    let mut walk = Walk {
        sender: EntityName::new(EntityType::ANY, EntityName::NEW),
        auth_frames: 0,
        after_request: false,
        sealed_next: false,
        opened: false,
        secret_fits: false,
    };
    out.end = loop {
        let start = at(&buf);
        if walk.sealed_next && !walk.opened {
            let Some(secret) = opts.secret else {
                out.items.push(encrypted(start, total, None));
                break End::Complete;
            };
            dec.secure(secret.gcm(side));
            walk.opened = true;
        }
        match dec.decode(&mut buf) {
            Ok(Some(frame)) => {
                let damage = dec.take_damage();
                let mut fields = match frames2::describe(&frame, walk.sender) {
                    Ok(fields) => fields,
                    Err(m) => {
                        out.malformed += 1;
                        vec![
                            ("payload_len", Val::U(frame.segment(0).len() as u64)),
                            ("malformed", Val::S(m.to_string())),
                        ]
                    }
                };
                if let Some(e) = &damage {
                    out.crc_errors += 1;
                    fields.push(("crc_ok", Val::B(false)));
                    fields.push(("crc_error", Val::S(e.to_string())));
                } else if frame.tag == Tag::Message {
                    fields.push(("crc_ok", Val::B(true)));
                }
                walk.secret_fits |= walk.opened;
                walk.step(side, frame.tag, &fields, switch, &mut out);
                out.items.push(Item {
                    offset: start,
                    end: at(&buf),
                    kind: frames2::tag_kind(frame.tag),
                    fields,
                });
            }
            // Nothing left, and nothing taken by this call (a secure head waiting for its
            // rest is a cut frame).
            Ok(None) if buf.is_empty() && at(&buf) == start => break End::Complete,
            Ok(None) => {
                let what = if complete {
                    "a frame"
                } else {
                    "a frame before the gap"
                };
                break cut(start, (total - start) as usize, what);
            }
            Err(FrameError::PreambleCrc)
                if side == Side::Connector
                    && switch == Switch::Guess
                    && walk.after_request
                    && !walk.sealed_next =>
            {
                // No AUTH_DONE to tell: a garbled preamble right after an auth request
                // is the first sealed frame.
                walk.sealed_next = true;
            }
            Err(FrameError::Decrypt) if !walk.secret_fits => {
                out.items.push(encrypted(
                    start,
                    total,
                    Some("--secret does not open it (another connection's secret?)"),
                ));
                break End::Complete;
            }
            // Over the input's length but within the real limits: the frame goes on past
            // the capture's end.
            Err(FrameError::TooLong { len, .. })
                if len <= u64::from(FrameLimits::default().max_segment) =>
            {
                break End::Cut {
                    offset: start,
                    what: format!(
                        "stream ended inside a frame: its segment of {len} bytes goes on past the end of the capture"
                    ),
                };
            }
            Err(e) => {
                break End::Corrupt {
                    offset: start,
                    error: e.to_string(),
                }
            }
        }
    };
    out
}

impl Walk {
    /// What a frame tells about the sender and the switch to secure mode.
    fn step(&mut self, side: Side, tag: Tag, fields: &Fields, switch: Switch, out: &mut Stream) {
        let field = |name: &str| {
            fields.iter().find_map(|(k, v)| match v {
                Val::U(n) if *k == name => i64::try_from(*n).ok(),
                Val::I(n) if *k == name => Some(*n),
                _ => None,
            })
        };
        self.after_request = matches!(tag, Tag::AuthRequest | Tag::AuthRequestMore);
        match tag {
            Tag::Hello => {
                if let Some(t) = field("entity_type").and_then(|t| u8::try_from(t).ok()) {
                    self.sender.ty = EntityType(t);
                }
            }
            Tag::ClientIdent | Tag::ServerIdent => {
                if let Some(id) = field("global_id") {
                    self.sender.num = id;
                }
            }
            Tag::AuthRequest | Tag::AuthRequestMore if side == Side::Connector => {
                self.auth_frames = self.auth_frames.saturating_add(1);
                if switch == Switch::AfterRequests(self.auth_frames) {
                    self.sealed_next = true;
                }
            }
            Tag::AuthBadMethod | Tag::AuthReplyMore if side == Side::Acceptor => {
                self.auth_frames = self.auth_frames.saturating_add(1);
            }
            Tag::AuthDone if side == Side::Acceptor => {
                self.auth_frames = self.auth_frames.saturating_add(1);
                if field("con_mode") == Some(CON_MODE_SECURE.into()) {
                    self.sealed_next = true;
                    out.connector_switch = Switch::AfterRequests(self.auth_frames);
                } else {
                    out.connector_switch = Switch::Never;
                }
            }
            _ => {}
        }
    }
}

/// The role a side's first frames show: a connector asks (AUTH_REQUEST, CLIENT_IDENT,
/// SESSION_RECONNECT), an acceptor answers (AUTH_BAD_METHOD, AUTH_REPLY_MORE, AUTH_DONE,
/// SERVER_IDENT, ...). HELLO, which both send, shows neither.
pub fn role_from_bytes(bytes: &[u8]) -> Option<Side> {
    let head = bytes.get(..bytes.len().min(1 << 16)).unwrap_or_default();
    let mut buf = BytesMut::from(head);
    Banner::decode(&mut buf).ok().flatten()?;
    let mut dec = Decoder::new(limits_for(head.len()));
    for _ in 0..4 {
        let frame = dec.decode(&mut buf).ok().flatten()?;
        match frame.tag {
            Tag::Hello => {}
            Tag::AuthRequest | Tag::AuthRequestMore | Tag::ClientIdent | Tag::SessionReconnect => {
                return Some(Side::Connector)
            }
            Tag::AuthBadMethod
            | Tag::AuthReplyMore
            | Tag::AuthDone
            | Tag::ServerIdent
            | Tag::IdentMissingFeatures
            | Tag::SessionReset
            | Tag::SessionRetry
            | Tag::SessionRetryGlobal
            | Tag::SessionReconnectOk
            | Tag::Wait => return Some(Side::Acceptor),
            _ => return None,
        }
    }
    None
}

/// The line for a sealed rest of `total - start` bytes.
fn encrypted(start: u64, total: u64, note: Option<&str>) -> Item {
    let note = note.unwrap_or(
        "secure mode: the rest of this side is AES-GCM sealed; --secret HEX decrypts it",
    );
    Item {
        offset: start,
        // Placed at the packet of its first sealed byte: where the plain frames stop.
        end: (start + 1).min(total),
        kind: "encrypted",
        fields: vec![
            ("bytes", Val::U(total - start)),
            ("note", Val::S(note.into())),
        ],
    }
}

fn cut(offset: u64, have: usize, what: &str) -> End {
    End::Cut {
        offset,
        what: format!("{have} bytes of {what}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_128_hex_digits() {
        assert!(Secret::from_hex(&"ab".repeat(64)).is_ok());
        assert!(Secret::from_hex(&"ab".repeat(63)).is_err());
        assert!(Secret::from_hex(&format!("{}zz", "ab".repeat(63))).is_err());
        // A multi-byte character never splits a digit pair into a panic.
        assert!(Secret::from_hex(&format!("é{}", "a".repeat(126))).is_err());
    }

    #[test]
    fn the_nonces_are_crossed_as_in_the_spec() {
        let hex: String = (0..SECRET_LEN as u8).map(|b| format!("{b:02x}")).collect();
        let s = Secret::from_hex(&hex).unwrap();
        assert_eq!(s.key[0], 0);
        assert_eq!((s.acceptor[0], s.connector[0]), (16, 28));
    }

    #[test]
    fn a_sealed_head_without_its_rest_is_a_cut() {
        use msgr_pipe::v2::frame::{Encoder, Frame};
        let secret = Secret::from_hex(&"09".repeat(SECRET_LEN)).unwrap();
        let mut wire = BytesMut::new();
        Banner::OURS.encode(&mut wire);
        let mut enc = Encoder::default();
        let mut done = BytesMut::new();
        done.extend_from_slice(&[0; 8]);
        done.extend_from_slice(&CON_MODE_SECURE.to_le_bytes());
        done.extend_from_slice(&[0; 4]);
        enc.encode(&Frame::control(Tag::AuthDone, done.freeze()), &mut wire);
        let sealed_at = wire.len() as u64;
        enc.secure(secret.gcm(Side::Acceptor));
        enc.encode(
            &Frame::control(Tag::AuthSignature, vec![7u8; 200]),
            &mut wire,
        );
        let opts = Options {
            secret: Some(secret),
            ..Options::default()
        };
        let whole = decode(&wire, Side::Acceptor, opts, Switch::Guess, true);
        assert_eq!(whole.end, End::Complete);
        assert_eq!(whole.items.last().map(|i| i.kind), Some("auth_signature"));
        // Just the 96-byte head: it opens and takes every byte left, and the frame is cut.
        let head_end = usize::try_from(sealed_at).unwrap_or(usize::MAX) + 96;
        let cut = decode(&wire[..head_end], Side::Acceptor, opts, Switch::Guess, true);
        assert!(
            matches!(cut.end, End::Cut { offset, .. } if offset == sealed_at),
            "{:?}",
            cut.end
        );
    }

    #[test]
    fn alone_a_connector_turns_secure_at_the_garbled_preamble_after_its_auth_request() {
        use msgr_pipe::v2::frame::{Encoder, Frame};
        let secret = Secret::from_hex(&"3c".repeat(SECRET_LEN)).unwrap();
        let mut wire = BytesMut::new();
        Banner::OURS.encode(&mut wire);
        let mut enc = Encoder::default();
        let mut req = BytesMut::new();
        req.extend_from_slice(&2u32.to_le_bytes());
        req.extend_from_slice(&1u32.to_le_bytes());
        req.extend_from_slice(&2u32.to_le_bytes());
        req.extend_from_slice(&0u32.to_le_bytes());
        enc.encode(&Frame::control(Tag::AuthRequest, req.freeze()), &mut wire);
        let sealed_at = wire.len() as u64;
        enc.secure(secret.gcm(Side::Connector));
        enc.encode(
            &Frame::control(Tag::AuthSignature, vec![1u8; 32]),
            &mut wire,
        );
        let kinds = |s: &Stream| s.items.iter().map(|i| i.kind).collect::<Vec<_>>();

        let plain = decode(
            &wire,
            Side::Connector,
            Options::default(),
            Switch::Guess,
            true,
        );
        assert_eq!(plain.end, End::Complete);
        assert_eq!(kinds(&plain), ["banner", "auth_request", "encrypted"]);
        assert_eq!(plain.items[2].offset, sealed_at);
        assert_eq!(plain.items[2].fields[0], ("bytes", Val::U(96)));

        let opts = Options {
            secret: Some(secret),
            ..Options::default()
        };
        let opened = decode(&wire, Side::Connector, opts, Switch::Guess, true);
        assert_eq!(opened.end, End::Complete);
        assert_eq!(kinds(&opened), ["banner", "auth_request", "auth_signature"]);
        // Told by the acceptor's side, the switch is not guessed: after request 1.
        let told = decode(&wire, Side::Connector, opts, Switch::AfterRequests(1), true);
        assert_eq!(kinds(&told), kinds(&opened));
    }

    #[test]
    fn a_bare_banner_is_complete_and_a_cut_one_is_cut() {
        let mut b = BytesMut::new();
        Banner::OURS.encode(&mut b);
        let s = decode(&b, Side::Acceptor, Options::default(), Switch::Guess, true);
        assert_eq!(s.end, End::Complete);
        assert_eq!(s.items.len(), 1);
        let s = decode(
            &b[..20],
            Side::Acceptor,
            Options::default(),
            Switch::Guess,
            true,
        );
        assert!(matches!(s.end, End::Cut { offset: 0, .. }), "{:?}", s.end);
    }
}
