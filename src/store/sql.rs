//! Running the backends' statements, written once for both databases. A backend hands
//! over its SQL (and, where it binds the values itself, the built query); these run it,
//! report a failure the backend's way (`SqlErrors`) and decode the rows (`rows`).
//! `Dialect` is the little that differs in binding: how a UUID and a time are stored.
//!
//! The bounds below only restate what sqlx provides for both databases; Rust does not
//! carry them over from a trait, so each generic function names the ones it uses.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::query::Query;
use sqlx::{Database, Encode, Executor, IntoArguments, Type};
use uuid::Uuid;

use super::audit::{self, Lanes, Until, VerifyKey, VerifyPage};
use super::replay::{FoldLane, StreamFold};
use super::rows::{
    ColumnOf, EVENT_COLUMNS, SqlErrors, StoredRow, decode_event, decode_witnesses, witness_bounds, witness_condition,
};
use super::snapshots::{DueStream, PastSnapshot, SNAPSHOT_FORMAT, decode_snapshot};
use super::{ListFilter, StoreError, StoredEvent};
use crate::domain::DomainError;

/// A query of database `DB`, with its arguments.
pub type SqlQuery<'q, DB> = Query<'q, DB, <DB as Database>::Arguments<'q>>;

/// What a backend's database stores differently, for binding (see `rows::StoredRow`
/// for reading).
pub trait Dialect: Database<Row: StoredRow + SqlErrors> {
    /// A UUID as the database stores it: native (PostgreSQL) or text (SQLite).
    type Id: for<'q> Encode<'q, Self> + Type<Self> + Send + 'static;
    /// A time as the database stores it: native (PostgreSQL) or microseconds (SQLite).
    type Time: for<'q> Encode<'q, Self> + Type<Self> + Send + 'static;

    fn id(id: Uuid) -> Self::Id;

    fn time(time: DateTime<Utc>) -> Self::Time;
}

fn sql_error<DB: Database<Row: SqlErrors>>(error: sqlx::Error) -> StoreError {
    <DB::Row as SqlErrors>::sql_error(error)
}

