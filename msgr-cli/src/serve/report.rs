//! What `msgr serve` tells a person while it runs and when it stops: one line of rates per
//! `--stats-interval` (as iperf3's interval reports), keepalives on every open session for
//! `--keepalive`, and the table of peers printed at exit.
//!
//! It reads only `Messenger::stats` and the dispatcher's counts; it changes nothing in the
//! messenger but for the keepalives it is asked to send.

use std::fmt::Write as _;
use std::time::Duration;

use msgr_core::{ConnState, ConnectionStats, Messenger, MessengerStats, SessionStats};
use msgr_wire::EntityAddr;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::ConnCounts;

/// Prints one line of rates to stderr every `every` until `stop`.
pub async fn intervals(m: Messenger, every: Duration, stop: CancellationToken) {
    let start = Instant::now();
    let mut tick = tokio::time::interval_at(start + every, every);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last = (start, m.stats().total);
    eprintln!("{}", header());
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = Instant::now();
        let stats = m.stats();
        eprintln!(
            "{}",
            line(
                (last.0 - start, now - start),
                &last.1,
                &stats.total,
                open_sessions(&stats)
            )
        );
        last = (now, stats.total);
    }
}

/// Sends a keepalive on every open session every `every` until `stop`.
pub async fn keepalives(m: Messenger, every: Duration, stop: CancellationToken) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        for c in m.stats().connections {
            if c.state == ConnState::Open {
                if let Some(conn) = m.connection(&c.peer_addr) {
                    conn.send_keepalive();
                }
            }
        }
    }
}

fn open_sessions(s: &MessengerStats) -> usize {
    s.connections
        .iter()
        .filter(|c| c.state == ConnState::Open)
        .count()
}

/// The column names above the interval lines.
pub fn header() -> String {
    format!(
        "{:<17} {:>11} {:>12} {:>11} {:>12} {:>8} {:>6} {:>10}",
        "[interval]",
        "in msg/s",
        "in MB/s",
        "out msg/s",
        "out MB/s",
        "sessions",
        "faults",
        "reconnects"
    )
}

/// One interval's line: rates between two totals over `(from, to)` since the start, the open
/// sessions now, and the faults and reconnects of the interval.
pub fn line(
    (from, to): (Duration, Duration),
    before: &SessionStats,
    now: &SessionStats,
    sessions: usize,
) -> String {
    let secs = (to - from).as_secs_f64().max(1e-9);
    let rate = |a: u64, b: u64| b.saturating_sub(a) as f64 / secs;
    format!(
        "[{:>6.2}-{:<6.2} s] {:>11.0} {:>12.3} {:>11.0} {:>12.3} {:>8} {:>6} {:>10}",
        from.as_secs_f64(),
        to.as_secs_f64(),
        rate(before.msgs_in, now.msgs_in),
        rate(before.bytes_in, now.bytes_in) / 1e6,
        rate(before.msgs_out, now.msgs_out),
        rate(before.bytes_out, now.bytes_out) / 1e6,
        sessions,
        now.faults.saturating_sub(before.faults),
        now.reconnects.saturating_sub(before.reconnects),
    )
}

/// The table printed at exit: every peer the server heard from, by address, with its name,
/// what it received from it, and the session's counters if it was still open at exit
/// (`live`, taken before the shutdown).
pub fn peer_table(peers: &[(EntityAddr, ConnCounts)], live: &MessengerStats) -> String {
    let mut rows: Vec<(String, String, Option<&ConnectionStats>, u64, u64)> = peers
        .iter()
        .map(|(addr, counts)| {
            let session = live.connections.iter().find(|c| c.peer_addr == *addr);
            (
                addr.to_string(),
                counts.peer.clone(),
                session,
                counts.messages,
                counts.bytes,
            )
        })
        .collect();
    // Sessions that sent nothing yet still get a row.
    for c in &live.connections {
        if !peers.iter().any(|(a, _)| *a == c.peer_addr) {
            let name = c
                .peer_name
                .map_or_else(|| format!("{}.?", c.peer_type), |n| n.to_string());
            rows.push((c.peer_addr.to_string(), name, Some(c), 0, 0));
        }
    }
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<32} {:<14} {:<8} {:>10} {:>14} {:>10} {:>14} {:>6} {:>10}",
        "PEER",
        "NAME",
        "STATE",
        "MSGS IN",
        "BYTES IN",
        "MSGS OUT",
        "BYTES OUT",
        "FAULTS",
        "RECONNECTS"
    );
    for (addr, name, session, msgs, bytes) in rows {
        let (state, out_msgs, out_bytes, faults, reconnects) = match session {
            Some(c) => (
                format!("{:?}", c.state).to_lowercase(),
                c.stats.msgs_out.to_string(),
                c.stats.bytes_out.to_string(),
                c.stats.faults.to_string(),
                c.stats.reconnects.to_string(),
            ),
            None => (
                "ended".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
            ),
        };
        let _ = writeln!(
            out,
            "{addr:<32} {name:<14} {state:<8} {msgs:>10} {bytes:>14} {out_msgs:>10} {out_bytes:>14} {faults:>6} {reconnects:>10}"
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interval_line_has_the_rates_of_its_interval() {
        let before = SessionStats {
            msgs_in: 100,
            bytes_in: 1_000_000,
            faults: 1,
            ..SessionStats::default()
        };
        let now = SessionStats {
            msgs_in: 300,
            bytes_in: 5_000_000,
            msgs_out: 200,
            bytes_out: 4_000_000,
            faults: 3,
            ..SessionStats::default()
        };
        let l = line(
            (Duration::from_secs(2), Duration::from_secs(4)),
            &before,
            &now,
            2,
        );
        let cols: Vec<&str> = l.split_whitespace().collect();
        // [  2.00-4.00   s] 100 2.000 100 2.000 2 2 0
        assert_eq!(cols[0], "[");
        assert_eq!(cols[1], "2.00-4.00");
        assert_eq!(
            &cols[3..],
            ["100", "2.000", "100", "2.000", "2", "2", "0"],
            "{l}"
        );
        assert_eq!(header().split_whitespace().count(), 12);
    }
}
