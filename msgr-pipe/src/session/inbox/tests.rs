//! The inbox alone: order, blocks, drains, wake-ups, close.

use std::sync::Arc;
use std::time::Duration;

use msgr_dispatch::Throttle;
use msgr_wire::{Message, Timespec};
use rand::rngs::SmallRng;
use rand::SeedableRng;
use tokio::sync::Notify;

use super::*;
use crate::core::{BatchLimits, ConnState, CoreConfig, FaultPolicy, FrameSink, Released};

fn config() -> CoreConfig {
    CoreConfig {
        fault: FaultPolicy {
            server: false,
            standby: false,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(15),
        },
        read_timeout: Duration::from_secs(900),
        ack_batch: 64,
        ack_bytes: 1 << 24,
        ack_delay: Duration::from_millis(2),
        keepalive_interval: Duration::ZERO,
    }
}

fn core() -> SessionCore {
    SessionCore::new(ConnState::Open, false, config(), SmallRng::seed_from_u64(7))
}

/// Message `i` (its number in the front), of priority `prio`, holding `permit`.
fn msg(i: u64, prio: u16, permit: Option<msgr_dispatch::ThrottlePermit>) -> Outgoing {
    let mut m = Message::new(1, i.to_le_bytes().to_vec());
    m.header.priority = prio;
    Outgoing::new(m, permit)
}

fn number(o: &Outgoing) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(o.msg.front.get(..8).unwrap_or(&[0; 8]));
    u64::from_le_bytes(b)
}

/// The numbers of the messages `poll_transmit` stages, in order.
#[derive(Default)]
struct Rec(Vec<u64>);

impl FrameSink for Rec {
    fn keepalive(&mut self) {}
    fn keepalive_ack(&mut self, _: Timespec) {}
    fn message(&mut self, o: &mut Outgoing) {
        self.0.push(number(o));
    }
}

/// Everything the core sends from now on, in order (batches of at most 1,024).
fn transmit_all(core: &mut SessionCore) -> Vec<u64> {
    let limits = BatchLimits {
        max_bytes: 1 << 20,
        max_msgs: 1024,
        small: 512,
    };
    let mut rec = Rec::default();
    let mut out = Vec::new();
    while core.has_messages() {
        core.poll_transmit(&limits, &mut rec, &mut out);
        assert!(out.is_empty(), "small messages are staged");
    }
    rec.0
}

/// An inbox attached to socket 1, and its writer's `Notify`.
fn attached() -> (Inbox, Arc<Notify>) {
    let inbox = Inbox::default();
    let wake = Arc::new(Notify::new());
    inbox.attach(1, wake.clone());
    (inbox, wake)
}

fn push(inbox: &Inbox, o: Outgoing) {
    let mut st = inbox.lock();
    assert!(matches!(st.mode, Mode::Attached { .. }));
    st.push(o, inbox.pending_flag());
}

/// True if `wake` holds a notification (consumed); the clock is paused, so the timeout
/// takes no real time.
async fn woken(wake: &Notify) -> bool {
    tokio::time::timeout(Duration::from_millis(1), wake.notified())
        .await
        .is_ok()
}

/// Pushes drained at irregular points, with messages queued straight into the core (the
/// session lock's path) between drains, come out in the order they were submitted: across
/// blocks, across drains, and after the core's own messages queued before them.
#[test]
fn order_kept_across_blocks_drains_and_the_locked_path() {
    let (inbox, _wake) = attached();
    let mut core = core();
    let mut next = 0u64;
    let mut expect = Vec::new();
    for (round, burst) in [1usize, 3, 64, 65, 200, 7, 1000, 63, 129]
        .into_iter()
        .enumerate()
    {
        for _ in 0..burst {
            push(&inbox, msg(next, 0, None));
            expect.push(next);
            next += 1;
        }
        assert!(inbox.pending());
        // What the session lock does before anything else: the inbox moves into the core.
        inbox.drain(&mut core);
        assert!(!inbox.pending());
        if round % 2 == 1 {
            core.send(msg(next, 0, None));
            expect.push(next);
            next += 1;
        }
        if round % 3 == 2 {
            assert_eq!(transmit_all(&mut core), expect);
            expect.clear();
        }
    }
    assert_eq!(transmit_all(&mut core), expect);
    assert_eq!(core.out_seq(), next);
    assert_eq!(core.queued_len(), 0);
    assert_eq!(core.queued_bytes(), 0);
}

/// Messages of two priorities in one inbox: the higher goes first, each in its order, and
/// the queued bytes add up.
#[test]
fn mixed_priorities_keep_the_core_rules() {
    let (inbox, _wake) = attached();
    let mut core = core();
    for i in 0..300 {
        let prio = if i % 3 == 0 { 200 } else { 0 };
        push(&inbox, msg(i, prio, None));
    }
    inbox.drain(&mut core);
    assert_eq!(core.queued_len(), 300);
    assert_eq!(core.queued_bytes(), 300 * 8);
    let high: Vec<u64> = (0..300).filter(|i| i % 3 == 0).collect();
    let low: Vec<u64> = (0..300).filter(|i| i % 3 != 0).collect();
    assert_eq!(transmit_all(&mut core), [high, low].concat());
}

