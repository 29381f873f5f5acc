//! The PostgreSQL event store.
//!
//! Writers: each process's committer (`app::committer`) plans the commands waiting as one
//! batch against the stream heads it caches, and appends the batch in one statement that
//! is its own transaction (`append`): one round trip for the events, idempotency
//! records, moved heads and alignment rows of many commands. The statement checks the
//! heads rather than locking them first: a head another process moved or holds locked
//! (a rebuild), or a command id or key taken first, refuses the whole batch, and the
//! committer plans it again. Loading a head reads its snapshot and the events after it,
//! never the whole stream.
//!
//! Readers of the global log: every statement that inserts events takes the commit-order
//! lock first (a transaction-scoped advisory lock taken by the `events_commit_order`
//! trigger), so appends assign positions and commit one after another, and a reader
//! that sees a position sees every event below it that will ever commit. The log is read
//! by position, waiting for nothing but Accord's own appends (`in_commit_order`). Events
//! written before that trigger existed (up to `log_order.ordered_after`) keep the order
//! they were always read in, (tx_id, position): positions clients hold stay valid.
//!
//! One file per part of the `Backend` it implements: `append` (heads and the batch
//! append), `reads`, `rebuild`, `auditing` (as-of reads, verification pages,
//! checkpoints), `cut`, `import`, `signals` (notifications of appends); `errors` maps
//! PostgreSQL's errors; `session` is where every statement runs, direct or behind a
//! transaction-pooling PgBouncer. What runs the same on SQLite is in `store::sql` and
//! `store::rows`. Connecting and migrating are here.

use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::{
    PgConnection, PgPool, Postgres, Row, Transaction, TypeInfo, ValueRef,
    migrate::{MigrateDatabase, Migrator},
    postgres::{PgConnectOptions, PgDatabaseError, PgPoolOptions, PgRow, PgSeverity, PgValueFormat},
};
use tracing::{info, warn};
use uuid::Uuid;

use super::audit::{self, ImportSink, ImportedCommand, LogFold, RawCheckpoint, VerifyKey, VerifyPage};
use super::backend::{AppendSignals, Audit, Backend, Heads, Import, ImportLines, Reads, Rebuild};
use super::batch::{AlignmentRow, AppendRefused, Appended, Batch};
use super::batch::{HeadRows, StoredCommand};
use super::fold::FoldedHead;
use super::note::CheckpointSigner;
use super::rows::{
    Column, ColumnOf, EVENT_COLUMNS, SqlErrors, StoredRow, decode_checkpoint, decode_command, decode_event,
    decode_head, decode_tree_event, decode_view,
};
use super::sql::{self, Dialect, SqlQuery, VerifySql};
use super::*;
use crate::domain::AlignmentView;
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;

mod append;
mod auditing;
mod cut;
mod errors;
mod import;
mod online;
mod reads;
mod rebuild;
mod session;
mod sessions;
mod signals;
mod snapshots;
mod webhooks;

use append::bind_events;
pub use errors::{map_sqlx, refuses_service};
pub use reads::POSITION_ORDER;
use reads::{commit_cursor, commit_order_rows, tree_tx};
use rebuild::write_head;
use session::Session;

/// The most a read waits for a connection to the standby (see `connect_standby`).
const STANDBY_CONNECT: Duration = Duration::from_secs(1);

/// The embedded PostgreSQL migrations.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

#[derive(Clone, Debug)]
pub struct PgStore {
    pool: PgPool,
    /// A direct connection (not through a transaction-pooling PgBouncer) for what needs a
    /// session: the append listener's LISTEN. `None`: the main pool is direct.
    direct: Option<PgPool>,
    /// `pool` goes through a transaction-pooling PgBouncer: statements run as `session`
    /// says.
    pooled: bool,
    timeouts: DatabaseTimeouts,
    /// `log_order.ordered_after`, written once by its migration: read once, then kept.
    ordered_after: Arc<tokio::sync::OnceCell<i64>>,
}

impl PgStore {
    /// A store on a pool built elsewhere (the tests'), with the default query timeout.
    pub fn new(pool: PgPool) -> Self {
        Self { pool, direct: None, pooled: false, timeouts: DatabaseTimeouts::default(), ordered_after: Arc::default() }
    }

