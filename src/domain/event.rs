//! The events of an initiative's stream: the only facts Accord stores. Their JSON form
//! is the stored schema, versioned apart from the API (`SCHEMA_VERSION`); an event once
//! written is never changed, so a new shape gets a new version and an upcast on read.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::alignment::FunctionState;
use super::upcast::{Upcast, upcast};
use super::values::*;

/// Version of the stored payload schema of every event type written today.
pub const SCHEMA_VERSION: i32 = 2;

/// What a decision says. A revision replaces the whole content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionContent {
    pub title: String,
    pub context: String,
    pub options: Vec<String>,
    pub proposal: String,
    pub rationale: String,
}

/// An approval that stopped counting because of a material revision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaleApproval {
    pub signer: Principal,
    pub function: Function,
    pub revision: u32,
}

/// The record of a "disagree and commit" acceptance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OverrideRecord {
    pub reason: String,
    /// Each function that was not approved at the moment of the override.
    pub unaligned: Vec<(Function, FunctionState)>,
    /// Open objections that stood against the decision at that moment.
    pub objections: Vec<FeedbackId>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum Event {
    InitiativeCreated {
        initiative_id: InitiativeId,
        key: InitiativeKey,
        title: String,
        summary: String,
        owner: Principal,
        stage: Stage,
        required_functions: BTreeSet<Function>,
    },
    InitiativeUpdated {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        title: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        summary: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        owner: Option<Principal>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        required_functions: Option<BTreeSet<Function>>,
    },
    StageChanged {
        from: Stage,
        to: Stage,
    },
    InitiativeArchived {
        reason: String,
    },
    StakeholderAssigned {
        principal: Principal,
        function: Function,
        role: Role,
    },
    StakeholderRemoved {
        principal: Principal,
        function: Function,
        role: Role,
    },
    DecisionProposed {
        decision_id: DecisionId,
        content: DecisionContent,
        required_functions: BTreeSet<Function>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        supersedes: Option<DecisionId>,
    },
    DecisionRevised {
        decision_id: DecisionId,
        revision: u32,
        kind: RevisionKind,
        content: DecisionContent,
        required_functions: BTreeSet<Function>,
        note: String,
        /// Approvals this revision made stale (empty for an editorial revision).
        stale: Vec<StaleApproval>,
    },
    DecisionAccepted {
        decision_id: DecisionId,
        revision: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        r#override: Option<OverrideRecord>,
    },
    DecisionRejected {
        decision_id: DecisionId,
        reason: String,
    },
    DecisionWithdrawn {
        decision_id: DecisionId,
        reason: String,
    },
    DecisionSuperseded {
        decision_id: DecisionId,
        superseded_by: DecisionId,
    },
    FeedbackRecorded {
        feedback_id: FeedbackId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        decision_id: Option<DecisionId>,
        function: Function,
        kind: FeedbackKind,
        source: FeedbackSource,
        body: String,
    },
    FeedbackResolved {
        feedback_id: FeedbackId,
        resolution: String,
    },
    FeedbackReopened {
        feedback_id: FeedbackId,
        reason: String,
    },
    SignOffRecorded {
        decision_id: DecisionId,
        revision: u32,
        function: Function,
        verdict: Verdict,
        reason: String,
        comment: String,
        /// The team through which the signer was an approver at that moment (schema 2);
        /// none when they were one themselves. The sign-off counts while that team (or
        /// the signer) stays an approver: membership is not in the log.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        via_team: Option<Principal>,
    },
    SignOffRevoked {
        decision_id: DecisionId,
        function: Function,
    },
}

/// Every stored event type name, for filters.
pub const EVENT_TYPES: &[&str] = &[
    "InitiativeCreated",
    "InitiativeUpdated",
    "StageChanged",
    "InitiativeArchived",
    "StakeholderAssigned",
    "StakeholderRemoved",
    "DecisionProposed",
    "DecisionRevised",
    "DecisionAccepted",
    "DecisionRejected",
    "DecisionWithdrawn",
    "DecisionSuperseded",
    "FeedbackRecorded",
    "FeedbackResolved",
    "FeedbackReopened",
    "SignOffRecorded",
    "SignOffRevoked",
];

