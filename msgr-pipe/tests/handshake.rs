//! Handshakes: the connector against the real captured acceptor stream of a Pacific ceph-mon,
//! every reply tag provoked (connector side through scripted acceptors, acceptor side through
//! real sessions or a raw connector).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use common::*;
use msgr_pipe::testing::{
    encode_acceptor_hello, FixedAuthorizer, HostEvent, StepLog, TestHost, TestNet,
};
use msgr_pipe::{ConnState, Host, PipeConfig, Policy, SessionEvent, Side, Step};
use msgr_wire::{
    Banner, Connect, ConnectReply, EntityAddr, EntityName, EntityType, Tag, Timespec, Wire,
    ADDR_LEN, BANNER_LEN, CONNECT_LOSSY,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const HUNT_ACCEPTOR: &[u8] = include_bytes!("../../msgr-wire/tests/data/hunt-acceptor.bin");

fn mon_addr() -> EntityAddr {
    EntityAddr::new("127.0.0.1:6789".parse().unwrap(), 0)
}

fn client(
    net: &TestNet,
    policy: Policy,
) -> (
    Arc<TestHost>,
    tokio::sync::mpsc::UnboundedReceiver<HostEvent>,
) {
    let me = EntityAddr::new("0.0.0.0:0".parse().unwrap(), 0x3141_07ad);
    let (h, rx) = TestHost::new(EntityName::client(-1), me, policy, PipeConfig::default());
    net.attach(&h);
    (h, rx)
}

/// Splits what our connector wrote: banner, address, then the connects (no authorizers).
fn connects_written(mut w: &[u8], n: usize) -> (EntityAddr, Vec<Connect>) {
    Banner::decode(&mut w).unwrap();
    let me = EntityAddr::decode(&mut w).unwrap();
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(Connect::decode(&mut w).unwrap());
    }
    (me, out)
}

#[tokio::test]
async fn connector_against_captured_pacific_mon() {
    let net = TestNet::new(4096);
    let mut written = net.script(mon_addr().addr, Bytes::from_static(HUNT_ACCEPTOR));
    let (h, mut rx) = client(&net, Policy::lossy_client(0));
    let s = h.connect(mon_addr(), EntityType::MON);
    let mut types = Vec::new();
    let mut events = Vec::new();
    while !events.contains(&SessionEvent::Reset) {
        match tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap()
            .unwrap()
        {
            HostEvent::Message { incoming, .. } => {
                assert_eq!(incoming.msg.header.src, EntityName::mon(0));
                types.push(incoming.msg.header.ty);
            }
            HostEvent::Event { event, .. } => events.push(event),
        }
    }
    // The capture: SEQ reply, seq 0, KEEPALIVE2_ACK, four messages, then the mon closed.
    assert_eq!(types, vec![18, 4, 62, 4]);
    assert_eq!(events, vec![SessionEvent::Connect, SessionEvent::Reset]);
    assert_eq!(
        s.last_keepalive_ack(),
        Some(Timespec::new(1_795_760_655, 372_296_982))
    );
    assert_eq!(
        s.features(),
        0x3f01_cfbd_fffd_ffff & msgr_pipe::DEFAULT_FEATURES
    );
    assert!(s.is_lossy(), "the reply carried CONNECT_LOSSY");
    assert_eq!(s.seqs().1, 4, "in_seq");
    assert_eq!(s.seqs().2, 1, "connect_seq from the SEQ reply");
    assert_eq!(s.state(), ConnState::Closed);
    // We learned our address as the mon saw it.
    let learned = h.learned().unwrap();
    assert_eq!(learned.addr, "127.0.0.1:39888".parse().unwrap());
    // What we wrote: banner, our address, one connect like Ceph's, our in_seq (0) for SEQ.
    let w = written.recv().await.unwrap();
    let (me, connects) = connects_written(&w, 1);
    assert_eq!(me.nonce, 0x3141_07ad);
    let c = &connects[0];
    assert_eq!(
        (
            c.host_type,
            c.global_seq,
            c.connect_seq,
            c.protocol_version,
            c.authorizer_protocol
        ),
        (8, 1, 0, 15, 0)
    );
    assert_eq!(c.flags, CONNECT_LOSSY);
    assert_eq!(c.features, msgr_pipe::DEFAULT_FEATURES);
    assert_eq!(w.len(), BANNER_LEN + ADDR_LEN + 33 + 8);
    assert_eq!(&w[w.len() - 8..], &[0u8; 8]);
    s.closed().await;
}

