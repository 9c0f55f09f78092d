//! Unit tests of the core's rules (and of msgr v1's bookkeeping where a rule involves it),
//! through a small shim with the old `SessionState` vocabulary.

use std::ops::{Deref, DerefMut};
use std::time::{Duration, Instant};

use msgr_dispatch::Throttle;
use msgr_wire::{features, Message, Timespec, PRIO_HIGHEST};
use rand::rngs::SmallRng;
use rand::SeedableRng;

use super::*;
use crate::core::{
    BatchLimits, ConnState, Control, CoreConfig, Established, FaultAction, FaultCause, FaultPolicy,
    FrameSink, InSeq, Outgoing, Released, FREE_OUTSIDE_LOCK,
};
use crate::v1::V1State;

/// A core and its v1 state, with the operations the tests name.
struct S {
    core: SessionCore,
    v1: V1State,
}

impl Deref for S {
    type Target = SessionCore;
    fn deref(&self) -> &SessionCore {
        &self.core
    }
}

impl DerefMut for S {
    fn deref_mut(&mut self) -> &mut SessionCore {
        &mut self.core
    }
}

/// Records what `poll_transmit` hands the dialect.
#[derive(Default)]
struct Rec {
    keepalive: bool,
    acks: Vec<Timespec>,
    staged: Vec<(u64, u64)>,
    forbid_messages: bool,
}

impl FrameSink for Rec {
    fn keepalive(&mut self) {
        self.keepalive = true;
    }
    fn keepalive_ack(&mut self, stamp: Timespec) {
        self.acks.push(stamp);
    }
    fn message(&mut self, o: &mut Outgoing) {
        assert!(!self.forbid_messages, "a message was staged");
        self.staged.push((tag(o), o.seq));
    }
}

fn config() -> CoreConfig {
    CoreConfig {
        fault: fp(),
        read_timeout: Duration::from_secs(900),
        ack_batch: 64,
        ack_bytes: 1 << 20,
        ack_delay: Duration::from_millis(5),
        keepalive_interval: Duration::ZERO,
    }
}

impl S {
    fn new(phase: ConnState, lossy: bool) -> S {
        S {
            core: SessionCore::new(phase, lossy, config(), SmallRng::seed_from_u64(1)),
            v1: V1State::default(),
        }
    }
    fn queue(&mut self, o: Outgoing) {
        self.core.send(o);
    }
    fn take_batch(&mut self, max_bytes: u64) -> Vec<Outgoing> {
        let mut out = Vec::new();
        let limits = BatchLimits {
            max_bytes,
            max_msgs: usize::MAX,
            small: 0,
        };
        self.core.take_batch::<Rec>(&limits, None, &mut out);
        out
    }
    fn take_batch_staged(
        &mut self,
        max_bytes: u64,
        max_msgs: usize,
        small: u64,
        rec: &mut Rec,
        out: &mut Vec<Outgoing>,
    ) -> (usize, u64) {
        let limits = BatchLimits {
            max_bytes,
            max_msgs,
            small,
        };
        self.core.take_batch(&limits, Some(rec), out)
    }
    fn handle_ack(&mut self, seq: u64) -> Released {
        let mut done = Released::default();
        self.core
            .handle_control(Instant::now(), Control::Ack(seq), &mut done);
        done
    }
    fn accept_incoming(&mut self, seq: u64) -> InSeq {
        self.core.handle_message(seq, 0).0
    }
    /// The ACK of a transmit (the session must have no message queued).
    fn take_ack(&mut self) -> Option<u64> {
        let (tx, _) = self.transmit_control();
        tx
    }
    /// A transmit of a session with no message queued: its ACK and its control frames.
    fn transmit_control(&mut self) -> (Option<u64>, Rec) {
        let mut rec = Rec {
            forbid_messages: true,
            ..Rec::default()
        };
        let mut out = Vec::new();
        let limits = BatchLimits {
            max_bytes: u64::MAX,
            max_msgs: usize::MAX,
            small: u64::MAX,
        };
        let tx = self.core.poll_transmit(&limits, &mut rec, &mut out);
        assert!(out.is_empty());
        (tx.ack, rec)
    }
    fn on_fault(&mut self, p: &FaultPolicy, cause: FaultCause) -> FaultAction {
        self.core.config.fault = *p;
        self.v1.fault(&mut self.core, Instant::now(), cause)
    }
    fn opened(&mut self) {
        let est = Established {
            features: self.core.features,
            lossy: self.core.lossy,
        };
        self.core.opened(est);
        self.v1.committed();
    }
    fn wake_from_standby(&mut self) -> bool {
        self.v1.wake_from_standby(&mut self.core)
    }
    fn reset_session(&mut self) -> Vec<Outgoing> {
        self.v1.reset();
        self.core.reset_session()
    }
    fn connect_seq(&self) -> u32 {
        self.v1.connect_seq()
    }
}

