//! What the audit modules' unit tests share: a linked hash chain of events (`chain`) and
//! the checkpoint row a log fold of events plans (`folded`).

use chrono::DateTime;
use uuid::Uuid;

use super::checkpoint::{LogFold, RawCheckpoint};
use crate::store::note::CheckpointSigner;
use crate::store::{GlobalCursor, StoredEvent, ZERO_HASH, event_hash};

/// The checkpoint row a log fold of these events (taken in position order) plans.
pub(super) fn folded(id: i64, events: &[StoredEvent], signer: Option<&CheckpointSigner>) -> RawCheckpoint {
    let mut ordered: Vec<&StoredEvent> = events.iter().collect();
    ordered.sort_by_key(|event| event.position);
    let mut fold = LogFold::start();
    for event in ordered {
        let cursor = GlobalCursor { tx_id: 0, position: event.position };
        fold.push(cursor, event.stream_id, event.stream_version, &event.hash).expect("in order");
    }
    let planned = fold.plan(signer).expect("plan");
    RawCheckpoint {
        id,
        created_at: planned.created_at,
        tree: planned.tree.as_str().to_owned(),
        streams: planned.streams,
        events: planned.events,
        root: planned.root.to_vec(),
        heads: planned.heads_json.clone(),
        frontier: Some(planned.frontier_json.clone()),
        note: planned.note.clone(),
        resume_tx: Some(0),
        resume_position: Some(planned.resume.position),
    }
}

pub(super) fn chain(stream_id: Uuid, count: i64, first_position: i64) -> Vec<StoredEvent> {
    let mut prev = ZERO_HASH.to_vec();
    (1..=count)
        .map(|version| {
            let mut event = StoredEvent {
                position: first_position + version,
                stream_id,
                stream_version: version,
                event_id: Uuid::from_u128(stream_id.as_u128() * 1000 + version as u128),
                event_type: "StageChanged".into(),
                schema_version: 1,
                payload: serde_json::json!({"from": "discovery", "to": "definition"}),
                actor: "a@example.com".into(),
                command_id: format!("c-{stream_id}-{version}"),
                correlation_id: "x".into(),
                causation_id: "x".into(),
                recorded_at: DateTime::from_timestamp_micros(1_700_000_000_000_000 + version).unwrap_or_default(),
                prev_hash: prev.clone(),
                hash: Vec::new(),
            };
            event.hash = event_hash(&prev, &event.content()).to_vec();
            prev.clone_from(&event.hash);
            event
        })
        .collect()
}
