//! Arbitrary bytes as a connector's stream into the sans-IO v1 acceptor handshake
//! (`msgr_pipe::v1::handshake`), fed in chunks of steered sizes; each connect is decided by
//! table 5.3 against a steered existing session and applied with `v1::session` (open a new
//! session, or replace the existing one), as the acceptor driver does; once open, the rest
//! goes into the open session (decoder, core, transmit). No runtime. Nothing may panic.
//!
//! The first byte steers: bit 0 prepends a valid banner, address and connect, bit 1 gives
//! an existing open session, bit 2 resetcheck, the rest sizes the chunks.
#![no_main]

#[path = "common/mod.rs"]
mod common;

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use msgr_pipe::core::{ConnState, Established};
use msgr_pipe::testing::new_client_connect;
use msgr_pipe::v1::accept::{decide, AcceptCtx, AcceptDecision};
use msgr_pipe::v1::handshake::{AcceptorHello, Accepted};
use msgr_pipe::v1::session as v1session;
use msgr_pipe::v1::{proto_version, V1State};
use msgr_pipe::Policy;
use msgr_wire::{
    Banner, ConnectReply, EntityAddr, EntityType, Limits, Tag, Wire, CONNECT_LOSSY,
};

fuzz_target!(|input: &[u8]| {
    let Some((&control, data)) = input.split_first() else {
        return;
    };
    let me = EntityAddr::new(([127, 0, 0, 1], 6800).into(), 1);
    let peer_sock = ([127, 0, 0, 1], 40000).into();
    let mut stream = BytesMut::new();
    if control & 1 != 0 {
        Banner.encode(&mut stream);
        EntityAddr::new(peer_sock, 7).encode(&mut stream);
        new_client_connect(0).encode(&mut stream);
    }
    stream.extend_from_slice(data);
    let mut policy = Policy::stateful_server(0);
    policy.resetcheck = control & 4 != 0;
    // The existing session, if any (an open one at connect_seq 1).
    let mut existing = (control & 2 != 0).then(|| {
        let mut core = common::core(ConnState::Accepting, &policy);
        let mut v1 = V1State::accepted_new(0, 1);
        v1.committed();
        core.opened(Established {
            features: policy.features_supported,
            lossy: false,
        });
        (core, v1)
    });
    let mut feed = common::Feed::new(&stream, control);
    let (hello, _bytes) = AcceptorHello::start(&me, peer_sock, Limits::default());
    let Some((peer, mut wait)) = feed.drive(hello) else {
        return;
    };
    for _ in 0..=stream.len() {
        let Some(got) = feed.drive(wait) else {
            return;
        };
        let ctx = AcceptCtx {
            expected_proto: proto_version(EntityType::OSD, got.peer_type, false),
            features_required: policy.features_required,
            resetcheck: policy.resetcheck,
            authorizer_ok: got.connect.authorizer.is_empty(),
            peer_wins_race: peer.race_cmp(&me) == std::cmp::Ordering::Less,
        };
        let view = existing
            .as_ref()
            .map(|(core, v1)| v1session::view(core, v1, true, false, false));
        let reply = |tag| ConnectReply {
            tag,
            features: policy.features_supported,
            global_seq: 2,
            connect_seq: got.connect.connect_seq.wrapping_add(1),
            protocol_version: 0,
            flags: 0,
            authorizer: Bytes::new(),
        };
        let (mut core, mut v1, att) = match decide(&got.connect, view.as_ref(), &ctx) {
            AcceptDecision::Open => {
                let mut core = common::core(ConnState::Accepting, &policy);
                let mut v1 = V1State::default();
                let att =
                    v1session::open_new(&mut core, &mut v1, &got.connect, policy.features_supported);
                (core, v1, att)
            }
            AcceptDecision::Replace(kind) => {
                let Some((mut core, mut v1)) = existing.take() else {
                    return;
                };
                let att = v1session::replace(
                    kind,
                    &mut core,
                    &mut v1,
                    &got.connect,
                    policy.features_supported,
                );
                (core, v1, att)
            }
            other => {
                let tag = match other {
                    AcceptDecision::BadProtoVer => Tag::BadProtoVer,
                    AcceptDecision::Features => Tag::Features,
                    AcceptDecision::BadAuthorizer => Tag::BadAuthorizer,
                    AcceptDecision::RetryGlobal { .. } => Tag::RetryGlobal,
                    AcceptDecision::RetrySession { .. } => Tag::RetrySession,
                    AcceptDecision::Wait => Tag::Wait,
                    _ => Tag::ResetSession,
                };
                let (w, _bytes) = got.next.reply(&reply(tag));
                wait = w;
                continue;
            }
        };
        let tag = if att.seq_reply.is_some() { Tag::Seq } else { Tag::Ready };
        let mut r = reply(tag);
        r.flags = if policy.lossy { CONNECT_LOSSY } else { 0 };
        let (accepted, _bytes) = got.next.accept(&r, att.seq_reply);
        v1.committed();
        if let Accepted::Seq(w) = accepted {
            let Some(acked) = feed.drive(w) else {
                return;
            };
            drop(core.discard_requeued_up_to(acked));
        }
        let features = v1session::accepted(&mut core, &mut v1);
        common::open_session(&mut core, feed.rest(), features);
        return;
    }
});