fn st(lossy: bool) -> S {
    S::new(ConnState::Open, lossy)
}

fn new_st(phase: ConnState) -> S {
    S::new(phase, false)
}

fn m(tag: u64, prio: u16) -> Outgoing {
    Outgoing::new(
        Message::new(1, tag.to_le_bytes().to_vec()).with_priority(prio),
        None,
    )
}

fn tag(o: &Outgoing) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&o.msg.front[..8]);
    u64::from_le_bytes(b)
}

fn fp() -> FaultPolicy {
    FaultPolicy {
        server: false,
        standby: false,
        initial_backoff: Duration::from_millis(200),
        max_backoff: Duration::from_secs(15),
    }
}

#[test]
fn priority_order_and_seq_at_transmit() {
    let mut s = st(false);
    s.queue(m(1, 127));
    s.queue(m(2, 196));
    s.queue(m(3, 127));
    s.queue(m(4, 0));
    let b = s.take_batch(u64::MAX);
    assert_eq!(b.iter().map(tag).collect::<Vec<_>>(), vec![2, 1, 3, 4]);
    assert_eq!(
        b.iter().map(|o| o.seq).collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );
    assert_eq!(s.out_seq, 4);
    assert_eq!(s.unacked_len(), 4);
    assert!(!s.has_messages());
}

#[test]
fn batch_respects_max_bytes_but_takes_one() {
    let mut s = st(false);
    for i in 0..5 {
        s.queue(m(i, 127));
    }
    assert_eq!(s.take_batch(0).len(), 1);
    assert_eq!(s.take_batch(16).len(), 2);
    assert_eq!(s.queued_len(), 2);
    assert_eq!(s.queued_bytes(), 16);
}

#[test]
fn staged_batches_are_runs_of_small_or_large_messages() {
    let mut s = st(false);
    s.queue(m(1, 127));
    s.queue(m(2, 127));
    s.queue(Outgoing::new(Message::new(1, vec![0u8; 100]), None));
    s.queue(m(4, 127));
    let mut rec = Rec::default();
    let mut out = Vec::new();
    assert_eq!(
        s.take_batch_staged(u64::MAX, 10, 8, &mut rec, &mut out),
        (2, 16)
    );
    assert!(out.is_empty());
    assert_eq!(rec.staged, vec![(1, 1), (2, 2)]);
    assert_eq!(s.unacked_len(), 2);
    let mut rec = Rec {
        forbid_messages: true,
        ..Rec::default()
    };
    assert_eq!(
        s.take_batch_staged(u64::MAX, 10, 8, &mut rec, &mut out),
        (0, 0)
    );
    assert_eq!(out.iter().map(|o| o.seq).collect::<Vec<_>>(), vec![3]);
    assert_eq!(s.unacked_len(), 3);
    // Lossy sessions never stage: the original goes to the writer.
    let mut l = st(true);
    l.queue(m(5, 127));
    out.clear();
    assert_eq!(
        l.take_batch_staged(u64::MAX, 10, 8, &mut rec, &mut out),
        (0, 0)
    );
    assert_eq!(out.len(), 1);
    assert_eq!(l.unacked_len(), 0);
}

