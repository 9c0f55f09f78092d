//! The acceptor handshake (spec §5.2): banner and addresses, then connect / reply rounds
//! decided by table 5.3 ([`crate::v1::accept::decide`]) until the socket is attached to
//! a new session or replaces an existing one.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use msgr_wire::{Connect, ConnectReply, EntityAddr, EntityType, Tag, CONNECT_LOSSY};

use super::handshake_io::{self as hio, hook};
use super::{bump, Inner, NewSession, Session, Shared, SlotHandle};
use crate::config::PipeConfig;
use crate::core::ConnState;
use crate::error::PipeError;
use crate::hook::{Side, Step};
use crate::host::{ChallengeState, Host, MessageSigner, SessionEvent, VerifyOutcome};
use crate::inject::{self, internal_delay, mix_seed};
use crate::policy::Policy;
use crate::transport::BoxTransport;
use crate::v1::accept::{decide, AcceptCtx, AcceptDecision, ExistingView, ReplaceKind};
use crate::v1::handshake::{Accepted, AcceptorDecide, AcceptorHello, Connected};
use crate::v1::proto_version;
use crate::v1::session as v1session;

/// Longest wait for an existing session's own attempt before answering RESETSESSION.
const ATTEMPT_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// A socket attached (not yet open) to a session.
pub(super) struct Attached {
    pub session: Session,
    pub slot: SlotHandle,
    /// Answer SEQ with this `in_seq`, else READY.
    pub seq_reply: Option<u64>,
    pub remote_reset: bool,
}

pub(super) enum Outcome {
    Reply {
        tag: Tag,
        global_seq: u32,
        connect_seq: u32,
    },
    Attach(Attached),
    /// Wait for the existing session's own attempt to end, then decide again.
    AwaitAttempt(Session),
}

/// Runs the acceptor side on `t` (msgr2 if `v2`); see [`Session::accept`].
pub(super) async fn accept(
    host: Arc<dyn Host>,
    t: BoxTransport,
    socket_peer: SocketAddr,
    config: Arc<PipeConfig>,
    v2: bool,
) -> Result<Session, PipeError> {
    let id = host.new_conn_id();
    // Keyed by the connection id, so a host with deterministic ids replays.
    let t = inject::wrap(t, config.inject.socket_failures, || {
        let key = format!("a {} {} {}", host.my_addr(), socket_peer, id);
        mix_seed(config.inject.seed, key.as_bytes())
    });
    let span = tracing::debug_span!("accept", conn = id, %socket_peer);
    let mut attached: Option<(Session, u64)> = None;
    let timeout = config.handshake_timeout;
    let res = tracing::Instrument::instrument(
        tokio::time::timeout(timeout, async {
            if v2 {
                super::v2::accept(&host, t, socket_peer, &config, id, &mut attached).await
            } else {
                run(&host, t, socket_peer, &config, id, &mut attached).await
            }
        }),
        span,
    )
    .await;
    let res = match res {
        Ok(r) => r,
        Err(_) => Err(PipeError::HandshakeTimeout(timeout)),
    };
    if let Err(e) = &res {
        tracing::debug!(conn = id, error = %e, "accept failed");
        if let Some((s, epoch)) = attached {
            s.inner.socket_fault(epoch, e);
        }
    }
    res
}

