//! The event store: the append-only log, the idempotency record and the projections
//! maintained in the same transaction as each append. This module holds what every
//! backend shares — stored events, the hash chain, the error type, and `Store`, which
//! runs on a `Backend` (`backend`: what differs per database): `postgres` (production)
//! or `sqlite` (embedded, the default with no configuration); `rows` decodes what both
//! store, and `sql` runs their statements and binds what they store differently.
//! `batch` holds the half of a command's append that does not depend on the backend;
//! `audit` the backend-independent half of as-of reads, verification, checkpoints,
//! export and import.
//!
//! The command cycle runs above, in `app`: the stream head (cached in the process, or
//! loaded as the snapshot kept beside it plus the events after it) → idempotency and the
//! expected version → `decide` → `evolve` → a batch of several commands' events, hashes,
//! heads and alignment rows appended at once, whose head checks catch a head another
//! process moved meanwhile. `cut` is the stored projection the live feed starts from;
//! `snapshots` the folded states at past versions that as-of reads start from.
//! `webhooks` is what the outbound webhooks keep: subscriptions, deliveries, a lease.

pub mod audit;
pub mod backend;
pub mod batch;
#[cfg(test)]
mod corpus;
pub mod cut;
pub mod fold;
pub mod hash;
pub mod note;
pub mod postgres;
mod replay;
mod rows;
pub mod sessions;
pub mod snapshots;
mod sql;
pub mod sqlite;
pub mod standby;
pub mod tlog;
pub mod webhooks;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use thiserror::Error;
use uuid::Uuid;

use crate::domain::{AlignmentView, DomainError, Event, Initiative, Recorded, values::*};
use crate::metrics::{self, ReadPool};

pub use audit::{Break, CheckpointRecord, Checkpointed, ExportLine, ImportReport, StreamHead, Until, VerifyReport};
pub use backend::{AppendSignal, AppendSignals, Backend};
pub use hash::{EventContent, ZERO_HASH, event_hash};
pub use note::{CheckpointSigner, CheckpointVerifier};
pub use postgres::PgStore;
pub use sessions::{SessionClaims, SessionRow};
pub use sqlite::SqliteStore;
pub use standby::{Route, Standby, StandbyStatus};
pub use webhooks::{DeliveryRow, LeaseFence, Progress, SubscriptionRow, SubscriptionUpdate};

/// How many initiatives an online rebuild folds per page, and the most the swap's
/// transaction folds itself (the rest are caught up before it, up to
/// `ONLINE_CATCH_UPS` rounds).
pub const ONLINE_PAGE: usize = 100;
const ONLINE_CATCH_UPS: usize = 5;

/// What an online rebuild did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OnlineRebuilt {
    /// Initiatives folded beside the served projection.
    pub initiatives: u64,
    /// Initiatives folded again because they moved while the rebuild ran.
    pub refolded: u64,
    /// Initiatives the swap itself caught up.
    pub caught_up_in_swap: u64,
}

/// An event as stored, with all its metadata.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredEvent {
    pub position: i64,
    pub stream_id: Uuid,
    pub stream_version: i64,
    pub event_id: Uuid,
    pub event_type: String,
    pub schema_version: i32,
    pub payload: serde_json::Value,
    pub actor: String,
    pub command_id: String,
    pub correlation_id: String,
    pub causation_id: String,
    pub recorded_at: DateTime<Utc>,
    pub prev_hash: Vec<u8>,
    pub hash: Vec<u8>,
}

