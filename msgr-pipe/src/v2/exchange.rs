//! The byte side of a msgr2 handshake, shared by the connector and the acceptor.
//!
//! Both ends queue their banner first, read the peer's, then trade frames in the current
//! mode; every byte each way is logged until AUTH_DONE, because each end then sends an
//! AUTH_SIGNATURE (HMAC-SHA256 under the session key) over what it received and checks the
//! peer's over what it sent. At that point the frames switch to the negotiated mode (secure
//! mode: AES-128-GCM keyed from the connection secret, each end taking its half).
//!
//! Not here: what the frames say, the phases and their order (each machine's own:
//! [`super::connect`], [`super::accept`]).

use bytes::{Bytes, BytesMut};
use msgr_auth::connection_secret::split_connection_secret;
use msgr_auth::signature::{auth_signature, auth_signature_matches};
use msgr_auth::{CryptoKey, Secret};

use super::connect::{HandshakeError, CON_MODE_SECURE};
use super::frame::{Banner, Decoder, Encoder, Frame, FrameLimits, Gcm, Tag};

/// What [`Exchange::next`] took from the peer's bytes.
pub(super) enum Inbound {
    /// The peer's banner, accepted.
    Banner,
    /// A whole frame.
    Frame(Frame),
}

/// A handshake's codec, buffers and logs; see the module docs.
pub(super) struct Exchange {
    enc: Encoder,
    dec: Decoder,
    /// Received, not yet taken.
    inbuf: BytesMut,
    /// To write.
    out: BytesMut,
    /// What we sent and received up to AUTH_DONE (`None` once signed).
    logs: Option<(Vec<u8>, Vec<u8>)>,
    /// The AUTH_SIGNATURE the peer must send.
    expected_signature: Option<[u8; 32]>,
}

impl Exchange {
    /// A handshake whose received frames are held to `limits`; our banner is queued.
    pub(super) fn new(limits: FrameLimits) -> Exchange {
        let mut x = Exchange {
            enc: Encoder::default(),
            dec: Decoder::new(limits),
            inbuf: BytesMut::new(),
            out: BytesMut::new(),
            logs: Some((Vec::new(), Vec::new())),
            expected_signature: None,
        };
        let mut b = BytesMut::new();
        Banner::OURS.encode(&mut b);
        x.queue(&b);
        x
    }

    fn queue(&mut self, bytes: &[u8]) {
        if let Some((tx, _)) = &mut self.logs {
            tx.extend_from_slice(bytes);
        }
        self.out.extend_from_slice(bytes);
    }

    /// Queues `frame` in the current mode.
    pub(super) fn send(&mut self, frame: &Frame) {
        let mut b = BytesMut::new();
        self.enc.encode(frame, &mut b);
        self.queue(&b);
    }

    /// Bytes to write, if any.
    pub(super) fn poll_transmit(&mut self) -> Option<Bytes> {
        (!self.out.is_empty()).then(|| self.out.split().freeze())
    }

    /// Bytes from the peer, to be taken by [`next`](Self::next).
    pub(super) fn receive(&mut self, data: &[u8]) {
        self.inbuf.extend_from_slice(data);
    }

    /// The peer's banner while `banner` says it is due, else its next frame; `None` until
    /// the bytes are all there. Logged while the logs run.
    pub(super) fn next(&mut self, banner: bool) -> Result<Option<Inbound>, HandshakeError> {
        let before = self.inbuf.len();
        let snapshot = self.logs.is_some().then(|| self.inbuf.clone());
        let got = if banner {
            Banner::decode(&mut self.inbuf)?.map(|_| Inbound::Banner)
        } else {
            self.dec.decode(&mut self.inbuf)?.map(Inbound::Frame)
        };
        if got.is_some() {
            if let (Some((_, rx)), Some(s)) = (&mut self.logs, snapshot) {
                let taken = before - self.inbuf.len();
                rx.extend_from_slice(s.get(..taken).unwrap_or_default());
            }
        }
        Ok(got)
    }

    /// AUTH_DONE sent or received: the logs end here. Switches to `con_mode` (secure mode
    /// needs `secret`; `server` picks our half of its nonces), sends our AUTH_SIGNATURE over
    /// what we received, keyed with `key`, and expects the peer's over what we sent.
    pub(super) fn sign_and_switch(
        &mut self,
        key: Option<&CryptoKey>,
        secret: Option<&Secret>,
        con_mode: u32,
        server: bool,
    ) -> Result<(), HandshakeError> {
        let (tx, rx) = self.logs.take().unwrap_or_default();
        if con_mode == CON_MODE_SECURE {
            let secret = secret.ok_or(HandshakeError::BadMode(con_mode))?;
            let keys = split_connection_secret(secret, server).map_err(HandshakeError::Auth)?;
            self.enc.secure(Gcm::new(&keys.key, &keys.tx_nonce));
            self.dec.secure(Gcm::new(&keys.key, &keys.rx_nonce));
        }
        self.expected_signature = Some(auth_signature(key, &tx));
        let ours = auth_signature(key, &rx);
        self.send(&Frame::control(
            Tag::AuthSignature,
            Bytes::copy_from_slice(&ours),
        ));
        Ok(())
    }

    /// Whether `payload`, the peer's AUTH_SIGNATURE, is the one expected (in constant time).
    pub(super) fn signature_ok(&self, payload: &[u8]) -> bool {
        self.expected_signature
            .as_ref()
            .is_some_and(|e| auth_signature_matches(e, payload))
    }

    /// The codec in the negotiated mode, and the bytes received after the handshake (the
    /// session's first frames).
    pub(super) fn into_codec(self) -> (Encoder, Decoder, BytesMut) {
        (self.enc, self.dec, self.inbuf)
    }
}
