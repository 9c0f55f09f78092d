//! [`Policies`]: the policy set of a messenger — one [`Policy`] per peer type and a default —
//! and the inbound throttles they carry.
//!
//! What it does not do: apply a policy (the pipe sessions do), or hold the dispatch throttle
//! (the sessions' host does). It depends only on the configuration and the stats types.

use std::collections::HashMap;

use msgr_dispatch::Throttle;
use msgr_pipe::Policy;
use msgr_wire::EntityType;

use crate::config::{MessengerConfig, PolicyConfig, PolicyKind};
use crate::stats::ThrottleReading;

/// The policy for each peer type, and the one for types without their own.
pub(crate) struct Policies {
    by_type: HashMap<EntityType, Policy>,
    default: Policy,
}

impl Policies {
    /// `by_type`, falling back to `default`.
    pub(crate) fn new(by_type: HashMap<EntityType, Policy>, default: Policy) -> Self {
        Policies { by_type, default }
    }

    /// The policy for peers of `peer_type`.
    pub(crate) fn get(&self, peer_type: EntityType) -> &Policy {
        self.by_type.get(&peer_type).unwrap_or(&self.default)
    }

    /// Each policy's byte and message throttles with their current values, named
    /// `policy.<type>.bytes` / `.messages` (`default` for the default policy).
    pub(crate) fn readings(&self) -> Vec<ThrottleReading> {
        let mut policies: Vec<(String, &Policy)> = self
            .by_type
            .iter()
            .map(|(t, p)| (t.to_string(), p))
            .collect();
        policies.push(("default".into(), &self.default));
        let mut out = Vec::new();
        for (ty, p) in policies {
            if let Some(t) = &p.throttle_bytes {
                out.push(ThrottleReading::new(format!("policy.{ty}.bytes"), t));
            }
            if let Some(t) = &p.throttle_messages {
                out.push(ThrottleReading::new(format!("policy.{ty}.messages"), t));
            }
        }
        out
    }

    /// Every policy throttle (bytes and messages), the default policy's last.
    pub(crate) fn throttles(&self) -> Vec<Throttle> {
        self.by_type
            .values()
            .chain(std::iter::once(&self.default))
            .flat_map(|p| p.throttle_bytes.iter().chain(p.throttle_messages.iter()))
            .cloned()
            .collect()
    }
}

/// The policy a configuration's `pc` describes: its kind, the required features of both,
/// the configuration's supported features, and its throttles (0 = none).
pub(crate) fn from_config(pc: &PolicyConfig, c: &MessengerConfig) -> Policy {
    let req = c.features_required | pc.features_required;
    let mut p = match pc.kind {
        PolicyKind::LossyClient => Policy::lossy_client(req),
        PolicyKind::LosslessClient => Policy::lossless_client(req),
        PolicyKind::LosslessPeer => Policy::lossless_peer(req),
        PolicyKind::LosslessPeerReuse => Policy::lossless_peer_reuse(req),
        PolicyKind::StatefulServer => Policy::stateful_server(req),
        PolicyKind::StatelessServer => Policy::stateless_server(req),
    };
    p.features_supported = c.features_supported;
    let throttle = |n: u64| (n > 0).then(|| Throttle::new(n));
    p.with_throttles(throttle(pc.throttle_bytes), throttle(pc.throttle_messages))
}
