//! Feature bits (`CEPH_FEATURE_*`, spec §2.9) as named `u64` masks.
//!
//! Only the bits that change msgr v1 framing matter to this crate ([`NOSRCADDR`],
//! [`RECONNECT_SEQ`], [`MSG_AUTH`], [`MSGR_KEEPALIVE2`]); the others are given so that peers
//! can name what they advertise. Bits were reused over Ceph's history ("incarnations"):
//! [`has`] checks a bit together with its incarnation marker bits.

/// Bit 0: uid in messages.
pub const UID: u64 = 1 << 0;
/// Bit 1: the 53-byte message header (no source address). Mandatory for Async peers.
pub const NOSRCADDR: u64 = 1 << 1;
/// Bit 2, incarnation 3: Nautilus servers (payload-level only).
pub const SERVER_NAUTILUS: u64 = 1 << 2;
/// Bit 3: flock.
pub const FLOCK: u64 = 1 << 3;
/// Bit 4: subscribe2.
pub const SUBSCRIBE2: u64 = 1 << 4;
/// Bit 5: monitor names.
pub const MONNAMES: u64 = 1 << 5;
/// Bit 6: the acceptor may answer SEQ and both sides exchange an 8-byte in_seq.
pub const RECONNECT_SEQ: u64 = 1 << 6;
/// Bit 7: directory layout hash.
pub const DIRLAYOUTHASH: u64 = 1 << 7;
/// Bit 8: object locator.
pub const OBJECTLOCATOR: u64 = 1 << 8;
/// Bit 9: 64-bit pg ids.
pub const PGID64: u64 = 1 << 9;
/// Bit 10: incremental osdmap subscriptions.
pub const INCSUBOSDMAP: u64 = 1 << 10;
/// Bit 11: pg pool v3.
pub const PGPOOL3: u64 = 1 << 11;
/// Bit 12: osd reply mux.
pub const OSDREPLYMUX: u64 = 1 << 12;
/// Bit 13: osd encoding.
pub const OSDENC: u64 = 1 << 13;
/// Bit 15: monitor encoding.
pub const MONENC: u64 = 1 << 15;
/// Bit 18: crush tunables.
pub const CRUSH_TUNABLES: u64 = 1 << 18;
/// Bit 20 (with incarnation 3): Pacific servers; see [`SERVER_PACIFIC_MASK`].
pub const SERVER_PACIFIC: u64 = 1 << 20;
/// Bit 21: Luminous servers (also MON_GV).
pub const SERVER_LUMINOUS: u64 = 1 << 21;
/// Bit 23: the 21-byte footer with a signature; without it the 13-byte old footer is used.
pub const MSG_AUTH: u64 = 1 << 23;
/// Bit 25: crush tunables 2.
pub const CRUSH_TUNABLES2: u64 = 1 << 25;
/// Bit 28: Mimic servers; also part of the incarnation 3 marker.
pub const SERVER_MIMIC: u64 = 1 << 28;
/// Bit 30: osd hash pspool.
pub const OSDHASHPSPOOL: u64 = 1 << 30;
/// Bit 35: osd cache pools.
pub const OSD_CACHEPOOL: u64 = 1 << 35;
/// Bit 36: crush v2.
pub const CRUSH_V2: u64 = 1 << 36;
/// Bit 37: mds export peer.
pub const EXPORT_PEER: u64 = 1 << 37;
/// Bit 39: osdmap encoding.
pub const OSDMAP_ENC: u64 = 1 << 39;
/// Bit 40: mds inline data.
pub const MDS_INLINE_DATA: u64 = 1 << 40;
/// Bit 41: crush tunables 3.
pub const CRUSH_TUNABLES3: u64 = 1 << 41;
/// Bit 42: keepalives are sent as KEEPALIVE2 with a timestamp.
pub const MSGR_KEEPALIVE2: u64 = 1 << 42;
/// Bit 43: osd pool resend.
pub const OSD_POOLRESEND: u64 = 1 << 43;
/// Bit 48: crush v4.
pub const CRUSH_V4: u64 = 1 << 48;
/// Bit 57: the incarnation 2 marker (also SERVER_JEWEL, MON_STATEFUL_SUB).
pub const INCARNATION_2: u64 = 1 << 57;
/// Bit 57: Jewel servers.
pub const SERVER_JEWEL: u64 = 1 << 57;
/// Bit 58: new osd op reply encoding (also CRUSH_TUNABLES5).
pub const NEW_OSDOPREPLY_ENCODING: u64 = 1 << 58;
/// Bit 59: new entity address encoding inside message payloads (never in the handshake).
pub const MSG_ADDR2: u64 = 1 << 59;
/// Bit 61: cephx v2 (authorizer challenge, tag 16).
pub const CEPHX_V2: u64 = 1 << 61;

/// Incarnation 3 marker: bits 57 and 28.
pub const INCARNATION_3: u64 = INCARNATION_2 | SERVER_MIMIC;
/// Full mask of SERVER_NAUTILUS (bit 2 plus incarnation 3).
pub const SERVER_NAUTILUS_MASK: u64 = SERVER_NAUTILUS | INCARNATION_3;
/// Full mask of SERVER_PACIFIC (bit 20 plus incarnation 3).
pub const SERVER_PACIFIC_MASK: u64 = SERVER_PACIFIC | INCARNATION_3;

/// `CEPH_FEATURES_ALL` of Pacific 16.2 daemons and clients.
pub const ALL_PACIFIC: u64 = 0x3f01_cfb9_fffd_ffff;

/// `HAVE_FEATURE`: every bit of `mask` (a feature with its incarnation bits) is in `features`.
pub const fn has(features: u64, mask: u64) -> bool {
    features & mask == mask
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacific_has_framing_bits() {
        for bit in [
            NOSRCADDR,
            RECONNECT_SEQ,
            MSG_AUTH,
            MSGR_KEEPALIVE2,
            MSG_ADDR2,
            CEPHX_V2,
        ] {
            assert!(has(ALL_PACIFIC, bit));
        }
        assert!(has(ALL_PACIFIC, SERVER_PACIFIC_MASK));
        assert!(has(ALL_PACIFIC, SERVER_NAUTILUS_MASK));
        assert!(!has(ALL_PACIFIC, 1 << 17));
    }
}
