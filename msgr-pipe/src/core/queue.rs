//! The out queues of a session: one FIFO per priority, the messages they hold, and what an
//! ACK releases from the sent list ([`Released`]).
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
    /// written (lossy) or discarded; [`ThrottlePermit::empty`] if none (not an `Option`,
    /// which has no spare bit pattern in a permit and took 8 more bytes per message).
    pub permit: ThrottlePermit,
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
            permit: permit.unwrap_or_default(),
            seq: 0,
            sealed: false,
        }
    }

    /// A copy to encode outside the lock: the message (its buffers shared), seq and
    /// sealing, without the permit (the original keeps it in the sent list).
    pub fn copy(&self) -> Outgoing {
        Outgoing {
            msg: self.msg.clone(),
            permit: ThrottlePermit::empty(),
            seq: self.seq,
            sealed: self.sealed,
        }
    }

    /// Payload bytes (front + middle + data).
    pub fn payload_len(&self) -> u64 {
        let m = &self.msg;
        u64::try_from(m.front.len() + m.middle.len() + m.data.len()).unwrap_or(u64::MAX)
    }
}

/// Acknowledged messages with at least this many payload bytes are handed out of the
/// session lock to be freed ([`Released`]); smaller ones are freed in place.
pub const FREE_OUTSIDE_LOCK: u64 = 64 * 1024;

/// What ACKs released from the sent list, for the caller to let go of outside the session
/// lock ([`clear`](Self::clear)): the messages' `max_pending_bytes` permits merged into one
/// (one release of the throttle per ACK, not one per message), the few acknowledged
/// messages large enough that freeing them may cost a system call, and the sent list's
/// wholly acknowledged blocks, moved out as they are.
///
/// A wholly acknowledged block (64 messages) leaves the sent list in one move under the
/// lock; its permits are merged and its messages dropped by [`clear`](Self::clear), outside
/// it. Dropping a 64-byte stream's acknowledged messages under the session lock held it for
/// microseconds per ACK, longer than a contended lock spins, so the sender queueing its next
/// message slept on the lock's `futex` and was woken by the reader (a third of a 64 B stream's
/// `futex` calls). The emptied blocks are kept ([`recycle`](Self::recycle)) and handed back
/// to the out queues at the next ACK, so blocks are still reused, not reallocated.
///
/// The first messages of a partly acknowledged block are dropped where they lie: a vector
/// of every acknowledged entry (216 bytes each) grew to the largest ACK ever handled and
/// stayed that size for the socket's life (14.2 MB in a 64-byte stream, a quarter of a
/// million entries).
#[derive(Debug, Default)]
pub struct Released {
    /// The acknowledged messages' permits, merged.
    permit: ThrottlePermit,
    /// Permits of another throttle than `permit`'s (never in a session, whose permits all
    /// come from its one `max_pending_bytes` throttle).
    other: Vec<ThrottlePermit>,
    /// Acknowledged messages of [`FREE_OUTSIDE_LOCK`] payload bytes or more.
    large: Vec<Outgoing>,
    /// Messages released since the last [`clear`](Self::clear).
    count: usize,
    /// Wholly acknowledged blocks of the sent list, as they were (permits not merged yet).
    blocks: Vec<VecDeque<Outgoing>>,
    /// Blocks emptied by [`clear`](Self::clear), for the out queues' reuse; at most
    /// [`SPARE_BLOCKS`].
    spare: Vec<VecDeque<Outgoing>>,
}

impl Released {
    /// Takes the first `k` messages of `b`, acknowledged, where they are: their permits
    /// join the others, the large ones are moved out to be freed by [`clear`](Self::clear),
    /// the small ones are dropped in place. An ACK of a 64-byte stream releases whole blocks
    /// of small messages: moving each 216-byte entry out only to merge its permit and drop it
    /// cost a `memcpy` per message (callgrind: 195 instructions per message in
    /// `handle_control`, 116 of them in the move).
    pub fn absorb_front(&mut self, b: &mut VecDeque<Outgoing>, k: usize) {
        let k = k.min(b.len());
        let mut large = false;
        for o in b.range_mut(..k) {
            if let Err(p) = self.permit.try_merge(std::mem::take(&mut o.permit)) {
                self.other.push(p);
            }
            large |= o.payload_len() >= FREE_OUTSIDE_LOCK;
        }
        self.count += k;
        if large {
            let kept = b
                .drain(..k)
                .filter(|o| o.payload_len() >= FREE_OUTSIDE_LOCK);
            self.large.extend(kept);
        } else {
            // Dropped in place: `Drain` drops what it was not asked for without moving it.
            drop(b.drain(..k));
        }
    }

