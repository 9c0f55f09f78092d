//! msgr2.1 against a real ceph-mon (Pacific) that binds v2: msgr-pipe's sans-IO v2 connector
//! (`v2::connect`, mon mode) driven over a TCP socket, with auth none and cephx, in crc and
//! secure mode: banners, HELLO, the auth rounds, AUTH_SIGNATURE checked both ways (the mon
//! drops a peer whose signature is wrong), CLIENT_IDENT / SERVER_IDENT; then an MPing in a
//! MESSAGE frame, answered by the mon in the negotiated mode.
//!
//! Without Ceph on the PATH the tests print why and pass, unless `MSGR_REQUIRE_CEPH` is set.

use std::time::Duration;

use anyhow::{ensure, Context};
use bytes::{BufMut, BytesMut};
use msgr_auth::provider::{AuthClient, CephxClient, NoneClient};
use msgr_auth::{EntityName, Keyring, UTime, ENTITY_MON, ENTITY_OSD};
use msgr_pipe::v2::connect::{
    Connector, ConnectorConfig, Established, CON_MODE_CRC, CON_MODE_SECURE,
};
use msgr_pipe::v2::frame::{Frame, FrameLimits, Tag};
use msgr_tests::ceph::{CephMon, MonAuth};
use rand::SeedableRng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(30);

