//! The embedded SQLite event store: the same log, idempotency record, stream heads and
//! alignment projection as `postgres`, with the same guarantees and errors, in one file
//! and no database server — what `accord serve` runs on by default.
//!
//! Writers: SQLite admits one write transaction per database file at a time, and a
//! writer that finds the lock taken can only sleep and poll (the busy handler) until a
//! timeout ends in "database is locked". So the store does not let its own commands race
//! for that lock: every write (a command, a stream rebuild) runs on the one write
//! connection, owned by a tokio `Mutex` — FIFO, so writers queue fairly and never see
//! SQLite's lock — and is spawned as its own task, so a caller that goes away (a gRPC
//! request cancelled mid-command) cannot release the mutex before its transaction has
//! committed or rolled back. Against other processes on the same file (say `accord
//! rebuild-projections` next to a running server), each write transaction starts with
//! `BEGIN IMMEDIATE`: it takes the write lock before it reads the stream head, so it
//! never has to upgrade a read snapshot to a write (which WAL refuses at once, without
//! waiting), and the busy timeout waits for the other process. A busy error that outlasts
//! it is retried, then reported as `Unavailable`, never as a raw error.
//!
//! Readers use their own pool. WAL mode lets them read a consistent snapshot while the
//! writer appends, so queries never wait for commands.
//!
//! Pragmas, per connection: `journal_mode=WAL` (concurrent readers, one fsync per commit);
//! `synchronous=FULL` — in WAL mode, NORMAL can lose the last acknowledged commands on a
//! power cut or OS crash; an audit log that has told a caller "recorded at position N"
//! must not, just as PostgreSQL's default `synchronous_commit=on` does not, and one fsync
//! per command is cheap at an embedded store's write rate; `foreign_keys=ON` (the schema
//! declares none today, so a future one is enforced); `busy_timeout` of five seconds.
//!
//! Readers of the global log never skip a late commit: positions are assigned inside the
//! one write transaction that may exist, and it commits before the next writer can assign
//! any, so commit order is position order and every snapshot holds a prefix of the log
//! (see `read_all`). The cursor's `tx_id` is always 0 here.
//!
//! Text search (`list`) uses LIKE, which in SQLite ignores case for ASCII letters only;
//! PostgreSQL's ILIKE also folds other letters ("É" matches "é" there, not here).
//!
//! One file per part of the `Backend` it implements: `append` (heads and the batch
//! append), `reads`, `rebuild`, `auditing` (as-of reads, verification pages,
//! checkpoints), `import`; `errors` holds the retries and maps SQLite's errors, `tests`
//! the store's own tests. What runs the same on PostgreSQL is in `store::sql` and
//! `store::rows`. Opening, the pragmas and the one writer are here.

use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::{
    QueryBuilder, Sqlite, SqliteConnection, SqlitePool, Transaction,
    migrate::{MigrateError, Migrator},
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous},
};
use tokio::sync::Mutex;
use tracing::{error, warn};
use uuid::Uuid;

use super::audit::{self, ImportSink, ImportedCommand, LogFold, RawCheckpoint, VerifyKey, VerifyPage};
use super::backend::{Audit, Backend, Heads, Import, ImportLines, Reads, Rebuild};
use super::batch::{AppendRefused, Appended, Batch};
use super::batch::{HeadRows, StoredCommand};
use super::fold::FoldedHead;
use super::note::CheckpointSigner;
use super::rows::{
    Column, ColumnOf, EVENT_COLUMNS, SqlErrors, StoredRow, decode_checkpoint, decode_command, decode_event,
    decode_events, decode_head, decode_tree_event, decode_view,
};
use super::sql::{self, Dialect, VerifySql};
use super::*;
use crate::domain::AlignmentView;
use serde::de::DeserializeOwned;

mod append;
mod auditing;
mod cut;
mod errors;
mod import;
mod online;
mod reads;
mod rebuild;
mod sessions;
mod snapshots;
#[cfg(test)]
mod tests;
mod webhooks;

pub use errors::map_sqlx;
use errors::{Retry, attempts, fail, open_error, unique_violation};
use reads::position_cursor;
use rebuild::write_head;

/// The embedded SQLite migrations.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// How long a connection waits for another process's write lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a query waits for a free connection.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections for concurrent readers (each is one SQLite handle on its own thread).
const READERS: u32 = 8;

/// How many times a write is tried when another process holds the write lock past the
/// busy timeout, or wrote the same command, key or stream version first.
const ATTEMPTS: usize = 3;

/// Every write transaction takes the write lock up front (see the module comment).
const BEGIN_WRITE: &str = "BEGIN IMMEDIATE";

#[derive(Clone, Debug)]
pub struct SqliteStore {
    /// The readers' connections.
    pool: SqlitePool,
    /// The single write connection (a pool of one, so it reconnects if it breaks); only
    /// the holder of this lock writes.
    writer: Arc<Mutex<SqlitePool>>,
    /// The same write pool, read without the lock for its connection counts.
    write_pool: SqlitePool,
}

