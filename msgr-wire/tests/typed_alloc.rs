//! Typed-message decoding under a counting allocator: a front that claims a huge length is
//! refused by both codecs without a big allocation (peer data must not size our buffers).
//!
//! The allocator records, per thread, the largest single allocation asked for, so tests running
//! in parallel do not see each other's.

// A `GlobalAlloc` is an `unsafe` trait: this test binary's allocator forwards to the system's.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use msgr_wire::typed::{decode_typed, decode_typed_with, Cbor, TypedMessage};
use msgr_wire::{Message, WireError};
use serde::{Deserialize, Serialize};

struct Counting;

thread_local! {
    /// The largest allocation (bytes) this thread asked for since the last `take_largest`.
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded unchanged to `System`; the bookkeeping touches only a
// const-initialised thread-local `Cell` (no allocation, no destructor).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: the caller's contract is passed on as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

fn note(size: usize) {
    let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
}

fn take_largest() -> usize {
    LARGEST.with(|l| l.replace(0))
}

#[global_allocator]
static ALLOC: Counting = Counting;

#[derive(Debug, Serialize, Deserialize)]
struct Note {
    n: u64,
    text: String,
    data: Vec<u64>,
}

impl TypedMessage for Note {
    const TYPE: u16 = 0x7002;
}

/// serde's own cap on what a sequence pre-allocates from its declared length (1 MiB); the
/// largest allocation a 20-byte front may cause, with some room for the decoders' own buffers.
const SMALL: usize = (1 << 20) + 64 * 1024;

/// Decodes `front` as a `Note` with `decode` and returns the error and the largest
/// allocation made while decoding.
fn decode_measured(
    front: Vec<u8>,
    decode: impl Fn(&Message) -> Result<Note, WireError>,
) -> (WireError, usize) {
    let msg = Message::new(Note::TYPE, front);
    take_largest();
    let res = decode(&msg);
    let largest = take_largest();
    match res {
        Ok(v) => panic!("decoded {v:?} from a short front"),
        Err(e) => (e, largest),
    }
}

#[test]
fn the_counting_allocator_sees_a_big_allocation() {
    take_largest();
    let v = vec![0u8; 8 << 20];
    assert!(take_largest() >= 8 << 20);
    drop(v);
}

/// bincode: `text` claims u64::MAX bytes, 1 GiB, then 100 MiB (varints 0xfd + 8 bytes,
/// 0xfc + 4 bytes); `data` claims 2^40 elements. The strings exceed the limit a short front
/// gets (64 KiB) and are refused before any allocation (the 100 MiB one was allocated under
/// a flat 128 MiB limit); the sequence's pre-allocation is capped by serde at 1 MiB.
#[test]
fn bincode_refuses_huge_claims_without_allocating_them() {
    let claims: [&[u8]; 4] = [
        &[
            7, 0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, b'x',
        ],
        &[7, 0xfc, 0x00, 0x00, 0x00, 0x40, b'x'],
        &[7, 0xfc, 0x00, 0x00, 0x40, 0x06, b'x'],
        // text "" then data: 2^40 elements, then one.
        &[7, 0, 0xfd, 0, 0, 0, 0, 0, 1, 0, 0, 1],
    ];
    for front in claims {
        let (err, largest) = decode_measured(front.to_vec(), decode_typed::<Note>);
        assert!(
            matches!(err, WireError::Payload { ty: 0x7002, .. }),
            "{err}"
        );
        assert!(largest <= SMALL, "{front:x?}: allocated {largest} bytes");
    }
}

/// CBOR: `text` claims 2^64-1 bytes, 1 GiB, then 100 MiB (text header 0x7b + 8 bytes, 0x7a +
/// 4 bytes); `data` claims 2^40 elements (array header 0x9b + 8 bytes). Strings are read in
/// 4 KiB chunks and arrays element by element, so only what the input holds is allocated.
#[test]
fn cbor_refuses_huge_claims_without_allocating_them() {
    // A map of 3 pairs; "n": 7; "text": <claim>, and for the third: "text": "", "data": <claim>.
    let mut head = vec![0xa3, 0x61, b'n', 0x07, 0x64];
    head.extend_from_slice(b"text");
    let mut text_max = head.clone();
    text_max.extend_from_slice(&[0x7b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, b'x']);
    let mut text_gib = head.clone();
    text_gib.extend_from_slice(&[0x7a, 0x40, 0x00, 0x00, 0x00, b'x']);
    let mut text_100m = head.clone();
    text_100m.extend_from_slice(&[0x7a, 0x06, 0x40, 0x00, 0x00, b'x']);
    let mut data = head;
    data.extend_from_slice(&[0x60, 0x64]);
    data.extend_from_slice(b"data");
    data.extend_from_slice(&[0x9b, 0, 0, 1, 0, 0, 0, 0, 0, 0x01]);
    for front in [text_max, text_gib, text_100m, data] {
        let (err, largest) =
            decode_measured(front.clone(), |m| decode_typed_with::<_, Note>(&Cbor, m));
        assert!(
            matches!(err, WireError::Payload { ty: 0x7002, .. }),
            "{err}"
        );
        assert!(largest <= SMALL, "{front:x?}: allocated {largest} bytes");
    }
}