impl StoredEvent {
    /// The event as the fold sees it; a stored event that does not decode is corruption,
    /// unless a newer Accord wrote it (`StoreError::Newer`).
    pub fn to_recorded(&self) -> Result<Recorded, StoreError> {
        let corrupt = |what: String| StoreError::Corrupt(format!("event at position {}: {what}", self.position));
        let event =
            Event::decode_stored(&self.event_type, self.schema_version, self.payload.clone()).map_err(|e| match e {
                e if e.is_newer() => StoreError::Newer(format!("event at position {}: {e}", self.position)),
                e => corrupt(e.to_string()),
            })?;
        let actor = Principal::parse("actor", &self.actor).map_err(|e| corrupt(e.to_string()))?;
        let version = u64::try_from(self.stream_version).map_err(|_| corrupt("negative stream version".into()))?;
        Ok(Recorded { version, actor, recorded_at: self.recorded_at, event })
    }

    pub fn content(&self) -> EventContent<'_> {
        EventContent {
            stream_id: self.stream_id,
            stream_version: self.stream_version,
            event_id: self.event_id,
            event_type: &self.event_type,
            schema_version: self.schema_version,
            payload: &self.payload,
            actor: &self.actor,
            command_id: &self.command_id,
            correlation_id: &self.correlation_id,
            causation_id: &self.causation_id,
            recorded_at: self.recorded_at,
        }
    }
}

/// Where a reader of the global log stands: the commit-order key of the last event it
/// read. See `PgStore::read_all`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct GlobalCursor {
    pub tx_id: u64,
    pub position: i64,
}

#[derive(Debug, Error)]
pub enum StoreError {
    /// The domain refused the command (or a query's target does not exist).
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// The database cannot be reached or is shutting down.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The stored history cannot be folded or decoded.
    #[error("corrupt history: {0}")]
    Corrupt(String),
    /// The history holds an event of a schema version a newer Accord wrote (a rolling
    /// deploy is under way): this process cannot fold it, a newer one can.
    #[error("written by a newer Accord: {0}")]
    Newer(String),
    /// Anything else: logged in full, reported to callers as an internal error.
    #[error("database error: {0}")]
    Database(sqlx::Error),
}

/// Current time at the database's precision (microseconds), so that what is hashed and
/// folded before the write equals what is read back.
pub fn now_micros() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
}

/// The filters of a list query; `None` means "any".
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ListFilter {
    pub status: Option<String>,
    pub pending_function: Option<String>,
    pub stage: Option<String>,
    pub owner: Option<String>,
    pub text: Option<String>,
    pub include_archived: bool,
}

impl ListFilter {
    /// The text filter as a LIKE pattern: the text anywhere, its `\\`, `%` and `_` taken
    /// literally (both backends' LIKE escape with a backslash).
    pub fn text_pattern(&self) -> Option<String> {
        let escape = |text: &str| text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
        self.text.as_deref().map(|text| format!("%{}%", escape(text)))
    }
}

/// How many connections a store holds: idle, in use, and the most it may open.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    pub idle: u32,
    pub in_use: u32,
    pub max: u32,
}

impl PoolStats {
    pub fn of<DB: sqlx::Database>(pool: &sqlx::Pool<DB>) -> PoolStats {
        let idle = u32::try_from(pool.num_idle()).unwrap_or(u32::MAX);
        PoolStats { idle, in_use: pool.size().saturating_sub(idle), max: pool.options().get_max_connections() }
    }

    /// Two pools counted as one.
    pub fn plus(self, other: PoolStats) -> PoolStats {
        PoolStats {
            idle: self.idle.saturating_add(other.idle),
            in_use: self.in_use.saturating_add(other.in_use),
            max: self.max.saturating_add(other.max),
        }
    }
}

/// How long the PostgreSQL store waits for its database before it calls it unavailable.
/// A database that hangs (a stopped process, a black-holed network) still completes TCP
/// handshakes and acknowledges what is sent, so only these bounds end the wait; sqlx
/// offers no TCP keepalive, which would not notice a stopped process anyway.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DatabaseTimeouts {
    /// Each connection step at start (does the database exist, connect, create it) and,
    /// while running, each wait for a connection of the pool: for a free one, the check
    /// that an idle one still answers, and a reconnect.
    pub connect: Duration,
    /// One read or command, from asking for a connection to the answer. Verification,
    /// export, import, checkpoints and rebuilds read the whole log and are not bounded.
    pub query: Duration,
}

