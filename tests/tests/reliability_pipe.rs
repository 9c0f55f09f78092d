//! msgr-pipe sessions against scripted peers over the in-memory `TestNet`: the regression
//! tests of what the handshake fuzz targets (`fuzz/fuzz_targets/handshake_*.rs`) found.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use msgr_pipe::testing::{encode_acceptor_hello, ready_reply, TestHost, TestNet};
use msgr_pipe::{PipeConfig, Policy};
use msgr_wire::{EntityAddr, EntityName, EntityType, Message, Wire};

fn addr(s: &str, nonce: u32) -> EntityAddr {
    EntityAddr::new(s.parse::<SocketAddr>().expect("literal address"), nonce)
}

/// The acceptor's hello (banner, its address, ours) and a READY reply, then end of stream:
/// the connector opens, reads EOF, and must fault and end (lossy) or go on reconnecting
/// (lossless) without spinning; `mark_down` then ends it promptly.
async fn ready_then_eof(policy: Policy) {
    let lossy = policy.lossy;
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
    let me = addr("127.0.0.1:40000", 7);
    let server = addr("127.0.0.1:6800", 1);
    let mut stream = BytesMut::new();
    encode_acceptor_hello(&mut stream, &server, &me);
    ready_reply(lossy).encode(&mut stream);
    let config = PipeConfig {
        handshake_timeout: Duration::from_secs(1),
        read_timeout: Duration::from_secs(2),
        max_backoff: Duration::from_millis(200),
        initial_backoff: Duration::from_millis(100),
        ..PipeConfig::default()
    };
    let net = TestNet::new(64 << 10);
    let (host, _rx) = TestHost::new(EntityName::client(7), me, policy, config);
    net.attach(&host);
    let _written = net.script(server.addr, stream.freeze());
    let s = host.connect(server, EntityType::OSD);
    let _ = s.send(Message::new(2, Bytes::from_static(b"hi"))).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !s.is_closed() && net.dials() < 3 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    s.mark_down();
    assert!(
        tokio::time::timeout(Duration::from_secs(5), s.closed())
            .await
            .is_ok(),
        "session did not close after mark_down (dials {})",
        net.dials()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipe_lossy_ready_then_eof() {
    tokio::time::timeout(
        Duration::from_secs(20),
        ready_then_eof(Policy::lossy_client(0)),
    )
    .await
    .expect("no hang");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipe_lossless_ready_then_eof() {
    tokio::time::timeout(
        Duration::from_secs(20),
        ready_then_eof(Policy::lossless_client(0)),
    )
    .await
    .expect("no hang");
}

/// Runs `ready_then_eof` on a current-thread runtime with a paused clock (as the fuzz target
/// does), watched by a real-time thread: with the clock paused, time only advances when every
/// task is idle, so a task that never goes idle (a busy loop) hangs it.
fn paused(policy: Policy) -> bool {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .expect("runtime");
        rt.block_on(ready_then_eof(policy));
        let _ = tx.send(());
    });
    rx.recv_timeout(Duration::from_secs(20)).is_ok()
}

#[test]
fn pipe_lossy_ready_then_eof_paused_clock() {
    assert!(
        paused(Policy::lossy_client(0)),
        "busy loop: the runtime never went idle"
    );
}

#[test]
fn pipe_lossless_ready_then_eof_paused_clock() {
    assert!(
        paused(Policy::lossless_client(0)),
        "busy loop: the runtime never went idle"
    );
}

/// A peer that answers READY and closes at once, on every dial: the lossless connector's
/// reconnects must be paced by its backoff (100 ms initial, 200 ms max here), not spin. In one
/// second at most a few tens of dials are reasonable; a hot loop makes thousands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipe_reconnects_to_a_flapping_peer_are_paced() {
    let me = addr("127.0.0.1:40000", 7);
    let server = addr("127.0.0.1:6800", 1);
    let mut stream = BytesMut::new();
    encode_acceptor_hello(&mut stream, &server, &me);
    ready_reply(false).encode(&mut stream);
    let config = PipeConfig {
        max_backoff: Duration::from_millis(200),
        initial_backoff: Duration::from_millis(100),
        ..PipeConfig::default()
    };
    let net = TestNet::new(64 << 10);
    let (host, _rx) = TestHost::new(
        EntityName::client(7),
        me,
        Policy::lossless_client(0),
        config,
    );
    net.attach(&host);
    let _written = net.script(server.addr, stream.freeze());
    let s = host.connect(server, EntityType::OSD);
    let _ = s.send(Message::new(2, Bytes::from_static(b"hi"))).await;
    // Measuring a rate over a fixed real-time window is the point of this test.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let dials = net.dials();
    s.mark_down();
    assert!(
        tokio::time::timeout(Duration::from_secs(5), s.closed())
            .await
            .is_ok(),
        "session did not close"
    );
    assert!(
        dials <= 30,
        "{dials} dials in one second to a flapping peer"
    );
}
