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
use msgr_auth::provider::{AuthClient, ClientAuthorizer, ClientProgress};
use msgr_auth::{AuthError, CryptoKey, Encode, Secret, UTime};
use msgr_ceph::{EntityAddr as Addr2, EntityAddrVec, ADDR_TYPE_ANY};
use msgr_wire::EntityType;

use super::exchange::{Exchange, Inbound};
use super::frame::{Decoder, Encoder, Frame, FrameError, FrameLimits, Tag};

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

impl HandshakeError {
    /// True for answers that retrying cannot change: the session gives up (a refused
    /// authentication, missing features, no connection mode in common).
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            HandshakeError::AuthRefused { .. }
                | HandshakeError::MissingFeatures(_)
                | HandshakeError::BadMode(_)
        )
    }

    /// True when the peer's bytes or answer, not a broken socket, ended the handshake.
    pub fn is_refusal(&self) -> bool {
        !matches!(self, HandshakeError::RaceLost)
    }
}

/// How the connector authenticates.
pub enum ClientAuth {
    /// Mon mode: a client authenticating to a mon (`none` or `cephx` rounds).
    Mon(Box<dyn AuthClient>),
    /// Authorizer mode: a ticket-bearing authorizer for a service (OSD, MGR, a peer
    /// messenger), or `none`'s.
    Authorizer(Box<dyn ClientAuthorizer>),
}

impl std::fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientAuth::Mon(c) => write!(f, "Mon(protocol {})", c.protocol()),
            ClientAuth::Authorizer(a) => write!(f, "Authorizer(protocol {})", a.protocol()),
        }
    }
}

impl ClientAuth {
    fn protocol(&self) -> u32 {
        match self {
            ClientAuth::Mon(c) => c.protocol(),
            ClientAuth::Authorizer(a) => a.protocol(),
        }
    }
}

/// A lossless session to resume on this connection (SESSION_RECONNECT).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resume {
    /// The acceptor's cookie from its SERVER_IDENT.
    pub server_cookie: u64,
    /// Reconnects of this session so far.
    pub connect_seq: u64,
    /// What we received of the session (`in_seq`).
    pub msg_seq: u64,
}

/// What the connector side offers.
#[derive(Debug, Clone)]
pub struct ConnectorConfig {
    /// Our entity type.
    pub entity_type: EntityType,
    /// The peer's v2 address (its HELLO is told where we reached it).
    pub peer: std::net::SocketAddr,
    /// The peer's nonce, as we know it (0 for a mon, or when unknown): CLIENT_IDENT's target
    /// names it, and a daemon refuses a target that is not its address ("not us").
    pub peer_nonce: u32,
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
    /// We ask for a lossy session (the ident's flags).
    pub lossy: bool,
    /// Our own v2 listening address, announced in CLIENT_IDENT (a client without a listener
    /// announces `any:<the IP the peer saw>:0/<nonce>`, as Ceph's client does).
    pub my_addr: Option<std::net::SocketAddr>,
    /// Resume this lossless session instead of starting one.
    pub resume: Option<Resume>,
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
    /// The peer's entity type (its HELLO).
    pub peer_type: EntityType,
    /// SESSION_RECONNECT_OK: the session resumed, the peer had received our messages up
    /// to this seq. `None`: a new session (SERVER_IDENT).
    pub reconnected: Option<u64>,
    /// The peer answered SESSION_RESET on the way (`true`: a full reset); our session state
    /// must start over.
    pub reset: Option<bool>,
    /// The connect_seq and global_seq the session opened with (after RETRY answers).
    pub connect_seq: u64,
    /// See `connect_seq`.
    pub global_seq: u64,
    /// The peer's global seq (its SERVER_IDENT; 0 after a reconnect).
    pub peer_global_seq: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Banner,
    Hello,
    Auth,
    Signature,
    Ident,
    Reconnect,
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
            Phase::Reconnect => "waiting for SESSION_RECONNECT_OK",
            Phase::Open => "open",
        }
    }
}

