//! The write half each backend offers the application layer (`app`): load stream heads,
//! find earlier uses of command ids, and append a batch — the events of several
//! commands on several streams, their command records, the moved heads and the
//! alignment rows — atomically, checking that every head it moves (and every head a
//! refusal in the batch was decided against) is still where the writer saw it. What to
//! write is decided above, in `app`; here is only what the database must hold.

use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, Utc};
use tracing::warn;
use uuid::Uuid;

use super::fold::{Snapshot, decode_snapshot, fold_onto};
use super::{GlobalCursor, StoreError, StoredEvent};
use crate::domain::Initiative;

/// A stream's head as stored: its version and last hash, and the state folded to it.
#[derive(Clone, Debug)]
pub struct LoadedHead {
    pub stream_id: Uuid,
    pub key: String,
    pub version: u64,
    pub hash: Vec<u8>,
    pub state: Initiative,
    /// The version of the stored snapshot the state was folded from (0: folded from the
    /// first event).
    pub snapshot_version: u64,
    /// Whether the stored snapshot is of this code's version and decodes; if not, the
    /// next write stores one that is.
    pub snapshot_current: bool,
    /// The snapshot's size as JSON: what the state roughly costs in memory.
    pub snapshot_bytes: usize,
}

/// A head as a backend reads it: the head row, its snapshot (the folded state at some
/// version up to the head) and the events after the snapshot up to the head.
#[derive(Debug)]
pub struct HeadRows {
    pub stream_id: Uuid,
    pub key: String,
    pub version: i64,
    pub hash: Vec<u8>,
    /// The snapshot as JSON text.
    pub snapshot: Option<String>,
    pub tail: Vec<StoredEvent>,
}

/// What folding a head's rows gives.
#[derive(Debug)]
pub enum HeadFold {
    Folded(Box<LoadedHead>),
    /// The snapshot cannot be used and the tail does not start at the stream's first
    /// event: read the whole stream into `tail` and fold again.
    NeedsWholeStream(HeadRows),
}

/// Whether this process has warned about a snapshot it could not use (once: a rolling
/// deploy meets many).
static UNUSABLE_SNAPSHOT_WARNED: AtomicBool = AtomicBool::new(false);

impl HeadRows {
    /// The snapshot with the tail folded onto it. A snapshot of another version, or one
    /// that does not decode, is derived data gone stale, not corruption: the stream is
    /// folded from its first event instead (and the next write stores a current one).
    /// A tail that does not lead from the snapshot to the head is corruption.
    pub fn fold(self) -> Result<HeadFold, StoreError> {
        let stream_id = self.stream_id;
        let corrupt = |what: String| StoreError::Corrupt(format!("stream {stream_id}: {what}"));
        let snapshot = match self.snapshot.as_deref().map(decode_snapshot) {
            Some(Snapshot::Current(state)) => Ok(*state),
            Some(Snapshot::Unusable(why)) => Err(why),
            None => Err("the head has no state snapshot".to_owned()),
        };
        let (state, snapshot_version, snapshot_current) = match snapshot {
            Ok(state) => {
                let version = state.version;
                (Some(state), version, true)
            }
            Err(why) => {
                if self.tail.first().map(|event| event.stream_version) != Some(1) {
                    return Ok(HeadFold::NeedsWholeStream(self));
                }
                if !UNUSABLE_SNAPSHOT_WARNED.swap(true, Ordering::Relaxed) {
                    warn!(%stream_id, reason = %why, "folding a stream from its log: its snapshot cannot be used \
                           (warned once per process)");
                }
                (None, 0, false)
            }
        };
        for (n, event) in self.tail.iter().enumerate() {
            if u64::try_from(event.stream_version).ok() != Some(snapshot_version + 1 + n as u64) {
                return Err(corrupt(format!(
                    "version {} follows the snapshot at {snapshot_version}",
                    event.stream_version
                )));
            }
        }
        let state = fold_onto(stream_id, state, &self.tail)?.ok_or_else(|| corrupt("the head has no state".into()))?;
        let version = u64::try_from(self.version).map_err(|_| corrupt("negative version".into()))?;
        if state.version != version {
            return Err(corrupt(format!("the state folds to version {}, the head is at {version}", state.version)));
        }
        let snapshot_bytes = match snapshot_current {
            true => self.snapshot.as_deref().map_or(0, str::len),
            // Roughly: what the events folded add (no encoding on this path).
            false => self.tail.len() * 512,
        };
        Ok(HeadFold::Folded(Box::new(LoadedHead {
            stream_id,
            key: self.key,
            version,
            hash: self.hash,
            state,
            snapshot_version,
            snapshot_current,
            snapshot_bytes,
        })))
    }
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
    /// The folded state at `version` as JSON text, to store as the stream's snapshot;
    /// `None` keeps the snapshot it has (required for a new stream).
    pub state: Option<String>,
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
    /// In append order: each stream's versions ascending. Their positions are the
    /// store's to assign (0 until then).
    pub events: Vec<StoredEvent>,
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

/// What an append assigned.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Appended {
    /// The global position each command of the batch ended at, by command id.
    pub commands: Vec<(String, i64)>,
    /// Where each event of the batch stands in the global log, in the batch's order.
    pub cursors: Vec<GlobalCursor>,
    /// The highest position in the log before the batch's first event, read under the
    /// commit-order lock: the batch follows that event directly in commit order, so a
    /// reader that has applied the log up to it may apply the batch without reading it
    /// back. `None` when the batch appended no events.
    pub after: Option<i64>,
}

