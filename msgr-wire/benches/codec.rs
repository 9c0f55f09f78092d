//! Encode and decode throughput of MSG frames with 64 B, 4 KiB and 4 MiB payloads.
//!
//! Small messages carry their payload in the front; the 4 MiB one in the data segment, as
//! a bulk write does. Both CRCs are on (the default), so decoding costs one CRC pass over
//! the payload and no copy. The `crc` group compares `msgr_wire::crc32c` with the `crc32c`
//! crate (Ceph's convention: no inversions) on the same buffers.
#![allow(missing_docs, clippy::unwrap_used)]

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use msgr_wire::{CrcFlags, EntityName, FooterKind, Frame, FrameDecoder, Limits, Message};

const SIZES: [(usize, &str); 3] = [(64, "64B"), (4096, "4KiB"), (4 << 20, "4MiB")];

fn message(size: usize) -> Message {
    let payload = Bytes::from((0..size).map(|i| i as u8).collect::<Vec<u8>>());
    if size >= 1 << 20 {
        Message::new(42, Bytes::from_static(b"hdr")).with_data(payload)
    } else {
        Message::new(42, payload)
    }
}

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode");
    for (size, name) in SIZES {
        let msg = message(size);
        group.throughput(Throughput::Bytes(size as u64));
        // seal (all CRCs) + head/footer arrays: what a vectored writer does per message.
        group.bench_with_input(BenchmarkId::new("seal+head", name), &msg, |b, msg| {
            let mut m = msg.clone();
            let mut seq = 0;
            b.iter(|| {
                seq += 1;
                m.seal(seq, EntityName::client(1), CrcFlags::default());
                (m.frame_head(), m.frame_footer(FooterKind::New))
            })
        });
        // seal + copy of the whole frame into one buffer.
        group.bench_with_input(BenchmarkId::new("seal+copy", name), &msg, |b, msg| {
            let mut m = msg.clone();
            let mut buf = BytesMut::with_capacity(m.wire_len(FooterKind::New));
            b.iter(|| {
                buf.clear();
                m.seal(1, EntityName::client(1), CrcFlags::default());
                m.encode_frame(FooterKind::New, &mut buf);
            })
        });
    }
    group.finish();
}

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    for (size, name) in SIZES {
        let mut msg = message(size);
        msg.seal(1, EntityName::client(1), CrcFlags::default());
        let mut wire = BytesMut::new();
        Frame::Msg(msg).encode(FooterKind::New, &mut wire);
        let wire = wire.freeze();
        group.throughput(Throughput::Bytes(size as u64));
        // Decode only: the input buffer is filled outside the timing (a socket read would
        // fill it); the decoder checks the header, slices the segments and runs the CRCs.
        group.bench_with_input(BenchmarkId::new("frame", name), &wire, |b, wire| {
            let mut dec =
                FrameDecoder::new(Limits::default(), FooterKind::New, CrcFlags::default());
            b.iter_batched(
                || BytesMut::from(&wire[..]),
                |mut buf| dec.decode(&mut buf).unwrap().unwrap(),
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

fn crc(c: &mut Criterion) {
    let mut group = c.benchmark_group("crc");
    let sizes: [(usize, &str); 10] = [
        (8, "8B"),
        (53, "53B"),
        (64, "64B"),
        (128, "128B"),
        (256, "256B"),
        (512, "512B"),
        (1024, "1KiB"),
        (4096, "4KiB"),
        (64 << 10, "64KiB"),
        (4 << 20, "4MiB"),
    ];
    for (size, name) in sizes {
        let data: Vec<u8> = (0..size).map(|i| (i * 7 + 3) as u8).collect();
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::new("crate", name), &data, |b, data| {
            b.iter(|| !crc32c::crc32c_append(!0u32, std::hint::black_box(data)))
        });
        group.bench_with_input(BenchmarkId::new("new", name), &data, |b, data| {
            b.iter(|| msgr_wire::crc32c(0, std::hint::black_box(data)))
        });
    }
    group.finish();
}

criterion_group!(benches, encode, decode, crc);
criterion_main!(benches);
