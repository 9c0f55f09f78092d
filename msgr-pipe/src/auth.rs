//! [`ProviderAuthorizer`]: the [`Authorizer`] hook over msgr-auth's providers, for a
//! messenger that holds its tickets itself (tests, tools, a service verifying with keys it
//! was given). A mon client that renews tickets implements [`Authorizer`] on its own.
//!
//! Not here: getting tickets or rotating secrets from a mon (msgr-monc), the cephx
//! structures (msgr-auth).

use std::sync::{Arc, Mutex, MutexGuard};

use msgr_auth::provider::{AuthClient, AuthorizerVerifier};
use msgr_auth::{EntityName, UTime};
use msgr_wire::EntityType;

use crate::hook::BoxFuture;
use crate::host::{
    AuthError, Authorizer, ChallengeState, ClientAuthorizer, PeerIdentity, VerifyOutcome,
};

/// Authorizers from an [`AuthClient`]'s tickets; verification with an
/// [`AuthorizerVerifier`]. Either may be absent: without a client no authorizer is sent,
/// without a verifier every connector is accepted (and nothing is signed).
pub struct ProviderAuthorizer {
    client: Option<Mutex<Box<dyn AuthClient>>>,
    verifier: Option<Arc<dyn AuthorizerVerifier>>,
    sign_messages: bool,
    require_signatures: bool,
}

impl std::fmt::Debug for ProviderAuthorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderAuthorizer")
            .field("client", &self.client.is_some())
            .field("verifier", &self.verifier.is_some())
            .field("sign_messages", &self.sign_messages)
            .field("require_signatures", &self.require_signatures)
            .finish()
    }
}

impl Default for ProviderAuthorizer {
    fn default() -> Self {
        Self::new()
    }
}

impl ProviderAuthorizer {
    /// Neither side: sends none, accepts all (add them with the `with_*` methods).
    pub fn new() -> Self {
        ProviderAuthorizer {
            client: None,
            verifier: None,
            sign_messages: true,
            require_signatures: false,
        }
    }

    /// Builds authorizers from this (authenticated) client's tickets.
    pub fn with_client(mut self, client: Box<dyn AuthClient>) -> Self {
        self.client = Some(Mutex::new(client));
        self
    }

    /// Verifies connectors' authorizers with `verifier`.
    pub fn with_verifier(mut self, verifier: Arc<dyn AuthorizerVerifier>) -> Self {
        self.verifier = Some(verifier);
        self
    }

    /// Ceph's `cephx_sign_messages` (default true).
    pub fn with_sign_messages(mut self, on: bool) -> Self {
        self.sign_messages = on;
        self
    }

    /// Ceph's `cephx_require_signatures` (default false).
    pub fn with_require_signatures(mut self, on: bool) -> Self {
        self.require_signatures = on;
        self
    }

    fn client(&self) -> Option<MutexGuard<'_, Box<dyn AuthClient>>> {
        self.client.as_ref().map(|m| msgr_dispatch::lock(m))
    }
}

impl Authorizer for ProviderAuthorizer {
    fn build(
        &self,
        peer_type: EntityType,
        _retry: bool,
    ) -> BoxFuture<'_, Option<Box<dyn ClientAuthorizer>>> {
        // Tickets cannot be renewed here (no mon): a retry builds from the same ones.
        let built = self.client().and_then(|mut c| {
            match c.build_authorizer(u32::from(peer_type.0), UTime::now()) {
                Ok(a) => Some(a),
                Err(e) => {
                    tracing::warn!(%peer_type, error = %e, "no authorizer for the peer");
                    None
                }
            }
        });
        Box::pin(async move { built })
    }

    fn verify(
        &self,
        peer_type: EntityType,
        protocol: u32,
        authorizer: &[u8],
        challenge: &mut ChallengeState,
        features: u64,
    ) -> Result<VerifyOutcome, AuthError> {
        let Some(v) = &self.verifier else {
            return Ok(VerifyOutcome::Accepted {
                reply: bytes::Bytes::new(),
                peer: PeerIdentity {
                    name: EntityName::new(u32::from(peer_type.0), ""),
                    global_id: 0,
                    caps: Default::default(),
                },
                signer: None,
            });
        };
        if protocol != v.protocol() {
            return Err(AuthError::UnsupportedProtocol { protocol });
        }
        v.verify(authorizer, challenge, features, UTime::now())
    }

    fn sign_messages(&self) -> bool {
        self.sign_messages
    }

    fn require_signatures(&self) -> bool {
        self.require_signatures
    }
}
