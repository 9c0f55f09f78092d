//! [`PipeConfig`]: every tunable of the pipe, with documented defaults, serde-readable.
//!
//! Durations are written as seconds in floating point (`read_timeout = 900.0`,
//! `initial_backoff = 0.2`). Missing fields take their defaults (`#[serde(default)]`).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use msgr_wire::{CrcFlags, Limits};
use serde::{Deserialize, Serialize};

use crate::hook::HandshakeHook;

/// Serde helper: a `Duration` as f64 seconds.
mod secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let v = f64::deserialize(d)?;
        Duration::try_from_secs_f64(v).map_err(serde::de::Error::custom)
    }
}

/// Fault injection settings (all off by default). See [`crate::inject`].
///
/// The fields are there in every build, so that configuration files keep parsing; without the
/// crate's `inject` feature, [`PipeConfig::validate`] refuses any setting that would inject
/// ([`ConfigError::InjectDisabled`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InjectConfig {
    /// Fail a socket operation with probability 1/N (Ceph `ms_inject_socket_failures`);
    /// 0 = off.
    pub socket_failures: u32,
    /// Sleep this long at race-prone points (Ceph `ms_inject_internal_delays`); 0 = off.
    #[serde(with = "secs")]
    pub internal_delay: Duration,
    /// Probability that a received message is held back before delivery (Ceph
    /// `ms_inject_delay_probability`); 0 = no delay stage.
    pub delay_probability: f64,
    /// Longest hold (Ceph `ms_inject_delay_max`).
    #[serde(with = "secs")]
    pub delay_max: Duration,
    /// Seed of every injection generator, so that a run replays.
    pub seed: u64,
}

impl Default for InjectConfig {
    fn default() -> Self {
        InjectConfig {
            socket_failures: 0,
            internal_delay: Duration::ZERO,
            delay_probability: 0.0,
            delay_max: Duration::from_secs(1),
            seed: 0,
        }
    }
}

/// A msgr2 connection mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConMode {
    /// Frames carry CRCs; nothing is encrypted (integrity against accidents only).
    Crc,
    /// Frames are sealed with AES-128-GCM under the connection secret (needs cephx).
    Secure,
}

impl ConMode {
    /// The mode's number on the wire (`CON_MODE_CRC` 1, `CON_MODE_SECURE` 2).
    pub fn wire(self) -> u32 {
        match self {
            ConMode::Crc => crate::v2::connect::CON_MODE_CRC,
            ConMode::Secure => crate::v2::connect::CON_MODE_SECURE,
        }
    }

    /// Parses Ceph's option syntax: modes separated by spaces or commas, in order of
    /// preference (`"secure crc"`).
    pub fn parse_list(s: &str) -> Result<Vec<ConMode>, ConfigError> {
        let modes = s
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|w| !w.is_empty())
            .map(|w| match w {
                "crc" => Ok(ConMode::Crc),
                "secure" => Ok(ConMode::Secure),
                other => Err(ConfigError::ConMode(other.to_string())),
            })
            .collect::<Result<Vec<_>, _>>()?;
        if modes.is_empty() {
            return Err(ConfigError::ConMode(s.to_string()));
        }
        Ok(modes)
    }
}

/// msgr2 connection modes, each list in order of preference.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConModes {
    /// What we offer when we connect (Ceph's `ms_client_mode`, default `crc secure`).
    pub client: Vec<ConMode>,
    /// What we offer a mon (Ceph's `ms_mon_client_mode`, default `secure crc`). Only crc is
    /// offered with auth `none`, which has no connection secret.
    pub mon_client: Vec<ConMode>,
    /// What we allow when we accept (Ceph's `ms_service_mode`, default `crc secure`).
    pub service: Vec<ConMode>,
}

impl Default for ConModes {
    fn default() -> Self {
        ConModes {
            client: vec![ConMode::Crc, ConMode::Secure],
            mon_client: vec![ConMode::Secure, ConMode::Crc],
            service: vec![ConMode::Crc, ConMode::Secure],
        }
    }
}

impl ConModes {
    /// The client list as wire numbers.
    pub fn client_wire(&self) -> Vec<u32> {
        self.client.iter().map(|m| m.wire()).collect()
    }

    /// The mon client list as wire numbers.
    pub fn mon_client_wire(&self) -> Vec<u32> {
        self.mon_client.iter().map(|m| m.wire()).collect()
    }

    /// The service list as wire numbers.
    pub fn service_wire(&self) -> Vec<u32> {
        self.service.iter().map(|m| m.wire()).collect()
    }
}

/// The default bound of a session's queued plus unacknowledged message bytes
/// ([`PipeConfig::max_pending_bytes`]): 64 MiB.
pub const DEFAULT_MAX_PENDING_BYTES: u64 = 64 << 20;

