//! msgr2 frames as fields: each tag's payload (the cephx spec's §E.3) read into named fields,
//! in the style of the v1 items of [`super::describe`].
//!
//! A line's kind is the tag's name in lower case (`hello`, `auth_done`, `server_ident`,
//! `msg`, `keepalive2`, ...); a MESSAGE is a `msg` line with the v1 message's fields (its
//! type name from [`super::names`]), made by msgr-pipe's own [`inbound`], which also reads
//! ACK and the keepalives. Addresses print as Ceph prints them (`v2:127.0.0.1:3300/0`),
//! address vectors as `[v2:...,v1:...]`, lists of numbers as `2,1`.
//!
//! Not here: the frame layer (preambles, CRCs, AES-GCM: msgr-pipe's `v2::frame`), the
//! authentication payloads' insides (tickets, challenges: only their lengths are shown).

use bytes::Buf;
use msgr_ceph::{EntityAddr, EntityAddrVec};
use msgr_pipe::core::Control;
use msgr_pipe::v1::codec::Inbound;
use msgr_pipe::v2::frame::{Frame, Tag};
use msgr_pipe::v2::session::inbound;
use msgr_wire::{EntityName, EntityType};

use super::describe::{Fields, Val};
use super::names::type_name;

/// `con_mode` of AUTH_DONE: secure (AES-GCM frames from AUTH_SIGNATURE on).
pub const CON_MODE_SECURE: u32 = 2;

/// A frame payload that does not hold what its tag says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    /// The frame or field that ends early or holds a bad value.
    pub what: String,
}

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "malformed {}", self.what)
    }
}

/// A payload being read: every read checks the bytes left.
struct Payload<'a> {
    bytes: &'a [u8],
    tag: &'static str,
}

impl Payload<'_> {
    fn short(&self, field: &str) -> Malformed {
        Malformed {
            what: format!("{} payload: it ends inside its {field}", self.tag),
        }
    }

    fn u8(&mut self, field: &str) -> Result<u8, Malformed> {
        self.bytes.try_get_u8().map_err(|_| self.short(field))
    }

    fn u32(&mut self, field: &str) -> Result<u32, Malformed> {
        self.bytes.try_get_u32_le().map_err(|_| self.short(field))
    }

    fn u64(&mut self, field: &str) -> Result<u64, Malformed> {
        self.bytes.try_get_u64_le().map_err(|_| self.short(field))
    }

    /// A `bufferlist`: its length (u32) and bytes; only the length is kept.
    fn bufferlist(&mut self, field: &str) -> Result<u64, Malformed> {
        let len = self.u32(field)?;
        let n = usize::try_from(len).unwrap_or(usize::MAX);
        if self.bytes.len() < n {
            return Err(self.short(field));
        }
        self.bytes.advance(n);
        Ok(len.into())
    }

    /// A `vector<u32>` as `a,b,c`.
    fn u32_list(&mut self, field: &str) -> Result<String, Malformed> {
        let n = self.u32(field)?;
        // Each entry takes 4 bytes: a count beyond what is left is cut short.
        if u64::from(n) * 4 > self.bytes.len() as u64 {
            return Err(self.short(field));
        }
        let items: Result<Vec<String>, Malformed> = (0..n)
            .map(|_| self.u32(field).map(|v| v.to_string()))
            .collect();
        Ok(items?.join(","))
    }

    fn addr(&mut self, field: &str) -> Result<String, Malformed> {
        EntityAddr::decode(&mut self.bytes)
            .map(|a| addr_text(&a))
            .map_err(|e| Malformed {
                what: format!("{} {field}: {e}", self.tag),
            })
    }

    fn addrvec(&mut self, field: &str) -> Result<String, Malformed> {
        EntityAddrVec::decode(&mut self.bytes)
            .map(|v| {
                let list: Vec<String> = v.0.iter().map(addr_text).collect();
                format!("[{}]", list.join(","))
            })
            .map_err(|e| Malformed {
                what: format!("{} {field}: {e}", self.tag),
            })
    }
}

