//! The JSON Lines export format: `ExportLine`, one event exactly as stored, and the
//! strict parsing of a line back into its event (the hash chain is the `Importer`'s to
//! check, which knows the event before).

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::{
    DomainError,
    values::{parser_message, quote},
};
use crate::store::{StoreError, StoredEvent};

/// One line of a JSON Lines export: an event exactly as stored, with all its metadata.
/// UUIDs are lower-case hyphenated, `recorded_at` is RFC 3339 in UTC with microseconds
/// (`2026-11-26T10:15:00.123456Z`), hashes are 64 lower-case hex digits. Parsing back is
/// strict: every field is required and no other field is allowed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportLine {
    pub position: u64,
    pub stream_id: String,
    pub stream_version: u64,
    pub event_id: String,
    pub event_type: String,
    pub schema_version: i32,
    pub payload: serde_json::Value,
    pub actor: String,
    pub command_id: String,
    pub correlation_id: String,
    pub causation_id: String,
    pub recorded_at: String,
    pub prev_hash: String,
    pub hash: String,
}

impl From<&StoredEvent> for ExportLine {
    fn from(event: &StoredEvent) -> Self {
        Self {
            position: u64::try_from(event.position).unwrap_or_default(),
            stream_id: event.stream_id.to_string(),
            stream_version: u64::try_from(event.stream_version).unwrap_or_default(),
            event_id: event.event_id.to_string(),
            event_type: event.event_type.clone(),
            schema_version: event.schema_version,
            payload: event.payload.clone(),
            actor: event.actor.clone(),
            command_id: event.command_id.clone(),
            correlation_id: event.correlation_id.clone(),
            causation_id: event.causation_id.clone(),
            recorded_at: event.recorded_at.to_rfc3339_opts(SecondsFormat::Micros, true),
            prev_hash: hex::encode(&event.prev_hash),
            hash: hex::encode(&event.hash),
        }
    }
}

/// An event as its export line, borrowed: the same fields in the same order as
/// `ExportLine`, so the same JSON, without copying the event first.
#[derive(Serialize)]
struct BorrowedLine<'a> {
    position: u64,
    stream_id: Uuid,
    stream_version: u64,
    event_id: Uuid,
    event_type: &'a str,
    schema_version: i32,
    payload: &'a serde_json::Value,
    actor: &'a str,
    command_id: &'a str,
    correlation_id: &'a str,
    causation_id: &'a str,
    recorded_at: String,
    prev_hash: String,
    hash: String,
}

impl ExportLine {
    /// Writes `event`'s line as JSON text (without the newline): the bytes `to_json` of
    /// `ExportLine::from(event)` gives, without building the line.
    pub fn write_json(event: &StoredEvent, out: &mut impl std::io::Write) -> Result<(), StoreError> {
        let line = BorrowedLine {
            position: u64::try_from(event.position).unwrap_or_default(),
            stream_id: event.stream_id,
            stream_version: u64::try_from(event.stream_version).unwrap_or_default(),
            event_id: event.event_id,
            event_type: &event.event_type,
            schema_version: event.schema_version,
            payload: &event.payload,
            actor: &event.actor,
            command_id: &event.command_id,
            correlation_id: &event.correlation_id,
            causation_id: &event.causation_id,
            recorded_at: event.recorded_at.to_rfc3339_opts(SecondsFormat::Micros, true),
            prev_hash: hex::encode(&event.prev_hash),
            hash: hex::encode(&event.hash),
        };
        serde_json::to_writer(out, &line).map_err(|e| StoreError::Corrupt(format!("cannot write an export line: {e}")))
    }

    /// The line as JSON text (without the newline).
    pub fn to_json(&self) -> Result<String, StoreError> {
        serde_json::to_string(self).map_err(|e| StoreError::Corrupt(format!("cannot encode an export line: {e}")))
    }

    /// Parses line `line_no` of an export into the event it records (with the position
    /// the file gives). Refused as `InvalidArgument` on field "line N", saying what is
    /// wrong: not JSON, a missing or unknown field, a bad UUID, time or hex value. The
    /// hash chain is checked by the caller (`Importer`), which knows the previous event.
    pub fn parse(line_no: usize, text: &str) -> Result<StoredEvent, DomainError> {
        let bad = |message: String| DomainError::InvalidArgument { field: format!("line {line_no}"), message };
        let line: ExportLine = serde_json::from_str(text).map_err(|e| bad(describe_json_error(&e)))?;
        line.into_event().map_err(bad)
    }

