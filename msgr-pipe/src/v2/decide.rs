//! msgr2's accept decisions as pure functions: what an acceptor answers a CLIENT_IDENT
//! ([`ident`], Ceph's `ProtocolV2::handle_existing_connection`) or a SESSION_RECONNECT
//! ([`reconnect`], Ceph's `ProtocolV2::handle_reconnect`) given the session it already holds
//! for the peer's address.
//!
//! msgr2 keys sessions on cookies, not on v1's table 5.3: the connecting side's cookie
//! (`client_cookie`) names the session from its first CLIENT_IDENT, the accepting side's
//! (`server_cookie`) is handed out in SERVER_IDENT and proves the session was established.
//! Both sides keep both cookies whichever of them reconnects. `connect_seq` counts the
//! reconnects of an established session: 0 for a new one (CLIENT_IDENT), raised by the side
//! that reconnects after a fault; the acceptor holds the value of the last reconnect it took,
//! so two sides reconnecting at once present equal values (a reconnect race, settled by the
//! addresses as in v1).
//!
//! Departures from Ceph, all toward liveness:
//! * A CLIENT_IDENT while another socket replaces the session is answered
//!   SESSION_RETRY_GLOBAL (v1's row 7), not WAIT, which would make the client of a server
//!   that never connects out sit out its longest backoff.
//! * WAIT (ours wins a race) only when our own attempt is under way (phase `Connecting`): a
//!   session open, in standby or in Wait takes the peer's connection. Ceph answers WAIT to a
//!   SESSION_RECONNECT whose `connect_seq` equals the one held even in standby, and a
//!   connector that retries a reconnect the acceptor had taken then waits for ever.
//!
//! Not here: carrying a decision out (the driver, `session/v2.rs`), frames (the acceptor
//! machine, [`super::accept`]).

use crate::core::ConnState;
use crate::v1::accept::{ExistingView, ReplaceKind};

/// The acceptor's view of the session it holds for the peer's address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct V2View {
    /// Phase, `connect_seq`, the peer's `global_seq`, lossiness, policy, replace in flight.
    pub base: ExistingView,
    /// The session's connecting-side cookie (0 before any ident).
    pub client_cookie: u64,
    /// The session's accepting-side cookie: 0 until SERVER_IDENT was sent or received.
    pub server_cookie: u64,
}

/// What the peer's request carries that the decisions read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    /// Its connecting-side cookie.
    pub client_cookie: u64,
    /// Its `global_seq` for this connection.
    pub global_seq: u64,
    /// Its `connect_seq` (SESSION_RECONNECT only; 0 for CLIENT_IDENT).
    pub connect_seq: u64,
}

/// The answer to a CLIENT_IDENT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdentDecision {
    /// No session (or a closed one): a new session, SERVER_IDENT.
    Open,
    /// The existing session takes this socket over and SERVER_IDENT is sent on it.
    Replace(ReplaceKind),
    /// Our own connection wins a race: WAIT.
    Wait,
    /// Another socket is replacing the session's: SESSION_RETRY_GLOBAL, so the peer asks
    /// again at once (v1's row 7; Ceph answers WAIT, which makes a client of a server that
    /// never connects out sit out its longest backoff).
    RetryGlobal {
        /// The peer's `global_seq` we hold.
        global_seq: u64,
    },
    /// The ident is older than what the session already heard from the peer (the
    /// CLIENT_IDENT of an attempt the peer has since given up): close without an answer.
    Stale,
}

/// The answer to a SESSION_RECONNECT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReconnectDecision {
    /// SESSION_RESET: the peer starts a new session with CLIENT_IDENT; `full` tells it to
    /// discard its session's state (queues included) first.
    Reset {
        /// Forget everything.
        full: bool,
    },
    /// SESSION_RETRY_GLOBAL: retry with a `global_seq` above this.
    RetryGlobal {
        /// The peer's `global_seq` we already hold.
        global_seq: u64,
    },
    /// SESSION_RETRY: retry with a `connect_seq` above this.
    Retry {
        /// The `connect_seq` we hold.
        connect_seq: u64,
    },
    /// A reconnect race our own reconnect wins: WAIT.
    Wait,
    /// The session resumes on this socket: SESSION_RECONNECT_OK.
    Resume,
}

