//! msgr v1 as one dialect of the session core.
//!
//! * [`codec`]: the core's frames to v1 bytes and back (the writer's [`codec::Encoder`]).
//! * [`state`]: v1's per-session counters (`connect_seq`, `peer_global_seq`) and the replace
//!   bookkeeping, reacting to the core's fault decisions.
//! * [`handshake`]: the connector and acceptor handshakes as sans-IO machines (bytes in,
//!   bytes out, states consumed by value).
//! * [`session`]: what an accept decision or a READY/SEQ does to the session (replace, open).
//! * [`connect`]: the connector's reply table; [`accept`]: the acceptor's decision table
//!   (spec §5.3), both pure functions.
//!
//! Not here: the neutral session rules ([`crate::core`]), sockets and tasks
//! ([`crate::session`]), the wire layouts (`msgr_wire`).

pub mod accept;
pub mod codec;
pub mod connect;
pub mod handshake;
pub mod session;
pub mod state;

pub use state::V1State;

use msgr_wire::{
    EntityType, MDSC_PROTOCOL, MONC_PROTOCOL, MON_PROTOCOL, OSDC_PROTOCOL, OSD_PROTOCOL,
};

/// The intra-cluster MDS protocol (release dependent; 36 in recent copies).
pub const MDS_PROTOCOL: u32 = 36;

/// `get_proto_version(peer_type, connecting)` (spec §2.7): the cluster protocol between
/// equal types, else by the peer's type when connecting and by ours when accepting.
pub fn proto_version(my_type: EntityType, peer_type: EntityType, connecting: bool) -> u32 {
    if my_type == peer_type {
        return match my_type {
            EntityType::MON => MON_PROTOCOL,
            EntityType::OSD => OSD_PROTOCOL,
            EntityType::MDS => MDS_PROTOCOL,
            _ => 0,
        };
    }
    match if connecting { peer_type } else { my_type } {
        EntityType::OSD => OSDC_PROTOCOL,
        EntityType::MDS => MDSC_PROTOCOL,
        EntityType::MON => MONC_PROTOCOL,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proto_versions() {
        assert_eq!(proto_version(EntityType::CLIENT, EntityType::MON, true), 15);
        assert_eq!(
            proto_version(EntityType::MON, EntityType::CLIENT, false),
            15
        );
        assert_eq!(proto_version(EntityType::CLIENT, EntityType::OSD, true), 24);
        assert_eq!(proto_version(EntityType::OSD, EntityType::OSD, true), 10);
        assert_eq!(proto_version(EntityType::CLIENT, EntityType::MGR, true), 0);
        assert_eq!(
            proto_version(EntityType::CLIENT, EntityType::CLIENT, false),
            0
        );
    }
}
