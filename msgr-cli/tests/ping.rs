//! `msgr ping` tells a dead peer from a live one: a `msgr serve` killed with SIGKILL ends the
//! ping with "session to the peer lost" and exit 1 (not "no reply" for ever); unanswered
//! keepalives count as lost and `--count N` exits 1 when fewer than N were answered; `msgr
//! serve --name mon.N` announces nonce 0 as a ceph-mon, `--nonce` sets it; errors in the auth
//! options (`-c`, `-k`, `-m`, `-n`) are one line and exit 1 before anything is sent.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;
use msgr_wire::Tag;

#[test]
fn ping_ends_when_the_peer_is_killed() {
    let mut server = Serve::start(&[]);
    let mut ping = msgr()
        .args([
            "ping",
            &server.addr,
            "--count",
            "100000",
            "--interval",
            "0.05",
        ])
        .args(["--timeout", "5", "--peer-type", "osd"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout = BufReader::new(ping.stdout.take().unwrap());
    std::thread::spawn(move || {
        for line in stdout.lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    // Two answered pings, then the server dies.
    let mut seen = Vec::new();
    while seen
        .iter()
        .filter(|l: &&String| l.contains("keepalive2 reply"))
        .count()
        < 2
    {
        seen.push(
            rx.recv_timeout(Duration::from_secs(30))
                .expect("ping output"),
        );
    }
    server.kill9();
    let killed = Instant::now();
    // The ping must end by itself: at most one ping in flight (timeout 5 s) after the kill.
    let status = loop {
        if let Some(status) = ping.try_wait().unwrap() {
            break status;
        }
        match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(line) => seen.push(line),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break ping.wait().unwrap(),
        }
        if killed.elapsed() > Duration::from_secs(20) {
            let _ = ping.kill();
            panic!("ping still running 20 s after the kill: {seen:#?}");
        }
    };
    let took = killed.elapsed();
    seen.extend(rx.iter());
    let text = seen.join("\n");
    assert_eq!(status.code(), Some(1), "{text}");
    assert!(text.contains("session to the peer lost"), "{text}");
    assert!(!text.contains("no reply to seq="), "{text}");
    let summary = seen
        .iter()
        .find(|l| l.contains(" sent, "))
        .unwrap_or_else(|| panic!("no summary in {text}"));
    let numbers: Vec<u64> = summary
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    let (sent, received) = (numbers[0], numbers[1]);
    assert!(received >= 2, "{summary}");
    assert!(sent >= received && sent <= received + 1, "{summary}");
    // A socket closed by the kernel is seen at once, not after a keepalive timeout.
    assert!(
        took < Duration::from_secs(5),
        "ended {took:?} after the kill: {text}"
    );
}

#[test]
fn unanswered_keepalives_count_as_lost_and_count_exits_1() {
    // A peer that opens the session (READY) and then never answers a keepalive.
    let peer = ScriptedPeer::start(|port| {
        let mut b = hello(port);
        b.extend(reply(Tag::Ready));
        b
    });
    let (out, took) = run_within(
        msgr()
            .args(["ping", &peer.addr(), "--peer-type", "osd", "--count", "2"])
            .args(["--interval", "0.05", "--timeout", "0.2"]),
        Duration::from_secs(30),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert_eq!(stdout.matches("no reply to seq=").count(), 2, "{stdout}");
    assert!(stdout.contains("2 sent, 0 received, 100% lost"), "{stdout}");
    // The opening keepalive, then two pings, each waited for 0.2 s.
    assert!(took >= Duration::from_millis(400), "{took:?}");
}

#[test]
fn count_exits_0_when_every_keepalive_is_answered() {
    let server = Serve::start(&[]);
    let (out, _) = run_within(
        msgr().args(["ping", &server.addr, "--count", "2", "--interval", "0.02"]),
        Duration::from_secs(30),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("2 sent, 2 received, 0% lost"), "{stdout}");
}

#[test]
fn serve_as_a_mon_announces_nonce_0_and_nonce_sets_it() {
    let mon = Serve::start(&["--name", "mon.0"]);
    assert!(mon.addr.ends_with("/0"), "{}", mon.addr);
    // A client dials a mon with nonce 0: the session opens.
    ping_once_ok(&format!("v1:{}/0", mon.host_port()));

    let osd = Serve::start(&["--nonce", "42"]);
    assert!(osd.addr.ends_with("/42"), "{}", osd.addr);
    let random = Serve::start(&[]);
    assert!(
        !random.addr.ends_with("/0"),
        "an osd's nonce is random: {}",
        random.addr
    );
}

/// The auth options fail before anything is sent, with one line and exit 1: a missing keyring, a
/// conf without mon_host, a bad name. (Against a real cephx OSD: `tests/tests/interop_osd.rs`.)
#[test]
fn auth_options_errors_are_one_line() {
    let server = Serve::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let empty_conf = dir.path().join("ceph.conf");
    std::fs::write(&empty_conf, "[global]\n").unwrap();
    let missing = dir.path().join("missing.keyring");
    let cases: [(Vec<&str>, &str); 3] = [
        (
            vec!["-m", "v1:127.0.0.1:1", "-k", missing.to_str().unwrap()],
            "no such keyring",
        ),
        (vec!["-c", empty_conf.to_str().unwrap()], "no mon address"),
        (
            vec!["-n", "admin", "-m", "v1:127.0.0.1:1"],
            "not an entity name",
        ),
    ];
    for (args, expect) in cases {
        let (out, took) = run_within(
            msgr()
                .args(["ping", &server.addr, "--count", "1"])
                .args(&args),
            Duration::from_secs(30),
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stdout}{stderr}");
        assert!(stdout.is_empty(), "{args:?}: nothing pinged: {stdout}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(
            stderr.starts_with("msgr ping: ") && stderr.contains(expect),
            "{args:?}: {expect:?} not in {stderr}"
        );
        assert!(took < Duration::from_secs(5), "{args:?} took {took:?}");
    }
}

/// `msgr serve --bind [v2:...,v1:...]` listens with both protocols, as Ceph's daemons do, and
/// prints both addresses as a vector; `msgr ping` reaches it through each (the vector itself
/// picks the v2 entry) and says which protocol answered.
#[test]
fn serve_binds_v2_and_v1_at_once_and_ping_reaches_both() {
    use std::io::BufRead;
    let mut child = msgr()
        .args(["serve", "--bind", "[v2:127.0.0.1:0,v1:127.0.0.1:0]"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start msgr serve");
    let mut lines = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let mut first = String::new();
    lines.read_line(&mut first).expect("first line");
    std::thread::spawn(move || for _ in lines.lines() {});
    let vector = first.trim().to_owned();
    let inner = vector
        .strip_prefix('[')
        .and_then(|v| v.strip_suffix(']'))
        .unwrap_or_else(|| panic!("not a vector: {vector:?}"));
    let (v2, v1) = inner.split_once(',').expect("two addresses");
    assert!(
        v2.starts_with("v2:127.0.0.1:") && v1.starts_with("v1:127.0.0.1:"),
        "{vector}"
    );
    assert_eq!(
        v2.rsplit('/').next(),
        v1.rsplit('/').next(),
        "one nonce: {vector}"
    );
    for (target, shown) in [(v2, v2), (v1, v1), (vector.as_str(), v2)] {
        let (out, _) = run_within(
            msgr().args(["ping", target, "--count", "1"]),
            Duration::from_secs(30),
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{target}: {stdout}");
        assert!(
            stdout.contains(&format!("keepalive2 reply from {shown}: seq=1")),
            "{target}: {stdout}"
        );
    }
    child.kill().expect("kill msgr serve");
    child.wait().expect("reap msgr serve");
}
