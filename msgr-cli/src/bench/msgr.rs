//! The msgr transport of the bench: a server and client messengers in this process on
//! loopback, or client messengers against a remote `msgr serve`.
//!
//! As in Ceph's perf_msgr client, each job (connection) has its own client messenger (without
//! a listener, as Ceph's clients), and the server is one messenger ([`ServeDispatcher`]: a sink for stream cases, an echo for rr cases).
//! Both sides fast-dispatch. A job first makes one round trip (an end marker for 0 messages)
//! so the handshake is not timed, then waits for every job to be ready, and times itself from
//! just before its first send to its last delivery (the last echo, or the sink's count).
//!
//! ```text
//! client job                         server
//!  DATA(tid = seq, data)         ->  sink: track seq          | echo: send back
//!  ...                               ...
//!  END(tid = sent)               ->  sink: END_ACK(counts)    | echo: END back
//! ```
//!
//! A round trip is timed by the client: it keeps each request's send time by sequence
//! number ([`Stamps`]) and looks it up when the echo (same `tid`) arrives.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use msgr_core::{
    Authorizer, Connection, Messenger, MessengerConfig, PolicyConfig, PolicyKind,
    ProviderAuthorizer,
};
use msgr_wire::{EntityAddr, EntityName, EntityType, Message, MsgFooter, MsgHeader, PRIO_DEFAULT};
use tokio::sync::Barrier;
use tokio::task::JoinSet;

use super::client::{ClientSide, Pump};
use super::payload;
use super::plan::{Case, Limit, Mode};
use super::{BenchArgs, JobResult, Outcome, PolicyArg, SessionCounts, Stopper};
use crate::serve::{self, ServeDispatcher, ServeMode, MSG_BENCH_DATA, MSG_BENCH_END};

/// How long a lossless run waits for an answer before it calls the run failed.
pub(super) const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);
/// A job whose messenger moved no byte for this long has lost its server: the run fails.
const STALL: Duration = Duration::from_secs(10);
/// How long a lossy run waits for an answer before it counts the missing messages as lost.
const LOSSY_TIMEOUT: Duration = Duration::from_secs(2);

/// The messenger-side options of a bench run.
#[derive(Debug, Clone)]
pub struct Options {
    /// A remote `msgr serve`.
    pub server: Option<EntityAddr>,
    /// Lossless or lossy sessions.
    pub policy: PolicyArg,
    /// Check every byte.
    pub verify: bool,
    /// Fault injection, passed to every messenger.
    pub inject: msgr_core::InjectConfig,
    /// Data CRCs on (the default) or off.
    pub crc_data: bool,
    /// cephx on both ends (`--cephx`): authorizers, signatures.
    pub auth: Option<BenchAuth>,
    /// The embedded server listens in msgr2 (the client follows its address).
    pub v2: bool,
    /// msgr2's connection mode offered by the client (`None`: Ceph's order, crc then secure).
    pub con_mode: Option<msgr_core::ConMode>,
    /// Each session's `max_pending_bytes` (`None`: the messenger's default).
    pub max_pending_bytes: Option<u64>,
}

/// The authorizers of a cephx bench: the embedded server verifies what the client presents.
#[derive(Clone)]
pub struct BenchAuth {
    server: Arc<dyn Authorizer>,
    client: Arc<dyn Authorizer>,
    /// The mon client lending `client` its tickets (a remote server's bench), kept alive.
    _monc: Option<Arc<msgr_monc::MonClient>>,
}

impl std::fmt::Debug for BenchAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BenchAuth(cephx)")
    }
}

