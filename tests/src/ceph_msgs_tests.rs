//! Golden-byte tests for `ceph_msgs`, against fronts sliced from the real captures in `tests/data/`.

use super::*;
use crate::capture::{
    acceptor_frames, connector_frames, msg_by_seq, CONFIGKEY_SET_ACCEPTOR, CONFIGKEY_SET_CONNECTOR,
    STATUS_ACCEPTOR, STATUS_CONNECTOR,
};

const CAPTURE_FSID: &str = "11111111-2222-3333-4444-555555555555";

fn sent(seq: u64) -> crate::capture::MsgFrame {
    msg_by_seq(&connector_frames(STATUS_CONNECTOR).unwrap(), seq)
        .unwrap()
        .clone()
}

fn received(seq: u64) -> crate::capture::MsgFrame {
    msg_by_seq(&acceptor_frames(STATUS_ACCEPTOR).unwrap(), seq)
        .unwrap()
        .clone()
}

#[test]
fn mauth_initial_none_is_byte_for_byte_what_ceph_sent() {
    let captured = sent(1);
    assert_eq!(
        (captured.msg_type(), captured.version()),
        (MAuth::TYPE, MAuth::VERSION)
    );
    assert_eq!(MAuth::initial_none("admin").to_front(), captured.front);
}

#[test]
fn mauth_decodes_the_captured_front() {
    let msg = MAuth::decode(&mut sent(1).front).unwrap();
    assert_eq!(msg.paxos, PaxosPrefix::default());
    assert_eq!((msg.protocol, msg.monmap_epoch), (AUTH_UNKNOWN, 0));
    let negotiation = msg.negotiation().unwrap();
    assert_eq!(negotiation, AuthNegotiation::none_for_client("admin"));
    assert_eq!(negotiation.supported, vec![AUTH_NONE]);
}

#[test]
fn mauth_reply_decodes_the_captured_front() {
    let captured = received(1);
    assert_eq!(captured.msg_type(), MAuthReply::TYPE);
    let reply = MAuthReply::decode(&mut captured.front.clone()).unwrap();
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
    let reply = MAuthReply::decode(&mut &front[..]).unwrap();
    assert_eq!(reply.global_id, 4123);
}

