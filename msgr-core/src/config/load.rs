//! What both file loaders share: settings gathered as (key, line, dotted path, value) are
//! merged into one TOML table, each key checked alone so that an error names it and its line,
//! then the whole read as a [`MessengerConfig`] and validated.
//!
//! Checking each key alone costs one small deserialization per key and makes the error exact
//! whatever serde does with `flatten` (which drops spans). A key serde does not refuse but
//! drops (the nested tables of other crates' structs have no `deny_unknown_fields`) is found
//! by serializing the result back: a key path of the input that the output lacks is unknown.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::MessengerConfig;
use crate::error::ConfigError;

/// One key of a file and the settings it gives.
#[derive(Debug)]
pub(super) struct Entry {
    /// The key as written.
    pub key: String,
    /// Its 1-based line.
    pub line: usize,
    /// Dotted paths of the serialized config (`crc.data`) and their values.
    pub sets: Vec<(String, toml::Value)>,
    /// Lines of the keys nested in the value (name, line), to place errors inside it.
    pub nested: Vec<(String, usize)>,
}

/// What a second setting of the same path does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Repeat {
    /// Replaces the first (ceph.conf: a later section overrides).
    Override,
    /// Is an error (TOML: a key and its Ceph alias).
    Refuse,
}

/// Builds and validates the config that `entries` describe.
pub(super) fn build(
    origin: &str,
    entries: &[Entry],
    repeat: Repeat,
) -> Result<MessengerConfig, ConfigError> {
    let mut table = toml::Table::new();
    // Which entry set each leaf path, for the Duplicate error.
    let mut owners: BTreeMap<String, usize> = BTreeMap::new();
    for (i, e) in entries.iter().enumerate() {
        check_alone(origin, e)?;
        for (path, value) in &e.sets {
            let mut leaves = Vec::new();
            leaf_paths(path, value, &mut leaves);
            for leaf in leaves {
                if let Some(&first) = owners.get(&leaf) {
                    if repeat == Repeat::Refuse && first != i {
                        let f = &entries[first];
                        return Err(ConfigError::Duplicate {
                            origin: origin.to_owned(),
                            line: e.line,
                            key: e.key.clone(),
                            setting: leaf,
                            first_key: f.key.clone(),
                            first_line: f.line,
                        });
                    }
                }
                owners.insert(leaf, i);
            }
            insert_entry(&mut table, origin, e, path, value)?;
        }
    }
    let cfg = MessengerConfig::deserialize(toml::Value::Table(table)).map_err(|err| {
        // Each key passed alone; together they still may not (not seen: kept typed).
        ConfigError::Syntax {
            origin: origin.to_owned(),
            line: entries.first().map_or(1, |e| e.line),
            message: err.message().to_owned(),
        }
    })?;
    cfg.validate()?;
    Ok(cfg)
}

/// Deserializes the config that this entry alone gives, and checks that every key it names
/// survives a round trip.
fn check_alone(origin: &str, e: &Entry) -> Result<(), ConfigError> {
    let mut table = toml::Table::new();
    for (path, value) in &e.sets {
        insert_entry(&mut table, origin, e, path, value)?;
    }
    let input = table.clone();
    let cfg = match MessengerConfig::deserialize(toml::Value::Table(table)) {
        Ok(cfg) => cfg,
        Err(err) => {
            let message = err.message();
            if let Some(name) = unknown_field(message) {
                return Err(ConfigError::UnknownKey {
                    origin: origin.to_owned(),
                    line: e.nested_line(name),
                    key: name.to_owned(),
                });
            }
            return Err(ConfigError::BadValue {
                origin: origin.to_owned(),
                line: e.line,
                key: e.key.clone(),
                message: message.to_owned(),
            });
        }
    };
    let back = toml::Table::try_from(&cfg).map_err(|err| ConfigError::BadValue {
        origin: origin.to_owned(),
        line: e.line,
        key: e.key.clone(),
        message: err.to_string(),
    })?;
    if let Some(name) = dropped_key(&input, &back) {
        return Err(ConfigError::UnknownKey {
            origin: origin.to_owned(),
            line: e.nested_line(&name),
            key: name,
        });
    }
    Ok(())
}

impl Entry {
    /// The line of the nested key `name`, or the entry's own.
    fn nested_line(&self, name: &str) -> usize {
        if name == self.key {
            return self.line;
        }
        self.nested
            .iter()
            .find(|(k, _)| k == name)
            .map_or(self.line, |&(_, line)| line)
    }
}

/// The field name of serde's "unknown field `x`, expected ..." message.
fn unknown_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("unknown field `")?;
    rest.split('`').next()
}

/// The first key of `input` (recursively into tables) that `back` lacks.
fn dropped_key(input: &toml::Table, back: &toml::Table) -> Option<String> {
    for (k, v) in input {
        match (v, back.get(k)) {
            (_, None) => return Some(k.clone()),
            (toml::Value::Table(i), Some(toml::Value::Table(b))) => {
                if let Some(found) = dropped_key(i, b) {
                    return Some(found);
                }
            }
            _ => {}
        }
    }
    None
}

/// Every leaf path under `path` of `value` (the path itself unless the value is a table).
fn leaf_paths(path: &str, value: &toml::Value, out: &mut Vec<String>) {
    match value {
        toml::Value::Table(t) if !t.is_empty() => {
            for (k, v) in t {
                leaf_paths(&format!("{path}.{k}"), v, out);
            }
        }
        _ => out.push(path.to_owned()),
    }
}

/// [`insert`] of one of `e`'s settings; a conflict is a [`ConfigError::BadValue`] at `e`'s line.
fn insert_entry(
    table: &mut toml::Table,
    origin: &str,
    e: &Entry,
    path: &str,
    value: &toml::Value,
) -> Result<(), ConfigError> {
    insert(table, path, value.clone()).map_err(|message| ConfigError::BadValue {
        origin: origin.to_owned(),
        line: e.line,
        key: e.key.clone(),
        message,
    })
}

/// Sets `path` (dotted) to `value`, creating tables on the way and merging tables.
fn insert(table: &mut toml::Table, path: &str, value: toml::Value) -> Result<(), String> {
    let (head, rest) = match path.split_once('.') {
        Some((h, r)) => (h, Some(r)),
        None => (path, None),
    };
    match rest {
        None => match (table.get_mut(head), value) {
            (Some(toml::Value::Table(old)), toml::Value::Table(new)) => {
                for (k, v) in new {
                    insert(old, &k, v)?;
                }
                Ok(())
            }
            (_, value) => {
                table.insert(head.to_owned(), value);
                Ok(())
            }
        },
        Some(rest) => {
            let slot = table
                .entry(head.to_owned())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            match slot {
                toml::Value::Table(t) => insert(t, rest, value),
                _ => Err(format!("`{head}` is not a table")),
            }
        }
    }
}
