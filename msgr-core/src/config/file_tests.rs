//! Tests of the file loaders: every Ceph mapping, section precedence, the dialect's
//! spellings, each error with its key and line, the recipes' ceph.conf files, a TOML file
//! with every key, and the completeness of the documented tables.

use std::collections::BTreeSet;
use std::time::Duration;

use super::ceph::{FIXED, IGNORED, MAPPED};
use super::*;

fn conf(text: &str, entity: &str) -> Result<MessengerConfig, ConfigError> {
    MessengerConfig::from_ceph_conf_str(text, "ceph.conf", entity)
}

fn toml(text: &str) -> Result<MessengerConfig, ConfigError> {
    MessengerConfig::from_toml_str(text, "msgr.toml")
}

/// Each mapped Ceph option, a value in Ceph's spelling, and what it must set.
type Check = (&'static str, &'static str, fn(&MessengerConfig) -> bool);
const MAPPINGS: &[Check] = &[
    ("ms_tcp_read_timeout", "30", |c| {
        c.pipe.read_timeout == Duration::from_secs(30)
    }),
    ("ms_connection_idle_timeout", "31", |c| {
        c.pipe.read_timeout == Duration::from_secs(31)
    }),
    ("ms_connection_ready_timeout", "3", |c| {
        c.pipe.handshake_timeout == Duration::from_secs(3)
    }),
    ("ms_initial_backoff", ".5", |c| {
        c.pipe.initial_backoff == Duration::from_millis(500)
    }),
    ("ms_max_backoff", "2.5", |c| {
        c.pipe.max_backoff == Duration::from_millis(2500)
    }),
    ("ms_crc_data", "false", |c| {
        !c.pipe.crc.data && c.pipe.crc.header
    }),
    ("ms_crc_header", "0", |c| {
        !c.pipe.crc.header && c.pipe.crc.data
    }),
    ("ms_dispatch_throttle_bytes", "50M", |c| {
        c.dispatch_throttle_bytes == 50 << 20
    }),
    // Alone, the other end of the range takes Ceph's default (7300, 6800).
    ("ms_bind_port_min", "7000", |c| {
        (c.bind_port_min, c.bind_port_max) == (7000, 7300)
    }),
    ("ms_bind_port_max", "7100", |c| {
        (c.bind_port_min, c.bind_port_max) == (6800, 7100)
    }),
    ("ms_inject_socket_failures", "500", |c| {
        c.pipe.inject.socket_failures == 500
    }),
    ("ms_inject_internal_delays", "0.25", |c| {
        c.pipe.inject.internal_delay == Duration::from_millis(250)
            && c.dispatch.event_delay == Duration::from_millis(250)
    }),
    ("ms_inject_delay_probability", "0.5", |c| {
        c.pipe.inject.delay_probability == 0.5 && c.dispatch.event_delay_probability == 0.5
    }),
    ("ms_inject_delay_max", "3", |c| {
        c.pipe.inject.delay_max == Duration::from_secs(3)
    }),
    ("ms_pq_max_tokens_per_priority", "33554432", |c| {
        c.dispatch.max_tokens_per_priority == 32 << 20
    }),
    ("ms_pq_min_cost", "128K", |c| {
        c.dispatch.min_cost == 128 << 10
    }),
    ("ms_client_mode", "secure", |c| {
        c.pipe.con_modes.client == [msgr_pipe::ConMode::Secure]
    }),
    ("ms_service_mode", "secure, crc", |c| {
        c.pipe.con_modes.service == [msgr_pipe::ConMode::Secure, msgr_pipe::ConMode::Crc]
    }),
    ("ms_mon_client_mode", "crc", |c| {
        c.pipe.con_modes.mon_client == [msgr_pipe::ConMode::Crc]
    }),
];

#[test]
fn every_mapped_ceph_option_sets_its_fields_from_a_ceph_conf() {
    let tested: BTreeSet<&str> = MAPPINGS.iter().map(|m| m.0).collect();
    let mapped: BTreeSet<&str> = MAPPED.iter().map(|o| o.name).collect();
    assert_eq!(tested, mapped, "a mapped option has no test");
    for &(name, value, check) in MAPPINGS {
        let cfg = conf(&format!("[global]\n{name} = {value}\n"), "client.admin")
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(check(&cfg), "{name} = {value}: {cfg:?}");
        // The check is not vacuous: the setting moved the config off the defaults.
        assert_ne!(cfg, MessengerConfig::default(), "{name} changed nothing");
    }
}