impl BenchAuth {
    /// A throw-away cephx world: an in-memory mon with a random `client.admin` key issues the
    /// client its OSD ticket; the server (osd.0) verifies with the mon's rotating OSD keys,
    /// challenging each connection.
    pub fn cephx() -> anyhow::Result<BenchAuth> {
        use msgr_auth::provider::{
            AuthClient, AuthServer, CephxAuthServer, CephxAuthorizerVerifier, CephxClient,
            ClientProgress, ServiceKeyStore, TicketTtls,
        };
        use msgr_auth::{CryptoKey, EntityName as AuthName, Keyring, KeyringEntry, UTime};
        use rand::SeedableRng;
        let entropy = || Box::new(rand::rngs::StdRng::from_entropy());
        let key = CryptoKey::aes(rand::random());
        let admin = AuthName::client("admin");
        let mut ring = Keyring::new();
        ring.insert(
            admin.clone(),
            KeyringEntry {
                key: key.clone(),
                caps: [("osd".to_owned(), "allow *".to_owned())].into(),
            },
        );
        let mon = CephxAuthServer::new(ring, TicketTtls::default(), 4100, entropy());
        let now = UTime::now();
        let mut client = CephxClient::new(admin, key, msgr_auth::ENTITY_OSD, entropy());
        let (mut session, reply) = mon.start_session(client.name(), 0, now);
        client.set_global_id(reply.global_id);
        let mut progress = client.handle_reply(now, reply.result, &reply.payload)?;
        while progress == ClientProgress::More {
            let reply = session.handle_request(now, &client.build_request(now)?);
            progress = client.handle_reply(now, reply.result, &reply.payload)?;
        }
        let mut store = ServiceKeyStore::default();
        store.rotating.insert(
            msgr_auth::ENTITY_OSD,
            mon.rotating_secrets(msgr_auth::ENTITY_OSD, now),
        );
        let verifier = CephxAuthorizerVerifier::new(
            msgr_auth::ENTITY_OSD,
            Arc::new(std::sync::RwLock::new(store)),
            true,
            entropy(),
        );
        Ok(BenchAuth {
            server: Arc::new(ProviderAuthorizer::new().with_verifier(Arc::new(verifier))),
            client: Arc::new(ProviderAuthorizer::new().with_client(Box::new(client))),
            _monc: None,
        })
    }

    /// Against a remote server: the tickets of a mon client that authenticates as `-n` with
    /// `-c`/`-k`/`-m` (Ceph's options).
    pub async fn from_mons(args: &BenchArgs) -> anyhow::Result<BenchAuth> {
        let config = crate::ceph_opts::mon_client_config(
            &args.name,
            args.conf.as_deref(),
            args.keyring.as_deref(),
            args.mon.as_deref(),
        )?;
        let monc = msgr_monc::MonClient::new(config).await?;
        monc.authenticate()
            .await
            .with_context(|| format!("authenticating as {}", args.name))?;
        let client = monc.authorizer();
        Ok(BenchAuth {
            server: Arc::new(ProviderAuthorizer::new()),
            client,
            _monc: Some(Arc::new(monc)),
        })
    }
}

impl Options {
    /// The options `args` ask for.
    pub async fn from_args(args: &BenchArgs) -> anyhow::Result<Options> {
        let server = match args.server.as_deref() {
            Some(text) => Some(crate::peer::resolve(text, ANSWER_TIMEOUT).await?),
            None => None,
        };
        let inject = msgr_core::InjectConfig {
            socket_failures: args.inject_socket_failures,
            delay_probability: args.inject_delay_probability,
            delay_max: args.inject_delay_max,
            seed: args.seed,
            ..msgr_core::InjectConfig::default()
        };
        // Against a remote server, cephx when any of -c/-k/-m is given: a mon client
        // authenticates first and lends the bench's messengers its authorizer.
        let auth = if server.is_some()
            && (args.conf.is_some() || args.keyring.is_some() || args.mon.is_some())
        {
            Some(BenchAuth::from_mons(args).await?)
        } else {
            None
        };
        Ok(Options {
            server,
            policy: args.policy,
            verify: args.verify,
            inject,
            crc_data: !args.no_crc_data,
            auth,
            v2: args.protocol == Some(super::ProtocolArg::V2),
            con_mode: args.con_mode.map(super::ConModeArg::mode),
            max_pending_bytes: args.max_pending_bytes.map(|n| n as u64),
        })
    }

    pub(super) fn timeout(&self) -> Duration {
        match self.policy {
            PolicyArg::Lossless => ANSWER_TIMEOUT,
            PolicyArg::Lossy => LOSSY_TIMEOUT,
        }
    }

    fn tune(&self) -> impl Fn(&mut MessengerConfig) + '_ {
        move |config: &mut MessengerConfig| {
            config.pipe.inject = self.inject.clone();
            config.pipe.crc.data = self.crc_data;
            config.bind_msgr2 = self.v2;
            if let Some(mode) = self.con_mode {
                config.pipe.con_modes.client = vec![mode];
            }
            if let Some(n) = self.max_pending_bytes {
                config.pipe.max_pending_bytes = n;
            }
        }
    }
}

