//! The msgr2.1 connector handshake as a sans-IO machine, in mon mode (a client
//! authenticating to a mon with `none` or `cephx`; the cephx spec's §E): banners, HELLO,
//! AUTH_REQUEST / AUTH_REPLY_MORE / AUTH_REQUEST_MORE / AUTH_DONE (or AUTH_BAD_METHOD),
//! the switch to the negotiated mode (crc or secure), AUTH_SIGNATURE both ways (HMAC of
//! what each side received up to AUTH_DONE, compared in constant time), CLIENT_IDENT and
//! SERVER_IDENT. Bytes in with [`Connector::handle_input`], bytes out with
//! [`Connector::poll_transmit`]; once open, [`Connector::finish`] hands over the frame codec
//! in its mode and what the handshake established.
//!
//! Not here yet: authorizer mode (client → OSD, mon ↔ mon), SESSION_RECONNECT and the
//! lossless session phase, the acceptor side, and the drivers that run it on sockets.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use msgr_auth::connection_secret::split_connection_secret;
use msgr_auth::provider::{AuthClient, ClientProgress};
use msgr_auth::signature::{auth_signature, auth_signature_matches};
use msgr_auth::{AuthError, CryptoKey, Encode, UTime};
use msgr_ceph::{EntityAddr as Addr2, EntityAddrVec};
use msgr_wire::EntityType;

use super::frame::{Banner, Decoder, Encoder, Frame, FrameError, FrameLimits, Gcm, Tag};

/// Connection mode: CRCs only.
pub const CON_MODE_CRC: u32 = 1;
/// Connection mode: AES-128-GCM.
pub const CON_MODE_SECURE: u32 = 2;
/// AUTH_REQUEST payload marker of mon mode.
const AUTH_MODE_MON: u8 = 10;
/// `CEPH_MSG_CONNECT_LOSSY` in the ident flags.
const FLAG_LOSSY: u64 = 1;

/// Why a v2 handshake failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// The bytes are not msgr2.1.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// A frame that does not belong where it came.
    #[error("unexpected {tag:?} while {phase}")]
    Unexpected {
        /// Its tag.
        tag: Tag,
        /// Where the handshake stood.
        phase: &'static str,
    },
    /// A frame's payload does not decode.
    #[error("malformed {0}")]
    Malformed(&'static str),
    /// AUTH_BAD_METHOD: the peer refused our method (cephx: −13 for a wrong key or an unknown
    /// entity).
    #[error("authentication refused: method {method}, result {result}, allowed {allowed:?}")]
    AuthRefused {
        /// Our method.
        method: u32,
        /// The peer's result.
        result: i32,
        /// Methods it allows.
        allowed: Vec<u32>,
    },
    /// Our auth provider failed on the peer's answer.
    #[error("authentication: {0}")]
    Auth(AuthError),
    /// The peer's AUTH_SIGNATURE does not match what we sent.
    #[error("the peer's AUTH_SIGNATURE does not match")]
    BadSignature,
    /// The peer chose a mode we did not offer, or secure mode without a secret.
    #[error("connection mode {0} not offered or not keyed")]
    BadMode(u32),
    /// The peer lacks features we require (or said we lack its).
    #[error("missing features {0:#x}")]
    MissingFeatures(u64),
    /// WAIT: the peer's own connection wins a race.
    #[error("connection race lost (WAIT)")]
    RaceLost,
}

/// What the connector side offers.
#[derive(Debug, Clone)]
pub struct ConnectorConfig {
    /// Our entity type.
    pub entity_type: EntityType,
    /// The peer's v2 address (its HELLO is told where we reached it).
    pub peer: std::net::SocketAddr,
    /// Our nonce.
    pub nonce: u32,
    /// Session features we support and require.
    pub features_supported: u64,
    /// See `features_supported`.
    pub features_required: u64,
    /// Connection modes in our order of preference (Ceph's `ms_mon_client_mode`).
    pub modes: Vec<u32>,
    /// Our global seq for this connection.
    pub global_seq: u64,
    /// Our session cookie (non-zero).
    pub client_cookie: u64,
    /// Bounds on what the peer may declare.
    pub limits: FrameLimits,
}

