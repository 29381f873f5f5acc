//! The feed's recent changes, kept for watchers that are behind: a ring bounded in bytes
//! as well as in count, so memory stays bounded however large the views and however
//! slowly the clients read. Each change has a sequence number; a watcher remembers only
//! the number of the next change it wants, so a watcher holds no changes of its own, and
//! one whose next change has been dropped from the ring knows it fell behind.

use std::collections::VecDeque;
use std::sync::Arc;

use super::feed::FeedBuffers;

/// What a watcher finds at the sequence number it wants next.
pub(super) enum Lookup<T> {
    /// The change, shared with the ring.
    Change(Arc<T>),
    /// Nothing yet: the watcher is up to date.
    Waiting,
    /// The change (and `skipped - 1` after it) left the ring: the watcher fell behind.
    Evicted { skipped: u64 },
}

#[derive(Debug)]
pub(super) struct Ring<T> {
    /// Each change with what it costs to keep it.
    entries: VecDeque<(Arc<T>, usize)>,
    /// The sequence number of `entries[0]`.
    first: u64,
    bytes: usize,
    limits: FeedBuffers,
}

impl<T> Ring<T> {
    pub fn new(limits: FeedBuffers) -> Ring<T> {
        Ring { entries: VecDeque::new(), first: 0, bytes: 0, limits }
    }

    /// The sequence number the next change will get: where a new watcher starts.
    pub fn next_seq(&self) -> u64 {
        self.first + self.entries.len() as u64
    }

    /// The bytes of the changes kept now.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Appends a change and drops the oldest ones past either bound. The newest change is
    /// always kept, even alone over the byte bound (one view is bounded by itself).
    pub fn push(&mut self, change: Arc<T>, bytes: usize) {
        self.bytes = self.bytes.saturating_add(bytes);
        self.entries.push_back((change, bytes));
        while self.entries.len() > 1
            && (self.entries.len() > self.limits.changes.max(1) || self.bytes > self.limits.change_bytes)
        {
            if let Some((_, dropped)) = self.entries.pop_front() {
                self.bytes = self.bytes.saturating_sub(dropped);
                self.first += 1;
            }
        }
    }

    pub fn get(&self, seq: u64) -> Lookup<T> {
        if seq < self.first {
            return Lookup::Evicted { skipped: self.first - seq };
        }
        let index = usize::try_from(seq - self.first).unwrap_or(usize::MAX);
        match self.entries.get(index) {
            Some((change, _)) => Lookup::Change(change.clone()),
            None => Lookup::Waiting,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_keeps_within_its_bytes_and_count_and_says_who_fell_behind() {
        let mut ring = Ring::new(FeedBuffers { changes: 4, change_bytes: 1000 });
        for n in 0..3 {
            ring.push(Arc::new(n), 400);
        }
        // 1,200 bytes > 1,000: the oldest went.
        assert_eq!((ring.first, ring.entries.len(), ring.bytes()), (1, 2, 800));
        assert!(matches!(ring.get(0), Lookup::Evicted { skipped: 1 }));
        assert!(matches!(ring.get(1), Lookup::Change(n) if *n == 1));
        assert!(matches!(ring.get(3), Lookup::Waiting));
        for n in 3..13 {
            ring.push(Arc::new(n), 10);
        }
        assert_eq!(ring.entries.len(), 4, "the count bound holds too");
        assert_eq!(ring.next_seq(), 13);
        // One change over the whole byte bound is kept alone.
        ring.push(Arc::new(13), 5000);
        assert_eq!((ring.entries.len(), ring.bytes(), ring.next_seq()), (1, 5000, 14));
    }
}
