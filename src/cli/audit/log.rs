//! Reading the server's log: the whole of it, to its end, and each stored event as one
//! line of JSON (`history --json`, `export`, and `verify` of the server's log).
//!
//! A read of the global log ends where the server can hand events out without ever
//! skipping a late commit: on PostgreSQL, a transaction still running anywhere on the
//! database server holds global reads back until it ends (README, "The gap problem"). So
//! a read of the whole log that must be complete (an export; a history without filters)
//! first counts the events the log holds, reads as a follower, and stops only once it has
//! them all, saying why if that takes a while.

use std::time::Duration;

use chrono::SecondsFormat;
use serde::Serialize;
use serde_json::Value;

use super::plural;
use crate::cli::Failure;
use crate::cli::client::Client;
use crate::cli::output::ExitClass;
use crate::cli::status::ListFilters;
use crate::cli::views::time;
use crate::proto as pb;

/// How long a read of the whole log waits for events it knows are there before saying why.
const WAIT_NOTE: Duration = Duration::from_secs(2);

/// How many events the log holds: the sum of every initiative's stream version (archived
/// ones too). Projections are written in the transactions of their events, so this is
/// exactly the count of committed events.
pub(super) async fn events_in_log(client: &Client) -> Result<u64, Failure> {
    let every = ListFilters { archived: true, ..ListFilters::default() };
    Ok(every.fetch(client).await?.iter().map(|view| view.version).sum())
}

/// The next message of a read. While `missing` events are still to come after the read
/// caught up, says once on stderr why it waits, if it waits long.
pub(super) async fn next_message(
    events: &mut tonic::Streaming<pb::ReadEventsResponse>,
    missing: Option<u64>,
    noted: &mut bool,
    server: &str,
) -> Result<Option<pb::ReadEventsResponse>, Failure> {
    let next = events.message();
    tokio::pin!(next);
    let message = match missing {
        Some(missing) if !*noted => tokio::select! {
            message = &mut next => message,
            () = tokio::time::sleep(WAIT_NOTE) => {
                *noted = true;
                eprintln!(
                    "waiting for {missing} more event{} of the log: a transaction still running on the \
                     database holds reads of the whole log back (Ctrl-C stops)",
                    plural(missing)
                );
                next.await
            }
        },
        _ => next.await,
    };
    message.map_err(|status| Failure::from_status(&status, server))
}

/// Every field of a stored event, in the proto's order, with the payload as JSON.
#[derive(Debug, Serialize)]
struct EventLine<'a> {
    position: u64,
    stream_id: &'a str,
    stream_version: u64,
    event_id: &'a str,
    event_type: &'a str,
    schema_version: i32,
    payload: Value,
    actor: &'a str,
    command_id: &'a str,
    correlation_id: &'a str,
    causation_id: &'a str,
    recorded_at: Option<String>,
    prev_hash: &'a str,
    hash: &'a str,
}

/// One event as one line of JSON.
pub(super) fn event_line(event: &pb::StoredEvent) -> Result<String, Failure> {
    let payload: Value = serde_json::from_str(&event.payload_json).map_err(|e| {
        Failure::new(
            ExitClass::Internal,
            format!("the event at position {} came with a payload that is not JSON: {e}", event.position),
        )
    })?;
    let line = EventLine {
        position: event.position,
        stream_id: &event.stream_id,
        stream_version: event.stream_version,
        event_id: &event.event_id,
        event_type: &event.event_type,
        schema_version: event.schema_version,
        payload,
        actor: &event.actor,
        command_id: &event.command_id,
        correlation_id: &event.correlation_id,
        causation_id: &event.causation_id,
        recorded_at: time(event.recorded_at.as_ref()).map(|at| at.to_rfc3339_opts(SecondsFormat::Micros, true)),
        prev_hash: &event.prev_hash,
        hash: &event.hash,
    };
    serde_json::to_string(&line)
        .map_err(|e| Failure::new(ExitClass::Internal, format!("cannot encode the event as JSON: {e}")))
}