/// What a completed handshake established.
#[derive(Debug)]
pub struct Established {
    /// Features both ends support.
    pub features: u64,
    /// The negotiated mode.
    pub con_mode: u32,
    /// Our global id (from AUTH_DONE).
    pub global_id: u64,
    /// The peer's addresses (SERVER_IDENT).
    pub peer_addrs: EntityAddrVec,
    /// The peer's entity number.
    pub peer_global_id: u64,
    /// The peer made the session lossy.
    pub lossy: bool,
    /// The peer's session cookie (0 for lossy sessions).
    pub server_cookie: u64,
    /// Our address as the peer saw it (its HELLO).
    pub learned_addr: Option<Addr2>,
    /// The frame codec, in the negotiated mode.
    pub encoder: Encoder,
    /// See `encoder`.
    pub decoder: Decoder,
    /// Bytes received after SERVER_IDENT (the first frames of the session).
    pub leftover: BytesMut,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Banner,
    Hello,
    Auth,
    Signature,
    Ident,
    Open,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Banner => "reading the banner",
            Phase::Hello => "waiting for HELLO",
            Phase::Auth => "authenticating",
            Phase::Signature => "checking AUTH_SIGNATURE",
            Phase::Ident => "waiting for SERVER_IDENT",
            Phase::Open => "open",
        }
    }
}

/// The connector; see the module docs.
pub struct Connector {
    cfg: ConnectorConfig,
    auth: Box<dyn AuthClient>,
    phase: Phase,
    enc: Encoder,
    dec: Decoder,
    inbuf: BytesMut,
    out: BytesMut,
    /// What we sent and received up to AUTH_DONE (None once signed).
    logs: Option<(Vec<u8>, Vec<u8>)>,
    /// The AUTH_SIGNATURE the peer must send.
    expected_signature: Option<[u8; 32]>,
    con_mode: u32,
    global_id: u64,
    learned: Option<Addr2>,
    done: Option<(u64, EntityAddrVec, u64, bool, u64)>,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("phase", &self.phase)
            .finish_non_exhaustive()
    }
}

fn bufferlist(p: &mut &[u8], what: &'static str) -> Result<Bytes, HandshakeError> {
    if p.len() < 4 {
        return Err(HandshakeError::Malformed(what));
    }
    let n = p.get_u32_le() as usize;
    if p.len() < n {
        return Err(HandshakeError::Malformed(what));
    }
    let b = Bytes::copy_from_slice(&p[..n]);
    p.advance(n);
    Ok(b)
}

fn u32_vec(p: &mut &[u8], what: &'static str) -> Result<Vec<u32>, HandshakeError> {
    if p.len() < 4 {
        return Err(HandshakeError::Malformed(what));
    }
    let n = p.get_u32_le() as usize;
    if p.len() < n.saturating_mul(4) {
        return Err(HandshakeError::Malformed(what));
    }
    Ok((0..n).map(|_| p.get_u32_le()).collect())
}

fn u64_at(p: &mut &[u8], what: &'static str) -> Result<u64, HandshakeError> {
    if p.len() < 8 {
        return Err(HandshakeError::Malformed(what));
    }
    Ok(p.get_u64_le())
}

impl Connector {
    /// A connector authenticating with `auth` (mon mode); the banner is queued.
    pub fn new(cfg: ConnectorConfig, auth: Box<dyn AuthClient>) -> Connector {
        let mut c = Connector {
            dec: Decoder::new(cfg.limits),
            cfg,
            auth,
            phase: Phase::Banner,
            enc: Encoder::default(),
            inbuf: BytesMut::new(),
            out: BytesMut::new(),
            logs: Some((Vec::new(), Vec::new())),
            expected_signature: None,
            con_mode: 0,
            global_id: 0,
            learned: None,
            done: None,
        };
        let mut b = BytesMut::new();
        Banner::OURS.encode(&mut b);
        c.queue_raw(&b);
        c
    }

    fn queue_raw(&mut self, bytes: &[u8]) {
        if let Some((tx, _)) = &mut self.logs {
            tx.extend_from_slice(bytes);
        }
        self.out.extend_from_slice(bytes);
    }

    fn send(&mut self, frame: &Frame) {
        let mut b = BytesMut::new();
        self.enc.encode(frame, &mut b);
        self.queue_raw(&b);
    }