/// The acceptor's opening: banner, its address (mon), our address as seen.
fn acceptor_prefix(acceptor: EntityAddr) -> BytesMut {
    let mut b = BytesMut::new();
    Banner.encode(&mut b);
    acceptor.encode(&mut b);
    EntityAddr::new("127.0.0.1:40000".parse().unwrap(), 0).encode(&mut b);
    b
}

fn reply(tag: Tag, gseq: u32, cseq: u32, flags: u8) -> ConnectReply {
    let mut r = ConnectReply::new(tag);
    r.features = msgr_pipe::DEFAULT_FEATURES;
    r.global_seq = gseq;
    r.connect_seq = cseq;
    r.flags = flags;
    r
}

#[tokio::test]
async fn connector_handles_retry_global_retry_session_resetsession_then_seq() {
    let net = TestNet::new(4096);
    let mut b = acceptor_prefix(mon_addr());
    reply(Tag::RetryGlobal, 100, 0, 0).encode(&mut b);
    reply(Tag::RetrySession, 0, 5, 0).encode(&mut b);
    reply(Tag::ResetSession, 0, 0, 0).encode(&mut b);
    reply(Tag::Seq, 7, 1, 0).encode(&mut b);
    b.put_u64_le(0);
    let mut written = net.script(mon_addr().addr, b.freeze());
    let (h, mut rx) = client(&net, Policy::lossless_client(0));
    let s = h.connect(mon_addr(), EntityType::MON);
    wait_event(&mut rx, SessionEvent::RemoteReset, Duration::from_secs(10)).await;
    wait_event(&mut rx, SessionEvent::Connect, Duration::from_secs(10)).await;
    s.mark_down();
    let w = written.recv().await.unwrap();
    let (_, c) = connects_written(&w, 4);
    assert_eq!((c[0].global_seq, c[0].connect_seq), (1, 0));
    assert_eq!(
        (c[1].global_seq, c[1].connect_seq),
        (101, 0),
        "RETRY_GLOBAL: above the peer's"
    );
    assert_eq!(
        (c[2].global_seq, c[2].connect_seq),
        (101, 5),
        "RETRY_SESSION: its cseq"
    );
    assert_eq!(
        (c[3].global_seq, c[3].connect_seq),
        (101, 0),
        "RESETSESSION: cseq 0"
    );
}

#[tokio::test]
async fn connector_resetsession_discards_queue_and_reports_remote_reset() {
    let net = TestNet::new(4096);
    let mut b = acceptor_prefix(mon_addr());
    reply(Tag::ResetSession, 0, 0, 0).encode(&mut b);
    reply(Tag::Ready, 7, 1, 0).encode(&mut b);
    let mut written = net.script(mon_addr().addr, b.freeze());
    let (h, mut rx) = client(&net, Policy::lossless_client(0));
    let s = h.connect(mon_addr(), EntityType::MON);
    s.send(msg(1)).await.unwrap();
    wait_event(&mut rx, SessionEvent::RemoteReset, Duration::from_secs(10)).await;
    wait_event(&mut rx, SessionEvent::Connect, Duration::from_secs(10)).await;
    s.mark_down();
    let w = written.recv().await.unwrap();
    let (_, c) = connects_written(&w, 2);
    assert_eq!(c[1].connect_seq, 0);
    assert_eq!(
        w.len(),
        BANNER_LEN + ADDR_LEN + 2 * 33,
        "the queued message was discarded"
    );
}

