//! Interoperability with real Ceph (issue 6, items 3-5): our [`Messenger`] against a real `ceph-mon`, the real
//! `ceph` command-line client against our Messenger, and `msgr ping` against a real `ceph-mon`.
//!
//! Each test starts what it needs (its own mon on its own port), so they run in parallel. Without Ceph on the PATH
//! they print why and pass, unless `MSGR_REQUIRE_CEPH` is set (as `.ci/run` does), which makes that a failure.
//! Nothing here sleeps to pass: every wait is on a dispatcher event, a message or a process, bounded by [`WAIT`].
//!
//! | test | our side | peer |
//! |---|---|---|
//! | [`connector_lossy_client_talks_to_mon`] | `client.-1`, lossy client | `ceph-mon` (auth none) |
//! | [`acceptor_receives_mauth_from_ceph_cli`] | `mon.0` (nonce 0), stateless server | `ceph -m v1:IP:PORT status` |
//! | [`acceptor_receives_mauth_after_msgr2_probe`] | `mon.0` (nonce 0), stateless server | `ceph -m IP:PORT status` |
//! | [`msgr_ping_against_mon`] | the `msgr` binary, `ping --peer-type mon` | `ceph-mon` |
//! | [`msgr_ping_against_mon_default_peer_type`] | `msgr ping`, as the issue writes it | `ceph-mon` |
//! | [`client_renamed_after_auth_talks_to_mon`] | `client.-1`, then `client.<global id>` (`set_name`) | `ceph-mon` |

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use bytes::Bytes;
use msgr_core::{ConnId, ConnState, Connection, Messenger, MessengerConfig, Policy};
use msgr_pipe::Step;
use msgr_tests::ceph::{self, CephMon};
use msgr_tests::ceph_msgs::{
    AuthNegotiation, Fsid, MAuth, MAuthReply, MMonCommand, MMonCommandAck, MPing, PaxosPrefix,
    AUTH_NONE, AUTH_UNKNOWN, ENTITY_TYPE_CLIENT,
};
use msgr_tests::fixture::{Ev, Recorder};
use msgr_tests::steps::Script;
use msgr_wire::{
    features, CrcFlags, EntityAddr, EntityName, EntityType, Message, Tag, Timespec, FOOTER_COMPLETE,
};

/// Bound of every wait on an event, a message or a process (generous for loaded CI machines; never spent when
/// things work).
const WAIT: Duration = Duration::from_secs(20);

/// `CEPH_MSG_MON_MAP`: what the mon sends after a successful auth to a client with monmap epoch 0.
const MSG_MON_MAP: u16 = 4;

/// The feature bits Pacific 16.2's ceph-mon puts in its SEQ/READY reply (its full supported set, spec §9.17), as
/// seen on Debian's 16.2.15.
const MON_FEATURES: u64 = 0x3f01_cfbd_fffd_ffff;

/// The first MAuth of `client.admin`, auth none (spec §8.2).
fn mauth() -> Message {
    Message::new(MAuth::TYPE, MAuth::initial_none("admin").to_front())
        .with_version(MAuth::VERSION, MAuth::VERSION)
}

/// Decodes the MAuthReply and checks it is auth none's success; returns the global id.
fn auth_success(reply: &Message) -> anyhow::Result<u64> {
    let body = MAuthReply::decode(&mut reply.front.clone())?;
    ensure!(
        body.result == 0 && body.protocol == AUTH_NONE && body.global_id > 0,
        "MAuthReply {body:?}"
    );
    ensure!(
        body.result_bl.is_empty(),
        "auth none has no result_bl: {body:?}"
    );
    Ok(body.global_id)
}

/// A client messenger on loopback with the lossy client policy, as librados' MonClient.
async fn lossy_client(inbox: Arc<Recorder>, steps: Arc<Script>) -> anyhow::Result<Messenger> {
    Ok(Messenger::builder(EntityName::client(-1))
        .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .default_policy(Policy::lossy_client(0))
        .dispatcher(inbox)
        .handshake_hook(steps)
        .start()
        .await?)
}

/// Stops `m` and checks it stopped clean (msgr-core's checked stop).
async fn stop(m: &Messenger) -> anyhow::Result<()> {
    msgr_core::testing::stop_checked(m, WAIT)
        .await
        .map_err(anyhow::Error::msg)
}

