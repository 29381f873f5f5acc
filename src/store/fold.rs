//! The one way a stream's stored events become its state: fold them, in version order,
//! onto a snapshot (or from nothing). Loading a head, reading an initiative, rebuilding
//! projections and importing all go through here; so does the projection a rebuilt head
//! stores beside it.

use uuid::Uuid;

use super::{StoreError, StoredEvent};
use crate::domain::{AlignmentView, Initiative, alignment::project_indexed, evolve};

/// Folds `events` (one stream's, in version order, each one version after the last)
/// onto `state`, the stream's state at the version before the first of them.
pub fn fold_onto(
    stream_id: Uuid,
    mut state: Option<Initiative>,
    events: &[StoredEvent],
) -> Result<Option<Initiative>, StoreError> {
    for event in events {
        let recorded = event.to_recorded()?;
        state = Some(evolve(state, &recorded).map_err(|e| StoreError::Corrupt(format!("stream {stream_id}: {e}")))?);
    }
    Ok(state)
}

/// Folds a stream's stored events from its first into its state and projection.
pub fn refold(stream_id: Uuid, events: &[StoredEvent]) -> Result<(Initiative, Projection), StoreError> {
    let state = fold_onto(stream_id, None, events)?
        .ok_or_else(|| StoreError::Corrupt(format!("stream {stream_id} has no events")))?;
    let projection = Projection::of(&state)?;
    Ok((state, projection))
}

/// A stream's head folded from its whole log, with its projection: what a rebuild and
/// an import write as the stream's head and alignment row.
pub struct FoldedHead {
    pub stream_id: Uuid,
    pub version: i64,
    pub head_hash: Vec<u8>,
    pub last_position: i64,
    pub state: Initiative,
    pub projection: Projection,
}

impl FoldedHead {
    /// The head of a stream with these events, all of them, in version order.
    pub fn refold(stream_id: Uuid, events: &[StoredEvent]) -> Result<Self, StoreError> {
        let (state, projection) = refold(stream_id, events)?;
        let last = events.last().ok_or_else(|| StoreError::Corrupt(format!("stream {stream_id} has no events")))?;
        Ok(FoldedHead {
            stream_id,
            version: last.stream_version,
            head_hash: last.hash.clone(),
            last_position: last.position,
            state,
            projection,
        })
    }
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
