//! The msgr2.1 acceptor handshake as a sans-IO machine, in the mon role: a client
//! authenticates with `none` or `cephx` through msgr-auth's [`AuthServer`] (AUTH_REQUEST,
//! AUTH_REPLY_MORE / AUTH_REQUEST_MORE rounds, AUTH_DONE, or AUTH_BAD_METHOD), the connection
//! mode is the first of the client's that we allow, AUTH_SIGNATURE is checked both ways, and
//! CLIENT_IDENT is answered with SERVER_IDENT (or IDENT_MISSING_FEATURES). Bytes in with
//! [`Acceptor::handle_input`], bytes out with [`Acceptor::poll_transmit`].
//!
//! Not here yet: authorizer mode (a service verifying tickets), SESSION_RECONNECT and the
//! lossless session phase, and the drivers that run it on sockets.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use msgr_auth::connection_secret::CONNECTION_SECRET_LEN;
use msgr_auth::provider::{AuthServer, AuthServerSession, ServerReply};
use msgr_auth::{CryptoKey, Decode, EntityName, Secret, UTime};
use msgr_ceph::{EntityAddr as Addr2, EntityAddrVec};
use msgr_wire::EntityType;

use super::connect::{HandshakeError, CON_MODE_SECURE};
use super::exchange::{Exchange, Inbound};
use super::frame::{Decoder, Encoder, Frame, FrameLimits, Tag};
use crate::host::{Authorizer, ChallengeState, VerifyOutcome};

/// AUTH_REQUEST payload marker of mon mode.
const AUTH_MODE_MON: u8 = 10;
/// `EOPNOTSUPP`, as Ceph answers a method it does not allow.
const ENOTSUP: i32 = -95;

/// How the acceptor authenticates its clients.
pub enum ServerAuth {
    /// The mon role: clients authenticate in mon mode through an auth server (`none` or
    /// `cephx` rounds; the answer carries the tickets).
    Mon(Arc<dyn AuthServer>),
    /// A service (a daemon, a peer messenger): clients present authorizers (authorizer
    /// mode), checked by the host's hook; without one, every client is accepted (`none`).
    Service(Option<Arc<dyn Authorizer>>),
}

impl ServerAuth {
    fn protocol(&self) -> Option<u32> {
        match self {
            ServerAuth::Mon(s) => Some(s.protocol()),
            ServerAuth::Service(_) => None,
        }
    }
}

/// CLIENT_IDENT, for the driver to decide (session mode).
#[derive(Debug, Clone)]
pub struct ClientIdent {
    /// The client's addresses.
    pub addrs: EntityAddrVec,
    /// Its global id (entity number).
    pub global_id: u64,
    /// Its global seq for this connection.
    pub global_seq: u64,
    /// The features both ends support.
    pub features: u64,
    /// It asks for a lossy session.
    pub lossy: bool,
    /// Its session cookie.
    pub client_cookie: u64,
}

/// SESSION_RECONNECT, for the driver to decide (session mode).
#[derive(Debug, Clone)]
pub struct Reconnect {
    /// The client's addresses.
    pub addrs: EntityAddrVec,
    /// Its session cookie.
    pub client_cookie: u64,
    /// Our cookie, as it remembers it.
    pub server_cookie: u64,
    /// Its global seq for this connection.
    pub global_seq: u64,
    /// Its reconnects of the session so far.
    pub connect_seq: u64,
    /// What it received of ours.
    pub msg_seq: u64,
}

/// What the client asks once authenticated, when the driver decides sessions.
#[derive(Debug, Clone)]
pub enum Pending {
    /// A new session.
    Ident(ClientIdent),
    /// Resume a lossless session.
    Reconnect(Reconnect),
}

/// What the acceptor side offers.
#[derive(Debug, Clone)]
pub struct AcceptorConfig {
    /// Our entity type (a mon).
    pub entity_type: EntityType,
    /// Our entity number, sent in SERVER_IDENT.
    pub global_id: u64,
    /// The addresses we announce (v2 and v1).
    pub my_addrs: EntityAddrVec,
    /// The connecting socket's address (told to the client in our HELLO).
    pub socket_peer: SocketAddr,
    /// Session features we support and require.
    pub features_supported: u64,
    /// See `features_supported`.
    pub features_required: u64,
    /// Connection modes we allow (Ceph's `ms_mon_service_mode`).
    pub allowed_modes: Vec<u32>,
    /// Sessions are lossy (a mon's client sessions are).
    pub lossy: bool,
    /// Our global seq for this connection.
    pub global_seq: u64,
    /// Bounds on what the peer may declare.
    pub limits: FrameLimits,
    /// CLIENT_IDENT and SESSION_RECONNECT are handed to the driver ([`Acceptor::pending`])
    /// instead of being answered here (a messenger's sessions; the mon role answers
    /// CLIENT_IDENT itself).
    pub decide_sessions: bool,
}

