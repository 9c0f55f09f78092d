//! The cephx server sides: a mon's auth service ([`CephxAuthServer`], Ceph's KeyServer +
//! CephxServiceHandler) that checks the challenge key, issues the AUTH ticket and service
//! tickets encrypted with rotating secrets, reclaims global ids with the old ticket, and hands
//! daemons their rotating secrets; and a service's authorizer check
//! ([`CephxAuthorizerVerifier`]) over a [`ServiceKeyStore`].
//!
//! Policy as the spec's recipe mon (`auth_allow_insecure_global_id_reclaim = false`): a
//! reclaim without a valid old ticket is refused with −13, as are a wrong key and an unknown
//! entity (at GET_AUTH_SESSION_KEY, so both look alike to the client).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};

use bytes::{Bytes, BytesMut};
use rand::RngCore;
use subtle::ConstantTimeEq;

use super::{
    AuthServer, AuthServerSession, AuthorizerVerifier, PeerIdentity, ServerReply, VerifyOutcome,
};
use crate::cephx::{
    challenge_key, encode_ticket_reply, verify_authorizer, verify_authorizer_from,
    verify_authorizer_with_secret, AuthCapsInfo, AuthTicket, CephXAuthenticate, CephXRequestHeader,
    CephXResponseHeader, CephXServerChallenge, CephXServiceTicketInfo, CephXServiceTicketRequest,
    CephXTicketBlob, ChallengeState, RotatingSecrets, ServiceSecrets, TicketGrant, Verification,
    CEPHX_GET_AUTH_SESSION_KEY, CEPHX_GET_PRINCIPAL_SESSION_KEY, CEPHX_GET_ROTATING_KEY,
    GENERAL_SECRET_ID,
};
use crate::codec::{put_blob, Decode, Encode};
use crate::envelope::{decode_decrypt_enc_bl, enc_bl, encode_encrypt};
use crate::signature::{MessageSigner, SignatureFormat};
use crate::{
    entity_type_name, AuthError, CryptoKey, EntityName, Keyring, Secret, UTime, CEPH_AUTH_CEPHX,
    EACCES, ENTITY_AUTH, ENTITY_MDS, ENTITY_MGR, ENTITY_MON, ENTITY_OSD,
};

/// `EINVAL`, for requests that do not decode.
const EINVAL: i32 = -22;
/// `EPERM`, for rotating keys asked by an entity that has none.
const EPERM: i32 = -1;

/// Ticket lifetimes (Ceph's `auth_mon_ticket_ttl` and `auth_service_ticket_ttl`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TicketTtls {
    /// AUTH ticket validity, default 72 h.
    pub auth: UTime,
    /// Service ticket validity and rotation period, default 1 h.
    pub service: UTime,
}

impl Default for TicketTtls {
    fn default() -> Self {
        TicketTtls {
            auth: UTime::from_secs(259_200),
            service: UTime::from_secs(3600),
        }
    }
}

/// Secrets a service verifies tickets with: rotating secrets by service, and a keyring for
/// general service keys (`mon.` for tickets with [`GENERAL_SECRET_ID`]).
#[derive(Debug, Clone, Default)]
pub struct ServiceKeyStore {
    /// Keyring holding `TYPE.` entries (may be empty).
    pub keyring: Keyring,
    /// Rotating secrets by service entity type.
    pub rotating: BTreeMap<u32, RotatingSecrets>,
}

impl ServiceSecrets for ServiceKeyStore {
    fn service_secret(&self, service_id: u32, secret_id: u64) -> Option<CryptoKey> {
        if secret_id == GENERAL_SECRET_ID {
            self.keyring.key(&EntityName::new(service_id, "")).cloned()
        } else {
            self.rotating.get(&service_id)?.get(secret_id).cloned()
        }
    }
}

/// The key server state shared by a mon's sessions.
struct KeyServer {
    keyring: Keyring,
    rotating: BTreeMap<u32, RotatingSecrets>,
    ttls: TicketTtls,
    next_global_id: u64,
    rng: Box<dyn RngCore + Send>,
}

impl KeyServer {
    fn ttl(&self, service_id: u32) -> UTime {
        if service_id == ENTITY_AUTH {
            self.ttls.auth
        } else {
            self.ttls.service
        }
    }

