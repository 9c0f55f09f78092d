//! Golden tests on the real Pacific captures (`tests/data/`, `msgr-wire/tests/data/`; what each holds:
//! `/work/shared/vectors/ceph-pacific-v1/README.md`): every frame is cut out by msgr-wire's `StreamDecoder`, CRCs
//! verified, and every message of a type this crate knows is decoded, checked field by field, and re-encoded byte
//! for byte.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use bytes::Bytes;
use msgr_ceph::*;
use msgr_wire::{Message, Side};

mod common;
use common::{messages, msg};

const CAPTURE_FSID: &str = "11111111-2222-3333-4444-555555555555";

const STATUS_CONNECTOR: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../msgr-wire/tests/data/status-connector.bin"
));
const STATUS_ACCEPTOR: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../msgr-wire/tests/data/status-acceptor.bin"
));
const CONFIGKEY_CONNECTOR: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../msgr-wire/tests/data/configkey-set-connector.bin"
));
const CONFIGKEY_ACCEPTOR: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../msgr-wire/tests/data/configkey-set-acceptor.bin"
));
const HUNT_CONNECTOR: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../msgr-wire/tests/data/hunt-connector.bin"
));
const HUNT_ACCEPTOR: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../msgr-wire/tests/data/hunt-acceptor.bin"
));

/// The six captures: (name, side, bytes).
fn captures() -> [(&'static str, Side, &'static [u8]); 6] {
    [
        ("hunt-connector", Side::Connector, HUNT_CONNECTOR),
        ("hunt-acceptor", Side::Acceptor, HUNT_ACCEPTOR),
        ("status-connector", Side::Connector, STATUS_CONNECTOR),
        ("status-acceptor", Side::Acceptor, STATUS_ACCEPTOR),
        (
            "configkey-set-connector",
            Side::Connector,
            CONFIGKEY_CONNECTOR,
        ),
        ("configkey-set-acceptor", Side::Acceptor, CONFIGKEY_ACCEPTOR),
    ]
}

fn sent(seq: u64) -> Message {
    msg(Side::Connector, STATUS_CONNECTOR, seq)
}

fn received(seq: u64) -> Message {
    msg(Side::Acceptor, STATUS_ACCEPTOR, seq)
}

fn fsid() -> Fsid {
    CAPTURE_FSID.parse().expect("valid fsid")
}

/// Decodes one captured message by type, asserts its header version is ours and that it re-encodes to the
/// captured front; returns the type name, or `None` for a type this crate does not cover.
fn decode_and_reencode(m: &Message) -> Option<&'static str> {
    let (ty, version) = (m.header.ty, m.header.version);
    let front = &mut m.front.clone();
    let (name, expected_version, reencoded) = match ty {
        MPing::TYPE => (
            "MPing",
            MPing::VERSION,
            MPing::decode(front).ok()?.to_front(),
        ),
        MMonMap::TYPE => {
            let x = MMonMap::decode(front).expect("MMonMap");
            ("MMonMap", MMonMap::VERSION, x.to_front())
        }
        MMonSubscribe::TYPE => {
            let x = MMonSubscribe::decode(front, version).expect("MMonSubscribe");
            ("MMonSubscribe", MMonSubscribe::VERSION, x.to_front())
        }
        MMonSubscribeAck::TYPE => {
            let x = MMonSubscribeAck::decode(front).expect("MMonSubscribeAck");
            ("MMonSubscribeAck", MMonSubscribeAck::VERSION, x.to_front())
        }
        MAuth::TYPE => {
            let x = MAuth::decode(front).expect("MAuth");
            ("MAuth", MAuth::VERSION, x.to_front())
        }
        MAuthReply::TYPE => {
            let x = MAuthReply::decode(front).expect("MAuthReply");
            ("MAuthReply", MAuthReply::VERSION, x.to_front())
        }
        MMonGetVersion::TYPE => {
            let x = MMonGetVersion::decode(front, version).expect("MMonGetVersion");
            ("MMonGetVersion", MMonGetVersion::VERSION, x.to_front())
        }
        MMonGetVersionReply::TYPE => {
            let x = MMonGetVersionReply::decode(front, version).expect("MMonGetVersionReply");
            (
                "MMonGetVersionReply",
                MMonGetVersionReply::VERSION,
                x.to_front(),
            )
        }
        MMonCommand::TYPE => {
            let x = MMonCommand::decode(front).expect("MMonCommand");
            ("MMonCommand", MMonCommand::VERSION, x.to_front())
        }
        MMonCommandAck::TYPE => {
            let x = MMonCommandAck::decode(front, m.data.clone()).expect("MMonCommandAck");
            assert_eq!(x.data, m.data);
            ("MMonCommandAck", MMonCommandAck::VERSION, x.to_front())
        }
        MConfig::TYPE => {
            let x = MConfig::decode(front).expect("MConfig");
            ("MConfig", MConfig::VERSION, x.to_front())
        }
        _ => return None,
    };
    assert_eq!(version, expected_version, "{name} header version");
    assert_eq!(reencoded, m.front, "{name} seq {} re-encodes", m.header.seq);
    Some(name)
}

