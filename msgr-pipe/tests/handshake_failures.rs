//! `Session::handshake_failures`: each refusal a scripted acceptor answers is published with
//! the peer's answer, whether the session gave up, and the count; a refusal the session
//! retries (a wrong address, a bad banner) is published all the same, and retried.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use bytes::BytesMut;
use common::*;
use msgr_pipe::testing::{TestHost, TestNet};
use msgr_pipe::{ConnState, HandshakeFailure, PipeConfig, PipeError, Policy, SessionEvent};
use msgr_wire::{Banner, ConnectReply, EntityAddr, EntityName, EntityType, Tag, Wire};

fn peer_addr() -> EntityAddr {
    EntityAddr::new("127.0.0.1:6800".parse().unwrap(), 0)
}

/// Banner, the acceptor's address `announced`, our address as it saw it, then `replies`.
fn script(announced: EntityAddr, replies: &[Tag]) -> bytes::Bytes {
    let mut b = BytesMut::new();
    Banner.encode(&mut b);
    announced.encode(&mut b);
    EntityAddr::new("127.0.0.1:40000".parse().unwrap(), 0).encode(&mut b);
    for &tag in replies {
        let mut r = ConnectReply::new(tag);
        r.features = msgr_pipe::DEFAULT_FEATURES;
        r.protocol_version = 15;
        r.encode(&mut b);
    }
    b.freeze()
}

/// A lossless client dialling the scripted peer at [`peer_addr`] as an OSD; the first
/// failure published.
async fn first_failure(
    bytes: bytes::Bytes,
) -> (
    HandshakeFailure,
    msgr_pipe::Session,
    tokio::sync::mpsc::UnboundedReceiver<msgr_pipe::testing::HostEvent>,
) {
    let net = TestNet::new(4096);
    let _written = net.script(peer_addr().addr, bytes);
    let me = EntityAddr::new("0.0.0.0:0".parse().unwrap(), 7);
    let (h, rx) = TestHost::new(
        EntityName::client(1),
        me,
        Policy::lossless_client(0),
        PipeConfig::default(),
    );
    net.attach(&h);
    let s = h.connect(peer_addr(), EntityType::OSD);
    let mut failures = s.handshake_failures();
    let failure = tokio::time::timeout(Duration::from_secs(5), failures.wait_for(|f| f.is_some()))
        .await
        .expect("a failure is published within the handshake")
        .expect("the sender lives as long as the session")
        .clone()
        .expect("waited for Some");
    (failure, s, rx)
}

#[tokio::test]
async fn badprotover_is_published_with_both_versions_and_ends_the_session() {
    let (f, s, mut rx) = first_failure(script(peer_addr(), &[Tag::BadProtoVer])).await;
    assert!(f.fatal);
    assert_eq!(f.failures, 1);
    assert!(f.error.is_refusal());
    // A client dialling an OSD offers 24; the scripted peer answered 15.
    assert!(
        matches!(*f.error, PipeError::BadProtoVer { ours: 24, peer: 15 }),
        "{:?}",
        f.error
    );
    wait_event(&mut rx, SessionEvent::Refused, Duration::from_secs(5)).await;
    s.closed().await;
    assert_eq!(s.state(), ConnState::Closed);
}

#[tokio::test]
async fn features_is_published_and_ends_the_session() {
    let (f, s, _rx) = first_failure(script(peer_addr(), &[Tag::Features])).await;
    assert!(f.fatal);
    assert!(
        matches!(*f.error, PipeError::MissingFeatures { .. }),
        "{:?}",
        f.error
    );
    assert!(f.error.is_refusal());
    s.closed().await;
}

#[tokio::test]
async fn badauthorizer_twice_is_published_and_ends_the_session() {
    let (f, s, _rx) = first_failure(script(
        peer_addr(),
        &[Tag::BadAuthorizer, Tag::BadAuthorizer],
    ))
    .await;
    assert!(f.fatal);
    assert!(
        matches!(*f.error, PipeError::AuthorizerRefused),
        "{:?}",
        f.error
    );
    assert!(f.error.is_refusal());
    s.closed().await;
}

#[tokio::test]
async fn a_peer_at_another_address_is_published_and_retried() {
    // The peer announces another nonce: Ceph's "wrong peer at address", which it retries.
    let other = EntityAddr::new(peer_addr().addr, 99);
    let (f, s, _rx) = first_failure(script(other, &[])).await;
    assert!(!f.fatal, "the session retries a wrong address");
    assert!(f.error.is_refusal());
    match &*f.error {
        PipeError::AddrMismatch { expected, got } => {
            assert_eq!(*expected, peer_addr());
            assert_eq!(*got, other);
        }
        e => panic!("{e:?}"),
    }
    assert!(!s.is_closed());
    s.mark_down();
}

#[tokio::test]
async fn a_bad_banner_is_published_and_retried() {
    let (f, s, _rx) = first_failure(bytes::Bytes::from_static(
        b"HTTP/1.1 400 Bad Request\r\n\r\n".as_slice(),
    ))
    .await;
    assert!(!f.fatal);
    assert!(f.error.is_refusal());
    assert!(matches!(*f.error, PipeError::Wire(_)), "{:?}", f.error);
    assert!(!s.is_closed());
    s.mark_down();
}

#[tokio::test]
async fn a_closed_socket_is_published_but_is_no_refusal() {
    // The peer says nothing and hangs up: a fault, not an answer.
    let (f, s, _rx) = first_failure(bytes::Bytes::new()).await;
    assert!(!f.fatal);
    assert!(!f.error.is_refusal(), "{:?}", f.error);
    s.mark_down();
}
