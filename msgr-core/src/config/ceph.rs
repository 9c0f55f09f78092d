//! Ceph's `ms_*` option names: which ones msgr maps onto [`MessengerConfig`] fields, with
//! Ceph's units and defaults, which ones it knows and skips, and how Ceph writes their values.
//!
//! Used by both loaders: a ceph.conf names its options this way, and a TOML file may use
//! these names as aliases of msgr's own. This module does not parse files (see `ceph_conf`
//! and `toml_file`), and knows no option outside `ms_*`.
//!
//! [`MessengerConfig`]: super::MessengerConfig

/// How Ceph reads an option's value (its `Option::type_t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Unit {
    /// `float` seconds (`ms_initial_backoff = .2`), or `uint` seconds (`ms_tcp_read_timeout`).
    Secs,
    /// A plain `uint`.
    Count,
    /// A `size`: bytes, with an optional IEC suffix (`100M` = 100 MiB).
    Bytes,
    /// A `float` probability.
    Ratio,
    /// A `bool`: `true`/`false` in any case, or an integer (0 is false).
    Bool,
    /// A `str` of msgr2 connection modes in order of preference (`"secure crc"`).
    Modes,
}

/// How one of msgr's fields is serialized, so a Ceph value can be written in its shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Repr {
    /// A TOML float or integer (msgr's seconds, probabilities).
    Number,
    /// A TOML integer.
    Int,
    /// A TOML boolean.
    Bool,
    /// serde's own `Duration` shape, `{ secs, nanos }` (msgr-dispatch's `event_delay`).
    SecsNanos,
    /// A list of strings (msgr2 connection modes).
    List,
}

/// One Ceph option msgr maps.
#[derive(Debug)]
pub(super) struct CephOption {
    /// Ceph's name, with underscores.
    pub name: &'static str,
    /// How Ceph reads the value.
    pub unit: Unit,
    /// Ceph's default as `ceph-conf -D` prints it (Pacific), for the docs.
    #[allow(dead_code)] // read by the doc-table test only
    pub default: &'static str,
    /// msgr's settings it sets, as dotted paths of the serialized [`super::MessengerConfig`].
    pub targets: &'static [(&'static str, Repr)],
}

/// Every Ceph option with a counterpart in msgr. Keep in step with the table in
/// `config.rs`'s module docs (a test checks it).
pub(super) const MAPPED: &[CephOption] = &[
    opt(
        "ms_tcp_read_timeout",
        Unit::Secs,
        "900",
        &[("read_timeout", Repr::Number)],
    ),
    // The async messenger's name for the same idle timeout (ms_tcp_read_timeout was
    // SimpleMessenger's, and is gone from Ceph's newer option tables).
    opt(
        "ms_connection_idle_timeout",
        Unit::Secs,
        "900",
        &[("read_timeout", Repr::Number)],
    ),
    opt(
        "ms_connection_ready_timeout",
        Unit::Secs,
        "10",
        &[("handshake_timeout", Repr::Number)],
    ),
    opt(
        "ms_initial_backoff",
        Unit::Secs,
        "0.2",
        &[("initial_backoff", Repr::Number)],
    ),
    opt(
        "ms_max_backoff",
        Unit::Secs,
        "15",
        &[("max_backoff", Repr::Number)],
    ),
    opt(
        "ms_crc_data",
        Unit::Bool,
        "true",
        &[("crc.data", Repr::Bool)],
    ),
    opt(
        "ms_crc_header",
        Unit::Bool,
        "true",
        &[("crc.header", Repr::Bool)],
    ),
    opt(
        "ms_dispatch_throttle_bytes",
        Unit::Bytes,
        "104857600",
        &[("dispatch_throttle_bytes", Repr::Int)],
    ),
    opt(
        "ms_bind_port_min",
        Unit::Count,
        "6800",
        &[("bind_port_min", Repr::Int)],
    ),
    opt(
        "ms_bind_port_max",
        Unit::Count,
        "7300",
        &[("bind_port_max", Repr::Int)],
    ),
    opt(
        "ms_inject_socket_failures",
        Unit::Count,
        "0",
        &[("inject.socket_failures", Repr::Int)],
    ),
    opt(
        "ms_inject_internal_delays",
        Unit::Secs,
        "0",
        &[
            ("inject.internal_delay", Repr::Number),
            ("dispatch.event_delay", Repr::SecsNanos),
        ],
    ),
    opt(
        "ms_inject_delay_probability",
        Unit::Ratio,
        "0",
        &[
            ("inject.delay_probability", Repr::Number),
            ("dispatch.event_delay_probability", Repr::Number),
        ],
    ),
    opt(
        "ms_inject_delay_max",
        Unit::Secs,
        "1",
        &[("inject.delay_max", Repr::Number)],
    ),
    opt(
        "ms_client_mode",
        Unit::Modes,
        "crc secure",
        &[("con_modes.client", Repr::List)],
    ),
    opt(
        "ms_service_mode",
        Unit::Modes,
        "crc secure",
        &[("con_modes.service", Repr::List)],
    ),
    opt(
        "ms_mon_client_mode",
        Unit::Modes,
        "secure crc",
        &[("con_modes.mon_client", Repr::List)],
    ),
    opt(
        "ms_pq_max_tokens_per_priority",
        Unit::Count,
        "16777216",
        &[("dispatch.max_tokens_per_priority", Repr::Int)],
    ),
    opt(
        "ms_pq_min_cost",
        Unit::Bytes,
        "65536",
        &[("dispatch.min_cost", Repr::Int)],
    ),
];

