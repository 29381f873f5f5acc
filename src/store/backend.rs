//! What differs per database: the narrow interface `Store` runs on, one implementation
//! per backend (`postgres`, `sqlite`), each holding its SQL and the few lines binding it.
//! Everything the backends do the same way — the query timeout, folding a head, the
//! rebuild loop, the verification's setup, decoding checkpoints, the import's stream of
//! lines — stays above this trait, in `Store`, written once; what they run alike below
//! it (running a statement and decoding its rows, a verification page) is in `sql` and
//! `rows`.
//!
//! The interface is cut along the backends' own seams — `Heads` (load, find commands,
//! append), `Reads`, `Rebuild`, `Audit`, `Import`, `ProjectionCuts`, `Snapshots`,
//! `Webhooks` — so that each
//! backend implements each part in the file that holds its SQL; `Backend` is all of
//! them together.
//!
//! The methods are `async` through `async-trait` (boxed futures): `Store` holds its
//! backend as `Arc<dyn Backend>`, and a trait with native `async fn` cannot be a trait
//! object. One allocation per call is nothing beside a database round trip, and the
//! macro keeps each implementation reading as plain `async fn`s.

use std::collections::HashMap;
use std::fmt::Debug;
use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
use tokio_stream::Stream;
use uuid::Uuid;

use super::audit::{RawCheckpoint, ScanOutcome, TreeEvent, Verifier, VerifyKey, VerifyPage};
use super::batch::{AppendRefused, Appended, Batch, HeadRows, StoredCommand};
use super::cut::ProjectionCut;
use super::note::CheckpointSigner;
use super::replay::StreamFold;
use super::sessions::{SessionClaims, SessionRow};
use super::snapshots::{DueStream, PastSnapshot};
use super::webhooks::{DeliveryRow, LeaseFence, Progress, SubscriptionRow, SubscriptionUpdate};
use super::{
    Checkpointed, GlobalCursor, ImportReport, ListFilter, PgStore, PoolStats, SqliteStore, StoreError, StoredEvent,
    Until,
};
use crate::domain::AlignmentView;
use crate::domain::values::{DecisionId, InitiativeId, InitiativeRef, Principal};

/// The lines of an export as an import reads them: (line number, line), or the error
/// reading them failed with.
pub type ImportLines = Pin<Box<dyn Stream<Item = Result<(usize, String), StoreError>> + Send>>;

/// What the database says about appends by any process (PostgreSQL's notifications).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppendSignal {
    /// Listening (again): anything may have been appended while nobody listened.
    Listening,
    /// An append committed, up to this position (`None`: a signal that did not say).
    Appended(Option<u64>),
    /// The connection was lost; it is being made again.
    Lost,
}

/// A stream of `AppendSignal`s, for as long as it is held.
pub type AppendSignals = Pin<Box<dyn Stream<Item = AppendSignal> + Send>>;

/// One database under `Store`. Every read and the append are one call's worth of work;
/// `Store` bounds those by `query_timeout`.
#[async_trait]
pub trait Backend:
    Heads
    + Reads
    + Rebuild
    + OnlineRebuild
    + Audit
    + Import
    + ProjectionCuts
    + Snapshots
    + Webhooks
    + Sessions
    + Debug
    + Send
    + Sync
{
    /// "postgres" or "sqlite", for logs.
    fn kind(&self) -> &'static str;

    /// The PostgreSQL store, if this is it (the live feed listens on its pool).
    fn postgres(&self) -> Option<&PgStore> {
        None
    }

    /// The SQLite store, if this is it.
    fn sqlite(&self) -> Option<&SqliteStore> {
        None
    }

    /// Signals of appends by other processes, where the database sends them (`None`:
    /// it does not; only the log itself tells).
    fn append_signals(&self) -> Option<AppendSignals> {
        None
    }

    /// Connection counts of the backend's pools, for the metrics.
    fn pool_stats(&self) -> PoolStats;

    /// How long one read or command may wait for the database before it is
    /// `Unavailable`; `None`: as long as it takes.
    fn query_timeout(&self) -> Option<Duration>;

    /// A trivial query: the readiness probe.
    async fn ping(&self) -> Result<(), StoreError>;
}