/// The connector; see the module docs.
pub struct Connector {
    cfg: ConnectorConfig,
    auth: ClientAuth,
    /// Authorizer mode: the session key and connection secret AUTH_DONE established.
    authorized: Option<(Option<CryptoKey>, Option<Secret>)>,
    peer_type: EntityType,
    reconnected: Option<u64>,
    reset: Option<bool>,
    phase: Phase,
    wire: Exchange,
    con_mode: u32,
    global_id: u64,
    learned: Option<Addr2>,
    done: Option<(u64, EntityAddrVec, u64, bool, u64, u64)>,
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
    /// A connector authenticating with `auth` in mon mode; the banner is queued.
    pub fn new(cfg: ConnectorConfig, auth: Box<dyn AuthClient>) -> Connector {
        Connector::with_auth(cfg, ClientAuth::Mon(auth))
    }

    /// A connector authenticating with `auth` (mon or authorizer mode); the banner is queued.
    pub fn with_auth(cfg: ConnectorConfig, auth: ClientAuth) -> Connector {
        Connector {
            wire: Exchange::new(cfg.limits),
            cfg,
            auth,
            authorized: None,
            peer_type: EntityType(0),
            reconnected: None,
            reset: None,
            phase: Phase::Banner,
            con_mode: 0,
            global_id: 0,
            learned: None,
            done: None,
        }
    }

    fn send(&mut self, frame: &Frame) {
        self.wire.send(frame);
    }