/// Long queues move to the sent list a block at a time: the batches, their seqs, what is
/// staged and what is returned, and the ACKs are those of one message at a time, whatever
/// the block boundaries, the batch limits, or a large message in the middle of a block.
#[test]
fn batches_and_acks_over_many_blocks_keep_every_rule() {
    let t = Throttle::new(0);
    let mut s = st(false);
    let big = |i: u64| {
        let mut front = i.to_le_bytes().to_vec();
        front.resize(100, 0);
        Outgoing::new(Message::new(1, front), None)
    };
    for i in 1..=300 {
        s.queue(if i == 200 {
            big(i)
        } else {
            Outgoing::new(m(i, 127).msg, Some(t.take(10)))
        });
    }
    let mut rec = Rec::default();
    let mut out = Vec::new();
    // At most 130 messages: two whole blocks and a part of the third.
    assert_eq!(
        s.take_batch_staged(u64::MAX, 130, 8, &mut rec, &mut out),
        (130, 130 * 8)
    );
    // Then up to the large one, which ends the run of small messages.
    assert_eq!(
        s.take_batch_staged(u64::MAX, 1000, 8, &mut rec, &mut out),
        (69, 69 * 8)
    );
    let want: Vec<(u64, u64)> = (1..200).map(|i| (i, i)).collect();
    assert_eq!(rec.staged, want, "staged in order, seq = position");
    assert!(out.is_empty());
    // The large one alone, returned to be encoded outside the lock.
    assert_eq!(
        s.take_batch_staged(u64::MAX, 1000, 8, &mut Rec::default(), &mut out),
        (0, 0)
    );
    assert_eq!(
        out.iter().map(|o| (tag(o), o.seq)).collect::<Vec<_>>(),
        [(200, 200)]
    );
    // The rest, under a byte limit: 80 bytes is ten messages.
    let mut rec = Rec::default();
    assert_eq!(
        s.take_batch_staged(80, 1000, 8, &mut rec, &mut out),
        (10, 80)
    );
    assert_eq!(rec.staged.first(), Some(&(201, 201)));
    assert_eq!(rec.staged.last(), Some(&(210, 210)));
    let mut rec = Rec::default();
    assert_eq!(
        s.take_batch_staged(u64::MAX, 1000, 8, &mut rec, &mut out),
        (90, 90 * 8)
    );
    assert_eq!(rec.staged.last(), Some(&(300, 300)));
    assert_eq!(
        (s.queued_len(), s.queued_bytes(), s.unacked_len()),
        (0, 0, 300)
    );
    // ACKs across block boundaries release exactly what they cover.
    let mut done = s.handle_ack(150);
    assert_eq!((done.len(), done.units()), (150, 1500));
    done.clear();
    assert_eq!((s.unacked_len(), t.current()), (150, 1490));
    let done = s.handle_ack(299);
    assert_eq!((done.len(), s.unacked_len()), (149, 1));
    drop(done);
    assert_eq!(t.current(), 10);
    // A resend after a fault renumbers from the requeued head, counting the resend.
    assert_eq!(s.requeue_sent(), 1);
    let mut rec = Rec::default();
    s.take_batch_staged(u64::MAX, 1000, 8, &mut rec, &mut out);
    assert_eq!(rec.staged, [(300, 300)]);
    assert_eq!(s.resent(), 1);
}

#[test]
fn acks_pop_sent_and_release_permits() {
    let t = Throttle::new(100);
    let mut s = st(false);
    for i in 0..4 {
        s.queue(Outgoing::new(msg8(i), Some(t.take(8))));
    }
    drop(s.take_batch(u64::MAX));
    assert_eq!(t.current(), 32);
    let mut done = s.handle_ack(2);
    assert_eq!((done.len(), done.units()), (2, 16));
    assert_eq!(t.current(), 32, "permits are held until the caller clears");
    done.clear();
    assert_eq!(t.current(), 16);
    assert_eq!(s.unacked_len(), 2);
    assert!(s.handle_ack(1).is_empty());
}

