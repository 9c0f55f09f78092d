//! The v1 handshakes as sans-IO machines: bytes in, bytes out, states consumed by value.
//!
//! Each state that waits for the peer implements [`Expect`]: [`Expect::read`] takes the
//! bytes received so far and either finishes the step (consuming exactly its bytes) or
//! gives the state back with the number of bytes it still needs, so a driver can read
//! exactly that many (nothing beyond the handshake is read: the stream decoder starts on a
//! frame boundary). States that send return the bytes to write. Where the handshake needs
//! the session or the host (a global seq, an authorizer, the acceptor's decision, the
//! session's `in_seq`), the machine stops in a state whose methods take that input.
//!
//! ```text
//! connector                                          acceptor
//! ConnectorHello::start ── banner ─────────────────► AcceptorHello::start (banner, addrs)
//!   .read ◄────────────── banner, addr, your addr ──
//! ConnectorConnect::send ─ my addr, connect ───────► AcceptorHello.read → AcceptorConnect.read
//!                                                      → AcceptorDecide: .reply (RETRY_*,
//! ConnectorReply.read ◄─── reply ───────────────────     WAIT, refusals) or .accept (READY/SEQ)
//!   → ReplyNext::Again(ConnectorConnect) | Open | Seq | Fail
//! ConnectorSeq.read ◄───── acked seq (SEQ only) ────
//! SeqAnswer::send ──────── our in_seq ─────────────► AcceptorSeq.read
//! ```
//!
//! Not here: the accept decision (table 5.3 is [`super::accept::decide`]), the reply table
//! ([`super::connect::on_reply`], which the connector machine applies), sessions, sockets,
//! timeouts, the handshake hook (the driver calls it between steps).

use std::net::SocketAddr;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use msgr_wire::{
    Banner, Connect, ConnectReply, EntityAddr, EntityType, Limits, Wire, WireError, ADDR_LEN,
    BANNER_LEN, CONNECT_LEN, CONNECT_REPLY_LEN, SEQ_LEN,
};

use super::connect::{on_reply, Attempt, ReplyAction};
use crate::error::PipeError;

/// The outcome of [`Expect::read`].
#[derive(Debug)]
pub enum Read<S, T> {
    /// Not enough bytes yet: the state back, and how many more bytes it needs at least.
    More(S, usize),
    /// The step is done; its bytes were consumed.
    Done(T),
}

/// A state waiting for bytes from the peer.
pub trait Expect: Sized {
    /// What the step yields.
    type Output;
    /// Takes the step's bytes from the front of `buf` once they are all there.
    fn read(self, buf: &mut BytesMut) -> Result<Read<Self, Self::Output>, PipeError>;
}

/// `n` bytes are needed: `More` with the shortfall, or `None` if `buf` has them.
fn short(buf: &BytesMut, n: usize) -> Option<usize> {
    (buf.len() < n).then(|| n - buf.len())
}

/// The banner is checked as soon as its bytes are in, before the addresses after it are
/// waited for (a peer speaking another protocol is refused at once, not at a timeout):
/// `More` with what is missing of the banner, or `None` once a good banner is there.
fn banner_first(buf: &BytesMut) -> Result<Option<usize>, PipeError> {
    if let Some(n) = short(buf, BANNER_LEN) {
        return Ok(Some(n));
    }
    Banner::decode(&mut &buf[..BANNER_LEN])?;
    Ok(None)
}

fn check_auth_len(len: Option<u32>, limits: &Limits) -> Result<usize, PipeError> {
    let len = len.unwrap_or(0);
    if len > limits.max_authorizer {
        return Err(PipeError::Wire(WireError::TooLong {
            what: "authorizer",
            len: len.into(),
            limit: limits.max_authorizer.into(),
        }));
    }
    usize::try_from(len).map_err(|_| {
        PipeError::Wire(WireError::TooLong {
            what: "authorizer",
            len: len.into(),
            limit: limits.max_authorizer.into(),
        })
    })
}

/// The connector's feature policy for the reply table.
#[derive(Clone, Copy, Debug)]
pub struct Features {
    /// Features we support.
    pub supported: u64,
    /// Features we require.
    pub required: u64,
}

// ---------------------------------------------------------------- connector

