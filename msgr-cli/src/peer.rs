//! Finding a daemon from what a person types: `v1:HOST:PORT[/NONCE]`, `v2:HOST:PORT[/NONCE]`,
//! `HOST:PORT` (v1), or an address vector `[v2:HOST:3300,v1:HOST:6789]` (its v2 entry is used,
//! as Ceph's clients prefer msgr2).
//!
//! msgr2: the peer's address is checked in its SERVER_IDENT against the nonce when one is given;
//! without one, any instance at that address is accepted (msgr2's banner does not carry the
//! address, so nothing is learned up front). The probe checks that the port speaks msgr2.
//!
//! A msgr v1 connector must name the peer's exact address, nonce included, or the handshake
//! fails ("wrong peer at address"). Monitors use nonce 0, but OSDs and `msgr serve` pick one at
//! random, and people rarely type it. So when the nonce is missing it is learned first: the
//! acceptor speaks first in msgr v1 (banner, then its own address), so one short TCP
//! connection that reads those bytes and closes tells the nonce (and whether anything that
//! speaks msgr v1 listens there at all).

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, Context};
use msgr_wire::{EntityAddr, Wire, ADDR_LEN, BANNER, BANNER_LEN, BANNER_V2_PREFIX};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// Resolves `[v1:]HOST:PORT[/NONCE]` to the daemon's entity address, learning the nonce from
/// the daemon's banner when it is not given.
pub async fn resolve(text: &str, timeout: Duration) -> anyhow::Result<EntityAddr> {
    let text = text.trim();
    if let Some(inner) = text.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        if inner.starts_with("v1:") || inner.starts_with("v2:") {
            let entries: Vec<&str> = inner.split(',').map(str::trim).collect();
            let pick = entries
                .iter()
                .find(|e| e.starts_with("v2:"))
                .or_else(|| entries.first())
                .with_context(|| format!("{text:?}: an empty address vector"))?;
            return Box::pin(resolve(pick, timeout)).await;
        }
    }
    if let Some(rest) = text.strip_prefix("v2:") {
        let (host_port, nonce) = match rest.rsplit_once('/') {
            Some((hp, nonce)) => {
                let nonce: u32 = nonce
                    .parse()
                    .with_context(|| format!("{text:?}: the nonce after '/' is not a number"))?;
                (hp, nonce)
            }
            None => (rest, 0),
        };
        let addr = lookup(host_port, text).await?;
        probe_v2(addr, timeout).await?;
        return Ok(EntityAddr::v2(addr, nonce));
    }
    let rest = text.strip_prefix("v1:").unwrap_or(text);
    let (host_port, nonce) = match rest.rsplit_once('/') {
        Some((hp, nonce)) => {
            let nonce: u32 = nonce
                .parse()
                .with_context(|| format!("{text:?}: the nonce after '/' is not a number"))?;
            (hp, Some(nonce))
        }
        None => (rest, None),
    };
    let addr = lookup(host_port, text).await?;
    // Probe even when the nonce is given: a refused or silent port gets a clear message here
    // rather than a reconnect loop in the session.
    let announced = probe(addr, timeout).await?;
    match nonce {
        Some(nonce) if nonce != announced.nonce => bail!(
            "v1:{addr}: the daemon there announces nonce {}, not {nonce} (restarted?)",
            announced.nonce
        ),
        _ => Ok(EntityAddr::new(addr, announced.nonce)),
    }
}

async fn lookup(host_port: &str, text: &str) -> anyhow::Result<SocketAddr> {
    if let Ok(addr) = host_port.parse::<SocketAddr>() {
        return Ok(addr);
    }
    tokio::net::lookup_host(host_port)
        .await
        .with_context(|| format!("cannot resolve {text:?} (expected v1:HOST:PORT)"))?
        .next()
        .with_context(|| format!("{text:?} resolves to no address"))
}

