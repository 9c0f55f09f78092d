//! `msgr dump` on pcap and pcapng captures: real Ceph captures, and captures built here from
//! the real v1 streams with every link type, IPv6, segments out of order, retransmitted and
//! missing, files cut short, corrupted CRCs and a hostile length under a memory limit.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn here(dir: &str, name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(dir)
        .join(name)
}

/// The real v1 pcap (two connections: hunt, then status).
fn v1_pcap() -> Vec<u8> {
    std::fs::read(here("tests/data", "v1-cephx-status.pcap")).unwrap()
}

fn dump(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_msgr"))
        .arg("dump")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(bytes) = stdin {
        input.write_all(bytes).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn write_tmp(name: &str, bytes: &[u8]) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn lines(out: &Output) -> Vec<Value> {
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}

/// The item lines of one side of one connection, without their capture context.
fn side_items(lines: &[Value], conn: u64, from: &str) -> Vec<Value> {
    lines
        .iter()
        .filter(|l| l["conn"] == conn && l["from"] == from)
        .map(|l| {
            let mut l = l.clone();
            for key in ["conn", "from", "packet", "time"] {
                l.as_object_mut().unwrap().remove(key);
            }
            l
        })
        .collect()
}

/// `msgr dump --json` of one side's raw bytes.
fn raw_items(path: &Path, side: &str) -> Vec<Value> {
    let out = dump(&[path.to_str().unwrap(), "--side", side, "--json"], None);
    assert!(out.status.success(), "{}", stderr(&out));
    lines(&out)
}

#[test]
fn a_real_v1_capture_is_split_paired_and_decoded_like_the_split_streams() {
    let path = here("tests/data", "v1-cephx-status.pcap");
    let out = dump(&[path.to_str().unwrap(), "--json"], None);
    assert!(out.status.success(), "{}", stderr(&out));
    let all = lines(&out);
    let conns: Vec<&Value> = all.iter().filter(|l| l["kind"] == "connection").collect();
    assert_eq!(conns.len(), 2);
    // The mon listened on 60285; the roles come from the bytes.
    for (conn, port, bytes) in [
        (conns[0], 46372, [594, 1290]),
        (conns[1], 46386, [1364, 77693]),
    ] {
        assert_eq!(conn["protocol"], "msgr1");
        assert_eq!(conn["roles_from"], "bytes");
        assert_eq!(conn["connector"], format!("127.0.0.1:{port}"));
        assert_eq!(conn["acceptor"], "127.0.0.1:60285");
        assert_eq!(
            [
                conn["connector_bytes"].clone(),
                conn["acceptor_bytes"].clone()
            ],
            bytes
        );
        assert_eq!(conn["retransmitted_bytes"], 0);
    }
    // msgr-ceph's captures are the same directions split by another reader: the same items.
    let ceph = |name| here("../msgr-ceph/tests/data", name);
    assert_eq!(
        side_items(&all, 1, "connector"),
        raw_items(&ceph("cephx-hunt-connector.bin"), "connector")
    );
    assert_eq!(
        side_items(&all, 1, "acceptor"),
        raw_items(&ceph("cephx-hunt-acceptor.bin"), "acceptor")
    );
    assert_eq!(
        side_items(&all, 2, "connector"),
        raw_items(&ceph("cephx-status-connector.bin"), "connector")
    );
    let head = raw_items(&ceph("cephx-status-acceptor-head.bin"), "acceptor");
    let acceptor = side_items(&all, 2, "acceptor");
    assert_eq!(acceptor[..head.len()], head[..]);
    assert_eq!(
        acceptor.len(),
        head.len() + 2,
        "two MMonCommandAcks after the head"
    );
    // Every message has its class name and verified CRCs.
    let names: Vec<&str> = all
        .iter()
        .filter(|l| l["kind"] == "msg" && l["conn"] == 2)
        .map(|l| {
            assert_eq!(l["crc_ok"], true);
            l["type_name"].as_str().unwrap()
        })
        .collect();
    for name in [
        "MAuth",
        "MAuthReply",
        "MMonMap",
        "MMonSubscribe",
        "MConfig",
        "MMgrMap",
        "MOSDMap",
        "MMonCommand",
        "MMonCommandAck",
    ] {
        assert!(names.contains(&name), "{name} in {names:?}");
    }
    // Capture order: packet numbers never go back, and the first MAuth (connector) comes
    // before the first MAuthReply (acceptor).
    let packets: Vec<u64> = all
        .iter()
        .filter(|l| l["conn"] == 2 && l["kind"] != "connection")
        .map(|l| l["packet"].as_u64().unwrap())
        .collect();
    assert!(packets.windows(2).all(|w| w[0] <= w[1]), "{packets:?}");
    let first = |name: &str| names.iter().position(|n| *n == name).unwrap();
    assert!(first("MAuth") < first("MAuthReply"));
}

#[test]
fn msgr2_connections_are_decoded_with_roles_from_the_bytes() {
    let path = here("tests/data", "v2-crc-authnone-status.pcap");
    let out = dump(&[path.to_str().unwrap(), "--json"], None);
    assert!(out.status.success(), "{}", stderr(&out));
    let all = lines(&out);
    let conns: Vec<&Value> = all.iter().filter(|l| l["kind"] == "connection").collect();
    assert_eq!(conns.len(), 2, "{all:?}");
    for l in conns {
        assert_eq!(l["protocol"], "msgr2");
        assert_eq!(l["skipped"], Value::Null);
        // The connector asks (AUTH_REQUEST), the acceptor answers (AUTH_DONE).
        assert_eq!(l["roles_from"], "bytes");
        assert_eq!(l["acceptor"], "127.0.0.1:33319");
    }
    // Both connections' frames, 1 + 15 and 1 + 23 lines (tests/dump_v2.rs checks them).
    assert_eq!(all.len(), 40);
    assert!(stderr(&out).contains("2 TCP connections, 0 decoded as msgr v1, 2 as msgr2"));
}

#[test]
fn dash_reads_a_capture_from_standard_input() {
    let path = here("tests/data", "v1-cephx-status.pcap");
    let from_file = dump(&[path.to_str().unwrap()], None);
    let from_stdin = dump(&["-"], Some(&v1_pcap()));
    assert!(from_stdin.status.success(), "{}", stderr(&from_stdin));
    assert_eq!(from_stdin.stdout, from_file.stdout);
    let text = String::from_utf8(from_stdin.stdout).unwrap();
    assert!(
        text.contains("conn=2 from=connector packet=52 time=1796554343.179295 @1072 msg seq=7 tid=1 type=50 type_name=MMonCommand "),
        "{text}"
    );
}

/// Where the first MAuth's front (connection 1, connector, stream bytes 249..309) lies in
/// the pcap file (connection 2's first MAuth has the same front, later in the file).
fn first_mauth_front(pcap: &[u8]) -> usize {
    let stream =
        std::fs::read(here("../msgr-ceph/tests/data", "cephx-hunt-connector.bin")).unwrap();
    let front = &stream[249..249 + 24];
    pcap.windows(front.len()).position(|w| w == front).unwrap()
}

#[test]
fn a_crc_error_stops_its_side_unless_continue_marks_it() {
    let mut pcap = v1_pcap();
    let at = first_mauth_front(&pcap);
    pcap[at + 3] ^= 0x40;
    let path = write_tmp("dump-pcap-bad-crc.pcap", &pcap);
    let good = lines(&dump(
        &[
            here("tests/data", "v1-cephx-status.pcap").to_str().unwrap(),
            "--json",
        ],
        None,
    ));

    let out = dump(&[path.to_str().unwrap(), "--json"], None);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("1 connections have corrupt msgr v1 bytes"));
    let all = lines(&out);
    let connector = side_items(&all, 1, "connector");
    let error = connector.last().unwrap();
    assert_eq!(error["kind"], "error");
    assert_eq!(error["offset"], 249);
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("front crc mismatch"),
        "{error}"
    );
    // Banner, address, connect, seq and keepalive2 came before it; the other side and the
    // other connection are whole.
    assert_eq!(connector.len(), 6);
    assert_eq!(
        side_items(&all, 1, "acceptor"),
        side_items(&good, 1, "acceptor")
    );
    assert_eq!(
        side_items(&all, 2, "acceptor"),
        side_items(&good, 2, "acceptor")
    );

    let out = dump(&[path.to_str().unwrap(), "--json", "--continue"], None);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("1 messages with CRC errors"));
    let all = lines(&out);
    let connector = side_items(&all, 1, "connector");
    let good_connector = side_items(&good, 1, "connector");
    assert_eq!(connector.len(), good_connector.len());
    let bad = &connector[5];
    assert_eq!(
        (bad["kind"].as_str(), bad["type_name"].as_str()),
        (Some("msg"), Some("MAuth"))
    );
    assert_eq!(bad["crc_ok"], false);
    assert!(bad["crc_error"]
        .as_str()
        .unwrap()
        .starts_with("front crc mismatch: footer says"));
    // Every item after it is as in the good capture.
    assert_eq!(connector[6..], good_connector[6..]);
}