#[test]
fn ceph_names_are_toml_aliases_in_msgr_units() {
    // TOML values are msgr's: numbers of seconds and bytes, booleans.
    for (line, check) in [
        ("ms_tcp_read_timeout = 30", MAPPINGS[0].2),
        ("ms_connection_idle_timeout = 31", MAPPINGS[1].2),
        ("ms_connection_ready_timeout = 3", MAPPINGS[2].2),
        ("ms_initial_backoff = 0.5", MAPPINGS[3].2),
        ("ms_max_backoff = 2.5", MAPPINGS[4].2),
        ("ms_crc_data = false", MAPPINGS[5].2),
        ("ms_crc_header = false", MAPPINGS[6].2),
        ("ms_dispatch_throttle_bytes = 52428800", MAPPINGS[7].2),
        ("ms_inject_socket_failures = 500", MAPPINGS[10].2),
        ("ms_inject_internal_delays = 0.25", MAPPINGS[11].2),
        ("ms_inject_delay_probability = 0.5", MAPPINGS[12].2),
        ("ms_inject_delay_max = 3", MAPPINGS[13].2),
        ("ms_pq_max_tokens_per_priority = 33554432", MAPPINGS[14].2),
        ("ms_pq_min_cost = 131072", MAPPINGS[15].2),
        // msgr2 modes: a list in msgr's form, or a string in Ceph's.
        ("ms_client_mode = [\"secure\"]", MAPPINGS[16].2),
        ("ms_service_mode = \"secure crc\"", MAPPINGS[17].2),
        ("ms_mon_client_mode = \"crc\"", MAPPINGS[18].2),
    ] {
        let cfg = toml(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        assert!(check(&cfg), "{line}: {cfg:?}");
    }
    // A string value is read in Ceph's spelling, with Ceph's error.
    let cfg = toml("ms_dispatch_throttle_bytes = \"50M\"\nms_crc_header = \"0\"").unwrap();
    assert_eq!(cfg.dispatch_throttle_bytes, 50 << 20);
    assert!(!cfg.pipe.crc.header);
    assert_err(
        toml("\nms_pq_min_cost = \"64X\""),
        "msgr.toml:2: bad value for `ms_pq_min_cost`: expected a size (bytes, or with K/M/G/T/P/E), got \"64X\"",
    );
    let cfg = toml("ms_bind_port_min = 7000\nms_bind_port_max = 7100").unwrap();
    assert_eq!((cfg.bind_port_min, cfg.bind_port_max), (7000, 7100));
    // An alias next to msgr's keys of the same table.
    let cfg = toml("ms_crc_data = false\n[crc]\nheader = false\n").unwrap();
    assert!(!cfg.pipe.crc.data && !cfg.pipe.crc.header);
}

#[test]
fn later_sections_override_wherever_they_are_in_the_file() {
    // The most specific section first in the file: it still wins.
    let text = "[client.admin]\nms_tcp_read_timeout = 3\n\
                [client]\nms_tcp_read_timeout = 2\nms_max_backoff = 7\n\
                [global]\nms_tcp_read_timeout = 1\nms_max_backoff = 5\nms_initial_backoff = 0.3\n\
                [osd]\nms_initial_backoff = 0.4\n";
    let admin = conf(text, "client.admin").unwrap();
    assert_eq!(admin.pipe.read_timeout, Duration::from_secs(3));
    assert_eq!(admin.pipe.max_backoff, Duration::from_secs(7));
    assert_eq!(admin.pipe.initial_backoff, Duration::from_millis(300));
    let other = conf(text, "client.rgw").unwrap();
    assert_eq!(other.pipe.read_timeout, Duration::from_secs(2));
    assert_eq!(other.pipe.max_backoff, Duration::from_secs(7));
    let osd = conf(text, "osd.0").unwrap();
    assert_eq!(osd.pipe.read_timeout, Duration::from_secs(1));
    assert_eq!(osd.pipe.max_backoff, Duration::from_secs(5));
    assert_eq!(osd.pipe.initial_backoff, Duration::from_millis(400));
    // Within one section the last line wins; a repeated section continues.
    let text = "[global]\nms_max_backoff = 4\n[client]\n[global]\nms-max-backoff = 6\n";
    assert_eq!(
        conf(text, "client.admin").unwrap().pipe.max_backoff,
        Duration::from_secs(6)
    );
}

#[test]
fn spellings_comments_and_quotes_of_the_dialect() {
    for line in [
        "ms_tcp_read_timeout = 42",
        "ms tcp read timeout = 42",
        "ms-tcp-read-timeout=42",
        "\t  ms  tcp-read_timeout   =   42   ",
        "ms_tcp_read_timeout = \"42\"",
        "ms_tcp_read_timeout = 42 # seconds",
        "ms_tcp_read_timeout = 42; seconds",
        "ms_tcp_read_timeout = \"42\" ; quoted",
        "ms_tcp_read_timeout = 4\\\n2",
    ] {
        let text = format!("# comment\n; comment\n\n[global]\n{line}\n");
        let cfg = conf(&text, "client.admin").unwrap_or_else(|e| panic!("{line:?}: {e}"));
        assert_eq!(cfg.pipe.read_timeout, Duration::from_secs(42), "{line:?}");
    }
}

fn assert_err(got: Result<MessengerConfig, ConfigError>, want: &str) {
    match got {
        Ok(cfg) => panic!("accepted, want {want:?}: {cfg:?}"),
        Err(e) => assert_eq!(e.to_string(), want),
    }
}

#[test]
fn ceph_conf_errors_name_the_key_and_the_line() {
    // An ms_* key Ceph does not have, in a section this entity does not even read.
    let text = "[global]\nfsid = x\n[osd]\nms tcp read timout = 3\n";
    assert!(matches!(
        conf(text, "client.admin"),
        Err(ConfigError::UnknownKey { ref key, line: 4, .. }) if key == "ms tcp read timout"
    ));
    assert_err(
        conf(text, "client.admin"),
        "ceph.conf:4: unknown key `ms tcp read timout`",
    );
    // Bad values, in Ceph's units.
    assert_err(
        conf("[global]\n\nms_crc_data = maybe\n", "client.admin"),
        "ceph.conf:3: bad value for `ms_crc_data`: expected true, false or an integer, got \"maybe\"",
    );
    assert_err(
        conf("[global]\nms max backoff = -1\n", "client.admin"),
        "ceph.conf:2: bad value for `ms max backoff`: expected a non-negative number, got \"-1\"",
    );
    assert_err(
        conf("[global]\nms_dispatch_throttle_bytes = 10X\n", "client.admin"),
        "ceph.conf:2: bad value for `ms_dispatch_throttle_bytes`: expected a size (bytes, or with K/M/G/T/P/E), got \"10X\"",
    );
    // Out of the field's range: serde's words, with the key and line.
    match conf(
        "[global]\nms_bind_port_min = 1\nms_bind_port_max = 70000\n",
        "osd.1",
    ) {
        Err(ConfigError::BadValue { key, line: 3, .. }) => assert_eq!(key, "ms_bind_port_max"),
        other => panic!("{other:?}"),
    }
    // A value msgr does not implement.
    assert_err(
        conf("[global]\nms_bind_msgr1 = false\n", "mon.a"),
        "ceph.conf:2: bad value for `ms_bind_msgr1`: msgr supports only true",
    );
    assert_err(
        conf("[global]\nms tcp nodelay = 0\n", "mon.a"),
        "ceph.conf:2: bad value for `ms tcp nodelay`: msgr supports only true",
    );
    // The value in effect for this entity is the one checked.
    let text = "[global]\nms_bind_msgr1 = false\n[mon.a]\nms_bind_msgr1 = true\n[osd]\nms_tcp_nodelay = false\n";
    assert_eq!(conf(text, "mon.a").unwrap(), MessengerConfig::default());
    assert_err(
        conf(text, "client.admin"),
        "ceph.conf:2: bad value for `ms_bind_msgr1`: msgr supports only true",
    );
    assert_err(
        conf(text, "osd.2"),
        "ceph.conf:6: bad value for `ms_tcp_nodelay`: msgr supports only true",
    );
    // Not an entity name.
    for bad in ["admin", "martian.a", "client.", ""] {
        assert!(
            matches!(conf("[global]\n", bad), Err(ConfigError::EntityName(ref n)) if n == bad),
            "{bad:?}"
        );
    }
    // Values that parse but do not validate are validate()'s errors.
    assert!(matches!(
        conf(
            "[global]\nms_bind_port_min = 7300\nms_bind_port_max = 6800\n",
            "osd.0"
        ),
        Err(ConfigError::PortRange {
            min: 7300,
            max: 6800
        })
    ));
    assert!(matches!(
        conf("[global]\nms_initial_backoff = 20\n", "osd.0"),
        Err(ConfigError::Pipe(_))
    ));
}

#[test]
fn toml_errors_name_the_key_and_the_line() {
    assert_err(
        toml("max_backoff = 1\nnope = 1\n"),
        "msgr.toml:2: unknown key `nope`",
    );
    assert_err(toml("ms_nope = 1\n"), "msgr.toml:1: unknown key `ms_nope`");
    // Nested: refused by InjectConfig, and (no deny_unknown_fields there) found as dropped.
    assert_err(
        toml("[inject]\nseed = 1\n\nsocket_failure = 3\n"),
        "msgr.toml:4: unknown key `socket_failure`",
    );
    assert_err(
        toml("[dispatch]\nmin_cost = 1\nmin_cots = 2\n"),
        "msgr.toml:3: unknown key `min_cots`",
    );
    assert_err(
        toml("crc = { data = true, dta = false }\n"),
        "msgr.toml:1: unknown key `dta`",
    );
    assert_err(
        toml("\n[limits]\nmax_frnt = 1\n"),
        "msgr.toml:3: unknown key `max_frnt`",
    );
    assert_err(
        toml("\n\n[policies.osd]\nkind = \"lossless_peer\"\nthrottle = 1\n"),
        "msgr.toml:5: unknown key `throttle`",
    );
    // Bad values.
    match toml("read_timeout = 1\n\nmax_backoff = \"soon\"\n") {
        Err(ConfigError::BadValue {
            key,
            line: 3,
            message,
            ..
        }) => {
            assert_eq!(key, "max_backoff");
            assert!(message.contains("string"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        toml("bind_port_min = 70000\n"),
        Err(ConfigError::BadValue { line: 1, .. })
    ));
    // One setting under both names.
    assert_err(
        toml("read_timeout = 1\nms_tcp_read_timeout = 2\n"),
        "msgr.toml:2: `ms_tcp_read_timeout` sets `read_timeout`, already set by `read_timeout` on line 1",
    );
    assert_err(
        toml("ms_tcp_read_timeout = 1\nms_connection_idle_timeout = 2\n"),
        "msgr.toml:2: `ms_connection_idle_timeout` sets `read_timeout`, already set by `ms_tcp_read_timeout` on line 1",
    );
    assert_err(
        toml("ms_crc_data = false\n[crc]\ndata = true\n"),
        "msgr.toml:2: `crc` sets `crc.data`, already set by `ms_crc_data` on line 1",
    );
    // Syntax, with toml's line.
    match toml("read_timeout = 1\nmax_backoff = = 2\n") {
        Err(ConfigError::Syntax { origin, line, .. }) => {
            assert_eq!((origin.as_str(), line), ("msgr.toml", 2))
        }
        other => panic!("{other:?}"),
    }
    // validate() still runs.
    assert!(matches!(
        toml("initial_backoff = 20\n"),
        Err(ConfigError::Pipe(_))
    ));
    assert!(matches!(
        toml("[policies.martian]\nkind = \"lossy_client\"\n"),
        Err(ConfigError::EntityType(ref t)) if t == "martian"
    ));
}

#[test]
fn the_recipes_ceph_conf_files_parse() {
    // ceph-mon-recipe.md's auth-none file, as its shell writes it.
    let auth_none = "[global]\nfsid = 0f6c...\nmon_host = v1:127.0.0.1:6789\n\
        auth_cluster_required = none\nauth_service_required = none\nauth_client_required = none\n\
        ms_bind_msgr1 = true\nms_bind_msgr2 = false\nmon_data = /tmp/d/mon.$id\n\
        log_file = /tmp/d/$name.log\nrun_dir = /tmp/d/run\nadmin_socket = /tmp/d/run/$name.asok\n\
        pid_file = /tmp/d/run/mon.pid\n[mon.a]\nmon_addr = v1:127.0.0.1:6789\n";
    // cephx-msgr2.md §D's file: no messenger option msgr maps, so msgr's defaults.
    let cephx = include_str!("testdata/cephx-recipe.conf");
    for text in [auth_none, cephx] {
        for entity in ["client.admin", "mon.a", "osd.0"] {
            assert_eq!(
                conf(text, entity).unwrap(),
                MessengerConfig::default(),
                "{entity}"
            );
        }
    }
    // vstart.sh's layout, with four messenger options added.
    let vstart = include_str!("testdata/vstart-style.conf");
    let client = conf(vstart, "client.admin").unwrap();
    assert!(!client.pipe.crc.data && client.pipe.crc.header);
    assert_eq!(client.dispatch_throttle_bytes, 50 << 20);
    assert_eq!(client.pipe.read_timeout, Duration::from_secs(120));
    assert_eq!(client.pipe.inject.socket_failures, 0);
    let osd = conf(vstart, "osd.0").unwrap();
    assert_eq!(osd.pipe.read_timeout, Duration::from_secs(30));
    assert_eq!(osd.pipe.inject.socket_failures, 500);
    assert_eq!(osd.dispatch_throttle_bytes, 50 << 20);
    let osd1 = conf(vstart, "osd.1").unwrap();
    assert_eq!(osd1.pipe.read_timeout, Duration::from_secs(900));
    assert_eq!(osd1.pipe.inject.socket_failures, 500);
    let mon = conf(vstart, "mon.a").unwrap();
    assert_eq!(mon.pipe.read_timeout, Duration::from_secs(900));
    assert!(!mon.pipe.crc.data);
}

/// A config with every serialized key away from its default.
fn everything_set() -> MessengerConfig {
    let mut c = MessengerConfig {
        name: Some("osd.3".into()),
        bind_addr: "127.0.0.1:6800"
            .parse()
            .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 6800))),
        bind_port_min: 6801,
        bind_port_max: 6900,
        bind_avoid_ports: vec![6802, 6803],
        bind_msgr2: true,
        bind_v1_addr: Some(SocketAddr::from(([127, 0, 0, 1], 6789))),
        nonce: Some(0),
        dispatch_throttle_bytes: 1 << 20,
        default_policy: PolicyConfig::new(PolicyKind::LossyClient),
        policies: BTreeMap::new(),
        features_supported: 0x3f,
        features_required: 0x1,
        max_connections: 9,
        ..MessengerConfig::default()
    };
    c.policies.insert(
        "osd".into(),
        PolicyConfig {
            kind: PolicyKind::LosslessPeer,
            throttle_bytes: 1 << 20,
            throttle_messages: 100,
            features_required: 0x2,
        },
    );
    c.default_policy.throttle_bytes = 1 << 10;
    c.default_policy.throttle_messages = 7;
    c.default_policy.features_required = 0x4;
    c.dispatch.strict_threshold = 32;
    c.dispatch.min_cost = 1024;
    c.dispatch.max_tokens_per_priority = 1 << 20;
    c.dispatch.event_delay = Duration::from_millis(1003);
    c.dispatch.event_delay_probability = 0.25;
    c.dispatch.event_delay_seed = 11;
    let p = &mut c.pipe;
    p.read_timeout = Duration::from_secs(30);
    p.handshake_timeout = Duration::from_secs(4);
    p.initial_backoff = Duration::from_millis(100);
    p.max_backoff = Duration::from_secs(2);
    p.limits.max_front = 1 << 20;
    p.limits.max_middle = 1 << 19;
    p.limits.max_data = 1 << 21;
    p.limits.max_message = 1 << 22;
    p.limits.max_authorizer = 1024;
    p.con_modes.client = vec![msgr_pipe::ConMode::Secure];
    p.con_modes.mon_client = vec![msgr_pipe::ConMode::Crc];
    p.con_modes.service = vec![msgr_pipe::ConMode::Secure, msgr_pipe::ConMode::Crc];
    p.crc.header = false;
    p.crc.data = false;
    p.max_pending_bytes = 1 << 24;
    p.ack_batch = 8;
    p.ack_bytes = 1 << 16;
    p.ack_delay = Duration::from_millis(5);
    p.keepalive_interval = Duration::from_secs(3);
    p.write_batch_bytes = 1 << 18;
    p.default_priority = 100;
    p.inject.socket_failures = 50;
    p.inject.internal_delay = Duration::from_millis(1);
    p.inject.delay_probability = 0.5;
    p.inject.delay_max = Duration::from_millis(20);
    p.inject.seed = 42;
    c
}