#[tokio::test(start_paused = true)]
async fn connector_wait_parks_then_retries_after_max_backoff() {
    let net = TestNet::new(4096);
    let mut b = acceptor_prefix(mon_addr());
    reply(Tag::Wait, 0, 0, 0).encode(&mut b);
    let _written = net.script(mon_addr().addr, b.freeze());
    let (h, _rx) = client(&net, Policy::lossless_client(0));
    let s = h.connect(mon_addr(), EntityType::MON);
    while s.state() != ConnState::Wait {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let dials = net.dials();
    tokio::time::sleep(Duration::from_secs(14)).await;
    assert_eq!(s.state(), ConnState::Wait);
    assert_eq!(net.dials(), dials, "parked while waiting");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(net.dials() > dials, "retried after max_backoff");
    s.mark_down();
}

/// A step log and the default configuration with it as the handshake hook.
fn logged() -> (Arc<StepLog>, PipeConfig) {
    let log = StepLog::new();
    let cfg = PipeConfig {
        hook: Some(log.clone()),
        ..PipeConfig::default()
    };
    (log, cfg)
}

/// The tags a connector read, as the raw bytes of [`Tag`]s.
fn tags(t: &[Tag]) -> Vec<u8> {
    t.iter().map(|t| t.byte()).collect()
}

/// An acceptor requiring a feature the connector lacks answers FEATURES, with Ceph's reply
/// features `(offered & supported) | required`; the connector reads exactly that one reply,
/// reports Refused and closes (no retry: Ceph's `Pipe::connect` stops on FEATURES).
#[tokio::test]
async fn features_required_gives_features_and_closes() {
    const BIT: u64 = 1 << 13;
    let net = TestNet::new(4096);
    let mut required = Policy::lossless_peer(0);
    required.features_required = BIT;
    let (log, cfg) = logged();
    let (a, mut arx) = host(1, Policy::lossless_client(0), cfg, &net);
    let mut lacking = Policy::lossless_client(0);
    lacking.features_supported &= !BIT;
    a.set_policy(EntityType::OSD, lacking);
    let (b, _brx) = host(2, required.clone(), PipeConfig::default(), &net);
    let s = a.connect(b.my_addr(), EntityType::OSD);
    s.send(msg(1)).await.unwrap();
    wait_event(&mut arx, SessionEvent::Refused, Duration::from_secs(10)).await;
    s.closed().await;
    assert_eq!(log.replies_received(), tags(&[Tag::Features]));
    assert_eq!(log.count(Side::Connector, Step::Ready), 0);
    assert_eq!(net.dials(), 1, "no reconnect after FEATURES");
    assert_eq!(s.state(), ConnState::Closed);
    assert_eq!(s.send(msg(2)).await, Err(msgr_pipe::SendError::Closed));
    assert!(b.sessions().is_empty());

    // The reply's bytes, read by a raw connector offering the same features.
    let offered = msgr_pipe::DEFAULT_FEATURES & !BIT;
    let mut x = raw_connect(&b, addr(3)).await;
    let mut c = raw_connect_msg(1, 0);
    c.features = offered;
    let r = raw_round(&mut x, &c).await;
    assert_eq!(r.tag, Tag::Features);
    assert_eq!(r.features, (offered & required.features_supported) | BIT);
    assert_eq!(r.protocol_version, msgr_wire::OSD_PROTOCOL);
    assert!(r.authorizer.is_empty());
}

/// An acceptor that refuses the authorizer answers BADAUTHORIZER; the connector builds a new
/// authorizer and tries once more on the same socket, reads BADAUTHORIZER again and gives up
/// (Ceph's `got_bad_auth`): two connects and two BADAUTHORIZER replies on the wire, one dial.
#[tokio::test]
async fn refused_authorizer_gives_badauthorizer_twice_then_closes() {
    let net = TestNet::new(4096);
    let (log, cfg) = logged();
    let (a, mut arx) = host(1, Policy::lossless_client(0), cfg, &net);
    let (blog, bcfg) = logged();
    let (b, _brx) = host(2, Policy::lossless_peer(0), bcfg, &net);
    a.set_authorizer(Some(Arc::new(FixedAuthorizer::default())));
    b.set_authorizer(Some(Arc::new(FixedAuthorizer { refuse: true })));
    let s = a.connect(b.my_addr(), EntityType::OSD);
    wait_event(&mut arx, SessionEvent::Refused, Duration::from_secs(10)).await;
    s.closed().await;
    assert_eq!(
        log.replies_received(),
        tags(&[Tag::BadAuthorizer, Tag::BadAuthorizer])
    );
    assert_eq!(log.count(Side::Connector, Step::ConnectSent), 2);
    let bad = Step::ReplySent(Tag::BadAuthorizer.byte());
    assert_eq!(blog.count(Side::Acceptor, bad), 2);
    assert_eq!(
        net.dials(),
        1,
        "one socket, two connects, no reconnect loop"
    );

    // The reply's bytes, read by a raw connector presenting an authorizer.
    let mut x = raw_connect(&b, addr(3)).await;
    let mut c = raw_connect_msg(1, 0);
    c.authorizer_protocol = msgr_wire::AUTH_NONE;
    c.authorizer = Bytes::from_static(b"let me in");
    let r = raw_round(&mut x, &c).await;
    assert_eq!(r.tag, Tag::BadAuthorizer);
    assert_eq!(r.protocol_version, msgr_wire::OSD_PROTOCOL);
    assert_eq!(r.features, msgr_pipe::DEFAULT_FEATURES);
    assert!(r.authorizer.is_empty());
    drop(x);

    // A matching authorizer gets in.
    b.set_authorizer(Some(Arc::new(FixedAuthorizer::default())));
    let s = a.connect(b.my_addr(), EntityType::OSD);
    wait_event(&mut arx, SessionEvent::Connect, Duration::from_secs(10)).await;
    s.mark_down();
}

/// A connector speaking the wrong protocol version gets BADPROTOVER carrying the acceptor's
/// version, and closes without retrying (Ceph: "connect protocol version mismatch", stop).
#[tokio::test]
async fn wrong_protocol_version_gives_badprotover_and_closes() {
    let net = TestNet::new(4096);
    let (log, cfg) = logged();
    let (a, mut arx) = host(1, Policy::lossless_client(0), cfg, &net);
    a.set_name(EntityName::client(1));
    let (b, _brx) = host(2, Policy::lossless_peer(0), PipeConfig::default(), &net);
    // b is an OSD (expects 24 from a client); dialling it as a MON sends 15.
    let s = a.connect(b.my_addr(), EntityType::MON);
    wait_event(&mut arx, SessionEvent::Refused, Duration::from_secs(10)).await;
    s.closed().await;
    assert_eq!(log.replies_received(), tags(&[Tag::BadProtoVer]));
    assert_eq!(net.dials(), 1, "no reconnect after BADPROTOVER");
    assert!(b.sessions().is_empty());

    // The reply's bytes: a client offering the client-to-mon version 15 to an OSD.
    let mut x = raw_connect(&b, addr(3)).await;
    let mut c = raw_connect_msg(1, 0);
    c.host_type = u32::from(EntityType::CLIENT.0);
    c.protocol_version = msgr_wire::MONC_PROTOCOL;
    let r = raw_round(&mut x, &c).await;
    assert_eq!(r.tag, Tag::BadProtoVer);
    assert_eq!(
        r.protocol_version,
        msgr_wire::OSDC_PROTOCOL,
        "the OSD's own"
    );
    assert!(r.authorizer.is_empty());
}

/// A raw connector speaking to an acceptor: returns the stream after the address exchange.
async fn raw_connect(b: &Arc<TestHost>, me: EntityAddr) -> tokio::io::DuplexStream {
    let (mut x, y) = tokio::io::duplex(1 << 16);
    let host: Arc<dyn Host> = b.clone();
    tokio::spawn(msgr_pipe::Session::accept_shared(
        host,
        y,
        me.addr,
        b.config(),
    ));
    let mut hello = vec![0u8; BANNER_LEN + 2 * ADDR_LEN];
    x.read_exact(&mut hello).await.unwrap();
    let mut out = BytesMut::new();
    Banner.encode(&mut out);
    me.encode(&mut out);
    x.write_all(&out).await.unwrap();
    x
}

async fn raw_round(x: &mut tokio::io::DuplexStream, c: &Connect) -> ConnectReply {
    let mut out = BytesMut::new();
    c.encode(&mut out);
    x.write_all(&out).await.unwrap();
    let mut r = vec![0u8; 26];
    x.read_exact(&mut r).await.unwrap();
    let len = ConnectReply::peek_authorizer_len(&r).unwrap() as usize;
    let mut rest = vec![0u8; len];
    x.read_exact(&mut rest).await.unwrap();
    r.extend_from_slice(&rest);
    ConnectReply::decode(&mut r.as_slice()).unwrap()
}

fn raw_connect_msg(gseq: u32, cseq: u32) -> Connect {
    Connect {
        features: msgr_pipe::DEFAULT_FEATURES,
        host_type: EntityType::OSD.host_type(),
        global_seq: gseq,
        connect_seq: cseq,
        protocol_version: 10,
        ..Connect::default()
    }
}

#[tokio::test]
async fn acceptor_answers_retry_global_retry_session_resetsession() {
    let net = TestNet::new(1 << 16);
    let (a, mut arx) = host(1, Policy::lossless_peer(0), PipeConfig::default(), &net);
    let (b, mut brx) = host(2, Policy::lossless_peer(0), PipeConfig::default(), &net);
    let s = a.connect(b.my_addr(), EntityType::OSD);
    s.send(msg(1)).await.unwrap();
    recv_n(&mut brx, 1, Duration::from_secs(10)).await;
    let existing = b.lookup(&a.my_addr()).unwrap();
    let (_, _, cseq) = existing.seqs();
    assert_eq!(cseq, 1);

    // Someone claiming a's address, with an old global seq: RETRY_GLOBAL.
    let mut x = raw_connect(&b, a.my_addr()).await;
    let r = raw_round(&mut x, &raw_connect_msg(0, 1)).await;
    assert_eq!(r.tag, Tag::RetryGlobal);
    assert_eq!(
        r.global_seq, 1,
        "the existing session's peer global seq (a's first connect)"
    );
    // A fresh global seq but the same connect seq while the session is open: RETRY_SESSION.
    let r = raw_round(&mut x, &raw_connect_msg(1000, 1)).await;
    assert_eq!((r.tag, r.connect_seq), (Tag::RetrySession, 2));
    drop(x);

    // An unknown peer with connect_seq > 0: RESETSESSION.
    let stranger = EntityAddr::new("127.0.0.1:7000".parse().unwrap(), 77);
    let mut x = raw_connect(&b, stranger).await;
    let r = raw_round(&mut x, &raw_connect_msg(5, 3)).await;
    assert_eq!(r.tag, Tag::ResetSession);
    // Unsupported required features in the reply to a failure: (offered & supported) | required.
    assert_eq!(r.features, msgr_pipe::DEFAULT_FEATURES);
    // Then connect_seq 0 opens a session, answered with SEQ (we advertised RECONNECT_SEQ).
    let r = raw_round(&mut x, &raw_connect_msg(5, 0)).await;
    assert_eq!((r.tag, r.connect_seq), (Tag::Seq, 1));
    let mut seq = [0u8; 8];
    x.read_exact(&mut seq).await.unwrap();
    assert_eq!(seq, [0u8; 8]);
    x.write_all(&0u64.to_le_bytes()).await.unwrap();
    wait_event(&mut brx, SessionEvent::Accept, Duration::from_secs(10)).await;
    assert!(b.lookup(&stranger).is_some());
    // The real session was not disturbed.
    s.send(msg(2)).await.unwrap();
    let (got, _) = recv_n(&mut brx, 1, Duration::from_secs(10)).await;
    assert_eq!(got, vec![2]);
    let (_, events) = drain(&mut arx);
    assert!(!events.contains(&SessionEvent::Reset));
}

#[tokio::test]
async fn connector_against_captured_status_session_with_a_data_segment() {
    let net = TestNet::new(4096);
    let bytes = Bytes::from_static(include_bytes!(
        "../../msgr-wire/tests/data/status-acceptor.bin"
    ));
    let _written = net.script(mon_addr().addr, bytes);
    let (h, mut rx) = client(&net, Policy::lossy_client(0));
    let s = h.connect(mon_addr(), EntityType::MON);
    let mut got = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap()
            .unwrap()
        {
            HostEvent::Message { incoming, .. } => {
                let m = &incoming.msg;
                got.push((m.header.seq, m.header.ty, m.front.len(), m.data.len()));
            }
            HostEvent::Event {
                event: SessionEvent::Reset,
                ..
            } => break,
            HostEvent::Event { .. } => {}
        }
    }
    assert_eq!(
        got,
        vec![
            (1, 18, 24, 0),
            (2, 4, 170, 0),
            (3, 62, 4, 0),
            (4, 4, 170, 0),
            (5, 1796, 495, 0),
            (6, 41, 690, 0),
            (7, 51, 72, 73271),
            (8, 51, 54, 367)
        ]
    );
    s.closed().await;
}

