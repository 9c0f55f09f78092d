//! Ceph's message type numbers and the names of their classes (`MAuth`, `MMonCommand`, ...).
//!
//! The types msgr-ceph decodes take their numbers from its constants; the rest come from
//! Ceph Pacific's `src/include/ceph_fs.h` (`CEPH_MSG_*`) and `src/msg/Message.h` (`MSG_*`),
//! named after the class that carries each. Only types a client, a mon, an OSD or a mgr
//! sends to another entity are listed; an unknown number has no name (`None`).

use msgr_ceph::{
    MAuth, MAuthReply, MConfig, MMonCommand, MMonCommandAck, MMonGetVersion, MMonGetVersionReply,
    MMonMap, MMonSubscribe, MMonSubscribeAck, MPing,
};

/// The class name of message type `ty`, if Ceph has one this table knows.
pub fn type_name(ty: u16) -> Option<&'static str> {
    Some(match ty {
        MPing::TYPE => "MPing",
        MMonMap::TYPE => "MMonMap",
        MMonSubscribe::TYPE => "MMonSubscribe",
        MMonSubscribeAck::TYPE => "MMonSubscribeAck",
        MAuth::TYPE => "MAuth",
        MAuthReply::TYPE => "MAuthReply",
        MMonGetVersion::TYPE => "MMonGetVersion",
        MMonGetVersionReply::TYPE => "MMonGetVersionReply",
        MMonCommand::TYPE => "MMonCommand",
        MMonCommandAck::TYPE => "MMonCommandAck",
        MConfig::TYPE => "MConfig",
        _ => return other_name(ty),
    })
}

/// Types msgr-ceph does not decode (it has no constant for them).
fn other_name(ty: u16) -> Option<&'static str> {
    Some(match ty {
        1 => "MShutdown",
        5 => "MMonGetMap",
        6 => "MMonGetOSDMap",
        7 => "MMonMetadata",
        13 => "MStatfs",
        14 => "MStatfsReply",
        21 => "MMDSMap",
        22 => "MClientSession",
        23 => "MClientReconnect",
        24 => "MClientRequest",
        25 => "MClientRequestForward",
        26 => "MClientReply",
        27 => "MClientReclaim",
        28 => "MClientReclaimReply",
        29 => "MClientMetrics",
        41 => "MOSDMap",
        42 => "MOSDOp",
        43 => "MOSDOpReply",
        44 => "MWatchNotify",
        45 => "MFSMap",
        46 => "MForward",
        47 => "MRoute",
        48 => "MPoolOpReply",
        49 => "MPoolOp",
        52 => "MLog",
        53 => "MLogAck",
        58 => "MGetPoolStats",
        59 => "MGetPoolStatsReply",
        60 => "MMonGlobalID",
        61 => "MOSDBackoff",
        63 => "MGetConfig",
        64 => "MMonScrub",
        65 => "MMonElection",
        66 => "MMonPaxos",
        67 => "MMonProbe",
        68 => "MMonJoin",
        69 => "MMonSync",
        70 => "MOSDPing",
        71 => "MOSDBoot",
        72 => "MOSDFailure",
        73 => "MOSDAlive",
        74 => "MOSDMarkMeDown",
        75 => "MOSDFull",
        76 => "MMonGetPurgedSnaps",
        77 => "MMonGetPurgedSnapsReply",
        78 => "MOSDPGTemp",
        79 => "MOSDBeacon",
        87 => "MPGStats",
        88 => "MPGStatsAck",
        97 => "MCommand",
        98 => "MCommandReply",
        100 => "MMDSBeacon",
        103 => "MFSMapUser",
        0x310 => "MClientCaps",
        0x311 => "MClientLease",
        0x312 => "MClientSnap",
        0x313 => "MClientCapRelease",
        0x314 => "MClientQuota",
        0x600 => "MTimeCheck",
        0x601 => "MMonHealth",
        0x607 => "MNop",
        0x608 => "MMonHealthChecks",
        0x609 => "MTimeCheck2",
        0x700 => "MMgrOpen",
        0x701 => "MMgrConfigure",
        0x702 => "MMgrReport",
        0x703 => "MMgrBeacon",
        0x704 => "MMgrMap",
        0x705 => "MMgrDigest",
        0x706 => "MMonMgrReport",
        0x707 => "MServiceMap",
        0x708 => "MMgrClose",
        0x709 => "MMgrCommand",
        0x70a => "MMgrCommandReply",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_types_of_the_pacific_captures_have_their_class_names() {
        // Every type in the v1 captures' notes (ceph-pacific-v1/README.md).
        for (ty, name) in [
            (4, "MMonMap"),
            (15, "MMonSubscribe"),
            (17, "MAuth"),
            (18, "MAuthReply"),
            (41, "MOSDMap"),
            (50, "MMonCommand"),
            (51, "MMonCommandAck"),
            (62, "MConfig"),
            (1796, "MMgrMap"),
        ] {
            assert_eq!(type_name(ty), Some(name), "type {ty}");
        }
        assert_eq!(type_name(2), Some("MPing"));
        assert_eq!(type_name(0x7fff), None);
    }
}
