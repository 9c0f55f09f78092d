//! Hostile peers against a listening messenger (issue 7): each ends with the connection
//! closed by the messenger, nothing delivered that was not valid, and a well-behaved client
//! (a real messenger doing round trips) served before, during and after.

use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use msgr_core::{Connection, Messenger, Policy, SendError};
use msgr_tests::fixture::{round_trip, stop, test_config, Recorder, WAIT};
use msgr_tests::hostile::{rss_bytes, RawPeer};
use msgr_wire::{
    EntityName, EntityType, Message, MsgHeader, Tag, Wire, ADDR_LEN, BANNER_LEN, CONNECT_LEN,
};
use tokio::io::AsyncReadExt;

/// RSS and timing assertions: one hostile scenario at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The handshake timeout of the server under attack: 1 s instead of the default 10 s, so that
/// `hostile_handshake_stalls` (which measures against this value, whatever it is) waits 4 s for
/// its four stalls, not 40; the other tests here are about something else.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(1);
/// Sender backpressure bound of the server's sessions.
const MAX_PENDING: u64 = 1 << 20;

/// The marker front of every valid hostile message; anything else from a hostile peer that
/// gets delivered is a failure.
const VALID: &[u8] = b"valid";

struct Bench {
    server: Messenger,
    echo: Arc<Recorder>,
    client: Messenger,
    cli: Arc<Recorder>,
    conn: Connection,
}

async fn bench() -> Bench {
    let echo = Recorder::echo(EntityType::OSD);
    let mut server_cfg = test_config();
    server_cfg.pipe.handshake_timeout = HANDSHAKE_TIMEOUT;
    server_cfg.pipe.max_pending_bytes = MAX_PENDING;
    let server = Messenger::builder(EntityName::osd(0))
        .config(server_cfg)
        .default_policy(Policy::stateless_server(0))
        .dispatcher(echo.clone())
        .start()
        .await
        .expect("server starts");
    let cli = Recorder::new(false, EntityType::CLIENT);
    let client = Messenger::builder(EntityName::client(1))
        .config(test_config())
        .default_policy(Policy::lossy_client(0))
        .dispatcher(cli.clone())
        .start()
        .await
        .expect("client starts");
    let conn = client
        .connect_lazy(server.addr(), EntityType::OSD)
        .expect("client running");
    let b = Bench {
        server,
        echo,
        client,
        cli,
        conn,
    };
    b.served().await;
    b
}

impl Bench {
    /// The well-behaved client gets an answer.
    async fn served(&self) {
        round_trip(&self.cli, &self.conn).await;
    }

    async fn peer(&self) -> RawPeer {
        RawPeer::connect(self.server.addr())
            .await
            .expect("tcp connect")
    }

    /// Everything delivered is a good client's ping (empty front) or a valid hostile one;
    /// returns how many valid hostile messages there were.
    fn check_delivered(&self) -> usize {
        let mut valid = 0;
        for (conn, m) in self.echo.seen().msgs.clone() {
            if conn == self.conn_id_on_server() {
                assert!(
                    m.front.is_empty(),
                    "unexpected message from the good client"
                );
            } else {
                assert_eq!(
                    &m.front[..],
                    VALID,
                    "an invalid message was delivered: {:?}",
                    m.header
                );
                valid += 1;
            }
        }
        valid
    }

    fn conn_id_on_server(&self) -> msgr_core::ConnId {
        self.server
            .connection(&self.client.addr())
            .map_or(u64::MAX, |c| c.id())
    }

    /// Waits (bounded) until the server has no session but the good client's.
    async fn only_good_client_left(&self) {
        let deadline = tokio::time::Instant::now() + WAIT;
        let good = self.client.addr();
        loop {
            let conns = self.server.stats().connections;
            if conns.iter().all(|c| c.peer_addr == good) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "hostile sessions left on the server: {:?}",
                conns
                    .iter()
                    .map(|c| (c.peer_addr, c.state))
                    .collect::<Vec<_>>()
            );
            // Nothing to wait on for sessions going away: short bounded polling.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn finish(self) {
        self.served().await;
        self.check_delivered();
        self.only_good_client_left().await;
        stop(&self.client).await;
        stop(&self.server).await;
    }
}

