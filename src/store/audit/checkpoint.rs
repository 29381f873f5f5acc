//! Checkpoints: which tree a root is taken over, a stored checkpoint (`CheckpointRecord`)
//! decoded and checked against itself, the row a backend reads (`RawCheckpoint`) or writes
//! (`PlannedCheckpoint`), and `LogFold`, which builds the next log-tree checkpoint from
//! the latest one.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::export::parse_hash;
use super::tree::{StreamHead, heads_root};
use crate::store::note::{CheckpointSigner, read_note};
use crate::store::tlog::{Frontier, TreeMark, event_leaf};
use crate::store::{GlobalCursor, StoreError};

/// Which tree a checkpoint's root is taken over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CheckpointTree {
    /// Checkpoints taken before the log tree: the root over the stream heads.
    StreamHeads,
    /// The log tree (`tlog`): every event in commit order.
    Log,
}

impl CheckpointTree {
    /// The name stored in the `tree` column.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckpointTree::StreamHeads => "stream-heads",
            CheckpointTree::Log => "log",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        match name {
            "stream-heads" => Some(CheckpointTree::StreamHeads),
            "log" => Some(CheckpointTree::Log),
            _ => None,
        }
    }
}

/// A stored checkpoint: every stream's head at one consistent point of the log, and the
/// root of its tree. For the log tree, `events` is the tree size: the checkpoint covers
/// the first `events` events of the log in commit order, and `heads` are the streams'
/// heads in exactly that prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointRecord {
    pub id: u64,
    pub created_at: DateTime<Utc>,
    pub tree: CheckpointTree,
    pub streams: u64,
    pub events: u64,
    pub root: [u8; 32],
    pub heads: Vec<StreamHead>,
    /// The log tree's frontier at `events` (empty for the stream-heads tree).
    pub frontier: Vec<[u8; 32]>,
    /// The signed note, when the server had a checkpoint key.
    pub note: Option<String>,
}

impl CheckpointRecord {
    pub fn root_hex(&self) -> String {
        hex::encode(self.root)
    }

    /// Decodes a stored row; says what is wrong with a damaged one.
    pub fn decode(raw: RawCheckpoint) -> Result<Self, String> {
        let id = u64::try_from(raw.id).map_err(|_| format!("checkpoint id {} is negative", raw.id))?;
        let count = |name: &str, value: i64| {
            u64::try_from(value).map_err(|_| format!("checkpoint {id}: {name} {value} is negative"))
        };
        let tree = CheckpointTree::parse(&raw.tree)
            .ok_or_else(|| format!("checkpoint {id}: tree {:?} is neither \"log\" nor \"stream-heads\"", raw.tree))?;
        let root: [u8; 32] = raw
            .root
            .as_slice()
            .try_into()
            .map_err(|_| format!("checkpoint {id}: its root is {} bytes, not 32", raw.root.len()))?;
        let heads: Vec<StreamHead> = serde_json::from_value(raw.heads)
            .map_err(|e| format!("checkpoint {id}: its heads are not a list of stream heads: {e}"))?;
        let frontier = match (tree, raw.frontier) {
            (CheckpointTree::Log, Some(nodes)) => {
                let nodes: Vec<String> = serde_json::from_value(nodes)
                    .map_err(|e| format!("checkpoint {id}: its frontier is not a list of hashes: {e}"))?;
                nodes
                    .iter()
                    .map(|node| parse_hash("frontier", node).map_err(|e| format!("checkpoint {id}: {e}")))
                    .collect::<Result<Vec<_>, _>>()?
            }
            (CheckpointTree::Log, None) => return Err(format!("checkpoint {id}: it has no frontier")),
            (CheckpointTree::StreamHeads, _) => Vec::new(),
        };
        Ok(Self {
            id,
            created_at: raw.created_at,
            tree,
            streams: count("streams", raw.streams)?,
            events: count("events", raw.events)?,
            root,
            heads,
            frontier,
            note: raw.note,
        })
    }

