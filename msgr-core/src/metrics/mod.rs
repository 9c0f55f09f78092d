//! Prometheus metrics of a messenger (feature `metrics`): a [`MessengerCollector`] that reads
//! [`Messenger::stats`] and [`Messenger::throttles`] at every scrape and encodes them with
//! the `prometheus-client` crate, and [`serve_http`], a small HTTP/1.1 responder of
//! `GET /metrics` in Prometheus's text format.
//!
//! A library user mounts the collector in their own registry beside their metrics:
//!
//! ```no_run
//! # async fn f(m: msgr_core::Messenger) -> std::io::Result<()> {
//! use std::sync::Arc;
//! use prometheus_client::registry::Registry;
//!
//! let mut registry = Registry::default();
//! msgr_core::metrics::register(&mut registry, &m);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:9283").await?;
//! let stop = tokio_util::sync::CancellationToken::new();
//! tokio::spawn(msgr_core::metrics::serve_http(listener, Arc::new(registry), stop));
//! # Ok(()) }
//! ```
//!
//! Every series carries `entity` (the messenger's name, e.g. `osd.0`). Per peer session,
//! with `peer` (its address and nonce) and `peer_type`: `msgr_peer_info` (always 1, with
//! the labels that change during a session's life, `peer_name` — `client.4123`, empty until
//! a message from it arrived — and `state`, to join on `peer` as Prometheus's info metrics
//! are), `msgr_messages_sent_total`, `msgr_messages_received_total`,
//! `msgr_sent_bytes_total`, `msgr_received_bytes_total` (payload bytes),
//! `msgr_resent_messages_total`, `msgr_acks_sent_total`, `msgr_acks_received_total`,
//! `msgr_faults_total`, `msgr_reconnects_total`, the gauges `msgr_queued_messages` and
//! `msgr_unacked_messages`, and the histogram `msgr_keepalive_rtt_seconds`. Per messenger:
//! the same counters over every session it had (ended ones and the loopback included) as
//! `msgr_messenger_*` (a sum over peers would miss the ended ones), `msgr_sessions{state}`,
//! `msgr_dispatch_queue_messages`, `msgr_pending_calls`, `msgr_throttle_current`,
//! `msgr_throttle_max` and `msgr_throttle_waiters` per throttle (`dispatch` in bytes,
//! `policy.TYPE.bytes` / `policy.TYPE.messages`), and `msgr_messenger_keepalive_rtt_seconds`.
//!
//! What it does not export: cumulative throttle waits and time waited (msgr-dispatch's
//! `Throttle` counts only the waiters of the moment), per-message-type counts, and
//! anything of ended sessions per peer (their counts stay in the `msgr_messenger_*` totals).

mod http;

use std::fmt::Write as _;

use msgr_pipe::{ConnState, SessionStats};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::messenger::Messenger;
use crate::stats::{ConnectionStats, RttHistogram, RTT_BUCKETS};

pub use http::serve_http;

/// Registers a [`MessengerCollector`] of `messenger` in `registry`.
pub fn register(registry: &mut Registry, messenger: &Messenger) {
    registry.register_collector(Box::new(MessengerCollector::new(messenger.clone())));
}

/// The registry's text in Prometheus's exposition format (0.0.4), as `GET /metrics` serves it.
pub fn encode(registry: &Registry) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail; an encoder error would only cut the text short.
    if prometheus_client::encoding::prometheus_text::encode(&mut out, registry).is_err() {
        let _ = writeln!(out, "# encoding failed");
    }
    out
}

/// A `prometheus-client` collector of one messenger's counters, read at every scrape.
#[derive(Debug)]
pub struct MessengerCollector {
    messenger: Messenger,
}

impl MessengerCollector {
    /// A collector of `messenger` (it keeps a handle, so the messenger's state stays readable
    /// after shutdown; the counters then stop moving).
    pub fn new(messenger: Messenger) -> Self {
        MessengerCollector { messenger }
    }
}