/// An ACK that covers a whole block of the sent list moves the block out as it is: nothing
/// is freed and no permit released under the session lock; `clear` (outside it) merges the
/// permits of both throttles, releases them and frees every message, small and large, and
/// the emptied block goes back to the out queues at the next ACK.
#[test]
fn an_ack_moves_a_whole_block_out_and_clear_frees_it() {
    let (t, u) = (Throttle::new(0), Throttle::new(0));
    let mut s = st(false);
    let small = bytes::Bytes::from(vec![1u8; 64]);
    let large = bytes::Bytes::from(vec![2u8; FREE_OUTSIDE_LOCK as usize]);
    for i in 0..3 {
        s.queue(Outgoing::new(
            Message::new(1, small.clone()),
            Some(t.take(64 + i)),
        ));
    }
    s.queue(Outgoing::new(
        Message::new(1, large.clone()),
        Some(t.take(7)),
    ));
    s.queue(Outgoing::new(
        Message::new(1, small.clone()),
        Some(u.take(5)),
    ));
    drop(s.take_batch(u64::MAX));
    let mut done = s.handle_ack(5);
    assert_eq!((done.len(), s.unacked_len()), (5, 0));
    assert_eq!(done.units(), 64 + 65 + 66 + 7 + 5);
    assert!(
        !small.is_unique() && !large.is_unique(),
        "the whole block left the sent list as it was, nothing freed under the ACK"
    );
    assert_eq!((t.current(), u.current()), (64 + 65 + 66 + 7, 5));
    done.clear();
    assert!(
        small.is_unique() && large.is_unique(),
        "clear freed them all"
    );
    assert_eq!((t.current(), u.current()), (0, 0));
    assert!(done.is_empty());
    // The emptied blocks are handed back at the next ACK (to the out queues, for reuse):
    // two, as the five messages filled a first block of `MIN_BLOCK` (4) entries and a second.
    let mut spare = 0;
    done.recycle(|b| {
        assert!(b.is_empty());
        spare += 1;
    });
    assert_eq!(spare, 2);
    done.recycle(|_| panic!("each emptied block is handed back once"));
}

/// ACKs that end inside a block, over blocks holding large messages: each releases exactly
/// the messages it covers, the large ones kept for `clear`; wholly covered blocks leave as
/// they are, the covered head of the last one is freed where it lies (its unacknowledged
/// tail left in place, in order).
#[test]
fn partial_acks_release_in_place_and_keep_large_ones_across_blocks() {
    let t = Throttle::new(0);
    let mut s = st(false);
    let small = bytes::Bytes::from(vec![1u8; 16]);
    let large = |b: u8| bytes::Bytes::from(vec![b; FREE_OUTSIDE_LOCK as usize]);
    // 200 messages (several blocks), large ones at seqs 10, 70 and 130.
    let larges = [(10u64, large(2)), (70, large(3)), (130, large(4))];
    for i in 1..=200u64 {
        let front = larges
            .iter()
            .find(|(at, _)| *at == i)
            .map_or(&small, |(_, b)| b);
        s.queue(Outgoing::new(
            Message::new(1, front.clone()),
            Some(t.take(1)),
        ));
    }
    drop(s.take_batch(u64::MAX));
    assert_eq!((s.unacked_len(), t.current()), (200, 200));
    let unique = || {
        larges
            .iter()
            .map(|(_, b)| b.is_unique())
            .collect::<Vec<_>>()
    };
    let mut done = s.handle_ack(75);
    assert_eq!((done.len(), done.units(), s.unacked_len()), (75, 75, 125));
    assert_eq!(unique(), [false, false, false], "10 and 70 wait for clear");
    done.clear();
    assert_eq!(unique(), [true, true, false]);
    assert_eq!(t.current(), 125);
    // The next one ends inside a block again, just past the third large one.
    let mut done = s.handle_ack(131);
    assert_eq!((done.len(), s.unacked_len()), (56, 69));
    assert_eq!(unique(), [true, true, false]);
    done.clear();
    assert_eq!(unique(), [true, true, true]);
    assert_eq!(t.current(), 69);
    // What is left is seqs 132..=200, in order, still unacknowledged.
    assert_eq!(s.requeue_sent(), 69);
    let resent = s.take_batch(u64::MAX);
    assert_eq!(
        resent.iter().map(|o| o.seq).collect::<Vec<_>>(),
        (132..=200).collect::<Vec<_>>()
    );
    drop(resent);
    let mut done = s.handle_ack(200);
    assert_eq!(done.len(), 69);
    done.clear();
    assert!(small.is_unique(), "every message freed");
    assert_eq!(t.current(), 0);
}

fn msg8(i: u64) -> Message {
    Message::new(1, i.to_le_bytes().to_vec())
}

#[test]
fn lossy_keeps_no_sent_list_and_sends_no_ack() {
    let mut s = st(true);
    s.queue(m(1, 127));
    let b = s.take_batch(u64::MAX);
    assert_eq!(b.len(), 1);
    assert_eq!(s.unacked_len(), 0);
    assert_eq!(s.accept_incoming(1), InSeq::Accept);
    assert_eq!(s.take_ack(), None);
}

