//! The messenger hook of a mon client: connections to services (OSD, MGR, MDS) get an
//! authorizer from the client's current ticket for that service (Ceph's
//! `MonClient::build_authorizer`), and their messages are signed with the ticket's session
//! key.
//!
//! A daemon entity (`osd.N`, `mgr.X`, `mds.X`) also verifies the authorizers of its own
//! clients with the rotating secrets of its type that the mon gave it (CEPHX_GET_ROTATING_KEY,
//! kept current at each renewal), challenging them as Ceph's daemons do; a client accepts no
//! one.
//!
//! After a BADAUTHORIZER the retry is built on a fresh ticket: the refused one is forgotten and
//! a new one fetched from the mon first (Ceph's `ceph_x_invalidate_authorizer`).
//!
//! Not here: the MAuth exchange itself (`tick.rs` renews, `session.rs` authenticates).

use std::sync::Arc;

use msgr_auth::provider::{AuthorizerVerifier, CephxAuthorizerVerifier};
use msgr_core::{
    AuthError, Authorizer, BoxFuture, ChallengeState, ClientAuthorizer, VerifyOutcome,
};
use msgr_wire::EntityType;
use rand::SeedableRng;

use crate::client::Shared;

/// See the module docs; made by [`MonClient::authorizer`](crate::MonClient::authorizer).
pub(crate) struct TicketAuthorizer {
    pub(crate) shared: Arc<Shared>,
    /// The daemon's verifier over the rotating secrets the mon gives it.
    pub(crate) verifier: CephxAuthorizerVerifier,
}

impl TicketAuthorizer {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        let service = shared.options.name.ty;
        let verifier = CephxAuthorizerVerifier::new(
            service,
            Arc::clone(&shared.service_keys),
            true,
            Box::new(rand::rngs::StdRng::from_entropy()),
        );
        TicketAuthorizer { shared, verifier }
    }
}

impl Authorizer for TicketAuthorizer {
    fn build(
        &self,
        peer_type: EntityType,
        retry: bool,
    ) -> BoxFuture<'_, Option<Box<dyn ClientAuthorizer>>> {
        Box::pin(async move {
            // Mons authenticate clients with MAuth, clients accept no one: no authorizer.
            if matches!(peer_type, EntityType::MON | EntityType::CLIENT)
                || self.shared.cancel.is_cancelled()
            {
                return None;
            }
            let mut st = self.shared.state.lock().await;
            if retry {
                // The service refused the ticket: a new one from the mon first.
                let service = u32::from(peer_type.0);
                if let Some(auth) = st.auth.as_mut() {
                    auth.client_mut().invalidate_ticket(service);
                }
                if let Err(e) = crate::session::ensure_session(&self.shared, &mut st).await {
                    tracing::warn!(%peer_type, error = %e, "no mon session to renew the ticket on");
                }
                if let Err(e) = crate::tick::renew(&self.shared, &mut st).await {
                    tracing::warn!(%peer_type, error = %e, "no fresh ticket after BADAUTHORIZER");
                }
            }
            let now = self.shared.clock.now();
            let auth = st.auth.as_mut()?;
            match auth
                .client_mut()
                .build_authorizer(u32::from(peer_type.0), now)
            {
                Ok(a) => {
                    if retry {
                        tracing::info!(%peer_type, "BADAUTHORIZER: presenting a fresh ticket");
                    }
                    Some(a)
                }
                Err(e) => {
                    tracing::warn!(%peer_type, error = %e, "no ticket to authorize with");
                    None
                }
            }
        })
    }

    fn verify(
        &self,
        _peer_type: EntityType,
        protocol: u32,
        authorizer: &[u8],
        challenge: &mut ChallengeState,
        features: u64,
    ) -> Result<VerifyOutcome, AuthError> {
        if !self.shared.options.name.needs_rotating_keys() {
            return Err(AuthError::BadAuthorizer {
                reason: "a client accepts no sessions",
            });
        }
        if protocol != self.verifier.protocol() {
            return Err(AuthError::UnsupportedProtocol { protocol });
        }
        self.verifier
            .verify(authorizer, challenge, features, msgr_auth::UTime::now())
    }

    /// Ceph's `cephx_sign_messages`, from the client's options.
    fn sign_messages(&self) -> bool {
        self.shared.options.cephx_sign_messages
    }

    /// Ceph's `cephx_require_signatures`, from the client's options.
    fn require_signatures(&self) -> bool {
        self.shared.options.cephx_require_signatures
    }

    /// msgr2 to a mon (a messenger that pings or talks to mons with this hook): a fresh auth
    /// client as this client's entity, with its key and methods.
    fn mon_client(&self) -> Option<Box<dyn msgr_auth::provider::AuthClient>> {
        let sh = &self.shared;
        sh.methods
            .iter()
            .find_map(|m| {
                crate::auth::Auth::for_protocol(
                    None,
                    *m,
                    &sh.options.name,
                    sh.key.as_ref(),
                    sh.want,
                    sh.seed,
                )
            })
            .map(crate::auth::Auth::boxed)
    }
}

