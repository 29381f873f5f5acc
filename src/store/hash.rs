//! The per-stream hash chain: each event's hash covers its content and the hash of the
//! event before it in the stream, so an edit, deletion or reordering of stored events
//! changes every later hash. The content is hashed in a canonical JSON form (sorted
//! keys, timestamps as integer microseconds) that survives a round trip through
//! PostgreSQL's jsonb or SQLite's text unchanged.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The `prev_hash` of a stream's first event.
pub const ZERO_HASH: [u8; 32] = [0; 32];

/// Everything about an event that its hash covers (all but the global position, which
/// the database assigns, and the hashes themselves).
#[derive(Clone, Copy, Debug)]
pub struct EventContent<'a> {
    pub stream_id: Uuid,
    pub stream_version: i64,
    pub event_id: Uuid,
    pub event_type: &'a str,
    pub schema_version: i32,
    pub payload: &'a serde_json::Value,
    pub actor: &'a str,
    pub command_id: &'a str,
    pub correlation_id: &'a str,
    pub causation_id: &'a str,
    pub recorded_at: DateTime<Utc>,
}

/// SHA-256(prev_hash ‖ canonical JSON of the content).
pub fn event_hash(prev_hash: &[u8], content: &EventContent<'_>) -> [u8; 32] {
    // serde_json's map is ordered by key, so this serialisation is canonical.
    let canonical = serde_json::json!({
        "stream_id": content.stream_id,
        "stream_version": content.stream_version,
        "event_id": content.event_id,
        "event_type": content.event_type,
        "schema_version": content.schema_version,
        "payload": content.payload,
        "actor": content.actor,
        "command_id": content.command_id,
        "correlation_id": content.correlation_id,
        "causation_id": content.causation_id,
        "recorded_at_us": content.recorded_at.timestamp_micros(),
    });
    let mut hasher = Sha256::new();
    hasher.update(prev_hash);
    hasher.update(canonical.to_string().as_bytes());
    hasher.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content(payload: &serde_json::Value) -> EventContent<'_> {
        EventContent {
            stream_id: Uuid::from_u128(1),
            stream_version: 1,
            event_id: Uuid::from_u128(2),
            event_type: "InitiativeCreated",
            schema_version: 1,
            payload,
            actor: "alice@example.com",
            command_id: "c1",
            correlation_id: "c1",
            causation_id: "c1",
            recorded_at: DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap_or_default(),
        }
    }

    #[test]
    fn hash_does_not_depend_on_key_order_of_the_payload() {
        let a: serde_json::Value = serde_json::from_str(r#"{"b":1,"a":"x"}"#).unwrap();
        let b: serde_json::Value = serde_json::from_str(r#"{"a":"x","b":1}"#).unwrap();
        assert_eq!(event_hash(&ZERO_HASH, &content(&a)), event_hash(&ZERO_HASH, &content(&b)));
    }

    #[test]
    fn hash_changes_with_payload_and_with_previous_hash() {
        let a = serde_json::json!({"a": "x"});
        let b = serde_json::json!({"a": "y"});
        let base = event_hash(&ZERO_HASH, &content(&a));
        assert_ne!(base, event_hash(&ZERO_HASH, &content(&b)));
        assert_ne!(base, event_hash(&[1; 32], &content(&a)));
    }
}