    /// Takes a wholly acknowledged block as it is (one move of the block, none of its
    /// entries); [`clear`](Self::clear) merges its permits and drops its messages.
    pub fn absorb_block(&mut self, b: VecDeque<Outgoing>) {
        self.count += b.len();
        self.blocks.push(b);
    }

    /// Hands the blocks emptied by earlier [`clear`](Self::clear)s to `to` (under the
    /// session lock, with the out queues).
    pub fn recycle(&mut self, to: impl FnMut(VecDeque<Outgoing>)) {
        self.spare.drain(..).for_each(to);
    }

    /// True if [`clear`](Self::clear) left emptied blocks for [`recycle`](Self::recycle).
    pub fn has_spare(&self) -> bool {
        !self.spare.is_empty()
    }

    /// Messages released since the last [`clear`](Self::clear).
    pub fn len(&self) -> usize {
        self.count
    }

    /// True if nothing was released since the last [`clear`](Self::clear).
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// `max_pending_bytes` units held until [`clear`](Self::clear).
    pub fn units(&self) -> u64 {
        let in_blocks = self.blocks.iter().flatten().map(|o| o.permit.amount());
        self.permit.amount()
            + self.other.iter().map(ThrottlePermit::amount).sum::<u64>()
            + in_blocks.sum::<u64>()
    }

    /// Gives the permits back and frees the large messages.
    #[inline]
    pub fn clear(&mut self) {
        if self.count != 0 {
            self.let_go();
        }
    }

    fn let_go(&mut self) {
        for mut b in self.blocks.drain(..) {
            for o in b.iter_mut() {
                if let Err(p) = self.permit.try_merge(std::mem::take(&mut o.permit)) {
                    self.other.push(p);
                }
            }
            b.clear();
            if self.spare.len() < SPARE_BLOCKS {
                self.spare.push(b);
            }
        }
        drop(std::mem::take(&mut self.permit));
        self.other.clear();
        self.large.clear();
        self.count = 0;
    }
}

/// Most entries in one block of a [`Fifo`]: 64 × 224 bytes, 14 KiB.
const BLOCK: usize = 64;

/// Fewest entries in a block (a session that sends one message at a time holds no more).
const MIN_BLOCK: usize = 4;

/// Emptied full-size blocks a [`Fifo`] keeps for reuse: a writer's batch (1,024 messages)
/// is 16 blocks, so a stream recycles its blocks without calling the allocator (a block
/// allocated per 64 messages cost 120 instructions per message in a 64-byte stream: each
/// large request made glibc consolidate the small chunks the messages' fronts had freed).
const SPARE_BLOCKS: usize = 16;

/// A FIFO of messages in blocks of at most [`BLOCK`] entries: the out queues and the sent
/// list.
///
/// Not one `VecDeque`, whose buffer doubles with the longest burst (a quarter of a million
/// entries, 56.6 MB, in a 64-byte stream) and keeps that size: its doublings copied the
/// whole queue each time, it held up to twice what it stored, and once freed a buffer that
/// size moved glibc's mmap threshold up (to as much as 32 MiB), so every later buffer below
/// it came from the heap and stayed resident when freed (the default plan's 64-byte streams:
/// 193–213 MiB peak, 57 MiB with the threshold pinned). Blocks come and go as the queue
/// grows and shrinks, no allocation here is larger than a block, and an idle queue keeps at
/// most [`SPARE_BLOCKS`] of them (one small one if it never held more than a few).
#[derive(Debug, Default)]
pub(super) struct Fifo {
    /// Non-empty blocks, oldest first.
    blocks: VecDeque<VecDeque<Outgoing>>,
    /// Emptied full-size blocks kept for reuse.
    spare: Vec<VecDeque<Outgoing>>,
    /// Emptied smaller blocks kept for reuse (with `spare`, at most [`SPARE_BLOCKS`]).
    small: Vec<VecDeque<Outgoing>>,
    len: usize,
}

impl Fifo {
    /// Number of messages.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if there is no message.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The oldest message.
    pub fn front(&self) -> Option<&Outgoing> {
        self.blocks.front().and_then(VecDeque::front)
    }

