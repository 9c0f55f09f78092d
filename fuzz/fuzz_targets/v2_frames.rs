//! Arbitrary bytes into the msgr2.1 frame decoder (`msgr_pipe::v2::frame`), after an optional
//! valid banner, in crc mode or in secure mode (first byte's bits), fed in chunks; then the
//! decoded frames re-encoded and decoded again. No runtime. Nothing may panic, and nothing is
//! allocated beyond what the input holds plus the limits.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use msgr_pipe::v2::frame::{Banner, Decoder, Encoder, FrameLimits, Gcm};

fuzz_target!(|input: &[u8]| {
    let Some((&control, data)) = input.split_first() else {
        return;
    };
    let limits = FrameLimits {
        max_control: 1 << 16,
        max_segment: 1 << 20,
        max_message: 2 << 20,
    };
    let mut stream = BytesMut::new();
    if control & 1 != 0 {
        Banner::OURS.encode(&mut stream);
    }
    stream.extend_from_slice(data);
    let mut dec = Decoder::new(limits);
    let secure = control & 2 != 0;
    if secure {
        dec.secure(Gcm::new(&[7; 16], &[3; 12]));
    }
    let mut buf = BytesMut::new();
    let mut banner = false;
    let mut frames = Vec::new();
    let step = usize::from(control >> 2) + 1;
    for chunk in stream.chunks(step) {
        buf.extend_from_slice(chunk);
        if !banner {
            match Banner::decode(&mut buf) {
                Ok(Some(_)) => banner = true,
                Ok(None) => continue,
                Err(_) => return,
            }
        }
        loop {
            match dec.decode(&mut buf) {
                Ok(Some(f)) => frames.push(f),
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
    // What decoded re-encodes and decodes to the same frames.
    let mut enc = Encoder::default();
    let mut again = Decoder::new(limits);
    if secure {
        enc.secure(Gcm::new(&[9; 16], &[4; 12]));
        again.secure(Gcm::new(&[9; 16], &[4; 12]));
    }
    let mut wire = BytesMut::new();
    for f in &frames {
        enc.encode(f, &mut wire);
    }
    for f in &frames {
        let g = again.decode(&mut wire).ok().flatten();
        assert_eq!(g.as_ref(), Some(f));
    }
});
