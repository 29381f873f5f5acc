//! The log tree: the RFC 6962 Merkle tree over the whole log in commit order, the tree a
//! checkpoint's root is taken over (see `audit` for why this tree and not one over the
//! stream heads).
//!
//! - Leaf i is the i-th event of the log in commit order — the order in which the
//!   gap-free global read returns events (`read_all`: on PostgreSQL `(tx_id, position)` for the events
//!   before positions followed commit order and position after them, position on SQLite; an import keeps it, since it writes the file's order) — and its
//!   data is the event's 32-byte hash: leaf hash = SHA-256(0x00 ‖ event hash). The event
//!   hash already covers the event's content and the hash before it in its stream, so the
//!   tree commits to every event and to how the streams interleave. Positions are not in
//!   it: an import renumbers them, and the tree of a store stays the tree of its export.
//! - Inner nodes and the root are RFC 6962's (`audit::node_hash`, `audit::merkle_root`),
//!   so a checkpoint of size n is the root a transparency-log client expects, and RFC
//!   6962's inclusion and consistency proofs apply to it.
//!
//! A [`Frontier`] is the tree's compact range: the roots of the perfect subtrees that
//! make up the leaves so far, largest (leftmost) first — one per set bit of the size, so
//! at most 64 hashes. Appending a leaf merges equal-sized subtrees from the right; the
//! root folds them right to left. A checkpoint stores its frontier so that the next one
//! folds only the events after it instead of re-reading the log; a verification never
//! trusts a stored frontier, it recomputes the tree from the log.

use std::collections::{BTreeSet, HashMap};

use serde::Serialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::audit::{Break, StreamHead, leaf_hash, node_hash};
use super::{StoredEvent, ZERO_HASH, event_hash};

/// The hash of the leaf that stands for an event: SHA-256(0x00 ‖ event hash).
pub fn event_leaf(event_hash: &[u8]) -> [u8; 32] {
    leaf_hash(event_hash)
}

/// The compact range of a log tree: `size` leaves as the roots of perfect subtrees.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    /// Subtree roots, largest first; subtree i holds 2^k leaves for the i-th set bit k of
    /// `size`, from the highest bit down.
    nodes: Vec<[u8; 32]>,
}

impl Frontier {
    /// The frontier of the empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// A stored frontier; refused unless it has one node per set bit of `size`.
    pub fn from_parts(size: u64, nodes: Vec<[u8; 32]>) -> Result<Self, String> {
        if nodes.len() != size.count_ones() as usize {
            return Err(format!(
                "a tree of {size} leaves has {} subtrees in its frontier, not {}",
                size.count_ones(),
                nodes.len()
            ));
        }
        Ok(Self { size, nodes })
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn nodes(&self) -> &[[u8; 32]] {
        &self.nodes
    }

    /// Appends a leaf (already hashed, see [`event_leaf`]).
    pub fn push(&mut self, leaf: [u8; 32]) {
        let mut node = leaf;
        let mut size = self.size;
        // Each trailing one bit is a subtree of the new leaf's size: merge it in.
        while size & 1 == 1 {
            let Some(left) = self.nodes.pop() else { break };
            node = node_hash(&left, &node);
            size >>= 1;
        }
        self.nodes.push(node);
        self.size += 1;
    }

    /// The RFC 6962 root of the leaves so far (SHA-256 of nothing for no leaves).
    pub fn root(&self) -> [u8; 32] {
        let mut nodes = self.nodes.iter().rev();
        let Some(last) = nodes.next() else { return Sha256::digest([]).into() };
        nodes.fold(*last, |right, left| node_hash(left, &right))
    }

    /// The leaves each subtree covers, as `[start, end)` ranges, in the nodes' order.
    pub fn ranges(&self) -> Vec<(u64, u64)> {
        subtree_ranges(self.size)
    }
}

/// The `[start, end)` leaf ranges of the perfect subtrees of a tree of `size` leaves,
/// largest first (the ranges of its frontier's nodes).
pub fn subtree_ranges(size: u64) -> Vec<(u64, u64)> {
    let mut start = 0;
    (0..u64::BITS)
        .rev()
        .filter(|bit| size & (1 << bit) != 0)
        .map(|bit| {
            let range = (start, start + (1 << bit));
            start = range.1;
            range
        })
        .collect()
}

// ---- Checking a log against checkpoints of its tree -----------------------------------

/// What the tree check needs of an event, in commit order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeEvent {
    pub stream_id: Uuid,
    pub stream_version: i64,
    pub position: i64,
    pub hash: Vec<u8>,
}