    fn into_event(self) -> Result<StoredEvent, String> {
        let position = i64::try_from(self.position)
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("position {} is not a positive 63-bit number", self.position))?;
        let stream_version = i64::try_from(self.stream_version)
            .ok()
            .filter(|v| *v > 0)
            .ok_or_else(|| format!("stream_version {} is not a positive 63-bit number", self.stream_version))?;
        if self.event_type.is_empty() {
            return Err("event_type is empty".into());
        }
        Ok(StoredEvent {
            position,
            stream_id: canonical_uuid("stream_id", &self.stream_id)?,
            stream_version,
            event_id: canonical_uuid("event_id", &self.event_id)?,
            event_type: self.event_type,
            schema_version: self.schema_version,
            payload: self.payload,
            actor: self.actor,
            command_id: self.command_id,
            correlation_id: self.correlation_id,
            causation_id: self.causation_id,
            recorded_at: parse_time(&self.recorded_at)?,
            prev_hash: parse_hash("prev_hash", &self.prev_hash)?.to_vec(),
            hash: parse_hash("hash", &self.hash)?.to_vec(),
        })
    }
}

/// serde_json's message without its "at line 1 column N" (an export line is one line).
fn describe_json_error(error: &serde_json::Error) -> String {
    let text = error.to_string();
    let message = text.rsplit_once(" at line ").map_or(text.as_str(), |(message, _)| message);
    match error.classify() {
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
            format!("not JSON: {message} (column {})", error.column())
        }
        _ => parser_message(message).into_owned(),
    }
}

fn canonical_uuid(field: &str, text: &str) -> Result<Uuid, String> {
    match Uuid::try_parse(text) {
        Ok(id) if id.to_string() == text => Ok(id),
        _ => Err(format!("{field} {} is not a UUID in lower-case hyphenated form", quote(text))),
    }
}

fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    let time = DateTime::parse_from_rfc3339(text)
        .map_err(|e| format!("recorded_at {} is not an RFC 3339 time: {e}", quote(text)))?
        .with_timezone(&Utc);
    if time.timestamp_subsec_nanos() % 1_000 != 0 {
        return Err(format!("recorded_at {} is more precise than microseconds", quote(text)));
    }
    Ok(time)
}

/// 32 bytes as 64 lower-case hex digits, exactly.
pub(super) fn parse_hash(field: &str, text: &str) -> Result<[u8; 32], String> {
    let bad = || format!("{field} is not 64 lower-case hex digits: {}", quote(text));
    if text.len() != 64 || !text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(bad());
    }
    let mut hash = [0; 32];
    hex::decode_to_slice(text, &mut hash).map_err(|_| bad())?;
    Ok(hash)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::audit::testing::chain;

    #[test]
    fn a_line_written_from_the_event_is_the_line_built_from_it() {
        for event in chain(Uuid::from_u128(0x1234_5678), 5, 1_000) {
            let mut written = Vec::new();
            ExportLine::write_json(&event, &mut written).expect("write");
            assert_eq!(String::from_utf8(written).expect("UTF-8"), ExportLine::from(&event).to_json().expect("encode"));
        }
    }

    #[test]
    fn an_export_line_round_trips_and_parses_strictly() {
        let event = chain(Uuid::from_u128(7), 1, 41).remove(0);
        let line = ExportLine::from(&event);
        assert_eq!(line.recorded_at, "2023-11-14T22:13:20.000001Z");
        let text = line.to_json().expect("encode");
        assert_eq!(ExportLine::parse(3, &text), Ok(event));

        let refused = |text: &str| match ExportLine::parse(9, text) {
            Err(DomainError::InvalidArgument { field, message }) => {
                assert_eq!(field, "line 9");
                message
            }
            other => panic!("expected a refusal, got {other:?}"),
        };
        assert!(refused("{not json").starts_with("not JSON"));
        let mut value: serde_json::Value = serde_json::from_str(&text).expect("json");
        let without = |field: &str| {
            let mut v = value.clone();
            v.as_object_mut().map(|o| o.remove(field));
            v.to_string()
        };
        assert!(refused(&without("hash")).contains("missing field `hash`"));
        assert!(refused(&without("payload")).contains("missing field `payload`"));
        value["extra"] = 1.into();
        assert!(refused(&value.to_string()).contains("unknown field `extra`"));
        value.as_object_mut().map(|o| o.remove("extra"));
        value["hash"] = "ABC".into();
        assert!(refused(&value.to_string()).contains("hash is not 64 lower-case hex digits"));
        value["hash"] = hex::encode([0xab; 32]).to_uppercase().into();
        assert!(refused(&value.to_string()).contains("hash is not 64 lower-case hex digits"));
        value["hash"] = hex::encode([0xab; 32]).into();
        value["stream_id"] = Uuid::from_u128(7).simple().to_string().into();
        assert!(refused(&value.to_string()).contains("stream_id"));
        value["stream_id"] = Uuid::from_u128(7).to_string().into();
        value["recorded_at"] = "yesterday".into();
        assert!(refused(&value.to_string()).contains("recorded_at"));
        value["recorded_at"] = "2023-11-14T22:13:20.0000011Z".into();
        assert!(refused(&value.to_string()).contains("more precise than microseconds"));
    }
}
