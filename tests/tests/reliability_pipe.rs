//! msgr-pipe sessions against scripted peers over the in-memory `TestNet`: the regression
//! tests of what the handshake fuzz targets (`fuzz/fuzz_targets/handshake_*.rs`) found, each
//! asserting the one outcome Ceph's messenger gives.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use msgr_pipe::testing::{encode_acceptor_hello, ready_reply, HostEvent, TestHost, TestNet};
use msgr_pipe::{ConnState, PipeConfig, Policy, Session, SessionEvent};
use msgr_tests::fixture::{log_from_env, WAIT};
use msgr_wire::{EntityAddr, EntityName, EntityType, Message, Wire};
use tokio::sync::mpsc::UnboundedReceiver;

fn addr(s: &str, nonce: u32) -> EntityAddr {
    EntityAddr::new(s.parse::<SocketAddr>().expect("literal address"), nonce)
}

/// A client host (default configuration) whose every dial of the returned address meets a
/// scripted peer that writes `script`, then closes.
fn scripted(
    policy: Policy,
    script: impl FnOnce(&EntityAddr, &EntityAddr) -> Bytes,
) -> (
    TestNet,
    Arc<TestHost>,
    UnboundedReceiver<HostEvent>,
    EntityAddr,
) {
    log_from_env();
    let me = addr("127.0.0.1:40000", 7);
    let server = addr("127.0.0.1:6800", 1);
    let net = TestNet::new(64 << 10);
    let (host, rx) = TestHost::new(EntityName::client(7), me, policy, PipeConfig::default());
    net.attach(&host);
    let _written = net.script(server.addr, script(&server, &me));
    (net, host, rx, server)
}

/// The acceptor's hello (banner, its address, ours) and a READY reply for a connector of
/// `policy`.
fn hello_and_ready(lossy: bool) -> impl FnOnce(&EntityAddr, &EntityAddr) -> Bytes {
    move |server, me| {
        let mut stream = BytesMut::new();
        encode_acceptor_hello(&mut stream, server, me);
        ready_reply(lossy).encode(&mut stream);
        stream.freeze()
    }
}

/// The session events received so far.
fn events(rx: &mut UnboundedReceiver<HostEvent>) -> Vec<SessionEvent> {
    let mut out = Vec::new();
    while let Ok(e) = rx.try_recv() {
        if let HostEvent::Event { event, .. } = e {
            out.push(event);
        }
    }
    out
}

/// Yields until `net` counted `n` dials; false if a million yields did not get there (the
/// clock may be paused: only yields, no timer, so a backoff cannot be waited out here).
async fn dials_reach(net: &TestNet, n: u64) -> bool {
    for _ in 0..1_000_000 {
        if net.dials() >= n {
            return true;
        }
        tokio::task::yield_now().await;
    }
    false
}

async fn closes_on_mark_down(s: &Session, net: &TestNet) {
    s.mark_down();
    assert!(
        tokio::time::timeout(WAIT, s.closed()).await.is_ok(),
        "session did not close after mark_down (dials {})",
        net.dials()
    );
}

/// A lossy connector meets a peer that answers READY and closes: the session opens (one
/// Connect), the end of stream faults it, and a lossy session ends at its first fault with
/// one Reset (Ceph: `ms_handle_reset`), without dialling again.
async fn lossy_ready_then_eof() {
    let (net, host, mut rx, server) = scripted(Policy::lossy_client(0), hello_and_ready(true));
    let s = host.connect(server, EntityType::OSD);
    let _ = s.send(Message::new(2, Bytes::from_static(b"hi"))).await;
    assert!(
        tokio::time::timeout(WAIT, s.closed()).await.is_ok(),
        "lossy session still up after its socket ended (dials {})",
        net.dials()
    );
    assert_eq!(
        events(&mut rx),
        vec![SessionEvent::Connect, SessionEvent::Reset]
    );
    assert_eq!(s.state(), ConnState::Closed);
    assert_eq!(net.dials(), 1, "a lossy session never redials");
    assert!(host.sessions().is_empty());
}

/// A lossless connector meets a peer that answers READY and closes, on every dial: each
/// attempt is a successful handshake, so (Ceph's rule) the backoff stays zero and the fault
/// of the open session redials at once: 20 dials without a timer. Nothing is lost (the
/// message stays queued), no reset is reported, and `mark_down` ends it promptly.
async fn lossless_ready_then_eof() {
    let (net, host, mut rx, server) = scripted(Policy::lossless_client(0), hello_and_ready(false));
    let s = host.connect(server, EntityType::OSD);
    let _ = s.send(Message::new(2, Bytes::from_static(b"hi"))).await;
    assert!(
        dials_reach(&net, 20).await,
        "only {} dials: a backoff after successful handshakes",
        net.dials()
    );
    assert_ne!(s.state(), ConnState::Closed);
    // Kept: queued, or written to the socket that is about to end and not yet requeued
    // (a check that lands between a write and its socket's EOF sees it unacknowledged).
    let stats = s.stats();
    assert_eq!(
        stats.queued + stats.unacked,
        1,
        "the message was dropped: {stats:?}"
    );
    closes_on_mark_down(&s, &net).await;
    let ev = events(&mut rx);
    assert!(ev.contains(&SessionEvent::Connect), "{ev:?}");
    assert!(
        !ev.contains(&SessionEvent::Reset) && !ev.contains(&SessionEvent::RemoteReset),
        "{ev:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipe_lossy_ready_then_eof() {
    lossy_ready_then_eof().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipe_lossless_ready_then_eof() {
    lossless_ready_then_eof().await;
}

/// Runs `test` on a current-thread runtime with a paused clock (as the fuzz target does),
/// watched by a real-time thread, so that a hang fails the test instead of stalling it.
fn paused(test: fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>) {
    let (tx, rx) = std::sync::mpsc::channel();
    let runner = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .expect("runtime");
        rt.block_on(test());
        let _ = tx.send(());
    });
    match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(()) => {}
        // The test panicked (and dropped the sender): show its own message.
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            if let Err(panic) = runner.join() {
                std::panic::resume_unwind(panic);
            }
        }
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => panic!("hung for 20 s"),
    }
}

#[test]
fn pipe_lossy_ready_then_eof_paused_clock() {
    paused(|| Box::pin(lossy_ready_then_eof()));
}

#[test]
fn pipe_lossless_ready_then_eof_paused_clock() {
    paused(|| Box::pin(lossless_ready_then_eof()));
}

/// A peer that accepts and closes at once, on every dial, on real threads and the real clock
/// (measuring dials over a real-time window is the point): every attempt fails, so the
/// lossless connector backs off by Ceph's rule with the default backoffs (Simple's
/// `Pipe::fault`: the first failure retried at once), dialling at 0, 0, 0.2, 0.6 and then
/// 1.4 s. In the first second: exactly 4 dials (0.4 s of slack on both sides); a hot loop
/// makes thousands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipe_reconnects_to_a_peer_that_hangs_up_are_paced() {
    let (net, host, mut rx, server) = scripted(Policy::lossless_client(0), |_, _| Bytes::new());
    let s = host.connect(server, EntityType::OSD);
    let _ = s.send(Message::new(2, Bytes::from_static(b"hi"))).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let dials = net.dials();
    assert_eq!(
        dials, 4,
        "{dials} dials in one second to a peer that hangs up"
    );
    assert_eq!(s.stats().queued, 1, "nothing lost");
    closes_on_mark_down(&s, &net).await;
    assert!(events(&mut rx).is_empty(), "never opened, never reset");
}
