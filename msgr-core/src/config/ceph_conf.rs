//! [`MessengerConfig`] from a ceph.conf, read as Ceph reads it.
//!
//! The INI dialect of Ceph's `ConfFile` grammar: `[section]` lines; `key = value` lines,
//! where a key's runs of blanks, its dashes and its underscores are the same
//! (`ms tcp read timeout` is `ms_tcp_read_timeout`: Ceph's `ConfFile` folds blanks, its command
//! line takes a dash for an underscore); `#` and `;` start a comment, at the start of a line or
//! after a value; a value may be in double or single quotes; a backslash takes the next
//! character as it is (`\#`, `\"`), and a comment character inside quotes must be escaped, as
//! Ceph's grammar wants; a line ending in a backslash goes on with the next. Unlike Ceph,
//! blanks around a section name are refused (Ceph keeps them in the name). For entity `client.admin` the sections `[global]`, then
//! `[client]`, then `[client.admin]` apply, each later one overriding, wherever they are in the
//! file. Only `ms_*` options concern msgr: the others (`mon_host`, `keyring`, `auth_*`, `fsid`,
//! `log_file`, ...) are skipped, and an `ms_*` option Ceph has but msgr does not is skipped
//! too (see the module docs of `config` for both lists); an `ms_*` key that is not Ceph's is
//! an error, in any section. This module does not expand `$name`-style metavariables (no
//! messenger option uses them) and reads no `[section]` by other rules (no `--id` lookups,
//! no `include`).

use std::path::Path;

use msgr_wire::EntityType;

use super::ceph::{self, Repr};
use super::load::{self, Entry, Repeat};
use super::MessengerConfig;
use crate::error::ConfigError;

/// One `key = value` line of a ceph.conf.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Line {
    /// The section it is in.
    section: String,
    /// The key as written (trimmed).
    key: String,
    /// The key normalized (`ms_tcp_read_timeout`).
    name: String,
    /// The value, unquoted and unescaped.
    value: String,
    /// 1-based line of the key.
    line: usize,
}

