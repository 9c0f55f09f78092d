//! `msgr dump`: decode msgr v1 and msgr2 traffic from a pcap or pcapng capture, or from one
//! side's raw bytes.
//!
//! A capture (told by its magic number; `FILE` `-` reads standard input) is split into TCP
//! connections ([`tcp`]; IPv4 and IPv6 over the link types of [`packet`]), each direction's
//! segments put back in sequence order, the protocol told by the banner, the connector and
//! the acceptor found from the bytes ([`session`]), both sides decoded and their items
//! printed in capture order, each with its connection number, side, packet number and
//! stream offset. TCP that is not Ceph is listed and skipped. A raw stream (any other file)
//! is one side's bytes from its banner on, and needs `--side`.
//!
//! msgr v1 is decoded by msgr-wire's `StreamDecoder` ([`decode`]); msgr2 by msgr-pipe's
//! sans-IO frame decoder ([`v2`]), a line per frame named after its tag (`hello`,
//! `auth_request`, `auth_done`, `client_ident`, `msg`, `ack`, ...; [`frames2`]). A msgr2
//! connection in secure mode is sealed from AUTH_SIGNATURE on: its sides end with one
//! `encrypted` line (how many bytes) unless `--secret HEX` gives the connection secret, which
//! opens them.
//!
//! Text lines are `[conn=N from=SIDE packet=N time=SECONDS] @OFFSET KIND key=value ...`; with `--json`,
//! one object per line with the same keys ([`describe`]). A message names its type
//! (`type_name`, from [`names`]) and says whether its CRCs verify (`crc_ok`); with
//! `--continue` (alias `--no-crc`) a CRC mismatch does not stop the decoding: the message
//! (a msgr2 frame of any tag) says which CRC failed (`crc_error`) and the next frame follows.
//! Without it the first mismatch ends that side with an error.
//!
//! Exit status: 1 if the input cannot be read, is empty, or a side's bytes are corrupt (a
//! raw stream's also if it ends inside an item); a capture's missing bytes (`gap` lines)
//! and sides cut short by the capture's end (`cut` lines) are reported, not errors. What it
//! does not do: derive a connection secret from the keys, decode msgr2.0 (rev0) or
//! compressed frames, look inside auth payloads, follow a side past bytes the capture
//! missed.

mod capture;
mod decode;
mod describe;
mod frames2;
mod names;
mod packet;
mod session;
mod tcp;
mod v2;

use std::collections::BTreeMap;
use std::io::{BufWriter, Read, Write};
use std::path::PathBuf;

use anyhow::Context;
use msgr_wire::{FooterKind, Side};

use decode::{End, Options};
use describe::Line;

/// Arguments of `msgr dump`.
#[derive(Debug, clap::Args)]
pub struct DumpArgs {
    /// A pcap or pcapng capture (msgr v1 and msgr2 connections), or the raw bytes one side of
    /// a connection wrote from its banner on (`-`: standard input).
    pub file: PathBuf,
    /// For a raw stream: which side wrote the bytes (a capture's sides are found from the
    /// bytes). A msgr2 connector's stream turns secure where its peer's AUTH_DONE said; alone,
    /// that is guessed (the first garbled preamble after an auth request).
    #[arg(long, value_enum)]
    pub side: Option<SideArg>,
    /// Print one JSON object per line.
    #[arg(long)]
    pub json: bool,
    /// msgr v1 footer layout: from the features seen in the stream, or forced.
    #[arg(long, value_enum, default_value_t = FooterArg::Auto)]
    pub footer: FooterArg,
    /// Go on after CRC mismatches, naming them on the message or msgr2 frame
    /// (`crc_ok=false crc_error=...`).
    #[arg(long = "continue", alias = "no-crc")]
    pub keep_going: bool,
    /// msgr2 secure mode: the connection secret (64 bytes as 128 hex digits, as cephx's
    /// AUTH_DONE hands it to both ends) that decrypts the sealed frames. Without it a secure
    /// side ends with one `encrypted` line.
    #[arg(long, value_name = "HEX", value_parser = parse_secret)]
    pub secret: Option<v2::Secret>,
}

fn parse_secret(s: &str) -> Result<v2::Secret, String> {
    v2::Secret::from_hex(s)
}

/// The `--footer` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FooterArg {
    /// From the connect's (connector) or the reply's (acceptor) features; in a capture,
    /// from the acceptor's reply for both sides.
    Auto,
    /// The 21-byte footer (MSG_AUTH negotiated).
    New,
    /// The 13-byte footer.
    Old,
}

/// The `--side` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SideArg {
    /// The side that called connect().
    Connector,
    /// The side that accepted.
    Acceptor,
}

