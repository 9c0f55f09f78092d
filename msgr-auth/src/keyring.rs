//! Keyring files as `ceph-authtool` writes them:
//!
//! ```text
//! [client.admin]
//!     key = AQBmPhVrUfonABAAz1Hntf8c579RTfTJ47CacA==
//!     caps mon = "allow *"
//! ```
//!
//! (tab-indented in the file.) Sections name entities; `key` is the base64 of a whole [`CryptoKey`]; `caps SERVICE` lines
//! hold cap strings (quotes optional). Blank lines and `#`/`;` comments are skipped, other keys
//! (`auid`, ...) are ignored as Ceph ignores them. A parse error names its line. Not here:
//! reading `ceph.conf` or finding the keyring on Ceph's default paths.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::entity::EntityName;
use crate::key::CryptoKey;
use crate::AuthError;

/// One entity's entry: its key and its caps by service (`mon` → `allow *`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyringEntry {
    /// The entity's secret key.
    pub key: CryptoKey,
    /// Cap strings by service name, without quotes.
    pub caps: BTreeMap<String, String>,
}

/// A keyring: entries by entity name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Keyring {
    entries: BTreeMap<EntityName, KeyringEntry>,
}

impl Keyring {
    /// An empty keyring.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses a keyring file's text.
    pub fn parse(text: &str) -> Result<Self, AuthError> {
        let mut ring = Keyring::new();
        let mut section: Option<Section> = None;
        for (i, raw) in text.lines().enumerate() {
            let line_no = i + 1;
            let err = |reason: String| AuthError::Keyring {
                line: line_no,
                reason,
            };
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if let Some(rest) = line.strip_prefix('[') {
                let name = rest
                    .strip_suffix(']')
                    .ok_or_else(|| err("section without ']'".into()))?;
                let name: EntityName = name
                    .trim()
                    .parse()
                    .map_err(|e: AuthError| err(e.to_string()))?;
                ring.finish(section.take())?;
                section = Some((name, line_no, None, BTreeMap::new()));
                continue;
            }
            let (k, v) = line
                .split_once('=')
                .ok_or_else(|| err("expected `name = value`".into()))?;
            let (k, v) = (k.trim(), unquote(v.trim()));
            let (_, _, key, caps) = section
                .as_mut()
                .ok_or_else(|| err("entry outside a [section]".into()))?;
            if k == "key" {
                *key = Some(CryptoKey::from_base64(v).map_err(|e| err(e.to_string()))?);
            } else if let Some(svc) = k.strip_prefix("caps") {
                let svc = svc.trim();
                if svc.is_empty() {
                    return Err(err("caps without a service".into()));
                }
                caps.insert(svc.to_string(), v.to_string());
            }
        }
        ring.finish(section)?;
        Ok(ring)
    }

    fn finish(&mut self, section: Option<Section>) -> Result<(), AuthError> {
        if let Some((name, line, key, caps)) = section {
            let key = key.ok_or_else(|| AuthError::Keyring {
                line,
                reason: format!("[{name}] has no key"),
            })?;
            self.entries.insert(name, KeyringEntry { key, caps });
        }
        Ok(())
    }

    /// Reads and parses a keyring file.
    pub fn load(path: &std::path::Path) -> Result<Self, AuthError> {
        let text = std::fs::read_to_string(path).map_err(|e| AuthError::Keyring {
            line: 0,
            reason: e.to_string(),
        })?;
        Self::parse(&text)
    }

    /// Adds or replaces an entry.
    pub fn insert(&mut self, name: EntityName, entry: KeyringEntry) {
        self.entries.insert(name, entry);
    }

    /// The entry of `name`.
    pub fn get(&self, name: &EntityName) -> Option<&KeyringEntry> {
        self.entries.get(name)
    }

    /// The key of `name`.
    pub fn key(&self, name: &EntityName) -> Option<&CryptoKey> {
        self.entries.get(name).map(|e| &e.key)
    }

    /// Every entry, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&EntityName, &KeyringEntry)> {
        self.entries.iter()
    }

    /// The file text, in `ceph-authtool`'s layout (tab-indented, caps quoted).
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for (name, e) in &self.entries {
            let _ = writeln!(out, "[{name}]\n\tkey = {}", e.key.to_base64());
            for (svc, cap) in &e.caps {
                let _ = writeln!(out, "\tcaps {svc} = \"{cap}\"");
            }
        }
        out
    }
}

/// A section being read: its name, its line, its key so far, its caps.
type Section = (
    EntityName,
    usize,
    Option<CryptoKey>,
    BTreeMap<String, String>,
);

fn unquote(v: &str) -> &str {
    v.strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1: &str = include_str!("../tests/data/v1-cephx.client.admin.keyring");

    #[test]
    fn parses_the_capture_keyring_and_writes_it_back_identically() {
        let ring = Keyring::parse(V1).unwrap();
        let e = ring.get(&EntityName::client("admin")).unwrap();
        assert_eq!(
            e.key.to_base64(),
            "AQBmPhVrUfonABAAz1Hntf8c579RTfTJ47CacA=="
        );
        assert_eq!(e.caps.len(), 4);
        assert_eq!(e.caps["osd"], "allow *");
        assert_eq!(ring.to_text(), V1);
    }

    #[test]
    fn errors_name_the_line() {
        let bad = "[client.admin]\n\tkey = AQBmPhVrUfonABAAz1Hntf8c579RTfTJ47CacA==\n\tgarbage\n";
        assert!(matches!(
            Keyring::parse(bad),
            Err(AuthError::Keyring { line: 3, .. })
        ));
        let bad_key = "# comment\n[osd.0]\nkey = AQ==\n";
        assert!(matches!(
            Keyring::parse(bad_key),
            Err(AuthError::Keyring { line: 3, .. })
        ));
        let no_key = "[mon.]\n\tcaps mon = \"allow *\"\n[client.x]\n";
        assert!(matches!(
            Keyring::parse(no_key),
            Err(AuthError::Keyring { line: 1, .. })
        ));
        let orphan = "key = AQBmPhVrUfonABAAz1Hntf8c579RTfTJ47CacA==\n";
        assert!(matches!(
            Keyring::parse(orphan),
            Err(AuthError::Keyring { line: 1, .. })
        ));
        assert!(matches!(
            Keyring::parse("[bogus.0]\n"),
            Err(AuthError::Keyring { line: 1, .. })
        ));
    }
}