/// Stream heads and the batch append (see `batch`).
#[async_trait]
pub trait Heads: Send + Sync {
    /// The heads of the streams with these ids or keys, as stored: each one's snapshot
    /// and the events after it up to the head, one head per stream.
    async fn load_heads(&self, ids: &[Uuid], keys: &[String]) -> Result<Vec<HeadRows>, StoreError>;

    /// The stored results of the command ids that were used before.
    async fn find_commands(&self, ids: &[String]) -> Result<Vec<(String, StoredCommand)>, StoreError>;

    /// Appends a batch atomically, or refuses it whole.
    async fn append_batch(&self, batch: &Batch) -> Result<Appended, AppendRefused>;
}

/// The reads that serve one call: projections, streams, the global log.
#[async_trait]
pub trait Reads: Send + Sync {
    /// One initiative's alignment projection.
    async fn alignment(&self, target: &InitiativeRef) -> Result<Option<AlignmentView>, StoreError>;

    /// Alignment views ordered by key, after `after_key`, at most `limit` of them.
    async fn list(
        &self,
        filter: &ListFilter,
        after_key: Option<&str>,
        limit: i64,
    ) -> Result<Vec<AlignmentView>, StoreError>;

    /// The alignment views of every initiative with a sign-off waiting on `principal`.
    async fn awaiting(&self, principal: &Principal) -> Result<Vec<AlignmentView>, StoreError>;

    /// Events of one stream from `from_version` (inclusive), in order.
    async fn read_stream(&self, stream_id: Uuid, from_version: i64, limit: i64)
    -> Result<Vec<StoredEvent>, StoreError>;

    /// The sign-off events of one decision, in stream order.
    async fn sign_off_events(&self, stream: InitiativeId, decision: DecisionId)
    -> Result<Vec<StoredEvent>, StoreError>;

    /// The global log after `after`, in commit order, never skipping a late commit, with
    /// each event's cursor.
    async fn read_all(&self, after: GlobalCursor, limit: i64) -> Result<Vec<(GlobalCursor, StoredEvent)>, StoreError>;
}

/// Rebuilding heads and projections from the log.
#[async_trait]
pub trait Rebuild: Send + Sync {
    /// Every stream the log holds, by id.
    async fn stream_ids(&self) -> Result<Vec<Uuid>, StoreError>;

    /// Every stream folded from the log read once in position order, the past
    /// snapshots derived on the way sent to `writer` (see `replay`).
    async fn fold_log(
        &self,
        every: i64,
        writer: tokio::sync::mpsc::Sender<Vec<PastSnapshot>>,
    ) -> Result<HashMap<Uuid, StreamFold>, StoreError>;

    /// Writes one stream's head and alignment row from `fold` with the events after it
    /// folded on top, in one transaction, holding the head while it does.
    async fn rebuild_stream(&self, stream_id: Uuid, fold: StreamFold) -> Result<(), StoreError>;
}

/// The online (blue/green) projection rebuild: the new rows are folded into a side table
/// (`alignment_next`) while `alignment` keeps serving, then swapped in at once.
#[async_trait]
pub trait OnlineRebuild: Send + Sync {
    /// Empties the side table.
    async fn clear_next(&self) -> Result<(), StoreError>;

    /// Writes folded rows to the side table (inserted or replaced).
    async fn write_next(&self, heads: &[crate::store::fold::FoldedHead]) -> Result<(), StoreError>;

    /// The streams whose head is not at the version of their side row, or have none.
    async fn next_behind(&self) -> Result<Vec<Uuid>, StoreError>;

    /// In one transaction that no append commits during: folds the streams still behind
    /// into the side table, replaces alignment's rows with the side table's and empties
    /// it. Returns how many streams it caught up.
    async fn swap_next(&self) -> Result<u64, StoreError>;
}