/// The stored result of a command id seen before, as a backend found it (the
/// application replays it: `CommandEnvelope::replay`).
pub struct StoredCommand {
    pub stream_id: Uuid,
    pub fingerprint: Vec<u8>,
    pub stream_version: i64,
    pub global_position: i64,
    pub created_id: Option<Uuid>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::values::{InitiativeId, InitiativeKey, Principal};
    use crate::domain::{Authority, Command, Event, Initiative, Recorded, decide_as, evolve};
    use crate::store::fold::encode_snapshot;

    /// A stream of `n` events (a creation and assignments) as stored, with its states.
    fn stream(n: u64) -> (Vec<StoredEvent>, Vec<Initiative>) {
        let owner = Principal::parse("actor", "olivia@example.com").expect("principal");
        let id = InitiativeId::new_v7();
        let mut state: Option<Initiative> = None;
        let (mut events, mut states) = (Vec::new(), Vec::new());
        for version in 1..=n {
            let command = match version {
                1 => Command::CreateInitiative {
                    id,
                    key: InitiativeKey::parse("key", "FOLD-1").expect("key"),
                    title: "Folding".into(),
                    summary: String::new(),
                    owner: None,
                    stage: None,
                    required_functions: None,
                },
                v => Command::AssignStakeholder {
                    principal: Principal::parse("principal", &format!("p{v}@example.com")).expect("principal"),
                    function: crate::domain::values::Function::parse("function", "design").expect("function"),
                    role: crate::domain::values::Role::Informed,
                },
            };
            let decided: Vec<Event> = decide_as(state.as_ref(), &command, &owner, Authority::Member).expect("decide");
            for event in decided {
                let recorded_at = chrono::Utc::now();
                events.push(StoredEvent {
                    position: version as i64,
                    stream_id: id.0,
                    stream_version: version as i64,
                    event_id: Uuid::now_v7(),
                    event_type: event.event_type().to_owned(),
                    schema_version: crate::domain::event::SCHEMA_VERSION,
                    payload: event.payload(),
                    actor: owner.as_str().to_owned(),
                    command_id: format!("c{version}"),
                    correlation_id: String::new(),
                    causation_id: String::new(),
                    recorded_at,
                    prev_hash: vec![0; 32],
                    hash: vec![0; 32],
                });
                let recorded = Recorded { version, actor: owner.clone(), recorded_at, event };
                state = Some(evolve(state, &recorded).expect("evolve"));
            }
            states.push(state.clone().expect("state"));
        }
        (events, states)
    }

    fn rows(events: &[StoredEvent], states: &[Initiative], snapshot_at: usize, head: i64) -> HeadRows {
        HeadRows {
            stream_id: events[0].stream_id,
            key: "FOLD-1".into(),
            version: head,
            hash: vec![1; 32],
            snapshot: Some(encode_snapshot(&states[snapshot_at - 1]).expect("encode").to_string()),
            tail: events[snapshot_at..head as usize].to_vec(),
        }
    }