/// Runs the subcommand.
pub fn run(args: DumpArgs) -> anyhow::Result<()> {
    let name = args.file.display().to_string();
    let bytes = if args.file.as_os_str() == "-" {
        let mut bytes = Vec::new();
        std::io::stdin()
            .read_to_end(&mut bytes)
            .context("cannot read standard input")?;
        bytes
    } else {
        std::fs::read(&args.file).with_context(|| format!("cannot read {name}"))?
    };
    if bytes.is_empty() {
        anyhow::bail!("{name}: empty capture (no bytes to decode)");
    }
    let opts = Options {
        footer: match args.footer {
            FooterArg::Auto => None,
            FooterArg::New => Some(FooterKind::New),
            FooterArg::Old => Some(FooterKind::Old),
        },
        keep_going: args.keep_going,
        secret: args.secret,
    };
    let mut out = BufWriter::new(std::io::stdout().lock());
    let result = match capture::Format::sniff(&bytes) {
        Some(format) => {
            if args.side.is_some() {
                anyhow::bail!(
                    "{name}: --side is for raw streams; a capture's sides are found from its bytes"
                );
            }
            dump_capture(format, &bytes, opts, args.json, &mut out)
        }
        None => {
            let Some(side) = args.side else {
                anyhow::bail!(
                    "{name}: not a pcap or pcapng capture; for one side's raw bytes give --side connector|acceptor"
                );
            };
            let side = match side {
                SideArg::Connector => Side::Connector,
                SideArg::Acceptor => Side::Acceptor,
            };
            dump_raw(&bytes, side, opts, args.json, &mut out)
        }
    };
    out.flush()?;
    result.map_err(|e| anyhow::anyhow!("{name}: {e}"))
}

fn emit(out: &mut impl Write, json: bool, line: &Line) -> anyhow::Result<()> {
    if json {
        serde_json::to_writer(&mut *out, line)?;
        writeln!(out)?;
    } else {
        writeln!(out, "{}", line.text())?;
    }
    Ok(())
}

/// One side's raw bytes: every item, then an error if they end corrupt or cut.
fn dump_raw(
    bytes: &[u8],
    side: Side,
    opts: Options,
    json: bool,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let (lines, crc_errors, end, malformed) =
        if bytes.starts_with(msgr_pipe::v2::frame::BANNER_MAGIC) {
            let s = v2::decode(bytes, side, opts, v2::Switch::Guess, true);
            (s.items, s.crc_errors, s.end, s.malformed)
        } else {
            let s = decode::decode(bytes, side, opts, true);
            (s.described(), s.crc_errors(), s.end, 0)
        };
    for d in lines {
        let line = Line {
            context: vec![],
            offset: Some(d.offset),
            kind: d.kind,
            fields: d.fields,
        };
        emit(out, json, &line)?;
    }
    if crc_errors > 0 {
        eprintln!("{crc_errors} messages with CRC errors (marked crc_ok=false)");
    }
    if malformed > 0 {
        anyhow::bail!("{malformed} frames with malformed payloads (marked malformed=...)");
    }
    match end {
        End::Complete => Ok(()),
        End::Cut { offset, what } => anyhow::bail!("at byte offset {offset}: {what}"),
        End::Corrupt { error, .. } => Err(anyhow::anyhow!(error)),
    }
}