const fn opt(
    name: &'static str,
    unit: Unit,
    default: &'static str,
    targets: &'static [(&'static str, Repr)],
) -> CephOption {
    CephOption {
        name,
        unit,
        default,
        targets,
    }
}

/// Ceph options msgr implements one way only: accepted with that value, refused with another.
pub(super) const FIXED: &[(&str, bool)] = &[
    // Every msgr socket sets TCP_NODELAY.
    ("ms_tcp_nodelay", true),
    // msgr speaks v1: a file that turns v1 off wants something msgr is not.
    ("ms_bind_msgr1", true),
];

/// Ceph `ms_*` options that exist in Ceph and have no counterpart in msgr; a ceph.conf may
/// set them (vstart's and the recipes' do) and they are skipped. Keep in step with the
/// module docs of `config.rs`.
pub(super) const IGNORED: &[&str] = &[
    "ms_bind_msgr2",
    "ms_type",
    "ms_public_type",
    "ms_cluster_type",
    "ms_mon_cluster_mode",
    "ms_mon_service_mode",
    "ms_cluster_mode",
    "ms_learn_addr_from_peer",
    "ms_bind_ipv4",
    "ms_bind_ipv6",
    "ms_bind_prefer_ipv4",
    "ms_bind_retry_count",
    "ms_bind_retry_delay",
    "ms_bind_before_connect",
    "ms_tcp_listen_backlog",
    "ms_tcp_rcvbuf",
    "ms_tcp_prefetch_max_size",
    "ms_rwthread_stack_bytes",
    "ms_die_on_bad_msg",
    "ms_die_on_unhandled_msg",
    "ms_die_on_old_message",
    "ms_die_on_skipped_message",
    "ms_die_on_bug",
    "ms_dump_on_send",
    "ms_dump_corrupt_message_level",
    "ms_max_accept_failures",
    "ms_inject_delay_type",
    "ms_inject_delay_msg_type",
    "ms_inject_network_congestion",
    "ms_blackhole_osd",
    "ms_blackhole_mon",
    "ms_blackhole_mds",
    "ms_blackhole_mgr",
    "ms_blackhole_client",
    "ms_async_op_threads",
    "ms_async_max_op_threads",
    "ms_async_rdma_device_name",
    "ms_async_rdma_enable_hugepage",
    "ms_async_rdma_buffer_size",
    "ms_async_rdma_send_buffers",
    "ms_async_rdma_receive_buffers",
    "ms_async_rdma_port_num",
    "ms_async_rdma_polling_us",
    "ms_async_rdma_type",
    "ms_dpdk_port_id",
    "ms_dpdk_coremask",
    "ms_dpdk_memory_channel",
    "ms_dpdk_hugepages",
    "ms_dpdk_pmd",
    "ms_dpdk_host_ipv4_addr",
    "ms_dpdk_gateway_ipv4_addr",
    "ms_dpdk_netmask_ipv4_addr",
    "ms_dpdk_lro",
    "ms_dpdk_hw_flow_control",
    "ms_dpdk_hw_queue_weight",
    "ms_dpdk_debug_allow_loopback",
    "ms_dpdk_rx_buffer_count_per_core",
    "ms_dpdk_devs_allowlist",
    "ms_dpdk_enable_tso",
    "ms_async_reap_threshold",
    "ms_async_send_inline",
    "ms_async_rdma_receive_queue_len",
    "ms_async_rdma_support_srq",
    "ms_async_rdma_gid_idx",
    "ms_async_rdma_local_gid",
    "ms_async_rdma_roce_ver",
    "ms_async_rdma_sl",
    "ms_async_rdma_dscp",
    "ms_async_rdma_cm",
    "ms_osd_compress_mode",
    "ms_osd_compress_min_size",
    "ms_osd_compression_algorithm",
    "ms_compress_secure",
];