/// Runs one case over the messenger.
pub async fn run(case: Case, limit: Limit, options: &Options) -> anyhow::Result<Outcome> {
    let (server, addr) = match options.server {
        Some(addr) => (None, addr),
        None => {
            let mode = match case.mode {
                Mode::Stream => ServeMode::Sink,
                Mode::Rr => ServeMode::Echo,
            };
            let policy = match options.policy {
                PolicyArg::Lossless => PolicyKind::StatefulServer,
                PolicyArg::Lossy => PolicyKind::StatelessServer,
            };
            let dispatcher = ServeDispatcher::new(mode, options.verify, false);
            let bind = SocketAddr::from(([127, 0, 0, 1], 0));
            let auth = options.auth.as_ref().map(|a| a.server.clone());
            let messenger = serve::start_server(
                bind,
                EntityName::osd(0),
                policy,
                dispatcher,
                options.tune(),
                auth,
            )
            .await?;
            let addr = messenger.addr();
            (Some(messenger), addr)
        }
    };
    let epoch = Instant::now();
    let ready = Arc::new(Barrier::new(case.jobs + 1));
    let filler = filler(case.size);
    let mut jobs = JoinSet::new();
    for _ in 0..case.jobs {
        let job = Job {
            case,
            limit,
            options: options.clone(),
            addr,
            epoch,
            filler: filler.clone(),
        };
        jobs.spawn(job.run(ready.clone()));
    }
    // Every job is connected and has made one round trip, or one failed (a refused
    // handshake ends its job at once), or the time is up.
    let came_up = tokio::select! {
        // The barrier first: once it opens, a short run (`--count 200`) can end before this
        // task is polled again, and an unbiased select then picked the ended job at random
        // and called it a job "ended before the run began".
        biased;
        _ = ready.wait() => Ok(()),
        Some(job) = jobs.join_next() => Err(match job {
            Ok(Err(e)) => e,
            Ok(Ok(_)) => anyhow::anyhow!("a msgr job ended before the run began"),
            Err(e) => e.into(),
        }),
        () = tokio::time::sleep(ANSWER_TIMEOUT) => Err(anyhow::anyhow!(
            "the msgr connections to {addr} did not come up within {ANSWER_TIMEOUT:?}"
        )),
    };
    if let Err(e) = came_up {
        jobs.abort_all();
        return Err(e);
    }
    // Each job times itself, from just before its first send to its last delivery; the
    // outcome spans them all (setup, handshakes and teardown are outside).
    let mut outcome = Outcome::default();
    while let Some(job) = jobs.join_next().await {
        outcome.add(job??);
    }
    if let Some(server) = server {
        server.shutdown();
        server.wait().await;
    }
    Ok(outcome)
}

/// One connection of a run, with its own client messenger.
struct Job {
    case: Case,
    limit: Limit,
    options: Options,
    addr: EntityAddr,
    epoch: Instant,
    filler: Bytes,
}

impl Job {
    async fn run(self, ready: Arc<Barrier>) -> anyhow::Result<JobResult> {
        let side = ClientSide::new(self.case.depth.max(1), self.options.verify, self.epoch);
        let messenger = start_client(&self.options, side.clone()).await?;
        let result = tokio::select! {
            result = self.drive(&messenger, &side, ready) => result,
            () = stalled(&messenger) => Err(anyhow::anyhow!(
                "no traffic with the msgr server at {} for {STALL:?} (did it stop?)",
                self.addr
            )),
        };
        messenger.shutdown();
        messenger.wait().await;
        result
    }

