//! Fixed sizes, flags, priorities, protocol versions and auth ids (spec §2, §3.12).

/// The 9-byte msgr v1 banner, `ceph v027`, no terminator.
pub const BANNER: &[u8; 9] = b"ceph v027";
/// Length of [`BANNER`].
pub const BANNER_LEN: usize = 9;
/// The msgr2 banner prefix, recognised only to give a clearer error.
pub const BANNER_V2_PREFIX: &[u8; 8] = b"ceph v2\n";
/// Monitors' msgr v1 port.
pub const MON_PORT_LEGACY: u16 = 6789;

/// Legacy `entity_addr_t` length.
pub const ADDR_LEN: usize = 136;
/// `ceph_entity_name` length.
pub const ENTITY_NAME_LEN: usize = 9;
/// `ceph_msg_connect` length, without the authorizer.
pub const CONNECT_LEN: usize = 33;
/// `ceph_msg_connect_reply` length, without the authorizer reply.
pub const CONNECT_REPLY_LEN: usize = 26;
/// The raw value exchanged after a SEQ reply.
pub const SEQ_LEN: usize = 8;
/// `ceph_msg_header` length.
pub const HEADER_LEN: usize = 53;
/// Bytes of the header covered by its CRC.
pub const HEADER_CRC_LEN: usize = 49;
/// `ceph_msg_footer` length (with `MSG_AUTH`).
pub const FOOTER_LEN: usize = 21;
/// `ceph_msg_footer_old` length (without `MSG_AUTH`).
pub const OLD_FOOTER_LEN: usize = 13;
/// `ceph_timespec` length.
pub const TIMESPEC_LEN: usize = 8;

/// `CEPH_MSG_CONNECT_LOSSY`: connect flag (connector policy) and reply flag (session is lossy).
pub const CONNECT_LOSSY: u8 = 1;

/// Footer flag: the message was not aborted.
pub const FOOTER_COMPLETE: u8 = 1;
/// Footer flag: the data CRC was not computed.
pub const FOOTER_NOCRC: u8 = 2;
/// Footer flag: the message is signed.
pub const FOOTER_SIGNED: u8 = 4;

/// `CEPH_MSG_PRIO_LOW`.
pub const PRIO_LOW: u16 = 64;
/// `CEPH_MSG_PRIO_DEFAULT`, also used when a message has priority 0.
pub const PRIO_DEFAULT: u16 = 127;
/// `CEPH_MSG_PRIO_HIGH`, ceph-mon's default.
pub const PRIO_HIGH: u16 = 196;
/// `CEPH_MSG_PRIO_HIGHEST`, also the re-send queue.
pub const PRIO_HIGHEST: u16 = 255;

/// `CEPH_MONC_PROTOCOL`: anything to or from a monitor.
pub const MONC_PROTOCOL: u32 = 15;
/// `CEPH_OSDC_PROTOCOL`: anything to or from an OSD.
pub const OSDC_PROTOCOL: u32 = 24;
/// `CEPH_MDSC_PROTOCOL`: anything to or from an MDS.
pub const MDSC_PROTOCOL: u32 = 32;
/// `CEPH_MON_PROTOCOL`: monitor to monitor.
pub const MON_PROTOCOL: u32 = 13;
/// `CEPH_OSD_PROTOCOL`: OSD to OSD.
pub const OSD_PROTOCOL: u32 = 10;

/// `CEPH_AUTH_UNKNOWN`, also "no authorizer".
pub const AUTH_UNKNOWN: u32 = 0;
/// `CEPH_AUTH_NONE`.
pub const AUTH_NONE: u32 = 1;
/// `CEPH_AUTH_CEPHX`.
pub const AUTH_CEPHX: u32 = 2;
/// `CEPH_AUTH_GSS`.
pub const AUTH_GSS: u32 = 4;
