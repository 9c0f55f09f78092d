//! Arbitrary bytes, in an arbitrary chunking, into both sides' StreamDecoder and into the
//! FrameDecoder with both footer layouts. Nothing may panic; after an error, the decoder
//! must keep returning an error.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use msgr_wire::{CrcFlags, FooterKind, FrameDecoder, Limits, Side, StreamDecoder};

/// Small limits so that oversize lengths are exercised too.
fn limits(small: bool) -> Limits {
    if small {
        Limits {
            max_front: 4096,
            max_middle: 512,
            max_data: 65536,
            max_message: 70000,
            max_authorizer: 64,
        }
    } else {
        Limits::default()
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((&control, data)) = input.split_first() else {
        return;
    };
    let chunk = usize::from(control & 0x3f) + 1;
    let small = control & 0x40 != 0;
    let crc = if control & 0x80 != 0 {
        CrcFlags::default()
    } else {
        CrcFlags::NONE
    };

    for side in [Side::Connector, Side::Acceptor] {
        let mut dec = StreamDecoder::new(side, limits(small), crc);
        let mut buf = BytesMut::new();
        let mut failed = false;
        for piece in data.chunks(chunk) {
            buf.extend_from_slice(piece);
            loop {
                match dec.decode(&mut buf) {
                    Ok(Some(_)) => assert!(!failed),
                    Ok(None) => {
                        assert!(!failed);
                        break;
                    }
                    Err(_) => {
                        failed = true;
                        break;
                    }
                }
            }
        }
        while let Ok(Some(_)) = dec.decode_eof(&mut buf) {}
    }

    for kind in [FooterKind::New, FooterKind::Old] {
        let mut dec = FrameDecoder::new(limits(small), kind, crc);
        let mut buf = BytesMut::new();
        for piece in data.chunks(chunk) {
            buf.extend_from_slice(piece);
            while let Ok(Some(_)) = dec.decode(&mut buf) {
                let _ = dec.pending_header();
            }
        }
        while let Ok(Some(_)) = dec.decode_eof(&mut buf) {}
    }
});