    /// Bytes to write, if any.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.wire.poll_transmit()
    }

    /// True once SERVER_IDENT arrived.
    pub fn is_open(&self) -> bool {
        self.phase == Phase::Open
    }

    /// The peer answered SESSION_RESET (`Some(true)`: a full reset), so the CLIENT_IDENT
    /// queued after it starts the session over: the driver must stop treating the session as
    /// established (its server cookie) before that CLIENT_IDENT leaves.
    pub fn reset_received(&self) -> Option<bool> {
        self.reset
    }

    /// CLIENT_IDENT or SESSION_RECONNECT was queued: the peer may now hold the session.
    pub fn ident_sent(&self) -> bool {
        matches!(self.phase, Phase::Ident | Phase::Reconnect | Phase::Open)
    }

    /// Bytes from the peer; true once the handshake is complete.
    pub fn handle_input(&mut self, now: UTime, data: &[u8]) -> Result<bool, HandshakeError> {
        self.wire.receive(data);
        while self.phase != Phase::Open {
            match self.wire.next(self.phase == Phase::Banner)? {
                None => return Ok(false),
                Some(Inbound::Banner) => {
                    let hello = self.hello();
                    self.send(&hello);
                    self.phase = Phase::Hello;
                }
                Some(Inbound::Frame(frame)) => self.handle_frame(now, frame)?,
            }
        }
        Ok(true)
    }

    fn hello(&self) -> Frame {
        let mut p = BytesMut::new();
        p.put_u8(self.cfg.entity_type.0);
        Addr2::v2(self.cfg.peer, self.cfg.peer_nonce).encode(&mut p);
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
                self.peer_type = EntityType(p.get_u8());
                self.learned = Addr2::decode(&mut p).ok();
                let req = self.auth_request();
                self.send(&req);
                self.phase = Phase::Auth;
            }
            (Phase::Auth, Tag::AuthReplyMore) => {
                let payload = bufferlist(&mut p, "AUTH_REPLY_MORE")?;
                let req = match &mut self.auth {
                    ClientAuth::Mon(auth) => {
                        let progress = auth
                            .handle_reply(now, 0, &payload)
                            .map_err(HandshakeError::Auth)?;
                        if progress == ClientProgress::Done {
                            return Err(HandshakeError::Malformed("AUTH_REPLY_MORE after the end"));
                        }
                        auth.build_request(now).map_err(HandshakeError::Auth)?
                    }
                    // The service challenges our authorizer: answer with it rebuilt.
                    ClientAuth::Authorizer(a) => {
                        a.add_challenge(&payload).map_err(HandshakeError::Auth)?;
                        a.bytes()
                    }
                };
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
                match &mut self.auth {
                    ClientAuth::Mon(auth) => {
                        auth.set_global_id(self.global_id);
                        auth.handle_reply(now, 0, &payload)
                            .map_err(HandshakeError::Auth)?;
                    }
                    ClientAuth::Authorizer(a) => {
                        let session = a.verify_reply_v2(&payload).map_err(HandshakeError::Auth)?;
                        self.authorized = Some(session);
                    }
                }
                if !self.cfg.modes.contains(&self.con_mode) {
                    return Err(HandshakeError::BadMode(self.con_mode));
                }
                self.signed_switch()?;
            }
            (Phase::Signature, Tag::AuthSignature) => {
                if !self.wire.signature_ok(p) {
                    return Err(HandshakeError::BadSignature);
                }
                match self.cfg.resume {
                    Some(r) => {
                        let f = self.session_reconnect(r);
                        self.send(&f);
                        self.phase = Phase::Reconnect;
                    }
                    None => {
                        let ident = self.client_ident();
                        self.send(&ident);
                        self.phase = Phase::Ident;
                    }
                }
            }
            (Phase::Reconnect, Tag::SessionReconnectOk) => {
                self.reconnected = Some(u64_at(&mut p, "SESSION_RECONNECT_OK")?);
                let features = self.cfg.features_supported;
                let server_cookie = self.cfg.resume.map_or(0, |r| r.server_cookie);
                self.done = Some((
                    features,
                    EntityAddrVec(Vec::new()),
                    0,
                    false,
                    server_cookie,
                    0,
                ));
                self.phase = Phase::Open;
            }
            (Phase::Reconnect, Tag::SessionRetry) => {
                // The peer holds the session at a later connect_seq: try again above it.
                let theirs = u64_at(&mut p, "SESSION_RETRY")?;
                if let Some(r) = &mut self.cfg.resume {
                    r.connect_seq = theirs.saturating_add(1);
                    let r = *r;
                    let f = self.session_reconnect(r);
                    self.send(&f);
                }
            }
            (Phase::Reconnect | Phase::Ident, Tag::SessionRetryGlobal) => {
                let theirs = u64_at(&mut p, "SESSION_RETRY_GLOBAL")?;
                self.cfg.global_seq = self.cfg.global_seq.max(theirs).saturating_add(1);
                match self.cfg.resume {
                    Some(r) if self.phase == Phase::Reconnect => {
                        let f = self.session_reconnect(r);
                        self.send(&f);
                    }
                    _ => {
                        let f = self.client_ident();
                        self.send(&f);
                    }
                }
            }
            (Phase::Reconnect, Tag::SessionReset) => {
                // The peer no longer has our session: start a new one.
                let full = p.first().is_some_and(|b| *b != 0);
                self.reset = Some(full);
                self.cfg.resume = None;
                let ident = self.client_ident();
                self.send(&ident);
                self.phase = Phase::Ident;
            }
            (Phase::Ident, Tag::ServerIdent) => {
                let addrs = EntityAddrVec::decode(&mut p)
                    .map_err(|_| HandshakeError::Malformed("SERVER_IDENT addrs"))?;
                let peer_global_id = u64_at(&mut p, "SERVER_IDENT")?;
                let peer_global_seq = u64_at(&mut p, "SERVER_IDENT")?;
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
                    peer_global_seq,
                ));
                self.phase = Phase::Open;
            }
            (Phase::Ident | Phase::Reconnect, Tag::IdentMissingFeatures) => {
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
        let payload = match &self.auth {
            ClientAuth::Mon(auth) => {
                let mut payload = BytesMut::new();
                payload.put_u8(AUTH_MODE_MON);
                auth.name().encode(&mut payload);
                payload.put_u64_le(auth.global_id());
                payload
            }
            // The authorizer's first byte (its version, 1) doubles as AUTH_MODE_AUTHORIZER.
            ClientAuth::Authorizer(a) => BytesMut::from(&a.bytes()[..]),
        };
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
        let (key, secret): (Option<CryptoKey>, _) = match &self.auth {
            ClientAuth::Mon(auth) => auth.v2_session(),
            ClientAuth::Authorizer(_) => self.authorized.take().unwrap_or((None, None)),
        };
        self.wire
            .sign_and_switch(key.as_ref(), secret.as_ref(), self.con_mode, false)?;
        self.phase = Phase::Signature;
        Ok(())
    }

    fn client_ident(&self) -> Frame {
        let mut b = BytesMut::new();
        // Our address: the one the peer saw, with our nonce (a client has no listener).
        EntityAddrVec(vec![self.my_addr()]).encode(&mut b);
        Addr2::v2(self.cfg.peer, self.cfg.peer_nonce).encode(&mut b);
        b.put_u64_le(self.global_id);
        b.put_u64_le(self.cfg.global_seq);
        b.put_u64_le(self.cfg.features_supported);
        b.put_u64_le(self.cfg.features_required);
        b.put_u64_le(if self.cfg.lossy { FLAG_LOSSY } else { 0 });
        b.put_u64_le(self.cfg.client_cookie);
        Frame::control(Tag::ClientIdent, b.freeze())
    }

    /// The address we announce: our listener's; without one, as Ceph's client does
    /// (`AsyncMessenger::learned_addr` for a messenger that never bound): type ANY, the IP
    /// the peer saw in its HELLO, port 0 (our socket's port is no address anyone can
    /// reach), our nonce. The real `ceph` client's CLIENT_IDENT says
    /// `any:127.0.0.1:0/<nonce>` (`tests/data/v2/v2-crc-authnone-status.conn0.client`).
    fn my_addr(&self) -> Addr2 {
        let ip_seen = self.learned.and_then(|a| a.addr);
        match self.cfg.my_addr {
            Some(a) => Addr2::v2(a, self.cfg.nonce),
            None => Addr2 {
                ty: ADDR_TYPE_ANY,
                nonce: self.cfg.nonce,
                addr: ip_seen.map(|s| std::net::SocketAddr::new(s.ip(), 0)),
            },
        }
    }

    /// SESSION_RECONNECT: our addresses, both cookies, the seqs, what we received.
    fn session_reconnect(&self, r: Resume) -> Frame {
        let mut b = BytesMut::new();
        EntityAddrVec(vec![self.my_addr()]).encode(&mut b);
        b.put_u64_le(self.cfg.client_cookie);
        b.put_u64_le(r.server_cookie);
        b.put_u64_le(self.cfg.global_seq);
        b.put_u64_le(r.connect_seq);
        b.put_u64_le(r.msg_seq);
        Frame::control(Tag::SessionReconnect, b.freeze())
    }

    /// The codec and what the handshake established; `None` before SERVER_IDENT.
    pub fn finish(self) -> Option<Established> {
        let (features, peer_addrs, peer_global_id, lossy, server_cookie, peer_global_seq) =
            self.done?;
        let (encoder, decoder, leftover) = self.wire.into_codec();
        Some(Established {
            peer_type: self.peer_type,
            reconnected: self.reconnected,
            reset: self.reset,
            connect_seq: self.cfg.resume.map_or(0, |r| r.connect_seq),
            global_seq: self.cfg.global_seq,
            peer_global_seq,
            features,
            con_mode: self.con_mode,
            global_id: self.global_id,
            peer_addrs,
            peer_global_id,
            lossy,
            server_cookie,
            learned_addr: self.learned,
            encoder,
            decoder,
            leftover,
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
