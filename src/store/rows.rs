//! Decoding stored rows, written once for both databases: events, alignment views,
//! checkpoints, heads, command records, a verification's witnesses and a projection
//! cut's rows. The backends select the same column names (aliasing where their schemas
//! differ) and say, through `StoredRow`, how they store the few types they store
//! differently — PostgreSQL has native UUIDs, JSON and timestamps, SQLite keeps them as
//! text and microseconds.

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use sqlx::{ColumnIndex, Decode, Row, Type};
use uuid::Uuid;

use super::audit::{CommandWitness, HeadWitness, RawCheckpoint, TreeEvent, Witnesses};
use super::batch::{HeadRows, StoredCommand};
use super::cut::{CutRow, usable};
use super::{GlobalCursor, StoreError, StoredEvent};
use crate::domain::AlignmentView;

/// The stored columns of an event, in the order `decode_event` reads them.
pub const EVENT_COLUMNS: &str = "position, stream_id, stream_version, event_id, event_type, schema_version, payload, \
     actor, command_id, correlation_id, causation_id, recorded_at, prev_hash, hash";

/// How a backend reports a database error (see each backend's `map_sqlx`).
pub trait SqlErrors {
    fn sql_error(error: sqlx::Error) -> StoreError;
}

/// A column of a row: its name, or its place in the select list (which a row finds
/// without looking the name up).
#[derive(Clone, Copy, Debug)]
pub enum Column<'a> {
    Named(&'a str),
    At(usize),
}

impl<'a> From<&'a str> for Column<'a> {
    fn from(name: &'a str) -> Self {
        Column::Named(name)
    }
}

impl From<usize> for Column<'_> {
    fn from(index: usize) -> Self {
        Column::At(index)
    }
}

impl std::fmt::Display for Column<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Column::Named(name) => f.write_str(name),
            Column::At(index) => write!(f, "column {index}"),
        }
    }
}

impl<R: Row> ColumnIndex<R> for Column<'_>
where
    for<'n> &'n str: ColumnIndex<R>,
    usize: ColumnIndex<R>,
{
    fn index(&self, row: &R) -> Result<usize, sqlx::Error> {
        match *self {
            Column::Named(name) => name.index(row),
            Column::At(index) => index.index(row),
        }
    }
}

/// A column both databases store as the same type, read as `T`.
pub trait ColumnOf<T> {
    fn read<'c>(&self, column: impl Into<Column<'c>>) -> Result<T, StoreError>;
}

impl<R, T> ColumnOf<T> for R
where
    R: Row + SqlErrors,
    for<'c> Column<'c>: ColumnIndex<R>,
    T: for<'a> Decode<'a, R::Database> + Type<R::Database>,
{
    fn read<'c>(&self, column: impl Into<Column<'c>>) -> Result<T, StoreError> {
        self.try_get(column.into()).map_err(R::sql_error)
    }
}

/// A row of either database. The JSON and time readers answer `Ok(Err(why))` for a
/// stored value that does not decode, so that the caller can say whose value it is.
pub trait StoredRow:
    Row
    + ColumnOf<i64>
    + ColumnOf<i32>
    + ColumnOf<String>
    + ColumnOf<Vec<u8>>
    + ColumnOf<Option<i64>>
    + ColumnOf<Option<i32>>
    + ColumnOf<Option<String>>
    + ColumnOf<Option<Vec<u8>>>
{
    fn uuid<'c>(&self, column: impl Into<Column<'c>>) -> Result<Uuid, StoreError>;

    fn optional_uuid<'c>(&self, column: impl Into<Column<'c>>) -> Result<Option<Uuid>, StoreError>;

    fn json<'c, T: DeserializeOwned>(&self, column: impl Into<Column<'c>>) -> Result<Result<T, String>, StoreError>;

    fn optional_json<'c, T: DeserializeOwned>(
        &self,
        column: impl Into<Column<'c>>,
    ) -> Result<Result<Option<T>, String>, StoreError>;

    fn time<'c>(&self, column: impl Into<Column<'c>>) -> Result<Result<DateTime<Utc>, String>, StoreError>;

    fn optional_time<'c>(
        &self,
        column: impl Into<Column<'c>>,
    ) -> Result<Result<Option<DateTime<Utc>>, String>, StoreError>;

    /// How many bytes the column's stored value holds (0 for NULL or a column not there).
    fn byte_len(&self, name: &str) -> usize;
}