#[test]
fn mon_commands_are_byte_for_byte_what_ceph_sent() {
    let fsid: Fsid = CAPTURE_FSID.parse().unwrap();
    let describe = sent(5);
    assert_eq!(
        (describe.msg_type(), describe.tid(), describe.front.len()),
        (MMonCommand::TYPE, 1, 80)
    );
    let status = sent(6);
    assert_eq!(
        (status.msg_type(), status.tid(), status.front.len()),
        (MMonCommand::TYPE, 2, 62)
    );
    assert_eq!(
        MMonCommand::new(fsid, r#"{"prefix": "get_command_descriptions"}"#).to_front(),
        describe.front
    );
    assert_eq!(
        MMonCommand::new(fsid, r#"{"prefix": "status"}"#).to_front(),
        status.front
    );
}

#[test]
fn mon_command_layout_is_prefix_fsid_then_strings() {
    let front = sent(6).front;
    assert_eq!(
        &front[18..34],
        &[
            0x11, 0x11, 0x11, 0x11, 0x22, 0x22, 0x33, 0x33, 0x44, 0x44, 0x55, 0x55, 0x55, 0x55,
            0x55, 0x55
        ]
    );
    assert_eq!(&front[34..42], &[1, 0, 0, 0, 20, 0, 0, 0]);
    let msg = MMonCommand::decode(&mut front.clone()).unwrap();
    assert_eq!(msg.fsid.to_string(), CAPTURE_FSID);
    assert_eq!(msg.cmd, vec![r#"{"prefix": "status"}"#.to_owned()]);
}

#[test]
fn mon_command_input_travels_in_the_data_segment() {
    let frames = connector_frames(CONFIGKEY_SET_CONNECTOR).unwrap();
    let set = msg_by_seq(&frames, 6).unwrap();
    let msg = MMonCommand::decode(&mut set.front.clone()).unwrap();
    assert_eq!(
        msg.cmd,
        vec![r#"{"prefix": "config-key set", "key": "big"}"#.to_owned()]
    );
    assert_eq!(set.data.len(), 48000);
}

#[test]
fn mon_command_ack_carries_output_in_data() {
    let captured = received(8);
    assert_eq!(
        (captured.msg_type(), captured.tid()),
        (MMonCommandAck::TYPE, 2)
    );
    let ack = MMonCommandAck::decode(&mut captured.front.clone(), captured.data.clone()).unwrap();
    assert_eq!((ack.r, ack.rs.as_str()), (0, ""));
    assert_eq!(ack.cmd, vec![r#"{"prefix": "status"}"#.to_owned()]);
    let output = std::str::from_utf8(&ack.data).unwrap();
    assert!(
        output.contains(&format!("id:     {CAPTURE_FSID}")),
        "{output}"
    );
    assert_eq!(ack.to_front(), captured.front);

    let descriptions = received(7);
    let ack =
        MMonCommandAck::decode(&mut descriptions.front.clone(), descriptions.data.clone()).unwrap();
    assert_eq!(ack.data.len(), 73271);
    assert!(ack.data.starts_with(br#"{"cmd000":"#));
}

#[test]
fn mon_command_ack_with_status_string_and_paxos_version() {
    let frames = acceptor_frames(CONFIGKEY_SET_ACCEPTOR).unwrap();
    let captured = msg_by_seq(&frames, 8).unwrap();
    let ack = MMonCommandAck::decode(&mut captured.front.clone(), captured.data.clone()).unwrap();
    assert_eq!(
        (ack.paxos.version, ack.r, ack.rs.as_str()),
        (2, 0, "set big")
    );
    assert!(ack.data.is_empty());
}

#[test]
fn ping_front_is_empty() {
    assert!(MPing::default().to_front().is_empty());
    let reply = MPing::decode(&mut &b"\x02\x00\x00\x00{}"[..]).unwrap();
    assert_eq!(reply.front.len(), 6);
    assert_eq!(reply.text().unwrap(), "{}");
    assert!(MPing::default().text().is_err());
}

#[test]
fn fsid_text_round_trips_and_rejects_garbage() {
    let fsid: Fsid = "81ddec4e-c08a-4b66-aa79-0ff40fdef78b".parse().unwrap();
    assert_eq!(fsid.0[0], 0x81);
    assert_eq!(fsid.to_string(), "81ddec4e-c08a-4b66-aa79-0ff40fdef78b");
    for bad in [
        "",
        "81ddec4e-c08a-4b66-aa79-0ff40fdef78",
        "81ddec4e+c08a-4b66-aa79-0ff40fdef78b",
        "+1ddec4e-c08a-4b66-aa79-0ff40fdef78b",
    ] {
        assert!(bad.parse::<Fsid>().is_err(), "{bad}");
    }
}

#[test]
fn truncated_and_trailing_fronts_are_errors() {
    let front = sent(1).front;
    for len in 0..front.len() {
        assert!(
            MAuth::decode(&mut &front[..len]).is_err(),
            "prefix of {len} bytes"
        );
    }
    let mut long = front.to_vec();
    long.push(0);
    assert_eq!(
        MAuth::decode(&mut &long[..]),
        Err(BodyError::TrailingBytes { remaining: 1 })
    );
    let huge_count = [0u8; 18]
        .iter()
        .chain(&[0u8; 16])
        .chain(&[0xff, 0xff, 0xff, 0xff])
        .copied()
        .collect::<Vec<_>>();
    assert!(matches!(
        MMonCommand::decode(&mut &huge_count[..]),
        Err(BodyError::Truncated { .. })
    ));
}