/// A checkpoint the log tree must match at its size: its root, and what helps locate a
/// difference — its frontier and stream heads (all of them, or those that changed since
/// the checkpoint before it: heads accumulate over the marks).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeMark {
    pub id: u64,
    pub size: u64,
    pub root: [u8; 32],
    pub frontier: Option<Vec<[u8; 32]>>,
    pub heads: Vec<StreamHead>,
}

/// How a stream of the log differs from the heads a checkpoint recorded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StreamDifference {
    pub stream_id: Uuid,
    /// The head the checkpoint recorded.
    pub kept_version: u64,
    pub kept_hash: String,
    /// The stream in the log's first `size` events (version 0: none of its events).
    pub log_version: u64,
    pub log_hash: Option<String>,
    /// The stream's events between the last checkpoint that matched and this one, as
    /// the log has them: (first version, its position, last version, its position).
    /// When first and last are one event, that event is where the stream first differs.
    pub changed: Option<(u64, u64, u64, u64)>,
}

/// Where the log first stops matching its checkpoints, as precisely as the checkpoints
/// allow.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TreeMismatch {
    /// The first checkpoint (in size order) that does not match.
    pub id: u64,
    pub size: u64,
    pub kept_root: String,
    /// The root of the log's first `size` events; `None` when the log is shorter.
    pub log_root: Option<String>,
    /// How many events the log holds (read so far).
    pub log_size: u64,
    /// The last checkpoint before it that matches: (id, size).
    pub last_match: Option<(u64, u64)>,
    /// The first difference is among the log's events `first` to `last` (1-based, in
    /// commit order), at these positions in the log read.
    pub first: u64,
    pub last: u64,
    pub first_position: Option<u64>,
    pub last_position: Option<u64>,
    /// The streams whose heads differ from the checkpoint's.
    pub streams: Vec<StreamDifference>,
}

/// At most this many streams are named in a message.
const STREAMS_NAMED: usize = 5;

fn short_hash(hash: &str) -> &str {
    hash.get(..16).unwrap_or(hash)
}

impl TreeMismatch {
    /// The one event the difference is pinned to, if the checkpoints pin it: (stream,
    /// version, position).
    pub fn pinned(&self) -> Option<(Uuid, u64, u64)> {
        match self.streams.as_slice() {
            [only] => match only.changed {
                Some((first, position, last, _)) if first == last => Some((only.stream_id, first, position)),
                _ => None,
            },
            _ => None,
        }
    }

