//! The reader's receive buffer, and the buffers it gave up that received messages still
//! hold.
//!
//! Decoded segments are slices of the buffer they were read into (while the host consumes
//! messages on the reader's thread, those of a payload of at most
//! [`msgr_wire::SMALL_PAYLOAD`] bytes are copied out), so a buffer cannot be reused in
//! place while a message sharing it is alive (an echo waiting in the sent list
//! for its ACK, a message in the dispatch queue). The reader then needs a new buffer; the
//! old one used to be freed once its last message went, and glibc gave that memory back to
//! the system, so every new buffer's pages faulted in again (perf, a depth-128 round trip:
//! 69 % of msgr's page faults in `recvfrom` into a fresh buffer). [`ReadBuf`] keeps the
//! buffers it gave up, oldest first, and takes the oldest back once no message holds it.
//! Every new buffer comes from here: the reader reserves a message body's room through
//! [`ReadBuf::reserve`] (its decoders are told to reserve nothing themselves: v1's
//! `FrameDecoder::leave_reserving_to_caller`, msgr2's `v2::frame::Decoder::leave_reserving_to_caller`,
//! whose `pending_len` says what a frame that does not fit needs). Until msgr2's decoder grew
//! its buffer itself, each such buffer was a fresh allocation, not kept: a 4 KiB msgr2 crc
//! echo at depth 128 over 4 connections spent its time in page faults and TLB shootdowns
//! (`recvfrom` into never-touched pages, `munmap`s) and ran at 0.58-0.61 of raw TCP's rate.
//!
//! What that holds: at most [`KEPT`] buffers, about the largest window of received bytes
//! the session had held at once (each buffer is kept when it is given up while held, and
//! taken back when free). A socket that goes quiet lets them go when its timer fires (the
//! delayed ACK, 2 ms, if an ACK is owed; else the read timeout): until then a session quiet
//! after a burst keeps up to 2 MiB it no longer uses.
//!
//! Not here: how much a read takes, the decoders, the throttles (the reader).

use std::collections::VecDeque;

use bytes::BytesMut;

/// Bytes reserved for each read when no large body is pending.
///
/// 128 KiB, not 64: at depth 128 over 4 connections with 4 KiB messages the socket often
/// holds more than 64 KiB when the reader comes back to it, and a read that takes it all
/// halves the reads per message (0.143 -> 0.076 `recvfrom` per round trip) and, the replies of
/// a read going out in one write, the writes too: 0.60-0.69 -> 0.69-0.76 of raw TCP's rate in
/// twelve alternating runs of each (PERFORMANCE.md, the night of 2026-12-07). 256 KiB
/// measured no better (0.63-0.72).
pub(super) const READ_CHUNK: usize = 128 * 1024;

/// Buffers kept for reuse at most: 16 of [`READ_CHUNK`] (2 MiB) cover a depth-128 window
/// of 4 KiB messages on both ends of a connection with their ACK delay (about 30 messages
/// per buffer). Past that, the oldest is let go (it is freed when its last message is).
const KEPT: usize = 16;

/// Largest buffer kept for reuse: a chunk and a partial frame's leftover (a large body's
/// buffer is let go with its message).
const KEEP_MAX: usize = 2 * READ_CHUNK;

/// The receive buffer and the buffers kept for reuse.
pub(super) struct ReadBuf {
    /// Bytes read and not yet decoded, and room for the next read.
    pub buf: BytesMut,
    /// Where the allocation `buf` reads into ends, if it is one this reader made or took
    /// back and at most [`KEEP_MAX`] bytes: only those are kept, not one a decoder grew
    /// for a large frame (what else could shift its end: it is checked again when the
    /// buffer is given up).
    ends_at: Option<usize>,
    /// Buffers given up, oldest first.
    pub kept: Kept,
}

/// Buffers a [`ReadBuf`] gave up, oldest first, each emptied (a field of its own, so they
/// can be let go while a read borrows the buffer).
#[derive(Default)]
pub(super) struct Kept(VecDeque<BytesMut>);

impl Kept {
    /// Lets the kept buffers go (the socket went quiet: an idle session holds only the
    /// buffer it reads into).
    pub(super) fn release(&mut self) {
        self.0 = VecDeque::new();
    }
}

impl ReadBuf {
    /// A reader's buffer, starting with `buf` (bytes already read, or an empty buffer).
    pub(super) fn new(buf: BytesMut) -> ReadBuf {
        ReadBuf {
            ends_at: (buf.capacity() <= KEEP_MAX).then(|| end_of(&buf)),
            buf,
            kept: Kept::default(),
        }
    }

    /// Makes room for the next read. A buffer that still has room is read into while it
    /// has any and holds much of a frame (a body reserved whole): growing it would copy
    /// every byte read so far; one that holds little but has under 4 KiB of room, or none,
    /// gets at least half a chunk's room (see [`room_for`](Self::room_for)).
    pub(super) fn make_room(&mut self) {
        let len = self.buf.len();
        let room = self.buf.capacity() - len;
        if room != 0 && (room >= 4096 || len >= READ_CHUNK) {
            return;
        }
        self.room_for(READ_CHUNK / 2, READ_CHUNK);
    }

    /// Room for `additional` more bytes (the rest of a message body, reserved whole).
    pub(super) fn reserve(&mut self, additional: usize) {
        self.room_for(additional, additional);
    }

