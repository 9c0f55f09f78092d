//! [`MessengerConfig`]: every setting of a messenger in one plain struct.
//!
//! The struct has public fields with documented defaults (the Ceph option each one mirrors is
//! named), reads from any serde format (`#[serde(default)]`: a file only names what it changes),
//! and is checked once by [`MessengerConfig::validate`] when the messenger starts. Durations are
//! written as seconds (floats allowed), sizes as bytes.
//!
//! ```
//! use msgr_core::MessengerConfig;
//! let cfg: MessengerConfig = serde_json::from_str(
//!     r#"{ "bind_addr": "127.0.0.1:0", "read_timeout": 1.5,
//!          "policies": { "client": { "kind": "stateless_server" } } }"#,
//! ).unwrap();
//! assert_eq!(cfg.read_timeout.as_millis(), 1500);
//! cfg.validate().unwrap();
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use msgr_dispatch::DispatchConfig;
pub use msgr_pipe::InjectConfig;
use msgr_wire::{CrcFlags, EntityName, EntityType, Limits};
use serde::{Deserialize, Serialize};

use crate::error::ConfigError;

/// Ceph's `ms_dispatch_throttle_bytes`: 100 MiB.
pub const DEFAULT_DISPATCH_THROTTLE_BYTES: u64 = 100 << 20;

/// Settings of one messenger. See the module docs for the format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MessengerConfig {
    /// Entity name as Ceph writes it, `type.num` (`"osd.0"`, `"client.-1"`). Default `None`:
    /// the name given to [`Messenger::builder`](crate::Messenger::builder) is used; when set, it
    /// replaces that one.
    pub name: Option<String>,
    /// Address the accepter listens on. Default `0.0.0.0:0`. A non-zero port is used as is;
    /// port 0 searches `bind_port_min..=bind_port_max`, or lets the kernel choose when that
    /// range is `0..=0`.
    pub bind_addr: SocketAddr,
    /// Lowest port searched when binding port 0 (Ceph `ms_bind_port_min` is 6800). Default 0:
    /// the kernel chooses.
    pub bind_port_min: u16,
    /// Highest port searched when binding port 0 (Ceph `ms_bind_port_max` is 7300). Default 0.
    pub bind_port_max: u16,
    /// Ports never bound by the first bind (a rebind adds its own avoid set). Default empty.
    pub bind_avoid_ports: Vec<u16>,
    /// Nonce of this messenger's address (part of its identity on the wire). Default `None`:
    /// a random odd 32-bit value per messenger, so two processes sharing an IP and port 0 never
    /// collide (spec §9.23). Ceph monitors use 0, and clients dial `v1:IP:PORT` with nonce 0 and
    /// check it (spec §9.22): a messenger that stands in for a mon sets `Some(0)`.
    pub nonce: Option<u32>,
    /// Bytes read off the network but not yet dispatched, per messenger (Ceph
    /// `ms_dispatch_throttle_bytes`). Default 100 MiB; 0 = unlimited.
    pub dispatch_throttle_bytes: u64,
    /// Policy for peers whose type has no entry in `policies`. Default `lossless_client`
    /// (the flags of Ceph's `Policy()` constructor), no throttles.
    pub default_policy: PolicyConfig,
    /// Policy per peer entity type, keyed by type name (`mon`, `mds`, `osd`, `client`, `mgr`,
    /// `auth`). Default empty.
    pub policies: BTreeMap<String, PolicyConfig>,
    /// Feature bits this messenger supports (Ceph `CEPH_FEATURES_SUPPORTED_DEFAULT`). Default:
    /// `CEPH_FEATURES_ALL` of Pacific ([`msgr_wire::features::ALL_PACIFIC`]).
    pub features_supported: u64,
    /// Feature bits required of every peer, added to each policy's own. Default 0.
    pub features_required: u64,
    /// A connection that receives nothing for this long faults (Ceph `ms_tcp_read_timeout`).
    /// Seconds; default 900; must be positive.
    #[serde(with = "secs")]
    pub read_timeout: Duration,
    /// A handshake must finish within this (Ceph `ms_connection_ready_timeout`). Seconds;
    /// default 10.
    #[serde(with = "secs")]
    pub handshake_timeout: Duration,
    /// First reconnect backoff (Ceph `ms_initial_backoff`). Seconds; default 0.2.
    #[serde(with = "secs")]
    pub initial_backoff: Duration,
    /// Cap of the doubling reconnect backoff (Ceph `ms_max_backoff`). Seconds; default 15.
    #[serde(with = "secs")]
    pub max_backoff: Duration,
    /// Receive limits: largest front, middle, data and whole message, largest authorizer.
    /// Default: 128 MiB each, 4 KiB authorizer ([`Limits::default`]).
    pub limits: Limits,
    /// Which CRCs are computed and checked (Ceph `ms_crc_header`, `ms_crc_data`). Default: both.
    pub crc: CrcFlags,
    /// Accepted connections alive at once; further ones are closed at accept. Default 0 =
    /// unlimited.
    pub max_connections: usize,
    /// Sender backpressure: `send` waits (and `try_send` fails) while a connection's queued
    /// plus unacknowledged bytes exceed this. Default 64 MiB; 0 = unlimited.
    pub max_pending_bytes: u64,
    /// Dispatch queue ordering: strict threshold (64), minimum cost (64 KiB) and token cap
    /// (16 MiB) of the priority queue, Ceph's `ms_pq_*`. Default: [`DispatchConfig::default`].
    pub dispatch: DispatchConfig,
    /// Fault injection, all off by default.
    pub inject: InjectConfig,
}