    /// Bytes to write, if any.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        (!self.out.is_empty()).then(|| self.out.split().freeze())
    }

    /// True once SERVER_IDENT arrived.
    pub fn is_open(&self) -> bool {
        self.phase == Phase::Open
    }

    /// Bytes from the peer; true once the handshake is complete.
    pub fn handle_input(&mut self, now: UTime, data: &[u8]) -> Result<bool, HandshakeError> {
        self.inbuf.extend_from_slice(data);
        while self.phase != Phase::Open {
            let before = self.inbuf.len();
            let snapshot = self.logs.is_some().then(|| self.inbuf.clone());
            if self.phase == Phase::Banner {
                if Banner::decode(&mut self.inbuf)?.is_none() {
                    return Ok(false);
                }
                self.log_rx(snapshot, before);
                let hello = self.hello();
                self.send(&hello);
                self.phase = Phase::Hello;
                continue;
            }
            let Some(frame) = self.dec.decode(&mut self.inbuf)? else {
                return Ok(false);
            };
            self.log_rx(snapshot, before);
            self.handle_frame(now, frame)?;
        }
        Ok(true)
    }

    fn log_rx(&mut self, snapshot: Option<BytesMut>, before: usize) {
        if let (Some((_, rx)), Some(s)) = (&mut self.logs, snapshot) {
            rx.extend_from_slice(&s[..before - self.inbuf.len()]);
        }
    }

    fn hello(&self) -> Frame {
        let mut p = BytesMut::new();
        p.put_u8(self.cfg.entity_type.0);
        Addr2::v2(self.cfg.peer, 0).encode(&mut p);
        Frame::control(Tag::Hello, p.freeze())
    }

    fn unexpected(&self, tag: Tag) -> HandshakeError {
        match tag {
            Tag::Wait => HandshakeError::RaceLost,
            _ => HandshakeError::Unexpected {
                tag,
                phase: self.phase.name(),
            },
        }
    }

    fn handle_frame(&mut self, now: UTime, frame: Frame) -> Result<(), HandshakeError> {
        let mut p = frame.segment(0);
        match (self.phase, frame.tag) {
            (Phase::Hello, Tag::Hello) => {
                if p.is_empty() {
                    return Err(HandshakeError::Malformed("HELLO"));
                }
                p.advance(1);
                self.learned = Addr2::decode(&mut p).ok();
                let req = self.auth_request();
                self.send(&req);
                self.phase = Phase::Auth;
            }
            (Phase::Auth, Tag::AuthReplyMore) => {
                let payload = bufferlist(&mut p, "AUTH_REPLY_MORE")?;
                let progress = self
                    .auth
                    .handle_reply(now, 0, &payload)
                    .map_err(HandshakeError::Auth)?;
                if progress == ClientProgress::Done {
                    return Err(HandshakeError::Malformed("AUTH_REPLY_MORE after the end"));
                }
                let req = self.auth.build_request(now).map_err(HandshakeError::Auth)?;
                let mut b = BytesMut::new();
                b.put_u32_le(u32::try_from(req.len()).unwrap_or(u32::MAX));
                b.put_slice(&req);
                self.send(&Frame::control(Tag::AuthRequestMore, b.freeze()));
            }
            (Phase::Auth, Tag::AuthBadMethod) => {
                let method = p.get_u32_le_checked("AUTH_BAD_METHOD")?;
                let result = p.get_u32_le_checked("AUTH_BAD_METHOD")? as i32;
                let allowed = u32_vec(&mut p, "AUTH_BAD_METHOD")?;
                return Err(HandshakeError::AuthRefused {
                    method,
                    result,
                    allowed,
                });
            }
            (Phase::Auth, Tag::AuthDone) => {
                self.global_id = u64_at(&mut p, "AUTH_DONE")?;
                self.con_mode = p.get_u32_le_checked("AUTH_DONE")?;
                let payload = bufferlist(&mut p, "AUTH_DONE")?;
                self.auth.set_global_id(self.global_id);
                self.auth
                    .handle_reply(now, 0, &payload)
                    .map_err(HandshakeError::Auth)?;
                if !self.cfg.modes.contains(&self.con_mode) {
                    return Err(HandshakeError::BadMode(self.con_mode));
                }
                self.signed_switch()?;
            }
            (Phase::Signature, Tag::AuthSignature) => {
                let ok = self
                    .expected_signature
                    .as_ref()
                    .is_some_and(|e| auth_signature_matches(e, p));
                if !ok {
                    return Err(HandshakeError::BadSignature);
                }
                let ident = self.client_ident();
                self.send(&ident);
                self.phase = Phase::Ident;
            }
            (Phase::Ident, Tag::ServerIdent) => {
                let addrs = EntityAddrVec::decode(&mut p)
                    .map_err(|_| HandshakeError::Malformed("SERVER_IDENT addrs"))?;
                let peer_global_id = u64_at(&mut p, "SERVER_IDENT")?;
                let _global_seq = u64_at(&mut p, "SERVER_IDENT")?;
                let supported = u64_at(&mut p, "SERVER_IDENT")?;
                let required = u64_at(&mut p, "SERVER_IDENT")?;
                let flags = u64_at(&mut p, "SERVER_IDENT")?;
                let cookie = u64_at(&mut p, "SERVER_IDENT")?;
                let missing = required & !self.cfg.features_supported;
                if missing != 0 {
                    return Err(HandshakeError::MissingFeatures(missing));
                }
                let missing = self.cfg.features_required & !supported;
                if missing != 0 {
                    return Err(HandshakeError::MissingFeatures(missing));
                }
                self.done = Some((
                    supported & self.cfg.features_supported,
                    addrs,
                    peer_global_id,
                    flags & FLAG_LOSSY != 0,
                    cookie,
                ));
                self.phase = Phase::Open;
            }
            (Phase::Ident, Tag::IdentMissingFeatures) => {
                return Err(HandshakeError::MissingFeatures(u64_at(
                    &mut p,
                    "IDENT_MISSING_FEATURES",
                )?));
            }
            (_, tag) => return Err(self.unexpected(tag)),
        }
        Ok(())
    }

    fn auth_request(&self) -> Frame {
        let mut payload = BytesMut::new();
        payload.put_u8(AUTH_MODE_MON);
        self.auth.name().encode(&mut payload);
        payload.put_u64_le(self.auth.global_id());
        let mut b = BytesMut::new();
        b.put_u32_le(self.auth.protocol());
        b.put_u32_le(u32::try_from(self.cfg.modes.len()).unwrap_or(0));
        for m in &self.cfg.modes {
            b.put_u32_le(*m);
        }
        b.put_u32_le(u32::try_from(payload.len()).unwrap_or(u32::MAX));
        b.put_slice(&payload);
        Frame::control(Tag::AuthRequest, b.freeze())
    }

    /// AUTH_DONE handled: the logs end here; switch to the mode; sign what we received.
    fn signed_switch(&mut self) -> Result<(), HandshakeError> {
        let (key, secret): (Option<CryptoKey>, _) = self.auth.v2_session();
        let (tx, rx) = self.logs.take().unwrap_or_default();
        if self.con_mode == CON_MODE_SECURE {
            let secret = secret.ok_or(HandshakeError::BadMode(self.con_mode))?;
            let keys = split_connection_secret(&secret, false).map_err(HandshakeError::Auth)?;
            self.enc.secure(Gcm::new(&keys.key, &keys.tx_nonce));
            self.dec.secure(Gcm::new(&keys.key, &keys.rx_nonce));
        }
        self.expected_signature = Some(auth_signature(key.as_ref(), &tx));
        let ours = auth_signature(key.as_ref(), &rx);
        self.send(&Frame::control(
            Tag::AuthSignature,
            Bytes::copy_from_slice(&ours),
        ));
        self.phase = Phase::Signature;
        Ok(())
    }

    fn client_ident(&self) -> Frame {
        let mut b = BytesMut::new();
        // Our address: the one the peer saw, with our nonce (a client has no listener).
        let mine = match self.learned {
            Some(a) => Addr2 {
                nonce: self.cfg.nonce,
                ..a
            },
            None => Addr2 {
                ty: 3,
                nonce: self.cfg.nonce,
                addr: None,
            },
        };
        EntityAddrVec(vec![mine]).encode(&mut b);
        Addr2::v2(self.cfg.peer, 0).encode(&mut b);
        b.put_u64_le(self.global_id);
        b.put_u64_le(self.cfg.global_seq);
        b.put_u64_le(self.cfg.features_supported);
        b.put_u64_le(self.cfg.features_required);
        b.put_u64_le(0);
        b.put_u64_le(self.cfg.client_cookie);
        Frame::control(Tag::ClientIdent, b.freeze())
    }

    /// The codec and what the handshake established; `None` before SERVER_IDENT.
    pub fn finish(self) -> Option<Established> {
        let (features, peer_addrs, peer_global_id, lossy, server_cookie) = self.done?;
        Some(Established {
            features,
            con_mode: self.con_mode,
            global_id: self.global_id,
            peer_addrs,
            peer_global_id,
            lossy,
            server_cookie,
            learned_addr: self.learned,
            encoder: self.enc,
            decoder: self.dec,
            leftover: self.inbuf,
        })
    }
}

/// A checked little-endian `u32` read.
trait GetChecked {
    fn get_u32_le_checked(&mut self, what: &'static str) -> Result<u32, HandshakeError>;
}

impl GetChecked for &[u8] {
    fn get_u32_le_checked(&mut self, what: &'static str) -> Result<u32, HandshakeError> {
        if self.len() < 4 {
            return Err(HandshakeError::Malformed(what));
        }
        Ok(self.get_u32_le())
    }
}
