//! The audit side of the store, independent of the backend: reading a stream up to a
//! past point (`Until`), the JSON Lines export format (`ExportLine`), checkpoints and
//! their Merkle root, verification of every hash chain against the checkpoints
//! (`Verifier`), and the checks an import makes line by line (`Importer`). The backends
//! (`postgres`, `sqlite`) only supply the SQL around these.
//!
//! # Checkpoints: the Merkle root, so that an auditor can recompute it
//!
//! A checkpoint records the head of every stream — (stream id, version, hash of the
//! event at that version) — and one digest over all of them, its **root**, a Merkle tree
//! hash as defined by RFC 6962 (Certificate Transparency), section 2.1:
//!
//! - the leaves are the heads **ordered by stream id** (the byte order of the UUID, which
//!   is also the order of its lower-case hyphenated text);
//! - the data of a leaf is 56 bytes: the 16 bytes of the stream id (RFC 4122 byte order),
//!   the version as an unsigned 64-bit big-endian integer, and the 32 bytes of the head
//!   hash;
//! - leaf hash = SHA-256(0x00 ‖ leaf data); node hash = SHA-256(0x01 ‖ left ‖ right);
//! - the root of no leaves is SHA-256 of the empty string (`e3b0c442…7852b855`), the root
//!   of one leaf is its leaf hash, and for n > 1 leaves, with k the **largest power of two
//!   smaller than n**, root(D[0..n]) = node(root(D[0..k]), root(D[k..n])). An odd node is
//!   never duplicated or padded: the right subtree is simply smaller (three leaves a, b, c
//!   give node(node(a, b), c)). This is RFC 6962's MTH, so its published test vectors hold
//!   (see the tests below), and its inclusion and consistency proofs apply.
//!
//! A checkpoint's `events` is the sum of its head versions: the number of events it
//! covers. An auditor who keeps a root outside the database can later list the
//! checkpoints, find the one with that root, and run a verification: the checkpoint's
//! root must recompute from its stored heads, and every head must still be in the log
//! with that version and hash — so deleting the tail of a stream, or a whole stream, or
//! re-hashing a stream from some version on, is detected even though every remaining
//! chain links.
//!
//! # Verification order
//!
//! A verification reports the first break in this order: first each checkpoint's own
//! integrity (in id order); then the streams in stream id order, each in version order —
//! a stream a checkpoint recorded but the log no longer holds is reported at its place in
//! that order, and a tail a checkpoint recorded but the log lost at the end of its stream.
//! Per event, in order: versions contiguous from 1, positions increasing with versions
//! (the hash does not cover the position, so this is what catches two events whose
//! positions were swapped), `prev_hash` equal to the previous event's hash, the
//! recomputed `event_hash`, and the hash any checkpoint recorded at that version.
//!
//! What a per-stream chain cannot show: how events of *different* streams interleave in
//! the global log, and (without a checkpoint taken before) a deleted tail or stream.

use std::collections::{BTreeMap, HashMap, VecDeque, hash_map::Entry};
use std::future::Future;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio_stream::{Stream, StreamExt};
use uuid::Uuid;

use super::fold::Projection;
use super::note::{CheckpointSigner, CheckpointVerifier, read_note};
pub use super::tlog::TreeEvent;
use super::tlog::{Frontier, TreeAudit, TreeMark, event_leaf};
use super::{GlobalCursor, StoreError, StoredEvent, ZERO_HASH, event_hash};
use crate::domain::{
    DomainError, Event, Initiative, Recorded, evolve,
    values::{Principal, parser_message, quote},
};

/// How far to read a stream for an as-of query; both bounds are inclusive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Until {
    /// Every event up to and including this stream version.
    Version(u64),
    /// The events recorded at or before this time: the prefix of the stream that ends
    /// before its first event recorded later (a prefix even if clocks of several
    /// replicas disagreed).
    Time(DateTime<Utc>),
}

// ---- Export format ------------------------------------------------------------------

/// One line of a JSON Lines export: an event exactly as stored, with all its metadata.
/// UUIDs are lower-case hyphenated, `recorded_at` is RFC 3339 in UTC with microseconds
/// (`2026-11-26T10:15:00.123456Z`), hashes are 64 lower-case hex digits. Parsing back is
/// strict: every field is required and no other field is allowed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportLine {
    pub position: u64,
    pub stream_id: String,
    pub stream_version: u64,
    pub event_id: String,
    pub event_type: String,
    pub schema_version: i32,
    pub payload: serde_json::Value,
    pub actor: String,
    pub command_id: String,
    pub correlation_id: String,
    pub causation_id: String,
    pub recorded_at: String,
    pub prev_hash: String,
    pub hash: String,
}

impl From<&StoredEvent> for ExportLine {
    fn from(event: &StoredEvent) -> Self {
        Self {
            position: u64::try_from(event.position).unwrap_or_default(),
            stream_id: event.stream_id.to_string(),
            stream_version: u64::try_from(event.stream_version).unwrap_or_default(),
            event_id: event.event_id.to_string(),
            event_type: event.event_type.clone(),
            schema_version: event.schema_version,
            payload: event.payload.clone(),
            actor: event.actor.clone(),
            command_id: event.command_id.clone(),
            correlation_id: event.correlation_id.clone(),
            causation_id: event.causation_id.clone(),
            recorded_at: event.recorded_at.to_rfc3339_opts(SecondsFormat::Micros, true),
            prev_hash: hex::encode(&event.prev_hash),
            hash: hex::encode(&event.hash),
        }
    }
}

impl ExportLine {
    /// The line as JSON text (without the newline).
    pub fn to_json(&self) -> Result<String, StoreError> {
        serde_json::to_string(self).map_err(|e| StoreError::Corrupt(format!("cannot encode an export line: {e}")))
    }

    /// Parses line `line_no` of an export into the event it records (with the position
    /// the file gives). Refused as `InvalidArgument` on field "line N", saying what is
    /// wrong: not JSON, a missing or unknown field, a bad UUID, time or hex value. The
    /// hash chain is checked by the caller (`Importer`), which knows the previous event.
    pub fn parse(line_no: usize, text: &str) -> Result<StoredEvent, DomainError> {
        let bad = |message: String| DomainError::InvalidArgument { field: format!("line {line_no}"), message };
        let line: ExportLine = serde_json::from_str(text).map_err(|e| bad(describe_json_error(&e)))?;
        line.into_event().map_err(bad)
    }

