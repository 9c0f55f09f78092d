//! The cephx client (CephxClientHandler): the MAuth rounds with a mon, the tickets it keeps,
//! renewal, and authorizers for services.
//!
//! ```text
//!            reply: CephXServerChallenge
//! Negotiated ─────────────────────────────► Challenged
//!                                              │ build: GET_AUTH_SESSION_KEY (other_keys = wanted)
//!                                              ▼
//!          reply 0x0100: AUTH ticket (+ extra service tickets if asked)
//!                                              │ build: GET_PRINCIPAL_SESSION_KEY while tickets are missing,
//!                                              │        GET_ROTATING_KEY for an OSD/MDS/MGR without secrets
//!                                              ▼
//!                                            Done  (needs_renewal(now) ⇒ build again)
//! ```

use std::collections::BTreeMap;

use bytes::{BufMut, Bytes, BytesMut};

use super::{AuthClient, ClientAuthorizer, ClientProgress};
use crate::cephx::{
    challenge_key, decode_ticket_reply, CephXAuthenticate, CephXAuthorizer, CephXResponseHeader,
    CephXServerChallenge, CephXServiceTicketRequest, CephXTicketBlob, RotatingSecrets,
    ServiceTicket, CEPHX_GET_AUTH_SESSION_KEY, CEPHX_GET_PRINCIPAL_SESSION_KEY,
    CEPHX_GET_ROTATING_KEY,
};
use crate::codec::{get_blob, Decode, Encode};
use crate::envelope::decode_decrypt;
use crate::signature::{MessageSigner, SignatureFormat};
use crate::{AuthError, CryptoKey, EntityName, Secret, UTime, CEPH_AUTH_CEPHX, ENTITY_AUTH};

/// The cephx client of one entity.
pub struct CephxClient {
    name: EntityName,
    secret: CryptoKey,
    global_id: u64,
    want: u32,
    extra_tickets: bool,
    server_challenge: Option<u64>,
    /// Whether this mon session has seen our GET_AUTH_SESSION_KEY succeed (a new session,
    /// e.g. after a reconnect, must authenticate again even with fresh tickets).
    session_authenticated: bool,
    auth: Option<ServiceTicket>,
    tickets: BTreeMap<u32, ServiceTicket>,
    rotating: Option<RotatingSecrets>,
    last_request: Option<u16>,
    /// msgr2 mon mode: the connection secret the mon handed out (secure mode).
    connection_secret: Option<Secret>,
    rng: Box<dyn rand::RngCore + Send>,
}

/// A length-prefixed string holding secret bytes (`encode(std::string)`).
struct SecretString(Secret);

impl Decode for SecretString {
    fn decode(buf: &mut impl bytes::Buf) -> Result<Self, AuthError> {
        Ok(SecretString(Secret::new(get_blob(
            buf,
            "connection secret string",
        )?)))
    }
}

