//! The mon session: hunting, the MAuth rounds, and waiting for replies while keeping the
//! session alive (the tick task, between requests, is `tick.rs`).
//!
//! ```text
//!            ensure_session
//! no session ─────────────► hunting: mon i ── MAuth rounds ──► open ◄─┐ tick: keepalive,
//!     ▲                        │  no answer in hunt_interval,        │ renew tickets due
//!     │                        └─ session lost ──► mon i+1            │
//!     └──── session reset, or no keepalive ack for ping_timeout ──────┘
//! a negative MAuthReply result (EACCES, ...) ends the hunt with AuthRefused
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use msgr_auth::provider::ClientProgress;
use msgr_auth::AuthError;
use msgr_ceph::{
    AuthNegotiation, Fsid, MAuth, MAuthReply, MMonMap, MMonSubscribe, PaxosPrefix, SubscribeItem,
    AUTH_UNKNOWN,
};
use msgr_core::{ConnState, Connection};
use msgr_wire::{EntityAddr, EntityName, EntityType, Message, Timespec};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::auth::Auth;
use crate::client::Shared;
use crate::router::Inbound;
use crate::MonClientError;

/// MAuth rounds allowed per authentication (cephx needs three; a mon that keeps asking for
/// more is not followed further).
pub(crate) const MAX_ROUNDS: usize = 8;
/// `EAGAIN`: the mon cannot serve now (not in quorum); try another.
const EAGAIN: i32 = -11;

/// Why a wait for a reply ended without it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lost {
    /// The session ended (reset, refused connection).
    Reset,
    /// No reply before the deadline.
    Timeout,
    /// The mon stopped answering keepalives.
    Silent,
    /// The client is shutting down.
    Shutdown,
}

/// The session state, behind the client's lock.
pub(crate) struct State {
    pub(crate) rx: mpsc::UnboundedReceiver<Inbound>,
    pub(crate) conn: Option<Connection>,
    pub(crate) mon: Option<SocketAddr>,
    pub(crate) auth: Option<Auth>,
    pub(crate) subs: BTreeMap<String, SubscribeItem>,
    next_mon: usize,
    tid: u64,
    pub(crate) next_ping: Instant,
    last_ack: Option<Timespec>,
    last_ack_at: Instant,
    /// The monmap we have: its epoch (0: none) and the cluster's fsid.
    epoch: u32,
    fsid: Fsid,
}

impl State {
    pub(crate) fn new(rx: mpsc::UnboundedReceiver<Inbound>) -> Self {
        State {
            rx,
            conn: None,
            mon: None,
            auth: None,
            subs: BTreeMap::new(),
            next_mon: 0,
            tid: 0,
            next_ping: Instant::now(),
            last_ack: None,
            last_ack_at: Instant::now(),
            epoch: 0,
            fsid: Fsid::default(),
        }
    }

    pub(crate) fn next_tid(&mut self) -> u64 {
        self.tid += 1;
        self.tid
    }

    pub(crate) fn mon_addr(&self) -> SocketAddr {
        self.mon
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// Forgets the session (after it was lost); the next request opens another.
    pub(crate) fn drop_session(&mut self) {
        if let Some(c) = self.conn.take() {
            c.mark_down();
        }
    }

    pub(crate) fn monmap_fsid(&self) -> Fsid {
        self.fsid
    }
}

/// The open session, or a new one (hunting and authenticating).
pub(crate) async fn ensure_session(
    sh: &Shared,
    st: &mut State,
) -> Result<Connection, MonClientError> {
    if let Some(c) = st.conn.as_ref().filter(|c| c.state() != ConnState::Closed) {
        return Ok(c.clone());
    }
    open_session(sh, st).await
}

/// What ended one mon's attempt.
pub(crate) enum Attempt {
    /// Try the next mon.
    Next(Lost),
    /// Stop hunting.
    Final(MonClientError),
}

/// Hunts: tries the mons in turn, each for `hunt_interval`, until one authenticates us or
/// `mount_timeout` has passed; a refusal ends the hunt at once.
pub(crate) async fn open_session(
    sh: &Shared,
    st: &mut State,
) -> Result<Connection, MonClientError> {
    st.drop_session();
    let mons = &sh.options.mon_host;
    if mons.is_empty() {
        return Err(MonClientError::NoMonAddress);
    }
    let started = Instant::now();
    let deadline = started + sh.options.mount_timeout;
    let mut cycle_start = started;
    let mut tried = Vec::new();
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Err(MonClientError::NoMonReachable {
                tried,
                waited: now - started,
            });
        }
        let mon = mons[st.next_mon % mons.len()];
        st.next_mon = st.next_mon.wrapping_add(1);
        if !tried.contains(&mon.addr) {
            tried.push(mon.addr);
        }
        let attempt_deadline = deadline.min(now + sh.options.hunt_interval);
        let attempt = if mon.is_v2() {
            try_mon_v2(sh, st, mon, attempt_deadline).await
        } else {
            try_mon(sh, st, mon.addr, attempt_deadline).await
        };
        match attempt {
            Ok(conn) => {
                st.conn = Some(conn.clone());
                st.mon = Some(mon.addr);
                sh.count(|s| s.sessions += 1);
                tracing::debug!(%mon, global_id = sh.global_id.load(Ordering::Acquire), "mon session open");
                return Ok(conn);
            }
            Err(Attempt::Final(e)) => return Err(e),
            Err(Attempt::Next(Lost::Shutdown)) => return Err(MonClientError::Shutdown),
            Err(Attempt::Next(why)) => {
                tracing::debug!(%mon, ?why, "mon did not authenticate us; hunting on");
                sh.count(|s| s.hunt_failures += 1);
                st.drop_session();
                if st.next_mon % mons.len() == 0 {
                    // A whole round of mons failed: wait out the round's hunt interval
                    // before the next (mons that refuse TCP fail at once).
                    let until = deadline.min(cycle_start + sh.options.hunt_interval);
                    tokio::select! {
                        _ = sh.cancel.cancelled() => return Err(MonClientError::Shutdown),
                        _ = tokio::time::sleep_until(until) => {}
                    }
                    cycle_start = Instant::now();
                }
            }
        }
    }
}