/// The connector after sending its banner: waits for the acceptor's banner and addresses.
#[derive(Debug)]
pub struct ConnectorHello {
    at: Attempt,
    limits: Limits,
    features: Features,
}

/// What the acceptor's hello said, and the machine to go on with.
#[derive(Debug)]
pub struct Hello {
    /// The acceptor's address, as it announces it.
    pub peer_addr: EntityAddr,
    /// Our address as the acceptor sees it (to learn our IP from).
    pub for_me: EntityAddr,
    /// Next: send the connect.
    pub next: ConnectorConnect,
}

impl ConnectorHello {
    /// Starts an attempt with the counters in `at`; returns the banner to send.
    pub fn start(at: Attempt, limits: Limits, features: Features) -> (ConnectorHello, Bytes) {
        let mut out = BytesMut::with_capacity(BANNER_LEN);
        Banner.encode(&mut out);
        (
            ConnectorHello {
                at,
                limits,
                features,
            },
            out.freeze(),
        )
    }
}

impl Expect for ConnectorHello {
    type Output = Hello;

    fn read(self, buf: &mut BytesMut) -> Result<Read<Self, Hello>, PipeError> {
        if let Some(n) = banner_first(buf)? {
            return Ok(Read::More(self, n));
        }
        if let Some(n) = short(buf, BANNER_LEN + 2 * ADDR_LEN) {
            return Ok(Read::More(self, n));
        }
        let mut b = buf.split_to(BANNER_LEN + 2 * ADDR_LEN);
        Banner::decode(&mut b)?;
        let peer_addr = EntityAddr::decode(&mut b)?;
        let for_me = EntityAddr::decode(&mut b)?;
        Ok(Read::Done(Hello {
            peer_addr,
            for_me,
            next: ConnectorConnect {
                at: self.at,
                limits: self.limits,
                features: self.features,
                addr_sent: false,
            },
        }))
    }
}

/// The connector's part of a `ceph_msg_connect` (the machine adds the seqs of its attempt).
#[derive(Debug, Clone)]
pub struct ConnectFields {
    /// Our entity type, as `host_type`.
    pub host_type: u32,
    /// Protocol version for the peer type.
    pub protocol_version: u32,
    /// `CONNECT_LOSSY` or 0.
    pub flags: u8,
    /// `authorizer_protocol` (0: none).
    pub authorizer_protocol: u32,
    /// The authorizer's bytes.
    pub authorizer: Bytes,
}

/// The connector, ready to send a connect.
#[derive(Debug)]
pub struct ConnectorConnect {
    at: Attempt,
    limits: Limits,
    features: Features,
    addr_sent: bool,
}

impl ConnectorConnect {
    /// The attempt's counters (global seq, connect seq, whether an authorizer was retried).
    pub fn attempt(&self) -> Attempt {
        self.at
    }

    /// RETRY_GLOBAL: the next connect carries `global_seq` (above the acceptor's).
    pub fn set_global_seq(&mut self, global_seq: u32) {
        self.at.global_seq = global_seq;
    }

    /// Sends a connect (after our address `my_addr`, the first time); returns the bytes.
    pub fn send(self, my_addr: &EntityAddr, f: ConnectFields) -> (ConnectorReply, Bytes) {
        let mut out = BytesMut::with_capacity(ADDR_LEN + CONNECT_LEN + f.authorizer.len());
        if !self.addr_sent {
            my_addr.encode(&mut out);
        }
        Connect {
            features: self.features.supported,
            host_type: f.host_type,
            global_seq: self.at.global_seq,
            connect_seq: self.at.connect_seq,
            protocol_version: f.protocol_version,
            authorizer_protocol: f.authorizer_protocol,
            flags: f.flags,
            authorizer: f.authorizer,
        }
        .encode(&mut out);
        (
            ConnectorReply {
                at: self.at,
                limits: self.limits,
                features: self.features,
                protocol_version: f.protocol_version,
            },
            out.freeze(),
        )
    }
}

/// The connector after a connect: waits for the reply.
#[derive(Debug)]
pub struct ConnectorReply {
    at: Attempt,
    limits: Limits,
    features: Features,
    protocol_version: u32,
}

