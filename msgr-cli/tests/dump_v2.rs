//! `msgr dump` on msgr2: the real Pacific captures in crc mode (auth none and cephx) decode
//! frame by frame, the secure one stops each side after AUTH_DONE with the encrypted note, a
//! flipped byte is a marked CRC error that `--continue` goes past, and `--secret` opens the
//! mon's first sealed frame of the cephx spec's vector §G.4 and, with the secret derived from
//! client.admin's key and the mon's AUTH_DONE, the whole real secure status connection.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::{Command, Output};

use bytes::{BufMut, BytesMut};
use msgr_pipe::v2::frame::{Banner, Encoder, Frame, Tag};
use serde_json::Value;

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn dump(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_msgr"))
        .arg("dump")
        .args(args)
        .output()
        .unwrap()
}

fn write_tmp(name: &str, bytes: &[u8]) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}

fn json_lines(out: &Output) -> Vec<Value> {
    stdout(out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The lines of one side of one connection.
fn side(all: &[Value], conn: u64, from: &str) -> Vec<Value> {
    all.iter()
        .filter(|l| l["conn"] == conn && l["from"] == from)
        .cloned()
        .collect()
}

/// A side's line kinds, a message by its type name.
fn kinds(lines: &[Value]) -> Vec<String> {
    lines
        .iter()
        .map(|l| match l["kind"].as_str().unwrap() {
            "msg" => l["type_name"].as_str().unwrap().to_string(),
            kind => kind.to_string(),
        })
        .collect()
}

#[test]
fn the_crc_captures_decode_every_frame_of_both_sides() {
    for (file, auth) in [
        ("v2-crc-authnone-status.pcap", &["auth_request"][..]),
        (
            "v2-crc-cephx-status.pcap",
            &["auth_request", "auth_request_more"][..],
        ),
    ] {
        let out = dump(&[data(file).to_str().unwrap(), "--json"]);
        assert!(out.status.success(), "{file}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("2 TCP connections, 0 decoded as msgr v1, 2 as msgr2"),
            "{}",
            stderr(&out)
        );
        let all = json_lines(&out);
        let conns: Vec<&Value> = all.iter().filter(|l| l["kind"] == "connection").collect();
        assert_eq!(conns.len(), 2);
        for c in conns {
            assert_eq!(c["protocol"], "msgr2");
            assert_eq!(c["roles_from"], "bytes");
        }
        let cephx = auth.len() == 2;
        let answers: &[&str] = if cephx {
            &["auth_reply_more", "auth_done"]
        } else {
            &["auth_done"]
        };
        let handshake = |asks: &[&str], ident: &str| -> Vec<String> {
            let mut k = vec!["banner".to_string(), "hello".to_string()];
            k.extend(asks.iter().map(|s| s.to_string()));
            k.extend(["auth_signature".to_string(), ident.to_string()]);
            k
        };
        let mut connector = handshake(auth, "client_ident");
        connector.extend(
            [
                "MMonGetMap",
                "MMonSubscribe",
                "MMonSubscribe",
                "MMonSubscribe",
                "MMonCommand",
                "MMonCommand",
            ]
            .map(String::from),
        );
        let mut acceptor = handshake(answers, "server_ident");
        acceptor.extend(
            [
                "MMonMap",
                "MConfig",
                "MMonMap",
                "MMgrMap",
                "MOSDMap",
                "MMonCommandAck",
                "MMonCommandAck",
            ]
            .map(String::from),
        );
        // The status connection, each side whole: the handshake's frames in order, then
        // the messages by name (two commands, two acks).
        assert_eq!(kinds(&side(&all, 2, "connector")), connector, "{file}");
        assert_eq!(kinds(&side(&all, 2, "acceptor")), acceptor, "{file}");
        // Every message's frame verified; the mon speaks as mon.0, to client's -1.
        for l in all.iter().filter(|l| l["kind"] == "msg") {
            assert_eq!(l["crc_ok"], true, "{l}");
            let (ty, num) = if l["from"] == "acceptor" {
                (1, 0)
            } else {
                (8, -1)
            };
            assert_eq!(
                (l["src_type"].as_i64(), l["src_num"].as_i64()),
                (Some(ty), Some(num))
            );
        }
        let done = side(&all, 2, "acceptor")
            .into_iter()
            .find(|l| l["kind"] == "auth_done")
            .unwrap();
        assert_eq!(done["con_mode"], 1);
        assert_eq!(done["con_mode_name"], "crc");
        // Capture order inside the connection: the mon's HELLO answers the banner
        // exchange, AUTH_DONE comes after the last request, SERVER_IDENT after
        // CLIENT_IDENT.
        let order: Vec<String> = all
            .iter()
            .filter(|l| l["conn"] == 2 && l["kind"] != "connection")
            .map(|l| l["kind"].as_str().unwrap().to_string())
            .collect();
        let at = |k: &str| order.iter().position(|o| o == k).unwrap();
        assert!(at(auth[auth.len() - 1]) < at("auth_done"), "{order:?}");
        assert!(at("client_ident") < at("server_ident"), "{order:?}");
    }
    // The text lines read like v1's.
    let out = dump(&[data("v2-crc-cephx-status.pcap").to_str().unwrap()]);
    let text = stdout(&out);
    for line in [
        "conn=2 from=acceptor packet=40 time=1796554334.282666 @147 auth_done global_id=4100 con_mode=1 con_mode_name=crc payload_len=760",
        "conn=2 from=acceptor packet=46 time=1796554334.282838 @1027 server_ident addrs=[v2:127.0.0.1:40323/0,v1:127.0.0.1:52307/0] global_id=0 global_seq=5 features_supported=0x3f01cfbdfffdffff features_required=0xc01020002040000 flags=1 server_cookie=0",
        "conn=2 from=connector packet=55 time=1796554334.318212 @1098 msg seq=6 tid=2 type=50 type_name=MMonCommand priority=127 version=1 front_len=62 middle_len=0 data_len=0 data_off=0 src_type=8 src_num=-1 compat_version=1 ack_seq=6 crc_ok=true",
    ] {
        assert!(text.lines().any(|l| l == line), "{line}\nnot in\n{text}");
    }
}

#[test]
fn the_secure_capture_stops_each_side_after_auth_done_with_the_encrypted_note() {
    let out = dump(&[
        data("v2-secure-cephx-status.pcap").to_str().unwrap(),
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let all = json_lines(&out);
    assert!(!all
        .iter()
        .any(|l| l["kind"] == "error" || l["kind"] == "cut"));
    for conn in [1, 2] {
        let c = all
            .iter()
            .find(|l| l["conn"] == conn && l["kind"] == "connection")
            .unwrap();
        let connector = side(&all, conn, "connector");
        let acceptor = side(&all, conn, "acceptor");
        assert_eq!(
            kinds(&connector),
            [
                "banner",
                "hello",
                "auth_request",
                "auth_request_more",
                "encrypted"
            ]
        );
        assert_eq!(
            kinds(&acceptor),
            [
                "banner",
                "hello",
                "auth_reply_more",
                "auth_done",
                "encrypted"
            ]
        );
        assert_eq!(acceptor[3]["con_mode_name"], "secure");
        // One line per side, saying how many bytes are sealed: the rest of the side.
        for (lines, bytes) in [
            (&connector, &c["connector_bytes"]),
            (&acceptor, &c["acceptor_bytes"]),
        ] {
            let note = lines.last().unwrap();
            assert_eq!(
                note["bytes"].as_u64().unwrap() + note["offset"].as_u64().unwrap(),
                bytes.as_u64().unwrap()
            );
            assert!(note["note"].as_str().unwrap().contains("--secret"));
        }
    }
    // The status connection: 1280 sealed bytes from the client, 76560 from the mon.
    let text = stdout(&dump(&[data("v2-secure-cephx-status.pcap")
        .to_str()
        .unwrap()]));
    assert!(text.lines().any(|l| l.ends_with(
        "@1023 encrypted bytes=76560 note=\"secure mode: the rest of this side is AES-GCM sealed; --secret HEX decrypts it\""
    )), "{text}");
}

/// Where the second MMonCommand's front (`{"prefix": "status"}`, connection 2's connector,
/// its frame at stream offset 1098) lies in the crc cephx capture.
fn status_command(pcap: &[u8]) -> usize {
    let front = br#"{"prefix": "status"}"#;
    pcap.windows(front.len()).position(|w| w == front).unwrap()
}

#[test]
fn a_flipped_byte_is_a_marked_crc_error_and_continue_goes_on() {
    let good_path = data("v2-crc-cephx-status.pcap");
    let mut pcap = std::fs::read(&good_path).unwrap();
    let at = status_command(&pcap);
    pcap[at + 3] ^= 0x20;
    let path = write_tmp("dump-v2-bad-crc.pcap", &pcap);
    let good = json_lines(&dump(&[good_path.to_str().unwrap(), "--json"]));

    let out = dump(&[path.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("1 connections have corrupt msgr2 bytes"),
        "{}",
        stderr(&out)
    );
    let all = json_lines(&out);
    let connector = side(&all, 2, "connector");
    let error = connector.last().unwrap();
    assert_eq!(
        (error["kind"].as_str(), error["offset"].as_u64()),
        (Some("error"), Some(1098))
    );
    assert_eq!(error["error"], "segment 1 crc mismatch");
    // Everything before it, and the other sides, as in the good capture.
    let good_connector = side(&good, 2, "connector");
    assert_eq!(connector.len(), good_connector.len());
    assert_eq!(
        connector[..connector.len() - 1],
        good_connector[..connector.len() - 1]
    );
    assert_eq!(side(&all, 2, "acceptor"), side(&good, 2, "acceptor"));
    assert_eq!(side(&all, 1, "connector"), side(&good, 1, "connector"));

    let out = dump(&[path.to_str().unwrap(), "--json", "--continue"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("1 messages with CRC errors"));
    let all = json_lines(&out);
    let connector = side(&all, 2, "connector");
    assert_eq!(kinds(&connector), kinds(&good_connector));
    let bad = connector.iter().position(|l| l["offset"] == 1098).unwrap();
    assert_eq!(connector[bad]["type_name"], "MMonCommand");
    assert_eq!(connector[bad]["crc_ok"], false);
    assert_eq!(connector[bad]["crc_error"], "segment 1 crc mismatch");
    assert_eq!(connector[bad]["front_len"], 62);
    // The damaged frame's neighbours are untouched.
    assert_eq!(connector[..bad], good_connector[..bad]);
    assert_eq!(connector[bad + 1..], good_connector[bad + 1..]);
}

/// The cephx spec's §G.4: a real connection secret and the mon's AUTH_SIGNATURE, its first
/// secure frame.
const G4_SECRET: &str = "695fd88c5bbb57a36df9ff3b28c58ad0e9e16cd498076fb469c349c6802fb35e6f6a2a67010d5c1e5418d132823b3e849360bc6fd875337e777e690d6fe75732";
const G4_FRAME: &str = "607d48d691eea39380fe309d72783f9db586af55e579317fc1a4ab9c8371b3e7bcade8e3b76de23afcb40973c387f34712f4f55f643649342eef1bbdcbc8eea10e683481f4262949b0ccfbcde497479d23c59c143b4891aaba16434a3ff0a07a";
const G4_SIGNATURE: &str = "ba26f0fa6522699e0af3cc67abca6eaf610d3958d45fa593a07036d5b8ff8ef6";

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// A mon's side: banner, HELLO, AUTH_DONE choosing secure mode (crc framing), then the
/// sealed §G.4 frame.
fn g4_acceptor_stream() -> PathBuf {
    let mut wire = BytesMut::new();
    Banner::OURS.encode(&mut wire);
    let mut enc = Encoder::default();
    let mut hello = BytesMut::new();
    hello.put_u8(1);
    msgr_ceph::EntityAddr::v2("127.0.0.1:40000".parse().unwrap(), 0).encode(&mut hello);
    enc.encode(&Frame::control(Tag::Hello, hello.freeze()), &mut wire);
    let mut done = BytesMut::new();
    done.put_u64_le(4242);
    done.put_u32_le(2);
    done.put_u32_le(0);
    enc.encode(&Frame::control(Tag::AuthDone, done.freeze()), &mut wire);
    wire.put_slice(&unhex(G4_FRAME));
    write_tmp("dump-v2-g4-acceptor.bin", &wire)
}

#[test]
fn secret_opens_the_mons_first_sealed_frame_of_vector_g4() {
    let path = g4_acceptor_stream();
    let file = path.to_str().unwrap();
    let check_head = |out: &Output| {
        assert!(out.status.success(), "{}", stderr(out));
        let text = stdout(out);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[..3],
            [
                "@0 banner banner=\"ceph v2\" supported=0x1 required=0x0",
                "@26 hello entity_type=1 entity=mon peer_addr=v2:127.0.0.1:40000/0",
                "@98 auth_done global_id=4242 con_mode=2 con_mode_name=secure payload_len=0",
            ]
        );
        assert_eq!(lines.len(), 4, "{text}");
        lines[3].to_string()
    };

    let out = dump(&[file, "--side", "acceptor", "--secret", G4_SECRET]);
    assert_eq!(
        check_head(&out),
        format!("@150 auth_signature sig={G4_SIGNATURE}")
    );

    // Without the secret: one line for the 96 sealed bytes, no error.
    let out = dump(&[file, "--side", "acceptor"]);
    assert_eq!(
        check_head(&out),
        "@150 encrypted bytes=96 note=\"secure mode: the rest of this side is AES-GCM sealed; --secret HEX decrypts it\""
    );

    // Another connection's secret: the same line, saying the secret does not fit.
    let mut other = G4_SECRET.to_string();
    other.replace_range(0..2, "00");
    let out = dump(&[file, "--side", "acceptor", "--secret", &other]);
    assert!(
        check_head(&out).starts_with("@150 encrypted bytes=96 note=\"--secret does not open it")
    );

    // A secret that is not 64 bytes of hex is refused before anything is read.
    let out = dump(&[file, "--side", "acceptor", "--secret", &G4_SECRET[2..]]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("128 hex digits"), "{}", stderr(&out));
}

/// The first crc frame of `tag` whose segment 0 is `len` bytes, at or after byte `from` of
/// `pcap` (a frame small enough to sit in one packet), and where it starts.
fn frame_in(pcap: &[u8], from: usize, tag: Tag, len: u32) -> (usize, Frame) {
    let mut head = vec![tag as u8, 1];
    head.extend_from_slice(&len.to_le_bytes());
    head.extend_from_slice(&8u16.to_le_bytes());
    let at = from
        + pcap[from..]
            .windows(head.len())
            .position(|w| w == head)
            .unwrap();
    let mut dec = msgr_pipe::v2::frame::Decoder::new(Default::default());
    let frame = dec
        .decode(&mut BytesMut::from(&pcap[at..]))
        .unwrap()
        .unwrap();
    (at, frame)
}

/// The status connection's secret, as its client derived it: client.admin's key opens the
/// AUTH ticket of the mon's AUTH_DONE (after its challenge, AUTH_REPLY_MORE), and the
/// ticket's session key the connection secret in it (the cephx spec's §E.4).
fn status_connection_secret(pcap: &[u8]) -> String {
    use msgr_auth::provider::AuthClient;
    use msgr_auth::provider::CephxClient;
    use rand::SeedableRng;

    let keyring = std::fs::read_to_string(data("v2-cephx.client.admin.keyring")).unwrap();
    let keyring = msgr_auth::Keyring::parse(&keyring).unwrap();
    let admin = msgr_auth::EntityName::client("admin");
    // The status connection's AUTH_DONE carries 824 bytes (the hunt's 274).
    let (done_at, done) = frame_in(pcap, 0, Tag::AuthDone, 8 + 4 + 4 + 824);
    let mut reply_at = None;
    let mut from = 0;
    while let Some(at) = pcap[from..done_at]
        .windows(2)
        .position(|w| w == [Tag::AuthReplyMore as u8, 1])
    {
        reply_at = Some(from + at);
        from += at + 1;
    }
    let (_, challenge) = frame_in(pcap, reply_at.unwrap(), Tag::AuthReplyMore, 4 + 9);
    let now = msgr_auth::UTime {
        sec: 1_796_554_336,
        nsec: 0,
    };
    let mut client = CephxClient::new(
        admin.clone(),
        keyring.key(&admin).unwrap().clone(),
        0,
        Box::new(rand::rngs::StdRng::seed_from_u64(1)),
    );
    client
        .handle_reply(now, 0, &challenge.segment(0)[4..])
        .unwrap();
    client.build_request(now).unwrap();
    client.handle_reply(now, 0, &done.segment(0)[16..]).unwrap();
    let secret = client.connection_secret().unwrap().expose();
    assert_eq!(secret.len(), 64);
    secret.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn the_derived_secret_opens_the_real_secure_status_connection() {
    let path = data("v2-secure-cephx-status.pcap");
    let secret = status_connection_secret(&std::fs::read(&path).unwrap());
    let out = dump(&[path.to_str().unwrap(), "--json", "--secret", &secret]);
    assert!(out.status.success(), "{}", stderr(&out));
    let all = json_lines(&out);
    assert!(!all
        .iter()
        .any(|l| l["kind"] == "error" || l["kind"] == "cut"));
    // The status connection decodes whole, both directions through AES-GCM: the same
    // frames as the crc capture's, the secure mode's AUTH_SIGNATUREs included.
    let crc = json_lines(&dump(&[
        data("v2-crc-cephx-status.pcap").to_str().unwrap(),
        "--json",
    ]));
    for from in ["connector", "acceptor"] {
        assert_eq!(
            kinds(&side(&all, 2, from)),
            kinds(&side(&crc, 2, from)),
            "{from}"
        );
    }
    let done = side(&all, 2, "acceptor")
        .into_iter()
        .find(|l| l["kind"] == "auth_done")
        .unwrap();
    assert_eq!(done["con_mode_name"], "secure");
    // The hunt connection had its own secret: its sides end with the note.
    for from in ["connector", "acceptor"] {
        let hunt = side(&all, 1, from);
        let last = hunt.last().unwrap();
        assert_eq!(last["kind"], "encrypted");
        assert!(last["note"]
            .as_str()
            .unwrap()
            .starts_with("--secret does not open it"));
    }
}
