//! The Ceph harness against a real `ceph-mon`: the real `ceph` client sees the cluster the harness made, and a
//! hand-written msgr v1 client handshake (tokio + bytes only, until the messenger crates can do it) gets SEQ and a
//! KEEPALIVE2_ACK. Each test skips, saying why, when Ceph is not installed and `MSGR_REQUIRE_CEPH` is unset.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{ensure, Context};
use bytes::{Buf, BufMut, BytesMut};
use msgr_tests::ceph::CephMon;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// Bound on each raw exchange with the mon.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn ceph_status_reports_the_harness_fsid() -> anyhow::Result<()> {
    let Some(mon) = CephMon::start()? else {
        return Ok(());
    };
    let stdout = mon.cli(&["status", "--format", "json"]).await?.success()?;
    let status: serde_json::Value =
        serde_json::from_str(&stdout).with_context(|| format!("not json: {stdout}"))?;
    assert_eq!(status["fsid"].as_str(), Some(mon.fsid()), "{stdout}");
    assert_eq!(status["quorum_names"], serde_json::json!(["a"]), "{stdout}");
    Ok(())
}

#[tokio::test]
async fn raw_v1_handshake_gets_seq_and_keepalive2_ack() -> anyhow::Result<()> {
    let Some(mon) = CephMon::start()? else {
        return Ok(());
    };
    let (mut stream, reply) = timeout(IO_TIMEOUT, raw::handshake(mon.addr())).await??;
    eprintln!("mon connect_reply: {reply:x?}");
    assert_eq!(reply.tag, raw::TAG_SEQ);
    assert_eq!(reply.connect_seq, 1);
    assert_eq!(
        reply.flags & raw::FLAG_LOSSY,
        raw::FLAG_LOSSY,
        "a client session is lossy on the mon's side"
    );
    let stamp = (1_700_000_000, 123_456_789);
    timeout(IO_TIMEOUT, raw::keepalive2_round_trip(&mut stream, stamp)).await??;
    Ok(())
}

#[tokio::test]
async fn restart_drops_sessions_and_keeps_port_and_fsid() -> anyhow::Result<()> {
    let Some(mut mon) = CephMon::start()? else {
        return Ok(());
    };
    let (addr, fsid) = (mon.addr(), mon.fsid().to_owned());
    let (mut old, _) = timeout(IO_TIMEOUT, raw::handshake(addr)).await??;
    let pid = mon.pid();
    mon.restart()?; // blocking, but nothing else runs on this runtime meanwhile
    assert_ne!(mon.pid(), pid);
    let mut byte = [0u8; 1];
    let read = timeout(IO_TIMEOUT, old.read(&mut byte))
        .await
        .context("old session neither closed nor reset")?;
    assert!(
        matches!(read, Ok(0) | Err(_)),
        "old session still open: {read:?}"
    );

    let (mut fresh, reply) = timeout(IO_TIMEOUT, raw::handshake(addr)).await??;
    assert_eq!(reply.tag, raw::TAG_SEQ);
    timeout(IO_TIMEOUT, raw::keepalive2_round_trip(&mut fresh, (7, 8))).await??;
    let stdout = mon.cli(&["status", "--format", "json"]).await?.success()?;
    let status: serde_json::Value = serde_json::from_str(&stdout)?;
    assert_eq!(status["fsid"].as_str(), Some(fsid.as_str()));
    Ok(())
}

/// Just enough of a msgr v1 client (msgr-v1-wire.md §3.2-3.6, §8.5) to reach the steady state; the real messenger
/// replaces it in later tests.
mod raw {
    use super::*;

    pub const TAG_SEQ: u8 = 13;
    pub const FLAG_LOSSY: u8 = 1;
    const TAG_ACK: u8 = 8;
    const TAG_KEEPALIVE2: u8 = 14;
    const TAG_KEEPALIVE2_ACK: u8 = 15;
    const BANNER: &[u8; 9] = b"ceph v027";
    const ADDR_LEN: usize = 136;
    /// What a Pacific client advertises (§8.4).
    const FEATURES: u64 = 0x3f01_cfb9_fffd_ffff;

