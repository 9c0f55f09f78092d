//! msgr2 on sockets: the drivers of the v2 connector and acceptor machines
//! ([`crate::v2::connect`], [`crate::v2::accept`]) for a session whose peer address is a
//! `v2:` one.
//!
//! The session rules are the same as v1's, not copied: sequence numbers, resend, faults and
//! backoff are the core's. The accept decision is msgr2's own ([`crate::v2::decide`],
//! Ceph's ProtocolV2: sessions known by their cookies, `connect_seq` held as the client
//! sent it), carried out by the same attach step as v1's (a new session, or the existing
//! one taking the socket over, with v1's replace bookkeeping), and answered in msgr2's
//! words: SERVER_IDENT or SESSION_RECONNECT_OK for an attach, SESSION_RESET (full, or
//! asking the peer to establish the session again), SESSION_RETRY, SESSION_RETRY_GLOBAL,
//! WAIT, or a stale CLIENT_IDENT closed unanswered.
//!
//! Authentication is inside the handshake (authorizer mode): the connector presents the
//! host's authorizer (or `none`'s), the acceptor checks it with the host's hook. Secure mode
//! needs a connection secret, which cephx hands out in mon mode; in authorizer mode msgr
//! does not mint one yet, so a messenger's own sessions use crc mode (a client that offers
//! only secure is refused with no mode in common).
//!
//! Not here: frames and handshake bytes (the machines), the session phase's codec
//! ([`crate::v2::session`]), reading and writing (the reader and writer drivers).

use std::net::SocketAddr;
use std::sync::Arc;

use msgr_auth::provider::{NoneAuthorizer, NoneClient};
use msgr_auth::UTime;
use msgr_ceph::{EntityAddr as Addr2, EntityAddrVec};
use msgr_wire::{Connect, EntityAddr, EntityName, EntityType, CONNECT_LOSSY};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::acceptor::Attached;
use super::handshake_io::hook;
use super::{bump, Inner, NewSession, Session, Shared, V2Codec};
use crate::config::PipeConfig;
use crate::core::{ConnState, Established as CoreEstablished};
use crate::error::PipeError;
use crate::hook::{Side, Step};
use crate::host::{Host, SessionEvent};
use crate::policy::Policy;
use crate::v1::accept::ReplaceKind;
use crate::v1::proto_version;
use crate::v1::session as v1session;
use crate::v2::accept::{Acceptor, AcceptorConfig, Pending, ServerAuth};
use crate::v2::connect::{ClientAuth, Connector, ConnectorConfig, Established, Resume};
use crate::v2::decide::{self, IdentDecision, ReconnectDecision, V2View};
use crate::v2::frame::FrameLimits;

/// Most bytes one handshake read takes.
const HANDSHAKE_READ: usize = 16 * 1024;

/// msgr2's identifiers of a session, beside v1's counters (which v2 shares: `connect_seq`,
/// the peer's `global_seq`, the replace bookkeeping).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct V2Ids {
    /// The connecting side's cookie (ours if we connect, the client's if we accepted).
    pub client_cookie: u64,
    /// The accepting side's cookie of a lossless session; 0 before SERVER_IDENT or lossy.
    pub server_cookie: u64,
    /// The peer's entity number (from its ident).
    pub peer_global_id: u64,
    /// The features SERVER_IDENT negotiated, for a session resumed before it ever opened.
    pub features: u64,
}

/// Our entity name as auth `none` presents it (`client.admin` style: the number as the id).
fn auth_name(name: EntityName) -> msgr_auth::EntityName {
    msgr_auth::EntityName::new(u32::from(name.ty.0), name.num.max(0).to_string())
}

/// A fresh non-zero cookie.
fn cookie() -> u64 {
    rand::random::<u64>() | 1
}

