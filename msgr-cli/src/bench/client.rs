//! The client side of a msgr bench job: the dispatcher that times echoes, keeps the rr window,
//! catches the end of a run, and (lossless rr) sends the next request from fast dispatch.

use msgr_dispatch::lock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::bail;
use bytes::{Buf, Bytes};
use hdrhistogram::Histogram;
use msgr_core::{BoxFuture, Connection, Dispatched, Dispatcher, Received};
use tokio::sync::{Notify, Semaphore};

use super::msgr::{data_message, end_message, Stamps};
use super::payload::{self, Integrity, SeqTracker};
use super::plan::Mode;
use super::{new_histogram, Stopper};
use crate::serve::{MSG_BENCH_DATA, MSG_BENCH_END, MSG_BENCH_END_ACK};

/// What a job's client messenger received.
#[derive(Debug)]
struct ClientState {
    tracker: SeqTracker,
    rtt: Histogram<u64>,
    ack: Option<(u64, Integrity)>,
    /// The send times of the requests in flight (rr).
    stamps: Stamps,
    /// When the last echo arrived, in nanoseconds since the epoch (rr).
    last_echo_ns: Option<u64>,
    /// When the server answered the end marker.
    ended_at: Option<Instant>,
    /// The sender of a dispatcher-driven rr run, under the same lock as the echoes' counts:
    /// an echo is recorded and the next request sent with one lock taken, as the raw-TCP
    /// client's one task does it with none.
    pump: Option<Pump>,
}

/// The sending side of a dispatcher-driven rr run (see `Job::pump`).
pub(super) struct Pump {
    pub(super) conn: Connection,
    pub(super) filler: Bytes,
    pub(super) stopper: Stopper,
    pub(super) next: u64,
    pub(super) finished: bool,
}