/// Item 3: our lossy client against a real mon, from the handshake to a restart of the mon under the session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connector_lossy_client_talks_to_mon() -> anyhow::Result<()> {
    let Some(mut mon) = CephMon::start()? else {
        return Ok(());
    };
    connector_session(&mut mon)
        .await
        .with_context(|| format!("the mon's output:\n{}", mon.output_tail()))
}

async fn connector_session(mon: &mut CephMon) -> anyhow::Result<()> {
    let started = Instant::now();
    let fsid: Fsid = mon.fsid().parse()?;
    let inbox = Recorder::inbox(EntityType::CLIENT);
    let steps = Script::new();
    let client = lossy_client(inbox.clone(), steps.clone()).await?;
    let mon_addr = EntityAddr::new(mon.addr(), 0);

    // The handshake: the mon answers SEQ (we advertise RECONNECT_SEQ, spec §9.4) with its full feature set.
    let conn = client.connect_lazy(mon_addr, EntityType::MON)?;
    inbox.event(conn.id(), Ev::Connect).await?;
    assert_eq!(conn.state(), ConnState::Open);
    let hs = steps.steps_of(conn.id());
    assert!(
        hs.contains(&Step::ReplyReceived(Tag::Seq as u8)) && hs.contains(&Step::SeqExchanged),
        "no SEQ reply from the mon: {hs:?}"
    );
    assert!(
        !hs.contains(&Step::ReplyReceived(Tag::Ready as u8)),
        "{hs:?}"
    );
    let ours = client.config().features_supported;
    assert_eq!(
        conn.features(),
        ours & MON_FEATURES,
        "negotiated {:#x}, ours {ours:#x}",
        conn.features()
    );
    for bit in [
        features::NOSRCADDR,
        features::RECONNECT_SEQ,
        features::MSG_AUTH,
        features::MSGR_KEEPALIVE2,
    ] {
        assert_ne!(conn.features() & bit, 0, "bit {bit:#x} not negotiated");
    }
    assert!(
        conn.session().is_some_and(|s| s.is_lossy()),
        "the mon's reply says LOSSY"
    );
    eprintln!("handshake after {:.2?}: steps {hs:?}", started.elapsed());

    // KEEPALIVE2 comes back with our stamp; MPing is answered (before authentication) with a JSON string. The mon
    // acks the keepalive as it reads it, and answers the ping later through its dispatcher, so once the ping reply
    // is here the keepalive ack is too.
    let before = Timespec::now();
    assert_eq!(conn.last_keepalive_ack(), None);
    conn.send_keepalive();
    conn.send(Message::new(MPing::TYPE, Bytes::new())).await?;
    let pong = inbox.message(conn.id(), MPing::TYPE, 0).await?;
    let after = Timespec::now();
    let echoed = conn
        .last_keepalive_ack()
        .context("no KEEPALIVE2_ACK before the ping reply")?;
    assert!(
        before <= echoed && echoed <= after,
        "KEEPALIVE2_ACK echoes {echoed:?}, we sent between {before:?} and {after:?}"
    );
    let text = MPing::decode(&mut pong.front.clone())?.text()?;
    let status: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("ping reply is not JSON: {text}"))?;
    assert_eq!(
        status["mon_status"]["monmap"]["fsid"].as_str(),
        Some(mon.fsid()),
        "{text}"
    );
    assert_eq!(pong.header.src, EntityName::mon(0));

    // MAuth (auth none) gets MAuthReply result 0 and a new global id, then the monmap.
    conn.send(mauth()).await?;
    let reply = inbox.message(conn.id(), MAuthReply::TYPE, 0).await?;
    let global_id = auth_success(&reply)?;
    inbox.message(conn.id(), MSG_MON_MAP, 0).await?;
    eprintln!("global id {global_id} after {:.2?}", started.elapsed());

    // MMonCommand status: r 0 and the cluster's fsid in the JSON output (data segment).
    let cmd = MMonCommand::new(fsid, r#"{"prefix": "status", "format": "json"}"#);
    conn.send(
        Message::new(MMonCommand::TYPE, cmd.to_front())
            .with_version(MMonCommand::VERSION, MMonCommand::VERSION)
            .with_tid(1),
    )
    .await?;
    let ack = inbox.message(conn.id(), MMonCommandAck::TYPE, 0).await?;
    assert_eq!(ack.header.tid, 1, "the ack carries the command's tid");
    let ack = MMonCommandAck::decode(&mut ack.front.clone(), ack.data.clone())?;
    assert_eq!(ack.r, 0, "status failed: {}", ack.rs);
    assert_eq!(ack.cmd, cmd.cmd);
    let out: serde_json::Value = serde_json::from_slice(&ack.data)
        .with_context(|| format!("status output: {:?}", String::from_utf8_lossy(&ack.data)))?;
    assert_eq!(out["fsid"].as_str(), Some(mon.fsid()));
    eprintln!("status answered after {:.2?}", started.elapsed());

    // Restart under the open session: exactly one reset, and the next send reconnects and works.
    let restart = Instant::now();
    tokio::task::block_in_place(|| mon.restart())?;
    inbox.event(conn.id(), Ev::Reset).await?;
    tokio::time::timeout(WAIT, conn.closed())
        .await
        .context("reset session did not end")?;
    assert_eq!(conn.state(), ConnState::Closed);
    assert!(
        conn.send(mauth()).await.is_err(),
        "a reset lossy session stays closed"
    );
    client.send_to(mon_addr, EntityType::MON, mauth()).await?;
    let fresh = client
        .connection(&mon_addr)
        .context("send_to made no session")?;
    assert_ne!(fresh.id(), conn.id(), "a new session");
    inbox.event(fresh.id(), Ev::Connect).await?;
    let reply = inbox.message(fresh.id(), MAuthReply::TYPE, 0).await?;
    let second_id = auth_success(&reply)?;
    eprintln!(
        "after restart ({:.2?}): global id {second_id}; whole test {:.2?}",
        restart.elapsed(),
        started.elapsed()
    );
    // Lossy Async sessions carry no ACK frames (spec §9.6): the mon sends none.
    let stats = conn.stats();
    eprintln!("first session: {stats:?}");
    assert_eq!(stats.acks_in, 0, "{stats:?}");
    {
        let log = inbox.seen();
        let types: Vec<(ConnId, u16)> = log.msgs.iter().map(|(c, m)| (*c, m.header.ty)).collect();
        eprintln!("received (conn, type): {types:?}");
        assert_eq!(log.count(Ev::Reset), 1, "events {:?}", log.events);
        assert_eq!(log.count(Ev::RemoteReset), 0, "events {:?}", log.events);
        assert_eq!(log.count(Ev::Refused), 0, "events {:?}", log.events);
        assert_eq!(log.count(Ev::Connect), 2, "events {:?}", log.events);
        // Every message from the mon: CRCs valid, sent by mon.0, and each session's seqs start at 1 with no gap
        // (spec §8.5 step 7).
        for session in [conn.id(), fresh.id()] {
            let msgs: Vec<&Message> = log
                .msgs
                .iter()
                .filter(|(c, _)| *c == session)
                .map(|(_, m)| m)
                .collect();
            for (i, m) in msgs.iter().enumerate() {
                let h = &m.header;
                assert_eq!(h.seq, i as u64 + 1, "session {session}: {types:?}");
                assert_eq!(h.src, EntityName::mon(0), "{h:?}");
                m.verify_crcs(CrcFlags::default())
                    .with_context(|| format!("CRCs of {h:?}"))?;
            }
        }
    }
    stop(&client).await
}

