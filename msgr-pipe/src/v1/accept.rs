//! The acceptor's decision table (spec §5.3) as a pure function, Simple style.
//!
//! Departures from the table, all deliberate and valid v1:
//! * Row 2 (cephx signatures) does not apply: there is no cephx here.
//! * Row 5 (Async's lossy server opening anonymously) is not taken: like Simple, a lossy
//!   server still looks up and replaces, so one peer address has one session.
//! * Replace is transparent (Simple): the new socket gets READY/SEQ at once, no RETRY_GLOBAL
//!   round trip.
//! * Row 12 takes Async's fix (PR 17276): with `resetcheck` and an existing `connect_seq` of 0
//!   we replace instead of answering RETRY_SESSION, which avoids a RESET/RETRY livelock.

use msgr_wire::Connect;

use crate::core::ConnState;

/// What the acceptor knows about an existing session for the peer's address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExistingView {
    /// Its state.
    pub phase: ConnState,
    /// Its connect_seq.
    pub connect_seq: u32,
    /// The peer global seq it recorded.
    pub peer_global_seq: u32,
    /// Effective lossiness.
    pub lossy: bool,
    /// Its policy is `server`.
    pub server: bool,
    /// Another incoming socket is in the middle of replacing it.
    pub replacing: bool,
    /// Its own outgoing attempt is in flight (not used by [`decide`]; the acceptor may wait
    /// for that attempt before answering RESETSESSION).
    pub attempting: bool,
}

/// The acceptor's side of the decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AcceptCtx {
    /// The protocol version we expect from this peer type.
    pub expected_proto: u32,
    /// Our policy for the peer type: features we require.
    pub features_required: u64,
    /// Our policy for the peer type: `resetcheck`.
    pub resetcheck: bool,
    /// The authorizer was verified (or none is needed).
    pub authorizer_ok: bool,
    /// `peer_addr.race_cmp(my_addr) == Less`: the peer wins a race.
    pub peer_wins_race: bool,
}

/// How a replace comes about (what happens to the existing session's state).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplaceKind {
    /// Row 9: the existing session was lossy: reset it (RemoteReset), then replace.
    LossyExisting,
    /// Row 10: the peer restarted (`connect_seq` 0 against ours > 0); `reset` if resetcheck.
    PeerReset {
        /// Reset the existing session (queues discarded, RemoteReset).
        reset: bool,
    },
    /// Row 12 (Async variant): resetcheck and equal `connect_seq` 0 on an open/standby session.
    ResetCheckZero,
    /// Row 13: connection race won by the incoming socket.
    RaceWon,
    /// Row 16: an ordinary reconnect.
    Reconnect,
}

/// The outcome of one `ceph_msg_connect`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AcceptDecision {
    /// Row 1.
    BadProtoVer,
    /// Row 3.
    Features,
    /// Row 4.
    BadAuthorizer,
    /// Rows 7, 8: retry with a global seq above this.
    RetryGlobal {
        /// `existing.peer_global_seq`.
        global_seq: u32,
    },
    /// Rows 11, 12: retry with this connect seq.
    RetrySession {
        /// `existing.connect_seq + 1`.
        connect_seq: u32,
    },
    /// Rows 15, 17.
    ResetSession,
    /// Row 14: our outgoing connection wins; queue a keepalive on it and answer WAIT.
    Wait,
    /// Rows 6, 18: a new session.
    Open,
    /// Rows 9, 10, 12, 13, 16: the existing session adopts this socket.
    Replace(ReplaceKind),
}