/// Runs `query` for its rows.
pub async fn rows<'q, 'c, DB, E>(query: SqlQuery<'q, DB>, executor: E) -> Result<Vec<DB::Row>, StoreError>
where
    DB: Database<Row: SqlErrors>,
    <DB as Database>::Arguments<'q>: IntoArguments<'q, DB>,
    E: Executor<'c, Database = DB>,
{
    query.fetch_all(executor).await.map_err(sql_error::<DB>)
}

/// Runs `query` and decodes every row with `decode` as it arrives: the rows are never
/// held all at once, and the server goes on sending while the first are decoded.
pub async fn all<'q, 'c, DB, E, T>(
    query: SqlQuery<'q, DB>,
    executor: E,
    mut decode: impl FnMut(&DB::Row) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError>
where
    DB: Database<Row: SqlErrors>,
    <DB as Database>::Arguments<'q>: IntoArguments<'q, DB>,
    E: Executor<'c, Database = DB>,
    'c: 'q,
{
    use futures_util::TryStreamExt;
    let mut rows = query.fetch(executor);
    let mut decoded = Vec::new();
    while let Some(row) = rows.try_next().await.map_err(sql_error::<DB>)? {
        decoded.push(decode(&row)?);
    }
    Ok(decoded)
}

/// Runs `query`, which answers one row, and decodes it with `decode`.
pub async fn one<'q, 'c, DB, E, T>(
    query: SqlQuery<'q, DB>,
    executor: E,
    decode: impl Fn(&DB::Row) -> Result<T, StoreError>,
) -> Result<T, StoreError>
where
    DB: Database<Row: SqlErrors>,
    <DB as Database>::Arguments<'q>: IntoArguments<'q, DB>,
    E: Executor<'c, Database = DB>,
{
    decode(&query.fetch_one(executor).await.map_err(sql_error::<DB>)?)
}

/// Runs `query` and decodes its row, if there is one, with `decode`.
pub async fn optional<'q, 'c, DB, E, T>(
    query: SqlQuery<'q, DB>,
    executor: E,
    decode: impl Fn(&DB::Row) -> Result<T, StoreError>,
) -> Result<Option<T>, StoreError>
where
    DB: Database<Row: SqlErrors>,
    <DB as Database>::Arguments<'q>: IntoArguments<'q, DB>,
    E: Executor<'c, Database = DB>,
{
    let row = query.fetch_optional(executor).await.map_err(sql_error::<DB>)?;
    row.as_ref().map(decode).transpose()
}

/// Runs a statement for its effect.
pub async fn execute<'q, 'c, DB, E>(query: SqlQuery<'q, DB>, executor: E) -> Result<(), StoreError>
where
    DB: Database<Row: SqlErrors>,
    <DB as Database>::Arguments<'q>: IntoArguments<'q, DB>,
    E: Executor<'c, Database = DB>,
{
    query.execute(executor).await.map(|_| ()).map_err(sql_error::<DB>)
}

/// The highest position in the log (0 for an empty log).
pub async fn log_end<'c, DB, E>(executor: E) -> Result<i64, StoreError>
where
    DB: Dialect,
    for<'q> <DB as Database>::Arguments<'q>: IntoArguments<'q, DB>,
    E: Executor<'c, Database = DB>,
{
    one(sqlx::query("SELECT coalesce(max(position), 0) AS head FROM events"), executor, |row| row.read("head")).await
}

/// The highest global position appended and committed (0 for an empty log).
pub async fn head_position<'c, DB, E>(executor: E) -> Result<u64, StoreError>
where
    DB: Dialect,
    for<'q> <DB as Database>::Arguments<'q>: IntoArguments<'q, DB>,
    E: Executor<'c, Database = DB>,
{
    Ok(u64::try_from(log_end(executor).await?).unwrap_or_default())
}

/// Every stream the log holds, by id.
pub async fn stream_ids<'c, DB, E>(executor: E) -> Result<Vec<Uuid>, StoreError>
where
    DB: Dialect,
    for<'q> <DB as Database>::Arguments<'q>: IntoArguments<'q, DB>,
    E: Executor<'c, Database = DB>,
{
    all(sqlx::query("SELECT DISTINCT stream_id FROM events ORDER BY stream_id"), executor, |row| row.uuid("stream_id"))
        .await
}

/// Every stream folded from the log read once in position order on the lanes
/// (`replay`), each lane's past snapshots (one every `every` versions) sent to `writer`
/// as they are derived.
pub async fn fold_log<'c, DB, E>(
    executor: E,
    every: i64,
    writer: tokio::sync::mpsc::Sender<Vec<PastSnapshot>>,
) -> Result<HashMap<Uuid, StreamFold>, StoreError>
where
    DB: Dialect<Row: Send + 'static>,
    for<'q> <DB as Database>::Arguments<'q>: IntoArguments<'q, DB>,
    E: Executor<'c, Database = DB> + 'c,
{
    let lanes = (0..Lanes::<DB::Row, FoldLane>::count()).map(|_| FoldLane::new(every, writer.clone())).collect();
    drop(writer);
    let mut lanes = Lanes::<DB::Row, FoldLane>::start(lanes);
    let statement = format!("SELECT {EVENT_COLUMNS} FROM events ORDER BY position");
    let mut rows = sqlx::query(&statement).fetch(executor);
    let mut pager = audit::Pager::default();
    while let Some(row) = tokio_stream::StreamExt::next(&mut rows).await {
        if let Some(page) = pager.push(row.map_err(sql_error::<DB>)?) {
            lanes.feed(Vec::new(), page).await?;
        }
    }
    drop(rows);
    lanes.feed(Vec::new(), pager.take()).await?;
    let mut folds = HashMap::new();
    for lane in lanes.finish().await? {
        folds.extend(lane.finish());
    }
    Ok(folds)
}

/// Refuses an import into a store that holds events.
pub async fn ensure_empty<'c, DB, E>(executor: E) -> Result<(), StoreError>
where
    DB: Dialect,
    for<'q> <DB as Database>::Arguments<'q>: IntoArguments<'q, DB>,
    E: Executor<'c, Database = DB>,
{
    let count: i64 = one(sqlx::query("SELECT count(*) AS n FROM events"), executor, |row| row.read("n")).await?;
    match count {
        0 => Ok(()),
        count => Err(DomainError::precondition(format!("the store is not empty: {count} events")).into()),
    }
}

/// Binds a `list` query's parameters in order: status, pending function, stage, owner,
/// the text pattern, whether archived views count, the key to list after, the limit.
pub fn bind_list<'q, DB: Database>(
    query: SqlQuery<'q, DB>,
    filter: &'q ListFilter,
    after_key: Option<&'q str>,
    limit: i64,
) -> SqlQuery<'q, DB>
where
    Option<&'q str>: Encode<'q, DB> + Type<DB>,
    Option<String>: Encode<'q, DB> + Type<DB>,
    bool: Encode<'q, DB> + Type<DB>,
    i64: Encode<'q, DB> + Type<DB>,
{
    query
        .bind(filter.status.as_deref())
        .bind(filter.pending_function.as_deref())
        .bind(filter.stage.as_deref())
        .bind(filter.owner.as_deref())
        .bind(filter.text_pattern())
        .bind(filter.include_archived)
        .bind(after_key)
        .bind(limit)
}

/// One stream's events up to `until`: `by_version` binds the stream and the last
/// version, `by_time` the stream and the time.
pub async fn stream_until<'c, DB, E>(
    executor: E,
    by_version: &str,
    by_time: &str,
    stream_id: Uuid,
    until: Until,
) -> Result<Vec<StoredEvent>, StoreError>
where
    DB: Dialect,
    for<'q> <DB as Database>::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    E: Executor<'c, Database = DB>,
{
    let query = match until {
        Until::Version(version) => {
            sqlx::query(by_version).bind(DB::id(stream_id)).bind(i64::try_from(version).unwrap_or(i64::MAX))
        }
        Until::Time(time) => sqlx::query(by_time).bind(DB::id(stream_id)).bind(DB::time(time)),
    };
    all(query, executor, decode_event).await
}