/// Item 4: the real `ceph` client connects to our Messenger: its handshake completes, and its MAuth arrives intact.
/// With `v1:` in `-m` the client speaks msgr v1 at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acceptor_receives_mauth_from_ceph_cli() -> anyhow::Result<()> {
    ceph_cli_sends_mauth(true).await
}

/// As [`acceptor_receives_mauth_from_ceph_cli`] with an untyped `-m IP:PORT`, as the issue writes it: the client
/// also tries msgr v2 there, reads our v1 banner ("is using msgr V1 protocol"), and its v1 connection must still
/// get through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acceptor_receives_mauth_after_msgr2_probe() -> anyhow::Result<()> {
    ceph_cli_sends_mauth(false).await
}

async fn ceph_cli_sends_mauth(v1_prefix: bool) -> anyhow::Result<()> {
    if !ceph::ceph_tools_present(&["ceph"])? {
        return Ok(());
    }
    let started = Instant::now();
    let inbox = Recorder::inbox(EntityType::CLIENT);
    let steps = Script::new();
    // Nonce 0, as a mon's address has: the client checks the nonce we announce against the one it dialled, 0 for
    // `-m IP:PORT` (spec §9.22).
    let config = MessengerConfig {
        nonce: Some(0),
        ..MessengerConfig::default()
    };
    let server = Messenger::builder(EntityName::mon(0))
        .config(config)
        .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .default_policy(Policy::stateless_server(0))
        .dispatcher(inbox.clone())
        .handshake_hook(steps.clone())
        .start()
        .await?;
    let ours = server.addr();
    let dir = tempfile::Builder::new()
        .prefix("msgr-ceph-cli-")
        .tempdir()?;
    let conf = dir.path().join("ceph.conf");
    ceph::write_conf(&conf, dir.path(), &ceph::random_fsid(), ours.addr)?;
    assert_eq!(ours.nonce, 0, "{ours}");
    // `v1:` makes the client speak v1 at once; without it the client also tries msgr v2 at the address.
    let target = if v1_prefix {
        format!("v1:{}", ours.addr)
    } else {
        ours.addr.to_string()
    };
    let mut cli = ceph::ceph_cli_command_at(&conf, &target, &["status"])
        .spawn()
        .context("spawning ceph")?;

    let (conn, msg) = inbox
        .wait_for("MAuth from the ceph client", |log| {
            log.msgs
                .iter()
                .find(|(_, m)| m.header.ty == MAuth::TYPE)
                .cloned()
        })
        .await?;
    eprintln!(
        "MAuth from `ceph -m {target}` after {:.2?}",
        started.elapsed()
    );
    let ours_conn = inbox
        .seen()
        .conns
        .get(&conn)
        .cloned()
        .context("no connection for the MAuth")?;
    // MonClient sends a KEEPALIVE2 before the MAuth (spec §8.2), on the same socket.
    assert!(
        ours_conn.last_keepalive().is_some(),
        "no keepalive before MAuth"
    );
    assert_eq!(ours_conn.peer_type(), EntityType::CLIENT);
    assert_eq!(ours_conn.state(), ConnState::Open);
    let negotiated = ours_conn.features();
    for bit in [
        features::NOSRCADDR,
        features::RECONNECT_SEQ,
        features::MSG_AUTH,
        features::MSGR_KEEPALIVE2,
    ] {
        assert_ne!(
            negotiated & bit,
            0,
            "bit {bit:#x} not negotiated: {negotiated:#x}"
        );
    }
    let _ = cli.start_kill();
    let status = tokio::time::timeout(WAIT, cli.wait()).await??;
    eprintln!("ceph client stopped ({status}); negotiated features {negotiated:#x}");
    // Its socket closed: the lossy (stateless server) session ends with a reset, as Ceph's does.
    inbox.event(conn, Ev::Reset).await?;

    // The client's handshake completed on its side too: Ceph's Async connector keeps queued messages (the MAuth)
    // until its session is open. On ours: the client's connect, our reply, the accept event.
    let hs = steps.steps_of(conn);
    assert!(
        hs.contains(&Step::ConnectReceived) && hs.contains(&Step::Ready),
        "steps {hs:?} (all: {:?})",
        steps.history()
    );
    assert!(
        hs.contains(&Step::ReplySent(Tag::Seq as u8))
            || hs.contains(&Step::ReplySent(Tag::Ready as u8)),
        "{hs:?}"
    );
    inbox.event(conn, Ev::Accept).await?;
    eprintln!("our acceptor's handshake steps: {hs:?}");

    // The header (spec §8.2): version 1, compat 1, priority 127, tid 0, first message, from client.-1; every CRC
    // valid (the messenger delivers nothing else, and we check again) and a complete footer.
    let h = &msg.header;
    assert_eq!(
        (h.version, h.compat_version, h.priority, h.tid, h.seq),
        (1, 1, 127, 0, 1),
        "{h:?}"
    );
    assert_eq!(h.src, EntityName::client(-1));
    assert_eq!(h.front_len as usize, msg.front.len());
    assert!((msg.middle.is_empty() && msg.data.is_empty()), "{msg:?}");
    msg.verify_crcs(CrcFlags::default())
        .context("CRCs of the delivered MAuth")?;
    assert_ne!(h.crc, 0, "the header CRC was sent");
    assert_eq!(msg.footer.flags & FOOTER_COMPLETE, FOOTER_COMPLETE);

    // The front: the Paxos prefix, protocol 0 (negotiate), auth none offered by client.admin, no global id yet.
    let body = MAuth::decode(&mut msg.front.clone())?;
    assert_eq!(body.paxos, PaxosPrefix::default());
    assert_eq!(body.protocol, AUTH_UNKNOWN);
    assert_eq!(body.monmap_epoch, 0);
    assert_eq!(
        body.negotiation()?,
        AuthNegotiation {
            supported: vec![AUTH_NONE],
            entity_type: ENTITY_TYPE_CLIENT,
            entity_id: "admin".into(),
            global_id: 0,
        }
    );
    assert_eq!(
        msg.front,
        MAuth::initial_none("admin").to_front(),
        "spec §8.6 front"
    );
    stop(&server).await
}