    /// Checks that the checkpoint is what a checkpoint's creation would have made of
    /// itself: ordered heads, counts that add up, a root that recomputes from its heads
    /// (stream-heads tree) or from its frontier (log tree), and a note that says the same
    /// size and root. Whether the log still has that root is the verification's business.
    pub fn check(&self) -> Result<(), String> {
        let id = self.id;
        if let Some(pair) = self.heads.windows(2).find(|pair| pair[0].stream_id >= pair[1].stream_id) {
            return Err(format!("checkpoint {id}: its heads are not in stream id order at {}", pair[1].stream_id));
        }
        if let Some(head) = self.heads.iter().find(|head| head.version == 0) {
            return Err(format!("checkpoint {id}: it records stream {} at version 0", head.stream_id));
        }
        if self.streams != self.heads.len() as u64 {
            return Err(format!(
                "checkpoint {id}: it counts {} streams but lists {} heads",
                self.streams,
                self.heads.len()
            ));
        }
        let events: u64 = self.heads.iter().map(|head| head.version).fold(0, u64::saturating_add);
        if self.events != events {
            return Err(format!("checkpoint {id}: it counts {} events but its heads add up to {events}", self.events));
        }
        match self.tree {
            CheckpointTree::StreamHeads if heads_root(&self.heads) != self.root => {
                return Err(format!("checkpoint {id}: its root does not recompute from its stream heads"));
            }
            CheckpointTree::StreamHeads => {}
            CheckpointTree::Log => {
                let frontier = Frontier::from_parts(self.events, self.frontier.clone())
                    .map_err(|e| format!("checkpoint {id}: its frontier is damaged: {e}"))?;
                if frontier.root() != self.root {
                    return Err(format!("checkpoint {id}: its root does not recompute from its frontier"));
                }
            }
        }
        if let Some(note) = &self.note {
            let said = read_note(note).map_err(|e| format!("checkpoint {id}: its note {e}"))?;
            if (said.size, said.root) != (self.events, self.root) {
                return Err(format!(
                    "checkpoint {id}: its signed note says {} events with root {}, the checkpoint {} events with root {}",
                    said.size,
                    hex::encode(said.root),
                    self.events,
                    self.root_hex()
                ));
            }
        }
        Ok(())
    }

    /// What the log tree must match at this checkpoint's size (log tree only).
    pub(super) fn mark(&self) -> Option<TreeMark> {
        (self.tree == CheckpointTree::Log).then(|| TreeMark {
            id: self.id,
            size: self.events,
            root: self.root,
            frontier: Some(self.frontier.clone()),
            heads: self.heads.clone(),
        })
    }
}

/// A checkpoint row as a backend reads it, before decoding.
#[derive(Clone, Debug)]
pub struct RawCheckpoint {
    pub id: i64,
    pub created_at: DateTime<Utc>,
    pub tree: String,
    pub streams: i64,
    pub events: i64,
    pub root: Vec<u8>,
    pub heads: serde_json::Value,
    pub frontier: Option<serde_json::Value>,
    pub note: Option<String>,
    /// Where the next checkpoint resumes the log in commit order (log tree only).
    pub resume_tx: Option<i64>,
    pub resume_position: Option<i64>,
}

/// A checkpoint ready to store: what a backend writes, in one row.
pub struct PlannedCheckpoint {
    pub created_at: DateTime<Utc>,
    pub tree: CheckpointTree,
    pub streams: i64,
    pub events: i64,
    pub root: [u8; 32],
    pub heads: Vec<StreamHead>,
    pub heads_json: serde_json::Value,
    pub frontier: Vec<[u8; 32]>,
    pub frontier_json: serde_json::Value,
    pub note: Option<String>,
    /// The commit-order key of the last event it covers.
    pub resume: GlobalCursor,
}