/// Evaluates table 5.3 top to bottom for one connect.
pub fn decide(
    connect: &Connect,
    existing: Option<&ExistingView>,
    ctx: &AcceptCtx,
) -> AcceptDecision {
    if connect.protocol_version != ctx.expected_proto {
        return AcceptDecision::BadProtoVer; // row 1
    }
    if ctx.features_required & !connect.features != 0 {
        return AcceptDecision::Features; // row 3
    }
    if !ctx.authorizer_ok {
        return AcceptDecision::BadAuthorizer; // row 4
    }
    let Some(ex) = existing.filter(|e| e.phase != ConnState::Closed) else {
        // rows 6, 17, 18
        return if connect.connect_seq > 0 {
            AcceptDecision::ResetSession
        } else {
            AcceptDecision::Open
        };
    };
    if ex.replacing {
        return AcceptDecision::RetryGlobal {
            global_seq: ex.peer_global_seq,
        }; // row 7
    }
    if connect.global_seq < ex.peer_global_seq {
        return AcceptDecision::RetryGlobal {
            global_seq: ex.peer_global_seq,
        }; // row 8
    }
    if ex.lossy {
        return AcceptDecision::Replace(ReplaceKind::LossyExisting); // row 9
    }
    if connect.connect_seq == 0 && ex.connect_seq > 0 {
        return AcceptDecision::Replace(ReplaceKind::PeerReset {
            reset: ctx.resetcheck,
        }); // row 10
    }
    if connect.connect_seq < ex.connect_seq {
        return AcceptDecision::RetrySession {
            connect_seq: ex.connect_seq.wrapping_add(1),
        }; // row 11
    }
    if connect.connect_seq == ex.connect_seq {
        if matches!(ex.phase, ConnState::Open | ConnState::Standby) {
            if ctx.resetcheck && ex.connect_seq == 0 {
                return AcceptDecision::Replace(ReplaceKind::ResetCheckZero); // row 12, Async
            }
            return AcceptDecision::RetrySession {
                connect_seq: ex.connect_seq.wrapping_add(1),
            }; // row 12
        }
        if ctx.peer_wins_race || ex.server {
            return AcceptDecision::Replace(ReplaceKind::RaceWon); // row 13
        }
        return AcceptDecision::Wait; // row 14
    }
    if ctx.resetcheck && ex.connect_seq == 0 {
        return AcceptDecision::ResetSession; // row 15
    }
    AcceptDecision::Replace(ReplaceKind::Reconnect) // row 16
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connect(gseq: u32, cseq: u32) -> Connect {
        Connect {
            features: u64::MAX,
            host_type: 8,
            global_seq: gseq,
            connect_seq: cseq,
            protocol_version: 0,
            ..Connect::default()
        }
    }

    fn ctx() -> AcceptCtx {
        AcceptCtx {
            expected_proto: 0,
            features_required: 0,
            resetcheck: false,
            authorizer_ok: true,
            peer_wins_race: false,
        }
    }

    fn ex(phase: ConnState, cseq: u32, pgseq: u32) -> ExistingView {
        ExistingView {
            phase,
            connect_seq: cseq,
            peer_global_seq: pgseq,
            lossy: false,
            server: false,
            replacing: false,
            attempting: false,
        }
    }

    #[test]
    fn rows_1_to_4() {
        let mut c = connect(1, 0);
        c.protocol_version = 15;
        assert_eq!(decide(&c, None, &ctx()), AcceptDecision::BadProtoVer);
        let mut c = connect(1, 0);
        c.features = 1;
        let mut x = ctx();
        x.features_required = 2;
        assert_eq!(decide(&c, None, &x), AcceptDecision::Features);
        let mut x = ctx();
        x.authorizer_ok = false;
        assert_eq!(
            decide(&connect(1, 0), None, &x),
            AcceptDecision::BadAuthorizer
        );
    }

    #[test]
    fn no_existing_rows_6_17_18() {
        assert_eq!(decide(&connect(1, 0), None, &ctx()), AcceptDecision::Open);
        assert_eq!(
            decide(&connect(1, 3), None, &ctx()),
            AcceptDecision::ResetSession
        );
        let closed = ex(ConnState::Closed, 5, 9);
        assert_eq!(
            decide(&connect(1, 0), Some(&closed), &ctx()),
            AcceptDecision::Open
        );
    }

    #[test]
    fn global_seq_rows_7_8() {
        let mut e = ex(ConnState::Open, 1, 10);
        assert_eq!(
            decide(&connect(5, 1), Some(&e), &ctx()),
            AcceptDecision::RetryGlobal { global_seq: 10 }
        );
        e.replacing = true;
        assert_eq!(
            decide(&connect(50, 2), Some(&e), &ctx()),
            AcceptDecision::RetryGlobal { global_seq: 10 }
        );
    }

    #[test]
    fn lossy_and_peer_reset_rows_9_10() {
        let mut e = ex(ConnState::Open, 2, 1);
        e.lossy = true;
        assert_eq!(
            decide(&connect(5, 0), Some(&e), &ctx()),
            AcceptDecision::Replace(ReplaceKind::LossyExisting)
        );
        let e = ex(ConnState::Open, 2, 1);
        let mut x = ctx();
        x.resetcheck = true;
        assert_eq!(
            decide(&connect(5, 0), Some(&e), &x),
            AcceptDecision::Replace(ReplaceKind::PeerReset { reset: true })
        );
    }

    #[test]
    fn connect_seq_rows_11_to_16() {
        let e = ex(ConnState::Open, 3, 1);
        assert_eq!(
            decide(&connect(5, 2), Some(&e), &ctx()),
            AcceptDecision::RetrySession { connect_seq: 4 }
        );
        assert_eq!(
            decide(&connect(5, 3), Some(&e), &ctx()),
            AcceptDecision::RetrySession { connect_seq: 4 }
        );
        let s = ex(ConnState::Standby, 0, 1);
        let mut rc = ctx();
        rc.resetcheck = true;
        assert_eq!(
            decide(&connect(5, 0), Some(&s), &rc),
            AcceptDecision::Replace(ReplaceKind::ResetCheckZero)
        );
        let c = ex(ConnState::Connecting, 0, 0);
        assert_eq!(
            decide(&connect(5, 0), Some(&c), &ctx()),
            AcceptDecision::Wait
        );
        let mut win = ctx();
        win.peer_wins_race = true;
        assert_eq!(
            decide(&connect(5, 0), Some(&c), &win),
            AcceptDecision::Replace(ReplaceKind::RaceWon)
        );
        let mut srv = c;
        srv.server = true;
        assert_eq!(
            decide(&connect(5, 0), Some(&srv), &ctx()),
            AcceptDecision::Replace(ReplaceKind::RaceWon)
        );
        let w = ex(ConnState::Wait, 0, 0);
        assert_eq!(
            decide(&connect(5, 0), Some(&w), &ctx()),
            AcceptDecision::Wait
        );
        let z = ex(ConnState::Connecting, 0, 0);
        assert_eq!(
            decide(&connect(5, 1), Some(&z), &rc),
            AcceptDecision::ResetSession
        );
        let o = ex(ConnState::Open, 3, 1);
        assert_eq!(
            decide(&connect(5, 4), Some(&o), &ctx()),
            AcceptDecision::Replace(ReplaceKind::Reconnect)
        );
    }
}
