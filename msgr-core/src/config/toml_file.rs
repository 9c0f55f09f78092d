//! [`MessengerConfig`] from a TOML file: msgr's own key names (the serialized shape), with
//! Ceph's `ms_*` names accepted as aliases at the top level.
//!
//! Errors name the file and line: syntax errors through `toml`'s spans, unknown keys and bad
//! values by looking the key up in the spanned document. This module does not read ceph.conf
//! (see `ceph_conf`).

use std::path::Path;

use toml::de::{DeTable, DeValue};

use super::ceph;
use super::load::{self, Entry, Repeat};
use super::MessengerConfig;
use crate::error::ConfigError;

impl MessengerConfig {
    /// Reads a TOML document: the serialized shape of [`MessengerConfig`] (every key optional,
    /// the pipe's keys at the top level, `[policies.osd]`, `[inject]`, `[crc]`, ...), where a
    /// mapped Ceph name (`ms_tcp_read_timeout`, `ms_crc_data`, ... see the module docs) may
    /// stand for msgr's own, with msgr's units (seconds, bytes) or, as a string, in Ceph's
    /// spelling (`ms_dispatch_throttle_bytes = "100M"`), then validates it.
    ///
    /// `origin` names the text in errors (a file name). An unknown key, a bad value, or one
    /// setting given under both names is an error naming the key and its line.
    ///
    /// ```
    /// use msgr_core::MessengerConfig;
    /// let cfg = MessengerConfig::from_toml_str(
    ///     "ms_tcp_read_timeout = 30\nmax_backoff = 2.5\n[crc]\ndata = false\n",
    ///     "msgr.toml",
    /// ).unwrap();
    /// assert_eq!(cfg.pipe.read_timeout.as_secs(), 30);
    /// assert!(!cfg.pipe.crc.data);
    /// let err = MessengerConfig::from_toml_str("\nread_timout = 3\n", "msgr.toml").unwrap_err();
    /// assert_eq!(err.to_string(), "msgr.toml:2: unknown key `read_timout`");
    /// ```
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let doc = DeTable::parse(text).map_err(|e| ConfigError::Syntax {
            origin: origin.to_owned(),
            line: e.span().map_or(1, |s| line_of(text, s.start)),
            message: e.message().trim_end().to_owned(),
        })?;
        let values: toml::Table =
            text.parse()
                .map_err(|e: toml::de::Error| ConfigError::Syntax {
                    origin: origin.to_owned(),
                    line: e.span().map_or(1, |s| line_of(text, s.start)),
                    message: e.message().trim_end().to_owned(),
                })?;
        let mut keys: Vec<_> = doc.get_ref().iter().collect();
        keys.sort_by_key(|(k, _)| k.span().start);
        let mut entries = Vec::with_capacity(keys.len());
        for (key, value) in keys {
            let name: &str = key.get_ref();
            let line = line_of(text, key.span().start);
            let Some(v) = values.get(name) else {
                continue; // both parses read the same text: not reached
            };
            let mut nested = Vec::new();
            nested_keys(text, value.get_ref(), &mut nested);
            let sets = match ceph::mapped(name) {
                Some(opt) => opt
                    .targets
                    .iter()
                    .map(|&(path, repr)| {
                        // A string is read in Ceph's spelling (`"100M"`, `"true"`).
                        match v {
                            toml::Value::String(text) => ceph::parse_value(opt.unit, repr, text),
                            other => ceph::number_as(repr, other.clone()),
                        }
                        .map(|v| (path.to_owned(), v))
                        .map_err(|message| ConfigError::BadValue {
                            origin: origin.to_owned(),
                            line,
                            key: name.to_owned(),
                            message,
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?,
                None => vec![(name.to_owned(), v.clone())],
            };
            entries.push(Entry {
                key: name.to_owned(),
                line,
                sets,
                nested,
            });
        }
        load::build(origin, &entries, Repeat::Refuse)
    }

    /// Reads a TOML file as [`from_toml_str`](Self::from_toml_str) does, errors naming the
    /// path.
    pub fn from_toml_file(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml_str(&text, &path.display().to_string())
    }
}

/// Keys nested in `value` and their lines, depth first.
fn nested_keys(text: &str, value: &DeValue<'_>, out: &mut Vec<(String, usize)>) {
    match value {
        DeValue::Table(t) => {
            let mut keys: Vec<_> = t.iter().collect();
            keys.sort_by_key(|(k, _)| k.span().start);
            for (k, v) in keys {
                out.push((k.get_ref().to_string(), line_of(text, k.span().start)));
                nested_keys(text, v.get_ref(), out);
            }
        }
        DeValue::Array(a) => {
            for v in a.iter() {
                nested_keys(text, v.get_ref(), out);
            }
        }
        _ => {}
    }
}

/// 1-based line of byte offset `at`.
fn line_of(text: &str, at: usize) -> usize {
    let at = at.min(text.len());
    text.as_bytes()
        .get(..at)
        .map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count())
        + 1
}