/// What each queued message counts against [`PipeConfig::max_pending_bytes`] besides its
/// payload: the memory it holds until acknowledged beyond its segments (its queue entry with
/// header, footer, buffer handles and permit, and its buffers' own allocation headers). With
/// payload bytes alone, 64 MiB admitted a million 64-byte messages holding about 300 MB.
pub const MESSAGE_OVERHEAD: u64 = std::mem::size_of::<crate::core::Outgoing>() as u64 + 64;

/// Settings of the pipes of one messenger.
///
/// | field | default | Ceph option |
/// |---|---|---|
/// | `read_timeout` | 900 s | `ms_tcp_read_timeout` |
/// | `handshake_timeout` | 10 s | `ms_connection_ready_timeout` |
/// | `initial_backoff` | 0.2 s | `ms_initial_backoff` |
/// | `max_backoff` | 15 s | `ms_max_backoff` (also the wait after WAIT) |
/// | `limits` | 128 MiB per segment and message, 4 KiB authorizer | — |
/// | `crc` | header and data CRCs on | `ms_crc_header`, `ms_crc_data` |
/// | `max_pending_bytes` | 64 MiB ([`DEFAULT_MAX_PENDING_BYTES`]) | — (sender back-pressure: queued + unacked bytes, payload plus `MESSAGE_OVERHEAD` each; 0 = unlimited) |
/// | `ack_batch` | 64 | — (the reader asks for an ACK at least every N messages) |
/// | `ack_bytes` | 16 MiB | — (… and at least every N payload bytes) |
/// | `ack_delay` | 2 ms | — (… and once its socket has been quiet this long) |
/// | `keepalive_interval` | 0 (off) | — (a KEEPALIVE2 after this long without reading anything; Ceph's messengers leave keepalives to their users, e.g. the MonClient's pings) |
/// | `write_batch_bytes` | 4 MiB | — (payload bytes the writer takes per vectored write) |
/// | `default_priority` | 127 | `ms_default_send_priority`-like, for messages with priority 0 |
/// | `inject` | all off | `ms_inject_*` |
/// | `con_modes` | `crc secure` (to mons `secure crc`) | `ms_client_mode`, `ms_mon_client_mode`, `ms_service_mode` (msgr2) |
/// | `hook` | none (not serialised) | — |
///
/// msgr-core's file loaders (`MessengerConfig::from_toml_str`, `from_ceph_conf_str`) take the
/// Ceph names of this table as well; msgr-core's `config` module docs give their units and
/// Ceph's defaults.
#[derive(Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct PipeConfig {
    /// A socket with nothing to read for this long faults.
    #[serde(with = "secs")]
    pub read_timeout: Duration,
    /// A handshake must complete within this.
    #[serde(with = "secs")]
    pub handshake_timeout: Duration,
    /// First reconnect backoff.
    #[serde(with = "secs")]
    pub initial_backoff: Duration,
    /// Backoff cap, and the wait after a WAIT reply.
    #[serde(with = "secs")]
    pub max_backoff: Duration,
    /// Receive limits.
    pub limits: Limits,
    /// CRCs computed and checked.
    pub crc: CrcFlags,
    /// Per-session bound of queued + unacknowledged message bytes (payload plus
    /// [`MESSAGE_OVERHEAD`] per message); `send` waits beyond it,
    /// `try_send` fails. 0 = unlimited. While a `send` waits, the writer ends each batch with
    /// a KEEPALIVE2, whose answer brings the peer's ACK at once (peers delay their ACKs: see
    /// `ack_delay`).
    pub max_pending_bytes: u64,
    /// The reader asks the writer for an ACK at least every this many messages, and whenever
    /// it is about to wait for the socket with messages unacknowledged.
    pub ack_batch: u32,
    /// ... and at least every this many payload bytes. While the peer streams, an ACK per read
    /// would cost a frame, a wake-up of both writers' peers and a syscall per large message;
    /// keep this well under the peer's own bound on unacknowledged bytes (our
    /// `max_pending_bytes`, 64 MiB by default) or the peer stalls until we go idle.
    pub ack_bytes: u64,
    /// ... and once the socket has had nothing to read for this long (like TCP's delayed
    /// ACK: while the peer streams, the reader often catches up with it for a moment, and an
    /// ACK at each such moment cost a quarter of the bandwidth of 4 MiB messages in wake-ups
    /// on both ends). ACKs also ride along with every message the writer sends, so replies
    /// are never delayed by this.
    #[serde(with = "secs")]
    pub ack_delay: Duration,
    /// Send a KEEPALIVE2 once the socket has had nothing to read for this long (its ack
    /// measures the round trip and shows the peer alive); zero: never (the default).
    #[serde(with = "secs")]
    pub keepalive_interval: Duration,
    /// Payload bytes the writer takes from the queue for one vectored write.
    pub write_batch_bytes: u64,
    /// Priority given to messages queued with priority 0.
    pub default_priority: u16,
    /// Fault injection.
    pub inject: InjectConfig,
    /// msgr2 connection modes offered and allowed.
    pub con_modes: ConModes,
    /// Handshake hook for deterministic tests.
    #[serde(skip)]
    pub hook: Option<Arc<dyn HandshakeHook>>,
}