    fn into_event(self) -> Result<StoredEvent, String> {
        let position = i64::try_from(self.position)
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("position {} is not a positive 63-bit number", self.position))?;
        let stream_version = i64::try_from(self.stream_version)
            .ok()
            .filter(|v| *v > 0)
            .ok_or_else(|| format!("stream_version {} is not a positive 63-bit number", self.stream_version))?;
        if self.event_type.is_empty() {
            return Err("event_type is empty".into());
        }
        Ok(StoredEvent {
            position,
            stream_id: canonical_uuid("stream_id", &self.stream_id)?,
            stream_version,
            event_id: canonical_uuid("event_id", &self.event_id)?,
            event_type: self.event_type,
            schema_version: self.schema_version,
            payload: self.payload,
            actor: self.actor,
            command_id: self.command_id,
            correlation_id: self.correlation_id,
            causation_id: self.causation_id,
            recorded_at: parse_time(&self.recorded_at)?,
            prev_hash: parse_hash("prev_hash", &self.prev_hash)?.to_vec(),
            hash: parse_hash("hash", &self.hash)?.to_vec(),
        })
    }
}

/// serde_json's message without its "at line 1 column N" (an export line is one line).
fn describe_json_error(error: &serde_json::Error) -> String {
    let text = error.to_string();
    let message = text.rsplit_once(" at line ").map_or(text.as_str(), |(message, _)| message);
    match error.classify() {
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
            format!("not JSON: {message} (column {})", error.column())
        }
        _ => parser_message(message).into_owned(),
    }
}

fn canonical_uuid(field: &str, text: &str) -> Result<Uuid, String> {
    match Uuid::try_parse(text) {
        Ok(id) if id.to_string() == text => Ok(id),
        _ => Err(format!("{field} {} is not a UUID in lower-case hyphenated form", quote(text))),
    }
}

fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    let time = DateTime::parse_from_rfc3339(text)
        .map_err(|e| format!("recorded_at {} is not an RFC 3339 time: {e}", quote(text)))?
        .with_timezone(&Utc);
    if time.timestamp_subsec_nanos() % 1_000 != 0 {
        return Err(format!("recorded_at {} is more precise than microseconds", quote(text)));
    }
    Ok(time)
}

/// 32 bytes as 64 lower-case hex digits, exactly.
fn parse_hash(field: &str, text: &str) -> Result<[u8; 32], String> {
    let bad = || format!("{field} is not 64 lower-case hex digits: {}", quote(text));
    if text.len() != 64 || !text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(bad());
    }
    let mut hash = [0; 32];
    hex::decode_to_slice(text, &mut hash).map_err(|_| bad())?;
    Ok(hash)
}

/// Serde for a 32-byte hash as lower-case hex.
mod hex32 {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(hash: &[u8; 32], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hex::encode(hash))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<[u8; 32], D::Error> {
        let text = String::deserialize(deserializer)?;
        super::parse_hash("hash", &text).map_err(D::Error::custom)
    }
}

// ---- Merkle tree (RFC 6962) -----------------------------------------------------------

/// SHA-256(0x00 ‖ data): the hash of a leaf.
pub fn leaf_hash(data: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update([0x00]);
    hasher.update(data);
    hasher.finalize().into()
}

/// SHA-256(0x01 ‖ left ‖ right): the hash of an inner node.
pub fn node_hash(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update([0x01]);
    hasher.update(left);
    hasher.update(right);
    hasher.finalize().into()
}

/// RFC 6962's Merkle tree hash over already hashed leaves (see the module comment).
pub fn merkle_root(leaves: &[[u8; 32]]) -> [u8; 32] {
    match leaves {
        [] => Sha256::digest([]).into(),
        [leaf] => *leaf,
        _ => {
            // The largest power of two smaller than the number of leaves.
            let split = 1usize << (usize::BITS - 1 - (leaves.len() - 1).leading_zeros());
            let (left, right) = leaves.split_at(split);
            node_hash(&merkle_root(left), &merkle_root(right))
        }
    }
}

/// The head of one stream as a checkpoint records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamHead {
    pub stream_id: Uuid,
    pub version: u64,
    #[serde(with = "hex32")]
    pub hash: [u8; 32],
}

impl StreamHead {
    /// The 56 bytes of its leaf: stream id ‖ version (u64 big-endian) ‖ head hash.
    pub fn leaf_data(&self) -> [u8; 56] {
        let mut data = [0; 56];
        data[..16].copy_from_slice(self.stream_id.as_bytes());
        data[16..24].copy_from_slice(&self.version.to_be_bytes());
        data[24..].copy_from_slice(&self.hash);
        data
    }
}

/// The Merkle root over stream heads, which must be ordered by stream id (the root of
/// the checkpoints taken before the log tree, `CheckpointTree::StreamHeads`).
pub fn heads_root(heads: &[StreamHead]) -> [u8; 32] {
    let leaves: Vec<[u8; 32]> = heads.iter().map(|head| leaf_hash(&head.leaf_data())).collect();
    merkle_root(&leaves)
}

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
    fn mark(&self) -> Option<TreeMark> {
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

/// The next checkpoint being built: the latest one's frontier and heads, with the events
/// committed after it folded in, in commit order. It trusts the checkpoint it resumes
/// (the server's own record; a verification recomputes everything from the log).
#[derive(Debug, Default)]
pub struct LogFold {
    frontier: Frontier,
    heads: BTreeMap<Uuid, StreamHead>,
    cursor: GlobalCursor,
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
        let frontier = Frontier::from_parts(record.events, record.frontier).map_err(StoreError::Corrupt)?;
        let heads = record.heads.into_iter().map(|head| (head.stream_id, head)).collect();
        Ok(Self { frontier, heads, cursor })
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
            created_at: super::now_micros(),
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

// ---- Verification ---------------------------------------------------------------------

/// Where the history first fails to verify.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Break {
    /// The stream; the nil UUID when a checkpoint itself is damaged, or the log tree
    /// differs from a checkpoint without pointing at one stream.
    pub stream_id: Uuid,
    /// The first version that is wrong or missing (0 for a damaged checkpoint).
    pub stream_version: u64,
    /// The global position of the stored event where the break was found; 0 when there
    /// is none (a missing tail or stream, a damaged checkpoint).
    pub position: u64,
    pub reason: String,
}

/// The result of a verification: what was checked, and the first break if any.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    pub events_checked: u64,
    pub streams_checked: u64,
    pub checkpoints_checked: u64,
    pub first_break: Option<Break>,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.first_break.is_none()
    }
}

/// What the store keeps about a page of streams besides their events, read in the same
/// snapshot as those events: each is an independent witness of how far each stream goes
/// (all are written in the append's transaction, so in one snapshot they agree with the
/// log exactly).
#[derive(Clone, Debug, Default)]
pub struct Witnesses {
    /// The stream heads (`streams`): version, head hash, position of the last event.
    pub heads: Vec<HeadWitness>,
    /// The idempotency records (`commands`): the version and position of each
    /// command's last event.
    pub commands: Vec<CommandWitness>,
    /// The alignment projection's version of each initiative.
    pub projections: Vec<(Uuid, i64)>,
}

