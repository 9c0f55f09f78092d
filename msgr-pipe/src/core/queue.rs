//! The out queues of a session: one FIFO per priority, and the messages they hold.
//!
//! Not here: sequence numbers and the sent list (the session core assigns and keeps them).

use std::collections::VecDeque;

use msgr_dispatch::ThrottlePermit;
use msgr_wire::Message;

/// A message waiting to be sent or acknowledged.
#[derive(Debug)]
pub struct Outgoing {
    /// The message (sealed once sent).
    pub msg: Message,
    /// The sender's `max_pending_bytes` permit, released when the message is acked (lossless),
    /// written (lossy) or discarded.
    pub permit: Option<ThrottlePermit>,
    /// The seq it was sent with; 0 if never sent.
    pub seq: u64,
    /// Its segment lengths and CRCs were computed when it was queued
    /// ([`Message::seal_segments`] with the session's CRC settings): encoding then seals only
    /// the header. Large messages on a session not in msgr2 secure mode (which has no CRCs).
    pub sealed: bool,
}

impl Outgoing {
    /// A message not yet sent.
    pub fn new(msg: Message, permit: Option<ThrottlePermit>) -> Self {
        Outgoing {
            msg,
            permit,
            seq: 0,
            sealed: false,
        }
    }

    /// Payload bytes (front + middle + data).
    pub fn payload_len(&self) -> u64 {
        let m = &self.msg;
        u64::try_from(m.front.len() + m.middle.len() + m.data.len()).unwrap_or(u64::MAX)
    }
}

/// The out queues, one per priority used, in ascending priority order. A session uses one
/// to three priorities: a short vector is searched faster, and with less code, than a map.
/// Drained queues stay (one per priority ever used), so a steady stream does not allocate
/// and free a queue buffer per message.
#[derive(Debug, Default)]
pub(super) struct OutQueues {
    queues: Vec<(u16, VecDeque<Outgoing>)>,
}

impl OutQueues {
    pub(super) fn get_or_insert(&mut self, prio: u16) -> &mut VecDeque<Outgoing> {
        let i = match self.queues.binary_search_by_key(&prio, |(p, _)| *p) {
            Ok(i) => i,
            Err(i) => {
                self.queues.insert(i, (prio, VecDeque::new()));
                i
            }
        };
        // `i` is in range: found, or just inserted there.
        &mut self.queues[i].1
    }

    pub(super) fn get_mut(&mut self, prio: u16) -> Option<&mut VecDeque<Outgoing>> {
        let i = self.queues.binary_search_by_key(&prio, |(p, _)| *p).ok()?;
        self.queues.get_mut(i).map(|(_, q)| q)
    }

    /// The queue of the highest priority with a message waiting.
    pub(super) fn highest_nonempty(&mut self) -> Option<&mut VecDeque<Outgoing>> {
        self.queues
            .iter_mut()
            .rev()
            .map(|(_, q)| q)
            .find(|q| !q.is_empty())
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = &VecDeque<Outgoing>> {
        self.queues.iter().map(|(_, q)| q)
    }

    pub(super) fn into_iter(self) -> impl Iterator<Item = VecDeque<Outgoing>> {
        self.queues.into_iter().map(|(_, q)| q)
    }
}
