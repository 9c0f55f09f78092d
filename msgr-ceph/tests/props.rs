//! Property tests: every type round-trips through its encoder and decoder, and no decoder panics on random
//! bytes or on random corruptions of a valid encoding.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use bytes::{Bytes, BytesMut};
use msgr_ceph::*;
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;

fn text() -> impl Strategy<Value = String> {
    // Mostly ASCII names, sometimes any UTF-8.
    prop_oneof![3 => "[a-z0-9_.-]{0,10}", 1 => ".{0,6}"]
}

fn blob() -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..64).prop_map(Bytes::from)
}

fn fsid() -> impl Strategy<Value = Fsid> {
    any::<[u8; 16]>().prop_map(Fsid)
}

fn paxos() -> impl Strategy<Value = PaxosPrefix> {
    (any::<u64>(), any::<i16>(), any::<u64>()).prop_map(|(version, mon, tid)| PaxosPrefix {
        version,
        deprecated_session_mon: mon,
        deprecated_session_mon_tid: tid,
    })
}

fn utime() -> impl Strategy<Value = UTime> {
    (any::<u32>(), any::<u32>()).prop_map(|(sec, nsec)| UTime { sec, nsec })
}

fn socket_addr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (any::<u32>(), any::<u16>())
            .prop_map(|(ip, port)| SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(ip), port))),
        (any::<u128>(), any::<u16>(), any::<u32>(), any::<u32>()).prop_map(
            |(ip, port, flow, scope)| {
                SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::from(ip), port, flow, scope))
            }
        ),
    ]
}

fn entity_addr() -> impl Strategy<Value = EntityAddr> {
    (0u32..5, any::<u32>(), proptest::option::of(socket_addr()))
        .prop_map(|(ty, nonce, addr)| EntityAddr { ty, nonce, addr })
}

fn mon_info() -> impl Strategy<Value = MonInfo> {
    (
        text(),
        vec(entity_addr(), 0..3),
        any::<u16>(),
        any::<u16>(),
        btree_map(text(), text(), 0..3),
    )
        .prop_map(|(name, addrs, priority, weight, crush_loc)| MonInfo {
            name,
            public_addrs: EntityAddrVec(addrs),
            priority,
            weight,
            crush_loc,
        })
}

prop_compose! {
    fn monmap()(
        fsid in fsid(),
        epoch in any::<u32>(),
        times in (utime(), utime()),
        features in (any::<u64>(), any::<u64>()),
        mons in btree_map(text(), mon_info(), 0..4),
        ranks in vec(text(), 0..4),
        release in any::<u8>(),
        removed_ranks in vec(any::<i32>(), 0..3),
        strategy in any::<u8>(),
        disallowed_leaders in vec(text(), 0..3),
        stretch in (any::<bool>(), text(), vec(text(), 0..3)),
    ) -> MonMap {
        MonMap {
            fsid,
            epoch,
            last_changed: times.0,
            created: times.1,
            persistent_features: features.0,
            optional_features: features.1,
            mons,
            ranks,
            min_mon_release: release,
            removed_ranks,
            strategy,
            disallowed_leaders,
            stretch_mode_enabled: stretch.0,
            tiebreaker_mon: stretch.1,
            stretch_marked_down_mons: stretch.2,
        }
    }
}

fn encoded(encode: impl FnOnce(&mut BytesMut)) -> Bytes {
    let mut buf = BytesMut::new();
    encode(&mut buf);
    buf.freeze()
}

