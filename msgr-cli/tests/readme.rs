//! Every `msgr ...` and `cargo run ... -p msgr-cli -- ...` command shown in a code block of the
//! README runs as written and succeeds (issue 13, item 3).
//!
//! The commands run on the binary under test (a `cargo run --release -p msgr-cli --` prefix is
//! checked, then its arguments go to the same program). Adjustments, all of them listed here:
//! `HOST` is `127.0.0.1`; `msgr serve ... &` starts a `msgr serve` child on a free loopback port
//! and later commands use that port for the README's; a daemon address no command started
//! (`v1:HOST:6789`) gets a `msgr serve` of its own (a `mon.0` on the mon port); benchmarks are
//! shortened: `-t`/`--time` becomes 0.5 s, `--duration` 0.05 s, one without `-t`, `--count` or
//! `--duration` gets `--quick --duration 0.05`, each gets `--idle-connections 20` unless it asks
//! for a number, and `--plot FILE` writes into the target's temporary folder; a file named
//! from the repository's root (`msgr-cli/tests/data/...`) is found there. A
//! command that needs Ceph itself (`ceph ...`) runs only when `ceph-mon` is on the PATH, and
//! must when `MSGR_REQUIRE_CEPH=1`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;

const README: &str = include_str!("../../README.md");

/// One command of the README: its arguments after `msgr`, and whether it ran in the
/// background (`&`).
#[derive(Debug, Clone)]
struct Shown {
    line: String,
    args: Vec<String>,
    background: bool,
}

/// The lines of the README's fenced code blocks.
fn code_lines(text: &str) -> Vec<&str> {
    let mut inside = false;
    let mut lines = Vec::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            inside = !inside;
        } else if inside {
            lines.push(line);
        }
    }
    lines
}

/// The msgr commands of one shell line (comments dropped, `&` splits).
fn commands(line: &str) -> Vec<Shown> {
    let code = line.split(" #").next().unwrap_or("");
    if code.trim_start().starts_with('#') {
        return Vec::new();
    }
    let parts: Vec<&str> = code.split('&').collect();
    let mut out = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        let words: Vec<&str> = part.split_whitespace().collect();
        let args = match words.as_slice() {
            ["msgr", rest @ ..] => rest.to_vec(),
            ["cargo", "run", rest @ ..] => {
                let Some(dash) = rest.iter().position(|w| *w == "--") else {
                    continue;
                };
                if !rest[..dash].windows(2).any(|w| w == ["-p", "msgr-cli"]) {
                    continue;
                }
                for flag in &rest[..dash] {
                    assert!(
                        ["--release", "-p", "msgr-cli"].contains(flag),
                        "{line}: unexpected cargo flag {flag}"
                    );
                }
                rest[dash + 1..].to_vec()
            }
            _ => continue,
        };
        out.push(Shown {
            line: line.trim().to_owned(),
            args: args
                .iter()
                .map(|a| a.replace("HOST", "127.0.0.1"))
                .collect(),
            background: i + 1 < parts.len(),
        });
    }
    out
}

/// Shortens a benchmark (see the module docs).
fn shorten(args: &mut Vec<String>) {
    if args.first().map(String::as_str) != Some("bench") {
        return;
    }
    let has = |args: &[String], flag: &str| args.iter().any(|a| a == flag);
    if let Some(i) = args.iter().position(|a| a == "--plot") {
        let ext = args[i + 1].rsplit('.').next().unwrap_or("svg").to_owned();
        let path =
            std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("readme-plot.{ext}"));
        args[i + 1] = path.display().to_string();
    }
    if let Some(i) = args.iter().position(|a| a == "-t" || a == "--time") {
        args[i + 1] = "0.5".to_owned();
    } else if let Some(i) = args.iter().position(|a| a == "--duration") {
        args[i + 1] = "0.05".to_owned();
    } else if !has(args, "--count") {
        if !has(args, "--quick") {
            args.push("--quick".to_owned());
        }
        args.extend(["--duration".to_owned(), "0.05".to_owned()]);
    }
    if !has(args, "--idle-connections") {
        args.extend(["--idle-connections".to_owned(), "20".to_owned()]);
    }
}

