//! Two messengers exchanging typed messages: the client sends `Ping { n }`, the server
//! answers `Pong { n }` on the same connection. Run with
//! `cargo run -p msgr-core --example ping_pong`.

use std::sync::Arc;

use msgr_core::{BoxFuture, Dispatched, Dispatcher, Messenger, Policy, Received};
use msgr_wire::typed::{decode_typed, encode_typed, TypedMessage};
use msgr_wire::{EntityName, EntityType};
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
                let _ = m.conn.send(pong).await;
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

    let conn = client.connect(server.addr(), EntityType::OSD)?;
    for n in 1..=3 {
        conn.send(encode_typed(&Ping { n })?).await?;
        let pong = pongs.recv().await.ok_or("client stopped")?;
        println!("ping {n} -> pong {}", pong.n);
    }

    for m in [&client, &server] {
        m.shutdown();
        m.wait().await;
    }
    Ok(())
}