#[derive(Clone, Debug)]
pub struct HeadWitness {
    pub stream_id: Uuid,
    pub version: i64,
    pub hash: Vec<u8>,
    pub last_position: i64,
    /// The version of the folded state kept beside the head (`None`: none recorded).
    pub state_version: Option<i64>,
}

#[derive(Clone, Debug)]
pub struct CommandWitness {
    pub command_id: String,
    pub stream_id: Uuid,
    pub stream_version: i64,
    pub global_position: i64,
}

/// Something outside the log that says a stream has a version: the log must hold it.
#[derive(Clone, Debug)]
struct Anchor {
    version: u64,
    witness: Witness,
}

#[derive(Clone, Debug)]
enum Witness {
    /// A checkpoint recorded the stream's head at this version, with this hash.
    Checkpoint { id: u64, hash: [u8; 32] },
    /// The stream head: this is the last version, with this hash, at this position.
    Head { hash: Vec<u8>, position: i64 },
    /// The state snapshot beside the head was folded up to this version, the last one.
    Snapshot,
    /// A command's last event is this version, at this position.
    Command { id: String, position: i64 },
    /// The projection was folded up to this version, the last one.
    Projection,
}

impl Witness {
    /// The order witnesses are reported in: checkpoints (by id), the head, commands, the
    /// projection.
    fn rank(&self) -> (u8, u64) {
        match self {
            Witness::Checkpoint { id, .. } => (0, *id),
            Witness::Head { .. } => (1, 0),
            Witness::Snapshot => (2, 0),
            Witness::Command { .. } => (3, 0),
            Witness::Projection => (4, 0),
        }
    }
}

/// At most 40 characters of a command id, for a message.
fn short_id(id: &str) -> String {
    match id.char_indices().nth(40) {
        Some((end, _)) => format!("{}…", &id[..end]),
        None => id.to_owned(),
    }
}

/// The witnesses of versions the log does not hold, each kind once (its highest version):
/// "checkpoint 1 recorded the stream at version 9, the stream head records version 9, …".
fn describe_missing<'a>(anchors: impl Iterator<Item = &'a Anchor>, deleted_stream: bool) -> String {
    let mut latest: BTreeMap<u8, (&Anchor, usize)> = BTreeMap::new();
    for anchor in anchors {
        let kind = anchor.witness.rank().0;
        let entry = latest.entry(kind).or_insert((anchor, 0));
        entry.1 += 1;
        // The highest version; among checkpoints at that version, the earliest.
        if (anchor.version, std::cmp::Reverse(anchor.witness.rank().1))
            > (entry.0.version, std::cmp::Reverse(entry.0.witness.rank().1))
        {
            entry.0 = anchor;
        }
    }
    let parts: Vec<String> = latest
        .values()
        .map(|(anchor, count)| {
            let version = anchor.version;
            match &anchor.witness {
                Witness::Checkpoint { id, .. } if deleted_stream => {
                    format!("checkpoint {id} recorded it at version {version}")
                }
                Witness::Checkpoint { id, .. } => format!("checkpoint {id} recorded the stream at version {version}"),
                Witness::Head { .. } => format!("the stream head records version {version}"),
                Witness::Snapshot => format!("the head's state snapshot is at version {version}"),
                Witness::Command { id, .. } if *count > 1 => format!(
                    "command {} recorded version {version} (and {} more command records are past the log's end)",
                    short_id(id),
                    count - 1
                ),
                Witness::Command { id, .. } => format!("command {} recorded version {version}", short_id(id)),
                Witness::Projection => format!("the alignment projection is at version {version}"),
            }
        })
        .collect();
    parts.join(", ")
}

/// The stream being walked.
struct Walk {
    stream_id: Uuid,
    version: u64,
    hash: Vec<u8>,
    position: i64,
    /// This stream's anchors still ahead, by version.
    anchors: VecDeque<Anchor>,
    /// The version a stream head or the projection says is the last, and which one.
    last: Option<(u64, &'static str)>,
}

/// Verifies the log event by event, holding one stream's walk and the anchors of the
/// streams not walked yet, never the events: feed it every checkpoint (`add_checkpoint`,
/// in id order), then page by page the witnesses of the page's streams
/// (`add_witnesses`) and the page's events ordered by (stream id, version) with `check`
/// while `is_broken` is false, then `finish`. The log tree of the checkpoints is checked
/// after that, in commit order, by `tlog::TreeAudit` over `tree_marks`.
pub struct Verifier {
    only: Option<Uuid>,
    /// The key the checkpoints' notes must be signed with, when the server has one.
    key: Option<CheckpointVerifier>,
    anchors: BTreeMap<Uuid, Vec<Anchor>>,
    marks: Vec<TreeMark>,
    walk: Option<Walk>,
    report: VerifyReport,
}

impl Verifier {
    /// A verification of the whole log, or of one stream only.
    pub fn new(only: Option<Uuid>, key: Option<CheckpointVerifier>) -> Self {
        Self { only, key, anchors: BTreeMap::new(), marks: Vec::new(), walk: None, report: VerifyReport::default() }
    }

    pub fn is_broken(&self) -> bool {
        self.report.first_break.is_some()
    }

    fn broken(&mut self, stream_id: Uuid, stream_version: u64, position: i64, reason: String) {
        if self.report.first_break.is_none() {
            let position = u64::try_from(position).unwrap_or_default();
            self.report.first_break = Some(Break { stream_id, stream_version, position, reason });
        }
    }

    /// Takes the log-tree checkpoints to check the log's commit order against.
    pub fn take_tree_marks(&mut self) -> Vec<TreeMark> {
        std::mem::take(&mut self.marks)
    }

    /// Checks a stored checkpoint (and its note's signature, with a key) and takes note
    /// of the heads it recorded.
    pub fn add_checkpoint(&mut self, raw: RawCheckpoint) {
        if self.is_broken() {
            return;
        }
        self.report.checkpoints_checked += 1;
        let checkpoint = match CheckpointRecord::decode(raw).and_then(|c| c.check().map(|()| c)) {
            Ok(checkpoint) => checkpoint,
            Err(reason) => return self.broken(Uuid::nil(), 0, 0, reason),
        };
        if let (Some(key), Some(note)) = (&self.key, &checkpoint.note)
            && let Err(reason) = key.open(note)
        {
            return self.broken(Uuid::nil(), 0, 0, format!("checkpoint {}: its note {reason}", checkpoint.id));
        }
        self.marks.extend(checkpoint.mark());
        for head in checkpoint.heads {
            if self.only.is_none_or(|only| only == head.stream_id) {
                let witness = Witness::Checkpoint { id: checkpoint.id, hash: head.hash };
                self.anchors.entry(head.stream_id).or_default().push(Anchor { version: head.version, witness });
            }
        }
    }