/// The port of a `v1:127.0.0.1:PORT` argument.
fn port_of(arg: &str) -> Option<&str> {
    let rest = arg.strip_prefix("v1:127.0.0.1:")?;
    Some(rest.split('/').next().unwrap_or(rest))
}

#[test]
fn the_readme_shows_the_commands_this_test_runs() {
    // The extraction itself: a change of the README that hides its commands from this test
    // (another fence, another prefix) fails here.
    let shown: Vec<Shown> = code_lines(README).into_iter().flat_map(commands).collect();
    let firsts: Vec<&str> = shown.iter().map(|s| s.args[0].as_str()).collect();
    for sub in ["bench", "serve", "ping"] {
        assert!(
            firsts.contains(&sub),
            "no `msgr {sub}` in the README's code: {shown:#?}"
        );
    }
    assert!(shown.len() >= 6, "{shown:#?}");
    assert!(shown.iter().any(|s| s.background), "{shown:#?}");
}

#[test]
fn every_readme_command_runs() {
    let ceph = std::env::var_os("MSGR_REQUIRE_CEPH").is_some_and(|v| v == "1")
        || std::process::Command::new("ceph-mon")
            .arg("--version")
            .output()
            .is_ok();
    let mut servers: Vec<Serve> = Vec::new();
    // README port -> the port of the msgr serve standing in for it.
    let mut ports: HashMap<String, String> = HashMap::new();
    let mut ran = 0;
    for shown in code_lines(README).into_iter().flat_map(commands) {
        if shown.args.iter().any(|a| a == "ceph") && !ceph {
            eprintln!("skipped (no ceph-mon on the PATH): {}", shown.line);
            continue;
        }
        let mut args = shown.args.clone();
        if args[0] == "serve" {
            assert!(
                shown.background,
                "{}: a foreground serve never ends",
                shown.line
            );
            let i = args
                .iter()
                .position(|a| a == "--bind")
                .expect("serve --bind");
            let readme_port = args[i + 1].rsplit(':').next().unwrap().to_owned();
            // Serve::start binds 127.0.0.1:0 itself.
            args.drain(i..i + 2);
            let rest: Vec<&str> = args[1..].iter().map(String::as_str).collect();
            let serve = Serve::start(&rest);
            ports.insert(readme_port, port_of(&serve.addr).unwrap().to_owned());
            servers.push(serve);
            ran += 1;
            continue;
        }
        for arg in &mut args {
            let Some(port) = port_of(arg).map(str::to_owned) else {
                continue;
            };
            if !ports.contains_key(&port) {
                let name = if port == "6789" { "mon.0" } else { "osd.0" };
                let serve = Serve::start(&["--name", name]);
                ports.insert(port.clone(), port_of(&serve.addr).unwrap().to_owned());
                servers.push(serve);
            }
            *arg = arg.replacen(&format!(":{port}"), &format!(":{}", ports[&port]), 1);
        }
        shorten(&mut args);
        // A file of the repository named from its root (`msgr-cli/tests/data/...`).
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        for arg in args.iter_mut().skip(1) {
            if arg.contains('/') && root.join(&*arg).exists() {
                *arg = root.join(&*arg).display().to_string();
            }
        }
        let (out, took) = run_within(msgr().args(&args), Duration::from_secs(60));
        assert!(
            out.status.success(),
            "README command `{}` (run as `msgr {}`) failed after {took:?}:\n{}{}",
            shown.line,
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!("ok in {took:.1?}: msgr {}", args.join(" "));
        ran += 1;
    }
    assert!(ran >= 6, "ran {ran} commands");
}