/// A capture: its connections in order of their first packet.
fn dump_capture(
    format: capture::Format,
    bytes: &[u8],
    opts: Options,
    json: bool,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let read = capture::read(format, bytes)?;
    let mut conns = tcp::Connections::default();
    let mut skipped: BTreeMap<packet::Skip, u64> = BTreeMap::new();
    for p in &read.packets {
        match packet::parse(p.linktype, p.data) {
            Ok(segment) => conns.add(p.number, segment),
            Err(why) => *skipped.entry(why).or_default() += 1,
        }
    }
    let mut corrupt = 0;
    let mut decoded = 0;
    let mut decoded_v2 = 0;
    let mut crc_errors = 0;
    let times: Vec<f64> = read.packets.iter().map(|p| p.time).collect();
    for (i, conn) in conns.list.iter().enumerate() {
        let report = session::report(i + 1, conn, &times, opts, opts.footer.is_some());
        for line in &report.lines {
            emit(out, json, line)?;
        }
        corrupt += usize::from(report.corrupt);
        decoded += usize::from(report.protocol == Some(session::Protocol::V1));
        decoded_v2 += usize::from(report.protocol == Some(session::Protocol::V2));
        crc_errors += report.crc_errors;
    }
    // The summary goes to stderr: stdout stays one item per line.
    eprintln!(
        "{} packets, {} TCP connections, {decoded} decoded as msgr v1, {decoded_v2} as msgr2",
        read.packets.len(),
        conns.list.len()
    );
    for (why, n) in &skipped {
        eprintln!("{n} packets skipped: {}", why.describe());
    }
    for note in &read.notes {
        eprintln!("{note}");
    }
    if crc_errors > 0 {
        eprintln!("{crc_errors} messages with CRC errors (marked crc_ok=false)");
    }
    if corrupt > 0 {
        let what = match (decoded, decoded_v2) {
            (_, 0) => "msgr v1 bytes (see the error lines)",
            (0, _) => "msgr2 bytes (see the error and malformed lines)",
            _ => "bytes (see the error and malformed lines)",
        };
        anyhow::bail!("{corrupt} connections have corrupt {what}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The real v1 capture of the tests.
    const REAL: &[u8] = include_bytes!("../../tests/data/v1-cephx-status.pcap");

    /// xorshift64*: a fixed seed replays every input.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    /// Runs the whole capture path on `bytes` (both CRC modes, both output forms); a panic
    /// fails the test. Returns the text output's length.
    fn run_capture(bytes: &[u8]) -> usize {
        let mut len = 0;
        let Some(format) = capture::Format::sniff(bytes) else {
            return 0;
        };
        for keep_going in [false, true] {
            for json in [false, true] {
                let mut out = Vec::new();
                let opts = Options {
                    footer: None,
                    keep_going,
                    secret: None,
                };
                let _ = dump_capture(format, bytes, opts, json, &mut out);
                len = out.len();
            }
        }
        len
    }

    #[test]
    fn the_real_capture_decodes_whole() {
        let mut out = Vec::new();
        let result = dump_capture(
            capture::Format::Pcap,
            REAL,
            Options::default(),
            false,
            &mut out,
        );
        assert!(result.is_ok(), "{result:?}");
        let text = String::from_utf8(out).unwrap_or_default();
        // 8 messages in the hunt connection, 18 in the status one.
        assert_eq!(text.lines().filter(|l| l.contains(" msg ")).count(), 26);
        assert!(!text.contains("crc_ok=false"));
    }

    #[test]
    fn garbage_captures_never_panic() {
        let mut rng = Rng(0x6d73_6772_6475_6d70);
        // Flipped bytes anywhere in the real capture: headers, lengths, TCP, msgr.
        for _ in 0..150 {
            let mut bytes = REAL.to_vec();
            for _ in 0..1 + rng.below(64) {
                let at = rng.below(bytes.len());
                if let Some(b) = bytes.get_mut(at) {
                    *b ^= 1 << rng.below(8);
                }
            }
            run_capture(&bytes);
        }
        // Every cut, at a stride, and the first 100 bytes one by one.
        for cut in (0..REAL.len()).step_by(997).chain(0..100) {
            run_capture(REAL.get(..cut).unwrap_or_default());
        }
        // Random bytes after each format's magic, of random lengths.
        let magics: [&[u8]; 4] = [
            &[0xd4, 0xc3, 0xb2, 0xa1],
            &[0xa1, 0xb2, 0xc3, 0xd4],
            &[0x4d, 0x3c, 0xb2, 0xa1],
            &[0x0a, 0x0d, 0x0d, 0x0a],
        ];
        for _ in 0..2000 {
            let mut bytes = magics[rng.below(magics.len())].to_vec();
            let len = rng.below(600);
            bytes.extend((0..len).map(|_| rng.next() as u8));
            run_capture(&bytes);
        }
    }

    #[test]
    fn garbage_msgr2_captures_never_panic() {
        const V2: &[u8] = include_bytes!("../../tests/data/v2-crc-cephx-status.pcap");
        const SECURE: &[u8] = include_bytes!("../../tests/data/v2-secure-cephx-status.pcap");
        let mut rng = Rng(0x7632_6475_6d70);
        // A secret that opens nothing: the secure frames are tried and refused.
        let secret = v2::Secret::from_hex(&"5a".repeat(64)).ok();
        for capture in [V2, SECURE] {
            for _ in 0..100 {
                let mut bytes = capture.to_vec();
                for _ in 0..1 + rng.below(32) {
                    let at = rng.below(bytes.len());
                    if let Some(b) = bytes.get_mut(at) {
                        *b ^= 1 << rng.below(8);
                    }
                }
                let len = run_capture(&bytes);
                assert!(len < 64 * capture.len(), "{len}");
                for keep_going in [false, true] {
                    let opts = Options {
                        footer: None,
                        keep_going,
                        secret,
                    };
                    let mut out = Vec::new();
                    let _ = dump_capture(capture::Format::Pcap, &bytes, opts, false, &mut out);
                }
            }
            for cut in (0..capture.len()).step_by(1499) {
                run_capture(capture.get(..cut).unwrap_or_default());
            }
        }
    }

    #[test]
    fn garbage_tcp_payloads_never_panic_and_output_stays_bounded() {
        let mut rng = Rng(42);
        // The real capture with every TCP payload byte of one connection replaced, one
        // packet at a time: the v1 decoder, role detection and reassembly on garbage.
        for _ in 0..100 {
            let mut bytes = REAL.to_vec();
            let start = 24 + rng.below(REAL.len() - 24);
            let end = (start + rng.below(2000)).min(bytes.len());
            for b in bytes.get_mut(start..end).unwrap_or_default() {
                *b = rng.next() as u8;
            }
            let len = run_capture(&bytes);
            // One line per item at most every few bytes: nothing is printed in a loop.
            assert!(len < 64 * REAL.len(), "{len}");
        }
    }
}
