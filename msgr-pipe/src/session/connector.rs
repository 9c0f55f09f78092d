//! The connector task of a session: outgoing connection attempts (the v1 connector
//! handshake), and the sleeps the core's timer gives between them: backoff, standby and wait
//! (spec §5.1, §6.5). The decisions are the core's and the dialect's; this task dials, moves
//! the handshake's bytes and sleeps.

use std::io;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use msgr_wire::{EntityAddr, CONNECT_LOSSY};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::handshake_io::{self as hio, hook};
use super::{bump, now, Inner, Shared};
use crate::core::{ConnState, FaultAction, FaultCause};
use crate::error::PipeError;
use crate::hook::{Side, Step};
use crate::host::{ClientAuthorizer, MessageSigner, SessionEvent};
use crate::inject::{self, internal_delay};
use crate::transport::BoxTransport;
use crate::v1::connect::{Attempt, ReplyAction};
use crate::v1::handshake::{ConnectFields, ConnectorHello, Features, Opened, Reply, ReplyNext};
use crate::v1::proto_version;
use crate::v1::session as v1session;

enum Next {
    Exit,
    WaitWake,
    Sleep(Instant),
    Attempt,
}

/// The driver loop; ends when the session is closed.
pub(super) async fn run(inner: Arc<Inner>) {
    loop {
        let notified = inner.driver_wake.notified();
        let next = {
            let mut sh = inner.lock();
            let Shared { core, v1, .. } = &mut *sh;
            match core.phase() {
                ConnState::Closed => Next::Exit,
                ConnState::Open | ConnState::Accepting => Next::WaitWake,
                ConnState::Standby => {
                    if !inner.policy.server && v1.wake_from_standby(core) {
                        tracing::debug!(conn = inner.id, "standby: message queued, reconnecting");
                        Next::Attempt
                    } else {
                        Next::WaitWake
                    }
                }
                phase @ (ConnState::Wait | ConnState::Connecting) => {
                    // Without a socket, the reconnect timer is the table's only one.
                    core.handle_timeout(now());
                    match core.poll_timeout() {
                        Some(t) => Next::Sleep(Instant::from_std(t)),
                        None => {
                            if phase == ConnState::Wait {
                                tracing::debug!(conn = inner.id, "wait over, connecting again");
                            }
                            Next::Attempt
                        }
                    }
                }
            }
        };
        match next {
            Next::Exit => break,
            Next::WaitWake => {
                tokio::select! {
                    _ = notified => {}
                    _ = inner.closed.cancelled() => {}
                }
            }
            Next::Sleep(t) => {
                tokio::select! {
                    _ = tokio::time::sleep_until(t) => {}
                    _ = notified => {}
                    _ = inner.closed.cancelled() => {}
                }
            }
            Next::Attempt => {
                // Boxed: the attempt's state (the v1 or msgr2 handshake, about 5 KiB) exists
                // only while it runs, not in the driver every session keeps for its life
                // (10,000 idle sessions held 5 KiB each for it).
                Box::pin(attempt(&inner)).await;
                inner.attempt_end.notify_waiters();
            }
        }
    }
}

/// One outgoing connection attempt, start to finish.
async fn attempt(inner: &Arc<Inner>) {
    let (gen, token, sockets) = {
        let mut sh = inner.lock();
        if sh.core.phase() != ConnState::Connecting {
            return;
        }
        sh.link.attempt_gen += 1;
        let gen = sh.link.attempt_gen;
        let token = CancellationToken::new();
        sh.link.attempt = Some((gen, token.clone()));
        sh.link.sockets += 1;
        (gen, token, sh.link.sockets)
    };
    let timeout = inner.config.handshake_timeout;
    let res = tokio::select! {
        r = tokio::time::timeout(timeout, connect_once(inner, gen, sockets)) => match r {
            Ok(r) => r,
            Err(_) => Err(PipeError::HandshakeTimeout(timeout)),
        },
        _ = token.cancelled() => Err(PipeError::Superseded),
        _ = inner.closed.cancelled() => Err(PipeError::SessionClosed),
    };
    match res {
        Ok(Some((t, opened, signer, proto))) => finish(inner, gen, t, &opened, signer, proto),
        // msgr2 finished its own attempt.
        Ok(None) => {}
        Err(e) => failed(inner, gen, &e),
    }
}

