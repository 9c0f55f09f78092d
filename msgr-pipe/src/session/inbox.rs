//! The submission inbox of a session: where senders queue their messages without taking
//! the session lock.
//!
//! # Why
//! The writer holds the session lock while it stages a batch: up to 1,024 small messages
//! numbered, moved to the sent list and encoded (`SessionCore::poll_transmit`, about 600
//! instructions each). A sender that took the same lock for every message it queued spun
//! out behind that and slept on the lock's `futex`, and the writer's unlock woke it: a
//! context switch on each side, tens of thousands of them in a 64-byte stream on two cores.
//! Here a sender holds a lock of its own for one push (a few dozen instructions), so a
//! contended acquire spins briefly and succeeds instead of sleeping.
//!
//! # How
//! An [`Inbox`] sits beside the session lock, not inside it: a small `Mutex` around a
//! [`Submitted`] block FIFO (blocks recycled from the sent list: no allocation per
//! message) and what a sender needs to have its message sent without the session lock
//! (the attached socket's writer `Notify`, the reader's `delivering` and `owed`, closed),
//! plus an atomic flag saying the FIFO holds messages.
//!
//! * A sender pushes under the inbox lock ([`State::push`]) while a socket's tasks run
//!   ([`Mode::Attached`]). Otherwise (no socket, a handshake in progress, standby) it takes
//!   the session lock as before: nobody streams then, and the standby wake-up needs the
//!   core's phase. A closed session refuses the message ([`Mode::Closed`]).
//! * Every acquisition of the session lock (`Inner::lock`) first moves what the inbox holds
//!   into the core ([`Inbox::drain`], [`SessionCore::send_all`]: whole blocks), when the
//!   flag says it holds any. Everything under the session lock then sees a core holding
//!   every message queued before the lock was taken (fault requeue, reset, close, stats, the
//!   writer's batches need no change), and order is kept: one FIFO,
//!   drained whole and in order before anything reads the core. A sender's later message
//!   cannot overtake an earlier one: the earlier one is in the inbox (drained before the
//!   slow path queues into the core) or already in the core. The one exception is the
//!   reader's handling of frames (a message's sequence check, ACKs, keepalives) and its
//!   idle step (`Inner::lock_undrained`): they read neither the out queues nor their
//!   counts; a drain at every ACK cut a stream's inbox into part-filled blocks, and one at
//!   every message received drained each reply its delivery had queued on its own. The
//!   blocks an ACK empties come back to the inbox from there ([`Inbox::recycle`]).
//! * Whoever changes what a sender needs updates it under the inbox lock, holding the
//!   session lock too: the socket's tasks starting ([`Inbox::attach`]), its fault
//!   ([`Inbox::detach`], which also drains, so the fault's decisions (standby if nothing is
//!   queued) see every message), the reader starting and ending a run of deliveries
//!   ([`Inbox::begin_delivery`], [`Inbox::end_delivery`]), close ([`Inbox::close`]).
//!
//! # Lock order
//! Session lock, then inbox lock; never the reverse. Nothing is called under the inbox
//! lock but `Notify::notify_one` and the core's block moves.
//!
//! # No wake-up is lost
//! A push into an empty inbox wakes the writer (or, while the reader delivers, marks the
//! message `owed`: `writer::end_delivery` sends it from the reader's task). A push into a
//! non-empty inbox wakes nobody: the push that made it non-empty did, and nothing has taken
//! the messages since (taking them empties the inbox). The writer creates its `notified()`
//! future before it drains and drains until the core has nothing to send, taking the
//! session lock (and so the inbox) at each batch: a push after its last drain finds the
//! inbox empty and wakes it. `end_delivery` clears `delivering`, takes `owed` and drains
//! in one inbox critical section: a push before it is sent by it, a push after it sees
//! `delivering` false and an empty inbox, and wakes the writer. A new socket's writer
//! starts with a drain, so what was pushed towards the previous one is not stranded.
//!
//! A send racing the session's close is either refused ([`SendError::Closed`]) or, pushed
//! before the close, dropped by the close with its permit released, as before (where it
//! was queued into the core and discarded with it).
//!
//! Not here: the out queues themselves, priorities and the sent list (the core's).
//!
//! [`SendError::Closed`]: crate::SendError::Closed

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

use super::relock;
use crate::core::{Outgoing, Released, SessionCore, Submitted};

/// A session's submission inbox (see the module docs).
#[derive(Default)]
pub(super) struct Inbox {
    /// Set while the FIFO holds messages (written under the lock, read without it): the
    /// session lock skips the inbox lock when it is clear.
    pending: AtomicBool,
    state: Mutex<State>,
}

/// Who takes a sender's message.
#[derive(Default)]
pub(super) enum Mode {
    /// No socket's tasks run: the sender queues under the session lock.
    #[default]
    Detached,
    /// The tasks of socket `epoch` run; its writer waits on `wake`.
    Attached { epoch: u64, wake: Arc<Notify> },
    /// The session ended: messages are refused.
    Closed,
}

