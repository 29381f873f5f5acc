//! Import: the `Importer`, which checks an export line by line (links, hashes, unused
//! ids, the fold) and assigns the new positions; what it hands a backend to write
//! (`ImportedCommand`, each stream's `FoldedHead`, `ImportReport`); and `run_import`, which runs a
//! file's lines through it into an `ImportSink`.

use std::collections::{BTreeMap, HashMap, hash_map::Entry};
use std::future::Future;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_stream::{Stream, StreamExt};
use uuid::Uuid;

use super::export::ExportLine;
use super::task_failed;
use crate::domain::{
    DomainError, Event, Initiative, Recorded, evolve,
    values::{Principal, quote},
};
use crate::store::fold::{FoldedHead, Projection};
use crate::store::{StoreError, StoredEvent, ZERO_HASH, event_hash};

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
    pub fn finish(mut self) -> Result<(Vec<FoldedHead>, Vec<ImportedCommand>, ImportReport), StoreError> {
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
            streams.push(FoldedHead {
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
    fn streams(&mut self, streams: &[FoldedHead]) -> impl Future<Output = Result<(), StoreError>> + Send;
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
