//! The backend-independent half of an append: given the locked head of a stream, check
//! the expected version, decide, fold the new events, hash-chain them and compute the
//! projection. Each backend only supplies the transaction around it and the SQL.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::*;
use crate::domain::{
    AlignmentView, DomainError, Event, Initiative, alignment::project_indexed, decide_as, event::SCHEMA_VERSION, evolve,
};

/// The head of a stream as a command finds it (locked, in a backend's write transaction).
pub struct Head {
    pub stream_id: Option<Uuid>,
    pub version: u64,
    pub head_hash: Vec<u8>,
    pub state: Option<Initiative>,
    /// Set when the command id was seen before on this stream.
    pub replay: Option<CommandOutcome>,
}

impl Head {
    pub fn empty() -> Self {
        Self { stream_id: None, version: 0, head_hash: ZERO_HASH.to_vec(), state: None, replay: None }
    }
}

/// The stored result of a command id seen before, as a backend found it.
pub struct StoredCommand {
    pub stream_id: Uuid,
    pub fingerprint: Vec<u8>,
    pub stream_version: i64,
    pub global_position: i64,
    pub created_id: Option<Uuid>,
}

impl StoredCommand {
    /// The original outcome, when `envelope` repeats the same request (on `stream`, when
    /// the command names one); a reuse of the id for a different request is refused.
    ///
    /// A record loaded by an import has no fingerprint (empty): the request a command
    /// came in is not part of the log. A retry of its id on the same stream replays the
    /// stored outcome without comparing requests — it still never appends twice.
    pub fn replay(self, envelope: &CommandEnvelope, stream: Option<Uuid>) -> Result<CommandOutcome, StoreError> {
        let same_stream = stream.is_none_or(|s| s == self.stream_id);
        let same_request = self.fingerprint.is_empty() || self.fingerprint == envelope.fingerprint;
        if !same_stream || !same_request {
            return Err(DomainError::invalid(
                // The request's field, as for a malformed id (`grpc::commands`).
                "options.command_id",
                format!("{} was already used for a different command", quote(envelope.command_id.as_str())),
            )
            .into());
        }
        Ok(CommandOutcome {
            initiative_id: InitiativeId(self.stream_id),
            stream_version: u64::try_from(self.stream_version).unwrap_or_default(),
            global_position: u64::try_from(self.global_position).unwrap_or_default(),
            created_id: self.created_id,
            replayed: true,
            events_appended: 0,
        })
    }
}

/// Checks the expected version, decides the command against the head, and prepares
/// the append.
pub fn plan(head: &Head, envelope: &CommandEnvelope) -> Result<Append, StoreError> {
    if let Some(expected) = envelope.expected_version
        && expected != head.version
    {
        return Err(DomainError::VersionConflict { expected, actual: head.version }.into());
    }
    let events = decide_as(head.state.as_ref(), &envelope.command, &envelope.actor, envelope.authority)?;
    Append::prepare(head, envelope, events)
}

impl Append {
    /// The outcome to return once the append has committed at `position`.
    pub fn outcome(&self, envelope: &CommandEnvelope, position: i64) -> CommandOutcome {
        CommandOutcome {
            initiative_id: self.state.id,
            stream_version: self.state.version,
            global_position: u64::try_from(position).unwrap_or_default(),
            created_id: envelope.command.created_id(),
            replayed: false,
            events_appended: self.versions.len() as u64,
        }
    }
}

/// Folds a stream's stored events into its state and projection (for rebuilds).
pub fn refold(stream_id: Uuid, events: &[StoredEvent]) -> Result<(Initiative, Projection), StoreError> {
    let recorded = events.iter().map(StoredEvent::to_recorded).collect::<Result<Vec<_>, _>>()?;
    let state = crate::domain::fold(&recorded)
        .map_err(|e| StoreError::Corrupt(format!("stream {stream_id}: {e}")))?
        .ok_or_else(|| StoreError::Corrupt(format!("stream {stream_id} has no events")))?;
    let projection = Projection::of(&state)?;
    Ok((state, projection))
}

