//! TCP connections of a capture: segments grouped by connection and direction, each
//! direction's bytes put back in sequence order.
//!
//! A connection is the unordered pair of endpoints; a SYN (without ACK) on a pair that
//! already carried data starts a new connection (the port was reused). A direction's stream
//! starts at its SYN's sequence number plus one, or, when the capture began after the SYN,
//! at the lowest sequence number seen (sequence numbers compared within 2^31 of the first, as
//! TCP does). Segments are laid by sequence number, whatever order they were captured in;
//! bytes seen twice (retransmissions, overlaps) are counted, and a retransmission that
//! differs from the first copy is counted apart (the first copy is kept). Bytes that no
//! segment carried (the capture missed packets, or the snap length cut them) end the
//! stream: what lies beyond the gap is counted, not used, since a msgr v1 stream cannot be
//! picked up in the middle. Memory is the payload captured plus a few words per segment:
//! nothing is sized by a sequence number.

use std::collections::HashMap;
use std::net::SocketAddr;

use super::packet::Segment;

/// One segment's payload as captured.
#[derive(Debug, Clone, Copy)]
struct Piece<'a> {
    seq: u32,
    packet: u64,
    data: &'a [u8],
}

/// The segments of one direction.
#[derive(Debug)]
pub struct Flow<'a> {
    /// Sender.
    pub src: SocketAddr,
    /// Receiver.
    pub dst: SocketAddr,
    /// The SYN's sequence number, if the capture has it.
    syn: Option<u32>,
    /// Whether this side sent the SYN without ACK (it connected).
    pub sent_syn: bool,
    pieces: Vec<Piece<'a>>,
    /// Packets of this direction (with or without payload).
    pub packets: u64,
}

impl<'a> Flow<'a> {
    fn new(src: SocketAddr, dst: SocketAddr) -> Self {
        Flow {
            src,
            dst,
            syn: None,
            sent_syn: false,
            pieces: Vec::new(),
            packets: 0,
        }
    }
}

/// Both directions of a TCP connection, as far as the capture shows them.
#[derive(Debug)]
pub struct Connection<'a> {
    /// The direction seen first.
    pub first: Flow<'a>,
    /// The other one (absent if the capture holds only one direction).
    pub second: Option<Flow<'a>>,
}

/// Where a direction's bytes stop before the end of what was captured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gap {
    /// Stream offset of the first missing byte.
    pub at: u64,
    /// Bytes missing before the next captured ones.
    pub missing: u64,
    /// Payload bytes captured beyond the gap (not decoded; retransmissions counted again).
    pub after: u64,
}

/// One direction's bytes in sequence order, and how they came.
#[derive(Debug, Default)]
pub struct Stream {
    /// The contiguous bytes from the stream's start to its end or its first gap.
    pub bytes: Vec<u8>,
    /// `(stream offset, packet number)` of each run of bytes, in offset order.
    chunks: Vec<(u64, u64)>,
    /// The first gap, if bytes are missing.
    pub gap: Option<Gap>,
    /// Bytes that came again (retransmissions, overlaps).
    pub retransmitted: u64,
    /// Retransmitted segments whose bytes differ from the first copy.
    pub conflicting: u64,
}

impl Stream {
    /// Number of the packet that carried the stream byte at `offset`.
    pub fn packet_at(&self, offset: u64) -> Option<u64> {
        let i = self.chunks.partition_point(|(start, _)| *start <= offset);
        i.checked_sub(1)
            .and_then(|i| self.chunks.get(i))
            .map(|(_, p)| *p)
    }
}

/// Groups segments into connections, in the order they first appear.
#[derive(Debug, Default)]
pub struct Connections<'a> {
    /// The connections.
    pub list: Vec<Connection<'a>>,
    by_pair: HashMap<(SocketAddr, SocketAddr), usize>,
}

impl<'a> Connections<'a> {
    /// Adds the segment of packet `packet`.
    pub fn add(&mut self, packet: u64, s: Segment<'a>) {
        let pair = if s.src <= s.dst {
            (s.src, s.dst)
        } else {
            (s.dst, s.src)
        };
        let fresh_syn = s.syn && !s.ack;
        let index = match self.by_pair.get(&pair) {
            Some(&i) if !(fresh_syn && self.carried_data(i)) => i,
            _ => {
                self.list.push(Connection {
                    first: Flow::new(s.src, s.dst),
                    second: None,
                });
                let i = self.list.len() - 1;
                self.by_pair.insert(pair, i);
                i
            }
        };
        let Some(conn) = self.list.get_mut(index) else {
            return;
        };
        let flow = if conn.first.src == s.src {
            &mut conn.first
        } else {
            conn.second.get_or_insert_with(|| Flow::new(s.src, s.dst))
        };
        flow.packets += 1;
        if s.syn {
            flow.syn = Some(s.seq);
            flow.sent_syn |= !s.ack;
        }
        if !s.payload.is_empty() {
            // A SYN's payload (TCP Fast Open) starts after the SYN's own sequence number.
            let seq = if s.syn { s.seq.wrapping_add(1) } else { s.seq };
            flow.pieces.push(Piece {
                seq,
                packet,
                data: s.payload,
            });
        }
    }

    fn carried_data(&self, i: usize) -> bool {
        self.list.get(i).is_some_and(|c| {
            !c.first.pieces.is_empty() || c.second.as_ref().is_some_and(|f| !f.pieces.is_empty())
        })
    }
}