/// What the connector does after a reply.
#[derive(Debug)]
pub enum ReplyNext {
    /// Connect again on this socket. The action says why: `Retry` (the attempt now has the
    /// acceptor's connect seq), `RetryGlobal` (raise the global seq with
    /// [`ConnectorConnect::set_global_seq`]), `RetryAuthorizer` (build a fresh one),
    /// `Challenge` (answer the reply's challenge with the same authorizer),
    /// `ResetSession` (reset the session first; the attempt's connect seq is 0).
    Again(ReplyAction, ConnectorConnect),
    /// READY: the session opens.
    Open(Opened),
    /// SEQ: the acceptor's acknowledged seq follows.
    Seq(ConnectorSeq),
    /// This socket is done: WAIT ([`PipeError::RaceLost`]) or a refusal.
    Fail(PipeError),
}

/// The connector's handshake succeeded.
#[derive(Debug, Clone)]
pub struct Opened {
    /// The READY/SEQ reply (features, flags, the acceptor's global and connect seq).
    pub reply: ConnectReply,
    /// The connect seq our last connect carried.
    pub connect_seq_sent: u32,
    /// With a SEQ reply: the acceptor's acknowledged seq.
    pub acked: Option<u64>,
}

/// A reply and what to do next.
#[derive(Debug)]
pub struct Reply {
    /// The reply as read.
    pub reply: ConnectReply,
    /// Next.
    pub next: ReplyNext,
}

impl Expect for ConnectorReply {
    type Output = Reply;

    fn read(mut self, buf: &mut BytesMut) -> Result<Read<Self, Reply>, PipeError> {
        if let Some(n) = short(buf, CONNECT_REPLY_LEN) {
            return Ok(Read::More(self, n));
        }
        let alen = check_auth_len(ConnectReply::peek_authorizer_len(buf), &self.limits)?;
        if let Some(n) = short(buf, CONNECT_REPLY_LEN + alen) {
            return Ok(Read::More(self, n));
        }
        let mut b = buf.split_to(CONNECT_REPLY_LEN + alen);
        let reply = ConnectReply::decode_limited(&mut b, self.limits.max_authorizer)?;
        let f = self.features;
        let next = match on_reply(&mut self.at, &reply, f.supported, f.required) {
            ReplyAction::Ready { seq } => {
                let opened = Opened {
                    reply: reply.clone(),
                    connect_seq_sent: self.at.connect_seq,
                    acked: None,
                };
                if seq {
                    ReplyNext::Seq(ConnectorSeq { opened })
                } else {
                    ReplyNext::Open(opened)
                }
            }
            ReplyAction::Wait => ReplyNext::Fail(PipeError::RaceLost),
            ReplyAction::Fail(PipeError::BadProtoVer { peer, .. }) => {
                ReplyNext::Fail(PipeError::BadProtoVer {
                    ours: self.protocol_version,
                    peer,
                })
            }
            ReplyAction::Fail(e) => ReplyNext::Fail(e),
            again => ReplyNext::Again(
                again,
                ConnectorConnect {
                    at: self.at,
                    limits: self.limits,
                    features: self.features,
                    addr_sent: true,
                },
            ),
        };
        Ok(Read::Done(Reply { reply, next }))
    }
}

/// The connector after a SEQ reply: waits for the acceptor's acknowledged seq.
#[derive(Debug)]
pub struct ConnectorSeq {
    opened: Opened,
}

impl ConnectorSeq {
    /// The handshake's outcome so far (the SEQ reply).
    pub fn opened(&self) -> &Opened {
        &self.opened
    }
}

/// The connector has the acceptor's acknowledged seq and answers with its `in_seq`.
#[derive(Debug)]
pub struct SeqAnswer {
    opened: Opened,
}

impl SeqAnswer {
    /// The acceptor's acknowledged seq (discard requeued messages up to it first).
    pub fn acked(&self) -> u64 {
        self.opened.acked.unwrap_or(0)
    }

    /// Sends our `in_seq`; the handshake is done.
    pub fn send(self, in_seq: u64) -> (Opened, Bytes) {
        (self.opened, Bytes::copy_from_slice(&in_seq.to_le_bytes()))
    }
}

impl Expect for ConnectorSeq {
    type Output = SeqAnswer;

