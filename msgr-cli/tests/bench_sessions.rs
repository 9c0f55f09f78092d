//! `msgr bench`'s many-sessions case and its memory figures: idle sessions from client
//! messengers without a listener (one descriptor each, so a descriptor limit that two per
//! session would exceed still opens them all), the depth-1 probe beside them, and the peak
//! memory of every run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;

const HANG: Duration = Duration::from_secs(180);

/// Runs `msgr bench ARGS --json` under `sh`'s `ulimit -n LIMIT` (soft and hard); the report.
fn bench_json_limited(limit: u32, args: &[&str]) -> serde_json::Value {
    let script = format!("ulimit -n {limit} && exec \"$0\" \"$@\"");
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c")
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_msgr"))
        .arg("bench")
        .args(args)
        .arg("--json");
    let (out, _) = run_within(&mut cmd, HANG);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "msgr bench {args:?}: {stderr}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON value ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// 700 idle sessions under a limit of 1,000 descriptors per process: a client messenger with
/// a listener took two (700 x 2 > 1,000: the bench's old idle clients failed beyond the
/// limit, one bind or connect at a time, and a failed one waited out the 30 s answer
/// timeout); without one, every session opens, well inside that timeout, and the probe's
/// round trips ran on both servers.
#[test]
fn idle_sessions_take_one_descriptor_each_and_all_open() {
    const SESSIONS: u64 = 700;
    let report = bench_json_limited(
        1000,
        &[
            "--mode",
            "rr",
            "--size",
            "64",
            "--count",
            "200",
            "--transport",
            "msgr",
            "--protocol",
            "v1",
            "--idle-connections",
            "700",
        ],
    );
    let idle = &report["idle"];
    assert_eq!(idle["connections"], SESSIONS, "{idle}");
    assert_eq!(idle["errors"], 0, "{idle}");
    assert_eq!(idle["nofile_limit"], 1000, "the limit held: {idle}");
    let open = idle["seconds_to_open"].as_f64().unwrap();
    assert!(open > 0.0 && open < 30.0, "opened in {open} s");
    for side in ["server_bytes_per_connection", "client_bytes_per_connection"] {
        let bytes = idle[side].as_u64().unwrap();
        // The old idle client (a messenger with a listener and a bench histogram) was
        // 277 KiB; what a session holds now is tens of KiB at most, and never nothing.
        assert!(bytes > 0 && bytes < 96 * 1024, "{side} {bytes}: {idle}");
    }
    let server_after = idle["server_rss_after_bytes"].as_u64().unwrap();
    let server_before = idle["server_rss_before_bytes"].as_u64().unwrap();
    assert!(server_after > server_before, "{idle}");
    let probe = &idle["probe"];
    assert_eq!(probe["size"], 64, "{probe}");
    assert_eq!(probe["rounds"], 1, "--count runs one round: {probe}");
    assert_eq!(probe["round_trips_single"], 200, "{probe}");
    assert_eq!(probe["round_trips_loaded"], 200, "{probe}");
    let single = probe["p50_single_us"].as_f64().unwrap();
    let loaded = probe["p50_loaded_us"].as_f64().unwrap();
    assert!(single > 0.0 && loaded > 0.0, "{probe}");
    let ratio = probe["p50_vs_single"].as_f64().unwrap();
    assert!(
        (ratio - loaded / single).abs() < 0.01,
        "one round: the ratio of the two p50s: {probe}"
    );
    assert_eq!(report["lost"], 0);
}

/// Every run reports the peak of its own rounds (the process's high-water mark reset before
/// each): more than a MiB (a process with its runtime), never above the process's peak, which
/// is the highest over the whole bench; in the JSON and the table's column.
#[test]
fn every_run_reports_its_peak_memory() {
    let (out, _) = run_within(
        msgr().args([
            "bench",
            "--mode",
            "stream",
            "--size",
            "64,1M",
            "--count",
            "200",
            "--transport",
            "both",
            "--protocol",
            "v1",
            "--json",
        ]),
        HANG,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("peak MiB"), "the table's column: {stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let process_peak = report["peak_rss_bytes"].as_u64().unwrap();
    let runs = report["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 4, "two sizes, raw and msgr: {report}");
    for run in runs {
        let peak = run["peak_rss_bytes"].as_u64().unwrap();
        assert!(
            peak > 1 << 20 && peak <= process_peak,
            "{run} vs {process_peak}"
        );
    }
}