async fn run(
    host: &Arc<dyn Host>,
    mut t: BoxTransport,
    socket_peer: SocketAddr,
    config: &Arc<PipeConfig>,
    id: u64,
    attached: &mut Option<(Session, u64)>,
) -> Result<Session, PipeError> {
    let my_addr = crate::host::my_addr_for(&**host, false);
    let (hello, bytes) = AcceptorHello::start(&my_addr, socket_peer, config.limits);
    hio::write_all(&mut t, &bytes).await?;
    hook(config, id, Side::Acceptor, Step::BannerSent).await?;
    let mut buf = BytesMut::new();
    let (peer, mut wait) = hio::drive(&mut t, &mut buf, hello).await?;
    let mut challenge = ChallengeState::default();
    tracing::debug!(conn = id, %peer, "peer address");

    loop {
        let Connected {
            connect,
            peer_type,
            next,
        } = hio::drive(&mut t, &mut buf, wait).await?;
        hook(config, id, Side::Acceptor, Step::ConnectReceived).await?;
        let policy = host.policy(peer_type);
        let my_type = host.my_name().ty;
        let expected = proto_version(my_type, peer_type, false);
        // The authorizer first: a challenge is answered on its own, before the table.
        let negotiated = connect.features & policy.features_supported;
        let verdict = host.authorizer().map(|a| {
            let proto = connect.authorizer_protocol;
            a.verify(
                peer_type,
                proto,
                &connect.authorizer,
                &mut challenge,
                negotiated,
            )
        });
        let (authorizer_ok, auth_reply, signer) = match verdict {
            None => (true, Bytes::new(), None),
            Some(Ok(VerifyOutcome::Challenge(bytes))) => {
                let reply = ConnectReply {
                    tag: Tag::ChallengeAuthorizer,
                    features: negotiated
                        | policy.features_required
                        | crate::host::auth_required_features(&**host),
                    global_seq: 0,
                    connect_seq: 0,
                    protocol_version: expected,
                    flags: 0,
                    authorizer: bytes,
                };
                let (w, bytes) = next.reply(&reply);
                hio::write_all(&mut t, &bytes).await?;
                tracing::debug!(conn = id, "authorizer challenged");
                let tag = Tag::ChallengeAuthorizer.byte();
                hook(config, id, Side::Acceptor, Step::ReplySent(tag)).await?;
                wait = w;
                continue;
            }
            Some(Ok(VerifyOutcome::Accepted {
                reply,
                signer,
                peer,
            })) => {
                tracing::debug!(conn = id, peer = %peer.name, global_id = peer.global_id, "authorizer accepted");
                (true, reply, signer)
            }
            Some(Err(e)) => {
                tracing::info!(conn = id, %peer, error = %e, "bad authorizer");
                (false, Bytes::new(), None)
            }
        };
        let ctx = AcceptCtx {
            expected_proto: expected,
            features_required: policy.features_required
                | crate::host::auth_required_features(&**host),
            resetcheck: policy.resetcheck,
            authorizer_ok,
            peer_wins_race: peer.race_cmp(&my_addr) == std::cmp::Ordering::Less,
        };
        internal_delay(config.inject.internal_delay, "before the accept decision").await;
        let mut may_wait = true;
        let outcome = loop {
            let o = decide_and_attach(
                host, config, &connect, peer, peer_type, &policy, &ctx, id, may_wait,
            );
            let Outcome::AwaitAttempt(ex) = o else {
                break o;
            };
            // Our own connect to this peer is in flight and the peer may already hold the
            // session it opened for it (at connect_seq 1): RESETSESSION now would be a false
            // "we reset". Let that attempt finish (or fail) first, then decide again.
            may_wait = false;
            let ended = ex.inner.attempt_end.notified();
            if ex.view().attempting {
                let _ = tokio::time::timeout(ATTEMPT_WAIT, ended).await;
            }
        };
        let att = match outcome {
            Outcome::Reply {
                tag,
                global_seq,
                connect_seq,
            } => {
                let reply = ConnectReply {
                    tag,
                    features: (connect.features & policy.features_supported)
                        | policy.features_required
                        | crate::host::auth_required_features(&**host),
                    global_seq,
                    connect_seq,
                    protocol_version: expected,
                    flags: 0,
                    authorizer: auth_reply,
                };
                let (w, bytes) = next.reply(&reply);
                hio::write_all(&mut t, &bytes).await?;
                tracing::debug!(conn = id, ?tag, "connect answered");
                hook(config, id, Side::Acceptor, Step::ReplySent(tag.byte())).await?;
                wait = w;
                continue;
            }
            Outcome::Attach(att) => att,
            Outcome::AwaitAttempt(_) => {
                // Unreachable (the decision loop retries it), but answer as it would.
                let (w, bytes) = next.reply(&ConnectReply::new(Tag::ResetSession));
                hio::write_all(&mut t, &bytes).await?;
                wait = w;
                continue;
            }
        };
        *attached = Some((att.session.clone(), att.slot.epoch));
        let reply = Finish {
            connect: &connect,
            policy: &policy,
            expected,
            auth_reply,
            signer,
        };
        return finish(host, config, t, buf, next, reply, att, id).await;
    }
}

/// A new session for an accepted connection no registered session matches (both dialects'
/// Open): created, opened with `connect`, registered with its host and started. `None` if
/// another session for the peer was registered meanwhile: the caller decides again.
pub(super) fn open_registered(new: NewSession, connect: &Connect) -> Option<Attached> {
    let host = new.host.clone();
    let s = Session::create(new);
    let att = s.inner.begin_open(connect, &s);
    match host.register(&s) {
        Ok(()) => {
            s.start();
            Some(att)
        }
        Err(_) => {
            s.inner.discard_unregistered();
            None
        }
    }
}

