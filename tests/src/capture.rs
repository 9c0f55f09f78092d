//! A minimal reader for the captured Ceph Pacific streams in `msgr-wire/tests/data/` (copied from
//! `shared/vectors/ceph-pacific-v1/`): one direction of one TCP connection each, from the banner to the end.
//!
//! It only splits the stream into frames so that tests can take message fronts and data segments as golden bytes;
//! it checks no CRC and is not the project's decoder. Layout (msgr-v1-wire.md §3):
//!
//! ```text
//! connector: banner 9 | own addr 136 | ceph_msg_connect 33 | seq reply 8 | frames...
//! acceptor:  banner 9 | own addr 136 | peer addr 136 | connect_reply 26 | seq 8 | frames...
//! frame:     tag 7 (MSG) | header 53 | front | middle | data | footer 21
//!            tag 8 (ACK), 14 (KEEPALIVE2), 15 (KEEPALIVE2_ACK) | 8 bytes
//! ```

use anyhow::{bail, ensure, Context};
use bytes::{Buf, Bytes};

/// `status-connector.bin`: what `ceph status` wrote to the mon.
pub const STATUS_CONNECTOR: &[u8] =
    include_bytes!("../../msgr-wire/tests/data/status-connector.bin");
/// `status-acceptor.bin`: what the mon wrote back to `ceph status`.
pub const STATUS_ACCEPTOR: &[u8] = include_bytes!("../../msgr-wire/tests/data/status-acceptor.bin");
/// `configkey-set-connector.bin`: `ceph config-key set big -i FILE` with a 48,000-byte value.
pub const CONFIGKEY_SET_CONNECTOR: &[u8] =
    include_bytes!("../../msgr-wire/tests/data/configkey-set-connector.bin");
/// `configkey-set-acceptor.bin`: the mon's side of the `config-key set` session.
pub const CONFIGKEY_SET_ACCEPTOR: &[u8] =
    include_bytes!("../../msgr-wire/tests/data/configkey-set-acceptor.bin");

/// Bytes before the first frame of a connector stream.
pub const CONNECTOR_PREAMBLE: usize = 9 + 136 + 33 + 8;
/// Bytes before the first frame of an acceptor stream (the connect reply carries no authorizer).
pub const ACCEPTOR_PREAMBLE: usize = 9 + 136 + 136 + 26 + 8;

const HEADER_LEN: usize = 53;
const FOOTER_LEN: usize = 21;

/// One frame of a captured stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A MSG frame.
    Msg(MsgFrame),
    /// ACK with the acknowledged seq.
    Ack(u64),
    /// KEEPALIVE2 with its timestamp (seconds, nanoseconds).
    Keepalive2(u32, u32),
    /// KEEPALIVE2_ACK with the echoed timestamp.
    Keepalive2Ack(u32, u32),
}

/// The parts of a MSG frame, as captured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MsgFrame {
    /// The 53-byte `ceph_msg_header`.
    pub header: Bytes,
    /// The front segment.
    pub front: Bytes,
    /// The middle segment.
    pub middle: Bytes,
    /// The data segment.
    pub data: Bytes,
    /// The 21-byte `ceph_msg_footer`.
    pub footer: Bytes,
}

impl MsgFrame {
    /// `header.seq`.
    pub fn seq(&self) -> u64 {
        (&self.header[0..8]).get_u64_le()
    }

    /// `header.tid`.
    pub fn tid(&self) -> u64 {
        (&self.header[8..16]).get_u64_le()
    }

    /// `header.type`.
    pub fn msg_type(&self) -> u16 {
        (&self.header[16..18]).get_u16_le()
    }

    /// `header.version`.
    pub fn version(&self) -> u16 {
        (&self.header[20..22]).get_u16_le()
    }
}

/// The frames of a connector stream.
pub fn connector_frames(stream: &[u8]) -> anyhow::Result<Vec<Frame>> {
    ensure!(
        stream.len() >= CONNECTOR_PREAMBLE,
        "connector stream shorter than its preamble"
    );
    frames(&stream[CONNECTOR_PREAMBLE..])
}