#[tokio::test]
async fn acceptor_against_captured_ceph_client() {
    let (h, mut rx) = TestHost::new(
        EntityName::mon(0),
        mon_addr(),
        Policy::stateless_server(0),
        PipeConfig::default(),
    );
    let (mut x, y) = tokio::io::duplex(1 << 16);
    let host: Arc<dyn Host> = h.clone();
    let peer: std::net::SocketAddr = "127.0.0.1:39888".parse().unwrap();
    let accept = tokio::spawn(msgr_pipe::Session::accept(
        host,
        y,
        peer,
        PipeConfig::default(),
    ));
    x.write_all(include_bytes!(
        "../../msgr-wire/tests/data/hunt-connector.bin"
    ))
    .await
    .unwrap();
    let mut types = Vec::new();
    while types.len() < 2 {
        if let HostEvent::Message { incoming, .. } =
            tokio::time::timeout(Duration::from_secs(10), rx.recv())
                .await
                .unwrap()
                .unwrap()
        {
            assert_eq!(incoming.msg.header.src, EntityName::client(-1));
            types.push(incoming.msg.header.ty);
        }
    }
    assert_eq!(types, vec![17, 15]);
    let s = accept.await.unwrap().unwrap();
    // The client claimed 127.0.0.1, port 0, its nonce: that is the session key.
    assert_eq!(
        s.peer_addr(),
        EntityAddr::new("127.0.0.1:0".parse().unwrap(), 0x3141_07ad)
    );
    // What our acceptor wrote: hello, a SEQ reply, our in_seq, then the KEEPALIVE2_ACK echo.
    let mut out = vec![0u8; BANNER_LEN + 2 * ADDR_LEN + 26 + 8 + 9];
    x.read_exact(&mut out).await.unwrap();
    let mut r = &out[..];
    Banner::decode(&mut r).unwrap();
    assert_eq!(EntityAddr::decode(&mut r).unwrap(), mon_addr());
    assert_eq!(
        EntityAddr::decode(&mut r).unwrap(),
        EntityAddr::new(peer, 0)
    );
    let reply = ConnectReply::decode(&mut r).unwrap();
    assert_eq!(
        (
            reply.tag,
            reply.connect_seq,
            reply.protocol_version,
            reply.flags
        ),
        (Tag::Seq, 1, 15, CONNECT_LOSSY)
    );
    assert_eq!(reply.features, msgr_pipe::DEFAULT_FEATURES);
    assert_eq!(&r[..8], &[0u8; 8]);
    assert_eq!(r[8], Tag::Keepalive2Ack.byte());
    let mut ts = &r[9..17];
    assert_eq!(
        Timespec::decode(&mut ts).unwrap(),
        Timespec::new(1_795_760_655, 372_296_982)
    );
    assert!(s.last_keepalive().is_some());
    s.mark_down();
}

