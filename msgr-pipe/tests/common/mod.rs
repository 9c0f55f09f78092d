//! Shared helpers of the integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use msgr_pipe::testing::{HostEvent, TestHost, TestNet};
use msgr_pipe::{Host, PipeConfig, Policy, Session, SessionEvent};
use msgr_wire::{EntityAddr, EntityName, Message};
use tokio::sync::mpsc::UnboundedReceiver;

pub const TEST_TYPE: u16 = 0x4242;

pub fn addr(n: u32) -> EntityAddr {
    EntityAddr::new(format!("127.0.0.1:{}", 6800 + n).parse().unwrap(), n)
}

/// A msgr2 address of host `n`.
pub fn addr_v2(n: u32) -> EntityAddr {
    addr(n).with_type(msgr_wire::AddrType::Msgr2)
}

/// A host listening (and announcing) a msgr2 address.
pub fn host_v2(
    n: u32,
    policy: Policy,
    config: PipeConfig,
    net: &TestNet,
) -> (Arc<TestHost>, UnboundedReceiver<HostEvent>) {
    let (h, rx) = TestHost::new(EntityName::osd(i64::from(n)), addr_v2(n), policy, config);
    net.attach(&h);
    (h, rx)
}

/// The protocol a test's hosts speak: the suites that prove v1's session semantics run on
/// msgr2 too by taking one of these.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    /// msgr v1 (`v1:` addresses, the v1 acceptor).
    V1,
    /// msgr2.1 (`v2:` addresses, the v2 acceptor).
    V2,
}

impl Proto {
    /// Both, v1 first.
    pub const BOTH: [Proto; 2] = [Proto::V1, Proto::V2];

    /// The address of host `n` in this protocol.
    pub fn addr(self, n: u32) -> EntityAddr {
        match self {
            Proto::V1 => addr(n),
            Proto::V2 => addr_v2(n),
        }
    }

    /// Host `n` speaking this protocol ([`host`] or [`host_v2`]).
    pub fn host(
        self,
        n: u32,
        policy: Policy,
        config: PipeConfig,
        net: &TestNet,
    ) -> (Arc<TestHost>, UnboundedReceiver<HostEvent>) {
        match self {
            Proto::V1 => host(n, policy, config, net),
            Proto::V2 => host_v2(n, policy, config, net),
        }
    }
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
    let r = recv_timed(rx, n, limit, &Stalls::untracked()).await;
    (r.got, r.events)
}

/// The liveness rule of reconnects, checked on a stream: Ceph (and msgr) reconnect an open
/// session at once and back off only after *failed* attempts (the first retried at once, then
/// `initial_backoff`, doubling up to `max_backoff`). So a stall between two deliveries may last at most the
/// backoffs that the faults counted during it have earned, plus `slack` for the work itself
/// (handshakes, injected delays, scheduling on real threads). A reconnect that waits without a
/// failed attempt to justify it (the old rule waited up to 15 s after sessions that lived a
/// few milliseconds) breaks it.
pub struct Stalls<'a> {
    /// The faults so far (failed attempts and socket faults of every session that connects).
    pub faults: Box<dyn Fn() -> u64 + 'a>,
    /// `initial_backoff` and `max_backoff` of the sessions.
    pub backoff: (Duration, Duration),
    /// Allowance for everything that is not a backoff.
    pub slack: Duration,
    /// The last delivery this tracker saw and the faults counted then: a stall runs from one
    /// delivery to the next, across calls of [`recv_timed`].
    last: std::cell::Cell<Option<(tokio::time::Instant, u64)>>,
}

impl<'a> Stalls<'a> {
    /// Stalls measured, not checked.
    pub fn untracked() -> Self {
        Stalls {
            faults: Box::new(|| 0),
            backoff: (Duration::MAX, Duration::MAX),
            slack: Duration::MAX,
            last: std::cell::Cell::new(None),
        }
    }

    /// Checks stalls against `config`'s backoffs with the faults `faults` counts.
    pub fn tracked(config: &PipeConfig, slack: Duration, faults: impl Fn() -> u64 + 'a) -> Self {
        Stalls {
            faults: Box::new(faults),
            backoff: (config.initial_backoff, config.max_backoff),
            slack,
            last: std::cell::Cell::new(None),
        }
    }

    /// The longest stall `k` faults may cause: the waits of the first `k` failed attempts
    /// (0, initial, 2 initial, ... up to max: an open session's fault waits nothing, and
    /// counting it as a failed attempt only makes the allowance larger), plus slack.
    pub fn allowance(&self, k: u64) -> Duration {
        let (initial, max) = self.backoff;
        let mut total = self.slack;
        let mut next = Duration::ZERO;
        for _ in 0..k.min(64) {
            total = total.saturating_add(next);
            next = if next.is_zero() {
                initial
            } else {
                next.saturating_mul(2).min(max)
            };
        }
        total
    }
}

/// The faults of the sessions `a` and `b` hold for each other: what [`Stalls`] counts (the
/// sessions that connect; short-lived sessions of failed accepts come and go and are left out,
/// so the sum never drops).
pub fn pair_faults(a: &TestHost, b: &TestHost) -> u64 {
    let of =
        |h: &TestHost, peer: &TestHost| h.lookup(&peer.my_addr()).map_or(0, |s| s.stats().faults);
    of(a, b) + of(b, a)
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

/// [`recv_n`], also measuring the stalls between deliveries and checking each against the
/// reconnect rule of `stalls` (panics on a stall the faults in it do not explain). A stall
/// runs from the last delivery `stalls` saw (in this call or an earlier one), or from this
/// call if it saw none.
pub async fn recv_timed(
    rx: &mut UnboundedReceiver<HostEvent>,
    n: usize,
    limit: Duration,
    stalls: &Stalls<'_>,
) -> Received {
    let start = tokio::time::Instant::now();
    let (mut last, mut faults_then) = stalls
        .last
        .get()
        .unwrap_or_else(|| (start, (stalls.faults)()));
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
                        let gap = now - last;
                        let faults = (stalls.faults)();
                        // Failures at the instant of the previous delivery may already be
                        // in `faults_then` (the counter is read when the test takes the
                        // delivery, and on the paused clock a streak can start in the same
                        // instant): two of them more are allowed.
                        let earned = faults.saturating_sub(faults_then) + 2;
                        assert!(
                            gap <= stalls.allowance(earned),
                            "stalled {gap:?} before delivery {} with only {} faults \
                             (the reconnect rule allows {:?})",
                            r.got.len(),
                            earned - 2,
                            stalls.allowance(earned)
                        );
                        r.longest_gap = r.longest_gap.max(gap);
                        last = now;
                        faults_then = faults;
                        stalls.last.set(Some((now, faults)));
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
    r.elapsed = last.saturating_duration_since(start);
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
