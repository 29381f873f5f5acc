//! The write half each backend offers the application layer (`app`): load stream heads,
//! find earlier uses of command ids, and append a batch — the events of several
//! commands on several streams, their command records, the moved heads and the
//! alignment rows — atomically, checking that every head it moves (and every head a
//! refusal in the batch was decided against) is still where the writer saw it. What to
//! write is decided above, in `app`; here is only what the database must hold.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::StoreError;
use crate::domain::Initiative;

/// A stream's head as stored: its version and last hash, and the state folded to it.
#[derive(Clone, Debug)]
pub struct LoadedHead {
    pub stream_id: Uuid,
    pub key: String,
    pub version: u64,
    pub hash: Vec<u8>,
    pub state: Initiative,
}

/// One event to append, hashed and chained (its position comes from the store).
#[derive(Clone, Debug)]
pub struct NewEvent {
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

/// The idempotency record of one command of the batch; its global position is its last
/// event's.
#[derive(Clone, Debug)]
pub struct NewCommand {
    pub command_id: String,
    pub stream_id: Uuid,
    pub fingerprint: Vec<u8>,
    pub stream_version: i64,
    pub created_id: Option<Uuid>,
    pub recorded_at: DateTime<Utc>,
}

/// A stream head the batch moves, with the stream's new alignment row.
#[derive(Clone, Debug)]
pub struct HeadMove {
    pub stream_id: Uuid,
    pub key: String,
    /// The version the writer saw (`None`: the stream is new).
    pub from: Option<i64>,
    pub version: i64,
    pub hash: Vec<u8>,
    /// The folded state at `version` as JSON text, stored beside the head.
    pub state: String,
    pub at: DateTime<Utc>,
    pub row: AlignmentRow,
}

/// The alignment projection's row: the filter columns and the whole view.
#[derive(Clone, Debug)]
pub struct AlignmentRow {
    pub title: String,
    pub owner: String,
    pub stage: String,
    pub status: String,
    pub archived: bool,
    pub outstanding: Vec<String>,
    pub awaiting: Vec<String>,
    pub score: f64,
    pub view: serde_json::Value,
}

/// Everything one append writes, in one transaction.
#[derive(Clone, Debug, Default)]
pub struct Batch {
    /// In append order: each stream's versions ascending.
    pub events: Vec<NewEvent>,
    pub commands: Vec<NewCommand>,
    pub heads: Vec<HeadMove>,
    /// Heads the batch does not move but decided refusals against: (stream, version).
    pub unchanged: Vec<(Uuid, i64)>,
}

/// Why a batch was not appended. Nothing of it is written in any case.
#[derive(Debug)]
pub enum AppendRefused {
    /// A head moved since the writer saw it (another process wrote): reload and replan.
    StaleHead,
    /// These heads are locked by someone else (a rebuild, an operator): retry their
    /// commands later, the others now.
    Locked(Vec<Uuid>),
    /// A command id of the batch is recorded already (a retry of a command that
    /// committed): look the ids up and replay.
    CommandIdTaken,
    /// A new initiative's key is taken.
    KeyTaken,
    Failed(StoreError),
}

impl From<StoreError> for AppendRefused {
    fn from(error: StoreError) -> Self {
        AppendRefused::Failed(error)
    }
}

/// The global position each command of an appended batch ended at, by command id.
pub type Appended = Vec<(String, i64)>;