impl Default for MessengerConfig {
    fn default() -> Self {
        Self {
            name: None,
            bind_addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            bind_port_min: 0,
            bind_port_max: 0,
            bind_avoid_ports: Vec::new(),
            nonce: None,
            dispatch_throttle_bytes: DEFAULT_DISPATCH_THROTTLE_BYTES,
            default_policy: PolicyConfig::new(PolicyKind::LosslessClient),
            policies: BTreeMap::new(),
            features_supported: msgr_wire::features::ALL_PACIFIC,
            features_required: 0,
            read_timeout: Duration::from_secs(900),
            handshake_timeout: Duration::from_secs(10),
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(15),
            limits: Limits::default(),
            crc: CrcFlags::default(),
            max_connections: 0,
            max_pending_bytes: 64 << 20,
            dispatch: DispatchConfig::default(),
            inject: InjectConfig::default(),
        }
    }
}

impl MessengerConfig {
    /// Checks the settings once; [`MessengerBuilder::start`](crate::MessengerBuilder::start)
    /// calls it.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(name) = &self.name {
            name.parse::<EntityName>()
                .map_err(|_| ConfigError::EntityName(name.clone()))?;
        }
        if self.bind_port_min > self.bind_port_max {
            return Err(ConfigError::PortRange {
                min: self.bind_port_min,
                max: self.bind_port_max,
            });
        }
        if self.bind_port_min == 0 && self.bind_port_max != 0 {
            return Err(ConfigError::PortRange {
                min: self.bind_port_min,
                max: self.bind_port_max,
            });
        }
        for peer in self.policies.keys() {
            peer.parse::<EntityType>()
                .map_err(|_| ConfigError::EntityType(peer.clone()))?;
        }
        if self.handshake_timeout.is_zero() {
            return Err(ConfigError::Invalid("handshake_timeout must be positive"));
        }
        if self.initial_backoff > self.max_backoff {
            return Err(ConfigError::Invalid("initial_backoff exceeds max_backoff"));
        }
        if self.limits.max_message == 0 {
            return Err(ConfigError::Invalid("limits.max_message must be positive"));
        }
        if self.read_timeout.is_zero() {
            return Err(ConfigError::Invalid("read_timeout must be positive"));
        }
        if self.dispatch.validate().is_err() {
            return Err(ConfigError::Invalid(
                "dispatch.min_cost exceeds dispatch.max_tokens_per_priority",
            ));
        }
        if !(0.0..=1.0).contains(&self.inject.delay_probability) {
            return Err(ConfigError::Invalid(
                "inject.delay_probability must be within [0, 1]",
            ));
        }
        Ok(())
    }
}

