//! Stream heads in memory: the committer's cache of them (bounded in bytes of folded
//! state), folding and hashing a command's events onto a head, and what a moved head
//! writes (its alignment row, and every `snapshot_every` events its state).

use std::collections::HashMap;

use uuid::Uuid;

use super::command::CommandEnvelope;
use crate::domain::{
    DomainError, Initiative, Recorded, alignment::project_indexed, event::SCHEMA_VERSION, evolve, values::InitiativeKey,
};
use crate::store::batch::{AlignmentRow, HeadMove, LoadedHead};
use crate::store::fold::encode_snapshot;
use crate::store::{EventContent, StoreError, StoredEvent, ZERO_HASH, event_hash, now_micros};

/// The default of `AppLimits::snapshot_every`.
pub const SNAPSHOT_EVERY: u64 = 64;

/// A stream head in memory: where the stream stands and its folded state.
#[derive(Debug)]
pub(super) struct Head {
    pub(super) stream_id: Uuid,
    pub(super) version: u64,
    pub(super) hash: Vec<u8>,
    pub(super) state: Initiative,
    /// The version of the snapshot the database holds for this stream.
    pub(super) snapshot_version: u64,
    /// Whether that snapshot is of this code's version (if not, the next move writes one).
    pub(super) snapshot_current: bool,
    /// What the state costs to keep, roughly: its snapshot's size as JSON and the
    /// payloads folded onto it since.
    pub(super) bytes: usize,
}

impl From<LoadedHead> for Head {
    fn from(head: LoadedHead) -> Self {
        Head {
            stream_id: head.stream_id,
            version: head.version,
            hash: head.hash,
            state: head.state,
            snapshot_version: head.snapshot_version,
            snapshot_current: head.snapshot_current,
            bytes: head.snapshot_bytes,
        }
    }
}

/// Folds and hashes a command's events onto `current` (consumed: its state is evolved
/// in place): the new head and the events.
pub(super) fn append(
    current: Option<Head>,
    envelope: &CommandEnvelope,
    events: Vec<crate::domain::Event>,
) -> Result<(Head, Vec<StoredEvent>), StoreError> {
    let recorded_at = now_micros();
    let stream_id = match (&current, &envelope.command) {
        (Some(head), _) => head.stream_id,
        (None, crate::domain::Command::CreateInitiative { id, .. }) => id.0,
        (None, _) => return Err(DomainError::not_found("initiative not found").into()),
    };
    let (mut state, mut prev_hash, mut version, snapshot_version, snapshot_current, mut bytes) = match current {
        Some(head) => {
            (Some(head.state), head.hash, head.version, head.snapshot_version, head.snapshot_current, head.bytes)
        }
        None => (None, ZERO_HASH.to_vec(), 0, 0, true, 0),
    };
    let mut out = Vec::with_capacity(events.len());
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
        )
        .to_vec();
        bytes += payload_bytes(&payload);
        out.push(StoredEvent {
            // The store assigns it.
            position: 0,
            stream_id,
            stream_version,
            event_id,
            event_type: event.event_type().to_owned(),
            schema_version: SCHEMA_VERSION,
            payload,
            actor: envelope.actor.as_str().to_owned(),
            command_id: envelope.command_id.as_str().to_owned(),
            correlation_id: envelope.correlation_id.clone(),
            causation_id: envelope.causation_id.clone(),
            recorded_at,
            prev_hash: std::mem::replace(&mut prev_hash, hash.clone()),
            hash,
        });
        let recorded = Recorded { version, actor: envelope.actor.clone(), recorded_at, event };
        state = Some(evolve(state, &recorded).map_err(|e| StoreError::Corrupt(e.to_string()))?);
    }
    let state = state.ok_or_else(|| StoreError::Corrupt("a command produced no events".into()))?;
    Ok((Head { stream_id, version, hash: prev_hash, state, snapshot_version, snapshot_current, bytes }, out))
}

/// What an event costs to keep besides its payload: ids, names, hashes.
pub(super) const EVENT_OVERHEAD: usize = 256;

/// Roughly what an event's payload adds to a folded state: the length of its strings
/// and a few bytes per other value (no encoding on the hot path).
pub(super) fn payload_bytes(value: &serde_json::Value) -> usize {
    match value {
        serde_json::Value::String(text) => text.len() + 2,
        serde_json::Value::Array(items) => 2 + items.iter().map(payload_bytes).sum::<usize>(),
        serde_json::Value::Object(fields) => {
            2 + fields.iter().map(|(name, value)| name.len() + 3 + payload_bytes(value)).sum::<usize>()
        }
        _ => 8,
    }
}