    /// The mismatch in words: which checkpoint, the range of events, the streams.
    pub fn describe(&self) -> String {
        let mut text = match &self.log_root {
            Some(log_root) => format!(
                "checkpoint {} (size {}) does not match the log: the root of the log's first {} events in commit \
                 order is {}, the checkpoint's is {}",
                self.id,
                self.size,
                self.size,
                short_hash(log_root),
                short_hash(&self.kept_root)
            ),
            None => format!(
                "checkpoint {} covers {} events, but the log holds only {}: events were removed (or the log read is \
                 incomplete)",
                self.id, self.size, self.log_size
            ),
        };
        match self.last_match {
            Some((id, size)) => text.push_str(&format!("; checkpoint {id} (size {size}) before it still matches")),
            None => text.push_str("; no checkpoint before it matches"),
        }
        let at = |position: Option<u64>| position.map(|p| format!("position {p}")).unwrap_or_else(|| "?".into());
        if self.first == self.last {
            text.push_str(&format!(
                ", so the first difference is event {} in commit order ({})",
                self.first,
                at(self.first_position)
            ));
        } else if self.first < self.last {
            text.push_str(&format!(
                ", so the first difference is among events {} to {} in commit order ({} to {})",
                self.first,
                self.last,
                at(self.first_position),
                at(self.last_position)
            ));
        }
        for stream in self.streams.iter().take(STREAMS_NAMED) {
            let log = match (&stream.log_hash, stream.log_version) {
                (Some(hash), version) => format!("version {version} with hash {}", short_hash(hash)),
                (None, _) => "none of its events".to_owned(),
            };
            text.push_str(&format!(
                "; stream {}: the checkpoint recorded version {} with hash {}, the log has {log} there",
                stream.stream_id,
                stream.kept_version,
                short_hash(&stream.kept_hash)
            ));
            match stream.changed {
                Some((first, position, last, _)) if first == last => {
                    text.push_str(&format!(", so its first differing event is version {first} at position {position}"))
                }
                Some((first, position, last, last_position)) => text.push_str(&format!(
                    ", so it differs from one of versions {first} to {last} on (positions {position} to {last_position})"
                )),
                None => {}
            }
        }
        if self.streams.len() > STREAMS_NAMED {
            text.push_str(&format!("; and {} more streams", self.streams.len() - STREAMS_NAMED));
        }
        text
    }

    /// The mismatch as a verification break: at the pinned event, if any.
    pub fn to_break(&self) -> Break {
        let (stream_id, stream_version, position) =
            self.pinned().unwrap_or((Uuid::nil(), 0, self.first_position.unwrap_or_default()));
        Break { stream_id, stream_version, position, reason: self.describe() }
    }
}

/// What the check keeps of a stream of the log.
struct Seen {
    version: i64,
    hash: Vec<u8>,
    /// The match count when `first_*` was set: the stream's first event after the last
    /// matching checkpoint.
    epoch: u64,
    first_version: i64,
    first_position: i64,
    last_position: i64,
}

/// Recomputes the log tree from the events fed in commit order and compares it with
/// every mark at its size, in size order, until one does not match (or the log ends
/// before one): memory for one frontier and one entry per stream, never the events.
pub struct TreeAudit {
    marks: Vec<TreeMark>,
    next: usize,
    frontier: Frontier,
    seen: HashMap<Uuid, Seen>,
    /// The heads of the marks matched so far, the latest per stream.
    kept: HashMap<Uuid, StreamHead>,
    matched: Option<(u64, u64)>,
    matches: u64,
    /// Event indexes whose positions a mismatch at the next mark may need, and those seen.
    wanted: BTreeSet<u64>,
    positions: HashMap<u64, i64>,
    mismatch: Option<TreeMismatch>,
}

impl TreeAudit {
    pub fn new(mut marks: Vec<TreeMark>) -> Self {
        marks.sort_by_key(|mark| (mark.size, mark.id));
        let mut audit = Self {
            marks,
            next: 0,
            frontier: Frontier::new(),
            seen: HashMap::new(),
            kept: HashMap::new(),
            matched: None,
            matches: 0,
            wanted: BTreeSet::new(),
            positions: HashMap::new(),
            mismatch: None,
        };
        audit.want_positions();
        audit.advance();
        audit
    }

    /// Whether reading on can change the outcome: not after a mismatch, nor once every
    /// mark has matched.
    pub fn is_done(&self) -> bool {
        self.mismatch.is_some() || self.next >= self.marks.len()
    }

    /// How many marks matched so far.
    pub fn matches(&self) -> u64 {
        self.matches
    }

