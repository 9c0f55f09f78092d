//! Versioned layouts handled as Ceph does: `ENCODE_START` compat above ours refused, the trailing fields of a newer
//! version skipped, older versions read with their defaults; header-version-dependent fronts; hostile lengths and
//! counts refused before anything is allocated.

use std::net::SocketAddr;

use bytes::{BufMut, Bytes, BytesMut};
use msgr_ceph::*;

fn encoded(encode: impl FnOnce(&mut BytesMut)) -> Vec<u8> {
    let mut buf = BytesMut::new();
    encode(&mut buf);
    buf.to_vec()
}

fn one_mon_map() -> MonMap {
    let addr: SocketAddr = "127.0.0.1:6789".parse().expect("addr");
    let info = MonInfo {
        name: "a".into(),
        public_addrs: EntityAddrVec(vec![EntityAddr::v1(addr, 0)]),
        ..MonInfo::default()
    };
    MonMap {
        fsid: "11111111-2222-3333-4444-555555555555"
            .parse()
            .expect("fsid"),
        epoch: 7,
        mons: [("a".to_owned(), info)].into(),
        ranks: vec!["a".into()],
        min_mon_release: 16,
        strategy: ELECTION_CLASSIC,
        ..MonMap::default()
    }
}

/// Rewrites the `ENCODE_START` header at the start of `bytes`: version, compat, and `extra` bytes appended to
/// the body (its length updated).
fn restamp(mut bytes: Vec<u8>, version: u8, compat: u8, extra: &[u8]) -> Vec<u8> {
    bytes[0] = version;
    bytes[1] = compat;
    let len = u32::from_le_bytes([bytes[2], bytes[3], bytes[4], bytes[5]]) as usize + extra.len();
    bytes[2..6].copy_from_slice(&(len as u32).to_le_bytes());
    bytes.extend_from_slice(extra);
    bytes
}

#[test]
fn a_monmap_whose_compat_is_above_ours_is_refused() {
    let bytes = restamp(encoded(|b| one_mon_map().encode(b)), 10, 10, &[]);
    assert_eq!(
        MonMap::decode(&mut &bytes[..]),
        Err(BodyError::IncompatibleVersion {
            field: "monmap",
            compat: 10,
            ours: 9
        })
    );
}

#[test]
fn a_newer_monmap_with_compat_we_know_is_read_and_its_new_fields_skipped() {
    let map = one_mon_map();
    let bytes = restamp(encoded(|b| map.encode(b)), 12, 6, b"future fields");
    let mut rest = &bytes[..];
    assert_eq!(MonMap::decode(&mut rest), Ok(map));
    assert!(rest.is_empty(), "the whole body was consumed");
}

#[test]
fn an_older_monmap_reads_with_defaults_and_a_pre_luminous_one_is_refused() {
    let map = one_mon_map();
    let v9 = encoded(|b| map.encode(b));
    // Version 8 ends before the stretch fields: bool + empty string + empty set = 9 bytes.
    let mut v8 = restamp(v9.clone(), 8, 6, &[]);
    v8.truncate(v8.len() - 9);
    let len = (v8.len() - 6) as u32;
    v8[2..6].copy_from_slice(&len.to_le_bytes());
    assert_eq!(MonMap::decode(&mut &v8[..]), Ok(map.clone()));
    // Version 6: no min_mon_release, no election fields (1 + 4 + 1 + 4 bytes less again).
    let mut v6 = restamp(v8, 6, 6, &[]);
    v6.truncate(v6.len() - 10);
    let len = (v6.len() - 6) as u32;
    v6[2..6].copy_from_slice(&len.to_le_bytes());
    let old = MonMap::decode(&mut &v6[..]).expect("v6");
    assert_eq!((old.min_mon_release, old.strategy), (0, ELECTION_CLASSIC));
    assert_eq!(
        (old.epoch, &old.ranks, &old.mons),
        (7, &map.ranks, &map.mons)
    );
    for version in [1, 2, 5] {
        let old = restamp(v9.clone(), version, 1, &[]);
        assert_eq!(
            MonMap::decode(&mut &old[..]),
            Err(BodyError::UnsupportedVersion {
                field: "monmap",
                version
            })
        );
    }
}