impl PlannedCheckpoint {
    /// The record, once stored under `id`.
    pub fn record(self, id: i64) -> CheckpointRecord {
        CheckpointRecord {
            id: u64::try_from(id).unwrap_or_default(),
            created_at: self.created_at,
            tree: self.tree,
            streams: u64::try_from(self.streams).unwrap_or_default(),
            events: u64::try_from(self.events).unwrap_or_default(),
            root: self.root,
            heads: self.heads,
            frontier: self.frontier,
            note: self.note,
        }
    }

    /// The resume cursor as stored (PostgreSQL's transaction id fits in 63 bits).
    pub fn resume_tx(&self) -> i64 {
        i64::try_from(self.resume.tx_id).unwrap_or(i64::MAX)
    }
}

/// What a request for a checkpoint got: a new one, or the latest when the log had not
/// grown since it (`recorded` false).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpointed {
    pub record: CheckpointRecord,
    pub recorded: bool,
}

/// The next checkpoint being built: the latest one's frontier and heads, with the events
/// committed after it folded in, in commit order. It trusts the checkpoint it resumes
/// (the server's own record; a verification recomputes everything from the log).
#[derive(Debug, Default)]
pub struct LogFold {
    frontier: Frontier,
    heads: BTreeMap<Uuid, StreamHead>,
    cursor: GlobalCursor,
    /// The checkpoint resumed, kept to be answered again while nothing follows it.
    resumed: Option<CheckpointRecord>,
    grew: bool,
}

impl LogFold {
    /// The fold of an empty log (no log checkpoint yet).
    pub fn start() -> Self {
        Self::default()
    }

    /// Resumes after the latest log-tree checkpoint.
    pub fn resume(raw: RawCheckpoint) -> Result<Self, StoreError> {
        let cursor = GlobalCursor {
            tx_id: raw.resume_tx.and_then(|tx| u64::try_from(tx).ok()).unwrap_or_default(),
            position: raw.resume_position.unwrap_or_default(),
        };
        let record = CheckpointRecord::decode(raw).map_err(StoreError::Corrupt)?;
        record.check().map_err(StoreError::Corrupt)?;
        let frontier = Frontier::from_parts(record.events, record.frontier.clone()).map_err(StoreError::Corrupt)?;
        let heads = record.heads.iter().map(|head| (head.stream_id, head.clone())).collect();
        Ok(Self { frontier, heads, cursor, resumed: Some(record), grew: false })
    }

    /// The resumed checkpoint when no event followed it and it carries what was asked
    /// (a note signed by `signer`'s key when one is given): a checkpoint is due only
    /// when the log grew, so restarts of an idle log record nothing new.
    pub fn unchanged(&self, signer: Option<&CheckpointSigner>) -> Option<Checkpointed> {
        let resumed = self.resumed.as_ref().filter(|_| !self.grew)?;
        let signed_as_asked = match (signer, &resumed.note) {
            (None, _) => true,
            (Some(signer), Some(note)) => signer.verifier().open(note).is_ok(),
            (Some(_), None) => false,
        };
        signed_as_asked.then(|| Checkpointed { record: resumed.clone(), recorded: false })
    }

    /// Where the events to fold start: after this commit-order key.
    pub fn cursor(&self) -> GlobalCursor {
        self.cursor
    }

    /// Folds in the next event in commit order. A stream whose versions do not follow on
    /// in commit order is corruption: no checkpoint is taken over it.
    pub fn push(&mut self, cursor: GlobalCursor, stream_id: Uuid, version: i64, hash: &[u8]) -> Result<(), StoreError> {
        let corrupt = |what: String| {
            StoreError::Corrupt(format!(
                "cannot checkpoint the log: {what} (at position {}); run a verification",
                cursor.position
            ))
        };
        let hash: [u8; 32] =
            hash.try_into().map_err(|_| corrupt(format!("stream {stream_id}: a hash is not 32 bytes")))?;
        let expected = self.heads.get(&stream_id).map_or(1, |head| head.version + 1);
        if u64::try_from(version).ok() != Some(expected) {
            return Err(corrupt(format!(
                "stream {stream_id} has version {version} where version {expected} comes next in commit order"
            )));
        }
        self.heads.insert(stream_id, StreamHead { stream_id, version: expected, hash });
        self.frontier.push(event_leaf(&hash));
        self.cursor = cursor;
        self.grew = true;
        Ok(())
    }