/// The mapped option of this name.
pub(super) fn mapped(name: &str) -> Option<&'static CephOption> {
    MAPPED.iter().find(|o| o.name == name)
}

/// Ceph's key normalization: surrounding blanks trimmed, each run of blanks and each dash
/// made one underscore (`ms  tcp-read timeout` is `ms_tcp_read_timeout`).
pub(super) fn normalize_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    let mut blank = false;
    for c in key.trim().chars() {
        if c.is_whitespace() {
            blank = true;
            continue;
        }
        if blank {
            out.push('_');
            blank = false;
        }
        out.push(if c == '-' { '_' } else { c });
    }
    out
}

/// Reads a value as Ceph reads `unit`, in the shape `repr` of msgr's field. The error says
/// what was expected.
pub(super) fn parse_value(unit: Unit, repr: Repr, text: &str) -> Result<toml::Value, String> {
    let text = text.trim();
    match unit {
        Unit::Bool => parse_bool(text).map(toml::Value::Boolean),
        Unit::Count => {
            let n: u64 = text
                .parse()
                .map_err(|_| format!("expected an unsigned integer, got {text:?}"))?;
            int(n)
        }
        Unit::Bytes => int(parse_size(text)?),
        Unit::Modes => {
            let modes = msgr_pipe::ConMode::parse_list(text).map_err(|e| e.to_string())?;
            Ok(toml::Value::Array(
                modes
                    .iter()
                    .map(|m| {
                        toml::Value::String(
                            match m {
                                msgr_pipe::ConMode::Crc => "crc",
                                msgr_pipe::ConMode::Secure => "secure",
                            }
                            .into(),
                        )
                    })
                    .collect(),
            ))
        }
        Unit::Secs | Unit::Ratio => {
            let f: f64 = text
                .parse()
                .ok()
                .filter(|f: &f64| f.is_finite() && *f >= 0.0)
                .ok_or_else(|| format!("expected a non-negative number, got {text:?}"))?;
            number_as(repr, toml::Value::Float(f))
        }
    }
}

/// A TOML number in the shape `repr`: `SecsNanos` becomes `{ secs, nanos }`; others are kept.
pub(super) fn number_as(repr: Repr, v: toml::Value) -> Result<toml::Value, String> {
    if repr != Repr::SecsNanos {
        return Ok(v);
    }
    let f = match v {
        toml::Value::Float(f) => f,
        toml::Value::Integer(i) => i as f64,
        other => return Ok(other), // left to serde, which names the type it wanted
    };
    let d = std::time::Duration::try_from_secs_f64(f).map_err(|e| e.to_string())?;
    let mut t = toml::Table::new();
    t.insert("secs".into(), int(d.as_secs())?);
    t.insert(
        "nanos".into(),
        toml::Value::Integer(i64::from(d.subsec_nanos())),
    );
    Ok(toml::Value::Table(t))
}

fn int(n: u64) -> Result<toml::Value, String> {
    i64::try_from(n)
        .map(toml::Value::Integer)
        .map_err(|_| format!("{n} is too large"))
}