impl MessengerConfig {
    /// Reads the messenger options of a ceph.conf (module `ceph_conf`'s rules) for the entity
    /// `entity` (`client.admin`, `osd.0`, `mon.a`: a Ceph type, a dot, an id), onto msgr's
    /// defaults, then validates. `origin` names the text in errors.
    ///
    /// Options a file does not set keep msgr's defaults, not Ceph's (msgr binds port 0 where
    /// Ceph searches 6800..=7300), except that setting one of `ms_bind_port_min`/`max` gives
    /// the other Ceph's default.
    ///
    /// ```
    /// use msgr_core::MessengerConfig;
    /// let conf = "[global]\nmon_host = v1:127.0.0.1:6789\nms tcp read timeout = 30\n\
    ///             [client]\nms_crc_data = false ; not on loopback\n";
    /// let cfg = MessengerConfig::from_ceph_conf_str(conf, "ceph.conf", "client.admin").unwrap();
    /// assert_eq!(cfg.pipe.read_timeout.as_secs(), 30);
    /// assert!(!cfg.pipe.crc.data);
    /// ```
    pub fn from_ceph_conf_str(text: &str, origin: &str, entity: &str) -> Result<Self, ConfigError> {
        let (ty, _id) = entity
            .split_once('.')
            .filter(|(ty, id)| !id.is_empty() && ty.parse::<EntityType>().is_ok())
            .ok_or_else(|| ConfigError::EntityName(entity.to_owned()))?;
        let lines = parse(text, origin)?;
        // Every ms_* key must be Ceph's, in whichever section.
        for l in &lines {
            let known = ceph::mapped(&l.name).is_some()
                || ceph::FIXED.iter().any(|(n, _)| *n == l.name)
                || ceph::IGNORED.contains(&l.name.as_str());
            if l.name.starts_with("ms_") && !known {
                return Err(ConfigError::UnknownKey {
                    origin: origin.to_owned(),
                    line: l.line,
                    key: l.key.clone(),
                });
            }
        }
        let sections = ["global", ty, entity];
        // The lines that apply to this entity, least specific section first.
        let applied: Vec<&Line> = sections
            .iter()
            .flat_map(|s| lines.iter().filter(move |l| l.section == *s))
            .collect();
        // An option msgr implements one way only: its value in effect must be that one.
        for &(name, want) in ceph::FIXED {
            if let Some(l) = applied.iter().rev().find(|l| l.name == name) {
                let got = ceph::parse_value(ceph::Unit::Bool, Repr::Bool, &l.value)
                    .map_err(|message| bad(origin, l, message))?;
                if got != toml::Value::Boolean(want) {
                    return Err(bad(origin, l, format!("msgr supports only {want}")));
                }
            }
        }
        let mut entries = Vec::new();
        for l in applied {
            let Some(opt) = ceph::mapped(&l.name) else {
                if ceph::IGNORED.contains(&l.name.as_str()) {
                    tracing::debug!(origin, line = l.line, key = %l.key, "ceph option msgr has no counterpart for, skipped");
                }
                continue;
            };
            let sets = opt
                .targets
                .iter()
                .map(|&(path, repr)| {
                    ceph::parse_value(opt.unit, repr, &l.value)
                        .map(|v| (path.to_owned(), v))
                        .map_err(|message| bad(origin, l, message))
                })
                .collect::<Result<Vec<_>, _>>()?;
            entries.push(Entry {
                key: l.key.clone(),
                line: l.line,
                sets,
                nested: Vec::new(),
            });
        }
        // One end of the port range set: the other is Ceph's default, as in Ceph.
        let sets = |entries: &[Entry], path: &str| {
            entries
                .iter()
                .any(|e| e.sets.iter().any(|(p, _)| p == path))
        };
        for (path, other, name) in [
            ("bind_port_min", "bind_port_max", "ms_bind_port_max"),
            ("bind_port_max", "bind_port_min", "ms_bind_port_min"),
        ] {
            if sets(&entries, path) && !sets(&entries, other) {
                if let Some(opt) = ceph::mapped(name) {
                    let v = ceph::parse_value(opt.unit, Repr::Int, opt.default).map_err(|m| {
                        ConfigError::Syntax {
                            origin: origin.to_owned(),
                            line: 1,
                            message: m,
                        }
                    })?;
                    entries.insert(
                        0,
                        Entry {
                            key: format!("{name} (Ceph's default)"),
                            line: 1,
                            sets: vec![(other.to_owned(), v)],
                            nested: Vec::new(),
                        },
                    );
                }
            }
        }
        load::build(origin, &entries, Repeat::Override)
    }

    /// Reads a ceph.conf file as [`from_ceph_conf_str`](Self::from_ceph_conf_str) does,
    /// errors naming the path.
    pub fn from_ceph_conf_file(path: impl AsRef<Path>, entity: &str) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::from_ceph_conf_str(&text, &path.display().to_string(), entity)
    }
}

/// One `key = value` option of a ceph.conf that applies to an entity, as
/// [`ceph_conf_options`] returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CephConfOption {
    /// The section it is in (`global`, `client`, `client.admin`).
    pub section: String,
    /// The key as written (trimmed).
    pub key: String,
    /// The key in Ceph's normal form: blanks and dashes become underscores (`mon_host`).
    pub name: String,
    /// The value, unquoted and unescaped (metavariables such as `$name` left as written).
    pub value: String,
    /// 1-based line of the key.
    pub line: usize,
}