/// An address as Ceph prints it: `v2:IP:PORT/NONCE` (`v1:` legacy, `any:`, `-` blank).
fn addr_text(a: &EntityAddr) -> String {
    let ty = match a.ty {
        msgr_ceph::ADDR_TYPE_LEGACY => "v1",
        msgr_ceph::ADDR_TYPE_MSGR2 => "v2",
        msgr_ceph::ADDR_TYPE_ANY => "any",
        _ => "none",
    };
    match a.addr {
        Some(ip) => format!("{ty}:{ip}/{}", a.nonce),
        None => format!("{ty}:-/{}", a.nonce),
    }
}

/// The line kind of a tag: its name in lower case.
pub fn tag_kind(tag: Tag) -> &'static str {
    match tag {
        Tag::Hello => "hello",
        Tag::AuthRequest => "auth_request",
        Tag::AuthBadMethod => "auth_bad_method",
        Tag::AuthReplyMore => "auth_reply_more",
        Tag::AuthRequestMore => "auth_request_more",
        Tag::AuthDone => "auth_done",
        Tag::AuthSignature => "auth_signature",
        Tag::ClientIdent => "client_ident",
        Tag::ServerIdent => "server_ident",
        Tag::IdentMissingFeatures => "ident_missing_features",
        Tag::SessionReconnect => "session_reconnect",
        Tag::SessionReset => "session_reset",
        Tag::SessionRetry => "session_retry",
        Tag::SessionRetryGlobal => "session_retry_global",
        Tag::SessionReconnectOk => "session_reconnect_ok",
        Tag::Wait => "wait",
        Tag::Message => "msg",
        Tag::Keepalive2 => "keepalive2",
        Tag::Keepalive2Ack => "keepalive2_ack",
        Tag::Ack => "ack",
    }
}

/// The fields of `frame`, sent by `sender` (the name its messages carry as their source).
pub fn describe(frame: &Frame, sender: EntityName) -> Result<Fields, Malformed> {
    use Val::*;
    let mut p = Payload {
        bytes: frame.segment(0),
        tag: tag_kind(frame.tag),
    };
    let fields = match frame.tag {
        Tag::Hello => {
            let ty = EntityType(p.u8("entity type")?);
            vec![
                ("entity_type", U(ty.0.into())),
                ("entity", ty.name().map_or(Null, |n| S(n.into()))),
                ("peer_addr", S(p.addr("peer address")?)),
            ]
        }
        Tag::AuthRequest => vec![
            ("method", U(p.u32("method")?.into())),
            ("preferred_modes", S(p.u32_list("preferred modes")?)),
            ("payload_len", U(p.bufferlist("auth payload")?)),
        ],
        Tag::AuthBadMethod => vec![
            ("method", U(p.u32("method")?.into())),
            ("result", I((p.u32("result")? as i32).into())),
            ("allowed_methods", S(p.u32_list("allowed methods")?)),
            ("allowed_modes", S(p.u32_list("allowed modes")?)),
        ],
        Tag::AuthReplyMore | Tag::AuthRequestMore => {
            vec![("payload_len", U(p.bufferlist("auth payload")?))]
        }
        Tag::AuthDone => {
            let global_id = p.u64("global id")?;
            let mode = p.u32("con mode")?;
            vec![
                ("global_id", U(global_id)),
                ("con_mode", U(mode.into())),
                ("con_mode_name", S(mode_name(mode).into())),
                ("payload_len", U(p.bufferlist("auth payload")?)),
            ]
        }
        Tag::AuthSignature => vec![("sig", S(hex(p.bytes)))],
        Tag::ClientIdent => {
            let mut f = vec![
                ("addrs", S(p.addrvec("addrs")?)),
                ("target_addr", S(p.addr("target address")?)),
            ];
            f.extend(ident_tail(&mut p, "client_cookie")?);
            f
        }
        Tag::ServerIdent => {
            let mut f = vec![("addrs", S(p.addrvec("addrs")?))];
            f.extend(ident_tail(&mut p, "server_cookie")?);
            f
        }
        Tag::IdentMissingFeatures => vec![("features", Hex(p.u64("features")?))],
        Tag::SessionReconnect => vec![
            ("addrs", S(p.addrvec("addrs")?)),
            ("client_cookie", U(p.u64("client cookie")?)),
            ("server_cookie", U(p.u64("server cookie")?)),
            ("global_seq", U(p.u64("global seq")?)),
            ("connect_seq", U(p.u64("connect seq")?)),
            ("msg_seq", U(p.u64("msg seq")?)),
        ],
        Tag::SessionReset => vec![("full", B(p.u8("full")? != 0))],
        Tag::SessionRetry => vec![("connect_seq", U(p.u64("connect seq")?))],
        Tag::SessionRetryGlobal => vec![("global_seq", U(p.u64("global seq")?))],
        Tag::SessionReconnectOk => vec![("msg_seq", U(p.u64("msg seq")?))],
        Tag::Wait => vec![],
        Tag::Message | Tag::Keepalive2 | Tag::Keepalive2Ack | Tag::Ack => {
            return session_frame(frame, sender)
        }
    };
    Ok(fields)
}