/// A stream's blocks go round: the inbox's blocks join the out queue whole, become the
/// sent list, are released by ACKs and handed back to the inbox, whose next pushes reuse
/// them instead of allocating.
#[test]
fn blocks_go_round_from_the_sent_list_back_to_the_inbox() {
    let (inbox, _wake) = attached();
    let mut core = core();
    let mut released = Released::default();
    let mut next = 0u64;
    let spare = |inbox: &Inbox| inbox.lock().queue.spare_blocks();
    assert_eq!(spare(&inbox), 0);
    let mut spares = Vec::new();
    for _ in 0..8 {
        for _ in 0..1024 {
            push(&inbox, msg(next, 0, None));
            next += 1;
        }
        let before_drain = spare(&inbox);
        inbox.drain(&mut core);
        spares.push((before_drain, spare(&inbox)));
        let sent = transmit_all(&mut core);
        assert_eq!(sent.len(), 1024);
        // The peer acknowledges everything; the blocks leave the sent list whole, are
        // emptied outside the lock, and reach the out queue at the next ACK.
        core.handle_ack(core.out_seq(), &mut released);
        assert_eq!(released.len(), 1024);
        released.clear();
        core.handle_ack(core.out_seq(), &mut released);
        assert!(released.is_empty());
    }
    // The first round allocated its 16 blocks (and the smaller ones the inbox starts with),
    // the ACKs' recycling catches up in two rounds...
    assert_eq!(spares[0], (0, 0), "{spares:?}");
    // ...then every drain hands the inbox back the 16 blocks of the round before, and the
    // next 1,024 pushes fill exactly those 16 (64 each): none left over, none allocated.
    assert!(spares[3..].iter().all(|&s| s == (0, 16)), "{spares:?}");
}

/// Only a push into an empty inbox wakes the writer; while the reader delivers, a push is
/// owed instead, and ending the deliveries drains it and says so, after which a push
/// wakes the writer again.
#[tokio::test(start_paused = true)]
async fn only_the_first_push_wakes_and_deliveries_owe_instead() {
    let (inbox, wake) = attached();
    let mut core = core();
    push(&inbox, msg(0, 0, None));
    assert!(
        woken(&wake).await,
        "a push into an empty inbox wakes the writer"
    );
    push(&inbox, msg(1, 0, None));
    assert!(
        !woken(&wake).await,
        "the writer already has a wake-up for these"
    );
    inbox.drain(&mut core);
    push(&inbox, msg(2, 0, None));
    assert!(woken(&wake).await, "drained: the next push wakes again");
    inbox.drain(&mut core);

    // A run of deliveries by another socket's reader changes nothing.
    inbox.begin_delivery(2);
    push(&inbox, msg(3, 0, None));
    assert!(woken(&wake).await);
    inbox.drain(&mut core);

    inbox.begin_delivery(1);
    push(&inbox, msg(4, 0, None));
    push(&inbox, msg(5, 0, None));
    assert!(!woken(&wake).await, "owed to the reader, no writer wake-up");
    assert!(
        inbox.end_delivery(&mut core),
        "the reader sends what it owes"
    );
    assert!(!inbox.pending(), "ending the deliveries drained the inbox");
    assert_eq!(core.queued_len(), 6);
    assert!(!inbox.end_delivery(&mut core), "owed once");
    push(&inbox, msg(6, 0, None));
    assert!(
        woken(&wake).await,
        "deliveries over: a push wakes the writer"
    );
    inbox.drain(&mut core);
    assert_eq!(transmit_all(&mut core), (0..7).collect::<Vec<_>>());
}

/// A detached inbox takes no pushes (senders use the session lock), and detaching moves
/// what it held into the core first; a new socket's attach starts with no delivery state.
#[tokio::test(start_paused = true)]
async fn detach_drains_and_attach_starts_clean() {
    let (inbox, _wake) = attached();
    let mut core = core();
    inbox.begin_delivery(1);
    push(&inbox, msg(0, 0, None));
    inbox.detach(&mut core);
    assert_eq!(core.queued_len(), 1);
    assert!(!inbox.pending());
    assert!(matches!(inbox.lock().mode, Mode::Detached));
    let wake = Arc::new(Notify::new());
    inbox.attach(2, wake.clone());
    push(&inbox, msg(1, 0, None));
    assert!(
        woken(&wake).await,
        "the old socket's delivery left nothing owed"
    );
}

/// Close hands back what the inbox holds (dropping it releases every permit) and refuses
/// from then on; neither attach nor detach reopens it.
#[test]
fn close_releases_permits_and_refuses_later_pushes() {
    let (inbox, _wake) = attached();
    let throttle = Throttle::new(1 << 20);
    for i in 0..100 {
        push(&inbox, msg(i, 0, Some(throttle.take(100))));
    }
    assert_eq!(throttle.current(), 100 * 100);
    let left = inbox.close();
    assert_eq!(left.len(), 100);
    assert!(!inbox.pending());
    assert_eq!(throttle.current(), 100 * 100, "held until dropped");
    drop(left);
    assert_eq!(throttle.current(), 0);
    assert!(matches!(inbox.lock().mode, Mode::Closed));
    let mut core = core();
    inbox.attach(3, Arc::new(Notify::new()));
    assert!(matches!(inbox.lock().mode, Mode::Closed));
    inbox.detach(&mut core);
    assert!(matches!(inbox.lock().mode, Mode::Closed));
}