/// The frame limits of `config`: segments as large as v1's largest section, all of a
/// message's segments together as large as v1's `max_message`, control payloads
/// (handshake frames, `ceph_msg_header2`) up to 1 MiB.
fn frame_limits(config: &PipeConfig) -> FrameLimits {
    let l = &config.limits;
    FrameLimits {
        max_control: 1 << 20,
        max_segment: l.max_front.max(l.max_middle).max(l.max_data),
        max_message: l.max_message,
    }
}

/// `a` as msgr2 writes addresses (its type kept: `v2` or `v1`).
fn addr2(a: &EntityAddr) -> Addr2 {
    if a.is_v2() {
        Addr2::v2(a.addr, a.nonce)
    } else {
        Addr2::v1(a.addr, a.nonce)
    }
}

/// The v2 address a client announced (its first v2 one, else its first).
fn announced(addrs: &EntityAddrVec, socket_peer: SocketAddr) -> EntityAddr {
    let pick = addrs
        .0
        .iter()
        .find(|a| a.ty == msgr_ceph::ADDR_TYPE_MSGR2)
        .or_else(|| addrs.0.first());
    match pick {
        Some(a) => {
            let mut sock = a.addr.unwrap_or(socket_peer);
            if sock.ip().is_unspecified() {
                sock.set_ip(socket_peer.ip());
            }
            EntityAddr::v2(sock, a.nonce)
        }
        None => EntityAddr::v2(socket_peer, 0),
    }
}

/// Moves a connector's bytes until its handshake is complete; the hook's `ConnectSent` once
/// CLIENT_IDENT or SESSION_RECONNECT is written. `before_write` runs before each round of
/// writes and may end the attempt (see [`attempt_guard`]).
async fn run_connector(
    t: &mut super::BoxTransport,
    c: &mut Connector,
    (config, id): (&PipeConfig, u64),
    before_write: &mut (dyn FnMut(&Connector) -> Result<(), PipeError> + Send),
) -> Result<(), PipeError> {
    let mut buf = vec![0u8; HANDSHAKE_READ];
    let mut ident_reported = false;
    loop {
        before_write(c)?;
        while let Some(out) = c.poll_transmit() {
            t.write_all(&out).await?;
        }
        t.flush().await?;
        if c.is_open() {
            return Ok(());
        }
        if !ident_reported && c.ident_sent() {
            ident_reported = true;
            hook(config, id, Side::Connector, Step::ConnectSent).await?;
        }
        let n = t.read(&mut buf).await?;
        if n == 0 {
            return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
        }
        let data = buf.get(..n).unwrap_or_default();
        if c.handle_input(UTime::now(), data)? {
            while let Some(out) = c.poll_transmit() {
                t.write_all(&out).await?;
            }
            t.flush().await?;
            return Ok(());
        }
    }
}