#[test]
fn every_known_message_of_every_capture_decodes_and_reencodes_byte_for_byte() {
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    let mut skipped = Vec::new();
    for (name, side, stream) in captures() {
        for m in messages(side, stream) {
            match decode_and_reencode(&m) {
                Some(ty) => *seen.entry(ty).or_default() += 1,
                None => skipped.push((name, m.header.ty)),
            }
        }
    }
    let expected: BTreeMap<&str, usize> = [
        ("MAuth", 3),
        ("MAuthReply", 3),
        ("MConfig", 3),
        ("MMonCommand", 4),
        ("MMonCommandAck", 4),
        ("MMonMap", 6),
        ("MMonSubscribe", 7),
    ]
    .into_iter()
    .collect();
    assert_eq!(seen, expected);
    // The mgrmap (0x704) and osdmap (41) of the two main sessions are outside this crate.
    let mut skipped_types: Vec<u16> = skipped.iter().map(|&(_, ty)| ty).collect();
    skipped_types.sort_unstable();
    assert_eq!(skipped_types, vec![41, 41, 0x704, 0x704]);
}

#[test]
fn mauth_initial_none_is_byte_for_byte_what_ceph_sent() {
    let captured = sent(1);
    assert_eq!(
        (captured.header.ty, captured.header.version),
        (MAuth::TYPE, MAuth::VERSION)
    );
    assert_eq!(MAuth::initial_none("admin").to_front(), captured.front);
}

#[test]
fn mauth_decodes_the_captured_front() {
    let msg = MAuth::decode(&mut sent(1).front).expect("MAuth");
    assert_eq!(msg.paxos, PaxosPrefix::default());
    assert_eq!((msg.protocol, msg.monmap_epoch), (AUTH_UNKNOWN, 0));
    let negotiation = msg.negotiation().expect("negotiation");
    assert_eq!(negotiation, AuthNegotiation::none_for_client("admin"));
    assert_eq!(negotiation.supported, vec![AUTH_NONE]);
    assert_eq!(negotiation.entity_type, ENTITY_TYPE_CLIENT);
}

#[test]
fn mauth_reply_decodes_the_captured_front() {
    let captured = received(1);
    assert_eq!(captured.header.ty, MAuthReply::TYPE);
    let reply = MAuthReply::decode(&mut captured.front.clone()).expect("MAuthReply");
    assert_eq!(
        (reply.protocol, reply.result, reply.global_id),
        (AUTH_NONE, 0, 4104)
    );
    assert!(reply.result_bl.is_empty() && reply.result_msg.is_empty());
    assert_eq!(reply.to_front(), captured.front);
}

