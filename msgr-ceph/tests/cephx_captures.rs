//! Golden tests on a real cephx session over msgr v1 (`data/README.md`): the MAuth rounds with protocol 2, the
//! mon's replies with their cephx payloads, and the monmap, config and commands of a second, cephx-secured cluster.
//! The cephx payloads stay opaque here (the auth crate reads them); what is checked is their framing.

use std::net::SocketAddr;

use msgr_ceph::*;
use msgr_wire::{Message, Side};

mod common;
use common::messages;

const HUNT_CONNECTOR: &[u8] = include_bytes!("data/cephx-hunt-connector.bin");
const HUNT_ACCEPTOR: &[u8] = include_bytes!("data/cephx-hunt-acceptor.bin");
const STATUS_CONNECTOR: &[u8] = include_bytes!("data/cephx-status-connector.bin");
const STATUS_ACCEPTOR: &[u8] = include_bytes!("data/cephx-status-acceptor-head.bin");

const FSID: &str = "1621aeab-f19e-48d8-a3af-45707ea200fc";

fn by_seq(msgs: &[Message], seq: u64) -> &Message {
    msgs.iter()
        .find(|m| m.header.seq == seq)
        .unwrap_or_else(|| panic!("no message with seq {seq}"))
}

fn types(msgs: &[Message]) -> Vec<u16> {
    msgs.iter().map(|m| m.header.ty).collect()
}

#[test]
fn the_client_offers_cephx_then_sends_two_cephx_requests() {
    let sent = messages(Side::Connector, STATUS_CONNECTOR);
    assert_eq!(types(&sent), [17, 17, 17, 15, 15, 15, 50, 50]);
    let first = MAuth::decode(&mut by_seq(&sent, 1).front.clone()).expect("MAuth");
    assert_eq!((first.protocol, first.monmap_epoch), (AUTH_UNKNOWN, 0));
    let negotiation = first.negotiation().expect("negotiation");
    assert_eq!(negotiation.supported, vec![AUTH_CEPHX]);
    assert_eq!(
        (negotiation.entity_type, negotiation.entity_id.as_str()),
        (ENTITY_TYPE_CLIENT, "admin")
    );
    // The main session starts from scratch (global id 0), it does not reuse the hunting connection's 4097.
    assert_eq!(
        negotiation,
        AuthNegotiation {
            supported: vec![AUTH_CEPHX],
            ..AuthNegotiation::none_for_client("admin")
        }
    );
    assert_eq!(negotiation.global_id, 0);

    for (seq, payload_len) in [(2, 36), (3, 165)] {
        let m = by_seq(&sent, seq);
        let auth = MAuth::decode(&mut m.front.clone()).expect("MAuth");
        assert_eq!(auth.paxos, PaxosPrefix::default());
        assert_eq!(
            (auth.protocol, auth.auth_payload.len()),
            (AUTH_CEPHX, payload_len)
        );
        assert_eq!(auth.to_front(), m.front);
    }
}

#[test]
fn the_mon_answers_with_cephx_payloads_and_one_global_id() {
    let received = messages(Side::Acceptor, STATUS_ACCEPTOR);
    assert_eq!(types(&received), [18, 18, 4, 18, 62, 4, 0x704, 41]);
    let mut ids = Vec::new();
    for (seq, bl_len) in [(1, 9), (2, 740), (4, 556)] {
        let m = by_seq(&received, seq);
        let reply = MAuthReply::decode(&mut m.front.clone()).expect("MAuthReply");
        assert_eq!(
            (reply.protocol, reply.result, reply.result_bl.len()),
            (AUTH_CEPHX, 0, bl_len),
            "seq {seq}"
        );
        assert!(reply.result_msg.is_empty());
        assert_eq!(reply.to_front(), m.front);
        ids.push(reply.global_id);
    }
    assert_eq!(ids, [4098, 4098, 4098]);
}

#[test]
fn the_cephx_clusters_monmap_config_and_commands() {
    let received = messages(Side::Acceptor, STATUS_ACCEPTOR);
    let fsid: Fsid = FSID.parse().expect("fsid");
    let mon: SocketAddr = "127.0.0.1:60285".parse().expect("addr");
    for seq in [3, 6] {
        let m = by_seq(&received, seq);
        let map = MMonMap::decode(&mut m.front.clone()).expect("MMonMap");
        assert_eq!(map.to_front(), m.front);
        let map = map.monmap;
        assert_eq!((map.fsid, map.epoch, map.min_mon_release), (fsid, 1, 16));
        let a = map.mon_by_rank(0).expect("rank 0");
        assert_eq!(a.name, "a");
        assert_eq!(a.public_addrs, EntityAddrVec(vec![EntityAddr::v1(mon, 0)]));
    }
    let config = MConfig::decode(&mut by_seq(&received, 5).front.clone()).expect("MConfig");
    assert!(config.config.is_empty());

    let sent = messages(Side::Connector, STATUS_CONNECTOR);
    let status = MMonCommand::decode(&mut by_seq(&sent, 8).front.clone()).expect("MMonCommand");
    assert_eq!(status, MMonCommand::new(fsid, r#"{"prefix": "status"}"#));
    let subscribe = by_seq(&sent, 4);
    let sub = MMonSubscribe::decode(&mut subscribe.front.clone(), subscribe.header.version)
        .expect("MMonSubscribe");
    let names: Vec<&str> = sub.what.keys().map(String::as_str).collect();
    assert_eq!(
        (names, sub.hostname.as_str()),
        (vec!["config", "monmap"], "vm")
    );
}

#[test]
fn the_hunting_connection_is_authenticated_and_then_dropped() {
    let sent = messages(Side::Connector, HUNT_CONNECTOR);
    assert_eq!(types(&sent), [17, 17, 15]);
    let received = messages(Side::Acceptor, HUNT_ACCEPTOR);
    assert_eq!(types(&received), [18, 18, 4, 62, 4]);
    let reply = MAuthReply::decode(&mut by_seq(&received, 2).front.clone()).expect("MAuthReply");
    assert_eq!(
        (reply.protocol, reply.result, reply.global_id),
        (AUTH_CEPHX, 0, 4097)
    );
}