    fn read(mut self, buf: &mut BytesMut) -> Result<Read<Self, SeqAnswer>, PipeError> {
        if let Some(n) = short(buf, SEQ_LEN) {
            return Ok(Read::More(self, n));
        }
        self.opened.acked = Some(buf.get_u64_le());
        Ok(Read::Done(SeqAnswer {
            opened: self.opened,
        }))
    }
}

// ---------------------------------------------------------------- acceptor

/// The acceptor after sending its banner and addresses: waits for the connector's banner
/// and address.
#[derive(Debug)]
pub struct AcceptorHello {
    socket_peer: SocketAddr,
    limits: Limits,
}

impl AcceptorHello {
    /// Starts on a socket from `socket_peer`; returns the banner, our address and the
    /// peer's as we see it.
    pub fn start(
        my_addr: &EntityAddr,
        socket_peer: SocketAddr,
        limits: Limits,
    ) -> (AcceptorHello, Bytes) {
        let mut out = BytesMut::with_capacity(BANNER_LEN + 2 * ADDR_LEN);
        Banner.encode(&mut out);
        my_addr.encode(&mut out);
        EntityAddr::new(socket_peer, 0).encode(&mut out);
        (
            AcceptorHello {
                socket_peer,
                limits,
            },
            out.freeze(),
        )
    }
}

impl Expect for AcceptorHello {
    type Output = (EntityAddr, AcceptorConnect);

    /// Yields the connector's address (a blank IP replaced by the socket's).
    fn read(self, buf: &mut BytesMut) -> Result<Read<Self, Self::Output>, PipeError> {
        if let Some(n) = banner_first(buf)? {
            return Ok(Read::More(self, n));
        }
        if let Some(n) = short(buf, BANNER_LEN + ADDR_LEN) {
            return Ok(Read::More(self, n));
        }
        let mut b = buf.split_to(BANNER_LEN + ADDR_LEN);
        Banner::decode(&mut b)?;
        let mut peer = EntityAddr::decode(&mut b)?;
        if peer.is_blank_ip() {
            peer.addr.set_ip(self.socket_peer.ip());
        }
        Ok(Read::Done((
            peer,
            AcceptorConnect {
                limits: self.limits,
            },
        )))
    }
}

/// The acceptor waiting for a connect.
#[derive(Debug)]
pub struct AcceptorConnect {
    limits: Limits,
}

/// A connect received: the peer's entity type, and the machine waiting for the decision.
#[derive(Debug)]
pub struct Connected {
    /// The connect.
    pub connect: Connect,
    /// The connector's entity type.
    pub peer_type: EntityType,
    /// Next: answer it.
    pub next: AcceptorDecide,
}

impl Expect for AcceptorConnect {
    type Output = Connected;

    fn read(self, buf: &mut BytesMut) -> Result<Read<Self, Connected>, PipeError> {
        if let Some(n) = short(buf, CONNECT_LEN) {
            return Ok(Read::More(self, n));
        }
        let alen = check_auth_len(Connect::peek_authorizer_len(buf), &self.limits)?;
        if let Some(n) = short(buf, CONNECT_LEN + alen) {
            return Ok(Read::More(self, n));
        }
        let mut b = buf.split_to(CONNECT_LEN + alen);
        let connect = Connect::decode_limited(&mut b, self.limits.max_authorizer)?;
        let peer_type = u8::try_from(connect.host_type)
            .map(EntityType)
            .map_err(|_| {
                PipeError::Wire(WireError::TooLong {
                    what: "host_type",
                    len: connect.host_type.into(),
                    limit: 255,
                })
            })?;
        Ok(Read::Done(Connected {
            connect,
            peer_type,
            next: AcceptorDecide {
                limits: self.limits,
            },
        }))
    }
}

/// The acceptor holding a connect, waiting for the decision.
#[derive(Debug)]
pub struct AcceptorDecide {
    limits: Limits,
}

/// The acceptor answered READY or SEQ.
#[derive(Debug)]
pub enum Accepted {
    /// READY: the session opens now.
    Open,
    /// SEQ: the connector's acknowledged seq follows.
    Seq(AcceptorSeq),
}