    /// Takes note of what the stream heads, command records and projection say about
    /// the streams of the page that follows (read in the same snapshot as its events).
    pub fn add_witnesses(&mut self, witnesses: Witnesses) {
        let mut add = |stream_id: Uuid, version: i64, witness: Witness| {
            if self.only.is_none_or(|only| only == stream_id) {
                // A negative version can be in no log: it stays ahead of every walk.
                let version = u64::try_from(version).unwrap_or(u64::MAX);
                self.anchors.entry(stream_id).or_default().push(Anchor { version, witness });
            }
        };
        for head in witnesses.heads {
            if let Some(version) = head.state_version {
                add(head.stream_id, version, Witness::Snapshot);
            }
            add(head.stream_id, head.version, Witness::Head { hash: head.hash, position: head.last_position });
        }
        for command in witnesses.commands {
            let witness = Witness::Command { id: command.command_id, position: command.global_position };
            add(command.stream_id, command.stream_version, witness);
        }
        for (stream_id, version) in witnesses.projections {
            add(stream_id, version, Witness::Projection);
        }
    }

    /// Checks the next event (ordered by stream id, then version).
    pub fn check(&mut self, event: &StoredEvent) {
        if self.is_broken() || self.only.is_some_and(|only| only != event.stream_id) {
            return;
        }
        if self.walk.as_ref().is_none_or(|walk| walk.stream_id != event.stream_id) {
            if let Some(walk) = self.walk.take() {
                self.close(walk);
            }
            self.deleted_before(Some(event.stream_id));
            if self.is_broken() {
                return;
            }
            let mut anchors = self.anchors.remove(&event.stream_id).unwrap_or_default();
            anchors.sort_by_key(|anchor| (anchor.version, anchor.witness.rank()));
            self.report.streams_checked += 1;
            self.walk = Some(Walk {
                stream_id: event.stream_id,
                version: 0,
                hash: ZERO_HASH.to_vec(),
                position: 0,
                anchors: anchors.into(),
                last: None,
            });
        }
        let Some(walk) = self.walk.as_mut() else { return };
        match step(walk, event) {
            Ok(()) => self.report.events_checked += 1,
            Err((version, reason)) => self.broken(event.stream_id, version, event.position, reason),
        }
    }

    /// Ends the walk: a stream or tail a checkpoint or a witness recorded and the log
    /// lost is a break.
    pub fn finish(mut self) -> VerifyReport {
        if let Some(walk) = self.walk.take() {
            self.close(walk);
        }
        self.deleted_before(None);
        self.report
    }

    /// The end of a stream's walk: it must reach every version an anchor recorded.
    fn close(&mut self, walk: Walk) {
        if !walk.anchors.is_empty() {
            let first_missing = walk.version + 1;
            let reason = format!(
                "version {first_missing} missing: {}, the log ends at version {}",
                describe_missing(walk.anchors.iter(), false),
                walk.version
            );
            self.broken(walk.stream_id, first_missing, 0, reason);
        }
    }

    /// Streams an anchor recorded, ordered before `next` (or all that are left), are gone
    /// from the log.
    fn deleted_before(&mut self, next: Option<Uuid>) {
        let Some((&stream_id, anchors)) = self.anchors.first_key_value() else { return };
        if next.is_some_and(|next| stream_id >= next) {
            return;
        }
        if !anchors.is_empty() {
            let reason = format!("stream deleted: {}", describe_missing(anchors.iter(), true));
            self.broken(stream_id, 1, 0, reason);
        }
    }
}

/// Checks one event against the walk of its stream; on a break, returns the version it
/// locates and why.
fn step(walk: &mut Walk, event: &StoredEvent) -> Result<(), (u64, String)> {
    let expected = walk.version + 1;
    let version = u64::try_from(event.stream_version)
        .map_err(|_| (expected, format!("stream_version {} is not positive", event.stream_version)))?;
    if version > expected {
        let missing = if version == expected + 1 {
            format!("version {expected} missing")
        } else {
            format!("versions {expected} to {} missing", version - 1)
        };
        return Err((expected, missing));
    }
    if version < expected {
        return Err((version, format!("version {version} appears again after version {}", walk.version)));
    }
    if walk.version > 0 && event.position <= walk.position {
        return Err((
            version,
            format!(
                "events reordered: version {version} is at position {}, not after version {} at position {}",
                event.position, walk.version, walk.position
            ),
        ));
    }
    if event.prev_hash != walk.hash {
        return Err((
            version,
            if version == 1 {
                "prev_hash of the first event is not zero".to_owned()
            } else {
                format!("prev_hash does not link to version {}", walk.version)
            },
        ));
    }
    if event_hash(&event.prev_hash, &event.content()).as_slice() != event.hash.as_slice() {
        return Err((version, "payload or metadata changed: hash mismatch".to_owned()));
    }
    if let Some((last, who)) = walk.last {
        return Err((
            version,
            format!(
                "version {version} is past version {last}, where {who} ends the stream: an event was added to the \
                 log outside of an append"
            ),
        ));
    }
    while let Some(anchor) = walk.anchors.front() {
        if anchor.version > version {
            break;
        }
        match &anchor.witness {
            Witness::Checkpoint { id, hash } => {
                if hash.as_slice() != event.hash.as_slice() {
                    return Err((
                        version,
                        format!(
                            "hash differs from the one checkpoint {id} recorded at version {version}: the stream was rewritten"
                        ),
                    ));
                }
            }
            Witness::Head { hash, position } => {
                if hash.as_slice() != event.hash.as_slice() {
                    return Err((
                        version,
                        format!("hash differs from the head hash the stream head records at version {version}"),
                    ));
                }
                if *position != event.position {
                    return Err((
                        version,
                        format!(
                            "the stream head records its last event at position {position}, but version {version} is \
                             at position {}",
                            event.position
                        ),
                    ));
                }
                walk.last = Some((version, "the stream head"));
            }
            Witness::Command { id, position } => {
                if *id != event.command_id {
                    return Err((
                        version,
                        format!(
                            "command {} recorded version {version} as its last event, but version {version} was \
                             appended by command {}",
                            short_id(id),
                            short_id(&event.command_id)
                        ),
                    ));
                }
                if *position != event.position {
                    return Err((
                        version,
                        format!(
                            "command {} recorded its last event at position {position}, but version {version} is at \
                             position {}",
                            short_id(id),
                            event.position
                        ),
                    ));
                }
            }
            Witness::Snapshot => {
                walk.last = walk.last.or(Some((version, "the head's state snapshot")));
            }
            Witness::Projection => {
                walk.last = walk.last.or(Some((version, "the alignment projection")));
            }
        }
        walk.anchors.pop_front();
    }
    walk.version = version;
    walk.hash.clone_from(&event.hash);
    walk.position = event.position;
    Ok(())
}

// ---- Import -------------------------------------------------------------------------

/// What an import loaded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    pub events: u64,
    pub initiatives: u64,
}