/// The heads this process has seen, by stream id and key, bounded in bytes of state.
/// A head a batch is planning against is taken out and put back after.
pub(super) struct HeadCache {
    heads: HashMap<Uuid, Head>,
    /// Key to stream id (fixed for a stream's life), also while its head is taken.
    keys: HashMap<String, Uuid>,
    pub(super) bytes: usize,
    limit: usize,
}

impl HeadCache {
    pub(super) fn new(limit: usize) -> Self {
        HeadCache { heads: HashMap::new(), keys: HashMap::new(), bytes: 0, limit }
    }

    pub(super) fn has_id(&self, id: Uuid) -> bool {
        self.heads.contains_key(&id)
    }

    pub(super) fn has_key(&self, key: &str) -> bool {
        self.keys.get(key).is_some_and(|id| self.heads.contains_key(id))
    }

    pub(super) fn id_of(&self, key: &InitiativeKey) -> Option<Uuid> {
        self.keys.get(key.as_str()).copied()
    }

    /// Moves a head out (its key stays known).
    pub(super) fn take(&mut self, id: Uuid) -> Option<Head> {
        let head = self.heads.remove(&id)?;
        self.bytes -= head.bytes.min(self.bytes);
        Some(head)
    }

    pub(super) fn put(&mut self, id: Uuid, head: Head) {
        if let Some(old) = self.heads.remove(&id) {
            self.bytes -= old.bytes.min(self.bytes);
        }
        if head.bytes > self.limit {
            self.forget(id);
            return;
        }
        while self.bytes + head.bytes > self.limit {
            // Any entry: the cache only saves a read, and a full cache is rare.
            let Some(victim) = self.heads.keys().next().copied() else { break };
            self.forget(victim);
        }
        self.bytes += head.bytes;
        self.keys.insert(head.state.key.to_string(), id);
        self.heads.insert(id, head);
    }

    pub(super) fn forget(&mut self, id: Uuid) {
        match self.heads.remove(&id) {
            Some(old) => {
                self.bytes -= old.bytes.min(self.bytes);
                if self.keys.get(old.state.key.as_str()) == Some(&id) {
                    self.keys.remove(old.state.key.as_str());
                }
            }
            // A taken head's key (rare: after a batch that was not appended).
            None => self.keys.retain(|_, stream| *stream != id),
        }
    }
}

/// The alignment row of a moved head, and its state as a new snapshot when the stream
/// is new, its stored snapshot is not of this code's version, or it is `snapshot_every`
/// events behind (then the head's snapshot version and size are brought up to date). A
/// snapshot of a newer version is not overwritten (the append keeps it): the head is
/// still marked current, so that this process does not send its state on every move.
pub(super) fn head_move(head: &mut Head, from: Option<i64>, snapshot_every: u64) -> Result<HeadMove, StoreError> {
    let (view, awaiting) = project_indexed(&head.state);
    let encode = |e: serde_json::Error| StoreError::Corrupt(format!("cannot encode projection: {e}"));
    let behind = head.version - head.snapshot_version.min(head.version);
    let state = if from.is_none() || !head.snapshot_current || behind >= snapshot_every {
        let json = encode_snapshot(&head.state)?.to_string();
        head.snapshot_version = head.version;
        head.snapshot_current = true;
        head.bytes = json.len();
        Some(json)
    } else {
        None
    };
    let row = AlignmentRow {
        title: view.title.clone(),
        owner: view.owner.as_str().to_owned(),
        stage: view.stage.as_str().to_owned(),
        status: view.status.as_str().to_owned(),
        archived: view.archived,
        outstanding: view.outstanding_functions(),
        awaiting,
        score: view.score,
        view: serde_json::to_value(&view).map_err(encode)?,
    };
    let version = i64::try_from(head.version).map_err(|_| StoreError::Corrupt("stream version overflow".into()))?;
    Ok(HeadMove {
        stream_id: head.stream_id,
        key: head.state.key.to_string(),
        from,
        version,
        hash: head.hash.clone(),
        state,
        // As a rebuild sets it: the state's last activity, not the time of the batch.
        at: head.state.last_activity,
        row,
    })
}
