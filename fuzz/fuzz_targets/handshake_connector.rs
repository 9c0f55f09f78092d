//! Arbitrary bytes as an acceptor's stream into the sans-IO v1 connector handshake
//! (`msgr_pipe::v1::handshake`), fed in chunks of steered sizes, answered as the connector
//! driver answers (RETRY_* with the session's counters, RESETSESSION with a reset), and,
//! once it opens, into the open session (decoder, core, transmit). No runtime. Nothing may
//! panic, and every waiting state must ask for at least one more byte.
//!
//! The first byte steers: bit 0 prepends a valid banner and both addresses, bit 1 a valid
//! READY reply too, bit 2 picks a lossless policy, the rest sizes the chunks.
#![no_main]

#[path = "common/mod.rs"]
mod common;

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use msgr_pipe::core::ConnState;
use msgr_pipe::testing::{encode_acceptor_hello, ready_reply};
use msgr_pipe::v1::connect::{Attempt, ReplyAction};
use msgr_pipe::v1::handshake::{ConnectFields, ConnectorHello, Features, ReplyNext};
use msgr_pipe::v1::session as v1session;
use msgr_pipe::v1::V1State;
use msgr_pipe::Policy;
use msgr_wire::{EntityAddr, Limits, Wire};

fuzz_target!(|input: &[u8]| {
    let Some((&control, data)) = input.split_first() else {
        return;
    };
    let me = EntityAddr::new(([127, 0, 0, 1], 40000).into(), 7);
    let server = EntityAddr::new(([127, 0, 0, 1], 6800).into(), 1);
    let mut stream = BytesMut::new();
    if control & 3 != 0 {
        encode_acceptor_hello(&mut stream, &server, &me);
    }
    if control & 2 != 0 {
        ready_reply(false).encode(&mut stream);
    }
    stream.extend_from_slice(data);
    let policy = if control & 4 != 0 {
        Policy::lossless_client(0)
    } else {
        Policy::lossy_client(0)
    };
    let mut core = common::core(ConnState::Connecting, &policy);
    let mut v1 = V1State::default();
    let mut feed = common::Feed::new(&stream, control);
    let at = Attempt {
        global_seq: 1,
        connect_seq: v1.connect_seq(),
        auth_retried: false,
    };
    let features = Features {
        supported: policy.features_supported,
        required: policy.features_required,
    };
    let (hello, _banner) = ConnectorHello::start(at, Limits::default(), features);
    let Some(hello) = feed.drive(hello) else {
        return;
    };
    let mut next = hello.next;
    let mut global_seq = 1;
    // At most one round per byte of input: the loop ends with the input.
    for _ in 0..=stream.len() {
        let fields = ConnectFields {
            host_type: 8,
            protocol_version: 24,
            flags: 0,
            authorizer_protocol: 0,
            authorizer: Bytes::new(),
        };
        let (wait, _bytes) = next.send(&me, fields);
        let Some(reply) = feed.drive(wait) else {
            return;
        };
        let opened = match reply.next {
            ReplyNext::Again(action, mut again) => {
                match action {
                    ReplyAction::Retry => v1.retry_session(again.attempt().connect_seq),
                    ReplyAction::RetryGlobal { at_least } => {
                        global_seq = global_seq.max(at_least).wrapping_add(1);
                        again.set_global_seq(global_seq);
                    }
                    ReplyAction::ResetSession => {
                        v1.reset();
                        drop(core.reset_session());
                    }
                    _ => {}
                }
                next = again;
                continue;
            }
            ReplyNext::Fail(_) => return,
            ReplyNext::Open(opened) => opened,
            ReplyNext::Seq(w) => {
                v1session::ready(&mut v1, w.opened());
                let Some(answer) = feed.drive(w) else {
                    return;
                };
                drop(core.discard_requeued_up_to(answer.acked()));
                answer.send(core.in_seq()).0
            }
        };
        v1session::ready(&mut v1, &opened);
        if v1session::connected(&mut core, &mut v1, &opened, policy.features_supported) {
            let features = core.features();
            common::open_session(&mut core, feed.rest(), features);
        }
        return;
    }
});
