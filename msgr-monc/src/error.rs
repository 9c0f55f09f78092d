//! The one error type of the crate.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// What can go wrong talking to the mons.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MonClientError {
    /// The mon refused our authentication: a wrong key or an unknown entity (EACCES, −13), a
    /// refused reclaim, no common auth method (ENOTSUP, −95). Final: no other mon is tried.
    #[error("{entity}: authentication refused by mon v1:{mon}: {}", errno_text(*result))]
    AuthRefused {
        /// The entity that tried (`client.admin`).
        entity: String,
        /// The mon's negative errno.
        result: i32,
        /// The mon that answered.
        mon: SocketAddr,
    },
    /// A reply of the mon did not verify with our key (bad magic, wrong layout): a wrong key
    /// or a corrupted reply. Final, as a refusal.
    #[error("{entity}: authentication with mon v1:{mon} failed: {source}")]
    AuthFailed {
        /// The entity that tried.
        entity: String,
        /// The mon.
        mon: SocketAddr,
        /// What did not verify.
        source: msgr_auth::AuthError,
    },
    /// The mon chose an auth method we did not offer or cannot run.
    #[error("{entity}: mon v1:{mon} chose auth protocol {protocol}, not one of ours")]
    UnsupportedProtocol {
        /// The entity.
        entity: String,
        /// The mon.
        mon: SocketAddr,
        /// The protocol it chose.
        protocol: u32,
    },
    /// No mon answered within the mount timeout.
    #[error("no mon reachable within {:.1} s (tried {})", waited.as_secs_f64(), list(tried))]
    NoMonReachable {
        /// Every mon tried.
        tried: Vec<SocketAddr>,
        /// How long we hunted.
        waited: Duration,
    },
    /// No mon address configured (`mon_host` or `-m`).
    #[error("no mon address (set mon_host in the ceph.conf, or -m)")]
    NoMonAddress,
    /// A `mon_host` value that does not parse.
    #[error("bad mon address {value:?}: {reason}")]
    BadMonHost {
        /// The value.
        value: String,
        /// Why.
        reason: String,
    },
    /// A ceph.conf option with a bad value.
    #[error("{origin}:{line}: {key}: {reason}")]
    BadOption {
        /// The file.
        origin: String,
        /// Its line (from 1).
        line: usize,
        /// The key as written.
        key: String,
        /// Why.
        reason: String,
    },
    /// A ceph.conf that does not parse.
    #[error(transparent)]
    Conf(#[from] msgr_core::ConfigError),
    /// A file that cannot be read.
    #[error("{}: {reason}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The system's reason.
        reason: String,
    },
    /// cephx is required but no keyring file exists.
    #[error("{entity}: no keyring found (tried {}); cephx needs one (-k FILE, or keyring = in the ceph.conf)", paths(tried))]
    NoKeyring {
        /// The entity.
        entity: String,
        /// The files tried.
        tried: Vec<PathBuf>,
    },
    /// A keyring that does not parse.
    #[error("{}: {source}", path.display())]
    Keyring {
        /// The file.
        path: PathBuf,
        /// Why.
        source: msgr_auth::AuthError,
    },
    /// The keyring has no key for our entity.
    #[error("{entity}: no key in keyring {}", path.display())]
    NoKey {
        /// The entity.
        entity: String,
        /// The keyring.
        path: PathBuf,
    },
    /// A message from the mon that does not decode.
    #[error("malformed {what} from mon v1:{mon}: {source}")]
    Malformed {
        /// The message type.
        what: &'static str,
        /// The mon.
        mon: SocketAddr,
        /// Why.
        source: msgr_ceph::BodyError,
    },
    /// The messenger failed (bind, shutdown).
    #[error(transparent)]
    Messenger(#[from] msgr_core::CoreError),
    /// An authorizer (or ticket) asked of the auth client could not be built.
    #[error(transparent)]
    Auth(#[from] msgr_auth::AuthError),
    /// Asked before [`authenticate`](crate::MonClient::authenticate) succeeded.
    #[error("not authenticated with a mon")]
    NotAuthenticated,
    /// The client was shut down.
    #[error("mon client shut down")]
    Shutdown,
}

fn list(addrs: &[SocketAddr]) -> String {
    let v: Vec<String> = addrs.iter().map(|a| format!("v1:{a}")).collect();
    v.join(", ")
}

fn paths(p: &[PathBuf]) -> String {
    let v: Vec<String> = p.iter().map(|p| p.display().to_string()).collect();
    v.join(", ")
}

/// `-13` as `EACCES (-13)`: the errnos a mon answers with.
pub fn errno_text(result: i32) -> String {
    let name = match -result {
        1 => "EPERM",
        2 => "ENOENT",
        11 => "EAGAIN",
        13 => "EACCES",
        22 => "EINVAL",
        95 => "ENOTSUP",
        110 => "ETIMEDOUT",
        _ => return format!("error {result}"),
    };
    format!("{name} ({result})")
}
