//! Arbitrary bytes as a connector's stream into msgr-pipe's acceptor handshake (and, when
//! the handshake completes, into the open session's reader), over an in-memory duplex
//! stream with a paused clock. Nothing may panic or hang; the session must end once marked
//! down.
//!
//! The first byte steers the input: bit 0 prepends a valid banner and address, bit 1 a valid
//! `ceph_msg_connect` as well (so the fuzzer reaches the decision table and the message
//! reader), bit 2 picks `stateful_server` instead of `stateless_server`, bits 3-7 the write
//! chunk size.
#![no_main]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use msgr_pipe::testing::{new_client_connect, TestHost};
use msgr_pipe::{PipeConfig, Policy, Session};
use msgr_wire::{Banner, EntityAddr, EntityName, Wire};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn addr(s: &str, nonce: u32) -> EntityAddr {
    EntityAddr::new(
        s.parse::<SocketAddr>()
            .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 1))),
        nonce,
    )
}

fuzz_target!(|input: &[u8]| {
    let Some((&control, data)) = input.split_first() else {
        return;
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
    {
        Ok(rt) => rt,
        Err(_) => return,
    };
    rt.block_on(run(control, Bytes::copy_from_slice(data)));
});

async fn run(control: u8, data: Bytes) {
    let peer = addr("127.0.0.1:40000", 7);
    let mut stream = BytesMut::new();
    if control & 3 != 0 {
        Banner.encode(&mut stream);
        peer.encode(&mut stream);
    }
    if control & 2 != 0 {
        new_client_connect(0).encode(&mut stream);
    }
    stream.extend_from_slice(&data);
    let chunk = usize::from(control >> 3) * 8 + 1;
    let policy = if control & 4 != 0 {
        Policy::stateful_server(0)
    } else {
        Policy::stateless_server(0)
    };
    let config = PipeConfig {
        handshake_timeout: Duration::from_secs(1),
        read_timeout: Duration::from_secs(2),
        ..PipeConfig::default()
    };
    let (host, mut rx) = TestHost::new(
        EntityName::osd(0),
        addr("127.0.0.1:6800", 1),
        policy,
        config.clone(),
    );
    let (ours, theirs) = tokio::io::duplex(64 << 10);
    let h: Arc<dyn msgr_pipe::Host> = host.clone();
    let accept = tokio::spawn(Session::accept(h, theirs, peer.addr, config));
    let (mut r, mut w) = tokio::io::split(ours);
    let reader = tokio::spawn(async move {
        let mut sink = vec![0u8; 16 << 10];
        while let Ok(n) = r.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    });
    for piece in stream.chunks(chunk) {
        if w.write_all(piece).await.is_err() {
            break;
        }
    }
    let _ = w.shutdown().await;
    let accepted = tokio::time::timeout(Duration::from_secs(30), accept).await;
    let session = match accepted {
        Ok(Ok(Ok(s))) => Some(s),
        Ok(Ok(Err(_))) => None,
        Ok(Err(join)) => std::panic::resume_unwind(join.into_panic()),
        Err(_) => panic!("acceptor handshake did not end within 30 s (virtual)"),
    };
    for s in host.sessions().into_iter().chain(session) {
        s.mark_down();
        if tokio::time::timeout(Duration::from_secs(30), s.closed())
            .await
            .is_err()
        {
            panic!("session did not close after mark_down");
        }
    }
    while rx.try_recv().is_ok() {}
    drop(w);
    let _ = tokio::time::timeout(Duration::from_secs(30), reader).await;
}