/// Where `cargo test` put the `msgr` binary: next to this test's `deps` folder (`target/debug/msgr`).
fn msgr_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .context("test executable has no grandparent folder")?;
    Ok(dir.join(format!("msgr{}", std::env::consts::EXE_SUFFIX)))
}

/// Item 5 with the peer type given: `msgr ping v1:127.0.0.1:PORT --count 5 --peer-type mon` against the mon: exit
/// 0 and five round trips.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn msgr_ping_against_mon() -> anyhow::Result<()> {
    msgr_ping(&["--peer-type", "mon"]).await
}

/// Item 5 verbatim: `msgr ping v1:127.0.0.1:PORT --count 5` against a mon on a port other than 6789 (the peer type
/// is found by trying each one the mon may refuse with BADPROTOVER).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn msgr_ping_against_mon_default_peer_type() -> anyhow::Result<()> {
    msgr_ping(&[]).await
}

/// Runs `msgr ping v1:MON --count 5 EXTRA...` against a fresh mon and checks its output.
async fn msgr_ping(extra: &[&str]) -> anyhow::Result<()> {
    let bin = msgr_binary()?;
    if !bin.is_file() {
        ensure!(
            !ceph::ceph_required(),
            "{} missing but {} is set (build the workspace: cargo test --workspace)",
            bin.display(),
            ceph::REQUIRE_ENV
        );
        eprintln!(
            "skipped: {} not built (cargo test --workspace builds it)",
            bin.display()
        );
        return Ok(());
    }
    let Some(mon) = CephMon::start()? else {
        return Ok(());
    };
    let target = format!("v1:{}", mon.addr());
    let started = Instant::now();
    let child = tokio::process::Command::new(&bin)
        .args(["ping", &target, "--count", "5"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("spawning {}", bin.display()))?;
    let out = tokio::time::timeout(WAIT, child.wait_with_output())
        .await
        .context("msgr ping still running")??;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!(
        "msgr ping took {:.2?}:\n{stdout}{stderr}",
        started.elapsed()
    );
    ensure!(out.status.success(), "msgr ping failed with {}", out.status);
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines
            .first()
            .is_some_and(|l| l.starts_with(&format!("PING {target}"))),
        "{stdout}"
    );
    let replies: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.starts_with(&format!("keepalive2 reply from {target}")))
        .collect();
    assert_eq!(replies.len(), 5, "{stdout}");
    for (i, line) in replies.iter().enumerate() {
        assert!(line.contains(&format!(" seq={} time=", i + 1)), "{line}");
    }
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("5 sent, 5 received, 0% lost")),
        "{stdout}"
    );
    Ok(())
}