/// The hook of the mon client's own messenger: a session to a msgr2 mon authenticates inside
/// its handshake (mon mode) with a fresh auth client for the method we prefer (cephx with a
/// key, else none), which lands in `slot` when the handshake ends, tickets and global id
/// included, for the session code to take ([`take_handshake_auth`]). Nothing else: no
/// authorizers (mons authenticate clients themselves), no sessions accepted.
pub(crate) struct MonModeAuth {
    pub(crate) name: msgr_auth::EntityName,
    pub(crate) key: Option<msgr_auth::CryptoKey>,
    pub(crate) methods: Vec<u32>,
    pub(crate) want: u32,
    pub(crate) seed: Option<u64>,
    pub(crate) slot: Arc<std::sync::Mutex<Option<crate::auth::Auth>>>,
}

/// Takes the auth client a finished msgr2 handshake left, if any.
pub(crate) fn take_handshake_auth(
    slot: &std::sync::Mutex<Option<crate::auth::Auth>>,
) -> Option<crate::auth::Auth> {
    slot.lock().unwrap_or_else(|p| p.into_inner()).take()
}

impl Authorizer for MonModeAuth {
    fn build(
        &self,
        _peer_type: EntityType,
        _retry: bool,
    ) -> BoxFuture<'_, Option<Box<dyn ClientAuthorizer>>> {
        Box::pin(async { None })
    }

    fn verify(
        &self,
        _peer_type: EntityType,
        _protocol: u32,
        _authorizer: &[u8],
        _challenge: &mut ChallengeState,
        _features: u64,
    ) -> Result<VerifyOutcome, AuthError> {
        Err(AuthError::BadAuthorizer {
            reason: "a client accepts no sessions",
        })
    }

    fn sign_messages(&self) -> bool {
        false
    }

    fn mon_client(&self) -> Option<Box<dyn msgr_auth::provider::AuthClient>> {
        let auth = self.methods.iter().find_map(|m| {
            crate::auth::Auth::for_protocol(
                None,
                *m,
                &self.name,
                self.key.as_ref(),
                self.want,
                self.seed,
            )
        })?;
        Some(Box::new(Deposit {
            auth,
            slot: Arc::clone(&self.slot),
        }))
    }
}

/// An auth client that leaves itself in `slot` when dropped (the handshake is over).
struct Deposit {
    auth: crate::auth::Auth,
    slot: Arc<std::sync::Mutex<Option<crate::auth::Auth>>>,
}

impl Drop for Deposit {
    fn drop(&mut self) {
        let placeholder = crate::auth::Auth::None(msgr_auth::provider::NoneClient::new(
            self.auth.client().name().clone(),
        ));
        let a = std::mem::replace(&mut self.auth, placeholder);
        *self.slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(a);
    }
}

impl msgr_auth::provider::AuthClient for Deposit {
    fn protocol(&self) -> u32 {
        self.auth.client().protocol()
    }
    fn name(&self) -> &msgr_auth::EntityName {
        self.auth.client().name()
    }
    fn global_id(&self) -> u64 {
        self.auth.client().global_id()
    }
    fn set_global_id(&mut self, global_id: u64) {
        self.auth.client_mut().set_global_id(global_id);
    }
    fn build_request(&mut self, now: msgr_auth::UTime) -> Result<bytes::Bytes, AuthError> {
        self.auth.client_mut().build_request(now)
    }
    fn handle_reply(
        &mut self,
        now: msgr_auth::UTime,
        result: i32,
        payload: &[u8],
    ) -> Result<msgr_auth::provider::ClientProgress, AuthError> {
        self.auth.client_mut().handle_reply(now, result, payload)
    }
    fn needs_renewal(&self, now: msgr_auth::UTime) -> bool {
        self.auth.client().needs_renewal(now)
    }
    fn v2_session(&self) -> (Option<msgr_auth::CryptoKey>, Option<msgr_auth::Secret>) {
        self.auth.client().v2_session()
    }
    fn build_authorizer(
        &mut self,
        service_id: u32,
        now: msgr_auth::UTime,
    ) -> Result<Box<dyn ClientAuthorizer>, AuthError> {
        self.auth.client_mut().build_authorizer(service_id, now)
    }
}