#[test]
fn acks_are_batched() {
    let mut s = st(false);
    assert_eq!(s.take_ack(), None);
    for seq in 1..=5 {
        assert_eq!(s.accept_incoming(seq), InSeq::Accept);
    }
    assert_eq!(s.take_ack(), Some(5));
    assert_eq!(s.take_ack(), None);
}

#[test]
fn incoming_seq_check() {
    let mut s = st(false);
    assert_eq!(s.accept_incoming(1), InSeq::Accept);
    assert_eq!(s.accept_incoming(1), InSeq::Duplicate);
    assert_eq!(s.accept_incoming(0), InSeq::Duplicate);
    assert_eq!(s.accept_incoming(5), InSeq::Gap);
    assert_eq!(s.in_seq, 5);
    assert_eq!(s.accept_incoming(6), InSeq::Accept);
}

#[test]
fn requeue_then_resend_with_same_seqs() {
    let mut s = st(false);
    for i in 0..3 {
        s.queue(m(i, 127));
    }
    drop(s.take_batch(u64::MAX));
    s.queue(m(10, 255));
    assert_eq!(s.requeue_sent(), 3);
    assert_eq!(s.out_seq, 0);
    let b = s.take_batch(u64::MAX);
    assert_eq!(b.iter().map(tag).collect::<Vec<_>>(), vec![0, 1, 2, 10]);
    assert_eq!(
        b.iter().map(|o| o.seq).collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );
    assert_eq!(s.resent, 3);
}

#[test]
fn discard_requeued_up_to_peer_in_seq() {
    let mut s = st(false);
    for i in 0..4 {
        s.queue(m(i, 127));
    }
    drop(s.take_batch(u64::MAX));
    s.requeue_sent();
    let gone = s.discard_requeued_up_to(2);
    assert_eq!(gone.iter().map(tag).collect::<Vec<_>>(), vec![0, 1]);
    assert_eq!(s.out_seq, 2);
    let b = s.take_batch(u64::MAX);
    assert_eq!(b.iter().map(|o| o.seq).collect::<Vec<_>>(), vec![3, 4]);
}

#[test]
fn discard_stops_at_unsent_and_aligns_when_nothing_requeued() {
    let mut s = st(false);
    s.queue(m(1, PRIO_HIGHEST));
    assert!(s.discard_requeued_up_to(7).is_empty());
    assert_eq!(s.out_seq, 0, "an unsent prio-255 message stops the discard");
    let mut s = st(false);
    s.out_seq = 3;
    assert!(s.discard_requeued_up_to(9).is_empty());
    assert_eq!(s.out_seq, 9, "nothing requeued: align to the peer");
}

#[test]
fn reset_session_discards_everything() {
    let mut s = st(false);
    s.features = features::MSG_AUTH;
    for i in 0..3 {
        s.queue(m(i, 127));
    }
    drop(s.take_batch(1));
    s.in_seq = 9;
    s.v1 = V1State::with(4, false, false, None);
    let gone = s.reset_session();
    assert_eq!(gone.len(), 3);
    assert_eq!((s.in_seq, s.connect_seq()), (0, 0));
    assert!(s.out_seq <= 0x7fff_ffff);
    assert!(!s.has_messages());
    assert_eq!(s.unacked_len(), 0);
    let mut s = st(false);
    s.out_seq = 5;
    s.reset_session();
    assert_eq!(s.out_seq, 0, "no MSG_AUTH: out_seq restarts at 0");
}

#[test]
fn keepalives() {
    let mut s = st(false);
    let now = Instant::now();
    let mut done = Released::default();
    assert!(
        s.handle_control(now, Control::Keepalive2(Timespec::new(5, 6)), &mut done),
        "a KEEPALIVE2 asks for a transmission (its ack)"
    );
    assert_eq!(s.last_keepalive, Some(now));
    s.queue_keepalive();
    assert!(s.wants_transmit());
    let (ack, rec) = s.transmit_control();
    assert_eq!(ack, None);
    assert!(rec.keepalive);
    assert_eq!(rec.acks, vec![Timespec::new(5, 6)]);
    assert!(!s.wants_transmit());
    s.handle_control(now, Control::Keepalive2Ack(Timespec::new(1, 2)), &mut done);
    assert_eq!(s.last_keepalive_ack, Some(Timespec::new(1, 2)));
    while let Some(ev) = s.poll_event() {
        if ev == Event::KeepaliveAck(Timespec::new(1, 2)) {
            return;
        }
    }
    panic!("no KeepaliveAck event");
}

