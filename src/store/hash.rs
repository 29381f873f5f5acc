//! The per-stream hash chain: each event's hash covers its content and the hash of the
//! event before it in the stream, so an edit, deletion or reordering of stored events
//! changes every later hash. The content is hashed in a canonical JSON form (sorted
//! keys, timestamps as integer microseconds) that survives a round trip through
//! PostgreSQL's jsonb or SQLite's text unchanged.

use chrono::{DateTime, Utc};
use serde::Serialize;
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
///
/// The canonical JSON is the compact serialisation of one object whose keys are sorted
/// (serde_json's map is ordered by key, and so is every object in the payload):
/// `{"actor":…,"causation_id":…,"command_id":…,"correlation_id":…,"event_id":…,
/// "event_type":…,"payload":…,"recorded_at_us":…,"schema_version":…,"stream_id":…,
/// "stream_version":…}`. It is written straight into the hasher, field by field in that
/// order, without building a JSON value first (the tests check it against one).
pub fn event_hash(prev_hash: &[u8], content: &EventContent<'_>) -> [u8; 32] {
    let canonical = Canonical {
        actor: content.actor,
        causation_id: content.causation_id,
        command_id: content.command_id,
        correlation_id: content.correlation_id,
        event_id: content.event_id,
        event_type: content.event_type,
        payload: content.payload,
        recorded_at_us: content.recorded_at.timestamp_micros(),
        schema_version: content.schema_version,
        stream_id: content.stream_id,
        stream_version: content.stream_version,
    };
    let mut bytes = Vec::with_capacity(512);
    // Serialising strings, numbers, UUIDs and a JSON value into memory cannot fail.
    let _ = serde_json::to_writer(&mut bytes, &canonical);
    let mut hasher = Sha256::new();
    hasher.update(prev_hash);
    hasher.update(&bytes);
    hasher.finalize().into()
}

/// The canonical content, fields in key order (see `event_hash`).
#[derive(Serialize)]
struct Canonical<'a> {
    actor: &'a str,
    causation_id: &'a str,
    command_id: &'a str,
    correlation_id: &'a str,
    event_id: Uuid,
    event_type: &'a str,
    payload: &'a serde_json::Value,
    recorded_at_us: i64,
    schema_version: i32,
    stream_id: Uuid,
    stream_version: i64,
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

    /// The canonical form as first written: a JSON value built with `json!`, serialised.
    /// Every hash ever stored was computed this way; `event_hash` must agree with it.
    fn reference_hash(prev_hash: &[u8], content: &EventContent<'_>) -> [u8; 32] {
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

    fn json_value() -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(serde_json::Value::from),
            any::<String>().prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(3, 24, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
                proptest::collection::btree_map(any::<String>(), inner, 0..6)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        #[test]
        fn the_streamed_canonical_form_equals_the_json_value_one(
            payload in json_value(),
            text in ".*",
            ids in proptest::array::uniform2(proptest::prelude::any::<u128>()),
            numbers in (proptest::prelude::any::<i64>(), proptest::prelude::any::<i32>()),
            micros in -62_000_000_000_000_000i64..250_000_000_000_000_000,
            prev in proptest::array::uniform32(proptest::prelude::any::<u8>()),
        ) {
            let content = EventContent {
                stream_id: Uuid::from_u128(ids[0]),
                stream_version: numbers.0,
                event_id: Uuid::from_u128(ids[1]),
                event_type: &text,
                schema_version: numbers.1,
                payload: &payload,
                actor: "Zoë \"quoted\" \u{7}",
                command_id: &text,
                correlation_id: "c\n1",
                causation_id: "",
                recorded_at: DateTime::from_timestamp_micros(micros).unwrap_or_default(),
            };
            proptest::prop_assert_eq!(event_hash(&prev, &content), reference_hash(&prev, &content));
        }
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