    /// The next event of the log in commit order.
    pub fn push(&mut self, event: &TreeEvent) {
        if self.is_done() {
            return;
        }
        let index = self.frontier.size();
        if self.wanted.contains(&index) {
            self.positions.insert(index, event.position);
        }
        let matches = self.matches;
        let seen = self.seen.entry(event.stream_id).or_insert(Seen {
            version: 0,
            hash: Vec::new(),
            epoch: u64::MAX,
            first_version: 0,
            first_position: 0,
            last_position: 0,
        });
        if seen.epoch != matches {
            (seen.epoch, seen.first_version, seen.first_position) = (matches, event.stream_version, event.position);
        }
        seen.version = event.stream_version;
        seen.hash.clone_from(&event.hash);
        seen.last_position = event.position;
        self.frontier.push(event_leaf(&event.hash));
        self.advance();
    }

    /// The outcome: the first mark the log does not match, if any.
    pub fn finish(mut self) -> Option<TreeMismatch> {
        if self.mismatch.is_none() && self.next < self.marks.len() {
            self.mismatch = Some(self.locate(true));
        }
        self.mismatch
    }

    /// Compares the marks of the current size.
    fn advance(&mut self) {
        while let Some(mark) = self.marks.get(self.next) {
            if mark.size != self.frontier.size() {
                return;
            }
            if mark.root != self.frontier.root() {
                self.mismatch = Some(self.locate(false));
                return;
            }
            self.matched = Some((mark.id, mark.size));
            self.matches += 1;
            for head in &mark.heads {
                self.kept.insert(head.stream_id, head.clone());
            }
            self.next += 1;
            self.want_positions();
        }
    }

    /// The indexes whose positions a mismatch at the next mark would report: the first
    /// after the last match, the mark's last, and the bounds of its frontier's subtrees.
    fn want_positions(&mut self) {
        self.wanted.clear();
        self.positions.clear();
        let Some(mark) = self.marks.get(self.next) else { return };
        let from = self.frontier.size();
        self.wanted.insert(from);
        self.wanted.insert(mark.size.saturating_sub(1));
        for (start, end) in subtree_ranges(mark.size) {
            self.wanted.extend([start, end - 1].into_iter().filter(|index| *index >= from));
        }
    }

    /// Where the log stops matching the next mark (`short`: the log ended before it).
    fn locate(&self, short: bool) -> TreeMismatch {
        let mark = &self.marks[self.next];
        let matched_size = self.matched.map_or(0, |(_, size)| size);
        let (mut lo, mut hi) = (matched_size, if short { self.frontier.size() } else { mark.size });
        if let Some(kept) = mark.frontier.as_ref().filter(|kept| !short && kept.len() == self.frontier.nodes().len())
            && let Some(i) = kept.iter().zip(self.frontier.nodes()).position(|(kept, log)| kept != log)
        {
            let (start, end) = self.frontier.ranges()[i];
            (lo, hi) = (lo.max(start), hi.min(end));
        }
        let mut heads = self.kept.clone();
        for head in &mark.heads {
            heads.insert(head.stream_id, head.clone());
        }
        let mut streams: Vec<StreamDifference> = heads
            .values()
            .filter_map(|head| {
                let seen = self.seen.get(&head.stream_id);
                let same = seen.is_some_and(|seen| {
                    u64::try_from(seen.version).ok() == Some(head.version) && seen.hash == head.hash
                });
                (!same).then(|| StreamDifference {
                    stream_id: head.stream_id,
                    kept_version: head.version,
                    kept_hash: hex::encode(head.hash),
                    log_version: seen.and_then(|seen| u64::try_from(seen.version).ok()).unwrap_or_default(),
                    log_hash: seen.map(|seen| hex::encode(&seen.hash)),
                    changed: seen.filter(|seen| seen.epoch == self.matches).map(|seen| {
                        let number = |n: i64| u64::try_from(n).unwrap_or_default();
                        (
                            number(seen.first_version),
                            number(seen.first_position),
                            number(seen.version),
                            number(seen.last_position),
                        )
                    }),
                })
            })
            .collect();
        streams.sort_by_key(|stream| stream.stream_id);
        let position = |index: u64| self.positions.get(&index).and_then(|p| u64::try_from(*p).ok());
        TreeMismatch {
            id: mark.id,
            size: mark.size,
            kept_root: hex::encode(mark.root),
            log_root: (!short).then(|| hex::encode(self.frontier.root())),
            log_size: self.frontier.size(),
            last_match: self.matched,
            first: lo + 1,
            last: hi,
            first_position: position(lo),
            last_position: hi.checked_sub(1).and_then(position),
            streams,
        }
    }
}