/// As-of reads, resuming the global log, verification and checkpoints.
#[async_trait]
pub trait Audit: Send + Sync {
    /// One stream's events up to `until` (inclusive), through the (stream, version) index.
    async fn read_stream_until(&self, stream_id: Uuid, until: Until) -> Result<Vec<StoredEvent>, StoreError>;

    /// The highest global position appended and committed (0 for an empty log).
    async fn head_position(&self) -> Result<u64, StoreError>;

    /// The cursor that resumes the global log after a global position above 0 (see
    /// `Store::cursor_after_position`).
    async fn cursor_after_position(&self, after: u64) -> Result<GlobalCursor, StoreError>;

    /// Every checkpoint row, oldest first.
    async fn raw_checkpoints(&self) -> Result<Vec<RawCheckpoint>, StoreError>;

    /// One page of a verification, in one snapshot (see `audit::VerifyPage`).
    async fn verify_page(&self, only: Option<Uuid>, after: VerifyKey) -> Result<VerifyPage, StoreError>;

    /// A verification of the whole log read once in position order, in one snapshot,
    /// on every core (see `audit::LogScan`), starting from the verifier's checkpoints;
    /// `None` where the backend verifies page by page of streams instead.
    async fn verify_scan(&self, verifier: &mut Verifier) -> Result<Option<ScanOutcome>, StoreError> {
        let _ = verifier;
        Ok(None)
    }

    /// A page of the log in commit order after `after`, with what the log tree needs.
    async fn tree_page(&self, after: GlobalCursor) -> Result<Vec<(GlobalCursor, TreeEvent)>, StoreError>;

    /// Records the next log-tree checkpoint (see `Store::create_checkpoint`).
    async fn create_checkpoint(&self, signer: Option<&CheckpointSigner>) -> Result<Checkpointed, StoreError>;
}

/// The stored projection at a consistent cut (see `cut`): where the live feed starts.
#[async_trait]
pub trait ProjectionCuts: Send + Sync {
    /// Every stream's head and alignment row, and the log's end, read in one snapshot.
    async fn projection_cut(&self) -> Result<ProjectionCut, StoreError>;
}

/// Snapshots of streams at past versions (see `snapshots`).
#[async_trait]
pub trait Snapshots: Send + Sync {
    /// The latest snapshot of the current format that an as-of `until` may start from.
    async fn snapshot_before(&self, stream_id: Uuid, until: Until) -> Result<Option<PastSnapshot>, StoreError>;

    /// One stream's events after version `after` up to `until` (inclusive), in order.
    /// For a time, the prefix ends before the first event after `after` recorded later
    /// (`after` is a snapshot's version, whose events are all at or before the time).
    async fn read_stream_after(
        &self,
        stream_id: Uuid,
        after: i64,
        until: Until,
    ) -> Result<Vec<StoredEvent>, StoreError>;

    /// At most `limit` streams after the stream id `after`, by id, whose head is `every`
    /// or more versions past their latest snapshot of the current format (or that have
    /// a hole below it).
    async fn snapshots_due(&self, every: i64, after: Uuid, limit: i64) -> Result<Vec<DueStream>, StoreError>;

    /// Writes snapshots, replacing any at the same stream and version.
    async fn put_snapshots(&self, snapshots: &[PastSnapshot]) -> Result<(), StoreError>;

    /// Every snapshot of these streams, of any format, ordered by stream and version.
    async fn past_snapshots(&self, streams: &[Uuid]) -> Result<Vec<PastSnapshot>, StoreError>;

    /// Deletes the snapshots of one stream or all (`stream` `None`), or only those of
    /// another format than the current one; returns how many.
    async fn delete_snapshots(&self, stream: Option<Uuid>, other_formats_only: bool) -> Result<u64, StoreError>;
}

/// Loading an export.
#[async_trait]
pub trait Import: Send + Sync {
    /// Loads an export into the store if it holds no event, in one transaction.
    async fn import(&self, lines: ImportLines) -> Result<ImportReport, StoreError>;
}