    async fn drive(
        &self,
        messenger: &Messenger,
        side: &Arc<ClientSide>,
        ready: Arc<Barrier>,
    ) -> anyhow::Result<JobResult> {
        let mut conn = messenger.connect_lazy(self.addr, EntityType::OSD)?;
        // One round trip before the clock starts: the handshake is not measured. A refused
        // handshake ends the job (and the run) as soon as the peer answers.
        let refusal_conn = conn.clone();
        let warm_up = async {
            self.send(messenger, &mut conn, end_message(0)).await?;
            side.wait_end(self.options.timeout())
                .await
                .with_context(|| format!("no answer from the msgr server at {}", self.addr))
        };
        tokio::select! {
            warmed = warm_up => warmed?,
            refusal = crate::peer::refused(&refusal_conn) => return Err(refusal),
        }
        side.reset();
        ready.wait().await;
        if self.case.mode == Mode::Rr && self.options.policy == PolicyArg::Lossless {
            return self.pump(conn, side).await;
        }
        let started = Instant::now();
        let verify = self.options.verify;
        let mut stopper = Stopper::new(self.limit, self.case.size);
        let mut seq = 0;
        loop {
            if self.case.mode == Mode::Rr && !side.take_window(self.options.timeout()).await {
                if self.options.policy == PolicyArg::Lossless {
                    bail!(
                        "no echo for {:?} from {} (is it serving in echo mode?)",
                        self.options.timeout(),
                        self.addr
                    );
                }
                break;
            }
            if stopper.done(seq) {
                break;
            }
            if self.case.mode == Mode::Rr {
                side.stamp(seq);
            }
            // `conn.send` straight in the loop: a wrapping async fn would move each message
            // once more (callgrind: ~400 instructions per 64-byte message).
            if let Err(e) = conn.send(data_message(seq, &self.filler, verify)).await {
                self.send_failed(messenger, &mut conn, e)?;
            }
            seq += 1;
        }
        // A lossy session may have lost the end marker or its answer: ask again, on a new
        // session if need be (the server keys its counts by our address, not the session).
        let tries = match self.options.policy {
            PolicyArg::Lossless => 1,
            PolicyArg::Lossy => 3,
        };
        let mut answered = false;
        for _ in 0..tries {
            if !conn.is_connected() {
                conn = messenger.connect_lazy(self.addr, EntityType::OSD)?;
            }
            self.send(messenger, &mut conn, end_message(seq)).await?;
            if side.wait_end(self.options.timeout()).await.is_ok() {
                answered = true;
                break;
            }
        }
        if !answered && self.options.policy == PolicyArg::Lossless {
            bail!(
                "the msgr server at {} did not answer the end of the run",
                self.addr
            );
        }
        let integrity = side.integrity(seq, self.case.mode);
        let rtt = (self.case.mode == Mode::Rr).then(|| side.histogram());
        let stats = conn.stats();
        Ok(JobResult {
            messages: seq,
            integrity,
            rtt,
            session: Some(SessionCounts {
                faults: stats.faults,
                reconnects: stats.reconnects,
                resends: stats.resends,
            }),
            started,
            ended: side.ended(self.case.mode),
        })
    }

    /// An rr run driven from the client's dispatcher: each echo sends the next message
    /// straight from fast dispatch, as a server replies, so no task handoff on the client side
    /// is added to the messenger's round trip. This task only primes the window and waits.
    async fn pump(&self, conn: Connection, side: &Arc<ClientSide>) -> anyhow::Result<JobResult> {
        let started = Instant::now();
        side.start_pump(Pump {
            conn: conn.clone(),
            filler: self.filler.clone(),
            stopper: Stopper::new(self.limit, self.case.size),
            next: 0,
            finished: false,
        });
        for _ in 0..self.case.depth.max(1) {
            side.advance();
        }
        // A run may last long; `stalled` (in `run`) ends it if the server stops answering.
        while side.wait_end(ANSWER_TIMEOUT).await.is_err() {}
        let sent = side.pumped();
        let stats = conn.stats();
        Ok(JobResult {
            messages: sent,
            integrity: side.integrity(sent, Mode::Rr),
            rtt: Some(side.histogram()),
            session: Some(SessionCounts {
                faults: stats.faults,
                reconnects: stats.reconnects,
                resends: stats.resends,
            }),
            started,
            ended: side.ended(Mode::Rr),
        })
    }

    /// Sends; when a lossy session was reset, the message is lost (the counts say so) and the
    /// next one goes over a new session.
    async fn send(
        &self,
        messenger: &Messenger,
        conn: &mut Connection,
        msg: Message,
    ) -> anyhow::Result<()> {
        match conn.send(msg).await {
            Ok(()) => Ok(()),
            Err(e) => self.send_failed(messenger, conn, e),
        }
    }

    /// A send failed: on a lossy session the message is lost and the next one goes over a new
    /// session; on a lossless one the run fails.
    fn send_failed(
        &self,
        messenger: &Messenger,
        conn: &mut Connection,
        e: msgr_core::SendError,
    ) -> anyhow::Result<()> {
        if self.options.policy == PolicyArg::Lossy {
            *conn = messenger.connect_lazy(self.addr, EntityType::OSD)?;
            return Ok(());
        }
        Err(e).with_context(|| format!("sending to {}", self.addr))
    }
}