type Labels = Vec<(&'static str, String)>;

/// One counter of [`SessionStats`]: its name without `_total`, help, and reader.
struct Field {
    name: &'static str,
    help: &'static str,
    get: fn(&SessionStats) -> u64,
}

const COUNTERS: [Field; 9] = [
    Field {
        name: "messages_sent",
        help: "Messages written to the socket, resends included",
        get: |s| s.msgs_out,
    },
    Field {
        name: "messages_received",
        help: "Messages received and delivered",
        get: |s| s.msgs_in,
    },
    Field {
        name: "sent_bytes",
        help: "Payload bytes (front, middle, data) written, resends included",
        get: |s| s.bytes_out,
    },
    Field {
        name: "received_bytes",
        help: "Payload bytes (front, middle, data) received",
        get: |s| s.bytes_in,
    },
    Field {
        name: "resent_messages",
        help: "Messages written again after a reconnect",
        get: |s| s.resends,
    },
    Field {
        name: "acks_sent",
        help: "ACK frames sent",
        get: |s| s.acks_out,
    },
    Field {
        name: "acks_received",
        help: "ACK frames received",
        get: |s| s.acks_in,
    },
    Field {
        name: "faults",
        help: "Socket faults (failed connect attempts and broken sockets)",
        get: |s| s.faults,
    },
    Field {
        name: "reconnects",
        help: "Successful handshakes after the first",
        get: |s| s.reconnects,
    },
];

const GAUGES: [Field; 2] = [
    Field {
        name: "queued_messages",
        help: "Messages queued for sending, not yet written",
        get: |s| s.queued,
    },
    Field {
        name: "unacked_messages",
        help: "Messages written, not yet acknowledged by the peer",
        get: |s| s.unacked,
    },
];

const STATES: [(ConnState, &str); 6] = [
    (ConnState::Accepting, "accepting"),
    (ConnState::Connecting, "connecting"),
    (ConnState::Open, "open"),
    (ConnState::Standby, "standby"),
    (ConnState::Wait, "wait"),
    (ConnState::Closed, "closed"),
];

impl Collector for MessengerCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let m = &self.messenger;
        let stats = m.stats();
        let entity = m.name().to_string();
        let me: Labels = vec![("entity", entity.clone())];
        let peers: Vec<(Labels, &ConnectionStats)> = stats
            .connections
            .iter()
            .map(|c| (peer_labels(&entity, c), c))
            .collect();

        {
            let mut e = enc.encode_descriptor(
                "msgr_peer_info",
                "A peer session's name and state, always 1",
                None,
                MetricType::Gauge,
            )?;
            for (labels, c) in &peers {
                e.encode_family(&info_labels(labels, c))?
                    .encode_gauge(&1u64)?;
            }
        }
        for f in &COUNTERS {
            let name = format!("msgr_{}", f.name);
            let mut e = enc.encode_descriptor(&name, f.help, None, MetricType::Counter)?;
            for (labels, c) in &peers {
                let v = (f.get)(&c.stats);
                e.encode_family(labels)?
                    .encode_counter::<NoLabelSet, _, u64>(&v, None)?;
            }
        }
        for f in &GAUGES {
            let name = format!("msgr_{}", f.name);
            let mut e = enc.encode_descriptor(&name, f.help, None, MetricType::Gauge)?;
            for (labels, c) in &peers {
                e.encode_family(labels)?.encode_gauge(&(f.get)(&c.stats))?;
            }
        }
        {
            let mut e = enc.encode_descriptor(
                "msgr_keepalive_rtt_seconds",
                "Keepalive round trips, KEEPALIVE2 to its ACK",
                None,
                MetricType::Histogram,
            )?;
            for (labels, c) in &peers {
                histogram(&mut e.encode_family(labels)?, &c.keepalive_rtt)?;
            }
        }

        for f in &COUNTERS {
            let name = format!("msgr_messenger_{}", f.name);
            let help = format!("{}, over every session of the messenger", f.help);
            let mut e = enc.encode_descriptor(&name, &help, None, MetricType::Counter)?;
            e.encode_family(&me)?
                .encode_counter::<NoLabelSet, _, u64>(&(f.get)(&stats.total), None)?;
        }
        {
            let mut e = enc.encode_descriptor(
                "msgr_messenger_keepalive_rtt_seconds",
                "Keepalive round trips of every session of the messenger",
                None,
                MetricType::Histogram,
            )?;
            histogram(&mut e.encode_family(&me)?, &stats.keepalive_rtt)?;
        }
        {
            let mut e = enc.encode_descriptor(
                "msgr_sessions",
                "Registered sessions by state",
                None,
                MetricType::Gauge,
            )?;
            for (state, label) in STATES {
                let n = stats
                    .connections
                    .iter()
                    .filter(|c| c.state == state)
                    .count();
                let labels: Labels = vec![("entity", entity.clone()), ("state", label.into())];
                e.encode_family(&labels)?.encode_gauge(&n)?;
            }
        }
        gauge(
            &mut enc,
            "msgr_dispatch_queue_messages",
            "Messages and events waiting in the dispatch queue",
            &me,
            stats.dispatch_queue_len,
        )?;
        gauge(
            &mut enc,
            "msgr_pending_calls",
            "Connection::call requests waiting for their reply",
            &me,
            stats.pending_calls,
        )?;
        throttles(&mut enc, m, &entity)
    }
}