    /// An empty block for a queue of `len` messages: small while the queue is (a session
    /// sending one message at a time), [`BLOCK`] entries once it holds that many.
    #[cold]
    fn block(&mut self) -> VecDeque<Outgoing> {
        if let Some(b) = self.spare.pop() {
            return b;
        }
        let want = (self.len + 1).next_power_of_two().clamp(MIN_BLOCK, BLOCK);
        if self.small.last().is_some_and(|b| b.capacity() >= want) {
            if let Some(b) = self.small.pop() {
                return b;
            }
        }
        VecDeque::with_capacity(want)
    }

    /// Spare blocks of either size.
    fn spares(&self) -> usize {
        self.spare.len() + self.small.len()
    }

    /// Keeps an emptied block for reuse, up to [`SPARE_BLOCKS`] of them (full-size ones,
    /// which [`block`](Self::block) takes first, apart from smaller ones); once that many
    /// are kept, a full-size one takes the place of a smaller one.
    ///
    /// Smaller blocks are kept several at a time: a session at depth 128 moves its
    /// messages in blocks of one to three (each reader's batch pushes replies into the
    /// inbox a few at a time, and whole blocks move on to the sent list). Kept only one at a
    /// time, the ACK's dozens of emptied small blocks were freed and the next pushes
    /// allocated new ones: a `malloc` and a `free` per message (4 KiB round trips at depth
    /// 128 over 4 connections: 180,000 of each per 100,000 round trips, 470 instructions
    /// a round trip).
    fn retire(&mut self, b: VecDeque<Outgoing>) {
        let room = self.spares() < SPARE_BLOCKS;
        if b.capacity() >= BLOCK {
            if room || self.small.pop().is_some() {
                self.spare.push(b);
            }
        } else if room {
            self.small.push(b);
        }
    }

    /// Appends a message and returns it where it now is.
    #[inline(always)]
    pub fn push_back(&mut self, o: Outgoing) -> Option<&mut Outgoing> {
        if self.blocks.back().is_none_or(|b| b.len() >= b.capacity()) {
            self.grow_back();
        }
        self.len += 1;
        let b = self.blocks.back_mut()?;
        b.push_back(o);
        b.back_mut()
    }

    #[cold]
    fn grow_back(&mut self) {
        let b = self.block();
        self.blocks.push_back(b);
    }

    /// Puts a message before the others.
    pub fn push_front(&mut self, o: Outgoing) {
        if self.blocks.front().is_none_or(|b| b.len() >= b.capacity()) {
            let b = self.block();
            self.blocks.push_front(b);
        }
        if let Some(b) = self.blocks.front_mut() {
            b.push_front(o);
            self.len += 1;
        }
    }

    /// Takes the oldest message.
    #[inline(always)]
    pub fn pop_front(&mut self) -> Option<Outgoing> {
        let b = self.blocks.front_mut()?;
        if b.len() <= 1 {
            return self.pop_front_block();
        }
        // The common case returns straight from the block (no copy through a local).
        self.len -= 1;
        b.pop_front()
    }

    /// [`pop_front`](Self::pop_front) of a block's last message: the block is retired.
    #[cold]
    fn pop_front_block(&mut self) -> Option<Outgoing> {
        let mut b = self.blocks.pop_front()?;
        let o = b.pop_front();
        self.len -= usize::from(o.is_some());
        self.retire(b);
        o
    }

    /// Takes the newest message.
    pub fn pop_back(&mut self) -> Option<Outgoing> {
        let mut b = self.blocks.pop_back()?;
        let o = b.pop_back();
        self.len -= usize::from(o.is_some());
        if b.is_empty() {
            self.retire(b);
        } else {
            self.blocks.push_back(b);
        }
        o
    }

    /// Takes the oldest block whole if `whole` says so (the fast paths of a batch taken for
    /// transmission and of an ACK: its entries are not moved one by one).
    pub fn pop_front_block_if(
        &mut self,
        whole: impl FnOnce(&VecDeque<Outgoing>) -> bool,
    ) -> Option<VecDeque<Outgoing>> {
        if !self.blocks.front().is_some_and(whole) {
            return None;
        }
        let b = self.blocks.pop_front()?;
        self.len -= b.len();
        Some(b)
    }

