//! End-to-end tests of the `msgr` binary: bench, serve and ping on loopback.

use msgr_tests::ceph::CephMon;

mod common;

use common::*;

/// The JSON object on the last line of `stdout`.
fn last_json(stdout: &[u8]) -> serde_json::Value {
    let text = String::from_utf8_lossy(stdout);
    let last = text.lines().last().expect("some output");
    serde_json::from_str(last).unwrap_or_else(|e| panic!("last line {last:?} is not JSON: {e}"))
}

#[test]
fn bench_quick_json_has_both_transports_and_no_faults() {
    let out = msgr()
        .args(["bench", "--quick", "--json", "--idle-connections", "20"])
        .output()
        .expect("run msgr bench");
    assert!(
        out.status.success(),
        "msgr bench failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = last_json(&out.stdout);
    let runs = report["runs"].as_array().expect("runs");
    for transport in ["msgr", "raw-tcp"] {
        for mode in ["stream", "rr"] {
            assert!(
                runs.iter()
                    .any(|r| r["transport"] == transport && r["mode"] == mode),
                "no {transport} {mode} run in {report}"
            );
        }
    }
    for run in runs {
        assert!(run["messages"].as_u64().expect("messages") > 0, "{run}");
        assert!(run["msgs_per_s"].as_f64().expect("rate") > 0.0, "{run}");
        // The process's CPU per message and the CPUs it kept busy (at most the machine's,
        // with a little slack for the clock readings' placement around set-up).
        let cpu = run["cpu_us_per_msg"].as_f64().expect("cpu per message");
        let cpus = run["cpus"].as_f64().expect("cpus");
        let most = std::thread::available_parallelism().map_or(64, |n| n.get()) as f64;
        assert!(cpu > 0.0 && cpus > 0.0 && cpus <= most * 1.1, "{run}");
        if run["transport"] != "raw-tcp" {
            assert!(
                run["cpu_vs_raw"].as_f64().expect("cpu_vs_raw") > 0.0,
                "{run}"
            );
        }
        if run["mode"] == "rr" {
            assert!(run["rtt_p50_us"].as_f64().expect("p50") > 0.0, "{run}");
            assert!(run["rtt_p999_us"].as_f64().is_some(), "{run}");
        }
    }
    assert_eq!(report["lost"], 0);
    assert_eq!(report["duplicated"], 0);
    assert_eq!(report["reordered"], 0);
    assert!(report["peak_rss_bytes"].as_u64().expect("rss") > 0);
    assert_eq!(report["idle"]["errors"], 0, "{report}");
}

#[test]
fn bench_verify_with_socket_failures_loses_nothing() {
    let out = msgr()
        .args([
            "bench",
            "--mode",
            "rr",
            "--size",
            "1K",
            "--depth",
            "8",
            "--jobs",
            "2",
            "--count",
            "300",
            "--verify",
            "--inject-socket-failures",
            "50",
            "--seed",
            "7",
            "--json",
            "--transport",
            "msgr",
        ])
        .output()
        .expect("run msgr bench");
    assert!(
        out.status.success(),
        "msgr bench with faults failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = last_json(&out.stdout);
    // The fault-free run, then the run with the faults: at 1/50 on about 2,400 socket
    // operations, about 50 fire (none would have a chance of e^-48).
    assert_eq!(report["runs"][0]["transport"], "msgr", "{report}");
    assert_eq!(report["runs"][0]["faults"], 0, "{report}");
    let faulty = &report["runs"][1];
    assert_eq!(faulty["transport"], "msgr-faults", "{report}");
    assert_eq!(faulty["messages"], 600, "{report}");
    assert!(
        faulty["faults"].as_u64() > Some(0),
        "no fault fired: {report}"
    );
    for key in ["lost", "duplicated", "reordered", "corrupted"] {
        assert_eq!(report[key], 0, "{key} in {report}");
    }
}

#[test]
fn bench_rounds_alternate_the_transports_and_report_the_median() {
    let args = [
        "bench", "--mode", "stream", "--size", "4K", "--count", "500", "--rounds", "3",
    ];
    // Without --json, a line per run on standard error: the rounds took turns.
    let out = msgr().args(args).output().expect("run msgr bench --rounds");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let order: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains(" round "))
        .map(|l| l.split_whitespace().next().unwrap_or(""))
        .collect();
    // Each round: raw TCP, msgr v1, msgr2 crc, msgr2 secure.
    let round = ["raw-tcp", "msgr", "msgr-v2", "msgr-v2-secure"];
    assert_eq!(order, round.repeat(3), "{stderr}");
    // Before the rounds, each transport warmed up once, in the same order (not measured:
    // the JSON below counts the three rounds' messages only).
    let warm_ups: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains(": warm-up run"))
        .map(|l| l.split_whitespace().next().unwrap_or(""))
        .collect();
    assert_eq!(warm_ups, round, "{stderr}");
    let first_round = stderr.find(" round ").expect("a round line");
    let last_warm_up = stderr.rfind(": warm-up run").expect("a warm-up line");
    assert!(last_warm_up < first_round, "{stderr}");
    // With --json: each run is its median round, over all the rounds' messages.
    let out = msgr()
        .args(args)
        .arg("--json")
        .output()
        .expect("run msgr bench --rounds --json");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = last_json(&out.stdout);
    for run in report["runs"].as_array().expect("runs") {
        assert_eq!(run["rounds"], 3, "{run}");
        assert_eq!(run["messages"], 1500, "{run}");
        let mut rates: Vec<f64> = run["round_msgs_per_s"]
            .as_array()
            .expect("round rates")
            .iter()
            .map(|r| r.as_f64().expect("a rate"))
            .collect();
        assert_eq!(rates.len(), 3);
        rates.sort_by(f64::total_cmp);
        assert_eq!(run["msgs_per_s"].as_f64(), Some(rates[1]), "{run}");
    }
    assert_eq!(report["lost"], 0);
}

