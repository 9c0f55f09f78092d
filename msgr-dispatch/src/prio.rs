//! `PrioQueue`: Ceph's `PrioritizedQueue` (spec §4.3) as a plain, synchronous structure.
//!
//! Items carry a class (the connection id), a priority 0..=255 and a cost.
//!
//! * Priorities at or above the strict threshold (Ceph: `CEPH_MSG_PRIO_LOW` = 64) are *strict*:
//!   the highest non-empty strict priority is always served first; cost is ignored.
//! * Below the threshold, each priority is a *normal* sub-queue with a token bucket. Dequeue scans
//!   the normal sub-queues from the **lowest** priority upward and serves the first whose front
//!   item's cost is strictly less than its tokens (deducting the cost); if none qualifies, it
//!   serves the highest normal priority. After each normal dequeue of cost `c`, every non-empty
//!   normal sub-queue of priority `p` gains `c * p / total_priority + 1` tokens, capped at the
//!   per-priority maximum. Normal costs are clamped to `[min_cost, max_tokens]`. A sub-queue that
//!   empties loses its tokens (Ceph erases it).
//! * Inside one sub-queue, classes are served round-robin (the class just served moves to the
//!   back of the rotation) and each class is FIFO.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};

use crate::ConnId;

/// Ceph's `ms_pq_min_cost`: the smallest cost a normal item is charged.
pub const DEFAULT_MIN_COST: u64 = 64 * 1024;
/// Ceph's `ms_pq_max_tokens_per_priority`: the token cap of one normal priority.
pub const DEFAULT_MAX_TOKENS: u64 = 16 * 1024 * 1024;
/// Ceph's `CEPH_MSG_PRIO_LOW`: priorities at or above it are strict.
pub const DEFAULT_STRICT_THRESHOLD: u8 = 64;

/// Hasher for connection ids: one multiply, good enough for small integer keys.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(26);
    }
}

type IdMap = HashMap<ConnId, usize, BuildHasherDefault<IdHasher>>;

struct Slot<T> {
    class: ConnId,
    items: VecDeque<(u64, T)>,
}

/// One priority: round-robin over classes, FIFO within a class.
struct SubQueue<T> {
    /// Class queues; emptied slots are recycled through `free` so their buffers are reused.
    slots: Vec<Slot<T>>,
    free: Vec<usize>,
    index: IdMap,
    rotation: VecDeque<usize>,
    tokens: u64,
    len: usize,
}

impl<T> SubQueue<T> {
    fn new() -> Self {
        SubQueue {
            slots: Vec::new(),
            free: Vec::new(),
            index: IdMap::default(),
            rotation: VecDeque::new(),
            tokens: 0,
            len: 0,
        }
    }

    fn push(&mut self, class: ConnId, cost: u64, item: T) {
        let slot = match self.index.get(&class) {
            Some(&s) => s,
            None => {
                let s = match self.free.pop() {
                    Some(s) => {
                        self.slots[s].class = class;
                        s
                    }
                    None => {
                        self.slots.push(Slot {
                            class,
                            items: VecDeque::new(),
                        });
                        self.slots.len() - 1
                    }
                };
                self.index.insert(class, s);
                self.rotation.push_back(s);
                s
            }
        };
        self.slots[slot].items.push_back((cost, item));
        self.len += 1;
    }

    fn front_cost(&self) -> Option<u64> {
        let s = *self.rotation.front()?;
        self.slots[s].items.front().map(|(c, _)| *c)
    }

    fn pop(&mut self) -> Option<(u64, T)> {
        let s = self.rotation.pop_front()?;
        let slot = &mut self.slots[s];
        let out = slot.items.pop_front();
        if slot.items.is_empty() {
            self.index.remove(&slot.class);
            self.free.push(s);
        } else {
            self.rotation.push_back(s);
        }
        if out.is_some() {
            self.len -= 1;
        }
        out
    }

    fn remove_class(&mut self, class: ConnId, out: &mut Vec<T>) {
        let Some(s) = self.index.remove(&class) else {
            return;
        };
        let items = &mut self.slots[s].items;
        self.len -= items.len();
        out.extend(items.drain(..).map(|(_, t)| t));
        self.rotation.retain(|&r| r != s);
        self.free.push(s);
    }
}

/// The priority queue inside a `DispatchQueue`; see the module docs for the rules.
///
/// Sub-queues exist only for the priorities used so far (most messengers use one or two):
/// 256 of them up front cost 34 KiB per messenger, which a client messenger with one session
/// would spend on nothing.
pub struct PrioQueue<T> {
    /// The sub-queues of the priorities used so far, in the order first used.
    subs: Vec<SubQueue<T>>,
    /// Per priority: its sub-queue's position in `subs` plus one; 0 when never used.
    index: [u16; 256],
    /// Bit `p` set ⇔ priority `p` has items.
    nonempty: [u64; 4],
    threshold: u8,
    min_cost: u64,
    max_tokens: u64,
    /// Sum of the priorities of the non-empty normal sub-queues.
    total_priority: u64,
    len: usize,
}

impl<T> Default for PrioQueue<T> {
    fn default() -> Self {
        Self::new(
            DEFAULT_STRICT_THRESHOLD,
            DEFAULT_MIN_COST,
            DEFAULT_MAX_TOKENS,
        )
    }
}

impl<T> PrioQueue<T> {
    /// An empty queue; priorities `>= strict_threshold` are strict. `min_cost` is lowered to
    /// `max_tokens` if above it.
    pub fn new(strict_threshold: u8, min_cost: u64, max_tokens: u64) -> Self {
        PrioQueue {
            subs: Vec::new(),
            index: [0; 256],
            nonempty: [0; 4],
            threshold: strict_threshold,
            min_cost: min_cost.min(max_tokens),
            max_tokens,
            total_priority: 0,
            len: 0,
        }
    }