/// What a v1 handshake hands to [`finish`].
type V1Done = (BoxTransport, Opened, Option<MessageSigner>, u32);

/// TCP (or test transport) connect, fault injection wrapper, handshake. A msgr2 attempt
/// completes inside ([`super::v2::connect`]) and gives `None`.
async fn connect_once(
    inner: &Arc<Inner>,
    gen: u64,
    sockets: u64,
) -> Result<Option<V1Done>, PipeError> {
    let t = match inner.host.dial(inner.peer_addr).await {
        Ok(t) => t,
        Err(e) => {
            if e.kind() == io::ErrorKind::ConnectionRefused {
                tracing::debug!(conn = inner.id, peer = %inner.peer_addr, "connection refused");
                inner.host.event(&inner.session(), SessionEvent::Refused);
            }
            return Err(e.into());
        }
    };
    let mut t = inject::wrap(t, inner.config.inject.socket_failures, || {
        inner.socket_seed(sockets, b"c")
    });
    if inner.peer_addr.is_v2() {
        super::v2::connect(inner, gen, t).await?;
        return Ok(None);
    }
    let (opened, signer, proto) = handshake(inner, gen, &mut t).await?;
    Ok(Some((t, opened, signer, proto)))
}

fn addr_matches(dialled: &EntityAddr, got: &EntityAddr) -> bool {
    got == dialled
        || (got.is_blank_ip()
            && got.addr.port() == dialled.addr.port()
            && got.nonce == dialled.nonce)
}