    /// Mints a ticket for `name` to `service_id` with the service's current rotating secret.
    fn grant(
        &mut self,
        name: &EntityName,
        global_id: u64,
        service_id: u32,
        now: UTime,
    ) -> Result<TicketGrant, AuthError> {
        let ttl = self.ttl(service_id);
        let r = self.rotating.entry(service_id).or_default();
        r.rotate(now, ttl, &mut self.rng);
        let (secret_id, secret) = r
            .current()
            .map(|(id, k)| (id, k.key.clone()))
            .ok_or(AuthError::NoTicket { service_id })?;
        let caps = match (service_id, entity_type_name(service_id)) {
            (ENTITY_AUTH | ENTITY_MON, _) | (_, None) => Bytes::new(),
            (_, Some(svc)) => {
                let cap = self
                    .keyring
                    .get(name)
                    .and_then(|e| e.caps.get(svc))
                    .cloned()
                    .unwrap_or_default();
                let mut b = BytesMut::new();
                put_blob(&mut b, cap.as_bytes());
                b.freeze()
            }
        };
        let session_key = CryptoKey::generate(&mut self.rng, now);
        let ticket = AuthTicket {
            name: name.clone(),
            global_id,
            auid: u64::MAX,
            created: now,
            expires: now.saturating_add(ttl),
            caps: AuthCapsInfo {
                allow_all: false,
                caps,
            },
            flags: 0,
        };
        let blob = enc_bl(
            &secret,
            &CephXServiceTicketInfo {
                ticket,
                session_key: session_key.clone(),
            },
        )?;
        Ok(TicketGrant {
            service_id,
            session_key,
            validity: ttl,
            ticket: CephXTicketBlob {
                secret_id,
                blob: blob.into(),
            },
        })
    }

    fn grants(
        &mut self,
        name: &EntityName,
        global_id: u64,
        keys: u32,
        now: UTime,
    ) -> Result<Vec<TicketGrant>, AuthError> {
        let services = [ENTITY_MON, ENTITY_MDS, ENTITY_OSD, ENTITY_MGR];
        services
            .iter()
            .filter(|s| keys & **s != 0)
            .map(|s| self.grant(name, global_id, *s, now))
            .collect()
    }
}

impl ServiceSecrets for KeyServer {
    fn service_secret(&self, service_id: u32, secret_id: u64) -> Option<CryptoKey> {
        self.rotating.get(&service_id)?.get(secret_id).cloned()
    }
}

/// A mon's cephx auth service over a keyring, for any number of sessions.
#[derive(Clone)]
pub struct CephxAuthServer {
    inner: Arc<Mutex<KeyServer>>,
}

impl std::fmt::Debug for CephxAuthServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CephxAuthServer").finish_non_exhaustive()
    }
}

impl CephxAuthServer {
    /// A server for the entities of `keyring`, numbering global ids from `first_global_id`.
    pub fn new(
        keyring: Keyring,
        ttls: TicketTtls,
        first_global_id: u64,
        rng: Box<dyn RngCore + Send>,
    ) -> Self {
        let ks = KeyServer {
            keyring,
            rotating: BTreeMap::new(),
            ttls,
            next_global_id: first_global_id,
            rng,
        };
        CephxAuthServer {
            inner: Arc::new(Mutex::new(ks)),
        }
    }

    /// The rotating secrets of a service at `now` (rotated first if due): what a daemon of that
    /// type receives, and what a test service can verify with.
    pub fn rotating_secrets(&self, service_id: u32, now: UTime) -> RotatingSecrets {
        let mut ks = self.lock();
        let ttl = ks.ttl(service_id);
        let ks = &mut *ks;
        let r = ks.rotating.entry(service_id).or_default();
        r.rotate(now, ttl, &mut ks.rng);
        r.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, KeyServer> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl AuthServer for CephxAuthServer {
    fn protocol(&self) -> u32 {
        CEPH_AUTH_CEPHX
    }

    fn start_session(
        &self,
        name: &EntityName,
        global_id: u64,
        _: UTime,
    ) -> (Box<dyn AuthServerSession>, ServerReply) {
        let mut ks = self.lock();
        let server_challenge = ks.rng.next_u64().max(1);
        let (global_id, reclaim) = if global_id != 0 {
            (global_id, true)
        } else {
            ks.next_global_id += 1;
            (ks.next_global_id - 1, false)
        };
        drop(ks);
        let payload = CephXServerChallenge { server_challenge }.to_bytes();
        let s = CephxSession {
            server: self.clone(),
            name: name.clone(),
            global_id,
            reclaim,
            server_challenge,
            peer: None,
            secret_len: 0,
            v2: (None, None),
        };
        (
            Box::new(s),
            ServerReply {
                result: 0,
                global_id,
                payload,
                authenticated: None,
            },
        )
    }
}

/// One client's session on the mon.
struct CephxSession {
    server: CephxAuthServer,
    name: EntityName,
    global_id: u64,
    reclaim: bool,
    server_challenge: u64,
    peer: Option<PeerIdentity>,
    /// msgr2 secure mode: the connection secret's length (0: none).
    secret_len: usize,
    /// The AUTH session key and connection secret of the last authentication (msgr2).
    v2: (Option<CryptoKey>, Option<Secret>),
}

/// A string of secret bytes, as the cbl encrypts it.
struct SecretStr<'a>(&'a [u8]);

impl Encode for SecretStr<'_> {
    fn encode(&self, buf: &mut impl bytes::BufMut) {
        put_blob(buf, self.0);
    }
}

