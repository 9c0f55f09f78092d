//! `msgr serve --metrics ADDR --stats-interval S --keepalive S`, a real child process: its
//! `/metrics` scraped during traffic from an in-process client (the counters move by exactly
//! the messages and bytes sent between two scrapes), the keepalive RTT histogram filled, bad
//! requests answered 404/405 without stopping it, interval lines whose rates add up to the
//! traffic, and on SIGINT the table of peers with the client's address and name.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use msgr_core::{EntityAddr, EntityName, EntityType, Message, Messenger, Policy, StreamDispatcher};

const WAIT: Duration = Duration::from_secs(20);
const SIZE: usize = 1000;

/// `GET`s (or sends `request` to) the metrics address; the whole response.
fn http(addr: &str, request: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

fn scrape(addr: &str) -> String {
    http(addr, "GET /metrics HTTP/1.1\r\n\r\n")
}

/// The sum of the samples of `name` whose line contains `label`.
fn value(text: &str, name: &str, label: &str) -> f64 {
    text.lines()
        .filter(|l| l.split(['{', ' ']).next() == Some(name) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The `msgr serve` child, killed if the test fails before it stops it.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An interval line (not the column header `[interval] ...`).
fn is_interval(l: &str) -> bool {
    l.starts_with('[') && l.contains(" s]")
}

#[test]
fn serve_exports_metrics_interval_lines_and_a_peer_table() {
    let mut child = Running(
        common::msgr()
            .args(["serve", "--bind", "127.0.0.1:0", "--name", "osd.3"])
            .args(["--metrics", "127.0.0.1:0", "--stats-interval", "0.2"])
            .args(["--keepalive", "0.1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start msgr serve"),
    );
    let mut stdout = BufReader::new(child.0.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    let server: EntityAddr = first.trim().parse().expect("address line");
    let rest = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let (tx, lines) = mpsc::channel::<String>();
    let stderr = child.0.stderr.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let mut seen = Vec::new();
    let next_line = |seen: &mut Vec<String>| {
        let l = lines.recv_timeout(WAIT).expect("a stderr line");
        seen.push(l.clone());
        l
    };
    let metrics = loop {
        let l = next_line(&mut seen);
        if let Some(rest) = l.strip_prefix("msgr serve: metrics on http://") {
            break rest.trim_end_matches("/metrics").to_string();
        }
    };

    let rt = tokio::runtime::Runtime::new().unwrap();
    let (d, mut echoes) = StreamDispatcher::new(1024);
    let client = rt.block_on(async {
        Messenger::builder(EntityName::client(4242))
            .bind("127.0.0.1:0".parse().unwrap())
            .default_policy(Policy::lossless_client(0))
            .dispatcher(Arc::new(d))
            .start()
            .await
            .unwrap()
    });
    let conn = rt
        .block_on(client.connect(server, EntityType::OSD))
        .expect("connect");
    let me = format!("peer=\"{}\"", client.addr());
    let mut send = |n: usize| {
        rt.block_on(async {
            for _ in 0..n {
                conn.send(Message::new(0x7b10, vec![1u8; SIZE]))
                    .await
                    .unwrap();
            }
            // Echo mode: each echo back means the server received that message.
            for _ in 0..n {
                tokio::time::timeout(WAIT, echoes.recv())
                    .await
                    .expect("echo")
                    .expect("stream");
            }
        })
    };

    send(50);
    let one = scrape(&metrics);
    assert!(one.starts_with("HTTP/1.1 200 OK\r\n"), "{one}");
    for family in [
        "msgr_messages_received_total",
        "msgr_keepalive_rtt_seconds",
        "msgr_sessions",
    ] {
        assert!(one.contains(&format!("# HELP {family} ")), "{one}");
        assert!(one.contains(&format!("# TYPE {family} ")), "{one}");
    }
    assert_eq!(value(&one, "msgr_messages_received_total", &me), 50.0);
    // The writer counts a batch once written: the client may hold the echoes an instant
    // before the count moves.
    let sent = |text: &str| value(text, "msgr_messages_sent_total", &me);
    let deadline = Instant::now() + WAIT;
    let mut echoed = one.clone();
    while sent(&echoed) < 50.0 {
        assert!(Instant::now() < deadline, "{echoed}");
        std::thread::sleep(Duration::from_millis(10));
        echoed = scrape(&metrics);
    }
    assert_eq!(sent(&echoed), 50.0);
    assert_eq!(
        value(&one, "msgr_received_bytes_total", &me),
        (50 * SIZE) as f64
    );
    send(30);
    let two = scrape(&metrics);
    let moved = value(&two, "msgr_messages_received_total", &me)
        - value(&one, "msgr_messages_received_total", &me);
    assert_eq!(moved, 30.0, "between the scrapes");
    let bytes = value(&two, "msgr_received_bytes_total", &me)
        - value(&one, "msgr_received_bytes_total", &me);
    assert_eq!(bytes, (30 * SIZE) as f64);

    // The server's keepalives (every 0.1 s) come back acked: round trips recorded.
    let deadline = Instant::now() + WAIT;
    loop {
        let text = scrape(&metrics);
        let n = value(&text, "msgr_keepalive_rtt_seconds_count", &me);
        let sum = value(&text, "msgr_keepalive_rtt_seconds_sum", &me);
        if n >= 1.0 {
            assert!(sum > 0.0 && sum < n, "{n} round trips took {sum} s");
            break;
        }
        assert!(Instant::now() < deadline, "no keepalive RTT recorded");
        std::thread::sleep(Duration::from_millis(50));
    }

    // Bad requests: their status, and the server goes on.
    assert!(http(&metrics, "GET /nope HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404 "));
    assert!(http(&metrics, "POST /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405 "));
    assert!(http(&metrics, "\u{1}\u{2}\r\n\r\n").starts_with("HTTP/1.1 400 "));
    assert!(scrape(&metrics).contains("# TYPE msgr_sessions gauge"));

    // Two more interval lines, so that the traffic is inside the reported intervals.
    let mut after = 0;
    while after < 2 {
        if is_interval(&next_line(&mut seen)) {
            after += 1;
        }
    }
    let _ = Command::new("kill")
        .args(["-INT", &child.0.id().to_string()])
        .status();
    let status = child.0.wait().unwrap();
    assert!(status.success(), "msgr serve exited with {status}");
    while let Ok(l) = lines.recv_timeout(Duration::from_secs(2)) {
        seen.push(l);
    }
    rt.block_on(async {
        client.shutdown();
        client.wait().await;
    });

    // Each interval line: [ FROM-TO s] in msg/s, in MB/s, out msg/s, out MB/s, sessions,
    // faults, reconnects. The rates times the intervals add up to the 80 messages, within
    // the rounding of the printed figures.
    let intervals: Vec<Vec<f64>> = seen
        .iter()
        .filter(|l| is_interval(l))
        .map(|l| {
            let (span, rest) = l.trim_start_matches('[').split_once("s]").unwrap();
            let (from, to) = span.trim().split_once('-').unwrap();
            let mut v = vec![from.trim().parse().unwrap(), to.trim().parse().unwrap()];
            v.extend(rest.split_whitespace().map(|x| x.parse::<f64>().unwrap()));
            v
        })
        .collect();
    assert!(intervals.len() >= 2, "{seen:#?}");
    let total: f64 = intervals.iter().map(|v| v[2] * (v[1] - v[0])).sum();
    let bytes: f64 = intervals.iter().map(|v| v[3] * 1e6 * (v[1] - v[0])).sum();
    // What the printed figures' rounding allows per line: a rate to its last digit (0.5
    // msg/s, 0.0005 MB/s) over the interval, and the interval's ends to 0.005 s each at
    // the line's rate.
    let slack = |rate: usize, half_unit: f64, scale: f64| -> f64 {
        intervals
            .iter()
            .map(|v| half_unit * (v[1] - v[0]) + v[rate] * scale * 0.01)
            .sum::<f64>()
    };
    let (msg_slack, byte_slack) = (slack(2, 0.5, 1.0), slack(3, 500.0, 1e6));
    assert!(
        (total - 80.0).abs() <= msg_slack,
        "rates add up to {total}, not 80 (slack {msg_slack}): {seen:#?}"
    );
    assert!(
        (bytes - 80_000.0).abs() <= byte_slack,
        "bytes add up to {bytes}, not 80 000 (slack {byte_slack}): {seen:#?}"
    );
    assert!(
        intervals.iter().all(|v| v[6] <= 1.0),
        "at most one session open"
    );

    // The exit table: the client by its address and name.
    let out = rest.join().unwrap();
    assert!(out.contains("PEER"), "{out}");
    let row = out
        .lines()
        .find(|l| l.starts_with(&client.addr().to_string()))
        .unwrap_or_else(|| panic!("no row for {} in {out}", client.addr()));
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cols[1], "client.4242", "{row}");
    assert_eq!(cols[3], "80", "{row}");
    assert_eq!(cols[4], (80 * SIZE).to_string(), "{row}");
}
