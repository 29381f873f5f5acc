//! The one mapping from Accord's errors to gRPC statuses. Bad input carries a
//! `BadRequest` detail naming the field; a version conflict carries an `ErrorInfo` with
//! the expected and current versions; internal failures are logged in full and reach
//! the caller only as "internal error", never as SQL.
//!
//! Errors quote inputs through `values::quote`, a short prefix; as a safety net, every
//! message and `BadRequest` description built here is cut to `MAX_ERROR_BYTES`, so no
//! refusal can carry a whole large input into the response's metadata (where clients
//! allow 16 KB or less, and a status travels twice: as the message and in the details).

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};
use tracing::error;

use crate::domain::{
    DomainError,
    values::{MAX_ERROR_BYTES, clip},
};
use crate::store::StoreError;

/// A message as a status carries it: at most `MAX_ERROR_BYTES`.
pub fn bounded(message: impl Into<String>) -> String {
    let message = message.into();
    match clip(&message, MAX_ERROR_BYTES) {
        std::borrow::Cow::Borrowed(_) => message,
        std::borrow::Cow::Owned(clipped) => clipped,
    }
}

pub fn domain_status(error: DomainError) -> Status {
    match error {
        DomainError::InvalidArgument { field, message } => {
            // The field names are the service's own; bounded all the same.
            let field = bounded(field);
            Status::with_error_details(
                Code::InvalidArgument,
                bounded(format!("{field}: {message}")),
                ErrorDetails::with_bad_request_violation(field, bounded(message)),
            )
        }
        DomainError::NotFound(message) => Status::not_found(bounded(message)),
        DomainError::AlreadyExists(message) => Status::already_exists(bounded(message)),
        DomainError::FailedPrecondition(message) => Status::failed_precondition(bounded(message)),
        DomainError::PermissionDenied(message) => Status::permission_denied(bounded(message)),
        conflict @ DomainError::VersionConflict { expected, actual } => Status::with_error_details(
            Code::Aborted,
            conflict.to_string(),
            ErrorDetails::with_error_info(
                "VERSION_CONFLICT",
                "accord",
                HashMap::from([
                    ("expected_version".to_owned(), expected.to_string()),
                    ("current_version".to_owned(), actual.to_string()),
                ]),
            ),
        ),
    }
}

pub fn store_status(error: StoreError) -> Status {
    match error {
        StoreError::Domain(domain) => domain_status(domain),
        StoreError::Unavailable(reason) => {
            error!(%reason, "store unavailable");
            Status::unavailable("the database is unavailable; try again later")
        }
        StoreError::Corrupt(reason) => {
            error!(%reason, "corrupt history");
            Status::internal("internal error: stored history could not be read")
        }
        StoreError::Newer(reason) => {
            error!(%reason, "history written by a newer Accord");
            Status::unavailable("this server is older than the history it read; try again (on an upgraded server)")
        }
        StoreError::Database(db) => {
            error!(error = %db, "database error");
            Status::internal("internal database error")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_and_bad_request_description_is_cut_to_the_bound() {
        let long = "é".repeat(100_000);
        let statuses = [
            domain_status(DomainError::invalid("title", long.clone())),
            domain_status(DomainError::not_found(long.clone())),
            domain_status(DomainError::AlreadyExists(long.clone())),
            domain_status(DomainError::precondition(long.clone())),
            domain_status(DomainError::denied(long.clone())),
        ];
        for status in statuses {
            assert!(status.message().len() <= MAX_ERROR_BYTES, "{:?}: {} bytes", status.code(), status.message().len());
            assert!(status.message().ends_with('…'));
            if let Some(bad_request) = status.get_error_details().bad_request() {
                for violation in &bad_request.field_violations {
                    assert_eq!(violation.field, "title");
                    assert!(violation.description.len() <= MAX_ERROR_BYTES);
                }
            }
        }
    }

    #[test]
    fn a_short_message_is_unchanged() {
        let status = domain_status(DomainError::invalid("title", "must not be empty"));
        assert_eq!(status.message(), "title: must not be empty");
        let details = status.get_error_details();
        let violation = &details.bad_request().expect("a BadRequest").field_violations[0];
        assert_eq!((violation.field.as_str(), violation.description.as_str()), ("title", "must not be empty"));
    }
}
