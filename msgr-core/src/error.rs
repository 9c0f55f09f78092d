//! Errors of msgr-core.

use std::net::SocketAddr;
use std::path::PathBuf;

use msgr_wire::EntityName;

/// A configuration that [`MessengerConfig::validate`](crate::MessengerConfig::validate)
/// rejects.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The port range is reversed, or has a lower bound of 0 with a non-zero upper bound.
    #[error("invalid port range {min}..={max}")]
    PortRange {
        /// `bind_port_min`.
        min: u16,
        /// `bind_port_max`.
        max: u16,
    },
    /// An entity name that is not `type.num`.
    #[error("invalid entity name {0:?}")]
    EntityName(String),
    /// An entity type name that Ceph does not know.
    #[error("unknown entity type {0:?}")]
    EntityType(String),
    /// Any other value out of range; the text names the field.
    #[error("{0}")]
    Invalid(&'static str),
    /// [`PipeConfig::validate`](msgr_pipe::PipeConfig::validate) rejected
    /// [`MessengerConfig::pipe`](crate::MessengerConfig::pipe).
    #[error("{0}")]
    Pipe(#[from] msgr_pipe::ConfigError),
    /// A configuration file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The text is not TOML, or not Ceph's INI dialect (an unclosed quote or section, a
    /// line that is neither `key = value` nor `[section]`, a key outside any section).
    #[error("{origin}:{line}: {message}")]
    Syntax {
        /// The file name, or what the caller called the text.
        origin: String,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A key msgr does not know: any key of a TOML file, or an `ms_*` key of a ceph.conf (its
    /// other options are not messenger options and are skipped).
    #[error("{origin}:{line}: unknown key `{key}`")]
    UnknownKey {
        /// The file name, or what the caller called the text.
        origin: String,
        /// 1-based line of the key.
        line: usize,
        /// The key as written (a nested key by its own name).
        key: String,
    },
    /// A known key with a value of the wrong type or out of range.
    #[error("{origin}:{line}: bad value for `{key}`: {message}")]
    BadValue {
        /// The file name, or what the caller called the text.
        origin: String,
        /// 1-based line of the key.
        line: usize,
        /// The key as written.
        key: String,
        /// What is wrong with the value.
        message: String,
    },
    /// A TOML file sets one setting twice, under its own name and a Ceph alias
    /// (`read_timeout` and `ms_tcp_read_timeout`).
    #[error("{origin}:{line}: `{key}` sets `{setting}`, already set by `{first_key}` on line {first_line}")]
    Duplicate {
        /// The file name, or what the caller called the text.
        origin: String,
        /// 1-based line of the second key.
        line: usize,
        /// The second key as written.
        key: String,
        /// The setting both keys name, as a dotted path (`crc.data`).
        setting: String,
        /// The first key as written.
        first_key: String,
        /// Its line.
        first_line: usize,
    },
}

/// Why a messenger operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CoreError {
    /// The configuration was rejected.
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    /// Binding the listening socket failed.
    #[error("cannot bind {addr}: {source}")]
    Bind {
        /// The address tried.
        addr: SocketAddr,
        /// What the OS said.
        source: std::io::Error,
    },
    /// Every port of the range is in the avoid set or taken.
    #[error("no free port in {min}..={max} outside the avoid set")]
    NoFreePort {
        /// Lowest port searched.
        min: u16,
        /// Highest port searched.
        max: u16,
    },
    /// The messenger was shut down.
    #[error("messenger is shut down")]
    Shutdown,
    /// [`Messenger::rebind`](crate::Messenger::rebind) on a messenger that has no listener
    /// ([`MessengerBuilder::no_listener`](crate::MessengerBuilder::no_listener)).
    #[error("messenger has no listener to rebind")]
    NoListener,
    /// [`Messenger::set_name`](crate::Messenger::set_name) was asked to change the entity
    /// type: a messenger keeps the type it was built with, only the number may change (as
    /// Ceph's `set_myname`, a client stays a client).
    #[error("cannot rename {current} to {requested}: the entity type is fixed")]
    NameType {
        /// The messenger's name when the rename was refused.
        current: EntityName,
        /// The refused name.
        requested: EntityName,
    },
}

/// Why a message was not queued on a [`Connection`](crate::Connection).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The connection was marked down, or failed and is lossy; the message was dropped.
    #[error("connection is closed")]
    Closed,
    /// `try_send` only: queued plus unacknowledged bytes exceed `max_pending_bytes`.
    #[error("connection send queue is full")]
    Full,
    /// The messenger was shut down.
    #[error("messenger is shut down")]
    Shutdown,
}