impl AcceptorDecide {
    /// Answers with a reply that asks for another connect (RETRY_*, RESETSESSION, WAIT, or a
    /// refusal after which the connector may try again).
    pub fn reply(self, reply: &ConnectReply) -> (AcceptorConnect, Bytes) {
        let mut out = BytesMut::with_capacity(CONNECT_REPLY_LEN + reply.authorizer.len());
        reply.encode(&mut out);
        (
            AcceptorConnect {
                limits: self.limits,
            },
            out.freeze(),
        )
    }

    /// Answers READY, or SEQ followed by our `in_seq` when `in_seq` is given.
    pub fn accept(self, reply: &ConnectReply, in_seq: Option<u64>) -> (Accepted, Bytes) {
        let mut out = BytesMut::with_capacity(CONNECT_REPLY_LEN + reply.authorizer.len() + 8);
        reply.encode(&mut out);
        match in_seq {
            Some(seq) => {
                out.put_u64_le(seq);
                (Accepted::Seq(AcceptorSeq), out.freeze())
            }
            None => (Accepted::Open, out.freeze()),
        }
    }
}

/// The acceptor after SEQ: waits for the connector's acknowledged seq.
#[derive(Debug)]
pub struct AcceptorSeq;

impl Expect for AcceptorSeq {
    type Output = u64;

    fn read(self, buf: &mut BytesMut) -> Result<Read<Self, u64>, PipeError> {
        if let Some(n) = short(buf, SEQ_LEN) {
            return Ok(Read::More(self, n));
        }
        Ok(Read::Done(buf.get_u64_le()))
    }
}

#[cfg(test)]
mod tests {
    use msgr_wire::{features, Tag, CONNECT_LOSSY};

    use super::*;

    fn addr(s: &str, nonce: u32) -> EntityAddr {
        EntityAddr::new(s.parse().expect("address"), nonce)
    }

    /// Feeds `bytes` one at a time: every state asks for exactly what it lacks.
    fn drip<E: Expect>(mut e: E, bytes: &[u8]) -> E::Output {
        let mut buf = BytesMut::new();
        let mut fed = 0;
        loop {
            match e.read(&mut buf).expect("valid input") {
                Read::Done(out) => {
                    assert!(buf.is_empty(), "a step consumed exactly its bytes");
                    assert_eq!(fed, bytes.len(), "nothing read beyond the step");
                    return out;
                }
                Read::More(s, n) => {
                    assert!(n > 0 && fed + n <= bytes.len(), "asks for {n} at {fed}");
                    buf.put_u8(bytes[fed]);
                    fed += 1;
                    e = s;
                }
            }
        }
    }

    fn fields(auth: &[u8]) -> ConnectFields {
        ConnectFields {
            host_type: 8,
            protocol_version: 24,
            flags: 0,
            authorizer_protocol: 2,
            authorizer: Bytes::copy_from_slice(auth),
        }
    }