/// The connector side of a v2 attempt: the handshake, then the session opens (new, reset,
/// or resumed) unless the attempt was superseded.
pub(super) async fn connect(
    inner: &Arc<Inner>,
    gen: u64,
    mut t: super::BoxTransport,
) -> Result<(), PipeError> {
    let host = &inner.host;
    let policy = &inner.policy;
    let (resume, client_cookie) = {
        let mut sh = inner.lock();
        if sh.v2.client_cookie == 0 {
            sh.v2.client_cookie = cookie();
        }
        // A lossless session the server gave us a cookie for is resumed, even if it never
        // opened here (our attempt failed after SERVER_IDENT: the server's side is open).
        // A reconnect's connect_seq is at least 1 (Ceph's client, READY at SERVER_IDENT,
        // raises it at the fault), and we hold what we send: the peer, reconnecting too,
        // compares its own with it.
        let resume = (!policy.lossy && sh.v2.server_cookie != 0).then(|| {
            if sh.v1.connect_seq() == 0 {
                sh.v1.retry_session(1);
            }
            Resume {
                server_cookie: sh.v2.server_cookie,
                connect_seq: u64::from(sh.v1.connect_seq()),
                msg_seq: sh.core.in_seq(),
            }
        });
        (resume, sh.v2.client_cookie)
    };
    let my_name = host.my_name();
    // A mon authenticates its clients inside the handshake (mon mode); a mon connecting to
    // a peer mon presents an authorizer, as to any service (Ceph's mon-to-mon sessions).
    let mon_mode = inner.peer_type == EntityType::MON && my_name.ty != EntityType::MON;
    let (auth, auth_protocol) = if mon_mode {
        let client = host
            .authorizer()
            .and_then(|a| a.mon_client())
            .unwrap_or_else(|| Box::new(NoneClient::new(auth_name(my_name))));
        let protocol = client.protocol();
        (ClientAuth::Mon(client), protocol)
    } else {
        let built = match host.authorizer() {
            Some(p) => p.build(inner.peer_type, false).await,
            None => None,
        };
        let a = built.unwrap_or_else(|| {
            Box::new(NoneAuthorizer {
                name: auth_name(my_name),
                global_id: u64::try_from(my_name.num).unwrap_or(0),
            })
        });
        let protocol = a.protocol();
        (ClientAuth::Authorizer(a), protocol)
    };
    let my_addr = crate::host::my_addr_for(&**host, true);
    let cfg = ConnectorConfig {
        entity_type: my_name.ty,
        peer: inner.peer_addr.addr,
        peer_nonce: inner.peer_addr.nonce,
        nonce: my_addr.nonce,
        features_supported: policy.features_supported,
        features_required: policy.features_required | crate::host::auth_required_features(&**host),
        modes: if auth_protocol == msgr_auth::CEPH_AUTH_NONE {
            // `none` has no connection secret: secure mode cannot be keyed.
            vec![crate::v2::connect::CON_MODE_CRC]
        } else if mon_mode {
            inner.config.con_modes.mon_client_wire()
        } else {
            inner.config.con_modes.client_wire()
        },
        global_seq: u64::from(host.next_global_seq(0)),
        client_cookie,
        limits: frame_limits(&inner.config),
        lossy: policy.lossy,
        my_addr: (my_addr.is_v2() && my_addr.addr.port() != 0).then_some(my_addr.addr),
        resume,
    };
    let mut c = Connector::with_auth(cfg, auth);
    hook(&inner.config, inner.id, Side::Connector, Step::BannerSent).await?;
    run_connector(
        &mut t,
        &mut c,
        (&inner.config, inner.id),
        &mut attempt_guard(inner, gen),
    )
    .await?;
    let est = c.finish().ok_or(PipeError::UnexpectedTag {
        tag: 0,
        context: "msgr2 handshake ended without an ident",
    })?;
    // A SESSION_RETRY_GLOBAL raised this attempt's global_seq past our counter: raise the
    // counter too (Ceph's handle_session_retry_global), or a later CLIENT_IDENT of ours
    // could be older than what the peer recorded, and closed as stale.
    host.next_global_seq(u32::try_from(est.global_seq).unwrap_or(u32::MAX));
    if let Some(a) = &est.learned_addr {
        if let Some(sock) = a.addr {
            host.learn_addr(&EntityAddr::v2(sock, my_addr.nonce));
        }
    }
    if est.reconnected.is_none() && !peer_matches(&inner.peer_addr, &est) {
        let got = est
            .peer_addrs
            .0
            .first()
            .and_then(|a| a.addr.map(|s| EntityAddr::v2(s, a.nonce)))
            .unwrap_or(EntityAddr::BLANK);
        return Err(PipeError::AddrMismatch {
            expected: inner.peer_addr,
            got,
        });
    }
    commit_ident(inner, gen, &est)?;
    hook(&inner.config, inner.id, Side::Connector, Step::Ready).await?;
    finish_connect(inner, gen, t, est, auth_protocol);
    Ok(())
}