/// Runs every decoder of the crate on `bytes`; none may panic, whatever the result.
fn decode_everything(bytes: &[u8]) {
    for version in [0u16, 1, 2, 3, 4] {
        let _ = MMonSubscribe::decode(&mut &bytes[..], version);
        let _ = MMonGetVersion::decode(&mut &bytes[..], version);
        let _ = MMonGetVersionReply::decode(&mut &bytes[..], version);
    }
    let _ = MPing::decode(&mut &bytes[..]).map(|p| p.text());
    let _ = MMonMap::decode(&mut &bytes[..]);
    let _ = MonMap::decode(&mut &bytes[..]);
    let _ = MonInfo::decode(&mut &bytes[..]);
    let _ = EntityAddr::decode(&mut &bytes[..]);
    let _ = EntityAddrVec::decode(&mut &bytes[..]);
    let _ = MMonSubscribeAck::decode(&mut &bytes[..]);
    let _ = MAuth::decode(&mut &bytes[..]).map(|m| m.negotiation());
    let _ = MAuthReply::decode(&mut &bytes[..]);
    let _ = AuthNegotiation::decode(&mut &bytes[..]);
    let _ = MMonCommand::decode(&mut &bytes[..]);
    let _ = MMonCommandAck::decode(&mut &bytes[..], Bytes::new());
    let _ = MConfig::decode(&mut &bytes[..]);
    let _ = std::str::from_utf8(bytes).map(|s| s.parse::<Fsid>());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn monmap_round_trips(map in monmap()) {
        let msg = MMonMap { monmap: map };
        let front = msg.to_front();
        prop_assert_eq!(MMonMap::decode(&mut front.clone())?, msg);
    }

    #[test]
    fn addrvec_round_trips(addrs in vec(entity_addr(), 0..4)) {
        let vec = EntityAddrVec(addrs);
        let bytes = encoded(|b| vec.encode(b));
        let mut rest = bytes.clone();
        prop_assert_eq!(EntityAddrVec::decode(&mut rest)?, vec);
        prop_assert!(rest.is_empty());
    }

    #[test]
    fn subscribe_round_trips(
        what in btree_map(text(), (any::<u64>(), any::<u8>()), 0..5),
        hostname in text(),
    ) {
        let what = what
            .into_iter()
            .map(|(k, (start, flags))| (k, SubscribeItem { start, flags }))
            .collect();
        let msg = MMonSubscribe { what, hostname };
        let front = msg.to_front();
        prop_assert_eq!(MMonSubscribe::decode(&mut front.clone(), MMonSubscribe::VERSION)?, msg);
    }

    #[test]
    fn subscribe_ack_round_trips(interval in any::<u32>(), fsid in fsid()) {
        let msg = MMonSubscribeAck { interval, fsid };
        prop_assert_eq!(MMonSubscribeAck::decode(&mut msg.to_front())?, msg);
    }

    #[test]
    fn get_version_round_trips(handle in any::<u64>(), what in text(), v in any::<[u64; 2]>()) {
        let msg = MMonGetVersion { handle, what };
        prop_assert_eq!(MMonGetVersion::decode(&mut msg.to_front(), MMonGetVersion::VERSION)?, msg);
        let reply = MMonGetVersionReply { handle, version: v[0], oldest_version: v[1] };
        prop_assert_eq!(
            MMonGetVersionReply::decode(&mut reply.to_front(), MMonGetVersionReply::VERSION)?,
            reply
        );
    }

    #[test]
    fn config_round_trips(config in btree_map(text(), text(), 0..8)) {
        let msg = MConfig { config };
        prop_assert_eq!(MConfig::decode(&mut msg.to_front())?, msg);
    }

    #[test]
    fn auth_round_trips(
        paxos in paxos(),
        protocol in any::<u32>(),
        payload in blob(),
        epoch in any::<u32>(),
        result in any::<i32>(),
        global_id in any::<u64>(),
        message in text(),
        supported in vec(any::<u32>(), 0..4),
        entity in (any::<u32>(), text()),
    ) {
        let msg = MAuth { paxos, protocol, auth_payload: payload.clone(), monmap_epoch: epoch };
        prop_assert_eq!(MAuth::decode(&mut msg.to_front())?, msg);
        let reply = MAuthReply { protocol, result, global_id, result_bl: payload, result_msg: message };
        prop_assert_eq!(MAuthReply::decode(&mut reply.to_front())?, reply);
        let negotiation = AuthNegotiation {
            supported,
            entity_type: entity.0,
            entity_id: entity.1,
            global_id,
        };
        let bytes = encoded(|b| negotiation.encode(b));
        prop_assert_eq!(AuthNegotiation::decode(&mut bytes.clone())?, negotiation);
    }

    #[test]
    fn commands_round_trip(
        paxos in paxos(),
        fsid in fsid(),
        cmd in vec(text(), 0..3),
        r in any::<i32>(),
        rs in text(),
        data in blob(),
    ) {
        let msg = MMonCommand { paxos, fsid, cmd: cmd.clone() };
        prop_assert_eq!(MMonCommand::decode(&mut msg.to_front())?, msg);
        let ack = MMonCommandAck { paxos, r, rs, cmd, data: data.clone() };
        prop_assert_eq!(MMonCommandAck::decode(&mut ack.to_front(), data)?, ack);
    }

    #[test]
    fn fsid_text_round_trips(fsid in fsid()) {
        prop_assert_eq!(fsid.to_string().parse::<Fsid>()?, fsid);
    }

    #[test]
    fn random_bytes_never_panic(bytes in vec(any::<u8>(), 0..400)) {
        decode_everything(&bytes);
    }

    #[test]
    fn corrupted_monmaps_never_panic(
        map in monmap(),
        flips in vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut front = MMonMap { monmap: map }.to_front().to_vec();
        for (at, value) in flips {
            let i = at.index(front.len());
            front[i] = value;
        }
        decode_everything(&front);
        decode_everything(&front[..cut.index(front.len() + 1)]);
    }
}

