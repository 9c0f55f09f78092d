//! Shared by the handshake fuzz targets: a session core, its open-socket pipeline (the v1
//! decoder into the core, the core's transmit through the v1 encoder), and chunked feeding
//! of a sans-IO handshake machine. No runtime, no clock: time is a fixed instant plus
//! steps.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use msgr_pipe::core::{
    BatchLimits, ConnState, CoreConfig, FaultPolicy, Released, SessionCore,
};
use msgr_pipe::v1::codec::{inbound, Encoder, Inbound};
use msgr_pipe::v1::handshake::{Expect, Read};
use msgr_pipe::{PipeConfig, Policy};
use msgr_wire::{CrcFlags, FooterKind, FrameDecoder, Limits};
use rand::rngs::SmallRng;
use rand::SeedableRng;

/// A fresh session core for `policy` at the default configuration.
pub fn core(phase: ConnState, policy: &Policy) -> SessionCore {
    let c = PipeConfig::default();
    SessionCore::new(
        phase,
        policy.lossy,
        CoreConfig {
            fault: FaultPolicy {
                server: policy.server,
                standby: policy.standby,
                initial_backoff: c.initial_backoff,
                max_backoff: c.max_backoff,
            },
            read_timeout: c.read_timeout,
            ack_batch: c.ack_batch,
            ack_bytes: c.ack_bytes,
            ack_delay: c.ack_delay,
            keepalive_interval: c.keepalive_interval,
        },
        SmallRng::seed_from_u64(1),
    )
}

/// Hands the peer's bytes to a machine in chunks whose sizes come from `steer`.
pub struct Feed<'a> {
    data: &'a [u8],
    steer: u8,
    pub buf: BytesMut,
}

impl<'a> Feed<'a> {
    pub fn new(data: &'a [u8], steer: u8) -> Self {
        Feed {
            data,
            steer,
            buf: BytesMut::new(),
        }
    }

    /// Moves the next chunk into `buf`; false once the input is used up.
    pub fn more(&mut self) -> bool {
        if self.data.is_empty() {
            return false;
        }
        self.steer = self.steer.rotate_left(3) ^ 0x5a;
        let n = (usize::from(self.steer % 64) + 1).min(self.data.len());
        self.buf.extend_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        true
    }

    /// Runs a waiting state to the end of its step; `None` if the input ends first or the
    /// peer's bytes are refused (a typed error: the driver would close the socket).
    pub fn drive<E: Expect>(&mut self, mut e: E) -> Option<E::Output> {
        loop {
            match e.read(&mut self.buf) {
                Ok(Read::Done(out)) => return Some(out),
                Ok(Read::More(state, n)) => {
                    assert!(n > 0, "a waiting state asks for at least one byte");
                    e = state;
                    if !self.more() {
                        return None;
                    }
                }
                Err(_) => return None,
            }
        }
    }

    /// The rest of the input, for the open session.
    pub fn rest(&mut self) -> BytesMut {
        let mut b = std::mem::take(&mut self.buf);
        b.extend_from_slice(self.data);
        self.data = &[];
        b
    }
}

/// The open session: the peer's remaining bytes decoded into the core (as the reader),
/// each decoded batch answered by a transmit (as the writer), timers handled in steps.
pub fn open_session(core: &mut SessionCore, mut bytes: BytesMut, features: u64) {
    let mut dec = FrameDecoder::new(
        Limits::default(),
        FooterKind::for_features(features),
        CrcFlags::default(),
    );
    let start = Instant::now();
    let mut now = start;
    let limits = BatchLimits {
        max_bytes: 1 << 20,
        max_msgs: 64,
        small: 512,
    };
    let mut done = Released::default();
    loop {
        let frame = match dec.decode(&mut bytes) {
            Ok(Some(f)) => f,
            Ok(None) | Err(_) => break,
        };
        match inbound(frame) {
            Inbound::Message(m) => {
                let _ = core.handle_message(m.header.seq, m.header.payload_len());
            }
            Inbound::Control(c) => {
                core.handle_control(now, c, &mut done);
                done.clear();
            }
        }
        let (mut chain, mut stage) = (VecDeque::new(), BytesMut::new());
        let mut msgs = Vec::new();
        let mut enc = Encoder {
            crc: CrcFlags::default(),
            kind: FooterKind::for_features(features),
            ka2: true,
            chain: &mut chain,
            stage: &mut stage,
            signer: None,
        };
        let tx = core.poll_transmit(&limits, &mut enc, &mut msgs);
        for o in msgs.iter_mut() {
            enc.encode_message(o);
        }
        if let Some(seq) = tx.ack {
            enc.ack(seq);
        }
        enc.finish();
        now += Duration::from_millis(1);
        if let Some(t) = core.handle_idle(now) {
            let _ = core.handle_timeout(t);
        }
        while core.poll_event().is_some() {}
    }
}