#[test]
fn a_capture_cut_short_gives_what_it_holds() {
    let pcap = v1_pcap();
    // Inside packet 54's record (the second of the two packets that carry the 73 KB
    // MMonCommandAck), and inside the file header.
    for cut in [pcap.len() - 31_000, pcap.len() - 20_000, 24 + 8] {
        let out = dump(&["-", "--json"], Some(&pcap[..cut]));
        assert!(out.status.success(), "cut {cut}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("the capture is cut short"),
            "{}",
            stderr(&out)
        );
        let all = lines(&out);
        if cut == 32 {
            assert!(all.is_empty());
            continue;
        }
        let acceptor = side_items(&all, 2, "acceptor");
        let last = acceptor.last().unwrap();
        assert_eq!(last["kind"], "cut", "cut {cut}: {last}");
        assert_eq!(last["offset"], 3830, "the MMonCommandAck");
        assert!(last["what"]
            .as_str()
            .unwrap()
            .starts_with("stream ended inside"));
    }
    // Cut in packet 55 (an ACK): the packets of the second MMonCommand and its ack are lost,
    // and the acceptor's stream ends, whole, after the first ack.
    let out = dump(&["-", "--json"], Some(&pcap[..pcap.len() - 1000]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("the capture is cut short"),
        "{}",
        stderr(&out)
    );
    let acceptor = side_items(&lines(&out), 2, "acceptor");
    assert_eq!(acceptor.last().unwrap()["offset"], 3830);
    assert_eq!(acceptor.last().unwrap()["kind"], "msg");
    let out = dump(&["-"], Some(&pcap[..20]));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("unreadable pcap header"),
        "{}",
        stderr(&out)
    );
}

