//! What every benchmark message carries, and how the receiver checks it.
//!
//! A raw-TCP message of `size` bytes starts with a 16-byte bench header, then filler (a msgr
//! message carries the same sequence number in its Ceph header's `tid`, its filler as data,
//! and the client keeps the send times):
//!
//! ```text
//! 0        8              16                      size
//! +--------+--------------+-----------------------+
//! | seq LE | stamp ns LE  | filler                |
//! +--------+--------------+-----------------------+
//! ```
//!
//! `seq` counts from 0 on each connection; `stamp` is the send time in nanoseconds since the run's
//! epoch, so a round trip is measured from the echoed bytes alone, with no shared state between
//! the sending and the receiving task. The filler is zero, or with `--verify` a pattern derived
//! from `seq` so that a byte that moved, or a payload delivered to the wrong sequence number, is
//! caught.

use std::collections::BTreeSet;

use serde::Serialize;

/// Bytes of the bench header at the start of every message.
pub const HEADER_LEN: usize = 16;

/// Writes the bench header into the first [`HEADER_LEN`] bytes of `buf`.
pub fn put_header(buf: &mut [u8], seq: u64, stamp_ns: u64) {
    buf[..8].copy_from_slice(&seq.to_le_bytes());
    buf[8..HEADER_LEN].copy_from_slice(&stamp_ns.to_le_bytes());
}

/// Reads `(seq, stamp_ns)` from a message, or `None` when it is shorter than the header.
pub fn header(buf: &[u8]) -> Option<(u64, u64)> {
    let seq = u64::from_le_bytes(buf.get(..8)?.try_into().ok()?);
    let stamp = u64::from_le_bytes(buf.get(8..HEADER_LEN)?.try_into().ok()?);
    Some((seq, stamp))
}

/// The verification byte at `offset` of the message numbered `seq`.
fn pattern_byte(seq: u64, offset: usize) -> u8 {
    (seq.wrapping_mul(0x9e37_79b9) as u8) ^ (offset as u8).wrapping_mul(31)
}

/// Fills `buf` (the bytes after the header) with the verification pattern of `seq`.
pub fn fill(buf: &mut [u8], seq: u64) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b = pattern_byte(seq, i + HEADER_LEN);
    }
}

/// Whether `filler` (the bytes after the header) holds the verification pattern of `seq`.
pub fn check(filler: &[u8], seq: u64) -> bool {
    filler
        .iter()
        .enumerate()
        .all(|(i, &b)| b == pattern_byte(seq, i + HEADER_LEN))
}

/// Delivery faults counted over a run.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Integrity {
    /// Messages sent and never received.
    pub lost: u64,
    /// Messages received more than once.
    pub duplicated: u64,
    /// Messages received after a later one of the same connection.
    pub reordered: u64,
    /// Messages whose bytes failed `--verify`, or too short to carry the bench header.
    pub corrupted: u64,
}

impl Integrity {
    /// Adds another count to this one.
    pub fn add(&mut self, other: Integrity) {
        self.lost += other.lost;
        self.duplicated += other.duplicated;
        self.reordered += other.reordered;
        self.corrupted += other.corrupted;
    }

    /// Whether nothing went wrong.
    pub fn is_clean(&self) -> bool {
        *self == Integrity::default()
    }
}

/// Gaps wider than this are counted as lost at once instead of remembered one by one.
const MAX_TRACKED_GAP: u64 = 1 << 20;

/// Follows the sequence numbers received on one connection.
///
/// A gap is remembered as missing numbers; a missing number that turns up later is a reordering,
/// a number already seen is a duplicate, and whatever is still missing when the sender says how
/// many it sent is lost.
#[derive(Debug, Default, Clone)]
pub struct SeqTracker {
    next: u64,
    missing: BTreeSet<u64>,
    lost_untracked: u64,
    received: u64,
    integrity: Integrity,
}

impl SeqTracker {
    /// Records one received sequence number. The next expected number (every message of a
    /// lossless run) is counted inline; the rest out of line: the out-of-line call was 23
    /// instructions per message of the server's accounting (callgrind).
    #[inline]
    pub fn observe(&mut self, seq: u64) {
        self.received += 1;
        if seq == self.next {
            self.next += 1;
        } else {
            self.observe_unexpected(seq);
        }
    }

    /// [`observe`](Self::observe) of a number that is not the next expected: a gap, a
    /// reordering or a duplicate.
    #[cold]
    #[inline(never)]
    fn observe_unexpected(&mut self, seq: u64) {
        if seq > self.next {
            let gap = seq - self.next;
            if gap > MAX_TRACKED_GAP {
                self.lost_untracked += gap;
            } else {
                self.missing.extend(self.next..seq);
            }
            self.next = seq + 1;
        } else if self.missing.remove(&seq) {
            self.integrity.reordered += 1;
        } else {
            self.integrity.duplicated += 1;
        }
    }

    /// Records a message whose bytes were wrong.
    pub fn corrupted(&mut self) {
        self.integrity.corrupted += 1;
    }

    /// Messages received so far, duplicates included.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// The counts, once the sender has said it sent `sent` messages.
    pub fn finish(&self, sent: u64) -> Integrity {
        let mut integrity = self.integrity;
        integrity.lost =
            self.missing.len() as u64 + self.lost_untracked + sent.saturating_sub(self.next);
        integrity
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip() {
        let mut buf = [0u8; 64];
        put_header(&mut buf, 7, 123_456);
        assert_eq!(header(&buf), Some((7, 123_456)));
        assert_eq!(header(&buf[..10]), None);
    }

    #[test]
    fn pattern_checks() {
        let mut buf = vec![0u8; 100];
        fill(&mut buf, 42);
        assert!(check(&buf, 42));
        assert!(!check(&buf, 43));
        buf[50] ^= 1;
        assert!(!check(&buf, 42));
    }

    #[test]
    fn in_order_is_clean() {
        let mut t = SeqTracker::default();
        (0..10).for_each(|s| t.observe(s));
        assert!(t.finish(10).is_clean());
        assert_eq!(t.finish(12).lost, 2);
    }

    #[test]
    fn counts_reorder_duplicate_and_loss() {
        let mut t = SeqTracker::default();
        for s in [0, 2, 1, 1, 4, 5] {
            t.observe(s);
        }
        let i = t.finish(7);
        assert_eq!(i.reordered, 1);
        assert_eq!(i.duplicated, 1);
        assert_eq!(i.lost, 2, "3 never came, nor 6");
        assert_eq!(t.received(), 6);
    }
}