/// `Messenger::set_name` against a real mon, as MonClient does it: authenticate as `client.-1`, take the name the
/// MAuthReply's global id gives (`client.<global_id>`), and the mon goes on answering on the same session. The mon
/// names a session after the `src` of its first message (its audit log says `from='client.? ...'` for the first
/// session), so a second session, opened after the rename, shows that the new name is what goes on the wire:
/// the mon's audit log names it `client.<global_id>`. A change of entity type is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_renamed_after_auth_talks_to_mon() -> anyhow::Result<()> {
    let Some(mon) = CephMon::start()? else {
        return Ok(());
    };
    renamed_session(&mon)
        .await
        .with_context(|| format!("the mon's output:\n{}", mon.output_tail()))
}

/// Sends `status` with `tid` on `conn` and checks the mon's answer: r 0 and the cluster's fsid.
async fn status(
    mon: &CephMon,
    inbox: &Recorder,
    conn: &Connection,
    tid: u64,
) -> anyhow::Result<Message> {
    let cmd = MMonCommand::new(
        mon.fsid().parse()?,
        r#"{"prefix": "status", "format": "json"}"#,
    );
    conn.send(
        Message::new(MMonCommand::TYPE, cmd.to_front())
            .with_version(MMonCommand::VERSION, MMonCommand::VERSION)
            .with_tid(tid),
    )
    .await?;
    let msg = inbox.message(conn.id(), MMonCommandAck::TYPE, 0).await?;
    assert_eq!(msg.header.tid, tid, "the ack carries the command's tid");
    let ack = MMonCommandAck::decode(&mut msg.front.clone(), msg.data.clone())?;
    assert_eq!(ack.r, 0, "status failed: {}", ack.rs);
    let out: serde_json::Value = serde_json::from_slice(&ack.data)
        .with_context(|| format!("status output: {:?}", String::from_utf8_lossy(&ack.data)))?;
    assert_eq!(out["fsid"].as_str(), Some(mon.fsid()));
    Ok(msg)
}