impl fmt::Debug for PipeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PipeConfig")
            .field("read_timeout", &self.read_timeout)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("initial_backoff", &self.initial_backoff)
            .field("max_backoff", &self.max_backoff)
            .field("limits", &self.limits)
            .field("crc", &self.crc)
            .field("max_pending_bytes", &self.max_pending_bytes)
            .field("ack_batch", &self.ack_batch)
            .field("ack_bytes", &self.ack_bytes)
            .field("ack_delay", &self.ack_delay)
            .field("keepalive_interval", &self.keepalive_interval)
            .field("write_batch_bytes", &self.write_batch_bytes)
            .field("default_priority", &self.default_priority)
            .field("inject", &self.inject)
            .field("con_modes", &self.con_modes)
            .field("hook", &self.hook.is_some())
            .finish()
    }
}

/// Field by field; the hook compares by identity (`Arc::ptr_eq`). The destructuring makes a
/// new field a compile error here until it is compared.
impl PartialEq for PipeConfig {
    fn eq(&self, other: &Self) -> bool {
        let PipeConfig {
            read_timeout,
            handshake_timeout,
            initial_backoff,
            max_backoff,
            limits,
            crc,
            max_pending_bytes,
            ack_batch,
            ack_bytes,
            ack_delay,
            keepalive_interval,
            write_batch_bytes,
            default_priority,
            inject,
            con_modes,
            hook,
        } = self;
        *read_timeout == other.read_timeout
            && *handshake_timeout == other.handshake_timeout
            && *initial_backoff == other.initial_backoff
            && *max_backoff == other.max_backoff
            && *limits == other.limits
            && *crc == other.crc
            && *max_pending_bytes == other.max_pending_bytes
            && *ack_batch == other.ack_batch
            && *ack_bytes == other.ack_bytes
            && *ack_delay == other.ack_delay
            && *keepalive_interval == other.keepalive_interval
            && *write_batch_bytes == other.write_batch_bytes
            && *default_priority == other.default_priority
            && *inject == other.inject
            && *con_modes == other.con_modes
            && match (hook, &other.hook) {
                (None, None) => true,
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                _ => false,
            }
    }
}

impl Default for PipeConfig {
    fn default() -> Self {
        PipeConfig {
            read_timeout: Duration::from_secs(900),
            handshake_timeout: Duration::from_secs(10),
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(15),
            limits: Limits::default(),
            crc: CrcFlags::default(),
            max_pending_bytes: DEFAULT_MAX_PENDING_BYTES,
            ack_batch: 64,
            ack_bytes: 16 << 20,
            ack_delay: Duration::from_millis(2),
            keepalive_interval: Duration::ZERO,
            write_batch_bytes: 4 << 20,
            default_priority: msgr_wire::PRIO_DEFAULT,
            inject: InjectConfig::default(),
            con_modes: ConModes::default(),
            hook: None,
        }
    }
}

/// A configuration value that cannot work.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A duration that must be positive is zero.
    #[error("{0} must be positive")]
    Zero(&'static str),
    /// `initial_backoff > max_backoff`.
    #[error("initial_backoff {initial:?} exceeds max_backoff {max:?}")]
    Backoff {
        /// initial
        initial: Duration,
        /// max
        max: Duration,
    },
    /// A probability outside [0, 1].
    #[error("delay_probability {0} is not in [0, 1]")]
    Probability(f64),
    /// Not a list of msgr2 connection modes (`crc`, `secure`).
    #[error("{0:?} is not a list of msgr2 connection modes (crc, secure)")]
    ConMode(String),
    /// A fault injection setting in a build without the `inject` feature.
    #[error("{setting} asks for fault injection, which this build leaves out: enable the `inject` feature of msgr-pipe (msgr-core/inject)")]
    InjectDisabled {
        /// The setting that asks for injection, by its config name and Ceph's
        /// (`inject.socket_failures (ms_inject_socket_failures)`, ...).
        setting: &'static str,
    },
}