    /// Releases the oldest messages while `acked` holds (it must hold for a prefix of the
    /// list, as "seq at most the ACK's" does), into `done`: each block it holds for to the
    /// last entry leaves whole ([`Released::absorb_block`], one move), the acknowledged head
    /// of the next is released where it lies ([`Released::absorb_front`]).
    pub fn release_front_while(&mut self, acked: impl Fn(&Outgoing) -> bool, done: &mut Released) {
        while let Some(b) = self.blocks.front_mut() {
            if b.back().is_some_and(&acked) {
                self.len -= b.len();
                if let Some(b) = self.blocks.pop_front() {
                    done.absorb_block(b);
                }
                continue;
            }
            let k = b.iter().take_while(|o| acked(o)).count();
            if k > 0 {
                done.absorb_front(b, k);
                self.len -= k;
            }
            return;
        }
    }

    /// Appends a block of messages as it is, after the others, and returns it (an empty one
    /// is kept for reuse).
    pub fn push_back_block(&mut self, b: VecDeque<Outgoing>) -> Option<&mut VecDeque<Outgoing>> {
        if b.is_empty() {
            self.retire(b);
            return None;
        }
        self.len += b.len();
        self.blocks.push_back(b);
        self.blocks.back_mut()
    }

    /// Keeps an emptied block of another queue for reuse, if there is room for it.
    pub fn recycle(&mut self, b: VecDeque<Outgoing>) {
        if b.is_empty() {
            self.retire(b);
        }
    }

    /// Moves every block of `from` after this queue's, as they are (one move per block, none
    /// per message), and hands `from` this queue's spare blocks in return (up to
    /// [`SPARE_BLOCKS`]), so the queue that fills `from` reuses the blocks its messages
    /// were sent and acknowledged in instead of allocating new ones.
    #[inline]
    pub fn append(&mut self, from: &mut Fifo) {
        self.len += std::mem::take(&mut from.len);
        if self.blocks.is_empty() {
            // The common case (the writer took everything before): the block lists trade
            // places, whole (`VecDeque::append`'s slice copies cost a one-message drain 169
            // instructions; callgrind).
            std::mem::swap(&mut self.blocks, &mut from.blocks);
        } else {
            while let Some(b) = from.blocks.pop_front() {
                self.blocks.push_back(b);
            }
        }
        if self.spares() > 0 {
            self.give_spares(from);
        }
    }

    /// The spare half of [`append`](Self::append).
    #[inline(never)]
    fn give_spares(&mut self, from: &mut Fifo) {
        // The full-size ones, as many as `from` has room for (each displaces a smaller one
        // there if need be: a 64-byte stream's queue must find full-size blocks, or it
        // allocates 2 blocks per 1,024 messages).
        let mut room = SPARE_BLOCKS.saturating_sub(from.spare.len());
        while room > 0 {
            let Some(b) = self.spare.pop() else {
                break;
            };
            from.retire(b);
            room -= 1;
        }
        // A session sending one message at a time circulates one small block: it goes
        // back too, when `from` has none (else `from` allocated one per message).
        if from.spares() == 0 {
            if let Some(b) = self.small.pop() {
                from.small.push(b);
            }
        }
    }

    /// Moves every message, oldest first, to the end of `out`.
    pub fn drain_into(&mut self, out: &mut Vec<Outgoing>) {
        out.reserve(self.len);
        while let Some(mut b) = self.blocks.pop_front() {
            out.extend(b.drain(..));
            self.retire(b);
        }
        self.len = 0;
    }
}

/// Messages submitted to a session outside its lock (the driver's inbox), oldest first,
/// for [`SessionCore::send_all`](super::SessionCore::send_all) to move into the out queues.
///
/// A block FIFO (the out queues' `Fifo`) that also keeps what moving it whole needs: the
/// priority its messages share (normalised as [`SessionCore::send`](super::SessionCore::send)
/// does, when pushed) and their payload bytes. While every message has one priority, the whole FIFO joins that
/// priority's out queue block by block; messages of several priorities are queued one by
/// one, in order.
///
/// Not here: the lock around it and the wake-ups (the driver's `session::inbox`).
#[derive(Debug, Default)]
pub struct Submitted {
    fifo: Fifo,
    /// The priority of the messages held, if they all have the same.
    prio: u16,
    /// Messages of more than one priority are held.
    mixed: bool,
    /// Payload bytes held.
    bytes: u64,
}

impl Submitted {
    /// Appends a message (its priority normalised: 0 becomes the default).
    #[inline(always)]
    pub fn push(&mut self, o: Outgoing) {
        let prio = o.msg.priority();
        if self.fifo.is_empty() {
            self.prio = prio;
        } else if prio != self.prio {
            self.mixed = true;
        }
        self.bytes = self.bytes.saturating_add(o.payload_len());
        // Normalised where it now is: a change to `o` before the move made a copy of it.
        if let Some(o) = self.fifo.push_back(o) {
            o.msg.header.priority = prio;
        }
    }