#[test]
fn lossy_fault_after_open_closes_with_reset() {
    let mut s = st(true);
    s.opened();
    assert_eq!(
        s.on_fault(&fp(), FaultCause::Error),
        FaultAction::Close { reset: true }
    );
    assert_eq!(s.phase, ConnState::Closed);
    assert_eq!(s.on_fault(&fp(), FaultCause::Error), FaultAction::None);
}

#[test]
fn lossy_fault_before_open_retries() {
    let mut s = S::new(ConnState::Connecting, true);
    assert!(matches!(
        s.on_fault(&fp(), FaultCause::Error),
        FaultAction::Reconnect { .. }
    ));
}

#[test]
fn lossless_open_fault_bumps_connect_seq_and_reconnects_now() {
    let mut s = st(false);
    s.opened();
    s.v1 = V1State::with(3, false, false, None);
    s.queue(m(1, 127));
    drop(s.take_batch(u64::MAX));
    assert_eq!(
        s.on_fault(&fp(), FaultCause::Error),
        FaultAction::Reconnect {
            after: Duration::ZERO,
            renew: true
        }
    );
    assert_eq!(s.connect_seq(), 4);
    assert_eq!(s.queued_len(), 1, "sent message requeued");
    assert_eq!(s.phase, ConnState::Connecting);
}

fn delays(s: &mut S, n: usize) -> Vec<u128> {
    (0..n)
        .map(|_| match s.on_fault(&fp(), FaultCause::Error) {
            FaultAction::Reconnect { after, .. } => after.as_millis(),
            other => panic!("{other:?}"),
        })
        .collect()
}

#[test]
fn consecutive_failed_attempts_double_the_backoff_up_to_max() {
    // Ceph's Pipe::fault: the first failure retries at once, then 0.2, 0.4, ... 15 s.
    let mut s = new_st(ConnState::Connecting);
    s.v1 = V1State::with(2, false, false, None);
    assert_eq!(
        delays(&mut s, 11),
        vec![0, 200, 400, 800, 1600, 3200, 6400, 12800, 15000, 15000, 15000]
    );
    assert_eq!(s.failed_attempts(), 11);
    assert_eq!(
        s.connect_seq(),
        2,
        "a failed attempt does not bump connect_seq"
    );
    // Thousands of failures neither overflow nor exceed the cap.
    assert_eq!(delays(&mut s, 1000).last(), Some(&15000));
}

#[test]
fn a_successful_handshake_resets_the_backoff() {
    let mut s = new_st(ConnState::Connecting);
    assert_eq!(delays(&mut s, 4), vec![0, 200, 400, 800]);
    s.opened();
    assert_eq!(s.failed_attempts(), 0);
    // The open session's fault reconnects at once, and so does the first failed attempt
    // after it; then the doubling starts again from the initial backoff.
    assert_eq!(delays(&mut s, 4), vec![0, 0, 200, 400]);
}

#[test]
fn sessions_that_die_right_after_opening_reconnect_at_once() {
    // Ceph's fault rates: every handshake succeeds, every session lives a few socket
    // operations. Each fault reconnects at once, however short the session was.
    let mut s = new_st(ConnState::Connecting);
    for round in 0..50u32 {
        s.opened();
        assert_eq!(delays(&mut s, 1), vec![0], "round {round}");
        assert_eq!(s.connect_seq(), round + 1);
    }
}

#[test]
fn a_peer_that_hangs_up_during_every_handshake_is_backed_off() {
    // The accept-and-hang-up loop: each attempt fails before READY, so none resets the
    // backoff, and the session waits longer and longer, up to max_backoff.
    let mut s = st(false);
    s.opened();
    let d = delays(&mut s, 10);
    assert_eq!(d, vec![0, 0, 200, 400, 800, 1600, 3200, 6400, 12800, 15000]);
    let total: u128 = d.iter().sum();
    assert!(total >= 40_000, "9 attempts spread over {total} ms");
}

#[test]
fn waking_from_standby_starts_without_backoff() {
    let mut s = new_st(ConnState::Connecting);
    assert_eq!(delays(&mut s, 3), vec![0, 200, 400]);
    let p = FaultPolicy {
        standby: true,
        ..fp()
    };
    assert_eq!(s.on_fault(&p, FaultCause::Error), FaultAction::Standby);
    s.queue(m(1, 127));
    assert!(s.wake_from_standby());
    assert_eq!(s.failed_attempts(), 0);
    assert_eq!(delays(&mut s, 3), vec![0, 200, 400]);
}

