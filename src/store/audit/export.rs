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

impl ExportLine {
    /// Writes `event`'s line as JSON text (without the newline): the bytes `to_json` of
    /// `ExportLine::from(event)` gives, without building the line. The fields that are
    /// never escaped (numbers, UUIDs, the time, hex) are formatted on the stack; an
    /// export writes millions of lines, and building them took as long as reading the
    /// rows.
    pub fn write_json(event: &StoredEvent, out: &mut impl std::io::Write) -> Result<(), StoreError> {
        Self::write_fields(event, out).map_err(|e| StoreError::Corrupt(format!("cannot write an export line: {e}")))
    }

    fn write_fields(event: &StoredEvent, out: &mut impl std::io::Write) -> Result<(), serde_json::Error> {
        let io = serde_json::Error::io;
        let position = u64::try_from(event.position).unwrap_or_default();
        let stream_version = u64::try_from(event.stream_version).unwrap_or_default();
        write_value(out, b"{\"position\":", &position)?;
        write_uuid(out, b",\"stream_id\":\"", event.stream_id).map_err(io)?;
        write_value(out, b",\"stream_version\":", &stream_version)?;
        write_uuid(out, b",\"event_id\":\"", event.event_id).map_err(io)?;
        write_value(out, b",\"event_type\":", &event.event_type)?;
        write_value(out, b",\"schema_version\":", &event.schema_version)?;
        write_value(out, b",\"payload\":", &event.payload)?;
        write_value(out, b",\"actor\":", &event.actor)?;
        write_value(out, b",\"command_id\":", &event.command_id)?;
        write_value(out, b",\"correlation_id\":", &event.correlation_id)?;
        write_value(out, b",\"causation_id\":", &event.causation_id)?;
        out.write_all(b",\"recorded_at\":\"").map_err(io)?;
        write_time(out, event.recorded_at).map_err(io)?;
        write_hex(out, b"\",\"prev_hash\":\"", &event.prev_hash).map_err(io)?;
        write_hex(out, b"\",\"hash\":\"", &event.hash).map_err(io)?;
        out.write_all(b"\"}").map_err(io)
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

/// `prefix`, then the value as serde_json writes it (strings escaped).
fn write_value(out: &mut impl std::io::Write, prefix: &[u8], value: &impl Serialize) -> Result<(), serde_json::Error> {
    out.write_all(prefix).map_err(serde_json::Error::io)?;
    serde_json::to_writer(&mut *out, value)
}

/// `prefix`, then the UUID in lower-case hyphenated form (the closing quote is the next
/// field's prefix or written after).
fn write_uuid(out: &mut impl std::io::Write, prefix: &[u8], id: Uuid) -> std::io::Result<()> {
    out.write_all(prefix)?;
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    out.write_all(id.hyphenated().encode_lower(&mut text).as_bytes())?;
    out.write_all(b"\"")
}

/// `prefix`, then the bytes as lower-case hex (64 digits for a hash, on the stack).
fn write_hex(out: &mut impl std::io::Write, prefix: &[u8], bytes: &[u8]) -> std::io::Result<()> {
    out.write_all(prefix)?;
    let mut text = [0u8; 64];
    match hex::encode_to_slice(bytes, &mut text[..bytes.len().min(32) * 2]) {
        Ok(()) if bytes.len() <= 32 => out.write_all(&text[..bytes.len() * 2]),
        _ => out.write_all(hex::encode(bytes).as_bytes()),
    }
}

/// The time as RFC 3339 in UTC with microseconds, as `to_rfc3339_opts(Micros, true)`
/// writes it: `2026-11-26T10:15:00.123456Z`. Years outside 0–9999 and leap seconds,
/// which chrono writes its own way, are left to chrono.
fn write_time(out: &mut impl std::io::Write, time: DateTime<Utc>) -> std::io::Result<()> {
    use chrono::{Datelike, Timelike};
    let (year, nanos) = (time.year(), time.nanosecond());
    if !(0..=9999).contains(&year) || nanos >= 1_000_000_000 {
        return out.write_all(time.to_rfc3339_opts(SecondsFormat::Micros, true).as_bytes());
    }
    let mut text = *b"0000-00-00T00:00:00.000000Z";
    let mut digits = |at: usize, width: usize, mut value: u32| {
        for i in (at..at + width).rev() {
            text[i] = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    digits(0, 4, year.unsigned_abs());
    digits(5, 2, time.month());
    digits(8, 2, time.day());
    digits(11, 2, time.hour());
    digits(14, 2, time.minute());
    digits(17, 2, time.second());
    digits(20, 6, nanos / 1_000);
    out.write_all(&text)
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

    proptest::proptest! {
        /// Whatever the strings, times and hash lengths: what `write_json` formats by hand
        /// is what serde writes for the line.
        #[test]
        fn a_hand_written_line_is_serdes_line_for_any_event(
            text in "\\PC{0,12}|[\"\\\\\u{0}-\u{1f}\u{7f}é漢😀]{0,6}",
            micros in -62_167_219_200_000_000i64..253_402_300_800_000_000 + 1_000_000,
            sub_micro in 0u32..1_000,
            hash_len in proptest::prop_oneof![proptest::strategy::Just(32usize), 0usize..40],
            position in proptest::num::i64::ANY,
        ) {
            let mut event = chain(Uuid::from_u128(0x5eed), 1, 0).remove(0);
            event.position = position;
            event.stream_version = position.wrapping_neg();
            event.event_type = text.clone();
            event.actor = format!("{text}@example.com");
            event.command_id = text.clone();
            event.payload = serde_json::json!({"why": text, "n": position});
            let nanos = chrono::TimeDelta::nanoseconds(i64::from(sub_micro));
            event.recorded_at = DateTime::from_timestamp_micros(micros).unwrap_or_default() + nanos;
            event.hash = vec![0xa5; hash_len];
            event.prev_hash = (0..hash_len as u8).collect();
            let mut written = Vec::new();
            ExportLine::write_json(&event, &mut written).expect("write");
            proptest::prop_assert_eq!(String::from_utf8(written).expect("UTF-8"), ExportLine::from(&event).to_json().expect("encode"));
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