async fn accept_raw(
    b: &Arc<TestHost>,
    bytes: &[u8],
    close: bool,
) -> Result<msgr_pipe::Session, msgr_pipe::PipeError> {
    let (mut x, y) = tokio::io::duplex(1 << 16);
    let host: Arc<dyn Host> = b.clone();
    let peer: std::net::SocketAddr = "127.0.0.1:40000".parse().unwrap();
    let t = tokio::spawn(msgr_pipe::Session::accept_shared(host, y, peer, b.config()));
    x.write_all(bytes).await.unwrap();
    if close {
        drop(x);
        return tokio::time::timeout(Duration::from_secs(20), t)
            .await
            .unwrap()
            .unwrap();
    }
    let r = tokio::time::timeout(Duration::from_secs(20), t)
        .await
        .unwrap()
        .unwrap();
    drop(x);
    r
}

fn client_hello() -> BytesMut {
    let mut out = BytesMut::new();
    Banner.encode(&mut out);
    EntityAddr::new("127.0.0.1:7100".parse().unwrap(), 5).encode(&mut out);
    out
}

#[tokio::test(start_paused = true)]
async fn a_misbehaving_peer_gets_a_typed_error_and_nothing_else_changes() {
    let net = TestNet::new(1 << 16);
    let (b, mut brx) = host(2, Policy::lossless_peer(0), PipeConfig::default(), &net);
    let (a, _arx) = host(1, Policy::lossless_peer(0), PipeConfig::default(), &net);
    let good = a.connect(b.my_addr(), EntityType::OSD);
    good.send(msg(1)).await.unwrap();
    recv_n(&mut brx, 1, Duration::from_secs(10)).await;

    // A bad banner.
    let e = accept_raw(&b, b"ceph v2\n\0\0", false).await.unwrap_err();
    assert!(matches!(e, msgr_pipe::PipeError::Wire(_)), "{e}");
    // An authorizer length far beyond the limit: refused before anything is allocated.
    let mut m = client_hello();
    let mut c = raw_connect_msg(1, 0);
    c.authorizer = Bytes::from_static(b"x");
    c.encode(&mut m);
    m[BANNER_LEN + ADDR_LEN + 28..BANNER_LEN + ADDR_LEN + 32]
        .copy_from_slice(&u32::MAX.to_le_bytes());
    let e = accept_raw(&b, &m, false).await.unwrap_err();
    assert!(matches!(e, msgr_pipe::PipeError::Wire(_)), "{e}");
    // A host type that is not a byte.
    let mut m = client_hello();
    let mut c = raw_connect_msg(1, 0);
    c.host_type = 0x1_0000;
    c.encode(&mut m);
    let e = accept_raw(&b, &m, false).await.unwrap_err();
    assert!(matches!(e, msgr_pipe::PipeError::Wire(_)), "{e}");
    // A complete handshake, then a garbage tag: that session faults and closes.
    let mut m = client_hello();
    raw_connect_msg(1, 0).encode(&mut m);
    m.put_u64_le(0); // our in_seq for the SEQ exchange
    m.put_u8(0x42);
    let s = accept_raw(&b, &m, false).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(s.stats().faults, 1);
    assert_eq!(
        s.state(),
        ConnState::Standby,
        "lossless: it waits for the peer"
    );
    s.mark_down();
    // Truncated in the middle of a connect: an I/O error.
    let mut m = client_hello();
    m.put_slice(&[1, 2, 3]);
    let e = accept_raw(&b, &m, true).await.unwrap_err();
    assert!(matches!(e, msgr_pipe::PipeError::Io(_)), "{e}");

    // The good session never noticed.
    good.send(msg(2)).await.unwrap();
    let (got, events) = recv_n(&mut brx, 1, Duration::from_secs(10)).await;
    assert_eq!(got, vec![2]);
    assert!(!events.contains(&SessionEvent::Reset), "{events:?}");
    assert_eq!(good.stats().faults, 0);
}