/// The six policies of the spec's section 7, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum PolicyKind {
    /// Lossy, initiates; a fault after the first connect is a reset (librados toward OSDs).
    LossyClient,
    /// Lossless, initiates and reconnects at once, detects peer resets (CephFS toward MDS).
    LosslessClient,
    /// Lossless peer that goes standby when idle (OSD to OSD).
    LosslessPeer,
    /// As `LosslessPeer`, plus session-reset detection (mon to mon).
    LosslessPeerReuse,
    /// Lossless server: keeps sessions, never reconnects, tells forgotten peers to reset.
    StatefulServer,
    /// Lossy server: forgets everything on any fault.
    StatelessServer,
}

/// A policy chosen by name, with its inbound throttles.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyConfig {
    /// Which policy. Default `lossless_client`.
    pub kind: PolicyKind,
    /// Inbound byte throttle shared by every connection of this peer type (Ceph
    /// `throttler_bytes`). Default 0 = none.
    pub throttle_bytes: u64,
    /// Inbound message-count throttle (Ceph `throttler_messages`). Default 0 = none.
    pub throttle_messages: u64,
    /// Feature bits required of peers of this type, on top of the messenger-wide ones.
    /// Default 0.
    pub features_required: u64,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self::new(PolicyKind::LosslessClient)
    }
}

impl PolicyConfig {
    /// A policy of this kind without throttles or extra required features.
    pub fn new(kind: PolicyKind) -> Self {
        Self {
            kind,
            throttle_bytes: 0,
            throttle_messages: 0,
            features_required: 0,
        }
    }
}

/// Serde adapter: a `Duration` written as (possibly fractional) seconds.
mod secs {
    use std::time::Duration;

    use serde::{de::Error as _, Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let v = f64::deserialize(d)?;
        Duration::try_from_secs_f64(v).map_err(|_| D::Error::custom("invalid duration in seconds"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_round_trip_through_json() {
        let cfg = MessengerConfig::default();
        cfg.validate().unwrap();
        let text = serde_json::to_string(&cfg).unwrap();
        let back: MessengerConfig = serde_json::from_str(&text).unwrap();
        assert_eq!(cfg, back);
        assert_eq!(cfg.dispatch_throttle_bytes, 100 * 1024 * 1024);
    }

    #[test]
    fn partial_file_keeps_defaults() {
        let cfg: MessengerConfig = serde_json::from_str(
            r#"{"max_backoff": 1, "policies": {"osd": {"kind": "lossless_peer",
                "throttle_bytes": 1024}}, "inject": {"socket_failures": 30}}"#,
        )
        .unwrap();
        assert_eq!(cfg.max_backoff, Duration::from_secs(1));
        assert_eq!(cfg.read_timeout, Duration::from_secs(900));
        assert_eq!(cfg.policies["osd"].kind, PolicyKind::LosslessPeer);
        assert_eq!(cfg.policies["osd"].throttle_bytes, 1024);
        assert_eq!(cfg.inject.socket_failures, 30);
        cfg.validate().unwrap();
    }

    #[test]
    fn unknown_fields_and_bad_values_are_rejected() {
        assert!(serde_json::from_str::<MessengerConfig>(r#"{"nope": 1}"#).is_err());
        assert!(serde_json::from_str::<MessengerConfig>(r#"{"read_timeout": -1}"#).is_err());
        let cfg = MessengerConfig {
            bind_port_min: 7000,
            bind_port_max: 6800,
            ..Default::default()
        };
        assert!(cfg.validate().is_err());
        let mut cfg = MessengerConfig::default();
        cfg.policies
            .insert("martian".into(), PolicyConfig::new(PolicyKind::LossyClient));
        assert!(cfg.validate().is_err());
        let mut cfg = MessengerConfig::default();
        cfg.inject.delay_probability = 2.0;
        assert!(cfg.validate().is_err());
    }
}