impl std::fmt::Debug for CephxClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CephxClient")
            .field("name", &self.name)
            .field("global_id", &self.global_id)
            .field("want", &self.want)
            .field("services", &self.tickets.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl CephxClient {
    /// A client for `name` with its `secret`, wanting tickets for the services in `want`
    /// (a mask of `ENTITY_*`; AUTH is always wanted), drawing challenges and nonces from `rng`.
    pub fn new(
        name: EntityName,
        secret: CryptoKey,
        want: u32,
        rng: Box<dyn rand::RngCore + Send>,
    ) -> Self {
        CephxClient {
            name,
            secret,
            global_id: 0,
            want: want | ENTITY_AUTH,
            extra_tickets: true,
            server_challenge: None,
            session_authenticated: false,
            auth: None,
            tickets: BTreeMap::new(),
            rotating: None,
            last_request: None,
            connection_secret: None,
            rng,
        }
    }

    /// Whether to ask for the service tickets inside GET_AUTH_SESSION_KEY (`other_keys`,
    /// default on: one round trip less). Off, they come with GET_PRINCIPAL_SESSION_KEY, as
    /// Pacific's own v1 client ends up doing.
    pub fn with_extra_tickets(mut self, on: bool) -> Self {
        self.extra_tickets = on;
        self
    }

    /// The msgr2 connection secret of the last GET_AUTH_SESSION_KEY (secure mode with a mon;
    /// `None` in crc mode and over v1).
    pub fn connection_secret(&self) -> Option<&Secret> {
        self.connection_secret.as_ref()
    }

    /// The ticket of a service (AUTH included).
    pub fn ticket(&self, service_id: u32) -> Option<&ServiceTicket> {
        if service_id == ENTITY_AUTH {
            self.auth.as_ref()
        } else {
            self.tickets.get(&service_id)
        }
    }

    /// The rotating secrets fetched for a daemon entity.
    pub fn rotating_secrets(&self) -> Option<&RotatingSecrets> {
        self.rotating.as_ref()
    }

    /// Services of `want` without a ticket usable at `now` (renewal due counts as missing).
    fn missing(&self, now: UTime) -> u32 {
        let mut need = 0;
        for bit in (0..32).map(|i| 1u32 << i).filter(|b| self.want & b != 0) {
            if self.ticket(bit).is_none_or(|t| t.needs_renewal(now)) {
                need |= bit;
            }
        }
        need
    }

    fn done_or_more(&self, now: UTime) -> ClientProgress {
        if self.missing(now) != 0 || (self.name.needs_rotating_keys() && self.rotating.is_none()) {
            ClientProgress::More
        } else {
            ClientProgress::Done
        }
    }

    fn refused(&self, result: i32) -> AuthError {
        AuthError::Refused {
            entity: self.name.to_string(),
            result,
        }
    }

    fn handle_auth_session_key(&mut self, now: UTime, p: &mut &[u8]) -> Result<(), AuthError> {
        let old = self.auth.as_ref().map(|t| t.session_key.clone());
        let mut got = decode_ticket_reply(p, &self.secret, old.as_ref(), now)?;
        let auth_pos =
            got.iter()
                .position(|t| t.service_id == ENTITY_AUTH)
                .ok_or(AuthError::NoTicket {
                    service_id: ENTITY_AUTH,
                })?;
        let auth = got.swap_remove(auth_pos);
        if !p.is_empty() {
            // msgr2 mon mode: `encrypt(AUTH session key, string secret)`, the secret empty in
            // crc mode (cephx spec §E.4); v1 sends an empty blob.
            let cbl = get_blob(p, "connection secret")?;
            self.connection_secret = if cbl.is_empty() {
                None
            } else {
                let s: SecretString = decode_decrypt(&auth.session_key, &mut &cbl[..])?;
                (!s.0.is_empty()).then_some(s.0)
            };
            if !p.is_empty() {
                let extra = get_blob(p, "extra tickets")?;
                if !extra.is_empty() {
                    got.extend(decode_ticket_reply(
                        &mut &extra[..],
                        &auth.session_key,
                        None,
                        now,
                    )?);
                }
            }
        }
        self.auth = Some(auth);
        self.store(got);
        Ok(())
    }

    fn store(&mut self, tickets: Vec<ServiceTicket>) {
        for t in tickets.into_iter().filter(|t| t.service_id != ENTITY_AUTH) {
            self.tickets.insert(t.service_id, t);
        }
    }
}

impl AuthClient for CephxClient {
    fn protocol(&self) -> u32 {
        CEPH_AUTH_CEPHX
    }

    fn rotating_secrets(&self) -> Option<RotatingSecrets> {
        self.rotating.clone()
    }

    fn invalidate_ticket(&mut self, service_id: u32) {
        self.tickets.remove(&service_id);
    }

    fn v2_session(&self) -> (Option<CryptoKey>, Option<Secret>) {
        (
            self.auth.as_ref().map(|t| t.session_key.clone()),
            self.connection_secret.clone(),
        )
    }

    fn name(&self) -> &EntityName {
        &self.name
    }

    fn global_id(&self) -> u64 {
        self.global_id
    }

    fn set_global_id(&mut self, global_id: u64) {
        self.global_id = global_id;
    }

    fn build_request(&mut self, now: UTime) -> Result<Bytes, AuthError> {
        let server_challenge = self.server_challenge.ok_or(AuthError::OutOfOrder {
            what: "request before the server challenge",
        })?;
        let mut b = BytesMut::new();
        let missing = self.missing(now);
        let request_type = if missing & ENTITY_AUTH != 0 || !self.session_authenticated {
            let client_challenge = self.rng.next_u64();
            let req = CephXAuthenticate {
                client_challenge,
                key: challenge_key(&self.secret, server_challenge, client_challenge)?,
                old_ticket: self
                    .auth
                    .as_ref()
                    .map(|t| t.ticket.clone())
                    .unwrap_or_default(),
                other_keys: if self.extra_tickets {
                    self.want & !ENTITY_AUTH
                } else {
                    0
                },
            };
            b.put_u16_le(CEPHX_GET_AUTH_SESSION_KEY);
            req.encode(&mut b);
            CEPHX_GET_AUTH_SESSION_KEY
        } else if missing != 0 {
            let auth = self.auth.as_ref().ok_or(AuthError::NoTicket {
                service_id: ENTITY_AUTH,
            })?;
            let a = CephXAuthorizer::build(
                self.global_id,
                ENTITY_AUTH,
                auth.ticket.clone(),
                auth.session_key.clone(),
                self.rng.next_u64(),
            )?;
            b.put_u16_le(CEPHX_GET_PRINCIPAL_SESSION_KEY);
            b.put_slice(a.bytes());
            CephXServiceTicketRequest { keys: missing }.encode(&mut b);
            CEPHX_GET_PRINCIPAL_SESSION_KEY
        } else if self.name.needs_rotating_keys() {
            b.put_u16_le(CEPHX_GET_ROTATING_KEY);
            CEPHX_GET_ROTATING_KEY
        } else {
            return Err(AuthError::OutOfOrder {
                what: "request with nothing to ask",
            });
        };
        self.last_request = Some(request_type);
        Ok(b.freeze())
    }

    fn handle_reply(
        &mut self,
        now: UTime,
        result: i32,
        payload: &[u8],
    ) -> Result<ClientProgress, AuthError> {
        if result < 0 {
            return Err(self.refused(result));
        }
        let mut p = payload;
        let Some(expected) = self.last_request.take() else {
            // The reply to the negotiation: the server's challenge.
            self.server_challenge = Some(CephXServerChallenge::decode(&mut p)?.server_challenge);
            self.session_authenticated = false;
            return Ok(ClientProgress::More);
        };
        let header = CephXResponseHeader::decode(&mut p)?;
        if header.request_type != expected {
            return Err(AuthError::UnexpectedReply {
                expected,
                got: header.request_type,
            });
        }
        match header.request_type {
            CEPHX_GET_AUTH_SESSION_KEY => {
                if header.status < 0 {
                    return Err(self.refused(header.status));
                }
                self.handle_auth_session_key(now, &mut p)?;
                self.session_authenticated = true;
            }
            CEPHX_GET_PRINCIPAL_SESSION_KEY => {
                let auth = self.auth.as_ref().ok_or(AuthError::NoTicket {
                    service_id: ENTITY_AUTH,
                })?;
                let got = decode_ticket_reply(&mut p, &auth.session_key.clone(), None, now)?;
                if header.status < 0 && got.is_empty() {
                    return Err(self.refused(header.status));
                }
                self.store(got);
            }
            _ => {
                if header.status < 0 {
                    return Err(self.refused(header.status));
                }
                self.rotating = Some(decode_decrypt(&self.secret, &mut p)?);
            }
        }
        Ok(self.done_or_more(now))
    }

    fn needs_renewal(&self, now: UTime) -> bool {
        self.missing(now) != 0
    }

    fn build_authorizer(
        &mut self,
        service_id: u32,
        now: UTime,
    ) -> Result<Box<dyn ClientAuthorizer>, AuthError> {
        let t = self
            .ticket(service_id)
            .filter(|t| t.is_valid(now))
            .ok_or(AuthError::NoTicket { service_id })?;
        let (ticket, key) = (t.ticket.clone(), t.session_key.clone());
        let a =
            CephXAuthorizer::build(self.global_id, service_id, ticket, key, self.rng.next_u64())?;
        Ok(Box::new(CephxClientAuthorizer(a)))
    }
}

/// A cephx authorizer behind [`ClientAuthorizer`].
#[derive(Debug, Clone)]
pub struct CephxClientAuthorizer(pub CephXAuthorizer);

impl CephxClientAuthorizer {
    /// An authorizer for a ticket minted elsewhere (a mon's `mon.` ticket for its peers).
    pub fn from_ticket(
        global_id: u64,
        service_id: u32,
        ticket: CephXTicketBlob,
        key: CryptoKey,
        nonce: u64,
    ) -> Result<Self, AuthError> {
        Ok(CephxClientAuthorizer(CephXAuthorizer::build(
            global_id, service_id, ticket, key, nonce,
        )?))
    }
}

impl ClientAuthorizer for CephxClientAuthorizer {
    fn protocol(&self) -> u32 {
        CEPH_AUTH_CEPHX
    }
    fn bytes(&self) -> Bytes {
        self.0.bytes().clone()
    }
    fn add_challenge(&mut self, challenge: &[u8]) -> Result<(), AuthError> {
        self.0.add_challenge(challenge)
    }
    fn verify_reply(
        &self,
        reply: &[u8],
        features: u64,
    ) -> Result<Option<MessageSigner>, AuthError> {
        self.0.verify_reply(reply)?;
        Ok(Some(MessageSigner::new(
            self.0.session_key().clone(),
            SignatureFormat::for_features(features),
        )))
    }
    fn verify_reply_v2(
        &mut self,
        reply: &[u8],
    ) -> Result<(Option<CryptoKey>, Option<Secret>), AuthError> {
        let secret = self.0.verify_reply(reply)?;
        Ok((
            Some(self.0.session_key().clone()),
            secret.map(|s| Secret::new(s.to_vec())),
        ))
    }
}
