//! Arbitrary bytes into the msgr2.1 frame decoder (`msgr_pipe::v2::frame`), after an optional
//! valid banner, in crc mode or in secure mode (first byte's bits), fed in chunks; then the
//! decoded frames re-encoded and decoded again. The same chunks also go through a second decoder
//! by `Decoder::decode_with` (the session reader's path, with its fixed-offset fast path for small
//! crc-mode frames), which must give the same frames and fail where `decode` fails. No runtime.
//! Nothing may panic, and nothing is allocated beyond what the input holds plus the limits.
#![no_main]

use bytes::{Bytes, BytesMut};
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
    let mut fast = Decoder::new(limits);
    let secure = control & 2 != 0;
    if secure {
        dec.secure(Gcm::new(&[7; 16], &[3; 12]));
        fast.secure(Gcm::new(&[7; 16], &[3; 12]));
    }
    let mut buf = BytesMut::new();
    let mut fast_buf = BytesMut::new();
    let mut fast_frames = Vec::new();
    let mut banner = false;
    let mut frames = Vec::new();
    let step = usize::from(control >> 2) + 1;
    for chunk in stream.chunks(step) {
        buf.extend_from_slice(chunk);
        // Both decoders see the same bytes after the banner: all of `buf` once the banner is
        // taken from it, then each new chunk.
        if !banner {
            match Banner::decode(&mut buf) {
                Ok(Some(_)) => {
                    banner = true;
                    fast_buf.extend_from_slice(&buf);
                }
                Ok(None) => continue,
                Err(_) => return,
            }
        } else {
            fast_buf.extend_from_slice(chunk);
        }
        let failed = loop {
            match dec.decode(&mut buf) {
                Ok(Some(f)) => frames.push(f),
                Ok(None) => break false,
                Err(_) => break true,
            }
        };
        let fast_failed = loop {
            let got = fast.decode_with(&mut fast_buf, |tag, seg0, rest| {
                (tag, Bytes::copy_from_slice(seg0), rest)
            });
            match got {
                Ok(Some(f)) => fast_frames.push(f),
                Ok(None) => break false,
                Err(_) => break true,
            }
        };
        assert_eq!(failed, fast_failed, "decode and decode_with disagree on an error");
        assert_eq!(frames.len(), fast_frames.len());
        if failed {
            return;
        }
        // What `decode` left is what `decode_with` left (neither takes part of a frame).
        assert_eq!(buf, fast_buf);
    }
    for (f, (tag, seg0, rest)) in frames.iter().zip(&fast_frames) {
        assert_eq!(f.tag, *tag);
        assert_eq!(f.segments.first(), Some(seg0));
        for (i, seg) in rest.iter().enumerate() {
            let want = f.segments.get(i + 1).cloned().unwrap_or_default();
            assert_eq!(&want, seg, "segment {} differs", i + 1);
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
