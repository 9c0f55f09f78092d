//! The client's options from a ceph.conf, with Ceph's names, defaults and section precedence
//! (`[global]` < `[client]` < `[client.NAME]`, the most specific wins), and the keyring search.
//!
//! | option | default (Pacific) | here |
//! |---|---|---|
//! | `mon_host` | none | [`ClientOptions::mon_host`] (see [`parse_mon_host`](crate::parse_mon_host)) |
//! | `keyring` | `/etc/ceph/$cluster.$name.keyring,/etc/ceph/$cluster.keyring,/etc/ceph/keyring,/etc/ceph/keyring.bin` | [`ClientOptions::keyring`]: the list, metavariables expanded; the first file that exists is read |
//! | `auth_client_required` | `cephx, none` | [`ClientOptions::auth_client_required`], in preference order |
//! | `cephx_sign_messages` | true | the messenger signs and checks its messages on sessions `MonClient::authorizer` authorizes (off: neither) |
//! | `cephx_require_signatures` | false | the sessions `MonClient::authorizer` serves require `MSG_AUTH` of the peer (FEATURES otherwise) |
//! | `client_mount_timeout` | 300 s | [`ClientOptions::mount_timeout`]: how long to hunt for a mon |
//! | `mon_client_hunt_interval` | 3 s | [`ClientOptions::hunt_interval`]: how long one mon gets to answer |
//! | `mon_client_ping_interval` | 10 s | [`ClientOptions::ping_interval`]: keepalives to the mon |
//! | `mon_client_ping_timeout` | 30 s | [`ClientOptions::ping_timeout`]: a mon silent that long is left |
//!
//! Metavariables in `keyring`: `$cluster` (`ceph`), `$name` (`client.admin`), `$type`
//! (`client`), `$id` (`admin`), `$host` (the short host name). Other options are not the mon
//! client's and are left to their readers (msgr-core's `MessengerConfig` takes the `ms_*` ones).
//! Not here: the `key`/`keyfile` options, `$HOME` expansion, the `CEPH_ARGS` environment.

use std::path::{Path, PathBuf};
use std::time::Duration;

use msgr_auth::{EntityName, CEPH_AUTH_CEPHX, CEPH_AUTH_NONE};

use crate::{parse_mon_addrs, MonClientError};

/// Pacific's default `keyring` search list.
pub const DEFAULT_KEYRING: &str =
    "/etc/ceph/$cluster.$name.keyring,/etc/ceph/$cluster.keyring,/etc/ceph/keyring,/etc/ceph/keyring.bin";
/// Pacific's default `auth_client_required`.
pub const DEFAULT_AUTH_CLIENT_REQUIRED: &str = "cephx, none";

/// A mon client's options (module docs: names and defaults).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientOptions {
    /// Who we are (`client.admin`).
    pub name: EntityName,
    /// The cluster name (`$cluster`, `ceph`).
    pub cluster: String,
    /// The mons' addresses (empty when the file has no `mon_host`): each one's v1 address,
    /// or its msgr2 one when it has no v1 address ([`crate::parse_mon_addrs`]).
    pub mon_host: Vec<msgr_wire::EntityAddr>,
    /// Keyring files to try, in order, metavariables expanded.
    pub keyring: Vec<PathBuf>,
    /// Auth methods allowed, in preference order (`CEPH_AUTH_CEPHX`, `CEPH_AUTH_NONE`).
    pub auth_client_required: Vec<u32>,
    /// `cephx_sign_messages`.
    pub cephx_sign_messages: bool,
    /// `cephx_require_signatures`.
    pub cephx_require_signatures: bool,
    /// `client_mount_timeout`.
    pub mount_timeout: Duration,
    /// `mon_client_hunt_interval`.
    pub hunt_interval: Duration,
    /// `mon_client_ping_interval`.
    pub ping_interval: Duration,
    /// `mon_client_ping_timeout`.
    pub ping_timeout: Duration,
}