#[tokio::test(start_paused = true)]
async fn connector_survives_garbage_replies() {
    for garbage in [
        {
            let mut b = acceptor_prefix(mon_addr());
            reply(Tag::Msg, 0, 0, 0).encode(&mut b);
            b
        },
        {
            let mut b = acceptor_prefix(mon_addr());
            b.put_slice(&[99; 26]);
            b
        },
        {
            let mut b = acceptor_prefix(mon_addr());
            let mut r = BytesMut::new();
            reply(Tag::Ready, 0, 0, 0).encode(&mut r);
            r[21..25].copy_from_slice(&u32::MAX.to_le_bytes());
            b.put_slice(&r);
            b
        },
        {
            let mut b = acceptor_prefix(EntityAddr::new("127.0.0.1:6789".parse().unwrap(), 99));
            reply(Tag::Ready, 0, 1, 0).encode(&mut b);
            b
        },
    ] {
        let net = TestNet::new(4096);
        let _w = net.script(mon_addr().addr, garbage.freeze());
        let (h, mut rx) = client(&net, Policy::lossless_client(0));
        let s = h.connect(mon_addr(), EntityType::MON);
        s.send(msg(1)).await.unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(
            s.state(),
            ConnState::Connecting,
            "keeps retrying with backoff"
        );
        // Each garbage reply fails the attempt: dials at 0, 0, 0.2, 0.6, 1.4 and 3.0 s, the
        // next at 6.2 s (see `failing_dial_at`).
        assert!(failing_dial_at(6) < 5.0 && failing_dial_at(7) > 5.0);
        assert_eq!(net.dials(), 6, "dials in 5 s");
        assert_eq!(s.stats().queued, 1, "nothing lost");
        let (_, events) = drain(&mut rx);
        assert!(events.is_empty(), "{events:?}");
        s.mark_down();
    }
}