/// Every option of a ceph.conf (this module's grammar) that applies to `entity`
/// (`client.admin`): those of `[global]`, then `[TYPE]`, then `[TYPE.ID]`, each section's in
/// file order, so the last one of a name is the one in effect. For the options that are not the
/// messenger's (`mon_host`, `keyring`, `auth_client_required`, ...), which a mon client reads;
/// nothing is checked beyond the syntax. `origin` names the text in errors.
///
/// ```
/// let conf = "[global]\nmon_host = v1:10.0.0.1:6789\n[client.admin]\nkeyring = /k\n[client.bob]\nkeyring = /b\n";
/// let opts = msgr_core::ceph_conf_options(conf, "ceph.conf", "client.admin").unwrap();
/// let keyring = opts.iter().rev().find(|o| o.name == "keyring").unwrap();
/// assert_eq!((keyring.value.as_str(), keyring.line), ("/k", 4));
/// ```
pub fn ceph_conf_options(
    text: &str,
    origin: &str,
    entity: &str,
) -> Result<Vec<CephConfOption>, ConfigError> {
    let (ty, _id) = entity
        .split_once('.')
        .filter(|(ty, id)| !id.is_empty() && ty.parse::<EntityType>().is_ok())
        .ok_or_else(|| ConfigError::EntityName(entity.to_owned()))?;
    let lines = parse(text, origin)?;
    Ok(["global", ty, entity]
        .iter()
        .flat_map(|s| lines.iter().filter(move |l| l.section == *s))
        .map(|l| CephConfOption {
            section: l.section.clone(),
            key: l.key.clone(),
            name: l.name.clone(),
            value: l.value.clone(),
            line: l.line,
        })
        .collect())
}

fn bad(origin: &str, l: &Line, message: String) -> ConfigError {
    ConfigError::BadValue {
        origin: origin.to_owned(),
        line: l.line,
        key: l.key.clone(),
        message,
    }
}

/// Splits a ceph.conf into its `key = value` lines, in file order.
fn parse(text: &str, origin: &str) -> Result<Vec<Line>, ConfigError> {
    let syntax = |line: usize, message: &str| ConfigError::Syntax {
        origin: origin.to_owned(),
        line,
        message: message.to_owned(),
    };
    let raw: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut section: Option<String> = None;
    let mut i = 0;
    while i < raw.len() {
        let first = i + 1;
        // Join continuation lines (a trailing backslash outside a comment).
        let mut logical = String::new();
        loop {
            let Some(part) = raw.get(i) else {
                return Err(syntax(first, "line continuation at the end of the file"));
            };
            i += 1;
            match part.strip_suffix('\\') {
                Some(head) if continues(part) => logical.push_str(head),
                _ => {
                    logical.push_str(part);
                    break;
                }
            }
        }
        let body = logical.trim_start();
        if body.is_empty() || body.starts_with('#') || body.starts_with(';') {
            continue;
        }
        if let Some(rest) = body.strip_prefix('[') {
            let Some((name, after)) = rest.split_once(']') else {
                return Err(syntax(first, "unclosed section header"));
            };
            if !is_blank_or_comment(after) {
                return Err(syntax(first, "text after a section header"));
            }
            if name.is_empty() {
                return Err(syntax(first, "empty section name"));
            }
            // Ceph keeps such blanks in the name, so `[ global ]` would silently be another
            // section: refused instead.
            if name.trim() != name {
                return Err(syntax(first, "blanks around a section name"));
            }
            section = Some(name.to_owned());
            continue;
        }
        let Some((key, rest)) = body.split_once('=') else {
            return Err(syntax(first, "expected `key = value` or `[section]`"));
        };
        let key = key.trim();
        if key.is_empty() {
            return Err(syntax(first, "empty key"));
        }
        let Some(section) = section.clone() else {
            return Err(syntax(first, "key outside any section"));
        };
        let value = read_value(rest).map_err(|m| syntax(first, m))?;
        out.push(Line {
            section,
            key: key.to_owned(),
            name: ceph::normalize_key(key),
            value,
            line: first,
        });
    }
    Ok(out)
}

