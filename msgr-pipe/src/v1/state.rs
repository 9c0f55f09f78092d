//! msgr v1's per-session counters and replace bookkeeping, beside the neutral core.
//!
//! Ceph's v1 keys reconnects on `connect_seq` (bumped by each successful handshake, each
//! reconnect of an established session, each wake from standby; 0 after a reset) and
//! orders connection attempts by the peer's `global_seq`. An incoming socket that replaces
//! a session saves the old `connect_seq` until its reply leaves, so a failed replace leaves
//! the session as it was.
//!
//! Not here: queues, sequence numbers, fault policy (the core's, which this reacts to).

use std::time::Instant;

use crate::core::{AcceptStage, FaultAction, FaultCause, SessionCore};

/// msgr v1's state of one session.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct V1State {
    connect_seq: u32,
    peer_global_seq: u32,
    /// Created by the acceptor and its reply not yet written: a failed handshake ends it.
    accepted_new: bool,
    /// Created by the acceptor (rather than by an outgoing connect).
    created_by_accept: bool,
    /// `connect_seq` before an incoming socket started replacing our socket; restored if
    /// that handshake fails before our reply is written.
    saved_connect_seq: Option<u32>,
}

impl V1State {
    /// A state with these values (unit tests of the fault rules).
    #[cfg(test)]
    pub(crate) fn with(
        connect_seq: u32,
        accepted_new: bool,
        created_by_accept: bool,
        saved_connect_seq: Option<u32>,
    ) -> V1State {
        V1State {
            connect_seq,
            peer_global_seq: 0,
            accepted_new,
            created_by_accept,
            saved_connect_seq,
        }
    }

    /// The session's connect counter (spec §5.4).
    pub fn connect_seq(&self) -> u32 {
        self.connect_seq
    }

    /// The peer's global seq from the last handshake.
    pub fn peer_global_seq(&self) -> u32 {
        self.peer_global_seq
    }

    /// The peer answered RETRY_SESSION with `connect_seq`: kept for later attempts too, as
    /// Ceph's Pipe does (`cseq = connect_seq = reply.connect_seq`).
    pub fn retry_session(&mut self, connect_seq: u32) {
        self.connect_seq = connect_seq;
    }

    /// A READY/SEQ arrived for our connect sent with `sent_cseq`: the acceptor holds the
    /// session at `sent_cseq + 1` (a lossless one keeps it even if the socket fails now).
    pub fn ready(&mut self, sent_cseq: u32, peer_global_seq: u32) {
        self.connect_seq = sent_cseq.wrapping_add(1);
        self.peer_global_seq = peer_global_seq;
    }

    /// msgr2's SERVER_IDENT named the peer's `global_seq` (kept to tell a stale
    /// CLIENT_IDENT of the peer's from a new one).
    pub fn set_peer_global_seq(&mut self, peer_global_seq: u32) {
        self.peer_global_seq = peer_global_seq;
    }

    /// The session was reset (RESETSESSION, or a replace after the peer's reset).
    pub fn reset(&mut self) {
        self.connect_seq = 0;
    }

    /// A new session created by the acceptor for a connect with `connect_seq`/`global_seq`.
    pub fn accepted_new(connect_seq: u32, global_seq: u32) -> V1State {
        V1State {
            connect_seq: connect_seq.wrapping_add(1),
            peer_global_seq: global_seq,
            accepted_new: true,
            created_by_accept: true,
            saved_connect_seq: None,
        }
    }

    /// An incoming socket replaces this session's for a connect with
    /// `connect_seq`/`global_seq`; the old `connect_seq` is saved until the reply leaves.
    pub fn replace(&mut self, connect_seq: u32, global_seq: u32) {
        if self.saved_connect_seq.is_none() {
            self.saved_connect_seq = Some(self.connect_seq);
        }
        self.connect_seq = connect_seq.wrapping_add(1);
        self.peer_global_seq = global_seq;
    }

    /// The handshake's outcome is committed (the acceptor's READY/SEQ was written, or the
    /// connector opened): the peer may consider the session open, and a later failure keeps
    /// it.
    pub fn committed(&mut self) {
        self.accepted_new = false;
        self.saved_connect_seq = None;
    }

    /// Where an incoming handshake stood when it failed (the core's decision), with v1's
    /// bookkeeping done: a new session whose reply never left starts over at 0 if it is
    /// kept; a failed replace gets its old `connect_seq` back.
    fn accept_stage(&mut self, core: &SessionCore) -> AcceptStage {
        if std::mem::take(&mut self.accepted_new) {
            if core.has_messages() {
                self.connect_seq = 0;
                self.saved_connect_seq = None;
            }
            AcceptStage::NeverAnswered
        } else if let Some(c) = self.saved_connect_seq.take() {
            self.connect_seq = c;
            AcceptStage::Abandoned
        } else if self.created_by_accept && !core.was_open() && !core.has_messages() {
            AcceptStage::AnsweredNew
        } else {
            AcceptStage::Answered
        }
    }

    /// A socket (or an attempt) of the session ended: the core's fault rules, with v1's part
    /// (an established session reconnects with `connect_seq + 1`).
    pub fn fault(
        &mut self,
        core: &mut SessionCore,
        now: Instant,
        cause: FaultCause,
    ) -> FaultAction {
        let stage =
            (core.phase() == crate::core::ConnState::Accepting).then(|| self.accept_stage(core));
        let action = core.handle_fault(now, cause, stage);
        if let FaultAction::Reconnect { renew: true, .. } = action {
            self.connect_seq = self.connect_seq.wrapping_add(1);
        }
        action
    }

    /// A message was queued on a standby session: it connects again, with `connect_seq + 1`
    /// if a session had been established, as Simple's writer does.
    pub fn wake_from_standby(&mut self, core: &mut SessionCore) -> bool {
        let woke = core.wake_from_standby();
        if woke && self.connect_seq > 0 {
            self.connect_seq = self.connect_seq.wrapping_add(1);
        }
        woke
    }
}