    /// Connects, creating the database if it does not exist, and applies migrations.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        Self::connect_with(url, max_connections, DatabaseTimeouts::default()).await
    }

    /// `connect`, waiting at most `timeouts.connect` for each connection step: a database
    /// that does not answer is `Unavailable`, naming where it was awaited. Logs where it
    /// connects first (host, port and database; never the password).
    pub async fn connect_with(url: &str, max_connections: u32, timeouts: DatabaseTimeouts) -> Result<Self, StoreError> {
        Self::connect_routed(url, &DatabaseRoute::default(), max_connections, timeouts).await
    }

    /// `connect_with`, where `route` says whether `url` goes through a transaction-pooling
    /// PgBouncer and names the direct connection for what needs a session: creating the
    /// database, the migrations (sqlx's migrator holds a session advisory lock across
    /// them) and LISTEN. A pooled URL without a direct one is refused.
    pub async fn connect_routed(
        url: &str,
        route: &DatabaseRoute,
        max_connections: u32,
        timeouts: DatabaseTimeouts,
    ) -> Result<Self, StoreError> {
        if route.pooled && route.direct_url.is_none() {
            return Err(StoreError::Unavailable(
                "a pooled database URL (--database-pooled) needs --database-direct-url for LISTEN and migrations"
                    .into(),
            ));
        }
        let session_url = route.direct_url.as_deref().unwrap_or(url);
        let mut options: PgConnectOptions = url.parse().map_err(map_sqlx)?;
        if route.pooled {
            // PgBouncer 1.18 in transaction mode hands each transaction any server
            // connection: a statement prepared on one is unknown on the next. The store
            // sends its statements unnamed there (`session`), which sqlx never caches, so
            // the cache is off. (sqlx names a statement of its own only to look up a type
            // that is not built in, and Accord's statements use none.)
            options = options.statement_cache_capacity(0);
        }
        let database = describe(&options);
        let wait = timeouts.connect;
        info!(%database, pooled = route.pooled, timeout_s = wait.as_secs_f64(), "connecting to the database");
        if !within(wait, &database, Postgres::database_exists(session_url)).await? {
            info!(%database, "creating database");
            within(wait, &database, Postgres::create_database(session_url)).await?;
        }
        let pooled = route.pooled;
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(wait)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    // Accord's statements are prepared once and run thousands of times with
                    // arrays and keys whose values do not change the best plan: planning
                    // each run anew (PostgreSQL's first custom plans) cost more than the
                    // append's own work. A session setting: behind a transaction-pooling
                    // PgBouncer it would land on whichever server connection ran it, so
                    // it is not sent there (set it on the role or database instead).
                    if pooled {
                        return Ok(());
                    }
                    sqlx::query("SET plan_cache_mode = force_generic_plan").execute(conn).await.map(|_| ())
                })
            })
            .connect_lazy_with(options);
        // One connection now, so that a database that does not answer stops the start.
        within(wait, &database, pool.acquire()).await?;
        let direct = match &route.direct_url {
            Some(direct_url) => {
                let direct_options: PgConnectOptions = direct_url.parse().map_err(map_sqlx)?;
                let direct_database = describe(&direct_options);
                info!(database = %direct_database, "direct connection for LISTEN and migrations");
                // The listener holds one connection; the migrations take one at start.
                let direct =
                    PgPoolOptions::new().max_connections(2).acquire_timeout(wait).connect_lazy_with(direct_options);
                within(wait, &direct_database, direct.acquire()).await?;
                Some(direct)
            }
            None => None,
        };
        let store = Self { pool, direct, pooled, timeouts, ordered_after: Arc::default() };
        store.migrate().await?;
        Ok(store)
    }

    /// A store on a read-only hot standby of the database `connect_routed` opened, for
    /// reads only (see `store::standby`): nothing is created or migrated there (the
    /// primary's migrations replicate), and nothing is asked of it now — a standby that
    /// is down at start leaves reads on the primary until it answers, rather than
    /// stopping the service. A connection waits at most `STANDBY_CONNECT` (or the connect
    /// timeout, if shorter): sqlx retries a refused connection until then, and a read
    /// that finds the standby down pays that wait before the primary answers it.
    pub fn connect_standby(url: &str, max_connections: u32, timeouts: DatabaseTimeouts) -> Result<Self, StoreError> {
        let options: PgConnectOptions = url
            .parse()
            .map_err(|e| StoreError::Unavailable(format!("--database-read-url is not a PostgreSQL URL: {e}")))?;
        info!(database = %describe(&options), "read-only standby for queries and the live feed's tail");
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(timeouts.connect.min(STANDBY_CONNECT))
            .after_connect(|conn, _| {
                Box::pin(async move {
                    // As on the primary (see `connect_routed`).
                    sqlx::query("SET plan_cache_mode = force_generic_plan").execute(conn).await.map(|_| ())
                })
            })
            .connect_lazy_with(options);
        Ok(Self { pool, direct: None, pooled: false, timeouts, ordered_after: Arc::default() })
    }

    /// The pool for what needs a session of its own (LISTEN, migrations): the direct one
    /// when configured, else the main pool.
    pub fn session_pool(&self) -> &PgPool {
        self.direct.as_ref().unwrap_or(&self.pool)
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The last position written before positions followed commit order (0: always).
    async fn ordered_after(&self) -> Result<i64, StoreError> {
        let read = async {
            let mut session = self.session().await?;
            let statement = sqlx::query("SELECT ordered_after FROM log_order");
            let ordered_after = sql::one(statement, session.run(), |row| row.read("ordered_after")).await?;
            session.commit().await?;
            Ok(ordered_after)
        };
        self.ordered_after.get_or_try_init(|| read).await.copied()
    }

    /// A read-only transaction whose statements all see one snapshot.
    async fn snapshot(&self) -> Result<Session, StoreError> {
        let mut tx = self.begin().await?;
        sql::execute(sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"), tx.run()).await?;
        Ok(tx)
    }

    pub async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR.run(self.session_pool()).await.map_err(|e| match e {
            sqlx::migrate::MigrateError::Execute(e) => map_sqlx(e),
            other => StoreError::Corrupt(format!("migrations: {other}")),
        })
    }
}

