//! The Ceph harness against a real `ceph-mon`: the real `ceph` client sees the cluster the harness made, and a
//! raw msgr v1 client handshake (the hostile tests' `RawPeer`, msgr-wire's encoders) gets SEQ and a
//! KEEPALIVE2_ACK. Each test skips, saying why, when Ceph is not installed and `MSGR_REQUIRE_CEPH` is unset.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{ensure, Context};
use bytes::{Buf, BytesMut};
use msgr_tests::ceph::CephMon;
use msgr_wire::{Tag, CONNECT_LOSSY};
use tokio::io::AsyncReadExt;
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
    assert_eq!(reply.tag, Tag::Seq);
    assert_eq!(reply.connect_seq, 1);
    assert_eq!(
        reply.flags & CONNECT_LOSSY,
        CONNECT_LOSSY,
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
    let read = timeout(IO_TIMEOUT, old.stream.read(&mut byte))
        .await
        .context("old session neither closed nor reset")?;
    assert!(
        matches!(read, Ok(0) | Err(_)),
        "old session still open: {read:?}"
    );

    let (mut fresh, reply) = timeout(IO_TIMEOUT, raw::handshake(addr)).await??;
    assert_eq!(reply.tag, Tag::Seq);
    timeout(IO_TIMEOUT, raw::keepalive2_round_trip(&mut fresh, (7, 8))).await??;
    let stdout = mon.cli(&["status", "--format", "json"]).await?.success()?;
    let status: serde_json::Value = serde_json::from_str(&stdout)?;
    assert_eq!(status["fsid"].as_str(), Some(fsid.as_str()));
    Ok(())
}

/// Just enough of a msgr v1 client (msgr-v1-wire.md §3.2-3.6, §8.5) to reach the steady state: the hostile
/// tests' raw peer with a monitor client's connect.
mod raw {
    use super::*;
    use msgr_tests::hostile::RawPeer;
    use msgr_wire::{
        Connect, ConnectReply, EntityAddr, EntityType, FooterKind, Frame, Tag, Timespec,
        CONNECT_LOSSY, MONC_PROTOCOL,
    };

    /// What a Pacific client advertises (§8.4).
    const FEATURES: u64 = 0x3f01_cfb9_fffd_ffff;

    /// Banner + address exchange, `ceph_msg_connect` (host type 8, gseq 1, cseq 0, proto 15, lossy), the reply,
    /// and on SEQ the 8-byte exchange.
    pub async fn handshake(mon: SocketAddr) -> anyhow::Result<(RawPeer, ConnectReply)> {
        let mut peer = RawPeer::connect(EntityAddr::new(mon, 0)).await?;
        let (acceptor, _) = peer.read_hello().await?;
        ensure!(
            acceptor.addr.port() == mon.port(),
            "mon says it is on {acceptor}"
        );
        peer.send_banner().await?;
        let c = Connect {
            features: FEATURES,
            host_type: EntityType::CLIENT.host_type(),
            global_seq: 1,
            connect_seq: 0,
            protocol_version: MONC_PROTOCOL,
            flags: CONNECT_LOSSY,
            ..Connect::default()
        };
        peer.send_connect(&c).await?;
        let reply = peer.read_reply().await?;
        ensure!(
            reply.authorizer.is_empty(),
            "unexpected authorizer reply of {} bytes",
            reply.authorizer.len()
        );
        if reply.tag == Tag::Seq {
            let acked = peer.stream.read_u64_le().await?;
            ensure!(acked == 0, "mon acked {acked} of a new session");
            peer.write(&[0u8; 8]).await?;
        }
        Ok((peer, reply))
    }

    /// Sends KEEPALIVE2 with `stamp` and waits for the KEEPALIVE2_ACK echoing it (skipping ACK frames).
    pub async fn keepalive2_round_trip(
        peer: &mut RawPeer,
        stamp: (u32, u32),
    ) -> anyhow::Result<()> {
        let mut frame = BytesMut::new();
        Frame::Keepalive2(Timespec::new(stamp.0, stamp.1)).encode(FooterKind::New, &mut frame);
        peer.write(&frame).await?;
        loop {
            let tag = peer.stream.read_u8().await?;
            let mut body = [0u8; 8];
            peer.stream.read_exact(&mut body).await?;
            let mut b = &body[..];
            match Tag::try_from(tag).ok() {
                Some(Tag::Keepalive2Ack) => {
                    let echoed = (b.get_u32_le(), b.get_u32_le());
                    ensure!(echoed == stamp, "keepalive2_ack {echoed:?} for {stamp:?}");
                    return Ok(());
                }
                Some(Tag::Ack) => continue,
                _ => anyhow::bail!("tag {tag} while waiting for keepalive2_ack"),
            }
        }
    }
}
