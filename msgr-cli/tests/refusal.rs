//! A refused handshake ends `msgr ping` and `msgr bench --server` within a second, with the
//! peer's answer in the message and a non-zero exit: scripted acceptors answer BADPROTOVER,
//! FEATURES, BADAUTHORIZER (twice), announce another address, or send a bad banner.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use msgr_wire::Tag;

/// A refusal must end the tool well within this (debug build, process start included).
const WITHIN: Duration = Duration::from_secs(1);
/// Upper bound before the test calls it a hang.
const HANG: Duration = Duration::from_secs(30);

fn refusing(tags: &'static [Tag]) -> ScriptedPeer {
    ScriptedPeer::start(move |port| {
        let mut b = hello(port);
        for &tag in tags {
            b.extend(reply(tag));
        }
        b
    })
}

/// Runs `msgr ARGS` and checks it failed within [`WITHIN`] with `expect` in its stderr.
fn fails_fast(args: &[&str], expect: &str) {
    let (out, took) = run_within(msgr().args(args), HANG);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
    assert!(
        stderr.contains(expect),
        "{args:?}: {expect:?} not in {stderr}"
    );
    assert!(took < WITHIN, "{args:?} took {took:?}: {stderr}");
}

fn ping(addr: &str) -> Vec<String> {
    ["ping", addr, "--peer-type", "osd", "--count", "1"]
        .into_iter()
        .map(String::from)
        .collect()
}

fn bench(addr: &str) -> Vec<String> {
    ["bench", "--server", addr, "--mode", "rr", "--count", "10"]
        .into_iter()
        .map(String::from)
        .collect()
}

fn both(addr: &str, expect: &str) {
    for args in [ping(addr), bench(addr)] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        fails_fast(&args, expect);
    }
}

#[test]
fn badprotover_ends_ping_and_bench_with_both_versions() {
    let peer = refusing(&[Tag::BadProtoVer]);
    // A client dialling an OSD offers protocol 24; the peer answered with 15 (a mon's).
    both(
        &peer.addr(),
        &format!(
            "refused by {}/0: BADPROTOVER (peer protocol 15, ours 24)",
            peer.addr()
        ),
    );
}

#[test]
fn features_ends_ping_and_bench() {
    let peer = refusing(&[Tag::Features]);
    both(&peer.addr(), ": FEATURES (missing features");
}

#[test]
fn badauthorizer_twice_ends_ping_and_bench() {
    let peer = refusing(&[Tag::BadAuthorizer, Tag::BadAuthorizer]);
    both(&peer.addr(), ": BADAUTHORIZER");
}

#[test]
fn a_peer_announcing_another_address_ends_ping_and_bench() {
    // The session retries a wrong address (as Ceph does); the tools stop at the answer.
    let peer = ScriptedPeer::start(|port| hello(port.wrapping_add(1)));
    both(
        &peer.addr(),
        ": wrong peer at address (it announces v1:127.0.0.1:",
    );
}

#[test]
fn a_bad_banner_ends_ping_and_bench() {
    let peer = ScriptedPeer::start(|_| b"HTTP/1.1 400 Bad Request\r\n\r\n".repeat(8));
    both(&peer.addr(), "not a msgr v1 daemon (banner \"HTTP/1.1 \")");
}

#[test]
fn ping_without_a_peer_type_reports_the_answer_to_each() {
    let peer = refusing(&[Tag::BadProtoVer]);
    let (out, took) = run_within(msgr().args(["ping", &peer.addr()]), HANG);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("refused the handshake for every peer type tried"),
        "{stderr}"
    );
    for ty in ["osd", "mon", "mds", "mgr"] {
        assert!(
            stderr.contains(&format!("(offered as peer type {ty})")),
            "{ty}: {stderr}"
        );
    }
    assert_eq!(
        stderr
            .matches("BADPROTOVER (peer protocol 15, ours ")
            .count(),
        4,
        "{stderr}"
    );
    assert!(took < 4 * WITHIN, "took {took:?}");
}