/// The idempotency record of one imported command, so that a retry of its id after the
/// import replays instead of appending again. The request's fingerprint is not part of
/// the log, so the record has none (empty): see `batch::StoredCommand::replay`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportedCommand {
    pub command_id: String,
    pub stream_id: Uuid,
    /// The stream version and (new) global position of the command's last event.
    pub stream_version: i64,
    pub global_position: i64,
    pub created_id: Option<Uuid>,
    pub recorded_at: DateTime<Utc>,
}

/// One imported stream's head, folded state and projection, to write once every line
/// has been read.
pub struct ImportedStream {
    pub stream_id: Uuid,
    pub version: i64,
    pub head_hash: Vec<u8>,
    pub last_position: i64,
    pub state: Initiative,
    pub projection: Projection,
}

/// A stream as the import has read it so far.
struct Progress {
    first_line: usize,
    version: i64,
    hash: Vec<u8>,
    last_position: i64,
    state: Option<Initiative>,
    command: Option<ImportedCommand>,
}

/// Reads an export line by line and checks it as it goes: each line parses strictly,
/// each stream's versions follow on from 1, each `prev_hash` links to the previous event
/// of its stream, each hash recomputes, event and command ids are not reused, and every
/// event folds onto its stream's state (the same `evolve` as every append). Assigns the
/// new global positions 1, 2, … in the file's order. Errors are `InvalidArgument` on
/// field "line N".
#[derive(Default)]
pub struct Importer {
    events: i64,
    streams: BTreeMap<Uuid, Progress>,
    event_lines: HashMap<Uuid, usize>,
    command_lines: HashMap<String, usize>,
    closed: Vec<ImportedCommand>,
}

impl Importer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks line `line_no`; returns the event to write with its new position, or
    /// nothing for a blank line.
    pub fn accept(&mut self, line_no: usize, text: &str) -> Result<Option<StoredEvent>, StoreError> {
        if text.trim().is_empty() {
            return Ok(None);
        }
        let bad = |message: String| {
            StoreError::from(DomainError::InvalidArgument { field: format!("line {line_no}"), message })
        };
        let mut event = ExportLine::parse(line_no, text)?;
        let stream_id = event.stream_id;
        match self.event_lines.entry(event.event_id) {
            Entry::Occupied(first) => {
                return Err(bad(format!("event_id {} already appears on line {}", event.event_id, first.get())));
            }
            Entry::Vacant(slot) => {
                slot.insert(line_no);
            }
        }
        let stream = self.streams.entry(stream_id).or_insert_with(|| Progress {
            first_line: line_no,
            version: 0,
            hash: ZERO_HASH.to_vec(),
            last_position: 0,
            state: None,
            command: None,
        });
        if event.stream_version != stream.version + 1 {
            return Err(bad(if stream.version == 0 {
                format!("version gap: stream {stream_id} starts at version {}, not 1", event.stream_version)
            } else {
                format!(
                    "version gap: stream {stream_id} is at version {}, this event is version {}",
                    stream.version, event.stream_version
                )
            }));
        }
        if event.prev_hash != stream.hash {
            return Err(bad(if stream.version == 0 {
                format!("broken prev_hash link: the first event of stream {stream_id} must have a zero prev_hash")
            } else {
                format!("broken prev_hash link: it is not the hash of version {} of stream {stream_id}", stream.version)
            }));
        }
        if event_hash(&event.prev_hash, &event.content()).as_slice() != event.hash.as_slice() {
            return Err(bad("hash mismatch: the event's content does not hash to its hash".into()));
        }
        let recorded = recorded(&event).map_err(|e| bad(format!("cannot be read: {e}")))?;
        let created_id = created_id(&recorded.event);
        let state = evolve(stream.state.take(), &recorded)
            .map_err(|e| bad(format!("does not apply to stream {stream_id}: {}", e.message)))?;
        stream.state = Some(state);

        self.events += 1;
        event.position = self.events;
        match &mut stream.command {
            Some(open) if open.command_id == event.command_id => {
                open.stream_version = event.stream_version;
                open.global_position = event.position;
                open.created_id = open.created_id.or(created_id);
            }
            open => {
                match self.command_lines.entry(event.command_id.clone()) {
                    Entry::Occupied(first) => {
                        return Err(bad(format!(
                            "command id {} already appears on line {} for another command",
                            quote(&event.command_id),
                            first.get()
                        )));
                    }
                    Entry::Vacant(slot) => {
                        slot.insert(line_no);
                    }
                }
                let started = ImportedCommand {
                    command_id: event.command_id.clone(),
                    stream_id,
                    stream_version: event.stream_version,
                    global_position: event.position,
                    created_id,
                    recorded_at: event.recorded_at,
                };
                if let Some(done) = open.replace(started) {
                    self.closed.push(done);
                }
            }
        }
        stream.version = event.stream_version;
        stream.hash.clone_from(&event.hash);
        stream.last_position = event.position;
        Ok(Some(event))
    }

    /// The command records complete so far (a command is complete once its stream moves
    /// on to another command), to write in batches.
    pub fn take_commands(&mut self) -> Vec<ImportedCommand> {
        std::mem::take(&mut self.closed)
    }

    /// The remaining command records, every stream's head, state and projection, and
    /// the counts. Two streams with the same initiative key are refused.
    pub fn finish(mut self) -> Result<(Vec<ImportedStream>, Vec<ImportedCommand>, ImportReport), StoreError> {
        let mut keys: HashMap<String, usize> = HashMap::new();
        let mut streams = Vec::with_capacity(self.streams.len());
        for (stream_id, progress) in std::mem::take(&mut self.streams) {
            self.closed.extend(progress.command);
            let state = progress
                .state
                .ok_or_else(|| StoreError::Corrupt(format!("imported stream {stream_id} has no events")))?;
            match keys.entry(state.key.as_str().to_owned()) {
                Entry::Occupied(other) => {
                    let (first, second) =
                        ((*other.get()).min(progress.first_line), (*other.get()).max(progress.first_line));
                    return Err(DomainError::InvalidArgument {
                        field: format!("line {second}"),
                        message: format!(
                            "initiative key {} is already used by the initiative created on line {first}",
                            state.key
                        ),
                    }
                    .into());
                }
                Entry::Vacant(slot) => {
                    slot.insert(progress.first_line);
                }
            }
            let projection = Projection::of(&state)?;
            streams.push(ImportedStream {
                stream_id,
                version: progress.version,
                head_hash: progress.hash,
                last_position: progress.last_position,
                state,
                projection,
            });
        }
        let report =
            ImportReport { events: u64::try_from(self.events).unwrap_or_default(), initiatives: streams.len() as u64 };
        Ok((streams, self.closed, report))
    }
}