#[test]
fn a_newer_mon_info_is_read_and_its_time_added_skipped() {
    let info = one_mon_map().mons["a"].clone();
    let v6 = restamp(encoded(|b| info.encode(b)), 6, 1, &[1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(MonInfo::decode(&mut &v6[..]), Ok(info.clone()));
    let incompatible = restamp(encoded(|b| info.encode(b)), 7, 6, &[]);
    assert_eq!(
        MonInfo::decode(&mut &incompatible[..]),
        Err(BodyError::IncompatibleVersion {
            field: "mon_info_t",
            compat: 6,
            ours: 5
        })
    );
}

#[test]
fn a_struct_length_beyond_the_input_is_truncation() {
    let mut bytes = encoded(|b| one_mon_map().encode(b));
    bytes[2..6].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        MonMap::decode(&mut &bytes[..]),
        Err(BodyError::Truncated {
            field: "monmap",
            needed: 0xffff_ffff,
            ..
        })
    ));
}

#[test]
fn legacy_and_single_addresses_decode_and_bad_markers_are_refused() {
    // Marker 0: the 136-byte legacy entity_addr_t with its family big-endian.
    let mut legacy = vec![0u8, 0, 0, 0];
    legacy.put_u32_le(42);
    legacy.put_u16(2); // AF_INET, big-endian
    legacy.put_u16(6789); // port, big-endian
    legacy.put_slice(&[10, 1, 2, 3]);
    legacy.resize(136, 0);
    let vec = EntityAddrVec::decode(&mut &legacy[..]).expect("legacy");
    let addr: SocketAddr = "10.1.2.3:6789".parse().expect("addr");
    assert_eq!(vec, EntityAddrVec(vec![EntityAddr::v1(addr, 42)]));

    // Marker 1: one new-style address, which is also what EntityAddr::encode writes.
    let v2 = EntityAddr::v2("[fe80::1]:3300".parse().expect("addr"), 7);
    let single = encoded(|b| v2.encode(b));
    assert_eq!(
        EntityAddrVec::decode(&mut &single[..]),
        Ok(EntityAddrVec(vec![v2]))
    );
    // An unknown family is a blank address, as Ceph's decoders treat it.
    let mut odd = single.clone();
    odd[1 + 6 + 12] = 99;
    let blank = EntityAddr::decode(&mut &odd[..]).expect("blank");
    assert_eq!(
        (blank.ty, blank.nonce, blank.addr),
        (ADDR_TYPE_MSGR2, 7, None)
    );

    for marker in [3u8, 0xff] {
        assert_eq!(
            EntityAddrVec::decode(&mut &[marker][..]),
            Err(BodyError::AddrMarker { marker })
        );
    }
    assert_eq!(
        EntityAddr::decode(&mut &[2u8][..]),
        Err(BodyError::AddrMarker { marker: 2 })
    );
    for len in [1u32, 129, u32::MAX] {
        let mut bad = single.clone();
        bad[1 + 6 + 8..1 + 6 + 12].copy_from_slice(&len.to_le_bytes());
        assert_eq!(
            EntityAddr::decode(&mut &bad[..]),
            Err(BodyError::SockaddrLen { len })
        );
    }
}

#[test]
fn huge_counts_are_refused_before_any_element_is_read() {
    for front in [
        &[0xff, 0xff, 0xff, 0xff][..],
        &[0x00, 0x00, 0x00, 0x10, b'x'][..],
    ] {
        assert!(matches!(
            MConfig::decode(&mut &front[..]),
            Err(BodyError::Truncated {
                field: "config",
                ..
            })
        ));
        assert!(matches!(
            MMonSubscribe::decode(&mut &front[..], 3),
            Err(BodyError::Truncated {
                field: "subscriptions",
                ..
            })
        ));
    }
    let mut command = vec![0u8; PaxosPrefix::LEN + Fsid::LEN];
    command.put_u32_le(u32::MAX);
    assert_eq!(
        MMonCommand::decode(&mut &command[..]),
        Err(BodyError::Truncated {
            field: "cmd",
            needed: 4 * u32::MAX as usize,
            remaining: 0
        })
    );
}