/// Checked under the session lock before the connector writes: the attempt is still the
/// session's (an acceptor that gave the session another socket abandoned it: its bytes must
/// not reach the peer), and once the peer answered SESSION_RESET the session is no longer
/// established (server cookie 0), before the CLIENT_IDENT that starts it over leaves. Ceph
/// does both under the connection's lock (`handle_session_reset`, `reuse_connection`):
/// without it, an acceptor deciding between the reset and our CLIENT_IDENT took the peer's
/// crossing CLIENT_IDENT for a restarted peer and adopted its socket, while the peer adopted
/// ours, and each closed the socket the other had adopted (a queued message was then lost
/// to the SESSION_RESET that followed).
fn attempt_guard(
    inner: &Inner,
    gen: u64,
) -> impl FnMut(&Connector) -> Result<(), PipeError> + Send + '_ {
    move |c| {
        let mut sh = inner.lock();
        if sh.link.attempt.as_ref().map(|a| a.0) != Some(gen) {
            return Err(PipeError::Superseded);
        }
        if c.reset_received().is_some() {
            sh.v2.server_cookie = 0;
        }
        Ok(())
    }
}

/// SERVER_IDENT of a new session: the server considers it open from now on, so it is ours
/// before we open it (as v1's connector commits READY before opening, and as Ceph's client
/// takes the server cookie at SERVER_IDENT): the cookie, the peer's id and features. If
/// this attempt fails before it opens, the next one resumes the session with
/// SESSION_RECONNECT; without this it sent a new CLIENT_IDENT, which the server took for a
/// restarted peer and reset the session, dropping what it had queued for us. (Our
/// `connect_seq` stays as it is: raising it here made a crossing CLIENT_IDENT of the
/// peer's superseded attempt look like a restarted peer.)
fn commit_ident(inner: &Inner, gen: u64, est: &Established) -> Result<(), PipeError> {
    let mut sh = inner.lock();
    if sh.link.attempt.as_ref().map(|a| a.0) != Some(gen) {
        return Err(PipeError::Superseded);
    }
    if est.reconnected.is_none() && est.reset.is_none() && !sh.core.was_open() {
        sh.v2.server_cookie = est.server_cookie;
        sh.v2.peer_global_id = est.peer_global_id;
        sh.v2.features = est.features;
    }
    if est.reconnected.is_none() {
        // The peer's global_seq as of its SERVER_IDENT: a CLIENT_IDENT of an attempt of its
        // that it gave up before (a crossing connect) is older, and is not taken for a
        // restarted peer.
        let gs = u32::try_from(est.peer_global_seq).unwrap_or(u32::MAX);
        sh.v1.set_peer_global_seq(gs);
    }
    Ok(())
}

/// SERVER_IDENT names the peer we dialled (its nonce, when we know it).
fn peer_matches(dialled: &EntityAddr, est: &Established) -> bool {
    dialled.nonce == 0 || est.peer_addrs.0.iter().any(|a| a.nonce == dialled.nonce)
}