/// What an accepted handshake established.
#[derive(Debug)]
pub struct Accepted {
    /// The client's entity name, as it authenticated.
    pub peer_name: EntityName,
    /// Its global id.
    pub peer_global_id: u64,
    /// Features both ends support.
    pub features: u64,
    /// The negotiated mode.
    pub con_mode: u32,
    /// The client's session cookie.
    pub client_cookie: u64,
    /// The client's addresses (CLIENT_IDENT).
    pub peer_addrs: EntityAddrVec,
    /// The frame codec, in the negotiated mode.
    pub encoder: Encoder,
    /// See `encoder`.
    pub decoder: Decoder,
    /// Bytes received after CLIENT_IDENT (the first frames of the session).
    pub leftover: BytesMut,
    /// The client's entity type (its HELLO).
    pub peer_type: EntityType,
    /// The session key of an accepted cephx authorizer (signs nothing in msgr2 past the
    /// handshake; kept for the host's view of the connection).
    pub authenticated: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Banner,
    Hello,
    Auth,
    Signature,
    Ident,
    Deciding,
    Open,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Banner => "reading the banner",
            Phase::Hello => "waiting for HELLO",
            Phase::Auth => "authenticating",
            Phase::Signature => "checking AUTH_SIGNATURE",
            Phase::Ident => "waiting for CLIENT_IDENT",
            Phase::Deciding => "deciding the session",
            Phase::Open => "open",
        }
    }
}

/// The acceptor; see the module docs.
pub struct Acceptor {
    cfg: AcceptorConfig,
    server: ServerAuth,
    session: Option<Box<dyn AuthServerSession>>,
    /// Authorizer mode: the challenge state across AUTH_REQUEST_MORE rounds.
    challenge: ChallengeState,
    /// Authorizer mode: the session key (and connection secret) of the accepted authorizer.
    service_session: Option<(Option<CryptoKey>, Option<Secret>)>,
    peer_type: EntityType,
    pending: Option<Pending>,
    phase: Phase,
    wire: Exchange,
    con_mode: u32,
    method: u32,
    peer_name: Option<EntityName>,
    peer_global_id: u64,
    done: Option<(u64, u64, EntityAddrVec)>,
}

impl std::fmt::Debug for Acceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acceptor")
            .field("phase", &self.phase)
            .finish_non_exhaustive()
    }
}

fn malformed(what: &'static str) -> HandshakeError {
    HandshakeError::Malformed(what)
}

fn get_u32(p: &mut &[u8], what: &'static str) -> Result<u32, HandshakeError> {
    (p.len() >= 4)
        .then(|| p.get_u32_le())
        .ok_or(malformed(what))
}

fn get_u64(p: &mut &[u8], what: &'static str) -> Result<u64, HandshakeError> {
    (p.len() >= 8)
        .then(|| p.get_u64_le())
        .ok_or(malformed(what))
}

fn get_blob<'a>(p: &mut &'a [u8], what: &'static str) -> Result<&'a [u8], HandshakeError> {
    let n = get_u32(p, what)? as usize;
    if p.len() < n {
        return Err(malformed(what));
    }
    let (b, rest) = p.split_at(n);
    *p = rest;
    Ok(b)
}

fn put_blob(b: &mut BytesMut, data: &[u8]) {
    b.put_u32_le(u32::try_from(data.len()).unwrap_or(u32::MAX));
    b.put_slice(data);
}

impl Acceptor {
    /// An acceptor authenticating clients with `server` (the mon role); our banner is
    /// queued.
    pub fn new(cfg: AcceptorConfig, server: Arc<dyn AuthServer>) -> Acceptor {
        Acceptor::with_auth(cfg, ServerAuth::Mon(server))
    }