/// The connector's handshake (spec §5.1): moves the bytes of the v1 connector machine
/// ([`crate::v1::handshake`]) and gives it what it asks for (global seqs, authorizers, the
/// session's counters). Returns the READY/SEQ outcome.
async fn handshake(
    inner: &Arc<Inner>,
    gen: u64,
    t: &mut BoxTransport,
) -> Result<(Opened, Option<MessageSigner>, u32), PipeError> {
    let cfg = &inner.config;
    let id = inner.id;
    let host = &inner.host;
    let policy = &inner.policy;
    let at = Attempt {
        global_seq: host.next_global_seq(0),
        connect_seq: inner.lock().v1.connect_seq(),
        auth_retried: false,
    };
    let features = Features {
        supported: policy.features_supported,
        required: policy.features_required | crate::host::auth_required_features(&**host),
    };
    let (hello, banner) = ConnectorHello::start(at, cfg.limits, features);
    hio::write_all(t, &banner).await?;
    hook(cfg, id, Side::Connector, Step::BannerSent).await?;
    let mut buf = BytesMut::new();
    let hello = hio::drive(t, &mut buf, hello).await?;
    if !addr_matches(&inner.peer_addr, &hello.peer_addr) {
        tracing::warn!(conn = id, expected = %inner.peer_addr, got = %hello.peer_addr, "wrong peer at address");
        return Err(PipeError::AddrMismatch {
            expected: inner.peer_addr,
            got: hello.peer_addr,
        });
    }
    host.learn_addr(&hello.for_me);
    hook(cfg, id, Side::Connector, Step::AddrReceived).await?;

    // Whether the session still runs this attempt (a replace or a close may have taken it).
    let current = |sh: &super::Locked<'_>| sh.link.attempt.as_ref().map(|a| a.0) == Some(gen);
    let mut next = hello.next;
    // This connection's authorizer (none without an auth provider, or for peers it does
    // not authorize to).
    let provider = host.authorizer();
    let mut auth = match &provider {
        Some(p) => p.build(inner.peer_type, false).await,
        None => None,
    };
    loop {
        let my_name = host.my_name();
        let (authorizer_protocol, authorizer) = auth
            .as_ref()
            .map_or((0, Bytes::new()), |a| (a.protocol(), a.bytes()));
        let fields = ConnectFields {
            host_type: my_name.ty.host_type(),
            protocol_version: proto_version(my_name.ty, inner.peer_type, true),
            flags: if policy.lossy { CONNECT_LOSSY } else { 0 },
            authorizer_protocol,
            authorizer,
        };
        let at = next.attempt();
        let (wait, bytes) = next.send(&crate::host::my_addr_for(&**host, false), fields);
        hio::write_all(t, &bytes).await?;
        tracing::trace!(
            conn = id,
            gseq = at.global_seq,
            cseq = at.connect_seq,
            "connect sent"
        );
        hook(cfg, id, Side::Connector, Step::ConnectSent).await?;

        let Reply { reply, next: after } = hio::drive(t, &mut buf, wait).await?;
        tracing::debug!(conn = id, tag = ?reply.tag, gseq = reply.global_seq, cseq = reply.connect_seq, "connect reply");
        hook(
            cfg,
            id,
            Side::Connector,
            Step::ReplyReceived(reply.tag.byte()),
        )
        .await?;
        internal_delay(cfg.inject.internal_delay, "after reading the connect reply").await;

        let signer;
        let opened = match after {
            ReplyNext::Again(action, mut again) => {
                match action {
                    ReplyAction::Retry => {
                        // Keep the peer's connect_seq for the next attempts too, as Ceph's
                        // Pipe does: if this socket fails, the next attempt need not be told
                        // again (one round trip less per reconnect).
                        let mut sh = inner.lock();
                        if !current(&sh) {
                            return Err(PipeError::Superseded);
                        }
                        sh.v1.retry_session(again.attempt().connect_seq);
                    }
                    ReplyAction::RetryGlobal { at_least } => {
                        again.set_global_seq(host.next_global_seq(at_least));
                    }
                    ReplyAction::RetryAuthorizer => {
                        auth = match &provider {
                            Some(p) => p.build(inner.peer_type, true).await,
                            None => None,
                        };
                    }
                    ReplyAction::Challenge => match auth.as_mut() {
                        Some(a) => a
                            .add_challenge(&reply.authorizer)
                            .map_err(PipeError::Auth)?,
                        None => {
                            return Err(PipeError::UnexpectedTag {
                                tag: reply.tag.byte(),
                                context: "connect reply to a connect without authorizer",
                            })
                        }
                    },
                    ReplyAction::ResetSession => {
                        let dropped = {
                            let mut sh = inner.lock();
                            if !current(&sh) {
                                return Err(PipeError::Superseded);
                            }
                            sh.v1.reset();
                            sh.core.reset_session()
                        };
                        drop(dropped);
                        inner.discard_delayed();
                        tracing::debug!(conn = id, "peer reset our session (RESETSESSION)");
                        host.event(&inner.session(), SessionEvent::RemoteReset);
                    }
                    // The machine asks again only for the four actions above.
                    ReplyAction::Wait | ReplyAction::Ready { .. } | ReplyAction::Fail(_) => {}
                }
                next = again;
                continue;
            }
            ReplyNext::Fail(e) => return Err(e),
            ReplyNext::Open(opened) => {
                signer = verify_reply(auth.as_deref(), &opened, policy.features_supported)?;
                commit_ready(inner, gen, &opened)?;
                opened
            }
            ReplyNext::Seq(seq_wait) => {
                let o = seq_wait.opened();
                signer = verify_reply(auth.as_deref(), o, policy.features_supported)?;
                commit_ready(inner, gen, o)?;
                let answer = hio::drive(t, &mut buf, seq_wait).await?;
                let acked = answer.acked();
                let (dropped, in_seq) = {
                    let mut sh = inner.lock();
                    if !current(&sh) {
                        return Err(PipeError::Superseded);
                    }
                    (sh.core.discard_requeued_up_to(acked), sh.core.in_seq())
                };
                drop(dropped);
                let (opened, bytes) = answer.send(in_seq);
                hio::write_all(t, &bytes).await?;
                tracing::trace!(conn = id, acked, in_seq, "seq exchanged");
                hook(cfg, id, Side::Connector, Step::SeqExchanged).await?;
                opened
            }
        };
        hook(cfg, id, Side::Connector, Step::Ready).await?;
        let proto = auth.as_ref().map_or(0, |a| a.protocol());
        return Ok((opened, signer, proto));
    }
}

