//! The one mapping from Accord's errors to gRPC statuses. Bad input carries a
//! `BadRequest` detail naming the field; a version conflict carries an `ErrorInfo` with
//! the expected and current versions; internal failures are logged in full and reach
//! the caller only as "internal error", never as SQL.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};
use tracing::error;

use crate::domain::DomainError;
use crate::store::StoreError;

pub fn domain_status(error: DomainError) -> Status {
    match error {
        DomainError::InvalidArgument { field, message } => Status::with_error_details(
            Code::InvalidArgument,
            format!("{field}: {message}"),
            ErrorDetails::with_bad_request_violation(field, message),
        ),
        DomainError::NotFound(message) => Status::not_found(message),
        DomainError::AlreadyExists(message) => Status::already_exists(message),
        DomainError::FailedPrecondition(message) => Status::failed_precondition(message),
        DomainError::PermissionDenied(message) => Status::permission_denied(message),
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
        StoreError::Database(db) => {
            error!(error = %db, "database error");
            Status::internal("internal database error")
        }
    }
}
