//! `msgr bench -t`, `--plot` and the live rate: the budget is split over cases, transports
//! and rounds as the expected-duration line says, the run keeps to it (every measured
//! window at least its share, the whole within a generous bound), the plot is a valid SVG
//! (or HTML page) with a panel and a line for each case and transport, and the live rate
//! shows on a terminal only.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::*;

const HANG: Duration = Duration::from_secs(180);

fn tmp(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name)
}

/// Every text element of an SVG document, which must parse as XML with an `svg` root.
fn svg_texts(svg: &str) -> (roxmltree::Document<'_>, Vec<String>) {
    let doc = roxmltree::Document::parse(svg).unwrap_or_else(|e| panic!("not XML: {e}"));
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    let texts = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .map(|n| n.text().unwrap_or_default().trim().to_owned())
        .collect();
    (doc, texts)
}

#[test]
fn the_budget_is_split_as_announced_and_kept_and_the_plot_shows_every_case() {
    let plot = tmp("bench-time.svg");
    let _ = std::fs::remove_file(&plot);
    let budget = 4.0;
    let (out, took) = run_within(
        msgr()
            .args(["bench", "-t", "4", "--json", "--plot"])
            .arg(&plot),
        HANG,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // The default plan: 5 cases x 4 transports (raw TCP, msgr v1, msgr2 crc, msgr2 secure);
    // 4 s allow 2 rounds of 0.1 s runs.
    assert_eq!(
        stderr.lines().next().unwrap(),
        "expected duration: 4.0 s (5 cases x 4 transports x 2 rounds = 40 runs of 0.100 s, plus setup)"
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let runs = report["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 20);
    let mut measured = 0.0;
    for run in runs {
        assert_eq!(run["rounds"], 2, "{run}");
        // Each round's window opens before its first send and closes at its last delivery,
        // and the senders stop only once their 0.1 s have passed.
        let seconds = run["seconds"].as_f64().unwrap();
        assert!(seconds >= 2.0 * 0.1 * 0.9, "{run}");
        measured += seconds;
    }
    assert!(
        measured >= budget * 0.95,
        "measured {measured} s of {budget}"
    );
    // Setup, drain and teardown come on top: a few hundred ms a run in a debug build, up to
    // a second on a loaded 2-core machine (40 runs: 35 s quiet, 49-64 s at load 4-5). What
    // this bounds is the budget's meaning: taken per run instead of for the whole, the 40
    // runs alone would last 40 x 4 s = 160 s. Half of that separates the two with the
    // machine's load as margin.
    let per_run_reading = budget * 40.0;
    assert!(
        took < Duration::from_secs_f64(per_run_reading / 2.0),
        "{took:?} for a {budget} s budget"
    );
    // No idle-connection phase unless asked for.
    assert!(report["idle"].is_null(), "{report}");

    let svg = std::fs::read_to_string(&plot).unwrap();
    let (doc, texts) = svg_texts(&svg);
    let has = |s: &str| texts.iter().filter(|t| t.contains(s)).count();
    // A latency panel per request/response case, with a legend line per transport.
    for case in ["rr 4 KiB depth 1", "rr 4 KiB x4 conns depth 128"] {
        assert_eq!(has(&format!("{case}: round-trip latency")), 1, "{texts:?}");
    }
    assert_eq!(has("raw-tcp: p50 "), 2, "{texts:?}");
    assert_eq!(has("msgr: p50 "), 2, "{texts:?}");
    assert_eq!(has("msgr-v2: p50 "), 2, "{texts:?}");
    assert_eq!(has("msgr-v2-secure: p50 "), 2, "{texts:?}");
    // The rate panel, with a line per transport and case shape.
    assert_eq!(has("rate by message size, msgr beside raw TCP"), 1);
    for shape in [
        "raw-tcp stream",
        "msgr stream",
        "raw-tcp rr depth 1",
        "msgr rr depth 1",
        "raw-tcp rr x4 conns depth 128",
        "msgr rr x4 conns depth 128",
    ] {
        assert_eq!(
            texts.iter().filter(|t| *t == shape).count(),
            1,
            "{shape}: {texts:?}"
        );
    }
    // Lines drawn: two histograms in each of two panels, six rate lines.
    let lines = doc
        .descendants()
        .filter(|n| n.has_tag_name("polyline"))
        .count();
    assert!(lines >= 2 * 2 + 6, "{lines} polylines");
}

#[test]
fn one_case_splits_its_budget_over_its_rounds_and_plots_to_html() {
    let plot = tmp("bench-time.html");
    let (out, took) = run_within(
        msgr()
            .args(["bench", "--mode", "rr", "--size", "4K", "--depth", "1"])
            .args(["--time", "1.2", "--plot"])
            .arg(&plot),
        HANG,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        stderr.lines().next().unwrap(),
        "expected duration: 1.2 s (1 case x 4 transports x 3 rounds = 12 runs of 0.100 s, plus setup)"
    );
    assert_eq!(stderr.matches(" round ").count(), 12, "{stderr}");
    assert!(took < Duration::from_secs_f64(1.2 * 4.0 + 10.0), "{took:?}");
    // No terminal: no live rate.
    assert!(!stderr.contains("msgs/s sent"), "{stderr}");
    let html = std::fs::read_to_string(&plot).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    let start = html.find("<svg").unwrap();
    let end = html.rfind("</svg>").unwrap() + "</svg>".len();
    let (_, texts) = svg_texts(&html[start..end]);
    assert!(texts
        .iter()
        .any(|t| t == "rr 4 KiB depth 1: round-trip latency"));
}

#[test]
fn a_budget_too_short_a_bad_plot_name_and_conflicting_limits_are_refused() {
    for (args, code, expect) in [
        (&["-t", "0.1"][..], 1, "too short for 20 runs"),
        (&["-t", "0"][..], 1, "-t 0"),
        (
            &["-t", "5", "--plot", "bench.png"][..],
            1,
            "must end in .svg or .html",
        ),
        (
            &["-t", "5", "--duration", "1"][..],
            2,
            "cannot be used with",
        ),
        (&["-t", "5", "--count", "10"][..], 2, "cannot be used with"),
    ] {
        let (out, took) = run_within(msgr().arg("bench").args(args), HANG);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {stderr}");
        assert!(stderr.contains(expect), "{args:?}: {stderr}");
        assert!(
            took < Duration::from_secs(5),
            "{args:?}: refused before any run"
        );
    }
}

#[test]
fn the_live_rate_shows_on_a_terminal() {
    // `script` gives the bench a pseudo-terminal for stderr; what it shows is in stdout.
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: no `script` (util-linux) to give the bench a terminal");
        return;
    }
    let bin = env!("CARGO_BIN_EXE_msgr");
    let (out, _) = run_within(
        Command::new("script").args([
            "-qec",
            &format!("{bin} bench --mode stream --size 4K --transport raw -t 2"),
            "/dev/null",
        ]),
        HANG,
    );
    let screen = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{screen}");
    // Six rounds of 0.33 s with a refresh every 0.5 s: several updates, each a rate.
    let updates = screen.matches("msgs/s sent (last 0.5 s)").count();
    assert!(updates >= 2, "{updates} live updates in {screen}");
}