async fn renamed_session(mon: &CephMon) -> anyhow::Result<()> {
    let started = Instant::now();
    let inbox = Recorder::inbox(EntityType::CLIENT);
    let client = lossy_client(inbox.clone(), Script::new()).await?;
    assert_eq!(client.name(), EntityName::client(-1));
    let mon_addr = EntityAddr::new(mon.addr(), 0);
    let conn = client.connect_lazy(mon_addr, EntityType::MON)?;

    // MAuth as client.-1: the reply carries our global id, which becomes our name.
    conn.send(mauth()).await?;
    let reply = inbox.message(conn.id(), MAuthReply::TYPE, 0).await?;
    let global_id = auth_success(&reply)?;
    let renamed = EntityName::client(i64::try_from(global_id)?);
    client.set_name(renamed)?;
    assert_eq!(client.name(), renamed);
    let refused = client.set_name(EntityName::mon(0));
    assert!(
        matches!(refused, Err(msgr_core::CoreError::NameType { .. })),
        "{refused:?}"
    );
    assert_eq!(client.name(), renamed, "a refused rename changes nothing");
    eprintln!("renamed to {renamed} after {:.2?}", started.elapsed());

    // The same session goes on: the mon answers a request we sent as client.<global_id>.
    let ack = status(mon, &inbox, &conn, 1).await?;
    assert_eq!(ack.header.src, EntityName::mon(0));
    assert_eq!(conn.state(), ConnState::Open);
    {
        let log = inbox.seen();
        assert_eq!(log.count(Ev::Reset), 0, "events {:?}", log.events);
        assert_eq!(log.count(Ev::RemoteReset), 0, "events {:?}", log.events);
    }

    // A new session: its first message (MAuth) already carries the new name, and the mon names the session so.
    ensure!(client.mark_down(&mon_addr), "no session to mark down");
    client.send_to(mon_addr, EntityType::MON, mauth()).await?;
    let fresh = client
        .connection(&mon_addr)
        .context("send_to made no session")?;
    assert_ne!(fresh.id(), conn.id(), "a new session");
    let reply = inbox.message(fresh.id(), MAuthReply::TYPE, 0).await?;
    auth_success(&reply)?;
    status(mon, &inbox, &fresh, 2).await?;
    // The mon writes its audit line ("from='NAME ADDR' ... dispatch") before it runs the command, through its
    // log thread: wait for it to reach the file.
    let audit = format!("from='{renamed} v1:");
    let deadline = Instant::now() + WAIT;
    loop {
        let log = std::fs::read_to_string(mon.log_path()).unwrap_or_default();
        if log.contains(&audit) {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "no {audit:?} in the mon's log within {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("the mon saw {renamed} after {:.2?}", started.elapsed());
    stop(&client).await
}