/// A value as Ceph's grammar reads it: in double or single quotes, or bare up to a comment;
/// a backslash takes the next character as it is (`\#` is a `#`); trimmed. As in Ceph, a
/// comment character inside quotes is an error unless escaped.
fn read_value(rest: &str) -> Result<String, &'static str> {
    let rest = rest.trim();
    let mut chars = rest.chars();
    let quote = match rest.chars().next() {
        Some(q @ ('"' | '\'')) => {
            chars.next();
            Some(q)
        }
        _ => None,
    };
    let mut value = String::new();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(e) => value.push(e),
                None => return Err("unfinished escape"),
            },
            c if Some(c) == quote => {
                if !is_blank_or_comment(chars.as_str()) {
                    return Err("text after a quoted value");
                }
                return Ok(value);
            }
            '#' | ';' if quote.is_some() => {
                return Err("comment character in a quoted value (escape it with a backslash)")
            }
            '#' | ';' => break,
            c => value.push(c),
        }
    }
    if quote.is_some() {
        return Err("unclosed quote");
    }
    Ok(value.trim_end().to_owned())
}

/// Whether a line goes on with the next: it ends in an odd number of backslashes and has no
/// comment (an unescaped `#` or `;`, whose text the backslash would be part of).
fn continues(line: &str) -> bool {
    let mut escaped = false;
    for c in line.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '#' | ';' => return false,
            _ => {}
        }
    }
    escaped
}

fn is_blank_or_comment(s: &str) -> bool {
    let s = s.trim_start();
    s.is_empty() || s.starts_with('#') || s.starts_with(';')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_values_and_comments() {
        let text = "# top\n; also\n[global]\n  fsid = abc # trailing\nms crc data=false;x\n\
                    key = \"quoted \\# escaped\" # comment\nesc = \"a \\\"b\\\" \\\\c\"\n\
                    single = 'it\\'s' ; c\nbare = a\\;b \\\\\n\
                    [client.admin] ; c\ncont = one \\\n two\nempty =\n";
        let lines = parse(text, "t").unwrap();
        let got: Vec<_> = lines
            .iter()
            .map(|l| {
                (
                    l.section.as_str(),
                    l.name.as_str(),
                    l.value.as_str(),
                    l.line,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("global", "fsid", "abc", 4),
                ("global", "ms_crc_data", "false", 5),
                ("global", "key", "quoted # escaped", 6),
                ("global", "esc", "a \"b\" \\c", 7),
                ("global", "single", "it's", 8),
                ("global", "bare", "a;b \\", 9),
                ("client.admin", "cont", "one  two", 11),
                ("client.admin", "empty", "", 13),
            ]
        );
    }

    #[test]
    fn syntax_errors_name_the_line() {
        for (text, line, what) in [
            ("[global]\nnot a pair\n", 2, "expected"),
            ("[global\n", 1, "unclosed section"),
            ("[]\n", 1, "empty section"),
            ("\nkey = 1\n", 2, "outside any section"),
            ("[global]\n\nk = \"open\n", 3, "unclosed quote"),
            ("[global]\nk = \"a\" b\n", 2, "after a quoted"),
            ("[global]\nk = \"a # b\"\n", 2, "comment character"),
            ("[global]\nk = 'a\n", 2, "unclosed quote"),
            ("[global]\n = 1\n", 2, "empty key"),
            ("[global]\nk = 1 \\", 2, "continuation"),
            ("[global] x\n", 1, "after a section"),
            ("[ global]\n", 1, "blanks around"),
        ] {
            match parse(text, "f.conf") {
                Err(ConfigError::Syntax {
                    origin,
                    line: l,
                    message,
                }) => {
                    assert_eq!((origin.as_str(), l), ("f.conf", line), "{text:?}");
                    assert!(message.contains(what), "{text:?}: {message}");
                }
                other => panic!("{text:?}: {other:?}"),
            }
        }
    }
}