/// Every key path (`crc.data`) of a serialized table; maps of names (`policies`) count once.
fn key_paths(prefix: &str, t: &toml::Table, out: &mut BTreeSet<String>) {
    for (k, v) in t {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            toml::Value::Table(inner) if prefix != "policies" => key_paths(&path, inner, out),
            _ => {
                out.insert(path);
            }
        }
    }
}

#[test]
fn a_toml_file_with_every_key_round_trips() {
    let cfg = everything_set();
    cfg.validate().unwrap();
    let text = ::toml::to_string(&cfg).unwrap();
    let back = toml(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(back, cfg, "{text}");
    // Every key is in the text, and every one differs from the default's.
    let written: toml::Table = text.parse().unwrap();
    let default = toml::Table::try_from(MessengerConfig::default()).unwrap();
    let mut keys = BTreeSet::new();
    key_paths("", &written, &mut keys);
    let mut default_keys = BTreeSet::new();
    key_paths("", &default, &mut default_keys);
    assert!(
        keys.is_superset(&default_keys),
        "{default_keys:?} vs {keys:?}"
    );
    assert!(keys.contains("name") && keys.contains("nonce") && keys.contains("policies.osd"));
    for key in &keys {
        let path: Vec<&str> = key.split('.').collect();
        let get = |t: &toml::Table| -> Option<toml::Value> {
            let mut v = t.get(path[0])?.clone();
            for p in &path[1..] {
                v = v.get(p)?.clone();
            }
            Some(v)
        };
        assert_ne!(get(&written), get(&default), "{key} is at its default");
    }
    // And through a file.
    let path = std::env::temp_dir().join(format!("msgr-config-{}.toml", std::process::id()));
    std::fs::write(&path, &text).unwrap();
    let from_file = MessengerConfig::from_toml_file(&path);
    std::fs::remove_file(&path).unwrap();
    assert_eq!(from_file.unwrap(), cfg);
}

#[test]
fn files_are_read_and_missing_ones_name_their_path() {
    let path = std::env::temp_dir().join(format!("msgr-config-{}.conf", std::process::id()));
    std::fs::write(
        &path,
        "[global]\nms_max_backoff = 3\n[client]\nms_tcp_read_timeout = x\n",
    )
    .unwrap();
    let ok = MessengerConfig::from_ceph_conf_file(&path, "osd.0");
    let bad = MessengerConfig::from_ceph_conf_file(&path, "client.admin");
    std::fs::remove_file(&path).unwrap();
    assert_eq!(ok.unwrap().pipe.max_backoff, Duration::from_secs(3));
    match bad {
        Err(ConfigError::BadValue {
            origin,
            line: 4,
            key,
            ..
        }) => {
            assert_eq!(origin, path.display().to_string());
            assert_eq!(key, "ms_tcp_read_timeout");
        }
        other => panic!("{other:?}"),
    }
    let missing = std::env::temp_dir().join("msgr-config-does-not-exist.toml");
    match MessengerConfig::from_toml_file(&missing) {
        Err(e @ ConfigError::Io { .. }) => {
            assert!(
                e.to_string().contains("msgr-config-does-not-exist.toml"),
                "{e}"
            )
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        MessengerConfig::from_ceph_conf_file(&missing, "client.admin"),
        Err(ConfigError::Io { .. })
    ));
}

#[test]
fn the_doc_tables_name_every_key_and_every_ceph_option() {
    let core = include_str!("../config.rs");
    let pipe = include_str!("../../../msgr-pipe/src/config.rs");
    let row = |key: &str| format!("| `{key}` |");
    let serialized = toml::Table::try_from(everything_set()).unwrap();
    for key in serialized.keys() {
        assert!(
            core.contains(&row(key)) || pipe.contains(&row(key)),
            "`{key}` has no row in MessengerConfig's or PipeConfig's table"
        );
    }
    for name in MAPPED
        .iter()
        .map(|o| o.name)
        .chain(FIXED.iter().map(|f| f.0))
        .chain(IGNORED.iter().copied())
    {
        assert!(
            core.contains(&format!("`{name}`")),
            "{name} is not documented"
        );
    }
    for o in MAPPED {
        assert!(
            core.contains(&format!("| `{}` | {} |", o.name, o.default)),
            "{}'s row does not give Ceph's default {}",
            o.name,
            o.default
        );
    }
}
