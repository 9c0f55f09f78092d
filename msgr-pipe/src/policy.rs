//! Per-peer-type connection policy (spec §7, Ceph's `Policy.h`).

use std::fmt;

use msgr_dispatch::Throttle;
use msgr_wire::features;

/// The features this implementation advertises by default: Pacific's `CEPH_FEATURES_ALL`.
///
/// Of these, the pipe itself implements `NOSRCADDR` (53-byte headers, always), `RECONNECT_SEQ`
/// (the SEQ exchange), `MSG_AUTH` (21-byte footers) and `MSGR_KEEPALIVE2`; the others are payload
/// level and the business of the layers above.
pub const DEFAULT_FEATURES: u64 = features::ALL_PACIFIC;

/// How connections with one type of peer behave (spec §7).
///
/// `throttle_bytes` / `throttle_messages` are inbound throttles: the reader takes a permit of
/// the message's payload size (bytes) and of 1 (messages) *before* reading a message body, and
/// the permits travel with the message ([`Incoming::policy_permits`](crate::Incoming)).
#[derive(Clone)]
pub struct Policy {
    /// Thrown away on error: no acks, no resend, a fault ends the session (once it was open).
    pub lossy: bool,
    /// Never re-establishes a connection from this end.
    pub server: bool,
    /// When idle after a fault, rest without a socket until a message is queued.
    pub standby: bool,
    /// Detect peer session resets (RESETSESSION for `connect_seq` 0, reset on peer restart).
    pub resetcheck: bool,
    /// Features we advertise.
    pub features_supported: u64,
    /// Features the peer must have.
    pub features_required: u64,
    /// Inbound byte throttle (payload bytes of messages not yet released by the application).
    pub throttle_bytes: Option<Throttle>,
    /// Inbound message-count throttle.
    pub throttle_messages: Option<Throttle>,
}

impl fmt::Debug for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Policy")
            .field("lossy", &self.lossy)
            .field("server", &self.server)
            .field("standby", &self.standby)
            .field("resetcheck", &self.resetcheck)
            .field(
                "features_supported",
                &format_args!("{:#x}", self.features_supported),
            )
            .field(
                "features_required",
                &format_args!("{:#x}", self.features_required),
            )
            .field(
                "throttle_bytes",
                &self.throttle_bytes.as_ref().map(Throttle::max),
            )
            .field(
                "throttle_messages",
                &self.throttle_messages.as_ref().map(Throttle::max),
            )
            .finish()
    }
}

impl Default for Policy {
    /// Ceph's default-constructed policy: lossless, not server, no standby, no resetcheck.
    fn default() -> Self {
        Self::flags(false, false, false, false, 0)
    }
}

impl Policy {
    fn flags(lossy: bool, server: bool, standby: bool, resetcheck: bool, req: u64) -> Self {
        Policy {
            lossy,
            server,
            standby,
            resetcheck,
            features_supported: DEFAULT_FEATURES,
            features_required: req,
            throttle_bytes: None,
            throttle_messages: None,
        }
    }

    /// Lossless, server, standby, resetcheck (an MDS accepting clients).
    pub fn stateful_server(req: u64) -> Self {
        Self::flags(false, true, true, true, req)
    }

    /// Lossy server (ceph-mon towards clients, OSD heartbeat servers).
    pub fn stateless_server(req: u64) -> Self {
        Self::flags(true, true, false, false, req)
    }

    /// Lossless peer with standby (OSD to OSD).
    pub fn lossless_peer(req: u64) -> Self {
        Self::flags(false, false, true, false, req)
    }

    /// Lossless peer with standby and resetcheck (mon to mon).
    pub fn lossless_peer_reuse(req: u64) -> Self {
        Self::flags(false, false, true, true, req)
    }

    /// Lossy client (librados towards mons and OSDs).
    pub fn lossy_client(req: u64) -> Self {
        Self::flags(true, false, false, false, req)
    }

    /// Lossless client with resetcheck (CephFS clients towards the MDS).
    pub fn lossless_client(req: u64) -> Self {
        Self::flags(false, false, false, true, req)
    }

    /// Sets the inbound throttles (builder style).
    pub fn with_throttles(mut self, bytes: Option<Throttle>, messages: Option<Throttle>) -> Self {
        self.throttle_bytes = bytes;
        self.throttle_messages = messages;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constructors_match_the_spec_table() {
        let p = Policy::stateful_server(0);
        assert!(!p.lossy && p.server && p.standby && p.resetcheck);
        let p = Policy::stateless_server(0);
        assert!(p.lossy && p.server && !p.standby && !p.resetcheck);
        let p = Policy::lossless_peer(0);
        assert!(!p.lossy && !p.server && p.standby && !p.resetcheck);
        let p = Policy::lossless_peer_reuse(0);
        assert!(!p.lossy && !p.server && p.standby && p.resetcheck);
        let p = Policy::lossy_client(7);
        assert!(p.lossy && !p.server && !p.standby && !p.resetcheck);
        assert_eq!(p.features_required, 7);
        let p = Policy::lossless_client(0);
        assert!(!p.lossy && !p.server && !p.standby && p.resetcheck);
    }
}