/// Connects to `mon` and runs the MAuth rounds; then subscribes and waits for the monmap.
async fn try_mon(
    sh: &Shared,
    st: &mut State,
    mon: SocketAddr,
    deadline: Instant,
) -> Result<Connection, Attempt> {
    let conn = sh
        .messenger
        .connect_lazy(EntityAddr::new(mon, 0), EntityType::MON)
        .map_err(|_| Attempt::Next(Lost::Shutdown))?;
    st.conn = Some(conn.clone());
    st.last_ack = None;
    st.last_ack_at = Instant::now();
    st.next_ping = Instant::now() + sh.options.ping_interval;
    let name = &sh.options.name;
    let negotiation = AuthNegotiation {
        supported: sh.methods.clone(),
        entity_type: name.ty,
        entity_id: name.id.clone(),
        global_id: sh.global_id.load(Ordering::Acquire),
    };
    let mut payload = bytes::BytesMut::new();
    negotiation.encode(&mut payload);
    let mut protocol = AUTH_UNKNOWN;
    let mut request = payload.freeze();
    for round in 0..MAX_ROUNDS {
        send_mauth(st, &conn, protocol, request).await?;
        let reply = wait_mauth_reply(sh, st, &conn, mon, deadline).await?;
        if reply.result == EAGAIN {
            return Err(Attempt::Next(Lost::Reset));
        }
        let refused = |result| {
            Attempt::Final(MonClientError::AuthRefused {
                entity: name.to_string(),
                result,
                mon,
            })
        };
        if reply.result < 0 {
            return Err(refused(reply.result));
        }
        if round == 0 {
            protocol = reply.protocol;
            if !sh.methods.contains(&protocol) {
                return Err(unsupported(sh, mon, protocol));
            }
            let auth = Auth::for_protocol(
                st.auth.take(),
                protocol,
                name,
                sh.key.as_ref(),
                sh.want,
                sh.seed,
            )
            .ok_or_else(|| unsupported(sh, mon, protocol))?;
            st.auth = Some(auth);
        }
        let Some(auth) = st.auth.as_mut() else {
            return Err(unsupported(sh, mon, protocol));
        };
        auth.client_mut().set_global_id(reply.global_id);
        let now = sh.clock.now();
        let progress = auth
            .handle_reply(now, reply.result, &reply.result_bl, round == 0)
            .map_err(|e| auth_error(sh, mon, e))?;
        if progress == ClientProgress::Done {
            sh.publish_rotating(auth.client());
            break;
        }
        request = auth
            .client_mut()
            .build_request(now)
            .map_err(|e| auth_error(sh, mon, e))?;
        if round + 1 == MAX_ROUNDS {
            tracing::warn!(%mon, "mon still asks for more after {MAX_ROUNDS} MAuth rounds; going on with the tickets we have");
        }
    }
    authenticated(sh, st, conn, mon, deadline).await
}