impl Event {
    /// The stored event type name (one of `EVENT_TYPES`).
    pub fn event_type(&self) -> &'static str {
        match self {
            Event::InitiativeCreated { .. } => "InitiativeCreated",
            Event::InitiativeUpdated { .. } => "InitiativeUpdated",
            Event::StageChanged { .. } => "StageChanged",
            Event::InitiativeArchived { .. } => "InitiativeArchived",
            Event::StakeholderAssigned { .. } => "StakeholderAssigned",
            Event::StakeholderRemoved { .. } => "StakeholderRemoved",
            Event::DecisionProposed { .. } => "DecisionProposed",
            Event::DecisionRevised { .. } => "DecisionRevised",
            Event::DecisionAccepted { .. } => "DecisionAccepted",
            Event::DecisionRejected { .. } => "DecisionRejected",
            Event::DecisionWithdrawn { .. } => "DecisionWithdrawn",
            Event::DecisionSuperseded { .. } => "DecisionSuperseded",
            Event::FeedbackRecorded { .. } => "FeedbackRecorded",
            Event::FeedbackResolved { .. } => "FeedbackResolved",
            Event::FeedbackReopened { .. } => "FeedbackReopened",
            Event::SignOffRecorded { .. } => "SignOffRecorded",
            Event::SignOffRevoked { .. } => "SignOffRevoked",
        }
    }

    /// The stored payload: the event's fields as a JSON object, without its type.
    pub fn payload(&self) -> serde_json::Value {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(mut tagged)) => tagged.remove("data").unwrap_or(serde_json::Value::Null),
            // Serialising plain data with string keys cannot fail; keep the edge total anyway.
            _ => serde_json::Value::Null,
        }
    }

    /// Rebuilds an event from its stored type, schema version and payload (see
    /// `decode_stored`), with the reason as text.
    pub fn from_stored(event_type: &str, schema_version: i32, payload: serde_json::Value) -> Result<Event, String> {
        Event::decode_stored(event_type, schema_version, payload).map_err(|e| e.to_string())
    }

    /// Rebuilds an event from its stored type, schema version and payload: older schema
    /// versions are upcast first (`upcast`), before the fold sees them; a newer one is
    /// refused as written by a newer Accord.
    pub fn decode_stored(
        event_type: &str,
        schema_version: i32,
        payload: serde_json::Value,
    ) -> Result<Event, StoredEventError> {
        // The type comes from the stored (or imported) row: named by at most a prefix.
        let name = clip(event_type, 64);
        let payload = upcast(&name, schema_version, payload).map_err(StoredEventError::Upcast)?;
        let tagged = serde_json::json!({ "type": event_type, "data": payload });
        serde_json::from_value(tagged).map_err(|e| {
            StoredEventError::Undecodable(format!("{name}: undecodable payload: {}", parser_message(&e.to_string())))
        })
    }
}

/// Why a stored event cannot be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoredEventError {
    /// Its version cannot be brought to the current one; `Upcast::Newer` when a newer
    /// Accord wrote it.
    Upcast(Upcast),
    /// At the current version, the payload does not decode.
    Undecodable(String),
}

impl StoredEventError {
    /// Whether the event was written by a newer Accord than this process.
    pub fn is_newer(&self) -> bool {
        matches!(self, StoredEventError::Upcast(Upcast::Newer { .. }))
    }
}

impl std::fmt::Display for StoredEventError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoredEventError::Upcast(upcast) => upcast.fmt(f),
            StoredEventError::Undecodable(reason) => f.write_str(reason),
        }
    }
}

/// An event as the fold sees it: with the metadata that rules depend on (who, when,
/// at which stream version).
#[derive(Clone, Debug, PartialEq)]
pub struct Recorded {
    pub version: u64,
    pub actor: Principal,
    pub recorded_at: DateTime<Utc>,
    pub event: Event,
}
