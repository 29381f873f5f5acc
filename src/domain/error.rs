//! Why the domain refuses a command. Each variant corresponds to one gRPC status code;
//! the mapping lives at the edge (`grpc::status`), the meaning lives here.

use thiserror::Error;

#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum DomainError {
    /// Malformed input: the field that is wrong and what is wrong with it.
    #[error("{field}: {message}")]
    InvalidArgument { field: String, message: String },
    /// Something the command refers to does not exist.
    #[error("{0}")]
    NotFound(String),
    /// Something the command would create exists already.
    #[error("{0}")]
    AlreadyExists(String),
    /// A rule of the domain forbids the command in the current state.
    #[error("{0}")]
    FailedPrecondition(String),
    /// The caller lacks the decision right the command needs.
    #[error("{0}")]
    PermissionDenied(String),
    /// The stream is not at the version the caller expected.
    #[error("initiative is at version {actual}, not the expected {expected}")]
    VersionConflict { expected: u64, actual: u64 },
}

impl DomainError {
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::InvalidArgument { field: field.to_owned(), message: message.into() }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::NotFound(message.into())
    }

    pub fn precondition(message: impl Into<String>) -> Self {
        Self::FailedPrecondition(message.into())
    }

    pub fn denied(message: impl Into<String>) -> Self {
        Self::PermissionDenied(message.into())
    }
}