impl ClientOptions {
    /// Ceph's defaults for `name`, with no mon.
    pub fn new(name: EntityName) -> Self {
        let mut o = ClientOptions {
            name,
            cluster: "ceph".to_owned(),
            mon_host: Vec::new(),
            keyring: Vec::new(),
            auth_client_required: vec![CEPH_AUTH_CEPHX, CEPH_AUTH_NONE],
            cephx_sign_messages: true,
            cephx_require_signatures: false,
            mount_timeout: Duration::from_secs(300),
            hunt_interval: Duration::from_secs(3),
            ping_interval: Duration::from_secs(10),
            ping_timeout: Duration::from_secs(30),
        };
        o.keyring = o.expand_list(DEFAULT_KEYRING);
        o
    }

    /// The options of a ceph.conf's text for `name`, onto Ceph's defaults. `origin` names the
    /// text in errors, which carry the line.
    pub fn from_ceph_conf_str(
        text: &str,
        origin: &str,
        name: &EntityName,
    ) -> Result<Self, MonClientError> {
        let mut o = ClientOptions::new(name.clone());
        let entity = name.to_string();
        for opt in msgr_core::ceph_conf_options(text, origin, &entity)? {
            let bad = |reason: String| MonClientError::BadOption {
                origin: origin.to_owned(),
                line: opt.line,
                key: opt.key.clone(),
                reason,
            };
            let v = opt.value.as_str();
            match opt.name.as_str() {
                "mon_host" => {
                    o.mon_host = parse_mon_addrs(v).map_err(|e| bad(e.to_string()))?;
                }
                "keyring" => o.keyring = o.expand_list(v),
                "auth_client_required" | "auth_supported" => {
                    o.auth_client_required = parse_auth_methods(v).map_err(bad)?;
                }
                "cephx_sign_messages" => o.cephx_sign_messages = parse_bool(v).map_err(bad)?,
                "cephx_require_signatures" => {
                    o.cephx_require_signatures = parse_bool(v).map_err(bad)?;
                }
                "client_mount_timeout" => o.mount_timeout = parse_secs(v).map_err(bad)?,
                "mon_client_hunt_interval" => o.hunt_interval = parse_secs(v).map_err(bad)?,
                "mon_client_ping_interval" => o.ping_interval = parse_secs(v).map_err(bad)?,
                "mon_client_ping_timeout" => o.ping_timeout = parse_secs(v).map_err(bad)?,
                _ => {}
            }
        }
        Ok(o)
    }

    /// [`from_ceph_conf_str`](Self::from_ceph_conf_str) of a file.
    pub fn from_ceph_conf_file(path: &Path, name: &EntityName) -> Result<Self, MonClientError> {
        let text = std::fs::read_to_string(path).map_err(|e| MonClientError::Io {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        Self::from_ceph_conf_str(&text, &path.display().to_string(), name)
    }

    /// A `keyring`-style list (commas, semicolons, blanks) with metavariables expanded.
    fn expand_list(&self, list: &str) -> Vec<PathBuf> {
        list.split([',', ';', ' ', '\t'])
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| PathBuf::from(self.expand(p)))
            .collect()
    }

    /// Expands `$cluster`, `$name`, `$type`, `$id`, `$host` (also as `${...}`).
    pub fn expand(&self, text: &str) -> String {
        let ty = msgr_auth::entity_type_name(self.name.ty).unwrap_or("unknown");
        let host = short_hostname();
        let name = self.name.to_string();
        let vars: [(&str, &str); 5] = [
            ("cluster", &self.cluster),
            ("name", &name),
            ("type", ty),
            ("id", &self.name.id),
            ("host", &host),
        ];
        let mut out = text.to_owned();
        for (var, value) in vars {
            out = out.replace(&format!("${{{var}}}"), value);
            out = out.replace(&format!("${var}"), value);
        }
        out
    }
}

fn short_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().split('.').next().unwrap_or_default().to_owned())
        .unwrap_or_default()
}