// ---- captures built from the real v1 streams ----

#[derive(Debug, Clone, Copy, PartialEq)]
enum Link {
    Ethernet,
    Null,
    Sll2,
    Raw,
}

impl Link {
    fn number(self) -> u32 {
        match self {
            Link::Ethernet => 1,
            Link::Null => 0,
            Link::Sll2 => 276,
            Link::Raw => 101,
        }
    }
}

#[derive(Debug, Clone)]
struct Pkt {
    src: SocketAddr,
    dst: SocketAddr,
    seq: u32,
    flags: u8,
    payload: Vec<u8>,
}

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;

fn ip_packet(p: &Pkt) -> Vec<u8> {
    let mut tcp = Vec::new();
    tcp.extend_from_slice(&p.src.port().to_be_bytes());
    tcp.extend_from_slice(&p.dst.port().to_be_bytes());
    tcp.extend_from_slice(&p.seq.to_be_bytes());
    tcp.extend_from_slice(&[0, 0, 0, 0, 0x50, p.flags, 0xff, 0xff, 0, 0, 0, 0]);
    tcp.extend_from_slice(&p.payload);
    match (p.src.ip(), p.dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let mut ip = vec![0x45, 0];
            ip.extend_from_slice(&(20 + tcp.len() as u16).to_be_bytes());
            ip.extend_from_slice(&[0, 0, 0x40, 0, 64, 6, 0, 0]);
            ip.extend_from_slice(&s.octets());
            ip.extend_from_slice(&d.octets());
            ip.extend_from_slice(&tcp);
            ip
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let mut ip = vec![0x60, 0, 0, 0];
            ip.extend_from_slice(&(tcp.len() as u16).to_be_bytes());
            ip.extend_from_slice(&[6, 64]);
            ip.extend_from_slice(&s.octets());
            ip.extend_from_slice(&d.octets());
            ip.extend_from_slice(&tcp);
            ip
        }
        _ => unreachable!("one family per packet"),
    }
}