/// Resolves once `messenger` has moved no message, byte or ACK for [`STALL`].
async fn stalled(messenger: &Messenger) {
    let mut last = None;
    let mut since = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let t = messenger.stats().total;
        let now = Some((t.msgs_in, t.msgs_out, t.bytes_out, t.acks_in));
        if now != last {
            last = now;
            since = Instant::now();
        } else if since.elapsed() >= STALL {
            return;
        }
    }
}

/// Zeros that every small message's filler is a slice of.
static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];

/// The data segment of every message of a case: `len` zero bytes. Up to 64 KiB a slice of a
/// static buffer, whose clone and drop touch no reference count; larger ones one shared
/// buffer. Each message's data is a clone of it, dropped when the peer's ACK releases the
/// message, mostly on another worker than the sender's: with a shared buffer the sender's
/// increments and the releaser's decrements of its one count fought over one cache line for
/// every message (`shared_clone` and `shared_drop` 3.3 % of a 64 B stream's CPU), a cost of
/// the bench's own, not of the messenger's.
fn filler(len: usize) -> Bytes {
    match ZEROS.get(..len) {
        Some(zeros) => Bytes::from_static(zeros),
        None => Bytes::from(vec![0u8; len]),
    }
}

/// A bench data message: its sequence number in the header's `tid` (as a Ceph client numbers
/// its ops), the filler (`size` bytes) as data, no front.
///
/// Nothing in it is allocated or reference-counted per message: the filler is a slice of a
/// static buffer. The sequence number went in a 16-byte front before, each a slice of a
/// shared 64 KiB chunk: the sender took a reference on the chunk's one count per message
/// and the peer's ACK, on the other worker, dropped it, so both fought over one cache line
/// for every message (perf, a 64-byte stream: 3 % of the process's time in those two
/// instructions), a cost of the bench's own. The send time of a round trip stays with the
/// client ([`Stamps`]), as a Ceph client keeps its ops' start times by `tid`.
pub(super) fn data_message(seq: u64, filler: &Bytes, verify: bool) -> Message {
    let data = if verify {
        let mut data = vec![0u8; filler.len()];
        payload::fill(&mut data, seq);
        Bytes::from(data)
    } else {
        filler.clone()
    };
    // Built whole, as `Message::new(..).with_data(..)` builds it: through the builder the
    // 184-byte message was moved once more and its empty data segment dropped (callgrind:
    // `data_message` 135 → 125 instructions per message).
    Message {
        header: MsgHeader {
            ty: MSG_BENCH_DATA,
            priority: PRIO_DEFAULT,
            version: 1,
            tid: seq,
            ..MsgHeader::default()
        },
        front: Bytes::new(),
        middle: Bytes::new(),
        data,
        footer: MsgFooter::default(),
    }
}

/// The end marker of a job that sent `sent` messages (the count in its `tid`).
pub(super) fn end_message(sent: u64) -> Message {
    let mut msg = Message::new(MSG_BENCH_END, Bytes::new());
    msg.header.tid = sent;
    msg
}

/// The send times of a client's requests in flight, by sequence number: a ring of
/// `(seq, stamp)` slots, one per place in the rr window (rounded up to a power of two), so
/// recording and looking up are an index each. An echo whose slot holds another sequence
/// number (a lossy session's late echo, its slot reused) is not timed.
#[derive(Debug)]
pub(super) struct Stamps {
    slots: Vec<(u64, u64)>,
    mask: usize,
}

impl Stamps {
    /// Room for `depth` requests in flight.
    pub(super) fn new(depth: usize) -> Self {
        let n = depth.max(1).next_power_of_two();
        Stamps {
            slots: vec![(u64::MAX, 0); n],
            mask: n - 1,
        }
    }

    /// Request `seq` was sent at `stamp` (nanoseconds since the run's epoch).
    pub(super) fn record(&mut self, seq: u64, stamp: u64) {
        if let Some(slot) = self.slots.get_mut(seq as usize & self.mask) {
            *slot = (seq, stamp);
        }
    }

    /// The send time of request `seq`, if its slot still holds it (taken: a duplicated echo
    /// is not timed twice).
    pub(super) fn take(&mut self, seq: u64) -> Option<u64> {
        let slot = self.slots.get_mut(seq as usize & self.mask)?;
        if slot.0 != seq {
            return None;
        }
        slot.0 = u64::MAX;
        Some(slot.1)
    }
}

