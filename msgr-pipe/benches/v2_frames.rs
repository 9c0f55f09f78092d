//! msgr2 MESSAGE frames encoded and decoded in crc mode and in secure mode (AES-128-GCM), at
//! 64 B, 4 KiB and 4 MiB: the codec's share of a msgr2 session's cost per message, and what
//! secure mode's cipher costs beside crc mode's CRC-32C on the same bytes.
//!
//! Encoding is the writer's path (`Encoder::encode_message`, large segments chained uncopied
//! in crc mode, sealed into the staging buffer in secure mode); decoding is one whole frame
//! through `Decoder::decode_parts` with a fresh decoder, and, for a crc-mode stream of like 64 B
//! messages, the reader's path (`Decoder::decode_with`, each repeated preamble checked once)
//! beside `decode_parts` on the same stream. Not here: sockets, the session core.
#![allow(missing_docs, clippy::unwrap_used)]

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use msgr_pipe::v2::frame::{Decoder, Encoder, FrameLimits, Gcm};

const SIZES: [(usize, &str); 3] = [(64, "64B"), (4096, "4KiB"), (4 << 20, "4MiB")];
/// `ceph_msg_header2`'s length.
const HEAD: [u8; 41] = [7; 41];
const KEY: [u8; 16] = [0x42; 16];
const NONCE: [u8; 12] = [9; 12];

fn segments(size: usize) -> [Bytes; 3] {
    let payload = Bytes::from((0..size).map(|i| i as u8).collect::<Vec<u8>>());
    if size >= 1 << 20 {
        [Bytes::from_static(b"hdr"), Bytes::new(), payload]
    } else {
        [payload, Bytes::new(), Bytes::new()]
    }
}

fn encoder(secure: bool) -> Encoder {
    let mut e = Encoder::default();
    if secure {
        e.secure(Gcm::new(&KEY, &NONCE));
    }
    e
}

fn decoder(secure: bool) -> Decoder {
    let mut d = Decoder::new(FrameLimits::default());
    if secure {
        d.secure(Gcm::new(&KEY, &NONCE));
    }
    d
}

/// One frame's bytes as the wire carries them.
fn wire(secure: bool, segs: &[Bytes; 3]) -> Bytes {
    let (mut stage, mut chain) = (BytesMut::new(), VecDeque::new());
    let [a, b, c] = segs;
    encoder(secure).encode_message(&HEAD, [a, b, c], [None; 3], &mut stage, &mut chain, 8192);
    let mut all = BytesMut::new();
    for part in chain {
        all.extend_from_slice(&part);
    }
    all.extend_from_slice(&stage);
    all.freeze()
}

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("msgr2 encode");
    for (size, name) in SIZES {
        let segs = segments(size);
        group.throughput(Throughput::Bytes(size as u64));
        for (mode, secure) in [("crc", false), ("secure", true)] {
            let mut enc = encoder(secure);
            let (mut stage, mut chain) = (BytesMut::new(), VecDeque::new());
            group.bench_function(BenchmarkId::new(mode, name), |b| {
                b.iter(|| {
                    let [s0, s1, s2] = &segs;
                    enc.encode_message(
                        &HEAD,
                        [s0, s1, s2],
                        [None; 3],
                        &mut stage,
                        &mut chain,
                        8192,
                    );
                    chain.clear();
                    stage.clear();
                })
            });
        }
    }
    group.finish();
}

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("msgr2 decode");
    for (size, name) in SIZES {
        let segs = segments(size);
        group.throughput(Throughput::Bytes(size as u64));
        for (mode, secure) in [("crc", false), ("secure", true)] {
            // Secure frames are sealed under consecutive nonces: each iteration decodes
            // the frame a fresh encoder sealed first, with a fresh decoder.
            let frame = wire(secure, &segs);
            group.bench_function(BenchmarkId::new(mode, name), |b| {
                b.iter_batched(
                    || (decoder(secure), BytesMut::from(&frame[..])),
                    |(mut dec, mut buf)| {
                        let parts = dec.decode_parts(&mut buf).unwrap().unwrap();
                        assert_eq!(parts.count(), if size >= 1 << 20 { 4 } else { 2 });
                        parts
                    },
                    criterion::BatchSize::LargeInput,
                )
            });
        }
    }
    group.finish();
}

/// A crc-mode stream of `STREAM` like 64 B messages in one buffer, decoded frame by frame as
/// the reader does (`decode_with`, straight into the caller's closure) and through `Parts`
/// (`decode_parts`); the throughput is in messages.
fn decode_stream(c: &mut Criterion) {
    const STREAM: usize = 1000;
    let segs = segments(64);
    let (mut enc, mut stage, mut chain) = (encoder(false), BytesMut::new(), VecDeque::new());
    for _ in 0..STREAM {
        let [a, b, c] = &segs;
        enc.encode_message(&HEAD, [a, b, c], [None; 3], &mut stage, &mut chain, 8192);
    }
    assert!(chain.is_empty(), "64 B segments are staged");
    let stream = stage.freeze();
    let want = STREAM * (HEAD.len() + 64);
    let mut group = c.benchmark_group("msgr2 decode stream 64B");
    group.throughput(Throughput::Elements(STREAM as u64));
    group.bench_function("crc decode_with", |b| {
        b.iter_batched(
            || (decoder(false), BytesMut::from(&stream[..])),
            |(mut dec, mut buf)| {
                let mut got = 0;
                while let Some(n) = dec
                    .decode_with(&mut buf, |_, head, [front, _, _]| head.len() + front.len())
                    .unwrap()
                {
                    got += n;
                }
                assert_eq!(got, want);
            },
            criterion::BatchSize::LargeInput,
        )
    });
    group.bench_function("crc decode_parts", |b| {
        b.iter_batched(
            || (decoder(false), BytesMut::from(&stream[..])),
            |(mut dec, mut buf)| {
                let mut got = 0;
                while let Some(p) = dec.decode_parts(&mut buf).unwrap() {
                    got += p.segment(0).len() + p.segment(1).len();
                }
                assert_eq!(got, want);
            },
            criterion::BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, encode, decode, decode_stream);
criterion_main!(benches);