/// The inbox under its lock.
#[derive(Default)]
pub(super) struct State {
    queue: Submitted,
    pub(super) mode: Mode,
    /// The attached socket's reader is delivering: a message pushed meanwhile wakes no
    /// writer; the reader sends it when its deliveries end.
    delivering: bool,
    /// A message was pushed while `delivering`.
    owed: bool,
    /// Drains that moved messages into the core (for tests and diagnostics).
    drains: u64,
}

impl State {
    /// Queues `out` on an attached inbox and makes sure it is sent (see the module docs).
    /// Inlined into the sender, so the message is moved once, into its block.
    #[inline(always)]
    pub(super) fn push(&mut self, out: Outgoing, pending: &AtomicBool) {
        let first = self.queue.is_empty();
        self.queue.push(out);
        if first {
            pending.store(true, Ordering::Release);
        }
        if self.delivering {
            self.owed = true;
        } else if first {
            if let Mode::Attached { wake, .. } = &self.mode {
                wake.notify_one();
            }
        }
    }

    fn drain(&mut self, core: &mut SessionCore, pending: &AtomicBool) {
        if !self.queue.is_empty() {
            self.drains += 1;
        }
        core.send_all(&mut self.queue);
        pending.store(false, Ordering::Release);
    }
}

impl Inbox {
    /// The inbox under its lock (a sender's push).
    #[inline(always)]
    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        relock(&self.state)
    }

    /// The flag [`State::push`] sets.
    pub(super) fn pending_flag(&self) -> &AtomicBool {
        &self.pending
    }

    /// Drains so far that moved messages into the core.
    pub(super) fn drains(&self) -> u64 {
        self.lock().drains
    }

    /// True if messages may be waiting (checked by every acquisition of the session lock).
    #[inline(always)]
    pub(super) fn pending(&self) -> bool {
        self.pending.load(Ordering::Acquire)
    }

    /// Moves everything the inbox holds into `core` (the session lock is held).
    #[inline(never)]
    pub(super) fn drain(&self, core: &mut SessionCore) {
        self.lock().drain(core, &self.pending);
    }

    /// Takes the blocks `released` emptied (an ACK's, after [`Released::clear`]) for the
    /// next pushes, straight from the reader: the senders' pushes then find spare blocks
    /// between two of the writer's drains too, instead of allocating. Only if the inbox
    /// lock is free: the reader does not wait behind a sender for this (a wait here was 8 %
    /// of a 64-byte stream's `futex` calls); the blocks otherwise go back through the out
    /// queues at the next ACK, as before.
    pub(super) fn recycle(&self, released: &mut Released) {
        if released.has_spare() {
            if let Ok(mut st) = self.state.try_lock() {
                released.recycle(|b| st.queue.recycle(b));
            }
        }
    }

    /// The tasks of socket `epoch` start (session lock held, `epoch` current): senders push
    /// and wake its writer on `wake`.
    pub(super) fn attach(&self, epoch: u64, wake: Arc<Notify>) {
        let mut st = self.lock();
        if !matches!(st.mode, Mode::Closed) {
            st.mode = Mode::Attached { epoch, wake };
        }
        st.delivering = false;
        st.owed = false;
    }

    /// The current socket is gone (session lock held): what the inbox holds moves into
    /// `core` (before the fault's decisions look at the queues), and senders take the
    /// session lock until the next socket's tasks start.
    pub(super) fn detach(&self, core: &mut SessionCore) {
        let mut st = self.lock();
        st.drain(core, &self.pending);
        if !matches!(st.mode, Mode::Closed) {
            st.mode = Mode::Detached;
        }
        st.delivering = false;
        st.owed = false;
    }

    /// The session ends (session lock held): later sends are refused; returns what the
    /// inbox held, to be dropped (permits released) outside the locks.
    pub(super) fn close(&self) -> Vec<Outgoing> {
        let mut st = self.lock();
        let mut left = Vec::new();
        st.queue.drain_into(&mut left);
        self.pending.store(false, Ordering::Release);
        st.mode = Mode::Closed;
        st.delivering = false;
        st.owed = false;
        left
    }

    /// The reader of socket `epoch` delivers messages (session lock held): what is pushed
    /// until [`end_delivery`](Self::end_delivery) is owed, not woken for.
    pub(super) fn begin_delivery(&self, epoch: u64) {
        let mut st = self.lock();
        if matches!(st.mode, Mode::Attached { epoch: e, .. } if e == epoch) {
            st.delivering = true;
        }
    }

    /// The reader's deliveries end (session lock held): in one critical section,
    /// `delivering` is cleared, what the inbox holds moves into `core`, and whether a
    /// message was pushed meanwhile (the reader must send it) is returned.
    pub(super) fn end_delivery(&self, core: &mut SessionCore) -> bool {
        let mut st = self.lock();
        st.delivering = false;
        if !st.queue.is_empty() {
            st.drain(core, &self.pending);
        }
        std::mem::take(&mut st.owed)
    }
}

#[cfg(test)]
mod tests;