impl CephxSession {
    fn reply(&self, result: i32, payload: Bytes) -> ServerReply {
        ServerReply {
            result,
            global_id: self.global_id,
            payload,
            authenticated: self.peer.clone(),
        }
    }

    fn authenticate(&mut self, now: UTime, p: &mut &[u8], out: &mut BytesMut) -> Result<(), i32> {
        let req = CephXAuthenticate::decode(p).map_err(|_| EINVAL)?;
        let mut ks = self.server.lock();
        let secret = ks.keyring.key(&self.name).cloned().ok_or(EACCES)?;
        let expected = challenge_key(&secret, self.server_challenge, req.client_challenge)
            .map_err(|_| EACCES)?;
        if !bool::from(expected.to_le_bytes().ct_eq(&req.key.to_le_bytes())) {
            return Err(EACCES);
        }
        // Global id reclaim: the old AUTH ticket must decrypt and name us with this global id.
        let mut old_key = None;
        if !req.old_ticket.blob.is_empty() {
            let s = ks
                .service_secret(ENTITY_AUTH, req.old_ticket.secret_id)
                .ok_or(EACCES)?;
            let info: CephXServiceTicketInfo =
                decode_decrypt_enc_bl(&s, &req.old_ticket.blob).map_err(|_| EACCES)?;
            if info.ticket.name != self.name || info.ticket.global_id != self.global_id {
                return Err(EACCES);
            }
            old_key = Some(info.session_key);
        } else if self.reclaim {
            return Err(EACCES);
        }
        let auth = ks
            .grant(&self.name, self.global_id, ENTITY_AUTH, now)
            .map_err(|_| EACCES)?;
        CephXResponseHeader {
            request_type: CEPHX_GET_AUTH_SESSION_KEY,
            status: 0,
        }
        .encode(out);
        encode_ticket_reply(&secret, std::slice::from_ref(&auth), old_key.as_ref(), out)
            .map_err(|_| EACCES)?;
        let secret = (self.secret_len > 0).then(|| {
            let mut s = vec![0u8; self.secret_len];
            ks.rng.fill_bytes(&mut s);
            Secret::new(s)
        });
        if req.other_keys != 0 || secret.is_some() {
            // The connection secret (msgr2 secure mode), else an empty blob (v1).
            match &secret {
                Some(s) => {
                    let mut cbl = Vec::new();
                    encode_encrypt(&auth.session_key, &SecretStr(s.expose()), &mut cbl)
                        .map_err(|_| EACCES)?;
                    put_blob(out, &cbl);
                }
                None => put_blob(out, &[]),
            }
            let extra = ks
                .grants(&self.name, self.global_id, req.other_keys, now)
                .map_err(|_| EACCES)?;
            let mut eb = BytesMut::new();
            encode_ticket_reply(&auth.session_key, &extra, None, &mut eb).map_err(|_| EACCES)?;
            put_blob(out, &eb);
        }
        // What the mon itself allows this entity: its `mon` caps.
        let cap = ks
            .keyring
            .get(&self.name)
            .and_then(|e| e.caps.get("mon"))
            .cloned()
            .unwrap_or_default();
        let mut cb = BytesMut::new();
        put_blob(&mut cb, cap.as_bytes());
        let caps = AuthCapsInfo {
            allow_all: false,
            caps: cb.freeze(),
        };
        self.v2 = (Some(auth.session_key.clone()), secret);
        self.peer = Some(PeerIdentity {
            name: self.name.clone(),
            global_id: self.global_id,
            caps,
        });
        Ok(())
    }

    fn principal(&mut self, now: UTime, p: &mut &[u8], out: &mut BytesMut) -> Result<(), i32> {
        let mut ks = self.server.lock();
        // No challenge on this path (the mon's MAuth), so the generator is never drawn from.
        let mut rng = rand::rngs::mock::StepRng::new(0, 0);
        let v = verify_authorizer_from(&*ks, ENTITY_AUTH, p, None, now, &mut rng, None)
            .map_err(|_| EACCES)?;
        let Verification::Accepted { info, .. } = v else {
            return Err(EACCES);
        };
        if info.ticket.global_id != self.global_id || info.ticket.name != self.name {
            return Err(EACCES);
        }
        let req = CephXServiceTicketRequest::decode(p).map_err(|_| EINVAL)?;
        let grants = ks
            .grants(&self.name, self.global_id, req.keys, now)
            .map_err(|_| EACCES)?;
        CephXResponseHeader {
            request_type: CEPHX_GET_PRINCIPAL_SESSION_KEY,
            status: 0,
        }
        .encode(out);
        encode_ticket_reply(&info.session_key, &grants, None, out).map_err(|_| EACCES)
    }