#[test]
fn standby_and_server() {
    let mut p = fp();
    p.standby = true;
    let mut s = st(false);
    s.opened();
    s.v1 = V1State::with(1, false, false, None);
    assert_eq!(s.on_fault(&p, FaultCause::Error), FaultAction::Standby);
    s.queue_keepalive();
    assert!(!s.wake_from_standby(), "a keepalive does not wake standby");
    s.queue(m(1, 127));
    assert!(s.wake_from_standby());
    assert_eq!(s.connect_seq(), 2);
    assert_eq!(s.phase, ConnState::Connecting);

    let mut p = fp();
    p.server = true;
    let mut s = st(false);
    s.opened();
    s.queue(m(1, 127));
    assert_eq!(s.on_fault(&p, FaultCause::Error), FaultAction::Standby);
}

#[test]
fn wait_after_race_lost() {
    let mut s = new_st(ConnState::Connecting);
    assert_eq!(
        s.on_fault(&fp(), FaultCause::RaceLost),
        FaultAction::Wait {
            max: Duration::from_secs(15)
        }
    );
    assert_eq!(s.phase, ConnState::Wait);
}

#[test]
fn accepted_never_opened_closes_quietly() {
    let mut s = new_st(ConnState::Accepting);
    s.v1 = V1State::with(1, true, true, None);
    assert_eq!(
        s.on_fault(&fp(), FaultCause::Error),
        FaultAction::Close { reset: false }
    );
}

#[test]
fn accepted_never_opened_with_queued_messages_connects_out() {
    let mut s = new_st(ConnState::Accepting);
    s.v1 = V1State::with(1, true, true, None);
    s.queue(m(1, 127));
    assert!(matches!(
        s.on_fault(&fp(), FaultCause::Error),
        FaultAction::Reconnect { .. }
    ));
    assert_eq!(s.connect_seq(), 0, "the peer never saw our reply");
    assert_eq!(s.phase, ConnState::Connecting);
}

#[test]
fn accepted_after_reply_waits_for_the_peer() {
    let mut s = new_st(ConnState::Accepting);
    s.v1 = V1State::with(1, false, true, None);
    assert_eq!(s.on_fault(&fp(), FaultCause::Error), FaultAction::Standby);
    assert_eq!(s.connect_seq(), 1);
}

#[test]
fn failed_replace_after_reply_acts_as_if_open() {
    let mut s = new_st(ConnState::Accepting);
    s.v1 = V1State::with(1, false, false, None);
    s.queue(m(1, 127));
    assert_eq!(
        s.on_fault(&fp(), FaultCause::Error),
        FaultAction::Reconnect {
            after: Duration::ZERO,
            renew: true
        }
    );
    assert_eq!(s.connect_seq(), 2);
}

#[test]
fn failed_replace_of_a_connecting_session_restores_it() {
    let mut s = new_st(ConnState::Accepting);
    s.v1 = V1State::with(1, false, false, Some(0));
    s.queue(m(1, 127));
    assert!(matches!(
        s.on_fault(&fp(), FaultCause::Error),
        FaultAction::Reconnect { .. }
    ));
    assert_eq!(s.connect_seq(), 0, "never opened: back to 0, no bump");
    assert_eq!(s.queued_len(), 1);
}

#[test]
fn hostile_seq_values_do_not_panic() {
    let mut s = st(false);
    assert!(s.discard_requeued_up_to(u64::MAX).is_empty());
    assert_eq!(s.out_seq, u64::MAX);
    s.queue(m(1, 127));
    let b = s.take_batch(u64::MAX);
    assert_eq!(b[0].seq, 0, "wraps instead of panicking");
    assert_eq!(s.accept_incoming(u64::MAX), InSeq::Gap);
    assert_eq!(s.accept_incoming(u64::MAX), InSeq::Duplicate);
    assert_eq!(s.handle_ack(u64::MAX).len(), 1);
}

mod model {
    //! Two session states joined by a link that can lose everything in flight: whatever the
    //! interleaving of sends, transmissions, deliveries, acks and faults, the receiver gets
    //! every message exactly once and in order (the seq/ack/requeue/SEQ-exchange rules).
    use std::collections::VecDeque;

