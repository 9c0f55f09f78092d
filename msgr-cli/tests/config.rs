//! `msgr serve --config FILE` (TOML) and `-c ceph.conf`: the file's settings take effect, and a
//! misspelt key is an error naming the key and its line, with a non-zero exit.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::*;

/// A file in a fresh temporary directory, removed with it.
struct TempFile {
    dir: tempfile::TempDir,
    name: &'static str,
}

impl TempFile {
    fn new(name: &'static str, text: &str) -> TempFile {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(name), text).unwrap();
        TempFile { dir, name }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join(self.name)
    }

    fn arg(&self) -> String {
        self.path().display().to_string()
    }
}

#[test]
fn a_toml_file_sets_the_messenger_and_flags_still_win() {
    let f = TempFile::new(
        "msgr.toml",
        "# a server's settings\nnonce = 77\nms_tcp_read_timeout = 30\nmax_backoff = 10\n",
    );
    let server = Serve::start(&["--config", &f.arg()]);
    assert!(server.addr.ends_with("/77"), "{}", server.addr);
    let flagged = Serve::start(&["--config", &f.arg(), "--nonce", "5"]);
    assert!(flagged.addr.ends_with("/5"), "{}", flagged.addr);
    // The server works: a ping round trip.
    ping_once_ok(&server.addr);
}

#[test]
fn a_ceph_conf_sets_the_port_range_of_its_entity() {
    // [global] is overridden by [osd], which [osd.1] does not concern (we are osd.0).
    let f = TempFile::new(
        "ceph.conf",
        "[global]\n\tfsid = 7d4b0a5e-0000-4000-8000-000000000000\n\tms bind port min = 6900\n\
         \tms bind port max = 6999\n[osd]\n\tms_bind_port_min = 7140\n\tms_bind_port_max = 7179\n\
         [osd.1]\n\tms bind port min = 7300\n",
    );
    let server = Serve::start(&["-c", &f.arg(), "--name", "osd.0"]);
    let port: u16 = server
        .host_port()
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((7140..=7179).contains(&port), "bound {}", server.addr);
}

fn refused(args: &[&str]) -> String {
    let (out, _) = run_within(
        msgr().args(["serve", "--bind", "127.0.0.1:0"]).args(args),
        Duration::from_secs(30),
    );
    assert_ne!(out.status.code(), Some(0), "started with {args:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_misspelt_key_names_itself_and_its_line() {
    let toml = TempFile::new("msgr.toml", "nonce = 7\nread_timeot = 3\n");
    let err = refused(&["--config", &toml.arg()]);
    let at = format!("{}:2:", toml.arg());
    assert!(err.contains("read_timeot") && err.contains(&at), "{err}");

    let conf = TempFile::new("ceph.conf", "[global]\n; comment\nms tcp read timout = 5\n");
    let err = refused(&["-c", &conf.arg()]);
    assert!(
        err.contains("ms_tcp_read_timout") || err.contains("ms tcp read timout"),
        "{err}"
    );
    assert!(err.contains(&format!("{}:3:", conf.arg())), "{err}");

    let err = refused(&["--config", "/nonexistent/msgr.toml"]);
    assert!(err.contains("/nonexistent/msgr.toml"), "{err}");
}