/// The folded state and its projection, serialised for storage.
pub struct Projection {
    pub view: AlignmentView,
    /// Everyone a sign-off waits on (the inbox index column), exact however many the
    /// bounded view lists.
    pub awaiting: Vec<String>,
    pub state_json: serde_json::Value,
    pub view_json: serde_json::Value,
}

impl Projection {
    pub fn of(state: &Initiative) -> Result<Self, StoreError> {
        let (view, awaiting) = project_indexed(state);
        let encode = |e: serde_json::Error| StoreError::Corrupt(format!("cannot encode projection: {e}"));
        Ok(Self {
            state_json: serde_json::to_value(state).map_err(encode)?,
            view_json: serde_json::to_value(&view).map_err(encode)?,
            view,
            awaiting,
        })
    }
}

/// The events a command appends, hashed and folded, ready to write.
pub struct Append {
    pub stream_id: Uuid,
    pub versions: Vec<i64>,
    pub event_ids: Vec<Uuid>,
    pub types: Vec<String>,
    pub payloads: Vec<serde_json::Value>,
    pub prev_hashes: Vec<Vec<u8>>,
    pub hashes: Vec<Vec<u8>>,
    pub recorded_at: DateTime<Utc>,
    pub state: Initiative,
    pub projection: Projection,
}

impl Append {
    pub fn prepare(head: &Head, envelope: &CommandEnvelope, events: Vec<Event>) -> Result<Self, StoreError> {
        let recorded_at = now_micros();
        let stream_id = match (&head.stream_id, &envelope.command) {
            (Some(id), _) => *id,
            (None, crate::domain::Command::CreateInitiative { id, .. }) => id.0,
            (None, _) => return Err(DomainError::not_found("initiative not found").into()),
        };
        let mut versions = Vec::with_capacity(events.len());
        let mut event_ids = Vec::with_capacity(events.len());
        let mut types = Vec::with_capacity(events.len());
        let mut payloads = Vec::with_capacity(events.len());
        let mut prev_hashes = Vec::with_capacity(events.len());
        let mut hashes = Vec::with_capacity(events.len());
        let mut state = head.state.clone();
        let mut prev_hash = head.head_hash.clone();
        let mut version = head.version;
        for event in events {
            version += 1;
            let stream_version =
                i64::try_from(version).map_err(|_| StoreError::Corrupt("stream version overflow".into()))?;
            let event_id = Uuid::now_v7();
            let payload = event.payload();
            let hash = event_hash(
                &prev_hash,
                &EventContent {
                    stream_id,
                    stream_version,
                    event_id,
                    event_type: event.event_type(),
                    schema_version: SCHEMA_VERSION,
                    payload: &payload,
                    actor: envelope.actor.as_str(),
                    command_id: envelope.command_id.as_str(),
                    correlation_id: &envelope.correlation_id,
                    causation_id: &envelope.causation_id,
                    recorded_at,
                },
            );
            versions.push(stream_version);
            event_ids.push(event_id);
            types.push(event.event_type().to_owned());
            payloads.push(payload);
            prev_hashes.push(prev_hash);
            prev_hash = hash.to_vec();
            hashes.push(prev_hash.clone());
            let recorded = Recorded { version, actor: envelope.actor.clone(), recorded_at, event };
            state = Some(evolve(state, &recorded).map_err(|e| StoreError::Corrupt(e.to_string()))?);
        }
        let state = state.ok_or_else(|| StoreError::Corrupt("a command produced no events".into()))?;
        let projection = Projection::of(&state)?;
        Ok(Append {
            stream_id,
            versions,
            event_ids,
            types,
            payloads,
            prev_hashes,
            hashes,
            recorded_at,
            state,
            projection,
        })
    }
}