/// The outbound webhooks' subscriptions, delivery log and lease (see `store::webhooks`,
/// where `Store` checks what it is given before it calls these).
#[async_trait]
pub trait Webhooks: Send + Sync {
    /// Inserts a subscription; `AlreadyExists` when its id is taken.
    async fn create_subscription(&self, subscription: &SubscriptionRow) -> Result<(), StoreError>;

    async fn subscription(&self, id: Uuid) -> Result<Option<SubscriptionRow>, StoreError>;

    /// Every subscription by created_at, then id.
    async fn subscriptions(&self) -> Result<Vec<SubscriptionRow>, StoreError>;

    /// Reads the subscription and writes it `webhooks::updated`, in one transaction that
    /// holds it.
    async fn update_subscription(
        &self,
        id: Uuid,
        expected_version: Option<i64>,
        update: &SubscriptionUpdate,
    ) -> Result<Option<SubscriptionRow>, StoreError>;

    /// Deletes a subscription with its deliveries; whether it existed.
    async fn delete_subscription(&self, id: Uuid) -> Result<bool, StoreError>;

    /// Grants, renews or takes over a lease for `ttl_micros` past the database's clock,
    /// in one statement; `None` while another holder has it.
    async fn acquire_lease(&self, name: &str, holder: &str, ttl_micros: i64) -> Result<Option<LeaseFence>, StoreError>;

    /// Frees a lease still held as `fence` says.
    async fn release_lease(&self, fence: &LeaseFence) -> Result<(), StoreError>;

    /// Checks the fence and writes the batch (one row per message, one progress per
    /// subscription) in one transaction; `false` with nothing written when the fence is
    /// stale.
    async fn record_deliveries(
        &self,
        fence: &LeaseFence,
        deliveries: &[DeliveryRow],
        progress: &[Progress],
    ) -> Result<bool, StoreError>;

    /// One subscription's deliveries with a seq below `before_seq`, newest first.
    async fn deliveries(
        &self,
        subscription_id: Uuid,
        status: Option<&str>,
        before_seq: i64,
        limit: i64,
    ) -> Result<Vec<DeliveryRow>, StoreError>;

    async fn delivery(&self, subscription_id: Uuid, message_id: &str) -> Result<Option<DeliveryRow>, StoreError>;

    /// Queues a delivery that is not failing; the row after (unchanged when failing).
    async fn request_redelivery(
        &self,
        subscription_id: Uuid,
        message_id: &str,
    ) -> Result<Option<DeliveryRow>, StoreError>;

    /// Queued deliveries, oldest seq first.
    async fn queued_redeliveries(&self, limit: i64) -> Result<Vec<DeliveryRow>, StoreError>;

    /// Deletes delivered rows last attempted before `older_than`; how many.
    async fn prune_deliveries(&self, older_than: chrono::DateTime<chrono::Utc>) -> Result<u64, StoreError>;
}

/// The board's sign-in sessions (see `store::sessions`).
#[async_trait]
pub trait Sessions: Send + Sync {
    async fn create_session(&self, session: &SessionRow) -> Result<(), StoreError>;

    async fn session(&self, id_hash: &[u8; 32]) -> Result<Option<SessionRow>, StoreError>;

    /// Sets last_seen_at to `at` when that is later.
    async fn touch_session(&self, id_hash: &[u8; 32], at: chrono::DateTime<chrono::Utc>) -> Result<(), StoreError>;

    /// Writes `claims` when the row still holds the refresh token `used`; whether it did.
    async fn refresh_session(&self, id_hash: &[u8; 32], used: &str, claims: &SessionClaims)
    -> Result<bool, StoreError>;

    async fn delete_session(&self, id_hash: &[u8; 32]) -> Result<bool, StoreError>;

    /// Deletes sessions expired at `now` or last seen before `idle_before`; how many.
    async fn prune_sessions(
        &self,
        now: chrono::DateTime<chrono::Utc>,
        idle_before: chrono::DateTime<chrono::Utc>,
    ) -> Result<u64, StoreError>;
}