/// When the n-th dial (from 1) of a connector whose every attempt fails happens, in seconds
/// after the first, by Ceph's rule (Simple's `Pipe::fault`) with the default backoffs: the
/// first failed attempt is retried at once; from the second on, each waits `initial_backoff`
/// (0.2 s) doubled for each further consecutive failure, capped at `max_backoff` (15 s).
/// Dials at 0, 0, 0.2, 0.6, 1.4, 3.0, 6.2, 12.6, 25.4, 40.4, 55.4, ...
fn failing_dial_at(n: u32) -> f64 {
    let cfg = PipeConfig::default();
    let (initial, max) = (
        cfg.initial_backoff.as_secs_f64(),
        cfg.max_backoff.as_secs_f64(),
    );
    (2..n)
        .map(|k| (initial * 2f64.powi(k as i32 - 2)).min(max))
        .sum()
}

/// Sleeps (paused clock) until `at` seconds after `start`.
async fn sleep_until(start: tokio::time::Instant, at: f64) {
    tokio::time::sleep_until(start + Duration::from_secs_f64(at)).await;
}

/// A peer that accepts and hangs up at once (before its banner, or after it and both
/// addresses), on every dial: each attempt fails, so a lossless connector backs off (the first
/// failure retried at once, then doubling from `initial_backoff` to `max_backoff`; default
/// settings). Each dial is checked against its instant from both sides: not yet 10 ms before
/// it (where it waited at all), done 10 ms after.
#[tokio::test(start_paused = true)]
async fn reconnects_to_a_peer_that_hangs_up_back_off_doubling_to_max_backoff() {
    let hello = {
        let mut b = BytesMut::new();
        encode_acceptor_hello(&mut b, &mon_addr(), &addr(3));
        b.freeze()
    };
    for script in [Bytes::new(), hello] {
        let net = TestNet::new(4096);
        let _w = net.script(mon_addr().addr, script.clone());
        let (h, mut rx) = client(&net, Policy::lossless_client(0));
        let start = tokio::time::Instant::now();
        let s = h.connect(mon_addr(), EntityType::MON);
        s.send(msg(1)).await.unwrap();
        let eps = 0.01;
        for n in 1..=11u32 {
            let at = failing_dial_at(n);
            if n > 1 && at > failing_dial_at(n - 1) {
                sleep_until(start, at - eps).await;
                assert_eq!(
                    net.dials(),
                    u64::from(n - 1),
                    "dial {n} before {at} s ({} script bytes)",
                    script.len()
                );
            }
            sleep_until(start, at + eps).await;
            // Dials at the same instant (the immediate retry) are counted with the last.
            let at_once = failing_dial_at(n + 1) == at;
            let want = u64::from(n + u32::from(at_once));
            assert_eq!(
                net.dials(),
                want,
                "dial {n} not at {at} s ({} script bytes)",
                script.len()
            );
        }
        assert!(
            failing_dial_at(2) == 0.0 && (failing_dial_at(11) - 55.4).abs() < 1e-9,
            "the rule's figures"
        );
        assert_eq!(s.state(), ConnState::Connecting);
        assert_eq!(s.stats().queued, 1, "nothing lost");
        let (_, events) = drain(&mut rx);
        assert!(events.is_empty(), "{events:?}");
        s.mark_down();
        s.closed().await;
    }
}