/// msgr2: the session authenticates inside its handshake (mon mode, with the auth client
/// `MonModeAuth` gives it); once the session is open, that client, with its tickets, is
/// ours. Then subscribe and wait for the monmap, as after MAuth.
async fn try_mon_v2(
    sh: &Shared,
    st: &mut State,
    mon: EntityAddr,
    deadline: Instant,
) -> Result<Connection, Attempt> {
    drop(crate::authorizer::take_handshake_auth(&sh.v2_auth));
    let conn = sh
        .messenger
        .connect_lazy(mon, EntityType::MON)
        .map_err(|_| Attempt::Next(Lost::Shutdown))?;
    st.conn = Some(conn.clone());
    st.last_ack = None;
    st.last_ack_at = Instant::now();
    st.next_ping = Instant::now() + sh.options.ping_interval;
    let session = conn.session().cloned().ok_or(Attempt::Next(Lost::Reset))?;
    let mut state = session.watch_state();
    let mut failures = session.handshake_failures();
    let opened = tokio::select! {
        r = state.wait_for(|s| *s == ConnState::Open) => r.is_ok(),
        f = failures.wait_for(|f| f.as_ref().is_some_and(|f| f.error.is_refusal())) => {
            let error = f.ok().and_then(|f| f.clone()).map(|f| f.error);
            if let Some(e) = error {
                if let msgr_core::PipeError::V2Handshake(
                    msgr_core::V2HandshakeError::AuthRefused { result, .. },
                ) = &*e
                {
                    return Err(Attempt::Final(MonClientError::AuthRefused {
                        entity: sh.options.name.to_string(),
                        result: *result,
                        mon: mon.addr,
                    }));
                }
                tracing::debug!(%mon, error = %e, "msgr2 handshake refused");
            }
            false
        }
        _ = tokio::time::sleep_until(deadline) => false,
        _ = sh.cancel.cancelled() => return Err(Attempt::Next(Lost::Shutdown)),
    };
    if !opened {
        return Err(Attempt::Next(Lost::Timeout));
    }
    let auth = crate::authorizer::take_handshake_auth(&sh.v2_auth)
        .filter(|a| a.client().global_id() != 0)
        .ok_or(Attempt::Next(Lost::Reset))?;
    sh.publish_rotating(auth.client());
    st.auth = Some(auth);
    authenticated(sh, st, conn, mon.addr, deadline).await
}

/// Authenticated on `conn`: our global id names the messenger; subscribe and wait for the
/// monmap.
async fn authenticated(
    sh: &Shared,
    st: &mut State,
    conn: Connection,
    mon: SocketAddr,
    deadline: Instant,
) -> Result<Connection, Attempt> {
    let global_id = st.auth.as_ref().map_or(0, |a| a.client().global_id());
    sh.global_id.store(global_id, Ordering::Release);
    let gid = i64::try_from(global_id).unwrap_or(i64::MAX);
    let ty = sh.messenger.name().ty;
    // The type is the messenger's own: set_name cannot refuse it.
    let _ = sh.messenger.set_name(EntityName::new(ty, gid));
    let _ = mon;
    subscribe_all(sh, st.subs.clone(), &conn).await?;
    if sh.monmap.borrow().is_none() {
        wait_for(sh, st, &conn, Some(deadline), |m| {
            m.header.ty == MMonMap::TYPE
        })
        .await
        .map(|m| handle_unsolicited(sh, st, m))
        .map_err(Attempt::Next)?;
    }
    Ok(conn)
}

fn unsupported(sh: &Shared, mon: SocketAddr, protocol: u32) -> Attempt {
    Attempt::Final(MonClientError::UnsupportedProtocol {
        entity: sh.options.name.to_string(),
        mon,
        protocol,
    })
}

pub(crate) fn auth_error(sh: &Shared, mon: SocketAddr, e: AuthError) -> Attempt {
    let entity = sh.options.name.to_string();
    Attempt::Final(match e {
        AuthError::Refused { result, .. } => MonClientError::AuthRefused {
            entity,
            result,
            mon,
        },
        source => MonClientError::AuthFailed {
            entity,
            mon,
            source,
        },
    })
}

pub(crate) async fn send_mauth(
    st: &mut State,
    conn: &Connection,
    protocol: u32,
    payload: bytes::Bytes,
) -> Result<(), Attempt> {
    let m = MAuth {
        paxos: PaxosPrefix::default(),
        protocol,
        auth_payload: payload,
        monmap_epoch: st.epoch,
    };
    let msg = Message::new(MAuth::TYPE, m.to_front()).with_version(MAuth::VERSION, MAuth::VERSION);
    conn.send(msg).await.map_err(|_| Attempt::Next(Lost::Reset))
}