/// `cephx, none` → `[CEPHX, NONE]`; unknown names are an error (Ceph warns and skips them;
/// a typo that silently drops cephx is worse).
pub fn parse_auth_methods(v: &str) -> Result<Vec<u32>, String> {
    let mut out = Vec::new();
    for m in v.split([',', ';', ' ', '\t']).filter(|m| !m.is_empty()) {
        let id = match m {
            "cephx" => CEPH_AUTH_CEPHX,
            "none" => CEPH_AUTH_NONE,
            other => return Err(format!("unknown auth method {other:?} (cephx or none)")),
        };
        if !out.contains(&id) {
            out.push(id);
        }
    }
    if out.is_empty() {
        return Err("no auth method".into());
    }
    Ok(out)
}

fn parse_bool(v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Ok(true),
        "false" | "no" | "off" | "0" => Ok(false),
        _ => Err(format!("{v:?} is not a boolean")),
    }
}

fn parse_secs(v: &str) -> Result<Duration, String> {
    let secs: f64 = v
        .trim_end_matches('s')
        .parse()
        .map_err(|_| format!("{v:?} is not a number of seconds"))?;
    Duration::try_from_secs_f64(secs).map_err(|_| format!("{v:?} is not a duration"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn most_specific_section_wins_and_names_expand() {
        let conf = "[global]\nmon_host = [v2:10.0.0.1:3300,v1:10.0.0.1:6789]\n\
                    auth_client_required = none\ncephx sign messages = false\n\
                    [client]\nauth client required = cephx\nkeyring = /etc/ceph/$cluster.$name.keyring\n\
                    [client.admin]\nkeyring = /k/$type-$id.keyring, /k/${name}.2\ncephx_require_signatures = true\n\
                    [client.bob]\nkeyring = /nope\nmon_host = v1:10.9.9.9:1\n";
        let admin = EntityName::client("admin");
        let o = ClientOptions::from_ceph_conf_str(conf, "c.conf", &admin).unwrap();
        assert_eq!(o.mon_host, vec!["10.0.0.1:6789".parse().unwrap()]);
        assert_eq!(o.auth_client_required, vec![CEPH_AUTH_CEPHX]);
        assert_eq!(
            o.keyring,
            vec![
                PathBuf::from("/k/client-admin.keyring"),
                PathBuf::from("/k/client.admin.2")
            ]
        );
        assert!(!o.cephx_sign_messages);
        assert!(o.cephx_require_signatures);
        let bob =
            ClientOptions::from_ceph_conf_str(conf, "c.conf", &EntityName::client("bob")).unwrap();
        assert_eq!(bob.keyring, vec![PathBuf::from("/nope")]);
        assert_eq!(bob.mon_host, vec!["10.9.9.9:1".parse().unwrap()]);
        assert!(!bob.cephx_require_signatures);
    }

    #[test]
    fn defaults_are_pacifics() {
        let o = ClientOptions::new(EntityName::client("admin"));
        assert_eq!(
            o.keyring[0],
            PathBuf::from("/etc/ceph/ceph.client.admin.keyring")
        );
        assert_eq!(o.keyring[1], PathBuf::from("/etc/ceph/ceph.keyring"));
        assert_eq!(o.keyring.len(), 4);
        assert_eq!(
            o.auth_client_required,
            vec![CEPH_AUTH_CEPHX, CEPH_AUTH_NONE]
        );
        assert!(o.cephx_sign_messages && !o.cephx_require_signatures);
        assert_eq!(o.hunt_interval, Duration::from_secs(3));
        assert_eq!(o.mount_timeout, Duration::from_secs(300));
        assert!(o.mon_host.is_empty());
    }

    #[test]
    fn bad_values_name_the_line() {
        for (conf, line) in [
            ("[global]\nauth_client_required = kerberos\n", 2),
            ("[global]\n\n[client]\nmon_host = v3:1.2.3.4:3300\n", 4),
            ("[client.admin]\ncephx_sign_messages = maybe\n", 2),
        ] {
            match ClientOptions::from_ceph_conf_str(conf, "f", &EntityName::client("admin")) {
                Err(MonClientError::BadOption { line: l, .. }) => assert_eq!(l, line, "{conf}"),
                other => panic!("{conf}: {other:?}"),
            }
        }
    }
}