    /// Number of messages.
    pub fn len(&self) -> usize {
        self.fifo.len()
    }

    /// True if there is no message.
    pub fn is_empty(&self) -> bool {
        self.fifo.is_empty()
    }

    /// Takes every message, oldest first, into `out` (a closed session's leftovers).
    pub fn drain_into(&mut self, out: &mut Vec<Outgoing>) {
        self.fifo.drain_into(out);
        self.reset();
    }

    /// Keeps an emptied block (of the sent list, from [`Released::recycle`]) for the next
    /// pushes, if there is room for it.
    pub fn recycle(&mut self, b: VecDeque<Outgoing>) {
        self.fifo.recycle(b);
    }

    /// Spare blocks kept for the next pushes.
    pub fn spare_blocks(&self) -> usize {
        self.fifo.spares()
    }

    /// Empty again: nothing mixed, no bytes.
    pub(super) fn reset(&mut self) {
        self.mixed = false;
        self.bytes = 0;
    }

    /// The FIFO, the shared priority (`None` if mixed) and the payload bytes, to be moved.
    pub(super) fn parts(&mut self) -> (&mut Fifo, Option<u16>, u64) {
        let prio = (!self.mixed).then_some(self.prio);
        (&mut self.fifo, prio, self.bytes)
    }
}

/// The out queues, one per priority used, in ascending priority order. A session uses one
/// to three priorities: a short vector is searched faster, and with less code, than a map.
/// Drained queues stay (one per priority ever used), so a steady stream does not allocate
/// and free a queue buffer per message.
#[derive(Debug, Default)]
pub(super) struct OutQueues {
    queues: Vec<(u16, Fifo)>,
}

impl OutQueues {
    /// The queue of `prio`, added if this is the session's first message of that priority.
    /// Inlined into every send: the first queue is tried before any search (most sessions
    /// use one priority; the search and its call cost 30 instructions per message).
    #[inline(always)]
    pub(super) fn get_or_insert(&mut self, prio: u16) -> &mut Fifo {
        let i = match self.queues.first() {
            Some((p, _)) if *p == prio => 0,
            _ => self.find_or_insert(prio),
        };
        // `i` is in range: found, or just inserted there.
        &mut self.queues[i].1
    }

    fn find_or_insert(&mut self, prio: u16) -> usize {
        match self.queues.binary_search_by_key(&prio, |(p, _)| *p) {
            Ok(i) => i,
            Err(i) => {
                self.queues.insert(i, (prio, Fifo::default()));
                i
            }
        }
    }

    pub(super) fn get_mut(&mut self, prio: u16) -> Option<&mut Fifo> {
        let i = self.queues.binary_search_by_key(&prio, |(p, _)| *p).ok()?;
        self.queues.get_mut(i).map(|(_, q)| q)
    }

    /// The queue of the highest priority with a message waiting.
    pub(super) fn highest_nonempty(&mut self) -> Option<&mut Fifo> {
        self.queues
            .iter_mut()
            .rev()
            .map(|(_, q)| q)
            .find(|q| !q.is_empty())
    }

