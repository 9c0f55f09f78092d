//! The `metrics` feature: the collector scraped over HTTP from an in-process responder while
//! traffic flows (the counters move by exactly the traffic sent between two scrapes), HELP
//! and TYPE lines, the keepalive RTT histogram, and bad requests answered 404/405/400
//! without stopping the responder. Real sockets on 127.0.0.1, default settings.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use msgr_core::testing::stop;
use msgr_core::{EntityName, EntityType, Incoming, Message, Messenger, Policy, StreamDispatcher};
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(10);

async fn messenger(name: EntityName, policy: Policy) -> (Messenger, Incoming) {
    let (d, incoming) = StreamDispatcher::new(1024);
    let m = Messenger::builder(name)
        .bind("127.0.0.1:0".parse().unwrap())
        .default_policy(policy)
        .dispatcher(Arc::new(d))
        .start()
        .await
        .unwrap();
    (m, incoming)
}

/// Serves `m`'s metrics on a kernel-chosen port; returns `HOST:PORT` and the stop token.
async fn serve(m: &Messenger) -> (String, CancellationToken) {
    let mut registry = Registry::default();
    msgr_core::metrics::register(&mut registry, m);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let stop = CancellationToken::new();
    tokio::spawn(msgr_core::metrics::serve_http(
        listener,
        Arc::new(registry),
        stop.clone(),
    ));
    (addr, stop)
}

/// Sends `request` raw and returns the whole response.
async fn http(addr: &str, request: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut out))
        .await
        .expect("response")
        .unwrap();
    String::from_utf8(out).unwrap()
}

async fn scrape(addr: &str) -> String {
    let r = http(addr, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
    assert!(
        r.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"),
        "{r}"
    );
    r.split_once("\r\n\r\n").unwrap().1.to_string()
}

/// The value of the sample `name{...}` whose labels contain every one of `labels`.
fn sample(text: &str, name: &str, labels: &[&str]) -> f64 {
    let found: Vec<f64> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.split(['{', ' ']).next() == Some(name))
        .filter(|l| labels.iter().all(|want| l.contains(want)))
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    assert_eq!(found.len(), 1, "one {name}{labels:?} in:\n{text}");
    found[0]
}