/// Ceph's `strict_strtob`: `true`/`false` in any case, else an integer, non-zero being true.
fn parse_bool(text: &str) -> Result<bool, String> {
    if text.eq_ignore_ascii_case("true") {
        return Ok(true);
    }
    if text.eq_ignore_ascii_case("false") {
        return Ok(false);
    }
    text.parse::<i64>()
        .map(|n| n != 0)
        .map_err(|_| format!("expected true, false or an integer, got {text:?}"))
}

/// Ceph's `strict_iec_cast`: an integer with an optional suffix `K`, `M`, `G`, `T`, `P` or
/// `E`, alone or followed by `i` and/or `B` (`4K`, `4Ki`, `4KiB`, `4KB`: all 4096), or `B`.
fn parse_size(text: &str) -> Result<u64, String> {
    let bad = || format!("expected a size (bytes, or with K/M/G/T/P/E), got {text:?}");
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (num, suffix) = text.split_at(digits);
    let n: u64 = num.parse().map_err(|_| bad())?;
    let rest = suffix.strip_suffix('B').unwrap_or(suffix);
    let rest = rest.strip_suffix('i').unwrap_or(rest);
    let shift = match rest {
        "" if suffix != "i" && suffix != "iB" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        "P" => 50,
        "E" => 60,
        _ => return Err(bad()),
    };
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| format!("{text:?} overflows 64 bits"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_normalize_as_ceph_does() {
        for k in [
            "ms_tcp_read_timeout",
            "ms tcp read timeout",
            "ms-tcp-read-timeout",
            "  ms  tcp_read-timeout ",
            "ms\ttcp read timeout",
        ] {
            assert_eq!(normalize_key(k), "ms_tcp_read_timeout", "{k:?}");
        }
    }

    #[test]
    fn sizes_are_iec() {
        assert_eq!(parse_size("100"), Ok(100));
        assert_eq!(parse_size("100B"), Ok(100));
        for s in ["4K", "4Ki", "4KiB", "4KB"] {
            assert_eq!(parse_size(s), Ok(4096), "{s}");
        }
        assert_eq!(parse_size("100M"), Ok(100 << 20));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert_eq!(parse_size("1E"), Ok(1 << 60));
        for s in ["", "M", "4X", "4 K", "-1", "4i", "4iB", "16E", "1.5M"] {
            assert!(parse_size(s).is_err(), "{s:?}");
        }
    }

    #[test]
    fn bools_are_strict_strtob() {
        for (s, b) in [
            ("true", true),
            ("TRUE", true),
            ("False", false),
            ("0", false),
            ("1", true),
            ("2", true),
        ] {
            assert_eq!(parse_bool(s), Ok(b), "{s}");
        }
        for s in ["yes", "no", "on", "", "t"] {
            assert!(parse_bool(s).is_err(), "{s:?}");
        }
    }

    #[test]
    fn values_take_the_fields_shape() {
        assert_eq!(
            parse_value(Unit::Secs, Repr::Number, " .2 "),
            Ok(toml::Value::Float(0.2))
        );
        assert_eq!(
            parse_value(Unit::Count, Repr::Int, "7300"),
            Ok(toml::Value::Integer(7300))
        );
        let v = parse_value(Unit::Secs, Repr::SecsNanos, "1.5").unwrap();
        assert_eq!(v["secs"].as_integer(), Some(1));
        assert_eq!(v["nanos"].as_integer(), Some(500_000_000));
        assert!(parse_value(Unit::Secs, Repr::Number, "-1").is_err());
        assert!(parse_value(Unit::Secs, Repr::Number, "inf").is_err());
        assert!(parse_value(Unit::Count, Repr::Int, "1.5").is_err());
        assert!(parse_value(Unit::Count, Repr::Int, "18446744073709551615").is_err());
    }

    #[test]
    fn every_name_is_known_once() {
        let mut all: Vec<&str> = MAPPED.iter().map(|o| o.name).collect();
        all.extend(FIXED.iter().map(|f| f.0));
        all.extend(IGNORED);
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n, "a name is listed twice");
        assert!(all
            .iter()
            .all(|n| n.starts_with("ms_") && normalize_key(n) == *n));
    }
}