/// A connection that lends an executor for one statement at a time, for the functions
/// here that run several statements on one connection: a backend's own connection, or
/// the PostgreSQL store's `Session`, which behind a pooler sends every statement unnamed.
pub trait Statements<DB: Database>: Send {
    fn run(&mut self) -> impl Executor<'_, Database = DB>;
}

/// A backend's statements for one verification page, each with its own parameters.
pub struct VerifySql {
    /// Every event of one stream (the stream).
    pub stream: String,
    /// The first page of whole-log events (the page's size).
    pub first_page: String,
    /// A later page (the page's size, the stream id it resumes after).
    pub next_page: String,
    /// The rest of a stream (the stream, the version it follows).
    pub rest: String,
    /// The heads' witness columns (stream_id, version, head_hash, last_position,
    /// state_version) from `streams`, without a condition.
    pub heads: &'static str,
    /// How the n-th parameter (from 1) is written.
    pub parameter: fn(usize) -> String,
    /// A condition that always holds.
    pub always: &'static str,
}

/// One page of a verification, inside the caller's one-snapshot transaction: whole
/// streams after `after` in (stream id, version) order, and their witnesses (see
/// `audit::VerifyPage`).
pub async fn verify_page<DB, S>(
    conn: &mut S,
    sql: &VerifySql,
    only: Option<Uuid>,
    after: VerifyKey,
) -> Result<VerifyPage, StoreError>
where
    DB: Dialect,
    for<'q> <DB as Database>::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    S: Statements<DB>,
{
    // Each page is a plain range (no "IS NULL OR"), so that it is an index range scan.
    let page = match (only, after) {
        (Some(stream), _) => sqlx::query(&sql.stream).bind(DB::id(stream)),
        (None, None) => sqlx::query(&sql.first_page).bind(audit::VERIFY_PAGE),
        (None, Some(after)) => sqlx::query(&sql.next_page).bind(audit::VERIFY_PAGE).bind(DB::id(after)),
    };
    let mut events = all(page, conn.run(), decode_event).await?;
    let more = only.is_none() && events.len() as i64 >= audit::VERIFY_PAGE;
    if more && let Some((stream, version)) = events.last().map(|e| (e.stream_id, e.stream_version)) {
        // The rest of the page's last stream, so that the page ends with a whole stream.
        let rest = sqlx::query(&sql.rest).bind(DB::id(stream)).bind(version);
        events.extend(all(rest, conn.run(), decode_event).await?);
    }
    let bounds = witness_bounds(only, after, more, &events);
    let within = |column: &str| witness_condition(&bounds, column, sql.parameter, sql.always);
    let heads_sql = format!("{} WHERE {}", sql.heads, within("stream_id"));
    let commands_sql = format!(
        "SELECT command_id, stream_id, stream_version, global_position FROM commands WHERE {}",
        within("stream_id")
    );
    let projections_sql = format!("SELECT initiative_id, version FROM alignment WHERE {}", within("initiative_id"));
    let (mut heads, mut commands, mut projections) =
        (sqlx::query(&heads_sql), sqlx::query(&commands_sql), sqlx::query(&projections_sql));
    for (_, bound) in &bounds {
        heads = heads.bind(DB::id(*bound));
        commands = commands.bind(DB::id(*bound));
        projections = projections.bind(DB::id(*bound));
    }
    let heads = rows(heads, conn.run()).await?;
    let commands = rows(commands, conn.run()).await?;
    let projections = rows(projections, conn.run()).await?;
    let witnesses = decode_witnesses(&heads, &commands, &projections)?;
    Ok(VerifyPage { events, witnesses, more })
}