#[test]
fn mauth_reply_matches_the_spec_vector() {
    let front = [
        1, 0, 0, 0, 0, 0, 0, 0, 0x1b, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    let reply = MAuthReply::decode(&mut &front[..]).expect("MAuthReply");
    assert_eq!((reply.protocol, reply.global_id), (AUTH_NONE, 4123));
}

#[test]
fn monmap_follows_the_captured_cluster() {
    let captured = received(2);
    assert_eq!(
        (
            captured.header.ty,
            captured.header.version,
            captured.front.len()
        ),
        (MMonMap::TYPE, MMonMap::VERSION, 170)
    );
    let map = MMonMap::decode(&mut captured.front.clone())
        .expect("MMonMap")
        .monmap;
    assert_eq!(map.fsid, fsid());
    assert_eq!(map.fsid.to_string(), CAPTURE_FSID);
    assert_eq!(map.epoch, 1);
    assert_eq!(map.created, map.last_changed);
    assert_eq!(map.created.sec, 0x6b09_2194);
    assert_eq!((map.persistent_features, map.optional_features), (0xff, 0));
    assert_eq!(map.ranks, vec!["a".to_owned()]);
    assert_eq!(map.min_mon_release, 16, "pacific");
    assert_eq!(map.strategy, ELECTION_CLASSIC);
    assert!(map.removed_ranks.is_empty() && map.disallowed_leaders.is_empty());
    assert!(!map.stretch_mode_enabled && map.tiebreaker_mon.is_empty());
    assert_eq!(map.mons.len(), 1);
    let mon = map.mon_by_rank(0).expect("rank 0");
    assert_eq!(mon.name, "a");
    assert_eq!((mon.priority, mon.weight), (0, 0));
    assert!(mon.crush_loc.is_empty());
    let addr: SocketAddr = "127.0.0.1:6789".parse().expect("addr");
    assert_eq!(
        mon.public_addrs,
        EntityAddrVec(vec![EntityAddr::v1(addr, 0)])
    );
    assert_eq!(
        mon.public_addrs
            .of_type(ADDR_TYPE_LEGACY)
            .and_then(|a| a.addr),
        Some(addr)
    );
    assert_eq!(mon.public_addrs.of_type(ADDR_TYPE_MSGR2), None);
    // The mon sends the same map twice (after auth, then to the monmap subscription).
    assert_eq!(received(4).front, captured.front);
}

#[test]
fn subscriptions_are_what_ceph_status_asked_for() {
    let first = sent(2);
    assert_eq!(
        (
            first.header.ty,
            first.header.version,
            first.header.compat_version
        ),
        (
            MMonSubscribe::TYPE,
            MMonSubscribe::VERSION,
            MMonSubscribe::COMPAT_VERSION
        )
    );
    let sub = MMonSubscribe::decode(&mut first.front.clone(), first.header.version).expect("sub");
    let names: Vec<&str> = sub.what.keys().map(String::as_str).collect();
    assert_eq!(names, ["config", "monmap"]);
    assert!(sub.what.values().all(|i| *i == SubscribeItem::default()));
    assert_eq!(sub.hostname, "vm");

    let mgrmap = MMonSubscribe::decode(&mut sent(3).front, 3).expect("sub");
    assert_eq!(mgrmap.what.get("mgrmap"), Some(&SubscribeItem::default()));
    let osdmap = MMonSubscribe::decode(&mut sent(4).front, 3).expect("sub");
    let item = osdmap.what.get("osdmap").copied().expect("osdmap");
    assert_eq!(item.start, 0);
    assert!(item.onetime());

    let mut built = MMonSubscribe {
        hostname: "vm".to_owned(),
        ..MMonSubscribe::default()
    };
    for name in ["monmap", "config"] {
        built.what.insert(name.to_owned(), SubscribeItem::default());
    }
    assert_eq!(built.to_front(), first.front);
}

#[test]
fn config_is_the_empty_map_the_mon_sent() {
    let captured = received(3);
    assert_eq!(
        (
            captured.header.ty,
            captured.header.version,
            &captured.front[..]
        ),
        (MConfig::TYPE, MConfig::VERSION, &[0u8, 0, 0, 0][..])
    );
    let config = MConfig::decode(&mut captured.front.clone()).expect("MConfig");
    assert!(config.config.is_empty());
    assert_eq!(MConfig::default().to_front(), captured.front);
}

#[test]
fn mon_commands_are_byte_for_byte_what_ceph_sent() {
    let describe = sent(5);
    assert_eq!(
        (
            describe.header.ty,
            describe.header.tid,
            describe.front.len()
        ),
        (MMonCommand::TYPE, 1, 80)
    );
    let status = sent(6);
    assert_eq!(
        (status.header.ty, status.header.tid, status.front.len()),
        (MMonCommand::TYPE, 2, 62)
    );
    assert_eq!(
        MMonCommand::new(fsid(), r#"{"prefix": "get_command_descriptions"}"#).to_front(),
        describe.front
    );
    assert_eq!(
        MMonCommand::new(fsid(), r#"{"prefix": "status"}"#).to_front(),
        status.front
    );
}

#[test]
fn mon_command_layout_is_prefix_fsid_then_strings() {
    let front = sent(6).front;
    assert_eq!(&front[18..34], &fsid().0);
    assert_eq!(&front[34..42], &[1, 0, 0, 0, 20, 0, 0, 0]);
    let msg = MMonCommand::decode(&mut front.clone()).expect("MMonCommand");
    assert_eq!(msg.fsid.to_string(), CAPTURE_FSID);
    assert_eq!(msg.cmd, vec![r#"{"prefix": "status"}"#.to_owned()]);
}

#[test]
fn mon_command_input_travels_in_the_data_segment() {
    let set = msg(Side::Connector, CONFIGKEY_CONNECTOR, 6);
    let decoded = MMonCommand::decode(&mut set.front.clone()).expect("MMonCommand");
    assert_eq!(
        decoded.cmd,
        vec![r#"{"prefix": "config-key set", "key": "big"}"#.to_owned()]
    );
    assert_eq!(set.data.len(), 48000);
}

#[test]
fn mon_command_ack_carries_output_in_data() {
    let captured = received(8);
    assert_eq!(
        (captured.header.ty, captured.header.tid),
        (MMonCommandAck::TYPE, 2)
    );
    let ack = MMonCommandAck::decode(&mut captured.front.clone(), captured.data.clone())
        .expect("MMonCommandAck");
    assert_eq!((ack.r, ack.rs.as_str()), (0, ""));
    assert_eq!(ack.cmd, vec![r#"{"prefix": "status"}"#.to_owned()]);
    let output = std::str::from_utf8(&ack.data).expect("utf-8 output");
    assert!(
        output.contains(&format!("id:     {CAPTURE_FSID}")),
        "{output}"
    );
    assert_eq!(ack.to_front(), captured.front);

    let descriptions = received(7);
    let ack = MMonCommandAck::decode(&mut descriptions.front.clone(), descriptions.data.clone())
        .expect("MMonCommandAck");
    assert_eq!(ack.data.len(), 73271);
    assert!(ack.data.starts_with(br#"{"cmd000":"#));
}

#[test]
fn mon_command_ack_with_status_string_and_paxos_version() {
    let captured = msg(Side::Acceptor, CONFIGKEY_ACCEPTOR, 8);
    let ack = MMonCommandAck::decode(&mut captured.front.clone(), captured.data.clone())
        .expect("MMonCommandAck");
    assert_eq!(
        (ack.paxos.version, ack.r, ack.rs.as_str()),
        (2, 0, "set big")
    );
    assert!(ack.data.is_empty());
}

#[test]
fn ping_front_is_empty() {
    assert!(MPing::default().to_front().is_empty());
    let reply = MPing::decode(&mut &b"\x02\x00\x00\x00{}"[..]).expect("MPing");
    assert_eq!(reply.front.len(), 6);
    assert_eq!(reply.text().expect("text"), "{}");
    assert!(MPing::default().text().is_err());
}

#[test]
fn every_truncation_of_every_captured_front_is_an_error() {
    let mut fronts = 0;
    for (_, side, stream) in captures() {
        for m in messages(side, stream) {
            let (ty, version) = (m.header.ty, m.header.version);
            if decode_and_reencode(&m).is_none() || ty == MPing::TYPE {
                continue;
            }
            fronts += 1;
            for len in 0..m.front.len() {
                let cut = &mut Bytes::copy_from_slice(&m.front[..len]);
                let failed = match ty {
                    MMonMap::TYPE => MMonMap::decode(cut).is_err(),
                    MMonSubscribe::TYPE => MMonSubscribe::decode(cut, version).is_err(),
                    MAuth::TYPE => MAuth::decode(cut).is_err(),
                    MAuthReply::TYPE => MAuthReply::decode(cut).is_err(),
                    MMonCommand::TYPE => MMonCommand::decode(cut).is_err(),
                    MMonCommandAck::TYPE => MMonCommandAck::decode(cut, Bytes::new()).is_err(),
                    MConfig::TYPE => MConfig::decode(cut).is_err(),
                    other => panic!("type {other} not covered"),
                };
                assert!(failed, "type {ty}: a {len}-byte prefix decoded");
            }
        }
    }
    assert_eq!(fronts, 30);
}

#[test]
fn a_trailing_byte_after_a_captured_front_is_refused() {
    let mut long = sent(1).front.to_vec();
    long.push(0);
    assert_eq!(
        MAuth::decode(&mut &long[..]),
        Err(BodyError::TrailingBytes { remaining: 1 })
    );
    let mut long = received(2).front.to_vec();
    long.push(0);
    assert_eq!(
        MMonMap::decode(&mut &long[..]),
        Err(BodyError::TrailingBytes { remaining: 1 })
    );
}

#[test]
fn every_byte_of_every_captured_front_replaced_decodes_or_errs_without_panic() {
    let mut cases = 0;
    for (_, side, stream) in captures() {
        for m in messages(side, stream) {
            if decode_and_reencode(&m).is_none() || m.front.len() > 1024 {
                continue;
            }
            for i in 0..m.front.len() {
                for value in [0x00, 0xff, m.front[i] ^ 0x01, m.front[i] ^ 0x80] {
                    let mut front = m.front.to_vec();
                    front[i] = value;
                    let _ = redecode(m.header.ty, m.header.version, Bytes::from(front));
                    cases += 1;
                }
            }
        }
    }
    assert!(cases > 4 * 1500, "{cases}");
}

/// Decodes `front` as the type `ty`; the result only matters for not panicking.
fn redecode(ty: u16, version: u16, mut front: Bytes) -> Result<(), BodyError> {
    match ty {
        MMonMap::TYPE => MMonMap::decode(&mut front).map(drop),
        MMonSubscribe::TYPE => MMonSubscribe::decode(&mut front, version).map(drop),
        MAuth::TYPE => MAuth::decode(&mut front)
            .and_then(|m| m.negotiation())
            .map(drop),
        MAuthReply::TYPE => MAuthReply::decode(&mut front).map(drop),
        MMonCommand::TYPE => MMonCommand::decode(&mut front).map(drop),
        MMonCommandAck::TYPE => MMonCommandAck::decode(&mut front, Bytes::new()).map(drop),
        MConfig::TYPE => MConfig::decode(&mut front).map(drop),
        _ => Ok(()),
    }
}