/// The labels of one peer session.
fn peer_labels(entity: &str, c: &ConnectionStats) -> Labels {
    vec![
        ("entity", entity.to_string()),
        ("peer", c.peer_addr.to_string()),
        ("peer_type", c.peer_type.to_string()),
    ]
}

/// A peer's labels and those that change during its session's life.
fn info_labels(labels: &Labels, c: &ConnectionStats) -> Labels {
    let state = STATES
        .iter()
        .find(|(s, _)| *s == c.state)
        .map_or("unknown", |(_, l)| l);
    let mut info = labels.clone();
    info.push((
        "peer_name",
        c.peer_name.map(|n| n.to_string()).unwrap_or_default(),
    ));
    info.push(("state", state.to_string()));
    info
}

fn gauge(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    labels: &Labels,
    v: usize,
) -> Result<(), std::fmt::Error> {
    enc.encode_descriptor(name, help, None, MetricType::Gauge)?
        .encode_family(labels)?
        .encode_gauge(&v)
}

fn histogram(
    e: &mut prometheus_client::encoding::MetricEncoder,
    h: &RttHistogram,
) -> Result<(), std::fmt::Error> {
    // The encoder takes per-bucket counts and accumulates them itself.
    let buckets: Vec<(f64, u64)> = RTT_BUCKETS
        .iter()
        .copied()
        .chain(std::iter::once(f64::INFINITY))
        .zip(h.counts.iter().copied())
        .collect();
    e.encode_histogram::<NoLabelSet>(h.sum, h.count, &buckets, None)
}

fn throttles(
    enc: &mut DescriptorEncoder,
    m: &Messenger,
    entity: &str,
) -> Result<(), std::fmt::Error> {
    let readings = m.throttles();
    let labels = |name: &str| -> Labels {
        vec![
            ("entity", entity.to_string()),
            ("throttle", name.to_string()),
        ]
    };
    type Reader = fn(&crate::stats::ThrottleReading) -> u64;
    let families: [(&str, &str, Reader); 3] = [
        (
            "msgr_throttle_current",
            "Units a throttle holds now: bytes for dispatch and policy.TYPE.bytes, messages for policy.TYPE.messages",
            |t| t.current,
        ),
        (
            "msgr_throttle_max",
            "A throttle's limit, 0 for none",
            |t| t.max,
        ),
        (
            "msgr_throttle_waiters",
            "Acquisitions waiting on a throttle now",
            |t| t.waiters as u64,
        ),
    ];
    for (name, help, get) in families {
        let mut e = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
        for t in &readings {
            e.encode_family(&labels(&t.name))?.encode_gauge(&get(t))?;
        }
    }
    Ok(())
}