fn frame(link: Link, p: &Pkt) -> Vec<u8> {
    let ip = ip_packet(p);
    let v6 = p.src.is_ipv6();
    let mut f = match link {
        Link::Ethernet => {
            let mut f = vec![0; 12];
            f.extend_from_slice(if v6 { &[0x86, 0xdd] } else { &[0x08, 0x00] });
            f
        }
        // Host order, as BSD writes it: 2 or 30 (macOS's AF_INET6).
        Link::Null => (if v6 { 30u32 } else { 2 }).to_le_bytes().to_vec(),
        Link::Sll2 => {
            let mut f = if v6 {
                vec![0x86, 0xdd]
            } else {
                vec![0x08, 0x00]
            };
            f.extend_from_slice(&[0; 18]);
            f
        }
        Link::Raw => vec![],
    };
    f.extend_from_slice(&ip);
    f
}

/// A pcap file, little- or big-endian, micro- or nanosecond stamps.
fn pcap_file(link: Link, pkts: &[Pkt], big_endian: bool, nanos: bool) -> Vec<u8> {
    let u32b = |v: u32| {
        if big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let u16b = |v: u16| {
        if big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let mut out = Vec::new();
    out.extend_from_slice(&u32b(if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 }));
    out.extend_from_slice(&u16b(2));
    out.extend_from_slice(&u16b(4));
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&u32b(262_144));
    out.extend_from_slice(&u32b(link.number()));
    for (i, p) in pkts.iter().enumerate() {
        let f = frame(link, p);
        out.extend_from_slice(&u32b(1_800_000_000));
        out.extend_from_slice(&u32b(i as u32));
        out.extend_from_slice(&u32b(f.len() as u32));
        out.extend_from_slice(&u32b(f.len() as u32));
        out.extend_from_slice(&f);
    }
    out
}

