//! `msgr dump` on a real capture and on a corrupted copy of it.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::{Command, Output};

fn vector(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../msgr-wire/tests/data")
        .join(name)
}

fn dump(file: &std::path::Path, side: &str, json: bool) -> Output {
    dump_with(file, side, json, &[])
}

fn dump_with(file: &std::path::Path, side: &str, json: bool, extra: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_msgr"));
    cmd.arg("dump").arg(file).args(["--side", side]).args(extra);
    if json {
        cmd.arg("--json");
    }
    cmd.output().unwrap()
}

#[test]
fn dumps_a_capture_as_json() {
    let out = dump(&vector("status-acceptor.bin"), "acceptor", true);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: Vec<&str> = lines.iter().map(|v| v["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "banner",
            "addr",
            "addr",
            "connect_reply",
            "seq",
            "keepalive2_ack"
        ]
        .into_iter()
        .chain(["msg"; 8])
        .collect::<Vec<_>>()
    );
    let reply = &lines[3];
    assert_eq!(reply["tag"], 13);
    // 64-bit masks as hex strings: a JSON number above 2^53 loses digits in most readers.
    assert_eq!(reply["features"], "0x3f01cfbdfffdffff");
    assert_eq!(reply["global_seq"], 8);
    assert_eq!(reply["connect_seq"], 1);
    assert_eq!(reply["protocol_version"], 15);
    assert_eq!(reply["authorizer_len"], 0);
    assert_eq!(reply["flags"], 1);
    assert_eq!(lines[5]["stamp_sec"], 1_795_760_655u64);
    assert_eq!(lines[5]["stamp_nsec"], 374_643_132u64);
    // Each line carries its byte offset: banner 9 bytes, two 136-byte addresses, a 26-byte
    // reply, an 8-byte seq, a 9-byte keepalive2_ack, then the first message.
    let offsets: Vec<u64> = lines
        .iter()
        .map(|v| v["offset"].as_u64().unwrap())
        .collect();
    assert_eq!(offsets[..7], [0, 9, 145, 281, 307, 315, 324]);
    assert!(offsets.windows(2).all(|w| w[0] < w[1]), "{offsets:?}");
    let msg7 = &lines[12];
    for (key, value) in [
        ("seq", 7i64),
        ("tid", 1),
        ("type", 51),
        ("priority", 196),
        ("version", 1),
        ("front_len", 72),
        ("middle_len", 0),
        ("data_len", 73271),
        ("data_off", 0),
        ("src_type", 1),
        ("src_num", 0),
        ("compat_version", 1),
        ("footer_flags", 1),
    ] {
        assert_eq!(msg7[key], value, "{key}");
    }
    assert_eq!(msg7["crc_ok"], true);
}

#[test]
fn dumps_the_connector_side_as_text() {
    let out = dump(&vector("hunt-connector.bin"), "connector", false);
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 7, "{stdout}");
    assert!(lines[0].starts_with("@0 banner"));
    assert!(
        lines[2].starts_with("@145 connect features=0x3f01cfbdfffdffff host_type=8"),
        "{}",
        lines[2]
    );
    assert!(lines[3].starts_with("@178 seq seq=0"), "{}", lines[3]);
    assert!(lines[4].contains("keepalive2 stamp_sec=1795760655 stamp_nsec=372296982"));
    assert!(lines[5].contains("msg seq=1 tid=0 type=17"));
}

#[test]
fn corrupt_stream_prints_frames_then_the_offset_and_fails() {
    let original = std::fs::read(vector("status-acceptor.bin")).unwrap();
    // Frames: keepalive2_ack at 315..324, msg 1 at 324 (header 325..378, front 378..402).
    let mut bad = original.clone();
    bad[390] ^= 0x55;
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dump-corrupt-status-acceptor.bin");
    std::fs::write(&path, &bad).unwrap();
    let out = dump(&path, "acceptor", true);
    assert!(!out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 6, "{stdout}");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("front crc mismatch"), "{stderr}");
    assert!(stderr.contains("offset 378"), "{stderr}");

    // With --continue (or its old name --no-crc) the whole stream is printed and the bad
    // message says which CRC failed.
    for flag in ["--continue", "--no-crc"] {
        let out = dump_with(&path, "acceptor", false, &[flag]);
        assert!(out.status.success(), "{flag}");
        let stdout = String::from_utf8(out.stdout).unwrap();
        let msgs: Vec<&str> = stdout.lines().filter(|l| l.contains(" msg ")).collect();
        assert_eq!(msgs.len(), 8, "{stdout}");
        assert!(
            msgs[0].ends_with(
                "crc_ok=false crc_error=\"front crc mismatch: footer says 0x572c0b9f, bytes give 0xde143730\""
            ),
            "{}",
            msgs[0]
        );
        assert!(msgs[1].ends_with("crc_ok=true"), "{}", msgs[1]);
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(stderr.contains("1 messages with CRC errors"), "{stderr}");
    }

    // Cut inside a message: the stream ended inside a frame.
    std::fs::write(&path, &original[..400]).unwrap();
    let out = dump(&path, "acceptor", false);
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("stream ended inside a message body"),
        "{stderr}"
    );
    assert!(stderr.contains("offset 324"), "{stderr}");
}

#[test]
fn an_empty_capture_is_an_error() {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dump-empty.bin");
    std::fs::write(&path, b"").unwrap();
    for json in [false, true] {
        let out = dump(&path, "acceptor", json);
        assert_eq!(out.status.code(), Some(1));
        assert!(out.stdout.is_empty());
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(stderr.contains("empty capture"), "{stderr}");
    }
}

#[test]
fn an_unreadable_capture_is_an_error() {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dump-does-not-exist.bin");
    let out = dump(&path, "acceptor", true);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("cannot read"), "{stderr}");
}

#[test]
fn dash_reads_standard_input() {
    use std::io::Write;
    let bytes = std::fs::read(vector("hunt-connector.bin")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_msgr"))
        .args(["dump", "-", "--side", "connector"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let from_file = dump(&vector("hunt-connector.bin"), "connector", false);
    assert_eq!(out.stdout, from_file.stdout);
    assert_eq!(String::from_utf8(out.stdout).unwrap().lines().count(), 7);
}