/// The names of `EVENT_COLUMNS`, in order.
const EVENT_COLUMN_NAMES: [&str; 14] = [
    "position",
    "stream_id",
    "stream_version",
    "event_id",
    "event_type",
    "schema_version",
    "payload",
    "actor",
    "command_id",
    "correlation_id",
    "causation_id",
    "recorded_at",
    "prev_hash",
    "hash",
];

/// Where a row's `EVENT_COLUMNS` start when it selects them together, first or after
/// one column (the commit-order reads put the cursor's `tx` first).
fn event_columns_at<R: StoredRow>(row: &R) -> Option<usize> {
    use sqlx::Column as _;
    let named = |at: usize, name: &str| row.columns().get(at).is_some_and(|column| column.name() == name);
    let last = EVENT_COLUMN_NAMES.len() - 1;
    (0..2).find(|&first| named(first, EVENT_COLUMN_NAMES[0]) && named(first + last, EVENT_COLUMN_NAMES[last]))
}

/// An event row (`EVENT_COLUMNS`, first or after one column, or any columns so named).
/// Read by place when the columns are together: a row finds a column by name through
/// a hash lookup, which was a tenth of reading the log.
pub fn decode_event<R: StoredRow>(row: &R) -> Result<StoredEvent, StoreError> {
    match event_columns_at(row) {
        Some(first) => decode_event_columns(row, std::array::from_fn(|i| Column::At(first + i))),
        None => decode_event_columns(row, EVENT_COLUMN_NAMES.map(Column::Named)),
    }
}