impl std::fmt::Debug for Pump {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pump")
            .field("next", &self.next)
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

/// The client's dispatcher: times echoes, refills the window, catches the end of the run.
pub(super) struct ClientSide {
    epoch: Instant,
    verify: bool,
    depth: usize,
    state: Mutex<ClientState>,
    /// The rr window of a task-driven run; a pump run (see [`Pump`]) does not use it.
    window: Semaphore,
    ended: AtomicBool,
    end: Notify,
}

impl ClientSide {
    pub(super) fn new(depth: usize, verify: bool, epoch: Instant) -> Arc<Self> {
        Arc::new(ClientSide {
            epoch,
            verify,
            depth,
            state: Mutex::new(ClientState {
                tracker: SeqTracker::default(),
                rtt: new_histogram(),
                stamps: Stamps::new(depth),
                ack: None,
                last_echo_ns: None,
                ended_at: None,
                pump: None,
            }),
            window: Semaphore::new(depth),
            ended: AtomicBool::new(false),
            end: Notify::new(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ClientState> {
        lock(&self.state)
    }

    pub(super) fn start_pump(&self, pump: Pump) {
        self.lock().pump = Some(pump);
    }

    /// Sends the next message of a dispatcher-driven run, or its end marker once the limit
    /// is reached.
    pub(super) fn advance(&self) {
        let state = &mut *self.lock();
        if let Some(pump) = state.pump.as_mut() {
            self.pump_next(pump, &mut state.stamps);
        }
    }

    /// [`advance`](Self::advance) with the state locked.
    fn pump_next(&self, pump: &mut Pump, stamps: &mut Stamps) {
        if pump.finished {
            return;
        }
        if pump.stopper.done(pump.next) {
            pump.finished = true;
            let _ = pump.conn.queue(end_message(pump.next));
            return;
        }
        let msg = data_message(pump.next, &pump.filler, self.verify);
        stamps.record(pump.next, self.now_ns());
        pump.next += 1;
        let _ = pump.conn.queue(msg);
    }

    /// Messages a dispatcher-driven run has sent so far.
    pub(super) fn pumped(&self) -> u64 {
        self.lock().pump.as_ref().map_or(0, |p| p.next)
    }

    /// Nanoseconds since the run's epoch.
    fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// A task-driven rr run sends request `seq` now: its send time, for its echo.
    pub(super) fn stamp(&self, seq: u64) {
        let now = self.now_ns();
        self.lock().stamps.record(seq, now);
    }

    /// Forgets the warm-up round trip.
    pub(super) fn reset(&self) {
        let mut state = self.lock();
        state.tracker = SeqTracker::default();
        state.rtt.reset();
        state.ack = None;
        state.last_echo_ns = None;
        state.ended_at = None;
        self.ended.store(false, Ordering::SeqCst);
        let missing = self.depth.saturating_sub(self.window.available_permits());
        self.window.add_permits(missing);
    }

    /// Takes a place in the rr window; `false` after `timeout` without one.
    pub(super) async fn take_window(&self, timeout: Duration) -> bool {
        match tokio::time::timeout(timeout, self.window.acquire()).await {
            Ok(Ok(permit)) => {
                permit.forget();
                true
            }
            _ => false,
        }
    }

    /// Waits for the server's answer to an end marker.
    pub(super) async fn wait_end(&self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        while !self.ended.load(Ordering::SeqCst) {
            if tokio::time::timeout_at(deadline, self.end.notified())
                .await
                .is_err()
            {
                bail!("no answer within {timeout:?}");
            }
        }
        Ok(())
    }

    pub(super) fn histogram(&self) -> Histogram<u64> {
        self.lock().rtt.clone()
    }

    /// The faults of the run: the sink's counts, or the client's own over the echoes.
    pub(super) fn integrity(&self, sent: u64, mode: Mode) -> Integrity {
        let state = self.lock();
        match (mode, state.ack) {
            (Mode::Stream, Some((_, integrity))) => integrity,
            (Mode::Stream, None) if state.tracker.received() == 0 => Integrity {
                lost: sent,
                ..Integrity::default()
            },
            _ => state.tracker.finish(sent),
        }
    }

    fn handle(&self, received: Received) {
        let msg = &received.msg;
        match msg.header.ty {
            MSG_BENCH_DATA => {
                let now = self.now_ns();
                let seq = msg.header.tid;
                let mut guard = self.lock();
                let state = &mut *guard;
                state.last_echo_ns = Some(now);
                state.tracker.observe(seq);
                if let Some(stamp) = state.stamps.take(seq) {
                    state
                        .rtt
                        .saturating_record(now.saturating_sub(stamp).max(1));
                }
                if self.verify && !payload::check(&msg.data, seq) {
                    state.tracker.corrupted();
                }
                // A pump run sends the next request at once; a task-driven run's sender
                // waits for the window.
                match state.pump.as_mut() {
                    Some(pump) => self.pump_next(pump, &mut state.stamps),
                    None => {
                        drop(guard);
                        self.window.add_permits(1);
                    }
                }
            }
            MSG_BENCH_END => self.finish(None),
            MSG_BENCH_END_ACK => {
                let mut front = &msg.front[..];
                if front.len() >= 40 {
                    let received = front.get_u64_le();
                    let integrity = Integrity {
                        lost: front.get_u64_le(),
                        duplicated: front.get_u64_le(),
                        reordered: front.get_u64_le(),
                        corrupted: front.get_u64_le(),
                    };
                    self.finish(Some((received, integrity)));
                }
            }
            _ => {}
        }
    }

    /// When the run's last delivery was confirmed: the last echo in rr mode, the sink's
    /// answer to the end marker in stream mode (or now, if neither came).
    pub(super) fn ended(&self, mode: Mode) -> Instant {
        let state = self.lock();
        let echo = state
            .last_echo_ns
            .map(|ns| self.epoch + Duration::from_nanos(ns));
        match mode {
            Mode::Rr => echo.or(state.ended_at),
            Mode::Stream => state.ended_at,
        }
        .unwrap_or_else(Instant::now)
    }

    fn finish(&self, ack: Option<(u64, Integrity)>) {
        {
            let mut state = self.lock();
            state.ended_at = Some(Instant::now());
            if ack.is_some() {
                state.ack = ack;
            }
        }
        self.ended.store(true, Ordering::SeqCst);
        self.end.notify_one();
    }
}

impl Dispatcher for ClientSide {
    /// A lossy session failed: whatever was in flight is gone, so the window opens again.
    fn handle_reset(&self, _conn: &Connection) {
        let missing = self.depth.saturating_sub(self.window.available_permits());
        self.window.add_permits(missing);
    }

    fn dispatch(&self, msg: Received) -> BoxFuture<'_, Dispatched> {
        self.handle(msg);
        Box::pin(async { Dispatched::Handled })
    }

    fn can_fast_dispatch(&self, _msg: &Received) -> bool {
        true
    }

    fn fast_dispatch(&self, msg: Received) {
        self.handle(msg);
    }
}
