//! Hostile peers: raw TCP streams that speak msgr v1 with msgr-wire's encoders and then
//! misbehave, against a listening messenger (issue 7, part 3).
//!
//! * [`RawPeer`] — a TCP stream to the messenger with the connector's side of the handshake
//!   split into steps (so a test can stop anywhere or send something wrong instead), message
//!   frames built from a sealed [`Message`] (so a test can corrupt any byte of it), and
//!   [`RawPeer::closed_within`], which reads until the messenger closes the socket.
//! * [`RawV2Peer`] — the same for msgr2: a TCP stream to a messenger's `v2:` listener, the
//!   banner and pre-authentication frames built by hand (so a test can break any byte), the
//!   whole handshake by msgr-pipe's sans-IO connector (auth `none`, crc mode) when a test
//!   needs a session, then MESSAGE frames it can corrupt.
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

/// A raw msgr2 connector: see the module docs.
pub struct RawV2Peer {
    /// The socket.
    pub stream: TcpStream,
    /// The acceptor's address.
    pub server: EntityAddr,
    /// Our entity name (`client.4242`).
    pub name: EntityName,
    /// Next message seq.
    pub seq: u64,
    /// The session's codec once [`RawV2Peer::handshake`] completed.
    est: Option<msgr_pipe::v2::connect::Established>,
}

impl RawV2Peer {
    /// Opens a TCP connection to the v2 listener `addr`.
    pub async fn connect(addr: EntityAddr) -> io::Result<RawV2Peer> {
        let stream = TcpStream::connect(addr.addr).await?;
        stream.set_nodelay(true)?;
        Ok(RawV2Peer {
            stream,
            server: addr,
            name: EntityName::client(4242),
            seq: 1,
            est: None,
        })
    }

    /// Our banner (`ceph v2\n`, revision 1 supported, nothing required).
    pub fn banner() -> BytesMut {
        let mut b = BytesMut::new();
        msgr_pipe::v2::frame::Banner::OURS.encode(&mut b);
        b
    }