pub(super) async fn start_client(
    options: &Options,
    side: Arc<ClientSide>,
) -> anyhow::Result<Messenger> {
    let kind = match options.policy {
        PolicyArg::Lossless => PolicyKind::LosslessClient,
        PolicyArg::Lossy => PolicyKind::LossyClient,
    };
    let mut config = MessengerConfig {
        default_policy: PolicyConfig::new(kind),
        ..MessengerConfig::default()
    };
    (options.tune())(&mut config);
    // A client listens for nobody, as Ceph's clients (no port, one descriptor fewer).
    let mut builder = Messenger::builder(EntityName::client(-1))
        .config(config)
        .no_listener()
        .dispatcher(side);
    if let Some(auth) = &options.auth {
        builder = builder.authorizer(auth.client.clone());
    }
    builder.start().await.context("starting a client messenger")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A data message carries its seq in the header's `tid` and the filler as its data, no
    /// front: the message `Message::new(..).with_data(..)` builds, field for field; the
    /// filler of a small case is shared with a static buffer (no allocation per message).
    #[test]
    fn data_messages_carry_their_seq_in_the_tid_and_the_filler_as_data() {
        let filler = filler(64);
        assert_eq!(filler.len(), 64);
        for seq in [0u64, 1, 4_097, u64::MAX - 1] {
            let m = data_message(seq, &filler, false);
            assert_eq!(m.header.tid, seq);
            assert_eq!(m.header.ty, MSG_BENCH_DATA);
            assert!(m.front.is_empty());
            assert_eq!(m.data, filler);
            assert_eq!(
                m.data.as_ptr(),
                filler.as_ptr(),
                "the filler is shared, not copied"
            );
            let mut built = Message::new(MSG_BENCH_DATA, Bytes::new()).with_data(filler.clone());
            built.header.tid = seq;
            assert_eq!(m, built);
        }
        assert_eq!(end_message(17).header.tid, 17);
        assert_eq!(end_message(17).header.ty, MSG_BENCH_END);
    }

    /// The send times ring: a request's stamp is found by its seq once; a slot reused by a
    /// later request (one window further) no longer answers for the earlier one.
    #[test]
    fn stamps_are_found_by_seq_once_and_lost_when_their_slot_is_reused() {
        let mut stamps = Stamps::new(3);
        for seq in 0..4 {
            stamps.record(seq, 100 + seq);
        }
        assert_eq!(stamps.take(2), Some(102));
        assert_eq!(stamps.take(2), None, "taken once");
        stamps.record(4, 104);
        assert_eq!(stamps.take(0), None, "slot 0 now holds seq 4");
        assert_eq!(stamps.take(4), Some(104));
        assert_eq!(stamps.take(3), Some(103));
        assert_eq!(stamps.take(9), None, "never recorded");
        let mut one = Stamps::new(0);
        one.record(7, 1);
        assert_eq!(one.take(7), Some(1));
    }

    /// With `--verify` the data carries the message's own pattern.
    #[test]
    fn verified_data_carries_the_pattern_of_its_seq() {
        let filler = Bytes::from_static(&[0u8; 100]);
        let m = data_message(5, &filler, true);
        assert!(payload::check(&m.data, 5));
        assert!(!payload::check(&m.data, 6));
    }

    /// `--max-pending-bytes` sets the budget of every messenger the bench builds (the
    /// embedded server's and each client's go through `tune`); without it, the default.
    #[test]
    fn max_pending_bytes_reaches_the_messenger_config() {
        let mut options = Options {
            server: None,
            policy: PolicyArg::Lossless,
            verify: false,
            inject: msgr_core::InjectConfig::default(),
            crc_data: true,
            auth: None,
            v2: false,
            con_mode: None,
            max_pending_bytes: Some(16 << 20),
        };
        let mut config = MessengerConfig::default();
        (options.tune())(&mut config);
        assert_eq!(config.pipe.max_pending_bytes, 16 << 20);
        options.max_pending_bytes = None;
        let mut config = MessengerConfig::default();
        (options.tune())(&mut config);
        assert_eq!(
            config.pipe.max_pending_bytes,
            MessengerConfig::default().pipe.max_pending_bytes
        );
    }
}
