//! The auth client of the mon session, whichever protocol the mon chose, and when its tickets
//! are due for renewal.

use msgr_auth::provider::{AuthClient, CephxClient, ClientProgress, NoneClient};
use msgr_auth::{
    AuthError, CryptoKey, EntityName, UTime, CEPH_AUTH_CEPHX, CEPH_AUTH_NONE, ENTITY_AUTH,
};
use rand::SeedableRng;

/// The client side of the protocol in use.
#[derive(Debug)]
pub(crate) enum Auth {
    None(NoneClient),
    Cephx(Box<CephxClient>),
}

impl Auth {
    /// The auth client for `protocol`, keeping `current` when it already speaks it (so that a
    /// reconnect reclaims the global id with the old ticket). `None` when we cannot speak it.
    pub(crate) fn for_protocol(
        current: Option<Auth>,
        protocol: u32,
        name: &EntityName,
        key: Option<&CryptoKey>,
        want: u32,
        seed: Option<u64>,
    ) -> Option<Auth> {
        match (current, protocol) {
            (Some(Auth::Cephx(c)), CEPH_AUTH_CEPHX) => Some(Auth::Cephx(c)),
            (Some(Auth::None(c)), CEPH_AUTH_NONE) => Some(Auth::None(c)),
            (old, CEPH_AUTH_CEPHX) => {
                let rng: Box<dyn rand::RngCore + Send> = match seed {
                    Some(s) => Box::new(rand::rngs::StdRng::seed_from_u64(s)),
                    None => Box::new(rand::rngs::StdRng::from_entropy()),
                };
                let mut c = CephxClient::new(name.clone(), key?.clone(), want, rng);
                c.set_global_id(old.map_or(0, |o| o.client().global_id()));
                Some(Auth::Cephx(Box::new(c)))
            }
            (old, CEPH_AUTH_NONE) => {
                let mut c = NoneClient::new(name.clone());
                c.set_global_id(old.map_or(0, |o| o.client().global_id()));
                Some(Auth::None(c))
            }
            _ => None,
        }
    }

    /// The auth client, boxed.
    pub(crate) fn boxed(self) -> Box<dyn AuthClient> {
        match self {
            Auth::None(c) => Box::new(c),
            Auth::Cephx(c) => c,
        }
    }

    pub(crate) fn client(&self) -> &(dyn AuthClient + 'static) {
        match self {
            Auth::None(c) => c,
            Auth::Cephx(c) => c.as_ref(),
        }
    }

    pub(crate) fn client_mut(&mut self) -> &mut (dyn AuthClient + 'static) {
        match self {
            Auth::None(c) => c,
            Auth::Cephx(c) => c.as_mut(),
        }
    }

    /// Handles an MAuthReply. A reply to a request lost with its session (a reconnect between
    /// our request and its answer) leaves the cephx client expecting that answer; the first
    /// reply of a new session is then read as the challenge it is (the cephx client forgets
    /// the lost request when the header does not match).
    pub(crate) fn handle_reply(
        &mut self,
        now: UTime,
        result: i32,
        payload: &[u8],
        first_of_session: bool,
    ) -> Result<ClientProgress, AuthError> {
        let c = self.client_mut();
        match c.handle_reply(now, result, payload) {
            Err(e) if first_of_session && !matches!(e, AuthError::Refused { .. }) => {
                c.handle_reply(now, result, payload)
            }
            other => other,
        }
    }

    /// When the first ticket of `want` (and AUTH's) is due for renewal; `None` for `none`,
    /// which has no tickets, or when a ticket is missing (renewal is due at once).
    pub(crate) fn renew_at(&self, want: u32) -> Option<UTime> {
        let Auth::Cephx(c) = self else { return None };
        let mut at: Option<UTime> = None;
        for bit in (0..32)
            .map(|i| 1u32 << i)
            .filter(|b| (want | ENTITY_AUTH) & b != 0)
        {
            let t = c.ticket(bit)?.renew_after;
            at = Some(at.map_or(t, |a| a.min(t)));
        }
        at
    }
}