/// Connects and runs a fresh connector (from `make`) to SERVER_IDENT. A mon that has just won its election
/// closes sessions until its auth service is readable (a few hundred ms after it leads); like Ceph's MonClient,
/// which hunts, the client tries again then (every 50 ms, for at most [`WAIT`]). Any other failure is final.
async fn open(
    addr: std::net::SocketAddr,
    make: impl Fn() -> anyhow::Result<Connector>,
) -> anyhow::Result<(TcpStream, Established)> {
    let started = std::time::Instant::now();
    loop {
        let mut sock = TcpStream::connect(addr).await?;
        match handshake(&mut sock, make()?).await {
            Ok(est) => return Ok((sock, est)),
            Err(e)
                if e.to_string().contains("closed the connection") && started.elapsed() < WAIT =>
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Runs the connector to SERVER_IDENT over `sock`.
async fn handshake(sock: &mut TcpStream, mut c: Connector) -> anyhow::Result<Established> {
    let mut buf = vec![0u8; 64 << 10];
    loop {
        while let Some(out) = c.poll_transmit() {
            sock.write_all(&out).await?;
        }
        let n = tokio::time::timeout(WAIT, sock.read(&mut buf))
            .await
            .context("the mon answers")??;
        ensure!(n > 0, "the mon closed the connection ({c:?})");
        if c.handle_input(UTime::now(), &buf[..n])? {
            while let Some(out) = c.poll_transmit() {
                sock.write_all(&out).await?;
            }
            return c.finish().context("open");
        }
    }
}

fn config(mon: &CephMon, modes: Vec<u32>) -> anyhow::Result<ConnectorConfig> {
    Ok(ConnectorConfig {
        entity_type: msgr_wire::EntityType::CLIENT,
        peer: mon.v2_addr().context("a v2 mon")?,
        peer_nonce: 0,
        nonce: rand::random(),
        features_supported: msgr_wire::features::ALL_PACIFIC,
        features_required: 0,
        modes,
        global_seq: 1,
        client_cookie: rand::random::<u64>() | 1,
        limits: FrameLimits::default(),
        lossy: false,
        my_addr: None,
        resume: None,
    })
}

/// An MPing in a MESSAGE frame (ceph_msg_header2, no front).
fn ping(seq: u64) -> Frame {
    let mut h = BytesMut::new();
    h.put_u64_le(seq);
    h.put_u64_le(0); // tid
    h.put_u16_le(msgr_ceph::MPing::TYPE);
    h.put_u16_le(127); // priority
    h.put_u16_le(msgr_ceph::MPing::VERSION);
    h.put_u32_le(0); // data_pre_padding_len
    h.put_u16_le(0); // data_off
    h.put_u64_le(0); // ack_seq
    h.put_u8(0); // flags
    h.put_u16_le(1); // compat_version
    h.put_u16_le(0); // reserved
    Frame::control(Tag::Message, h.freeze())
}

/// Sends an MPing and waits for a MESSAGE from the mon (decoded in the session's mode).
async fn ping_pong(sock: &mut TcpStream, mut est: Established) -> anyhow::Result<Vec<Tag>> {
    let mut out = BytesMut::new();
    est.encoder.encode(&ping(1), &mut out);
    sock.write_all(&out).await?;
    let mut seen = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    let mut inbuf = std::mem::take(&mut est.leftover);
    loop {
        while let Some(f) = est.decoder.decode(&mut inbuf)? {
            seen.push(f.tag);
            if f.tag == Tag::Message {
                let ty = u16::from_le_bytes([f.segment(0)[16], f.segment(0)[17]]);
                if ty == msgr_ceph::MPing::TYPE {
                    return Ok(seen);
                }
            }
        }
        let n = tokio::time::timeout(WAIT, sock.read(&mut buf))
            .await
            .context("a reply to the ping")??;
        ensure!(n > 0, "the mon closed the connection after {seen:?}");
        inbuf.extend_from_slice(&buf[..n]);
    }
}

fn admin(mon: &CephMon) -> anyhow::Result<Box<dyn AuthClient>> {
    let ring = Keyring::load(&mon.admin_keyring().context("cephx")?)?;
    let name = EntityName::client("admin");
    let key = ring.key(&name).context("client.admin")?.clone();
    Ok(Box::new(CephxClient::new(
        name,
        key,
        ENTITY_MON | ENTITY_OSD,
        Box::new(rand::rngs::StdRng::from_entropy()),
    )))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_with_auth_none_in_crc_mode() -> anyhow::Result<()> {
    let Some(mon) = CephMon::start_v2(MonAuth::None)? else {
        return Ok(());
    };
    let _log = LogOnFailure(&mon);
    let (mut sock, est) = open(mon.v2_addr().context("v2")?, || {
        let auth = Box::new(NoneClient::new(EntityName::client("admin")));
        Ok(Connector::new(config(&mon, vec![CON_MODE_CRC])?, auth))
    })
    .await?;
    ensure!(est.con_mode == CON_MODE_CRC);
    ensure!(est.global_id > 0, "a global id: {}", est.global_id);
    ensure!(est.lossy, "a mon makes client sessions lossy");
    let seen = ping_pong(&mut sock, est).await?;
    eprintln!("auth none, crc: the mon answered the ping after {seen:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_with_cephx_in_crc_and_secure_mode() -> anyhow::Result<()> {
    let Some(mon) = CephMon::start_v2(MonAuth::Cephx)? else {
        return Ok(());
    };
    for mode in [CON_MODE_CRC, CON_MODE_SECURE] {
        let (mut sock, est) = open(mon.v2_addr().context("v2")?, || {
            Ok(Connector::new(config(&mon, vec![mode])?, admin(&mon)?))
        })
        .await?;
        ensure!(est.con_mode == mode, "mode {} for {mode}", est.con_mode);
        ensure!(est.global_id > 0);
        let seen = ping_pong(&mut sock, est).await?;
        eprintln!("cephx, mode {mode}: the mon answered the ping after {seen:?}");
    }
    // A wrong key: AUTH_BAD_METHOD with −13.
    let r = open(mon.v2_addr().context("v2")?, || {
        let wrong = Box::new(CephxClient::new(
            EntityName::client("admin"),
            msgr_auth::CryptoKey::aes(rand::random()),
            ENTITY_MON,
            Box::new(rand::rngs::StdRng::from_entropy()),
        ));
        Ok(Connector::new(config(&mon, vec![CON_MODE_SECURE])?, wrong))
    })
    .await;
    let e = r.err().context("a wrong key is refused")?;
    ensure!(
        matches!(
            e.downcast_ref::<msgr_pipe::v2::connect::HandshakeError>(),
            Some(msgr_pipe::v2::connect::HandshakeError::AuthRefused { result: -13, .. })
        ),
        "{e:#}"
    );
    Ok(())
}

/// Prints the mon's log tail if the test fails.
struct LogOnFailure<'a>(&'a CephMon);

impl Drop for LogOnFailure<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() || std::env::var_os("MSGR_V2_LOG").is_some() {
            let log = std::fs::read_to_string(self.0.log_path()).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!(
                "mon log tail:\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
    }
}

/// Ceph's own `ceph` CLI against msgr-pipe's sans-IO v2 acceptor (mon role, cephx from a keyring with
/// client.admin's `key`) on a loopback socket, in `mode` (`crc` or `secure`), with `cli_key`: the tags the
/// acceptor saw after the handshake (the CLI's first requests), or the handshake error.
async fn ceph_cli_against_our_acceptor(
    key: &msgr_auth::CryptoKey,
    cli_key: &msgr_auth::CryptoKey,
    mode: &str,
) -> anyhow::Result<Result<Vec<u16>, msgr_pipe::v2::connect::HandshakeError>> {
    use msgr_pipe::v2::accept::{Acceptor, AcceptorConfig};
    let mut ring = Keyring::new();
    ring.insert(
        EntityName::client("admin"),
        msgr_auth::KeyringEntry {
            key: key.clone(),
            caps: Default::default(),
        },
    );
    let server = std::sync::Arc::new(msgr_auth::provider::CephxAuthServer::new(
        ring,
        msgr_auth::provider::TicketTtls::default(),
        4300,
        Box::new(rand::rngs::StdRng::from_entropy()),
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let dir = tempfile::tempdir()?;
    let keyring = dir.path().join("cli.keyring");
    let mut cli_ring = Keyring::new();
    cli_ring.insert(
        EntityName::client("admin"),
        msgr_auth::KeyringEntry {
            key: cli_key.clone(),
            caps: Default::default(),
        },
    );
    std::fs::write(&keyring, cli_ring.to_text())?;
    let conf = dir.path().join("ceph.conf");
    std::fs::write(
        &conf,
        format!(
            "[global]\nmon_host = v2:{addr}\nauth_client_required = cephx\nkeyring = {}\nlog_file = {}/client.log\nadmin_socket = \n",
            keyring.display(),
            dir.path().display()
        ),
    )?;
    let mut cli = tokio::process::Command::new("ceph")
        .arg("-c")
        .arg(&conf)
        .args([
            "--connect-timeout",
            "10",
            "--ms_mon_client_mode",
            mode,
            "status",
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let (mut sock, peer) = tokio::time::timeout(WAIT, listener.accept()).await??;
    let cfg = AcceptorConfig {
        entity_type: msgr_wire::EntityType::MON,
        global_id: 0,
        my_addrs: msgr_ceph::EntityAddrVec(vec![msgr_ceph::EntityAddr::v2(addr, 0)]),
        socket_peer: peer,
        features_supported: msgr_wire::features::ALL_PACIFIC,
        features_required: 0,
        allowed_modes: vec![CON_MODE_SECURE, CON_MODE_CRC],
        lossy: true,
        global_seq: 1,
        limits: FrameLimits::default(),
        decide_sessions: false,
    };
    let mut a = Acceptor::new(cfg, server);
    let mut buf = vec![0u8; 64 << 10];
    let result = loop {
        while let Some(out) = a.poll_transmit() {
            sock.write_all(&out).await?;
        }
        let n = tokio::time::timeout(WAIT, sock.read(&mut buf)).await??;
        ensure!(n > 0, "the CLI closed the connection ({a:?})");
        match a.handle_input(UTime::now(), &buf[..n]) {
            Ok(true) => break Ok(()),
            Ok(false) => {}
            Err(e) => break Err(e),
        }
    };
    while let Some(out) = a.poll_transmit() {
        sock.write_all(&out).await?;
    }
    if let Err(e) = result {
        let _ = cli.kill().await;
        return Ok(Err(e));
    }
    let mut acc = a.finish().context("open")?;
    let mut inbuf = std::mem::take(&mut acc.leftover);
    let mut types = Vec::new();
    while types.is_empty() {
        while let Some(f) = acc.decoder.decode(&mut inbuf)? {
            if f.tag == Tag::Message {
                types.push(u16::from_le_bytes([f.segment(0)[16], f.segment(0)[17]]));
            }
        }
        if !types.is_empty() {
            break;
        }
        let n = tokio::time::timeout(WAIT, sock.read(&mut buf)).await??;
        ensure!(n > 0, "the CLI closed the session before a request");
        inbuf.extend_from_slice(&buf[..n]);
    }
    let _ = cli.kill().await;
    Ok(Ok(types))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cephs_own_cli_authenticates_to_our_v2_acceptor_in_both_modes() -> anyhow::Result<()> {
    if !msgr_tests::ceph::ceph_tools_present(&["ceph"])? {
        return Ok(());
    }
    let key = msgr_auth::CryptoKey::aes(rand::random());
    for mode in ["crc", "secure"] {
        let types = ceph_cli_against_our_acceptor(&key, &key, mode).await??;
        eprintln!("ceph CLI over v2 {mode}: first requests {types:x?}");
        // Its first request after the handshake: MMonGetMap (type 5), then MMonSubscribe.
        const MMON_GET_MAP: u16 = 5;
        ensure!(
            types.first().is_some_and(|t| [
                MMON_GET_MAP,
                msgr_ceph::MMonSubscribe::TYPE,
                msgr_ceph::MMonGetVersion::TYPE
            ]
            .contains(t)),
            "{types:x?}"
        );
    }
    let wrong =
        ceph_cli_against_our_acceptor(&key, &msgr_auth::CryptoKey::aes(rand::random()), "secure")
            .await?;
    ensure!(
        matches!(
            wrong,
            Err(msgr_pipe::v2::connect::HandshakeError::AuthRefused { result: -13, .. })
        ),
        "{wrong:?}"
    );
    Ok(())
}
