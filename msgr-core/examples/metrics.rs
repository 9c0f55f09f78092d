//! A messenger's Prometheus metrics mounted in the application's own registry, beside its
//! own metrics, and served at `/metrics` (feature `metrics`). The same collector backs
//! `msgr serve --metrics ADDR`.
//!
//! Run with `cargo run -p msgr-core --features metrics --example metrics`; `cargo test -p
//! msgr-core --examples` runs it as a test (the crate's tests enable the feature).

use std::sync::Arc;
use std::time::Duration;

use msgr_core::{EntityName, EntityType, Message, Messenger, Policy, StreamDispatcher};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (dispatcher, mut incoming) = StreamDispatcher::new(64);
    let server = Messenger::builder(EntityName::osd(0))
        .bind("127.0.0.1:0".parse()?)
        .default_policy(Policy::stateless_server(0))
        .dispatcher(Arc::new(dispatcher))
        .start()
        .await?;

    // The application's registry: its own counter, and the messenger's collector.
    let mut registry = Registry::default();
    let handled: Counter = Counter::default();
    registry.register(
        "app_requests_handled",
        "Requests the app handled",
        handled.clone(),
    );
    msgr_core::metrics::register(&mut registry, &server);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let at = listener.local_addr()?;
    let stop = CancellationToken::new();
    let http = tokio::spawn(msgr_core::metrics::serve_http(
        listener,
        Arc::new(registry),
        stop.clone(),
    ));
    println!("metrics on http://{at}/metrics");

    let client = Messenger::builder(EntityName::client(-1))
        .bind("127.0.0.1:0".parse()?)
        .default_policy(Policy::lossy_client(0))
        .start()
        .await?;
    let conn = client.connect(server.addr(), EntityType::OSD).await?;
    for n in 0..5u8 {
        conn.send(Message::new(0x7401, vec![n; 100])).await?;
    }
    for _ in 0..5 {
        tokio::time::timeout(Duration::from_secs(10), incoming.recv())
            .await?
            .ok_or("server stopped")?;
        handled.inc();
    }

    // What a Prometheus server would scrape.
    let mut scrape = tokio::net::TcpStream::connect(at).await?;
    scrape.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").await?;
    let mut text = String::new();
    scrape.read_to_string(&mut text).await?;
    for line in text.lines().filter(|l| {
        l.starts_with("app_requests_handled_total") || l.starts_with("msgr_messages_received_total")
    }) {
        println!("{line}");
    }
    assert!(text.contains("app_requests_handled_total 5"), "{text}");
    assert!(
        text.contains("msgr_messenger_received_bytes_total{entity=\"osd.0\"} 500"),
        "{text}"
    );

    stop.cancel();
    http.await?;
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
        panic!("metrics failed: {e}");
    }
}
