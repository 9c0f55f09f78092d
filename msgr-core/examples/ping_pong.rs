//! Two messengers exchanging typed messages through [`Dispatcher`]s: the client sends
//! `Ping { n }`, the server answers `Pong { n }` on the same connection. The pattern for an
//! application that reacts to every message as it comes (for request/response and streams,
//! see `request_reply.rs`). Run with `cargo run -p msgr-core --example ping_pong`; `cargo
//! test -p msgr-core --examples` runs it as a test.
//!
//! A dispatcher answers with [`Connection::queue`](msgr_core::Connection::queue), which never
//! waits: awaiting `send` there would stall the messenger's one dispatch task on a slow peer.

use std::sync::Arc;

use msgr_core::wire::typed::{decode_typed, encode_typed, TypedMessage};
use msgr_core::{
    BoxFuture, Dispatched, Dispatcher, EntityName, EntityType, Messenger, Policy, Received,
};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

#[derive(Debug, Serialize, Deserialize)]
struct Ping {
    n: u64,
}
impl TypedMessage for Ping {
    const TYPE: u16 = 0x7001;
}

#[derive(Debug, Serialize, Deserialize)]
struct Pong {
    n: u64,
}
impl TypedMessage for Pong {
    const TYPE: u16 = 0x7002;
}

/// Answers every Ping with a Pong.
struct Server;

impl Dispatcher for Server {
    fn dispatch(&self, m: Received) -> BoxFuture<'_, Dispatched> {
        Box::pin(async move {
            let Ok(ping) = decode_typed::<Ping>(&m.msg) else {
                return Dispatched::Pass(m);
            };
            if let Ok(pong) = encode_typed(&Pong { n: ping.n }) {
                // Never wait in a dispatcher: `queue` does not.
                let _ = m.conn.queue(pong);
            }
            Dispatched::Handled
        })
    }
}

/// Forwards every Pong to the main task.
struct Client(mpsc::UnboundedSender<Pong>);

impl Dispatcher for Client {
    fn dispatch(&self, m: Received) -> BoxFuture<'_, Dispatched> {
        Box::pin(async move {
            match decode_typed::<Pong>(&m.msg) {
                Ok(pong) => {
                    let _ = self.0.send(pong);
                    Dispatched::Handled
                }
                Err(_) => Dispatched::Pass(m),
            }
        })
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = Messenger::builder(EntityName::osd(0))
        .bind("127.0.0.1:0".parse()?)
        .default_policy(Policy::stateless_server(0))
        .dispatcher(Arc::new(Server))
        .start()
        .await?;

    let (tx, mut pongs) = mpsc::unbounded_channel();
    let client = Messenger::builder(EntityName::client(-1))
        .bind("127.0.0.1:0".parse()?)
        .default_policy(Policy::lossy_client(0))
        .dispatcher(Arc::new(Client(tx)))
        .start()
        .await?;

    // Resolves once the session is open, or says why it did not.
    let conn = client.connect(server.addr(), EntityType::OSD).await?;
    for n in 1..=3 {
        conn.send(encode_typed(&Ping { n })?).await?;
        let pong = pongs.recv().await.ok_or("client stopped")?;
        println!("ping {n} -> pong {}", pong.n);
        assert_eq!(pong.n, n);
    }

    for m in [&client, &server] {
        m.shutdown();
        m.wait().await;
    }
    Ok(())
}

#[cfg(test)]
#[test]
fn example_runs() {
    if let Err(e) = main() {
        panic!("ping_pong failed: {e}");
    }
}