    fn folded(rows: HeadRows) -> LoadedHead {
        match rows.fold().expect("fold") {
            HeadFold::Folded(head) => *head,
            HeadFold::NeedsWholeStream(rows) => panic!("folds without the whole stream: {rows:?}"),
        }
    }

    #[test]
    fn a_snapshot_and_its_tail_fold_to_the_state_of_the_whole_stream() {
        let (events, states) = stream(9);
        for snapshot_at in 1..=9 {
            let head = folded(rows(&events, &states, snapshot_at, 9));
            assert_eq!((head.version, head.snapshot_version, head.snapshot_current), (9, snapshot_at as u64, true));
            assert_eq!(head.state, states[8], "snapshot at {snapshot_at}");
        }
    }

    #[test]
    fn a_tail_that_does_not_lead_from_the_snapshot_to_the_head_is_corruption() {
        let (events, states) = stream(6);
        let mut gap = rows(&events, &states, 2, 6);
        gap.tail.remove(1);
        let error = gap.fold().expect_err("a missing version");
        assert!(error.to_string().contains("version 5 follows the snapshot at 2"), "{error}");

        let mut short = rows(&events, &states, 2, 6);
        short.tail.pop();
        let error = short.fold().expect_err("the tail ends before the head");
        assert!(error.to_string().contains("folds to version 5, the head is at 6"), "{error}");
    }

    /// Every way a snapshot can be unusable: none, garbage, another version (older or
    /// newer), this version's number on another shape.
    fn unusable_snapshots(state: &Initiative) -> Vec<(&'static str, Option<String>)> {
        let mut older = encode_snapshot(state).expect("encode");
        older["snapshot_version"] = serde_json::json!(0);
        let mut newer = encode_snapshot(state).expect("encode");
        newer["snapshot_version"] = serde_json::json!(crate::store::fold::SNAPSHOT_VERSION + 1);
        // A newer Accord renamed a field, and its snapshot says so.
        let renamed = newer.as_object_mut().and_then(|fields| fields.remove("key")).expect("a key field");
        newer["initiative_key"] = renamed;
        let mut reshaped = encode_snapshot(state).expect("encode");
        reshaped.as_object_mut().and_then(|fields| fields.remove("key")).expect("a key field");
        vec![
            ("none", None),
            ("garbage", Some("{\"version\": ".into())),
            ("older", Some(older.to_string())),
            ("newer", Some(newer.to_string())),
            ("reshaped", Some(reshaped.to_string())),
        ]
    }

    #[test]
    fn an_unusable_snapshot_is_not_corruption_the_stream_is_folded_from_its_first_event() {
        let (events, states) = stream(6);
        for (what, snapshot) in unusable_snapshots(&states[1]) {
            let mut partial = rows(&events, &states, 2, 6);
            partial.snapshot = snapshot.clone();
            let HeadFold::NeedsWholeStream(mut whole) = partial.fold().expect(what) else {
                panic!("{what}: folded from a snapshot it cannot use")
            };
            whole.tail = events.clone();
            let head = folded(whole);
            assert_eq!(head.state, states[5], "{what}");
            assert_eq!((head.version, head.snapshot_version, head.snapshot_current), (6, 0, false), "{what}");
        }
    }

    #[test]
    fn a_snapshot_written_before_snapshots_had_a_version_is_of_version_1_and_so_folded_anew() {
        // Version 2 records what an acceptance agreed (`Decision::agreement`): a version 1
        // snapshot lacks it, so the stream is folded from its first event.
        const { assert!(crate::store::fold::SNAPSHOT_VERSION > 1) };
        let (events, states) = stream(4);
        let mut partial = rows(&events, &states, 3, 4);
        partial.snapshot = Some(serde_json::to_string(&states[2]).expect("encode"));
        let HeadFold::NeedsWholeStream(mut whole) = partial.fold().expect("an old snapshot is no corruption") else {
            panic!("folded from a snapshot of version 1")
        };
        whole.tail = events.clone();
        let head = folded(whole);
        assert_eq!((head.snapshot_version, head.snapshot_current), (0, false));
        assert_eq!(head.state, states[3]);
    }
}