    /// An acceptor authenticating clients as `server` says; our banner is queued.
    pub fn with_auth(cfg: AcceptorConfig, server: ServerAuth) -> Acceptor {
        Acceptor {
            wire: Exchange::new(cfg.limits),
            cfg,
            server,
            session: None,
            challenge: ChallengeState::default(),
            service_session: None,
            peer_type: EntityType(0),
            pending: None,
            phase: Phase::Banner,
            con_mode: 0,
            method: 0,
            peer_name: None,
            peer_global_id: 0,
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

    /// Bytes from the client; true once the handshake is complete. An error is final (an
    /// AUTH_BAD_METHOD was queued first when the client's authentication was refused).
    ///
    /// With [`AcceptorConfig::decide_sessions`], true also means that CLIENT_IDENT or
    /// SESSION_RECONNECT waits in [`Acceptor::pending`] for the driver's answer.
    pub fn handle_input(&mut self, now: UTime, data: &[u8]) -> Result<bool, HandshakeError> {
        self.wire.receive(data);
        while self.phase != Phase::Open && self.phase != Phase::Deciding {
            match self.wire.next(self.phase == Phase::Banner)? {
                None => return Ok(false),
                Some(Inbound::Banner) => self.phase = Phase::Hello,
                Some(Inbound::Frame(frame)) => self.handle_frame(now, frame)?,
            }
        }
        Ok(true)
    }

    fn handle_frame(&mut self, now: UTime, frame: Frame) -> Result<(), HandshakeError> {
        let mut p = frame.segment(0);
        match (self.phase, frame.tag) {
            (Phase::Hello, Tag::Hello) => {
                self.peer_type = EntityType(*p.first().ok_or(malformed("HELLO"))?);
                let mut b = BytesMut::new();
                b.put_u8(self.cfg.entity_type.0);
                Addr2::v2(self.cfg.socket_peer, 0).encode(&mut b);
                self.send(&Frame::control(Tag::Hello, b.freeze()));
                self.phase = Phase::Auth;
            }
            (Phase::Auth, Tag::AuthRequest) => self.auth_request(now, &mut p)?,
            (Phase::Auth, Tag::AuthRequestMore) => {
                let payload = get_blob(&mut p, "AUTH_REQUEST_MORE")?;
                // Authorizer mode answers a challenge with the rebuilt authorizer; mon mode
                // goes on with its auth session's rounds.
                if self.session.is_none() {
                    if let ServerAuth::Service(_) = self.server {
                        return self.verify_authorizer(payload);
                    }
                }
                let session = self
                    .session
                    .as_mut()
                    .ok_or(malformed("AUTH_REQUEST_MORE before AUTH_REQUEST"))?;
                let reply = session.handle_request(now, payload);
                self.answer(reply)?;
            }
            (Phase::Signature, Tag::AuthSignature) => {
                if !self.wire.signature_ok(p) {
                    return Err(HandshakeError::BadSignature);
                }
                self.phase = Phase::Ident;
            }
            (Phase::Ident, Tag::ClientIdent) if self.cfg.decide_sessions => {
                let ident = self.read_ident(&mut p)?;
                self.pending = Some(Pending::Ident(ident));
                self.phase = Phase::Deciding;
            }
            (Phase::Ident, Tag::SessionReconnect) if self.cfg.decide_sessions => {
                let r = Reconnect {
                    addrs: EntityAddrVec::decode(&mut p)
                        .map_err(|_| malformed("SESSION_RECONNECT addrs"))?,
                    client_cookie: get_u64(&mut p, "SESSION_RECONNECT")?,
                    server_cookie: get_u64(&mut p, "SESSION_RECONNECT")?,
                    global_seq: get_u64(&mut p, "SESSION_RECONNECT")?,
                    connect_seq: get_u64(&mut p, "SESSION_RECONNECT")?,
                    msg_seq: get_u64(&mut p, "SESSION_RECONNECT")?,
                };
                self.pending = Some(Pending::Reconnect(r));
                self.phase = Phase::Deciding;
            }
            (Phase::Ident, Tag::ClientIdent) => self.client_ident(&mut p)?,
            (phase, tag) => {
                return Err(HandshakeError::Unexpected {
                    tag,
                    phase: phase.name(),
                })
            }
        }
        Ok(())
    }

    fn bad_method(&mut self, result: i32) -> HandshakeError {
        let mut b = BytesMut::new();
        b.put_u32_le(self.method);
        b.put_i32_le(result);
        let allowed = self.allowed_methods();
        b.put_u32_le(u32::try_from(allowed.len()).unwrap_or(0));
        for m in &allowed {
            b.put_u32_le(*m);
        }
        b.put_u32_le(u32::try_from(self.cfg.allowed_modes.len()).unwrap_or(0));
        for m in &self.cfg.allowed_modes {
            b.put_u32_le(*m);
        }
        self.send(&Frame::control(Tag::AuthBadMethod, b.freeze()));
        HandshakeError::AuthRefused {
            method: self.method,
            result,
            allowed,
        }
    }

    /// The methods we accept: the auth server's, or the authorizer hook's (none and cephx).
    fn allowed_methods(&self) -> Vec<u32> {
        match self.server.protocol() {
            Some(p) => vec![p],
            None => vec![msgr_auth::CEPH_AUTH_CEPHX, msgr_auth::CEPH_AUTH_NONE],
        }
    }

    fn auth_request(&mut self, now: UTime, p: &mut &[u8]) -> Result<(), HandshakeError> {
        self.method = get_u32(p, "AUTH_REQUEST method")?;
        let n = get_u32(p, "AUTH_REQUEST modes")? as usize;
        if p.len() < n.saturating_mul(4) {
            return Err(malformed("AUTH_REQUEST modes"));
        }
        let modes: Vec<u32> = (0..n).map(|_| p.get_u32_le()).collect();
        let mut payload = get_blob(p, "AUTH_REQUEST payload")?;
        // A method we do not speak is refused, whoever authenticates (as Ceph's
        // AuthRegistry::is_supported_method); without a hook, only none and cephx pass.
        if !self.allowed_methods().contains(&self.method) {
            return Err(self.bad_method(ENOTSUP));
        }
        let Some(mode) = modes
            .iter()
            .copied()
            .find(|m| self.cfg.allowed_modes.contains(m))
        else {
            return Err(self.bad_method(ENOTSUP));
        };
        self.con_mode = mode;
        // Mon mode (a client authenticating to us as to a mon): the auth server's rounds;
        // anything else is an authorizer for a service.
        let server = match &self.server {
            ServerAuth::Mon(server) => server.clone(),
            ServerAuth::Service(hook) => {
                let mon_mode = payload.first() == Some(&AUTH_MODE_MON);
                match hook
                    .as_ref()
                    .and_then(|h| h.auth_server())
                    .filter(|_| mon_mode)
                {
                    Some(server) => {
                        if server.protocol() != self.method {
                            return Err(self.bad_method(ENOTSUP));
                        }
                        server
                    }
                    None => return self.verify_authorizer(payload),
                }
            }
        };
        if payload.first() != Some(&AUTH_MODE_MON) {
            return Err(malformed("AUTH_REQUEST: not mon mode"));
        }
        payload.advance(1);
        let name = EntityName::decode(&mut payload).map_err(|_| malformed("AUTH_REQUEST name"))?;
        let global_id = get_u64(&mut payload, "AUTH_REQUEST global id")?;
        let (mut session, reply) = server.start_session(&name, global_id, now);
        if mode == CON_MODE_SECURE {
            session.want_connection_secret(CONNECTION_SECRET_LEN);
        }
        self.peer_name = Some(name);
        self.session = Some(session);
        self.answer(reply)
    }

    /// The auth server's answer: more, done, or refused.
    fn answer(&mut self, reply: ServerReply) -> Result<(), HandshakeError> {
        if reply.result < 0 {
            return Err(self.bad_method(reply.result));
        }
        self.peer_global_id = reply.global_id;
        let mut b = BytesMut::new();
        if reply.authenticated.is_none() {
            put_blob(&mut b, &reply.payload);
            self.send(&Frame::control(Tag::AuthReplyMore, b.freeze()));
            return Ok(());
        }
        let (key, secret) = self
            .session
            .as_ref()
            .map(|s| s.v2_session())
            .unwrap_or((None, None));
        self.auth_done(reply.global_id, &reply.payload, key, secret)
    }

    /// Authorizer mode: the host's hook checks the client's authorizer; a challenge is
    /// answered with AUTH_REPLY_MORE, a refusal with AUTH_BAD_METHOD (−13, as Ceph's
    /// "could not verify authorizer").
    fn verify_authorizer(&mut self, payload: &[u8]) -> Result<(), HandshakeError> {
        let ServerAuth::Service(hook) = &self.server else {
            return Err(malformed("authorizer for the mon role"));
        };
        let Some(hook) = hook.clone() else {
            // No authentication: accept anyone (v1's behaviour without a hook).
            return self.auth_done(0, &[], None, None);
        };
        let features = self.cfg.features_supported;
        if self.con_mode == CON_MODE_SECURE {
            self.challenge.want_connection_secret();
        }
        match hook.verify(
            self.peer_type,
            self.method,
            payload,
            &mut self.challenge,
            features,
        ) {
            Ok(VerifyOutcome::Challenge(bytes)) => {
                let mut b = BytesMut::new();
                put_blob(&mut b, &bytes);
                self.send(&Frame::control(Tag::AuthReplyMore, b.freeze()));
                Ok(())
            }
            Ok(VerifyOutcome::Accepted {
                reply,
                peer,
                signer,
            }) => {
                self.peer_name = Some(peer.name);
                self.peer_global_id = peer.global_id;
                let key = signer.map(|s| s.key().clone());
                let secret = self.challenge.take_connection_secret();
                self.auth_done(peer.global_id, &reply, key, secret)
            }
            Err(e) => {
                tracing::info!(error = %e, "msgr2 authorizer refused");
                Err(self.bad_method(-13))
            }
        }
    }

    /// AUTH_DONE, then the switch to the negotiated mode and our AUTH_SIGNATURE.
    fn auth_done(
        &mut self,
        global_id: u64,
        payload: &[u8],
        key: Option<CryptoKey>,
        secret: Option<Secret>,
    ) -> Result<(), HandshakeError> {
        let mut b = BytesMut::new();
        b.put_u64_le(global_id);
        b.put_u32_le(self.con_mode);
        put_blob(&mut b, payload);
        self.send(&Frame::control(Tag::AuthDone, b.freeze()));
        // The logs end with AUTH_DONE; from here on, the negotiated mode.
        self.wire
            .sign_and_switch(key.as_ref(), secret.as_ref(), self.con_mode, true)?;
        self.service_session = Some((key, secret));
        self.phase = Phase::Signature;
        Ok(())
    }

    /// Reads CLIENT_IDENT and checks the features both ways (IDENT_MISSING_FEATURES is
    /// queued when the client lacks ours).
    fn read_ident(&mut self, p: &mut &[u8]) -> Result<ClientIdent, HandshakeError> {
        let addrs = EntityAddrVec::decode(p).map_err(|_| malformed("CLIENT_IDENT addrs"))?;
        let _target = Addr2::decode(p).map_err(|_| malformed("CLIENT_IDENT target"))?;
        let global_id = get_u64(p, "CLIENT_IDENT")?;
        let global_seq = get_u64(p, "CLIENT_IDENT")?;
        let supported = get_u64(p, "CLIENT_IDENT")?;
        let required = get_u64(p, "CLIENT_IDENT")?;
        let flags = get_u64(p, "CLIENT_IDENT")?;
        let client_cookie = get_u64(p, "CLIENT_IDENT")?;
        let missing = self.cfg.features_required & !supported;
        if missing != 0 {
            let mut b = BytesMut::new();
            b.put_u64_le(missing);
            self.send(&Frame::control(Tag::IdentMissingFeatures, b.freeze()));
            return Err(HandshakeError::MissingFeatures(missing));
        }
        let theirs = required & !self.cfg.features_supported;
        if theirs != 0 {
            return Err(HandshakeError::MissingFeatures(theirs));
        }
        Ok(ClientIdent {
            addrs,
            global_id,
            global_seq,
            features: supported & self.cfg.features_supported,
            lossy: flags & 1 != 0,
            client_cookie,
        })
    }

    fn client_ident(&mut self, p: &mut &[u8]) -> Result<(), HandshakeError> {
        let ident = self.read_ident(p)?;
        let lossy = self.cfg.lossy;
        self.server_ident(&ident, lossy, 0);
        Ok(())
    }

    /// SERVER_IDENT for `ident`: the session opens (lossy, or lossless with `server_cookie`).
    fn server_ident(&mut self, ident: &ClientIdent, lossy: bool, server_cookie: u64) {
        let mut b = BytesMut::new();
        self.cfg.my_addrs.encode(&mut b);
        b.put_u64_le(self.cfg.global_id);
        b.put_u64_le(self.cfg.global_seq);
        b.put_u64_le(self.cfg.features_supported);
        b.put_u64_le(self.cfg.features_required);
        b.put_u64_le(u64::from(lossy));
        b.put_u64_le(server_cookie);
        self.send(&Frame::control(Tag::ServerIdent, b.freeze()));
        self.done = Some((ident.features, ident.client_cookie, ident.addrs.clone()));
        self.phase = Phase::Open;
    }

    /// The `global_seq` our SERVER_IDENT announces, taken when the answer is decided (as
    /// Ceph's `send_server_ident` does), so it orders after any connect of ours the peer
    /// may still see.
    pub fn set_global_seq(&mut self, global_seq: u64) {
        self.cfg.global_seq = global_seq;
    }

    /// What waits for the driver's answer (session mode), if anything.
    pub fn pending(&self) -> Option<&Pending> {
        self.pending.as_ref()
    }

    fn take_pending(&mut self) -> Option<Pending> {
        let p = self.pending.take();
        if p.is_some() {
            self.phase = Phase::Ident;
        }
        p
    }

    /// Answers the pending CLIENT_IDENT: a new session, `lossy` or lossless with our
    /// `server_cookie` (non-zero). The handshake is complete.
    pub fn accept_ident(&mut self, lossy: bool, server_cookie: u64) {
        if let Some(Pending::Ident(ident)) = self.take_pending() {
            self.server_ident(&ident, lossy, server_cookie);
        }
    }

    /// Answers the pending SESSION_RECONNECT: the session resumes; we received the
    /// client's messages up to `msg_seq`. The handshake is complete.
    pub fn reconnect_ok(&mut self, msg_seq: u64) {
        if let Some(Pending::Reconnect(r)) = self.take_pending() {
            let mut b = BytesMut::new();
            b.put_u64_le(msg_seq);
            self.send(&Frame::control(Tag::SessionReconnectOk, b.freeze()));
            self.done = Some((self.cfg.features_supported, r.client_cookie, r.addrs));
            self.phase = Phase::Open;
        }
    }

    /// Answers the pending request with SESSION_RESET (`full`: forget everything); the
    /// client then sends CLIENT_IDENT.
    pub fn reset(&mut self, full: bool) {
        if self.take_pending().is_some() {
            self.send(&Frame::control(Tag::SessionReset, vec![u8::from(full)]));
        }
    }

    /// Answers the pending SESSION_RECONNECT with SESSION_RETRY: we hold the session at
    /// `connect_seq`.
    pub fn retry(&mut self, connect_seq: u64) {
        if self.take_pending().is_some() {
            let mut b = BytesMut::new();
            b.put_u64_le(connect_seq);
            self.send(&Frame::control(Tag::SessionRetry, b.freeze()));
        }
    }

    /// Answers the pending request with SESSION_RETRY_GLOBAL: ours is at `global_seq`.
    pub fn retry_global(&mut self, global_seq: u64) {
        if self.take_pending().is_some() {
            let mut b = BytesMut::new();
            b.put_u64_le(global_seq);
            self.send(&Frame::control(Tag::SessionRetryGlobal, b.freeze()));
        }
    }

    /// Answers the pending request with WAIT (our own connection wins a race); the client
    /// closes this connection.
    pub fn wait(&mut self) {
        if self.take_pending().is_some() {
            self.send(&Frame::control(Tag::Wait, Bytes::new()));
        }
    }

    /// The client's entity type (its HELLO).
    pub fn peer_type(&self) -> EntityType {
        self.peer_type
    }

    /// The client's global id (its authentication's or its ident's).
    pub fn peer_global_id(&self) -> u64 {
        self.peer_global_id
    }

    /// The codec and what the handshake established; `None` before CLIENT_IDENT.
    pub fn finish(self) -> Option<Accepted> {
        let (features, client_cookie, peer_addrs) = self.done?;
        let peer_name = self
            .peer_name
            .unwrap_or_else(|| EntityName::new(u32::from(self.peer_type.0), ""));
        let (encoder, decoder, leftover) = self.wire.into_codec();
        Some(Accepted {
            peer_type: self.peer_type,
            authenticated: self.service_session.as_ref().is_some_and(|s| s.0.is_some()),
            peer_name,
            peer_global_id: self.peer_global_id,
            features,
            con_mode: self.con_mode,
            client_cookie,
            peer_addrs,
            encoder,
            decoder,
            leftover,
        })
    }
}

#[cfg(test)]
mod tests {
    use msgr_auth::provider::{
        AuthClient, CephxAuthServer, CephxClient, NoneAuthServer, NoneClient, TicketTtls,
    };
    use msgr_auth::{CryptoKey, Keyring, KeyringEntry, ENTITY_MON};
    use rand::SeedableRng;

    use super::super::connect::{Connector, ConnectorConfig, CON_MODE_CRC};
    use super::super::frame::Banner;
    use super::*;

    fn rng(s: u64) -> Box<rand::rngs::StdRng> {
        Box::new(rand::rngs::StdRng::seed_from_u64(s))
    }

    fn key() -> CryptoKey {
        CryptoKey::aes([3; 16])
    }

    fn cephx_server() -> Arc<dyn AuthServer> {
        let mut ring = Keyring::new();
        ring.insert(
            EntityName::client("admin"),
            KeyringEntry {
                key: key(),
                caps: Default::default(),
            },
        );
        Arc::new(CephxAuthServer::new(
            ring,
            TicketTtls::default(),
            4100,
            rng(1),
        ))
    }

    fn pair(
        client_modes: Vec<u32>,
        server_modes: Vec<u32>,
        auth: Box<dyn AuthClient>,
        server: Arc<dyn AuthServer>,
    ) -> (Connector, Acceptor) {
        let mon: SocketAddr = "127.0.0.1:3300".parse().expect("addr");
        let cfg = ConnectorConfig {
            entity_type: EntityType::CLIENT,
            peer: mon,
            peer_nonce: 0,
            nonce: 9,
            features_supported: msgr_wire::features::ALL_PACIFIC,
            features_required: 0,
            modes: client_modes,
            global_seq: 1,
            client_cookie: 77,
            limits: FrameLimits::default(),
            lossy: false,
            my_addr: None,
            resume: None,
        };
        let acfg = AcceptorConfig {
            entity_type: EntityType::MON,
            global_id: 0,
            my_addrs: EntityAddrVec(vec![Addr2::v2(mon, 0)]),
            socket_peer: "127.0.0.1:40000".parse().expect("addr"),
            features_supported: msgr_wire::features::ALL_PACIFIC,
            features_required: 0,
            allowed_modes: server_modes,
            lossy: true,
            global_seq: 1,
            limits: FrameLimits::default(),
            decide_sessions: false,
        };
        (Connector::new(cfg, auth), Acceptor::new(acfg, server))
    }

    /// Moves bytes both ways, in chunks of `chunk`, until both ends are open or one fails.
    fn run(c: &mut Connector, a: &mut Acceptor, chunk: usize) -> Result<(), HandshakeError> {
        let now = UTime::now();
        for _ in 0..10_000 {
            let mut progressed = false;
            while let Some(b) = c.poll_transmit() {
                progressed = true;
                for part in b.chunks(chunk) {
                    a.handle_input(now, part)?;
                }
            }
            while let Some(b) = a.poll_transmit() {
                progressed = true;
                for part in b.chunks(chunk) {
                    c.handle_input(now, part)?;
                }
            }
            if c.is_open() || !progressed {
                return Ok(());
            }
        }
        Ok(())
    }

    #[test]
    fn none_cephx_crc_and_secure_open_both_ends_and_frames_flow() {
        type Case = (Box<dyn AuthClient>, Arc<dyn AuthServer>, u32);
        let cases: Vec<Case> = vec![
            (
                Box::new(NoneClient::new(EntityName::client("admin"))),
                Arc::new(NoneAuthServer::new(4100)),
                CON_MODE_CRC,
            ),
            (
                Box::new(CephxClient::new(
                    EntityName::client("admin"),
                    key(),
                    ENTITY_MON,
                    rng(2),
                )),
                cephx_server(),
                CON_MODE_CRC,
            ),
            (
                Box::new(CephxClient::new(
                    EntityName::client("admin"),
                    key(),
                    ENTITY_MON,
                    rng(2),
                )),
                cephx_server(),
                CON_MODE_SECURE,
            ),
        ];
        for (chunk, (auth, server, mode)) in [1usize, 7, 4096].into_iter().zip(cases) {
            let (mut c, mut a) = pair(
                vec![mode],
                vec![CON_MODE_SECURE, CON_MODE_CRC],
                auth,
                server,
            );
            run(&mut c, &mut a, chunk).expect("opens");
            let mut est = c.finish().expect("client open");
            let mut acc = a.finish().expect("server open");
            assert_eq!((est.con_mode, acc.con_mode), (mode, mode));
            assert_eq!(acc.peer_name, EntityName::client("admin"));
            assert_eq!(est.global_id, 4100);
            assert_eq!(acc.client_cookie, 77);
            assert!(est.lossy);
            // A frame each way in the negotiated mode.
            let mut wire = BytesMut::new();
            est.encoder
                .encode(&Frame::control(Tag::Keepalive2, vec![1u8; 8]), &mut wire);
            let got = acc
                .decoder
                .decode(&mut wire)
                .expect("decodes")
                .expect("whole");
            assert_eq!(got.tag, Tag::Keepalive2);
            acc.encoder
                .encode(&Frame::control(Tag::Ack, vec![2u8; 8]), &mut wire);
            let got = est
                .decoder
                .decode(&mut wire)
                .expect("decodes")
                .expect("whole");
            assert_eq!(got.tag, Tag::Ack);
        }
    }

    #[test]
    fn a_wrong_key_gets_auth_bad_method_and_no_mode_in_common_too() {
        let (mut c, mut a) = pair(
            vec![CON_MODE_SECURE],
            vec![CON_MODE_SECURE],
            Box::new(CephxClient::new(
                EntityName::client("admin"),
                CryptoKey::aes([9; 16]),
                ENTITY_MON,
                rng(2),
            )),
            cephx_server(),
        );
        let e = run(&mut c, &mut a, 64).expect_err("refused");
        assert!(
            matches!(e, HandshakeError::AuthRefused { result: -13, .. }),
            "{e}"
        );
        // The client reads the AUTH_BAD_METHOD.
        let b = a.poll_transmit().expect("AUTH_BAD_METHOD queued");
        let e = c.handle_input(UTime::now(), &b).expect_err("refused");
        assert!(
            matches!(e, HandshakeError::AuthRefused { result: -13, .. }),
            "{e}"
        );
        let (mut c, mut a) = pair(
            vec![CON_MODE_SECURE],
            vec![CON_MODE_CRC],
            Box::new(NoneClient::new(EntityName::client("admin"))),
            Arc::new(NoneAuthServer::new(1)),
        );
        assert!(matches!(
            run(&mut c, &mut a, 64),
            Err(HandshakeError::AuthRefused { result: -95, .. })
        ));
    }

    /// A service acceptor without an authorizer hook (any client accepted) still refuses an
    /// AUTH_REQUEST whose method is neither none nor cephx: AUTH_BAD_METHOD (-95, the
    /// methods it allows), then the error.
    #[test]
    fn an_unknown_auth_method_gets_auth_bad_method_without_a_hook() {
        let acfg = AcceptorConfig {
            entity_type: EntityType::OSD,
            global_id: 0,
            my_addrs: EntityAddrVec(vec![Addr2::v2("127.0.0.1:6800".parse().expect("addr"), 1)]),
            socket_peer: "127.0.0.1:40000".parse().expect("addr"),
            features_supported: msgr_wire::features::ALL_PACIFIC,
            features_required: 0,
            allowed_modes: vec![CON_MODE_CRC],
            lossy: true,
            global_seq: 1,
            limits: FrameLimits::default(),
            decide_sessions: true,
        };
        let mut a = Acceptor::with_auth(acfg, ServerAuth::Service(None));
        let mut wire = BytesMut::new();
        Banner::OURS.encode(&mut wire);
        let mut enc = Encoder::default();
        let mut hello = BytesMut::new();
        hello.put_u8(EntityType::CLIENT.0);
        Addr2::v2("127.0.0.1:6800".parse().expect("addr"), 0).encode(&mut hello);
        enc.encode(&Frame::control(Tag::Hello, hello.freeze()), &mut wire);
        let mut req = BytesMut::new();
        req.put_u32_le(99); // no such method
        req.put_u32_le(1);
        req.put_u32_le(CON_MODE_CRC);
        put_blob(&mut req, b"\x01anything");
        enc.encode(&Frame::control(Tag::AuthRequest, req.freeze()), &mut wire);
        let e = a
            .handle_input(UTime::now(), &wire)
            .expect_err("unknown method refused");
        assert!(
            matches!(
                e,
                HandshakeError::AuthRefused {
                    method: 99,
                    result: -95,
                    ..
                }
            ),
            "{e}"
        );
        // Our banner, HELLO, then AUTH_BAD_METHOD naming the method and what we allow.
        let mut out = BytesMut::new();
        while let Some(b) = a.poll_transmit() {
            out.extend_from_slice(&b);
        }
        assert_eq!(Banner::decode(&mut out), Ok(Some(Banner::OURS)));
        let mut dec = Decoder::new(FrameLimits::default());
        let tags: Vec<Tag> = std::iter::from_fn(|| dec.decode(&mut out).expect("frames"))
            .map(|f| f.tag)
            .collect();
        assert_eq!(tags, [Tag::Hello, Tag::AuthBadMethod]);
    }
}