/// A peer that completes each handshake (READY) and hangs up at once: every attempt
/// succeeded, so the backoff is zero each time and the fault of the open session reconnects
/// at once (Ceph's `Pipe::fault` sets `backoff = 0` when leaving an open session): 50 dials
/// without the (paused) clock moving. The queued message stays queued, and no reset is
/// reported.
#[tokio::test(start_paused = true)]
async fn reconnects_to_a_peer_that_opens_and_hangs_up_are_immediate() {
    let net = TestNet::new(4096);
    let mut b = acceptor_prefix(mon_addr());
    reply(Tag::Ready, 1, 1, 0).encode(&mut b);
    let _w = net.script(mon_addr().addr, b.freeze());
    let (h, mut rx) = client(&net, Policy::lossless_client(0));
    let start = tokio::time::Instant::now();
    let s = h.connect(mon_addr(), EntityType::MON);
    s.send(msg(1)).await.unwrap();
    // Only yields: the clock cannot move while this task is runnable, so a backoff would
    // hold the dials below 50 until the bound on yields ends the loop.
    let mut yields = 0u32;
    while net.dials() < 50 && yields < 1_000_000 {
        tokio::task::yield_now().await;
        yields += 1;
    }
    assert!(
        net.dials() >= 50,
        "reconnects waited for a backoff: {} dials",
        net.dials()
    );
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_ne!(s.state(), ConnState::Closed);
    // Each socket opened and faulted: every dial but the first is the reconnect of an open
    // session (the last may still be in its handshake).
    let st = s.stats();
    assert!(st.faults >= 49 && st.reconnects >= 48, "{st:?}");
    assert_eq!(st.queued, 1, "nothing lost");
    s.mark_down();
    s.closed().await;
    let (_, events) = drain(&mut rx);
    assert!(
        !events.contains(&SessionEvent::Reset) && !events.contains(&SessionEvent::RemoteReset),
        "{events:?}"
    );
}