impl SqliteStore {
    /// Opens the database at `path`, creating its folder and the file if missing, and
    /// applies the migrations. A file that is not an SQLite database is `Corrupt`; a
    /// location that cannot be created or written is `Unavailable`; both name the path.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(parent) = path.parent().filter(|parent| !parent.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| {
                StoreError::Unavailable(format!(
                    "cannot create the folder {} of the SQLite database: {e}",
                    parent.display()
                ))
            })?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        // The writer connects first: it creates the file and switches it to WAL, which
        // is a property of the file, so the readers need not set it again.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options.clone().create_if_missing(true).journal_mode(SqliteJournalMode::Wal))
            .await
            .map_err(|e| open_error(path, e))?;
        MIGRATOR.run(&writer).await.map_err(|e| match e {
            MigrateError::Execute(e) => open_error(path, e),
            other => StoreError::Corrupt(format!("migrations of {}: {other}", path.display())),
        })?;
        let pool = SqlitePoolOptions::new()
            .max_connections(READERS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(|e| open_error(path, e))?;
        Ok(Self { pool, writer: Arc::new(Mutex::new(writer.clone())), write_pool: writer })
    }

    /// The readers' pool. Writes through it bypass the store's writer lock; they are
    /// safe (SQLite serialises them) but may wait for the busy timeout.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Runs `work` on the write connection, as the only writer of this store, in its own
    /// task so that it finishes even if the caller stops waiting.
    async fn write<T, F, Fut>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(SqlitePool) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        let writer = Arc::clone(&self.writer);
        let task = tokio::spawn(async move {
            let pool = writer.lock().await;
            work(pool.clone()).await
        });
        match task.await {
            Ok(result) => result,
            Err(e) if e.is_cancelled() => Err(StoreError::Unavailable("the store is shutting down".into())),
            Err(e) => {
                error!(error = %e, "SQLite write task failed");
                Err(StoreError::Database(sqlx::Error::Protocol(format!("the write task failed: {e}"))))
            }
        }
    }
}

#[async_trait]
impl Backend for SqliteStore {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    fn sqlite(&self) -> Option<&SqliteStore> {
        Some(self)
    }

    /// Connections of the readers' pool and the write connection, counted together.
    fn pool_stats(&self) -> PoolStats {
        PoolStats::of(&self.pool).plus(PoolStats::of(&self.write_pool))
    }

    /// None: a command waits for the one writer, however long the queue before it.
    fn query_timeout(&self) -> Option<Duration> {
        None
    }

    /// A trivial query on a reader's connection: the file is still there to be read.
    async fn ping(&self) -> Result<(), StoreError> {
        sql::execute(sqlx::query("SELECT 1"), &self.pool).await
    }
}

/// SQLite's statements run on the connection as they are.
impl sql::Statements<Sqlite> for SqliteConnection {
    fn run(&mut self) -> impl sqlx::Executor<'_, Database = Sqlite> {
        self
    }
}

/// SQLite binds UUIDs as canonical hyphenated text and times as microseconds since the
/// epoch (see `StoredRow for SqliteRow`).
impl Dialect for Sqlite {
    type Id = String;
    type Time = i64;

    fn id(id: Uuid) -> String {
        id.to_string()
    }

    fn time(time: DateTime<Utc>) -> i64 {
        time.timestamp_micros()
    }
}

fn encode_json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(format!("cannot encode JSON: {e}")))
}

impl SqlErrors for SqliteRow {
    fn sql_error(error: sqlx::Error) -> StoreError {
        map_sqlx(error)
    }
}

/// SQLite keeps UUIDs as canonical hyphenated text, JSON as text and times as
/// microseconds since the epoch.
impl StoredRow for SqliteRow {
    fn uuid<'c>(&self, column: impl Into<Column<'c>>) -> Result<Uuid, StoreError> {
        let column: Column<'c> = column.into();
        let text: String = self.read(column)?;
        parse_uuid(column, &text)
    }

    fn optional_uuid<'c>(&self, column: impl Into<Column<'c>>) -> Result<Option<Uuid>, StoreError> {
        let column: Column<'c> = column.into();
        let text: Option<String> = self.read(column)?;
        text.map(|text| parse_uuid(column, &text)).transpose()
    }

    fn json<'c, T: DeserializeOwned>(&self, column: impl Into<Column<'c>>) -> Result<Result<T, String>, StoreError> {
        let column: Column<'c> = column.into();
        let text: String = self.read(column)?;
        Ok(serde_json::from_str(&text).map_err(|e| e.to_string()))
    }

    fn optional_json<'c, T: DeserializeOwned>(
        &self,
        column: impl Into<Column<'c>>,
    ) -> Result<Result<Option<T>, String>, StoreError> {
        let column: Column<'c> = column.into();
        let text: Option<String> = self.read(column)?;
        Ok(text.map(|text| serde_json::from_str(&text)).transpose().map_err(|e| e.to_string()))
    }

    fn time<'c>(&self, column: impl Into<Column<'c>>) -> Result<Result<DateTime<Utc>, String>, StoreError> {
        let column: Column<'c> = column.into();
        let micros: i64 = self.read(column)?;
        Ok(DateTime::from_timestamp_micros(micros).ok_or_else(|| format!("{column} {micros} is out of range")))
    }

    fn optional_time<'c>(
        &self,
        column: impl Into<Column<'c>>,
    ) -> Result<Result<Option<DateTime<Utc>>, String>, StoreError> {
        let column: Column<'c> = column.into();
        let micros: Option<i64> = self.read(column)?;
        Ok(micros
            .map(|micros| {
                DateTime::from_timestamp_micros(micros).ok_or_else(|| format!("{column} {micros} is out of range"))
            })
            .transpose())
    }

    fn byte_len(&self, name: &str) -> usize {
        sqlx::Row::try_get_unchecked::<&[u8], _>(self, name).map_or(0, <[u8]>::len)
    }
}

fn parse_uuid(column: impl std::fmt::Display, text: &str) -> Result<Uuid, StoreError> {
    Uuid::try_parse(text).map_err(|e| StoreError::Corrupt(format!("{column} {text:?} is not a UUID: {e}")))
}
