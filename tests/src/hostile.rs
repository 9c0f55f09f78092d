//! Hostile peers: raw TCP streams that speak msgr v1 with msgr-wire's encoders and then
//! misbehave, against a listening messenger (issue 7, part 3).
//!
//! * [`RawPeer`] — a TCP stream to the messenger with the connector's side of the handshake
//!   split into steps (so a test can stop anywhere or send something wrong instead), message
//!   frames built from a sealed [`Message`] (so a test can corrupt any byte of it), and
//!   [`RawPeer::closed_within`], which reads until the messenger closes the socket.
//! * [`rss_bytes`] — the resident set of this process (the messenger runs in it).

use std::io;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use msgr_wire::{
    Banner, Connect, ConnectReply, CrcFlags, EntityAddr, EntityName, FooterKind, Message, Tag,
    Wire, ADDR_LEN, BANNER_LEN, CONNECT_REPLY_LEN,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// `CEPH_MSG_PING`.
pub const MSG_PING: u16 = 2;

/// The resident set size of this process in bytes (0 if unknown).
pub fn rss_bytes() -> u64 {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return 0;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// A raw msgr v1 connector.
pub struct RawPeer {
    /// The socket.
    pub stream: TcpStream,
    /// The address we announce (127.0.0.1, our socket's port, a fixed nonce).
    pub my_addr: EntityAddr,
    /// Our entity name (`client.4242`).
    pub name: EntityName,
    /// Next message seq.
    pub seq: u64,
}

impl RawPeer {
    /// Opens a TCP connection to `addr`.
    pub async fn connect(addr: EntityAddr) -> io::Result<RawPeer> {
        let stream = TcpStream::connect(addr.addr).await?;
        stream.set_nodelay(true)?;
        let local = stream.local_addr()?;
        Ok(RawPeer {
            stream,
            my_addr: EntityAddr::new(local, 4242),
            name: EntityName::client(4242),
            seq: 1,
        })
    }

    /// Reads the acceptor's banner and both addresses (9 + 136 + 136 bytes).
    pub async fn read_banner(&mut self) -> io::Result<()> {
        self.read_hello().await.map(|_| ())
    }

    /// Reads the acceptor's banner and both addresses; returns the acceptor's own address
    /// and ours as it sees it.
    pub async fn read_hello(&mut self) -> io::Result<(EntityAddr, EntityAddr)> {
        let mut buf = vec![0u8; BANNER_LEN + 2 * ADDR_LEN];
        self.stream.read_exact(&mut buf).await?;
        let mut b = Bytes::from(buf);
        let invalid = |e| io::Error::new(io::ErrorKind::InvalidData, e);
        Banner::decode(&mut b).map_err(invalid)?;
        let acceptor = EntityAddr::decode(&mut b).map_err(invalid)?;
        let seen = EntityAddr::decode(&mut b).map_err(invalid)?;
        Ok((acceptor, seen))
    }

    /// Writes our banner and address.
    pub async fn send_banner(&mut self) -> io::Result<()> {
        let mut b = BytesMut::new();
        Banner.encode(&mut b);
        self.my_addr.encode(&mut b);
        self.write(&b).await
    }

    /// A `ceph_msg_connect` as a new lossy client (connect_seq 0) would send it.
    pub fn connect_msg(&self) -> Connect {
        msgr_pipe::testing::new_client_connect(msgr_wire::CONNECT_LOSSY)
    }

    /// Writes a connect.
    pub async fn send_connect(&mut self, c: &Connect) -> io::Result<()> {
        let mut b = BytesMut::new();
        c.encode(&mut b);
        self.write(&b).await
    }

    /// Reads a connect reply.
    pub async fn read_reply(&mut self) -> io::Result<ConnectReply> {
        let mut fixed = vec![0u8; CONNECT_REPLY_LEN];
        self.stream.read_exact(&mut fixed).await?;
        let len = ConnectReply::peek_authorizer_len(&fixed).unwrap_or(0);
        let mut rest = vec![0u8; len.min(1 << 16) as usize];
        self.stream.read_exact(&mut rest).await?;
        fixed.extend_from_slice(&rest);
        let mut b = Bytes::from(fixed);
        ConnectReply::decode_limited(&mut b, 1 << 16)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }

    /// The whole connector handshake as a new lossy client of an OSD; fails unless the reply
    /// is READY or SEQ (then the in_seq values are exchanged).
    pub async fn handshake(&mut self) -> io::Result<()> {
        let c = self.connect_msg();
        self.handshake_with(&c).await.map(|_| ())
    }

    /// The whole connector handshake with connect `c`; fails unless the reply is READY or
    /// SEQ. On SEQ, the acceptor's in_seq must be 0 (a new session), and ours (0) is sent.
    /// Returns the reply.
    pub async fn handshake_with(&mut self, c: &Connect) -> io::Result<ConnectReply> {
        self.read_banner().await?;
        self.send_banner().await?;
        self.send_connect(c).await?;
        let r = self.read_reply().await?;
        match r.tag {
            Tag::Ready => Ok(r),
            Tag::Seq => {
                // The acceptor's in_seq, then ours (nothing received yet).
                let theirs = self.stream.read_u64_le().await?;
                if theirs != 0 {
                    return Err(io::Error::other(format!(
                        "acceptor acked {theirs} of a new session"
                    )));
                }
                self.write(&0u64.to_le_bytes()).await?;
                Ok(r)
            }
            other => Err(io::Error::other(format!("reply {other:?}"))),
        }
    }

    /// A sealed ping frame (tag, header, segments, 21-byte footer) with the next seq.
    pub fn frame(&mut self, front: &[u8], middle: &[u8], data: &[u8]) -> BytesMut {
        let mut m = Message::new(MSG_PING, Bytes::copy_from_slice(front))
            .with_middle(Bytes::copy_from_slice(middle))
            .with_data(Bytes::copy_from_slice(data));
        m.seal(self.seq, self.name, CrcFlags::default());
        self.seq += 1;
        let mut b = BytesMut::new();
        m.encode_frame(FooterKind::New, &mut b);
        b
    }

    /// Writes raw bytes.
    pub async fn write(&mut self, b: &[u8]) -> io::Result<()> {
        self.stream.write_all(b).await
    }

    /// Reads (and discards) until the peer closes the connection or fails it; true if that
    /// happened within `limit`.
    pub async fn closed_within(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match tokio::time::timeout_at(deadline, self.stream.read(&mut buf)).await {
                Err(_) => return false,
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => {}
            }
        }
    }
}