/// Reads the banner and the address a msgr v1 acceptor announces, then closes.
pub async fn probe(addr: SocketAddr, timeout: Duration) -> anyhow::Result<EntityAddr> {
    let shown = format!("v1:{addr}");
    let work = async {
        let mut stream = TcpStream::connect(addr).await.map_err(|e| match e.kind() {
            std::io::ErrorKind::ConnectionRefused => {
                anyhow::anyhow!("{shown}: connection refused (is a daemon listening there?)")
            }
            _ => anyhow::Error::new(e).context(format!("{shown}: cannot connect")),
        })?;
        let mut buf = vec![0u8; BANNER_LEN + ADDR_LEN];
        stream
            .read_exact(&mut buf)
            .await
            .with_context(|| format!("{shown}: the peer closed before sending a msgr banner"))?;
        if buf.starts_with(BANNER_V2_PREFIX) {
            bail!("{shown}: the peer speaks msgr2 there (use v2:{addr})");
        }
        if &buf[..BANNER_LEN] != BANNER {
            bail!(
                "{shown}: not a msgr v1 daemon (banner {:?})",
                String::from_utf8_lossy(&buf[..BANNER_LEN])
            );
        }
        let mut rest = &buf[BANNER_LEN..];
        EntityAddr::decode(&mut rest).with_context(|| format!("{shown}: bad address in banner"))
    };
    tokio::time::timeout(timeout, work).await.with_context(|| {
        format!(
            "{shown}: no msgr banner within {:.1} s",
            timeout.as_secs_f64()
        )
    })?
}

/// Checks that a msgr2 daemon listens at `addr` (its banner, `ceph v2\n`), then closes.
pub async fn probe_v2(addr: SocketAddr, timeout: Duration) -> anyhow::Result<()> {
    let shown = format!("v2:{addr}");
    let work = async {
        let mut stream = TcpStream::connect(addr).await.map_err(|e| match e.kind() {
            std::io::ErrorKind::ConnectionRefused => {
                anyhow::anyhow!("{shown}: connection refused (is a daemon listening there?)")
            }
            _ => anyhow::Error::new(e).context(format!("{shown}: cannot connect")),
        })?;
        let mut buf = [0u8; 8];
        stream
            .read_exact(&mut buf)
            .await
            .with_context(|| format!("{shown}: the peer closed before sending a msgr banner"))?;
        if &buf == BANNER_V2_PREFIX {
            Ok(())
        } else if buf.starts_with(b"ceph v02") {
            bail!("{shown}: the peer speaks msgr v1 there (use v1:{addr})")
        } else {
            bail!(
                "{shown}: not a msgr2 daemon (banner {:?})",
                String::from_utf8_lossy(&buf)
            )
        }
    };
    tokio::time::timeout(timeout, work).await.with_context(|| {
        format!(
            "{shown}: no msgr banner within {:.1} s",
            timeout.as_secs_f64()
        )
    })?
}

/// What a peer answered to a refused handshake, as a person reads it: the reply tag and
/// its figures (`BADPROTOVER (peer protocol 15, ours 24)`), or what was wrong with the peer.
pub fn refusal_reason(error: &msgr_core::PipeError) -> String {
    use msgr_core::PipeError as E;
    match error {
        E::BadProtoVer { ours, peer } => {
            format!("BADPROTOVER (peer protocol {peer}, ours {ours})")
        }
        E::MissingFeatures { missing } => format!("FEATURES (missing features {missing:#x})"),
        E::AuthorizerRefused => "BADAUTHORIZER (our authorizer was refused twice)".to_owned(),
        E::AddrMismatch { expected, got } => {
            format!("wrong peer at address (it announces {got}, we dialled {expected})")
        }
        E::Wire(e) => format!("not a msgr v1 peer ({e})"),
        E::V2Handshake(msgr_core::V2HandshakeError::AuthRefused { method, result, .. }) => {
            format!("AUTH_BAD_METHOD (method {method}, result {result})")
        }
        E::V2Handshake(e) => format!("msgr2: {e}"),
        other => other.to_string(),
    }
}

/// Resolves when `conn`'s handshake was refused (the peer's answer, see
/// [`msgr_core::PipeError::is_refusal`]), whether or not its session would try again, with
/// `refused by ADDR: REASON`. Never resolves for a connection without a session, or one
/// whose handshakes fail only for broken sockets.
pub async fn refused(conn: &msgr_core::Connection) -> anyhow::Error {
    let Some(session) = conn.session() else {
        return std::future::pending().await;
    };
    let mut failures = session.handshake_failures();
    let refusal = failures
        .wait_for(|f| f.as_ref().is_some_and(|f| f.error.is_refusal()))
        .await
        .ok()
        .and_then(|f| f.clone());
    match refusal {
        Some(f) => anyhow::anyhow!(
            "refused by {}: {}",
            conn.peer_addr(),
            refusal_reason(&f.error)
        ),
        // The sender lives as long as the session: not reached while `conn` is held.
        None => std::future::pending().await,
    }
}