/// The outcome of checking a log against kept checkpoints.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LogAuditReport {
    pub events_checked: u64,
    pub checkpoints_matched: u64,
    /// A stream of the log whose hash chain is broken (the log contradicts itself).
    pub broken_chain: Option<Break>,
    /// The first kept checkpoint the log does not match.
    pub mismatch: Option<TreeMismatch>,
}

impl LogAuditReport {
    pub fn ok(&self) -> bool {
        self.broken_chain.is_none() && self.mismatch.is_none()
    }
}

/// Checks a log read in commit order (from a server or an export file) against kept
/// checkpoints: every event's hash recomputes from its content and links to the one
/// before it in its stream, each stream's versions follow on, and the tree of the log
/// has each checkpoint's root at its size (`TreeAudit`).
pub struct LogAudit {
    chains: HashMap<Uuid, (i64, Vec<u8>)>,
    tree: TreeAudit,
    events: u64,
    broken: Option<Break>,
}

impl LogAudit {
    pub fn new(marks: Vec<TreeMark>) -> Self {
        Self { chains: HashMap::new(), tree: TreeAudit::new(marks), events: 0, broken: None }
    }

    /// Whether the outcome is known: a broken chain, a mismatch, or every checkpoint met.
    pub fn is_done(&self) -> bool {
        self.broken.is_some() || self.tree.is_done()
    }

    pub fn push(&mut self, event: &StoredEvent) {
        if self.is_done() {
            return;
        }
        let (version, hash) = self.chains.get(&event.stream_id).cloned().unwrap_or((0, ZERO_HASH.to_vec()));
        let broken = |reason: String| Break {
            stream_id: event.stream_id,
            stream_version: u64::try_from(version + 1).unwrap_or_default(),
            position: u64::try_from(event.position).unwrap_or_default(),
            reason,
        };
        if event.stream_version != version + 1 {
            self.broken = Some(broken(format!(
                "in commit order, version {} of the stream follows version {version}",
                event.stream_version
            )));
            return;
        }
        if event.prev_hash != hash {
            self.broken = Some(broken(format!("prev_hash does not link to version {version}")));
            return;
        }
        if event_hash(&event.prev_hash, &event.content()).as_slice() != event.hash.as_slice() {
            self.broken = Some(broken("payload or metadata changed: hash mismatch".to_owned()));
            return;
        }
        self.chains.insert(event.stream_id, (event.stream_version, event.hash.clone()));
        self.events += 1;
        self.tree.push(&TreeEvent {
            stream_id: event.stream_id,
            stream_version: event.stream_version,
            position: event.position,
            hash: event.hash.clone(),
        });
    }

