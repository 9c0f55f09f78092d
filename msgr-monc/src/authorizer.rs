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
}