impl PipeConfig {
    /// Checks the values once, before use.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.read_timeout.is_zero() {
            return Err(ConfigError::Zero("read_timeout"));
        }
        if self.handshake_timeout.is_zero() {
            return Err(ConfigError::Zero("handshake_timeout"));
        }
        if self.initial_backoff > self.max_backoff {
            return Err(ConfigError::Backoff {
                initial: self.initial_backoff,
                max: self.max_backoff,
            });
        }
        let p = self.inject.delay_probability;
        if !(0.0..=1.0).contains(&p) {
            return Err(ConfigError::Probability(p));
        }
        if self.con_modes.mon_client.is_empty() {
            return Err(ConfigError::ConMode("ms_mon_client_mode (empty)".into()));
        }
        if self.con_modes.client.is_empty() {
            return Err(ConfigError::ConMode("ms_client_mode (empty)".into()));
        }
        if self.con_modes.service.is_empty() {
            return Err(ConfigError::ConMode("ms_service_mode (empty)".into()));
        }
        self.inject.check_compiled(crate::inject::ENABLED)
    }
}

impl InjectConfig {
    /// Whether these settings inject anything: a socket failure rate, an internal delay or a
    /// delay probability (the seed and `delay_max` alone do not).
    pub fn injects(&self) -> bool {
        self.injecting_setting().is_some()
    }

    /// The first setting that injects, by its config name and Ceph's.
    fn injecting_setting(&self) -> Option<&'static str> {
        if self.socket_failures > 0 {
            Some("inject.socket_failures (ms_inject_socket_failures)")
        } else if !self.internal_delay.is_zero() {
            Some("inject.internal_delay (ms_inject_internal_delays)")
        } else if self.delay_probability > 0.0 {
            Some("inject.delay_probability (ms_inject_delay_probability)")
        } else {
            None
        }
    }

    /// Refuses injecting settings when the build has no injection (`compiled == false`):
    /// [`PipeConfig::validate`]'s rule, apart so that a test can run it in either build.
    fn check_compiled(&self, compiled: bool) -> Result<(), ConfigError> {
        match self.injecting_setting() {
            Some(setting) if !compiled => Err(ConfigError::InjectDisabled { setting }),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_serde_uses_seconds() {
        let c = PipeConfig::default();
        assert!(c.validate().is_ok());
        assert_eq!(c.read_timeout, Duration::from_secs(900));
        assert_eq!(c.initial_backoff, Duration::from_millis(200));
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(v["initial_backoff"], serde_json::json!(0.2));
        assert_eq!(v["max_backoff"], serde_json::json!(15.0));
        let back: PipeConfig =
            serde_json::from_str(r#"{"read_timeout": 1.5, "inject": {"socket_failures": 30}}"#)
                .unwrap();
        assert_eq!(back.read_timeout, Duration::from_millis(1500));
        assert_eq!(back.inject.socket_failures, 30);
        assert_eq!(back.max_backoff, Duration::from_secs(15));
    }

    #[test]
    fn validation_rejects_nonsense() {
        let c = PipeConfig {
            initial_backoff: Duration::from_secs(20),
            ..PipeConfig::default()
        };
        assert!(matches!(c.validate(), Err(ConfigError::Backoff { .. })));
        let mut c = PipeConfig::default();
        c.inject.delay_probability = 2.0;
        assert!(matches!(c.validate(), Err(ConfigError::Probability(_))));
        let c = PipeConfig {
            read_timeout: Duration::ZERO,
            ..PipeConfig::default()
        };
        assert!(matches!(
            c.validate(),
            Err(ConfigError::Zero("read_timeout"))
        ));
    }

    /// Without the `inject` feature every injecting setting is refused by name, and the error
    /// names the feature; settings that inject nothing (a seed, `delay_max`) pass. The rule runs
    /// here with `compiled == false` whatever this build is (the tests build has the feature).
    #[test]
    fn injection_is_refused_by_a_build_without_it() {
        let off = InjectConfig {
            seed: 7,
            delay_max: Duration::from_secs(3),
            ..InjectConfig::default()
        };
        assert!(!off.injects());
        assert_eq!(off.check_compiled(false), Ok(()));
        type Set = fn(&mut InjectConfig);
        let cases: [(Set, &str); 3] = [
            (
                |c| c.socket_failures = 40,
                "inject.socket_failures (ms_inject_socket_failures)",
            ),
            (
                |c| c.internal_delay = Duration::from_millis(1),
                "inject.internal_delay (ms_inject_internal_delays)",
            ),
            (
                |c| c.delay_probability = 0.5,
                "inject.delay_probability (ms_inject_delay_probability)",
            ),
        ];
        for (set, name) in cases {
            let mut c = off.clone();
            set(&mut c);
            assert!(c.injects());
            assert_eq!(c.check_compiled(true), Ok(()));
            let err = c.check_compiled(false).unwrap_err();
            assert_eq!(err, ConfigError::InjectDisabled { setting: name });
            let text = err.to_string();
            assert!(
                text.starts_with(name) && text.contains("`inject` feature"),
                "{text}"
            );
        }
        // validate() applies the rule of this build.
        let mut c = PipeConfig::default();
        c.inject.socket_failures = 40;
        assert_eq!(c.validate().is_ok(), crate::inject::ENABLED);
    }
}
