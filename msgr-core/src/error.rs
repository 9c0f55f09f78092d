//! Errors of msgr-core.

use std::net::SocketAddr;

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
