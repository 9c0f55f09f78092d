//! A deterministic simulation of two msgr v1 endpoints without tokio: each node holds its
//! sessions as sans-IO values ([`SessionCore`] + [`V1State`]), connections are byte buffers
//! in both directions, the handshakes are the v1 machines, and a seeded scheduler picks
//! every step (application sends, transmissions, deliveries of random byte chunks, socket
//! faults, the virtual clock advancing to the next deadline). The accept decisions, the
//! replace bookkeeping and the fault rules are the crate's own (`v1::accept::decide`,
//! `v1::session`, `SessionCore::handle_fault`); this file only moves bytes and time, as the
//! tokio drivers do.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use msgr_pipe::core::{
    BatchLimits, ConnState, Control, CoreConfig, FaultAction, FaultCause, FaultPolicy, InSeq,
    Outgoing, Released, SessionCore,
};
use msgr_pipe::v1::accept::{decide, AcceptCtx, AcceptDecision};
use msgr_pipe::v1::codec::{inbound, Encoder, Inbound};
use msgr_pipe::v1::connect::{Attempt, ReplyAction};
use msgr_pipe::v1::handshake::{
    Accepted, AcceptorConnect, AcceptorDecide, AcceptorHello, AcceptorSeq, ConnectFields,
    Connected, ConnectorConnect, ConnectorHello, ConnectorReply, ConnectorSeq, Expect, Features,
    Read, Reply, ReplyNext,
};
use msgr_pipe::v1::session as v1session;
use msgr_pipe::v1::{proto_version, V1State};
use msgr_pipe::{PipeConfig, Policy};
use msgr_wire::{
    ConnectReply, CrcFlags, EntityAddr, EntityType, FooterKind, FrameDecoder, Limits, Message, Tag,
    CONNECT_LOSSY,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// One end's session with the other node.
pub struct SimSession {
    pub core: SessionCore,
    pub v1: V1State,
    /// The connection carrying the open (or accepting) session.
    socket: Option<usize>,
    /// An outgoing attempt in progress.
    attempt: Option<usize>,
    replacing: bool,
    policy: Policy,
}

/// An endpoint.
pub struct Node {
    pub addr: EntityAddr,
    ty: EntityType,
    policy: Policy,
    global_seq: u32,
    pub session: Option<SimSession>,
    /// Tags of the messages delivered from the other node, in order.
    pub delivered: Vec<u64>,
    /// Tags sent to the other node.
    pub sent: u64,
    pub remote_resets: u32,
    /// `sent` when the session was last reset: what was sent before may be lost.
    pub sent_at_reset: u64,
}

enum ConnSide {
    Hello(ConnectorHello),
    Reply(ConnectorReply),
    Seq(ConnectorSeq),
    Open(FrameDecoder),
    Dead,
}

enum AccSide {
    Hello(AcceptorHello),
    Connect(AcceptorConnect, EntityAddr),
    /// A connect whose decision waits for the session's own attempt (until `until`).
    Pending(Connected, EntityAddr, Instant),
    Seq(AcceptorSeq),
    Open(FrameDecoder),
    Dead,
}

/// One TCP connection: `connector` dialled `acceptor`.
struct Conn {
    connector: usize,
    /// Closed (by a fault, or by an end that dropped it).
    dead: bool,
    conn: ConnSide,
    acc: AccSide,
    /// Bytes in flight to the acceptor / the connector, and bytes received not yet used.
    to_acc: VecDeque<u8>,
    to_conn: VecDeque<u8>,
    acc_in: BytesMut,
    conn_in: BytesMut,
}

/// What a run saw.
#[derive(Debug, Default, Clone, Copy)]
pub struct Seen {
    pub conns: usize,
    pub faults: usize,
    pub waits: usize,
    pub replaces: usize,
    pub retries: usize,
    pub resets: usize,
    pub standbys: usize,
}

/// The simulated world.
pub struct Sim {
    pub nodes: [Node; 2],
    conns: Vec<Conn>,
    pub now: Instant,
    start: Instant,
    rng: SmallRng,
    pub seen: Seen,
    config: PipeConfig,
    /// Bytes delivered so far (progress).
    moved: u64,
}

fn core_config(c: &PipeConfig, p: &Policy) -> CoreConfig {
    CoreConfig {
        fault: FaultPolicy {
            server: p.server,
            standby: p.standby,
            initial_backoff: c.initial_backoff,
            max_backoff: c.max_backoff,
        },
        read_timeout: c.read_timeout,
        ack_batch: c.ack_batch,
        ack_bytes: c.ack_bytes,
        ack_delay: c.ack_delay,
        keepalive_interval: c.keepalive_interval,
    }
}

impl Sim {
    /// Two nodes with these policies (each for its peer), at the default configuration.
    pub fn new(seed: u64, policies: [Policy; 2]) -> Sim {
        let node = |i: u8, policy: Policy| Node {
            addr: EntityAddr::new(
                format!("10.0.0.{}:68{i}0", i + 1).parse().expect("address"),
                u32::from(i) + 1,
            ),
            ty: EntityType::OSD,
            policy,
            global_seq: 0,
            session: None,
            delivered: Vec::new(),
            sent: 0,
            remote_resets: 0,
            sent_at_reset: 0,
        };
        let [p0, p1] = policies;
        let now = Instant::now();
        Sim {
            nodes: [node(0, p0), node(1, p1)],
            conns: Vec::new(),
            now,
            start: now,
            rng: SmallRng::seed_from_u64(seed),
            seen: Seen::default(),
            config: PipeConfig::default(),
            moved: 0,
        }
    }

    fn new_session(&mut self, n: usize, phase: ConnState) -> SimSession {
        let policy = self.nodes[n].policy.clone();
        let seed = self.rng.gen();
        SimSession {
            core: SessionCore::new(
                phase,
                policy.lossy,
                core_config(&self.config, &policy),
                SmallRng::seed_from_u64(seed),
            ),
            v1: V1State::default(),
            socket: None,
            attempt: None,
            replacing: false,
            policy,
        }
    }

    /// The application of node `n` sends a message to the other node. A server only
    /// answers on a session its peer opened (it never dials a client).
    pub fn send(&mut self, n: usize) {
        if self.nodes[n].session.is_none() && self.nodes[n].policy.server {
            return;
        }
        if self.nodes[n].session.is_none() {
            let s = self.new_session(n, ConnState::Connecting);
            self.nodes[n].session = Some(s);
        }
        let tag = self.nodes[n].sent;
        self.nodes[n].sent += 1;
        let msg = Message::new(9, tag.to_le_bytes().to_vec());
        let Some(s) = self.nodes[n].session.as_mut() else {
            return;
        };
        assert_ne!(
            s.core.phase(),
            ConnState::Closed,
            "a lossless session closed"
        );
        s.core.send(Outgoing::new(msg, None));
        if !s.policy.server {
            s.v1.wake_from_standby(&mut s.core);
        }
    }

    fn next_gseq(&mut self, n: usize, at_least: u32) -> u32 {
        let g = &mut self.nodes[n].global_seq;
        *g = (*g).max(at_least) + 1;
        *g
    }

    /// Starts an outgoing attempt where a session is connecting and its timer allows.
    fn start_attempts(&mut self) {
        for n in 0..2 {
            let due = match &self.nodes[n].session {
                Some(s) => {
                    s.core.phase() == ConnState::Connecting
                        && s.attempt.is_none()
                        && s.core.poll_timeout().is_none()
                }
                None => false,
            };
            if due {
                self.dial(n);
            }
        }
    }

    fn dial(&mut self, n: usize) {
        let id = self.conns.len();
        let gseq = self.next_gseq(n, 0);
        let node = &mut self.nodes[n];
        let Some(s) = node.session.as_mut() else {
            return;
        };
        let at = Attempt {
            global_seq: gseq,
            connect_seq: s.v1.connect_seq(),
            auth_retried: false,
        };
        let features = Features {
            supported: node.policy.features_supported,
            required: node.policy.features_required,
        };
        let (ch, banner) = ConnectorHello::start(at, Limits::default(), features);
        s.attempt = Some(id);
        let peer = &self.nodes[1 - n];
        let (ah, hello) =
            AcceptorHello::start(&peer.addr, self.nodes[n].addr.addr, Limits::default());
        self.conns.push(Conn {
            connector: n,
            dead: false,
            conn: ConnSide::Hello(ch),
            acc: AccSide::Hello(ah),
            to_acc: banner.iter().copied().collect(),
            to_conn: hello.iter().copied().collect(),
            acc_in: BytesMut::new(),
            conn_in: BytesMut::new(),
        });
        self.seen.conns += 1;
    }

    /// The session of node `n`, if `conn` is its socket or attempt.
    fn owns(&self, n: usize, conn: usize) -> bool {
        self.nodes[n]
            .session
            .as_ref()
            .is_some_and(|s| s.socket == Some(conn) || s.attempt == Some(conn))
    }

    /// Closes connection `c` (both ends see it at once); sessions it served fault. An end
    /// that dropped it (replaced, superseded) no longer holds it and sees nothing.
    pub fn kill(&mut self, c: usize, cause: FaultCause) {
        let Some(conn) = self.conns.get_mut(c).filter(|conn| !conn.dead) else {
            return;
        };
        conn.dead = true;
        conn.conn = ConnSide::Dead;
        conn.acc = AccSide::Dead;
        conn.to_acc.clear();
        conn.to_conn.clear();
        for n in 0..2 {
            let now = self.now;
            let Some(s) = self.nodes[n].session.as_mut() else {
                continue;
            };
            let cause = if s.attempt == Some(c) {
                s.attempt = None;
                cause
            } else if s.socket == Some(c) {
                s.socket = None;
                s.replacing = false;
                FaultCause::Error
            } else {
                continue;
            };
            let before = s.core.phase();
            let action = s.v1.fault(&mut s.core, now, cause);
            if trace() {
                eprintln!(
                    "node {n} conn {c}: fault {cause:?} in {before:?} -> {action:?}, cseq {}",
                    s.v1.connect_seq()
                );
            }
            match action {
                FaultAction::Close { reset: false } => self.nodes[n].session = None,
                FaultAction::Standby => self.seen.standbys += 1,
                _ => {}
            }
        }
    }

    fn live(&self) -> Vec<usize> {
        (0..self.conns.len())
            .filter(|c| !self.conns[*c].dead)
            .collect()
    }

    /// One scheduler step; `fault_rate`: the chance (in 1/1000) that it kills a socket.
    pub fn step(&mut self, fault_rate: u32) {
        self.start_attempts();
        let live = self.live();
        match self.rng.gen_range(0..100) {
            0..=14 => {
                let n = self.rng.gen_range(0..2);
                self.send(n);
            }
            15..=34 => {
                if let Some(&c) = pick(&mut self.rng, &live) {
                    let side = self.rng.gen_range(0..2);
                    self.flush(c, side);
                }
            }
            35..=84 => {
                if let Some(&c) = pick(&mut self.rng, &live) {
                    let to_acceptor = self.rng.gen();
                    let max = self.rng.gen_range(1..400);
                    self.deliver(c, to_acceptor, max);
                }
            }
            85..=89 => self.advance(),
            _ => {}
        }
        if self.rng.gen_range(0..1000) < fault_rate {
            let live = self.live();
            if let Some(&c) = pick(&mut self.rng, &live) {
                self.seen.faults += 1;
                self.kill(c, FaultCause::Error);
            }
        }
    }

    /// Runs fault-free rounds until `done` holds (at most `max`).
    pub fn settle_until(&mut self, max: usize, done: impl Fn(&Sim) -> bool) -> bool {
        for _ in 0..max {
            if done(self) {
                return true;
            }
            self.round();
        }
        done(self)
    }

    /// Runs without faults until everything sent was delivered both ways, or `max` steps:
    /// every step flushes and delivers on every live connection, in a random order (a fixed
    /// order would replay the same interleaving for ever, which no network does: a
    /// symmetric connection race would bounce RETRY_SESSION between the two ends).
    pub fn settle(&mut self, max: usize) -> bool {
        self.settle_until(max, Sim::done)
    }

    /// One fault-free round: flushes and deliveries on every live connection.
    fn round(&mut self) {
        {
            self.start_attempts();
            let mut work: Vec<(usize, u8)> = self
                .live()
                .into_iter()
                .flat_map(|c| (0..4).map(move |k| (c, k)))
                .collect();
            for i in (1..work.len()).rev() {
                let j = self.rng.gen_range(0..=i);
                work.swap(i, j);
            }
            let before = self.moved;
            for (c, k) in work {
                match k {
                    0 | 1 => self.flush(c, usize::from(k)),
                    2 => self.deliver(c, true, usize::MAX),
                    _ => self.deliver(c, false, usize::MAX),
                }
            }
            // Time passes when nothing moves (a backoff, a WAIT, an ACK delay to sit out).
            if self.moved == before {
                self.advance();
            }
        }
    }

    /// The state of the world, for a failure message.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        for (n, node) in self.nodes.iter().enumerate() {
            out += &format!(
                "node {n}: sent {} delivered-from-peer {} resets {}\n",
                node.sent,
                node.delivered.len(),
                node.remote_resets
            );
            if let Some(s) = &node.session {
                out += &format!(
                    "  session {:?} cseq {} socket {:?} attempt {:?} replacing {} queued {} unacked {} out_seq {} in_seq {} timeout {:?}\n",
                    s.core.phase(),
                    s.v1.connect_seq(),
                    s.socket,
                    s.attempt,
                    s.replacing,
                    s.core.queued_len(),
                    s.core.unacked_len(),
                    s.core.out_seq(),
                    s.core.in_seq(),
                    s.core.poll_timeout().map(|t| t.saturating_duration_since(self.now)),
                );
            }
        }
        for (i, c) in self.conns.iter().enumerate().filter(|(_, c)| !c.dead) {
            let conn = match &c.conn {
                ConnSide::Hello(_) => "hello",
                ConnSide::Reply(_) => "reply",
                ConnSide::Seq(_) => "seq",
                ConnSide::Open(_) => "open",
                ConnSide::Dead => "dead",
            };
            let acc = match &c.acc {
                AccSide::Hello(_) => "hello",
                AccSide::Connect(..) => "connect",
                AccSide::Pending(..) => "pending",
                AccSide::Seq(_) => "seq",
                AccSide::Open(_) => "open",
                AccSide::Dead => "dead",
            };
            out += &format!(
                "conn {i} from node {}: connector {conn} acceptor {acc}, in flight {}/{}\n",
                c.connector,
                c.to_acc.len(),
                c.to_conn.len()
            );
        }
        out
    }

    /// Everything sent was delivered, both ways (after a reset: everything sent since).
    pub fn done(&self) -> bool {
        (0..2).all(|n| {
            let want = self.nodes[n].sent;
            want == 0 || self.nodes[1 - n].delivered.last() == Some(&(want - 1))
        })
    }

    /// Advances the clock to the earliest deadline and hands every session its timeouts.
    fn advance(&mut self) {
        let mut next: Option<Instant> = None;
        for n in 0..2 {
            if let Some(s) = &self.nodes[n].session {
                if let Some(t) = s.core.poll_timeout() {
                    next = Some(next.map_or(t, |x| x.min(t)));
                }
            }
            for conn in &self.conns {
                if let AccSide::Pending(_, _, until) = &conn.acc {
                    next = Some(next.map_or(*until, |x| x.min(*until)));
                }
            }
        }
        if let Some(t) = next {
            if t > self.now {
                self.now = t;
            }
        }
        for n in 0..2 {
            let now = self.now;
            let Some(s) = self.nodes[n].session.as_mut() else {
                continue;
            };
            let exp = s.core.handle_timeout(now);
            let sock = s.socket;
            if let (true, Some(c)) = (exp.ack, sock) {
                self.flush_session(c, n);
            }
            if let (true, Some(c)) = (exp.idle, sock) {
                self.kill(c, FaultCause::Error);
            }
        }
        for c in 0..self.conns.len() {
            if matches!(self.conns[c].acc, AccSide::Pending(..)) {
                self.acceptor_input(c);
            }
        }
    }

    /// Sends what the session on side `side` (0 connector, 1 acceptor) of `c` has.
    fn flush(&mut self, c: usize, side: usize) {
        let n = if side == 0 {
            self.conns[c].connector
        } else {
            1 - self.conns[c].connector
        };
        let open = match side {
            0 => matches!(self.conns[c].conn, ConnSide::Open(_)),
            _ => matches!(self.conns[c].acc, AccSide::Open(_)),
        };
        if open
            && self.nodes[n]
                .session
                .as_ref()
                .is_some_and(|s| s.socket == Some(c))
        {
            self.flush_session(c, n);
        }
    }

    fn flush_session(&mut self, c: usize, n: usize) {
        let Some(s) = self.nodes[n].session.as_mut() else {
            return;
        };
        let (mut chain, mut stage) = (VecDeque::new(), BytesMut::new());
        let mut msgs = Vec::new();
        let limits = BatchLimits {
            max_bytes: self.config.write_batch_bytes,
            max_msgs: 64,
            small: 512,
        };
        let mut enc = Encoder {
            crc: CrcFlags::default(),
            kind: FooterKind::for_features(s.core.features()),
            ka2: true,
            chain: &mut chain,
            stage: &mut stage,
            signer: None,
            copy_threshold: msgr_pipe::v1::codec::COPY_THRESHOLD,
        };
        let tx = s.core.poll_transmit(&limits, &mut enc, &mut msgs);
        for o in msgs.iter_mut() {
            enc.encode_message(o);
        }
        if let Some(seq) = tx.ack {
            enc.ack(seq);
        }
        enc.finish();
        let conn = &mut self.conns[c];
        let out = if conn.connector == n {
            &mut conn.to_acc
        } else {
            &mut conn.to_conn
        };
        for b in chain {
            out.extend(b.iter().copied());
        }
    }

    /// Moves up to `max` bytes in flight on `c` to one end and lets it process them.
    fn deliver(&mut self, c: usize, to_acceptor: bool, max: usize) {
        let conn = &mut self.conns[c];
        let (from, into) = if to_acceptor {
            (&mut conn.to_acc, &mut conn.acc_in)
        } else {
            (&mut conn.to_conn, &mut conn.conn_in)
        };
        let n = from.len().min(max);
        into.extend(from.drain(..n));
        self.moved += n as u64;
        if to_acceptor {
            self.acceptor_input(c);
        } else {
            self.connector_input(c);
        }
    }

    fn connector_input(&mut self, c: usize) {
        let n = self.conns[c].connector;
        loop {
            if self.conns[c].dead {
                return;
            }
            let open = matches!(self.conns[c].conn, ConnSide::Open(_));
            if !open && !self.owns(n, c) {
                // Superseded (replaced, or the session closed): the socket is dropped.
                self.kill(c, FaultCause::Error);
                return;
            }
            let state = std::mem::replace(&mut self.conns[c].conn, ConnSide::Dead);
            let input = &mut self.conns[c].conn_in;
            let (next, go_on) = match state {
                ConnSide::Dead => return,
                ConnSide::Hello(h) => match h.read(input) {
                    Ok(Read::More(h, _)) => (ConnSide::Hello(h), false),
                    Ok(Read::Done(hello)) => {
                        assert_eq!(hello.peer_addr, self.nodes[1 - n].addr);
                        (self.send_connect(c, n, hello.next), true)
                    }
                    Err(e) => panic!("connector hello: {e}"),
                },
                ConnSide::Reply(r) => match r.read(input) {
                    Ok(Read::More(r, _)) => (ConnSide::Reply(r), false),
                    Ok(Read::Done(reply)) => (self.on_reply(c, n, reply), true),
                    Err(e) => panic!("connector reply: {e}"),
                },
                ConnSide::Seq(w) => match w.read(input) {
                    Ok(Read::More(w, _)) => (ConnSide::Seq(w), false),
                    Ok(Read::Done(answer)) => {
                        let Some(s) = self.nodes[n].session.as_mut() else {
                            self.kill(c, FaultCause::Error);
                            return;
                        };
                        drop(s.core.discard_requeued_up_to(answer.acked()));
                        let in_seq = s.core.in_seq();
                        let (opened, bytes) = answer.send(in_seq);
                        self.conns[c].to_acc.extend(bytes.iter().copied());
                        (self.connected(c, n, &opened), true)
                    }
                    Err(e) => panic!("connector seq: {e}"),
                },
                ConnSide::Open(mut dec) => {
                    let r = self.frames(c, n, &mut dec, false);
                    if !self.conns[c].dead {
                        self.conns[c].conn = ConnSide::Open(dec);
                    }
                    if r.is_err() {
                        self.kill(c, FaultCause::Error);
                    }
                    return;
                }
            };
            if self.conns[c].dead {
                return;
            }
            if matches!(next, ConnSide::Dead) {
                self.kill(c, FaultCause::Error);
                return;
            }
            self.conns[c].conn = next;
            if !go_on {
                return;
            }
        }
    }

    fn send_connect(&mut self, c: usize, n: usize, next: ConnectorConnect) -> ConnSide {
        let node = &self.nodes[n];
        let fields = ConnectFields {
            host_type: node.ty.host_type(),
            protocol_version: proto_version(node.ty, self.nodes[1 - n].ty, true),
            flags: if node.policy.lossy { CONNECT_LOSSY } else { 0 },
            authorizer_protocol: 0,
            authorizer: Bytes::new(),
        };
        let (wait, bytes) = next.send(&node.addr, fields);
        self.conns[c].to_acc.extend(bytes.iter().copied());
        ConnSide::Reply(wait)
    }

    fn on_reply(&mut self, c: usize, n: usize, Reply { reply, next }: Reply) -> ConnSide {
        if trace() {
            eprintln!(
                "node {n} conn {c}: reply {:?} gseq {} cseq {}",
                reply.tag, reply.global_seq, reply.connect_seq
            );
        }
        match next {
            ReplyNext::Again(action, mut again) => {
                self.seen.retries += 1;
                match action {
                    ReplyAction::Retry => {
                        if let Some(s) = self.nodes[n].session.as_mut() {
                            s.v1.retry_session(again.attempt().connect_seq);
                        }
                    }
                    ReplyAction::RetryGlobal { at_least } => {
                        let g = self.next_gseq(n, at_least);
                        again.set_global_seq(g);
                    }
                    ReplyAction::ResetSession => {
                        if let Some(s) = self.nodes[n].session.as_mut() {
                            s.v1.reset();
                            drop(s.core.reset_session());
                            self.nodes[n].remote_resets += 1;
                            self.nodes[n].sent_at_reset = self.nodes[n].sent;
                        }
                    }
                    other => panic!("unexpected {other:?} (tag {:?})", reply.tag),
                }
                self.send_connect(c, n, again)
            }
            ReplyNext::Fail(e) => {
                let cause = if matches!(e, msgr_pipe::PipeError::RaceLost) {
                    self.seen.waits += 1;
                    FaultCause::RaceLost
                } else {
                    panic!("refused: {e}")
                };
                self.kill(c, cause);
                ConnSide::Dead
            }
            ReplyNext::Open(opened) => {
                if let Some(s) = self.nodes[n].session.as_mut() {
                    v1session::ready(&mut s.v1, &opened);
                }
                self.connected(c, n, &opened)
            }
            ReplyNext::Seq(w) => {
                if let Some(s) = self.nodes[n].session.as_mut() {
                    v1session::ready(&mut s.v1, w.opened());
                }
                ConnSide::Seq(w)
            }
        }
    }

    fn connected(
        &mut self,
        c: usize,
        n: usize,
        opened: &msgr_pipe::v1::handshake::Opened,
    ) -> ConnSide {
        let supported = self.nodes[n].policy.features_supported;
        let Some(s) = self.nodes[n].session.as_mut() else {
            return ConnSide::Dead;
        };
        if s.attempt != Some(c) || !v1session::connected(&mut s.core, &mut s.v1, opened, supported)
        {
            return ConnSide::Dead;
        }
        s.attempt = None;
        s.socket = Some(c);
        ConnSide::Open(FrameDecoder::new(
            Limits::default(),
            FooterKind::for_features(s.core.features()),
            CrcFlags::default(),
        ))
    }

    /// Decodes what arrived on an open socket into the session of node `n`.
    fn frames(
        &mut self,
        c: usize,
        n: usize,
        dec: &mut FrameDecoder,
        acceptor: bool,
    ) -> Result<(), ()> {
        if self.nodes[n]
            .session
            .as_ref()
            .is_none_or(|s| s.socket != Some(c))
        {
            return Err(());
        }
        let now = self.now;
        loop {
            let buf = if acceptor {
                &mut self.conns[c].acc_in
            } else {
                &mut self.conns[c].conn_in
            };
            let frame = match dec.decode(buf) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => panic!("corrupt stream in the simulation: {e}"),
            };
            let Some(s) = self.nodes[n].session.as_mut() else {
                return Err(());
            };
            match inbound(frame) {
                Inbound::Message(m) => {
                    let fresh = s.core.in_seq() == 0;
                    let (v, _ack_now) = s.core.handle_message(m.header.seq, m.header.payload_len());
                    match v {
                        // A reset peer with MSG_AUTH starts at a random seq (Ceph's
                        // `randomize_out_seq`): the first message of a fresh session may
                        // skip, as Ceph accepts it ("missed message?"). Nowhere else.
                        InSeq::Gap if !fresh => panic!("gap at seq {}", m.header.seq),
                        InSeq::Accept | InSeq::Gap => {
                            let mut b = [0u8; 8];
                            b.copy_from_slice(&m.front[..8]);
                            self.nodes[n].delivered.push(u64::from_le_bytes(b));
                        }
                        InSeq::Duplicate => {}
                    }
                }
                Inbound::Control(Control::Close) => return Err(()),
                Inbound::Control(ctl) => {
                    let mut done = Released::default();
                    s.core.handle_control(now, ctl, &mut done);
                }
            }
        }
        if let Some(s) = self.nodes[n].session.as_mut() {
            s.core.handle_idle(now);
        }
        Ok(())
    }

    fn acceptor_input(&mut self, c: usize) {
        let me = 1 - self.conns[c].connector;
        loop {
            if self.conns[c].dead {
                return;
            }
            let state = std::mem::replace(&mut self.conns[c].acc, AccSide::Dead);
            let input = &mut self.conns[c].acc_in;
            let (next, go_on) = match state {
                AccSide::Dead => return,
                AccSide::Hello(h) => match h.read(input) {
                    Ok(Read::More(h, _)) => (AccSide::Hello(h), false),
                    Ok(Read::Done((peer, wait))) => (AccSide::Connect(wait, peer), true),
                    Err(e) => panic!("acceptor hello: {e}"),
                },
                AccSide::Connect(w, peer) => match w.read(input) {
                    Ok(Read::More(w, _)) => (AccSide::Connect(w, peer), false),
                    Ok(Read::Done(got)) => {
                        let next = self.decide(c, me, got, peer, None);
                        let go = !matches!(next, AccSide::Pending(..));
                        (next, go)
                    }
                    Err(e) => panic!("acceptor connect: {e}"),
                },
                AccSide::Pending(got, peer, until) => {
                    let next = self.decide(c, me, got, peer, Some(until));
                    let go = !matches!(next, AccSide::Pending(..));
                    (next, go)
                }
                AccSide::Seq(w) => match w.read(input) {
                    Ok(Read::More(w, _)) => (AccSide::Seq(w), false),
                    Ok(Read::Done(acked)) => {
                        let owned = self.nodes[me]
                            .session
                            .as_mut()
                            .filter(|s| s.socket == Some(c));
                        let Some(s) = owned else {
                            self.kill(c, FaultCause::Error);
                            return;
                        };
                        drop(s.core.discard_requeued_up_to(acked));
                        (self.accepted(me), true)
                    }
                    Err(e) => panic!("acceptor seq: {e}"),
                },
                AccSide::Open(mut dec) => {
                    let r = self.frames(c, me, &mut dec, true);
                    if !self.conns[c].dead {
                        self.conns[c].acc = AccSide::Open(dec);
                    }
                    if r.is_err() {
                        self.kill(c, FaultCause::Error);
                    }
                    return;
                }
            };
            if self.conns[c].dead {
                return;
            }
            if matches!(next, AccSide::Dead) {
                self.kill(c, FaultCause::Error);
                return;
            }
            self.conns[c].acc = next;
            if !go_on {
                return;
            }
        }
    }

    fn accepted(&mut self, me: usize) -> AccSide {
        let Some(s) = self.nodes[me].session.as_mut() else {
            return AccSide::Dead;
        };
        v1session::accepted(&mut s.core, &mut s.v1);
        s.replacing = false;
        AccSide::Open(FrameDecoder::new(
            Limits::default(),
            FooterKind::for_features(s.core.features()),
            CrcFlags::default(),
        ))
    }

    fn decide(
        &mut self,
        c: usize,
        me: usize,
        got: Connected,
        peer: EntityAddr,
        pending_until: Option<Instant>,
    ) -> AccSide {
        let policy = self.nodes[me].policy.clone();
        let my_addr = self.nodes[me].addr;
        let expected = proto_version(self.nodes[me].ty, got.peer_type, false);
        let ctx = AcceptCtx {
            expected_proto: expected,
            features_required: policy.features_required,
            resetcheck: policy.resetcheck,
            authorizer_ok: true,
            peer_wins_race: peer.race_cmp(&my_addr) == std::cmp::Ordering::Less,
        };
        let view = self.nodes[me].session.as_ref().map(|s| {
            v1session::view(
                &s.core,
                &s.v1,
                s.policy.server,
                s.replacing,
                s.attempt.is_some(),
            )
        });
        let decision = decide(&got.connect, view.as_ref(), &ctx);
        if trace() {
            eprintln!(
                "[{:?}] node {me} conn {c}: connect gseq {} cseq {} vs {view:?} -> {decision:?}",
                self.now.saturating_duration_since(self.start),
                got.connect.global_seq,
                got.connect.connect_seq
            );
        }
        let reply = |tag, global_seq, connect_seq| ConnectReply {
            tag,
            features: (got.connect.features & policy.features_supported) | policy.features_required,
            global_seq,
            connect_seq,
            protocol_version: expected,
            flags: 0,
            authorizer: Bytes::new(),
        };
        let answer = |sim: &mut Sim, next: AcceptorDecide, r: ConnectReply| {
            let (wait, bytes) = next.reply(&r);
            sim.conns[c].to_conn.extend(bytes.iter().copied());
            AccSide::Connect(wait, peer)
        };
        let att = match decision {
            AcceptDecision::ResetSession => {
                // The acceptor lets the session's own attempt finish first (as the driver
                // does, at most 2 s).
                if let Some(v) = &view {
                    let until = pending_until.unwrap_or(self.now + Duration::from_secs(2));
                    if v.attempting && v.connect_seq == 0 && self.now < until {
                        return AccSide::Pending(got, peer, until);
                    }
                }
                return answer(self, got.next, reply(Tag::ResetSession, 0, 0));
            }
            AcceptDecision::RetryGlobal { global_seq } => {
                return answer(self, got.next, reply(Tag::RetryGlobal, global_seq, 0))
            }
            AcceptDecision::RetrySession { connect_seq } => {
                return answer(self, got.next, reply(Tag::RetrySession, 0, connect_seq))
            }
            AcceptDecision::Wait => {
                if let Some(s) = self.nodes[me].session.as_mut() {
                    s.core.queue_keepalive();
                    if s.attempt.is_none() {
                        s.core.expedite_reconnect();
                    }
                }
                return answer(self, got.next, reply(Tag::Wait, 0, 0));
            }
            AcceptDecision::BadProtoVer
            | AcceptDecision::Features
            | AcceptDecision::BadAuthorizer => {
                panic!("refusal {decision:?} between equal peers")
            }
            AcceptDecision::Open => {
                let mut s = self.new_session(me, ConnState::Accepting);
                let att = v1session::open_new(
                    &mut s.core,
                    &mut s.v1,
                    &got.connect,
                    policy.features_supported,
                );
                s.socket = Some(c);
                s.replacing = true;
                self.nodes[me].session = Some(s);
                att
            }
            AcceptDecision::Replace(kind) => {
                self.seen.replaces += 1;
                let Some(s) = self.nodes[me].session.as_mut() else {
                    unreachable!("replace without a session");
                };
                let old = [s.socket.take(), s.attempt.take()];
                let att = v1session::replace(
                    kind,
                    &mut s.core,
                    &mut s.v1,
                    &got.connect,
                    policy.features_supported,
                );
                s.socket = Some(c);
                s.replacing = true;
                for o in old.into_iter().flatten() {
                    self.kill(o, FaultCause::Error);
                }
                att
            }
        };
        if att.remote_reset {
            self.nodes[me].remote_resets += 1;
            self.nodes[me].sent_at_reset = self.nodes[me].sent;
        }
        let gseq = self.next_gseq(me, 0);
        let final_reply = ConnectReply {
            tag: if att.seq_reply.is_some() {
                Tag::Seq
            } else {
                Tag::Ready
            },
            features: policy.features_supported,
            global_seq: gseq,
            connect_seq: got.connect.connect_seq.wrapping_add(1),
            protocol_version: expected,
            flags: if policy.lossy { CONNECT_LOSSY } else { 0 },
            authorizer: Bytes::new(),
        };
        let (accepted, bytes) = got.next.accept(&final_reply, att.seq_reply);
        self.conns[c].to_conn.extend(bytes.iter().copied());
        if let Some(s) = self.nodes[me].session.as_mut() {
            s.v1.committed();
        }
        match accepted {
            Accepted::Open => self.accepted(me),
            Accepted::Seq(w) => AccSide::Seq(w),
        }
    }
}

/// `MSGR_SIM_TRACE=1`: each handshake decision and fault on standard error.
fn trace() -> bool {
    std::env::var_os("MSGR_SIM_TRACE").is_some()
}

fn pick<'a, T>(rng: &mut SmallRng, v: &'a [T]) -> Option<&'a T> {
    if v.is_empty() {
        None
    } else {
        v.get(rng.gen_range(0..v.len()))
    }
}