    fn rotating(&mut self, now: UTime, out: &mut BytesMut) -> Result<(), i32> {
        if self.peer.is_none() || !self.name.needs_rotating_keys() {
            return Err(EPERM);
        }
        let secrets = self.server.rotating_secrets(self.name.ty, now);
        let ks = self.server.lock();
        let secret = ks.keyring.key(&self.name).cloned().ok_or(EPERM)?;
        CephXResponseHeader {
            request_type: CEPHX_GET_ROTATING_KEY,
            status: 0,
        }
        .encode(out);
        encode_encrypt(&secret, &secrets, out).map_err(|_| EPERM)
    }
}

impl AuthServerSession for CephxSession {
    fn want_connection_secret(&mut self, len: usize) {
        self.secret_len = len;
    }

    fn v2_session(&self) -> (Option<CryptoKey>, Option<Secret>) {
        self.v2.clone()
    }

    fn handle_request(&mut self, now: UTime, payload: &[u8]) -> ServerReply {
        let mut p = payload;
        let Ok(header) = CephXRequestHeader::decode(&mut p) else {
            return self.reply(EINVAL, Bytes::new());
        };
        let mut out = BytesMut::new();
        let r = match header.request_type {
            CEPHX_GET_AUTH_SESSION_KEY => self.authenticate(now, &mut p, &mut out),
            CEPHX_GET_PRINCIPAL_SESSION_KEY if self.peer.is_some() => {
                self.principal(now, &mut p, &mut out)
            }
            CEPHX_GET_ROTATING_KEY => self.rotating(now, &mut out),
            _ => Err(EINVAL),
        };
        match r {
            Ok(()) => self.reply(0, out.freeze()),
            Err(e) => self.reply(e, Bytes::new()),
        }
    }
}

/// A service's cephx authorizer check (what an OSD does with its rotating secrets).
pub struct CephxAuthorizerVerifier {
    service_id: u32,
    keys: Arc<RwLock<ServiceKeyStore>>,
    challenge: bool,
    rng: Mutex<Box<dyn RngCore + Send>>,
}

impl CephxAuthorizerVerifier {
    /// A verifier for service type `service_id` over `keys` (updated in place as rotating
    /// secrets are refreshed); `challenge`: whether peers are challenged (Ceph's daemons do
    /// for CEPHX_V2 peers, the mon always; a challenge defeats replayed authorizers).
    pub fn new(
        service_id: u32,
        keys: Arc<RwLock<ServiceKeyStore>>,
        challenge: bool,
        rng: Box<dyn RngCore + Send>,
    ) -> Self {
        CephxAuthorizerVerifier {
            service_id,
            keys,
            challenge,
            rng: Mutex::new(rng),
        }
    }
}

impl AuthorizerVerifier for CephxAuthorizerVerifier {
    fn protocol(&self) -> u32 {
        CEPH_AUTH_CEPHX
    }

    fn verify(
        &self,
        authorizer: &[u8],
        challenge: &mut ChallengeState,
        features: u64,
        now: UTime,
    ) -> Result<VerifyOutcome, AuthError> {
        let keys = self.keys.read().unwrap_or_else(|p| p.into_inner());
        let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
        let want_secret = challenge.wants_connection_secret();
        let mut secret = [0u8; crate::connection_secret::CONNECTION_SECRET_LEN];
        let verdict = {
            let state = if self.challenge {
                Some(&mut *challenge)
            } else {
                None
            };
            if want_secret {
                verify_authorizer_with_secret(
                    &*keys,
                    self.service_id,
                    authorizer,
                    state,
                    now,
                    &mut **rng,
                    &mut secret,
                )?
            } else {
                verify_authorizer(&*keys, self.service_id, authorizer, state, now, &mut **rng)?
            }
        };
        if want_secret && matches!(verdict, Verification::Accepted { .. }) {
            challenge.set_connection_secret(secret);
        }
        match verdict {
            Verification::Challenge(c) => Ok(VerifyOutcome::Challenge(c)),
            Verification::Accepted { reply, info } => {
                let peer = PeerIdentity {
                    name: info.ticket.name.clone(),
                    global_id: info.ticket.global_id,
                    caps: info.ticket.caps.clone(),
                };
                let signer = MessageSigner::new(
                    info.session_key.clone(),
                    SignatureFormat::for_features(features),
                );
                Ok(VerifyOutcome::Accepted {
                    reply,
                    peer,
                    signer: Some(signer),
                })
            }
        }
    }
}