/// Decides a CLIENT_IDENT against `existing` (Ceph's `handle_existing_connection`);
/// `peer_wins_race` when the peer's address orders below ours, `resetcheck` our policy's.
pub fn ident(
    req: &Request,
    existing: Option<&V2View>,
    peer_wins_race: bool,
    resetcheck: bool,
) -> IdentDecision {
    let Some(ex) = existing.filter(|e| e.base.phase != ConnState::Closed) else {
        return IdentDecision::Open;
    };
    if ex.base.replacing {
        return IdentDecision::RetryGlobal {
            global_seq: u64::from(ex.base.peer_global_seq),
        };
    }
    if u64::from(ex.base.peer_global_seq) > req.global_seq {
        return IdentDecision::Stale;
    }
    if ex.base.lossy {
        return IdentDecision::Replace(ReplaceKind::LossyExisting);
    }
    if ex.server_cookie != 0 && ex.client_cookie != 0 && ex.client_cookie != req.client_cookie {
        // An established session and a new cookie: the peer restarted its side.
        return IdentDecision::Replace(ReplaceKind::PeerReset { reset: resetcheck });
    }
    if ex.client_cookie == req.client_cookie {
        // The same session's establishment, interrupted between CLIENT_IDENT and
        // SERVER_IDENT (or the peer was told to start it again): go on with it.
        return IdentDecision::Replace(ReplaceKind::Reconnect);
    }
    if matches!(ex.base.phase, ConnState::Open | ConnState::Standby) {
        return IdentDecision::Replace(ReplaceKind::PeerReset { reset: false });
    }
    // Both sides connecting at once; only a session whose own attempt is under way can win
    // (one in Wait was told to expect the peer's connection: this one).
    if peer_wins_race || ex.base.server || ex.base.phase != ConnState::Connecting {
        IdentDecision::Replace(ReplaceKind::RaceWon)
    } else {
        IdentDecision::Wait
    }
}