#[test]
fn every_truncation_of_an_encoded_monmap_is_an_error() {
    let mut mons = BTreeMap::new();
    let addr = |s: &str| s.parse::<SocketAddr>().expect("addr");
    for (name, port) in [("a", 3300), ("b", 3301)] {
        let info = MonInfo {
            name: name.to_owned(),
            public_addrs: EntityAddrVec(vec![
                EntityAddr::v2(addr(&format!("[::1]:{port}")), 0),
                EntityAddr::v1(addr(&format!("10.0.0.1:{}", port + 3489)), 0),
            ]),
            priority: 1,
            weight: 2,
            crush_loc: [("host".to_owned(), "vm".to_owned())].into(),
        };
        mons.insert(name.to_owned(), info);
    }
    let msg = MMonMap {
        monmap: MonMap {
            epoch: 3,
            mons,
            ranks: vec!["a".into(), "b".into()],
            stretch_marked_down_mons: vec!["b".into()],
            ..MonMap::default()
        },
    };
    let front = msg.to_front();
    assert_eq!(MMonMap::decode(&mut front.clone()), Ok(msg));
    for len in 0..front.len() {
        assert!(MMonMap::decode(&mut &front[..len]).is_err(), "{len}");
    }
}

#[test]
fn fsid_text_rejects_garbage() {
    let fsid: Fsid = "81ddec4e-c08a-4b66-aa79-0ff40fdef78b"
        .parse()
        .expect("fsid");
    assert_eq!(fsid.0[0], 0x81);
    assert_eq!(fsid.to_string(), "81ddec4e-c08a-4b66-aa79-0ff40fdef78b");
    for bad in [
        "",
        "81ddec4e-c08a-4b66-aa79-0ff40fdef78",
        "81ddec4e+c08a-4b66-aa79-0ff40fdef78b",
        "+1ddec4e-c08a-4b66-aa79-0ff40fdef78b",
        "81ddec4e-c08a-4b66-aa79-0ff40fdef7é",
        "81ddec4e-c08a-4b66-aa79--ff40fdef78b",
    ] {
        assert!(
            matches!(bad.parse::<Fsid>(), Err(BodyError::InvalidFsid { .. })),
            "{bad}"
        );
    }
}