    /// The 26-byte `ceph_msg_connect_reply`.
    #[derive(Debug)]
    #[allow(dead_code)] // printed for the record
    pub struct ConnectReply {
        pub tag: u8,
        pub features: u64,
        pub global_seq: u32,
        pub connect_seq: u32,
        pub protocol_version: u32,
        pub flags: u8,
    }

    /// Legacy `entity_addr_t`: type 0, nonce, AF_INET (big-endian), port (big-endian), IPv4, zero padding.
    fn legacy_addr(buf: &mut BytesMut, nonce: u32, addr: SocketAddr) {
        let start = buf.len();
        buf.put_u32_le(0);
        buf.put_u32_le(nonce);
        buf.put_u16(2);
        buf.put_u16(addr.port());
        if let SocketAddr::V4(v4) = addr {
            buf.put_slice(&v4.ip().octets());
        }
        buf.resize(start + ADDR_LEN, 0);
    }

    /// Banner + address exchange, `ceph_msg_connect` (host type 8, gseq 1, cseq 0, proto 15, lossy), the reply,
    /// and on SEQ the 8-byte exchange.
    pub async fn handshake(mon: SocketAddr) -> anyhow::Result<(TcpStream, ConnectReply)> {
        let mut stream = TcpStream::connect(mon).await?;
        let mut out = BytesMut::from(&BANNER[..]);
        legacy_addr(
            &mut out,
            rand::random(),
            SocketAddr::from(([127, 0, 0, 1], 0)),
        );
        stream.write_all(&out).await?;

        let mut hello = [0u8; 9 + 2 * ADDR_LEN];
        stream.read_exact(&mut hello).await?;
        ensure!(&hello[..9] == BANNER, "banner {:?}", &hello[..9]);
        let mon_port = u16::from_be_bytes([hello[9 + 10], hello[9 + 11]]);
        ensure!(mon_port == mon.port(), "mon says it is on port {mon_port}");

        let mut connect = BytesMut::new();
        connect.put_u64_le(FEATURES);
        for field in [8u32, 1, 0, 15, 0, 0] {
            connect.put_u32_le(field);
        }
        connect.put_u8(FLAG_LOSSY);
        stream.write_all(&connect).await?;

        let mut raw_reply = [0u8; 26];
        stream.read_exact(&mut raw_reply).await?;
        let mut r = &raw_reply[..];
        let reply = ConnectReply {
            tag: r.get_u8(),
            features: r.get_u64_le(),
            global_seq: r.get_u32_le(),
            connect_seq: r.get_u32_le(),
            protocol_version: r.get_u32_le(),
            flags: {
                let authorizer_len = r.get_u32_le();
                ensure!(
                    authorizer_len == 0,
                    "unexpected authorizer reply of {authorizer_len} bytes"
                );
                r.get_u8()
            },
        };
        if reply.tag == TAG_SEQ {
            let acked = stream.read_u64_le().await?;
            ensure!(acked == 0, "mon acked {acked} of a new session");
            stream.write_all(&[0u8; 8]).await?;
        }
        Ok((stream, reply))
    }

    /// Sends KEEPALIVE2 with `stamp` and waits for the KEEPALIVE2_ACK echoing it (skipping ACK frames).
    pub async fn keepalive2_round_trip(
        stream: &mut TcpStream,
        stamp: (u32, u32),
    ) -> anyhow::Result<()> {
        let mut frame = BytesMut::new();
        frame.put_u8(TAG_KEEPALIVE2);
        frame.put_u32_le(stamp.0);
        frame.put_u32_le(stamp.1);
        stream.write_all(&frame).await?;
        loop {
            let tag = stream.read_u8().await?;
            let mut body = [0u8; 8];
            stream.read_exact(&mut body).await?;
            let mut b = &body[..];
            match tag {
                TAG_KEEPALIVE2_ACK => {
                    let echoed = (b.get_u32_le(), b.get_u32_le());
                    ensure!(echoed == stamp, "keepalive2_ack {echoed:?} for {stamp:?}");
                    return Ok(());
                }
                TAG_ACK => continue,
                other => anyhow::bail!("tag {other} while waiting for keepalive2_ack"),
            }
        }
    }
}
