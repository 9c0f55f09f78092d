//! The messenger hook of a mon client: connections to services (OSD, MGR, MDS) get an
//! authorizer from the client's current ticket for that service (Ceph's
//! `MonClient::build_authorizer`), and their messages are signed with the ticket's session
//! key.
//!
//! Not here: verifying incoming authorizers (a client accepts no sessions; a service verifies
//! with its rotating secrets, see `msgr serve -n osd.N`), forcing a ticket renewal after a
//! BADAUTHORIZER (the retry presents a fresh authorizer, new nonce, from the tickets the tick
//! task keeps renewed).

use std::sync::Arc;

use msgr_core::{
    AuthError, Authorizer, BoxFuture, ChallengeState, ClientAuthorizer, VerifyOutcome,
};
use msgr_wire::EntityType;

use crate::client::Shared;

/// See the module docs; made by [`MonClient::authorizer`](crate::MonClient::authorizer).
pub(crate) struct TicketAuthorizer {
    pub(crate) shared: Arc<Shared>,
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
            let now = self.shared.clock.now();
            let mut st = self.shared.state.lock().await;
            let auth = st.auth.as_mut()?;
            match auth
                .client_mut()
                .build_authorizer(u32::from(peer_type.0), now)
            {
                Ok(a) => {
                    if retry {
                        tracing::info!(%peer_type, "BADAUTHORIZER: presenting a fresh authorizer");
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
        _protocol: u32,
        _authorizer: &[u8],
        _challenge: &mut ChallengeState,
        _features: u64,
    ) -> Result<VerifyOutcome, AuthError> {
        Err(AuthError::BadAuthorizer {
            reason: "a mon client accepts no sessions",
        })
    }
}