/// A pcapng file: section header, one interface, enhanced packet blocks.
fn pcapng_file(link: Link, pkts: &[Pkt]) -> Vec<u8> {
    let block = |out: &mut Vec<u8>, ty: u32, body: &[u8]| {
        let pad = (4 - body.len() % 4) % 4;
        let len = (12 + body.len() + pad) as u32;
        out.extend_from_slice(&ty.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(body);
        out.extend_from_slice(&vec![0; pad]);
        out.extend_from_slice(&len.to_le_bytes());
    };
    let mut out = Vec::new();
    let mut shb = 0x1a2b_3c4du32.to_le_bytes().to_vec();
    shb.extend_from_slice(&[1, 0, 0, 0]);
    shb.extend_from_slice(&(-1i64).to_le_bytes());
    block(&mut out, 0x0a0d_0d0a, &shb);
    let mut idb = (link.number() as u16).to_le_bytes().to_vec();
    idb.extend_from_slice(&[0, 0]);
    idb.extend_from_slice(&262_144u32.to_le_bytes());
    block(&mut out, 1, &idb);
    for (i, p) in pkts.iter().enumerate() {
        let f = frame(link, p);
        let mut epb = 0u32.to_le_bytes().to_vec();
        epb.extend_from_slice(&0u32.to_le_bytes());
        epb.extend_from_slice(&(i as u32).to_le_bytes());
        epb.extend_from_slice(&(f.len() as u32).to_le_bytes());
        epb.extend_from_slice(&(f.len() as u32).to_le_bytes());
        epb.extend_from_slice(&f);
        block(&mut out, 6, &epb);
    }
    out
}

/// A connection carrying two real streams: SYN, SYN-ACK, then segments of varied sizes
/// taking turns, with every 4th pair of a side swapped (out of order) and every 5th segment
/// sent again at the end (retransmitted). Returns the packets and the retransmitted bytes.
fn conversation(
    connector: SocketAddr,
    acceptor: SocketAddr,
    c: &[u8],
    a: &[u8],
) -> (Vec<Pkt>, u64) {
    let sizes = [1usize, 9, 136, 200, 1448, 33, 7];
    let split = |src: SocketAddr, dst: SocketAddr, isn: u32, bytes: &[u8]| {
        let mut segs = Vec::new();
        let mut at = 0;
        let mut i = 0;
        while at < bytes.len() {
            let n = sizes[i % sizes.len()].min(bytes.len() - at);
            segs.push(Pkt {
                src,
                dst,
                seq: isn.wrapping_add(1).wrapping_add(at as u32),
                flags: ACK,
                payload: bytes[at..at + n].to_vec(),
            });
            at += n;
            i += 1;
        }
        for pair in segs.chunks_mut(2).step_by(4) {
            pair.reverse();
        }
        segs
    };
    // Sequence numbers that wrap inside the stream.
    let (cisn, aisn) = (u32::MAX - 300, 7_000);
    let cs = split(connector, acceptor, cisn, c);
    let as_ = split(acceptor, connector, aisn, a);
    let syn = |src, dst, seq, flags| Pkt {
        src,
        dst,
        seq,
        flags,
        payload: vec![],
    };
    let mut pkts = vec![
        syn(connector, acceptor, cisn, SYN),
        syn(acceptor, connector, aisn, SYN | ACK),
    ];
    let mut retransmitted = 0;
    let mut again = Vec::new();
    for i in 0..cs.len().max(as_.len()) {
        for segs in [&as_, &cs] {
            if let Some(s) = segs.get(i) {
                pkts.push(s.clone());
                if i % 5 == 4 {
                    again.push(s.clone());
                    retransmitted += s.payload.len() as u64;
                }
            }
        }
    }
    pkts.extend(again);
    (pkts, retransmitted)
}

#[test]
fn built_captures_of_every_link_type_decode_like_the_raw_streams() {
    let wire = |name| here("../msgr-wire/tests/data", name);
    let c = std::fs::read(wire("status-connector.bin")).unwrap();
    let a = std::fs::read(wire("status-acceptor.bin")).unwrap();
    let want_c = raw_items(&wire("status-connector.bin"), "connector");
    let want_a = raw_items(&wire("status-acceptor.bin"), "acceptor");
    // The acceptor's port is not 6789 and the connector's is: ports must not decide.
    for (link, v6, format) in [
        (Link::Ethernet, false, "pcap"),
        (Link::Null, false, "pcap-be-nanos"),
        (Link::Sll2, true, "pcapng"),
        (Link::Raw, true, "pcapng"),
        (Link::Raw, false, "pcap"),
    ] {
        let (connector, acceptor): (SocketAddr, SocketAddr) = if v6 {
            (
                "[::1]:6789".parse().unwrap(),
                "[fe80::2]:40000".parse().unwrap(),
            )
        } else {
            (
                "10.0.0.1:6789".parse().unwrap(),
                "10.0.0.2:40000".parse().unwrap(),
            )
        };
        let (pkts, retransmitted) = conversation(connector, acceptor, &c, &a);
        let file = match format {
            "pcap" => pcap_file(link, &pkts, false, false),
            "pcap-be-nanos" => pcap_file(link, &pkts, true, true),
            _ => pcapng_file(link, &pkts),
        };
        let out = dump(&["-", "--json"], Some(&file));
        let what = format!("{link:?} {format} v6={v6}");
        assert!(out.status.success(), "{what}: {}", stderr(&out));
        let all = lines(&out);
        let conn = &all[0];
        assert_eq!(conn["kind"], "connection", "{what}");
        assert_eq!(conn["roles_from"], "bytes", "{what}");
        assert_eq!(conn["connector"], connector.to_string(), "{what}");
        assert_eq!(conn["retransmitted_bytes"], retransmitted, "{what}");
        assert!(retransmitted > 1000, "{retransmitted}");
        assert_eq!(side_items(&all, 1, "connector"), want_c, "{what}");
        assert_eq!(side_items(&all, 1, "acceptor"), want_a, "{what}");
    }
}

#[test]
fn a_missing_segment_is_reported_and_decoding_stops_there() {
    let wire = |name| here("../msgr-wire/tests/data", name);
    let c = std::fs::read(wire("status-connector.bin")).unwrap();
    let a = std::fs::read(wire("status-acceptor.bin")).unwrap();
    let connector: SocketAddr = "10.0.0.1:50000".parse().unwrap();
    let acceptor: SocketAddr = "10.0.0.2:6789".parse().unwrap();
    let (mut pkts, _) = conversation(connector, acceptor, &c, &a);
    // Drop every copy of the acceptor's segment that carries stream byte 400 (inside
    // message 1's... whatever it is, and its retransmission if any).
    let aisn = 7_001u32;
    let holds = |p: &Pkt| {
        p.src == acceptor && {
            let start = p.seq.wrapping_sub(aisn) as usize;
            (start..start + p.payload.len()).contains(&400)
        }
    };
    let lost = pkts.iter().find(|p| holds(p)).cloned().unwrap();
    pkts.retain(|p| !holds(p));
    let lost_at = lost.seq.wrapping_sub(aisn) as u64;
    let out = dump(
        &["-", "--json"],
        Some(&pcap_file(Link::Ethernet, &pkts, false, false)),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let all = lines(&out);
    let acceptor_lines = side_items(&all, 1, "acceptor");
    let gap = acceptor_lines.last().unwrap();
    assert_eq!(gap["kind"], "gap");
    assert_eq!(gap["offset"], lost_at);
    assert_eq!(gap["missing"], lost.payload.len() as u64);
    assert!(gap["captured_after"].as_u64().unwrap() > 70_000, "{gap}");
    // The items wholly before the gap are all there, then the partial one is named.
    let want: Vec<Value> = raw_items(&wire("status-acceptor.bin"), "acceptor");
    let before: Vec<&Value> = acceptor_lines
        .iter()
        .filter(|l| l["kind"] != "cut" && l["kind"] != "gap")
        .collect();
    assert!(!before.is_empty());
    for (got, want) in before.iter().zip(&want) {
        assert_eq!(*got, want);
    }
    let next = &want[before.len()];
    assert!(next["offset"].as_u64().unwrap() <= lost_at);
    let cut = &acceptor_lines[acceptor_lines.len() - 2];
    assert_eq!(cut["kind"], "cut");
    assert_eq!(cut["offset"], next["offset"]);
    // The connector side is whole.
    assert_eq!(
        side_items(&all, 1, "connector"),
        raw_items(&wire("status-connector.bin"), "connector")
    );
}

/// A message header declaring a 120 MiB data segment, with a valid header CRC, after the
/// real acceptor stream's handshake.
fn hostile_acceptor_stream() -> Vec<u8> {
    let real = std::fs::read(here("../msgr-wire/tests/data", "status-acceptor.bin")).unwrap();
    let mut s = real[..378].to_vec();
    let header = &mut s[325..378];
    header[30..34].copy_from_slice(&(120u32 << 20).to_le_bytes());
    let crc = msgr_wire::crc32c(0, &header[..49]);
    header[49..53].copy_from_slice(&crc.to_le_bytes());
    s.extend_from_slice(&[0x55; 4000]);
    s
}

/// Runs `msgr dump ARGS` with its address space limited to 48 MiB (`ulimit -v`).
fn dump_in_48_mib(file: &Path, args: &str) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -v 49152; exec \"$0\" dump \"$1\" {args}"))
        .arg(env!("CARGO_BIN_EXE_msgr"))
        .arg(file)
        // A backtrace's symbol tables would not fit in the limit.
        .env("RUST_BACKTRACE", "0")
        .env("RUST_LIB_BACKTRACE", "0")
        .output()
        .unwrap()
}