/// Evaluates the table against the registered session (retrying when the registry or the
/// existing session changed under us) and performs Open / Replace / Wait.
#[allow(clippy::too_many_arguments)]
pub(super) fn decide_and_attach(
    host: &Arc<dyn Host>,
    config: &Arc<PipeConfig>,
    connect: &Connect,
    peer: EntityAddr,
    peer_type: EntityType,
    policy: &Policy,
    ctx: &AcceptCtx,
    id: u64,
    may_wait: bool,
) -> Outcome {
    loop {
        let existing = host.lookup(&peer);
        let view = existing.as_ref().map(Session::view);
        let decision = decide(connect, view.as_ref(), ctx);
        tracing::debug!(conn = id, ?decision, ?view, "accept decision");
        let reply = |tag| Outcome::Reply {
            tag,
            global_seq: 0,
            connect_seq: 0,
        };
        match decision {
            AcceptDecision::BadProtoVer => return reply(Tag::BadProtoVer),
            AcceptDecision::Features => return reply(Tag::Features),
            AcceptDecision::BadAuthorizer => return reply(Tag::BadAuthorizer),
            AcceptDecision::ResetSession => {
                if let (Some(ex), Some(v)) = (&existing, &view) {
                    if may_wait && v.attempting && v.connect_seq == 0 {
                        return Outcome::AwaitAttempt(ex.clone());
                    }
                }
                return reply(Tag::ResetSession);
            }
            AcceptDecision::RetryGlobal { global_seq } => {
                return Outcome::Reply {
                    tag: Tag::RetryGlobal,
                    global_seq,
                    connect_seq: 0,
                }
            }
            AcceptDecision::RetrySession { connect_seq } => {
                return Outcome::Reply {
                    tag: Tag::RetrySession,
                    global_seq: 0,
                    connect_seq,
                }
            }
            AcceptDecision::Wait => {
                if let Some(ex) = &existing {
                    ex.inner.race_keepalive();
                }
                return reply(Tag::Wait);
            }
            AcceptDecision::Open => {
                let new = NewSession {
                    host: host.clone(),
                    config: config.clone(),
                    peer_addr: peer,
                    peer_type,
                    policy: policy.clone(),
                    phase: ConnState::Accepting,
                    id,
                };
                if let Some(att) = open_registered(new, connect) {
                    return Outcome::Attach(att);
                }
            }
            AcceptDecision::Replace(kind) => {
                let (Some(ex), Some(view)) = (existing, view) else {
                    continue;
                };
                if let Some(att) = ex.inner.try_replace(kind, connect, &view, &ex) {
                    return Outcome::Attach(att);
                }
            }
        }
    }
}

/// What the READY/SEQ reply is made of.
struct Finish<'a> {
    connect: &'a Connect,
    policy: &'a Policy,
    expected: u32,
    auth_reply: Bytes,
    /// Signs and checks the connection's messages (an accepted cephx authorizer).
    signer: Option<MessageSigner>,
}