#[test]
fn old_subscribe_items_are_converted_as_ceph_does() {
    let mut front = Vec::new();
    front.put_u32_le(2);
    for (name, have, onetime) in [("monmap", 5u64, 1u8), ("osdmap", 0, 0)] {
        front.put_u32_le(name.len() as u32);
        front.put_slice(name.as_bytes());
        front.put_u64_le(0);
        front.put_u64_le(have);
        front.put_u8(onetime);
    }
    for version in [0, 1] {
        let sub = MMonSubscribe::decode(&mut &front[..], version).expect("old subscribe");
        assert_eq!(
            sub.what["monmap"],
            SubscribeItem {
                start: 6,
                flags: SUBSCRIBE_ONETIME
            }
        );
        assert_eq!(sub.what["osdmap"], SubscribeItem::default());
        assert!(sub.hostname.is_empty());
    }
    // Header version 2: the new items and no hostname.
    let v3 = MMonSubscribe {
        what: [("config".to_owned(), SubscribeItem::default())].into(),
        hostname: "host".into(),
    };
    let front = v3.to_front();
    let v2 = &front[..front.len() - 8];
    let sub = MMonSubscribe::decode(&mut &v2[..], 2).expect("v2");
    assert_eq!((sub.what, sub.hostname.as_str()), (v3.what.clone(), ""));
}

#[test]
fn trailing_bytes_are_refused_for_known_header_versions_and_skipped_for_newer_ones() {
    let reply = MMonGetVersionReply {
        handle: 1,
        version: 9,
        oldest_version: 3,
    };
    let v2 = reply.to_front();
    // Header version 1 has no oldest_version: the same 24 bytes leave 8 over.
    assert_eq!(
        MMonGetVersionReply::decode(&mut v2.clone(), 1),
        Err(BodyError::TrailingBytes { remaining: 8 })
    );
    let v1 = v2.slice(..16);
    assert_eq!(
        MMonGetVersionReply::decode(&mut v1.clone(), 1),
        Ok(MMonGetVersionReply {
            oldest_version: 0,
            ..reply
        })
    );
    let mut v3 = v2.to_vec();
    v3.extend_from_slice(b"newer");
    assert_eq!(MMonGetVersionReply::decode(&mut &v3[..], 3), Ok(reply));
    assert_eq!(
        MMonGetVersionReply::decode(&mut &v3[..], 2),
        Err(BodyError::TrailingBytes { remaining: 5 })
    );

    let get = MMonGetVersion {
        handle: 1,
        what: "osdmap".into(),
    };
    let front = get.to_front();
    assert_eq!(&front[..], b"\x01\0\0\0\0\0\0\0\x06\0\0\0osdmap");
    let mut long = front.to_vec();
    long.push(0);
    assert!(MMonGetVersion::decode(&mut &long[..], 1).is_err());
    assert_eq!(MMonGetVersion::decode(&mut &long[..], 2), Ok(get));
}

#[test]
fn strings_that_are_not_utf8_are_refused() {
    let front = Bytes::from_static(b"\x01\0\0\0\x02\0\0\0\xff\xfe\0\0\0\0");
    assert_eq!(
        MConfig::decode(&mut front.clone()),
        Err(BodyError::NotUtf8 { field: "config" })
    );
}

#[test]
fn bytes_after_the_monmap_inside_its_bufferlist_are_ignored_as_ceph_does() {
    let msg = MMonMap {
        monmap: one_mon_map(),
    };
    let mut map = encoded(|b| msg.monmap.encode(b));
    map.extend_from_slice(b"extra");
    let mut front = Vec::new();
    front.put_u32_le(map.len() as u32);
    front.extend_from_slice(&map);
    assert_eq!(MMonMap::decode(&mut &front[..]), Ok(msg));
}
