//! A command as the edges hand it to the application layer — the envelope with who
//! sends it, its idempotency key and the request's fingerprint — and the outcome it
//! gets, the same again for a retry of the same command id.

use uuid::Uuid;

use crate::domain::values::{InitiativeId, InitiativeRef, Principal, parse_token, quote};
use crate::domain::{Authority, Command, DomainError};
use crate::store::StoreError;
use crate::store::batch::StoredCommand;

/// Idempotency key of a command: 1-128 printable ASCII characters.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CommandId(String);

impl CommandId {
    pub fn parse(field: &str, value: &str) -> Result<Self, DomainError> {
        parse_token(field, value).map(Self)
    }

    pub fn generate() -> Self {
        Self(Uuid::now_v7().to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A command with everything the application needs to run and record it.
#[derive(Clone, Debug)]
pub struct CommandEnvelope {
    /// `None` for `CreateInitiative`, which starts a new stream.
    pub target: Option<InitiativeRef>,
    pub command: Command,
    pub actor: Principal,
    /// Whether the actor may manage any initiative (an administrator) or only their own.
    pub authority: Authority,
    /// The teams the actor belongs to now: a role given to one of them is theirs too.
    pub teams: std::collections::BTreeSet<Principal>,
    pub command_id: CommandId,
    pub expected_version: Option<u64>,
    pub correlation_id: String,
    pub causation_id: String,
    /// Hash of the request as sent: a reused command id with a different request is refused.
    pub fingerprint: [u8; 32],
}

impl CommandEnvelope {
    /// The original outcome of `stored`, the record of this envelope's command id, when
    /// this repeats the same request (on `stream`, when the command names one); a reuse
    /// of the id for a different request is refused.
    ///
    /// A record loaded by an import has no fingerprint (empty): the request a command
    /// came in is not part of the log. A retry of its id on the same stream replays the
    /// stored outcome without comparing requests — it still never appends twice.
    pub fn replay(&self, stored: StoredCommand, stream: Option<Uuid>) -> Result<CommandOutcome, StoreError> {
        let same_stream = stream.is_none_or(|s| s == stored.stream_id);
        let same_request = stored.fingerprint.is_empty() || stored.fingerprint == self.fingerprint;
        if !same_stream || !same_request {
            return Err(DomainError::invalid(
                // The request's field, as for a malformed id (`grpc::commands`).
                "options.command_id",
                format!("{} was already used for a different command", quote(self.command_id.as_str())),
            )
            .into());
        }
        Ok(CommandOutcome {
            initiative_id: InitiativeId(stored.stream_id),
            stream_version: u64::try_from(stored.stream_version).unwrap_or_default(),
            global_position: u64::try_from(stored.global_position).unwrap_or_default(),
            created_id: stored.created_id,
            replayed: true,
            events_appended: 0,
        })
    }
}

/// What a command did: the result a retry with the same command id gets again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandOutcome {
    pub initiative_id: InitiativeId,
    pub stream_version: u64,
    pub global_position: u64,
    pub created_id: Option<Uuid>,
    pub replayed: bool,
    /// Events this execution appended (0 for a replay).
    pub events_appended: u64,
}
