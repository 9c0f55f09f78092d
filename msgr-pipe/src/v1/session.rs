//! Applying handshake outcomes to a session: what an accept decision or a READY/SEQ does to
//! the core and to v1's counters, as pure functions on the pair (the drivers call them under
//! the session lock; the deterministic simulation calls them directly).
//!
//! Not here: choosing the outcome (the tables in [`super::accept`] and
//! [`super::connect`]), sockets, events to the host (each result says which are due).

use msgr_wire::{features, Connect, CONNECT_LOSSY};

use super::accept::{ExistingView, ReplaceKind};
use super::handshake::Opened;
use super::V1State;
use crate::core::{ConnState, Established, Outgoing, SessionCore};

/// The acceptor's view of a session for table 5.3.
pub fn view(
    core: &SessionCore,
    v1: &V1State,
    server: bool,
    replacing: bool,
    attempting: bool,
) -> ExistingView {
    ExistingView {
        phase: core.phase(),
        connect_seq: v1.connect_seq(),
        peer_global_seq: v1.peer_global_seq(),
        lossy: core.is_lossy(),
        server,
        replacing,
        attempting,
    }
}

/// What taking a socket over did.
#[derive(Debug)]
pub struct Attach {
    /// Messages a reset discarded (drop them outside any lock).
    pub dropped: Vec<Outgoing>,
    /// The session was reset: a RemoteReset event is due, and delayed deliveries are void.
    pub remote_reset: bool,
    /// The peer restarted its side (delayed deliveries are void).
    pub peer_reset: bool,
    /// Answer SEQ with this `in_seq` (the peer supports it and did not restart), else READY.
    pub seq_reply: Option<u64>,
}

/// Rows 6 and 18: a new session for `connect`, created Accepting; `supported` are our
/// features for the peer type.
pub fn open_new(
    core: &mut SessionCore,
    v1: &mut V1State,
    connect: &Connect,
    supported: u64,
) -> Attach {
    *v1 = V1State::accepted_new(connect.connect_seq, connect.global_seq);
    core.begin_accept(supported & connect.features);
    Attach {
        dropped: Vec::new(),
        remote_reset: false,
        peer_reset: false,
        seq_reply: features::has(connect.features, features::RECONNECT_SEQ).then(|| core.in_seq()),
    }
}

/// Rows 9, 10, 12, 13, 16: the existing session takes the incoming socket over; its
/// unacknowledged messages are requeued, its `connect_seq` saved until the reply leaves.
pub fn replace(
    kind: ReplaceKind,
    core: &mut SessionCore,
    v1: &mut V1State,
    connect: &Connect,
    supported: u64,
) -> Attach {
    let mut dropped = Vec::new();
    let mut remote_reset = false;
    let mut peer_reset = false;
    match kind {
        // A session that never opened has nothing the peer could have lost: its queue
        // (messages the application already handed us) is kept.
        ReplaceKind::LossyExisting if core.was_open() => {
            dropped = core.reset_session();
            v1.reset();
            remote_reset = true;
        }
        ReplaceKind::LossyExisting => {}
        ReplaceKind::PeerReset { reset } => {
            peer_reset = true;
            if reset && core.was_open() {
                dropped = core.reset_session();
                v1.reset();
                remote_reset = true;
            } else {
                core.restart_in_seq();
            }
        }
        ReplaceKind::ResetCheckZero | ReplaceKind::RaceWon | ReplaceKind::Reconnect => {}
    }
    core.begin_accept(supported & connect.features);
    v1.replace(connect.connect_seq, connect.global_seq);
    let seq = features::has(connect.features, features::RECONNECT_SEQ) && !peer_reset;
    Attach {
        dropped,
        remote_reset,
        peer_reset,
        seq_reply: seq.then(|| core.in_seq()),
    }
}

/// The acceptor's READY/SEQ was written and the exchange is done: the session opens.
/// Returns the negotiated features.
pub fn accepted(core: &mut SessionCore, v1: &mut V1State) -> u64 {
    v1.committed();
    let est = Established {
        features: core.features(),
        lossy: core.is_lossy(),
    };
    core.opened(est);
    est.features
}

/// READY/SEQ arrived for our connect: the acceptor now holds the session at
/// `connect_seq + 1` (a lossless one keeps it even if this socket fails now), so do we, or a
/// retry with the old value would look like a restart of ours (table 5.3, row 10).
pub fn ready(v1: &mut V1State, opened: &Opened) {
    if opened.reply.flags & CONNECT_LOSSY == 0 {
        v1.ready(opened.connect_seq_sent, opened.reply.global_seq);
    }
}

/// The connector's handshake completed and the session opens with the reply's features
/// (within `supported`) and lossiness. Returns false (nothing changed) unless the session is
/// still connecting. The connect seqs may disagree with a buggy peer: ours wins.
pub fn connected(
    core: &mut SessionCore,
    v1: &mut V1State,
    opened: &Opened,
    supported: u64,
) -> bool {
    if core.phase() != ConnState::Connecting {
        return false;
    }
    v1.ready(opened.connect_seq_sent, opened.reply.global_seq);
    v1.committed();
    core.opened(Established {
        features: opened.reply.features & supported,
        lossy: opened.reply.flags & CONNECT_LOSSY != 0,
    });
    true
}