/// Answers READY/SEQ on the attached socket, completes the SEQ exchange and opens.
#[allow(clippy::too_many_arguments)]
async fn finish(
    host: &Arc<dyn Host>,
    config: &Arc<PipeConfig>,
    mut t: BoxTransport,
    mut buf: BytesMut,
    next: AcceptorDecide,
    f: Finish<'_>,
    att: Attached,
    id: u64,
) -> Result<Session, PipeError> {
    let Finish {
        connect,
        policy,
        expected,
        auth_reply,
        signer,
    } = f;
    let s = att.session;
    let inner = s.inner.clone();
    if att.remote_reset {
        host.event(&s, SessionEvent::RemoteReset);
    }
    internal_delay(config.inject.internal_delay, "before completing a replace").await;
    let tag = if att.seq_reply.is_some() {
        Tag::Seq
    } else {
        Tag::Ready
    };
    let reply = ConnectReply {
        tag,
        features: policy.features_supported,
        global_seq: host.next_global_seq(0),
        connect_seq: connect.connect_seq.wrapping_add(1),
        protocol_version: expected,
        flags: if policy.lossy { CONNECT_LOSSY } else { 0 },
        authorizer: auth_reply,
    };
    let (accepted, bytes) = next.accept(&reply, att.seq_reply);
    hio::write_all(&mut t, &bytes).await?;
    {
        // The peer may now consider the session open: a later failure keeps it.
        let mut sh = inner.lock();
        if sh.link.is_current(att.slot.epoch) {
            sh.v1.committed();
        }
    }
    hook(config, id, Side::Acceptor, Step::ReplySent(tag.byte())).await?;
    if let Accepted::Seq(seq_wait) = accepted {
        let acked = hio::drive(&mut t, &mut buf, seq_wait).await?;
        let dropped = {
            let mut sh = inner.lock();
            if !sh.link.is_current(att.slot.epoch) {
                return Err(PipeError::Superseded);
            }
            sh.core.discard_requeued_up_to(acked)
        };
        drop(dropped);
        tracing::trace!(conn = id, acked, in_seq = ?att.seq_reply, "seq exchanged");
        hook(config, id, Side::Acceptor, Step::SeqExchanged).await?;
    }
    hook(config, id, Side::Acceptor, Step::Ready).await?;
    let features = {
        let mut sh = inner.lock();
        if !sh.link.is_current(att.slot.epoch) {
            return Err(PipeError::Superseded);
        }
        sh.link.replacing = false;
        let Shared { core, v1, .. } = &mut *sh;
        v1session::accepted(core, v1)
    };
    bump(&inner.counters.handshakes, 1);
    tracing::debug!(conn = inner.id, peer = %inner.peer_addr, features = format_args!("{features:#x}"), "accepted");
    // The event goes up before the first message can (as Ceph queues ACCEPT first).
    host.event(&s, SessionEvent::Accept);
    let proto = if host.authorizer().is_some() {
        connect.authorizer_protocol
    } else {
        0
    };
    inner.spawn_socket(att.slot, t, features, signer, proto);
    Ok(s)
}

impl Session {
    /// The acceptor's view of this session for table 5.3.
    pub(crate) fn view(&self) -> ExistingView {
        self.inner.view()
    }
}

impl Inner {
    /// The acceptor's view of this session for table 5.3.
    fn view(&self) -> ExistingView {
        self.lock().view(self.policy.server)
    }

    /// Row 14: we keep our outgoing connection; make sure it completes.
    pub(super) fn race_keepalive(&self) {
        let mut sh = self.lock();
        sh.core.queue_keepalive();
        // The peer now waits for our connection: do not let it sit out a backoff.
        if sh.link.attempt.is_none() && sh.core.expedite_reconnect() {
            drop(sh);
            self.driver_wake.notify_one();
        }
    }

    /// Sets up a brand-new accepted session (rows 6, 18) before it is registered.
    pub(super) fn begin_open(&self, connect: &Connect, s: &Session) -> Attached {
        let mut sh = self.lock();
        let Shared { core, v1, .. } = &mut *sh;
        let att = v1session::open_new(core, v1, connect, self.policy.features_supported);
        sh.link.replacing = true;
        Attached {
            session: s.clone(),
            slot: sh.link.new_slot(),
            seq_reply: att.seq_reply,
            remote_reset: false,
        }
    }

    /// Takes this (existing) session over for the incoming socket, if it still looks as
    /// `expected`. The old socket and any outgoing attempt are abandoned; unacked messages
    /// are requeued.
    pub(super) fn try_replace(
        self: &Arc<Self>,
        kind: ReplaceKind,
        connect: &Connect,
        expected: &ExistingView,
        s: &Session,
    ) -> Option<Attached> {
        if self.view() != *expected {
            return None;
        }
        let mut sh = self.lock();
        if sh.view(self.policy.server) != *expected || sh.core.phase() == ConnState::Closed {
            return None;
        }
        sh.link.abandon_attempt();
        let slot = sh.link.new_slot();
        sh.link.replacing = true;
        let Shared { core, v1, .. } = &mut *sh;
        let att = v1session::replace(kind, core, v1, connect, self.policy.features_supported);
        drop(sh);
        let (remote_reset, peer_reset) = (att.remote_reset, att.peer_reset);
        drop(att.dropped);
        tracing::debug!(conn = self.id, peer = %self.peer_addr, ?kind, "replacing session socket");
        if remote_reset || peer_reset {
            self.discard_delayed();
        } else {
            self.flush_delayed();
        }
        Some(Attached {
            session: s.clone(),
            slot,
            seq_reply: att.seq_reply,
            remote_reset,
        })
    }
}

impl Shared {
    /// The acceptor's view of this session for table 5.3 (`server`: its policy's).
    pub(super) fn view(&self, server: bool) -> ExistingView {
        let attempting = self.link.attempt.is_some();
        v1session::view(
            &self.core,
            &self.v1,
            server,
            self.link.replacing,
            attempting,
        )
    }
}
