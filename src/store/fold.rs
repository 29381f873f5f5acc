//! The one way a stream's stored events become its state: fold them, in version order,
//! onto a snapshot (or from nothing). Loading a head, reading an initiative, rebuilding
//! projections and importing all go through here; so does the projection a rebuilt head
//! stores beside it.
//!
//! A snapshot (`streams.state`) is the serde JSON of `Initiative` with a
//! `snapshot_version` field beside its own: derived data, so a process that meets a
//! snapshot of another version (older, newer) or one that does not decode folds the
//! stream from its log instead of failing (see `batch::HeadRows::fold`). A snapshot
//! written before the field existed has version 1's shape.

use serde::Deserialize;
use uuid::Uuid;

use super::{StoreError, StoredEvent};
use crate::domain::{AlignmentView, Initiative, alignment::project_indexed, evolve};

/// The version of the snapshot's shape: raise it with any change to `Initiative`'s serde
/// form (a renamed, removed or retyped field), so that processes of another version
/// refold instead of misreading it.
pub const SNAPSHOT_VERSION: i32 = 2;

/// The field of a snapshot that names its version.
pub const SNAPSHOT_VERSION_FIELD: &str = "snapshot_version";

/// A state as a snapshot: its JSON with the snapshot version.
pub fn encode_snapshot(state: &Initiative) -> Result<serde_json::Value, StoreError> {
    let encode = |e: serde_json::Error| StoreError::Corrupt(format!("cannot encode a snapshot: {e}"));
    let mut json = serde_json::to_value(state).map_err(encode)?;
    match json.as_object_mut() {
        Some(fields) => {
            fields.insert(SNAPSHOT_VERSION_FIELD.into(), SNAPSHOT_VERSION.into());
            Ok(json)
        }
        None => Err(StoreError::Corrupt("a state does not encode as a JSON object".into())),
    }
}

/// A stored snapshot as this process can use it.
#[derive(Debug)]
pub enum Snapshot {
    /// Of this code's version, and it decodes.
    Current(Box<Initiative>),
    /// Of another version, or undecodable: fold the stream from its log. Says why.
    Unusable(String),
}

/// The version and stream version of a snapshot, read without decoding the rest.
#[derive(Deserialize)]
pub struct SnapshotHeader {
    #[serde(default = "first_snapshot_version")]
    pub snapshot_version: i32,
    #[serde(default)]
    pub version: Option<i64>,
}

fn first_snapshot_version() -> i32 {
    1
}

impl SnapshotHeader {
    /// The stream version a snapshot is at if this process can use it; 0 (fold from
    /// the first event) for one of another version or that does not decode.
    pub fn usable_version(text: Option<&str>) -> i64 {
        text.and_then(|json| serde_json::from_str::<SnapshotHeader>(json).ok())
            .filter(|header| header.snapshot_version == SNAPSHOT_VERSION)
            .and_then(|header| header.version)
            .unwrap_or(0)
    }
}

/// Decodes a stored snapshot.
pub fn decode_snapshot(text: &str) -> Snapshot {
    match serde_json::from_str::<SnapshotHeader>(text) {
        Err(e) => Snapshot::Unusable(format!("the snapshot does not decode: {e}")),
        Ok(header) if header.snapshot_version != SNAPSHOT_VERSION => Snapshot::Unusable(format!(
            "the snapshot is of version {}, this process writes {SNAPSHOT_VERSION}",
            header.snapshot_version
        )),
        Ok(_) => match serde_json::from_str::<Initiative>(text) {
            Ok(state) => Snapshot::Current(Box::new(state)),
            Err(e) => Snapshot::Unusable(format!("the snapshot does not decode: {e}")),
        },
    }
}

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
#[derive(Clone)]
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
#[derive(Clone)]
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
            state_json: encode_snapshot(state)?,
            view_json: serde_json::to_value(&view).map_err(encode)?,
            view,
            awaiting,
        })
    }
}