/// The frames of an acceptor stream.
pub fn acceptor_frames(stream: &[u8]) -> anyhow::Result<Vec<Frame>> {
    ensure!(
        stream.len() >= ACCEPTOR_PREAMBLE,
        "acceptor stream shorter than its preamble"
    );
    frames(&stream[ACCEPTOR_PREAMBLE..])
}

/// The MSG frame with header seq `seq` in `frames`.
pub fn msg_by_seq(frames: &[Frame], seq: u64) -> anyhow::Result<&MsgFrame> {
    frames
        .iter()
        .find_map(|frame| match frame {
            Frame::Msg(msg) if msg.seq() == seq => Some(msg),
            _ => None,
        })
        .with_context(|| format!("no MSG frame with seq {seq}"))
}

fn take(buf: &mut Bytes, len: usize, what: &str) -> anyhow::Result<Bytes> {
    ensure!(
        buf.len() >= len,
        "stream ends inside {what}: need {len}, have {}",
        buf.len()
    );
    Ok(buf.split_to(len))
}

fn frames(stream: &[u8]) -> anyhow::Result<Vec<Frame>> {
    let mut buf = Bytes::copy_from_slice(stream);
    let mut out = Vec::new();
    while buf.has_remaining() {
        let tag = buf.get_u8();
        let frame = match tag {
            7 => Frame::Msg(msg_frame(&mut buf)?),
            8 => Frame::Ack(take(&mut buf, 8, "ack")?.get_u64_le()),
            14 | 15 => {
                let mut stamp = take(&mut buf, 8, "keepalive2")?;
                let (secs, nanos) = (stamp.get_u32_le(), stamp.get_u32_le());
                if tag == 14 {
                    Frame::Keepalive2(secs, nanos)
                } else {
                    Frame::Keepalive2Ack(secs, nanos)
                }
            }
            other => bail!("unexpected tag {other} at frame {}", out.len()),
        };
        out.push(frame);
    }
    Ok(out)
}

fn msg_frame(buf: &mut Bytes) -> anyhow::Result<MsgFrame> {
    let header = take(buf, HEADER_LEN, "header")?;
    let len_at = |offset: usize| (&header[offset..offset + 4]).get_u32_le() as usize;
    let (front_len, middle_len, data_len) = (len_at(22), len_at(26), len_at(30));
    Ok(MsgFrame {
        front: take(buf, front_len, "front")?,
        middle: take(buf, middle_len, "middle")?,
        data: take(buf, data_len, "data")?,
        footer: take(buf, FOOTER_LEN, "footer")?,
        header,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg_rows(frames: &[Frame]) -> Vec<(u64, u64, u16, usize, usize)> {
        frames
            .iter()
            .filter_map(|frame| match frame {
                Frame::Msg(m) => {
                    Some((m.seq(), m.tid(), m.msg_type(), m.front.len(), m.data.len()))
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn status_connector_matches_readme_rows() {
        let frames = connector_frames(STATUS_CONNECTOR).unwrap();
        assert_eq!(frames[0], Frame::Keepalive2(1795760655, 374643132));
        let rows = msg_rows(&frames);
        assert_eq!(
            rows,
            vec![
                (1, 0, 17, 60, 0),
                (2, 0, 15, 48, 0),
                (3, 0, 15, 29, 0),
                (4, 0, 15, 29, 0),
                (5, 1, 50, 80, 0),
                (6, 2, 50, 62, 0)
            ]
        );
    }

    #[test]
    fn status_acceptor_matches_readme_rows() {
        let frames = acceptor_frames(STATUS_ACCEPTOR).unwrap();
        assert_eq!(frames[0], Frame::Keepalive2Ack(1795760655, 374643132));
        let rows = msg_rows(&frames);
        assert_eq!(rows.len(), 8);
        assert_eq!(rows[6], (7, 1, 51, 72, 73271));
        assert_eq!(rows[7], (8, 2, 51, 54, 367));
    }

    #[test]
    fn configkey_streams_split_cleanly() {
        let sent = connector_frames(CONFIGKEY_SET_CONNECTOR).unwrap();
        assert_eq!(msg_by_seq(&sent, 6).unwrap().data.len(), 48000);
        let got = acceptor_frames(CONFIGKEY_SET_ACCEPTOR).unwrap();
        assert_eq!(msg_by_seq(&got, 8).unwrap().front.len(), 83);
    }
}
