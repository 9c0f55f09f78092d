//! The tick task: between requests, it reads what the mon sent, keeps the session alive
//! (keepalives; a new session when it was lost) and renews the tickets when they are due,
//! at their `renew_after` on tokio's clock.

use std::sync::Arc;

use msgr_auth::provider::ClientProgress;
use msgr_core::{ConnState, Connection};
use tokio::time::Instant;

use crate::client::Shared;
use crate::router::Inbound;
use crate::session::{
    auth_error, handle_unsolicited, open_session, ping, send_mauth, wait_mauth_reply, Attempt,
    State, MAX_ROUNDS,
};
use crate::MonClientError;

/// Renews the tickets due, on the open session.
pub(crate) async fn renew(sh: &Shared, st: &mut State) -> Result<(), MonClientError> {
    let Some(conn) = st.conn.clone().filter(|c| c.state() != ConnState::Closed) else {
        return Ok(());
    };
    let mon = st.mon_addr();
    for _ in 0..MAX_ROUNDS {
        let now = sh.clock.now();
        let Some(auth) = st.auth.as_mut() else {
            return Ok(());
        };
        if !auth.client().needs_renewal(now) {
            return Ok(());
        }
        let protocol = auth.client().protocol();
        let request = auth.client_mut().build_request(now)?;
        let deadline = Instant::now() + sh.options.hunt_interval;
        let reply = match send_mauth(st, &conn, protocol, request).await {
            Ok(()) => wait_mauth_reply(sh, st, &conn, mon, deadline).await,
            Err(a) => Err(a),
        };
        let reply = match reply {
            Ok(r) => r,
            Err(Attempt::Final(e)) => return Err(e),
            Err(Attempt::Next(_)) => {
                // The next request re-authenticates on a new session.
                st.drop_session();
                return Ok(());
            }
        };
        let auth = st.auth.as_mut().ok_or(MonClientError::NotAuthenticated)?;
        let done = auth.handle_reply(sh.clock.now(), reply.result, &reply.result_bl, false);
        match done.map_err(|e| auth_error(sh, mon, e)) {
            Ok(ClientProgress::Done) => {
                sh.publish_rotating(auth.client());
                sh.count(|s| s.renewals += 1);
                tracing::debug!(%mon, "tickets renewed");
                return Ok(());
            }
            Ok(ClientProgress::More) => {}
            Err(Attempt::Final(e)) => return Err(e),
            Err(Attempt::Next(_)) => return Ok(()),
        }
    }
    Ok(())
}

/// The tick task: between requests, reads what the mon sends, keeps the session alive
/// (keepalives, reconnecting when it is lost) and renews tickets when they are due. Idle
/// until the first authentication.
pub(crate) async fn ticks(sh: Arc<Shared>) {
    loop {
        let wake = {
            let st = sh.state.lock().await;
            let renew_at = st
                .auth
                .as_ref()
                .and_then(|a| a.renew_at(sh.want))
                .map(|t| sh.clock.instant_of(t))
                .filter(|t| *t > Instant::now());
            renew_at.map_or(st.next_ping, |r| r.min(st.next_ping))
        };
        tokio::select! {
            _ = sh.cancel.cancelled() => return,
            _ = tokio::time::sleep_until(wake) => {}
        }
        let mut st = sh.state.lock().await;
        if st.auth.is_none() {
            st.next_ping = Instant::now() + sh.options.ping_interval;
            continue;
        }
        tick(&sh, &mut st).await;
    }
}

async fn tick(sh: &Shared, st: &mut State) {
    // What came while nobody waited.
    while let Ok(inbound) = st.rx.try_recv() {
        let current = st.conn.as_ref().map(Connection::id);
        match inbound {
            Inbound::Msg(id, msg) if Some(id) == current => handle_unsolicited(sh, st, msg),
            Inbound::Reset(id) | Inbound::Refused(id) if Some(id) == current => {
                st.drop_session();
            }
            _ => {}
        }
    }
    let conn = match st.conn.clone().filter(|c| c.state() != ConnState::Closed) {
        Some(c) => c,
        None => match open_session(sh, st).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("mon session lost and not re-established: {e}");
                st.next_ping = Instant::now() + sh.options.ping_interval;
                return;
            }
        },
    };
    if Instant::now() >= st.next_ping && ping(sh, st, &conn).is_err() {
        st.drop_session();
        return;
    }
    if let Err(e) = renew(sh, st).await {
        tracing::warn!("ticket renewal failed: {e}");
    }
}