/// The connector's handshake completed: apply it to the session and attach the socket.
fn finish_connect(
    inner: &Arc<Inner>,
    gen: u64,
    t: super::BoxTransport,
    est: Established,
    auth_protocol: u32,
) {
    let (slot, codec, features, reset) = {
        let mut sh = inner.lock();
        if sh.link.attempt.as_ref().map(|a| a.0) != Some(gen)
            || sh.core.phase() != ConnState::Connecting
        {
            tracing::debug!(conn = inner.id, "v2 handshake done but superseded");
            return;
        }
        sh.link.attempt = None;
        let Shared { core, v1, v2, .. } = &mut *sh;
        let mut dropped = Vec::new();
        let reset = est.reset == Some(true) && core.was_open();
        match est.reset {
            Some(true) => {
                // The peer no longer has our session: it starts over, empty.
                dropped = core.reset_session();
                v1.reset();
                v2.server_cookie = 0;
            }
            Some(false) => {
                // The peer asked us to establish the session again (it never saw our
                // SERVER_IDENT, or reset without resetcheck): our queue is kept, the
                // incoming sequence starts over (Ceph's handle_session_reset).
                core.restart_in_seq();
                v1.reset();
                v2.server_cookie = 0;
            }
            None => {}
        }
        let lossy;
        let features;
        match est.reconnected {
            Some(msg_seq) => {
                drop(core.discard_requeued_up_to(msg_seq));
                // The connect_seq the peer took (after any SESSION_RETRY): both hold it.
                v1.retry_session(u32::try_from(est.connect_seq).unwrap_or(u32::MAX));
                // Resumed before it ever opened: the features its SERVER_IDENT gave.
                features = if core.was_open() {
                    core.features()
                } else {
                    v2.features
                };
                lossy = core.is_lossy();
            }
            None => {
                v2.server_cookie = est.server_cookie;
                v2.peer_global_id = est.peer_global_id;
                // A session established by SERVER_IDENT starts at connect_seq 0 on both
                // sides (the acceptor holds the CLIENT_IDENT's).
                v1.reset();
                features = est.features;
                lossy = est.lossy;
            }
        }
        v1.committed();
        sh.link.con_mode = Some(super::con_mode_of(&est.encoder));
        let Shared { core, v2, .. } = &mut *sh;
        core.opened(CoreEstablished { features, lossy });
        let peer = EntityName {
            ty: est.peer_type,
            num: i64::try_from(v2.peer_global_id).unwrap_or(-1),
        };
        let slot = sh.link.new_slot();
        drop(sh);
        drop(dropped);
        let codec = V2Codec {
            encoder: est.encoder,
            decoder: est.decoder,
            peer,
            leftover: est.leftover,
        };
        (slot, codec, features, reset)
    };
    if reset {
        inner.discard_delayed();
        tracing::debug!(conn = inner.id, "peer reset our session (SESSION_RESET)");
        inner
            .host
            .event(&inner.session(), SessionEvent::RemoteReset);
    }
    bump(&inner.counters.handshakes, 1);
    tracing::debug!(conn = inner.id, peer = %inner.peer_addr, features = format_args!("{features:#x}"), "connected (msgr2)");
    inner.host.event(&inner.session(), SessionEvent::Connect);
    inner.spawn_socket_v2(slot, t, codec, auth_protocol);
}

/// Moves an acceptor's bytes until its handshake completes or waits for a decision.
async fn run_acceptor(
    t: &mut super::BoxTransport,
    a: &mut Acceptor,
    buf: &mut [u8],
) -> Result<(), PipeError> {
    loop {
        let mut wrote = false;
        while let Some(out) = a.poll_transmit() {
            t.write_all(&out).await?;
            wrote = true;
        }
        if wrote {
            t.flush().await?;
        }
        let n = t.read(buf).await?;
        if n == 0 {
            return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
        }
        let data = buf.get(..n).unwrap_or_default();
        let res = a.handle_input(UTime::now(), data);
        // An AUTH_BAD_METHOD or IDENT_MISSING_FEATURES is queued before the error.
        if res.is_err() {
            while let Some(out) = a.poll_transmit() {
                let _ = t.write_all(&out).await;
            }
            let _ = t.flush().await;
        }
        if res? {
            return Ok(());
        }
    }
}