async fn take(incoming: &mut Incoming, n: usize) {
    for _ in 0..n {
        let r = tokio::time::timeout(WAIT, incoming.recv()).await.unwrap();
        assert!(r.is_some(), "stream ended");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_move_by_the_traffic_between_two_scrapes() {
    const SIZE: usize = 1000;
    let (s, mut si) = messenger(EntityName::osd(0), Policy::stateful_server(0)).await;
    let (c, _ci) = messenger(EntityName::client(-1), Policy::lossless_client(0)).await;
    let (addr, stop_http) = serve(&s).await;
    let conn = c.connect(s.addr(), EntityType::OSD).await.unwrap();
    let client_addr = c.addr().to_string();
    let peer = format!("peer=\"{client_addr}\"");
    let mine = [peer.as_str(), "entity=\"osd.0\"", "peer_type=\"client\""];

    for _ in 0..10 {
        conn.send(Message::new(0x7301, vec![7u8; SIZE]))
            .await
            .unwrap();
    }
    take(&mut si, 10).await;
    let first = scrape(&addr).await;
    for family in [
        "msgr_messages_received_total",
        "msgr_received_bytes_total",
        "msgr_messages_sent_total",
        "msgr_faults_total",
        "msgr_reconnects_total",
        "msgr_resent_messages_total",
        "msgr_queued_messages",
        "msgr_unacked_messages",
        "msgr_keepalive_rtt_seconds",
        "msgr_sessions",
        "msgr_dispatch_queue_messages",
        "msgr_throttle_current",
        "msgr_throttle_waiters",
        "msgr_messenger_messages_received_total",
        "msgr_messenger_keepalive_rtt_seconds",
        "msgr_pending_calls",
        "msgr_peer_info",
    ] {
        assert!(
            first.contains(&format!("# HELP {family} ")),
            "HELP {family}:\n{first}"
        );
        let ty = if family.ends_with("_total") {
            "counter"
        } else if family.ends_with("_seconds") {
            "histogram"
        } else {
            "gauge"
        };
        assert!(
            first.contains(&format!("# TYPE {family} {ty}\n")),
            "TYPE {family} {ty}:\n{first}"
        );
    }
    assert_eq!(sample(&first, "msgr_messages_received_total", &mine), 10.0);
    assert_eq!(
        sample(&first, "msgr_received_bytes_total", &mine),
        (10 * SIZE) as f64
    );
    assert_eq!(
        sample(
            &first,
            "msgr_sessions",
            &["state=\"open\"", "entity=\"osd.0\""]
        ),
        1.0
    );
    // The peer's name (known once a message from it arrived) and state, in its info.
    assert_eq!(
        sample(
            &first,
            "msgr_peer_info",
            &[peer.as_str(), "peer_name=\"client.-1\"", "state=\"open\""]
        ),
        1.0
    );

    for _ in 0..25 {
        conn.send(Message::new(0x7301, vec![7u8; SIZE]))
            .await
            .unwrap();
    }
    take(&mut si, 25).await;
    let second = scrape(&addr).await;
    // Exactly the traffic in between: 25 messages, 25 000 bytes (no resends on loopback
    // without faults).
    let moved = sample(&second, "msgr_messages_received_total", &mine)
        - sample(&first, "msgr_messages_received_total", &mine);
    assert_eq!(moved, 25.0);
    let bytes = sample(&second, "msgr_received_bytes_total", &mine)
        - sample(&first, "msgr_received_bytes_total", &mine);
    assert_eq!(bytes, (25 * SIZE) as f64);
    assert_eq!(
        sample(
            &second,
            "msgr_messenger_messages_received_total",
            &["entity=\"osd.0\""]
        ),
        35.0
    );
    assert_eq!(sample(&second, "msgr_faults_total", &mine), 0.0);
    stop_http.cancel();
    stop(&c).await;
    stop(&s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalive_round_trips_fill_the_histogram() {
    let (s, _si) = messenger(EntityName::osd(0), Policy::stateless_server(0)).await;
    let (c, _ci) = messenger(EntityName::client(-1), Policy::lossy_client(0)).await;
    let (addr, stop_http) = serve(&c).await;
    let conn = c.connect(s.addr(), EntityType::OSD).await.unwrap();
    // Each round trip lies inside its round: from before the keepalive is sent to after
    // the watcher recorded its ack. (Acks closer together than the watcher runs would be
    // coalesced, so each round waits for its record.)
    let mut bound = 0.0;
    for i in 1..=3 {
        let t = Instant::now();
        let acked = conn.keepalive_acked();
        conn.send_keepalive();
        tokio::time::timeout(WAIT, acked).await.unwrap().unwrap();
        let deadline = Instant::now() + WAIT;
        while c.stats().keepalive_rtt.count < i {
            assert!(Instant::now() < deadline, "RTT {i} not recorded");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        bound += t.elapsed().as_secs_f64();
    }
    let text = scrape(&addr).await;
    let peer = format!("peer=\"{}\"", s.addr());
    let labels = [peer.as_str()];
    assert_eq!(
        sample(&text, "msgr_keepalive_rtt_seconds_count", &labels),
        3.0
    );
    let sum = sample(&text, "msgr_keepalive_rtt_seconds_sum", &labels);
    // 1 ms of slack: the stamps are wall-clock, the bound monotonic.
    assert!(
        sum > 0.0 && sum <= bound + 0.001,
        "sum {sum} s, the three rounds took {bound} s"
    );
    let inf = sample(
        &text,
        "msgr_keepalive_rtt_seconds_bucket",
        &[peer.as_str(), "le=\"+Inf\""],
    );
    assert_eq!(inf, 3.0);
    assert_eq!(
        sample(
            &text,
            "msgr_messenger_keepalive_rtt_seconds_count",
            &["entity=\"client.-1\""]
        ),
        3.0
    );
    stop_http.cancel();
    stop(&c).await;
    stop(&s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_their_status_and_the_responder_goes_on() {
    let (s, _si) = messenger(EntityName::osd(0), Policy::stateless_server(0)).await;
    let (addr, stop_http) = serve(&s).await;
    let cases = [
        ("GET / HTTP/1.1\r\n\r\n", "HTTP/1.1 404 Not Found\r\n"),
        (
            "GET /favicon.ico HTTP/1.1\r\n\r\n",
            "HTTP/1.1 404 Not Found\r\n",
        ),
        (
            "POST /metrics HTTP/1.1\r\n\r\n",
            "HTTP/1.1 405 Method Not Allowed\r\n",
        ),
        ("hello\r\n\r\n", "HTTP/1.1 400 Bad Request\r\n"),
    ];
    for (req, status) in cases {
        let r = http(&addr, req).await;
        assert!(r.starts_with(status), "{req:?} -> {r}");
    }
    let r = http(&addr, "PUT /metrics HTTP/1.1\r\n\r\n").await;
    assert!(r.contains("\r\nAllow: GET, HEAD\r\n"), "{r}");
    // A head longer than 8 KiB without its end, then a client that hangs up mid-request.
    let long = format!("GET /metrics HTTP/1.1\r\nX: {}\r\n", "a".repeat(9000));
    assert!(http(&addr, &long).await.starts_with("HTTP/1.1 400 "));
    drop(tokio::net::TcpStream::connect(&addr).await.unwrap());
    // A client that stalls mid-request keeps its connection, not the responder.
    let mut stalled = tokio::net::TcpStream::connect(&addr).await.unwrap();
    stalled.write_all(b"GET /metr").await.unwrap();
    // Still serving.
    let text = scrape(&addr).await;
    assert!(text.contains("# TYPE msgr_sessions gauge"), "{text}");
    let head = http(&addr, "HEAD /metrics HTTP/1.1\r\n\r\n").await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n") && head.ends_with("\r\n\r\n"));
    drop(stalled);
    stop_http.cancel();
    stop(&s).await;
}