fn decode_event_columns<R: StoredRow>(row: &R, columns: [Column<'_>; 14]) -> Result<StoredEvent, StoreError> {
    let [
        position,
        stream_id,
        stream_version,
        event_id,
        event_type,
        schema_version,
        payload,
        actor,
        command_id,
        correlation_id,
        causation_id,
        recorded_at,
        prev_hash,
        hash,
    ] = columns;
    let position: i64 = row.read(position)?;
    let corrupt = |what: String| StoreError::Corrupt(format!("event at position {position}: {what}"));
    Ok(StoredEvent {
        position,
        stream_id: row.uuid(stream_id)?,
        stream_version: row.read(stream_version)?,
        event_id: row.uuid(event_id)?,
        event_type: row.read(event_type)?,
        schema_version: row.read(schema_version)?,
        payload: row.json(payload)?.map_err(|e| corrupt(format!("payload: {e}")))?,
        actor: row.read(actor)?,
        command_id: row.read(command_id)?,
        correlation_id: row.read(correlation_id)?,
        causation_id: row.read(causation_id)?,
        recorded_at: row.time(recorded_at)?.map_err(corrupt)?,
        prev_hash: row.read(prev_hash)?,
        hash: row.read(hash)?,
    })
}

/// The events of a query's rows.
pub fn decode_events<R: StoredRow>(rows: &[R]) -> Result<Vec<StoredEvent>, StoreError> {
    rows.iter().map(decode_event).collect()
}

/// An alignment row's `view`.
pub fn decode_view<R: StoredRow>(row: &R) -> Result<AlignmentView, StoreError> {
    row.json("view")?.map_err(|e| StoreError::Corrupt(format!("alignment view: {e}")))
}

/// A checkpoint row: id, created_at, tree, streams, events, root, heads, frontier,
/// resume_tx, resume_position, note.
pub fn decode_checkpoint<R: StoredRow>(row: &R) -> Result<RawCheckpoint, StoreError> {
    let id: i64 = row.read("id")?;
    let corrupt = |what: String| StoreError::Corrupt(format!("checkpoint {id}: {what}"));
    Ok(RawCheckpoint {
        id,
        created_at: row.time("created_at")?.map_err(corrupt)?,
        tree: row.read("tree")?,
        streams: row.read("streams")?,
        events: row.read("events")?,
        root: row.read("root")?,
        heads: row.json("heads")?.map_err(|e| corrupt(format!("heads: {e}")))?,
        frontier: row.optional_json("frontier")?.map_err(|e| corrupt(format!("frontier: {e}")))?,
        note: row.read("note")?,
        resume_tx: row.read("resume_tx")?,
        resume_position: row.read("resume_position")?,
    })
}

/// What the log tree reads of an event: position, stream_id, stream_version, hash.
pub fn decode_tree_event<R: StoredRow>(row: &R) -> Result<TreeEvent, StoreError> {
    Ok(TreeEvent {
        stream_id: row.uuid("stream_id")?,
        stream_version: row.read("stream_version")?,
        position: row.read("position")?,
        hash: row.read("hash")?,
    })
}

/// A row of a projection cut: stream_id, head_version, last_position and the alignment
/// row's version, projection_version and view, with the row's `awaiting` as the backend
/// reads it and the cursor of the stream's last event, from its position.
pub fn decode_cut_row<R: StoredRow>(
    row: &R,
    awaiting: Option<Vec<String>>,
    cursor: impl FnOnce(i64) -> GlobalCursor,
) -> Result<CutRow, StoreError> {
    let version: i64 = row.read("head_version")?;
    let position: i64 = row.read("last_position")?;
    let view = usable(
        version,
        row.read("version")?,
        row.read("projection_version")?,
        row.optional_json("view")?.transpose(),
        awaiting,
    );
    Ok(CutRow {
        initiative_id: row.uuid("stream_id")?,
        version,
        cursor: cursor(position),
        position: u64::try_from(position).unwrap_or_default(),
        view,
    })
}

/// A head row (head_id, key, version, head_hash, snapshot), without its tail yet.
pub fn decode_head<R: StoredRow>(row: &R) -> Result<HeadRows, StoreError> {
    Ok(HeadRows {
        stream_id: row.uuid("head_id")?,
        key: row.read("key")?,
        version: row.read("version")?,
        hash: row.read("head_hash")?,
        snapshot: row.read("snapshot")?,
        tail: Vec::new(),
    })
}

/// A command record: command_id, stream_id, fingerprint, stream_version,
/// global_position, created_id.
pub fn decode_command<R: StoredRow>(row: &R) -> Result<(String, StoredCommand), StoreError> {
    let command = StoredCommand {
        stream_id: row.uuid("stream_id")?,
        fingerprint: row.read("fingerprint")?,
        stream_version: row.read("stream_version")?,
        global_position: row.read("global_position")?,
        created_id: row.optional_uuid("created_id")?,
    };
    Ok((row.read("command_id")?, command))
}

/// A verification page's witnesses, from the rows of its three witness reads: heads
/// (stream_id, version, head_hash, last_position, state_version), command records
/// (command_id, stream_id, stream_version, global_position) and projection versions
/// (initiative_id, version).
pub fn decode_witnesses<R: StoredRow>(heads: &[R], commands: &[R], projections: &[R]) -> Result<Witnesses, StoreError> {
    let head = |row: &R| {
        Ok(HeadWitness {
            stream_id: row.uuid("stream_id")?,
            version: row.read("version")?,
            hash: row.read("head_hash")?,
            last_position: row.read("last_position")?,
            state_version: row.read("state_version")?,
        })
    };
    let command = |row: &R| {
        Ok(CommandWitness {
            command_id: row.read("command_id")?,
            stream_id: row.uuid("stream_id")?,
            stream_version: row.read("stream_version")?,
            global_position: row.read("global_position")?,
        })
    };
    let projection = |row: &R| Ok((row.uuid("initiative_id")?, row.read("version")?));
    Ok(Witnesses {
        heads: heads.iter().map(head).collect::<Result<_, StoreError>>()?,
        commands: commands.iter().map(command).collect::<Result<_, StoreError>>()?,
        projections: projections.iter().map(projection).collect::<Result<_, StoreError>>()?,
        past: Vec::new(),
    })
}

/// The stream ids a verification page reads witnesses for, as `(operator, bound)`
/// conditions on a stream id column: exactly `only`, or after the key the page resumed
/// from up to its last stream (to the end for the last page). Only the bounds there
/// are, so that each witness read is an index range scan.
pub fn witness_bounds(
    only: Option<Uuid>,
    after: Option<Uuid>,
    more: bool,
    events: &[StoredEvent],
) -> Vec<(&'static str, Uuid)> {
    let (from, to) = match only {
        Some(stream) => (None, Some(stream)),
        None => (after, if more { events.last().map(|e| e.stream_id) } else { None }),
    };
    [("=", only), (">", from), ("<=", to)]
        .into_iter()
        .filter_map(|(op, bound)| bound.map(|bound| (op, bound)))
        .collect()
}

/// `witness_bounds` as an SQL condition on `column`, the n-th bound (from 1) written by
/// `parameter(n)`; `always` where there is no bound.
pub fn witness_condition(
    bounds: &[(&str, Uuid)],
    column: &str,
    parameter: fn(usize) -> String,
    always: &str,
) -> String {
    let conditions: Vec<String> =
        bounds.iter().enumerate().map(|(i, (op, _))| format!("{column} {op} {}", parameter(i + 1))).collect();
    if conditions.is_empty() { always.to_owned() } else { conditions.join(" AND ") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_event_column_names_are_the_selected_columns_in_order() {
        assert_eq!(EVENT_COLUMN_NAMES.join(", "), EVENT_COLUMNS);
    }
}