/// Runs the v2 acceptor on `t`: authentication, then the session decision for its
/// CLIENT_IDENT or SESSION_RECONNECT, until the socket is attached (or refused).
pub(super) async fn accept(
    host: &Arc<dyn Host>,
    mut t: super::BoxTransport,
    socket_peer: SocketAddr,
    config: &Arc<PipeConfig>,
    id: u64,
    attached: &mut Option<(Session, u64)>,
) -> Result<Session, PipeError> {
    let my_addr = crate::host::my_addr_for(&**host, true);
    let my_name = host.my_name();
    let base = host.policy(EntityType::CLIENT);
    // Every address we listen on, msgr2's first, as Ceph's daemons announce them.
    let mut mine = host.my_addrs();
    mine.sort_by_key(|a| !a.is_v2());
    let cfg = AcceptorConfig {
        entity_type: my_name.ty,
        global_id: u64::try_from(my_name.num).unwrap_or(0),
        my_addrs: EntityAddrVec(mine.iter().map(addr2).collect()),
        socket_peer,
        features_supported: base.features_supported,
        features_required: 0,
        allowed_modes: config.con_modes.service_wire(),
        lossy: base.lossy,
        global_seq: u64::from(host.next_global_seq(0)),
        limits: frame_limits(config),
        decide_sessions: true,
    };
    let mut a = Acceptor::with_auth(cfg, ServerAuth::Service(host.authorizer()));
    hook(config, id, Side::Acceptor, Step::BannerSent).await?;
    let mut buf = vec![0u8; HANDSHAKE_READ];
    loop {
        run_acceptor(&mut t, &mut a, &mut buf).await?;
        let peer_type = a.peer_type();
        let Some(pending) = a.pending().cloned() else {
            return Err(PipeError::UnexpectedTag {
                tag: 0,
                context: "msgr2 acceptor done without a decision",
            });
        };
        hook(config, id, Side::Acceptor, Step::ConnectReceived).await?;
        let policy = host.policy(peer_type);
        let expected = proto_version(my_name.ty, peer_type, false);
        // msgr2's request as the attach step reads it: a synthetic v1 connect whose
        // connect_seq is one below what the session is to hold (v1's bookkeeping stores its
        // READY's connect_seq + 1; msgr2's acceptor holds the client's own: 0 for
        // CLIENT_IDENT, the SESSION_RECONNECT's value).
        let (peer, connect, req, reconnect) = match &pending {
            Pending::Ident(i) => {
                let missing = policy.features_required & !i.features;
                if missing != 0 {
                    return Err(PipeError::MissingFeatures { missing });
                }
                let c = synthetic(peer_type, expected, i.features, i.global_seq, 0, i.lossy);
                let req = decide::Request {
                    client_cookie: i.client_cookie,
                    global_seq: i.global_seq,
                    connect_seq: 0,
                };
                (announced(&i.addrs, socket_peer), c, req, None)
            }
            Pending::Reconnect(r) => {
                let c = synthetic(
                    peer_type,
                    expected,
                    policy.features_supported,
                    r.global_seq,
                    r.connect_seq,
                    false,
                );
                let req = decide::Request {
                    client_cookie: r.client_cookie,
                    global_seq: r.global_seq,
                    connect_seq: r.connect_seq,
                };
                (announced(&r.addrs, socket_peer), c, req, Some(r.msg_seq))
            }
        };
        let peer_wins_race = peer.race_cmp(&my_addr) == std::cmp::Ordering::Less;
        let outcome = attach(
            host,
            config,
            &connect,
            &req,
            reconnect.is_some(),
            (peer, peer_type),
            &policy,
            peer_wins_race,
            id,
        );
        let att = match outcome {
            V2Outcome::Attach(att) => att,
            V2Outcome::Retry(connect_seq) => {
                a.retry(connect_seq);
                continue;
            }
            V2Outcome::RetryGlobal(global_seq) => {
                a.retry_global(global_seq);
                continue;
            }
            V2Outcome::Reset { full } => {
                tracing::debug!(conn = id, %peer, full, "SESSION_RESET");
                a.reset(full);
                continue;
            }
            V2Outcome::Wait => {
                a.wait();
                while let Some(out) = a.poll_transmit() {
                    t.write_all(&out).await?;
                }
                t.flush().await?;
                tracing::debug!(conn = id, %peer, "connection race: WAIT");
                return Err(PipeError::RaceLost);
            }
            V2Outcome::Stale => {
                tracing::debug!(conn = id, %peer, "stale CLIENT_IDENT: closed");
                return Err(PipeError::RaceLost);
            }
        };
        // SERVER_IDENT's global_seq is taken now, after the decision (Ceph's
        // send_server_ident), so it orders after any connect of ours the peer still sees.
        a.set_global_seq(u64::from(host.next_global_seq(0)));
        *attached = Some((att.session.clone(), att.slot.epoch));
        return finish_accept(host, config, t, a, att, pending, reconnect, id).await;
    }
}