/// How the service reaches PostgreSQL when a pooler stands in front of it.
#[derive(Clone, Debug, Default)]
pub struct DatabaseRoute {
    /// The main URL goes through a transaction-pooling PgBouncer: unnamed statements,
    /// each call's inside a transaction, and no session settings on its connections
    /// (see `postgres::session`).
    pub pooled: bool,
    /// A direct connection for what needs a session (LISTEN, migrations).
    pub direct_url: Option<String>,
}

impl Default for DatabaseTimeouts {
    fn default() -> Self {
        // The query bound stays below the default call deadline (30 s), so that a caller
        // learns "unavailable, retry" rather than "deadline exceeded".
        DatabaseTimeouts { connect: Duration::from_secs(10), query: Duration::from_secs(20) }
    }
}

/// The event store the service runs on: PostgreSQL in production, SQLite embedded.
/// Both backends offer the same operations with the same guarantees; the behaviour
/// tests run against each. What differs per backend is behind `Backend`; this is
/// everything they share.
///
/// With a read-only standby (`with_standby`), `reader` gives the `Store` a read is served
/// from: its reads go to the standby (and to the primary, the `backend`, should the
/// standby fail one); every other `Store` reads and writes the primary only.
#[derive(Clone, Debug)]
pub struct Store {
    backend: Arc<dyn Backend>,
    standby: Option<Arc<Standby>>,
    /// Whether this store's reads go to the standby first.
    on_standby: bool,
}

impl From<PgStore> for Store {
    fn from(store: PgStore) -> Self {
        Store { backend: Arc::new(store), standby: None, on_standby: false }
    }
}

impl From<SqliteStore> for Store {
    fn from(store: SqliteStore) -> Self {
        Store { backend: Arc::new(store), standby: None, on_standby: false }
    }
}

impl Store {
    /// Opens the store a database URL names: `postgres://…` or `sqlite://PATH`.
    pub async fn open(url: &str, max_connections: u32) -> Result<Store, StoreError> {
        Store::open_with(url, max_connections, DatabaseTimeouts::default()).await
    }

    /// `open`, with how long PostgreSQL may take to answer (SQLite ignores them).
    pub async fn open_with(url: &str, max_connections: u32, timeouts: DatabaseTimeouts) -> Result<Store, StoreError> {
        Store::open_routed(url, &DatabaseRoute::default(), max_connections, timeouts).await
    }