/// Puts a direction's segments back in order.
pub fn reassemble(flow: &Flow<'_>) -> Stream {
    let Some(reference) = flow
        .syn
        .map(|s| s.wrapping_add(1))
        .or_else(|| flow.pieces.first().map(|p| p.seq))
    else {
        return Stream::default();
    };
    // Offsets relative to the reference, within +-2^31 as TCP compares sequence numbers.
    let rel = |seq: u32| i64::from(seq.wrapping_sub(reference) as i32);
    let base = if flow.syn.is_some() {
        0
    } else {
        flow.pieces.iter().map(|p| rel(p.seq)).min().unwrap_or(0)
    };
    let mut pieces: Vec<(i64, &Piece<'_>)> =
        flow.pieces.iter().map(|p| (rel(p.seq) - base, p)).collect();
    pieces.sort_by_key(|(start, p)| (*start, p.packet));
    let mut out = Stream::default();
    let mut next: i64 = 0;
    for (i, (start, piece)) in pieces.iter().enumerate() {
        let len = piece.data.len() as i64;
        let end = start + len;
        if *start > next {
            let after = pieces
                .get(i..)
                .unwrap_or_default()
                .iter()
                .map(|(_, p)| p.data.len() as u64)
                .sum();
            out.gap = Some(Gap {
                at: next as u64,
                missing: (start - next) as u64,
                after,
            });
            break;
        }
        // The part of this segment already laid (from `start` to `next`).
        let overlap = (next - start).min(len);
        if overlap > 0 {
            out.retransmitted += overlap as u64;
            let from = usize::try_from(*start).unwrap_or(usize::MAX);
            let overlap_len = usize::try_from(overlap).unwrap_or(0);
            let laid = out.bytes.get(from..from.saturating_add(overlap_len));
            if laid != piece.data.get(..overlap_len) {
                out.conflicting += 1;
            }
        }
        if end > next {
            let fresh = piece
                .data
                .get(usize::try_from(overlap).unwrap_or(0)..)
                .unwrap_or_default();
            out.chunks.push((next as u64, piece.packet));
            out.bytes.extend_from_slice(fresh);
            next = end;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(src: &str, dst: &str, seq: u32, syn: bool, payload: &'static [u8]) -> Segment<'static> {
        Segment {
            src: src.parse().expect("addr"),
            dst: dst.parse().expect("addr"),
            seq,
            syn,
            ack: !syn,
            payload,
        }
    }

    const A: &str = "127.0.0.1:40000";
    const B: &str = "127.0.0.1:6789";

    #[test]
    fn out_of_order_and_retransmitted_segments_are_put_back() {
        let mut c = Connections::default();
        // SYN at 1000: data starts at 1001. Captured: "de", "abc" twice, "f", wrong "ab".
        c.add(1, seg(A, B, 1000, true, b""));
        c.add(2, seg(A, B, 1004, false, b"de"));
        c.add(3, seg(A, B, 1001, false, b"abc"));
        c.add(4, seg(A, B, 1001, false, b"abc"));
        c.add(5, seg(A, B, 1006, false, b"f"));
        c.add(6, seg(A, B, 1001, false, b"XY"));
        c.add(7, seg(B, A, 5000, false, b"hi"));
        assert_eq!(c.list.len(), 1);
        let conn = c.list.first().expect("one connection");
        assert!(conn.first.sent_syn);
        let s = reassemble(&conn.first);
        assert_eq!(s.bytes, b"abcdef");
        assert_eq!(s.gap, None);
        assert_eq!((s.retransmitted, s.conflicting), (5, 1));
        assert_eq!(
            (0..6).map(|o| s.packet_at(o)).collect::<Vec<_>>(),
            [3, 3, 3, 2, 2, 5].map(Some)
        );
        let back = reassemble(conn.second.as_ref().expect("reverse direction"));
        assert_eq!(back.bytes, b"hi");
    }

    #[test]
    fn a_missing_segment_is_a_gap_and_sequence_numbers_wrap() {
        let mut c = Connections::default();
        // No SYN: the stream starts at the lowest sequence number, across the wrap.
        c.add(1, seg(A, B, 2, false, b"cd"));
        c.add(2, seg(A, B, u32::MAX - 1, false, b"ab"));
        c.add(3, seg(A, B, 10, false, b"xyz"));
        let s = reassemble(&c.list.first().expect("connection").first);
        assert_eq!(s.bytes, b"ab");
        // "ab" covers MAX-1 and MAX; 0 and 1 were never captured.
        assert_eq!(
            s.gap,
            Some(Gap {
                at: 2,
                missing: 2,
                after: 5
            })
        );
    }

    #[test]
    fn a_new_syn_after_data_is_a_new_connection() {
        let mut c = Connections::default();
        c.add(1, seg(A, B, 1, true, b""));
        c.add(2, seg(A, B, 2, false, b"one"));
        c.add(3, seg(A, B, 900, true, b""));
        c.add(4, seg(A, B, 901, false, b"two"));
        assert_eq!(c.list.len(), 2);
        let bytes: Vec<Vec<u8>> = c.list.iter().map(|c| reassemble(&c.first).bytes).collect();
        assert_eq!(bytes, [b"one".to_vec(), b"two".to_vec()]);
    }
}