/// What [`attach`] decided for one request.
enum V2Outcome {
    /// The socket is attached to a (new or existing) session: answer SERVER_IDENT or
    /// SESSION_RECONNECT_OK.
    Attach(Attached),
    /// SESSION_RETRY with the `connect_seq` we hold.
    Retry(u64),
    /// SESSION_RETRY_GLOBAL with the peer's `global_seq` we hold.
    RetryGlobal(u64),
    /// SESSION_RESET.
    Reset { full: bool },
    /// WAIT: our own connection goes on.
    Wait,
    /// A stale CLIENT_IDENT: close without an answer.
    Stale,
}

/// Decides `req` ([`decide::ident`] or [`decide::reconnect`]) against the session
/// registered for `peer` and carries it out: a new session registered, or the existing one
/// taking the socket over (deciding again if the registry or the session changed under us).
#[allow(clippy::too_many_arguments)]
fn attach(
    host: &Arc<dyn Host>,
    config: &Arc<PipeConfig>,
    connect: &Connect,
    req: &decide::Request,
    reconnect: bool,
    (peer, peer_type): (EntityAddr, EntityType),
    policy: &Policy,
    peer_wins_race: bool,
    id: u64,
) -> V2Outcome {
    loop {
        let existing = host.lookup(&peer);
        let view = existing.as_ref().map(|s| s.inner.v2_view());
        let kind = if reconnect {
            let d = decide::reconnect(req, view.as_ref(), peer_wins_race, policy.resetcheck);
            tracing::debug!(conn = id, ?d, ?view, ?req, "msgr2 reconnect decision");
            match d {
                ReconnectDecision::Reset { full } => return V2Outcome::Reset { full },
                ReconnectDecision::RetryGlobal { global_seq } => {
                    return V2Outcome::RetryGlobal(global_seq)
                }
                ReconnectDecision::Retry { connect_seq } => return V2Outcome::Retry(connect_seq),
                ReconnectDecision::Wait => IdentDecision::Wait,
                ReconnectDecision::Resume => IdentDecision::Replace(ReplaceKind::Reconnect),
            }
        } else {
            let d = decide::ident(req, view.as_ref(), peer_wins_race, policy.resetcheck);
            tracing::debug!(conn = id, ?d, ?view, ?req, "msgr2 ident decision");
            d
        };
        match kind {
            IdentDecision::Stale => return V2Outcome::Stale,
            IdentDecision::RetryGlobal { global_seq } => return V2Outcome::RetryGlobal(global_seq),
            IdentDecision::Wait => {
                if let Some(ex) = &existing {
                    ex.inner.race_keepalive();
                }
                return V2Outcome::Wait;
            }
            IdentDecision::Open => {
                let new = NewSession {
                    host: host.clone(),
                    config: config.clone(),
                    peer_addr: peer,
                    peer_type,
                    policy: policy.clone(),
                    phase: ConnState::Accepting,
                    id,
                };
                if let Some(att) = super::acceptor::open_registered(new, connect) {
                    return V2Outcome::Attach(att);
                }
            }
            IdentDecision::Replace(kind) => {
                let (Some(ex), Some(view)) = (existing, view) else {
                    continue;
                };
                if let Some(att) = ex.inner.try_replace(kind, connect, &view.base, &ex) {
                    return V2Outcome::Attach(att);
                }
            }
        }
    }
}

impl Inner {
    /// The acceptor's view of this session for msgr2's decisions.
    fn v2_view(&self) -> V2View {
        let sh = self.lock();
        V2View {
            base: sh.view(self.policy.server),
            client_cookie: sh.v2.client_cookie,
            server_cookie: sh.v2.server_cookie,
        }
    }
}