    /// `open_with`, through a pooler as `route` says (PostgreSQL only).
    pub async fn open_routed(
        url: &str,
        route: &DatabaseRoute,
        max_connections: u32,
        timeouts: DatabaseTimeouts,
    ) -> Result<Store, StoreError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(PgStore::connect_routed(url, route, max_connections, timeouts).await?.into())
        } else if let Some(path) = url.strip_prefix("sqlite://") {
            Ok(SqliteStore::open(std::path::Path::new(path)).await?.into())
        } else {
            Err(StoreError::Unavailable(format!("unsupported database URL {url:?}: use postgres://… or sqlite://PATH")))
        }
    }

    /// This store with `standby` serving the reads that `reader` routes to it.
    pub fn with_standby(mut self, standby: Standby) -> Store {
        self.standby = Some(Arc::new(standby));
        self
    }

    /// The standby's state, for readiness and logs.
    pub fn standby_status(&self) -> StandbyStatus {
        self.standby.as_ref().map_or(StandbyStatus::None, |standby| standby.status())
    }

    /// The store a query is served from: the standby once it has replayed `min_position`
    /// (0: any state of it will do), waiting for that at most the standby's bound; this
    /// (primary) store when there is no standby, it is down, or it did not get there in
    /// time. See `standby` for why a standby's read is a consistent prefix of the log.
    pub async fn reader(&self, min_position: u64) -> Store {
        let Some(standby) = &self.standby else { return self.clone() };
        match standby.route(min_position).await {
            Route::Standby => Store { on_standby: true, ..self.clone() },
            Route::Primary(reason) => {
                metrics::standby_fallback(reason);
                Store { on_standby: false, ..self.clone() }
            }
        }
    }

    /// A store whose reads go to the standby whenever it is usable, for a reader that
    /// keeps it (the live feed's tail): unlike `reader`, a standby that is down when this
    /// is made is tried again once it may answer.
    pub fn standby_reads(&self) -> Store {
        Store { on_standby: self.standby.is_some(), ..self.clone() }
    }

    /// Asks the standby (if any) a trivial query, so that its state is known even while
    /// no read goes there: the readiness probe calls this beside `ping`.
    pub async fn probe_standby(&self) {
        let Some(standby) = &self.standby else { return };
        match self.bounded(standby.backend().ping()).await {
            Ok(()) => standby.answered(),
            Err(error) => standby.failed(&error),
        }
    }

    /// Whether this store's reads go to the standby first.
    pub fn reads_on_standby(&self) -> bool {
        self.on_standby
    }

    /// One read: on the standby when this store reads there and it is usable, on the
    /// primary when it fails there (unreachable, a query cancelled by recovery) — the
    /// read is asked again of the primary rather than failed — or otherwise.
    async fn read<T, F, Fut>(&self, read: F) -> Result<T, StoreError>
    where
        F: Fn(Arc<dyn Backend>) -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        if self.on_standby
            && let Some(standby) = &self.standby
        {
            if !standby.usable() {
                metrics::standby_fallback("down");
            } else {
                match self.bounded(read(standby.backend())).await {
                    Ok(value) => {
                        standby.answered();
                        standby::served(ReadPool::Standby);
                        return Ok(value);
                    }
                    Err(error @ (StoreError::Unavailable(_) | StoreError::Database(_))) => {
                        standby.failed(&error);
                        metrics::standby_fallback("down");
                    }
                    Err(error) => return Err(error),
                }
            }
        }
        let read = self.bounded(read(Arc::clone(&self.backend))).await;
        standby::served(ReadPool::Primary);
        read
    }

    /// Connection counts of the store's pools, for the metrics.
    pub fn pool_stats(&self) -> PoolStats {
        let primary = self.backend.pool_stats();
        match &self.standby {
            Some(standby) => primary.plus(standby.backend().pool_stats()),
            None => primary,
        }
    }

    /// "postgres" or "sqlite", for logs.
    pub fn kind(&self) -> &'static str {
        self.backend.kind()
    }

    /// The PostgreSQL store underneath, if that is what this runs on.
    pub fn postgres(&self) -> Option<&PgStore> {
        self.backend.postgres()
    }

    /// Signals of appends by any process, where the database sends them (see
    /// `AppendSignal`); `None` where only the log itself tells.
    pub fn append_signals(&self) -> Option<AppendSignals> {
        self.backend.append_signals()
    }

    /// The SQLite store underneath, if that is what this runs on.
    pub fn sqlite(&self) -> Option<&SqliteStore> {
        self.backend.sqlite()
    }

    /// `work`, or `Unavailable` once the database has not answered it within the
    /// backend's query timeout (PostgreSQL's; SQLite has none). A command cut off this
    /// way may still commit: the caller retries it with the same command id, which
    /// replays it if it did.
    async fn bounded<T, E: From<StoreError>>(&self, work: impl Future<Output = Result<T, E>>) -> Result<T, E> {
        let Some(limit) = self.backend.query_timeout() else { return work.await };
        tokio::time::timeout(limit, work).await.unwrap_or_else(|_| {
            Err(StoreError::Unavailable(format!("the database did not answer within {} s", limit.as_secs_f64())).into())
        })
    }

    /// Whether the database answers a trivial query: the readiness probe.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.bounded(self.backend.ping()).await
    }

    /// The heads of the streams named by id or key (those that exist), each stream's
    /// snapshot with the events after it folded onto it.
    pub async fn load_heads(&self, ids: &[Uuid], keys: &[String]) -> Result<Vec<batch::LoadedHead>, StoreError> {
        let heads = self.read(|b| async move { b.load_heads(ids, keys).await }).await?;
        let mut loaded = Vec::with_capacity(heads.len());
        for head in heads {
            loaded.push(self.fold_head(head).await?);
        }
        Ok(loaded)
    }

    /// A head's rows folded; when its snapshot cannot be used and the rows hold only the
    /// events after it, with the stream's whole log (events never change, so reading them
    /// now up to the head's version is as consistent as reading them with the head).
    async fn fold_head(&self, head: batch::HeadRows) -> Result<batch::LoadedHead, StoreError> {
        let mut head = match head.fold()? {
            batch::HeadFold::Folded(loaded) => return Ok(*loaded),
            batch::HeadFold::NeedsWholeStream(head) => head,
        };
        head.tail = self.read_stream(head.stream_id, 1, head.version.max(1)).await?;
        match head.fold()? {
            batch::HeadFold::Folded(loaded) => Ok(*loaded),
            batch::HeadFold::NeedsWholeStream(head) => {
                Err(StoreError::Corrupt(format!("stream {}: its log does not start at version 1", head.stream_id)))
            }
        }
    }

    /// The stored results of the command ids that were used before.
    pub async fn find_commands(&self, ids: &[String]) -> Result<Vec<(String, batch::StoredCommand)>, StoreError> {
        self.bounded(self.backend.find_commands(ids)).await
    }

    /// Appends a batch atomically (see `batch`).
    pub async fn append_batch(&self, batch: &batch::Batch) -> Result<batch::Appended, batch::AppendRefused> {
        let appended = self.bounded(self.backend.append_batch(batch)).await?;
        if let Some(standby) = &self.standby
            && let Some(last) = appended.cursors.iter().map(|cursor| cursor.position).max()
        {
            standby.wrote(u64::try_from(last).unwrap_or_default());
        }
        Ok(appended)
    }

    /// The folded state of one initiative now: its snapshot with the events after it.
    pub async fn initiative(&self, target: &InitiativeRef) -> Result<Option<Initiative>, StoreError> {
        let (ids, keys) = match target {
            InitiativeRef::Id(id) => (vec![id.0], vec![]),
            InitiativeRef::Key(key) => (vec![], vec![key.to_string()]),
        };
        Ok(self.load_heads(&ids, &keys).await?.into_iter().next().map(|head| head.state))
    }

    /// One initiative's folded state at `version` (`None`: no such stream): from its
    /// head's snapshot when that is at or below `version`, with the events after it up
    /// to `version`; from its first event otherwise.
    pub async fn state_at(&self, stream_id: Uuid, version: i64) -> Result<Option<Initiative>, StoreError> {
        let heads = self.read(|b| async move { b.load_heads(&[stream_id], &[]).await }).await?;
        let Some(mut head) = heads.into_iter().next() else { return Ok(None) };
        let snapshot_version = head.tail.first().map_or(head.version, |event| event.stream_version - 1);
        if (snapshot_version..=head.version).contains(&version) {
            // The head as it was at `version`; only its state is used, so its hash need
            // not be that version's.
            head.tail.retain(|event| event.stream_version <= version);
            head.version = version;
            return Ok(Some(self.fold_head(head).await?.state));
        }
        let until = Until::Version(u64::try_from(version).unwrap_or_default());
        let events = self.read_stream_until(stream_id, until).await?;
        fold::fold_onto(stream_id, None, &events)
    }

    /// Every stream's head and stored alignment row at one consistent cut of the log
    /// (see `cut`): where the live feed starts.
    pub async fn projection_cut(&self) -> Result<cut::ProjectionCut, StoreError> {
        self.read(|b| async move { b.projection_cut().await }).await
    }

    pub async fn alignment(&self, target: &InitiativeRef) -> Result<Option<AlignmentView>, StoreError> {
        self.read(|b| async move { b.alignment(target).await }).await
    }

    pub async fn list(
        &self,
        filter: &ListFilter,
        after_key: Option<&str>,
        limit: i64,
    ) -> Result<Vec<AlignmentView>, StoreError> {
        self.read(|b| async move { b.list(filter, after_key, limit).await }).await
    }

    pub async fn awaiting(&self, principal: &Principal) -> Result<Vec<AlignmentView>, StoreError> {
        self.read(|b| async move { b.awaiting(principal).await }).await
    }

    pub async fn read_stream(
        &self,
        stream_id: Uuid,
        from_version: i64,
        limit: i64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.read(|b| async move { b.read_stream(stream_id, from_version, limit).await }).await
    }

    pub async fn sign_off_events(
        &self,
        stream: InitiativeId,
        decision: DecisionId,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.read(|b| async move { b.sign_off_events(stream, decision).await }).await
    }

    pub async fn read_all(
        &self,
        after: GlobalCursor,
        limit: i64,
    ) -> Result<Vec<(GlobalCursor, StoredEvent)>, StoreError> {
        self.read(|b| async move { b.read_all(after, limit).await }).await
    }

    /// Rebuilds the stream heads and alignment projection of every initiative, and the
    /// past snapshots, from the log while the service keeps running: the log is read
    /// once in position order and every stream folded on the cores' lanes (`replay`),
    /// the snapshots written as they are derived; then each initiative's head and row
    /// are written in a transaction of their own that holds the head (commands on it
    /// wait), with anything appended since the read folded on top. Returns how many
    /// were rebuilt.
    pub async fn rebuild_projections(&self) -> Result<u64, StoreError> {
        // The past snapshots too: deleted, then derived again on the way.
        self.purge_snapshots(None).await?;
        let (writer, mut derived) = tokio::sync::mpsc::channel::<Vec<snapshots::PastSnapshot>>(4);
        let backend = Arc::clone(&self.backend);
        let write = tokio::spawn(async move {
            while let Some(snapshots) = derived.recv().await {
                backend.put_snapshots(&snapshots).await?;
            }
            Ok::<_, StoreError>(())
        });
        let folded = self.backend.fold_log(snapshots::SNAPSHOT_EVERY, writer).await;
        let written = write.await.map_err(|e| StoreError::Database(sqlx::Error::Protocol(format!("{e}"))));
        let mut folded = folded?;
        written??;
        let mut rebuilt = 0;
        for stream_id in self.backend.stream_ids().await? {
            let fold = folded.remove(&stream_id).unwrap_or_default();
            self.backend.rebuild_stream(stream_id, fold).await?;
            rebuilt += 1;
        }
        Ok(rebuilt)
    }

    /// Rebuilds the alignment projection of every initiative from the log beside the
    /// served one, blue/green: while `alignment` keeps serving reads and appends, every
    /// initiative's row is folded from its log into `alignment_next`, `ONLINE_PAGE`
    /// initiatives at a time; the streams that moved meanwhile are folded again until
    /// few remain; then one transaction that no append commits during folds the last
    /// ones and replaces the served rows with the new ones. Readers see the old
    /// projection until that commit and the new one after, which is then exactly the
    /// log's fold. The heads' snapshots are left alone. One at a time per store.
    pub async fn rebuild_projections_online(&self) -> Result<OnlineRebuilt, StoreError> {
        self.backend.clear_next().await?;
        let streams = self.backend.stream_ids().await?;
        for page in streams.chunks(ONLINE_PAGE) {
            self.fold_into_next(page).await?;
        }
        let mut refolded = 0;
        for _ in 0..ONLINE_CATCH_UPS {
            let behind = self.backend.next_behind().await?;
            if behind.len() <= ONLINE_PAGE {
                break;
            }
            refolded += behind.len() as u64;
            for page in behind.chunks(ONLINE_PAGE) {
                self.fold_into_next(page).await?;
            }
        }
        let swapped_in = self.backend.swap_next().await?;
        Ok(OnlineRebuilt { initiatives: streams.len() as u64, refolded, caught_up_in_swap: swapped_in })
    }

    async fn fold_into_next(&self, streams: &[Uuid]) -> Result<(), StoreError> {
        let mut heads = Vec::with_capacity(streams.len());
        for stream_id in streams {
            let events = self.read_stream(*stream_id, 1, i64::MAX).await?;
            heads.push(fold::FoldedHead::refold(*stream_id, &events)?);
        }
        self.backend.write_next(&heads).await
    }

    // ---- Audit (see `audit`) ----------------------------------------------------------

    /// One stream's events from version 1 up to `until` (inclusive), in version order,
    /// read through the (stream, version) index: an as-of query never reads the global log.
    /// By time: the prefix before the stream's first event recorded after `time`.
    pub async fn read_stream_until(&self, stream_id: Uuid, until: Until) -> Result<Vec<StoredEvent>, StoreError> {
        self.read(|b| async move { b.read_stream_until(stream_id, until).await }).await
    }

    /// The highest global position committed (0 for an empty log).
    pub async fn head_position(&self) -> Result<u64, StoreError> {
        self.read(|b| async move { b.head_position().await }).await
    }

    /// The cursor that resumes the global log after a global position a client saw (0:
    /// from the start). A position past the head resumes at "now": nothing is returned
    /// until events commit later, and then only those. On PostgreSQL a position the log
    /// does not hold (a rolled-back append's) resumes after the nearest event below it.
    pub async fn cursor_after_position(&self, after: u64) -> Result<GlobalCursor, StoreError> {
        if after == 0 {
            return Ok(GlobalCursor::default());
        }
        self.read(|b| async move { b.cursor_after_position(after).await }).await
    }

    /// The global log after a global position (see `cursor_after_position`), in commit
    /// order, with each event's cursor; continue with `read_all` from the last cursor.
    pub async fn read_all_after_position(
        &self,
        after: u64,
        limit: i64,
    ) -> Result<Vec<(GlobalCursor, StoredEvent)>, StoreError> {
        let cursor = self.cursor_after_position(after).await?;
        self.read_all(cursor, limit).await
    }

    /// Recomputes the hash chains of one stream or of the whole log, streaming the
    /// events; checks each stream against every witness the store holds (checkpoint
    /// heads, the stream head, the command records, the projection's version) and, for
    /// the whole log, the log tree against every log-tree checkpoint; with a key, each
    /// checkpoint's signed note must verify. Reports the first break.
    ///
    /// On PostgreSQL the whole log is read once in position order (the heap's order) in
    /// one snapshot, each stream's events checked on one of the cores' lanes
    /// (`audit::LogScan`); the first stream that does not verify is verified again on
    /// its own, which locates its break. Otherwise (SQLite, and one stream) pages of
    /// whole streams are read by (stream id, version) through its unique index, each
    /// page with its streams' witnesses in one snapshot: the log only grows, so a
    /// verification that runs beside appends checks what existed when each page was
    /// read. Then, for the whole log, the log tree is recomputed in commit order.
    pub async fn verify(
        &self,
        stream: Option<Uuid>,
        key: Option<&CheckpointVerifier>,
    ) -> Result<VerifyReport, StoreError> {
        let mut verifier = audit::Verifier::new(stream, key.cloned());
        for raw in self.backend.raw_checkpoints().await? {
            verifier.add_checkpoint(raw);
        }
        if stream.is_none() && !verifier.is_broken() {
            let marks = verifier.take_tree_marks();
            if let Some(outcome) = self.backend.verify_scan(&mut verifier).await? {
                let mut report = verifier.scanned(&outcome);
                if let Some(suspect) = outcome.first_suspect {
                    // Located exactly, as a verification of that stream alone does.
                    let alone = Box::pin(self.verify(Some(suspect.stream_id), key)).await?;
                    report.first_break = alone.first_break.or(Some(suspect));
                } else if !marks.is_empty() {
                    report.first_break = audit::verify_tree(marks, |after| self.backend.tree_page(after)).await?;
                }
                return Ok(report);
            }
            verifier.restore_tree_marks(marks);
        }
        let backend = Arc::clone(&self.backend);
        let pages = move |after| {
            let backend = Arc::clone(&backend);
            async move {
                let mut page = backend.verify_page(stream, after).await?;
                page.witnesses.past = past_snapshots_of(&*backend, &page.events).await?;
                Ok(page)
            }
        };
        let tree = stream.is_none().then_some(|after| self.backend.tree_page(after));
        audit::verify_paged(verifier, pages, tree).await
    }

    /// Records a checkpoint of the log tree: a prefix of the log in commit order, every
    /// stream's head in it, the root, the frontier, and with a signer its signed note.
    /// A checkpoint is due only when the log grew: while no event follows the latest
    /// one (and it is signed as asked), that one is returned and nothing is recorded.
    pub async fn create_checkpoint(&self, signer: Option<&CheckpointSigner>) -> Result<CheckpointRecord, StoreError> {
        Ok(self.checkpoint(signer).await?.record)
    }

    /// As `create_checkpoint`, saying whether a new checkpoint was recorded.
    pub async fn checkpoint(&self, signer: Option<&CheckpointSigner>) -> Result<Checkpointed, StoreError> {
        self.backend.create_checkpoint(signer).await
    }

    /// Every checkpoint, oldest first.
    pub async fn list_checkpoints(&self) -> Result<Vec<CheckpointRecord>, StoreError> {
        let raw = self.backend.raw_checkpoints().await?;
        raw.into_iter().map(|raw| CheckpointRecord::decode(raw).map_err(StoreError::Corrupt)).collect()
    }

    /// Loads an export — (line number, line) pairs — into an empty store, all or nothing:
    /// see `import_stream`.
    pub async fn import<I>(&self, lines: I) -> Result<ImportReport, StoreError>
    where
        I: IntoIterator<Item = (usize, String)>,
        I::IntoIter: Send + 'static,
    {
        self.import_stream(tokio_stream::iter(lines.into_iter().map(Ok))).await
    }

    /// Loads an export into an empty store (`FailedPrecondition` otherwise), checking
    /// every line as it is read (`audit::Importer`: `InvalidArgument` on "line N"), in
    /// one transaction: the events (new positions in the file's order, everything else
    /// as exported), a command record for every command id (retries replay), and every
    /// initiative's head and projection, folded from its events. Nothing is written on
    /// any error, including one the stream of lines yields.
    pub async fn import_stream<S>(&self, lines: S) -> Result<ImportReport, StoreError>
    where
        S: tokio_stream::Stream<Item = Result<(usize, String), StoreError>> + Send + Unpin + 'static,
    {
        self.backend.import(Box::pin(lines)).await
    }
}

/// The past snapshots of a verification page's streams at or below the last version the
/// page holds of each: one written after the page was read may be past it, and is
/// checked by the next verification.
async fn past_snapshots_of(
    backend: &dyn Backend,
    events: &[StoredEvent],
) -> Result<Vec<snapshots::PastSnapshot>, StoreError> {
    let mut last: std::collections::BTreeMap<Uuid, i64> = std::collections::BTreeMap::new();
    for event in events {
        last.insert(event.stream_id, event.stream_version);
    }
    if last.is_empty() {
        return Ok(Vec::new());
    }
    let streams: Vec<Uuid> = last.keys().copied().collect();
    let mut past = backend.past_snapshots(&streams).await?;
    past.retain(|snapshot| last.get(&snapshot.stream_id).is_some_and(|version| snapshot.version <= *version));
    Ok(past)
}