pub(crate) async fn wait_mauth_reply(
    sh: &Shared,
    st: &mut State,
    conn: &Connection,
    mon: SocketAddr,
    deadline: Instant,
) -> Result<MAuthReply, Attempt> {
    let m = wait_for(sh, st, conn, Some(deadline), |m| {
        m.header.ty == MAuthReply::TYPE
    })
    .await
    .map_err(Attempt::Next)?;
    MAuthReply::decode(&mut m.front.clone()).map_err(|source| {
        Attempt::Final(MonClientError::Malformed {
            what: "MAuthReply",
            mon,
            source,
        })
    })
}

/// Subscribes to the monmap (the next epoch) and every lasting subscription.
async fn subscribe_all(
    sh: &Shared,
    mut what: BTreeMap<String, SubscribeItem>,
    conn: &Connection,
) -> Result<(), Attempt> {
    let have = sh.monmap.borrow().as_ref().map(|m| m.epoch);
    what.insert(
        "monmap".to_owned(),
        SubscribeItem {
            start: have.map_or(0, |e| u64::from(e) + 1),
            flags: 0,
        },
    );
    let sub = MMonSubscribe {
        what,
        hostname: String::new(),
    };
    let msg = Message::new(MMonSubscribe::TYPE, sub.to_front())
        .with_version(MMonSubscribe::VERSION, MMonSubscribe::COMPAT_VERSION);
    conn.send(msg).await.map_err(|_| Attempt::Next(Lost::Reset))
}

/// Waits for the message of `conn` that `want` picks, handling the others (monmaps) and
/// sending keepalives every `ping_interval` meanwhile. Ends with [`Lost`] when the session
/// ends, the mon stops acking keepalives for `ping_timeout`, or `deadline` passes.
pub(crate) async fn wait_for(
    sh: &Shared,
    st: &mut State,
    conn: &Connection,
    deadline: Option<Instant>,
    mut want: impl FnMut(&Message) -> bool,
) -> Result<Message, Lost> {
    loop {
        let wake = deadline.map_or(st.next_ping, |d| d.min(st.next_ping));
        tokio::select! {
            biased;
            _ = sh.cancel.cancelled() => return Err(Lost::Shutdown),
            inbound = st.rx.recv() => match inbound {
                None => return Err(Lost::Shutdown),
                Some(Inbound::Msg(id, msg)) if id == conn.id() => {
                    if want(&msg) {
                        return Ok(msg);
                    }
                    handle_unsolicited(sh, st, msg);
                }
                Some(Inbound::Reset(id) | Inbound::Refused(id)) if id == conn.id() => {
                    return Err(Lost::Reset);
                }
                Some(other) => tracing::trace!(?other, "from an earlier session; dropped"),
            },
            _ = tokio::time::sleep_until(wake) => {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return Err(Lost::Timeout);
                }
                ping(sh, st, conn)?;
            }
        }
    }
}

/// Sends a keepalive; [`Lost::Silent`] when none was acked for `ping_timeout`.
pub(crate) fn ping(sh: &Shared, st: &mut State, conn: &Connection) -> Result<(), Lost> {
    let now = Instant::now();
    let ack = conn.last_keepalive_ack();
    if ack != st.last_ack {
        st.last_ack = ack;
        st.last_ack_at = now;
    }
    if now.duration_since(st.last_ack_at) >= sh.options.ping_timeout {
        tracing::info!(mon = %st.mon_addr(), "no keepalive ack for {:?}; leaving the mon", sh.options.ping_timeout);
        return Err(Lost::Silent);
    }
    conn.send_keepalive();
    st.next_ping = now + sh.options.ping_interval;
    Ok(())
}

/// A message nobody waits for: a monmap is kept, the rest (MConfig, stale replies) dropped.
pub(crate) fn handle_unsolicited(sh: &Shared, st: &mut State, msg: Message) {
    match msg.header.ty {
        MMonMap::TYPE => match MMonMap::decode(&mut msg.front.clone()) {
            Ok(m) => {
                let newer = sh
                    .monmap
                    .borrow()
                    .as_ref()
                    .is_none_or(|old| m.monmap.epoch >= old.epoch);
                if newer {
                    tracing::debug!(epoch = m.monmap.epoch, fsid = %m.monmap.fsid, "monmap");
                    st.epoch = m.monmap.epoch;
                    st.fsid = m.monmap.fsid;
                    sh.monmap.send_replace(Some(m.monmap));
                }
            }
            Err(e) => tracing::warn!(mon = %st.mon_addr(), "malformed monmap: {e}"),
        },
        ty => tracing::trace!(ty, "message not waited for; dropped"),
    }
}