/// The statements of the past snapshots' reads (see `store::snapshots`), each with its
/// parameters in the order given.
pub struct SnapshotSql {
    /// The latest snapshot of a format at or below a version (stream, format, version).
    pub before_version: String,
    /// The latest snapshot of a format folded up to a time (stream, format, time).
    pub before_time: String,
    /// A stream's events after a version up to a version (stream, after, version).
    pub after_to_version: String,
    /// A stream's events after a version up to a time (stream, after, time).
    pub after_to_time: String,
    /// Streams due a snapshot (format, spacing, the stream id to list after, limit).
    pub due: &'static str,
    /// Every snapshot of the streams in a list (the list, as `stream_list` binds it).
    pub of_streams: String,
}

/// The latest snapshot of the current format an as-of `until` may start from.
pub async fn snapshot_before<'c, DB, E>(
    executor: E,
    statements: &SnapshotSql,
    stream_id: Uuid,
    until: Until,
) -> Result<Option<PastSnapshot>, StoreError>
where
    DB: Dialect,
    for<'q> <DB as Database>::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> i32: Encode<'q, DB> + Type<DB>,
    E: Executor<'c, Database = DB>,
{
    let query = match until {
        Until::Version(version) => sqlx::query(&statements.before_version)
            .bind(DB::id(stream_id))
            .bind(SNAPSHOT_FORMAT)
            .bind(i64::try_from(version).unwrap_or(i64::MAX)),
        Until::Time(time) => {
            sqlx::query(&statements.before_time).bind(DB::id(stream_id)).bind(SNAPSHOT_FORMAT).bind(DB::time(time))
        }
    };
    optional(query, executor, decode_snapshot).await
}

/// One stream's events after version `after` up to `until`.
pub async fn stream_after<'c, DB, E>(
    executor: E,
    statements: &SnapshotSql,
    stream_id: Uuid,
    after: i64,
    until: Until,
) -> Result<Vec<StoredEvent>, StoreError>
where
    DB: Dialect,
    for<'q> <DB as Database>::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    E: Executor<'c, Database = DB>,
{
    let query = match until {
        Until::Version(version) => sqlx::query(&statements.after_to_version)
            .bind(DB::id(stream_id))
            .bind(after)
            .bind(i64::try_from(version).unwrap_or(i64::MAX)),
        Until::Time(time) => {
            sqlx::query(&statements.after_to_time).bind(DB::id(stream_id)).bind(after).bind(DB::time(time))
        }
    };
    all(query, executor, decode_event).await
}

/// At most `limit` streams after `after` due a snapshot at spacing `every`.
pub async fn snapshots_due<'c, DB, E>(
    executor: E,
    statements: &SnapshotSql,
    every: i64,
    after: Uuid,
    limit: i64,
) -> Result<Vec<DueStream>, StoreError>
where
    DB: Dialect,
    for<'q> <DB as Database>::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> i32: Encode<'q, DB> + Type<DB>,
    E: Executor<'c, Database = DB>,
{
    let query = sqlx::query(statements.due).bind(SNAPSHOT_FORMAT).bind(every).bind(DB::id(after)).bind(limit);
    all(query, executor, |row| {
        Ok(DueStream {
            stream_id: row.uuid("stream_id")?,
            latest: row.read("latest")?,
            count: row.read("count")?,
            head: row.read("version")?,
        })
    })
    .await
}