/// A handshake-complete hostile peer that has had one valid message delivered.
async fn peer_after_one_valid(b: &Bench) -> RawPeer {
    let mut p = b.peer().await;
    p.handshake().await.expect("hostile handshake");
    let before = b.echo.messages();
    let f = p.frame(VALID, b"", b"");
    p.write(&f).await.expect("write");
    assert!(
        b.echo.wait_until(|s| s.messages > before).await,
        "valid hostile message not delivered"
    );
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_bad_banner() {
    let _s = SERIAL.lock().await;
    let b = bench().await;
    for banner in [&b"ceph v099"[..], b"ceph v2\n\0", b"GET / HTTP/1.1\r\n\r\n"] {
        let mut p = b.peer().await;
        p.read_banner().await.expect("server banner");
        let mut bytes = banner.to_vec();
        bytes.extend_from_slice(&[0u8; 136]);
        p.write(&bytes).await.expect("write");
        assert!(
            p.closed_within(WAIT).await,
            "bad banner {banner:?} not closed"
        );
        b.served().await;
    }
    assert_eq!(b.check_delivered(), 0);
    b.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_unknown_tag() {
    let _s = SERIAL.lock().await;
    let b = bench().await;
    for tag in [0u8, 0x63, 0xff, Tag::Ready as u8] {
        let mut p = peer_after_one_valid(&b).await;
        p.write(&[tag, 1, 2, 3, 4, 5, 6, 7, 8])
            .await
            .expect("write");
        assert!(p.closed_within(WAIT).await, "unknown tag {tag} not closed");
        b.served().await;
    }
    assert_eq!(b.check_delivered(), 4);
    b.finish().await;
}

/// A bad CRC in the header, the front, the middle and the data, each after a valid message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_bad_crc() {
    let _s = SERIAL.lock().await;
    let b = bench().await;
    let front = VALID;
    let middle = [7u8; 100];
    let data = [9u8; 5000];
    // Offsets in the frame: tag (1), header (53), front, middle, data, footer.
    let cases = [
        ("header", 1 + 20),
        ("front", 1 + 53),
        ("middle", 1 + 53 + front.len() + 10),
        ("data", 1 + 53 + front.len() + middle.len() + 4000),
        (
            "footer front crc",
            1 + 53 + front.len() + middle.len() + data.len(),
        ),
    ];
    for (what, at) in cases {
        let mut p = peer_after_one_valid(&b).await;
        let mut f = p.frame(front, &middle, &data);
        f[at] ^= 0x20;
        p.write(&f).await.expect("write");
        assert!(p.closed_within(WAIT).await, "bad {what} CRC: not closed");
        b.served().await;
    }
    assert_eq!(b.check_delivered(), cases.len());
    b.finish().await;
}

fn oversize_header(front: u32, middle: u32, data: u32) -> BytesMut {
    let mut h = MsgHeader {
        seq: 2,
        ty: 2,
        priority: 127,
        front_len: front,
        middle_len: middle,
        data_len: data,
        src: EntityName::client(4242),
        ..MsgHeader::default()
    };
    h.seal();
    let mut b = BytesMut::new();
    b.put_u8(Tag::Msg as u8);
    h.encode(&mut b);
    b
}

/// Declared lengths beyond the limits (a 4 GiB front, a 4 GiB data, a total over the
/// message limit, a 4 GiB authorizer) are refused from the header alone: the connection
/// closes without the body ever being sent, and the process does not grow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_oversize_lengths() {
    let _s = SERIAL.lock().await;
    let b = bench().await;
    let rss0 = rss_bytes();
    for (what, h) in [
        ("4 GiB front", oversize_header(u32::MAX, 0, 0)),
        ("4 GiB middle", oversize_header(0, u32::MAX, 0)),
        ("4 GiB data", oversize_header(0, 0, u32::MAX)),
        (
            "total over max_message",
            oversize_header(100 << 20, 0, 100 << 20),
        ),
    ] {
        let mut p = peer_after_one_valid(&b).await;
        p.write(&h).await.expect("write");
        assert!(
            p.closed_within(WAIT).await,
            "{what}: not closed from the header"
        );
        b.served().await;
    }
    // An authorizer length of 4 GiB in the connect.
    let mut p = b.peer().await;
    p.read_banner().await.expect("banner");
    p.send_banner().await.expect("banner");
    let mut c = BytesMut::new();
    p.connect_msg().encode(&mut c);
    c[28..32].copy_from_slice(&u32::MAX.to_le_bytes());
    p.write(&c[..CONNECT_LEN]).await.expect("write");
    assert!(p.closed_within(WAIT).await, "4 GiB authorizer: not closed");
    b.served().await;
    let rss1 = rss_bytes();
    assert!(
        rss1 < rss0 + (256 << 20),
        "process grew from {rss0} to {rss1} bytes on oversize declarations"
    );
    assert_eq!(b.check_delivered(), 4);
    b.finish().await;
}

/// Handshakes cut short at each point: nothing registered, server fine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_handshake_cut_short() {
    let _s = SERIAL.lock().await;
    let b = bench().await;
    for cut in 0..6 {
        let mut p = b.peer().await;
        if cut >= 1 {
            p.read_banner().await.expect("banner");
        }
        let mut out = BytesMut::new();
        msgr_wire::Banner.encode(&mut out);
        p.my_addr.encode(&mut out);
        p.connect_msg().encode(&mut out);
        let upto = match cut {
            0 | 1 => 4,        // half a banner
            2 => 9 + 60,       // banner and part of the address
            3 => 9 + 136,      // banner and address
            4 => 9 + 136 + 20, // part of the connect
            _ => 9 + 136 + 33, // the whole connect, then gone before the reply is read
        };
        p.write(&out[..upto]).await.expect("write");
        drop(p);
        b.served().await;
    }
    b.only_good_client_left().await;
    assert_eq!(b.check_delivered(), 0);
    b.finish().await;
}