#[test]
fn a_hostile_length_allocates_nothing_beyond_the_input() {
    let stream = hostile_acceptor_stream();
    let raw = write_tmp("dump-hostile-length.bin", &stream);
    let out = dump_in_48_mib(&raw, "--side acceptor --json");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(
            "at byte offset 324: stream ended inside an item: its data of 125829120 bytes goes on past the end of the capture"
        ),
        "{}",
        stderr(&out)
    );
    assert_eq!(lines(&out).len(), 6, "the handshake, then no message");

    let c = std::fs::read(here("../msgr-wire/tests/data", "status-connector.bin")).unwrap();
    let (pkts, _) = conversation(
        "127.0.0.1:40000".parse().unwrap(),
        "127.0.0.1:6789".parse().unwrap(),
        &c,
        &stream,
    );
    let pcap = write_tmp(
        "dump-hostile-length.pcap",
        &pcap_file(Link::Ethernet, &pkts, false, false),
    );
    let out = dump_in_48_mib(&pcap, "--json");
    assert!(out.status.success(), "{}", stderr(&out));
    let all = lines(&out);
    let cut = side_items(&all, 1, "acceptor").pop().unwrap();
    assert_eq!(cut["kind"], "cut");
    assert_eq!(cut["offset"], 324);
}

#[test]
fn one_captured_direction_names_its_role_and_a_late_capture_is_skipped() {
    let wire = |name| here("../msgr-wire/tests/data", name);
    let c = std::fs::read(wire("status-connector.bin")).unwrap();
    let a = std::fs::read(wire("status-acceptor.bin")).unwrap();
    let connector: SocketAddr = "10.0.0.1:6789".parse().unwrap();
    let acceptor: SocketAddr = "10.0.0.2:50000".parse().unwrap();
    let (pkts, _) = conversation(connector, acceptor, &c, &a);
    // Only what the acceptor sent, SYN-ACK included: its bytes say it accepted.
    let only: Vec<Pkt> = pkts.iter().filter(|p| p.src == acceptor).cloned().collect();
    let out = dump(
        &["-", "--json"],
        Some(&pcap_file(Link::Ethernet, &only, false, false)),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let all = lines(&out);
    assert_eq!(all[0]["roles_from"], "bytes");
    assert_eq!(all[0]["acceptor"], acceptor.to_string());
    assert_eq!(all[0]["connector"], connector.to_string());
    assert_eq!(all[0]["connector_bytes"], 0);
    assert_eq!(
        side_items(&all, 1, "acceptor"),
        raw_items(&wire("status-acceptor.bin"), "acceptor")
    );
    // A capture that starts after the handshake: no banner on either side.
    let late: Vec<Pkt> = pkts[40..].to_vec();
    let out = dump(
        &["-", "--json"],
        Some(&pcap_file(Link::Ethernet, &late, false, false)),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let all = lines(&out);
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0]["protocol"], "unknown");
    assert!(all[0]["skipped"]
        .as_str()
        .unwrap()
        .contains("started after the connection"));
}
