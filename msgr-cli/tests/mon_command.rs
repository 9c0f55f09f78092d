//! `msgr mon-command` without a mon: the errors that end it before any command runs, each one
//! line on standard error with `ceph`'s exit status. (Against real mons, with and without
//! cephx: `tests/tests/interop_cephx.rs`.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;

const STATUS: &str = r#"{"prefix": "status"}"#;

fn mon_command(args: &[&str]) -> (i32, String, String, Duration) {
    let (out, took) = run_within(
        msgr().arg("mon-command").args(args),
        Duration::from_secs(30),
    );
    (
        out.status.code().expect("exit code"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        took,
    )
}

/// A port nothing listens on: the mon refuses TCP, the client hunts until `--connect-timeout`
/// (the subject here; Ceph's `client_mount_timeout` is 300 s) and exits 110 (ETIMEDOUT) as
/// `ceph` does.
#[test]
fn no_mon_reachable_exits_110_after_the_connect_timeout() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mon = format!("v1:127.0.0.1:{port}");
    let started = Instant::now();
    let (code, out, err, _) = mon_command(&["-m", &mon, "--connect-timeout", "1", STATUS]);
    let took = started.elapsed();
    assert_eq!(code, 110, "{err}");
    assert!(out.is_empty(), "{out}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("no mon reachable") && err.contains(&mon),
        "{err}"
    );
    assert!(took >= Duration::from_secs(1), "gave up after {took:?}");
    assert!(took < Duration::from_secs(5), "gave up after {took:?}");
}

#[test]
fn bad_options_exit_1_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.keyring");
    let empty_conf = dir.path().join("ceph.conf");
    std::fs::write(&empty_conf, "[global]\n").unwrap();
    for (args, says) in [
        (
            vec!["-m", "v1:127.0.0.1:6789", "-k", missing.to_str().unwrap()],
            "no such keyring",
        ),
        (vec!["-c", empty_conf.to_str().unwrap()], "no mon address"),
        (vec!["-m", "v3:127.0.0.1:3300"], "bad mon address"),
        (vec!["-m", "v1:127.0.0.1:6789", "-n", "admin"], "bad name"),
    ] {
        let mut all = args.clone();
        all.push(STATUS);
        let (code, out, err, took) = mon_command(&all);
        assert_eq!(code, 1, "{args:?}: {err}");
        assert!(out.is_empty());
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(took < Duration::from_secs(5), "{args:?}: {took:?}");
    }
}