    /// Keeps an emptied block (of the sent list) for the next messages queued: the first
    /// queue takes it (most sessions use one priority), if it has room for it.
    pub(super) fn recycle(&mut self, b: VecDeque<Outgoing>) {
        if let Some((_, q)) = self.queues.first_mut() {
            q.recycle(b);
        }
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = &Fifo> {
        self.queues.iter().map(|(_, q)| q)
    }

    pub(super) fn into_iter(self) -> impl Iterator<Item = Fifo> {
        self.queues.into_iter().map(|(_, q)| q)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(i: u64) -> Outgoing {
        let mut o = Outgoing::new(Message::new(1, i.to_le_bytes().to_vec()), None);
        o.seq = i;
        o
    }

    fn seqs(f: &mut Fifo) -> Vec<u64> {
        let mut v = Vec::new();
        f.drain_into(&mut v);
        v.iter().map(|o| o.seq).collect()
    }

    /// Order holds across block boundaries from both ends, and no block holds more than
    /// [`BLOCK`] entries (so no allocation grows with the queue).
    #[test]
    fn fifo_keeps_order_across_blocks_with_bounded_blocks() {
        let mut f = Fifo::default();
        for i in 1..=1000 {
            assert_eq!(f.push_back(o(i)).map(|o| o.seq), Some(i));
        }
        assert_eq!(f.len(), 1000);
        assert!(f.blocks.iter().all(|b| b.capacity() <= BLOCK));
        assert!(f.blocks.len() >= 1000 / BLOCK, "{} blocks", f.blocks.len());
        for i in 1..=300 {
            assert_eq!(f.pop_front().map(|o| o.seq), Some(i));
        }
        for i in (0..300).rev() {
            f.push_front(o(i + 1));
        }
        assert_eq!(f.pop_back().map(|o| o.seq), Some(1000));
        assert_eq!(f.front().map(|o| o.seq), Some(1));
        assert_eq!(f.len(), 999);
        assert!(f
            .blocks
            .iter()
            .all(|b| !b.is_empty() && b.capacity() <= BLOCK));
        assert_eq!(seqs(&mut f), (1..=999).collect::<Vec<_>>());
        assert!(f.is_empty() && f.pop_front().is_none() && f.pop_back().is_none());
    }

    /// A queue fed by [`Fifo::append`] one message at a time hands its small blocks back:
    /// the feeding queue allocates two blocks in all, not one per message (a push allocates
    /// only when it finds no spare block).
    #[test]
    fn append_one_at_a_time_reuses_small_blocks() {
        let (mut inbox, mut q) = (Fifo::default(), Fifo::default());
        let mut allocations = 0;
        for i in 0..100 {
            allocations += usize::from(inbox.spares() == 0);
            inbox.push_back(o(i));
            q.append(&mut inbox);
            assert_eq!(q.pop_front().map(|o| o.seq), Some(i));
            assert!(inbox.blocks.is_empty() && q.blocks.is_empty());
        }
        assert_eq!(allocations, 2);
        assert_eq!(inbox.spares() + q.spares(), 2);
        assert!(inbox
            .small
            .iter()
            .chain(&q.small)
            .all(|b| b.capacity() == MIN_BLOCK));
    }

    /// The blocks a reader's batches of replies were pushed in (a few messages each) move
    /// on whole, to the sent list, and come back by the dozen when an ACK empties them:
    /// the inbox keeps them, up to [`SPARE_BLOCKS`], and the next batches' pushes reuse them.
    /// Only the first round allocates (kept one at a time, every round allocated again).
    #[test]
    fn small_blocks_coming_back_by_the_dozen_are_reused() {
        let mut inbox = Fifo::default();
        let mut sent = Vec::new();
        let mut allocations = 0;
        for round in 0..10u64 {
            for batch in 0..12 {
                for k in 0..3 {
                    let full = inbox.blocks.back().is_none_or(|b| b.len() >= b.capacity());
                    allocations += usize::from(full && inbox.spares() == 0);
                    inbox.push_back(o(round * 100 + batch * 3 + k));
                }
                let b = inbox
                    .pop_front_block_if(|_| true)
                    .expect("the batch's block");
                assert_eq!(b.len(), 3);
                sent.push(b);
            }
            // The ACK: every block emptied and handed back.
            for mut b in sent.drain(..) {
                b.clear();
                inbox.recycle(b);
            }
            assert_eq!(inbox.small.len(), 12, "round {round}");
        }
        assert_eq!(allocations, 12);
    }

    /// A queue that never holds more than one message keeps one small block; a long one
    /// keeps [`SPARE_BLOCKS`] blocks once drained, not its longest length, and they are
    /// full-size (the smaller ones make room for them).
    #[test]
    fn fifo_keeps_spare_blocks_sized_by_use() {
        let mut f = Fifo::default();
        for i in 0..100 {
            f.push_back(o(i));
            assert!(f.pop_front().is_some());
        }
        assert!(f.blocks.is_empty());
        let caps = |f: &Fifo| {
            (f.small.iter().chain(&f.spare))
                .map(VecDeque::capacity)
                .collect::<Vec<_>>()
        };
        assert_eq!(caps(&f), vec![MIN_BLOCK]);
        for i in 0..10_000 {
            f.push_back(o(i));
        }
        while f.pop_front().is_some() {}
        assert!(f.blocks.is_empty());
        assert_eq!(f.len(), 0);
        assert_eq!(caps(&f), vec![BLOCK; SPARE_BLOCKS]);
    }
}
