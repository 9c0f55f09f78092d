//! End-to-end tests of the `msgr` binary: bench, serve and ping on loopback.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn msgr() -> Command {
    Command::new(env!("CARGO_BIN_EXE_msgr"))
}

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
            "200",
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
    // The fault-free run, then the run with the faults (seed 7 fires one at 1/200).
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
    assert_eq!(
        order,
        ["raw-tcp", "msgr", "raw-tcp", "msgr", "raw-tcp", "msgr"],
        "{stderr}"
    );
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

/// A `msgr serve` child on a kernel-chosen loopback port, and the address it printed.
struct Server {
    child: Child,
    addr: String,
}

impl Server {
    fn start(extra: &[&str]) -> Server {
        let mut child = msgr()
            .args(["serve", "--bind", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start msgr serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout);
        let mut first = String::new();
        lines.read_line(&mut first).expect("first line");
        let addr = first.trim().to_owned();
        assert!(addr.starts_with("v1:127.0.0.1:"), "first line {first:?}");
        // Keep reading in the background so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines.lines() {});
        Server { child, addr }
    }

    /// Interrupts the server as Ctrl-C would and waits for a clean exit.
    fn stop(mut self) {
        let pid = self.child.id().to_string();
        let killed = Command::new("kill").args(["-INT", &pid]).status();
        assert!(killed.map(|s| s.success()).unwrap_or(false), "kill -INT");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                assert!(status.success(), "msgr serve exited with {status}");
                return;
            }
            assert!(
                Instant::now() < deadline,
                "msgr serve did not stop on SIGINT"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn ping_a_running_serve() {
    let server = Server::start(&[]);
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
    let server = Server::start(&["--mode", "echo"]);
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

/// A real `ceph-mon` (auth none, msgr v1 only) on a free loopback port, stopped on drop; as in
/// shared/spec/ceph-mon-recipe.md. `None` when Ceph is not installed.
struct CephMon {
    dir: std::path::PathBuf,
    port: u16,
}

impl CephMon {
    fn start() -> Option<CephMon> {
        let present = |tool: &str| {
            Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false)
        };
        if !present("ceph-mon") || !present("monmaptool") {
            eprintln!("ceph-mon or monmaptool not installed: skipping");
            return None;
        }
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr").port()
        };
        let dir = std::env::temp_dir().join(format!("msgr-cli-mon-{}-{port}", std::process::id()));
        std::fs::create_dir_all(dir.join("run")).expect("mon dir");
        let fsid = "5f0c6a4e-2b1d-4c3e-9f7a-0b1c2d3e4f50";
        let d = dir.display();
        let conf = format!(
            "[global]\nfsid = {fsid}\nmon_host = v1:127.0.0.1:{port}\nauth_cluster_required = none\n\
             auth_service_required = none\nauth_client_required = none\nms_bind_msgr1 = true\n\
             ms_bind_msgr2 = false\nmon_data = {d}/mon.$id\nlog_file = {d}/$name.log\n\
             run_dir = {d}/run\nadmin_socket = {d}/run/$name.asok\npid_file = {d}/run/mon.pid\n\
             [mon.a]\nmon_addr = v1:127.0.0.1:{port}\n"
        );
        std::fs::write(dir.join("ceph.conf"), conf).expect("ceph.conf");
        let mon = CephMon { dir, port };
        let conf = mon.dir.join("ceph.conf");
        let monmap = mon.dir.join("monmap");
        let run = |cmd: &mut Command| {
            let out = cmd.output().expect("run a ceph tool");
            assert!(
                out.status.success(),
                "{cmd:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        run(Command::new("monmaptool")
            .args(["--create", "--fsid", fsid, "--addv", "a"])
            .arg(format!("[v1:127.0.0.1:{port}]"))
            .arg(&monmap));
        run(Command::new("ceph-mon")
            .arg("-c")
            .arg(&conf)
            .args(["--mkfs", "-i", "a", "--monmap"])
            .arg(&monmap));
        run(Command::new("ceph-mon")
            .arg("-c")
            .arg(&conf)
            .args(["-i", "a"]));
        Some(mon)
    }
}

impl Drop for CephMon {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(self.dir.join("run/mon.pid")) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn ping_a_real_ceph_mon() {
    let Some(mon) = CephMon::start() else {
        return;
    };
    // The monitor takes a moment to listen; ping's own timeout covers it after the first try.
    let addr = format!("v1:127.0.0.1:{}", mon.port);
    let deadline = Instant::now() + Duration::from_secs(20);
    let out = loop {
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
        if out.status.success() || Instant::now() > deadline {
            break out;
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "ping of a ceph-mon failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.matches("keepalive2 reply from").count(),
        2,
        "{stdout}"
    );
}