    /// Reads the acceptor's 26-byte banner; fails unless it is msgr2.1's.
    pub async fn read_banner(&mut self) -> io::Result<()> {
        let mut buf = vec![0u8; 26];
        self.stream.read_exact(&mut buf).await?;
        let mut b = BytesMut::from(&buf[..]);
        match msgr_pipe::v2::frame::Banner::decode(&mut b) {
            Ok(Some(_)) => Ok(()),
            other => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("acceptor banner: {other:?}"),
            )),
        }
    }

    /// `frame` in crc mode (what every frame before the handshake's end is).
    pub fn crc_frame(frame: &msgr_pipe::v2::frame::Frame) -> BytesMut {
        let mut b = BytesMut::new();
        msgr_pipe::v2::frame::Encoder::default().encode(frame, &mut b);
        b
    }

    /// Our HELLO: a client, the acceptor's address as we reached it.
    pub fn hello(&self) -> BytesMut {
        use bytes::BufMut;
        let mut p = BytesMut::new();
        p.put_u8(msgr_wire::EntityType::CLIENT.0);
        msgr_ceph::EntityAddr::v2(self.server.addr, 0).encode(&mut p);
        Self::crc_frame(&msgr_pipe::v2::frame::Frame::control(
            msgr_pipe::v2::frame::Tag::Hello,
            p.freeze(),
        ))
    }

    /// An AUTH_REQUEST for `method` in crc mode with `payload` (authorizer mode).
    pub fn auth_request(method: u32, payload: &[u8]) -> BytesMut {
        use bytes::BufMut;
        let mut p = BytesMut::new();
        p.put_u32_le(method);
        p.put_u32_le(1);
        p.put_u32_le(msgr_pipe::v2::connect::CON_MODE_CRC);
        p.put_u32_le(u32::try_from(payload.len()).unwrap_or(u32::MAX));
        p.put_slice(payload);
        Self::crc_frame(&msgr_pipe::v2::frame::Frame::control(
            msgr_pipe::v2::frame::Tag::AuthRequest,
            p.freeze(),
        ))
    }

    /// The whole handshake as a new lossy client presenting auth `none`'s authorizer in crc
    /// mode, by msgr-pipe's connector; fails unless SERVER_IDENT comes.
    pub async fn handshake(&mut self) -> io::Result<()> {
        use msgr_pipe::v2::connect::{ClientAuth, Connector, ConnectorConfig, CON_MODE_CRC};
        let cfg = ConnectorConfig {
            entity_type: msgr_wire::EntityType::CLIENT,
            peer: self.server.addr,
            peer_nonce: self.server.nonce,
            nonce: 4242,
            features_supported: msgr_pipe::DEFAULT_FEATURES,
            features_required: 0,
            modes: vec![CON_MODE_CRC],
            global_seq: 1,
            client_cookie: rand::random::<u64>() | 1,
            limits: msgr_pipe::v2::frame::FrameLimits::default(),
            lossy: true,
            my_addr: None,
            resume: None,
        };
        let auth = msgr_auth::provider::NoneAuthorizer {
            name: msgr_auth::EntityName::new(u32::from(msgr_wire::EntityType::CLIENT.0), "4242"),
            global_id: 4242,
        };
        let mut c = Connector::with_auth(cfg, ClientAuth::Authorizer(Box::new(auth)));
        let mut buf = vec![0u8; 64 << 10];
        loop {
            while let Some(out) = c.poll_transmit() {
                self.stream.write_all(&out).await?;
            }
            if c.is_open() {
                break;
            }
            let n = self.stream.read(&mut buf).await?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let data = buf.get(..n).unwrap_or_default();
            c.handle_input(msgr_auth::UTime::now(), data)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        }
        self.est = c.finish();
        self.est
            .as_ref()
            .map(|_| ())
            .ok_or_else(|| io::Error::other("connector open without an ident"))
    }

    /// A MESSAGE frame (a ping with these segments, the next seq) in the session's mode, as
    /// bytes a test may corrupt: `preamble(32) ‖ header2(41) ‖ crc(4) ‖ front ‖ middle ‖
    /// data ‖ epilogue(13)`. Panics before [`RawV2Peer::handshake`].
    pub fn message(&mut self, front: &[u8], middle: &[u8], data: &[u8]) -> BytesMut {
        let mut h = msgr_wire::MsgHeader {
            ty: MSG_PING,
            priority: 127,
            ..msgr_wire::MsgHeader::default()
        };
        h.front_len = u32::try_from(front.len()).unwrap_or(u32::MAX);
        let mut header = BytesMut::new();
        msgr_pipe::v2::session::encode_header2(&h, self.seq, 0, &mut header);
        self.seq += 1;
        let frame = msgr_pipe::v2::frame::Frame {
            tag: msgr_pipe::v2::frame::Tag::Message,
            segments: vec![
                header.freeze(),
                Bytes::copy_from_slice(front),
                Bytes::copy_from_slice(middle),
                Bytes::copy_from_slice(data),
            ],
        };
        let est = self.est.as_mut().expect("handshake first");
        let mut b = BytesMut::new();
        est.encoder.encode(&frame, &mut b);
        b
    }

    /// Writes raw bytes.
    pub async fn write(&mut self, b: &[u8]) -> io::Result<()> {
        self.stream.write_all(b).await
    }

    /// Reads until the peer closes the connection or fails it, decoding what comes (after
    /// the acceptor's banner, which [`RawV2Peer::read_banner`] took) as crc-mode frames; the
    /// tags read, or `None` if the connection was still open after `limit`.
    pub async fn frames_until_closed(
        &mut self,
        limit: Duration,
    ) -> Option<Vec<msgr_pipe::v2::frame::Tag>> {
        let deadline = Instant::now() + limit;
        let mut dec =
            msgr_pipe::v2::frame::Decoder::new(msgr_pipe::v2::frame::FrameLimits::default());
        let mut inbuf = BytesMut::new();
        let mut tags = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match tokio::time::timeout_at(deadline, self.stream.read(&mut buf)).await {
                Err(_) => return None,
                Ok(Ok(0)) | Ok(Err(_)) => return Some(tags),
                Ok(Ok(n)) => inbuf.extend_from_slice(&buf[..n]),
            }
            // A frame that does not decode ends the reading of frames (not of the socket).
            while let Ok(Some(f)) = dec.decode(&mut inbuf) {
                tags.push(f.tag);
            }
        }
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