/// Decides a SESSION_RECONNECT against `existing` (Ceph's `handle_reconnect`);
/// `peer_wins_race` when the peer's address orders below ours, `resetcheck` our policy's.
pub fn reconnect(
    req: &Request,
    existing: Option<&V2View>,
    peer_wins_race: bool,
    resetcheck: bool,
) -> ReconnectDecision {
    let Some(ex) = existing.filter(|e| e.base.phase != ConnState::Closed) else {
        return ReconnectDecision::Reset { full: true };
    };
    if ex.base.replacing {
        return ReconnectDecision::RetryGlobal {
            global_seq: u64::from(ex.base.peer_global_seq),
        };
    }
    if ex.client_cookie != req.client_cookie {
        // Not the session we hold: we must have reset it.
        return ReconnectDecision::Reset { full: resetcheck };
    }
    if ex.server_cookie == 0 {
        // We connected and never saw SERVER_IDENT, but the peer (having sent it) reconnects
        // to us: it starts the establishment again with CLIENT_IDENT, keeping its queue.
        return ReconnectDecision::Reset { full: false };
    }
    if u64::from(ex.base.peer_global_seq) > req.global_seq {
        return ReconnectDecision::RetryGlobal {
            global_seq: u64::from(ex.base.peer_global_seq),
        };
    }
    let held = u64::from(ex.base.connect_seq);
    if held > req.connect_seq {
        return ReconnectDecision::Retry { connect_seq: held };
    }
    if held == req.connect_seq
        && ex.base.phase == ConnState::Connecting
        && !peer_wins_race
        && !ex.base.server
    {
        // Both sides reconnecting at once: ours wins. A session that is not reconnecting
        // (open, standby, or told to wait for the peer) takes the peer's instead: a WAIT
        // would leave the peer waiting for a connection that never comes.
        return ReconnectDecision::Wait;
    }
    ReconnectDecision::Resume
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(phase: ConnState, cseq: u32, pgseq: u32, cc: u64, sc: u64) -> V2View {
        V2View {
            base: ExistingView {
                phase,
                connect_seq: cseq,
                peer_global_seq: pgseq,
                lossy: false,
                server: false,
                replacing: false,
                attempting: false,
            },
            client_cookie: cc,
            server_cookie: sc,
        }
    }

    fn req(cc: u64, gseq: u64, cseq: u64) -> Request {
        Request {
            client_cookie: cc,
            global_seq: gseq,
            connect_seq: cseq,
        }
    }

    #[test]
    fn ident_without_a_session_opens() {
        assert_eq!(ident(&req(7, 1, 0), None, false, true), IdentDecision::Open);
        let closed = view(ConnState::Closed, 3, 9, 7, 8);
        assert_eq!(
            ident(&req(7, 1, 0), Some(&closed), false, true),
            IdentDecision::Open
        );
    }

    #[test]
    fn ident_while_replacing_retries_and_stale_is_dropped() {
        let mut e = view(ConnState::Open, 0, 10, 7, 8);
        assert_eq!(
            ident(&req(9, 5, 0), Some(&e), true, true),
            IdentDecision::Stale
        );
        e.base.replacing = true;
        assert_eq!(
            ident(&req(9, 50, 0), Some(&e), true, true),
            IdentDecision::RetryGlobal { global_seq: 10 }
        );
    }

    #[test]
    fn ident_with_a_new_cookie_on_an_established_session_is_a_peer_reset() {
        let e = view(ConnState::Open, 2, 10, 7, 8);
        assert_eq!(
            ident(&req(9, 11, 0), Some(&e), false, true),
            IdentDecision::Replace(ReplaceKind::PeerReset { reset: true })
        );
        assert_eq!(
            ident(&req(9, 11, 0), Some(&e), false, false),
            IdentDecision::Replace(ReplaceKind::PeerReset { reset: false })
        );
    }

    #[test]
    fn ident_with_the_sessions_cookie_continues_its_establishment() {
        // Our connect never saw SERVER_IDENT (no server cookie); the peer, told to start
        // again, sends CLIENT_IDENT with our cookie.
        let e = view(ConnState::Connecting, 1, 10, 7, 0);
        assert_eq!(
            ident(&req(7, 11, 0), Some(&e), false, true),
            IdentDecision::Replace(ReplaceKind::Reconnect)
        );
    }

    #[test]
    fn crossing_idents_are_a_race_settled_by_address() {
        let e = view(ConnState::Connecting, 0, 0, 7, 0);
        assert_eq!(
            ident(&req(9, 3, 0), Some(&e), true, true),
            IdentDecision::Replace(ReplaceKind::RaceWon)
        );
        assert_eq!(
            ident(&req(9, 3, 0), Some(&e), false, true),
            IdentDecision::Wait
        );
        // Told to wait for the peer's connection: this is it.
        let mut waiting = e;
        waiting.base.phase = ConnState::Wait;
        assert_eq!(
            ident(&req(9, 3, 0), Some(&waiting), false, true),
            IdentDecision::Replace(ReplaceKind::RaceWon)
        );
        let mut server = e;
        server.base.server = true;
        assert_eq!(
            ident(&req(9, 3, 0), Some(&server), false, true),
            IdentDecision::Replace(ReplaceKind::RaceWon)
        );
    }

    #[test]
    fn a_crossing_ident_after_our_server_ident_arrived_is_stale() {
        // We received SERVER_IDENT (its global_seq 20) on our own connect, then the peer's
        // CLIENT_IDENT of the attempt it gave up (global_seq 12) arrives.
        let e = view(ConnState::Open, 0, 20, 7, 8);
        assert_eq!(
            ident(&req(9, 12, 0), Some(&e), false, true),
            IdentDecision::Stale
        );
    }

    #[test]
    fn reconnect_to_nothing_or_another_session_resets() {
        assert_eq!(
            reconnect(&req(7, 1, 1), None, false, true),
            ReconnectDecision::Reset { full: true }
        );
        let e = view(ConnState::Open, 1, 1, 7, 8);
        assert_eq!(
            reconnect(&req(9, 2, 1), Some(&e), false, true),
            ReconnectDecision::Reset { full: true }
        );
        assert_eq!(
            reconnect(&req(9, 2, 1), Some(&e), false, false),
            ReconnectDecision::Reset { full: false }
        );
    }

    #[test]
    fn reconnect_to_a_session_that_never_saw_server_ident_restarts_its_establishment() {
        // A lossless peer that answered our CLIENT_IDENT reconnects to us before our
        // connect saw its SERVER_IDENT: no reset of its queue, whatever resetcheck says.
        let e = view(ConnState::Connecting, 1, 0, 7, 0);
        assert_eq!(
            reconnect(&req(7, 4, 1), Some(&e), false, true),
            ReconnectDecision::Reset { full: false }
        );
    }

    #[test]
    fn reconnect_seqs() {
        let e = view(ConnState::Connecting, 2, 10, 7, 8);
        assert_eq!(
            reconnect(&req(7, 9, 3), Some(&e), false, true),
            ReconnectDecision::RetryGlobal { global_seq: 10 }
        );
        assert_eq!(
            reconnect(&req(7, 11, 1), Some(&e), false, true),
            ReconnectDecision::Retry { connect_seq: 2 }
        );
        assert_eq!(
            reconnect(&req(7, 11, 2), Some(&e), false, true),
            ReconnectDecision::Wait
        );
        assert_eq!(
            reconnect(&req(7, 11, 2), Some(&e), true, true),
            ReconnectDecision::Resume
        );
        assert_eq!(
            reconnect(&req(7, 11, 3), Some(&e), false, true),
            ReconnectDecision::Resume
        );
        // Not reconnecting ourselves: the peer's reconnect is taken whatever the order.
        for phase in [ConnState::Standby, ConnState::Open, ConnState::Wait] {
            let mut idle = e;
            idle.base.phase = phase;
            assert_eq!(
                reconnect(&req(7, 11, 2), Some(&idle), false, true),
                ReconnectDecision::Resume,
                "{phase:?}"
            );
        }
        let mut r = e;
        r.base.replacing = true;
        assert_eq!(
            reconnect(&req(7, 11, 3), Some(&r), false, true),
            ReconnectDecision::RetryGlobal { global_seq: 10 }
        );
    }
}