    pub fn finish(self) -> LogAuditReport {
        let matched = self.tree.matches();
        let mismatch = if self.broken.is_some() { None } else { self.tree.finish() };
        LogAuditReport {
            events_checked: self.events,
            checkpoints_matched: matched,
            broken_chain: self.broken,
            mismatch,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::audit::merkle_root;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn leaves(count: usize) -> Vec<[u8; 32]> {
        (0..count).map(|i| event_leaf(&Sha256::digest(i.to_le_bytes()))).collect()
    }

    #[test]
    fn the_empty_frontier_has_the_empty_root() {
        assert_eq!(
            hex::encode(Frontier::new().root()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn a_frontier_has_one_subtree_per_set_bit_covering_the_leaves_in_order() {
        let mut frontier = Frontier::new();
        for leaf in leaves(13) {
            frontier.push(leaf);
        }
        assert_eq!(frontier.nodes().len(), 3);
        assert_eq!(frontier.ranges(), [(0, 8), (8, 12), (12, 13)]);
        let all = leaves(13);
        assert_eq!(frontier.nodes()[0], merkle_root(&all[..8]));
        assert_eq!(frontier.nodes()[1], merkle_root(&all[8..12]));
        assert_eq!(frontier.nodes()[2], all[12]);
        assert!(Frontier::from_parts(13, frontier.nodes().to_vec()).is_ok());
        assert!(Frontier::from_parts(12, frontier.nodes().to_vec()).is_err());
    }

    /// Streams a and b interleaved a, b, a, b, …: `count` events each, hash-chained.
    fn interleaved(count: i64) -> Vec<StoredEvent> {
        let mut prev: HashMap<Uuid, Vec<u8>> = HashMap::new();
        (0..count * 2)
            .map(|i| {
                let stream_id = Uuid::from_u128(1 + (i % 2) as u128);
                let prev_hash = prev.get(&stream_id).cloned().unwrap_or(ZERO_HASH.to_vec());
                let mut event = StoredEvent {
                    position: i + 1,
                    stream_id,
                    stream_version: i / 2 + 1,
                    event_id: Uuid::from_u128(1000 + i as u128),
                    event_type: "StageChanged".into(),
                    schema_version: 1,
                    payload: serde_json::json!({"n": i}),
                    actor: "a@example.com".into(),
                    command_id: format!("c-{i}"),
                    correlation_id: "x".into(),
                    causation_id: "x".into(),
                    recorded_at: chrono::DateTime::from_timestamp_micros(1_700_000_000_000_000 + i).unwrap_or_default(),
                    prev_hash,
                    hash: Vec::new(),
                };
                event.hash = event_hash(&event.prev_hash, &event.content()).to_vec();
                prev.insert(stream_id, event.hash.clone());
                event
            })
            .collect()
    }

    /// The mark a checkpoint of the first `size` events makes, with every head.
    fn mark_of(id: u64, events: &[StoredEvent], size: usize) -> TreeMark {
        let mut frontier = Frontier::new();
        let mut heads: BTreeMap<Uuid, StreamHead> = BTreeMap::new();
        for event in &events[..size] {
            frontier.push(event_leaf(&event.hash));
            let hash = event.hash.as_slice().try_into().expect("32 bytes");
            let version = u64::try_from(event.stream_version).expect("positive");
            heads.insert(event.stream_id, StreamHead { stream_id: event.stream_id, version, hash });
        }
        TreeMark {
            id,
            size: size as u64,
            root: frontier.root(),
            frontier: Some(frontier.nodes().to_vec()),
            heads: heads.into_values().collect(),
        }
    }

    fn audit(marks: Vec<TreeMark>, events: &[StoredEvent]) -> LogAuditReport {
        let mut audit = LogAudit::new(marks);
        for event in events {
            audit.push(event);
        }
        audit.finish()
    }

    #[test]
    fn a_log_matches_its_checkpoints_and_a_consistent_rewrite_is_pinned_between_two() {
        let events = interleaved(10);
        let marks = vec![mark_of(1, &events, 8), mark_of(2, &events, 13), mark_of(3, &events, 20)];
        let report = audit(marks.clone(), &events);
        assert!(report.ok(), "{report:?}");
        assert_eq!((report.events_checked, report.checkpoints_matched), (20, 3));

        // Rewrite event 11 (stream a, version 6) and re-hash the rest of stream a: every
        // chain still links, but the log is not the one checkpoint 2 signed.
        let mut forged = events.clone();
        forged[10].payload = serde_json::json!({"n": "forged"});
        let mut prev = forged[8].hash.clone();
        for event in forged.iter_mut().skip(10).step_by(2) {
            event.prev_hash = prev;
            event.hash = event_hash(&event.prev_hash, &event.content()).to_vec();
            prev = event.hash.clone();
        }
        let report = audit(marks.clone(), &forged);
        assert!(report.broken_chain.is_none(), "the forged chains link: {report:?}");
        let mismatch = report.mismatch.expect("checkpoint 2 no longer matches");
        assert_eq!((mismatch.id, mismatch.last_match), (2, Some((1, 8))));
        // Frontier of 13: [0, 8), [8, 12), [12, 13): the second subtree differs.
        assert_eq!((mismatch.first, mismatch.last), (9, 12));
        assert_eq!((mismatch.first_position, mismatch.last_position), (Some(9), Some(12)));
        let a = Uuid::from_u128(1);
        assert_eq!(mismatch.streams.len(), 1, "stream b is as checkpoint 2 recorded it");
        assert_eq!(mismatch.streams[0].changed, Some((5, 9, 7, 13)));
        assert_eq!(mismatch.pinned(), None, "versions 5 to 7 of stream a: the checkpoints do not pin one");
        assert!(mismatch.describe().contains("versions 5 to 7"), "{}", mismatch.describe());

        // With a checkpoint right before the rewritten event, it is pinned exactly.
        let close = vec![mark_of(1, &events, 10), mark_of(2, &events, 12)];
        let mismatch = audit(close, &forged).mismatch.expect("mismatch");
        assert_eq!(mismatch.pinned(), Some((a, 6, 11)));
        assert!(mismatch.describe().contains("its first differing event is version 6 at position 11"));
        assert_eq!(mismatch.to_break().stream_version, 6);
    }

    #[test]
    fn a_shorter_log_a_broken_chain_and_an_empty_checkpoint_are_told_apart() {
        let events = interleaved(5);
        let report = audit(vec![mark_of(1, &events, 10)], &events[..7]);
        let mismatch = report.mismatch.expect("the log lost events");
        assert_eq!((mismatch.log_root.as_deref(), mismatch.log_size), (None, 7));
        assert!(mismatch.describe().contains("covers 10 events, but the log holds only 7"));

        let mut edited = events.clone();
        edited[3].payload = serde_json::json!({"n": "edited"});
        let report = audit(vec![mark_of(1, &events, 10)], &edited);
        let broken = report.broken_chain.expect("the hash no longer recomputes");
        assert_eq!((broken.stream_version, broken.position), (2, 4));

        assert!(audit(vec![mark_of(1, &events, 0)], &[]).ok(), "the empty tree's root");
    }

    proptest! {
        #[test]
        fn folding_leaf_by_leaf_gives_the_rfc_6962_root_at_every_size(count in 0usize..80) {
            let all = leaves(count);
            let mut frontier = Frontier::new();
            prop_assert_eq!(frontier.root(), merkle_root(&[]));
            for (i, leaf) in all.iter().enumerate() {
                frontier.push(*leaf);
                prop_assert_eq!(frontier.size(), i as u64 + 1);
                prop_assert_eq!(frontier.root(), merkle_root(&all[..=i]));
            }
            // A stored frontier resumes where it stopped.
            let split = count / 3;
            let mut first = Frontier::new();
            all[..split].iter().for_each(|leaf| first.push(*leaf));
            let mut resumed = Frontier::from_parts(first.size(), first.nodes().to_vec()).expect("a valid frontier");
            all[split..].iter().for_each(|leaf| resumed.push(*leaf));
            prop_assert_eq!(resumed, frontier);
        }
    }
}
