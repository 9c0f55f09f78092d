//! The real Pacific captures decode to exactly the rows of their README, with every CRC
#![allow(clippy::unwrap_used)]
//! valid, and re-encode to the same bytes.

mod common;

use common::{decode_all, encode_items, row, vectors};
use msgr_wire::{CrcFlags, FooterKind, Frame, Item, Side};

fn expected(name: &str) -> &'static str {
    match name {
        "hunt-connector" => {
            "connect 0x3f01cfbdfffdffff 8 1 0 15 0 0 0
seq-reply 0
keepalive2 (1795760655, 372296982)
msg 1 0 17 127 1 60 0 0 0 8 1 1
msg 2 0 15 127 3 48 0 0 0 8 1 1"
        }
        "hunt-acceptor" => {
            "connect_reply 13 0x3f01cfbdfffdffff 7 1 15 0 1
seq 0
keepalive2_ack (1795760655, 372296982)
msg 1 0 18 196 1 24 0 0 0 1 1 1
msg 2 0 4 196 1 170 0 0 0 1 1 1
msg 3 0 62 196 1 4 0 0 0 1 1 1
msg 4 0 4 196 1 170 0 0 0 1 1 1"
        }
        "status-connector" => {
            "connect 0x3f01cfbdfffdffff 8 1 0 15 0 0 1
seq-reply 0
keepalive2 (1795760655, 374643132)
msg 1 0 17 127 1 60 0 0 0 8 1 1
msg 2 0 15 127 3 48 0 0 0 8 1 1
msg 3 0 15 127 3 29 0 0 0 8 1 1
msg 4 0 15 127 3 29 0 0 0 8 1 1
msg 5 1 50 127 1 80 0 0 0 8 1 1
msg 6 2 50 127 1 62 0 0 0 8 1 1"
        }
        "status-acceptor" => {
            "connect_reply 13 0x3f01cfbdfffdffff 8 1 15 0 1
seq 0
keepalive2_ack (1795760655, 374643132)
msg 1 0 18 196 1 24 0 0 0 1 1 1
msg 2 0 4 196 1 170 0 0 0 1 1 1
msg 3 0 62 196 1 4 0 0 0 1 1 1
msg 4 0 4 196 1 170 0 0 0 1 1 1
msg 5 0 1796 196 1 495 0 0 0 1 1 1
msg 6 0 41 196 4 690 0 0 0 1 3 1
msg 7 1 51 196 1 72 0 73271 0 1 1 1
msg 8 2 51 196 1 54 0 367 0 1 1 1"
        }
        "configkey-set-connector" => {
            "connect 0x3f01cfbdfffdffff 8 1 0 15 0 0 1
seq-reply 0
keepalive2 (1795760669, 497248435)
msg 1 0 17 127 1 60 0 0 0 8 1 1
msg 2 0 15 127 3 48 0 0 0 8 1 1
msg 3 0 15 127 3 29 0 0 0 8 1 1
msg 4 0 15 127 3 29 0 0 0 8 1 1
msg 5 1 50 127 1 80 0 0 0 8 1 1
msg 6 2 50 127 1 84 0 48000 0 8 1 1"
        }
        "configkey-set-acceptor" => {
            "connect_reply 13 0x3f01cfbdfffdffff 14 1 15 0 1
seq 0
keepalive2_ack (1795760669, 497248435)
msg 1 0 18 196 1 24 0 0 0 1 1 1
msg 2 0 4 196 1 170 0 0 0 1 1 1
msg 3 0 62 196 1 4 0 0 0 1 1 1
msg 4 0 4 196 1 170 0 0 0 1 1 1
msg 5 0 1796 196 1 495 0 0 0 1 1 1
msg 6 0 41 196 4 690 0 0 0 1 3 1
msg 7 1 51 196 1 72 0 73271 0 1 1 1
msg 8 2 51 196 1 83 0 0 0 1 1 1"
        }
        other => panic!("no rows for {other}"),
    }
}

#[test]
fn every_vector_decodes_to_its_readme_rows() {
    for (name, side, bytes) in vectors() {
        let items = decode_all(side, bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        let rows: Vec<String> = items.iter().filter_map(|l| row(side, &l.item)).collect();
        assert_eq!(rows.join("\n"), expected(name), "{name}");
        // Banner and addresses come first: one address from the connector, two from the acceptor.
        let addrs = items
            .iter()
            .filter(|l| matches!(l.item, Item::Addr(_)))
            .count();
        assert_eq!(items[0].item, Item::Banner, "{name}");
        assert_eq!(addrs, if side == Side::Acceptor { 2 } else { 1 }, "{name}");
        assert_eq!(
            items.last().map(|l| l.end),
            Some(bytes.len() as u64),
            "{name}"
        );
    }
}

#[test]
fn every_crc_verifies() {
    for (name, side, bytes) in vectors() {
        for l in decode_all(side, bytes).unwrap() {
            if let Item::Frame(Frame::Msg(m)) = &l.item {
                m.verify_crcs(CrcFlags::default())
                    .unwrap_or_else(|e| panic!("{name} seq {}: {e}", m.header.seq));
                assert!(m.footer.is_complete() && !m.footer.is_nocrc());
            }
        }
    }
}

#[test]
fn re_encoding_gives_the_original_bytes() {
    for (name, side, bytes) in vectors() {
        let items = decode_all(side, bytes).unwrap();
        let again = encode_items(items.iter().map(|l| &l.item), FooterKind::New);
        assert!(again == bytes, "{name}: re-encoding differs");
    }
}

#[test]
fn addresses_of_the_captures() {
    let (_, side, bytes) = vectors()[1];
    let items = decode_all(side, bytes).unwrap();
    let addrs: Vec<String> = items
        .iter()
        .filter_map(|l| match &l.item {
            Item::Addr(a) => Some(a.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(addrs[0], "v1:127.0.0.1:6789/0");
    assert!(addrs[1].starts_with("v1:127.0.0.1:"), "{}", addrs[1]);
}

#[test]
fn first_mauth_frame_is_the_spec_vector() {
    let (_, side, bytes) = vectors()[2];
    let items = decode_all(side, bytes).unwrap();
    let mauth = items
        .iter()
        .find(|l| matches!(&l.item, Item::Frame(Frame::Msg(m)) if m.header.ty == 17))
        .unwrap();
    assert_eq!(mauth.end - mauth.start, 135);
    let frame = &bytes[mauth.start as usize..mauth.end as usize];
    assert_eq!(&frame[50..54], &[0x69, 0x4b, 0xab, 0xe2]);
}