    /// The checkpoint of everything folded, signed when a signer is given.
    pub fn plan(self, signer: Option<&CheckpointSigner>) -> Result<PlannedCheckpoint, StoreError> {
        let overflow = || StoreError::Corrupt("checkpoint counts overflow".into());
        let root = self.frontier.root();
        let size = self.frontier.size();
        let note = signer.map(|signer| signer.sign(size, &root)).transpose().map_err(StoreError::Corrupt)?;
        let heads: Vec<StreamHead> = self.heads.into_values().collect();
        let encode =
            |what: &str, e: serde_json::Error| StoreError::Corrupt(format!("cannot encode checkpoint {what}: {e}"));
        let heads_json = serde_json::to_value(&heads).map_err(|e| encode("heads", e))?;
        let frontier = self.frontier.nodes().to_vec();
        let frontier_json = serde_json::to_value(frontier.iter().map(hex::encode).collect::<Vec<_>>())
            .map_err(|e| encode("frontier", e))?;
        Ok(PlannedCheckpoint {
            created_at: crate::store::now_micros(),
            tree: CheckpointTree::Log,
            streams: i64::try_from(heads.len()).map_err(|_| overflow())?,
            events: i64::try_from(size).map_err(|_| overflow())?,
            root,
            heads,
            heads_json,
            frontier,
            frontier_json,
            note,
            resume: self.cursor,
        })
    }
}

/// How many events a checkpoint folds in per read.
pub const CHECKPOINT_PAGE: i64 = 5_000;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::audit::merkle_root;
    use crate::store::audit::testing::{chain, folded};

    #[test]
    fn a_log_checkpoint_is_the_tree_of_the_log_in_order_with_every_head_and_checks() {
        let (a, b) = (Uuid::from_u128(2), Uuid::from_u128(1));
        let events = [chain(a, 3, 0), chain(b, 2, 3)].concat();
        let raw = folded(1, &events, None);
        let record = CheckpointRecord::decode(raw.clone()).expect("decode");
        assert_eq!((record.tree, record.streams, record.events), (CheckpointTree::Log, 2, 5));
        let leaves: Vec<[u8; 32]> = events.iter().map(|e| event_leaf(&e.hash)).collect();
        assert_eq!(record.root, merkle_root(&leaves));
        assert_eq!(record.heads.iter().map(|h| (h.stream_id, h.version)).collect::<Vec<_>>(), [(b, 2), (a, 3)]);
        assert_eq!(record.frontier.len(), 2, "5 leaves: subtrees of 4 and 1");
        assert_eq!(record.check(), Ok(()));

        // The next checkpoint resumes from this one and folds only what follows.
        let mut fold = LogFold::resume(raw).expect("resume");
        assert_eq!(fold.cursor().position, 5);
        let more = chain(a, 4, 0).remove(3);
        fold.push(GlobalCursor { tx_id: 0, position: 9 }, a, 4, &more.hash).expect("next version");
        let next = fold.plan(None).expect("plan");
        assert_eq!(next.root, merkle_root(&[leaves, vec![event_leaf(&more.hash)]].concat()));
        let mut skipping = LogFold::start();
        assert!(skipping.push(GlobalCursor::default(), a, 2, &more.hash).is_err(), "version 2 before version 1");

        let mut forged = record.clone();
        forged.root = [9; 32];
        assert!(forged.check().is_err_and(|e| e.contains("does not recompute from its frontier")));
        let mut miscounted = record;
        miscounted.events = 4;
        assert!(miscounted.check().is_err_and(|e| e.contains("add up to 5")));
    }
}