#[test]
fn ping_a_running_serve() {
    let server = Serve::start(&[]);
    let out = msgr()
        .args([
            "ping",
            &server.addr,
            "--count",
            "3",
            "--interval",
            "0.05",
            "--peer-type",
            "osd",
        ])
        .output()
        .expect("run msgr ping");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "ping failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.matches("keepalive2 reply from").count(),
        3,
        "{stdout}"
    );
    assert!(stdout.contains("3 sent, 3 received, 0% lost"), "{stdout}");
    assert!(stdout.contains("rtt min/avg/max/p99"), "{stdout}");
    server.stop();
}

#[test]
fn bench_against_a_remote_serve() {
    let server = Serve::start(&["--mode", "echo"]);
    let out = msgr()
        .args([
            "bench",
            "--server",
            &server.addr,
            "--mode",
            "rr",
            "--count",
            "200",
            "--depth",
            "4",
            "--json",
        ])
        .output()
        .expect("run msgr bench --server");
    assert!(
        out.status.success(),
        "bench --server failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = last_json(&out.stdout);
    assert_eq!(report["runs"][0]["transport"], "msgr");
    assert_eq!(report["runs"][0]["messages"], 200);
    assert_eq!(report["lost"], 0);
    server.stop();
}

#[test]
fn ping_a_closed_port_fails_clearly() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    let out = msgr()
        .args([
            "ping",
            &format!("v1:127.0.0.1:{port}"),
            "--count",
            "1",
            "--timeout",
            "3",
        ])
        .output()
        .expect("run msgr ping");
    assert!(!out.status.success(), "ping to a closed port succeeded");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("refused"), "unclear message: {stderr}");
}

/// `msgr ping --peer-type mon` against a real `ceph-mon` (the shared harness: auth none, msgr
/// v1 only, ready once it leads): two keepalive2 round trips. Without Ceph it says it skipped
/// and passes, unless `MSGR_REQUIRE_CEPH` is set (as `.ci/run` does): then it fails.
#[test]
fn ping_a_real_ceph_mon() -> anyhow::Result<()> {
    let Some(mon) = CephMon::start()? else {
        return Ok(());
    };
    let addr = format!("v1:{}", mon.addr());
    let out = msgr()
        .args([
            "ping",
            &addr,
            "--count",
            "2",
            "--interval",
            "0.05",
            "--peer-type",
            "mon",
        ])
        .output()
        .expect("run msgr ping");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "ping of a ceph-mon failed: {stdout}{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        mon.output_tail()
    );
    assert_eq!(
        stdout.matches("keepalive2 reply from").count(),
        2,
        "{stdout}"
    );
    Ok(())
}