#[async_trait]
impl Backend for PgStore {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    fn postgres(&self) -> Option<&PgStore> {
        Some(self)
    }

    fn append_signals(&self) -> Option<AppendSignals> {
        Some(self.listen_for_appends())
    }

    /// The connection counts of the pool.
    fn pool_stats(&self) -> PoolStats {
        PoolStats::of(&self.pool)
    }

    fn query_timeout(&self) -> Option<Duration> {
        Some(self.timeouts.query)
    }

    /// A trivial query through the pool: a connection is checked (or opened) and answers.
    async fn ping(&self) -> Result<(), StoreError> {
        let mut session = self.session().await?;
        sql::execute(sqlx::query("SELECT 1"), session.run()).await?;
        session.commit().await
    }
}

/// PostgreSQL binds UUIDs and timestamps natively.
impl Dialect for Postgres {
    type Id = Uuid;
    type Time = DateTime<Utc>;

    fn id(id: Uuid) -> Uuid {
        id
    }

    fn time(time: DateTime<Utc>) -> DateTime<Utc> {
        time
    }
}

impl SqlErrors for PgRow {
    fn sql_error(error: sqlx::Error) -> StoreError {
        map_sqlx(error)
    }
}

/// PostgreSQL stores UUIDs, JSON and timestamps natively.
impl StoredRow for PgRow {
    fn uuid<'c>(&self, column: impl Into<Column<'c>>) -> Result<Uuid, StoreError> {
        let column: Column<'c> = column.into();
        self.read(column)
    }

    fn optional_uuid<'c>(&self, column: impl Into<Column<'c>>) -> Result<Option<Uuid>, StoreError> {
        let column: Column<'c> = column.into();
        self.read(column)
    }

    fn json<'c, T: DeserializeOwned>(&self, column: impl Into<Column<'c>>) -> Result<Result<T, String>, StoreError> {
        let column: Column<'c> = column.into();
        match self.optional_json(column)? {
            Ok(Some(value)) => Ok(Ok(value)),
            Ok(None) => {
                Err(map_sqlx(sqlx::Error::ColumnDecode { index: column.to_string(), source: "unexpected NULL".into() }))
            }
            Err(why) => Ok(Err(why)),
        }
    }

    /// Parsed straight from the bytes the server sent (jsonb's binary form is a version
    /// byte, 1, then the text), without a `serde_json::Value` in between.
    fn optional_json<'c, T: DeserializeOwned>(
        &self,
        column: impl Into<Column<'c>>,
    ) -> Result<Result<Option<T>, String>, StoreError> {
        let column: Column<'c> = column.into();
        let raw = self.try_get_raw(column).map_err(map_sqlx)?;
        if raw.is_null() {
            return Ok(Ok(None));
        }
        let binary_jsonb = raw.format() == PgValueFormat::Binary && raw.type_info().name() == "JSONB";
        let bytes = raw.as_bytes().map_err(|e| map_sqlx(sqlx::Error::Decode(e)))?;
        let text = match bytes {
            [1, text @ ..] if binary_jsonb => text,
            _ if binary_jsonb => return Ok(Err("jsonb of an unknown binary version".to_owned())),
            text => text,
        };
        Ok(serde_json::from_slice(text).map(Some).map_err(|e| e.to_string()))
    }

    fn time<'c>(&self, column: impl Into<Column<'c>>) -> Result<Result<DateTime<Utc>, String>, StoreError> {
        let column: Column<'c> = column.into();
        self.read(column).map(Ok)
    }

    fn optional_time<'c>(
        &self,
        column: impl Into<Column<'c>>,
    ) -> Result<Result<Option<DateTime<Utc>>, String>, StoreError> {
        let column: Column<'c> = column.into();
        self.read(column).map(Ok)
    }

    fn byte_len(&self, name: &str) -> usize {
        self.try_get_raw(name).ok().and_then(|value| value.as_bytes().ok().map(<[u8]>::len)).unwrap_or_default()
    }
}

/// One connection step at start, bounded by the connect timeout.
async fn within<T>(
    wait: Duration,
    database: &str,
    step: impl Future<Output = Result<T, sqlx::Error>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(wait, step).await {
        Ok(Err(sqlx::Error::PoolTimedOut)) | Err(_) => {
            Err(StoreError::Unavailable(format!("{database} did not answer within {} s", wait.as_secs_f64())))
        }
        Ok(result) => result.map_err(map_sqlx),
    }
}

/// Where a store connects, for logs and errors: `host:port/database` (or the socket's
/// path), never the credentials.
fn describe(options: &PgConnectOptions) -> String {
    let database = options.get_database().unwrap_or(options.get_username());
    match options.get_socket() {
        Some(socket) => format!("{}/{database}", socket.display()),
        None => format!("{}:{}/{database}", options.get_host(), options.get_port()),
    }
}