    /// Items queued.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends `item` to class `class` at `priority`; `cost` only matters below the threshold.
    pub fn enqueue(&mut self, class: ConnId, priority: u8, cost: u64, item: T) {
        let p = usize::from(priority);
        let strict = priority >= self.threshold;
        let cost = if strict {
            0
        } else {
            cost.clamp(self.min_cost, self.max_tokens)
        };
        let sub = self.sub_or_new(priority);
        let was_empty = sub.len == 0;
        sub.push(class, cost, item);
        if was_empty {
            self.nonempty[p / 64] |= 1 << (p % 64);
            if !strict {
                self.total_priority += u64::from(priority);
            }
        }
        self.len += 1;
    }

    /// Takes the next item by the rules in the module docs.
    pub fn dequeue(&mut self) -> Option<T> {
        let top = self.highest()?;
        if top >= self.threshold {
            return self.pop_from(top).map(|(_, t)| t);
        }
        let mut chosen = top;
        let mut charge = false;
        for p in self.normal_ascending() {
            let Some(sub) = self.sub(p) else { continue };
            if matches!(sub.front_cost(), Some(c) if c < sub.tokens) {
                chosen = p;
                charge = true;
                break;
            }
        }
        let (cost, item) = self.pop_from(chosen)?;
        if charge {
            if let Some(sub) = self.sub_mut(chosen) {
                sub.tokens = sub.tokens.saturating_sub(cost);
            }
        }
        self.distribute(cost);
        Some(item)
    }

    /// Removes every item of `class`, from the highest priority down, FIFO within each.
    pub fn remove_class(&mut self, class: ConnId) -> Vec<T> {
        let mut out = Vec::new();
        for p in (0..=255u8).rev() {
            let Some(sub) = self.sub_mut(p).filter(|s| s.len > 0) else {
                continue;
            };
            let before = out.len();
            sub.remove_class(class, &mut out);
            let emptied = sub.len == 0;
            self.len -= out.len() - before;
            if emptied {
                self.mark_empty(p);
            }
        }
        out
    }

    /// Every queued item, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &T> + '_ {
        self.subs
            .iter()
            .flat_map(|sub| sub.rotation.iter().map(move |&s| &sub.slots[s]))
            .flat_map(|slot| slot.items.iter().map(|(_, t)| t))
    }

    fn pop_from(&mut self, p: u8) -> Option<(u64, T)> {
        let sub = self.sub_mut(p)?;
        let out = sub.pop()?;
        let emptied = sub.len == 0;
        self.len -= 1;
        if emptied {
            self.mark_empty(p);
        }
        Some(out)
    }

    /// The sub-queue of priority `p`, if it was ever used.
    fn sub(&self, p: u8) -> Option<&SubQueue<T>> {
        let at = usize::from(self.index[usize::from(p)]);
        at.checked_sub(1).and_then(|i| self.subs.get(i))
    }

    /// The sub-queue of priority `p`, if it was ever used.
    fn sub_mut(&mut self, p: u8) -> Option<&mut SubQueue<T>> {
        let at = usize::from(self.index[usize::from(p)]);
        at.checked_sub(1).and_then(|i| self.subs.get_mut(i))
    }

    /// The sub-queue of priority `p`, made on its first use.
    fn sub_or_new(&mut self, p: u8) -> &mut SubQueue<T> {
        let slot = &mut self.index[usize::from(p)];
        if *slot == 0 {
            self.subs.push(SubQueue::new());
            // At most 256 priorities: the position fits.
            *slot = self.subs.len() as u16;
        }
        let i = usize::from(*slot) - 1;
        &mut self.subs[i]
    }

    fn mark_empty(&mut self, p: u8) {
        let pi = usize::from(p);
        self.nonempty[pi / 64] &= !(1 << (pi % 64));
        if p < self.threshold {
            self.total_priority -= u64::from(p);
            if let Some(sub) = self.sub_mut(p) {
                sub.tokens = 0;
            }
        }
    }

    fn distribute(&mut self, cost: u64) {
        if self.total_priority == 0 {
            return;
        }
        let (total, cap) = (self.total_priority, self.max_tokens);
        for p in self.normal_ascending() {
            if let Some(sub) = self.sub_mut(p) {
                let add = cost.saturating_mul(u64::from(p)) / total + 1;
                sub.tokens = sub.tokens.saturating_add(add).min(cap);
            }
        }
    }

    fn highest(&self) -> Option<u8> {
        (0..4).rev().find_map(|w| {
            let bits = self.nonempty[w];
            (bits != 0).then(|| (w * 64 + 63 - bits.leading_zeros() as usize) as u8)
        })
    }

    /// Non-empty normal priorities, lowest first.
    fn normal_ascending(&self) -> impl Iterator<Item = u8> {
        let words = self.nonempty;
        let threshold = usize::from(self.threshold);
        (0..4)
            .flat_map(move |w| {
                let mut bits = words[w];
                std::iter::from_fn(move || {
                    if bits == 0 {
                        return None;
                    }
                    let b = bits.trailing_zeros() as usize;
                    bits &= bits - 1;
                    Some(w * 64 + b)
                })
            })
            .take_while(move |&p| p < threshold)
            .map(|p| p as u8)
    }
}

impl<T> std::fmt::Debug for PrioQueue<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrioQueue")
            .field("len", &self.len)
            .field("strict_threshold", &self.threshold)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