/// How many lines an import checks, and then writes, at a time.
pub const IMPORT_BATCH: usize = 5_000;

/// Where an import writes, inside the one transaction a backend opened for it.
pub trait ImportSink {
    fn events(&mut self, events: &[StoredEvent]) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn commands(&mut self, commands: &[ImportedCommand]) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn streams(&mut self, streams: &[ImportedStream]) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Runs an import into `sink`: lines are checked `IMPORT_BATCH` at a time on a blocking
/// thread (parsing, hashing and folding are CPU work) while the previous batch is being
/// written, then the command records and every stream's head and projection are written.
/// The caller commits only if this returns `Ok`.
pub async fn run_import<S, K>(mut lines: S, sink: &mut K) -> Result<ImportReport, StoreError>
where
    S: Stream<Item = Result<(usize, String), StoreError>> + Unpin,
    K: ImportSink,
{
    let mut importer = Importer::new();
    let mut pending: Option<(Vec<StoredEvent>, Vec<ImportedCommand>)> = None;
    loop {
        let mut chunk = Vec::with_capacity(IMPORT_BATCH);
        while chunk.len() < IMPORT_BATCH {
            match lines.next().await {
                Some(line) => chunk.push(line?),
                None => break,
            }
        }
        let last = chunk.len() < IMPORT_BATCH;
        let check = tokio::task::spawn_blocking(move || {
            let mut events = Vec::with_capacity(chunk.len());
            for (line_no, text) in chunk {
                events.extend(importer.accept(line_no, &text)?);
            }
            let commands = importer.take_commands();
            Ok::<_, StoreError>((importer, events, commands))
        });
        let write = async {
            match pending.take() {
                Some((events, commands)) => {
                    sink.events(&events).await?;
                    sink.commands(&commands).await
                }
                None => Ok(()),
            }
        };
        let (checked, written) = tokio::join!(check, write);
        written?;
        let (next, events, commands) = checked.map_err(task_failed)??;
        importer = next;
        pending = Some((events, commands));
        if last {
            break;
        }
    }
    if let Some((events, commands)) = pending {
        sink.events(&events).await?;
        sink.commands(&commands).await?;
    }
    let (streams, commands, report) =
        tokio::task::spawn_blocking(move || importer.finish()).await.map_err(task_failed)??;
    sink.commands(&commands).await?;
    sink.streams(&streams).await?;
    Ok(report)
}

fn task_failed(error: tokio::task::JoinError) -> StoreError {
    StoreError::Database(sqlx::Error::Protocol(format!("an audit task failed: {error}")))
}

/// How many events a verification reads at a time (a page goes on to the end of its
/// last stream, so that each stream is read, with its witnesses, in one snapshot).
pub const VERIFY_PAGE: i64 = 2_000;

/// Where a page of a verification resumes: after this stream id (`None`: the start).
pub type VerifyKey = Option<Uuid>;

/// One page of a verification, read in one snapshot: whole streams in (stream id,
/// version) order, and the witnesses of every stream id in the page's range — after
/// the key it resumed from, up to its last stream, or to the end for the last page (so
/// that a stream with witnesses and no events left is seen too).
#[derive(Debug, Default)]
pub struct VerifyPage {
    pub events: Vec<StoredEvent>,
    pub witnesses: Witnesses,
    /// Whether more pages follow (the page reached `VERIFY_PAGE` events).
    pub more: bool,
}

/// Runs `verifier` over the pages `fetch` returns, resuming after the last stream of the
/// page before: the next page is read while the previous one is checked on a blocking
/// thread, and no more than three pages are held at once. Then, for a verification of
/// the whole log that found no break, checks the log tree against every log-tree
/// checkpoint: `tree_page` reads the log in commit order after a cursor.
pub async fn verify_paged<F, Fut, T, TFut>(
    mut verifier: Verifier,
    fetch: F,
    tree_page: Option<T>,
) -> Result<VerifyReport, StoreError>
where
    F: Fn(VerifyKey) -> Fut + Send + 'static,
    Fut: Future<Output = Result<VerifyPage, StoreError>> + Send + 'static,
    T: Fn(GlobalCursor) -> TFut,
    TFut: Future<Output = Result<Vec<(GlobalCursor, TreeEvent)>, StoreError>>,
{
    let marks = verifier.take_tree_marks();
    if verifier.is_broken() {
        return Ok(verifier.finish());
    }
    let (pages, mut receiver) = tokio::sync::mpsc::channel(1);
    let reader = tokio::spawn(async move {
        let mut after = None;
        loop {
            let page = fetch(after).await;
            let next = match &page {
                Ok(page) if page.more => page.events.last().map(|event| event.stream_id),
                _ => None,
            };
            if pages.send(page).await.is_err() || next.is_none() {
                return;
            }
            after = next;
        }
    });
    while let Some(page) = receiver.recv().await {
        let page = page?;
        verifier = tokio::task::spawn_blocking(move || {
            verifier.add_witnesses(page.witnesses);
            for event in &page.events {
                verifier.check(event);
                if verifier.is_broken() {
                    break;
                }
            }
            verifier
        })
        .await
        .map_err(task_failed)?;
        if verifier.is_broken() {
            break;
        }
    }
    reader.abort();
    let mut report = verifier.finish();
    if let Some(tree_page) = tree_page
        && report.ok()
        && !marks.is_empty()
    {
        report.first_break = verify_tree(marks, tree_page).await?;
    }
    Ok(report)
}

/// Checks the log, read in commit order, against the log-tree checkpoints: the first
/// checkpoint whose root is not the root of the log's first `size` events is a break.
async fn verify_tree<T, TFut>(marks: Vec<TreeMark>, page: T) -> Result<Option<Break>, StoreError>
where
    T: Fn(GlobalCursor) -> TFut,
    TFut: Future<Output = Result<Vec<(GlobalCursor, TreeEvent)>, StoreError>>,
{
    let mut audit = TreeAudit::new(marks);
    let mut cursor = GlobalCursor::default();
    while !audit.is_done() {
        let events = page(cursor).await?;
        let Some((last, _)) = events.last() else { break };
        cursor = *last;
        for (_, event) in &events {
            audit.push(event);
        }
    }
    Ok(audit.finish().map(|mismatch| mismatch.to_break()))
}

/// The event as the fold sees it (what `StoredEvent::to_recorded` does, with messages
/// that name no position: the file's positions are not the store's).
fn recorded(event: &StoredEvent) -> Result<Recorded, String> {
    let decoded = Event::from_stored(&event.event_type, event.schema_version, event.payload.clone())?;
    let actor = Principal::parse("actor", &event.actor).map_err(|e| e.to_string())?;
    let version = u64::try_from(event.stream_version).map_err(|_| "negative stream version".to_owned())?;
    Ok(Recorded { version, actor, recorded_at: event.recorded_at, event: decoded })
}

/// The id a command created, as its result reports it (`Command::created_id`), from the
/// event that records the creation.
fn created_id(event: &Event) -> Option<Uuid> {
    match event {
        Event::InitiativeCreated { initiative_id, .. } => Some(initiative_id.0),
        Event::DecisionProposed { decision_id, .. } => Some(decision_id.0),
        Event::FeedbackRecorded { feedback_id, .. } => Some(feedback_id.0),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex_root(leaves: &[&[u8]]) -> String {
        let hashed: Vec<[u8; 32]> = leaves.iter().map(|data| leaf_hash(data)).collect();
        hex::encode(merkle_root(&hashed))
    }

    // The test vectors of RFC 6962's reference implementation (certificate-transparency,
    // merkle_tree_test): leaves "", 00, 10, 2021, 3031, 40414243, 5051525354555657, ...
    const LEAVES: [&[u8]; 8] = [
        b"",
        &[0x00],
        &[0x10],
        &[0x20, 0x21],
        &[0x30, 0x31],
        &[0x40, 0x41, 0x42, 0x43],
        &[0x50, 0x51, 0x52, 0x53, 0x54, 0x55, 0x56, 0x57],
        &[0x60, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x6b, 0x6c, 0x6d, 0x6e, 0x6f],
    ];

    #[test]
    fn the_empty_tree_is_the_hash_of_the_empty_string() {
        assert_eq!(hex_root(&[]), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    }

    #[test]
    fn one_leaf_is_its_leaf_hash() {
        assert_eq!(hex_root(&LEAVES[..1]), "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d");
    }

    #[test]
    fn three_leaves_split_at_the_largest_power_of_two_below() {
        assert_eq!(hex_root(&LEAVES[..3]), "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77");
        let [a, b, c] = [LEAVES[0], LEAVES[1], LEAVES[2]].map(leaf_hash);
        assert_eq!(merkle_root(&[a, b, c]), node_hash(&node_hash(&a, &b), &c));
    }

    #[test]
    fn the_other_published_vectors_hold() {
        let expected = [
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
            "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
            "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
        ];
        for (n, root) in (2..=8).zip(expected) {
            assert_eq!(hex_root(&LEAVES[..n]), root, "{n} leaves");
        }
    }

    #[test]
    fn a_head_leaf_is_id_then_big_endian_version_then_hash() {
        let head = StreamHead { stream_id: Uuid::from_u128(0x0102), version: 0x0a0b, hash: [7; 32] };
        let data = head.leaf_data();
        assert_eq!(&data[..16], Uuid::from_u128(0x0102).as_bytes());
        assert_eq!(&data[16..24], &[0, 0, 0, 0, 0, 0, 0x0a, 0x0b]);
        assert_eq!(&data[24..], &[7; 32]);
        assert_eq!(heads_root(std::slice::from_ref(&head)), leaf_hash(&data));
    }

    /// The checkpoint row a log fold of these events (taken in position order) plans.
    fn folded(id: i64, events: &[StoredEvent], signer: Option<&CheckpointSigner>) -> RawCheckpoint {
        let mut ordered: Vec<&StoredEvent> = events.iter().collect();
        ordered.sort_by_key(|event| event.position);
        let mut fold = LogFold::start();
        for event in ordered {
            let cursor = GlobalCursor { tx_id: 0, position: event.position };
            fold.push(cursor, event.stream_id, event.stream_version, &event.hash).expect("in order");
        }
        let planned = fold.plan(signer).expect("plan");
        RawCheckpoint {
            id,
            created_at: planned.created_at,
            tree: planned.tree.as_str().to_owned(),
            streams: planned.streams,
            events: planned.events,
            root: planned.root.to_vec(),
            heads: planned.heads_json.clone(),
            frontier: Some(planned.frontier_json.clone()),
            note: planned.note.clone(),
            resume_tx: Some(0),
            resume_position: Some(planned.resume.position),
        }
    }

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

    #[test]
    fn a_signed_checkpoint_s_note_says_its_size_and_root_and_a_changed_note_is_caught() {
        let (key, _) = crate::store::note::generate_key("accord.example/test").expect("key");
        let signer = CheckpointSigner::parse(&key).expect("parses");
        let events = chain(Uuid::from_u128(1), 3, 0);
        let raw = folded(1, &events, Some(&signer));
        let record = CheckpointRecord::decode(raw.clone()).expect("decode");
        let said = signer.verifier().open(record.note.as_deref().expect("a note")).expect("verifies");
        assert_eq!((said.size, said.root), (3, record.root));

        let mut verifier = Verifier::new(None, Some(signer.verifier().clone()));
        verifier.add_checkpoint(raw.clone());
        assert!(!verifier.is_broken());
        // A note for another size: the row and its note disagree.
        let mut other = raw.clone();
        other.note = Some(signer.sign(2, &record.root).expect("sign"));
        let report = verify(&[other], &events);
        assert!(report.first_break.is_some_and(|b| b.reason.contains("its signed note says 2 events")));
        // A note re-signed by another key: refused with the server's key only.
        let (stranger, _) = crate::store::note::generate_key("accord.example/test").expect("key");
        let stranger = CheckpointSigner::parse(&stranger).expect("parses");
        let mut resigned = raw;
        resigned.note = Some(stranger.sign(3, &record.root).expect("sign"));
        assert!(verify(std::slice::from_ref(&resigned), &events).ok(), "without a key the note is only read");
        let mut verifier = Verifier::new(None, Some(signer.verifier().clone()));
        verifier.add_checkpoint(resigned);
        let found = verifier.finish().first_break.expect("a break");
        assert!(found.reason.contains("is not signed by the key given"), "{}", found.reason);
    }

    fn chain(stream_id: Uuid, count: i64, first_position: i64) -> Vec<StoredEvent> {
        let mut prev = ZERO_HASH.to_vec();
        (1..=count)
            .map(|version| {
                let mut event = StoredEvent {
                    position: first_position + version,
                    stream_id,
                    stream_version: version,
                    event_id: Uuid::from_u128(stream_id.as_u128() * 1000 + version as u128),
                    event_type: "StageChanged".into(),
                    schema_version: 1,
                    payload: serde_json::json!({"from": "discovery", "to": "definition"}),
                    actor: "a@example.com".into(),
                    command_id: format!("c-{stream_id}-{version}"),
                    correlation_id: "x".into(),
                    causation_id: "x".into(),
                    recorded_at: DateTime::from_timestamp_micros(1_700_000_000_000_000 + version).unwrap_or_default(),
                    prev_hash: prev.clone(),
                    hash: Vec::new(),
                };
                event.hash = event_hash(&prev, &event.content()).to_vec();
                prev.clone_from(&event.hash);
                event
            })
            .collect()
    }

    fn verify(checkpoints: &[RawCheckpoint], events: &[StoredEvent]) -> VerifyReport {
        let mut verifier = Verifier::new(None, None);
        for checkpoint in checkpoints {
            verifier.add_checkpoint(checkpoint.clone());
        }
        for event in events {
            verifier.check(event);
        }
        verifier.finish()
    }

    fn checkpoint_of(id: i64, events: &[StoredEvent]) -> RawCheckpoint {
        folded(id, events, None)
    }

    #[test]
    fn an_intact_log_verifies_with_its_counts() {
        let events = [chain(Uuid::from_u128(1), 4, 0), chain(Uuid::from_u128(2), 3, 10)].concat();
        let report = verify(&[checkpoint_of(1, &events)], &events);
        assert_eq!(
            report,
            VerifyReport { events_checked: 7, streams_checked: 2, checkpoints_checked: 1, first_break: None }
        );
    }

    #[test]
    fn each_kind_of_damage_is_located() {
        let a = Uuid::from_u128(1);
        let b = Uuid::from_u128(2);
        let events = [chain(a, 4, 0), chain(b, 3, 10)].concat();
        let checkpoint = checkpoint_of(1, &events);
        let first_break = |events: &[StoredEvent]| {
            let b = verify(std::slice::from_ref(&checkpoint), events).first_break.expect("a break");
            (b.stream_id, b.stream_version, b.position, b.reason)
        };

        let mut edited = events.clone();
        edited[1].payload = serde_json::json!({"from": "discovery", "to": "sunset"});
        assert_eq!(first_break(&edited), (a, 2, 2, "payload or metadata changed: hash mismatch".into()));

        let mut gap = events.clone();
        gap.remove(2);
        assert_eq!(first_break(&gap), (a, 3, 4, "version 3 missing".into()));

        let mut tail = events.clone();
        tail.remove(3);
        let (stream, version, position, reason) = first_break(&tail);
        assert_eq!((stream, version, position), (a, 4, 0));
        assert!(reason.starts_with("version 4 missing: checkpoint 1 recorded the stream at version 4"), "{reason}");

        let mut swapped = events.clone();
        swapped.swap(1, 2);
        (swapped[1].stream_version, swapped[2].stream_version) = (2, 3);
        assert_eq!(first_break(&swapped), (a, 2, 3, "prev_hash does not link to version 1".into()));

        let mut positions = events.clone();
        (positions[1].position, positions[2].position) = (3, 2);
        let (stream, version, position, reason) = first_break(&positions);
        assert_eq!((stream, version, position), (a, 3, 2));
        assert!(reason.starts_with("events reordered"), "{reason}");

        let deleted: Vec<StoredEvent> = events.iter().filter(|e| e.stream_id != a).cloned().collect();
        assert_eq!(first_break(&deleted), (a, 1, 0, "stream deleted: checkpoint 1 recorded it at version 4".into()));
    }

    #[test]
    fn a_rehashed_stream_links_but_differs_from_its_checkpoint() {
        let a = Uuid::from_u128(1);
        let events = chain(a, 3, 0);
        let checkpoint = checkpoint_of(1, &events);
        let mut forged = events.clone();
        forged[1].actor = "mallory@example.com".into();
        forged[1].hash = event_hash(&forged[1].prev_hash, &forged[1].content()).to_vec();
        forged[2].prev_hash = forged[1].hash.clone();
        forged[2].hash = event_hash(&forged[2].prev_hash, &forged[2].content()).to_vec();
        assert!(verify(&[], &forged).ok(), "without a checkpoint a re-hashed chain links");
        let report = verify(&[checkpoint], &forged);
        let found = report.first_break.expect("a break");
        assert_eq!((found.stream_id, found.stream_version), (a, 3));
        assert!(found.reason.contains("checkpoint 1 recorded at version 3"), "{}", found.reason);
    }

    #[test]
    fn an_export_line_round_trips_and_parses_strictly() {
        let event = chain(Uuid::from_u128(7), 1, 41).remove(0);
        let line = ExportLine::from(&event);
        assert_eq!(line.recorded_at, "2023-11-14T22:13:20.000001Z");
        let text = line.to_json().expect("encode");
        assert_eq!(ExportLine::parse(3, &text), Ok(event));

        let refused = |text: &str| match ExportLine::parse(9, text) {
            Err(DomainError::InvalidArgument { field, message }) => {
                assert_eq!(field, "line 9");
                message
            }
            other => panic!("expected a refusal, got {other:?}"),
        };
        assert!(refused("{not json").starts_with("not JSON"));
        let mut value: serde_json::Value = serde_json::from_str(&text).expect("json");
        let without = |field: &str| {
            let mut v = value.clone();
            v.as_object_mut().map(|o| o.remove(field));
            v.to_string()
        };
        assert!(refused(&without("hash")).contains("missing field `hash`"));
        assert!(refused(&without("payload")).contains("missing field `payload`"));
        value["extra"] = 1.into();
        assert!(refused(&value.to_string()).contains("unknown field `extra`"));
        value.as_object_mut().map(|o| o.remove("extra"));
        value["hash"] = "ABC".into();
        assert!(refused(&value.to_string()).contains("hash is not 64 lower-case hex digits"));
        value["hash"] = hex::encode([0xab; 32]).to_uppercase().into();
        assert!(refused(&value.to_string()).contains("hash is not 64 lower-case hex digits"));
        value["hash"] = hex::encode([0xab; 32]).into();
        value["stream_id"] = Uuid::from_u128(7).simple().to_string().into();
        assert!(refused(&value.to_string()).contains("stream_id"));
        value["stream_id"] = Uuid::from_u128(7).to_string().into();
        value["recorded_at"] = "yesterday".into();
        assert!(refused(&value.to_string()).contains("recorded_at"));
        value["recorded_at"] = "2023-11-14T22:13:20.0000011Z".into();
        assert!(refused(&value.to_string()).contains("more precise than microseconds"));
    }
}