/// Handshakes that stall at each point are closed within the handshake timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_handshake_stalls() {
    let _s = SERIAL.lock().await;
    let b = bench().await;
    let slack = Duration::from_millis(1500);
    for stall in 0..4 {
        let mut p = b.peer().await;
        let started = tokio::time::Instant::now();
        if stall >= 1 {
            p.read_banner().await.expect("banner");
            p.send_banner().await.expect("banner");
        }
        if stall >= 2 {
            let mut c = BytesMut::new();
            p.connect_msg().encode(&mut c);
            let n = if stall == 2 { 10 } else { CONNECT_LEN };
            if stall == 3 {
                // Declares a 100-byte authorizer, sends none of it.
                c[28..32].copy_from_slice(&100u32.to_le_bytes());
            }
            p.write(&c[..n]).await.expect("write");
        }
        assert!(
            p.closed_within(HANDSHAKE_TIMEOUT + slack).await,
            "stall {stall}: not closed within the handshake timeout"
        );
        let took = started.elapsed();
        // Not before the timeout (the server's clock starts at its accept, which may come a
        // little before this task sees its connect return: 100 ms of slack on that side),
        // and within it plus scheduling slack.
        assert!(
            took >= HANDSHAKE_TIMEOUT - Duration::from_millis(100)
                && took <= HANDSHAKE_TIMEOUT + slack,
            "stall {stall}: closed after {took:?}"
        );
        b.served().await;
    }
    assert_eq!(b.check_delivered(), 0);
    b.finish().await;
}

/// A peer that sends but never reads: the server's sends to it hit `max_pending_bytes`
/// (`try_send` says Full) instead of growing without bound; its messages are still
/// dispatched, and the good client is served meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_peer_never_reads() {
    let _s = SERIAL.lock().await;
    let b = bench().await;
    let mut p = peer_after_one_valid(&b).await;
    let sconn = b
        .server
        .connection(&p.my_addr)
        .expect("server registered the hostile session");
    let rss0 = rss_bytes();
    let chunk = vec![0x5au8; 64 << 10];
    let mut queued: u64 = 0;
    let mut full = false;
    for _ in 0..20_000 {
        match sconn.try_send(Message::new(2, &b"out"[..]).with_data(chunk.clone())) {
            Ok(()) => queued += chunk.len() as u64,
            Err(SendError::Full) => {
                full = true;
                break;
            }
            Err(e) => panic!("try_send to the hostile peer failed: {e}"),
        }
    }
    assert!(full, "never Full after {queued} bytes");
    let pending = sconn.session().map_or(0, |s| s.pending_bytes());
    assert!(
        pending <= MAX_PENDING + chunk.len() as u64,
        "pending {pending} beyond max_pending_bytes {MAX_PENDING}"
    );
    // The peer keeps sending (valid messages) while not reading; they are dispatched.
    let before = b.echo.messages();
    for _ in 0..50 {
        let f = p.frame(VALID, b"", &chunk);
        p.write(&f).await.expect("hostile write");
    }
    assert!(
        b.echo.wait_until(|s| s.messages >= before + 50).await,
        "the non-reading peer's messages were not dispatched"
    );
    b.served().await;
    let rss1 = rss_bytes();
    assert!(
        rss1 < rss0 + (128 << 20),
        "process grew from {rss0} to {rss1} bytes"
    );
    assert_eq!(b.check_delivered(), 51);
    drop(p);
    b.finish().await;
}

/// The soft limit on open files of this process (`Max open files` in `/proc/self/limits`).
fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// 1,000 connections opened at once and dropped at once: the server accepts every one (each
/// reads the server's banner and both addresses: all 1,000, the listen backlog of 512 only
/// delays a connect), keeps serving, and forgets them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_thousand_connections() {
    const N: usize = 1000;
    let _s = SERIAL.lock().await;
    // Both ends of each connection live in this process.
    let in_use = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count()) as u64;
    let need = in_use + 2 * N as u64 + 64;
    if let Some(limit) = open_files_limit() {
        assert!(
            limit >= need,
            "this test needs {need} open files, the limit is {limit} (ulimit -n {need})"
        );
    }
    let b = bench().await;
    let addr = b.server.addr().addr;
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..N {
        set.spawn(async move {
            let mut s = tokio::net::TcpStream::connect(addr).await?;
            let mut hello = vec![0u8; BANNER_LEN + 2 * ADDR_LEN];
            s.read_exact(&mut hello).await?;
            std::io::Result::Ok((s, hello))
        });
    }
    let mut socks = Vec::new();
    let mut errors = Vec::new();
    while let Some(r) = set.join_next().await {
        match r.expect("connect task") {
            Ok((s, hello)) => {
                assert_eq!(&hello[..BANNER_LEN], b"ceph v027", "banner");
                socks.push(s);
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
    assert_eq!(
        socks.len(),
        N,
        "{} of {N} connections accepted; errors {errors:?}",
        socks.len()
    );
    b.served().await;
    drop(socks);
    b.served().await;
    b.only_good_client_left().await;
    assert_eq!(b.check_delivered(), 0);
    b.finish().await;
}
