//! The audit side of the store, independent of the backend: reading a stream up to a
//! past point (`Until`), the JSON Lines export format (`ExportLine`), checkpoints and
//! their Merkle root, verification of every hash chain against the checkpoints
//! (`Verifier`), and the checks an import makes line by line (`Importer`). The backends
//! (`postgres`, `sqlite`) only supply the SQL around these.
//!
//! One file per concern: `export` (the line format), `tree` (RFC 6962 hashing, stream
//! heads), `checkpoint` (checkpoint rows and the fold that builds the next one), `verify`
//! (the `Verifier` and its paging) with `walk` (one stream's walk and its witnesses), and
//! `import`.
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
//!   (see the tests in `tree.rs`), and its inclusion and consistency proofs apply.
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

mod checkpoint;
mod export;
mod import;
mod scan;
#[cfg(test)]
mod testing;
mod tree;
mod verify;
mod walk;

use chrono::{DateTime, Utc};

use super::StoreError;

pub use super::tlog::TreeEvent;
pub use checkpoint::{
    CHECKPOINT_PAGE, CheckpointRecord, CheckpointTree, Checkpointed, LogFold, PlannedCheckpoint, RawCheckpoint,
};
pub use export::ExportLine;
pub use import::{IMPORT_BATCH, ImportReport, ImportSink, ImportedCommand, Importer, run_import};
pub use scan::{LaneWork, Lanes, LogScan, Pager, ScanOutcome, ScanStart, lane_of};
pub use tree::{StreamHead, heads_root, leaf_hash, merkle_root, node_hash};
pub use verify::{Break, VERIFY_PAGE, Verifier, VerifyKey, VerifyPage, VerifyReport, verify_paged, verify_tree};
pub use walk::{CommandWitness, HeadWitness, Witnesses};

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

/// The error of a blocking task of an import or a verification that did not complete.
fn task_failed(error: tokio::task::JoinError) -> StoreError {
    StoreError::Database(sqlx::Error::Protocol(format!("an audit task failed: {error}")))
}