    #[test]
    fn a_full_handshake_machine_to_machine_with_seq_and_a_retry() {
        let server = addr("10.0.0.1:6800", 7);
        let client = addr("10.0.0.2:40000", 9);
        let feats = Features {
            supported: features::RECONNECT_SEQ | features::MSG_AUTH,
            required: 0,
        };
        let at = Attempt {
            global_seq: 5,
            connect_seq: 1,
            auth_retried: false,
        };
        let (ch, banner) = ConnectorHello::start(at, Limits::default(), feats);
        let peer_sock = "10.0.0.2:40000".parse().expect("socket");
        let (ah, hello) = AcceptorHello::start(&server, peer_sock, Limits::default());
        let hello_out = drip(ch, &hello);
        assert_eq!(hello_out.peer_addr, server);
        let (reply_wait, connect_bytes) = hello_out.next.send(&client, fields(b"auth"));
        // The acceptor reads banner + address, then the connect.
        let mut to_acceptor = banner.to_vec();
        to_acceptor.extend_from_slice(&connect_bytes[..ADDR_LEN]);
        let (peer, ac) = drip(ah, &to_acceptor);
        assert_eq!(peer, client);
        let got = drip(ac, &connect_bytes[ADDR_LEN..]);
        assert_eq!(got.peer_type, EntityType(8));
        assert_eq!(got.connect.authorizer, Bytes::from_static(b"auth"));
        assert_eq!((got.connect.global_seq, got.connect.connect_seq), (5, 1));
        // RETRY_SESSION at 4: the connector connects again with it, without its address.
        let mut retry = ConnectReply::new(Tag::RetrySession);
        retry.connect_seq = 4;
        let (ac, bytes) = got.next.reply(&retry);
        let r = drip(reply_wait, &bytes);
        let ReplyNext::Again(ReplyAction::Retry, cc) = r.next else {
            panic!("{:?}", r.next);
        };
        assert_eq!(cc.attempt().connect_seq, 4);
        let (reply_wait, connect_bytes) = cc.send(&client, fields(b""));
        assert_eq!(
            connect_bytes.len(),
            CONNECT_LEN,
            "no address the second time"
        );
        let got = drip(ac, &connect_bytes);
        assert_eq!(got.connect.connect_seq, 4);
        let mut ready = ConnectReply::new(Tag::Seq);
        ready.features = feats.supported;
        ready.connect_seq = 5;
        ready.flags = CONNECT_LOSSY;
        let (accepted, bytes) = got.next.accept(&ready, Some(17));
        let r = drip(reply_wait, &bytes[..CONNECT_REPLY_LEN]);
        let ReplyNext::Seq(seq_wait) = r.next else {
            panic!("{:?}", r.next);
        };
        let answer = drip(seq_wait, &bytes[CONNECT_REPLY_LEN..]);
        assert_eq!(answer.acked(), 17);
        let (opened, bytes) = answer.send(3);
        assert_eq!(opened.connect_seq_sent, 4);
        assert_eq!(opened.acked, Some(17));
        let Accepted::Seq(aseq) = accepted else {
            panic!("SEQ expected");
        };
        assert_eq!(drip(aseq, &bytes), 3);
    }

    #[test]
    fn wait_refusals_and_hostile_lengths() {
        let feats = Features {
            supported: 1,
            required: 2,
        };
        let at = Attempt {
            global_seq: 1,
            connect_seq: 0,
            auth_retried: false,
        };
        let reply_wait = || ConnectorReply {
            at,
            limits: Limits::default(),
            features: feats,
            protocol_version: 24,
        };
        let enc = |r: &ConnectReply| {
            let mut b = BytesMut::new();
            r.encode(&mut b);
            b
        };
        let mut b = enc(&ConnectReply::new(Tag::Wait));
        let Read::Done(r) = reply_wait().read(&mut b).expect("reads") else {
            panic!("complete reply");
        };
        assert!(matches!(r.next, ReplyNext::Fail(PipeError::RaceLost)));
        let mut b = enc(&ConnectReply::new(Tag::BadProtoVer));
        let Read::Done(r) = reply_wait().read(&mut b).expect("reads") else {
            panic!("complete reply");
        };
        assert!(matches!(
            r.next,
            ReplyNext::Fail(PipeError::BadProtoVer { ours: 24, .. })
        ));
        // READY without a required feature is a refusal of ours.
        let mut b = enc(&ConnectReply::new(Tag::Ready));
        let Read::Done(r) = reply_wait().read(&mut b).expect("reads") else {
            panic!("complete reply");
        };
        assert!(matches!(
            r.next,
            ReplyNext::Fail(PipeError::MissingFeatures { missing: 2 })
        ));
        // An authorizer length beyond the limit is refused before anything is allocated.
        let mut r = ConnectReply::new(Tag::Ready);
        r.authorizer = Bytes::from(vec![0u8; 8]);
        let mut b = enc(&r);
        b.truncate(CONNECT_REPLY_LEN);
        b[CONNECT_REPLY_LEN - 5..CONNECT_REPLY_LEN - 1].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            reply_wait().read(&mut b),
            Err(PipeError::Wire(WireError::TooLong { .. }))
        ));
        // A bad banner.
        let (ah, _) = AcceptorHello::start(
            &addr("10.0.0.1:1", 1),
            "10.0.0.2:2".parse().expect("socket"),
            Limits::default(),
        );
        let mut b = BytesMut::from(&vec![b'x'; BANNER_LEN + ADDR_LEN][..]);
        assert!(matches!(
            ah.read(&mut b),
            Err(PipeError::Wire(WireError::BadBanner { .. }))
        ));
    }
}