    use proptest::prelude::*;

    use super::*;

    #[derive(Clone, Debug)]
    enum Op {
        Queue(u8),
        Transmit(u8),
        Deliver(u8),
        Ack,
        AckDeliver,
        Fault,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (1u8..5).prop_map(Op::Queue),
            (0u8..64).prop_map(Op::Transmit),
            (1u8..8).prop_map(Op::Deliver),
            Just(Op::Ack),
            Just(Op::AckDeliver),
            Just(Op::Fault),
        ]
    }

    struct Pair {
        a: S,
        b: S,
        wire: VecDeque<Outgoing>,
        acks: VecDeque<u64>,
        got: Vec<u64>,
        next: u64,
    }

    impl Pair {
        fn reconnect(&mut self) {
            self.wire.clear();
            self.acks.clear();
            let action = self.a.on_fault(&fp(), FaultCause::Error);
            assert!(
                matches!(action, FaultAction::Reconnect { .. }),
                "{action:?}"
            );
            self.b.on_fault(&fp(), FaultCause::Error);
            // SEQ exchange: each side drops what the other already has.
            drop(self.a.discard_requeued_up_to(self.b.in_seq));
            drop(self.b.discard_requeued_up_to(self.a.in_seq));
            self.a.opened();
            self.b.opened();
        }

        fn step(&mut self, op: &Op) {
            match op {
                Op::Queue(n) => {
                    for _ in 0..*n {
                        self.a.queue(m(self.next, 127));
                        self.next += 1;
                    }
                }
                Op::Transmit(bytes) => {
                    if self.a.has_messages() {
                        let batch = self.a.take_batch(u64::from(*bytes));
                        self.wire.extend(batch);
                    }
                }
                Op::Deliver(n) => {
                    for _ in 0..*n {
                        let Some(o) = self.wire.pop_front() else {
                            break;
                        };
                        match self.b.accept_incoming(o.seq) {
                            InSeq::Accept => self.got.push(tag(&o)),
                            InSeq::Duplicate => {}
                            InSeq::Gap => panic!("gap at seq {}", o.seq),
                        }
                    }
                }
                Op::Ack => self.acks.extend(self.b.take_ack()),
                Op::AckDeliver => {
                    if let Some(s) = self.acks.pop_front() {
                        drop(self.a.handle_ack(s));
                    }
                }
                Op::Fault => self.reconnect(),
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn exactly_once_in_order(ops in proptest::collection::vec(op(), 1..200)) {
            let mut p = Pair {
                a: st(false),
                b: st(false),
                wire: VecDeque::new(),
                acks: VecDeque::new(),
                got: Vec::new(),
                next: 0,
            };
            p.a.opened();
            p.b.opened();
            for o in &ops {
                p.step(o);
            }
            // Drain: a last reconnect, then everything through.
            p.reconnect();
            while p.a.has_messages() {
                p.step(&Op::Transmit(255));
            }
            p.step(&Op::Deliver(255));
            while !p.wire.is_empty() {
                p.step(&Op::Deliver(255));
            }
            prop_assert_eq!(p.got, (0..p.next).collect::<Vec<_>>());
        }
    }
}

#[test]
fn a_quiet_socket_gets_a_keepalive_each_interval_and_reads_push_it_out() {
    let mut s = st(false);
    s.core.config.keepalive_interval = Duration::from_secs(10);
    let t0 = Instant::now();
    assert_eq!(s.handle_idle(t0), Some(t0 + Duration::from_secs(10)));
    // Something was read at 6 s: the next quiet stretch starts then.
    s.handle_idle(t0 + Duration::from_secs(6));
    assert!(!s.handle_timeout(t0 + Duration::from_secs(10)).keepalive);
    let exp = s.handle_timeout(t0 + Duration::from_secs(16));
    assert!(exp.keepalive && !exp.idle);
    assert!(s.wants_transmit());
    let (_, rec) = s.transmit_control();
    assert!(rec.keepalive, "the writer sends it");
    // Off by default: no keepalive timer.
    let mut quiet = st(false);
    assert_eq!(quiet.handle_idle(t0), Some(t0 + Duration::from_secs(900)));
    assert!(
        !quiet
            .handle_timeout(t0 + Duration::from_secs(899))
            .keepalive
    );
}
