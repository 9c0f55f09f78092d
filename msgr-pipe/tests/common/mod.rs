//! Shared helpers of the integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use msgr_pipe::testing::{HostEvent, TestHost, TestNet};
use msgr_pipe::{PipeConfig, Policy, Session, SessionEvent};
use msgr_wire::{EntityAddr, EntityName, Message};
use tokio::sync::mpsc::UnboundedReceiver;

pub const TEST_TYPE: u16 = 0x4242;

pub fn addr(n: u32) -> EntityAddr {
    EntityAddr::new(format!("127.0.0.1:{}", 6800 + n).parse().unwrap(), n)
}

pub fn host(
    n: u32,
    policy: Policy,
    config: PipeConfig,
    net: &TestNet,
) -> (Arc<TestHost>, UnboundedReceiver<HostEvent>) {
    let (h, rx) = TestHost::new(EntityName::osd(i64::from(n)), addr(n), policy, config);
    net.attach(&h);
    (h, rx)
}

pub fn msg(i: u64) -> Message {
    Message::new(TEST_TYPE, i.to_le_bytes().to_vec())
}

/// A test message numbered `i`, padded to `len` bytes of front.
pub fn msg_padded(i: u64, len: usize) -> Message {
    let mut v = i.to_le_bytes().to_vec();
    v.resize(len.max(8), 0xab);
    Message::new(TEST_TYPE, v)
}

pub fn payload(m: &Message) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&m.front[..8]);
    u64::from_le_bytes(b)
}

/// Receives until `n` test messages arrived; returns their payload numbers and the events
/// seen on the way. Panics after `limit` of (possibly paused) time.
pub async fn recv_n(
    rx: &mut UnboundedReceiver<HostEvent>,
    n: usize,
    limit: Duration,
) -> (Vec<u64>, Vec<SessionEvent>) {
    let r = recv_timed(rx, n, limit).await;
    (r.got, r.events)
}

/// What [`recv_timed`] saw.
pub struct Received {
    /// Payload numbers of the test messages, in arrival order.
    pub got: Vec<u64>,
    /// Session events seen on the way.
    pub events: Vec<SessionEvent>,
    /// The longest time between two deliveries (or from the call to the first one), on the
    /// test's clock (virtual when paused): how long the stream stalled at worst.
    pub longest_gap: Duration,
    /// From the call to the last delivery.
    pub elapsed: Duration,
}

/// [`recv_n`], also measuring the longest stall between deliveries: a liveness check for
/// streams under faults (a reconnect that waits a backoff it should not shows up here).
pub async fn recv_timed(
    rx: &mut UnboundedReceiver<HostEvent>,
    n: usize,
    limit: Duration,
) -> Received {
    let start = tokio::time::Instant::now();
    let mut last = start;
    let mut r = Received {
        got: Vec::with_capacity(n),
        events: Vec::new(),
        longest_gap: Duration::ZERO,
        elapsed: Duration::ZERO,
    };
    let fut = async {
        while r.got.len() < n {
            match rx.recv().await.expect("host channel closed") {
                HostEvent::Message { incoming, .. } => {
                    if incoming.msg.header.ty == TEST_TYPE {
                        r.got.push(payload(&incoming.msg));
                        let now = tokio::time::Instant::now();
                        r.longest_gap = r.longest_gap.max(now - last);
                        last = now;
                    }
                }
                HostEvent::Event { event, .. } => r.events.push(event),
            }
        }
    };
    if tokio::time::timeout(limit, fut).await.is_err() {
        panic!(
            "timed out with {} of {n} messages; events {:?}",
            r.got.len(),
            r.events
        );
    }
    r.elapsed = last - start;
    r
}

/// Waits for a specific event (other things are dropped). Returns the session.
pub async fn wait_event(
    rx: &mut UnboundedReceiver<HostEvent>,
    want: SessionEvent,
    limit: Duration,
) -> Session {
    let fut = async {
        loop {
            if let HostEvent::Event { event, session } = rx.recv().await.expect("closed") {
                if event == want {
                    return session;
                }
            }
        }
    };
    tokio::time::timeout(limit, fut)
        .await
        .expect("event did not come")
}

/// Everything currently in the channel.
pub fn drain(rx: &mut UnboundedReceiver<HostEvent>) -> (Vec<u64>, Vec<SessionEvent>) {
    let mut got = Vec::new();
    let mut events = Vec::new();
    while let Ok(e) = rx.try_recv() {
        match e {
            HostEvent::Message { incoming, .. } => got.push(payload(&incoming.msg)),
            HostEvent::Event { event, .. } => events.push(event),
        }
    }
    (got, events)
}