/// READY/SEQ carries the acceptor's reply authorizer: it must prove the acceptor knows the
/// ticket's session key (nonce + 1), or the acceptor is not who it claims to be. Gives the
/// connection's signer.
fn verify_reply(
    auth: Option<&dyn ClientAuthorizer>,
    opened: &Opened,
    supported: u64,
) -> Result<Option<MessageSigner>, PipeError> {
    match auth {
        Some(a) => a
            .verify_reply(&opened.reply.authorizer, opened.reply.features & supported)
            .map_err(PipeError::Auth),
        None => Ok(None),
    }
}

/// READY/SEQ arrived: [`v1session::ready`], unless the attempt was superseded.
fn commit_ready(inner: &Inner, gen: u64, opened: &Opened) -> Result<(), PipeError> {
    let mut sh = inner.lock();
    if sh.link.attempt.as_ref().map(|a| a.0) != Some(gen) {
        return Err(PipeError::Superseded);
    }
    v1session::ready(&mut sh.v1, opened);
    Ok(())
}

/// The handshake succeeded: attach the socket and open, unless the attempt was superseded.
fn finish(
    inner: &Arc<Inner>,
    gen: u64,
    t: BoxTransport,
    opened: &Opened,
    signer: Option<MessageSigner>,
    auth_protocol: u32,
) {
    let (reply, cseq) = (&opened.reply, opened.connect_seq_sent);
    let (slot, features) = {
        let mut sh = inner.lock();
        if sh.link.attempt.as_ref().map(|a| a.0) != Some(gen) {
            tracing::debug!(conn = inner.id, "handshake done but superseded");
            return;
        }
        let supported = inner.policy.features_supported;
        let Shared { core, v1, .. } = &mut *sh;
        if !v1session::connected(core, v1, opened, supported) {
            tracing::debug!(conn = inner.id, "handshake done but no longer connecting");
            return;
        }
        sh.link.attempt = None;
        if reply.connect_seq != cseq.wrapping_add(1) {
            tracing::warn!(
                conn = inner.id,
                ours = cseq.wrapping_add(1),
                theirs = reply.connect_seq,
                "connect_seq disagrees"
            );
        }
        (sh.link.new_slot(), sh.core.features())
    };
    bump(&inner.counters.handshakes, 1);
    tracing::debug!(me = %inner.host.my_name(), conn = inner.id, peer = %inner.peer_addr, features = format_args!("{features:#x}"), "connected");
    // The event goes up before the first message can (as Ceph queues CONNECT first).
    inner.host.event(&inner.session(), SessionEvent::Connect);
    inner.spawn_socket(slot, t, features, signer, auth_protocol);
}

/// The attempt failed: fault handling, or close for errors that must not be retried.
fn failed(inner: &Arc<Inner>, gen: u64, e: &PipeError) {
    let action = {
        let mut sh = inner.lock();
        if sh.link.attempt.as_ref().map(|a| a.0) != Some(gen) {
            return;
        }
        sh.link.attempt = None;
        if e.is_fatal() {
            None
        } else {
            let cause = if matches!(e, PipeError::RaceLost) {
                FaultCause::RaceLost
            } else {
                FaultCause::Error
            };
            let Shared { core, v1, .. } = &mut *sh;
            Some(v1.fault(core, now(), cause))
        }
    };
    bump(&inner.counters.faults, 1);
    inner.record_handshake_failure(e, action.is_none());
    match action {
        None => {
            tracing::warn!(conn = inner.id, peer = %inner.peer_addr, error = %e, "handshake refused for good; closing");
            inner.close(Some(SessionEvent::Refused));
        }
        Some(FaultAction::Close { reset }) => {
            inner.close(reset.then_some(SessionEvent::Reset));
        }
        Some(action) => {
            tracing::debug!(me = %inner.host.my_name(), conn = inner.id, peer = %inner.peer_addr, error = %e, ?action, "connect attempt failed");
        }
    }
}
