//! Helpers of the `msgr` binary's tests: the binary, a `msgr serve` child, and a scripted
//! msgr v1 acceptor on a loopback port that answers every connection with the same bytes.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use msgr_wire::{Banner, ConnectReply, EntityAddr, Tag, Wire};

/// The `msgr` binary under test.
pub fn msgr() -> Command {
    Command::new(env!("CARGO_BIN_EXE_msgr"))
}

/// Runs `cmd` to its end, failing the test if it has not ended after `limit` (an upper
/// bound so that a hang fails instead of blocking the suite); returns its output and how
/// long it ran.
pub fn run_within(cmd: &mut Command, limit: Duration) -> (Output, Duration) {
    let start = Instant::now();
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn msgr");
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => (out.expect("wait for msgr"), start.elapsed()),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("{cmd:?} still running after {limit:?}");
        }
    }
}

/// `msgr ping ADDR --count 1` must get its answer (exit 0; stderr shown otherwise).
pub fn ping_once_ok(addr: &str) {
    let (out, _) = run_within(
        msgr().args(["ping", addr, "--count", "1"]),
        Duration::from_secs(30),
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "ping {addr}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A `msgr serve` child on a kernel-chosen loopback port, and the address it printed.
pub struct Serve {
    pub child: Child,
    pub addr: String,
}

impl Serve {
    pub fn start(extra: &[&str]) -> Serve {
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
        Serve { child, addr }
    }

    /// `HOST:PORT` of the address.
    pub fn host_port(&self) -> &str {
        let rest = self.addr.trim_start_matches("v1:");
        rest.split('/').next().unwrap_or(rest)
    }

    /// Kills the server with SIGKILL (no goodbye on any socket) and reaps it.
    pub fn kill9(&mut self) {
        self.child.kill().expect("kill -9 msgr serve");
        self.child.wait().expect("reap msgr serve");
    }
}

impl Serve {
    /// Interrupts the server as Ctrl-C would and waits for a clean exit (status 0).
    pub fn stop(mut self) {
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

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A scripted acceptor on a loopback port: each connection gets `bytes` at once, then the
/// peer reads (and drops) whatever the dialler writes until it closes. Runs until the test
/// process ends.
pub struct ScriptedPeer {
    pub port: u16,
}

impl ScriptedPeer {
    pub fn start(script: impl Fn(u16) -> Vec<u8> + Send + 'static) -> ScriptedPeer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("local addr").port();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let bytes = script(port);
                std::thread::spawn(move || {
                    let _ = stream.write_all(&bytes);
                    let mut sink = [0u8; 4096];
                    while matches!(stream.read(&mut sink), Ok(n) if n > 0) {}
                });
            }
        });
        ScriptedPeer { port }
    }

    pub fn addr(&self) -> String {
        format!("v1:127.0.0.1:{}", self.port)
    }
}

/// What a msgr v1 acceptor at `127.0.0.1:port` announcing nonce 0 sends first: banner, its
/// address (at `announced_port`), the dialler's address as seen.
pub fn hello(announced_port: u16) -> Vec<u8> {
    let mut b = bytes::BytesMut::new();
    Banner.encode(&mut b);
    EntityAddr::new(([127, 0, 0, 1], announced_port).into(), 0).encode(&mut b);
    EntityAddr::new(([127, 0, 0, 1], 40000).into(), 0).encode(&mut b);
    b.to_vec()
}

/// A connect reply with `tag`, Pacific's features, and the mon protocol version 15.
pub fn reply(tag: Tag) -> Vec<u8> {
    let mut r = ConnectReply::new(tag);
    r.features = msgr_wire::features::ALL_PACIFIC;
    r.global_seq = 1;
    r.connect_seq = 1;
    r.protocol_version = 15;
    let mut b = bytes::BytesMut::new();
    r.encode(&mut b);
    b.to_vec()
}
