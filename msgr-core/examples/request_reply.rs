//! The async API for tokio users: a server that reads its messages as a [`Stream`] and a
//! client that awaits its connection and its replies.
//!
//! * `Messenger::connect(..).await` resolves once the session is open, or says why it did
//!   not ([`ConnectError`]): here a port where nothing listens is `Unreachable` at once.
//! * `Connection::call(msg, timeout).await` sends a request and waits for the reply carrying
//!   its `tid`; several calls wait on one connection at once, answered in any order.
//! * `StreamDispatcher` gives the server an `Incoming` stream, bounded: a server that reads
//!   slowly makes its peers wait instead of growing a queue.
//!
//! Run with `cargo run -p msgr-core --example request_reply`; `cargo test -p msgr-core
//! --examples` runs it as a test.
//!
//! [`Stream`]: futures_core::Stream

use std::sync::Arc;
use std::time::Duration;

use msgr_core::{
    ConnectError, EntityAddr, EntityName, EntityType, Message, Messenger, Policy, StreamDispatcher,
};

const MSG_SQUARE: u16 = 0x7101;
const MSG_SQUARE_REPLY: u16 = 0x7102;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The server: at most 32 unread messages; its task answers each with the request's tid.
    let (dispatcher, mut incoming) = StreamDispatcher::new(32);
    let server = Messenger::builder(EntityName::osd(0))
        .bind("127.0.0.1:0".parse()?)
        .default_policy(Policy::stateless_server(0))
        .dispatcher(Arc::new(dispatcher))
        .start()
        .await?;
    let answering = tokio::spawn(async move {
        while let Some(req) = incoming.recv().await {
            let Some(n) = req.msg.front.first().copied() else {
                continue;
            };
            let square = u16::from(n) * u16::from(n);
            let reply = Message::new(MSG_SQUARE_REPLY, square.to_le_bytes().to_vec())
                .with_tid(req.msg.header.tid);
            // The stream's consumer is an ordinary task: it may wait on the peer.
            let _ = req.conn.send(reply).await;
        }
    });

    let client = Messenger::builder(EntityName::client(-1))
        .bind("127.0.0.1:0".parse()?)
        .default_policy(Policy::lossy_client(0))
        .start()
        .await?;

    // Nothing listens at port 1 of 127.0.0.1: the first attempt's error comes back at once.
    let nowhere: EntityAddr = "127.0.0.1:1/0".parse()?;
    match client.connect(nowhere, EntityType::OSD).await {
        Err(ConnectError::Unreachable { error, .. }) => {
            println!("{nowhere}: unreachable ({error})")
        }
        other => return Err(format!("expected unreachable, got {other:?}").into()),
    }

    let conn = client.connect(server.addr(), EntityType::OSD).await?;
    println!("connected to {}", conn.peer_addr());

    // Ten requests at once on one connection; each reply finds its caller by tid.
    let calls = (1..=10u8).map(|n| {
        let conn = conn.clone();
        async move {
            let reply = conn
                .call(Message::new(MSG_SQUARE, vec![n]), Duration::from_secs(5))
                .await?;
            let bytes: [u8; 2] = reply.msg.front[..].try_into()?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>((n, u16::from_le_bytes(bytes)))
        }
    });
    let mut tasks = Vec::new();
    for call in calls {
        tasks.push(tokio::spawn(call));
    }
    for t in tasks {
        let (n, square) = t.await?.map_err(|e| e.to_string())?;
        println!("{n}^2 = {square}");
        assert_eq!(square, u16::from(n) * u16::from(n));
    }

    for m in [&client, &server] {
        m.shutdown();
        m.wait().await;
    }
    // The stream ended with the server: its task returns.
    answering.await?;
    Ok(())
}

#[cfg(test)]
#[test]
fn example_runs() {
    if let Err(e) = main() {
        panic!("request_reply failed: {e}");
    }
}
