//! What a v1 message signature costs: signing in both formats, and a CEPHX_V2 check.

#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, Criterion};
use msgr_auth::signature::{MessageSigner, SignatureFormat, SignedFields};
use msgr_auth::CryptoKey;
use std::hint::black_box;

fn sign(c: &mut Criterion) {
    let f = SignedFields {
        header_crc: 1,
        front_crc: 2,
        front_len: 4096,
        seq: 9,
        ..Default::default()
    };
    for (name, format) in [
        ("sign_cephx_v2", SignatureFormat::CephxV2),
        ("sign_legacy", SignatureFormat::Legacy),
    ] {
        let s = MessageSigner::new(CryptoKey::aes([7; 16]), format);
        c.bench_function(name, |b| b.iter(|| s.sign(black_box(&f))));
    }
    let s = MessageSigner::new(CryptoKey::aes([7; 16]), SignatureFormat::CephxV2);
    let sig = s.sign(&f).unwrap_or_default();
    c.bench_function("check_cephx_v2", |b| {
        b.iter(|| s.check(black_box(&f), black_box(sig)))
    });
}

criterion_group!(benches, sign);
criterion_main!(benches);
