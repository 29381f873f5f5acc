//! The board's JSON API: one initiative in detail (`detail`, `GET
//! /api/initiatives/{initiative}`), its alignment as of a past version with the
//! explanation (`history`), a decision's revisions diffed (`diff`), who the caller is and
//! what waits on them (`me`), and the live alignment of many as server-sent events
//! (`watch`, `GET /api/watch`). All answer refusals as this module maps them.
//!
//! The detail is built from the same domain functions as gRPC `GetDecision`
//! (`evaluate_decision`, `sign_off_history`, `sign_off_counts`); the event stream is a
//! thin encoding of the shared live feed, so the board, gRPC `WatchAlignments` and every
//! other watcher see the same changes at the same positions.

mod detail;
mod diff;
mod history;
mod me;
mod watch;

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use tracing::error;

use super::{error as error_response, field_error};
use crate::domain::{
    DomainError,
    values::{MAX_ERROR_BYTES, clip},
};
use crate::live::ReadError;
use crate::store::StoreError;

pub(super) use detail::initiative;
pub(super) use diff::diff;
pub(super) use history::as_of;
pub(super) use me::{inbox, me};
pub(super) use watch::watch;

/// A refusal as the API answers it; messages are cut to `MAX_ERROR_BYTES`, like gRPC's
/// (`grpc::status`), whatever a parser put in them.
fn domain_response(error: DomainError) -> Response {
    match error {
        DomainError::InvalidArgument { field, message } => {
            field_error(&field, &clip(&format!("{field}: {message}"), MAX_ERROR_BYTES))
        }
        DomainError::NotFound(message) => error_response(StatusCode::NOT_FOUND, &clip(&message, MAX_ERROR_BYTES)),
        other => error_response(StatusCode::BAD_REQUEST, &clip(&other.to_string(), MAX_ERROR_BYTES)),
    }
}

fn store_response(error: StoreError) -> Response {
    match error {
        StoreError::Domain(domain) => domain_response(domain),
        StoreError::Unavailable(reason) => {
            error!(%reason, "store unavailable");
            error_response(StatusCode::SERVICE_UNAVAILABLE, "the database is unavailable; try again later")
        }
        StoreError::Corrupt(reason) => {
            error!(%reason, "corrupt history");
            error_response(StatusCode::INTERNAL_SERVER_ERROR, "internal error: stored history could not be read")
        }
        StoreError::Newer(reason) => {
            error!(%reason, "history written by a newer Accord");
            error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "this server is older than the history it read; try again (on an upgraded server)",
            )
        }
        StoreError::Database(db) => {
            error!(error = %db, "database error");
            error_response(StatusCode::INTERNAL_SERVER_ERROR, "internal database error")
        }
    }
}

fn read_response(error: ReadError) -> Response {
    match error {
        ReadError::Store(error) => store_response(error),
        past @ ReadError::PastHead { .. } => {
            error_response(StatusCode::BAD_REQUEST, &clip(&past.to_string(), MAX_ERROR_BYTES))
        }
    }
}

/// The most bytes one JSON answer of the as-of, diff and inbox endpoints may take; past
/// it the answer is refused (500) rather than buffered on.
const MAX_RESPONSE_BYTES: usize = 8 << 20;

/// Writes into memory up to `MAX_RESPONSE_BYTES`, and fails past it.
struct Capped(Vec<u8>);

impl std::io::Write for Capped {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        if self.0.len() + bytes.len() > MAX_RESPONSE_BYTES {
            return Err(std::io::Error::other("the answer is too large"));
        }
        self.0.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `value` as a JSON answer, encoded into at most `MAX_RESPONSE_BYTES`.
fn bounded_json<T: Serialize>(value: &T) -> Response {
    let mut body = Capped(Vec::new());
    match serde_json::to_writer(&mut body, value) {
        Ok(()) => ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body.0).into_response(),
        Err(reason) => {
            error!(%reason, limit = MAX_RESPONSE_BYTES, "an API answer was not sent");
            error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("the answer would be larger than {} MiB", MAX_RESPONSE_BYTES >> 20),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_past_the_bound_is_refused_not_buffered() {
        let small = bounded_json(&vec!["x"; 10]);
        assert_eq!(small.status(), StatusCode::OK);
        let large = bounded_json(&vec!["x".repeat(1024); MAX_RESPONSE_BYTES / 1024 + 1]);
        assert_eq!(large.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
