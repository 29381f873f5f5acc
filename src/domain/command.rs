//! The commands of SPEC section 2, as parsed values: a `Command` can only hold valid
//! input (the gRPC edge builds them with the `values` parsers). Ids of things a command
//! creates are chosen before `decide`, so deciding stays a pure function.

use std::collections::BTreeSet;

use super::event::DecisionContent;
use super::values::*;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    CreateInitiative {
        id: InitiativeId,
        key: InitiativeKey,
        title: String,
        summary: String,
        owner: Option<Principal>,
        stage: Option<Stage>,
        required_functions: Option<BTreeSet<Function>>,
    },
    UpdateInitiative {
        title: Option<String>,
        summary: Option<String>,
        owner: Option<Principal>,
        required_functions: Option<BTreeSet<Function>>,
    },
    ChangeStage {
        stage: Stage,
    },
    ArchiveInitiative {
        reason: String,
    },
    AssignStakeholder {
        principal: Principal,
        function: Function,
        role: Role,
    },
    RemoveStakeholder {
        principal: Principal,
        function: Function,
        role: Role,
    },
    ProposeDecision {
        decision_id: DecisionId,
        content: DecisionContent,
        required_functions: Option<BTreeSet<Function>>,
        supersedes: Option<DecisionId>,
    },
    ReviseDecision {
        decision_id: DecisionId,
        kind: RevisionKind,
        content: DecisionContent,
        required_functions: Option<BTreeSet<Function>>,
        note: String,
    },
    AcceptDecision {
        decision_id: DecisionId,
        override_reason: Option<String>,
    },
    RejectDecision {
        decision_id: DecisionId,
        reason: String,
    },
    WithdrawDecision {
        decision_id: DecisionId,
        reason: String,
    },
    SupersedeDecision {
        decision_id: DecisionId,
        superseded_by: DecisionId,
    },
    RecordFeedback {
        feedback_id: FeedbackId,
        decision_id: Option<DecisionId>,
        function: Function,
        kind: FeedbackKind,
        source: FeedbackSource,
        body: String,
    },
    ResolveFeedback {
        feedback_id: FeedbackId,
        resolution: String,
    },
    ReopenFeedback {
        feedback_id: FeedbackId,
        reason: String,
    },
    RecordSignOff {
        decision_id: DecisionId,
        function: Function,
        verdict: Verdict,
        reason: String,
        comment: String,
        revision: Option<u32>,
    },
    RevokeSignOff {
        decision_id: DecisionId,
        function: Function,
    },
}

impl Command {
    /// The id of what the command creates, returned to the caller.
    pub fn created_id(&self) -> Option<uuid::Uuid> {
        match self {
            Command::CreateInitiative { id, .. } => Some(id.0),
            Command::ProposeDecision { decision_id, .. } => Some(decision_id.0),
            Command::RecordFeedback { feedback_id, .. } => Some(feedback_id.0),
            _ => None,
        }
    }
}