/// A v1 connect carrying what a msgr2 request says, for the attach step (whose
/// bookkeeping is v1's).
fn synthetic(
    peer_type: EntityType,
    proto: u32,
    features: u64,
    global_seq: u64,
    connect_seq: u64,
    lossy: bool,
) -> Connect {
    Connect {
        features,
        host_type: peer_type.host_type(),
        global_seq: u32::try_from(global_seq).unwrap_or(u32::MAX),
        // The attach step stores this + 1 (v1's READY): msgr2 holds the request's own.
        connect_seq: u32::try_from(connect_seq)
            .unwrap_or(u32::MAX)
            .wrapping_sub(1),
        protocol_version: proto,
        authorizer_protocol: 0,
        flags: if lossy { CONNECT_LOSSY } else { 0 },
        authorizer: bytes::Bytes::new(),
    }
}

/// Answers SERVER_IDENT or SESSION_RECONNECT_OK on the attached socket and opens.
#[allow(clippy::too_many_arguments)]
async fn finish_accept(
    host: &Arc<dyn Host>,
    config: &Arc<PipeConfig>,
    mut t: super::BoxTransport,
    mut a: Acceptor,
    att: Attached,
    pending: Pending,
    reconnect: Option<u64>,
    id: u64,
) -> Result<Session, PipeError> {
    let s = att.session;
    let inner = s.inner.clone();
    if att.remote_reset {
        host.event(&s, SessionEvent::RemoteReset);
    }
    {
        let mut sh = inner.lock();
        if !sh.link.is_current(att.slot.epoch) {
            return Err(PipeError::Superseded);
        }
        match (&pending, reconnect) {
            (Pending::Reconnect(_), Some(acked)) => {
                drop(sh.core.discard_requeued_up_to(acked));
                let in_seq = sh.core.in_seq();
                a.reconnect_ok(in_seq);
            }
            (Pending::Ident(i), _) => {
                let lossy = inner.policy.lossy || i.lossy;
                let server_cookie = if lossy { 0 } else { cookie() };
                // The authenticated global id when there is one (a client names itself
                // with what it had before authenticating).
                let authenticated = a.peer_global_id();
                sh.v2 = V2Ids {
                    client_cookie: i.client_cookie,
                    server_cookie,
                    peer_global_id: if authenticated != 0 {
                        authenticated
                    } else {
                        i.global_id
                    },
                    features: i.features,
                };
                a.accept_ident(lossy, server_cookie);
            }
            (Pending::Reconnect(_), None) => a.reset(true),
        }
    }
    while let Some(out) = a.poll_transmit() {
        t.write_all(&out).await?;
    }
    t.flush().await?;
    let peer_global_id = {
        let mut sh = inner.lock();
        if sh.link.is_current(att.slot.epoch) {
            sh.v1.committed();
        }
        sh.v2.peer_global_id
    };
    hook(config, id, Side::Acceptor, Step::Ready).await?;
    let acc = a.finish().ok_or(PipeError::UnexpectedTag {
        tag: 0,
        context: "msgr2 acceptor not open after its answer",
    })?;
    let features = {
        let mut sh = inner.lock();
        if !sh.link.is_current(att.slot.epoch) {
            return Err(PipeError::Superseded);
        }
        sh.link.replacing = false;
        sh.link.con_mode = Some(super::con_mode_of(&acc.encoder));
        let Shared { core, v1, .. } = &mut *sh;
        v1session::accepted(core, v1)
    };
    bump(&inner.counters.handshakes, 1);
    tracing::debug!(conn = inner.id, peer = %inner.peer_addr, features = format_args!("{features:#x}"), "accepted (msgr2)");
    host.event(&s, SessionEvent::Accept);
    let peer = EntityName {
        ty: acc.peer_type,
        num: i64::try_from(peer_global_id).unwrap_or(-1),
    };
    let auth_protocol = if acc.authenticated {
        msgr_auth::CEPH_AUTH_CEPHX
    } else {
        0
    };
    let codec = V2Codec {
        encoder: acc.encoder,
        decoder: acc.decoder,
        peer,
        leftover: acc.leftover,
    };
    inner.spawn_socket_v2(att.slot, t, codec, auth_protocol);
    Ok(s)
}