/// The identity fields both IDENT frames end with.
fn ident_tail(p: &mut Payload<'_>, cookie: &'static str) -> Result<Fields, Malformed> {
    use Val::*;
    Ok(vec![
        // int64 in Ceph: -1 is a client without one yet.
        ("global_id", I(p.u64("global id")? as i64)),
        ("global_seq", U(p.u64("global seq")?)),
        ("features_supported", Hex(p.u64("supported features")?)),
        ("features_required", Hex(p.u64("required features")?)),
        ("flags", U(p.u64("flags")?)),
        (cookie, U(p.u64("cookie")?)),
    ])
}

/// MESSAGE, KEEPALIVE2, KEEPALIVE2_ACK and ACK, read by msgr-pipe's session code.
fn session_frame(frame: &Frame, sender: EntityName) -> Result<Fields, Malformed> {
    use Val::*;
    let (inbound, ack_seq) = inbound(frame.clone(), sender).map_err(|e| Malformed {
        what: e.to_string(),
    })?;
    Ok(match inbound {
        Inbound::Message(m) => {
            let h = &m.header;
            vec![
                ("seq", U(h.seq)),
                ("tid", U(h.tid)),
                ("type", U(h.ty.into())),
                ("type_name", type_name(h.ty).map_or(Null, |n| S(n.into()))),
                ("priority", U(h.priority.into())),
                ("version", U(h.version.into())),
                ("front_len", U(h.front_len.into())),
                ("middle_len", U(h.middle_len.into())),
                ("data_len", U(h.data_len.into())),
                ("data_off", U(h.data_off.into())),
                ("src_type", U(h.src.ty.0.into())),
                ("src_num", I(h.src.num)),
                ("compat_version", U(h.compat_version.into())),
                ("ack_seq", U(ack_seq)),
            ]
        }
        Inbound::Control(Control::Ack(seq)) => vec![("seq", U(seq))],
        Inbound::Control(Control::Keepalive2(t) | Control::Keepalive2Ack(t)) => vec![
            ("stamp_sec", U(t.sec.into())),
            ("stamp_nsec", U(t.nsec.into())),
        ],
        Inbound::Control(Control::Keepalive | Control::Close) => vec![],
    })
}

/// `crc` (1) or `secure` (2).
fn mode_name(mode: u32) -> &'static str {
    match mode {
        1 => "crc",
        CON_MODE_SECURE => "secure",
        _ => "unknown",
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{BufMut, BytesMut};

    fn mon() -> EntityName {
        EntityName::mon(0)
    }

    #[test]
    fn auth_done_names_its_mode_and_a_short_payload_is_malformed() {
        let mut b = BytesMut::new();
        b.put_u64_le(4242);
        b.put_u32_le(2);
        b.put_u32_le(3);
        b.put_slice(b"abc");
        let frame = Frame::control(Tag::AuthDone, b.clone().freeze());
        let fields = describe(&frame, mon()).unwrap();
        assert_eq!(
            fields,
            vec![
                ("global_id", Val::U(4242)),
                ("con_mode", Val::U(2)),
                ("con_mode_name", Val::S("secure".into())),
                ("payload_len", Val::U(3)),
            ]
        );
        for cut in 0..b.len() {
            let frame = Frame::control(Tag::AuthDone, b.clone().freeze().slice(..cut));
            assert!(describe(&frame, mon()).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn a_huge_list_count_is_malformed_not_allocated() {
        let mut b = BytesMut::new();
        b.put_u32_le(2);
        b.put_u32_le(u32::MAX);
        let frame = Frame::control(Tag::AuthRequest, b.freeze());
        let e = describe(&frame, mon()).unwrap_err();
        assert!(e.what.contains("preferred modes"), "{e}");
    }
}