    /// Room for at least `additional` more bytes: in the buffer itself if no message holds
    /// it any more (what is left moves to its front), else in the oldest kept buffer no
    /// message holds, else in a new buffer with room for `fresh` bytes (at least a chunk).
    fn room_for(&mut self, additional: usize, fresh: usize) {
        if self.buf.try_reclaim(additional) {
            return;
        }
        let len = self.buf.len();
        let next = self
            .reusable(len.saturating_add(additional))
            .unwrap_or_else(|| BytesMut::with_capacity(len.saturating_add(fresh).max(READ_CHUNK)));
        self.swap_in(next);
    }

    /// The oldest kept buffer, if no message holds it any more and it has room for `want`
    /// bytes.
    fn reusable(&mut self, want: usize) -> Option<BytesMut> {
        let oldest = self.kept.0.front_mut()?;
        if !oldest.try_reclaim(want) {
            return None;
        }
        self.kept.0.pop_front()
    }

    /// Reads on into `next`: the undecoded bytes move into it, and the buffer given up
    /// is kept if it is one of ours.
    fn swap_in(&mut self, mut next: BytesMut) {
        next.extend_from_slice(&self.buf);
        let ends_at = (next.capacity() <= KEEP_MAX).then(|| end_of(&next));
        let mut old = std::mem::replace(&mut self.buf, next);
        let ours = self.ends_at.is_some_and(|e| e == end_of(&old));
        self.ends_at = ends_at;
        if !ours {
            return;
        }
        old.clear();
        if self.kept.0.len() == KEPT {
            self.kept.0.pop_front();
        }
        self.kept.0.push_back(old);
    }

    /// Buffers kept for reuse (for tests).
    #[cfg(test)]
    fn kept(&self) -> usize {
        self.kept.0.len()
    }
}

/// The address where `b`'s room ends: the end of the allocation it reads into.
fn end_of(b: &BytesMut) -> usize {
    (b.as_ptr() as usize).wrapping_add(b.capacity())
}

#[cfg(test)]
mod tests {
    use bytes::{BufMut, Bytes};

    use super::*;

    /// Fills `rb` up to `room` bytes of room left, handing everything read out as held
    /// "messages", as the decoder does with its segments.
    fn fill(rb: &mut ReadBuf, leave: usize, held: &mut Vec<Bytes>) {
        let n = rb.buf.capacity() - rb.buf.len() - leave;
        rb.buf.put_bytes(7, n);
        held.push(rb.buf.split().freeze());
    }

    #[test]
    fn a_buffer_no_message_holds_is_taken_back_without_allocating() {
        let mut rb = ReadBuf::new(BytesMut::with_capacity(READ_CHUNK));
        let mut held = Vec::new();
        fill(&mut rb, 100, &mut held);
        let first = held[0].as_ptr();
        rb.make_room();
        assert_ne!(rb.buf.as_ptr(), first, "held: a new buffer");
        assert_eq!(rb.kept(), 1);
        fill(&mut rb, 100, &mut held);
        held.clear();
        rb.make_room();
        // The current buffer is free again too, and is reclaimed in place first.
        assert_eq!(rb.kept(), 1);
        assert!(rb.buf.capacity() >= READ_CHUNK);
        // Now the current one is held and the kept one is free: the kept one comes back.
        fill(&mut rb, 100, &mut held);
        rb.buf.put_slice(b"partial");
        rb.make_room();
        assert_eq!(rb.buf.as_ptr(), first, "the first buffer, taken back");
        assert_eq!(&rb.buf[..], b"partial", "the undecoded bytes moved with it");
        assert_eq!(rb.kept(), 1, "the held one is kept in its place");
    }

    #[test]
    fn held_buffers_are_not_reused_and_at_most_kept_are_kept() {
        let mut rb = ReadBuf::new(BytesMut::with_capacity(READ_CHUNK));
        let mut held = Vec::new();
        let mut seen = Vec::new();
        for _ in 0..(KEPT + 8) {
            fill(&mut rb, 0, &mut held);
            seen.push(rb.buf.as_ptr() as usize);
            rb.make_room();
            assert!(rb.buf.capacity() - rb.buf.len() >= READ_CHUNK);
            assert!(rb.kept() <= KEPT);
        }
        assert_eq!(rb.kept(), KEPT);
        // Every message is alive: no two reads went into the same memory.
        let mut spans: Vec<(usize, usize)> = held
            .iter()
            .map(|b| (b.as_ptr() as usize, b.len()))
            .collect();
        spans.sort_unstable();
        for w in spans.windows(2) {
            assert!(w[0].0 + w[0].1 <= w[1].0, "two held messages overlap");
        }
        held.clear();
        rb.kept.release();
        assert_eq!(rb.kept(), 0);
    }

    #[test]
    fn a_buffer_grown_for_a_large_frame_is_not_kept() {
        let mut rb = ReadBuf::new(BytesMut::with_capacity(READ_CHUNK));
        let mut held = Vec::new();
        fill(&mut rb, 10, &mut held);
        // The reader reserves a 4 MiB body whole: the chunk is kept, the body's buffer
        // is not.
        rb.reserve(4 << 20);
        assert_eq!(rb.kept(), 1);
        fill(&mut rb, 0, &mut held);
        rb.make_room();
        assert_eq!(rb.kept(), 1, "the 4 MiB buffer is let go");
        // A decoder that grows the buffer itself: not ours either.
        rb.buf.reserve(1 << 20);
        fill(&mut rb, 0, &mut held);
        rb.make_room();
        assert_eq!(rb.kept(), 1, "the decoder's buffer is let go");
        assert!(rb.buf.capacity() >= READ_CHUNK);
        fill(&mut rb, 0, &mut held);
        rb.make_room();
        assert_eq!(rb.kept(), 2, "a chunk of ours is kept");
    }
}
